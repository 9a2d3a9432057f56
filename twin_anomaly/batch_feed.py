"""
Feed a whole recorded residual series to a ResidualDetector, block by block (batch interface).

:meth:`ResidualDetector.update` takes one sample and only adds it into per-channel block sums;
the statistics advance once per block (``block_s``). Offline jobs (what-if runs, commissioning
across variants) have every sample already:

* :func:`block_series` finds the samples that close each block exactly as ``update`` would (the
  same stamp arithmetic) and sums each block's samples in one vectorized pass;
* :func:`feed_series` hands those sums to the detector's own block step, so the detector ends
  in the state a per-sample feed leaves it in (:func:`feed_blocks` does both, yielding after
  each block);
* :func:`commission_series` runs the commissioning blocks at once (the block statistics it
  records, then the detector's own end of commissioning);
* :func:`monitoring_scores` computes the scores of many monitored blocks at once with the
  detector's own statistics run vectorized (``EwmaStats.run``, ``Cusum.run``), without
  changing the detector, and :func:`first_raise` finds the block where the first alarm would
  be raised (the persistence rule on those scores). A caller then feeds the detector only up
  to that block to read its full report: fault-free runs never step the monitoring at all.

Results differ from the per-sample feed only by floating-point rounding (the same arithmetic,
grouped differently); :mod:`test.test_batch_feed` compares scores, alarms and thresholds with
``update``. This module reads the detector's internals (block sums, block step, statistics): it
is the detector's batch interface, kept beside it in ``twin_anomaly``.
"""
from dataclasses import dataclass

import numpy as np

__all__ = ['BlockSeries', 'alarm_raised', 'block_series', 'commission_series', 'feed_blocks',
           'feed_series', 'first_raise', 'monitoring_scores', 'open_series', 'robot_score']


@dataclass
class BlockSeries:
    """
    A residual series cut into the detector's blocks.

    Attributes
    ----------
    closers : (B,) int
        Index of the sample that closes each block.
    t : (B,) s
        Stamp of that sample (the block's time in the detector).
    sums, sumsq, counts : (B + 1, W)
        Per block: sums of the finite values, of their squares, and their counts, per input
        column (``W = 3 n + 6 + n``: residual channels, then measured velocities); the last
        row holds the samples after the last closed block.
    last_t : float
        Stamp of the last sample, s.
    fallback : ndarray or None
        The stacked samples when they must go through ``update`` one by one (stamps out of
        order, which ``update`` drops and counts), else None.

    """

    closers: np.ndarray
    t: np.ndarray
    sums: np.ndarray
    sumsq: np.ndarray
    counts: np.ndarray
    last_t: float
    fallback: np.ndarray = None
    stamps: np.ndarray = None

    def __len__(self):
        """Return the number of closed blocks."""
        return int(self.closers.size)


def _matrix(detector, t, position, velocity, effort, wrench, velocity_measured):
    """Stack the inputs as ``update`` lays them out: ``(N, 3 n + 6 + n)``, NaN = missing."""
    n = detector._n
    size = t.size
    out = np.full((size, detector._c + n), np.nan)
    for lo, arr, width, name in ((0, position, n, 'position'), (n, velocity, n, 'velocity'),
                                 (2 * n, effort, n, 'effort'), (3 * n, wrench, 6, 'wrench'),
                                 (detector._c, velocity_measured, n, 'velocity_measured')):
        if arr is None:
            continue
        arr = np.asarray(arr, dtype=float)
        if arr.shape != (size, width):
            raise ValueError(f'{name} must have shape ({size}, {width}), got {arr.shape}')
        out[:, lo:lo + width] = arr
    return out


def block_closers(detector, t):
    """
    Return the indices of the samples that will close a block when ``t`` is fed next.

    Replays the detector's block arithmetic on the stamps (non-decreasing ``t`` (N,) s, not
    before the detector's last stamp); the detector is not changed.
    """
    block = detector.config.block_s
    started = detector._t0 is not None
    end = detector._block_end
    closers = []
    k = 0
    size = t.size
    while k < size:
        j = k + int(np.searchsorted(t[k:], end, side='left'))
        if j >= size:
            break
        closers.append(j)
        if not started:                        # the first sample opens the first block
            started = True
            end = t[j] + block
        else:
            end += block
            if t[j] >= end:                    # a gap: the block grid restarts
                end = t[j] + block
        k = j + 1
    return closers


