"""
Tests of the safety governor.

Each rule is checked with hand-computed values, and property tests check that no allowed output
ever leaves the URDF limits (10^5 seeded random commands plus hypothesis).
"""
import dataclasses
import math
from types import SimpleNamespace

from hypothesis import given, HealthCheck, settings, strategies as st
import numpy as np
import pytest

from twin_bridge.governor import (GovernorConfigError, JointCommand, JointLimits,
                                  REFUSAL_CAUSES, SafetyGovernor, TrajectoryCommand,
                                  TrajectoryPoint)

NAMES = ('j1', 'j2', 'j3')


def limits3():
    return JointLimits(NAMES, lower=[-1.0, -2.0, -math.inf], upper=[1.0, 2.0, math.inf],
                       velocity=[1.0, 2.0, 4.0], effort=[10.0, 20.0, 5.0])


def gov(**kw):
    kw.setdefault('max_rate_hz', 10.0)
    return SafetyGovernor(limits3(), **kw)


ZERO = np.zeros(3)


# ----------------------------------------------------------------------------- limits / config
def test_limits_from_model_and_validation():
    model = SimpleNamespace(joint_names=['a', 'b'], lower=[-1, -2], upper=[1, 2],
                            velocity_limit=[1, 2], effort_limit=[3, 4])
    lim = JointLimits.from_model(model)
    assert lim.names == ('a', 'b') and lim.n == 2
    np.testing.assert_array_equal(lim.velocity, [1.0, 2.0])
    with pytest.raises(ValueError):
        lim.lower[0] = 5.0      # read-only: limits cannot be changed behind the governor's back
    bad = {'names': ('a', 'b'), 'lower': [-1, -2], 'upper': [1, 2], 'velocity': [1, 2],
           'effort': [3, 4]}
    for key, value, words in [('lower', [2, -2], "'a'"), ('upper', [1, math.nan], "'b'"),
                              ('velocity', [0, 1], 'velocity limit 0.0'),
                              ('velocity', [1, math.nan], "'b'"), ('effort', [-1, 1], 'effort'),
                              ('lower', [-1, -2, -3], 'shape'), ('names', ('a', 'a'), 'dupl')]:
        with pytest.raises(GovernorConfigError, match=words) as error:
            JointLimits(**{**bad, key: value})
        assert 'dataclasses' not in str(error.value)     # what a CLI user reads
    # inf is a joint without a limit (a URDF continuous joint without <limit>): accepted, and
    # the governor refuses to command it (test_limitless_joints.py)
    assert JointLimits(**{**bad, 'velocity': [1, math.inf]}).without_limit() == {
        'b': 'velocity'}


def test_limits_from_the_built_in_urdf():
    from pathlib import Path

    from twin_sim.urdf_model import RobotModel
    urdf = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'
    model = RobotModel.from_urdf(str(urdf))
    lim = JointLimits.from_model(model)
    assert lim.names == tuple(model.joint_names)
    np.testing.assert_array_equal(lim.velocity, model.velocity_limit)
    g = SafetyGovernor(lim, max_rate_hz=100.0, position_margin_rad=0.05)
    d = g.govern(JointCommand('position', lim.upper + 1.0, duration_s=100.0), 1.0, True,
                 np.zeros(lim.n))
    np.testing.assert_allclose(d.command.values, lim.upper - 0.05)


def test_governor_config_errors():
    for kw, words in [({'max_rate_hz': 0}, 'max_rate_hz'),
                      ({'velocity_scale': 1.5}, 'velocity_scale'),
                      ({'velocity_scale': 0.0}, 'velocity_scale'),
                      ({'max_step_rad': -1}, 'max_step_rad'),
                      ({'horizon_s': math.nan}, 'horizon_s'),
                      ({'position_margin_rad': 1.5}, "joint 'j1'"),
                      ({'position_margin_rad': -0.1}, 'position_margin_rad'),
                      ({'position_margin_rad': [0.1, 0.1]}, 'shape')]:
        with pytest.raises(GovernorConfigError, match=words):
            gov(**kw)
    with pytest.raises(GovernorConfigError, match='JointLimits'):
        SafetyGovernor({'names': NAMES})


# ----------------------------------------------------------------------------- refusals
def test_stale_interlock_refuses_everything():
    g = gov()
    for cmd in (JointCommand('effort', [0.0, 0.0, 0.0]), JointCommand('position', ZERO),
                TrajectoryCommand([(1.0, ZERO)])):
        d = g.govern(cmd, 1.0, False, ZERO)
        assert not d.allowed and d.command is None and d.cause == 'stale'
        assert 'stale' in d.reasons[0]
    assert g.counters['stale'] == 3 and g.counters['refused'] == 3
    # Without the interlock the state flag is not consulted.
    d = gov(stale_interlock=False).govern(JointCommand('effort', [1.0, 2.0, 3.0]), 1.0, False)
    assert d.allowed


