"""Tests of twin_sim.excitation and ``robot-twin excite``."""
import argparse
from pathlib import Path

import numpy as np
import pytest
from robot_twin.sysid_cli import add_excite_parser
from sysid_testing import ARM_URDF, MIXED_URDF, PANDA_FINGERS, PANDA_URDF
from twin_sim.excitation import (design_excitation, excitation_condition,
                                 ExcitationTrajectory, write_trajectory_csv)
from twin_sim.logdata import read_csv, SysIdError
from twin_sim.sysid import load_model, position_limits, predict_torque
from twin_sim.urdf_model import RobotModel

# a UR5e-like arm with a parallel gripper: right_finger_joint = -finger_joint + 0.035 (<mimic>),
# its own limits 0..0.03 m and 0.08 m/s; finger_joint 0..0.04 m
UR_GRIPPER = Path(__file__).resolve().parent / 'data' / 'ur5e_like_mimic_gripper.urdf'

pytestmark = pytest.mark.filterwarnings('ignore::UserWarning')


@pytest.fixture(scope='module')
def arm():
    return load_model(ARM_URDF)


@pytest.fixture(scope='module')
def arm_traj(arm):
    return design_excitation(arm, duration=20.0, harmonics=5, base_frequency=0.1, seed=1,
                             iterations=5, restarts=3)


def test_series_derivatives_are_consistent():
    """Finite differences of q and qd reproduce qd and qdd (hand-derived series)."""
    rng = np.random.default_rng(0)
    traj = ExcitationTrajectory(['a', 'b'], 0.2, rng.standard_normal((2, 4)),
                                rng.standard_normal((2, 4)), np.array([0.1, -0.3]), 5.0)
    t = np.linspace(0.0, 5.0, 20001)
    q, qd, qdd = traj.evaluate(t)
    dt = t[1] - t[0]
    assert np.allclose(np.gradient(q, dt, axis=0)[1:-1], qd[1:-1], atol=1e-5)
    assert np.allclose(np.gradient(qd, dt, axis=0)[1:-1], qdd[1:-1], atol=1e-4)
    # One harmonic by hand: a/w sin(wt) - b/w cos(wt) + q0.
    one = ExcitationTrajectory(['a'], 0.5, np.array([[2.0]]), np.array([[3.0]]),
                               np.array([1.0]), 2.0)
    w = np.pi
    q1, qd1, qdd1 = one.evaluate(np.array([0.3]))
    assert q1[0, 0] == pytest.approx(1.0 + 2.0 / w * np.sin(0.3 * w) - 3.0 / w * np.cos(0.3 * w))
    assert qd1[0, 0] == pytest.approx(2.0 * np.cos(0.3 * w) + 3.0 * np.sin(0.3 * w))
    assert qdd1[0, 0] == pytest.approx(w * (-2.0 * np.sin(0.3 * w) + 3.0 * np.cos(0.3 * w)))


def test_starts_and_ends_at_rest_within_limits(arm, arm_traj):
    traj = arm_traj
    assert traj.duration == pytest.approx(20.0)
    t, q, qd, qdd = traj.sample(200.0)
    lo, hi = position_limits(arm)
    for k in (0, -1):
        assert np.allclose(q[k], traj.q0, atol=1e-9)
        assert np.allclose(qd[k], 0.0, atol=1e-9)
        assert np.allclose(qdd[k], 0.0, atol=1e-9)
    assert np.allclose(traj.q0, 0.5 * (lo + hi))
    margin = 0.1 * (hi - lo)
    assert np.all(q.min(0) >= lo + margin - 1e-6) and np.all(q.max(0) <= hi - margin + 1e-6)
    assert np.all(np.abs(qd).max(0) <= 0.9 * np.asarray(arm.velocityLimit) + 1e-6)
    assert np.all(np.abs(qdd).max(0) <= 0.9 * 5.0 + 1e-6)
    # Each joint reaches its tightest limit (amplitudes are scaled up to it).
    reach = np.maximum.reduce([
        (q.max(0) - traj.q0) / (hi - margin - traj.q0), (traj.q0 - q.min(0)) /
        (traj.q0 - lo - margin), np.abs(qd).max(0) / (0.9 * np.asarray(arm.velocityLimit)),
        np.abs(qdd).max(0) / 4.5])
    assert np.all(reach > 0.97)
    tau = predict_torque(arm, None, q, qd, qdd, 'urdf')
    assert np.all(np.abs(tau).max(0) <= 0.9 * np.asarray(arm.effortLimit))


