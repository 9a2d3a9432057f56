"""
What-if runs: N domain-randomized variants of a scenario, and how their results spread.

A what-if scenario (``config/whatif/<name>.yaml``)::

    name: payload_sweep
    description: Unknown payloads of 0..5 kg on the tool.
    duration_s: 8.0                 # simulated time per variant, s
    dt: 0.001                       # plant step, s (optional)
    sample_rate_hz: 1000            # rate the robot sends samples to the twin (default 1 / dt)
    control_rate_hz: 1000           # pybullet engine: rate of the arm's position controller
                                    # (default 1 / dt; e.g. 250: torque recomputed every 4th
                                    # step, held between)
    engine: mujoco                  # the robot's physics: mujoco (default: engine-speed
                                    # samples, robot_twin/whatif_engine.py) or pybullet (the
                                    # plant stepped in Python with the twin and detector live)
    trajectory:                     # what the arm does (position control)
      type: demo_motion             # demo_motion | csv | hold
      fraction: 0.3                 # demo_motion: share of the joint and velocity limits
      period_s: 4.0                 # demo_motion: period, s
      fade_in_s: 1.0                # demo_motion: smooth start, s
      seed: 0                       # demo_motion: phases and harmonics
      center: [0, 0.5, 0, -1, 0, 0.6, 0]  # demo_motion: centre pose, one value per joint or
                                          # {joint: position} (others and default: mid-range)
      # csv:  path: excitation.csv  (time,<joint>.position[,<joint>.velocity[,.acceleration]],
      #                              relative to this file; `robot-twin excite` writes one)
      # hold: q: [...]              (hold a pose; default zeros clipped into the limits)
    faults: null                    # a fault scenario: name in config/faults, path, or inline
                                    # ({name, faults: [...]} or just the list of faults)
    randomization:                  # ranges around the URDF / identified parameters
      file: default                 # name in config/randomization, or path
      overrides: {payload: {mass_kg: [0.0, 5.0]}}
    twin:
      payload: nominal              # nominal: the twin does not know the variant's payload;
                                    # variant: it does
    detector:                       # twin_anomaly.detector.DetectorConfig fields
      commissioning_duration_s: 3.0 # learned on the first part of every variant's run
    record_rate_hz: 50              # time series kept for the plots, Hz (divides 1 / dt)

One *sample* (:func:`run_sample`) draws variant ``i`` of the seed
(:meth:`~twin_sim.randomization.RandomizationSpec.sample`), builds a
:class:`~twin_sim.plant.Plant` from the variant's URDF (bodies, friction, effort and velocity
limits; the simulated world clips torques at the effort limits, it does not enforce velocity
limits) with the variant's payload and the scenario's faults, drives it along the trajectory
(position control), adds the variant's white sensor noise, and runs the live twin's own
residual pipeline on what comes out: :class:`~twin_sim.mirror.Mirror` with the *nominal* (or
identified) model, and a :class:`~twin_anomaly.detector.ResidualDetector` that commissions on
the first ``commissioning_duration_s`` of the run and then monitors. It records per-joint
torque RMS and peak, tracking error RMS and maximum, effort residual RMS, the largest anomaly
score after commissioning and the first alarm. The variant's measurement delay is a latency:
samples keep their stamps and order (as the plant's ``delay`` fault does), so residuals are
unchanged and the alarm is raised ``delay_s`` later.

:func:`run_whatif` runs the samples on local processes (``concurrent.futures`` with the
``forkserver`` start method; each process has its own PyBullet clients) or on a Ray cluster,
and :func:`summarize` gives p5/p50/p95 across the samples. A sample depends only on
``(seed, index)``, so the summary is the same for any number of workers.
:func:`nominal_residual_samples` gives the residuals of fault-free variants, the data an anomaly
detector learns "normal" from across the randomized range.
"""
import concurrent.futures
import csv
from dataclasses import asdict, dataclass, field, fields, replace
import hashlib
import json
import math
import multiprocessing
import os
from pathlib import Path
import tempfile
import time
import warnings

import numpy as np
from twin_sim import resources
from twin_sim.randomization import DEFAULT_RANDOMIZATION, load_randomization, \
    NominalDynamics, RandomizationError, RandomizationSpec, write_variant_urdf
from twin_sim.yaml_numbers import load_yaml
import yaml

__all__ = [
    'WhatIfError', 'WhatIfScenario', 'SampleResult', 'WhatIfResult', 'ResidualTrace',
    'load_scenario', 'scenario_from_dict', 'prepare', 'reference_trajectory', 'run_sample',
    'run_whatif', 'summarize', 'write_outputs', 'format_table', 'nominal_residual_samples',
    'scenario_residual_traces', 'PERCENTILES', 'SampleFailure', 'ENGINES', 'with_engine',
    'faulted_channels',
]

_TRAJECTORY_TYPES = ('demo_motion', 'csv', 'hold')
_TOP_FIELDS = ('name', 'description', 'duration_s', 'dt', 'trajectory', 'faults',
               'randomization', 'twin', 'detector', 'record_rate_hz', 'sample_rate_hz',
               'control_rate_hz', 'engine')
#: Physics engines of the simulated robot (the twin's own world is always PyBullet).
ENGINES = ('mujoco', 'pybullet')
_DEMO_FIELDS = {'fraction': 0.3, 'period_s': 4.0, 'fade_in_s': 1.0, 'harmonics': 2, 'seed': 0,
                'center': None}
#: Percentiles reported across samples.
PERCENTILES = (5, 50, 95)


class WhatIfError(ValueError):
    """A what-if scenario, option or run is unusable; the message says what and how to fix it."""


# ---------------------------------------------------------------------------------------------
# Scenario files
# ---------------------------------------------------------------------------------------------

@dataclass
class WhatIfScenario:
    """
    A validated what-if scenario (see the module docstring for the file format).

    Attributes
    ----------
    name, description, source : str
    duration_s : float, s
        Simulated time per variant.
    dt : float, s
        Plant step.
    trajectory : dict
        ``{'type': 'demo_motion', fraction, period_s, fade_in_s, harmonics, seed, center}``,
        ``{'type': 'csv', 'path': Path}`` or ``{'type': 'hold'}``.
    faults : dict or None
        The fault scenario as a mapping (:meth:`twin_sim.faults.FaultScenario.to_dict`).
    randomization : RandomizationSpec
        Ranges, with the scenario's overrides merged in.
    randomization_source : str
        Where the ranges came from.
    twin_payload : str
        ``'nominal'`` (the twin's model has no payload) or ``'variant'`` (it has the variant's).
    detector : dict
        :class:`~twin_anomaly.detector.DetectorConfig` fields.
    record_rate_hz : float, Hz
        Rate of the recorded time series: every ``round(1 / (record_rate_hz dt))``-th plant
        step (a rate given in the file must divide ``1 / dt``).
    sample_rate_hz : float or None, Hz
        Rate at which the robot sends samples to the twin: every ``1 / (sample_rate_hz dt)``-th
        plant step (None: every step).
    control_rate_hz : float or None, Hz
        Rate of the simulated arm's computed-torque position controller: its torque is
        recomputed every ``1 / (control_rate_hz dt)``-th plant step and held in between
        (:class:`~twin_sim.world.SimWorld` ``control_period_steps``; its bandwidth scales
        with the rate). None (default): every step, the full-fidelity 1 kHz loop. A lower
        rate is a different (slower) drive, not only a faster simulation: tracking errors
        and torque ripple change. ``pybullet`` engine only.
    engine : str
        ``'mujoco'`` (the robot in MuJoCo with the engine's PID + feed-forward drive; the twin
        and detector run over the recorded samples) or ``'pybullet'`` (the plant and the live
        twin stepped together in Python, the original path).

    """

    name: str
    duration_s: float
    trajectory: dict
    randomization: RandomizationSpec
    description: str = ''
    dt: float = 0.001
    faults: dict = None
    randomization_source: str = DEFAULT_RANDOMIZATION
    twin_payload: str = 'nominal'
    detector: dict = field(default_factory=dict)
    record_rate_hz: float = 50.0
    sample_rate_hz: float = None
    control_rate_hz: float = None
    engine: str = 'mujoco'
    source: str = '<dict>'

    @property
    def sample_every(self):
        """Plant steps per sample sent to the twin."""
        if self.sample_rate_hz is None:
            return 1
        return max(1, int(round(1.0 / (self.sample_rate_hz * self.dt))))

    @property
    def control_every(self):
        """Plant steps per update of the arm's position controller."""
        if self.control_rate_hz is None:
            return 1
        return max(1, int(round(1.0 / (self.control_rate_hz * self.dt))))

    @property
    def steps(self):
        """Return the number of plant steps per sample."""
        return int(round(self.duration_s / self.dt))

    @property
    def commissioning_s(self):
        """Commissioning time of each sample's detector, s."""
        from twin_anomaly.detector import DetectorConfig
        return float(self.detector.get('commissioning_duration_s',
                                       DetectorConfig().commissioning_duration_s))

    def fault_start_s(self):
        """Earliest fault start in the scenario, s (None without faults)."""
        if not self.faults or not self.faults.get('faults'):
            return None
        return min(float(f['start_s']) for f in self.faults['faults'])

    @property
    def fault_during_commissioning(self):
        """Whether a fault starts before the detector's commissioning ends (it learns it)."""
        start = self.fault_start_s()
        return start is not None and start < self.commissioning_s


