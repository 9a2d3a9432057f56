"""
Domain randomization: draw robot variants around the identified (or URDF) parameters.

A randomization file (``config/randomization/*.yaml``) gives, per quantity, the range a variant
draws it from::

    version: 1
    links:                          # the body each joint moves (its child link)
      mass_scale: [0.95, 1.05]      # multiplies the mass
      com_offset_m: [-0.005, 0.005] # added to each centre-of-mass coordinate (link frame)
      inertia_scale: [0.9, 1.1]     # multiplies the rotational inertia about the CoM
      joints:                       # optional per-joint overrides of the fields above
        joint3: {mass_scale: [0.8, 1.2]}
    friction: {viscous_scale: [0.8, 1.25], coulomb_scale: [0.8, 1.25]}
    payload: {mass_kg: [0.0, 3.0], com_x_m: 0.0, com_y_m: 0.0, com_z_m: [0.03, 0.08],
              radius_m: 0.03}
    sensor: {position_noise_std_rad: [0.0, 2.0e-5], velocity_noise_std_rad_s: [0.0, 1.0e-3],
             effort_noise_std_nm: [0.0, 0.05], force_noise_std_n: [0.0, 0.2],
             torque_noise_std_nm: [0.0, 0.01], delay_s: [0.0, 0.002]}
    actuator: {effort_limit_scale: [0.95, 1.0], velocity_limit_scale: [0.95, 1.0]}

A range is a number (fixed), ``[low, high]`` (uniform) or
``{low: .., high: .., distribution: uniform | loguniform}``. Sections and fields left out keep
the nominal value (scale 1, offset 0, no payload, no noise, no delay). ``links``, ``friction``
and ``actuator`` take per-joint overrides under ``joints:``.

A randomization draws variants *of this robot*, so values no variant of it can have are refused
(:class:`RandomizationError`) and large ones are accepted with a :class:`RandomizationWarning`
(``SCHEMA``, field by field, says why):

================================================  ===============  ==============
field                                             refused outside  warned outside
================================================  ===============  ==============
``mass_scale``, ``inertia_scale``                 [0.1, 10]        [0.5, 2]
``com_offset_m`` (each coordinate)                abs <= 0.5 m     abs <= 0.05 m
``viscous_scale``, ``coulomb_scale``              <= 20            <= 5
``payload.com_{x,y,z}_m``                         abs <= 2 m       abs <= 0.5 m
``payload.radius_m``                              <= 1 m           <= 0.3 m
``position_noise_std_rad``                        <= 0.1 rad       <= 1e-3 rad
``velocity_noise_std_rad_s``                      <= 10 rad/s      <= 0.1 rad/s
``delay_s``                                       <= 1 s           <= 0.05 s
``effort_limit_scale``, ``velocity_limit_scale``  [0.1, 10]        [0.5, 2]
================================================  ===============  ==============

Payload mass and effort, force and torque noise depend on the robot's size and have no bound
here. A larger change than these is a fault: give it as a scenario fault
(``friction_increase``, ``sensor_noise``, ``delay``, ``payload_change``), not as a range.

Reproducibility: variant ``i`` of seed ``s`` is drawn from ``SeedSequence(s).spawn(i + 1)[i]``
(the ``i``-th spawned child), so it depends only on ``(s, i)``, never on how many variants are
drawn, by how many workers, or in which order. Every field consumes its random numbers whether
or not its range is degenerate, so narrowing one range never changes the draws of another.

The nominal values come from the URDF, or from a ``params.yaml`` written by ``robot-twin sysid``
(:class:`NominalDynamics`); :func:`write_variant_urdf` writes a variant as a URDF that the
PyBullet plant loads, so any robot the plant can load can be randomized.
"""
from dataclasses import dataclass, field
import math
import os
from pathlib import Path
import warnings
import xml.etree.ElementTree as ElementTree

import numpy as np
from transforms3d.euler import euler2mat
from twin_sim import resources
from twin_sim.yaml_numbers import load_yaml
import yaml

__all__ = [
    'RandomizationError', 'RandomizationWarning', 'Range', 'RandomizationSpec', 'Variant',
    'BodyInertial', 'NominalDynamics', 'load_randomization', 'deep_merge', 'write_variant_urdf',
    'variant_seed_sequence', 'write_randomized_robot',
]

#: Name of the file in config/randomization used when no randomization file is given.
DEFAULT_RANDOMIZATION = 'default'


class RandomizationError(ValueError):
    """A randomization file or override is malformed; the message names the field."""


@dataclass(frozen=True)
class Range:
    """
    A scalar range a variant draws one value from.

    Parameters
    ----------
    low, high : float
        Bounds, ``low <= high``; equal bounds give a fixed value.
    distribution : str
        ``'uniform'`` or ``'loguniform'`` (uniform in ``log``; needs ``low > 0``).

    """

    low: float
    high: float
    distribution: str = 'uniform'

    @property
    def width(self):
        """``high - low``."""
        return self.high - self.low

    def draw(self, u):
        """Map uniform numbers ``u`` in ``[0, 1)`` (any shape) to values of this range."""
        u = np.asarray(u, dtype=float)
        if self.distribution == 'loguniform':
            lo, hi = math.log(self.low), math.log(self.high)
            return np.exp(lo + u * (hi - lo))
        return self.low + u * (self.high - self.low)


class RandomizationWarning(UserWarning):
    """A randomization range is plausible but large (the message says which and why)."""


@dataclass(frozen=True)
class _FieldSpec:
    default: float
    minimum: float = -math.inf
    strictly_positive: bool = False
    unit: str = ''
    #: plausible values: outside ``refuse`` a range is refused, outside ``warn`` it is accepted
    #: with a :class:`RandomizationWarning`; ``(low, high)``, None for no bound. For offsets
    #: (``symmetric``) the bound is on the magnitude ``|value|``.
    refuse: tuple = (None, None)
    warn: tuple = (None, None)
    symmetric: bool = False
    why: str = ''


_SCALE_WHY = ('a link of one robot model is known to a few per cent (CAD, identification); a '
              'factor of 2 is another structure and a factor of 10 another robot, not a '
              'variant of this one')
