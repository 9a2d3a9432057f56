"""
Excitation trajectories for system identification (finite Fourier series, Swevers style).

Each joint follows a periodic finite Fourier series of base frequency ``f`` (angular
``w = 2 pi f``) with ``L`` harmonics::

    q_i(t)   = q0_i + sum_l  a_il / (w l) sin(w l t) - b_il / (w l) cos(w l t)
    qd_i(t)  =        sum_l  a_il cos(w l t) + b_il sin(w l t)
    qdd_i(t) =        sum_l  w l (-a_il sin(w l t) + b_il cos(w l t))

The coefficients are constrained so that every period starts and ends at rest at ``q0`` (the
middle of the joint range): ``sum_l a_il = 0``, ``sum_l l b_il = 0``, ``sum_l b_il / l = 0``.
Each joint's amplitude is then scaled so that the trajectory just reaches the tightest of its
position, velocity and acceleration limits shrunk by a margin; the URDF has no acceleration
limits, so ``max_acceleration`` stands in. The free coefficients are optimized (random starts,
then L-BFGS-B) for a low condition number of the column-normalized identification regressor
(base inertial parameters plus viscous-Coulomb-offset friction), the figure
:func:`twin_sim.sysid.identify` checks. Finally, the inverse-dynamics torques of the URDF model
are checked against the effort limits and all amplitudes shrunk until they fit.

A URDF ``<mimic>`` joint (a gripper's second finger) cannot move on its own: it follows its
leader, ``q = multiplier * q_leader + offset``, in the trajectory too (its coefficients are the
leader's times the multiplier). The leader's amplitude is bounded by the follower's limits as
well, the identification regressor is conditioned for the coupled motion, and holding either
joint (``hold_joints``) holds both. Pass a :class:`~twin_sim.urdf_model.RobotModel` (it knows
its ``mimic_joints``) or ``mimic=`` with a pinocchio model.

Not checked: self-collision and collision with the environment. Look at the trajectory (e.g.
in the twin's PyBullet world) before sending it to a real robot.
"""
from dataclasses import dataclass, field
import math
import warnings

import numpy as np
from scipy import linalg, optimize

from twin_sim.friction import DEFAULT_SMOOTH_VELOCITY, viscous_coulomb_regressor
from twin_sim.logdata import SysIdError
from twin_sim.sysid import (_check_model, _column_scaled, _progress_default, base_parameters,
                            model_joint_names, position_limits, predict_torque, regressor)

__all__ = ['ExcitationTrajectory', 'design_excitation', 'excitation_condition',
           'write_trajectory_csv']

DEFAULT_MAX_ACCELERATION = 5.0
DEFAULT_MARGIN = 0.1


@dataclass
class ExcitationTrajectory:
    """
    A periodic Fourier-series trajectory in the model's joint order.

    Attributes
    ----------
    joint_names : list of str, length n
    base_frequency : float, Hz
    a, b : (n, L)
        Coefficients, rad/s (m/s for prismatic joints); rows of held joints are zero.
    q0 : (n,) rad or m
        Rest position at the start and the end of every period.
    duration : float, s
        A whole number of periods.
    condition_number : float
        Column-normalized condition number of the identification regressor along one period.
    info : dict
        Per joint: fraction of the position, velocity, acceleration and effort limits used,
        whether it is held, and the joint it follows (``mimics``, or None).

    """

    joint_names: list
    base_frequency: float
    a: np.ndarray
    b: np.ndarray
    q0: np.ndarray
    duration: float
    condition_number: float = float('nan')
    info: dict = field(default_factory=dict)

    @property
    def period(self):
        """Period of the series, s."""
        return 1.0 / self.base_frequency

    def evaluate(self, t):
        """
        Positions, velocities and accelerations at times ``t``.

        Parameters
        ----------
        t : (N,) s
            Times at which to evaluate the trajectory.

        Returns
        -------
        q, qd, qdd : (N, n) rad, rad/s, rad/s² (m, m/s, m/s² for prismatic joints)

        """
        return _evaluate(self.a, self.b, self.q0, self.base_frequency, np.asarray(t, float))

    def sample(self, rate_hz):
        """Sample the whole trajectory at ``rate_hz``; returns ``t (N,)`` and ``q, qd, qdd``."""
        n_steps = int(round(self.duration * rate_hz))
        t = np.arange(n_steps + 1) / rate_hz
        return (t,) + self.evaluate(t)


