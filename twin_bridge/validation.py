"""
Validation of robot samples (joint states, wrenches) before the twin uses them.

ROS-free. The node hands a message over as plain values (names list, value arrays, header stamp
and receive time as float seconds) to :meth:`JointStateValidator.validate` or
:meth:`WrenchValidator.validate`. Both return None for an accepted sample, or a reason string
naming what was wrong; they never raise on bad data (only on bad configuration, with
:class:`ValidationConfigError`). Every rejection is counted by cause in a :class:`Counters`
object whose :meth:`Counters.as_dict` goes into ``/twin/status``.

A sample must be *possible*, not only finite: with a :class:`Plausibility` (built from the URDF's
limits, see :meth:`Plausibility.from_model`) a position beyond a joint's range by more than a
margin, a speed or effort far beyond the URDF's limit, or a wrench beyond the sensor's range is
rejected like a NaN. 1e308 fails every one of these checks.

Rejection causes (the counter keys, besides ``accepted`` and ``rejected``):

``malformed``
    values that are not numbers, names that are not strings, a non-finite local time, a stamp
    whose ``nanosec`` is not below 1e9 (not a valid ``builtin_interfaces/Time``).
``empty``
    a joint state without names.
``length_mismatch``
    ``position`` does not have one value per name, or ``velocity``/``effort`` is neither empty
    (JointState: "not provided") nor one value per name; a wrench without 6 values.
``nonfinite``
    NaN or inf in a value or in the stamp.
``duplicate_joint``
    a name listed twice.
``unknown_joint``
    a name not in the model (policy ``unknown_joints='reject'``), or no model joint at all.
``beyond_limits``
    a position outside ``[lower - margin, upper + margin]`` (continuous joints: beyond
    ``±ABS_POSITION_CAP``).
``implausible_velocity``, ``implausible_effort``
    ``|value|`` above ``factor x`` the URDF limit (or above a generic cap where the URDF gives
    no limit).
``beyond_range`` (wrench)
    a force or torque component beyond the configured sensor range.
``wrong_frame`` (wrench)
    a ``header.frame_id`` that is neither empty nor the sensor frame (``frame_id`` of
    :class:`WrenchValidator`, with or without a tf prefix such as ``robot1/``): a wrench in
    another frame would give wrong residuals.
``zero_stamp``
    stamp 0 (header never set) or negative.
``future_stamp``
    stamp more than ``max_future_s`` ahead of the local clock, or ahead of the stream's own
    clock (see :class:`StampGate`).
``out_of_order``
    stamp older than the newest accepted stamp of one of the sample's joints (joints are
    tracked separately, so an arm and a gripper published on separate messages do not reject
    each other).

A rejected sample never changes what the validator remembers (stamps, clock estimate), so bad
messages cannot poison the stream: the next good sample is judged as if they never came. A
clock that really stepped (a robot restarted) is followed after ``resync_s`` of samples that
all disagree with the old clock, counted as ``clock_resync``.

``ignored_unknown`` counts accepted messages from which unknown joints were dropped (policy
``'ignore'``). A message may carry a subset of the joints; joints that no accepted message
carried within ``missing_window_s`` are reported by :meth:`JointStateValidator.missing_joints`.
"""
from collections import deque
from dataclasses import dataclass
import math

import numpy as np

from twin_bridge.mapping import format_joint_names, LayoutCache, MappingError

CAUSES = ('malformed', 'empty', 'length_mismatch', 'nonfinite', 'duplicate_joint',
          'unknown_joint', 'beyond_limits', 'implausible_velocity', 'implausible_effort',
          'zero_stamp', 'future_stamp', 'out_of_order')
WRENCH_CAUSES = ('malformed', 'length_mismatch', 'nonfinite', 'beyond_range', 'wrong_frame',
                 'zero_stamp', 'future_stamp', 'out_of_order')
UNKNOWN_JOINT_POLICIES = ('reject', 'ignore')
SKIPPED = 'the message names no joint the twin mirrors (held or ignored joints only); skipped'
"""What :meth:`JointStateValidator.validate` returns for a message that carries nothing for the
twin: neither accepted nor rejected (compare with ``is``)."""
_NOTHING_FOR_THE_TWIN = ('other_joints_only', SKIPPED)
WRENCH_AXES = ('fx', 'fy', 'fz', 'tx', 'ty', 'tz')

ABS_POSITION_CAP = 1.0e6
"""Largest |position| accepted for a joint without position limits (continuous), rad.

About 160,000 turns: a wrist that drives screws may report its angle unwrapped for a long
time, and float64 still resolves such an angle to 1e-10 rad; 1e308 is refused."""
VELOCITY_CAP = 100.0
"""Largest |velocity| accepted where the URDF gives no velocity limit, rad/s or m/s."""
EFFORT_CAP = 1.0e5
"""Largest |effort| accepted where the URDF gives no effort limit, N·m or N."""

NANOSEC_PER_SEC = 1_000_000_000
_isfinite = math.isfinite