_FRICTION_WHY = ('gearbox friction of one model varies with unit, temperature and wear by up '
                 'to a few times; more is a fault (a scenario fault friction_increase), not a '
                 'randomization')
_LIMIT_WHY = ('the limits are the ratings of the actuators; below half of them the arm may not '
              'hold itself against gravity, beyond twice them it is another drive')
#: Every section and field a randomization file may set: its default, lower bound and the
#: plausible values (refused outside ``refuse``, warned about outside ``warn``).
SCHEMA = {
    'links': {
        'mass_scale': _FieldSpec(1.0, 0.0, True, refuse=(0.1, 10.0), warn=(0.5, 2.0),
                                 why=_SCALE_WHY),
        'com_offset_m': _FieldSpec(0.0, unit='m', refuse=(None, 0.5), warn=(None, 0.05),
                                   symmetric=True,
                                   why='a centre of mass lies within its link and is known '
                                       'to a few cm; half a metre puts it outside most links '
                                       'of an arm'),
        'inertia_scale': _FieldSpec(1.0, 0.0, True, refuse=(0.1, 10.0), warn=(0.5, 2.0),
                                    why=_SCALE_WHY),
    },
    'friction': {
        'viscous_scale': _FieldSpec(1.0, 0.0, refuse=(None, 20.0), warn=(None, 5.0),
                                    why=_FRICTION_WHY),
        'coulomb_scale': _FieldSpec(1.0, 0.0, refuse=(None, 20.0), warn=(None, 5.0),
                                    why=_FRICTION_WHY),
    },
    'payload': {
        'mass_kg': _FieldSpec(0.0, 0.0, unit='kg'),
        'com_x_m': _FieldSpec(0.0, unit='m', refuse=(None, 2.0), warn=(None, 0.5),
                              symmetric=True, why='a payload sits on the flange of the tool'),
        'com_y_m': _FieldSpec(0.0, unit='m', refuse=(None, 2.0), warn=(None, 0.5),
                              symmetric=True, why='a payload sits on the flange of the tool'),
        'com_z_m': _FieldSpec(0.0, unit='m', refuse=(None, 2.0), warn=(None, 0.5),
                              symmetric=True, why='a payload sits on the flange of the tool'),
        'radius_m': _FieldSpec(0.0, 0.0, unit='m', refuse=(None, 1.0), warn=(None, 0.3),
                               why='a payload sits on the flange of the tool'),
    },
    'sensor': {
        'position_noise_std_rad': _FieldSpec(
            0.0, 0.0, unit='rad', refuse=(None, 0.1), warn=(None, 1.0e-3),
            why='joint encoders resolve 1e-4 rad or better; noisier is a broken sensor (a '
                'scenario fault sensor_noise)'),
        'velocity_noise_std_rad_s': _FieldSpec(0.0, 0.0, unit='rad/s', refuse=(None, 10.0),
                                               warn=(None, 0.1),
                                               why='more is a broken sensor'),
        'effort_noise_std_nm': _FieldSpec(0.0, 0.0, unit='N m'),
        'force_noise_std_n': _FieldSpec(0.0, 0.0, unit='N'),
        'torque_noise_std_nm': _FieldSpec(0.0, 0.0, unit='N m'),
        'delay_s': _FieldSpec(0.0, 0.0, unit='s', refuse=(None, 1.0), warn=(None, 0.05),
                              why='robots stream joint states at 100 Hz or more; a latency '
                                  'of a second is an outage (a scenario fault delay or '
                                  'dropout), not a variant'),
    },
    'actuator': {
        'effort_limit_scale': _FieldSpec(1.0, 0.0, True, refuse=(0.1, 10.0), warn=(0.5, 2.0),
                                         why=_LIMIT_WHY),
        'velocity_limit_scale': _FieldSpec(1.0, 0.0, True, refuse=(0.1, 10.0),
                                           warn=(0.5, 2.0), why=_LIMIT_WHY),
    },
}
#: Sections whose fields are per joint and accept ``joints: {name: {field: range}}``.
PER_JOINT_SECTIONS = ('links', 'friction', 'actuator')


def deep_merge(base, overrides):
    """
    Return ``base`` with ``overrides`` merged in (mappings recursively, other values replaced).

    Parameters
    ----------
    base, overrides : dict
        Plain YAML-like mappings; neither is modified.

    """
    merged = dict(base)
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _parse_range(value, where, spec):
    """Turn a YAML range (number, [low, high] or mapping) into a validated :class:`Range`."""
    dist = 'uniform'
    if isinstance(value, bool):
        raise RandomizationError(f'{where}: expected a number or [low, high], got {value!r}')
    if isinstance(value, (int, float)):
        low = high = value
    elif isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise RandomizationError(
                f'{where}: a range is [low, high] (two numbers), got {len(value)} values')
        low, high = value
    elif isinstance(value, dict):
        unknown = set(value) - {'low', 'high', 'distribution'}
        if unknown:
            raise RandomizationError(
                f'{where}: unknown key(s) {sorted(unknown)}; a range mapping has low, high and '
                f'optional distribution')
        if 'low' not in value or 'high' not in value:
            raise RandomizationError(f'{where}: a range mapping needs both low and high')
        low, high = value['low'], value['high']
        dist = value.get('distribution', 'uniform')
        if dist not in ('uniform', 'loguniform'):
            raise RandomizationError(
                f'{where}.distribution: {dist!r} is not one of uniform, loguniform')
    else:
        raise RandomizationError(
            f'{where}: expected a number, [low, high] or {{low, high}}, got {value!r}')
    for name, bound in (('low', low), ('high', high)):
        if isinstance(bound, bool) or not isinstance(bound, (int, float)) \
                or not math.isfinite(bound):
            raise RandomizationError(f'{where}: {name} must be a finite number, got {bound!r}')
    low, high = float(low), float(high)
    if low > high:
        raise RandomizationError(f'{where}: low {low} is above high {high}')
    if spec.strictly_positive and low <= spec.minimum:
        raise RandomizationError(f'{where}: must be > {spec.minimum}, got low {low}')
    if low < spec.minimum:
        raise RandomizationError(f'{where}: must be >= {spec.minimum}, got low {low}')
    if dist == 'loguniform' and low <= 0.0:
        raise RandomizationError(f'{where}: a loguniform range needs low > 0, got {low}')
    _check_plausible(low, high, where, spec)
    return Range(low, high, dist)


