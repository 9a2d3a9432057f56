"""SimWorld physics against hand-derived values and an independent engine (pinocchio)."""
from pathlib import Path
import re
from types import SimpleNamespace

from ft_testing import reading_from_kinematics
import numpy as np
import pinocchio as pin
import pytest

from twin_sim.urdf_model import Payload, RobotModel
from twin_sim.world import SimWorld, WorldError

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / 'urdf' / 'robot_twin_arm.urdf'
G = 9.81
POSE = np.array([0.3, 0.5, -0.2, -1.0, 0.4, 0.7, 0.1])
LOSSLESS = {'joint_damping': np.zeros(7), 'joint_friction': np.zeros(7)}


@pytest.fixture(scope='module')
def model():
    return RobotModel.from_urdf(ARM)


def energy(pm, data, q, qd):
    return pin.computeKineticEnergy(pm, data, q, qd) + pin.computePotentialEnergy(pm, data, q)


def _disk_urdf(tmp_path, inertia_zz=0.02, damping=0.0, friction=0.0):
    """One revolute joint about the vertical axis carrying a disk (gravity does no work)."""
    text = f"""<?xml version="1.0"?>
<robot name="disk">
  <link name="base"/>
  <joint name="spin" type="revolute">
    <parent link="base"/><child link="disk"/>
    <origin xyz="0 0 0.1" rpy="0 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-1000" upper="1000" effort="50" velocity="100"/>
    <dynamics damping="{damping}" friction="{friction}"/>
  </joint>
  <link name="disk">
    <inertial><origin xyz="0 0 0" rpy="0 0 0"/><mass value="2.0"/>
      <inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="{inertia_zz}"/></inertial>
  </link>
</robot>
"""
    path = tmp_path / 'disk.urdf'
    path.write_text(text)
    return path


def _two_link_urdf(tmp_path):
    """
    Write a 2-DoF arm whose sensor link has a tilted, offset inertial; joints out of order.

    Hand-derived sensor reading at rest: the only distal body is ``tool`` (1.5 kg at
    (0.02, 0, 0.04) in the sensor frame).
    """
    text = """<?xml version="1.0"?>
<robot name="two">
  <link name="base"><inertial><mass value="1"/>
    <inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial></link>
  <link name="l1"><inertial><origin xyz="0 0 0.2"/><mass value="2"/>
    <inertia ixx="0.02" ixy="0" ixz="0" iyy="0.02" iyz="0" izz="0.004"/></inertial></link>
  <link name="l2"><inertial><origin xyz="0.15 0 0"/><mass value="1.2"/>
    <inertia ixx="0.002" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.01"/></inertial></link>
  <link name="ft_sensor"><inertial><origin xyz="0.01 0.005 0.01" rpy="0.3 -0.2 0.5"/>
    <mass value="0.2"/>
    <inertia ixx="0.0003" ixy="0.00001" ixz="0" iyy="0.0002" iyz="0" izz="0.00015"/>
  </inertial></link>
  <link name="tool"><inertial><origin xyz="0.02 0 0.01"/><mass value="1.5"/>
    <inertia ixx="0.001" ixy="0" ixz="0" iyy="0.001" iyz="0" izz="0.001"/></inertial></link>
  <joint name="ft_joint" type="fixed"><parent link="l2"/><child link="ft_sensor"/>
    <origin xyz="0.3 0 0" rpy="0 1.2 0"/></joint>
  <joint name="tool_joint" type="fixed"><parent link="ft_sensor"/><child link="tool"/>
    <origin xyz="0 0 0.03"/></joint>
  <joint name="shoulder" type="revolute"><parent link="base"/><child link="l1"/>
    <origin xyz="0 0 0.1"/><axis xyz="0 1 0"/>
    <limit lower="-2" upper="2" effort="100" velocity="2"/></joint>
  <joint name="elbow" type="revolute"><parent link="l1"/><child link="l2"/>
    <origin xyz="0 0 0.4"/><axis xyz="0 1 0"/>
    <limit lower="-2" upper="2" effort="60" velocity="2"/></joint>
</robot>
"""
    path = tmp_path / 'two.urdf'
    path.write_text(text)
    return path


