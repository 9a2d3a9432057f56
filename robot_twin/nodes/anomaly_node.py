"""
The ``twin_anomaly`` node: the twin's residuals in, anomaly state out.

Each mirror result goes to :class:`twin_anomaly.monitor.AnomalyMonitor` (commissioning, then
monitoring; see that module). At ``publish_rate_hz`` the node publishes the monitor's report as
/twin/anomaly (latched; also on /diagnostics), /twin/anomaly_score and /twin/markers.

In the one-process twin the results come from the ``twin_sim`` node by a function call, and the
anomaly report goes to ``twin_bridge`` the same way (for corrective actions). Started in a
process of its own the node does not read /twin/residuals back: it takes the robot's topics
itself and runs its own copy of the mirror (the same cores, in the same order), so that its
verdicts are those of the one-process twin.
"""
from pathlib import Path
import sys

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from robot_twin.nodes import qos
from robot_twin.nodes.messages import make_status
from robot_twin.nodes.params import declare_node_parameters
from robot_twin.nodes.robot_input import robot_model, RobotInput, wrench_outputs
from robot_twin.nodes.runner import run_nodes
from std_msgs.msg import Float64
from twin_anomaly.monitor import AnomalyMonitor, MonitorConfig
from twin_anomaly.report import marker_specs, status_entries
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from visualization_msgs.msg import Marker, MarkerArray

TWIN_FRAME_PREFIX = 'twin/'
"""TF prefix of the twin's robot_state_publisher (see robot_twin.graph)."""


def default_thresholds_file(model):
    """~/.ros/robot_twin/<robot>_thresholds.yaml, the default commissioning file."""
    robot = Path(model.urdf_path).stem
    return str(Path.home() / '.ros' / 'robot_twin' / f'{robot}_thresholds.yaml')


class TwinAnomalyNode(Node):
    """
    Commission, monitor and report the twin's residuals.

    Parameters
    ----------
    name : str
        Node name.
    mirror : robot_twin.nodes.mirror_node.TwinMirrorNode, optional
        The mirror node of the same process, whose results this node takes; None = read the
        robot's topics and run a mirror of its own.

    Attributes
    ----------
    report_listeners : list of callable
        ``f(array)`` with each published /twin/anomaly DiagnosticArray (the bridge's corrective
        actions, in the one-process twin).

    """

    def __init__(self, name='twin_anomaly', mirror=None, **kwargs):
        super().__init__(name, **kwargs)
        p = self.params = declare_node_parameters(self, 'twin_anomaly')
        model = self.model = robot_model(p)
        self.names = list(model.joint_names)
        self.monitor = AnomalyMonitor(
            model, MonitorConfig(commissioning_duration_s=p['commissioning_duration_s'],
                                 persistence_s=p['persistence_s'],
                                 model_path=p['model_path']),
            thresholds_file=p['thresholds_file'] or default_thresholds_file(model),
            recommission=p['recommission'], urdf=model.urdf_path, log=self._log)
        self.report_listeners = []
        self.position = None          # latest measured position, for the markers
        if mirror is None:            # a process of its own: the chain runs here
            self.input = RobotInput(self, model, p)
            self._mirror = Mirror(Predictor(model))
            self.input.sample_listeners.append(self._own_chain)
            if wrench_outputs(model, p)[0]:
                self.input.wrench_listeners.append(self._own_wrench)
        else:
            mirror.result_listeners.append(self.take_result)
            mirror.wrench_listeners.append(self.monitor.wrench)
        self.pub_anomaly = self.create_publisher(DiagnosticArray, '/twin/anomaly', qos.LATCHED)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', qos.STATUS)
        self.pub_score = self.create_publisher(Float64, '/twin/anomaly_score', qos.STATUS)
        self.pub_markers = self.create_publisher(MarkerArray, '/twin/markers', qos.STATUS)
        self.marker_frame = TWIN_FRAME_PREFIX + model.root_link
        self.create_timer(1.0 / p['publish_rate_hz'], self.publish)

    def _log(self, level, text):
        # one call site per severity: rclpy refuses a call site whose severity changes
        log = self.get_logger()
        if level == 'error':
            log.error(text)
        elif level == 'warning':
            log.warning(text)
        else:
            log.info(text)

    def take_result(self, sample, result):
        """Feed one robot sample and the mirror's result for it to the monitor."""
        self.position = sample.position
        self.monitor.update(sample, result)

    def _own_chain(self, sample):
        self.take_result(sample, self._mirror.update(sample.t, sample.position,
                                                     sample.velocity, sample.effort))

    def _own_wrench(self, t, _stamp, wrench):
        out = self._mirror.wrench_residual(wrench, t)
        if out is not None:
            self.monitor.wrench(t, out[1])

    def publish(self):
        """Publish the monitor's report (/twin/anomaly, /diagnostics, score, markers)."""
        state = self.monitor.report()
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [make_status(e.name, e.level, e.message, e.values)
                        for e in status_entries(state, self.monitor.detector.config.warn_ratio)]
        self.pub_anomaly.publish(array)
        self.pub_diag.publish(array)
        self.pub_score.publish(Float64(data=float(state.score)))
        self.pub_markers.publish(self._markers(state, array.header.stamp))
        for listener in self.report_listeners:
            listener(array)

    def _markers(self, state, stamp):
        markers = MarkerArray()
        if self.position is None:
            return markers
        q = self.position
        origins = {j: self.model.frame_pose(q, j)[:3, 3] for j in self.names}
        for i, spec in enumerate(marker_specs(state, origins)):
            m = Marker()
            m.header.stamp = stamp
            m.header.frame_id = self.marker_frame
            m.ns, m.id, m.type, m.action = 'twin_anomaly', i, Marker.SPHERE, Marker.ADD
            m.pose.position.x, m.pose.position.y, m.pose.position.z = map(float, spec.position)
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = float(spec.scale_m)
            m.color.r, m.color.g, m.color.b, m.color.a = spec.rgba
            markers.markers.append(m)
        return markers


def main(args=None):
    """Console entry point ``twin_anomaly``."""
    return run_nodes([lambda _nodes: TwinAnomalyNode()], args)


if __name__ == '__main__':
    sys.exit(main())
