"""
Identification of inertial and friction parameters from a joint log.

Method
------
Joint torque is linear in the inertial parameters: ``tau = Y(q, qd, qdd) @ theta`` with
``Y`` = ``pinocchio.computeJointTorqueRegressor`` (n x 10 nb) and ``theta`` the stacked
``pin.Inertia.toDynamicParameters()`` of the body each joint moves (mass, first moment of mass,
rotational inertia about the joint frame origin, in the joint frame). Only combinations of
``theta`` are identifiable; they are found once per model by QR with column pivoting of a
regressor stacked over random states (joints the log does not move are held fixed there): the
pivot columns are the *base parameters* ``beta = K @ theta``, and ``Y @ theta == Y_b @ beta``.

Friction is per joint: viscous + Coulomb + offset (linear, ``twin_sim.friction``; the Coulomb
switch is ``tanh(qd / 0.01 rad/s)`` as in :class:`twin_sim.friction.FrictionModel`) or the
sigmoid of Gaz et al. 2019 plus an offset (nonlinear; fitted by variable projection with
``scipy.optimize.least_squares``, the inertial part eliminated in closed form).

The fit is weighted least squares (each joint's rows scaled by the residual standard deviation
of a first ordinary fit) on the training part of the log; the excitation is checked first
(a joint that never moves, or a column-normalized regressor condition number above
``max_condition`` -> :class:`SysIdError` naming the weakly excited parameters).

Physical consistency: the full parameters written to params.yaml are the ones closest to the
URDF's (least 2-norm change) that reproduce the identified base parameters exactly. Every body
is then checked (mass > 0, rotational inertia about the centre of mass positive definite and
satisfying the triangle inequality, i.e. a positive semidefinite pseudo-inertia). If a body
fails, ``consistency='auto'`` (default) refits with every body's pseudo-inertia parameterized
by its log-Cholesky factor (Rucker and Wensing 2022), which is consistent by construction,
minimizing the same weighted torque residual plus a small pull towards the URDF values; the
report says so and gives the training RMSE cost. ``consistency='check'`` only warns.
"""
from dataclasses import dataclass, field
import sys
import time as _time
import warnings

import numpy as np
import pinocchio as pin
from scipy import linalg, optimize
from scipy.special import expit

from twin_sim.friction import (DEFAULT_SMOOTH_VELOCITY, sigmoid_gaz, viscous_coulomb,
                               viscous_coulomb_regressor)
from twin_sim.logdata import (DEFAULT_CUTOFF_HZ, prepare_log, ProcessedLog, read_log,
                              SysIdError, SysIdWarning)

__all__ = [
    'BaseParameters', 'FRICTION_MODELS', 'PARAMETER_NAMES', 'SysIdError', 'SysIdResult',
    'SysIdWarning', 'base_parameters', 'check_physical_consistency', 'friction_torque',
    'identify', 'identify_log', 'joint_configuration', 'load_model', 'model_joint_names',
    'closest_full_parameters', 'model_with_parameters', 'nominal_parameters',
    'parameter_names', 'parameter_scales', 'position_limits',
    'predict_torque', 'ProcessedLog', 'regressor', 'save_parameters',
]

PARAMETER_NAMES = ('m', 'mcx', 'mcy', 'mcz', 'Ixx', 'Ixy', 'Iyy', 'Ixz', 'Iyz', 'Izz')
FRICTION_MODELS = ('viscous-coulomb', 'sigmoid')
FRICTION_KEYS = {'viscous-coulomb': ('viscous', 'coulomb', 'offset'),
                 'sigmoid': ('phi1', 'phi2', 'phi3', 'offset')}
DEFAULT_MAX_CONDITION = 1e5
DEFAULT_WARN_CONDITION = 1e3
DEFAULT_MIN_RANGE = 1e-3
DEFAULT_SMALL_RANGE = 0.05


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
    Build the pinocchio model of a URDF (fixed base), via ``RobotModel`` when it exists.

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
    try:
        from twin_sim.urdf_model import RobotModel
    except ImportError:
        RobotModel = None
    try:
        if RobotModel is not None:
            model = RobotModel.from_urdf(str(urdf)).pin_model
        else:
            model = pin.buildModelFromUrdf(str(urdf))
    except (OSError, ValueError, RuntimeError) as exc:
        raise SysIdError(f'cannot load URDF {urdf}: {exc}') from None
    _check_model(model)
    return model


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


