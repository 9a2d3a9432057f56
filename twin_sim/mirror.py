"""
The twin in mirror mode: follow the measured state, predict, and form residuals.

ROS-free. For every validated robot sample (model joint order) it

1. estimates joint accelerations causally (first difference of velocity: ``qdd_raw``),
2. predicts the joint efforts the robot should need at this sample (inverse dynamics +
   friction at ``q``, ``qd``, ``qdd_raw``) and the wrench its force-torque sensor should read,
3. passes the measured efforts and that prediction through the same first-order low-pass (and
   so compares them with the same lag: the residual is the low-passed raw residual),
4. predicts this sample's position and velocity from the previous sample by forward dynamics
   under the previous measured efforts (one step, semi-implicit Euler),
5. returns measured minus predicted for position, velocity and effort.

Why filter both sides, and after the model: the raw acceleration is too noisy to use as it is,
and a low-pass on the acceleration alone delays the predicted inertial torque by the filter's
time constant ``tau``, leaving a residual ``M(q) qddd tau`` (the jerk) even for a perfect model;
a low-pass on the measured effort alone leaves ``tau dh/dt`` instead (gravity, friction and
Coriolis torques change as the arm moves). Filtering measured and predicted effort alike keeps
only the half-sample delay of the velocity difference (``M(q) qddd dt / 2``), while the noise is
attenuated as by the acceleration filter. Filtering is linear: the effort residual is the
low-passed residual ``effort - ID(q, qd, qdd_raw) - friction(qd)``. The wrench is treated the
same way (measured wrench low-passed in :meth:`Mirror.wrench_residual`).

A gap in the stream longer than ``max_gap_s`` or ``GAP_FACTOR`` typical periods (or a step back
in time) restarts the estimator, so a dropped stretch never produces a burst of spurious
residuals: after a (re)start the
low-passes start from the first sample's values (not from zero). A sample with the same stamp
as the previous one (a robot that publishes its joints in several messages) replaces the stored
sample and yields no result. A new model (a calibration, a payload;
:meth:`Mirror.set_predictor`) does not restart the stream: the next sample gets its result
from it (a payload starts the effort and wrench low-passes again at that sample).

The inputs are copied: a caller may pass buffers it overwrites in place for the next sample
(as :class:`twin_bridge.mapping.JointMapper` does). A caller whose arrays are each sample's own
(the samples of the bridge's intake) may have them kept as they are (``copy_inputs=False``).

The live mirror node and the offline replay both go through the guarded steps
:meth:`Mirror.guarded_update` and :meth:`Mirror.guarded_wrench_residual`: a sample without
measured effort is not mirrored, a result that is not finite is never given out (and the mirror
restarts), and both are counted (:meth:`Mirror.counters`, as /twin/status names them), so that
a replay counts and drops exactly what the live twin did.
"""
from collections import deque
from dataclasses import dataclass
import math

import numpy as np


@dataclass
class MirrorResult:
    """
    Prediction and residuals for one robot sample (all arrays (n,), model joint order).

    ``predicted_position``/``predicted_velocity`` are the one-step forward-dynamics prediction
    (rad, rad/s); ``predicted_effort`` is inverse dynamics + friction (N·m), low-passed like
    ``measured_effort`` (the low-passed measured effort, N·m). Residuals are measured minus
    predicted (``effort_residual = measured_effort - predicted_effort``). ``acceleration`` is
    the low-passed acceleration estimate (rad/s^2). ``predicted_wrench`` is (6,) in the sensor
    frame (low-passed like the effort), or None when the model has no force-torque frame.
    """

    t: float
    predicted_position: np.ndarray
    predicted_velocity: np.ndarray
    predicted_effort: np.ndarray
    position_residual: np.ndarray
    velocity_residual: np.ndarray
    effort_residual: np.ndarray
    acceleration: np.ndarray
    predicted_wrench: np.ndarray = None
    measured_effort: np.ndarray = None


