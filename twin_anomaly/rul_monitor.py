"""
The node-facing RUL monitor: robot samples in, per-joint RUL, health and advice out (ROS-free).

:meth:`RulMonitor.update` sits in the twin's 1 kHz path: it keeps one sample per
``sample_period_s`` of stamp time in a preallocated buffer (a float compare for the others)
and does nothing else unless the buffer is full. :meth:`RulMonitor.report`, called at a low
rate (e.g. 1 Hz), works through the buffer: blocks of samples go into the health epoch's
statistics (:mod:`twin_anomaly.health`); each completed epoch is solved for friction, residual
energy and torque margin, appended to the health log (:mod:`twin_anomaly.health_log`), and the
RUL of every joint and kind of evidence is re-estimated (:mod:`twin_anomaly.rul`), a few joints
per report (``estimates_per_report``) so that no report takes long; advice and derating follow
(:mod:`twin_anomaly.maintenance`). The torque margin is taken from the effort each drive held
for :data:`SUSTAINED_EFFORT_S` (:func:`sustained_effort`), not from single samples: torque
spikes of a few ms (a set-point step of a robot that ran late) made a healthy joint of the demo's
emulated arm read "torque margin at the failure limit" on a loaded machine.

Operating hours: the time the robot actually moves, i.e. the sum of the stamp intervals between
kept samples in which at least one joint moves faster than ``moving_speed_rad_s`` (intervals
longer than ``max_gap_s``, a stalled stream or a stopped robot, do not count), times
``time_scale`` (1 on a real robot; larger only to compress time in demos and tests). The
counter continues across restarts from the health log. Epoch length, baseline and minimum
history are seconds of measured motion (they are amounts of data, ``time_scale`` does not
shrink them); RULs, horizons and maintenance windows are (scaled) operating hours.

Phases: ``baseline`` (the first ``baseline_duration_s`` of motion: the commissioned evidence
is learned, every joint reports OK with "collecting evidence"), then ``monitoring``. The
baseline is saved in the health log and reused after a restart.

Health log records written here (besides the header): per epoch ``{"kind": "health", "phase":
"baseline"|"monitoring", "operating_s": s of motion (counter), "t_op_h": operating hours
(counter), "t_mid_h": operating hours at the middle of the epoch (where the trend places it),
"epoch_s": s of motion in the epoch, "stamp": robot stamp of its last sample, "evidence":
EpochEvidence.as_dict()}`` (about 1.2 kB for 7 joints); once ``{"kind": "baseline",
"operating_s", "t_op_h", "baseline": Baseline.as_dict()}``; and on :meth:`RulMonitor.close`
``{"kind": "counter", "operating_s", "t_op_h", "stamp"}``. Degradation is recomputed from the
evidence on a restart, so a changed failure limit applies to the whole history.

Model changes and maintenance (:meth:`RulMonitor.model_changed`,
:meth:`RulMonitor.declare_maintenance`) write ``{"kind": "model_change", "key", "reason",
"rebaseline": bool, "stamp", "operating_s", "t_op_h"}`` and ``{"kind": "maintenance", "joint",
"action", "stamp", "operating_s", "t_op_h"}``; the ``rebaseline_epochs`` epochs after either are
``health`` records with ``"phase": "rebaseline"``, and a ``{"kind": "rebaseline", "joints",
"reasons", "shift", "reference", ...}`` record says what was learned (for the reader: a restart
recomputes it from the evidence, as it does the degradation).

- A model change (a payload declared, a new calibration: the twin predicts with another
  model) moves the effort residual, and with it the friction and residual evidence, without
  any wear. The open epoch is dropped; for ``rebaseline_epochs`` epochs those two kinds are
  not judged; then each joint's degradation of those kinds continues from where it was
  before the change (the median of its recent epochs), measured from the new model's level (a
  shift in degradation units, which is affine in the evidence); the residual's failure RMS
  becomes ``residual_failure_factor`` x the new model's RMS (another model, another noise
  floor). The torque margin (measured
  effort only) is judged throughout: a real load that works the drives harder is legitimate
  ``reduce load`` evidence.
- A declared maintenance starts a new trend segment for that joint: the epochs before it are not
  fitted, its baseline (all three kinds) is learned again from the ``rebaseline_epochs`` epochs
  after it (the failure limits stay those of the commissioned baseline), and its degradation starts
  from 0 there. The operating-hour counter goes on.
"""
from dataclasses import dataclass, field, fields, replace
import datetime
import math
import warnings

import numpy as np
from twin_anomaly.health import Baseline, degradation, EpochAccumulator, EpochEvidence, \
    EVIDENCE_KINDS, FailureLimits, solve_epoch
from twin_anomaly.health_log import HealthLog, HealthLogError, json_safe
from twin_anomaly.maintenance import ACTIONS, Advice, advise, Derating, derating, \
    MaintenancePolicy
from twin_anomaly.report import StatusEntry
from twin_anomaly.rul import estimate_rul, NO_DEGRADATION, RulEstimate, STABLE, TrendSettings

__all__ = ['JointRul', 'MAINTENANCE_ACTIONS', 'RulConfig', 'RulMonitor', 'RulReport',
           'SUSTAINED_EFFORT_S', 'parse_service_friction', 'sustained_effort']

#: What :meth:`RulMonitor.declare_maintenance` accepts as the work done on a joint.
MAINTENANCE_ACTIONS = tuple(a for a in ACTIONS if a != 'none') + ('all',)

#: The torque margin takes the effort a drive held at least this long, s (see
#: :func:`sustained_effort`). A shorter excursion is an event, not the load the drive works at:
#: a drive with a stiff position loop answers a set-point step (a robot or controller that ran a
#: few ms late, e.g. the demo's emulated arm on a loaded machine) with a torque spike at its
#: effort limit that is over within a few ms, and a contact is the anomaly detector's business.
#: Holding a load near the limit (a heavy part accelerated, carried) lasts far longer.
SUSTAINED_EFFORT_S = 0.05


def _param(default, description, low=None, high=None):
    return field(default=default, metadata={'description': description, 'min': low,
                                            'max': high})


