"""Unit tests of the small bridge cores: the corrective policy and the robot intake."""
import math

import numpy as np
import pytest

from twin_bridge.corrective import AnomalyEvent, CorrectivePolicy, SetpointStream
from twin_bridge.governor import JointLimits, SafetyGovernor, TrajectoryCommand
from twin_bridge.intake import JOINTS, RobotIntake

NAMES = ['j1', 'j2', 'j3']


def event(level, since=10.0, joint='j2'):
    return AnomalyEvent(level=level, joint=joint, fault_type='friction_like', score=2.0,
                        since=since)


def test_hold_is_proposed_once_per_episode():
    policy = CorrectivePolicy(hold_time_s=0.5)
    q = np.array([0.1, -0.2, 0.3])
    first = policy.propose(event('ERROR'), q)
    assert first is not None and first.kind == 'trajectory'
    assert np.array_equal(first.positions, q) and np.array_equal(first.velocities, np.zeros(3))
    assert first.time_from_start_s == 0.5 and 'j2' in first.reason
    assert policy.propose(event('ERROR'), q) is None            # same episode: no repeat
    # the top joint (and so the robot-level since) changes inside the episode: still no repeat
    assert policy.propose(event('ERROR', since=11.0, joint='j3'), q) is None
    assert policy.propose(event('OK'), q) is None               # episode over
    assert policy.propose(event('ERROR', since=20.0), q) is not None   # a new one acts again


def test_a_refused_proposal_is_retried_after_retry_s_only():
    policy = CorrectivePolicy(retry_s=1.0)
    q = np.zeros(3)
    assert policy.propose(event('ERROR'), q, now=5.0) is not None
    policy.refused(5.0)                                        # e.g. the state was stale
    assert policy.propose(event('ERROR'), q, now=5.5) is None  # not at the topic's rate
    assert policy.propose(event('ERROR'), q, now=6.0) is not None
    assert policy.propose(event('ERROR'), q, now=9.0) is None  # sent: once per episode


def test_policy_ignores_warnings_and_leaves_a_missing_state_to_the_governor():
    policy = CorrectivePolicy()
    assert policy.propose(event('WARN'), np.zeros(3)) is None
    assert CorrectivePolicy(trigger_level='WARN').propose(event('WARN'), np.zeros(3))
    # a joint never received: proposed all the same, so that the governor refuses it for
    # want of state (audited, retried) instead of the anomaly going without any trace
    q = np.array([0.0, math.nan, 0.0])
    proposal = policy.propose(event('ERROR'), q, 1.0, np.zeros(3))
    governor = SafetyGovernor(JointLimits(NAMES, [-1.0] * 3, [1.0] * 3, [1.0] * 3, [5.0] * 3))
    decision = governor.govern(TrajectoryCommand(
        [(proposal.time_from_start_s, proposal.positions, proposal.velocities)]), 1.0, True, q)
    assert not decision.allowed and decision.cause == 'no_state' and 'j2' in decision.reasons[0]


def test_a_hold_of_a_moving_arm_decelerates_evenly_to_rest():
    # j1 runs at 0.8 rad/s, j2 at -0.4, j3 rests: a target at q itself would make the
    # controller's cubic overshoot it and come back; the stop is q + v T / 2, reached at rest
    q, v = np.array([0.1, -0.2, 0.3]), np.array([0.8, -0.4, 0.0])
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    stop = CorrectivePolicy(hold_time_s=0.5).propose(event('ERROR'), q, 1.0, v, (lo, hi))
    assert stop.time_from_start_s == 0.5 and 'decelerate' in stop.reason
    np.testing.assert_allclose(stop.positions, q + 0.25 * v)
    # the cubic from (q, v) to it slows linearly: no reversal, no overshoot
    s = np.linspace(0.0, 1.0, 201)[:, None]
    T, d = 0.5, stop.positions - q
    x = (3 * s ** 2 - 2 * s ** 3) * d + (s ** 3 - 2 * s ** 2 + s) * T * v
    speed = np.diff(x, axis=0) / (T / 200)
    assert (speed * np.sign(v + (v == 0)) >= -1e-9).all()                # never backwards
    assert (np.abs(x) <= np.abs(d) + 1e-12).all()                          # never beyond
    # running at 1.6 rad/s with 0.1 rad to its limit: the stop is shortened to fit the range
    near = CorrectivePolicy(hold_time_s=0.5).propose(
        event('ERROR'), np.array([0.9, 0.0, 0.0]), 1.0, np.array([1.6, 0.0, 0.0]), (lo, hi))
    assert near.time_from_start_s == pytest.approx(0.125)
    assert near.positions[0] == pytest.approx(1.0) and near.positions[0] <= 1.0
    # an unknown velocity (NaN) is taken as rest; an arm at rest holds where it is
    rest = CorrectivePolicy().propose(event('ERROR'), q, 1.0, np.array([math.nan, 0.0, 0.0]),
                                      (lo, hi))
    assert np.array_equal(rest.positions, q) and 'hold position' in rest.reason


