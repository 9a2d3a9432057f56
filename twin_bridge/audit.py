"""
Audit log of governed commands: one JSON object per line, flushed as it is written.

ROS-free. Every command the governor decides on is recorded (allowed or refused) with what was
requested, what was sent, why, and the anomaly that caused it. Write the line *before* sending
the command: if :meth:`AuditLog.record` raises (disk full, closed file), do not send.

Line format (strict JSON; NaN and ±inf are written as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"`` and turned back into floats by :func:`read_audit_log`)::

    {"wall_time": 1715000000.123,      # time.time() when written, s
     "time": 12.5,                     # node clock passed to govern (sim time if used), s
     "stamp": 12.499,                  # stamp of the robot sample the command is based on, s
     "kind": "position",               # position | velocity | effort | trajectory
     "joints": ["j1", "j2"],
     "allowed": true, "clamped": false, "cause": null,   # cause: refusal cause or null
     "reasons": [],
     "requested": {"values": [...], "duration_s": null}  # trajectory: {"points": [...]}
     "sent": {...} or null,            # same shape as requested
     "anomaly": {"id": .., "fault_type": .., "joint": .., "score": .., ...} or null}

Trajectory points are ``{"time_from_start": s, "positions": [...], "velocities": [...]|null}``.
"""
import json
import math
import os
from pathlib import Path
import threading
import time

import numpy as np

_NONFINITE = {'NaN': math.nan, 'Infinity': math.inf, '-Infinity': -math.inf}
_ANOMALY_FIELDS = ('id', 'fault_type', 'joint', 'score', 'level', 'since')


def _plain(value):
    """Turn numbers, arrays and containers into strict-JSON values."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if math.isfinite(x):
            return x
        return 'NaN' if math.isnan(x) else ('Infinity' if x > 0 else '-Infinity')
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    try:
        return [_plain(v) for v in value]
    except TypeError:
        return repr(value)


def _command_body(command):
    """Return what a (possibly malformed) command asked for, as JSON values."""
    if command is None:
        return None
    if getattr(command, 'kind', None) == 'trajectory':
        points = []
        try:
            for p in command.points:
                p = tuple(p)
                points.append({'time_from_start': _plain(p[0]),
                               'positions': _plain(p[1]) if len(p) > 1 else None,
                               'velocities': _plain(p[2]) if len(p) > 2 else None})
        except Exception:  # noqa: BLE001 - record what we can of a malformed command
            return {'unreadable': repr(command)}
        return {'points': points}
    if hasattr(command, 'values'):
        return {'values': _plain(command.values),
                'duration_s': _plain(getattr(command, 'duration_s', None))}
    return {'unreadable': repr(command)}


def _anomaly_body(anomaly):
    if anomaly is None:
        return None
    if isinstance(anomaly, dict):
        return {k: _plain(v) for k, v in anomaly.items()}
    return {k: _plain(getattr(anomaly, k)) for k in _ANOMALY_FIELDS if hasattr(anomaly, k)}


class AuditLog:
    """
    Append-only JSON-lines log of governor decisions.

    Parameters
    ----------
    target : str, os.PathLike or text stream
        A file path (opened for appending; parent directories are created) or an open text
        stream with ``write`` (and ``flush``), which the log does not close.

    """

    def __init__(self, target):
        self._lock = threading.Lock()
        if isinstance(target, (str, os.PathLike)):
            path = Path(target)
            if path.parent and not path.parent.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
            self._stream = open(path, 'a', encoding='utf-8')
            self._owned = True
            self.path = path
        elif hasattr(target, 'write'):
            self._stream = target
            self._owned = False
            self.path = None
        else:
            raise TypeError(f'AuditLog needs a file path or a text stream, got '
                            f'{type(target).__name__}')
        self.lines_written = 0

    def record(self, decision, *, stamp=None, anomaly=None, wall_time=None):
        """
        Write one line for a governor decision and flush it.

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
            Wall-clock time to record, s; None: ``time.time()``.

        Returns
        -------
        dict
            The entry as written (JSON values).

        """
        command = decision.command
        entry = {
            'wall_time': _plain(time.time() if wall_time is None else wall_time),
            'time': _plain(decision.time),
            'stamp': _plain(stamp),
            'kind': (decision.kind if decision.kind is None or isinstance(decision.kind, str)
                     else repr(decision.kind)),
            'joints': [str(j) for j in decision.joints],
            'allowed': bool(decision.allowed),
            'clamped': bool(decision.clamped),
            'cause': decision.cause,
            'reasons': [str(r) for r in decision.reasons],
            'requested': _command_body(decision.requested),
            'sent': _command_body(command) if decision.allowed else None,
            'anomaly': _anomaly_body(anomaly),
        }
        line = json.dumps(entry, allow_nan=False, separators=(',', ':'))
        with self._lock:
            self._stream.write(line + '\n')
            self._stream.flush()
            self.lines_written += 1
        return entry

    def close(self):
        """Close the file if the log opened it."""
        with self._lock:
            if self._owned and not self._stream.closed:
                self._stream.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _decode(value):
    if isinstance(value, str):
        return _NONFINITE.get(value, value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def read_audit_log(source):
    """
    Read an audit log back into a list of dicts.

    Parameters
    ----------
    source : str, os.PathLike, text stream or iterable of str
        The log file, or its lines.

    Returns
    -------
    list of dict
        One per line, in order; ``"NaN"``/``"Infinity"``/``"-Infinity"`` in numeric fields
        (``wall_time``, ``time``, ``stamp``, ``requested``, ``sent``, anomaly ``score`` and
        ``since``) become floats.

    Raises
    ------
    ValueError
        A line that is not a JSON object (the message gives the line number).

    """
    if isinstance(source, (str, os.PathLike)):
        with open(source, encoding='utf-8') as f:
            return read_audit_log(f)
    entries = []
    for number, line in enumerate(source, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f'audit log line {number} is not JSON: {exc}') from None
        if not isinstance(entry, dict):
            raise ValueError(f'audit log line {number} is not a JSON object')
        for key in ('wall_time', 'time', 'stamp', 'requested', 'sent'):
            if key in entry:
                entry[key] = _decode(entry[key])
        anomaly = entry.get('anomaly')
        if isinstance(anomaly, dict):
            for key in ('score', 'since'):
                if key in anomaly:
                    anomaly[key] = _decode(anomaly[key])
        entries.append(entry)
    return entries
