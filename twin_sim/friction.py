"""
Joint friction models, vectorized over samples and joints.

Two models, both giving the friction torque that the joint drive must overcome (it has the
sign of the velocity, so ``effort = inverse_dynamics + friction``):

- viscous + Coulomb + offset: ``tau_f = viscous * qd + coulomb * s(qd) + offset``, where the
  Coulomb switch ``s`` is ``tanh(qd / smooth_velocity)`` (``smooth_velocity > 0``, default
  :data:`DEFAULT_SMOOTH_VELOCITY`) or ``sign(qd)`` (``smooth_velocity == 0``);
- the sigmoid of Gaz, Cognetti, Oliva, Robuffo Giordano and De Luca, "Dynamic identification
  of the Franka Emika Panda robot with retrieval of feasible parameters using
  penalty-based optimization", IEEE RA-L 2019:
  ``tau_f = phi1 / (1 + exp(-phi2 (qd + phi3))) - phi1 / (1 + exp(-phi2 phi3))``.

:class:`FrictionModel` holds per-joint parameters of both; a joint uses the viscous-Coulomb
terms, the sigmoid term, or (rarely) both: the torque is their sum plus the offset. Parameters
come from the URDF (``<dynamics damping friction>``: viscous = damping, Coulomb = friction) or
from the ``friction`` section of an identified ``params.yaml`` (docs/conventions.md).
"""
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit

__all__ = [
    'DEFAULT_SMOOTH_VELOCITY', 'FrictionError', 'FrictionModel', 'sigmoid_gaz',
    'viscous_coulomb', 'viscous_coulomb_regressor',
]

DEFAULT_SMOOTH_VELOCITY = 0.01
"""Velocity scale (rad/s or m/s) of the tanh-smoothed Coulomb term."""

VISCOUS_COULOMB = 'viscous-coulomb'
SIGMOID = 'sigmoid'
_VC_KEYS = ('viscous', 'coulomb')
_SIGMOID_KEYS = ('phi1', 'phi2', 'phi3')


class FrictionError(ValueError):
    """A friction parameter set is malformed (names the joint and the field)."""


def _coulomb_switch(qd, smooth_velocity):
    if smooth_velocity < 0.0:
        raise FrictionError(f'smooth_velocity must be >= 0, got {smooth_velocity}')
    if smooth_velocity == 0.0:
        return np.sign(qd)
    return np.tanh(qd / smooth_velocity)


def viscous_coulomb(qd, viscous, coulomb, offset=0.0, *,
                    smooth_velocity=DEFAULT_SMOOTH_VELOCITY):
    """
    Viscous + Coulomb + constant-offset friction torque.

    Parameters
    ----------
    qd : (..., n) rad/s (m/s for prismatic joints)
        Joint velocities; any leading sample dimensions.
    viscous : (n,) or scalar, N·m·s/rad
        Viscous coefficients.
    coulomb : (n,) or scalar, N·m
        Coulomb friction levels (>= 0 for a physical model).
    offset : (n,) or scalar, N·m
        Constant torque offset (not odd in ``qd``; e.g. an unmodelled bias).
    smooth_velocity : float, rad/s
        ``> 0``: the Coulomb term is ``coulomb * tanh(qd / smooth_velocity)`` (smooth through
        zero); ``0``: ``coulomb * sign(qd)`` (discontinuous, zero at ``qd == 0``).

    Returns
    -------
    tau_f : (..., n) N·m
        Friction torque, with the sign of ``qd`` when ``offset`` is zero.

    """
    qd = np.asarray(qd, dtype=float)
    return viscous * qd + coulomb * _coulomb_switch(qd, smooth_velocity) + offset


def viscous_coulomb_regressor(qd, *, smooth_velocity=DEFAULT_SMOOTH_VELOCITY):
    """
    Regressor of the viscous-Coulomb-offset model, for linear identification.

    ``viscous_coulomb(qd, fv, fc, fo)[..., j] == Y[..., j, :] @ [fv[j], fc[j], fo[j]]``.

    Parameters
    ----------
    qd : (..., n) rad/s
        Joint velocities.
    smooth_velocity : float, rad/s
        Coulomb smoothing, as in :func:`viscous_coulomb`.

    Returns
    -------
    Y : (..., n, 3)
        Columns ``[qd, s(qd), 1]`` per sample and joint.

    """
    qd = np.asarray(qd, dtype=float)
    return np.stack([qd, _coulomb_switch(qd, smooth_velocity), np.ones_like(qd)], axis=-1)


