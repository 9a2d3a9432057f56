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
