"""The fused detector: learned thresholds, group scores, persistence, no end-of-learning step."""
import numpy as np
import pytest

from twin_anomaly.fusion import Channel, FusedDetector, FusionConfig

BLOCK = 0.02


def detector(**config):
    channels = [Channel('a.level', 0, 'signed'), Channel('a.wear', 0, 'signed', drift=True),
                Channel('b.level', 1, 'signed'), Channel('b.stuck', 1, 'count', floor=8.0),
                Channel('b.hint', 1, 'upper', alarm=False),
                Channel('s.late', 2, 'upper', floor=5.0)]
    return FusedDetector(channels, ('a', 'b', 's'), FusionConfig(block_s=BLOCK, **config))


def nominal(rng, blocks):
    x = rng.standard_normal((blocks, 6))
    x[:, 1] = 0.3 * x[:, 1] + 0.05                     # another scale and centre
    x[:, 3] = rng.integers(0, 3, blocks)               # repeat runs of 0..2 samples
    return x


def learned(seed=0, blocks=1500):
    rng = np.random.default_rng(seed)
    det = detector()
    det.start_learning()
    data = nominal(rng, blocks)
    for k, x in enumerate(data):
        det.learn(k * BLOCK, x)
    det.finish_learning()
    return det, rng, blocks * BLOCK


def monitor(det, rows, t0):
    alarms = []
    for k, x in enumerate(rows):
        det.update(t0 + k * BLOCK, x)
        alarms.append(det.alarm.copy())
    return np.array(alarms)


def test_nominal_data_raises_no_alarm_and_scores_stay_low():
    det, rng, t0 = learned()
    alarms = monitor(det, nominal(rng, 15000), t0)      # 5 minutes
    assert not alarms.any()
    assert det.score.max() < 1.0


def slow_channel(rng, blocks, memory_s=5.0):
    """Return a statistic with memory: AR(1), unit variance, correlation time ``memory_s``."""
    a = np.exp(-BLOCK / memory_s)
    e = rng.standard_normal(blocks) * np.sqrt(1.0 - a * a)
    x = np.empty(blocks)
    x[0] = rng.standard_normal()
    for k in range(1, blocks):
        x[k] = a * x[k - 1] + e[k]
    return x


def test_a_slow_channel_with_its_spread_known_raises_no_false_alarm():
    """
    The position-velocity sum at 100 Hz: a statistic with 5 s of memory learned over 20 s.

    The window holds a handful of independent values, so their spread and 0.999 quantile
    fall short of where the statistic goes over hours: learned from the blocks alone, two of
    these four robots raise false alarms within 20 minutes. Given the spread its producer
    knows (the monitor: from the sensor noise), none does, and a step of 12 spreads is still
    found.
    """
    unaided = 0
    for seed in range(4):
        for known in (None, 1.0):
            rng = np.random.default_rng(100 + seed)
            det = FusedDetector([Channel('j.pv', 0, 'signed')], ('j',),
                                FusionConfig(block_s=BLOCK))
            det.start_learning()
            for k, x in enumerate(slow_channel(rng, 1000)):       # 20 s
                det.learn(k * BLOCK, [x])
            det.finish_learning(spread=None if known is None else [known])
            lt = det.learned
            alarms = monitor(det, slow_channel(rng, 60000)[:, None], 20.0)     # 20 min
            if known is None:
                unaided += alarms.any()
                continue
            assert lt['scale'][0] >= 1.0 and lt['level_quantile'][0] >= 3.29 * 1.0 / lt['scale'][0]
            assert not alarms.any(), (seed, float(det.score.max()))
            step = slow_channel(rng, 100)[:, None] + 12.0
            assert monitor(det, step, 1220.0).any()
    assert unaided == 2            # what the known spread is for


def test_thresholds_are_margin_times_quantile_with_floors():
    det, _, _ = learned()
    lt = det.learned
    level = lt['level_threshold']
    assert level[0] == pytest.approx(max(3.0, 2.5 * lt['level_quantile'][0]))
    assert level[3] == 8.0                               # count: 2.5 x 2 samples < floor 8
    assert lt['center'][1] == pytest.approx(0.05, abs=0.03)
    assert lt['scale'][1] == pytest.approx(0.3, rel=0.1)
    assert np.isinf(lt['drift_threshold'][0]) and np.isfinite(lt['drift_threshold'][1])


