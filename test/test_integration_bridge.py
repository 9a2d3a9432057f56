"""
Integration: the bridge (and the mirror) against a robot stream the test controls.

One graph for the module: twin_bridge (corrective actions enabled, trajectory interface, audit
log) and twin_sim (mirror), fed by :class:`RobotStream`, a publisher in the test process that
plays a robot holding still (valid JointState + WrenchStamped at 100 Hz, stamped with the
system clock, which both nodes use). The test can stop the stream (the robot goes silent),
publish malformed messages beside it, and publish an anomaly report on /twin/anomaly as
twin_anomaly would (latched), to make the bridge propose a corrective command.
"""
import math
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from ros_harness import model_limits, node_specs, Observer, read_audit, STALE_TIMEOUT_S, \
    START_TIMEOUT_S, TwinGraph, unique_domain_id, wait_until

pytestmark = pytest.mark.integration

STATUS_TIMEOUT_S = 30.0
REPEATS = 3
"""Each malformed message is sent this often (best-effort delivery may lose one)."""
TRAJECTORY_TOPIC = '/joint_trajectory_controller/joint_trajectory'


def _stamp(t):
    from builtin_interfaces.msg import Time
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


class RobotStream:
    """
    A robot holding still at ``q``: valid joint states and wrenches from the test process.

    Efforts are the model's gravity torques and the wrench its static sensor reading, so the
    mirror's residuals are near zero (nothing here asserts on them).
    """

    def __init__(self, observer, graph, rate_hz=100.0):
        from geometry_msgs.msg import WrenchStamped
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import JointState

        from twin_sim.resources import builtin_urdf
        from twin_sim.urdf_model import RobotModel

        model = RobotModel.from_urdf(builtin_urdf())
        self.names = list(model.joint_names)
        self.q = np.clip(np.linspace(-0.3, 0.3, model.n), model.lower, model.upper)
        zero = np.zeros(model.n)
        self.effort = model.gravity(self.q)
        self.wrench = model.ft_wrench(self.q, zero, zero)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        readers = ('twin_bridge',)     # the one-process twin takes the robot's topics once
        self.joint_pub = observer.publisher(JointState, '/joint_states', qos, readers,
                                            graph=graph)
        self.wrench_pub = observer.publisher(WrenchStamped, '/ft_sensor/wrench', qos, readers,
                                             graph=graph)
        self.period = 1.0 / rate_hz
        self._last = 0.0
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._thread = None

    def now(self):
        """Return a stamp after every stamp sent so far (system clock), s."""
        with self._lock:
            self._last = max(time.time(), self._last + 1e-6)
            return self._last

    def joint_state(self, stamp=None, names=None, position=None, velocity=None, effort=None):
        """Build a JointState of the held pose; any field may be replaced (malformed ones)."""
        from sensor_msgs.msg import JointState
        msg = JointState()
        msg.header.stamp = _stamp(self.now() if stamp is None else stamp)
        msg.name = list(self.names if names is None else names)
        msg.position = [float(v) for v in (self.q if position is None else position)]
        msg.velocity = [float(v) for v in (np.zeros(len(self.q)) if velocity is None
                                           else velocity)]
        msg.effort = [float(v) for v in (self.effort if effort is None else effort)]
        return msg

    def wrench_msg(self, stamp=None, wrench=None):
        """Build the held pose's WrenchStamped; ``wrench`` (6,) may replace the values."""
        from geometry_msgs.msg import WrenchStamped
        msg = WrenchStamped()
        msg.header.stamp = _stamp(self.now() if stamp is None else stamp)
        msg.header.frame_id = 'ft_sensor'
        w = [float(v) for v in (self.wrench if wrench is None else wrench)]
        f, t = msg.wrench.force, msg.wrench.torque
        f.x, f.y, f.z, t.x, t.y, t.z = w
        return msg

    def publish_valid(self):
        """Send one valid joint-state and wrench sample."""
        self.joint_pub.publish(self.joint_state())
        self.wrench_pub.publish(self.wrench_msg())

    def _run(self):
        next_tick = time.monotonic()
        while self._running.is_set():
            self.publish_valid()
            next_tick += self.period
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def start(self):
        """Stream valid samples from a background thread until :meth:`stop`."""
        if self._thread is None:
            self._running.set()
            self._thread = threading.Thread(target=self._run, name='robot-stream', daemon=True)
            self._thread.start()

    def stop(self):
        """Stop streaming (the robot goes silent)."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None


@pytest.fixture(scope='module')
def bridge(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('bridge')
    domain = unique_domain_id()
    graph = TwinGraph(domain)
    observer = stream = None
    try:
        observer = Observer(domain)
        graph.start('twin', node_specs(('twin_bridge', 'twin_sim'), {
            'twin_bridge': {'corrective_actions.enabled': True,
                            'corrective_actions.interface': 'trajectory',
                            'stale_timeout_s': STALE_TIMEOUT_S,
                            'ledger_path': str(workdir / 'audit.jsonl')}}))
        stream = RobotStream(observer, graph)
        yield SimpleNamespace(graph=graph, observer=observer, monitor=observer.monitor,
                              stream=stream, audit=workdir / 'audit.jsonl')
    finally:
        if stream is not None:
            stream.stop()
        graph.stop()
        if observer is not None:
            observer.close()


def _status(monitor, since, level=None):
    """Latest /twin/status report after ``since`` (at ``level`` if given), or None."""
    reports = [s for s in monitor.statuses(since) if level is None or s[1] == level]
    return reports[-1] if reports else None


def _wait_in_sync(bridge):
    bridge.stream.start()
    since = time.time()
    return wait_until(lambda: _status(bridge.monitor, since, 'OK'), START_TIMEOUT_S,
                      '/twin/status OK (in sync)', bridge.graph)


def test_malformed_messages_are_counted_and_nothing_crashes(bridge):
    """Each kind of bad sample is counted under its cause; both nodes survive and still work."""
    m, stream = bridge.monitor, bridge.stream
    _wait_in_sync(bridge)
    wait_until(lambda: m.mirror_count > 0 and m.obs.residual_count > 0, STATUS_TIMEOUT_S,
               '/twin/joint_states and /twin/residuals from valid samples', bridge.graph)
    before = _status(m, 0.0)[3]

    renamed = stream.names[:-1] + ['joint_not_in_the_urdf']
    duplicated = [stream.names[0]] + stream.names[:-1]
    nan_position = stream.q.copy()
    nan_position[2] = math.nan
    joint_cases = {
        'nonfinite': lambda: stream.joint_state(position=nan_position),
        'length_mismatch': lambda: stream.joint_state(position=stream.q[:-1]),
        'unknown_joint': lambda: stream.joint_state(names=renamed),
        'duplicate_joint': lambda: stream.joint_state(names=duplicated),
        'empty': lambda: stream.joint_state(names=[], position=[], velocity=[], effort=[]),
        'zero_stamp': lambda: stream.joint_state(stamp=0.0),
        'future_stamp': lambda: stream.joint_state(stamp=time.time() + 30.0),
        'out_of_order': lambda: stream.joint_state(stamp=time.time() - 5.0),
    }
    nan_wrench = np.array(stream.wrench, dtype=float)
    nan_wrench[0] = math.nan
    wrench_cases = {
        'nonfinite': lambda: stream.wrench_msg(wrench=nan_wrench),
        'zero_stamp': lambda: stream.wrench_msg(stamp=0.0),
        'out_of_order': lambda: stream.wrench_msg(stamp=time.time() - 5.0),
    }
    for _ in range(REPEATS):
        for make in joint_cases.values():
            stream.joint_pub.publish(make())
            time.sleep(0.01)
        for make in wrench_cases.values():
            stream.wrench_pub.publish(make())
            time.sleep(0.01)

    expected = [f'joint_states.{c}' for c in joint_cases] + [f'wrench.{c}' for c in wrench_cases]

    def grown():
        report = _status(m, time.time() - 0.5)
        if report is None:
            return None, {}
        return report[3], {k: int(report[3][k]) - int(before[k]) for k in expected}

    def counted():
        values, counts = grown()
        return values if counts and all(v >= 1 for v in counts.values()) else None

    values = wait_until(counted, STATUS_TIMEOUT_S, 'every cause counted in /twin/status',
                        bridge.graph, seen=lambda: f'counted since the start: {grown()[1]}')
    for key in expected:   # counted once per message, never more than were sent
        assert 1 <= int(values[key]) - int(before[key]) <= REPEATS, (key, values[key])
    for stream_name, causes in (('joint_states', joint_cases), ('wrench', wrench_cases)):
        rejected = int(values[f'{stream_name}.rejected'])
        by_cause = sum(int(v) for k, v in values.items()
                       if k.startswith(f'{stream_name}.') and k.rsplit('.', 1)[1] in (
                           'malformed', 'empty', 'length_mismatch', 'nonfinite',
                           'duplicate_joint', 'unknown_joint', 'zero_stamp', 'future_stamp',
                           'out_of_order'))
        assert rejected == by_cause, f'{stream_name}: rejected {rejected} != sum {by_cause}'

    # nothing crashed, nothing logged a traceback, and valid samples still go through
    bridge.graph.check_alive()
    assert all(code is None for code in bridge.graph.returncodes().values())
    for name in ('twin_bridge', 'twin_sim'):
        assert not [line for line in bridge.graph.lines(name) if 'Traceback' in line], \
            bridge.graph.output()
    mirrored, residuals = m.mirror_count, m.obs.residual_count
    wait_until(lambda: m.mirror_count >= mirrored + 20 and m.obs.residual_count >= residuals + 20,
               STATUS_TIMEOUT_S, 'new /twin/joint_states and /twin/residuals', bridge.graph)
    since = time.time()
    wait_until(lambda: _status(m, since, 'OK'), STATUS_TIMEOUT_S, '/twin/status OK again',
               bridge.graph)


def _anomaly_report(level, joint, since):
    """Build a /twin/anomaly message as twin_anomaly publishes it (robot status only)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from robot_twin.nodes.messages import make_status
    array = DiagnosticArray()
    array.header.stamp = _stamp(time.time())
    array.status.append(make_status('twin/anomaly/robot', level, f'anomaly on {joint}', {
        'score': 2.5, 'threshold': 1.0, 'fault_type': 'friction_like', 'since': f'{since:.6f}',
        'joint': joint, 'phase': 'monitoring'}))
    return array