class ValidationConfigError(ValueError):
    """A validator was configured with a bad parameter (the message names it)."""


class Counters:
    """
    Counts of events by key (accepted samples, rejections by cause, ...).

    Parameters
    ----------
    keys : sequence of str
        Keys reported even while their count is 0.

    """

    def __init__(self, keys):
        self._counts = dict.fromkeys(keys, 0)

    def add(self, key, n=1):
        """Add ``n`` to the count of ``key`` (a new key starts at 0)."""
        self._counts[key] = self._counts.get(key, 0) + n

    def __getitem__(self, key):
        return self._counts.get(key, 0)

    def as_dict(self, prefix=''):
        """Return ``{prefix + key: count}`` for every key, e.g. for ``/twin/status``."""
        return {prefix + k: v for k, v in self._counts.items()}

    def reset(self):
        """Set every count back to 0."""
        for k in self._counts:
            self._counts[k] = 0

    def __repr__(self):
        return f'Counters({self._counts!r})'


def _number(value, name, *, minimum=None, allow_none=False, positive=False):
    """Return ``value`` as a finite float, or raise :class:`ValidationConfigError` naming it."""
    if value is None and allow_none:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    ok = _isfinite(out) and (minimum is None or out >= minimum) and (not positive or out > 0.0)
    if not ok:
        want = 'a finite number' + (f' >= {minimum}' if minimum is not None else '') + (
            ' > 0' if positive else '')
        raise ValidationConfigError(f'{name} must be {want}, got {value!r}')
    return out


@dataclass(frozen=True)
class Plausibility:
    """
    What a robot can really report, per model joint: the bounds of a possible sample.

    Attributes
    ----------
    lower, upper : (n,) float arrays
        Accepted position range, rad (m): the URDF range widened by a margin, or
        ``±ABS_POSITION_CAP`` for a joint without limits.
    velocity : (n,) float array
        Largest accepted ``|velocity|``, rad/s (m/s).
    effort : (n,) float array
        Largest accepted ``|effort|``, N·m (N).

    """

    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray

    @classmethod
    def from_limits(cls, lower, upper, velocity_limit, effort_limit, *,
                    position_margin=0.1, velocity_factor=1.5, effort_factor=2.0):
        """
        Build the bounds from URDF limits (model order).

        Parameters
        ----------
        lower, upper : (n,) array_like
            URDF position limits, rad (m); non-finite (or lower >= upper) = no limit.
        velocity_limit, effort_limit : (n,) array_like
            URDF limits, rad/s and N·m; 0, negative or non-finite = none given.
        position_margin : float or (n,) array_like
            A position may exceed the range by this much (encoder overshoot, soft limits set
            inside the hardware range), rad (m), >= 0; one value per joint when the joints
            differ (prismatic joints need a margin in m).
        velocity_factor, effort_factor : float
            A speed or effort may exceed the URDF limit by this factor (>= 1): efforts peak
            above the rated limit in a collision.

        """
        margin = np.array(position_margin, dtype=float)
        if margin.ndim == 0:
            margin = _number(position_margin, 'position_margin', minimum=0.0)
        elif not (margin.shape == np.shape(lower) and np.isfinite(margin).all()
                  and (margin >= 0.0).all()):
            raise ValidationConfigError(f'position_margin must be a number or one per joint, '
                                        f'finite and >= 0, got {margin.tolist()}')
        vf = _number(velocity_factor, 'velocity_factor', minimum=1.0)
        ef = _number(effort_factor, 'effort_factor', minimum=1.0)
        lo, hi = np.array(lower, dtype=float), np.array(upper, dtype=float)
        limited = np.isfinite(lo) & np.isfinite(hi) & (lo < hi)
        lo = np.where(limited, lo - margin, -ABS_POSITION_CAP)
        hi = np.where(limited, hi + margin, ABS_POSITION_CAP)
        vel, eff = np.array(velocity_limit, dtype=float), np.array(effort_limit, dtype=float)
        vel = np.where(np.isfinite(vel) & (vel > 0.0), vf * vel, VELOCITY_CAP)
        eff = np.where(np.isfinite(eff) & (eff > 0.0), ef * eff, EFFORT_CAP)
        if not lo.shape == hi.shape == vel.shape == eff.shape or lo.ndim != 1:
            raise ValidationConfigError('limits must be (n,) arrays of one length, got shapes '
                                        f'{lo.shape}, {hi.shape}, {vel.shape}, {eff.shape}')
        return cls(lo, hi, vel, eff)

    @classmethod
    def from_model(cls, model, **kwargs):
        """Build the bounds from a ``RobotModel``-like object (``lower``, ``upper``, ...)."""
        return cls.from_limits(model.lower, model.upper, model.velocity_limit,
                               model.effort_limit, **kwargs)


