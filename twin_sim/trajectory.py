"""
Joint trajectories without ROS: interpolation of trajectory points and the demo motion.

:class:`JointTrajectoryInterpolator` turns the points of a ``trajectory_msgs/JointTrajectory``
(times from start, positions, optional velocities and accelerations) into a continuous
``q(t), qd(t), qdd(t)``; the plant follows it with its position controller.
:class:`DemoMotion` is a smooth periodic motion (sums of sinusoids) sized from the joint limits,
used by the demo controller. :data:`STREAM_HORIZON_S` bounds how far a streamed set-point is
extrapolated (the plant, and the HIL report that compares the arm with it).
"""
import numpy as np
from scipy.interpolate import BPoly, CubicSpline
from scipy.optimize import minimize

__all__ = ['TrajectoryError', 'JointTrajectoryInterpolator', 'DemoMotion', 'low_gravity_pose',
           'mid_range', 'STREAM_HORIZON_S']

STREAM_HORIZON_S = 0.05
"""A streamed position set-point (with velocity) is extrapolated this long at most, s."""


class TrajectoryError(ValueError):
    """Bad trajectory input; the message says which point or value and what to do."""


def _matrix(value, m, n, what):
    try:
        arr = np.array(value, dtype=float)
    except (TypeError, ValueError) as exc:
        raise TrajectoryError(f'{what}: expected {m} points of {n} numbers') from exc
    if arr.ndim == 1 and n == 1 and arr.shape == (m,):
        arr = arr.reshape(m, 1)
    if arr.shape != (m, n):
        raise TrajectoryError(f'{what}: expected shape ({m}, {n}) (points x joints), got '
                              f'{arr.shape}')
    if not np.all(np.isfinite(arr)):
        bad = int(np.argwhere(~np.isfinite(arr))[0][0])
        raise TrajectoryError(f'{what}: point {bad} has a non-finite value')
    return arr


