"""
The ``twin_bridge`` node: the twin's door to the robot, in both directions.

In: /joint_states and the wrench topic, validated and mapped by
:class:`twin_bridge.intake.RobotIntake`; accepted joint states are republished on
/twin/joint_states; /twin/status (DiagnosticArray) carries sync state, latency, drift, stale
streams and every rejection counter.

Out: when ``corrective_actions.enabled`` is true, an ERROR on /twin/anomaly makes
:class:`twin_bridge.corrective.CorrectivePolicy` propose a command, which
:class:`twin_bridge.governor.SafetyGovernor` clamps to the URDF limits (or refuses: stale
state, rate limit, ...), which :class:`twin_bridge.audit.AuditLog` records, and which only then
goes out on the configured command interface.
"""
import sys

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from robot_twin.config import declare_node_parameters
from robot_twin.nodes.messages import joint_state_to_arrays, make_joint_state, make_status, \
    status_values, trajectory_msg, wrench_to_array
from robot_twin.nodes.runner import run_node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory
from twin_bridge.audit import AuditLog
from twin_bridge.corrective import AnomalyEvent, CorrectivePolicy
from twin_bridge.governor import JointLimits, SafetyGovernor, TrajectoryCommand
from twin_bridge.intake import RobotIntake
from twin_sim.resources import urdf_or_builtin
from twin_sim.urdf_model import RobotModel

# QoS: robot sensor streams best-effort; our outputs and commands reliable; anomaly state is
# latched (transient-local) by twin_anomaly, so we read it the same way.
SENSOR_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
OUTPUT_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
DEFAULT_COMMAND_TOPICS = {
    'trajectory': '/joint_trajectory_controller/joint_trajectory',
    'forward_position': '/forward_position_controller/commands',
    'joint_command': '/joint_command',
}


