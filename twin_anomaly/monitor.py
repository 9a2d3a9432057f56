"""
The anomaly node's core: commission on the robot, then watch it; one object fed per sample.

ROS-free. :class:`AnomalyMonitor` takes every accepted robot sample (and, when there is a
force-torque sensor, the mirror's wrench residual) and runs, per sample and cheaply:

- a generalized-momentum observer on the (calibrated) model: the external torque on each
  joint (collisions, payloads, friction, a seized joint, effort-sensor offsets);
- model-free consistency checks of the robot's signals (:mod:`twin_anomaly.sensor_checks`):
  position vs velocity, noise level, frozen channels, flat effort while moving, missing
  samples and latency.

Once per block (20 ms of stamp time) these become channels of one
:class:`~twin_anomaly.fusion.FusedDetector`: one score per joint, per robot-level group
(``wrench``, ``stream``) and for the robot, each with threshold 1. While an alarm is raised,
a classifier (:mod:`twin_anomaly.classifier`; by default the packaged ONNX model for the
stream's joint-state rate, picked once the rate is known: at the end of commissioning, or from
the loaded file) scores every (fault type, joint) hypothesis at each block, in the plant's
fault type names; the episode's verdict is the hypothesis that leads their sum since the
raise, replaced only by one that clearly dominates it
(:class:`~twin_anomaly.classifier.EpisodeVerdict`; each change is an ``anomaly_verdict``
event). Each alarmed joint also has a verdict of its own, summed from its raise; a later naming
of it as another fault type or joint is an ``anomaly_joint_verdict`` event.

Commissioning, in stamp time from the first sample (``commissioning_duration_s`` = D):

1. *collect* (the first ``calibration_fraction`` of D): the samples go to the calibrator
   (:mod:`twin_anomaly.calibration`, the URDF as prior); the model-free checks learn the
   robot's velocity lag, noise levels and speeds;
2. *calibrate* (``fit_window_s`` of stamp time, the same live and in a replay): the calibrator
   fits; an accepted fit replaces the URDF model in the observer
   (and :attr:`AnomalyMonitor.calibrated_model` gives it to the mirror); a rejected one keeps
   the URDF, with the reason in the ``calibration_finished`` event;
3. *learn thresholds* (the rest of D, counted from when the calibrated model took over): the
   channels are recorded and thresholds learned on them, on the calibrated residuals;
4. *monitor*, continuing from the learned statistics' own state, so the end of commissioning
   is never a step in any statistic.

Calibration and thresholds are saved together (``thresholds_file``) and loaded on the next
start unless ``recommission``. Level is OK with message ``commissioning`` until monitoring.

Contract (the live node and ``robot-twin replay`` call the same methods in the same order)::

    monitor = AnomalyMonitor(model, MonitorConfig(...), thresholds_file=path)
    for each accepted robot sample (twin_bridge.intake.RobotSample) and its mirror result:
        monitor.update(sample, result, now=receive_time)   # result may be None
    for each accepted wrench sample with a residual (6,):
        monitor.wrench(t, residual)
    at the report rate: state = monitor.report(); events = monitor.poll_events()
    after a 'calibration_finished' event with accepted=True: monitor.calibrated_model
"""
from collections import deque
from concurrent.futures import ThreadPoolExecutor
import copy
from dataclasses import dataclass, fields
import datetime
import math
import os
from pathlib import Path
import threading
import warnings

import numpy as np
from scipy.signal import lfilter
from twin_anomaly.classifier import ClassifierError, default_model_path, EpisodeVerdict, \
    Evidence, JOINT_DETECTORS, load_classifier, PACKAGED_MODELS, RATE_BAND_BOUNDARY_HZ, \
    ROBOT_FEATURES, RuleClassifier, scores_of
from twin_anomaly.detector import DetectorState, JointStatus, ThresholdsError
from twin_anomaly.fusion import Channel, FusedDetector, FusionConfig
from twin_anomaly.momentum_observer import MomentumObserver
from twin_anomaly.residual_stats import alpha_from_time_constant, robust_center_scale
from twin_anomaly.sensor_checks import SensorChecks
# (imported here, not at the end of commissioning: loading twin_sim.sysid takes about 50 ms,
# which the 1 kHz thread would wait for there)
from twin_sim.sysid import COULOMB_PRIOR_FRACTION, small_ranges
from twin_sim.yaml_numbers import load_yaml
import yaml

__all__ = ['AnomalyMonitor', 'MonitorConfig', 'ThresholdsError', 'FILE_VERSION']

CLOCK_JUMP_S = 1.0
"""Stamps this far back mean a restarted robot clock (sim reset), not a late sample, s."""
FILE_VERSION = 4
"""Version of the saved file. 3: frozen channels and flat effort counted while the joint
moves only; 4: the position-velocity sums' thresholds built on their long-run spread
(:meth:`AnomalyMonitor._pv_bias_spread`; a version 3 file learned them too narrow, at
100 Hz for false alarms about three times an hour, and is commissioned again)."""
MONITOR_FILE_KEY = 'robot_twin_anomaly_monitor'
"""Top-level key of the monitor's saved calibration and thresholds file."""
_WRENCH_AXES = ('fx', 'fy', 'fz', 'tx', 'ty', 'tz')
_SIGN_VELOCITY = 0.02        # rad/s: velocity giving a full sign in the friction-matched sum
_FLAT_NOISE_FACTOR = 1.8     # flat effort: window std within this many noise stds
_FLAT_BAND = 4.0             # ... and window mean within this many stds of a mean's difference
_MIN_SPEED = 0.01            # rad/s: slowest speed that counts as moving
_MOVING_SHARE = 0.2          # ... and this share of the joint's RMS speed in commissioning
_MOVING_SIGMAS = 4.0         # ... and at least this many standard deviations of what the
#                              sensor noise alone makes of a block's speed (or of a velocity)
_STATIC_FRICTION_FACTOR = 1.5  # breakaway torque at rest, x the Coulomb friction (Stribeck)
_PACE_OF_MOTION = 0.5        # mean over the joints of block speed / commissioning RMS speed
#                              from which the robot counts as moving on (not stopping)
_OVERRIDE_S = 1.0            # the robot's speed override is judged on this long of motion, s
_FULL_OVERRIDE = 0.5         # from this override down, a slow joint's observer residual is
#                              judged against its commissioning spread at that pace in full
_PACE_BANDS = (0.1, 0.25)    # block pace edges (x commissioning RMS speed) of those spreads
_MIN_PROGRESS = 0.25         # the observer's smoothing steps at least this share of a block
_PACE_EDGES = np.array(_PACE_BANDS)
_FLAT_FREE_OVERRIDE = 0.85   # below this override a flat-effort window counts only where
_FLAT_DRIVING_SHARE = 0.1    # this share of its level accelerates the joint (beyond the
#                              holding effort), in full from _FULL_OVERRIDE down (the estimate
#                              reads down to 0.92 at the commissioning speed)
_FLAT_LEVEL_SHARE = 0.25     # flat effort counts from this share of the joint's largest
#                              |effort| (20 ms means) during commissioning
_WARMUP_FRACTION = 0.25      # share of the collect step that learns the signals' lag and noise
_LATENCY_BASELINE_S = 60.0   # time constant of the stream's latency baseline, s
_START_SETTLE_S = 0.5        # the load channels wait this long when a stream (re)starts, s
_OVERLOAD_HOLD_S = 1.0       # no judging until this long after the twin's own queue lost samples
_RATE_PROBE_STEPS = 20       # a loaded file's sample rate is checked on this many steps ...
_RATE_PROBE_S = 0.2          # ... spanning at least this long, s (blocks are not judged before)
_RATE_TOLERANCE = 1.25       # a median step this many times longer or shorter: another rate
_MAX_FIT_SHARE = 0.25       # the fit window takes at most this share of the learning time
_SETTINGS = ('block_s', 'observer_gain', 'leak_s', 'threshold_quantile')
_PV_WINDOW_S = 1.0           # the pv_bias sums' spread is told from sums of this long, s ...
_PV_STEPS_KEPT = 16384       # ... over at most this many of the learning's last blocks


@dataclass(frozen=True)
class MonitorConfig:
    """
    Settings of :class:`AnomalyMonitor` (the anomaly node's parameters).

    Attributes
    ----------
    commissioning_duration_s : float
        Stamp time of nominal motion commissioning takes (collect + learn thresholds), s.
    calibration : bool
        Calibrate the model during commissioning (False: predict with the URDF as given).
    calibration_fraction : float
        Share of the commissioning time that collects data before calibrating, in (0, 1).
    persistence_s : float
        A score must stay >= 1 this long before an alarm, s.
    clear_s : float
        A raised alarm clears after this long below half its threshold, s.
    block_s : float
        Detector statistics advance once per block of this stamp time, s.
    observer_gain : float
        Momentum-observer bandwidth, rad/s.
    leak_s : float
        Time constant of the position-velocity consistency sum, s.
    threshold_quantile, threshold_margin : float
        Thresholds are ``margin x quantile`` of each statistic over commissioning.
    model_path : str
        Fault classifier: ``''`` the packaged model for the stream's rate (the 1 kHz model, or
        below :data:`~twin_anomaly.classifier.RATE_BAND_BOUNDARY_HZ` the low-rate one),
        ``'rules'`` the rule baseline, or a file (used at any rate).
    min_confidence : float
        A classifier verdict below this confidence is reported as ``unknown``.
    calibrate_in_background : bool
        Fit the calibration in a worker thread (the live node: the 1 kHz path never waits);
        False fits inside :meth:`AnomalyMonitor.update` (offline runs, replays).
    fit_window_s : float
        Stamp time from the end of the collect step to the sample at which the calibration
        takes over, in both modes, so that a replay takes it over where the live node did
        (a background fit still running then takes over when it finishes, with a warning).
        At most a quarter of the learning time, from which it is taken.
    payload_settle_s : float
        After a payload is set (:meth:`AnomalyMonitor.set_payload`), the channels that see
        the load (the momentum observer's and the wrench) pause this long, s of stamp time,
        while the load moves onto or off the arm (the gripper closes, the part is lifted).

    """

    commissioning_duration_s: float = 30.0
    calibration: bool = True
    calibration_fraction: float = 0.5
    persistence_s: float = 0.02
    clear_s: float = 0.5
    block_s: float = 0.02
    observer_gain: float = 50.0
    leak_s: float = 5.0
    threshold_quantile: float = 0.999
    threshold_margin: float = 2.5
    model_path: str = ''
    min_confidence: float = 0.5
    calibrate_in_background: bool = False
    fit_window_s: float = 3.0
    payload_settle_s: float = 1.0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == 'model_path':
                if not isinstance(value, str):
                    raise ValueError(f'model_path must be a string, got {value!r}')
            elif isinstance(f.default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f'{f.name} must be true or false, got {value!r}')
            elif isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise ValueError(f'{f.name} must be a finite number, got {value!r}')
        if not 0.0 < self.calibration_fraction < 1.0:
            raise ValueError(f'calibration_fraction must be in (0, 1), got '
                             f'{self.calibration_fraction}')
        if self.payload_settle_s < 0.0:
            raise ValueError(f'payload_settle_s must be >= 0, got {self.payload_settle_s}')
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f'min_confidence must be in [0, 1], got {self.min_confidence}')
        for name in ('commissioning_duration_s', 'block_s', 'observer_gain', 'leak_s',
                     'fit_window_s'):
            if not getattr(self, name) > 0.0:
                raise ValueError(f'{name} must be > 0, got {getattr(self, name)}')
        learn_s = (1.0 - self.calibration_fraction) * self.commissioning_duration_s
        if (learn_s - min(self.fit_window_s, _MAX_FIT_SHARE * learn_s)) < 20 * self.block_s:
            raise ValueError(f'commissioning_duration_s={self.commissioning_duration_s} leaves '
                             f'{learn_s:.3f} s to learn thresholds; at least 20 blocks of '
                             f'{self.block_s} s are needed')

    def fusion(self):
        """Return the :class:`~twin_anomaly.fusion.FusionConfig` these settings give."""
        return FusionConfig(block_s=self.block_s, threshold_quantile=self.threshold_quantile,
                            threshold_margin=self.threshold_margin,
                            persistence_s=self.persistence_s, clear_s=self.clear_s)


