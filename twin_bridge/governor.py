"""
Safety governor: every corrective command passes here before it may reach the robot.

ROS-free. :class:`SafetyGovernor.govern` takes one command (position, velocity or effort targets
for some model joints, or a joint trajectory), the local time, whether the mirrored state is
fresh, and the measured joint positions, and returns a :class:`GovernorDecision`: refused, or
allowed with a command brought inside the limits.

Rules, in order:

1. stale interlock: state not OK -> refuse everything (``stale_interlock=True``);
2. malformed command, unknown or duplicated joint name, wrong array length, NaN/inf -> refuse;
   a command for a joint the URDF gives no limit of its kind (a ``continuous`` joint without
   ``<limit>``: no velocity limit for position, velocity and trajectory commands, no effort
   limit for effort commands) -> refuse (cause ``no_limit``): the governor cannot limit it, so
   it commands it not at all;
3. clock and rate: a local clock that stepped backwards (a sim-time reset, a clock set back)
   refuses every command until it has run forward again for ``1 / max_rate_hz``, since the
   time since the last command is unknown (cause ``clock``); a command less than
   ``1 / max_rate_hz`` (less 1 µs for float rounding) after the last allowed one -> refuse;
4. position targets: clamped into ``[lower + margin, upper - margin]`` and to a step from the
   measured position of at most ``velocity * velocity_scale * dt`` (``dt`` the command's
   ``duration_s`` or else ``horizon_s``) and at most ``max_step_rad``; if the measured position
   is so far outside the range that no target satisfies both, refuse;
5. velocity targets: clamped to ``±velocity * velocity_scale``, and reduced so that holding them
   for ``horizon_s`` does not carry a joint past its position range (never reversed);
6. effort targets: clamped to ``±effort``;
7. trajectories: positions clamped into the range; then time is stretched (uniformly, plus the
   first segment from the measured state as needed) so that the velocity of every segment,
   including measured state -> first point, stays within ``velocity * velocity_scale`` as the
   robot's controller will interpolate it: straight lines between points that give positions
   only (peak = the segment's average speed), cubic splines through points that also give
   velocities (ros2_control's joint_trajectory_controller; a one-point move from rest to a
   stop peaks at 1.5x its average speed), the first segment starting at the measured velocity
   (at rest when none is known); point velocities scaled by the same factor. A robot already
   faster than the limit may keep its own speed at the start of the first segment, never
   more. A spline must also stay inside the position range between its points (a robot that
   moves towards a limit overshoots a hold there): one that leaves it is refused.

Acceleration limits (``JointLimits.acceleration``, inf = none, the default; a URDF has none:
they come from a ``joint_limits.yaml``, :func:`load_joint_limits_yaml`, whose deceleration
limits count too: the lower of the two is the limit). Where a joint has one, counted from its
measured velocity, which must then be known: a command for such a joint without a measured
velocity (None, NaN) is refused (cause ``no_state``), never counted from rest:

- velocity targets change the measured velocity by at most ``acceleration * horizon_s``, and a
  stop or a reversal never passes through zero in one command: it gets
  ``sign(v) * max(|v| - acceleration * horizon_s, 0)`` (or the request, if nearer), so the
  joint goes on in its direction only as slowly as the deceleration allows (a velocity
  controller holds its last command: a caller that stops sending leaves it there; a stop is a
  trajectory hold's job);
- position targets stay within the reach, in ``dt``, of a move from the measured velocity
  with ``|a| <= acceleration`` and a speed of at most the velocity limit (or its own). A
  position command is one waypoint of a continuing stream: the reach bounds the step, not a
  stop there (the joint may arrive still moving; stopping needs ``v^2 / (2 a)`` more), so a
  last set-point can ask the drive for a hard stop; stop with a trajectory hold;
- trajectories are run as cubic splines (a trajectory of positions only gets zero point
  velocities: cubics that stop at every point, the same path) and time is stretched until the
  peak acceleration of every segment (at its ends: a cubic's acceleration is linear in time)
  is within the limit, the first segment from the measured velocity; a first point at time 0
  whose velocity differs from the measured one (a step in velocity) is moved later;
- the position range and the velocity limit (the URDF's hard limits) win over it: a velocity
  or position target that cannot meet both is the hard bound nearest to what the acceleration
  allows; in a trajectory a joint that cannot stop inside its range within its limit
  (``v^2 > 2 a room``, ``room`` the distance to the range bound ahead, at least
  :data:`STOP_ROOM_FLOOR`; joints slower than :data:`STOP_DEADBAND` never) may decelerate at
  ``v^2 / (2 room)``, the least that stops it inside the range, on the first segment and on
  every segment after it that only slows it further down in its measured direction (its own
  stop, which may end at a later point than another joint's: :func:`_slowing`); every other
  joint, and the same joint once it stopped or speeds up again, keeps its limit. Both are
  allowed, said in the reasons and counted (:data:`ACCELERATION_OVER`), never sent beyond the
  range.

After clamping, an independent final check (:func:`limit_violations`: plain comparisons with the
URDF limits and the settings, none of the clamping helpers) re-verifies every output bound;
should it ever fail, the command is refused (cause ``invariant``), never sent.

Units: rad, rad/s, N·m (m, m/s, N for prismatic joints), s. Arrays in model joint order unless a
command names its joints.
"""
from dataclasses import dataclass, field
import math
from typing import Any, NamedTuple

import numpy as np

from twin_bridge.mapping import format_joint_names
from twin_sim.yaml_numbers import load_yaml

COMMAND_KINDS = ('position', 'velocity', 'effort', 'trajectory')
REFUSAL_CAUSES = ('malformed', 'stale', 'unknown_joint', 'length', 'nonfinite', 'no_limit',
                  'no_state', 'clock', 'rate', 'unreachable', 'invariant')
ACCELERATION_OVER = 'acceleration_over_to_stay_in_range'
"""Counter of allowed commands that exceed an acceleration limit to stay in the range."""
STOP_DEADBAND = 1e-3
"""A joint slower than this (rad/s, m/s) never gets a raised bound to stop in its range (noise)."""
STOP_ROOM_FLOOR = 1e-4
"""The least room (rad, m) a stop is counted with: a raised bound is at most ``v^2 / 2e-4``."""


# Float stamps (epoch seconds carry ~0.2 µs of rounding) must not refuse a command sent exactly
# at the allowed rate: the rate check forgives this much.
_RATE_SLACK_S = 1e-6


class GovernorConfigError(ValueError):
    """Bad limits or governor parameter (the message names the joint or parameter)."""


def _vector(values, n, name):
    arr = np.array(values, dtype=float)
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise GovernorConfigError(f'{name} must have shape ({n},), got {arr.shape}')
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class JointLimits:
    """
    URDF joint limits in model joint order.

    Attributes
    ----------
    names : tuple of str
        Joint names, ``n`` of them.
    lower, upper : (n,) float arrays
        Position limits, rad (m); ±inf for unbounded (continuous) joints.
    velocity : (n,) float array
        Velocity limits, rad/s (m/s); > 0, or inf where the URDF gives none (the governor then
        refuses every position, velocity and trajectory command for the joint).
    effort : (n,) float array
        Effort limits, N·m (N); > 0, or inf where the URDF gives none (the governor then
        refuses every effort command for the joint).
    acceleration : (n,) float array or None
        Acceleration limits, rad/s² (m/s²); > 0, or inf for none (a URDF gives none: they come
        from a ``joint_limits.yaml``, :func:`load_joint_limits_yaml`). None: inf for every joint.

    """

    names: tuple
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    acceleration: np.ndarray = None

    def __post_init__(self):
        names = tuple(self.names)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise GovernorConfigError(f'names must be non-empty joint name strings, got {names!r}')
        if len(set(names)) != len(names):
            raise GovernorConfigError(f'duplicated joint names in limits: {names!r}')
        n = len(names)
        object.__setattr__(self, 'names', names)
        if self.acceleration is None:
            object.__setattr__(self, 'acceleration', math.inf)
        for attr in ('lower', 'upper', 'velocity', 'effort', 'acceleration'):
            object.__setattr__(self, attr, _vector(getattr(self, attr), n, attr))
        for i, name in enumerate(names):
            lo, hi = self.lower[i], self.upper[i]
            if math.isnan(lo) or math.isnan(hi) or lo > hi or lo == math.inf or hi == -math.inf:
                raise GovernorConfigError(
                    f'joint {name!r}: position limits [{lo}, {hi}] are not a valid range; need '
                    'lower <= upper (use -inf/inf for a continuous joint)')
            for attr, unit in (('velocity', 'rad/s'), ('effort', 'N·m')):
                v = getattr(self, attr)[i]
                if not v > 0.0:         # NaN too; inf is a joint without a limit
                    raise GovernorConfigError(
                        f'joint {name!r}: {attr} limit {v} {unit} is not a number > 0 (inf '
                        f'for none); set <limit {attr}="..."> on the joint in the URDF')
            if not self.acceleration[i] > 0.0:
                raise GovernorConfigError(
                    f'joint {name!r}: acceleration limit {self.acceleration[i]} rad/s² is not a '
                    'number > 0 (inf for none)')

    @classmethod
    def from_model(cls, model, acceleration=None, velocity=None):
        """
        Build limits from a ``RobotModel``-like object.

        Parameters
        ----------
        model : object
            With attributes ``joint_names`` (n,), ``lower``, ``upper`` (n,) rad,
            ``velocity_limit`` (n,) rad/s and ``effort_limit`` (n,) N·m.
        acceleration : (n,) array or None
            Acceleration limits, rad/s² (inf: none); None: none for any joint.
        velocity : (n,) array or None
            Velocity limits that replace the URDF's where they are lower (never raise one),
            rad/s (inf: the URDF's); None: the URDF's.

        """
        vel = np.asarray(model.velocity_limit, dtype=float)
        if velocity is not None:
            vel = np.fmin(vel, np.asarray(velocity, dtype=float))
        return cls(names=tuple(model.joint_names), lower=model.lower, upper=model.upper,
                   velocity=vel, effort=model.effort_limit, acceleration=acceleration)

    @property
    def n(self):
        """Return the number of joints (int)."""
        return len(self.names)

    def without_limit(self):
        """
        Return the joints without a limit and which: ``{name: what}``.

        ``what`` is ``'velocity'``, ``'effort'`` or ``'velocity and effort'`` (inf limits).
        """
        out = {}
        for name, v, e in zip(self.names, self.velocity, self.effort):
            missing = [what for what, x in (('velocity', v), ('effort', e)) if x == math.inf]
            if missing:
                out[name] = ' and '.join(missing)
        return out


