"""
The twin's mirror over a finished trajectory: the same residuals as the live one, all at once.

:class:`twin_sim.mirror.Mirror` runs once per robot sample; offline jobs (what-if runs,
commissioning across variants) have the whole recorded trajectory and only need the twin's
residuals. :func:`mirror_trajectory` computes them for every sample at once:
:class:`BatchDynamics` evaluates inverse dynamics, the force-torque wrench and forward dynamics
of many samples per call (pinocchio's ``rneaInParallel`` / ``abaInParallel`` on one thread),
and the mirror's first-order low-passes run as linear filters (``scipy.signal.lfilter``).

The arithmetic is the live mirror's (same differences, same predictions, same filters, same
restart rules for gaps, steps back and repeated stamps); results differ from
:meth:`Mirror.update` only by floating-point rounding (a different order of the same
operations; :mod:`test.test_batch_twin` bounds it).

The wrench comes from the same inverse-dynamics pass: the model is rebuilt with the sensor's
fixed joint replaced by six joints held at zero (three prismatic, three revolute, along the
sensor axes), whose joint torques are then the force and torque transmitted through the sensor.
"""
from dataclasses import dataclass
import xml.etree.ElementTree as ElementTree

import numpy as np
import pinocchio as pin
from scipy.signal import lfilter
from twin_sim import urdf_rewrite
from twin_sim.mirror import GAP_FACTOR, Mirror
from twin_sim.urdf_model import RobotModel

__all__ = ['BatchDynamics', 'TrajectoryResiduals', 'mirror_trajectory']

_SENSOR_AXES = (('prismatic', '1 0 0'), ('prismatic', '0 1 0'), ('prismatic', '0 0 1'),
                ('revolute', '1 0 0'), ('revolute', '0 1 0'), ('revolute', '0 0 1'))
_WIDE = 1e10   # limits of the helper joints and of continuous joints (pinocchio needs some)


def _sensor_chain_urdf(root, ft_link):
    """
    Return the URDF text and the names of the six sensor joints for the sensor model.

    ``root`` (a model's :meth:`~twin_sim.urdf_model.RobotModel.urdf_tree`, changed here) with
    ``ft_link``'s fixed joint replaced by six zero-motion joints.
    """
    urdf_rewrite.drop_geometry(root)
    urdf_rewrite.continuous_as_revolute(root, _WIDE)
    # the sensor body is on the robot side of the sensing plane
    fixed = urdf_rewrite.move_sensor_body(root, ft_link)
    parent = fixed.find('parent').get('link')
    origin = fixed.find('origin')
    root.remove(fixed)
    names = []
    for i, (kind, axis) in enumerate(_SENSOR_AXES):
        child = ft_link if i == len(_SENSOR_AXES) - 1 else f'twin_ft_axis_{i}'
        if child != ft_link:
            ElementTree.SubElement(root, 'link', name=child)
        name = f'twin_ft_joint_{i}'
        joint = ElementTree.SubElement(root, 'joint', name=name, type=kind)
        ElementTree.SubElement(joint, 'parent', link=parent)
        ElementTree.SubElement(joint, 'child', link=child)
        if i == 0 and origin is not None:
            joint.append(urdf_rewrite.copy_element(origin))
        ElementTree.SubElement(joint, 'axis', xyz=axis)
        ElementTree.SubElement(joint, 'limit', lower=repr(-_WIDE), upper=repr(_WIDE),
                               effort='0', velocity='0')
        names.append(name)
        parent = child
    return ElementTree.tostring(root, encoding='unicode'), names


