"""
Helper processes of benchmarks/bench_mirror.py: a synthetic 1 kHz robot and a receiver.

``publish``: plays a robot. It publishes sensor_msgs/JointState on /joint_states and
geometry_msgs/WrenchStamped on /ft_sensor/wrench at a fixed rate, paced precisely (sleep until
shortly before each deadline, then spin to it), each pair stamped with the wall time at
publication (whole microseconds). The data come from the twin's own model (smooth sinusoids
within the joint limits; efforts = inverse dynamics + friction; wrench = the model's
force-torque wrench) at the stamp's time, so that a mirror does its full work on them and its
residuals stay small. The readings are exact unless ``--noise SCALE`` adds white sensor noise,
SCALE times that of the offline fault runs' robots (``robot_twin.fault_runs.NOISE``: 1e-4 rad,
1e-3 rad/s, 0.05 N·m, wrench 0.2 N and 0.01 N·m; 1 = those levels), as a real robot's are
noisy; ``--wrench-topic ''`` publishes no wrench (a robot without a force-torque sensor). On
SIGTERM/SIGINT it writes the stamp of every published sample and its lateness against the
schedule to ``--output`` (.npz).

``receive``: subscribes to the robot's /joint_states (as the twin does: best-effort) and to
/twin/residuals and /twin/wrench_residual (reliable, as published), serialized (no message
objects: cheap), and records for every message its header stamp and its wall-clock receive
time (ns), plus the largest absolute effort residual of every 20th /twin/residuals message,
and the level of every /twin/anomaly report (the detector's verdict on a robot that is nominal).
It spins rclpy's EventsExecutor (``--executor single``: the SingleThreadedExecutor), so that the
instrument takes as little as possible of the two cores it shares with the twin.
It prints ``READY`` once the twin's residuals and the raw stream both arrive, and writes
everything to ``--output`` (.npz) on SIGTERM/SIGINT.

Run by bench_mirror.py with ``robot_twin.ros_env.localhost_env``; not meant to be used alone.
"""
import argparse
import array
import ctypes
import math
import signal
import struct
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.task import Future
from robot_twin.nodes import qos
from robot_twin.nodes.runner import EventsExecutor   # None before Kilted
from sensor_msgs.msg import JointState
from twin_sim.predictor import Predictor
from twin_sim.resources import urdf_or_builtin
from twin_sim.urdf_model import RobotModel
try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:   # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

# The robot publishes like ros2_control's broadcasters (reliable, depth 10); the receiver reads
# the raw stream and the twin's 1 kHz outputs best-effort (how the twin publishes them; a
# best-effort reader also matches a reliable writer), 10 deep, the usual sensor-data depth.
# ``--depth`` reads the twin's outputs deeper: after a stall the twin works off its backlog and
# sends the residuals of up to 100 ms of samples back to back, and a 10-deep reader drops most
# of such a burst before its thread gets to them (BENCHMARKS.md: 39 of 20,000 residuals lost
# over ten 40 ms stalls when 10 deep, none when 100 deep; but the twin measured 0.006-0.025
# core more beside the 100-deep reader in five alternated pairs).
ROBOT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
SENSOR_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)

PERIOD_S = 8.0     # the motion repeats after this many seconds (every frequency fits it)
SPIN_NS = 150_000  # sleep until this long before a deadline, then busy-wait to it


class _Stop:
    """Set by SIGTERM/SIGINT: the loops end and the results are written."""

    requested = False

    @classmethod
    def install(cls):
        def handler(_signum, _frame):
            cls.requested = True
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)


