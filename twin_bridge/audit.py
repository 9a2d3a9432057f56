"""
Audit of governed commands: one ``command`` entry per decision in the lifecycle log.

ROS-free. Every command the governor decides on is recorded (allowed or refused) with what was
requested, what was sent, why, and the anomaly that caused it, as an entry of the hash-chained
lifecycle log (:mod:`twin_bridge.ledger`), so that the audit trail cannot be edited without a
trace. Write the entry *before* sending the command: if :meth:`AuditLog.record` raises (disk
full, closed log), do not send.

The entry's ``data`` (strict JSON; NaN and ±inf as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"``, turned back into floats by :func:`read_audit_log`)::

    {"time": 12.5,                     # node clock passed to govern (sim time if used), s
     "stamp": 12.499,                  # stamp of the robot sample the command is based on, s
     "kind": "position",               # position | velocity | effort | trajectory
     "joints": ["j1", "j2"],
     "allowed": true, "clamped": false, "cause": null,   # cause: refusal cause or null
     "reasons": [],
     "requested": {"values": [...], "duration_s": null}  # trajectory: {"points": [...]}
     "sent": {...} or null,            # same shape as requested
     "anomaly": {"id": .., "fault_type": .., "joint": .., "score": .., ...} or null}

Trajectory points are ``{"time_from_start": s, "positions": [...], "velocities": [...]|null}``.
The entry's own ``time`` is the wall clock (``wall_time`` of :func:`read_audit_log`).
"""
import os

from twin_bridge.ledger import decode_nonfinite, Ledger, LedgerError, open_ledger, \
    to_json_value, verify_ledger

COMMAND_KIND = 'command'
"""Ledger entry kind of a governor decision."""
_ANOMALY_FIELDS = ('id', 'fault_type', 'joint', 'score', 'level', 'since')


def _command_body(command):
    """Return what a (possibly malformed) command asked for, as JSON values."""
    if command is None:
        return None
    if getattr(command, 'kind', None) == 'trajectory':
        points = []
        try:
            for p in command.points:
                p = tuple(p)
                points.append({'time_from_start': to_json_value(p[0]),
                               'positions': to_json_value(p[1]) if len(p) > 1 else None,
                               'velocities': to_json_value(p[2]) if len(p) > 2 else None})
        except Exception:  # noqa: BLE001 - record what we can of a malformed command
            return {'unreadable': repr(command)}
        return {'points': points}
    if hasattr(command, 'values'):
        return {'values': to_json_value(command.values),
                'duration_s': to_json_value(getattr(command, 'duration_s', None))}
    return {'unreadable': repr(command)}


def _anomaly_body(anomaly):
    if anomaly is None:
        return None
    if isinstance(anomaly, dict):
        return {str(k): to_json_value(v) for k, v in anomaly.items()}
    return {k: to_json_value(getattr(anomaly, k)) for k in _ANOMALY_FIELDS
            if hasattr(anomaly, k)}


class AuditLog:
    """
    The governor's audit trail, written as ``command`` entries of a lifecycle log.

    Parameters
    ----------
    target : str, os.PathLike or twin_bridge.ledger.Ledger
        A ledger file (opened with :func:`twin_bridge.ledger.open_ledger`, so the nodes of one
        process share its writer; created if absent) or an open :class:`Ledger`, which the
        audit log does not close.

    Raises
    ------
    TypeError
        ``target`` is neither.
    twin_bridge.ledger.LedgerError
        The file cannot be opened, is damaged, or another process writes it.

    """

    def __init__(self, target):
        if isinstance(target, Ledger):
            self.ledger, self._owned = target, False
        elif isinstance(target, (str, os.PathLike)):
            self.ledger, self._owned = open_ledger(target), True
        else:
            raise TypeError(f'AuditLog needs a ledger file path or a twin_bridge.ledger.Ledger, '
                            f'got {type(target).__name__}')
        self.path = self.ledger.path
        self.lines_written = 0

    def record(self, decision, *, stamp=None, anomaly=None, wall_time=None):
        """
        Append one ``command`` entry for a governor decision (durable when this returns).

        Parameters
        ----------
        decision : twin_bridge.governor.GovernorDecision
            The governor's verdict on the command.
        stamp : float or None
            Stamp of the robot sample the command was based on, s.
        anomaly : object, dict or None
            The anomaly that caused the command: a dict, or an object with some of the
            attributes ``id``, ``fault_type``, ``joint``, ``score``, ``level``, ``since``.
        wall_time : float or None
            Wall-clock time to record, s; None: now.

        Returns
        -------
        dict
            The entry's data as written (JSON values), plus ``wall_time``.

        Raises
        ------
        twin_bridge.ledger.LedgerError
            The entry could not be written: do not send the command.

        """
        data = {
            'time': to_json_value(decision.time),
            'stamp': to_json_value(stamp),
            'kind': (decision.kind if decision.kind is None or isinstance(decision.kind, str)
                     else repr(decision.kind)),
            'joints': [str(j) for j in decision.joints],
            'allowed': bool(decision.allowed),
            'clamped': bool(decision.clamped),
            'cause': decision.cause,
            'reasons': [str(r) for r in decision.reasons],
            'requested': _command_body(decision.requested),
            'sent': _command_body(decision.command) if decision.allowed else None,
            'anomaly': _anomaly_body(anomaly),
        }
        entry = self.ledger.append(COMMAND_KIND, data, wall_time=wall_time)
        self.lines_written += 1
        return {'wall_time': entry.time, **entry.data}

    def close(self):
        """Release the ledger if the audit log opened it."""
        if self._owned and not self.ledger.closed:
            self._owned = False
            self.ledger.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_audit_log(source):
    """
    Read the governor decisions of a lifecycle log, checking its chain.

    Parameters
    ----------
    source : str or os.PathLike
        The ledger file.

    Returns
    -------
    list of dict
        One per ``command`` entry, in order: its data with ``wall_time`` (the entry's time);
        ``"NaN"``/``"Infinity"``/``"-Infinity"`` in numeric fields (``time``, ``stamp``,
        ``requested``, ``sent``, anomaly ``score`` and ``since``) become floats.

    Raises
    ------
    twin_bridge.ledger.LedgerError
        The file is unreadable or its chain is broken (the message names the first bad
        entry). A last line without its end (being written, or cut by a crash) is left out.

    """
    result = verify_ledger(source)
    if result.problem is not None and not result.torn:
        raise result.problem
    out = []
    for entry in result.entries:      # a last line still being written is not an entry yet
        if entry.kind != COMMAND_KIND:
            continue
        item = {'wall_time': entry.time, **entry.data}
        for key in ('time', 'stamp', 'requested', 'sent'):
            if key in item:
                item[key] = decode_nonfinite(item[key])
        anomaly = item.get('anomaly')
        if isinstance(anomaly, dict):
            for key in ('score', 'since'):
                if key in anomaly:
                    anomaly[key] = decode_nonfinite(anomaly[key])
        out.append(item)
    return out


__all__ = ['AuditLog', 'COMMAND_KIND', 'LedgerError', 'read_audit_log']
