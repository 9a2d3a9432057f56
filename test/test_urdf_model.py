"""RobotModel: URDF checks, dynamics against PyBullet and hand-derived statics, FT wrench."""
import os
from pathlib import Path
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pinocchio as pin
import pybullet
import pybullet_data
import pytest
from scipy.spatial.transform import Rotation
from twin_sim.urdf_model import (
    ParametersError, parse_locked_joints, Payload, RobotModel, URDFError, URDFWarning)
import yaml

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / 'urdf' / 'robot_twin_arm.urdf'
DATA = Path(pybullet_data.getDataPath())
PANDA = DATA / 'franka_panda' / 'panda.urdf'
IIWA = DATA / 'kuka_iiwa' / 'model.urdf'
XARM = DATA / 'xarm' / 'xarm6_robot.urdf'
G = np.array([0.0, 0.0, -9.81])


def _load(path, **kwargs):
    """Load a third-party URDF whose quirks (URDFWarning) are tested on their own."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', URDFWarning)
        return RobotModel.from_urdf(path, **kwargs)


@pytest.fixture(scope='module')
def arm():
    return RobotModel.from_urdf(ARM)


def _random_states(model, rng, count):
    lower = np.where(np.isfinite(model.lower), model.lower, -np.pi)
    upper = np.where(np.isfinite(model.upper), model.upper, np.pi)
    for _ in range(count):
        yield (rng.uniform(lower, upper), rng.uniform(-2.0, 2.0, model.n),
               rng.uniform(-5.0, 5.0, model.n))


# ------------------------------------------------------------------ names, order, limits

def test_builtin_arm_names_and_limits(arm):
    assert arm.joint_names == [f'joint{i}' for i in range(1, 8)]
    assert arm.n == 7
    assert arm.ft_frame == 'ft_sensor' and arm.payload_frame == 'ft_sensor'
    joints = {j.get('name'): j for j in ET.parse(ARM).getroot().findall('joint')}
    for i, name in enumerate(arm.joint_names):
        limit = joints[name].find('limit').attrib
        dynamics = joints[name].find('dynamics').attrib
        assert arm.lower[i] == float(limit['lower'])
        assert arm.upper[i] == float(limit['upper'])
        assert arm.velocity_limit[i] == float(limit['velocity'])
        assert arm.effort_limit[i] == float(limit['effort'])
        assert arm.damping[i] == float(dynamics['damping'])
        assert arm.friction[i] == float(dynamics['friction'])
    for attr in ('lower', 'upper', 'velocity_limit', 'effort_limit', 'damping', 'friction'):
        assert getattr(arm, attr).shape == (7,)


def test_panda_names_limits_and_fingers():
    model = _load(PANDA)
    assert model.joint_names == [f'panda_joint{i}' for i in range(1, 8)] + [
        'panda_finger_joint1', 'panda_finger_joint2']
    assert model.joint_types[-2:] == ['prismatic', 'prismatic']
    assert model.lower[3] == -3.1416 and model.upper[3] == 0.0
    assert model.effort_limit.tolist() == [87.0] * 4 + [12.0] * 3 + [20.0] * 2
    assert model.upper[7] == 0.04 and model.velocity_limit[8] == 0.2
    assert model.ft_frame is None
    with pytest.warns(URDFWarning) as record:
        RobotModel.from_urdf(PANDA)
    assert any("'panda_finger_joint2' has <mimic>" in str(w.message) for w in record)


def test_a_gripper_holds_its_payload_in_the_hand_not_on_a_finger():
    model = _load(PANDA)
    assert model.ft_frame is None and model.payload_frame == 'panda_hand'
    q = np.array([0.0, -0.3, 0.0, -2.0, 0.0, 1.8, 0.8, 0.02, 0.02])
    loaded = model.with_payload(Payload(2.0, com=(0.0, 0.0, 0.1)))
    extra = loaded.gravity(q) - model.gravity(q)
    np.testing.assert_allclose(extra[7:], 0.0, atol=1e-12)          # fingers carry none of it

    def potential(q):            # of 2 kg at the payload's centre of mass, 0.1 m along the hand z
        hand = model.frame_pose(q, 'panda_hand')
        return 2.0 * 9.81 * (hand[:3, :3] @ np.array([0.0, 0.0, 0.1]) + hand[:3, 3])[2]
    step = 1e-6
    expected = [(potential(q + step * e) - potential(q - step * e)) / (2 * step)
                for e in np.eye(model.n)]
    np.testing.assert_allclose(extra, expected, atol=1e-6)          # gravity torque = dV/dq
    assert np.abs(extra[1:7]).max() > 1.0


def test_locked_joints_leave_the_model_and_carry_their_bodies_where_they_stand():
    full = _load(PANDA)
    locked = RobotModel.from_urdf(PANDA, locked=parse_locked_joints(
        'panda_finger_joint1=0.03, panda_finger_joint2'))
    assert locked.joint_names == full.joint_names[:7]
    assert locked.locked_joints == {'panda_finger_joint1': 0.03, 'panda_finger_joint2': 0.0}
    rng = np.random.default_rng(5)
    for _ in range(5):
        q, qd, qdd = (rng.uniform(full.lower, full.upper), rng.normal(size=9),
                      rng.normal(size=9))
        q[7:], qd[7:], qdd[7:] = (0.03, 0.0), 0.0, 0.0
        np.testing.assert_allclose(locked.inverse_dynamics(q[:7], qd[:7], qdd[:7]),
                                   full.inverse_dynamics(q, qd, qdd)[:7], atol=1e-9)
        np.testing.assert_allclose(locked.frame_pose(q[:7], 'panda_leftfinger'),
                                   full.frame_pose(q, 'panda_leftfinger'), atol=1e-12)
    assert locked.copy().locked_joints == locked.locked_joints
    assert locked.payload_frame == full.payload_frame == 'panda_hand'   # the fingers' hand
    q = np.array([0.0, -0.3, 0.0, -2.0, 0.0, 1.8, 0.8, 0.03, 0.0])
    payload = Payload(1.5, com=(0.0, 0.0, 0.08))
    np.testing.assert_allclose(locked.with_payload(payload).gravity(q[:7]),
                               full.with_payload(payload).gravity(q)[:7], atol=1e-9)
    with pytest.raises(URDFError, match="locked joint 'gripper' is not a moving joint"):
        RobotModel.from_urdf(PANDA, locked={'gripper': None})
    with pytest.raises(URDFError, match=r"'panda_joint4' at 1.0 is outside its limits"):
        RobotModel.from_urdf(PANDA, locked={'panda_joint4': 1.0})
    with pytest.raises(ValueError, match="'x' is not a position"):
        parse_locked_joints('panda_finger_joint1=x')
    assert parse_locked_joints(' ') == {}


def test_settings_by_joint_type_follow_the_joint_unit():
    model = _load(PANDA)
    margins = model.by_joint_type(0.05, 0.002)
    assert margins.tolist() == [0.05] * 7 + [0.002] * 2


def test_iiwa_and_xarm_names_and_limits():
    iiwa = _load(IIWA)
    assert iiwa.joint_names == [f'lbr_iiwa_joint_{i}' for i in range(1, 8)]
    assert iiwa.upper[6] == pytest.approx(3.05432619099)
    assert np.all(iiwa.velocity_limit == 10.0) and np.all(iiwa.damping == 0.5)
    xarm = _load(XARM)
    assert xarm.joint_names == [f'joint{i}' for i in range(1, 7)]
    assert (xarm.lower[2], xarm.upper[2]) == (-3.927, 0.19198)
    assert xarm.effort_limit.tolist() == [50.0, 50.0, 32.0, 32.0, 32.0, 20.0]
    assert np.all(xarm.friction == 1.0)


# ------------------------------------------------------- inverse dynamics against PyBullet

def _point_mass_body(model, joint):
    """Dynamic parameters of ``joint``'s body with its rotational inertia about the COM zeroed."""
    body = model.pin_model.inertias[model.joint_names.index(joint) + 1]
    return pin.Inertia(body.mass, body.lever, np.zeros((3, 3))).toDynamicParameters().tolist()