class BatchDynamics:
    """
    Inverse dynamics (+ FT wrench) and forward dynamics of a robot for many samples per call.

    Parameters
    ----------
    model : RobotModel
        The robot (its identified parameters, if loaded, are used). Rigid-body only: add
        friction yourself (``model.friction_model.torque``).
    payload : Payload, optional
        Payload in ``model.payload_frame`` (default: the model's own).
    wrench : bool
        Also compute the force-torque wrench (default, when the model has a sensor); False
        saves the six helper joints when only torques are wanted.

    Notes
    -----
    Arrays are ``(N, n)`` in model joint order (C order is fastest).

    """

    def __init__(self, model, payload=None, wrench=True):
        if not isinstance(model, RobotModel):
            raise TypeError(f'model must be a RobotModel, got {type(model).__name__}')
        self.model = model.with_payload(model.payload if payload is None else payload)
        self.n = self.model.n
        self.has_ft = bool(wrench) and self.model.ft_frame is not None
        self._aba_pool = pin.ModelPool(self.model.pin_model, 1)
        if self.has_ft:
            self._set_sensor_model()
        else:
            self._rnea_model = self.model.pin_model
            self._q_index = np.arange(self.n)
            self._ft_index = None
        self._rnea_pool = pin.ModelPool(self._rnea_model, 1)
        self._nq = self._rnea_model.nq

    def _set_sensor_model(self):
        """Sensor model: the URDF's topology, this model's bodies (identified, payload)."""
        model = self.model
        xml, ft_joints = _sensor_chain_urdf(model.urdf_tree(), model.ft_frame)
        pm = pin.buildModelFromXML(xml)
        src = model.pin_model
        for jid in range(1, src.njoints):          # every body as in the model ...
            pm.inertias[pm.getJointId(src.names[jid])] = src.inertias[jid].copy()
        # ... except the sensor's: its distal part (tool, payload) moves behind the sensor
        frame = src.frames[src.getFrameId(model.ft_frame, pin.BODY)]
        distal = model.ft_distal_inertia
        parent = pm.getJointId(src.names[frame.parentJoint])
        pm.inertias[parent] = src.inertias[frame.parentJoint] - frame.placement.act(distal)
        pm.inertias[pm.getJointId(ft_joints[-1])] = distal
        self._q_index = np.array([pm.joints[pm.getJointId(j)].idx_v for j in model.joint_names])
        self._ft_index = np.array([pm.joints[pm.getJointId(j)].idx_v for j in ft_joints])
        self._rnea_model = pm

    def _stack(self, q, qd, qdd):
        n_samples = q.shape[0]
        out = []
        for arr in (q, qd, qdd):
            full = np.zeros((self._nq, n_samples))
            full[self._q_index] = arr.T
            out.append(full)
        return out

    def inverse_dynamics(self, q, qd, qdd):
        """
        Rigid-body joint torques and, with a sensor, the wrench it reads.

        Parameters
        ----------
        q, qd, qdd : (N, n)
            rad, rad/s, rad/s^2.

        Returns
        -------
        tau : (N, n) N·m
        wrench : (N, 6) or None
            ``[fx, fy, fz, tx, ty, tz]`` (N, N·m) that the distal bodies exert on the sensor,
            in its frame (:meth:`RobotModel.ft_wrench`); None without a sensor.

        """
        q, qd, qdd = (np.asarray(a, dtype=float) for a in (q, qd, qdd))
        full = self._stack(q, qd, qdd)
        tau = np.zeros((self._nq, q.shape[0]))
        pin.rneaInParallel(1, self._rnea_pool, full[0], full[1], full[2], tau)
        wrench = None if self._ft_index is None else -tau[self._ft_index].T
        return tau[self._q_index].T, wrench

    def forward_dynamics(self, q, qd, tau):
        """Joint accelerations ``(N, n)`` rad/s^2 under joint torques ``tau`` ``(N, n)`` N·m."""
        q, qd, tau = (np.ascontiguousarray(np.asarray(a, dtype=float).T) for a in (q, qd, tau))
        qdd = np.zeros_like(q)
        pin.abaInParallel(1, self._aba_pool, q, qd, tau, qdd)
        return qdd.T


@dataclass
class TrajectoryResiduals:
    """
    The mirror's output for a trajectory (rows where it gave no result are dropped).

    Attributes
    ----------
    index : (M,) int
        Which input samples gave a result (the live mirror returns None for the others: the
        first sample of each stream, repeated stamps).
    t : (M,) s
    position, velocity, effort : (M, n)
        Residuals, measured minus predicted (rad, rad/s, N·m).
    wrench : (M, 6) or None
        Wrench residual (N, N·m), sensor frame; NaN where the sample carried no wrench. None
        when the robot model has no sensor.
    restarts : int
        Restarts of the estimator after gaps (as :attr:`Mirror.restarts`).

    """

    index: np.ndarray
    t: np.ndarray
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    wrench: np.ndarray
    restarts: int


def _stream(t, max_gap_s):
    """
    Replay the mirror's stream bookkeeping on the stamps (no dynamics).

    Returns
    -------
    result : (M,) int
        Samples that give a result.
    before : (M,) int
        The stored sample each is predicted from (after a repeated stamp, the newest copy).
    first : (M,) bool
        Results that are the first of their stream (the filters start there).
    restarts : int

    """
    n = t.size
    dt = np.diff(t)
    if n > 1 and np.all(dt > 0.0) and dt.max() <= max_gap_s and \
            dt.max() <= GAP_FACTOR * dt.min():
        result = np.arange(1, n)              # the common case: no gap, no repeat
        first = np.zeros(n - 1, dtype=bool)
        first[0] = True
        return result, result - 1, first, 0
    result, before, first = [], [], []
    restarts, period, stored, fresh = 0, None, None, True
    for k in range(n):
        if stored is None:
            stored, fresh = k, True
            continue
        step = t[k] - t[stored]
        if step == 0.0:                       # the same sample again: it replaces the stored
            stored = k
            continue
        if not 0.0 < step <= max_gap_s or (period is not None and step > GAP_FACTOR * period):
            restarts += 1
            period, stored, fresh = None, k, True
            continue
        period = step if period is None else period + 0.01 * (step - period)
        result.append(k)
        before.append(stored)
        first.append(fresh)
        stored, fresh = k, False
    return (np.array(result, dtype=int), np.array(before, dtype=int),
            np.array(first, dtype=bool), restarts)