def sigmoid_gaz(qd, phi1, phi2, phi3):
    """
    Sigmoid friction model of Gaz et al. (RA-L 2019), zero at ``qd == 0``.

    ``tau_f = phi1 / (1 + exp(-phi2 (qd + phi3))) - phi1 / (1 + exp(-phi2 phi3))``, computed
    with the overflow-free logistic function.

    Parameters
    ----------
    qd : (..., n) rad/s
        Joint velocities.
    phi1 : (n,) or scalar, N·m
        Friction amplitude (the torque swing from large negative to large positive velocity).
    phi2 : (n,) or scalar, s/rad
        Steepness of the sigmoid.
    phi3 : (n,) or scalar, rad/s
        Velocity shift (the model is odd in ``qd`` only when ``phi3 == 0``).

    Returns
    -------
    tau_f : (..., n) N·m

    """
    qd = np.asarray(qd, dtype=float)
    phi2 = np.asarray(phi2, dtype=float)
    phi3 = np.asarray(phi3, dtype=float)
    return phi1 * (expit(phi2 * (qd + phi3)) - expit(phi2 * phi3))


def _vector(value, n, name):
    arr = np.array(np.broadcast_to(np.asarray(value, dtype=float), (n,)))
    if not np.all(np.isfinite(arr)):
        raise FrictionError(f'friction parameter {name!r} has a non-finite value: {arr}')
    return arr


