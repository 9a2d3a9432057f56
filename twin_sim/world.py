"""
The simulated world: a PyBullet DIRECT world of one fixed-base arm, stepped at a fixed rate.

:class:`SimWorld` is the physics under the emulated robot (:mod:`twin_sim.plant`). Each world
has its own PyBullet client, so several worlds in one process are independent.

Physics set-up (what PyBullet does and does not do, checked by experiment with pybullet 3.2.7):

* The URDF's ``<dynamics damping>`` *is* applied by PyBullet to multibody joints (as
  ``-damping * qd``, explicitly, at the start of a step); its ``<dynamics friction>`` is
  ignored. PyBullet also gives every link a default linear/angular velocity damping of 0.04,
  which is not physics; the world sets it to 0.
* The world therefore sets both joint losses itself: viscous damping through PyBullet's joint
  damping (``tau = -b * qd``, set per joint, scaled by faults) and Coulomb friction through a
  velocity motor per joint with target velocity 0 and maximum torque ``fc``. That motor is
  solved with the constraints, so it gives true stick-slip (it holds the joint while the other
  torques are below ``fc`` and opposes motion with exactly ``fc`` when it slides) with no
  chattering at 1 kHz. :meth:`SimWorld.friction_torque` reads back the friction torque that
  acted over the last step (viscous part + the motor's reaction).
* Torque control is real: the joint torque is what :meth:`SimWorld.set_control` asks for
  (position and velocity targets go through the world's own computed-torque controller),
  clipped to the effort limits, sent with ``TORQUE_CONTROL`` before every step.
* The URDF is loaded from a rewritten copy: visual and collision geometry are dropped (the
  world has no contacts; collisions are external forces, :meth:`SimWorld.apply_external_force`),
  links without ``<inertial>`` get a negligible one (PyBullet would otherwise give them 1 kg),
  every joint's range is opened (continuous joints become revolute; the ends of the ranges are
  the plant's end stops, below), and a payload, when set, is an extra fixed link
  ``twin_payload`` on the force-torque sensor link. PyBullet reads the
  inertias from the file (``URDF_USE_INERTIA_FROM_FILE``; it diagonalizes them itself).

Force-torque sensor (``ft_link``, the child of a fixed joint): the reading is what a real sensor
measures, the wrench that the bodies below it (the tool, the payload, whatever hangs on them)
exert on it, in the ``ft_link`` frame, torque about its origin (docs/conventions.md). The world
computes it by Newton-Euler on those bodies as the step moved them: pinocchio's RNEA on a model
of the URDF with the current payload (:meth:`RobotModel.ft_wrench_from_data`, world gravity) at
the state at the start of the step, with the step's change of velocity ``(qd_end - qd_start) /
dt`` (PyBullet integrates semi-implicitly: that is the acceleration it applied; the velocity
before :meth:`SimWorld.limit_speed` and :meth:`SimWorld.limit_position` act), plus the step's
external forces on those bodies (:meth:`SimWorld.apply_external_force`). It is not PyBullet's
joint reaction (``enableJointForceTorqueSensor``), which is exact at rest but in motion misses
part of the velocity-product (centripetal and Coriolis) forces of the bodies below the sensor,
an error that grows with the load and with the square of the speed (test/test_world.py checks
the reading against finite differences of the sensor frame's motion). The sensor link's own
body is on the robot side of the sensing plane (as in :meth:`RobotModel.ft_wrench`): the URDF
rewrite moves its inertia to a link ``twin_sensor_body`` fixed to the sensor joint's parent at
the same place, so the PyBullet links below the sensor are the ones the reading counts.

Computed-torque controller (position and velocity modes)::

    tau = M(q) a + C(q, qd) qd + g(q),
    a = qdd_ref + kp e + kd (qd_ref - qd) + ki int(e dt),   e = q_ref - q

evaluated by pinocchio's RNEA on a model of the same URDF including the current payload. The
gains put a triple closed-loop pole at ``-w`` (``kp = 3 w^2``, ``kd = 3 w``, ``ki = w^3``) with
``w = control_bandwidth`` (default ``0.2 / dt`` rad/s, well damped for the explicit 1 kHz loop).
The integral removes the steady error that Coulomb friction would leave on the light wrist
joints; it only integrates while the joint's torque is not saturated (anti-windup). Friction is
not fed forward: the loop rejects it, so the measured effort includes it, as on a real arm. As a
real drive does, the loop never asks a joint for more than its rated speed (the URDF velocity
limit): the PD part is evaluated as a velocity loop on the speed the position error asks,
``qd_ref + (kp / kd) e``, clipped to that limit. The
torque is clipped to the (possibly fault-reduced) effort limits; when a joint saturates, the
others get the torque for their own reference given the acceleration the saturated one really
gets (else the coupling torques meant to cancel its motion would throw the light joints around:
a 2 mrad step of the shoulder's reference drove the wrist to 3 rad/s). Velocity mode integrates
the velocity command into a position reference that may lag the measured position by at most
``velocity_mode_max_lag`` rad.

Torque (effort) mode has no loop to cap, and even a capped loop overshoots its speed a little
(an acceleration feed-forward, a reference pushed against a joint limit); nor are the joint
ranges hard stops in the world's physics (the loaded copy's ranges are opened: PyBullet would
otherwise hold them with a soft constraint of its own, which a push sinks into by up to 0.09
rad and which pushes a joint back out).
:meth:`SimWorld.limit_speed`, called after a step, emulates a drive's velocity limiter: a joint
faster than its URDF velocity limit is set back to that speed (counted in
``over_speed_events``); :meth:`SimWorld.limit_position` an end stop at each end of the range: a
joint that reaches it is put back on it, and while something pushes it on, the stop holds it
there as a constraint of the next steps (the other joints move as they do beside a joint that
cannot move), until the push turns (counted in ``limit_stop_events``). The plant calls both
after every step, in every mode; the bare world does not (its physics stays free), so a
motion inside the limits is the same either way.
"""
from dataclasses import dataclass
import math
from pathlib import Path
import shutil
import tempfile
from typing import Optional
import xml.etree.ElementTree as ElementTree

import numpy as np
import pinocchio as pin

from twin_sim import urdf_rewrite
from twin_sim.quiet_pybullet import pybullet
from twin_sim.urdf_model import DEFAULT_FT_LINK, Payload, RobotModel, URDFError
from twin_sim.urdf_rewrite import TINY_INERTIA, TINY_MASS

__all__ = ['Measurement', 'SimWorld', 'WorldError', 'PAYLOAD_LINK', 'SENSOR_BODY_LINK']

