"""
The ``twin_hub`` node: the twin's low-rate topics in, the outside-ROS interfaces out.

Subscribes to the twin's display topics only — /twin/joint_states and
/twin/predicted_joint_states (best-effort, so the twin's writers never wait for the hub, and
decoded at most ``decode_rate_hz`` times a second: the rest is dropped unread), /twin/status,
and the latched /twin/anomaly and /twin/rul — never to the 1 kHz /twin/residuals; the
residual it shows is measured minus predicted of the same robot sample. It writes everything
into a :class:`robot_twin.hub.state.TwinState`, and :class:`robot_twin.hub.server.Hub` serves
it (REST + dashboard, OPC UA, Foxglove) from threads of their own. The one write that needs ROS,
``corrective_actions.enabled`` on the bridge, goes through the bridge's parameter service.
"""
import os
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import InertiaStamped
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import GetParameters, SetParameters
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from robot_twin.config import ConfigError
from robot_twin.hub.pairing import DisplayPairing
from robot_twin.hub.server import Hub
from robot_twin.hub.settings import HUB_EXECUTABLE, HubSettings
from robot_twin.hub.state import TwinState
from robot_twin.nodes import qos
from robot_twin.nodes.cdr import stamp_of
from robot_twin.nodes.messages import level_name, maintenance_status, MAINTENANCE_TOPIC, \
    make_status, stamp_to_sec, status_values
from robot_twin.nodes.params import declare_node_parameters
from robot_twin.nodes.runner import run_node
from robot_twin.twin_model import robot_model
from sensor_msgs.msg import JointState

# QoS (robot_twin.nodes.qos): the display streams are read best-effort like sensor data (a late
# display sample is worth nothing, and the hub never makes a twin writer wait), /twin/status as
# published (reliable), anomaly and RUL latched; acknowledgements are published latched (the
# last few), so that the twin's lifecycle-log writer gets them even if it starts later.
ACK_QOS = qos.ACKNOWLEDGEMENTS
CORRECTIVE = 'corrective_actions.enabled'
SERVICE_TIMEOUT_S = 3.0


def cdr_stamp_ns(data):
    """Header stamp (ns) of a serialized message that starts with a std_msgs/Header."""
    sec, nanosec = stamp_of(data)
    return sec * 1_000_000_000 + nanosec


def lower_priority(increment):
    """
    Make every thread of this process ``increment`` nicer (Linux: priority is per thread).

    Threads started later inherit it from the thread that starts them.
    """
    for tid in os.listdir('/proc/self/task'):
        try:
            current = os.getpriority(os.PRIO_PROCESS, int(tid))
            os.setpriority(os.PRIO_PROCESS, int(tid), min(19, current + int(increment)))
        except (OSError, ValueError):
            pass                            # a thread that has just ended


def _statuses(msg):
    return [(s.name, level_name(s.level), s.message, status_values(s)) for s in msg.status]


