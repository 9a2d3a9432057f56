"""
Shared helpers of the integration tests: real node processes over localhost-only DDS.

Every test graph runs on a ROS_DOMAIN_ID of its own (:func:`unique_domain_id`), with the
environment of :func:`robot_twin.ros_env.localhost_env`, and is stopped by the test's fixture
finalizer (:meth:`TwinGraph.stop`), failed test or not. The test process watches the graph
with :class:`Observer`: a :class:`robot_twin.nodes.monitor_node.TwinMonitorNode` (as ``robot-twin
demo`` does) on a fresh rclpy Context of the same domain, spun by a background thread, plus
the extra streams the tests check.

Waits poll a condition until a deadline (:func:`wait_until`); the deadlines are generous
because the machine may be loaded, and nothing asserts on how long something took. A wait
that fails, or a node that died, raises an AssertionError that ends with the output of every
node, so a failure in CI can be read without re-running.
"""
from contextlib import contextmanager
import dataclasses
import itertools
import math
import os
from pathlib import Path
import signal
import socket
import threading
import time

from robot_twin.bringup import start_graph
from robot_twin.graph import CONTAINER, describe_graph
from robot_twin.ros_env import free_domain_id, localhost_env

DDS_KEYS = ('ROS_DOMAIN_ID', 'ROS_LOCALHOST_ONLY', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
            'FASTDDS_DEFAULT_PROFILES_FILE', 'RMW_IMPLEMENTATION')
ROBOT_RATE_HZ = 100.0
"""Rate of the emulated robot in the tests (the demo runs 1 kHz). Every node and the observer
handle each sample in Python; on a shared, loaded 2-core machine 100 Hz keeps the graph in real
time (no dropped samples, which the mirror turns into residual spikes), and nothing the tests
check depends on the rate (stamps, stale timeouts and detector blocks are in seconds)."""
STALE_TIMEOUT_S = 0.5
"""stale_timeout_s of the tests' bridges (default 0.1 s). On a loaded 2-core machine a Python
node may fall 0.1 s behind the robot for a moment; the tests check what the twin does with a
stale stream (one that stops), not how far behind a starved process may fall."""
START_TIMEOUT_S = 90.0
"""Bound on a graph coming up (imports of pinocchio and pybullet take a few s per node; far
more when the machine is loaded)."""

_test_counter = itertools.count()


