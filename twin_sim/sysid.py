"""
Identification of inertial parameters, friction and rotor inertia from a joint log, toward a prior.

Method
------
Joint torque is linear in the inertial parameters: ``tau = Y(q, qd, qdd) @ theta`` with
``Y`` = ``pinocchio.computeJointTorqueRegressor`` (n x 10 nb) and ``theta`` the stacked
``pin.Inertia.toDynamicParameters()`` of the body each joint moves (mass, first moment of mass,
rotational inertia about the joint frame origin, in the joint frame). Only combinations of
``theta`` are identifiable; they are found once per model by QR with column pivoting of a
regressor stacked over random states (joints the log does not move are held fixed there): the
pivot columns are the *base parameters* ``beta = K @ theta``, and ``Y @ theta == Y_b @ beta``.

Per joint, linear terms join them: viscous + Coulomb friction + an effort offset (the Coulomb
switch is ``tanh(qd / 0.01 rad/s)`` as in :class:`twin_sim.friction.FrictionModel`) and the rotor
inertia reflected to the joint (``armature * qdd``; left out for a joint whose rotor inertia no
motion can tell from its body's, such as the first joint of an arm). The sigmoid friction of
Gaz et al. 2019 (plus the offset) is the nonlinear alternative, fitted by variable projection.

Prior: the fit starts from the URDF's parameters (or a params.yaml) and solves weighted least
squares *toward* them (:mod:`twin_sim.sysid_ridge`): the full parameters minimize the weighted
torque residual plus the prior's weight times their scaled distance from the prior, so
directions the log does not excite keep the prior values and weakly excited ones are pulled
towards them. The weight (one for the bodies, one for the joint terms) is chosen by blocked
cross-validation on the training part; each joint's rows are weighted by the inverse of its
residual level (two passes). A poorly exciting log therefore yields (nearly) the prior instead
of wild parameters. Finally the identified model is compared with the prior on held-out data
(the last part of the log, or another recording): if it predicts them worse, it is not
accepted (``SysIdResult.accepted``), and the caller keeps the prior. Nor is it when it leaves
much of a moving joint's held-out effort unexplained although it was free to fit every base
parameter and friction term (:func:`_effort_explained`): no rigid body fits such a log, whose
joint names, effort signs or units are then likely wrong (the prior does even worse on it, so
the comparison alone would accept the fit).

Physical consistency: every body is checked (mass > 0, rotational inertia about the centre of
mass positive definite and satisfying the triangle inequality, i.e. a positive semidefinite
pseudo-inertia). If a body fails, ``consistency='auto'`` (default) refits with every body's
pseudo-inertia parameterized by its log-Cholesky factor (Rucker and Wensing 2022), which is
consistent by construction, minimizing the same regularized objective; the report says so and
gives the training cost. ``consistency='check'`` only warns.

The linear algebra is small and dense: :func:`identify` runs it on one BLAS thread, which is as
fast here and leaves the other cores to the robot and the live twin.
"""
from dataclasses import dataclass, field
import sys
import time as _time
import warnings

import numpy as np
import pinocchio as pin
from scipy import linalg, optimize
from scipy.special import expit
from threadpoolctl import threadpool_limits

from twin_sim.friction import (DEFAULT_SMOOTH_VELOCITY, sigmoid_gaz, viscous_coulomb,
                               viscous_coulomb_regressor)
from twin_sim.logdata import (DEFAULT_CUTOFF_HZ, prepare_log, ProcessedLog, read_log,
                              SysIdError, SysIdWarning)
from twin_sim.sysid_ridge import acceptance, RidgeProblem
from twin_sim.urdf_model import PARAMS_KEY, PARAMS_VERSION
from twin_sim.yaml_numbers import load_yaml

__all__ = [
    'BaseParameters', 'FRICTION_MODELS', 'PARAMETER_NAMES', 'Prior', 'SysIdError', 'SysIdResult',
    'SysIdWarning', 'base_parameters', 'check_physical_consistency',
    'friction_torque', 'identify', 'identify_log', 'joint_configuration', 'joint_prior_scales',
    'load_model', 'load_robot', 'model_joint_names', 'model_with_parameters',
    'nominal_parameters', 'parameter_names', 'parameter_scales', 'parameters_document',
    'position_limits', 'predict_torque', 'prior_from_model', 'prior_from_robot',
    'ProcessedLog', 'regressor', 'save_parameters', 'small_ranges',
]

PARAMETER_NAMES = ('m', 'mcx', 'mcy', 'mcz', 'Ixx', 'Ixy', 'Iyy', 'Ixz', 'Iyz', 'Izz')
FRICTION_MODELS = ('viscous-coulomb', 'sigmoid')
FRICTION_KEYS = {'viscous-coulomb': ('viscous', 'coulomb', 'offset'),
                 'sigmoid': ('phi1', 'phi2', 'phi3', 'offset')}
DEFAULT_WARN_CONDITION = 1e3
DEFAULT_MIN_RANGE = 1e-3
DEFAULT_SMALL_RANGE = 0.05
SMALL_RANGE_SHARE = 0.1           # ... or this share of a shorter joint's range (see below)
COULOMB_PRIOR_FRACTION = 0.02     # prior scale of Coulomb friction and offset: x effort limit
REFERENCE_ACCELERATION = 2.0      # rad/s^2: rotor inertia prior scale = that torque / this


def _warn(bucket, text):
    bucket.append(text)
    warnings.warn(text, SysIdWarning, stacklevel=3)


def _progress_default(progress):
    if progress is None:
        return bool(getattr(sys.stderr, 'isatty', lambda: False)())
    return bool(progress)


# --------------------------------------------------------------------------------------------
# Model helpers
# --------------------------------------------------------------------------------------------
def load_model(urdf):
    """
    Build the pinocchio model of a URDF (fixed base), via :class:`RobotModel`.

    Parameters
    ----------
    urdf : str or Path
        The URDF file.

    Returns
    -------
    pin.Model
        Every joint must have one degree of freedom (revolute, continuous, prismatic).

    Raises
    ------
    SysIdError
        The file is missing or not a URDF pinocchio can read, or has a multi-DoF joint.

    """
    return load_robot(urdf).pin_model


def _check_model(model):
    bad = [f'{model.names[i]} ({model.joints[i].shortname()})'
           for i in range(1, model.njoints) if model.joints[i].nv != 1]
    if bad:
        raise SysIdError(f'system identification supports 1-DoF joints only; the model has '
                         f'{bad}')
    if model.njoints < 2:
        raise SysIdError('the model has no movable joint')


def model_joint_names(model):
    """Movable joint names in pinocchio order (``RobotModel.joint_names``)."""
    return [model.names[i] for i in range(1, model.njoints)]


def joint_configuration(model, q):
    """
    Turn joint coordinates into a pinocchio configuration vector.

    Parameters
    ----------
    model : pin.Model
        1-DoF joints only.
    q : (n,) rad or m
        One coordinate per joint, model order; a continuous joint's angle becomes
        ``(cos, sin)``.

    Returns
    -------
    (nq,) pinocchio configuration.

    """
    if model.nq == model.nv:
        return np.asarray(q, dtype=float)
    out = np.zeros(model.nq)
    for i in range(1, model.njoints):
        jm = model.joints[i]
        angle = q[jm.idx_v]
        if jm.nq == 2:
            out[jm.idx_q:jm.idx_q + 2] = (np.cos(angle), np.sin(angle))
        else:
            out[jm.idx_q] = angle
    return out


def nominal_parameters(model):
    """
    Stacked dynamic parameters of the model's bodies.

    Returns
    -------
    theta : (10 nb,)
        ``[m, mcx, mcy, mcz, Ixx, Ixy, Iyy, Ixz, Iyz, Izz]`` per joint, pinocchio order; kg, kg·m,
        kg·m², about the joint frame origin, in the joint frame.

    """
    return np.concatenate([model.inertias[i].toDynamicParameters()
                           for i in range(1, model.njoints)])


def model_with_parameters(model, theta, armature=None):
    """
    Copy of ``model`` with other body inertias and rotor inertias.

    Parameters
    ----------
    model : pin.Model
        The robot model.
    theta : (10 nb,) or None
        Dynamic parameters, 10 per joint, pinocchio order; None keeps the model's. A body of
        zero mass keeps zero mass, a zero centre of mass and its rotational inertia (its first
        moment of mass, which a massless body cannot have, is dropped; :func:`predict_torque`
        does not drop it).
    armature : (n,) kg·m², optional
        Rotor inertia per joint; None keeps the model's.

    """
    out = pin.Model(model)
    if theta is not None:
        for i in range(1, model.njoints):
            out.inertias[i] = _body_inertia(theta[10 * (i - 1):10 * i])
    if armature is not None:
        out.armature = np.asarray(armature, dtype=float).copy()
    return out


def _body_inertia(p):
    """
    ``pin.Inertia`` of one body's dynamic parameters, a massless body included.

    ``pin.Inertia.FromDynamicParameters`` puts the centre of mass at ``first moment / mass``,
    which is 0/0 = NaN for a massless body (a link without ``<inertial>``), and every torque
    the model predicts becomes NaN. A body of zero mass keeps a zero centre of mass and its
    rotational inertia (about the joint origin, which is then also about the centre of mass).
    """
    p = np.asarray(p, dtype=float)
    if p[0] == 0.0:
        return pin.Inertia(0.0, np.zeros(3), np.array([[p[4], p[5], p[7]],
                                                       [p[5], p[6], p[8]],
                                                       [p[7], p[8], p[9]]]))
    return pin.Inertia.FromDynamicParameters(p)


def _rigid_bodies(theta):
    """
    Tell whether every body of ``theta`` is a rigid body pinocchio can hold.

    A body with no mass but a first moment of mass (which no physical body has, but a fit of
    the linear model may give) is not: its centre of mass would be at infinity.
    """
    p = np.asarray(theta, dtype=float).reshape(-1, 10)
    massless = p[:, 0] == 0.0
    return not np.any(massless & np.any(p[:, 1:4] != 0.0, axis=1))