@pytest.mark.parametrize('cmd,cause,words', [
    (JointCommand('position', [0.0, math.nan, 0.0]), 'nonfinite', 'NaN'),
    (JointCommand('velocity', [0.0, math.inf, 0.0]), 'nonfinite', 'inf'),
    (JointCommand('effort', [0.0, 0.0]), 'length', 'shape'),
    (JointCommand('effort', [[0.0, 0.0, 0.0]]), 'length', 'shape'),
    (JointCommand('effort', [0.0], joints=['j8']), 'unknown_joint', "'j8'"),
    (JointCommand('effort', [0.0, 0.0], joints=['j1', 'j1']), 'malformed', 'duplicated'),
    (JointCommand('effort', ['a', 'b', 'c']), 'malformed', 'not numbers'),
    (JointCommand('effort', [0.0], joints='j1'), 'malformed', 'string'),
    (JointCommand('teleport', ZERO), 'malformed', 'kind'),
    (JointCommand('position', ZERO, duration_s=-1.0), 'malformed', 'duration_s'),
    (JointCommand('position', ZERO, duration_s=math.nan), 'nonfinite', 'duration_s'),
    (TrajectoryCommand([]), 'length', 'no points'),
    (TrajectoryCommand([(1.0, ZERO), (1.0, ZERO)]), 'malformed', 'increase'),
    (TrajectoryCommand([(-0.5, ZERO)]), 'malformed', 'negative'),
    (TrajectoryCommand([(math.nan, ZERO)]), 'nonfinite', 'time_from_start'),
    (TrajectoryCommand([(1.0, [0.0, 0.0])]), 'length', 'point 0 positions'),
    (TrajectoryCommand([(1.0, ZERO, [0.0, math.inf, 0.0])]), 'nonfinite', 'velocities'),
    (TrajectoryCommand([(1.0,)]), 'malformed', 'point 0'),
    (TrajectoryCommand(5), 'malformed', 'not a sequence'),
    ('not a command', 'malformed', 'kind'),
])
def test_bad_commands_are_refused_with_reason(cmd, cause, words):
    g = gov()
    d = g.govern(cmd, 1.0, True, ZERO)
    assert not d.allowed and d.command is None
    assert d.cause == cause, d.reasons
    assert words in d.reasons[0]
    assert g.counters[cause] == 1


def test_position_velocity_trajectory_need_measured_state():
    g = gov()
    for state in (None, [0.0, 0.0], [0.0, math.nan, 0.0], ['x', 0, 0]):
        d = g.govern(JointCommand('position', ZERO), 1.0, True, state)
        assert d.cause == 'no_state', d.reasons
    # Only the commanded joints need a valid measurement.
    d = g.govern(JointCommand('position', [0.0], joints=['j1']), 1.0, True, [0.0, math.nan, 0.0])
    assert d.allowed
    # Efforts need none.
    assert g.govern(JointCommand('effort', ZERO), 2.0, True, None).allowed


def test_bad_now_is_refused():
    g = gov()
    for now in (math.nan, math.inf, None, 'x', '1.0', True):
        assert g.govern(JointCommand('effort', ZERO), now, True).cause == 'malformed'


def test_rate_limit():
    g = gov(max_rate_hz=10.0)         # at most one command per 0.1 s
    cmd = JointCommand('effort', ZERO)
    assert g.govern(cmd, 1.0, True).allowed
    d = g.govern(cmd, 1.05, True)
    assert d.cause == 'rate' and '0.1' in d.reasons[0]
    assert g.govern(cmd, 1.0999, True).cause == 'rate'
    assert g.govern(cmd, 1.1, True).allowed
    # Refused commands do not consume a slot: 1.15 refused, 1.2 allowed.
    assert g.govern(cmd, 1.15, True).cause == 'rate'
    assert g.govern(cmd, 1.2, True).allowed
    # A bad command does not consume a slot either.
    assert g.govern(JointCommand('effort', [math.nan] * 3), 1.3, True).cause == 'nonfinite'
    assert g.govern(cmd, 1.3, True).allowed


def test_a_clock_that_steps_back_refuses_until_it_runs_forward_again():
    g = gov(max_rate_hz=10.0)
    cmd = JointCommand('effort', ZERO)
    assert g.govern(cmd, 100.0, True).allowed
    # Sim reset: the clock is back at 0.01 s. The rate limit cannot be judged (the time since
    # the last command is unknown): refused, as is everything until the clock ran 0.1 s.
    d = g.govern(cmd, 0.01, True)
    assert d.cause == 'clock' and 'stepped back 99.99 s' in d.reasons[0]
    assert g.govern(cmd, 0.05, True).cause == 'clock'
    assert g.govern(cmd, 0.11, True).allowed
    assert g.govern(cmd, 0.15, True).cause == 'rate'
    # A step back seen only between commands (status ticks) refuses the next command as well.
    g.tick(5.0)
    g.tick(1.0)
    assert g.govern(cmd, 1.02, True).cause == 'clock'
    assert g.govern(cmd, 1.2, True).allowed
    g.reset()
    assert g.govern(cmd, 0.5, True).allowed                 # an explicit reset starts afresh


