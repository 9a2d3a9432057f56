"""
Fuse many per-block detector statistics into one score per joint and one for the robot.

Every detector of the monitor (momentum-observer residual, its friction-matched part,
position-velocity consistency, noise level, frozen channels, flat effort, wrench residual,
missing samples, latency) delivers one value per *channel* and block (e.g. ``joint3.gmo``
every 20 ms). :class:`FusedDetector` treats them all alike:

Learning (the end of commissioning, on nominal data)
    The block values are recorded (bounded memory, :class:`~twin_anomaly.residual_stats.
    StrideBuffer`). At :meth:`FusedDetector.finish_learning` each channel gets a robust centre
    and scale (median, MAD) where it is standardized, the recorded blocks are replayed through
    the monitoring statistics, and each statistic's threshold becomes
    ``max(floor, margin x q-quantile)`` of its replayed values. A channel whose spread its
    producer knows better than a window of seconds can show (a slow statistic: too few
    independent values in it) gets that spread as the least scale and the normal
    distribution's q-quantile as the least. Monitoring then continues from
    the replayed state, so the first monitored block is judged exactly as the learned ones
    were (nothing is restarted or re-initialized when learning ends).
Monitoring
    Per channel, by kind:

    - ``signed``: ``z = (x - centre) / scale``; level ``|EWMA(z)|`` and, where asked, a
      two-sided CUSUM of ``z / long_run_factor`` (drift, for slow changes such as wear);
    - ``upper``: standardized like ``signed``, but only an increase counts (``max(EWMA(z), 0)``);
    - ``count``: a non-negative raw statistic (a run length, a fraction): level ``EWMA(x)``.

    A channel's ratio is its largest statistic / threshold; a group's score (a joint, or a
    robot-level group such as the wrench) is the largest ratio of its channels, so every score
    is dimensionless with threshold 1. A group raises an alarm once its score has stayed >= 1
    for ``persistence_s`` (``since`` = where that run began) and clears it after
    ``clear_s`` below ``clear_ratio`` (hysteresis).

EWMAs start from 0 (not from the first value): a (re)started stream never produces a spike.
"""
from dataclasses import asdict, dataclass, fields
import math
from statistics import NormalDist
import warnings

import numpy as np
from scipy.signal import lfilter
from twin_anomaly.residual_stats import alpha_from_time_constant, Cusum, long_run_std, \
    robust_center_scale, StrideBuffer

__all__ = ['Channel', 'FusedDetector', 'FusionConfig', 'GroupStatus', 'KINDS']

#: Channel kinds (see the module docstring).
KINDS = ('signed', 'upper', 'count')
_Z_CLAMP = 100.0                # standardized values are clamped to +-this
_CUSUM_CAP = 1.5                # CUSUM clamped at this x its threshold (bounded clear time)
_LONG_RUN_CONFIDENCE = 0.9      # the CUSUM input scale is this upper bound of the long-run std
_MIN_BLOCKS = 10                # blocks with data a channel needs to be learned


@dataclass(frozen=True)
class Channel:
    """
    One detector statistic, delivered once per block.

    Attributes
    ----------
    name : str
        ``'<group>.<detector>'``, e.g. ``'joint3.gmo'``.
    group : int
        Index of the group it scores for (a joint, or a robot-level group).
    kind : str
        One of :data:`KINDS`.
    drift : bool
        ``signed`` only: also run a CUSUM (slow drifts).
    smoothing_s : float
        Time constant of the level EWMA, s (0: none).
    floor : float
        Smallest level threshold: in standardized units (``signed``, ``upper``) or in the
        statistic's own unit (``count``).
    min_scale : float
        Smallest learned scale (``signed``, ``upper``), in the channel's unit.
    alarm : bool
        False: evidence only (its ratio is computed for the classifier, but it never raises
        its group's score).

    """

    name: str
    group: int
    kind: str
    drift: bool = False
    smoothing_s: float = 0.05
    floor: float = 3.0
    min_scale: float = 1e-12
    alarm: bool = True