def model_with_parameters(model, theta):
    """Copy of ``model`` whose body inertias are ``theta`` (10 per joint, pinocchio order)."""
    out = pin.Model(model)
    for i in range(1, model.njoints):
        out.inertias[i] = pin.Inertia.FromDynamicParameters(
            np.asarray(theta[10 * (i - 1):10 * i], dtype=float))
    return out


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


def base_parameters(model, *, rows=None, locked=None, n_states=None, seed=0, rtol=1e-8):
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


def closest_full_parameters(base, beta, theta_nominal):
    """
    Full parameters closest to the nominal ones that have the given base parameters.

    Minimizes ``|| (theta - theta_nominal) / parameter_scales(theta_nominal) ||`` subject to
    ``base.projection @ theta == beta`` (closed form, pseudo-inverse).

    Parameters
    ----------
    base : BaseParameters
        The base-parameter map ``beta`` is expressed in.
    beta : (r,)
        Base parameter values.
    theta_nominal : (10 nb,)
        Nominal dynamic parameters, pinocchio order.

    Returns
    -------
    theta : (10 nb,)

    """
    scales = parameter_scales(theta_nominal)
    rhs = beta - base.projection @ theta_nominal
    step, *_ = np.linalg.lstsq(base.projection * scales[None, :], rhs, rcond=None)
    return theta_nominal + scales * step


def _pseudo_from_theta(p):
    return pin.PseudoInertia.FromDynamicParameters(np.asarray(p, dtype=float)).toMatrix()


def _theta_from_pseudo(jmat):
    return pin.PseudoInertia.FromMatrix(jmat).toDynamicParameters()


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