@pytest.mark.parametrize('path', [ARM, PANDA, IIWA, XARM], ids=lambda p: p.stem)
def test_inverse_dynamics_matches_pybullet(path):
    model = _load(path)
    if path == XARM:
        # xarm6's link2 and link3 break the triangle inequality; PyBullet's importer then sets
        # their rotational inertia to zero ("Bad inertia tensor properties"). Give the model the
        # same bodies so that both engines compare the same robot.
        model.apply_parameters({'bodies': {j: {'dynamic_parameters': _point_mass_body(model, j)}
                                           for j in ('joint2', 'joint3')}})
    client = pybullet.connect(pybullet.DIRECT)
    try:
        pybullet.setGravity(*G, physicsClientId=client)
        # PyBullet recomputes inertia from collision shapes unless told to use the file's.
        body = pybullet.loadURDF(str(path), useFixedBase=True,
                                 flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
                                 physicsClientId=client)
        names = []
        for i in range(pybullet.getNumJoints(body, physicsClientId=client)):
            info = pybullet.getJointInfo(body, i, physicsClientId=client)
            if info[2] != pybullet.JOINT_FIXED:
                names.append(info[1].decode())
        assert sorted(names) == sorted(model.joint_names)
        order = [model.joint_names.index(name) for name in names]
        rng = np.random.default_rng(1)
        for q, qd, qdd in _random_states(model, rng, 20):
            expected = pybullet.calculateInverseDynamics(
                body, q[order].tolist(), qd[order].tolist(), qdd[order].tolist(),
                physicsClientId=client)
            tau = model.inverse_dynamics(q, qd, qdd)
            np.testing.assert_allclose(tau[order], expected, rtol=0, atol=1e-6)
    finally:
        pybullet.disconnect(client)


# ------------------------------------------------------------------ hand-derived statics

def _urdf_chain(path):
    """Joints in order with origin, axis, and the mass/COM of every link, from the XML."""
    robot = ET.parse(path).getroot()
    links = {}
    for link in robot.findall('link'):
        inertial = link.find('inertial')
        if inertial is not None:
            com = [float(x) for x in inertial.find('origin').get('xyz').split()]
            links[link.get('name')] = (float(inertial.find('mass').get('value')),
                                       np.array(com))
    joints = []
    for joint in robot.findall('joint'):
        origin = joint.find('origin')
        axis = joint.find('axis')
        joints.append({
            'name': joint.get('name'), 'type': joint.get('type'),
            'child': joint.find('child').get('link'),
            'xyz': np.array([float(x) for x in origin.get('xyz').split()]),
            'rpy': np.array([float(x) for x in origin.get('rpy').split()]),
            'axis': (None if axis is None
                     else np.array([float(x) for x in axis.get('xyz').split()]))})
    return joints, links


def _hand_gravity(path, q):
    """Compute holding torques -a_k . sum_i (c_i - o_k) x (m_i g) over bodies beyond joint k."""
    joints, links = _urdf_chain(path)
    rot, pos = np.eye(3), np.zeros(3)
    frames = []   # (axis world, origin world) per revolute joint
    coms = []     # (mass, com world, index of the last revolute joint before it)
    k = -1
    for joint in joints:  # the built-in arm is a serial chain in document order
        pos = pos + rot @ joint['xyz']
        rot = rot @ Rotation.from_euler('xyz', joint['rpy']).as_matrix()
        if joint['type'] == 'revolute':
            k += 1
            frames.append((rot @ joint['axis'], pos.copy()))
            rot = rot @ Rotation.from_rotvec(joint['axis'] * q[k]).as_matrix()
        mass, com = links[joint['child']]
        coms.append((mass, pos + rot @ com, k))
    tau = np.zeros(len(frames))
    for j, (axis, origin) in enumerate(frames):
        for mass, com, last in coms:
            if last >= j:
                tau[j] -= axis @ np.cross(com - origin, mass * G)
    return tau


