"""Tests of the staleness watchdog with injected (sim) times."""
import math

import pytest

from twin_bridge.watchdog import (NEVER, OK, STALE, StalenessWatchdog, Transition,
                                  WatchdogConfigError)


def test_never_ok_stale_ok_transitions():
    w = StalenessWatchdog(0.1, streams=['joint_states', 'wrench'])
    assert w.check(0.0) == {'joint_states': NEVER, 'wrench': NEVER}
    assert w.since('joint_states') is None
    for k in range(5):                           # 1 kHz stream from t = 1.000 to 1.004
        w.observe('joint_states', 1.0 + 0.001 * k, 1.0 + 0.001 * k - 0.0002)
    assert w.check(1.05)['joint_states'] == OK
    assert w.check(1.1037)['joint_states'] == OK
    # The newest stamp is 1.0038: stale once it is older than 0.1 s.
    assert w.check(1.2)['joint_states'] == STALE
    assert w.since('joint_states') == pytest.approx(1.1038)
    assert w.check(1.3)['joint_states'] == STALE     # no second transition
    w.observe('joint_states', 1.5, 1.4998)
    assert w.check(1.5)['joint_states'] == OK and w.since('joint_states') == 1.5
    assert w.check(1.5)['wrench'] == NEVER
    assert [(t.stream, t.old, t.new) for t in w.transitions] == [
        ('joint_states', NEVER, OK), ('joint_states', OK, STALE), ('joint_states', STALE, OK)]
    assert [t.time for t in w.transitions] == pytest.approx([1.0, 1.1038, 1.5])


def test_stale_gap_between_checks_is_recorded():
    w = StalenessWatchdog(0.1)
    w.observe('js', 1.0)
    w.observe('js', 1.5)                         # 0.5 s gap, no check in between
    assert w.check(1.5) == {'js': OK}
    assert w.transitions[-2] == Transition('js', 1.1, OK, STALE)
    assert w.transitions[-1] == Transition('js', 1.5, STALE, OK)


def test_delayed_messages_are_stale_by_stamp():
    # Samples keep arriving every ms but each is 0.25 s old: the mirror is not live.
    w = StalenessWatchdog(0.1)
    for k in range(10):
        t = 2.0 + 0.001 * k
        w.observe('js', t, t - 0.25)
    assert w.check(2.01) == {'js': STALE}
    assert w.age('js', 2.01) == pytest.approx(0.251)  # newest stamp 2.009 - 0.25
    # Without stamps only arrival is judged.
    w2 = StalenessWatchdog(0.1)
    w2.observe('js', 2.0)
    assert w2.check(2.05) == {'js': OK} and w2.age('js', 2.05) == pytest.approx(0.05)


def test_per_stream_timeout_and_all_ok():
    w = StalenessWatchdog(0.1, streams=['js'])
    w.add_stream('wrench', stale_timeout_s=0.5)
    assert not w.all_ok(0.0)
    w.observe('js', 1.0, 1.0)
    w.observe('wrench', 1.0, 1.0)
    assert w.all_ok(1.05)
    assert w.check(1.3) == {'js': STALE, 'wrench': OK}
    assert not w.all_ok(1.3) and w.all_ok(1.3, streams=['wrench'])
    assert w.streams == ['js', 'wrench']


def test_status_dict_and_reset():
    w = StalenessWatchdog(0.1)
    w.observe('js', 0.0005, 0.0004)             # sim time starting near 0
    s = w.status(0.05)
    assert s['js.state'] == OK and s['js.age_s'] == pytest.approx(0.0496)
    assert s['js.since'] == 0.0005
    w.reset(now=0.06)
    assert w.check(0.07) == {'js': NEVER} and w.age('js', 0.07) == math.inf
    assert w.transitions[-1] == Transition('js', 0.06, OK, NEVER)
    # After a sim-time restart the stream comes back from NEVER.
    w.observe('js', 0.001, 0.001)
    assert w.check(0.002) == {'js': OK}


def test_unknown_stream_added_on_first_observe():
    w = StalenessWatchdog()
    w.observe('extra', 3.0)
    assert w.check(3.0) == {'extra': OK}
    with pytest.raises(KeyError):
        w.since('missing')


def test_config_errors():
    for bad in (0.0, -1.0, math.nan, math.inf, 'x'):
        with pytest.raises(WatchdogConfigError, match='stale_timeout_s'):
            StalenessWatchdog(bad)
    with pytest.raises(WatchdogConfigError, match="'js'"):
        StalenessWatchdog().add_stream('js', stale_timeout_s=-2.0)


def test_stamps_steadily_behind_the_clock_are_named_but_stay_stale():
    """A robot clock 3 s behind: samples arrive in time, the state's age is unknown."""
    w = StalenessWatchdog(0.1, streams=['joint_states', 'wrench'])
    for k in range(3000):                        # 1 kHz for 3 s, stamps 3 s behind
        t = 10.0 + 0.001 * k
        w.observe('joint_states', t, t - 3.0)
    now = 12.9995
    assert w.check(now)['joint_states'] == STALE          # conservative: nothing may act on it
    assert w.stamp_lag('joint_states', now) == pytest.approx(3.0)
    assert w.status(now)['joint_states.stamps_behind_s'] == pytest.approx(3.0)
    assert w.stamp_lag('wrench', now) is None             # never received
    assert w.stamp_lag('joint_states', 13.2) is None      # arrivals stopped: plain stale
    # the clocks are synchronized (chrony steps the robot's): fresh at once, no lag named
    w.observe('joint_states', 13.0, 12.9998)
    assert w.check(13.0)['joint_states'] == OK
    assert w.stamp_lag('joint_states', 13.0) is None
    assert w.status(13.0)['joint_states.stamps_behind_s'] == 0.0


def test_a_few_late_samples_are_no_clock_offset():
    w = StalenessWatchdog(0.1)
    for k in range(500):                         # in time, then one sample delivered 0.3 s late
        t = 1.0 + 0.001 * k
        w.observe('joint_states', t, t - 0.0002)
    w.observe('joint_states', 1.8, 1.5)
    assert w.stamp_lag('joint_states', 1.8) is None
