"""
Mirror (twin_sim/mirror.py): residuals of a robot that moves exactly like its model.

The "robot" is the model itself: smooth joint motion with analytic q, qd, qdd (and higher
derivatives), efforts = RobotModel.inverse_dynamics + the model's friction, wrench =
RobotModel.ft_wrench, sampled at 1 kHz. Whatever residual remains is then the mirror's own
estimation error, which has a known form:

- effort: the mirror low-passes measured and predicted effort alike (first order, gain
  ``a = dt / (dt + tau)``, ``tau = 1 / (2 pi f_c)``), so its residual is the low-passed raw
  residual ``effort - ID(q, qd, qdd_raw) - friction(qd)`` with ``qdd_raw`` the backward
  difference of qd. For the model's own motion that raw residual is ``M(q) (qdd - qdd_raw)``,
  and Taylor gives ``|qdd - qdd_raw| <= max|d3q| dt/2 + max|d4q| dt^2/6``; a low-pass (a convex
  combination of its inputs) never exceeds the largest input;
- acceleration estimate (reported): the same low-pass on ``qdd_raw``, i.e. the true
  acceleration delayed by ``L = tau + dt/2`` (the discrete filter delays a ramp by exactly
  ``tau``), so ``|qdd - qdd_est| <= max|d3q| L + max|d4q| L^2``;
- one-step state: semi-implicit Euler from the previous sample under its (consistent) effort
  is exact up to its truncation: ``qd_k - qd_pred = qd_k - qd_{k-1} - dt qdd_{k-1}`` and
  ``q_k - q_pred = q_k - q_{k-1} - dt qd_{k-1} - dt^2 qdd_{k-1}``;
- with constant joint acceleration every difference is exact, so effort and wrench residuals
  vanish from the first result on.
"""
import math
from pathlib import Path

import numpy as np
import pytest

from twin_sim.friction import FrictionModel
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from twin_sim.urdf_model import Payload, RobotModel

ARM = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'
DT = 1e-3                 # 1 kHz robot
CUTOFF_HZ = 40.0          # Mirror's default low-pass
TAU = 1.0 / (2.0 * math.pi * CUTOFF_HZ)
ALPHA = DT / (DT + TAU)   # its gain per 1 kHz step
LAG = TAU + DT / 2.0      # delay of the acceleration estimate, s
T0 = 100.0                # stamps start here (any positive time)


@pytest.fixture(scope='module')
def model():
    return RobotModel.from_urdf(ARM).with_payload(
        Payload(1.2, [0.0, 0.01, 0.06], np.diag([2e-3, 2e-3, 1e-3])))


class Sinusoids:
    """q_i(t) = c_i + a_i sin(w_i t + p_i): distinct frequencies, inside the joint limits."""

    def __init__(self, model, speed=1.0):
        lo, hi = np.clip(model.lower, -2.5, 2.5), np.clip(model.upper, -2.5, 2.5)
        self.c = 0.5 * (lo + hi)
        self.a = 0.12 * (hi - lo)
        self.w = 2.0 * math.pi * np.linspace(0.4, 1.1, model.n) * speed
        self.p = np.linspace(0.0, 2.0, model.n)

    def __call__(self, t, order=0):
        """Return the ``order``-th time derivative of q at ``t`` ((n,) rad/s^order)."""
        phase = self.w * t + self.p + order * math.pi / 2.0
        return (self.c if order == 0 else 0.0) + self.a * self.w ** order * np.sin(phase)

    def max_abs(self, order):
        return self.a * self.w ** order


class ConstantAcceleration:
    """q(t) = q0 + v0 s + a s^2 / 2 with s = t - T0: every finite difference is exact."""

    def __init__(self, model):
        self.q0 = 0.5 * (np.clip(model.lower, -2.5, 2.5) + np.clip(model.upper, -2.5, 2.5))
        self.v0 = np.linspace(-0.4, 0.4, model.n)
        self.acc = np.linspace(1.5, -1.0, model.n)

    def __call__(self, t, order=0):
        s = t - T0
        return (self.q0 + self.v0 * s + 0.5 * self.acc * s * s, self.v0 + self.acc * s,
                self.acc)[order]


