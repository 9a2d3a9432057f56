"""
Mirror latency statistics and clock drift between the robot's stamps and the local clock.

ROS-free and clock-free: the node passes each sample's header stamp and its local receive time
(node clock, which is sim time under ``use_sim_time``), both float seconds.

Latency is ``receive_time - stamp``. :class:`LatencyWindow` keeps the last ``window`` values in
a ring buffer (O(1) per sample) and computes p50/p99/max on demand (at status rate).

Clock drift: with a robot clock ``stamp`` and the local clock ``local``,
``local - stamp = offset + rate * (stamp - t_ref) + latency`` where ``latency >= latency_min``
is one-sided, heavy-tailed jitter. :class:`ClockDriftEstimator` keeps, per ``bin_s`` of stamp
time, the sample with the smallest ``local - stamp`` (the one least delayed; O(1) per sample),
and fits a line through those minima with the Theil-Sen estimator (``scipy.stats.theilslopes``),
which ignores bins whose every sample was delayed. The intercept includes the minimum one-way
latency, which no one-way measurement can separate from the clock offset.
"""
from collections import deque
from dataclasses import dataclass
import math

import numpy as np
from scipy import stats


class TimeSyncConfigError(ValueError):
    """Bad time-sync parameter (the message names it)."""


def _positive(value, name, integer=False):
    try:
        out = int(value) if integer else float(value)
    except (TypeError, ValueError):
        out = math.nan
    if not (math.isfinite(out) and out > 0):
        kind = 'an integer' if integer else 'a finite number'
        raise TimeSyncConfigError(f'{name} must be {kind} > 0, got {value!r}')
    return out


@dataclass(frozen=True)
class LatencyStats:
    """
    Latency over the window, s (NaN when no sample yet).

    Attributes
    ----------
    count : int
        Samples in the window.
    total : int
        Samples since start or reset.
    p50_s, p99_s, max_s, mean_s : float
        Median, 99th percentile, maximum and mean over the window, s.
    max_all_s : float
        Maximum since start or reset, s.

    """

    count: int
    total: int
    p50_s: float
    p99_s: float
    max_s: float
    mean_s: float
    max_all_s: float


class LatencyWindow:
    """
    Ring buffer of the last ``window`` latencies with on-demand percentiles.

    Parameters
    ----------
    window : int
        Number of most recent samples the statistics cover (> 0).

    """

    def __init__(self, window=1000):
        self.window = _positive(window, 'window', integer=True)
        self.reset()

    def reset(self):
        """Drop every sample."""
        self._buf = np.zeros(self.window)
        self._i = 0
        self._total = 0
        self._max_all = -math.inf

    def observe(self, latency_s):
        """Add one latency, s (non-finite values are ignored)."""
        if not math.isfinite(latency_s):
            return
        self._buf[self._i] = latency_s
        self._i += 1
        if self._i == self.window:
            self._i = 0
        self._total += 1
        if latency_s > self._max_all:
            self._max_all = latency_s

    def stats(self):
        """Return :class:`LatencyStats` over the current window."""
        count = min(self._total, self.window)
        if count == 0:
            nan = math.nan
            return LatencyStats(0, 0, nan, nan, nan, nan, nan)
        data = self._buf if count == self.window else self._buf[:count]
        p50, p99 = np.percentile(data, (50.0, 99.0))
        return LatencyStats(count, self._total, float(p50), float(p99), float(data.max()),
                            float(data.mean()), float(self._max_all))


@dataclass(frozen=True)
class DriftEstimate:
    """
    Linear relation between the robot's stamps and the local clock.

    ``local ≈ stamp + offset_s + rate_ppm * 1e-6 * (stamp - reference_stamp)``.

    Attributes
    ----------
    offset_s : float
        ``local - stamp`` at ``reference_stamp`` (the newest stamp seen), s; includes the
        minimum one-way latency.
    rate_ppm : float
        How much faster the local clock runs than the robot's, parts per million.
    reference_stamp : float
        Robot stamp at which ``offset_s`` holds, s.
    n_bins : int
        Bins (one minimum each) in the fit.
    spread_s : float
        Median absolute deviation of the bin minima from the fitted line, s.

    """

    offset_s: float
    rate_ppm: float
    reference_stamp: float
    n_bins: int
    spread_s: float

    def to_local(self, stamp):
        """Return the local time that corresponds to robot time ``stamp``, s."""
        return stamp + self.offset_s + self.rate_ppm * 1e-6 * (stamp - self.reference_stamp)


