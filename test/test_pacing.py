"""The pacing cores of the plant: real-time schedule statistics and the lock-step gate."""
import math

import pytest

from twin_sim.pacing import JITTER_EDGES_US, LockstepGate, RealtimePacer, steps_at_least


def test_pacer_counts_misses_and_bins_lateness():
    pacer = RealtimePacer(0.001, max_lag_s=0.02, window=4)
    pacer.reset(10.0)
    assert pacer.due == pytest.approx(10.001)
    lateness_us = [5, 60, 150, 999, 1001, 2500]       # a full period (1000 µs) late: a miss
    for late in lateness_us:
        due = pacer.due
        assert pacer.done(due + late * 1e-6) == pytest.approx(late * 1e-6)
    stats = pacer.stats()
    assert stats['steps'] == 6 and stats['deadline_misses'] == 2
    assert stats['miss_fraction'] == pytest.approx(2 / 6)
    expected = [0] * len(JITTER_EDGES_US)
    for late in lateness_us:
        expected[max(k for k, e in enumerate(JITTER_EDGES_US) if e <= late)] += 1
    assert stats['jitter_hist_counts'] == expected
    # percentiles over the window (last 4 steps)
    assert stats['jitter_max_us'] == pytest.approx(2500)
    assert stats['jitter_p50_us'] == pytest.approx((999 + 1001) / 2)
    assert pacer.due == pytest.approx(10.001 + 6 * 0.001)


def test_pacer_catches_up_on_a_backlog_instead_of_bursting_it_out():
    pacer = RealtimePacer(0.001)
    pacer.reset(0.0)
    assert pacer.lag(0.0005) < 0.0                     # early: sleep
    assert pacer.lag(0.0505) == pytest.approx(0.0495)   # starved for 49.5 ms
    assert pacer.catch_up(0.0505) == 49                 # steps taken at once, samples unsent
    assert pacer.overruns == 1 and pacer.dropped == 49
    assert pacer.due == pytest.approx(0.050)            # the pending step is the newest due
    assert pacer.done(0.0505) == pytest.approx(0.0005)
    assert pacer.stats()['dropped'] == 49
    assert math.isnan(RealtimePacer(0.001).stats()['jitter_p99_us'])
    with pytest.raises(ValueError, match='period_s'):
        RealtimePacer(0.0)


def test_lockstep_gate_waits_for_the_controller_then_resends_unanswered_samples():
    gate = LockstepGate(settle_s=0.5, timeout_s=1.0)
    assert gate.tick(0.0, False) is None
    assert gate.tick(0.1, True) is None              # seen: settle
    assert gate.tick(0.3, False) is None             # gone again: start over
    assert gate.tick(0.4, True) is None
    assert gate.tick(0.8, True) is None
    assert gate.tick(0.9, True) == LockstepGate.START
    assert gate.started
    gate.sent(1.0)                                   # a command advanced the plant
    assert gate.tick(1.9, True) is None
    assert gate.tick(2.1, True) == LockstepGate.RESEND
    assert gate.tick(2.5, True) is None and gate.resends == 1
    gate.reset()
    assert not gate.started and gate.tick(3.0, True) is None


def test_steps_at_least_a_lateness_from_the_cumulative_histogram():
    pacer = RealtimePacer(0.001)
    for late in (0.0, 0.004, 0.012, 0.012, 0.025):
        pacer.done(pacer.due + late)
    stats = pacer.stats()
    assert steps_at_least(stats, 10000) == 3 and steps_at_least(stats, 20000) == 1
    text = {k: ','.join(str(v) for v in stats[k])
            for k in ('jitter_hist_edges_us', 'jitter_hist_counts')}     # as in plant status
    assert steps_at_least(text, 10000) == 3
    assert steps_at_least({}, 10000) == 0
    assert steps_at_least({'jitter_hist_edges_us': '0,x', 'jitter_hist_counts': '1,2'}, 0) == 0