@dataclass(frozen=True)
class FusionConfig:
    """
    Settings of :class:`FusedDetector`.

    Attributes
    ----------
    block_s : float
        Stamp time between block values, s.
    threshold_quantile : float
        Quantile of each replayed statistic that its threshold is built on, in (0, 1).
    threshold_margin : float
        Threshold = margin x quantile (>= 1).
    min_cusum_threshold : float
        Floor of a drift threshold, standardized units x blocks.
    cusum_k : float
        CUSUM allowance, standardized units.
    persistence_s : float
        A score must stay >= 1 this long to raise an alarm, s.
    clear_s, clear_ratio : float
        An alarm clears after ``clear_s`` with the score below ``clear_ratio``.
    warn_ratio : float
        A score from this fraction of its threshold is reported as elevated (level WARN).
    capacity : int
        Blocks kept while learning (even); beyond it they are decimated.

    """

    block_s: float = 0.02
    threshold_quantile: float = 0.999
    threshold_margin: float = 2.5
    min_cusum_threshold: float = 10.0
    cusum_k: float = 1.0
    persistence_s: float = 0.02
    clear_s: float = 0.5
    clear_ratio: float = 0.5
    warn_ratio: float = 0.8
    capacity: int = 16384

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                                 np.floating)) \
                    or not math.isfinite(value):
                raise ValueError(f'{f.name} must be a finite number, got {value!r}')
        checks = (
            ('block_s', self.block_s > 0.0, '> 0'),
            ('threshold_quantile', 0.0 < self.threshold_quantile < 1.0, 'in (0, 1)'),
            ('threshold_margin', self.threshold_margin >= 1.0, '>= 1'),
            ('min_cusum_threshold', self.min_cusum_threshold > 0.0, '> 0'),
            ('cusum_k', self.cusum_k >= 0.0, '>= 0'),
            ('persistence_s', self.persistence_s >= 0.0, '>= 0'),
            ('clear_s', self.clear_s >= 0.0, '>= 0'),
            ('clear_ratio', 0.0 < self.clear_ratio < 1.0, 'in (0, 1)'),
            ('warn_ratio', 0.0 < self.warn_ratio <= 1.0, 'in (0, 1]'),
            ('capacity', self.capacity >= 64 and int(self.capacity) % 2 == 0,
             'an even integer >= 64'))
        for name, ok, want in checks:
            if not ok:
                raise ValueError(f'{name} must be {want}, got {getattr(self, name)!r}')


@dataclass(frozen=True)
class GroupStatus:
    """
    Status of one group (a joint or a robot-level group) after the latest block.

    Attributes
    ----------
    name : str
    score : float
        Largest channel ratio (threshold 1).
    alarm : bool
    since : float
        Stamp where the alarm's exceedance began, s (NaN without an alarm).
    channel, detector : str
        The dominant channel's detector name (``'gmo'``...) and statistic (``'level'`` or
        ``'drift'``); ``''`` when nothing is monitored.

    """

    name: str
    score: float
    alarm: bool
    since: float
    channel: str
    detector: str


def _ewma_replay(xs, alpha):
    """EWMA from 0 of each column of ``xs`` (m, C), skipping NaN (carried); returns (m, C)."""
    out = np.zeros(xs.shape)
    for c in range(xs.shape[1]):
        valid = np.isfinite(xs[:, c])
        if not valid.any():
            continue
        a = alpha[c]
        y = lfilter([a], [1.0, a - 1.0], xs[valid, c])
        pos = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1))
        out[:, c] = np.where(pos >= 0, y[np.cumsum(valid) - 1], 0.0)
    return out