def _limit_entry(where, entry, has_key, max_key):
    """Return the limit an entry gives (``has_key``, ``max_key``), inf for none, or raise."""
    has = entry.get(has_key)
    if has is not None and not isinstance(has, bool):
        raise GovernorConfigError(f'{where}.{has_key} is {has!r}; write true or false')
    if has is False:
        return math.inf                     # no limit from the file (max_* is not used)
    if max_key not in entry:
        if has:
            raise GovernorConfigError(f'{where}.{max_key} is missing; {has_key} is true')
        return math.inf
    value = entry[max_key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
            math.isfinite(value) and value > 0.0):
        raise GovernorConfigError(
            f'{where}.{max_key} is {value!r}; write a number > 0 (or {has_key}: false for '
            'no limit)')
    return float(value)


def load_joint_limits_yaml(path, names):
    """
    Read acceleration (and velocity) limits from a MoveIt / ros2_control ``joint_limits.yaml``.

    The file has a ``joint_limits`` map (at the top, or under one node's ``ros__parameters``)
    of joints, each with ``has_acceleration_limits`` / ``max_acceleration``,
    ``has_deceleration_limits`` / ``max_deceleration`` and ``has_velocity_limits`` /
    ``max_velocity``; other keys are ignored. A ``max_*`` is used when its ``has_*`` is true or
    absent; ``has_*: false`` gives no limit for that joint. The governor has one limit for
    speeding up and slowing down: the acceleration returned is the lower of the two
    (conservative).

    Parameters
    ----------
    path : str
        The file.
    names : sequence of str
        The model's joints; a joint of the file not among them is an error.

    Returns
    -------
    acceleration, velocity : (n,) float arrays
        In the order of ``names``, rad/s² and rad/s (m/s², m/s); inf where the file gives none;
        the acceleration is ``min(max_acceleration, max_deceleration)``.

    Raises
    ------
    GovernorConfigError
        The file is unreadable or a key it uses is wrong (the message names file and key).

    """
    import yaml
    names = list(names)
    try:
        with open(path, encoding='utf-8') as f:
            doc = load_yaml(f)
    except (OSError, yaml.YAMLError) as exc:
        raise GovernorConfigError(f'joint limits file {path}: cannot read it ({exc})') from None
    limits = None
    if isinstance(doc, dict) and 'joint_limits' in doc:
        limits, where = doc['joint_limits'], 'joint_limits'
    elif isinstance(doc, dict):
        nested = [(k, v['ros__parameters']['joint_limits']) for k, v in doc.items()
                  if isinstance(v, dict) and isinstance(v.get('ros__parameters'), dict)
                  and 'joint_limits' in v['ros__parameters']]
        if len(nested) == 1:
            limits, where = nested[0][1], f'{nested[0][0]}.ros__parameters.joint_limits'
    if not isinstance(limits, dict):
        raise GovernorConfigError(
            f'joint limits file {path}: no joint_limits map of joints (MoveIt / ros2_control '
            'format: joint_limits: {<joint>: {has_acceleration_limits: true, '
            'max_acceleration: ...}})')
    acceleration = np.full(len(names), math.inf)
    velocity = np.full(len(names), math.inf)
    for joint, entry in limits.items():
        key = f'{where}.{joint}'
        if joint not in names:
            raise GovernorConfigError(
                f'joint limits file {path}: {key}: no such joint in the model; it has '
                f'{format_joint_names(names)}')
        if not isinstance(entry, dict):
            raise GovernorConfigError(f'joint limits file {path}: {key} is {entry!r}, not a '
                                      'map of limits')
        try:
            i = names.index(joint)
            acceleration[i] = min(
                _limit_entry(key, entry, 'has_acceleration_limits', 'max_acceleration'),
                _limit_entry(key, entry, 'has_deceleration_limits', 'max_deceleration'))
            velocity[i] = _limit_entry(key, entry, 'has_velocity_limits', 'max_velocity')
        except GovernorConfigError as exc:
            raise GovernorConfigError(f'joint limits file {path}: {exc}') from None
    return acceleration, velocity


@dataclass
class JointCommand:
    """
    Position, velocity or effort targets for some joints.

    Attributes
    ----------
    kind : {'position', 'velocity', 'effort'}
    values : (m,) sequence of float
        rad, rad/s or N·m, in the order of ``joints``.
    joints : sequence of str or None
        Joint names of ``values``; None means every model joint in model order.
    duration_s : float or None
        Position commands only: time over which the controller moves to the target, s (> 0).
        None: the governor's ``horizon_s`` (a target applied at once).

    """

    kind: str
    values: Any
    joints: Any = None
    duration_s: Any = None


class TrajectoryPoint(NamedTuple):
    """One trajectory point: time from start (s), positions (m,) rad, velocities (m,) or None."""

    time_from_start: float
    positions: Any
    velocities: Any = None


@dataclass
class TrajectoryCommand:
    """
    A joint trajectory.

    Attributes
    ----------
    points : sequence
        :class:`TrajectoryPoint` or ``(time_from_start, positions[, velocities])`` tuples;
        times in s from the moment the command is sent, strictly increasing, the first >= 0.
    joints : sequence of str or None
        Joint names of the point arrays; None means every model joint in model order.

    """

    points: Any
    joints: Any = None
    kind: str = field(default='trajectory', init=False)


@dataclass
class GovernorDecision:
    """
    Result of :meth:`SafetyGovernor.govern`.

    Attributes
    ----------
    allowed : bool
    command : JointCommand or TrajectoryCommand or None
        The command to send (values within the limits, ``joints`` a tuple of names), or None
        when refused.
    reasons : list of str
        Why it was refused, or what was clamped (empty when sent unchanged).
    clamped : bool
        True if any value or time was changed.
    kind : str or None
        Command kind (None if unreadable).
    joints : tuple of str
        Joints the command addresses (empty if unreadable).
    requested : object
        The command as given.
    time : float
        ``now`` passed to ``govern``, s.
    cause : str or None
        Refusal cause (one of :data:`REFUSAL_CAUSES`), None when allowed.

    """

    allowed: bool
    command: Any
    reasons: list
    clamped: bool
    kind: Any = None
    joints: tuple = ()
    requested: Any = None
    time: float = math.nan
    cause: Any = None


class _Refuse(Exception):

    def __init__(self, cause, reason):
        super().__init__(reason)
        self.cause = cause
        self.reason = reason


def _finite_number(x):
    if isinstance(x, (str, bytes, bool)):
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _fmt(x):
    return f'{x:.6g}'