def _smooth_run(world, seconds=1.0):
    """Track a smooth motion from rest; return the measurements (index 0 = initial state)."""
    out = [world.measure()]
    for t in np.arange(0.0, seconds, world.dt):
        fade = np.sin(np.pi * t / seconds) ** 2
        world.set_control('position', POSE + 0.3 * fade * np.sin(np.pi * t + np.arange(7)))
        world.step()
        out.append(world.measure())
    return out


def test_effort_at_rest_is_gravity_torque(model):
    world = SimWorld(ARM)
    rng = np.random.default_rng(3)
    for _ in range(3):
        q = rng.uniform(0.6 * world.lower, 0.6 * world.upper)
        world.reset(q)
        world.step(300)
        m = world.measure()
        assert np.max(np.abs(m.q - q)) < 1e-6
        np.testing.assert_allclose(m.effort, model.gravity(m.q), atol=1e-6)


def test_ft_reads_payload_weight_at_rest(model):
    """Payload + tool weight, hand-derived from the URDF numbers, within 1 %."""
    world = SimWorld(ARM)
    world.reset(POSE)
    payload = Payload(2.5, [0.01, -0.02, 0.09], np.diag([0.003, 0.004, 0.002]))
    world.set_payload(payload)
    world.step(500)
    m = world.measure()
    _, rot = world.link_pose('ft_sensor')
    g_sensor = rot.T @ np.array([0.0, 0.0, -G])
    # distal bodies in the sensor frame: tool 0.3 kg at (0.01, 0, 0.05) + 0.03 z, and payload
    masses = [(0.3, np.array([0.01, 0.0, 0.08])), (2.5, payload.com)]
    force = sum(mass for mass, _ in masses) * g_sensor
    torque = sum(np.cross(com, mass * g_sensor) for mass, com in masses)
    assert np.linalg.norm(m.wrench[:3] - force) < 0.01 * np.linalg.norm(force)
    assert np.linalg.norm(m.wrench[3:] - torque) < 0.01 * np.linalg.norm(torque)
    assert abs(np.linalg.norm(m.wrench[:3]) - 2.8 * G) < 0.01 * 2.8 * G
    # and the independent model agrees to numerical precision
    zero = np.zeros(7)
    np.testing.assert_allclose(m.wrench, model.ft_wrench(m.q, zero, zero, payload=payload),
                               atol=1e-6)
    np.testing.assert_allclose(m.effort, model.gravity(m.q, payload=payload), atol=1e-6)
    # removing the payload brings the tool-only reading back
    world.set_payload(None)
    world.step(300)
    m = world.measure()
    np.testing.assert_allclose(m.wrench[:3], 0.3 * g_sensor, atol=1e-6)


def test_dynamics_match_pinocchio_along_a_motion(model):
    """Effort = RNEA at the finite-difference acceleration; FT reading = model wrench."""
    world = SimWorld(ARM, **LOSSLESS)
    world.reset(POSE)
    out = _smooth_run(world)
    q = np.array([m.q for m in out])
    qd = np.array([m.qd for m in out])
    effort_err, wrench_err, peak = 0.0, 0.0, 0.0
    for k in range(1, len(out)):
        qdd = (qd[k] - qd[k - 1]) / world.dt
        tau = model.inverse_dynamics(q[k - 1], qd[k - 1], qdd)
        effort_err = max(effort_err, np.max(np.abs(out[k].effort - tau)))
        wrench = model.ft_wrench(q[k - 1], qd[k - 1], qdd)
        wrench_err = max(wrench_err, np.max(np.abs(out[k].wrench - wrench)))
        peak = max(peak, np.linalg.norm(wrench[:3]))
    assert np.max(np.abs(qd)) > 0.3            # it did move
    assert effort_err < 1e-6
    # the reading is Newton-Euler of this model over the step (module docstring), so it agrees
    # to rounding; the next test checks it against the load's motion, without pinocchio
    assert peak > 1.0 and wrench_err < 1e-9


