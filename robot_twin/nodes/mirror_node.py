"""
The ``twin_sim`` node (mirror): each robot sample in, the twin's prediction and residuals out.

For every accepted robot sample it runs :class:`twin_sim.mirror.Mirror` (inverse dynamics +
friction + force-torque wrench, one-step forward dynamics) and publishes, with the header stamp
of the robot sample it was computed from:

- /twin/residuals               measured minus predicted (position, velocity, effort), every
                                sample
- /twin/wrench_residual         in the force-torque sensor frame, every wrench sample
- /twin/predicted_joint_states  predicted position, velocity and effort, at ``display_rate_hz``
- /twin/predicted_wrench        at ``display_rate_hz``

In the one-process twin the samples come from ``twin_bridge`` by a function call and the
results go on to ``twin_anomaly`` the same way; started on its own, the node reads the robot's
topics itself (:class:`robot_twin.nodes.robot_input.RobotInput`). A result that is not finite is
never published (counted as ``nonfinite_results``). The twin predicts efforts and compares them
with the measured ones: while the robot has given no effort for some joint, its samples give no
result (counted as ``samples_without_effort``, with a warning naming the joints). Both guards are
the mirror's own (:meth:`twin_sim.mirror.Mirror.guarded_update`), which the offline replay runs
too.
"""
import math
import sys

from geometry_msgs.msg import InertiaStamped, WrenchStamped
from rclpy.node import Node
from robot_twin.nodes import qos
from robot_twin.nodes.cdr import JointStateWriter, WrenchWriter
from robot_twin.nodes.messages import payload_from_msg
from robot_twin.nodes.params import declare_node_parameters
from robot_twin.nodes.robot_input import robot_model, RobotInput, wrench_outputs
from robot_twin.nodes.runner import run_nodes
from sensor_msgs.msg import JointState
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor


class DisplayRate:
    """
    Decimate a stream to about ``rate_hz`` on a grid of stamps (the same on every replay).

    A sample is shown when it is the first in a new period of the grid ``floor(t / period)``:
    every decimator of one rate picks the same robot samples, whenever it started, so that
    /twin/joint_states and /twin/predicted_joint_states carry the same stamps.
    """

    def __init__(self, rate_hz):
        self.period = 1.0 / rate_hz
        self._slot = None

    def due(self, t):
        """Whether the sample stamped ``t`` (s) is the first of its display period."""
        if not math.isfinite(t):
            return False
        slot = math.floor(t / self.period)
        if slot == self._slot:
            return False
        self._slot = slot                       # a new period (or stamps went back)
        return True


