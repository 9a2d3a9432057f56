"""
The hub's view of the lifecycle log: its last entries, and acknowledgements written to it.

The lifecycle log is a hash-chained JSON-lines file kept by :mod:`twin_bridge.ledger`. The hub
only shows its tail (each line parsed as JSON; a line that is not JSON is shown as such, never
hidden; ``robot-twin ledger verify`` checks the chain) and, when a log is configured, appends
one entry per acknowledged anomaly (``anomaly_acknowledged``) and per switch of corrective
actions (``corrective_actions_switched``) through the ledger's own writer, so that the chain
stays intact — when no other process is writing it.
"""
from collections import deque
import json
from pathlib import Path

TAIL_BYTES = 256 * 1024


def read_tail(path, count=20):
    """
    Return ``(entries, error)``: the last ``count`` entries of the log at ``path``.

    Parameters
    ----------
    path : str or Path
        The JSON-lines file; a missing file in an existing folder gives no entries and no error
        (nothing logged yet); a missing folder, or a path that is a folder, is an error.
    count : int
        How many entries, newest last.

    Returns
    -------
    entries : list of dict
        Parsed lines; a malformed line becomes ``{'malformed': <text>}``.
    error : str
        '' or why the file could not be read.

    """
    path = Path(path)
    if path.is_dir():
        return [], f'{path} is a folder, not a lifecycle log file: set ledger_path to a file'
    if not path.exists():
        if not path.parent.is_dir():
            return [], (f'{path}: the folder {path.parent} does not exist, so nothing can be '
                        'logged there; check ledger_path')
        return [], ''
    if not path.is_file():
        return [], f'{path} is not a regular file (a device or a pipe?): check ledger_path'
    try:
        with open(path, 'rb') as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read().decode('utf-8', errors='replace')
    except OSError as exc:
        return [], f'cannot read {path}: {exc}'
    lines = data.splitlines()
    if size > TAIL_BYTES:
        lines = lines[1:]           # the first line read is probably cut
    out = deque(maxlen=int(count))
    for line in lines:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {'malformed': line[:200]}
        out.append(entry if isinstance(entry, dict) else {'value': entry})
    return list(out), ''


def append_acknowledgement(path, episode):
    """
    Append an ``anomaly_acknowledged`` entry for ``episode`` (its dict) to the log at ``path``.

    The log has one writer at a time (:class:`twin_bridge.ledger.Ledger` locks the file): while
    the twin's own process holds it, the hub cannot write, and says so (the hub node also
    publishes every acknowledgement on /twin/acknowledgements for the twin to record).

    Returns
    -------
    str
        '' when written, else why not.

    """
    data = {k: episode.get(k) for k in ('id', 'joint', 'fault_type', 'since', 'peak_score',
                                        'acknowledged_at', 'acknowledged_by', 'note')}
    return _append(path, 'anomaly_acknowledged', data,
                   'the acknowledgement is kept by the hub and published on '
                   '/twin/acknowledgements')


def append_corrective_switch(path, data):
    """
    Append a ``corrective_actions_switched`` entry (``data``: enabled, interface, ...).

    As :func:`append_acknowledgement`: while the twin's own process holds the log, the hub
    cannot write it and says so (the hub node publishes the switch on
    /twin/corrective_switches for the twin's writer). Returns '' when written, else why not.
    """
    return _append(path, 'corrective_actions_switched', data,
                   'the switch is published on /twin/corrective_switches for it to record')


def _append(path, kind, data, when_locked):
    from twin_bridge.ledger import Ledger, LedgerError, LedgerLocked
    try:
        with Ledger(path) as ledger:
            ledger.append(kind, data, wall_time=data.get('time'))
    except LedgerLocked:
        return f"{path} is held by the twin's own writer; {when_locked}"
    except LedgerError as exc:
        return str(exc)
    return ''