def _number(value, where, low=None, strictly=False, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value):
        raise WhatIfError(f'{where}: must be a finite number, got {value!r}')
    if integer and int(value) != value:
        raise WhatIfError(f'{where}: must be an integer, got {value!r}')
    if low is not None and (value <= low if strictly else value < low):
        raise WhatIfError(f'{where}: must be {">" if strictly else ">="} {low}, got {value!r}')
    return int(value) if integer else float(value)


def _resolve(name, where, base_dir, folder, kind):
    """
    Resolve a file reference: a path, or the name of a packaged file in config/<folder>/.

    A relative path is looked up relative to ``base_dir``, then to the current directory.
    """
    if not isinstance(name, str) or not name:
        raise WhatIfError(f'{where}: must be a file path or a name, got {name!r}')
    path = Path(name).expanduser()
    for candidate in [path] if path.is_absolute() else [base_dir / path, Path.cwd() / path]:
        if candidate.is_file():
            return candidate.resolve()
    try:
        return Path(resources.named_config(name, folder, kind)).resolve()
    except FileNotFoundError as exc:
        raise WhatIfError(f'{where}: {exc} (paths are relative to {base_dir})') from None


def _parse_trajectory(data, where, base_dir):
    if isinstance(data, str):
        data = {'type': data}
    if not isinstance(data, dict):
        raise WhatIfError(f'{where}: must be a mapping with a type '
                          f'({", ".join(_TRAJECTORY_TYPES)}), got {data!r}')
    kind = data.get('type')
    if kind not in _TRAJECTORY_TYPES:
        raise WhatIfError(f'{where}.type: must be one of {", ".join(_TRAJECTORY_TYPES)}, got '
                          f'{kind!r}')
    allowed = {'type'} | (set(_DEMO_FIELDS) if kind == 'demo_motion' else
                          {'path'} if kind == 'csv' else {'q'})
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise WhatIfError(f'{where}: unknown field(s) {unknown} for type {kind}; allowed: '
                          f'{sorted(allowed)}')
    out = {'type': kind}
    if kind == 'demo_motion':
        for key, default in _DEMO_FIELDS.items():
            value = data.get(key, default)
            if key == 'center':
                if value is not None and not _is_pose(value):
                    raise WhatIfError(f'{where}.center: must be a list of joint positions '
                                      '(rad, one per joint) or a mapping {joint name: '
                                      f'position}}, got {value!r}')
            elif key == 'fraction':
                value = _number(value, f'{where}.fraction', 0.0, strictly=True)
                if value > 1.0:
                    raise WhatIfError(f'{where}.fraction: must be in (0, 1], got {value}')
            elif key in ('harmonics', 'seed'):
                value = _number(value, f'{where}.{key}', 0 if key == 'seed' else 1,
                                integer=True)
            else:
                value = _number(value, f'{where}.{key}', 0.0, strictly=key == 'period_s')
            out[key] = value
    elif kind == 'hold':
        pose = data.get('q')
        if pose is not None and (not isinstance(pose, list) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in pose)):
            raise WhatIfError(f'{where}.q: must be a list of joint positions (rad), got '
                              f'{pose!r}')
        out['q'] = pose
    elif kind == 'csv':
        if 'path' not in data:
            raise WhatIfError(f'{where}.path: missing; give the trajectory CSV '
                              '(time,<joint>.position,...)')
        path = Path(str(data['path'])).expanduser()
        path = path if path.is_absolute() else base_dir / path
        if not path.is_file():
            raise WhatIfError(f'{where}.path: trajectory CSV {path} not found')
        out['path'] = path.resolve()
    return out


def _parse_faults(value, where, base_dir, name='inline'):
    """
    Return the scenario's faults as a fault-scenario mapping, or None.

    ``value``: a name in config/faults or a path; a fault scenario written inline (a mapping
    with ``name`` and ``faults``); or just its list of faults (a list of fault mappings, named
    ``name``).
    """
    from twin_sim.faults import FaultScenario, ScenarioError
    if value is None:
        return None
    if isinstance(value, list):
        value = {'name': name, 'faults': value}
    if not isinstance(value, (str, dict)):
        raise WhatIfError(f'{where}: must be a name in config/faults, a path, a fault scenario '
                          '{name, faults: [...]} or a list of faults [{type, joint, start_s, '
                          f'...}}, ...], got {value!r}')
    if isinstance(value, dict):
        try:
            scenario = FaultScenario.from_dict(value, source=where)
        except ScenarioError as exc:              # names ``where`` already
            raise WhatIfError(str(exc)) from exc
        return scenario.to_dict()
    path = _resolve(value, where, base_dir, 'faults', 'fault scenario')
    try:
        scenario = FaultScenario.load(path)
    except ScenarioError as exc:
        raise WhatIfError(f'{where}: {exc}') from exc
    return scenario.to_dict()


def _parse_randomization(value, where, base_dir):
    overrides = None
    default = resources.randomization_file(DEFAULT_RANDOMIZATION)
    if value is None:
        path = default
    elif isinstance(value, str):
        path = _resolve(value, where, base_dir, 'randomization', 'randomization file')
    elif isinstance(value, dict):
        unknown = sorted(set(value) - {'file', 'overrides'})
        if unknown:
            raise WhatIfError(f'{where}: unknown field(s) {unknown}; allowed: file, overrides')
        file = value.get('file')
        path = default if file is None else _resolve(
            file, f'{where}.file', base_dir, 'randomization', 'randomization file')
        overrides = value.get('overrides')
        if overrides is not None and not isinstance(overrides, dict):
            raise WhatIfError(f'{where}.overrides: must be a mapping of sections, got '
                              f'{overrides!r}')
    else:
        raise WhatIfError(f'{where}: must be a file name or {{file, overrides}}, got {value!r}')
    try:
        return load_randomization(path, overrides), str(path)
    except RandomizationError as exc:
        raise WhatIfError(f'{where}: {exc}') from exc


def _parse_detector(value, where):
    from twin_anomaly.detector import DetectorConfig
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WhatIfError(f'{where}: must be a mapping of DetectorConfig fields, got {value!r}')
    names = [f.name for f in fields(DetectorConfig)]
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise WhatIfError(f'{where}: unknown field(s) {unknown}; DetectorConfig has '
                          f'{", ".join(names)}')
    try:
        DetectorConfig(**value)
    except (TypeError, ValueError) as exc:
        raise WhatIfError(f'{where}: {exc}') from exc
    return dict(value)


def _divider_rate(rate, where, dt):
    """Check an optional rate (Hz) that divides the plant rate ``1 / dt`` by a whole number."""
    if rate is None:
        return None
    rate = _number(rate, where, 0.0, strictly=True)
    every = 1.0 / (rate * dt)
    if every < 1.0 - 1e-9 or abs(every - round(every)) > 1e-6:
        raise WhatIfError(f'{where}: {rate:g} Hz must divide the plant rate {1.0 / dt:g} Hz '
                          f'(1 / dt) by a whole number')
    return rate


