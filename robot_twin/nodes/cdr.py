"""
JointState and WrenchStamped read from and written to their serialized (CDR) bytes with numpy.

The twin's nodes take the robot's 1 kHz streams as serialized messages (``raw=True``
subscriptions) and publish their 1 kHz outputs as bytes: building and reading rclpy message
objects for every sample cost more than the twin's own work (BENCHMARKS.md, issue 13). This
module knows the one layout those two message types have in the default encoding of ROS 2
(XCDR1, little endian, which ``rclpy.serialization`` produces):

- an encapsulation header of 4 bytes (``00 01 00 00``: little-endian CDR), then, aligned
  relative to the byte after it: ``header.stamp`` (int32 sec, uint32 nanosec), ``frame_id``
  (uint32 length incl. the NUL, bytes);
- JointState: ``name`` (uint32 count, each a string as above, 4-aligned), then ``position``,
  ``velocity``, ``effort`` (each uint32 count, then doubles aligned to 8);
- WrenchStamped: force x y z, torque x y z (doubles aligned to 8);
- DiagnosticArray (written only, for the twin's 10 Hz reports): ``status`` (uint32 count, each
  ``level`` (one byte), ``name``, ``message``, ``hardware_id`` (strings), ``values`` (uint32
  count, each ``key`` and ``value`` strings)).

A reader returns None for any other encapsulation (big endian, XCDR2), so the caller can fall
back to ``rclpy.serialization.deserialize_message``; malformed bytes raise :class:`CdrError`,
never read past the end. Writers keep one pre-built message whose values numpy overwrites in
place. ``test/test_cdr.py`` checks both directions against rclpy's own serialization.
"""
import struct

import numpy as np

CDR_LE = b'\x00\x01'
_STAMP = struct.Struct('<iI')
_U32 = struct.Struct('<I')
_EMPTY = np.zeros(0)
_EMPTY.setflags(write=False)


class CdrError(ValueError):
    """The bytes are not a well-formed message of the expected type."""


def _align(offset, size):
    """Offset rounded up to ``size``, relative to the byte after the encapsulation header."""
    return offset + (-(offset - 4) % size)


def _read_string(data, offset):
    """Return ``(text, offset after it)`` of a CDR string at ``offset``."""
    (length,) = _U32.unpack_from(data, offset)
    start = offset + 4
    end = start + length
    if length == 0 or end > len(data) or data[end - 1] != 0:
        raise CdrError(f'bad string of length {length} at byte {offset}')
    return data[start:end - 1].decode('utf-8'), _align(end, 4)


def _pad(out, size):
    """Pad the bytearray ``out`` to a multiple of ``size`` after the encapsulation header."""
    out += b'\x00' * (-(len(out) - 4) % size)


def _write_u32(out, value):
    """Append a uint32 (a length or a count), 4-aligned."""
    _pad(out, 4)
    out += _U32.pack(value)


def _write_string(out, text):
    """
    Append a string: its length (4-aligned), its bytes and a NUL.

    No padding after it: each field aligns itself (a byte field, such as a DiagnosticStatus
    level, follows directly).
    """
    raw = text.encode('utf-8') + b'\x00'
    _write_u32(out, len(raw))
    out += raw


def _write_doubles(out, values):
    """Append a sequence<double>; return the offset of its first value (None when empty)."""
    _write_u32(out, len(values))
    if not len(values):
        return None
    _pad(out, 8)
    offset = len(out)
    out += np.asarray(values, dtype='<f8').tobytes()
    return offset


def stamp_of(data):
    """Return ``(sec, nanosec)`` of a serialized message whose first field is a Header."""
    if len(data) < 12:
        raise CdrError(f'{len(data)} bytes cannot hold a header')
    return _STAMP.unpack_from(data, 4) if data[1] == 1 else struct.unpack_from('>iI', data, 4)


class JointStateReader:
    """
    Read serialized sensor_msgs/JointState messages into numpy arrays.

    The names and frame of the previous message are remembered: when the next message has the
    same bytes there (a robot always sends the same names), they are not decoded again.
    """

    def __init__(self):
        self._prefix = None     # bytes from frame_id's length to the end of the names
        self._names = ()
        self._values_at = 0

    def read(self, data):
        """
        Return ``(sec, nanosec, names, position, velocity, effort)`` or None.

        ``names`` is a tuple of str; the arrays are read-only float64 views into ``data``,
        (0,) where the message has none. None when ``data`` is not little-endian XCDR1 (use
        rclpy's deserialization then). Raises :class:`CdrError` for malformed bytes.
        """
        if data[:2] != CDR_LE:
            return None
        try:
            sec, nanosec = _STAMP.unpack_from(data, 4)
            prefix = self._prefix
            if prefix is not None and data.startswith(prefix, 12):
                names, offset = self._names, self._values_at
            else:
                names, offset = self._read_names(data)
            arrays = []
            for _ in range(3):
                (count,) = _U32.unpack_from(data, offset)
                offset += 4
                if count:
                    offset = _align(offset, 8)
                    arrays.append(np.frombuffer(data, '<f8', count, offset))
                    offset += 8 * count
                else:
                    arrays.append(_EMPTY)
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            raise CdrError(f'malformed JointState ({exc})') from None
        return (sec, nanosec, names, *arrays)

    def _read_names(self, data):
        _frame, offset = _read_string(data, 12)
        (count,) = _U32.unpack_from(data, offset)
        offset += 4
        if count > (len(data) - offset) // 5:
            raise CdrError(f'{count} names cannot fit in {len(data)} bytes')
        names = []
        for _ in range(count):
            name, offset = _read_string(data, offset)
            names.append(name)
        self._prefix = bytes(data[12:offset])
        self._names = tuple(names)
        self._values_at = offset
        return self._names, offset