class StampGate:
    """
    Stamp checks of one stream: finite, non-zero, not in the future, in order, one clock.

    Two clocks are checked. Against the local clock: a stamp more than ``max_future_s`` ahead
    of ``now`` is rejected (None disables this; clocks not synchronized). Against the stream's
    own clock: the smallest ``now - stamp`` of recently accepted samples estimates the clock
    offset plus the fastest transport; no real sample can arrive faster, so a stamp more than
    ``tolerance_s`` ahead of that estimate is rejected. This keeps one message stamped slightly
    in the future (within ``max_future_s``) from pushing the "newest stamp" ahead and making
    every good sample after it look out of order.

    The estimate is too high when every sample of the window reached the twin late (the twin
    was busy at start-up and worked through a backlog). Samples on time afterwards look ahead
    of it although they are good. So a sample ahead of the estimate is still accepted when it
    continues the stream in sequence: newer than the newest accepted stamp by at most
    ``max(tolerance_s, 2 x the stream's usual stamp step)``. Such a sample cannot push the
    newest stamp far ahead (the harm the check exists to stop), and accepting it lowers the
    estimate to the truth at once. A stamp far ahead still jumps far ahead of the sequence.

    A real clock step (the robot restarted, its clock was set) makes every sample fail the same
    way: the same cause, the same ``now - stamp`` within ``STEP_CONSISTENCY_S``. After
    ``resync_s`` of local time in which only such failing samples arrived, the gate follows the
    new clock (``resyncs`` counts it) instead of rejecting the stream forever. Failures that
    disagree (bad stamps of several kinds, as a misbehaving second publisher sends) never add
    up to a resync. One case resyncs sooner: :data:`AHEAD_RUN` samples in a row, each ahead of
    the estimate and continuing the one before in sequence, with no other sample, good or bad,
    among them.
    That is the stream itself, on time, after an estimate made too high (a start-up backlog
    followed by a gap in the stream, so that the first on-time sample did not continue the
    accepted ones); one message stamped ahead never makes such a run. And one case resyncs at
    the first such sample: a newer stamp ahead of the estimate right after the twin worked
    through a backlog, the last :data:`DRAIN_SAMPLES` accepted samples taken in less than
    :data:`DRAIN_RATIO` of the time their stamps span, and a lead of at most
    :data:`DRAIN_MAX_AHEAD_S`. Their lateness made the estimate, and
    the gap is the twin's own queue, which overflowed while it was behind (a twin started
    beside a robot already streaming, whose first turn came late).

    Parameters
    ----------
    topic : str
        Topic name used in reasons.
    max_future_s : float or None
        See above, s (>= 0).
    tolerance_s : float
        See above, s (> 0).
    resync_s : float
        See above, s (> 0).
    window_s : float
        The offset estimate is the minimum over the last one to two windows, s (> 0); the
        robot's clock may drift relative to ours by this window times the drift rate (100 ppm
        of 5 s is 0.5 ms, well inside ``tolerance_s``). A long window also keeps a backlog
        (every sample received late for a while, as when the twin is flooded) from raising the
        estimate until a stamp far ahead looks on time.

    """

    WARMUP = 10
    """Accepted samples before the stream's own clock is trusted."""
    STEP_CONSISTENCY_S = 0.02
    """Failing samples of one clock step agree on ``now - stamp`` within this, s."""
    STEP_SMOOTHING = 0.05
    """Weight of the latest stamp step in the stream's usual step (exponential average)."""
    AHEAD_RUN = 20
    """Samples in sequence, all ahead of the estimate and nothing else, that resync at once."""
    DRAIN_SAMPLES = 10
    """Accepted samples over which a backlog being worked through is recognized."""
    DRAIN_RATIO = 0.5
    """... taken in less than this share of the time their stamps span (a robot that sends its
    samples in batches of a few does not look so over ten)."""
    DRAIN_MAX_AHEAD_S = 1.0
    """The most a backlog explains of a sample's lead, s: a clock that jumps further is left to
    the resync rules above."""

    def __init__(self, topic, max_future_s, *, tolerance_s=0.005, resync_s=0.5, window_s=5.0):
        self.topic = topic
        self.max_future_s = _number(max_future_s, 'max_future_s', minimum=0.0, allow_none=True)
        self.tolerance_s = _number(tolerance_s, 'tolerance_s', positive=True)
        self.resync_s = _number(resync_s, 'resync_s', positive=True)
        self.window_s = _number(window_s, 'window_s', positive=True)
        self.reset()

    def reset(self):
        """Forget the stream's clock."""
        self.resyncs = 0
        self._accepted = 0
        self._newest = None                  # newest accepted stamp, s
        self._step = 0.0                     # usual step between accepted stamps, s
        self._bins = [math.inf, math.inf]   # min offset in the previous and current window
        self._bin_end = -math.inf
        self._failing_since = None           # local time of the first of a run of failures
        self._failing_kind = None            # (cause, now - stamp) of that first failure
        self._ahead_run = (0, None)          # samples ahead in sequence so far, the last stamp
        self._ahead_pending = False          # the last check refused a sample as ahead
        self._recent = deque(maxlen=self.DRAIN_SAMPLES)   # (stamp, now) of the last accepted

    @property
    def step_s(self):
        """Return the stream's usual step between stamps (its period), s; 0.0 before two."""
        return self._step

    @property
    def offset_s(self):
        """Smallest recent ``now - stamp`` (clock offset + fastest transport), s; inf if none."""
        return min(self._bins)

    def check(self, stamp, now, newest, nanosec=0):
        """
        Return None or ``(cause, reason)`` for a stamp; ``newest`` = newest accepted stamp.

        ``stamp`` is the header stamp in seconds; ``nanosec`` its ``nanosec`` field as received
        (``stamp`` alone cannot tell ``(999, 1.01e9)`` from ``(1000, 0.01e9)``): a value
        outside ``[0, 1e9)`` is a malformed ``builtin_interfaces/Time``. On None the caller
        accepts the sample and must call :meth:`accepted`.
        """
        if not _isfinite(now):
            return ('malformed', f'local time now={now!r} is not finite; the caller must pass '
                                 f'the receive time of the {self.topic} sample in seconds')
        if not 0 <= nanosec < NANOSEC_PER_SEC:
            return ('malformed', f'stamp nanosec is {nanosec!r} in {self.topic}, not in '
                                 '[0, 1e9): not a valid builtin_interfaces/Time (the publisher '
                                 'must carry whole seconds into sec)')
        if not _isfinite(stamp):
            return ('nonfinite', f'stamp is {stamp!r} in {self.topic}; header.stamp must be '
                                 'a finite time')
        if stamp <= 0.0:
            what = 'is 0' if stamp == 0.0 else f'is negative ({stamp!r} s)'
            return ('zero_stamp', f'stamp {what} in {self.topic}: the publisher did not set '
                                  'header.stamp')
        if self.max_future_s is not None and stamp - now > self.max_future_s:
            return ('future_stamp',
                    f'stamp {stamp:.6f} s in {self.topic} is {stamp - now:.6f} s ahead of the '
                    f'local clock ({now:.6f} s), more than max_future_s={self.max_future_s} s; '
                    'synchronize the clocks (chrony/PTP), check use_sim_time, or raise '
                    'max_future_s')
        problem = None
        ahead = self.offset_s - (now - stamp)
        if self._accepted >= self.WARMUP and ahead > self.tolerance_s \
                and not self._in_sequence(stamp):
            if stamp > self._newest and ahead <= self.DRAIN_MAX_AHEAD_S and self._drained():
                return ('resync', None)        # after a backlog: the estimate was its lateness
            if self._ahead_in_sequence(stamp):
                return ('resync', None)        # the stream itself: the estimate was too high
            self._ahead_pending = True
            problem = ('future_stamp',
                       f'stamp {stamp:.6f} s in {self.topic} is {ahead * 1e3:.3f} ms ahead of '
                       'the clock of the other samples of the stream: a sample cannot arrive '
                       'before it was stamped')
        elif stamp < newest:
            problem = ('out_of_order',
                       f'stamp {stamp:.6f} s in {self.topic} is {newest - stamp:.6f} s older '
                       f'than the last accepted sample of the same joints ({newest:.6f} s): '
                       'out of order')
        if problem is None:
            return None
        kind = self._failing_kind
        if self._failing_since is None or kind[0] != problem[0] \
                or abs(kind[1] - (now - stamp)) > self.STEP_CONSISTENCY_S:
            self._failing_since = now          # a new run of failures (or not one clock step)
            self._failing_kind = (problem[0], now - stamp)
        elif now - self._failing_since >= self.resync_s:
            return ('resync', None)            # the clock itself moved: follow it
        return problem

    def _in_sequence(self, stamp, after=None):
        """Whether ``stamp`` continues ``after`` (default: the newest accepted stamp) in rhythm."""
        after = self._newest if after is None else after
        if after is None:
            return False
        jump = stamp - after
        return 0.0 < jump <= max(self.tolerance_s, 2.0 * self._step)

    def _drained(self):
        """Whether the last accepted samples were taken as a backlog (much faster than stamped)."""
        recent = self._recent
        if len(recent) < self.DRAIN_SAMPLES:
            return False
        (stamp0, now0), (stamp1, now1) = recent[0], recent[-1]
        return stamp1 > stamp0 and now1 - now0 < self.DRAIN_RATIO * (stamp1 - stamp0)

    def rejected(self):
        """Note that the sample just checked was refused (for any reason, by any check)."""
        if not self._ahead_pending:
            self._ahead_run = (0, None)      # only samples ahead in sequence make a run
        self._ahead_pending = False

    def _ahead_in_sequence(self, stamp):
        """Count a sample ahead of the estimate; True when it completes an :data:`AHEAD_RUN`."""
        count, last = self._ahead_run
        count = count + 1 if last is not None and self._in_sequence(stamp, last) else 1
        self._ahead_run = (count, stamp)
        return count >= self.AHEAD_RUN

    def accepted(self, stamp, now):
        """Record an accepted sample's stamp (updates the clock estimate)."""
        self._accepted += 1
        newest = self._newest
        if newest is None or stamp > newest:
            if newest is not None:
                step = stamp - newest
                if self._step == 0.0:
                    self._step = step
                else:   # a gap counts as two steps: it must not widen the sequence window
                    self._step += self.STEP_SMOOTHING * (min(step, 2.0 * self._step)
                                                         - self._step)
            self._newest = stamp
        self._failing_since = None
        self._ahead_run = (0, None)
        self._recent.append((stamp, now))
        offset = now - stamp
        if now >= self._bin_end:
            self._bins = [self._bins[1], offset]
            self._bin_end = now + self.window_s
        elif offset < self._bins[1]:
            self._bins[1] = offset

    def resync(self):
        """Follow a stepped clock: forget the old one (the caller forgets its stamps)."""
        resyncs = self.resyncs + 1
        self.reset()
        self.resyncs = resyncs