def _domain_busy(domain_id):
    """
    Whether a DDS participant of this machine already uses ``domain_id``.

    Fast DDS binds participant 0 of domain d to UDP port 7410 + 250 d (RTPS well-known
    unicast metatraffic port); if that port is taken, somebody else runs on the domain.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(('127.0.0.1', 7410 + 250 * domain_id))
        except OSError:
            return True
    return False


def unique_domain_id():
    """
    Return a ROS_DOMAIN_ID in 10..99 for one test: from the pid and a per-test counter.

    Skips domains some other process of this machine (another test run, a demo) is using, and
    the session's own default domain.
    """
    first = os.getpid() + next(_test_counter)
    session = os.environ.get('ROS_DOMAIN_ID')     # the session's own default (conftest.py)
    for k in range(90):
        domain = free_domain_id(first + k)
        if str(domain) != session and not _domain_busy(domain):
            for _ in range(k):   # the next test starts after the domain taken here
                next(_test_counter)
            return domain
    raise RuntimeError('every ROS_DOMAIN_ID in 10..99 is in use on this machine')


def node_specs(names, overrides=None, one_process=True):
    """
    Return the processes that run the demo graph's nodes ``names``, with parameter overrides.

    As ``robot-twin up`` starts config/demo.yaml: the twin's nodes among ``names`` in one
    ``twin_container`` process (unless ``one_process`` is False), every other node in a
    process of its own. The overrides go in ``NodeSpec.parameters``; ``start_graph`` writes
    them into a params file read after the config file (a ``-p`` value would lose to
    config/demo.yaml's node sections).

    Parameters
    ----------
    names : sequence of str
        Node names of config/demo.yaml (plant, twin_bridge, twin_sim, twin_anomaly,
        demo_controller).
    overrides : dict, optional
        ``{node name: {parameter: value}}``.
    one_process : bool
        Whether the twin's nodes share one process.

    Returns
    -------
    list of robot_twin.graph.ProcessSpec

    """
    graph = describe_graph('demo', one_process=one_process)
    overrides = overrides or {}
    processes = []
    for process in graph.processes:
        nodes = tuple(dataclasses.replace(n, parameters={**n.parameters,
                                                         **overrides.get(n.name, {})})
                      for n in process.nodes if n.name in names)
        if not nodes:
            continue
        arguments = process.arguments
        if process.executable == CONTAINER:
            arguments = tuple(a for n in nodes for a in ('--node', f'{n.name}:{n.executable}'))
        processes.append(dataclasses.replace(process, nodes=nodes, arguments=arguments))
    return processes


class TwinGraph:
    """
    Node processes of one test, started in groups, stopped together.

    Parameters
    ----------
    domain_id : int
        ROS_DOMAIN_ID of every process (and of the :class:`Observer`).

    """

    def __init__(self, domain_id):
        self.domain_id = domain_id
        self.env = localhost_env(domain_id)
        self.groups = {}
        self._lines = {}
        self._lock = threading.Lock()
        self.stopped = set()

    def _on_line(self, name, line):
        with self._lock:
            self._lines.setdefault(name, []).append(line)

    def lines(self, name):
        """
        Return every output line of process ``name`` so far (list of str).

        A process is named after its node, or ``twin`` for the one-process twin.
        """
        with self._lock:
            return list(self._lines.get(name, []))

    def start(self, group, processes):
        """Start ``processes`` (ProcessSpecs) as group ``group``; return the ProcessGroup."""
        self.groups[group] = start_graph(processes, self.env, on_line=self._on_line,
                                         stop_timeout_s=5.0)
        return self.groups[group]

    def stop(self, group=None):
        """Stop one group, or every group; return the names of nodes that had to be killed."""
        names = [group] if group is not None else list(self.groups)
        killed = []
        for name in names:
            killed += self.groups[name].stop()
            self.stopped.add(name)
        return killed

    def exited(self):
        """Return ``(node, returncode)`` of the first node of a running group that exited."""
        for name, group in self.groups.items():
            if name not in self.stopped:
                exited = group.poll()
                if exited is not None:
                    return exited
        return None

    def returncodes(self):
        """``{node: returncode or None}`` over every group."""
        codes = {}
        for group in self.groups.values():
            codes.update(group.returncodes())
        return codes

    def output(self, tail=40):
        """Return the last ``tail`` output lines of every node, as one text for a message."""
        with self._lock:
            parts = []
            for name, lines in self._lines.items():
                parts.append(f'--- {name} (last {min(tail, len(lines))} of {len(lines)} lines)')
                parts.extend(lines[-tail:])
        return '\n'.join(parts)

    def check_alive(self):
        """Raise AssertionError (with the nodes' output) if a running node has exited."""
        exited = self.exited()
        if exited is not None:
            raise AssertionError(f'node {exited[0]} exited with code {exited[1]}\n'
                                 + self.output())


def wait_until(condition, timeout_s, what, graph=None, interval_s=0.05, seen=None):
    """
    Poll ``condition()`` until it returns a true value (returned), or fail at the deadline.

    Fails at once, with the nodes' output, if a node of ``graph`` exits meanwhile. ``seen``
    (a callable returning text) adds what was observed instead to the failure message.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if graph is not None:
            graph.check_alive()
        if time.monotonic() >= deadline:
            detail = f'\nobserved: {seen()}' if seen is not None else ''
            detail += '\n' + graph.output() if graph is not None else ''
            raise AssertionError(f'timed out after {timeout_s:g} s waiting for {what}{detail}')
        time.sleep(interval_s)


def watch(duration_s, check, graph=None, interval_s=0.05):
    """Call ``check()`` (which asserts) every ``interval_s`` for ``duration_s`` seconds."""
    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        check()
        if graph is not None:
            graph.check_alive()
        time.sleep(interval_s)
    check()


def stamp_ns(stamp):
    """builtin_interfaces/Time as integer nanoseconds (exact, for matching stamps)."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class Observer:
    """
    An in-test ROS participant on the graph's domain, with its own rclpy Context.

    ``monitor`` is a :class:`robot_twin.nodes.monitor_node.TwinMonitorNode` (``monitor.obs`` holds
    what it saw), extended with the stamps of robot samples and residuals, every anomaly, status
    and plant report, and the JointTrajectory commands sent to the robot. ``node`` may create
    publishers and clients of its own. Spun by a background thread; :meth:`close` shuts it down.

    Spun as the demo's monitor is (:class:`robot_twin.nodes.monitor_node.BackgroundMonitor`).
    ``lean``: spin on the twin's own executor (:func:`robot_twin.nodes.runner.make_executor`, the
    EventsExecutor, in slices) instead of the SingleThreadedExecutor. The observer takes the
    robot's joint states and the residuals at 1 kHz on the 2 cores the twin and the emulated
    robot share, and the demo's monitor took a third of a core less so (BENCHMARKS.md). Not the
    default: test_integration_governor's subscriber takes the message info (see
    BackgroundMonitor).
    """

    def __init__(self, domain_id, name='integration_observer', lean=False):
        env = localhost_env(domain_id)
        self._saved_env = {k: os.environ.get(k) for k in DDS_KEYS}
        os.environ.update({k: env[k] for k in DDS_KEYS})   # rmw reads these at init
        from robot_twin.nodes.monitor_node import BackgroundMonitor
        try:
            self._spun = BackgroundMonitor(name, domain_id, _make_monitor, lean=lean)
        except Exception:
            self._restore_env()
            raise
        self.monitor = self.node = self._spun.node

    def _restore_env(self):
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def close(self):
        """Stop spinning, shut the context down and restore the environment."""
        try:
            self._spun.close()
        finally:
            self._restore_env()

    # ------------------------------------------------------------ graph introspection
    def subscribing_nodes(self, topic):
        """Names of the nodes seen subscribing to ``topic`` (a set)."""
        return {i.node_name for i in self.monitor.get_subscriptions_info_by_topic(topic)}

    def publisher(self, msg_type, topic, qos, subscribers=(), timeout_s=START_TIMEOUT_S,
                  graph=None):
        """
        Create a publisher on the observer's node and wait until ``subscribers`` match it.

        ``subscribers`` are node names; once they have matched, nothing published next is
        lost to discovery.
        """
        pub = self.monitor.create_publisher(msg_type, topic, qos)

        def matched():
            readers = self.monitor.get_subscriptions_info_by_topic(topic)
            return (set(subscribers) <= {r.node_name for r in readers}
                    and pub.get_subscription_count() >= len(readers))

        wait_until(matched, timeout_s, f'{", ".join(subscribers)} to subscribe to {topic}', graph)
        return pub


@contextmanager
def graph_and_observer(lean=False):
    """
    Yield a :class:`TwinGraph` and an :class:`Observer` on a domain of their own; stop both.

    ``lean``: the observer's executor (see :class:`Observer`).
    """
    domain = unique_domain_id()
    graph = TwinGraph(domain)
    observer = None
    try:
        observer = Observer(domain, lean=lean)
        yield graph, observer
    finally:
        graph.stop()
        if observer is not None:
            observer.close()


def _make_monitor(name, context):
    """Build the extended TwinMonitorNode (imports rclpy, so only after the env is set)."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from sensor_msgs.msg import JointState

    from robot_twin.nodes.monitor_node import TwinMonitorNode
    from robot_twin.nodes.messages import level_name, status_values

    sensor_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)

    class IntegrationMonitor(TwinMonitorNode):
        """TwinMonitorNode plus the histories the integration tests assert on."""

        def __init__(self):
            super().__init__(name, context=context)
            self.lock = threading.Lock()
            self.robot_stamps = set()       # ns stamps of /joint_states samples seen
            self.residual_stamps = []       # ns stamps of /twin/residuals, arrival order
            self.residual_names = None
            self.mirror_count = 0           # /twin/joint_states samples
            self.anomaly_history = []       # (wall time, status name, level, message, values)
            self.status_history = []        # (wall time, level, message, values)
            self.plant_history = []         # (wall time, values) of /twin/plant_status
            self.trajectories = []          # JointTrajectory messages on the robot's topic
            self.create_subscription(JointState, '/joint_states', self.on_robot, sensor_qos)
            self.create_subscription(JointState, '/twin/joint_states', self.on_mirror,
                                     sensor_qos)

        def on_robot(self, msg):
            self.robot_stamps.add(stamp_ns(msg.header.stamp))

        def on_mirror(self, _msg):
            self.mirror_count += 1

        def take_residual(self, sec, nanosec, names, effort):
            super().take_residual(sec, nanosec, names, effort)
            self.residual_names = list(names)
            self.residual_stamps.append(sec * 1_000_000_000 + nanosec)

        def on_trajectory(self, msg):
            super().on_trajectory(msg)
            with self.lock:
                self.trajectories.append(msg)

        def on_status(self, msg):
            super().on_status(msg)
            now = time.time()
            with self.lock:
                for s in msg.status:
                    if s.name == 'twin/status/sync':
                        self.status_history.append(
                            (now, level_name(s.level), s.message, status_values(s)))

        def on_anomaly(self, msg):
            super().on_anomaly(msg)
            now = time.time()
            with self.lock:
                for s in msg.status:
                    self.anomaly_history.append(
                        (now, s.name, level_name(s.level), s.message, status_values(s)))

        def on_plant(self, msg):
            super().on_plant(msg)
            now = time.time()
            with self.lock:
                for s in msg.status:
                    self.plant_history.append((now, status_values(s)))

        def statuses(self, since=-math.inf):
            """Return the /twin/status reports received after wall time ``since``."""
            with self.lock:
                return [h for h in self.status_history if h[0] > since]

        def anomalies(self, name='twin/anomaly/robot', since=-math.inf):
            """
            Return the reports of anomaly status ``name`` received after ``since``.

            ``name`` None means every status; ``since`` is a wall time. Each report is a
            ``(wall time, name, level, message, values)`` tuple.
            """
            with self.lock:
                return [h for h in self.anomaly_history
                        if (name is None or h[1] == name) and h[0] > since]

    return IntegrationMonitor()


# ---------------------------------------------------------------- the twin loop on the plant
TWIN_NODES = ('twin_bridge', 'twin_sim', 'twin_anomaly')
COMMISSIONING_S = 6.0
"""Commissioning of the tests' twin_anomaly, s of stamp time: the demo motion's 2 s fade-in and
then two periods of the full motion (thresholds learned mostly on the fade-in would be too tight
for the full motion). The packaged fault scenarios start at 10 s, after it."""
MOTION_PERIOD_S = 2.0
"""Period of the demo controller's motion in the tests: commissioning sees all of it."""


def loop_overrides(workdir, scenario, extra=None):
    """Return the parameter overrides of a test loop (see :func:`start_loop`)."""
    workdir = Path(workdir)
    values = {
        'plant': {'scenario': scenario, 'publish_rate_hz': ROBOT_RATE_HZ},
        'twin_bridge': {'ledger_path': str(workdir / 'audit.jsonl'),
                        'stale_timeout_s': STALE_TIMEOUT_S},
        'twin_anomaly': {'commissioning_duration_s': COMMISSIONING_S, 'recommission': True,
                         'thresholds_file': str(workdir / 'thresholds.yaml'),
                         'rul.log_path': str(workdir / 'health.jsonl'),
                         'model_path': 'rules'},
        'demo_controller': {'period_s': MOTION_PERIOD_S},
    }
    for node, params in (extra or {}).items():
        values.setdefault(node, {}).update(params)
    return values


def start_loop(graph, observer, workdir, scenario, extra=None, controller=True,
               one_process=True):
    """
    Start the twin, wait until it listens, then start the robot (plant, demo controller).

    The twin runs as ``robot-twin up`` starts it: its nodes in one process (``one_process``
    False: each in its own).

    The twin comes first so that it commissions on the robot's first seconds, whatever the
    start-up times: plant time (when the scenario's faults start) and the twin's
    commissioning then begin together. Returns when the first residual has arrived.
    """
    overrides = loop_overrides(workdir, scenario, extra)
    graph.start('twin', node_specs(TWIN_NODES, overrides, one_process))

    def twin_listens():
        return ('twin_bridge' in observer.subscribing_nodes('/joint_states')
                and observer.monitor.obs.anomaly)      # twin_anomaly reports: all nodes are up

    wait_until(twin_listens, START_TIMEOUT_S, 'the twin nodes to come up', graph)
    robot = ['plant'] + (['demo_controller'] if controller else [])
    favour_robot(graph.start('robot', node_specs(robot, overrides)))
    wait_until(lambda: observer.monitor.obs.residual_count > 0, START_TIMEOUT_S,
               'the first /twin/residuals sample', graph)
    favour_robot(graph.groups['robot'])     # the threads started since (DDS, timers)


def favour_robot(group):
    """
    Give the emulated robot's threads real-time priority (:meth:`ProcessGroup.favour`).

    A real robot's controller runs with a higher priority than anything beside it, and the
    twin is built to fit beside it; on this 2-core machine a starved emulated robot instead
    sends its set-points late, and its stiff loop then jerks the arm, so that a test would
    judge the emulator, not the twin (BENCHMARKS.md, "The emulated robot at real-time
    priority"). It needs root or CAP_SYS_NICE (CI runs as root); elsewhere nothing changes.
    """
    group.favour()


def wait_commissioned(graph, observer):
    """Wait until twin_anomaly reports phase ``monitoring``; return that report's wall time."""
    return wait_until(lambda: observer.monitor.obs.commissioned_at, START_TIMEOUT_S,
                      'twin_anomaly to finish commissioning', graph)


def model_limits():
    """Return the built-in arm's :class:`twin_bridge.governor.JointLimits` (URDF)."""
    from twin_sim.resources import builtin_urdf
    from twin_bridge.governor import JointLimits
    from twin_sim.urdf_model import RobotModel
    return JointLimits.from_model(RobotModel.from_urdf(builtin_urdf()))


def read_audit(path):
    """Return the audit log entries (list of dict); [] while the file does not exist."""
    from twin_bridge.audit import read_audit_log
    return read_audit_log(path) if Path(path).is_file() else []


def processes_on_domain(domain):
    """Return the pids of this machine's processes whose environment has ROS_DOMAIN_ID=domain."""
    mark = f'ROS_DOMAIN_ID={domain}'.encode()
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f'/proc/{entry}/environ', 'rb') as f:
                if mark in f.read().split(b'\0'):
                    pids.append(int(entry))
        except OSError:
            continue                                   # exited meanwhile, or not ours
    return pids


def kill_domain_processes(domain):
    """SIGKILL whatever of this machine still runs on ``domain`` (a test's clean-up)."""
    for pid in processes_on_domain(domain):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
