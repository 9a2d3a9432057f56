"""
``robot-twin replay``: play a recording through the twin's cores in lock-step, as fast as it goes.

The robot's /joint_states (and wrench topic) of a recording (what
:func:`twin_sim.recording.open_recording` opens: a rosbag2 directory, MCAP or sqlite3, or one
of its storage files, or a ROS 1 .bag; ``robot-twin record`` or any other recorder) go, message by
message in log-time order, through the same cores in the same order as in the live one-process
twin (:class:`TwinChain`): the bridge's intake (validation, mapping), the mirror, the anomaly
monitor; reports are taken at the anomaly node's report rate in robot time. Nothing depends on
the wall clock, so the report is the same on every replay of the same bag.

The payload declarations of the recording (/twin/payload, geometry_msgs/InertiaStamped, which
``robot-twin record`` records) are applied where they are in the stream, in log-time order
among the robot's messages: the live anomaly node applies one when it arrives, whatever its
header stamp says, so its receive (log) time is where the live twin took it. They go through
the live node's conversion (:func:`robot_twin.nodes.messages.payload_from_msg`) and
``AnomalyPipeline.set_payload``; a declaration the live node would refuse (another frame,
numbers that make no rigid body, a load the arm cannot carry, one sent while the twin
commissions) is refused and counted. Declarations are applied even before the replay's start
(:func:`live_start`): the live twin got the latched one when it started. ``payload=False``
ignores them (the report says so).

The report (JSON): the recording (name, SHA-256 of its files, topics), the intake's counters,
residual statistics per joint and channel, commissioning, the anomalies found (joint, fault type,
the robot time their exceedance began and when they cleared), the live twin's own first alarm
when the recording has /twin/anomaly (to compare), the final state, the monitor's events, and
``notes``: what of the recording was not replayed (another message type on a topic, a wrench
topic under another name, wrenches all refused) and a recording that begins after the live twin
started (its commissioning then cannot be replayed: ``start``'s ``recording_late_s``). With a
ledger the replay leaves the trace a live run would: a ``start`` entry, the monitor's events
(commissioning, anomalies) and a closing ``replay`` entry with the report's digest.
"""
from dataclasses import dataclass
import hashlib
import json
import math
from pathlib import Path
import struct

import numpy as np
from robot_twin.cli_files import read_project_file, yaml_problem
from robot_twin.config import ConfigError, load_config
# private helpers of the config loader, until robot_twin.config resolves a node's parameters
from robot_twin.nodes.cdr import CdrError, JointStateReader, WrenchReader
from robot_twin.twin_model import robot_intake, robot_model
from rosbags.highlevel import AnyReaderError
from twin_anomaly.monitor import MONITOR_FILE_KEY
from twin_anomaly.pipeline import AnomalyPipeline
from twin_bridge.intake import JOINTS, WRENCH
from twin_bridge.ledger import Ledger, LedgerError
from twin_bridge.validation import rejection_run
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from twin_sim.recording import open_recording as shared_open_recording, \
    recording_root, RecordingError
from twin_sim.resources import urdf_or_builtin
from twin_sim.urdf_model import URDFError

JOINT_STATE = 'sensor_msgs/msg/JointState'
WRENCH_STAMPED = 'geometry_msgs/msg/WrenchStamped'
INERTIA_STAMPED = 'geometry_msgs/msg/InertiaStamped'
PAYLOAD_TOPIC = '/twin/payload'
"""Where the robot's load is declared (the live anomaly node's subscription)."""
DIAGNOSTIC_ARRAY = 'diagnostic_msgs/msg/DiagnosticArray'
KINDS = ('position', 'velocity', 'effort')
REPORT_VERSION = 1
_DECODE_ERRORS = (CdrError, AnyReaderError, ValueError, IndexError, struct.error)
"""What reading a malformed message raises (our fast reader or rosbags')."""


class ReplayError(ValueError):
    """A recording, config or option replay cannot use; the message says what and why."""


# --------------------------------------------------------------------------------------------
# The twin's parameters, as rcl gives them to its nodes
# --------------------------------------------------------------------------------------------

def twin_parameters(config=None, urdf=''):
    """
    Return the parameters of the twin's nodes in a config file, as rcl gives them at start-up.

    Parameters
    ----------
    config : str, optional
        A config file or profile (``twin``, ``demo``...); default ``twin``.
    urdf : str, optional
        Overrides ``urdf_path`` of every node.

    Returns
    -------
    dict
        ``{executable: {parameter: value}}`` for ``twin_bridge``, ``twin_sim`` and
        ``twin_anomaly``: what rcl gives the node that the file runs with that executable (or
        one so named) at start-up (:func:`robot_twin.nodes.params.resolve_node_parameters`).

    Raises
    ------
    ReplayError
        The file is missing or invalid.

    """
    from robot_twin.graph import config_path
    from robot_twin.nodes.params import resolve_node_parameters
    try:
        path = config_path(config)
        problem = yaml_problem(path)          # PyYAML's message spans several lines
        if problem:
            raise ReplayError(f'--config: {problem}')
        loaded = load_config(path)
        nodes = [(next((n for n, e in loaded.executables.items() if e == executable),
                       executable), executable)
                 for executable in ('twin_bridge', 'twin_sim', 'twin_anomaly')]
        resolved = resolve_node_parameters(path, nodes)
    except (ConfigError, OSError) as exc:
        raise ReplayError(f'--config: {exc}') from None
    out = {}
    for node, executable in nodes:
        values = dict(resolved[node])
        if urdf:
            values['urdf_path'] = str(urdf)
        out[executable] = values
    return out


