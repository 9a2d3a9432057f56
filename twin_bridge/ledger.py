"""
The twin's lifecycle log: an append-only, hash-chained record of what the twin learned and did.

ROS-free. One JSON object per line (UTF-8, canonical encoding: sorted keys, no spaces, strict
JSON; NaN and ±inf are written as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``)::

    {"data":{...},"hash":"<64 hex>","kind":"anomaly_raised","prev":"<64 hex>","seq":7,
     "time":1796371200.25}

``seq`` counts entries from 0, ``time`` is the wall clock when written (s since the epoch),
``kind`` names what happened (:data:`KINDS` lists the twin's own; any name is accepted), ``data``
is a JSON object, ``prev`` is the ``hash`` of the entry before (64 zeros for the first), and
``hash`` is the SHA-256 of the canonical encoding of the entry without ``hash``. Changing,
removing, reordering or inserting an entry breaks the chain at that entry
(:func:`verify_ledger`). A writer who rewrites every hash after a change, or who cuts whole
entries off the end, leaves a consistent chain: compare the head hash with one kept elsewhere
(``robot-twin ledger verify PATH --head HASH``) to detect that.

Durability (fsync policy): each entry is written with a single ``write`` on a file opened for
appending and then ``fsync``-ed before :meth:`Ledger.append` returns (the directory is fsync-ed
too when the file is created). An entry that ``append`` returned is on disk; a crash or kill can
leave at most the entry being written cut short at the end of the file. Verification names that
as a cut entry; the next writer moves the cut bytes to a file beside the log
(``<name>.cut-<UTC time>``), records what it removed (a ``recovered`` entry with the byte
count, their SHA-256 and that file) and continues the chain. A last entry that lacks only its
end of line but is complete and chains is kept (the writer adds the end of line); complete JSON
that fails its checks there is an edit, not a crash: the writer refuses the file. A failed
write is removed from the end of the file at once (as far as the disk lets it). ``durable=False``
skips the fsync (for tests and throw-away logs).

Failed background writes (:meth:`Ledger.append_async`) are not lost silently: the first one is
remembered and the writer writes nothing more (the log would look complete without the lost
entry); every later :meth:`Ledger.append` and :meth:`Ledger.append_async` raises it, and so does
:meth:`Ledger.close` if no caller has had it yet (from a call, or by reading the failed
entry's future).

One writer per file: the writer holds an exclusive ``flock`` on the file for as long as it is
open, so a second twin (another process, or a second :class:`Ledger` in the same process) gets
:class:`LedgerLocked`. Nodes of one process share one writer through :func:`open_ledger`.
"""
from concurrent.futures import Future
from dataclasses import dataclass
import datetime
import errno
import fcntl
import hashlib
import json
import math
import os
from pathlib import Path
import platform
import socket
import threading
import time

import numpy as np

GENESIS = '0' * 64
"""``prev`` of the first entry."""

FIELDS = ('data', 'hash', 'kind', 'prev', 'seq', 'time')
"""The keys of every entry, in canonical (sorted) order."""

KINDS = {
    'start': 'a twin component started: software version, configuration, files it loaded',
    'thresholds_loaded': 'commissioned anomaly thresholds loaded from a file',
    'thresholds_refused': 'a loaded thresholds file does not fit the stream (why: e.g. another '
                          'sample rate); commissioning starts again',
    'commissioning_started': 'commissioning began (its duration, whether it calibrates)',
    'calibration_finished': 'the model calibration of commissioning: accepted or why not',
    'commissioning_finished': 'commissioning ended: what was learned, over which stamps',
    'anomaly_raised': 'an anomaly alarm was raised (joint, fault type, score, since)',
    'anomaly_verdict': "an open alarm episode's verdict changed, once the new fault type or "
                       'joint dominated the evidence since the raise (new and previous, '
                       'confidence)',
    'anomaly_joint_verdict': "an alarmed joint's own verdict named another fault type or "
                             'joint after its raise (a surer naming, or a second fault on '
                             'that joint): group, new and previous, confidence',
    'anomaly_cleared': 'an anomaly alarm cleared',
    'payload_set': 'the twin was told of a new payload (mass, centre of mass, inertia)',
    'health_baseline': "the health monitor's baseline per joint",
    'health_rebaseline': 'the twin predicts with another model (payload, calibration): the '
                         'joints whose friction and residual evidence is learned again, why',
    'maintenance_done': 'maintenance declared done on a joint (/twin/maintenance, the hub): '
                        'joint, action, who, note; its health baseline is learned again',
    'rul_advice': 'changed maintenance advice of a joint: level, action, due date, RUL and '
                  'its interval, health index, the evidence behind it',
    'rul_derating': 'a changed speed derating asked of the governor (scale, joint, why)',
    'rul_log': 'the health history: continued, missing or unusable (why)',
    'anomaly_acknowledged': 'a person acknowledged an anomaly episode (twin_hub)',
    'corrective_actions_switched': 'a person switched corrective actions on or off through '
                                   'twin_hub: enabled, interface (REST, OPC UA, dashboard), '
                                   'time, the bridge',
    'command': "a corrective command and the governor's decision on it",
    'replay': 'a recording was replayed through the twin (bag, its digest, the report)',
    'recovered': 'a cut entry at the end of the file was removed on open (crash while writing)',
}
"""Entry kinds the twin writes, and what their ``data`` holds."""