class JointTrajectoryInterpolator:
    """
    Time-parameterized interpolation of joint trajectory points.

    With positions only, a cubic spline through the points with zero velocity at both ends
    (``CubicSpline(bc_type='clamped')``, C2); with velocities, a cubic Hermite spline (C1,
    matches the given velocities); with velocities and accelerations, a quintic Hermite spline
    (C2, matches all three) built with ``scipy.interpolate.BPoly.from_derivatives``. Before the
    first point the first point is held; after the last one, its position is held with zero
    velocity and acceleration.

    Parameters
    ----------
    times : (m,) s
        Time from start of each point, strictly increasing, ``>= 0``.
    positions : (m, n) rad
    velocities : (m, n) rad/s, optional
    accelerations : (m, n) rad/s^2, optional
        Only together with ``velocities``.
    joint_names : sequence of str, optional
        Names of the ``n`` columns (kept for the caller's mapping).

    Raises
    ------
    TrajectoryError
        Empty trajectory, shapes that do not match, times not increasing, non-finite values.

    """

    def __init__(self, times, positions, velocities=None, accelerations=None,
                 joint_names=None):
        times = np.array(times, dtype=float).reshape(-1)
        m = times.size
        if m == 0:
            raise TrajectoryError('a trajectory needs at least one point')
        if not np.all(np.isfinite(times)):
            raise TrajectoryError(f'times must be finite, got {times.tolist()}')
        if times[0] < 0.0:
            raise TrajectoryError(f'time_from_start of point 0 must be >= 0 s, got {times[0]}')
        steps = np.diff(times)
        if np.any(steps <= 0.0):
            bad = int(np.argmax(steps <= 0.0)) + 1
            raise TrajectoryError(f'time_from_start must increase strictly; point {bad} at '
                                  f'{times[bad]} s follows {times[bad - 1]} s')
        positions = np.array(positions, dtype=float)
        if positions.ndim != 2 or positions.shape[0] != m:
            raise TrajectoryError(f'positions: expected shape ({m}, n_joints), got '
                                  f'{positions.shape}')
        n = positions.shape[1]
        positions = _matrix(positions, m, n, 'positions')
        if velocities is not None:
            velocities = _matrix(velocities, m, n, 'velocities')
        if accelerations is not None:
            if velocities is None:
                raise TrajectoryError('accelerations need velocities as well')
            accelerations = _matrix(accelerations, m, n, 'accelerations')
        if joint_names is not None and len(joint_names) != n:
            raise TrajectoryError(f'joint_names has {len(joint_names)} names for {n} columns')
        self.joint_names = None if joint_names is None else list(joint_names)
        self.times = times
        self.positions = positions
        self.n = n
        self.duration = float(times[-1])
        self._end_q = positions[-1].copy()
        if m == 1:
            self._poly = None
            return
        if velocities is None:
            self._poly = CubicSpline(times, positions, axis=0, bc_type='clamped')
            self._dpoly = self._poly.derivative(1)
            self._ddpoly = self._poly.derivative(2)
        else:
            if accelerations is None:
                derivs = np.stack([positions, velocities], axis=1)
            else:
                derivs = np.stack([positions, velocities, accelerations], axis=1)
            self._poly = BPoly.from_derivatives(times, derivs)
            self._dpoly = self._poly.derivative(1)
            self._ddpoly = self._poly.derivative(2)

    @classmethod
    def from_points(cls, times, positions, velocities=None, accelerations=None, *,
                    start_q=None, start_qd=None, joint_names=None):
        """
        Build from message points, starting from the current state if the first is later.

        ``trajectory_msgs/JointTrajectory`` points usually start after ``t = 0``; as
        ros2_control's joint trajectory controller does, the current state (``start_q``,
        ``start_qd``, default zero velocity) is then prepended at ``t = 0``.
        """
        times = np.array(times, dtype=float).reshape(-1)
        if start_q is not None and times.size and times[0] > 0.0:
            positions = np.array(positions, dtype=float)
            n = positions.shape[-1] if positions.ndim == 2 else np.size(start_q)
            start_q = np.array(start_q, dtype=float).reshape(-1)
            if start_q.shape != (n,):
                raise TrajectoryError(f'start_q: expected {n} values, got {start_q.size}')
            zeros = np.zeros((1, n))
            start_qd = zeros[0] if start_qd is None else np.array(start_qd, float).reshape(n)
            times = np.concatenate([[0.0], times])
            positions = np.vstack([start_q, positions])
            if velocities is not None:
                velocities = np.vstack([start_qd, np.array(velocities, dtype=float)])
            if accelerations is not None:
                accelerations = np.vstack([zeros, np.array(accelerations, dtype=float)])
        return cls(times, positions, velocities, accelerations, joint_names=joint_names)

    def sample(self, t):
        """
        Return ``(q, qd, qdd)`` at time ``t`` (s from the trajectory start).

        Parameters
        ----------
        t : float or (k,) array
            Times, s.

        Returns
        -------
        q, qd, qdd : (n,) or (k, n)
            rad, rad/s, rad/s^2.

        """
        scalar = np.ndim(t) == 0
        t = np.atleast_1d(np.asarray(t, dtype=float))
        k = t.size
        q = np.empty((k, self.n))
        qd = np.zeros((k, self.n))
        qdd = np.zeros((k, self.n))
        if self._poly is None:
            q[:] = self._end_q
        else:
            before = t < self.times[0]
            after = t >= self.duration
            inside = ~(before | after)
            q[before] = self.positions[0]
            q[after] = self._end_q
            if np.any(inside):
                ti = t[inside]
                q[inside] = self._poly(ti)
                qd[inside] = self._dpoly(ti)
                qdd[inside] = self._ddpoly(ti)
        if scalar:
            return q[0], qd[0], qdd[0]
        return q, qd, qdd