# ----------------------------------------------------------------------------- clamping
def test_position_clamped_into_range_with_margin():
    g = gov(position_margin_rad=0.1, horizon_s=10.0)   # large horizon: only the range applies
    d = g.govern(JointCommand('position', [5.0, -5.0, 1e6]), 1.0, True, ZERO)
    assert d.allowed and d.clamped
    np.testing.assert_allclose(d.command.values, [0.9, -1.9, 40.0])   # j3: continuous, 4*10
    assert d.command.joints == NAMES
    assert any("'j1' position 5 -> 0.9: position limits [-1, 1] with margin 0.1" in r
               for r in d.reasons)


def test_position_step_limited_by_velocity_limit():
    # step = velocity * velocity_scale * dt; dt = horizon_s = 0.02 s: j1 0.01, j2 0.02, j3 0.04
    g = gov(velocity_scale=0.5, horizon_s=0.02)
    d = g.govern(JointCommand('position', [0.5, -0.5, 0.01]), 1.0, True, [0.1, 0.2, 0.0])
    np.testing.assert_allclose(d.command.values, [0.11, 0.18, 0.01])
    assert d.clamped and len(d.reasons) == 2 and 'step from measured 0.1' in d.reasons[0]
    # The command's own duration: 0.5 s at 0.5 rad/s allows 0.25 rad on j1.
    d = g.govern(JointCommand('position', [0.5, 0.2, 0.0], duration_s=0.5), 2.0, True,
                 [0.1, 0.2, 0.0])
    np.testing.assert_allclose(d.command.values, [0.35, 0.2, 0.0])
    assert d.command.duration_s == 0.5
    # max_step_rad caps the step further.
    g = gov(max_step_rad=0.05)
    d = g.govern(JointCommand('position', [0.5, 0.5, 0.5], duration_s=1.0), 1.0, True, ZERO)
    np.testing.assert_allclose(d.command.values, [0.05, 0.05, 0.05])


def test_default_horizon_is_rate_period():
    g = SafetyGovernor(limits3(), max_rate_hz=50.0)
    assert g.horizon_s == pytest.approx(0.02)
    d = g.govern(JointCommand('position', [1.0, 1.0, 1.0]), 1.0, True, ZERO)
    np.testing.assert_allclose(d.command.values, [0.02, 0.04, 0.08])


def test_unchanged_command_is_not_marked_clamped():
    g = gov()
    d = g.govern(JointCommand('position', [0.01, 0.0, -0.02], duration_s=1.0), 1.0, True, ZERO)
    assert d.allowed and not d.clamped and d.reasons == []
    np.testing.assert_array_equal(d.command.values, [0.01, 0.0, -0.02])


def test_subset_command_in_any_order():
    g = gov(horizon_s=10.0)
    d = g.govern(JointCommand('position', [3.0, 3.0], joints=['j2', 'j1']), 1.0, True, ZERO)
    assert d.command.joints == ('j2', 'j1')
    np.testing.assert_allclose(d.command.values, [2.0, 1.0])


def test_measured_position_far_outside_range_is_refused():
    g = gov(position_margin_rad=0.1, horizon_s=0.02)
    # j1 measured at 1.5: the range ends at 0.9 and one step is 0.02 rad.
    d = g.govern(JointCommand('position', [0.0, 0.0, 0.0]), 1.0, True, [1.5, 0.0, 0.0])
    assert d.cause == 'unreachable' and "'j1'" in d.reasons[0]
    # Just outside (0.91, within one step of 0.9): a target beyond stays on the range edge,
    # a target inside is approached by one step.
    d = g.govern(JointCommand('position', [0.95, 0.0, 0.0]), 2.0, True, [0.91, 0.0, 0.0])
    assert d.allowed and d.command.values[0] == pytest.approx(0.9)
    d = g.govern(JointCommand('position', [0.0, 0.0, 0.0]), 3.0, True, [0.91, 0.0, 0.0])
    assert d.allowed and d.command.values[0] == pytest.approx(0.89)


def test_velocity_clamped_and_kept_out_of_the_limits():
    g = gov(velocity_scale=0.5, horizon_s=0.1)
    d = g.govern(JointCommand('velocity', [5.0, -5.0, 1.0]), 1.0, True, ZERO)
    np.testing.assert_allclose(d.command.values, [0.5, -1.0, 1.0])
    # j1 at 0.98 of upper 1.0: in 0.1 s it may move 0.02 -> at most 0.2 rad/s outward.
    # j2 beyond its lower limit: outward motion is zeroed, inward is allowed, never reversed.
    d = g.govern(JointCommand('velocity', [0.4, -1.0, 0.0]), 2.0, True, [0.98, -2.5, 0.0])
    np.testing.assert_allclose(d.command.values, [0.2, 0.0, 0.0])
    d = g.govern(JointCommand('velocity', [-0.4, 0.7, 0.0]), 3.0, True, [0.98, -2.5, 0.0])
    np.testing.assert_allclose(d.command.values, [-0.4, 0.7, 0.0])
    assert not d.clamped