class FusedDetector:
    """
    Learned thresholds, scores and alarms over detector channels (see the module docstring).

    Parameters
    ----------
    channels : sequence of Channel
        The channels, in the order of the block vectors passed to :meth:`learn` and
        :meth:`update`.
    groups : sequence of str
        Group names (joints, then robot-level groups); ``Channel.group`` indexes it.
    config : FusionConfig

    """

    def __init__(self, channels, groups, config=FusionConfig()):
        self.channels = tuple(channels)
        self.groups = tuple(groups)
        self.config = config
        c = len(self.channels)
        if c == 0:
            raise ValueError('FusedDetector needs at least one channel')
        for ch in self.channels:
            if ch.kind not in KINDS:
                raise ValueError(f'channel {ch.name}: kind must be one of {KINDS}, got '
                                 f'{ch.kind!r}')
            if not 0 <= ch.group < len(self.groups):
                raise ValueError(f'channel {ch.name}: group {ch.group} is not one of the '
                                 f'{len(self.groups)} groups')
        self.names = tuple(ch.name for ch in self.channels)
        self._group = np.array([ch.group for ch in self.channels])
        self._standardized = np.array([ch.kind != 'count' for ch in self.channels])
        self._signed = np.array([ch.kind == 'signed' for ch in self.channels])
        self._drift = np.array([ch.kind == 'signed' and ch.drift for ch in self.channels])
        self._alpha = np.array([alpha_from_time_constant(config.block_s, ch.smoothing_s)
                                for ch in self.channels])
        self._floor = np.array([ch.floor for ch in self.channels], dtype=float)
        self._min_scale = np.array([ch.min_scale for ch in self.channels], dtype=float)
        alarming = np.array([ch.alarm for ch in self.channels])
        self._members = [np.flatnonzero((self._group == g) & alarming)
                         for g in range(len(self.groups))]
        # group scores in one gather: each group's alarming channels, padded with an index
        # to a zero (the extra last entry of the padded ratio vector)
        width = max(1, max(len(m) for m in self._members))
        self._gather = np.full((len(self.groups), width), c)
        for g, members in enumerate(self._members):
            self._gather[g, :len(members)] = members
        self._padded = np.zeros(c + 1)
        self.learned = None
        self._buffer = None
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    @property
    def monitoring(self):
        """bool: thresholds are learned (or loaded) and blocks are judged."""
        return self.learned is not None

    def reset(self):
        """Forget the stream (statistics, alarms); keep what was learned."""
        c, g = len(self.channels), len(self.groups)
        self.ewma = np.zeros(c)
        self._cusum = Cusum(c, self.config.cusum_k)
        if self.learned is not None:
            self._cusum.cap = _CUSUM_CAP * self.learned['drift_threshold']
        self.ratios = np.zeros((2, c))
        self.peak = np.zeros(c)
        self._last_data = np.full(c, -math.inf)
        self.score = np.zeros(g)
        self.alarm = np.zeros(g, dtype=bool)
        self._exceed = np.full(g, np.nan)
        self._below = np.full(g, np.nan)
        self.since = np.full(g, np.nan)
        self.episode_start = math.nan
        self.stamp = math.nan

    def start_learning(self):
        """Drop anything learned and record the next blocks as nominal data."""
        self.learned = None
        self._buffer = StrideBuffer(len(self.channels), self.config.capacity)
        self.reset()

    def learn(self, t, x):
        """Record one nominal block vector ``x`` (C,) at stamp ``t`` (s)."""
        if self._buffer is None:
            raise RuntimeError('learn: call start_learning() first')
        self._buffer.append(np.asarray(x, dtype=float))
        self._last_data[np.isfinite(x)] = t
        self.stamp = t

    @property
    def learned_blocks(self):
        """int: blocks recorded since :meth:`start_learning`."""
        return 0 if self._buffer is None else self._buffer.appended

    def finish_learning(self, exclude=None, spread=None):
        """
        Learn centre, scale and thresholds from the recorded blocks; start monitoring.

        Channels with fewer than 10 blocks of data (or 10 % of the recorded ones) are not
        monitored (their ratio stays 0), nor are those in ``exclude``.

        Parameters
        ----------
        exclude : (C,) bool array, optional
            Channels the caller knows to be meaningless here (e.g. a signal that never
            changed).
        spread : (C,) array_like, optional
            Standard deviation a standardized channel is known to reach, in its own unit (NaN:
            not known), where the recorded blocks cannot show it: a statistic with a memory of
            seconds holds only a few independent values in a learning window of tens of
            seconds, and their spread and 0.999 quantile fall short of where it goes over
            hours. Such a channel's scale is at least ``spread``, and its level quantile at
            least the normal distribution's at ``threshold_quantile`` (two-sided for a signed
            channel) in units of ``spread``.

        Returns
        -------
        dict
            What was learned (see :meth:`to_dict`).

        """
        rows = self._buffer.values()
        stride = self._buffer.stride
        have = np.isfinite(rows).sum(axis=0)
        monitored = have >= max(_MIN_BLOCKS, 0.1 * len(rows))
        if exclude is not None:
            monitored &= ~np.asarray(exclude, dtype=bool)
        center, scale = robust_center_scale(rows) if len(rows) else (
            np.full(len(self.channels), np.nan),) * 2
        center = np.where(self._standardized & monitored, center, 0.0)
        known = np.zeros(len(self.channels))
        if spread is not None:
            known = np.where(self._standardized, np.nan_to_num(
                np.asarray(spread, dtype=float), nan=0.0, posinf=0.0), 0.0)
        scale = np.where(self._standardized,
                         np.fmax(np.fmax(np.nan_to_num(scale), self._min_scale), known), 1.0)
        z = self._standardize(rows, center, scale)
        lrf = np.ones(len(self.channels))
        if len(rows) >= 4:
            lrf = np.fmax(1.0, np.nan_to_num(long_run_std(
                z, upper_confidence=_LONG_RUN_CONFIDENCE), nan=1.0))
        ewma, cusum, level_q, drift_q = self._replay(rows, z, lrf, stride)
        q = self.config.threshold_quantile
        normal = np.where(self._signed, NormalDist().inv_cdf(0.5 + 0.5 * q),
                          NormalDist().inv_cdf(q))
        level_q = np.fmax(level_q, normal * known / scale)
        self.learned = {
            'monitored': monitored, 'center': center, 'scale': scale, 'long_run_factor': lrf,
            'level_quantile': level_q, 'drift_quantile': drift_q,
            'blocks': int(self._buffer.appended), 'stride': int(stride)}
        stamp = self.stamp
        self._set_thresholds()
        self.reset()
        self.stamp = stamp
        if stride == 1 and len(rows):           # continue from the replayed state
            self.ewma[:] = ewma[-1]
            self._cusum.g_pos[:] = np.minimum(cusum.g_pos, self._cusum.cap)
            self._cusum.g_neg[:] = np.minimum(cusum.g_neg, self._cusum.cap)
            self._last_data[:] = self.stamp
            self.peak[:] = self._judge(self.stamp)   # the scores it ended with, reported as is
        self._buffer = None
        return self.to_dict()

    def _replay(self, rows, z, lrf, stride):
        """
        Run the recorded blocks through the monitoring statistics.

        Returns the EWMAs (m, C), the CUSUM after the last row, and the threshold quantile of
        the level (over rows with data) and drift statistics, (C,) each.
        """
        cfg = self.config
        c = len(self.channels)
        dt = cfg.block_s * stride            # decimated rows: the EWMAs use the row spacing
        alpha = np.array([alpha_from_time_constant(dt, ch.smoothing_s) for ch in self.channels])
        ewma = _ewma_replay(z, alpha)
        cusum = Cusum(c, cfg.cusum_k)
        drift = cusum.run(np.where(self._drift, z / lrf, np.nan))
        if not len(rows):
            return ewma, cusum, np.zeros(c), np.zeros(c)
        q = cfg.threshold_quantile
        with np.errstate(all='ignore'), warnings.catch_warnings():
            warnings.simplefilter('ignore', RuntimeWarning)     # a channel without any data
            level = np.where(np.isfinite(rows), self._level(ewma), np.nan)
            level_q = np.nan_to_num(np.nanquantile(level, q, axis=0), nan=0.0)
            drift_q = np.nan_to_num(np.quantile(drift, q, axis=0), nan=0.0)
        return ewma, cusum, level_q, drift_q

    def _set_thresholds(self):
        cfg = self.config
        lt = self.learned
        off = np.where(lt['monitored'], 1.0, np.inf)
        lt['level_threshold'] = np.fmax(self._floor,
                                        cfg.threshold_margin * lt['level_quantile']) * off
        lt['drift_threshold'] = np.where(
            self._drift, np.fmax(cfg.min_cusum_threshold,
                                 cfg.threshold_margin * lt['drift_quantile']), np.inf) * off
        self._cusum.cap = _CUSUM_CAP * lt['drift_threshold']

    # ------------------------------------------------------------------ statistics
    def _standardize(self, x, center, scale):
        z = (x - center) / scale
        return np.clip(z, -_Z_CLAMP, _Z_CLAMP)

    def _level(self, ewma):
        kinds = self._signed
        upper = self._standardized & ~kinds
        return np.where(kinds, np.abs(ewma), np.where(upper, np.maximum(ewma, 0.0), ewma))

    def update(self, t, x, pace=None):
        """
        Judge one block vector ``x`` (C,) at stamp ``t`` (s); NaN entries mean "no data".

        Parameters
        ----------
        t : float
            Block stamp, s.
        x : (C,) array_like
            The block's channel values.
        pace : (C,) array_like, optional
            Per channel, the share of a commissioning block's worth of motion this block
            covers, in (0, 1] (default 1): each level EWMA takes that share of its usual step,
            and each drift statistic that share of its usual increment, so that a channel
            judged along the robot's path sees a slower run of the same path as the
            commissioning one, not a longer one.

        Returns
        -------
        bool
            True while any group's alarm is raised.

        """
        cfg = self.config
        lt = self.learned
        x = np.asarray(x, dtype=float)
        valid = np.isfinite(x)
        self._last_data[valid] = t
        z = self._standardize(np.where(valid, x, 0.0), lt['center'], lt['scale'])
        ewma = self.ewma
        alpha = self._alpha if pace is None else self._alpha * pace
        ewma += np.where(valid, alpha * (z - ewma), 0.0)
        # (the drift statistics follow the path too: a steady offset adds as much per path)
        self._cusum.update(np.where(valid & self._drift, z / lt['long_run_factor'], np.nan),
                           pace)
        per_channel = self._judge(t)
        score = self.score
        was = self.alarm.copy()
        self._persistence(t, score)
        episode = self.alarm.any() or bool((score >= cfg.clear_ratio).any())
        if not episode:
            self.peak[:] = per_channel
            self.episode_start = math.nan
        else:
            np.maximum(self.peak, per_channel, out=self.peak)
            if math.isnan(self.episode_start):
                self.episode_start = t
            cleared = was & ~self.alarm
            if cleared.any():
                # a group whose own alarm cleared inside a longer episode (a stall made up
                # while a joint's friction alarm holds) drops its peaks: what it saw is over,
                # and no longer speaks in the verdict on the groups still alarmed
                ended = cleared[self._group]
                self.peak[ended] = per_channel[ended]
        self.stamp = t
        return bool(self.alarm.any())

    def _judge(self, t):
        """Ratios (2, C) and group scores of the current statistics; return (C,) ratios."""
        lt = self.learned
        ratios = self.ratios
        np.divide(self._level(self.ewma), lt['level_threshold'], out=ratios[0])
        np.divide(self._cusum.statistic, lt['drift_threshold'], out=ratios[1])
        stale = t - self._last_data > 4.0 * self.config.block_s + 0.25
        ratios[:, stale] = 0.0                                   # no data: no verdict
        per_channel = self._padded[:-1]
        np.maximum(ratios[0], ratios[1], out=per_channel)
        np.max(self._padded[self._gather], axis=1, out=self.score)
        return per_channel

    def _persistence(self, t, score):
        cfg = self.config
        above = score >= 1.0
        started = above & np.isnan(self._exceed)
        self._exceed[started] = t
        self._exceed[~above] = np.nan
        # (a NaN start compares False: no run, no alarm)
        raise_ = above & ~self.alarm & (t - self._exceed >= cfg.persistence_s - 1e-9)
        below = score < cfg.clear_ratio
        self._below[below & np.isnan(self._below)] = t
        self._below[~below] = np.nan
        clear = self.alarm & below & (t - self._below >= cfg.clear_s - 1e-9)
        self.since[raise_] = self._exceed[raise_]
        self.alarm |= raise_
        self.alarm &= ~clear
        self.since[clear] = np.nan

    # ------------------------------------------------------------------ status
    def channel_ratios(self):
        """(C,) float array: each channel's largest ratio after the latest block."""
        return self.ratios.max(axis=0)

    def group_status(self, g):
        """Return the :class:`GroupStatus` of group ``g`` (an index)."""
        return self.group_statuses()[g]

    def group_statuses(self):
        """Return the :class:`GroupStatus` of every group, in group order."""
        c = len(self.channels)
        padded = np.zeros((2, c + 1))
        padded[:, :c] = self.ratios
        sub = padded[:, self._gather]                        # (2, G, W)
        groups, width = self._gather.shape
        flat = sub.transpose(1, 0, 2).reshape(groups, 2 * width)
        best = np.argmax(flat, axis=1)
        out = []
        for g in range(groups):
            member = self._gather[g, best[g] % width]
            channel = detector = ''
            if self.learned is not None and member < c and flat[g, best[g]] > 0.0:
                channel = self.names[member].split('.', 1)[-1]
                detector = ('level', 'drift')[best[g] // width]
            out.append(GroupStatus(self.groups[g], float(self.score[g]), bool(self.alarm[g]),
                                   float(self.since[g]), channel, detector))
        return out

    # ------------------------------------------------------------------ persistence
    def to_dict(self):
        """Return what was learned as plain lists and numbers (None while learning)."""
        if self.learned is None:
            return None
        lt = self.learned
        out = {'channels': list(self.names), 'config': asdict(self.config)}
        for key, value in lt.items():
            out[key] = value.tolist() if isinstance(value, np.ndarray) else value
        return out

    def load_dict(self, doc):
        """
        Start monitoring with what :meth:`to_dict` returned (stream state is reset).

        Raises
        ------
        ValueError
            Other channels, or malformed arrays (the message names the key).

        """
        if not isinstance(doc, dict) or list(doc.get('channels', [])) != list(self.names):
            raise ValueError('the saved detector has other channels than this one '
                             f'({len(doc.get("channels", [])) if isinstance(doc, dict) else 0} '
                             f'saved, {len(self.names)} here); re-commission')
        c = len(self.names)
        learned = {}
        for key in ('monitored', 'center', 'scale', 'long_run_factor', 'level_quantile',
                    'drift_quantile'):
            try:
                arr = np.asarray(doc[key], dtype=bool if key == 'monitored' else float)
            except (KeyError, TypeError, ValueError):
                raise ValueError(f'saved detector: {key!r} missing or not numeric') from None
            if arr.shape != (c,) or (arr.dtype != bool and not np.all(np.isfinite(arr))):
                raise ValueError(f'saved detector: {key!r} must hold {c} finite values')
            learned[key] = arr
        if np.any(learned['scale'] <= 0.0) or np.any(learned['long_run_factor'] <= 0.0):
            raise ValueError('saved detector: scale and long_run_factor must be > 0')
        learned['blocks'] = int(doc.get('blocks', 0))
        learned['stride'] = int(doc.get('stride', 1))
        self.learned = learned
        self._buffer = None
        self._set_thresholds()
        self.reset()