def count_unreadable(validator, reason):
    """Count a message of ``validator``'s stream that could not even be decoded; return why."""
    return _tally(validator, ('malformed', reason))


def _tally(validator, problem):
    """
    Count a check's outcome on ``validator`` and return its reason (None when accepted).

    ``problem`` is None or ``(cause, reason)``; shared by both validators.
    """
    counts = validator.counters._counts
    if problem is None:
        counts['accepted'] += 1
        validator.last_reason = None
        if validator.rejected_since_accepted:
            validator.rejected_since_accepted = {}
        return None
    if problem is _NOTHING_FOR_THE_TWIN:
        counts['other_joints_only'] += 1
        return SKIPPED
    cause, reason = problem
    validator._gate.rejected()
    counts[cause] += 1
    counts['rejected'] += 1
    validator.last_reason = reason
    run = validator.rejected_since_accepted
    run[cause] = (run.get(cause, (0, ''))[0] + 1, reason)
    return reason


def rejection_run(validator):
    """
    Summarize the rejections of ``validator`` since its last accepted message.

    Returns
    -------
    tuple or None
        ``(count, cause, reason)``: how many messages were rejected since the last accepted
        one (or since the start), the most frequent cause among them (a :data:`CAUSES` key)
        and the latest reason given for that cause; None when none was rejected since.

    """
    run = validator.rejected_since_accepted
    if not run:
        return None
    cause, (_, reason) = max(run.items(), key=lambda item: item[1][0])
    return sum(n for n, _ in run.values()), cause, reason