class TwinHubNode(Node):
    """Feed the hub's store from the twin's low-rate topics and run its servers."""

    def __init__(self, **kwargs):
        super().__init__(HUB_EXECUTABLE, **kwargs)
        values = declare_node_parameters(self, HUB_EXECUTABLE)
        self.settings = settings = HubSettings.from_parameters(values)
        lower_priority(settings.nice)       # the twin's 1 kHz process goes first
        try:                                # the twin's joints: the URDF's less the locked
            model = robot_model({'urdf_path': settings.urdf_path,
                                 'locked_joints': settings.locked_joints}, with_dynamics=False)
        except ValueError as exc:
            raise ConfigError('twin_hub', [str(exc)]) from None
        self.state = TwinState(model.joint_names, model.robot_name or 'robot')
        self.pairing = DisplayPairing(int(1e9 / settings.decode_rate_hz))
        bridge = settings.bridge_node
        self.get_client = self.create_client(GetParameters, f'{bridge}/get_parameters')
        self.set_client = self.create_client(SetParameters, f'{bridge}/set_parameters')
        self.create_subscription(JointState, settings.measured_topic, self.on_measured,
                                 qos.DISPLAY_IN, raw=True)
        self.create_subscription(JointState, settings.predicted_topic, self.on_predicted,
                                 qos.DISPLAY_IN, raw=True)
        self.create_subscription(DiagnosticArray, '/twin/status', self.on_status, qos.STATUS)
        self.create_subscription(DiagnosticArray, '/twin/anomaly', self.on_anomaly, qos.LATCHED)
        self.create_subscription(DiagnosticArray, '/twin/rul', self.on_rul, qos.LATCHED)
        self.pub_ack = self.create_publisher(DiagnosticArray, '/twin/acknowledgements', ACK_QOS)
        self.pub_payload = self.create_publisher(InertiaStamped, '/twin/payload', qos.LATCHED)
        self.pub_switch = self.create_publisher(DiagnosticArray, '/twin/corrective_switches',
                                                ACK_QOS)
        self.pub_maintenance = self.create_publisher(DiagnosticStatus, MAINTENANCE_TOPIC,
                                                     qos.COMMAND)
        self.payload_frame = model.payload_frame
        self.create_timer(2.0, self.read_corrective)
        self.hub = Hub(self.state, settings, model, self.set_corrective,
                       on_acknowledged=self.publish_acknowledgement,
                       payload_publisher=self.publish_payload,
                       on_corrective_switched=self.publish_corrective_switch,
                       maintenance_publisher=self.publish_maintenance,
                       log=self.get_logger().info)
        try:
            self.hub.start()
        except RuntimeError as exc:
            raise ConfigError('twin_hub', [str(exc)]) from None

    # ------------------------------------------------------------------ display topics
    def on_measured(self, data):
        """Decode a /twin/joint_states sample when one is due (and its prediction, if here)."""
        self._decode(self.pairing.measured(cdr_stamp_ns(data), time.monotonic_ns(), data))

    def on_predicted(self, data):
        """Decode a /twin/predicted_joint_states sample when it is the one wanted."""
        self._decode(self.pairing.predicted(cdr_stamp_ns(data), time.monotonic_ns(), data))

    def _decode(self, wanted):
        for kind, raw in wanted:
            msg = deserialize_message(raw, JointState)
            self.state.update_joints(kind, stamp_to_sec(msg.header.stamp), msg.name,
                                     msg.position, msg.velocity, msg.effort)

    # ------------------------------------------------------------------ diagnostics
    def on_status(self, msg):
        """Keep the bridge's sync status."""
        for name, level, message, values in _statuses(msg):
            if name == 'twin/status/sync':
                self.state.update_sync(level, message, values)

    def on_anomaly(self, msg):
        """Keep the anomaly statuses (episodes are made by the state)."""
        self.state.update_anomaly(_statuses(msg))

    def on_rul(self, msg):
        """Keep the RUL statuses ``twin/rul/<joint>``."""
        self.state.update_rul([s for s in _statuses(msg) if s[0].startswith('twin/rul/')])

    def publish_acknowledgement(self, episode):
        """Publish an acknowledged anomaly (a server thread calls this) for the twin's log."""
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        values = {k: '' if episode.get(k) is None else episode[k] for k in (
            'id', 'joint', 'fault_type', 'since', 'acknowledged_at', 'acknowledged_by', 'note')}
        array.status.append(make_status(f'twin/acknowledgement/{episode["joint"]}', 'OK',
                                        f'anomaly {episode["id"]} acknowledged', values))
        self.pub_ack.publish(array)

    def publish_corrective_switch(self, data):
        """Publish a switch of corrective actions (a server thread calls this) for the log."""
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        state = 'on' if data['enabled'] else 'off'
        array.status.append(make_status(
            'twin/corrective_actions', 'OK', f'corrective actions switched {state} via '
            f'{data["interface"]}', {k: str(v).lower() if isinstance(v, bool) else v
                                     for k, v in data.items()}))
        self.pub_switch.publish(array)

    def publish_maintenance(self, joint, action, by, note):
        """Publish maintenance done on /twin/maintenance (a server thread); return readers."""
        readers = self.pub_maintenance.get_subscription_count()
        if readers:
            self.pub_maintenance.publish(maintenance_status(joint, action, by, note))
        return readers

    # ------------------------------------------------------------------ corrective actions
    def publish_payload(self, payload):
        """Publish a checked payload on /twin/payload (a server thread calls this)."""
        msg = InertiaStamped()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.payload_frame
        i = msg.inertia
        i.m = float(payload.mass)
        i.com.x, i.com.y, i.com.z = (float(v) for v in payload.com)
        i.ixx, i.ixy, i.ixz, i.iyy, i.iyz, i.izz = payload.inertia_components()
        self.pub_payload.publish(msg)

    def read_corrective(self):
        """Ask the bridge for corrective_actions.enabled (answer arrives asynchronously)."""
        if not self.get_client.service_is_ready():
            self.state.set_corrective(None, f'{self.settings.bridge_node} is not running')
            return
        future = self.get_client.call_async(GetParameters.Request(names=[CORRECTIVE]))
        future.add_done_callback(self._on_corrective)

    def _on_corrective(self, future):
        values = future.result().values if future.result() is not None else []
        if values and values[0].type == ParameterType.PARAMETER_BOOL:
            self.state.set_corrective(bool(values[0].bool_value))
        else:
            self.state.set_corrective(None, f'{self.settings.bridge_node} has no {CORRECTIVE}')

    def set_corrective(self, enabled):
        """
        Set corrective_actions.enabled on the bridge; return ``(ok, message)``.

        Called from a server thread; waits up to SERVICE_TIMEOUT_S for the answer, which the
        node's executor delivers.
        """
        if not self.set_client.service_is_ready():
            return False, f'{self.settings.bridge_node} is not running (no parameter service)'
        request = SetParameters.Request(parameters=[Parameter(
            name=CORRECTIVE, value=ParameterValue(type=ParameterType.PARAMETER_BOOL,
                                                  bool_value=bool(enabled)))])
        done = threading.Event()
        future = self.set_client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        if not done.wait(SERVICE_TIMEOUT_S) or future.result() is None:
            return False, f'{self.settings.bridge_node} did not answer within ' \
                          f'{SERVICE_TIMEOUT_S:g} s'
        result = future.result().results[0]
        if not result.successful:
            return False, f'{self.settings.bridge_node} refused: {result.reason}'
        self.state.set_corrective(bool(enabled))
        return True, f'{CORRECTIVE} = {str(bool(enabled)).lower()} on ' \
                     f'{self.settings.bridge_node}'

    def destroy_node(self):
        """Stop the servers before the node goes."""
        if getattr(self, 'hub', None) is not None:
            self.hub.stop()
        return super().destroy_node()


def main(args=None):
    """Console entry point ``twin_hub``."""
    return run_node(TwinHubNode, args)


if __name__ == '__main__':
    sys.exit(main())
