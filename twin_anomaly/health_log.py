r"""
The joint health history on disk: append-only JSON lines, each with its own checksum (ROS-free).

Why a file of its own: the RUL of a joint is a trend over weeks of operating hours, so the
history must survive a restart of the node or of the computer, and a crash must not cost more
than the record being written.

Format (version 1, UTF-8, one JSON object per line, ``\\n``-terminated)::

    {"kind": "header", "format": "robot_twin.health_log", "version": 1,
     "joints": ["joint1", ...], "created": "2026-12-04T08:00:00+00:00", "seq": 0,
     "crc": "1c291ca3"}
    {"kind": "baseline", "seq": 1, ...}      # the commissioned health evidence
    {"kind": "health", "seq": 2, ...}        # one record per health epoch

Every line carries ``seq`` (0, 1, 2, ... in file order) and ``crc``: the CRC-32 (zlib, 8 hex
digits) of the line's canonical JSON without the ``crc`` key (``sort_keys``, separators
``,`` and ``:``, non-finite floats written as ``null``). What the other keys of ``baseline``
and ``health`` records hold is up to the writer (:mod:`twin_anomaly.rul_monitor` documents
its records); this module only guarantees that what it returns was written whole and in order.

Crash safety and fsync policy: a record is one ``os.write`` of the whole line on a descriptor
opened with ``O_APPEND``, followed by ``os.fsync`` of the file (and of its directory when the
file is created). Records are rare (one per health epoch, minutes of operating time), so
syncing every record costs nothing that matters, and a power cut loses at most the record being
written. On opening:

- no file: a new one is started (with a header); a warning says so;
- a last line cut short (no newline or a bad checksum on the *last* line: a write cut by a
  kill or a power cut): that line is dropped (the file is truncated to the last whole record)
  with a warning;
- any other damage (a bad line before the last, a sequence gap, another format or version,
  other joints): the file is moved aside to ``<name>.corrupt-<UTC time>`` and a new file is
  started holding the header and the whole records that preceded the damage; a warning names
  the file kept aside. Opening never raises for a damaged file.

Two writers on one file are refused (an exclusive ``flock``): :class:`HealthLogError`.
"""
import datetime
import fcntl
import json
import math
import os
from pathlib import Path
import zlib

import numpy as np

__all__ = ['FORMAT', 'HealthLog', 'HealthLogError', 'VERSION', 'decode_line', 'encode_record',
           'json_safe']

FORMAT = 'robot_twin.health_log'
VERSION = 1


class HealthLogError(RuntimeError):
    """The health log cannot be used at all (unwritable place, locked by another process)."""


def json_safe(value):
    """Return ``value`` with non-finite floats replaced by None (strict JSON), recursively."""
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _canonical(body):
    return json.dumps(body, sort_keys=True, separators=(',', ':'), allow_nan=False)


def encode_record(body):
    """
    Return the line (with its newline) of one record.

    Parameters
    ----------
    body : dict
        JSON-able values (floats, ints, str, bool, None, lists, dicts); NaN and inf become
        null. Must not contain the key ``crc``.

    """
    body = json_safe(dict(body))
    if 'crc' in body:
        raise ValueError("a record must not carry its own 'crc' key")
    text = _canonical(body)
    crc = zlib.crc32(text.encode('utf-8')) & 0xffffffff
    return f'{text[:-1]},"crc":"{crc:08x}"}}\n' if text != '{}' else f'{{"crc":"{crc:08x}"}}\n'


def decode_line(line):
    r"""
    Return the record of one line, or None if it is not a whole, intact record.

    Parameters
    ----------
    line : str
        One line including its ``\\n`` (a line without one was cut short).

    """
    if not line.endswith('\n'):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    crc = record.pop('crc', None)
    try:
        expected = zlib.crc32(_canonical(record).encode('utf-8')) & 0xffffffff
    except (TypeError, ValueError):
        return None
    if crc != f'{expected:08x}':
        return None
    return record


def _utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