_NONFINITE = {'NaN': math.nan, 'Infinity': math.inf, '-Infinity': -math.inf}


class LedgerError(ValueError):
    """The log cannot be used; the message names the file and what to do."""


class LedgerLocked(LedgerError):
    """Another writer (process, or Ledger in this process) has the file open."""


class LedgerCorrupt(LedgerError):
    """
    The chain is broken.

    Attributes
    ----------
    index : int
        0-based position of the first bad entry in the file.
    line : int
        Its 1-based line number.
    reason : str
        What is wrong with it.

    """

    def __init__(self, path, index, line, reason):
        self.path, self.index, self.line, self.reason = str(path), index, line, reason
        super().__init__(f'{path}: entry {index} (line {line}): {reason}')


def to_json_value(value):
    """
    Turn numbers, numpy arrays and containers into strict-JSON values.

    Non-finite floats become ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``; tuples and arrays
    become lists; other objects their ``repr``.
    """
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
        return [to_json_value(v) for v in value.tolist()]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    try:
        return [to_json_value(v) for v in value]
    except TypeError:
        return repr(value)


def decode_nonfinite(value):
    """Inverse of :func:`to_json_value` for numbers: ``"NaN"`` etc. back to floats."""
    if isinstance(value, str):
        return _NONFINITE.get(value, value)
    if isinstance(value, list):
        return [decode_nonfinite(v) for v in value]
    if isinstance(value, dict):
        return {k: decode_nonfinite(v) for k, v in value.items()}
    return value


def canonical_json(value):
    """Return the canonical encoding (str) of a strict-JSON value: sorted keys, no spaces."""
    return json.dumps(value, sort_keys=True, separators=(',', ':'), ensure_ascii=False,
                      allow_nan=False)


