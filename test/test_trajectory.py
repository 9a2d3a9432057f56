"""Trajectory interpolation and the demo motion."""
from pathlib import Path

import numpy as np
import pybullet_data
import pytest

from twin_sim.trajectory import DemoMotion, JointTrajectoryInterpolator, low_gravity_pose, \
    TrajectoryError
from twin_sim.urdf_model import RobotModel

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / 'urdf' / 'robot_twin_arm.urdf'
TIMES = np.array([0.0, 0.8, 2.0, 2.5, 4.0])
POSITIONS = np.array([[0.0, 1.0], [0.5, 0.2], [-0.3, 0.4], [0.1, 0.1], [0.2, -0.5]])


def _derivative_check(traj, t0, t1):
    """Check that qd is the derivative of q, qdd of qd (central differences inside (t0, t1))."""
    t = np.linspace(t0, t1, 2001)[1:-1]
    h = 1e-6
    q_plus, qd_plus, _ = traj.sample(t + h)
    q_minus, qd_minus, _ = traj.sample(t - h)
    _, qd, qdd = traj.sample(t)
    np.testing.assert_allclose((q_plus - q_minus) / (2 * h), qd, atol=1e-5)
    np.testing.assert_allclose((qd_plus - qd_minus) / (2 * h), qdd, atol=1e-3)


def _left_right(traj, t, eps=1e-9):
    return traj.sample(t - eps), traj.sample(t + eps)


@pytest.mark.parametrize('kind', ['positions', 'hermite', 'quintic'])
def test_passes_through_points_with_continuous_velocity(kind):
    rng = np.random.default_rng(0)
    velocities = rng.uniform(-1, 1, POSITIONS.shape) if kind != 'positions' else None
    accelerations = rng.uniform(-2, 2, POSITIONS.shape) if kind == 'quintic' else None
    traj = JointTrajectoryInterpolator(TIMES, POSITIONS, velocities, accelerations)
    q, qd, qdd = traj.sample(TIMES[:-1])
    np.testing.assert_allclose(q, POSITIONS[:-1], atol=1e-12)
    if velocities is not None:
        np.testing.assert_allclose(qd, velocities[:-1], atol=1e-12)
    else:
        np.testing.assert_allclose(qd[0], 0.0, atol=1e-12)          # clamped start
        assert np.allclose(traj.sample(TIMES[-1] - 1e-9)[1], 0.0, atol=1e-6)   # clamped end
    if accelerations is not None:
        np.testing.assert_allclose(qdd, accelerations[:-1], atol=1e-9)
    for knot in TIMES[1:-1]:
        (ql, qdl, qddl), (qr, qdr, qddr) = _left_right(traj, knot)
        np.testing.assert_allclose(ql, qr, atol=1e-7)
        np.testing.assert_allclose(qdl, qdr, atol=1e-6)
        if kind != 'hermite':                                    # C2 variants
            np.testing.assert_allclose(qddl, qddr, atol=1e-4)
    for a, b in zip(TIMES[:-1], TIMES[1:]):
        _derivative_check(traj, a, b)


def test_holds_before_and_after():
    traj = JointTrajectoryInterpolator(TIMES + 1.0, POSITIONS)
    q, qd, qdd = traj.sample(0.5)
    np.testing.assert_array_equal(q, POSITIONS[0])
    np.testing.assert_array_equal(qd, 0.0)
    for t in (5.0, 5.5, 100.0):
        q, qd, qdd = traj.sample(t)
        np.testing.assert_array_equal(q, POSITIONS[-1])
        np.testing.assert_array_equal(qd, 0.0)
        np.testing.assert_array_equal(qdd, 0.0)
    single = JointTrajectoryInterpolator([0.5], [[0.1, 0.2]])
    np.testing.assert_array_equal(single.sample(0.0)[0], [0.1, 0.2])
    np.testing.assert_array_equal(single.sample(9.0)[0], [0.1, 0.2])


def test_from_points_starts_at_current_state():
    traj = JointTrajectoryInterpolator.from_points([1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]],
                                                   start_q=[0.3, 0.3])
    q, qd, _ = traj.sample(0.0)
    np.testing.assert_allclose(q, [0.3, 0.3])
    np.testing.assert_allclose(qd, 0.0, atol=1e-12)
    np.testing.assert_allclose(traj.sample(1.0)[0], [1.0, 0.0], atol=1e-12)
    assert traj.duration == 2.0


