"""
Fault injection for the emulated robot, and the YAML fault scenarios (``config/faults/``).

A scenario file (docs/conventions.md)::

    name: friction_wear_j3
    description: Incipient friction increase on joint 3.
    duration_s: 20.0            # optional
    faults:
      - type: friction_increase
        joint: joint3
        start_s: 8.0
        ramp_s: 4.0
        size: 2.0

Every fault has the same envelope, its *level* ``e(t)`` in ``[0, 1]``: 0 before ``start_s``,
a linear ramp from 0 to 1 over ``ramp_s`` (``ramp_s: 0`` is an abrupt step to 1 at
``start_s``), 1 after, and 0 again from ``end_s`` on (optional). Times are seconds of plant
time (since the plant's reset). What ``size`` means per type (``e`` is the level):

=====================  ======================================================================
type                   effect at level ``e``; ``size`` unit
=====================  ======================================================================
sensor_bias            ``signal`` of ``joint`` (or wrench ``component``) reads
                       ``+ e * size`` (rad, rad/s, N·m; N or N·m for the wrench)
sensor_noise           adds zero-mean Gaussian noise of standard deviation ``e * size``
dropout                each sample is lost with probability ``e * size`` (0..1); ``signal``
                       ``all`` (default: the whole sample) or ``wrench`` (only the FT reading)
delay                  sent samples come out ``e * size`` s late, rounded up to whole sample
                       periods (original stamps, so on the robot's publish grid; a sample is
                       never sent twice, so a growing delay leaves gaps)
stuck_sensor           from ``start_s`` the signal holds the value it had then (no ``size``,
                       ``ramp_s`` must be 0)
friction_increase      ``mode: add`` (default): Coulomb friction of ``joint`` + ``e * size``
                       N·m; ``mode: scale``: viscous and Coulomb friction times
                       ``1 + e * (size - 1)``
payload_change         the tool picks up a payload of ``e * size`` kg at ``com`` (m, sensor
                       frame, default 0), a solid sphere of ``radius_m`` (default 0.05 m),
                       added to the plant's nominal payload
collision_force        a force of ``e * size`` N along ``direction`` (world frame, default
                       ``[1, 0, 0]``) on ``link`` (default: the payload frame, i.e. the FT
                       sensor link) at ``point`` (link frame, default 0)
joint_lock             ``joint`` is seized where it is while the level is > 0 (no ``size``,
                       ``ramp_s`` must be 0)
torque_saturation      ``joint``'s motor torque is clipped at
                       ``effort_limit * (1 - e * (1 - size))``, ``size`` a fraction in [0, 1]
=====================  ======================================================================

Sensor faults transform a :class:`~twin_sim.world.Measurement` (in scenario order); physical
faults add to a :class:`PhysicalEffects` that the plant applies to its world before each step.
Noise and dropout draw from a generator the plant seeds per fault, so runs are reproducible.

:class:`FaultScenario` loads and checks a scenario; every problem raises :class:`ScenarioError`
naming the file, the fault index and the field.
"""
from collections import deque
from dataclasses import dataclass, field
import math
from pathlib import Path
from typing import Optional

import numpy as np
from twin_sim import resources
from twin_sim.yaml_numbers import load_yaml
import yaml

__all__ = [
    'ScenarioError', 'Fault', 'SensorFault', 'PhysicalFault', 'PhysicalEffects',
    'SensorBias', 'SensorNoise', 'Dropout', 'Delay', 'StuckSensor', 'FrictionIncrease',
    'PayloadChange', 'CollisionForce', 'JointLock', 'TorqueSaturation', 'FAULT_TYPES',
    'FaultScenario', 'fault_from_dict', 'scenario_path', 'list_scenarios',
]

JOINT_SIGNALS = ('position', 'velocity', 'effort')
SIGNALS = JOINT_SIGNALS + ('wrench',)
WRENCH_COMPONENTS = ('fx', 'fy', 'fz', 'tx', 'ty', 'tz')
_TIME_EPS = 1e-9


class ScenarioError(ValueError):
    """
    A fault scenario or fault is malformed; the message names file, fault index and field.

    Attributes
    ----------
    source : str
        The file (or ``'<dict>'``).
    index : int or None
        Index of the fault in ``faults``, None for a top-level problem.
    field : str or None
        The offending field.

    """

    def __init__(self, message, source='<dict>', index=None, field=None):
        where = source
        if index is not None:
            where += f': faults[{index}]'
        if field is not None:
            where += f'.{field}'
        super().__init__(f'{where}: {message}')
        self.source, self.index, self.field = source, index, field


