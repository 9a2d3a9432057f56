"""The numpy CDR reader and writer against rclpy's own (de)serialization."""
import math

from geometry_msgs.msg import WrenchStamped
import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from robot_twin.nodes.cdr import CdrError, JointStateReader, JointStateWriter, stamp_of, \
    WrenchReader, WrenchWriter
from sensor_msgs.msg import JointState


def joint_state(names, position=(), velocity=(), effort=(), frame='', stamp=(12, 345)):
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame
    msg.name = list(names)
    msg.position, msg.velocity, msg.effort = list(position), list(velocity), list(effort)
    return msg


CASES = [
    (['joint1', 'joint2', 'joint3'], [0.1, -0.2, 3.0], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], ''),
    (['a'], [1e-300], [], [], 'base_link'),                    # no velocity, no effort
    (['shoulder_pan', 'x', 'éà'], [1.0, 2.0, 3.0], [], [7.0, 8.0, 9.0], 'abc'),  # odd lengths
    ([], [], [], [], 'frame_of_seven'),
]


@pytest.mark.parametrize('names,position,velocity,effort,frame', CASES)
def test_reader_matches_rclpy(names, position, velocity, effort, frame):
    data = serialize_message(joint_state(names, position, velocity, effort, frame))
    reader = JointStateReader()
    for _ in range(2):                             # the second read uses the cached names
        sec, nanosec, got_names, p, v, e = reader.read(data)
        assert (sec, nanosec, got_names) == (12, 345, tuple(names))
        for got, want in ((p, position), (v, velocity), (e, effort)):
            np.testing.assert_array_equal(got, np.asarray(want, dtype=float))


def test_reader_notices_changed_names():
    reader = JointStateReader()
    reader.read(serialize_message(joint_state(['a', 'b'], [1.0, 2.0])))
    _s, _n, names, p, _v, _e = reader.read(serialize_message(joint_state(['a', 'c'], [3, 4])))
    assert names == ('a', 'c') and p.tolist() == [3.0, 4.0]


@pytest.mark.parametrize('fields', [('position', 'velocity', 'effort'), ('position',),
                                    ('effort',)])
def test_writer_round_trips_through_rclpy(fields):
    names = ['joint1', 'joint2', 'gripper_finger_joint']
    writer = JointStateWriter(names, frame_id='twin', fields=fields)
    values = {'position': [0.5, -1.0, 0.01], 'velocity': [1.5, 2.5, -0.1],
              'effort': [10.0, -20.0, math.pi]}
    data = writer.write(1700000000, 999_999_999,
                        **{f: np.array(values[f]) for f in fields})
    msg = deserialize_message(data, JointState)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1700000000, 999_999_999)
    assert msg.header.frame_id == 'twin' and list(msg.name) == names
    for f in ('position', 'velocity', 'effort'):
        assert list(getattr(msg, f)) == (values[f] if f in fields else [])


def test_wrench_round_trip():
    writer = WrenchWriter('ft_sensor')
    data = writer.write(5, 6, np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]))
    msg = deserialize_message(data, WrenchStamped)
    f, t = msg.wrench.force, msg.wrench.torque
    assert [f.x, f.y, f.z, t.x, t.y, t.z] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert msg.header.frame_id == 'ft_sensor'
    sec, nanosec, w = WrenchReader().read(data)
    assert (sec, nanosec) == (5, 6) and w.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert stamp_of(data) == (5, 6)


def wrench_bytes(frame, stamp=(7, 8), values=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0)):
    msg = WrenchStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame
    f, t = msg.wrench.force, msg.wrench.torque
    f.x, f.y, f.z, t.x, t.y, t.z = values
    return serialize_message(msg)


@pytest.mark.parametrize('frame,expected', [
    ('ft_sensor', None), ('', None), ('base_link', 'base_link'), ('ft_sensor_link',
                                                                  'ft_sensor_link'),
    ('ft_senso', 'ft_senso'), ('/ft_sensor', '/ft_sensor'), ('éà', 'éà')])
