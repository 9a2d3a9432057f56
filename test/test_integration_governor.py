"""
The governor end to end: commands that must be clamped, across processes, on the streamed path.

The twin's corrective policy ``home`` asks, on the first ERROR, for a move to a safe pose that
is partly beyond the URDF limits, far away, in 0.05 s: far too fast. On the ``joint_command``
interface (the topic_based_ros2_control convention: one set-point at a time) the governor's
approved trajectory must be streamed, not jumped to. Real processes over DDS: the plant with a
collision fault, the demo controller (on the forward position interface, so that /joint_command
carries only the twin's set-points), the one-process twin, and an observer that records every
set-point on /joint_command.
"""
import math
import threading
import time

import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_harness import loop_overrides, model_limits, node_specs, Observer, read_audit, \
    start_loop, TwinGraph, unique_domain_id, wait_commissioned, wait_until
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


@pytest.fixture(scope='module')
def governed(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('governed')
    domain = unique_domain_id()
    graph = TwinGraph(domain)
    observer = Observer(domain)
    commands, lock = [], threading.Lock()

    def on_command(msg):
        with lock:
            commands.append((time.time(), msg))

    observer.node.create_subscription(JointState, '/joint_command', on_command,
                                      QoSProfile(depth=200,
                                                 reliability=ReliabilityPolicy.RELIABLE))
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