#: Name of the link that carries the payload (a fixed child of the force-torque sensor link).
PAYLOAD_LINK = 'twin_payload'
#: Name of the link that carries the sensor link's own inertia (on the robot side).
SENSOR_BODY_LINK = urdf_rewrite.SENSOR_BODY
_WIDE_LIMIT = 1e6  # rad (or m): the range PyBullet is given for every joint (see above)
_CONTROL_MODES = ('position', 'velocity', 'torque')
#: A joint that hit an end stop counts again only after it was this far back inside, rad.
STOP_REARM_RAD = 1e-3
#: How hard a seized joint (a lock fault) or an end stop holds a joint, per N·m (or N) of its
#: effort limit (1e3 N·m or N where it has none): no drive, gravity or coupling pushes through.
HOLD_FORCE_FACTOR = 1e3
#: The external forces in a sensor reading when there are none (read-only).
_NO_PUSH = np.zeros(6)
_NO_PUSH.flags.writeable = False


class WorldError(ValueError):
    """Bad input to :class:`SimWorld`; the message says what was wrong and what to do."""


@dataclass
class Measurement:
    """
    One sample of the robot's sensors.

    Attributes
    ----------
    t : float
        Time stamp, s (the world time at the end of the step that produced it).
    q : (n,) ndarray
        Joint positions, rad, model joint order.
    qd : (n,) ndarray
        Joint velocities, rad/s.
    effort : (n,) ndarray
        Motor torque applied over the step that ended at ``t``, N·m (after clipping to the
        effort limits; friction is not included, it acts inside the joint).
    wrench : (6,) ndarray or None
        Force-torque sensor reading ``[fx, fy, fz, tx, ty, tz]`` (N, N·m) in the sensor frame,
        what the distal bodies exert on the sensor (docs/conventions.md), for the same step;
        ``None`` if the robot has no sensor or the reading was dropped.

    """

    t: float
    q: np.ndarray
    qd: np.ndarray
    effort: np.ndarray
    wrench: Optional[np.ndarray] = None

    def copy(self):
        """Return an independent duplicate with its own arrays."""
        return Measurement(self.t, self.q.copy(), self.qd.copy(), self.effort.copy(),
                           None if self.wrench is None else self.wrench.copy())


