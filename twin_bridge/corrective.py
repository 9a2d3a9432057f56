"""
Corrective-action policy: which command the twin proposes when it detects a fault.

ROS-free. The bridge node feeds it the robot-level anomaly report and the latest mirrored state;
whatever it proposes still goes through :class:`twin_bridge.governor.SafetyGovernor` before it
reaches the robot, and is written to the audit log with the anomaly that caused it.

On a new anomaly episode at level ERROR a policy proposes one command:

- ``hold``: a controlled stop, the conservative action a person at the robot would take
  first: a one-point trajectory with zero final velocity. An arm at rest stays where it is
  (reached over ``hold_time_s``). A moving arm decelerates evenly from its measured velocity
  ``v`` to rest: the target is ``q + v T / 2`` and the cubic the robot's controller runs through
  it from ``(q, v)`` slows linearly, never reversing (a target at ``q`` itself would make the
  arm overshoot it and come back, with four times the deceleration). ``T`` is ``hold_time_s``,
  shortened where a joint would not stop inside its governed range (``T = 2 room / |v|``, at
  least :data:`HOLD_MIN_S`); with acceleration limits ``a`` it is lengthened to at least
  ``|v| / a`` for every joint, but never beyond the range's ``T``: where stopping inside the
  range needs more than ``a``, the range wins (the governor counts it). The governor checks
  the result as any command: only a joint that cannot stop inside its range within its own
  ``a`` may decelerate harder (``v^2 / (2 room)``, over its own stop), so a one-point
  hold in which one joint must stop sooner than another joint's limit allows it to is
  refused (one point cannot stop joints on different time scales). There the proposal also
  carries a multi-point hold (:attr:`CorrectiveProposal.points`, sent by
  :meth:`CorrectiveProposal.trajectory_points`): each joint decelerates evenly over its own
  ``T_j`` (``|v| / a`` or more, the range's ``2 room / |v|`` or less; a joint the range
  forces harder stops over exactly the range's time, whichever point that is), with points at
  the distinct ``T_j``, each giving every joint's position and velocity on its own stop; the
  cubic segments between them are each joint's quadratic, which the governor allows
  unchanged. Where one point serves, nothing changes;
- ``home``: move to a configured safe pose (``home_position``) in ``hold_time_s``; a pose
  beyond the limits or a move too fast for the velocity limits is the governor's to clamp and
  slow down, as for any command.

On interfaces that take one target at a time, :class:`SetpointStream` plays the governed
trajectory as set-points, and checks each one before it goes out (see the class).
"""
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from twin_bridge.governor import stop_bounds

POLICIES = ('hold', 'home')
HOLD_MIN_S = 0.02
"""The shortest stop a hold asks for, s (a joint too close to its limit for any even stop)."""
HOLD_MERGE_S = 0.005
"""Stop times of a multi-point hold closer than this merge into one point, s (where allowed)."""
STREAM_STOP_CAUSES = ('stale', 'clock_back', 'clock_jump', 'too_fast')
"""Why a set-point stream stops before its end (``stale``: the node's state interlock)."""
CLOCK_LEAD_S = 0.02
"""How far the system clock may run ahead of the monotonic clock between two set-points, s.

Beyond it the clock jumped forward and the stream stops. The two clocks run at the same rate
(NTP slews by 0.05 % at most) and are read together, so only a step of the clock gets there."""
SIM_CLOCK_LEAD_S = 0.1
"""The same under ``use_sim_time`` (or one stream period, if longer), s.

The simulation clock arrives in /clock messages, at times late by the transport (the clock
then catches up at once), and may run faster than real time: the stream timer runs on that
clock, so it then runs ahead by less than one stream period per set-point."""
_TIME_ROUNDING_S = 1e-6
"""Set-point times are float seconds since the epoch (~0.24 us apart there): allowed in steps."""


@dataclass
class AnomalyEvent:
    """What the bridge knows of the anomaly that triggers an action."""

    level: str            # 'OK' | 'WARN' | 'ERROR'
    joint: str            # faulty joint name, '' when not localized
    fault_type: str       # detector's fault type
    score: float
    since: float          # stamp of the alarm onset, s