class SafetyGovernor:
    """
    Bring commands inside URDF limits, or refuse them.

    Parameters
    ----------
    limits : JointLimits
        Limits of the model's joints.
    max_rate_hz : float
        Most allowed commands per second (> 0); a faster command is refused.
    position_margin_rad : float or (n,) array
        Kept away from each position limit, rad (m) (>= 0; at most half of each joint's range).
    max_step_rad : float or None
        Largest position-command step from the measured position, rad (> 0); None: only the
        velocity-derived step applies.
    horizon_s : float or None
        Time a position or velocity command is assumed to act before the next one, s (> 0);
        None: ``1 / max_rate_hz``.
    velocity_scale : float
        Fraction of the URDF velocity limits the governor allows, in (0, 1].
    stale_interlock : bool
        Refuse every command while ``state_ok`` is False.

    Attributes
    ----------
    counters : dict
        ``allowed``, ``refused``, ``clamped``, one key per refusal cause, and
        :data:`ACCELERATION_OVER` (allowed commands that exceed an acceleration limit because
        the position range or velocity limit needs it).

    """

    def __init__(self, limits, *, max_rate_hz=50.0, position_margin_rad=0.0, max_step_rad=None,
                 horizon_s=None, velocity_scale=1.0, stale_interlock=True):
        if not isinstance(limits, JointLimits):
            raise GovernorConfigError(
                f'limits must be a JointLimits (JointLimits.from_model(model)), got '
                f'{type(limits).__name__}')
        self.limits = limits
        self.max_rate_hz = self._param(max_rate_hz, 'max_rate_hz', lambda v: v > 0.0, '> 0')
        self.velocity_scale = self._param(velocity_scale, 'velocity_scale',
                                          lambda v: 0.0 < v <= 1.0, 'in (0, 1]')
        self.max_step_rad = (None if max_step_rad is None else self._param(
            max_step_rad, 'max_step_rad', lambda v: v > 0.0, '> 0 (or None)'))
        self.horizon_s = (1.0 / self.max_rate_hz if horizon_s is None else self._param(
            horizon_s, 'horizon_s', lambda v: v > 0.0, '> 0 (or None)'))
        self.stale_interlock = bool(stale_interlock)
        try:
            margin = _vector(position_margin_rad, limits.n, 'position_margin_rad')
        except (TypeError, ValueError) as exc:
            raise GovernorConfigError(f'position_margin_rad: {exc}') from None
        lo = limits.lower + margin
        hi = limits.upper - margin
        for i, name in enumerate(limits.names):
            if not (math.isfinite(margin[i]) and margin[i] >= 0.0):
                raise GovernorConfigError(
                    f'position_margin_rad for joint {name!r} must be finite and >= 0, got '
                    f'{margin[i]}')
            if not lo[i] <= hi[i]:
                raise GovernorConfigError(
                    f'position_margin_rad {margin[i]} leaves no range for joint {name!r} '
                    f'(limits [{limits.lower[i]}, {limits.upper[i]}]); use a margin of at most '
                    'half the range')
        self.position_margin = margin
        self._lo = lo
        self._hi = hi
        self._speed_scale = 1.0
        self._vmax = limits.velocity * self.velocity_scale
        self._emax = limits.effort
        self._amax = limits.acceleration
        self._acc_over = False     # the command being governed exceeds an acceleration limit
        # joints the URDF gives no limit: the governor cannot limit them, so commands none
        self._no_velocity_limit = limits.velocity == math.inf
        self._no_effort_limit = limits.effort == math.inf
        self._index_of = {n: i for i, n in enumerate(limits.names)}
        self._all = np.arange(limits.n)
        self._period = 1.0 / self.max_rate_hz
        self._last_allowed = None
        self._latest_now = -math.inf   # the latest time seen (commands and ticks)
        self._stepped_back_at = None   # time the clock was last seen to step back
        self.counters = dict.fromkeys(('allowed', 'refused', 'clamped') + REFUSAL_CAUSES
                                      + (ACCELERATION_OVER,), 0)

    @staticmethod
    def _param(value, name, ok, rule):
        try:
            out = float(value)
        except (TypeError, ValueError):
            out = math.nan
        if not (math.isfinite(out) and ok(out)):
            raise GovernorConfigError(f'{name} must be a finite number {rule}, got {value!r}')
        return out

    def reset(self):
        """Forget the last allowed command time and the clock (the rate limit starts afresh)."""
        self._last_allowed = None
        self._latest_now = -math.inf
        self._stepped_back_at = None

    @property
    def speed_scale(self):
        """Return the derating applied on top of ``velocity_scale``, in (0, 1] (1 = none)."""
        return self._speed_scale

    def set_speed_scale(self, scale):
        """
        Derate every command: velocities at most ``scale`` x the configured velocity limits.

        A maintenance derating (a worn joint's RUL stretched to the next service window) is an
        absolute scale in (0, 1]; it replaces the previous one. The limits never grow beyond
        ``velocity_scale`` x the URDF's. Returns the scale in force.
        """
        value = self._param(scale, 'speed scale', lambda v: 0.0 < v <= 1.0, 'in (0, 1]')
        self._speed_scale = value
        self._vmax = self.limits.velocity * self.velocity_scale * value
        return value

    def position_range(self, joints):
        """Return ``(lo, hi)`` (m,) rad: the governed position range (limits minus margin)."""
        idx = [self._index_of[j] for j in joints]
        return self._lo[idx], self._hi[idx]

    def velocity_limit(self, joints):
        """Return the velocity limits (m,) rad/s in force: URDF x velocity_scale x speed scale."""
        return self._vmax[[self._index_of[j] for j in joints]]

    def acceleration_limit(self, joints):
        """Return the acceleration limits (m,) rad/s² (inf: none)."""
        return self.limits.acceleration[[self._index_of[j] for j in joints]]

    def tick(self, now):
        """
        Watch the local clock between commands (call it at the status rate, or more often).

        A clock that steps backwards between two commands is noticed here too, so the next
        command is refused until the clock runs forward again. Returns why commands are
        refused now for the clock (a string), or None while the clock is sane.
        """
        if not _finite_number(now):
            return f'time now={now!r} is not a finite number of seconds'
        return self._clock(float(now))

    def _clock(self, now):
        """Track clock steps; return a refusal reason while the clock is not sane, else None."""
        if now < self._latest_now:
            self._stepped_back_at = now
            back = self._latest_now - now
            self._latest_now = now
            return f'the local clock stepped back {back:.6g} s'
        self._latest_now = now
        if self._stepped_back_at is not None:
            ran = now - self._stepped_back_at
            if ran < self._period:
                return (f'the local clock stepped back and has run forward only {ran:.6g} s '
                        f'(needs {self._period:.6g} s)')
            self._stepped_back_at = None
            self._last_allowed = None         # the old stamp means nothing on the new clock
        return None

    # ------------------------------------------------------------------ entry point
    def govern(self, command, now, state_ok, current_state=None, current_velocity=None):
        """
        Decide whether a command may be sent, and bring it inside the limits.

        Never raises on bad data: a malformed command is refused with a reason.

        Parameters
        ----------
        command : JointCommand or TrajectoryCommand
            The proposed command, in model joint order.
        now : float
            Local time, s (node clock; sim time under ``use_sim_time``).
        state_ok : bool
            True when the mirrored state is fresh (watchdog ``OK`` for the joint states).
        current_state : (n,) array or None
            Measured joint positions in model order, rad; needed by position, velocity and
            trajectory commands (NaN for joints never received).
        current_velocity : (n,) array or None
            Measured joint velocities in model order, rad/s: where a trajectory's first cubic
            segment starts (None, or NaN for a joint: taken as at rest, except for a joint with
            an acceleration limit: then the command is refused, cause ``no_state``).

        Returns
        -------
        GovernorDecision

        """
        kind = getattr(command, 'kind', None)
        decision = GovernorDecision(False, None, [], False, kind=kind, requested=command,
                                    time=now)
        try:
            with np.errstate(all='ignore'):  # huge inputs overflow to inf, which is then refused
                self._govern(command, kind, now, state_ok, current_state, current_velocity,
                             decision)
        except _Refuse as refusal:
            decision.allowed, decision.command, decision.clamped = False, None, False
            decision.cause = refusal.cause
            decision.reasons = [refusal.reason]
        except Exception as exc:  # noqa: BLE001 - bad data must never crash the node
            decision.allowed, decision.command, decision.clamped = False, None, False
            decision.cause = 'malformed'
            decision.reasons = [f'malformed {kind} command ({type(exc).__name__}: {exc})']
        c = self.counters
        if decision.allowed:
            c['allowed'] += 1
            c['clamped'] += decision.clamped
            c[ACCELERATION_OVER] += self._acc_over
            self._last_allowed = float(now)
        else:
            c['refused'] += 1
            c[decision.cause] += 1
        return decision

    def _govern(self, command, kind, now, state_ok, current_state, current_velocity,
                decision):
        if not _finite_number(now):
            raise _Refuse('malformed', f'time now={now!r} is not a finite number of seconds')
        now = float(now)
        clock = self._clock(now)
        if kind not in COMMAND_KINDS:
            raise _Refuse('malformed', f'command kind {kind!r} is not one of {COMMAND_KINDS}')
        if self.stale_interlock and not state_ok:
            raise _Refuse('stale', 'mirrored state is not OK (stale or invalid): every command '
                                   'is refused until the robot stream is fresh again')
        if clock is not None:
            raise _Refuse('clock', f'{clock}: commands are refused until it runs forward again '
                                   f'for 1/max_rate_hz = {self._period:.6g} s')
        joints, idx = self._joints(command.joints)
        decision.joints = joints
        self._limited(kind, joints, idx)
        self._acc_over = False
        m = len(joints)
        cur = v_now = None
        # acceleration limits of the command's joints (None: none, every rule as without them)
        amax = self._amax[idx] if kind != 'effort' and np.isfinite(self._amax[idx]).any() \
            else None
        if kind != 'effort':
            # the state first: a command made from a state the twin lacks (a hold at a joint
            # never received) is refused for that (no_state: retried), not for its NaN
            cur = self._current(current_state, idx, joints)
        if kind == 'trajectory':
            v_now = self._current_velocity(current_velocity, idx, joints, amax)
            times, pos, vel = self._points(command.points, m)
        else:
            values = self._values(command.values, m, kind)
            if amax is not None:
                v_now = self._current_velocity(current_velocity, idx, joints, amax)
        if self._last_allowed is not None:
            since = now - self._last_allowed
            if since < self._period - _RATE_SLACK_S:
                raise _Refuse('rate', f'{since:.6g} s since the last allowed command is less '
                                      f'than 1/max_rate_hz = {self._period:.6g} s')
        if kind == 'position':
            out, reasons = self._position(values, idx, joints, cur, command.duration_s, v_now,
                                          amax)
        elif kind == 'velocity':
            out, reasons = self._velocity(values, idx, joints, cur, v_now, amax)
        elif kind == 'effort':
            out, reasons = self._effort(values, idx, joints)
        else:
            out, reasons = self._trajectory(times, pos, vel, idx, joints, cur, v_now, amax)
        violations = limit_violations(self, out, cur if cur is None else np.asarray(cur),
                                      command, v_now)
        if violations:
            raise _Refuse('invariant', 'internal check failed, command not sent: '
                                       + '; '.join(violations))
        decision.allowed = True
        decision.command = out
        decision.reasons = reasons
        decision.clamped = bool(reasons)

    # ------------------------------------------------------------------ input checks
    def _joints(self, joints):
        if joints is None:
            return self.limits.names, self._all
        if isinstance(joints, str):
            raise _Refuse('malformed', f'joints must be a sequence of names, got the string '
                                       f'{joints!r}')
        joints = tuple(joints)
        if not joints:
            raise _Refuse('length', 'command names no joints')
        unknown = [j for j in joints if j not in self._index_of]
        if unknown:
            raise _Refuse('unknown_joint', f'unknown joint {format_joint_names(unknown)} in '
                                           f'command; model has '
                                           f'{format_joint_names(self.limits.names)}')
        if len(set(joints)) != len(joints):
            raise _Refuse('malformed', f'duplicated joint names in command: {list(joints)}')
        return joints, np.array([self._index_of[j] for j in joints], dtype=np.intp)

    def _limited(self, kind, joints, idx):
        """Refuse a command for joints the URDF gives no limit of the kind it needs."""
        what = 'effort' if kind == 'effort' else 'velocity'
        missing = (self._no_effort_limit if kind == 'effort' else self._no_velocity_limit)[idx]
        if missing.any():
            names = [j for j, bad in zip(joints, missing) if bad]
            raise _Refuse('no_limit', f'the URDF gives {format_joint_names(names)} no {what} '
                                      f'limit: the governor cannot limit a {kind} command for '
                                      f'it, so sends none; set <limit {what}="..."> on the '
                                      'joint in the URDF')

    @staticmethod
    def _array(values, m, what):
        try:
            arr = np.array(values, dtype=float)
        except (TypeError, ValueError) as exc:
            raise _Refuse('malformed', f'{what} are not numbers ({exc})') from None
        if arr.shape != (m,):
            raise _Refuse('length', f'{what} have shape {arr.shape}; expected ({m},), one per '
                                    'joint')
        if not np.isfinite(arr).all():
            raise _Refuse('nonfinite', f'{what} contain NaN or inf: {arr.tolist()}')
        return arr

    def _values(self, values, m, kind):
        return self._array(values, m, f'{kind} targets')

    def _points(self, points, m):
        try:
            points = list(points)
        except TypeError:
            raise _Refuse('malformed', 'trajectory points are not a sequence') from None
        if not points:
            raise _Refuse('length', 'trajectory has no points')
        times = np.empty(len(points))
        pos = np.empty((len(points), m))
        vel = np.zeros((len(points), m))
        has_vel = False
        for k, point in enumerate(points):
            if not 2 <= len(point) <= 3:
                raise _Refuse('malformed', f'trajectory point {k} is not (time_from_start, '
                                           'positions[, velocities])')
            t = point[0]
            try:
                t = float(t)
            except (TypeError, ValueError):
                raise _Refuse('malformed', f'point {k}: time_from_start {t!r} is not a '
                                           'number') from None
            if not math.isfinite(t):
                raise _Refuse('nonfinite', f'point {k}: time_from_start is {t}')
            times[k] = t
            pos[k] = self._array(point[1], m, f'point {k} positions')
            v = point[2] if len(point) == 3 else None
            if v is not None and len(v):
                vel[k] = self._array(v, m, f'point {k} velocities')
                has_vel = True
        if times[0] < 0.0:
            raise _Refuse('malformed', f'first time_from_start {times[0]} s is negative')
        steps = np.diff(times)
        if (steps <= 0.0).any():
            k = int(np.argmax(steps <= 0.0)) + 1
            raise _Refuse('malformed', f'trajectory times must increase strictly; point {k} at '
                                       f'{times[k]} s follows {times[k - 1]} s')
        return times, pos, (vel if has_vel else None)

    def _measured(self, values, idx, what):
        """Return measured joint ``what`` (model order, all joints) for ``idx``, checked."""
        try:
            arr = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise _Refuse('no_state', f'measured joint {what} are not numbers') from None
        if arr.shape != (self.limits.n,):
            raise _Refuse('no_state', f'measured joint {what} have shape {arr.shape}; '
                                      f'expected ({self.limits.n},) in model order')
        return arr[idx]

    def _current(self, current_state, idx, joints):
        if current_state is None:
            raise _Refuse('no_state', 'no measured joint positions: position, velocity and '
                                      'trajectory commands need the mirrored state')
        cur = self._measured(current_state, idx, 'positions')
        bad = ~np.isfinite(cur)
        if bad.any():
            names = [j for j, b in zip(joints, bad) if b]
            raise _Refuse('no_state', f'no valid measured position for '
                                      f'{format_joint_names(names)}')
        return cur

    def _current_velocity(self, current_velocity, idx, joints, amax=None):
        """Return measured velocities (unknown: at rest, refused where ``amax`` is finite)."""
        v = np.full(len(idx), math.nan) if current_velocity is None else self._measured(
            current_velocity, idx, 'velocities')
        if amax is not None:
            # an acceleration limit counts from the measured velocity: an unknown one is not
            # taken as rest (the arm may be moving), the command is refused
            missing = np.isfinite(amax) & ~np.isfinite(v)
            if missing.any():
                names = [j for j, b in zip(joints, missing) if b]
                raise _Refuse('no_state', f'no measured velocity for '
                                          f'{format_joint_names(names)}: its acceleration limit '
                                          'counts from it and an unknown velocity is not taken '
                                          'as rest; stream joint velocities (or give the joint '
                                          'no acceleration limit)')
        return np.where(np.isfinite(v), v, 0.0)      # unknown: as at rest

    # ------------------------------------------------------------------ clamping
    def _step_bounds(self, idx, cur, duration_s):
        if duration_s is None:
            dt = self.horizon_s
        else:
            try:
                dt = float(duration_s)
            except (TypeError, ValueError):
                raise _Refuse('malformed', f'duration_s {duration_s!r} is not a number') from None
            if not (math.isfinite(dt) and dt > 0.0):
                raise _Refuse('nonfinite' if not math.isfinite(dt) else 'malformed',
                              f'duration_s must be a finite number > 0 s, got {duration_s!r}')
        step = self._vmax[idx] * dt
        if self.max_step_rad is not None:
            step = np.minimum(step, self.max_step_rad)
        lo = np.maximum(self._lo[idx], cur - step)
        hi = np.minimum(self._hi[idx], cur + step)
        return lo, hi, step, dt

    def _unreachable(self, joints, idx, cur, lo, hi):
        bad = lo > hi
        if bad.any():
            k = int(np.argmax(bad))
            i = idx[k]
            raise _Refuse('unreachable',
                          f'measured position of {joints[k]!r} ({_fmt(cur[k])}) is outside the '
                          f'governed range [{_fmt(self._lo[i])}, {_fmt(self._hi[i])}] by more '
                          'than one allowed step; bring the joint back into range first')

    def _position(self, values, idx, joints, cur, duration_s, v_now=None, amax=None):
        lo, hi, step, dt = self._step_bounds(idx, cur, duration_s)
        self._unreachable(joints, idx, cur, lo, hi)
        if amax is not None:
            return self._position_accelerated(values, idx, joints, cur, duration_s, v_now,
                                              amax, lo, hi, step, dt)
        out = np.clip(values, lo, hi)
        reasons = []
        for k in np.flatnonzero(out != values):
            i = idx[k]
            why = []
            in_range = min(max(values[k], self._lo[i]), self._hi[i])
            if in_range != values[k]:
                why.append(self._range_reason(i))
            if out[k] != in_range:
                why.append(self._step_reason(i, cur[k], step[k], dt))
            reasons.append(f'{joints[k]!r} position {_fmt(values[k])} -> {_fmt(out[k])}: '
                           + ' and '.join(why))
        return JointCommand('position', out, joints, duration_s), reasons

    def _range_reason(self, i):
        """Say why joint ``i``'s position was brought into its range (a clamp reason)."""
        return (f'position limits [{_fmt(self.limits.lower[i])}, '
                f'{_fmt(self.limits.upper[i])}] with margin {_fmt(self.position_margin[i])}')

    def _step_reason(self, i, cur, step, dt):
        """Say why joint ``i``'s position step from ``cur`` was limited to ``step``."""
        return (f'step from measured {_fmt(cur)} limited to {_fmt(step)} '
                f'(velocity limit {_fmt(self._vmax[i])} x {_fmt(dt)} s'
                + (f', max_step_rad {_fmt(self.max_step_rad)}'
                   if self.max_step_rad is not None else '') + ')')

    def _position_accelerated(self, values, idx, joints, cur, duration_s, v_now, amax, lo, hi,
                              step, dt):
        """
        Position rule with acceleration limits: the target also within reach in ``dt``.

        Reach from the measured velocity with ``|a| <= amax`` and a speed of at most the
        velocity limit (or the robot's own speed, if higher); where that reach and the hard
        bounds (range, velocity step) do not meet, the hard bound nearest to it wins (counted).
        """
        vmax = self._vmax[idx]
        limited = np.isfinite(amax)
        a = np.where(limited, amax, 1.0)
        ahead = _reach(v_now, a, vmax, dt)
        behind = -_reach(-v_now, a, vmax, dt)
        alo = np.where(limited, cur + behind, -math.inf)
        ahi = np.where(limited, cur + ahead, math.inf)
        target = np.clip(values, alo, ahi)
        out = np.clip(target, lo, hi)
        reasons = []
        for k in np.flatnonzero(out != values):
            i = idx[k]
            why = []
            if not self._lo[i] <= values[k] <= self._hi[i]:
                why.append(self._range_reason(i))
            if target[k] != values[k]:
                why.append(f'reach in {_fmt(dt)} s from measured {_fmt(cur[k])} at '
                           f'{_fmt(v_now[k])}/s limited to [{_fmt(alo[k])}, {_fmt(ahi[k])}] '
                           f'(acceleration limit {_fmt(amax[k])})')
            if out[k] != min(max(target[k], self._lo[i]), self._hi[i]):
                why.append(self._step_reason(i, cur[k], step[k], dt))
            reasons.append(f'{joints[k]!r} position {_fmt(values[k])} -> {_fmt(out[k])}: '
                           + ' and '.join(why))
        over = (out < alo) | (out > ahi)
        if over.any():
            self._acc_over = True
            k = int(np.argmax(over))
            reasons.append(f'{joints[k]!r} position {_fmt(out[k])} is beyond the reach '
                           f'[{_fmt(alo[k])}, {_fmt(ahi[k])}] of its acceleration limit '
                           f'{_fmt(amax[k])}: the position range and velocity step win')
        return JointCommand('position', out, joints, duration_s), reasons

    def _velocity_bounds(self, idx, cur):
        vmax = self._vmax[idx]
        h = self.horizon_s
        room_up = np.maximum(0.0, (self._hi[idx] - cur) / h)
        room_down = np.minimum(0.0, (self._lo[idx] - cur) / h)
        return np.maximum(-vmax, room_down), np.minimum(vmax, room_up)

    def _velocity(self, values, idx, joints, cur, v_now=None, amax=None):
        lo, hi = self._velocity_bounds(idx, cur)
        target = values
        slowing = np.zeros(len(values), dtype=bool)
        if amax is not None:
            # |v - v_measured| <= amax x horizon; the range and velocity limit win over it
            change = amax * self.horizon_s
            alo, ahi = v_now - change, v_now + change
            target = np.clip(values, alo, ahi)
            # a stop or a reversal (a request below the measured speed in its direction) never
            # passes zero in one command: sign(v) max(|v| - change, 0), or the request if
            # nearer; it never goes on in the old direction faster than that
            sign = np.sign(v_now)
            slowing = np.isfinite(amax) & (sign != 0.0) & (sign * values < np.abs(v_now))
            least = np.maximum(np.abs(v_now) - change, 0.0)
            target = np.where(slowing, sign * np.maximum(sign * values, least), target)
        out = np.clip(target, lo, hi)
        reasons = []
        for k in np.flatnonzero(out != values):
            i = idx[k]
            if target[k] != values[k] and out[k] == target[k] and slowing[k]:
                why = (f'a stop or reversal from measured {_fmt(v_now[k])} slows it by at most '
                       f'acceleration limit {_fmt(amax[k])} x {_fmt(self.horizon_s)} s and '
                       'never past zero in one command (it goes on until further commands, '
                       'or a trajectory hold, stop it)')
            elif target[k] != values[k] and out[k] == target[k]:
                why = (f'acceleration limit {_fmt(amax[k])} x {_fmt(self.horizon_s)} s from '
                       f'measured {_fmt(v_now[k])}')
            elif abs(values[k]) > self._vmax[i] and abs(out[k]) == self._vmax[i]:
                why = f'velocity limit {_fmt(self._vmax[i])}'
            else:
                why = (f'position limit within {_fmt(self.horizon_s)} s (measured '
                       f'{_fmt(cur[k])}, range [{_fmt(self._lo[i])}, {_fmt(self._hi[i])}])')
            reasons.append(f'{joints[k]!r} velocity {_fmt(values[k])} -> {_fmt(out[k])}: {why}')
        if amax is not None:
            over = (out < alo) | (out > ahi)
            if over.any():
                self._acc_over = True
                k = int(np.argmax(over))
                reasons.append(f'{joints[k]!r} velocity {_fmt(out[k])} changes measured '
                               f'{_fmt(v_now[k])} by more than acceleration limit '
                               f'{_fmt(amax[k])} x {_fmt(self.horizon_s)} s: the position '
                               'range and velocity limit win')
        return JointCommand('velocity', out, joints), reasons

    def _effort(self, values, idx, joints):
        emax = self._emax[idx]
        out = np.clip(values, -emax, emax)
        reasons = [f'{joints[k]!r} effort {_fmt(values[k])} -> {_fmt(out[k])}: effort limit '
                   f'{_fmt(emax[k])}' for k in np.flatnonzero(out != values)]
        return JointCommand('effort', out, joints), reasons

    def _segment_ok(self, dq, vmax, t_prev, t_next):
        return t_next > t_prev and bool((dq <= vmax * (t_next - t_prev)).all())

    @staticmethod
    def _cubic_time(dq, v0, v1, vmax, t_min, amax=None, stop=None):
        """
        Shortest duration >= ``t_min`` > 0 of a cubic segment whose peak speed is <= vmax.

        With ``amax`` (m,) also its peak acceleration <= amax (inf: none). With ``stop``, a
        tuple ``(raised, stopping, direction)`` of (m,) arrays, a joint still ``stopping`` that
        the segment, at the duration tried, only slows down (:func:`_slowing`) is bound by
        ``raised`` instead. The search returns a duration that meets both (the peak
        acceleration need not fall monotonically with the duration, so not always the shortest
        one).
        """
        def ok(t):
            fine = (_cubic_peak(dq, v0, v1, t) <= vmax).all()
            if amax is None or not fine:
                return bool(fine)
            bound = amax
            if stop is not None:
                raised, stopping, direction = stop
                bound = np.where(stopping & _slowing(dq, v0, v1, t, direction), raised, amax)
            return bool((_cubic_accel(dq, v0, v1, t) <= bound).all())
        if ok(t_min):
            return t_min
        lo, hi = t_min, 2.0 * t_min
        for _ in range(200):                # the peak falls towards max(|v0|, |v1|) <= vmax
            if ok(hi):                      # and the acceleration towards 0
                break
            lo, hi = hi, 2.0 * hi
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
        return hi

    def _trajectory(self, times, pos, vel, idx, joints, cur, v_now, amax=None):
        lo, hi = self._lo[idx], self._hi[idx]
        vmax = self._vmax[idx]
        vmax0 = np.maximum(vmax, np.abs(v_now))     # the first segment's bound (see module)
        reasons = []
        amax0 = amax            # the acceleration bounds of each joint's stop
        raised = None           # joints whose stop's bound is raised to stop in range
        if amax is not None:
            if vel is None:
                # straight lines change speed at once at every point: cubics that stop at
                # each point run the same path (every joint on the same time scale)
                vel = np.zeros_like(pos)
                reasons.append('positions-only trajectory sent with zero point velocities '
                               '(cubic splines that stop at every point, the same path) to '
                               'bound its acceleration')
            amax0, raised, room = stop_bounds(cur, v_now, amax, lo, hi)
            direction = np.sign(v_now)      # each joint's measured direction (0: at rest)
            for j in np.flatnonzero(raised):
                # this joint cannot stop inside the range within its limit: the range wins,
                # with the least deceleration that stops it there, over its own stop (the
                # first segment and those after it that only slow it down; every other joint,
                # and this one once stopped: its limit)
                reasons.append(f'{joints[j]!r} at {_fmt(v_now[j])}/s cannot stop within '
                               f'{_fmt(room[j])} of its range bound at its acceleration limit '
                               f'{_fmt(amax[j])}: it may decelerate at up to {_fmt(amax0[j])} '
                               'until it stops (the range wins)')
        out_pos = np.clip(pos, lo, hi)
        moved = out_pos != pos
        if moved.any():
            ks, js = np.nonzero(moved)
            reasons.append('positions clamped into the limits (with margin): ' + ', '.join(
                f'point {k} {joints[j]!r} {_fmt(pos[k, j])} -> {_fmt(out_pos[k, j])}'
                for k, j in zip(ks, js)))
        prev = np.vstack([cur[None, :], out_pos[:-1]])
        step = out_pos - prev                             # (k, m) signed move per segment
        dq = np.abs(step)                                 # (k, m) distance per segment
        # (k,) s needed per segment at the limit; a cubic first segment may average up to the
        # speed the robot starts it with
        bounds = np.vstack([(vmax if vel is None else vmax0)[None, :],
                            np.broadcast_to(vmax, (len(times) - 1, len(vmax)))])
        need = (dq / bounds).max(axis=1)
        dt = np.diff(np.concatenate([[0.0], times]))      # (k,) s given per segment
        ratio = np.where(dt > 0.0, need / dt, 0.0)
        if vel is not None:
            # cubic splines: the peak speed inside a segment, at the times given; stretching
            # every time by a factor divides positions' rates and the point velocities alike,
            # so the peak falls by that factor (the first segment, which starts at the
            # measured velocity, gets its own time below)
            v_start = np.vstack([v_now[None, :], vel[:-1]])
            bound = np.vstack([vmax0[None, :], np.broadcast_to(vmax, vel[1:].shape)])
            peak = np.array([(_cubic_peak(step[k], v_start[k], vel[k], dt[k]) / bound[k]).max()
                             if dt[k] > 0.0 else 0.0 for k in range(len(times))])
            ratio = np.maximum(ratio, peak)
        scale = max(1.0, float(ratio[1:].max()) if len(ratio) > 1 else 1.0,
                    float(ratio[0]) if dt[0] > 0.0 else 1.0)
        if amax is not None and len(times) > 1:
            # between points (velocities scaled too) the acceleration falls with the square of
            # the stretch (a segment that only slows a joint down still does so stretched);
            # the first segment gets its own time below
            seg_bounds = _stop_segment_bounds(step, v_start, vel, dt, amax, amax0, raised,
                                              direction)
            acc = np.array([(_cubic_accel(step[k], vel[k - 1], vel[k], dt[k])
                             / seg_bounds[k]).max() for k in range(1, len(times))])
            k_acc = int(np.argmax(acc)) + 1
            acc_scale = math.sqrt(float(acc.max()))
            if acc_scale > scale:
                scale = acc_scale
                peak = _cubic_accel(step[k_acc], vel[k_acc - 1], vel[k_acc], dt[k_acc])
                j = int(np.argmax(peak / seg_bounds[k_acc]))
                reasons.append(f'trajectory slowed down by a factor {_fmt(scale)} for the '
                               f'acceleration limits: segment {k_acc} accelerates '
                               f'{joints[j]!r} at {_fmt(peak[j])} > '
                               f'{_fmt(seg_bounds[k_acc][j])}')
        out_vel = None if vel is None else np.clip(vel / scale, -vmax, vmax)
        new_times = np.empty_like(times)
        t_prev = 0.0
        # joints still in their stop from the measured velocity, as the segments are sent
        stopping = None if raised is None else raised.copy()
        for k in range(len(times)):
            t_next = t_prev + max(dt[k] * scale, need[k])
            if k == 0 and t_next == 0.0 and amax is not None and vel is not None:
                # a first point at time 0 steps the velocity from the measured one at once: where
                # a joint's limit is finite, move it later, to the least time a cubic with no
                # move needs for the step (its accelerations at the ends: (4 v0 + 2 v1) / T,
                # (2 v0 + 4 v1) / T); _cubic_time below then checks it
                v1 = np.clip(vel[0] / scale, -vmax, vmax)
                step_v = np.maximum(np.abs(4.0 * v_now + 2.0 * v1), np.abs(2.0 * v_now + 4.0 * v1))
                jump = np.isfinite(amax0) & (v1 != v_now)
                if jump.any():
                    t_next = float((step_v[jump] / amax0[jump]).max())
                    j = int(np.argmax(jump))
                    reasons.append(f'point 0 moved from 0 s to {_fmt(t_next)} s: at 0 s it sets '
                                   f'{joints[j]!r} to {_fmt(v1[j])}/s from the measured '
                                   f'{_fmt(v_now[j])}/s at once, beyond its acceleration limit')
            for _ in range(64):
                if (t_next > t_prev or (k == 0 and t_next == 0.0 and not dq[0].any())) and \
                        bool((dq[k] <= bounds[k] * (t_next - t_prev)).all()):
                    break
                t_next = np.nextafter(t_next, math.inf)
            if vel is not None and t_next > t_prev:
                # the spline as it will be sent: point velocities scaled, then clamped
                v0 = v_now if k == 0 else out_vel[k - 1]
                a_k = amax0 if k == 0 else amax
                stop = None if k == 0 or stopping is None else (amax0, stopping, direction)
                span = self._cubic_time(step[k], v0, out_vel[k], vmax0 if k == 0 else vmax,
                                        t_next - t_prev, a_k, stop)
                if stopping is not None:
                    stopping &= _slowing(step[k], v0, out_vel[k], span, direction)
                if a_k is not None and span > t_next - t_prev and (k == 0 or scale == 1.0):
                    reasons.append(f'segment {k} lengthened to {_fmt(span)} s for the '
                                   'acceleration limits' + (' from the measured velocity'
                                                            if k == 0 else ''))
                t_next = t_prev + span
            new_times[k] = t_next
            t_prev = t_next
        if not math.isfinite(t_prev):
            raise _Refuse('malformed', 'trajectory duration overflows after slowing it down')
        if scale > 1.0:
            k = int(np.argmax(ratio))
            if vel is None:
                j = int(np.argmax(dq[k] / vmax))
                why = f'moves {joints[j]!r} at {_fmt(dq[k, j] / dt[k])}'
            else:
                speed = _cubic_peak(step[k], v_start[k], vel[k], dt[k])
                j = int(np.argmax(speed / bound[k]))
                why = f'peaks at {_fmt(speed[j])} on {joints[j]!r} (cubic spline)'
            reasons.append(f'trajectory slowed down by a factor {_fmt(scale)}: segment {k} '
                           f'{why} > velocity limit {_fmt(vmax[j])}')
        if new_times[0] > times[0] * scale * (1.0 + 1e-9):
            reasons.append(f'first point reached at {_fmt(new_times[0])} s instead of '
                           f'{_fmt(times[0])} s: the move from the measured position needs it')
        if not reasons and (new_times != times).any():
            reasons.append('times moved by float rounding to keep within the velocity limits')
        if vel is not None:
            if (np.abs(vel) > vmax).any():
                reasons.append('point velocities clamped to the velocity limits')
            self._spline_in_range(new_times, out_pos, out_vel, cur, v_now, idx, joints)
        if raised is not None and raised.any():
            spans = np.diff(np.concatenate([[0.0], new_times]))
            v_from = np.vstack([v_now[None, :], out_vel[:-1]])
            self._acc_over = any(bool((_cubic_accel(step[k], v_from[k], out_vel[k], spans[k])
                                       > amax).any())
                                 for k in range(len(times)) if spans[k] > 0.0)
        points = tuple(TrajectoryPoint(float(new_times[k]), out_pos[k],
                                       None if out_vel is None else out_vel[k])
                       for k in range(len(times)))
        return TrajectoryCommand(points, joints), reasons

    def _spline_in_range(self, times, pos, vel, cur, v_now, idx, joints):
        """
        Refuse cubic segments that leave the position range between their points.

        A robot measured just outside the range (within the margin, or an allowed step
        beyond it) may start there; it may not go further out, save what a start velocity of
        sensor noise (at most :data:`STOP_DEADBAND`) alone carries on the first segment (at most
        ``4/27 |v| T``, a few nm for 1e-4 rad/s).
        """
        t_prev, q_prev, v_prev = 0.0, cur, v_now
        for k in range(len(times)):
            duration = times[k] - t_prev
            if duration > 0.0:
                low, high = _cubic_range(pos[k] - q_prev, v_prev, vel[k], duration)
                slack = _ROUNDING * (1.0 + np.abs(q_prev) + np.abs(pos[k]))
                if k == 0:
                    slack = slack + np.where(np.abs(v_prev) <= STOP_DEADBAND,
                                             4.0 / 27.0 * duration * np.abs(v_prev), 0.0)
                lo = np.minimum(self._lo[idx], q_prev)
                hi = np.maximum(self._hi[idx], q_prev)
                out = ~((q_prev + low >= lo - slack) & (q_prev + high <= hi + slack))
                if out.any():
                    j = int(np.argmax(out))
                    i = idx[j]
                    raise _Refuse('unreachable', (
                        f'segment {k} of the trajectory, run as a cubic spline from '
                        f'{_fmt(q_prev[j])} at {_fmt(v_prev[j])} to {_fmt(pos[k, j])} at '
                        f'{_fmt(vel[k, j])} in {_fmt(duration)} s, reaches '
                        f'[{_fmt(q_prev[j] + low[j])}, {_fmt(q_prev[j] + high[j])}] on '
                        f'{joints[j]!r}, beyond its range [{_fmt(self._lo[i])}, '
                        f'{_fmt(self._hi[i])}]'))
            t_prev, q_prev, v_prev = times[k], pos[k], vel[k]


