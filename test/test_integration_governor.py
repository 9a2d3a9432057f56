"""
The governor end to end: commands that must be clamped, across processes, on the streamed path.

The twin's corrective policy ``home`` asks, on the first ERROR, for a move to a safe pose that
is partly beyond the URDF limits, far away, in 0.05 s: far too fast. On the ``joint_command``
interface (the topic_based_ros2_control convention: one set-point at a time) the governor's
approved trajectory must be streamed, not jumped to. Real processes over DDS: the plant with a
collision fault, the demo controller (on the forward position interface, so that /joint_command
carries only the twin's set-points), the one-process twin, and an observer that records every
set-point on /joint_command.

The same streamed move when the clock steps back or jumps forward while it plays: the bridge
alone on sim time, the observer playing the robot and its /clock.
"""
import math
import threading
import time

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from robot_twin.nodes import qos
from ros_harness import loop_overrides, model_limits, node_specs, Observer, read_audit, \
    STALE_TIMEOUT_S, start_loop, START_TIMEOUT_S, TwinGraph, unique_domain_id, \
    wait_commissioned, wait_until
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState

pytestmark = pytest.mark.integration

MARGIN_RAD = 0.05
VELOCITY_SCALE = 0.5
DETECT_TIMEOUT_S = 90.0


def home_pose(limits):
    """
    Return a safe pose as a careless integrator might write it: on the limits, far.

    On the URDF limits themselves, so inside the margin the governor keeps (a pose beyond the
    URDF limits is refused at start-up: test_nodes).
    """
    home = 0.5 * (limits.lower + limits.upper)
    home[0] = limits.upper[0]                    # on the upper limit: within the margin
    home[1] = limits.lower[1]                    # on the lower limit: within the margin
    home[3] = limits.lower[3] + 0.3              # far, inside
    return home


def record_commands(observer, depth):
    """
    Record /joint_command as ``(sent, msg)``; return the list and its lock.

    ``sent``: when the bridge published the set-point (the DDS source timestamp, wall clock,
    s). Not when this test process got to it: a test process starved for a moment takes the
    set-points queued meanwhile back to back, and they would look sent at once.
    """
    commands, lock = [], threading.Lock()

    def on_command(msg, info):
        with lock:
            commands.append((info['source_timestamp'] * 1e-9, msg))

    observer.node.create_subscription(JointState, '/joint_command', on_command,
                                      QoSProfile(depth=depth,
                                                 reliability=ReliabilityPolicy.RELIABLE))
    return commands, lock


@pytest.fixture(scope='module')
def governed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('governed')
    domain = unique_domain_id()
    graph = TwinGraph(domain)
    observer = Observer(domain)
    commands, lock = record_commands(observer, 200)
    limits = model_limits()
    home = home_pose(limits)
    try:
        start_loop(graph, observer, workdir, 'collision', extra={
            'twin_bridge': {'corrective_actions.enabled': True,
                            'corrective_actions.interface': 'joint_command',
                            'corrective_actions.policy': 'home',
                            'corrective_actions.home_position': [float(v) for v in home],
                            'corrective_actions.move_time_s': 0.05,
                            'corrective_actions.position_margin_rad': MARGIN_RAD,
                            'corrective_actions.velocity_scale': VELOCITY_SCALE},
            'demo_controller': {'interface': 'forward_position'}}, controller=False)
        # the robot's own controller drives the nominal motion of commissioning, then hands the
        # arm over (a real cell switches controllers; two commanding one plant would fight)
        graph.start('controller', node_specs(['demo_controller'], loop_overrides(
            workdir, 'collision', {'demo_controller': {'interface': 'forward_position'}})))
        wait_commissioned(graph, observer)
        graph.stop('controller')
        yield graph, observer, commands, lock, limits, home, workdir
    finally:
        graph.stop()
        observer.close()


