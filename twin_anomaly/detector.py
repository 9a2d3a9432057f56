"""
Commissioned residual detector: anomaly score, alarm, faulty joint, fault type (ROS-free).

Data flow
---------
:meth:`ResidualDetector.update` takes one robot sample (1 kHz is typical) of residuals, i.e.
measured minus predicted, in the model's joint order. It only adds the sample into per-channel
block sums (a few vectorized operations). Every ``block_s`` of stamp time (default 20 ms) the
block is closed and the statistics below are advanced once. :meth:`ResidualDetector.report`
builds the full :class:`DetectorState` on demand (publish it at e.g. 50 Hz).

Channels are ``position (n,) rad or m``, ``velocity (n,) rad/s or m/s``, ``effort (n,) N·m or
N`` and, optionally, ``wrench (6,)`` = ``[fx, fy, fz] N, [tx, ty, tz] N·m`` in the
``ft_sensor`` frame. A NaN (or inf) value means "not available" and is skipped.

Phase 1, commissioning (the first ``commissioning_duration_s`` of sample stamps)
    Block means and within-block variances are recorded (bounded memory, see
    :class:`~twin_anomaly.residual_stats.StrideBuffer`). Level OK, message
    ``'commissioning'``, never an alarm. At the end, per channel: ``center`` = median of block
    means, ``scale`` = MAD-based standard deviation of block means (floored by
    ``min_scale_<kind>``), and the commissioning data are replayed through the monitoring
    statistics to learn one threshold per channel and detector: ``max(floor, threshold_margin
    * q-quantile)`` of the statistic over commissioning, ``q = threshold_quantile``. Nothing
    is hard-coded per joint; channels with too little data are left unmonitored.
Phase 2, monitoring
    Per channel, with ``z = (block mean - center) / scale``, three detectors:

    - ``level``: ``|EWMA(z)|`` (time constant ``smoothing_s``), abrupt changes;
    - ``drift``: two-sided CUSUM of ``z / long_run_factor`` with allowance ``cusum_k``, slow
      incipient drifts;
    - ``noise``: ``|EWMA(log(within-block variance / commissioning variance))|``, noise
      increase or a frozen signal.

    A channel's ratio is the largest of statistic / threshold over the detectors; a joint's
    score is the largest ratio over its position, velocity and effort channels, and the wrench
    group's over its six axes. So every score is dimensionless and its threshold is 1.0. A
    group raises an alarm when its score stays >= 1 for ``persistence_s`` (``since`` = stamp of
    the block where that run began) and clears it when the score stays below ``clear_ratio``
    for ``clear_s`` (hysteresis). The robot score is the largest group score; the faulty
    joint is the alarmed group with the largest score.

False-alarm design
------------------
Every threshold is ``max(floor, threshold_margin * q-quantile)`` of its statistic replayed over
the commissioning data. With ``q = 0.999`` and 1500 blocks (30 s) the quantile is about the
commissioning extreme; the default margin 2.5 puts the threshold at 2.5 times that extreme, and
an alarm also needs the score to stay >= 1 for ``persistence_s`` (4 blocks by default).

- level: for white block noise ``EWMA(z)`` has a standard deviation of 0.44 (default
  smoothing), so the floor ``min_threshold = 3`` alone is 6.7 of them and the learned value
  (~3.7) 8.4; a Gaussian exceeds that with probability ~1e-16 per block.
- drift: the CUSUM input is ``z`` divided by an upper (90 %) confidence bound of its long-run
  standard deviation (batch means), so autocorrelated residuals (model mismatch is smooth in
  time) wander no more than white noise. For white unit-variance input with ``k = 1`` the
  floor ``h = 10`` gives Siegmund's in-control run length ~2.5e9 blocks (1.6 years) per
  channel and side.
- noise: floor ``log 2`` (variance doubled or halved); the learned value is usually larger.

Measured (``benchmarks/bench_detector.py``, white noise + 50 ms autocorrelated mismatch on the
effort): the largest robot score over 60 s monitored runs is 0.5-0.6, i.e. a factor > 1.6
below the alarm before persistence counts. This holds for residuals of the *same distribution*
as commissioning: commission on representative nominal motion (a trajectory with other speeds
can change the mismatch), and never on faulty data (the quantiles, unlike the robust center
and scale, are inflated by a fault during commissioning).

Fault type (heuristic, version 1)
---------------------------------
:class:`HeuristicClassifier` labels an alarmed joint from the residual pattern with simple
rules (see its docstring); it is a first guess, not a trained model. A learned classifier
(e.g. the ONNX model of ``robot-twin anomaly train``) replaces it through the
:class:`FaultClassifier` protocol: ``classify(features) -> (fault_type, confidence)`` with
:class:`FaultFeatures` (also available as a fixed-layout vector, :data:`FEATURE_NAMES`).
"""
from dataclasses import dataclass, field, fields
import datetime
import math
from pathlib import Path
from typing import Optional, Protocol, runtime_checkable

import numpy as np
from twin_anomaly.residual_stats import alpha_from_time_constant, Cusum, EwmaStats, \
    long_run_std, robust_center_scale, StrideBuffer, WindowedRms
from twin_sim.yaml_numbers import load_yaml
import yaml

#: Residual kinds of a joint, in channel-block order.
JOINT_KINDS = ('position', 'velocity', 'effort')
#: Wrench residual axes, ``[fx, fy, fz]`` N and ``[tx, ty, tz]`` N·m in the ft_sensor frame.
WRENCH_AXES = ('fx', 'fy', 'fz', 'tx', 'ty', 'tz')
#: The detectors run on every channel.
DETECTORS = ('level', 'drift', 'noise')
#: Fault types the heuristic classifier can return (``'none'`` = no alarm). These are this
#: detector's *signatures* (what its residuals look like), not the contract's fault type names
#: (``/twin/anomaly``, :data:`twin_anomaly.classifier.FAULT_TYPES`); see
#: :data:`CONTRACT_FAULT_TYPE`.
FAULT_TYPES = ('none', 'effort_offset', 'friction_like', 'sensor_position', 'sensor_velocity',
               'sensor_noise', 'wrench', 'unknown')
#: The contract's fault type name of each signature of :data:`FAULT_TYPES`, where the signature
#: points to one; ``'unknown'`` where several faults give it:
#:
#: - ``friction_like`` (the effort residual follows the sign of the velocity) ->
#:   ``friction_increase``;
#: - ``sensor_noise`` (a channel's variance changed) -> ``sensor_noise`` (a variance that fell,
#:   e.g. of a stuck sensor, gives it too);
#: - ``effort_offset`` -> ``unknown``: an effort sensor bias, a payload, a collision force,
#:   saturation, or friction before the joint has reversed all look alike;
#: - ``sensor_position``, ``sensor_velocity`` -> ``unknown``: a bias, a stuck sensor or a jump;
#: - ``wrench`` -> ``unknown``: a payload, a contact force or a force-torque sensor fault;
#: - ``none`` -> ``none``, ``unknown`` -> ``unknown``.
CONTRACT_FAULT_TYPE = {'none': 'none', 'friction_like': 'friction_increase',
                       'sensor_noise': 'sensor_noise', 'effort_offset': 'unknown',
                       'sensor_position': 'unknown', 'sensor_velocity': 'unknown',
                       'wrench': 'unknown', 'unknown': 'unknown'}


