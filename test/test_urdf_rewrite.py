"""The URDF rewrites the engines share (twin_sim/urdf_rewrite.py)."""
from pathlib import Path

import pytest
from twin_sim import urdf_rewrite
from twin_sim.urdf_rewrite import SENSOR_BODY, URDFRewriteError

ARM = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'


def _joint(root, name):
    return next(j for j in root.findall('joint') if j.get('name') == name)


def _link(root, name):
    return next(k for k in root.findall('link') if k.get('name') == name)


def test_the_sensor_body_moves_to_the_robot_side_at_the_same_place():
    root = urdf_rewrite.parse(ARM)
    sensor = urdf_rewrite.sensor_joint(root, 'ft_sensor')
    mass = _link(root, 'ft_sensor').find('inertial/mass').get('value')
    assert urdf_rewrite.move_sensor_body(root, 'ft_sensor') is sensor
    assert _link(root, 'ft_sensor').find('inertial') is None
    assert _link(root, SENSOR_BODY).find('inertial/mass').get('value') == mass
    body_joint = _joint(root, SENSOR_BODY + '_joint')
    assert body_joint.get('type') == 'fixed'
    assert body_joint.find('parent').get('link') == sensor.find('parent').get('link')
    assert body_joint.find('origin').attrib == sensor.find('origin').attrib


def test_geometry_continuous_joints_and_missing_inertials():
    root = urdf_rewrite.parse(ARM)
    assert root.findall('link/visual')
    _joint(root, 'joint1').set('type', 'continuous')
    tool = _link(root, 'tool')
    for inertial in tool.findall('inertial'):
        tool.remove(inertial)
    urdf_rewrite.drop_geometry(root)
    urdf_rewrite.continuous_as_revolute(root, 1e6)
    urdf_rewrite.add_tiny_inertials(root)
    assert not root.findall('link/visual') and not root.findall('link/collision')
    limit = _joint(root, 'joint1').find('limit')
    assert _joint(root, 'joint1').get('type') == 'revolute'
    assert (float(limit.get('lower')), float(limit.get('upper'))) == (-1e6, 1e6)
    assert all(link.find('inertial') is not None for link in root.findall('link'))
    assert float(tool.find('inertial/mass').get('value')) == urdf_rewrite.TINY_MASS


def test_open_ranges_widens_every_movable_joint():
    root = urdf_rewrite.parse(ARM)
    _joint(root, 'joint1').set('type', 'continuous')
    _joint(root, 'joint2').set('type', 'prismatic')
    effort = _joint(root, 'joint3').find('limit').get('effort')
    urdf_rewrite.open_ranges(root, 1e6)
    for joint in root.findall('joint'):
        if joint.get('type') == 'fixed':
            continue
        assert joint.get('type') in ('revolute', 'prismatic')
        limit = joint.find('limit')
        assert (float(limit.get('lower')), float(limit.get('upper'))) == (-1e6, 1e6)
    assert _joint(root, 'joint1').get('type') == 'revolute'
    assert _joint(root, 'joint3').find('limit').get('effort') == effort     # kept


def test_bad_urdfs_and_sensor_links_are_named_errors(tmp_path):
    bad = tmp_path / 'bad.urdf'
    bad.write_text('<robot name="x"><link name="a">')
    with pytest.raises(URDFRewriteError, match='cannot read URDF'):
        urdf_rewrite.parse(bad)
    with pytest.raises(URDFRewriteError, match='cannot read URDF'):
        urdf_rewrite.parse(tmp_path / 'missing.urdf')
    root = urdf_rewrite.parse(ARM)
    with pytest.raises(URDFRewriteError, match="no joint has the force-torque sensor link 'x'"):
        urdf_rewrite.sensor_joint(root, 'x', 'arm.urdf')
    with pytest.raises(URDFRewriteError, match="arm.urdf: .*'link3' hangs on joint 'joint3' of "
                                               'type revolute; it must be a fixed joint'):
        urdf_rewrite.move_sensor_body(root, 'link3', 'arm.urdf')


def _placements(model, values):
    import pinocchio as pin
    q = pin.neutral(model)
    for jid in range(1, model.njoints):
        q[model.joints[jid].idx_q] = values[model.names[jid]]
    data = model.createData()
    pin.framesForwardKinematics(model, data, q)
    return {f.name: data.oMf[i].homogeneous for i, f in enumerate(model.frames)
            if f.type == pin.FrameType.BODY}


def test_locked_joints_become_fixed_where_they_are_held():
    """Revolute (under a rotated origin), prismatic and default positions: links stay put."""
    import numpy as np
    import pinocchio as pin
    from xml.etree import ElementTree
    path = Path(__file__).resolve().parent / 'data' / 'ur5e_like_mimic_gripper.urdf'
    root = urdf_rewrite.parse(path)
    locked = {'wrist_2_joint': -0.9, 'finger_joint': 0.03, 'elbow_joint': None}
    done = urdf_rewrite.lock_joints(root, locked)
    assert done == {'wrist_2_joint': -0.9, 'finger_joint': 0.03, 'elbow_joint': 0.0}
    for name in done:
        joint = _joint(root, name)
        assert joint.get('type') == 'fixed' and joint.find('axis') is None
        assert joint.find('limit') is None and len(joint.findall('origin')) == 1
    assert _joint(root, 'right_finger_joint').find('mimic') is None   # follows a locked joint
    original = pin.buildModelFromUrdf(str(path))
    rewritten = pin.buildModelFromXML(ElementTree.tostring(root, encoding='unicode'))
    assert rewritten.nq == original.nq - 3
    values = {name: 0.4 - 0.1 * i for i, name in enumerate(original.names[1:])}
    values.update(done)
    before, after = _placements(original, values), _placements(rewritten, values)
    assert before.keys() == after.keys()
    for link in before:
        assert np.allclose(before[link], after[link], atol=1e-12), link


def test_a_locked_joint_without_position_is_held_at_its_limit_nearest_zero(tmp_path):
    root = urdf_rewrite.parse(ARM)
    _joint(root, 'joint2').find('limit').set('lower', '0.25')
    assert urdf_rewrite.lock_joints(root, {'joint2': None}) == {'joint2': 0.25}
    root = urdf_rewrite.parse(ARM)
    with pytest.raises(URDFRewriteError, match=r"arm.urdf: locked joint 'joint2' at 3.0 is "
                                               r'outside its limits'):
        urdf_rewrite.lock_joints(root, {'joint2': 3.0}, 'arm.urdf')
    with pytest.raises(URDFRewriteError, match="locked joint 'nope' is not a revolute"):
        urdf_rewrite.lock_joints(root, {'nope': 0.0})