class DemoMotion:
    """
    A smooth periodic joint motion within a fraction of the joint limits.

    Joint ``i`` moves as ``q_i(t) = c_i + w(t) sum_k a_ik sin(2 pi h_ik t / T + phi_ik)``, with
    integer harmonics ``h_ik`` (so the motion repeats every ``T``), random phases, and a
    quintic fade-in ``w(t)`` over ``fade_in_s`` so it starts at rest at the centre ``c``. The
    amplitudes are chosen so that, with the fade-in included, the positions stay within
    ``fraction`` of the way from ``c`` to each joint limit and the speeds within ``fraction``
    of the velocity limits; :meth:`fit_effort` also shrinks it until a model's inverse
    dynamics stay within ``fraction`` of the effort limits.

    Parameters
    ----------
    lower, upper : (n,) rad
        Joint position limits (infinite limits count as ``+-pi`` from the centre).
    velocity_limit : (n,) rad/s
    center : (n,) rad, optional
        Centre pose (default the middle of the limits); must lie inside them.
    fraction : float
        Fraction of the limits to use, in (0, 1].
    period_s : float
        Period ``T`` of the motion, s.
    harmonics : int
        Sinusoids per joint (harmonics drawn from 1..3).
    fade_in_s : float
        Duration of the fade-in, s (0: none).
    seed : int
        Seeds phases and harmonics.

    """

    def __init__(self, lower, upper, velocity_limit, *, center=None, fraction=0.6,
                 period_s=10.0, harmonics=2, fade_in_s=2.0, seed=0):
        lower = np.array(lower, dtype=float).reshape(-1)
        upper = np.array(upper, dtype=float).reshape(-1)
        vmax = np.array(velocity_limit, dtype=float).reshape(-1)
        n = lower.size
        if upper.shape != (n,) or vmax.shape != (n,):
            raise TrajectoryError(f'lower, upper and velocity_limit must have the same length, '
                                  f'got {lower.size}, {upper.size}, {vmax.size}')
        if not (0.0 < fraction <= 1.0):
            raise TrajectoryError(f'fraction must be in (0, 1], got {fraction}')
        if not (period_s > 0.0 and fade_in_s >= 0.0 and int(harmonics) >= 1):
            raise TrajectoryError('period_s must be > 0, fade_in_s >= 0 and harmonics >= 1')
        center = (mid_range(lower, upper) if center is None
                  else np.array(center, dtype=float).reshape(-1))
        if center.shape != (n,):
            raise TrajectoryError(f'center: expected {n} values, got {center.size}')
        if np.any(center <= lower) or np.any(center >= upper):
            raise TrajectoryError(f'center {center.tolist()} must lie inside the limits')
        self.n = n
        self.center = center
        self.fraction = float(fraction)
        self.period_s = float(period_s)
        self.fade_in_s = float(fade_in_s)
        rng = np.random.default_rng(seed)
        k = int(harmonics)
        self.harmonics = np.stack([rng.permutation(np.arange(1, 4))[:k] if k <= 3 else
                                   rng.integers(1, 4, size=k) for _ in range(n)])
        self.phases = rng.uniform(0.0, 2.0 * np.pi, size=(n, k))
        weights = rng.uniform(0.5, 1.0, size=(n, k))
        weights /= weights.sum(axis=1, keepdims=True)
        room = np.minimum(np.where(np.isfinite(upper), upper - center, np.pi),
                          np.where(np.isfinite(lower), center - lower, np.pi))
        amp = self.fraction * room
        omega = 2.0 * np.pi * self.harmonics / self.period_s
        # speed bound: sum a w + (fade-in) max|w'| sum a, with max|w'| = 1.875 / fade_in_s
        fade = 1.875 / self.fade_in_s if self.fade_in_s > 0.0 else 0.0
        speed_per_amp = (weights * omega).sum(axis=1) + fade
        amp = np.minimum(amp, self.fraction * vmax / speed_per_amp)
        self.amplitudes = weights * amp[:, None]
        self._omega = omega

    def _fade(self, t):
        if self.fade_in_s <= 0.0:
            return np.ones_like(t), np.zeros_like(t), np.zeros_like(t)
        s = np.clip(t / self.fade_in_s, 0.0, 1.0)
        inside = (t > 0.0) & (t < self.fade_in_s)
        w = s ** 3 * (10.0 - 15.0 * s + 6.0 * s ** 2)
        dw = np.where(inside, 30.0 * s ** 2 * (1.0 - s) ** 2 / self.fade_in_s, 0.0)
        ddw = np.where(inside, 60.0 * s * (1.0 - s) * (1.0 - 2.0 * s) / self.fade_in_s ** 2,
                       0.0)
        return w, dw, ddw

    def sample(self, t):
        """Return ``(q, qd, qdd)`` at time ``t`` (s): (n,) each, or (k, n) for (k,) times."""
        scalar = np.ndim(t) == 0
        t = np.atleast_1d(np.asarray(t, dtype=float))
        arg = self._omega[None] * t[:, None, None] + self.phases[None]   # (k, n, h)
        a = self.amplitudes[None]
        s = (a * np.sin(arg)).sum(axis=2)
        ds = (a * self._omega[None] * np.cos(arg)).sum(axis=2)
        dds = -(a * self._omega[None] ** 2 * np.sin(arg)).sum(axis=2)
        w, dw, ddw = (x[:, None] for x in self._fade(t))
        q = self.center + w * s
        qd = dw * s + w * ds
        qdd = ddw * s + 2.0 * dw * ds + w * dds
        if scalar:
            return q[0], qd[0], qdd[0]
        return q, qd, qdd

    def effort_ratio(self, model, samples=400):
        """
        Largest ``|tau_i| / effort_limit_i`` of the motion under a model's inverse dynamics.

        Parameters
        ----------
        model : RobotModel
            Anything with ``inverse_dynamics(q, qd, qdd)`` and ``effort_limit`` (n,); joint
            friction (``damping``, ``friction`` if present) is added.
        samples : int
            Samples over the fade-in and one period.

        """
        times = np.linspace(0.0, self.fade_in_s + self.period_s, int(samples))
        q, qd, qdd = self.sample(times)
        limit = np.asarray(model.effort_limit, dtype=float)
        damping = np.asarray(getattr(model, 'damping', np.zeros(self.n)), dtype=float)
        coulomb = np.asarray(getattr(model, 'friction', np.zeros(self.n)), dtype=float)
        worst = 0.0
        for k in range(times.size):
            tau = np.asarray(model.inverse_dynamics(q[k], qd[k], qdd[k]), dtype=float)
            tau = np.abs(tau) + damping * np.abs(qd[k]) + coulomb
            worst = max(worst, float(np.max(tau / limit)))
        return worst

    def fit_effort(self, model, max_iterations=20):
        """
        Shrink the motion until its efforts stay within ``fraction`` of the effort limits.

        Each iteration scales the amplitudes by 0.8 (gravity torques and speeds both shrink).
        Returns ``self``.

        Raises
        ------
        TrajectoryError
            If even the shrunk motion needs too much effort (e.g. the centre pose alone does).

        """
        for _ in range(int(max_iterations)):
            if self.effort_ratio(model) <= self.fraction:
                return self
            self.amplitudes *= 0.8
        ratio = self.effort_ratio(model)
        if ratio > self.fraction:
            raise TrajectoryError(f'the demo motion needs {ratio:.0%} of the effort limits '
                                  f'(more than {self.fraction:.0%}) even when shrunk; choose a '
                                  f'centre pose with less gravity load')
        return self

    @classmethod
    def from_model(cls, model, *, fit=True, **kwargs):
        """
        Build from a :class:`~twin_sim.urdf_model.RobotModel`'s limits (and fit its efforts).

        ``kwargs`` go to the constructor (``center``, ``fraction``, ``period_s``, ...). Without
        a ``center`` the motion is centred at mid-range; when that pose alone needs more than
        ``fraction`` of the effort limits (mid-range holds many arms stretched out, e.g. a UR5
        or a Panda), it is centred at :func:`low_gravity_pose` instead.
        """
        motion = cls(model.lower, model.upper, model.velocity_limit, **kwargs)
        if not fit:
            return motion
        if kwargs.get('center') is not None:
            return motion.fit_effort(model)
        try:
            return motion.fit_effort(model)
        except TrajectoryError:
            kwargs['center'] = low_gravity_pose(model)
            return cls(model.lower, model.upper, model.velocity_limit,
                       **kwargs).fit_effort(model)

    @property
    def bounds(self):
        """Guaranteed ``(max |q - center|, max |qd|)`` per joint, (n,) each (rad, rad/s)."""
        fade = 1.875 / self.fade_in_s if self.fade_in_s > 0.0 else 0.0
        amp = self.amplitudes.sum(axis=1)
        return amp, (self.amplitudes * self._omega).sum(axis=1) + fade * amp

    def __repr__(self):
        return (f'DemoMotion(n={self.n}, period_s={self.period_s}, fraction={self.fraction}, '
                f'amplitude_rad={np.round(self.amplitudes.sum(axis=1), 3).tolist()})')