#: Per-joint channel settings, by detector (:data:`~twin_anomaly.classifier.JOINT_DETECTORS`).
#: ``min_scale``: the smallest spread the observer channels (N·m, N) and the position-velocity
#: check (rad, m) learn. Spreads learned on real or realistically noisy robots are 3-30x
#: larger (0.01-0.07 N·m, 1e-4 rad); a robot without sensor noise (a simulated one) would teach
#: spreads of 1e-5 N·m and 1e-7 rad, which the observer's restart and a few us of timing jitter
#: exceed many times (test_monitor.py, BENCHMARKS.md "A restarted twin").
_JOINT_CHANNELS = {
    'gmo': {'kind': 'signed', 'drift': True, 'smoothing_s': 0.05, 'min_scale': 3e-3},
    'fric': {'kind': 'signed', 'drift': True, 'smoothing_s': 0.1, 'min_scale': 3e-3},
    'pv_bias': {'kind': 'signed', 'smoothing_s': 0.04, 'floor': 4.0, 'min_scale': 3e-5},
    'pv_jump': {'kind': 'upper', 'smoothing_s': 0.0, 'floor': 6.0, 'alarm': False},
    'noise_q': {'kind': 'signed', 'smoothing_s': 0.1},
    'noise_qd': {'kind': 'signed', 'smoothing_s': 0.1},
    'noise_tau': {'kind': 'signed', 'smoothing_s': 0.1},
    'stuck_q': {'kind': 'count', 'smoothing_s': 0.0, 'floor': 8.0},
    'stuck_qd': {'kind': 'count', 'smoothing_s': 0.0, 'floor': 8.0},
    'stuck_tau': {'kind': 'count', 'smoothing_s': 0.0, 'floor': 8.0},
    'flat': {'kind': 'count', 'smoothing_s': 0.0, 'floor': 0.15},
    'speed': {'kind': 'signed', 'smoothing_s': 0.1, 'alarm': False},
}


#: Joint detectors whose residual grows with what the joint moves: a declared payload widens
#: their spread (see ``AnomalyMonitor.set_payload``), as it does the wrench's.
_LOAD_DETECTORS = ('gmo', 'fric')
#: Joint noise levels that grow with what the joint moves: a position-controlled drive's effort
#: ripple, its response to each new command, grows with the inertia it moves (a 5 kg load on
#: the built-in arm's flange raised joint7's effort level 6-fold in mean square). A level is the
#: log of a mean square, so a declared payload that widens the joint's spread g-fold allows it
#: to rise by up to ``2 log g`` (see ``AnomalyMonitor._judge_relative_to_load``).
_LOAD_NOISE_DETECTORS = ('noise_tau',)


def _joint_channels(j, group):
    """Return joint ``j``'s channels, in ``JOINT_DETECTORS`` order."""
    return [Channel(f'{j}.{d}', group, **_JOINT_CHANNELS[d]) for d in JOINT_DETECTORS]


