"""The degradation model: RUL with an interval, onset, and no number without evidence."""
import numpy as np
import pytest
from twin_anomaly.rul import estimate_rul, NO_DEGRADATION, STABLE, TrendSettings


def _hinge(t, onset, drift, noise, rng):
    return np.maximum(t - onset, 0.0) * drift + noise * rng.standard_normal(t.size)


def test_linear_wear_after_an_onset_interval_covers_the_truth():
    rng = np.random.default_rng(3)
    t = np.arange(100.0)                    # hours, one epoch an hour
    covered, errors = 0, []
    for _ in range(100):
        d = _hinge(t, onset=30.0, drift=1 / 150.0, noise=0.01, rng=rng)   # fails at 180 h
        est = estimate_rul(t, d, t[-1])
        assert est.has_number and est.reason == ''
        true = 180.0 - t[-1]
        covered += est.lower_hours <= true <= est.upper_hours
        errors.append(est.rul_hours - true)
        assert est.lower_hours <= est.rul_hours <= est.upper_hours
    assert covered >= 85                     # a 90 % interval
    assert abs(np.mean(errors)) < 1.0 and np.std(errors) < 3.0
    assert est.onset_hours == pytest.approx(30.0, abs=6.0)
    assert est.probability > 0.999


def test_healthy_joint_gives_no_number():
    rng = np.random.default_rng(4)
    t = np.arange(200.0)
    numbers = 0
    for _ in range(100):
        est = estimate_rul(t, 0.01 * rng.standard_normal(t.size), t[-1])
        numbers += est.has_number
        assert est.reason == NO_DEGRADATION or est.has_number
    assert numbers == 0


def test_significant_but_tiny_degradation_gives_no_number():
    t = np.arange(200.0)
    d = 1e-4 * t + 1e-4 * np.sin(t)        # a clear trend, but 2 % of the way to failure
    est = estimate_rul(t, d, t[-1], TrendSettings(min_degradation=0.05))
    assert est.reason == NO_DEGRADATION and est.probability > 0.99


def test_too_few_epochs_says_so():
    est = estimate_rul([0.0, 1.0, 2.0], [0.1, 0.2, 0.3], 2.0, TrendSettings(min_points=6))
    assert est.reason == 'collecting evidence: 3 of 6 epochs'
    nan_padded = estimate_rul(np.arange(8.0), [np.nan] * 4 + [0.1, 0.2, 0.3, 0.4], 7.0)
    assert nan_padded.reason.startswith('collecting evidence: 4 of')


def test_failed_joint_has_zero_rul():
    t = np.arange(20.0)
    est = estimate_rul(t, 0.1 * t, t[-1])      # d = 1.9 now
    assert est.has_number and est.rul_hours == 0.0 and est.degradation > 1.0


def test_diffusion_widens_the_interval_and_same_history_same_answer():
    rng = np.random.default_rng(5)
    t = np.arange(60.0)
    d = _hinge(t, 10.0, 0.01, 0.005, rng)
    plain = estimate_rul(t, d, t[-1])
    again = estimate_rul(t, d, t[-1])
    assert plain == again
    wide = estimate_rul(t, d, t[-1], TrendSettings(diffusion_per_sqrt_hour=0.05))
    assert wide.upper_hours - wide.lower_hours > plain.upper_hours - plain.lower_hours


def test_bad_settings_name_the_field():
    with pytest.raises(ValueError, match='interval'):
        TrendSettings(interval=1.5)
    with pytest.raises(ValueError, match='min_points'):
        TrendSettings(min_points=2)


def test_a_step_without_growth_is_no_trend_not_no_degradation():
    rng = np.random.default_rng(6)
    t = np.arange(60.0)
    d = np.where(t >= 20.0, 0.5, 0.0) + 0.01 * rng.standard_normal(t.size)
    d[t >= 20.0] -= 0.002 * (t[t >= 20.0] - 20.0)         # not growing (slightly falling)
    est = estimate_rul(t, d, t[-1])
    assert not est.has_number
    assert est.reason.startswith(STABLE) and est.degradation > 0.3