def test_the_ft_reading_in_motion_is_what_the_moving_load_exerts(model):
    """
    Each reading is what the load exerts as the step moved it, pushes included.

    PyBullet's joint reaction, the reading before, was exact at rest but 0.6 N off here:
    it missed part of the load's velocity-product forces.
    """
    payload = Payload(2.0, [0.0, 0.0, 0.05], 0.4 * 2.0 * 0.05 ** 2 * np.eye(3))
    world = SimWorld(ARM)
    world.set_payload(payload)
    world.reset(POSE)
    load = model.with_payload(payload).ft_distal_inertia
    push = np.array([3.0, -2.0, 4.0])     # N, on the payload's centre every third step
    # shoulder, elbow and wrist at once: their velocities' products load the tool the most
    amplitude = np.array([0.0, 0.2, 0.0, 0.3, 0.0, 0.4, 0.0])
    out, pushes = [world.measure()], [np.zeros(6)]
    for k in range(600):
        phase = 2.0 * np.pi * world.time
        world.set_control('position', POSE + amplitude * np.sin(phase) ** 2,
                          amplitude * 2.0 * np.pi * np.sin(2.0 * phase))
        felt = np.zeros(6)
        if k % 3 == 0:
            position, rotation = world.link_pose('twin_payload')
            origin, sensor = world.link_pose('ft_sensor')
            world.apply_external_force('twin_payload', push, position)
            felt = np.concatenate([sensor.T @ push, sensor.T @ np.cross(position - origin, push)])
        world.step()
        out.append(world.measure())
        pushes.append(felt)
    force_err = torque_err = 0.0
    for before, after, felt in zip(out[300:-1], out[301:], pushes[301:]):
        qdd = (after.qd - before.qd) / world.dt
        truth = reading_from_kinematics(model, load, before.q, before.qd, qdd) + felt
        force_err = max(force_err, np.max(np.abs(after.wrench[:3] - truth[:3])))
        torque_err = max(torque_err, np.max(np.abs(after.wrench[3:] - truth[3:])))
    assert np.max(np.abs(out[-1].qd)) > 1.0        # it moved briskly
    assert force_err < 1e-4 and torque_err < 1e-5, (force_err, torque_err)


@pytest.mark.parametrize('mode', ['position', 'torque'])
def test_the_ft_reading_of_several_steps_is_that_of_the_last(mode):
    """step(3) reads as three single steps do: a push before them acts in the first only."""
    readings = []
    for split in (False, True):
        world = SimWorld(ARM)
        world.reset(POSE, np.linspace(-0.5, 0.5, 7))
        if mode == 'torque':
            world.set_control('torque', world.measure().effort + 2.0)
        position, _ = world.link_pose('tool')
        world.apply_external_force('tool', [0.0, 30.0, 0.0], position)
        for _ in range(3 if split else 1):
            world.step(1 if split else 3)
        readings.append(world.measure().wrench)
    np.testing.assert_array_equal(readings[0], readings[1])


def test_friction_is_accounted_for_exactly(model):
    """Check effort + friction torque = rigid-body torque, step by step, with URDF friction."""
    world = SimWorld(ARM)
    world.reset(POSE)
    out, friction = [world.measure()], [None]
    for t in np.arange(0.0, 0.6, world.dt):
        world.set_control('position', POSE + 0.2 * np.sin(np.pi * t) ** 2)
        world.step()
        out.append(world.measure())
        friction.append(world.friction_torque())
    q = np.array([m.q for m in out])
    qd = np.array([m.qd for m in out])
    for k in range(1, len(out)):
        qdd = (qd[k] - qd[k - 1]) / world.dt
        tau = model.inverse_dynamics(q[k - 1], qd[k - 1], qdd)
        np.testing.assert_allclose(out[k].effort + friction[k], tau, atol=1e-6)
    sliding = np.abs(qd[-100]) > 1e-3
    np.testing.assert_allclose(np.abs(friction[-100] + world.damping * qd[-101])[sliding],
                               world.friction[sliding], rtol=1e-3)


