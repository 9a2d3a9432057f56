"""
The bridge's sync state and CPU for ROS tools: ``twin/sync`` and ``twin/cpu`` on /diagnostics.

/twin/status carries every figure; rqt_robot_monitor and diagnostic_aggregator look at
/diagnostics, so the bridge also publishes there, at the status rate, one DiagnosticStatus with
the same level and message and a few key values. /twin/status's level ``STALE`` becomes
``ERROR`` there: in diagnostic_msgs, STALE means the diagnostic itself stopped arriving (the
aggregator sets it), while a stale robot stream is an error of the twin (it blocks corrective
commands).

:class:`StreamCheck` gives the robot's joint-state rate (its samples, one per stamp, however
many messages bring a stamp's joints) over a recent window and raises the level to WARN while,
over that window, the robot's stream misses samples, the twin's own input queue loses some, or
the latency is high. :class:`MirrorResultCheck` keeps the level from saying
``OK`` (``in sync``) while the mirror's results are not finite (a URDF body without mass or
inertia, bad identified parameters): the mirror drops such results, so the twin publishes no
residuals and its checks see nothing. Both are ROS-free and read only the counters of
/twin/status, at the status rate: no work per robot sample. :class:`CpuCheck` gives the CPU the
twin's process takes (the ``twin/cpu`` entry on /diagnostics, WARN above a limit).
"""
from collections import deque
from dataclasses import dataclass
import math
import time

from twin_anomaly.report import StatusEntry

SYNC_DIAGNOSTIC = 'twin/sync'
KEY_VALUES = ('latency_p50_s', 'latency_p99_s', 'clock_offset_s', 'joint_states.rate_hz',
              'joint_states.expected_rate_hz', 'joint_states.accepted', 'joint_states.rejected',
              'joint_states.dropped', 'wrench.accepted', 'wrench.rejected', 'mirror.restarts',
              'missing_joints', 'commands_sent')
"""Values of /twin/status repeated on /diagnostics (besides each stream's state, age and
stamp lag)."""
STREAM_SUFFIXES = ('.state', '.age_s', '.stamps_behind_s')


def sync_diagnostic(level, message, values):
    """
    Return the ``twin/sync`` entry for /diagnostics from the /twin/status entry's parts.

    Parameters
    ----------
    level : {'OK', 'WARN', 'ERROR', 'STALE'}
        Level of ``twin/status/sync``.
    message : str
        Its message, repeated as it is.
    values : dict
        Values of ``twin/status/sync``.

    Returns
    -------
    twin_anomaly.report.StatusEntry
        Level ``OK``, ``WARN`` or ``ERROR`` (``STALE`` -> ``ERROR``), the same message, and the
        values of :data:`KEY_VALUES` and each stream's ``state``, ``age_s``, ``stamps_behind_s``.

    """
    keys = [k for k in values if k.endswith(STREAM_SUFFIXES)] + [
        k for k in KEY_VALUES if k in values]
    return StatusEntry(SYNC_DIAGNOSTIC, 'ERROR' if level == 'STALE' else level, message,
                       {k: values[k] for k in keys})


def _window_start(history, entry, window_s, seed=None):
    """
    Add ``entry`` to a check's ``history``; return the entry its window starts at.

    ``entry`` is ``(time, counter, ...)``, ``history`` a deque of earlier entries, oldest
    first. A time or a counter below the previous entry's (a counter given as None is not
    compared) means the counters or the clock started again: the history starts anew, from
    ``seed`` when given. The window starts at the newest entry at least ``window_s`` older than
    ``entry``, or at the oldest kept.
    """
    if history and (entry[0] < history[-1][0] or any(
            new is not None and old is not None and new < old
            for new, old in zip(entry[1:], history[-1][1:]))):
        history.clear()
    if not history and seed is not None:
        history.append(seed)
    history.append(entry)
    while len(history) > 1 and history[1][0] <= entry[0] - window_s:
        history.popleft()
    return history[0]