@pytest.mark.parametrize('args, words', [
    (([], np.zeros((0, 2))), 'at least one point'),
    (([0.0, 1.0, 1.0], np.zeros((3, 2))), 'increase strictly; point 2'),
    (([-1.0, 1.0], np.zeros((2, 2))), '>= 0'),
    (([0.0, 1.0], np.zeros((3, 2))), 'positions: expected shape'),
    (([0.0, 1.0], [[0.0, np.nan], [0.0, 0.0]]), 'point 0 has a non-finite'),
    (([0.0, 1.0], np.zeros((2, 2)), np.zeros((2, 3))), 'velocities: expected shape'),
    (([0.0, 1.0], np.zeros((2, 2)), None, np.zeros((2, 2))), 'need velocities'),
])
def test_bad_trajectories(args, words):
    with pytest.raises(TrajectoryError, match=words.replace('(', r'\(')):
        JointTrajectoryInterpolator(*args)


def test_demo_motion_stays_within_limits_and_starts_at_rest():
    model = RobotModel.from_urdf(ARM)
    motion = DemoMotion.from_model(model, fraction=0.6, seed=4)
    t = np.arange(0.0, motion.fade_in_s + 2 * motion.period_s, 0.005)
    q, qd, qdd = motion.sample(t)
    room = np.minimum(model.upper - motion.center, motion.center - model.lower)
    assert np.all(np.abs(q - motion.center) <= 0.6 * room + 1e-9)
    assert np.all(np.abs(qd) <= 0.6 * model.velocity_limit + 1e-9)
    assert np.all(np.abs(q - motion.center) <= motion.bounds[0] + 1e-9)
    assert np.all(np.abs(qd) <= motion.bounds[1] + 1e-9)
    assert np.all(np.ptp(q, axis=0) > 0.1)                     # every joint moves
    np.testing.assert_allclose(q[0], motion.center)
    np.testing.assert_allclose(qd[0], 0.0, atol=1e-12)
    assert motion.effort_ratio(model) <= 0.6
    # periodic after the fade-in
    later = motion.sample(t[t > motion.fade_in_s] + motion.period_s)[0]
    np.testing.assert_allclose(later, q[t > motion.fade_in_s], atol=1e-9)
    _derivative_check(motion, 0.0, motion.fade_in_s + 1.0)


def test_demo_motion_fit_effort_shrinks_until_it_fits():
    model = RobotModel.from_urdf(ARM).copy()
    model.effort_limit = model.effort_limit * 0.45                 # weaker drives
    center = np.array([0.0, 1.2, 0.0, -0.5, 0.0, 0.5, 0.0])        # a heavy, stretched pose
    motion = DemoMotion.from_model(model, center=center, fraction=0.7, fit=False)
    ratio = motion.effort_ratio(model)
    assert ratio > 0.7                                             # too much as drawn
    amplitude = motion.amplitudes.copy()
    motion.fit_effort(model)
    assert motion.effort_ratio(model) <= 0.7
    assert np.all(motion.amplitudes < amplitude)
    with pytest.raises(TrajectoryError, match='effort limits'):
        DemoMotion.from_model(model, center=center, fraction=0.3)
    with pytest.raises(TrajectoryError, match='inside the limits'):
        DemoMotion(model.lower, model.upper, model.velocity_limit, center=model.upper)


def test_without_a_centre_an_arm_held_out_at_mid_range_moves_about_a_low_gravity_pose():
    # mid-range holds the Panda stretched out: 30 % of its effort limits for gravity alone
    panda = RobotModel.from_urdf(Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf')
    mid = 0.5 * (panda.lower + panda.upper)
    with pytest.raises(TrajectoryError, match='effort limits'):
        DemoMotion.from_model(panda, center=mid, fraction=0.25)    # a centre given is kept
    motion = DemoMotion.from_model(panda, fraction=0.25)
    assert motion.effort_ratio(panda) <= 0.25
    load = np.max(np.abs(panda.gravity(motion.center)) / panda.effort_limit)
    assert load < 0.1 < np.max(np.abs(panda.gravity(mid)) / panda.effort_limit)
    span = panda.upper - panda.lower
    assert np.all(motion.center >= panda.lower + 0.2 * span - 1e-9)   # room to move both ways
    assert np.all(motion.center <= panda.upper - 0.2 * span + 1e-9)
    np.testing.assert_array_equal(low_gravity_pose(panda), motion.center)
    # an arm whose mid-range is fine keeps it
    arm = RobotModel.from_urdf(ARM)
    np.testing.assert_allclose(DemoMotion.from_model(arm, fraction=0.25).center,
                               0.5 * (arm.lower + arm.upper))