def scenario_from_dict(data, source='<dict>', base_dir=None):
    """
    Validate a what-if scenario mapping; return a :class:`WhatIfScenario`.

    Parameters
    ----------
    data : dict
        The parsed YAML.
    source : str
        Name used in error messages.
    base_dir : Path, optional
        Directory relative file references are resolved against (default: current directory).

    Raises
    ------
    WhatIfError
        Naming the source and the field.

    """
    base_dir = Path.cwd() if base_dir is None else Path(base_dir)
    if not isinstance(data, dict):
        raise WhatIfError(f'{source}: a what-if scenario is a mapping, got '
                          f'{type(data).__name__}')
    unknown = sorted(set(data) - set(_TOP_FIELDS))
    if unknown:
        raise WhatIfError(f'{source}: unknown field(s) {unknown}; allowed: '
                          f'{", ".join(_TOP_FIELDS)}')
    name = data.get('name')
    if not isinstance(name, str) or not name:
        raise WhatIfError(f'{source}: name: must be a non-empty string, got {name!r}')
    description = data.get('description', '')
    if not isinstance(description, str):
        raise WhatIfError(f'{source}: description: must be a string')
    if 'duration_s' not in data:
        raise WhatIfError(f'{source}: duration_s: missing; give the simulated time per '
                          'variant (s)')
    duration = _number(data['duration_s'], f'{source}: duration_s', 0.0, strictly=True)
    dt = _number(data.get('dt', 0.001), f'{source}: dt', 0.0, strictly=True)
    if dt > duration:
        raise WhatIfError(f'{source}: dt: {dt} s is longer than duration_s {duration} s')
    if 'trajectory' not in data:
        raise WhatIfError(f'{source}: trajectory: missing; e.g. {{type: demo_motion, '
                          'fraction: 0.3}')
    trajectory = _parse_trajectory(data['trajectory'], f'{source}: trajectory', base_dir)
    faults = _parse_faults(data.get('faults'), f'{source}: faults', base_dir, name=name)
    spec, spec_source = _parse_randomization(data.get('randomization'),
                                             f'{source}: randomization', base_dir)
    twin = data.get('twin') or {}
    if not isinstance(twin, dict) or set(twin) - {'payload'}:
        raise WhatIfError(f'{source}: twin: must be a mapping with optional payload '
                          f'(nominal | variant), got {twin!r}')
    twin_payload = twin.get('payload', 'nominal')
    if twin_payload not in ('nominal', 'variant'):
        raise WhatIfError(f'{source}: twin.payload: must be nominal or variant, got '
                          f'{twin_payload!r}')
    detector = _parse_detector(data.get('detector'), f'{source}: detector')
    sample_rate, control_rate = (_divider_rate(data.get(key), f'{source}: {key}', dt)
                                 for key in ('sample_rate_hz', 'control_rate_hz'))
    # a record rate given must divide the plant rate like the others; the default 50 Hz is
    # taken at the nearest divider (every round(1 / (50 dt))-th step)
    record_rate = _divider_rate(data.get('record_rate_hz'), f'{source}: record_rate_hz', dt)
    record_rate = 50.0 if record_rate is None else record_rate
    engine = data.get('engine', 'mujoco')
    if engine not in ENGINES:
        raise WhatIfError(f'{source}: engine: must be one of {", ".join(ENGINES)}, got '
                          f'{engine!r}')
    if engine == 'mujoco' and control_rate is not None:
        raise WhatIfError(f'{source}: control_rate_hz is an option of the pybullet engine (the '
                          'MuJoCo drive runs in the engine at every step); set engine: '
                          'pybullet or leave it out')
    scenario = WhatIfScenario(
        name=name, description=description, duration_s=duration, dt=dt,
        trajectory=trajectory, faults=faults, randomization=spec,
        randomization_source=spec_source, twin_payload=twin_payload, detector=detector,
        record_rate_hz=record_rate, sample_rate_hz=sample_rate,
        control_rate_hz=control_rate, engine=engine, source=source)
    if scenario.commissioning_s >= duration:
        raise WhatIfError(f'{source}: detector.commissioning_duration_s '
                          f'({scenario.commissioning_s} s) must be shorter than duration_s '
                          f'({duration} s), or nothing is monitored')
    for k, fault in enumerate((faults or {}).get('faults', [])):
        if float(fault['start_s']) >= duration:
            raise WhatIfError(f'{source}: faults[{k}] ({fault["type"]}): start_s '
                              f'{float(fault["start_s"]):g} s is not before the end of the run '
                              f'(duration_s {duration:g} s), so it never acts; start it earlier '
                              'or lengthen duration_s')
    return scenario


def with_engine(scenario, engine):
    """
    Return the scenario (a :class:`WhatIfScenario`, path or name) run on ``engine``.

    ``engine`` None keeps the scenario's own; otherwise one of :data:`ENGINES`.
    """
    if not isinstance(scenario, WhatIfScenario):
        scenario = load_scenario(scenario)
    if engine is None or engine == scenario.engine:
        return scenario
    if engine not in ENGINES:
        raise WhatIfError(f'engine must be one of {", ".join(ENGINES)}, got {engine!r}')
    if engine == 'mujoco' and scenario.control_rate_hz is not None:
        raise WhatIfError(f'{scenario.source}: control_rate_hz is an option of the pybullet '
                          'engine; leave it out to run on mujoco')
    return replace(scenario, engine=engine)


