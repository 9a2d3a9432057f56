"""
Joint logs for system identification: read CSV logs and recordings, clean, resample, filter.

A log is read into a :class:`LogData` (the log's own joint order, raw time stamps, NaN where a
value is absent), then :func:`prepare_log` maps it onto the model's joint order, drops NaN rows,
resamples the irregular stamps onto a uniform grid and low-pass filters positions, velocities
and efforts with the same zero-phase Butterworth filter (``scipy.signal.filtfilt``), so that the
accelerations (and velocities, when the log has none) obtained by central differences stay
aligned in time with the filtered efforts.

Units are SI: s, rad or m, rad/s or m/s, N·m or N.
"""
from dataclasses import dataclass, field
import math
from pathlib import Path
import warnings

import numpy as np
from scipy import signal
from twin_sim.recording import is_recording_path, open_recording, RecordingError

FIELDS = ('position', 'velocity', 'effort')
DEFAULT_TOPIC = '/joint_states'
DEFAULT_CUTOFF_HZ = 10.0
JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'
MAX_GRID_SAMPLES = 5_000_000
"""Most samples of the uniform grid (83 min at 1 kHz): more is a stamp far from the others."""


class SysIdError(ValueError):
    """A log, model or option that system identification cannot use; the message says why."""


class SysIdWarning(UserWarning):
    """A problem in the log that identification works around (and reports)."""


def _warn(bucket, text):
    """Record ``text`` in ``bucket`` (a list, for the report) and emit a :class:`SysIdWarning`."""
    bucket.append(text)
    warnings.warn(text, SysIdWarning, stacklevel=3)


@dataclass
class LogData:
    """
    A joint log as recorded, in the log's own joint order.

    Attributes
    ----------
    time : (N,) float, s
        Sample stamps, as recorded (may be irregular, unsorted or contain NaN).
    joint_names : list of str, length k
        Joints the log has, in its own order.
    position, velocity, effort : (N, k) float
        rad or m, rad/s or m/s, N·m or N. A column the log does not have is all NaN.
    source : str
        Where the log came from (path, and topic for a bag).
    warnings : list of str
        Problems met while reading.

    """

    time: np.ndarray
    joint_names: list
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    source: str = ''
    warnings: list = field(default_factory=list)

    def has(self, joint, what):
        """Tell whether the log has any finite ``what`` sample for ``joint``."""
        if joint not in self.joint_names:
            return False
        column = getattr(self, what)[:, self.joint_names.index(joint)]
        return bool(np.isfinite(column).any())