def test_optimization_lowers_condition_number(arm):
    kwargs = {'duration': 10.0, 'harmonics': 4, 'base_frequency': 0.1, 'seed': 3, 'restarts': 1}
    start = design_excitation(arm, iterations=0, **kwargs)
    tuned = design_excitation(arm, iterations=8, **kwargs)
    assert tuned.condition_number <= start.condition_number
    t = np.linspace(0.0, 10.0, 200, endpoint=False)
    recomputed = excitation_condition(arm, *tuned.evaluate(t), np.ones(7, bool))
    assert recomputed == pytest.approx(tuned.condition_number, rel=1e-6)
    # A trajectory where one joint never moves is singular for that joint's parameters.
    a = tuned.a.copy()
    a[3] = 0.0
    b = tuned.b.copy()
    b[3] = 0.0
    frozen = ExcitationTrajectory(tuned.joint_names, 0.1, a, b, tuned.q0, 10.0)
    assert excitation_condition(arm, *frozen.evaluate(t), np.ones(7, bool)) > 1e8


def test_panda_fingers_held():
    panda = load_model(PANDA_URDF)
    traj = design_excitation(panda, duration=10.0, iterations=0, restarts=2,
                             hold_joints=PANDA_FINGERS)
    t, q, qd, qdd = traj.sample(100.0)
    assert np.all(q[:, 7:] == 0.0) and np.all(qd[:, 7:] == 0.0)
    assert np.all(np.ptp(q[:, :7], axis=0) > 0.3)
    assert traj.info['panda_finger_joint1']['held']
    assert np.isfinite(traj.condition_number)


def test_csv_format(tmp_path, arm_traj):
    path = tmp_path / 'traj.csv'
    rows = write_trajectory_csv(arm_traj, path, rate_hz=50.0)
    assert rows == 1001
    header = path.read_text().splitlines()[0].split(',')
    assert header[:4] == ['time', 'joint1.position', 'joint1.velocity', 'joint1.acceleration']
    assert len(header) == 1 + 3 * 7
    data = np.loadtxt(path, delimiter=',', skiprows=1)
    q, qd, qdd = arm_traj.evaluate(data[:, 0])
    assert np.allclose(data[:, 1::3], q, atol=1e-8)
    assert np.allclose(data[:, 2::3], qd, atol=1e-8)
    assert np.allclose(data[:, 3::3], qdd, atol=1e-7)
    # read_csv ignores the acceleration columns (not a log field): a clear warning.
    with pytest.warns(UserWarning, match='acceleration'):
        read_csv(path)


def test_bad_options(arm):
    with pytest.raises(SysIdError, match='at least 2 harmonics'):
        design_excitation(arm, harmonics=1)
    with pytest.raises(SysIdError, match='unknown joints'):
        design_excitation(arm, hold_joints=['nope'])
    with pytest.raises(SysIdError, match='margin'):
        design_excitation(arm, margin=0.6)


def test_duration_rounded_to_whole_periods(arm):
    traj = design_excitation(arm, duration=12.0, base_frequency=0.2, iterations=0, restarts=1)
    assert traj.duration == pytest.approx(15.0)


def test_continuous_and_prismatic_joints(tmp_path):
    urdf = tmp_path / 'mixed.urdf'
    urdf.write_text(MIXED_URDF)
    model = load_model(urdf)
    traj = design_excitation(model, duration=10.0, iterations=0, restarts=2)
    t, q, qd, qdd = traj.sample(100.0)
    assert np.ptp(q[:, 0]) > 1.0            # continuous: +-pi envelope
    assert np.all(np.abs(q[:, 0]) <= 0.8 * np.pi + 1e-6)
    assert q[:, 1].min() >= 0.0 and q[:, 1].max() <= 0.3  # prismatic within [0, 0.3] m


