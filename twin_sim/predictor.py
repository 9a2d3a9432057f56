"""
The per-sample predict step of the live twin: effort and FT wrench from the measured motion.

``effort = ID(q, qd, qdd) + friction(qd)`` (rigid-body inverse dynamics by pinocchio's RNEA
plus the joint friction model) and the force-torque sensor wrench from the same RNEA pass;
``residual = measured - predicted``. :meth:`Predictor.next_state` predicts one step ahead by
forward dynamics (ABA) with semi-implicit Euler.

This runs once per robot sample (1 kHz typical), so it calls pinocchio directly on
preallocated data and checks only array shapes (finiteness is the bridge's job): on the
built-in 7-DoF arm one ``predict`` + ``residual`` costs about 10 µs (benchmarks/bench_predict.py).
"""
from dataclasses import dataclass

import numpy as np
import pinocchio as pin

from twin_sim.urdf_model import Payload, RobotModel

__all__ = ['Prediction', 'Predictor', 'Residual']


@dataclass(eq=False)
class Prediction:
    """
    Model prediction for one sample.

    Attributes
    ----------
    effort : (n,) N·m
        Joint efforts (rigid-body inverse dynamics + friction), model joint order.
    wrench : (6,) N, N·m, or None
        ``[fx, fy, fz, tx, ty, tz]`` in the ``ft_sensor`` frame (what the distal bodies exert
        on the sensor); None if the model has no sensor.

    """

    effort: np.ndarray
    wrench: np.ndarray = None


@dataclass(eq=False)
class Residual:
    """
    Measured minus predicted.

    Attributes
    ----------
    effort : (n,) N·m
    wrench : (6,) N, N·m, or None
        None when either the measurement or the prediction has no wrench.

    """

    effort: np.ndarray
    wrench: np.ndarray = None


class Predictor:
    """
    Predicts joint efforts and the FT wrench of a robot from its measured motion.

    Parameters
    ----------
    model : RobotModel
        The robot. The predictor works on its own copy: build a new Predictor (or call
        :meth:`set_payload`) after changing the model.
    friction : FrictionModel, optional
        Joint friction; default ``model.friction_model`` (URDF or identified values).
    payload : Payload, optional
        Payload in ``model.payload_frame``; default the model's own payload.

    """

    def __init__(self, model, friction=None, payload=None):
        if not isinstance(model, RobotModel):
            raise TypeError(f'model must be a RobotModel, got {type(model).__name__}')
        self.friction = (model.friction_model if friction is None else friction).copy()
        if list(self.friction.joint_names) != list(model.joint_names):
            raise ValueError(f'friction model joints {self.friction.joint_names} differ from '
                             f'the robot model joints {model.joint_names}')
        self._set_model(model, model.payload if payload is None else payload)

    def _set_model(self, model, payload):
        if payload is not None and not isinstance(payload, Payload):
            raise TypeError(f'payload must be a Payload or None, got {type(payload).__name__}')
        self.model = model.with_payload(payload)
        self._pm = self.model.pin_model
        self._pd = self.model.pin_data
        self._shape = (self.model.n,)
        self._has_ft = self.model.ft_frame is not None

    @property
    def payload(self):
        """Return the payload in use (Payload or None)."""
        return self.model.payload

    def set_payload(self, payload):
        """Use another payload (Payload in ``model.payload_frame``, or None)."""
        self._set_model(self.model, payload)

    def _check(self, value, name):
        return self.model.joint_vector(value, name, finite=False)

    def predict(self, q, qd, qdd, friction=None, *, checked=False):
        """
        Predict joint efforts and sensor wrench for one measured sample.

        Parameters
        ----------
        q : (n,) rad
            Joint positions, model joint order.
        qd : (n,) rad/s
            Joint velocities, model joint order.
        qdd : (n,) rad/s^2
            Measured (or filtered) motion, model joint order.
        friction : (n,) N·m, optional
            ``self.friction.torque(qd)`` if the caller has it already (the live mirror needs
            the friction of each sample twice: here and in the next :meth:`next_state`).
        checked : bool
            The caller guarantees (n,) float arrays in model order (the live mirror, whose
            arrays are its own checked copies): the shape checks are skipped.

        Returns
        -------
        Prediction
            ``effort`` (n,) N·m and ``wrench`` (6,) in the sensor frame (None without one).

        """
        if not checked:
            q = self._check(q, 'q')
            qd = self._check(qd, 'qd')
            qdd = self._check(qdd, 'qdd')
        if friction is None:
            friction = self.friction.torque(qd)
        effort = pin.rnea(self._pm, self._pd, q, qd, qdd) + friction
        wrench = self.model.ft_wrench_from_data(self._pd) if self._has_ft else None
        return Prediction(effort, wrench)

    @staticmethod
    def residual(measured_effort, measured_wrench, prediction):
        """
        Measured minus predicted.

        Parameters
        ----------
        measured_effort : (n,) N·m
            Measured joint efforts, model joint order.
        measured_wrench : (6,) N, N·m, or None
            In the sensor frame, same sign convention as the prediction.
        prediction : Prediction
            The prediction to compare against.

        Returns
        -------
        Residual
            ``effort`` (n,) and ``wrench`` (6,) (None if either wrench is missing).

        """
        measured = np.asarray(measured_effort, dtype=float)
        if measured.shape != prediction.effort.shape:
            raise ValueError(f'measured_effort has shape {measured.shape}, the prediction '
                             f'{prediction.effort.shape} (model joint order)')
        wrench = None
        if measured_wrench is not None and prediction.wrench is not None:
            wrench = np.asarray(measured_wrench, dtype=float)
            if wrench.shape != (6,):
                raise ValueError('measured_wrench must have shape (6,) [fx fy fz tx ty tz], '
                                 f'got {wrench.shape}')
            wrench = wrench - prediction.wrench
        effort = measured - prediction.effort
        return Residual(effort, wrench)

    def next_state(self, q, qd, tau, dt, friction=None, *, checked=False):
        """
        One-step prediction by forward dynamics (semi-implicit Euler).

        ``qdd = ABA(q, qd, tau - friction(qd))``, ``qd' = qd + dt qdd``, ``q' = q + dt qd'``.

        Parameters
        ----------
        q : (n,) rad
            Joint positions, model joint order.
        qd : (n,) rad/s
            Joint velocities, model joint order.
        tau : (n,) N·m
            Joint efforts applied by the drives (measured or commanded).
        dt : float, s
            Step (> 0).
        friction : (n,) N·m, optional
            ``self.friction.torque(qd)``, if the caller has it already.
        checked : bool
            As in :meth:`predict`.

        Returns
        -------
        q_next : (n,) rad
        qd_next : (n,) rad/s

        """
        if not checked:
            q = self._check(q, 'q')
            qd = self._check(qd, 'qd')
            tau = self._check(tau, 'tau')
        if not dt > 0.0:
            raise ValueError(f'dt must be > 0 s, got {dt}')
        if friction is None:
            friction = self.friction.torque(qd)
        qdd = pin.aba(self._pm, self._pd, q, qd, tau - friction)
        qd_next = qd + dt * qdd
        return q + dt * qd_next, qd_next