_RECENT_PREDICTIONS = 32
"""Predicted wrenches kept for matching a wrench sample that comes after later joint samples."""
GAP_FACTOR = 20.0
"""A step this many typical periods long is a gap that restarts the estimator. Shorter steps
(samples the validation rejected, a few lost in transport) are bridged: the first good sample
after them still gives a residual, predicted over the longer step."""


def finite(*arrays):
    """
    Whether every value of the given (n,) arrays (None skipped) is finite.

    One sum per array, of its values as Python floats (NaN and inf propagate; values so large
    that their sum overflows fail too, and no residual of a real robot is that large). For
    arrays of a few values this is several times cheaper than a NumPy reduction.
    """
    total = 0.0
    for a in arrays:
        if a is not None:
            total += sum(a.tolist())
    return math.isfinite(total)


class Mirror:
    """
    Per-sample twin predictions for a live stream.

    Parameters
    ----------
    predictor : twin_sim.predictor.Predictor
        Model, friction and payload of the twin.
    accel_cutoff_hz : float
        Cut-off of the first-order low-pass applied to the differentiated velocity and to
        measured and predicted effort and wrench, Hz (> 0).
    max_gap_s : float
        A larger time step between samples restarts the estimator, s (> 0). So does a step
        longer than ``GAP_FACTOR`` times the stream's typical period (a few dropped samples).
    copy_inputs : bool
        Copy (and check) the arrays given to :meth:`update`. False for a caller that gives
        (n,) float arrays in model order that are each sample's own and never changed
        afterwards (the samples of ``twin_bridge.intake``): the mirror keeps them as they are.

    Attributes
    ----------
    restarts : int
        Gaps and steps back in time that restarted the stream (:meth:`update`).
    nonfinite_results : int
        Joint and wrench results that were not finite, never given out (the guarded steps).
    samples_without_effort : int
        Samples not mirrored: the robot gave no effort for some joint (:meth:`guarded_update`).

    """

    def __init__(self, predictor, accel_cutoff_hz=40.0, max_gap_s=0.05, copy_inputs=True):
        if not accel_cutoff_hz > 0.0:
            raise ValueError(f'accel_cutoff_hz must be > 0, got {accel_cutoff_hz}')
        if not max_gap_s > 0.0:
            raise ValueError(f'max_gap_s must be > 0, got {max_gap_s}')
        self.predictor = predictor
        self.n = predictor.model.n
        self._tau_filter = 1.0 / (2.0 * math.pi * accel_cutoff_hz)
        self.max_gap_s = float(max_gap_s)
        self.copy_inputs = bool(copy_inputs)
        self.restarts = 0
        self.nonfinite_results = 0
        self.samples_without_effort = 0
        self._period = None      # typical sample period, s (slow average of normal steps)
        self.reset()

    def set_predictor(self, predictor):
        """
        Predict with another predictor (a calibrated model, a payload) from the next sample on.

        The stream goes on, so the next sample gets a result like any other. A new model of the
        same robot (a calibration: the same payload) changes what is predicted, not what is
        measured: what the mirror keeps of the measured stream (the last sample, the velocity
        and the low-passed acceleration, effort and wrench) does not depend on the model. The
        low-passed predictions do: they are moved over to the new model by the difference
        between the two models' predictions where the low-pass stands. A first-order low-pass of a
        steadily changing input lags it by ``tau``, so that is at the last sample's state
        ``tau`` earlier (``q - tau qd``, ``qd - tau qdd``, at the low-passed ``qdd``); the first
        residual after the swap is then the new model's own, neither a blend of both models
        that fades over a few samples nor a filter restart, whose first, unfiltered residual
        carries the raw acceleration's noise. Predicted wrenches already matched to joint
        samples stay as the old model made them.

        Another payload comes with a change of the robot itself (it picks up or sets down a
        load at about the time it says so): the measured low-passes lag that change as much as
        the predicted ones would lag the new model, so moving only the predictions would leave
        a residual of the load's size that fades with the filter (about 20 N on a wrench
        sensor for a 2 kg pick-up). Then the low-passes of effort and wrench, measured and
        predicted, start again at the next sample (from its measured values and the new
        model's prediction at the low-passed acceleration, so neither lags the load nor
        carries the raw acceleration's noise); that sample still gives its result.

        Parameters
        ----------
        predictor : twin_sim.predictor.Predictor
            A model of the same joints and force-torque sensor.

        """
        old, new = self.predictor.model, predictor.model
        if new.n != self.n or new.ft_frame != old.ft_frame:
            raise ValueError(f'the new model has {new.n} joints and force-torque frame '
                             f'{new.ft_frame!r}, the mirror {self.n} and {old.ft_frame!r}')
        if self._pred_f is not None:
            if _same_payload(old.payload, new.payload):
                self._move_predictions(self.predictor, predictor)
            else:
                self._reload = True        # update() starts the low-passes again
                self._wrench_f = self._wrench_t = None
                self._recent_wrench.clear()    # (predicted for the old load)
        self.predictor = predictor
        self._friction = None          # the last sample's, for the next one-step prediction

    def _move_predictions(self, old, new):
        """Move the low-passed predictions from the ``old`` predictor to ``new``."""
        tau = self._tau_filter
        q = self._q - tau * self._qd
        qd = self._qd - tau * self._qdd
        before = old.predict(q, qd, self._qdd, checked=True)
        after = new.predict(q, qd, self._qdd, checked=True)
        self._pred_f = self._pred_f + (after.effort - before.effort)
        if self._wpred_f is not None:
            self._wpred_f = self._wpred_f + (after.wrench - before.wrench)

    def reset(self):
        """Forget the history (next sample starts a new stream)."""
        self._t = None
        self._q = None
        self._qd = None
        self._effort = None
        self._restart_filters()
        self._prev = None
        self.last = None

    def _restart_filters(self):
        self._qdd = None         # low-passed acceleration estimate
        self._effort_f = None    # low-passed measured effort
        self._pred_f = None      # low-passed predicted effort
        self._wpred_f = None     # low-passed predicted wrench
        self._wrench_f = None    # low-passed measured wrench
        self._wrench_t = None
        self._alpha = None       # low-pass gain of the last joint step
        self._reload = False     # the next step starts the effort and wrench low-passes again
        self._recent_wrench = deque(maxlen=_RECENT_PREDICTIONS)   # (t, predicted wrench)

    def _restart(self, t, q, qd, effort):
        """Keep one sample as the start of a new stream (``qd`` may be None: not known yet)."""
        self._t, self._q, self._qd, self._effort = t, q, qd, effort
        self._friction = None
        self._restart_filters()
        self._prev = None   # (t, q) of the sample before, to differentiate a merged sample
        self.last = None

    def _gain(self, dt):
        return dt / (dt + self._tau_filter)

    def _vector(self, value, name):
        # a copy: callers may reuse their buffers
        return self.predictor.model.joint_vector(value, name, copy=True, finite=False)

    def update(self, t, q, qd, effort):
        """
        Process one sample; return a :class:`MirrorResult`, or None while (re)starting.

        The first sample of a stream (and, without measured velocity, also the second) only
        starts it; so does a sample more than ``max_gap_s`` after the previous one or older than
        it (counted in :attr:`restarts`). A sample with the previous sample's stamp replaces it
        and returns None.

        Parameters
        ----------
        t : float
            Sample stamp, s.
        q, qd, effort : (n,) arrays
            Measured position (rad), velocity (rad/s) and effort (N·m), model order. ``qd`` may
            be None when the robot does not publish velocity: it is then differentiated from
            ``q`` (backward difference). The arrays are copied (unless ``copy_inputs`` is
            False).

        """
        t = float(t)
        if self.copy_inputs:
            q = self._vector(q, 'q')
            effort = self._vector(effort, 'effort')
            qd = None if qd is None else self._vector(qd, 'qd')
        if self._t is None:
            self._restart(t, q, qd, effort)
            return None
        dt = t - self._t
        if dt == 0.0:
            # the same sample again, e.g. more of its joints: keep the newest values, no step
            if qd is None and self._prev is not None:
                qd = (q - self._prev[1]) / (t - self._prev[0])
            self._q, self._qd, self._effort = q, qd, effort
            self._friction = None
            return None
        period = self._period
        if not 0.0 < dt <= self.max_gap_s or (period is not None and dt > GAP_FACTOR * period):
            # a gap (dropped samples, a stalled robot) or a step back in time: filters and the
            # one-step prediction would mix samples from either side of it, so start anew
            self.restarts += 1
            self._period = None
            self._restart(t, q, qd, effort)
            return None
        self._period = dt if period is None else period + 0.01 * (dt - period)
        if qd is None:
            qd = (q - self._q) / dt
        if self._qd is None:
            # no velocity before this sample (positions only): this one only starts the stream
            self._prev = (self._t, self._q)
            self._t, self._q, self._qd, self._effort = t, q, qd, effort
            self._friction = None
            return None

        qdd_raw = (qd - self._qd) / dt
        friction = self.predictor.friction.torque(qd)
        prediction = self.predictor.predict(q, qd, qdd_raw, friction, checked=True)
        wrench = prediction.wrench
        if self._qdd is None:      # first step of a stream: the filters start here
            self._qdd, self._effort_f, self._pred_f = qdd_raw, effort, prediction.effort
            self._wpred_f = wrench
            self._alpha = self._gain(dt)
        else:
            a = self._alpha = self._gain(dt)
            self._qdd = self._qdd + a * (qdd_raw - self._qdd)
            if self._reload:
                # another load (set_predictor): effort and wrench low-passes start again here
                self._reload = False
                start = self.predictor.predict(q, qd, self._qdd, friction, checked=True)
                self._effort_f, self._pred_f, self._wpred_f = effort, start.effort, start.wrench
            else:
                self._effort_f = self._effort_f + a * (effort - self._effort_f)
                self._pred_f = self._pred_f + a * (prediction.effort - self._pred_f)
                if wrench is not None:
                    self._wpred_f = self._wpred_f + a * (wrench - self._wpred_f)
        q_pred, qd_pred = self.predictor.next_state(self._q, self._qd, self._effort, dt,
                                                    self._friction, checked=True)

        result = MirrorResult(
            t=t, predicted_position=q_pred, predicted_velocity=qd_pred,
            predicted_effort=self._pred_f, position_residual=q - q_pred,
            velocity_residual=qd - qd_pred, effort_residual=self._effort_f - self._pred_f,
            acceleration=self._qdd, predicted_wrench=self._wpred_f,
            measured_effort=self._effort_f)
        self._prev = (self._t, self._q)
        self._t, self._q, self._qd, self._effort = t, q, qd, effort
        self._friction = friction      # this sample's friction: the next one steps from it
        self.last = result
        if result.predicted_wrench is not None:
            self._recent_wrench.append((t, result.predicted_wrench))
        return result

    def guarded_update(self, t, q, qd, effort):
        """
        Process one validated robot sample as the live twin does; return ``(mirrored, result)``.

        ``mirrored`` is False for a sample whose effort is not finite for every joint (the robot
        has given none for some joint: the twin compares predicted with measured efforts, so
        there is nothing to mirror; counted in :attr:`samples_without_effort`); ``result`` is
        then None. Otherwise the sample goes through :meth:`update`; a result whose residuals
        or predicted effort are not finite is never given out (None instead, counted in
        :attr:`nonfinite_results`) and the mirror starts anew from the next sample (never
        predicting on from a state that overflowed). Arguments as :meth:`update`.
        """
        if not math.isfinite(sum(effort.tolist())):    # finite(effort) without its call
            self.samples_without_effort += 1
            return False, None
        result = self.update(t, q, qd, effort)
        if result is not None and not finite(
                result.position_residual, result.velocity_residual, result.effort_residual,
                result.predicted_effort):
            self.nonfinite_results += 1
            self.reset()
            return True, None
        return True, result

    def guarded_wrench_residual(self, measured_wrench, t=None):
        """
        :meth:`wrench_residual` as the live twin takes it: ``(predicted, residual)`` or None.

        A result that is not finite is None too (counted in :attr:`nonfinite_results`). The
        mirror is not reset here: the measured wrench was validated, and the state the
        predicted wrench comes from is that of the joint results, which :meth:`guarded_update`
        checks.
        """
        out = self.wrench_residual(measured_wrench, t)
        # finite(predicted, residual) without its call: the 1 kHz path
        if out is not None and not math.isfinite(sum(out[0].tolist()) + sum(out[1].tolist())):
            self.nonfinite_results += 1
            return None
        return out

    def counters(self):
        """Return the mirror's counters, named as /twin/status names them (dict of int)."""
        return {'mirror.restarts': self.restarts,
                'mirror.nonfinite_results': self.nonfinite_results,
                'mirror.samples_without_effort': self.samples_without_effort}

    def wrench_residual(self, measured_wrench, t=None):
        """
        Return ``(predicted (6,), residual (6,))`` for a wrench sample, or None.

        Uses the prediction of the latest joint sample (the wrench stream is matched to the
        newest joint state; both come from the robot at the same rate), or, for a wrench
        stamped before it, of the joint sample nearest in time among the last 32 (a twin that
        catches up on a backlog may take a burst of joint states before their wrenches: matched
        to the newest, a clean wrench read 0.07-0.7 N off on the built-in arm). The measured wrench
        goes through the same low-pass as the prediction (gain from the wrench stamps when
        given, else from the last joint step), so the residual is the low-passed raw residual.
        None while there is no joint prediction, or when the wrench stamp ``t`` is more than
        ``max_gap_s`` away from that of the joint sample (a stalled joint stream).

        Parameters
        ----------
        measured_wrench : (6,) [N, N·m]
            ``[fx, fy, fz, tx, ty, tz]`` in the sensor frame.
        t : float, optional
            Stamp of the wrench sample, s.

        """
        recent = self._recent_wrench          # (t, predicted wrench), newest last
        if not recent:
            return None
        pred_t, predicted = recent[-1]
        if t is not None and t < pred_t:
            # the joint stream got ahead (the twin took a burst of joint states before their
            # wrenches): compare with the prediction nearest in time, not the newest
            for tj, wj in reversed(recent):
                if abs(tj - t) > abs(pred_t - t):
                    break
                pred_t, predicted = tj, wj
        if t is not None and abs(t - pred_t) > self.max_gap_s:
            return None
        w = np.array(measured_wrench, dtype=float)
        if w.shape != (6,):
            raise ValueError('measured_wrench must have shape (6,) [fx fy fz tx ty tz], got '
                             f'{w.shape}')
        if self._wrench_f is None:
            self._wrench_f = w
        else:
            dt = None
            if t is not None and self._wrench_t is not None and t > self._wrench_t:
                dt = t - self._wrench_t
            a = self._alpha if dt is None else self._gain(dt)
            self._wrench_f = self._wrench_f + a * (w - self._wrench_f)
        self._wrench_t = t
        return predicted, self._wrench_f - predicted


def _same_payload(a, b):
    """Whether two models' payloads (a Payload or None each) are the same load."""
    # to 1e-9 (Payload.same_as), not bit for bit as the plant's: a load declared again, rounded
    # on its way through a message, must not start the effort and wrench low-passes again
    return a is b or (a is not None and a.same_as(b))
