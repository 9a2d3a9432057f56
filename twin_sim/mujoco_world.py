"""
A MuJoCo world of one fixed-base arm from a URDF: a second physics engine for the robot side.

:class:`MujocoWorld` simulates the same robots as :class:`twin_sim.world.SimWorld` (PyBullet),
with MuJoCo (https://mujoco.org). It is the robot side of fast what-if runs and a second,
independent engine for training data: a twin that predicts with pinocchio then meets physics it
does not share. The twin's own world stays PyBullet.

What the world models:

* Bodies from the URDF (``<inertial>`` as written; visual and collision geometry dropped, no
  contacts), joint limits, gravity. Identified or randomized parameters come in as a URDF
  (:func:`twin_sim.randomization.write_variant_urdf`, :func:`write_identified_urdf`).
* Joint losses, per joint: viscous damping ``-b qd`` (URDF ``<dynamics damping>``), Coulomb
  friction as MuJoCo's *friction loss* (URDF ``<dynamics friction>``: a constraint solved with
  the dynamics, so joints stick and slip), rotor inertia (MuJoCo's *armature*; the URDF has
  none, give ``rotor_inertia``).
* The drive, in the engine (MuJoCo actuators, so a whole trajectory runs in C): position mode
  is a PID on the arm's inertia modes plus a feed-forward torque per joint,
  ``tau = tau_ff + K_p e + K_d (qd_ref - qd) + K_i int(e dt)``, ``e = q_ref - q``, with
  ``K = k V diag(lambda) V^T`` from the eigen-decomposition ``V diag(lambda) V^T`` of a gain
  inertia (the mass matrix at the initial pose plus the rotor inertia): each mode is a fixed
  tendon with MuJoCo's PID actuator, so the gains couple the joints like a computed-torque
  loop frozen at that pose (``k_p = 3 w^2``, ``k_d = 3 w``, ``k_i = w^3``: a triple pole at
  ``-w``, ``w = control_bandwidth``, default ``0.2 / dt``). Per-joint gains would be unstable
  on the light, coupled wrist joints at these rates. Where the arm's inertia ``M(q)`` differs
  from the gain inertia, each mode's loop is ``s^3 + rho (3 w s^2 + 3 w^2 s + w^3)`` with
  ``rho`` a ratio of the gain inertia to ``M(q)``: unstable for ``rho < 1/9`` (too little
  damping against the integral) and, stepped explicitly, for ``rho`` above about 2.9. One
  gain inertia cannot serve a far-reaching motion (an excitation trajectory changes a joint's
  inertia twentyfold), so :meth:`MujocoWorld.run_position` can schedule the gains: it splits
  the run where ``rho`` along the reference would leave ``[1/2, 2]`` (:data:`GAIN_BAND`) and
  retunes each piece from ``M(q_ref)`` there, keeping the loop's integral torque. The
  feed-forward (e.g. the robot's inverse dynamics along the reference, computed once) is the
  caller's. Torque mode applies ``tau``. The joint's total drive torque is clipped to its
  effort limit.
* The force-torque sensor: the wrench ``[fx, fy, fz, tx, ty, tz]`` (N, N·m) that the bodies
  distal to ``ft_link`` (tool, payload) exert on the sensor, in the ``ft_link`` frame, torque
  about its origin (docs/conventions.md, the same as :meth:`RobotModel.ft_wrench`). The
  sensor link's own inertia is on the robot side of the sensing plane (moved to a body
  ``twin_sensor_body`` fixed to its parent).
* A payload (a body ``twin_payload`` fixed to the payload frame), an external force on a
  link, a seized joint, lower torque limits: what the physical faults of
  :mod:`twin_sim.faults` ask for.

Stepping is MuJoCo's semi-implicit Euler at a fixed ``dt`` with every force explicit (its
implicit damping off), so the recorded motor torque and sensor wrench are exactly those that
acted over the step (an implicit integrator would act with other forces than it reports),
and friction loss is solved by PGS. Either one step at a time
(:meth:`MujocoWorld.step`, :meth:`MujocoWorld.measure`) or a whole trajectory in MuJoCo's C
``rollout`` (:meth:`MujocoWorld.run_position`), which returns every sample at once.

Sample timing is :class:`SimWorld`'s: the sample at ``t = k dt`` has the state at the end of
step ``k``, the motor torque applied over that step and the sensor wrench of that step.
"""
from dataclasses import dataclass
import math
from pathlib import Path
from typing import Optional
import xml.etree.ElementTree as ElementTree

import mujoco
from mujoco import rollout as mj_rollout
import numpy as np
from twin_sim import urdf_rewrite
from twin_sim.urdf_model import DEFAULT_FT_LINK, GRAVITY, RobotModel, URDFError
from twin_sim.world import _as_vector, Measurement, WorldError

__all__ = ['MujocoWorld', 'MujocoWorldError', 'Trajectory', 'PAYLOAD_BODY', 'SENSOR_BODY',
           'GAIN_BAND', 'GAIN_CHECK_S', 'gain_inertia_along']

#: Name of the body that carries the payload (fixed to the payload frame).
PAYLOAD_BODY = 'twin_payload'
#: Name of the body that carries the sensor link's own inertia (robot side).
SENSOR_BODY = urdf_rewrite.SENSOR_BODY
_SITE = 'twin_ft_site'
_MODES = ('position', 'torque')
#: The gains are retuned (:meth:`MujocoWorld.gain_schedule`) where a ratio of the gain inertia
#: to the arm's inertia leaves ``[1 / GAIN_BAND, GAIN_BAND]``. Each mode's loop is
#: ``s^3 + rho (3 w s^2 + 3 w^2 s + w^3)``: stable for ``rho > 1/9`` (Routh; lower, the integral
#: wins and the loop oscillates ever more) and, stepped explicitly at ``w dt = 0.2``, up to
#: ``rho`` of about 2.9 (measured on the built-in arm). 2 leaves room on both sides.
GAIN_BAND = 2.0
#: Interval of the reference poses :meth:`MujocoWorld.gain_schedule` checks, s.
GAIN_CHECK_S = 0.01