def parameter_names(model):
    """Names ``<joint>.<param>`` of the 10 nb dynamic parameters."""
    return [f'{j}.{p}' for j in model_joint_names(model) for p in PARAMETER_NAMES]


def regressor(model, q, qd, qdd, *, rows=None, columns=None, progress=False, desc='regressor'):
    """
    Joint torque regressor stacked over samples.

    Parameters
    ----------
    model : pin.Model
        The robot model.
    q, qd, qdd : (N, n) rad, rad/s, rad/s² (m, m/s, m/s² for prismatic joints)
        Joint positions, velocities and accelerations, one row per sample.
    rows : (n_r,) int, optional
        Joints (torque rows) to keep; default all.
    columns : (n_c,) int, optional
        Parameter columns to keep; default all ``10 nb``.
    progress : bool
        Show a tqdm bar.
    desc : str
        Label of the tqdm bar.

    Returns
    -------
    Y : (N, n_r, n_c)
        ``tau[k, rows] = Y[k] @ theta[columns]`` when the other parameters are zero (or are
        dependent on ``columns`` through the base-parameter map).

    """
    from tqdm import tqdm

    data = model.createData()
    q, qd, qdd = (np.asarray(x, dtype=float) for x in (q, qd, qdd))
    n_samples = len(q)
    rows = np.arange(model.nv) if rows is None else np.asarray(rows, dtype=int)
    columns = np.arange(10 * (model.njoints - 1)) if columns is None else np.asarray(columns)
    out = np.empty((n_samples, len(rows), len(columns)))
    full_rows = len(rows) == model.nv
    full_cols = len(columns) == 10 * (model.njoints - 1)
    continuous = model.nq != model.nv
    for k in tqdm(range(n_samples), disable=not progress, desc=desc, unit='sample',
                  mininterval=0.5, leave=False):
        qk = joint_configuration(model, q[k]) if continuous else q[k]
        y = pin.computeJointTorqueRegressor(model, data, qk, qd[k], qdd[k])
        if not full_rows:
            y = y[rows]
        out[k] = y if full_cols else y[:, columns]
    return out


def position_limits(model):
    """
    Position limits per joint, model order.

    Returns
    -------
    lo, hi : (n,) rad or m
        The URDF limits; ``-pi, pi`` for joints without finite limits (continuous joints).

    """
    n = model.nv
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    for i in range(1, model.njoints):
        jm = model.joints[i]
        if jm.nq == 1:
            lo[jm.idx_v] = model.lowerPositionLimit[jm.idx_q]
            hi[jm.idx_v] = model.upperPositionLimit[jm.idx_q]
    unlimited = ~(np.isfinite(lo) & np.isfinite(hi) & (hi > lo) & (hi - lo < 1e3))
    lo[unlimited], hi[unlimited] = -np.pi, np.pi
    return lo, hi


def _random_states(model, n_states, locked, rng):
    n = model.nv
    lo, hi = position_limits(model)
    q = rng.uniform(lo, hi, size=(n_states, n))
    qd = rng.uniform(-2.0, 2.0, size=(n_states, n))
    qdd = rng.uniform(-5.0, 5.0, size=(n_states, n))
    for j, value in locked.items():
        q[:, j], qd[:, j], qdd[:, j] = value, 0.0, 0.0
    return q, qd, qdd


@dataclass
class BaseParameters:
    """
    Map from the full dynamic parameters to the identifiable base parameters.

    Attributes
    ----------
    columns : (r,) int
        Base columns: indices into the ``10 nb`` full parameters, in pivot order.
    projection : (r, 10 nb)
        ``beta = projection @ theta``; the identity on ``columns`` plus the dependent columns'
        linear combinations.
    names : list of str, length r
        ``<joint>.<param>`` of each base column (the combination is in :meth:`describe`).
    rows : (n_r,) int
        Joints whose torque the map is for (the log's measured, moving joints).
    locked : dict
        Joint index -> position (rad or m) held during the random states.

    """

    columns: np.ndarray
    projection: np.ndarray
    names: list
    rows: np.ndarray
    locked: dict
    all_names: list = field(repr=False, default_factory=list)

    @property
    def rank(self):
        """Return the number of base parameters."""
        return len(self.columns)

    def describe(self, i, tol=1e-9):
        """Human-readable combination of full parameters that base parameter ``i`` is."""
        terms = []
        for c in np.flatnonzero(np.abs(self.projection[i]) > tol):
            coef = self.projection[i, c]
            name = self.all_names[c]
            terms.append(name if abs(coef - 1.0) < 1e-12 else f'{coef:+.4g}*{name}')
        return ' + '.join(terms)


def base_parameters(model, *, rows=None, locked=None, n_states=None, seed=0, rtol=1e-8,
                    follow=None):
    """
    Find the base parameters by QR with column pivoting of a random-state regressor.

    Parameters
    ----------
    model : pin.Model
        The robot model.
    rows : sequence of int, optional
        Joints whose torques are measured (default: all).
    locked : dict, optional
        Joint index -> fixed position, for joints that do not move in the data (velocity and
        acceleration zero in the random states).
    n_states : int, optional
        Random states stacked (default enough for 4x as many rows as parameters, >= 50).
    seed : int
        Seed of the random states.
    rtol : float
        A pivot ``|R_ii| <= rtol * |R_00|`` marks the end of the base columns.
    follow : dict, optional
        ``{follower index: (leader index, multiplier, offset)}``: ``<mimic>`` joints that
        follow their leader in the random states too, so that parameters only independent
        motion could tell apart are merged (:mod:`twin_sim.excitation`).

    Returns
    -------
    BaseParameters

    """
    locked = dict(locked or {})
    rows = np.arange(model.nv) if rows is None else np.asarray(rows, dtype=int)
    n_par = 10 * (model.njoints - 1)
    if n_states is None:
        n_states = max(50, int(np.ceil(4 * n_par / max(len(rows), 1))))
    rng = np.random.default_rng(seed)
    q, qd, qdd = _random_states(model, n_states, locked, rng)
    for f, (leader, k, c) in (follow or {}).items():
        q[:, f], qd[:, f], qdd[:, f] = k * q[:, leader] + c, k * qd[:, leader], k * qdd[:, leader]
    w = regressor(model, q, qd, qdd, rows=rows).reshape(-1, n_par)
    _r_, r_mat, piv = linalg.qr(w, mode='economic', pivoting=True)
    diag = np.abs(np.diag(r_mat))
    rank = int(np.sum(diag > rtol * diag[0])) if diag[0] > 0 else 0
    if rank == 0:
        raise SysIdError('the measured joint torques do not depend on any inertial parameter')
    base, dep = piv[:rank], piv[rank:]
    coupling = linalg.solve_triangular(r_mat[:rank, :rank], r_mat[:rank, rank:])
    coupling[np.abs(coupling) < 1e-10] = 0.0
    projection = np.zeros((rank, n_par))
    projection[np.arange(rank), base] = 1.0
    projection[:, dep] = coupling
    names = parameter_names(model)
    return BaseParameters(np.asarray(base), projection, [names[c] for c in base], rows,
                          locked, names)


# --------------------------------------------------------------------------------------------
# Friction
# --------------------------------------------------------------------------------------------
def friction_torque(friction_model, params, qd):
    """
    Friction torque of the identified model.

    Parameters
    ----------
    friction_model : {'viscous-coulomb', 'sigmoid'}
        The friction law.
    params : (n, 3) or (n, 4)
        ``[viscous, coulomb, offset]`` or ``[phi1, phi2, phi3, offset]`` per joint.
    qd : (N, n) rad/s
        Joint velocities, one row per sample.

    Returns
    -------
    (N, n) N·m

    """
    params = np.asarray(params, dtype=float)
    if friction_model == 'viscous-coulomb':
        return viscous_coulomb(qd, params[:, 0], params[:, 1], params[:, 2],
                               smooth_velocity=DEFAULT_SMOOTH_VELOCITY)
    if friction_model == 'sigmoid':
        return sigmoid_gaz(qd, params[:, 0], params[:, 1], params[:, 2]) + params[:, 3]
    raise SysIdError(f'unknown friction model {friction_model!r}; use one of {FRICTION_MODELS}')


def _sigmoid_jacobian(qd, p):
    """Jacobian of the sigmoid friction wrt [phi1, phi2, phi3, offset]; qd (N,) -> (N, 4)."""
    phi1, phi2, phi3 = p[:3]
    s = expit(phi2 * (qd + phi3))
    s0 = expit(phi2 * phi3)
    ds, ds0 = s * (1.0 - s), s0 * (1.0 - s0)
    return np.column_stack([s - s0, phi1 * (ds * (qd + phi3) - ds0 * phi3),
                            phi1 * phi2 * (ds - ds0), np.ones_like(qd)])


# --------------------------------------------------------------------------------------------
# Physical consistency
# --------------------------------------------------------------------------------------------
def check_physical_consistency(theta, joint_names, rtol=1e-9):
    """
    Check mass > 0 and a valid rotational inertia for every body.

    Parameters
    ----------
    theta : (10 nb,)
        Dynamic parameters, pinocchio order.
    joint_names : list of str, length nb
        Names of the bodies' joints, used in the messages.
    rtol : float
        Tolerance on the smallest inertia eigenvalue, relative to the body's inertia scale.

    Returns
    -------
    list of str
        One line per violation (empty when all bodies are consistent): non-positive mass,
        inertia about the centre of mass not positive definite, triangle inequality broken.

    """
    problems = []
    for b, joint in enumerate(joint_names):
        p = np.asarray(theta[10 * b:10 * b + 10], dtype=float)
        m = p[0]
        if not m > 0.0:
            problems.append(f'{joint}: mass {m:.4g} kg is not positive')
            continue
        c = p[1:4] / m
        i_o = np.array([[p[4], p[5], p[7]], [p[5], p[6], p[8]], [p[7], p[8], p[9]]])
        i_c = i_o - m * (np.dot(c, c) * np.eye(3) - np.outer(c, c))
        ev = np.linalg.eigvalsh(i_c)
        scale = max(abs(ev).max(), 1e-12)
        if ev[0] <= -rtol * scale or ev[0] <= 0.0 and scale <= 1e-12:
            problems.append(f'{joint}: inertia about the centre of mass is not positive '
                            f'definite (eigenvalues {np.array2string(ev, precision=4)} kg·m²)')
            continue
        s = np.sort(ev)
        if s[0] + s[1] < s[2] * (1.0 - 1e-9):
            problems.append(f'{joint}: principal inertias {np.array2string(s, precision=4)} '
                            'kg·m² break the triangle inequality')
    return problems