def _plausibility(low, high, bounds, spec):
    """Return the first value of ``[low, high]`` outside ``bounds`` and the bound, or None."""
    bottom, top = bounds
    if spec.symmetric:
        value = max(abs(low), abs(high))
        return (value, f'|value| <= {top:g}') if top is not None and value > top else None
    if bottom is not None and low < bottom:
        return low, f'>= {bottom:g}'
    if top is not None and high > top:
        return high, f'<= {top:g}'
    return None


def _check_plausible(low, high, where, spec):
    """Refuse a range outside the field's plausible values; warn when it is merely large."""
    unit = f' {spec.unit}' if spec.unit else ''
    bad = _plausibility(low, high, spec.refuse, spec)
    if bad is not None:
        raise RandomizationError(
            f'{where}: {bad[0]:g}{unit} is not a randomization of this robot (plausible: '
            f'{bad[1]}{unit}; {spec.why})')
    large = _plausibility(low, high, spec.warn, spec)
    if large is not None:
        warnings.warn(f'{where}: {large[0]:g}{unit} is large for a randomization (usual: '
                      f'{large[1]}{unit}; {spec.why}); check that it is meant',
                      RandomizationWarning, stacklevel=2)


def variant_seed_sequence(seed, index):
    """
    Return the :class:`numpy.random.SeedSequence` of variant ``index`` under ``seed``.

    It equals ``SeedSequence(seed).spawn(index + 1)[index]``.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise RandomizationError(f'seed must be a non-negative integer, got {seed!r}')
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or index < 0:
        raise RandomizationError(f'variant index must be a non-negative integer, got {index!r}')
    return np.random.SeedSequence(int(seed), spawn_key=(int(index),))


@dataclass
class Variant:
    """
    One randomized robot: multipliers and offsets around the nominal parameters.

    Attributes
    ----------
    index, seed : int
        Which variant of which seed this is.
    joint_names : tuple of str
        Model joint order, length ``n``.
    mass_scale, inertia_scale : (n,) ndarray
        Multipliers of each moved body's mass and of its rotational inertia about its CoM (the
        inertia also scales with the mass: a heavier body of the same shape).
    com_offset_m : (n, 3) ndarray, m
        Added to each body's centre of mass, in its link frame.
    viscous_scale, coulomb_scale : (n,) ndarray
        Multipliers of the joint friction coefficients.
    effort_limit_scale, velocity_limit_scale : (n,) ndarray
        Multipliers of the actuator limits.
    payload_mass_kg : float, kg
        Payload on the tool; 0 means none.
    payload_com_m : (3,) ndarray, m
        Payload centre of mass in the force-torque sensor frame.
    payload_radius_m : float, m
        Radius of the solid sphere the payload inertia is modelled as.
    position_noise_std_rad, velocity_noise_std_rad_s, effort_noise_std_nm : float
        Standard deviation of white noise added to each joint measurement.
    force_noise_std_n, torque_noise_std_nm : float
        Standard deviation of white noise added to the wrench measurement.
    delay_s : float, s
        Measurement latency: samples reach the twin this late, with their original stamps.
    noise_seed : int
        Seed for the variant's noise and its plant (independent of the parameter draws).

    """

    index: int
    seed: int
    joint_names: tuple
    mass_scale: np.ndarray
    com_offset_m: np.ndarray
    inertia_scale: np.ndarray
    viscous_scale: np.ndarray
    coulomb_scale: np.ndarray
    effort_limit_scale: np.ndarray
    velocity_limit_scale: np.ndarray
    payload_mass_kg: float = 0.0
    payload_com_m: np.ndarray = field(default_factory=lambda: np.zeros(3))
    payload_radius_m: float = 0.0
    position_noise_std_rad: float = 0.0
    velocity_noise_std_rad_s: float = 0.0
    effort_noise_std_nm: float = 0.0
    force_noise_std_n: float = 0.0
    torque_noise_std_nm: float = 0.0
    delay_s: float = 0.0
    noise_seed: int = 0

    @property
    def payload_inertia(self):
        """(3, 3) ndarray, kg m^2: the payload's inertia about its CoM (solid sphere)."""
        return np.eye(3) * (0.4 * self.payload_mass_kg * self.payload_radius_m ** 2)

    @property
    def payload(self):
        """Return the drawn payload as a :class:`~twin_sim.urdf_model.Payload`, or None at 0 kg."""
        from twin_sim.urdf_model import Payload
        if self.payload_mass_kg <= 0.0:
            return None
        return Payload(self.payload_mass_kg, self.payload_com_m, self.payload_inertia)

    def as_flat_dict(self):
        """Return the drawn values as a flat ``{name: float}`` mapping (for CSV and JSON)."""
        flat = {'index': int(self.index), 'seed': int(self.seed)}
        for name in ('mass_scale', 'inertia_scale', 'viscous_scale', 'coulomb_scale',
                     'effort_limit_scale', 'velocity_limit_scale'):
            for joint, value in zip(self.joint_names, getattr(self, name)):
                flat[f'{joint}.{name}'] = float(value)
        for joint, offset in zip(self.joint_names, self.com_offset_m):
            for axis, value in zip('xyz', offset):
                flat[f'{joint}.com_offset_{axis}_m'] = float(value)
        flat['payload.mass_kg'] = float(self.payload_mass_kg)
        for axis, value in zip('xyz', self.payload_com_m):
            flat[f'payload.com_{axis}_m'] = float(value)
        flat['payload.radius_m'] = float(self.payload_radius_m)
        for name in ('position_noise_std_rad', 'velocity_noise_std_rad_s', 'effort_noise_std_nm',
                     'force_noise_std_n', 'torque_noise_std_nm', 'delay_s'):
            flat[f'sensor.{name}'] = float(getattr(self, name))
        return flat