# ---------------------------------------------------------------------------- field parsing
@dataclass(frozen=True)
class _Field:
    kind: str                  # 'float', 'str', 'choice', 'vec3', 'joint', 'opt_float'
    required: bool = False
    default: object = None
    low: Optional[float] = None
    high: Optional[float] = None
    choices: tuple = ()
    help: str = ''  # noqa: A003 (public field name)

    def parse(self, value, err):
        if self.kind in ('float', 'opt_float'):
            if value is None and self.kind == 'opt_float':
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise err(f'must be a number{self._unit()}, got {value!r}')
            value = float(value)
            if not math.isfinite(value):
                raise err(f'must be finite, got {value}')
            if self.low is not None and value < self.low:
                raise err(f'must be >= {self.low}{self._unit()}, got {value}')
            if self.high is not None and value > self.high:
                raise err(f'must be <= {self.high}{self._unit()}, got {value}')
            return value
        if self.kind in ('str', 'joint'):
            if not isinstance(value, str) or not value:
                raise err(f'must be a non-empty string{self._unit()}, got {value!r}')
            return value
        if self.kind == 'choice':
            if value not in self.choices:
                raise err(f'must be one of {list(self.choices)}, got {value!r}')
            return value
        if self.kind == 'vec3':
            if (not isinstance(value, (list, tuple, np.ndarray)) or len(value) != 3 or
                    any(isinstance(v, bool) or not isinstance(v, (int, float, np.floating))
                        for v in value)):
                raise err(f'must be a list of 3 numbers{self._unit()}, got {value!r}')
            arr = np.array(value, dtype=float)
            if not np.all(np.isfinite(arr)):
                raise err(f'must be finite, got {value!r}')
            return arr
        raise AssertionError(self.kind)

    def _unit(self):
        return f' ({self.help})' if self.help else ''


_COMMON = {
    'start_s': _Field('float', required=True, low=0.0, help='s'),
    'ramp_s': _Field('float', default=0.0, low=0.0, help='s'),
    'end_s': _Field('opt_float', default=None, low=0.0, help='s'),
}


# ---------------------------------------------------------------------------- base classes
class Fault:
    """
    Base of all faults: the common envelope and field checking.

    Construct a fault with keyword arguments named as in the YAML (``start_s``, ``ramp_s``,
    ``size``, ...), or from a mapping with :func:`fault_from_dict`.
    """

    type = None  # noqa: A003 (the scenario format's 'type' key)
    kind = None
    FIELDS = {}

    def __init__(self, _source='<dict>', _index=None, **values):
        self.source, self.index = _source, _index
        spec = dict(_COMMON)
        spec.update(self.FIELDS)
        unknown = sorted(set(values) - set(spec))
        if unknown:
            raise ScenarioError(f'unknown field(s) {unknown} for a {self.type} fault; allowed: '
                                f'{sorted(spec) + ["type"]}', _source, _index, unknown[0])
        for name, spec_field in spec.items():
            if name not in values:
                if spec_field.required:
                    raise ScenarioError(f'missing; a {self.type} fault needs '
                                        f'{sorted(k for k, f in spec.items() if f.required)}',
                                        _source, _index, name)
                value = spec_field.default
                if isinstance(value, np.ndarray):
                    value = value.copy()
            else:
                value = spec_field.parse(values[name], self._error(name))
            setattr(self, name, value)
        if self.end_s is not None and self.end_s <= self.start_s:
            raise self._error('end_s')(f'must be after start_s ({self.start_s} s), got '
                                       f'{self.end_s}')
        self._check()
        self.reset()

    def _error(self, name):
        def make(message):
            return ScenarioError(message, self.source, self.index, name)
        return make

    def _check(self):
        """Cross-field checks of a subclass (raise via ``self._error(field)``)."""

    def level(self, t):
        """Envelope ``e(t)`` in [0, 1] at plant time ``t`` (s)."""
        ended = self.end_s is not None and t >= self.end_s - _TIME_EPS
        if t < self.start_s - _TIME_EPS or ended:
            return 0.0
        if self.ramp_s > 0.0:
            return min(1.0, max(0.0, (t - self.start_s) / self.ramp_s))
        return 1.0

    def reset(self, rng=None):
        """Forget internal state (buffers, held values); give the fault its random generator."""
        self.rng = rng if rng is not None else np.random.default_rng(0)

    def bind(self, joint_names):
        """Resolve joint names to indices in ``joint_names`` (checked by the scenario)."""

    def joints_used(self):
        """Joint names this fault refers to (checked by :meth:`FaultScenario.bind`)."""
        joint = getattr(self, 'joint', None)
        return [joint] if joint is not None else []

    def links_used(self):
        """Link names this fault refers to."""
        return []

    def to_dict(self):
        """Return the fault as a scenario mapping (round-trips through :func:`fault_from_dict`)."""
        out = {'type': self.type}
        for name in list(_COMMON) + list(self.FIELDS):
            value = getattr(self, name)
            if value is None:
                continue
            out[name] = value.tolist() if isinstance(value, np.ndarray) else value
        return out

    def __repr__(self):
        return f'{type(self).__name__}({self.to_dict()})'