def test_energy_conserved_zero_gravity():
    """Coasting without gravity for 2 s (no limit reached): kinetic energy drifts < 1 %."""
    world = SimWorld(ARM, gravity=(0.0, 0.0, 0.0), **LOSSLESS)
    pm = pin.buildModelFromUrdf(str(ARM))
    pm.gravity.linear = np.zeros(3)
    data = pm.createData()
    q0, qd0 = np.array([0.2, 0.6, 0.3, -0.9, 0.5, 0.8, 0.0]), np.full(7, 0.4)
    world.reset(q0, qd0)
    world.set_control('torque', np.zeros(7))
    e0 = energy(pm, data, q0, qd0)
    drift = 0.0
    for _ in range(2000):
        world.step()
        m = world.measure()
        assert np.all(m.q > world.lower + 0.05) and np.all(m.q < world.upper - 0.05)
        drift = max(drift, abs(energy(pm, data, m.q, m.qd) - e0))
    assert drift < 0.01 * e0


def test_energy_conserved_falling_within_limits():
    """Free fall under gravity (no limit reached): drift < 1 % of the kinetic energy gained."""
    world = SimWorld(ARM, **LOSSLESS)
    pm = pin.buildModelFromUrdf(str(ARM))
    data = pm.createData()
    q0 = np.array([0.0, 0.3, 0.0, -0.3, 0.0, 0.3, 0.0])
    world.reset(q0)
    world.set_control('torque', np.zeros(7))
    e0 = energy(pm, data, q0, np.zeros(7))
    drift, kinetic = 0.0, 0.0
    for _ in range(500):
        world.step()
        m = world.measure()
        assert np.all(m.q > world.lower + 0.05) and np.all(m.q < world.upper - 0.05)
        drift = max(drift, abs(energy(pm, data, m.q, m.qd) - e0))
        kinetic = max(kinetic, pin.computeKineticEnergy(pm, data, m.q, m.qd))
    assert kinetic > 20.0
    assert drift < 0.01 * kinetic


def test_energy_free_swing_two_seconds(tmp_path):
    """
    2 s of chaotic frictionless swing at 1 kHz (limits removed so the arm can hang).

    Bullet integrates with semi-implicit Euler: the drift stays under 6 % of the peak kinetic
    energy at 1 kHz and shrinks at least 1.6x when dt halves (a first-order integrator error,
    not a modelling error).
    """
    text = re.sub(r'lower="[-0-9.]+" upper="[-0-9.]+"', 'lower="-1000" upper="1000"',
                  ARM.read_text())
    urdf = tmp_path / 'arm_nolimits.urdf'
    urdf.write_text(text)
    pm = pin.buildModelFromUrdf(str(urdf))
    data = pm.createData()
    q0 = np.array([0.0, np.pi - 0.6, 0.3, -0.5, 0.2, 0.4, 0.0])
    drifts = []
    for dt in (0.001, 0.0005):
        world = SimWorld(urdf, dt=dt, **LOSSLESS)
        world.reset(q0)
        world.set_control('torque', np.zeros(7))
        e0 = energy(pm, data, q0, np.zeros(7))
        drift, kinetic = 0.0, 0.0
        for _ in range(int(round(2.0 / dt))):
            world.step()
            m = world.measure()
            drift = max(drift, abs(energy(pm, data, m.q, m.qd) - e0))
            kinetic = max(kinetic, pin.computeKineticEnergy(pm, data, m.q, m.qd))
        world.close()
        drifts.append(drift)
        if dt == 0.001:
            assert kinetic > 5.0
            assert drift < 0.06 * kinetic
    assert drifts[1] < drifts[0] / 1.6