def low_gravity_pose(model, room=0.2):
    """
    Return a pose (n,) of low gravity load, away from the joint limits: a centre for motions.

    Minimizes ``sum((g_i(q) / effort_limit_i)^2)`` (gravity torques relative to the effort
    limits) from mid-range, with every joint kept ``room`` of its range inside its limits
    (continuous joints within ``+-pi``). The twin's worlds have no contacts, so a pose with the
    arm hanging down is as good as one pointing up.

    Parameters
    ----------
    model : RobotModel
        Anything with ``lower``, ``upper``, ``effort_limit`` (n,) and ``gravity(q)``.
    room : float
        Share of each joint's range kept free on either side, in [0, 0.5).

    """
    lower = np.asarray(model.lower, dtype=float)
    upper = np.asarray(model.upper, dtype=float)
    span = np.where(np.isfinite(lower) & np.isfinite(upper), upper - lower, 2.0 * np.pi)
    mid = mid_range(lower, upper)
    lo, hi = mid - (0.5 - room) * span, mid + (0.5 - room) * span
    limit = np.asarray(model.effort_limit, dtype=float)

    def load(q):
        return float(np.sum((np.asarray(model.gravity(q)) / limit) ** 2))

    best = minimize(load, mid, method='L-BFGS-B', bounds=list(zip(lo, hi)))
    return np.clip(best.x, lo, hi)


def mid_range(lower, upper):
    """Return the middle of each joint's limits (n,); 0 for a joint without limits."""
    lower = np.asarray(lower, dtype=float)
    upper = np.asarray(upper, dtype=float)
    return np.where(np.isfinite(lower) & np.isfinite(upper), 0.5 * (lower + upper), 0.0)