def _as_floats(values):
    """Return ``values`` as a float array (a float64 array as it is); raise if not numbers."""
    if type(values) is np.ndarray and values.dtype == np.float64:
        return values
    arr = np.asarray(values)
    if arr.dtype.kind not in 'fiu':
        raise TypeError(f'values must be numbers, got {arr.dtype} data')
    return arr.astype(float, copy=False)


class _LayoutBounds:
    """The plausibility bounds of one message layout, in message order."""

    __slots__ = ('sel', 'center', 'half', 'velocity', 'effort', 'all_sel', 'all_center',
                 'all_limit')

    def __init__(self, layout, plausibility):
        self.sel = layout.msg_idx                       # None: every name is a model joint
        idx = layout.model_idx
        lo, hi = plausibility.lower[idx], plausibility.upper[idx]
        self.center = 0.5 * (lo + hi)
        self.half = 0.5 * (hi - lo)
        self.velocity = plausibility.velocity[idx]
        self.effort = plausibility.effort[idx]
        # The same bounds for position, velocity and effort side by side (a message that has
        # all three is checked in one pass): |value - center| <= limit, center 0 for velocity
        # and effort.
        m = len(layout.names)
        self.all_sel = None if self.sel is None else np.concatenate(
            (self.sel, self.sel + m, self.sel + 2 * m))
        self.all_center = np.concatenate((self.center, np.zeros(2 * len(idx))))
        self.all_limit = np.concatenate((self.half, self.velocity, self.effort))