# --------------------------------------------------------------------------------------------
# The twin's cores, chained as in the live one-process twin
# --------------------------------------------------------------------------------------------

class TwinChain:
    """
    The live twin's cores in the live twin's order, fed one robot message at a time.

    Parameters
    ----------
    params : dict
        ``{executable: parameters}`` (:func:`twin_parameters`).
    with_wrench : bool
        Whether a wrench stream is fed (the recording has one and the URDF a sensor frame).
    thresholds : str, optional
        Commissioned thresholds to load (never written); None = commission on the recording.

    Attributes
    ----------
    sample_listeners : list of callable
        ``f(sample, result)`` after each mirror result that reached the monitor.
    wrench_listeners : list of callable
        ``f(t, residual)`` after each wrench residual that reached the monitor.

    """

    def __init__(self, params, with_wrench, thresholds=None):
        bridge, sim, anomaly = params['twin_bridge'], params['twin_sim'], params['twin_anomaly']
        model = robot_model(bridge, with_dynamics=False)
        self.names = list(model.joint_names)
        self.with_wrench = bool(with_wrench and model.ft_frame is not None)
        self.ft_frame = model.ft_frame
        self.intake = robot_intake(model, bridge, self.with_wrench)
        twin_model = robot_model(sim, with_dynamics=True)
        self.mirror = Mirror(Predictor(twin_model))
        # as the live node, without its background fit (a replay must be reproducible), and
        # without a health log: a replay never writes the robot's health history
        self.warnings = []          # what the monitor said at start-up (a refused file: why)
        self.anomaly_model = robot_model(anomaly, with_dynamics=True)
        self.pipeline = AnomalyPipeline(
            self.anomaly_model, dict(anomaly, recommission=False),
            thresholds_file=thresholds, rul_log='', background=False,
            log=lambda level, text: self.warnings.append(text) if level != 'info' else None)
        self.pipeline.model_listeners.append(
            lambda model: self.mirror.set_predictor(Predictor(model)))
        self.monitor = self.pipeline.monitor
        self.report_period_s = 1.0 / anomaly['publish_rate_hz']
        self.model = twin_model
        self.sample_listeners = []
        self.wrench_listeners = []
        # files the monitor reads under another name ({its path: the user's}), named in events
        # as the user gave them (a private copy's name changes from run to run)
        self.file_names = {}

    def joint_state(self, stamp, names, position, velocity, effort, now):
        """
        Take one JointState; return the accepted :class:`RobotSample` or the rejection reason.

        ``stamp`` is ``(sec, nanosec)``; ``now`` the receive (log) time, s.
        """
        sec, nanosec = stamp
        reason = self.intake.joint_state(names, position, velocity, effort,
                                         sec + nanosec * 1e-9, now, nanosec)
        if reason is not None:
            return reason
        # the recorder's receive times: its own catch-up bursts are told apart as live
        sample = self.intake.sample((sec, nanosec), now)
        if sample is None:
            return None
        # the live mirror node's guarded step: the same samples dropped and counted
        mirrored, result = self.mirror.guarded_update(sample.t, sample.position,
                                                      sample.velocity, sample.effort)
        if not mirrored:
            return sample                        # no effort from the robot (yet): as live
        if result is not None:
            for listener in self.sample_listeners:
                listener(sample, result)
        # as the live anomaly node calls it: every sample, with no result where the mirror
        # gave none (it (re)starts), so that the stream checks do not count it missing
        self.pipeline.update(sample, result, now=now)
        return sample

    def wrench(self, stamp, wrench, now, frame_id=None):
        """
        Take one wrench sample, (6,) N and N·m, stamped ``(sec, nanosec)``; None or why not.

        ``frame_id``: the message's frame when it is neither empty nor the sensor's (None).
        """
        t = stamp[0] + stamp[1] * 1e-9
        reason = self.intake.wrench_sample(wrench, t, now, stamp[1], frame_id)
        if reason is not None:
            return reason
        out = self.mirror.guarded_wrench_residual(wrench, t)
        if out is not None:
            for listener in self.wrench_listeners:
                listener(t, out[1])
            self.pipeline.wrench(t, out[1])
        return None

    def payload(self, msg):
        """
        Take a payload declaration (an InertiaStamped, rosbags' or rclpy's), as the live node.

        Returns the :class:`twin_sim.urdf_model.Payload` now carried. Raises ValueError, with
        the reason, when the live anomaly node would refuse it (its ``on_payload``).
        """
        from robot_twin.nodes.messages import payload_from_msg     # the live node's conversion
        payload = payload_from_msg(msg, self.anomaly_model)
        self.pipeline.set_payload(payload)
        return payload

    def report(self):
        """Return the anomaly state and the lifecycle entries (what the anomaly node reports)."""
        state = self.pipeline.report()
        return state, [dict(data, kind=kind) for kind, data in
                       self.pipeline.lifecycle_entries()]


# --------------------------------------------------------------------------------------------
# Reading a recording
# --------------------------------------------------------------------------------------------

