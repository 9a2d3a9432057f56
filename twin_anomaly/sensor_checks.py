"""
Model-free consistency checks of the robot's own signals, for sensor and stream faults.

A sensor fault changes what the robot *reports*, not what it does, so the twin's dynamics
residuals see it only indirectly. These checks compare the signals with each other and with
their own past instead, per joint, with no model:

- **position vs velocity**: ``e = dq - dt (qd + qd_prev) / 2`` per sample; summed over a block
  and corrected by ``lag * dqd`` (a velocity that lags the position, e.g. a filtered
  derivative or the integrator's convention, learned by :meth:`SensorChecks.learn_lag`), it is
  zero up to noise. A leaky sum of it (time constant ``leak_s``) holds a position step that the
  velocity cannot explain, or a bias between position and integrated velocity, for seconds;
  the largest single-sample ``|e|`` of a block marks a step;
- **noise level**: the mean square of the second difference of each signal (position,
  velocity, effort), which white noise dominates at robot rates; its logarithm moves up with
  a noisier sensor and down with a frozen one. A moving signal whose stamps jitter makes a
  second difference of its own: ``velocity * (dt - dt_prev)`` (a noise-free joint at 1 rad/s
  whose stamps jitter by 0.1 ms reads 1e-4 rad, above encoder noise), so a robot commissioned
  on a quiet computer raised noise alarms on a busy one. Where the stamps are the times the
  samples were read (the loop that reads them jitters), the differences divided by their
  steps (rates; their mean square scaled back by the typical period squared) leave only the
  curvature; where the samples are read on a regular grid and only their stamps jitter (a
  driver that stamps on arrival), the plain differences do, and the rates carry the jitter.
  Both are summed, and each block keeps the smaller level per signal: white noise reads the
  same either way (``6 sigma^2`` on regular steps), a noisier or frozen sensor moves both,
  and the jitter of either kind stays out. Only pairs of regular steps (each within
  ``[0.75, 1.25]`` typical periods)
  count: across a stall that a robot makes up for with late samples back to back, the second
  difference holds the motion of the stall, not noise (a simulated robot stalled 11 ms by its
  computer read as a noisy velocity sensor), and a block with fewer such pairs than half its
  samples tells no noise level (NaN);
- **frozen channel**: the longest run of exactly repeated values of each signal while the
  joint moves. A joint at rest may read exactly the same position, a velocity of exactly
  zero and the same effort for as long as it rests (a robot pausing between cycles); a frozen
  sensor is one that stays while the joint moves. Moving is judged from another signal than
  the one that repeats: a position run counts while the measured velocity is above
  ``min_velocity``, a velocity or effort run while the velocity is, or while the position
  moved faster than ``min_speed`` over the last block; at rest a run neither grows nor ends;
- **joints on a clock of their own** (a gripper driver at a third of the arm's rate, carried
  between its messages by the intake: ``fresh`` of :meth:`SensorChecks.update`): their
  repeat runs and noise levels are taken over their own readings only. A carried value is
  no reading: it neither extends nor ends a run, and the second differences are those of
  consecutive readings, a whole number of periods apart (the rates' scaled to that step).
  Over every sample, a held effort read a fifth of its noise level (equal values, then a
  step), which commissioning learned as the effort's noise;
- **flat effort while moving**: how long a joint's effort has stayed flat (each window's
  standard deviation within a small multiple of the noise, its mean within a narrow band of
  the run's first window) while the joint moves (a drive that clips its torque) at a level of
  at least ``flat_min_level`` (a clipping drive is at a torque its motion needs; a slow move
  under a light load is flat too); windows where the joint stands still, or is flat below
  that level, neither extend nor end such a run. A window is a block when the block holds at
  least ``FLAT_WINDOW_READINGS`` new effort readings (at 1 kHz a 20 ms block holds 20); at a
  lower rate it spans consecutive blocks until it does (at 100 Hz two 20 ms blocks of two
  readings each: the standard deviation of two readings tells little, and a check that waited
  for three in one block never ran). A window that spanned the time of that many readings
  without holding them (stale resends, lost samples) changes no run. The tolerance is a
  multiple of the effort's noise (not of a window's spread), and the band is learned for the
  readings of the windows judged (:meth:`SensorChecks.flat_window_readings`). Where the
  caller gives the part of the effort its dynamics model does not explain (the momentum
  observer's residual: ``take_block``), the level is that of the rest: a clipping drive's
  effort is the torque that moves the joint, consistent with the motion (the observer stays
  quiet), while more friction holds a lightly loaded joint's effort at the friction's level,
  by torque the model does not explain, for as long as the joint moves one way (a +3 N·m
  Coulomb step on a joint that needed about 1 N·m read as a clipping drive for seconds).
  Where the caller also gives the effort that holds each joint against gravity and friction
  at its velocity and a share (``take_block``), a window counts only where at least that
  share of the level goes beyond it, accelerating the joint: a robot run at a lower speed
  override than in commissioning has small inertial torques, and where gravity hardly changes
  along its path (or changes as much as the inertial torque, the other way) its joints'
  efforts stay flat at the holding effort while they move, whereas a drive clipped under
  such a load leaves its joint short of what it needs, which falls behind or sags. (Not
  always: a clipped joint that friction mostly loads runs on at the speed where friction
  takes the clipped torque, its effort flat at the holding effort. At the commissioning
  speed such a flat run is still found: the caller asks for a share only from a lower
  override on). The caller may also have a window add only a share of its paced duration
  (``flat_pace``): along the same path run slower, efforts change slower still (their
  inertial part goes with the override squared);
- **stream**: samples missing from the stream (stamp gaps against the typical period), samples
  that repeat the previous one exactly (a stale resend; left out of the other checks) and,
  when the caller passes receive times, the latency of each sample. A gap is the robot's (or
  the network's) only if the robot really sent nothing: samples the bridge refused as
  implausible (``refused`` of :meth:`SensorChecks.update`) are counted by the bridge, and
  samples lost in the twin's own input queue are counted in :attr:`SensorChecks.lost_in_twin`.
  The latter are told apart by their receive times: a queue overflows only when the twin has
  fallen behind by about the queue's length, so a gap after a sample that waited more than
  half of it (its latency above the stream's floor) was the twin's own loss. Likewise the
  latency is the stream's only for samples that did not wait behind earlier input (the caller
  says which did: ``queued``); a starved twin drains its backlog in bursts, and those samples'
  latencies measure the twin, not the robot. A block's latency is the smallest of its samples':
  a delayed stream delays every sample, the twin's own hiccups only some.

Per sample it is a handful of vectorized operations on preallocated arrays (the 1 kHz path);
:meth:`SensorChecks.take_block` turns the accumulated block into one :class:`BlockChecks`.
"""
from dataclasses import dataclass
import math