def contract_fault_type(signature):
    """Return the contract's fault type name of a :data:`FAULT_TYPES` signature (else unknown)."""
    return CONTRACT_FAULT_TYPE.get(signature, 'unknown')


#: Report levels, as in diagnostic_msgs/DiagnosticStatus.
LEVELS = ('OK', 'WARN', 'ERROR')

THRESHOLDS_VERSION = 1
THRESHOLDS_FILE_KEY = 'robot_twin_anomaly_thresholds'
"""Top-level key of a ResidualDetector thresholds file."""
#: Settings that change the statistics themselves: thresholds learned with other values are
#: meaningless, so loading them is refused.
_DYNAMIC_SETTINGS = ('block_s', 'smoothing_s', 'cusum_k', 'threshold_quantile')
_NOISE_SMOOTHING_S = 0.2      # time constant of the noise detector's EWMA, s
_NOISE_LOG_CLAMP = 5.0        # |log variance ratio| is clamped to this per block
_MIN_NOISE_THRESHOLD = math.log(2.0)   # floor: variance doubled / halved
_CUSUM_CAP = 1.5              # CUSUM clamped at 1.5 x its threshold: bounded clearing time
_PATTERN_TAU_S = 5.0          # time constant of the effort-vs-velocity-sign regression, s
_MIN_SIGN_VARIANCE = 0.2      # velocity sign variance needed to tell friction from offset
_MIN_BLOCKS = 10              # blocks with data a channel needs during commissioning
_LONG_RUN_CONFIDENCE = 0.9    # the CUSUM input scale is this upper bound of the long-run std


class ThresholdsError(ValueError):
    """A thresholds file is unreadable, malformed, or belongs to another robot or setting."""


def _param(default, description):
    return field(default=default, metadata={'description': description})


@dataclass(frozen=True)
class DetectorConfig:
    """
    Validated settings of :class:`ResidualDetector` (each field has a ``description``).

    ``dataclasses.fields(DetectorConfig)`` lists them with ``metadata['description']``, which
    a node can turn into parameter descriptors. A bad value raises ``ValueError`` naming the
    field.
    """

    commissioning_duration_s: float = _param(
        30.0, 'stamp time of nominal data used to learn thresholds, s (> 0)')
    threshold_quantile: float = _param(
        0.999, 'quantile of each statistic over commissioning that a threshold is built on, '
        'in (0, 1)')
    threshold_margin: float = _param(
        2.5, 'threshold = margin x quantile (>= 1)')
    min_threshold: float = _param(
        3.0, 'floor of the level threshold, in learned standard deviations of the block mean '
        '(> 0)')
    min_cusum_threshold: float = _param(
        10.0, 'floor of the drift (CUSUM) threshold, in learned standard deviations x blocks '
        '(> 0)')
    persistence_s: float = _param(
        0.06, 'a score must stay >= its threshold this long to raise an alarm, s (>= 0)')
    clear_s: float = _param(
        0.5, 'a score must stay below clear_ratio x threshold this long to clear, s (>= 0)')
    clear_ratio: float = _param(
        0.5, 'hysteresis: an alarm clears below this fraction of the threshold, in (0, 1)')
    warn_ratio: float = _param(
        0.8, 'level WARN (without alarm) from this fraction of the threshold, in (0, 1]')
    block_s: float = _param(
        0.02, 'statistics advance once per block of this stamp time, s (> 0)')
    smoothing_s: float = _param(
        0.05, 'time constant of the level detector EWMA, s (>= 0)')
    cusum_k: float = _param(
        1.0, 'CUSUM allowance in learned standard deviations of the block mean (>= 0)')
    velocity_deadband: float = _param(
        0.01, 'joint speed giving a full velocity sign for the friction pattern, rad/s or m/s '
        '(> 0)')
    rms_window_s: float = _param(
        1.0, 'window of the reported residual RMS, s (> 0)')
    stale_s: float = _param(
        0.25, 'a channel without data this long is unavailable and scores 0, s (> 0)')
    min_scale_position: float = _param(
        1e-6, 'floor of a learned position residual scale, rad or m (> 0)')
    min_scale_velocity: float = _param(
        1e-5, 'floor of a learned velocity residual scale, rad/s or m/s (> 0)')
    min_scale_effort: float = _param(
        1e-4, 'floor of a learned effort residual scale, N·m or N (> 0)')
    min_scale_force: float = _param(
        1e-3, 'floor of a learned wrench force residual scale, N (> 0)')
    min_scale_torque: float = _param(
        1e-4, 'floor of a learned wrench torque residual scale, N·m (> 0)')
    commissioning_capacity: int = _param(
        16384, 'blocks kept in memory during commissioning; beyond it they are decimated '
        '(even integer >= 64)')

    def __post_init__(self):
        open_unit = ('threshold_quantile', 'clear_ratio')
        for f in fields(self):
            name, value = f.name, getattr(self, f.name)
            if name == 'commissioning_capacity':
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
                        or value < 64 or value % 2:
                    raise ValueError(f'commissioning_capacity must be an even integer >= 64, '
                                     f'got {value!r}')
                object.__setattr__(self, name, int(value))   # plain int: YAML, ROS params
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating,
                                                                 np.integer)):
                raise ValueError(f'{name} must be a number, got {value!r}')
            if not math.isfinite(value):
                raise ValueError(f'{name} must be finite, got {value!r}')
            value = float(value)                 # numpy scalars would not serialize
            object.__setattr__(self, name, value)
            if name in open_unit:
                ok, want = 0.0 < value < 1.0, 'in (0, 1)'
            elif name == 'warn_ratio':
                ok, want = 0.0 < value <= 1.0, 'in (0, 1]'
            elif name == 'threshold_margin':
                ok = value >= 1.0
                want = '>= 1 (a margin below 1 puts the threshold inside the nominal range)'
            elif name in ('persistence_s', 'clear_s', 'smoothing_s', 'cusum_k'):
                ok, want = value >= 0.0, '>= 0'
            else:
                ok, want = value > 0.0, '> 0'
            if not ok:
                raise ValueError(f'{name} must be {want}, got {value!r}')
        if self.block_s > self.commissioning_duration_s / _MIN_BLOCKS:
            raise ValueError(f'block_s={self.block_s} is too long for commissioning_duration_s='
                             f'{self.commissioning_duration_s}: commissioning needs at least '
                             f'{_MIN_BLOCKS} blocks')


