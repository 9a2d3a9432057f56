"""Batch feed of the detector (twin_anomaly/batch_feed.py) against ResidualDetector.update."""
import math

import numpy as np
import pytest
from twin_anomaly.batch_feed import block_series, commission_series, feed_blocks, \
    feed_series, first_raise, monitoring_scores, robot_score
from twin_anomaly.detector import ResidualDetector

NAMES = [f'j{i}' for i in range(1, 8)]


def _residuals(size=12000, seed=1, fault_from=8000):
    """1 kHz residuals: white noise, a wrench with dropped readings, an effort drift on j3."""
    rng = np.random.default_rng(seed)
    t = (np.arange(size) + 2) * 1e-3
    pos = rng.normal(0.0, 1e-5, (size, 7))
    vel = rng.normal(0.0, 1e-3, (size, 7))
    eff = rng.normal(0.0, 0.05, (size, 7))
    eff[fault_from:, 2] += np.linspace(0.0, 1.0, size - fault_from)
    wrench = rng.normal(0.0, 0.1, (size, 6))
    wrench[rng.random(size) < 0.1] = np.nan
    qd = rng.normal(0.0, 0.5, (size, 7))
    return t, pos, vel, eff, wrench, qd


def _per_sample(detector, t, pos, vel, eff, wrench, qd):
    """Feed update() per sample (the reference); return (closer, score, level) per block."""
    out = []
    for k in range(t.size):
        before = detector._block_end
        detector.update(t[k], pos[k], vel[k], eff[k],
                        None if np.isnan(wrench[k, 0]) else wrench[k], velocity=qd[k])
        if detector._block_end != before:
            report = detector.report()
            out.append((k, report.score if detector.commissioned else 0.0, report.level))
    return out


def test_feed_blocks_leaves_the_detector_as_update_does():
    data = _residuals()
    live = ResidualDetector(NAMES, commissioning_duration_s=4.0)
    want = _per_sample(live, *data)
    batch = ResidualDetector(NAMES, commissioning_duration_s=4.0)
    got = []
    for lo, hi in ((0, 5000), (5000, data[0].size)):     # two calls: state carries over
        for k in feed_blocks(batch, *(a[lo:hi] for a in data)):
            got.append((k + lo, robot_score(batch)))
    assert [k for k, _ in got] == [row[0] for row in want]
    assert np.allclose([s for _, s in got], [row[1] for row in want], rtol=1e-9, atol=1e-12)
    a, b = live.report(), batch.report()
    assert a.level == b.level == 'ERROR'
    assert (a.faulty_joint, a.fault_type, a.since) == (b.faulty_joint, b.fault_type, b.since)
    assert np.allclose(live.thresholds().level, batch.thresholds().level, rtol=1e-12)


def test_vectorized_commissioning_scores_and_first_alarm():
    t, pos, vel, eff, wrench, qd = _residuals()
    live = ResidualDetector(NAMES, commissioning_duration_s=4.0)
    want = _per_sample(live, t, pos, vel, eff, wrench, qd)
    det = ResidualDetector(NAMES, commissioning_duration_s=4.0)
    series = block_series(det, t, pos, vel, eff, wrench, qd)
    done = commission_series(det, series)
    assert done is not None and det.commissioned
    assert np.allclose(det.thresholds().level, live.thresholds().level, rtol=1e-12)
    scores = monitoring_scores(det, series, done + 1)
    robot = scores.max(axis=1)                 # the wrench group is monitored here
    assert np.allclose(robot, [row[1] for row in want[done + 1:]], rtol=1e-9, atol=1e-12)
    raised = first_raise(det, series, scores, done + 1)
    assert raised == next(i for i, row in enumerate(want) if row[2] == 'ERROR')
    for b in feed_series(det, series, done + 1, raised + 1):
        pass
    report = det.report()
    assert report.level == 'ERROR' and report.faulty_joint == 'j3'
    assert 8.0 < report.since < 12.0


def test_unordered_stamps_fall_back_to_update():
    t, pos, vel, eff, wrench, qd = _residuals(size=600, fault_from=600)
    t = t.copy()
    t[300] = t[10]                              # one old sample: update drops and counts it
    det = ResidualDetector(NAMES, commissioning_duration_s=0.3)
    list(feed_blocks(det, t, pos, vel, eff, wrench, qd))
    assert det.report().dropped_samples == 1
    with pytest.raises(ValueError, match='shape'):
        list(feed_blocks(det, t, pos[:, :3], vel, eff))
    assert not math.isnan(det.report().stamp)
