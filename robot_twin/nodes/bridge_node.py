"""
The ``twin_bridge`` node: the twin's door to the robot, in both directions.

In: the robot's /joint_states and wrench topic, read once (:class:`robot_twin.nodes.robot_input.
RobotInput`: finite and possible values, stamps, joint names, any order); every accepted sample
goes to its listeners (in the one-process twin: the mirror, then the detector, by function
calls). /twin/joint_states republishes the accepted state at ``display_rate_hz``; /twin/status
carries sync state, latency, drift, stale streams, the joint-state rate, every rejection counter
and the governor's, and warns while the stream is degraded (``stream_warn.*``); the sync state
also goes to /diagnostics (``twin/sync``, :mod:`robot_twin.nodes.status`), beside the CPU its
process takes (``twin/cpu``, WARN above ``cpu_warn.limit_cores``).
The controller's trajectory topic is observed (its last command is in /twin/status).

Out: when ``corrective_actions.enabled`` is true, an anomaly report at ERROR makes
:class:`twin_bridge.corrective.CorrectivePolicy` propose a command, which
:class:`twin_bridge.governor.SafetyGovernor` clamps to the URDF limits or refuses (stale state,
clock, rate limit, ...), which :class:`twin_bridge.audit.AuditLog` records, and which only then
goes out: the whole governed trajectory on the trajectory interface, or streamed as set-points
(:class:`twin_bridge.corrective.SetpointStream`) on the forward_position and joint_command
interfaces. A stream stops, holding its last set-point, when the robot state goes stale or the
clock steps back or jumps forward (counted in /twin/status as ``stream_stops.*``); the policy
then proposes again from the measured state. The anomaly report comes from ``twin_anomaly`` by
a function call in the one-process twin, else from the latched /twin/anomaly topic.
"""
import math
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
from rclpy.node import Node
from robot_twin.config import ConfigError
from robot_twin.nodes import qos
from robot_twin.nodes.cdr import JointStateWriter
from robot_twin.nodes.messages import COMMAND_INTERFACES, diagnostics_bytes, \
    make_joint_state, now_stamp, status_values, trajectory_msg
from robot_twin.nodes.mirror_node import DisplayRate
from robot_twin.nodes.params import declare_node_parameters
from robot_twin.nodes.robot_input import robot_model, RobotInput
from robot_twin.nodes.runner import run_nodes
from robot_twin.nodes.status import CpuCheck, MirrorResultCheck, StreamCheck, sync_diagnostic
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray
from trajectory_msgs.msg import JointTrajectory
from twin_anomaly.report import ROBOT_STATUS, StatusEntry
from twin_bridge.audit import AuditLog
from twin_bridge.corrective import AnomalyEvent, CLOCK_LEAD_S, CorrectivePolicy, \
    SetpointStream, SIM_CLOCK_LEAD_S, STREAM_STOP_CAUSES
from twin_bridge.governor import GovernorConfigError, JointLimits, load_joint_limits_yaml, \
    SafetyGovernor, TrajectoryCommand
from twin_bridge.intake import JOINTS, WRENCH
from twin_bridge.ledger import LedgerError
from twin_bridge.mapping import format_joint_names

STAMP_WARNING_PERIOD_S = 10.0
"""At most one log line per stream this often about stamps behind the local clock, s."""