def parameter_scales(theta_nominal):
    """
    Typical size of each dynamic parameter, to weigh changes of different units.

    Per body: ``[m0, m0 r (x3), m0 r^2 (x6)]`` with ``m0`` the nominal mass (at least 0.1 kg)
    and ``r`` its radius of gyration about the joint origin (at least 0.05 m).

    Parameters
    ----------
    theta_nominal : (10 nb,)
        Nominal dynamic parameters, pinocchio order.

    Returns
    -------
    (10 nb,) positive scales in kg, kg·m, kg·m².

    """
    scales = []
    for k in range(len(theta_nominal) // 10):
        p = theta_nominal[10 * k:10 * k + 10]
        m0 = max(float(p[0]), 0.1)
        trace = float(p[4] + p[6] + p[9])
        r = max(np.sqrt(max(trace, 0.0) / (2.0 * m0)), 0.05)
        scales.append([m0] + [m0 * r] * 3 + [m0 * r * r] * 6)
    return np.concatenate(scales)


def _pseudo_from_theta(p):
    return pin.PseudoInertia.FromDynamicParameters(np.asarray(p, dtype=float)).toMatrix()


_TRIU = np.triu_indices(4, 1)


def _logchol_from_theta(p, eps):
    """Log-Cholesky coordinates z (10,) with pseudo-inertia = U U^T, U upper triangular."""
    jmat = _pseudo_from_theta(p)
    ev_min = np.linalg.eigvalsh(jmat)[0]
    if ev_min < eps:
        jmat = jmat + (eps - ev_min) * np.eye(4)
    flip = jmat[::-1, ::-1]
    lower = np.linalg.cholesky(flip)
    upper = lower[::-1, ::-1]
    return np.concatenate([np.log(np.diag(upper)), upper[_TRIU]])


# --------------------------------------------------------------------------------------------
# The prior
# --------------------------------------------------------------------------------------------
@dataclass
class Prior:
    """
    The parameters identification starts from and keeps where the data do not tell better.

    Attributes
    ----------
    theta : (10 nb,)
        Dynamic parameters of every body, pinocchio order (as :func:`nominal_parameters`).
    friction : (n, 3)
        ``[viscous N·m·s/rad, Coulomb N·m, offset N·m]`` per joint, model order.
    armature : (n,) kg·m²
        Rotor inertia reflected to each joint (pinocchio's ``armature``).
    source : str
        Where it came from (``'URDF <path>'``, ``'params <path>'``, ...), for the report.

    """

    theta: np.ndarray
    friction: np.ndarray
    armature: np.ndarray
    source: str = 'URDF'


def prior_from_model(model, source='URDF'):
    """
    Prior of a pinocchio model: its inertias, ``damping``/``friction`` and ``armature``.

    Parameters
    ----------
    model : pin.Model
        Built from the URDF (``damping`` and ``friction`` are the URDF ``<dynamics>``).
    source : str
        Label for the report.

    Returns
    -------
    Prior

    """
    n = model.nv
    friction = np.column_stack([np.asarray(model.damping, dtype=float),
                                np.asarray(model.friction, dtype=float), np.zeros(n)])
    return Prior(nominal_parameters(model), friction, np.array(model.armature, dtype=float),
                 source)


def prior_from_robot(robot, source=None):
    """
    Prior of a :class:`twin_sim.urdf_model.RobotModel` (identified parameters applied or not).

    Bodies come from its pinocchio model (a payload the model carries is part of the body
    that carries it), friction from its viscous-Coulomb-offset terms (a Gaz sigmoid it may
    carry is not part of the prior), rotor inertia from ``pin_model.armature``.

    Returns
    -------
    Prior

    """
    fm = robot.friction_model
    friction = np.column_stack([fm.viscous, fm.coulomb, fm.offset]).astype(float)
    return Prior(nominal_parameters(robot.pin_model), friction,
                 np.array(robot.pin_model.armature, dtype=float),
                 source or f'URDF {robot.urdf_path}')


def _finite_limits(values, default, cap):
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values) & (values > 0.0) & (values < cap)
    return np.where(ok, values, default)


def joint_prior_scales(model):
    """
    How far each joint term may plausibly be from its prior, from the URDF limits.

    Coulomb friction and offset: ``COULOMB_PRIOR_FRACTION`` of the effort limit (at least
    0.05 N·m); viscous friction: that torque at a quarter of the velocity limit; rotor
    inertia: that torque at ``REFERENCE_ACCELERATION``.

    Returns
    -------
    (n, 4)
        Scales of ``[viscous, coulomb, offset, armature]`` (N·m·s/rad, N·m, N·m, kg·m²).

    """
    effort = _finite_limits(model.effortLimit, 100.0, 1e6)
    velocity = _finite_limits(model.velocityLimit, 2.0, 1e3)
    torque = np.maximum(COULOMB_PRIOR_FRACTION * effort, 0.05)
    return np.column_stack([torque / np.maximum(0.25 * velocity, 0.1), torque, torque,
                            torque / REFERENCE_ACCELERATION])


# --------------------------------------------------------------------------------------------
# Identification
# --------------------------------------------------------------------------------------------
@dataclass
class SysIdResult:
    """
    Everything identification found, for params.yaml, the report and the plots.

    Attributes
    ----------
    joint_names : list of str, length n
        Model joint order.
    active : (n,) bool
        Joints identified and evaluated (effort measured, joint moving, not locked).
    friction_model : str
    friction : (n, 3 or 4)
        Identified friction parameters (rows of inactive joints are NaN).
    theta_nominal, theta : (10 nb,)
        Prior and identified full dynamic parameters.
    base : BaseParameters
    beta, beta_std : (r,)
        Identified base parameters and their posterior standard deviations.
    beta_nominal : (r,)
        Base parameters of the prior.
    condition_number : float
        Of the column-normalized, weighted training regressor (base + joint terms).
    consistency : dict
        ``method`` (``'projection'``, ``'log-cholesky'`` or ``'none'``), ``problems`` (list).
    time_test, tau_test, tau_raw_test : (m,), (m, n), (m, n)
        Held-out stamps and filtered / unfiltered measured effort.
    tau_before, tau_after : (m, n) N·m
        Held-out predictions of the prior and of the identified model.
    rmse_train_after : (n,) N·m
    n_train, n_test : int
    warnings : list of str
    timings : dict
        Seconds per stage.
    info : dict
        Log facts (rate, cut-off, dropped rows, velocity source, weights).
    friction_std : (n, 3 or 4)
        Posterior standard deviations of the viscous-Coulomb-offset terms (NaN otherwise).
    beta_unconstrained : (r,)
        Base parameters of the regularized fit before any consistency refit.
    urdf : str
        The URDF path, when known.
    armature, armature_std : (n,) kg·m²
        Identified rotor inertia (the prior's where not identified) and its standard
        deviation (NaN where not identified).
    prior : Prior
        What the fit started from.
    accepted : bool
        False when the identified model predicts the held-out data worse than the prior, the
        prior's prediction is not finite, or a moving joint's effort is left unexplained.
    decision : dict
        ``chosen`` (``'identified'`` or ``'prior'``), ``reason``, ``worse_joints``,
        ``unexplained_joints`` (moving joints whose held-out effort a fit that beats the prior
        leaves largely unexplained, ``info['effort_explained']``), ``prior_finite`` (False:
        the prior predicts NaN, nothing to compare with).
    regularization : dict
        The prior's weight per group and how it was chosen.
    validation_source : str
        Where the held-out data came from.

    """

    joint_names: list
    active: np.ndarray
    friction_model: str
    friction: np.ndarray
    theta_nominal: np.ndarray
    theta: np.ndarray
    base: BaseParameters
    beta: np.ndarray
    beta_std: np.ndarray
    beta_nominal: np.ndarray
    condition_number: float
    consistency: dict
    time_test: np.ndarray
    tau_test: np.ndarray
    tau_raw_test: np.ndarray
    tau_before: np.ndarray
    tau_after: np.ndarray
    rmse_train_after: np.ndarray
    n_train: int
    n_test: int
    warnings: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)
    friction_std: np.ndarray = None
    beta_unconstrained: np.ndarray = None
    urdf: str = ''
    armature: np.ndarray = None
    armature_std: np.ndarray = None
    prior: Prior = None
    accepted: bool = True
    decision: dict = field(default_factory=dict)
    regularization: dict = field(default_factory=dict)
    validation_source: str = ''

    def rmse(self, which='after', filtered=False):
        """
        Per-joint held-out torque RMSE, N·m, ``(n,)`` (NaN for joints not identified).

        Parameters
        ----------
        which : {'after', 'before'}
            Identified model or prior.
        filtered : bool
            Against the low-pass filtered effort instead of the measured one (resampled onto
            the uniform grid, not filtered), which is the default.

        """
        pred = self.tau_after if which == 'after' else self.tau_before
        meas = self.tau_test if filtered else self.tau_raw_test
        out = np.sqrt(np.mean((pred - meas) ** 2, axis=0))
        out[~self.active] = np.nan
        return out

    def friction_dict(self):
        """Return the identified friction per active joint, ``{joint: {key: value}}``."""
        keys = FRICTION_KEYS[self.friction_model]
        return {j: {k: float(v) for k, v in zip(keys, self.friction[i])}
                for i, j in enumerate(self.joint_names) if self.active[i]}

    def armature_dict(self):
        """Return the identified rotor inertia per joint, ``{joint: kg·m²}`` (fitted only)."""
        if self.armature is None or self.armature_std is None:
            return {}
        return {j: float(self.armature[i]) for i, j in enumerate(self.joint_names)
                if self.active[i] and np.isfinite(self.armature_std[i])}