class SensorFault(Fault):
    """
    A fault of the sensor interface: it transforms measurements.

    ``sent_samples_only`` says which samples of a plant that sends every k-th step's sample
    (:class:`~twin_sim.plant.Plant`'s ``publish_every``) it sees: False (a fault of the
    sensor, on every step's sample) or True (a fault of the robot's messages, on the sent
    samples only).
    """

    kind = 'sensor'
    sent_samples_only = False

    def apply(self, m, t):
        """
        Return the measurement as this fault lets it through.

        Parameters
        ----------
        m : Measurement or None
            The sample so far (None if an earlier fault dropped it); may be modified in place.
        t : float
            Plant time, s.

        Returns
        -------
        Measurement or None

        """
        raise NotImplementedError


class PhysicalFault(Fault):
    """A fault of the robot itself: it acts on the simulated world before each step."""

    kind = 'physical'

    def contribute(self, effects, t):
        """Add this fault's effect at plant time ``t`` (s) to a :class:`PhysicalEffects`."""
        raise NotImplementedError


# ---------------------------------------------------------------------------- sensor faults
class _SignalFault(SensorFault):
    """A sensor fault on one signal of one joint, or on the wrench."""

    FIELDS = {
        'signal': _Field('choice', required=True, choices=SIGNALS),
        'joint': _Field('joint', help='joint name'),
        'component': _Field('choice', choices=WRENCH_COMPONENTS),
    }

    def _check(self):
        if self.signal == 'wrench':
            if self.joint is not None:
                raise self._error('joint')('not used for signal wrench; use component '
                                           f'({list(WRENCH_COMPONENTS)})')
            self._components = (list(range(6)) if self.component is None else
                                [WRENCH_COMPONENTS.index(self.component)])
        else:
            if self.joint is None:
                raise self._error('joint')(f'missing; signal {self.signal} needs the joint '
                                           f'name')
            if self.component is not None:
                raise self._error('component')('only used with signal wrench')

    def bind(self, joint_names):
        """Resolve the joint name to its index in ``joint_names``."""
        self._j = None if self.joint is None else list(joint_names).index(self.joint)

    def _array(self, m):
        if self.signal == 'wrench':
            return m.wrench
        return {'position': m.q, 'velocity': m.qd, 'effort': m.effort}[self.signal]

    def _indices(self):
        return self._components if self.signal == 'wrench' else [self._j]


class SensorBias(_SignalFault):
    """A constant offset on one signal: reads ``+ level * size`` (signal units)."""

    type = 'sensor_bias'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = dict(_SignalFault.FIELDS,
                  size=_Field('float', required=True, help='signal units'))

    def apply(self, m, t):
        e = self.level(t)
        if m is None or e == 0.0:
            return m
        arr = self._array(m)
        if arr is not None:
            arr[self._indices()] += e * self.size
        return m


class SensorNoise(_SignalFault):
    """Additive zero-mean Gaussian noise of standard deviation ``level * size``."""

    type = 'sensor_noise'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = dict(_SignalFault.FIELDS,
                  size=_Field('float', required=True, low=0.0,
                              help='standard deviation, signal units'))

    def apply(self, m, t):
        e = self.level(t)
        if m is None or e == 0.0:
            return m
        arr = self._array(m)
        if arr is not None:
            idx = self._indices()
            arr[idx] += e * self.size * self.rng.standard_normal(len(idx))
        return m


