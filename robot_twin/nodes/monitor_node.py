"""
A listener on the twin's outputs, for the demo's live display and the integration tests.

:class:`TwinMonitorNode` subscribes to /twin/status, /twin/anomaly, /twin/residuals,
/twin/rul, /twin/speed_scale, /twin/plant_status and the robot's command topics, and keeps a
plain-Python picture of what it saw (:class:`Observation`), so that callers only read
attributes. It never publishes. :class:`BackgroundMonitor` runs one on a context of its own,
spun by a thread (the demo).
"""
from collections import deque
from dataclasses import dataclass, field
import math
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from rclpy.task import Future
from robot_twin.nodes import qos
from robot_twin.nodes.cdr import CdrError, JointStateReader
from robot_twin.nodes.messages import level_name, status_values, \
    trajectory_points
from robot_twin.nodes.runner import make_executor, spin
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from trajectory_msgs.msg import JointTrajectory
from twin_sim.pacing import steps_at_least

LATE_SEND_S = 0.01      # an emulated robot's sample this late went out late (its stream lagged)
LATE_SPAN_S = 0.05      # ... noted when at least this much robot time of samples was that late


@dataclass
class Observation:
    """What the monitor has seen so far (times are wall-clock seconds unless named stamp)."""

    status: dict = field(default_factory=dict)          # latest /twin/status values
    status_level: str = ''
    status_message: str = ''
    stale_seen: bool = False                             # a STALE /twin/status was seen
    anomaly: dict = field(default_factory=dict)          # status name -> (level, msg, values)
    first_alarm: tuple = None      # (wall time, joint, fault_type, since stamp) of first ERROR
    first_alarm_groups: dict = None  # status name -> values of the groups at ERROR then
    alarms: list = field(default_factory=list)  # (joint, fault_type, onset stamp) per episode
    #                                             and per joint named anew within one
    rejections: list = field(default_factory=list)  # wall times the twin's rejected count grew
    commissioned_at: float = None  # wall time the anomaly phase became 'monitoring'
    residual_count: int = 0
    residual_names: list = field(default_factory=list)
    residual_rms: np.ndarray = None        # effort residual RMS over the last second, N·m
    latency_s: deque = field(default_factory=lambda: deque(maxlen=2000))
    plant: dict = field(default_factory=dict)            # latest /twin/plant_status values
    epochs: list = field(default_factory=list)           # (start_stamp, plant_time_s) seen
    stalls: list = field(default_factory=list)           # plant times its overruns went up
    late_sends: list = field(default_factory=list)       # plant times before late samples
    limit_hits: list = field(default_factory=list)       # ... before a limit or a held reference
    commands: list = field(default_factory=list)         # (kind, joint names, positions)
    rul: dict = field(default_factory=dict)              # status name -> (level, msg, values)
    speed_scale: float = None                            # latest /twin/speed_scale