@dataclass
class ProcessedLog:
    """
    A log on a uniform time grid, in the model's joint order, filtered and differentiated.

    Attributes
    ----------
    time : (N,) float, s
        Uniform grid, starting where the log starts (edge samples trimmed).
    joint_names : list of str, length n
        The model's joint order.
    q, qd, qdd : (N, n) float
        Filtered position (rad or m), velocity and acceleration.
    tau : (N, n) float
        Effort (N·m or N) filtered with the same zero-phase filter as ``q``.
    tau_raw : (N, n) float
        Effort linearly interpolated onto the grid, not filtered.
    measured : (n,) bool
        True for joints whose effort and position the log has; False for joints held at zero.
    sample_rate_hz, cutoff_hz : float
        Grid rate and filter cut-off.
    velocity_source : dict
        Per joint, ``'measured'`` or ``'differentiated'``.
    n_raw_samples, n_dropped_nan : int
        Samples in the log, and rows dropped because a used value was NaN.
    warnings : list of str
        Everything that was worked around.

    """

    time: np.ndarray
    joint_names: list
    q: np.ndarray
    qd: np.ndarray
    qdd: np.ndarray
    tau: np.ndarray
    tau_raw: np.ndarray
    measured: np.ndarray
    sample_rate_hz: float
    cutoff_hz: float
    velocity_source: dict
    n_raw_samples: int
    n_dropped_nan: int
    warnings: list = field(default_factory=list)

    def __len__(self):
        return len(self.time)

    def slice(self, start, stop):  # noqa: A003 (public method name)
        """Return the samples ``start:stop`` as a new :class:`ProcessedLog` (shares warnings)."""
        s = np.s_[start:stop]
        return ProcessedLog(
            self.time[s], self.joint_names, self.q[s], self.qd[s], self.qdd[s], self.tau[s],
            self.tau_raw[s], self.measured, self.sample_rate_hz, self.cutoff_hz,
            self.velocity_source, self.n_raw_samples, self.n_dropped_nan, self.warnings)


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------
def read_log(path, topic=None):
    """
    Read a CSV file or a recording into a :class:`LogData`.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` file, or a recording as :func:`twin_sim.recording.open_recording` opens it:
        a rosbag2 directory (sqlite3 or MCAP, with or without ``metadata.yaml``), its
        ``metadata.yaml``, an ``.mcap``/``.db3`` file, or a ROS 1 ``.bag`` file.
    topic : str, optional
        JointState topic of a bag. Default: ``/joint_states``, or the bag's only JointState
        topic if it has exactly one.

    Raises
    ------
    SysIdError
        The path does not exist or cannot be read as a log.

    """
    path = Path(path)
    if not path.exists():
        raise SysIdError(f'log {path} does not exist; pass a CSV file or a rosbag2 directory')
    if is_recording_path(path):
        return read_rosbag(path, topic)
    if topic not in (None, DEFAULT_TOPIC):
        warnings.warn(f'--topic {topic} ignored: {path} is a CSV file', SysIdWarning)
    return read_csv(path)


def read_csv(path):
    """
    Read a CSV log with header ``time,<joint>.position,<joint>.velocity,<joint>.effort``.

    Joint triples may come in any order; a joint's velocity column may be absent (velocity is
    then differentiated from position). Empty cells read as NaN. Columns that are not
    ``time`` or ``<joint>.<position|velocity|effort>`` are ignored with a warning.

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    LogData

    Raises
    ------
    SysIdError
        No ``time`` column, duplicate columns, non-numeric cells, or no data rows.

    """
    path = Path(path)
    notes = []
    try:
        with open(path, newline='', encoding='utf-8') as f:
            header_line = f.readline()
    except UnicodeDecodeError:
        raise SysIdError(f'{path}: not a text (UTF-8) CSV file; expected a header '
                         'time,<joint>.position,<joint>.velocity,<joint>.effort') from None
    header = [h.strip() for h in header_line.strip().split(',')]
    if 'time' not in header:
        raise SysIdError(f'{path}: no "time" column in the header {header_line.strip()!r}; '
                         'expected time,<joint>.position,<joint>.velocity,<joint>.effort')
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise SysIdError(f'{path}: duplicate columns {duplicates}')

    def cell(text):
        text = text.strip()
        return float(text) if text else np.nan

    try:
        data = np.loadtxt(path, delimiter=',', skiprows=1, dtype=float, converters=cell,
                          ndmin=2, encoding='utf-8')
    except ValueError as exc:
        raise SysIdError(f'{path}: cannot parse the numbers ({exc})') from None
    if data.size == 0:
        raise SysIdError(f'{path}: no data rows under the header')
    if data.shape[1] != len(header):
        raise SysIdError(f'{path}: rows have {data.shape[1]} cells, the header has '
                         f'{len(header)} columns')
    joints, ignored = [], []
    for h in header:
        name, _, what = h.rpartition('.')
        if h == 'time':
            continue
        if not name or what not in FIELDS:
            ignored.append(h)
        elif name not in joints:
            joints.append(name)
    if ignored:
        _warn(notes, f'{path}: ignoring columns {ignored} (not time or <joint>.position|'
                     'velocity|effort)')
    arrays = {what: np.full((len(data), len(joints)), np.nan) for what in FIELDS}
    for col, h in enumerate(header):
        name, _, what = h.rpartition('.')
        if name in joints and what in FIELDS:
            arrays[what][:, joints.index(name)] = data[:, col]
    return LogData(data[:, header.index('time')].copy(), joints, arrays['position'],
                   arrays['velocity'], arrays['effort'], str(path), notes)