NONFINITE_WINDOW_S = 10.0
"""Span of robot samples over which :class:`MirrorResultCheck` judges, s."""
NONFINITE_WARN_SHARE = 0.01
"""Share of non-finite mirror results (per joint-state sample) that makes WARN."""
NONFINITE_ERROR_SHARE = 0.1
"""Share that makes ERROR (a broken model gives one in two: every one restarts the mirror)."""


class MirrorResultCheck:
    """
    Raise the sync level when a share of the recent mirror results were not finite.

    From the counters of /twin/status: ``mirror.nonfinite_results`` against
    ``joint_states.samples`` (samples, not messages: a robot may split a stamp over several
    messages), over the last :data:`NONFINITE_WINDOW_S` (or since the start).
    ROS-free; one per status publisher (it keeps the counters of the last window).
    """

    def __init__(self, window_s=NONFINITE_WINDOW_S, warn_share=NONFINITE_WARN_SHARE,
                 error_share=NONFINITE_ERROR_SHARE):
        self.window_s = float(window_s)
        self.warn_share = float(warn_share)
        self.error_share = float(error_share)
        self._history = deque()        # (time, accepted, non-finite), oldest first

    def judge(self, level, message, values, now):
        """
        Return the ``(level, message)`` of ``twin/status/sync`` with the mirror's results judged.

        Parameters
        ----------
        level, message : str
            The sync state without them (``OK`` and ``in sync``, ``WARN`` ...).
        values : dict
            The status values; without both counters (the mirror in another process) the level
            and message are returned as they are.
        now : float, s
            Local time of this status.

        Returns
        -------
        level, message : str
            ``ERROR`` when at least :data:`NONFINITE_ERROR_SHARE` of the window's samples gave
            a non-finite result, ``WARN`` from :data:`NONFINITE_WARN_SHARE`, with the reason;
            never lower than ``level``. ``STALE`` and ``ERROR`` are kept as they are.

        """
        try:
            accepted = int(values['joint_states.samples'])
            bad = int(values['mirror.nonfinite_results'])
        except (KeyError, TypeError, ValueError):
            return level, message
        # (from zero at the start: results since the twin started count)
        since, accepted_before, bad_before = _window_start(
            self._history, (now, accepted, bad), self.window_s, seed=(now, 0, 0))
        new_bad, new_accepted = bad - bad_before, accepted - accepted_before
        if new_bad <= 0 or level not in ('OK', 'WARN'):
            return level, message
        share = min(1.0, new_bad / max(new_accepted, 1))
        if share < self.warn_share:
            return level, message
        reason = (f'mirror results not finite: {new_bad} for {new_accepted} samples '
                  f'in the last {max(now - since, 0.0):.1f} s, no residuals for them (a body '
                  'without mass or inertia in the URDF, or bad identified parameters?)')
        judged = 'ERROR' if share >= self.error_share else 'WARN'
        if level == 'OK':
            return judged, reason
        return judged, f'{message}; {reason}'


SAMPLES = 'joint_states.samples'
MISSING = 'joint_states.missing'
LOST_IN_TWIN = 'joint_states.lost_in_twin'
INCOMPLETE = 'joint_states.incomplete_stamps'