def open_recording(path):
    """
    Open a recording (:func:`twin_sim.recording.open_recording`); return ``(reader, note)``.

    Raises
    ------
    ReplayError
        Missing, not a recording, unreadable metadata or storage (named).

    """
    try:
        return shared_open_recording(path)
    except RecordingError as exc:
        raise ReplayError(str(exc)) from None


def recording_digest(path):
    """SHA-256 (hex) over the recording's files, in name order (the same for a copy)."""
    path = recording_root(path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode() + b'\0')
        with open(f, 'rb') as handle:
            for block in iter(lambda: handle.read(1 << 20), b''):
                digest.update(block)
    return digest.hexdigest()


def topic_connections(reader, topic, msgtype, required, hint, notes=None):
    """
    Return the ``msgtype`` connections of ``topic``; raise if absent (when required) or mistyped.

    A topic that also carries messages of another type (two publishers) gives its ``msgtype``
    connections; the others are named in ``notes`` (a list, when given).
    """
    conns = [c for c in reader.connections if c.topic == topic]
    if not conns:
        if required:
            found = sorted({c.topic for c in reader.connections if c.msgtype == msgtype})
            raise ReplayError(f'the recording has no topic {topic} ({msgtype}); '
                              f'{msgtype} topics in it: {found or "none"}; {hint}')
        return []
    wanted = [c for c in conns if c.msgtype == msgtype]
    other = sorted({c.msgtype for c in conns if c.msgtype != msgtype})
    if other and not wanted:
        raise ReplayError(f'topic {topic} is {", ".join(other)} in the recording, not '
                          f'{msgtype}; replay reads {msgtype} there ({hint})')
    if other and notes is not None:
        count = sum(getattr(c, 'msgcount', 0) or 0 for c in conns if c.msgtype != msgtype)
        plural = '' if count == 1 else 's'
        notes.append(f'topic {topic} also carries {", ".join(other)} ({count} message{plural}): '
                     f'only its {msgtype} messages are read')
    return wanted


def is_cdr(reader):
    """Tell whether the recording's messages are CDR (ROS 2), which the fast readers read."""
    return getattr(reader, 'is2', True)         # a ROS 1 bag's are ROS 1 serialized


class _Decoder:
    """Serialized JointState / WrenchStamped -> numbers (fast path, rosbags for the rest)."""

    def __init__(self, reader, ft_frame=None):
        self.reader = reader
        self.cdr = is_cdr(reader)
        self.joints = JointStateReader()
        self.wrenches = WrenchReader(ft_frame)

    def joint_state(self, data):
        parsed = self.joints.read(data) if self.cdr else None
        if parsed is None:
            msg = self.reader.deserialize(data, JOINT_STATE)
            parsed = (msg.header.stamp.sec, msg.header.stamp.nanosec, list(msg.name),
                      np.asarray(msg.position, dtype=float),
                      np.asarray(msg.velocity, dtype=float),
                      np.asarray(msg.effort, dtype=float))
        return parsed

    def wrench(self, data):
        """Return ``(sec, nanosec, wrench, frame_id)`` (the intake judges the frame)."""
        parsed = self.wrenches.read_framed(data) if self.cdr else None
        if parsed is None:
            msg = self.reader.deserialize(data, WRENCH_STAMPED)
            f, t = msg.wrench.force, msg.wrench.torque
            parsed = (msg.header.stamp.sec, msg.header.stamp.nanosec,
                      np.array([f.x, f.y, f.z, t.x, t.y, t.z]), msg.header.frame_id)
        return parsed


def read_messages(reader, connections, path):
    """
    Yield ``(connection, log time ns, data)``; a damaged stretch becomes a ReplayError.

    Damage that rosbags stops at, and damage it passes over quietly (the rest of a damaged
    MCAP chunk is skipped: fewer messages than the recording's index counts), both end in a
    ReplayError saying how many messages were read and where the damage is.
    No connections (a topic the recording does not have): nothing. rosbags reads *every*
    message when given an empty list.
    """
    if not connections:
        return
    it = iter(reader.messages(connections=connections))
    count = 0
    last_ns = None
    gap = (0, None)          # the longest silence between two messages, ns, and its start
    while True:
        try:
            item = next(it)
        except StopIteration:
            break
        except Exception as exc:  # noqa: BLE001 - rosbags raises many types for damaged data
            raise ReplayError(_damage_text(reader, connections, path, count, last_ns, exc)) \
                from None
        count += 1
        if last_ns is not None and item[1] - last_ns > gap[0]:
            gap = (item[1] - last_ns, last_ns)
        last_ns = item[1]
        yield item
    total = sum(getattr(c, 'msgcount', 0) or 0 for c in connections)
    if total and count < total:
        raise ReplayError(_skipped_text(reader, path, count, total, gap))


def _skipped_text(reader, path, count, total, gap):
    """Say that rosbags passed over damage: messages missing, and the likeliest place."""
    where = ''
    if gap[1] is not None:
        start = getattr(reader, 'start_time', None)
        into = f', {(gap[1] - start) * 1e-9:.3f} s into it' if start is not None else ''
        where = (f'; the longest silence, most likely the damage, is {gap[0] * 1e-9:.3f} s after '
                 f'log time {gap[1] * 1e-9:.6f} s{into}')
    return (f'{path}: the recording is damaged: only {count} of the {total} messages its index '
            f'counts could be read (rosbags skips the rest of a damaged chunk){where}. Is it '
            'complete? (`mcap recover` of the mcap CLI can rebuild an MCAP file)')