@dataclass
class CorrectiveProposal:
    """A command the policy asks for (before the governor)."""

    kind: str                   # 'trajectory'
    positions: np.ndarray       # (n,) rad, model joint order
    time_from_start_s: float
    reason: str
    anomaly: AnomalyEvent
    velocities: np.ndarray = field(default=None)
    points: tuple = field(default=None)
    """A multi-point hold's ``(time_from_start_s, positions, velocities)`` points (None: one).

    Only where one common stop time cannot meet every joint's acceleration limit and range;
    ``positions`` and ``time_from_start_s`` are then the one-point hold that would have been
    proposed (which the governor refuses)."""

    def trajectory_points(self):
        """Return the proposal's ``(time_from_start_s, positions, velocities)`` points."""
        if self.points is not None:
            return list(self.points)
        return [(self.time_from_start_s, self.positions, self.velocities)]


class CorrectivePolicy:
    """
    Turn anomaly episodes into at most one sent command each.

    An episode begins when the robot-level anomaly reaches ``trigger_level`` and ends when it
    is back to OK; which joint tops the score inside it does not matter. If the governor refused
    the episode's command for a passing reason (stale state, rate limit), call
    :meth:`refused`: the policy proposes again after ``retry_s``, so a refusal is neither lost
    nor repeated at the anomaly topic's rate.

    Parameters
    ----------
    policy : str
        One of :data:`POLICIES`.
    hold_time_s : float
        Time over which the hold trajectory settles, s (> 0).
    trigger_level : str
        'WARN' or 'ERROR': the lowest anomaly level that acts.
    retry_s : float
        Wait after a refused proposal before proposing again in the same episode, s (> 0).

    """

    def __init__(self, policy='hold', hold_time_s=0.5, trigger_level='ERROR', retry_s=1.0,
                 home_position=None):
        if policy not in POLICIES:
            raise ValueError(
                f'corrective_actions.policy must be one of {POLICIES}, got {policy!r}')
        home = None if home_position is None or not len(home_position) else np.asarray(
            home_position, dtype=float)
        if policy == 'home' and (home is None or home.ndim != 1
                                 or not np.isfinite(home).all()):
            raise ValueError('corrective_actions.home_position must give one finite position '
                             f'per joint for the home policy, got {home_position!r}')
        self.home_position = home
        if not hold_time_s > 0.0:
            raise ValueError(f'corrective_actions.hold_time_s must be > 0, got {hold_time_s}')
        if trigger_level not in ('WARN', 'ERROR'):
            raise ValueError(
                'corrective_actions.trigger_level must be WARN or ERROR, '
                f'got {trigger_level!r}')
        if not retry_s > 0.0:
            raise ValueError(f'corrective_actions.retry_s must be > 0, got {retry_s}')
        self.policy = policy
        self.hold_time_s = float(hold_time_s)
        self.retry_s = float(retry_s)
        self._trigger_rank = 1 if trigger_level == 'WARN' else 2
        self._in_episode = False
        self._retry_at = None    # when a refused episode may propose again, s

    def propose(self, event, q_measured, now=0.0, v_measured=None, position_range=None,
                acceleration_limit=None):
        """
        Return a :class:`CorrectiveProposal` for a new episode (or a due retry), else None.

        A joint without a measured position (NaN) does not stop the proposal: the governor
        refuses it for want of state (cause ``no_state``, audited and retried), so an
        anomaly never goes without a trace.

        Parameters
        ----------
        event : AnomalyEvent
            The anomaly to respond to.
        q_measured : (n,) array, rad
            Latest mirrored joint positions in model order.
        now : float
            Local time, s (only needed for retries after :meth:`refused`).
        v_measured : (n,) array or None, rad/s
            Latest mirrored joint velocities (None or NaN: at rest): where a hold's stop
            starts (the governor refuses the hold, cause ``no_state``, where such a joint has an
            acceleration limit).
        position_range : tuple of (n,) arrays or None
            ``(lo, hi)``, the governed position range (a hold stops inside it).
        acceleration_limit : (n,) array or None
            Acceleration limits, rad/s² (inf or None: none): a hold decelerates within them
            where the range allows.

        """
        rank = {'OK': 0, 'WARN': 1, 'ERROR': 2}.get(event.level, 0)
        if rank < self._trigger_rank:
            if rank == 0:
                self._in_episode, self._retry_at = False, None   # episode over
            return None
        if self._in_episode and (self._retry_at is None or now < self._retry_at):
            return None
        q = np.asarray(q_measured, dtype=float)
        if q.ndim != 1:
            return None
        if self.policy == 'home' and self.home_position.shape != q.shape:
            return None                # a mis-sized pose never becomes a command
        self._in_episode, self._retry_at = True, None
        where = f' on {event.joint}' if event.joint else ''
        points = None
        if self.policy == 'hold':
            target, duration, what = self._stop(q, v_measured, position_range,
                                                acceleration_limit)
            points = self._staggered_stop(q, v_measured, position_range, acceleration_limit,
                                          duration)
            if points is not None:
                what = (f'stop: each joint decelerates evenly to rest over its own time, '
                        f'{points[0][0]:.3g} to {points[-1][0]:.3g} s (one common time '
                        'cannot meet every acceleration limit inside the range)')
        else:
            target, duration, what = self.home_position.copy(), self.hold_time_s, \
                'move to the home pose'
        return CorrectiveProposal(
            kind='trajectory', positions=target, velocities=np.zeros_like(q),
            time_from_start_s=duration, anomaly=event, points=points,
            reason=f'{what}: {event.level} anomaly{where} ({event.fault_type}, '
                   f'score {event.score:.3g}) since t={event.since:.3f}')

    def _stop(self, q, v_measured, position_range, acceleration_limit=None):
        """Return the target, duration and description of a hold (see the module)."""
        v = np.zeros_like(q)
        if v_measured is not None:
            given = np.asarray(v_measured, dtype=float)
            if given.shape == q.shape:
                v = np.where(np.isfinite(given), given, 0.0)
        if not v.any():
            return q.copy(), self.hold_time_s, 'hold position'
        duration = self.hold_time_s
        fit = np.inf
        if position_range is not None:
            lo, hi = (np.asarray(x, dtype=float) for x in position_range)
            room = np.maximum(np.where(v > 0.0, hi - q, q - lo), 0.0)
            with np.errstate(divide='ignore', invalid='ignore'):
                fit = np.where(v != 0.0, 2.0 * room / np.abs(v), np.inf)
            fit = np.where(np.isnan(fit), np.inf, fit)      # no measured position: no say
            duration = max(min(duration, float(fit.min())), HOLD_MIN_S)
        if acceleration_limit is not None:
            amax = np.asarray(acceleration_limit, dtype=float)
            if amax.shape == q.shape and np.isfinite(amax).any():
                with np.errstate(divide='ignore', invalid='ignore'):
                    wait = np.where(np.isfinite(amax) & (amax > 0.0), np.abs(v) / amax, 0.0)
                # a hair longer than |v| / a, so that float rounding does not ask for more
                slowest = float(wait.max()) * (1.0 + 1e-9)
                if slowest > duration:
                    # never longer than the range allows: the range wins over the limits
                    duration = max(min(slowest, float(np.min(fit))), duration)
        target = q + 0.5 * duration * v
        if position_range is not None:
            target = np.clip(target, lo, hi)
        return target, duration, (f'stop: decelerate evenly to rest over {duration:.3g} s '
                                  f'(from up to {float(np.abs(v).max()):.3g} rad/s)')

    def _staggered_stop(self, q, v_measured, position_range, acceleration_limit, duration):
        """
        Return a multi-point hold's points where the one-point hold over ``duration`` fails.

        None where the one-point hold meets every joint's bound (or no acceleration limit is
        given). Each moving joint ``j`` stops evenly over its own ``T_j``: at least
        ``|v| / a`` (a hair more), at most the range's ``2 room / |v|``; a joint whose range
        needs more than ``a`` (the governor's raised bound, which holds over the joint's own
        stop) over exactly the range's time. Points at the distinct ``T_j``
        (within :data:`HOLD_MERGE_S` merged where every joint of the group allows one time),
        each with every joint's position and velocity on its own even stop: the cubic segments
        between them are each joint's own quadratic. None where no such plan exists.
        """
        if acceleration_limit is None or position_range is None or v_measured is None:
            return None
        amax = np.asarray(acceleration_limit, dtype=float)
        given = np.asarray(v_measured, dtype=float)
        if amax.shape != q.shape or given.shape != q.shape or not np.isfinite(amax).any():
            return None
        v = np.where(np.isfinite(given), given, 0.0)
        lo, hi = (np.asarray(x, dtype=float) for x in position_range)
        if not np.isfinite(q).all():
            return None
        speed = np.abs(v)
        limited = np.isfinite(amax) & (amax > 0.0)
        # the governor's bound per joint: its limit, or the least that stops it in range
        bound, raised, _room = stop_bounds(q, v, amax, lo, hi)
        with np.errstate(divide='ignore', invalid='ignore'):
            if ((speed / duration <= bound * (1.0 + 1e-9)) | (speed == 0.0)).all():
                return None                 # the one-point hold already works
            fit = np.where(speed > 0.0, 2.0 * np.maximum(np.where(v > 0.0, hi - q, q - lo),
                                                         0.0) / speed, np.inf)
            wait = np.where(limited, speed / amax * (1.0 + 1e-9), 0.0)
        moving = speed > 0.0
        # each joint's allowed stop times [early, late]; a raised joint: exactly its range's
        early = np.where(raised, fit, wait)
        late = fit
        if (early > late * (1.0 + 1e-12))[moving & ~raised].any() or \
                (fit < HOLD_MIN_S)[moving].any():
            return None
        want = np.clip(duration, early, late)
        order = [j for j in np.argsort(want, kind='stable') if moving[j]]
        groups = []                         # [time, early, late, joints]
        for j in order:
            if groups:
                t, e, l_, members = groups[-1]
                e2, l2 = max(e, early[j]), min(l_, late[j])
                if want[j] - t < HOLD_MERGE_S and e2 <= l2:
                    groups[-1] = [min(max(t, e2), l2), e2, l2, members + [j]]
                    continue
            groups.append([float(want[j]), float(early[j]), float(late[j]), [j]])
        times = np.array([g[0] for g in groups])
        if len(times) < 2 or (np.diff(times) <= 0.0).any():
            return None
        stop = np.zeros_like(q)
        for t, _e, _l, members in groups:
            stop[members] = t
        points = []
        for t in times:
            run = np.minimum(t, stop)
            with np.errstate(divide='ignore', invalid='ignore'):
                pos = np.where(moving, q + v * run - v * run * run / (2.0 * stop), q)
                vel = np.where(moving & (t < stop), v * (1.0 - t / stop), 0.0)
            points.append((float(t), np.clip(pos, lo, hi), vel))
        return tuple(points)

    def refused(self, now):
        """Note that this episode's proposal was refused at ``now`` (s): retry after retry_s."""
        self._retry_at = float(now) + self.retry_s


