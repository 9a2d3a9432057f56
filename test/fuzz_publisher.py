"""
Malformed robot messages for test/test_integration_fuzz.py: a process that attacks the twin.

Publishes on the robot's topics, beside the real 1 kHz stream, every kind of bad JointState and
WrenchStamped message: NaN, inf, 1e308, positions far beyond the limits, impossible speeds and
efforts, wrong lengths, unknown and duplicated names, zero, future, past and slightly-ahead
stamps, unreadable bytes. Every message it sends carries a stamp whose nanoseconds end in
``MARK`` (the real stream's stamps are whole microseconds), so any twin output computed from
one of them can be recognized by its stamp.

Phase 1 (``--mixed-s``): one bad message of each kind in turn, ``--rate-hz`` in all. Phase 2
(``--flood-s``): as fast as it can. Prints ``SENT <kind> <count>`` lines at the end.
"""
import argparse
import random
import sys
import time

from geometry_msgs.msg import WrenchStamped
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message
from sensor_msgs.msg import JointState

MARK = 777
NAMES = [f'joint{i}' for i in range(1, 8)]
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def stamped(msg, offset_s=0.0, zero=False):
    """Stamp ``msg`` at now + offset (marked), or 0."""
    if zero:
        msg.header.stamp.sec, msg.header.stamp.nanosec = 0, 0
        return msg
    ns = (time.time_ns() + int(offset_s * 1e9)) // 1000 * 1000 + MARK
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
    return msg


def joint_state(position=None, velocity=None, effort=None, names=NAMES):
    msg = JointState()
    msg.name = list(names)
    msg.position = list(position if position is not None else [0.1] * len(names))
    msg.velocity = list(velocity if velocity is not None else [0.0] * len(names))
    msg.effort = list(effort if effort is not None else [1.0] * len(names))
    return msg


def with_value(field, index, value):
    values = {'position': [0.1] * 7, 'velocity': [0.0] * 7, 'effort': [1.0] * 7}
    values[field][index] = value
    return joint_state(**values)


def garbage(rng, template):
    """
    Return unreadable bytes behind a valid CDR header.

    A truncated message, or one whose first string length (header.frame_id) runs past the end.

    (Bytes scrambled at random are not always unreadable: a change that lands in a value or in
    padding leaves a valid, plausible message, which the twin rightly accepts.)
    """
    data = bytearray(serialize_message(template))
    if rng.random() < 0.5:
        # at least a whole double short: DDS pads a payload to 4 bytes, so a message cut by 1-3
        # bytes can arrive whole again, with a slightly different last value
        return bytes(data[:rng.randrange(4, len(data) - 8)])
    data[12:16] = (len(data) + rng.randrange(1, 1 << 20)).to_bytes(4, 'little')
    return bytes(data)


