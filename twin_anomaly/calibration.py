"""
Commissioning calibration: identify the robot the twin watches, with its URDF as the prior.

While the robot runs its nominal motion, :meth:`Calibrator.add` collects samples cheaply (it
is called at the robot's rate, 1 kHz typical: it only adds the sample into block sums and,
once per block of ``1 / sample_rate_hz``, writes the block mean into preallocated arrays).
:meth:`Calibrator.fit` then identifies base inertial parameters, viscous and Coulomb friction,
rotor inertia (armature) and effort offsets with :func:`twin_sim.sysid.identify`, starting
from the model's parameters as the prior (directions the motion does not excite stay at the
prior), checks the fit on a held-out tail of the data, and returns a
:class:`CalibrationResult` that says whether it is accepted (it is not when it predicts the
held-out part worse than the prior) and why.

Contract (for the anomaly monitor and the mirror)::

    cal = Calibrator(model, CalibrationConfig())   # model: twin_sim.urdf_model.RobotModel
    cal.add(t, q, qd, effort)     # every sample; (n,) model order; s, rad, rad/s, N·m
    cal.ready, cal.progress       # enough data to fit? fraction of min_duration_s collected
    result = cal.fit()            # seconds; run it off the 1 kHz path; never raises on data
    result.accepted               # bool
    result.params                 # params.yaml document (dict), see apply()
    result.rmse_before, result.rmse_after   # (n,) N·m on the held-out part (NaN: not fitted)
    result.reason                 # why accepted or not, one line
    result.to_dict(), CalibrationResult.from_dict(d)   # plain YAML/JSON-able data
    model2 = apply(model, result) # copy of the model predicting with the calibration
    save_result(path, result), load_result(path)       # YAML files

A rejected result's ``params`` still hold the identified values (for inspection);
:func:`apply` ignores them and returns an unchanged copy. Rotor inertia is the ``armature``
section of ``params``; :meth:`twin_sim.urdf_model.RobotModel.apply_parameters` puts it into
``pin_model.armature``, which pinocchio's RNEA and ABA (so the mirror's predictor) include.
The fit predicts the block means the calibrator stored; ``rmse_before``/``rmse_after`` are
against the stored effort (block means, not low-passed), on the last ``1 - train_fraction``
of the collected time.
"""
from dataclasses import asdict, dataclass, field
import math
import time
import warnings

import numpy as np
from twin_sim.yaml_numbers import load_yaml

__all__ = ['apply', 'CalibrationConfig', 'CalibrationResult', 'Calibrator', 'load_result',
           'save_result', 'RESULT_VERSION']

RESULT_VERSION = 1
_FILE_KEY = 'robot_twin_calibration'


@dataclass(frozen=True)
class CalibrationConfig:
    """
    Settings of :class:`Calibrator`.

    Attributes
    ----------
    min_duration_s : float
        Collected stamp time (s) from which :attr:`Calibrator.ready` is true.
    max_duration_s : float
        Collection capacity (s); later samples are not stored.
    sample_rate_hz : float
        Rate of the stored block means, Hz (the robot's samples are averaged into blocks of
        ``1 / sample_rate_hz``: cheap, and an anti-alias filter for the fit's 10 Hz band).
    train_fraction : float
        The first part of the collected time is fitted, the rest held out, in (0, 1).
    cutoff_hz : float
        Low-pass cut-off of the fit's zero-phase filter (velocities, accelerations), Hz.
    friction : str
        ``'viscous-coulomb'`` (with offset) or ``'sigmoid'``.
    armature : bool
        Identify rotor inertia.
    regularization : str or float
        ``'cv'`` (the prior's weight chosen by cross-validation) or a fixed weight.
    relative_tolerance, absolute_tolerance : float
        Per-joint slack of the acceptance test (fraction, N·m): see
        :func:`twin_sim.sysid_ridge.acceptance`.

    """

    min_duration_s: float = 10.0
    max_duration_s: float = 120.0
    sample_rate_hz: float = 200.0
    train_fraction: float = 0.7
    cutoff_hz: float = 10.0
    friction: str = 'viscous-coulomb'
    armature: bool = True
    regularization: object = 'cv'
    relative_tolerance: float = 0.1
    absolute_tolerance: float = 0.01

    def __post_init__(self):
        positive = ('min_duration_s', 'max_duration_s', 'sample_rate_hz', 'cutoff_hz')
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f'CalibrationConfig.{name} must be a number > 0, got '
                                 f'{value!r}')
        if self.max_duration_s < self.min_duration_s:
            raise ValueError(f'CalibrationConfig.max_duration_s ({self.max_duration_s}) must '
                             f'be >= min_duration_s ({self.min_duration_s})')
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f'CalibrationConfig.train_fraction must be in (0, 1), got '
                             f'{self.train_fraction!r}')
        if self.friction not in ('viscous-coulomb', 'sigmoid'):
            raise ValueError(f"CalibrationConfig.friction must be 'viscous-coulomb' or "
                             f"'sigmoid', got {self.friction!r}")
        reg = self.regularization
        if reg != 'cv' and not (isinstance(reg, (int, float)) and reg >= 0):
            raise ValueError(f"CalibrationConfig.regularization must be 'cv' or a number >= 0, "
                             f'got {reg!r}')
        for name in ('relative_tolerance', 'absolute_tolerance'):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f'CalibrationConfig.{name} must be >= 0')