class RandomizationSpec:
    """
    Validated ranges of a randomization file.

    Build with :meth:`from_dict` or :meth:`load` (or :func:`load_randomization`); draw variants
    with :meth:`sample`.
    """

    def __init__(self, ranges, joint_ranges, source='<dict>'):
        self.ranges = ranges                # {(section, field): Range}
        self.joint_ranges = joint_ranges    # {(section, joint, field): Range}
        self.source = source

    @classmethod
    def from_dict(cls, data, source='<dict>'):
        """
        Validate a randomization mapping (the content of a randomization YAML file).

        Raises
        ------
        RandomizationError
            Naming the source and the offending field, for unknown sections or fields, ranges
            that are not ``[low, high]``, inverted or out-of-domain bounds, or a wrong version.

        """
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise RandomizationError(
                f'{source}: a randomization file is a mapping of sections, got '
                f'{type(data).__name__}')
        version = data.get('version', 1)
        if version != 1:
            raise RandomizationError(f'{source}: version: only version 1 is known, got '
                                     f'{version!r}')
        ranges, joint_ranges = {}, {}
        for section, fields in data.items():
            if section == 'version':
                continue
            if section not in SCHEMA:
                raise RandomizationError(
                    f'{source}: unknown section {section!r}; known sections: '
                    f'{", ".join(SCHEMA)}')
            if fields is None:
                continue
            if not isinstance(fields, dict):
                raise RandomizationError(
                    f'{source}: {section}: expected a mapping of fields, got {fields!r}')
            for name, value in fields.items():
                where = f'{source}: {section}.{name}'
                if name == 'joints' and section in PER_JOINT_SECTIONS:
                    if not isinstance(value, dict):
                        raise RandomizationError(
                            f'{where}: expected a mapping {{joint name: {{field: range}}}}')
                    for joint, jfields in value.items():
                        if not isinstance(jfields, dict):
                            raise RandomizationError(
                                f'{where}.{joint}: expected a mapping of fields, got '
                                f'{jfields!r}')
                        for jname, jvalue in jfields.items():
                            jwhere = f'{where}.{joint}.{jname}'
                            spec = cls._field(section, jname, jwhere)
                            joint_ranges[(section, str(joint), jname)] = _parse_range(
                                jvalue, jwhere, spec)
                    continue
                spec = cls._field(section, name, where)
                ranges[(section, name)] = _parse_range(value, where, spec)
        return cls(ranges, joint_ranges, source)

    @staticmethod
    def _field(section, name, where):
        spec = SCHEMA[section].get(name)
        if spec is None:
            extra = ', joints' if section in PER_JOINT_SECTIONS else ''
            raise RandomizationError(
                f'{where}: unknown field; {section} has {", ".join(SCHEMA[section])}{extra}')
        return spec

    @classmethod
    def load(cls, path, overrides=None):
        """
        Read and validate a randomization YAML file, with optional overrides merged in.

        Parameters
        ----------
        path : str or Path
            The YAML file.
        overrides : dict, optional
            Sections/fields that replace the file's (deep merge).

        """
        path = Path(path)
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:      # missing, or not a text file
            raise RandomizationError(f'cannot read randomization file {path}: {exc}') from exc
        try:
            data = load_yaml(text)
        except yaml.YAMLError as exc:
            raise RandomizationError(f'{path}: not valid YAML: {exc}') from exc
        source = str(path)
        if overrides:
            if not isinstance(data, dict) and data is not None:
                raise RandomizationError(f'{path}: a randomization file is a mapping')
            data = deep_merge(data or {}, overrides)
            source += ' (with overrides)'
        return cls.from_dict(data, source)

    def range(self, section, name, joint=None):  # noqa: A003 (public method name)
        """Return the :class:`Range` of a field (the joint's override if any, else the default)."""
        if joint is not None and (section, joint, name) in self.joint_ranges:
            return self.joint_ranges[(section, joint, name)]
        if (section, name) in self.ranges:
            return self.ranges[(section, name)]
        default = SCHEMA[section][name].default
        return Range(default, default)

    def check_joints(self, joint_names):
        """Raise :class:`RandomizationError` if a per-joint override names an unknown joint."""
        known = set(joint_names)
        for section, joint, name in self.joint_ranges:
            if joint not in known:
                raise RandomizationError(
                    f'{self.source}: {section}.joints.{joint}: unknown joint {joint!r}; the '
                    f'robot has {", ".join(joint_names)}')

    def _per_joint(self, rng, section, name, joint_names, axes=None):
        shape = (len(joint_names),) if axes is None else (len(joint_names), axes)
        u = rng.random(shape)
        out = np.empty(shape)
        for j, joint in enumerate(joint_names):
            out[j] = self.range(section, name, joint).draw(u[j])
        return out

    def sample(self, joint_names, seed, index):
        """
        Draw variant ``index`` of ``seed`` for a robot with joints ``joint_names``.

        Parameters
        ----------
        joint_names : sequence of str
            Model joint order, length ``n``.
        seed, index : int
            Non-negative; the variant depends on them only.

        Returns
        -------
        Variant

        """
        joint_names = tuple(joint_names)
        self.check_joints(joint_names)
        params_seq, noise_seq = variant_seed_sequence(seed, index).spawn(2)
        rng = np.random.default_rng(params_seq)
        values = {}
        # Fixed draw order; every field consumes its numbers even when its range is a point.
        for name in ('mass_scale', 'inertia_scale'):
            values[name] = self._per_joint(rng, 'links', name, joint_names)
        values['com_offset_m'] = self._per_joint(rng, 'links', 'com_offset_m', joint_names, 3)
        for name in ('viscous_scale', 'coulomb_scale'):
            values[name] = self._per_joint(rng, 'friction', name, joint_names)
        for name in ('effort_limit_scale', 'velocity_limit_scale'):
            values[name] = self._per_joint(rng, 'actuator', name, joint_names)
        scalar = {}
        for section in ('payload', 'sensor'):
            u = rng.random(len(SCHEMA[section]))
            for k, name in enumerate(SCHEMA[section]):
                scalar[(section, name)] = float(self.range(section, name).draw(u[k]))
        noise_seed = int(np.random.default_rng(noise_seq).integers(2 ** 31 - 1))
        return Variant(
            index=int(index), seed=int(seed), joint_names=joint_names,
            payload_mass_kg=scalar[('payload', 'mass_kg')],
            payload_com_m=np.array([scalar[('payload', f'com_{a}_m')] for a in 'xyz']),
            payload_radius_m=scalar[('payload', 'radius_m')],
            noise_seed=noise_seed,
            **{name: scalar[('sensor', name)] for name in SCHEMA['sensor']},
            **values)


