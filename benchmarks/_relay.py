"""
The floor under the twin's CPU figure: a node that relays the robot's streams and computes nothing.

Issue 13 gives a reference point measured beside a real arm: a node that takes /joint_states and
the force-torque wrench with serialized subscriptions on the EventsExecutor and publishes the
received bytes again costs 0.12 core. This is that node, run by ``bench_twin.py --config relay``
in the twin's place, so that the same harness, on the same machine and in the same run
conditions, says what taking two 1 kHz streams from DDS and delivering two to a subscriber costs
here. The twin's own work is what it costs above this.

It uses the twin's own pieces for everything that is not work on the samples: the QoS profiles
of ``robot_twin.nodes.qos`` (robot streams in, /twin/residuals and /twin/wrench_residual out,
lean endpoints) and the executor and spin loop of ``robot_twin.nodes.runner``. The received
JointState bytes go out unchanged on /twin/residuals (same type, so the receiver reads the stamps
as it does the twin's), the wrench bytes on /twin/wrench_residual.

Run by bench_twin.py with ``robot_twin.ros_env.localhost_env``; not meant to be used alone.
"""
import sys

from geometry_msgs.msg import WrenchStamped
from rclpy.node import Node
from robot_twin.nodes import qos
from robot_twin.nodes.runner import run_nodes
from sensor_msgs.msg import JointState


class RelayNode(Node):
    """Publish every serialized /joint_states and wrench message again, unchanged."""

    def __init__(self):
        super().__init__('twin_relay')
        joints = self.create_publisher(JointState, '/twin/residuals', qos.STREAM_OUT,
                                       event_callbacks=qos.LEAN_PUBLISHER)
        wrench = self.create_publisher(WrenchStamped, '/twin/wrench_residual', qos.STREAM_OUT,
                                       event_callbacks=qos.LEAN_PUBLISHER)
        self.create_subscription(JointState, '/joint_states', joints.publish, qos.SENSOR_IN,
                                 raw=True, event_callbacks=qos.LEAN_SUBSCRIPTION)
        self.create_subscription(WrenchStamped, '/ft_sensor/wrench', wrench.publish,
                                 qos.SENSOR_IN, raw=True, event_callbacks=qos.LEAN_SUBSCRIPTION)


if __name__ == '__main__':
    sys.exit(run_nodes([lambda _nodes: RelayNode()]))
