"""Helpers shared by the system-identification tests and benchmark: robots, truths, bag writer."""
import argparse
from pathlib import Path
import warnings

import numpy as np
import pinocchio as pin
import pybullet_data
from robot_twin.sysid_cli import add_sysid_parser

ROOT = Path(__file__).resolve().parents[1]
ARM_URDF = ROOT / 'urdf' / 'robot_twin_arm.urdf'
PANDA_URDF = Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf'
PANDA_FINGERS = ['panda_finger_joint1', 'panda_finger_joint2']
IIWA_URDF = Path(pybullet_data.getDataPath()) / 'kuka_iiwa' / 'model.urdf'
UR5E_LIKE_URDF = ROOT / 'test' / 'data' / 'ur5e_like.urdf'

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


def quiet(fn, *args, **kwargs):
    """Call ``fn``; return its result and the texts of the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in caught]


def run_cli(argv):
    """Run ``robot-twin <argv>`` (the sysid and excite commands) in this process."""
    parser = argparse.ArgumentParser(prog='robot-twin')
    add_sysid_parser(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    return args.func(args)


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


class PointToPoint:
    """
    One point-to-point move (quintic, rest to rest), then rest with a decaying sway.

    A poorly exciting log: every joint moves one way once. After the stop the arm sways
    (``amplitude`` rad, ``frequency_hz``, decay time ``decay_s``), as an arm carrying a beam
    does; the sway is real motion (the torques follow it). Has the ``evaluate``/``duration``/
    ``joint_names`` interface of :class:`twin_sim.excitation.ExcitationTrajectory`.
    """

    def __init__(self, joint_names, q_start, q_end, t_start, t_stop, duration, amplitude=0.0,
                 frequency_hz=4.0, decay_s=2.0):
        self.joint_names = list(joint_names)
        self.q_start, self.q_end = np.asarray(q_start), np.asarray(q_end)
        self.t_start, self.t_stop, self.duration = t_start, t_stop, duration
        self.amplitude, self.omega, self.decay = amplitude, 2 * np.pi * frequency_hz, decay_s

    def evaluate(self, t):
        """Positions, velocities, accelerations (N, n) at times ``t`` (N,)."""
        t = np.asarray(t, dtype=float)[:, None]
        span = self.t_stop - self.t_start
        s = np.clip((t - self.t_start) / span, 0.0, 1.0)
        moving = (s > 0.0) & (s < 1.0)
        d = self.q_end - self.q_start
        q = self.q_start + d * (10 * s ** 3 - 15 * s ** 4 + 6 * s ** 5)
        qd = np.where(moving, d * (30 * s ** 2 - 60 * s ** 3 + 30 * s ** 4) / span, 0.0)
        qdd = np.where(moving, d * (60 * s - 180 * s ** 2 + 120 * s ** 3) / span ** 2, 0.0)
        tau = np.maximum(t - self.t_stop, 0.0)
        w, k = self.omega, 1.0 / self.decay
        env = np.where(t > self.t_stop, self.amplitude * np.exp(-k * tau), 0.0)
        sn, cs = np.sin(w * tau), np.cos(w * tau)
        return (q + env * sn, qd + env * (w * cs - k * sn),
                qdd + env * ((k * k - w * w) * sn - 2 * k * w * cs))

    def sample(self, t):
        """Position, velocity, acceleration (n,) at one time ``t`` (the DemoMotion interface)."""
        q, qd, qdd = self.evaluate([t])
        return q[0], qd[0], qdd[0]


def point_to_point_log(arm, seed, truth=None, friction=None):
    """
    Simulate a poorly exciting log of a robot whose URDF is already good.

    10.5 s at 1 kHz: one point-to-point move (0.2 to 7.3 s, every joint one way) between
    random poses, then rest with a decaying sway (5e-4 rad at 4 Hz, as an arm carrying a
    beam). The true bodies differ from the URDF by up to 3 % in mass and 3 mm in centre of
    mass, the true friction by up to 10 % (unless ``truth`` (10 nb,) and ``friction`` (n, 3)
    are given). The held-out last 30 % is the rest. Noise: 1e-4 rad, 1e-3 rad/s, 0.05 N·m,
    stamps jittered by up to 30 % of the period.
    """
    from twin_sim.excitation import simulate_log
    from twin_sim.sysid import model_joint_names, position_limits

    rng = np.random.default_rng(seed)
    names = model_joint_names(arm)
    lo, hi = position_limits(arm)
    traj = PointToPoint(names, rng.uniform(0.6 * lo, 0.6 * hi), rng.uniform(0.6 * lo, 0.6 * hi),
                        0.2, 7.3, 10.5, amplitude=5e-4)
    n = len(names)
    changes = {j: (rng.uniform(-0.03, 0.03), rng.uniform(-0.003, 0.003, 3))
               for j in range(1, n + 1)}
    scales = rng.uniform(0.9, 1.1, (n, 3))
    if truth is None:
        truth = perturbed_parameters(arm, changes)
        friction = np.column_stack([arm.damping, arm.friction, np.zeros(n)]) * scales
    return simulate_log(arm, traj, rate_hz=1000.0, theta=truth,
                        friction_model='viscous-coulomb', friction=friction, seed=seed,
                        position_noise=1e-4, velocity_noise=1e-3, torque_noise=0.05, jitter=0.3)


# Robot that differs from its URDF as in issue 14's test of a new user: bodies off by up to 8 %,
# viscous friction 1-4x, Coulomb friction and rotor inertia that the twin's URDF lacks.
ISSUE14_RANDOMIZATION = {
    'version': 1,
    'links': {'mass_scale': [0.92, 1.08], 'inertia_scale': [0.92, 1.08],
              'com_offset_m': [-0.005, 0.005]},
    'friction': {'viscous_scale': [1.0, 4.0], 'coulomb_scale': [0.8, 1.25]},
}
ROTOR_INERTIA = np.array([0.3, 0.3, 0.2, 0.2, 0.1, 0.05, 0.05])   # kg m^2, built-in arm
SENSOR_NOISE = (1e-4, 1e-3, 0.05)            # rad, rad/s, N·m (standard deviations)


def urdf_without_coulomb(urdf, out_path):
    """Write ``urdf`` with every ``<dynamics friction>`` set to 0 (a URDF without Coulomb)."""
    import xml.etree.ElementTree as ElementTree

    tree = ElementTree.parse(str(urdf))
    for dyn in tree.getroot().iter('dynamics'):
        if 'friction' in dyn.attrib:
            dyn.set('friction', '0')
    tree.write(str(out_path))
    return Path(out_path)


# A robot its URDF already fits well (bodies within 2 %, friction within 10 %).
CLOSE_RANDOMIZATION = {
    'version': 1,
    'links': {'mass_scale': [0.98, 1.02], 'inertia_scale': [0.98, 1.02],
              'com_offset_m': [-0.002, 0.002]},
    'friction': {'viscous_scale': [0.9, 1.1], 'coulomb_scale': [0.9, 1.1]},
}


def randomized_robot(urdf, out_dir, seed=0, index=0, ranges=None):
    """
    Write a randomized variant of ``urdf`` with rotor inertia.

    ``ranges`` is a randomization mapping (default ``ISSUE14_RANDOMIZATION``).

    Returns
    -------
    path : Path
        The variant URDF (for :class:`twin_sim.plant.Plant`).
    rotor_inertia : (n,) kg m^2
        ``ROTOR_INERTIA`` scaled by a factor in [0.8, 1.2] per joint (drawn from ``seed``,
        ``index``).

    """
    from twin_sim.randomization import RandomizationSpec, write_randomized_robot

    spec = RandomizationSpec.from_dict(ISSUE14_RANDOMIZATION if ranges is None else ranges)
    path, _variant = write_randomized_robot(urdf, spec, seed, index,
                                            Path(out_dir) / f'variant_{seed}_{index}.urdf')
    rng = np.random.default_rng([seed, index, 14])
    return path, ROTOR_INERTIA * rng.uniform(0.8, 1.2, ROTOR_INERTIA.size)


def run_plant(urdf, motion, duration_s, *, rotor_inertia, dt=0.001, noise=SENSOR_NOISE,
              seed=0):
    """
    Drive a :class:`twin_sim.plant.Plant` of ``urdf`` along ``motion``; return its samples.

    PyBullet has no rotor inertia: the drive supplies it, so the measured (motor) effort is
    the joint torque PyBullet applied plus ``rotor_inertia * qdd`` of the true motion (the
    acceleration over each step). Gaussian noise is then added to position, velocity and
    effort.

    Parameters
    ----------
    urdf : str or Path
        The robot (e.g. from :func:`randomized_robot`).
    motion : object with ``sample(t) -> (q, qd, qdd)``
        E.g. :class:`twin_sim.trajectory.DemoMotion`, followed in position mode with
        feed-forward.
    duration_s, dt : float
        Seconds simulated, step s.
    rotor_inertia : (n,) kg m^2
        Rotor inertia of each joint's drive.
    noise : (3,)
        Standard deviations of the position, velocity and effort noise.
    seed : int
        Noise seed.

    Returns
    -------
    t : (N,) s
    q, qd, effort : (N, n)
        Measured (noisy) samples.

    """
    import warnings

    from twin_sim.plant import Plant

    steps = int(round(duration_s / dt))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        plant = Plant(urdf, dt=dt, initial_q=motion.sample(0.0)[0])
    world = plant.world
    n = plant.n
    t, q = np.empty(steps), np.empty((steps, n))
    qd, effort = np.empty((steps, n)), np.empty((steps, n))
    try:
        prev_qd = world.measure().qd
        for k in range(steps):
            world.set_control('position', *motion.sample(k * dt))
            world.step()
            m = world.measure()
            t[k], q[k], qd[k] = m.t, m.q, m.qd
            effort[k] = m.effort + rotor_inertia * (m.qd - prev_qd) / dt
            prev_qd = m.qd
    finally:
        plant.close()
    rng = np.random.default_rng(seed)
    return (t, q + noise[0] * rng.standard_normal(q.shape),
            qd + noise[1] * rng.standard_normal(q.shape),
            effort + noise[2] * rng.standard_normal(q.shape))


def run_mujoco(urdf, motion, duration_s, *, rotor_inertia, dt=0.001, noise=SENSOR_NOISE,
               seed=0):
    """
    Do what :func:`run_plant` does, on :class:`twin_sim.mujoco_world.MujocoWorld`.

    MuJoCo simulates the rotor inertia itself (its armature) and Coulomb friction as friction
    loss; the drive is its PD with the inverse dynamics of the reference (true model) fed
    forward. Returns ``t, q, qd, effort`` like :func:`run_plant`.
    """
    import warnings

    from twin_sim.mujoco_world import MujocoWorld
    from twin_sim.urdf_model import RobotModel

    steps = int(round(duration_s / dt))
    t_ref = np.arange(steps) * dt
    q_ref, qd_ref, qdd_ref = motion.sample(t_ref)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        world = MujocoWorld(urdf, dt=dt, rotor_inertia=rotor_inertia, initial_q=q_ref[0])
        truth = RobotModel.from_urdf(urdf)
    truth.pin_model.armature[:] = rotor_inertia
    feedforward = np.array([truth.inverse_dynamics(*s) for s in zip(q_ref, qd_ref, qdd_ref)])
    run = world.run_position(q_ref, qd_ref, feedforward)
    rng = np.random.default_rng(seed)
    return (run.t, run.q + noise[0] * rng.standard_normal(run.q.shape),
            run.qd + noise[1] * rng.standard_normal(run.q.shape),
            run.effort + noise[2] * rng.standard_normal(run.q.shape))


def mirror_residuals(model, t, q, qd, effort, *, skip_s=0.5, cutoff_hz=40.0):
    """
    Effort residuals of ``model`` through :class:`twin_sim.mirror.Mirror`, as the twin forms them.

    Returns the residuals (M, n) N·m of the samples after the first ``skip_s`` (the
    mirror's filters start), and their stamps (M,). ``cutoff_hz`` is the Mirror's
    ``accel_cutoff_hz`` (its default 40 Hz).
    """
    from twin_sim.mirror import Mirror
    from twin_sim.predictor import Predictor

    mirror = Mirror(Predictor(model), accel_cutoff_hz=cutoff_hz)
    out, stamps = [], []
    for k in range(len(t)):
        r = mirror.update(t[k], q[k], qd[k], effort[k])
        if r is not None and t[k] - t[0] >= skip_s:
            out.append(r.effort_residual)
            stamps.append(t[k])
    return np.array(out), np.array(stamps)


def block_means(values, stamps, block_s=0.02):
    """Means of ``values`` (M, n) over consecutive ``block_s`` of ``stamps`` (the detectors')."""
    index = np.floor((stamps - stamps[0]) / block_s).astype(int)
    counts = np.bincount(index)
    sums = np.stack([np.bincount(index, weights=values[:, j]) for j in range(values.shape[1])],
                    axis=1)
    return sums[counts > 0] / counts[counts > 0, None]