def _damage_text(reader, connections, path, count, last_ns, exc):
    """Say where a recording is damaged: what was read before it, what cannot be replayed."""
    total = sum(getattr(c, 'msgcount', 0) for c in connections)
    of = f' of {total}' if total else ''
    chunks = ('rosbags reads a recording in chunks (about 1 MB in MCAP), each as a whole, so '
              'the messages of the damaged chunk before the damage are lost with it')
    if last_ns is None:
        where = f'0{of} messages could be read: the damage is in its first chunk ({chunks})'
    else:
        start = getattr(reader, 'start_time', None)
        into = f', {(last_ns - start) * 1e-9:.3f} s into it' if start is not None else ''
        where = (f'{count}{of} messages were read, up to log time {last_ns * 1e-9:.6f} s'
                 f'{into}; the damage is in the chunk after them ({chunks})')
    rest = f' ({total - count} messages)' if total else ''
    return (f'{path}: the recording is damaged ({type(exc).__name__}: {exc}): {where}; the '
            f'replay cannot go on past it{rest}. Is it complete? (`mcap recover` of the mcap '
            'CLI can rebuild an MCAP file)')


# --------------------------------------------------------------------------------------------
# What the report collects
# --------------------------------------------------------------------------------------------

class ResidualStats:
    """
    Mean, standard deviation, RMS and largest magnitude per column, accumulated in chunks.

    Rows go into a pre-allocated buffer (cheap per sample); each full buffer is reduced with
    NaN-aware numpy calls, always in the same order (the same numbers on every replay).

    Parameters
    ----------
    columns : sequence of str
        Column names (``joint.kind`` or wrench axes).
    chunk : int
        Rows per reduction.

    """

    def __init__(self, columns, chunk=4096):
        self.columns = list(columns)
        self._buf = np.empty((chunk, len(self.columns)))
        self._rows = 0
        width = len(self.columns)
        self.count = np.zeros(width, dtype=np.int64)
        self.total = np.zeros(width)
        self.squares = np.zeros(width)
        self.peak = np.zeros(width)

    def row(self):
        """Return the next row to fill (a view); it counts once filled."""
        if self._rows == len(self._buf):
            self._reduce()
        row = self._buf[self._rows]
        self._rows += 1
        return row

    def _reduce(self):
        block = self._buf[:self._rows]
        ok = np.isfinite(block)
        clean = np.where(ok, block, 0.0)
        self.count += ok.sum(axis=0)
        self.total += clean.sum(axis=0)
        self.squares += (clean * clean).sum(axis=0)
        self.peak = np.maximum(self.peak, np.abs(clean).max(axis=0, initial=0.0))
        self._rows = 0

    def summary(self):
        """Return ``{column: {n, mean, std, rms, max_abs}}`` (NaN where a column had no data)."""
        self._reduce()
        out = {}
        for k, name in enumerate(self.columns):
            n = int(self.count[k])
            mean = self.total[k] / n if n else math.nan
            ms = self.squares[k] / n if n else math.nan
            out[name] = {'n': n, 'mean': mean, 'std': math.sqrt(max(ms - mean * mean, 0.0))
                         if n else math.nan, 'rms': math.sqrt(ms) if n else math.nan,
                         'max_abs': float(self.peak[k]) if n else math.nan}
        return out


class AnomalyEpisodes:
    """Alarm episodes per group (joint, wrench, ...), from successive monitor states."""

    def __init__(self):
        self.episodes = []
        self._open = {}

    def observe(self, state):
        """Take one :class:`~twin_anomaly.detector.DetectorState` (robot time ``stamp``)."""
        if state.phase != 'monitoring':
            return
        groups = list(state.joints) + ([state.wrench] if state.wrench is not None else []) + \
            list(getattr(state, 'extra', ()) or ())
        for js in groups:
            open_episode = self._open.get(js.name)
            if js.alarm and open_episode is None:
                episode = {'group': js.name, 'fault_type': js.fault_type,
                           'confidence': float(js.confidence), 'since': float(js.since),
                           'raised_at': float(state.stamp), 'cleared_at': None,
                           'channel': js.channel, 'detector': js.detector,
                           'peak_score': float(js.score),
                           'robot_joint': state.faulty_joint, 'robot_fault_type':
                           state.fault_type}
                self.episodes.append(episode)
                self._open[js.name] = episode
            elif js.alarm:
                open_episode['peak_score'] = max(open_episode['peak_score'], float(js.score))
            elif open_episode is not None:
                open_episode['cleared_at'] = float(state.stamp)
                del self._open[js.name]


