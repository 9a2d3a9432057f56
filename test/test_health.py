"""Health evidence: friction identified from residuals, degradation scaling, health index."""
import numpy as np
import pytest
from twin_anomaly.health import Baseline, degradation, EpochAccumulator, EpochEvidence, \
    FailureLimits, health_index, solve_epoch
from twin_sim.friction import viscous_coulomb

N = 3
LIMIT = np.array([100.0, 50.0, 20.0])


def _stream(delta_viscous, delta_coulomb, offset, seconds=20.0, rate=200.0, noise=0.05,
            seed=0):
    """Velocities of three joints and the effort residual a friction change leaves."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, seconds, 1.0 / rate)
    qd = np.stack([0.6 * np.sin(2 * np.pi * t / 4.0), 0.3 * np.sin(2 * np.pi * t / 3.0 + 1.0),
                   np.full_like(t, 0.4)], axis=1)            # joint 3 moves one way only
    res = viscous_coulomb(qd, np.array(delta_viscous), np.array(delta_coulomb),
                          np.array(offset)) + noise * rng.standard_normal(qd.shape)
    effort = 10.0 * np.sin(t)[:, None] * np.array([5.0, 2.0, 1.0]) + res
    return t, qd, effort, res


def _accumulate(t, qd, effort, res, block=200):
    acc = EpochAccumulator(N, moving_speed=0.02)
    dt = np.full(t.size, t[1] - t[0])
    for lo in range(0, t.size, block):
        hi = min(lo + block, t.size)
        acc.add_block(qd[lo:hi], effort[lo:hi], res[lo:hi], LIMIT, dt[lo:hi], t[hi - 1])
    return acc


def test_the_torque_margin_is_the_second_worst_block_one_burst_is_no_wear():
    """
    One burst near the effort limit does not set the epoch's margin; two blocks do.

    A stall of the demo's simulated robot sent joint2 to its limit for a moment, and the whole
    epoch read "at the failure limit": RUL 0 h on a joint without any fault.
    """
    t, qd, effort, res = _stream([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0])
    calm = 1.0 - _accumulate(t, qd, effort, res).peak_ratio
    burst = effort.copy()
    burst[1000:1100, 1] = 0.98 * LIMIT[1]                   # one 0.5 s burst in one block
    one = solve_epoch(_accumulate(t, qd, burst, res), np.zeros(N), 0.2).torque_margin
    assert one[1] == pytest.approx(calm[1], abs=0.05) and one[1] > 0.5
    burst[3000:3100, 1] = 0.98 * LIMIT[1]                   # and again in another block
    two = solve_epoch(_accumulate(t, qd, burst, res), np.zeros(N), 0.2).torque_margin
    assert two[1] == pytest.approx(0.02, abs=1e-6)
    # an epoch of a single block: that block
    single = _accumulate(t[:150], qd[:150], burst[:150], res[:150])
    assert 1.0 - single.peak_ratio[1] == pytest.approx(
        solve_epoch(single, np.zeros(N), 0.2).torque_margin[1])


def test_friction_change_is_identified_from_the_residual():
    t, qd, effort, res = _stream([0.3, -0.1, 0.0], [1.2, 0.4, 0.5], [0.2, -0.1, 0.0])
    acc = _accumulate(t, qd, effort, res)
    model = np.array([0.5, 0.4, 0.2]) * 0.2 + [0.8, 0.6, 0.3]     # viscous v_ref + Coulomb
    ev = solve_epoch(acc, model, reference_speed=0.2)
    np.testing.assert_allclose(ev.delta_coulomb[:2], [1.2, 0.4], atol=0.03)
    np.testing.assert_allclose(ev.delta_viscous[:2], [0.3, -0.1], atol=0.08)
    np.testing.assert_allclose(ev.offset[:2], [0.2, -0.1], atol=0.03)
    expected = np.array([0.5, 0.4]) * 0.2 + [0.8, 0.6] + [0.3 * 0.2 + 1.2, -0.1 * 0.2 + 0.4]
    np.testing.assert_allclose(ev.friction_nm[:2], expected, atol=0.03)
    np.testing.assert_allclose(ev.residual_rms_nm[:2], 0.05, rtol=0.1)    # the noise left
    assert np.all(ev.friction_se_nm[:2] < 0.01)
    # joint 3 never changes direction: Coulomb friction and offset cannot be told apart
    assert np.isnan(ev.friction_nm[2]) and np.isnan(ev.residual_rms_nm[2])
    # the margin: the second worst of the blocks' q99 of |effort| / limit
    blocks = np.array([np.quantile(np.abs(effort[lo:lo + 200]) / LIMIT, 0.99, axis=0)
                       for lo in range(0, t.size, 200)])
    np.testing.assert_allclose(ev.torque_margin, 1.0 - np.sort(blocks, axis=0)[-2])
    assert np.all(ev.torque_margin > 1.0 - np.abs(effort).max(axis=0) / LIMIT - 1e-9)
    assert acc.operating_s == pytest.approx(20.0, abs=0.01)


def test_nan_residuals_and_standstill_are_skipped():
    t, qd, effort, res = _stream([0.0] * 3, [0.5] * 3, [0.0] * 3)
    res[::3] = np.nan
    qd[:500] = 0.0
    ev = solve_epoch(_accumulate(t, qd, effort, res), [0.0] * 3, 0.2)
    np.testing.assert_allclose(ev.delta_coulomb[:2], 0.5, atol=0.03)
    assert ev.samples[0] < t.size * 2 / 3


def test_evidence_round_trip():
    t, qd, effort, res = _stream([0.1] * 3, [0.2] * 3, [0.0] * 3)
    ev = solve_epoch(_accumulate(t, qd, effort, res), [0.0] * 3, 0.2)
    back = EpochEvidence.from_dict({k: [None if np.isnan(x) else x for x in v]
                                    for k, v in ev.as_dict().items()}, N)
    for name in ('friction_nm', 'residual_rms_nm', 'torque_margin', 'samples'):
        np.testing.assert_array_equal(getattr(back, name), getattr(ev, name))
    with pytest.raises(ValueError, match='friction_nm'):
        EpochEvidence.from_dict({'friction_nm': [1.0]}, N)


def _evidence(friction, residual, margin):
    nan = np.full(N, np.nan)
    return EpochEvidence(np.array(friction, float), nan, nan, nan, nan,
                         np.array(residual, float), np.array(margin, float),
                         np.zeros(N, int), nan)


def test_degradation_is_zero_commissioned_and_one_at_the_configured_limits():
    base = Baseline(np.array([1.0, 2.0, 1.0]), np.array([0.1, 0.01, 0.2]),
                    np.array([0.6, 0.5, 0.12]))
    limits = FailureLimits(np.array([3.0, np.nan, np.nan]), friction_factor=2.0,
                           residual_factor=4.0, min_residual_rms_nm=0.05,
                           min_torque_margin=0.1)
    np.testing.assert_allclose(limits.friction_limit(base), [3.0, 4.0, 2.0])
    d0 = degradation(_evidence([1.0, 2.0, 1.0], [0.1, 0.05, 0.2], [0.6, 0.5, 0.12]), base,
                     limits)
    np.testing.assert_allclose(d0, 0.0, atol=1e-12)
    d1 = degradation(_evidence([3.0, 4.0, 2.0], [0.4, 0.2, 0.8], [0.1, 0.1, 0.1]), base,
                     limits)
    np.testing.assert_allclose(d1, 1.0)
    half = degradation(_evidence([2.0, 3.0, 1.5], [0.25, 0.125, 0.5], [0.35, 0.3, 0.11]),
                       base, limits)
    np.testing.assert_allclose(half, 0.5)
    np.testing.assert_allclose(health_index(half), 0.5)
    np.testing.assert_allclose(health_index(np.array([[0.2, np.nan, 1.5]])), 0.0)
    assert np.isnan(health_index(np.full((1, 3), np.nan)))[0]


def test_baseline_is_the_median_of_epochs_and_round_trips():
    evs = [_evidence([1.0 + i, 2.0, np.nan], [0.1, 0.1, np.nan], [0.5, 0.5, np.nan])
           for i in range(5)]
    base = Baseline.from_epochs(evs)
    assert base.friction_nm[0] == 3.0 and np.isnan(base.friction_nm[2])
    back = Baseline.from_dict({k: ([None if isinstance(x, float) and np.isnan(x) else x
                                    for x in v] if isinstance(v, list) else v)
                               for k, v in base.as_dict().items()}, N)
    np.testing.assert_array_equal(back.friction_nm, base.friction_nm)
    assert back.epochs == 5