def test_a_home_move_into_the_margins_and_too_fast_is_clamped_and_streamed(governed):
    graph, observer, commands, lock, limits, home, workdir = governed
    audit = workdir / 'audit.jsonl'
    entry = wait_until(lambda: next((e for e in read_audit(audit) if e['allowed']), None),
                       DETECT_TIMEOUT_S, 'an allowed corrective command', graph)
    assert entry['clamped'] and entry['kind'] == 'trajectory'
    reasons = ' '.join(entry['reasons'])
    assert 'clamped into the limits' in reasons and 'slowed down' in reasons, reasons
    lo, hi = limits.lower + MARGIN_RAD, limits.upper - MARGIN_RAD
    target = np.clip(home, lo, hi)
    vmax = VELOCITY_SCALE * limits.velocity

    def final_reached():
        with lock:
            return commands and np.allclose(commands[-1][1].position, target, atol=1e-12)
    wait_until(final_reached, 60.0, 'the streamed set-points to reach the clamped home pose',
               graph)
    with lock:
        stream = [msg for _t, msg in commands]
    assert len(stream) > 20, 'a jump, not a stream'
    stamps_ns = np.array([m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec
                          for m in stream], dtype=np.int64)
    q = np.array([m.position for m in stream])
    qd = np.array([m.velocity for m in stream])
    assert list(stream[0].name) == list(limits.names)
    assert ((q >= lo - 1e-12) & (q <= hi + 1e-12)).all(), 'a set-point beyond the limits'
    assert (np.abs(qd) <= vmax + 1e-9).all(), 'a velocity feed-forward beyond the limits'
    steps = np.abs(np.diff(q, axis=0))
    dt = np.diff(stamps_ns)[:, None] * 1e-9
    # the set-points are computed at float seconds since the epoch (resolution ~0.24 us there):
    # 1 us of time rounding is allowed
    ratio = steps / (vmax * dt)
    worst = np.unravel_index(np.argmax(ratio), ratio.shape)
    assert (steps <= vmax * (dt + 1e-6) + 1e-9).all(), (
        f'set-points faster than approved: {ratio[worst]:.4f}x at set-point {worst[0]} of '
        f'{len(stream)}, joint {worst[1]} (dt {dt[worst[0], 0]:.6f} s)')
    needed = (np.abs(target - q[0]) / vmax).max()
    span = (stamps_ns[-1] - stamps_ns[0]) * 1e-9
    assert span >= needed - 0.05, (span, needed)
    assert all(math.isfinite(v) for m in stream for v in m.position)


# ---------------------------------------------------------------- the clock misbehaves
def _time_msg(t):
    sec = math.floor(t)
    return Time(sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))


class _SimRobot:
    """The robot at rest and its /clock, published every 5 ms by a thread: sim time can step."""

    def __init__(self, observer, positions, names, graph):
        self.offset = 1000.0 - time.monotonic()      # sim time = monotonic + offset
        self.positions, self.names = list(positions), list(names)
        self.clock = observer.publisher(Clock, '/clock', QoSProfile(depth=10),
                                        subscribers=['twin_bridge'], graph=graph)
        self.joints = observer.publisher(JointState, '/joint_states', qos.ROBOT_STATE,
                                         subscribers=['twin_bridge'], graph=graph)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def now(self):
        return time.monotonic() + self.offset

    def _run(self):
        while not self._stop.is_set():
            stamp = _time_msg(self.now())
            self.clock.publish(Clock(clock=stamp))
            msg = JointState(name=self.names, position=self.positions,
                             velocity=[0.0] * len(self.names), effort=[0.0] * len(self.names))
            msg.header.stamp = stamp
            self.joints.publish(msg)
            time.sleep(0.005)

    def close(self):
        self._stop.set()
        self._thread.join(timeout=2.0)


