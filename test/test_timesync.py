"""Tests of latency statistics and the clock drift estimate on synthetic jittered streams."""
import math

import numpy as np
import pytest

from twin_bridge.timesync import (ClockDriftEstimator, LatencyWindow, TimeSync,
                                  TimeSyncConfigError)


def test_latency_window_matches_numpy_and_rolls_over():
    rng = np.random.default_rng(1)
    data = rng.exponential(0.001, 2500)
    w = LatencyWindow(window=1000)
    assert w.stats().count == 0 and math.isnan(w.stats().p50_s)
    for x in data[:400]:
        w.observe(x)
    s = w.stats()
    assert s.count == 400
    assert s.p50_s == pytest.approx(np.percentile(data[:400], 50))
    for x in data[400:]:
        w.observe(x)
    w.observe(math.nan)                        # ignored
    s = w.stats()
    last = data[-1000:]
    assert (s.count, s.total) == (1000, 2500)
    assert s.p50_s == pytest.approx(np.percentile(last, 50))
    assert s.p99_s == pytest.approx(np.percentile(last, 99))
    assert s.max_s == pytest.approx(last.max()) and s.mean_s == pytest.approx(last.mean())
    assert s.max_all_s == pytest.approx(data.max())
    w.reset()
    assert w.stats().total == 0


def synthetic_stream(rng, rate_ppm, offset_s, seconds, hz=1000.0, stamp0=1.7e9,
                     base_latency=3e-4):
    """Robot stamps and local receive times with one-sided, heavy-tailed latency."""
    stamps = stamp0 + np.arange(int(seconds * hz)) / hz
    latency = base_latency + rng.exponential(2e-4, stamps.size)
    spikes = rng.random(stamps.size) < 0.01
    latency[spikes] += rng.uniform(0.005, 0.05, spikes.sum())      # scheduler hiccups
    # A whole bin delayed (network stall): the robust fit must not follow it.
    stall = (stamps - stamp0 > 30.0) & (stamps - stamp0 < 31.0)
    latency[stall] += 0.02
    local = stamp0 + offset_s + (1.0 + rate_ppm * 1e-6) * (stamps - stamp0) + latency
    return stamps, local


@pytest.mark.parametrize('rate_ppm,offset_s', [(50.0, 0.25), (-120.0, -3.0), (0.0, 0.0)])
def test_drift_recovers_known_offset_and_rate(rate_ppm, offset_s):
    rng = np.random.default_rng(7)
    stamps, local = synthetic_stream(rng, rate_ppm, offset_s, seconds=120.0)
    est = ClockDriftEstimator(bin_s=1.0, window_bins=300)
    for s, r in zip(stamps.tolist(), local.tolist()):
        est.observe(s, r)
    e = est.estimate()
    assert e is not None and e.n_bins == 119
    assert e.rate_ppm == pytest.approx(rate_ppm, abs=1.0)
    # Offset at the newest stamp: true offset + drift so far + the minimum latency (3e-4 s).
    expected = offset_s + rate_ppm * 1e-6 * (stamps[-1] - stamps[0]) + 3e-4
    assert e.reference_stamp == stamps[-1]
    assert e.offset_s == pytest.approx(expected, abs=5e-5)
    assert e.spread_s < 5e-5
    # to_local maps a robot stamp onto the local clock (up to the minimum latency), also for
    # an older stamp, where less drift had accumulated.
    assert e.to_local(stamps[-1]) - stamps[-1] == pytest.approx(expected, abs=5e-5)
    assert e.to_local(stamps[0]) - stamps[0] == pytest.approx(offset_s + 3e-4, abs=5e-5)


def test_drift_needs_min_bins_and_resets_on_clock_restart():
    est = ClockDriftEstimator(bin_s=0.5, window_bins=10, min_bins=3)
    for k in range(1000):                          # 1 s of a 1 kHz stream: 1 closed bin
        est.observe(100.0 + k * 1e-3, 100.0 + k * 1e-3 + 0.001)
    assert est.estimate() is None
    for k in range(1000, 2000):
        est.observe(100.0 + k * 1e-3, 100.0 + k * 1e-3 + 0.001)
    e = est.estimate()
    assert e.n_bins == 3 and e.offset_s == pytest.approx(0.001) and abs(e.rate_ppm) < 1e-3
    # Sim time restarts at 0: the old line is dropped.
    est.observe(0.001, 0.0015)
    assert est.estimate() is None and est.n_samples == 1
    # Window: at most window_bins bins are kept.
    for k in range(20000):
        est.observe(0.002 + k * 1e-3, 0.002 + k * 1e-3)
    assert est.estimate().n_bins == 10


def test_sim_time_gives_zero_offset_and_drift():
    ts = TimeSync(drift_bin_s=0.1, drift_window_bins=50)
    for k in range(1, 3001):                       # sim time: stamps and clock agree
        t = k * 1e-3
        assert ts.observe(t, t) == 0.0
    s = ts.status()
    assert s['latency_p50_s'] == 0.0 and s['latency_samples'] == 3000
    assert s['clock_offset_s'] == pytest.approx(0.0, abs=1e-12)
    assert s['clock_drift_ppm'] == pytest.approx(0.0, abs=1e-6)
    assert ts.to_local(1.0) == pytest.approx(1.0)


def test_timesync_status_before_data_and_latency():
    ts = TimeSync()
    s = ts.status()
    assert math.isnan(s['latency_p50_s']) and math.isnan(s['clock_drift_ppm'])
    assert ts.to_local(5.0) == 5.0                 # no estimate yet: identity
    assert ts.observe(10.0, 10.003) == pytest.approx(0.003)
    assert ts.status()['latency_max_s'] == pytest.approx(0.003)
    ts.reset()
    assert ts.status()['latency_samples'] == 0


def test_config_errors():
    with pytest.raises(TimeSyncConfigError, match='window'):
        LatencyWindow(0)
    with pytest.raises(TimeSyncConfigError, match='bin_s'):
        ClockDriftEstimator(bin_s=-1.0)
    with pytest.raises(TimeSyncConfigError, match='min_bins'):
        ClockDriftEstimator(window_bins=3, min_bins=5)
    with pytest.raises(TimeSyncConfigError, match='min_bins'):
        ClockDriftEstimator(min_bins=1)
