"""
A streamed corrective move when the local clock misbehaves (ROS-free).

On the forward_position and joint_command interfaces the governed trajectory is played as
set-points (:class:`twin_bridge.corrective.SetpointStream`) on the node clock. Whatever that
clock does, no set-point may move a joint by more than its (scaled) velocity limit times the
time since the previous set-point: a clock that steps back or jumps forward stops the stream,
holding its last set-point.
"""
import numpy as np
import pytest

from twin_bridge.corrective import AnomalyEvent, CorrectivePolicy, SetpointStream, \
    SIM_CLOCK_LEAD_S
from twin_bridge.governor import JointLimits, SafetyGovernor, TrajectoryCommand
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import RobotModel

T0 = 1000.0          # local clock at approval, s
WALL0 = 50.0         # monotonic clock at approval, s
PERIOD = 0.01        # stream_rate_hz 100
VELOCITY_SCALE = 0.5


@pytest.fixture(scope='module')
def home_move():
    """Govern the audit's case: a 'home' move of the built-in arm, joint4 1.79 rad away."""
    limits = JointLimits.from_model(RobotModel.from_urdf(builtin_urdf()))
    governor = SafetyGovernor(limits, max_rate_hz=10.0, position_margin_rad=0.05,
                              velocity_scale=VELOCITY_SCALE)
    names = list(limits.names)
    q = 0.5 * (limits.lower + limits.upper)
    home = q.copy()
    home[3] = limits.lower[3] + 0.3
    proposal = CorrectivePolicy('home', hold_time_s=0.5, home_position=home).propose(
        AnomalyEvent('ERROR', 'joint4', 'collision', 2.0, T0), q, T0, np.zeros(len(q)),
        governor.position_range(names))
    decision = governor.govern(TrajectoryCommand(
        [(proposal.time_from_start_s, proposal.positions, proposal.velocities)], names),
        T0, True, q, np.zeros(len(q)))
    assert decision.allowed and decision.command.points[-1].time_from_start > 2.0
    return governor, decision.command, q, names


def stream_of(home_move, **kw):
    governor, command, q, names = home_move
    kw.setdefault('velocity_limit', governor.velocity_limit(names))
    kw.setdefault('wall', WALL0)
    return SetpointStream(command, q, T0, governor.position_range(names), np.zeros(len(q)),
                          **kw)


def play(stream, clock, walls=None):
    """Step the stream at the given local (and monotonic) times until it is done."""
    walls = walls if walls is not None else [WALL0 + (t - T0) for t in clock]
    out = []
    for now, wall in zip(clock, walls):
        setpoint = stream.step(now, wall)
        out.append((now, setpoint))
        if setpoint.done:
            break
    return out


def assert_never_faster_than_approved(start, out, vmax):
    """Each sent set-point moves at most vmax x the local time since the one before."""
    previous, t_prev = start, T0
    for now, setpoint in out:
        if setpoint.positions is None:
            continue
        step = np.abs(setpoint.positions - previous)
        dt = now - t_prev
        assert dt >= 0.0 or not step.any(), f'a new set-point on a clock that went back {dt}'
        assert (step <= vmax * (max(dt, 0.0) + 1e-6) + 1e-9).all(), (
            f'{step.max():.4f} rad in {dt:.4f} s at t={now - T0:.3f}: '
            f'{(step / vmax).max() / max(dt, 1e-12):.1f}x the limit')
        previous, t_prev = setpoint.positions, max(now, t_prev)


def test_a_steady_clock_streams_the_whole_move_at_the_limit(home_move):
    governor, command, q, names = home_move
    stream = stream_of(home_move)
    clock = [T0 + k * PERIOD for k in range(1, 400)]
    out = play(stream, clock)
    assert out[-1][1].done and out[-1][1].stop is None
    np.testing.assert_allclose(out[-1][1].positions, command.points[-1].positions)
    assert_never_faster_than_approved(q, out, governor.velocity_limit(names))


def test_a_clock_that_steps_back_stops_the_stream_holding_the_last_set_point(home_move):
    governor, _command, q, names = home_move
    stream = stream_of(home_move)
    # 0.4 s into the move the clock steps back 30 s (a sim reset, a clock set back) and runs on
    clock = [T0 + k * PERIOD for k in range(1, 40)] + [T0 - 30.0 + k * PERIOD for k in range(40)]
    walls = [WALL0 + k * PERIOD for k in range(1, 80)]
    out = play(stream, clock, walls)
    before, stopped = out[-2][1], out[-1][1]
    assert len(out) == 40 and stopped.done and stopped.stop == 'clock_back'
    assert 'stepped back 30' in stopped.reason
    # held where the last set-point was, at rest: no jump back to the start pose
    np.testing.assert_array_equal(stopped.positions, before.positions)
    assert not stopped.velocities.any()
    assert abs(before.positions[3] - q[3]) > 0.1           # the move was under way
    assert_never_faster_than_approved(q, out, governor.velocity_limit(names))
    assert stream.stopped == 'clock_back'
    later = stream.step(T0 - 29.0, WALL0 + 2.0)            # the stream stays stopped
    assert later.done and later.positions is None