def read_rosbag(path, topic=None):
    """
    Read the ``sensor_msgs/msg/JointState`` messages of a recording.

    Opened by :func:`twin_sim.recording.open_recording` (as ``robot-twin replay`` opens it).
    Time is the header stamp; if the publisher leaves every stamp at zero, the bag's receive
    time is used instead (with a warning). A zero stamp far from the others (a driver's
    message sent before its clock runs) is dropped with a warning, as the twin refuses it; one
    next to them is valid (a simulated clock that starts at 0). Messages of another type on
    the topic (a second publisher) are left out with a warning.
    Messages may list joints in any order. If a robot publishes several joint groups on the
    topic (e.g. arm and gripper in separate messages), the group with the most messages sets
    the time base and the other groups are interpolated onto it.

    Parameters
    ----------
    path : str or Path
        The recording (see :func:`read_log`).
    topic : str, optional
        Default ``/joint_states``, or the only JointState topic if the bag has exactly one.

    Returns
    -------
    LogData

    Raises
    ------
    SysIdError
        The bag cannot be opened, the topic is absent or not a JointState, or it is empty.

    """
    path = Path(path)
    notes = []
    try:
        reader, note = open_recording(path)
    except RecordingError as exc:
        raise SysIdError(str(exc)) from None
    if note:
        _warn(notes, note)
    try:
        js_topics = sorted({c.topic for c in reader.connections if c.msgtype == JOINT_STATE_TYPE})
        all_topics = sorted({f'{c.topic} ({c.msgtype})' for c in reader.connections})
        if topic is None:
            if DEFAULT_TOPIC in js_topics or len(js_topics) != 1:
                topic = DEFAULT_TOPIC
            else:
                topic = js_topics[0]
        if topic not in js_topics:
            raise SysIdError(f'the recording {path} has no {JOINT_STATE_TYPE} topic {topic!r}; '
                             f'its topics: {all_topics}; pick one with --topic')
        groups = {}
        stamped = False
        connections = [c for c in reader.connections
                       if c.topic == topic and c.msgtype == JOINT_STATE_TYPE]
        others = sorted({c.msgtype for c in reader.connections
                         if c.topic == topic and c.msgtype != JOINT_STATE_TYPE})
        if others:
            _warn(notes, f'{path}: topic {topic} also carries {", ".join(others)}; read only '
                         f'its {JOINT_STATE_TYPE} messages')
        for conn, bag_ns, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, conn.msgtype)
            stamp = msg.header.stamp
            t = stamp.sec + 1e-9 * stamp.nanosec
            stamped = stamped or t != 0.0
            names = tuple(msg.name)
            k = len(names)
            row = []
            for what in FIELDS:
                values = np.asarray(getattr(msg, what), dtype=float)
                row.append(values if len(values) == k else np.full(k, np.nan))
            groups.setdefault(frozenset(names), []).append([t, names, row, 1e-9 * bag_ns])
    finally:
        reader.close()
    if not groups:
        raise SysIdError(f'{path}: topic {topic} has no messages')
    if not stamped:
        _warn(notes, f'{path}: every JointState message on {topic} has a zero header stamp; '
                     'used the bag receive time instead')
        for group in groups.values():
            for m in group:
                m[0] = m[3]
    else:
        groups = _drop_zero_stamps(groups, f'{path}:{topic}', notes)
    return _merge_groups(groups, f'{path}:{topic}', notes)