@dataclass
class CalibrationResult:
    """
    Outcome of :meth:`Calibrator.fit`.

    Attributes
    ----------
    accepted : bool
        The identified model predicts the held-out data at least as well as the prior.
    reason : str
        Why it was or was not accepted (figures included).
    joint_names : list of str, length n
        Model joint order.
    rmse_before, rmse_after : (n,) N·m
        Held-out torque RMSE of the prior and of the identified model (NaN: joint not fitted).
    params : dict
        The identified parameters as a params.yaml document (``{'robot_twin_dynamics': ...}``,
        ``armature`` section included); empty when the fit did not run.
    duration_s : float
        Stamp time collected, s.
    samples : int
        Block means the fit used.
    fit_time_s : float
        Wall time of :meth:`Calibrator.fit`, s.
    details : dict
        Condition number, the prior's weights, prior source, warnings.

    """

    accepted: bool
    reason: str
    joint_names: list
    rmse_before: np.ndarray
    rmse_after: np.ndarray
    params: dict = field(default_factory=dict)
    duration_s: float = 0.0
    samples: int = 0
    fit_time_s: float = 0.0
    details: dict = field(default_factory=dict)

    def to_dict(self):
        """Return plain data (YAML/JSON-able; NaN as None)."""
        out = asdict(self)
        out['version'] = RESULT_VERSION
        for key in ('rmse_before', 'rmse_after'):
            out[key] = [None if not math.isfinite(v) else float(v)
                        for v in np.asarray(getattr(self, key), dtype=float)]
        return out

    @classmethod
    def from_dict(cls, data):
        """
        Rebuild from :meth:`to_dict` output.

        Raises
        ------
        ValueError
            A missing or malformed field, or another version (the message names it).

        """
        if not isinstance(data, dict):
            raise ValueError(f'a calibration result must be a mapping, got {type(data).__name__}')
        if data.get('version') != RESULT_VERSION:
            raise ValueError(f'calibration result version {data.get("version")!r} is not '
                             f'supported (expected {RESULT_VERSION})')
        try:
            names = [str(j) for j in data['joint_names']]
            arrays = {k: np.array([np.nan if v is None else float(v) for v in data[k]])
                      for k in ('rmse_before', 'rmse_after')}
            params = data['params']
            out = cls(bool(data['accepted']), str(data['reason']), names,
                      arrays['rmse_before'], arrays['rmse_after'], params,
                      float(data['duration_s']), int(data['samples']),
                      float(data['fit_time_s']), dict(data.get('details') or {}))
        except (KeyError, TypeError) as exc:
            raise ValueError(f'malformed calibration result: {exc!r}') from None
        for key, values in arrays.items():
            if values.shape != (len(names),):
                raise ValueError(f'calibration result {key} has {values.size} values for '
                                 f'{len(names)} joints')
        if not isinstance(params, dict) or (out.accepted and not params):
            raise ValueError('calibration result params must be a params.yaml mapping')
        return out


