"""
Helpers of the hub tests: a real ``twin_hub`` process, and a player of the twin's topics.

The hub runs as its own process on a test-unique ROS_DOMAIN_ID (localhost-only DDS, the
project's Fast DDS profile), with its servers on free ports of 127.0.0.1. :class:`TwinPlayer`
plays what a running twin publishes — /twin/joint_states and /twin/predicted_joint_states at a
display rate, /twin/status, and the latched /twin/anomaly and /twin/rul — from the test's
:class:`ros_harness.Observer` node, and remembers every joint sample it published, so that a
test can check what an interface shows against what was on the bus.
"""
import contextlib
import math
import secrets
import socket
import sys
import threading
import time
import urllib.request

from robot_twin.bringup import ProcessGroup, with_override_files
from robot_twin.graph import NodeSpec, ProcessSpec
from robot_twin.hub.settings import HUB_EXECUTABLE
from robot_twin.ros_env import localhost_env

JOINTS = [f'joint{i}' for i in range(1, 8)]


def free_port():
    """Return a TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def write_token(path):
    """Write a fresh bearer token to ``path``; return it."""
    token = secrets.token_urlsafe(32)
    path.write_text(token + '\n', encoding='utf-8')
    return token


def node_argv(module, name, *ros_args):
    """Return the argv of a robot_twin node process (module with ``main``) named ``name``."""
    return [sys.executable, '-m', module, '--ros-args', '-r', f'__node:={name}', *ros_args]


def hub_command(params_file):
    """Return the argv of a twin_hub process reading ``params_file``."""
    return node_argv('robot_twin.nodes.hub_node', 'twin_hub', '--params-file', str(params_file))


class HubProcess:
    """
    A ``twin_hub`` process (and optional other node processes) on one domain.

    Parameters
    ----------
    workdir : pathlib.Path
        Where the params file goes.
    domain_id : int
        ROS_DOMAIN_ID of the processes.
    parameters : dict
        twin_hub parameters (dotted names).
    extra : list of (name, argv), optional
        More processes started before the hub (e.g. a twin_bridge).

    """

    def __init__(self, workdir, domain_id, parameters, extra=()):
        spec = ProcessSpec('robot_twin', HUB_EXECUTABLE, (
            NodeSpec(HUB_EXECUTABLE, HUB_EXECUTABLE, dict(parameters)),))
        (written,) = with_override_files([spec], workdir)    # as robot-twin up writes them
        self.lines = []
        self._lock = threading.Lock()
        self.group = ProcessGroup(list(extra) + [('twin_hub', hub_command(
            written.params_files[-1]))], localhost_env(domain_id), on_line=self._on_line,
            stop_timeout_s=10.0)

    def _on_line(self, name, line):
        with self._lock:
            self.lines.append(f'[{name}] {line}')

    def output(self):
        """Every output line so far, as one text."""
        with self._lock:
            return '\n'.join(self.lines[-80:])

    def start(self):
        """Start the processes; return self."""
        self.group.start()
        return self

    def check_alive(self):
        """Raise AssertionError (with the output) if a process exited."""
        exited = self.group.poll()
        if exited is not None:
            raise AssertionError(f'{exited[0]} exited with {exited[1]}\n{self.output()}')

    def stop(self):
        """Stop every process; return the names that had to be killed."""
        return self.group.stop()


@contextlib.contextmanager
def running_hub(workdir, parameters, *, extra=(), status=True, fault=None):
    """
    Run a hub process and play the twin's topics to it; stop both on the way out.

    Parameters
    ----------
    workdir : pathlib.Path
        Where the hub's params file goes.
    parameters : dict
        twin_hub parameters (dotted names).
    extra : list of (name, argv)
        More processes on the hub's domain, started first.
    status : bool
        Also play /twin/status (see :class:`TwinPlayer`).
    fault : (joint, fault_type), optional
        Report this fault from the start.

    Yields
    ------
    (HubProcess, ros_harness.Observer, TwinPlayer)

    """
    from ros_harness import Observer, unique_domain_id
    domain = unique_domain_id()
    process = HubProcess(workdir, domain, parameters, extra).start()
    observer = player = None
    try:
        observer = Observer(domain, name='hub_test_player')
        player = TwinPlayer(observer, status=status)
        if fault is not None:
            player.set_fault(*fault)
        yield process, observer, player
    finally:
        if player is not None:
            player.stop()
        if observer is not None:
            observer.close()
        process.stopped_cleanly = process.stop() == []


def wait_http(url, hub, timeout_s=90.0):
    """Wait until ``url`` answers 200 (the hub is serving); fail with the hub's output."""
    deadline = time.monotonic() + timeout_s
    while True:
        hub.check_alive()
        try:
            with urllib.request.urlopen(url, timeout=2.0) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f'{url} did not answer within {timeout_s:g} s\n{hub.output()}')
        time.sleep(0.2)