class TwinBridgeNode(Node):
    """Mirror the robot's streams into the twin and govern corrective commands."""

    def __init__(self, **kwargs):
        super().__init__('twin_bridge', **kwargs)
        p = self.params = declare_node_parameters(self, 'twin_bridge')
        model = RobotModel.from_urdf(urdf_or_builtin(p['urdf_path']))
        self.names = list(model.joint_names)
        self.intake = RobotIntake(
            self.names, unknown_joints=p['unknown_joints'], max_future_s=p['max_future_s'],
            stale_timeout_s=p['stale_timeout_s'], with_wrench=bool(p['wrench_topic']),
            joint_states_topic=p['joint_states_topic'], wrench_topic=p['wrench_topic'])
        self.governor = SafetyGovernor(
            JointLimits.from_model(model),
            max_rate_hz=p['corrective_actions.max_rate_hz'],
            position_margin_rad=p['corrective_actions.position_margin_rad'],
            velocity_scale=p['corrective_actions.velocity_scale'])
        self.policy = CorrectivePolicy()
        self.audit = AuditLog(p['audit_log_path']) if p['audit_log_path'] else None
        self.interface = p['corrective_actions.interface']
        topic = p['corrective_actions.topic'] or DEFAULT_COMMAND_TOPICS[self.interface]
        msg_type = {'trajectory': JointTrajectory, 'forward_position': Float64MultiArray,
                    'joint_command': JointState}[self.interface]
        self.pub_command = self.create_publisher(msg_type, topic, COMMAND_QOS)
        self.pub_mirror = self.create_publisher(JointState, '/twin/joint_states', OUTPUT_QOS)
        self.pub_status = self.create_publisher(DiagnosticArray, '/twin/status', OUTPUT_QOS)
        self.create_subscription(JointState, p['joint_states_topic'], self.on_joint_state,
                                 SENSOR_QOS)
        if p['wrench_topic']:
            self.create_subscription(WrenchStamped, p['wrench_topic'], self.on_wrench,
                                     SENSOR_QOS)
        self.create_subscription(DiagnosticArray, '/twin/anomaly', self.on_anomaly, LATCHED_QOS)
        self.create_timer(1.0 / p['status_rate_hz'], self.publish_status)
        self.commands_sent = 0
        self.last_event = None     # latest robot-level anomaly (AnomalyEvent)

    def _now(self):
        return self.get_clock().now().nanoseconds * 1e-9

    def on_joint_state(self, msg):
        """Validate and map one robot sample; republish it on /twin/joint_states."""
        names, pos, vel, eff, stamp = joint_state_to_arrays(msg)
        reason = self.intake.joint_state(names, pos, vel, eff, stamp, self._now())
        if reason is not None:
            self.get_logger().warning(reason, throttle_duration_sec=2.0)
            return
        m = self.intake.mapper
        if m.all_received:
            self.pub_mirror.publish(make_joint_state(
                msg.header.stamp, self.names, m.position, m.velocity, m.effort))

    def on_wrench(self, msg):
        """Validate one force-torque sample (watchdog and counters)."""
        wrench, stamp = wrench_to_array(msg)
        reason = self.intake.wrench_sample(wrench, stamp, self._now())
        if reason is not None:
            self.get_logger().warning(reason, throttle_duration_sec=2.0)

    def on_anomaly(self, msg):
        """Act on the robot-level anomaly status, if corrective actions are enabled."""
        robot = next((s for s in msg.status if s.name == 'twin/anomaly/robot'), None)
        if robot is None:
            return
        values = status_values(robot)
        level = {0: 'OK', 1: 'WARN', 2: 'ERROR'}.get(robot.level[0], 'ERROR')
        self.last_event = AnomalyEvent(
            level=level, joint=values.get('joint', ''),
            fault_type=values.get('fault_type', 'unknown'), score=_float(values.get('score')),
            since=_float(values.get('since')))
        self.act_on_anomaly()

    def act_on_anomaly(self):
        """Let the policy propose for the latest anomaly (new episode, or a due retry)."""
        if self.last_event is None or not self.get_parameter('corrective_actions.enabled').value:
            return
        proposal = self.policy.propose(self.last_event, self.intake.mapper.position,
                                       self._now())
        if proposal is not None:
            self.send_corrective(proposal)

    def send_corrective(self, proposal):
        """Govern, audit and (if allowed) publish one corrective proposal."""
        now = self._now()
        command = TrajectoryCommand(points=[(proposal.time_from_start_s, proposal.positions,
                                             proposal.velocities)], joints=self.names)
        decision = self.governor.govern(command, now, self.intake.state_ok(now),
                                        self.intake.mapper.position)
        if self.audit is not None:
            self.audit.record(decision, stamp=float(np.nanmax(self.intake.mapper.stamp)),
                              anomaly=proposal.anomaly)
        if not decision.allowed:
            self.get_logger().warning(f'corrective command refused: {decision.reasons}')
            if decision.cause in ('stale', 'rate', 'no_state'):
                self.policy.refused(now)     # passing reason: try again later in this episode
            return
        self.pub_command.publish(self._command_msg(decision.command))
        self.commands_sent += 1
        self.get_logger().warning(f'corrective command sent ({proposal.reason}); '
                                  f'governor: {decision.reasons or "within limits"}')

    def _command_msg(self, command):
        joints = list(command.joints)
        last = command.points[-1]
        if self.interface == 'trajectory':
            return trajectory_msg(joints, command.points)
        if self.interface == 'forward_position':
            return Float64MultiArray(data=[float(v) for v in last[1]])
        msg = make_joint_state(self.get_clock().now().to_msg(), joints, position=last[1])
        return msg

    def publish_status(self):
        """
        Publish /twin/status: sync state, latency, drift, staleness and counters.

        Also the moment a corrective proposal refused for a passing reason is retried.
        """
        self.act_on_anomaly()
        now = self._now()
        intake = self.intake
        values = dict(intake.watchdog.status(now))
        values.update(intake.timesync.status())
        values.update(intake.counters())
        values.update({f'governor.{k}': v for k, v in self.governor.counters.items()})
        values['commands_sent'] = self.commands_sent
        missing = intake.joints.missing_joints(now)
        values['missing_joints'] = ','.join(missing)
        ok = intake.state_ok(now)
        level = 'OK' if ok else ('STALE' if intake.mapper.all_received else 'WARN')
        message = 'in sync' if ok else ('STALE: ' + ', '.join(
            s for s, st in intake.watchdog.check(now).items() if st != 'OK')
            if intake.mapper.all_received else 'waiting for joints: ' + ', '.join(missing))
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status.append(make_status('twin/status/sync', level, message, values))
        self.pub_status.publish(array)

    def destroy_node(self):
        """Close the audit log before the node goes."""
        if getattr(self, 'audit', None) is not None:   # None too if __init__ failed early
            self.audit.close()
        return super().destroy_node()


def _float(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return float('nan')


def main(args=None):
    """Console entry point ``twin_bridge``."""
    return run_node(TwinBridgeNode, args)


if __name__ == '__main__':
    sys.exit(main())
