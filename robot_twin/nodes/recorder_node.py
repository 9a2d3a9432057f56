"""
The recorder (``robot-twin record``): the robot's topics and the twin's outputs to rosbag2 MCAP.

Serialized (``raw``) subscriptions hand each message's CDR bytes straight to the ``rosbags``
rosbag2 writer (MCAP storage, format version 9, message definitions from the rosbags typestore
of this ROS distribution), so that recording 1 kHz streams costs a few microseconds per message
and no message objects are built. The bag is readable by ``ros2 bag``, Foxglove and the
``rosbags`` readers; its log time is the wall-clock receive time.

QoS follows the publishers, as ``ros2 bag record`` does: a topic is read reliable when every
publisher seen on it is reliable (nothing lost; the twin's 1 kHz outputs are best-effort, so
they are read best-effort) and transient-local when every publisher is (the latched anomaly,
RUL, plant status and payload declaration: a value latched before the recorder starts is
recorded too, with its receive time, as for any message; ``robot-twin replay`` applies the
payload declarations). The default topics are subscribed at once with the QoS their publishers
are known to use (:data:`EXPECTED_QOS`), other topics when their first publisher appears; a
subscription is made again whenever a publisher needs a weaker QoS. The offered QoS of the
publishers seen first is stored with each topic.
"""
import importlib
import os
from pathlib import Path
import time

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future
from robot_twin.nodes import qos as project_qos
from robot_twin.nodes.runner import make_executor, stop_on_signals

ROBOT_TOPICS = {
    '/joint_states': 'sensor_msgs/msg/JointState',
    '/ft_sensor/wrench': 'geometry_msgs/msg/WrenchStamped',
    '/clock': 'rosgraph_msgs/msg/Clock',
    '/joint_command': 'sensor_msgs/msg/JointState',
    '/forward_position_controller/commands': 'std_msgs/msg/Float64MultiArray',
    '/joint_trajectory_controller/joint_trajectory': 'trajectory_msgs/msg/JointTrajectory',
    '/twin/plant_status': 'diagnostic_msgs/msg/DiagnosticArray',
}
"""The robot's (or the HIL plant's) topics recorded by default, with their types."""
TWIN_TOPICS = {
    '/twin/joint_states': 'sensor_msgs/msg/JointState',
    '/twin/predicted_joint_states': 'sensor_msgs/msg/JointState',
    '/twin/residuals': 'sensor_msgs/msg/JointState',
    '/twin/predicted_wrench': 'geometry_msgs/msg/WrenchStamped',
    '/twin/wrench_residual': 'geometry_msgs/msg/WrenchStamped',
    '/twin/anomaly': 'diagnostic_msgs/msg/DiagnosticArray',
    '/twin/anomaly_score': 'std_msgs/msg/Float64',
    '/twin/rul': 'diagnostic_msgs/msg/DiagnosticArray',
    '/twin/status': 'diagnostic_msgs/msg/DiagnosticArray',
    '/twin/payload': 'geometry_msgs/msg/InertiaStamped',
}
"""The twin's outputs recorded by default (``/twin/markers`` only when asked), and what it is
told the robot carries (``/twin/payload``, latched: ``robot-twin replay`` applies it)."""
EXPECTED_QOS = {topic: (True, False) for topic in ROBOT_TOPICS}
EXPECTED_QOS.update({topic: (False, False) for topic in TWIN_TOPICS})
EXPECTED_QOS.update({'/twin/plant_status': (True, True), '/twin/anomaly': (True, True),
                     '/twin/rul': (True, True), '/twin/payload': (True, True),
                     '/twin/status': (True, False),
                     '/twin/anomaly_score': (True, False)})
"""(reliable, transient-local) the default topics are subscribed with before any publisher is
seen (the robot's and the HIL plant's streams are reliable as ros2_control's, the twin's 1 kHz
streams best-effort, its state latched), so that the first messages of a publisher that starts
after the recorder are not lost while it is discovered; a publisher that needs weaker QoS makes
the recorder subscribe again."""
SCAN_PERIOD_S = 0.2
"""How often the graph is looked at for new publishers, s."""
DEPTH = 1000
"""Reader queue of every recorded topic (messages, per topic)."""