class AnomalyMonitor:
    """
    Commission, monitor and report the twin's view of one robot (see the module docstring).

    Parameters
    ----------
    model : twin_sim.urdf_model.RobotModel
        The robot as the twin knows it (URDF, known payload); joint order of every sample.
    config : MonitorConfig
    thresholds_file : str or Path, optional
        Where calibration and thresholds are loaded from and saved to; None = never saved.
    recommission : bool
        Ignore a saved file and commission again.
    urdf : str, optional
        URDF path recorded in the saved file (which robot it belongs to).
    log : callable, optional
        ``log(level, text)`` for what the node should log ('info', 'warning', 'error').
    classifier : object, optional
        Anything with ``classify(Evidence) -> Verdict``, and ``scores(Evidence)`` where it
        scores every hypothesis (:func:`~twin_anomaly.classifier.scores_of`); default from
        ``config.model_path`` (``''``: both packaged models are loaded, and the stream's rate
        picks one, :attr:`classifier_name`).

    Raises
    ------
    TypeError
        ``model`` is not a RobotModel.
    twin_anomaly.classifier.ClassifierError
        The configured classifier model cannot be loaded.

    """

    def __init__(self, model, config=MonitorConfig(), *, thresholds_file=None,
                 recommission=False, urdf=None, log=None, classifier=None):
        from twin_sim.urdf_model import RobotModel
        if not isinstance(model, RobotModel):
            raise TypeError(f'AnomalyMonitor needs the robot model (twin_sim.urdf_model.'
                            f'RobotModel), got {type(model).__name__}')
        self.model = model
        self.joint_names = tuple(model.joint_names)
        self.n = n = model.n
        self.config = config
        self.thresholds_file = Path(thresholds_file).expanduser() if thresholds_file else None
        self.urdf = urdf if urdf is not None else model.urdf_path
        self._log = log or (lambda level, text: None)
        # the packaged models by file name (model_path ''), loaded now so that none is loaded
        # on the sample path; the stream's rate picks one (_use_model_for_rate)
        self._packaged = None
        if classifier is None and config.model_path == '':
            self._packaged = {name: load_classifier('', config.min_confidence, slowest)
                              for name, slowest in PACKAGED_MODELS}
            classifier = self._packaged[default_model_path().name]
        self.classifier = classifier if classifier is not None else \
            load_classifier(config.model_path, config.min_confidence)
        self._events = []
        # {joint: (fault_type, joint)} an alarmed joint's own verdict as last logged (raise or
        # a later naming: _joint_verdict_events)
        self._joint_logged = {}
        self._has_wrench = model.ft_frame is not None
        self.group_names = self.joint_names + (('wrench',) if self._has_wrench else ()) + \
            ('stream',)
        channels = [ch for j, name in enumerate(self.joint_names)
                    for ch in _joint_channels(name, j)]
        if self._has_wrench:
            # smallest spreads: below the resolution of arm-mounted force-torque sensors
            # (about 0.05 N and 2e-3 N·m); a simulated sensor without noise would teach less
            channels += [Channel(f'wrench.{a}', n, 'signed', drift=True,
                                 min_scale=1e-2 if a[0] == 'f' else 1e-3)
                         for a in _WRENCH_AXES]
        stream = len(self.group_names) - 1
        channels += [Channel('stream.missing', stream, 'count', smoothing_s=0.1, floor=0.04),
                     Channel('stream.repeated', stream, 'count', smoothing_s=0.1, floor=0.2),
                     # smoothed over 0.3 s: a delayed stream stays late, while a busy twin
                     # that keeps pace tens of ms behind for a moment (not caught as queued
                     # or starved: the intake's, twin_bridge/intake.py) must not read as the
                     # robot's delay
                     Channel('stream.latency', stream, 'upper', smoothing_s=0.3, floor=5.0,
                             min_scale=0.003)]
        self.fused = FusedDetector(channels, self.group_names, config.fusion())
        self._d = len(JOINT_DETECTORS)
        self._c = len(channels)
        self._x = np.full(self._c, np.nan)
        self._sign = np.zeros(n)
        self._rs = np.zeros(n)
        self._latency_alpha = alpha_from_time_constant(config.block_s, _LATENCY_BASELINE_S)
        self._override_alpha = alpha_from_time_constant(config.block_s, _OVERRIDE_S)
        self.checks = SensorChecks(n, config.leak_s)
        self.calibration = None           # the CalibrationResult in use (or None)
        self.calibrated_model = None      # RobotModel to predict with, once calibrated
        self.payload = None               # what the robot carries now, as told (set_payload)
        self._load_factor = None          # (C,) spread growth of the load channels with it
        self._settle_until = -math.inf    # stamp until which the load channels pause
        self._overloaded_until = -math.inf  # stamp until which the robot is not judged
        self.observer = None
        self._static_friction = np.zeros(n)   # N·m a resting joint may hold (see _set_observer)
        self._held_friction = np.zeros(n)     # ... and one held still by the program
        self._executor = None
        self._future = None
        self._fit_result = None
        self._fit_due = math.inf
        self._fit_late = False
        self.dropped_samples = 0
        self._not_newer = 0                # samples not newer than the last one, since it
        self.alarm_changes = 0            # blocks at which a group's alarm was raised or cleared
        # a first verdict needs the classifier's own confidence floor (the trained model's
        # min_confidence; a classifier that names verdicts without one has decided already)
        self.episode_verdict = EpisodeVerdict(
            self.joint_names, getattr(self.classifier, 'min_confidence', 0.0), config.block_s)
        self._saved = True
        self._rate_probe = None           # steps of a loaded file's first samples (see update)
        self._start(recommission)

    # ------------------------------------------------------------------ lifecycle
    def _start(self, recommission):
        path = self.thresholds_file
        if path is not None and path.is_file() and not recommission:
            try:
                self._load(path)
                self._log('info', f'loaded calibration and thresholds from {path}')
                self._events.append({'kind': 'thresholds_loaded', 'file': str(path),
                                     'calibrated': self.calibrated_model is not None,
                                     'fault_classifier': self.classifier_name})
                return
            except ThresholdsError as exc:
                self._log('warning', f'{exc}; commissioning again')
        self._begin_commissioning()

    def _begin_commissioning(self):
        cfg = self.config
        self._rate_probe = None
        self._flat_window_learned = None
        self.episode_verdict.reset()
        self.step = 'collect'
        self._t0 = None
        self._last_t = None
        self._settle_until = self._overloaded_until = -math.inf
        self._learn_t0 = None
        self._phase1 = []                  # log_d2 of the warm-up's blocks
        self._speed_sq = np.zeros((2, self.n))  # sum of block speed^2, count: collect so far
        self._q_range = np.array([[np.inf], [-np.inf]]) * np.ones(self.n)   # lowest, highest q
        self._small_range = small_ranges(self.model.lower, self.model.upper)  # less: held still
        self._effort_peak = np.zeros(self.n)   # largest |block mean effort| seen, N·m
        self._lag_learned = False
        self._pv_steps = deque(maxlen=_PV_STEPS_KEPT)   # what each block added to pv_bias
        self._raw_observer = deque(maxlen=_PV_STEPS_KEPT)   # (n, 2) observer values, unbanded
        self._saved = False
        self._meta = {}
        self.fused.learned = None
        self.checks = SensorChecks(self.n, cfg.leak_s)
        self.checks.start_lag_learning()
        self.calibration = None
        self.calibrated_model = None
        self.payload = None               # the calibration identifies the robot as it is
        self._load_factor = None
        self.observer = None
        self._pace_bands = np.zeros((3, len(_LOAD_DETECTORS), len(_PACE_BANDS) + 1, self.n))
        self._band_spread = None
        self._calibrator = self._make_calibrator() if cfg.calibration else None
        self._fit_result, self._fit_due, self._fit_late = None, math.inf, False
        self._learn_span = (1.0 - cfg.calibration_fraction) * cfg.commissioning_duration_s
        self._reset_block()
        self._log('info', f'commissioning for {cfg.commissioning_duration_s:.1f} s of nominal '
                          f'motion ({"calibrating the model, then " if cfg.calibration else ""}'
                          f'learning thresholds)' + (f'; saved to {self.thresholds_file}'
                                                     if self.thresholds_file else ''))
        self._events.append({'kind': 'commissioning_started',
                             'duration_s': cfg.commissioning_duration_s,
                             'calibration': cfg.calibration})

    def _make_calibrator(self):
        from twin_anomaly.calibration import CalibrationConfig, Calibrator
        cfg = self.config
        collect_s = cfg.calibration_fraction * cfg.commissioning_duration_s
        default = CalibrationConfig()
        # a short commissioning still calibrates; the fit's held-out check guards it
        return Calibrator(self.model, CalibrationConfig(
            min_duration_s=min(default.min_duration_s, 0.9 * collect_s),
            max_duration_s=max(default.max_duration_s, collect_s + 1.0)))

    def _reset_block(self):
        self._block_end = None
        self._pace_sq = np.ones(self.n)      # EWMA of each joint's squared pace (override)
        self._override = np.ones(self.n)     # the speed override it tells, per joint
        self._block_start = None
        self._r_sum = np.zeros(self.n)
        self._rs_sum = np.zeros(self.n)
        self._r_cnt = 0
        self._w_sum = np.zeros(6)
        self._w_cnt = 0

    @property
    def detector(self):
        """Return the :class:`~twin_anomaly.fusion.FusedDetector` (``config.warn_ratio``...)."""
        return self.fused

    @property
    def warn_ratio(self):
        """Share of a threshold from which a score is reported as WARN."""
        return self.fused.config.warn_ratio

    @property
    def commissioned(self):
        """Whether monitoring has started (thresholds learned or loaded)."""
        return self.step == 'monitor'

    def prediction_model(self):
        """
        Return the model the twin predicts with.

        The calibrated model once there is one, else the given one; carrying the payload last
        told (:meth:`set_payload`), if any.
        """
        model = self.calibrated_model if self.calibrated_model is not None else self.model
        return model if self.payload is None else model.with_payload(self.payload)

    def judging(self, t):
        """
        Return whether the monitor judges the robot at stamp ``t``, s.

        Not while its load channels settle (a stream (re)start, a gap that restarted its
        observer, a payload being picked up) nor while the twin's own input queue lost samples.
        """
        return not (t < self._settle_until or t < self._overloaded_until)

    def set_payload(self, payload):
        """
        Take what the robot carries from now on; return the model to predict with (None).

        A robot's program knows when it picks up a part or changes its tool; told so, the twin
        predicts with that load instead of raising ``payload_change`` (which is for a load
        nobody announced). The observer starts again on the new model, and the channels that
        see the load pause for ``payload_settle_s`` while it moves onto or off the arm: tell
        the twin when the transfer starts (the gripper command), not after it. The load the
        twin has already changes nothing and returns None (a program may send it again and
        again).

        The thresholds were learned without the load. The twin's residuals keep an error that
        grows with what the sensor and the joints move (the acceleration estimated over the
        last step; a 2 kg load on a sensor carrying 0.3 kg made the simulated arm's force
        residual 0.016 N rms instead of 0.002 N), so the load channels judge their deviations
        relative to that growth (:meth:`_load_factors`) while the load is carried. A wrong
        declaration still shows: its weight is an offset, not a spread.

        Parameters
        ----------
        payload : twin_sim.urdf_model.Payload
            In the model's ``payload_frame``. It replaces any load the model was started with
            (``payload_mass_kg``); mass 0: nothing carried.

        Raises
        ------
        ValueError
            The payload is not one this arm can carry (``RobotModel.check_payload``), or the
            twin is collecting or fitting its calibration: it identifies the robot with what it
            carries then, and a load changed meanwhile would be in part of the data only.

        """
        self.model.check_payload(payload)
        if payload.same_as(self.payload):
            return None
        if self.step in ('collect', 'fit'):
            raise ValueError('the twin is calibrating itself (commissioning); a payload can be '
                             'set once it learns its thresholds or monitors; carry the same '
                             'load during commissioning')
        self.payload = payload
        model = self.prediction_model()
        self._set_observer(model)
        self._load_factor = self._load_factors(model)
        if self._last_t is not None:
            self._settle_until = self._last_t + self.config.payload_settle_s
        self._events.append({'kind': 'payload_set', 'mass_kg': float(payload.mass),
                             'com_m': [float(v) for v in payload.com]})
        return model

    def _load_factors(self, model):
        """
        Return (C,) how many times the load channels' spread grows with ``model``'s load.

        None when it grows nowhere. Relative to the model the thresholds were learned with
        (calibrated, without a declared payload), never below 1: for each joint's observer
        channels and its effort noise level the growth of its diagonal of the mass matrix at
        the current pose (the load's share of the inertia it moves); for the wrench's forces
        that of the mass the sensor carries, for its torques the larger growth of that mass's
        first moment and of its rotational inertia about the sensor.
        """
        learned = self.calibrated_model if self.calibrated_model is not None else self.model
        q = self._q if self._q is not None else np.zeros(self.n)
        n, d = self.n, self._d
        factor = np.ones(self._c)
        joint = factor[:n * d].reshape(n, d)
        growth = np.diag(model.mass_matrix(q)) / np.diag(learned.mass_matrix(q))
        for name in _LOAD_DETECTORS + _LOAD_NOISE_DETECTORS:
            joint[:, JOINT_DETECTORS.index(name)] = growth
        if self._has_wrench:
            before = _carried(learned.ft_distal_inertia)
            after = _carried(model.ft_distal_inertia)
            with np.errstate(divide='ignore', invalid='ignore'):
                mass, moment, inertia = np.divide(after, before)
            factor[n * d:n * d + 3] = mass
            factor[n * d + 3:n * d + 6] = np.fmax(moment, inertia)
        factor = np.where(np.isfinite(factor), np.fmax(factor, 1.0), 1.0)
        return factor if (factor > 1.0).any() else None

    @property
    def phase(self):
        """``'commissioning'`` or ``'monitoring'``."""
        return 'monitoring' if self.step == 'monitor' else 'commissioning'

    @property
    def commissioning_progress(self):
        """Fraction of the commissioning time seen, in [0, 1]."""
        if self.step == 'monitor':
            return 1.0
        if self._t0 is None or self._last_t is None:
            return 0.0
        cfg = self.config
        d = cfg.commissioning_duration_s
        if self._learn_t0 is None:
            return min(cfg.calibration_fraction, (self._last_t - self._t0) / d)
        learned = (self._last_t - self._learn_t0) / self._learn_span
        return min(1.0, cfg.calibration_fraction + (1.0 - cfg.calibration_fraction) * learned)

    # ------------------------------------------------------------------ per sample
    def update(self, sample, result=None, now=None):
        """
        Take one accepted robot sample.

        Parameters
        ----------
        sample : twin_bridge.intake.RobotSample
            ``t`` (s), ``position`` (n,) rad, ``velocity`` (n,) rad/s or None, ``effort``
            (n,) N·m, model order.
        result : twin_sim.mirror.MirrorResult or None
            The mirror's result for it (not needed: the monitor's detectors work on the
            sample itself; accepted for the node's call pattern).
        now : float, optional
            When the sample was received (local clock, s): enables the latency check.

        """
        t = float(sample.t)
        if self._last_t is not None and t <= self._last_t:
            if t < self._last_t - CLOCK_JUMP_S:
                self._clock_jump(t)
            else:
                # (a stamp that repeats, or a sample out of order: it came, so the stream
                # checks take it as refused with the next one, not as a gap in the stream)
                self.dropped_samples += 1
                self._not_newer += 1
                return
        q = sample.position
        qd = sample.velocity
        if qd is None:
            qd = self._differentiate(t, q)
            if qd is None:
                return
        tau = sample.effort
        self._q, self._qd = q, qd
        if self._t0 is None:
            self._t0 = t
        if self._block_end is None:
            self._block_end = t + self.config.block_s
        if self._last_t is None and self.step == 'monitor':
            # a stream (re)starts while monitoring (a twin started from its saved file, the
            # robot's clock jumped back): the observer and the mirror's filters start from
            # nothing, and a process just started takes its first samples in bursts. The load
            # channels (observer, wrench) wait a moment, as after a payload change
            self._settle_until = max(self._settle_until, t + _START_SETTLE_S)
        if self._rate_probe is not None and self._probe_rate(t):
            return                                 # commissioning again: see _probe_rate
        self._last_t = t
        self.checks.update(t, q, qd, tau, now,
                           getattr(sample, 'refused_before', 0) + self._not_newer,
                           getattr(sample, 'queued', False), getattr(sample, 'fresh', None))
        self._not_newer = 0
        step = self.step
        if self.checks.last_was_repeat:          # a stale resend: no new reading
            pass
        elif step == 'collect':
            if self._calibrator is not None:
                self._calibrator.add(t, q, qd, tau)
        elif self.observer is not None:
            restarts = self.observer.restarts
            r = self.observer.update(t, q, qd, tau)
            if self.observer.restarts != restarts:
                # a gap restarted the observer (r = 0 again, then settling with 1 / K): the
                # load channels say nothing for a moment, as when a stream starts. (Samples a
                # starved twin lost by the hundred, across which the observer ran, read as
                # collisions.)
                self._settle_until = max(self._settle_until, t + _START_SETTLE_S)
            self._r_sum += r
            np.multiply(r, np.tanh(np.divide(qd, _SIGN_VELOCITY, out=self._sign),
                                   out=self._sign), out=self._rs)
            self._rs_sum += self._rs
            self._r_cnt += 1
        if t >= self._block_end:
            self._end_block(t)
        if step == 'fit' and t >= self._fit_due:
            self._take_over_fit(t)

    _q_prev = None                             # (t, q) before, for a robot without velocity
    _q = None                                  # the last sample's positions (n,) rad
    _qd = None                                 # ... and velocities (n,) rad/s
    _block_start = None                        # (t, q) at the end of the block before

    def _probe_rate(self, t):
        """
        Compare the stream's rate with the loaded file's; True if commissioning starts again.

        The per-block statistics depend on the samples per block (noise levels, flat runs): a
        file learned at 100 Hz judges a 500 Hz stream wrongly (seen: torque_saturation within
        0.5 s of the start). The median step of the first samples is robust to a stall.
        """
        probe = self._rate_probe
        if self._last_t is not None and t > self._last_t:
            probe['steps'].append(t - self._last_t)
        if len(probe['steps']) < _RATE_PROBE_STEPS or sum(probe['steps']) < _RATE_PROBE_S:
            return False
        self._rate_probe = None
        learned = probe['learned_hz']
        rate = 1.0 / float(np.median(probe['steps']))
        if 1.0 / _RATE_TOLERANCE <= rate / learned <= _RATE_TOLERANCE:
            return False
        self._log('warning', f'the robot streams at {rate:.4g} Hz; the calibration and '
                             f'thresholds of {self.thresholds_file} were learned at '
                             f'{learned:.4g} Hz: commissioning again for this rate')
        reason = f'sample rate {rate:.4g} Hz, learned at {learned:.4g} Hz'
        self._events.append({'kind': 'thresholds_refused', 'file': str(self.thresholds_file),
                             'reason': reason})
        self._begin_commissioning()
        return True

    def _differentiate(self, t, q):
        """Velocity by backward difference for a robot without velocity; None at first."""
        prev, self._q_prev = self._q_prev, (t, np.array(q, dtype=float))
        if prev is None or not t > prev[0]:
            return None
        return (self._q_prev[1] - prev[1]) / (t - prev[0])

    def _clock_jump(self, t):
        self._log('warning', f'robot stamps jumped back {self._last_t - t:.3f} s; restarting '
                             + ('the detectors (thresholds kept)' if self.commissioned
                                else 'commissioning'))
        if not self.commissioned:
            self._cancel_fit()
            self._begin_commissioning()
            return
        self._last_t = None
        self._settle_until = self._overloaded_until = -math.inf
        self.checks.reset()
        if self.observer is not None:
            self.observer.reset()
        self.fused.reset()
        self.episode_verdict.reset()
        self._latency_base = math.nan
        self._reset_block()

    def wrench(self, t, residual):
        """Add a wrench residual (6,) N, N·m (ft_sensor frame) to the current block."""
        if self._has_wrench and residual is not None:
            self._w_sum += residual
            self._w_cnt += 1

    # ------------------------------------------------------------------ per block
    def _end_block(self, t):
        cfg = self.config
        self._block_end += cfg.block_s
        if t >= self._block_end:                  # a gap: restart the block grid
            self._block_end = t + cfg.block_s
        # the effort the model does not explain (the observer's residual, negated): the
        # flat-effort check judges a held effort's level without it, since a clipping drive's
        # effort is consistent with the motion and more friction's is not (sensor_checks)
        settling = self._last_t < self._settle_until
        unexplained = -self._r_sum / self._r_cnt if self._r_cnt and not settling else None
        blk = self.checks.take_block(unexplained, *self._flat_driving(t))
        self._block_start = (t, self._q.copy())
        if blk is None:
            return
        if blk.pace is not None:
            known = np.isfinite(blk.pace)
            self._pace_sq[known] += self._override_alpha * (blk.pace[known] ** 2
                                                            - self._pace_sq[known])
        self._override = self._speed_override()
        x = self._assemble(blk)
        step = self.step
        if step != 'monitor':
            np.fmax(self._effort_peak, np.abs(blk.effort_mean), out=self._effort_peak)
        if step == 'collect':
            self._collect_block(t, blk, x)
        elif step in ('learn', 'fit'):
            self._learn_pace_bands(blk, x)
            self._learn_block(t, blk, x)
            if step == 'learn' and t - self._learn_t0 >= self._learn_span:
                self._finish_commissioning(t)
        elif step == 'monitor' and self._rate_probe is None:
            if self._load_factor is not None:       # a declared payload: see set_payload
                self._judge_relative_to_load(x)
            before = self.fused.alarm.copy()
            self.fused.update(t, x, self._judge_at_override(blk, x))
            self._judge_episode(t)
            if (self.fused.alarm != before).any():
                self.alarm_changes += 1
                self._alarm_events(t, before)

    def _judge_relative_to_load(self, x):
        """
        Take a block vector (C,) to the deviations the robot would show without its payload.

        In place, while a declared payload is carried (:meth:`set_payload`). A load channel's
        deviation from its learned centre shrinks by its load factor (its spread grew that
        much). A noise level is the log of a mean square: one whose spread grew g-fold may
        have risen by up to ``2 log g``, so that much of a rise is taken off (down to the
        centre); a fall is no load's doing and stays.
        """
        center = self.fused.learned['center']
        factor = self._load_factor.copy()
        n, d = self.n, self._d
        level = x[:n * d].reshape(n, d)
        growth = factor[:n * d].reshape(n, d)
        for name in _LOAD_NOISE_DETECTORS:
            k = JOINT_DETECTORS.index(name)
            rise = level[:, k] - center[:n * d].reshape(n, d)[:, k]
            level[:, k] -= np.clip(rise, 0.0, 2.0 * np.log(growth[:, k]))
            growth[:, k] = 1.0
        x[:] = center + (x - center) / factor

    def _assemble(self, blk):
        """Write one block's channel values into the block vector (C,)."""
        n, d = self.n, self._d
        x = self._x
        joint = x[:n * d].reshape(n, d)
        cnt = self._r_cnt
        joint[:, 0] = self._r_sum / cnt if cnt else np.nan
        joint[:, 1] = self._rs_sum / cnt if cnt else np.nan
        joint[:, 2] = blk.pv_bias if self._lag_learned else np.nan
        joint[:, 3] = blk.pv_jump
        noise = joint[:, 4:7]
        noise[:] = blk.log_d2.reshape(3, n).T
        period = self.checks.period_s
        if period and blk.samples < 0.5 * self.config.block_s / period:
            # a block cut short by a gap: a noise level from one or two second differences
            # is anything (a chi-square of one degree of freedom), e.g. 1e-5 of the usual
            # level, which read as a stuck velocity sensor after the twin lost samples
            noise[:] = np.nan
        rest = blk.resting
        sticking = np.zeros(n)        # share of its static friction band a joint may hold
        if rest is not None and rest.any():
            # a joint at rest may read quieter than while it moves (an encoder that holds
            # still, a velocity of exactly zero): a drop of its noise says nothing about a
            # frozen sensor then. Commissioning learns the noise of moving joints only;
            # monitoring keeps a resting joint's noise only when it rose.
            if self.step == 'monitor':
                center = self.fused.learned['center'][:n * d].reshape(n, d)[:, 4:7]
                noise[rest] = np.where(noise[rest] > center[rest], noise[rest], np.nan)
            else:
                noise[rest] = np.nan
            # a joint at rest holds whatever torque its static friction takes, up to the
            # breakaway torque either way, which the friction model (zero at zero speed)
            # cannot know: that much of the observer's residual, and of its friction-matched
            # part, is no evidence then. Only while the robot as a whole has slowed down
            # (stopping, or paused): one joint stalled while the others go on at their
            # usual pace is what a clipping drive or a seized joint does
            known = np.isfinite(blk.pace)
            pace = float(blk.pace[known].mean()) if known.any() else 0.0
            if pace < _PACE_OF_MOTION:
                sticking[rest] = 1.0
        # likewise a joint that stops, turns or creeps within the block (it hardly got
        # anywhere) while the others show the robot run slower than in commissioning: there
        # it dwells at each turn as long as the override is low, sticking, where commissioning
        # saw it pass in a moment (a stick at a turn of the built-in arm's joint2 at 40 %
        # read 27 times the residual's spread). In full from an override of _FULL_OVERRIDE
        # down, nothing at the commissioning pace
        with np.errstate(invalid='ignore'):
            slow = ~(blk.speed > self.checks.min_speed)      # (NaN: a block without duration)
        np.fmax(sticking, np.where(slow, _override_weight(self._override, 1.0), 0.0),
                out=sticking)
        # and, in full, a joint that the program holds still: commissioning never saw it move
        # (no usual speed). Its drive's holding torque wanders within the static friction as
        # the other joints shake it and the position loop's integral winds (a wrist of high
        # friction and little inertia went from +0.4 to -0.8 N·m over 3 minutes of the same
        # motion, 60 times the spread it showed in commissioning). Not a stall: nothing
        # expected it to move; nor is a slip or a nudge of it, whose friction was never seen
        # in motion. Its channels' scales are at least the spread of its unbanded values in
        # commissioning (_finish_commissioning), which a band taken off a held torque hides
        friction = self._static_friction
        if self._lag_learned:
            held = np.isnan(self.checks.pace_speed)
            if held.any():
                sticking[held] = 1.0
                friction = np.where(held, self._held_friction, friction)
                if self.step in ('learn', 'fit'):
                    self._raw_observer.append(joint[:, 0:2].copy())
        if sticking.any():
            band = sticking * friction
            for column in (0, 1):
                r = joint[:, column]
                joint[:, column] = np.sign(r) * np.maximum(np.abs(r) - band, 0.0)
        settling = self._last_t is not None and self._last_t < self._settle_until
        if settling:       # a payload is being picked up or put down, or the stream just began
            joint[:, 0:2] = np.nan
        joint[:, 7:10] = blk.repeat_run.reshape(3, n).T
        joint[:, 10] = blk.flat_run_s
        joint[:, 11] = blk.speed
        i = n * d
        if self._has_wrench:
            x[i:i + 6] = self._w_sum / self._w_cnt if self._w_cnt and not settling else np.nan
            i += 6
        if blk.lost_in_twin:
            self._overloaded_until = self._last_t + _OVERLOAD_HOLD_S
        if self._last_t < self._overloaded_until:
            # the twin's own queue lost samples (it fell behind): its checks ran across those
            # gaps and judge the twin, not the robot (a starved twin's blocks read as stuck
            # and biased sensors and as collisions). Until it has kept up for a while, only
            # the stream's channels, which leave such losses out, speak; the loss is counted
            # in dropped_samples
            x[:i] = np.nan
        x[i] = blk.missing / (blk.samples + blk.missing)
        x[i + 1] = blk.repeated / blk.samples
        x[i + 2] = self._latency_step(blk.latency_s)
        self._r_sum = np.zeros(n)
        self._rs_sum = np.zeros(n)
        self._r_cnt = 0
        self._w_sum = np.zeros(6)
        self._w_cnt = 0
        return x

    _latency_base = math.nan

    # ------------------------------------------------------------------ speed override
    #
    # The observer's residual is largest where a joint reverses: near zero speed it sticks,
    # and its static friction holds anything within the Coulomb band, which the friction
    # model (zero at zero speed) cannot know. Run at a lower speed override than in
    # commissioning, the same path dwells longer at each reversal, and the smoothed residual
    # grew past thresholds learned on short dwells. A clipping drive looks alike (its joint
    # hangs at the reversals, where the inertial torque peaks), but it slows its own joint
    # only. So, for the observer channels of each joint: the override is estimated from the
    # other joints' speeds against commissioning (their median RMS pace over 1 s), and the
    # lower it is, the more (i) the residual is judged against its commissioning spread at
    # the joint's present pace (wider near zero speed), (ii) the smoothing and the drift
    # sums follow the path rather than the clock, and (iii) a joint that stops or turns
    # within a block may hold its static friction band unexplained (_assemble). The flat
    # effort check is judged at the override too (_flat_driving). At the commissioning pace
    # nothing changes. Checked on three arms and ten motions each, overrides from 80 to 20 %
    # (benchmarks/bench_override.py).

    def _flat_driving(self, t):
        """
        Return what the flat-effort check needs to judge a flat window at the speed override.

        Returns ``(holding, share, pace)``: the effort that holds each joint at the block's
        last sample, stamp ``t`` (n,) N·m (gravity and friction at its velocity, as the
        observer's model has them; None when nothing is asked), the share of a flat window's
        level (n,) that must go beyond it, accelerating the joint, for the window to count,
        and the share of its paced duration (n,) a flat window adds to a run (None: all;
        sensor_checks). Paced runs are path lengths, but along the same path run slower the
        efforts change slower still: their inertial part goes with the override squared, so
        a joint's effort stays flat over more of its path (the built-in arm's joint1, its
        effort friction and inertia, read 1.3 times its flat threshold at 60 %). Below
        _FLAT_FREE_OVERRIDE a window adds ``(override / _FLAT_FREE_OVERRIDE)^2`` of it.

        Run slower than in commissioning, the inertial torques are small and a joint's effort
        stays flat at the holding effort wherever gravity hardly changes
        along the path; a drive clipped under such a load is short of it and lets its joint
        fall behind. At about the commissioning speed nothing is asked: a flat run there is
        one that commissioning did not see, whatever drives it. For a robot that reports no
        velocity, friction is taken at the block's mean velocity: a one-step difference of
        positions flips the sign of Coulomb friction at low speed on the sensor noise alone.
        """
        override = self._override
        if not (override < _FLAT_FREE_OVERRIDE).any():
            return None, 0.0, None
        pace = np.fmin(1.0, override / _FLAT_FREE_OVERRIDE) ** 2
        if self.observer is None or self._q is None:
            return None, 0.0, pace
        weight = _override_weight(override, _FLAT_FREE_OVERRIDE)
        model = self.observer.model
        qd = self._qd
        if self._q_prev is not None and self._block_start is not None \
                and t > self._block_start[0]:       # (a robot without velocity: see update)
            qd = (self._q - self._block_start[1]) / (t - self._block_start[0])
        return (model.gravity(self._q) + model.friction_model.torque(qd),
                _FLAT_DRIVING_SHARE * weight, pace)

    def _learn_pace_bands(self, blk, x):
        """Add a learned block's observer values to the sums of their joint's pace band."""
        if blk.pace is None:
            return
        n, d = self.n, self._d
        joint = x[:n * d].reshape(n, d)
        band = np.searchsorted(_PACE_EDGES, blk.pace)     # (NaN: the top band, as inf)
        for k, detector in enumerate(_LOAD_DETECTORS):
            value = joint[:, JOINT_DETECTORS.index(detector)]
            have = np.isfinite(value)
            cols = np.flatnonzero(have)
            for power in range(3):
                np.add.at(self._pace_bands[power, k], (band[have], cols),
                          value[have] ** power)

    def _spread_by_pace(self):
        """
        Each observer channel's spread per pace band, x its learned scale (>= 1).

        Returns
        -------
        (len(_LOAD_DETECTORS), bands, n) float array
            The RMS deviation from the channel's centre of the learned blocks in each band of
            the joint's pace, over the channel's learned scale; 1 where a band had fewer than
            10 blocks.

        """
        n, d = self.n, self._d
        learned = self.fused.learned
        count, total, squares = self._pace_bands
        factor = np.ones(count.shape)
        for k, detector in enumerate(_LOAD_DETECTORS):
            col = np.arange(n) * d + JOINT_DETECTORS.index(detector)
            center, scale = learned['center'][col], learned['scale'][col]
            with np.errstate(all='ignore'):
                mean_sq = (squares[k] - 2.0 * center * total[k]) / count[k] + center ** 2
                spread = np.sqrt(np.fmax(mean_sq, 0.0)) / scale
            factor[k] = np.where(count[k] >= 10, np.fmax(spread, 1.0), 1.0)
        return factor

    def _speed_override(self):
        """Per joint, the speed override the other joints show (n,), in (0, 1]."""
        n = self.n
        pace = np.where(np.isfinite(self.checks.pace_speed), np.sqrt(self._pace_sq), np.nan)
        # row j: the other joints' paces (NaN: j itself, and joints never seen moving), sorted
        # with the NaNs last; its median from the middle of its known ones (once per block,
        # in one sort rather than a median per joint)
        others = np.tile(pace, (n, 1))
        rows = np.arange(n)
        others[rows, rows] = np.nan
        count = np.count_nonzero(~np.isnan(others), axis=1)
        others.sort(axis=1)
        lo, hi = np.maximum(count - 1, 0) // 2, count // 2
        median = 0.5 * (others[rows, lo] + others[rows, hi])
        return np.where(count >= 2, np.fmin(1.0, median), 1.0)

    def _judge_at_override(self, blk, x):
        """
        Judge the observer channels at the robot's speed override; return the block's pace.

        Rescales the observer values in ``x`` (C,) about their centres (see above) and returns
        the share of a commissioning block's motion (C,) each channel's smoothing takes.
        """
        n, d = self.n, self._d
        progress = np.ones(x.shape)
        override = self._override
        if blk.pace is None or not (override < 1.0).any():
            return progress
        joint = x[:n * d].reshape(n, d)
        center = self.fused.learned['center'][:n * d].reshape(n, d)
        weight = _override_weight(override, 1.0)
        band = np.searchsorted(_PACE_EDGES, blk.pace)     # (NaN: the top band, as inf)
        steps = progress[:n * d].reshape(n, d)
        for k, detector in enumerate(_LOAD_DETECTORS):
            col = JOINT_DETECTORS.index(detector)
            if self._band_spread is not None:
                spread = self._band_spread[k, band, np.arange(n)] ** weight
                joint[:, col] = center[:, col] + (joint[:, col] - center[:, col]) / spread
            steps[:, col] = np.fmax(override, _MIN_PROGRESS)
        return progress

    def _latency_step(self, latency):
        """
        Return the block's latency above its slowly adapting baseline, s (NaN without one).

        The baseline absorbs clock drift between the robot and this computer and a slowly
        changing load; a delay that appears at once stands out. It follows a lower latency at
        once (the stream is at least that fast) and a higher one slowly (a 60 s EWMA of past
        blocks): a first block that came late, as when the twin has just started and is busy,
        must not become the reference that every later block is judged from. (It once did:
        commissioning learned "70 ms earlier than usual" as normal, and every restart of the
        twin from the saved file then reported a delayed stream.)
        """
        if not math.isfinite(latency):
            return math.nan
        base = self._latency_base
        if not math.isfinite(base) or latency <= base:
            self._latency_base = latency
            return 0.0
        self._latency_base = base + self._latency_alpha * (latency - base)
        return latency - base

    # ------------------------------------------------------------------ commissioning
    def _collect_block(self, t, blk, x):
        cfg = self.config
        collect_s = cfg.calibration_fraction * cfg.commissioning_duration_s
        known = np.isfinite(blk.speed)
        self._speed_sq[0, known] += blk.speed[known] ** 2
        self._speed_sq[1, known] += 1.0
        if self._q is not None:
            np.fmin(self._q_range[0], self._q, out=self._q_range[0])
            np.fmax(self._q_range[1], self._q, out=self._q_range[1])
        if not self._lag_learned:
            self._phase1.append(blk.log_d2)
            if t - self._t0 >= _WARMUP_FRACTION * collect_s:
                self._learn_signals()
        else:
            # the model-free channels learn from here on; the observer's once calibrated
            self._learn_block(t, blk, x)
        if t - self._t0 < collect_s:
            return
        if not self._lag_learned:
            self._learn_signals()
        # the joints' usual speeds (the pace of flat runs and of the speed override) over the
        # whole collect step, not its warm-up only: a robot that starts from rest, or homes
        # first, moves slower in its first seconds than in its program, and a usual speed
        # taken there read the program itself as run at up to twice the commissioning pace
        # (several times after a slow first cycle), so that a lower override was not seen
        # held still: no faster than sensor noise, or within the range the calibration holds
        # still (slips and creeps whose RMS speed passes the floor: a wrist slipping 0.02 rad
        # now and then read 0.024 rad/s against its 0.022 at 100 Hz)
        with np.errstate(invalid='ignore'):
            still = self._q_range[1] - self._q_range[0] < self._small_range
        self.checks.set_pace_speed(np.where(
            still, np.nan, _pace_speed(self._usual_speed(), self.checks.min_speed)))
        if self._calibrator is None:
            self._start_learning(t)
        elif not self._calibrator.ready:
            self._calibrated(None, 'the nominal motion did not give the calibrator enough '
                                   'data; predicting with the URDF model')
        else:
            # the fit window is taken from the learning time: commissioning still ends D
            # after the first sample, live and in a replay
            learn_s = (1.0 - cfg.calibration_fraction) * cfg.commissioning_duration_s
            window = min(cfg.fit_window_s, _MAX_FIT_SHARE * learn_s)
            self._learn_span = learn_s - window
            self.step = 'fit'
            self._fit_due = t + window
            if cfg.calibrate_in_background:
                self._executor = ThreadPoolExecutor(max_workers=1,
                                                    thread_name_prefix='twin_calibration')
                self._future = self._executor.submit(_fit_at_low_priority, self._calibrator)
            else:
                self._fit_result = self._calibrator.fit()

    def _take_over_fit(self, t):
        """Use the calibration at the fit window's end (stamp time), or when it is done."""
        if self._future is None:
            result, self._fit_result = self._fit_result, None
            self._calibrated(result)
        elif self._future.done():
            if self._fit_late:
                self._log('warning', f'the calibration took over {t - self._fit_due:.3f} s of '
                                     'stamp time after its window (a replay takes it over at '
                                     "the window's end; replay with this run's saved file to "
                                     'match it)')
            self._calibrated(self._future.result())
        elif not self._fit_late:
            self._fit_late = True
            self._log('warning', 'the calibration is still fitting at the end of its window: it '
                                 'takes over when done')

    def _learn_block(self, t, blk, x):
        """Record one block for the thresholds (and what it added to the pv_bias sums)."""
        self.fused.learn(t, x)
        self._changed |= blk.repeat_run < blk.samples
        if not blk.lost_in_twin:
            self._pv_steps.append(blk.pv_sum - self.checks.lag_s * blk.pv_dqd)

    def _pv_bias_spread(self):
        """
        Return how far the pv_bias sums reach over hours, estimated from their steps, (n,) rad.

        The position-velocity sum is a leaky sum (``leak_s``, 5 s) of each block's step
        ``c = sum(dq - dt (qd + qd_prev) / 2) - lag dqd``: 20 s of it hold a handful of
        independent values, too few for its spread or its 0.999 quantile (at 100 Hz, where
        the velocity noise integrates to a random walk that dominates the sum, the robots of
        the benchmarks raised false position alarms about three times an hour). The steps
        themselves are many. Two parts make them: readings whose noise telescopes (the
        position's, and a velocity that is the position's difference: the sum holds only the
        newest, variance ``v0``, which makes successive steps correlate by ``-v0``), and what
        accumulates (velocity noise, a bias): the variance of 1 s sums of the steps, leak
        weighted, less the telescoping part's, extrapolated to the leak's whole memory.
        None while fewer than 4 s of steps were recorded.
        """
        steps = np.array(self._pv_steps, dtype=float)
        m = int(round(_PV_WINDOW_S / self.config.block_s))
        if len(steps) < 4 * m:
            return None
        steps = np.where(np.isfinite(steps), steps - np.nanmean(steps, axis=0), 0.0)
        v0 = np.fmax(-np.mean(steps[1:] * steps[:-1], axis=0), 0.0)
        decay = math.exp(-self.config.block_s / self.checks.leak_s)
        windows = lfilter(decay ** np.arange(m), [1.0], steps, axis=0)[m - 1:]
        kept = decay ** (2 * m)
        walk = np.fmax(np.var(windows, axis=0) - (1.0 + kept) * v0, 0.0) / (1.0 - kept)
        return np.sqrt(v0 + walk)

    def _usual_speed(self):
        """Each joint's RMS block speed over the collect step so far (n,), rad/s (NaN: none)."""
        with np.errstate(all='ignore'):
            return np.sqrt(self._speed_sq[0] / self._speed_sq[1])

    def _learn_signals(self):
        """
        Learn the velocity lag, effort noise and moving speed; start recording the channels.

        From the first collect blocks: the velocity lag, the effort noise (flat effort) and
        the moving speed. The model-free channels are recorded from then on.
        """
        self.checks.learn_lag()
        self._lag_learned = True
        n = self.n
        log_d2 = np.array(self._phase1)
        with np.errstate(all='ignore'), warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)     # a joint without any data
            # white noise of std s gives second differences of variance 6 s^2
            sensor_noise = np.sqrt(np.exp(np.nanmedian(log_d2, axis=0)) / 6.0)
        typical = self._usual_speed()                           # (of the warm-up so far)
        sensor_noise = np.nan_to_num(sensor_noise, nan=0.0)
        q_noise, qd_noise = sensor_noise[:n], sensor_noise[n:2 * n]
        noise = np.fmax(sensor_noise[2 * n:], 1e-9)
        # the effort readings of a flat-effort window: a block's, or at a low rate those of
        # the windows that spanned blocks in the warm-up (sensor_checks), for the band of
        # a window mean's difference
        per_window = self.checks.flat_window_readings(
            self.config.block_s / (self.checks.period_s or 1e-3))
        self._flat_window_learned = float(per_window)     # (saved: see _load)
        # moving: faster than a floor, than a fifth of the commissioning motion's RMS speed
        # (a slow approach under a steady load has flat effort too), and than the position
        # noise makes a block's speed look (its two ends, a block apart) or the velocity
        # noise makes one velocity reading, so that a joint at rest with noisy sensors does
        # not count as moving
        min_speed = np.fmax(np.fmax(_MIN_SPEED, _MOVING_SHARE * np.nan_to_num(typical)),
                            _MOVING_SIGMAS * math.sqrt(2.0) * q_noise / self.config.block_s)
        self.checks.set_flat(_FLAT_NOISE_FACTOR * noise,
                             _FLAT_BAND * noise * math.sqrt(2.0 / per_window), min_speed,
                             np.fmax(min_speed, _MOVING_SIGMAS * qd_noise),
                             _FLAT_LEVEL_SHARE * self._effort_peak,
                             _pace_speed(typical, min_speed))
        self._phase1 = []
        self.fused.start_learning()
        self._changed = np.zeros(3 * self.n, dtype=bool)    # signals that ever changed

    def _calibrated(self, result, reason=None):
        """Use a calibration result (None: none) and start learning thresholds."""
        self._cancel_fit()
        event = {'kind': 'calibration_finished', 'accepted': False,
                 'reason': reason or 'no calibration'}
        if result is not None:
            event.update(accepted=bool(result.accepted), reason=str(result.reason),
                         rmse_before=np.asarray(result.rmse_before, dtype=float).tolist(),
                         rmse_after=np.asarray(result.rmse_after, dtype=float).tolist())
            self.calibration = result
            if result.accepted:
                from twin_anomaly.calibration import apply
                try:
                    self.calibrated_model = apply(self.model, result)
                except ValueError as exc:        # parameters the model cannot take
                    self.calibration = None
                    event.update(accepted=False, reason=f'{result.reason}; but not usable: '
                                                        f'{exc}')
        self._log('info' if event['accepted'] else 'warning',
                  f'calibration {"accepted" if event["accepted"] else "not used"}: '
                  f'{event["reason"]}')
        # a robot whose effort convention is not the URDF's (sign, units): say it, whatever
        # the calibration decided, because every effort residual depends on it
        for text in (result.details.get('effort_warnings', []) if result is not None else []):
            self._log('warning', f'commissioning: {text}')
        self._events.append(event)
        self._start_learning(self._last_t)

    def _cancel_fit(self):
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = self._future = None

    def _start_learning(self, t):
        self._set_observer(self.prediction_model())
        self._r_sum.fill(0.0)
        self._rs_sum.fill(0.0)
        self._r_cnt = 0
        self._learn_t0 = t
        self.step = 'learn'

    def _set_observer(self, model):
        """Observe with ``model``; its Coulomb friction bounds what a joint holds at rest."""
        self.observer = MomentumObserver(model, self.config.observer_gain)
        friction = model.friction_model
        static = _STATIC_FRICTION_FACTOR * (np.abs(friction.coulomb) + np.abs(friction.phi1))
        self._static_friction = static
        # A joint held still whose model knows no friction (a gripper's joints in many URDFs)
        # has some all the same: the calibration's prior scale for unknown friction, a share
        # of the effort limit, stands in for it there. Without it such a joint was judged at
        # the observer's 3e-3 N·m floor, and a simulated xArm gripper standing still, whose
        # holding torques crept by 0.008 N·m, raised observer alarms on its finger joints
        # within seconds of monitoring.
        limit = np.asarray(model.effort_limit, dtype=float)
        unknown = np.where(np.isfinite(limit) & (limit > 0.0),
                           _STATIC_FRICTION_FACTOR * COULOMB_PRIOR_FRACTION * limit, 0.0)
        self._held_friction = np.where(static > 0.0, static, unknown)

    def _finish_commissioning(self, t):
        # a signal that never changed (a joint the robot does not report: held at 0) cannot
        # freeze: its frozen-channel check would only count how long it has been constant
        exclude = np.zeros(self._c, dtype=bool)
        d = self._d
        stuck = [JOINT_DETECTORS.index(k) for k in ('stuck_q', 'stuck_qd', 'stuck_tau')]
        for s, col in enumerate(stuck):
            exclude[np.arange(self.n) * d + col] = ~self._changed[s * self.n:(s + 1) * self.n]
        spread = np.full(self._c, np.nan)
        pv = self._pv_bias_spread()
        self._pv_steps.clear()
        if pv is not None:
            spread[np.arange(self.n) * d + JOINT_DETECTORS.index('pv_bias')] = pv
        idle = np.flatnonzero(np.isnan(self.checks.pace_speed))
        if idle.size and self._raw_observer:
            # the observer's values of the joints held still, before their band (see _assemble)
            raw = np.array(self._raw_observer)[:, idle].reshape(-1, 2 * idle.size)
            raw_scale = robust_center_scale(raw)[1].reshape(idle.size, 2)
            for k, detector in enumerate(('gmo', 'fric')):
                spread[idle * d + JOINT_DETECTORS.index(detector)] = raw_scale[:, k]
        self._raw_observer.clear()
        summary = self.fused.finish_learning(exclude, spread)
        self._band_spread = self._spread_by_pace()
        # the whole commissioning motion's effort, not only the warm-up's
        self.checks.flat_min_level = _FLAT_LEVEL_SHARE * self._effort_peak
        self._meta = {'start_stamp': float(self._t0), 'end_stamp': float(t),
                      'learn_start_stamp': float(self._learn_t0),
                      'blocks': int(summary['blocks'])}
        if self._flat_window_learned is not None:
            self._meta['flat_window_readings'] = self._flat_window_learned
        if self.checks.period_s:
            self._meta['sample_rate_hz'] = 1.0 / float(self.checks.period_s)
            self._use_model_for_rate(self._meta['sample_rate_hz'])
        if idle.size:
            held = [self.joint_names[j] for j in idle]
            self._meta['held_still'] = held
            self._log('warning', f'commissioning: {", ".join(held)} did not move (held still '
                                 'by the program): judged by their static friction only; '
                                 'commission again if the program moves them')
        self.step = 'monitor'
        self._saved = False

    @property
    def classifier_name(self):
        """Which classifier names the faults: its ONNX file, ``'rules'``, or its class name."""
        path = getattr(self.classifier, 'path', None)
        if path:
            return str(path)
        return 'rules' if isinstance(self.classifier, RuleClassifier) else \
            type(self.classifier).__name__

    def _use_model_for_rate(self, rate_hz):
        """
        With the packaged models (``model_path`` ``''``), classify with the one for ``rate_hz``.

        The 1 kHz model at or above :data:`~twin_anomaly.classifier.RATE_BAND_BOUNDARY_HZ`,
        the low-rate model below; logged. An explicit model or classifier stays as it is.
        """
        if self._packaged is None:
            return
        name = default_model_path(rate_hz).name
        self.classifier = self._packaged[name]
        self.episode_verdict.min_confidence = self.classifier.min_confidence
        band = 'at or above' if rate_hz >= RATE_BAND_BOUNDARY_HZ else 'below'
        self._log('info', f'fault classifier: {name}, the packaged model for joint states '
                          f'{band} {RATE_BAND_BOUNDARY_HZ:.0f} Hz (this robot streams at '
                          f'{rate_hz:.4g} Hz)')

    # ------------------------------------------------------------------ alarms
    def _judge_episode(self, t):
        """
        Add this block's hypothesis scores to the alarm episode's verdict (monitoring).

        While any group's alarm is raised the classifier scores every block; the episode's
        verdict (:class:`~twin_anomaly.classifier.EpisodeVerdict`) is the hypothesis leading
        their sum, and each change of it is logged and becomes an ``anomaly_verdict`` event.
        Each alarmed joint's own verdict (``EpisodeVerdict.of_joint``, for its status and its
        ``anomaly_raised`` event) is summed the same way from its own raise. The episode ends
        when every alarm has cleared.
        """
        if not self.fused.alarm.any():
            self.episode_verdict.reset()
            self._joint_logged.clear()
            return
        try:
            scores = scores_of(self.classifier, self.evidence())
        except (ClassifierError, ValueError) as exc:
            self._log('error', f'fault classifier failed ({exc}); using the rules')
            self.classifier = RuleClassifier()
            self.episode_verdict.min_confidence = 0.0
            scores = scores_of(self.classifier, self.evidence())
        before = self.episode_verdict.verdict
        changed = self.episode_verdict.add(t, scores, self.fused.alarm[:self.n])
        self._joint_verdict_events(t)
        if not changed:
            return
        verdict = self.episode_verdict.verdict
        since = float(np.nanmin(np.where(self.fused.alarm, self.fused.since, np.nan)))
        self._log('info', f'anomaly verdict {t - self.episode_verdict.start:.2f} s into the '
                          f'alarm: {_named(verdict)} (confidence {verdict.confidence:.2f}), was '
                          f'{_named(before)}')
        self._events.append({
            'kind': 'anomaly_verdict', 'stamp': t, 'since': since,
            'fault_type': verdict.fault_type, 'joint': verdict.joint,
            'confidence': float(verdict.confidence),
            'previous_fault_type': before.fault_type, 'previous_joint': before.joint})

    def _joint_verdict_events(self, t):
        """
        Log an alarmed joint's later naming: an ``anomaly_joint_verdict`` event.

        A joint's own verdict at its raise is in its ``anomaly_raised`` event. When it later
        names another fault type or joint (a surer naming, or a second fault on that joint;
        never ``unknown``), the change is an event too, so that the lifecycle log says what the
        joint's status said.
        """
        logged = self._joint_logged
        for name, previous in logged.items():
            verdict = self.episode_verdict.of_joint(name)    # None: its alarm cleared
            if verdict is None or verdict.fault_type == 'unknown' \
                    or (verdict.fault_type, verdict.joint) == previous:
                continue
            logged[name] = (verdict.fault_type, verdict.joint)
            self._log('info', f'{name}: now {_named(verdict)} (confidence '
                              f'{verdict.confidence:.2f}), was {previous[0]}'
                              + (f' on {previous[1]}' if previous[1] else ''))
            self._events.append({
                'kind': 'anomaly_joint_verdict', 'stamp': t, 'group': name,
                'fault_type': verdict.fault_type, 'joint': verdict.joint,
                'confidence': float(verdict.confidence),
                'previous_fault_type': previous[0], 'previous_joint': previous[1]})

    def _alarm_events(self, t, before):
        now = self.fused.alarm
        for g in np.flatnonzero(now != before):
            name = self.group_names[g]
            if now[g]:
                verdict = self._verdict_of(name)
                if g < self.n:
                    self._joint_logged[name] = (verdict.fault_type, verdict.joint)
                self._events.append({
                    'kind': 'anomaly_raised', 'stamp': t, 'group': name,
                    'since': float(self.fused.since[g]), 'score': float(self.fused.score[g]),
                    'fault_type': verdict.fault_type, 'joint': verdict.joint,
                    'confidence': float(verdict.confidence)})
            else:
                self._joint_logged.pop(name, None)
                self._events.append({'kind': 'anomaly_cleared', 'stamp': t, 'group': name})

    def _verdict_of(self, group):
        """
        Return the verdict an alarmed group reports (its status, its ``anomaly_raised`` event).

        A joint's own verdict (a second fault within an open episode is named on its own
        joint); the episode's for the robot-level groups (``wrench``, ``stream``).
        """
        return self.episode_verdict.of_joint(group) or self.episode_verdict.verdict

    def evidence(self):
        """
        Return the detectors' :class:`~twin_anomaly.classifier.Evidence` now (monitoring).

        Raises
        ------
        RuntimeError
            Still commissioning.

        """
        if not self.commissioned:
            raise RuntimeError('evidence: the monitor is still commissioning')
        fused = self.fused
        n, d = self.n, self._d
        k = n * d
        ratio = fused.ratios.max(axis=0)
        robot = dict.fromkeys(ROBOT_FEATURES, math.nan)
        scale = fused.learned['scale']
        if self._load_factor is not None:      # the deviations judged relative to a payload
            scale = scale * self._load_factor
        i = k
        q = np.asarray(self._q, dtype=float)
        if self._has_wrench:
            robot['wrench_peak'] = float(fused.peak[i:i + 6].max())
            force = fused.ewma[i:i + 3] * scale[i:i + 3]
            rot = self.model.frame_pose(q, self.model.ft_frame)[:3, :3]
            robot['wrench_gravity_cos'] = _cosine(force, rot.T @ np.array([0.0, 0.0, -1.0]))
            i += 6
        robot['missing_peak'] = float(fused.peak[i])
        robot['latency_peak'] = float(fused.peak[i + 2])
        robot['latency_z'] = float(fused.ewma[i + 2])
        gmo = fused.ewma[:k:d] * scale[:k:d]
        unit = self._unit_payload_torque(q)
        robot['payload_cos'] = _cosine(-gmo, unit)
        norm = float(unit @ unit)
        robot['payload_mass_kg'] = float(-gmo @ unit / norm) if norm > 0.0 else 0.0
        robot['episode_s'] = (float(fused.stamp - fused.episode_start)
                              if math.isfinite(fused.episode_start) else 0.0)
        return Evidence(self.joint_names, fused.ewma[:k].reshape(n, d).copy(),
                        ratio[:k].reshape(n, d).copy(), fused.peak[:k].reshape(n, d).copy(),
                        robot)

    def _unit_payload_torque(self, q):
        """Joint torques (n,) N·m that 1 kg more at the payload frame origin needs at ``q``."""
        import pinocchio as pin
        pm = self.model.pin_model
        data = self._pin_data
        if data is None:
            data = self._pin_data = pm.createData()
            self._payload_frame = pm.getFrameId(self.model.payload_frame)
        jac = pin.computeFrameJacobian(pm, data, q, self._payload_frame,
                                       pin.LOCAL_WORLD_ALIGNED)[:3]
        return -jac.T @ np.asarray(pm.gravity.linear)

    _pin_data = None

    # ------------------------------------------------------------------ report
    def report(self):
        """
        Return the state (:class:`~twin_anomaly.detector.DetectorState`) and save if due.

        Call it at the report rate (cheap: the alarm episode's verdict is kept up to date per
        block by :meth:`update`).
        """
        if not self._saved and self.commissioned:
            self._saved = True
            self._events.append({'kind': 'commissioning_finished', 'summary': dict(self._meta),
                                 'calibrated': self.calibrated_model is not None,
                                 'fault_classifier': self.classifier_name})
            self._save()
        stamp = self._last_t if self._last_t is not None else math.nan
        if not self.commissioned:
            joints = tuple(JointStatus(j, 0.0, 1.0, False, 'none', 0.0, math.nan, '', '')
                           for j in self.joint_names)
            message = 'commissioning'
            return DetectorState(stamp, 'commissioning', self.commissioning_progress, 'OK',
                                 message, 0.0, 1.0, None, 'none', math.nan, joints, None, (),
                                 self.dropped_samples + self.checks.lost_in_twin)
        return self._monitoring_state(stamp)

    def _monitoring_state(self, stamp):
        fused = self.fused
        verdict = self.episode_verdict.verdict if fused.alarm.any() else None
        statuses = []
        for gs in fused.group_statuses():
            said = self._verdict_of(gs.name) if gs.alarm else None
            fault, conf = ('none', 0.0) if said is None else (said.fault_type, said.confidence)
            statuses.append(JointStatus(gs.name, gs.score, 1.0, gs.alarm, fault, conf,
                                        gs.since, gs.channel, gs.detector))
        n = self.n
        joints = tuple(statuses[:n])
        wrench = statuses[n] if self._has_wrench else None
        extra = tuple(statuses[n + (1 if self._has_wrench else 0):])
        score = float(fused.score.max())
        unavailable = tuple(name for name, ok in zip(self.fused.names,
                                                     fused.learned['monitored']) if not ok)
        if verdict is None:
            level = 'WARN' if score >= fused.config.warn_ratio else 'OK'
            message = 'nominal' if level == 'OK' else \
                f'elevated residual on {self.group_names[int(np.argmax(fused.score))]}'
            if self._last_t is not None and self._last_t < self._overloaded_until:
                # level unchanged: the twin's own lag is no reason for a corrective action
                message = ('not judging the robot: the twin fell behind and lost '
                           f'{self.checks.lost_in_twin} samples in its own input queue')
            return DetectorState(stamp, 'monitoring', 1.0, level, message, score, 1.0, None,
                                 'none', math.nan, joints, wrench, unavailable,
                                 self.dropped_samples + self.checks.lost_in_twin, 0.0, extra)
        alarmed = [s for s in statuses if s.alarm]
        joint = verdict.joint or None
        if joint is None and verdict.fault_type == 'unknown':
            top = max(alarmed, key=lambda s: s.score)
            joint = top.name if top.name in self.joint_names else None
        where = joint or 'robot'
        message = f'anomaly on {where}: {verdict.fault_type}'
        if len(alarmed) > 1:
            message += f' ({len(alarmed)} groups alarmed)'
        since = min(s.since for s in alarmed)
        return DetectorState(stamp, 'monitoring', 1.0, 'ERROR', message, score, 1.0, joint,
                             verdict.fault_type, since, joints, wrench, unavailable,
                             self.dropped_samples + self.checks.lost_in_twin,
                             float(verdict.confidence), extra)

    def poll_events(self):
        """Return (and forget) the events since the last call, as dicts with a ``kind``."""
        events, self._events = self._events, []
        return events

    def close(self):
        """Stop a background calibration, if one runs; finish a background save."""
        self._cancel_fit()
        saver = getattr(self, '_saver', None)
        if saver is not None:
            saver.join()

    # ------------------------------------------------------------------ persistence
    def _save(self):
        if self.thresholds_file is None:
            return
        doc = {MONITOR_FILE_KEY: {
            'version': FILE_VERSION,
            'saved_at': datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec='seconds'),
            'urdf': None if self.urdf is None else str(self.urdf),
            'joints': list(self.joint_names),
            'settings': {k: getattr(self.config, k) for k in _SETTINGS},
            'commissioning': dict(self._meta),
            'calibration': None if self.calibration is None else self.calibration.to_dict(),
            'sensor_checks': {'lag_s': self.checks.lag_s.tolist(),
                              'flat_tolerance': self.checks.flat_tolerance.tolist(),
                              'flat_band': self.checks.flat_band.tolist(),
                              'min_speed': self.checks.min_speed.tolist(),
                              'min_velocity': self.checks.min_velocity.tolist(),
                              'typical_speed': np.nan_to_num(self.checks.pace_speed).tolist(),
                              'flat_min_level': self.checks.flat_min_level.tolist()},
            'detector': self.fused.to_dict(),
            'observer_spread_by_pace': None if self._band_spread is None else {
                'pace_bands': list(_PACE_BANDS),
                **{det: self._band_spread[k].tolist() for k, det in enumerate(_LOAD_DETECTORS)}},
        }}
        if self.config.calibrate_in_background:
            # the live node: formatting and writing take tens of ms, off the 1 kHz thread
            doc = copy.deepcopy(doc)
            self._saver = threading.Thread(target=self._write, args=(doc,),
                                           name='twin_thresholds_save')
            self._saver.start()
        else:
            self._write(doc)

    def _write(self, doc):
        path = self.thresholds_file
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text('# robot_twin anomaly monitor: calibration and thresholds\n'
                            + yaml.safe_dump(_plain(doc), sort_keys=False))
            self._log('info', f'commissioning done; calibration and thresholds saved to {path}')
        except OSError as exc:
            self._log('error', f'cannot save thresholds to {path}: {exc}')

    def _load(self, path):
        try:
            raw = load_yaml(Path(path).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ThresholdsError(f'{path}: cannot read ({exc})') from None
        doc = raw.get(MONITOR_FILE_KEY) if isinstance(raw, dict) else None
        if not isinstance(doc, dict):
            raise ThresholdsError(f'{path}: not an anomaly monitor file (no '
                                  f'{MONITOR_FILE_KEY!r}; an older thresholds file?)')
        if doc.get('version') != FILE_VERSION:
            raise ThresholdsError(f'{path}: version {doc.get("version")!r}, expected '
                                  f'{FILE_VERSION}')
        if doc.get('joints') != list(self.joint_names):
            raise ThresholdsError(f'{path}: learned for joints {doc.get("joints")}, this robot '
                                  f'has {list(self.joint_names)}; re-commission')
        settings = doc.get('settings') or {}
        for key in _SETTINGS:
            saved, here = settings.get(key), getattr(self.config, key)
            same = isinstance(saved, (int, float)) and math.isclose(saved, here, rel_tol=1e-9)
            if not same:
                raise ThresholdsError(f'{path}: learned with {key}={saved}, this monitor has '
                                      f'{key}={here}; re-commission or set it back')
        try:
            checks = doc['sensor_checks']
            lag = np.asarray(checks['lag_s'], dtype=float)
            tol = np.asarray(checks['flat_tolerance'], dtype=float)
            band = np.asarray(checks['flat_band'], dtype=float)
            speed = np.asarray(checks['min_speed'], dtype=float)
            velocity = np.asarray(checks['min_velocity'], dtype=float)
            level = np.asarray(checks['flat_min_level'], dtype=float)
            typical = np.asarray(checks['typical_speed'], dtype=float)
            if any(a.shape != (self.n,) for a in (lag, tol, band, speed, velocity, level,
                                                  typical)):
                raise ValueError('sensor_checks arrays must have one value per joint')
            self.fused.load_dict(doc['detector'])
            band_spread = _load_spread_by_pace(doc.get('observer_spread_by_pace'), self.n)
            calibration = None
            if doc.get('calibration') is not None:
                from twin_anomaly.calibration import CalibrationResult
                calibration = CalibrationResult.from_dict(doc['calibration'])
        except (KeyError, TypeError, ValueError) as exc:
            raise ThresholdsError(f'{path}: malformed ({exc}); re-commission') from None
        self.checks = SensorChecks(self.n, self.config.leak_s)
        self.checks.lag_s = lag
        self.checks.set_flat(tol, band, speed, velocity, level, _pace_speed(typical, speed))
        self._lag_learned = True
        self._band_spread = band_spread
        self.calibration = calibration
        self.calibrated_model = None
        if calibration is not None and calibration.accepted:
            from twin_anomaly.calibration import apply
            self.calibrated_model = apply(self.model, calibration)
        self._set_observer(self.prediction_model())
        self._meta = dict(doc.get('commissioning') or {})
        learned_hz = self._meta.get('sample_rate_hz')
        if isinstance(learned_hz, (int, float)) and math.isfinite(learned_hz) and learned_hz > 0:
            self._rate_probe = {'learned_hz': float(learned_hz), 'steps': []}
            # (a stream at another rate commissions again, and picks again at its end)
            self._use_model_for_rate(float(learned_hz))
        else:
            self._log('warning', f'{path} does not say the sample rate it was learned at: '
                                 "after a change of the robot's rate, re-commission")
        self.step = 'monitor'
        self._saved = True
        self._t0 = self._last_t = self._learn_t0 = None
        self._calibrator = None
        self._reset_block()


def _load_spread_by_pace(doc, n):
    """
    Return the saved observer spreads by pace (see ``AnomalyMonitor._spread_by_pace``).

    None for a file saved before they were learned: its robot is judged without them (as
    then) until it is commissioned again.
    """
    if doc is None:
        return None
    if list(doc.get('pace_bands', [])) != list(_PACE_BANDS):
        raise ValueError('observer_spread_by_pace: other pace bands')
    spread = np.array([doc[det] for det in _LOAD_DETECTORS], dtype=float)
    if spread.shape != (len(_LOAD_DETECTORS), len(_PACE_BANDS) + 1, n) \
            or not np.all(np.isfinite(spread) & (spread >= 1.0)):
        raise ValueError('observer_spread_by_pace: one factor >= 1 per detector, band, joint')
    return spread


def _pace_speed(typical, min_speed):
    """
    Return the usual speeds (n,) the checks pace by: ``typical`` where a joint moved, else NaN.

    ``typical``: each joint's RMS block speed in commissioning; ``min_speed``: the slowest
    block speed that counts as moving. A joint below it was held still by the program (its
    RMS speed is its sensor noise): it has no pace, it does not tell the speed override, and
    its observer allows its static friction (``AnomalyMonitor._assemble``).
    """
    with np.errstate(invalid='ignore'):
        return np.where(np.asarray(typical) > np.asarray(min_speed), typical, np.nan)


def _override_weight(override, start):
    """How far (n,) a speed override below ``start`` is toward ``_FULL_OVERRIDE``, in [0, 1]."""
    return np.clip((start - override) / (start - _FULL_OVERRIDE), 0.0, 1.0)


def _fit_at_low_priority(calibrator):
    """
    Fit in this worker thread at the lowest CPU priority (Linux: per thread).

    The fit takes seconds of CPU once; beside the robot's own processes and the twin's 1 kHz
    thread it must come last.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):    # not Linux, or not allowed: fit at normal priority
        pass
    return calibrator.fit()


def _carried(inertia):
    """
    Return (3,) the mass (kg), first moment (kg·m) and inertia (kg·m^2) a sensor carries.

    ``inertia`` is a pinocchio ``Inertia`` in the sensor frame (what is distal to it); the
    inertia is the trace of the rotational inertia about the sensor's origin.
    """
    mass, lever = float(inertia.mass), np.asarray(inertia.lever, dtype=float)
    about = np.trace(inertia.inertia) + 2.0 * mass * float(lever @ lever)
    return np.array([mass, mass * float(np.linalg.norm(lever)), about])


def _named(verdict):
    """Return a verdict as text: ``'friction_increase on joint3'``, ``'dropout'``."""
    return verdict.fault_type + (f' on {verdict.joint}' if verdict.joint else '')


def _cosine(a, b):
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(a @ b / (na * nb)) if na > 0.0 and nb > 0.0 else 0.0


def _plain(value):
    """Make a document YAML-safe: numpy values and tuples to plain Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        return value.item()
    return value