def block_series(detector, t, position, velocity, effort, wrench=None, velocity_measured=None):
    """
    Cut samples into the detector's blocks (the detector is not changed).

    Parameters
    ----------
    detector : ResidualDetector
        The detector the series will be fed to next.
    t : (N,) s
        Stamps.
    position, velocity, effort : (N, n) or None
        Residuals (rad, rad/s, N·m), model joint order; NaN: not available.
    wrench : (N, 6), optional
        Wrench residual (N, N·m), NaN rows without a reading.
    velocity_measured : (N, n), optional
        Measured joint velocity (rad/s), for the fault-type pattern.

    Returns
    -------
    BlockSeries

    Raises
    ------
    ValueError
        Non-finite stamps or arrays of the wrong shape.

    """
    t = np.asarray(t, dtype=float)
    if t.ndim != 1 or not np.all(np.isfinite(t)):
        raise ValueError(f'stamps must be a finite 1-D array, got shape {t.shape}')
    x = _matrix(detector, t, position, velocity, effort, wrench, velocity_measured)
    width = x.shape[1]
    if t.size and (t[0] < detector._last_t or np.any(np.diff(t) < 0.0)):
        empty = np.empty((1, width))
        return BlockSeries(np.empty(0, int), np.empty(0), empty, empty, empty, float(t[-1]),
                           fallback=x, stamps=t)
    closers = np.asarray(block_closers(detector, t), dtype=int)
    valid = np.isfinite(x)
    x0 = np.where(valid, x, 0.0)
    starts = np.concatenate([[0], closers + 1])
    rows = np.zeros((starts.size, width)), np.zeros((starts.size, width)), \
        np.zeros((starts.size, width))
    inside = starts < t.size
    if inside.any():
        idx = starts[inside]
        rows[0][inside] = np.add.reduceat(x0, idx, axis=0)
        rows[1][inside] = np.add.reduceat(x0 * x0, idx, axis=0)
        rows[2][inside] = np.add.reduceat(valid.astype(float), idx, axis=0)
    last = float(t[-1]) if t.size else detector._last_t
    return BlockSeries(closers, t[closers], rows[0], rows[1], rows[2], last)


def feed_series(detector, series, start=0, stop=None):
    """
    Feed blocks ``start..stop-1`` of a series to the detector (``stop`` None: all and the rest).

    Blocks must be fed in order, each once, starting where the last call stopped; with
    ``stop`` None the samples after the last closed block are added too (as ``update`` would
    leave them, waiting for their block to close).

    Yields
    ------
    int
        Each block's index, after the detector processed it.

    """
    if series.fallback is not None:
        yield from _per_sample(detector, series.stamps, series.fallback)
        return
    end = len(series) if stop is None else min(int(stop), len(series))
    for b in range(int(start), end):
        _add(detector, series.sums[b], series.sumsq[b], series.counts[b])
        detector._last_t = series.t[b]
        detector._end_block(series.t[b])
        yield b
    if stop is None or stop > len(series):
        _add(detector, series.sums[-1], series.sumsq[-1], series.counts[-1])
        detector._last_t = series.last_t


def feed_blocks(detector, t, position, velocity, effort, wrench=None, velocity_measured=None):
    """
    Feed samples in order, as ``detector.update`` for each would; yield after each block.

    Parameters are those of :func:`block_series`.

    Yields
    ------
    int
        Index of the sample that closed a block, after the detector processed it (read
        :func:`robot_score`, ``detector.commissioned`` or ``detector.report()`` then).

    """
    series = block_series(detector, t, position, velocity, effort, wrench, velocity_measured)
    if series.fallback is not None:
        yield from feed_series(detector, series)
        return
    for b in feed_series(detector, series):
        yield int(series.closers[b])


def _add(detector, sums, sumsq, counts):
    detector._sum += sums
    detector._sumsq += sumsq
    detector._cnt += counts