def _theta_from_logchol(z):
    upper = np.diag(np.exp(z[:4]))
    upper[_TRIU] = z[4:]
    return _theta_from_pseudo(upper @ upper.T)


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
        URDF and identified full dynamic parameters.
    base : BaseParameters
    beta, beta_std : (r,)
        Identified base parameters and their standard deviations (from the weighted fit).
    beta_nominal : (r,)
        Base parameters of the URDF.
    condition_number : float
        Of the column-normalized, weighted training regressor (base + friction columns).
    consistency : dict
        ``method`` (``'projection'``, ``'log-cholesky'`` or ``'none'``), ``problems`` (list).
    time_test, tau_test, tau_raw_test : (m,), (m, n), (m, n)
        Held-out stamps and filtered / unfiltered measured effort.
    tau_before, tau_after : (m, n) N·m
        Held-out predictions of the URDF model (with its ``<dynamics>`` friction) and of the
        identified model.
    rmse_train_after : (n,) N·m
    n_train, n_test : int
    warnings : list of str
    timings : dict
        Seconds per stage.
    info : dict
        Log facts (rate, cut-off, dropped rows, velocity source).
    friction_std : (n, 3 or 4)
        Standard deviations of the viscous-Coulomb friction estimates (NaN for the sigmoid).
    beta_unconstrained : (r,)
        Base parameters of the least-squares fit before any consistency refit.
    urdf : str
        The URDF path, when known.

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

    def rmse(self, which='after', filtered=False):
        """
        Per-joint held-out torque RMSE, N·m, ``(n,)`` (NaN for joints not identified).

        Parameters
        ----------
        which : {'after', 'before'}
            Identified or URDF model.
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


def predict_torque(model, theta, q, qd, qdd, friction_model=None, friction=None):
    """
    Joint torques by inverse dynamics (pinocchio RNEA) plus friction.

    Parameters
    ----------
    model : pin.Model
        The robot model.
    theta : (10 nb,) or None
        Dynamic parameters; None keeps the model's.
    q, qd, qdd : (N, n)
        Joint positions, velocities and accelerations, one row per sample.
    friction_model : str or None
        ``'viscous-coulomb'``, ``'sigmoid'``, ``'urdf'`` (the model's damping and friction as
        viscous and Coulomb) or None (no friction).
    friction : (n, 3 or 4), optional
        Friction parameters (NaN rows count as zero).

    Returns
    -------
    tau : (N, n) N·m

    """
    m = model if theta is None else model_with_parameters(model, theta)
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


def _weak_directions(a_scaled, names, count=3):
    """Names of the parameters dominating the least-excited directions."""
    _u, s, vt = np.linalg.svd(a_scaled, full_matrices=False)
    lines = []
    for k in range(1, min(count, len(s)) + 1):
        v = vt[-k]
        top = np.argsort(-np.abs(v))[:3]
        share = ', '.join(f'{names[i]} ({abs(v[i]):.2f})' for i in top if abs(v[i]) > 0.1)
        lines.append(f'singular value {s[-k] / s[0]:.2e} of the largest: {share}')
    return lines


def identify(model, log, *, friction='viscous-coulomb', train_fraction=0.7, lock_joints=(),
             consistency='auto', max_condition=DEFAULT_MAX_CONDITION,
             warn_condition=DEFAULT_WARN_CONDITION, min_range=DEFAULT_MIN_RANGE,
             progress=None, seed=0, fit_torque='raw'):
    """
    Identify base inertial parameters and friction from a processed log.

    Parameters
    ----------
    model : pin.Model
        The URDF model (nominal parameters); 1-DoF joints.
    log : ProcessedLog
        From :func:`twin_sim.logdata.prepare_log`, in ``model``'s joint order.
    friction : {'viscous-coulomb', 'sigmoid'}
        The friction law to fit.
    train_fraction : float in (0, 1)
        The first part of the log is fitted, the rest is held out for the RMSE figures.
    lock_joints : sequence of str
        Joints to treat as not moving (their effort is not used, their friction not fitted);
        joints the log lacks are locked anyway.
    consistency : {'auto', 'check'}
        See the module docstring.
    max_condition, warn_condition : float
        Column-normalized condition number of the training regressor above which to raise
        :class:`SysIdError` / to warn.
    min_range : float
        A measured joint whose training position range is below this (rad or m) has not been
        excited: :class:`SysIdError` unless it is in ``lock_joints``.
    progress : bool or None
        tqdm bar for the regressor; None: only on a TTY.
    seed : int
        Seed of the random states for the base-parameter QR.
    fit_torque : {'raw', 'filtered'}
        Fit the measured effort as resampled (default) or after the low-pass filter. The
        filter smears the Coulomb step at every velocity reversal, which biases the Coulomb
        estimate down; zero-phase filtering keeps states and raw effort aligned either way.
        Prefer 'filtered' for logs whose effort carries strong content above the cut-off
        (vibration, motor ripple) that the filtered states cannot explain.

    Returns
    -------
    SysIdResult

    Raises
    ------
    SysIdError
        Bad options, a joint that never moves, too few samples, or a rank-deficient /
        ill-conditioned regressor.

    """
    timings = {}
    t0 = _time.perf_counter()
    notes = list(log.warnings)
    _check_model(model)
    names = model_joint_names(model)
    if list(log.joint_names) != names:
        raise SysIdError(f"log joint order {log.joint_names} differs from the model's {names}; "
                         'prepare the log with the model joint names')
    if friction not in FRICTION_MODELS:
        raise SysIdError(f'unknown friction model {friction!r}; use one of {FRICTION_MODELS}')
    if consistency not in ('auto', 'check'):
        raise SysIdError(f'consistency must be "auto" or "check", got {consistency!r}')
    if fit_torque not in ('raw', 'filtered'):
        raise SysIdError(f'fit_torque must be "raw" or "filtered", got {fit_torque!r}')
    if not 0.0 < train_fraction < 1.0:
        raise SysIdError(f'train fraction must be in (0, 1), got {train_fraction}')
    unknown = [j for j in lock_joints if j not in names]
    if unknown:
        raise SysIdError(f'cannot lock unknown joints {unknown}; model joints: {names}')
    progress = _progress_default(progress)
    n = len(names)
    n_train = int(np.floor(train_fraction * len(log)))
    train, test = log.slice(0, n_train), log.slice(n_train, len(log))

    # Which joints are identified; the rest are held at a fixed position.
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
        elif span < min_range:
            raise SysIdError(
                f'joint {j} does not move in the training part of the log (position range '
                f'{span:.2g} < {min_range:g}); its inertial and friction parameters are not '
                f'excited. Record an excitation trajectory (robot-twin excite) or pass '
                f'--lock-joints {j} to identify the rest with it held still')
        elif span < DEFAULT_SMALL_RANGE:
            _warn(notes, f'joint {j} moves only {span:.3g} over the training part; its '
                         'parameters will be poorly determined')
    rows = np.flatnonzero(active)
    n_act = len(rows)
    base = base_parameters(model, rows=rows, locked=locked, seed=seed)
    r = base.rank
    n_unknown = r + n_act * len(FRICTION_KEYS[friction])
    if n_train < 2 * n_unknown or len(test) < 10:
        raise SysIdError(f'too few samples: {n_train} training and {len(test)} held-out '
                         f'samples for {n_unknown} unknowns; record a longer log (at least '
                         f'{int(np.ceil(2 * n_unknown / train_fraction))} samples after '
                         'filtering) or change --train-fraction')
    timings['base_parameters'] = _time.perf_counter() - t0

    # Regressor on the training part (base columns, active rows).
    t0 = _time.perf_counter()
    yb = regressor(model, train.q, train.qd, train.qdd, rows=rows, columns=base.columns,
                   progress=progress)
    timings['regressor'] = _time.perf_counter() - t0

    t0 = _time.perf_counter()
    qd_act = train.qd[:, rows]
    b_mat = (train.tau if fit_torque == 'filtered' else train.tau_raw)[:, rows]
    # Linear (viscous-Coulomb) friction columns; for the sigmoid they seed the nonlinear fit.
    yf_rows = viscous_coulomb_regressor(qd_act, smooth_velocity=DEFAULT_SMOOTH_VELOCITY)
    yf = np.zeros((n_train, n_act, 3 * n_act))
    for a in range(n_act):
        yf[:, a, 3 * a:3 * a + 3] = yf_rows[:, a, :]
    a_full = np.concatenate([yb, yf], axis=2)  # (N, n_act, r + 3 n_act)

    def solve(weights):
        a_w = (a_full * weights[None, :, None]).reshape(-1, a_full.shape[2])
        b_w = (b_mat * weights[None, :]).reshape(-1)
        a_s, norms = _column_scaled(a_w)
        x_s, *_ = np.linalg.lstsq(a_s, b_w, rcond=None)
        return x_s / norms, a_s, b_w

    x, a_s, _b_w = solve(np.ones(n_act))
    resid = b_mat - np.einsum('kap,p->ka', a_full, x)
    sigma = np.sqrt(np.mean(resid ** 2, axis=0))
    sigma = np.maximum(sigma, 1e-6 * max(sigma.max(), 1e-12))
    weights = 1.0 / sigma
    x, a_s, b_w = solve(weights)
    cond = float(np.linalg.cond(a_s))
    all_names = base.names + [f'{names[j]}.{k}' for j in rows
                              for k in FRICTION_KEYS['viscous-coulomb']]
    if not np.isfinite(cond) or cond > max_condition:
        weak = '; '.join(_weak_directions(a_s, all_names))
        raise SysIdError(
            f'the log does not excite all parameters: regressor condition number {cond:.3g} '
            f'(column-normalized) exceeds {max_condition:g}. Least-excited directions: {weak}. '
            'Record a richer motion (robot-twin excite), lock joints that do not move '
            '(--lock-joints), or raise --max-condition if you accept a poorly determined fit')
    if cond > warn_condition:
        _warn(notes, f'regressor condition number {cond:.3g} is high; weakly excited: '
                     + '; '.join(_weak_directions(a_s, all_names, count=2)))

    beta = x[:r]
    fric = np.full((n, len(FRICTION_KEYS[friction])), np.nan)
    fric_std = np.full_like(fric, np.nan)
    a_w = (a_full * weights[None, :, None]).reshape(-1, a_full.shape[2])
    if friction == 'viscous-coulomb':
        fric[rows] = x[r:].reshape(n_act, 3)
        dof = max(len(b_w) - len(x), 1)
        s2 = float(np.sum((a_w @ x - b_w) ** 2) / dof)
        cov = s2 * np.linalg.pinv(a_w.T @ a_w)
        x_std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
        beta_std = x_std[:r]
        fric_std[rows] = x_std[r:].reshape(n_act, 3)
    else:
        beta, fric_rows, beta_std = _fit_sigmoid(yb, b_mat, qd_act, weights, x, r)
        fric[rows] = fric_rows
    for a, j in enumerate(rows):
        if friction == 'viscous-coulomb' and (fric[j, 0] < 0 or fric[j, 1] < 0):
            _warn(notes, f'joint {names[j]}: identified friction viscous {fric[j, 0]:.3g}, '
                         f'coulomb {fric[j, 1]:.3g} has a negative term (not physical)')

    # Full parameters: closest to the URDF that reproduce beta; consistency check / refit.
    theta_nom = nominal_parameters(model)
    beta_nom = base.projection @ theta_nom
    theta = closest_full_parameters(base, beta, theta_nom)
    beta_ls = beta.copy()
    problems = check_physical_consistency(theta, names)
    method = 'projection'
    rmse_train_before_refit = None
    if problems:
        if consistency == 'check':
            _warn(notes, 'identified parameters are not physically consistent (kept, as '
                         'consistency="check"): ' + '; '.join(problems))
            method = 'none'
        else:
            rmse_train_before_refit = _rmse_train(yb, yf, b_mat, beta, fric[rows], friction,
                                                  qd_act)
            theta, beta, fric_rows = _consistent_refit(
                base, yb, yf, b_mat, weights, theta_nom, beta, fric[rows], friction, qd_act)
            fric[rows] = fric_rows
            method = 'log-cholesky'
            remaining = check_physical_consistency(theta, names, rtol=1e-6)
            if remaining:  # cannot happen by construction, unless the optimizer diverged
                _warn(notes, 'the physically consistent refit failed: ' + '; '.join(remaining))
    rmse_train = _rmse_train(yb, yf, b_mat, beta, fric[rows], friction, qd_act)
    rmse_train_full = np.full(n, np.nan)
    rmse_train_full[rows] = rmse_train
    timings['solve'] = _time.perf_counter() - t0

    # Held-out evaluation, by RNEA with the identified and the URDF parameters.
    t0 = _time.perf_counter()
    tau_after = predict_torque(model, theta, test.q, test.qd, test.qdd, friction, fric)
    tau_before = predict_torque(model, None, test.q, test.qd, test.qdd, 'urdf')
    timings['evaluate'] = _time.perf_counter() - t0

    consistency_info = {'method': method, 'problems': problems}
    if rmse_train_before_refit is not None:
        consistency_info['note'] = (
            'the full parameters closest to the URDF that match the least-squares base '
            'parameters are not physically consistent (problems); refitted with every body '
            'parameterized by the log-Cholesky factor of its pseudo-inertia')
        consistency_info['train_rmse_unconstrained'] = dict(
            zip([names[j] for j in rows], rmse_train_before_refit.tolist()))
        consistency_info['train_rmse_consistent'] = dict(
            zip([names[j] for j in rows], rmse_train.tolist()))
    info = {'sample_rate_hz': log.sample_rate_hz, 'cutoff_hz': log.cutoff_hz,
            'raw_samples': log.n_raw_samples, 'dropped_nan_rows': log.n_dropped_nan,
            'velocity_source': dict(log.velocity_source),
            'locked_joints': {names[j]: v for j, v in locked.items()},
            'weights': dict(zip([names[j] for j in rows], weights.tolist()))}
    return SysIdResult(names, active, friction, fric, theta_nom, theta, base, beta, beta_std,
                       beta_nom, cond, consistency_info, test.time, test.tau, test.tau_raw,
                       tau_before, tau_after, rmse_train_full, n_train, len(test), notes,
                       timings, info, friction_std=fric_std, beta_unconstrained=beta_ls)


def _rmse_train(yb, yf, b_mat, beta, fric_rows, friction, qd_act):
    pred = np.einsum('kar,r->ka', yb, beta)
    n_act = qd_act.shape[1]
    full = np.full((n_act, fric_rows.shape[1]), 0.0)
    full[:] = fric_rows
    pred += friction_torque(friction, full, qd_act)
    return np.sqrt(np.mean((pred - b_mat) ** 2, axis=0))


def _fit_sigmoid(yb, b_mat, qd_act, weights, x_vc, r):
    """
    Variable-projection fit of the Gaz sigmoid friction; the inertial part is linear.

    Returns beta (r,), friction rows (n_act, 4), beta_std (r,).
    """
    n_samples, n_act, _ = yb.shape
    a_w = (yb * weights[None, :, None]).reshape(-1, r)
    b_w = (b_mat * weights[None, :]).reshape(-1)
    a_s, norms = _column_scaled(a_w)
    q_mat, r_mat = np.linalg.qr(a_s)

    def project(v):
        return v - q_mat @ (q_mat.T @ v)

    # Per-joint start: fit the sigmoid to the friction torque the viscous-Coulomb fit implied.
    tau_rigid = np.einsum('kar,r->ka', yb, x_vc[:r])
    p0 = np.zeros((n_act, 4))
    for a in range(n_act):
        qd = qd_act[:, a]
        tf = b_mat[:, a] - tau_rigid[:, a]
        vmax = max(float(np.percentile(np.abs(qd), 95)), 1e-3)
        best = None
        for steep in (1.0, 3.0, 10.0, 30.0, 100.0):
            start = [max(2.0 * (x_vc[r + 3 * a + 1] + x_vc[r + 3 * a] * vmax), 1e-3),
                     steep / vmax, 0.0, 0.0]

            def res1(p, qd=qd, tf=tf):
                return sigmoid_gaz(qd, p[0], p[1], p[2]) + p[3] - tf

            fit = optimize.least_squares(
                res1, start, bounds=([0.0, 1e-3, -vmax, -np.inf], [np.inf, 1e4, vmax, np.inf]),
                max_nfev=200)
            if best is None or fit.cost < best.cost:
                best = fit
        p0[a] = best.x

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
    p = unpack(fit.x)
    rhs = b_w - friction_w(p)
    beta = linalg.solve_triangular(r_mat, q_mat.T @ rhs) / norms
    dof = max(len(b_w) - r - 4 * n_act, 1)
    s2 = float(np.sum(fit.fun ** 2) / dof)
    rinv = linalg.solve_triangular(r_mat, np.eye(r))
    beta_std = np.sqrt(s2 * np.sum(rinv ** 2, axis=1)) / norms
    return beta, p, beta_std


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


def _consistent_refit(base, yb, yf, b_mat, weights, theta_nom, beta, fric_rows, friction,
                      qd_act, reg=1e-3):
    """
    Refit with log-Cholesky bodies (consistent by construction); see the module docstring.

    Minimizes ``mean(weighted torque residual^2) + reg * mean(((theta - theta_nom) /
    parameter_scales)^2)`` over the log-Cholesky coordinates of every body (and the
    viscous-Coulomb friction, which stays linear; sigmoid friction is kept fixed).

    Returns theta (10 nb,), beta (r,), friction rows (n_act, k).
    """
    n_act = yb.shape[1]
    r = base.rank
    nb = len(theta_nom) // 10
    vc = friction == 'viscous-coulomb'
    if vc:
        a = np.concatenate([yb, yf], axis=2)
        b = b_mat
    else:
        a = yb
        b = b_mat - friction_torque(friction, fric_rows, qd_act)
    a_w = (a * weights[None, :, None]).reshape(-1, a.shape[2])
    b_w = (b * weights[None, :]).reshape(-1)
    q_mat, r_mat = np.linalg.qr(a_w)
    c = q_mat.T @ b_w
    w_data = 1.0 / np.sqrt(len(b_w))
    scales = parameter_scales(theta_nom)
    w_reg = np.sqrt(reg / len(theta_nom)) / scales
    eps = 1e-6 * max(float(np.max(theta_nom[::10])), 1e-3)

    def unpack(z):
        th = np.empty(10 * nb)
        jac = np.zeros((10 * nb, 10 * nb))
        for k in range(nb):
            s = slice(10 * k, 10 * k + 10)
            th[s], jac[s, s] = _logchol_theta_jac(z[s])
        return th, jac

    def xvec(z, th):
        xb = base.projection @ th
        return np.concatenate([xb, z[10 * nb:]]) if vc else xb

    def residual(z):
        th, _ = unpack(z)
        return np.concatenate([w_data * (r_mat @ xvec(z, th) - c), w_reg * (th - theta_nom)])

    def jacobian(z):
        th, dth = unpack(z)
        top = w_data * (r_mat[:, :r] @ base.projection @ dth)
        bottom = w_reg[:, None] * dth
        if vc:
            top = np.hstack([top, w_data * r_mat[:, r:]])
            bottom = np.hstack([bottom, np.zeros((len(th), r_mat.shape[1] - r))])
        return np.vstack([top, bottom])

    # Start from the closest full parameters, each body's pseudo-inertia eigenvalues floored.
    theta_start = closest_full_parameters(base, beta, theta_nom)
    z0 = []
    for k in range(nb):
        jmat = _pseudo_from_theta(theta_start[10 * k:10 * k + 10])
        ev, vec = np.linalg.eigh(jmat)
        floor = max(1e-3 * ev[-1], eps)
        if ev[0] < floor:
            jmat = (vec * np.maximum(ev, floor)) @ vec.T
        z0.append(_logchol_from_theta(_theta_from_pseudo_np(jmat), eps))
    z0 = np.concatenate(z0 + ([fric_rows.ravel()] if vc else []))
    # Levenberg-Marquardt (MINPACK): small dense problem; the log-diagonal is clipped in
    # _logchol_theta_jac so that exp() cannot overflow.
    fit = optimize.least_squares(residual, z0, jac=jacobian, method='lm', x_scale='jac',
                                 ftol=1e-7, max_nfev=200)
    theta, _ = unpack(fit.x)
    if vc:
        fric_rows = fit.x[10 * nb:].reshape(n_act, 3)
    return theta, base.projection @ theta, fric_rows


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------
def identify_log(urdf, data, *, topic=None, cutoff_hz=DEFAULT_CUTOFF_HZ, rate_hz=None,
                 max_nan_fraction=0.05, **kwargs):
    """
    Read a log file, prepare it and identify the model of a URDF.

    Parameters
    ----------
    urdf : str or Path
        The URDF file.
    data : str or Path
        CSV file or rosbag2 directory (see :func:`twin_sim.logdata.read_log`).
    topic, cutoff_hz, rate_hz, max_nan_fraction
        See :func:`twin_sim.logdata.read_log` and :func:`twin_sim.logdata.prepare_log`.
    **kwargs
        Passed to :func:`identify`.

    Returns
    -------
    SysIdResult
        ``timings['load_filter']`` holds the reading and filtering time.

    """
    t0 = _time.perf_counter()
    model = load_model(urdf)
    raw = read_log(data, topic)
    log = prepare_log(raw, model_joint_names(model), cutoff_hz=cutoff_hz, rate_hz=rate_hz,
                      max_nan_fraction=max_nan_fraction)
    t_load = _time.perf_counter() - t0
    result = identify(model, log, **kwargs)
    result.timings = {'load_filter': t_load, **result.timings}
    result.urdf = str(urdf)
    return result


def save_parameters(result, path):
    """
    Write the identified parameters as params.yaml (docs/conventions.md format).

    ``joints`` lists every model joint; ``friction`` names the identified joints only (the
    others keep their URDF values when loaded); ``bodies`` names every joint.

    Parameters
    ----------
    result : SysIdResult
        The identification result.
    path : str or Path
        The YAML file to write.

    """
    import yaml

    bodies = {j: {'dynamic_parameters': [float(v) for v in result.theta[10 * i:10 * i + 10]]}
              for i, j in enumerate(result.joint_names)}
    doc = {'robot_twin_dynamics': {
        'version': 1,
        'urdf': result.urdf,
        'joints': list(result.joint_names),
        'friction_model': result.friction_model,
        'friction': result.friction_dict(),
        'bodies': bodies,
    }}
    with open(path, 'w', encoding='utf-8') as f:
        f.write('# Identified by robot-twin sysid; dynamic_parameters in pinocchio order\n'
                '# [m, mcx, mcy, mcz, Ixx, Ixy, Iyy, Ixz, Iyz, Izz] (kg, kg m, kg m^2, about '
                'the joint frame origin).\n')
        yaml.safe_dump(doc, f, sort_keys=False, default_flow_style=None, width=120)