class MujocoWorldError(ValueError):
    """Bad input to :class:`MujocoWorld`; the message says what was wrong and what to do."""


@dataclass
class Trajectory:
    """
    Samples of a run, one per step (model joint order).

    Attributes
    ----------
    t : (T,) s
        Stamps: the world time at the end of each step.
    q : (T, n) rad
        Joint positions.
    qd : (T, n) rad/s
        Joint velocities.
    effort : (T, n) N·m
        Motor torque applied over each step (after the effort limits).
    wrench : (T, 6) or None
        Force-torque reading ``[fx, fy, fz, tx, ty, tz]`` (N, N·m) of each step, ``ft_link``
        frame; None without a sensor.

    """

    t: np.ndarray
    q: np.ndarray
    qd: np.ndarray
    effort: np.ndarray
    wrench: Optional[np.ndarray] = None


def _vector(value, n, what, names):
    try:
        return _as_vector(value, n, what, names)
    except WorldError as exc:
        raise MujocoWorldError(str(exc)) from None


def _rows(value, steps, n, what):
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != n or (steps is not None and arr.shape[0] != steps):
        want = f'({steps if steps is not None else "T"}, {n})'
        raise MujocoWorldError(f'{what}: expected shape {want} (steps, joints), got {arr.shape}')
    if not np.all(np.isfinite(arr)):
        raise MujocoWorldError(f'{what}: values must be finite')
    return arr


def _mujoco_urdf(path, ft_link):
    """
    Return the URDF text MuJoCo compiles: geometry dropped, sensor body moved, no fusing.

    ``<mimic>`` is dropped too: every joint moves on its own, as in the twin's model.

    MuJoCo's URDF import would merge links on fixed joints into their parents
    (``fusestatic``); the sensor link must stay a body of its own to carry the sensor site.
    """
    try:
        root = urdf_rewrite.parse(path)
        urdf_rewrite.drop_geometry(root)
        if ft_link is not None:
            urdf_rewrite.move_sensor_body(root, ft_link, path)
    except urdf_rewrite.URDFRewriteError as exc:
        raise MujocoWorldError(str(exc)) from exc
    for element in root.findall('mujoco'):
        root.remove(element)
    # MuJoCo would couple a <mimic> joint to its leader by an equality constraint; the twin's
    # model (and PyBullet) move it on its own (RobotModel warns), so must the simulated robot
    for joint in root.findall('joint'):
        for element in joint.findall('mimic'):
            joint.remove(element)
    urdf_rewrite.add_tiny_inertials(root)
    extension = ElementTree.SubElement(root, 'mujoco')
    ElementTree.SubElement(extension, 'compiler', fusestatic='false', discardvisual='true',
                           balanceinertia='false', inertiafromgeom='false', autolimits='true',
                           strippath='false')
    return ElementTree.tostring(root, encoding='unicode')


def _payload_parts(payload):
    """Return ``(mass, com (3,), principal inertia (3,), quaternion wxyz (4,))``."""
    if payload is None:
        return 0.0, np.zeros(3), np.zeros(3), np.array([1.0, 0.0, 0.0, 0.0])
    try:
        mass = float(payload.mass)
        com = np.array(payload.com, dtype=float).reshape(3)
        inertia = np.array(getattr(payload, 'inertia', None) if getattr(payload, 'inertia', None)
                           is not None else np.zeros((3, 3)), dtype=float)
    except (AttributeError, TypeError, ValueError) as exc:
        raise MujocoWorldError(f'payload must have mass (kg), com (3,) m and inertia (3, 3) '
                               f'kg m^2, got {payload!r}') from exc
    if inertia.shape == (3,):
        inertia = np.diag(inertia)
    if inertia.shape != (3, 3) or not (math.isfinite(mass) and mass >= 0.0
                                       and np.all(np.isfinite(com))
                                       and np.all(np.isfinite(inertia))):
        raise MujocoWorldError(f'payload: mass >= 0, finite com (3,) and inertia (3, 3) '
                               f'needed, got {payload!r}')
    principal, axes = np.linalg.eigh(0.5 * (inertia + inertia.T))
    if np.linalg.det(axes) < 0.0:
        axes[:, 2] = -axes[:, 2]
    quat = np.empty(4)
    mujoco.mju_mat2Quat(quat, np.ascontiguousarray(axes).reshape(-1))
    return mass, com, np.maximum(principal, 0.0), quat


def gain_inertia_along(model, q_path, payload=None, rotor_inertia=None, margin=2.0):
    """
    Return one gain inertia for a whole path (a compromise; prefer scheduled gains).

    The mass matrix at the path's first pose, scaled down where the arm gets lighter than that
    along the path: by ``margin / r`` when ``r``, the largest ``lambda_max(M(q)^-1 M_0)`` over
    the path, exceeds ``margin``. At the default bandwidth the explicit loop is stable up to
    ``r`` of about 2.9 (measured on the built-in arm); ``margin`` 2 leaves room, and keeps the
    full gains for the moderate motions that never get there. Scaling down has its own bound:
    where the arm gets heavier than ``9x`` the gain inertia the loop oscillates (see the module
    docstring), so a path whose inertia spans more than that (an excitation trajectory) needs
    :meth:`MujocoWorld.run_position` with ``schedule_gains=True`` instead.

    Parameters
    ----------
    model : RobotModel
        The robot (its :meth:`~RobotModel.mass_matrix`).
    q_path : (T, n) rad
        Poses along the motion (a few per second are enough).
    payload : Payload, optional
        The payload the arm carries.
    rotor_inertia : (n,) kg m^2, optional
        Reflected rotor inertia per joint (default 0).
    margin : float
        Largest inertia ratio left unscaled (>= 1).

    Returns
    -------
    (n, n) kg m^2

    """
    q_path = np.atleast_2d(np.asarray(q_path, dtype=float))
    rotor = np.zeros(model.n) if rotor_inertia is None else np.asarray(rotor_inertia, float)
    first = model.mass_matrix(q_path[0], payload=payload) + np.diag(rotor)
    worst = 1.0
    for q in q_path[1:]:
        mass = model.mass_matrix(q, payload=payload) + np.diag(rotor)
        ratio = np.linalg.eigvals(np.linalg.solve(mass, first))
        worst = max(worst, float(np.max(np.abs(ratio))))
    return first * min(1.0, float(margin) / worst)


