"""
The ``demo_controller`` node: the demo's stand-in for the robot's own controller.

Sends a smooth periodic motion (:class:`twin_sim.trajectory.DemoMotion`, kept within
``amplitude_fraction`` of the position, velocity and effort limits) at ``rate_hz`` on one of the
command interfaces a ros2_control arm offers.
"""
import sys

from rclpy.node import Node
from robot_twin.nodes import qos
from robot_twin.nodes.messages import COMMAND_INTERFACES, make_joint_state, trajectory_msg
from robot_twin.nodes.params import declare_node_parameters
from robot_twin.nodes.runner import run_node
from std_msgs.msg import Float64MultiArray
from twin_sim.resources import urdf_or_builtin
from twin_sim.trajectory import DemoMotion
from twin_sim.urdf_model import RobotModel


class DemoControllerNode(Node):
    """Stream a limit-respecting demo motion to the robot."""

    def __init__(self, name='demo_controller', **kwargs):
        super().__init__(name, **kwargs)
        p = declare_node_parameters(self, 'demo_controller')
        model = RobotModel.from_urdf(urdf_or_builtin(p['urdf_path']))
        self.names = list(model.joint_names)
        self.motion = DemoMotion.from_model(model, fraction=p['amplitude_fraction'],
                                            period_s=p['period_s'])
        self.interface = p['interface']
        topic, msg_type = COMMAND_INTERFACES[self.interface]
        self.pub = self.create_publisher(msg_type, topic, qos.COMMAND)
        self.period = 1.0 / p['rate_hz']
        self.t0 = None
        self.create_timer(self.period, self.tick)

    def tick(self):
        """Send the motion's set-point for now (plus one period for trajectories)."""
        now = self.get_clock().now()
        t = now.nanoseconds * 1e-9
        if self.t0 is None:
            self.t0 = t
        q, qd, _qdd = self.motion.sample(t - self.t0)
        if self.interface == 'joint_command':
            self.pub.publish(make_joint_state(now.to_msg(), self.names, q, qd))
        elif self.interface == 'forward_position':
            self.pub.publish(Float64MultiArray(data=[float(v) for v in q]))
        else:
            q1, qd1, _ = self.motion.sample(t - self.t0 + self.period)
            self.pub.publish(trajectory_msg(self.names, [(self.period, q1, qd1)]))


def main(args=None):
    """Console entry point ``demo_controller``."""
    return run_node(DemoControllerNode, args)


if __name__ == '__main__':
    sys.exit(main())