def test_gravity_arm_horizontal_by_hand(arm):
    # joint2 at +90 deg lays the straight arm along world +x; the holding torque of joint2 is
    # -g * sum(m_i * x_i), x_i the horizontal distance of each COM from the joint2 axis, i.e.
    # its height above joint2 in the straight chain.
    joints, links = _urdf_chain(ARM)
    height, lever = 0.0, 0.0
    for joint in joints[2:]:   # joint3 .. tool_joint
        height += joint['xyz'][2]
        mass, com = links[joint['child']]
        lever += mass * (height + com[2])
    mass2, com2 = links['link2']
    lever += mass2 * com2[2]
    q = np.array([0.0, np.pi / 2, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert arm.gravity(q)[1] == pytest.approx(-9.81 * lever, rel=1e-9)
    assert arm.gravity(q)[1] < -50.0  # about 55 N m: the arm's weight on a 0.3 m lever


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_gravity_matches_hand_statics(arm, seed):
    rng = np.random.default_rng(seed)
    q = rng.uniform(arm.lower, arm.upper)
    np.testing.assert_allclose(arm.gravity(q), _hand_gravity(ARM, q), atol=1e-9)
    np.testing.assert_allclose(arm.inverse_dynamics(q, np.zeros(7), np.zeros(7)),
                               _hand_gravity(ARM, q), atol=1e-9)


def test_forward_dynamics_inverts_inverse_dynamics(arm):
    rng = np.random.default_rng(3)
    payload = Payload(2.0, [0.02, -0.01, 0.1], np.diag([3e-3, 2e-3, 1e-3]))
    for q, qd, qdd in _random_states(arm, rng, 10):
        for p in (None, payload):
            tau = arm.inverse_dynamics(q, qd, qdd, payload=p)
            np.testing.assert_allclose(arm.forward_dynamics(q, qd, tau, payload=p), qdd,
                                       atol=1e-8)
        mass = arm.mass_matrix(q)
        np.testing.assert_allclose(mass, mass.T)
        assert np.linalg.eigvalsh(mass)[0] > 0.0
        bias = arm.inverse_dynamics(q, qd, np.zeros(7))
        np.testing.assert_allclose(arm.inverse_dynamics(q, qd, qdd) - bias, mass @ qdd,
                                   atol=1e-9)


def test_payload_adds_its_weight_and_does_not_leak(arm):
    q = np.array([0.0, np.pi / 2, 0.0, 0.0, 0.0, 0.0, 0.0])
    flange = arm.frame_pose(q, 'ft_sensor')
    shoulder = arm.frame_pose(q, 'link2')
    base = arm.gravity(q)
    payload = Payload(3.0)   # a point mass at the sensor origin
    loaded = arm.gravity(q, payload=payload)
    lever = flange[0, 3] - shoulder[0, 3]
    assert loaded[1] - base[1] == pytest.approx(-3.0 * 9.81 * lever, rel=1e-9)
    np.testing.assert_array_equal(arm.gravity(q), base)  # the call did not change the model
    heavy = arm.with_payload(payload)
    np.testing.assert_allclose(heavy.gravity(q), loaded, atol=1e-12)
    np.testing.assert_array_equal(arm.gravity(q), base)
    assert heavy.payload is payload and arm.payload is None


# --------------------------------------------------------------------------- FT wrench

def _tool_com_in_sensor():
    joints, links = _urdf_chain(ARM)
    tool_joint = next(j for j in joints if j['name'] == 'tool_joint')
    mass, com = links['tool']
    return mass, tool_joint['xyz'] + com   # tool_joint has no rotation


@pytest.mark.parametrize('q', [np.zeros(7), np.array([0.0, np.pi / 2, 0.0, 0.0, 0.0, 0.0, 0.0]),
                               np.array([0.4, -0.7, 1.2, 1.1, -0.5, 1.3, 2.0])])
def test_ft_wrench_at_rest_is_the_distal_weight(arm, q):
    tool_mass, tool_com = _tool_com_in_sensor()
    payload = Payload(1.5, [0.03, -0.02, 0.12])
    total = tool_mass + payload.mass
    com = (tool_mass * tool_com + payload.mass * payload.com) / total
    rot = arm.frame_pose(q, 'ft_sensor')[:3, :3]
    force = rot.T @ (total * G)
    expected = np.concatenate([force, np.cross(com, force)])
    zero = np.zeros(7)
    wrench = arm.ft_wrench(q, zero, zero, payload=payload)
    np.testing.assert_allclose(wrench, expected, rtol=1e-2, atol=1e-9)
    np.testing.assert_allclose(wrench, expected, atol=1e-9)
    assert np.linalg.norm(wrench[:3]) == pytest.approx(total * 9.81)
    # without the payload only the tool (not the sensor's own 0.1 kg) is measured
    bare = arm.ft_wrench(q, zero, zero)
    assert np.linalg.norm(bare[:3]) == pytest.approx(tool_mass * 9.81)
    assert (rot @ bare[:3])[2] == pytest.approx(-tool_mass * 9.81)  # points down in the world


SPIN_URDF = """<?xml version="1.0"?>
<robot name="spin">
  <link name="base"/>
  <joint name="yaw" type="revolute">
    <parent link="base"/><child link="arm"/>
    <origin xyz="0 0 0.2" rpy="0 0 0"/><axis xyz="0 0 1"/>
    <limit lower="-3" upper="3" effort="50" velocity="5"/>
  </joint>
  <link name="arm">
    <inertial><origin xyz="0.2 0 0"/><mass value="2"/>
      <inertia ixx="0.002" ixy="0" ixz="0" iyy="0.03" iyz="0" izz="0.03"/></inertial>
  </link>
  <joint name="sensor_mount" type="fixed">
    <parent link="arm"/><child link="ft_sensor"/>
    <origin xyz="0.4 0.05 0" rpy="0 1.5707963267948966 0.3"/>
  </joint>
  <link name="ft_sensor">
    <inertial><origin xyz="0 0 0.01"/><mass value="0.2"/>
      <inertia ixx="1e-4" ixy="0" ixz="0" iyy="1e-4" iyz="0" izz="1e-4"/></inertial>
  </link>
  <joint name="tool_joint" type="fixed">
    <parent link="ft_sensor"/><child link="tool"/>
    <origin xyz="0 0 0.02" rpy="0 0 0.5"/>
  </joint>
  <link name="tool">
    <inertial><origin xyz="0.03 0.01 0.06" rpy="0.2 0 0"/><mass value="0.8"/>
      <inertia ixx="0.004" ixy="0" ixz="0" iyy="0.003" iyz="0" izz="0.001"/></inertial>
  </link>
  <joint name="tip_joint" type="fixed">
    <parent link="tool"/><child link="tip"/>
    <origin xyz="0.05 0 0.1" rpy="0.4 0 0"/>
  </joint>
  <link name="tip">
    <inertial><origin xyz="0 0.02 0.03"/><mass value="0.3"/>
      <inertia ixx="2e-4" ixy="0" ixz="0" iyy="3e-4" iyz="0" izz="1e-4"/></inertial>
  </link>
</robot>
"""


def _hat(v):
    return np.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])


