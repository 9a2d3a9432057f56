"""
How long the twin's input threads waited for a CPU: the twin's own starvation, not the robot's.

A sample's receive latency (receive time - stamp) grows when the robot's stream is late, and
also when the twin's computer is too busy to run the twin: the thread that takes the samples
(the executor's) or the middleware's receive threads were runnable but not running. Linux counts
that time for each thread (``/proc/self/task/<tid>/schedstat``: ns on a CPU, ns waiting on a run
queue, time slices). A thread asleep waiting for input is not on a run queue, so its run-queue
wait is the twin's own starvation only. :class:`RunQueueWait` sums it over the thread that calls
it (the executor's, which runs the subscription callbacks) and Fast DDS's receive threads
(``dds.shm.<port>``, ``dds.udp.<port>``) that carry traffic (woken ``ACTIVE_WAKEUPS_HZ`` times a
second or more: the robot's streams, not discovery); :meth:`twin_bridge.intake.RobotIntake.
sample` marks a sample taken after a long wait ``queued``, so that its latency is not taken for
the stream's. Each thread's file is kept open and re-read with one ``pread``.

Without /proc (not Linux) or without per-thread schedstat (a restricted container) the wait
reads 0 and one log line says that the check is off.
"""
import math
import os
import re
import threading

RESCAN_S = 1.0
"""The receive threads are looked up again this often, s (threads come and go)."""
RECEIVE_THREAD = re.compile(r'dds\.(shm|udp)\.[0-9]+$')
"""Names (``comm``) of Fast DDS's receive threads; its other threads (``dds.shm.wdog``,
``dds.ev.N``, ``dds.asyn.*``, ``dds.tls.*``) do not hand messages over."""
ACTIVE_WAKEUPS_HZ = 20.0
"""A receive thread is read only while it was woken at least this often over the last look
(a 50 Hz stream's is; the discovery traffic's, a few times a second, is not), or when it is new."""
_READ_ERRORS = (OSError, ValueError, IndexError)


class RunQueueWait:
    """
    Run-queue wait of the calling thread and of the process's DDS receive threads.

    Parameters
    ----------
    log : callable, optional
        ``log(text)``: told once, when the wait cannot be read (the check is then off).
    proc : str
        Root of the proc file system (a directory laid out like it, in tests).

    Attributes
    ----------
    off : bool
        Whether the wait cannot be read here (:meth:`waited_ns` always gives 0).

    """

    def __init__(self, log=None, proc='/proc'):
        self._tasks = os.path.join(proc, 'self', 'task')
        self._log = log
        self.off = False
        self._own = None            # [fd, wait ns at the last read] of the calling thread
        self._own_tid = None
        # tid -> [fd, wait ns at the last read, time slices at the last look, read], for every
        # DDS receive thread; those read are in _entries after the calling thread's
        self._receive = {}
        self._entries = []
        self._scanned = None        # when the receive threads were last looked up, s
        self._next_scan = -math.inf
        self._total_ns = 0

    def waited_ns(self, now):
        """
        Return the run-queue wait seen since the first call, ns (always 0 when :attr:`off`).

        Summed over the thread of the first call and the DDS receive threads that carry
        traffic, and never decreasing (a thread's wait counts from when it is read). ``now`` is
        the caller's reading of a steady clock, s (no clock read here): the receive threads
        are looked up again once ``RESCAN_S`` has passed on it. Never raises.
        """
        if now >= self._next_scan:
            self._scan(now)
        total = self._total_ns
        for entry in self._entries:
            try:
                value = int(os.pread(entry[0], 64, 0).split(None, 2)[1])
            except _READ_ERRORS:      # a thread that has ended: dropped at the next look
                self._next_scan = -math.inf
                continue
            total += value - entry[1]
            entry[1] = value
        self._total_ns = total
        return total

    def _scan(self, now):
        """Open the calling thread's schedstat (first use, another thread); find the others."""
        self._next_scan = now + RESCAN_S
        try:
            tid = threading.get_native_id()
            if tid != self._own_tid:
                if self._own is not None:
                    os.close(self._own[0])
                    self._own = None
                self._own, self._own_tid = self._open(tid)[:2], tid
            tids = os.listdir(self._tasks)
        except _READ_ERRORS as exc:
            if self._own is None:         # not readable here
                self._turn_off(exc)
            return
        span = None if self._scanned is None else max(now - self._scanned, 1e-3)
        self._scanned = now
        found = {}
        for name in tids:
            try:
                tid = int(name)
                entry = self._receive.get(tid)
                if entry is None:
                    with open(os.path.join(self._tasks, name, 'comm'), encoding='utf-8',
                              errors='replace') as f:
                        if not RECEIVE_THREAD.match(f.read().strip()):
                            continue
                    found[tid] = self._open(tid)          # new: read until the next look
                    continue
                _on_cpu, wait, slices = os.pread(entry[0], 64, 0).split(None, 3)[:3]
            except _READ_ERRORS:      # the thread ended while we looked
                continue
            if entry[3]:              # read since the last look: its wait up to now counts
                self._total_ns += int(wait) - entry[1]
            entry[1] = int(wait)
            entry[3] = span is None or int(slices) - entry[2] >= ACTIVE_WAKEUPS_HZ * span
            entry[2] = int(slices)
            found[tid] = entry
        for tid, entry in self._receive.items():
            if tid not in found:
                os.close(entry[0])
        self._receive = found
        self._entries = [self._own, *(e for e in found.values() if e[3])]

    def _open(self, tid):
        """Open a thread's schedstat; return ``[fd, wait ns, time slices, True]`` as of now."""
        fd = os.open(os.path.join(self._tasks, str(tid), 'schedstat'), os.O_RDONLY)
        try:
            _on_cpu, wait, slices = os.pread(fd, 64, 0).split(None, 3)[:3]
            return [fd, int(wait), int(slices), True]
        except _READ_ERRORS:
            os.close(fd)
            raise

    def _turn_off(self, exc):
        """Read 0 from now on, and say so once."""
        self.off = True
        self._next_scan = math.inf
        for entry in [self._own, *self._receive.values()]:
            if entry is not None:
                os.close(entry[0])
        self._own, self._entries, self._receive = None, [], {}
        if self._log is not None:
            self._log(f'run-queue wait unreadable ({exc}): the twin cannot tell samples it took '
                      'late because its computer starved it from a late robot stream; the '
                      'latency check leaves out only samples that waited behind others')