class TwinMonitorNode(Node):
    """Collect the twin's outputs into an :class:`Observation`."""

    def __init__(self, name='twin_monitor', watch_commands=True, **kwargs):
        super().__init__(name, **kwargs)
        self.obs = Observation()
        self._overruns = 0
        self._late = (0, math.nan)       # late steps so far, plant time of that report
        self._limits = (0, math.nan)     # speed-limiter and range-stop events, report time
        self._episode = None             # (robot status since, joint) of the latest alarm
        self._effort_sq = deque(maxlen=1000)
        self.create_subscription(DiagnosticArray, '/twin/status', self.on_status, qos.STATUS)
        self.create_subscription(DiagnosticArray, '/twin/anomaly', self.on_anomaly, qos.LATCHED)
        self.create_subscription(DiagnosticArray, '/twin/plant_status', self.on_plant,
                                 qos.LATCHED)
        # 1 kHz: read serialized, with the twin's own numpy reader (a deserialized message per
        # sample would take this listener a tenth of a core beside the twin it watches)
        self._residual_reader = JointStateReader()
        self.create_subscription(JointState, '/twin/residuals', self.on_residuals,
                                 qos.STREAM_OUT, raw=True)
        self.create_subscription(DiagnosticArray, '/twin/rul', self.on_rul, qos.LATCHED)
        self.create_subscription(Float64, '/twin/speed_scale', self.on_speed_scale,
                                 qos.LATCHED)
        if watch_commands:
            self.create_subscription(
                JointTrajectory, '/joint_trajectory_controller/joint_trajectory',
                self.on_trajectory, qos.COMMAND)

    def on_status(self, msg):
        """Keep the bridge's latest sync status."""
        for s in msg.status:
            if s.name == 'twin/status/sync':
                values = status_values(s)
                rejected = sum(int(values.get(k, 0) or 0) for k in
                               ('joint_states.rejected', 'wrench.rejected'))
                if rejected > sum(int(self.obs.status.get(k, 0) or 0) for k in
                                  ('joint_states.rejected', 'wrench.rejected')):
                    self.obs.rejections.append(time.time())
                self.obs.status = values
                self.obs.status_level = level_name(s.level)
                self.obs.status_message = s.message
                self.obs.stale_seen |= self.obs.status_level == 'STALE'

    def on_anomaly(self, msg):
        """Keep the anomaly statuses; note commissioning end and the first alarm."""
        for s in msg.status:
            values = status_values(s)
            self.obs.anomaly[s.name] = (level_name(s.level), s.message, values)
            if s.name != 'twin/anomaly/robot':
                continue
            if values.get('phase') == 'monitoring' and self.obs.commissioned_at is None:
                self.obs.commissioned_at = time.time()
            if level_name(s.level) == 'ERROR' and values.get('since'):
                self._note_alarm(msg, values)
            if level_name(s.level) == 'ERROR' and self.obs.first_alarm is None:
                since = float(values['since']) if values.get('since') else math.nan
                self.obs.first_alarm = (time.time(), values.get('joint', ''),
                                        values.get('fault_type', ''), since)
                self.obs.first_alarm_groups = {
                    t.name: status_values(t) for t in msg.status
                    if t.name != 'twin/anomaly/robot' and level_name(t.level) == 'ERROR'}

    def _note_alarm(self, msg, values):
        """
        Note a new alarm episode, or a new joint named within the one going on.

        An episode of the robot status can go on while the joint it names changes (an alarm
        on one joint, then the fault on another before the first cleared): the new joint is
        noted with the onset of its own status (``twin/anomaly/<joint>``), so the alarm that
        answers a fault is not hidden behind an earlier one of the same episode.
        """
        since = float(values['since'])
        joint, fault_type = values.get('joint', ''), values.get('fault_type', '')
        if self._episode is not None and self._episode[0] == since:
            if joint == self._episode[1]:
                return
            own = next((status_values(t).get('since') for t in msg.status
                        if t.name == f'twin/anomaly/{joint}'), None)
            onset = float(own) if own else since
        else:
            onset = since
        self._episode = (since, joint)
        self.obs.alarms.append((joint, fault_type, onset))

    def on_rul(self, msg):
        """Keep the latest RUL statuses (one per joint)."""
        for s in msg.status:
            self.obs.rul[s.name] = (level_name(s.level), s.message, status_values(s))

    def on_speed_scale(self, msg):
        """Keep the derating the twin asks of its governor."""
        self.obs.speed_scale = float(msg.data)

    def on_plant(self, msg):
        """Keep the plant's scenario status and every (epoch, plant time) it reported."""
        for s in msg.status:
            values = status_values(s)
            self.obs.plant = values
            try:
                epoch = float(values['start_stamp'])
                plant_time = float(values.get('plant_time_s', 'nan'))
            except (KeyError, ValueError):
                continue
            if not self.obs.epochs or self.obs.epochs[-1][0] != epoch:
                self.obs.epochs.append((epoch, plant_time))
            overruns = int(values.get('overruns', 0) or 0)
            if overruns > self._overruns:      # starved of CPU: it dropped samples to catch up
                self._overruns = overruns
                self.obs.stalls.append(plant_time)
            # starved less: it sent its samples late (its stream was late; the stamps are when
            # they were due). Worth noting when it was at least LATE_SEND_S late for at least
            # LATE_SPAN_S worth of samples since the last report: noted at that report's time
            late = steps_at_least(values, LATE_SEND_S * 1e6)
            last_late, last_time = self._late
            if late >= last_late and last_time <= plant_time:    # the same plant, later on
                try:
                    span = (late - last_late) / float(values.get('rate_hz', 'nan'))
                except ValueError:
                    span = math.nan
                if span >= LATE_SPAN_S:
                    self.obs.late_sends.append(last_time)
            self._late = (late, plant_time)
            # it hit its speed limiter or a range stop (a late set-point turned into a fast
            # move, say): its velocity was cut at once, which the twin sees; or its controller's
            # set-points paused so long that it held its reference, then moved on with a jump
            # (stream_holds). Noted at the time of the report before, when it had not happened
            hits = sum(int(values.get(k, 0) or 0)
                       for k in ('over_speed', 'limit_stops', 'stream_holds'))
            last_hits, last_time = self._limits
            if hits > last_hits and math.isfinite(last_time) and last_time <= plant_time:
                self.obs.limit_hits.append(last_time)
            self._limits = (hits, plant_time)

    def scenario_time(self, stamp):
        """
        Plant (scenario) time of a robot stamp, s, or NaN before any /twin/plant_status.

        The plant stamps samples with ``epoch + plant time``; should a reported epoch change, it
        holds from the plant time it was reported at.
        """
        chosen = None
        for epoch, plant_time in self.obs.epochs:
            if chosen is None or not math.isfinite(plant_time) or epoch + plant_time <= stamp:
                chosen = epoch
        return math.nan if chosen is None else stamp - chosen

    def on_residuals(self, data):
        """Read one serialized /twin/residuals message (bytes); see :meth:`take_residual`."""
        try:
            parsed = self._residual_reader.read(data)
        except CdrError:
            return
        if parsed is None:                  # another encoding
            msg = deserialize_message(data, JointState)
            parsed = (msg.header.stamp.sec, msg.header.stamp.nanosec, tuple(msg.name),
                      None, None, np.asarray(msg.effort, dtype=float))
        sec, nanosec, names, _q, _qd, effort = parsed
        self.take_residual(sec, nanosec, names, effort)

    def take_residual(self, sec, nanosec, names, effort):
        """Count residual samples, their latency from the robot stamp, and effort RMS."""
        obs = self.obs
        obs.residual_count += 1
        obs.latency_s.append(time.time() - (sec + nanosec * 1e-9))
        if len(effort):
            obs.residual_names = list(names)
            self._effort_sq.append(np.square(effort))
            if obs.residual_count % 100 == 0:
                obs.residual_rms = np.sqrt(np.mean(np.asarray(self._effort_sq), axis=0))

    def on_trajectory(self, msg):
        """Record trajectories commanded to the robot (e.g. corrective holds)."""
        names, points = trajectory_points(msg)
        self.obs.commands.append(('trajectory', names, [p[1] for p in points]))

    def robot_anomaly(self):
        """Return (level, message, values) of ``twin/anomaly/robot`` or None."""
        return self.obs.anomaly.get('twin/anomaly/robot')