def recorded_alarms(reader, path):
    """
    Return what the live twin reported in the recording's /twin/anomaly, or None without it.

    A topic with no messages (a recorder that subscribed to it beside a robot without a twin)
    counts as not recorded: None.

    Returns
    -------
    dict or None
        ``first``: the robot-level first alarm (``joint``, ``fault_type``, ``since``,
        ``message``); ``alarms``: every alarm episode of a group (joint, ``wrench``,
        ``stream``) as ``{group, fault_type, since}``, by ``since`` (a group raised, cleared
        and raised again is there twice; the fault type is that of its first report);
        ``groups``: the first of them in each group. Group
        alarms come from the detector's block statistics alone; the robot-level joint and fault
        type are the classifier's verdict at the moment of a report, which the live twin takes
        by its wall clock and the replay by robot time.

    """
    conns = [c for c in reader.connections
             if c.topic == '/twin/anomaly' and c.msgtype == DIAGNOSTIC_ARRAY]
    if not conns:
        return None
    first, alarms, seen, messages = None, [], set(), 0
    for _conn, _t, data in read_messages(reader, conns, path):
        messages += 1
        for status in reader.deserialize(data, DIAGNOSTIC_ARRAY).status:
            level = status.level[0] if isinstance(status.level, (bytes, bytearray)) \
                else int(status.level)
            values = {kv.key: kv.value for kv in status.values}
            if level != 2 or not values.get('since'):
                continue
            name = status.name.rsplit('/', 1)[-1]
            since = float(values['since'])
            if name == 'robot' and first is None:
                first = {'joint': values.get('joint') or None,
                         'fault_type': values.get('fault_type'), 'since': since,
                         'message': status.message}
            elif name != 'robot' and (name, since) not in seen:
                # an episode is one exceedance: its start, re-sent in every report (a status
                # that drops to WARN and back keeps it) names it
                seen.add((name, since))
                alarms.append({'group': name, 'fault_type': values.get('fault_type'),
                               'since': since})
    if not messages:
        return None
    alarms.sort(key=lambda a: a['since'])
    groups = {}
    for alarm in alarms:
        groups.setdefault(alarm['group'], alarm)
    return {'first': first, 'alarms': alarms, 'groups': list(groups.values())}


def live_start(reader, path, joint_conns):
    """
    Return where the live twin of the recording started, ``(stamp, late_s)``.

    ``stamp`` ``(sec, nanosec)``: the first robot sample the live twin took, that is the one
    just before the first /twin/residuals message of the recording (the mirror's first residual
    comes with its second sample); None when the recording does not hold it. A recorder and a
    twin that start together discover the robot at slightly different moments; starting the
    replay where the twin started gives both the same commissioning data. A recorder that
    discovered the robot later than the twin holds no such sample: then ``late_s`` is how long
    after the live twin's first residual the recording's robot stream begins, s (0: it lacks
    the twin's first sample only), and the live twin commissioned on samples the replay cannot
    have. ``(None, None)`` when the recording has no residuals of the live twin.
    """
    conns = [c for c in reader.connections
             if c.topic == '/twin/residuals' and c.msgtype == JOINT_STATE]
    if not conns or not joint_conns or not is_cdr(reader):
        return None, None
    decode = JointStateReader()
    first = None
    for _conn, _t, data in read_messages(reader, conns, path):
        parsed = decode.read(data)
        first = None if parsed is None else (parsed[0], parsed[1])
        break
    if first is None:
        return None, None
    before = None
    for _conn, _t, data in read_messages(reader, joint_conns, path):
        parsed = decode.read(data)
        if parsed is None:
            return None, None
        stamp = (parsed[0], parsed[1])
        if stamp >= first:
            if before is None:
                return None, (stamp[0] - first[0]) + (stamp[1] - first[1]) * 1e-9
            break
        before = stamp
    return before, None


def _late_recording_note(late_s, topic):
    """Say that the live twin commissioned on samples the recording lacks (a later recorder)."""
    return (f'the live twin started before this recording: its first /twin/residuals message is '
            f'stamped {late_s:.3f} s before the first {topic} sample of the recording, so it '
            'commissioned on robot samples the recording lacks; this replay commissions on a '
            'later stretch of the stream, and its thresholds and the times of its alarms can '
            "differ from the live twin's")


# --------------------------------------------------------------------------------------------
# The replay
# --------------------------------------------------------------------------------------------

@dataclass
class _Counts:
    joint_messages: int = 0
    wrench_messages: int = 0
    samples: int = 0
    results: int = 0
    skipped: int = 0
    payload_messages: int = 0