def test_stale_stream_is_reported_and_blocks_corrective_commands(bridge):
    """
    A silent robot makes /twin/status STALE; an ERROR meanwhile gets its command refused.

    Control: once the stream is back, the next ERROR episode's command is allowed and sent,
    so the refusal was the stale interlock and nothing else.
    """
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    from robot_twin.nodes.messages import level_name, status_values

    m, stream = bridge.monitor, bridge.stream
    sync = []        # (wall time, level, message, values) of twin/sync on /diagnostics
    bridge.observer.node.create_subscription(
        DiagnosticArray, '/diagnostics', lambda msg: sync.extend(
            (time.time(), level_name(s.level), s.message, status_values(s))
            for s in msg.status if s.name == 'twin/sync'),
        QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
    _wait_in_sync(bridge)
    stream.stop()
    silent = time.time()
    _, _, message, values = wait_until(lambda: _status(m, silent, 'STALE'), STATUS_TIMEOUT_S,
                                       '/twin/status STALE', bridge.graph)
    assert 'joint_states' in message and values['joint_states.state'] == 'STALE', message
    # the outage is on /diagnostics too, where rqt_robot_monitor and the aggregator look
    _, level, text, diag_values = wait_until(
        lambda: next((d for d in sync if d[0] > silent and d[1] == 'ERROR'), None),
        STATUS_TIMEOUT_S, 'twin/sync at ERROR on /diagnostics', bridge.graph)
    assert text.startswith('STALE: joint_states'), text
    assert diag_values['joint_states.state'] == 'STALE'
    before = _status(m, silent)[3]
    commands_before = len(m.trajectories)

    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
    anomaly = bridge.observer.publisher(DiagnosticArray, '/twin/anomaly', latched,
                                        ('twin_bridge',), graph=bridge.graph)
    first_since = time.time() - 0.2
    anomaly.publish(_anomaly_report('ERROR', 'joint3', first_since))

    def refused():
        return [e for e in read_audit(bridge.audit)
                if not e['allowed'] and e['anomaly']['since'] == pytest.approx(first_since)]

    entry = wait_until(refused, STATUS_TIMEOUT_S, f'a refused command in {bridge.audit}',
                       bridge.graph)[0]
    assert entry['cause'] == 'stale' and entry['sent'] is None, entry
    assert entry['anomaly']['joint'] == 'joint3' and entry['anomaly']['level'] == 'ERROR'
    after = wait_until(
        lambda: next((s[3] for s in m.statuses(time.time() - 0.5)
                      if int(s[3]['governor.refused']) > int(before['governor.refused'])), None),
        STATUS_TIMEOUT_S, 'governor.refused to grow in /twin/status', bridge.graph)
    assert int(after['governor.stale']) == int(before['governor.stale']) + 1
    assert after['commands_sent'] == before['commands_sent']
    time.sleep(0.5)
    assert len(m.trajectories) == commands_before, 'a command went out while stale'

    # control: fresh again, a new ERROR episode is acted on
    _wait_in_sync(bridge)
    back = time.time()
    wait_until(lambda: next((d for d in sync if d[0] > back and d[1] == 'OK'
                             and d[2] == 'in sync'), None),
               STATUS_TIMEOUT_S, 'twin/sync OK again on /diagnostics', bridge.graph)
    second_since = time.time() - 0.2
    anomaly.publish(_anomaly_report('ERROR', 'joint3', second_since))
    wait_until(lambda: len(m.trajectories) > commands_before, STATUS_TIMEOUT_S,
               f'the corrective command on {TRAJECTORY_TOPIC}', bridge.graph)
    allowed = [e for e in read_audit(bridge.audit)
               if e['allowed'] and e['anomaly']['since'] == pytest.approx(second_since)]
    assert len(allowed) == 1, read_audit(bridge.audit)
    hold = np.asarray(m.trajectories[-1].points[-1].positions)
    np.testing.assert_allclose(hold, stream.q, atol=1e-9)   # hold where the robot is
    limits = model_limits()
    assert list(m.trajectories[-1].joint_names) == list(limits.names)