def _per_sample(detector, t, x):
    """Fall back to ``update`` (unordered stamps: it drops and counts the old ones)."""
    n, c = detector._n, detector._c
    for k in range(t.size):
        before = detector._block_end
        row = x[k]
        detector.update(t[k], row[:n], row[n:2 * n], row[2 * n:3 * n],
                        None if np.all(np.isnan(row[3 * n:c])) else row[3 * n:c],
                        velocity=None if np.all(np.isnan(row[c:])) else row[c:])
        if detector._block_end != before:
            yield k


def _block_stats(sums, sumsq, counts, c):
    """Block mean (all columns), within-block variance and mean square (channels), as update."""
    with np.errstate(invalid='ignore', divide='ignore'):
        mean = sums / counts
        var = sumsq[:, :c] / counts[:, :c] - mean[:, :c] ** 2
    var[counts[:, :c] < 2] = np.nan
    np.maximum(var, 0.0, out=var)
    msq = sumsq[:, :c] / np.maximum(counts[:, :c], 1.0)
    msq[counts[:, :c] == 0] = np.nan
    return mean, var, msq


def commission_series(detector, series, start=0):
    """
    Run the commissioning blocks of a series at once, from block ``start`` on.

    The detector must still be commissioning, fed up to block ``start - 1``. It records every
    block as its block step would, until commissioning ends (it then learns its thresholds
    exactly as on the per-sample path) or the series does (the remaining samples wait in its
    block sums).

    Returns
    -------
    int or None
        The block at which commissioning ended, or None if it goes on.

    """
    if detector.commissioned:
        raise ValueError('commission_series: the detector has commissioned already')
    if series.fallback is not None:
        for _ in feed_series(detector, series):
            pass
        return None
    b = open_series(detector, series, start)
    total = len(series)
    cfg = detector.config
    c = detector._c
    finish = np.flatnonzero(series.t[b:total] - detector._t0 >= cfg.commissioning_duration_s)
    stop = total if finish.size == 0 else b + int(finish[0]) + 1
    if stop > b:
        sums = series.sums[b:stop].copy()
        sumsq = series.sumsq[b:stop].copy()
        counts = series.counts[b:stop].copy()
        sums[0] += detector._sum                # samples waiting from before the series
        sumsq[0] += detector._sumsq
        counts[0] += detector._cnt
        mean, var, msq = _block_stats(sums, sumsq, counts, c)
        _record(detector, series.t[b:stop], counts[:, :c], msq)
        for row in np.concatenate([mean[:, :c], var, mean[:, c:]], axis=1):
            detector._buffer.append(row)
        for array in (detector._sum, detector._sumsq, detector._cnt):
            array.fill(0.0)
        detector._last_t = series.t[stop - 1]
    if finish.size:
        detector._finish_commissioning(series.t[stop - 1])
        return stop - 1
    _add(detector, series.sums[-1], series.sumsq[-1], series.counts[-1])
    detector._last_t = series.last_t
    return None


def open_series(detector, series, start=0):
    """
    Let a detector that has seen no sample yet open its first block; return the next block.

    The first sample a detector ever gets only starts its block grid (that "block" has no
    statistics); after it, blocks ``start + 1..`` are real. Otherwise ``start`` is returned.
    """
    if detector._t0 is None and start < len(series):
        next(feed_series(detector, series, start, start + 1))
        return start + 1
    return start


def _record(detector, t, counts, msq):
    """Do the block step's bookkeeping for many blocks: RMS window, last data, block grid."""
    rms = detector._rms
    window = rms._squares.shape[0]
    keep = min(window, t.size)
    rows = (rms._row + np.arange(t.size - keep, t.size)) % window
    rms._squares[rows] = msq[t.size - keep:]
    rms._row = (rms._row + t.size) % window
    seen = np.where(counts > 0, t[:, None], -np.inf).max(axis=0)
    np.maximum(detector._last_data_t, seen, out=detector._last_data_t)
    block = detector.config.block_s
    end = detector._block_end
    for stamp in t:
        end += block
        if stamp >= end:
            end = stamp + block
    detector._block_end = end