class StuckSensor(_SignalFault):
    """The signal freezes at the value it had at ``start_s`` while the level is > 0."""

    type = 'stuck_sensor'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = dict(_SignalFault.FIELDS)

    def _check(self):
        super()._check()
        if self.ramp_s != 0.0:
            raise self._error('ramp_s')('a stuck sensor has no ramp; set ramp_s: 0')

    def reset(self, rng=None):
        super().reset(rng)
        self._held = None

    def apply(self, m, t):
        if self.level(t) == 0.0:
            self._held = None
            return m
        if m is None:
            return None
        arr = self._array(m)
        if arr is None:
            return m
        idx = self._indices()
        if self._held is None:
            self._held = arr[idx].copy()
        arr[idx] = self._held
        return m


class Dropout(SensorFault):
    """Samples are lost with probability ``level * size``."""

    type = 'dropout'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = {
        'size': _Field('float', required=True, low=0.0, high=1.0, help='probability'),
        'signal': _Field('choice', default='all', choices=('all', 'wrench')),
    }

    def apply(self, m, t):
        e = self.level(t)
        if m is None or e == 0.0:
            return m
        if self.rng.random() < e * self.size:
            if self.signal == 'all':
                return None
            m.wrench = None
        return m


class Delay(SensorFault):
    """
    Whole sent samples come out ``level * size`` seconds late, with their original stamps.

    The robot's messages are late, not its sensor: the delay sees the samples the robot sends
    only (``sent_samples_only``; a plant that publishes every k-th step gives it those steps'
    samples), so a delayed sample keeps a stamp of the publish grid and comes out at the first
    sent step at least ``level * size`` after its stamp: the delay rounded up to whole sample
    periods (a 20 ms delay of a 125 Hz robot sends each sample 24 ms late).
    """

    type = 'delay'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = {'size': _Field('float', required=True, low=0.0, help='s')}
    sent_samples_only = True

    def reset(self, rng=None):
        super().reset(rng)
        self._buffer = deque()
        self._last_out = -math.inf

    def apply(self, m, t):
        if m is not None:
            self._buffer.append(m)
        delay = self.level(t) * self.size
        due = t - delay + _TIME_EPS
        out = None
        # the newest buffered sample that is due
        while self._buffer and self._buffer[0].t <= due:
            out = self._buffer.popleft()
        if out is not None:
            # keep it for a later, shorter delay? No: never send a sample twice.
            if out.t <= self._last_out:
                return None
            self._last_out = out.t
            return out
        return None


# ---------------------------------------------------------------------------- physical faults
@dataclass
class PhysicalEffects:
    """
    What the physical faults ask of the world for one step (model joint order).

    Attributes
    ----------
    friction_scale : (n,) float
        Multiplies the nominal viscous and Coulomb friction.
    friction_add : (n,) N·m
        Added Coulomb friction.
    torque_fraction : (n,) float
        Motor torque limit as a fraction of the effort limit.
    locked : set of str
        Joints to hold still.
    payloads : list
        Extra payloads ``(mass kg, com (3,) m, inertia (3, 3) kg m^2)`` in the sensor frame.
    forces : list
        External forces ``(link, force_world (3,) N, point_link (3,) m)``.

    """

    friction_scale: np.ndarray
    friction_add: np.ndarray
    torque_fraction: np.ndarray
    locked: set = field(default_factory=set)
    payloads: list = field(default_factory=list)
    forces: list = field(default_factory=list)

    @classmethod
    def nominal(cls, n):
        """Effects of no fault for ``n`` joints."""
        return cls(np.ones(n), np.zeros(n), np.ones(n))


class _JointPhysical(PhysicalFault):
    FIELDS = {'joint': _Field('joint', required=True, help='joint name')}

    def bind(self, joint_names):
        """Resolve the joint name to its index in ``joint_names``."""
        self._j = list(joint_names).index(self.joint)


class FrictionIncrease(_JointPhysical):
    """Joint friction grows: ``+ level * size`` N·m Coulomb, or times ``1 + level*(size-1)``."""

    type = 'friction_increase'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = dict(_JointPhysical.FIELDS,
                  size=_Field('float', required=True, low=0.0,
                              help='N·m added Coulomb friction, or a factor with mode: scale'),
                  mode=_Field('choice', default='add', choices=('add', 'scale')))

    def contribute(self, effects, t):
        e = self.level(t)
        if e == 0.0:
            return
        if self.mode == 'add':
            effects.friction_add[self._j] += e * self.size
        else:
            effects.friction_scale[self._j] *= 1.0 + e * (self.size - 1.0)