def consistent_effort(model, q, qd, qdd):
    """Effort of a robot that is exactly the model (rigid body + friction), (n,) N·m."""
    return model.inverse_dynamics(q, qd, qdd) + model.friction_model.torque(qd)


def low_pass(values, alpha=ALPHA):
    """First-order low-pass of a sequence, started at its first value (as the mirror does)."""
    out, y = [], None
    for x in values:
        y = x if y is None else y + alpha * (x - y)
        out.append(y)
    return out


def run(model, motion, samples, *, effort_offset=None, with_velocity=True, mirror=None):
    """Feed ``samples`` 1 kHz samples of ``motion``; return (mirror, [(t, sample, result)])."""
    mirror = mirror or Mirror(Predictor(model), accel_cutoff_hz=CUTOFF_HZ)
    out = []
    for k in range(samples):
        t = T0 + k * DT
        q, qd, qdd = motion(t), motion(t, 1), motion(t, 2)
        effort = consistent_effort(model, q, qd, qdd)
        if effort_offset is not None:
            effort = effort + effort_offset
        result = mirror.update(t, q, qd if with_velocity else None, effort)
        out.append((t, (q, qd, qdd, effort), result))
    return mirror, out


def test_effort_residual_is_the_low_passed_half_sample_lag(model):
    motion = Sinusoids(model)
    _mirror, out = run(model, motion, 1500)
    assert out[0][2] is None and all(r is not None for _t, _s, r in out[1:])
    # what the residual must be: the raw residual at the differenced acceleration, low-passed
    raw, bound = [], np.zeros(model.n)
    qdd_bound = motion.max_abs(3) * DT / 2.0 + motion.max_abs(4) * DT ** 2 / 6.0
    for (_t0, (_q0, qd0, _a0, _e0), _r0), (_t, (q, qd, qdd, effort), _r) in zip(out, out[1:]):
        qdd_raw = (qd - qd0) / DT
        raw.append(effort - model.inverse_dynamics(q, qd, qdd_raw)
                   - model.friction_model.torque(qd))
        bound = np.maximum(bound, np.abs(model.mass_matrix(q)) @ qdd_bound)
    worst = np.zeros(model.n)
    for expected, (_t, (_q, _qd, _qdd, effort), result) in zip(low_pass(raw), out[1:]):
        np.testing.assert_allclose(result.effort_residual, expected, atol=1e-9)
        np.testing.assert_allclose(result.effort_residual,
                                   result.measured_effort - result.predicted_effort, atol=1e-12)
        np.testing.assert_array_less(np.abs(result.effort_residual), bound + 1e-9)
        worst = np.maximum(worst, np.abs(result.effort_residual))
    # not vacuous: the half-sample lag is visible and of the size the bound says
    assert worst.max() > 0.3 * bound.max()
    # and it is far below what a filter on the acceleration alone would leave (M qddd L)
    filtered_acceleration_only = np.abs(model.mass_matrix(motion.c)) @ (motion.max_abs(3) * LAG)
    assert worst.max() < 0.2 * filtered_acceleration_only.max()


def test_acceleration_estimate_is_the_true_one_delayed(model):
    motion = Sinusoids(model)
    _mirror, out = run(model, motion, 800)
    qdd_bound = motion.max_abs(3) * LAG + motion.max_abs(4) * LAG ** 2
    settle = int(10 * TAU / DT)   # filter transient (1 - alpha)^k below 2e-4 of its start
    for k, (t, (_q, _qd, qdd, _e), result) in enumerate(out[1:], start=1):
        # right from the start (the filter starts at the first difference, not at zero)
        np.testing.assert_array_less(np.abs(qdd - result.acceleration), qdd_bound)
        if k >= settle:
            # the estimate is the true acceleration delayed by L (to second order)
            np.testing.assert_array_less(np.abs(result.acceleration - motion(t - LAG, 2)),
                                         motion.max_abs(4) * LAG ** 2)


