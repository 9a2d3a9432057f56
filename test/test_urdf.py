"""The built-in demo arm URDF: loads in PyBullet and pinocchio, physically valid values."""
from pathlib import Path
import xml.etree.ElementTree as ET

import numpy as np
import pinocchio as pin
import pybullet
import pytest

URDF = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'
JOINTS = [f'joint{i}' for i in range(1, 8)]


@pytest.fixture(scope='module')
def robot():
    return ET.parse(URDF).getroot()


def _inertia(link):
    i = link.find('inertial/inertia').attrib
    c = {k: float(i[k]) for k in ('ixx', 'ixy', 'ixz', 'iyy', 'iyz', 'izz')}
    return np.array([[c['ixx'], c['ixy'], c['ixz']],
                     [c['ixy'], c['iyy'], c['iyz']],
                     [c['ixz'], c['iyz'], c['izz']]])


def test_loads_in_pybullet():
    client = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(str(URDF), useFixedBase=True,
                                 flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
                                 physicsClientId=client)
        infos = [pybullet.getJointInfo(body, i, physicsClientId=client)
                 for i in range(pybullet.getNumJoints(body, physicsClientId=client))]
        movable = [info[1].decode() for info in infos if info[2] == pybullet.JOINT_REVOLUTE]
        fixed = [info[1].decode() for info in infos if info[2] == pybullet.JOINT_FIXED]
        links = [info[12].decode() for info in infos]
        assert movable == JOINTS
        assert fixed == ['ft_sensor_joint', 'tool_joint']
        assert links[-2:] == ['ft_sensor', 'tool']
        # PyBullet reads the same mass as the file for the tool link.
        assert pybullet.getDynamicsInfo(body, len(infos) - 1, physicsClientId=client)[0] == 0.3
    finally:
        pybullet.disconnect(client)


def test_loads_in_pinocchio():
    model = pin.buildModelFromUrdf(str(URDF))
    assert model.nq == model.nv == 7
    assert list(model.names)[1:] == JOINTS
    assert model.existFrame('ft_sensor') and model.existFrame('tool')
    frame = model.frames[model.getFrameId('ft_sensor')]
    assert model.names[frame.parentJoint] == 'joint7'


def test_inertias_are_physical(robot):
    links = robot.findall('link')
    assert {link.get('name') for link in links} >= {'base_link', 'ft_sensor', 'tool'}
    for link in links:
        name = link.get('name')
        assert link.find('inertial') is not None, name
        mass = float(link.find('inertial/mass').get('value'))
        assert mass > 0.0, name
        tensor = _inertia(link)
        assert np.allclose(tensor, tensor.T)
        eig = np.linalg.eigvalsh(tensor)
        assert eig[0] > 0.0, f'{name}: not positive definite'
        ixx, iyy, izz = np.diag(tensor)
        assert ixx + iyy >= izz and iyy + izz >= ixx and izz + ixx >= iyy, name
        assert eig[0] + eig[1] >= eig[2], f'{name}: principal moments break the triangle rule'
        com = [float(x) for x in link.find('inertial/origin').get('xyz').split()]
        assert np.linalg.norm(com) < 0.25, f'{name}: centre of mass far from the link'


def test_masses_match_the_payload_class(robot):
    masses = {link.get('name'): float(link.find('inertial/mass').get('value'))
              for link in robot.findall('link')}
    arm = [masses[f'link{i}'] for i in range(1, 8)]
    assert 15.0 < sum(arm) < 25.0
    assert arm[0] >= arm[3] >= arm[6]
    assert 0.0 < masses['ft_sensor'] <= 0.3
    assert 0.0 < masses['tool'] <= 1.0


def test_joint_limits_sane(robot):
    joints = [j for j in robot.findall('joint') if j.get('type') == 'revolute']
    assert [j.get('name') for j in joints] == JOINTS
    for joint in joints:
        name = joint.get('name')
        limit = joint.find('limit').attrib
        lower, upper = float(limit['lower']), float(limit['upper'])
        velocity, effort = float(limit['velocity']), float(limit['effort'])
        assert -2 * np.pi <= lower < 0.0 < upper <= 2 * np.pi, name
        assert 0.5 <= velocity <= 5.0, name
        assert 10.0 <= effort <= 400.0, name
        dynamics = joint.find('dynamics').attrib
        assert float(dynamics['damping']) > 0.0 and float(dynamics['friction']) > 0.0, name
    efforts = [float(j.find('limit').get('effort')) for j in joints]
    assert efforts == sorted(efforts, reverse=True), 'efforts should not grow towards the tool'


def test_axes_are_not_degenerate(robot):
    axes = [tuple(float(x) for x in j.find('axis').get('xyz').split())
            for j in robot.findall('joint') if j.get('type') == 'revolute']
    assert len(set(axes)) >= 3
    for a, b in zip(axes, axes[1:]):
        assert a != b, 'consecutive joints with the same axis'


def test_sensor_and_tool_chain(robot):
    joints = {j.get('name'): j for j in robot.findall('joint')}
    ft = joints['ft_sensor_joint']
    assert ft.get('type') == 'fixed'
    assert ft.find('parent').get('link') == 'link7'
    assert ft.find('child').get('link') == 'ft_sensor'
    tool = joints['tool_joint']
    assert tool.get('type') == 'fixed'
    assert tool.find('parent').get('link') == 'ft_sensor'
    assert tool.find('child').get('link') == 'tool'
    assert robot.find('.//mesh') is None, 'the demo arm uses primitives only'


def test_reach_is_iiwa_like():
    model = pin.buildModelFromUrdf(str(URDF))
    data = model.createData()
    pin.framesForwardKinematics(model, data, np.zeros(7))
    shoulder = data.oMf[model.getFrameId('link2')].translation
    wrist = data.oMf[model.getFrameId('link6')].translation
    flange = data.oMf[model.getFrameId('ft_sensor')].translation
    assert np.linalg.norm(wrist - shoulder) == pytest.approx(0.8, abs=0.05)
    assert 0.8 < np.linalg.norm(flange - shoulder) < 1.0
