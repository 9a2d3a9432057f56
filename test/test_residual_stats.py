"""Streaming residual statistics against direct (batch) formulas and independent libraries."""
import numpy as np
import pytest
from scipy.signal import lfilter
from scipy.stats import median_abs_deviation

from twin_anomaly.residual_stats import alpha_from_time_constant, Cusum, EwmaStats, \
    long_run_std, robust_center_scale, StrideBuffer, WindowedRms


def _ew_direct(x, alpha):
    """Weighted mean/variance with weights (1 - alpha)**age over the finite samples of x."""
    x = x[np.isfinite(x)]
    w = (1.0 - alpha) ** np.arange(len(x))[::-1]
    mean = np.sum(w * x) / np.sum(w)
    return mean, np.sum(w * (x - mean) ** 2) / np.sum(w)


def test_alpha_from_time_constant():
    assert alpha_from_time_constant(0.02, 0.0) == 1.0
    assert alpha_from_time_constant(0.02, 0.05) == pytest.approx(1.0 - np.exp(-0.4))
    with pytest.raises(ValueError, match='tau_s'):
        alpha_from_time_constant(0.02, -1.0)
    with pytest.raises(ValueError, match='dt_s'):
        alpha_from_time_constant(0.0, 1.0)


def test_ewma_matches_explicit_exponential_weights_and_skips_nan():
    rng = np.random.default_rng(3)
    x = rng.normal(2.0, 0.5, size=(300, 3))
    x[rng.random(x.shape) < 0.25] = np.nan
    x[:, 2] = np.nan                                   # a channel that never has data
    stats = EwmaStats(3, [0.05, 0.3, 0.1])
    for row in x:
        stats.update(row)
    for ch, alpha in ((0, 0.05), (1, 0.3)):
        mean, var = _ew_direct(x[:, ch], alpha)
        assert stats.mean[ch] == pytest.approx(mean, rel=1e-12)
        assert stats.var[ch] == pytest.approx(var, rel=1e-9)
    assert stats.mean[2] == 0.0 and stats.weight[2] == 0.0 and stats.var[2] == 0.0


def test_ewma_first_sample_is_unbiased_and_reset_by_mask():
    stats = EwmaStats(2, 0.01)
    stats.update([5.0, -3.0])
    np.testing.assert_allclose(stats.mean, [5.0, -3.0])
    stats.reset(np.array([True, False]))
    stats.update([1.0, np.nan])
    np.testing.assert_allclose(stats.mean, [1.0, -3.0])


def test_ewma_run_equals_repeated_update():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(400, 4))
    x[rng.random(x.shape) < 0.2] = np.nan
    x[:40, 1] = np.nan
    a = EwmaStats(4, [0.1, 0.3, 1.0, 0.02])
    a.update([1.0, np.nan, 2.0, 3.0])
    b = a.copy()
    trace = []
    for row in x:
        a.update(row)
        trace.append(a.mean.copy())
    np.testing.assert_allclose(b.run(x), trace, atol=1e-12)
    np.testing.assert_allclose(b.mean, a.mean, atol=1e-12)
    np.testing.assert_allclose(b.var, a.var, atol=1e-12)
    np.testing.assert_allclose(b.weight, a.weight, atol=1e-12)


def test_windowed_rms_is_rms_of_last_window():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(57, 2))
    x[50, 0] = np.nan
    rms = WindowedRms(2, 10)
    for row in x:
        rms.update(row)
    last = x[-10:]
    expect = [np.sqrt(np.nanmean(last[:, 0] ** 2)), np.sqrt(np.mean(last[:, 1] ** 2))]
    np.testing.assert_allclose(rms.rms(), expect, rtol=1e-12)
    assert np.isnan(WindowedRms(1, 3).rms()[0])


def test_cusum_hand_computed_sequence():
    cus = Cusum(1, k=0.5)
    trace = []
    for z in [1.0, 2.0, np.nan, -3.0, 0.2, 4.0]:
        cus.update([z])
        trace.append((cus.g_pos[0], cus.g_neg[0]))
    # g+ : 0.5, 2.0, (skip) 2.0, 0, 0, 3.5 ; g- : 0, 0, 0, 2.5, 1.8, 0
    np.testing.assert_allclose(trace, [(0.5, 0), (2.0, 0), (2.0, 0), (0, 2.5), (0, 1.8),
                                       (3.5, 0)])