def test_a_streamed_stop_runs_the_spline_from_the_arms_velocity():
    # forward_position / joint_command: the set-points follow the cubic the governor checked,
    # starting at the arm's position and velocity (no instant stop, no step back)
    q, v = np.array([0.1, -0.2, 0.3]), np.array([0.8, -0.4, 0.0])
    lo, hi = np.full(3, -1.0), np.full(3, 1.0)
    governor = SafetyGovernor(JointLimits(NAMES, lo, hi, [1.0] * 3, [5.0] * 3))
    stop = CorrectivePolicy(hold_time_s=0.5).propose(event('ERROR'), q, 1.0, v, (lo, hi))
    decision = governor.govern(TrajectoryCommand(
        [(stop.time_from_start_s, stop.positions, stop.velocities)]), 1.0, True, q, v)
    assert decision.allowed, decision.reasons
    stream = SetpointStream(decision.command, q, 1.0, (lo, hi), v)
    first, velocity, done = stream.setpoint(1.001)
    np.testing.assert_allclose(velocity, v, atol=0.01)                 # at the arm's speed
    np.testing.assert_allclose(first, q + 0.001 * v, atol=1e-5)        # just ahead of it
    points = np.array([stream.setpoint(1.0 + t)[0] for t in np.linspace(0.0, 0.6, 61)])
    steps = np.diff(points, axis=0)
    assert (steps[:, 0] >= -1e-12).all() and (steps[:, 1] <= 1e-12).all()   # never back
    np.testing.assert_allclose(points[-1], stop.positions)
    assert stream.setpoint(1.6)[2]


@pytest.mark.parametrize('kwargs, name', [({'policy': 'retreat'}, 'policy'),
                                          ({'hold_time_s': 0.0}, 'hold_time_s'),
                                          ({'trigger_level': 'OK'}, 'trigger_level'),
                                          ({'retry_s': 0.0}, 'retry_s')])