@dataclass(frozen=True)
class StreamWindow:
    """
    What the robot's joint-state stream gave over :class:`StreamCheck`'s recent window.

    Attributes
    ----------
    span_s : float
        Local time the window spans, s (0 at the first status).
    samples : int
        Robot samples the twin took in it: one per stamp, however many messages brought its
        joints (the intake's ``joint_states.samples``).
    missing : int or None
        Samples missing from the robot's own stream in it (its stamp gaps); None when not
        counted in this process (the anomaly node runs in another).
    lost : int or None
        Samples lost in the twin's own input queue in it; None when not counted here.
    incomplete : int or None
        The robot's stamps that gave no sample in it, their joints not all in with one stamp
        (the intake's ``joint_states.incomplete_stamps``: a message of a split stamp lost or
        late, or joints published on stamps of their own or at a lower rate and not held);
        None when not counted.

    """

    span_s: float
    samples: int
    missing: int = None
    lost: int = None
    incomplete: int = None

    @property
    def expected(self):
        """Return the samples the robot's stream should have given in it (None: unknown)."""
        if self.missing is None or self.lost is None:
            return None
        return self.samples + self.missing + self.lost

    @property
    def stamps(self):
        """Return the robot's stamps in it, with a sample or incomplete (None: not counted)."""
        return None if self.incomplete is None else self.samples + self.incomplete

    def rate_hz(self, count):
        """Return ``count`` per second of the window, Hz (NaN before it spans any time)."""
        return count / self.span_s if self.span_s > 0.0 else math.nan

    def values(self):
        """
        Return the window's values for /twin/status.

        ``joint_states.rate_hz``: the robot's samples the twin took per second (one per stamp,
        however many messages brought it); with the anomaly node's counters also
        ``joint_states.expected_rate_hz`` (samples taken, missing and lost per second: the
        robot's own rate as its stamps tell it),
        ``joint_states.missing_share`` and ``joint_states.lost_in_twin_share`` (of those
        expected samples); with the intake's counter ``joint_states.incomplete_share`` (of the
        stamps that gave a sample or were counted incomplete).
        """
        out = {'joint_states.rate_hz': self.rate_hz(self.samples)}
        stamps = self.stamps
        if stamps is not None:
            out['joint_states.incomplete_share'] = self.incomplete / stamps if stamps else 0.0
        expected = self.expected
        if expected is not None:
            out['joint_states.expected_rate_hz'] = self.rate_hz(expected)
            out['joint_states.missing_share'] = self.missing / expected if expected else 0.0
            out['joint_states.lost_in_twin_share'] = self.lost / expected if expected else 0.0
        return out


def _count(values, key):
    """Return the counter ``values[key]`` as an int, or None when absent or unreadable."""
    try:
        return int(values[key])
    except (KeyError, TypeError, ValueError):
        return None