def load_randomization(path=None, overrides=None):
    """
    Load a randomization file (the packaged default when ``path`` is None).

    Parameters
    ----------
    path : str or Path, optional
        Randomization YAML; ``None`` uses ``config/randomization/default.yaml``.
    overrides : dict, optional
        Deep-merged over the file (e.g. from a what-if scenario).

    Returns
    -------
    RandomizationSpec

    """
    if path is None:
        path = resources.randomization_file(DEFAULT_RANDOMIZATION)
    return RandomizationSpec.load(path, overrides)


# ---------------------------------------------------------------------------------------------
# Nominal dynamics and variant URDFs
# ---------------------------------------------------------------------------------------------

@dataclass
class BodyInertial:
    """
    Inertial parameters of one link, in its link frame.

    Attributes
    ----------
    mass : float, kg
    com : (3,) ndarray, m
        Centre of mass in the link frame.
    inertia : (3, 3) ndarray, kg m^2
        Rotational inertia about the CoM, axes of the link frame.

    """

    mass: float
    com: np.ndarray
    inertia: np.ndarray

    def dynamic_parameters(self):
        """(10,) ndarray: pinocchio's ``[m, mc, I_origin]`` vector in the link frame."""
        import pinocchio as pin
        return np.asarray(pin.Inertia(float(self.mass), np.asarray(self.com, float),
                                      np.asarray(self.inertia, float)).toDynamicParameters())

    @classmethod
    def from_dynamic_parameters(cls, pi):
        """Inverse of :meth:`dynamic_parameters` (``pi`` is ``(10,)``; mass must be > 0)."""
        import pinocchio as pin
        inertia = pin.Inertia.FromDynamicParameters(np.asarray(pi, dtype=float))
        return cls(float(inertia.mass), np.array(inertia.lever), np.array(inertia.inertia))

    def randomized(self, mass_scale, inertia_scale, com_offset):
        """Return the body scaled and shifted as a variant prescribes."""
        return BodyInertial(self.mass * mass_scale, np.asarray(self.com) + com_offset,
                            np.asarray(self.inertia) * (mass_scale * inertia_scale))


def _floats(text, count, where):
    try:
        values = [float(v) for v in (text or '').split()]
    except ValueError as exc:
        raise RandomizationError(f'{where}: not numbers: {text!r}') from exc
    if text is None:
        return [0.0] * count
    if len(values) != count:
        raise RandomizationError(f'{where}: expected {count} numbers, got {text!r}')
    return values


def _rpy_matrix(rpy):
    """Rotation matrix of URDF roll-pitch-yaw: about the fixed axes x, then y, then z."""
    return euler2mat(*rpy, axes='sxyz')


def _read_inertial(link):
    """Read a URDF ``<link>``'s ``<inertial>`` as a :class:`BodyInertial` in the link frame."""
    name = link.get('name')
    inertial = link.find('inertial')
    if inertial is None:
        return BodyInertial(0.0, np.zeros(3), np.zeros((3, 3)))
    origin = inertial.find('origin')
    xyz = _floats(origin.get('xyz') if origin is not None else None, 3,
                  f'link {name} inertial origin xyz')
    rpy = _floats(origin.get('rpy') if origin is not None else None, 3,
                  f'link {name} inertial origin rpy')
    mass_el = inertial.find('mass')
    mass = float(mass_el.get('value', 0.0)) if mass_el is not None else 0.0
    inertia_el = inertial.find('inertia')
    get = (lambda k: float(inertia_el.get(k, 0.0))) if inertia_el is not None else \
        (lambda k: 0.0)
    inertia = np.array([[get('ixx'), get('ixy'), get('ixz')],
                        [get('ixy'), get('iyy'), get('iyz')],
                        [get('ixz'), get('iyz'), get('izz')]])
    rot = _rpy_matrix(rpy)
    return BodyInertial(mass, np.array(xyz), rot @ inertia @ rot.T)


@dataclass
class NominalDynamics:
    """
    The parameters a randomization is centred on, per movable joint in model order.

    Attributes
    ----------
    urdf_path : Path
        The robot's URDF.
    joint_names : tuple of str
        Model joint order, length ``n``.
    child_links : tuple of str
        The link each joint moves directly (its URDF child).
    bodies : list of BodyInertial
        The child links' inertial parameters (identified ones when a params file was given).
    viscous : (n,) ndarray, N m s/rad
    coulomb : (n,) ndarray, N m
    effort_limit : (n,) ndarray, N m
    velocity_limit : (n,) ndarray, rad/s
    params_path : Path or None
        The identified ``params.yaml`` applied, if any.
    merged_links : tuple of str
        Links fixed to a child link whose inertia is part of that child link's body here (their
        ``<inertial>`` is left out of a variant URDF); see :func:`_split_identified`.

    """

    urdf_path: Path
    joint_names: tuple
    child_links: tuple
    bodies: list
    viscous: np.ndarray
    coulomb: np.ndarray
    effort_limit: np.ndarray
    velocity_limit: np.ndarray
    params_path: Path = None
    merged_links: tuple = ()

    @classmethod
    def from_urdf(cls, urdf_path, params_path=None, model=None):
        """
        Read the nominal parameters from a URDF, optionally with an identified params.yaml.

        Parameters
        ----------
        urdf_path : str or Path
            The robot's URDF.
        params_path : str or Path, optional
            A ``params.yaml`` from ``robot-twin sysid``. Identified body parameters are the
            composite of each joint's body (its child link plus fixed descendants, in the joint
            frame); the child link gets the identified body minus the URDF inertials of the
            links fixed to it, so the variant URDF has the identified dynamics. When that
            remainder is not a physical body, :func:`_split_identified` decides (and warns if
            the dynamics change). Viscous-Coulomb friction replaces the URDF's ``damping`` and
            ``friction``.
        model : RobotModel, optional
            An already loaded model of ``urdf_path`` (saves a parse). Its force-torque sensor
            link (``ft_frame``) decides which fixed links keep their URDF inertials.

        Raises
        ------
        RandomizationError
            If the URDF cannot be read or an identified body is lighter than the links below
            the force-torque sensor that hang on it.

        """
        from twin_sim.urdf_model import RobotModel
        urdf_path = Path(urdf_path).resolve()
        if model is None:
            model = RobotModel.from_urdf(urdf_path)
        joint_names = tuple(model.joint_names)
        root = _parse_urdf(urdf_path)
        links = {link.get('name'): link for link in root.findall('link')}
        joints = {joint.get('name'): joint for joint in root.findall('joint')}
        child_links, bodies = [], []
        for name in joint_names:
            if name not in joints:
                raise RandomizationError(f'{urdf_path}: joint {name!r} of the model not found')
            child = joints[name].find('child').get('link')
            child_links.append(child)
            bodies.append(_read_inertial(links[child]))
        viscous = np.array(model.damping, dtype=float).reshape(-1)
        coulomb = np.array(model.friction, dtype=float).reshape(-1)
        merged = ()
        if params_path is not None:
            fixed = _FixedLinks(root, model.ft_frame)
            bodies, merged, viscous, coulomb = _apply_identified(
                model, joint_names, child_links, bodies, viscous, coulomb, Path(params_path),
                fixed)
        return cls(urdf_path, joint_names, tuple(child_links), bodies, viscous, coulomb,
                   np.array(model.effort_limit, dtype=float).reshape(-1),
                   np.array(model.velocity_limit, dtype=float).reshape(-1),
                   None if params_path is None else Path(params_path), merged)


