"""
Staleness watchdog: whether each input stream (joint states, wrench, ...) is still fresh.

ROS-free and clock-free: every time is an argument (node clock, sim time under
``use_sim_time``), so it behaves the same live, in tests and on a replayed bag.

A stream is ``NEVER`` until its first sample, then ``STALE`` when its last sample is older than
``stale_timeout_s``: either no sample arrived for that long (``now - receive_time``), or, when
stamps are given, the newest sample's stamp is that old (``now - stamp``: it arrives but late).
Stamps are compared with the local clock as they are; pass them through
:meth:`twin_bridge.timesync.TimeSync.to_local` first if the robot's clock is not synchronized.
A stream whose samples keep arriving in time but whose stamps are all older than the timeout by
a steady lag (a robot clock behind the local one, or sim-time stamps without ``use_sim_time``)
stays ``STALE`` (the age of its state cannot be known, so nothing may act on it), and
:meth:`StalenessWatchdog.stamp_lag` says by how much the stamps lag, so the cause can be named.
Every state change is recorded with the time it happened (the moment the timeout expired, not
the moment :meth:`StalenessWatchdog.check` noticed), including a stale gap that began and ended
between two checks.
"""
from collections import deque
from dataclasses import dataclass
import math

OK = 'OK'
STALE = 'STALE'
NEVER = 'NEVER'


class WatchdogConfigError(ValueError):
    """Bad watchdog parameter (the message names it)."""


@dataclass(frozen=True)
class Transition:
    """
    One change of a stream's state.

    Attributes
    ----------
    stream : str
    time : float
        When the new state began, s (local clock).
    old : str
    new : str
        ``OK``, ``STALE`` or ``NEVER``.

    """

    stream: str
    time: float
    old: str
    new: str


def _timeout(value, name):
    try:
        out = float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not (math.isfinite(out) and out > 0.0):
        raise WatchdogConfigError(f'{name} must be a finite number > 0 s, got {value!r}')
    return out


LAG_WINDOW_S = 1.0
"""The steady lag of a stream's stamps is the smallest ``receive_time - stamp`` over the last
one to two of these spans, s: a few samples delayed on the way do not count as a clock
offset, and a clock that was corrected stops counting within two spans."""


class _Stream:
    __slots__ = ('timeout', 'last_receive', 'last_stamp', 'state', 'since', 'lag_start',
                 'lag_min', 'lag_min_before')

    def __init__(self, timeout):
        self.timeout = timeout
        self.last_receive = -math.inf
        self.last_stamp = -math.inf
        self.state = NEVER
        self.since = None
        self.lag_start = -math.inf    # start of the current lag span (receive time, s)
        self.lag_min = math.inf       # smallest receive_time - stamp in the current span, s
        self.lag_min_before = math.inf    # ... in the span before it