@dataclass(frozen=True)
class JointStatus:
    """
    Anomaly status of one joint (or of the wrench group, ``name == 'wrench'``).

    Attributes
    ----------
    name : str
        Joint name, or ``'wrench'``.
    score : float
        Dimensionless: largest statistic / threshold over the group's channels and detectors.
    threshold : float
        Alarm threshold of ``score``: always 1.0.
    alarm : bool
        True while the alarm is raised (after persistence, until hysteresis clears it).
    fault_type : str
        One of :data:`FAULT_TYPES` (``'none'`` without alarm).
    confidence : float
        Classifier confidence in [0, 1] (0 without alarm).
    since : float
        Stamp (s) at which the alarm's exceedance began; NaN without alarm.
    channel : str
        Dominant channel: ``'position'``, ``'velocity'``, ``'effort'`` or a wrench axis
        (``''`` if nothing is monitored).
    detector : str
        Dominant detector, one of :data:`DETECTORS` (``''`` if nothing is monitored).

    """

    name: str
    score: float
    threshold: float
    alarm: bool
    fault_type: str
    confidence: float
    since: float
    channel: str
    detector: str


@dataclass(frozen=True)
class DetectorState:
    """
    Full detector status, built by :meth:`ResidualDetector.report`.

    Attributes
    ----------
    stamp : float
        Stamp of the last accepted sample, s (NaN before the first).
    phase : str
        ``'commissioning'`` or ``'monitoring'``.
    commissioning_progress : float
        Fraction of the commissioning duration seen, in [0, 1].
    level : str
        ``'OK'``, ``'WARN'`` (score >= warn_ratio without alarm, or nothing monitorable) or
        ``'ERROR'`` (an alarm is raised).
    message : str
        ``'commissioning'``, ``'nominal'``, ``'elevated residual on <joint>'``,
        ``'anomaly on <joint>: <fault_type>'`` (``' (+N more)'`` when several groups alarm),
        ``'anomaly on wrench residual'`` or ``'no residual channel could be commissioned'``.
    score : float
        Robot score: the largest group score (dimensionless).
    threshold : float
        Always 1.0.
    faulty_joint : str or None
        Alarmed joint with the largest score; None without a joint alarm.
    fault_type : str
        Fault type of the faulty joint (``'wrench'`` for a wrench-only alarm, else ``'none'``).
    since : float
        ``since`` of the faulty group, s (NaN without alarm).
    joints : tuple of JointStatus
        One per joint, in model joint order.
    wrench : JointStatus or None
        The wrench group; None when no wrench channel is monitored.
    unavailable : tuple of str
        Monitored channels without data for ``stale_s`` (``'<joint>.velocity'``,
        ``'wrench.fx'``...) or unmonitored for lack of commissioning data.
    dropped_samples : int
        Samples refused because their stamp went backwards, or lost in the twin's own input
        queue (it fell behind the stream: not the robot's dropout).
    confidence : float
        Confidence of ``fault_type`` in [0, 1] (0 without an alarm).
    groups : tuple of JointStatus
        Further robot-level groups beyond the joints and the wrench (e.g. ``'stream'``:
        missing samples and latency of the robot's stream).

    """

    stamp: float
    phase: str
    commissioning_progress: float
    level: str
    message: str
    score: float
    threshold: float
    faulty_joint: Optional[str]
    fault_type: str
    since: float
    joints: tuple
    wrench: Optional[JointStatus]
    unavailable: tuple
    dropped_samples: int
    confidence: float = 0.0
    groups: tuple = ()


#: Layout of :meth:`FaultFeatures.as_vector` (for learned classifiers).
FEATURE_NAMES = tuple(
    [f'level_z.{k}' for k in JOINT_KINDS]
    + [f'ratio.{d}.{k}' for d in DETECTORS for k in JOINT_KINDS]
    + [f'noise_log_ratio.{k}' for k in JOINT_KINDS]
    + [f'rms.{k}' for k in JOINT_KINDS]
    + ['effort_offset_z', 'effort_sign_gain_z', 'velocity_sign_variance']
    + [f'wrench_z.{a}' for a in WRENCH_AXES])


@dataclass(frozen=True)
class FaultFeatures:
    """
    Residual pattern of one joint, the input of a :class:`FaultClassifier`.

    Attributes
    ----------
    joint : str
        Joint name.
    level_z : (3,) float array
        Smoothed normalized residual ``EWMA(z)`` of [position, velocity, effort], in learned
        standard deviations (signed).
    ratios : (3, 3) float array
        statistic / threshold, rows = :data:`DETECTORS`, columns = :data:`JOINT_KINDS`.
    noise_log_ratio : (3,) float array
        Smoothed log(within-block variance / commissioning variance) per kind.
    rms : (3,) float array
        Residual RMS over ``rms_window_s``: rad (m), rad/s (m/s), N·m (N).
    effort_offset_z, effort_sign_gain_z : float
        Fit ``z_effort ~ offset + gain * sign(velocity)`` since the current exceedance began
        (time constant 5 s), in learned standard deviations; the gain is NaN when the joint
        has not moved both ways enough.
    velocity_sign_variance : float
        Variance of the (soft) velocity sign in that window, in [0, 1].
    wrench_z : (6,) float array
        Smoothed normalized wrench residual (NaN when not monitored).

    """

    joint: str
    level_z: np.ndarray
    ratios: np.ndarray
    noise_log_ratio: np.ndarray
    rms: np.ndarray
    effort_offset_z: float
    effort_sign_gain_z: float
    velocity_sign_variance: float
    wrench_z: np.ndarray

    def as_vector(self):
        """Return the features as a ``(len(FEATURE_NAMES),)`` float32 array (NaN kept)."""
        return np.concatenate([
            self.level_z, self.ratios.ravel(), self.noise_log_ratio, self.rms,
            [self.effort_offset_z, self.effort_sign_gain_z, self.velocity_sign_variance],
            self.wrench_z]).astype(np.float32)


@runtime_checkable
class FaultClassifier(Protocol):
    """Anything that labels an alarmed joint from its :class:`FaultFeatures`."""

    def classify(self, features):
        """Return ``(fault_type, confidence)``: a str and a float in [0, 1]."""