def _evaluate(a, b, q0, f, t):
    w = 2.0 * math.pi * f
    n_harm = a.shape[1]
    lw = w * np.arange(1, n_harm + 1)
    s, c = np.sin(np.outer(t, lw)), np.cos(np.outer(t, lw))  # (N, L)
    q = q0 + s @ (a / lw).T - c @ (b / lw).T
    qd = c @ a.T + s @ b.T
    qdd = -s @ (a * lw).T + c @ (b * lw).T
    return q, qd, qdd


def _limits(model, margin, max_acceleration):
    n = model.nv
    lo, hi = position_limits(model)
    span = hi - lo
    vel = np.array(model.velocityLimit, float)
    vel[~(vel > 0) | ~np.isfinite(vel)] = 1.0
    effort = np.array(model.effortLimit, float)
    effort[~(effort > 0) | ~np.isfinite(effort)] = np.inf
    return (lo + margin * span, hi - margin * span, (1.0 - margin) * vel,
            np.full(n, (1.0 - margin) * max_acceleration), (1.0 - margin) * effort)


def _constraint_bases(n_harm):
    lvec = np.arange(1, n_harm + 1, dtype=float)
    null_a = linalg.null_space(np.ones((1, n_harm)))
    null_b = linalg.null_space(np.vstack([lvec, 1.0 / lvec]))
    return null_a, null_b


def _scale_to_limits(a, b, q0, f, grid, lims, moving):
    """Scale each moving joint's coefficients so it just reaches its tightest limit."""
    lo, hi, vmax, amax = lims[:4]
    q, qd, qdd = _evaluate(a, b, np.zeros_like(q0), f, grid)
    scale = np.zeros(len(q0))
    with np.errstate(divide='ignore', invalid='ignore'):
        ratios = np.vstack([
            np.where(q.max(0) > 0, (hi - q0) / q.max(0), np.inf),
            np.where(q.min(0) < 0, (lo - q0) / q.min(0), np.inf),
            vmax / np.abs(qd).max(0), amax / np.abs(qdd).max(0)])
    scale[moving] = np.nanmin(ratios, axis=0)[moving]
    scale[~np.isfinite(scale)] = 0.0
    return a * scale[:, None], b * scale[:, None]


def excitation_condition(model, q, qd, qdd, moving, base=None):
    """
    Column-normalized condition number of the identification regressor.

    Parameters
    ----------
    model : pin.Model
        The robot model (1-DoF joints).
    q, qd, qdd : (N, n)
        Joint positions, velocities and accelerations along the trajectory.
    moving : (n,) bool
        Joints that move (others are held; their torque rows are left out).
    base : BaseParameters, optional
        Precomputed base-parameter map for the same held joints.

    Returns
    -------
    float
        Condition number of ``[Y_base, Y_friction]`` with unit-norm columns.

    """
    rows = np.flatnonzero(moving)
    if base is None:
        locked = {int(j): float(q[0, j]) for j in np.flatnonzero(~moving)}
        base = base_parameters(model, rows=rows, locked=locked)
    yb = regressor(model, q, qd, qdd, rows=rows, columns=base.columns)
    yf_rows = viscous_coulomb_regressor(qd[:, rows], smooth_velocity=DEFAULT_SMOOTH_VELOCITY)
    n_act = len(rows)
    yf = np.zeros((len(q), n_act, 3 * n_act))
    for k in range(n_act):
        yf[:, k, 3 * k:3 * k + 3] = yf_rows[:, k, :]
    a = np.concatenate([yb, yf], axis=2).reshape(-1, base.rank + 3 * n_act)
    a_s, _ = _column_scaled(a)
    s = np.linalg.svd(a_s, compute_uv=False)
    return float(s[0] / s[-1]) if s[-1] > 0 else float('inf')