def test_policy_rejects_bad_settings_by_name(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CorrectivePolicy(**kwargs)


def test_intake_maps_validates_and_watches():
    intake = RobotIntake(NAMES, stale_timeout_s=0.1, max_future_s=0.1)
    assert not intake.state_ok(1.0)                                  # nothing heard yet
    assert intake.joint_state(['j3', 'j1', 'j2'], [3.0, 1.0, 2.0], [], [], 1.0, 1.0) is None
    assert np.array_equal(intake.mapper.position, [1.0, 2.0, 3.0])  # model order
    assert intake.wrench_sample([0, 0, -9.81, 0, 0, 0], 1.0, 1.0) is None
    assert intake.state_ok(1.05)
    assert not intake.state_ok(1.5)                                  # both streams stale
    reason = intake.joint_state(['j1', 'j9'], [0.0, 0.0], [], [], 1.6, 1.6)
    assert "unknown joint 'j9'" in reason
    assert intake.joint_state(['j1'], [math.nan], [], [], 1.7, 1.7) is not None
    counters = intake.counters()
    assert counters['joint_states.unknown_joint'] == 1
    assert counters['joint_states.nonfinite'] == 1
    assert counters['joint_states.accepted'] == 1 and counters['wrench.accepted'] == 1
    assert np.array_equal(intake.mapper.position, [1.0, 2.0, 3.0])  # rejected: unchanged
    assert intake.joint_state(NAMES, [1.0, 2.0, 3.0], [], [], 1.8, 1.8) is None
    sample = intake.sample((1, 800000000))
    assert sample.refused_before == 2                # the two refused since the first one
    assert intake.joint_state(NAMES, [1.0, 2.0, 3.0], [], [], 1.9, 1.9) is None
    assert intake.sample((1, 900000000)).refused_before == 0
    # taken 0.1 s of stamps apart: at 0.1 s on the caller's clock it came when due; at 0.01 s
    # it had been waiting (the caller was catching up on a backlog)
    for stamp, taken, queued in ((2.0, 50.0, False), (2.1, 50.1, False), (2.2, 50.11, True),
                                 (2.3, 50.2, False)):
        assert intake.joint_state(NAMES, [1.0, 2.0, 3.0], [], [], stamp, stamp) is None
        sec, frac = divmod(stamp, 1.0)
        assert intake.sample((int(sec), int(round(frac * 1e9))), taken).queued is queued
    intake.reset(2.0)
    assert intake.counters()['joint_states.accepted'] == 0 and intake.latest_wrench is None


def test_continuous_joints_reported_wrapped_come_out_unwrapped():
    # j2 turns on and on at 2 rad/s; the robot reports its angle wrapped into [-pi, pi)
    intake = RobotIntake(NAMES, with_wrench=False, continuous_joints=['j2'])
    stamps = np.arange(1, 2001) * 0.005            # 10 s at 200 Hz: more than three turns
    true = 0.3 + 2.0 * stamps
    out = []
    for stamp, angle in zip(stamps, true):
        wrapped = (angle + math.pi) % (2.0 * math.pi) - math.pi
        assert intake.joint_state(NAMES, [0.5, wrapped, -0.5], [], [], stamp, stamp) is None
        sec, frac = divmod(stamp, 1.0)
        sample = intake.sample((int(sec), int(round(frac * 1e9))))
        out.append(sample.position.copy())
    out = np.array(out)
    np.testing.assert_allclose(out[:, 1], true, atol=1e-9)      # no jump of 2 pi anywhere
    assert np.all(out[:, 0] == 0.5) and np.all(out[:, 2] == -0.5)   # others untouched
    assert np.array_equal(intake.mapper.position, [0.5, (true[-1] + math.pi) % (2 * math.pi)
                                                   - math.pi, -0.5])   # the robot's own value
    intake.reset(20.0)                                # a new stream starts from its own angle
    intake.joint_state(NAMES, [0.5, -3.0, -0.5], [], [], 30.0, 30.0)
    assert intake.sample((30, 0)).position[1] == -3.0
    with pytest.raises(ValueError, match='not model joints'):
        RobotIntake(NAMES, continuous_joints=['j9'])


def test_intake_without_wrench_only_needs_joints():
    intake = RobotIntake(NAMES, with_wrench=False)
    intake.joint_state(NAMES, [0.0, 0.0, 0.0], [], [], 5.0, 5.0)
    assert intake.state_ok(5.01)


def test_setpoint_stream_keeps_the_governed_timing():
    from twin_bridge.corrective import SetpointStream
    from twin_bridge.governor import JointLimits, SafetyGovernor, TrajectoryCommand
    limits = JointLimits(('a', 'b'), [-1.0, -1.0], [1.0, 1.0], [1.0, 1.0], [10.0, 10.0])
    g = SafetyGovernor(limits, max_rate_hz=10.0, position_margin_rad=0.1, velocity_scale=0.5)
    # asks for 1.6 rad in 0.1 s (16 rad/s) and a target beyond the limit: slowed and clamped
    d = g.govern(TrajectoryCommand([(0.1, [0.8, 5.0])]), 1.0, True, [-0.8, 0.0])
    assert d.allowed and d.command.points[-1].positions.tolist() == [0.8, 0.9]
    stream = SetpointStream(d.command, [-0.8, 0.0], 1.0, g.position_range(('a', 'b')))
    assert stream.duration_s == pytest.approx(3.2)       # 1.6 rad at 0.5 rad/s
    previous, t = np.array([-0.8, 0.0]), 1.0
    while True:
        q, v, done = stream.setpoint(t)
        assert (np.abs(q - previous) <= 0.5 * 0.01 + 1e-12).all()   # never faster than approved
        assert (np.abs(v) <= 0.5 + 1e-12).all() and (q <= 0.9).all() and (q >= -0.9).all()
        previous, t = q, t + 0.01
        if done:
            break
    assert q.tolist() == [0.8, 0.9] and v.tolist() == [0.0, 0.0] and t > 4.1


def test_home_policy_proposes_the_configured_pose_once_per_episode():
    from twin_bridge.corrective import AnomalyEvent, CorrectivePolicy
    policy = CorrectivePolicy('home', hold_time_s=0.2, home_position=[0.5, -0.5])
    error = AnomalyEvent('ERROR', 'joint1', 'collision_force', 3.0, 10.0)
    proposal = policy.propose(error, [0.0, 0.0], now=10.0)
    assert proposal.positions.tolist() == [0.5, -0.5] and proposal.time_from_start_s == 0.2
    assert 'home pose' in proposal.reason
    assert policy.propose(error, [0.0, 0.0], now=10.1) is None          # same episode
    fresh = CorrectivePolicy('home', home_position=[0.5, -0.5])
    assert fresh.propose(error, [0.0, 0.0, 0.0], now=20.0) is None      # never mis-sized
    with pytest.raises(ValueError, match='home_position'):
        CorrectivePolicy('home')
    with pytest.raises(ValueError, match='home_position'):
        CorrectivePolicy('home', home_position=[0.0, float('nan')])


def _feed(intake, names, t0, count, lag=0.0, rate=1000.0):
    """Feed ``count`` samples from ``t0`` (local time, s) stamped ``lag`` s earlier."""
    for k in range(count):
        now = t0 + k / rate
        reason = intake.joint_state(names, [0.1] * len(names), [], [1.0] * len(names),
                                    now - lag, now)
    return reason


def test_sync_status_names_stamps_behind_the_local_clock():
    intake = RobotIntake(NAMES, with_wrench=False)
    assert _feed(intake, NAMES, 100.0, 2000, lag=3.0) is None      # accepted, mirrored
    level, message = intake.sync_status(101.9995)
    assert level == 'STALE' and not intake.state_ok(101.9995)      # no commands on it
    assert message == ('STALE: joint_states (stamps 3.0 s behind the local clock: synchronize '
                       'the clocks (chrony/PTP) or check use_sim_time)')
    # sim-time stamps from 0 on a twin on the system clock
    sim = RobotIntake(NAMES, with_wrench=False)
    for k in range(1, 200):
        sim.joint_state(NAMES, [0.1] * 3, [], [1.0] * 3, k * 0.001, 1.7e9 + k * 0.001)
    level, message = sim.sync_status(1.7e9 + 0.2)
    assert level == 'STALE' and 'sim time?: check use_sim_time' in message
    # a stream that stopped is plain STALE, without a guessed cause
    assert intake.sync_status(103.0) == ('STALE', 'STALE: joint_states')


def test_stamps_behind_because_the_twin_is_starved_are_not_blamed_on_the_robots_clock():
    """A twin whose computer starves it takes every sample late: its own lateness, named so."""
    intake = RobotIntake(NAMES, with_wrench=False)
    t0, step, behind = 100.0, 0.001, 0.0

    def take(k, wait):
        nonlocal behind
        stamp = t0 + k * step
        behind += wait                 # the input threads waited this long on a run queue
        taken = stamp + behind
        sec, frac = divmod(stamp, 1.0)
        nanosec = int(round(frac * 1e9))
        assert intake.joint_state(NAMES, [0.1] * 3, [], [1.0] * 3, stamp, taken,
                                  nanosec=nanosec) is None
        assert intake.sample((int(sec), nanosec), taken=taken, waited=wait) is not None
        return taken

    for k in range(100):               # in step with the robot
        take(k, 0.0)
    for k in range(100, 1100):         # starved: 0.3 ms later with each sample, 0.3 s in all
        take(k, 0.0003)
    for k in range(1100, 3100):        # then keeping pace, that far behind
        last = take(k, 0.0)
    assert intake.twin_behind_s() == pytest.approx(0.3, abs=1e-6)
    level, message = intake.sync_status(last + 0.0005)
    assert level == 'STALE'            # the state is 0.3 s old: no commands on it
    assert message == ('STALE: joint_states (stamps 0.3 s behind the local clock, 0.3 s of it '
                       "the twin's own lateness: its computer starves it of CPU (see "
                       "joint_states.starved and process.cpu_cores), the robot's clock is not "
                       'to blame)')
    assert intake.lag_cause(JOINTS, last + 0.0005)[1] is True
    assert intake.counters()['joint_states.starved'] >= 2900
    # the same lag with no wait of the twin's threads, each sample taken as it came (the twin
    # waited for it): the robot's clock
    late_clock = RobotIntake(NAMES, with_wrench=False)
    for k in range(3000):
        stamp = 100.0 + k * step
        sec, frac = divmod(stamp, 1.0)
        nanosec = int(round(frac * 1e9))
        assert late_clock.joint_state(NAMES, [0.1] * 3, [], [1.0] * 3, stamp, stamp + 0.3,
                                      nanosec=nanosec) is None
        late_clock.sample((int(sec), nanosec), taken=stamp + 0.3, waited=0.0)
        if k % 100 == 0:                                   # the status reports' calls
            late_clock.lag_cause(JOINTS, stamp + 0.3)
    assert late_clock.lag_cause(JOINTS, stamp + 0.3005) == (
        'stamps 0.3 s behind the local clock: synchronize the clocks (chrony/PTP) or check '
        'use_sim_time', False)


def test_a_twin_behind_its_overflowing_queue_names_its_own_lateness():
    """Samples lost in a full queue: the waits no longer add up, the backlog still shows."""
    intake = RobotIntake(NAMES, with_wrench=False)
    # the twin takes every 3rd sample (the others were dropped from its full queue), 1 s
    # after its stamp, in bursts: 10 samples 0.5 ms apart, then 15 ms waiting for a CPU
    stamp, taken = 100.0, 101.0
    for k in range(1200):
        stamp += 0.003
        taken += 0.0005 if k % 10 else 0.0255
        sec, frac = divmod(stamp, 1.0)
        nanosec = int(round(frac * 1e9))
        assert intake.joint_state(NAMES, [0.1] * 3, [], [1.0] * 3, stamp, taken,
                                  nanosec=nanosec) is None
        intake.sample((int(sec), nanosec), taken=taken, waited=0.001 if k % 10 == 0 else 0.0)
        if k % 30 == 0:
            intake.lag_cause(JOINTS, taken)
    text, own = intake.lag_cause(JOINTS, taken + 0.0005)
    assert own and "the twin's own lateness (it takes its samples from a backlog)" in text
    assert intake.twin_behind_s() < 0.5                    # its waits alone do not explain it


def test_sync_status_says_when_every_message_is_rejected():
    intake = RobotIntake(NAMES, with_wrench=False)
    assert intake.sync_status(0.0) == ('WARN', 'waiting for joints: j1, j2, j3')
    _feed(intake, NAMES + ['drive_joint'], 100.0, 50)                # an extra joint
    intake.joint_state(NAMES, [0.1] * 3, [], [], 0.0, 100.06)       # and one zero stamp
    level, message = intake.sync_status(100.1)
    assert level == 'ERROR'
    assert message.startswith('all /joint_states rejected (51 messages, mostly unknown_joint: '
                              "unknown joint 'drive_joint' in /joint_states")
    # accepted for a while, then every message refused (stamps ahead): STALE with the cause
    intake = RobotIntake(NAMES, with_wrench=False)
    _feed(intake, NAMES, 100.0, 100)
    _feed(intake, NAMES, 100.1, 300, lag=-0.5)
    level, message = intake.sync_status(100.4)
    assert level == 'STALE'
    assert message.startswith('STALE: joint_states (all 300 /joint_states messages since the '
                              'last accepted one rejected, mostly future_stamp: ')
    assert 'ahead of the local clock' in message
    _feed(intake, NAMES, 100.5, 10)                                  # good again
    assert intake.sync_status(100.51) == ('OK', 'in sync')