class HeuristicClassifier:
    """
    First, hand-written fault-type rules (a heuristic, not a trained model).

    Rules, on the dominant (channel, detector) pair of the joint's ratios:

    1. dominant detector ``noise`` -> ``'sensor_noise'``;
    2. the effort channel over its threshold (ratio >= 1), or dominant -> rule 3: a drive-side
       fault shows on the joint's own effort residual, and the one-step position/velocity
       residuals it also moves (through forward dynamics) may score higher without being
       its cause;
    3. effort: if the joint moved both ways since the exceedance began
       (velocity sign variance >= 0.2), fit ``z = offset + gain * sign(v)``:
       ``'friction_like'`` when ``|gain| > |offset|``, else ``'effort_offset'``; if it did not,
       the two cannot be told apart and the answer is ``'effort_offset'`` at confidence 0.5;
    4. otherwise dominant channel position -> ``'sensor_position'``; velocity ->
       ``'sensor_velocity'``;
    5. nothing finite -> ``'unknown'``.

    Confidence is the dominant share (dominant ratio / sum of the channel ratios, or
    ``max(|offset|, |gain|) / (|offset| + |gain|)`` for rule 3).
    """

    def classify(self, features):
        """Return ``(fault_type, confidence)`` for one joint's :class:`FaultFeatures`."""
        ratios = np.nan_to_num(np.asarray(features.ratios, dtype=float), nan=0.0)
        if not np.all(np.isfinite(ratios)) or ratios.max() <= 0.0:
            return 'unknown', 0.0
        det, ch = np.unravel_index(int(np.argmax(ratios)), ratios.shape)
        per_channel = ratios.max(axis=0)
        share = float(per_channel[ch] / per_channel.sum())
        if DETECTORS[det] == 'noise':
            return 'sensor_noise', share
        effort = JOINT_KINDS.index('effort')
        if per_channel[effort] < 1.0 and JOINT_KINDS[ch] == 'position':
            return 'sensor_position', share
        if per_channel[effort] < 1.0 and JOINT_KINDS[ch] == 'velocity':
            return 'sensor_velocity', share
        offset = features.effort_offset_z
        gain = features.effort_sign_gain_z
        if features.velocity_sign_variance >= _MIN_SIGN_VARIANCE and math.isfinite(gain) \
                and math.isfinite(offset) and abs(offset) + abs(gain) > 0.0:
            conf = max(abs(offset), abs(gain)) / (abs(offset) + abs(gain))
            return ('friction_like' if abs(gain) > abs(offset) else 'effort_offset'), conf
        return 'effort_offset', 0.5


@dataclass(frozen=True)
class LearnedThresholds:
    """
    What commissioning learned, per channel (C = 3 n + 6: position, velocity, effort, wrench).

    Attributes
    ----------
    channels : tuple of str
        ``'<joint>.<kind>'`` and ``'wrench.<axis>'``, in channel order.
    monitored : (C,) bool array
        Channels with enough commissioning data; the others are ignored.
    center : (C,) float array
        Median residual block mean, channel unit (NaN if unmonitored).
    scale : (C,) float array
        Robust standard deviation of the block mean (floored), channel unit.
    long_run_factor : (C,) float array
        Long-run standard deviation of the standardized block mean (>= 1; 1 for white
        residuals, more for autocorrelated ones); the CUSUM input is divided by it.
    level, drift, noise : (C,) float arrays
        Thresholds of the three detectors: in ``scale`` units, in ``scale`` x blocks, and in
        log variance ratio (inf if unmonitored).
    level_quantile, drift_quantile, noise_quantile : (C,) float arrays
        The commissioning quantiles the thresholds were built from.
    noise_variance : (C,) float array
        Median within-block variance, channel unit squared.

    """

    channels: tuple
    monitored: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    long_run_factor: np.ndarray
    level: np.ndarray
    drift: np.ndarray
    noise: np.ndarray
    level_quantile: np.ndarray
    drift_quantile: np.ndarray
    noise_quantile: np.ndarray
    noise_variance: np.ndarray

    @property
    def level_physical(self):
        """(C,) float array: level threshold in the channel's unit (``level * scale``)."""
        return self.level * self.scale


