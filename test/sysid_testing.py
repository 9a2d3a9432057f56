"""Helpers shared by the system-identification tests and benchmark: robots, truths, bag writer."""
from pathlib import Path

import numpy as np
import pinocchio as pin
import pybullet_data

ROOT = Path(__file__).resolve().parents[1]
ARM_URDF = ROOT / 'urdf' / 'robot_twin_arm.urdf'
PANDA_URDF = Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf'
PANDA_FINGERS = ['panda_finger_joint1', 'panda_finger_joint2']

# A continuous joint carrying a prismatic one: the general joint types beside revolute.
MIXED_URDF = """<?xml version="1.0"?>
<robot name="mixed">
  <link name="base"><inertial><mass value="1"/><inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01"
    iyz="0" izz="0.01"/></inertial></link>
  <joint name="spin" type="continuous">
    <parent link="base"/><child link="l1"/><origin xyz="0 0 0.1"/><axis xyz="0 0 1"/>
    <limit effort="50" velocity="2"/>
  </joint>
  <link name="l1"><inertial><origin xyz="0.05 0 0.05"/><mass value="2"/>
    <inertia ixx="0.02" ixy="0" ixz="0" iyy="0.03" iyz="0" izz="0.02"/></inertial></link>
  <joint name="slide" type="prismatic">
    <parent link="l1"/><child link="l2"/><origin xyz="0.1 0 0.1"/><axis xyz="1 0 0"/>
    <limit lower="0" upper="0.3" effort="100" velocity="0.5"/>
  </joint>
  <link name="l2"><inertial><origin xyz="0 0.02 0"/><mass value="1.5"/>
    <inertia ixx="0.01" ixy="0" ixz="0" iyy="0.01" iyz="0" izz="0.015"/></inertial></link>
</robot>
"""

# Viscous (N·m·s/rad), Coulomb (N·m), offset (N·m) per joint of a 7-joint arm.
ARM_FRICTION = np.column_stack([np.linspace(0.6, 0.1, 7), np.linspace(1.0, 0.2, 7),
                                np.linspace(0.05, -0.05, 7)])
# Gaz et al. 2019 style sigmoid (phi1 N·m, phi2 s/rad, phi3 rad/s) plus an offset (N·m).
ARM_SIGMOID = np.column_stack([[0.55, 0.87, 0.64, 1.28, 0.84, 0.30, 0.56],
                               [5.1, 9.1, 10.1, 5.6, 8.3, 17.1, 10.3],
                               [0.04, 0.026, -0.046, 0.036, 0.026, -0.021, 0.0036],
                               np.linspace(0.05, -0.05, 7)])


def perturbed_parameters(model, changes):
    """
    Return true dynamic parameters: bodies with scaled mass/inertia, shifted COM.

    Parameters
    ----------
    model : pin.Model
        Model whose inertial parameters are perturbed (not modified).
    changes : dict
        joint index (1-based, pinocchio) -> (relative mass change, COM shift (3,) m).

    Returns
    -------
    theta : (10 nb,) pinocchio order

    """
    truth = pin.Model(model)
    for jid, (dm, dc) in changes.items():
        inertia = truth.inertias[jid]
        truth.inertias[jid] = pin.Inertia(inertia.mass * (1.0 + dm),
                                          inertia.lever + np.asarray(dc, dtype=float),
                                          inertia.inertia * (1.0 + dm))
    return np.concatenate([truth.inertias[i].toDynamicParameters()
                           for i in range(1, truth.njoints)])


def write_bag(log, path, storage='sqlite3', topic='/joint_states', joint_order=None,
              split=None, zero_stamps=False, extra_topics=()):
    """
    Write a LogData as a rosbag2 of sensor_msgs/msg/JointState messages.

    Parameters
    ----------
    log : LogData
        The samples to write.
    path : Path
        Bag directory to create.
    storage : {'sqlite3', 'mcap'}
        rosbag2 storage plugin of the bag.
    topic : str
        JointState topic to write.
    joint_order : list of str, optional
        Name order in the messages (default the log's); reversed every other message when
        'alternate'.
    split : list of str, optional
        Joints published in separate messages (same stamps), like a gripper driver.
    zero_stamps : bool
        Leave header stamps at zero (the bag receive time carries the time).
    extra_topics : sequence of str
        Other JointState topics, written with the same content.

    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores

    ts = get_typestore(Stores.ROS2_HUMBLE)
    js = ts.types['sensor_msgs/msg/JointState']
    header_t = ts.types['std_msgs/msg/Header']
    time_t = ts.types['builtin_interfaces/msg/Time']
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    names = list(log.joint_names)
    split = list(split or [])
    main = [j for j in (names if joint_order in (None, 'alternate') else joint_order)
            if j not in split]

    def message(k, joints, t):
        idx = [names.index(j) for j in joints]
        sec = int(np.floor(t))
        stamp = time_t(sec=0, nanosec=0) if zero_stamps else time_t(
            sec=sec, nanosec=int(round((t - sec) * 1e9)))
        vel = log.velocity[k, idx]
        return js(header=header_t(stamp=stamp, frame_id=''), name=list(joints),
                  position=np.array(log.position[k, idx], dtype=float),
                  velocity=np.array(vel if np.isfinite(vel).all() else [], dtype=float),
                  effort=np.array(log.effort[k, idx], dtype=float))

    with Writer(path, version=9, storage_plugin=plugin) as writer:
        conns = [writer.add_connection(t, js.__msgtype__, typestore=ts)
                 for t in (topic,) + tuple(extra_topics)]
        for k, t in enumerate(log.time):
            joints = main[::-1] if joint_order == 'alternate' and k % 2 else main
            stamp_ns = int(round(t * 1e9)) + 1_000_000_000
            for conn in conns:
                writer.write(conn, stamp_ns, ts.serialize_cdr(message(k, joints, t),
                                                              js.__msgtype__))
                if split:
                    writer.write(conn, stamp_ns + 1,
                                 ts.serialize_cdr(message(k, split, t), js.__msgtype__))