def predict_torque(model, theta, q, qd, qdd, friction_model=None, friction=None,
                   armature=None):
    """
    Joint torques by inverse dynamics (pinocchio RNEA) plus friction.

    Parameters
    ----------
    model : pin.Model
        The robot model.
    theta : (10 nb,) or None
        Dynamic parameters; None keeps the model's. Massless bodies are allowed (a link
        without ``<inertial>``); if one has a first moment of mass (not a rigid body, which a
        fit may give), the torque is the joint torque regressor times ``theta`` instead of RNEA.
    q, qd, qdd : (N, n)
        Joint positions, velocities and accelerations, one row per sample.
    friction_model : str or None
        ``'viscous-coulomb'``, ``'sigmoid'``, ``'urdf'`` (the model's damping and friction as
        viscous and Coulomb) or None (no friction).
    friction : (n, 3 or 4), optional
        Friction parameters (NaN rows count as zero).
    armature : (n,) kg·m², optional
        Rotor inertia per joint (RNEA adds ``armature * qdd``); None keeps the model's.

    Returns
    -------
    tau : (N, n) N·m

    """
    if theta is not None and not _rigid_bodies(theta):
        # torque is linear in theta whether or not each body is a physical one
        arm = np.asarray(model.armature if armature is None else armature, dtype=float)
        tau = np.einsum('knp,p->kn', regressor(model, q, qd, qdd),
                        np.asarray(theta, dtype=float)) + np.asarray(qdd, dtype=float) * arm
    else:
        m = model if theta is None and armature is None else model_with_parameters(
            model, theta, armature)
        data = m.createData()
        continuous = m.nq != m.nv
        tau = np.empty_like(np.asarray(qd, dtype=float))
        for k in range(len(q)):
            qk = joint_configuration(m, q[k]) if continuous else q[k]
            tau[k] = pin.rnea(m, data, qk, qd[k], qdd[k])
    if friction_model == 'urdf':
        tau += viscous_coulomb(qd, np.asarray(model.damping), np.asarray(model.friction),
                               smooth_velocity=DEFAULT_SMOOTH_VELOCITY)
    elif friction_model is not None:
        tau += friction_torque(friction_model, np.nan_to_num(friction), qd)
    return tau


def _column_scaled(a):
    norms = np.linalg.norm(a, axis=0)
    norms[norms == 0.0] = 1.0
    return a / norms, norms


def _conditioning(gram, names, count=3):
    """
    Condition number of the column-normalized regressor whose Gram matrix is ``gram``.

    Returns the condition number and the parameters dominating the ``count`` least-excited
    directions (one line each).
    """
    d = np.sqrt(np.clip(np.diag(gram), 0.0, None))
    d[d == 0.0] = 1.0
    ev, vec = np.linalg.eigh(gram / np.outer(d, d))
    ev = np.clip(ev, 0.0, None)
    cond = float(np.sqrt(ev[-1] / ev[0])) if ev[0] > 0.0 else float('inf')
    lines = []
    for k in range(min(count, len(ev))):
        v = vec[:, k]
        top = np.argsort(-np.abs(v))[:3]
        share = ', '.join(f'{names[i]} ({abs(v[i]):.2f})' for i in top if abs(v[i]) > 0.1)
        lines.append(f'singular value {np.sqrt(ev[k] / ev[-1]):.2e} of the largest: {share}')
    return cond, lines


def _check_options(model, log, friction, consistency, fit_torque, train_fraction, validation,
                   lock_joints):
    """Raise :class:`SysIdError` for unusable options; return the model joint names."""
    _check_model(model)
    names = model_joint_names(model)
    for what, item in (('log', log), ('validation log', validation)):
        if item is not None and list(item.joint_names) != names:
            raise SysIdError(f'{what} joint order {item.joint_names} differs from the '
                             f"model's {names}; prepare the log with the model joint names")
    if friction not in FRICTION_MODELS:
        raise SysIdError(f'unknown friction model {friction!r}; use one of {FRICTION_MODELS}')
    if consistency not in ('auto', 'check'):
        raise SysIdError(f'consistency must be "auto" or "check", got {consistency!r}')
    if fit_torque not in ('raw', 'filtered'):
        raise SysIdError(f'fit_torque must be "raw" or "filtered", got {fit_torque!r}')
    if validation is None and not 0.0 < train_fraction < 1.0:
        raise SysIdError(f'train fraction must be in (0, 1), got {train_fraction}')
    unknown = [j for j in lock_joints if j not in names]
    if unknown:
        raise SysIdError(f'cannot lock unknown joints {unknown}; model joints: {names}')
    return names


def small_ranges(lower, upper):
    """
    Per joint (n,), rad or m: a joint that spans less than this over a log hardly moves.

    ``DEFAULT_SMALL_RANGE``, or ``SMALL_RANGE_SHARE`` of the joint's range (``lower`` to
    ``upper``, (n,) each) where that is smaller: a gripper finger's whole stroke (0.04 m on a
    Panda) is below 0.05, so a finger working over all of it counted as hardly moving.
    """
    with np.errstate(invalid='ignore'):
        span = np.asarray(upper, dtype=float) - np.asarray(lower, dtype=float)
    span = np.where(np.isfinite(span) & (span > 0.0), span, np.inf)
    return np.fmin(DEFAULT_SMALL_RANGE, SMALL_RANGE_SHARE * span)


def _select_joints(names, log, train, lock_joints, min_range, small, lock_still, notes):
    """Return ``active`` (n,) bool and ``locked`` {joint index: held position}."""
    active = np.array(log.measured, dtype=bool)
    locked = {}
    for i, j in enumerate(names):
        span = float(np.ptp(train.q[:, i]))
        if not log.measured[i]:
            locked[i] = float(np.median(log.q[:, i]))
        elif j in lock_joints:
            active[i] = False
            locked[i] = float(np.median(log.q[:, i]))
            if span > 10 * min_range:
                _warn(notes, f'joint {j} is locked but moves {span:.3g} over the training '
                             'part; the fit will absorb its motion as error')
        elif span < min_range and lock_still:
            active[i] = False
            locked[i] = float(np.median(log.q[:, i]))
            _warn(notes, f'joint {j} does not move (position range {span:.2g}); held still, '
                         'its parameters stay at the prior')
        elif span < small[i] and lock_still:
            # a joint the program hardly moves (slips, a nudge): a fit of its friction and
            # bodies to those moments is not held near the prior by the regularization (a
            # simulated wrist that slipped 0.02 rad got 0.05 N·m of Coulomb friction instead
            # of its 1.3, and its holding torque as an offset)
            active[i] = False
            locked[i] = float(np.median(log.q[:, i]))
            _warn(notes, f'joint {j} moves only {span:.3g} over the training part; held '
                         'still, its parameters stay at the prior')
        elif span < min_range:
            raise SysIdError(
                f'joint {j} does not move in the training part of the log (position range '
                f'{span:.2g} < {min_range:g}); its inertial and friction parameters are not '
                f'excited. Record an excitation trajectory (robot-twin excite) or pass '
                f'--lock-joints {j} to identify the rest with it held still')
        elif span < small[i]:
            _warn(notes, f'joint {j} moves only {span:.3g} over the training part; its '
                         'parameters will stay close to the prior')
    return active, locked


