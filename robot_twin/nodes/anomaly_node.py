"""
The ``twin_anomaly`` node: residuals in, anomaly state out.

Feeds every /twin/residuals sample (and /twin/wrench_residual) into
:class:`twin_anomaly.detector.ResidualDetector`, which first commissions (learns normal residual
levels for ``commissioning_duration_s`` of stamp time, level OK, message ``commissioning``),
saves the learned thresholds, and then monitors. At ``publish_rate_hz`` it publishes the
detector's report as /twin/anomaly (also on /diagnostics), /twin/anomaly_score and
/twin/markers.
"""
import math
from pathlib import Path
import sys

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from robot_twin.config import declare_node_parameters
from robot_twin.nodes.messages import make_status, stamp_to_sec, wrench_to_array
from robot_twin.nodes.runner import run_node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64
from twin_anomaly.detector import ResidualDetector, ThresholdsError
from twin_anomaly.report import marker_specs, status_entries
from twin_bridge.mapping import JointMapper
from twin_sim.resources import urdf_or_builtin
from twin_sim.urdf_model import RobotModel
from visualization_msgs.msg import Marker, MarkerArray

# QoS: residual streams as sensor data (best-effort reader matches our reliable writers);
# anomaly state latched (reliable, transient-local) so late rviz/loggers see the current state.
STREAM_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
PLAIN_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
CLOCK_JUMP_S = 1.0   # stamps this far back mean a restarted robot clock, not a late sample


def default_thresholds_file(model):
    """~/.ros/robot_twin/<robot>_thresholds.yaml, the default commissioning file."""
    robot = Path(model.urdf_path).stem
    return str(Path.home() / '.ros' / 'robot_twin' / f'{robot}_thresholds.yaml')


class TwinAnomalyNode(Node):
    """Commission, monitor and report twin residuals."""

    def __init__(self, **kwargs):
        super().__init__('twin_anomaly', **kwargs)
        p = self.params = declare_node_parameters(self, 'twin_anomaly')
        self.model = RobotModel.from_urdf(urdf_or_builtin(p['urdf_path']))
        self.names = list(self.model.joint_names)
        self.mapper = JointMapper(self.names, ignore_unknown=True)
        self.thresholds_file = p['thresholds_file'] or default_thresholds_file(self.model)
        config = {'commissioning_duration_s': p['commissioning_duration_s'],
                  'persistence_s': p['persistence_s']}
        self.detector = self._make_detector(config, p['recommission'])
        self.saved = self.detector.commissioned
        self.wrench_residual = None
        self.velocity = None
        self.pub_anomaly = self.create_publisher(DiagnosticArray, '/twin/anomaly', LATCHED_QOS)
        self.pub_diag = self.create_publisher(DiagnosticArray, '/diagnostics', PLAIN_QOS)
        self.pub_score = self.create_publisher(Float64, '/twin/anomaly_score', PLAIN_QOS)
        self.pub_markers = self.create_publisher(MarkerArray, '/twin/markers', PLAIN_QOS)
        self.create_subscription(JointState, '/twin/residuals', self.on_residuals, STREAM_QOS)
        self.create_subscription(JointState, '/twin/predicted_joint_states', self.on_predicted,
                                 STREAM_QOS)
        self.create_subscription(WrenchStamped, '/twin/wrench_residual', self.on_wrench,
                                 STREAM_QOS)
        self.create_timer(1.0 / p['publish_rate_hz'], self.publish)
        self.q_display = None
        self._last_t = None

    def _make_detector(self, config, recommission):
        path = Path(self.thresholds_file)
        if path.is_file() and not recommission:
            try:
                det = ResidualDetector.from_thresholds(path, self.names, **config)
                self.get_logger().info(f'loaded commissioned thresholds from {path}')
                return det
            except ThresholdsError as exc:
                self.get_logger().warning(f'{exc}; commissioning again')
        self.get_logger().info(
            f"commissioning for {config['commissioning_duration_s']:.1f} s of nominal motion; "
            f'thresholds will be saved to {path}')
        return ResidualDetector(self.names, **config)

    def on_predicted(self, msg):
        """Keep the latest predicted velocity (the friction pattern needs its sign)."""
        if len(msg.velocity) == len(self.names) and list(msg.name) == self.names:
            self.velocity = np.asarray(msg.velocity, dtype=float)
            self.q_display = np.asarray(msg.position, dtype=float)

    def on_wrench(self, msg):
        """Keep the latest wrench residual for the next joint sample."""
        self.wrench_residual, _ = wrench_to_array(msg)

    def on_residuals(self, msg):
        """Feed one residual sample (any joint order) to the detector."""
        names = list(msg.name)
        n = len(names)
        if n == 0 or len(msg.position) != n or len(msg.velocity) not in (0, n) \
                or len(msg.effort) not in (0, n):
            self.get_logger().warning('malformed /twin/residuals sample ignored',
                                      throttle_duration_sec=2.0)
            return
        fill = math.nan
        pos = self.mapper.to_model(names, msg.position, fill)
        vel = self.mapper.to_model(names, msg.velocity, fill) if len(msg.velocity) else None
        eff = self.mapper.to_model(names, msg.effort, fill) if len(msg.effort) else None
        t = stamp_to_sec(msg.header.stamp)
        if self._last_t is not None and t < self._last_t - CLOCK_JUMP_S:
            # the robot's clock went back (sim restarted, /twin/reset): a new stream
            self.get_logger().warning(f'residual stamps jumped back {self._last_t - t:.3f} s; '
                                      'restarting the detector (thresholds kept)')
            self.detector.reset()
        self._last_t = t
        self.detector.update(t, pos, vel, eff, self.wrench_residual, velocity=self.velocity)

    def publish(self):
        """Publish the detector's report; save thresholds once commissioning ends."""
        state = self.detector.report()
        if not self.saved and self.detector.commissioned:
            self.saved = True
            try:
                self.detector.save_thresholds(self.thresholds_file, urdf=self.model.urdf_path)
                self.get_logger().info(f'commissioning done; thresholds saved to '
                                       f'{self.thresholds_file}')
            except OSError as exc:
                self.get_logger().error(f'cannot save thresholds to {self.thresholds_file}: '
                                        f'{exc}')
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [make_status(e.name, e.level, e.message, e.values)
                        for e in status_entries(state, self.detector.config.warn_ratio)]
        self.pub_anomaly.publish(array)
        self.pub_diag.publish(array)
        self.pub_score.publish(Float64(data=float(state.score)))
        self.pub_markers.publish(self._markers(state, array.header.stamp))

    def _markers(self, state, stamp):
        markers = MarkerArray()
        if self.q_display is None or len(self.q_display) != len(self.names) \
                or not np.all(np.isfinite(self.q_display)):
            return markers
        origins = {j: self.model.frame_pose(self.q_display, j)[:3, 3] for j in self.names}
        for i, spec in enumerate(marker_specs(state, origins)):
            m = Marker()
            m.header.stamp = stamp
            m.header.frame_id = 'twin/base_link'
            m.ns, m.id, m.type, m.action = 'twin_anomaly', i, Marker.SPHERE, Marker.ADD
            m.pose.position.x, m.pose.position.y, m.pose.position.z = map(float, spec.position)
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = float(spec.scale_m)
            m.color.r, m.color.g, m.color.b, m.color.a = spec.rgba
            markers.markers.append(m)
        return markers


def main(args=None):
    """Console entry point ``twin_anomaly``."""
    return run_node(TwinAnomalyNode, args)


if __name__ == '__main__':
    sys.exit(main())
