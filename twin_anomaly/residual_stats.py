"""
Cheap streaming statistics of residual channels (ROS-free).

Every class here keeps one value per channel in flat numpy arrays and updates all channels with
a handful of vectorized operations, so it can run at the robot's sample or block rate. A
non-finite input value (NaN = "not available", or +-inf) is skipped: that channel's state is
left exactly as it was, so a missing stream never poisons the statistics of the others nor its
own history.

Contents
--------
alpha_from_time_constant
    Smoothing factor of a first-order filter for a step and a time constant.
EwmaStats
    Exponentially weighted mean and variance per channel, bias-corrected at start-up.
WindowedRms
    Root mean square over the last ``window`` updates per channel (ring buffer).
Cusum
    Two-sided cumulative sum (Page's CUSUM) per channel, with an optional cap.
StrideBuffer
    Bounded-memory, uniformly decimated record of a long stream of rows (fixed stride that
    doubles when the buffer is full), with robust statistics over it.
robust_center_scale
    Median and MAD-based standard deviation per column, ignoring NaN.
long_run_std
    Long-run standard deviation per column (batch means), for autocorrelated data.
"""
import math

import numpy as np
from scipy.signal import lfilter
from scipy.stats import chi2

#: Factor turning a median absolute deviation into a standard deviation for Gaussian data.
MAD_TO_STD = 1.482602218505602


def alpha_from_time_constant(dt_s, tau_s):
    """
    Return the smoothing factor of a first-order low-pass filter.

    Parameters
    ----------
    dt_s : float
        Time between updates, s (> 0).
    tau_s : float
        Time constant, s (>= 0). ``0`` means no smoothing (factor 1).

    Returns
    -------
    float
        ``1 - exp(-dt_s / tau_s)`` in (0, 1].

    """
    if not dt_s > 0.0 or not math.isfinite(dt_s):
        raise ValueError(f'dt_s must be a finite positive step in seconds, got {dt_s!r}')
    if not tau_s >= 0.0 or not math.isfinite(tau_s):
        raise ValueError(f'tau_s must be a finite time constant >= 0 s, got {tau_s!r}')
    if tau_s == 0.0:
        return 1.0
    return 1.0 - math.exp(-dt_s / tau_s)


def _check_channels(n_channels):
    if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) \
            or n_channels < 1:
        raise ValueError(f'n_channels must be a positive integer, got {n_channels!r}')
    return int(n_channels)