def _drop_zero_stamps(groups, source, notes, steps=10):
    """
    Drop the messages stamped zero far from the other stamps (a warning counts them).

    A publisher that sends a message before its clock runs stamps it zero; a simulated clock
    that starts at 0 stamps its first sample zero too, but within ``steps`` median stamp
    spacings of the next one: kept.
    """
    stamps = np.sort([m[0] for group in groups.values() for m in group if m[0] != 0.0])
    zero = sum(1 for group in groups.values() for m in group if m[0] == 0.0)
    if not zero:
        return groups
    spacing = float(np.median(np.diff(stamps))) if len(stamps) > 1 else 0.0
    if float(np.min(np.abs(stamps))) <= steps * spacing:
        return groups
    _warn(notes, f'{source}: dropped {zero} message{"" if zero == 1 else "s"} with a zero '
                 'header stamp among stamped ones (the publisher did not set header.stamp)')
    kept = {key: [m for m in group if m[0] != 0.0] for key, group in groups.items()}
    return {key: group for key, group in kept.items() if group}


def _merge_groups(groups, source, notes):
    """Turn per-name-set message groups into one :class:`LogData` on the main group's stamps."""
    order = sorted(groups, key=lambda g: (len(groups[g]), len(g)), reverse=True)
    main = groups[order[0]]
    joints = list(main[0][1])
    time = np.array([m[0] for m in main])
    arrays = {what: np.full((len(main), len(joints)), np.nan) for what in FIELDS}
    for i, (_t, names, row, _bag_t) in enumerate(main):
        idx = [joints.index(n) for n in names]
        for what, values in zip(FIELDS, row):
            arrays[what][i, idx] = values
    for key in order[1:]:
        extra = [n for n in sorted(key) if n not in joints]
        if not extra:
            _warn(notes, f'{source}: {len(groups[key])} messages repeat joints of the main '
                         'group; ignored')
            continue
        msgs = sorted(groups[key], key=lambda m: m[0])
        t_g = np.array([m[0] for m in msgs])
        _warn(notes, f'{source}: joints {extra} come in separate messages; interpolated onto '
                     "the main group's stamps")
        for n in extra:
            joints.append(n)
            for w, what in enumerate(FIELDS):
                v = np.array([m[2][w][m[1].index(n)] for m in msgs])
                col = np.interp(time, t_g, v, left=np.nan, right=np.nan)
                arrays[what] = np.column_stack([arrays[what], col])
    return LogData(time, joints, arrays['position'], arrays['velocity'], arrays['effort'],
                   source, notes)


