"""Message <-> array conversions used by every node (message types only, no rclpy)."""
import math

import numpy as np
import pytest

from robot_twin.nodes.messages import level_name, make_joint_state, make_status, make_wrench, \
    sec_to_stamp, stamp_to_sec, status_values, trajectory_msg, trajectory_points
from twin_sim.resources import builtin_urdf, fault_scenario


def test_stamps_round_trip_to_the_nanosecond():
    stamp = sec_to_stamp(1795567194.548228872)
    assert stamp.nanosec < 1_000_000_000
    assert abs(stamp_to_sec(stamp) - 1795567194.548228872) < 1e-6
    for bad in (math.nan, -1.0, math.inf):
        with pytest.raises(ValueError):
            sec_to_stamp(bad)


def test_joint_state_and_wrench_round_trip():
    stamp = sec_to_stamp(12.5)
    msg = make_joint_state(stamp, ['a', 'b'], [1.0, 2.0], None, np.array([3.0, 4.0]))
    assert list(msg.name) == ['a', 'b'] and stamp_to_sec(msg.header.stamp) == 12.5
    assert list(msg.position) == [1.0, 2.0] and list(msg.velocity) == []
    assert list(msg.effort) == [3.0, 4.0]
    wrench = make_wrench(stamp, 'ft_sensor', [1, 2, 3, 4, 5, 6])
    f, t = wrench.wrench.force, wrench.wrench.torque
    assert [f.x, f.y, f.z, t.x, t.y, t.z] == [1, 2, 3, 4, 5, 6]
    assert wrench.header.frame_id == 'ft_sensor' and stamp_to_sec(wrench.header.stamp) == 12.5


def test_status_levels_and_values():
    status = make_status('twin/x', 'ERROR', 'bad', {'score': 1.23456789, 'joint': 'j3', 'n': 4})
    assert level_name(status.level) == 'ERROR'
    assert status_values(status) == {'score': '1.23457', 'joint': 'j3', 'n': '4'}


def test_trajectory_round_trip():
    msg = trajectory_msg(['a', 'b'], [(0.5, [1.0, 2.0], [0.0, 0.0]), (1.25, [1.5, 2.5])])
    names, points = trajectory_points(msg)
    assert names == ['a', 'b']
    assert points[0][0] == 0.5 and points[0][2].tolist() == [0.0, 0.0]
    assert points[1][0] == 1.25 and points[1][1].tolist() == [1.5, 2.5] and points[1][2] is None


def test_resources_resolve_scenarios_by_name_or_path():
    assert builtin_urdf().endswith('urdf/robot_twin_arm.urdf')
    assert fault_scenario('demo') == fault_scenario('demo.yaml')
    assert fault_scenario(fault_scenario('demo')) == fault_scenario('demo')
    with pytest.raises(FileNotFoundError, match='packaged: .*collision'):
        fault_scenario('no_such_scenario')
