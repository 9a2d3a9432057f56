"""
The ``twin_anomaly`` node: the twin's results in; anomaly, RUL and maintenance state out.

Each mirror result goes to :class:`twin_anomaly.pipeline.AnomalyPipeline` (commissioning with
calibration, then monitoring; health and RUL; see that module). At ``publish_rate_hz`` the node
publishes the anomaly report as /twin/anomaly (latched; also on /diagnostics),
/twin/anomaly_score and /twin/markers, and at once when an alarm is raised or cleared (a report
costs far more than a sample, so 10 Hz rather than 50 keeps the 1 kHz process leaner); at
``rul.publish_rate_hz`` /twin/rul (latched) and the
derating the governor should apply (/twin/speed_scale, latched). Beside a fast robot the timers
hand these reports to :mod:`robot_twin.nodes.idle_work`, which runs them in pieces right after
the robot's samples rather than whole wherever a timer fires. An accepted calibration is
handed to the mirror. Lifecycle events go to the ledger (``ledger_path``) from a writer thread.

In the one-process twin the results come from the ``twin_sim`` node by a function call, and the
anomaly report goes to ``twin_bridge`` the same way (for corrective actions). Started in a
process of its own the node does not read /twin/residuals back: it takes the robot's topics
itself and runs its own copy of the mirror (the same cores, in the same order), so that its
verdicts are those of the one-process twin.
"""
import math
from pathlib import Path
import re
import sys
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import InertiaStamped
from rclpy.node import Node
from robot_twin.nodes import qos
from robot_twin.nodes.messages import diagnostics_bytes, maintenance_from_status, \
    MAINTENANCE_TOPIC, now_stamp, payload_from_msg, status_values
from robot_twin.nodes.params import declare_node_parameters
from robot_twin.nodes.robot_input import robot_model, RobotInput, wrench_outputs
from robot_twin.nodes.runner import run_nodes
from std_msgs.msg import Float64
from twin_anomaly.pipeline import AnomalyPipeline
from twin_anomaly.report import marker_specs, status_entries
from twin_bridge.ledger import LedgerError, open_ledger
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from visualization_msgs.msg import Marker, MarkerArray

TWIN_FRAME_PREFIX = 'twin/'
"""TF prefix of the twin's robot_state_publisher (see robot_twin.graph)."""


def default_robot_file(model, suffix):
    """
    ``~/.ros/robot_twin/<robot><suffix>``: where a robot's commissioning files go by default.

    ``<robot>`` is the URDF's robot name, followed by ``-<file stem>`` when the file is named
    otherwise, so that two robots whose URDFs are both called ``model.urdf`` keep files of
    their own (named after the file alone, the second overwrote the first one's calibration).
    """
    stem = Path(model.urdf_path).stem
    name = re.sub(r'[^A-Za-z0-9_.-]+', '_', model.robot_name).strip('._')
    robot = stem if not name or name == stem else f'{name}-{stem}'
    return str(Path.home() / '.ros' / 'robot_twin' / f'{robot}{suffix}')