class MujocoWorld:
    """
    A MuJoCo world with one fixed-base robot from a URDF (see the module docstring).

    Parameters
    ----------
    urdf_path : str or Path
        The robot's URDF (revolute, continuous and prismatic joints); e.g. a variant written
        by :func:`twin_sim.randomization.write_variant_urdf`.
    dt : float
        Fixed time step, s.
    ft_link : str or None
        The force-torque sensor link (child of a fixed joint); None or a robot without it: no
        sensor, samples carry ``wrench=None``.
    gravity : (3,) m/s^2
        World gravity.
    joint_damping, joint_friction : (n,), optional
        Viscous damping (N·m·s/rad) and Coulomb friction (N·m) per joint; default the URDF's
        ``<dynamics damping friction>``.
    rotor_inertia : (n,) kg m^2, optional
        Reflected rotor inertia per joint (MuJoCo armature); default 0.
    payload : Payload, optional
        Rigid payload on the payload frame (``ft_link``, else the last joint's child link).
    control_bandwidth : float, optional
        ``w`` of the position loop, rad/s (default ``0.2 / dt``).
    gain_inertia : (n, n) kg m^2, optional
        Inertia the gains are scaled with (symmetric positive definite); default the mass
        matrix at ``initial_q`` with the payload, plus the rotor inertia.
    initial_q : (n,) rad, optional
        Initial pose (default zeros clipped into the limits).
    friction_timeconst_s : float, optional
        Time constant of MuJoCo's soft friction-loss constraint, s (default ``2 dt``, the
        stiffest MuJoCo recommends: joints stick with little creep).
    integrator : {'euler', 'implicitfast'}
        ``'euler'`` (default): every force explicit, so ``effort`` and ``wrench`` are exactly
        what acted. With gains from one pose the explicit loop is stable for moderate motions
        but can diverge on fast, far-reaching ones; ``run_position(..., schedule_gains=True)``
        keeps it stable along any reference. ``'implicitfast'`` integrates the drive's damping
        implicitly and stays stable,
        but the recorded effort and wrench are then computed before that implicit
        correction (off by the damping's share over the step).

    Attributes
    ----------
    joint_names : tuple of str
        Model joint order (as :class:`RobotModel`).
    n : int
    model : RobotModel
        The pinocchio model of the same URDF (limits, frames; the caller's feed-forward).
    lower, upper, velocity_limit, effort_limit : (n,) ndarray
        From the URDF (``effort_limit`` inf where the URDF gives none).
    mj_model, mj_data : mujoco.MjModel, mujoco.MjData
        The engine's model and state (for the rare need; prefer the methods).

    Raises
    ------
    MujocoWorldError
        Unreadable or unsupported URDF, bad arrays, a sensor link not on a fixed joint.

    """

    def __init__(self, urdf_path, *, dt=0.001, ft_link=DEFAULT_FT_LINK, gravity=GRAVITY,
                 joint_damping=None, joint_friction=None, rotor_inertia=None, payload=None,
                 control_bandwidth=None, gain_inertia=None, initial_q=None,
                 friction_timeconst_s=None, integrator='euler'):
        self.urdf_path = Path(urdf_path)
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0.0):
            raise MujocoWorldError(f'dt must be a positive number of seconds, got {dt}')
        self.dt = dt
        try:
            self.model = RobotModel.from_urdf(self.urdf_path, ft_link=ft_link)
        except URDFError as exc:
            raise MujocoWorldError(str(exc)) from exc
        model = self.model
        self.joint_names = tuple(model.joint_names)
        self.n = n = model.n
        self.ft_link = model.ft_frame
        self.lower = np.asarray(model.lower, dtype=float)
        self.upper = np.asarray(model.upper, dtype=float)
        self.velocity_limit = np.asarray(model.velocity_limit, dtype=float)
        self.effort_limit = np.where(model.effort_limit > 0.0, model.effort_limit, np.inf)
        names = self.joint_names
        damping = (model.damping if joint_damping is None
                   else np.abs(_vector(joint_damping, n, 'joint_damping', names)))
        friction = (model.friction if joint_friction is None
                    else np.abs(_vector(joint_friction, n, 'joint_friction', names)))
        armature = (np.zeros(n) if rotor_inertia is None
                    else np.abs(_vector(rotor_inertia, n, 'rotor_inertia', names)))
        tc = 2.0 * dt if friction_timeconst_s is None else float(friction_timeconst_s)
        if not (math.isfinite(tc) and tc > 0.0):
            raise MujocoWorldError(f'friction_timeconst_s must be > 0 s, got {tc}')
        gravity = _vector(gravity, 3, 'gravity', ['x', 'y', 'z'])
        if integrator not in ('euler', 'implicitfast'):
            raise MujocoWorldError(f"integrator must be 'euler' or 'implicitfast', got "
                                   f'{integrator!r}')
        self._integrator = integrator
        spec = self._spec(gravity, damping, friction, armature, tc)
        try:
            self.mj_model = spec.compile()
        except ValueError as exc:
            hint = ''
            if 'A + B >= C' in str(exc):
                # (not rebalanced here: the world would differ from the URDF without a word;
                # PyBullet's zeroing is at least printed by PyBullet itself)
                hint = ("; a body's inertia in the URDF breaks the triangle inequality (no "
                        'rigid body has it): correct it there, or use the PyBullet engine, '
                        'which sets such an inertia to zero')
            raise MujocoWorldError(f'MuJoCo cannot compile {self.urdf_path}: '
                                   f'{str(exc).strip()}{hint}') from exc
        self.mj_data = mujoco.MjData(self.mj_model)
        self._index(spec)
        q0 = np.clip(np.zeros(n), self.lower, self.upper) if initial_q is None else \
            _vector(initial_q, n, 'initial_q', names)
        self.q0 = q0
        self._base_friction = friction.copy()
        self._base_damping = damping.copy()
        self._friction_scale = np.ones(n)
        self._friction_add = np.zeros(n)
        self.payload = None
        self.set_payload(payload)
        self.reset(q0)
        self._armature = armature
        self._set_gains(control_bandwidth, gain_inertia, armature)
        self.set_control('position', q0)

    # ------------------------------------------------------------------ model set-up
    def _spec(self, gravity, damping, friction, armature, friction_tc):
        spec = mujoco.MjSpec.from_string(_mujoco_urdf(self.urdf_path, self.ft_link))
        spec.option.timestep = self.dt
        spec.option.gravity = gravity
        spec.option.integrator = (mujoco.mjtIntegrator.mjINT_EULER if self._integrator == 'euler'
                                  else mujoco.mjtIntegrator.mjINT_IMPLICITFAST)
        spec.option.solver = mujoco.mjtSolver.mjSOL_PGS     # fastest here for joint friction
        spec.option.disableflags |= (mujoco.mjtDisableBit.mjDSBL_CONTACT |
                                     mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
        joints = {j.name: j for j in spec.joints}
        missing = [j for j in self.joint_names if j not in joints]
        if missing:
            raise MujocoWorldError(f'MuJoCo did not load joints {missing} of {self.urdf_path}')
        for i, name in enumerate(self.joint_names):
            joint = joints[name]
            joint.damping = [float(damping[i]), 0.0, 0.0]   # linear damping only
            joint.frictionloss = float(friction[i])
            joint.armature = float(armature[i])
            joint.solref_friction = [friction_tc, 1.0]
            joint.solimp_friction = [0.999, 0.9999, 0.001, 0.5, 2.0]   # stick: little creep
            limit = self.effort_limit[i]
            # the effort limit clips the drive's total torque (PID + feed-forward)
            joint.actfrclimited = (mujoco.mjtLimited.mjLIMITED_TRUE if math.isfinite(limit)
                                   else mujoco.mjtLimited.mjLIMITED_FALSE)
            if math.isfinite(limit):
                joint.actfrcrange = [-limit, limit]
            spec.add_actuator(name=f'twin_ff_{name}', target=name,
                              trntype=mujoco.mjtTrn.mjTRN_JOINT).set_to_motor()
            lock = spec.add_equality(name=f'twin_lock_{name}', type=mujoco.mjtEq.mjEQ_JOINT,
                                     name1=name, objtype=mujoco.mjtObj.mjOBJ_JOINT)
            lock.active = False
            lock.solref = [2.0 * self.dt, 1.0]
        # the feedback acts along the eigenvectors of the gain inertia (fixed tendons), so that
        # K = V diag(lambda) V^T couples the joints like a computed-torque loop; the tendon
        # coefficients are set after compiling (tendon i: L_i = V[:, i] . q)
        for i in range(self.n):
            tendon = spec.add_tendon(name=f'twin_mode_{i}')
            for name in self.joint_names:
                tendon.wrap_joint(name, 1.0)
            pid = spec.add_actuator(name=f'twin_pid_{i}', target=f'twin_mode_{i}',
                                    trntype=mujoco.mjtTrn.mjTRN_TENDON)
            pid.set_to_pid(kp=1.0, kv=1.0, ki=1.0, ctrlspec=3)   # gains set after compiling
        spec.body(self.model.payload_frame).add_body(name=PAYLOAD_BODY, mass=0.0)
        for name in self.joint_names:
            spec.add_sensor(name=f'twin_effort_{name}', type=mujoco.mjtSensor.mjSENS_JOINTACTFRC,
                            objtype=mujoco.mjtObj.mjOBJ_JOINT, objname=name)
        if self.ft_link is not None:
            spec.body(self.ft_link).add_site(name=_SITE)
            for kind, sensor in (('force', mujoco.mjtSensor.mjSENS_FORCE),
                                 ('torque', mujoco.mjtSensor.mjSENS_TORQUE)):
                spec.add_sensor(name=f'twin_ft_{kind}', type=sensor,
                                objtype=mujoco.mjtObj.mjOBJ_SITE, objname=_SITE)
        return spec

    def _index(self, spec):
        m = self.mj_model
        jid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, j) for j in self.joint_names]
        allowed = (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE))
        if any(int(m.jnt_type[j]) not in allowed for j in jid):
            raise MujocoWorldError(f'{self.urdf_path}: only hinge and slide joints are '
                                   'supported (a fixed-base arm)')
        self._qadr = np.array([m.jnt_qposadr[j] for j in jid])
        self._vadr = np.array([m.jnt_dofadr[j] for j in jid])
        self._pid = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f'twin_pid_{i}')
                              for i in range(self.n)])
        self._tendon = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_TENDON,
                                                   f'twin_mode_{i}') for i in range(self.n)])
        ff = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f'twin_ff_{j}')
                       for j in self.joint_names])
        # control vector: (position, velocity) of each mode's PID, each joint's feed-forward
        self._ctrl_pos = m.actuator_ctrladr[self._pid]
        self._ctrl_vel = self._ctrl_pos + 1
        self._ctrl_ff = m.actuator_ctrladr[ff]
        self._jnt = np.array(jid)
        self._eq = np.array([mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_EQUALITY,
                                               f'twin_lock_{j}') for j in self.joint_names])
        self._payload_body = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, PAYLOAD_BODY)
        self._body_ids = {m.body(i).name: i for i in range(m.nbody)}
        n = self.n
        # sensordata layout: n efforts, then force (3) and torque (3)
        self._has_ft = self.ft_link is not None
        self._nsens = n + (6 if self._has_ft else 0)
        self._state_spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        self._qpos_off = 1                           # [time, qpos, qvel, ...]
        self._qvel_off = 1 + m.nq
        self._locked = {}

    def set_gains(self, gain_inertia=None, control_bandwidth=None):
        """
        Retune the position loop (long motions: ``run_position(..., schedule_gains=True)``).

        Parameters
        ----------
        gain_inertia : (n, n) kg m^2, optional
            Default: the mass matrix at ``initial_q`` (with the payload and rotor inertia).
        control_bandwidth : float, optional
            rad/s; default ``0.2 / dt``.

        """
        self._set_gains(control_bandwidth, gain_inertia, self._armature)
        mode, self._mode = getattr(self, '_mode', None), None
        if mode is not None:
            self._set_mode(mode)

    def _set_gains(self, bandwidth, gain_inertia, armature):
        """
        Put the feedback ``K = k V diag(lambda) V^T`` on the modes (tendons) of the gain inertia.

        ``kp = 3 w^2``, ``kd = 3 w``, ``ki = w^3`` times the inertia matrix: a triple pole at
        ``-w`` where the arm's inertia equals the gain inertia (the mass matrix at the initial
        pose, plus the rotor inertia, unless given).
        """
        w = 0.2 / self.dt if bandwidth is None else float(bandwidth)
        if not (math.isfinite(w) and w > 0.0):
            raise MujocoWorldError(f'control_bandwidth must be > 0 rad/s, got {w}')
        n = self.n
        if gain_inertia is None:
            gain_inertia = (self.model.mass_matrix(self.q0, payload=self.payload)
                            + np.diag(armature))
        inertia = np.asarray(gain_inertia, dtype=float)
        if inertia.shape != (n, n) or not np.all(np.isfinite(inertia)):
            raise MujocoWorldError(f'gain_inertia must be a finite ({n}, {n}) matrix, got shape '
                                   f'{inertia.shape}')
        lam, vec = np.linalg.eigh(0.5 * (inertia + inertia.T))
        if lam[0] <= 0.0:
            raise MujocoWorldError('gain_inertia must be positive definite')
        m = self.mj_model
        row = {j: k for k, j in enumerate(self._jnt)}
        for i, t in enumerate(self._tendon):
            for w_adr in range(m.tendon_adr[t], m.tendon_adr[t] + m.tendon_num[t]):
                m.wrap_prm[w_adr] = vec[row[m.wrap_objid[w_adr]], i]
        self.bandwidth = w
        self.gain_inertia = inertia
        self._modes = vec                          # (n joints, n modes)
        self._mode_gains = (3.0 * w * w * lam, 3.0 * w * lam, w ** 3 * lam)   # kp, kd, ki
        # anti-windup: each mode's integral force is capped at a tenth of what the joints'
        # effort limits give along it (the integral only has to take up friction and errors)
        limit = np.where(np.isfinite(self.effort_limit), self.effort_limit, 0.0)
        cap = 0.1 * np.abs(vec).T @ limit
        self._integral_cap = np.where(cap > 0.0, cap, np.inf)

    # ------------------------------------------------------------------ state
    @property
    def time(self):
        """World time, s."""
        return float(self.mj_data.time)

    def reset(self, q=None, qd=None):
        """
        Put the arm at ``q`` (default :attr:`q0`) with velocity ``qd`` (default 0), time 0.

        Friction, limits, locks, forces and the payload are kept.
        """
        q = self.q0 if q is None else _vector(q, self.n, 'reset q', self.joint_names)
        if qd is None:
            qd = np.zeros(self.n)
        else:
            qd = _vector(qd, self.n, 'reset qd', self.joint_names)
        d = self.mj_data
        mujoco.mj_resetData(self.mj_model, d)
        d.qpos[self._qadr] = q
        d.qvel[self._vadr] = qd
        for name in list(self._locked):
            self._locked[name] = float(q[self.joint_names.index(name)])
            self._engage_lock(name)
        mujoco.mj_forward(self.mj_model, d)

    def state(self):
        """Return ``(q (n,) rad, qd (n,) rad/s)`` now."""
        d = self.mj_data
        return d.qpos[self._qadr].copy(), d.qvel[self._vadr].copy()

    # ------------------------------------------------------------------ control
    def set_control(self, mode, target, velocity=None, feedforward=None):
        """
        Choose the control mode and its target (held until the next call).

        Parameters
        ----------
        mode : {'position', 'torque'}
            ``'position'``: the engine's PID + feed-forward; ``'torque'``: apply ``target``.
        target : (n,)
            Positions (rad, clipped to the limits) or torques (N·m); the total drive torque
            is clipped to the effort limits.
        velocity : (n,) rad/s, optional
            Position mode: reference velocity (default 0).
        feedforward : (n,) N·m, optional
            Position mode: feed-forward torque (default 0).

        """
        if mode not in _MODES:
            raise MujocoWorldError(f'control mode must be one of {_MODES}, got {mode!r}')
        names, n = self.joint_names, self.n
        target = _vector(target, n, f'{mode} target', names)
        self._set_mode(mode)
        if mode == 'torque':
            self.mj_data.ctrl[:] = self._ctrl_rows(None, None, target)
            return
        qd = np.zeros(n) if velocity is None else _vector(velocity, n, 'velocity', names)
        ff = (np.zeros(n) if feedforward is None
              else _vector(feedforward, n, 'feedforward', names))
        self.mj_data.ctrl[:] = self._ctrl_rows(target, qd, ff)

    def _ctrl_rows(self, q, qd, ff):
        """Control vectors ``(..., nu)`` from ``(..., n)`` targets (None: zero)."""
        shape = np.shape(ff)[:-1]
        ctrl = np.zeros(shape + (self.mj_model.nu,))
        if q is not None:     # references of the modes: V^T q, V^T qd
            q = np.minimum(np.maximum(q, self.lower), self.upper)
            ctrl[..., self._ctrl_pos] = q @ self._modes
            ctrl[..., self._ctrl_vel] = qd @ self._modes
        ctrl[..., self._ctrl_ff] = ff
        return ctrl

    def _set_mode(self, mode):
        if getattr(self, '_mode', None) == mode:
            return
        m, d = self.mj_model, self.mj_data
        on = mode == 'position'
        kp, kd, ki = self._mode_gains
        for i, a in enumerate(self._pid):
            m.actuator_gainprm[a, 0] = ki[i] if on else 0.0
            m.actuator_biasprm[a, 1] = -kp[i] if on else 0.0
            m.actuator_biasprm[a, 2] = -kd[i] if on else 0.0
            cap = self._integral_cap[i]
            m.actuator_dynprm[a, 0] = cap if np.isfinite(cap) else 0.0   # MuJoCo's imax
            d.act[m.actuator_actadr[a]] = 0.0          # the integral starts anew
        self._mode = mode

    @property
    def control_mode(self):
        """Return the current control mode."""
        return self._mode

    # ------------------------------------------------------------------ stepping
    def step(self, n_steps=1):
        """Advance ``n_steps`` fixed steps of ``dt`` under the current control."""
        n_steps = int(n_steps)
        if n_steps > 0:
            mujoco.mj_step(self.mj_model, self.mj_data, nstep=n_steps)

    def measure(self):
        """
        Return the sample at the current time (:class:`~twin_sim.world.Measurement`).

        ``effort`` and ``wrench`` are those of the last step (zero before the first).
        """
        d = self.mj_data
        sens = d.sensordata
        n = self.n
        wrench = self._wrench(sens[n:n + 6]) if self._has_ft else None
        return Measurement(self.time, d.qpos[self._qadr].copy(), d.qvel[self._vadr].copy(),
                           sens[:n].copy(), wrench)

    @staticmethod
    def _wrench(raw):
        """Return the reading: MuJoCo gives what the sensor exerts on the distal bodies."""
        return -np.asarray(raw, dtype=float)

    def run_position(self, q_ref, qd_ref=None, feedforward=None, schedule_gains=False):
        """
        Follow a position reference for ``len(q_ref)`` steps in MuJoCo's C rollout.

        Step ``k`` runs with the targets of row ``k``; the world ends at the last state. With
        ``schedule_gains`` the run is split where the arm's inertia along the reference leaves
        the band the gains are stable in, and each piece is retuned from the mass matrix at
        its first reference pose (:meth:`gain_schedule`); the loop's integral torque carries
        over. The world keeps the last gains.

        Parameters
        ----------
        q_ref : (T, n) rad
            Reference positions (clipped to the limits).
        qd_ref : (T, n) rad/s, optional
            Reference velocities (default 0).
        feedforward : (T, n) N·m, optional
            Feed-forward torques (default 0).
        schedule_gains : bool
            Retune the loop along the reference (default False: the gains as they are).

        Returns
        -------
        Trajectory
            ``T`` samples, stamps ``time + dt .. time + T dt``.

        """
        q_ref = _rows(q_ref, None, self.n, 'q_ref')
        steps = q_ref.shape[0]
        qd_ref = (np.zeros_like(q_ref) if qd_ref is None
                  else _rows(qd_ref, steps, self.n, 'qd_ref'))
        ff = (np.zeros_like(q_ref) if feedforward is None
              else _rows(feedforward, steps, self.n, 'feedforward'))
        self._set_mode('position')
        if not schedule_gains:
            return self._rollout(self._ctrl_rows(q_ref, qd_ref, ff))
        parts = []
        for k0, k1, inertia in self.gain_schedule(q_ref):
            if inertia is not None:
                self._retune(inertia)
            parts.append(self._rollout(self._ctrl_rows(q_ref[k0:k1], qd_ref[k0:k1], ff[k0:k1])))
        if len(parts) == 1:
            return parts[0]
        wrench = None if parts[0].wrench is None else np.concatenate([p.wrench for p in parts])
        return Trajectory(*(np.concatenate([getattr(p, f) for p in parts])
                            for f in ('t', 'q', 'qd', 'effort')), wrench)

    def inertia_at(self, q):
        """
        Return the engine's joint-space inertia at poses ``q``: ``(K, n, n)`` kg m^2.

        MuJoCo's own mass matrix of the arm as it is now (bodies, payload, rotor inertia), at
        each row of ``q`` (``(K, n)`` rad); the world's state is not touched.
        """
        q = np.atleast_2d(np.asarray(q, dtype=float))
        m = self.mj_model
        scratch = getattr(self, '_scratch', None)
        if scratch is None:
            scratch = self._scratch = mujoco.MjData(m)
        out = np.empty((q.shape[0], m.nv, m.nv))
        for k, pose in enumerate(q):
            scratch.qpos[self._qadr] = pose
            mujoco.mj_kinematics(m, scratch)
            mujoco.mj_comPos(m, scratch)
            mujoco.mj_makeM(m, scratch)
            mujoco.mj_fullM(m, scratch, out[k])
        if m.nv == self.n and np.array_equal(self._vadr, np.arange(self.n)):
            return out
        return out[:, self._vadr][:, :, self._vadr]

    def gain_schedule(self, q_ref, band=GAIN_BAND, every_s=GAIN_CHECK_S):
        """
        Split a position reference where the arm's inertia leaves the band of the gains.

        The loop's modes are stable while every ratio ``rho`` of the gain inertia to the arm's
        inertia (the generalized eigenvalues of ``(gain inertia, M(q))``) lies in
        ``[1 / band, band]`` (see :data:`GAIN_BAND`). The reference's poses are checked every
        ``every_s`` (against the current gains first); where one falls outside, a piece starts
        with the gain inertia ``M(q_ref)`` of that pose (:meth:`inertia_at`).

        Parameters
        ----------
        q_ref : (T, n) rad
            Reference positions.
        band : float
            Largest ratio either way (> 1).
        every_s : float
            Pose check interval, s.

        Returns
        -------
        list of (k0, k1, inertia)
            Steps ``k0..k1-1`` run with the gain inertia ``inertia`` ((n, n); None: the gains
            as they are); the pieces cover ``0..T``.

        """
        q_ref = _rows(q_ref, None, self.n, 'q_ref')
        steps = q_ref.shape[0]
        every = max(1, int(round(float(every_s) / self.dt)))
        marks = np.arange(0, steps, every)
        mass = self.inertia_at(np.clip(q_ref[marks], self.lower, self.upper))
        band = float(band)
        if not band > 1.0:
            raise MujocoWorldError(f'gain band must be > 1, got {band}')
        pieces, start, j, size = [], (0, None), 0, 4
        inv = np.linalg.inv(np.linalg.cholesky(0.5 * (self.gain_inertia + self.gain_inertia.T)))
        while j < marks.size:
            # ratios M(q) / gain of the poses j.. per mode, in growing windows of poses
            window = mass[j:j + size]
            ratio = np.linalg.eigvalsh(inv @ window @ inv.T)
            out = (ratio[:, -1] > band) | (ratio[:, 0] < 1.0 / band)
            if not out.any():
                j += window.shape[0]
                size = min(2 * size, 64)
                continue
            j += int(np.argmax(out))
            k = int(marks[j])
            if k > start[0]:
                pieces.append((start[0], k, start[1]))
            start = (k, mass[j])
            inv = np.linalg.inv(np.linalg.cholesky(mass[j]))
            j, size = j + 1, 4
        pieces.append((start[0], steps, start[1]))
        return pieces

    def _retune(self, gain_inertia):
        """Put new gains on the running position loop, keeping its integral torque per joint."""
        m, d = self.mj_model, self.mj_data
        adr = m.actuator_actadr[self._pid]
        integral = self._modes @ (self._mode_gains[2] * d.act[adr])     # N m per joint
        self._set_gains(self.bandwidth, gain_inertia, self._armature)
        self._mode = None
        self._set_mode('position')
        d.act[adr] = (self._modes.T @ integral) / self._mode_gains[2]

    def run_torque(self, tau):
        """Apply torques ``tau`` (T, n) N·m for ``T`` steps; return the :class:`Trajectory`."""
        tau = _rows(tau, None, self.n, 'tau')
        self._set_mode('torque')
        return self._rollout(self._ctrl_rows(None, None, tau))

    def _rollout(self, ctrl):
        m, d = self.mj_model, self.mj_data
        steps = ctrl.shape[0]
        if steps == 0:
            raise MujocoWorldError('a run needs at least one step')
        state0 = np.empty(mujoco.mj_stateSize(m, self._state_spec))
        mujoco.mj_getState(m, d, state0, self._state_spec)
        # the user inputs (forces, locks) held as they are now, in every control row
        spec = int(mujoco.mjtState.mjSTATE_CTRL | mujoco.mjtState.mjSTATE_XFRC_APPLIED |
                   mujoco.mjtState.mjSTATE_EQ_ACTIVE)
        user = np.empty(mujoco.mj_stateSize(m, spec))
        mujoco.mj_getState(m, d, user, spec)
        controls = np.repeat(user[None, None, :], steps, axis=1)
        controls[0, :, :m.nu] = ctrl
        state, sens = mj_rollout.rollout(m, d, state0[None], controls, control_spec=spec,
                                         initial_warmstart=d.qacc_warmstart[None].copy())
        state, sens = state[0], sens[0]
        mujoco.mj_setState(m, d, state[-1], self._state_spec)
        d.ctrl[:] = ctrl[-1]
        mujoco.mj_forward(m, d)
        d.sensordata[:] = sens[-1]
        n = self.n
        q = state[:, self._qpos_off + self._qadr]
        qd = state[:, self._qvel_off + self._vadr]
        wrench = self._wrench(sens[:, n:n + 6]) if self._has_ft else None
        return Trajectory(state[:, 0].copy(), q, qd, sens[:, :n].copy(), wrench)

    # ------------------------------------------------------------------ physical changes
    def _joint(self, joint):
        if isinstance(joint, (int, np.integer)) and 0 <= int(joint) < self.n:
            return int(joint)
        try:
            return self.joint_names.index(joint)
        except ValueError:
            raise MujocoWorldError(f'unknown joint {joint!r}; the robot has '
                                   f'{list(self.joint_names)}') from None

    def set_friction(self, scale=None, coulomb_add=None):
        """
        Change joint friction: nominal times ``scale``, plus ``coulomb_add`` N·m Coulomb.

        Parameters
        ----------
        scale : (n,), optional
            Multiplies nominal viscous and Coulomb friction (>= 0; default unchanged).
        coulomb_add : (n,) N·m, optional
            Added to the Coulomb friction (the total is kept >= 0; default unchanged).

        """
        if scale is not None:
            scale = _vector(scale, self.n, 'friction scale', self.joint_names)
            if np.any(scale < 0.0):
                raise MujocoWorldError(f'friction scale must be >= 0, got {scale.tolist()}')
            self._friction_scale = scale
        if coulomb_add is not None:
            self._friction_add = _vector(coulomb_add, self.n, 'friction offset',
                                         self.joint_names)
        m = self.mj_model
        m.dof_damping[self._vadr] = self._base_damping * self._friction_scale
        m.dof_frictionloss[self._vadr] = np.maximum(
            self._base_friction * self._friction_scale + self._friction_add, 0.0)

    def coulomb_friction(self):
        """Return the Coulomb friction per joint now, N·m, ``(n,)``."""
        return self.mj_model.dof_frictionloss[self._vadr].copy()

    def viscous_damping(self):
        """Return the viscous damping per joint now, N·m·s/rad, ``(n,)``."""
        return self.mj_model.dof_damping[self._vadr].copy()

    def set_torque_limit(self, limits):
        """Clip the drive torques at ``limits`` (n,) N·m (inf: none); None: the effort limits."""
        limits = self.effort_limit if limits is None else np.abs(np.asarray(limits, float))
        if limits.shape != (self.n,) or np.any(np.isnan(limits)):
            raise MujocoWorldError(f'torque limits: expected {self.n} values >= 0 or inf, got '
                                   f'{limits!r}')
        m = self.mj_model
        for i, j in enumerate(self._jnt):
            finite = math.isfinite(limits[i])
            m.jnt_actfrclimited[j] = finite
            m.jnt_actfrcrange[j] = [-limits[i], limits[i]] if finite else [0.0, 0.0]

    def torque_limit(self):
        """Return the current torque limits, N·m, ``(n,)``."""
        m = self.mj_model
        return np.array([m.jnt_actfrcrange[j, 1] if m.jnt_actfrclimited[j] else math.inf
                         for j in self._jnt])

    def _engage_lock(self, name):
        i = self.joint_names.index(name)
        e = self._eq[i]
        self.mj_model.eq_data[e, :5] = [self._locked[name], 0.0, 0.0, 0.0, 0.0]
        self.mj_data.eq_active[e] = 1

    def lock_joint(self, joint):
        """Seize a joint at its current position (a stiff equality constraint)."""
        i = self._joint(joint)
        name = self.joint_names[i]
        if name not in self._locked:
            self._locked[name] = float(self.mj_data.qpos[self._qadr[i]])
            self._engage_lock(name)

    def unlock_joint(self, joint):
        """Release a joint locked by :meth:`lock_joint`."""
        i = self._joint(joint)
        if self._locked.pop(self.joint_names[i], None) is not None:
            self.mj_data.eq_active[self._eq[i]] = 0

    @property
    def locked_joints(self):
        """Names of the locked joints."""
        return tuple(self._locked)

    def set_payload(self, payload):
        """
        Attach a payload to the payload frame (None removes it).

        Parameters
        ----------
        payload : Payload or None
            ``mass`` (kg), ``com`` ((3,) m in the payload frame) and ``inertia`` ((3, 3)
            kg m^2 about the centre of mass, payload-frame axes). The default gains are not
            recomputed.

        """
        mass, com, principal, quat = _payload_parts(payload)
        m, b = self.mj_model, self._payload_body
        m.body_mass[b] = mass
        m.body_ipos[b] = com
        m.body_iquat[b] = quat
        m.body_inertia[b] = principal
        # mj_setConst recomputes the derived constants at qpos0, using the data as scratch
        spec = int(mujoco.mjtState.mjSTATE_INTEGRATION)
        state = np.empty(mujoco.mj_stateSize(m, spec))
        mujoco.mj_getState(m, self.mj_data, state, spec)
        sensors = self.mj_data.sensordata.copy()
        mujoco.mj_setConst(m, self.mj_data)
        mujoco.mj_setState(m, self.mj_data, state, spec)
        mujoco.mj_forward(m, self.mj_data)
        self.mj_data.sensordata[:] = sensors
        self.payload = payload

    def link_names(self):
        """Names of the bodies of the loaded model (URDF links plus the world's own)."""
        return tuple(self._body_ids)

    def set_external_force(self, link, force_world, point_world):
        """
        Apply a force to a link from now on (until :meth:`clear_external_forces`).

        Parameters
        ----------
        link : str
            Link (body) name.
        force_world : (3,) N
            Force in the world frame.
        point_world : (3,) m
            Point of application in the world frame.

        """
        if link not in self._body_ids:
            raise MujocoWorldError(f'unknown link {link!r}; links: {sorted(self._body_ids)}')
        force = _vector(force_world, 3, 'external force', 'xyz')
        point = _vector(point_world, 3, 'external force point', 'xyz')
        b = self._body_ids[link]
        d = self.mj_data
        # xfrc_applied acts at the body's centre of mass
        torque = np.cross(point - d.xipos[b], force)
        d.xfrc_applied[b, :3] += force
        d.xfrc_applied[b, 3:] += torque

    def clear_external_forces(self):
        """Remove every external force."""
        self.mj_data.xfrc_applied[:] = 0.0

    def link_pose(self, link):
        """Return ``(position (3,) m, rotation (3, 3))`` of a link frame in the world frame."""
        if link not in self._body_ids:
            raise MujocoWorldError(f'unknown link {link!r}; links: {sorted(self._body_ids)}')
        b = self._body_ids[link]
        d = self.mj_data
        return d.xpos[b].copy(), d.xmat[b].reshape(3, 3).copy()

    def close(self):
        """Release nothing (MuJoCo memory is freed with the object); for symmetry with SimWorld."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