class EwmaStats:
    """
    Exponentially weighted mean and variance per channel.

    The update is ``mean += a_eff * (x - mean)``, ``var = (1 - a_eff) * (var + a_eff * d**2)``
    with ``a_eff = alpha / w`` and ``w = (1 - alpha) * w + alpha`` the accumulated weight, so
    the first sample of a channel gives ``mean = x`` exactly (no bias towards the zero
    initial value) and ``a_eff -> alpha`` after a few time constants.

    Parameters
    ----------
    n_channels : int
        Number of channels C.
    alpha : float or (C,) array
        Smoothing factor(s) in (0, 1]; see :func:`alpha_from_time_constant`.

    Attributes
    ----------
    mean : (C,) float array
        Weighted mean (0 for a channel that has not had a finite sample yet).
    var : (C,) float array
        Weighted variance, in the channel's unit squared.
    weight : (C,) float array
        Accumulated weight in [0, 1]; 0 means "no data yet".

    """

    def __init__(self, n_channels, alpha):
        n = _check_channels(n_channels)
        alpha = np.broadcast_to(np.asarray(alpha, dtype=float), (n,)).copy()
        if not np.all((alpha > 0.0) & (alpha <= 1.0)):
            raise ValueError(f'alpha must lie in (0, 1], got {alpha}')
        self.alpha = alpha
        self.mean = np.zeros(n)
        self.var = np.zeros(n)
        self.weight = np.zeros(n)
        self._a_eff = np.zeros(n)
        self._d = np.zeros(n)

    def update(self, x):
        """
        Fold one sample per channel in; non-finite entries are skipped.

        Parameters
        ----------
        x : (C,) array_like
            One value per channel, in the channel's unit.

        """
        x = np.asarray(x, dtype=float)
        valid = np.isfinite(x)
        w = np.where(valid, (1.0 - self.alpha) * self.weight + self.alpha, self.weight)
        a_eff = self._a_eff
        a_eff.fill(0.0)
        np.divide(self.alpha, w, out=a_eff, where=valid)
        d = self._d
        d.fill(0.0)
        np.subtract(x, self.mean, out=d, where=valid)
        self.mean += a_eff * d
        self.var[:] = (1.0 - a_eff) * (self.var + a_eff * d * d)
        self.weight = w

    def run(self, xs):
        """
        Fold a batch of samples in, as repeated :meth:`update` calls would, vectorized.

        Uses ``mean = S / w``, ``var = S2 / w - mean**2`` with ``S``, ``S2`` and ``w`` the
        exponentially weighted sums of ``x``, ``x**2`` and 1 over the channel's finite
        samples (computed with :func:`scipy.signal.lfilter`), which is the same recursion.

        Parameters
        ----------
        xs : (m, C) array_like
            Samples in rows, channel unit; non-finite entries are skipped.

        Returns
        -------
        (m, C) float array
            The mean after each row (for a skipped entry, the unchanged previous mean).

        """
        xs = np.asarray(xs, dtype=float)
        if xs.ndim != 2 or xs.shape[1] != len(self.mean):
            raise ValueError(f'xs must have shape (m, {len(self.mean)}), got {xs.shape}')
        out = np.empty(xs.shape)
        for ch in range(xs.shape[1]):
            a = self.alpha[ch]
            valid = np.isfinite(xs[:, ch])
            x = xs[valid, ch]
            w0, m0, v0 = self.weight[ch], self.mean[ch], self.var[ch]
            if len(x):
                num, den = [a], [1.0, a - 1.0]
                s1 = lfilter(num, den, x, zi=[(1.0 - a) * w0 * m0])[0]
                s2 = lfilter(num, den, x * x, zi=[(1.0 - a) * w0 * (v0 + m0 * m0)])[0]
                w = lfilter(num, den, np.ones(len(x)), zi=[(1.0 - a) * w0])[0]
                mean = s1 / w
                self.mean[ch] = mean[-1]
                self.var[ch] = max(0.0, s2[-1] / w[-1] - mean[-1] ** 2)
                self.weight[ch] = w[-1]
            # carry the last finite mean over skipped rows (m0 before the first)
            pos = np.where(valid, np.cumsum(valid) - 1, -1)
            pos = np.maximum.accumulate(pos)
            out[:, ch] = np.where(pos >= 0, mean[np.maximum(pos, 0)] if len(x) else m0, m0)
        return out

    @property
    def std(self):
        """(C,) float array: weighted standard deviation."""
        return np.sqrt(self.var)

    def reset(self, mask=None):
        """Forget the history of all channels, or of the channels where ``mask`` is true."""
        if mask is None:
            mask = slice(None)
        self.mean[mask] = 0.0
        self.var[mask] = 0.0
        self.weight[mask] = 0.0

    def copy(self):
        """Return an independent duplicate with the same parameters and state."""
        other = EwmaStats(len(self.mean), self.alpha)
        other.mean[:] = self.mean
        other.var[:] = self.var
        other.weight[:] = self.weight
        return other