def test_constant_acceleration_gives_zero_residuals(model):
    motion = ConstantAcceleration(model)
    _mirror, out = run(model, motion, 300)
    efforts = low_pass([sample[3] for _t, sample, _r in out[1:]])
    for (t, (q, qd, qdd, effort), result), measured in zip(out[1:], efforts):
        np.testing.assert_allclose(result.acceleration, motion.acc, atol=1e-6)
        np.testing.assert_allclose(result.effort_residual, 0.0, atol=1e-5)
        np.testing.assert_allclose(result.measured_effort, measured, atol=1e-12)
        np.testing.assert_allclose(result.predicted_effort, measured, atol=1e-5)
        # semi-implicit Euler: the velocity step is exact, the position step is off by
        # exactly -acc dt^2 / 2 (q_pred = q + dt (qd + dt acc))
        np.testing.assert_allclose(result.velocity_residual, 0.0, atol=1e-9)
        np.testing.assert_allclose(result.position_residual, -0.5 * motion.acc * DT * DT,
                                   atol=1e-12)


def test_slow_motion_leaves_almost_no_residual(model):
    """Gravity and friction change as the arm moves: both sides see that alike."""
    motion = Sinusoids(model, speed=0.25)
    _mirror, out = run(model, motion, 600)
    worst = max(np.abs(r.effort_residual).max() for _t, _s, r in out[1:])
    assert worst < 1e-3


def test_effort_offset_shows_up_exactly_on_its_joint(model):
    motion = Sinusoids(model)
    joint, offset = 3, 2.5
    bias = np.zeros(model.n)
    bias[joint] = offset
    _m, clean = run(model, motion, 200)
    _m, biased = run(model, motion, 200, effort_offset=bias)
    for (_t, (q_prev, *_), _r), (_t2, _s, a), (_t3, _s3, b) in zip(clean[1:], clean[2:],
                                                                   biased[2:]):
        # the low-pass starts at the first (biased) sample: the offset is there at once
        np.testing.assert_allclose(b.effort_residual - a.effort_residual, bias, atol=1e-9)
        np.testing.assert_allclose(b.predicted_effort, a.predicted_effort, atol=1e-12)
        # the one-step prediction ran under the biased previous effort: it expects an extra
        # acceleration M^-1 bias, so the measured state falls short by dt (and dt^2) of it
        extra = np.linalg.solve(model.mass_matrix(q_prev), bias)
        np.testing.assert_allclose(b.velocity_residual - a.velocity_residual, -DT * extra,
                                   atol=1e-10)
        np.testing.assert_allclose(b.position_residual - a.position_residual,
                                   -DT * DT * extra, atol=1e-13)


def test_effort_step_passes_the_low_pass(model):
    """A fault that starts mid-stream reaches the residual with the filter's time constant."""
    motion = ConstantAcceleration(model)
    mirror = Mirror(Predictor(model), accel_cutoff_hz=CUTOFF_HZ)
    step = np.zeros(model.n)
    step[1] = -4.0
    for k in range(120):
        t = T0 + k * DT
        q, qd, qdd = motion(t), motion(t, 1), motion(t, 2)
        effort = consistent_effort(model, q, qd, qdd) + (step if k >= 20 else 0.0)
        result = mirror.update(t, q, qd, effort)
        if k >= 20:
            np.testing.assert_allclose(result.effort_residual,
                                       step * (1.0 - (1.0 - ALPHA) ** (k - 19)), atol=1e-5)


def test_one_step_prediction_matches_consistent_efforts(model):
    motion = Sinusoids(model)
    _mirror, out = run(model, motion, 400)
    for (_t0, (q0, qd0, qdd0, _e0), _r0), (_t1, (q1, qd1, _qdd1, _e1), result) in zip(
            out[1:], out[2:]):
        # forward dynamics under the consistent effort recovers qdd0 exactly, so what is
        # left is the Euler truncation, computed here from the analytic motion
        np.testing.assert_allclose(result.velocity_residual, qd1 - qd0 - DT * qdd0,
                                   atol=1e-10)
        np.testing.assert_allclose(result.position_residual,
                                   q1 - q0 - DT * qd0 - DT * DT * qdd0, atol=1e-13)
        np.testing.assert_array_less(np.abs(result.velocity_residual),
                                     0.5 * DT * DT * motion.max_abs(3) + 1e-10)
        np.testing.assert_array_less(np.abs(result.position_residual),
                                     0.5 * DT * DT * motion.max_abs(2)
                                     + DT ** 3 * motion.max_abs(3) + 1e-13)