@pytest.mark.parametrize('with_payload', [False, True])
def test_ft_wrench_under_acceleration_newton_euler(tmp_path, with_payload):
    path = tmp_path / 'spin.urdf'
    path.write_text(SPIN_URDF)
    model = RobotModel.from_urdf(path)
    payload = Payload(0.5, [0.0, 0.02, 0.1], np.diag([1e-3, 2e-3, 3e-3])) if with_payload \
        else None
    theta, omega, alpha = 0.7, 1.9, -3.1
    # Hand Newton-Euler. Sensor pose in the world:
    rz = Rotation.from_euler('z', theta).as_matrix()
    r_mount = Rotation.from_euler('xyz', [0.0, np.pi / 2, 0.3]).as_matrix()
    axis_point = np.array([0.0, 0.0, 0.2])
    p_s = axis_point + rz @ np.array([0.4, 0.05, 0.0])
    r_s = rz @ r_mount
    # Distal bodies (tool and payload) in sensor coordinates.
    r_tool = Rotation.from_euler('z', 0.5).as_matrix()
    r_in = Rotation.from_euler('xyz', [0.2, 0.0, 0.0]).as_matrix()
    bodies = [(0.8, np.array([0.0, 0.0, 0.02]) + r_tool @ np.array([0.03, 0.01, 0.06]),
               r_tool @ r_in @ np.diag([0.004, 0.003, 0.001]) @ r_in.T @ r_tool.T)]
    r_tip = r_tool @ Rotation.from_euler('x', 0.4).as_matrix()
    p_tip = np.array([0.0, 0.0, 0.02]) + r_tool @ np.array([0.05, 0.0, 0.1])
    bodies.append((0.3, p_tip + r_tip @ np.array([0.0, 0.02, 0.03]),
                   r_tip @ np.diag([2e-4, 3e-4, 1e-4]) @ r_tip.T))
    if payload is not None:
        bodies.append((payload.mass, payload.com, payload.inertia))
    mass = sum(b[0] for b in bodies)
    com_s = sum(b[0] * b[1] for b in bodies) / mass
    inertia_s = sum(b[2] + b[0] * (b[1] - com_s) @ (b[1] - com_s) * np.eye(3)
                    - b[0] * np.outer(b[1] - com_s, b[1] - com_s) for b in bodies)
    com = p_s + r_s @ com_s
    w = np.array([0.0, 0.0, omega])
    dw = np.array([0.0, 0.0, alpha])
    acc = np.cross(dw, com - axis_point) + np.cross(w, np.cross(w, com - axis_point))
    force = mass * (acc - G)                          # sensor on the distal bodies
    inertia_w = r_s @ inertia_s @ r_s.T
    moment_com = inertia_w @ dw + np.cross(w, inertia_w @ w)
    moment_s = moment_com + np.cross(com - p_s, force)
    expected = -np.concatenate([r_s.T @ force, r_s.T @ moment_s])
    wrench = model.ft_wrench([theta], [omega], [alpha], payload=payload)
    np.testing.assert_allclose(wrench, expected, atol=1e-10)
    np.testing.assert_allclose(model.frame_pose([theta], 'ft_sensor')[:3, :3], r_s, atol=1e-12)


FINGER = """
  <joint name="finger" type="prismatic">
    <parent link="tool"/><child link="finger_link"/>
    <origin xyz="0 0 0.12" rpy="0 0 0"/><axis xyz="0 1 0"/>
    <limit lower="0" upper="0.04" effort="20" velocity="0.2"/>
  </joint>
  <link name="finger_link">
    <inertial><origin xyz="0 0 0.02"/><mass value="0.1"/>
      <inertia ixx="1e-5" ixy="0" ixz="0" iyy="1e-5" iyz="0" izz="1e-5"/></inertial>
  </link>
</robot>"""


def test_ft_wrench_includes_moving_bodies_behind_the_sensor(tmp_path):
    """A gripper finger on a joint below the sensor loads it through that joint."""
    path = tmp_path / 'finger.urdf'
    path.write_text(SPIN_URDF.replace('</robot>', FINGER))
    model = RobotModel.from_urdf(path)
    assert model.joint_names == ['yaw', 'finger']
    rot = model.frame_pose([0.7, 0.01], 'ft_sensor')[:3, :3]
    at_rest = model.ft_wrench([0.7, 0.01], [0.0, 0.0], [0.0, 0.0])
    np.testing.assert_allclose(rot @ at_rest[:3], (0.8 + 0.3 + 0.1) * G, atol=1e-12)
    pushed = model.ft_wrench([0.7, 0.01], [0.0, 0.0], [0.0, 2.0])
    finger_axis = Rotation.from_euler('z', 0.5).as_matrix() @ np.array([0.0, 1.0, 0.0])
    np.testing.assert_allclose(pushed[:3] - at_rest[:3], -0.1 * 2.0 * finger_axis,
                               atol=1e-12)