class TwinMirrorNode(Node):
    """
    Follow the robot's samples and publish the twin's predictions and residuals.

    Parameters
    ----------
    name : str
        Node name.
    source : RobotInput, optional
        Where accepted samples come from in the one-process twin (``twin_bridge``'s); None =
        subscribe to the robot's topics.

    Attributes
    ----------
    result_listeners : list of callable
        ``f(sample, result)`` for each sample with efforts, after its result (a
        :class:`~twin_sim.mirror.MirrorResult`) is published; ``result`` is None when the
        mirror gave none (a stream that starts or restarts, a result that was not finite).
    wrench_listeners : list of callable
        ``f(t, residual)`` after each published wrench residual (6,).

    """

    def __init__(self, name='twin_sim', source=None, **kwargs):
        super().__init__(name, **kwargs)
        p = self.params = declare_node_parameters(self, 'twin_sim')
        model = self.model = robot_model(p)
        self.names = list(model.joint_names)
        # (the samples' arrays are the intake's copies for that sample: kept without a copy)
        self.mirror = Mirror(Predictor(model), copy_inputs=False)
        self.result_listeners = []
        self.wrench_listeners = []
        self.payload_refused = 0
        if source is None:
            source = self.input = RobotInput(self, model, p)
            # on its own, the node takes the payload itself (in the one-process twin the
            # anomaly node hands it the model with the payload, calibrated)
            self.create_subscription(InertiaStamped, '/twin/payload', self.on_payload,
                                     qos.LATCHED)
        self.source = source
        source.sample_listeners.append(self.take_sample)
        self.display = DisplayRate(p['display_rate_hz'])

        def publisher(kind, topic):
            return self.create_publisher(kind, topic, qos.STREAM_OUT,
                                         event_callbacks=qos.LEAN_PUBLISHER,
                                         qos_overriding_options=qos.OVERRIDABLE)
        self.pub_residuals = publisher(JointState, '/twin/residuals')
        self.pub_predicted = publisher(JointState, '/twin/predicted_joint_states')
        self._residuals = JointStateWriter(self.names)
        self._predicted = JointStateWriter(self.names)
        if wrench_outputs(model, p)[0]:
            source.wrench_listeners.append(self.take_wrench)
            self.pub_wrench_residual = publisher(WrenchStamped, '/twin/wrench_residual')
            self.pub_predicted_wrench = publisher(WrenchStamped, '/twin/predicted_wrench')
            self._wrench_residual = WrenchWriter(model.ft_frame)
            self._predicted_wrench = WrenchWriter(model.ft_frame)
            self.wrench_display = DisplayRate(p['display_rate_hz'])
        self.get_logger().info(f'mirror of {len(self.names)} joints ({", ".join(self.names)}) '
                               f'from {model.urdf_path}')

    @property
    def nonfinite_results(self):
        """Joint and wrench results that were not finite (never published; the mirror's)."""
        return self.mirror.nonfinite_results

    def set_model(self, model):
        """
        Predict with ``model`` (the commissioned calibration, a payload) from the next sample on.

        The mirror goes on without a restart: that sample gets its residual too.
        """
        self.mirror.set_predictor(Predictor(model))

    def on_payload(self, msg):
        """Predict with what the robot carries from now on (/twin/payload, InertiaStamped)."""
        try:
            payload = payload_from_msg(msg, self.model)
        except ValueError as exc:
            self.payload_refused += 1
            self.get_logger().warning(f'/twin/payload refused: {exc}')
            return
        if payload.same_as(self.mirror.predictor.model.payload):
            return                                   # sent again: nothing changes
        model = self.model.with_payload(payload)
        self.set_model(model)
        self.get_logger().info(f'the mirror predicts with a payload of {model.payload.mass:g} kg')

    def take_sample(self, sample):
        """
        Predict for one accepted robot sample; publish; hand the sample and result on.

        The sample goes on to the listeners even when the mirror gave no result for it (a
        stream that starts or restarts, a result that was not finite): the detectors judge
        the robot's stream from its samples, and a sample withheld would read as one the
        robot never sent (``joint_states.missing``).
        """
        mirrored, result = self.mirror.guarded_update(sample.t, sample.position,
                                                      sample.velocity, sample.effort)
        if not mirrored:
            self._without_effort()
            return
        if result is not None:
            self._publish(sample, result)
        for listener in self.result_listeners:
            listener(sample, result)

    def _publish(self, sample, result):
        """Publish the residuals (and, at the display rate, the prediction) of one sample."""
        sec, nanosec = sample.stamp
        self.pub_residuals.publish(self._residuals.write(
            sec, nanosec, result.position_residual, result.velocity_residual,
            result.effort_residual))
        if self.display.due(sample.t):
            self.pub_predicted.publish(self._predicted.write(
                sec, nanosec, result.predicted_position, result.predicted_velocity,
                result.predicted_effort))

    def _without_effort(self):
        """Say which joints lack measured effort (at the first sample without it)."""
        if self.mirror.samples_without_effort == 1:
            joints = self.source.intake.mapper.never_received('effort')
            self.get_logger().warning(
                f'the robot gives no effort for {", ".join(joints) or "some joints"}: the twin '
                'compares predicted with measured efforts, so there are no residuals until '
                'its joint states carry them')

    def take_wrench(self, t, stamp, wrench):
        """Publish the predicted wrench and the residual for one accepted wrench sample."""
        out = self.mirror.guarded_wrench_residual(wrench, t)
        if out is None:
            return
        predicted, residual = out
        self.pub_wrench_residual.publish(self._wrench_residual.write(*stamp, residual))
        if self.wrench_display.due(t):
            self.pub_predicted_wrench.publish(self._predicted_wrench.write(*stamp, predicted))
        for listener in self.wrench_listeners:
            listener(t, residual)

    def status_values(self):
        """Counters for /twin/status (the bridge adds them in the one-process twin)."""
        return self.mirror.counters()


def main(args=None):
    """Console entry point ``twin_sim``."""
    return run_nodes([lambda _nodes: TwinMirrorNode()], args)


if __name__ == '__main__':
    sys.exit(main())