class BackgroundMonitor:
    """
    A :class:`TwinMonitorNode` on a context of its own, spun by a daemon thread.

    The context reads the DDS environment (ROS_DOMAIN_ID, localhost-only discovery, the Fast
    DDS profile) when it starts: set it in ``os.environ`` first. :meth:`close` stops it.
    Spun as the twin's own nodes are (:func:`robot_twin.nodes.runner.make_executor`, in slices):
    the demo's monitor takes the twin's residuals at 1 kHz on the 2 cores that the emulated
    robot and the twin share, and the EventsExecutor dispatches a callback for a fraction of
    the SingleThreadedExecutor's cost (the measuring receiver of ``benchmarks/bench_twin.py``,
    three 1 kHz streams: 0.16 core against 0.5; BENCHMARKS.md).

    ``node_factory(name, context=...)`` builds the node (a TwinMonitorNode or a subclass of it,
    as the integration tests' observer); ``lean`` False spins it on the SingleThreadedExecutor
    instead, for a node with a subscription whose callback takes the message info, which
    stops rclpy 9.1.2's EventsExecutor (``SystemError``).
    """

    def __init__(self, name='twin_monitor', domain_id=None, node_factory=TwinMonitorNode,
                 lean=True):
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        try:
            self.node = node_factory(name, context=self.context)
            self.executor = make_executor(self.context) if lean else \
                SingleThreadedExecutor(context=self.context)
            self.executor.add_node(self.node)
        except Exception:
            self.context.try_shutdown()
            raise
        self._stop = Future()
        self._thread = threading.Thread(target=self._spin, name=f'{name}-spin', daemon=True)
        self._thread.start()

    def _spin(self):
        try:
            spin(self.executor, self.context, self._stop)
        except (ExternalShutdownException, KeyboardInterrupt):
            pass
        except Exception:
            if self.context.ok():
                raise

    @property
    def obs(self):
        """Return what the monitor has seen (:class:`Observation`)."""
        return self.node.obs

    def close(self):
        """Stop spinning and shut the context down."""
        self._stop.set_result(True)
        self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()