def _reach(v0, amax, vmax, duration):
    """
    Return the farthest displacements (m,) ahead in ``duration`` s from velocity ``v0``.

    Speeding up at ``amax`` (finite) up to ``vmax``, or the start speed if that is higher.
    """
    cap = np.maximum(vmax, v0)
    t1 = np.minimum((cap - v0) / amax, duration)
    return v0 * t1 + 0.5 * amax * t1 * t1 + cap * (duration - t1)


def stop_bounds(cur, v_now, amax, lo, hi):
    """
    Return the acceleration bounds of each joint's stop, which of them are raised, and rooms.

    Per joint, never mixed: ``room`` is the distance from the measured position to the range
    bound ahead, at least :data:`STOP_ROOM_FLOOR`. The least deceleration that stops ``v``
    within ``room`` is ``v^2 / (2 room)`` (an even stop from ``v`` in ``T`` decelerates at
    ``|v| / T`` and travels ``|v| T / 2``). A joint with a finite limit ``a``, faster than
    :data:`STOP_DEADBAND`, for which that is more than ``a`` gets it as its bound (a hair more,
    for float rounding); every other joint keeps ``a``. Finite for every limited joint. A
    raised bound holds on a trajectory's first segment and on the segments after it that only
    slow the joint down (:func:`_slowing`), until it stops: its own stop, however long.
    """
    speed = np.abs(v_now)
    room = np.maximum(np.where(v_now > 0.0, hi - cur, cur - lo), STOP_ROOM_FLOOR)
    least = speed * speed / (2.0 * room) * (1.0 + _ROUNDING)
    raised = np.isfinite(amax) & (speed > STOP_DEADBAND) & (least > amax)
    return np.where(raised, least, amax), raised, room