def test_time_gap_and_backwards_stamp_restart(model):
    motion = ConstantAcceleration(model)
    mirror = Mirror(Predictor(model), max_gap_s=0.05)

    def feed(t):
        q, qd, qdd = motion(t), motion(t, 1), motion(t, 2)
        return mirror.update(t, q, qd, consistent_effort(model, q, qd, qdd))

    t = T0
    assert feed(t) is None and mirror.restarts == 0   # the first sample only starts
    for _ in range(5):
        t += DT
        assert feed(t) is not None
    assert mirror.wrench_residual(np.zeros(6)) is not None
    t += 0.06                                          # gap > max_gap_s
    assert feed(t) is None and mirror.restarts == 1
    assert mirror.wrench_residual(np.zeros(6)) is None  # no prediction from before the gap
    t += DT
    result = feed(t)
    assert result is not None and mirror.restarts == 1
    np.testing.assert_allclose(result.effort_residual, 0.0, atol=1e-5)  # no restart burst
    t += 0.05                     # within max_gap_s, but 50 typical periods: a gap as well
    assert feed(t) is None and mirror.restarts == 2
    t += DT
    assert feed(t) is not None and mirror.restarts == 2
    t += DT
    assert feed(t) is not None
    t += 2 * DT                                         # one dropped sample: not a gap
    assert feed(t) is not None and mirror.restarts == 2
    t += 10 * DT                    # nine rejected samples: bridged, the next one has a result
    assert feed(t) is not None and mirror.restarts == 2
    assert feed(t - 0.01) is None and mirror.restarts == 3   # backwards in time
    assert feed(t) is not None and mirror.restarts == 3
    assert feed(t) is None and mirror.restarts == 3          # same stamp: no step, no restart
    assert feed(t + DT) is not None
    mirror.reset()
    assert feed(t + 2 * DT) is None and mirror.restarts == 3


def test_missing_velocity_is_differentiated_from_positions(model):
    motion = Sinusoids(model)
    _m, out = run(model, motion, 600, with_velocity=False)
    assert out[0][2] is None and out[1][2] is None     # two positions before a velocity
    assert all(r is not None for _t, _s, r in out[2:])
    # expected: velocity and acceleration by backward differences over the stamps (double
    # differences amplify the stamps' rounding), then the residual filter
    qd_bd = [None] + [(b[1][0] - a[1][0]) / (b[0] - a[0]) for a, b in zip(out, out[1:])]
    raw = []
    for k in range(2, len(out)):
        q, effort = out[k][1][0], out[k][1][3]
        qdd_raw = (qd_bd[k] - qd_bd[k - 1]) / (out[k][0] - out[k - 1][0])
        raw.append(effort - model.inverse_dynamics(q, qd_bd[k], qdd_raw)
                   - model.friction_model.torque(qd_bd[k]))
    lag = TAU + DT                                      # two backward differences
    bound = motion.max_abs(3) * lag + motion.max_abs(4) * lag ** 2
    for expected, (t, (_q, _qd, qdd, _e), result) in zip(low_pass(raw), out[2:]):
        np.testing.assert_allclose(result.effort_residual, expected, atol=1e-8)
        if t - T0 > 10 * TAU:
            np.testing.assert_array_less(np.abs(result.acceleration - qdd), bound)


def test_missing_velocity_constant_acceleration(model):
    motion = ConstantAcceleration(model)
    _m, out = run(model, motion, 50, with_velocity=False)
    for _t, _s, result in out[2:]:
        np.testing.assert_allclose(result.acceleration, motion.acc, atol=1e-5)
        # positions-only: the velocity is the backward difference, dt/2 behind; the
        # residual stays at what that half-step costs (small), not a restart spike
        assert np.abs(result.effort_residual).max() < 0.05


def _run_with_wrench(model, motion, samples, offset_from=None, offset=None):
    mirror = Mirror(Predictor(model), accel_cutoff_hz=CUTOFF_HZ)
    out = []
    for k in range(samples):
        t = T0 + k * DT
        q, qd, qdd = motion(t), motion(t, 1), motion(t, 2)
        result = mirror.update(t, q, qd, consistent_effort(model, q, qd, qdd))
        measured = model.ft_wrench(q, qd, qdd)
        if offset_from is not None and k >= offset_from:
            measured = measured + offset
        pair = mirror.wrench_residual(measured, t) if result is not None else None
        out.append((t, (q, qd, qdd, measured), result, pair))
    return mirror, out