def load_scenario(name_or_path):
    """
    Load a what-if scenario: a YAML path, or the name of one in ``config/whatif/``.

    Raises
    ------
    WhatIfError
        Unreadable file, invalid YAML or any problem of :func:`scenario_from_dict`.

    """
    path = _resolve(str(name_or_path), 'what-if scenario', Path.cwd(), 'whatif',
                    'what-if scenario')
    try:
        data = load_yaml(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:      # missing, or not a text file
        raise WhatIfError(f'cannot read {path}: {exc}') from exc
    except yaml.YAMLError as exc:
        raise WhatIfError(f'{path}: not valid YAML: {exc}') from exc
    return scenario_from_dict(data, str(path), path.parent)


# ---------------------------------------------------------------------------------------------
# Trajectory
# ---------------------------------------------------------------------------------------------

def _read_trajectory_csv(path, joint_names):
    """Read ``time,<joint>.position[,.velocity[,.acceleration]]``; return an interpolator."""
    from twin_sim.trajectory import JointTrajectoryInterpolator, TrajectoryError
    try:
        with open(path, encoding='utf-8') as handle:
            header = [h.strip() for h in handle.readline().strip().split(',')]
    except (OSError, UnicodeDecodeError) as exc:     # missing, or not a text file
        raise WhatIfError(f'{path}: cannot read the trajectory ({exc})') from None
    if 'time' not in header:
        raise WhatIfError(f'{path}: no "time" column; expected time,<joint>.position,...')
    try:
        data = np.atleast_2d(np.loadtxt(path, delimiter=',', skiprows=1, ndmin=2))
    except ValueError as exc:
        raise WhatIfError(f'{path}: cannot parse the numbers ({exc})') from exc
    if data.shape[1] != len(header):
        raise WhatIfError(f'{path}: rows have {data.shape[1]} cells, the header '
                          f'{len(header)} columns')

    def columns(what, required):
        cols = [f'{j}.{what}' for j in joint_names]
        missing = [c for c in cols if c not in header]
        if missing and (required or len(missing) < len(cols)):
            raise WhatIfError(f'{path}: missing column(s) {missing}; the robot has joints '
                              f'{list(joint_names)}')
        return None if missing else data[:, [header.index(c) for c in cols]]

    q = columns('position', True)
    qd = columns('velocity', False)
    qdd = columns('acceleration', False) if qd is not None else None
    t = data[:, header.index('time')]
    try:
        return JointTrajectoryInterpolator(t - t[0], q, qd, qdd, joint_names=joint_names)
    except TrajectoryError as exc:
        raise WhatIfError(f'{path}: {exc}') from exc


def reference_trajectory(scenario, model):
    """
    Sample the scenario's reference on the plant's step grid.

    Parameters
    ----------
    scenario : WhatIfScenario
        The scenario whose motion is wanted.
    model : RobotModel
        The twin's model (limits, and effort fitting of the demo motion).

    Returns
    -------
    q, qd, qdd : (steps + 1, n) ndarray
        rad, rad/s, rad/s^2 at ``t = k dt``, ``k = 0..steps``.

    """
    from twin_sim.trajectory import DemoMotion, TrajectoryError
    t = np.arange(scenario.steps + 1) * scenario.dt
    spec = scenario.trajectory
    if spec['type'] == 'hold':
        q0 = np.clip(np.zeros(model.n), model.lower, model.upper)
        if spec.get('q') is not None:
            if len(spec['q']) != model.n:
                raise WhatIfError(f'{scenario.source}: trajectory.q: {len(spec["q"])} values '
                                  f'for the {model.n} joints {list(model.joint_names)}')
            q0 = np.array(spec['q'], dtype=float)
        return _checked_reference(scenario, model, t, np.tile(q0, (t.size, 1)),
                                  np.zeros((t.size, model.n)), np.zeros((t.size, model.n)))
    if spec['type'] == 'csv':
        q, qd, qdd = _read_trajectory_csv(spec['path'], model.joint_names).sample(t)
    else:
        kwargs = {k: spec[k] for k in _DEMO_FIELDS if k != 'center'}
        if spec.get('center') is not None:
            kwargs['center'] = _center_pose(scenario, model, spec['center'])
        try:
            motion = DemoMotion.from_model(model, **kwargs)
        except TrajectoryError as exc:
            raise WhatIfError(f'{scenario.source}: trajectory: {exc}') from exc
        q, qd, qdd = motion.sample(t)
    out_of_range = (q < model.lower - 1e-9) | (q > model.upper + 1e-9)
    if np.any(out_of_range):
        k, j = np.argwhere(out_of_range)[0]
        raise WhatIfError(f'{scenario.source}: trajectory leaves the limits of '
                          f'{model.joint_names[j]} at t = {t[k]:.3f} s ({q[k, j]:.4f} rad)')
    return _checked_reference(scenario, model, t, q, qd, qdd)


def _is_pose(value):
    """Whether ``value`` is a list of numbers or a mapping of joint names to numbers."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if isinstance(value, dict):
        return all(isinstance(k, str) and number(v) for k, v in value.items())
    return isinstance(value, list) and all(number(v) for v in value)


_OTHER_ROBOT = ('a scenario written for another robot (the packaged ones are for the built-in '
                'arm): give one position per joint of this robot, a mapping {joint: position} '
                '(other joints at mid-range), or no center (mid-range)')


def _center_pose(scenario, model, center):
    """Return the demo motion's centre pose (n,) from a list or a {joint: position} mapping."""
    from twin_sim.trajectory import mid_range
    where = f'{scenario.source}: trajectory.center'
    if isinstance(center, dict):
        unknown = sorted(set(center) - set(model.joint_names))
        if unknown:
            raise WhatIfError(f'{where}: unknown joint(s) {unknown}; the robot has '
                              f'{list(model.joint_names)}; {_OTHER_ROBOT}')
        pose = mid_range(model.lower, model.upper)
        for name, value in center.items():
            pose[model.joint_names.index(name)] = value
    else:
        if len(center) != model.n:
            raise WhatIfError(f'{where}: {len(center)} values for the {model.n} joints '
                              f'{list(model.joint_names)}; {_OTHER_ROBOT}')
        pose = np.array(center, dtype=float)
    outside = [f'{name} {v:g} not in ({lo:g}, {hi:g})' for name, v, lo, hi in zip(
        model.joint_names, pose, model.lower, model.upper) if not lo < v < hi]
    if outside:
        raise WhatIfError(f'{where}: must lie inside the joint limits: {"; ".join(outside)}; '
                          f'{_OTHER_ROBOT}')
    return pose


def _checked_reference(scenario, model, t, *arrays):
    """
    Return the reference as C-contiguous float arrays, each checked finite ``(T, n)``.

    The samples hand its rows to the world's unchecked fast path, so they are checked here.
    """
    out = []
    for name, array in zip(('position', 'velocity', 'acceleration'), arrays):
        array = np.ascontiguousarray(array, dtype=float)
        if array.shape != (t.size, model.n):
            raise WhatIfError(f'{scenario.source}: trajectory {name}: shape {array.shape}, '
                              f'expected {(t.size, model.n)} (time steps, joints)')
        bad = ~np.isfinite(array)
        if bad.any():
            k, j = np.argwhere(bad)[0]
            raise WhatIfError(f'{scenario.source}: trajectory {name} of '
                              f'{model.joint_names[j]} is not finite at t = {t[k]:.3f} s')
        out.append(array)
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# One sample
# ---------------------------------------------------------------------------------------------

@dataclass
class _Setup:
    """What a worker needs to run samples (plain data: pickled to processes and Ray)."""

    urdf_path: str
    urdf_text: str
    params_path: str
    params_text: str
    scenario: WhatIfScenario
    seed: int
    reference: tuple            # (q, qd, qdd), each (steps + 1, n)
    joint_names: tuple = ()
    token: str = ''


@dataclass
class SampleResult:
    """
    Result of one randomized variant (arrays per joint in model order).

    Attributes
    ----------
    index : int
    variant : dict
        The drawn values (:meth:`~twin_sim.randomization.Variant.as_flat_dict`).
    metrics : dict of str -> (n,) ndarray
        ``torque_rms_nm``, ``torque_peak_nm`` (actual motor torque), ``effort_utilization``
        (peak over the variant's effort limit), ``tracking_rms_rad``, ``tracking_max_rad``
        (actual position minus reference), ``effort_residual_rms_nm`` (measured minus the
        twin's prediction, after commissioning).
    max_score : float
        Largest robot-level anomaly score after commissioning (threshold 1.0).
    alarm_time_s : float
        When the first alarm was raised: the stamp its run began plus the variant's
        measurement latency, s; NaN without an alarm.
    alarm_joint : str
        Faulty joint (or ``'wrench'``) of the first alarm ('' without one).
    alarm_fault_type : str
        Fault type of the first alarm in the contract's names (those of ``/twin/anomaly``,
        :data:`twin_anomaly.classifier.FAULT_TYPES`): the signature mapped by
        :func:`twin_anomaly.detector.contract_fault_type`; '' without an alarm.
    samples_received : int
        Measurements that reached the twin.
    record_t : (K,) ndarray, s
        Stamps of the recorded series.
    record_effort : (K, n) ndarray, N m
        Actual motor torque at those stamps.

    """

    index: int
    variant: dict
    metrics: dict
    max_score: float
    alarm_time_s: float
    alarm_joint: str
    alarm_fault_type: str
    samples_received: int
    record_t: np.ndarray
    record_effort: np.ndarray
    #: the what-if detector's own name for the first alarm's pattern
    #: (:data:`twin_anomaly.detector.FAULT_TYPES`: ``effort_offset``, ``friction_like``, ...;
    #: '' without an alarm), of which ``alarm_fault_type`` is the contract's name
    alarm_signature: str = ''


@dataclass
class ResidualTrace:
    """
    Residuals of one fault-free randomized variant, as the twin computes them live.

    Attributes
    ----------
    index : int
        Variant index.
    variant : dict
        The drawn values.
    t : (N,) ndarray, s
        Sample stamps.
    position, velocity, effort : (N, n) ndarray
        Residuals (measured minus predicted), rad, rad/s, N m, model joint order.
    wrench : (N, 6) ndarray or None
        Wrench residual ``[fx, fy, fz, tx, ty, tz]`` (N, N m, ft_sensor frame); NaN rows where
        no wrench came.
    velocity_measured : (N, n) ndarray, rad/s
        The measured joint velocity (the detector's fault-pattern input).
    joint_names : tuple of str
        The model's joints, the order of the columns.

    """

    index: int
    variant: dict
    t: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    wrench: np.ndarray
    velocity_measured: np.ndarray
    joint_names: tuple = ()

    def feed(self, detector, t_offset=0.0):
        """
        Pass every sample to ``detector.update`` (a ``ResidualDetector``), in order.

        Parameters
        ----------
        detector : twin_anomaly.detector.ResidualDetector
            The detector to feed.
        t_offset : float, s
            Added to the stamps. To commission one detector on several variants, feed them
            one after the other with growing offsets (stamps must not go backwards)::

                offset = 0.0
                for trace in traces:
                    trace.feed(detector, offset)
                    offset += trace.t[-1] + 0.001

        Returns
        -------
        float
            The last stamp fed, s (with the offset).

        """
        for k in range(self.t.size):
            wrench = None if self.wrench is None or np.isnan(self.wrench[k, 0]) else \
                self.wrench[k]
            detector.update(self.t[k] + t_offset, self.position[k], self.velocity[k],
                            self.effort[k], wrench, velocity=self.velocity_measured[k])
        return float(self.t[-1] + t_offset) if self.t.size else float(t_offset)


class _Context:
    """Per-process cache of what every sample of one run shares."""

    def __init__(self, setup):
        from twin_sim.urdf_model import RobotModel, URDFWarning
        self.tmp = tempfile.TemporaryDirectory(prefix='twin_whatif_')
        tmp = Path(self.tmp.name)
        urdf = Path(setup.urdf_path)
        if not (urdf.is_file() and urdf.read_text() == setup.urdf_text):
            urdf = tmp / 'robot.urdf'           # e.g. on another machine of a Ray cluster
            urdf.write_text(setup.urdf_text)
        params = None
        if setup.params_text is not None:
            params = Path(setup.params_path)
            if not (params.is_file() and params.read_text() == setup.params_text):
                params = tmp / 'params.yaml'
                params.write_text(setup.params_text)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', URDFWarning)   # the driver has shown them
            urdf_model = RobotModel.from_urdf(urdf)
            self.nominal = NominalDynamics.from_urdf(urdf, params, model=urdf_model)
            self.twin_model = urdf_model.copy()
            if params is not None:
                self.twin_model.load_parameters(params)
        self.urdf = urdf
        self.joint_names = tuple(self.twin_model.joint_names)


_CONTEXTS = {}


def _context(setup):
    ctx = _CONTEXTS.get(setup.token)
    if ctx is None:
        for old in _CONTEXTS.values():
            old.tmp.cleanup()
        _CONTEXTS.clear()
        ctx = _CONTEXTS[setup.token] = _Context(setup)
    return ctx


def _simulate(setup, index, *, trace=False):
    """Run variant ``index``; return (SampleResult, ResidualTrace or None)."""
    if setup.scenario.engine == 'mujoco':
        from robot_twin.whatif_engine import simulate_engine
        return simulate_engine(setup, _context(setup), index, trace)
    from twin_sim.faults import FaultScenario
    from twin_sim.plant import Plant
    from twin_sim.urdf_model import URDFWarning

    ctx = _context(setup)
    scenario = setup.scenario
    n = len(ctx.joint_names)
    variant = scenario.randomization.sample(ctx.joint_names, setup.seed, index)
    payload = variant.payload
    q_ref, qd_ref, qdd_ref = setup.reference
    urdf = write_variant_urdf(ctx.nominal, variant, Path(ctx.tmp.name) / f'variant_{index}.urdf')
    faults = None if scenario.faults is None else FaultScenario.from_dict(
        scenario.faults, source=scenario.source)
    with warnings.catch_warnings():
        # the variant is the robot's URDF with other numbers: prepare() has shown its warnings
        warnings.simplefilter('ignore', URDFWarning)
        plant = Plant(urdf, scenario=faults, dt=scenario.dt, seed=variant.noise_seed,
                      initial_q=q_ref[0], payload=payload,
                      control_period_steps=scenario.control_every)
    try:
        return _drive(plant, ctx, scenario, variant, payload, (q_ref, qd_ref, qdd_ref), n,
                      trace)
    finally:
        plant.close()
        urdf.unlink(missing_ok=True)


def _drive(plant, ctx, scenario, variant, payload, reference, n, trace):
    """Step the plant along the reference, run the twin and the detector; collect results."""
    from twin_anomaly.detector import ResidualDetector
    from twin_sim.mirror import Mirror
    from twin_sim.predictor import Predictor

    q_ref, qd_ref, qdd_ref = reference
    steps = scenario.steps
    world = plant.world
    twin_payload = payload if scenario.twin_payload == 'variant' else None
    mirror = Mirror(Predictor(ctx.twin_model, payload=twin_payload))
    detector = ResidualDetector(ctx.joint_names, **scenario.detector)
    commissioning_s = detector.config.commissioning_duration_s
    sample_dt = scenario.dt * scenario.sample_every
    report_every = max(1, int(round(detector.config.block_s / sample_dt)))
    sample_every = scenario.sample_every
    sensor_faults = any(f.kind == 'sensor' for f in plant.faults)

    # white sensor noise, drawn per step index from the variant's own stream (a child of its
    # noise seed: independent of the plant's fault generators, default_rng([seed, i]))
    noise_rng = np.random.default_rng(np.random.SeedSequence(variant.noise_seed,
                                                             spawn_key=(1,)))
    noise_std = np.concatenate([
        np.full(n, variant.position_noise_std_rad), np.full(n, variant.velocity_noise_std_rad_s),
        np.full(n, variant.effort_noise_std_nm), np.full(3, variant.force_noise_std_n),
        np.full(3, variant.torque_noise_std_nm)])
    noisy = bool(np.any(noise_std > 0.0))
    noise = noise_rng.standard_normal((steps + 1, 3 * n + 6)) * noise_std if noisy else None

    true_q = np.empty((steps, n))             # what the arm did, per step
    true_effort = np.empty((steps, n))
    res_t = np.full(steps, np.nan)            # what the twin saw, per step (NaN: nothing)
    res_effort = np.full((steps, n), np.nan)
    if trace:
        res_pos, res_vel = np.full((steps, n), np.nan), np.full((steps, n), np.nan)
        res_wrench, meas_qd = np.full((steps, 6), np.nan), np.full((steps, n), np.nan)
    received = 0
    max_score = 0.0
    alarm = (math.nan, '', '')
    # The reference was checked by prepare() (finite, (steps + 1, n) floats): its rows go to
    # the world's trusted fast path (no per-step validation or copies). Without faults the
    # plant is bypassed: its step is world.step() + world.measure() and then its range and
    # speed stops (Plant.step), which act only where the position loop overshoots a limit of
    # the range (the reference is inside it, checked above) or of the URDF speeds.
    set_control = world.set_control
    step = plant.step if plant.faults else None
    world_step, measure = world.step, world.measure

    for k in range(steps):
        set_control('position', q_ref[k], qd_ref[k], qdd_ref[k], validate=False)
        if step is None:
            world_step()
            m = measure()
        else:
            m = step()
        truth = world.measure() if sensor_faults else m
        true_q[k] = truth.q
        true_effort[k] = truth.effort
        if m is None or (k + 1) % sample_every:
            continue
        received += 1
        if noisy:                     # truth has been recorded: add the noise in place
            i = min(int(round(m.t / scenario.dt)), steps)
            m.q += noise[i, :n]
            m.qd += noise[i, n:2 * n]
            m.effort += noise[i, 2 * n:3 * n]
            if m.wrench is not None:
                m.wrench += noise[i, 3 * n:]
        r = mirror.update(m.t, m.q, m.qd, m.effort)
        if r is None:
            continue
        wrench_res = None
        if m.wrench is not None:
            pair = mirror.wrench_residual(m.wrench)
            wrench_res = None if pair is None else pair[1]
        detector.update(m.t, r.position_residual, r.velocity_residual, r.effort_residual,
                        wrench_res, velocity=m.qd)
        res_t[k] = m.t
        res_effort[k] = r.effort_residual
        if trace:
            res_pos[k], res_vel[k], meas_qd[k] = r.position_residual, r.velocity_residual, m.qd
            if wrench_res is not None:
                res_wrench[k] = wrench_res
        if received % report_every == 0 and detector.commissioned:
            state = detector.report()
            max_score = max(max_score, state.score)
            if state.level == 'ERROR' and math.isnan(alarm[0]):
                joint = state.faulty_joint or ('wrench' if state.fault_type == 'wrench'
                                               else '')
                alarm = (state.since + variant.delay_s, joint, state.fault_type)

    result = sample_result(scenario, variant, true_q, true_effort, q_ref, world.effort_limit,
                           res_t, res_effort, commissioning_s, max_score, alarm, received)
    residuals = None
    if trace:
        keep = np.isfinite(res_t)
        residuals = ResidualTrace(
            index=variant.index, variant=result.variant, t=res_t[keep], position=res_pos[keep],
            velocity=res_vel[keep], effort=res_effort[keep], wrench=res_wrench[keep],
            velocity_measured=meas_qd[keep], joint_names=ctx.joint_names)
    return result, residuals


def sample_result(scenario, variant, true_q, true_effort, q_ref, effort_limit, res_t,
                  res_effort, commissioning_s, max_score, alarm, received):
    """
    Return a variant's :class:`SampleResult` from what its run recorded (both engines).

    ``true_q``, ``true_effort`` (steps, n): the arm per step; ``q_ref`` (steps + 1, n) the
    reference; ``res_t`` (M,) and ``res_effort`` (M, n) the twin's effort residuals (NaN stamps:
    none); ``alarm`` is ``(time s, joint, the detector's fault type)`` (its signature: the
    result has it as ``alarm_signature`` and its contract name as ``alarm_fault_type``).
    """
    from twin_anomaly.detector import contract_fault_type
    steps, n = true_effort.shape
    peak = np.abs(true_effort).max(axis=0)
    tracking = np.abs(true_q - q_ref[1:steps + 1])
    monitored = res_t >= commissioning_s       # NaN stamps compare False
    metrics = {
        'torque_rms_nm': np.sqrt(np.mean(true_effort ** 2, axis=0)),
        'torque_peak_nm': peak,
        'effort_utilization': np.where(np.isfinite(effort_limit), peak / effort_limit, 0.0),
        'tracking_rms_rad': np.sqrt(np.mean(tracking ** 2, axis=0)),
        'tracking_max_rad': tracking.max(axis=0),
        'effort_residual_rms_nm': (np.sqrt(np.mean(res_effort[monitored] ** 2, axis=0))
                                   if monitored.any() else np.full(n, np.nan)),
    }
    record_every = max(1, int(round(1.0 / (scenario.record_rate_hz * scenario.dt))))
    record = np.arange(record_every - 1, steps, record_every)
    return SampleResult(
        index=variant.index, variant=variant.as_flat_dict(), metrics=metrics,
        max_score=float(max_score), alarm_time_s=float(alarm[0]), alarm_joint=alarm[1],
        alarm_fault_type=contract_fault_type(alarm[2]) if alarm[2] else '',
        samples_received=int(received), record_t=(record + 1) * scenario.dt,
        record_effort=true_effort[record], alarm_signature=alarm[2])


def run_sample(setup, index):
    """
    Run randomized variant ``index`` of a prepared run (see :func:`prepare`).

    Parameters
    ----------
    setup : _Setup
        From :func:`prepare`.
    index : int
        Variant index (>= 0).

    Returns
    -------
    SampleResult

    """
    return _simulate(setup, index)[0]


def _run_trace(setup, index):
    return _simulate(setup, index, trace=True)[1]


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------

def prepare(scenario, urdf=None, params=None, seed=0):
    """
    Check everything a run needs in this process, before any worker starts.

    Parameters
    ----------
    scenario : WhatIfScenario, str or Path
        A scenario, or a path / packaged name for :func:`load_scenario`.
    urdf : str or Path, optional
        The robot (default: the built-in arm).
    params : str or Path, optional
        Identified dynamics (``params.yaml`` from ``robot-twin sysid``): the randomization is
        centred on them and the twin predicts with them.
    seed : int
        Non-negative; with the variant index it fixes every draw.

    Returns
    -------
    _Setup
        Plain data for :func:`run_sample` (picklable).

    Raises
    ------
    WhatIfError
        Naming what is wrong (scenario, URDF, params, seed, trajectory).

    """
    from twin_sim.faults import FaultScenario, ScenarioError
    from twin_sim.urdf_model import ParametersError, RobotModel, URDFError
    if not isinstance(scenario, WhatIfScenario):
        scenario = load_scenario(scenario)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise WhatIfError(f'seed must be a non-negative integer, got {seed!r}')
    if urdf is None:
        urdf = resources.builtin_urdf()
    urdf = Path(urdf).resolve()
    if not urdf.is_file():
        raise WhatIfError(f'URDF not found: {urdf}')
    try:
        model = RobotModel.from_urdf(urdf)
        nominal = NominalDynamics.from_urdf(urdf, params, model=model)
        twin = model.copy()
        if params is not None:
            twin.load_parameters(params)
    except (URDFError, ParametersError, RandomizationError) as exc:
        raise WhatIfError(str(exc)) from exc
    try:
        scenario.randomization.check_joints(nominal.joint_names)
    except RandomizationError as exc:
        raise WhatIfError(str(exc)) from exc
    if scenario.faults is not None:
        try:
            FaultScenario.from_dict(scenario.faults, source=scenario.source,
                                    joint_names=model.joint_names)
        except ScenarioError as exc:
            raise WhatIfError(f'{scenario.source}: faults: {exc}') from exc
    reference = reference_trajectory(scenario, twin)
    params_path = None if params is None else str(Path(params).resolve())
    params_text = None if params is None else Path(params).read_text()
    urdf_text = urdf.read_text()
    digest = hashlib.sha256()
    for part in (urdf_text, params_text or '', repr(scenario), str(seed)):
        digest.update(part.encode())
    for array in reference:
        digest.update(np.ascontiguousarray(array).tobytes())
    return _Setup(str(urdf), urdf_text, params_path, params_text, scenario, int(seed),
                  reference, tuple(model.joint_names), digest.hexdigest())


@dataclass
class WhatIfResult:
    """
    A finished what-if run.

    Attributes
    ----------
    summary : dict
        :func:`summarize` of the samples (the same for any worker count).
    samples : list of SampleResult
        In index order.
    run : dict
        How it ran: ``workers``, ``backend``, ``wall_s``, ``simulated_s`` and
        ``sim_s_per_wall_s`` (not part of the summary: it depends on the machine).
    failed : list of SampleFailure
        Variants that raised (also in ``summary['failed']``); the figures are over the rest.

    """

    summary: dict
    samples: list
    run: dict
    failed: list = field(default_factory=list)


def _start_method():
    methods = multiprocessing.get_all_start_methods()
    return 'forkserver' if 'forkserver' in methods else 'spawn'


def _import_ray():
    try:
        import ray
    except ImportError:
        raise WhatIfError('--ray needs Ray, which is not installed here. Install it with '
                          '`pip install "robot_twin[ray]"` (or the pinned `ray` of '
                          'requirements-dev.txt; the same version on every node of the cluster), '
                          'or leave out --ray to run on local processes (--workers K).') \
            from None
    return ray


@dataclass
class SampleFailure:
    """
    A variant that could not be run; the sweep goes on without it.

    Attributes
    ----------
    index, seed : int
        Which variant (rerun it alone with the same seed to see the error again).
    error : str
        ``'<ExceptionType>: <message>'``.

    """

    index: int
    seed: int
    error: str


def _guarded(function, setup, index):
    """Run one variant; an exception becomes a :class:`SampleFailure` (never sinks the sweep)."""
    try:
        return function(setup, index)
    except Exception as exc:  # any error of one variant is reported with its seed
        return SampleFailure(int(index), int(setup.seed), f'{type(exc).__name__}: {exc}')


def _check_reachable(address, timeout_s=5.0):
    """Fail fast when a ``HOST:PORT`` cluster address does not answer (Ray waits minutes)."""
    import socket
    if address in (None, '', 'local', 'auto') or '://' in address or ':' not in address:
        return
    host, _, port = address.rpartition(':')
    try:
        with socket.create_connection((host.strip('[]'), int(port)), timeout=timeout_s):
            pass
    except (OSError, ValueError) as exc:
        raise WhatIfError(f'cannot connect to the Ray cluster at {address!r}: {exc}. Is its '
                          'head running (`ray start --head`) and the port open?') from None


def _map_ray(function, setup, indices, address, progress):
    ray = _import_ray()
    _check_reachable(address)
    init_address = None if address in (None, '', 'local') else address
    started = not ray.is_initialized()
    try:
        ray.init(address=init_address, ignore_reinit_error=True, log_to_driver=False)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ... by version
        raise WhatIfError(f'cannot connect to the Ray cluster at {address!r}: {exc}. Start '
                          f'one (`ray start --head`), give its address, or use --ray local')\
            from exc
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_guarded)
        setup_ref = ray.put(setup)
        pending = {remote.remote(function, setup_ref, int(i)): int(i) for i in indices}
        results = {}
        with _progress(len(indices), progress) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    index = pending.pop(ref)
                    try:
                        results[index] = ray.get(ref)
                    except Exception as exc:  # the worker process died (killed, out of memory)
                        results[index] = SampleFailure(index, int(setup.seed),
                                                       f'{type(exc).__name__}: {exc}')
                    bar.update(1)
                    _note(bar, results[index])
    finally:
        if started:
            ray.shutdown()
    return [results[int(i)] for i in indices]


