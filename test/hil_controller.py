"""
A lock-step controller for HIL tests and benchmarks: one command per joint-state sample.

Answers every new /joint_states sample (by stamp; a resent sample is not answered twice) with a
/joint_command (position + velocity of :class:`twin_sim.trajectory.DemoMotion` one plant step
after the sample's stamp), as a ros2_control controller on a topic-based hardware interface
does. The commands depend on the stamps only, so two runs of a deterministic plant give the same
commands. ``--duration`` counts from the first sample's stamp (a real-time plant's stamps are on
the wall-clock epoch): at the first sample that far on it stops answering and prints
``DONE <stamp> <commands sent>``.

``--rate-hz`` is the controller's rate: a lock-step plant's ``publish_rate_hz`` over its
``lockstep_steps_per_command`` (the plant sends one sample per command, see README).

Run with ``robot_twin.ros_env.localhost_env``::

    python test/hil_controller.py --duration 3 --rate-hz 1000
"""
import argparse
import sys

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from robot_twin.nodes.messages import make_joint_state
from sensor_msgs.msg import JointState
from twin_sim.resources import builtin_urdf
from twin_sim.trajectory import DemoMotion
from twin_sim.urdf_model import RobotModel

QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


class LockstepController(Node):
    """Command the demo motion, one command per new robot sample."""

    def __init__(self, duration_s, rate_hz, wait_subscribers=1):
        super().__init__('hil_controller')
        model = RobotModel.from_urdf(builtin_urdf())
        self.names = list(model.joint_names)
        self.motion = DemoMotion.from_model(model, fraction=0.3, period_s=2.0)
        self.dt = 1.0 / rate_hz
        self.duration_ns = int(round(duration_s * 1e9))
        self.last_ns = -1
        self.first_ns = None
        self.sent = 0
        self.done = False
        self.pub = self.create_publisher(JointState, '/joint_command', QOS)
        self.wait_subscribers = wait_subscribers
        self.sub = None
        self.waiting = self.create_timer(0.05, self.subscribe_when_heard)

    def subscribe_when_heard(self):
        """Read the robot once our commands have every expected reader (plant, recorder)."""
        if self.pub.get_subscription_count() >= self.wait_subscribers:
            self.sub = self.create_subscription(JointState, '/joint_states', self.on_state, QOS)
            self.destroy_timer(self.waiting)
            print('LISTENING', flush=True)

    def on_state(self, msg):
        """Answer a new sample with the set-point one step after its stamp."""
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        if stamp_ns <= self.last_ns or self.done:
            return
        self.last_ns = stamp_ns
        if self.first_ns is None:
            self.first_ns = stamp_ns
        if stamp_ns - self.first_ns >= self.duration_ns:
            self.done = True
            print(f'DONE {stamp_ns} {self.sent}', flush=True)
            return
        q, qd, _ = self.motion.sample(stamp_ns * 1e-9 + self.dt)
        self.pub.publish(make_joint_state(msg.header.stamp, self.names, q, qd))
        self.sent += 1


def main(argv=None):
    """Run the controller until SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--duration', type=float, required=True,
                        help='stop this long after the first sample (by stamps), s')
    parser.add_argument('--rate-hz', type=float, default=1000.0,
                        help="the controller's rate: the plant's over its steps per command")
    parser.add_argument('--wait-subscribers', type=int, default=1, metavar='N',
                        help='read the robot only once N nodes subscribe to our commands')
    args = parser.parse_args(argv)
    rclpy.init()
    node = LockstepController(args.duration, args.rate_hz, args.wait_subscribers)
    print('READY', flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