def _parse_urdf(urdf_path):
    try:
        return ElementTree.parse(str(urdf_path)).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise RandomizationError(f'cannot read URDF {urdf_path}: {exc}') from exc


def _dynamic_parameter_rows(model, joint_names):
    """Return a model's per-joint body dynamic parameters as an ``(n, 10)`` array."""
    doc = model.dynamic_parameters()
    bodies = doc.get('robot_twin_dynamics', doc)['bodies']
    return np.array([np.asarray(bodies[j]['dynamic_parameters'], dtype=float).reshape(10)
                     for j in joint_names])


class _FixedLinks:
    """
    The links fixed to each link of a URDF, and the ones below its force-torque sensor.

    Parameters
    ----------
    root : Element
        The URDF's ``<robot>``.
    ft_link : str or None
        The force-torque sensor link of the twin's model (``RobotModel.ft_frame``).

    """

    def __init__(self, root, ft_link):
        self._links = {link.get('name'): link for link in root.findall('link')}
        self._fixed = {}            # parent link -> [(child link, (R, p) of the joint origin)]
        for joint in root.findall('joint'):
            if joint.get('type') != 'fixed':
                continue
            origin = joint.find('origin')
            xyz = _floats(origin.get('xyz') if origin is not None else None, 3,
                          f'joint {joint.get("name")} origin xyz')
            rpy = _floats(origin.get('rpy') if origin is not None else None, 3,
                          f'joint {joint.get("name")} origin rpy')
            self._fixed.setdefault(joint.find('parent').get('link'), []).append(
                (joint.find('child').get('link'), (_rpy_matrix(rpy), np.array(xyz))))
        self.ft_link = ft_link

    def below(self, link):
        """Return ``{link: (R, p)}``: every link fixed below ``link``, placed in its frame."""
        out, stack = {}, [(link, (np.eye(3), np.zeros(3)))]
        while stack:
            parent, (rot, pos) = stack.pop()
            for child, (r_j, p_j) in self._fixed.get(parent, ()):
                placed = (rot @ r_j, rot @ p_j + pos)
                out[child] = placed
                stack.append((child, placed))
        return out

    def distal(self, link):
        """
        Return the links fixed below ``link`` that are distal to the force-torque sensor.

        The twin's model predicts the sensor's wrench from their URDF inertials
        (:meth:`twin_sim.urdf_model.RobotModel.ft_wrench`) and the simulated sensor measures
        the bodies below it, so they keep those inertials. Returns ``{link: (R, p)}`` in the
        frame of ``link`` (empty if the sensor is not fixed to ``link``).
        """
        placed = self.below(link)
        if self.ft_link not in placed:
            return {}
        return {name: placed[name] for name in self.below(self.ft_link)}

    def parameters(self, placed):
        """Return the summed dynamic parameters ``(10,)`` of ``placed`` links' inertials."""
        import pinocchio as pin
        total = np.zeros(10)
        for name, (rot, pos) in placed.items():
            body = _read_inertial(self._links[name])
            if body.mass > 0.0:
                inertia = pin.Inertia(body.mass, rot @ body.com + pos,
                                      rot @ body.inertia @ rot.T)
                total += inertia.toDynamicParameters()
        return total

    def has_inertial(self, name):
        """Tell whether link ``name`` has an ``<inertial>``."""
        return self._links[name].find('inertial') is not None


#: Relative tolerance on a body's second moments of mass (see :func:`_second_moments`).
CONSISTENCY_RTOL = 1e-9

#: Smallest second moment of mass of a body :func:`_nearest_consistent` makes, relative to
#: its largest one (a body needs some thickness: PyBullet zeroes an inertia on the triangle
#: inequality's edge).
SECOND_MOMENT_FLOOR = 1e-6


def _second_moments(inertia):
    """
    Principal second moments of mass about the CoM, from the rotational inertia there.

    ``S = tr(I)/2 * 1 - I`` (kg m^2) is the body's ``sum m r r^T`` about its centre of mass. A
    body is physical iff its mass is positive and ``S`` is positive semi-definite (the inertia
    is then positive semi-definite and satisfies the triangle inequality). Returns
    ``(eigenvalues, eigenvectors)`` of ``S``, ascending.
    """
    inertia = 0.5 * (np.asarray(inertia, float) + np.asarray(inertia, float).T)
    return np.linalg.eigh(0.5 * np.trace(inertia) * np.eye(3) - inertia)


def _is_consistent(pi):
    """Tell whether dynamic parameters ``(10,)`` are a physical body (up to rounding)."""
    if not pi[0] > 0.0:
        return False
    moments = _second_moments(BodyInertial.from_dynamic_parameters(pi).inertia)[0]
    return moments[0] >= -CONSISTENCY_RTOL * max(moments[-1], 0.0)