def _precise_timers():
    """Ask Linux for 1 ns timer slack, so that sleeps end close to when asked (best effort)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(29, 1, 0, 0, 0)   # PR_SET_TIMERSLACK
    except (OSError, AttributeError):
        pass


class RobotMotion:
    """
    Plausible robot data at any time: sinusoids within the joint limits, model dynamics.

    ``sample(t)`` returns position (rad), velocity (rad/s), effort (N·m, inverse dynamics +
    friction) as (n,) ``array.array('d')`` in model joint order, and the wrench (6,) list
    [N, N·m] in the sensor frame (zeros without a sensor), of the motion at time ``t`` (s).
    Computing it for the very stamp a sample carries keeps the stream consistent even when
    the publisher is late, so the mirror's residuals stay at its own estimation error.
    """

    def __init__(self, model):
        lo, hi = np.clip(model.lower, -2.5, 2.5), np.clip(model.upper, -2.5, 2.5)
        self.centre, self.amp = 0.5 * (lo + hi), 0.15 * (hi - lo)
        self.w = 2.0 * math.pi * (np.arange(model.n) % 4 + 2) / PERIOD_S
        self.phase = np.linspace(0.0, 2.0, model.n)
        self.predictor = Predictor(model)

    def sample(self, t):
        angle = self.w * (t % PERIOD_S) + self.phase
        s, c = np.sin(angle), np.cos(angle)
        q = self.centre + self.amp * s
        qd = self.amp * self.w * c
        qdd = -self.amp * self.w * self.w * s
        prediction = self.predictor.predict(q, qd, qdd)
        wrench = [0.0] * 6 if prediction.wrench is None else prediction.wrench.tolist()
        return (array.array('d', q), array.array('d', qd), array.array('d', prediction.effort),
                wrench)


class NoisyMotion:
    """
    A :class:`RobotMotion` read through noisy sensors: white Gaussian noise (fixed seed).

    The standard deviations are ``scale`` times ``robot_twin.fault_runs.NOISE`` (rad, rad/s,
    N·m; wrench N and N·m), the noise of the offline fault runs' robots.
    """

    BLOCK = 200     # samples whose noise is drawn at once (a draw per sample costs 3x more)

    def __init__(self, motion, scale, seed=0):
        from robot_twin.fault_runs import NOISE
        self.motion = motion
        n = motion.centre.size
        signals = ('position', 'velocity', 'effort', 'force', 'torque')
        self.sd = scale * np.repeat([NOISE[key] for key in signals], [n, n, n, 3, 3])  # (3n+6,)
        self.rng = np.random.default_rng(seed)
        self.block, self.next = np.empty((0, self.sd.size)), 0

    def sample(self, t):
        """Return ``(q, qd, effort, wrench)`` at time ``t`` as :meth:`RobotMotion.sample`."""
        q, qd, effort, wrench = self.motion.sample(t)
        if self.next == len(self.block):
            self.block = self.sd * self.rng.standard_normal((self.BLOCK, self.sd.size))
            self.next = 0
        noise = self.block[self.next]
        self.next += 1
        n = len(q)
        values = np.frombuffer(q + qd + effort) + noise[:3 * n]
        return (*(array.array('d', values[k * n:(k + 1) * n].tobytes()) for k in range(3)),
                [w + e for w, e in zip(wrench, noise[3 * n:].tolist())])


def publish(args):
    """Publish the synthetic robot at ``args.rate_hz`` until stopped; save the stamps."""
    model = RobotModel.from_urdf(urdf_or_builtin(args.urdf))
    motion = RobotMotion(model)
    if args.noise > 0.0:
        motion = NoisyMotion(motion, args.noise)
    _precise_timers()
    rclpy.init()
    _Stop.install()
    node = rclpy.create_node('robot_stream')
    pub_js = node.create_publisher(JointState, args.joint_states_topic, ROBOT_QOS)
    pub_w = (node.create_publisher(WrenchStamped, args.wrench_topic, ROBOT_QOS)
             if args.wrench_topic else None)
    js = JointState()
    js.name = list(model.joint_names)
    ws = WrenchStamped()
    ws.header.frame_id = model.ft_frame or ''
    force, torque = ws.wrench.force, ws.wrench.torque

    period_ns = int(round(1e9 / args.rate_hz))
    stamps, late = array.array('q'), array.array('q')
    deadline = time.monotonic_ns() + 100 * period_ns
    wall_minus_mono = time.time_ns() - time.monotonic_ns()
    origin = deadline + wall_minus_mono      # motion time 0, wall clock ns
    try:
        while not _Stop.requested:
            planned = deadline + wall_minus_mono
            data = motion.sample((planned - origin) * 1e-9)
            remaining = deadline - time.monotonic_ns()
            if remaining > SPIN_NS:
                time.sleep((remaining - SPIN_NS) * 1e-9)
            while time.monotonic_ns() < deadline:
                pass
            now = time.time_ns() // 1000 * 1000      # whole microseconds (tests mark theirs)
            late.append(time.monotonic_ns() - deadline)
            if now - planned > 20_000:       # late: sample the motion at the real stamp
                data = motion.sample((now - origin) * 1e-9)
            js.header.stamp.sec, js.header.stamp.nanosec = divmod(now, 1_000_000_000)
            js.position, js.velocity, js.effort, wrench = data
            pub_js.publish(js)
            if pub_w is not None:
                ws.header.stamp = js.header.stamp
                force.x, force.y, force.z, torque.x, torque.y, torque.z = wrench
                pub_w.publish(ws)
            stamps.append(now)
            deadline += period_ns
            behind = time.monotonic_ns() - deadline
            if behind > 20 * period_ns:      # starved for 20 periods: skip, do not burst
                deadline += (behind // period_ns + 1) * period_ns
    finally:
        np.savez(args.output, stamp_ns=np.frombuffer(stamps, dtype=np.int64),
                 late_ns=np.frombuffer(late, dtype=np.int64), period_ns=period_ns)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _cdr_stamp_ns(data):
    """
    Header stamp (ns) of a serialized message whose first field is a std_msgs/Header.

    CDR: a 4-byte encapsulation header (byte 1: 1 = little endian), then stamp.sec (int32)
    and stamp.nanosec (uint32). Reading it from the bytes spares the receiver the cost of
    building message objects, which would otherwise load the machine it measures.
    """
    sec, nanosec = _STAMP_LE.unpack_from(data, 4) if data[1] == 1 else \
        _STAMP_BE.unpack_from(data, 4)
    return sec * 1_000_000_000 + nanosec


_STAMP_LE, _STAMP_BE = struct.Struct('<iI'), struct.Struct('>iI')


class _Recorder:
    """Stamps and receive times (ns) of one topic's serialized messages."""

    def __init__(self):
        self.stamp = array.array('q')
        self.recv = array.array('q')

    def __call__(self, data):
        self.recv.append(time.time_ns())
        self.stamp.append(_cdr_stamp_ns(data))

    def arrays(self, prefix):
        return {f'{prefix}_stamp_ns': np.frombuffer(self.stamp, dtype=np.int64),
                f'{prefix}_recv_ns': np.frombuffer(self.recv, dtype=np.int64)}