class ResidualDetector:
    """
    Commissioned anomaly detector on twin residuals (see the module docstring).

    Parameters
    ----------
    joint_names : sequence of str
        Model joint order (``RobotModel.joint_names``); n >= 1 unique names.
    classifier : FaultClassifier, optional
        Labels alarmed joints; default :class:`HeuristicClassifier`.
    **config
        Fields of :class:`DetectorConfig` (e.g. ``commissioning_duration_s=30.0``,
        ``threshold_quantile=0.999``, ``threshold_margin=2.5``, ``min_threshold=3.0``,
        ``persistence_s=0.06``). A bad value raises ``ValueError`` naming it.

    Notes
    -----
    Not thread-safe: call :meth:`update` and :meth:`report` from one thread (or one
    mutually exclusive callback group).

    """

    def __init__(self, joint_names, *, classifier=None, **config):
        names = list(joint_names) if not isinstance(joint_names, str) else None
        if not names or not all(isinstance(j, str) and j for j in names):
            raise ValueError(f'joint_names must be a non-empty sequence of non-empty strings, '
                             f'got {joint_names!r}')
        dup = sorted({j for j in names if names.count(j) > 1})
        if dup:
            raise ValueError(f'joint_names has duplicates: {dup}')
        if classifier is None:
            classifier = HeuristicClassifier()
        if not isinstance(classifier, FaultClassifier):
            raise ValueError(f'classifier must have a classify(features) method, got '
                             f'{classifier!r}')
        self.config = DetectorConfig(**config)
        self.classifier = classifier
        self.joint_names = tuple(names)
        n = len(names)
        self._n = n
        self._c = 3 * n + 6
        self.channel_names = tuple(f'{j}.{k}' for k in JOINT_KINDS for j in names) + tuple(
            f'wrench.{a}' for a in WRENCH_AXES)
        floors = ([self.config.min_scale_position] * n + [self.config.min_scale_velocity] * n
                  + [self.config.min_scale_effort] * n + [self.config.min_scale_force] * 3
                  + [self.config.min_scale_torque] * 3)
        self._min_scale = np.asarray(floors, dtype=float)
        cfg = self.config
        self._rms_blocks = max(1, int(round(cfg.rms_window_s / cfg.block_s)))
        # per-sample accumulators: C residual channels + n measured velocities
        width = self._c + n
        self._x = np.full(width, np.nan)
        self._valid = np.zeros(width, dtype=bool)
        self._sq = np.zeros(width)
        self._sum = np.zeros(width)
        self._sumsq = np.zeros(width)
        self._cnt = np.zeros(width)
        self._wrench_nan = True
        self._vel_nan = True
        self._learned = None
        self._meta = {}
        self.reset()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def from_thresholds(cls, path, joint_names, *, classifier=None, **config):
        """
        Create a detector that starts monitoring with thresholds saved by a commissioning.

        The settings the saved statistics depend on (``block_s``, ``smoothing_s``,
        ``cusum_k``, ``threshold_quantile``) are taken from the file unless given; margins and
        floors come from ``config`` (defaults otherwise) and are applied to the saved
        quantiles.

        Parameters
        ----------
        path : str or Path
            File written by :meth:`save_thresholds`.
        joint_names : sequence of str
            The model's joint order; must name the same joints as the file.
        classifier : FaultClassifier, optional
            Fault-type classifier, as for the constructor.
        **config
            :class:`DetectorConfig` fields that override the file's settings and the defaults.

        Raises
        ------
        ThresholdsError
            File unreadable or malformed, other joints, or conflicting settings.

        """
        doc = _read_thresholds_file(path)
        settings = doc['settings']
        for key in _DYNAMIC_SETTINGS:
            config.setdefault(key, settings[key])
        config.setdefault('commissioning_duration_s',
                          doc['commissioning']['duration_s'])
        det = cls(joint_names, classifier=classifier, **config)
        det._apply_thresholds_doc(doc, path)
        return det

    def reset(self):
        """
        Forget the stream (time base, block sums, statistics, alarms); keep learned thresholds.

        Call it after a clock jump backwards (e.g. sim time restarted). If commissioning is not
        finished yet, it starts over.
        """
        cfg = self.config
        c, n = self._c, self._n
        for arr in (self._sum, self._sumsq, self._cnt):
            arr.fill(0.0)
        self._t0 = None
        self._block_end = -math.inf
        self._last_t = -math.inf
        self._dropped = 0
        self._buffer = StrideBuffer(2 * c + n, cfg.commissioning_capacity) \
            if self._learned is None else None
        self._level = EwmaStats(c, alpha_from_time_constant(cfg.block_s, cfg.smoothing_s))
        self._cusum = Cusum(c, cfg.cusum_k)
        self._noise = EwmaStats(c, alpha_from_time_constant(cfg.block_s, _NOISE_SMOOTHING_S))
        self._pattern = EwmaStats(4 * n, alpha_from_time_constant(cfg.block_s, _PATTERN_TAU_S))
        self._rms = WindowedRms(c, self._rms_blocks)
        if self._learned is not None:
            self._cusum.cap = _CUSUM_CAP * self._learned.drift
        self._ratios = np.zeros((3, c))
        self._last_data_t = np.full(c, -math.inf)
        g = n + 1
        self._score = np.zeros(g)
        self._alarm = np.zeros(g, dtype=bool)
        self._exceed_start = np.full(g, np.nan)
        self._below_start = np.full(g, np.nan)
        self._since = np.full(g, np.nan)
        self._any_alarm = False

    def recommission(self):
        """Drop the learned thresholds and start a new commissioning with the next sample."""
        self._learned = None
        self._meta = {}
        self.reset()

    @property
    def commissioned(self):
        """bool: True once thresholds are learned or loaded (phase ``'monitoring'``)."""
        return self._learned is not None

    @property
    def phase(self):
        """str: ``'commissioning'`` or ``'monitoring'``."""
        return 'monitoring' if self._learned is not None else 'commissioning'

    @property
    def commissioning_summary(self):
        """
        Return a dict: ``start_stamp``, ``end_stamp`` (s), ``blocks`` seen, decimation ``stride``.

        Empty while commissioning; as saved in the file after :meth:`load_thresholds`.
        """
        return dict(self._meta)

    @property
    def commissioning_progress(self):
        """float: fraction of the commissioning duration seen so far, in [0, 1]."""
        if self._learned is not None:
            return 1.0
        if self._t0 is None:
            return 0.0
        return min(1.0, (self._last_t - self._t0) / self.config.commissioning_duration_s)

    # ------------------------------------------------------------------ per sample

    def update(self, t, pos_res, vel_res, eff_res, wrench_res=None, velocity=None):
        """
        Add one sample; cheap (block sums only; statistics advance once per ``block_s``).

        Parameters
        ----------
        t : float
            Sample stamp, s. Stamps must not go backwards: an older sample is dropped and
            counted (``DetectorState.dropped_samples``); see :meth:`reset`.
        pos_res : (n,) array_like or None
            Position residual, rad (prismatic: m), measured minus predicted.
        vel_res : (n,) array_like or None
            Velocity residual, rad/s (m/s).
        eff_res : (n,) array_like or None
            Effort residual, N·m (N).
        wrench_res : (6,) array_like, optional
            Wrench residual ``[fx, fy, fz, tx, ty, tz]``, N and N·m, ft_sensor frame.
        velocity : (n,) array_like, optional
            Measured joint velocity, rad/s (m/s); only used for the fault-type pattern
            (friction-like residuals follow the sign of the velocity).

        NaN (or inf) in any entry, or None for a whole array, means "not available" and is
        skipped.

        Returns
        -------
        bool
            True while any alarm is raised.

        Raises
        ------
        ValueError
            ``t`` not finite, or an array of the wrong length or not numeric.

        """
        t = float(t)
        if not self._last_t <= t < math.inf:
            if not math.isfinite(t):
                raise ValueError(f'update: t must be a finite stamp in seconds, got {t!r}')
            self._dropped += 1
            return self._any_alarm
        n = self._n
        x = self._x
        try:
            for lo, arr in ((0, pos_res), (n, vel_res), (2 * n, eff_res)):
                if arr is None:
                    x[lo:lo + n] = np.nan
                elif len(arr) != n:
                    raise ValueError
                else:
                    x[lo:lo + n] = arr
            c = self._c
            if wrench_res is None:
                if not self._wrench_nan:
                    x[3 * n:c] = np.nan
                    self._wrench_nan = True
            else:
                if len(wrench_res) != 6:
                    raise ValueError
                x[3 * n:c] = wrench_res
                self._wrench_nan = False
            if velocity is None:
                if not self._vel_nan:
                    x[c:] = np.nan
                    self._vel_nan = True
            else:
                if len(velocity) != n:
                    raise ValueError
                x[c:] = velocity
                self._vel_nan = False
        except (TypeError, ValueError):
            x.fill(np.nan)                        # nothing half-written survives
            self._wrench_nan = self._vel_nan = True
            raise self._input_error(pos_res=pos_res, vel_res=vel_res, eff_res=eff_res,
                                    wrench_res=wrench_res, velocity=velocity) from None
        valid = self._valid
        np.isfinite(x, out=valid)
        np.add(self._sum, x, out=self._sum, where=valid)
        np.multiply(x, x, out=self._sq)
        np.add(self._sumsq, self._sq, out=self._sumsq, where=valid)
        np.add(self._cnt, valid, out=self._cnt)
        self._last_t = t
        if t >= self._block_end:
            self._end_block(t)
        return self._any_alarm

    def _input_error(self, **arrays):
        sizes = {'pos_res': self._n, 'vel_res': self._n, 'eff_res': self._n, 'wrench_res': 6,
                 'velocity': self._n}
        for name, value in arrays.items():
            if value is None:
                continue
            want = sizes[name]
            try:
                arr = np.asarray(value, dtype=float)
            except (TypeError, ValueError):
                return ValueError(f'update: {name} must be numeric, got {value!r}')
            if arr.shape != (want,):
                order = list(WRENCH_AXES) if name == 'wrench_res' else list(self.joint_names)
                return ValueError(f'update: {name} must have shape ({want},) in the order '
                                  f'{order}, got shape {arr.shape}')
        return ValueError('update: malformed residual arrays')

    # ------------------------------------------------------------------ per block

    def _end_block(self, t):
        cfg = self.config
        if self._t0 is None:                      # first sample: open the first block
            self._t0 = t
            self._block_end = t + cfg.block_s
            return
        c = self._c
        cnt = self._cnt
        with np.errstate(invalid='ignore', divide='ignore'):
            mean = self._sum / cnt
            var = self._sumsq[:c] / cnt[:c] - mean[:c] ** 2
        var[cnt[:c] < 2] = np.nan
        np.maximum(var, 0.0, out=var)
        msq = self._sumsq[:c] / np.maximum(cnt[:c], 1.0)
        msq[cnt[:c] == 0] = np.nan
        self._rms.update_mean_square(msq)
        self._last_data_t[cnt[:c] > 0] = t
        self._sum.fill(0.0)
        self._sumsq.fill(0.0)
        cnt.fill(0.0)
        self._block_end += cfg.block_s
        if t >= self._block_end:                  # gap in the data: restart the block grid
            self._block_end = t + cfg.block_s
        if self._learned is None:
            self._buffer.append(np.concatenate([mean[:c], var, mean[c:]]))
            if t - self._t0 >= cfg.commissioning_duration_s:
                self._finish_commissioning(t)
            return
        self._monitor_block(t, mean[:c], var, mean[c:])

    def _advance(self, lt, z, log_var_ratio, level, cusum, noise):
        """Advance the three detectors by one block; return their ratios (3, C)."""
        level.update(z)
        cusum.update(z / lt.long_run_factor)
        noise.update(log_var_ratio)
        ratios = self._ratios
        np.divide(np.abs(level.mean), lt.level, out=ratios[0])
        np.divide(cusum.statistic, lt.drift, out=ratios[1])
        np.divide(np.abs(noise.mean), lt.noise, out=ratios[2])
        return ratios

    def _log_variance_ratio(self, var, noise_variance):
        """Return ``log(var / noise_variance)`` (both floored by min_scale**2), clamped."""
        floor = self._min_scale ** 2
        u = np.log((var + floor) / (noise_variance + floor))
        return np.clip(u, -_NOISE_LOG_CLAMP, _NOISE_LOG_CLAMP, out=u)

    def _monitor_block(self, t, mean, var, vel_mean):
        cfg = self.config
        n = self._n
        lt = self._learned
        z = (mean - lt.center) / lt.scale
        u = self._log_variance_ratio(var, lt.noise_variance)
        ratios = self._advance(lt, z, u, self._level, self._cusum, self._noise)
        ratios[:, t - self._last_data_t > cfg.stale_s] = 0.0     # no data: cannot judge
        ch = ratios.max(axis=0)
        score = self._score
        np.maximum(np.maximum(ch[:n], ch[n:2 * n]), ch[2 * n:3 * n], out=score[:n])
        score[n] = ch[3 * n:].max()
        # persistence (raise) and hysteresis (clear), per group
        alarm = self._alarm
        above = score >= 1.0
        started = above & np.isnan(self._exceed_start)
        self._exceed_start[started] = t
        self._exceed_start[~above] = np.nan
        with np.errstate(invalid='ignore'):
            raise_ = above & ~alarm & (t - self._exceed_start >= cfg.persistence_s)
        # effort residual vs velocity sign since the exceedance began (fault-type pattern)
        restart = started[:n] & ~alarm[:n]
        if restart.any():
            self._pattern.reset(np.tile(restart, 4))
        sign = np.clip(vel_mean / cfg.velocity_deadband, -1.0, 1.0)
        r = z[2 * n:3 * n].copy()
        bad = ~(np.isfinite(sign) & np.isfinite(r))
        sign[bad] = np.nan
        r[bad] = np.nan
        self._pattern.update(np.concatenate([sign, sign * sign, r, r * sign]))
        below = score < cfg.clear_ratio
        self._below_start[below & np.isnan(self._below_start)] = t
        self._below_start[~below] = np.nan
        with np.errstate(invalid='ignore'):
            clear = alarm & below & (t - self._below_start >= cfg.clear_s)
        if raise_.any():
            self._since[raise_] = self._exceed_start[raise_]
            alarm |= raise_
        if clear.any():
            alarm &= ~clear
            self._since[clear] = np.nan
        self._any_alarm = bool(alarm.any())

    # ------------------------------------------------------------------ commissioning

    def _finish_commissioning(self, t):
        cfg = self.config
        c = self._c
        rows = self._buffer.values()
        means, variances = rows[:, :c], rows[:, c:2 * c]
        stride = self._buffer.stride
        have = np.isfinite(means).sum(axis=0)
        monitored = have >= max(_MIN_BLOCKS, 0.1 * len(rows))
        center, scale = robust_center_scale(means)
        scale = np.fmax(scale, self._min_scale)
        noise_var = robust_center_scale(variances)[0]
        center[~monitored] = np.nan
        noise_var[~monitored | ~np.isfinite(noise_var)] = 0.0
        # replay commissioning through the monitoring statistics (decimated rows: the EWMA
        # factors are adjusted to the row spacing)
        dt = cfg.block_s * stride
        level = EwmaStats(c, alpha_from_time_constant(dt, cfg.smoothing_s))
        cusum = Cusum(c, cfg.cusum_k)
        noise = EwmaStats(c, alpha_from_time_constant(dt, _NOISE_SMOOTHING_S))
        z = (means - center) / scale
        # the CUSUM runs on z / long-run std of z, so autocorrelated residuals (model mismatch
        # is smooth in time) do not make it wander further than white noise would
        lrf = np.fmax(1.0, np.nan_to_num(
            long_run_std(z, upper_confidence=_LONG_RUN_CONFIDENCE), nan=1.0))
        u = self._log_variance_ratio(variances, noise_var)
        trace = np.stack([np.abs(level.run(z)), cusum.run(z / lrf), np.abs(noise.run(u))],
                         axis=1)
        trace[:, :, ~monitored] = np.nan
        quant = np.full((3, c), np.nan)
        if monitored.any():
            quant[:, monitored] = np.nanquantile(trace[:, :, monitored],
                                                 cfg.threshold_quantile, axis=0)
        self._meta = {'start_stamp': float(self._t0), 'end_stamp': float(t),
                      'blocks': int(self._buffer.appended), 'stride': int(stride)}
        self._set_learned(monitored, center, scale, lrf, noise_var, quant)
        if stride == 1:                           # continue from the replayed state
            self._level, self._noise = level, noise
            cusum.cap = _CUSUM_CAP * self._learned.drift
            self._cusum = cusum
        self._buffer = None

    def _set_learned(self, monitored, center, scale, long_run_factor, noise_var, quant):
        cfg = self.config
        q = np.where(np.isfinite(quant), quant, 0.0)
        inf = np.where(monitored, 1.0, np.inf)
        level = np.fmax(cfg.min_threshold, cfg.threshold_margin * q[0]) * inf
        drift = np.fmax(cfg.min_cusum_threshold, cfg.threshold_margin * q[1]) * inf
        noise = np.fmax(_MIN_NOISE_THRESHOLD, cfg.threshold_margin * q[2]) * inf
        self._learned = LearnedThresholds(
            channels=self.channel_names, monitored=monitored.copy(), center=center,
            scale=scale, long_run_factor=long_run_factor, level=level, drift=drift,
            noise=noise, level_quantile=quant[0], drift_quantile=quant[1],
            noise_quantile=quant[2], noise_variance=noise_var)
        self._cusum.cap = _CUSUM_CAP * drift

    def thresholds(self):
        """Return the :class:`LearnedThresholds` (None while commissioning)."""
        return self._learned

    # ------------------------------------------------------------------ report

    def _group_status(self, g, idx, labels, is_wrench):
        ratios = self._ratios[:, idx]
        score = float(self._score[g])
        alarm = bool(self._alarm[g])
        if np.any(ratios > 0.0):
            det, ch = np.unravel_index(int(np.argmax(ratios)), ratios.shape)
            channel, detector = labels[ch], DETECTORS[det]
        else:
            channel = detector = ''
        fault, conf = 'none', 0.0
        if alarm:
            if is_wrench:
                fault, conf = 'wrench', 1.0
            else:
                fault, conf = self.classifier.classify(self.features(self.joint_names[g]))
                if not isinstance(fault, str) or not 0.0 <= float(conf) <= 1.0:
                    raise ValueError(f'classifier {type(self.classifier).__name__} returned '
                                     f'({fault!r}, {conf!r}); expected (fault_type str, '
                                     f'confidence in [0, 1])')
                conf = float(conf)
        return JointStatus(name='wrench' if is_wrench else self.joint_names[g], score=score,
                           threshold=1.0, alarm=alarm, fault_type=fault, confidence=conf,
                           since=float(self._since[g]), channel=channel, detector=detector)

    def report(self):
        """
        Build the full status (cost ~0.1 ms; call it at the publishing rate).

        Returns
        -------
        DetectorState

        """
        n = self._n
        cfg = self.config
        stamp = self._last_t if self._t0 is not None else math.nan
        if self._learned is None:
            joints = tuple(JointStatus(j, 0.0, 1.0, False, 'none', 0.0, math.nan, '', '')
                           for j in self.joint_names)
            return DetectorState(stamp, 'commissioning', self.commissioning_progress, 'OK',
                                 'commissioning', 0.0, 1.0, None, 'none', math.nan, joints,
                                 None, (), self._dropped)
        lt = self._learned
        joints = tuple(self._group_status(j, [j, n + j, 2 * n + j], JOINT_KINDS, False)
                       for j in range(n))
        wrench = None
        if lt.monitored[3 * n:].any():
            wrench = self._group_status(n, list(range(3 * n, self._c)), WRENCH_AXES, True)
        with np.errstate(invalid='ignore'):           # -inf - -inf before the first sample
            stale = (self._last_t - self._last_data_t > cfg.stale_s) | ~lt.monitored
        if not lt.monitored[3 * n:].any():
            stale[3 * n:] = False                 # no wrench at all: not worth listing
        unavailable = tuple(np.asarray(self.channel_names)[stale].tolist())
        groups = joints + ((wrench,) if wrench is not None else ())
        score = float(max(s.score for s in groups))
        # Localization: an effort residual comes from inverse dynamics at the measured state,
        # so a drive-side fault (friction, collision, saturation) shows on its own joint only,
        # while the one-step position/velocity residuals spread it over every joint the mass
        # matrix couples. So when some alarmed joint's effort channel is over its threshold,
        # the joint with the largest effort ratio is the faulty one; otherwise the top score.
        effort_ratio = self._ratios[:, 2 * n:3 * n].max(axis=0)
        effort_led = any(effort_ratio[j] >= 1.0 for j, s in enumerate(joints) if s.alarm)

        def rank(s):
            if effort_led and s is not wrench:
                return (1, float(effort_ratio[self.joint_names.index(s.name)]))
            return (0, s.score) if effort_led else (1, s.score)
        alarmed = sorted((s for s in groups if s.alarm), key=rank, reverse=True)
        faulty, fault, since = None, 'none', math.nan
        if not lt.monitored.any():
            level, message = 'WARN', 'no residual channel could be commissioned'
        elif alarmed:
            top = alarmed[0]
            level, since = 'ERROR', top.since
            if top is wrench:
                fault = 'wrench'
                message = 'anomaly on wrench residual'
            else:
                faulty, fault = top.name, top.fault_type
                message = f'anomaly on {top.name}: {top.fault_type}'
            if len(alarmed) > 1:
                message += f' (+{len(alarmed) - 1} more)'
        elif score >= cfg.warn_ratio:
            top = max(groups, key=lambda s: s.score)
            level = 'WARN'
            message = 'elevated residual on ' + ('wrench residual' if top is wrench else top.name)
        else:
            level, message = 'OK', 'nominal'
        return DetectorState(stamp, 'monitoring', 1.0, level, message, score, 1.0, faulty,
                             fault, since, joints, wrench, unavailable, self._dropped)

    def features(self, joint):
        """
        Return the :class:`FaultFeatures` of ``joint`` (a name) for a classifier.

        Raises
        ------
        KeyError
            Unknown joint name.
        RuntimeError
            Still commissioning.

        """
        if joint not in self.joint_names:
            raise KeyError(f'unknown joint {joint!r}; joints are {list(self.joint_names)}')
        if self._learned is None:
            raise RuntimeError('features: the detector is still commissioning')
        n = self._n
        j = self.joint_names.index(joint)
        idx = [j, n + j, 2 * n + j]
        mon = self._learned.monitored
        level_z = np.where(mon[idx], self._level.mean[idx], np.nan)
        m = self._pattern.mean
        ms, mss, mr, mrs = m[j], m[n + j], m[2 * n + j], m[3 * n + j]
        have = self._pattern.weight[j] > 0.0
        var_s = max(0.0, mss - ms * ms) if have else 0.0
        if have and var_s >= _MIN_SIGN_VARIANCE:
            gain = (mrs - mr * ms) / var_s
            offset = mr - gain * ms
        else:
            gain, offset = math.nan, (mr if have else math.nan)
        return FaultFeatures(
            joint=joint, level_z=level_z, ratios=self._ratios[:, idx].copy(),
            noise_log_ratio=np.where(mon[idx], self._noise.mean[idx], np.nan),
            rms=self._rms.rms()[idx], effort_offset_z=float(offset),
            effort_sign_gain_z=float(gain), velocity_sign_variance=float(var_s),
            wrench_z=np.where(mon[3 * n:], self._level.mean[3 * n:], np.nan))

    # ------------------------------------------------------------------ persistence

    def save_thresholds(self, path, *, urdf=None):
        """
        Write the learned thresholds to a YAML file.

        Parameters
        ----------
        path : str or Path
            Output file (parent directories are created).
        urdf : str, optional
            The robot model the thresholds belong to (recorded, informational).

        Raises
        ------
        RuntimeError
            Still commissioning (nothing learned yet).

        """
        lt = self._learned
        if lt is None:
            raise RuntimeError('save_thresholds: the detector is still commissioning; nothing '
                               'learned yet (see commissioning_progress)')
        cfg = self.config

        def channel(i):
            if not lt.monitored[i]:
                return None
            return {'center': float(lt.center[i]), 'scale': float(lt.scale[i]),
                    'long_run_factor': float(lt.long_run_factor[i]),
                    'noise_variance': float(lt.noise_variance[i]),
                    'level_quantile': float(lt.level_quantile[i]),
                    'drift_quantile': float(lt.drift_quantile[i]),
                    'noise_quantile': float(lt.noise_quantile[i]),
                    'level_threshold': float(lt.level[i]),
                    'drift_threshold': float(lt.drift[i]),
                    'noise_threshold': float(lt.noise[i])}

        n = self._n
        doc = {THRESHOLDS_FILE_KEY: {
            'version': THRESHOLDS_VERSION,
            'saved_at': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
            'urdf': None if urdf is None else str(urdf),
            'joints': list(self.joint_names),
            'commissioning': {'duration_s': cfg.commissioning_duration_s, **self._meta},
            'settings': {k: getattr(cfg, k) for k in
                         _DYNAMIC_SETTINGS + ('threshold_margin', 'min_threshold',
                                              'min_cusum_threshold')},
            'channels': {j: {k: channel(ki * n + ji) for ki, k in enumerate(JOINT_KINDS)}
                         for ji, j in enumerate(self.joint_names)},
            'wrench': {a: channel(3 * n + ai) for ai, a in enumerate(WRENCH_AXES)},
        }}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('# robot_twin anomaly thresholds, learned by commissioning\n'
                        + yaml.safe_dump(doc, sort_keys=False))

    def load_thresholds(self, path):
        """
        Load thresholds saved by :meth:`save_thresholds` and start monitoring.

        The file must name the same joints (any order) and have been learned with the same
        ``block_s``, ``smoothing_s``, ``cusum_k`` and ``threshold_quantile``. Margins and floors
        of this detector's config are applied to the saved quantiles. Stream state and alarms
        are reset.

        Raises
        ------
        ThresholdsError
            Unreadable or malformed file, other joints, or conflicting settings.

        """
        self._apply_thresholds_doc(_read_thresholds_file(path), path)

    def _apply_thresholds_doc(self, doc, path):
        cfg = self.config
        joints = doc['joints']
        if sorted(joints) != sorted(self.joint_names):
            missing = sorted(set(self.joint_names) - set(joints))
            extra = sorted(set(joints) - set(self.joint_names))
            raise ThresholdsError(
                f'{path}: thresholds were learned for joints {joints}, this detector has '
                f'{list(self.joint_names)} (missing in file: {missing}, not in model: {extra}); '
                f're-commission for this robot or load the file that belongs to it')
        for key in _DYNAMIC_SETTINGS:
            saved = doc['settings'][key]
            if not math.isclose(saved, getattr(cfg, key), rel_tol=1e-9, abs_tol=1e-12):
                raise ThresholdsError(
                    f'{path}: thresholds were learned with {key}={saved}, this detector has '
                    f'{key}={getattr(cfg, key)}; set {key}={saved} or re-commission')
        c, n = self._c, self._n
        arrays = {k: np.full(c, np.nan) for k in (
            'center', 'scale', 'long_run_factor', 'noise_variance', 'level_quantile',
            'drift_quantile',
            'noise_quantile')}
        monitored = np.zeros(c, dtype=bool)
        entries = [(ki * n + ji, doc['channels'][j][k], f'channels.{j}.{k}')
                   for ji, j in enumerate(self.joint_names) for ki, k in enumerate(JOINT_KINDS)]
        entries += [(3 * n + ai, doc['wrench'][a], f'wrench.{a}')
                    for ai, a in enumerate(WRENCH_AXES)]
        for i, entry, where in entries:
            if entry is None:
                continue
            for key, arr in arrays.items():
                arr[i] = _number(entry, key, f'{path}: {where}')
            for key, low in (('scale', 0.0), ('long_run_factor', 0.0), ('noise_variance', -1.0)):
                if not arrays[key][i] > low:
                    raise ThresholdsError(f'{path}: {where}.{key} must be > {low:g}, got '
                                          f'{arrays[key][i]}')
            monitored[i] = True
        self.reset()
        arrays['noise_variance'][~monitored] = 0.0
        arrays['scale'][~monitored] = self._min_scale[~monitored]
        arrays['long_run_factor'][~monitored] = 1.0
        quant = np.stack([arrays['level_quantile'], arrays['drift_quantile'],
                          arrays['noise_quantile']])
        self._meta = dict(doc['commissioning'])
        self._meta.pop('duration_s', None)
        self._set_learned(monitored, arrays['center'], arrays['scale'],
                          arrays['long_run_factor'], arrays['noise_variance'], quant)
        self._buffer = None