import numpy as np
from twin_bridge.intake import INPUT_QUEUE_DEPTH

__all__ = ['BlockChecks', 'FLAT_WINDOW_READINGS', 'SensorChecks', 'SIGNALS']

#: The per-joint signals, in the order of the ``(3 n,)`` arrays: position, velocity, effort.
SIGNALS = ('position', 'velocity', 'effort')
_GAP_FACTOR = 1.5          # a step this many typical periods long has missing samples
_PERIOD_STEPS = 256        # the typical period is the median of this many recent steps,
_PERIOD_EVERY = 64         # re-taken every this many
_PAYBACK_STEP = 0.9        # steps shorter than this many periods are a late burst, not schedule
_BACK_ON_SCHEDULE = 3      # regular steps in a row after which a gap's account closes
_ACCOUNT_MAX = 200         # samples after which an account closes at the first regular step
_WATCH_STEPS = 20          # regular steps over which a slow catch-up is judged
_CATCH_UP_MIN = 0.4        # samples owed that a window must pay back to count as catching up
_WATCH_MAX = 2000          # samples after which an account closes even while catching up
_STEADY_OWED = 0.2         # owed samples changed less than this since the last gap: steady
_DUE_MARGIN = 0.25         # a sample this many periods early, or 1 - this late, is on schedule
_SHORT_STEP = 0.75         # a step shorter than this many periods is short, not regular
_FIRST_STEPS = 50          # the first typical period is the median of this many steps
_RESYNC_GAPS = 10          # this many even gaps in a row: the robot sends at a lower rate
_RESYNC_SHORT = 50         # this many even short steps in a row: it sends at a higher rate
_PV_GAP_S = 0.01           # the position-velocity sum spans gaps up to this long, s
_JUMP_PERIODS = 10         # a longer stamp gap received at once is the robot's clock jumping
_TINY_SQUARE = 1e-24       # floor of a mean square second difference (a frozen signal)
_FLOOR_RISE = 1e-3         # the latency floor follows a slower route by this much per s, s/s
FLAT_WINDOW_READINGS = 3
"""New effort readings a flat-effort window holds at least (see the module docstring)."""


@dataclass
class BlockChecks:
    """
    The checks over one block of samples (arrays in model joint order).

    Attributes
    ----------
    samples : int
        Samples in the block.
    missing : float
        Samples estimated missing from the robot's stream inside or just before the block
        (stamp gaps, less the samples the bridge refused or the twin's queue lost).
    repeated : int
        Samples that repeated the previous one exactly, every joint and signal (a stale
        resend under a new stamp); they are left out of every other check.
    pv_bias : (n,) float array
        Leaky sum of the lag-corrected position-velocity innovation, rad (m).
    pv_jump : (n,) float array
        Largest single-sample ``|innovation|`` in the block, rad (m); NaN without a pair.
    pv_sum, pv_dqd : (n,) float arrays
        Block sums of the raw innovation (rad) and of the velocity change (rad/s), for
        learning the lag.
    log_d2 : (3 n,) float array
        ``log`` of the mean square second difference of position, velocity and effort,
        divided by the steps and taken per typical period (rad^2, (rad/s)^2, (N·m)^2); NaN
        without three consecutive samples.
    repeat_run : (3 n,) float array
        Longest run of exactly repeated values seen in the block, samples (a run that goes on
        across blocks keeps counting).
    flat_run_s : (n,) float array
        Time the effort has been flat (window standard deviation <= ``flat_tolerance``; a
        window is one or more blocks, see the module docstring) while the joint moved, s,
        counted at the joint's usual pace: a window adds its duration times the joint's speed
        over ``pace_speed``, so that a robot run at a lower speed override (the same path,
        slower) builds flat runs no faster per path than in commissioning. It changes when a
        window closes (every block at 1 kHz, every other block at 100 Hz).
    speed : (n,) float array
        ``|net displacement| / block duration``, rad/s (m/s).
    effort_std : (n,) float array
        Standard deviation of the effort over the block, N·m (N).
    latency_s : float
        Smallest ``now - stamp`` over the block's samples that did not wait in the twin's queue,
        s (NaN when no receive time was given, or every sample waited).
    effort_mean : (n,) float array
        Mean effort over the block's new readings, N·m (N).
    resting : (n,) bool array
        The joint did not move in the block: its position moved slower than ``min_speed`` and
        no velocity reading was above ``min_velocity``. A resting joint's signals may freeze
        or go quiet without any fault.
    pace : (n,) float array
        ``speed / pace_speed``: the joint's pace against its usual speed (NaN where that is
        not known).
    lost_in_twin : int
        Samples the twin's own input queue lost in or just before the block (it fell behind):
        the block's other checks ran across that gap.

    """

    samples: int
    missing: float
    repeated: int
    pv_bias: np.ndarray
    pv_jump: np.ndarray
    pv_sum: np.ndarray
    pv_dqd: np.ndarray
    log_d2: np.ndarray
    repeat_run: np.ndarray
    flat_run_s: np.ndarray
    speed: np.ndarray
    effort_std: np.ndarray
    latency_s: float
    effort_mean: np.ndarray = None
    lost_in_twin: int = 0
    resting: np.ndarray = None
    pace: np.ndarray = None