class Calibrator:
    """
    Collect nominal samples cheaply, then identify the robot toward its model (the prior).

    Parameters
    ----------
    model : twin_sim.urdf_model.RobotModel
        The twin's model: the prior (URDF, or identified parameters already applied; a payload
        it carries is kept out of the written bodies). The calibrator keeps its own copy.
    config : CalibrationConfig, optional

    Attributes
    ----------
    samples_seen : int
        Samples given to :meth:`add`.
    blocks_dropped : int
        Blocks left out because a value in them was not finite.
    stamps_back : int
        Samples older than the current block (restarted or reordered stream), left out.

    """

    def __init__(self, model, config=None):
        self.config = CalibrationConfig() if config is None else config
        if not isinstance(self.config, CalibrationConfig):
            raise TypeError(f'config must be a CalibrationConfig, got '
                            f'{type(self.config).__name__}')
        self.model = model.copy()
        self.n = n = model.n
        self._block = 1.0 / self.config.sample_rate_hz
        capacity = int(math.ceil(self.config.max_duration_s * self.config.sample_rate_hz)) + 2
        self._t = np.empty(capacity)
        self._data = np.empty((capacity, 3, n))     # per block: q, qd, effort
        self._sum = np.zeros((3, n))
        self._q_sum, self._qd_sum, self._e_sum = self._sum
        self._t_sum = 0.0
        self._count = 0
        self._block_t0 = None
        self._stored = 0
        self._full = False
        self.samples_seen = 0
        self.blocks_dropped = 0
        self.stamps_back = 0

    # ------------------------------------------------------------------ the 1 kHz path
    def add(self, t, q, qd, effort):
        """
        Take one robot sample (cheap: block sums; a block mean is stored once per block).

        Parameters
        ----------
        t : float
            Stamp, s.
        q, qd, effort : (n,) arrays
            Position (rad), velocity (rad/s) and effort (N·m), model order. Not copied.

        Returns
        -------
        bool
            False once the capacity is reached (nothing more is stored).

        Raises
        ------
        ValueError
            An array that is not (n,) (checked on the first sample of each block).

        """
        if self._full:
            return False
        self.samples_seen += 1
        t0 = self._block_t0
        if t0 is None or t - t0 >= self._block:
            self._check(q, qd, effort)
            if t0 is not None:
                self._close_block()
            self._block_t0 = t
        elif t < t0:
            self.stamps_back += 1
            return True
        self._q_sum += q
        self._qd_sum += qd
        self._e_sum += effort
        self._t_sum += t
        self._count += 1
        return True

    def _check(self, q, qd, effort):
        for name, value in (('q', q), ('qd', qd), ('effort', effort)):
            if np.shape(value) != (self.n,):
                raise ValueError(f'{name} must have shape ({self.n},) in model joint order '
                                 f'{self.model.joint_names}; got shape {np.shape(value)}')

    def _close_block(self):
        k = self._count
        if k:
            mean = self._sum / k
            if np.isfinite(mean).all() and math.isfinite(self._t_sum):
                i = self._stored
                self._t[i] = self._t_sum / k
                self._data[i] = mean
                self._stored = i + 1
                self._full = self._stored >= len(self._t)
            else:
                self.blocks_dropped += 1
        self._sum.fill(0.0)
        self._t_sum = 0.0
        self._count = 0

    # ------------------------------------------------------------------ progress
    @property
    def duration_s(self):
        """Stamp time covered by the stored blocks, s."""
        return float(self._t[self._stored - 1] - self._t[0]) if self._stored > 1 else 0.0

    @property
    def progress(self):
        """Fraction of ``min_duration_s`` collected, in [0, 1]."""
        return min(1.0, self.duration_s / self.config.min_duration_s)

    @property
    def ready(self):
        """Whether enough nominal motion has been collected to fit."""
        return self.duration_s >= self.config.min_duration_s

    @property
    def full(self):
        """Whether the capacity (``max_duration_s``) is reached."""
        return self._full

    def reset(self):
        """Forget every collected sample."""
        self._stored = 0
        self._full = False
        self._sum.fill(0.0)
        self._t_sum = 0.0
        self._count = 0
        self._block_t0 = None
        self.samples_seen = self.blocks_dropped = self.stamps_back = 0

    # ------------------------------------------------------------------ fitting
    def fit(self):
        """
        Identify the robot from the collected samples and check it on the held-out part.

        Returns
        -------
        CalibrationResult
            Not accepted (with the reason) when there is too little data, identification
            cannot use the data, or the fit predicts the held-out part worse than the prior.

        """
        t_start = time.perf_counter()
        names = list(self.model.joint_names)
        if not self.ready:
            return self._not_fitted(
                f'only {self.duration_s:.1f} s of nominal motion collected, '
                f'{self.config.min_duration_s:g} s needed', t_start)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            try:
                result = self._identify(names)
            except (ValueError, np.linalg.LinAlgError) as exc:  # SysIdError is a ValueError
                return self._not_fitted(f'identification could not use the data: {exc}',
                                        t_start, [str(w.message) for w in caught])
        return self._result(result, names, time.perf_counter() - t_start)

    def _identify(self, names):
        from twin_sim.logdata import LogData, prepare_log
        from twin_sim.sysid import identify, prior_from_robot

        cfg = self.config
        k = self._stored
        data = self._data[:k]
        log = LogData(self._t[:k].copy(), names, data[:, 0].copy(), data[:, 1].copy(),
                      data[:, 2].copy(), 'commissioning')
        processed = prepare_log(log, names, cutoff_hz=cfg.cutoff_hz)
        prior = prior_from_robot(self.model, 'twin model (URDF'
                                 + (' with a payload)' if self.model.payload else ')'))
        return identify(self.model.pin_model, processed, prior=prior,
                        friction=cfg.friction, train_fraction=cfg.train_fraction,
                        armature=cfg.armature, regularization=cfg.regularization,
                        lock_still_joints=True, progress=False,
                        relative_tolerance=cfg.relative_tolerance,
                        absolute_tolerance=cfg.absolute_tolerance)

    def _not_fitted(self, reason, t_start, notes=()):
        nan = np.full(self.n, np.nan)
        return CalibrationResult(False, reason, list(self.model.joint_names), nan, nan.copy(),
                                 {}, self.duration_s, self._stored,
                                 time.perf_counter() - t_start, {'warnings': list(notes)})

    def _result(self, result, names, fit_s):
        from twin_sim.sysid import parameters_document

        doc = parameters_document(result)
        bodies = doc['robot_twin_dynamics']['bodies']
        for joint, delta in _payload_share(self.model).items():
            values = np.asarray(bodies[joint]['dynamic_parameters']) - delta
            bodies[joint]['dynamic_parameters'] = [float(v) for v in values]
        doc['robot_twin_dynamics']['urdf'] = str(self.model.urdf_path)
        details = {'condition_number': float(result.condition_number),
                   'regularization': {k: v if isinstance(v, str) else float(v)
                                      for k, v in result.regularization.items()},
                   'consistency': result.consistency['method'],
                   'train_samples': int(result.n_train), 'test_samples': int(result.n_test),
                   'blocks_dropped': int(self.blocks_dropped),
                   'stamps_back': int(self.stamps_back),
                   'warnings': list(result.warnings),
                   'effort_warnings': [d['warning'] for d in
                                       result.info.get('effort_vs_prior', {}).values()
                                       if d['warning']]}
        return CalibrationResult(bool(result.accepted), result.decision['reason'], names,
                                 result.rmse('before'), result.rmse('after'), doc,
                                 self.duration_s, self._stored, fit_s, details)