def test_viscous_damping_law(tmp_path):
    """A disk spinning on a damped joint: qd(t) = qd0 exp(-b t / I)."""
    inertia, b = 0.02, 0.05
    world = SimWorld(_disk_urdf(tmp_path, inertia_zz=inertia, damping=b), ft_link=None)
    world.reset([0.0], [3.0])
    world.set_control('torque', [0.0])
    world.step(1000)
    expected = 3.0 * np.exp(-b * 1.0 / inertia)
    assert abs(world.measure().qd[0] - expected) < 0.005 * expected
    assert world.measure().wrench is None


def test_coulomb_friction_decelerates_linearly_then_sticks(tmp_path):
    """qd(t) = qd0 - fc t / I until it stops; then it stays stopped under a smaller torque."""
    inertia, fc = 0.02, 0.1
    world = SimWorld(_disk_urdf(tmp_path, inertia_zz=inertia, friction=fc), ft_link=None)
    world.reset([0.0], [2.0])
    world.set_control('torque', [0.0])
    world.step(200)
    assert abs(world.measure().qd[0] - (2.0 - fc * 0.2 / inertia)) < 1e-3
    np.testing.assert_allclose(world.friction_torque(), [-fc], rtol=1e-6)
    world.step(300)                                   # stops at 0.4 s
    world.set_control('torque', [0.8 * fc])           # below the breakaway torque
    world.step(500)
    assert abs(world.measure().qd[0]) < 1e-9
    world.set_friction_offset('spin', 0.05)           # fault-style increase
    np.testing.assert_allclose(world.coulomb_friction(), [fc + 0.05])
    world.set_control('torque', [0.3])
    world.step(100)
    qd_100 = world.measure().qd[0]
    assert abs(qd_100 - (0.3 - fc - 0.05) * 0.1 / inertia) < 2e-3


def test_general_urdf_sensor_frame_and_joint_order(tmp_path):
    """Tilted sensor inertial, joints listed out of document order, a custom joint order."""
    urdf = _two_link_urdf(tmp_path)
    world = SimWorld(urdf, joint_names=['elbow', 'shoulder'])
    assert world.joint_names == ('elbow', 'shoulder')
    q = np.array([0.7, -0.4])                         # elbow, shoulder
    world.reset(q)
    world.step(500)
    m = world.measure()
    assert np.max(np.abs(m.q - q)) < 1e-6
    _, rot = world.link_pose('ft_sensor')
    g_sensor = rot.T @ np.array([0.0, 0.0, -G])
    com = np.array([0.02, 0.0, 0.04])
    np.testing.assert_allclose(m.wrench[:3], 1.5 * g_sensor, atol=1e-6)
    np.testing.assert_allclose(m.wrench[3:], np.cross(com, 1.5 * g_sensor), atol=1e-6)
    model = RobotModel.from_urdf(urdf)               # model order: shoulder, elbow
    np.testing.assert_allclose(m.effort[::-1], model.gravity(m.q[::-1]), atol=1e-6)


@pytest.mark.parametrize('order', [None, ['elbow', 'shoulder']])
def test_the_controller_s_mass_matrix_and_bias_are_its_inverse_dynamics(tmp_path, order):
    # what the saturated-torque solve relies on: tau(a) = M a + bias for every a, in the
    # world's joint order (also when it is not the model's)
    urdf = ARM if order is None else _two_link_urdf(tmp_path)
    world = SimWorld(urdf, joint_names=order)
    rng = np.random.default_rng(5)
    q, qd = rng.uniform(-1.0, 1.0, world.n), rng.uniform(-1.0, 1.0, world.n)
    mass, bias = world._mass_and_bias(q, qd)
    np.testing.assert_allclose(mass, mass.T)
    for _ in range(3):
        a = rng.uniform(-2.0, 2.0, world.n)
        np.testing.assert_allclose(mass @ a + bias, world._inverse_dynamics(q, qd, a),
                                   atol=1e-9)