class SensorChecks:
    """
    Per-sample accumulation of the model-free checks (see the module docstring).

    Parameters
    ----------
    n : int
        Number of joints.
    leak_s : float
        Time constant of the leaky position-velocity sum, s (> 0).
    queue_depth : int
        Depth of the twin's input queue of the stream, samples (default the bridge's
        :data:`~twin_bridge.intake.INPUT_QUEUE_DEPTH`): see the module docstring.

    Attributes
    ----------
    lag_s : (n,) float array
        Learned velocity lag (``pv_sum ~ lag_s * pv_dqd``), s; 0 until :meth:`learn_lag`.
    flat_tolerance : (n,) float array
        Largest window effort standard deviation counted as flat, N·m; 0 (nothing counts)
        until :meth:`set_flat`.
    flat_band : (n,) float array
        Largest distance of a flat window's mean effort from the run's first window, N·m.
    flat_min_level : (n,) float array
        Smallest ``|mean effort|`` of a flat window that extends a run (less the part the model
        does not explain, when :meth:`take_block` is told it), N·m (0 until
        :meth:`set_flat`): a drive clips at a torque its motion needs, not at the light load
        of a slow move.
    min_speed : (n,) float array
        Block speed (position change over a block) above which a joint counts as moving,
        rad/s; 0 until :meth:`set_flat` (any motion counts).
    min_velocity : (n,) float array
        Measured velocity above which a joint counts as moving at one sample, rad/s; 0 until
        :meth:`set_flat`.
    period_s : float or None
        Typical sample period, s (None before two regular steps).
    last_was_repeat : bool
        The last sample given to :meth:`update` repeated the one before it exactly.
    lost_in_twin : int
        Samples lost in the twin's own input queue (it fell behind), not by the robot.
    missing_from_robot : int
        Samples missing from the robot's stream (its gaps, beyond those lost in the twin),
        counted since the start, as the stream checks judge them block by block.

    """

    def __init__(self, n, leak_s=5.0, queue_depth=INPUT_QUEUE_DEPTH):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f'n must be a positive number of joints, got {n!r}')
        if not leak_s > 0.0 or not math.isfinite(leak_s):
            raise ValueError(f'leak_s must be a finite time > 0 s, got {leak_s!r}')
        self.n = n = int(n)
        self.leak_s = float(leak_s)
        if isinstance(queue_depth, bool) or not isinstance(queue_depth, (int, np.integer)) \
                or queue_depth < 1:
            raise ValueError(f'queue_depth must be a positive number of samples, got '
                             f'{queue_depth!r}')
        self.queue_depth = int(queue_depth)
        self.lost_in_twin = 0
        self.missing_from_robot = 0
        self.lag_s = np.zeros(n)
        self.flat_tolerance = np.zeros(n)
        self.flat_band = np.zeros(n)
        self.flat_min_level = np.zeros(n)
        self.pace_speed = np.full(n, np.nan)     # NaN: count flat runs in plain seconds
        self.min_speed = np.zeros(n)
        self.min_velocity = np.zeros(n)
        self._moving_block = np.zeros(n, dtype=bool)   # the last block's position moved
        self._moving = np.zeros(3 * n)                 # per signal: 1.0 while the joint moves
        self._fast = np.zeros(n, dtype=bool)
        self._x = np.zeros(3 * n)
        self._prev = np.zeros(3 * n)
        self._d1 = np.zeros(3 * n)
        self._d1_prev = np.zeros(3 * n)
        self._r1 = np.zeros(3 * n)           # first differences divided by their steps
        self._r1_prev = np.zeros(3 * n)
        self._d2 = np.zeros(3 * n)
        self._run = np.zeros(3 * n)
        self._e = np.zeros(n)
        self._bias = np.zeros(n)
        self._flat_run = np.zeros(n)
        self._flat_ref = np.full(n, np.nan)
        self._lag_sums = np.zeros(2 * n)
        self.period_s = None
        self._first = []               # the first steps, until the period is known
        self._steps = np.zeros(_PERIOD_STEPS)   # recent steps outside gaps (ring), s
        self._n_steps = 0
        self._account_from = None      # stamp before a gap whose samples are counted (_timing)
        self._account_count = 0        # samples since that stamp (refused ones included)
        self._account_twin = 0.0       # samples of the account the twin's queue lost
        self._on_schedule = 0          # regular steps in a row since the last gap
        self._watch_owed = None        # back on schedule: samples owed when the window began
        self._gap_owed = 0.0           # samples the account owed just after the last gap
        self._since_gap = 0            # steps since the last gap of the open account
        self._watch_steps = 0          # steps of the current window
        self._settling = False         # an account just closed: the next step is not taken in
        self._run_kind = 0             # a run of gaps (1) or short steps (-1) going on, or 0
        self._run_len = 0
        self._run_lo = self._run_hi = 0.0   # shortest and longest step of that run, s
        self._run_ref = 0.0            # the typical period when that run began, s
        self._t = None
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def reset(self):
        """Forget the stream and the current block; keep what was learned (lag, flatness)."""
        self._t = None                 # stamp of the last sample with a new reading
        self._t_seen = None            # stamp of the last sample at all
        self.last_was_repeat = False
        self._now_seen = None          # its receive time (None: not given)
        self._have = 0                 # consecutive samples behind the current one (0, 1, 2)
        self._regular = False          # the last pair's step was a regular one (see _pair)
        self._read_t = None            # per signal: stamp of its last own reading (_own_readings)
        self._lat_floor = math.inf     # smallest recent receive latency, s
        self._account_from = None
        self._bias.fill(0.0)
        self._flat_run.fill(0.0)
        self._flat_ref.fill(np.nan)
        self._moving_block.fill(False)
        self._windows_judged = 0       # flat-effort windows judged, and their readings
        self._window_readings = 0
        self._new_window()
        self._new_block()

    def _new_window(self):
        """Start an empty flat-effort window (see :meth:`_flat_window`)."""
        n = self.n
        self._win_blocks = 0
        self._win_fresh = 0
        self._win_tau_sum = np.zeros(n)
        self._win_tau_sq = np.zeros(n)
        self._win_unexplained = np.zeros(n)     # summed over the blocks that knew it
        self._win_known = np.zeros(n)           # ... and their number, per joint
        self._win_holding = np.zeros(n)         # likewise the holding effort
        self._win_held = np.zeros(n)
        self._win_q_first = None
        self._win_t_first = None

    def _new_block(self):
        n = self.n
        self._count = 0
        self._repeated = 0
        self._pairs = 0
        self._missing = 0.0
        self._lost = 0
        self._sum_e = np.zeros(n)
        self._sum_dqd = np.zeros(n)
        self._jump = np.zeros(n)
        self._sum_d2 = np.zeros(3 * n)
        self._sum_r2 = np.zeros(3 * n)
        self._cnt_d2 = 0
        self._cnt_read = np.zeros(3 * n)        # pairs of own readings per signal
        self._reads = np.zeros(3 * n)           # own readings per signal
        self._read_samples = 0                  # samples whose fresh joints were given
        self._run_max = np.zeros(3 * n)
        self._tau_sum = np.zeros(n)
        self._tau_sq = np.zeros(n)
        self._q_first = None
        self._t_first = None
        self._lat_min = math.inf       # smallest latency of the block before the last sample
        self._fast_seen = np.zeros(self.n, dtype=bool)   # a velocity reading said "moving"
        self._lat_last = math.inf      # the last sample's (inf: none, or it waited)

    # ------------------------------------------------------------------ per sample
    def update(self, t, q, qd, tau, now=None, refused=0, queued=False, fresh=None):
        """
        Add one sample (cheap: vectorized accumulation only).

        Parameters
        ----------
        t : float
            Stamp, s. A stamp that does not advance is ignored.
        q, qd, tau : (n,) array_like
            Measured position (rad), velocity (rad/s) and effort (N·m), model order.
        now : float, optional
            When the sample was received, on the same clock as earlier ``now`` values, s.
        refused : int
            Samples of the stream the bridge refused since the previous one (implausible
            values or stamps): a gap they explain is not a missing sample.
        queued : bool
            The sample waited in the twin's queue behind earlier input (the twin was busy or
            starved when it arrived): its latency, and that of the sample before it (the head
            of the burst), are the twin's own backlog, not the stream's, and are left out.
        fresh : (n,) bool array, optional
            Which joints' values are new readings (:attr:`twin_bridge.intake.RobotSample.
            fresh`); the others are carried between the messages of a clock of their own, and
            their repeat runs and noise levels take their readings only. None: every joint's.

        Returns
        -------
        bool
            False if the sample was ignored (stamp not after the previous one).

        """
        n = self.n
        x = self._x
        x[:n] = q
        x[n:2 * n] = qd
        x[2 * n:] = tau
        paired = False
        if self._t_seen is not None:
            step = t - self._t_seen
            if not step > 0.0:
                return False
            self._t_seen = t
            # after a resend the previous reading is still in _prev: the next sample is
            # compared with it too (a run of resends is counted whole, not every other one)
            after_repeat, self.last_was_repeat = self.last_was_repeat, False
            backlog, received = 0.0, None
            if now is not None:
                # the smallest recent latency (clock offset + fastest transport), rising
                # slowly so that it follows a slower route; above it, the sample waited
                floor = min(self._lat_floor + _FLOOR_RISE * step, now - t)
                self._lat_floor = floor
                backlog = now - t - floor
                if self._now_seen is not None and not queued:
                    received = now - self._now_seen
            regular = self._timing(t, step, refused, backlog, received)
            if regular and (self._have or after_repeat) \
                    and x.tobytes() == self._prev.tobytes():
                # a stale copy of the previous sample under a new stamp (a logger or driver
                # that resends the same values, bit for bit: comparing the bytes tests that,
                # several times faster than NumPy): it carries no new reading, so it is
                # counted, and no difference spans it (when the stream resumes, it is unclear
                # how far)
                self.last_was_repeat = True
                self._repeated += 1
                self._count += 1
                self._have = 0
                if now is not None:
                    self._latency(now - t, queued)
                return True
            if self._have:
                paired = True
                self._pair(t - self._t, fresh is None)
            elif not regular and self._t is not None and t - self._t <= _PV_GAP_S + 1e-9:
                self._pv_across(t - self._t)
        if fresh is not None:
            self._own_readings(t, fresh, paired)
        self._t_seen = t
        self._now_seen = now
        if self._q_first is None:
            self._q_first = x[:n].copy()
            self._t_first = t
        tau = x[2 * n:]
        self._tau_sum += tau
        self._tau_sq += tau * tau
        if now is not None:
            self._latency(now - t, queued)
        self._prev, self._x = x, self._prev
        self._t = t
        self._have = min(self._have + 1, 2)
        self._count += 1
        return True

    def _latency(self, latency, queued):
        """Take a sample's receive latency into the block, unless the twin's backlog made it."""
        if queued:
            self._lat_last = math.inf           # the head of the burst waited as well
            return
        if self._lat_last < self._lat_min:
            self._lat_min = self._lat_last
        self._lat_last = latency

    def _timing(self, t, step, refused=0, backlog=0.0, received=None):
        """
        Track the typical period; count the samples a gap misses (False: a gap).

        A gap (a step longer than ``_GAP_FACTOR`` periods) opens an account: from the stamp
        before it, how many samples the robot's clock says should have come against how many
        did (the bridge's refused ones included). Samples that come late are not missing: a
        robot (or driver) that fell behind sends the ones it owes back to back, faster than its
        rate, and may stall again before it has caught up (a busy computer). The account
        closes at zero as soon as the samples have caught up with the clock; otherwise it
        closes, with what is still short counted missing, once the stream has been back on
        schedule for ``_BACK_ON_SCHEDULE`` regular steps and then ``_WATCH_STEPS`` more that
        paid back less than ``_CATCH_UP_MIN`` samples (a starved robot may catch up at barely
        above its rate, without a burst: its hole is not missing), or at a gap after a steady
        stretch (neither catching up nor falling further behind since the gap before: samples
        dropped now and then are counted at once, not at the end of the watch). After
        ``_ACCOUNT_MAX`` samples it closes at the first regular step (not in the middle of a
        burst), and a slow catch-up is watched up to ``_WATCH_MAX`` samples.

        Counting against the clock, not gap by gap, matters for a robot whose samples are
        stamped when they are sent: its gaps are not whole periods (2.6 periods, then a
        late burst), and rounding each gap on its own counted samples that did come as missing
        (a 2.8 s false `dropout` beside a robot stand-in that ran late on a loaded computer).
        What an account finds short is the twin's own loss as far as the gaps that came after
        a long wait in its queue (``backlog``) explain it, the robot's beyond that. A stamp
        gap of more than ``_JUMP_PERIODS`` periods that came within half its length of the
        previous sample (``received``, the receive-time step of a sample that did not wait in
        the queue) is the robot's clock jumping ahead, not a dropout.
        """
        period = self.period_s
        if period is None:
            # the first period: the median of the first steps, not one step (two samples of
            # a late burst, 60 us apart, would make every regular step a gap); their mean when
            # the median is less than half of it, for a robot that sends its samples in
            # batches (4 samples 20 us apart every 4 ms: the median is 20 us, the rate 1 kHz)
            self._first.append(step)
            if len(self._first) == _FIRST_STEPS:
                median, mean = float(np.median(self._first)), float(np.mean(self._first))
                self.period_s = mean if median < 0.5 * mean else median
            return True
        if step > _GAP_FACTOR * period:
            if received is not None and step > _JUMP_PERIODS * period \
                    and received < 0.5 * step:
                self._account_from = None          # the robot's clock jumped ahead
                self._run_kind = 0
                self._have = 0
                return False
            if self._new_rate(step, 1):
                return True
            if self._account_from is not None and self._since_gap >= _BACK_ON_SCHEDULE \
                    and abs(self._owed(t - step) - self._gap_owed) < _STEADY_OWED:
                # a gap after the stream was back on schedule, neither catching up nor falling
                # further behind since the last gap: what the account still owes is missing,
                # and this gap opens an account of its own (samples dropped now and then are
                # counted at the next gap, not at the end of the watch)
                self._close_account(math.floor(
                    (t - step - self._account_from) / period + _DUE_MARGIN))
            if self._account_from is None:
                self._account_from = t - step
                self._account_count = 0
                self._account_twin = 0.0
            self._watch_owed = None
            if backlog > 0.5 * self.queue_depth * period:
                # the twin's queue overflowed, not the robot: what this gap explains
                self._account_twin += max(0.0, round(step / period) - 1.0 - refused)
            self._account_count += 1 + refused
            self._gap_owed = self._owed(t)
            self._since_gap = 0
            self._on_schedule = 0
            self._have = 0             # no differences across a gap
            return False
        if self._account_from is not None:
            self._run_kind = 0
            self._account_count += 1 + refused
            self._since_gap += 1
            due = math.floor((t - self._account_from) / period + _DUE_MARGIN)
            if self._account_count >= due:
                self._account_from = None          # every sample came, some of them late
                self._watch_owed = None
                self._settling = True
                return True
            on_schedule = step >= _PAYBACK_STEP * period
            self._on_schedule = self._on_schedule + 1 if on_schedule else 0
            if self._watch_owed is None:
                if self._on_schedule < _BACK_ON_SCHEDULE and not (
                        on_schedule and self._account_count >= _ACCOUNT_MAX):
                    return True                    # still catching up (not in the period)
                if self._account_count < _ACCOUNT_MAX:
                    self._watch_owed = self._owed(t)
                    self._watch_steps = 0
                    return True                    # back on schedule: is it still catching up?
            else:
                self._watch_steps += 1
                if self._watch_steps < _WATCH_STEPS:
                    return True
                owed = self._owed(t)
                if self._watch_owed - owed >= _CATCH_UP_MIN \
                        and self._account_count < _WATCH_MAX:
                    self._watch_owed = owed        # paying back, slowly: another window
                    self._watch_steps = 0
                    return True
            self._close_account(due)
            return True
        # (a run of short steps is judged against the period it began with, which the steps
        # themselves pull down meanwhile)
        if step < _SHORT_STEP * (self._run_ref if self._run_kind < 0 else period):
            if self._new_rate(step, -1):
                return True
        else:
            self._run_kind = 0
        if self._settling:
            # the step after an account closed is the rest of a late burst, not the schedule
            self._settling = False
            return True
        # the period is the median of the last _PERIOD_STEPS steps outside gaps and their
        # accounts: a median, not a running mean, so that a robot late again and again (a long
        # step, then a short one), wide jitter or a few odd steps do not move it (a mean taken
        # over such steps drifted by 3 %, which over an account of 30 periods is a sample
        # counted missing), and a robot that now sends at another rate is followed. Of 256
        # steps, not fewer: the median of 64 steps jittered by 3 % of a period was off by 1 %
        # now and then, a sample lost at the end of a 25-period account
        self._take_step(step)
        return True

    def _owed(self, t):
        """Return the samples the open account owes at stamp ``t``, not rounded (see _timing)."""
        return (t - self._account_from) / self.period_s - self._account_count

    def _close_account(self, due):
        """Close the open account: what it owes of ``due`` samples is missing (see _timing)."""
        lost = due - self._account_count
        twin = min(lost, int(self._account_twin))
        self.lost_in_twin += twin
        self._lost += twin
        self._missing += lost - twin
        self.missing_from_robot += lost - twin
        self._account_from = None
        self._watch_owed = None
        self._settling = True

    def _take_step(self, step):
        """Take a step into the median that gives the typical period (see _timing)."""
        steps = self._steps
        steps[self._n_steps % _PERIOD_STEPS] = step
        self._n_steps += 1
        if self._n_steps % _PERIOD_EVERY == 0:
            # (over the steps so far until the ring is full: the first period, taken from the
            # first 50 steps of the stream, may be a burst's)
            self.period_s = float(np.median(steps[:self._n_steps]))

    def _new_rate(self, step, kind):
        """
        Follow a run of gaps (``kind`` 1) or of short steps (-1); True if it re-took the period.

        Many such steps in a row, all about as long, mean the typical period is wrong, not the
        stream: the robot now sends at another rate. A late robot's gaps and bursts are of
        different lengths and broken by regular steps (late again and again is not a new
        rate), and a burst after a gap belongs to the gap's account, not to this run. A step
        that does not match the run starts a new one.
        """
        if self._run_kind != kind or step > 1.5 * self._run_lo or 1.5 * step < self._run_hi:
            self._run_kind, self._run_len, self._run_lo, self._run_hi = kind, 0, step, step
            self._run_ref = self.period_s
        self._run_len += 1
        self._run_lo, self._run_hi = min(self._run_lo, step), max(self._run_hi, step)
        if self._run_len < (_RESYNC_GAPS if kind > 0 else _RESYNC_SHORT):
            return False
        self.period_s = 0.5 * (self._run_lo + self._run_hi)
        self._steps.fill(self.period_s)            # the median starts again from the new rate
        self._windows_judged = self._window_readings = 0    # (windows of the new rate)
        self._run_kind = 0
        self._account_from = None
        return True

    def _pv_across(self, dt):
        """
        Take the position-velocity innovation across a short gap into the block's sums.

        Summed over a stream, the innovation telescopes: the position noise of each sample
        enters twice with opposite signs, and only the ends remain. A gap left out of the sum
        leaves two ends more each time: a twin that lost samples in its own queue every
        100 ms or so made the leaky sum a random walk of position noise, read as a biased
        sensor. Across a gap of up to ``_PV_GAP_S`` the trapezoid still integrates the
        velocity well (its error grows with the gap cubed: 2e-5 rad over 10 ms of a joint
        swinging 1 rad at 1 Hz); the other checks do not span gaps.
        """
        n = self.n
        x, prev, e = self._x, self._prev, self._e
        np.add(x[n:2 * n], prev[n:2 * n], out=e)
        e *= -0.5 * dt
        e += x[:n]
        e -= prev[:n]
        self._sum_e += e
        self._sum_dqd += x[n:2 * n]
        self._sum_dqd -= prev[n:2 * n]

    def _pair(self, dt, readings=True):
        """
        Differences between this sample (``_x``) and the previous one (``_prev``).

        ``readings``: every value is a new reading; else the repeat runs and noise levels are
        left to :meth:`_own_readings`.
        """
        n = self.n
        x, prev, d1 = self._x, self._prev, self._d1
        np.subtract(x, prev, out=d1)
        # exact repeats: run length per signal, grown only while the joint moves (judged by
        # another signal: see the module docstring), reset by any change
        fast, moving = self._fast, self._moving
        np.greater(np.abs(x[n:2 * n]), self.min_velocity, out=fast)
        self._fast_seen |= fast
        moving[:n] = fast
        fast |= self._moving_block
        moving[n:2 * n] = fast
        moving[2 * n:] = fast
        if readings:
            self._run += moving
            self._run *= d1 == 0.0
            np.maximum(self._run_max, self._run, out=self._run_max)
        # position vs velocity (trapezoid)
        e = self._e
        np.add(x[n:2 * n], prev[n:2 * n], out=e)
        e *= -0.5 * dt
        e += d1[:n]
        self._sum_e += e
        self._pairs += 1
        dqd = d1[n:2 * n]
        self._sum_dqd += dqd
        e -= self.lag_s * dqd
        np.maximum(self._jump, np.abs(e), out=self._jump)
        period = self.period_s
        # (before the typical period is known, no pair is known to be regular)
        regular = period is not None and 0.75 * period <= dt <= 1.25 * period
        if regular:
            # the second difference two ways (see the module docstring): of the values, and
            # of the rates (first differences divided by their steps); take_block keeps the
            # smaller level, and scales the rates' back to a typical period's change
            r1 = self._r1
            np.multiply(d1, 1.0 / dt, out=r1)
            if readings and self._have == 2 and self._regular:
                d2 = self._d2
                np.subtract(d1, self._d1_prev, out=d2)
                d2 *= d2
                self._sum_d2 += d2
                np.subtract(r1, self._r1_prev, out=d2)
                d2 *= d2
                self._sum_r2 += d2
                self._cnt_d2 += 1
            self._r1, self._r1_prev = self._r1_prev, r1
        self._regular = regular
        self._d1, self._d1_prev = self._d1_prev, d1

    def _own_readings(self, t, fresh, paired):
        """
        Take the repeat runs and noise levels over each joint's own readings (module docstring).

        ``fresh`` (n,) bool: the joints whose values in ``_x`` are new readings; ``paired``:
        :meth:`_pair` took this sample (else the readings start again here, as after a gap).
        For a joint whose every value is fresh this is what :meth:`_pair` takes.
        """
        f = np.concatenate((fresh, fresh, fresh))
        x = self._x
        self._read_samples += 1
        self._reads += f
        if not paired or self._read_t is None:
            self._read_x = x.copy()
            self._read_t = np.where(f, t, np.nan)     # (NaN: no reading yet)
            self._read_d1 = np.zeros_like(x)
            self._read_r1 = np.zeros_like(x)
            self._read_m = np.zeros_like(x)           # periods of the last regular step, or 0
            return
        d1 = x - self._read_x
        self._run += self._moving * f
        self._run *= (d1 == 0.0) | ~f
        np.maximum(self._run_max, self._run, out=self._run_max)
        period = self.period_s
        m = np.zeros_like(x)
        if period is not None:
            step = t - self._read_t
            with np.errstate(invalid='ignore'):
                m = np.rint(step / period)
                regular = f & (m >= 1.0) & (np.abs(step - m * period) <= 0.25 * period)
                r1 = d1 / step
            m = np.where(regular, m, 0.0)
            pair = regular & (self._read_m > 0.0)
            d2 = np.where(pair, d1 - self._read_d1, 0.0)
            self._sum_d2 += d2 * d2
            # (per typical period, as take_block scales the rates: over a step of m periods
            # white noise reads m^2 times smaller)
            d2 = np.where(pair, r1 - self._read_r1, 0.0)
            self._sum_r2 += d2 * d2 * m * self._read_m
            self._cnt_read += pair
            np.copyto(self._read_r1, r1, where=f)
        np.copyto(self._read_x, x, where=f)
        np.copyto(self._read_t, t, where=f)
        np.copyto(self._read_d1, d1, where=f)
        np.copyto(self._read_m, m, where=f)

    # ------------------------------------------------------------------ per block
    def take_block(self, unexplained_effort=None, holding_effort=None, driving_share=0.0,
                   flat_pace=None):
        """
        Close the current block and return its :class:`BlockChecks`; None if it was empty.

        Also advances the leaky position-velocity sum and, when the block closes a flat-effort
        window (see the module docstring), the flat-effort run.

        Parameters
        ----------
        unexplained_effort : (n,) array_like, optional
            The part of each joint's effort over the block that the twin's dynamics model does
            not explain, N·m (N): the momentum observer's residual, negated (NaN: not known).
            A flat window's level is judged on the rest (see the module docstring): the mean
            over its blocks that knew it; None (or NaN) judges the whole effort.
        holding_effort : (n,) array_like, optional
            The effort the dynamics model says holds each joint against gravity and friction
            at its velocity, taken once for the block (the monitor: at its last sample), N·m
            (N) (NaN: not known). What the explained effort has beyond it accelerates the
            joint (see the module docstring). None (or NaN): the window's level counts whole.
        driving_share : float or (n,) array_like
            Share of a flat window's level that must accelerate the joint (beyond the holding
            effort) for the window to extend a run, per joint (0: any window counts).
        flat_pace : (n,) array_like, optional
            Share of its paced duration a flat window adds to a run, per joint, in (0, 1]
            (None: all of it): the monitor counts flat runs slower at a lower speed override,
            where efforts change more slowly along the path (see the module docstring).

        """
        if self._count == 0:
            self._new_block()
            return None
        n = self.n
        c = self._sum_e - self.lag_s * self._sum_dqd
        duration = self._t - self._t_first
        decay = math.exp(-duration / self.leak_s) if duration > 0.0 else 1.0
        if self._lost:
            # the twin's own queue lost samples: the sum over a gap it does not span (see
            # _pv_across) leaves two ends of position noise, and a twin that keeps losing
            # samples makes the sum a random walk of them (a biased sensor, seconds after the
            # twin kept up again). The sum starts again from this block
            decay = 0.0
        self._bias *= decay
        self._bias += c
        last_q = self._prev[:n]        # the newest sample (buffers were swapped)
        speed = (np.abs(last_q - self._q_first) / duration if duration > 0.0
                 else np.full(n, np.nan))
        fresh = self._count - self._repeated
        mean = self._tau_sum / max(fresh, 1)
        tau_std = np.sqrt(np.maximum(self._tau_sq / max(fresh, 1) - mean * mean, 0.0))
        with np.errstate(invalid='ignore'):
            moving = speed > self.min_speed         # (False for a block without duration)
            pace = speed / self.pace_speed          # NaN where no usual pace is known
        self._flat_window(fresh, last_q, unexplained_effort, holding_effort,
                          driving_share, flat_pace)                  # (sets _moving_block)
        latency = min(self._lat_min, self._lat_last)
        # a block whose steps were mostly irregular (a stall made up) tells no noise level;
        # else the smaller of the two levels (module docstring). The rates' sum is per s^2:
        # times period^2, of a period's change (the period now, not each pair's: re-taken
        # every 64 steps, it would step the rates)
        # (per signal: a joint on a clock of its own has fewer readings, see _own_readings)
        pairs = self._cnt_d2 + self._cnt_read
        if pairs.any():
            readings = fresh - self._read_samples + self._reads
            level = np.minimum(self._sum_d2, self._sum_r2 * self.period_s ** 2)
            log_d2 = np.where((pairs > 0) & (2 * pairs >= readings),
                              np.log(np.maximum(level / np.maximum(pairs, 1), _TINY_SQUARE)),
                              np.nan)
        else:
            log_d2 = np.full(3 * n, np.nan)
        out = BlockChecks(
            samples=self._count, missing=self._missing, repeated=self._repeated,
            pv_bias=self._bias.copy(),
            pv_jump=self._jump if self._pairs else np.full(n, np.nan),
            pv_sum=self._sum_e, pv_dqd=self._sum_dqd, log_d2=log_d2,
            repeat_run=self._run_max, flat_run_s=self._flat_run.copy(), speed=speed,
            effort_std=tau_std,
            latency_s=latency if latency < math.inf else math.nan, effort_mean=mean,
            resting=~(self._fast_seen | moving), pace=pace, lost_in_twin=self._lost)
        if self._lag_learning:
            self._lag_sums[:n] += self._sum_e * self._sum_dqd
            self._lag_sums[n:] += self._sum_dqd * self._sum_dqd
        # the next block starts from the newest sample's values
        self._new_block()
        self._q_first = last_q.copy()
        self._t_first = self._t
        return out

    def _flat_window(self, fresh, last_q, unexplained_effort, holding_effort, driving_share,
                     flat_pace=None):
        """
        Add the closing block to the flat-effort window; judge the window once it is full.

        ``fresh``: the block's new readings; ``last_q`` (n,): its newest positions, rad;
        ``unexplained_effort``, ``holding_effort``, ``driving_share``, ``flat_pace``: as
        :meth:`take_block` was given them (the share and pace of the window's last block).
        The window is judged as one block would be (its readings' standard deviation and mean,
        its speed and duration from the newest sample before it): a window of one block gives
        that block's figures.
        """
        if self._win_blocks == 0:
            self._win_q_first = self._q_first
            self._win_t_first = self._t_first
        self._win_blocks += 1
        self._win_fresh += fresh
        self._win_tau_sum += self._tau_sum
        self._win_tau_sq += self._tau_sq
        _add_known(self._win_unexplained, self._win_known, unexplained_effort)
        _add_known(self._win_holding, self._win_held, holding_effort)
        duration = self._t - self._win_t_first
        readings = self._win_fresh
        if readings < FLAT_WINDOW_READINGS:
            period = self.period_s
            if period is None or duration < FLAT_WINDOW_READINGS * period:
                return                 # the next block adds its readings
            # time enough for them, yet stale resends or lost samples: no run changes
            self._new_window()
            return
        mean = self._win_tau_sum / readings
        tau_std = np.sqrt(np.maximum(self._win_tau_sq / readings - mean * mean, 0.0))
        with np.errstate(invalid='ignore'):
            speed = (np.abs(last_q - self._win_q_first) / duration if duration > 0.0
                     else np.full(self.n, np.nan))
            moving = speed > self.min_speed
            pace = speed / self.pace_speed
        paced = duration * np.where(np.isfinite(self.pace_speed), pace, 1.0)
        if flat_pace is not None:
            paced = paced * flat_pace
        # the mean unexplained effort of the blocks that knew it (none: the whole effort)
        level = mean - _known_mean(self._win_unexplained, self._win_known)
        # the part of it that accelerates the joint (inf where the holding effort is unknown)
        driving = np.where(self._win_held > 0.0,
                           level - _known_mean(self._win_holding, self._win_held), np.inf)
        self._advance_flat(mean, tau_std, moving, paced, level,
                           np.abs(driving) >= driving_share * np.abs(level))
        # whether the joint moved, for the repeat runs of the next samples (see _pair): from
        # a window, as a block of two readings at 100 Hz tells little
        self._moving_block[:] = moving
        self._windows_judged += 1
        self._window_readings += readings
        self._new_window()

    def flat_window_readings(self, block_readings):
        """
        Return the new effort readings a flat-effort window holds, for the band of its mean.

        ``block_readings``: the readings of a block at the stream's rate (block duration over
        the typical period). From ``FLAT_WINDOW_READINGS`` on a block is a window; below, the
        mean over the windows judged since :meth:`reset` (those the band will be judged on),
        or ``FLAT_WINDOW_READINGS`` before any.
        """
        if block_readings >= FLAT_WINDOW_READINGS:
            return block_readings
        if not self._windows_judged:
            return float(FLAT_WINDOW_READINGS)
        return self._window_readings / self._windows_judged

    def _advance_flat(self, tau_mean, tau_std, moving, paced, level, driven):
        """
        Extend flat-effort runs by a flat, moving window at the run's level; end them else.

        ``paced`` (n,): the window's duration at each joint's usual pace, s; ``level`` (n,):
        the window's mean effort that the model explains (see :meth:`take_block`), N·m;
        ``driven`` (n,) bool: enough of it accelerates the joint (see :meth:`take_block`).
        """
        flat = tau_std <= self.flat_tolerance
        same = np.abs(tau_mean - self._flat_ref) <= self.flat_band     # False while NaN
        grow = np.where(moving & driven & (np.abs(level) >= self.flat_min_level), paced, 0.0)
        self._flat_run = np.where(flat, np.where(same, self._flat_run, 0.0) + grow, 0.0)
        self._flat_ref = np.where(flat, np.where(same, self._flat_ref, tau_mean), np.nan)

    # ------------------------------------------------------------------ learning
    _lag_learning = False

    def start_lag_learning(self):
        """Collect block sums from now on for :meth:`learn_lag`."""
        self._lag_sums.fill(0.0)
        self._lag_learning = True

    def learn_lag(self):
        """
        Fit ``pv_sum ~ lag * pv_dqd`` per joint over the collected blocks and use it.

        Joints whose velocity never changed keep a lag of 0.

        Returns
        -------
        (n,) float array
            The lag per joint, s.

        """
        n = self.n
        num, den = self._lag_sums[:n], self._lag_sums[n:]
        lag = np.zeros(n)
        np.divide(num, den, out=lag, where=den > 0.0)
        self.lag_s = lag
        self._lag_learning = False
        self._bias.fill(0.0)
        return lag.copy()

    def set_flat(self, tolerance, band, min_speed, min_velocity=None, min_level=0.0,
                 pace_speed=None):
        """
        Set what counts as flat effort, and as a moving joint; restart the runs.

        Parameters
        ----------
        tolerance : (n,) array_like
            Largest block effort standard deviation that counts as flat, N·m (N).
        band : (n,) array_like
            How far a flat block's mean effort may be from the run's first block, N·m (N).
        min_speed : (n,) array_like
            Block speed above which the joint counts as moving, rad/s (m/s).
        min_velocity : (n,) array_like, optional
            Measured velocity above which the joint counts as moving at one sample, rad/s
            (m/s); default ``min_speed``.
        min_level : (n,) array_like
            :attr:`flat_min_level`, N·m (N).
        pace_speed : (n,) array_like, optional
            The joint's usual speed, rad/s (m/s): flat runs are counted at that pace (see
            :class:`BlockChecks`); None or NaN counts plain seconds.

        """
        def vector(value):
            return np.broadcast_to(np.asarray(value, dtype=float), (self.n,)).copy()
        self.flat_tolerance = vector(tolerance)
        self.flat_band = vector(band)
        self.min_speed = vector(min_speed)
        self.min_velocity = vector(min_speed if min_velocity is None else min_velocity)
        self.flat_min_level = vector(min_level)
        self.pace_speed = vector(np.nan if pace_speed is None else pace_speed)
        self._flat_run.fill(0.0)
        self._flat_ref.fill(np.nan)

    def set_pace_speed(self, pace_speed):
        """
        Set the joints' usual speeds (n,), rad/s (m/s); NaN: count flat runs in plain seconds.

        As ``pace_speed`` of :meth:`set_flat`, whose other settings and runs stay: the monitor
        takes a first figure from the warm-up of commissioning and this one from more of it.
        """
        self.pace_speed = np.broadcast_to(np.asarray(pace_speed, dtype=float),
                                          (self.n,)).copy()


def _add_known(total, count, values):
    """Add a block's ``values`` (n,) where finite to a window's ``total`` and ``count``."""
    if values is None:
        return
    values = np.asarray(values, dtype=float)
    known = np.isfinite(values)
    total += np.where(known, values, 0.0)
    count += known


def _known_mean(total, count):
    """Mean of a window's blocks that knew a value (0 where none did)."""
    return total / np.maximum(count, 1.0)
