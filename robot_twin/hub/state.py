"""
The hub's store of the twin's latest state: one thread-safe object every interface reads.

ROS-free. The hub node writes what it hears on the twin's low-rate topics into a
:class:`TwinState` (joint samples at display rate, sync health, anomaly and RUL statuses), the
hub itself adds what it owns (acknowledgements, what-if jobs, lifecycle-log entries, identified
parameters, the corrective-actions switch), and the REST API, the dashboard stream, the OPC UA
server and the Foxglove publisher read consistent copies (:meth:`TwinState.snapshot`,
:meth:`TwinState.series_since`). A change counter (:attr:`TwinState.version`) and a sample
sequence number let a reader push only what changed.

Anomaly *episodes* are made here from the latched /twin/anomaly statuses: an episode of a joint
opens when its status turns ERROR and closes only once the status has stayed below ERROR for
:data:`EPISODE_HOLD_S` (an alarm that flickers ERROR -> WARN -> ERROR is one episode, with one
id and one acknowledgement); it keeps the fault type, the ``since`` stamp, the peak score and
who acknowledged it (the first acknowledgement stands). Joint samples older than
:data:`STALE_AFTER_S` (by the hub's clock of reception) are flagged stale. The sync status
(/twin/status) and the anomaly statuses (/twin/anomaly), which the twin publishes at 10 Hz, age
out after :data:`STATUS_STALE_AFTER_S`: they are then shown as level ``STALE`` with their age
and the last level reported, and an open episode of a joint whose status aged out is not
``active`` but ``unknown`` (the twin stopped reporting; it is not closed either). Before the
first /twin/anomaly the anomaly level is ``STALE`` (unknown), as before the first /twin/status.
Times passed in are wall-clock seconds (``now``) unless named ``stamp`` (the robot sample's
header stamp, s).
"""
from collections import deque
from dataclasses import asdict, dataclass, field
import math
import statistics
import threading
import time

LEVELS = ('OK', 'WARN', 'ERROR', 'STALE')
RUL_KEYS = ('rul_hours', 'rul_lower_hours', 'rul_upper_hours', 'health_index')
PAIR_TOLERANCE_S = 0.05
"""A measured and a predicted display sample whose stamps differ by more are not paired."""
EPISODE_HOLD_S = 2.0
"""An episode closes once its joint's level has stayed below ERROR this long, s."""
STALE_AFTER_S = 1.0
"""Joint samples are stale when the newest arrived longer ago than this, s."""
STATUS_STALE_AFTER_S = 3.0
"""Sync and anomaly statuses (published at 10 Hz) are stale when older than this, s, or than
:data:`STATUS_STALE_PERIODS` of their own period, whichever is longer (a twin configured to
report at 0.1 Hz is not stale between its reports)."""
STATUS_STALE_PERIODS = 3.0
_PERIOD_INTERVALS = 5
STOPPED_REPORTING = 'unknown: the twin stopped reporting'
"""What an anomaly episode is while its joint's status is stale."""
NOTE_MAX_CHARS = 500
"""Longest acknowledgement note (REST and OPC UA)."""


class AlreadyAcknowledged(ValueError):
    """An anomaly episode that was acknowledged before: the first acknowledgement stands."""


def check_note(note):
    """
    Return ``note`` if it may be kept with an acknowledgement; raise ValueError saying why not.

    A note is text of at most :data:`NOTE_MAX_CHARS` characters without control characters
    (tab and line breaks allowed). The REST API and the OPC UA method both use this check.
    """
    if not isinstance(note, str):
        raise ValueError(f'the note must be text, got {type(note).__name__}')
    if len(note) > NOTE_MAX_CHARS:
        raise ValueError(f'the note has {len(note)} characters; at most {NOTE_MAX_CHARS} '
                         'are kept')
    bad = next((c for c in note if c not in '\t\n\r' and (
        ord(c) < 32 or 127 <= ord(c) < 160)), None)
    if bad is not None:
        raise ValueError(f'the note contains the control character {bad!r}; send plain text')
    lone = next((c for c in note if 0xD800 <= ord(c) <= 0xDFFF), None)
    if lone is not None:
        raise ValueError(f'the note contains the lone surrogate U+{ord(lone):04X}, which is no '
                         'character; send valid Unicode text')
    return note


