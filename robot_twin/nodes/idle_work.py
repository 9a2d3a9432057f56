"""
The twin's periodic reports, run in pieces in the gaps between the robot's samples.

The twin's reports (the anomaly report, /twin/status, /twin/rul) each cost several times a
1 kHz sample's work, and they run on the thread that takes the samples. Run whole by their
timers, which fire at any moment of the robot's period, a report that starts just before a
sample arrives holds that sample (and the one after it) back: those samples made most of the
slowest 1 % of the residuals' latencies (BENCHMARKS.md, "After the thirteenth session's
changes").

So a report timer hands its report to :class:`IdleWork` as a generator that yields between its
pieces (for instance: the report's state and DiagnosticArray; then the rviz markers), and the
robot input runs one piece right after a joint-state sample has been handled (its residual
published), where the robot's period leaves the most time before the next sample; the sample
after a piece gets none, so that a late one can catch up. A piece is also held back after a
sample whose own work was long (a detector block closed) or that came in a backlog (the thread
is catching up), but a report waits no longer than ``max_wait_s``; while the robot is silent,
or streams slower than 200 Hz, a report runs whole when its timer fires, as it did before.
Nothing here reads a ROS clock or sends a message: it is plain Python, tested with plain pytest.
"""
from collections import deque
import math
import time

MAX_PERIOD_S = 0.005
"""Reports are cut into pieces only for a robot that streams this often or more (200 Hz): the
gaps of a slower stream leave room for a whole report, and its samples would spread a report
over too long a time."""
MAX_WAITING = 4
"""At most this many reports wait for samples; the oldest of more runs whole at once."""
LIVE_S = 0.02
"""The stream is live while a sample ended less than this long ago: else a report runs whole."""
BUSY_SHARE = 0.35
"""A piece runs after a sample only when that sample's own work took less than this share of the
robot's period ..."""
GAP_SHARE = 0.25
"""... and when the thread was idle for at least this share of the period before the sample
(else it is taking a backlog)."""


class IdleWork:
    """
    Report pieces to run after the robot's samples, one piece after a sample at most.

    Parameters
    ----------
    max_wait_s : float
        Longest a report waits for quiet samples (from when it was handed over); then its
        pieces run after every sample that comes, quiet or not.
    clock : callable
        Steady clock, s (``time.perf_counter``; the robot input reads the same clock).

    Attributes
    ----------
    pieces_run : int
        Pieces run after a sample (counted, for /twin/status).
    run_whole : int
        Reports run whole: handed over while the stream was not live (or waiting then), or
        the oldest of more than ``MAX_WAITING``.

    """

    def __init__(self, max_wait_s=0.05, clock=time.perf_counter):
        self.max_wait_s = float(max_wait_s)
        self._clock = clock
        self._jobs = deque()          # [generator, submitted at]
        self._last_end = -math.inf    # when the last sample's work ended
        self.period_s = None          # the robot's sample period (from its stamps), s
        self._rest = False            # a piece ran after the last sample
        self.pieces_run = 0
        self.run_whole = 0

    def counters(self):
        """Counters for /twin/status."""
        return {'reports.pieces_after_samples': self.pieces_run,
                'reports.run_whole': self.run_whole}

    @property
    def pending(self):
        """Count the reports with pieces still to run."""
        return len(self._jobs)

    def live(self, now):
        """Whether samples come now (so that pieces will find a sample to follow)."""
        period = self.period_s
        return period is not None and period <= MAX_PERIOD_S and \
            now - self._last_end < LIVE_S

    def submit(self, job):
        """
        Take a report (a generator yielding between its pieces) to run in pieces.

        Reports run in the order they come, one after the other. While the stream is not live
        the new one runs whole, at once (after any still waiting); so does the oldest when
        ``MAX_WAITING`` are waiting.
        """
        now = self._clock()
        if not self.live(now):
            self.flush()
            self._run_whole(job)
            return
        if len(self._jobs) >= MAX_WAITING:
            self._run_whole(self._jobs.popleft()[0])
        self._jobs.append([job, now])

    def flush(self):
        """Run every waiting report to its end."""
        while self._jobs:
            self._run_whole(self._jobs.popleft()[0])

    def _run_whole(self, job):
        self.run_whole += 1
        _run_to_end(job)

    def after_sample(self, started, period_s):
        """
        Run a piece, perhaps, now that a joint-state sample's work is done.

        ``started``: when that sample's work began (the same clock). ``period_s``: the robot's
        sample period as its stamps step, s (0 while not known yet: reports then run whole).
        The stamps, not the times the samples are taken: a twin that is behind (at its start,
        after a stall) takes its samples back to back, and a period learned from those read a
        100 Hz robot as one faster than 200 Hz, whose reports then ran in pieces (18 pieces
        in a clean-clone run of test_integration_loop, whose robot streams at 100 Hz).

        Runs one piece of the oldest waiting report when the sample was quick and did not
        come in a backlog, or when that report has waited ``max_wait_s``.
        """
        now = self._clock()
        gap = started - self._last_end
        self._last_end = now
        self.period_s = period_s if period_s > 0.0 else None
        if not self._jobs:
            return
        period = self.period_s
        if period is None:             # the stream's period was forgotten (it restarted)
            self.flush()
            return
        job = self._jobs[0]
        quiet = now - started < BUSY_SHARE * period and gap >= GAP_SHARE * period
        rest, self._rest = self._rest, False
        if (rest or not quiet) and now - job[1] < self.max_wait_s:
            return
        self._rest = True              # a sample without a piece after each piece
        self.pieces_run += 1
        try:
            next(job[0])
        except StopIteration:
            self._jobs.popleft()
        # (an exception of the report's own goes to the executor, as from its timer, and the
        # report is dropped)
        except BaseException:
            self._jobs.popleft()
            raise


def _run_to_end(job):
    for _ in job:
        pass
