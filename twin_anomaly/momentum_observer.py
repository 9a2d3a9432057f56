"""
Generalized-momentum observer: the external joint torque, without joint accelerations.

The observer of De Luca and Mattone (ICRA 2005), as surveyed by Haddadin, De Luca and
Albu-Schäffer (IEEE T-RO 2017, "Robot collisions: a survey on detection, isolation, and
identification"). With the generalized momentum ``p = M(q) qd`` and the robot's dynamics
``M qdd + C qd + g + tau_f = tau_m + tau_ext``, the identity ``dM/dt = C + C^T`` gives::

    dp/dt = tau_m - tau_f(qd) + C(q, qd)^T qd - g(q) + tau_ext

so the residual

    r(t) = K [ p(t) - p(0) - integral_0^t (tau_m - tau_f + C^T qd - g + r) ds ]

obeys ``dr/dt = K (tau_ext - r)``: each joint's residual is the external torque on that joint
seen through a first-order low-pass of bandwidth ``K`` (rad/s), decoupled across joints.
Nothing is differentiated, so sensor noise enters only through ``K M qd`` (no ``qdd``). A
force on a link shows on that link's joint and the joints before it, never on the joints
after it (the isolation property used to tell where a collision happened); a drive fault
(friction, a seized joint, an effort-sensor bias) shows on its own joint only.

Per sample this costs one mass matrix (CRBA), one Coriolis matrix, one gravity vector and the
friction torque (pinocchio, on the observer's own copy of the model). It runs on the robot's
samples at their own stamps (irregular stamps are fine); a gap longer than ``max_gap_s`` (or
than ``1 / K``, where the explicit step stops being stable) or a stamp that goes back restarts
it (``r = 0``), as the mirror does.
"""
import math

import numpy as np
import pinocchio as pin

__all__ = ['MomentumObserver']


class MomentumObserver:
    """
    External joint torque estimate ``r`` (n,) N·m from measured motion and motor torque.

    Parameters
    ----------
    model : twin_sim.urdf_model.RobotModel
        The robot (its payload and its ``friction_model``; the observer works on a copy).
    gain : float or (n,) array_like
        Observer bandwidth ``K`` per joint, rad/s (> 0). The residual follows a step of
        external torque with time constant ``1 / K``.
    max_gap_s : float
        A larger step between stamps restarts the observer, s (> 0). So does a step with
        ``K dt`` above 1 for any joint: the explicit feedback step ``r <- (1 - K dt) r + ...``
        overshoots beyond it and grows past 2 (a twin starved on a busy computer lost 20-50 ms
        of samples at a time, and the observer across those gaps read as collisions).

    Attributes
    ----------
    residual : (n,) float array
        The latest ``r``, N·m, model joint order (zeros after a (re)start).
    restarts : int
        How many times a gap or a stamp going back restarted it.

    """

    def __init__(self, model, gain=50.0, max_gap_s=0.05):
        self.model = model.copy()
        self.n = self.model.n
        gain = np.broadcast_to(np.asarray(gain, dtype=float), (self.n,)).copy()
        if not np.all(np.isfinite(gain) & (gain > 0.0)):
            raise ValueError(f'gain must be > 0 rad/s for every joint, got {gain.tolist()}')
        if not max_gap_s > 0.0 or not math.isfinite(max_gap_s):
            raise ValueError(f'max_gap_s must be a finite time > 0 s, got {max_gap_s!r}')
        self.gain = gain
        self.max_gap_s = float(max_gap_s)
        self._max_step = min(self.max_gap_s, 1.0 / float(gain.max()))   # see max_gap_s
        self._pm = self.model.pin_model
        self._pd = self.model.pin_data
        friction = self.model.friction_model
        self._friction = friction
        # the common viscous-Coulomb-offset model is evaluated here on preallocated arrays
        self._plain = not np.any(friction.phi1 != 0.0) and friction.smooth_velocity > 0.0
        self._tf = np.zeros(self.n)
        self.residual = np.zeros(self.n)
        self._integral = np.zeros(self.n)
        self._p0 = np.zeros(self.n)
        self._drive = np.zeros(self.n)     # tau_m - tau_f + C^T qd - g at the last sample
        self.restarts = 0
        self.reset()

    def reset(self):
        """Forget the stream: the next sample starts the observer again (``r = 0``)."""
        self._t = None
        self.residual.fill(0.0)

    def _momentum_and_drive(self, q, qd, tau):
        """Return ``p = M qd`` (n,) and ``tau - tau_f + C^T qd - g`` (n,) at one sample."""
        pm, pd = self._pm, self._pd
        mass = pin.crba(pm, pd, q)
        coriolis = pin.computeCoriolisMatrix(pm, pd, q, qd)
        gravity = pin.computeGeneralizedGravity(pm, pd, q)
        drive = tau - self._friction_torque(qd) + coriolis.T @ qd - gravity
        return mass @ qd, drive

    def _friction_torque(self, qd):
        f = self._friction
        if not self._plain:
            return f.torque(qd)
        tf = self._tf
        np.divide(qd, f.smooth_velocity, out=tf)
        np.tanh(tf, out=tf)
        tf *= f.coulomb
        tf += f.viscous * qd
        tf += f.offset
        return tf

    def update(self, t, q, qd, tau):
        """
        Take one sample; return the residual ``r`` (n,) N·m (the observer's own array).

        Parameters
        ----------
        t : float
            Sample stamp, s.
        q : (n,) rad
            Measured joint positions, model order.
        qd : (n,) rad/s
            Measured joint velocities.
        tau : (n,) N·m
            Measured motor (joint) torques.

        Returns
        -------
        (n,) float array
            The updated residual; zeros on the first sample of a stream. The array is reused
            by the next call: copy it to keep it.

        """
        t = float(t)
        p, drive = self._momentum_and_drive(q, qd, tau)
        if self._t is not None:
            dt = t - self._t
            if 0.0 < dt <= self._max_step:
                # trapezoid on the model terms, Euler on the residual feedback (explicit)
                self._integral += dt * (0.5 * (drive + self._drive) + self.residual)
                np.multiply(self.gain, p - self._p0 - self._integral, out=self.residual)
                self._t = t
                self._drive = drive
                return self.residual
            if dt == 0.0:
                return self.residual
            self.restarts += 1
        self._t = t
        self._p0 = p
        self._drive = drive
        self._integral.fill(0.0)
        self.residual.fill(0.0)
        return self.residual