def _mimic_groups(names, mimic, locked):
    """
    Resolve ``<mimic>`` couplings to the model's independent joints.

    Returns ``follow`` ``{follower index: (leader index, multiplier, offset)}`` (chains of
    mimics composed, the leader a joint that mimics none) and ``pinned``
    ``{follower index: position}`` for followers of a locked (fixed) joint.
    """
    index = {name: i for i, name in enumerate(names)}
    follow, pinned = {}, {}
    for joint in mimic:
        if joint not in index:
            raise SysIdError(f'mimic joint {joint!r} is not a model joint; model joints: {names}')
        multiplier, offset, leader, seen = 1.0, 0.0, joint, [joint]
        while leader in mimic:
            entry = mimic[leader]
            try:
                leader, k, c = entry[0], float(entry[1]), float(entry[2])
            except (TypeError, ValueError, IndexError):
                raise SysIdError(f'mimic of joint {seen[-1]!r} must be (leader, multiplier, '
                                 f'offset), got {entry!r}') from None
            if not (math.isfinite(k) and math.isfinite(c)):
                raise SysIdError(f'mimic of joint {seen[-1]!r}: multiplier and offset must be '
                                 f'finite, got {entry!r}')
            multiplier, offset = multiplier * k, multiplier * c + offset
            if leader in seen:
                raise SysIdError(f'mimic joints {seen} follow each other in a loop')
            seen.append(leader)
        if leader in index:
            follow[index[joint]] = (index[leader], multiplier, offset)
        elif leader in locked:
            pinned[index[joint]] = multiplier * float(locked[leader]) + offset
        else:
            raise SysIdError(f'joint {joint!r} mimics {leader!r}, which is neither a model '
                             f'joint nor a locked one; model joints: {names}')
    return follow, pinned


def _leader_range(i, lo, hi, follow, names, what):
    """Positions of leader ``i`` within ``[lo, hi]`` that keep all its followers in theirs."""
    low, high = lo[i], hi[i]
    for f, (leader, k, c) in follow.items():
        if leader != i or k == 0.0:
            continue
        ends = sorted(((lo[f] - c) / k, (hi[f] - c) / k))
        low, high = max(low, ends[0]), min(high, ends[1])
    if not low <= high:
        followers = [names[f] for f, (leader, _k, _c) in follow.items() if leader == i]
        raise SysIdError(f'no position of joint {names[i]} within its {what} keeps its <mimic> '
                         f'joints {followers} within theirs; fix the <mimic> multiplier/offset')
    return low, high


def _couple(a, b, follow):
    """Set each follower's coefficients to its leader's times the multiplier (in place)."""
    for f, (leader, k, _c) in follow.items():
        a[f] = k * a[leader]
        b[f] = k * b[leader]
    return a, b


