"""
An independent check of a force-torque reading: what a load exerts on the sensor, from its motion.

:func:`reading_from_kinematics` uses forward kinematics only (finite differences of the sensor
frame's pose) and the laws of Newton and Euler, no dynamics code: it checks the worlds' readings
(:class:`twin_sim.world.SimWorld`, :class:`twin_sim.mujoco_world.MujocoWorld`, and so the
emulated plant's) independently of pinocchio's RNEA, which the PyBullet world's reading uses.
"""
import numpy as np

G = 9.81


def reading_from_kinematics(model, load, q, qd, qdd, h=1e-4):
    """
    Return what the load below the sensor exerts on it, from its motion alone.

    Parameters
    ----------
    model : RobotModel
        The robot with its force-torque sensor frame ``ft_sensor`` (its kinematics only).
    load : pinocchio.Inertia
        What hangs below the sensor (``RobotModel.ft_distal_inertia``: tool and payload), in
        the sensor frame.
    q, qd, qdd : (n,) rad, rad/s, rad/s^2
        The state at the start of the step and the step's acceleration, model joint order.
    h : float
        Finite-difference step, s.

    Returns
    -------
    (6,) N, N·m
        In the sensor frame, torque about its origin. The load moves with the sensor frame
        along ``q + qd t + qdd t^2 / 2``; its centre of mass's acceleration and its angular
        velocity and acceleration come from finite differences of the frame's pose, then
        Newton and Euler give the force and torque on it (gravity ``-G`` along world z).

    """
    mass, com, inertia = load.mass, np.array(load.lever), np.array(load.inertia)

    def pose(t):
        frame = model.frame_pose(q + qd * t + 0.5 * qdd * t * t, 'ft_sensor')
        return frame[:3, :3], frame[:3, 3]

    def omega(t):      # world angular velocity, from R' R^T
        skew = (pose(t + h)[0] - pose(t - h)[0]) @ pose(t)[0].T / (2.0 * h)
        return np.array([skew[2, 1], skew[0, 2], skew[1, 0]])

    def centre(t):
        rotation, origin = pose(t)
        return rotation @ com + origin

    rotation = pose(0.0)[0]
    accel = (centre(h) - 2.0 * centre(0.0) + centre(-h)) / h ** 2
    w, alpha = omega(0.0), (omega(h) - omega(-h)) / (2.0 * h)
    inertia_world = rotation @ inertia @ rotation.T
    force = -rotation.T @ (mass * (accel - np.array([0.0, 0.0, -G])))
    torque = -rotation.T @ (inertia_world @ alpha + np.cross(w, inertia_world @ w))
    return np.concatenate([force, torque + np.cross(com, force)])