def _lowpass(x, alpha):
    """
    First-order low-pass ``y_k = y_(k-1) + alpha_k (x_k - y_(k-1))``, ``y_0 = x_0``, on rows.

    Runs of (numerically) equal ``alpha`` are filtered by ``lfilter``.
    """
    y = np.empty_like(x)
    y[0] = x[0]
    if x.shape[0] == 1:
        return y
    a = alpha[1:]
    change = np.flatnonzero(np.abs(np.diff(a)) > 1e-9 * np.abs(a[1:])) + 1
    bounds = np.concatenate([[0], change, [a.size]])
    prev = x[0]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        g = float(np.mean(a[lo:hi]))
        seg, _ = lfilter([g], [1.0, g - 1.0], x[1 + lo:1 + hi], axis=0,
                         zi=((1.0 - g) * prev)[None])
        y[1 + lo:1 + hi] = seg
        prev = seg[-1]
    return y


def mirror_trajectory(dynamics, t, q, qd, effort, wrench=None, *, accel_cutoff_hz=None,
                      max_gap_s=None):
    """
    Residuals of a finished trajectory, as :class:`~twin_sim.mirror.Mirror` gives them live.

    Equivalent to calling ``Mirror.update(t[k], q[k], qd[k], effort[k])`` for every sample in
    order and, after each result, ``Mirror.wrench_residual(wrench[k])`` for samples with a
    wrench (as the what-if runs do).

    Parameters
    ----------
    dynamics : BatchDynamics
        The twin's model (with the payload it assumes).
    t : (N,) s
        Sample stamps, in arrival order.
    q, qd, effort : (N, n)
        Measured positions (rad), velocities (rad/s) and efforts (N·m), model order.
    wrench : (N, 6), optional
        Measured wrench (sensor frame); NaN rows: no wrench with that sample.
    accel_cutoff_hz, max_gap_s : float, optional
        As :class:`Mirror` (default: its defaults).

    Returns
    -------
    TrajectoryResiduals

    """
    defaults = Mirror.__init__.__defaults__
    cutoff = defaults[0] if accel_cutoff_hz is None else float(accel_cutoff_hz)
    max_gap = defaults[1] if max_gap_s is None else float(max_gap_s)
    t = np.asarray(t, dtype=float)
    q, qd, effort = (np.asarray(a, dtype=float) for a in (q, qd, effort))
    result, prev, first, restarts = _stream(t, max_gap)
    n = q.shape[1]
    empty = np.empty((0, n))
    if result.size == 0:
        return TrajectoryResiduals(result, t[result], empty, empty, empty,
                                   None if wrench is None else np.empty((0, 6)), restarts)
    dt = t[result] - t[prev]
    qdd_raw = (qd[result] - qd[prev]) / dt[:, None]
    tau, wrench_pred = dynamics.inverse_dynamics(q[result], qd[result], qdd_raw)
    friction = dynamics.model.friction_model
    pred = tau + friction.torque(qd[result])
    acc = dynamics.forward_dynamics(q[prev], qd[prev], effort[prev] - friction.torque(qd[prev]))
    qd_pred = qd[prev] + dt[:, None] * acc
    q_pred = q[prev] + dt[:, None] * qd_pred
    tau_filter = 1.0 / (2.0 * np.pi * cutoff)
    alpha = dt / (dt + tau_filter)
    bounds = np.concatenate([np.flatnonzero(first), [result.size]])
    effort_f = np.empty_like(pred)
    pred_f = np.empty_like(pred)
    wrench_res = None
    if wrench is not None and wrench_pred is not None:
        wrench = np.asarray(wrench, dtype=float)
        wrench_res = np.full((result.size, 6), np.nan)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        effort_f[lo:hi] = _lowpass(effort[result[lo:hi]], alpha[lo:hi])
        pred_f[lo:hi] = _lowpass(pred[lo:hi], alpha[lo:hi])
        if wrench_res is not None:
            wpred_f = _lowpass(wrench_pred[lo:hi], alpha[lo:hi])
            have = np.flatnonzero(~np.isnan(wrench[result[lo:hi], 0]))
            if have.size:
                measured = _lowpass(wrench[result[lo:hi]][have], alpha[lo:hi][have])
                wrench_res[lo + have] = measured - wpred_f[have]
    return TrajectoryResiduals(
        index=result, t=t[result], position=q[result] - q_pred, velocity=qd[result] - qd_pred,
        effort=effort_f - pred_f, wrench=wrench_res, restarts=restarts)