def _nearest_consistent(body):
    """
    Return the physical body nearest to ``body`` with its mass and centre of mass.

    The second moments of mass about the CoM are raised to at least
    ``SECOND_MOMENT_FLOOR`` times the largest (the nearest positive semi-definite ``S`` in
    the Frobenius norm, floored); mass and first moment, hence gravity torques, are kept.
    """
    moments, axes = _second_moments(body.inertia)
    floor = SECOND_MOMENT_FLOOR * max(moments[-1], 1e-12)
    second = (axes * np.maximum(moments, floor)) @ axes.T
    return BodyInertial(body.mass, np.asarray(body.com, float),
                        np.trace(second) * np.eye(3) - second)


def _moments(values):
    """Format principal inertias (kg m^2) for a message."""
    return '[' + ', '.join(f'{v:.3g}' for v in values) + ']'


def _split_identified(lumped, children, fixed, child_link, joint, params_path):
    """
    Split an identified lumped body into its child link's part and the fixed links' parts.

    ``lumped`` (10,) is the identified body of ``joint`` (its child link plus the links fixed
    to it, in the joint frame); ``children`` (10,) the URDF inertials of those fixed links.

    1. The child link gets ``lumped - children`` if that is a physical body: every link
       keeps its URDF inertial (no change to the file beyond the child link).
    2. Otherwise only the links below the force-torque sensor keep their URDF inertials (the
       twin predicts the sensor's reading from them, the simulated sensor measures them); the
       other fixed links' inertia (the sensor's own body, a flange) is merged into the child
       link, which gets ``lumped - distal``. The lumped dynamics are unchanged.
    3. If that is still not physical (the identified body has less inertia than the URDF
       gives the links below the sensor), the child link's part becomes the nearest physical
       body with the same mass and centre of mass (:func:`_nearest_consistent`), with a
       :class:`RandomizationWarning` saying by how much the lumped body's inertia changed.

    Returns ``(body, merged)``: the child link's :class:`BodyInertial` and the names of the
    links merged into it.

    Raises
    ------
    RandomizationError
        The identified body is not heavier than the links below the sensor.

    """
    own = lumped - children
    if _is_consistent(own):
        return BodyInertial.from_dynamic_parameters(own), ()
    distal = fixed.distal(child_link)
    own = lumped - fixed.parameters(distal)
    merged = tuple(name for name in fixed.below(child_link)
                   if name not in distal and fixed.has_inertial(name))
    if not own[0] > 0.0:
        names = ', '.join(sorted(distal)) or 'none'
        raise RandomizationError(
            f'{params_path}: identified body of joint {joint} ({lumped[0]:.4g} kg) leaves link '
            f'{child_link} with mass {own[0]:.4g} kg <= 0 once the links fixed to it below the '
            f'force-torque sensor ({names}, whose URDF inertials the twin keeps) are '
            'subtracted; re-run sysid or fix the file')
    body = BodyInertial.from_dynamic_parameters(own)
    if _is_consistent(own):
        return body, merged
    fixed_body = _nearest_consistent(body)
    change = np.linalg.eigvalsh(fixed_body.inertia - body.inertia)
    change = change[np.argmax(np.abs(change))]
    identified = np.linalg.eigvalsh(BodyInertial.from_dynamic_parameters(lumped).inertia)
    distal_names = ', '.join(sorted(distal)) or 'none'
    warnings.warn(
        f'{params_path}: the identified body of joint {joint} ({lumped[0]:.4g} kg, principal '
        f'inertias {_moments(identified)} kg m^2 about its centre of mass) has too little '
        f'inertia for the URDF inertials of the links below the force-torque sensor '
        f'({distal_names}), which the twin keeps: link {child_link} would get principal '
        f'inertias {_moments(np.linalg.eigvalsh(body.inertia))} kg m^2, not a physical body. '
        f'It gets the nearest physical one (same mass {body.mass:.4g} kg and centre of mass, '
        f'principal inertias {_moments(np.linalg.eigvalsh(fixed_body.inertia))} kg m^2): the '
        f"simulated rotational inertia of joint {joint}'s body differs from the identified "
        f'one by up to {abs(change):.3g} kg m^2 ({abs(change) / max(identified[-1], 1e-12):.1%} '
        'of its largest principal inertia); mass and centre of mass, hence gravity torques, '
        'are as identified', RandomizationWarning, stacklevel=2)
    return fixed_body, merged


def _apply_identified(model, joint_names, child_links, bodies, viscous, coulomb, params_path,
                      fixed):
    """
    Move identified parameters from ``params_path`` onto the child links and friction.

    Returns the child links' bodies, the links merged into them (:func:`_split_identified`)
    and the viscous and Coulomb coefficients the plant gets. A joint with the Gaz sigmoid gets
    ``coulomb + phi1 / 2`` (the mean of its two saturation levels): the plant's joints have
    viscous-Coulomb friction only.
    """
    identified = model.copy()
    try:
        identified.load_parameters(params_path)
    except (OSError, ValueError) as exc:  # ParametersError names the field; keep it
        raise RandomizationError(f'cannot apply identified parameters: {exc}') from exc
    before = _dynamic_parameter_rows(model, joint_names)
    after = _dynamic_parameter_rows(identified, joint_names)
    new_bodies, merged = [], []
    for j, body in enumerate(bodies):
        if np.array_equal(after[j], before[j]):
            new_bodies.append(body)
            continue
        children = before[j] - body.dynamic_parameters()
        own, links = _split_identified(after[j], children, fixed, child_links[j],
                                       joint_names[j], params_path)
        new_bodies.append(own)
        merged.extend(links)
    friction = identified.friction_model
    viscous = np.array(friction.viscous, dtype=float)
    coulomb = np.array(friction.coulomb, dtype=float) + 0.5 * np.abs(friction.phi1)
    return new_bodies, tuple(merged), viscous, coulomb


def _set_floats(element, key, values):
    element.set(key, ' '.join(repr(float(v)) for v in values))