def test_effort_clamped():
    g = gov()
    d = g.govern(JointCommand('effort', [100.0, -100.0, 4.0]), 1.0, True)
    np.testing.assert_allclose(d.command.values, [10.0, -20.0, 4.0])
    assert d.clamped and 'effort limit 10' in d.reasons[0]


def spline_positions(dq, v0, v1, duration, samples=2001):
    """Displacements along a cubic Hermite segment at evenly spaced times."""
    s = np.linspace(0.0, 1.0, samples)
    return (3 * s ** 2 - 2 * s ** 3) * dq + (s ** 3 - 2 * s ** 2 + s) * duration * v0 \
        + (s ** 3 - s ** 2) * duration * v1


def spline_speeds(dq, v0, v1, duration, samples=2001):
    """Speeds along a cubic Hermite segment, from its position curve by finite differences."""
    pos = spline_positions(dq, v0, v1, duration, samples)
    return np.abs(np.diff(pos)) / (duration / (samples - 1))


def test_trajectory_is_slowed_to_velocity_limits():
    g = gov()
    # j1 moves 0 -> 0.5 -> -0.5 in 0.25 s segments (positions only: a controller interpolates
    # straight lines): 2 and 4 rad/s vs its 1 rad/s limit.
    pts = [TrajectoryPoint(0.25, [0.5, 0.0, 0.0]), TrajectoryPoint(0.5, [-0.5, 0.0, 0.0])]
    d = g.govern(TrajectoryCommand(pts), 1.0, True, ZERO)
    assert d.allowed and d.clamped
    out = d.command.points
    # Uniform time scaling by 4 (the worst segment): 1.0 s and 2.0 s.
    assert out[0].time_from_start == pytest.approx(1.0)
    assert out[1].time_from_start == pytest.approx(2.0)
    np.testing.assert_allclose(out[0].positions, [0.5, 0.0, 0.0])
    assert any('factor 4' in r for r in d.reasons)


def test_trajectory_with_velocities_is_slowed_to_its_spline_peak():
    g = gov()
    # The same path with point velocities: a controller runs cubic splines through them, from
    # rest. Segment 1 (from 0.5 rad at 2 rad/s to -0.5 rad at rest in 0.25 s) peaks at
    # 98/15 rad/s inside: every time is stretched by 98/15, velocities divided by it.
    pts = [TrajectoryPoint(0.25, [0.5, 0.0, 0.0], [2.0, 0.0, 0.0]),
           TrajectoryPoint(0.5, [-0.5, 0.0, 0.0], [0.0, 0.0, 0.0])]
    d = g.govern(TrajectoryCommand(pts), 1.0, True, ZERO)
    assert d.allowed and d.clamped
    out = d.command.points
    factor = 98.0 / 15.0
    assert out[0].time_from_start == pytest.approx(0.25 * factor)
    assert out[1].time_from_start == pytest.approx(0.5 * factor)
    np.testing.assert_allclose(out[0].velocities, [2.0 / factor, 0.0, 0.0])
    assert any('factor 6.53' in r and 'cubic spline' in r for r in d.reasons)
    speeds = np.concatenate([
        spline_speeds(0.5, 0.0, out[0].velocities[0], out[0].time_from_start),
        spline_speeds(-1.0, out[0].velocities[0], 0.0,
                      out[1].time_from_start - out[0].time_from_start)])
    assert speeds.max() <= 1.0 + 1e-6 and speeds.max() > 0.99     # at the limit, not beyond


def test_a_move_to_a_stop_takes_one_and_a_half_times_longer_than_straight():
    # A one-point move from rest that ends at rest (the corrective 'home' action) as a cubic
    # peaks at 1.5x its average speed: 1 rad in 1 s would reach 1.5 rad/s on j1 (limit 1).
    g = gov()
    d = g.govern(TrajectoryCommand([(1.0, [1.0, 0.0, 0.0], np.zeros(3))]), 1.0, True, ZERO)
    assert d.allowed and d.clamped
    assert d.command.points[0].time_from_start == pytest.approx(1.5)
    assert spline_speeds(1.0, 0.0, 0.0, 1.5).max() == pytest.approx(1.0, rel=1e-4)
    # Positions only: a straight line at 1 rad/s is within the limit as given.
    d = gov().govern(TrajectoryCommand([(1.0, [1.0, 0.0, 0.0])]), 1.0, True, ZERO)
    assert d.allowed and d.command.points[0].time_from_start == 1.0