def test_ft_wrench_matches_frame_kinematics_on_the_arm(arm):
    """Same wrench from pinocchio's frame velocity/acceleration and a numpy Newton-Euler."""
    payload = Payload(1.2, [0.01, 0.02, 0.09], np.diag([2e-3, 1e-3, 1.5e-3]))
    tool_mass, tool_com = _tool_com_in_sensor()
    joints, links = _urdf_chain(ARM)
    model, data = arm.pin_model, arm.pin_model.createData()
    fid = model.getFrameId('ft_sensor')
    tool = ET.parse(ARM).getroot().find("link[@name='tool']/inertial/inertia").attrib
    tool_inertia = np.diag([float(tool['ixx']), float(tool['iyy']), float(tool['izz'])])
    mass = tool_mass + payload.mass
    com = (tool_mass * tool_com + payload.mass * payload.com) / mass
    inertia = (tool_inertia + payload.inertia
               + tool_mass * (_hat(tool_com - com).T @ _hat(tool_com - com))
               + payload.mass * (_hat(payload.com - com).T @ _hat(payload.com - com)))
    rng = np.random.default_rng(5)
    for q, qd, qdd in _random_states(arm, rng, 10):
        pin.forwardKinematics(model, data, q, qd, qdd)
        pin.updateFramePlacements(model, data)
        v = pin.getFrameVelocity(model, data, fid, pin.LOCAL)
        a = pin.getFrameClassicalAcceleration(model, data, fid, pin.LOCAL)
        rot = data.oMf[fid].rotation
        w, dw, a_origin = v.angular, a.angular, a.linear
        acc_com = a_origin + np.cross(dw, com) + np.cross(w, np.cross(w, com))
        force = mass * (acc_com - rot.T @ G)
        moment = inertia @ dw + np.cross(w, inertia @ w) + np.cross(com, force)
        expected = -np.concatenate([force, moment])
        np.testing.assert_allclose(arm.ft_wrench(q, qd, qdd, payload=payload), expected,
                                   atol=1e-9)


def test_ft_wrench_needs_a_sensor():
    model = _load(IIWA)
    assert model.ft_frame is None and model.payload_frame == 'lbr_iiwa_link_7'
    with pytest.raises(ValueError, match='no force-torque sensor'):
        model.ft_wrench(np.zeros(7), np.zeros(7), np.zeros(7))
    with pytest.raises(URDFError, match="'nope' not found"):
        RobotModel.from_urdf(ARM, ft_link='nope')


# --------------------------------------------------------------------- URDF errors

def _two_link(joint_type='revolute', limit=True, inertial=True, extra='', mesh=None):
    limit_xml = '<limit lower="-2" upper="2" effort="10" velocity="2"/>' if limit else ''
    inertial_xml = ('<inertial><origin xyz="0 0 0.1"/><mass value="1"/><inertia ixx="0.01" '
                    'ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.005"/></inertial>'
                    if inertial else '')
    geometry = (f'<visual><geometry><mesh filename="{mesh}"/></geometry></visual>'
                if mesh else '')
    return f"""<?xml version="1.0"?>
<robot name="two">
  <link name="base"/>
  <joint name="j1" type="{joint_type}">
    <parent link="base"/><child link="l1"/>
    <origin xyz="0 0 0.1" rpy="0 0 0"/><axis xyz="0 1 0"/>{limit_xml}
  </joint>
  <link name="l1">{inertial_xml}{geometry}</link>{extra}
</robot>
"""


def _write(tmp_path, text, name='robot.urdf'):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_floating_joint_is_rejected(tmp_path):
    path = _write(tmp_path, _two_link('floating', limit=False))
    with pytest.raises(URDFError, match="joint 'j1' has type 'floating'"):
        RobotModel.from_urdf(path)
    with pytest.raises(URDFError, match="'planar'"):
        RobotModel.from_urdf(_write(tmp_path, _two_link('planar', limit=False)))


def test_moving_link_without_inertial_is_rejected(tmp_path):
    path = _write(tmp_path, _two_link(inertial=False))
    with pytest.raises(URDFError, match="link 'l1', moved by revolute joint 'j1'.*<inertial>"):
        RobotModel.from_urdf(path)


def test_massless_link_with_massive_child_warns(tmp_path):
    extra = """
  <joint name="j2" type="revolute"><parent link="l1"/><child link="l2"/>
    <origin xyz="0 0 0.3"/><axis xyz="0 1 0"/>
    <limit lower="-2" upper="2" effort="10" velocity="2"/></joint>
  <link name="l2"><inertial><origin xyz="0 0 0.1"/><mass value="1"/>
    <inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.005"/></inertial></link>"""
    path = _write(tmp_path, _two_link(inertial=False, extra=extra))
    with pytest.warns(URDFWarning, match="link 'l1'.*treated as massless"):
        model = RobotModel.from_urdf(path)
    assert model.n == 2


def test_missing_file_and_bad_xml(tmp_path):
    with pytest.raises(URDFError, match='URDF file not found'):
        RobotModel.from_urdf(tmp_path / 'nope.urdf')
    with pytest.raises(URDFError, match='is a directory; give the .urdf file'):
        RobotModel.from_urdf(tmp_path)
    with pytest.raises(URDFError, match='not valid XML'):
        RobotModel.from_urdf(_write(tmp_path, '<robot><link name="a"></robot>'))


def test_an_unexpanded_xacro_file_is_named(tmp_path):
    macro = _two_link().replace('<robot name="two">',
                                '<robot name="two" xmlns:xacro="http://www.ros.org/wiki/xacro">'
                                '<xacro:property name="l" value="0.3"/>')
    with pytest.raises(URDFError, match='this is a xacro file.*expand it first'):
        RobotModel.from_urdf(_write(tmp_path, macro))
    expression = _two_link().replace('effort="10"', 'effort="${effort}"')
    with pytest.raises(URDFError, match='this is a xacro file'):
        RobotModel.from_urdf(_write(tmp_path, expression))
    # a xacro file named .urdf: the suggested command must not write over its own input
    named_urdf = tmp_path / 'arm.urdf'
    named_urdf.write_text(macro)
    with pytest.raises(URDFError, match=r'`xacro arm.urdf > arm.expanded.urdf`'):
        RobotModel.from_urdf(named_urdf)


def test_missing_limits_are_rejected(tmp_path):
    with pytest.raises(URDFError, match="joint 'j1' \\(revolute\\) has no <limit>"):
        RobotModel.from_urdf(_write(tmp_path, _two_link(limit=False)))
    text = _two_link().replace(' effort="10"', '')
    with pytest.raises(URDFError, match="lacks 'effort'"):
        RobotModel.from_urdf(_write(tmp_path, text))


def test_bad_inertia_is_rejected(tmp_path):
    text = _two_link().replace('ixx="0.01"', 'ixx="-0.01"')
    with pytest.raises(URDFError, match='not positive semi-definite'):
        RobotModel.from_urdf(_write(tmp_path, text))
    text = _two_link().replace('<mass value="1"/>', '<mass value="-1"/>')
    with pytest.raises(URDFError, match='negative'):
        RobotModel.from_urdf(_write(tmp_path, text))