def _payload_share(model):
    """Per joint, the part (10,) of the body's dynamic parameters that is the payload."""
    if model.payload is None:
        return {}
    from twin_sim.sysid import nominal_parameters

    with_payload = nominal_parameters(model.pin_model)
    own = model.dynamic_parameters()['robot_twin_dynamics']['bodies']
    out = {}
    for i, joint in enumerate(model.joint_names):
        delta = with_payload[10 * i:10 * i + 10] - np.asarray(own[joint]['dynamic_parameters'])
        if np.any(np.abs(delta) > 0.0):
            out[joint] = delta
    return out


def apply(model, result):
    """
    Return a copy of ``model`` that predicts with an accepted calibration.

    Parameters
    ----------
    model : twin_sim.urdf_model.RobotModel
        The twin's model (the one the calibration started from).
    result : CalibrationResult
        An accepted result gives its parameters (bodies, friction, offsets, rotor inertia);
        a rejected one leaves the copy unchanged.

    Raises
    ------
    ValueError
        The result was made for other joints, or its parameters are malformed
        (:class:`twin_sim.urdf_model.ParametersError`).

    """
    if list(result.joint_names) != list(model.joint_names):
        raise ValueError(f'the calibration is for joints {result.joint_names}, the model has '
                         f'{model.joint_names}')
    out = model.copy()
    if result.accepted:
        out.apply_parameters(result.params)
    return out


def save_result(path, result):
    """Write a :class:`CalibrationResult` as YAML (``{robot_twin_calibration: ...}``)."""
    import yaml

    with open(path, 'w', encoding='utf-8') as f:
        yaml.safe_dump({_FILE_KEY: result.to_dict()}, f, sort_keys=False)


def load_result(path):
    """
    Read a :class:`CalibrationResult` written by :func:`save_result`.

    Raises
    ------
    ValueError
        Not such a file, or a malformed one (the message names the path and the problem).

    """
    import yaml

    try:
        with open(path, encoding='utf-8') as f:
            doc = load_yaml(f)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f'cannot read calibration {path}: {exc}') from None
    if not isinstance(doc, dict) or _FILE_KEY not in doc:
        raise ValueError(f'{path}: no {_FILE_KEY!r} mapping; not a calibration file')
    try:
        return CalibrationResult.from_dict(doc[_FILE_KEY])
    except ValueError as exc:
        raise ValueError(f'{path}: {exc}') from None