def entry_hash(entry):
    """Return the SHA-256 (hex) of an entry's canonical encoding without its ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != 'hash'}
    return hashlib.sha256(canonical_json(body).encode('utf-8')).hexdigest()


def file_digest(path):
    """Return ``{'path': absolute path, 'sha256': hex}`` of a file, or with ``error`` if unread."""
    path = os.path.abspath(str(path))
    digest = hashlib.sha256()
    try:
        with open(path, 'rb') as f:
            for block in iter(lambda: f.read(1 << 20), b''):
                digest.update(block)
    except OSError as exc:
        return {'path': path, 'error': exc.strerror or str(exc)}
    return {'path': path, 'sha256': digest.hexdigest()}


@dataclass(frozen=True)
class Entry:
    """
    One entry of the log.

    Attributes
    ----------
    seq : int
        Position in the chain, from 0.
    time : float
        Wall clock when written, s since the epoch.
    kind : str
        What happened (see :data:`KINDS`).
    data : dict
        Its details (strict-JSON values; see :func:`decode_nonfinite`).
    prev : str
        Hash of the entry before (:data:`GENESIS` for the first), 64 hex digits.
    hash : str
        SHA-256 of this entry without ``hash``, 64 hex digits.

    """

    seq: int
    time: float
    kind: str
    data: dict
    prev: str
    hash: str  # noqa: A003 (the entry's field, as in the file)

    def as_dict(self):
        """Return the entry as the JSON object written to the file."""
        return {'data': self.data, 'hash': self.hash, 'kind': self.kind, 'prev': self.prev,
                'seq': self.seq, 'time': self.time}


@dataclass(frozen=True)
class Verification:
    """
    Result of :func:`verify_ledger`.

    Attributes
    ----------
    entries : list of Entry
        Every entry before the first bad one (all of them when ``problem`` is None). When an
        entry does not chain to the one before it, that one is the suspect (changed and
        re-hashed) and is left out too: ``problem.index`` names it.
    problem : LedgerCorrupt or None
        The first bad (or suspect) entry.
    good_bytes : int
        Length of the file up to the end of the last good entry.
    torn : bool
        True when the only problem is the last entry without its end of line: cut short (a
        crash while writing), or complete and chained (the writer keeps it); not when it is
        complete JSON that fails its checks (an edit).

    """

    entries: list
    problem: object
    good_bytes: int
    torn: bool

    @property
    def ok(self):
        """Whether the whole file is an intact chain."""
        return self.problem is None

    @property
    def head(self):
        """Hash of the last good entry (:data:`GENESIS` for an empty log)."""
        return self.entries[-1].hash if self.entries else GENESIS


_NO_CHAIN = ('does not chain to the entry before it (prev hash differs): that entry was changed '
             'and re-hashed, or an entry was removed, inserted or moved')


def _check_line(raw, index, prev):
    """Return ``(Entry, None)`` for a good line (bytes, no newline), else ``(None, reason)``."""
    try:
        text = raw.decode('utf-8')
        obj = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f'not a JSON entry ({exc})'
    if not isinstance(obj, dict):
        return None, 'not a JSON object'
    if sorted(obj) != list(FIELDS):
        return None, f'has fields {sorted(obj)}, expected {list(FIELDS)}'
    seq, hash_, kind, data, t = obj['seq'], obj['hash'], obj['kind'], obj['data'], obj['time']
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(kind, str) \
            or not isinstance(data, dict) or not isinstance(t, (int, float)) \
            or isinstance(t, bool) or not isinstance(hash_, str) \
            or not isinstance(obj['prev'], str):
        return None, 'a field has the wrong type (seq int, time number, kind str, data object)'
    try:
        canonical = canonical_json(obj)
    except ValueError as exc:
        return None, f'not strict JSON ({exc})'
    if entry_hash(obj) != hash_:
        return None, 'its hash does not match its contents: the entry was changed'
    if canonical != text:
        return None, 'not in canonical form: the line was edited'
    if seq != index:
        return None, (f'has seq {seq} where seq {index} belongs: an entry was removed, '
                      'inserted or moved before it')
    if obj['prev'] != prev:
        return None, _NO_CHAIN
    return Entry(seq, float(t), kind, data, obj['prev'], hash_), None


def verify_ledger(path):
    """
    Check the whole chain of a log file.

    Parameters
    ----------
    path : str or Path
        The log file.

    Returns
    -------
    Verification
        The good entries and the first problem (None for an intact log). An empty file is an
        intact log with no entries.

    Raises
    ------
    LedgerError
        The file cannot be read.

    """
    try:
        with open(path, 'rb') as f:
            content = f.read()
    except OSError as exc:
        raise LedgerError(f'{path}: cannot read the ledger: {exc.strerror or exc}') from None
    entries = []
    starts = []           # byte offset of each good entry
    prev = GENESIS
    offset = 0
    index = 0
    while offset < len(content):
        end = content.find(b'\n', offset)
        if end < 0:
            return _verify_tail(path, content[offset:], index, prev, entries, offset)
        entry, reason = _check_line(content[offset:end], index, prev)
        if entry is None:
            if reason == _NO_CHAIN and entries:
                # entry index-1 was changed and re-hashed (its own hash fits), or this one
                # was changed with its hash: the one before the break is suspect, not intact
                suspect = index - 1
                reason = (f'this entry or its successor (entry {index}, line {index + 1}) was '
                          f'changed: entry {index} does not chain to this one (prev hash '
                          'differs): this entry was changed and re-hashed, or an entry was '
                          'removed, inserted or moved')
                return Verification(entries[:-1], LedgerCorrupt(path, suspect, index, reason),
                                    starts[-1], False)
            return Verification(entries, LedgerCorrupt(path, index, index + 1, reason), offset,
                                False)
        entries.append(entry)
        starts.append(offset)
        prev = entry.hash
        offset = end + 1
        index += 1
    return Verification(entries, None, offset, False)


def _verify_tail(path, tail, index, prev, entries, offset):
    """Judge a last entry without an end of line: cut by a crash, complete, or edited."""
    entry, reason = _check_line(tail, index, prev)
    if entry is not None:
        # one write per entry, its end of line included: no crash leaves this
        problem = LedgerCorrupt(path, index, index + 1,
                                'the last entry lacks its end of line but is complete and '
                                'chains (the next writer adds the end of line and keeps it)')
        return Verification(entries, problem, offset, True)
    try:
        json.loads(tail.decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError):
        problem = LedgerCorrupt(path, index, index + 1,
                                'the file was cut mid-entry: the last entry is incomplete '
                                f'({len(tail)} bytes without an end of line)')
        return Verification(entries, problem, offset, True)
    # complete JSON that fails its checks: a crash cuts an entry, it does not make another one
    problem = LedgerCorrupt(path, index, index + 1,
                            f'the last entry lacks its end of line and {reason}: it was '
                            'edited, not cut by a crash')
    return Verification(entries, problem, offset, False)


def read_ledger(path):
    """Return every entry of an intact log (list of Entry); raise LedgerCorrupt otherwise."""
    result = verify_ledger(path)
    if result.problem is not None:
        raise result.problem
    return result.entries


def software_version():
    """Return ``{'robot_twin': version, 'python': version, 'platform': ...}`` of this process."""
    try:
        from importlib.metadata import PackageNotFoundError, version
        try:
            ours = version('robot_twin')
        except PackageNotFoundError:
            ours = 'unknown (not installed)'
    except ImportError:   # pragma: no cover - Python < 3.8
        ours = 'unknown'
    return {'robot_twin': ours, 'python': platform.python_version(),
            'platform': platform.platform()}


class Ledger:
    """
    The writer of one log file (append-only, hash-chained, one writer per file).

    Opening checks the existing chain: a cut last entry (a crash while writing) is moved to a
    file beside the log (``<name>.cut-<UTC time>``) and a ``recovered`` entry records it; a
    complete, chained last entry that lacks only its end of line gets it and is kept; any other
    break raises :class:`LedgerCorrupt` (the chain is not continued past damage). Appends are
    thread-safe. After a failed :meth:`append_async` the writer writes nothing more and raises
    that failure (see the module docstring).

    Parameters
    ----------
    path : str or Path
        The log file; created (with its directory) if absent.
    durable : bool
        fsync every entry before :meth:`append` returns (see the module docstring).

    Raises
    ------
    LedgerLocked
        Another writer has the file open.
    LedgerCorrupt
        The existing file is damaged other than at its last entry.
    LedgerError
        The file cannot be created, opened or locked, or a cut last entry cannot be saved.

    """

    def __init__(self, path, *, durable=True):
        self.path = Path(path)
        self.durable = bool(durable)
        self._lock = threading.Lock()
        self._users = 1
        self._worker = None
        self._closing = False         # the last user called close(): no new entries
        self._closed = threading.Event()   # set when close() has closed the file
        self._failure = None          # LedgerError of the first failed background write
        self._failure_raised = False  # whether a caller has been given it
        created = not self.path.exists()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            raise LedgerError(f'{self.path}: cannot open the ledger: '
                              f'{exc.strerror or exc}') from None
        try:
            self._take_lock()
            if created and self.durable:
                _fsync_dir(self.path.parent)
            self._load()
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def _take_lock(self):
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LedgerLocked(
                    f'{self.path}: the ledger is open for writing elsewhere (another twin '
                    'process, or another writer in this one); two twins must not write one '
                    'log: give each its own ledger file') from None
            raise LedgerError(f'{self.path}: cannot lock the ledger: '
                              f'{exc.strerror or exc}') from None

    def _load(self):
        result = verify_ledger(self.path)
        if result.problem is not None and not result.torn:
            raise LedgerCorrupt(self.path, result.problem.index, result.problem.line,
                                result.problem.reason + '; the chain is not continued past '
                                'damage: run robot-twin ledger verify, keep this file as '
                                'evidence and start a new ledger file')
        self.seq = len(result.entries)
        self.head = result.head
        self._size = result.good_bytes
        if not result.torn:
            return
        with open(self.path, 'rb') as f:
            f.seek(result.good_bytes)
            cut = f.read()
        entry, _reason = _check_line(cut, self.seq, self.head)
        if entry is not None:
            # complete and chained, only its end of line missing (no crash leaves that): keep it
            self._size = result.good_bytes + len(cut)
            self._write(b'\n')
            self.seq += 1
            self.head = entry.hash
            return
        saved = self._save_cut(cut)
        try:
            os.ftruncate(self._fd, result.good_bytes)
            self._sync()
        except OSError as exc:
            raise LedgerError(f'{self.path}: cannot remove the cut last entry: '
                              f'{exc.strerror or exc}') from None
        self.append('recovered', {
            'removed_bytes': len(cut), 'removed_sha256': hashlib.sha256(cut).hexdigest(),
            'saved_to': str(saved),
            'reason': 'the last entry was cut short (a crash or kill while writing); it was '
                      f'moved to {saved.name} beside the log and the chain continues'})

    def _save_cut(self, cut):
        """Write the bytes of a cut last entry to ``<name>.cut-<UTC time>``; return its path."""
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime('%Y%m%dT%H%M%S.%fZ')
        base = self.path.with_name(f'{self.path.name}.cut-{stamp}')
        for k in range(100):
            target = base if k == 0 else base.with_name(f'{base.name}-{k}')
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue
            except OSError as exc:
                raise LedgerError(f'{self.path}: cannot save its cut last entry to {target} '
                                  f'({exc.strerror or exc}); the file is left as it is') from None
            try:
                view = memoryview(cut)
                while view:
                    view = view[os.write(fd, view):]
                if self.durable:
                    os.fsync(fd)
            except OSError as exc:
                os.close(fd)
                raise LedgerError(f'{self.path}: cannot save its cut last entry to {target} '
                                  f'({exc.strerror or exc}); the file is left as it is') from None
            os.close(fd)
            if self.durable:
                _fsync_dir(self.path.parent)
            return target
        raise LedgerError(f'{self.path}: cannot save its cut last entry: {base} and 99 more '
                          'names beside it exist')

    def _sync(self):
        if self.durable:
            os.fsync(self._fd)

    @property
    def closed(self):
        """Whether the writer has been closed."""
        return self._fd is None

    def append(self, kind, data=None, *, wall_time=None):
        """
        Append one entry and make it durable; return it (:class:`Entry`).

        Entries already queued by :meth:`append_async` are written first: the log keeps the
        order in which things were told to it (an anomaly queued by the anomaly node, then the
        command the bridge sends for it, in the one-process twin).

        Parameters
        ----------
        kind : str
            What happened (see :data:`KINDS`); a non-empty string.
        data : dict, optional
            Its details; numbers, strings, lists, dicts and numpy values (converted by
            :func:`to_json_value`).
        wall_time : float, optional
            The entry's time, s since the epoch; default now.

        Raises
        ------
        LedgerError
            Closed, bad arguments, or the write failed (disk full...): the entry is not in
            the log, and a partial write is removed before the next append.

        """
        self._check_failure()
        with self._lock:
            self._check_open()
            worker = self._worker
            if worker is not None:      # queued under the lock: close() drains it after this
                queued = worker.submit(self._append_now, kind, data, wall_time=wall_time)
        if worker is not None:
            try:
                return queued.result()
            except LedgerError as exc:
                if exc is self._failure:
                    self._failure_raised = True
                raise
        return self._append_now(kind, data, wall_time=wall_time)

    def _check_open(self):
        """Refuse a new entry once the last user began to close (call with the lock held)."""
        if self._fd is None or self._closing:
            raise LedgerError(f'{self.path}: the ledger is closed')

    def _check_failure(self):
        """Raise the first failed background write, if any (nothing is written after it)."""
        failure = self._failure
        if failure is not None:
            self._failure_raised = True
            raise failure

    @property
    def failure(self):
        """Return the first failed background write (LedgerError), or None."""
        return self._failure

    def _append_queued(self, kind, body, t):
        """Write a queued, checked entry (writer thread); remember the first failure."""
        try:
            return self._write_entry(kind, body, t)
        except LedgerError as exc:
            with self._lock:
                if self._failure is None:
                    self._failure = LedgerError(
                        f'{exc}; a queued {kind!r} entry is not in the log, so this writer '
                        'writes no further entries (the log would look complete without it)')
                failure = self._failure
            if exc is failure:
                raise
            raise failure from None

    def _append_now(self, kind, data=None, *, wall_time=None):
        """Append one entry now, in this thread (see :meth:`append`)."""
        body, t = self._entry_body(kind, data, wall_time)
        return self._write_entry(kind, body, t)

    def _entry_body(self, kind, data, wall_time):
        """Check an entry's arguments; return its ``(data, time)`` as JSON values."""
        if not isinstance(kind, str) or not kind:
            raise LedgerError(f'{self.path}: an entry kind must be a non-empty string, '
                              f'got {kind!r}')
        body = to_json_value({} if data is None else data)
        if not isinstance(body, dict):
            raise LedgerError(f'{self.path}: entry data must be a mapping, got '
                              f'{type(data).__name__}')
        t = to_json_value(time.time() if wall_time is None else float(wall_time))
        if not isinstance(t, float):
            raise LedgerError(f'{self.path}: wall_time must be finite, got {wall_time!r}')
        return body, t

    def _write_entry(self, kind, body, t):
        """Chain, write and make durable one checked entry; return it (:class:`Entry`)."""
        with self._lock:
            if self._fd is None:
                raise LedgerError(f'{self.path}: the ledger is closed')
            if self._failure is not None:       # never write past a lost entry
                raise self._failure
            entry = {'data': body, 'kind': kind, 'prev': self.head, 'seq': self.seq,
                     'time': t}
            entry['hash'] = entry_hash(entry)
            line = (canonical_json(entry) + '\n').encode('utf-8')
            self._write(line)
            self.seq += 1
            self.head = entry['hash']
        return Entry(entry['seq'], t, kind, body, entry['prev'], entry['hash'])

    def _write(self, line):
        try:
            if os.fstat(self._fd).st_size != self._size:   # a failed write left a piece
                os.ftruncate(self._fd, self._size)
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            self._sync()
        except OSError as exc:
            try:                        # remove the piece now: no complete-looking tail left
                os.ftruncate(self._fd, self._size)
            except OSError:
                pass                    # the next append tries again
            raise LedgerError(f'{self.path}: cannot write the ledger: '
                              f'{exc.strerror or exc}') from None
        self._size += len(line)

    def append_async(self, kind, data=None, *, wall_time=None):
        """
        Queue an entry for this ledger's writer thread; return a ``Future`` of its Entry.

        For callers that must not wait for the disk (a 1 kHz executor thread: a durable append
        takes milliseconds): entries queued here are written in the order queued, each made
        durable as by :meth:`append`; ``future.result()`` waits for it (and raises its
        :class:`LedgerError`). The entry's time is the time of the call. :meth:`close` writes
        what is queued first.

        A failed write is not lost when nobody reads its future: the writer remembers the first
        one and writes nothing more; this method, :meth:`append` and :meth:`close` raise it
        (:attr:`failure`).
        """
        self._check_failure()
        # checked here: a bad argument is the caller's error, not a failed write
        body, t = self._entry_body(kind, data, time.time() if wall_time is None else wall_time)
        with self._lock:
            self._check_open()          # never a new writer thread once close() began
            if self._worker is None:
                from concurrent.futures import ThreadPoolExecutor
                self._worker = ThreadPoolExecutor(1, thread_name_prefix='ledger')
            future = _QueuedEntry(self)
            self._worker.submit(future.run, kind, body, t)
            return future

    def record_start(self, component, config=None, files=None, **extra):
        """
        Append a ``start`` entry: software version, host, pid, configuration, file digests.

        Parameters
        ----------
        component : str
            What started (a node name, ``replay``...).
        config : dict, optional
            Its configuration (parameter values).
        files : dict, optional
            ``{name: path}`` of files it loaded (URDF, identified parameters, thresholds);
            recorded with their SHA-256 (empty paths skipped).
        **extra
            More fields for ``data``.

        """
        data = {'component': str(component), 'software': software_version(),
                'host': socket.gethostname(), 'pid': os.getpid(),
                'config': dict(config or {}),
                'files': {k: file_digest(v) for k, v in (files or {}).items() if v}}
        data.update(extra)
        return self.append('start', data)

    def close(self):
        """
        Release one user; the last one writes what is queued and closes the file (lock).

        From the moment the last user calls it, :meth:`append` and :meth:`append_async` refuse
        new entries ("closed"); what was queued before is written.

        Raises
        ------
        LedgerError
            After closing the file: a queued entry could not be written and no caller has
            had that failure yet (raised by a call, or read from the entry's future;
            :attr:`failure`).

        """
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._fd is None or self._closing:
                return
            self._closing = True
            worker, self._worker = self._worker, None
        try:
            if worker is not None:
                worker.shutdown(wait=True)   # queued entries are written before the close
            with self._lock:
                fd, self._fd = self._fd, None
            with _SHARED_LOCK:
                if _SHARED.get(_key(self.path)) is self:
                    del _SHARED[_key(self.path)]
            os.close(fd)
        finally:
            self._closed.set()
        if self._failure is not None and not self._failure_raised:
            self._check_failure()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _QueuedEntry(Future):
    """The future of an :meth:`Ledger.append_async` entry; reading its failure reports it."""

    def __init__(self, ledger):
        super().__init__()
        self._ledger = ledger

    def run(self, kind, body, t):
        """Write the entry (the ledger's writer thread) and settle the future."""
        if not self.set_running_or_notify_cancel():
            return
        try:
            self.set_result(self._ledger._append_queued(kind, body, t))
        except BaseException as exc:        # noqa: B902 - handed to whoever waits for it
            self.set_exception(exc)

    def _seen(self, exc):
        if exc is not None and exc is self._ledger._failure:
            self._ledger._failure_raised = True    # a caller has it: close need not raise it
        return exc

    def exception(self, timeout=None):
        """Return the entry's LedgerError (None if written); see ``Future.exception``."""
        return self._seen(super().exception(timeout))

    def result(self, timeout=None):
        """Return the written Entry or raise its LedgerError; see ``Future.result``."""
        try:
            return super().result(timeout)
        except LedgerError as exc:
            self._seen(exc)
            raise


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_SHARED = {}
_SHARED_LOCK = threading.Lock()