def _slowing(dq, v0, v1, duration, direction):
    """
    Return which cubic segments (m,) only slow a joint down in its measured ``direction``.

    ``direction`` (m,) is the sign of the measured velocity. Such a segment starts moving that
    way, ends slower that way or at rest (never reversed), and its acceleration at both ends
    (it is linear in time) opposes the motion or is zero: the speed falls all along it. An
    even stop's segments do (they are its quadratic); a segment that speeds up, coasts,
    reverses or starts at rest does not.
    """
    a = dq / (duration * duration)
    start = 6.0 * a - (4.0 * v0 + 2.0 * v1) / duration
    end = -6.0 * a + (2.0 * v0 + 4.0 * v1) / duration
    return ((direction * v0 > 0.0) & (direction * v1 >= 0.0) & (direction * v1 < direction * v0)
            & (direction * start <= 0.0) & (direction * end <= 0.0))


def _stop_segment_bounds(step, v_start, vel, dt, amax, raised_bounds, raised, direction):
    """
    Return the acceleration bound (k, m) of every segment of a trajectory as given.

    ``raised_bounds`` (:func:`stop_bounds`) on the first segment, and after it for a
    ``raised`` joint while every segment so far only slowed it down (:func:`_slowing`); else
    ``amax``. A first segment of no duration (a point at 0 s, moved later) ends the stops.
    """
    bounds = np.empty_like(step)
    stopping = raised.copy()
    for k in range(len(dt)):
        if dt[k] > 0.0:
            stopping &= _slowing(step[k], v_start[k], vel[k], dt[k], direction)
        else:
            stopping[:] = False
        bounds[k] = raised_bounds if k == 0 else np.where(stopping, raised_bounds, amax)
    return bounds


