"""The mirror node's reused output messages: a refilled message equals a freshly built one."""
from builtin_interfaces.msg import Time
from geometry_msgs.msg import WrenchStamped
import numpy as np
from rclpy.serialization import deserialize_message, serialize_message
from robot_twin.nodes.messages import fill_joint_state, fill_wrench, joint_state_to_arrays, \
    make_joint_state, make_wrench, wrench_to_array
from sensor_msgs.msg import JointState

NAMES = [f'joint{i}' for i in range(1, 8)]


def test_refilled_joint_state_serializes_like_a_new_one():
    msg = make_joint_state(Time(), NAMES)
    rng = np.random.default_rng(0)
    for k in range(3):   # refilled several times: nothing of the previous sample remains
        stamp = Time(sec=1_700_000_000 + k, nanosec=123_456_789)
        q, qd, effort = rng.normal(size=(3, 7))
        fill_joint_state(msg, stamp, q, qd, effort)
        fresh = make_joint_state(stamp, NAMES, q, qd, effort)
        # compare what goes on the wire field by field (CDR padding bytes are not defined)
        assert deserialize_message(serialize_message(msg), JointState) == fresh
        names, pos, vel, eff, t = joint_state_to_arrays(msg)
        assert names == NAMES and abs(t - (1_700_000_000 + k + 0.123456789)) < 1e-6
        np.testing.assert_array_equal(pos, q)
        np.testing.assert_array_equal(vel, qd)
        np.testing.assert_array_equal(eff, effort)


def test_fill_joint_state_keeps_fields_given_as_none():
    msg = make_joint_state(Time(), NAMES, np.zeros(7), np.ones(7), np.full(7, 2.0))
    fill_joint_state(msg, Time(sec=5), position=np.arange(7.0))
    np.testing.assert_array_equal(msg.position, np.arange(7.0))
    np.testing.assert_array_equal(msg.velocity, np.ones(7))
    assert msg.header.stamp.sec == 5


def test_refilled_wrench_serializes_like_a_new_one():
    msg = make_wrench(Time(), 'ft_sensor', [0.0] * 6)
    for k, w in enumerate((np.arange(6.0), -np.arange(6.0) * 0.5)):
        stamp = Time(sec=10 + k, nanosec=7)
        fill_wrench(msg, stamp, w)
        fresh = make_wrench(stamp, 'ft_sensor', w)
        assert deserialize_message(serialize_message(msg), WrenchStamped) == fresh
        values, t = wrench_to_array(msg)
        np.testing.assert_array_equal(values, w)
        assert abs(t - (10 + k + 7e-9)) < 1e-12