class _NoBar:

    def update(self, n=1):
        pass

    def set_postfix_str(self, text, refresh=True):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress(total, progress):
    if not progress:
        return _NoBar()
    from tqdm import tqdm
    return tqdm(total=total, unit='variant', desc='what-if', leave=False)


def _note(bar, result):
    """Show the last finished variant (and whether it failed) beside the progress bar."""
    if isinstance(result, SampleFailure):
        bar.set_postfix_str(f'variant {result.index} FAILED', refresh=False)
    else:
        bar.set_postfix_str(f'variant {result.index} done', refresh=False)


_WORKER = {}


def _init_worker(function, setup):
    """Pool initializer: receive the run's set-up once per process (not once per sample)."""
    _WORKER['function'], _WORKER['setup'] = function, setup


def _worker_task(index):
    return _guarded(_WORKER['function'], _WORKER['setup'], index)


def _map(function, setup, indices, workers, ray_address, progress):
    """
    Apply ``function(setup, i)`` to every index; results in index order.

    A variant that raises comes back as a :class:`SampleFailure` instead of its result.
    """
    indices = [int(i) for i in indices]
    if ray_address is not None:
        return _map_ray(function, setup, indices, ray_address, progress), 'ray'
    if workers == 1 or len(indices) <= 1:
        out = []
        with _progress(len(indices), progress) as bar:
            for i in indices:
                out.append(_guarded(function, setup, i))
                bar.update(1)
                _note(bar, out[-1])
        return out, 'in-process'
    method = _start_method()
    context = multiprocessing.get_context(method)
    if method == 'forkserver':
        # workers fork from a server that has imported numpy, pinocchio and the engines once
        context.set_forkserver_preload(['robot_twin.whatif', 'robot_twin.whatif_engine',
                                        'twin_sim.plant', 'twin_sim.mirror',
                                        'twin_sim.mujoco_world', 'twin_sim.batch_twin',
                                        'twin_anomaly.detector', 'twin_anomaly.batch_feed'])
    results = {}
    with concurrent.futures.ProcessPoolExecutor(
            max_workers=min(workers, len(indices)), mp_context=context,
            initializer=_init_worker, initargs=(function, setup)) as pool:
        futures = {pool.submit(_worker_task, i): i for i in indices}
        with _progress(len(indices), progress) as bar:
            try:
                for future in concurrent.futures.as_completed(futures):
                    index = futures[future]
                    try:
                        results[index] = future.result()
                    except concurrent.futures.process.BrokenProcessPool as exc:
                        raise WhatIfError(f'a worker process died while running variant '
                                          f'{index} (seed {setup.seed}): {exc}') from exc
                    bar.update(1)
                    _note(bar, results[index])
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return [results[i] for i in indices], f'processes ({method})'