class TwinAnomalyNode(Node):
    """
    Commission, monitor and report the twin's residuals; health, RUL and advice.

    Parameters
    ----------
    name : str
        Node name.
    mirror : robot_twin.nodes.mirror_node.TwinMirrorNode, optional
        The mirror node of the same process, whose results this node takes (and which gets the
        calibrated model); None = read the robot's topics and run a mirror of its own.

    Attributes
    ----------
    report_listeners : list of callable
        ``f(entries)`` with the :class:`twin_anomaly.report.StatusEntry` list of each published
        /twin/anomaly report (the bridge's corrective actions, in the one-process twin).
    speed_scale_listeners : list of callable
        ``f(scale)`` with the derating the RUL monitor asks for, in (0, 1] (the bridge's
        governor, in the one-process twin; else /twin/speed_scale).

    """

    def __init__(self, name='twin_anomaly', mirror=None, **kwargs):
        super().__init__(name, **kwargs)
        p = self.params = declare_node_parameters(self, 'twin_anomaly')
        model = self.model = robot_model(p)
        self.names = list(model.joint_names)
        self._ledger_error = ''       # why the lifecycle log gets no more entries (logged once)
        self.ledger = self._open_ledger(p['ledger_path'])
        self.pipeline = AnomalyPipeline(
            model, p, thresholds_file=p['thresholds_file'] or default_robot_file(
                model, '_thresholds.yaml'),
            rul_log=p['rul.log_path'] or default_robot_file(model, '_health.jsonl'),
            background=True, log=self._log)
        self.monitor = self.pipeline.monitor
        self.report_listeners = []
        self.speed_scale_listeners = []
        self._scale_sent = None       # last derating published
        self.position = None          # latest measured position, for the markers
        self.sample_stamp = None      # (sec, nanosec) of the newest sample: the reports' stamp
        self._mirror_node = mirror
        if mirror is None:            # a process of its own: the chain runs here
            self.input = self._robot_input = RobotInput(self, model, p)
            self._mirror = Mirror(Predictor(model))
            self.input.sample_listeners.append(self._own_chain)
            if wrench_outputs(model, p)[0]:
                self.input.wrench_listeners.append(self._own_wrench)
        else:
            self._robot_input = mirror.source
            mirror.result_listeners.append(self.take_result)
            mirror.wrench_listeners.append(self.pipeline.wrench)
        self.pipeline.model_listeners.append(self._use_calibrated_model)
        self.pub_anomaly = self.create_publisher(DiagnosticArray, '/twin/anomaly', qos.LATCHED)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', qos.STATUS)
        self.pub_score = self.create_publisher(Float64, '/twin/anomaly_score', qos.STATUS)
        self.pub_markers = self.create_publisher(MarkerArray, '/twin/markers', qos.STATUS)
        self.marker_frame = TWIN_FRAME_PREFIX + model.root_link
        self._marker_array = MarkerArray()
        self._alarm_changes = 0
        idle = self._robot_input.idle        # the reports run in pieces between samples
        self.create_timer(1.0 / p['publish_rate_hz'], lambda: idle.submit(self._report()))
        if self.pipeline.rul is not None:
            self.pub_rul = self.create_publisher(DiagnosticArray, '/twin/rul', qos.LATCHED)
            self.pub_speed_scale = self.create_publisher(Float64, '/twin/speed_scale',
                                                         qos.LATCHED)
            self.create_timer(1.0 / p['rul.publish_rate_hz'],
                              lambda: idle.submit(self._rul_report()))
        self.payload_refused = 0
        self.create_subscription(InertiaStamped, '/twin/payload', self.on_payload, qos.LATCHED)
        self.get_logger().info(f'what the robot carries: /twin/payload, in frame '
                               f'{model.payload_frame}')
        # maintenance done (volatile: a declaration is applied once, never again at a restart)
        self.maintenance_accepted = self.maintenance_refused = 0
        self._maintenance_by = []     # (joint, action, {by, note}) for maintenance_done entries
        self.create_subscription(DiagnosticStatus, MAINTENANCE_TOPIC, self.on_maintenance,
                                 qos.COMMAND)
        if self.ledger is not None:
            self._record_start(p)
            self._acknowledged = set()
            self.create_subscription(DiagnosticArray, '/twin/acknowledgements',
                                     self.on_acknowledgement, qos.ACKNOWLEDGEMENTS)
            self._switches = set()
            self.create_subscription(DiagnosticArray, '/twin/corrective_switches',
                                     self.on_corrective_switch, qos.ACKNOWLEDGEMENTS)

    # ---------------------------------------------------------------- lifecycle log
    def _open_ledger(self, path):
        if not path:
            return None
        try:
            return open_ledger(path)
        except LedgerError as exc:
            self.get_logger().error(f'{exc}; running without the lifecycle log')
            return None

    def _record_start(self, p):
        files = {'urdf': self.model.urdf_path, 'dynamics': p['dynamics_params_file'],
                 'thresholds': str(self.monitor.thresholds_file or '')}
        self._append('start', None, start={
            'component': self.get_fully_qualified_name(), 'config': dict(p), 'files': files})

    def _append(self, kind, data, start=None):
        """Queue a lifecycle-log entry (never waits for the disk on the executor thread)."""
        if self.ledger is None or self._ledger_error:
            return
        try:
            if start is not None:
                self.ledger.record_start(**start)
            else:
                if kind == 'maintenance_done':
                    data = self._with_maintenance_by(data)
                # a failed background write is reported when it happens, not dropped with
                # the future (the ledger also refuses further entries after it)
                self.ledger.append_async(kind, data).add_done_callback(self._ledger_written)
        except LedgerError as exc:
            self._ledger_failed(exc)

    def _ledger_written(self, future):
        """Ledger writer thread: report a queued entry that could not be written."""
        if not future.cancelled() and future.exception() is not None:
            self._ledger_failed(future.exception())

    def _ledger_failed(self, exc):
        """Log a lifecycle-log failure once, show it in /twin/status, write no more entries."""
        if self._ledger_error:
            return
        self._ledger_error = f'lifecycle log: {exc}; no further entries'
        self.get_logger().error(self._ledger_error)

    def on_acknowledgement(self, msg):
        """Record anomaly episodes that a person acknowledged (twin_hub), once each."""
        for status in msg.status:
            values = status_values(status)
            key = values.get('id') or status.message
            if key in self._acknowledged:
                continue              # latched: re-sent to a writer that joins later
            self._acknowledged.add(key)
            self._append('anomaly_acknowledged', values)

    def on_corrective_switch(self, msg):
        """Record switches of corrective actions made through twin_hub, once each."""
        for status in msg.status:
            values = status_values(status)
            key = (values.get('time'), values.get('enabled'), values.get('interface'),
                   status.message)
            if key in self._switches:
                continue              # latched: re-sent to a writer that joins later
            self._switches.add(key)
            self._append('corrective_actions_switched', values)

    def _write_lifecycle(self):
        for kind, data in self.pipeline.lifecycle_entries():
            self._append(kind, data)

    # ---------------------------------------------------------------- the chain
    def _log(self, level, text):
        # one call site per severity: rclpy refuses a call site whose severity changes
        log = self.get_logger()
        if level == 'error':
            log.error(text)
        elif level == 'warning':
            log.warning(text)
        else:
            log.info(text)

    def _use_calibrated_model(self, model):
        """Predict with ``model`` from now on (mirror and own chain): calibrated, payload."""
        if self._mirror_node is not None:
            self._mirror_node.set_model(model)
        else:
            self._mirror.set_predictor(Predictor(model))
        self.get_logger().info('the mirror predicts with the ' + (
            'calibrated model' if self.monitor.calibrated_model is not None else 'URDF model')
            + (f' and a payload of {self.monitor.payload.mass:g} kg'
               if self.monitor.payload is not None else ''))

    def on_payload(self, msg):
        """Take what the robot carries from now on (/twin/payload, InertiaStamped)."""
        try:
            self.pipeline.set_payload(payload_from_msg(msg, self.model))
        except ValueError as exc:
            self.payload_refused += 1
            self.get_logger().warning(f'/twin/payload refused: {exc}')

    def on_maintenance(self, msg):
        """
        Take maintenance declared done on a joint (/twin/maintenance, DiagnosticStatus).

        ``name`` the joint, ``message`` the action, values ``by`` and ``note``; the RUL monitor
        learns the joint's health anew (``RulMonitor.declare_maintenance``), and the lifecycle
        log gets ``maintenance_done`` (with who and the note) at the next /twin/rul report. A bad
        declaration is refused with a warning and counted (``maintenance.refused``).
        """
        try:
            joint, action, by, note = maintenance_from_status(msg)
            if self.pipeline.rul is None:
                raise ValueError('the RUL monitor is off (rul.enabled: false)')
            self.pipeline.rul.declare_maintenance(joint, action, None)
        except ValueError as exc:
            self.maintenance_refused += 1
            self.get_logger().warning(f'{MAINTENANCE_TOPIC} refused: {exc}')
            return
        self.maintenance_accepted += 1
        if self.ledger is not None:
            self._maintenance_by.append((joint, action, {'by': by, 'note': note}))
        self.get_logger().info(f'maintenance done on {joint}: {action}'
                               + (f' by {by}' if by else '') + (f' ({note})' if note else '')
                               + '; its health baseline is learned anew')

    def _with_maintenance_by(self, data):
        """Add who declared it and the note to a ``maintenance_done`` entry, if known."""
        for i, (joint, action, extra) in enumerate(self._maintenance_by):
            if (joint, action) == (data.get('joint'), data.get('action')):
                del self._maintenance_by[i]
                return {**data, **extra}
        return data

    def status_values(self):
        """
        Values for /twin/status (the bridge adds them in the one-process twin).

        ``joint_states.dropped``: the samples the twin lost or dropped, as /twin/anomaly's
        ``dropped_samples``: ``joint_states.lost_in_twin`` (lost in its own input queue, found
        by the stream checks) plus samples whose stamp did not advance;
        ``joint_states.missing``: samples missing from the robot's own stream (its gaps, as the
        stream checks count them); ``fault_classifier``: the classifier's file name (or
        ``rules``); ``anomaly.phase``: ``commissioning`` or ``monitoring``. Read from the
        detector's counters at status time: no work per sample.
        """
        monitor = self.monitor
        lost = int(monitor.checks.lost_in_twin)
        payload = self.monitor.payload
        values = {'payload_kg': float(payload.mass) if payload is not None else
                  float(self.params['payload_mass_kg']),
                  'payload.refused': self.payload_refused,
                  'maintenance.accepted': self.maintenance_accepted,
                  'maintenance.refused': self.maintenance_refused,
                  'joint_states.dropped': int(monitor.dropped_samples) + lost,
                  'joint_states.lost_in_twin': lost,
                  'joint_states.missing': int(monitor.checks.missing_from_robot),
                  # which model names the faults (the packaged one for the stream's rate)
                  'fault_classifier': Path(monitor.classifier_name).name,
                  'anomaly.phase': monitor.phase}
        if self._ledger_error:
            values['lifecycle_log'] = self._ledger_error
        return values

    def take_result(self, sample, result):
        """Feed one robot sample and the mirror's result for it to the pipeline."""
        self.position = sample.position
        self.sample_stamp = sample.stamp
        self.pipeline.update(sample, result, now=self._receive_time())
        if self.monitor.alarm_changes != self._alarm_changes:
            self._alarm_changes = self.monitor.alarm_changes
            self.publish()             # an alarm raised or cleared does not wait for the rate

    def _receive_time(self):
        # the intake's receive time of this sample (the same clock; no second clock read)
        return self._robot_input.receive_time

    def _own_chain(self, sample):
        # the mirror node's guarded step: the same samples dropped, no result not finite
        mirrored, result = self._mirror.guarded_update(sample.t, sample.position,
                                                       sample.velocity, sample.effort)
        if mirrored:      # else the robot has given no effort for some joint (the mirror says so)
            self.take_result(sample, result)

    def _own_wrench(self, t, _stamp, wrench):
        out = self._mirror.guarded_wrench_residual(wrench, t)
        if out is not None:
            self.pipeline.wrench(t, out[1])

    # ---------------------------------------------------------------- outputs
    def report_stamp(self):
        """
        Return the header stamp ``(sec, nanosec)`` of the reports published now.

        The stamp of the newest robot sample the pipeline took (the contract: every twin output
        carries the stamp of the robot sample it was computed from); the node clock's time
        only before the first sample. A robot that stops leaves it at its last sample's.
        """
        stamp = self.sample_stamp
        return stamp if stamp is not None else now_stamp(self.get_clock())

    def publish(self):
        """Publish the monitor's report (/twin/anomaly, /diagnostics, score, markers) now."""
        for _ in self._report():
            pass

    def _report(self):
        """Publish the report, yielding between its pieces (see ``idle_work``)."""
        state = self.pipeline.report()
        yield
        entries = status_entries(state, self.monitor.warn_ratio)
        stamp = self.report_stamp()
        data = diagnostics_bytes(stamp, entries)     # once for both topics, no message objects
        self.pub_anomaly.publish(data)
        self.pub_diag.publish(data)
        self.pub_score.publish(Float64(data=float(state.score)))
        self._write_lifecycle()        # the anomaly is in the log before any command for it
        for listener in self.report_listeners:
            listener(entries)
        yield
        markers = self._markers(state, stamp)
        if markers is not None:
            yield
            self.pub_markers.publish(markers)

    def publish_rul(self):
        """Publish /twin/rul and the derating the governor should apply, now."""
        for _ in self._rul_report():
            pass

    def _rul_report(self):
        rep = self.pipeline.rul_report(time.time(),
                                       applied_speed_scale=self.pipeline.speed_scale)
        yield
        self.pub_rul.publish(diagnostics_bytes(self.report_stamp(), rep.status_entries()))
        scale = self.pipeline.speed_scale
        if math.isfinite(scale) and scale != self._scale_sent:
            self._scale_sent = scale
            self.pub_speed_scale.publish(Float64(data=float(scale)))
            for listener in self.speed_scale_listeners:
                listener(scale)
        self._write_lifecycle()

    def _markers(self, state, stamp):
        """
        Return the MarkerArray of this report (None before the first sample).

        The Marker objects are built once and refilled: building seven of them per report
        cost more than the rest of the report.
        """
        if self.position is None:
            return None
        origins = self.model.frame_origins(self.position, self.names)
        specs = marker_specs(state, origins)
        markers = self._marker_array.markers
        while len(markers) < len(specs):
            m = Marker()
            m.header.frame_id = self.marker_frame
            m.ns, m.id, m.type, m.action = 'twin_anomaly', len(markers), Marker.SPHERE, \
                Marker.ADD
            m.pose.orientation.w = 1.0
            markers.append(m)
        del markers[len(specs):]
        sec, nanosec = stamp
        for m, spec in zip(markers, specs):
            m.header.stamp.sec, m.header.stamp.nanosec = sec, nanosec
            p = m.pose.position
            p.x, p.y, p.z = map(float, spec.position)
            m.scale.x = m.scale.y = m.scale.z = float(spec.scale_m)
            c = m.color
            c.r, c.g, c.b, c.a = spec.rgba
        return self._marker_array

    def destroy_node(self):
        """Stop a background calibration, save the health counter, close the lifecycle log."""
        pipeline = getattr(self, 'pipeline', None)     # None too if __init__ failed early
        if pipeline is not None:
            pipeline.close()
            self._write_lifecycle()
        if getattr(self, 'ledger', None) is not None:
            try:
                self.ledger.close()
            except LedgerError as exc:     # a failed queued write not reported yet
                self._ledger_failed(exc)
            self.ledger = None
        return super().destroy_node()


def main(args=None):
    """Console entry point ``twin_anomaly``."""
    return run_nodes([lambda _nodes: TwinAnomalyNode()], args)


if __name__ == '__main__':
    sys.exit(main())
