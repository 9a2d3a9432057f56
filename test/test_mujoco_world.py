"""MuJoCo world (twin_sim/mujoco_world.py): physics checked against pinocchio and by hand."""
from pathlib import Path
import warnings

from ft_testing import reading_from_kinematics
import numpy as np
import pybullet_data
import pytest
from twin_sim.batch_twin import BatchDynamics
from twin_sim.mujoco_world import gain_inertia_along, MujocoWorld, MujocoWorldError
from twin_sim.urdf_model import Payload, RobotModel

ARM = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'
POSE = np.array([0.0, 0.8, 0.0, -1.0, 0.0, 0.5, 0.0])
PAYLOAD = Payload(2.0, [0.01, 0.0, 0.05], np.eye(3) * 0.001)
LOSSLESS = {'joint_friction': np.zeros(7), 'joint_damping': np.zeros(7)}


def test_holding_torque_and_sensor_reading_are_the_models():
    model = RobotModel.from_urdf(ARM)
    world = MujocoWorld(ARM, payload=PAYLOAD, initial_q=POSE, **LOSSLESS)
    gravity = model.gravity(POSE, payload=PAYLOAD)
    world.set_control('position', POSE, feedforward=gravity)
    world.step(300)
    m = world.measure()
    assert np.allclose(m.q, POSE, atol=1e-9)
    assert np.allclose(m.effort, gravity, atol=1e-6)
    # the distal bodies' weight, in the sensor frame (docs/conventions.md)
    assert np.allclose(m.wrench, model.ft_wrench(POSE, np.zeros(7), np.zeros(7),
                                                 payload=PAYLOAD), atol=1e-6)
    assert m.t == pytest.approx(0.3)


def test_a_torque_step_moves_the_arm_as_the_model_says():
    model = RobotModel.from_urdf(ARM)
    world = MujocoWorld(ARM, payload=PAYLOAD, initial_q=POSE, **LOSSLESS)
    tau = model.gravity(POSE, payload=PAYLOAD) + np.random.default_rng(1).normal(0, 5.0, 7)
    q0, qd0 = world.state()
    run = world.run_torque(tau[None])
    qdd = (run.qd[0] - qd0) / world.dt
    assert np.allclose(model.inverse_dynamics(q0, qd0, qdd, payload=PAYLOAD), tau, atol=1e-6)
    assert np.allclose(run.wrench[0], model.ft_wrench(q0, qd0, qdd, payload=PAYLOAD), atol=1e-6)
    assert np.allclose(run.effort[0], tau)


def test_the_sensor_reading_in_motion_is_what_the_moving_load_exerts():
    """Velocity products and a push included: checked against the load's motion, no dynamics."""
    model = RobotModel.from_urdf(ARM)
    payload = Payload(2.0, [0.0, 0.0, 0.05], 0.4 * 2.0 * 0.05 ** 2 * np.eye(3))
    loaded = model.with_payload(payload)
    world = MujocoWorld(ARM, payload=payload, initial_q=POSE)
    push = np.array([3.0, -2.0, 4.0])     # N, on the payload's centre from step 300 on
    # shoulder, elbow and wrist at once: their velocities' products load the tool the most
    amplitude = np.array([0.0, 0.2, 0.0, 0.3, 0.0, 0.4, 0.0])
    force_err = torque_err = 0.0
    before = world.measure()
    for k in range(600):
        phase = 2.0 * np.pi * world.time
        q = POSE + amplitude * np.sin(phase) ** 2
        qd = amplitude * 2.0 * np.pi * np.sin(2.0 * phase)
        qdd = amplitude * 8.0 * np.pi ** 2 * np.cos(2.0 * phase)
        world.set_control('position', q, qd, loaded.inverse_dynamics(q, qd, qdd))
        if k == 300:
            origin, rotation = world.link_pose('ft_sensor')
            world.set_external_force('twin_payload', push, origin + rotation @ payload.com)
        world.step()
        after = world.measure()
        if k >= 300:
            rotation = model.frame_pose(before.q, 'ft_sensor')[:3, :3]
            f = rotation.T @ push
            truth = reading_from_kinematics(model, loaded.ft_distal_inertia, before.q,
                                            before.qd, (after.qd - before.qd) / world.dt)
            truth += np.concatenate([f, np.cross(payload.com, f)])
            force_err = max(force_err, np.max(np.abs(after.wrench[:3] - truth[:3])))
            torque_err = max(torque_err, np.max(np.abs(after.wrench[3:] - truth[3:])))
        before = after
    assert np.max(np.abs(before.qd)) > 1.0        # it moved briskly
    assert force_err < 1e-4 and torque_err < 1e-5, (force_err, torque_err)