def _as_vector(value, n, what, names):
    try:
        arr = np.array(value, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise WorldError(f'{what}: expected {n} numbers in joint order {list(names)}, '
                         f'got {value!r}') from exc
    if arr.shape != (n,):
        raise WorldError(f'{what}: expected {n} values in joint order {list(names)}, '
                         f'got {arr.size}')
    if not np.all(np.isfinite(arr)):
        raise WorldError(f'{what}: values must be finite, got {arr.tolist()}')
    return arr


def _payload_parts(payload):
    """Return ``(mass, com (3,), principal inertia (3,), R (3, 3))`` of a payload object."""
    try:
        mass = float(payload.mass)
        com = np.array(payload.com, dtype=float).reshape(3)
        inertia = np.array(getattr(payload, 'inertia', np.zeros(3)), dtype=float)
    except (AttributeError, TypeError, ValueError) as exc:
        raise WorldError(f'payload must have mass (kg), com (3,) m and inertia (3, 3) or (3,) '
                         f'kg m^2, got {payload!r}') from exc
    if inertia.shape == (3,):
        inertia = np.diag(inertia)
    if inertia.shape != (3, 3) or not (np.all(np.isfinite(inertia)) and math.isfinite(mass)
                                       and np.all(np.isfinite(com))):
        raise WorldError(f'payload inertia must be (3, 3) or (3,) and all values finite, '
                         f'got {payload!r}')
    if mass < 0.0:
        raise WorldError(f'payload mass must be >= 0 kg, got {mass}')
    inertia = 0.5 * (inertia + inertia.T)
    principal, axes = np.linalg.eigh(inertia)
    if np.linalg.det(axes) < 0.0:
        axes[:, 2] = -axes[:, 2]
    if principal.min() < -1e-12:
        raise WorldError(f'payload inertia must be positive semi-definite, got eigenvalues '
                         f'{principal.tolist()}')
    return mass, com, np.maximum(principal, 0.0), axes


def _rpy_from_matrix(rot):
    return pin.rpy.matrixToRpy(rot)


def _over_limit(tau, lim):
    """``|tau| / lim`` per joint (n,); inf for a joint asked for torque that has none (limit 0)."""
    magnitude = np.abs(tau)
    return np.where(lim > 0.0, magnitude / np.where(lim > 0.0, lim, 1.0),
                    np.where(magnitude > 0.0, np.inf, 0.0))


class SimWorld:
    """
    A PyBullet DIRECT world with one fixed-base robot from a URDF.

    Parameters
    ----------
    urdf_path : str or Path
        The robot's URDF (its movable joints must be revolute, continuous or prismatic).
    dt : float
        Fixed time step, s (default 1 kHz).
    joint_names : sequence of str, optional
        Joint order of every array; must name each movable joint once. Default: the model
        order (pinocchio's, i.e. ``RobotModel.joint_names``).
    gravity : (3,) float
        World gravity, m/s^2.
    ft_link : str or None
        The force-torque sensor link (child of the sensor's fixed joint). ``None``: the robot
        has no sensor and measurements carry ``wrench=None``.
    joint_damping, joint_friction : (n,) float, optional
        Viscous damping (N·m·s/rad) and Coulomb friction (N·m) per joint; default the URDF's
        ``<dynamics damping friction>``. Pass zeros for a lossless arm.
    seed : int, optional
        Seeds :attr:`rng`, offered to stochastic components acting on this world (the physics
        itself is deterministic).
    control_bandwidth : float, optional
        Closed-loop bandwidth ``w`` of the computed-torque controller, rad/s (default
        ``min(0.2 / dt, 0.4 / (dt * control_period_steps))``).
    velocity_mode_max_lag : float
        Anti-windup bound of velocity mode, rad.
    solver_iterations : int, optional
        PyBullet's ``numSolverIterations`` (default PyBullet's, 50).
    control_period_steps : int
        The position/velocity controller recomputes its torque every ``control_period_steps``
        physics steps (on the world clock: at steps ``k`` with ``k % control_period_steps ==
        0``) and holds it in between, as a drive whose control loop is slower than the
        physics (1: every step, the default; 4 at ``dt = 1 ms``: a 250 Hz loop). The default
        ``control_bandwidth`` becomes ``min(0.2 / dt, 0.4 / (dt * control_period_steps))``
        (2 steps: unchanged; the cap keeps the sampled loop well damped: at ``0.8 /`` period
        it is unstable). Torque mode is unaffected.

    Raises
    ------
    WorldError
        If the URDF cannot be read or loaded, ``dt`` is not positive, ``joint_names`` does not
        match the robot, ``ft_link`` is not a link of it, or an array has the wrong length.

    """

    def __init__(self, urdf_path, *, dt=0.001, joint_names=None, gravity=(0.0, 0.0, -9.81),
                 ft_link=DEFAULT_FT_LINK, joint_damping=None, joint_friction=None, seed=None,
                 control_bandwidth=None, velocity_mode_max_lag=0.05, solver_iterations=None,
                 control_period_steps=1):
        self._client = None
        self._tmpdir = None
        self.urdf_path = Path(urdf_path)
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0.0):
            raise WorldError(f'dt must be a positive number of seconds, got {dt}')
        self.dt = dt
        self.rng = np.random.default_rng(seed)
        try:
            self.model = RobotModel.from_urdf(self.urdf_path, ft_link=ft_link)
        except URDFError as exc:
            raise WorldError(str(exc)) from exc
        model = self.model
        self.ft_link = model.ft_frame
        self._payload_parent = model.payload_frame
        self._root = self._prepared_urdf()
        self._pin_model = pin.buildModelFromXML(ElementTree.tostring(self._root,
                                                                     encoding='unicode'))
        self._pin_data = self._pin_model.createData()
        pin_names = list(self._pin_model.names)[1:]
        if pin_names != list(model.joint_names):
            raise WorldError(f'{self.urdf_path}: joint order {pin_names} differs from the '
                             f'model order {model.joint_names}')
        if joint_names is None:
            joint_names = pin_names
        joint_names = [str(j) for j in joint_names]
        if sorted(joint_names) != sorted(pin_names) or len(set(joint_names)) != len(pin_names):
            raise WorldError(f'joint_names {joint_names} must name each movable joint of '
                             f'{self.urdf_path} once: {pin_names}')
        self.joint_names = tuple(joint_names)
        self.n = len(joint_names)
        to_pin = [pin_names.index(j) for j in joint_names]
        self._pin_perm = None if to_pin == list(range(self.n)) else np.array(to_pin)
        # model-order views of the model's joint data (pin index of joint i is to_pin[i])
        self.lower = np.asarray(model.lower, dtype=float)[to_pin]
        self.upper = np.asarray(model.upper, dtype=float)[to_pin]
        self.velocity_limit = np.asarray(model.velocity_limit, dtype=float)[to_pin]
        # the drives' rated speed (the URDF velocity limit; none where the URDF gives 0)
        self.speed_cap = np.where(self.velocity_limit > 0.0, self.velocity_limit, np.inf)
        self.over_speed_events = 0    # joints that reached the cap (cumulative, limit_speed)
        self.limit_stop_events = 0    # joints that hit the end of their range (limit_position)
        effort = np.asarray(model.effort_limit, dtype=float)[to_pin]
        self.effort_limit = np.where(effort > 0.0, effort, np.inf)
        self.damping = (np.asarray(model.damping, dtype=float)[to_pin] if joint_damping is None
                        else np.abs(_as_vector(joint_damping, self.n, 'joint_damping',
                                               joint_names)))
        self.friction = (np.asarray(model.friction, dtype=float)[to_pin]
                         if joint_friction is None else
                         np.abs(_as_vector(joint_friction, self.n, 'joint_friction',
                                           joint_names)))
        m = self._pin_model
        self._base_inertias = [pin.Inertia(m.inertias[i]) for i in range(m.njoints)]
        self.gravity = _as_vector(gravity, 3, 'gravity', ['x', 'y', 'z'])
        m.gravity.linear = self.gravity
        if self.ft_link is not None:
            self._ft_model = self._sensor_model(None)
            self._ft_order = [joint_names.index(j) for j in model.joint_names]
            if self._ft_order == list(range(self.n)):
                self._ft_order = None
            self._below_sensor = self._links_below_sensor()
        self._pushes = _NO_PUSH
        frame_id = m.getFrameId(self._payload_parent, pin.BODY)
        self._payload_joint = m.frames[frame_id].parentJoint
        self._payload_parent_placement = pin.SE3(m.frames[frame_id].placement)
        every = control_period_steps
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise WorldError(f'control_period_steps must be a positive integer (physics steps '
                             f'per controller update), got {control_period_steps!r}')
        self.control_period_steps = int(every)
        self._control_dt = dt * self.control_period_steps
        w = (float(control_bandwidth) if control_bandwidth is not None
             else min(0.2 / dt, 0.4 / self._control_dt))
        if not (math.isfinite(w) and w > 0.0):
            raise WorldError(f'control_bandwidth must be > 0 rad/s, got {control_bandwidth}')
        # PID with a triple closed-loop pole at -w: s^3 + kd s^2 + kp s + ki = (s + w)^3
        self.kp = 3.0 * w * w
        self.kd = 3.0 * w
        self.ki = w ** 3
        self._integral = np.zeros(self.n)
        self._zeros = np.zeros(self.n)
        self._zeros.flags.writeable = False
        self.velocity_mode_max_lag = float(velocity_mode_max_lag)
        # fault-adjustable state
        self._friction_scale = np.ones(self.n)
        self._friction_add = np.zeros(self.n)
        self._torque_limit = self.effort_limit.copy()
        self._locked = {}
        self._stop_side = None         # per joint: -1/+1 held at its lower/upper stop, 0
        self._holding = False
        self.payload = None
        self._payload_geometry = None
        self._external = []
        self._mode = None
        self._prev_qd = None
        self._tmpdir = tempfile.mkdtemp(prefix='twin_world_')
        self._client = pybullet.connect(pybullet.DIRECT)
        if self._client < 0:
            raise WorldError('cannot start a PyBullet DIRECT client')
        params = {'fixedTimeStep': dt, 'numSubSteps': 0}
        if solver_iterations is not None:
            params['numSolverIterations'] = int(solver_iterations)
        pybullet.setPhysicsEngineParameter(physicsClientId=self._client, **params)
        pybullet.setGravity(*self.gravity.tolist(), physicsClientId=self._client)
        self._body = None
        self._load_body()
        self._k = 0
        self._tau = np.zeros(self.n)
        self._tau_list = [0.0] * self.n
        self.q0 = np.clip(np.zeros(self.n), self.lower, self.upper)
        self.reset()

    # ------------------------------------------------------------------ URDF and body set-up
    def _prepared_urdf(self):
        """Return the URDF tree PyBullet and the controller model load (see module doc)."""
        try:
            root = urdf_rewrite.parse(self.urdf_path)
            urdf_rewrite.drop_geometry(root)
            urdf_rewrite.open_ranges(root, _WIDE_LIMIT)
            if self.ft_link is not None:
                urdf_rewrite.move_sensor_body(root, self.ft_link, self.urdf_path)
        except urdf_rewrite.URDFRewriteError as exc:
            raise WorldError(str(exc)) from exc
        urdf_rewrite.add_tiny_inertials(root)
        return root

    def _urdf_with_payload(self):
        root = urdf_rewrite.copy_element(self._root)
        if self._payload_geometry is not None:
            com, axes = self._payload_geometry
            urdf_rewrite.tiny_inertial(ElementTree.SubElement(root, 'link', name=PAYLOAD_LINK))
            joint = ElementTree.SubElement(root, 'joint', name=PAYLOAD_LINK + '_joint',
                                           type='fixed')
            ElementTree.SubElement(joint, 'parent', link=self._payload_parent)
            ElementTree.SubElement(joint, 'child', link=PAYLOAD_LINK)
            rpy = _rpy_from_matrix(axes)
            ElementTree.SubElement(joint, 'origin', xyz=' '.join(repr(float(v)) for v in com),
                                   rpy=' '.join(repr(float(v)) for v in rpy))
        # a new file name per load: PyBullet caches parsed files by name
        self._loads = getattr(self, '_loads', 0) + 1
        path = Path(self._tmpdir) / f'robot_{self._loads}.urdf'
        ElementTree.ElementTree(root).write(str(path))
        return path

    def _load_body(self):
        """(Re)load the robot body and configure it; keeps the joint state if reloading."""
        c = self._client
        state = None
        if self._body is not None:
            state = self._read_states()
            pybullet.removeBody(self._body, physicsClientId=c)
        path = self._urdf_with_payload()
        try:
            body = pybullet.loadURDF(str(path), useFixedBase=True,
                                     flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
                                     physicsClientId=c)
        except pybullet.error as exc:
            raise WorldError(f'PyBullet cannot load {self.urdf_path}: {exc}') from exc
        self._body = body
        num = pybullet.getNumJoints(body, physicsClientId=c)
        joint_index, link_index = {}, {}
        for i in range(num):
            info = pybullet.getJointInfo(body, i, physicsClientId=c)
            joint_index[info[1].decode()] = i
            link_index[info[12].decode()] = i
        link_index[pybullet.getBodyInfo(body, physicsClientId=c)[0].decode()] = -1
        self._link_index = link_index
        missing = [j for j in self.joint_names if j not in joint_index]
        if missing:
            raise WorldError(f'PyBullet did not load joints {missing} of {self.urdf_path}')
        self._idx = [joint_index[j] for j in self.joint_names]
        for i in range(-1, num):
            pybullet.changeDynamics(body, i, linearDamping=0.0, angularDamping=0.0,
                                    jointDamping=0.0, physicsClientId=c)
        self._applied_damping = np.full(self.n, np.nan)
        self._applied_coulomb = np.full(self.n, np.nan)
        self._stop_side = np.zeros(self.n)   # (a new body's motors hold nothing)
        self._holding = False                # whether any joint is held at a stop
        if self.payload is not None and self._payload_geometry is not None:
            self._apply_payload_dynamics()
        self._apply_joint_losses()
        for joint in list(self._locked):
            self._engage_lock(joint)
        if state is not None:
            self._write_states(state[0], state[1])
        self._cached = None

    # ------------------------------------------------------------------ state I/O
    def _read_states(self):
        states = pybullet.getJointStates(self._body, self._idx, physicsClientId=self._client)
        q = np.array([s[0] for s in states])
        qd = np.array([s[1] for s in states])
        motor = [s[3] for s in states]
        return q, qd, motor

    def _state(self):
        if self._cached is None:
            self._cached = self._read_states()
        return self._cached

    def _write_states(self, q, qd):
        c, b = self._client, self._body
        for i, j in enumerate(self._idx):
            pybullet.resetJointState(b, j, float(q[i]), float(qd[i]), physicsClientId=c)
        self._cached = None

    # ------------------------------------------------------------------ force-torque sensor
    def _sensor_model(self, payload):
        """Return the model the reading is computed with: the URDF, ``payload``, world gravity."""
        model = self.model.with_payload(payload)
        model.pin_model.gravity.linear = self.gravity
        return model

    def _links_below_sensor(self):
        """Return the names of the PyBullet links whose forces go through the sensor (a set)."""
        children = {}
        for joint in self._root.iter('joint'):
            parent, child = joint.find('parent'), joint.find('child')
            if parent is not None and child is not None:
                children.setdefault(parent.get('link'), []).append(child.get('link'))
        below, stack = {self.ft_link, PAYLOAD_LINK}, [self.ft_link]
        while stack:
            for child in children.get(stack.pop(), ()):
                below.add(child)
                stack.append(child)
        return below

    def _sensor_wrench(self):
        """
        Return the force-torque reading (6,) of the last step (module docstring).

        Computed once per step, when first asked for (by :meth:`measure`, or before anything
        changes the state or the payload the step ended with), from the step's start state
        and pushes that :meth:`step` kept and the velocity it ended with; after
        :meth:`reset`, the reading of the state at rest (no acceleration). The caller copies
        it.
        """
        if self._wrench is None:
            q, qd, pushes = self._step_start
            qdd = (self._state()[1] - qd) / self.dt
            order = self._ft_order
            if order is not None:
                q, qd, qdd = q[order], qd[order], qdd[order]
            model = self._ft_model
            pin.rnea(model.pin_model, model.pin_data, q, qd, qdd)
            self._wrench = model.ft_wrench_from_data(model.pin_data) + pushes
        return self._wrench

    # ------------------------------------------------------------------ public API
    @property
    def time(self):
        """World time, s (steps since :meth:`reset` times ``dt``)."""
        return self._k * self.dt

    @property
    def client_id(self):
        """Return this world's PyBullet client id."""
        return self._client

    @property
    def body_id(self):
        """Return the robot's PyBullet body id (changes when a payload reloads the body)."""
        return self._body

    def reset(self, q=None, qd=None):
        """
        Put the arm at ``q`` (default :attr:`q0`) with velocity ``qd`` (default 0), time 0.

        The controller holds ``q`` in position mode afterwards. Fault-adjusted friction,
        limits, locks and the payload are kept (see :meth:`restore_nominal`).

        Parameters
        ----------
        q : (n,) rad, optional
            Joint positions (default: the current ones).
        qd : (n,) rad/s, optional
            Joint velocities (default zero).

        """
        q = self.q0 if q is None else _as_vector(q, self.n, 'reset q', self.joint_names)
        qd = np.zeros(self.n) if qd is None else _as_vector(qd, self.n, 'reset qd',
                                                            self.joint_names)
        self._release_stops(np.flatnonzero(self._stop_side))
        self._write_states(q, qd)
        self._k = 0
        self._tau = np.zeros(self.n)
        self._tau_list = [0.0] * self.n
        self._external = []
        self._pushes = _NO_PUSH
        self._step_start = (*self._state()[:2], _NO_PUSH)    # the reading at rest
        self._wrench = None
        self._prev_qd = None
        self._integral = np.zeros(self.n)
        self._over_speed = np.zeros(self.n, dtype=bool)
        self._at_stop = np.zeros(self.n, dtype=bool)
        for joint in list(self._locked):
            self._locked[joint] = float(q[self.joint_names.index(joint)])
            self._engage_lock(joint)
        self.set_control('position', q)

    def set_control(self, mode, target, velocity=None, acceleration=None, *, validate=True):
        """
        Choose the control mode and its target (held until the next call).

        Parameters
        ----------
        mode : {'position', 'velocity', 'torque'}
            The control mode.
        target : (n,) float
            Positions (rad, clipped to the joint limits), velocities (rad/s) or torques (N·m,
            clipped to the effort limits at each step).
        velocity : (n,) rad/s, optional
            Position mode: velocity feedforward (default 0).
        acceleration : (n,) rad/s^2, optional
            Position mode: acceleration feedforward (default 0).
        validate : bool
            True (default): check and copy every array (a clear :class:`WorldError` for a
            wrong length or a non-finite value). False is a fast path for trusted callers
            that pass finite float ndarrays of shape ``(n,)`` (e.g. rows of a checked
            reference trajectory): they are used as given, without checks or copies (the
            caller must not modify them while they are the target), and a wrong array gives
            undefined results. The position target is still clipped to the joint limits.

        """
        if not validate and mode == 'position' and self._mode != 'torque':
            self._q_ref = np.minimum(np.maximum(target, self.lower), self.upper)
            self._qd_ref = self._zeros if velocity is None else velocity
            self._qdd_ref = self._zeros if acceleration is None else acceleration
            self._mode = mode
            return
        if mode not in _CONTROL_MODES:
            raise WorldError(f'control mode must be one of {_CONTROL_MODES}, got {mode!r}')
        target = _as_vector(target, self.n, f'{mode} target', self.joint_names)
        if self._mode == 'torque' and mode != 'torque':
            self._integral = np.zeros(self.n)
        if mode == 'torque':
            self._tau_cmd = target
            self._tau = np.clip(target, -self._torque_limit, self._torque_limit)
            self._tau_list = self._tau.tolist()
        elif mode == 'position':
            self._q_ref = np.clip(target, self.lower, self.upper)
            self._qd_ref = (np.zeros(self.n) if velocity is None else
                            _as_vector(velocity, self.n, 'position velocity feedforward',
                                       self.joint_names))
            self._qdd_ref = (np.zeros(self.n) if acceleration is None else
                             _as_vector(acceleration, self.n,
                                        'position acceleration feedforward', self.joint_names))
        else:
            if getattr(self, '_mode', None) != 'velocity':
                self._q_ref = self._state()[0].copy()
            self._qd_ref = target
            self._qdd_ref = np.zeros(self.n)
        self._mode = mode

    @property
    def control_mode(self):
        """Return the current control mode."""
        return self._mode

    def _control_torque(self):
        q, qd = self._state()[:2]
        qd_ref = self._qd_ref
        if self._mode == 'velocity':
            lag = self.velocity_mode_max_lag
            q_ref = self._q_ref = np.clip(np.clip(self._q_ref + qd_ref * self._control_dt,
                                                  q - lag, q + lag), self.lower, self.upper)
            # a drive's software limit: where the reference has reached an end of the range, the
            # velocity asked out of it stops (else the loop pushes into the end at full torque)
            out = (((q_ref >= self.upper) & (qd_ref > 0.0))
                   | ((q_ref <= self.lower) & (qd_ref < 0.0)))
            if out.any():
                qd_ref = np.where(out, 0.0, qd_ref)
        error = self._q_ref - q
        # kp e + kd (qd_ref - qd) written as a velocity loop on the speed the position error
        # asks, qd_ref + (kp / kd) e, which a real drive never lets exceed its rated speed: a
        # reference jump (a controller that stalled and resumed) then moves the joint at that
        # speed instead of spinning a light wrist joint up to several times it. Unlimited, it
        # is the same law. While the speed is limited the integral holds (anti-windup).
        cap = self.speed_cap
        asked = qd_ref + (self.kp / self.kd) * error
        speed = np.minimum(np.maximum(asked, -cap), cap)
        speed_limited = speed != asked
        integral = np.where(speed_limited, self._integral,
                            self._integral + error * self._control_dt)
        acc = self._qdd_ref + self.kd * (speed - qd) + self.ki * integral
        tau = self._inverse_dynamics(q, qd, acc)
        lim = self._torque_limit
        clipped = np.minimum(np.maximum(tau, -lim), lim)
        limited = clipped != tau
        if limited.any():
            clipped, limited = self._saturated_torque(q, qd, acc, tau, lim)
        # anti-windup: integrate only where the torque is not saturated
        self._integral = np.where(limited, self._integral, integral)
        self._tau = clipped
        self._tau_list = clipped.tolist()

    def _inverse_dynamics(self, q, qd, acc):
        """Joint torques (n,) of the control model (RNEA), model joint order."""
        if self._pin_perm is None:
            return pin.rnea(self._pin_model, self._pin_data, q, qd, acc)
        p = np.empty(self.n)
        p[self._pin_perm] = q
        v = np.empty(self.n)
        v[self._pin_perm] = qd
        a = np.empty(self.n)
        a[self._pin_perm] = acc
        return pin.rnea(self._pin_model, self._pin_data, p, v, a)[self._pin_perm]

    def _mass_and_bias(self, q, qd):
        """Mass matrix (n, n) and bias torques ``C qd + g`` (n,) of the control model."""
        perm = self._pin_perm
        if perm is not None:
            p, v = np.empty(self.n), np.empty(self.n)
            p[perm], v[perm] = q, qd
            q, qd = p, v
        upper = pin.crba(self._pin_model, self._pin_data, q)     # (the upper triangle)
        mass = np.triu(upper) + np.triu(upper, 1).T
        bias = pin.nonLinearEffects(self._pin_model, self._pin_data, q, qd).copy()
        if perm is not None:
            mass, bias = mass[np.ix_(perm, perm)], bias[perm]
        return mass, bias

    def _saturated_torque(self, q, qd, acc, tau, lim):
        """
        Torques when some joints cannot have the acceleration asked of them.

        A joint at its torque limit accelerates less than asked, so the torques the others
        were given to cancel its motion's coupling would throw them around instead. The
        saturated joints get their limit, their accelerations follow from it, and the free
        joints get the torque for their own asked acceleration given those (one small solve
        with the mass matrix). Joints are taken as saturated one at a time, the worst first:
        a joint over its limit only through the coupling to another's impossible acceleration
        is not saturated once that one is (taking them all at once drove a wrist joint at
        -110 N·m against a shoulder step). Returns the torques (n,) and which joints are at
        their limit (n,) bool.
        """
        n = self.n
        mass, bias = self._mass_and_bias(q, qd)
        sat = np.zeros(n, dtype=bool)
        sat[int(np.argmax(_over_limit(tau, lim)))] = True
        out = np.minimum(np.maximum(tau, -lim), lim)
        for _ in range(n):
            free = ~sat
            a = acc.copy()
            rhs = out[sat] - bias[sat] - mass[np.ix_(sat, free)] @ acc[free]
            a[sat] = np.linalg.solve(mass[np.ix_(sat, sat)], rhs)
            full = mass @ a + bias
            out = np.where(sat, out, full)
            ratio = np.where(free, _over_limit(full, lim), 0.0)
            if not (ratio > 1.0).any():
                break
            worst = int(np.argmax(ratio))        # the next joint at its limit
            sat[worst] = True
            out[worst] = min(max(full[worst], -lim[worst]), lim[worst])
        return np.minimum(np.maximum(out, -lim), lim), sat

    def step(self, n_steps=1):
        """
        Advance ``n_steps`` fixed steps of ``dt``.

        External forces queued by :meth:`apply_external_force` act during the first of them.
        With a sensor, the state at the start of the last step is kept for its reading (read
        from PyBullet if the world does not know it yet: in torque mode, or on the steps
        between the updates of a slower controller).
        """
        n_steps = int(n_steps)
        if n_steps <= 0:
            return
        if self.ft_link is None:
            self._advance(n_steps)
            return
        pushes, self._pushes = self._pushes, _NO_PUSH
        if n_steps > 1:
            self._advance(n_steps - 1)      # the pushes act in the first of them
            pushes = _NO_PUSH
        q, qd = self._state()[:2]
        self._advance(1)
        self._step_start = (q, qd, pushes)
        self._wrench = None

    def _advance(self, n_steps):
        """Advance ``n_steps`` (>= 1) fixed steps of ``dt`` (:meth:`step` without the sensor)."""
        c, b, idx = self._client, self._body, self._idx
        send = pybullet.setJointMotorControlArray
        sim = pybullet.stepSimulation
        torque_mode = pybullet.TORQUE_CONTROL
        every = self.control_period_steps
        if self._external:
            if self._mode != 'torque' and self._k % every == 0:
                self._control_torque()
            self._prev_qd = None if self._cached is None else self._cached[1]
            send(b, idx, torque_mode, forces=self._tau_list, physicsClientId=c)
            for link, force, point in self._external:
                pybullet.applyExternalForce(b, link, force, point, pybullet.WORLD_FRAME,
                                            physicsClientId=c)
            self._external = []
            sim(physicsClientId=c)
            self._k += 1
            self._cached = None
            n_steps -= 1
        if self._mode == 'torque':
            self._prev_qd = (self._cached[1] if n_steps == 1 and self._cached is not None
                             else None)
            forces = self._tau_list
            for _ in range(n_steps):
                send(b, idx, torque_mode, forces=forces, physicsClientId=c)
                sim(physicsClientId=c)
        elif every == 1:
            control = self._control_torque
            for _ in range(n_steps):
                control()
                self._prev_qd = self._cached[1]
                send(b, idx, torque_mode, forces=self._tau_list, physicsClientId=c)
                sim(physicsClientId=c)
                self._cached = None
        else:
            control = self._control_torque
            k = self._k
            for i in range(n_steps):
                if (k + i) % every == 0:
                    control()
                    self._prev_qd = self._cached[1]
                else:   # the drive holds its last torque; the state is not read this step
                    self._prev_qd = None
                send(b, idx, torque_mode, forces=self._tau_list, physicsClientId=c)
                sim(physicsClientId=c)
                self._cached = None
        self._k += n_steps
        self._cached = None

    def limit_speed(self):
        """
        Hold a joint faster than its rated speed at that speed (a drive's velocity limiter).

        Torque mode has no loop to cap the speed, and the capped loop of the other modes can
        overshoot it a little: a real drive faults or limits at its velocity limit,
        PyBullet's own limit (~100 rad/s) is far above a URDF's. Called after a step
        (:class:`twin_sim.plant.Plant` does, in every mode; the bare world's physics stays
        free), a joint whose speed exceeds the URDF velocity limit gets its
        velocity set to the limit (its position is kept): the energy the torque put in beyond
        it is taken out. Each time a joint reaches the limit counts once in
        :attr:`over_speed_events` (again only after it slowed below 95 % of it).
        """
        q, qd = self._state()[:2]
        cap = self.speed_cap
        speed = np.abs(qd)
        over = speed > cap
        # a joint at its limit stays there until it slows below 95 % of it (one event each)
        held = self._over_speed & (speed >= 0.95 * cap)
        self.over_speed_events += int(np.count_nonzero(over & ~held))
        self._over_speed = over | held
        if not over.any():
            return
        if self.ft_link is not None:
            self._sensor_wrench()    # the step's reading, with the speed it reached
        for i in np.flatnonzero(over):
            pybullet.resetJointState(self._body, self._idx[i], float(q[i]),
                                     float(np.clip(qd[i], -cap[i], cap[i])),
                                     physicsClientId=self._client)
        self._cached = None

    def limit_position(self):
        """
        Stop a joint at the end of its range (an end stop, as a real arm's).

        Called after a step (:class:`twin_sim.plant.Plant` does, in every mode; the bare
        world's physics stays free): a joint beyond its URDF position limit is put back on the
        limit. Moving on outwards (or at rest there), its velocity is taken out (a perfectly
        inelastic stop) and the stop holds it at the limit from then on: its Coulomb friction
        motor becomes a position constraint at the limit with the force of a stiff stop
        (:data:`HOLD_FORCE_FACTOR`), so that during the next steps the joint cannot move and
        the others move as they do beside it, while its torque (the measured effort) pushes
        into the stop. Once the stop no longer pushes it back (its own push turned, or the
        other joints pull it inwards), the joint is let go with its friction as before. A
        joint that comes back already moving inwards keeps that velocity. Each time a joint
        hits a stop counts once in :attr:`limit_stop_events` (again only after it was back
        more than :data:`STOP_REARM_RAD` inside its range).

        (Put back after each step without the hold, a pushed joint's free acceleration leaked
        into the others through the inertia coupling, and a joint that PyBullet's own soft
        range constraint held chattered on it instead: BENCHMARKS.md, "A gripper chattering
        on its end stops".)
        """
        q, qd, motor = self._state()
        side = self._stop_side
        if self._holding:
            # the stop pushes inwards (+ at the lower end): let go where it does not
            held = np.flatnonzero(side)
            self._release_stops(held[np.asarray(motor)[held] * side[held] >= 0.0])
        below = q < self.lower
        above = q > self.upper
        out = below | above
        near = (q < self.lower + STOP_REARM_RAD) | (q > self.upper - STOP_REARM_RAD)
        at_stop = self._at_stop & near
        self.limit_stop_events += int(np.count_nonzero(out & ~at_stop))
        self._at_stop = out | at_stop
        if not out.any():
            return
        if self.ft_link is not None:
            self._sensor_wrench()    # the step's reading, with the motion it made
        hold = []
        for i in np.flatnonzero(out):
            if below[i]:
                q_i, qd_i = self.lower[i], max(float(qd[i]), 0.0)
            else:
                q_i, qd_i = self.upper[i], min(float(qd[i]), 0.0)
            if qd_i == 0.0 and self.joint_names[i] not in self._locked:
                hold.append(i)
                side[i] = -1.0 if below[i] else 1.0
            pybullet.resetJointState(self._body, self._idx[i], float(q_i), qd_i,
                                     physicsClientId=self._client)
        if hold:
            self._holding = True
            self._hold_motors(hold, [self.lower[i] if side[i] < 0 else self.upper[i]
                                     for i in hold])
        self._cached = None

    def _release_stops(self, joints):
        """Let joints held at an end stop go: their Coulomb friction motor as before."""
        joints = [int(i) for i in joints]
        if not joints:
            return
        self._stop_side[joints] = 0.0
        self._holding = bool(self._stop_side.any())
        self._friction_motors([i for i in joints if self.joint_names[i] not in self._locked])

    def _hold_motors(self, joints, positions):
        """Hold ``joints`` at ``positions`` with stiff position motors (a lock, an end stop)."""
        limit = np.nan_to_num(self.effort_limit[joints], posinf=1e3)
        pybullet.setJointMotorControlArray(
            self._body, [self._idx[i] for i in joints], pybullet.POSITION_CONTROL,
            targetPositions=[float(x) for x in positions], targetVelocities=[0.0] * len(joints),
            forces=(HOLD_FORCE_FACTOR * np.maximum(limit, 1.0)).tolist(),
            positionGains=[1.0] * len(joints), velocityGains=[1.0] * len(joints),
            physicsClientId=self._client)

    def _friction_motors(self, joints):
        """Give ``joints`` their Coulomb friction motor (at rest, :attr:`_applied_coulomb`)."""
        if joints:
            pybullet.setJointMotorControlArray(
                self._body, [self._idx[i] for i in joints], pybullet.VELOCITY_CONTROL,
                targetVelocities=[0.0] * len(joints),
                forces=[float(self._applied_coulomb[i]) for i in joints],
                physicsClientId=self._client)

    def measure(self):
        """
        Return the sensor sample at the current time (:class:`Measurement`).

        Its wrench is the force-torque reading of the last step (module docstring; after
        :meth:`reset`, of the arm at rest).
        """
        q, qd = self._state()[:2]
        wrench = None if self.ft_link is None else self._sensor_wrench().copy()
        return Measurement(self._k * self.dt, q.copy(), qd.copy(), self._tau.copy(), wrench)

    def friction_torque(self):
        """
        Joint friction torque that acted over the last step, N·m, ``(n,)``.

        Viscous ``-b qd`` (PyBullet applies it at the velocity at the start of the step; that
        velocity is used when the world knows it, i.e. when the state was read before the
        step, else the current one) plus the Coulomb motor's reaction (``-fc sign(qd)`` while
        sliding, less while stuck). Locked joints report the lock's holding torque instead of
        the Coulomb part, and joints held at an end stop the stop's (see
        :meth:`limit_position`).
        """
        _, qd, motor = self._state()
        if self._prev_qd is not None:
            qd = self._prev_qd
        return np.array(motor) - self._applied_damping * qd

    # ------------------------------------------------------------------ friction, limits, lock
    def _joint(self, joint):
        if isinstance(joint, (int, np.integer)) and 0 <= int(joint) < self.n:
            return int(joint)
        try:
            return self.joint_names.index(joint)
        except ValueError:
            raise WorldError(f'unknown joint {joint!r}; the robot has {list(self.joint_names)}'
                             ) from None

    def _apply_joint_losses(self):
        c, b = self._client, self._body
        damping = self.damping * self._friction_scale
        coulomb = np.maximum(self.friction * self._friction_scale + self._friction_add, 0.0)
        for i in np.flatnonzero(damping != self._applied_damping):
            pybullet.changeDynamics(b, self._idx[i], jointDamping=float(damping[i]),
                                    physicsClientId=c)
        changed = [i for i in np.flatnonzero(coulomb != self._applied_coulomb)
                   if self.joint_names[i] not in self._locked and not self._stop_side[i]]
        self._applied_damping = damping
        self._applied_coulomb = coulomb
        self._friction_motors(changed)

    def set_friction_scale(self, joint, factor):
        """Multiply a joint's nominal viscous and Coulomb friction by ``factor`` (>= 0)."""
        i = self._joint(joint)
        factor = float(factor)
        if not (math.isfinite(factor) and factor >= 0.0):
            raise WorldError(f'friction scale of {self.joint_names[i]} must be >= 0, '
                             f'got {factor}')
        if self._friction_scale[i] != factor:
            self._friction_scale[i] = factor
            self._apply_joint_losses()

    def set_friction_offset(self, joint, coulomb_nm):
        """Add ``coulomb_nm`` N·m to a joint's Coulomb friction (total is kept >= 0)."""
        i = self._joint(joint)
        value = float(coulomb_nm)
        if not math.isfinite(value):
            raise WorldError(f'friction offset of {self.joint_names[i]} must be finite')
        if self._friction_add[i] != value:
            self._friction_add[i] = value
            self._apply_joint_losses()

    def coulomb_friction(self):
        """Return the Coulomb friction per joint (nominal * scale + offset), N·m, ``(n,)``."""
        return self._applied_coulomb.copy()

    def viscous_damping(self):
        """Return the current viscous damping per joint, N·m·s/rad, ``(n,)``."""
        return self._applied_damping.copy()

    def set_torque_limit(self, joint, limit):
        """Clip a joint's motor torque at ``limit`` N·m (``None`` restores the effort limit)."""
        i = self._joint(joint)
        limit = self.effort_limit[i] if limit is None else float(limit)
        if not (limit >= 0.0):
            raise WorldError(f'torque limit of {self.joint_names[i]} must be >= 0 N·m, '
                             f'got {limit}')
        if self._torque_limit[i] == limit:
            return
        self._torque_limit[i] = limit
        if self._mode == 'torque':
            self._tau = np.clip(self._tau_cmd, -self._torque_limit, self._torque_limit)
            self._tau_list = self._tau.tolist()

    def torque_limit(self):
        """Return the current torque limits, N·m, ``(n,)``."""
        return self._torque_limit.copy()

    def _engage_lock(self, joint):
        # a stiff position motor: the joint holds its position against any motor torque
        self._hold_motors([self.joint_names.index(joint)], [self._locked[joint]])

    def lock_joint(self, joint):
        """Seize a joint at its current position (a locked brake or jammed gear)."""
        i = self._joint(joint)
        name = self.joint_names[i]
        if name in self._locked:
            return
        self._locked[name] = float(self._state()[0][i])
        self._engage_lock(name)

    def unlock_joint(self, joint):
        """Release a joint locked by :meth:`lock_joint` (its friction comes back)."""
        i = self._joint(joint)
        name = self.joint_names[i]
        if self._locked.pop(name, None) is None:
            return
        self._friction_motors([i])

    @property
    def locked_joints(self):
        """Names of the locked joints."""
        return tuple(self._locked)

    def restore_nominal(self):
        """Undo friction scales and offsets, torque limits and locks (not the payload)."""
        for joint in list(self._locked):
            self.unlock_joint(joint)
        self._friction_scale[:] = 1.0
        self._friction_add[:] = 0.0
        self._apply_joint_losses()
        self._torque_limit = self.effort_limit.copy()
        if self._mode == 'torque':
            self._tau = np.clip(self._tau_cmd, -self._torque_limit, self._torque_limit)
            self._tau_list = self._tau.tolist()

    # ------------------------------------------------------------------ payload, forces
    def set_payload(self, payload):
        """
        Attach a payload rigidly to the force-torque sensor link (``None`` removes it).

        Parameters
        ----------
        payload : Payload or None
            Any object with ``mass`` (kg), ``com`` ((3,) m, in the ``ft_link`` frame, or the
            last link's if the robot has no sensor) and ``inertia`` ((3, 3) kg m^2 about the
            centre of mass in that frame's axes, or its (3,) diagonal). It acts on the
            simulated arm (so on the FT reading and the joint torques) and on the
            controller's model. Changing only mass and inertia scale is cheap; a new centre
            of mass or new principal axes reload the PyBullet body (joint state kept).

        """
        if self.ft_link is not None:
            self._sensor_wrench()    # the last step's reading, with the load it moved
        if payload is None:
            if self.payload is not None:
                self.payload = None
                if self.ft_link is not None:
                    self._ft_model = self._sensor_model(None)
                if self._payload_geometry is not None:
                    self._set_pin_payload(None)
                    pybullet.changeDynamics(self._body, self._link_index[PAYLOAD_LINK],
                                            mass=TINY_MASS,
                                            localInertiaDiagonal=[TINY_INERTIA] * 3,
                                            physicsClientId=self._client)
            return
        mass, com, principal, axes = _payload_parts(payload)
        self.payload = payload
        geometry = self._payload_geometry
        if geometry is None or not (np.array_equal(geometry[0], com)
                                    and np.allclose(geometry[1], axes, atol=1e-12)):
            self._payload_geometry = (com, axes)
            self._parts = (mass, principal)
            self._load_body()
        else:
            self._parts = (mass, principal)
            self._apply_payload_dynamics()
        self._set_pin_payload((mass, com, principal, axes))
        if self.ft_link is not None:
            load = Payload(mass, com, axes @ np.diag(principal) @ axes.T)
            if not load.same_as(self._ft_model.payload):
                self._ft_model = self._sensor_model(load)

    def _apply_payload_dynamics(self):
        mass, principal = self._parts
        pybullet.changeDynamics(self._body, self._link_index[PAYLOAD_LINK],
                                mass=max(mass, TINY_MASS),
                                localInertiaDiagonal=np.maximum(principal, TINY_INERTIA).tolist(),
                                physicsClientId=self._client)

    def _set_pin_payload(self, parts):
        jid = self._payload_joint
        inertia = pin.Inertia(self._base_inertias[jid])
        if parts is not None:
            mass, com, principal, axes = parts
            local = pin.Inertia(mass, com, axes @ np.diag(principal) @ axes.T)
            inertia = inertia + self._payload_parent_placement.act(local)
        self._pin_model.inertias[jid] = inertia

    def apply_external_force(self, link, force_world, point_world):
        """
        Apply a force to a link during the next step only (e.g. a collision).

        A force on a link below the force-torque sensor (the sensor link, the tool, the
        payload, a finger) goes into the next step's reading.

        Parameters
        ----------
        link : str
            Link name (e.g. ``'tool'``).
        force_world : (3,) N
            Force in the world frame.
        point_world : (3,) m
            Point of application in the world frame.

        """
        if link not in self._link_index:
            raise WorldError(f'unknown link {link!r}; links: {sorted(self._link_index)}')
        force = _as_vector(force_world, 3, 'external force', ['x', 'y', 'z'])
        point = _as_vector(point_world, 3, 'external force point', ['x', 'y', 'z'])
        self._external.append((self._link_index[link], force.tolist(), point.tolist()))
        if self.ft_link is not None and link in self._below_sensor:
            origin, rotation = self.link_pose(self.ft_link)
            f = rotation.T @ force
            self._pushes = self._pushes + np.concatenate(
                [f, np.cross(rotation.T @ (point - origin), f)])

    def link_pose(self, link):
        """Return ``(position (3,) m, rotation (3, 3))`` of a link frame in the world frame."""
        if link not in self._link_index:
            raise WorldError(f'unknown link {link!r}; links: {sorted(self._link_index)}')
        i = self._link_index[link]
        if i < 0:
            pos, orn = pybullet.getBasePositionAndOrientation(self._body,
                                                              physicsClientId=self._client)
        else:
            state = pybullet.getLinkState(self._body, i, computeForwardKinematics=True,
                                          physicsClientId=self._client)
            pos, orn = state[4], state[5]
        rot = np.array(pybullet.getMatrixFromQuaternion(orn)).reshape(3, 3)
        return np.array(pos), rot

    @property
    def link_names(self):
        """Names of the links of the loaded body (the base link included)."""
        return tuple(self._link_index)

    # ------------------------------------------------------------------ life cycle
    def close(self):
        """Disconnect the PyBullet client and remove temporary files (idempotent)."""
        if self._client is not None and self._client >= 0:
            try:
                pybullet.disconnect(physicsClientId=self._client)
            except pybullet.error:
                pass
        self._client = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing left to clean
            pass
