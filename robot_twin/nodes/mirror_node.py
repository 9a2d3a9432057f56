"""
The ``twin_sim`` node (mirror): robot samples in, predictions and residuals out, one DDS hop.

Subscribes to the robot's /joint_states and wrench topic itself (through the bridge's
validation core, :class:`twin_bridge.intake.RobotIntake`) so that a residual is a single hop
from the robot's sample, and publishes, each with the header stamp of the robot sample it was
computed from:

- /twin/predicted_joint_states  one-step position/velocity prediction and predicted effort
- /twin/residuals               measured minus predicted (position, velocity, effort)
- /twin/predicted_wrench, /twin/wrench_residual   in the force-torque sensor frame
"""
import gc
import sys

from builtin_interfaces.msg import Time
from geometry_msgs.msg import WrenchStamped
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from robot_twin.config import declare_node_parameters
from robot_twin.nodes.messages import fill_joint_state, fill_wrench, joint_state_to_arrays, \
    make_joint_state, make_wrench, wrench_to_array
from robot_twin.nodes.runner import run_node
from sensor_msgs.msg import JointState
from twin_bridge.intake import RobotIntake
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from twin_sim.resources import urdf_or_builtin
from twin_sim.urdf_model import Payload, RobotModel
try:
    from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
except ImportError:   # Humble
    from rclpy.qos_event import PublisherEventCallbacks, SubscriptionEventCallbacks

# QoS: the robot's sensor streams are best-effort (a late sample is worth nothing); our own
# outputs are reliable with a short queue, so best-effort and reliable readers both match.
SENSOR_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
OUTPUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
# No QoS-event handlers (incompatible QoS / type warnings) on these 1 kHz endpoints: every
# handler is one more entity in each executor wait, and the default executor rebuilds its wait
# set before every callback (about 25 us less per wait without the 12 handlers; with the reused
# output messages below, twin_sim needs about 10 % less CPU per robot sample,
# benchmarks/bench_mirror.py). A robot stream of the wrong type is still reported by
# twin_bridge, which subscribes to the same topics with the handlers, and a reader of /twin/*
# with incompatible QoS is warned on its own side.
NO_PUB_EVENTS = PublisherEventCallbacks(use_default_callbacks=False)
NO_SUB_EVENTS = SubscriptionEventCallbacks(use_default_callbacks=False)


def load_twin_model(params):
    """Build the RobotModel of the twin from node parameters (URDF + identified file)."""
    model = RobotModel.from_urdf(urdf_or_builtin(params['urdf_path']))
    if params['dynamics_params_file']:
        model.load_parameters(params['dynamics_params_file'])
    if params['payload_mass_kg'] > 0.0:
        model = model.with_payload(Payload(params['payload_mass_kg']))
    return model


class TwinMirrorNode(Node):
    """Follow the robot's samples and publish the twin's predictions and residuals."""

    def __init__(self, **kwargs):
        super().__init__('twin_sim', **kwargs)
        node = self
        params = self.params = declare_node_parameters(self, 'twin_sim')
        model = self.model = load_twin_model(params)
        self.names = list(model.joint_names)
        self.ft_frame = model.ft_frame or ''
        with_wrench = bool(params['wrench_topic']) and model.ft_frame is not None
        self.intake = RobotIntake(
            self.names, unknown_joints=params['unknown_joints'],
            max_future_s=params['max_future_s'], with_wrench=with_wrench,
            joint_states_topic=params['joint_states_topic'], wrench_topic=params['wrench_topic'])
        self.mirror = Mirror(Predictor(model))
        pub = (lambda kind, topic: node.create_publisher(kind, topic, OUTPUT_QOS,
                                                         event_callbacks=NO_PUB_EVENTS))
        self.pub_predicted = pub(JointState, '/twin/predicted_joint_states')
        self.pub_residuals = pub(JointState, '/twin/residuals')
        node.create_subscription(JointState, params['joint_states_topic'], self.on_joint_state,
                                 SENSOR_QOS, event_callbacks=NO_SUB_EVENTS)
        if with_wrench:
            self.pub_pred_wrench = pub(WrenchStamped, '/twin/predicted_wrench')
            self.pub_wrench_res = pub(WrenchStamped, '/twin/wrench_residual')
            node.create_subscription(WrenchStamped, params['wrench_topic'], self.on_wrench,
                                     SENSOR_QOS, event_callbacks=NO_SUB_EVENTS)
        self.rejected = 0
        # one message per output, refilled for every sample (publish serializes it at once):
        # building four messages per sample cost about 30 us
        self._msg_predicted = make_joint_state(Time(), self.names)
        self._msg_residuals = make_joint_state(Time(), self.names)
        self._msg_pred_wrench = make_wrench(Time(), self.ft_frame, [0.0] * 6)
        self._msg_wrench_res = make_wrench(Time(), self.ft_frame, [0.0] * 6)
        # What start-up built (model, node, modules: ~85k objects) lives as long as the process:
        # take it out of the collector's reach, so that a full collection does not stall the
        # 1 kHz callbacks (measured 26-108 ms every half minute or so: a burst of dropped
        # samples behind a 10-deep queue).
        gc.freeze()

    def _now(self):
        return self.get_clock().now().nanoseconds * 1e-9

    def _reject(self, reason):
        self.rejected += 1
        self.get_logger().warning(f'{reason} (sample ignored)', throttle_duration_sec=2.0)

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
        self.pub_predicted.publish(fill_joint_state(
            self._msg_predicted, header_stamp, result.predicted_position,
            result.predicted_velocity, result.predicted_effort))
        self.pub_residuals.publish(fill_joint_state(
            self._msg_residuals, header_stamp, result.position_residual,
            result.velocity_residual, result.effort_residual))

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
        stamp = msg.header.stamp
        self.pub_pred_wrench.publish(fill_wrench(self._msg_pred_wrench, stamp, predicted))
        self.pub_wrench_res.publish(fill_wrench(self._msg_wrench_res, stamp, residual))


def main(args=None):
    """Console entry point ``twin_sim``."""
    return run_node(TwinMirrorNode, args)


if __name__ == '__main__':
    sys.exit(main())