def _dependent_armature(model, base, rows, seed, rtol=1e-6):
    """
    Joints (positions in ``rows``) whose rotor inertia no data can tell from the bodies'.

    The first joint of a fixed-base arm is the usual case: its rotor inertia and the moved
    body's inertia about the axis enter the torques only as their sum. Found like the base
    parameters, on a random-state regressor: the rotor-inertia column (``qdd`` on the joint's
    own row) lies in the span of the base columns, to ``rtol`` of its norm.
    """
    rng = np.random.default_rng(seed + 1)
    n_states = max(50, 4 * (base.rank + len(rows)) // max(len(rows), 1))
    q, qd, qdd = _random_states(model, n_states, base.locked, rng)
    yb = regressor(model, q, qd, qdd, rows=rows, columns=base.columns).reshape(-1, base.rank)
    q_mat, _r = np.linalg.qr(yb)
    dependent = []
    for a, j in enumerate(rows):
        col = np.zeros((n_states, len(rows)))
        col[:, a] = qdd[:, j]
        col = col.ravel()
        residual = col - q_mat @ (q_mat.T @ col)
        if np.linalg.norm(residual) <= rtol * np.linalg.norm(col):
            dependent.append(a)
    return dependent


def _joint_terms(qd, qdd, friction, armature_rows):
    """
    Regressor of the per-joint linear terms.

    Parameters
    ----------
    qd, qdd : (N, m)
        Velocities and accelerations of the fitted joints.
    friction : str
        ``'viscous-coulomb'`` gives ``[viscous, coulomb, offset]`` columns per joint; the
        sigmoid's terms are nonlinear (fitted apart), so none.
    armature_rows : sequence of int
        Fitted joints (0..m-1) that get a rotor-inertia column (``qdd``).

    Returns
    -------
    y : (N, m, k)
        ``tau[:, a] += y[:, a] @ phi``.
    columns : list of (int, str)
        ``(fitted joint, key)`` per column of ``y``.

    """
    n_samples, m = qd.shape
    columns = []
    if friction == 'viscous-coulomb':
        columns += [(a, key) for a in range(m) for key in FRICTION_KEYS['viscous-coulomb']]
    columns += [(a, 'armature') for a in armature_rows]
    y = np.zeros((n_samples, m, len(columns)))
    vc = viscous_coulomb_regressor(qd, smooth_velocity=DEFAULT_SMOOTH_VELOCITY)
    for c, (a, key) in enumerate(columns):
        if key == 'armature':
            y[:, a, c] = qdd[:, a]
        else:
            y[:, a, c] = vc[:, a, FRICTION_KEYS['viscous-coulomb'].index(key)]
    return y, columns


@dataclass
class _Fit:
    """What :func:`_fit` found (full parameters, joint terms and diagnostics)."""

    theta: np.ndarray
    beta: np.ndarray
    beta_std: np.ndarray
    beta_unconstrained: np.ndarray
    friction: np.ndarray
    friction_std: np.ndarray
    armature: np.ndarray
    armature_std: np.ndarray
    condition_number: float
    consistency: dict
    regularization: dict
    weights: np.ndarray
    rmse_train: np.ndarray


class _Design:
    """The linear least-squares set-up of one fit: regressor, target, prior and its scales."""

    def __init__(self, model, base, yb, qd, qdd, target, prior, rows, friction, armature_rows):
        self.base, self.rows, self.b = base, rows, target
        self.yj, self.columns = _joint_terms(qd, qdd, friction, armature_rows)
        self.a = np.concatenate([yb, self.yj], axis=2)
        n_theta, k = len(prior.theta), self.yj.shape[2]
        self.n_theta = n_theta
        self.transform = linalg.block_diag(base.projection, np.eye(k))
        scale_table = joint_prior_scales(model)
        keys = ('viscous', 'coulomb', 'offset', 'armature')
        phi0, phi_scale = np.empty(k), np.empty(k)
        for c, (a, key) in enumerate(self.columns):
            j = rows[a]
            phi0[c] = prior.armature[j] if key == 'armature' else prior.friction[
                j, FRICTION_KEYS['viscous-coulomb'].index(key)]
            phi_scale[c] = scale_table[j, keys.index(key)]
        self.x0 = np.concatenate([prior.theta, phi0])
        self.scales = np.concatenate([parameter_scales(prior.theta), phi_scale])
        self.groups = np.concatenate([np.zeros(n_theta, int), np.ones(k, int)])

    def predict(self, x):
        """Training-part torques ``(N, m)`` of full parameters ``x`` (without held terms)."""
        return np.einsum('kap,p->ka', self.a, self.transform @ x)

    def problem(self, weights):
        """Return the :class:`RidgeProblem` for per-joint ``weights`` (m,)."""
        return RidgeProblem(self.a * weights[None, :, None], self.b * weights[None, :],
                            self.transform, self.x0, self.scales, self.groups, n_groups=2)


def _choose(problem, regularization):
    """Prior weights per group: cross-validated (``'cv'``) or given; returns (lam, info)."""
    if isinstance(regularization, str):
        if regularization != 'cv':
            raise SysIdError(f'regularization must be "cv" or a number >= 0, got '
                             f'{regularization!r}')
        choice = problem.cross_validate()
        info = {'method': 'blocked cross-validation', 'folds': len(problem.folds),
                'lambda_inertial': float(choice.lam[0]), 'lambda_joint': float(choice.lam[1]),
                'cv_error': choice.cv_error, 'cv_error_best': choice.cv_error_best,
                'cv_error_prior': choice.cv_error_prior}
        return choice.lam, info
    lam = np.broadcast_to(np.asarray(regularization, dtype=float), (2,)).copy()
    if not np.all(np.isfinite(lam)) or np.any(lam < 0.0):
        raise SysIdError(f'regularization must be "cv" or numbers >= 0, got {regularization!r}')
    return lam, {'method': 'given', 'lambda_inertial': float(lam[0]),
                 'lambda_joint': float(lam[1])}


def _weights_from(residual):
    sigma = np.sqrt(np.mean(residual ** 2, axis=0))
    return 1.0 / np.maximum(sigma, 1e-6 * max(sigma.max(), 1e-12))


@dataclass
class _Solved:
    """One regularized fit: its set-up, solution, covariance and the held rotor torques."""

    design: _Design
    problem: RidgeProblem
    x: np.ndarray
    cov: np.ndarray
    lam: np.ndarray
    info: dict
    weights: np.ndarray
    held: np.ndarray = None        # (m,) kg·m²: rotor inertia of joints without a column
    held_torque: np.ndarray = None  # (N, m) N·m: their torque, taken off the target
    final: np.ndarray = None       # (p,) the parameters after the consistency step
    consistency: dict = None


def _ridge_fit(design, regularization, weights):
    """Two passes: choose the weights and fit, re-weight the joints by the residual, again."""
    for _ in range(2):
        lam, info = _choose(design.problem(weights), regularization)
        x, _cov = design.problem(weights).solve(lam)
        weights = _weights_from(design.b - design.predict(x))
    problem = design.problem(weights)
    x, cov = problem.solve(lam)
    return _Solved(design, problem, x, cov, lam, info, weights)


def _fit_rotors_nonnegative(make_design, qdd, armature_rows, held, regularization, weights,
                            finish=None):
    """
    Fit; rotor inertias that come out negative are held at zero and the fit is redone.

    ``make_design(armature_rows, held_torque)`` builds the design for the fitted joints with
    a rotor-inertia column; ``held`` (m,) is the rotor inertia of the others. ``finish(solved)``
    returns the final parameters and a consistency report (the physically consistent refit);
    default: the regularized solution as it is. Sets ``solved.final``, ``solved.consistency``.
    """
    armature_rows, held = list(armature_rows), held.copy()
    while True:
        mask = np.array([a not in armature_rows for a in range(len(held))])
        held_torque = qdd * np.where(mask, held, 0.0)[None, :]
        solved = _ridge_fit(make_design(armature_rows, held_torque), regularization, weights)
        x, consistency = (solved.x, {}) if finish is None else finish(solved)
        d = solved.design
        negative = [a for c, (a, key) in enumerate(d.columns)
                    if key == 'armature' and x[d.n_theta + c] < 0.0]
        if not negative:
            solved.held, solved.held_torque = np.where(mask, held, np.nan), held_torque
            solved.final, solved.consistency = x, consistency
            return solved
        armature_rows = [a for a in armature_rows if a not in negative]
        held[negative] = 0.0


def _fit(model, base, yb, train, rows, prior, options, notes):
    """
    Fit base inertial parameters and joint terms toward the prior (see the module docstring).

    ``options``: names, friction, armature_rows, regularization, fit_torque, consistency,
    max_condition, warn_condition.
    """
    o = options
    names, friction = o['names'], o['friction']
    b_mat = (train.tau if o['fit_torque'] == 'filtered' else train.tau_raw)[:, rows]
    qd_act, qdd_act = train.qd[:, rows], train.qdd[:, rows]
    sig = None

    def make_design(kind, extra):
        def build(armature_rows, held_torque):
            return _Design(model, base, yb, qd_act, qdd_act, b_mat - held_torque - extra,
                           prior, rows, kind, armature_rows)
        return build

    def finish(solved):
        return _make_consistent(solved.design, solved.problem, solved.x, solved.lam, names,
                                o['consistency'], notes)

    held = prior.armature[rows].astype(float)
    first = make_design('viscous-coulomb', 0.0)(o['armature_rows'], 0.0)
    weights = _weights_from(b_mat - first.predict(first.x0))
    solved = _fit_rotors_nonnegative(make_design('viscous-coulomb', 0.0), qdd_act,
                                     o['armature_rows'], held, o['regularization'], weights,
                                     None if friction == 'sigmoid' else finish)
    col_names = base.names + [f'{names[rows[a]]}.{key}' for a, key in solved.design.columns]
    cond, weak = _conditioning(solved.problem.gram, col_names)
    _check_condition(cond, weak, o['max_condition'], o['warn_condition'], notes)
    if friction == 'sigmoid':
        sig = _fit_sigmoid(solved.design, solved.x, solved.design.b, qd_act, solved.weights)
        solved = _fit_rotors_nonnegative(
            make_design('sigmoid', friction_torque('sigmoid', sig, qd_act)), qdd_act,
            o['armature_rows'], held, o['regularization'], solved.weights, finish)
    solved.info['prior'] = prior.source
    x = solved.final
    fit = _collect(solved, x, base, rows, prior, len(names), friction, sig)
    pred = solved.design.predict(x) + solved.held_torque
    if sig is not None:
        pred += friction_torque('sigmoid', sig, qd_act)
    fit.rmse_train[rows] = np.sqrt(np.mean((pred - b_mat) ** 2, axis=0))
    fit.beta_unconstrained = base.projection @ solved.x[:len(prior.theta)]
    fit.condition_number, fit.consistency = cond, solved.consistency
    _warn_unphysical_friction(friction, fit.friction, rows, names, notes)
    return fit


def _collect(solved, x, base, rows, prior, n, friction, sig):
    """Spread the solution over per-joint arrays (a :class:`_Fit` without diagnostics)."""
    n_theta = len(prior.theta)
    theta = x[:n_theta]
    std = np.sqrt(np.clip(np.diag(solved.cov), 0.0, None))
    cov_theta = solved.cov[:n_theta, :n_theta]
    beta_std = np.sqrt(np.clip(np.einsum('ip,pq,iq->i', base.projection, cov_theta,
                                         base.projection), 0.0, None))
    fric = np.full((n, len(FRICTION_KEYS[friction])), np.nan)
    fric_std = np.full_like(fric, np.nan)
    arm, arm_std = prior.armature.astype(float).copy(), np.full(n, np.nan)
    arm[rows] = np.where(np.isnan(solved.held), arm[rows], solved.held)
    for c, (a, key) in enumerate(solved.design.columns):
        j, value = rows[a], x[n_theta + c]
        if key == 'armature':
            arm[j], arm_std[j] = value, std[n_theta + c]
        else:
            k = FRICTION_KEYS['viscous-coulomb'].index(key)
            fric[j, k], fric_std[j, k] = value, std[n_theta + c]
    if sig is not None:
        fric[rows] = sig
    return _Fit(theta, base.projection @ theta, beta_std, None, fric, fric_std, arm, arm_std,
                float('nan'), {}, solved.info, solved.weights, np.full(n, np.nan))


def _check_condition(cond, weak, max_condition, warn_condition, notes):
    if max_condition is not None and (not np.isfinite(cond) or cond > max_condition):
        raise SysIdError(
            f'the log does not excite all parameters: regressor condition number {cond:.3g} '
            f'(column-normalized) exceeds {max_condition:g}. Least-excited directions: '
            f'{"; ".join(weak)}. Record a richer motion (robot-twin excite), lock joints that '
            'do not move (--lock-joints), or leave out --max-condition to keep the weakly '
            'excited directions at the prior')
    if cond > warn_condition:
        _warn(notes, f'regressor condition number {cond:.3g} is high; weakly excited '
                     f'directions stay near the prior: {"; ".join(weak[:2])}')


def _warn_unphysical_friction(friction, fric, rows, names, notes):
    for j in rows:
        if friction == 'viscous-coulomb' and (fric[j, 0] < 0 or fric[j, 1] < 0):
            _warn(notes, f'joint {names[j]}: identified friction viscous {fric[j, 0]:.3g}, '
                         f'coulomb {fric[j, 1]:.3g} has a negative term (not physical)')


def _make_consistent(design, problem, x, lam, names, consistency, notes):
    """Check every body; refit with log-Cholesky bodies if one fails (``'auto'``)."""
    n_theta = design.n_theta
    problems = check_physical_consistency(x[:n_theta], names)
    info = {'method': 'projection', 'problems': problems}
    if not problems:
        return x, info
    if consistency == 'check':
        _warn(notes, 'identified parameters are not physically consistent (kept, as '
                     'consistency="check"): ' + '; '.join(problems))
        info['method'] = 'none'
        return x, info
    error_before = problem.error(x)
    x = _consistent_refit(problem, x, lam, n_theta)
    remaining = check_physical_consistency(x[:n_theta], names, rtol=1e-6)
    if remaining:  # cannot happen by construction, unless the optimizer diverged
        _warn(notes, 'the physically consistent refit failed: ' + '; '.join(remaining))
    info.update(method='log-cholesky', note=(
        'the regularized least-squares bodies are not physically consistent (problems); '
        'refitted with every body parameterized by the log-Cholesky factor of its '
        'pseudo-inertia'), weighted_sse_unconstrained=error_before,
        weighted_sse_consistent=problem.error(x))
    return x, info


@threadpool_limits.wrap(limits=1, user_api='blas')
def identify(model, log, *, friction='viscous-coulomb', train_fraction=0.7, validation=None,
             prior=None, armature=True, regularization='cv', lock_joints=(),
             lock_still_joints=False, consistency='auto', max_condition=None,
             warn_condition=DEFAULT_WARN_CONDITION, min_range=DEFAULT_MIN_RANGE,
             progress=None, seed=0, fit_torque='raw', relative_tolerance=0.1,
             absolute_tolerance=0.01):
    """
    Identify base inertial parameters, friction and rotor inertia toward a prior.

    Parameters
    ----------
    model : pin.Model
        The robot model; 1-DoF joints.
    log : ProcessedLog
        From :func:`twin_sim.logdata.prepare_log`, in ``model``'s joint order.
    friction : {'viscous-coulomb', 'sigmoid'}
        The friction law to fit (both with a constant effort offset per joint).
    train_fraction : float in (0, 1)
        The first part of the log is fitted, the rest is held out (ignored with
        ``validation``).
    validation : ProcessedLog, optional
        Another recording of the same robot: the whole ``log`` is fitted and this one is held
        out.
    prior : Prior, optional
        Where the fit starts (default: the model's own parameters, :func:`prior_from_model`).
    armature : bool
        Identify each joint's rotor inertia (where the data can tell it from the bodies').
    regularization : 'cv', float or (2,)
        Weight of the prior for the inertial and the joint parameters: chosen by blocked
        cross-validation on the training part (default), or given (0: plain least squares).
    lock_joints : sequence of str
        Joints to treat as not moving (their effort is not used, their friction not fitted);
        joints the log lacks are locked anyway.
    lock_still_joints : bool
        Lock joints that do not move instead of raising :class:`SysIdError`, and those that
        move less than :func:`small_ranges` (0.05 rad or m, less for a joint of a shorter
        range) instead of fitting them to a few slips.
    consistency : {'auto', 'check'}
        See the module docstring.
    max_condition : float, optional
        Refuse a log whose column-normalized training regressor condition number is above
        this (default: never; weakly excited directions stay at the prior).
    warn_condition : float
        Warn above this condition number.
    min_range : float
        A measured joint whose training position range is below this (rad or m) does not
        move: :class:`SysIdError` unless it is locked.
    progress : bool or None
        tqdm bar for the regressor; None: only on a TTY.
    seed : int
        Seed of the random states for the base-parameter QR.
    fit_torque : {'raw', 'filtered'}
        Fit the measured effort as resampled (default) or after the low-pass filter. The
        filter smears the Coulomb step at every velocity reversal, which biases the Coulomb
        estimate down; zero-phase filtering keeps states and raw effort aligned either way.
    relative_tolerance, absolute_tolerance : float
        Per-joint slack of the acceptance test (:func:`twin_sim.sysid_ridge.acceptance`).

    Returns
    -------
    SysIdResult
        ``accepted`` is False (and ``decision['chosen']`` is ``'prior'``) when the identified
        model predicts the held-out data worse than the prior (or the prior predicts no finite
        torque), or explains less than :data:`MIN_EXPLAINED` of a moving joint's held-out
        effort variation (``decision['unexplained_joints']``; ``info['effort_explained']``).

    Raises
    ------
    SysIdError
        Bad options, a joint that never moves, too few samples, or (only with
        ``max_condition``) an ill-conditioned regressor.

    """
    timings = {}
    t0 = _time.perf_counter()
    notes = list(log.warnings)
    names = _check_options(model, log, friction, consistency, fit_torque, train_fraction,
                           validation, lock_joints)
    prior = prior_from_model(model) if prior is None else prior
    progress = _progress_default(progress)
    if validation is None:
        n_train = int(np.floor(train_fraction * len(log)))
        train, test = log.slice(0, n_train), log.slice(n_train, len(log))
    else:
        train, test = log, validation
        notes.extend(w for w in validation.warnings if w not in notes)
    active, locked = _select_joints(names, log, train, lock_joints, min_range,
                                    small_ranges(*position_limits(model)), lock_still_joints,
                                    notes)
    rows = np.flatnonzero(active)
    if not len(rows):
        raise SysIdError('no joint moves in the log (or every joint is locked): nothing to '
                         'identify; record the robot in motion')
    base = base_parameters(model, rows=rows, locked=locked, seed=seed)
    merged = _dependent_armature(model, base, rows, seed) if armature else []
    armature_rows = [a for a in range(len(rows)) if armature and a not in merged]
    _check_sample_count(len(train), len(test),
                        base.rank + len(rows) * len(FRICTION_KEYS[friction]) + len(armature_rows))
    timings['base_parameters'] = _time.perf_counter() - t0

    t0 = _time.perf_counter()
    yb = regressor(model, train.q, train.qd, train.qdd, rows=rows, columns=base.columns,
                   progress=progress)
    timings['regressor'] = _time.perf_counter() - t0

    t0 = _time.perf_counter()
    options = {'names': names, 'friction': friction, 'armature_rows': armature_rows,
               'regularization': regularization, 'fit_torque': fit_torque,
               'consistency': consistency, 'max_condition': max_condition,
               'warn_condition': warn_condition}
    fit = _fit(model, base, yb, train, rows, prior, options, notes)
    timings['solve'] = _time.perf_counter() - t0

    t0 = _time.perf_counter()
    tau_after = predict_torque(model, fit.theta, test.q, test.qd, test.qdd, friction,
                               fit.friction, fit.armature)
    tau_before = predict_torque(model, prior.theta, test.q, test.qd, test.qdd,
                                'viscous-coulomb', prior.friction, prior.armature)
    timings['evaluate'] = _time.perf_counter() - t0
    effort_check = _effort_against_prior(names, rows, test.tau, tau_before, test.qd, notes)
    explained = _effort_explained(names, rows, test, tau_after)
    info = {'sample_rate_hz': log.sample_rate_hz, 'cutoff_hz': log.cutoff_hz,
            'raw_samples': log.n_raw_samples, 'dropped_nan_rows': log.n_dropped_nan,
            'velocity_source': dict(log.velocity_source),
            'locked_joints': {names[j]: v for j, v in locked.items()},
            'weights': dict(zip([names[rows[a]] for a in range(len(rows))],
                                fit.weights.tolist())),
            'armature_with_body': [names[rows[a]] for a in merged],
            'effort_vs_prior': effort_check, 'effort_explained': explained}
    result = SysIdResult(
        names, active, friction, fit.friction, prior.theta, fit.theta, base, fit.beta,
        fit.beta_std, base.projection @ prior.theta, fit.condition_number, fit.consistency,
        test.time, test.tau, test.tau_raw, tau_before, tau_after, fit.rmse_train, len(train),
        len(test), notes, timings, info, friction_std=fit.friction_std,
        beta_unconstrained=fit.beta_unconstrained, armature=fit.armature,
        armature_std=fit.armature_std, prior=prior, regularization=fit.regularization,
        validation_source='held-out tail of the log' if validation is None else 'validation log')
    _decide(result, relative_tolerance, absolute_tolerance)
    return result


EFFORT_CHECK_MIN_RMS = 0.5        # N·m (N): the prior must ask this much of a joint to judge it
EFFORT_SCALE_RANGE = (0.25, 4.0)  # measured / predicted effort outside this: units or URDF?
_SIGN_VELOCITY = 0.05             # rad/s (m/s): smooth sign of the Coulomb term of the check


def _effort_against_prior(names, rows, measured, predicted, qd, notes):
    """
    Compare the log's efforts with the prior's predictions, joint by joint (held-out part).

    Per identified joint: ``scale``, the least-squares factor from the prior's rigid-body
    effort to the measured one (fitted together with a viscous, a Coulomb and a constant term,
    so that friction the prior lacks does not count as scale), and ``correlation``, of the
    prior's effort with the measured one less those terms. An effort the prior's motion
    explains well but with the wrong sign, or at a scale far from 1, is not a model the fit
    should quietly absorb: it is usually the robot's convention (an effort that counts against
    the URDF axis, motor current instead of N·m, a torque before the gear) or a URDF with wrong
    masses (a wrist carrying a tool the URDF lacks can read twice its prediction, which is not
    flagged). Such joints get a warning; nothing else changes (the fit and its acceptance are
    as before).
    Returns ``{joint: {'scale', 'correlation', 'warning'}}`` (``warning`` empty when none) for
    the joints the prior loads enough (:data:`EFFORT_CHECK_MIN_RMS`).
    """
    out = {}
    for j in rows:
        p, m, v = predicted[:, j], measured[:, j], qd[:, j]
        ok = np.isfinite(p) & np.isfinite(m) & np.isfinite(v)
        p, m, v = p[ok], m[ok], v[ok]
        if p.size < 10 or not np.sqrt(np.mean(p * p)) >= EFFORT_CHECK_MIN_RMS:
            continue
        design = np.column_stack([p, v, np.tanh(v / _SIGN_VELOCITY), np.ones_like(p)])
        coef = np.linalg.lstsq(design, m, rcond=None)[0]
        scale = float(coef[0])
        rest = m - design[:, 1:] @ coef[1:]          # the measured effort less friction
        spread = np.std(p) * np.std(rest)
        corr = float(np.mean((p - p.mean()) * (rest - rest.mean())) / spread) \
            if spread > 0 else 0.0
        low, high = EFFORT_SCALE_RANGE
        message = ''
        if scale < 0.0 and corr < -0.5:
            message = (f'joint {names[j]}: the measured effort runs against the prediction '
                       f'(measured = {scale:.2f} x predicted, correlation {corr:.2f}): does the '
                       'robot count effort against the URDF joint axis?')
        elif corr > 0.8 and not low <= scale <= high:
            message = (f'joint {names[j]}: the measured effort is {scale:.2f} x what the model '
                       f'predicts (correlation {corr:.2f}): is it in N·m (N) at the joint (not '
                       'a motor current, nor before the gear), and are the URDF masses right?')
        if message:
            _warn(notes, message)
        out[names[j]] = {'scale': scale, 'correlation': corr, 'warning': message}
    return out


MIN_EXPLAINED = 0.8               # share of a moving joint's effort variation the fit must explain
UNEXPLAINED_NOISE_FACTOR = 3.0    # ... unless its residual is within this many times the noise
MOVING_MIN_FRACTION = 0.1         # of the held-out samples, for a joint to be judged (and >= 50)
UNEXPLAINED_PRIOR_SHARE = 0.25    # ... or its held-out RMSE below this share of the prior's


def _effort_explained(names, rows, test, predicted):
    """
    How much of each joint's held-out effort the identified model explains, while it moves.

    The identified model is free to take any base parameters, friction and offset, so on a
    log of this robot it follows every moving joint's effort down to the sensor noise and a
    little unmodelled dynamics (a real Franka Panda: 97 % to 99.9 % of the variation; simulated
    arms: over 99 %). Where it leaves much of a joint's effort unexplained, no rigid body fits
    the log: the log's joint names do not match its columns (two joints swapped), an effort
    has the wrong sign or unit, or the URDF is not this robot. Acceptance alone misses it: the
    prior is judged on the same mislabelled data and does worse still.

    Per identified joint, over the held-out samples where it moves (``|qd|`` at least
    ``_SIGN_VELOCITY``; at rest static friction takes any value within its band, which no
    model predicts), against the low-pass filtered effort (sensor noise does not count):
    ``explained = 1 - mean(residual^2) / var(effort)``, ``residual`` its RMS, ``noise`` the RMS
    of the measured less the filtered effort (all samples). A joint is ``flagged`` when
    ``explained < MIN_EXPLAINED`` and ``residual > UNEXPLAINED_NOISE_FACTOR * noise``; joints
    that move in fewer than ``MOVING_MIN_FRACTION`` of the held-out samples (or 50) are not
    judged (``explained`` None).

    Returns
    -------
    dict
        ``{joint: {'explained', 'residual', 'noise', 'moving_fraction', 'flagged'}}`` (N·m or N).

    """
    out = {}
    for j in rows:
        filt, raw, pred, vel = (np.asarray(a[:, j], dtype=float)
                                for a in (test.tau, test.tau_raw, predicted, test.qd))
        ok = np.isfinite(filt) & np.isfinite(raw) & np.isfinite(pred) & np.isfinite(vel)
        moving = ok & (np.abs(vel) >= _SIGN_VELOCITY)
        fraction = float(moving.sum()) / max(len(vel), 1)
        noise = float(np.sqrt(np.mean((raw[ok] - filt[ok]) ** 2))) if ok.any() else None
        entry = {'explained': None, 'residual': None, 'noise': noise,
                 'moving_fraction': fraction, 'flagged': False}
        if moving.sum() >= 50 and fraction >= MOVING_MIN_FRACTION:
            residual = float(np.sqrt(np.mean((pred[moving] - filt[moving]) ** 2)))
            variance = float(np.var(filt[moving]))
            explained = 1.0 - residual ** 2 / variance if variance > 0.0 else \
                (1.0 if residual == 0.0 else -np.inf)
            entry.update(explained=float(explained), residual=residual,
                         flagged=bool(explained < MIN_EXPLAINED
                                      and residual > UNEXPLAINED_NOISE_FACTOR * noise))
        out[names[j]] = entry
    return out


def _check_sample_count(n_train, n_test, n_unknown):
    if n_train < 2 * n_unknown or n_test < 10:
        raise SysIdError(f'too few samples: {n_train} training and {n_test} held-out '
                         f'samples for {n_unknown} unknowns; record a longer log (at least '
                         f'{2 * n_unknown} training samples after filtering) or change '
                         '--train-fraction')


def _decide(result, relative_tolerance, absolute_tolerance):
    """Set ``accepted`` and ``decision``: the identified model is used only if no worse."""
    act = result.active
    names = [j for i, j in enumerate(result.joint_names) if act[i]]
    before = result.rmse('before')[act]
    accepted, reason, worse = acceptance(before, result.rmse('after')[act],
                                         relative_tolerance=relative_tolerance,
                                         absolute_tolerance=absolute_tolerance, names=names)
    worse_names = [names[i] for i in worse]
    if worse_names:
        reason += ': ' + ', '.join(
            f'{j} {result.rmse("before")[result.joint_names.index(j)]:.3g} -> '
            f'{result.rmse("after")[result.joint_names.index(j)]:.3g} N·m' for j in worse_names)
    explained = result.info.get('effort_explained', {})
    # only a fit that beats its prior: one that does not is refused anyway, and a fit worse
    # than the prior (plain least squares on a poor log) leaves effort unexplained by itself.
    # And only where the fit did not also cut the prior's error down: a joint whose torque
    # hardly varies in a short window (a real Panda's wrist in a 1.75 s commissioning window,
    # prior 2.2 N·m, fit 0.10 N·m, 17 % of a 0.09 N·m variation) is explained as well as a
    # rigid body can, while on swapped columns the fit stays near the prior's error
    rb, ra = result.rmse('before'), result.rmse('after')
    unexplained = [j for j in names if explained.get(j, {}).get('flagged') and not (
        ra[result.joint_names.index(j)] < UNEXPLAINED_PRIOR_SHARE
        * rb[result.joint_names.index(j)])] if accepted else []
    if unexplained:
        shares = ', '.join(f'{100 * max(explained[j]["explained"], 0.0):.0f} % of {j}\'s'
                           for j in unexplained)
        residuals = ', '.join(f'{explained[j]["residual"]:.3g}' for j in unexplained)
        noises = ', '.join(f'{explained[j]["noise"]:.2g}' for j in unexplained)
        mapping = (f'the identified model explains only {shares} held-out effort variation '
                   f'while moving (at least {100 * MIN_EXPLAINED:.0f} % expected; residual '
                   f'{residuals} N·m, noise {noises} N·m): no rigid-body model fits the log '
                   'there; its joint names may not match its columns (swapped joints), an '
                   'effort may have the wrong sign or unit, or the URDF is not this robot')
        accepted, reason = False, mapping
    result.accepted = bool(accepted)
    result.decision = {'chosen': 'identified' if accepted else 'prior', 'reason': reason,
                       'worse_joints': worse_names, 'unexplained_joints': unexplained,
                       'prior_finite': bool(np.all(np.isfinite(before))),
                       'tolerance': {'relative': relative_tolerance,
                                     'absolute_nm': absolute_tolerance}}
    if not accepted:
        _warn(result.warnings, f'identified model NOT used: {reason}')


def _fit_sigmoid(design, x_vc, b_mat, qd_act, weights):
    """
    Gaz sigmoid friction plus offset per joint, by variable projection.

    The linear part (base parameters and rotor inertia, without the viscous-Coulomb columns)
    is eliminated in closed form; it is fitted toward the prior afterwards.

    Returns the sigmoid rows ``(m, 4)``: ``[phi1, phi2, phi3, offset]``.
    """
    n_samples, n_act = b_mat.shape
    lin = [c for c, (_a, key) in enumerate(design.columns) if key == 'armature']
    y_lin = np.concatenate([design.a[:, :, :design.base.rank], design.yj[:, :, lin]], axis=2)
    a_w = (y_lin * weights[None, :, None]).reshape(-1, y_lin.shape[2])
    b_w = (b_mat * weights[None, :]).reshape(-1)
    a_s, _norms = _column_scaled(a_w)
    q_mat, _r = np.linalg.qr(a_s)

    def project(v):
        return v - q_mat @ (q_mat.T @ v)

    xr = design.transform @ x_vc
    vc_cols = {(a, key): design.base.rank + c for c, (a, key) in enumerate(design.columns)}
    tau_lin = np.einsum('kar,r->ka', y_lin, np.concatenate(
        [xr[:design.base.rank], xr[[design.base.rank + c for c in lin]]]))
    p0 = np.array([_sigmoid_start(qd_act[:, a], b_mat[:, a] - tau_lin[:, a],
                                  xr[vc_cols[(a, 'viscous')]], xr[vc_cols[(a, 'coulomb')]])
                   for a in range(n_act)])

    def unpack(z):
        return z.reshape(n_act, 4)

    def friction_w(p):
        return (friction_torque('sigmoid', p, qd_act) * weights[None, :]).reshape(-1)

    def residual(z):
        return project(b_w - friction_w(unpack(z)))

    def jacobian(z):
        p = unpack(z)
        jac = np.zeros((n_samples, n_act, 4 * n_act))
        for a in range(n_act):
            jac[:, a, 4 * a:4 * a + 4] = weights[a] * _sigmoid_jacobian(qd_act[:, a], p[a])
        jac = jac.reshape(-1, 4 * n_act)
        return -(jac - q_mat @ (q_mat.T @ jac))

    vmaxes = np.maximum(np.percentile(np.abs(qd_act), 95, axis=0), 1e-3)
    lower = np.column_stack([np.zeros(n_act), np.full(n_act, 1e-3), -vmaxes,
                             np.full(n_act, -np.inf)]).ravel()
    upper = np.column_stack([np.full(n_act, np.inf), np.full(n_act, 1e4), vmaxes,
                             np.full(n_act, np.inf)]).ravel()
    z0 = np.clip(p0.ravel(), lower, upper)
    fit = optimize.least_squares(residual, z0, jac=jacobian, bounds=(lower, upper),
                                 x_scale='jac', max_nfev=200)
    return unpack(fit.x)


def _sigmoid_start(qd, tau_friction, viscous, coulomb):
    """Start of one joint's sigmoid: fitted to the friction torque the linear fit implied."""
    vmax = max(float(np.percentile(np.abs(qd), 95)), 1e-3)
    best = None
    for steep in (1.0, 3.0, 10.0, 30.0, 100.0):
        start = [max(2.0 * (coulomb + viscous * vmax), 1e-3), steep / vmax, 0.0, 0.0]

        def res1(p):
            return sigmoid_gaz(qd, p[0], p[1], p[2]) + p[3] - tau_friction

        fit = optimize.least_squares(
            res1, start, bounds=([0.0, 1e-3, -vmax, -np.inf], [np.inf, 1e4, vmax, np.inf]),
            max_nfev=200)
        if best is None or fit.cost < best.cost:
            best = fit
    return best.x


def _theta_from_pseudo_np(jmat):
    """Dynamic parameters (10,) of a pseudo-inertia (4, 4); linear in ``jmat``."""
    sigma = jmat[:3, :3]
    inertia = np.trace(sigma) * np.eye(3) - sigma
    return np.array([jmat[3, 3], jmat[0, 3], jmat[1, 3], jmat[2, 3], inertia[0, 0],
                     inertia[0, 1], inertia[1, 1], inertia[0, 2], inertia[1, 2], inertia[2, 2]])


def _logchol_theta_jac(z):
    """Dynamic parameters (10,) of log-Cholesky coordinates z (10,) and d theta / d z (10, 10)."""
    upper = np.diag(np.exp(np.clip(z[:4], -40.0, 20.0)))
    upper[_TRIU] = z[4:]
    theta = _theta_from_pseudo_np(upper @ upper.T)
    jac = np.empty((10, 10))
    for k in range(10):
        e = np.zeros((4, 4))
        if k < 4:
            e[k, k] = upper[k, k]
        else:
            e[_TRIU[0][k - 4], _TRIU[1][k - 4]] = 1.0
        d = e @ upper.T
        jac[:, k] = _theta_from_pseudo_np(d + d.T)
    return theta, jac


def _consistent_refit(problem, x, lam, n_theta):
    """
    Refit with log-Cholesky bodies (consistent by construction); see the module docstring.

    Minimizes the same objective as the regularized fit (weighted squared torque residual
    plus the prior term; the prior's weight floored so that directions the data cannot see
    stay determined) over every body's log-Cholesky coordinates and the joint terms.

    Returns the full parameters ``x`` (p,).
    """
    nb = n_theta // 10
    theta_nom = problem.x0[:n_theta]
    ev, vec = np.linalg.eigh(problem.gram)
    keep = ev > 1e-12 * max(ev.max(), 1e-300)
    r_mat = np.sqrt(ev[keep])[:, None] * vec[:, keep].T          # R^T R = gram (kept part)
    c = (vec[:, keep].T @ problem.moment) / np.sqrt(ev[keep])
    lam_floor = 1e-3 * problem.n_rows / len(problem.x0)
    w_reg = np.sqrt(np.maximum(problem._ridge(lam), lam_floor)) / problem.scales
    eps = 1e-6 * max(float(np.max(theta_nom[::10])), 1e-3)

    def unpack(z):
        th = np.empty(n_theta)
        jac = np.zeros((n_theta, n_theta))
        for k in range(nb):
            s = slice(10 * k, 10 * k + 10)
            th[s], jac[s, s] = _logchol_theta_jac(z[s])
        return np.concatenate([th, z[n_theta:]]), jac

    def residual(z):
        xz, _ = unpack(z)
        return np.concatenate([r_mat @ (problem.transform @ xz) - c, w_reg * (xz - problem.x0)])

    def jacobian(z):
        _, dth = unpack(z)
        dx = linalg.block_diag(dth, np.eye(len(z) - n_theta))
        return np.vstack([r_mat @ problem.transform @ dx, w_reg[:, None] * dx])

    # Start from the fit, each body's pseudo-inertia eigenvalues floored.
    z0 = []
    for k in range(nb):
        jmat = _pseudo_from_theta(x[10 * k:10 * k + 10])
        ev_b, vec_b = np.linalg.eigh(jmat)
        floor = max(1e-3 * ev_b[-1], eps)
        if ev_b[0] < floor:
            jmat = (vec_b * np.maximum(ev_b, floor)) @ vec_b.T
        z0.append(_logchol_from_theta(_theta_from_pseudo_np(jmat), eps))
    z0 = np.concatenate(z0 + [x[n_theta:]])
    # Levenberg-Marquardt (MINPACK): small dense problem; the log-diagonal is clipped in
    # _logchol_theta_jac so that exp() cannot overflow.
    fit = optimize.least_squares(residual, z0, jac=jacobian, method='lm', x_scale='jac',
                                 ftol=1e-7, max_nfev=200)
    return unpack(fit.x)[0]


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def load_robot(urdf, params=None):
    """
    Load the :class:`twin_sim.urdf_model.RobotModel` of a URDF, with a params.yaml applied.

    Raises
    ------
    SysIdError
        The URDF or the params file cannot be used (the message says why).

    """
    from twin_sim.urdf_model import ParametersError, RobotModel

    try:
        robot = RobotModel.from_urdf(str(urdf))
    except (OSError, ValueError, RuntimeError) as exc:
        raise SysIdError(f'cannot load URDF {urdf}: {exc}') from None
    _check_model(robot.pin_model)
    if params is not None:
        import yaml

        try:
            with open(params, encoding='utf-8') as f:
                doc = load_yaml(f)
            robot.apply_parameters(doc)
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ParametersError) as exc:
            raise SysIdError(f'cannot use the prior parameters {params}: {exc}') from None
    return robot