def test_wrench_residual_zero_when_consistent_and_equal_to_an_added_offset(model):
    motion = ConstantAcceleration(model)
    offset = np.array([1.0, -2.0, 3.5, 0.1, -0.2, 0.05])
    mirror, out = _run_with_wrench(model, motion, 200, offset_from=50, offset=offset)
    for k, (t, _s, result, (predicted, residual)) in enumerate(out[1:], start=1):
        np.testing.assert_allclose(predicted, result.predicted_wrench)
        # zero while consistent; then the offset, through the low-pass (from sample 50 on)
        expected = offset * (1.0 - (1.0 - ALPHA) ** (k - 49)) if k >= 50 else np.zeros(6)
        np.testing.assert_allclose(residual, expected, atol=1e-9)
    np.testing.assert_allclose(out[-1][3][1], offset, rtol=1e-5)
    t_last = out[-1][0]
    assert mirror.wrench_residual(np.zeros(6), t_last + 0.2) is None   # joint stream stalled


def test_wrench_residual_on_sinusoids_is_the_low_passed_raw_residual(model):
    motion = Sinusoids(model)
    _mirror, out = _run_with_wrench(model, motion, 300)
    raw = []
    for (_t0, (_q0, qd0, _a0, _w0), _r0, _p0), (_t, (q, qd, _qdd, measured), _r, _p) in zip(
            out, out[1:]):
        raw.append(measured - model.ft_wrench(q, qd, (qd - qd0) / DT))
    for expected, (_t, _s, _r, (_predicted, residual)) in zip(low_pass(raw), out[1:]):
        np.testing.assert_allclose(residual, expected, atol=1e-9)
    worst = max(np.abs(pair[1]).max() for *_rest, pair in out[1:])
    assert 1e-6 < worst < 0.1    # the half-sample lag: visible, and small


def test_the_guarded_steps_drop_and_count_what_the_live_twin_drops(model):
    """
    guarded_update / guarded_wrench_residual: what the mirror node and the replay both run.

    A sample without effort for some joint is not mirrored; a result that overflows (a velocity
    jump no robot makes: its Coriolis torques are beyond float range) is never given out and
    the mirror starts anew; a wrench residual beyond float range is dropped. Each is counted,
    under the names /twin/status gives them.
    """
    motion = Sinusoids(model)
    mirror = Mirror(Predictor(model), accel_cutoff_hz=CUTOFF_HZ)

    def sample(k, velocity_scale=1.0):
        t = T0 + k * DT
        q, qd, qdd = motion(t), motion(t, 1), motion(t, 2)
        return t, q, velocity_scale * qd, consistent_effort(model, q, qd, qdd)

    t, q, qd, effort = sample(0)
    effort[2] = math.nan                             # the robot gave no effort for joint3
    assert mirror.guarded_update(t, q, qd, effort) == (False, None)
    assert mirror.guarded_update(*sample(1)) == (True, None)      # starts the stream
    mirrored, result = mirror.guarded_update(*sample(2))
    assert mirrored and result is not None
    t, q, qd, _effort = sample(2)
    _predicted, residual = mirror.guarded_wrench_residual(model.ft_wrench(q, qd, motion(t, 2)))
    assert np.isfinite(residual).all()
    assert mirror.guarded_update(*sample(3, velocity_scale=1e200)) == (True, None)
    assert mirror.last is None                       # reset: the next sample starts anew
    assert mirror.guarded_update(*sample(4)) == (True, None)
    mirrored, result = mirror.guarded_update(*sample(5))
    assert mirrored and result is not None
    # each value finite, their sum not: too large for any real sensor
    assert mirror.guarded_wrench_residual(np.full(6, 1e308)) is None
    assert mirror.counters() == {'mirror.restarts': 0, 'mirror.nonfinite_results': 2,
                                 'mirror.samples_without_effort': 1}