def _split(results):
    """Separate finished variants from failures (both in index order)."""
    ok = [r for r in results if not isinstance(r, SampleFailure)]
    failed = [r for r in results if isinstance(r, SampleFailure)]
    if not ok:
        first = failed[0]
        raise WhatIfError(f'every variant failed; variant {first.index} (seed {first.seed}): '
                          f'{first.error}')
    return ok, failed


def _check_run_args(samples, workers):
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise WhatIfError(f'samples must be a positive integer, got {samples!r}')
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise WhatIfError(f'workers must be a positive integer, got {workers!r}')


def _capped_workers(workers):
    """
    Return ``workers`` capped at the machine's CPU count (with a warning when capped).

    More local processes than CPUs only share them (and the memory each one holds).
    """
    cpus = os.cpu_count()
    if cpus is None or workers <= cpus:
        return int(workers)
    warnings.warn(f'--workers {workers} is more than the {cpus} CPUs of this machine; running '
                  f'{cpus} worker processes', UserWarning, stacklevel=3)
    return int(cpus)


def run_whatif(scenario, samples, *, urdf=None, params=None, seed=0, workers=1,
               ray_address=None, progress=False, engine=None):
    """
    Run ``samples`` randomized variants of a scenario and summarize them.

    Parameters
    ----------
    scenario : WhatIfScenario, str or Path
        The scenario (or a path / packaged name).
    samples : int
        Number of variants (indices ``0..samples-1``).
    urdf : str or Path, optional
        The robot (default: the built-in arm).
    params : str or Path, optional
        Identified dynamics to centre the randomization on and predict with.
    seed : int
        Randomization seed.
    workers : int
        Local processes (1 runs in this process).
    ray_address : str, optional
        Run on Ray instead: ``'auto'`` (an existing cluster), ``'local'`` (start one here) or
        a cluster address. Ray is optional and imported only then.
    progress : bool
        Show a tqdm progress bar over samples (one step per variant).
    engine : str, optional
        Override the scenario's robot engine (``'mujoco'`` or ``'pybullet'``).

    Returns
    -------
    WhatIfResult
        A variant that raised is left out of the figures and listed in ``failed`` (with its
        seed and error); only when every variant fails does the run raise.

    """
    _check_run_args(samples, workers)
    if ray_address is not None:
        _import_ray()                        # fail before any work if Ray is missing
    else:
        workers = _capped_workers(workers)
    scenario = with_engine(scenario, engine)
    if scenario.fault_during_commissioning:
        warnings.warn(f'{scenario.source}: the first fault starts at {scenario.fault_start_s():g} '
                      f's, before commissioning ends at {scenario.commissioning_s:g} s: the '
                      'detector learns it as normal, so a variant without an alarm is not a '
                      'missed detection (summary.json: fault_during_commissioning); start the '
                      'fault later or shorten detector.commissioning_duration_s',
                      UserWarning, stacklevel=2)
    setup = prepare(scenario, urdf, params, seed)
    t0 = time.perf_counter()
    results, backend = _map(run_sample, setup, range(int(samples)), int(workers), ray_address,
                            progress)
    wall = time.perf_counter() - t0
    results, failed = _split(results)
    simulated = len(results) * setup.scenario.steps * setup.scenario.dt
    summary = summarize(results, setup)
    summary['failed'] = [asdict(f) for f in failed]
    run = {'workers': int(workers), 'backend': backend, 'wall_s': wall,
           'simulated_s': simulated, 'sim_s_per_wall_s': simulated / wall if wall else math.nan}
    return WhatIfResult(summary, results, run, failed)