def test_mimic_fingers_move_on_their_own_as_in_the_twin_s_model():
    """The Panda's second finger mimics the first in its URDF; the twin moves it on its own."""
    panda = Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf'
    model = RobotModel.from_urdf(panda)
    pose = np.array([0.0, -0.3, 0.0, -2.0, 0.0, 1.8, 0.8, 0.02, 0.03])
    world = MujocoWorld(panda, initial_q=pose, joint_friction=np.zeros(9),
                        joint_damping=np.zeros(9))
    tau = model.gravity(pose)
    tau[7] += 0.05                                       # push one finger only
    q0, qd0 = world.state()
    run = world.run_torque(tau[None])
    qdd = (run.qd[0] - qd0) / world.dt
    assert qdd[7] > 0.1 and abs(qdd[8]) < 0.1 * qdd[7]      # (coupled: -qdd[7])
    np.testing.assert_allclose(model.inverse_dynamics(q0, qd0, qdd), tau, atol=1e-6)


def test_the_drive_follows_a_reference_with_feedforward():
    t = np.arange(1500) * 1e-3
    w = 2.0 * np.pi * 0.8
    q = POSE + 0.1 * (1.0 - np.cos(w * t))[:, None] * np.ones(7)    # starts at rest
    qd = 0.1 * w * np.sin(w * t)[:, None] * np.ones(7)
    qdd = 0.1 * w * w * np.cos(w * t)[:, None] * np.ones(7)
    world = MujocoWorld(ARM, initial_q=q[0])
    ff = BatchDynamics(world.model, wrench=False).inverse_dynamics(q, qd, qdd)[0]
    run = world.run_position(q, qd, ff)
    error = np.abs(run.q[:-1] - q[1:])
    # the loop only rejects friction (0.2..0.8 N m) and the discretization: sub-milliradian
    assert error.max() < 5e-3 and np.sqrt(np.mean(error ** 2)) < 5e-4
    assert np.allclose(run.t, (np.arange(1500) + 1) * 1e-3)
    # without friction the drive's torque is the feed-forward: the feedback only takes up the
    # step's discretization (a few thousandths of the torque)
    lossless = MujocoWorld(ARM, initial_q=q[0], **LOSSLESS)
    run = lossless.run_position(q, qd, ff)
    assert np.sqrt(np.mean((run.effort - ff) ** 2)) < 3e-3 * np.sqrt(np.mean(ff ** 2))


def test_a_far_reaching_fast_motion_needs_the_implicit_drive():
    """Explicit gains tuned at one pose diverge where the arm is much lighter; implicit holds."""
    t = np.arange(1200) * 1e-3
    w = 2.0 * np.pi * 0.8
    q = POSE + 0.3 * (1.0 - np.cos(w * t))[:, None] * np.ones(7)
    qd = 0.3 * w * np.sin(w * t)[:, None] * np.ones(7)
    qdd = 0.3 * w * w * np.cos(w * t)[:, None] * np.ones(7)
    errors = {}
    for integrator in ('euler', 'implicitfast'):
        world = MujocoWorld(ARM, initial_q=q[0], integrator=integrator)
        ff = BatchDynamics(world.model, wrench=False).inverse_dynamics(q, qd, qdd)[0]
        errors[integrator] = np.abs(world.run_position(q, qd, ff).q[:-1] - q[1:]).max()
    assert errors['euler'] > 0.5 and errors['implicitfast'] < 0.02
    assert gain_inertia_along(world.model, q[::100]).trace() < world.gain_inertia.trace()


def test_coulomb_friction_sticks_and_slips():
    # the other joints stick firmly, so that only joint7 can move
    world = MujocoWorld(ARM, initial_q=POSE, joint_friction=[200.0] * 6 + [0.5],
                        joint_damping=np.zeros(7))
    model = world.model
    hold = model.gravity(POSE)
    tau = hold.copy()
    tau[6] += 0.4                      # below the 0.5 N m of friction: joint7 stays
    stuck = world.run_torque(np.tile(tau, (200, 1)))
    assert abs(stuck.q[-1, 6] - POSE[6]) < 1e-3       # MuJoCo's friction creeps a little
    world.reset(POSE)
    tau[6] = hold[6] + 0.9             # above: it accelerates with the difference
    slip = world.run_torque(np.tile(tau, (200, 1)))
    assert slip.q[-1, 6] - POSE[6] > 0.05
    assert world.coulomb_friction()[6] == pytest.approx(0.5)


def test_limits_locks_payload_and_external_force():
    model = RobotModel.from_urdf(ARM)
    world = MujocoWorld(ARM, initial_q=POSE, **LOSSLESS)
    hold = model.gravity(POSE)
    world.set_torque_limit(np.full(7, 10.0))
    run = world.run_torque(np.tile(hold, (5, 1)))
    assert np.max(np.abs(run.effort)) == pytest.approx(10.0)     # joint2 needs more
    world.set_torque_limit(None)
    world.reset(POSE)
    world.lock_joint('joint4')
    run = world.run_torque(np.zeros((300, 7)))                    # the arm falls ...
    assert abs(run.q[-1, 3] - POSE[3]) < 1e-3                    # ... but joint4 holds
    assert abs(run.q[-1, 1] - POSE[1]) > 0.1
    world.unlock_joint('joint4')
    world.reset(POSE)
    world.set_payload(PAYLOAD)
    world.set_control('position', POSE, feedforward=model.gravity(POSE, payload=PAYLOAD))
    world.step(200)
    before = world.measure().wrench
    position, rotation = world.link_pose('ft_sensor')
    world.set_external_force('ft_sensor', [0.0, 0.0, -20.0], position)
    world.step(200)                    # the drive holds the arm still against the push
    after = world.measure().wrench
    assert np.allclose(after[:3] - before[:3], rotation.T @ [0.0, 0.0, -20.0], atol=0.05)
    world.clear_external_forces()