class TorqueSaturation(_JointPhysical):
    """The joint's motor torque limit drops to ``size`` times its effort limit."""

    type = 'torque_saturation'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = dict(_JointPhysical.FIELDS,
                  size=_Field('float', required=True, low=0.0, high=1.0,
                              help='fraction of the effort limit'))

    def contribute(self, effects, t):
        e = self.level(t)
        if e > 0.0:
            fraction = 1.0 - e * (1.0 - self.size)
            effects.torque_fraction[self._j] = min(effects.torque_fraction[self._j], fraction)


class JointLock(_JointPhysical):
    """The joint seizes where it is while the level is > 0."""

    type = 'joint_lock'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = dict(_JointPhysical.FIELDS)

    def _check(self):
        if self.ramp_s != 0.0:
            raise self._error('ramp_s')('a joint lock has no ramp; set ramp_s: 0')

    def contribute(self, effects, t):
        if self.level(t) > 0.0:
            effects.locked.add(self.joint)


class PayloadChange(PhysicalFault):
    """The tool picks up a payload of ``level * size`` kg (a solid sphere at ``com``)."""

    type = 'payload_change'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = {
        'size': _Field('float', required=True, low=0.0, help='kg'),
        'com': _Field('vec3', default=np.zeros(3), help='m, sensor frame'),
        'radius_m': _Field('float', default=0.05, low=0.0, help='m'),
    }

    def contribute(self, effects, t):
        e = self.level(t)
        if e > 0.0:
            mass = e * self.size
            inertia = 0.4 * mass * self.radius_m ** 2 * np.eye(3)
            effects.payloads.append((mass, self.com.copy(), inertia))


class CollisionForce(PhysicalFault):
    """An external force of ``level * size`` N on a link (a collision or a push)."""

    type = 'collision_force'  # noqa: A003 (the scenario format's 'type' key)
    FIELDS = {
        'size': _Field('float', required=True, low=0.0, help='N'),
        'direction': _Field('vec3', default=np.array([1.0, 0.0, 0.0]), help='world frame'),
        'link': _Field('str', help='link name; default the payload frame'),
        'point': _Field('vec3', default=np.zeros(3), help='m, link frame'),
    }

    def _check(self):
        norm = float(np.linalg.norm(self.direction))
        if norm == 0.0:
            raise self._error('direction')('must not be the zero vector')
        self._unit = self.direction / norm

    def links_used(self):
        """Return the link the force acts on (if named)."""
        return [self.link] if self.link is not None else []

    def contribute(self, effects, t):
        e = self.level(t)
        if e > 0.0:
            effects.forces.append((self.link, e * self.size * self._unit, self.point.copy()))


#: Fault classes by ``type``.
FAULT_TYPES = {cls.type: cls for cls in (
    SensorBias, SensorNoise, Dropout, Delay, StuckSensor, FrictionIncrease, PayloadChange,
    CollisionForce, JointLock, TorqueSaturation)}


def fault_from_dict(data, *, source='<dict>', index=None):
    """
    Build a fault from a scenario mapping (``{'type': ..., 'start_s': ..., ...}``).

    Raises
    ------
    ScenarioError
        Unknown type, unknown/missing field, wrong type or range; the message names the field.

    """
    if not isinstance(data, dict):
        raise ScenarioError(f'each fault must be a mapping with a type, got {data!r}', source,
                            index)
    kind = data.get('type')
    if kind is None:
        raise ScenarioError(f'missing; one of {sorted(FAULT_TYPES)}', source, index, 'type')
    if kind not in FAULT_TYPES:
        raise ScenarioError(f'unknown fault type {kind!r}; one of {sorted(FAULT_TYPES)}',
                            source, index, 'type')
    values = {k: v for k, v in data.items() if k != 'type'}
    bad = [k for k in values if not isinstance(k, str)]
    if bad:
        raise ScenarioError(f'field names must be strings, got {bad}', source, index)
    return FAULT_TYPES[kind](_source=source, _index=index, **values)


# ---------------------------------------------------------------------------- scenarios
def scenario_path(name):
    """Path of a scenario given a file path or a packaged name (``'demo'``)."""
    try:
        return Path(resources.fault_scenario(name))
    except FileNotFoundError as exc:
        raise ScenarioError(str(exc), str(name)) from None


def list_scenarios():
    """Names of the packaged scenarios in ``config/faults/``."""
    return resources.list_configs('faults')


_TOP_FIELDS = ('name', 'description', 'duration_s', 'faults')