class WindowedRms:
    """
    Root mean square over the last ``window`` updates, per channel.

    Parameters
    ----------
    n_channels : int
        Number of channels C.
    window : int
        Number of updates the RMS spans (>= 1). Memory is ``window * C`` floats.

    Notes
    -----
    The squares are kept in a ring buffer and summed when :meth:`rms` is called, so an update
    costs one row copy and there is no drifting running sum. Skipped (non-finite) entries are
    stored as NaN and left out of the mean.

    """

    def __init__(self, n_channels, window):
        n = _check_channels(n_channels)
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f'window must be a positive integer number of updates, '
                             f'got {window!r}')
        self._squares = np.full((int(window), n), np.nan)
        self._row = 0

    @property
    def window(self):
        """int: number of updates spanned."""
        return self._squares.shape[0]

    def update(self, x):
        """Add one sample per channel (``x`` : (C,), channel unit); non-finite is skipped."""
        x = np.asarray(x, dtype=float)
        self.update_mean_square(x * x)

    def update_mean_square(self, mean_square):
        """
        Add one already-squared value per channel (e.g. a block's mean of squares).

        Parameters
        ----------
        mean_square : (C,) array_like
            Mean of squares, channel unit squared; non-finite means "no data".

        """
        self._squares[self._row] = mean_square
        self._row = (self._row + 1) % self._squares.shape[0]

    def rms(self):
        """
        Return the RMS over the window.

        Returns
        -------
        (C,) float array
            RMS in the channel's unit; NaN for a channel with no finite value in the window.

        """
        finite = np.isfinite(self._squares)
        count = finite.sum(axis=0)
        total = np.where(finite, self._squares, 0.0).sum(axis=0)
        out = np.full(count.shape, np.nan)
        np.divide(total, count, out=out, where=count > 0)
        return np.sqrt(out)

    def reset(self):
        """Forget all history."""
        self._squares.fill(np.nan)
        self._row = 0


class Cusum:
    """
    Two-sided CUSUM (Page 1954) per channel, for small persistent shifts of the mean.

    With ``z`` a standardized input (zero mean, unit scale on nominal data),
    ``g_pos = max(0, g_pos + z - k)`` and ``g_neg = max(0, g_neg - z - k)``. A persistent
    shift of the mean by ``delta > k`` makes one side grow by about ``delta - k`` per update,
    so a drift is found after ``h / (delta - k)`` updates for a threshold ``h``.

    Parameters
    ----------
    n_channels : int
        Number of channels C.
    k : float
        Reference value (allowance) in units of ``z`` (>= 0); shifts below ``k`` are ignored.
    cap : float or (C,) array or None
        Optional upper clamp of ``g_pos`` and ``g_neg``. A cap bounds the time the statistic
        needs to fall back after a fault goes away (at most ``cap / k`` updates).

    Attributes
    ----------
    g_pos, g_neg : (C,) float arrays
        Upper and lower cumulative sums (>= 0), in units of ``z``.

    """

    def __init__(self, n_channels, k, cap=None):
        n = _check_channels(n_channels)
        if not k >= 0.0 or not math.isfinite(k):
            raise ValueError(f'k must be a finite reference value >= 0, got {k!r}')
        self.k = float(k)
        self.cap = None if cap is None else np.broadcast_to(
            np.asarray(cap, dtype=float), (n,)).copy()
        self.g_pos = np.zeros(n)
        self.g_neg = np.zeros(n)
        self._z = np.zeros(n)

    def update(self, z, weight=None):
        """
        Fold one standardized sample per channel in (``z`` : (C,)); non-finite is skipped.

        ``weight`` (C,), optional: how much of a sample each one counts for, in (0, 1] (the
        statistics step ``weight (z - k)``): a monitor that follows the robot's path counts a
        sample of a slower run as the share of a usual sample's path it covers.
        """
        z = np.asarray(z, dtype=float)
        valid = np.isfinite(z)
        zc = self._z
        zc.fill(0.0)
        np.copyto(zc, z, where=valid)
        k = np.where(valid, self.k, 0.0)
        if weight is not None:
            zc *= weight
            k = k * weight
        np.maximum(self.g_pos + zc - k, 0.0, out=self.g_pos)
        np.maximum(self.g_neg - zc - k, 0.0, out=self.g_neg)
        if self.cap is not None:
            np.minimum(self.g_pos, self.cap, out=self.g_pos)
            np.minimum(self.g_neg, self.cap, out=self.g_neg)

    def run(self, zs):
        """
        Fold a batch of samples in, as repeated :meth:`update` calls would.

        Without a cap this is vectorized over time with the Lindley form
        ``g_i = S_i - min(-g_0, min_{j <= i} S_j)``, ``S_i`` the cumulative sum of
        ``z - k`` (of ``-z - k`` for ``g_neg``).

        Parameters
        ----------
        zs : (m, C) array_like
            Standardized samples in rows; non-finite entries are skipped.

        Returns
        -------
        (m, C) float array
            :attr:`statistic` after each row.

        """
        zs = np.asarray(zs, dtype=float)
        if zs.ndim != 2 or zs.shape[1] != len(self.g_pos):
            raise ValueError(f'zs must have shape (m, {len(self.g_pos)}), got {zs.shape}')
        if self.cap is not None:
            out = np.empty(zs.shape)
            for i, z in enumerate(zs):
                self.update(z)
                out[i] = self.statistic
            return out
        valid = np.isfinite(zs)
        zc = np.where(valid, zs, 0.0)
        kk = np.where(valid, self.k, 0.0)
        sides = []
        for sign, g0 in ((1.0, self.g_pos), (-1.0, self.g_neg)):
            cum = np.cumsum(sign * zc - kk, axis=0)
            low = np.minimum(np.minimum.accumulate(cum, axis=0), -g0)
            sides.append(cum - low)
        if len(zs):
            self.g_pos[:] = sides[0][-1]
            self.g_neg[:] = sides[1][-1]
        return np.maximum(sides[0], sides[1])

    @property
    def statistic(self):
        """(C,) float array: ``max(g_pos, g_neg)``, the two-sided decision statistic."""
        return np.maximum(self.g_pos, self.g_neg)

    def reset(self, mask=None):
        """Zero all channels, or the channels where ``mask`` is true."""
        if mask is None:
            mask = slice(None)
        self.g_pos[mask] = 0.0
        self.g_neg[mask] = 0.0

    def copy(self):
        """Return an independent duplicate with the same parameters and state."""
        other = Cusum(len(self.g_pos), self.k, self.cap)
        other.g_pos[:] = self.g_pos
        other.g_neg[:] = self.g_neg
        return other