def identify_log(urdf, data, *, params=None, validation=None, topic=None,
                 cutoff_hz=DEFAULT_CUTOFF_HZ, rate_hz=None, max_nan_fraction=0.05, **kwargs):
    """
    Read a log file, prepare it and identify the model of a URDF.

    Parameters
    ----------
    urdf : str or Path
        The URDF file.
    data : str or Path
        CSV file or recording (rosbag2 directory or storage file, ROS 1 bag; see
        :func:`twin_sim.logdata.read_log`).
    params : str or Path, optional
        A params.yaml whose parameters are the prior (default: the URDF's).
    validation : str or Path, optional
        Another recording of the same robot: ``data`` is fitted whole, this one held out.
    topic, cutoff_hz, rate_hz, max_nan_fraction
        See :func:`twin_sim.logdata.read_log` and :func:`twin_sim.logdata.prepare_log` (for
        both logs).
    **kwargs
        Passed to :func:`identify`.

    Returns
    -------
    SysIdResult
        ``timings['load_filter']`` holds the reading and filtering time.

    """
    t0 = _time.perf_counter()
    robot = load_robot(urdf, params)
    model = robot.pin_model
    names = model_joint_names(model)

    def prepared(path):
        return prepare_log(read_log(path, topic), names, cutoff_hz=cutoff_hz, rate_hz=rate_hz,
                           max_nan_fraction=max_nan_fraction,
                           continuous=robot.continuous_joints)

    log = prepared(data)
    held_out = None if validation is None else prepared(validation)
    t_load = _time.perf_counter() - t0
    prior = prior_from_robot(robot, f'params {params}' if params else f'URDF {urdf}')
    result = identify(model, log, validation=held_out, prior=prior, **kwargs)
    result.timings = {'load_filter': t_load, **result.timings}
    result.urdf = str(urdf)
    result.validation_source = (f'{data} (held-out last part)' if validation is None
                                else str(validation))
    return result