def test_a_clock_that_jumps_forward_stops_the_stream_holding_the_last_set_point(home_move):
    governor, _command, q, names = home_move
    stream = stream_of(home_move)
    # 0.1 s into the move the clock jumps 5 s ahead in one 10 ms period of the monotonic clock
    clock = [T0 + k * PERIOD for k in range(1, 10)] + [T0 + 5.0, T0 + 5.01]
    walls = [WALL0 + k * PERIOD for k in range(1, 12)]
    out = play(stream, clock, walls)
    stopped = out[-1][1]
    assert len(out) == 10 and stopped.stop == 'clock_jump' and stopped.done
    assert 'jumped forward' in stopped.reason
    np.testing.assert_array_equal(stopped.positions, out[-2][1].positions)
    assert_never_faster_than_approved(q, out, governor.velocity_limit(names))


def test_a_set_point_beyond_the_limits_is_refused_whatever_computed_it(home_move):
    """The step check alone (no monotonic clock): each set-point against the one before."""
    governor, _command, q, names = home_move
    lower = 0.5 * governor.velocity_limit(names)     # a stream told half the approved limits
    stream = stream_of(home_move, wall=None, velocity_limit=lower)
    out = play(stream, [T0 + k * PERIOD for k in range(1, 400)], [None] * 399)
    stopped = out[-1][1]
    assert stopped.stop == 'too_fast' and "'joint4'" in stopped.reason and stopped.done
    np.testing.assert_array_equal(stopped.positions, out[-2][1].positions)
    assert_never_faster_than_approved(q, out, lower)


def test_a_sim_clock_faster_than_real_time_or_late_streams_on(home_move):
    """The timer runs on that clock: 10 ms of it per set-point, 2 ms of the monotonic clock."""
    governor, command, q, names = home_move
    stream = stream_of(home_move, clock_lead_s=SIM_CLOCK_LEAD_S)
    clock = [T0 + k * PERIOD for k in range(1, 400)]
    out = play(stream, clock, [WALL0 + (t - T0) / 5.0 for t in clock])
    assert out[-1][1].stop is None
    np.testing.assert_allclose(out[-1][1].positions, command.points[-1].positions)
    # /clock messages held up 60 ms by the transport, then the clock catches up at once
    stream = stream_of(home_move, clock_lead_s=SIM_CLOCK_LEAD_S)
    walls = [WALL0 + (t - T0) for t in clock]
    walls[20:26] = [walls[25]] * 6
    out = play(stream, clock, walls)
    assert out[-1][1].stop is None and len(out) > 200


def test_a_thread_paused_between_the_clock_readings_is_no_jump(home_move):
    """The monotonic clock is read before and after the local clock: a pause between is seen."""
    # every 10 ms; the 6th time the thread is paused 50 ms after the first monotonic reading
    real = [k * PERIOD for k in range(1, 400)]
    real = real[:5] + [r + 0.05 for r in real[5:]]
    clock = [T0 + r for r in real]
    after = [WALL0 + r for r in real]
    before = list(after)
    before[5] -= 0.05
    stream = stream_of(home_move)
    out = [stream.step(t, a, b) for t, a, b in zip(clock, after, before)]
    assert all(s.stop is None for s in out) and out[-1].done
    # with the monotonic reading before the clock only, the pause would look like a jump
    stream = stream_of(home_move)
    assert play(stream, clock, before)[-1][1].stop == 'clock_jump'


def test_a_stream_stopped_before_its_first_set_point_sends_nothing(home_move):
    stream = stream_of(home_move)
    first = stream.step(T0 - 1.0, WALL0 + PERIOD)
    assert first.stop == 'clock_back' and first.positions is None and first.done


def test_a_new_stream_is_checked_against_the_last_set_point_of_the_old_one(home_move):
    governor, command, q, names = home_move
    old = stream_of(home_move)
    for k in range(1, 20):
        old.step(T0 + k * PERIOD, WALL0 + k * PERIOD)
    # the clock then jumps 5 s: the old stream's path there is its end, 1.5 rad away
    now = T0 + 5.0
    start, velocity = old.setpoint(now)[:2]
    new = SetpointStream(command, start, now, governor.position_range(names), velocity,
                         velocity_limit=governor.velocity_limit(names), wall=WALL0 + 0.2,
                         previous=old.last)
    first = new.step(now + 0.001, WALL0 + 0.201)
    assert first.stop == 'clock_jump'
    np.testing.assert_array_equal(first.positions, old.last.positions)


def test_an_arm_inside_the_margin_is_not_pulled_to_the_range_at_once():
    """Set-points are clipped into the range widened to the start (as the governor checks)."""
    limits = JointLimits(('a', 'b'), [-1.0, -1.0], [1.0, 1.0], [1.0, 1.0], [10.0, 10.0])
    governor = SafetyGovernor(limits, max_rate_hz=10.0, position_margin_rad=0.1)
    start = np.array([0.95, 0.0])                 # 0.05 rad beyond the governed range
    decision = governor.govern(TrajectoryCommand([(0.5, [0.5, 0.0], [0.0, 0.0])]), T0, True,
                               start)
    assert decision.allowed, decision.reasons
    # the trajectory itself starts at the arm, not at the range's edge 0.05 rad away
    plain = SetpointStream(decision.command, start, T0, governor.position_range(('a', 'b')))
    assert abs(plain.setpoint(T0 + 0.001)[0][0] - 0.95) < 0.002
    stream = SetpointStream(decision.command, start, T0, governor.position_range(('a', 'b')),
                            velocity_limit=governor.velocity_limit(('a', 'b')), wall=WALL0)
    out = play(stream, [T0 + k * PERIOD for k in range(1, 200)])
    assert out[-1][1].stop is None and out[-1][1].positions.tolist() == [0.5, 0.0]
    assert_never_faster_than_approved(start, out, governor.velocity_limit(('a', 'b')))