class _ResidualRecorder(_Recorder):
    """Also keeps the largest absolute effort residual of every ``every``-th message (N·m)."""

    def __init__(self, every=20):
        super().__init__()
        self.every = every
        self.max_effort = array.array('d')
        self.max_effort_stamp = array.array('q')

    def __call__(self, data):
        super().__call__(data)
        if len(self.recv) % self.every == 0:
            effort = deserialize_message(data, JointState).effort
            self.max_effort.append(max(map(abs, effort)) if len(effort) else math.nan)
            self.max_effort_stamp.append(self.stamp[-1])


class _ReportRecorder:
    """Receive time (ns) and highest level (0 OK, 1 WARN, 2 ERROR, 3 STALE) of each report."""

    def __init__(self):
        self.recv = array.array('q')
        self.level = array.array('q')
        self.alarms = {}             # group, message, channel of a status above OK -> count

    def __call__(self, msg):
        self.recv.append(time.time_ns())
        levels = [ord(s.level) if isinstance(s.level, bytes) else int(s.level)
                  for s in msg.status]
        self.level.append(max(levels, default=-1))
        for status, level in zip(msg.status, levels):
            if level > 0 and status.name != 'twin/anomaly/robot':
                values = {kv.key: kv.value for kv in status.values}
                key = (f'{status.name.rsplit("/", 1)[-1]} {status.message} '
                       f'[{values.get("channel", "")}/{values.get("detector", "")}]')
                self.alarms[key] = self.alarms.get(key, 0) + 1