def parameters_document(result):
    """
    Return the identified parameters as a params.yaml document (docs/conventions.md format).

    ``joints`` lists every model joint; ``friction`` and ``armature`` name the identified
    joints only (the others keep the values of the model the file is loaded onto);
    ``bodies`` names every joint.

    Returns
    -------
    dict
        ``{'robot_twin_dynamics': {...}}`` of plain numbers.

    """
    bodies = {j: {'dynamic_parameters': [float(v) for v in result.theta[10 * i:10 * i + 10]]}
              for i, j in enumerate(result.joint_names)}
    doc = {
        'version': PARAMS_VERSION,
        'urdf': result.urdf,
        'joints': list(result.joint_names),
        'friction_model': result.friction_model,
        'friction': result.friction_dict(),
        'bodies': bodies,
    }
    armature = result.armature_dict()
    if armature:
        doc['armature'] = armature
    return {PARAMS_KEY: doc}


def save_parameters(result, path):
    """
    Write the identified parameters as params.yaml (:func:`parameters_document`).

    Parameters
    ----------
    result : SysIdResult
        The identification result.
    path : str or Path
        The YAML file to write.

    """
    import yaml

    with open(path, 'w', encoding='utf-8') as f:
        f.write('# Identified by robot-twin sysid; dynamic_parameters in pinocchio order\n'
                '# [m, mcx, mcy, mcz, Ixx, Ixy, Iyy, Ixz, Iyz, Izz] (kg, kg m, kg m^2, about '
                'the joint frame origin); armature: rotor inertia, kg m^2.\n')
        yaml.safe_dump(parameters_document(result), f, sort_keys=False,
                       default_flow_style=None, width=120)