def test_a_wrench_that_comes_after_later_joint_samples_is_matched_by_its_stamp(model):
    """
    A wrench stamped before the newest joint sample is compared with its own stamp's prediction.

    A twin catching up on a backlog may take ten joint states before their ten wrenches: each
    wrench is compared with the prediction of its own stamp, so the residuals are those of the
    interleaved stream (matched to the newest joint sample they were up to 0.7 N off).
    """
    motion = Sinusoids(model)
    _mirror, reference = _run_with_wrench(model, motion, 300)
    mirror = Mirror(Predictor(model), accel_cutoff_hz=CUTOFF_HZ)
    burst = []
    residuals = []
    for k, (t, (q, qd, qdd, measured), _result, _pair) in enumerate(reference):
        mirror.update(t, q, qd, consistent_effort(model, q, qd, qdd))
        burst.append((t, measured))
        if len(burst) == 10 or k == len(reference) - 1:      # then the ten wrenches
            for tw, w in burst:
                pair = mirror.wrench_residual(w, tw)
                residuals.append(None if pair is None else pair[1])
            burst = []
    for (_t, _s, _r, pair), residual in list(zip(reference, residuals))[20:]:
        np.testing.assert_allclose(residual, pair[1], atol=2e-3)
    assert max(np.abs(r).max() for r in residuals[20:]) < 0.1


def test_a_calibrated_model_takes_over_at_the_next_sample_without_a_restart_or_a_spike(model):
    """
    A model handed over mid-stream predicts from the next sample on, which gets a result.

    The robot is ``model`` (its 1.2 kg payload, the URDF friction), with the noise of a real
    one; the twin first predicts without friction, then gets the identified model (a
    calibration: the robot itself does not change, nor does the payload).
    Before, the mirror restarted at the swap: no result for that sample, and the stream
    checks counted it missing from the robot. The first residuals after the swap are the
    new model's own: those of a mirror that had it all along, to a small part of their
    normal size (no blend of both models, no restart whose unfiltered first residual carries
    the acceleration noise: 20 N·m here).
    """
    motion = Sinusoids(model)
    rng = np.random.default_rng(7)
    samples = []
    for k in range(400):
        t = T0 + k * DT
        q, qd, qdd = motion(t), motion(t, 1), motion(t, 2)
        samples.append((t, q + 1e-5 * rng.standard_normal(model.n),
                        qd + 1e-3 * rng.standard_normal(model.n),
                        consistent_effort(model, q, qd, qdd) + 0.05 * rng.standard_normal(model.n),
                        model.ft_wrench(q, qd, qdd) + 0.05 * rng.standard_normal(6)))
    friction = FrictionModel.zeros(model.joint_names)
    mirror = Mirror(Predictor(model, friction=friction), accel_cutoff_hz=CUTOFF_HZ)
    reference = Mirror(Predictor(model), accel_cutoff_hz=CUTOFF_HZ)
    swap = 200
    effort_error, wrench_error, normal = [], [], [np.zeros(model.n), np.zeros(6)]
    for k, (t, q, qd, effort, wrench) in enumerate(samples):
        if k == swap:
            mirror.set_predictor(Predictor(model))
        result, expected = mirror.update(t, q, qd, effort), reference.update(t, q, qd, effort)
        pair, expected_pair = mirror.wrench_residual(wrench, t), reference.wrench_residual(
            wrench, t)
        if k == 0:
            assert result is None
            continue
        assert result is not None and pair is not None     # every sample, the swap's too
        effort_error.append(np.abs(result.effort_residual - expected.effort_residual))
        wrench_error.append(np.abs(pair[1] - expected_pair[1]))
        normal = [np.maximum(normal[0], np.abs(expected.effort_residual)),
                  np.maximum(normal[1], np.abs(expected_pair[1]))]
    assert mirror.restarts == 0
    before, after = swap - 2, swap - 1           # (the errors' index: sample k at k - 1)
    assert effort_error[before].max() > 1.0        # the old model (friction: not the wrench)
    for k in range(after, len(effort_error)):
        np.testing.assert_array_less(effort_error[k], 0.05 * normal[0] + 1e-9)
        np.testing.assert_array_less(wrench_error[k], 0.05 * normal[1] + 1e-9)


