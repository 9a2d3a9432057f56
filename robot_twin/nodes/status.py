"""
The bridge's sync state for standard ROS tools: the ``twin/sync`` entry on /diagnostics.

/twin/status carries every figure; rqt_robot_monitor and diagnostic_aggregator look at
/diagnostics, so the bridge also publishes there, at the status rate, one DiagnosticStatus with
the same level and message and a few key values. /twin/status's level ``STALE`` becomes
``ERROR`` there: in diagnostic_msgs, STALE means the diagnostic itself stopped arriving (the
aggregator sets it), while a stale robot stream is an error of the twin (it blocks corrective
commands).

:class:`MirrorResultCheck` keeps the level from saying ``OK`` (``in sync``) while the mirror's
results are not finite (a URDF body without mass or inertia, bad identified parameters): the
mirror drops such results, so the twin publishes no residuals and its checks see nothing.
"""
from collections import deque

from twin_anomaly.report import StatusEntry

SYNC_DIAGNOSTIC = 'twin/sync'
KEY_VALUES = ('latency_p50_s', 'latency_p99_s', 'clock_offset_s', 'joint_states.accepted',
              'joint_states.rejected', 'joint_states.dropped', 'wrench.accepted',
              'wrench.rejected', 'mirror.restarts', 'missing_joints', 'commands_sent')
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


NONFINITE_WINDOW_S = 10.0
"""Span of robot samples over which :class:`MirrorResultCheck` judges, s."""
NONFINITE_WARN_SHARE = 0.01
"""Share of non-finite mirror results (per accepted joint-state sample) that makes WARN."""
NONFINITE_ERROR_SHARE = 0.1
"""Share that makes ERROR (a broken model gives one in two: every one restarts the mirror)."""


class MirrorResultCheck:
    """
    Raise the sync level when a share of the recent mirror results were not finite.

    From the counters of /twin/status: ``mirror.nonfinite_results`` against
    ``joint_states.accepted``, over the last :data:`NONFINITE_WINDOW_S` (or since the start).
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
            accepted = int(values['joint_states.accepted'])
            bad = int(values['mirror.nonfinite_results'])
        except (KeyError, TypeError, ValueError):
            return level, message
        history = self._history
        if history and (accepted < history[-1][1] or bad < history[-1][2]
                        or now < history[-1][0]):
            history.clear()            # the counters (or the clock) started again
        if not history:
            history.append((now, 0, 0))
        history.append((now, accepted, bad))
        while len(history) > 1 and history[1][0] <= now - self.window_s:
            history.popleft()
        since, accepted_before, bad_before = history[0]
        new_bad, new_accepted = bad - bad_before, accepted - accepted_before
        if new_bad <= 0 or level not in ('OK', 'WARN'):
            return level, message
        share = min(1.0, new_bad / max(new_accepted, 1))
        if share < self.warn_share:
            return level, message
        reason = (f'mirror results not finite: {new_bad} for {new_accepted} accepted samples '
                  f'in the last {max(now - since, 0.0):.1f} s, no residuals for them (a body '
                  'without mass or inertia in the URDF, or bad identified parameters?)')
        judged = 'ERROR' if share >= self.error_share else 'WARN'
        if level == 'OK':
            return judged, reason
        return judged, f'{message}; {reason}'
