"""
The robot's joint-state and force-torque streams, read once: bytes -> checks -> model order.

:class:`RobotInput` subscribes to the robot's topics with serialized (``raw``) subscriptions,
reads each message with :mod:`robot_twin.nodes.cdr` (rclpy's deserialization only for an
encoding the fast reader does not know), passes it through the bridge's validation core
(:class:`twin_bridge.intake.RobotIntake`: finite *and* possible values, stamps, joint names,
the wrench's frame) and hands every complete sample (all joints of one stamp, merged when the
robot splits them over several messages) to its listeners by a function call. In the
one-process twin only ``twin_bridge`` has a RobotInput and the mirror and the detector are its
listeners; a node started in a process of its own builds its own.

Also here: :func:`robot_model` (from :mod:`robot_twin.twin_model`), the twin's model built from
a node's parameters.
"""
import math
import time

from geometry_msgs.msg import WrenchStamped
import numpy as np
from rclpy.serialization import deserialize_message
from robot_twin.nodes import qos
from robot_twin.nodes.cdr import CdrError, JointStateReader, WrenchReader
from robot_twin.nodes.idle_work import IdleWork
from robot_twin.nodes.run_queue import RunQueueWait
from robot_twin.nodes.runner import when_built
from robot_twin.twin_model import robot_intake, robot_model  # noqa: F401 (nodes import it)
from sensor_msgs.msg import JointState
from twin_bridge.intake import JOINTS, WRENCH
from twin_sim.urdf_model import DEFAULT_FT_LINK


LOG_PERIOD_S = 2.0
"""At most one log line per this many seconds about rejected samples (all are counted)."""


def wrench_outputs(model, params):
    """Return ``(on, why)``: whether the twin has wrench outputs, and why not when off."""
    if not params['wrench_topic']:
        return False, 'no wrench_topic configured'
    if model.ft_frame is None:
        return False, (f'wrench_topic {params["wrench_topic"]} is set but the URDF has no link '
                       f'{params.get("ft_sensor_link") or DEFAULT_FT_LINK!r}; name the sensor '
                       'link with ft_sensor_link')
    return True, ''