def test_a_move_starts_at_the_robots_velocity():
    # The robot's trajectory controller starts the spline where the robot is, at its speed.
    # Home (1 rad, ending at rest) from rest takes 1.5 s on j1 (limit 1 rad/s); the same move
    # begun while j1 runs away from the target at 0.5 rad/s would peak at 1.14 rad/s in 1.5 s.
    v_away = np.array([-0.5, 0.0, 0.0])
    home = TrajectoryCommand([(1.0, [1.0, 0.0, 0.0], np.zeros(3))])
    assert spline_speeds(1.0, -0.5, 0.0, 1.5).max() > 1.13
    d = gov().govern(home, 1.0, True, ZERO, v_away)
    assert d.allowed and d.clamped
    t = d.command.points[0].time_from_start
    assert t > 1.5
    peak = spline_speeds(1.0, -0.5, 0.0, t).max()
    assert 0.99 < peak <= 1.0 + 1e-6                        # at the limit, not beyond
    # running towards the target, it needs less time than from rest, and still stays within
    d = gov().govern(home, 1.0, True, ZERO, -v_away)
    t = d.command.points[0].time_from_start
    assert t < 1.5 and spline_speeds(1.0, 0.5, 0.0, t).max() <= 1.0 + 1e-6
    # velocities the robot does not stream (NaN) are taken as at rest
    d = gov().govern(home, 1.0, True, ZERO, [math.nan, 0.0, 0.0])
    assert d.command.points[0].time_from_start == pytest.approx(1.5)


def test_a_robot_faster_than_the_limit_is_held_never_sped_up():
    v = np.array([1.5, 0.0, 0.0])                           # j1 over its 1 rad/s limit
    d = gov().govern(TrajectoryCommand([(0.5, ZERO, np.zeros(3))]), 1.0, True, ZERO, v)
    assert d.allowed
    t = d.command.points[0].time_from_start
    assert spline_speeds(0.0, 1.5, 0.0, t).max() <= 1.5 * (1 + 1e-6)


def test_a_spline_that_leaves_the_range_between_its_points_is_refused():
    # j1 at 0.95 rad (limit 1) running towards the limit at 0.9 rad/s: a hold there in 0.5 s
    # overshoots it by 4/27 * 0.9 * 0.5 = 0.067 rad before it comes back
    q = np.array([0.95, 0.0, 0.0])
    hold = TrajectoryCommand([(0.5, q, np.zeros(3))])
    assert (q[0] + spline_positions(0.0, 0.9, 0.0, 0.5)).max() > 1.01
    d = gov().govern(hold, 1.0, True, q, [0.9, 0.0, 0.0])
    assert not d.allowed and d.cause == 'unreachable'
    assert "'j1'" in d.reasons[0] and 'cubic spline' in d.reasons[0]
    # at rest the same hold stays put; with positions only a controller runs a straight line
    assert gov().govern(hold, 1.0, True, q, ZERO).allowed
    assert gov().govern(TrajectoryCommand([(0.5, q)]), 1.0, True, q, [0.9, 0.0, 0.0]).allowed
    # point velocities that carry a joint out between the points: the same
    out = TrajectoryCommand([(1.0, [1.0, 0.0, 0.0], [0.5, 0.0, 0.0]),
                             (2.0, [0.9, 0.0, 0.0], [0.0, 0.0, 0.0])])
    d = gov().govern(out, 1.0, True, ZERO)
    assert not d.allowed and d.cause == 'unreachable' and 'segment 1' in d.reasons[0]


def test_trajectory_positions_clamped_and_first_point_gets_time():
    g = gov(position_margin_rad=0.1)
    # First point at t=0 away from the measured state: it needs 0.9 rad / 1 rad/s = 0.9 s.
    d = g.govern(TrajectoryCommand([(0.0, [2.0, 0.0, 0.0]), (2.0, [0.0, 0.0, 0.0])]),
                 1.0, True, ZERO)
    out = d.command.points
    np.testing.assert_allclose(out[0].positions, [0.9, 0.0, 0.0])
    assert out[0].time_from_start == pytest.approx(0.9)
    # The 2 s segment moving 0.9 rad is within limits: kept as 2 s long.
    assert out[1].time_from_start - out[0].time_from_start == pytest.approx(2.0)
    assert out[1].velocities is None
    # A first point at the measured state may stay at t=0.
    d = g.govern(TrajectoryCommand([(0.0, ZERO), (1.0, [0.5, 0.0, 0.0])]), 2.0, True, ZERO)
    assert d.allowed and not d.clamped and d.command.points[0].time_from_start == 0.0