def design_excitation(model, *, duration=30.0, harmonics=5, base_frequency=0.1, seed=0,
                      margin=DEFAULT_MARGIN, max_acceleration=DEFAULT_MAX_ACCELERATION,
                      hold_joints=(), iterations=30, restarts=8, samples_per_period=200,
                      progress=False, mimic=None):
    """
    Design an excitation trajectory for a model.

    Parameters
    ----------
    model : pin.Model or RobotModel
        1-DoF joints; its position, velocity and effort limits bound the trajectory. A
        :class:`~twin_sim.urdf_model.RobotModel` also gives its ``<mimic>`` joints.
    duration : float, s
        Rounded up to a whole number of periods ``1 / base_frequency``.
    harmonics : int >= 2
        Number of Fourier harmonics per joint.
    base_frequency : float, Hz
        Fundamental frequency of the periodic trajectory.
    seed : int
        Seed of the random starts (and of the noise, in :func:`simulate_log`).
    margin : float in [0, 0.5)
        Fraction of each position range kept free at both ends, and of the velocity,
        acceleration and effort limits kept in reserve.
    max_acceleration : float, rad/s² (m/s²)
        Acceleration limit for every joint (URDFs have none).
    hold_joints : sequence of str
        Joints that stay still (at 0 clipped into their limits), e.g. gripper fingers. A
        ``<mimic>`` joint and its leader are held together (holding one holds both, with a
        warning), the follower where the leader puts it.
    iterations : int
        L-BFGS-B iterations on the condition number; 0 keeps the best random start.
    restarts : int
        Random starts compared before the local optimization.
    samples_per_period : int
        Time samples per period for the condition number and the limit checks.
    progress : bool or None
        Show a tqdm bar over the random starts and optimizer iterations (None: only on a
        TTY). A long design (a 30 s trajectory takes about a minute) is otherwise silent.
    mimic : dict, optional
        ``{joint: (leader, multiplier, offset)}``: joints that follow another one
        (``RobotModel.mimic_joints``; default: the RobotModel's, none for a pinocchio model).
        A follower of a joint the model does not have (a locked one) is held where that
        joint's locked position puts it.

    Returns
    -------
    ExcitationTrajectory

    Raises
    ------
    SysIdError
        Bad options, a joint name the model lacks, or ``<mimic>`` limits no position of the
        leader satisfies.

    """
    locked_positions = {}
    if hasattr(model, 'pin_model'):                    # a RobotModel
        if mimic is None:
            mimic = model.mimic_joints
        locked_positions = dict(model.locked_joints)
        model = model.pin_model
    mimic = dict(mimic or {})
    _check_model(model)
    names = model_joint_names(model)
    n = len(names)
    if harmonics < 2:
        raise SysIdError(f'need at least 2 harmonics to start and end at rest, got {harmonics}')
    if not base_frequency > 0:
        raise SysIdError(f'base frequency must be > 0 Hz, got {base_frequency}')
    if not 0.0 <= margin < 0.5:
        raise SysIdError(f'margin must be in [0, 0.5), got {margin}')
    if not max_acceleration > 0:
        raise SysIdError(f'max acceleration must be > 0, got {max_acceleration}')
    if not duration > 0:
        raise SysIdError(f'duration must be > 0 s, got {duration}')
    unknown = [j for j in hold_joints if j not in names]
    if unknown:
        raise SysIdError(f'cannot hold unknown joints {unknown}; model joints: {names}')
    follow, pinned = _mimic_groups(names, mimic, locked_positions)
    held = np.array([j in hold_joints for j in names])
    for f, (leader, _k, _c) in follow.items():
        if held[f] and not held[leader]:
            warnings.warn(f'joint {names[f]} follows {names[leader]} (<mimic>): holding it holds '
                          f'{names[leader]} and its other followers too', UserWarning,
                          stacklevel=2)
            held[leader] = True
    for f, (leader, _k, _c) in follow.items():
        held[f] = held[leader]
    held[list(pinned)] = True
    moving = ~held                       # joints that move (followers with their leader)
    free = moving.copy()                 # joints with coefficients of their own
    free[list(follow)] = False
    if not moving.any():
        raise SysIdError('every joint is held; nothing to excite')
    n_periods = max(1, math.ceil(duration * base_frequency - 1e-9))
    duration = n_periods / base_frequency

    lims = _limits(model, margin, max_acceleration)
    full_lo, full_hi = position_limits(model)
    hold_at = np.clip(0.0, full_lo, full_hi)
    scale_lims = [x.copy() for x in lims[:4]]     # a leader's, narrowed by its followers'
    for i in {leader for leader, _k, _c in follow.values()}:
        hold_lo, hold_hi = _leader_range(i, full_lo, full_hi, follow, names, 'limits')
        hold_at[i] = np.clip(0.0, hold_lo, hold_hi)
        if moving[i]:
            scale_lims[0][i], scale_lims[1][i] = _leader_range(
                i, lims[0], lims[1], follow, names, 'limits less the margin')
    for f, (leader, k, _c) in follow.items():
        if k != 0.0:
            scale_lims[2][leader] = min(scale_lims[2][leader], lims[2][f] / abs(k))
            scale_lims[3][leader] = min(scale_lims[3][leader], lims[3][f] / abs(k))
    lo, hi = scale_lims[0], scale_lims[1]
    q0 = np.where(free, 0.5 * (lo + hi), hold_at)
    for f, (leader, k, c) in follow.items():
        q0[f] = k * q0[leader] + c
    for f, value in pinned.items():
        q0[f] = value
    outside = [names[f] for f in list(follow) + list(pinned)
               if not full_lo[f] - 1e-9 <= q0[f] <= full_hi[f] + 1e-9]
    if outside:
        raise SysIdError(f'<mimic> joints {outside} would stand outside their limits where '
                         'their leaders put them; fix the <mimic> multiplier/offset')
    null_a, null_b = _constraint_bases(harmonics)
    n_free = null_a.shape[1] + null_b.shape[1]
    grid = np.arange(samples_per_period) / (samples_per_period * base_frequency)
    own = np.flatnonzero(free)
    rows = np.flatnonzero(moving)
    locked = {int(j): float(q0[j]) for j in np.flatnonzero(~moving)}
    coupled = {f: entry for f, entry in follow.items() if moving[f]}
    base = base_parameters(model, rows=rows, locked=locked, follow=coupled)

    def scaled(a, b, sample_grid):
        a, b = _scale_to_limits(a, b, q0, base_frequency, sample_grid, scale_lims, free)
        return _couple(a, b, coupled)

    def coefficients(z):
        z = z.reshape(len(own), n_free)
        a = np.zeros((n, harmonics))
        b = np.zeros((n, harmonics))
        a[own] = z[:, :null_a.shape[1]] @ null_a.T
        b[own] = z[:, null_a.shape[1]:] @ null_b.T
        return scaled(a, b, grid)

    def objective(z):
        a, b = coefficients(z)
        q, qd, qdd = _evaluate(a, b, q0, base_frequency, grid)
        cond = excitation_condition(model, q, qd, qdd, moving, base)
        return math.log(cond) if np.isfinite(cond) else 1e3

    from tqdm import tqdm
    rng = np.random.default_rng(seed)
    starts = [rng.standard_normal(len(own) * n_free) for _ in range(max(1, restarts))]
    with tqdm(total=len(starts) + max(0, int(iterations)), desc='excitation design',
              unit='step', disable=not _progress_default(progress), leave=False) as bar:
        values = []
        for z in starts:
            values.append(objective(z))
            bar.update(1)
        z_best = starts[int(np.argmin(values))]
        if iterations > 0:
            fit = optimize.minimize(objective, z_best, method='L-BFGS-B',
                                    callback=lambda _z: bar.update(1),
                                    options={'maxiter': int(iterations), 'eps': 1e-4})
            if fit.fun < min(values):
                z_best = fit.x
    a, b = coefficients(z_best)
    # Rescale on a fine grid so that no extreme between the coarse samples passes a limit.
    fine = np.arange(100 * harmonics * 20) / (100 * harmonics * 20 * base_frequency)
    a, b = scaled(a, b, fine)

    # Effort limits: shrink all amplitudes until the URDF model's torques fit.
    effort_lim = lims[4]
    shrink = 1.0
    for _ in range(40):
        q, qd, qdd = _evaluate(a * shrink, b * shrink, q0, base_frequency, grid)
        tau = predict_torque(model, None, q, qd, qdd, 'urdf')
        ratio = np.abs(tau).max(0) / effort_lim
        if ratio.max() <= 1.0:
            break
        shrink *= 0.9
    a, b = a * shrink, b * shrink
    q, qd, qdd = _evaluate(a, b, q0, base_frequency, grid)
    cond = excitation_condition(model, q, qd, qdd, moving, base)
    tau = predict_torque(model, None, q, qd, qdd, 'urdf')
    info = {}
    for i, j in enumerate(names):
        span = full_hi[i] - full_lo[i]
        info[j] = {
            'position_range': [float(q[:, i].min()), float(q[:, i].max())],
            'position_limits': [float(full_lo[i]), float(full_hi[i])],
            'position_fraction_of_range': float(np.ptp(q[:, i]) / span)
            if np.isfinite(span) and span > 0 else None,
            'velocity_fraction': float(np.abs(qd[:, i]).max() / model.velocityLimit[i])
            if model.velocityLimit[i] > 0 else None,
            'max_acceleration': float(np.abs(qdd[:, i]).max()),
            'effort_fraction': float(np.abs(tau[:, i]).max() / model.effortLimit[i])
            if model.effortLimit[i] > 0 else None,
            'held': bool(not moving[i]),
            'mimics': names[follow[i][0]] if i in follow else None,
        }
    info['_effort_shrink'] = shrink
    if ratio.max() > 1.0:
        worst = names[int(np.argmax(ratio))]
        raise SysIdError(f'cannot keep joint {worst} within its effort limit even at small '
                         'amplitude (gravity alone is too large at the start pose)')
    return ExcitationTrajectory(names, float(base_frequency), a, b, q0, float(duration), cond,
                                info)