class TwinPlayer:
    """
    Publish a twin's low-rate outputs from ``observer.node`` (timers on its spin thread).

    The motion is smooth sinusoids; predicted efforts differ from measured ones by a small
    offset, and by ``fault_offset`` N·m on the faulty joint once :meth:`set_fault` was called.

    Parameters
    ----------
    observer : ros_harness.Observer
        The test's ROS participant on the hub's domain.
    rate_hz : float
        Display rate of the joint topics.
    status : bool
        Also play /twin/status (leave it to a real twin_bridge when one runs).

    """

    def __init__(self, observer, rate_hz=50.0, status=True):
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState
        node = observer.node
        self.node = node
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.pub_measured = node.create_publisher(JointState, '/twin/joint_states', reliable)
        self.pub_predicted = node.create_publisher(JointState, '/twin/predicted_joint_states',
                                                   reliable)
        self.pub_status = node.create_publisher(DiagnosticArray, '/twin/status', reliable)
        self.pub_anomaly = node.create_publisher(DiagnosticArray, '/twin/anomaly', latched)
        self.pub_rul = node.create_publisher(DiagnosticArray, '/twin/rul', latched)
        self.lock = threading.Lock()
        self.published = {}           # stamp ns -> positions (list) of /twin/joint_states
        self.fault = None             # (joint, fault_type, since stamp)
        self.t0 = time.time()
        self._timers = [node.create_timer(1.0 / rate_hz, self._joints),
                        node.create_timer(0.2, self._anomaly),
                        node.create_timer(1.0, self._rul)]
        if status:
            self._timers.append(node.create_timer(0.1, self._status))

    def set_fault(self, joint, fault_type='friction_like'):
        """From now on, report an ERROR anomaly of ``fault_type`` on ``joint``."""
        with self.lock:
            self.fault = (joint, fault_type, time.time())

    def stop(self):
        """Stop publishing."""
        for timer in self._timers:
            self.node.destroy_timer(timer)

    def _stamp(self):
        from builtin_interfaces.msg import Time
        now = time.time_ns()
        return now, Time(sec=now // 1_000_000_000, nanosec=now % 1_000_000_000)

    def _joints(self):
        from sensor_msgs.msg import JointState
        ns, stamp = self._stamp()
        t = ns * 1e-9 - self.t0
        q = [0.4 * math.sin(0.7 * t + 0.5 * i) for i in range(7)]
        qd = [0.28 * math.cos(0.7 * t + 0.5 * i) for i in range(7)]
        effort = [5.0 * math.sin(0.7 * t + 0.3 * i) + 2.0 for i in range(7)]
        predicted = [e - 0.05 for e in effort]
        with self.lock:
            fault = self.fault
        if fault is not None:
            predicted[JOINTS.index(fault[0])] -= 3.0
        for pub, eff in ((self.pub_measured, effort), (self.pub_predicted, predicted)):
            msg = JointState(name=JOINTS, position=q, velocity=qd, effort=eff)
            msg.header.stamp = stamp
            pub.publish(msg)
        with self.lock:
            self.published[ns] = q

    def _array(self, statuses):
        from diagnostic_msgs.msg import DiagnosticArray
        from robot_twin.nodes.messages import make_status
        array = DiagnosticArray()
        array.status = [make_status(*s) for s in statuses]
        return array

    def _status(self):
        self.pub_status.publish(self._array([('twin/status/sync', 'OK', 'in sync', {
            'latency_p50_s': 0.001, 'latency_p99_s': 0.003, 'missing_joints': ''})]))

    def _anomaly(self):
        with self.lock:
            fault = self.fault
        statuses = []
        for joint in JOINTS:
            if fault is not None and joint == fault[0]:
                statuses.append((f'twin/anomaly/{joint}', 'ERROR', f'anomaly: {fault[1]}', {
                    'score': 4.2, 'threshold': 1.0, 'fault_type': fault[1],
                    'since': f'{fault[2]:.6f}', 'confidence': 0.9}))
            else:
                statuses.append((f'twin/anomaly/{joint}', 'OK', 'nominal', {
                    'score': 0.3, 'threshold': 1.0, 'fault_type': 'none', 'since': ''}))
        robot = ('twin/anomaly/robot', 'ERROR' if fault else 'OK',
                 f'anomaly on {fault[0]}: {fault[1]}' if fault else 'nominal',
                 {'score': 4.2 if fault else 0.3, 'threshold': 1.0, 'phase': 'monitoring',
                  'fault_type': fault[1] if fault else 'none', 'joint': fault[0] if fault else ''})
        self.pub_anomaly.publish(self._array([robot] + statuses))

    def _rul(self):
        self.pub_rul.publish(self._array([
            (f'twin/rul/{joint}', 'OK', 'healthy', {
                'rul_hours': 1200.0 - 10 * i, 'rul_lower_hours': 900.0,
                'rul_upper_hours': 1500.0, 'health_index': 0.93,
                'recommended_action': 'none', 'due_by': '2027-03-01'})
            for i, joint in enumerate(JOINTS)]))

    def positions_at(self, stamp_s):
        """
        Return the positions published with header stamp ``stamp_s`` (float s), or None.

        A stamp that went through float seconds (REST JSON) or OPC UA DateTime keeps about a
        microsecond, so the sample within 2 us is the one (samples are 20 ms apart).
        """
        with self.lock:
            for ns, q in self.published.items():
                if abs(ns * 1e-9 - stamp_s) < 2e-6:
                    return q
        return None