def test_worlds_are_independent():
    a = SimWorld(ARM)
    b = SimWorld(ARM)
    assert a.client_id != b.client_id
    a.reset(POSE)
    a.set_control('torque', np.zeros(7))
    b.reset(np.zeros(7))
    alone = SimWorld(ARM)
    alone.reset(POSE)
    alone.set_control('torque', np.zeros(7))
    for _ in range(200):
        a.step()
        b.step()
        alone.step()
    np.testing.assert_array_equal(a.measure().q, alone.measure().q)
    assert np.max(np.abs(b.measure().q)) < 1e-9
    a.close()
    b.step()                                          # closing one leaves the other running


def test_position_and_velocity_control_converge():
    world = SimWorld(ARM)
    world.reset(np.zeros(7))
    target = np.array([0.5, 0.6, -0.4, -0.9, 0.3, 0.5, -0.2])
    ramp = np.linspace(0.0, 1.0, 1000)
    for s in ramp:                                    # a ramped command, as a controller sends
        world.set_control('position', s * target)
        world.step()
    world.step(1000)
    assert np.max(np.abs(world.measure().q - target)) < 1e-3
    assert np.all(np.abs(world.measure().effort) <= world.effort_limit + 1e-9)
    velocity = np.array([0.2, 0.0, 0.0, 0.0, 0.0, 0.0, -0.3])
    world.set_control('velocity', velocity)
    world.step(500)
    np.testing.assert_allclose(world.measure().qd, velocity, atol=2e-3)


def test_a_saturated_joint_does_not_throw_the_others_around():
    # a 2 mrad step of the shoulder's reference asks more torque than joint2 has: before,
    # the torques meant to cancel its coupling drove the wrist joints beyond their limits
    world = SimWorld(ARM)
    world.reset(np.zeros(7))
    world.step(200)
    ref = np.zeros(7)
    ref[1] = 0.002
    world.set_control('position', ref)
    peak = np.zeros(7)
    for _ in range(300):
        world.step()
        peak = np.maximum(peak, np.abs(world.measure().qd))
    assert np.all(peak <= 0.5 * world.velocity_limit), peak
    np.testing.assert_allclose(world.measure().q, ref, atol=1e-4)


@pytest.mark.parametrize('joint', range(7))
def test_a_reference_jump_moves_one_joint_at_its_rated_speed_and_no_other(joint):
    # a controller that stalled and resumes: its reference jumps by 0.5 rad at once. A real
    # drive limits the speed; before, a light joint spun up to 5-13x its limit, and a
    # shoulder step threw the wrist around
    world = SimWorld(ARM)
    world.reset(np.zeros(7))
    world.step(200)
    ref = np.zeros(7)
    ref[joint] = 0.5
    world.set_control('position', ref)
    peak = np.zeros(7)
    for _ in range(1500):
        world.step()
        peak = np.maximum(peak, np.abs(world.measure().qd))
    limit = world.velocity_limit
    assert peak[joint] <= 1.02 * limit[joint], (peak, limit)
    others = np.arange(7) != joint
    assert np.all(peak[others] <= 0.3 * limit[others]), (peak, limit)
    np.testing.assert_allclose(world.measure().q, ref, atol=1e-3)   # and it got there
    world.close()


def test_a_joint_without_torque_gets_none_and_the_others_hold(recwarn):
    # a dead motor (torque limit 0) while its reference moves: no torque on it, no numeric
    # warning, and the other joints keep their positions
    world = SimWorld(ARM)
    world.reset(np.zeros(7))
    world.step(200)
    world.set_torque_limit('joint5', 0.0)
    ref = np.zeros(7)
    ref[4] = 0.5
    world.set_control('position', ref)
    for _ in range(300):
        world.step()
        assert world.measure().effort[4] == 0.0
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
    others = np.arange(7) != 4
    assert np.all(np.abs(world.measure().q[others]) < 0.01)
    world.close()