def _cubic_accel(dq, v0, v1, duration):
    """
    Return the peak |accelerations| (m,) of cubic Hermite segments (see :func:`_cubic_peak`).

    The acceleration of a cubic is linear in time, so its peak is at an end:
    ``6 dq / T^2 - (4 v0 + 2 v1) / T`` at the start, ``-6 dq / T^2 + (2 v0 + 4 v1) / T`` at
    the end.
    """
    a = dq / (duration * duration)
    start = 6.0 * a - (4.0 * v0 + 2.0 * v1) / duration
    end = -6.0 * a + (2.0 * v0 + 4.0 * v1) / duration
    return np.maximum(np.abs(start), np.abs(end))


def _cubic_range(dq, v0, v1, duration):
    """
    Return the lowest and highest displacement (each (m,)) of cubic Hermite segments.

    The same segments as :func:`_cubic_peak`. In displacements (``d0 = v0 duration``,
    ``d1 = v1 duration``) the position is ``(3 s^2 - 2 s^3) dq + (s^3 - 2 s^2 + s) d0 +
    (s^3 - s^2) d1``; its extremes are at the ends or where its derivative, a quadratic in
    ``s``, is zero inside. The roots are found on the displacements divided by the largest of
    them, so that no scale of times or speeds overflows or underflows; a non-finite result
    (a segment that overflows) is NaN, and the caller refuses it.
    """
    d0, d1 = v0 * duration, v1 * duration
    big = np.maximum(np.maximum(np.abs(dq), np.abs(d0)), np.abs(d1))
    with np.errstate(all='ignore'):
        unit = np.where(big > 0.0, big, 1.0)
        a, b0, b1 = dq / unit, d0 / unit, d1 / unit
        c2 = 3.0 * (b0 + b1) - 6.0 * a
        c1 = 6.0 * a - 4.0 * b0 - 2.0 * b1
        root = np.sqrt(np.maximum(c1 * c1 - 4.0 * c2 * b0, 0.0))
        quadratic = c2 != 0.0
        candidates = (np.where(quadratic, (-c1 + root) / (2.0 * c2), -b0 / c1),
                      np.where(quadratic, (-c1 - root) / (2.0 * c2), -1.0))
        low = np.minimum(0.0, a)
        high = np.maximum(0.0, a)
        for s in candidates:
            inside = (s > 0.0) & (s < 1.0)
            s = np.where(inside, s, 0.0)
            x = (3.0 * s ** 2 - 2.0 * s ** 3) * a + (s ** 3 - 2.0 * s ** 2 + s) * b0 \
                + (s ** 3 - s ** 2) * b1
            low = np.where(inside, np.minimum(low, x), low)
            high = np.where(inside, np.maximum(high, x), high)
        low, high = low * unit, high * unit
    bad = ~(np.isfinite(low) & np.isfinite(high))
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def _cubic_peak(dq, v0, v1, duration):
    """
    Return the peak speeds (m,) of cubic Hermite segments, as a spline controller runs them.

    Each segment moves ``dq`` in ``duration`` > 0 s from velocity ``v0`` to ``v1`` (each (m,)).

    With ``s`` = time / duration in [0, 1] and ``a = dq / duration`` the velocity is
    ``6 s (1 - s) a + (1 - s)(1 - 3 s) v0 + s (3 s - 2) v1``, a quadratic in ``s``: its largest
    magnitude is at an end or at its vertex.
    """
    a = dq / duration
    c2 = 3.0 * (v0 + v1) - 6.0 * a
    c1 = 6.0 * a - 4.0 * v0 - 2.0 * v1
    peak = np.maximum(np.abs(v0), np.abs(v1))
    with np.errstate(divide='ignore', invalid='ignore'):
        s = np.where(c2 != 0.0, -c1 / (2.0 * c2), -1.0)
    inside = (s > 0.0) & (s < 1.0)
    return np.where(inside, np.maximum(peak, np.abs((c2 * s + c1) * s + v0)), peak)