class _Replay:
    """One pass over a recording: messages in, report out (see :func:`replay`)."""

    def __init__(self, chain, reader, path, ledger=None):
        self.chain = chain
        self.reader = reader
        self.path = path
        self.ledger = ledger
        self.decoder = _Decoder(reader, chain.ft_frame)
        self.counts = _Counts()
        self.reasons = []
        self.events = []
        self.payloads_applied = []     # what /twin/payload declared, when, and what came of it
        self.payloads_refused = []
        self.episodes = AnomalyEpisodes()
        self.last_state = None
        self.t = None
        self._next_report = None
        names = chain.names
        self.joint_stats = ResidualStats([f'{j}.{k}' for k in KINDS for j in names])
        self.wrench_stats = ResidualStats(['fx', 'fy', 'fz', 'tx', 'ty', 'tz'])
        n = len(names)
        chain.sample_listeners.append(lambda sample, result: self._keep(result, n))
        chain.wrench_listeners.append(lambda t, residual: self._keep_wrench(residual))

    def _keep(self, result, n):
        row = self.joint_stats.row()
        row[:n] = result.position_residual
        row[n:2 * n] = result.velocity_residual
        row[2 * n:] = result.effort_residual
        self.counts.results += 1

    def _keep_wrench(self, residual):
        self.wrench_stats.row()[:] = residual

    def _rejected(self, reason):
        if reason not in self.reasons and len(self.reasons) < 5:
            self.reasons.append(reason)

    def run(self, joint_conns, wrench_conns, progress=None, start=None, payload_conns=()):
        """
        Feed every message in log-time order; return the number of messages.

        ``start`` ``(sec, nanosec)``: robot messages stamped before it are skipped (counted);
        payload declarations (``payload_conns``) are applied wherever they are.
        """
        # a connection's id is unique within one storage file only (one recording may be
        # several files read without metadata.yaml): its owner tells them apart
        joint_ids = {(id(c.owner), c.id) for c in joint_conns}
        payload_ids = {(id(c.owner), c.id) for c in payload_conns}
        chain, decoder, counts = self.chain, self.decoder, self.counts
        start = start or (-1, 0)
        k = 0
        stream = read_messages(self.reader, joint_conns + wrench_conns + list(payload_conns),
                               self.path)
        for conn, log_ns, data in stream:
            now = log_ns * 1e-9
            k += 1
            if progress is not None and k % 4096 == 0:
                progress(4096)
            key = (id(conn.owner), conn.id)
            if key in payload_ids:
                self._payload(data, now)
            elif key in joint_ids:
                counts.joint_messages += 1
                try:
                    sec, nanosec, names, pos, vel, eff = decoder.joint_state(data)
                except _DECODE_ERRORS as exc:
                    self._rejected(chain.intake.malformed(JOINTS, f'unreadable: {exc}'))
                    continue
                if (sec, nanosec) < start:
                    counts.skipped += 1
                    continue
                out = chain.joint_state((sec, nanosec), names, pos, vel, eff, now)
                if isinstance(out, str):
                    self._rejected(out)
                elif out is not None:
                    counts.samples += 1
                    self._maybe_report(out.t)
            else:
                counts.wrench_messages += 1
                try:
                    sec, nanosec, wrench, frame = decoder.wrench(data)
                except _DECODE_ERRORS as exc:
                    self._rejected(chain.intake.malformed(WRENCH, f'unreadable: {exc}'))
                    continue
                if (sec, nanosec) < start:
                    counts.skipped += 1
                    continue
                reason = chain.wrench((sec, nanosec), wrench, now, frame)
                if reason is not None:
                    self._rejected(reason)
        if self.t is not None:
            self._report()
        return k

    def _payload(self, data, now):
        """Apply one recorded payload declaration (log time ``now``), as the live node."""
        self.counts.payload_messages += 1
        entry = {'log_time': now, 'robot_time': self.t}
        try:
            msg = self.reader.deserialize(data, INERTIA_STAMPED)
        except _DECODE_ERRORS as exc:
            self.payloads_refused.append(dict(entry, reason=f'{PAYLOAD_TOPIC} refused: '
                                              f'unreadable ({type(exc).__name__}: {exc})'))
            return
        i = msg.inertia
        entry.update(stamp=msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9,
                     frame_id=msg.header.frame_id, mass_kg=float(i.m),
                     com_m=[float(i.com.x), float(i.com.y), float(i.com.z)])
        before = self.chain.monitor.payload
        try:
            self.chain.payload(msg)
        except ValueError as exc:
            # what the live node logs: "/twin/payload refused: <reason>"
            self.payloads_refused.append(dict(entry, reason=f'{PAYLOAD_TOPIC} refused: {exc}'))
            return
        # the load the twin already has changes nothing (a program may send it again)
        self.payloads_applied.append(dict(entry, changed=self.chain.monitor.payload is not before))

    def _maybe_report(self, t):
        """Report at the anomaly node's rate in robot time (restart after a clock jump)."""
        period = self.chain.report_period_s
        self.t = t
        due = self._next_report
        if due is None or t < due - 2 * period - 1.0:
            self._next_report = t + period
        elif t >= due:
            self._report()
            due += period
            self._next_report = due if t < due else t + period

    def _report(self):
        state, events = self.chain.report()
        self.last_state = state
        self.episodes.observe(state)
        for event in events:
            event = dict(event)
            if event.get('file') in self.chain.file_names:
                event['file'] = self.chain.file_names[event['file']]
            event.setdefault('robot_time', self.t)
            self.events.append(event)
            if self.ledger is not None:
                data = {k: v for k, v in event.items() if k != 'kind'}
                _log_entry(self.ledger, str(event.get('kind', 'event')), data)


def _log_entry(ledger, kind, data):
    """Append a replay entry to the lifecycle log; a failed write stops the replay (one line)."""
    try:
        ledger.append(kind, data)
    except LedgerError as exc:
        raise ReplayError(f'--ledger: {exc}; the replay stopped, as the lifecycle log would '
                          f'lack its {kind} entry') from None


def _state_summary(state):
    if state is None:
        return None
    return {'stamp': state.stamp, 'phase': state.phase, 'level': state.level,
            'message': state.message, 'score': float(state.score),
            'faulty_joint': state.faulty_joint, 'fault_type': state.fault_type,
            'since': state.since}


_ROBOT_CAUSES = ('unknown_joint', 'beyond_limits', 'implausible_velocity',
                 'implausible_effort')
"""Rejections (intake causes) that a URDF of another robot gives: joint names and limits."""