def robust_center_scale(values):
    """
    Median and MAD-based standard deviation per column, ignoring NaN.

    Parameters
    ----------
    values : (m, C) array_like
        Samples in rows, channels in columns.

    Returns
    -------
    center : (C,) float array
        Column medians (NaN for a column without finite values).
    scale : (C,) float array
        ``1.4826 * median(|x - center|)``: the standard deviation for Gaussian data, robust to
        up to half of the samples being outliers. May be 0 (e.g. constant or quantized data).

    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f'values must be a 2-D (samples, channels) array, got shape '
                         f'{values.shape}')
    finite = np.isfinite(values)
    has = finite.any(axis=0)
    center = np.full(values.shape[1], np.nan)
    scale = np.full(values.shape[1], np.nan)
    if has.any():
        sub = np.where(finite[:, has], values[:, has], np.nan)
        center[has] = np.nanmedian(sub, axis=0)
        scale[has] = MAD_TO_STD * np.nanmedian(np.abs(sub - center[has]), axis=0)
    return center, scale


def long_run_std(values, batch=None, upper_confidence=None):
    """
    Long-run standard deviation per column, by non-overlapping batch means.

    For a stationary series the variance of a mean over ``L`` consecutive samples is about
    ``sigma_lr**2 / L``, with ``sigma_lr**2`` the long-run variance (the sum of all
    autocovariances). White noise gives ``sigma_lr = sigma``; positively autocorrelated data
    give more, which is what a CUSUM of that series accumulates.

    Parameters
    ----------
    values : (m, C) array_like
        Samples in rows, channels in columns (NaN ignored).
    batch : int, optional
        Batch length ``L``; default ``floor(sqrt(m))``.
    upper_confidence : float, optional
        If given (in (0, 1)), return the one-sided upper confidence bound at this level instead
        of the point estimate, treating the batch means as independent Gaussians:
        ``var * (b - 1) / chi2.ppf(1 - upper_confidence, b - 1)`` for ``b`` batches.

    Returns
    -------
    (C,) float array
        ``sqrt(L * var(batch means))`` (or its upper bound) in the unit of ``values``; NaN for
        a column with fewer than 2 batches holding data.

    """
    if upper_confidence is not None and not 0.0 < upper_confidence < 1.0:
        raise ValueError(f'upper_confidence must lie in (0, 1), got {upper_confidence!r}')
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f'values must be a 2-D (samples, channels) array, got shape '
                         f'{values.shape}')
    m, n = values.shape
    batch = max(1, int(math.isqrt(m))) if batch is None else int(batch)
    if batch < 1:
        raise ValueError(f'batch must be a positive integer, got {batch!r}')
    nb = m // batch
    out = np.full(n, np.nan)
    if nb < 2:
        return out
    tail = values[m - nb * batch:].reshape(nb, batch, n)
    finite = np.isfinite(tail)
    count = finite.sum(axis=1)
    total = np.where(finite, tail, 0.0).sum(axis=1)
    bm = np.full((nb, n), np.nan)
    np.divide(total, count, out=bm, where=count > 0)
    have = np.isfinite(bm).sum(axis=0)
    ok = have >= 2
    if ok.any():
        var = batch * np.nanvar(bm[:, ok], axis=0, ddof=1)
        if upper_confidence is not None:
            dof = have[ok] - 1
            var = var * dof / chi2.ppf(1.0 - upper_confidence, dof)
        out[ok] = np.sqrt(var)
    return out


class StrideBuffer:
    """
    Uniformly decimated record of a stream of rows, in bounded memory.

    Rows are kept at a fixed stride (every ``stride``-th appended row). When the buffer is
    full, every other kept row is dropped and the stride doubles, so the buffer always holds
    between ``capacity / 2`` and ``capacity`` rows spread evenly over the whole stream,
    however long it was. With fewer than ``capacity`` appended rows nothing is dropped
    (``stride == 1``) and :meth:`values` is the exact stream.

    Parameters
    ----------
    n_columns : int
        Width of a row.
    capacity : int
        Maximum number of kept rows (even, >= 2). Memory is ``capacity * n_columns`` floats.

    """

    def __init__(self, n_columns, capacity):
        n = _check_channels(n_columns)
        if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) \
                or capacity < 2 or capacity % 2:
            raise ValueError(f'capacity must be an even integer >= 2, got {capacity!r}')
        self._data = np.empty((int(capacity), n))
        self._size = 0
        self._stride = 1
        self._seen = 0

    @property
    def stride(self):
        """int: current decimation (1 = every row kept)."""
        return self._stride

    @property
    def appended(self):
        """int: number of rows appended so far (kept or not)."""
        return self._seen

    def __len__(self):
        """Return the number of kept rows."""
        return self._size

    def append(self, row):
        """Offer one row (``row`` : (n_columns,)); it is kept if it falls on the stride."""
        take = self._seen % self._stride == 0
        self._seen += 1
        if not take:
            return
        if self._size == self._data.shape[0]:
            half = self._size // 2
            self._data[:half] = self._data[0:self._size:2]
            self._size = half
            self._stride *= 2
            if (self._seen - 1) % self._stride:
                return
        self._data[self._size] = row
        self._size += 1

    def values(self):
        """Return the kept rows, oldest first, as an ``(len(self), n_columns)`` view."""
        return self._data[:self._size]

    def median_scale(self):
        """Return :func:`robust_center_scale` of the kept rows: ``(center, scale)``, (C,) each."""
        return robust_center_scale(self.values())

    def quantile(self, q):
        """Return the ``q``-quantile of each column of the kept rows, ignoring NaN (C,)."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f'q must lie in [0, 1], got {q!r}')
        vals = self.values()
        out = np.full(vals.shape[1], np.nan)
        has = np.isfinite(vals).any(axis=0)
        if len(vals) and has.any():
            out[has] = np.nanquantile(vals[:, has], q, axis=0)
        return out

    def clear(self):
        """Drop every row and return to stride 1."""
        self._size = 0
        self._stride = 1
        self._seen = 0