class Setpoint(NamedTuple):
    """One step of a :class:`SetpointStream` (:meth:`SetpointStream.step`)."""

    positions: Any          # (m,) rad to send; None: send nothing
    velocities: Any         # (m,) rad/s (zero for a hold)
    done: bool              # the stream is over (ended, or stopped)
    stop: Any = None        # None, or why it stopped early (one of STREAM_STOP_CAUSES)
    reason: str = ''        # the stop, in words


class SentSetpoint(NamedTuple):
    """The last set-point of a stream: what the next one is checked against."""

    positions: Any          # (m,) rad
    now: float              # local time it was sent at, s
    wall: Any               # monotonic time read just before `now`, s (None: unknown)
    sent: bool              # False: the stream's start (measured), not sent


class SetpointStream:
    """
    A governed trajectory played as set-points over time, for interfaces without trajectories.

    A forward position controller (Float64MultiArray) and the ``/joint_command`` interface
    (JointState) take one target at a time. Sending them only a trajectory's last point would
    throw away the governor's time-stretching: the robot's own controller would rush to it. So
    the approved trajectory is streamed instead, as a trajectory controller would run it: from
    the measured position (and velocity) at the start through every approved point, in cubic
    Hermite segments when the points give velocities (the splines the governor checked: a
    moving arm decelerates from its own speed, no instant stop), else in straight lines; each
    set-point clipped into the governed position range (widened to the start position, where
    an arm measured inside the margin starts).

    The trajectory's times are on the local clock (the node's: sim time under
    ``use_sim_time``). Before a set-point goes out, :meth:`step` checks it against the one
    sent before it, so that no set-point moves a joint faster than approved whatever that
    clock does. The stream stops, holding the last set-point sent (zero velocity), when

    - the local clock stepped back since the last set-point (``clock_back``): the trajectory's
      time would run backwards, pulling the arm back towards the start;
    - the local clock ran ahead of the monotonic clock by more than ``clock_lead_s`` since the
      last set-point (``clock_jump``): the rest of the move would be sent at once. The
      monotonic clock is read just before and just after the local clock, and the longest
      time that may have passed between two readings is taken, so a thread paused between
      the readings is no jump;
    - a set-point would move a joint farther from the last one than its velocity limit times
      the local time between them (``too_fast``), the limit being ``velocity_limit``, or the
      joint's speed at the start where that is higher (the governor lets a robot already
      faster than the limit keep its speed at the start of a move).

    Together: a joint's set-points never move by more than its limit times the local time
    between them, nor times the monotonic time plus ``clock_lead_s``.

    Parameters
    ----------
    command : twin_bridge.governor.TrajectoryCommand
        The governor's output (allowed decision's ``command``).
    start : (m,) array
        Measured positions of ``command.joints`` when it was approved, rad.
    t0 : float
        Local time at which it was approved, s.
    position_range : tuple of (m,) arrays
        ``(lo, hi)`` governed range, rad (:meth:`SafetyGovernor.position_range`).
    start_velocity : (m,) array or None
        Measured velocities at the start, rad/s (None or NaN: at rest); used when the points
        give velocities, as the governor did.
    velocity_limit : (m,) array or None
        The velocity limits the governor approved the command with, rad/s
        (:meth:`SafetyGovernor.velocity_limit`); None: set-point steps are not checked.
    wall : float or None
        Monotonic time at ``t0``, s (``time.monotonic()`` read just before the local clock);
        None: the local clock is not checked against the monotonic clock.
    previous : SentSetpoint or None
        The last set-point sent before this stream (:attr:`last` of the stream it replaces):
        the first set-point is checked against it. None: against ``start``, which was not sent.
    clock_lead_s : float
        :data:`CLOCK_LEAD_S`, or on sim time the larger of :data:`SIM_CLOCK_LEAD_S` and the
        stream period.

    Attributes
    ----------
    last : SentSetpoint
        The last set-point sent (before the first one: the start, marked not sent).
    stopped : str or None
        Why the stream stopped early (one of :data:`STREAM_STOP_CAUSES`), once it has.

    """

    def __init__(self, command, start, t0, position_range, start_velocity=None, *,
                 velocity_limit=None, wall=None, previous=None, clock_lead_s=CLOCK_LEAD_S):
        self.joints = tuple(command.joints)
        self.t0 = float(t0)
        m = len(self.joints)
        times = [0.0] + [float(p.time_from_start) for p in command.points]
        points = [np.asarray(start, dtype=float)] + [np.asarray(p.positions, dtype=float)
                                                     for p in command.points]
        cubic = all(p.velocities is not None for p in command.points)
        v0 = np.zeros(m) if start_velocity is None else np.nan_to_num(
            np.asarray(start_velocity, dtype=float), nan=0.0, posinf=0.0, neginf=0.0)
        velocities = [v0] + [np.asarray(p.velocities, dtype=float) if cubic else np.zeros(m)
                             for p in command.points]
        keep = [0] + [k for k in range(1, len(times)) if times[k] > times[k - 1]]
        self._times = np.array([times[k] for k in keep])
        self._points = np.array([points[k] for k in keep])
        self._velocities = np.array([velocities[k] for k in keep])
        self._cubic = cubic
        # an arm measured inside the margin starts there (the governor allows it, and checks
        # that the move does not go farther out): set-points are not clipped away from it
        self._lo = np.minimum(position_range[0], self._points[0])
        self._hi = np.maximum(position_range[1], self._points[0])
        self.duration_s = float(self._times[-1])
        self._bound = None if velocity_limit is None else np.maximum(
            np.asarray(velocity_limit, dtype=float), np.abs(v0))
        self.clock_lead_s = float(clock_lead_s)
        self.last = previous if previous is not None else SentSetpoint(
            self._points[0].copy(), self.t0, None if wall is None else float(wall), False)
        self.stopped = None

    def step(self, now, wall=None, wall_before=None):
        """
        Return the :class:`Setpoint` to send at local time ``now``, s.

        Checked against the last set-point sent (see the class); once the stream stopped or
        ended, ``done`` is True and the node drops it. ``wall`` and ``wall_before`` are the
        monotonic clock read just after and just before ``now`` (``wall_before`` defaults to
        ``wall``; both None: no check against the monotonic clock).
        """
        now = float(now)
        last = self.last
        if self.stopped is not None:
            return Setpoint(None, np.zeros(len(self.joints)), True, self.stopped,
                            'the stream has stopped')
        problem = self.clock_problem(now, wall)
        if problem is not None:
            return self.stop(*problem)
        dt = now - last.now
        q, v, done = self.setpoint(now)
        if self._bound is not None:
            moved = np.abs(q - last.positions)
            allowed = self._bound * (dt + _TIME_ROUNDING_S) + 1e-9
            over = ~(moved <= allowed)
            if over.any():
                j = int(np.argmax(over))
                return self.stop('too_fast', (
                    f'the next set-point would move {self.joints[j]!r} {moved[j]:.6g} in '
                    f'{dt:.6g} s, faster than its limit {self._bound[j]:.6g}/s'))
        before = wall if wall_before is None else wall_before
        self.last = SentSetpoint(q, now, None if before is None else float(before), True)
        return Setpoint(q, v, done)

    def clock_problem(self, now, wall=None):
        """
        Return ``(cause, reason)`` if the local clock stepped back or jumped forward, else None.

        Since the last set-point sent, at local time ``now`` (s) and monotonic time ``wall``
        (read just after ``now``; None: no check against it). See :meth:`step`.
        """
        last = self.last
        dt = float(now) - last.now
        if dt < 0.0:
            return 'clock_back', f'the local clock stepped back {-dt:.6g} s'
        if wall is not None and last.wall is not None:
            ran = float(wall) - last.wall      # the most that may have passed
            if dt - ran > self.clock_lead_s:
                return 'clock_jump', (f'the local clock jumped forward: it ran {dt:.6g} s in '
                                      f'{ran:.6g} s of monotonic time')
        return None

    def stop(self, cause, reason):
        """
        Stop the stream for ``cause`` (see :data:`STREAM_STOP_CAUSES`), said in ``reason``.

        Returns the :class:`Setpoint` to send: the last one sent, with zero velocity (a hold),
        or positions None if none was sent (the start is the measured state: holding it would
        pull a moving arm back).
        """
        self.stopped = cause
        hold = self.last.positions if self.last.sent else None
        return Setpoint(hold, np.zeros(len(self.joints)), True, cause, reason)

    def setpoint(self, now):
        """
        Return ``(positions (m,), velocities (m,), done)`` at local time ``now``, s, unchecked.

        The trajectory at that time (:meth:`step` is what the node sends). Velocities are the
        derivative of the current segment (zero once the trajectory ended); ``done`` is True
        from the end of the trajectory on (the last set-point holds).
        """
        t = float(now) - self.t0
        times, points = self._times, self._points
        if t >= self.duration_s or len(times) == 1:
            return np.clip(points[-1], self._lo, self._hi), np.zeros(points.shape[1]), True
        k = max(1, int(np.searchsorted(times, max(t, 0.0), side='right')))
        span = times[k] - times[k - 1]
        p0, p1 = points[k - 1], points[k]
        if not self._cubic:
            velocity = (p1 - p0) / span
            q = p0 + velocity * (max(t, 0.0) - times[k - 1])
            return np.clip(q, self._lo, self._hi), velocity, False
        # cubic Hermite from (p0, v0) to (p1, v1) over span, at s in [0, 1]
        v0, v1 = self._velocities[k - 1] * span, self._velocities[k] * span
        s = (max(t, 0.0) - times[k - 1]) / span
        s2, s3 = s * s, s * s * s
        q = (2 * s3 - 3 * s2 + 1) * p0 + (s3 - 2 * s2 + s) * v0 + (-2 * s3 + 3 * s2) * p1 \
            + (s3 - s2) * v1
        velocity = ((6 * s2 - 6 * s) * (p0 - p1) + (3 * s2 - 4 * s + 1) * v0
                    + (3 * s2 - 2 * s) * v1) / span
        return np.clip(q, self._lo, self._hi), velocity, False
