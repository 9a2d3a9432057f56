"""twin_sim in mirror mode: robot samples in, predictions and residuals out, one DDS hop.

Subscribes to the robot's /joint_states and wrench topic itself (through the bridge's
validation core, :class:`twin_bridge.intake.RobotIntake`) so that a residual is a single hop
from the robot's sample, and publishes, each with the header stamp of the robot sample it was
computed from:

- /twin/predicted_joint_states  one-step position/velocity prediction and predicted effort
- /twin/residuals               measured minus predicted (position, velocity, effort)
- /twin/predicted_wrench, /twin/wrench_residual   in the force-torque sensor frame
"""
import numpy as np
from rclpy.qos import QoSProfile, ReliabilityPolicy

from geometry_msgs.msg import WrenchStamped
from sensor_msgs.msg import JointState

from robot_twin.msg_conversions import joint_state_to_arrays, make_joint_state, make_wrench, \
    wrench_to_array
from twin_bridge.intake import RobotIntake
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor

# QoS: the robot's sensor streams are best-effort (a late sample is worth nothing); our own
# outputs are reliable with a short queue, so best-effort and reliable readers both match.
SENSOR_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
OUTPUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


class MirrorRole:
    """The mirror-mode half of :class:`twin_sim.sim_node.TwinSimNode`."""

    def __init__(self, node, model, params):
        self.node = node
        self.names = list(model.joint_names)
        self.ft_frame = model.ft_frame or ''
        with_wrench = bool(params['wrench_topic']) and model.ft_frame is not None
        self.intake = RobotIntake(
            self.names, unknown_joints=params['unknown_joints'],
            max_future_s=params['max_future_s'], with_wrench=with_wrench,
            joint_states_topic=params['joint_states_topic'], wrench_topic=params['wrench_topic'])
        self.mirror = Mirror(Predictor(model))
        self.pub_predicted = node.create_publisher(
            JointState, '/twin/predicted_joint_states', OUTPUT_QOS)
        self.pub_residuals = node.create_publisher(JointState, '/twin/residuals', OUTPUT_QOS)
        node.create_subscription(JointState, params['joint_states_topic'], self.on_joint_state,
                                 SENSOR_QOS)
        if with_wrench:
            self.pub_pred_wrench = node.create_publisher(
                WrenchStamped, '/twin/predicted_wrench', OUTPUT_QOS)
            self.pub_wrench_res = node.create_publisher(
                WrenchStamped, '/twin/wrench_residual', OUTPUT_QOS)
            node.create_subscription(WrenchStamped, params['wrench_topic'], self.on_wrench,
                                     SENSOR_QOS)
        self.rejected = 0

    def _now(self):
        return self.node.get_clock().now().nanoseconds * 1e-9

    def _reject(self, reason):
        self.rejected += 1
        self.node.get_logger().warning(f'{reason} (sample ignored)', throttle_duration_sec=2.0)

    def on_joint_state(self, msg):
        """Validate, map, predict and publish for one robot sample."""
        names, pos, vel, eff, stamp = joint_state_to_arrays(msg)
        reason = self.intake.joint_state(names, pos, vel, eff, stamp, self._now())
        if reason is not None:
            self._reject(reason)
            return
        mapper = self.intake.mapper
        if not mapper.all_received:
            return   # a partial robot: wait until every model joint has been heard from
        qd = mapper.velocity if not np.isnan(mapper.velocity).any() else None
        result = self.mirror.update(stamp, mapper.position, qd, mapper.effort)
        if result is None:
            return
        header_stamp = msg.header.stamp
        self.pub_predicted.publish(make_joint_state(
            header_stamp, self.names, result.predicted_position, result.predicted_velocity,
            result.predicted_effort))
        self.pub_residuals.publish(make_joint_state(
            header_stamp, self.names, result.position_residual, result.velocity_residual,
            result.effort_residual))

    def on_wrench(self, msg):
        """Validate one wrench sample and publish the predicted wrench and its residual."""
        wrench, stamp = wrench_to_array(msg)
        reason = self.intake.wrench_sample(wrench, stamp, self._now())
        if reason is not None:
            self._reject(reason)
            return
        out = self.mirror.wrench_residual(wrench, stamp)
        if out is None:
            return
        predicted, residual = out
        self.pub_pred_wrench.publish(make_wrench(msg.header.stamp, self.ft_frame, predicted))
        self.pub_wrench_res.publish(make_wrench(msg.header.stamp, self.ft_frame, residual))

    def close(self):
        """Nothing to stop: mirror mode runs in the executor's callbacks only."""