def write_variant_urdf(nominal, variant, out_path):
    """
    Write the URDF of a variant: the nominal URDF with its bodies, friction and limits changed.

    Each joint's child link gets the variant's mass, CoM and inertia (``<inertial>`` rewritten
    in the link frame, ``rpy`` 0); ``<dynamics damping friction>`` get the scaled viscous and
    Coulomb friction, ``<limit effort velocity>`` the scaled actuator limits. Relative mesh
    file names are made absolute so the copy loads from anywhere. The payload and sensor
    effects are not in the URDF (the plant applies them).

    Parameters
    ----------
    nominal : NominalDynamics
        The nominal model the variant perturbs.
    variant : Variant
        Its ``joint_names`` must equal ``nominal.joint_names``.
    out_path : str or Path
        Where to write.

    Returns
    -------
    Path
        ``out_path``.

    """
    if tuple(variant.joint_names) != tuple(nominal.joint_names):
        raise RandomizationError(
            f'variant joints {variant.joint_names} do not match the robot '
            f'{nominal.joint_names}')
    tree = ElementTree.parse(str(nominal.urdf_path))
    root = tree.getroot()
    links = {link.get('name'): link for link in root.findall('link')}
    joints = {joint.get('name'): joint for joint in root.findall('joint')}
    for j, name in enumerate(nominal.joint_names):
        body = nominal.bodies[j].randomized(variant.mass_scale[j], variant.inertia_scale[j],
                                            variant.com_offset_m[j])
        link = links[nominal.child_links[j]]
        inertial = link.find('inertial')
        if inertial is None:
            inertial = ElementTree.SubElement(link, 'inertial')
        for child in list(inertial):
            inertial.remove(child)
        origin = ElementTree.SubElement(inertial, 'origin')
        _set_floats(origin, 'xyz', body.com)
        origin.set('rpy', '0 0 0')
        ElementTree.SubElement(inertial, 'mass').set('value', repr(float(body.mass)))
        inertia = ElementTree.SubElement(inertial, 'inertia')
        for key, (r, c) in (('ixx', (0, 0)), ('ixy', (0, 1)), ('ixz', (0, 2)),
                            ('iyy', (1, 1)), ('iyz', (1, 2)), ('izz', (2, 2))):
            inertia.set(key, repr(float(body.inertia[r, c])))
        joint = joints[name]
        dynamics = joint.find('dynamics')
        if dynamics is None:
            dynamics = ElementTree.SubElement(joint, 'dynamics')
        dynamics.set('damping', repr(float(nominal.viscous[j] * variant.viscous_scale[j])))
        dynamics.set('friction', repr(float(nominal.coulomb[j] * variant.coulomb_scale[j])))
        limit = joint.find('limit')
        if limit is not None:
            limit.set('effort', repr(float(nominal.effort_limit[j]
                                           * variant.effort_limit_scale[j])))
            limit.set('velocity', repr(float(nominal.velocity_limit[j]
                                             * variant.velocity_limit_scale[j])))
    for name in nominal.merged_links:       # their inertia is in their parent's body
        link = links[name]
        link.remove(link.find('inertial'))
    base_dir = nominal.urdf_path.parent
    for mesh in root.iter('mesh'):
        filename = mesh.get('filename', '')
        if filename and '://' not in filename and not os.path.isabs(filename):
            mesh.set('filename', str((base_dir / filename).resolve()))
    out_path = Path(out_path)
    tree.write(str(out_path), encoding='utf-8', xml_declaration=True)
    return out_path


def write_identified_urdf(urdf_path, params_path, out_path, ft_link=None):
    """
    Write the robot's URDF with the identified dynamics of a ``params.yaml`` put in.

    The plant (HIL, demo) simulates a URDF; this is how it runs with the parameters
    ``robot-twin sysid`` identified (the variant with every scale 1, no offsets).

    Parameters
    ----------
    urdf_path, params_path, out_path : str or Path
        The source URDF, the identified-parameters file and the URDF to write.
    ft_link : str, optional
        The force-torque sensor link (default ``ft_sensor``): the links below it keep their
        URDF inertials (:func:`_split_identified`).

    Returns
    -------
    Path
        ``out_path``.

    """
    nominal = NominalDynamics.from_urdf(urdf_path, params_path, model=_sensor_model(
        urdf_path, ft_link))
    n = len(nominal.joint_names)
    ones = np.ones(n)
    identity = Variant(index=0, seed=0, joint_names=nominal.joint_names, mass_scale=ones,
                       com_offset_m=np.zeros((n, 3)), inertia_scale=ones, viscous_scale=ones,
                       coulomb_scale=ones, effort_limit_scale=ones, velocity_limit_scale=ones)
    return write_variant_urdf(nominal, identity, out_path)


def _sensor_model(urdf_path, ft_link):
    """Return the robot's model with its sensor link ``ft_link`` (None: the default model)."""
    if not ft_link:
        return None
    from twin_sim.urdf_model import RobotModel, URDFError
    try:
        return RobotModel.from_urdf(urdf_path, ft_link=ft_link)
    except URDFError as exc:
        raise RandomizationError(f'cannot read URDF {urdf_path}: {exc}') from None


def write_randomized_robot(urdf_path, spec, seed, index, out_path, params_path=None,
                           ft_link=None):
    """
    Write variant ``index`` of ``seed`` of a robot as a URDF, for a plant to simulate.

    The same variant as sample ``index`` of a what-if run with that seed and ranges (bodies,
    friction, actuator limits; its payload is ``variant.payload``). Used by the HIL plant.

    Parameters
    ----------
    urdf_path : str or Path
        The robot's URDF.
    spec : RandomizationSpec
        The ranges.
    seed, index : int
        Which variant (both >= 0).
    out_path : str or Path
        The URDF to write.
    params_path : str or Path, optional
        Identified dynamics (``params.yaml``) to centre the ranges on.
    ft_link : str, optional
        The force-torque sensor link, as for :func:`write_identified_urdf`.

    Returns
    -------
    path : Path
        ``out_path``.
    variant : Variant
        The drawn values.

    Raises
    ------
    RandomizationError
        Bad URDF or params, or ranges for joints the robot does not have.

    """
    nominal = NominalDynamics.from_urdf(urdf_path, params_path, model=_sensor_model(
        urdf_path, ft_link))
    spec.check_joints(nominal.joint_names)
    variant = spec.sample(nominal.joint_names, seed, index)
    return write_variant_urdf(nominal, variant, out_path), variant