@dataclass
class FaultScenario:
    """
    A named list of faults.

    Attributes
    ----------
    name : str
    faults : list of Fault
    description : str
    duration_s : float or None
        How long the scenario is meant to run, s.
    source : str
        Where it came from (file path or ``'<dict>'``), used in error messages.

    """

    name: str
    faults: list
    description: str = ''
    duration_s: Optional[float] = None
    source: str = '<dict>'

    @classmethod
    def from_dict(cls, data, *, source='<dict>', joint_names=None, link_names=None):
        """
        Build and check a scenario from a mapping (the parsed YAML).

        Parameters
        ----------
        data : dict
            The parsed scenario (as read from its YAML file).
        source : str
            Name used in error messages.
        joint_names, link_names : sequence of str, optional
            If given, the scenario is bound (:meth:`bind`) to this robot.

        Raises
        ------
        ScenarioError

        """
        if not isinstance(data, dict):
            raise ScenarioError(f'a scenario must be a mapping with name and faults, got '
                                f'{type(data).__name__}', source)
        unknown = [k for k in data if k not in _TOP_FIELDS]
        if unknown:
            raise ScenarioError(f'unknown top-level field(s) {unknown}; allowed: '
                                f'{list(_TOP_FIELDS)}', source, field=str(unknown[0]))
        name = data.get('name')
        if not isinstance(name, str) or not name:
            raise ScenarioError(f'must be a non-empty string, got {name!r}', source,
                                field='name')
        description = data.get('description', '')
        if not isinstance(description, str):
            raise ScenarioError(f'must be a string, got {description!r}', source,
                                field='description')
        duration = data.get('duration_s')
        if duration is not None:
            duration = _Field('float', low=0.0, help='s').parse(
                duration, lambda msg: ScenarioError(msg, source, field='duration_s'))
            if duration <= 0.0:
                raise ScenarioError('must be > 0 s', source, field='duration_s')
        if 'faults' not in data:
            raise ScenarioError('missing; give a list of faults (empty for none)', source,
                                field='faults')
        raw = data['faults']
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise ScenarioError(f'must be a list, got {type(raw).__name__}', source,
                                field='faults')
        faults = [fault_from_dict(item, source=source, index=i) for i, item in enumerate(raw)]
        scenario = cls(name, faults, description, duration, source)
        if joint_names is not None:
            scenario.bind(joint_names, link_names)
        return scenario

    @classmethod
    def load(cls, path, *, joint_names=None, link_names=None):
        """
        Load a scenario YAML (a path, or the name of a packaged scenario).

        Raises
        ------
        ScenarioError
            Unreadable file, invalid YAML or any problem of :meth:`from_dict`.

        """
        path = scenario_path(path)
        try:
            with open(path) as handle:
                data = load_yaml(handle)
        except (OSError, UnicodeDecodeError) as exc:      # missing, or not a text file
            raise ScenarioError(f'cannot read: {exc}', str(path)) from exc
        except yaml.YAMLError as exc:
            raise ScenarioError(f'invalid YAML: {exc}', str(path)) from exc
        return cls.from_dict(data, source=str(path), joint_names=joint_names,
                             link_names=link_names)

    def bind(self, joint_names, link_names=None):
        """
        Check the faults' joints (and links) against a robot and resolve joint indices.

        Raises
        ------
        ScenarioError
            A fault names a joint or link the robot does not have.

        """
        joint_names = list(joint_names)
        for i, fault in enumerate(self.faults):
            for joint in fault.joints_used():
                if joint not in joint_names:
                    raise ScenarioError(f'unknown joint {joint!r}; the robot has {joint_names}',
                                        self.source, i, 'joint')
            if link_names is not None:
                for link in fault.links_used():
                    if link not in link_names:
                        raise ScenarioError(f'unknown link {link!r}; the robot has '
                                            f'{sorted(link_names)}', self.source, i, 'link')
            fault.bind(joint_names)
        return self

    @property
    def sensor_faults(self):
        """Return the sensor faults, in scenario order."""
        return [f for f in self.faults if f.kind == 'sensor']

    @property
    def physical_faults(self):
        """Return the physical faults, in scenario order."""
        return [f for f in self.faults if f.kind == 'physical']

    def to_dict(self):
        """Return the scenario as a mapping (what :meth:`from_dict` reads)."""
        out = {'name': self.name}
        if self.description:
            out['description'] = self.description
        if self.duration_s is not None:
            out['duration_s'] = self.duration_s
        out['faults'] = [f.to_dict() for f in self.faults]
        return out