def test_lock_limit_and_external_force(model):
    world = SimWorld(ARM)
    world.reset(POSE)
    world.step(100)
    world.lock_joint('joint4')
    assert world.locked_joints == ('joint4',)
    world.set_control('torque', np.full(7, 10.0) + world.measure().effort)
    world.step(300)
    m = world.measure()
    assert abs(m.q[3] - POSE[3]) < 1e-4 and abs(m.qd[3]) < 1e-3
    assert abs(m.q[0] - POSE[0]) > 1e-2               # the others move
    world.unlock_joint('joint4')
    world.reset(POSE)
    world.set_torque_limit('joint2', 10.0)
    world.step(5)
    assert abs(world.measure().effort[1]) <= 10.0 + 1e-12
    world.set_torque_limit('joint2', None)
    lossless = SimWorld(ARM, **LOSSLESS)
    lossless.reset(POSE)
    lossless.step(200)
    before = lossless.measure()
    force = np.array([15.0, -5.0, 8.0])
    for _ in range(1000):                             # a steady push on the tool origin
        position, rotation = lossless.link_pose('tool')
        lossless.apply_external_force('tool', force, position)
        lossless.step()
    after = lossless.measure()
    assert np.max(np.abs(after.qd)) < 1e-4           # settled
    position, _ = lossless.link_pose('tool')
    origin, rotation = lossless.link_pose('ft_sensor')
    # the sensor feels the push: what the tool exerts on it changes by F
    delta = after.wrench - before.wrench
    np.testing.assert_allclose(delta[:3], rotation.T @ force, atol=1e-3)
    np.testing.assert_allclose(delta[3:], rotation.T @ np.cross(position - origin, force),
                               atol=1e-4)
    # and the motors resist it: static equilibrium effort = g(q) - J(q)^T F
    pm, data = model.pin_model, model.pin_data
    pin.computeJointJacobians(pm, data, after.q)
    pin.updateFramePlacements(pm, data)
    jac = pin.getFrameJacobian(pm, data, pm.getFrameId('tool'), pin.LOCAL_WORLD_ALIGNED)[:3]
    np.testing.assert_allclose(after.effort, model.gravity(after.q) - jac.T @ force, atol=1e-3)


def test_bad_inputs_are_rejected(tmp_path):
    with pytest.raises(WorldError, match='not found|cannot'):
        SimWorld(tmp_path / 'missing.urdf')
    with pytest.raises(WorldError, match='dt'):
        SimWorld(ARM, dt=0.0)
    with pytest.raises(WorldError, match='flange_ft'):
        SimWorld(ARM, ft_link='flange_ft')
    with pytest.raises(WorldError, match='joint_names'):
        SimWorld(ARM, joint_names=['joint1', 'joint2'])
    world = SimWorld(ARM)
    with pytest.raises(WorldError, match='expected 7 values'):
        world.set_control('position', np.zeros(6))
    with pytest.raises(WorldError, match='finite'):
        world.set_control('torque', [np.nan] * 7)
    with pytest.raises(WorldError, match='control mode'):
        world.set_control('impedance', np.zeros(7))
    with pytest.raises(WorldError, match="unknown joint 'joint9'"):
        world.lock_joint('joint9')
    with pytest.raises(WorldError, match='unknown link'):
        world.apply_external_force('gripper', [1, 0, 0], [0, 0, 0])
    with pytest.raises(WorldError, match='mass must be >= 0'):
        world.set_payload(SimpleNamespace(mass=-1.0, com=[0, 0, 0], inertia=np.eye(3)))


def _tracking_run(world, seconds=1.5):
    """
    Follow a smooth motion with feedforward from rest.

    Returns the largest tracking error per joint after 1 s (rad, (n,)) and the efforts (T, n).
    """
    def reference(t):
        fade = np.sin(np.pi * min(t, 0.5)) ** 2                # flat (= 1) after 0.5 s
        phase = np.pi * t + np.arange(7)
        return (POSE + 0.3 * fade * np.sin(phase), 0.3 * fade * np.pi * np.cos(phase),
                -0.3 * fade * np.pi ** 2 * np.sin(phase))

    errors, efforts = [], []
    for k in range(int(round(seconds / world.dt))):
        world.set_control('position', *reference(k * world.dt))
        world.step()
        m = world.measure()
        errors.append(np.abs(m.q - reference(m.t)[0]))
        efforts.append(m.effort)
    return np.max(errors[int(1.0 / world.dt):], axis=0), np.array(efforts)