def test_wrench_reader_compares_the_frame_bytes(frame, expected):
    reader = WrenchReader('ft_sensor')
    data = wrench_bytes(frame)
    for _ in range(2):
        sec, nanosec, w, got = reader.read_framed(data)
        assert (sec, nanosec, got) == (7, 8, expected)
        assert w.tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert reader.read(data)[2].tolist() == w.tolist() and len(reader.read(data)) == 3
    # without an expected frame, only an empty one is "as expected"
    assert WrenchReader().read_framed(data)[3] == (frame or None)


def test_malformed_bytes_raise_cdr_error_and_never_read_past_the_end():
    good = serialize_message(joint_state(['joint1', 'joint2'], [1.0, 2.0], [3.0, 4.0]))
    end = len(good) - (len(good) - 4) % 8 - 4         # rclpy pads the buffer; cut before that
    for cut in range(5, end, 3):
        reader = JointStateReader()
        with pytest.raises(CdrError):
            reader.read(good[:cut])
    huge = bytearray(good)
    at = good.index((2).to_bytes(4, 'little'), good.index(np.float64(2.0).tobytes()))
    huge[at:at + 4] = (10 ** 9).to_bytes(4, 'little')      # a velocity count of 1e9
    with pytest.raises(CdrError):
        JointStateReader().read(bytes(huge))
    with pytest.raises(CdrError):
        WrenchReader().read(serialize_message(WrenchStamped())[:30])
    framed = wrench_bytes('ft_sensor')
    for cut in range(5, len(framed) - 1, 3):       # the frame matched, the values cut off
        with pytest.raises(CdrError):
            WrenchReader('ft_sensor').read_framed(framed[:cut])


def test_other_encodings_are_left_to_rclpy():
    data = serialize_message(joint_state(['a'], [1.0]))
    assert JointStateReader().read(b'\x00\x00' + data[2:]) is None     # big endian
    assert WrenchReader().read(b'\x00\x07' + data[2:]) is None         # XCDR2


@pytest.mark.parametrize('statuses,frame', [
    ([], ''),
    ([('twin/anomaly/robot', 'ERROR', 'anomaly: friction_increase',
       {'score': 1.2345678, 'joint': 'joint3', 'since': '', 'dropped_samples': 0}),
      ('twin/anomaly/joint1', 'OK', 'nominal', {}),
      ('x', 'STALE', 'éà, odd lengths', {'a': 'b', 'key of 5': -1e-300}),
      ('twin/status/sync', 'WARN', '', {'nan': float('nan'), 'inf': math.inf})], 'f'),
])
def test_diagnostic_array_bytes_equal_rclpys(statuses, frame):
    """The reports' writer gives the message make_status builds, in as many bytes as rclpy."""
    from diagnostic_msgs.msg import DiagnosticArray
    from robot_twin.nodes.cdr import write_diagnostic_array
    from robot_twin.nodes.messages import diagnostics_bytes, LEVELS, make_status, value_text
    from twin_anomaly.report import StatusEntry
    array = DiagnosticArray()
    array.header.stamp.sec, array.header.stamp.nanosec = 1_800_000_000, 999_999_999
    array.header.frame_id = frame
    array.status = [make_status(*s, hardware_id='hw') for s in statuses]
    want = serialize_message(array)    # (rclpy leaves its alignment padding uninitialized)
    got = write_diagnostic_array(1_800_000_000, 999_999_999, [
        (LEVELS[level][0], name, message, 'hw', [(k, value_text(v)) for k, v in values.items()])
        for name, level, message, values in statuses], frame_id=frame)
    assert len(got) == len(want)
    assert deserialize_message(got, DiagnosticArray) == array
    if not frame:
        entries = [StatusEntry(*s) for s in statuses]
        assert diagnostics_bytes((1_800_000_000, 999_999_999), entries, hardware_id='hw') == got