def finite_or_none(value):
    """Return ``value`` as a float, or None when it is missing, NaN or infinite (JSON-ready)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def aged(status, now, topic):
    """
    Return a copy of a status dict (``level``, ``message``, ``received``) with its age.

    Adds ``age_s`` (s since the hub received it; None: never) and ``stale`` (never received,
    or older than :data:`STATUS_STALE_AFTER_S`). A stale status received before is shown as
    level ``STALE``, with a message that says for how long ``topic`` has been silent and what
    it said last (``last_level``, ``last_message``).
    """
    out = dict(status)
    out.pop('intervals', None)
    received = out.get('received')
    age = None if received is None else max(0.0, now - received)
    out['age_s'] = age
    limit = max(STATUS_STALE_AFTER_S, STATUS_STALE_PERIODS * out.pop('period', 0.0))
    out['stale'] = age is None or age > limit
    if age is not None and out['stale']:
        out['last_level'], out['last_message'] = out['level'], out['message']
        out['level'] = 'STALE'
        out['message'] = (f'no {topic} for {age:.1f} s (last: {out["last_level"]}, '
                          f'{out["last_message"]})')
    return out


def _received(previous, status, now):
    """
    Return ``status`` with ``received`` (``now``) and ``period``, s, for :func:`aged`.

    ``period`` is the median of the last :data:`_PERIOD_INTERVALS` intervals between reports
    (0 before three): neither an alarm published at once between two regular reports nor the
    pause of a twin that stopped and started again moves it.
    """
    previous = previous or {}
    last = previous.get('received')
    intervals = previous.get('intervals', ())
    if last is not None and now >= last:
        intervals = (intervals + (now - last,))[-_PERIOD_INTERVALS:]
    return dict(status, received=now, intervals=intervals,
                period=statistics.median(intervals) if len(intervals) >= 3 else 0.0)


def _float_list(values, n):
    return [finite_or_none(v) for v in values] if len(values) == n else [None] * n


@dataclass
class AnomalyEpisode:
    """
    One alarm of one joint (or of the wrench): from ERROR until it stays below ERROR.

    Attributes
    ----------
    id : int
        Hub-wide number, 1, 2, ... (the REST API's anomaly id).
    joint : str
        Joint name, or ``wrench``.
    fault_type : str
        Latest ``fault_type`` the twin reported during the episode.
    since : float or None
        The twin's ``since`` (stamp of the onset, s), when reported.
    opened, closed : float or None
        Wall time the hub saw the episode start and end (None while open). ``closed`` is
        when the status left ERROR for the last time; it is set :data:`EPISODE_HOLD_S` later,
        once the status has stayed below ERROR.
    peak_score : float
        Largest score/threshold ratio seen.
    message : str
        Latest status message.
    acknowledged_at : float or None
        Wall time of the (first) acknowledgement; None until acknowledged.
    acknowledged_by, note : str
        Who acknowledged it (``api``, ``opcua``) and their note.
    unknown : str
        '' while the twin reports on the joint; :data:`STOPPED_REPORTING` (with the age) while
        its status is stale: the episode is then neither active nor closed.

    """

    id: int  # noqa: A003 (the API's field name)
    joint: str
    fault_type: str
    since: float
    opened: float
    closed: float = None
    peak_score: float = 0.0
    message: str = ''
    acknowledged_at: float = None
    acknowledged_by: str = ''
    note: str = ''
    unknown: str = ''

    @property
    def active(self):
        """Whether the alarm is still raised (and the twin still reports on it)."""
        return self.closed is None and not self.unknown

    def to_dict(self):
        """Return a JSON-ready dict (with ``active`` and ``status``)."""
        out = asdict(self)
        del out['unknown']
        out['active'] = self.active
        out['status'] = ('cleared' if self.closed is not None else self.unknown or 'active')
        out['since'] = finite_or_none(self.since)
        out['peak_score'] = finite_or_none(self.peak_score)
        return out


@dataclass
class _Stream:
    """The latest display sample of one kind (measured or predicted) and its ring."""

    stamp: float = None
    position: list = None
    velocity: list = None
    effort: list = None
    count: int = 0
    received: float = None      # hub's wall time of the newest sample
    ring: deque = field(default_factory=deque)

    def age(self, now):
        """Return ``(age_s, stale)`` of the newest sample at wall time ``now`` (None: none)."""
        age = None if self.received is None else max(0.0, now - self.received)
        return age, age is not None and age > STALE_AFTER_S


class TwinState:
    """
    The twin's state for the outside-ROS interfaces (thread-safe).

    Parameters
    ----------
    joint_names : sequence of str
        The robot's joints in model order; every array here is in this order.
    robot_name : str
        Name shown by every interface (the URDF's robot name).
    history_s : float
        Seconds of joint samples kept for plots (by stamp).
    max_episodes : int
        Closed anomaly episodes kept (oldest dropped first).
    clock : callable
        Wall clock for updates that get no ``now``; default ``time.time``.

    """

    def __init__(self, joint_names, robot_name='robot', *, history_s=30.0, max_episodes=500,
                 clock=time.time):
        self.joint_names = list(joint_names)
        self.robot_name = str(robot_name)
        self.history_s = float(history_s)
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        self._clock = clock
        self._lock = threading.RLock()
        self._version = 0
        self._seq = 0
        self._measured = _Stream()
        self._predicted = _Stream()
        self._residual = _Stream()
        self._recent_predicted = {}         # stamp ns -> effort, for exact pairing
        self._sync = {'level': 'STALE', 'message': 'no /twin/status yet', 'values': {},
                      'received': None}
        self._robot_anomaly = {'level': 'STALE', 'message': 'no /twin/anomaly yet',
                               'values': {}, 'received': None}
        self._joint_anomaly = {}            # joint -> {level, message, values, received}
        self._open = {}                     # joint -> AnomalyEpisode
        self._below_error = {}              # joint -> wall time its open episode left ERROR
        self._episodes = deque(maxlen=int(max_episodes))
        self._next_episode = 1
        self._rul = {}                      # joint -> dict
        self._rul_received = None
        self._ledger = {'path': '', 'entries': [], 'error': ''}
        self._parameters = {'source': '', 'document': None, 'error': ''}
        self._jobs = {}
        self._corrective = {'enabled': None, 'error': 'not read yet', 'updated': None}
        self._events = 0                    # version of the slow sections (log, jobs, ...)
        self._staleness = None              # what was stale when the version was last read

    # ------------------------------------------------------------------ helpers
    def _now(self, now):
        return self._clock() if now is None else float(now)

    def _changed(self, events=False):
        self._version += 1
        if events:
            self._events += 1

    @property
    def version(self):
        """
        Change counter: grows on every update (a reader pushes when it moved).

        It also grows when data turns stale (or live again) without a new message, so that a
        reader that pushes on change shows the staleness.
        """
        with self._lock:
            now = self._clock()
            if self._below_error:
                self._settle(now)
            self._check_staleness(now)
            return self._version

    def _check_staleness(self, now):
        """Count a change of what is stale (joint samples, statuses, episodes) as an update."""
        streams = tuple(s.age(now)[1]
                        for s in (self._measured, self._predicted, self._residual))
        statuses = (aged(self._sync, now, '')['stale'],
                    aged(self._robot_anomaly, now, '')['stale'],
                    frozenset(j for j, st in self._joint_anomaly.items()
                              if aged(st, now, '')['stale']))
        episodes = self._mark_unknown(now)
        current = streams + statuses
        if current != self._staleness or episodes:
            self._staleness = current
            self._changed(events=episodes)

    def _vector(self, names, values):
        """Reorder ``values`` given for ``names`` into model order (None where missing)."""
        out = [None] * len(self.joint_names)
        if len(values) != len(names):
            return out
        for name, value in zip(names, values):
            i = self._index.get(name)
            if i is not None:
                out[i] = finite_or_none(value)
        return out

    # ------------------------------------------------------------------ joint samples
    def update_joints(self, kind, stamp, names, position=(), velocity=(), effort=()):
        """
        Store one display sample of the twin's joints.

        Parameters
        ----------
        kind : str
            ``measured`` (/twin/joint_states) or ``predicted`` (/twin/predicted_joint_states).
        stamp : float
            Header stamp of the robot sample, s.
        names : sequence of str
            Joint names of the message (any order, any subset; unknown names are ignored).
        position, velocity, effort : sequences of float
            Values for ``names`` (rad, rad/s, N·m; m, m/s, N for prismatic joints); a sequence
            of another length than ``names`` counts as absent.

        """
        if kind not in ('measured', 'predicted'):
            raise ValueError(f"kind must be 'measured' or 'predicted', got {kind!r}")
        stamp = finite_or_none(stamp)
        if stamp is None:
            return
        with self._lock:
            stream = self._measured if kind == 'measured' else self._predicted
            stream.stamp = stamp
            stream.position = self._vector(names, position)
            stream.velocity = self._vector(names, velocity)
            stream.effort = self._vector(names, effort)
            stream.count += 1
            stream.received = self._clock()
            self._seq += 1
            stream.ring.append((self._seq, stamp, stream.effort, stream.position))
            self._trim(stream.ring, stamp)
            self._pair(kind, stamp)
            self._changed()

    def _trim(self, ring, stamp):
        while ring and (ring[0][1] < stamp - self.history_s or ring[0][1] > stamp + 1.0):
            ring.popleft()   # too old, or from before a clock jump back

    def _pair(self, kind, stamp):
        """Residual (measured - predicted) when both sides of one robot sample are here."""
        key = int(round(stamp * 1e9))
        m, p = self._measured, self._predicted
        if kind == 'predicted':
            self._recent_predicted[key] = (p.position, p.velocity, p.effort)
            if len(self._recent_predicted) > 256:
                self._recent_predicted.pop(next(iter(self._recent_predicted)))
            if m.stamp is None or int(round(m.stamp * 1e9)) != key:
                return
        match = self._recent_predicted.get(int(round(m.stamp * 1e9)))
        if match is None:   # stamps of the two display topics differ: nearest within tolerance
            if p.stamp is None or abs(p.stamp - m.stamp) > PAIR_TOLERANCE_S:
                return
            match = (p.position, p.velocity, p.effort)
        r = self._residual
        r.stamp, r.received = m.stamp, self._clock()
        r.position, r.velocity, r.effort = (
            [None if a is None or b is None else a - b for a, b in zip(meas, pred)]
            for meas, pred in zip((m.position, m.velocity, m.effort), match))
        if r.ring and r.ring[-1][1] == m.stamp:
            r.ring.pop()     # paired by nearest first, now exactly: replace, do not repeat
        else:
            r.count += 1
        r.ring.append((self._seq, m.stamp, r.effort, r.position))
        self._trim(r.ring, m.stamp)

    def series_since(self, seq=0, max_points=2000):
        """
        Return the joint samples appended after sequence number ``seq``.

        Returns
        -------
        dict
            ``{'seq': newest sequence number, 'measured': [[stamp, [effort...]], ...],
            'predicted': [...], 'residual': [...]}``, efforts N·m in model joint order, at
            most ``max_points`` per kind (the newest).

        """
        with self._lock:
            out = {'seq': self._seq}
            for kind, stream in (('measured', self._measured), ('predicted', self._predicted),
                                 ('residual', self._residual)):
                points = []
                for s, stamp, effort, _ in reversed(stream.ring):   # newest first
                    if s <= seq or len(points) >= max_points:
                        break
                    points.append([stamp, effort])
                out[kind] = points[::-1]
            return out

    def latest_positions(self):
        """Return ``(stamp, positions)`` of the newest measured sample, or ``(None, None)``."""
        with self._lock:
            return self._measured.stamp, self._measured.position

    def joints(self, now=None):
        """
        Return the per-joint picture: measured, predicted, residual, anomaly, RUL.

        Each of measured, predicted and residual (None until received) has the robot sample's
        ``stamp``, its values, ``age_s`` (s since the hub received it) and ``stale`` (older
        than :data:`STALE_AFTER_S`).
        """
        with self._lock:
            now = self._now(now)
            self._settle(now)
            ages = {}
            for kind, stream in (('measured', self._measured), ('predicted', self._predicted),
                                 ('residual', self._residual)):
                ages[kind] = (stream, *stream.age(now))
            out = []
            for i, name in enumerate(self.joint_names):
                entry = {'name': name}
                for kind, (stream, age, stale) in ages.items():
                    entry[kind] = None if stream.stamp is None else {
                        'stamp': stream.stamp, 'position': stream.position[i],
                        'velocity': stream.velocity[i], 'effort': stream.effort[i],
                        'age_s': age, 'stale': stale}
                entry['anomaly'] = self._joint_anomaly_dict(name, now)
                entry['rul'] = self._rul.get(name)
                out.append(entry)
            return out

    def health(self, now=None):
        """
        Return whether the robot's data is live: ``{'status', 'reasons', 'data_age_s'}``.

        ``status`` is ``ok``, or ``degraded`` with the ``reasons`` (no measured joint sample
        yet or for longer than :data:`STALE_AFTER_S`; the bridge's sync level ERROR or
        STALE, which it also is when /twin/status is older than :data:`STATUS_STALE_AFTER_S`;
        no /twin/anomaly yet or for longer than that). ``data_age_s`` is the age of the newest
        measured sample (None before one).
        """
        with self._lock:
            now = self._now(now)
            age, stale = self._measured.age(now)
            sync = self.sync(now)
            anomaly = aged(self._robot_anomaly, now, '/twin/anomaly')
        reasons = []
        if age is None:
            reasons.append('no measured joint sample (/twin/joint_states) received yet')
        elif stale:
            reasons.append(f'no measured joint sample (/twin/joint_states) for {age:.1f} s: '
                           'the values shown are stale')
        if sync['level'] in ('ERROR', 'STALE'):
            reasons.append(f"sync {sync['level']}: {sync['message']}")
        if anomaly['stale']:
            reasons.append(f"anomaly state unknown: {anomaly['message']}")
        return {'status': 'degraded' if reasons else 'ok', 'reasons': reasons,
                'data_age_s': age}

    # ------------------------------------------------------------------ sync health
    def update_sync(self, level, message, values, now=None):
        """Store the bridge's ``twin/status/sync`` (level name, message, values as strings)."""
        with self._lock:
            self._sync = _received(self._sync, {
                'level': str(level), 'message': str(message),
                'values': {str(k): str(v) for k, v in dict(values).items()}}, self._now(now))
            self._changed()

    def sync(self, now=None):
        """
        Return the latest sync status with the main figures parsed (s, ppm).

        With ``age_s`` and ``stale`` (:func:`aged`): level ``STALE`` when /twin/status is older
        than :data:`STATUS_STALE_AFTER_S`.
        """
        with self._lock:
            s = aged(self._sync, self._now(now), '/twin/status')
        values = s['values']
        s['latency_p50_s'] = finite_or_none(values.get('latency_p50_s'))
        s['latency_p99_s'] = finite_or_none(values.get('latency_p99_s'))
        s['clock_drift_ppm'] = finite_or_none(values.get('clock_drift_ppm'))
        s['missing_joints'] = [j for j in values.get('missing_joints', '').split(',') if j]
        return s

    # ------------------------------------------------------------------ anomalies
    def update_anomaly(self, statuses, now=None):
        """
        Store one /twin/anomaly message and open or close anomaly episodes.

        Parameters
        ----------
        statuses : iterable of (name, level, message, values)
            Status name (``twin/anomaly/robot``, ``twin/anomaly/<joint>``), level name
            (``OK``, ``WARN``, ``ERROR``, ``STALE``), message and ``{key: str}`` values.
        now : float, optional
            Wall time of reception, s.

        """
        now = self._now(now)
        with self._lock:
            events = False
            for name, level, message, values in statuses:
                values = {str(k): str(v) for k, v in dict(values).items()}
                target = str(name).rsplit('/', 1)[-1]
                if name == 'twin/anomaly/robot':
                    self._robot_anomaly = _received(self._robot_anomaly, {
                        'level': level, 'message': message, 'values': values}, now)
                    continue
                self._joint_anomaly[target] = _received(self._joint_anomaly.get(target), {
                    'level': level, 'message': message, 'values': values}, now)
                events |= self._track_episode(target, level, message, values, now)
            self._changed(events)

    def _track_episode(self, joint, level, message, values, now):
        """Open, update or close the episode of ``joint``; return True on open/close."""
        episode = self._open.get(joint)
        threshold = finite_or_none(values.get('threshold')) or 0.0
        score = finite_or_none(values.get('score'))
        ratio = score / threshold if score is not None and threshold > 0 else (score or 0.0)
        if level == 'ERROR':
            self._below_error.pop(joint, None)      # back within the hold: the same episode
            if episode is None:
                episode = AnomalyEpisode(
                    self._next_episode, joint, values.get('fault_type', 'unknown'),
                    finite_or_none(values.get('since')), now, message=message)
                self._next_episode += 1
                self._open[joint] = episode
                self._episodes.append(episode)
                opened = True
            else:
                opened = False
            episode.fault_type = values.get('fault_type', episode.fault_type)
            episode.message = message
            episode.peak_score = max(episode.peak_score, ratio)
            return opened
        if episode is not None:
            self._below_error.setdefault(joint, now)
            return self._settle(now)
        return False

    def _settle(self, now):
        """Close the episodes whose level has stayed below ERROR EPISODE_HOLD_S; True if any."""
        done = [j for j, t in self._below_error.items() if now - t >= EPISODE_HOLD_S]
        for joint in done:
            self._open.pop(joint).closed = self._below_error.pop(joint)
        if done:
            self._changed(events=True)
        return bool(done)

    def _mark_unknown(self, now):
        """Mark open episodes whose joint's status is stale unknown; True if any flipped."""
        flipped = False
        for joint, episode in self._open.items():
            status = aged(self._joint_anomaly.get(joint, {}), now, '/twin/anomaly')
            unknown = (f'{STOPPED_REPORTING} (no /twin/anomaly for {status["age_s"]:.1f} s)'
                       if status['stale'] and status['age_s'] is not None else '')
            flipped |= bool(unknown) != bool(episode.unknown)
            episode.unknown = unknown
        return flipped

    def _joint_anomaly_dict(self, joint, now):
        status = self._joint_anomaly.get(joint)
        if status is None:
            return None
        status = aged(status, now, '/twin/anomaly')
        if status['stale']:
            status['message'] = f'{STOPPED_REPORTING}: {status["message"]}'
        values = status['values']
        episode = self._open.get(joint)
        return {'level': status['level'], 'message': status['message'],
                'age_s': status['age_s'], 'stale': status['stale'],
                'fault_type': values.get('fault_type', ''),
                'since': finite_or_none(values.get('since')),
                'score': finite_or_none(values.get('score')),
                'threshold': finite_or_none(values.get('threshold')),
                'confidence': finite_or_none(values.get('confidence')),
                'episode': episode.id if episode is not None else None}

    def robot_anomaly(self, now=None):
        """
        Return the robot-level anomaly status (``twin/anomaly/robot``) with its age.

        Level ``STALE`` before the first /twin/anomaly and once it is older than
        :data:`STATUS_STALE_AFTER_S` (:func:`aged`).
        """
        with self._lock:
            return aged(self._robot_anomaly, self._now(now), '/twin/anomaly')

    def anomalies(self, active_only=False, now=None):
        """
        Return the robot-level status and the episodes (newest first).

        ``active_only`` leaves out closed episodes and those whose joint's status is stale
        (``status`` says ``unknown: the twin stopped reporting``).
        """
        with self._lock:
            now = self._now(now)
            self._settle(now)
            self._mark_unknown(now)
            episodes = [e.to_dict() for e in reversed(self._episodes)
                        if e.active or not active_only]
            robot = self.robot_anomaly(now)
        return {'robot': robot, 'episodes': episodes}

    def acknowledge(self, episode_id, by, note='', now=None):
        """
        Mark anomaly episode ``episode_id`` acknowledged; return its dict.

        The first acknowledgement stands: it is never overwritten.

        Raises
        ------
        KeyError
            No such episode (it may also have been dropped from a long history).
        AlreadyAcknowledged
            The episode was acknowledged before (the message says by whom and when).
        ValueError
            A note :func:`check_note` refuses.

        """
        check_note(note)
        with self._lock:
            for episode in self._episodes:
                if episode.id == int(episode_id):
                    if episode.acknowledged_at is not None:
                        when = time.strftime('%Y-%m-%dT%H:%M:%SZ',
                                             time.gmtime(episode.acknowledged_at))
                        raise AlreadyAcknowledged(
                            f'anomaly {episode.id} was already acknowledged by '
                            f'{episode.acknowledged_by} at {when}' + (
                                f' (note: {episode.note!r})' if episode.note else '') +
                            '; the first acknowledgement stands')
                    episode.acknowledged_at = self._now(now)
                    episode.acknowledged_by = str(by)
                    episode.note = str(note)
                    self._changed(events=True)
                    return episode.to_dict()
        raise KeyError(f'no anomaly {episode_id}; GET /api/v1/anomalies lists them')

    # ------------------------------------------------------------------ RUL
    def update_rul(self, statuses, now=None):
        """
        Store one /twin/rul message: statuses ``twin/rul/<joint>`` (name, level, msg, values).

        Values ``rul_hours``, ``rul_lower_hours``, ``rul_upper_hours`` and ``health_index`` are
        parsed as numbers (None when missing or not finite); ``recommended_action`` and
        ``due_by`` are kept as text.
        """
        with self._lock:
            for name, level, message, values in statuses:
                joint = str(name).rsplit('/', 1)[-1]
                entry = {k: finite_or_none(values.get(k)) for k in RUL_KEYS}
                entry.update(level=level, message=message,
                             recommended_action=str(values.get('recommended_action', '')),
                             due_by=str(values.get('due_by', '')))
                self._rul[joint] = entry
            self._rul_received = self._now(now)
            self._changed(events=True)

    def rul(self):
        """Return ``{joint: {rul_hours, rul_lower_hours, ..., recommended_action, due_by}}``."""
        with self._lock:
            return {'received': self._rul_received,
                    'joints': {j: dict(v) for j, v in self._rul.items()}}

    # ------------------------------------------------------------------ hub-owned sections
    def set_ledger(self, path, entries, error=''):
        """Store the last lifecycle-log entries (list of dicts) read from ``path``."""
        with self._lock:
            new = {'path': str(path), 'entries': list(entries), 'error': error}
            if self._ledger != new:
                self._ledger = new
                self._changed(events=True)

    def ledger(self):
        """Return ``{'path', 'entries', 'error'}`` of the lifecycle log."""
        with self._lock:
            return dict(self._ledger)

    def set_parameters(self, source, document, error=''):
        """Store the identified parameters document (params.yaml) and where it came from."""
        with self._lock:
            self._parameters = {'source': str(source), 'document': document, 'error': error}
            self._changed(events=True)

    def parameters(self):
        """Return ``{'source', 'document', 'error'}``."""
        with self._lock:
            return dict(self._parameters)

    def update_job(self, job):
        """Store a what-if job's dict (keyed by its ``id``)."""
        with self._lock:
            self._jobs[job['id']] = dict(job)
            self._changed(events=True)

    def jobs(self):
        """Return every what-if job, newest first."""
        with self._lock:
            return sorted((dict(j) for j in self._jobs.values()),
                          key=lambda j: j['id'], reverse=True)

    def job(self, job_id):
        """Return one job's dict; raise KeyError if unknown."""
        with self._lock:
            if job_id not in self._jobs:
                raise KeyError(f'no what-if job {job_id!r}')
            return dict(self._jobs[job_id])

    def set_corrective(self, enabled, error='', now=None):
        """Store the bridge's ``corrective_actions.enabled`` (None when unknown) and why."""
        with self._lock:
            new = {'enabled': enabled, 'error': str(error)}
            if {k: self._corrective[k] for k in new} != new:
                self._corrective = dict(new, updated=self._now(now))
                self._changed(events=True)

    def corrective(self):
        """Return ``{'enabled': bool or None, 'error': str, 'updated': wall time}``."""
        with self._lock:
            return dict(self._corrective)

    # ------------------------------------------------------------------ all of it
    def counters(self):
        """Return how many display samples of each kind arrived."""
        with self._lock:
            return {'measured': self._measured.count, 'predicted': self._predicted.count,
                    'residual': self._residual.count}

    def snapshot(self, events=True):
        """
        Return the whole state as one JSON-ready dict.

        ``events=False`` leaves out the slow sections (anomaly history, log, jobs, parameters)
        and gives their version (``events``) instead, for a stream that sends them on change.
        """
        with self._lock:
            now = self._clock()
            self._settle(now)
            self._check_staleness(now)
            out = {'robot': self.robot_name, 'joint_names': list(self.joint_names),
                   'version': self._version, 'events': self._events,
                   'joints': self.joints(now), 'sync': self.sync(now),
                   'anomaly': self.robot_anomaly(now), 'health': self.health(now),
                   'corrective': self.corrective(), 'counters': self.counters()}
            if events:
                out.update(anomalies=self.anomalies(now=now), rul=self.rul(), ledger=self.ledger(),
                           jobs=self.jobs(), parameters=self.parameters())
            return out
