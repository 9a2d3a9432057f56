"""
Validation of robot samples (joint states, wrenches) before the twin uses them.

ROS-free. The node converts a message to plain Python (names list, value sequences, header stamp
and receive time as float seconds) and calls :meth:`JointStateValidator.validate` or
:meth:`WrenchValidator.validate`. Both return None for an accepted sample, or a reason string
naming what was wrong; they never raise on bad data (only on bad configuration, with
:class:`ValidationConfigError`). Every rejection is counted by cause in a :class:`Counters`
object whose :meth:`Counters.as_dict` goes into ``/twin/status``.

Rejection causes (the counter keys, besides ``accepted`` and ``rejected``):

``malformed``
    values that are not numbers, names that are not strings, a non-finite local time.
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
``zero_stamp``
    stamp 0 (header never set) or negative.
``future_stamp``
    stamp more than ``max_future_s`` ahead of the local clock.
``out_of_order``
    stamp older than the newest accepted stamp of one of the sample's joints (joints are
    tracked separately, so an arm and a gripper published on separate messages do not reject
    each other).

``ignored_unknown`` counts accepted messages from which unknown joints were dropped (policy
``'ignore'``). A message may carry a subset of the joints; joints that no accepted message
carried within ``missing_window_s`` are reported by :meth:`JointStateValidator.missing_joints`.
"""
import math

from twin_bridge.mapping import format_joint_names, LayoutCache, MappingError

CAUSES = ('malformed', 'empty', 'length_mismatch', 'nonfinite', 'duplicate_joint',
          'unknown_joint', 'zero_stamp', 'future_stamp', 'out_of_order')
WRENCH_CAUSES = ('malformed', 'length_mismatch', 'nonfinite', 'zero_stamp', 'future_stamp',
                 'out_of_order')
UNKNOWN_JOINT_POLICIES = ('reject', 'ignore')

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


def _check_max_future(max_future_s):
    if max_future_s is None:
        return None
    try:
        value = float(max_future_s)
    except (TypeError, ValueError):
        value = math.nan
    if not (_isfinite(value) and value >= 0.0):
        raise ValidationConfigError(
            f'max_future_s must be a finite number >= 0 s (or None to disable the future-stamp '
            f'check), got {max_future_s!r}')
    return value


class _StampGate:
    """Stamp checks shared by the validators: finite, non-zero, not in the future."""

    __slots__ = ('topic', 'max_future_s')

    def __init__(self, topic, max_future_s):
        self.topic = topic
        self.max_future_s = _check_max_future(max_future_s)

    def check(self, stamp, now):
        if not _isfinite(now):
            return ('malformed', f'local time now={now!r} is not finite; the caller must pass '
                                 f'the receive time of the {self.topic} sample in seconds')
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
        return None


def _first_nonfinite(values):
    """Return (index, value) of the first non-finite entry, or None."""
    for i, v in enumerate(values):
        if not _isfinite(v):
            return i, v
    return None


def _tally(validator, problem):
    """
    Count a check's outcome on ``validator`` and return its reason (None when accepted).

    ``problem`` is None or ``(cause, reason)``; shared by both validators.

    """
    counts = validator.counters._counts
    if problem is None:
        counts['accepted'] += 1
        validator.last_reason = None
        return None
    cause, reason = problem
    counts[cause] += 1
    counts['rejected'] += 1
    validator.last_reason = reason
    return reason