def test_hold_trajectory_from_corrective_policy_passes_unchanged():
    q = np.array([0.3, -0.2, 10.0])
    d = gov().govern(TrajectoryCommand([(0.5, q, np.zeros(3))]), 1.0, True, q)
    assert d.allowed and not d.clamped
    np.testing.assert_array_equal(d.command.points[0].positions, q)


def test_final_check_refuses_a_broken_clamp(monkeypatch):
    # If a clamping step were ever wrong, the independent final check refuses the command.
    g = gov()
    monkeypatch.setattr(g, '_effort', lambda values, idx, joints: (
        JointCommand('effort', values, joints), []))
    d = g.govern(JointCommand('effort', [100.0, 0.0, 0.0]), 1.0, True)
    assert not d.allowed and d.cause == 'invariant' and 'j1 effort 100.0 beyond' in d.reasons[0]
    assert g.counters['invariant'] == 1


def test_counters_add_up():
    g = gov()
    g.govern(JointCommand('effort', [100.0, 0.0, 0.0]), 1.0, True)
    g.govern(JointCommand('effort', ZERO), 1.01, True)
    g.govern(JointCommand('effort', ZERO), 1.5, False)
    c = g.counters
    assert (c['allowed'], c['clamped'], c['refused'], c['rate'], c['stale']) == (1, 1, 2, 1, 1)
    assert c['invariant'] == 0


# ----------------------------------------------------------------------------- property tests
TOL = 1e-9


class Clock:
    """The test's own account of the rate limit and of clock steps (the specification)."""

    def __init__(self, period):
        self.period = period
        self.last_allowed = None
        self.seen = None
        self.stepped = None

    def saw(self, now):
        """Record a command's time (any finite one) before its decision is checked."""
        if not (isinstance(now, float) and math.isfinite(now)):
            return
        if self.seen is not None and now < self.seen:
            self.stepped = now
        self.seen = now
        if self.stepped is not None and now - self.stepped >= self.period:
            self.stepped, self.last_allowed = None, None

    def allowed(self, now):
        assert self.stepped is None, 'allowed before the clock ran forward after a step back'
        if self.last_allowed is not None:
            assert now - self.last_allowed >= self.period - 1e-6
        self.last_allowed = now


def check_decision(g, cmd, decision, cur, clock=None, vel=None):
    """Independently check that an allowed output respects every limit and the clock."""
    lim = g.limits
    if not decision.allowed:
        assert decision.command is None and decision.cause in REFUSAL_CAUSES
        assert decision.reasons and all(isinstance(r, str) and r for r in decision.reasons)
        return
    now = decision.time
    if clock is not None:
        clock.allowed(now)
    out = decision.command
    joints = list(out.joints)
    assert len(set(joints)) == len(joints) and set(joints) <= set(lim.names)
    if cmd.joints is not None:
        assert joints == list(cmd.joints)
    idx = np.array([lim.names.index(j) for j in joints])
    lo = lim.lower[idx] + g.position_margin[idx]
    hi = lim.upper[idx] - g.position_margin[idx]
    assert (lo >= lim.lower[idx]).all() and (hi <= lim.upper[idx]).all()
    vmax = lim.velocity[idx] * g.velocity_scale
    assert (vmax <= lim.velocity[idx]).all()
    if out.kind == 'trajectory':
        c = np.asarray(cur, dtype=float)[idx]
        t_prev, prev = 0.0, c
        for k, p in enumerate(out.points):
            q = np.asarray(p.positions, dtype=float)
            t = p.time_from_start
            assert q.shape == (len(idx),) and np.isfinite(q).all() and math.isfinite(t)
            assert ((lo <= q) & (q <= hi)).all()
            if k == 0 and t == 0.0:
                assert (q == c).all()
            else:
                assert t > t_prev
                average = vmax
                if k == 0 and p.velocities is not None and vel is not None:
                    # a cubic first segment may average up to the speed the robot starts with
                    average = np.maximum(vmax, np.abs(np.nan_to_num(
                        np.asarray(vel, dtype=float)[idx], nan=0.0)))
                assert (np.abs(q - prev) <= average * (t - t_prev) * (1 + TOL)).all()
            if p.velocities is not None:
                v = np.asarray(p.velocities)
                assert np.isfinite(v).all() and (np.abs(v) <= vmax).all()
                if t > t_prev:       # the spline a controller runs, from the robot's velocity
                    if k == 0:
                        v0 = np.zeros(len(idx)) if vel is None else \
                            np.nan_to_num(np.asarray(vel, dtype=float)[idx], nan=0.0)
                        bound = np.maximum(vmax, np.abs(v0))    # never faster than it was
                    else:
                        v0, bound = out.points[k - 1].velocities, vmax
                    for j in range(len(idx)):
                        fastest = spline_speeds(q[j] - prev[j], v0[j], v[j], t - t_prev,
                                                samples=257).max()
                        assert fastest <= bound[j] * (1 + 1e-6) + 1e-12
                        # and never beyond the range between the points (nor further out
                        # than a start outside it)
                        x = prev[j] + spline_positions(q[j] - prev[j], v0[j], v[j],
                                                       t - t_prev, samples=257)
                        slack = 1e-6 * (1.0 + abs(prev[j]) + abs(q[j]))
                        assert x.min() >= min(lo[j], prev[j]) - slack
                        assert x.max() <= max(hi[j], prev[j]) + slack
            t_prev, prev = t, q
        return
    v = np.asarray(out.values, dtype=float)
    assert v.shape == (len(idx),) and np.isfinite(v).all()
    if out.kind == 'position':
        c = np.asarray(cur, dtype=float)[idx]
        dt = g.horizon_s if cmd.duration_s is None else cmd.duration_s
        assert ((lo <= v) & (v <= hi)).all()
        assert (np.abs(v - c) <= vmax * dt * (1 + TOL) + TOL * np.abs(c)).all()
        if g.max_step_rad is not None:
            assert (np.abs(v - c) <= g.max_step_rad * (1 + TOL) + TOL * np.abs(c)).all()
    elif out.kind == 'velocity':
        c = np.asarray(cur, dtype=float)[idx]
        assert (np.abs(v) <= vmax).all()
        h = g.horizon_s
        # Moving outward never ends beyond the range within the horizon.
        up = v > 0
        assert (c[up] + v[up] * h <= hi[up] + TOL * (1 + np.abs(hi[up]))).all()
        down = v < 0
        assert (c[down] + v[down] * h >= lo[down] - TOL * (1 + np.abs(lo[down]))).all()
    else:
        assert out.kind == 'effort'
        assert (np.abs(v) <= lim.effort[idx]).all()


