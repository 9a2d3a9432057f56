"""The reports' pieces run after the robot's samples (robot_twin/nodes/idle_work.py)."""
import pytest

from robot_twin.nodes.idle_work import IdleWork


class Clock:
    """A steady clock the test moves by hand."""

    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def report(log, name, pieces):
    """Build a report of ``pieces`` pieces that writes ``name:i`` into ``log`` as each runs."""
    for i in range(pieces):
        if i:
            yield
        log.append(f'{name}:{i}')


def sample(work, clock, period=0.001, took=0.0002):
    """Take one joint-state sample: ``took`` s of work, then the call; the next one a period on."""
    started = clock.t
    clock.t += took
    work.after_sample(started, period)
    clock.t = started + period


def streaming(clock, samples=5):
    """Return an IdleWork that has seen a steady 1 kHz stream."""
    work = IdleWork(clock=clock)
    for _ in range(samples):
        sample(work, clock)
    return work


def test_a_report_runs_whole_while_no_sample_comes():
    clock, log = Clock(), []
    work = IdleWork(clock=clock)
    work.submit(report(log, 'a', 3))          # before the first sample
    assert log == ['a:0', 'a:1', 'a:2'] and work.pending == 0 and work.run_whole == 1
    work = streaming(clock)
    clock.t += 0.5                            # the robot went silent
    work.submit(report(log, 'b', 2))
    assert log[-2:] == ['b:0', 'b:1'] and work.pending == 0
    # a report left waiting when the robot stops runs whole, before the next one
    sample(work, clock)
    sample(work, clock)
    work.submit(report(log, 'c', 2))
    assert log[-2:] == ['b:0', 'b:1'] and work.pending == 1
    clock.t += 0.1
    work.submit(report(log, 'd', 2))
    assert log[-4:] == ['c:0', 'c:1', 'd:0', 'd:1'] and work.pending == 0


def test_one_piece_after_every_second_quiet_sample_in_order():
    clock, log = Clock(), []
    work = streaming(clock)
    work.submit(report(log, 'a', 2))
    work.submit(report(log, 'b', 2))
    assert log == [] and work.pending == 2    # nothing runs where the timers fire
    # a piece after every second sample: the thread has a whole period to itself in between
    for expected in (['a:0'], ['a:0'], ['a:0', 'a:1'], ['a:0', 'a:1'],
                     ['a:0', 'a:1', 'b:0'], ['a:0', 'a:1', 'b:0'], ['a:0', 'a:1', 'b:0', 'b:1']):
        sample(work, clock)
        assert log == expected                # reports keep their order
    assert work.pending == 0 and work.pieces_run == 4
    sample(work, clock)
    sample(work, clock)                       # nothing left: nothing runs
    assert work.counters() == {'reports.pieces_after_samples': 4, 'reports.run_whole': 0}


def test_the_oldest_of_too_many_waiting_reports_runs_whole():
    clock, log = Clock(), []
    work = streaming(clock)
    for name in 'abcd':
        work.submit(report(log, name, 2))
    assert log == []
    work.submit(report(log, 'e', 2))
    assert log == ['a:0', 'a:1'] and work.pending == 4 and work.run_whole == 1


@pytest.mark.parametrize('case', ['long sample', 'backlog'])
def test_a_piece_waits_for_a_quiet_sample_but_not_for_ever(case):
    clock, log = Clock(), []
    work = streaming(clock)
    work.submit(report(log, 'a', 2))

    def unquiet():
        if case == 'long sample':             # a detector block closed: 0.5 ms of work
            sample(work, clock, took=0.0005)
        else:                                 # the thread catches up: no idle time before it
            started = clock.t
            clock.t += 0.0002
            work.after_sample(started, 0.001)  # ... and the next one waits already

    def stall():                              # 5 ms of a sample's work (a long one)
        started = clock.t
        clock.t += 0.005
        work.after_sample(started, 0.001)

    stall()                                   # ... and then the samples it held
    for _ in range(5):
        unquiet()
    assert log == []                          # held back after each of them
    clock.t += 0.0008                         # the thread has caught up: idle before the next
    sample(work, clock)
    assert log == ['a:0']
    work.submit(report(log, 'b', 2))          # behind the rest of 'a'
    assert log == ['a:0']
    submitted = clock.t
    stall()
    while len(log) < 3 and clock.t - submitted < 0.1:
        unquiet()
    # 'a' ran on once it had waited max_wait_s, then 'b' after the first sample once it had
    # waited as long, not before
    assert log == ['a:0', 'a:1', 'b:0']
    assert work.max_wait_s - 0.0001 < clock.t - submitted < work.max_wait_s + 0.0015


def test_a_report_that_fails_is_dropped_and_the_next_goes_on():
    clock, log = Clock(), []
    work = streaming(clock)

    def failing():
        log.append('x:0')
        yield
        raise RuntimeError('publisher gone')
    work.submit(failing())
    sample(work, clock)
    sample(work, clock)                       # (the rest after a piece)
    started = clock.t
    with pytest.raises(RuntimeError, match='publisher gone'):
        sample(work, clock)
    clock.t = started + 0.001
    assert work.pending == 0
    work.submit(report(log, 'b', 2))
    for _ in range(4):                        # (the failed piece's rest, then one in two)
        sample(work, clock)
    assert log == ['x:0', 'b:0', 'b:1']


def test_a_slower_stream_gets_its_reports_whole():
    clock, log = Clock(), []
    work = IdleWork(clock=clock)
    for _ in range(5):
        sample(work, clock, period=0.01)      # 100 Hz: a whole report fits between samples
    assert work.period_s == pytest.approx(0.01)
    work.submit(report(log, 'a', 2))
    assert log == ['a:0', 'a:1'] and work.pending == 0


def test_the_robots_stamp_period_keeps_a_twin_behind_a_100_hz_robot_from_cutting_reports():
    """Samples taken back to back (a backlog) are no faster robot: the stamps say 100 Hz."""
    clock, log = Clock(), []
    work = IdleWork(clock=clock)
    for _ in range(5):                        # 100 Hz, each sample taken as it comes
        sample(work, clock, period=0.01)
    for _ in range(150):                      # then a backlog of 1.5 s, taken back to back
        sample(work, clock, period=0.01)
        clock.t -= 0.0098
    work.submit(report(log, 'a', 2))
    assert work.period_s == pytest.approx(0.01)
    assert log == ['a:0', 'a:1'] and work.run_whole == 1     # whole, as at 100 Hz


def test_reports_run_whole_until_the_stamps_give_the_period_and_after_it_is_forgotten():
    clock, log = Clock(), []
    work = IdleWork(clock=clock)
    sample(work, clock, period=0.0)           # the first stamp: no step yet
    assert work.period_s is None
    work.submit(report(log, 'a', 2))
    assert log == ['a:0', 'a:1']
    for _ in range(3):
        sample(work, clock)                   # 1 kHz from the stamps: pieces
    work.submit(report(log, 'b', 2))
    assert log == ['a:0', 'a:1'] and work.pending == 1
    clock.t -= 0.0009                         # (no quiet gap: nothing runs after it ...)
    work.after_sample(clock.t, 0.0)           # ... and the stream's history was reset
    assert log == ['a:0', 'a:1', 'b:0', 'b:1'] and work.pending == 0