def test_a_payload_told_as_it_is_picked_up_takes_over_without_a_restart_or_a_spike(model):
    """
    A payload declared as the robot picks it up: the next sample's residual is of normal size.

    The robot (noise of a real one) carries nothing, then the 1.2 kg from the sample at which
    the twin is told. Moving only the predictions to the new model (right for a calibration)
    would leave the load's own size in the residual, fading with the measured low-pass
    (24 N·m); a restart would give no result for that sample (counted missing). The effort
    and wrench low-passes start again at it instead.
    """
    motion = Sinusoids(model)
    unloaded = model.with_payload(None)
    rng = np.random.default_rng(8)
    mirror = Mirror(Predictor(unloaded), accel_cutoff_hz=CUTOFF_HZ)
    swap, effort, wrench = 200, [], []
    for k in range(400):
        t = T0 + k * DT
        q, qd, qdd = motion(t), motion(t, 1), motion(t, 2)
        robot = unloaded if k < swap else model
        if k == swap:
            mirror.set_predictor(Predictor(model))
        result = mirror.update(t, q + 1e-5 * rng.standard_normal(model.n),
                               qd + 1e-3 * rng.standard_normal(model.n),
                               consistent_effort(robot, q, qd, qdd)
                               + 0.05 * rng.standard_normal(model.n))
        pair = mirror.wrench_residual(robot.ft_wrench(q, qd, qdd)
                                      + 0.05 * rng.standard_normal(6), t)
        if k == 0:
            continue
        assert result is not None and pair is not None     # every sample, the swap's too
        if k >= swap:
            effort.append(np.abs(result.effort_residual))
            wrench.append(np.abs(pair[1]))
    assert mirror.restarts == 0
    # the first 20 ms after the pick: no larger than the residuals once settled with the load
    effort, wrench = np.array(effort), np.array(wrench)
    assert effort[:20].max() < 1.5 * effort[50:].max(), (effort[:20].max(), effort[50:].max())
    assert wrench[:20].max() < 1.5 * wrench[50:].max(), (wrench[:20].max(), wrench[50:].max())


def test_a_new_model_before_the_first_result_and_one_of_other_joints(model):
    mirror = Mirror(Predictor(model.with_payload(None)))
    zero = np.zeros(model.n)
    assert mirror.update(T0, zero, zero, zero) is None
    mirror.set_predictor(Predictor(model))       # nothing predicted yet: nothing to move over
    result = mirror.update(T0 + DT, zero, zero, model.inverse_dynamics(zero, zero, zero))
    np.testing.assert_allclose(result.effort_residual, 0.0, atol=1e-9)
    six = RobotModel.from_urdf(ARM, locked={model.joint_names[-1]: 0.0})
    with pytest.raises(ValueError, match='the new model has 6 joints'):
        mirror.set_predictor(Predictor(six))


def test_inputs_are_copied(model):
    """A caller that overwrites one buffer per sample (JointMapper does) gets the same result."""
    motion = Sinusoids(model)
    _m, reference = run(model, motion, 100)
    mirror = Mirror(Predictor(model), accel_cutoff_hz=CUTOFF_HZ)
    q_buf, qd_buf, e_buf = np.empty(model.n), np.empty(model.n), np.empty(model.n)
    for t, (q, qd, _qdd, effort), expected in reference:
        q_buf[:], qd_buf[:], e_buf[:] = q, qd, effort
        result = mirror.update(t, q_buf, qd_buf, e_buf)
        if expected is None:
            assert result is None
            continue
        np.testing.assert_array_equal(result.effort_residual, expected.effort_residual)
        np.testing.assert_array_equal(result.position_residual, expected.position_residual)


def test_bad_arguments_are_named(model):
    with pytest.raises(ValueError, match='accel_cutoff_hz'):
        Mirror(Predictor(model), accel_cutoff_hz=0.0)
    with pytest.raises(ValueError, match='max_gap_s'):
        Mirror(Predictor(model), max_gap_s=-1.0)
    mirror = Mirror(Predictor(model))
    with pytest.raises(ValueError, match=r'q must have shape \(7,\) in model joint order'):
        mirror.update(T0, np.zeros(6), np.zeros(7), np.zeros(7))
    with pytest.raises(ValueError, match='effort must have shape'):
        mirror.update(T0, np.zeros(7), None, np.zeros(8))
    mirror.update(T0, np.zeros(7), np.zeros(7), np.zeros(7))
    mirror.update(T0 + DT, np.zeros(7), np.zeros(7), np.zeros(7))
    with pytest.raises(ValueError, match=r'measured_wrench must have shape \(6,\)'):
        mirror.wrench_residual(np.zeros(3))