def random_limits(rng):
    n = int(rng.integers(1, 9))
    lower = rng.uniform(-4.0, 0.5, n)
    upper = lower + rng.uniform(0.0, 6.0, n) * (rng.random(n) > 0.05)   # some zero ranges
    cont = rng.random(n) < 0.15
    lower[cont], upper[cont] = -math.inf, math.inf
    names = tuple(f'joint_{i}' for i in rng.permutation(n))
    lim = JointLimits(names, lower, upper, rng.uniform(0.01, 10.0, n),
                      rng.uniform(0.1, 500.0, n))
    finite_range = np.where(cont, 1.0, upper - lower)
    margin = rng.uniform(0.0, 0.5) * finite_range * (rng.random() < 0.7)
    g = SafetyGovernor(
        lim, max_rate_hz=float(rng.uniform(1.0, 1000.0)), position_margin_rad=margin,
        max_step_rad=None if rng.random() < 0.5 else float(rng.uniform(1e-3, 1.0)),
        horizon_s=None if rng.random() < 0.5 else float(rng.uniform(1e-3, 1.0)),
        velocity_scale=float(rng.uniform(0.05, 1.0)), stale_interlock=rng.random() < 0.8)
    return g


SPECIALS = np.array([math.nan, math.inf, -math.inf, 1e300, -1e300, 0.0, -0.0, 1e-300])


def random_values(rng, m):
    scale = (1.0, 10.0, 1e3, 1e300)[int(rng.integers(4))]
    v = rng.normal(0.0, scale, m)
    if rng.random() < 0.15:
        bad = rng.random(m) < 0.3
        v[bad] = rng.choice(SPECIALS, int(bad.sum()))
    return v


def random_command(rng, names):
    n = len(names)
    r = rng.random()
    if r < 0.4:
        joints = None
        m = n
    else:
        m = int(rng.integers(1, n + 1))
        joints = [names[i] for i in rng.permutation(n)[:m]]
        if rng.random() < 0.03:
            joints[int(rng.integers(m))] = 'unknown_joint'
        if rng.random() < 0.03 and m > 1:
            joints[0] = joints[-1]
    size = m + (int(rng.integers(-1, 2)) if rng.random() < 0.05 else 0)
    kind = ('position', 'velocity', 'effort', 'trajectory')[int(rng.integers(4))]
    if kind != 'trajectory':
        duration = None
        if kind == 'position' and rng.random() < 0.5:
            duration = (float(rng.uniform(-0.1, 2.0)) if rng.random() < 0.95
                        else float(rng.choice(SPECIALS)))
        return JointCommand(kind, random_values(rng, size), joints, duration)
    k = int(rng.integers(1, 6))
    times = np.cumsum(rng.exponential(0.3, k)) * (rng.random() < 0.9)
    if rng.random() < 0.05:
        times = rng.permutation(times)
    if rng.random() < 0.5:
        times[0] = 0.0
    points = []
    for t in times:
        vel = None if rng.random() < 0.5 else random_values(rng, size)
        points.append((float(t), random_values(rng, size), vel))
    return TrajectoryCommand(points, joints)