@dataclass(eq=False)
class FrictionModel:
    """
    Per-joint friction parameters; ``torque(qd)`` is the sum of both models plus offset.

    Attributes
    ----------
    joint_names : list of str
        Model joint order (``RobotModel.joint_names``).
    viscous, coulomb, offset : (n,) N·m·s/rad, N·m, N·m
        Viscous-Coulomb-offset parameters (zero for joints that use only the sigmoid).
    phi1, phi2, phi3 : (n,) N·m, s/rad, rad/s
        Gaz et al. sigmoid parameters (``phi1 == 0`` switches the sigmoid off for a joint).
    smooth_velocity : float, rad/s
        Coulomb smoothing scale, see :func:`viscous_coulomb`.

    """

    joint_names: list
    viscous: np.ndarray = None
    coulomb: np.ndarray = None
    offset: np.ndarray = None
    phi1: np.ndarray = None
    phi2: np.ndarray = None
    phi3: np.ndarray = None
    smooth_velocity: float = DEFAULT_SMOOTH_VELOCITY
    _has_sigmoid: bool = field(default=False, init=False, repr=False)

    def __post_init__(self):
        self.joint_names = list(self.joint_names)
        n = len(self.joint_names)
        for name in ('viscous', 'coulomb', 'offset', 'phi1', 'phi2', 'phi3'):
            value = getattr(self, name)
            setattr(self, name, _vector(0.0 if value is None else value, n, name))
        if not self.smooth_velocity >= 0.0:
            raise FrictionError(f'smooth_velocity must be >= 0, got {self.smooth_velocity}')
        self._has_sigmoid = bool(np.any(self.phi1 != 0.0))

    @property
    def n(self):
        """Return the number of joints."""
        return len(self.joint_names)

    @classmethod
    def zeros(cls, joint_names):
        """Frictionless joints."""
        return cls(joint_names)

    @classmethod
    def from_urdf(cls, model):
        """
        Viscous-Coulomb model from the URDF ``<dynamics damping friction>`` values.

        Parameters
        ----------
        model : RobotModel (or any object with ``joint_names``, ``damping``, ``friction``)
            ``damping`` (n,) N·m·s/rad becomes ``viscous``, ``friction`` (n,) N·m becomes
            ``coulomb``; offsets are zero.

        """
        return cls(model.joint_names, viscous=model.damping, coulomb=model.friction)

    @classmethod
    def from_params(cls, params, joint_names, base=None):
        """
        Build from the ``friction`` section of a params.yaml document.

        Parameters
        ----------
        params : dict
            Either the whole document (with top key ``robot_twin_dynamics``) or its inner
            mapping; its ``friction`` maps joint name -> ``{viscous, coulomb[, offset]}`` or
            ``{phi1, phi2, phi3[, offset]}`` (docs/conventions.md).
        joint_names : list of str
            Model joint order.
        base : FrictionModel, optional
            Values for joints the file does not name (default: frictionless).

        Raises
        ------
        FrictionError
            Unknown joint, unknown or missing field, non-numeric value.

        """
        doc = params.get('robot_twin_dynamics', params) if isinstance(params, dict) else None
        if not isinstance(doc, dict):
            raise FrictionError(f'friction parameters must be a mapping, got {type(params)}')
        out = base.copy() if base is not None else cls.zeros(joint_names)
        if list(out.joint_names) != list(joint_names):
            raise FrictionError(f'base friction model joints {out.joint_names} differ from '
                                f'{list(joint_names)}')
        section = doc.get('friction') or {}
        if not isinstance(section, dict):
            raise FrictionError('params "friction" must map joint names to parameter mappings')
        declared = doc.get('friction_model', None)
        if declared not in (None, VISCOUS_COULOMB, SIGMOID):
            raise FrictionError(f'unknown friction_model {declared!r}; use {VISCOUS_COULOMB!r} '
                                f'or {SIGMOID!r}')
        for joint, entry in section.items():
            if joint not in out.joint_names:
                raise FrictionError(f'friction for unknown joint {joint!r}; model joints are '
                                    f'{out.joint_names}')
            out._set_joint(joint, entry)
        out.__post_init__()
        return out

    def _set_joint(self, joint, entry):
        if not isinstance(entry, dict):
            raise FrictionError(f'friction entry of joint {joint!r} must be a mapping')
        allowed = set(_VC_KEYS) | set(_SIGMOID_KEYS) | {'offset'}
        unknown = set(entry) - allowed
        if unknown:
            raise FrictionError(f'friction entry of joint {joint!r} has unknown field(s) '
                                f'{sorted(unknown)}; allowed: {sorted(allowed)}')
        is_vc = any(k in entry for k in _VC_KEYS)
        is_sig = any(k in entry for k in _SIGMOID_KEYS)
        need = (_VC_KEYS if is_vc else ()) + (_SIGMOID_KEYS if is_sig else ())
        if not need:
            raise FrictionError(f'friction entry of joint {joint!r} names no model: give '
                                f'{list(_VC_KEYS)} or {list(_SIGMOID_KEYS)}')
        values = {}
        for key in need + ('offset',):
            if key not in entry:
                if key == 'offset':
                    values[key] = 0.0
                    continue
                raise FrictionError(f'friction entry of joint {joint!r} lacks {key!r}')
            try:
                values[key] = float(entry[key])
            except (TypeError, ValueError):
                raise FrictionError(f'friction {joint}.{key} must be a number, got '
                                    f'{entry[key]!r}') from None
            if not np.isfinite(values[key]):
                raise FrictionError(f'friction {joint}.{key} is not finite')
        j = self.joint_names.index(joint)
        for key in _VC_KEYS + _SIGMOID_KEYS:
            getattr(self, key)[j] = values.get(key, 0.0)
        self.offset[j] = values['offset']

    def to_params(self):
        """
        Return the ``friction_model`` and ``friction`` entries of a params.yaml document.

        Returns
        -------
        dict
            ``{'friction_model': name, 'friction': {joint: {...}}}``, plain floats; the model
            name is ``sigmoid`` if any joint uses the sigmoid, else ``viscous-coulomb``.

        """
        section = {}
        for j, joint in enumerate(self.joint_names):
            entry = {}
            if self.phi1[j] == 0.0 or self.viscous[j] != 0.0 or self.coulomb[j] != 0.0:
                entry.update(viscous=float(self.viscous[j]), coulomb=float(self.coulomb[j]))
            if self.phi1[j] != 0.0:
                entry.update(phi1=float(self.phi1[j]), phi2=float(self.phi2[j]),
                             phi3=float(self.phi3[j]))
            entry['offset'] = float(self.offset[j])
            section[joint] = entry
        return {'friction_model': SIGMOID if self._has_sigmoid else VISCOUS_COULOMB,
                'friction': section}

    def copy(self):
        """Return a deep duplicate (arrays are duplicated too)."""
        return FrictionModel(list(self.joint_names), self.viscous.copy(), self.coulomb.copy(),
                             self.offset.copy(), self.phi1.copy(), self.phi2.copy(),
                             self.phi3.copy(), self.smooth_velocity)

    def torque(self, qd):
        """
        Friction torque at joint velocities ``qd``.

        Parameters
        ----------
        qd : (n,) or (N, n) rad/s
            Joint velocities in model joint order.

        Returns
        -------
        tau_f : same shape as ``qd``, N·m
            ``viscous*qd + coulomb*s(qd) + offset + sigmoid_gaz(qd, phi1, phi2, phi3)``.

        """
        qd = np.asarray(qd, dtype=float)
        if qd.shape[-1:] != (self.n,):
            raise FrictionError(f'qd must have shape (..., {self.n}) in joint order '
                                f'{self.joint_names}, got {qd.shape}')
        tau = viscous_coulomb(qd, self.viscous, self.coulomb, self.offset,
                              smooth_velocity=self.smooth_velocity)
        if self._has_sigmoid:
            tau += sigmoid_gaz(qd, self.phi1, self.phi2, self.phi3)
        return tau