class JointStateValidator:
    """
    Validate joint-state samples against the model's joints, limits and the stream's history.

    Parameters
    ----------
    model_joint_names : sequence of str
        The model's joint names (``RobotModel.joint_names``), ``n`` of them.
    plausibility : Plausibility, optional
        Bounds of a possible sample (model order); None = finiteness only (tests, tools).
    unknown_joints : {'reject', 'ignore'}
        What to do with a message naming a joint the model does not have: reject the message,
        or accept it and let the mapper drop those joints (``JointMapper(ignore_unknown=True)``).
    max_future_s : float or None
        A stamp more than this ahead of ``now`` is rejected, s (>= 0); None disables the check
        (robot clock not synchronized with the local clock).
    stamp_tolerance_s, resync_s : float
        Of the stream's own clock, see :class:`StampGate`, s.
    missing_window_s : float
        :meth:`missing_joints` reports joints that no accepted message carried for longer than
        this, s (> 0).
    topic : str
        Topic name used in reason strings.
    held_joints : iterable of str
        Joints of the robot that the model holds fixed (``locked_joints``). A message may name
        them (they are left out); one that names nothing else, or nothing but joints ignored
        under ``unknown_joints='ignore'`` (a gripper publishing on the same topic), is neither
        accepted nor rejected: :meth:`validate` returns :data:`SKIPPED`.

    Attributes
    ----------
    counters : Counters
        ``accepted``, ``rejected`` (total), one key per cause in :data:`CAUSES`,
        ``ignored_unknown``, ``other_joints_only`` (skipped messages) and ``clock_resync``.
    last_reason : str or None
        Reason of the last rejection (None after an accepted sample).
    rejected_since_accepted : dict
        ``{cause: (count, latest reason)}`` of the rejections since the last accepted sample
        (see :func:`rejection_run`).
    ignored_joints : set of str
        Unknown names dropped so far under ``unknown_joints='ignore'``.

    """

    def __init__(self, model_joint_names, *, plausibility=None, unknown_joints='reject',
                 max_future_s=0.5, stamp_tolerance_s=0.005, resync_s=0.5,
                 missing_window_s=1.0, topic='/joint_states', held_joints=()):
        try:
            self._cache = LayoutCache(model_joint_names, held=held_joints)
        except MappingError as exc:
            raise ValidationConfigError(f'model_joint_names: {exc}') from None
        if unknown_joints not in UNKNOWN_JOINT_POLICIES:
            raise ValidationConfigError(
                f"unknown_joints must be 'reject' or 'ignore', got {unknown_joints!r}")
        self.joint_names = self._cache.joint_names
        n = len(self.joint_names)
        if plausibility is None:                 # finiteness only
            big = np.full(n, np.finfo(float).max / 4)   # finite: 1e308 passes
            plausibility = Plausibility(-big, big, big, big)
        elif any(np.shape(a) != (n,) for a in (plausibility.lower, plausibility.upper,
                                               plausibility.velocity, plausibility.effort)):
            raise ValidationConfigError(f'plausibility bounds must have {n} values, one per '
                                        'model joint')
        self.plausibility = plausibility
        self.missing_window_s = _number(missing_window_s, 'missing_window_s', positive=True)
        self.topic = str(topic)
        self.unknown_joints = unknown_joints
        self._reject_unknown = unknown_joints == 'reject'
        self._gate = StampGate(self.topic, max_future_s, tolerance_s=stamp_tolerance_s,
                               resync_s=resync_s)
        self.max_future_s = self._gate.max_future_s
        self.counters = Counters(('accepted', 'rejected') + CAUSES + (
            'ignored_unknown', 'other_joints_only', 'clock_resync'))
        self._model_desc = format_joint_names(self.joint_names)
        self._bounds = {}
        self.reset()

    @property
    def stamp_step_s(self):
        """Return the robot's sample period as its stamps step (:class:`StampGate`), s."""
        return self._gate.step_s

    def reset(self):
        """Forget the stream history (stamps, clock, last-seen times, counts)."""
        n = len(self.joint_names)
        self._last_stamp = [-math.inf] * n
        self._last_seen = [-math.inf] * n
        self._gate.reset()
        self.counters.reset()
        self.last_reason = None
        self.rejected_since_accepted = {}
        self.ignored_joints = set()

    def validate(self, names, position, velocity, effort, stamp, now, nanosec=0):
        """
        Check one joint-state sample; on acceptance, record its stamp per joint.

        Parameters
        ----------
        names : list of str
            The message's joint names, ``m`` of them, any order, any subset of the model.
        position : (m,) sequence of float
            rad (m for prismatic joints); required.
        velocity : (m,) or (0,) sequence of float
            rad/s; empty means not provided.
        effort : (m,) or (0,) sequence of float
            N·m (N); empty means not provided.
        stamp : float
            Header stamp, s.
        now : float
            Local receive time, s (node clock; sim time under ``use_sim_time``).
        nanosec : int
            The header stamp's ``nanosec`` field as received (checked to be below 1e9; 0 when
            the caller has only ``stamp``).

        Returns
        -------
        str or None
            None if accepted, :data:`SKIPPED` for a message with no joint the twin mirrors,
            else the reason of the rejection.

        """
        try:
            problem = self._check(names, position, velocity, effort, stamp, now, nanosec)
        except Exception as exc:  # noqa: BLE001 - bad data must never crash the node
            problem = ('malformed', f'malformed {self.topic} message ({type(exc).__name__}: '
                                    f'{exc}); names must be strings, values numbers')
        return _tally(self, problem)

    def _check(self, names, position, velocity, effort, stamp, now, nanosec):
        topic = self.topic
        m = len(names)
        if m == 0:
            return ('empty', f'no joint names in {topic}; a JointState must name its joints')
        position, velocity, effort = (_as_floats(position), _as_floats(velocity),
                                      _as_floats(effort))
        if position.ndim != 1 or velocity.ndim != 1 or effort.ndim != 1:
            return ('malformed', f'malformed {topic} message: position, velocity and effort '
                                 'must be sequences of numbers')
        if position.shape != (m,):
            return ('length_mismatch',
                    f'position has {position.size} values for {m} joint names in {topic}; '
                    'position is required, one value per name')
        nv, ne = velocity.size, effort.size
        if nv and velocity.shape != (m,):
            return ('length_mismatch', f'velocity has {nv} values for {m} joint names in '
                                       f'{topic}; give one per name or none')
        if ne and effort.shape != (m,):
            return ('length_mismatch', f'effort has {ne} values for {m} joint names in '
                                       f'{topic}; give one per name or none')
        layout = self._cache.get(names)
        if layout.duplicates:
            return ('duplicate_joint', f'duplicated joint {format_joint_names(layout.duplicates)} '
                                       f'in {topic}; each joint may appear once')
        if layout.unknown and self._reject_unknown:
            return ('unknown_joint',
                    f'unknown joint {format_joint_names(layout.unknown)} in {topic}; model '
                    f'has {self._model_desc} (set unknown_joints: ignore to drop joints the '
                    'model lacks)')
        if not layout.model_idx_list:
            return _NOTHING_FOR_THE_TWIN
        problem = self._values(layout, position, velocity, effort)
        if problem is not None:
            return problem
        idx = layout.model_idx_list
        last = self._last_stamp
        problem = self._gate.check(stamp, now, max([last[i] for i in idx]), nanosec)
        if problem is not None:
            if problem[0] != 'resync':
                return problem
            self._gate.resync()
            self.counters.add('clock_resync')
            last[:] = [-math.inf] * len(last)
        self._gate.accepted(stamp, now)
        seen = self._last_seen
        for i in idx:
            last[i] = stamp
            seen[i] = now
        if layout.unknown:
            self.counters._counts['ignored_unknown'] += 1
            if not self.ignored_joints.issuperset(layout.unknown):
                self.ignored_joints.update(layout.unknown)
        return None

    def _values(self, layout, position, velocity, effort):
        """Check every model joint's values: finite and possible. None or (cause, reason)."""
        bounds = self._bounds.get(layout)
        if bounds is None:
            if len(self._bounds) > 64:
                self._bounds.clear()
            bounds = self._bounds[layout] = _LayoutBounds(layout, self.plausibility)
        # (Python's all() of the list: a NumPy reduction of a few values costs five times more)
        sel = bounds.sel
        if velocity.size and effort.size:        # the usual message: one pass over all three
            values = np.concatenate((position, velocity, effort))
            if sel is not None:
                values = values[bounds.all_sel]
            ok = all((np.abs(values - bounds.all_center) <= bounds.all_limit).tolist())
        else:
            p = position if sel is None else position[sel]
            ok = all((np.abs(p - bounds.center) <= bounds.half).tolist())
            if ok and velocity.size:
                v = velocity if sel is None else velocity[sel]
                ok = all((np.abs(v) <= bounds.velocity).tolist())
            if ok and effort.size:
                e = effort if sel is None else effort[sel]
                ok = all((np.abs(e) <= bounds.effort).tolist())
        return None if ok else self._explain(layout, bounds, position, velocity, effort)

    def _explain(self, layout, bounds, position, velocity, effort):
        """Slow path after a failed check: name the first bad value and why."""
        sel = range(len(layout.names)) if bounds.sel is None else bounds.sel
        names = [layout.names[i] for i in sel]
        arrays = (('position', position), ('velocity', velocity), ('effort', effort))
        for label, values in arrays:
            if values.size:
                for name, v in zip(names, values[list(sel)].tolist()):
                    if not _isfinite(v):
                        return ('nonfinite', f'{label} of {name!r} is {v!r} in {self.topic}; '
                                             'all values must be finite')
        p = position[list(sel)].tolist()
        for k, name in enumerate(names):
            lo, hi = bounds.center[k] - bounds.half[k], bounds.center[k] + bounds.half[k]
            if not lo <= p[k] <= hi:
                return ('beyond_limits',
                        f'position of {name!r} is {p[k]!r} in {self.topic}, outside its possible '
                        f'range [{lo:.4g}, {hi:.4g}] (URDF limits widened by the margin); a '
                        'sensor fault or a wrong URDF')
        for label, values, limit, cause in (
                ('velocity', velocity, bounds.velocity, 'implausible_velocity'),
                ('effort', effort, bounds.effort, 'implausible_effort')):
            if values.size:
                for k, (name, v) in enumerate(zip(names, values[list(sel)].tolist())):
                    if abs(v) > limit[k]:
                        return (cause, f'{label} of {name!r} is {v!r} in {self.topic}, beyond '
                                       f'the possible {limit[k]:.4g} (the URDF limit times the '
                                       'plausibility factor)')
        return None

    def missing_joints(self, now):
        """
        Return the model joints no accepted message carried within ``missing_window_s``.

        Parameters
        ----------
        now : float
            Local time, s.

        Returns
        -------
        list of str
            In model order; includes joints never received.

        """
        limit = now - self.missing_window_s
        return [n for n, t in zip(self.joint_names, self._last_seen) if not t >= limit]

    def never_seen(self):
        """Return the model joints no accepted message has carried yet (model order)."""
        return [n for n, t in zip(self.joint_names, self._last_seen) if t == -math.inf]