# ---------------------------------------------------------------------------------------------
# The final check. Deliberately written apart from the clamping above: plain comparisons of the
# output with the URDF limits (JointLimits) and the governor's settings, joint by joint, with
# none of the helpers that produced the output. Positions must be within the limits exactly;
# distances and speeds, which the clamping computed by float arithmetic, may exceed theirs by
# float rounding only (_ROUNDING, relative).
# ---------------------------------------------------------------------------------------------

_ROUNDING = 1e-9


def limit_violations(governor, out, current, requested, current_velocity=None):
    """
    Return every bound an output command violates (empty when it may be sent).

    Parameters
    ----------
    governor : SafetyGovernor
        Its ``limits`` (URDF), ``position_margin``, ``velocity_scale``, ``horizon_s`` and
        ``max_step_rad``.
    out : JointCommand or TrajectoryCommand
        The command about to be sent.
    current : (m,) array or None
        Measured positions of ``out.joints`` in their order, rad.
    requested : JointCommand or TrajectoryCommand
        The command as proposed (its ``duration_s``).
    current_velocity : (m,) array or None
        Measured velocities of ``out.joints`` in their order, rad/s, where a trajectory's
        first cubic segment starts, and what an acceleration limit counts from (None or NaN:
        at rest).

    Notes
    -----
    Where ``governor.limits.acceleration`` is finite the measured velocity must be known (not
    None or NaN): a velocity command changes it by at most the limit x ``horizon_s`` and
    never reverses it, a position target is within the reach of the limit from it, and a
    trajectory is cubic splines whose acceleration at every point is within the limit, with no
    step in velocity at a segment of no duration; unless the hard bound nearest to that is what
    was sent (a velocity or position target). On a trajectory's first segment the bound of
    each joint is ``max(a, v^2 / (2 room))`` (``room`` to the range bound ahead, at least
    ``STOP_ROOM_FLOOR``): the least deceleration that stops it inside its range; the same on
    each later segment for as long as every segment so far only slowed the joint down in its
    measured direction (moving that way at the start, slower that way or at rest at the end,
    the acceleration at both ends against the motion): its own stop, however many points it
    spans.

    """
    lim = governor.limits
    bad = []
    joints = list(out.joints)
    index = {name: i for i, name in enumerate(lim.names)}
    if len(set(joints)) != len(joints) or any(j not in index for j in joints):
        return [f'joint names {joints} are not distinct model joints']
    rows = []
    for j in joints:
        i = index[j]
        margin = float(governor.position_margin[i])
        rows.append((j, float(lim.lower[i]) + margin, float(lim.upper[i]) - margin,
                     float(lim.velocity[i]) * governor.velocity_scale * governor.speed_scale,
                     float(lim.effort[i])))
    accel = [float(lim.acceleration[index[j]]) for j in joints]
    v_meas = [0.0] * len(rows)
    if current_velocity is not None:
        v_meas = [float(v) if math.isfinite(float(v)) else 0.0 for v in current_velocity]
    if out.kind != 'effort':
        given = [] if current_velocity is None else [float(v) for v in current_velocity]
        for j, (row, a) in enumerate(zip(rows, accel)):
            if math.isfinite(a) and not (j < len(given) and math.isfinite(given[j])):
                bad.append(f'{row[0]} has an acceleration limit and no measured velocity')
    # a joint without a limit of the kind the command needs is never commanded
    needed = 4 if out.kind == 'effort' else 3
    bad += [f'{row[0]} has no {"effort" if needed == 4 else "velocity"} limit' for row in rows
            if not math.isfinite(row[needed])]
    if out.kind == 'trajectory':
        t_prev = 0.0
        prev = None if current is None else [float(c) for c in current]
        # a controller's spline starts the move at the robot's velocity (rest when unknown);
        # a robot already faster than the limit may keep its speed there, not exceed it
        v_prev = [0.0] * len(rows)
        if current_velocity is not None:
            v_prev = [float(v) if math.isfinite(float(v)) else 0.0 for v in current_velocity]
        first_bound = [max(row[3], abs(v)) for row, v in zip(rows, v_prev)]
        # a joint that cannot stop inside its range within its limit a may decelerate at the
        # least that stops it there, v^2 / (2 room), over its own stop: the first segment and
        # every later one while all so far only slowed it down; never more, and no other
        accel_stop = list(accel)
        if current is not None:
            starts = zip(rows, current, v_prev)
            for j, ((_name, lo, hi, _vmax, _emax), c, v) in enumerate(starts):
                room = (hi - float(c)) if v > 0.0 else (float(c) - lo)
                accel_stop[j] = max(accel[j], v * v / (2.0 * max(room, STOP_ROOM_FLOOR)))
        direction = [1.0 if v > 0.0 else -1.0 if v < 0.0 else 0.0 for v in v_prev]
        stopping = [True] * len(rows)       # every segment so far slowed the joint down
        if any(math.isfinite(a) for a in accel) and any(
                p.velocities is None for p in out.points):
            bad.append('trajectory without point velocities for a joint with an acceleration '
                       'limit')
        for k, point in enumerate(out.points):
            t = float(point.time_from_start)
            q = [float(x) for x in point.positions]
            v_k = None if point.velocities is None else [float(v) for v in point.velocities]
            if len(q) != len(rows) or not math.isfinite(t) or t < t_prev or (
                    v_k is not None and len(v_k) != len(rows)):
                bad.append(f'point {k}: wrong length or time')
                continue
            for j, ((name, lo, hi, vmax, _emax), qj, pj) in enumerate(zip(rows, q, prev or q)):
                if not lo <= qj <= hi:
                    bad.append(f'point {k} {name} position {qj} outside [{lo}, {hi}]')
                if (prev is not None and t == t_prev and v_k is not None
                        and math.isfinite(accel[j]) and v_k[j] != v_prev[j]):
                    bad.append(f'point {k} {name} velocity steps from {v_prev[j]} to {v_k[j]} '
                               f'in no time, beyond acceleration limit {accel[j]}')
                if prev is None or (t == t_prev and qj == pj):
                    continue
                # a cubic first segment may average up to the speed the robot starts it with
                bound = first_bound[j] if k == 0 and v_k is not None else vmax
                if not (t > t_prev and abs(qj - pj) <= bound * (t - t_prev) * (1 + _ROUNDING)):
                    bad.append(f'point {k} {name} moves {abs(qj - pj)} in {t - t_prev} s, '
                               f'faster than {bound}')
                elif v_k is not None:
                    fastest, lowest, highest = _spline_sampled(qj - pj, v_prev[j], v_k[j],
                                                               t - t_prev)
                    if not fastest <= bound * (1 + _ROUNDING):
                        bad.append(f'point {k} {name} spline reaches {fastest} in its segment, '
                                   f'faster than {bound}')
                    slack = _ROUNDING * (1.0 + abs(pj) + abs(qj))
                    if k == 0 and abs(v_prev[j]) <= STOP_DEADBAND:
                        # what a start velocity of sensor noise alone carries (4/27 |v| T)
                        slack += 4.0 / 27.0 * (t - t_prev) * abs(v_prev[j])
                    if pj + lowest < min(lo, pj) - slack or pj + highest > max(hi, pj) + slack:
                        bad.append(f'point {k} {name} spline reaches '
                                   f'[{pj + lowest}, {pj + highest}] in its segment, beyond '
                                   f'[{lo}, {hi}]')
                    if math.isfinite(accel[j]):
                        # a cubic's acceleration is linear in time: its ends
                        span = t - t_prev
                        d2_start = 6.0 * (qj - pj) - span * (4.0 * v_prev[j] + 2.0 * v_k[j])
                        d2_end = -6.0 * (qj - pj) + span * (2.0 * v_prev[j] + 4.0 * v_k[j])
                        size = 6.0 * abs(qj - pj) + span * (4.0 * abs(v_prev[j])
                                                            + 4.0 * abs(v_k[j]))
                        d = direction[j]
                        slows = (d * v_prev[j] > 0.0 and 0.0 <= d * v_k[j] < d * v_prev[j]
                                 and d * d2_start <= _ROUNDING * size
                                 and d * d2_end <= _ROUNDING * size)
                        stopping[j] = stopping[j] and slows
                        a_bound = accel_stop[j] if k == 0 or stopping[j] else accel[j]
                        most = max(abs(d2_start), abs(d2_end))
                        if not most <= (a_bound * span * span + size) * (1 + _ROUNDING) - size:
                            bad.append(f'point {k} {name} spline accelerates at '
                                       f'{most / (span * span)}, beyond {a_bound}')
            if v_k is not None:
                for (name, _lo, _hi, vmax, _emax), v in zip(rows, v_k):
                    if not abs(v) <= vmax:
                        bad.append(f'point {k} {name} velocity {v} beyond {vmax}')
            t_prev, prev = t, q
            v_prev = v_k or [0.0] * len(rows)
        if prev is None and current is None:
            bad.append('no measured state for a trajectory')
        return bad
    values = [float(v) for v in out.values]
    if len(values) != len(rows) or not all(math.isfinite(v) for v in values):
        return ['values not finite or wrong length']
    if out.kind == 'effort':
        return bad + [f'{name} effort {v} beyond {emax}' for (name, _lo, _hi, _vmax, emax), v
                      in zip(rows, values) if not abs(v) <= emax]
    if current is None:
        return bad + [f'no measured state for a {out.kind} command']
    horizon = governor.horizon_s
    for (name, lo, hi, vmax, _emax), v, c, a_max, vm in zip(rows, values, current, accel,
                                                            v_meas):
        c = float(c)
        if out.kind == 'position':
            dt = horizon if requested.duration_s is None else float(requested.duration_s)
            step = vmax * dt if governor.max_step_rad is None else min(
                vmax * dt, governor.max_step_rad)
            if not lo <= v <= hi:
                bad.append(f'{name} position {v} outside [{lo}, {hi}]')
            if not abs(v - c) <= step * (1 + _ROUNDING) + _ROUNDING * abs(c):
                bad.append(f'{name} position step {abs(v - c)} beyond {step}')
            if math.isfinite(a_max):
                # the farthest the joint gets ahead and behind in dt from vm: speeding up
                # (or slowing down) at a_max until it runs at the limit (or its own speed)
                ahead = _distance_at_most(vm, a_max, vmax, dt)
                behind = -_distance_at_most(-vm, a_max, vmax, dt)
                slack = _ROUNDING * (1.0 + abs(c) + abs(vm) * dt + vmax * dt)
                if v - c > ahead + slack and not v <= max(lo, c - step) + slack:
                    bad.append(f'{name} position {v} beyond the reach {c + ahead} of its '
                               f'acceleration limit {a_max} in {dt} s')
                if v - c < behind - slack and not v >= min(hi, c + step) - slack:
                    bad.append(f'{name} position {v} short of the least travel {c + behind} '
                               f'its acceleration limit {a_max} allows in {dt} s')
        else:
            if not abs(v) <= vmax:
                bad.append(f'{name} velocity {v} beyond {vmax}')
            end = c + v * horizon
            slack = _ROUNDING * (1.0 + abs(c) + abs(v) * horizon)
            if (v > 0.0 and end > max(hi, c) + slack) or (v < 0.0 and end < min(lo, c) - slack):
                bad.append(f'{name} velocity {v} leaves [{lo}, {hi}] within {horizon} s')
            if math.isfinite(a_max):
                # the hard bounds: speed, and not past the range within the horizon
                lowest = max(-vmax, min(0.0, (lo - c) / horizon))
                highest = min(vmax, max(0.0, (hi - c) / horizon))
                change = a_max * horizon
                slack = _ROUNDING * (1.0 + abs(vm) + change + abs(v))
                if v > vm + change + slack and not v <= lowest + slack:
                    bad.append(f'{name} velocity {v} from measured {vm} beyond acceleration '
                               f'limit {a_max} x {horizon} s')
                if v < vm - change - slack and not v >= highest - slack:
                    bad.append(f'{name} velocity {v} from measured {vm} beyond acceleration '
                               f'limit {a_max} x {horizon} s')
                if v * vm < 0.0:
                    bad.append(f'{name} velocity {v} reverses measured {vm} in one command')
    return bad


def _distance_at_most(v0, a_max, v_cap, duration):
    """Farthest travel ahead in ``duration`` from ``v0`` at most ``a_max``, plain floats."""
    top = max(v_cap, v0)
    top_reached = min(top, v0 + a_max * duration)
    t_up = (top_reached - v0) / a_max
    return 0.5 * (v0 + top_reached) * t_up + top_reached * (duration - t_up)


def _spline_sampled(dq, v0, v1, duration):
    """
    Sample a cubic Hermite segment at 129 evenly spaced times (plain floats).

    Returns its largest speed and its lowest and highest displacement from the start.
    """
    fastest, lowest, highest = 0.0, 0.0, 0.0
    for i in range(129):
        s = i / 128.0
        v = (6.0 * s - 6.0 * s * s) * dq / duration + (3.0 * s * s - 4.0 * s + 1.0) * v0 \
            + (3.0 * s * s - 2.0 * s) * v1
        x = (3.0 * s * s - 2.0 * s * s * s) * dq \
            + duration * ((s * s * s - 2.0 * s * s + s) * v0 + (s * s * s - s * s) * v1)
        fastest = max(fastest, abs(v))
        lowest, highest = min(lowest, x), max(highest, x)
    return fastest, lowest, highest