def monitoring_scores(detector, series, start):
    """
    Group scores of blocks ``start..`` of a series, as monitoring them would give.

    Parameters
    ----------
    detector : ResidualDetector
        Commissioned, in the state after block ``start - 1`` (or before the series when
        ``start`` is 0); it is not changed.
    series : BlockSeries
        Without ``fallback``.
    start : int
        First block to score.

    Returns
    -------
    (B - start, n + 1) float array
        Per block, each joint's score and the wrench group's (as ``JointStatus.score``).

    """
    learned = detector.thresholds()
    if learned is None:
        raise ValueError('monitoring_scores: the detector is still commissioning')
    if detector._t0 is None:
        raise ValueError('monitoring_scores: the detector has seen no sample; open_series first')
    cfg = detector.config
    c, n = detector._c, detector._n
    stop = len(series)
    sums = series.sums[start:stop].copy()
    sumsq = series.sumsq[start:stop].copy()
    counts = series.counts[start:stop].copy()
    if stop > start:                              # samples waiting from before the series
        sums[0] += detector._sum
        sumsq[0] += detector._sumsq
        counts[0] += detector._cnt
    mean, var, _ = _block_stats(sums, sumsq, counts, c)
    cnt = counts[:, :c]
    mean = mean[:, :c]
    z = (mean - learned.center) / learned.scale
    u = detector._log_variance_ratio(var, learned.noise_variance)
    level = np.abs(detector._level.copy().run(z))
    cusum = detector._cusum.copy()
    cusum.cap = None if detector._cusum.cap is None else detector._cusum.cap.copy()
    drift = cusum.run(z / learned.long_run_factor)
    noise = np.abs(detector._noise.copy().run(u))
    ratios = np.stack([level / learned.level, drift / learned.drift, noise / learned.noise])
    # a channel's last data: before the series, or the latest block of it that had data
    t = series.t[start:len(series)]
    seen = np.where(cnt > 0, t[:, None], -np.inf)
    last = np.maximum(np.maximum.accumulate(seen, axis=0), detector._last_data_t)
    ratios[:, t[:, None] - last > cfg.stale_s] = 0.0
    ch = ratios.max(axis=0)
    scores = np.empty((t.size, n + 1))
    scores[:, :n] = np.maximum(np.maximum(ch[:, :n], ch[:, n:2 * n]), ch[:, 2 * n:3 * n])
    scores[:, n] = ch[:, 3 * n:].max(axis=1)
    return scores


def first_raise(detector, series, scores, start):
    """
    Index of the block where the first alarm would be raised, or None.

    Applies the detector's persistence rule (a group's score >= 1 for ``persistence_s``) to
    :func:`monitoring_scores` of blocks ``start..``; the detector must have no alarm raised.
    """
    if detector._any_alarm:
        raise ValueError('first_raise: the detector has an alarm raised already')
    t = series.t[start:start + scores.shape[0]]
    above = scores >= 1.0
    if not above.any():
        return None
    begins = above & ~np.vstack([np.zeros((1, above.shape[1]), bool), above[:-1]])
    index = np.where(begins, np.arange(t.size)[:, None], -1)
    index = np.maximum.accumulate(index, axis=0)
    run_t = np.where(index >= 0, t[np.maximum(index, 0)], np.nan)
    # a run already going on before the series began keeps its start stamp
    open_start = detector._exceed_start
    carried = above & (index < 0)
    run_t[carried] = np.broadcast_to(open_start, run_t.shape)[carried]
    with np.errstate(invalid='ignore'):
        raise_ = above & (t[:, None] - run_t >= detector.config.persistence_s)
    hit = np.flatnonzero(raise_.any(axis=1))
    return None if hit.size == 0 else start + int(hit[0])


def robot_score(detector):
    """
    Return the robot score ``detector.report()`` would give now, without building the report.

    The largest group score over the joints and, when a wrench channel is monitored, the
    wrench group; 0.0 while commissioning.
    """
    learned = detector.thresholds()
    if learned is None:
        return 0.0
    n = detector._n
    score = float(np.max(detector._score[:n]))
    if learned.monitored[3 * n:].any():
        score = max(score, float(detector._score[n]))
    return score


def alarm_raised(detector):
    """Return True while any alarm of the detector is raised (its ``update`` return value)."""
    return bool(detector._any_alarm)