class HealthLog:
    """
    An open health log: read what survived, append new records.

    Parameters
    ----------
    path : str or Path
        The log file (its directory is created if needed).
    joint_names : sequence of str
        The robot's joints in model order; a file written for other joints is kept aside.

    Attributes
    ----------
    records : list of dict
        The intact records after the header, in order (each with ``kind`` and ``seq``).
    warnings : list of str
        What happened on opening (new file, dropped tail, file kept aside), for the node to
        log and the lifecycle log to record.

    Raises
    ------
    HealthLogError
        The place cannot be written, or another process holds the log.

    """

    def __init__(self, path, joint_names):
        self.path = Path(path).expanduser()
        self.joint_names = [str(j) for j in joint_names]
        self.records = []
        self.warnings = []
        self._fd = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path.with_name(self.path.name + '.lock'), 'a')
        except OSError as exc:
            raise HealthLogError(f'cannot use health log {self.path}: {exc}') from exc
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise HealthLogError(f'health log {self.path} is in use by another process '
                                 f'(lock {self._lock.name}); give each twin its own log_path')
        try:
            self._open()
        except OSError as exc:
            self.close()
            raise HealthLogError(f'cannot use health log {self.path}: {exc}') from exc

    # ------------------------------------------------------------------ opening
    def _open(self):
        if not self.path.exists():
            self.warnings.append(f'health log {self.path} not found; starting a new one')
            self._start_new([])
            return
        with open(self.path, 'rb') as handle:
            data = handle.read()
        pieces = data.split(b'\n')
        raw = [p + b'\n' for p in pieces[:-1]] + ([pieces[-1]] if pieces[-1] else [])
        lines = [b.decode('utf-8', errors='replace') for b in raw]
        good, bad_index, problem = self._scan(lines)
        if bad_index is None:
            self.records = good
            self._open_append()
            return
        if bad_index == len(lines) - 1 and bad_index > 0 and problem == 'damaged':
            os.truncate(self.path, sum(len(b) for b in raw[:bad_index]))
            self.records = good
            self.warnings.append(
                f'health log {self.path}: the last record was cut short (a crash while '
                f'writing); dropped it, {len(good)} records kept')
            self._open_append()
            return
        aside = self._move_aside()
        self.warnings.append(
            f'health log {self.path} is damaged at line {bad_index + 1} ({problem}); kept it '
            f'as {aside} and started a new log with the {len(good)} intact records before it')
        self._start_new(good)

    def _scan(self, lines):
        """Return (records after the header, index of the first bad line or None, problem)."""
        if not lines:
            return [], 0, 'empty file'
        header = decode_line(lines[0])
        if header is None:
            return [], 0, 'damaged'
        if header.get('kind') != 'header' or header.get('format') != FORMAT:
            return [], 0, 'not a robot_twin health log'
        if header.get('version') != VERSION:
            return [], 0, f"format version {header.get('version')!r}, this reader knows {VERSION}"
        if header.get('joints') != self.joint_names:
            return [], 0, (f"written for joints {header.get('joints')}, the robot has "
                           f'{self.joint_names}')
        good = []
        for i, line in enumerate(lines[1:], start=1):
            record = decode_line(line)
            if record is None:
                return good, i, 'damaged'
            if record.get('seq') != i:
                return good, i, f"sequence {record.get('seq')!r} where {i} was expected"
            good.append(record)
        return good, None, ''

    def _move_aside(self):
        stamp = _utc_now().strftime('%Y%m%dT%H%M%S%fZ')
        aside = self.path.with_name(f'{self.path.name}.corrupt-{stamp}')
        os.replace(self.path, aside)
        return aside

    def _start_new(self, records):
        header = {'kind': 'header', 'format': FORMAT, 'version': VERSION,
                  'joints': self.joint_names, 'created': _utc_now().isoformat(), 'seq': 0}
        tmp = self.path.with_name(self.path.name + '.new')
        lines = [encode_record(header)]
        for i, record in enumerate(records, start=1):
            lines.append(encode_record(dict(record, seq=i)))
        with open(tmp, 'w', encoding='utf-8') as handle:
            handle.write(''.join(lines))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self._sync_dir()
        self.records = [dict(r, seq=i) for i, r in enumerate(records, start=1)]
        self._open_append()

    def _sync_dir(self):
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _open_append(self):
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    # ------------------------------------------------------------------ writing
    @property
    def next_seq(self):
        """Return the ``seq`` the next record gets."""
        return len(self.records) + 1

    def append(self, body):
        """
        Append one record (``kind`` and the writer's keys; ``seq`` is set here), synced.

        Returns
        -------
        dict
            The record as it will be read back (non-finite floats as None).

        Raises
        ------
        OSError
            The write failed (disk full, file removed): the record is not in the log.

        """
        if self._fd is None:
            raise OSError(f'health log {self.path} is closed')
        record = json_safe(dict(body, seq=self.next_seq))
        data = encode_record(record).encode('utf-8')
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f'short write to health log {self.path} ({written} of {len(data)} '
                          'bytes)')
        os.fsync(self._fd)
        self.records.append(record)
        return record

    def close(self):
        """Close the file and release the lock (records stay on disk)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if getattr(self, '_lock', None) is not None and not self._lock.closed:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