def test_bad_input_is_refused():
    with pytest.raises(MujocoWorldError, match='cannot read URDF|URDF'):
        MujocoWorld(ARM.parent / 'missing.urdf')
    world = MujocoWorld(ARM)
    with pytest.raises(MujocoWorldError, match='expected 7 values'):
        world.set_control('position', np.zeros(3))
    with pytest.raises(MujocoWorldError, match='control mode'):
        world.set_control('velocity', np.zeros(7))
    with pytest.raises(MujocoWorldError, match=r'expected shape \(T, 7\)'):
        world.run_position(np.zeros((5, 3)))
    with pytest.raises(MujocoWorldError, match='unknown link'):
        world.set_external_force('no_link', [1, 0, 0], [0, 0, 0])


def test_an_impossible_inertia_is_named_with_what_to_do():
    """pybullet_data's xArm 6: link2's inertia breaks the triangle inequality."""
    urdf = Path(pybullet_data.getDataPath()) / 'xarm' / 'xarm6_robot.urdf'
    with pytest.raises(MujocoWorldError, match=r'link2.*triangle inequality.*PyBullet engine'):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')       # the URDF loader's own warning about it
            MujocoWorld(urdf)


def test_scheduled_gains_follow_the_far_reaching_motion_explicitly():
    """The explicit drive retuned along the reference follows what one pose's gains cannot."""
    from twin_sim.mujoco_world import GAIN_BAND
    t = np.arange(1200) * 1e-3
    w = 2.0 * np.pi * 0.8
    q = POSE + 0.3 * (1.0 - np.cos(w * t))[:, None] * np.ones(7)
    qd = 0.3 * w * np.sin(w * t)[:, None] * np.ones(7)
    qdd = 0.3 * w * w * np.cos(w * t)[:, None] * np.ones(7)
    world = MujocoWorld(ARM, initial_q=q[0])
    ff = BatchDynamics(world.model, wrench=False).inverse_dynamics(q, qd, qdd)[0]
    pieces = world.gain_schedule(q)
    assert len(pieces) > 1 and pieces[0][0] == 0 and pieces[-1][1] == len(q)
    assert all(a[1] == b[0] for a, b in zip(pieces[:-1], pieces[1:]))
    run = world.run_position(q, qd, ff, schedule_gains=True)
    error = np.abs(run.q[:-1] - q[1:])
    assert error.max() < 5e-3 and np.sqrt(np.mean(error ** 2)) < 5e-4
    assert np.allclose(run.t, (np.arange(1200) + 1) * 1e-3)
    # every checked pose of the reference lies in the band of the gains it ran with
    for k0, k1, inertia in pieces[1:]:
        mass = world.inertia_at(q[k0:k1:10])
        ratio = np.linalg.eigvals(np.linalg.solve(inertia, mass)).real
        assert ratio.min() >= 1.0 / GAIN_BAND and ratio.max() <= GAIN_BAND


def test_the_engine_s_inertia_is_the_model_s_and_retuning_keeps_the_integral():
    model = RobotModel.from_urdf(ARM)
    rotor = np.linspace(0.01, 0.07, 7)
    world = MujocoWorld(ARM, initial_q=POSE, payload=PAYLOAD, rotor_inertia=rotor, **LOSSLESS)
    poses = np.array([POSE, np.zeros(7), POSE[::-1]])
    for pose, mass in zip(poses, world.inertia_at(poses)):
        np.testing.assert_allclose(mass, model.mass_matrix(pose, payload=PAYLOAD)
                                   + np.diag(rotor), atol=1e-8)
    # hold with a wrong feed-forward: the integral takes up the difference ...
    hold = model.gravity(POSE, payload=PAYLOAD)
    world.set_control('position', POSE, feedforward=hold - 2.0)
    world.step(1500)
    before = world.measure().effort
    # ... and a retune to another pose's inertia keeps the joint torque it gives
    run = world.run_position(np.tile(POSE, (1, 1)), feedforward=(hold - 2.0)[None])
    world._retune(world.inertia_at(poses[1])[0])
    after = world.run_position(np.tile(POSE, (1, 1)), feedforward=(hold - 2.0)[None])
    np.testing.assert_allclose(before, hold, atol=0.05)
    np.testing.assert_allclose(after.effort[0], run.effort[0], atol=0.05)