class ClockDriftEstimator:
    """
    Offset and rate of the local clock relative to the robot's stamps.

    Parameters
    ----------
    bin_s : float
        Stamp-time span of one bin, s (> 0): one minimum per bin enters the fit.
    window_bins : int
        Bins kept (the fit spans ``bin_s * window_bins`` s of stamps).
    min_bins : int
        Closed bins needed before :meth:`estimate` returns a value (>= 2).

    """

    def __init__(self, bin_s=1.0, window_bins=300, min_bins=5):
        self.bin_s = _positive(bin_s, 'bin_s')
        self.window_bins = _positive(window_bins, 'window_bins', integer=True)
        self.min_bins = _positive(min_bins, 'min_bins', integer=True)
        if self.min_bins < 2 or self.min_bins > self.window_bins:
            raise TimeSyncConfigError(
                f'min_bins must be in 2..window_bins ({self.window_bins}), got {min_bins!r}')
        self.reset()

    def reset(self):
        """Drop every sample (also done automatically when stamps jump back by a bin)."""
        self._t0 = None
        self._bins = deque(maxlen=self.window_bins)
        self._bin_end = -math.inf
        self._bin_min = math.inf
        self._bin_at = math.nan
        self._newest = -math.inf
        self._cached = None
        self.n_samples = 0

    def observe(self, stamp, receive_time):
        """Add one sample: robot stamp and local receive time, s."""
        d = receive_time - stamp
        if not math.isfinite(d):
            return
        if stamp < self._newest - self.bin_s:
            self.reset()  # clock restarted (bag loop, sim reset): the old line no longer holds
        if self._t0 is None:
            self._t0 = stamp
            self._bin_end = stamp + self.bin_s
        if stamp >= self._bin_end:
            if self._bin_min < math.inf:
                self._bins.append((self._bin_at - self._t0, self._bin_min))
                self._cached = None
            self._bin_end += self.bin_s * (1 + math.floor((stamp - self._bin_end) / self.bin_s))
            self._bin_min = math.inf
        if d < self._bin_min:
            self._bin_min = d
            self._bin_at = stamp
        if stamp > self._newest:
            self._newest = stamp
        self.n_samples += 1

    def estimate(self):
        """Return the current :class:`DriftEstimate`, or None before ``min_bins`` bins closed."""
        if len(self._bins) < self.min_bins:
            return None
        if self._cached is None:
            x, y = np.array(self._bins).T
            slope, intercept, _, _ = stats.theilslopes(y, x)
            spread = float(np.median(np.abs(y - (intercept + slope * x))))
            self._cached = (float(slope), float(intercept), spread)
        slope, intercept, spread = self._cached
        offset = intercept + slope * (self._newest - self._t0)
        return DriftEstimate(offset_s=offset, rate_ppm=slope * 1e6,
                             reference_stamp=self._newest, n_bins=len(self._bins),
                             spread_s=spread)


class TimeSync:
    """
    Latency statistics and drift estimate of one input stream, fed by one call per sample.

    Parameters
    ----------
    latency_window : int
        Samples in the latency window.
    drift_bin_s : float
        Bin span of the drift estimator, s.
    drift_window_bins : int
        Bins the drift fit spans.

    """

    def __init__(self, latency_window=1000, drift_bin_s=1.0, drift_window_bins=300):
        self.latency = LatencyWindow(latency_window)
        self.drift = ClockDriftEstimator(drift_bin_s, drift_window_bins)

    def observe(self, stamp, receive_time):
        """Record one sample's stamp and local receive time, s; return its latency, s."""
        latency = receive_time - stamp
        self.latency.observe(latency)
        self.drift.observe(stamp, receive_time)
        return latency

    def to_local(self, stamp):
        """Map a robot stamp to the local clock with the drift estimate (identity before one)."""
        est = self.drift.estimate()
        return stamp if est is None else est.to_local(stamp)

    def reset(self):
        """Drop every sample."""
        self.latency.reset()
        self.drift.reset()

    def status(self):
        """Return a flat dict for ``/twin/status`` (s and ppm; NaN where not yet known)."""
        lat = self.latency.stats()
        est = self.drift.estimate()
        return {
            'latency_p50_s': lat.p50_s,
            'latency_p99_s': lat.p99_s,
            'latency_max_s': lat.max_s,
            'latency_samples': lat.total,
            'clock_offset_s': math.nan if est is None else est.offset_s,
            'clock_drift_ppm': math.nan if est is None else est.rate_ppm,
        }