def write_trajectory_csv(trajectory, path, rate_hz=100.0):
    """
    Write ``time,<joint>.position,<joint>.velocity,<joint>.acceleration`` rows.

    Parameters
    ----------
    trajectory : ExcitationTrajectory
        The trajectory to sample.
    path : str or Path
        CSV file to write.
    rate_hz : float
        Sample rate of the rows, Hz.

    Returns
    -------
    int
        Number of rows written.

    """
    if not rate_hz > 0:
        raise SysIdError(f'rate must be > 0 Hz, got {rate_hz}')
    t, q, qd, qdd = trajectory.sample(rate_hz)
    header = ['time'] + [f'{j}.{what}' for j in trajectory.joint_names
                         for what in ('position', 'velocity', 'acceleration')]
    cols = [t]
    for i in range(len(trajectory.joint_names)):
        cols += [q[:, i], qd[:, i], qdd[:, i]]
    np.savetxt(path, np.column_stack(cols), delimiter=',', header=','.join(header),
               comments='', fmt='%.9g')
    return len(t)


def simulate_log(model, trajectory, *, rate_hz=1000.0, theta=None, friction_model=None,
                 friction=None, position_noise=0.0, velocity_noise=0.0, torque_noise=0.0,
                 jitter=0.0, with_velocity=True, seed=0):
    """
    Simulate the log of a robot with known dynamics that follows a trajectory exactly.

    Joint states are sampled at irregular instants (``k / rate_hz`` plus a uniform jitter of up
    to ``jitter / rate_hz``), the torque is the inverse dynamics of ``model`` with the
    parameters ``theta`` (pinocchio RNEA) plus friction, and Gaussian noise is added to the
    recorded position, velocity and torque. Stamps are exact.

    Parameters
    ----------
    model : pin.Model
        The robot model (1-DoF joints).
    trajectory : ExcitationTrajectory
        The trajectory to sample.
    rate_hz : float
        Mean sample rate, Hz.
    theta : (10 nb,), optional
        True dynamic parameters (default: the model's).
    friction_model : {'viscous-coulomb', 'sigmoid'} or None
        Friction law added to the torques; None for none.
    friction : (n, 3 or 4), optional
        True friction parameters, see :func:`twin_sim.sysid.friction_torque`.
    position_noise, velocity_noise, torque_noise : float
        Noise standard deviations, rad, rad/s, N·m.
    jitter : float in [0, 0.5)
        Stamp jitter as a fraction of the mean sample period.
    with_velocity : bool
        Include velocity columns (otherwise they are NaN, as in a log without velocity).
    seed : int
        Seed of the random starts (and of the noise, in :func:`simulate_log`).

    Returns
    -------
    LogData
        In the model's joint order.

    """
    from twin_sim.logdata import LogData

    rng = np.random.default_rng(seed)
    n_steps = int(round(trajectory.duration * rate_hz))
    t = (np.arange(n_steps + 1) + rng.uniform(-jitter, jitter, n_steps + 1)) / rate_hz
    t = np.clip(t, 0.0, trajectory.duration)
    q, qd, qdd = trajectory.evaluate(t)
    tau = predict_torque(model, theta, q, qd, qdd, friction_model, friction)
    shape = q.shape
    q_m = q + position_noise * rng.standard_normal(shape)
    qd_m = qd + velocity_noise * rng.standard_normal(shape)
    tau_m = tau + torque_noise * rng.standard_normal(shape)
    if not with_velocity:
        qd_m = np.full(shape, np.nan)
    return LogData(t, list(trajectory.joint_names), q_m, qd_m, tau_m, 'simulated')


__all__ += ['simulate_log']