def _message_class(type_name):
    """Return the rclpy message class of ``pkg/msg/Name`` (its package must be installed)."""
    package, _, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def _rosbags_qos(profile):
    """Return a ``rosbags.interfaces.Qos`` of an rclpy QoSProfile (stored in the bag)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, \
        QosReliability, QosTime

    def duration(d):
        ns = d.nanoseconds
        return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)

    return Qos(QosHistory(int(profile.history)), int(profile.depth),
               QosReliability(int(profile.reliability)), QosDurability(int(profile.durability)),
               duration(profile.deadline), duration(profile.lifespan),
               QosLiveliness(int(profile.liveliness)),
               duration(profile.liveliness_lease_duration),
               bool(profile.avoid_ros_namespace_conventions))


class RecorderNode(Node):
    """
    Record topics to an open ``rosbags.rosbag2.Writer`` until stopped.

    Parameters
    ----------
    writer : rosbags.rosbag2.Writer
        Open writer; the node adds one connection per topic and writes every message.
    typestore : rosbags typestore
        Message definitions for the bag.
    topics : dict
        ``{topic: type name or None}``; None = take the type the publishers have.
    name : str
        Node name.

    Attributes
    ----------
    counts : dict
        ``{topic: messages written}``.

    """

    def __init__(self, writer, typestore, topics, name='twin_recorder', **kwargs):
        super().__init__(name, **kwargs)
        self.writer = writer
        self.typestore = typestore
        self.wanted = dict(topics)
        self.counts = {}
        self._subs = {}          # topic -> (subscription, (reliable, transient))
        self._connections = {}   # topic -> rosbags Connection
        self.create_timer(SCAN_PERIOD_S, self.scan)
        self.scan()

    def _publishers_of(self, topic):
        return self.get_publishers_info_by_topic(topic)

    def scan(self):
        """Subscribe to the wanted topics; weaken a subscription's QoS where a publisher needs."""
        for topic, type_name in self.wanted.items():
            infos = self._publishers_of(topic)
            if not infos:
                if topic not in self._subs and topic in EXPECTED_QOS and type_name is not None:
                    self._subscribe(topic, type_name, *EXPECTED_QOS[topic], infos)
                continue
            types = {i.topic_type for i in infos}
            if type_name is None:
                if len(types) != 1:
                    self._skip(topic, f'publishers disagree on its type: {sorted(types)}')
                    continue
                type_name = next(iter(types))
            elif type_name not in types:
                self._skip(topic, f'it is published as {sorted(types)}, not {type_name}')
                continue
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                           for i in infos)
            transient = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL
                            for i in infos)
            have = self._subs.get(topic)
            if have is not None and (have[1][0] <= reliable and have[1][1] <= transient):
                continue     # what we have matches every publisher
            if have is not None:
                self.destroy_subscription(have[0])
                self.get_logger().info(f'{topic}: a publisher needs weaker QoS; resubscribed')
            self._subscribe(topic, type_name, reliable, transient, infos)

    def _subscribe(self, topic, type_name, reliable, transient, infos):
        if not self._connect(topic, type_name, infos):
            return
        profile = QoSProfile(
            depth=DEPTH,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if transient
            else DurabilityPolicy.VOLATILE)
        sub = self.create_subscription(
            _message_class(type_name), topic, self._writer_for(topic), profile, raw=True,
            event_callbacks=project_qos.LEAN_SUBSCRIPTION)
        self._subs[topic] = (sub, (reliable, transient))

    def _skip(self, topic, why):
        self.get_logger().warning(f'not recording {topic}: {why}', throttle_duration_sec=10.0)

    def _connect(self, topic, type_name, infos):
        """Add the topic's connection to the bag (once); False if its type is unknown."""
        if topic in self._connections:
            return True
        if type_name not in self.typestore.fielddefs:
            self._skip(topic, f'no message definition of {type_name} in the rosbags typestore')
            return False
        try:
            _message_class(type_name)
        except (ImportError, AttributeError, ValueError):
            self._skip(topic, f'message package of {type_name} is not installed')
            return False
        offered = [_rosbags_qos(i.qos_profile) for i in infos]
        self._connections[topic] = self.writer.add_connection(
            topic, type_name, typestore=self.typestore, offered_qos_profiles=offered)
        self.counts[topic] = 0
        self.get_logger().info(f'recording {topic} ({type_name})')
        return True

    def _writer_for(self, topic):
        connection = self._connections[topic]
        write = self.writer.write
        counts = self.counts

        def on_message(data):
            write(connection, time.time_ns(), data)
            counts[topic] += 1
        return on_message


def default_topics(wrench_topic='/ft_sensor/wrench', joint_states_topic='/joint_states',
                   markers=False):
    """Return ``{topic: type}`` recorded by default (robot topics renamed as configured)."""
    topics = dict(ROBOT_TOPICS)
    topics.pop('/joint_states')
    topics.pop('/ft_sensor/wrench')
    topics[joint_states_topic] = 'sensor_msgs/msg/JointState'
    if wrench_topic:
        topics[wrench_topic] = 'geometry_msgs/msg/WrenchStamped'
    topics.update(TWIN_TOPICS)
    if markers:
        topics['/twin/markers'] = 'visualization_msgs/msg/MarkerArray'
    return topics


def typestore_for_this_distro():
    """Return the rosbags typestore of ``$ROS_DISTRO`` (Kilted, the venv's wheels, if unset)."""
    from rosbags.typesys import get_typestore, Stores
    distro = os.environ.get('ROS_DISTRO', 'kilted').upper()
    return get_typestore(getattr(Stores, f'ROS2_{distro}', Stores.ROS2_KILTED))


def record(output, topics, duration_s=None, args=None, log=print):
    """
    Record ``topics`` to a new rosbag2 MCAP directory ``output`` until stopped.

    Stops after ``duration_s`` seconds (None: never), on Ctrl-C or SIGTERM; the bag is closed
    (metadata written) in every case but SIGKILL.

    Parameters
    ----------
    output : str or Path
        The bag directory to create (must not exist).
    topics : dict
        ``{topic: type name or None}`` (see :class:`RecorderNode`).
    duration_s : float or None
        Recording length, s of wall time.
    args : list of str, optional
        rclpy arguments.
    log : callable
        ``log(text)`` for progress lines.

    Returns
    -------
    dict
        ``{topic: messages written}``.

    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    writer = Writer(Path(output), version=9, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    counts = {}
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = Future()            # done at the end of the duration, or on Ctrl-C / SIGTERM
    stop_on_signals(stop)
    node = executor = None
    try:
        node = RecorderNode(writer, typestore_for_this_distro(), topics)
        counts = node.counts
        if duration_s is not None:
            node.create_timer(float(duration_s), lambda: stop.done() or stop.set_result(True))
        executor = make_executor()
        executor.add_node(node)
        log(f'recording to {output} (Ctrl-C to stop): {len(topics)} topics wanted')
        while rclpy.ok() and not stop.done():
            executor.spin_once(timeout_sec=0.1)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        writer.close()
    return dict(counts)
