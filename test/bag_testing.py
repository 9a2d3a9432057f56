"""
Recordings for the replay and HIL-report tests: the plant simulated offline, written with rosbags.

:func:`simulate` runs :class:`twin_sim.plant.Plant` (the built-in arm) under the demo motion
(a 100 Hz position stream, as the demo controller sends), with an optional fault scenario;
:func:`write_bag` writes its samples as a rosbag2 recording (MCAP or sqlite3) the way a robot
would publish them: JointState (any joint order, a subset, or split in two messages), the
wrench, /joint_command, and optionally /clock and /twin/plant_status; :func:`write_ros1_bag`
writes the joint states and wrenches as a ROS 1 bag.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores
from twin_sim.plant import Plant
from twin_sim.resources import builtin_urdf
from twin_sim.trajectory import DemoMotion

STORE = get_typestore(Stores.ROS2_KILTED)
T = STORE.types
EPOCH_S = 1_796_371_200.0     # stamps of the simulated robot: plant time on this epoch
LATENCY_NS = 150_000          # log time = stamp + this (a receive delay)


@dataclass
class Run:
    """What :func:`simulate` returns: samples and the commands sent, plant time from 0."""

    names: list
    samples: list            # twin_sim Measurement per published sample
    commands: list           # (t, q (n,), qd (n,)) per command


REPLAY_CONFIG = """
robot_twin:
  ros__parameters:
    nodes: [twin_bridge, twin_sim, twin_anomaly]
/**/twin_anomaly:
  ros__parameters:
    commissioning_duration_s: 2.5
    model_path: rules                  # the rule classifier (no trained model needed)