def _check_fed(run, chain, topic, urdf):
    """Raise ReplayError when nothing of the recording reached the twin, saying why."""
    counts = run.counts
    if counts.joint_messages == 0:
        raise ReplayError(f'topic {topic} has no messages in the recording')
    if counts.samples:
        return
    accepted = chain.intake.counters().get('joint_states.accepted', 0)
    if not chain.intake.mapper.all_received and run.reasons == []:
        missing = chain.intake.mapper.never_received()
        raise ReplayError(f'{topic} never has every joint of the URDF ({urdf}): no message '
                          f'has {", ".join(missing)}; replay needs all of them (--urdf)')
    first = run.reasons[0] if run.reasons else 'no complete sample'
    counters = chain.intake.counters()
    robot = any(counters.get(f'joint_states.{cause}') for cause in _ROBOT_CAUSES)
    hint = f'. Is the URDF ({urdf}) the recorded robot? (--urdf)' if robot else ''
    raise ReplayError(f'no {topic} message was usable ({counts.joint_messages} read, '
                      f'{accepted} accepted); first reason: {first}{hint}')


def _wrench_notes(reader, topic, conns, chain, run):
    """Say why a recording with wrenches gives no wrench residuals (list of str)."""
    if not conns:
        found = sorted({c.topic for c in reader.connections if c.msgtype == WRENCH_STAMPED})
        if not topic or not found:
            return []
        return [f'no wrench topic {topic} in the recording, so no wrench residuals; '
                f'{WRENCH_STAMPED} topics in it: {found}; name the sensor one with '
                '--wrench-topic']
    n = run.counts.wrench_messages
    if not chain.with_wrench or not n or chain.intake.counters().get('wrench.accepted'):
        return []
    refused = rejection_run(chain.intake.wrench)
    why = f' (mostly {refused[1]}: {refused[2]})' if refused else ''
    return [f'all {n} wrenches on {topic} were refused, so there are no wrench '
            f'residuals{why}']


def build_report(bag, digest, run, chain, params, recorded, note):
    """Return the report (a dict of plain values, the same on every replay of ``bag``)."""
    return {
        'version': REPORT_VERSION,
        'recording': {'name': Path(bag).name, 'sha256': digest, 'note': note},
        'robot': {'urdf': Path(chain.model.urdf_path).name, 'joints': chain.names},
        'settings': {'commissioning_duration_s':
                     params['twin_anomaly']['commissioning_duration_s'],
                     'persistence_s': params['twin_anomaly']['persistence_s'],
                     'report_rate_hz': params['twin_anomaly']['publish_rate_hz'],
                     'wrench': chain.with_wrench},
        'messages': {'joint_states': run.counts.joint_messages,
                     'wrench': run.counts.wrench_messages,
                     'samples': run.counts.samples, 'residuals': run.counts.results,
                     # the mirror's counters, as the live twin's /twin/status gives them
                     'mirror_restarts': chain.mirror.restarts,
                     'nonfinite_results': chain.mirror.nonfinite_results,
                     'samples_without_effort': chain.mirror.samples_without_effort},
        'intake': dict(sorted(chain.intake.counters().items())),
        'rejections': run.reasons,
        'residuals': run.joint_stats.summary(),
        'wrench_residuals': run.wrench_stats.summary() if chain.with_wrench else None,
        'commissioning': next((e for e in run.events
                               if e.get('kind') == 'commissioning_finished'), None),
        'anomalies': run.episodes.episodes,
        'first_alarm': run.episodes.episodes[0] if run.episodes.episodes else None,
        'live_twin': recorded,
        'final_state': _state_summary(run.last_state),
        'rul': None,
        'payloads': {'topic': PAYLOAD_TOPIC, 'messages': run.counts.payload_messages,
                     'applied': run.payloads_applied, 'refused': run.payloads_refused,
                     'counts': {'applied': len(run.payloads_applied),
                                'refused': len(run.payloads_refused)},
                     'ignored': False},
        'events': run.events,
    }