def test_unvalidated_fast_path_is_bit_identical():
    """set_control(validate=False) with checked arrays gives exactly the validated run."""
    runs = []
    for validate in (True, False):
        world = SimWorld(ARM)
        world.reset(POSE)
        out = []
        for t in np.arange(0.0, 0.3, world.dt):
            q = POSE + 0.2 * np.sin(np.pi * t + np.arange(7))
            qd = 0.2 * np.pi * np.cos(np.pi * t + np.arange(7))
            world.set_control('position', q, qd, np.zeros(7), validate=validate)
            world.step()
            m = world.measure()
            out.append(np.concatenate([m.q, m.qd, m.effort, m.wrench]))
        # the fast path still clips the position target into the limits
        world.set_control('position', world.upper + 1.0, validate=validate)
        np.testing.assert_array_equal(world._q_ref, world.upper)
        world.close()
        runs.append(np.array(out))
    np.testing.assert_array_equal(runs[0], runs[1])


def test_decimated_controller_holds_torque_and_still_tracks():
    """Drive loops slower than the 1 kHz physics (control_period_steps): stable, tracking."""
    errors = {}
    for every in (1, 2, 4):
        world = SimWorld(ARM, control_period_steps=every)
        assert world.control_period_steps == every
        world.reset(POSE)
        errors[every], efforts = _tracking_run(world)
        # the torque is recomputed at steps 0, every, 2 every, ... and held in between
        blocks = efforts[:len(efforts) // every * every].reshape(-1, every, 7)
        assert np.array_equal(blocks, np.repeat(blocks[:, :1], every, axis=1))
        assert not np.array_equal(blocks[0, 0], blocks[1, 0])
        # and it settles on a held pose like the full-rate loop
        start, target = world.measure().q, POSE + 0.1
        for s in np.linspace(0.0, 1.0, 500):          # a ramped command, as a controller sends
            world.set_control('position', start + s * (target - start))
            world.step()
        world.step(1000)
        assert np.max(np.abs(world.measure().q - target)) < 1e-3
        assert np.max(np.abs(world.measure().qd)) < 1e-3
        if every == 4:   # default bandwidth capped at 0.4 / (4 dt) = 100 rad/s (kd = 3 w)
            assert world.kd == pytest.approx(300.0)
        else:            # 0.2 / dt = 200 rad/s, as the full-rate loop
            assert world.kd == pytest.approx(600.0)
        world.close()
    # full rate: sub-mrad; 500 Hz with the same gains: the same to 0.1 mrad; 250 Hz with the
    # capped gains: stable, a few mrad on the light, friction-dominated wrist joint
    assert errors[1].max() < 1e-3
    np.testing.assert_allclose(errors[2], errors[1], atol=1e-4)
    assert errors[4].max() < 5e-3
    # a 250 Hz loop with the full-rate gains (w T = 0.8) would be unstable: not the default
    world = SimWorld(ARM, control_period_steps=4, control_bandwidth=200.0)
    world.reset(POSE)
    assert _tracking_run(world)[0].max() > 0.1
    world.close()
    with pytest.raises(WorldError, match='control_period_steps'):
        SimWorld(ARM, control_period_steps=0)
    with pytest.raises(WorldError, match='control_period_steps'):
        SimWorld(ARM, control_period_steps=2.5)


def test_limit_speed_holds_a_torque_driven_joint_at_its_velocity_limit(model):
    world = SimWorld(ARM)
    tau = model.gravity(world.q0)
    tau[6] = model.effort_limit[6]
    world.set_control('torque', tau)
    top = 0.0
    for _ in range(500):
        world.step()
        world.limit_speed()
        top = max(top, abs(world.measure().qd[6]))
    assert top == pytest.approx(model.velocity_limit[6])
    assert world.over_speed_events >= 1
    world.close()