def test_cusum_weighted_samples_count_for_their_share():
    """A sample of weight w steps the statistics by w (z - k): two halves make one whole."""
    halves, whole = Cusum(2, k=0.5), Cusum(2, k=0.5)
    for z in ([2.0, -1.5], [3.0, -4.0], [np.nan, 0.1]):
        halves.update(z, weight=np.array([0.5, 0.5]))
        halves.update(z, weight=np.array([0.5, 0.5]))
        whole.update(z)
    np.testing.assert_allclose(halves.g_pos, whole.g_pos)
    np.testing.assert_allclose(halves.g_neg, whole.g_neg)
    # g+ of channel 0: 0.5 (2 - 0.5) = 0.75, then + 0.5 (3 - 0.5) = 2.0; g- of channel 1
    # 0.5 (1.5 - 0.5) = 0.5, then + 0.5 (4 - 0.5) = 2.25, then + 0.5 (-0.1 - 0.5) -> 1.95
    weighted = Cusum(2, k=0.5)
    for z in ([2.0, -1.5], [3.0, -4.0], [np.nan, 0.1]):
        weighted.update(z, weight=np.array([0.5, 0.5]))
    np.testing.assert_allclose(weighted.g_pos, [2.0, 0.0])
    np.testing.assert_allclose(weighted.g_neg, [0.0, 1.95])


def test_cusum_detects_small_mean_shift_and_cap_bounds_recovery():
    rng = np.random.default_rng(6)
    cus = Cusum(1, k=0.5, cap=20.0)
    z = rng.normal(size=2000)
    z[1000:] += 1.0                                    # shift of 1 sigma at sample 1000
    stat = []
    for v in z:
        cus.update([v])
        stat.append(cus.statistic[0])
    stat = np.asarray(stat)
    assert stat[:1000].max() < 10.0
    crossing = 1000 + np.argmax(stat[1000:] > 10.0)
    assert 1000 < crossing < 1000 + 80                 # ~ h / (delta - k) = 20 samples
    assert stat.max() <= 20.0


def test_cusum_run_equals_repeated_update():
    rng = np.random.default_rng(7)
    z = rng.normal(0.3, 1.0, size=(500, 3))
    z[rng.random(z.shape) < 0.2] = np.nan
    a = Cusum(3, k=0.5)
    a.g_pos[:] = [1.0, 0.0, 3.0]
    a.g_neg[:] = [0.0, 2.0, 0.0]
    b = a.copy()
    trace = []
    for row in z:
        a.update(row)
        trace.append(a.statistic)
    np.testing.assert_allclose(b.run(z), trace, atol=1e-9)
    np.testing.assert_allclose(b.g_pos, a.g_pos, atol=1e-9)
    np.testing.assert_allclose(b.g_neg, a.g_neg, atol=1e-9)


def test_robust_center_scale_matches_scipy_and_ignores_outliers():
    rng = np.random.default_rng(8)
    x = rng.normal(1.0, 2.0, size=(2001, 3))
    x[:100, 0] = 1e6                                   # 5 % gross outliers
    x[::3, 1] = np.nan
    x[:, 2] = np.nan
    center, scale = robust_center_scale(x)
    for ch in (0, 1):
        col = x[np.isfinite(x[:, ch]), ch]
        assert center[ch] == pytest.approx(np.median(col))
        assert scale[ch] == pytest.approx(median_abs_deviation(col, scale='normal'))
    assert scale[0] == pytest.approx(2.0, rel=0.15)
    assert np.isnan(center[2]) and np.isnan(scale[2])


def test_long_run_std_white_and_ar1():
    rng = np.random.default_rng(9)
    m = 40000
    white = rng.normal(0.0, 2.0, m)
    rho = 0.8
    ar = lfilter([1.0], [1.0, -rho], rng.normal(0.0, 1.0, m))
    est = long_run_std(np.column_stack([white, ar]))
    # AR(1) with unit innovations: long-run std = 1 / (1 - rho) = 5
    assert est[0] == pytest.approx(2.0, rel=0.15)
    assert est[1] == pytest.approx(1.0 / (1.0 - rho), rel=0.2)
    upper = long_run_std(np.column_stack([white, ar]), upper_confidence=0.9)
    assert np.all(upper > est)
    assert np.isnan(long_run_std(np.ones((1, 1)))[0])            # fewer than 2 batches


def test_stride_buffer_exact_below_capacity_then_uniform_decimation():
    buf = StrideBuffer(1, capacity=8)
    for i in range(8):
        buf.append([i])
    assert buf.stride == 1 and buf.values()[:, 0].tolist() == list(range(8))
    for i in range(8, 100):
        buf.append([i])
    kept = buf.values()[:, 0]
    assert buf.stride == 16 and len(buf) <= 8
    assert kept.tolist() == list(range(0, 100, 16))     # evenly spread over the whole stream
    assert buf.appended == 100
    center, _ = buf.median_scale()
    assert center[0] == pytest.approx(np.median(kept))
    assert buf.quantile(1.0)[0] == kept.max()


@pytest.mark.parametrize('make, match', [
    (lambda: EwmaStats(0, 0.1), 'n_channels'),
    (lambda: EwmaStats(2, 1.5), 'alpha'),
    (lambda: WindowedRms(2, 0), 'window'),
    (lambda: Cusum(2, -1.0), 'k'),
    (lambda: StrideBuffer(2, 7), 'capacity'),
])
def test_bad_arguments_name_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()
