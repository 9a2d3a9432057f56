"""
Real-time pacing of the plant's step loop: when each step is due, deadline misses and jitter.

ROS-free, with no clock of its own (every time is an argument, seconds on one monotonic clock).
Step ``k`` is released at ``start + k * period``; its sample should go out then. Its *lateness*
is the time it actually went out minus its release (the jitter; >= 0 for a loop that sleeps
until the release), and it *misses its deadline* when it goes out a full period or more late
(after the next step was due). A loop starved for longer than ``max_lag_s`` does not burst its
backlog out: :meth:`RealtimePacer.catch_up` says how many steps to take at once without sending
their samples (the plant's physics stays on the wall clock with its controller; the robot's
stream has a gap, as an overloaded robot's publisher drops what it could not send in time;
counted as an overrun, and the dropped steps as ``dropped``).

Statistics: cumulative step and miss counts, a cumulative histogram of lateness on fixed bins
(:data:`JITTER_EDGES_US`), and percentiles over the last ``window`` steps.
"""
import numpy as np

JITTER_EDGES_US = (0, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000)
"""Lower edges of the lateness histogram's bins, µs; the last bin is open-ended."""


def steps_at_least(stats, late_us):
    """
    Count the steps of a cumulative lateness histogram that went out ``late_us`` or more late.

    ``stats`` holds ``jitter_hist_edges_us`` and ``jitter_hist_counts`` as :meth:`RealtimePacer.
    stats` gives them, as lists or as comma-separated text (/twin/plant_status). Counts from bins
    whose lower edge is at least ``late_us`` (choose one of :data:`JITTER_EDGES_US`). 0 when the
    figures are missing or unreadable (a lock-step plant has none).
    """
    def numbers(value):
        if isinstance(value, str):
            value = [v for v in value.split(',') if v.strip()]
        return [float(v) for v in value]

    try:
        edges = numbers(stats.get('jitter_hist_edges_us', ()))
        counts = numbers(stats.get('jitter_hist_counts', ()))
    except (TypeError, ValueError):
        return 0
    if len(edges) != len(counts):
        return 0
    return int(sum(c for e, c in zip(edges, counts) if e >= late_us))


class RealtimePacer:
    """
    Schedule of a periodic loop and its timing statistics.

    Parameters
    ----------
    period_s : float
        Step period, s (> 0).
    max_lag_s : float
        A loop further behind its schedule than this catches up without sending, s.
    window : int
        Steps kept for the percentiles of :meth:`stats`.

    """

    def __init__(self, period_s, max_lag_s=0.02, window=10000):
        if not period_s > 0.0:
            raise ValueError(f'period_s must be > 0, got {period_s!r}')
        self.period = float(period_s)
        self.max_lag = float(max_lag_s)
        self._recent = np.zeros(int(window))
        self._edges = np.asarray(JITTER_EDGES_US, dtype=float) * 1e-6
        self.reset(0.0)

    def reset(self, now):
        """Start a new schedule: the first step is due one period after ``now``."""
        self.due = float(now) + self.period
        self.steps = 0
        self.misses = 0
        self.overruns = 0
        self.dropped = 0
        self.counts = np.zeros(len(JITTER_EDGES_US), dtype=np.int64)
        self._n_recent = 0

    def lag(self, now):
        """How far ``now`` is behind the pending step's release, s (negative: early)."""
        return float(now) - self.due

    def catch_up(self, now):
        """
        After starvation: the steps whose release has passed since the pending one.

        The caller takes them at once without sending their samples, then sends the pending
        step's (now the newest) as usual; the schedule moves on by as many periods.

        Returns
        -------
        int
            Steps to take without sending, >= 0.

        """
        steps = max(0, int((float(now) - self.due) // self.period))
        self.due += steps * self.period
        self.overruns += 1
        self.dropped += steps
        return steps

    def done(self, now):
        """Record that the pending step's sample went out at ``now``; return its lateness, s."""
        late = float(now) - self.due
        self.steps += 1
        if late >= self.period:
            self.misses += 1
        self.counts[max(0, int(np.searchsorted(self._edges, late, side='right')) - 1)] += 1
        self._recent[self._n_recent % len(self._recent)] = late
        self._n_recent += 1
        self.due += self.period
        return late

    def stats(self):
        """
        Return the timing figures (dict of plain numbers).

        Keys: ``steps``, ``deadline_misses``, ``miss_fraction``, ``overruns``, ``dropped``,
        ``jitter_p50_us``, ``jitter_p99_us``, ``jitter_max_us`` (over the last ``window``
        steps; NaN before the first), ``jitter_hist_edges_us`` and ``jitter_hist_counts``
        (cumulative; lists).
        """
        recent = self._recent[:min(self._n_recent, len(self._recent))] * 1e6
        if len(recent):
            p50, p99, top = np.percentile(recent, 50), np.percentile(recent, 99), recent.max()
        else:
            p50 = p99 = top = float('nan')
        return {'steps': self.steps, 'deadline_misses': self.misses,
                'miss_fraction': self.misses / self.steps if self.steps else 0.0,
                'overruns': self.overruns, 'dropped': self.dropped,
                'jitter_p50_us': float(p50),
                'jitter_p99_us': float(p99), 'jitter_max_us': float(top),
                'jitter_hist_edges_us': list(JITTER_EDGES_US),
                'jitter_hist_counts': [int(c) for c in self.counts]}


class LockstepGate:
    """
    When a lock-step plant sends its first sample, and when it sends a sample again.

    The plant waits for its controller: the first sample goes out ``settle_s`` after a
    controller is first seen (discovery of its other endpoints settles meanwhile); after that
    every command advances the plant, and a sample left ``timeout_s`` without a command is sent
    again (the controller may have missed it). Time is an argument (s, one monotonic clock).

    Parameters
    ----------
    settle_s : float
        Wait after the controller appears, s.
    timeout_s : float
        Resend a sample unanswered this long, s.

    """

    START = 'start'
    RESEND = 'resend'

    def __init__(self, settle_s=0.5, timeout_s=1.0):
        self.settle_s = float(settle_s)
        self.timeout_s = float(timeout_s)
        self.resends = 0
        self.reset()

    def reset(self):
        """Wait for a controller again (after a plant reset)."""
        self.started = False
        self._seen_at = None
        self._sent_at = None

    def tick(self, now, controller_seen):
        """
        Return :attr:`START` (send the first sample), :attr:`RESEND` or None.

        Parameters
        ----------
        now : float
            Monotonic time, s.
        controller_seen : bool
            Whether a controller (reads the samples, publishes commands) is on the graph.

        """
        if not self.started:
            if not controller_seen:
                self._seen_at = None
            elif self._seen_at is None:
                self._seen_at = now
            elif now - self._seen_at >= self.settle_s:
                self.started = True
                self._sent_at = now
                return self.START
            return None
        if now - self._sent_at > self.timeout_s:
            self.resends += 1
            self._sent_at = now
            return self.RESEND
        return None

    def sent(self, now):
        """Note that a sample went out at ``now`` (after a command advanced the plant)."""
        self._sent_at = now