@pytest.mark.parametrize('jump_s', [-30.0, 5.0], ids=['steps_back', 'jumps_forward'])
def test_a_clock_step_during_a_streamed_move_stops_it_without_a_jump(tmp_path, jump_s):
    """
    The audit's case: set-points 0.29 rad back in 10 ms, or the rest of the move at once.

    Whatever the clock does, no set-point moves a joint by more than its scaled velocity limit
    times the time since the previous one: the sim time between their stamps, or the wall time
    between their sending (plus 0.1 s for the jitter of /clock's delivery to the bridge) when
    that is shorter or the stamps went back. The stream stops, holds its last set-point, says
    why in /twin/status, and the move is planned again from the measured state.
    """
    limits = model_limits()
    names = list(limits.names)
    q = 0.5 * (limits.lower + limits.upper)
    home = q.copy()
    home[3] = limits.lower[3] + 0.3                # 1.8 rad away: about 2.4 s at the limit
    domain = unique_domain_id()
    graph = TwinGraph(domain)
    observer = Observer(domain)
    commands, lock = record_commands(observer, 500)
    robot = None
    try:
        graph.start('twin', node_specs(['twin_bridge'], {'twin_bridge': {
            'use_sim_time': True, 'wrench_topic': '', 'stale_timeout_s': STALE_TIMEOUT_S,
            'ledger_path': str(tmp_path / 'audit.jsonl'),
            'corrective_actions.enabled': True,
            'corrective_actions.interface': 'joint_command',
            'corrective_actions.policy': 'home',
            'corrective_actions.home_position': [float(v) for v in home],
            'corrective_actions.position_margin_rad': MARGIN_RAD,
            'corrective_actions.velocity_scale': VELOCITY_SCALE}}))
        robot = _SimRobot(observer, q, names, graph)
        wait_until(lambda: any(int(s[3].get('joint_states.accepted', 0)) > 100
                               for s in observer.monitor.statuses()),
                   START_TIMEOUT_S, 'the bridge to accept the robot on sim time', graph)
        anomaly = observer.publisher(DiagnosticArray, '/twin/anomaly', qos.LATCHED,
                                     subscribers=['twin_bridge'], graph=graph)
        error = DiagnosticStatus(name='twin/anomaly/robot', level=bytes([2]), message='test',
                                 values=[KeyValue(key='joint', value='joint4'),
                                         KeyValue(key='fault_type', value='collision'),
                                         KeyValue(key='score', value='3.0'),
                                         KeyValue(key='since', value=str(robot.now()))])
        anomaly.publish(DiagnosticArray(status=[error]))
        wait_until(lambda: len(commands) > 40, 30.0, 'the streamed move to be under way', graph)
        robot.offset += jump_s
        time.sleep(2.0)
        _assert_no_set_point_jumps(commands, lock, limits)      # the stream at the step
        cause = 'clock_back' if jump_s < 0 else 'clock_jump'
        wait_until(lambda: any(int(s[3].get(f'stream_stops.{cause}', 0)) >= 1
                               for s in observer.monitor.statuses()),
                   30.0, f'stream_stops.{cause} in /twin/status', graph)
        target = np.clip(home, limits.lower + MARGIN_RAD, limits.upper - MARGIN_RAD)

        def home_reached():
            with lock:
                return commands and np.allclose(commands[-1][1].position, target, atol=1e-9)
        wait_until(home_reached, 30.0, 'the move planned again to reach the home pose', graph)
        said = [line for line in graph.lines('twin') if 'corrective stream stopped' in line]
        assert len(said) == 1 and f'({cause})' in said[0], said
        assert 'holding its last set-point' in said[0]
    finally:
        if robot is not None:
            robot.close()
        graph.stop()
        observer.close()
    _assert_no_set_point_jumps(commands, lock, limits)          # and the move planned again


def _assert_no_set_point_jumps(commands, lock, limits):
    """Assert that each set-point moves at most the scaled limit x the time since the last."""
    names = list(limits.names)
    with lock:
        sent = np.array([t for t, _msg in commands])
        stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
                           for _t, m in commands])
        positions = np.array([m.position for _t, m in commands])
    assert sent[-1] - sent[0] > 0.5, 'no send times on the set-points (a stream takes seconds)'
    vmax = VELOCITY_SCALE * limits.velocity
    steps = np.abs(np.diff(positions, axis=0))
    sim_dt = np.diff(stamps)
    wall_dt = np.diff(sent) + 0.1
    dt = np.where(sim_dt >= 0.0, np.minimum(sim_dt, wall_dt), wall_dt)[:, None]
    ratio = steps / (vmax * (dt + 1e-6) + 1e-9)
    k, j = np.unravel_index(np.argmax(ratio), ratio.shape)
    assert ratio.max() <= 1.0, (
        f'set-point {k + 1} of {len(commands)} moves {names[j]} {steps[k, j]:.4f} rad, '
        f'{sim_dt[k]:.4f} s of sim time and {wall_dt[k] - 0.1:.4f} s of wall time after the '
        f'one before ({ratio[k, j]:.1f}x the limit)')