def run_cli(argv):
    parser = argparse.ArgumentParser(prog='robot-twin')
    add_excite_parser(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli(tmp_path, capsys):
    out = tmp_path / 'traj.csv'
    assert run_cli(['excite', '--urdf', str(ARM_URDF), '--output', str(out), '--duration',
                    '10', '--harmonics', '3', '--iterations', '0', '--rate', '20']) == 0
    text = capsys.readouterr().out
    assert 'condition number' in text and 'collision' in text
    assert len(out.read_text().splitlines()) == 1 + 201
    assert run_cli(['excite', '--urdf', str(ARM_URDF), '--output', str(out),
                    '--harmonics', '1']) == 2
    assert 'at least 2 harmonics' in capsys.readouterr().err


# ------------------------------------------------------------------ <mimic> joints

@pytest.fixture(scope='module')
def ur_gripper():
    return RobotModel.from_urdf(UR_GRIPPER)


def _fingers(model):
    return model.joint_names.index('finger_joint'), model.joint_names.index('right_finger_joint')


def test_a_mimic_finger_follows_its_leader_within_its_own_limits(ur_gripper):
    """The real gripper cannot move the mimic finger on its own: neither may the trajectory."""
    traj = design_excitation(ur_gripper, duration=10.0, iterations=0, restarts=1)
    t, q, qd, qdd = traj.sample(200.0)
    lead, follow = _fingers(ur_gripper)
    np.testing.assert_allclose(q[:, follow], 0.035 - q[:, lead], atol=1e-12)
    np.testing.assert_allclose(qd[:, follow], -qd[:, lead], atol=1e-12)
    np.testing.assert_allclose(qdd[:, follow], -qdd[:, lead], atol=1e-12)
    assert np.ptp(q[:, lead]) > 0.01                 # the gripper is excited, not held
    assert 0.0 <= q[:, follow].min() and q[:, follow].max() <= 0.03      # the follower's limits
    assert 0.005 <= q[:, lead].min() and q[:, lead].max() <= 0.035       # so the leader's too
    assert np.abs(qd[:, follow]).max() <= 0.08
    assert traj.info['right_finger_joint']['mimics'] == 'finger_joint'
    assert traj.info['finger_joint']['mimics'] is None
    assert np.isfinite(traj.condition_number) and traj.condition_number < 1e4


def test_holding_a_mimic_pair_holds_both_where_the_leader_puts_the_follower(ur_gripper):
    lead, follow = _fingers(ur_gripper)
    # a pinocchio model with the coupling given; holding the leader holds the follower
    traj = design_excitation(ur_gripper.pin_model, mimic=ur_gripper.mimic_joints,
                             hold_joints=['finger_joint'], duration=10.0, iterations=0,
                             restarts=1)
    q = traj.sample(50.0)[1]
    assert np.allclose(q[:, lead], 0.005) and np.allclose(q[:, follow], 0.03)
    assert traj.info['right_finger_joint']['held'] and np.ptp(q[:, 0]) > 0.3
    # holding the follower alone holds its leader too, and says so
    with pytest.warns(UserWarning, match='right_finger_joint follows finger_joint .* holding it '
                                         'holds finger_joint'):
        traj = design_excitation(ur_gripper, hold_joints=['right_finger_joint'],
                                 duration=10.0, iterations=0, restarts=1)
    assert traj.info['finger_joint']['held'] and traj.info['right_finger_joint']['held']


def test_a_follower_of_a_locked_leader_is_held_where_the_leader_stands():
    model = RobotModel.from_urdf(UR_GRIPPER, locked={'finger_joint': 0.01})
    traj = design_excitation(model, duration=10.0, iterations=0, restarts=1)
    q = traj.sample(50.0)[1]
    assert np.allclose(q[:, -1], 0.025) and traj.info['right_finger_joint']['held']


def test_a_mimic_no_leader_position_satisfies_is_refused(ur_gripper):
    with pytest.raises(SysIdError, match=r'no position of joint finger_joint within its limits '
                                         r"keeps its <mimic> joints \['right_finger_joint'\]"):
        design_excitation(ur_gripper.pin_model, duration=10.0, iterations=0, restarts=1,
                          mimic={'right_finger_joint': ('finger_joint', 1.0, 0.5)})
    with pytest.raises(SysIdError, match="mimics 'nope'"):
        design_excitation(ur_gripper.pin_model, mimic={'right_finger_joint': ('nope', 1, 0)})


def test_cli_moves_a_mimic_finger_with_its_leader(tmp_path, capsys):
    """``robot-twin excite`` passes the RobotModel (with its <mimic> joints), not pinocchio's."""
    out = tmp_path / 'grip.csv'
    assert run_cli(['excite', '--urdf', str(UR_GRIPPER), '--output', str(out), '--duration',
                    '10', '--iterations', '0', '--rate', '50']) == 0
    log = read_csv(out)
    lead = log.position[:, log.joint_names.index('finger_joint')]
    follow = log.position[:, log.joint_names.index('right_finger_joint')]
    assert np.ptp(lead) > 0.01
    np.testing.assert_allclose(follow, 0.035 - lead, atol=1e-9)
    assert '(<mimic>: follows finger_joint)' in capsys.readouterr().out