class StreamCheck:
    """
    Rate of the robot's joint-state stream, and WARN while it is degraded, over a recent window.

    From the counters of /twin/status (``joint_states.samples`` and
    ``joint_states.incomplete_stamps`` of the intake, ``joint_states.missing`` and
    ``joint_states.lost_in_twin`` of the anomaly node's stream checks) over the last
    ``window_s``, and the latency's tail, ``latency_p99_s`` above
    ``latency_p50_s`` (over the intake's last 1000 samples; the latency itself includes any
    offset between the robot's and the twin's clocks, its tail does not): a stream that
    recovers is OK again once its bad stretch has left the window.
    ROS-free; one per status publisher (it keeps the counters of the last window).

    Parameters
    ----------
    window_s : float
        Span of the window, s (> 0).
    missing_share : float
        Share of the robot's samples missing from its stream above which the level is WARN;
        also the share of its stamps that gave no sample (``joint_states.incomplete_stamps``).
    lost_in_twin_share : float
        Share of them lost in the twin's own input queue above which the level is WARN (0: any).
    latency_tail_s : float
        How far the stream latency's 99th percentile (stamp to receipt) may be above its
        median before the level is WARN, s.

    """

    def __init__(self, window_s, missing_share, lost_in_twin_share, latency_tail_s):
        self.window_s = float(window_s)
        self.missing_share = float(missing_share)
        self.lost_in_twin_share = float(lost_in_twin_share)
        self.latency_tail_s = float(latency_tail_s)
        self._history = deque()        # (time, samples, missing, lost), oldest first

    def observe(self, values, now):
        """
        Take this status's counters; return the :class:`StreamWindow` of the last ``window_s``.

        Parameters
        ----------
        values : dict
            The status values (the counters of :data:`SAMPLES`, :data:`MISSING`,
            :data:`LOST_IN_TWIN` and :data:`INCOMPLETE`, as far as this process has them).
        now : float, s
            Local time of this status.

        Returns
        -------
        StreamWindow
            Counts since the newest earlier status at least ``window_s`` old (since the oldest
            one kept, shortly after a start); counters or a clock that went back start the
            window again.

        """
        entry = (now, _count(values, SAMPLES) or 0, _count(values, MISSING),
                 _count(values, LOST_IN_TWIN), _count(values, INCOMPLETE))
        first = _window_start(self._history, entry, self.window_s)
        since = [None if new is None or old is None else new - old
                 for new, old in zip(entry[1:], first[1:])]
        return StreamWindow(now - first[0], *since)

    def judge(self, level, message, window, latency_p50_s, latency_p99_s):
        """
        Return the ``(level, message)`` of ``twin/status/sync`` with the stream judged.

        Parameters
        ----------
        level, message : str
            The sync state without it (``OK`` and ``in sync``, ``WARN`` ...).
        window : StreamWindow
            This status's window (:meth:`observe`).
        latency_p50_s, latency_p99_s : float
            The status's ``latency_p50_s`` and ``latency_p99_s``, s (NaN before any sample).

        Returns
        -------
        level, message : str
            ``WARN`` when the window's share of missing samples, or of samples lost in the
            twin, or the latency's tail is above its limit, with every such cause and its numbers
            (after ``message`` when that was a WARN already); ``STALE`` and ``ERROR`` are kept
            as they are.

        """
        if level not in ('OK', 'WARN'):
            return level, message
        causes = []
        expected = window.expected
        if expected:
            share = window.missing / expected
            if share > self.missing_share:
                causes.append(f"{window.missing} of the robot's {expected} samples missing from "
                              f'its stream ({share:.1%}, limit {self.missing_share:.1%})')
            share = window.lost / expected
            if share > self.lost_in_twin_share:
                causes.append(f"{window.lost} samples lost in the twin's own input queue (the "
                              f'twin was starved or busy; {share:.1%}, limit '
                              f'{self.lost_in_twin_share:.1%})')
        if window.incomplete is not None and window.incomplete > 1:
            # (one is the start of a robot that splits its stamps, when the twin subscribed
            # between two messages of one stamp)
            stamps = window.stamps
            share = window.incomplete / stamps
            if share > self.missing_share:
                causes.append(f"{window.incomplete} of the robot's {stamps} stamps gave no "
                              'sample, their joints not all in with one stamp ('
                              f'{share:.1%}, limit {self.missing_share:.1%}; publish every '
                              'joint with each stamp, or the others on stamps of their own)')
        if latency_p99_s - latency_p50_s > self.latency_tail_s:
            causes.append(f'latency p99 {latency_p99_s * 1e3:.0f} ms, '
                          f'{(latency_p99_s - latency_p50_s) * 1e3:.0f} ms above its median '
                          f'(limit {self.latency_tail_s * 1e3:.0f} ms)')
        if not causes:
            return level, message
        rate = ''
        if window.span_s > 0.0:
            rate = f', {window.rate_hz(window.samples):.0f} Hz received' + (
                f' of {window.rate_hz(expected):.0f} Hz' if expected else '')
        reason = (f'joint_states degraded in the last {window.span_s:.1f} s{rate}: '
                  + '; '.join(causes))
        return 'WARN', reason if level == 'OK' else f'{message}; {reason}'


CPU_DIAGNOSTIC = 'twin/cpu'
CPU_CORES = 'process.cpu_cores'
CPU_WINDOW = 'process.cpu_window_s'
CPU_CLEAR = 0.9
"""Share of the limit the CPU must fall below before a WARN of :class:`CpuCheck` clears."""