class TwinBridgeNode(Node):
    """
    Mirror the robot's streams into the twin and govern corrective commands.

    Parameters
    ----------
    name : str
        Node name.
    anomaly_in_process : bool
        True in the one-process twin: anomaly reports arrive by :meth:`take_report` calls from
        the anomaly node instead of the /twin/anomaly topic.

    Attributes
    ----------
    input : RobotInput
        The robot's streams; its ``sample_listeners`` and ``wrench_listeners`` feed the twin.
    status_sources : list of callable
        ``f() -> dict`` of extra /twin/status values (the other nodes of the process).

    """

    def __init__(self, name='twin_bridge', anomaly_in_process=False, **kwargs):
        super().__init__(name, **kwargs)
        p = self.params = declare_node_parameters(self, 'twin_bridge')
        model = robot_model(p, with_dynamics=False)
        self.names = list(model.joint_names)
        self.input = RobotInput(self, model, p)
        self.intake = self.input.intake
        self.input.sample_listeners.append(self._display)
        self.sample_stamp = None    # (sec, nanosec) of the newest accepted sample: /twin/status
        self.status_sources = []
        self.mirror_check = MirrorResultCheck()    # not "in sync" while results are NaN
        self.stream_check = StreamCheck(          # WARN while the robot's stream is degraded
            p['stream_warn.window_s'], p['stream_warn.missing_share'],
            p['stream_warn.lost_in_twin_share'], p['stream_warn.latency_tail_s'])
        # the process's own CPU, on /twin/status and as twin/cpu on /diagnostics
        self.cpu_check = CpuCheck(p['cpu_warn.window_s'], p['cpu_warn.limit_cores'])
        self.display = DisplayRate(p['display_rate_hz'])
        self.pub_mirror = self.create_publisher(
            JointState, '/twin/joint_states', qos.STREAM_OUT, event_callbacks=qos.LEAN_PUBLISHER,
            qos_overriding_options=qos.OVERRIDABLE)
        self._mirror_msg = {}     # JointStateWriter per (has velocity, has effort)
        self.pub_status = self.create_publisher(DiagnosticArray, '/twin/status', qos.STATUS)
        # the sync state for rqt_robot_monitor and diagnostic_aggregator (robot_twin.nodes.status)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', qos.STATUS)
        self._next_lag_warning = {}
        self._setup_corrective(model, p)
        if not anomaly_in_process:
            self.create_subscription(DiagnosticArray, '/twin/anomaly', self.on_anomaly,
                                     qos.LATCHED)
            self.create_subscription(Float64, '/twin/speed_scale',
                                     lambda msg: self.set_speed_scale(msg.data), qos.LATCHED)
        # (on the trajectory interface this also sees the twin's own corrective commands)
        self.controller = {'trajectories': 0, 'last_stamp': float('nan'), 'joints': 0}
        self.create_subscription(JointTrajectory, p['trajectory_topic'],
                                 self.on_controller_trajectory, qos.COMMAND)
        # (in pieces between the robot's samples: see robot_twin.nodes.idle_work)
        self.create_timer(1.0 / p['status_rate_hz'], lambda: self.input.idle.submit(
            self._status()))

    def _setup_corrective(self, model, p):
        self.governor = SafetyGovernor(
            self._joint_limits(model, p),
            max_rate_hz=p['corrective_actions.max_rate_hz'],
            position_margin_rad=model.by_joint_type(p['corrective_actions.position_margin_rad'],
                                                    p['corrective_actions.position_margin_m']),
            velocity_scale=p['corrective_actions.velocity_scale'])
        self._warn_without_limits(p)
        accel = self.governor.limits.acceleration
        if np.isfinite(accel).any():
            self.get_logger().info('corrective commands: acceleration limits ' + ', '.join(
                f'{n} {a:g}' for n, a in zip(self.names, accel) if math.isfinite(a))
                + ' (rad/s²); they count from the measured joint velocities: a corrective '
                'command is refused (no_state) while /joint_states gives no velocity for such '
                'a joint')
        home = p['corrective_actions.home_position']
        if home and len(home) != len(self.names):
            raise ConfigError(self.get_fully_qualified_name(), [
                f'corrective_actions.home_position has {len(home)} values; give one per joint '
                f'of the URDF ({", ".join(self.names)})'])
        limits = self.governor.limits
        outside = [f'{name} {value:g} not in [{lo:g}, {hi:g}]' for name, value, lo, hi
                   in zip(self.names, home, limits.lower, limits.upper) if not lo <= value <= hi]
        if outside:
            raise ConfigError(self.get_fully_qualified_name(), [
                'corrective_actions.home_position is beyond the URDF limits (rad, m): '
                + '; '.join(outside)])
        self.policy = CorrectivePolicy(p['corrective_actions.policy'],
                                       hold_time_s=p['corrective_actions.move_time_s'],
                                       home_position=home or None)
        self.audit = self._open_audit(p)
        self.interface = p['corrective_actions.interface']
        default_topic, msg_type = COMMAND_INTERFACES[self.interface]
        self.command_topic = p['corrective_actions.topic'] or default_topic
        self.pub_command = self.create_publisher(msg_type, self.command_topic, qos.COMMAND)
        self.commands_sent = 0
        self.last_event = None      # latest robot-level anomaly (AnomalyEvent)
        self.stream = None          # SetpointStream being played, if any
        self.stream_stops = dict.fromkeys(STREAM_STOP_CAUSES, 0)
        period = 1.0 / p['corrective_actions.stream_rate_hz']
        # how far the clock may run ahead of the monotonic clock between two set-points
        sim_time = self.get_parameter('use_sim_time').value
        self._clock_lead_s = max(SIM_CLOCK_LEAD_S, period) if sim_time else CLOCK_LEAD_S
        if self.interface != 'trajectory':
            self.create_timer(period, self._stream_step)

    def _joint_limits(self, model, p):
        """Return the governor's limits: the URDF's, with those of the acceleration params."""
        n = len(model.joint_names)
        default = p['corrective_actions.max_acceleration']
        acceleration = np.full(n, default if default > 0.0 else math.inf)
        velocity = None
        path = p['corrective_actions.joint_limits_file']
        if path:
            try:
                from_file, velocity = load_joint_limits_yaml(path, model.joint_names)
            except GovernorConfigError as exc:
                raise ConfigError(self.get_fully_qualified_name(), [
                    f'corrective_actions.joint_limits_file: {exc}']) from None
            acceleration = np.fmin(acceleration, from_file)
        return JointLimits.from_model(model, acceleration=acceleration, velocity=velocity)

    def _warn_without_limits(self, p):
        """
        Say at start-up, in one line, that joints without a velocity limit block commands.

        Corrective commands are trajectories of every joint; the governor refuses to command
        a joint whose speed it cannot limit (a URDF continuous joint without <limit>).
        """
        joints = [name for name, what in self.governor.limits.without_limit().items()
                  if 'velocity' in what]
        if not joints:
            return
        log = self.get_logger().warning if p['corrective_actions.enabled'] else \
            self.get_logger().info
        its, joint = ('its', 'the joint') if len(joints) == 1 else ('their', 'each joint')
        log(f'the URDF gives {format_joint_names(joints)} no velocity limit: the governor '
            f'cannot limit {its} speed, so it refuses every corrective command (hold and home '
            'move every joint) and none will be sent; add <limit effort="..." velocity="..."/> '
            f'to {joint} in the URDF to allow them')

    def _open_audit(self, p):
        """Return the governor's audit trail in the lifecycle log (``ledger_path``), or None."""
        if not p['ledger_path']:
            if p['corrective_actions.enabled']:
                self.get_logger().warning(
                    'corrective actions are enabled without a lifecycle log (ledger_path): '
                    "the governor's decisions go to the ROS log only")
            return None
        try:
            audit = AuditLog(p['ledger_path'])
            audit.ledger.record_start(self.get_fully_qualified_name(), config=dict(p),
                                      files={'urdf': p['urdf_path']})
        except LedgerError as exc:
            # the governor refuses nothing less for it: commands are still logged to the ROS log
            self.get_logger().error(f'{exc}; corrective commands are audited in the ROS log '
                                    'only')
            return None
        return audit

    def _now(self):
        return self.get_clock().now().nanoseconds * 1e-9

    def set_speed_scale(self, scale):
        """Derate corrective motion: the governor's velocity limits times ``scale``, (0, 1]."""
        try:
            self.governor.set_speed_scale(scale)
        except ValueError as exc:
            self.get_logger().warning(f'speed scale refused: {exc}')
            return
        self.get_logger().info(f'governor speed scale {self.governor.speed_scale:.2f}')

    def _display(self, sample):
        """Republish the accepted state on /twin/joint_states at the display rate."""
        self.sample_stamp = sample.stamp      # (every sample: the stamp of /twin/status)
        if not self.display.due(sample.t):
            return
        # a field some joint lacks in this sample (NaN effort: its message gave none) goes out
        # empty, "not provided", as sensor_msgs/JointState has it: never a NaN on an output
        with_velocity = sample.velocity is not None
        with_effort = not np.isnan(sample.effort).any()
        writer = self._mirror_msg.get((with_velocity, with_effort))
        if writer is None:
            fields = ('position',) + (('velocity',) if with_velocity else ()) + (
                ('effort',) if with_effort else ())
            writer = self._mirror_msg[with_velocity, with_effort] = JointStateWriter(
                self.names, fields=fields)
        self.pub_mirror.publish(writer.write(*sample.stamp, sample.position, sample.velocity,
                                             sample.effort if with_effort else None))

    def on_controller_trajectory(self, msg):
        """Note the robot controller's latest trajectory (reported in /twin/status)."""
        self.controller['trajectories'] += 1
        self.controller['last_stamp'] = self._now()
        self.controller['joints'] = len(msg.joint_names)

    # ---------------------------------------------------------------- corrective actions
    def on_anomaly(self, msg):
        """Act on the robot-level status of an anomaly report (a DiagnosticArray)."""
        robot = next((s for s in msg.status if s.name == ROBOT_STATUS), None)
        if robot is not None:
            self._take_anomaly({0: 'OK', 1: 'WARN', 2: 'ERROR'}.get(robot.level[0], 'ERROR'),
                               status_values(robot))

    def take_report(self, entries):
        """
        Act on the robot-level entry of an anomaly report of the same process.

        ``entries`` are the report's :class:`twin_anomaly.report.StatusEntry` objects, as the
        anomaly node publishes them on /twin/anomaly.
        """
        robot = next((e for e in entries if e.name == ROBOT_STATUS), None)
        if robot is not None:
            self._take_anomaly(robot.level, robot.values)

    def _take_anomaly(self, level, values):
        self.last_event = AnomalyEvent(
            level=level, joint=str(values.get('joint', '')),
            fault_type=str(values.get('fault_type', 'unknown')),
            score=_float(values.get('score')), since=_float(values.get('since')))
        self.act_on_anomaly()

    def act_on_anomaly(self):
        """Let the policy propose for the latest anomaly (new episode, or a due retry)."""
        if self.last_event is None or not self.get_parameter('corrective_actions.enabled').value:
            return
        proposal = self.policy.propose(self.last_event, self.intake.mapper.position,
                                       self._now(), self.intake.mapper.velocity,
                                       self.governor.position_range(self.names),
                                       self.governor.acceleration_limit(self.names))
        if proposal is not None:
            self.send_corrective(proposal)

    def send_corrective(self, proposal):
        """Govern, audit and (if allowed) send one corrective proposal."""
        wall, now = time.monotonic(), self._now()     # read together: the stream checks both
        start = self.intake.mapper.position.copy()
        # the robot's trajectory controller starts its spline at the robot's velocity, and a
        # set-point stream runs the same spline (NaN: not streamed, taken as at rest)
        velocity = self.intake.mapper.velocity.copy()
        previous = None
        if self.stream is not None and list(self.stream.joints) == list(self.names):
            # a stream is under way: the new one goes on from its set-point, not from where
            # the arm (lagging its commands) is, so the commanded positions never jump. The
            # set-point of `now`, the new stream's start time: one read later, the new stream
            # would start ahead of the old one's path and its next step be faster than approved.
            # Its first set-point is checked against the last one the old stream sent (a clock
            # that stepped back is also the governor's to refuse)
            start, velocity = self.stream.setpoint(now)[:2]
            previous = self.stream.last
        # a hold is one point, or one per joint's stop time under acceleration limits
        command = TrajectoryCommand(points=proposal.trajectory_points(), joints=self.names)
        decision = self.governor.govern(command, now, self.intake.state_ok(now), start,
                                        velocity)
        if self.audit is not None:
            try:
                self.audit.record(decision, stamp=float(np.nanmax(self.intake.mapper.stamp)),
                                  anomaly=proposal.anomaly)
            except LedgerError as exc:
                self._audit_failed(exc)
        if not decision.allowed:
            self.get_logger().warning(f'corrective command refused: {decision.reasons}')
            if decision.cause in ('stale', 'rate', 'no_state', 'clock', 'unreachable'):
                # a passing reason (or an arm that will have moved on): try again later in
                # this episode, from the state then
                self.policy.refused(now)
            return
        governed = decision.command
        if self.interface == 'trajectory':
            self.pub_command.publish(trajectory_msg(governed.joints, governed.points))
        else:
            self.stream = SetpointStream(
                governed, start, now, self.governor.position_range(governed.joints), velocity,
                velocity_limit=self.governor.velocity_limit(governed.joints), wall=wall,
                previous=previous, clock_lead_s=self._clock_lead_s)
            self._stream_step()
        self.commands_sent += 1
        self.get_logger().warning(f'corrective command sent ({proposal.reason}); '
                                  f'governor: {decision.reasons or "within limits"}')

    def _stream_step(self):
        """
        Send the next set-point of the governed trajectory being streamed, if any.

        The stream checks it against the last one sent (:meth:`SetpointStream.step`); the
        governor watches the clock at every set-point. A stream stopped by the clock holds its
        last set-point, and the policy proposes again after its retry time, from the measured
        state (the governor refuses until the clock is sane again).
        """
        stream = self.stream
        if stream is None:
            return
        # one reading of the clock for the checks, the set-point and its stamp, between two of
        # the monotonic clock
        before, now, wall = time.monotonic(), self.get_clock().now(), time.monotonic()
        now_s = now.nanoseconds * 1e-9
        clock = self.governor.tick(now_s)
        # the clock first: a clock that jumped ahead also makes the state look stale, and the
        # clock is the cause to report
        problem = ('clock_back', clock) if clock is not None else (
            stream.clock_problem(now_s, wall) if stream.stopped is None else None)
        if problem is None and not self.intake.state_ok(self._now()):
            self.stream = None                # stale: the interlock stops the stream too
            self.stream_stops['stale'] += 1
            self.get_logger().warning('corrective stream stopped: robot state is stale')
            return
        setpoint = stream.stop(*problem) if problem is not None else stream.step(
            now_s, wall, before)
        if setpoint.positions is not None:
            self._send_setpoint(now, stream.joints, setpoint.positions, setpoint.velocities)
        if setpoint.stop is not None:
            self.stream_stops[setpoint.stop] += 1
            held = ('holding its last set-point' if setpoint.positions is not None
                    else 'nothing of it was sent')
            self.get_logger().warning(
                f'corrective stream stopped ({setpoint.stop}): {setpoint.reason}; {held}; '
                f'while the anomaly lasts, the policy proposes again in '
                f'{self.policy.retry_s:g} s, from the measured state')
            self.policy.refused(now_s)
        if setpoint.done:
            self.stream = None

    def _send_setpoint(self, now, joints, q, v):
        """Publish one set-point (positions, velocity feed-forward) stamped ``now``."""
        if self.interface == 'forward_position':
            self.pub_command.publish(Float64MultiArray(data=q.tolist()))
        else:
            self.pub_command.publish(make_joint_state(now.to_msg(), joints, position=q,
                                                      velocity=v))

    # ---------------------------------------------------------------- status
    def publish_status(self):
        """
        Publish /twin/status: sync state, latency, drift, staleness, rate and counters, now.

        Stamped with the newest robot sample's stamp (:meth:`report_stamp`).

        Also the moment the governor watches the clock, and a corrective proposal refused for
        a passing reason is retried.
        """
        for _ in self._status():
            pass

    def _status(self):
        """Publish the status, yielding between its pieces (see ``idle_work``)."""
        now = self._now()
        self.governor.tick(now)
        self.act_on_anomaly()
        intake = self.intake
        values = dict(intake.watchdog.status(now))
        values.update(intake.timesync.status())
        values.update(intake.counters())
        values.update({f'governor.{k}': v for k, v in self.governor.counters.items()})
        values['commands_sent'] = self.commands_sent
        values.update(self.input.idle.counters())
        values.update({f'stream_stops.{k}': v for k, v in self.stream_stops.items()})
        values['wrench_outputs'] = 'on' if self.input.with_wrench else (
            'off: ' + self.input.wrench_off_reason)
        values['controller.trajectories'] = self.controller['trajectories']
        values['controller.last_age_s'] = now - self.controller['last_stamp']
        values.update(self.cpu_check.observe(time.monotonic()))
        yield
        for source in self.status_sources:
            values.update(source())
        values['missing_joints'] = ','.join(intake.joints.missing_joints(now))
        values['joints_without_effort'] = ','.join(intake.mapper.never_received('effort'))
        yield
        window = self.stream_check.observe(values, now)
        values.update(window.values())
        level, message = self.stream_check.judge(*intake.sync_status(now), window,
                                                 values['latency_p50_s'],
                                                 values['latency_p99_s'])
        level, message = self.mirror_check.judge(level, message, values, now)
        self._warn_stamps_behind(now)
        yield
        stamp = self.report_stamp()
        self.pub_status.publish(diagnostics_bytes(
            stamp, [StatusEntry('twin/status/sync', level, message, values)]))
        yield
        was_over, cpu = self.cpu_check.over, self.cpu_check.judge(values.get('anomaly.phase'))
        self.pub_diag.publish(diagnostics_bytes(stamp, [sync_diagnostic(level, message, values),
                                                        cpu]))
        if self.cpu_check.over != was_over:
            if self.cpu_check.over:
                self.get_logger().warning(cpu.message)
            else:
                self.get_logger().info(f'the twin takes {cpu.message}')

    def report_stamp(self):
        """
        Return the header stamp ``(sec, nanosec)`` of /twin/status (and ``twin/sync``) now.

        The stamp of the newest robot sample the intake accepted (the contract: every twin
        output carries the stamp of the robot sample it was computed from); the node clock's
        time only before the first sample. While the robot is silent the stamp stays at its
        last sample's (the status says STALE, and its age is in ``joint_states.age_s``).
        """
        stamp = self.sample_stamp
        return stamp if stamp is not None else now_stamp(self.get_clock())

    def _warn_stamps_behind(self, now):
        """Log, at most every STAMP_WARNING_PERIOD_S, a stream whose stamps lag the clock."""
        topics = {JOINTS: self.intake.joints.topic, WRENCH: self.intake.wrench.topic}
        for stream in self.intake.watchdog.streams:
            lag = self.intake.lag_cause(stream, now)
            wall = time.monotonic()
            if lag is None or wall < self._next_lag_warning.get(stream, -math.inf):
                continue
            self._next_lag_warning[stream] = wall + STAMP_WARNING_PERIOD_S
            text, own = lag
            self.get_logger().warning(
                f'{topics[stream]}: {text}; the twin reports it STALE and refuses corrective '
                'commands until it has caught up' if own else
                f'{topics[stream]}: samples arrive in time, {text}; the twin reports it STALE '
                'and refuses corrective commands until then')

    def _audit_failed(self, exc):
        """
        Go on without the lifecycle log after a failed write (disk full, I/O error).

        As when it cannot be opened at start: the governor refuses nothing less for it, and its
        decisions (logged below in any case) go to the ROS log only. The log has no entry after
        the failure, so it still verifies; the error says where it ends. The bridge's user of
        the writer is released, so that a writer shared with the anomaly node closes (file,
        lock, thread) with that node's close.
        """
        audit, self.audit = self.audit, None
        self.get_logger().error(f'{exc}; corrective commands are audited in the ROS log only '
                                'from now on')
        try:
            audit.close()
        except LedgerError as close_exc:    # a failed write no caller had reported yet
            self.get_logger().error(str(close_exc))

    def destroy_node(self):
        """Close the audit log before the node goes."""
        if getattr(self, 'audit', None) is not None:   # None too if __init__ failed early
            try:
                self.audit.close()
            except LedgerError as exc:      # a failed write no caller had reported yet
                self.get_logger().error(str(exc))
        return super().destroy_node()


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float('nan')


def main(args=None):
    """Console entry point ``twin_bridge``."""
    return run_nodes([lambda _nodes: TwinBridgeNode()], args)


if __name__ == '__main__':
    sys.exit(main())