class StalenessWatchdog:
    """
    Per-stream freshness with recorded transitions.

    Parameters
    ----------
    stale_timeout_s : float
        Default timeout for every stream, s (> 0).
    streams : iterable of str
        Streams known from the start (reported ``NEVER`` until their first sample); others are
        added by their first :meth:`observe` or by :meth:`add_stream`.
    max_transitions : int
        How many transitions :attr:`transitions` keeps (oldest dropped first).

    Attributes
    ----------
    transitions : collections.deque of Transition
        Most recent state changes, oldest first.

    """

    def __init__(self, stale_timeout_s=0.1, streams=(), *, max_transitions=256):
        self.stale_timeout_s = _timeout(stale_timeout_s, 'stale_timeout_s')
        if int(max_transitions) < 1:
            raise WatchdogConfigError(f'max_transitions must be >= 1, got {max_transitions!r}')
        self.transitions = deque(maxlen=int(max_transitions))
        self._streams = {}
        for name in streams:
            self.add_stream(name)

    def add_stream(self, stream, stale_timeout_s=None):
        """Declare a stream (state ``NEVER``), optionally with its own timeout, s (> 0)."""
        timeout = (self.stale_timeout_s if stale_timeout_s is None
                   else _timeout(stale_timeout_s, f'stale_timeout_s of {stream!r}'))
        if stream in self._streams:
            self._streams[stream].timeout = timeout
        else:
            self._streams[stream] = _Stream(timeout)

    @property
    def streams(self):
        """Names of the streams watched (list of str)."""
        return list(self._streams)

    def observe(self, stream, receive_time, stamp=None):
        """
        Record one accepted sample of ``stream``.

        Parameters
        ----------
        stream : str
            Name of the stream the sample belongs to.
        receive_time : float
            Local time the sample arrived, s.
        stamp : float or None
            Its header stamp on the local time base, s; None to judge by arrival only.

        """
        s = self._streams.get(stream)
        if s is None:
            self.add_stream(stream)
            s = self._streams[stream]
        if s.state == OK:
            # A gap longer than the timeout since the last check: a stale episode nobody saw.
            onset = self._stale_onset(s)
            if onset < receive_time:
                self._record(stream, s, onset, STALE)
        if receive_time > s.last_receive:
            s.last_receive = receive_time
        if stamp is not None:
            if stamp > s.last_stamp:
                s.last_stamp = stamp
            lag = receive_time - stamp
            if receive_time - s.lag_start > LAG_WINDOW_S:
                s.lag_start, s.lag_min_before, s.lag_min = receive_time, s.lag_min, lag
            elif lag < s.lag_min:
                s.lag_min = lag
        state = OK if self._fresh_at(s, receive_time) else STALE
        if state != s.state:
            self._record(stream, s, receive_time, state)

    def _stale_onset(self, s):
        """Time at which an ``OK`` stream with no further samples becomes stale."""
        newest = s.last_receive
        if -math.inf < s.last_stamp < newest:
            newest = s.last_stamp
        return max(s.since, newest + s.timeout)

    def _fresh_at(self, s, now):
        if now - s.last_receive > s.timeout:
            return False
        return not (s.last_stamp > -math.inf and now - s.last_stamp > s.timeout)

    def _record(self, stream, s, time, new):
        self.transitions.append(Transition(stream, time, s.state, new))
        s.state = new
        s.since = time

    def check(self, now):
        """
        Return the state of every stream at local time ``now`` (recording transitions).

        Parameters
        ----------
        now : float
            Local time, s.

        Returns
        -------
        dict
            ``{stream: 'OK' | 'STALE' | 'NEVER'}``.

        """
        out = {}
        for name, s in self._streams.items():
            if s.state != NEVER:
                fresh = self._fresh_at(s, now)
                if s.state == OK and not fresh:
                    self._record(name, s, self._stale_onset(s), STALE)
                elif s.state == STALE and fresh:
                    self._record(name, s, now, OK)
            out[name] = s.state
        return out

    def all_ok(self, now, streams=None):
        """Return True if every stream (or every one of ``streams``) is ``OK`` at ``now``."""
        states = self.check(now)
        names = states if streams is None else streams
        return all(states.get(n) == OK for n in names)

    def since(self, stream):
        """Return the time the stream entered its current state, s (None while ``NEVER``)."""
        return self._streams[stream].since

    def age(self, stream, now):
        """
        Return how old the stream's newest sample is at ``now``, s (inf while ``NEVER``).

        The larger of the arrival age and, if stamps are given, the stamp age.
        """
        s = self._streams[stream]
        age = now - s.last_receive
        if s.last_stamp > -math.inf:
            age = max(age, now - s.last_stamp)
        return age

    def stamp_lag(self, stream, now):
        """
        Return how far the stream's stamps steadily lag its arrivals, s, or None.

        Not None only while samples arrive in time (the last one within the timeout of
        ``now``) but every sample of the last one to two :data:`LAG_WINDOW_S` was stamped
        more than the timeout before it arrived: the robot's clock is behind the local one
        (or its stamps are sim time, or every sample is delayed on the way by that much). The
        stream is ``STALE`` then; the value is the smallest of those lags.
        """
        s = self._streams[stream]
        if s.last_stamp == -math.inf or now - s.last_receive > s.timeout:
            return None
        lag = min(s.lag_min, s.lag_min_before)
        return lag if s.timeout < lag < math.inf else None

    def status(self, now):
        """
        Return a flat dict for ``/twin/status``: state, age and since per stream.

        Also ``<stream>.stamps_behind_s``: :meth:`stamp_lag`, 0.0 when the stamps do not lag.
        """
        states = self.check(now)
        out = {}
        for name, state in states.items():
            out[f'{name}.state'] = state
            out[f'{name}.age_s'] = self.age(name, now)
            out[f'{name}.since'] = self._streams[name].since
            out[f'{name}.stamps_behind_s'] = self.stamp_lag(name, now) or 0.0
        return out

    def reset(self, now=math.nan):
        """
        Return every stream to ``NEVER`` (e.g. after /twin/reset or a sim-time restart).

        ``now`` (s) is the time recorded for the transitions.
        """
        for name, s in self._streams.items():
            if s.state != NEVER:
                self.transitions.append(Transition(name, now, s.state, NEVER))
            self._streams[name] = _Stream(s.timeout)