def random_state(rng, g):
    lim = g.limits
    n = lim.n
    r = rng.random()
    if r < 0.02:
        return None
    if r < 0.04:
        return np.zeros(n + 1)
    lo = np.where(np.isfinite(lim.lower), lim.lower, -10.0)
    hi = np.where(np.isfinite(lim.upper), lim.upper, 10.0)
    q = rng.uniform(lo, hi)
    if rng.random() < 0.2:
        q += rng.normal(0.0, 0.05, n)        # near or slightly beyond the limits
    if rng.random() < 0.03:
        q[int(rng.integers(n))] = rng.choice(SPECIALS)
    return q


def random_velocity(rng, g):
    """Return a measured velocity: none, at rest, or up to 1.5x the limits (some NaN)."""
    r = rng.random()
    if r < 0.3:
        return None
    lim = g.limits
    v = rng.uniform(-1.5, 1.5, lim.n) * lim.velocity * (r > 0.4)
    if rng.random() < 0.05:
        v[int(rng.integers(lim.n))] = math.nan
    return v


def test_property_1e5_random_commands_stay_inside_limits():
    rng = np.random.default_rng(20240611)
    total = 100_000
    allowed = 0
    done = 0
    while done < total:
        g = random_limits(rng)
        now = float(rng.uniform(0.0, 100.0))
        clock = Clock(1.0 / g.max_rate_hz)
        for _ in range(500):
            cmd = random_command(rng, g.limits.names)
            cur = random_state(rng, g)
            step = rng.exponential(1.0 / g.max_rate_hz)
            now = now + step if rng.random() > 0.01 else now - 5.0 * rng.random()
            clock.saw(now)
            vel = random_velocity(rng, g)
            d = g.govern(cmd, now, bool(rng.random() < 0.95), cur, vel)
            check_decision(g, cmd, d, cur, clock, vel)
            allowed += d.allowed
            done += 1
        assert g.counters['invariant'] == 0
    # The test means something only if many commands got through (and many were clamped).
    assert allowed > total // 5, allowed


@st.composite
def governed_case(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    g = random_limits(rng)
    names = g.limits.names
    n = len(names)
    floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
    kind = draw(st.sampled_from(['position', 'velocity', 'effort', 'trajectory']))
    m = draw(st.integers(0, n + 1))
    values = draw(st.lists(floats, min_size=m, max_size=m))
    joints = None if m == n and draw(st.booleans()) else draw(
        st.lists(st.sampled_from(list(names) + ['x']), min_size=m, max_size=m))
    if kind == 'trajectory':
        k = draw(st.integers(1, 4))
        times = draw(st.lists(st.floats(-1.0, 10.0), min_size=k, max_size=k))
        pts = [(t, values, draw(st.one_of(st.none(),
                                          st.lists(floats, min_size=m, max_size=m))))
               for t in sorted(times)]
        cmd = TrajectoryCommand(pts, joints)
    else:
        cmd = JointCommand(kind, values, joints,
                           draw(st.one_of(st.none(), st.floats(allow_nan=True))))
    cur = draw(st.one_of(st.none(), st.lists(floats, min_size=n, max_size=n),
                         st.lists(st.floats(-5.0, 5.0), min_size=n, max_size=n)))
    return g, cmd, cur, draw(st.booleans())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(governed_case())
def test_property_hypothesis_outputs_stay_inside_limits(case):
    g, cmd, cur, state_ok = case
    d = g.govern(cmd, 1.0, state_ok, cur)
    check_decision(g, cmd, d, cur)
    assert g.counters['invariant'] == 0


def test_decision_is_a_plain_dataclass():
    d = gov().govern(JointCommand('effort', ZERO), 1.0, True)
    assert dataclasses.asdict(d)['allowed'] is True


def test_a_derating_slows_every_command_and_never_raises_the_limits():
    g = gov(velocity_scale=0.5, horizon_s=0.1)
    assert g.set_speed_scale(0.4) == 0.4 and g.speed_scale == 0.4
    d = g.govern(JointCommand('velocity', [5.0, -5.0, 0.0]), 1.0, True, ZERO)
    vmax = 0.5 * 0.4 * g.limits.velocity
    np.testing.assert_allclose(np.abs(d.command.values[:2]), vmax[:2])
    d = g.govern(TrajectoryCommand([(0.1, [0.5, 0.0, 0.0])]), 2.0, True, ZERO)
    assert d.command.points[0].time_from_start == pytest.approx(0.5 / vmax[0])
    for bad in (0.0, 1.5, math.nan, 'x'):
        with pytest.raises(GovernorConfigError):
            g.set_speed_scale(bad)
    assert g.speed_scale == 0.4                    # a refused scale changes nothing
    g.set_speed_scale(1.0)
    d = g.govern(JointCommand('velocity', [5.0, -5.0, 0.0]), 3.0, True, ZERO)
    np.testing.assert_allclose(np.abs(d.command.values[:2]), 0.5 * g.limits.velocity[:2])