def test_bad_mesh_path_warns_but_loads(tmp_path):
    path = _write(tmp_path, _two_link(mesh='package://nowhere/meshes/l1.stl'))
    with pytest.warns(URDFWarning, match='mesh files not found.*package://nowhere'):
        model = RobotModel.from_urdf(path)
    assert model.joint_names == ['j1']
    (tmp_path / 'l1.stl').write_text('solid x\nendsolid x\n')
    with warnings.catch_warnings():
        warnings.simplefilter('error', URDFWarning)
        RobotModel.from_urdf(_write(tmp_path, _two_link(mesh='l1.stl'), 'ok.urdf'))


def test_continuous_joint_has_one_angle(tmp_path):
    revolute = RobotModel.from_urdf(_write(tmp_path, _two_link(), 'rev.urdf'))
    with pytest.warns(URDFWarning, match='continuous'):
        cont = RobotModel.from_urdf(_write(tmp_path, _two_link('continuous', limit=False)))
    assert cont.n == 1 and cont.pin_model.nq == 1
    assert cont.lower[0] == -np.inf and cont.upper[0] == np.inf
    for q in (0.3, 4.0, -7.0):  # beyond +-pi too
        np.testing.assert_allclose(cont.inverse_dynamics([q], [1.0], [2.0]),
                                   revolute.inverse_dynamics([q], [1.0], [2.0]), atol=1e-12)


def test_wrong_shapes_are_reported(arm):
    with pytest.raises(ValueError, match=r'q must have shape \(7,\)'):
        arm.inverse_dynamics(np.zeros(6), np.zeros(7), np.zeros(7))
    with pytest.raises(ValueError, match='non-finite'):
        arm.gravity(np.full(7, np.nan))
    with pytest.raises(ValueError, match="unknown frame 'flange'"):
        arm.frame_pose(np.zeros(7), 'flange')


# ----------------------------------------------------------------- params.yaml