def receive(args):
    """Record the raw and the twin's streams until stopped; save them."""
    rclpy.init()
    _Stop.install()
    # a lean node: no parameter services, no /rosout, no QoS-event handlers, so that every
    # executor wait has only the three subscriptions to look at
    node = rclpy.create_node('bench_receiver', start_parameter_services=False,
                             enable_rosout=False)
    raw, residuals, wrench = _Recorder(), _ResidualRecorder(), _Recorder()
    lean = {'raw': True,
            'event_callbacks': SubscriptionEventCallbacks(use_default_callbacks=False)}
    node.create_subscription(JointState, args.joint_states_topic, raw, SENSOR_QOS, **lean)
    outputs = QoSProfile(depth=args.depth, reliability=ReliabilityPolicy.BEST_EFFORT)
    node.create_subscription(JointState, '/twin/residuals', residuals, outputs, **lean)
    if args.wrench:
        node.create_subscription(WrenchStamped, '/twin/wrench_residual', wrench, outputs,
                                 **lean)
    reports = _ReportRecorder()          # 10 Hz, deserialized: cheap at that rate
    node.create_subscription(DiagnosticArray, '/twin/anomaly', reports, qos.LATCHED)
    # the measuring instrument should disturb the twin as little as possible: the
    # EventsExecutor takes the three 1 kHz streams for a fraction of the SingleThreadedExecutor's
    # CPU (BENCHMARKS.md, issue 13); its spin() stalls, so it runs in slices as the twin's
    events = args.executor == 'events' and EventsExecutor is not None
    executor = EventsExecutor() if events else SingleThreadedExecutor()
    executor.add_node(node)
    never = Future()
    ready = False
    try:
        while not _Stop.requested:
            if events:
                executor.spin_until_future_complete(never, timeout_sec=0.1)
            else:
                executor.spin_once(timeout_sec=0.1)
            if not ready and len(raw.recv) and len(residuals.recv):
                ready = True
                print('READY', flush=True)
    finally:
        out = raw.arrays('raw')
        out.update(residuals.arrays('res'))
        out['res_max_effort'] = np.frombuffer(residuals.max_effort, dtype=float)
        out['res_max_effort_stamp_ns'] = np.frombuffer(residuals.max_effort_stamp,
                                                       dtype=np.int64)
        out.update(wrench.arrays('wres'))
        out['anomaly_recv_ns'] = np.frombuffer(reports.recv, dtype=np.int64)
        out['anomaly_level'] = np.frombuffer(reports.level, dtype=np.int64)
        out['anomaly_messages'] = np.array([           # the most frequent first
            f'{n} x {key}' for key, n in sorted(reports.alarms.items(), key=lambda kv: -kv[1])])
        np.savez(args.output, **out)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _scale(text):
    """Parse ``--noise``: a finite number >= 0."""
    value = float(text)
    if not 0.0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f'must be a finite number >= 0, got {text}')
    return value


def main(argv=None):
    """Run the ``publish`` or ``receive`` role."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='role', required=True)
    pub = sub.add_parser('publish')
    pub.add_argument('--rate-hz', type=float, default=1000.0)
    pub.add_argument('--urdf', default='')
    pub.add_argument('--noise', type=_scale, default=0.0, metavar='SCALE',
                     help="white sensor noise, SCALE times the fault runs' "
                          '(robot_twin.fault_runs.NOISE; default 0: exact readings)')
    rec = sub.add_parser('receive')
    rec.add_argument('--no-wrench', dest='wrench', action='store_false')
    rec.add_argument('--depth', type=int, default=10,
                     help="queue depth of the twin's outputs (default 10)")
    rec.add_argument('--executor', choices=('events', 'single'), default='events',
                     help="the receiver's rclpy executor (single: SingleThreadedExecutor, as "
                          'before 2026-12-05)')
    for p in (pub, rec):
        p.add_argument('--output', required=True)
        p.add_argument('--joint-states-topic', default='/joint_states')
    pub.add_argument('--wrench-topic', default='/ft_sensor/wrench',
                     help="the robot's WrenchStamped topic ('' = publish no wrench)")
    args = parser.parse_args(argv)
    return publish(args) if args.role == 'publish' else receive(args)


if __name__ == '__main__':
    sys.exit(main())
