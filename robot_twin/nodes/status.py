"""
The bridge's sync state for standard ROS tools: the ``twin/sync`` entry on /diagnostics.

/twin/status carries every figure; rqt_robot_monitor and diagnostic_aggregator look at
/diagnostics, so the bridge also publishes there, at the status rate, one DiagnosticStatus with
the same level and message and a few key values. /twin/status's level ``STALE`` becomes
``ERROR`` there: in diagnostic_msgs, STALE means the diagnostic itself stopped arriving (the
aggregator sets it), while a stale robot stream is an error of the twin (it blocks corrective
commands).
"""
from twin_anomaly.report import StatusEntry

SYNC_DIAGNOSTIC = 'twin/sync'
KEY_VALUES = ('latency_p50_s', 'latency_p99_s', 'clock_offset_s', 'joint_states.accepted',
              'joint_states.rejected', 'wrench.accepted', 'wrench.rejected', 'mirror.restarts',
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