"""
"""A replay configuration for short simulated runs: 2.5 s of commissioning, rule classifier."""


def simulate(duration_s, scenario=None, rate_hz=1000.0, seed=0, command_hz=100.0):
    """Run the plant under the demo motion; return a :class:`Run`."""
    plant = Plant(builtin_urdf(), scenario=scenario, dt=1.0 / rate_hz, seed=seed)
    try:
        motion = DemoMotion.from_model(plant.model, fraction=0.3, period_s=2.0)
        every = max(1, int(round(rate_hz / command_hz)))
        samples, commands = [], []
        for k in range(int(round(duration_s * rate_hz))):
            if k % every == 0:
                q, qd, _ = motion.sample(plant.time)
                plant.command_position(q, qd, extrapolate_s=0.05)
                commands.append((plant.time, q, qd))
            m = plant.step()
            if m is not None:
                samples.append(m)
        return Run(list(plant.joint_names), samples, commands)
    finally:
        plant.close()


def _stamp(t):
    ns = int(round((EPOCH_S + t) * 1e9))
    return T['builtin_interfaces/msg/Time'](sec=ns // 10 ** 9, nanosec=ns % 10 ** 9), ns


def _joint_state(stamp, names, idx, m):
    """Return the JointState of sample ``m`` for joints ``idx`` (an empty effort stays empty)."""
    header = T['std_msgs/msg/Header'](stamp=stamp, frame_id='')
    effort = np.asarray(m.effort)
    return T['sensor_msgs/msg/JointState'](
        header=header, name=[names[i] for i in idx], position=np.asarray(m.q)[idx],
        velocity=np.asarray(m.qd)[idx], effort=effort[idx] if effort.size else effort)


def _wrench(stamp, w, frame_id='ft_sensor'):
    v3, wr = T['geometry_msgs/msg/Vector3'], T['geometry_msgs/msg/Wrench']
    return T['geometry_msgs/msg/WrenchStamped'](
        header=T['std_msgs/msg/Header'](stamp=stamp, frame_id=frame_id),
        wrench=wr(force=v3(x=w[0], y=w[1], z=w[2]), torque=v3(x=w[3], y=w[4], z=w[5])))


def write_bag(path, run, *, storage='mcap', order=None, split=False, wrench=True,
              joint_topic='/joint_states', wrench_topic='/ft_sensor/wrench', commands=True,
              extra=None, wrench_frame='ft_sensor', more=(), zero_stamps=(),
              compressed=False):
    """
    Write ``run`` as a rosbag2 recording at ``path`` (a new directory); return the path.

    Parameters
    ----------
    path : str or Path
        The bag directory to create.
    run : Run
        What :func:`simulate` returned.
    storage : {'mcap', 'sqlite3'}
        rosbag2 storage.
    order : sequence of int, optional
        Joint indices (model order) each JointState lists, in message order; default all, in
        model order (a subset leaves joints out).
    split : bool
        Publish each sample as two JointState messages (first 4 joints, then the rest).
    wrench, commands : bool
        Also write the wrench topic and /joint_command.
    joint_topic, wrench_topic : str
        Topic names of the joint states and the wrench.
    extra : callable, optional
        ``extra(writer, STORE)`` adds more topics before the writer is closed.
    wrench_frame : str
        ``header.frame_id`` of the wrenches.
    more : iterable of (t, topic, typename, msg)
        More messages (e.g. other commands: :func:`command`, :func:`trajectory`), logged at
        plant time ``t`` (log time = its stamp) among the others.
    zero_stamps : iterable of int
        Samples whose JointState messages have a zero header stamp (the log time keeps the
        sample's time), as from a publisher that does not set it.
    compressed : bool
        Compress each message with zstd (rosbag2 message compression; only metadata.yaml
        says so).

    """
    names = run.names
    order = list(range(len(names))) if order is None else list(order)
    groups = [order[:4], order[4:]] if split else [order]
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    writer = Writer(Path(path), version=9, storage_plugin=plugin)
    if compressed:
        writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    writer.open()
    js = writer.add_connection(joint_topic, 'sensor_msgs/msg/JointState', typestore=STORE)
    ws = writer.add_connection(wrench_topic, 'geometry_msgs/msg/WrenchStamped',
                               typestore=STORE) if wrench else None
    cmd = writer.add_connection('/joint_command', 'sensor_msgs/msg/JointState',
                                typestore=STORE) if commands else None
    messages = []
    unstamped = set(zero_stamps)
    zero = T['builtin_interfaces/msg/Time'](sec=0, nanosec=0)
    for i, m in enumerate(run.samples):
        stamp, ns = _stamp(m.t)
        for k, idx in enumerate(groups):
            messages.append((ns + LATENCY_NS + k, js, _joint_state(
                zero if i in unstamped else stamp, names, idx, m), 'sensor_msgs/msg/JointState'))
        if ws is not None and m.wrench is not None:
            messages.append((ns + LATENCY_NS + 5, ws, _wrench(stamp, m.wrench, wrench_frame),
                             'geometry_msgs/msg/WrenchStamped'))
    for t, q, qd in run.commands if cmd is not None else ():
        stamp, ns = _stamp(t)
        messages.append((ns, cmd, T['sensor_msgs/msg/JointState'](
            header=T['std_msgs/msg/Header'](stamp=stamp, frame_id=''), name=list(names),
            position=q, velocity=qd, effort=np.zeros(0)), 'sensor_msgs/msg/JointState'))
    connections = {'/joint_command': cmd} if cmd is not None else {}
    for t, topic, typename, msg in more:
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, typename, typestore=STORE)
        messages.append((_stamp(t)[1], connections[topic], msg, typename))
    messages.sort(key=lambda item: item[0])
    for log_ns, connection, msg, typename in messages:
        writer.write(connection, log_ns, STORE.serialize_cdr(msg, typename))
    if extra is not None:
        extra(writer, STORE)
    writer.close()
    return Path(path)


def write_ros1_bag(path, run):
    """Write the joint states and wrenches of ``run`` as a ROS 1 bag file; return its path."""
    from rosbags.rosbag1 import Writer as Ros1Writer
    store = get_typestore(Stores.ROS1_NOETIC)
    types = store.types
    with Ros1Writer(Path(path)) as writer:
        js = writer.add_connection('/joint_states', 'sensor_msgs/msg/JointState', typestore=store)
        ws = writer.add_connection('/ft_sensor/wrench', 'geometry_msgs/msg/WrenchStamped',
                                   typestore=store)
        v3, wr = types['geometry_msgs/msg/Vector3'], types['geometry_msgs/msg/Wrench']
        for seq, m in enumerate(run.samples):
            _, ns = _stamp(m.t)
            stamp = types['builtin_interfaces/msg/Time'](sec=ns // 10 ** 9, nanosec=ns % 10 ** 9)
            header = types['std_msgs/msg/Header'](seq=seq, stamp=stamp, frame_id='')
            msg = types['sensor_msgs/msg/JointState'](
                header=header, name=list(run.names), position=np.asarray(m.q),
                velocity=np.asarray(m.qd), effort=np.asarray(m.effort))
            writer.write(js, ns + LATENCY_NS, store.serialize_ros1(msg, msg.__msgtype__))
            if m.wrench is not None:
                w = m.wrench
                msg = types['geometry_msgs/msg/WrenchStamped'](
                    header=types['std_msgs/msg/Header'](seq=seq, stamp=header.stamp,
                                                        frame_id='ft_sensor'),
                    wrench=wr(force=v3(x=w[0], y=w[1], z=w[2]),
                              torque=v3(x=w[3], y=w[4], z=w[5])))
                writer.write(ws, ns + LATENCY_NS + 5, store.serialize_ros1(msg, msg.__msgtype__))
    return Path(path)


def damage(bag, fraction, size=4000):
    """Overwrite ``size`` bytes with zeros at ``fraction`` of the bag's MCAP file; return it."""
    mcap = next(Path(bag).glob('*.mcap'))
    at = int(mcap.stat().st_size * fraction)
    with open(mcap, 'r+b') as f:
        f.seek(at)
        f.write(bytes(size))
    return mcap


def command(t, names, position=(), velocity=(), effort=()):
    """Return a /joint_command JointState at plant time ``t``, an entry of ``more=``."""
    stamp, _ns = _stamp(t)
    return (t, '/joint_command', 'sensor_msgs/msg/JointState', T['sensor_msgs/msg/JointState'](
        header=T['std_msgs/msg/Header'](stamp=stamp, frame_id=''), name=list(names),
        position=np.asarray(position, float), velocity=np.asarray(velocity, float),
        effort=np.asarray(effort, float)))


def trajectory(t, names, points):
    """Return a JointTrajectory of ``points`` ((time_from_start s, positions)), for ``more=``."""
    stamp, _ns = _stamp(t)
    empty = np.zeros(0)
    point = T['trajectory_msgs/msg/JointTrajectoryPoint']
    duration = T['builtin_interfaces/msg/Duration']
    msg = T['trajectory_msgs/msg/JointTrajectory'](
        header=T['std_msgs/msg/Header'](stamp=stamp, frame_id=''), joint_names=list(names),
        points=[point(positions=np.asarray(q, float), velocities=empty, accelerations=empty,
                      effort=empty,
                      time_from_start=duration(sec=int(s // 1),
                                               nanosec=int(round((s % 1) * 1e9))))
                for s, q in points])
    return (t, '/joint_trajectory_controller/joint_trajectory',
            'trajectory_msgs/msg/JointTrajectory', msg)


def payload_declaration(t, mass, com=(0.0, 0.0, 0.0), radius_m=0.05, frame_id='', stamp=True,
                        inertia=None):
    """
    Return a /twin/payload InertiaStamped at plant time ``t``, an entry of ``more=``.

    A solid sphere of ``mass`` kg and ``radius_m`` at ``com`` (as the ``payload_change`` fault
    of twin_sim.faults builds it), unless ``inertia`` ``(ixx, ixy, ixz, iyy, iyz, izz)`` is
    given; ``stamp=False`` leaves the header stamp zero (the message is still logged at ``t``).
    """
    time, _ns = _stamp(t)
    if not stamp:
        time = T['builtin_interfaces/msg/Time'](sec=0, nanosec=0)
    if inertia is None:
        i = 0.4 * mass * radius_m ** 2
        inertia = (i, 0.0, 0.0, i, 0.0, i)
    ixx, ixy, ixz, iyy, iyz, izz = (float(v) for v in inertia)
    v3 = T['geometry_msgs/msg/Vector3']
    msg = T['geometry_msgs/msg/InertiaStamped'](
        header=T['std_msgs/msg/Header'](stamp=time, frame_id=frame_id),
        inertia=T['geometry_msgs/msg/Inertia'](
            m=float(mass), com=v3(x=float(com[0]), y=float(com[1]), z=float(com[2])),
            ixx=ixx, ixy=ixy, ixz=ixz, iyy=iyy, iyz=iyz, izz=izz))
    return (t, '/twin/payload', 'geometry_msgs/msg/InertiaStamped', msg)