def nominal_residual_samples(samples, *, urdf=None, params=None, duration_s=20.0,
                             trajectory=None, randomization=None, seed=0, workers=1,
                             dt=0.001, ray_address=None, progress=False):
    """
    Residuals of fault-free randomized variants: what "normal" looks like across the range.

    Each variant is drawn as in a what-if run and driven without faults; the twin's residuals
    (measured minus the nominal model's prediction, exactly as the live twin forms them) are
    returned per sample. An anomaly detector's commissioning/training can use them to learn
    thresholds that hold across the randomized range (e.g. ``trace.feed(detector)`` per trace,
    or stacking the arrays).

    Parameters
    ----------
    samples : int
        Number of variants.
    urdf, params : str or Path, optional
        The robot and its identified dynamics.
    duration_s : float, s
        Simulated time per variant.
    trajectory : dict, optional
        As the scenario's ``trajectory`` (default ``{type: demo_motion, fraction: 0.3}``).
    randomization : RandomizationSpec, str, Path or dict, optional
        Ranges (a spec, a file, or a mapping); default ``config/randomization/default.yaml``.
    seed, workers, dt, ray_address, progress
        As :func:`run_whatif`.

    Returns
    -------
    list of ResidualTrace
        In variant order.

    """
    _check_run_args(samples, workers)
    if ray_address is not None:
        _import_ray()
    if randomization is None or isinstance(randomization, (str, Path)):
        spec = load_randomization(randomization)
    elif isinstance(randomization, dict):
        spec = RandomizationSpec.from_dict(randomization)
    elif isinstance(randomization, RandomizationSpec):
        spec = randomization
    else:
        raise WhatIfError(f'randomization must be a RandomizationSpec, file or mapping, got '
                          f'{type(randomization).__name__}')
    trajectory = _parse_trajectory(trajectory or {'type': 'demo_motion', 'fraction': 0.3},
                                   'trajectory', Path.cwd())
    duration_s = _number(duration_s, 'duration_s', 0.0, strictly=True)
    scenario = WhatIfScenario(
        name='nominal_residuals', duration_s=duration_s, dt=float(dt), trajectory=trajectory,
        randomization=spec, randomization_source='<argument>',
        source='nominal_residual_samples')
    return scenario_residual_traces(scenario, range(int(samples)), urdf=urdf, params=params,
                                    seed=seed, workers=workers, ray_address=ray_address,
                                    progress=progress)


def scenario_residual_traces(scenario, indices, *, urdf=None, params=None, seed=0, workers=1,
                             ray_address=None, progress=False, engine=None):
    """
    Return the twin's residuals on variants ``indices`` of a scenario, as the live twin forms them.

    Like :func:`run_whatif`, but each variant returns its whole residual time series (a
    :class:`ResidualTrace`) instead of summary metrics; the scenario's faults act as in a
    what-if run (drop them for "normal" data). The scenario's detector settings are not used.

    Parameters
    ----------
    scenario : WhatIfScenario, str or Path
        The scenario (or a path / packaged name).
    indices : iterable of int
        Variant indices (each >= 0); variant ``i`` is the same as in a what-if run.
    urdf, params, seed, workers, ray_address, progress, engine
        As :func:`run_whatif`.

    Returns
    -------
    list of ResidualTrace
        In the order of ``indices``.

    Raises
    ------
    WhatIfError
        Bad input, or a variant failed (named with its seed and error).

    """
    indices = [int(i) for i in indices]
    if not indices or min(indices) < 0:
        raise WhatIfError(f'indices must be non-negative variant numbers, got {indices!r}')
    _check_run_args(len(indices), workers)
    if ray_address is not None:
        _import_ray()
    else:
        workers = _capped_workers(workers)
    scenario = with_engine(scenario, engine)
    # the per-sample detector of a what-if run only commissions here (its output is unused)
    scenario = replace(scenario,
                       detector={'commissioning_duration_s': max(scenario.duration_s, 1.0)})
    setup = prepare(scenario, urdf, params, seed)
    traces, failed = _split(_map(_run_trace, setup, indices, int(workers), ray_address,
                                 progress)[0])
    if failed:
        raise WhatIfError('variant(s) failed: ' + '; '.join(
            f'variant {f.index} (seed {f.seed}): {f.error}' for f in failed))
    return traces


# ---------------------------------------------------------------------------------------------
# Summary, table, files, plots
# ---------------------------------------------------------------------------------------------

def _stats(values):
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        out = {f'p{p}': None for p in PERCENTILES}
        out.update(mean=None, min=None, max=None, count=0)
        return out
    pct = np.percentile(finite, PERCENTILES)
    out = {f'p{p}': float(v) for p, v in zip(PERCENTILES, pct)}
    out.update(mean=float(finite.mean()), min=float(finite.min()), max=float(finite.max()),
               count=int(finite.size))
    return out


def faulted_channels(faults):
    """
    Joints (and ``'wrench'``) a fault scenario acts on, or None if a fault names none.

    Parameters
    ----------
    faults : dict or None
        The fault scenario mapping (:attr:`WhatIfScenario.faults`).

    Returns
    -------
    list of str or None
        Sorted; what a first alarm must name to count as detecting a fault. None when some
        fault acts on no named joint (a payload change, a collision on a link, a delay or a
        dropout: any joint may show it) or there are no faults.

    """
    if not faults or not faults.get('faults'):
        return None
    out = set()
    for fault in faults['faults']:
        if fault.get('joint'):
            out.add(fault['joint'])
        elif fault.get('signal') == 'wrench':
            out.add('wrench')
        else:
            return None
    return sorted(out)