def _key(path):
    return os.path.realpath(str(path))


def open_ledger(path, *, durable=True):
    """
    Return this process's writer of ``path``, opening it on first use.

    Nodes that run in one process (bridge and anomaly) each call this and each
    :meth:`Ledger.close` when done; the file closes with the last of them. Another process
    still gets :class:`LedgerLocked`. A writer whose last user is closing it is waited for,
    then the file is opened anew.

    Raises
    ------
    LedgerError
        This process's writer of ``path`` had a failed background write (:attr:`Ledger.failure`)
        and is still open: it writes no further entries, so it is not handed out again; or the
        file cannot be opened (see :class:`Ledger`).

    """
    while True:
        with _SHARED_LOCK:
            ledger = _SHARED.get(_key(path))
            if ledger is None:
                ledger = Ledger(path, durable=durable)
                _SHARED[_key(path)] = ledger
                return ledger
            with ledger._lock:
                if not ledger._closing and ledger._fd is not None:
                    if ledger._failure is not None:
                        raise LedgerError(
                            f"{ledger.path}: this process's writer of the ledger failed and "
                            f'writes no further entries ({ledger._failure}); it closes when '
                            'its users close it; start a new ledger file once the disk has '
                            'room')
                    ledger._users += 1
                    return ledger
        ledger._closed.wait()           # its last user is closing it: open the file anew


def format_time(t):
    """Return wall time ``t`` (s since the epoch) as ISO 8601 UTC with milliseconds."""
    stamp = datetime.datetime.fromtimestamp(float(t), tz=datetime.timezone.utc)
    return stamp.isoformat(timespec='milliseconds').replace('+00:00', 'Z')


def parse_time(text):
    """
    Parse a ``--since`` value: seconds since the epoch, or an ISO 8601 date or date-time.

    A date-time without a zone is UTC. Raises ValueError with the accepted forms.
    """
    text = str(text).strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        value = datetime.datetime.fromisoformat(text.replace('Z', '+00:00'))
    except ValueError:
        raise ValueError(f'{text!r} is not a time: give seconds since the epoch or an ISO '
                         'date or date-time (2026-12-04, 2026-12-04T10:30:00Z)') from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.timestamp()