# --------------------------------------------------------------------------------------------
# Cleaning, resampling, filtering
# --------------------------------------------------------------------------------------------
def prepare_log(log, joint_names, *, cutoff_hz=DEFAULT_CUTOFF_HZ, rate_hz=None, filter_order=4,
                max_nan_fraction=0.05, min_samples=100, min_duration_s=1.0, trim_s=None,
                continuous=()):
    """
    Map a log onto the model's joints, clean it, resample it uniformly and filter it.

    Steps: map joints (joints the log lacks are held at zero with a warning, joints the model
    lacks are ignored with a warning), sort stamps and drop repeated ones, drop rows with NaN
    in a used value, resample onto a uniform grid (linear interpolation), low-pass filter
    position, velocity and effort with the same zero-phase Butterworth filter, differentiate by
    central differences, and trim the filter's edge transients.

    Parameters
    ----------
    log : LogData
        The raw log.
    joint_names : sequence of str, length n
        The model's joint order.
    cutoff_hz : float
        Butterworth cut-off, Hz. Clamped (with a warning) to 0.4 of the grid rate.
    rate_hz : float, optional
        Grid rate, Hz. Default: 1 / median stamp spacing.
    filter_order : int
        Butterworth order (``filtfilt`` doubles it).
    max_nan_fraction : float
        Error out when more than this fraction of rows has a NaN in a used value.
    min_samples, min_duration_s : int, float
        Error out below these (after cleaning).
    trim_s : float, optional
        Time trimmed at each end after filtering. Default ``2 / cutoff_hz``.
    continuous : iterable of str
        Joints without position limits: their logged angles are unwrapped (a step of more
        than pi between samples is taken as the shorter turn), since a robot may log them
        wrapped into one turn, and a wrap is no motion.

    Returns
    -------
    ProcessedLog

    Raises
    ------
    SysIdError
        No model joint in the log, a joint with effort but no position (or the reverse), too
        many NaN rows, a log too short, or bad options.

    """
    notes = list(log.warnings)
    src = log.source or 'log'
    joint_names = list(joint_names)
    n = len(joint_names)
    if cutoff_hz is None or not cutoff_hz > 0:
        raise SysIdError(f'filter cut-off must be > 0 Hz, got {cutoff_hz}')
    extra = [j for j in log.joint_names if j not in joint_names]
    present = [j for j in joint_names if j in log.joint_names]
    if not present:
        raise SysIdError(f'{src}: none of the model joints {joint_names} is in the log '
                         f'(log joints: {log.joint_names}); check --urdf and the log')
    if extra:
        _warn(notes, f'{src}: joints {extra} are not in the URDF; ignored')
    missing_fields = []
    for j in present:
        has_p, has_e = log.has(j, 'position'), log.has(j, 'effort')
        if not has_p:
            missing_fields.append(f'{j}.position')
        if not has_e:
            missing_fields.append(f'{j}.effort')
    if missing_fields:
        raise SysIdError(f'{src}: missing or empty columns {missing_fields}; the log '
                         'needs time, <joint>.position and <joint>.effort for every joint it '
                         'names (velocity is optional)')
    lacking = [j for j in joint_names if j not in present]
    if lacking:
        _warn(notes, f'{src}: joints {lacking} are not in the log; holding them at zero '
                     'position and leaving out their effort')
    cols = [log.joint_names.index(j) for j in present]
    has_v = [log.has(j, 'velocity') for j in present]
    t = np.asarray(log.time, dtype=float)
    pos = log.position[:, cols]
    vel = log.velocity[:, cols]
    eff = log.effort[:, cols]
    n_raw = len(t)

    used = np.column_stack([t, pos, eff] + [vel[:, i] for i in range(len(cols)) if has_v[i]])
    bad = ~np.isfinite(used).all(axis=1)
    n_bad = int(bad.sum())
    if n_bad:
        frac = n_bad / max(n_raw, 1)
        if frac > max_nan_fraction:
            raise SysIdError(f'{src}: {n_bad} of {n_raw} rows ({100 * frac:.1f} %) have '
                             f'NaN or missing values, more than {100 * max_nan_fraction:.1f} %; '
                             'fix the log or pass a larger max NaN fraction')
        _warn(notes, f'{src}: dropped {n_bad} of {n_raw} rows with NaN values')
        keep = ~bad
        t, pos, vel, eff = t[keep], pos[keep], vel[keep], eff[keep]
    if len(t) > 1 and np.any(np.diff(t) < 0):
        _warn(notes, f'{src}: time stamps are not in order; sorted them')
        order = np.argsort(t, kind='stable')
        t, pos, vel, eff = t[order], pos[order], vel[order], eff[order]
    if len(t) > 1:
        dup = np.concatenate([[False], np.diff(t) <= 0])
        if dup.any():
            _warn(notes, f'{src}: dropped {int(dup.sum())} samples with a repeated '
                         'time stamp')
            t, pos, vel, eff = t[~dup], pos[~dup], vel[~dup], eff[~dup]
    wrapped = [i for i, j in enumerate(present) if j in set(continuous)]
    if wrapped and len(t) > 1:
        pos[:, wrapped] = np.unwrap(pos[:, wrapped], axis=0)
    duration = float(t[-1] - t[0]) if len(t) > 1 else 0.0
    if len(t) < min_samples or duration < min_duration_s:
        raise SysIdError(f'{src}: log too short: {len(t)} usable samples over '
                         f'{duration:.3g} s; need at least {min_samples} samples and '
                         f'{min_duration_s:g} s of motion')

    dt_median = float(np.median(np.diff(t)))
    rate = float(rate_hz) if rate_hz else 1.0 / dt_median
    if not rate > 0:
        raise SysIdError(f'resampling rate must be > 0 Hz, got {rate_hz}')
    max_gap = float(np.max(np.diff(t)))
    if max_gap > 20.0 / rate:
        _warn(notes, f'{src}: the largest gap between stamps is {max_gap:.3g} s '
                     f'({max_gap * rate:.0f} grid steps); interpolated across it')
    nyquist = 0.5 * rate
    cutoff = float(cutoff_hz)
    if cutoff > 0.4 * rate:
        cutoff = 0.4 * rate
        _warn(notes, f'filter cut-off {cutoff_hz:g} Hz is too close to the Nyquist frequency '
                     f'{nyquist:g} Hz of the {rate:g} Hz grid; using {cutoff:g} Hz')
    n_grid = int(math.floor(duration * rate)) + 1
    if n_grid > MAX_GRID_SAMPLES:
        raise SysIdError(f'{src}: the stamps span {duration:.4g} s, a grid of {n_grid} samples at '
                         f'{rate:g} Hz (at most {MAX_GRID_SAMPLES}); check the time stamps '
                         '(one far from the others?), cut the log, or pass a lower --rate')
    grid = t[0] + np.arange(n_grid) / rate

    def resample(x):
        return np.column_stack([np.interp(grid, t, x[:, i]) for i in range(x.shape[1])])

    pos_g, eff_g = resample(pos), resample(eff)
    b, a = signal.butter(filter_order, cutoff / nyquist)

    # Odd extension over three cut-off periods: the double derivative has no edge transient.
    padlen = min(n_grid - 1, int(3.0 * rate / cutoff))

    def lowpass(x):
        return signal.filtfilt(b, a, x, axis=0, padlen=padlen)

    dt = 1.0 / rate
    q_f = lowpass(pos_g)
    qd_f = np.gradient(q_f, dt, axis=0)
    velocity_source = {}
    for i, j in enumerate(present):
        velocity_source[j] = 'measured' if has_v[i] else 'differentiated'
        if has_v[i]:
            qd_f[:, i] = lowpass(np.interp(grid, t, vel[:, i]))
    qdd_f = np.gradient(qd_f, dt, axis=0)
    tau_f = lowpass(eff_g)

    trim = int(round((2.0 / cutoff if trim_s is None else trim_s) * rate))
    if n_grid - 2 * trim < min_samples:
        raise SysIdError(f'{src}: log too short: {n_grid} grid samples leave '
                         f'{n_grid - 2 * trim} after trimming {trim} filter-edge samples at '
                         f'each end; need at least {min_samples}')
    s = np.s_[trim:n_grid - trim]

    def full(x):
        out = np.zeros((n_grid, n))
        for i, j in enumerate(present):
            out[:, joint_names.index(j)] = x[:, i]
        return out[s]

    measured = np.array([j in present for j in joint_names])
    return ProcessedLog(grid[s], joint_names, full(q_f), full(qd_f), full(qdd_f), full(tau_f),
                        full(eff_g), measured, rate, cutoff, velocity_source, n_raw, n_bad,
                        notes)


def write_csv(log, path, joint_order=None):
    """
    Write a :class:`LogData` as a CSV log (the format :func:`read_csv` reads).

    Parameters
    ----------
    log : LogData
        The raw log.
    path : str or Path
        The CSV file.
    joint_order : sequence of str, optional
        Order of the joint column triples (default: the log's). Velocity columns are left out
        for joints whose velocity is all NaN.

    Returns
    -------
    int
        Rows written.

    """
    order = list(log.joint_names if joint_order is None else joint_order)
    header, cols = ['time'], [np.asarray(log.time, dtype=float)]
    for joint in order:
        i = log.joint_names.index(joint)
        for what in FIELDS:
            column = getattr(log, what)[:, i]
            if what == 'velocity' and not np.isfinite(column).any():
                continue
            header.append(f'{joint}.{what}')
            cols.append(column)
    np.savetxt(path, np.column_stack(cols), delimiter=',', header=','.join(header),
               comments='', fmt='%.17g')
    return len(log.time)