def test_a_step_alarms_its_group_only_after_persistence_and_clears_with_hysteresis():
    det, rng, t0 = learned()
    rows = nominal(rng, 200)
    rows[50:100, 2] += 25.0                               # group b, blocks 50..99
    alarms = monitor(det, rows, t0)
    first = int(np.argmax(alarms[:, 1]))
    assert not alarms[:, 0].any() and not alarms[:, 2].any()
    assert first == 51                                    # persistence 0.02 s: one more block
    status = det.group_status(1)
    assert status.name == 'b'
    assert alarms[99, 1] and not alarms[-1, 1]            # cleared within clear_s after the end


def test_the_drift_channel_finds_a_slow_ramp_the_level_misses():
    det, rng, t0 = learned()
    rows = nominal(rng, 1500)
    rows[:, 1] += np.linspace(0.0, 0.6, 1500)            # up to 2 learned scales over 30 s
    alarms = monitor(det, rows, t0)
    assert alarms[:, 0].any()
    assert det.group_status(0).detector == 'drift'


def test_a_count_channel_alarms_above_its_floor_and_evidence_never_does():
    det, rng, t0 = learned()
    rows = nominal(rng, 50)
    rows[20:, 3] = 40.0                                   # a frozen sensor: 40-sample runs
    rows[:, 4] = 1e3                                      # evidence-only channel: no alarm
    alarms = monitor(det, rows, t0)
    assert alarms[21:, 1].all() and not alarms[:20, 1].any()
    assert det.channel_ratios()[4] > 1.0                  # its ratio is still computed


def test_monitoring_continues_from_the_learned_state_without_a_step():
    """The end of learning is no event for the statistics (the reported bug's class)."""
    rng = np.random.default_rng(5)
    data = nominal(rng, 1600)
    det = detector()
    det.start_learning()
    for k, x in enumerate(data[:1500]):
        det.learn(k * BLOCK, x)
    det.finish_learning()
    ewma_at_end = det.ewma.copy()
    reference = detector()
    reference.load_dict(det.to_dict())
    # replaying the learned blocks through the loaded detector ends in the same state
    for k, x in enumerate(data[:1500]):
        reference.update(k * BLOCK, x)
    np.testing.assert_allclose(ewma_at_end, reference.ewma, atol=1e-9)
    for k, x in enumerate(data[1500:]):
        det.update((1500 + k) * BLOCK, x)
        reference.update((1500 + k) * BLOCK, x)
    np.testing.assert_allclose(det.ratios, reference.ratios, atol=1e-9)


def test_a_saved_detector_loads_with_the_same_thresholds():
    det, _, _ = learned()
    other = detector()
    other.load_dict(det.to_dict())
    assert other.monitoring
    for key in ('level_threshold', 'drift_threshold', 'center', 'scale'):
        np.testing.assert_array_equal(other.learned[key], det.learned[key])
    with pytest.raises(ValueError, match='other channels'):
        FusedDetector([Channel('x', 0, 'signed')], ('x',)).load_dict(det.to_dict())


def test_a_channel_without_data_is_not_judged():
    det, rng, t0 = learned()
    rows = nominal(rng, 100)
    rows[:, 5] = np.nan                                   # no latency measured
    rows[60:, 0] = np.nan
    monitor(det, rows, t0)
    assert det.channel_ratios()[0] == 0.0 and det.channel_ratios()[5] == 0.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match='threshold_margin'):
        FusionConfig(threshold_margin=0.5)
    with pytest.raises(ValueError, match='kind'):
        FusedDetector([Channel('x', 0, 'odd')], ('g',))
    with pytest.raises(ValueError, match='group'):
        FusedDetector([Channel('x', 3, 'signed')], ('g',))


@pytest.mark.parametrize('capacity', [16384, 64])
def test_the_end_of_learning_never_raises_a_score(capacity):
    """
    Keep scores within what was learned right after learning, also with decimated blocks.

    A restart of smoothed statistics there would judge raw single blocks.
    """
    worst = 0.0
    for seed in range(10):
        rng = np.random.default_rng(seed)
        det = detector(capacity=capacity)
        det.start_learning()
        for k, x in enumerate(nominal(rng, 1500)):
            det.learn(k * BLOCK, x)
        det.finish_learning()
        assert det.learned['stride'] == (1 if capacity > 1500 else 32)
        for k, x in enumerate(nominal(rng, 50)):                  # the first second
            det.update((1500 + k) * BLOCK, x)
            assert not det.alarm.any()
            worst = max(worst, det.score.max())
    assert worst < 0.8