def _number(mapping, key, where):
    if not isinstance(mapping, dict) or key not in mapping:
        raise ThresholdsError(f'{where}: missing field {key!r}')
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(value):
        raise ThresholdsError(f'{where}.{key} must be a finite number, got {value!r}')
    return float(value)


def _read_thresholds_file(path):
    """Read and structurally check a thresholds file; return its inner mapping."""
    try:
        raw = load_yaml(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:      # missing, or not a text file
        raise ThresholdsError(f'{path}: cannot read thresholds file ({exc})') from None
    except yaml.YAMLError as exc:
        raise ThresholdsError(f'{path}: not valid YAML ({exc})') from None
    if not isinstance(raw, dict) or not isinstance(raw.get(THRESHOLDS_FILE_KEY), dict):
        raise ThresholdsError(f'{path}: not a thresholds file (no top-level '
                              f'{THRESHOLDS_FILE_KEY!r} mapping)')
    doc = raw[THRESHOLDS_FILE_KEY]
    if doc.get('version') != THRESHOLDS_VERSION:
        raise ThresholdsError(f'{path}: version {doc.get("version")!r} is not supported '
                              f'(expected {THRESHOLDS_VERSION}); re-commission')
    joints = doc.get('joints')
    if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
        raise ThresholdsError(f'{path}: joints must be a non-empty list of joint names')
    for key in ('settings', 'commissioning', 'channels', 'wrench'):
        if not isinstance(doc.get(key), dict):
            raise ThresholdsError(f'{path}: missing mapping {key!r}')
    for key in _DYNAMIC_SETTINGS:
        _number(doc['settings'], key, f'{path}: settings')
    _number(doc['commissioning'], 'duration_s', f'{path}: commissioning')
    for j in joints:
        entry = doc['channels'].get(j)
        if not isinstance(entry, dict) or any(k not in entry for k in JOINT_KINDS):
            raise ThresholdsError(f'{path}: channels.{j} must map {list(JOINT_KINDS)} to '
                                  f'thresholds (or null)')
    if any(a not in doc['wrench'] for a in WRENCH_AXES):
        raise ThresholdsError(f'{path}: wrench must map {list(WRENCH_AXES)} to thresholds '
                              f'(or null)')
    return doc


__all__ = ['CONTRACT_FAULT_TYPE', 'contract_fault_type', 'DETECTORS', 'DetectorConfig',
           'DetectorState', 'FAULT_TYPES', 'FEATURE_NAMES', 'FaultClassifier', 'FaultFeatures',
           'HeuristicClassifier', 'JOINT_KINDS', 'JointStatus', 'LEVELS', 'LearnedThresholds',
           'ResidualDetector', 'ThresholdsError', 'WRENCH_AXES']