def summarize(results, setup):
    """
    Percentiles across samples (p5, p50, p95, mean, min, max) of every recorded figure.

    Parameters
    ----------
    results : list of SampleResult
        In index order.
    setup : _Setup
        The run's set-up (scenario, seed, robot).

    Returns
    -------
    dict
        JSON-ready: ``scenario``, ``samples``, ``seed``, ``joints``,
        ``fault_during_commissioning`` (a fault starts before commissioning ends: the detector
        learned it, so no alarm is no missed detection), ``metrics``
        (``{metric: {joint: stats}}``), ``max_score``, ``alarms`` (count, fraction, before
        and after the first fault, detection delay stats; ``detected`` counts a first alarm on
        any joint after the first fault starts; where every fault names its joint
        (``faulted_joints``, :func:`faulted_channels`; else None), ``detected_on_faulted_joint``
        counts those on one of them, with its fraction and delay stats; ``by_joint_and_type``
        counts first alarms by joint and contract fault type, ``by_joint_and_signature`` by
        joint and the detector's own signature), ``time_series``
        (p5/p50/p95 band of the torque over time).

    """
    scenario = setup.scenario
    joints = list(setup.joint_names)
    metrics = {}
    for name in results[0].metrics:
        stacked = np.array([r.metrics[name] for r in results])
        metrics[name] = {j: _stats(stacked[:, i]) for i, j in enumerate(joints)}
    alarm_times = np.array([r.alarm_time_s for r in results])
    alarmed = np.isfinite(alarm_times)
    fault_start = scenario.fault_start_s()
    alarms = {'count': int(alarmed.sum()), 'fraction': float(alarmed.mean()),
              'alarm_time_s': _stats(alarm_times)}
    if fault_start is None:
        alarms['false_alarms'] = int(alarmed.sum())
    else:
        early = alarmed & (alarm_times < fault_start)
        late = alarmed & ~early
        alarms.update(first_fault_s=fault_start, false_alarms=int(early.sum()),
                      detected=int(late.sum()), detection_fraction=float(late.mean()),
                      detection_delay_s=_stats(alarm_times[late] - fault_start))
        faulted = faulted_channels(scenario.faults)
        alarms['faulted_joints'] = faulted
        if faulted is not None:
            right = late & np.array([r.alarm_joint in faulted for r in results], dtype=bool)
            alarms.update(detected_on_faulted_joint=int(right.sum()),
                          detection_on_faulted_joint_fraction=float(right.mean()),
                          detection_delay_on_faulted_joint_s=_stats(
                              alarm_times[right] - fault_start))
    joints_hit, signatures = {}, {}
    for r in results:
        if r.alarm_joint:
            key = f'{r.alarm_joint}:{r.alarm_fault_type}'
            joints_hit[key] = joints_hit.get(key, 0) + 1
            key = f'{r.alarm_joint}:{r.alarm_signature}'
            signatures[key] = signatures.get(key, 0) + 1
    alarms['by_joint_and_type'] = dict(sorted(joints_hit.items()))
    alarms['by_joint_and_signature'] = dict(sorted(signatures.items()))
    t = results[0].record_t
    efforts = np.array([r.record_effort for r in results])          # (S, K, n)
    band = np.percentile(efforts, PERCENTILES, axis=0) if efforts.size else efforts
    return {
        'scenario': scenario.name,
        'description': scenario.description,
        'scenario_source': scenario.source,
        'randomization_source': scenario.randomization_source,
        'urdf': setup.urdf_path,
        'params': setup.params_path,
        'samples': len(results),
        'seed': setup.seed,
        'duration_s': scenario.duration_s,
        'dt': scenario.dt,
        'commissioning_s': scenario.commissioning_s,
        'fault_during_commissioning': scenario.fault_during_commissioning,
        'joints': joints,
        'metrics': metrics,
        'max_score': _stats([r.max_score for r in results]),
        'alarms': alarms,
        'time_series': {
            't': t.tolist(),
            'torque_nm': {f'p{p}': band[k].T.tolist() for k, p in enumerate(PERCENTILES)},
        },
    }


_TABLE_METRICS = (('torque_rms_nm', 'torque RMS', 'N m'), ('torque_peak_nm', 'torque peak', 'N m'),
                  ('tracking_rms_rad', 'tracking RMS', 'mrad'),
                  ('effort_residual_rms_nm', 'effort residual RMS', 'N m'))


def _fmt(value, scale=1.0, width=7):
    if value is None:
        return f'{"-":>{width}}'
    value = value * scale
    if value != 0.0 and abs(value) < 1e-3:      # '0.000167' would not fit the column
        return f'{value:{width}.1e}'
    return f'{value:{width}.3g}'


def format_table(summary):
    """Return the printed summary: per joint p5/p50/p95 of the main figures, then alarms."""
    lines = [f"what-if '{summary['scenario']}': {summary['samples']} samples x "
             f"{summary['duration_s']:g} s, seed {summary['seed']}; p5 / p50 / p95 across "
             'samples']
    cell = 3 * 7 + 2
    name_width = max([12] + [len(j) for j in summary['joints']])
    head = f'{"joint":<{name_width}}' + ''.join(
        f' | {label + " [" + unit + "]":^{cell}}' for _, label, unit in _TABLE_METRICS)
    lines += [head, '-' * len(head)]
    for joint in summary['joints']:
        cells = []
        for name, _, unit in _TABLE_METRICS:
            s = summary['metrics'][name][joint]
            scale = 1000.0 if unit == 'mrad' else 1.0
            cells.append(' '.join(_fmt(s[f'p{p}'], scale) for p in PERCENTILES))
        lines.append(f'{joint:<{name_width}} | ' + ' | '.join(cells))
    ms = summary['max_score']
    lines.append(f'max anomaly score after commissioning (threshold 1): '
                 f'{_fmt(ms["p5"], width=1)} / {_fmt(ms["p50"], width=1)} / '
                 f'{_fmt(ms["p95"], width=1)}')
    al = summary['alarms']
    text = f'alarms: {al["count"]}/{summary["samples"]}'
    if 'first_fault_s' in al:
        delay = al['detection_delay_s']
        text += f'; first fault at {al["first_fault_s"]:g} s: '
        if al.get('faulted_joints') is not None:
            text += (f'detected on the faulted joint ({", ".join(al["faulted_joints"])}) '
                     f'{al["detected_on_faulted_joint"]}, alarm on any joint {al["detected"]}')
            delay = al['detection_delay_on_faulted_joint_s']
        else:
            text += f'detected (alarm on any joint) {al["detected"]}'
        text += f', false alarms (before it) {al["false_alarms"]}'
        if delay['count']:
            text += (f'; detection delay p50 {delay["p50"]:.3g} s, p95 {delay["p95"]:.3g} s')
        if summary.get('fault_during_commissioning'):
            text += (f'; NOTE: the fault starts during commissioning (before '
                     f'{summary["commissioning_s"]:g} s): the detector learned it as normal')
    else:
        text += ' (no faults: every alarm is a false alarm)'
    lines.append(text)
    if al['by_joint_and_type']:
        lines.append('first alarm on: ' + ', '.join(f'{k} x{v}' for k, v in
                                                    al['by_joint_and_type'].items()))
    for f in summary.get('failed', []):
        lines.append(f"FAILED variant {f['index']} of seed {f['seed']}: {f['error']}")
    return '\n'.join(lines)


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return _json_ready(value.tolist())
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_outputs(result, output_dir, plots=True):
    """
    Write ``summary.json``, ``samples.csv``, ``run.json`` and the plots into a directory.

    Parameters
    ----------
    result : WhatIfResult
        The study result to write.
    output_dir : str or Path
        Created if missing.
    plots : bool
        Also write ``torque_spread.png``, ``anomaly_score_hist.png`` and
        ``tracking_error_box.png``.

    Returns
    -------
    list of Path
        The files written.

    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    path = out / 'summary.json'
    path.write_text(json.dumps(_json_ready(result.summary), indent=1) + '\n')
    written.append(path)
    path = out / 'run.json'
    path.write_text(json.dumps(_json_ready(result.run), indent=1) + '\n')
    written.append(path)
    path = out / 'samples.csv'
    joints = result.summary['joints']
    rows = []
    for r in result.samples:
        row = dict(r.variant)
        for name, values in r.metrics.items():
            row.update({f'{j}.{name}': float(v) for j, v in zip(joints, values)})
        row.update(max_score=r.max_score, alarm_time_s=r.alarm_time_s,
                   alarm_joint=r.alarm_joint, alarm_fault_type=r.alarm_fault_type,
                   alarm_signature=r.alarm_signature, samples_received=r.samples_received)
        rows.append(row)
    with open(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written.append(path)
    if plots:
        written += _plots(result, out)
    return written


def _plots(result, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    summary = result.summary
    joints = summary['joints']
    n = len(joints)
    written = []
    ts = summary['time_series']
    t = np.array(ts['t'])
    cols = min(n, 4)
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False,
                             sharex=True)
    for i, joint in enumerate(joints):
        ax = axes[i // cols][i % cols]
        lo, mid, hi = (np.array(ts['torque_nm'][f'p{p}'])[i] if t.size else np.array([])
                       for p in PERCENTILES)
        ax.fill_between(t, lo, hi, alpha=0.3, label='p5..p95')
        ax.plot(t, mid, lw=1.0, label='median')
        if summary['commissioning_s']:
            ax.axvline(summary['commissioning_s'], color='grey', ls=':', lw=0.8)
        ax.set_title(joint, fontsize=9)
        ax.tick_params(labelsize=7)
    for i in range(n, rows * cols):
        axes[i // cols][i % cols].axis('off')
    axes[0][0].legend(fontsize=7)
    fig.supxlabel('time [s]')
    fig.supylabel('joint torque [N m]')
    fig.suptitle(f"{summary['scenario']}: torque spread over {summary['samples']} variants",
                 fontsize=10)
    fig.tight_layout()
    path = out / 'torque_spread.png'
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(5, 3.2))
    scores = np.array([r.max_score for r in result.samples])
    ax.hist(scores, bins=min(30, max(5, len(scores) // 2)))
    ax.axvline(1.0, color='red', ls='--', lw=1.0, label='alarm threshold')
    ax.set_xlabel('max anomaly score after commissioning')
    ax.set_ylabel('variants')
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / 'anomaly_score_hist.png'
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * n, 3.2))
    data = [1000.0 * np.array([r.metrics['tracking_rms_rad'][i] for r in result.samples])
            for i in range(n)]
    ax.boxplot(data)
    ax.set_xticks(range(1, n + 1))
    ax.set_xticklabels(joints, rotation=45, fontsize=8)
    ax.set_ylabel('tracking error RMS [mrad]')
    fig.tight_layout()
    path = out / 'tracking_error_box.png'
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written