def replay(bag, *, config=None, urdf='', thresholds=None, ledger=None,
           joint_states_topic=None, wrench_topic=None, from_start=False, progress=False,
           payload=True):
    """
    Replay a recording through the twin; return the report (dict).

    Parameters
    ----------
    bag : str or Path
        rosbag2 directory, or an .mcap / .db3 file.
    config : str, optional
        Config file or profile the twin's parameters come from (default ``twin``).
    urdf : str, optional
        The robot's URDF (overrides the config's).
    thresholds : str, optional
        Commissioned thresholds to use (read only); default: commission on the recording.
    ledger : str, optional
        Lifecycle log to write the replay's entries to.
    joint_states_topic, wrench_topic : str, optional
        The robot's topics in the recording (default: the config's; ``''`` = no wrench).
    from_start : bool
        Replay every sample; by default a recording with the live twin's /twin/residuals is
        replayed from the robot sample the live twin started with (:func:`live_start`); the
        report's ``start`` says whether it was (``aligned_with_live_twin``) and, for a
        recording that begins after the live twin started, how much later
        (``recording_late_s``, else None; with a note when the replay commissions, not
        with ``thresholds``).
    progress : bool
        Show a progress bar (tqdm, on stderr).
    payload : bool
        Apply the recording's payload declarations (/twin/payload) where they are in the
        stream, as the live twin did; False ignores them (the report's ``payloads`` says how
        many there were).

    Raises
    ------
    ReplayError
        Anything about the recording, config, URDF or ledger that stops the replay.

    """
    params = twin_parameters(config, urdf)
    bridge = params['twin_bridge']
    topic = joint_states_topic or bridge['joint_states_topic']
    wtopic = bridge['wrench_topic'] if wrench_topic is None else wrench_topic
    reader, note = open_recording(bag)
    log = None
    try:
        notes = []          # what the recording holds that the user should know
        joint_conns = topic_connections(reader, topic, JOINT_STATE, True,
                                        'name the robot topic with --joint-states-topic', notes)
        wrench_conns = topic_connections(reader, wtopic, WRENCH_STAMPED, False,
                                         '--wrench-topic "" ignores it', notes) if wtopic else []
        payload_conns = topic_connections(reader, PAYLOAD_TOPIC, INERTIA_STAMPED, False,
                                          '--no-payload ignores it', notes)
        chain = _make_chain(params, bool(wrench_conns), thresholds)
        digest = recording_digest(bag)
        log = _open_ledger(ledger, params, bag, digest, thresholds)
        run = _Replay(chain, reader, bag, log)
        applied = payload_conns if payload else []
        total = sum(c.msgcount for c in joint_conns + wrench_conns + applied)
        start, late_s = (None, None) if from_start else live_start(reader, bag, joint_conns)
        with _progress(progress, total) as bar:
            run.run(joint_conns, wrench_conns, bar, start, applied)
        _check_fed(run, chain, topic, chain.model.urdf_path)
        recorded = recorded_alarms(reader, bag)
        report = build_report(bag, digest, run, chain, params, recorded, note)
        if late_s is not None and not thresholds:
            notes.append(_late_recording_note(late_s, topic))
        report['notes'] = notes + _wrench_notes(reader, wtopic, wrench_conns, chain, run)
        if not payload:
            report['payloads'].update(ignored=True, messages=sum(
                getattr(c, 'msgcount', 0) or 0 for c in payload_conns))
        report['start'] = {'aligned_with_live_twin': start is not None,
                           'stamp': None if start is None else start[0] + start[1] * 1e-9,
                           'skipped_messages': run.counts.skipped,
                           'recording_late_s': late_s}
        if log is not None:
            _log_entry(log, 'replay', {'recording': Path(bag).name, 'recording_sha256': digest,
                                       'report_sha256': report_digest(report),
                                       'samples': run.counts.samples,
                                       'anomalies': len(report['anomalies'])})
        return report
    finally:
        reader.close()
        if log is not None:
            log.close()


def _make_chain(params, with_wrench, thresholds):
    if thresholds:
        try:        # what the file is, said before the monitor's own reasons
            read_project_file(thresholds, MONITOR_FILE_KEY)
        except ValueError as exc:
            raise ReplayError(f'--thresholds: {exc}. Leave it out to commission on the '
                              'recording') from None
    copy = _read_only_copy(thresholds)
    try:
        chain = TwinChain(params, with_wrench, copy)
    except (URDFError, FileNotFoundError, ValueError) as exc:
        raise ReplayError(f'cannot build the twin: {exc}') from None
    if copy is not None:
        chain.file_names[copy] = str(thresholds)
    if thresholds and not chain.monitor.commissioned:
        # the monitor's reasons name the private copy: said of the user's file instead
        reasons = '; '.join(
            text.removeprefix(f'{copy}: ').replace(copy, str(thresholds)).removesuffix(
                '; commissioning again') for text in chain.warnings) or 'not loaded'
        raise ReplayError(f'--thresholds {thresholds} cannot be used for this robot and these '
                          f'settings: {reasons}. Leave it out to commission on the recording')
    return chain


def _read_only_copy(path):
    """
    Copy a thresholds file to a private place (the monitor may write its file, never ours).

    The place is removed when this process exits (the monitor may write to it until then).
    """
    if not path:
        return None
    import atexit
    import shutil
    import tempfile
    directory = tempfile.mkdtemp(prefix='robot_twin_replay_')
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    copy = Path(directory) / Path(path).name
    shutil.copyfile(path, copy)
    return str(copy)


def _open_ledger(path, params, bag, digest, thresholds):
    if not path:
        return None
    try:
        ledger = Ledger(path)
        anomaly = params['twin_anomaly']
        ledger.record_start('replay', config=params, files={
            'urdf': urdf_or_builtin(anomaly['urdf_path']),
            'dynamics_params_file': params['twin_sim']['dynamics_params_file'],
            'thresholds': thresholds or ''}, recording=Path(bag).name, recording_sha256=digest)
    except ValueError as exc:     # LedgerError and its kinds
        raise ReplayError(f'--ledger: {exc}') from None
    return ledger


class _progress:
    """A tqdm bar on stderr when asked (a callable taking a message count), else None."""

    def __init__(self, enabled, total):
        self.bar = None
        if enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit='msg', unit_scale=True, desc='replay',
                            leave=False)

    def __enter__(self):
        return self.bar.update if self.bar is not None else None

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


def report_json(report):
    """Return the report as strict JSON text (sorted keys; NaN and infinities as strings)."""
    from twin_bridge.ledger import to_json_value
    return json.dumps(to_json_value(report), sort_keys=True, indent=1, allow_nan=False) + '\n'


def report_digest(report):
    """SHA-256 (hex) of :func:`report_json`."""
    return hashlib.sha256(report_json(report).encode('utf-8')).hexdigest()