class RobotInput:
    """
    Read, check and map the robot's streams for a node; call listeners with what is accepted.

    Parameters
    ----------
    node : rclpy.node.Node
        Owner of the subscriptions (and of the clock and logger used).
    model : twin_sim.urdf_model.RobotModel
        Joint names and limits (plausibility bounds); its ``ft_frame`` says whether the
        wrench stream is read at all.
    params : dict
        The node's declared parameters (``joint_states_topic``, ``wrench_topic``,
        ``unknown_joints``, ``max_future_s``, ``position_margin_rad``, ``position_margin_m``,
        ``velocity_factor``, ``effort_factor``, ``wrench_force_range_n``,
        ``wrench_torque_range_nm``, and ``stale_timeout_s`` if the node has it).

    Attributes
    ----------
    intake : twin_bridge.intake.RobotIntake
        The validation core: counters, watchdog, latency.
    sample_listeners : list of callable
        ``f(sample)`` with a :class:`twin_bridge.intake.RobotSample`, per accepted sample.
    wrench_listeners : list of callable
        ``f(t, stamp, wrench)`` per accepted wrench: stamp s, ``(sec, nanosec)``, (6,) N, N·m.
    with_wrench : bool
        Whether the wrench stream is read.
    idle : robot_twin.nodes.idle_work.IdleWork
        Where the nodes' report timers put their reports, to run in pieces after the samples.

    """

    def __init__(self, node, model, params):
        self.node = node
        self.with_wrench, self.wrench_off_reason = wrench_outputs(model, params)
        self.intake = robot_intake(model, params, self.with_wrench)
        self.sample_listeners = []
        self.wrench_listeners = []
        self.receive_time = math.nan     # when the last accepted joint sample arrived, s
        # the nodes' periodic reports, run in pieces after the samples (see idle_work)
        self.idle = IdleWork()
        self._next_log, self._unlogged = -math.inf, 0
        self._joints = JointStateReader()
        # wrenches in another frame than the sensor's are refused (an empty frame is fine)
        self._wrench = WrenchReader(model.ft_frame)
        self._clock = node.get_clock()
        # how long the twin's input threads waited for a CPU: its own starvation (see intake)
        self._run_queue = RunQueueWait(log=node.get_logger().warning)
        self._waited_ns = 0              # ... as of the last sample
        # The receive time of each sample: the node clock (sim time under use_sim_time, read at
        # start-up), else the system clock read directly (rclpy's Clock.now() costs more).
        if not node.get_parameter('use_sim_time').value:
            self._now = time.time
        self._topics = (params['joint_states_topic'],
                        params['wrench_topic'] if self.with_wrench else None)
        if not self.with_wrench and params['wrench_topic']:
            node.get_logger().warning(f'{self.wrench_off_reason}: wrench outputs are off')
        # the robot's streams are taken once every node of the process is built, so that no
        # sample waits behind the start-up (robot_twin.nodes.runner)
        when_built(self._subscribe)

    def _subscribe(self):
        """Subscribe to the robot's joint states (and wrench)."""
        joints, wrench = self._topics
        self.node.create_subscription(JointState, joints, self.on_joint_state, qos.SENSOR_IN,
                                      raw=True, event_callbacks=qos.LEAN_SUBSCRIPTION)
        if wrench is not None:
            self.node.create_subscription(WrenchStamped, wrench, self.on_wrench, qos.SENSOR_IN,
                                          raw=True, event_callbacks=qos.LEAN_SUBSCRIPTION)

    def _now(self):
        return self._clock.now().nanoseconds * 1e-9

    def _rejected(self, reason):
        """Log a rejection, at most one line per LOG_PERIOD_S with a count of the others."""
        # (rclpy's own throttle inspects the caller's frame on every call: ~1 ms each)
        now = time.monotonic()
        if now < self._next_log:
            self._unlogged += 1
            return
        more = f'; {self._unlogged} more rejected since the last line' if self._unlogged else ''
        self._unlogged, self._next_log = 0, now + LOG_PERIOD_S
        self.node.get_logger().warning(f'{reason} (sample ignored{more})')

    def on_joint_state(self, data):
        """Take one serialized JointState: check, map, hand over; then a report's piece."""
        taken = time.perf_counter()      # when the executor handed it over (see intake)
        if self._take_joint_state(data, taken):
            # (after the message that completed a sample, not between the parts of one)
            self.idle.after_sample(taken, self.intake.joints.stamp_step_s)

    def _take_joint_state(self, data, taken):
        """Check, map and hand over; return whether a whole sample went to the listeners."""
        waited_ns = self._run_queue.waited_ns(taken)
        try:
            parsed = self._joints.read(data)
            if parsed is None:        # another encoding: let rclpy read it
                msg = deserialize_message(data, JointState)
                stamp = msg.header.stamp
                parsed = (stamp.sec, stamp.nanosec, list(msg.name), np.asarray(msg.position),
                          np.asarray(msg.velocity), np.asarray(msg.effort))
        except (CdrError, RuntimeError, ValueError) as exc:
            self._rejected(self.intake.malformed(JOINTS, f'unreadable joint state: {exc}'))
            return False
        sec, nanosec, names, position, velocity, effort = parsed
        intake = self.intake
        now = self._now()
        reason = intake.joint_state(names, position, velocity, effort, sec + nanosec * 1e-9, now,
                                    nanosec)
        if reason is not None:
            self._rejected(reason)
            return False
        sample = intake.sample((sec, nanosec), taken, (waited_ns - self._waited_ns) * 1e-9)
        if sample is None:
            return False
        self._waited_ns = waited_ns
        self.receive_time = now
        for listener in self.sample_listeners:
            listener(sample)
        return True

    def on_wrench(self, data):
        """Take one serialized WrenchStamped: check, hand over."""
        try:
            parsed = self._wrench.read_framed(data)
            if parsed is None:
                msg = deserialize_message(data, WrenchStamped)
                f, t = msg.wrench.force, msg.wrench.torque
                parsed = (msg.header.stamp.sec, msg.header.stamp.nanosec,
                          np.array([f.x, f.y, f.z, t.x, t.y, t.z]), msg.header.frame_id)
        except (CdrError, RuntimeError, ValueError) as exc:
            self._rejected(self.intake.malformed(WRENCH, f'unreadable wrench: {exc}'))
            return
        sec, nanosec, wrench, frame_id = parsed
        t = sec + nanosec * 1e-9
        reason = self.intake.wrench_sample(wrench, t, self._now(), nanosec, frame_id)
        if reason is not None:
            self._rejected(reason)
            return
        for listener in self.wrench_listeners:
            listener(t, (sec, nanosec), wrench)