def test_parameters_round_trip(tmp_path):
    model = RobotModel.from_urdf(ARM)
    model.friction_model.offset[2] = 0.05
    path = tmp_path / 'params.yaml'
    model.save_parameters(path)
    doc = yaml.safe_load(path.read_text())['robot_twin_dynamics']
    assert doc['version'] == 1 and doc['joints'] == model.joint_names
    assert doc['friction_model'] == 'viscous-coulomb'
    assert doc['friction']['joint1'] == {'viscous': 0.5, 'coulomb': 0.8, 'offset': 0.0}
    assert len(doc['bodies']['joint7']['dynamic_parameters']) == 10
    # joint7's body is link7 + ft_sensor + tool merged: 0.3 + 0.1 + 0.3 kg
    assert doc['bodies']['joint7']['dynamic_parameters'][0] == pytest.approx(0.7)
    other = RobotModel.from_urdf(ARM)
    other.load_parameters(path)
    rng = np.random.default_rng(7)
    for q, qd, qdd in _random_states(model, rng, 5):
        np.testing.assert_allclose(other.inverse_dynamics(q, qd, qdd),
                                   model.inverse_dynamics(q, qd, qdd), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(other.friction_model.torque(qd),
                                   model.friction_model.torque(qd), rtol=1e-12)


def test_modified_mass_changes_torques_as_expected(tmp_path):
    model = RobotModel.from_urdf(ARM)
    doc = model.dynamic_parameters()
    # 1 kg more at the joint7 frame origin: m += 1, first moment and inertia about it unchanged.
    doc['robot_twin_dynamics']['bodies']['joint7']['dynamic_parameters'][0] += 1.0
    path = tmp_path / 'heavier.yaml'
    path.write_text(yaml.safe_dump(doc))
    heavier = RobotModel.from_urdf(ARM)
    heavier.load_parameters(path)
    q = np.array([0.0, np.pi / 2, 0.0, 0.0, 0.0, 0.0, 0.0])
    lever = model.frame_pose(q, 'link7')[0, 3] - model.frame_pose(q, 'link2')[0, 3]
    delta = heavier.gravity(q) - model.gravity(q)
    assert delta[1] == pytest.approx(-9.81 * lever, rel=1e-9)
    lever4 = model.frame_pose(q, 'link7')[0, 3] - model.frame_pose(q, 'link4')[0, 3]
    assert delta[3] == pytest.approx(9.81 * lever4, rel=1e-9)  # joint4 turns about -y
    lever6 = model.frame_pose(q, 'link7')[0, 3] - model.frame_pose(q, 'link6')[0, 3]
    assert delta[5] == pytest.approx(-9.81 * lever6, rel=1e-9)
    assert np.allclose(delta[[0, 2, 4, 6]], 0.0, atol=1e-12)  # axes along the arm


def test_parameters_friction_section_and_partial_update():
    model = RobotModel.from_urdf(ARM)
    before = model.inverse_dynamics(np.ones(7), np.ones(7), np.ones(7))
    model.apply_parameters({'robot_twin_dynamics': {
        'version': 1, 'friction_model': 'sigmoid',
        'friction': {'joint3': {'phi1': 2.0, 'phi2': 30.0, 'phi3': 0.0, 'offset': 0.1}}}})
    np.testing.assert_array_equal(model.inverse_dynamics(np.ones(7), np.ones(7), np.ones(7)),
                                  before)
    fm = model.friction_model
    assert fm.phi1[2] == 2.0 and fm.viscous[2] == 0.0 and fm.offset[2] == 0.1
    assert fm.viscous[0] == 0.5 and fm.coulomb[6] == 0.2   # unnamed joints keep URDF values


@pytest.mark.parametrize('params, match', [
    ({'bodies': {'joint9': {'dynamic_parameters': [1] * 10}}}, "unknown joint 'joint9'"),
    ({'bodies': {'joint1': {'dynamic_parameters': [1] * 9}}}, '10 finite numbers'),
    ({'bodies': {'joint1': {'dynamic_parameters': [0] * 10}}}, 'mass must be > 0'),
    ({'version': 2}, 'version 2'),
    ({'friction': {'joint1': {'viscous': 1.0}}}, "lacks 'coulomb'"),
    ({'friction': {'joint1': {'viscous': 1.0, 'coulomb': 1.0, 'stiction': 2}}}, 'stiction'),
    ({'joints': 5}, 'list of joint names'),
    # finite but impossible: no body, no drive of this arm is like that
    ({'bodies': {'joint1': {'dynamic_parameters': [1e308, 0, 0, 0, 1, 0, 1, 0, 0, 1]}}},
     'mass 1e\\+308 kg'),
    ({'bodies': {'joint1': {'dynamic_parameters': [1, 50, 0, 0, 1e4, 0, 1e4, 0, 0, 1e4]}}},
     'centre of mass 50 m'),
    ({'friction': {'joint1': {'viscous': 1.0, 'coulomb': 1e308}}}, 'could not move'),
    ({'friction': {'joint2': {'viscous': 1e6, 'coulomb': 1.0}}}, 'could not move'),
    ({'friction': {'joint3': {'phi1': 5e3, 'phi2': 10.0, 'phi3': 0.0}}}, 'could not move'),
    # an invalid entry after a valid one changes nothing
    ({'bodies': {'joint1': {'dynamic_parameters': [4, 0, 0, 0.4, 0.1, 0, 0.1, 0, 0, 0.05]},
                 'joint2': {'dynamic_parameters': [0] * 10}}}, 'mass must be > 0'),
])
def test_bad_parameters_are_rejected_atomically(arm, params, match):
    model = arm.copy()
    before = model.dynamic_parameters()
    with pytest.raises(ParametersError, match=match):
        model.apply_parameters(params)
    assert model.dynamic_parameters() == before


@pytest.mark.parametrize('doc', [
    {'a': 1},                                                        # any mapping
    {'robot_twin_anomaly_thresholds': {'version': 1, 'joints': ['joint1']}},   # commission's
    {},
])
def test_a_document_of_another_kind_is_not_taken_for_parameters(arm, doc):
    # without the top key, a document counts as identified dynamics only with their sections;
    # anything else once changed nothing, silently
    with pytest.raises(ParametersError, match='not an identified-dynamics document'):
        arm.copy().apply_parameters(doc)


def test_load_parameters_file_errors(tmp_path, arm):
    with pytest.raises(ParametersError, match='not found'):
        arm.copy().load_parameters(tmp_path / 'none.yaml')
    with pytest.raises(ParametersError, match='is a directory; give the params.yaml file'):
        arm.copy().load_parameters(tmp_path)
    bad = tmp_path / 'bad.yaml'
    bad.write_text('robot_twin_dynamics: [1, 2\n')
    with pytest.raises(ParametersError, match='not valid YAML'):
        arm.copy().load_parameters(bad)
    bad.write_bytes(bytes(range(256)))        # not a text file
    with pytest.raises(ParametersError, match='cannot read it'):
        arm.copy().load_parameters(bad)


def test_pybullet_data_path_exists():
    assert os.path.isfile(PANDA) and os.path.isfile(IIWA) and os.path.isfile(XARM)


def test_frame_origins_are_the_frame_poses_translations(arm):
    q = np.array([0.3, -0.7, 0.2, -1.4, 0.5, 0.9, -0.1])
    frames = list(arm.joint_names) + ['ft_sensor', 'link2']
    origins = arm.frame_origins(q, frames)
    assert list(origins) == frames
    for frame in frames:
        np.testing.assert_allclose(origins[frame], arm.frame_pose(q, frame)[:3, 3], atol=1e-12)
    # each is its own array, not a view of the model's workspace
    before = origins['link2'].copy()
    arm.frame_origins(np.zeros(7), ['link2'])
    np.testing.assert_array_equal(origins['link2'], before)
    with pytest.raises(ValueError, match='unknown frame'):
        arm.frame_origins(q, ['flange'])


# ------------------------------------------------------------------ where a payload hangs

UR_LIKE = ROOT / 'test' / 'data' / 'ur5e_like.urdf'
UR_GRIPPER = ROOT / 'test' / 'data' / 'ur5e_like_mimic_gripper.urdf'   # a <mimic> finger
_BOX = ('<inertial><mass value="{m}"/><origin xyz="0 0 0.02"/><inertia ixx="1e-5" ixy="0" '
        'ixz="0" iyy="1e-5" iyz="0" izz="1e-5"/></inertial>')


def _hand(jaw='jaw_joint', jaw_link='moving_jaw', kind='prismatic', axis='0 1 0'):
    """Return a hand on tool0 with one moving jaw and a fixed one (XML)."""
    fixed_jaw = (f'<link name="fixed_plate">{_BOX.format(m=0.05)}</link>'
                 '<joint name="hand-fixed_plate" type="fixed"><parent link="hand"/>'
                 '<child link="fixed_plate"/><origin xyz="0 -0.02 0.12"/></joint>')
    return (f'<link name="hand">{_BOX.format(m=0.8)}</link>'
            '<joint name="tool0-hand" type="fixed"><parent link="tool0"/><child link="hand"/>'
            f'</joint>{fixed_jaw}<link name="{jaw_link}">{_BOX.format(m=0.05)}</link>'
            f'<joint name="{jaw}" type="{kind}"><parent link="hand"/><child link="{jaw_link}"/>'
            f'<origin xyz="0 0.02 0.12"/><axis xyz="{axis}"/>'
            '<limit lower="0" upper="0.05" effort="100" velocity="0.05"/></joint>')


def _ur_with(tmp_path, extra, before=False, name='ur_tool.urdf'):
    text = UR_LIKE.read_text()
    if before:
        text = text.replace('<robot name="ur5e_like">', '<robot name="ur5e_like">' + extra)
    else:
        text = text.replace('</robot>', extra + '</robot>')
    return _write(tmp_path, text, name)


def _payload_frame_warnings(path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model = RobotModel.from_urdf(path, **kwargs)
    return model, [str(w.message) for w in caught if 'payload frame' in str(w.message)]


@pytest.mark.parametrize('jaw, jaw_link, kind', [
    ('jaw_joint', 'moving_jaw', 'prismatic'),     # the audit's single-jaw gripper
    ('Jaw', 'Moving_Jaw', 'revolute'),            # SO-100 style: a revolute jaw
    ('j7', 'finger', 'prismatic'),                # named by its link
])
def test_a_single_moving_jaw_does_not_carry_the_payload(tmp_path, jaw, jaw_link, kind):
    model, said = _payload_frame_warnings(_ur_with(tmp_path, _hand(jaw, jaw_link, kind)))
    assert model.payload_frame == 'hand' and said == []
    rng = np.random.default_rng(3)
    loaded = model.with_payload(Payload(3.0, com=(0.0, 0.0, 0.1)))
    for _ in range(5):
        q = rng.uniform(-1.5, 1.5, model.n)
        q[-1] = 0.02
        extra = loaded.gravity(q) - model.gravity(q)
        assert abs(extra[-1]) < 1e-12 and np.abs(extra[1:4]).max() > 1.0


def test_an_unnamed_jaw_across_the_wrist_axis_is_a_guess_with_a_warning(tmp_path):
    model, said = _payload_frame_warnings(_ur_with(tmp_path, _hand('slide', 'plate_b')))
    assert model.payload_frame == 'hand'
    assert said == [f"{tmp_path / 'ur_tool.urdf'}: payload frame 'hand' (a guess: prismatic "
                    "joint 'slide' after the wrist is taken for a gripper jaw); if the tool "
                    'hangs elsewhere, give that link as payload_frame']
    assert RobotModel.from_urdf(tmp_path / 'ur_tool.urdf',
                                payload_frame='plate_b').payload_frame == 'plate_b'


def test_a_linear_axis_along_the_wrist_axis_is_part_of_the_arm(tmp_path):
    """A SCARA's quill slides along the turning axes: the tool is on it, no guess."""
    joints = ''.join(
        f'<joint name="j{i}" type="revolute"><parent link="l{i - 1}"/><child link="l{i}"/>'
        f'<origin xyz="{0.3 if i > 1 else 0} 0 0.1"/><axis xyz="0 0 1"/>'
        '<limit lower="-2" upper="2" effort="50" velocity="2"/></joint>'
        f'<link name="l{i}">{_BOX.format(m=2.0)}</link>' for i in (1, 2))
    quill = ('<joint name="j3" type="prismatic"><parent link="l2"/><child link="quill"/>'
             '<origin xyz="0.25 0 0"/><axis xyz="0 0 -1"/>'
             '<limit lower="0" upper="0.2" effort="100" velocity="0.5"/></joint>'
             f'<link name="quill">{_BOX.format(m=0.5)}</link>')
    path = _write(tmp_path, f'<?xml version="1.0"?><robot name="scara"><link name="l0"/>'
                            f'{joints}{quill}</robot>')
    model, said = _payload_frame_warnings(path)
    assert model.payload_frame == 'quill' and said == []


@pytest.mark.parametrize('before', [False, True])
def test_a_positioner_in_the_same_urdf_does_not_take_the_payload(tmp_path, before):
    positioner = (
        f'<link name="positioner_base">{_BOX.format(m=20.0)}</link>'
        '<joint name="world-positioner" type="fixed"><parent link="world"/>'
        '<child link="positioner_base"/><origin xyz="1.0 0 0"/></joint>'
        f'<link name="turntable">{_BOX.format(m=10.0)}</link>'
        '<joint name="turntable_joint" type="revolute"><parent link="positioner_base"/>'
        '<child link="turntable"/><origin xyz="0 0 0.5"/><axis xyz="0 0 1"/>'
        '<limit lower="-3.14" upper="3.14" effort="200" velocity="1.0"/></joint>')
    model, said = _payload_frame_warnings(_ur_with(tmp_path, positioner, before))
    assert model.payload_frame == 'wrist_3_link' and said == []


def test_a_mimic_parallel_gripper_holds_the_payload_in_its_base():
    model, said = _payload_frame_warnings(UR_GRIPPER)
    assert model.payload_frame == 'gripper_base' and said == []
    assert model.mimic_joints == {'right_finger_joint': ('finger_joint', -1.0, 0.035)}


def test_the_payload_frame_can_be_given():
    model = RobotModel.from_urdf(UR_LIKE, payload_frame='tool0')
    assert model.payload_frame == 'tool0'
    q = np.array([0.1, -1.2, 1.0, -1.3, -1.5, 0.2])
    at_tool0 = model.with_payload(Payload(2.0)).gravity(q) - model.gravity(q)
    tool0 = model.frame_pose(q, 'tool0')
    wrist = RobotModel.from_urdf(UR_LIKE)
    com = np.linalg.inv(wrist.frame_pose(q, 'wrist_3_link')) @ tool0[:, 3]
    np.testing.assert_allclose(
        wrist.with_payload(Payload(2.0, com=com[:3])).gravity(q) - wrist.gravity(q), at_tool0,
        atol=1e-9)
    with pytest.raises(URDFError, match="payload frame 'nope' is not a link of the URDF"):
        RobotModel.from_urdf(UR_LIKE, payload_frame='nope')
    with pytest.raises(URDFError, match="payload frame 'world' is the root link"):
        RobotModel.from_urdf(UR_LIKE, payload_frame='world')
    with pytest.raises(URDFError, match='with a force-torque sensor the payload is given in '
                                        "its frame 'ft_sensor'"):
        RobotModel.from_urdf(ARM, payload_frame='tool')
    assert RobotModel.from_urdf(ARM, payload_frame='ft_sensor').payload_frame == 'ft_sensor'


def test_the_twins_nodes_take_the_payload_frame_as_a_parameter():
    # the parameter of config/twin.yaml reaches the model every mirror node builds
    from robot_twin.twin_model import robot_model
    panda = os.path.join(pybullet_data.getDataPath(), 'franka_panda', 'panda.urdf')
    params = {'urdf_path': panda, 'payload_frame': 'panda_link8'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert robot_model(params, with_dynamics=False).payload_frame == 'panda_link8'
        assert robot_model(dict(params, payload_frame=''),
                           with_dynamics=False).payload_frame == 'panda_hand'
        with pytest.raises(URDFError, match='not a link'):
            robot_model(dict(params, payload_frame='no_such_link'), with_dynamics=False)