class WrenchValidator:
    """
    Validate force-torque samples: 6 finite values within the sensor's range, and the stamps.

    Parameters
    ----------
    max_future_s : float or None
        As for :class:`JointStateValidator`.
    force_range_n, torque_range_nm : float
        Largest accepted ``|force|`` component, N, and ``|torque|`` component, N·m (the
        sensor's measuring range, with its overload margin); inf = no range check.
    stamp_tolerance_s, resync_s : float
        See :class:`StampGate`, s.
    topic : str
        Topic name used in reason strings.
    frame_id : str or None
        The sensor frame (the URDF link ``ft_sensor_link``): a wrench whose ``frame_id`` is
        neither empty (many drivers leave it empty) nor this is refused (``wrong_frame``).
        None = frames not checked.

    Attributes
    ----------
    counters : Counters
        ``accepted``, ``rejected``, one key per cause in :data:`WRENCH_CAUSES` and
        ``clock_resync``.
    last_reason : str or None
    rejected_since_accepted : dict
        As for :class:`JointStateValidator`.

    """

    def __init__(self, *, max_future_s=0.5, force_range_n=math.inf, torque_range_nm=math.inf,
                 stamp_tolerance_s=0.005, resync_s=0.5, topic='/ft_sensor/wrench',
                 frame_id=None):
        self.topic = str(topic)
        self.frame_id = None if frame_id is None else str(frame_id)
        self._gate = StampGate(self.topic, max_future_s, tolerance_s=stamp_tolerance_s,
                               resync_s=resync_s)
        self.max_future_s = self._gate.max_future_s
        ranges = [value if value == math.inf else _number(value, name, positive=True)
                  for value, name in ((force_range_n, 'force_range_n'),
                                      (torque_range_nm, 'torque_range_nm'))]
        self.range = np.array([ranges[0]] * 3 + [ranges[1]] * 3)
        self.counters = Counters(('accepted', 'rejected') + WRENCH_CAUSES + ('clock_resync',))
        self.reset()

    def reset(self):
        """Forget the stream history and counts."""
        self._last_stamp = -math.inf
        self._gate.reset()
        self.counters.reset()
        self.last_reason = None
        self.rejected_since_accepted = {}

    def validate(self, wrench, stamp, now, nanosec=0, frame_id=None):
        """
        Check one wrench sample; on acceptance, record its stamp.

        Parameters
        ----------
        wrench : (6,) sequence of float
            ``[fx, fy, fz, tx, ty, tz]`` in the sensor frame, N and N·m.
        stamp : float
            Header stamp, s.
        now : float
            Local receive time, s.
        nanosec : int
            The header stamp's ``nanosec`` field as received (see
            :meth:`JointStateValidator.validate`).
        frame_id : str or None
            The message's ``header.frame_id``; None when the caller has already found it empty
            or equal to the sensor frame (``robot_twin.nodes.cdr.WrenchReader`` compares the
            bytes), or does not know it.

        Returns
        -------
        str or None
            None if accepted, else the reason of the rejection.

        """
        try:
            problem = self._check(wrench, stamp, now, nanosec, frame_id)
        except Exception as exc:  # noqa: BLE001 - bad data must never crash the node
            problem = ('malformed', f'malformed {self.topic} message ({type(exc).__name__}: '
                                    f'{exc}); a wrench is 6 numbers')
        return _tally(self, problem)

    def _check(self, wrench, stamp, now, nanosec, frame_id):
        if frame_id and self.frame_id is not None and frame_id != self.frame_id \
                and not frame_id.endswith('/' + self.frame_id):     # (a tf prefix is fine)
            return ('wrong_frame', f'wrench frame_id {frame_id!r} in {self.topic} is not the '
                                   f'force-torque sensor frame {self.frame_id!r}: publish the '
                                   'wrench in the sensor frame (or with an empty frame_id), or '
                                   'name its URDF link with ft_sensor_link')
        w = _as_floats(wrench)
        if w.shape != (6,):
            return ('length_mismatch', f'wrench has {w.size} values in {self.topic}; '
                                       'expected 6: fx, fy, fz, tx, ty, tz')
        if not all((np.abs(w) <= self.range).tolist()):     # (see JointStateValidator._values)
            for axis, v, limit in zip(WRENCH_AXES, w.tolist(), self.range.tolist()):
                if not _isfinite(v):
                    return ('nonfinite', f'wrench {axis} is {v!r} in {self.topic}; all values '
                                         'must be finite')
                if abs(v) > limit:
                    unit = 'N' if axis[0] == 'f' else 'N·m'
                    return ('beyond_range', f'wrench {axis} is {v!r} {unit} in {self.topic}, '
                                            f'beyond the sensor range {limit:g} {unit}')
        problem = self._gate.check(stamp, now, self._last_stamp, nanosec)
        if problem is not None:
            if problem[0] != 'resync':
                return problem
            self._gate.resync()
            self.counters.add('clock_resync')
        self._gate.accepted(stamp, now)
        self._last_stamp = stamp
        return None