def bad_messages(upper):
    """(kind, topic, build) of every bad message, ``build(rng)`` returning a message or bytes."""
    j, w = 'joint_states', 'wrench'
    return [
        ('nan_position', j, lambda r: stamped(with_value('position', 2, float('nan')))),
        ('inf_velocity', j, lambda r: stamped(with_value('velocity', 4, float('inf')))),
        ('huge_position', j, lambda r: stamped(with_value('position', 0, 1e308))),
        ('beyond_limit', j, lambda r: stamped(with_value('position', 3, upper[3] + 100.0))),
        ('huge_velocity', j, lambda r: stamped(with_value('velocity', 5, -1e308))),
        ('huge_effort', j, lambda r: stamped(with_value('effort', 6, 1e6))),
        ('short_position', j, lambda r: stamped(joint_state(position=[0.1] * 5))),
        ('long_effort', j, lambda r: stamped(joint_state(effort=[0.0] * 9))),
        ('unknown_name', j, lambda r: stamped(joint_state(names=NAMES[:6] + ['j8']))),
        ('duplicate_name', j, lambda r: stamped(joint_state(names=NAMES[:6] + ['joint1']))),
        ('no_names', j, lambda r: stamped(joint_state(names=[]))),
        ('zero_stamp', j, lambda r: stamped(joint_state(), zero=True)),
        ('future_stamp', j, lambda r: stamped(joint_state(), offset_s=5.0)),
        ('ahead_stamp', j, lambda r: stamped(joint_state(), offset_s=0.05)),
        ('old_stamp', j, lambda r: stamped(joint_state(), offset_s=-2.0)),
        ('unreadable', j, lambda r: garbage(r, stamped(joint_state()))),
        ('nanosec_overflow', j, lambda r: overflowed(stamped(joint_state()))),
        # valid (JointState allows it: "not provided"), and accepted: never a NaN effort out
        ('no_effort', j, lambda r: stamped(joint_state(effort=[]))),
        ('wrench_nan', w, lambda r: stamped(wrench([float('nan'), 0, 0, 0, 0, 0]))),
        ('wrench_huge', w, lambda r: stamped(wrench([0, 0, 0, 0, 0, 1e308]))),
        ('wrench_range', w, lambda r: stamped(wrench([5000.0, 0, 0, 0, 0, 0]))),
        ('wrench_unreadable', w, lambda r: garbage(r, stamped(wrench([0.0] * 6)))),
        ('wrench_frame', w, lambda r: stamped(wrench([0.0] * 6, frame_id='base_link'))),
    ]


def overflowed(msg):
    """Write the same stamp with a nanosec of 1e9 or more (not a valid Time)."""
    msg.header.stamp.sec -= 1
    msg.header.stamp.nanosec += 1_000_000_000
    return msg


def wrench(values, frame_id='ft_sensor'):
    msg = WrenchStamped()
    msg.header.frame_id = frame_id
    f, t = msg.wrench.force, msg.wrench.torque
    f.x, f.y, f.z, t.x, t.y, t.z = map(float, values)
    return msg


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--mixed-s', type=float, default=6.0)
    parser.add_argument('--rate-hz', type=float, default=200.0)
    parser.add_argument('--flood-s', type=float, default=2.0)
    parser.add_argument('--log', default='',
                        help='write "kind sec nanosec" of every message sent to this file')
    parser.add_argument('--upper', type=float, nargs=7, required=True,
                        help='upper position limits of the 7 joints, rad')
    args = parser.parse_args()
    rclpy.init()
    node = rclpy.create_node('fuzz_publisher')
    pubs = {'joint_states': node.create_publisher(JointState, '/joint_states', QOS),
            'wrench': node.create_publisher(WrenchStamped, '/ft_sensor/wrench', QOS)}
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline and not all(p.get_subscription_count() for p in
                                                  pubs.values()):
        time.sleep(0.05)
    print('READY', flush=True)
    rng = random.Random(7)
    kinds = bad_messages(args.upper)
    sent = dict.fromkeys((k for k, _t, _b in kinds), 0)
    k = 0
    log = []

    def send(kind, topic, msg):
        pubs[topic].publish(msg)
        sent[kind] += 1
        if args.log and not isinstance(msg, bytes):
            log.append(f'{kind} {msg.header.stamp.sec} {msg.header.stamp.nanosec}')

    end_mixed = time.monotonic() + args.mixed_s
    while time.monotonic() < end_mixed:
        kind, topic, build = kinds[k % len(kinds)]
        send(kind, topic, build(rng))
        k += 1
        time.sleep(1.0 / args.rate_hz)
    print('FLOOD', flush=True)
    end_flood = time.monotonic() + args.flood_s
    while time.monotonic() < end_flood:
        kind, topic, build = kinds[k % len(kinds)]
        send(kind, topic, build(rng))
        k += 1
    for kind, count in sent.items():
        print('SENT', kind, count, flush=True)
    if args.log:
        with open(args.log, 'w', encoding='utf-8') as f:
            f.write('\n'.join(log) + '\n')
    print('DONE', flush=True)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