@dataclass(frozen=True)
class RulConfig:
    """
    Validated settings of :class:`RulMonitor` (``metadata``: description, min, max).

    Construct it with keywords or with :meth:`from_mapping` (a dict with these keys, e.g.
    from ROS parameters); a bad value raises ``ValueError`` naming the field.
    """

    log_path: str = _param('', 'health history file (JSON lines); empty: keep it in memory '
                           'only (no history across restarts)')
    sample_period_s: float = _param(0.005, 'keep one robot sample per this much stamp time, s',
                                    0.0, 0.1)
    block_s: float = _param(1.0, 'block of samples for the torque-margin quantile, s', 0.1, 10.0)
    buffer_s: float = _param(5.0, 'samples held between reports; a full buffer is processed in '
                             'update(), s', 1.0, 60.0)
    max_gap_s: float = _param(0.1, 'a longer interval between kept samples is not operating '
                              'time, s', 0.001, 10.0)
    moving_speed_rad_s: float = _param(0.02, 'a joint moves when |qd| exceeds this, rad/s',
                                       0.0, 1.0)
    health_interval_s: float = _param(300.0, 'seconds of robot motion per health epoch', 1.0,
                                      86400.0)
    baseline_duration_s: float = _param(1800.0, 'seconds of motion the commissioned health '
                                        'baseline is learned from', 1.0, 1e6)
    min_history_s: float = _param(3600.0, 'seconds of motion after the baseline before an RUL '
                                  'is given', 0.0, 1e7)
    reference_speed_rad_s: float = _param(0.2, 'speed at which friction is compared, rad/s',
                                          0.01, 10.0)
    min_samples: int = _param(200, 'moving samples a joint needs in an epoch', 10, 10 ** 7)
    min_sign_fraction: float = _param(0.1, 'share of moving samples needed in each direction',
                                      0.0, 0.5)
    service_friction_nm: str = _param('', 'friction (N·m at the reference speed) at which a '
                                      "joint needs service, 'joint3=2.5, joint5=3.0'; joints "
                                      'not named use friction_failure_factor')
    friction_failure_factor: float = _param(2.0, 'service friction as a multiple of the '
                                            'commissioned friction', 1.01, 100.0)
    residual_failure_factor: float = _param(4.0, 'failure RMS of the unexplained effort '
                                            'residual, multiple of the commissioned RMS',
                                            1.01, 100.0)
    min_residual_rms_nm: float = _param(0.05, 'floor of the commissioned residual RMS, N·m',
                                        0.0, 100.0)
    min_torque_margin: float = _param(0.1, 'failure when 1 - q99(|effort|/limit) falls to '
                                      'this (effort sustained for 50 ms)', 0.0, 0.99)
    trend_window_hours: float = _param(2000.0, 'operating hours of history the trend is fitted '
                                       'on', 0.0, 1e6)
    max_trend_points: int = _param(400, 'longer histories are averaged into this many bins '
                                   'for the trend fit', 20, 100000)
    estimates_per_report: int = _param(2, 'joints whose RUL one report() re-estimates after '
                                       'an epoch (bounds the cost of a report)', 1, 1000)
    interval: float = _param(0.9, 'probability of the RUL interval', 0.5, 0.999)
    min_epochs: int = _param(6, 'epochs after the baseline needed for an RUL', 4, 10 ** 6)
    min_degradation: float = _param(0.05, 'degradation (0 commissioned, 1 failed) below which '
                                    'no RUL is given', 0.0, 0.99)
    min_probability: float = _param(0.95, 'posterior probability of wear needed for an RUL',
                                    0.5, 0.9999)
    diffusion_per_sqrt_hour: float = _param(0.0, 'Brownian part of the degradation, per '
                                            'sqrt(operating hour)', 0.0, 10.0)
    warn_horizon_hours: float = _param(500.0, 'WARN when the RUL lower bound is within this '
                                       'many operating hours', 0.0, 1e6)
    error_horizon_hours: float = _param(48.0, 'ERROR when the RUL lower bound is within this '
                                        'many operating hours', 0.0, 1e6)
    replace_below_health: float = _param(0.1, 'worn friction at or below this health index: '
                                         'replace instead of lubricate; any joint at or below '
                                         'it is ERROR', 0.0, 1.0)
    warn_below_health: float = _param(0.5, 'a joint below this health index is at least WARN '
                                      '(with or without an RUL number)', 0.0, 1.0)
    rebaseline_epochs: int = _param(3, 'health epochs after a model change (payload, '
                                    'calibration) or a declared maintenance from which the new '
                                    'baseline is learned', 1, 1000)
    stale_after_s: float = _param(10.0, 'wall-clock seconds without robot samples after which '
                                  '/twin/rul says "no robot data since"', 0.1, 1e7)
    operating_hours_per_day: float = _param(0.0, 'operating hours per calendar day for due '
                                            'dates; 0: measured (24 until a day is seen)',
                                            0.0, 24.0)
    next_maintenance_hours: float = _param(0.0, 'operating-hour counter at the next planned '
                                           'maintenance window; 0: none', 0.0, 1e7)
    next_maintenance_date: str = _param('', 'date of the next planned maintenance window '
                                        '(ISO 8601); empty: none')
    wear_speed_exponent: float = _param(1.0, 'wear rate ~ speed^p for derating (1: Archard)',
                                        0.1, 5.0)
    min_speed_scale: float = _param(0.3, 'lowest speed scale a derating may ask for', 0.05,
                                    1.0)
    time_scale: float = _param(1.0, 'operating time multiplier: 1 on a robot; larger only to '
                               'compress time in demos and tests', 1.0, 1e7)

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            low, high = f.metadata.get('min'), f.metadata.get('max')
            if isinstance(f.default, str):
                if not isinstance(value, str):
                    raise ValueError(f'{f.name} must be a string, got {value!r}')
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value):
                raise ValueError(f'{f.name} must be a finite number, got {value!r}')
            if isinstance(f.default, int) and not isinstance(value, int):
                raise ValueError(f'{f.name} must be an integer, got {value!r}')
            if low is not None and value < low or high is not None and value > high:
                raise ValueError(f'{f.name} = {value!r} is out of range [{low}, {high}] '
                                 f'({f.metadata["description"]})')
        if self.error_horizon_hours > self.warn_horizon_hours:
            raise ValueError('error_horizon_hours must not exceed warn_horizon_hours')
        if self.warn_below_health < self.replace_below_health:
            raise ValueError('warn_below_health must not be below replace_below_health')
        if self.next_maintenance_date:
            _parse_date(self.next_maintenance_date)

    @classmethod
    def from_mapping(cls, values):
        """Build from a dict; unknown keys are an error naming them and the known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f'unknown RUL setting(s) {unknown}; known: {sorted(known)}')
        return cls(**values)

    @classmethod
    def from_parameters(cls, params, prefix='rul.'):
        """
        Build from a node's parameters: every ``<prefix><field>`` key that names a field.

        Other keys (the node's own, ``rul.enabled``, ...) are ignored, so the whole parameter
        dict of the node can be passed.
        """
        known = {f.name for f in fields(cls)}
        return cls(**{k[len(prefix):]: v for k, v in params.items()
                      if k.startswith(prefix) and k[len(prefix):] in known})

    def trend_settings(self):
        """Return the :class:`~twin_anomaly.rul.TrendSettings` of this configuration."""
        return TrendSettings(interval=self.interval, min_points=self.min_epochs,
                             min_degradation=self.min_degradation,
                             min_probability=self.min_probability,
                             diffusion_per_sqrt_hour=self.diffusion_per_sqrt_hour)

    def policy(self):
        """Return the :class:`~twin_anomaly.maintenance.MaintenancePolicy` of this config."""
        return MaintenancePolicy(
            warn_horizon_hours=self.warn_horizon_hours,
            error_horizon_hours=self.error_horizon_hours,
            replace_below_health=self.replace_below_health,
            warn_below_health=self.warn_below_health,
            operating_hours_per_day=self.operating_hours_per_day,
            wear_speed_exponent=self.wear_speed_exponent, min_speed_scale=self.min_speed_scale)


def _parse_date(text):
    try:
        when = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f'next_maintenance_date {text!r} is not an ISO 8601 date '
                         '(e.g. 2027-01-15)') from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when.timestamp()


def sustained_effort(t, effort, window_s):
    """
    Return the effort each sample's drive held for ``window_s``: an excursion shorter is left out.

    The least ``|effort|`` over the samples stamped in ``[t - window_s, t]`` (a running minimum,
    the erosion of the signal by the window): a torque spike shorter than the window does not
    reach it, a load held longer passes at its level (shortened by the window).

    Parameters
    ----------
    t : (N,) s
        Stamps, strictly increasing.
    effort : (N, n) N·m
        Measured joint efforts; NaN where a joint's sample is no evidence.
    window_s : float
        The window, s (> 0).

    Returns
    -------
    (N, n) N·m
        The sustained ``|effort|``; NaN where a sample of the window has none, and for samples
        whose stream covers less than half the window before them (the first samples, and
        those after a gap longer than the window: what follows a stall is not a load held).

    """
    t = np.asarray(t, dtype=float)
    magnitude = np.abs(np.asarray(effort, dtype=float))
    out = magnitude.copy()
    covered = np.zeros(t.size)
    for lag in range(1, t.size):          # the window's samples, one step further back each
        inside = t[lag:] - t[:-lag] <= window_s
        if not inside.any():
            break
        out[lag:] = np.where(inside[:, None], np.minimum(out[lag:], magnitude[:-lag]),
                             out[lag:])
        covered[lag:] = np.where(inside, t[lag:] - t[:-lag], covered[lag:])
    out[covered < 0.5 * window_s] = np.nan
    return out


def parse_service_friction(text, joint_names):
    """
    Parse ``'joint3=2.5, joint5=3.0'`` into (n,) N·m, NaN for joints not named.

    Raises
    ------
    ValueError
        Unknown joint, a value that is not a positive number, a malformed item.

    """
    out = np.full(len(joint_names), np.nan)
    for item in filter(None, (s.strip() for s in str(text).split(','))):
        name, sep, value = item.partition('=')
        name = name.strip()
        if not sep or name not in joint_names:
            raise ValueError(f'service_friction_nm item {item!r}: expected <joint>=<N·m> with '
                             f'a joint of {list(joint_names)}')
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f'service_friction_nm item {item!r}: {value.strip()!r} is not a '
                             'number') from None
        if not (math.isfinite(number) and number > 0.0):
            raise ValueError(f'service_friction_nm item {item!r} must be > 0 N·m')
        out[list(joint_names).index(name)] = number
    return out


@dataclass(frozen=True)
class JointRul:
    """
    The RUL state of one joint (one ``twin/rul/<joint>`` status).

    Attributes
    ----------
    joint : str
    rul_hours, rul_lower_hours, rul_upper_hours : float
        Operating hours; NaN when there is no number (``message`` says why); the upper bound
        may be inf.
    health_index : float
        1 as commissioned, 0 at the failure limit; NaN before the baseline.
    recommended_action : str
        ``none``, ``inspect``, ``lubricate``, ``replace`` or ``reduce load``.
    due_by : str
        ISO date, or '' when nothing is due.
    level : str
        ``OK``, ``WARN`` or ``ERROR``.
    message : str
    kind : str
        Evidence the RUL comes from (``friction``, ``residual``, ``torque_margin``) or ''.
    evidence : dict
        Figures behind the advice (JSON-able).
    last_sample : float
        Robot stamp of the last sample the monitor took, s (NaN before the first).

    """

    joint: str
    rul_hours: float
    rul_lower_hours: float
    rul_upper_hours: float
    health_index: float
    recommended_action: str
    due_by: str
    level: str
    message: str
    kind: str = ''
    evidence: dict = field(default_factory=dict)
    last_sample: float = math.nan

    def status_entry(self):
        """Return the ``twin/rul/<joint>`` :class:`~twin_anomaly.report.StatusEntry`."""
        return StatusEntry(f'twin/rul/{self.joint}', self.level, self.message, {
            'rul_hours': self.rul_hours, 'rul_lower_hours': self.rul_lower_hours,
            'rul_upper_hours': self.rul_upper_hours, 'health_index': self.health_index,
            'recommended_action': self.recommended_action, 'due_by': self.due_by,
            'evidence': self.kind,
            'friction_nm': float(self.evidence.get('friction_nm', math.nan)),
            'operating_hours': float(self.evidence.get('operating_hours', math.nan)),
            'last_sample': float(self.last_sample)})


@dataclass(frozen=True)
class RulReport:
    """
    What :meth:`RulMonitor.report` returns.

    Attributes
    ----------
    joints : list of JointRul
        Model joint order.
    derating : Derating
        The most restrictive speed scale over the joints (for the governor).
    ledger : list of dict
        Lifecycle-log entries since the last report (``kind`` plus JSON-able fields).
    phase : str
        ``baseline`` or ``monitoring``.
    operating_hours : float
        The operating-hour counter.
    level : str
        Worst joint level.
    message : str
        One line for the robot.

    """

    joints: list
    derating: Derating
    ledger: list
    phase: str
    operating_hours: float
    level: str
    message: str

    def status_entries(self):
        """Return the ``twin/rul/<joint>`` status entries, model joint order."""
        return [j.status_entry() for j in self.joints]


_LEVEL_RANK = {'OK': 0, 'WARN': 1, 'ERROR': 2}
_EMPTY = RulEstimate(reason='collecting evidence: estimating')
# an advice change that lowers the level or changes the action is logged once it held this many
# reports (a raised level at once): the lifecycle log gets the real changes, not every flicker
_DEBOUNCE_REPORTS = 3


def _duration(seconds):
    if seconds < 120.0:
        return f'{seconds:.0f} s'
    if seconds < 7200.0:
        return f'{seconds / 60.0:.0f} min'
    return f'{seconds / 3600.0:.1f} h'


def _progress(done_s, total_s):
    if total_s < 120.0:
        return f'{done_s:.0f} of {total_s:.0f} s'
    if total_s < 7200.0:
        return f'{done_s / 60.0:.0f} of {total_s / 60.0:.0f} min'
    return f'{done_s / 3600.0:.1f} of {total_s / 3600.0:.1f} h'


class RulMonitor:
    """
    Health, RUL and maintenance advice for every joint of one robot.

    Parameters
    ----------
    joint_names : sequence of str
        Model joint order.
    effort_limit : (n,) N·m
        URDF effort limits (> 0; inf for a joint without one: its torque margin is not
        judged).
    friction : twin_sim.friction.FrictionModel
        The friction model the twin predicts with (its residual is relative to it).
    config : RulConfig or dict, optional
        Settings (defaults when omitted).

    Raises
    ------
    ValueError
        A bad setting or array (the message names it). An unusable health log is not an
        error: the monitor runs without persistence and says so in the first report's ledger.

    """

    def __init__(self, joint_names, effort_limit, friction, config=None):
        self.config = config if isinstance(config, RulConfig) else \
            RulConfig.from_mapping(dict(config or {}))
        self.joint_names = [str(j) for j in joint_names]
        self.n = n = len(self.joint_names)
        # (inf: the URDF gives the joint no effort limit; its torque margin then stays 1, not
        # judged, rather than the whole twin refusing to start)
        limit = np.array(effort_limit, dtype=float).reshape(-1)
        if limit.shape != (n,) or not np.all(limit > 0.0):          # (NaN fails too)
            raise ValueError(f'effort_limit must be {n} numbers > 0 N·m (inf: none) in joint '
                             f'order {self.joint_names}, got {np.asarray(effort_limit).tolist()}')
        self.effort_limit = limit
        c = self.config
        self.set_friction_model(friction)
        self.limits = FailureLimits(
            parse_service_friction(c.service_friction_nm, self.joint_names),
            c.friction_failure_factor, c.residual_failure_factor, c.min_residual_rms_nm,
            c.min_torque_margin)
        self._trend = c.trend_settings()
        self._policy = c.policy()
        cap = int(math.ceil(c.buffer_s / max(c.sample_period_s, 2.5e-4))) + 1
        self._cap = cap
        self._buf_t = np.empty(cap)
        self._buf_qd, self._buf_effort, self._buf_res = (np.empty((cap, n)) for _ in range(3))
        self._k = 0
        self._next_keep = -math.inf
        self._last_t = None
        self._effort_tail = (np.empty(0), np.empty((0, n)))   # the last samples, for the window
        self._acc = EpochAccumulator(n, c.moving_speed_rad_s, self._smooth)
        self.operating_s = 0.0          # seconds of motion, unscaled
        self.operating_hours = 0.0      # the operating-hour counter (scaled)
        self.overflows = 0
        self.rejected = 0
        self.baseline = None
        self._baseline_epochs, self._baseline_s = [], 0.0
        self._history_t, self._history_d, self._history_start_s = [], [], 0.0
        self._first_stamp = self._last_stamp = math.nan
        self._estimates = [(_EMPTY, '', math.nan, 0.0)] * n
        self._dirty = False
        self._pending, self._snap = [], None
        self._history_end = 0.0
        self.last_evidence = None
        self._ledger, self._published, self._candidate = [], {}, {}
        self._derating_scale = 1.0
        # the baseline degradation is measured from (per joint: re-learned after a
        # maintenance), a shift in degradation units per joint and kind (after a model change),
        # the joints re-learning (0 no, 1 after a model change, 2 after a maintenance), from
        # which of the epochs since, and each joint's start of its trend segment (op. hours)
        self._reference = self._limit_ref = None
        self._shift = np.zeros((n, len(EVIDENCE_KINDS)))
        self._relearn = np.zeros(n, dtype=int)
        self._relearn_from = np.zeros(n, dtype=int)
        self._relearn_before = np.zeros((n, len(EVIDENCE_KINDS)))
        self._relearn_epochs = []
        self._relearn_why = [''] * n
        self._segment_start = np.full(n, -math.inf)
        self._model_key = None
        self._keyless_log = False
        self._episodes = {}
        self._data_mark, self._data_wall = -math.inf, math.nan
        self.log = self._open_log()

    @classmethod
    def from_model(cls, model, config=None, friction=None):
        """
        Build for a :class:`twin_sim.urdf_model.RobotModel`.

        Parameters
        ----------
        model : RobotModel
            Joint names and effort limits.
        config : RulConfig or dict, optional
            Settings (defaults when omitted).
        friction : twin_sim.friction.FrictionModel, optional
            The friction the twin predicts with (default ``model.friction_model``).

        """
        friction = model.friction_model if friction is None else friction
        return cls(model.joint_names, model.effort_limit, friction, config)

    def set_friction_model(self, friction):
        """
        Use the friction model the twin now predicts with (e.g. after a calibration).

        Parameters
        ----------
        friction : twin_sim.friction.FrictionModel
            In model joint order. The friction reported is this model's torque at the
            reference speed + the identified change, so it stays comparable with the
            commissioned value when the model changes.

        """
        if list(getattr(friction, 'joint_names', [])) != self.joint_names:
            raise ValueError(f'friction model joints {getattr(friction, "joint_names", None)} '
                             f'differ from {self.joint_names}')
        v_ref = np.full(self.n, self.config.reference_speed_rad_s)
        self.model_friction_nm = friction.torque(v_ref) - friction.offset
        self._smooth = float(friction.smooth_velocity)
        if hasattr(self, '_acc'):
            self._acc.smooth_velocity = self._smooth

    # ------------------------------------------------------------------ persistence
    def _open_log(self):
        path = self.config.log_path
        if not path:
            self._ledger.append({'kind': 'rul_log', 'level': 'WARN', 'message':
                                 'no health log_path: the health history is not kept across '
                                 'restarts'})
            return None
        try:
            log = HealthLog(path, self.joint_names)
        except HealthLogError as exc:
            self._ledger.append({'kind': 'rul_log', 'level': 'ERROR', 'message':
                                 f'{exc}; running without a health history on disk'})
            return None
        for text in log.warnings:
            self._ledger.append({'kind': 'rul_log', 'level': 'WARN', 'message': text})
        self._replay(log.records)
        if log.records:
            self._ledger.append({'kind': 'rul_log', 'level': 'OK', 'message':
                                 f'health log {log.path}: continued from {len(log.records)} '
                                 f'records, {self.operating_hours:.6g} operating hours'})
        return log

    def _replay(self, records):
        for record in records:
            try:
                self._replay_one(record)
            except (KeyError, TypeError, ValueError) as exc:
                self._ledger.append({'kind': 'rul_log', 'level': 'WARN', 'message':
                                     f'health log record {record.get("seq")} skipped: {exc}'})
        self._dirty = bool(self._history_t)
        self._keyless_log = bool(records) and self._model_key is None

    def _replay_one(self, record):
        kind = record.get('kind')
        if kind == 'model_change':
            self._model_key = record.get('key')
            if record.get('rebaseline'):
                self._start_model_relearn(str(record.get('reason', 'model')))
            return
        if kind == 'maintenance':
            self._start_maintenance(self.joint_names.index(record['joint']),
                                    str(record['action']), float(record['t_op_h']))
            return
        if kind == 'rebaseline':
            return                 # recomputed from the evidence (as the degradation is)
        if kind == 'counter':
            self.operating_s = float(record['operating_s'])
            self.operating_hours = float(record['t_op_h'])
            self._note_stamp(_number(record.get('stamp')))
            return
        if kind == 'baseline':
            self.baseline = Baseline.from_dict(record['baseline'], self.n)
            self._history_start_s = float(record['operating_s'])
            self._seed_history()
            return
        if kind != 'health':
            raise ValueError(f'unknown record kind {kind!r}')
        evidence = EpochEvidence.from_dict(record['evidence'], self.n)
        self.operating_s = float(record['operating_s'])
        self.operating_hours = float(record['t_op_h'])
        self._note_stamp(_number(record.get('stamp')))
        if self.baseline is None:
            self._baseline_epochs.append((float(record['t_mid_h']), evidence))
            self._baseline_s += float(record['epoch_s'])
        else:
            self._history_t.append(float(record['t_mid_h']))
            self._history_d.append(self._degradation(evidence))
            self._history_end = self.operating_hours
            self._relearn_step(evidence, write=False)
        self.last_evidence = evidence

    def _append_log(self, body):
        if self.log is None:
            return
        try:
            self.log.append(body)
        except OSError as exc:
            self._ledger.append({'kind': 'rul_log', 'level': 'ERROR', 'message':
                                 f'cannot write health log {self.log.path}: {exc}'})

    def close(self):
        """
        Close the health log.

        The operating-hour counter is saved (a ``counter`` record); the samples of the
        unfinished epoch are dropped. After a crash (no close) the counter continues from the
        last record, so at most one epoch of operating time is lost.
        """
        if self.log is not None:
            self._process_buffer(everything=True)
            last = self.log.records[-1].get('operating_s') if self.log.records else None
            if self.operating_s > (last or 0.0):
                self._append_log({'kind': 'counter', 'operating_s': self.operating_s,
                                  't_op_h': self.operating_hours, 'stamp': self._last_stamp})
            self.log.close()
            self.log = None

    # ------------------------------------------------------------------ model, maintenance
    def model_changed(self, key=None, reason='model', stamp=None):
        """
        Take note that the twin predicts with another model from the next sample on.

        The effort residual is measured minus predicted effort: a declared payload (right or
        wrong) or a new calibration moves it, and with it the friction and residual evidence,
        without any wear. The open epoch is dropped (its samples mix two models); the friction
        and residual evidence are re-learned over ``rebaseline_epochs`` epochs and judged from
        there on relative to the new model's level, continuing each joint's degradation from
        where it was (see the module docstring). Before the health baseline is complete, its
        learning starts again on the new model. Cheap: call it from the model's hand-over.

        Parameters
        ----------
        key : str, optional
            An identifier of the model (e.g. a checksum of its predictions). The same key as
            the one in force changes nothing, so handing the same model over again (a restart
            with a saved calibration) costs no re-baseline; the key is kept in the health log.
            The first key a monitor with a history from a log without keys hears of is taken as
            the model that history was learned on. None: always a change.
        reason : str
            Why (``payload``, ``calibration``), for the logs.
        stamp : float, optional
            Robot stamp of the change, s (default: the last sample's).

        Returns
        -------
        bool
            True when a re-baseline started (or the baseline learning restarted).

        """
        if key is not None and key == self._model_key:
            return False
        # a history from a log written before model keys: the first model handed over (the
        # saved calibration, at a restart) is taken as the one it was learned on
        adopt = key is not None and self._model_key is None and self._keyless_log
        self._keyless_log = False
        self._model_key = key
        self._drop_open_epoch()
        learned = self.baseline is not None or bool(self._baseline_epochs)
        rebaseline = learned and not adopt
        self._append_log({'kind': 'model_change', 'key': key, 'reason': str(reason),
                          'rebaseline': rebaseline, 'stamp': self._stamp(stamp),
                          'operating_s': self.operating_s, 't_op_h': self.operating_hours})
        if rebaseline:
            self._start_model_relearn(str(reason))
            self._ledger.append({
                'kind': 'health_rebaseline', 'reason': f'model change ({reason})',
                'joints': list(self.joint_names), 'operating_hours': self.operating_hours,
                'message': ('the twin predicts with another model: friction and residual '
                            f'evidence re-learned over the next {self.config.rebaseline_epochs} '
                            'health epoch(s)' if self.baseline is not None else
                            'the twin predicts with another model: the health baseline is '
                            'learned again')})
        return rebaseline

    def declare_maintenance(self, joint, action, stamp):
        """
        Record that maintenance was done on ``joint``; its health is learned anew.

        A new trend segment starts for the joint (the epochs before it are not fitted any
        more), its baseline of every kind of evidence is learned again from the
        ``rebaseline_epochs`` epochs that follow (the failure limits stay those of the
        commissioned baseline), and its degradation starts from 0 there. The joint reports
        OK with ``collecting evidence: new baseline after maintenance ...`` meanwhile. The
        operating-hour counter goes on. A ``maintenance`` record is written to the health log
        (a restart honours it) and a ``maintenance_done`` entry to the next report's ledger.
        ROS-free: the node, a topic or the hub call it. Before the health baseline is complete,
        the baseline learning starts again.

        Parameters
        ----------
        joint : str
            A joint of the robot.
        action : str
            What was done: one of :data:`MAINTENANCE_ACTIONS` (``inspect``, ``lubricate``,
            ``replace``, ``reduce load``, ``all``). Recorded; the joint is re-learned for each.
        stamp : float or None
            Robot stamp when it was done, s (None: the last sample's).

        Raises
        ------
        ValueError
            Unknown joint or action, or a stamp that is not a finite number.

        """
        if joint not in self.joint_names:
            raise ValueError(f'unknown joint {joint!r} for a maintenance; the robot has '
                             f'{self.joint_names}')
        if action not in MAINTENANCE_ACTIONS:
            raise ValueError(f'unknown maintenance action {action!r}; one of '
                             f'{list(MAINTENANCE_ACTIONS)}')
        if stamp is not None and (isinstance(stamp, bool) or
                                  not isinstance(stamp, (int, float, np.floating)) or
                                  not math.isfinite(stamp)):
            raise ValueError(f'maintenance stamp must be a finite number of seconds or None, '
                             f'got {stamp!r}')
        self._drop_open_epoch()
        j = self.joint_names.index(joint)
        record = {'kind': 'maintenance', 'joint': joint, 'action': action,
                  'stamp': self._stamp(stamp), 'operating_s': self.operating_s,
                  't_op_h': self.operating_hours}
        self._append_log(record)
        self._start_maintenance(j, action, self.operating_hours)
        self._ledger.append({
            'kind': 'maintenance_done', 'joint': joint, 'action': action,
            'stamp': record['stamp'], 'operating_hours': self.operating_hours,
            'message': f'{joint}: {action} done; its health baseline is learned again over '
                       f'{self.config.rebaseline_epochs} health epoch(s)'})

    def _stamp(self, stamp):
        if stamp is not None:
            return float(stamp)
        return self._last_sample()

    def _last_sample(self):
        if math.isfinite(self._next_keep):
            return self._next_keep - self.config.sample_period_s
        return self._last_stamp

    def _drop_open_epoch(self):
        """Count the buffered samples' operating time, then drop the unfinished epoch."""
        self._process_buffer(everything=True)
        self._acc.reset()

    def _start_model_relearn(self, reason):
        if self.baseline is None:
            self._baseline_epochs, self._baseline_s = [], 0.0
            return
        d = self._segment_history()
        for j in range(self.n):
            if self._relearn[j] == 2:
                continue                      # its maintenance baseline is learned anew anyway
            before = _recent(d[:, j]) if d is not None else np.zeros(len(EVIDENCE_KINDS))
            self._relearn_before[j] = np.nan_to_num(before)
            self._relearn[j] = 1
            self._relearn_why[j] = f'a model change ({reason})'
        self._relearn_epochs = []
        self._relearn_from[:] = 0
        self._dirty = bool(self._history_t)

    def _start_maintenance(self, j, action, t_op_h):
        self._segment_start[j] = t_op_h
        self._estimates[j] = (_EMPTY, '', math.nan, self.operating_hours)
        self._episodes.pop(self.joint_names[j], None)
        if self.baseline is None:
            self._baseline_epochs, self._baseline_s = [], 0.0
            return
        self._relearn[j] = 2
        self._relearn_from[j] = len(self._relearn_epochs)
        self._relearn_why[j] = f'maintenance ({action})'
        self._dirty = bool(self._history_t)

    def _segment_history(self):
        """Return the degradation history (N, n, 3), NaN before each joint's segment."""
        if not self._history_d:
            return None
        d = np.stack(self._history_d)
        d[np.asarray(self._history_t)[:, None] < self._segment_start[None, :]] = np.nan
        return d

    def _relearn_step(self, evidence, write):
        """Add one epoch to the re-learning joints; finish those that have enough."""
        if not self._relearn.any():
            return
        self._relearn_epochs.append(evidence)
        count = len(self._relearn_epochs)
        done = [j for j in np.flatnonzero(self._relearn)
                if count - self._relearn_from[j] >= self.config.rebaseline_epochs]
        if not done:
            return
        kinds = ('friction_nm', 'residual_rms_nm', 'torque_margin')
        reasons = []
        for j in done:
            learned = Baseline.from_epochs(self._relearn_epochs[self._relearn_from[j]:])
            reasons.append(self._relearn_why[j])
            if self._relearn[j] == 2:
                for name in kinds:
                    value = getattr(learned, name)[j]
                    if np.isfinite(value):
                        getattr(self._reference, name)[j] = value
                self._shift[j] = 0.0
            else:
                # the residual RMS of another model is another noise floor: its failure RMS
                # is residual_failure_factor x the new model's (as it was the commissioned
                # model's); friction evidence moves by a shift
                r_new = learned.residual_rms_nm[j]
                if np.isfinite(r_new):
                    self._reference.residual_rms_nm[j] = r_new
                    self._limit_ref.residual_rms_nm[j] = r_new
                level = degradation(learned, self._reference, self.limits, self._limit_ref)[j]
                self._shift[j, :2] = np.where(np.isfinite(level[:2]),
                                              self._relearn_before[j, :2] - level[:2], 0.0)
            self._relearn[j] = 0
        if not self._relearn.any():
            self._relearn_epochs = []
            self._relearn_from[:] = 0
        names = [self.joint_names[j] for j in done]
        body = {'joints': names, 'reasons': reasons, 'operating_s': self.operating_s,
                't_op_h': self.operating_hours, 'shift': self._shift[done].tolist(),
                'reference': {k: getattr(self._reference, k)[done].tolist() for k in kinds}}
        self._dirty = True
        if write:
            self._append_log(dict(body, kind='rebaseline'))
            self._ledger.append(dict(body, kind='health_rebaseline',
                                     operating_hours=self.operating_hours,
                                     message=f'new health baseline of {", ".join(names)} after '
                                             f'{"; ".join(sorted(set(reasons)))}'))

    # ------------------------------------------------------------------ the 1 kHz path
    def update(self, t, q, qd, effort, effort_residual):
        """
        Take one robot sample (cheap: most calls are one comparison).

        Parameters
        ----------
        t : float, s
            Robot stamp of the sample.
        q : (n,) rad or None
            Joint positions, model order (not used by the current evidence; accepted so that
            the call stays the same when position-dependent evidence is added).
        qd : (n,) rad/s
            Measured joint velocities, model order.
        effort : (n,) N·m
            Measured joint efforts (the torque margin takes what the drive sustained,
            :func:`sustained_effort`); NaN where a joint's sample is no evidence.
        effort_residual : (n,) N·m
            The twin's effort residual (measured minus predicted); NaN where it has none.

        """
        if not t >= self._next_keep:
            if self._next_keep - t < 1.0:
                return
            if t != t:                       # a NaN stamp: counted, never stored
                self.rejected += 1
                return
            self._process_buffer(everything=True)    # the stamps jumped back: a new stream
            self._last_t = None
            self._effort_tail = (np.empty(0), np.empty((0, self.n)))
        k = self._k
        self._buf_t[k] = t
        self._buf_qd[k] = qd
        self._buf_effort[k] = effort
        self._buf_res[k] = effort_residual
        self._next_keep = t + self.config.sample_period_s
        self._k = k + 1
        if self._k == self._cap:
            self.overflows += 1
            self._process_buffer()

    # ------------------------------------------------------------------ processing
    def _note_stamp(self, stamp):
        if math.isfinite(stamp):
            if not math.isfinite(self._first_stamp):
                self._first_stamp = stamp
            self._last_stamp = stamp

    def _process_buffer(self, everything=False):
        """
        Feed the buffered samples of every completed block to the epoch statistics.

        Blocks are aligned to the stamps (``floor(t / block_s)``) and only whole blocks are
        processed (the last, open block stays buffered) unless ``everything`` is set or the
        buffer holds nothing else: the result does not depend on when reports are called.
        """
        k = self._k
        if k == 0:
            return
        c = self.config
        block = np.floor(self._buf_t[:k] / c.block_s)
        done = k if everything else int(np.searchsorted(block, block[-1]))
        if done == 0:
            if k < self._cap:
                return
            done = k
        self._process(done, block[:done])
        rest = k - done
        for buf in (self._buf_t, self._buf_qd, self._buf_effort, self._buf_res):
            buf[:rest] = buf[done:k]
        self._k = rest

    def _process(self, k, block):
        c = self.config
        t = self._buf_t[:k]
        dt = np.diff(t, prepend=t[0] if self._last_t is None else self._last_t)
        dt[(dt <= 0.0) | (dt > c.max_gap_s)] = 0.0
        qd, res = self._buf_qd[:k], self._buf_res[:k]
        effort = self._sustained(t, self._buf_effort[:k])
        moving_dt = dt * (np.abs(qd) > c.moving_speed_rad_s).any(axis=1)
        edges = np.flatnonzero(np.diff(block)) + 1
        for lo, hi in zip(np.r_[0, edges], np.r_[edges, k]):
            self._acc.add_block(qd[lo:hi], effort[lo:hi], res[lo:hi], self.effort_limit,
                                moving_dt[lo:hi], t[hi - 1])
            moved = float(moving_dt[lo:hi].sum())
            self.operating_s += moved
            self.operating_hours += moved * c.time_scale / 3600.0
            if self._acc.operating_s >= c.health_interval_s:
                self._close_epoch()
        self._last_t = float(t[-1])
        self._note_stamp(float(t[-1]))

    def _sustained(self, t, effort):
        """
        Return :func:`sustained_effort` of samples ``t`` (k,), ``effort`` (k, n) being processed.

        The window reaches back over the samples processed before (the last
        :data:`SUSTAINED_EFFORT_S` of them are kept), so the result does not depend on how the
        stream was cut into buffers.
        """
        tail_t, tail_effort = self._effort_tail
        t = np.concatenate([tail_t, t])
        effort = np.concatenate([tail_effort, effort])
        out = sustained_effort(t, effort, SUSTAINED_EFFORT_S)[len(tail_t):]
        keep = t >= t[-1] - SUSTAINED_EFFORT_S
        self._effort_tail = (t[keep], effort[keep])
        return out

    def _close_epoch(self):
        c = self.config
        acc = self._acc
        evidence = solve_epoch(acc, self.model_friction_nm, c.reference_speed_rad_s,
                               min_samples=c.min_samples,
                               min_sign_fraction=c.min_sign_fraction)
        epoch_s, stamp = acc.operating_s, acc.t_end
        acc.reset()
        self.last_evidence = evidence
        # the evidence is an average over the epoch: it belongs to the epoch's middle
        t_mid = self.operating_hours - 0.5 * epoch_s * c.time_scale / 3600.0
        record = {'kind': 'health', 'operating_s': self.operating_s,
                  't_op_h': self.operating_hours, 't_mid_h': t_mid, 'stamp': stamp,
                  'epoch_s': epoch_s, 'evidence': evidence.as_dict()}
        if self.baseline is None:
            self._baseline_epochs.append((t_mid, evidence))
            self._baseline_s += epoch_s
            self._append_log(dict(record, phase='baseline'))
            if self._baseline_s >= c.baseline_duration_s:
                self._set_baseline()
            return
        d = self._degradation(evidence)
        self._history_t.append(t_mid)
        self._history_d.append(d)
        self._history_end = self.operating_hours
        self._append_log(dict(record, phase='rebaseline' if self._relearn.any() else
                              'monitoring'))
        self._relearn_step(evidence, write=True)
        self._dirty = True

    def _degradation(self, evidence):
        """Return the degradation (n, 3) of one epoch: re-learned baselines, shifts, unjudged."""
        d = degradation(evidence, self._reference, self.limits, self._limit_ref) + self._shift
        d[self._relearn == 1, :2] = np.nan      # friction, residual: the new model's unknown
        d[self._relearn == 2, :] = np.nan       # after a maintenance: all kinds
        return d

    def _seed_history(self):
        """Start the degradation history with the baseline's own epochs (about 0)."""
        self._reference = _copy_baseline(self.baseline)
        self._limit_ref = _copy_baseline(self.baseline)
        for t_mid, evidence in self._baseline_epochs:
            self._history_t.append(t_mid)
            self._history_d.append(self._degradation(evidence))
        self._history_end = self.operating_hours
        self._dirty = bool(self._history_t)

    def _set_baseline(self):
        self.baseline = Baseline.from_epochs([e for _, e in self._baseline_epochs])
        self._history_start_s = self.operating_s
        self._seed_history()
        body = {'kind': 'baseline', 'operating_s': self.operating_s,
                't_op_h': self.operating_hours, 'baseline': self.baseline.as_dict()}
        self._append_log(body)
        missing = [j for j, f in zip(self.joint_names, self.baseline.friction_nm)
                   if not math.isfinite(f)]
        entry = {'kind': 'health_baseline', 'operating_hours': self.operating_hours,
                 'friction_limit_nm': self.limits.friction_limit(self.baseline).tolist(),
                 **self.baseline.as_dict()}
        if missing:
            entry['not_identified'] = missing
        self._ledger.append(entry)

    def _snapshot(self):
        """Freeze the history for the next estimates; every joint is to be re-estimated."""
        c = self.config
        t = np.asarray(self._history_t)
        d = self._segment_history()            # (N, n, 3); before a maintenance: not fitted
        t_now = self._history_end
        keep = t >= t_now - c.trend_window_hours
        recent = [_recent(d[:, j]) for j in range(self.n)]
        t, d = _bin(t[keep], d[keep], c.max_trend_points)
        self._snap = (t, _despike(d), t_now, recent)
        # joints the last snapshot did not reach go first (none starves)
        self._pending = self._pending + [j for j in range(self.n) if j not in self._pending]

    def _estimate_joint(self, j):
        """Re-estimate the RUL of joint ``j`` for every kind; keep the binding one."""
        t, d, t_now, recent = self._snap
        per_kind = [estimate_rul(t, d[:, j, i], t_now, self._trend)
                    for i in range(len(EVIDENCE_KINDS))]
        self._estimates[j] = _binding(per_kind, recent[j], self._trend.min_degradation,
                                      1.0 - self.config.warn_below_health) + (t_now,)

    # ------------------------------------------------------------------ reporting
    def _hours_per_day(self):
        if self.config.operating_hours_per_day > 0.0:
            return self.config.operating_hours_per_day
        span_days = (self._last_stamp - self._first_stamp) / 86400.0
        if not span_days >= 1.0:
            return 24.0              # less than a day seen: assume the busiest robot
        return min(max(self.operating_hours / span_days, 1e-3), 24.0)

    def _window_hours(self, now, hours_per_day):
        c = self.config
        windows = []
        if c.next_maintenance_hours > 0.0:
            windows.append(c.next_maintenance_hours - self.operating_hours)
        if c.next_maintenance_date:
            days = (_parse_date(c.next_maintenance_date) - now) / 86400.0
            windows.append(days * hours_per_day)
        return min(windows) if windows else math.nan

    def _joint_state(self, j):
        """Return (estimate, kind, health) of joint ``j`` with the phase's reason."""
        c = self.config
        if self.baseline is None:
            reason = ('collecting evidence: health baseline, '
                      f'{_progress(self._baseline_s, c.baseline_duration_s)} of motion')
            return RulEstimate(reason=reason), '', math.nan
        estimate, kind, health, estimated_at = self._estimates[j]
        if estimate.has_number:      # the estimate counts from when it was made
            gone = self.operating_hours - estimated_at
            estimate = replace(estimate, rul_hours=max(estimate.rul_hours - gone, 0.0),
                               lower_hours=max(estimate.lower_hours - gone, 0.0),
                               upper_hours=max(estimate.upper_hours - gone, 0.0))
        if self._relearn[j] == 2:
            learned = len(self._relearn_epochs) - self._relearn_from[j]
            return RulEstimate(reason=f'collecting evidence: new baseline after '
                                      f'{self._relearn_why[j]}, {learned} of '
                                      f'{c.rebaseline_epochs} epochs'), '', math.nan
        done = self.operating_s - self._history_start_s
        if done < c.min_history_s or not self._history_t:
            estimate = RulEstimate(
                reason=f'collecting evidence: {_progress(done, c.min_history_s)} of motion',
                degradation=estimate.degradation, probability=estimate.probability)
            kind = ''
        return estimate, kind, health

    def report(self, now, anomalies=None, applied_speed_scale=1.0):
        """
        Process the samples taken since the last call and return the RUL state.

        Parameters
        ----------
        now : float
            Wall-clock time, s since the epoch (UTC): due dates and the maintenance date.
        anomalies : dict, optional
            ``{joint: (level, fault_type)}`` from the anomaly detector, for advice on joints
            without a wear forecast. The action follows the fault type latched for the
            anomaly episode (the first one named, until another has been named more than
            twice as often), not the label of the moment.
        applied_speed_scale : float
            The derating the governor applies now, in (0, 1] (see
            :func:`twin_anomaly.maintenance.derating`).

        Returns
        -------
        RulReport

        """
        if self._next_keep != self._data_mark:      # samples came since the last report
            self._data_mark, self._data_wall = self._next_keep, now
        self._process_buffer()
        if self._dirty:
            self._snapshot()
            self._dirty = False
        for _ in range(min(len(self._pending), self.config.estimates_per_report)):
            self._estimate_joint(self._pending.pop(0))
        hours_per_day = self._hours_per_day()
        window = self._window_hours(now, hours_per_day)
        joints, worst = [], Derating()
        latched = self._latch(anomalies or {})
        stale = ''
        if now - self._data_wall > self.config.stale_after_s:
            since = datetime.datetime.fromtimestamp(self._data_wall, datetime.timezone.utc)
            stale = f' (no robot data since {since.strftime("%Y-%m-%dT%H:%M:%SZ")})'
        last_sample = self._last_sample()
        for j, name in enumerate(self.joint_names):
            estimate, kind, health = self._joint_state(j)
            advice = advise(name, estimate, kind, health, self._policy, now, hours_per_day,
                            latched.get(name))
            if stale:
                advice = replace(advice, message=advice.message + stale)
            joints.append(replace(self._joint_rul(name, j, estimate, kind, health, advice),
                                  last_sample=last_sample))
            der = derating(name, estimate, kind, window, self._policy, applied_speed_scale)
            if der.speed_scale < worst.speed_scale:
                worst = der
        self._note_changes(joints, worst)
        level = max((jr.level for jr in joints), key=_LEVEL_RANK.get)
        ledger, self._ledger = self._ledger, []
        return RulReport(joints, worst, [json_safe(e) for e in ledger],
                         'baseline' if self.baseline is None else 'monitoring',
                         self.operating_hours, level, self._robot_message(joints, level))

    def _latch(self, anomalies):
        """Return ``{joint: (level, fault_type)}`` with the fault type latched per episode."""
        out = {}
        for name, (level, fault) in anomalies.items():
            if level != 'ERROR':
                continue
            episode = self._episodes.setdefault(name, {'counts': {}, 'latched': fault})
            counts = episode['counts']
            counts[fault] = counts.get(fault, 0) + 1
            if counts[fault] > 2 * counts.get(episode['latched'], 0):
                episode['latched'] = fault
            out[name] = (level, episode['latched'])
        for name in [n for n in self._episodes if n not in out]:
            del self._episodes[name]                   # the episode is over
        return out

    def _joint_rul(self, name, j, estimate, kind, health, advice: Advice):
        evidence = dict(advice.evidence, operating_hours=self.operating_hours)
        if self.last_evidence is not None:
            evidence['friction_nm'] = float(self.last_evidence.friction_nm[j])
            evidence['residual_rms_nm'] = float(self.last_evidence.residual_rms_nm[j])
            evidence['torque_margin'] = float(self.last_evidence.torque_margin[j])
        if self.baseline is not None:
            evidence['friction_limit_nm'] = float(
                self.limits.friction_limit(self.baseline)[j])
        return JointRul(name, estimate.rul_hours, estimate.lower_hours, estimate.upper_hours,
                        health, advice.action, advice.due_by, advice.level, advice.message,
                        kind, evidence)

    def _note_changes(self, joints, worst):
        """
        Ledger entries for changed advice and derating (not for every new estimate).

        Advice is its level, action and whether it has a number (not the due date, which
        slides with the estimate). A raised level is logged at once; a lowered level or
        another action once it has held ``_DEBOUNCE_REPORTS`` reports, so an action that
        flickers is one entry, not one per flicker.
        """
        for jr in joints:
            key = (jr.level, jr.recommended_action, math.isfinite(jr.rul_hours))
            before = self._published.get(jr.joint)
            if before == key:
                self._candidate.pop(jr.joint, None)
                continue
            held = self._candidate.get(jr.joint, (None, 0))
            held = (key, held[1] + 1 if held[0] == key else 1)
            self._candidate[jr.joint] = held
            if before is not None and _LEVEL_RANK[jr.level] <= _LEVEL_RANK[before[0]] and \
                    held[1] < _DEBOUNCE_REPORTS:
                continue            # not raised: logged once it has held a few reports
            self._candidate.pop(jr.joint, None)
            self._published[jr.joint] = key
            if self.baseline is not None:
                self._ledger.append({
                    'kind': 'rul_advice', 'joint': jr.joint, 'level': jr.level,
                    'action': jr.recommended_action, 'due_by': jr.due_by,
                    'rul_hours': jr.rul_hours, 'rul_lower_hours': jr.rul_lower_hours,
                    'rul_upper_hours': jr.rul_upper_hours,
                    'health_index': jr.health_index, 'evidence': jr.evidence,
                    'message': jr.message})
        if abs(worst.speed_scale - self._derating_scale) > 0.01:
            self._derating_scale = worst.speed_scale
            self._ledger.append({'kind': 'rul_derating', 'speed_scale': worst.speed_scale,
                                 'joint': worst.joint, 'reaches_window': worst.reaches_window,
                                 'rul_lower_hours': worst.rul_lower_hours,
                                 'window_hours': worst.window_hours, 'reason': worst.reason})

    def _robot_message(self, joints, level):
        if self.baseline is None:
            return joints[0].message if joints else 'no joints'
        bad = [jr for jr in joints if jr.level == level and level != 'OK']
        if bad:
            more = f' (+{len(bad) - 1} more)' if len(bad) > 1 else ''
            return bad[0].message + more
        worn = [jr for jr in joints if math.isfinite(jr.rul_hours)]
        if worn:
            first = min(worn, key=lambda jr: jr.rul_hours)
            return f'{first.joint}: {first.message}'
        return NO_DEGRADATION if all(
            jr.message == NO_DEGRADATION for jr in joints) else joints[0].message


def _copy_baseline(baseline):
    return Baseline(baseline.friction_nm.copy(), baseline.residual_rms_nm.copy(),
                    baseline.torque_margin.copy(), baseline.epochs)


def _bin(t, d, max_points):
    """Average a long history into ``max_points`` bins of consecutive epochs (NaN-aware)."""
    if t.size <= max_points:
        return t, d
    groups = np.array_split(np.arange(t.size), max_points)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)        # all-NaN bins stay NaN
        return (np.array([t[g].mean() for g in groups]),
                np.stack([np.nanmean(d[g], axis=0) for g in groups]))


def _recent(d):
    """
    Return the degradation now per kind from the raw history ``d`` (N, 3).

    The median of the last three epochs with evidence, counting missing ones as commissioned
    (0); NaN for a kind without any. One odd epoch is not a verdict.
    """
    out = np.full(d.shape[1], np.nan)
    for i in range(d.shape[1]):
        valid = d[np.isfinite(d[:, i]), i][-3:]
        if valid.size:
            out[i] = np.median(np.concatenate([np.zeros(3 - valid.size), valid]))
    return out


def _despike(d):
    """
    Return the history ``d`` (N,) or (N, k) through a running median of three, in [-1, 2].

    One odd epoch (a collision, a step of friction in the middle of an epoch) must not bend
    the trend, nor, as the newest epoch, declare a failure. Inside the history the median is
    centred; at either end it is taken over the end value and the two next to it moved along a
    robust slope (the median of the last five differences), so a linear trend passes unchanged
    right up to the newest epoch. Values far beyond the failure limit carry no more
    information than the limit itself.
    """
    d = np.asarray(d, dtype=float)
    if len(d) < 3:
        return np.clip(d, -1.0, 2.0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)            # all-NaN windows stay NaN
        out = d.copy()
        out[1:-1] = np.nanmedian(np.stack([d[:-2], d[1:-1], d[2:]]), axis=0)
        slope = np.nanmedian(np.diff(d[-4:], axis=0), axis=0)      # per epoch, at the end
        out[-1] = np.nanmedian(np.stack([d[-1], d[-2] + slope, d[-3] + 2.0 * slope]), axis=0)
        slope = np.nanmedian(np.diff(d[:4], axis=0), axis=0)       # at the start
        out[0] = np.nanmedian(np.stack([d[0], d[1] - slope, d[2] - 2.0 * slope]), axis=0)
    return np.clip(out, -1.0, 2.0)


def _number(value):
    """Return a float from a log value (None, i.e. a non-finite number, is NaN)."""
    return math.nan if value is None else float(value)


def _binding(per_kind, recent, min_degradation=0.0, named_above=0.5):
    """
    Return (estimate, kind, health) of one joint from its per-kind estimates.

    ``recent`` (3,) is the median degradation of the recent epochs (:func:`_recent`): the
    evidence now. A joint has failed only when that is at the limit (>= 1) for some kind: then
    the estimate is that kind's with an RUL of 0 h (interval 0 h) and health 0. A trend that
    extrapolates a fresh step beyond the limit while the recent epochs are not there may give
    an RUL of 0 h, but not "failed". The binding estimate is the one with the shortest RUL.
    The health index comes from the trend's level of each kind that has an RUL (and is not
    beyond the limit unconfirmed), else from ``recent``; without any RUL the estimate and the
    kind named are those of the most degraded kind when its trend is "no trend" and its recent
    degradation at least ``min_degradation`` (the reason then quotes that same degradation), or
    when the trend does not see it yet but the recent degradation is at least ``named_above``;
    else the first reason that is not "no degradation seen" or "no trend" (a trend whose recent
    evidence is back under ``min_degradation``, e.g. after a repair, reads as no degradation).
    """
    recent = np.asarray(recent, dtype=float)
    with np.errstate(invalid='ignore'):
        failed = recent >= 1.0
    trusted = [e.has_number and (e.degradation < 1.0 or failed[i])
               for i, e in enumerate(per_kind)]
    levels = np.array([e.degradation if ok else d
                       for e, d, ok in zip(per_kind, recent, trusted)], dtype=float)
    if not np.isfinite(levels).any():
        return per_kind[0], '', math.nan
    if failed.any():
        i = int(np.nanargmax(np.where(failed, recent, np.nan)))
        return replace(per_kind[i], rul_hours=0.0, lower_hours=0.0, upper_hours=0.0,
                       reason='', degradation=float(recent[i])), EVIDENCE_KINDS[i], 0.0
    worst = int(np.nanargmax(levels))
    health = float(np.clip(1.0 - levels[worst], 0.0, 1.0))
    numbered = [(e.rul_hours, i) for i, e in enumerate(per_kind) if e.has_number]
    if numbered:
        i = min(numbered)[1]
        return per_kind[i], EVIDENCE_KINDS[i], health
    estimate, level = per_kind[worst], levels[worst]
    if level >= min_degradation and estimate.reason.startswith(STABLE):
        return replace(estimate, reason=f'{STABLE}: degradation {level:.2f} is not growing'), \
            EVIDENCE_KINDS[worst], health
    if level >= max(named_above, min_degradation) and estimate.reason == NO_DEGRADATION:
        return replace(estimate, reason=f'degradation {level:.2f}, no trend yet'), \
            EVIDENCE_KINDS[worst], health
    others = [e for e in per_kind if e.reason != NO_DEGRADATION and
              not e.reason.startswith(STABLE)]
    return (others[0] if others else replace(per_kind[0], reason=NO_DEGRADATION)), '', health