class CpuCheck:
    """
    The CPU the twin's process takes, over a recent window, and WARN above a limit.

    The twin runs beside the robot's own stack, often on a computer of two cores: its budget
    is a share of one core (0.3, never more than 0.5, for a 1 kHz arm), measured offline by
    ``benchmarks/bench_twin.py``. On the robot the same figure comes from the process itself:
    its CPU time (all threads, user and system: ``time.process_time``) over the last
    ``window_s`` of a steady clock, never the ROS clock (simulated time is not CPU time). The
    ``twin/cpu`` entry on /diagnostics is WARN once it is above ``limit_cores`` (and until it is
    below :data:`CPU_CLEAR` of it), judged once the window is at least half full (not in the
    first half window after a start; commissioning, which costs more than monitoring, is judged
    like the rest). ROS-free; read once per status, no work per robot sample.

    Parameters
    ----------
    window_s : float
        Span of the window, s (> 0).
    limit_cores : float
        Cores (1.0 = one core all the time) above which the level is WARN; 0 = never.
    cpu_clock : callable
        ``cpu_clock()``: the process's CPU time so far, s (a stand-in in tests).

    Attributes
    ----------
    over : bool
        Whether the last judgement was above the limit.

    """

    def __init__(self, window_s, limit_cores, cpu_clock=time.process_time):
        self.window_s = float(window_s)
        self.limit_cores = float(limit_cores)
        self._cpu_clock = cpu_clock
        self._history = deque()        # (steady time, CPU time), oldest first
        self.cores = math.nan
        self.span_s = 0.0
        self.over = False

    def observe(self, now):
        """
        Take the process's CPU time now; return the status values of the window.

        Parameters
        ----------
        now : float
            A steady clock's reading, s (``time.monotonic()``).

        Returns
        -------
        dict
            ``process.cpu_cores`` (CPU time / elapsed time since the newest earlier reading at
            least ``window_s`` old, or the oldest one kept; NaN at the first) and
            ``process.cpu_window_s`` (that span, s).

        """
        cpu = float(self._cpu_clock())
        start, cpu0 = _window_start(self._history, (now, cpu), self.window_s)
        self.span_s = now - start
        self.cores = (cpu - cpu0) / self.span_s if self.span_s > 0.0 else math.nan
        return {CPU_CORES: self.cores, CPU_WINDOW: self.span_s}

    def judge(self, phase=None):
        """
        Return the ``twin/cpu`` entry for /diagnostics of the last :meth:`observe`.

        Parameters
        ----------
        phase : str, optional
            The anomaly node's phase when it runs in this process (``anomaly.phase`` of
            /twin/status): ``commissioning`` is named in a WARN (it costs more than monitoring
            and ends by itself).

        Returns
        -------
        twin_anomaly.report.StatusEntry
            ``WARN`` while the window is at least half full and its CPU is above
            ``limit_cores`` (after a WARN: above :data:`CPU_CLEAR` of it; never when the limit
            is 0), else ``OK``; the message gives the figure,
            the window and the limit; the values are those of :meth:`observe`.

        """
        values = {CPU_CORES: self.cores, CPU_WINDOW: self.span_s,
                  'limit_cores': self.limit_cores}
        if not self.span_s > 0.0:
            self.over = False
            return StatusEntry(CPU_DIAGNOSTIC, 'OK', 'measuring', values)
        limit = f'limit {self.limit_cores:g}' if self.limit_cores > 0.0 else 'no limit set'
        figure = f'{self.cores:.2f} of a core over the last {self.span_s:.1f} s'
        # above the limit to go WARN, below CPU_CLEAR of it to be OK again: a twin that runs at
        # about its limit does not flap (a log line each time)
        bound = self.limit_cores * (CPU_CLEAR if self.over else 1.0)
        self.over = (self.limit_cores > 0.0 and self.span_s >= 0.5 * self.window_s
                     and self.cores > bound)
        if self.over:
            during = (' while commissioning (learning the robot costs more than monitoring it)'
                      if phase == 'commissioning' else '')
            return StatusEntry(CPU_DIAGNOSTIC, 'WARN',
                               f"the twin took {figure}{during}, above its {limit}: the robot's "
                               'own processes may be short of CPU', values)
        return StatusEntry(CPU_DIAGNOSTIC, 'OK', f'{figure} ({limit})', values)