def _string_field(text):
    """Return the CDR bytes of a string field: its length (with the NUL), bytes, NUL."""
    raw = text.encode('utf-8') + b'\x00'
    return _U32.pack(len(raw)) + raw


_EMPTY_FRAME = _string_field('')


class WrenchReader:
    """
    Read serialized geometry_msgs/WrenchStamped messages.

    Parameters
    ----------
    frame_id : str or None
        The frame the wrenches should be in (the force-torque sensor's): :meth:`read_framed`
        compares each message's ``frame_id`` bytes with it, and decodes only a frame that
        differs. None = only an empty frame counts as expected.

    """

    def __init__(self, frame_id=None):
        self.frame_id = frame_id or None
        self._expected = _EMPTY_FRAME if frame_id is None else _string_field(frame_id)

    def read(self, data):
        """
        Return ``(sec, nanosec, wrench)`` with ``wrench`` (6,) ``[fx fy fz tx ty tz]``, or None.

        None when ``data`` is not little-endian XCDR1; raises :class:`CdrError` if malformed.
        ``wrench`` is a read-only view into ``data``.
        """
        parsed = self.read_framed(data)
        return None if parsed is None else parsed[:3]

    def read_framed(self, data):
        """
        Return ``(sec, nanosec, wrench, frame_id)`` as :meth:`read`, with the message's frame.

        ``frame_id`` is None when the message's ``header.frame_id`` is empty or the reader's
        ``frame_id`` (the bytes are compared, nothing is decoded), else the frame as str.
        """
        if data[:2] != CDR_LE:
            return None
        try:
            sec, nanosec = _STAMP.unpack_from(data, 4)
            if data.startswith(self._expected, 12):
                frame, offset = None, 12 + len(self._expected)
            elif data.startswith(_EMPTY_FRAME, 12):
                frame, offset = None, 12 + len(_EMPTY_FRAME)
            else:
                frame, offset = _read_string(data, 12)
            wrench = np.frombuffer(data, '<f8', 6, _align(offset, 8))
        except (struct.error, ValueError, UnicodeDecodeError) as exc:
            raise CdrError(f'malformed WrenchStamped ({exc})') from None
        return sec, nanosec, wrench, frame


class JointStateWriter:
    """
    Serialized sensor_msgs/JointState with fixed names, refilled per sample.

    Parameters
    ----------
    names : sequence of str
        Joint names, in the order of the value arrays.
    frame_id : str
        ``header.frame_id``.
    fields : sequence of str
        Which of ``position``, ``velocity``, ``effort`` the messages carry (the others are
        empty, "not provided").

    """

    def __init__(self, names, frame_id='', fields=('position', 'velocity', 'effort')):
        n = len(names)
        out = bytearray(CDR_LE + b'\x00\x00' + _STAMP.pack(0, 0))
        _write_string(out, frame_id)
        _write_u32(out, n)
        for name in names:
            _write_string(out, name)
        offsets = {}
        for field in ('position', 'velocity', 'effort'):
            offsets[field] = _write_doubles(out, np.zeros(n) if field in fields else ())
        self._buffer = out
        self._views = {f: np.frombuffer(out, '<f8', n, o) for f, o in offsets.items()
                       if o is not None}

    def write(self, sec, nanosec, position=None, velocity=None, effort=None):
        """Return the message bytes with this stamp and values ((n,) arrays; None = keep)."""
        buf = self._buffer
        _STAMP.pack_into(buf, 4, sec, nanosec)
        for field, values in (('position', position), ('velocity', velocity),
                              ('effort', effort)):
            if values is not None:
                self._views[field][:] = values
        return bytes(buf)


def write_diagnostic_array(sec, nanosec, statuses, frame_id=''):
    """
    Return a serialized diagnostic_msgs/DiagnosticArray.

    Building the message objects (a KeyValue per value) and serializing them cost about a
    millisecond per report of the twin, time in which a 1 kHz sample waits (BENCHMARKS.md).

    Parameters
    ----------
    sec, nanosec : int
        ``header.stamp``.
    statuses : iterable of tuple
        ``(level, name, message, hardware_id, pairs)`` per DiagnosticStatus: ``level`` an int
        0-3, the texts str, ``pairs`` an iterable of ``(key, value)`` str pairs.
    frame_id : str
        ``header.frame_id``.

    """
    out = bytearray(CDR_LE + b'\x00\x00' + _STAMP.pack(sec, nanosec))
    _write_string(out, frame_id)
    statuses = list(statuses)
    _write_u32(out, len(statuses))
    for level, name, message, hardware_id, pairs in statuses:
        out.append(level)                           # a byte: no alignment
        for text in (name, message, hardware_id):
            _write_string(out, text)
        pairs = list(pairs)
        _write_u32(out, len(pairs))
        for key, value in pairs:
            _write_string(out, key)
            _write_string(out, value)
    return bytes(out)


class WrenchWriter:
    """Serialized geometry_msgs/WrenchStamped in one frame, refilled per sample."""

    def __init__(self, frame_id=''):
        out = bytearray(CDR_LE + b'\x00\x00' + _STAMP.pack(0, 0))
        _write_string(out, frame_id)
        _pad(out, 8)
        self._at = len(out)
        out += bytes(48)
        self._buffer = out
        self._view = np.frombuffer(out, '<f8', 6, self._at)

    def write(self, sec, nanosec, wrench):
        """Return the message bytes with this stamp and ``wrench`` (6,) [N, N·m]."""
        _STAMP.pack_into(self._buffer, 4, sec, nanosec)
        self._view[:] = wrench
        return bytes(self._buffer)