class JointStateValidator:
    """
    Validate joint-state samples against the model's joints and the stream's history.

    Parameters
    ----------
    model_joint_names : sequence of str
        The model's joint names (``RobotModel.joint_names``), ``n`` of them.
    unknown_joints : {'reject', 'ignore'}
        What to do with a message naming a joint the model does not have: reject the message,
        or accept it and let the mapper drop those joints (``JointMapper(ignore_unknown=True)``).
    max_future_s : float or None
        A stamp more than this ahead of ``now`` is rejected, s (>= 0); None disables the check
        (robot clock not synchronized with the local clock).
    missing_window_s : float
        :meth:`missing_joints` reports joints that no accepted message carried for longer than
        this, s (> 0).
    topic : str
        Topic name used in reason strings.

    Attributes
    ----------
    counters : Counters
        ``accepted``, ``rejected`` (total), one key per cause in :data:`CAUSES`, and
        ``ignored_unknown``.
    last_reason : str or None
        Reason of the last rejection (None after an accepted sample).
    ignored_joints : set of str
        Unknown names dropped so far under ``unknown_joints='ignore'``.

    """

    def __init__(self, model_joint_names, *, unknown_joints='reject', max_future_s=0.5,
                 missing_window_s=1.0, topic='/joint_states'):
        try:
            self._cache = LayoutCache(model_joint_names)
        except MappingError as exc:
            raise ValidationConfigError(f'model_joint_names: {exc}') from None
        if unknown_joints not in UNKNOWN_JOINT_POLICIES:
            raise ValidationConfigError(
                f"unknown_joints must be 'reject' or 'ignore', got {unknown_joints!r}")
        try:
            window = float(missing_window_s)
        except (TypeError, ValueError):
            window = math.nan
        if not (_isfinite(window) and window > 0.0):
            raise ValidationConfigError(
                f'missing_window_s must be a finite number > 0 s, got {missing_window_s!r}')
        self.joint_names = self._cache.joint_names
        self.topic = str(topic)
        self.unknown_joints = unknown_joints
        self._reject_unknown = unknown_joints == 'reject'
        self.missing_window_s = window
        self._gate = _StampGate(self.topic, max_future_s)
        self.max_future_s = self._gate.max_future_s
        self.counters = Counters(('accepted', 'rejected') + CAUSES + ('ignored_unknown',))
        self._model_desc = format_joint_names(self.joint_names)
        self.reset()

    def reset(self):
        """Forget the stream history (stamps, last-seen times, counts), e.g. on /twin/reset."""
        n = len(self.joint_names)
        self._last_stamp = [-math.inf] * n
        self._last_seen = [-math.inf] * n
        self.counters.reset()
        self.last_reason = None
        self.ignored_joints = set()

    def validate(self, names, position, velocity, effort, stamp, now):
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

        Returns
        -------
        str or None
            None if accepted, else the reason of the rejection.

        """
        try:
            problem = self._check(names, position, velocity, effort, stamp, now)
        except Exception as exc:  # noqa: BLE001 - bad data must never crash the node
            problem = ('malformed', f'malformed {self.topic} message ({type(exc).__name__}: '
                                    f'{exc}); names must be strings, values numbers')
        return _tally(self, problem)

    def _check(self, names, position, velocity, effort, stamp, now):
        topic = self.topic
        problem = self._gate.check(stamp, now)
        if problem is not None:
            return problem
        m = len(names)
        if m == 0:
            return ('empty', f'no joint names in {topic}; a JointState must name its joints')
        if len(position) != m:
            return ('length_mismatch',
                    f'position has {len(position)} values for {m} joint names in {topic}; '
                    'position is required, one value per name')
        nv = len(velocity)
        ne = len(effort)
        if nv and nv != m:
            return ('length_mismatch', f'velocity has {nv} values for {m} joint names in '
                                       f'{topic}; give one per name or none')
        if ne and ne != m:
            return ('length_mismatch', f'effort has {ne} values for {m} joint names in '
                                       f'{topic}; give one per name or none')
        layout = self._cache.get(names)
        if layout.duplicates:
            return ('duplicate_joint', f'duplicated joint {format_joint_names(layout.duplicates)} '
                                       f'in {topic}; each joint may appear once')
        if layout.unknown:
            if self._reject_unknown or not layout.model_idx_list:
                return ('unknown_joint',
                        f'unknown joint {format_joint_names(layout.unknown)} in {topic}; model '
                        f'has {self._model_desc}' + (
                            ' (set unknown_joints: ignore to drop joints the model lacks)'
                            if self._reject_unknown else ''))
        if not (_isfinite(sum(position)) and (not nv or _isfinite(sum(velocity)))
                and (not ne or _isfinite(sum(effort)))):
            problem = self._nonfinite(layout, position, velocity, effort)
            if problem is not None:
                return problem
        idx = layout.model_idx_list
        last = self._last_stamp
        newest = max([last[i] for i in idx])
        if stamp < newest:
            return ('out_of_order',
                    f'stamp {stamp:.6f} s in {topic} is {newest - stamp:.6f} s older than the '
                    f'last accepted sample of the same joints ({newest:.6f} s): out of order')
        seen = self._last_seen
        for i in idx:
            last[i] = stamp
            seen[i] = now
        if layout.unknown:
            self.counters._counts['ignored_unknown'] += 1
            if not self.ignored_joints.issuperset(layout.unknown):
                self.ignored_joints.update(layout.unknown)
        return None

    def _nonfinite(self, layout, position, velocity, effort):
        """Slow path after a non-finite sum: find the bad value (None if the sum overflowed)."""
        ignored = set(layout.unknown)
        for label, values in (('position', position), ('velocity', velocity),
                              ('effort', effort)):
            for i, v in enumerate(values):
                if not _isfinite(v) and layout.names[i] not in ignored:
                    return ('nonfinite', f'{label} of {layout.names[i]!r} is {v!r} in '
                                         f'{self.topic}; all values must be finite')
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
    Validate force-torque samples: 6 finite values and the stamp checks.

    Parameters
    ----------
    max_future_s : float or None
        As for :class:`JointStateValidator`.
    topic : str
        Topic name used in reason strings.

    Attributes
    ----------
    counters : Counters
        ``accepted``, ``rejected`` and one key per cause in :data:`WRENCH_CAUSES`.
    last_reason : str or None

    """

    def __init__(self, *, max_future_s=0.5, topic='/ft_sensor/wrench'):
        self.topic = str(topic)
        self._gate = _StampGate(self.topic, max_future_s)
        self.max_future_s = self._gate.max_future_s
        self.counters = Counters(('accepted', 'rejected') + WRENCH_CAUSES)
        self.reset()

    def reset(self):
        """Forget the stream history and counts."""
        self._last_stamp = -math.inf
        self.counters.reset()
        self.last_reason = None

    def validate(self, wrench, stamp, now):
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

        Returns
        -------
        str or None
            None if accepted, else the reason of the rejection.

        """
        try:
            problem = self._check(wrench, stamp, now)
        except Exception as exc:  # noqa: BLE001 - bad data must never crash the node
            problem = ('malformed', f'malformed {self.topic} message ({type(exc).__name__}: '
                                    f'{exc}); a wrench is 6 numbers')
        return _tally(self, problem)

    def _check(self, wrench, stamp, now):
        problem = self._gate.check(stamp, now)
        if problem is not None:
            return problem
        if len(wrench) != 6:
            return ('length_mismatch', f'wrench has {len(wrench)} values in {self.topic}; '
                                       'expected 6: fx, fy, fz, tx, ty, tz')
        if not _isfinite(sum(wrench)):
            bad = _first_nonfinite(wrench)
            if bad is not None:
                axis = ('fx', 'fy', 'fz', 'tx', 'ty', 'tz')[bad[0]]
                return ('nonfinite', f'wrench {axis} is {bad[1]!r} in {self.topic}; all '
                                     'values must be finite')
        if stamp < self._last_stamp:
            return ('out_of_order',
                    f'stamp {stamp:.6f} s in {self.topic} is {self._last_stamp - stamp:.6f} s '
                    f'older than the last accepted sample ({self._last_stamp:.6f} s): out of '
                    'order')
        self._last_stamp = stamp
        return None
