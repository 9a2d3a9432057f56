"""
What-if jobs started from the hub: ``robot-twin whatif`` in a worker process, one at a time.

ROS-free. A job runs :func:`robot_twin.whatif.run_whatif` through its command line
(``python -m robot_twin.whatif_cli ... --output DIR``) in a process of its own at low CPU
priority (``nice`` 10, one worker), so that it can never take the twin's 1 kHz process's
place on the CPU, and its summary is read back from ``DIR/summary.json``. Only packaged
scenario names (config/whatif) are accepted: a request over the network never names a file.
Jobs queue up to ``max_queued``; :meth:`WhatIfJobs.poll` (called by the hub every fraction of a
second) starts the next one and collects finished ones into the :class:`~.state.TwinState`.
"""
import itertools
import json
import os
from pathlib import Path
import subprocess
import sys
import threading
import time

from twin_sim.resources import list_configs

RESULT_FILES = ('summary.json', 'samples.csv', 'run.json', 'torque_spread.png',
                'anomaly_score_hist.png', 'tracking_error_box.png', 'log.txt')
"""Files of a job's folder the API serves (nothing else is ever read from it)."""
NICE = 10


class JobRejected(ValueError):
    """A job request the hub refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def default_output_dir():
    """``~/.ros/robot_twin/whatif_jobs``: where jobs write unless configured otherwise."""
    return str(Path.home() / '.ros' / 'robot_twin' / 'whatif_jobs')


def _lower_priority():
    os.nice(NICE)


def _summary_digest(summary):
    """Return what a what-if summary shows at a glance: alarms, scores, torque p50 per joint."""
    metrics = summary.get('metrics', {})
    torque = metrics.get('torque_rms_nm', {})
    return {'scenario': summary.get('scenario'), 'samples': summary.get('samples'),
            'seed': summary.get('seed'), 'duration_s': summary.get('duration_s'),
            'alarms': summary.get('alarms'), 'max_score': summary.get('max_score'),
            'torque_rms_p50_nm': {j: s.get('p50') for j, s in torque.items()}}


class WhatIfJobs:
    """
    Queue and run what-if jobs; report them into ``state``.

    Parameters
    ----------
    state : robot_twin.hub.state.TwinState
        Where each job's dict goes (``update_job``).
    output_dir : str
        Parent folder of the jobs' result folders (created on the first job).
    max_samples : int
        Largest ``samples`` accepted.
    max_queued : int
        Jobs that may wait while one runs.
    urdf_path : str
        Robot of the jobs ('' = the built-in arm).
    python : str, optional
        Interpreter of the worker (default: this one).

    """

    def __init__(self, state, output_dir='', *, max_samples=64, max_queued=4, urdf_path='',
                 python=None):
        self.state = state
        self.output_dir = Path(output_dir or default_output_dir())
        self.max_samples = int(max_samples)
        self.max_queued = int(max_queued)
        self.urdf_path = urdf_path
        self.python = python or sys.executable
        self._ids = itertools.count(1)
        self._session = time.strftime('%Y%m%d-%H%M%S')
        self._queue = []
        self._running = None      # (job dict, Popen, log file)
        self._lock = threading.RLock()   # submit (API threads) vs poll (hub housekeeping)

    @staticmethod
    def scenarios():
        """Return the what-if scenario names a job may use (config/whatif)."""
        return list_configs('whatif')

    def submit(self, scenario, samples, seed=0):
        """
        Queue a job; return its dict.

        Raises
        ------
        JobRejected
            422 for an unknown scenario or a size out of range, 429 when the queue is full.

        """
        known = self.scenarios()
        if scenario not in known:
            raise JobRejected(422, f'unknown what-if scenario {scenario!r}; known: '
                                   f'{", ".join(known)}')
        if not 1 <= int(samples) <= self.max_samples:
            raise JobRejected(422, f'samples must be in 1..{self.max_samples} on this hub '
                                   f'(got {samples})')
        if int(seed) < 0:
            raise JobRejected(422, f'seed must be >= 0 (got {seed})')
        with self._lock:
            return self._enqueue(scenario, samples, seed)

    def _enqueue(self, scenario, samples, seed):
        waiting = len(self._queue)
        if waiting >= max(self.max_queued, 0) + (self._running is None):
            raise JobRejected(429, f'{waiting} what-if jobs are waiting already; try again '
                                   'when one has finished')
        job_id = f'{self._session}-{next(self._ids):03d}'
        job = {'id': job_id, 'scenario': scenario, 'samples': int(samples), 'seed': int(seed),
               'status': 'queued', 'submitted': time.time(), 'started': None,
               'finished': None, 'returncode': None, 'error': '', 'digest': None,
               'files': [], 'output_dir': str(self.output_dir / job_id)}
        self._queue.append(job)
        self.state.update_job(job)
        self._poll()
        return dict(job)

    def poll(self):
        """Collect a finished job and start the next queued one (call it periodically)."""
        with self._lock:
            self._poll()

    def _poll(self):
        if self._running is not None:
            job, proc, log = self._running
            code = proc.poll()
            if code is None:
                return
            log.close()
            self._finish(job, code)
            self._running = None
        if self._queue:
            self._start(self._queue.pop(0))

    def _start(self, job):
        out = Path(job['output_dir'])
        try:
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / 'log.txt', 'w', encoding='utf-8')
        except OSError as exc:
            job.update(status='failed', error=f'cannot create {out}: {exc}',
                       finished=time.time())
            self.state.update_job(job)
            return
        argv = [self.python, '-m', 'robot_twin.whatif_cli', '--scenario', job['scenario'],
                '--samples', str(job['samples']), '--seed', str(job['seed']),
                '--workers', '1', '--output', str(out), '--quiet']
        if self.urdf_path:
            argv += ['--urdf', self.urdf_path]
        env = dict(os.environ, OPENBLAS_NUM_THREADS='1', OMP_NUM_THREADS='1')
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_lower_priority, start_new_session=True)
        job.update(status='running', started=time.time(), pid=proc.pid)
        self._running = (job, proc, log)
        self.state.update_job(job)

    def _finish(self, job, code):
        out = Path(job['output_dir'])
        job.update(finished=time.time(), returncode=code,
                   files=[name for name in RESULT_FILES if (out / name).is_file()])
        job.pop('pid', None)
        try:
            summary = json.loads((out / 'summary.json').read_text(encoding='utf-8'))
            job.update(status='done' if code == 0 else 'failed',
                       digest=_summary_digest(summary))
        except (OSError, ValueError) as exc:
            job.update(status='failed', error=f'no summary ({exc})')
        if job['status'] == 'failed':
            tail = _tail(out / 'log.txt', 5)
            job['error'] = '; '.join(filter(None, [job['error'], tail]))
        self.state.update_job(job)

    def file_path(self, job_id, name):
        """Return the path of result file ``name`` of job ``job_id``; raise KeyError."""
        job = self.state.job(job_id)
        if name not in job.get('files', ()):
            raise KeyError(f'job {job_id} has no file {name!r}; it has {job.get("files")}')
        return Path(job['output_dir']) / name

    def stop(self):
        """Terminate a running job (the hub is shutting down); queued ones stay queued."""
        with self._lock:
            self._stop()

    def _stop(self):
        if self._running is not None:
            job, proc, log = self._running
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
                try:
                    proc.wait(5.0)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
            log.close()
            job.update(status='failed', error='the hub stopped', finished=time.time())
            self.state.update_job(job)
            self._running = None


def _tail(path, lines):
    try:
        text = path.read_text(encoding='utf-8', errors='replace').strip().splitlines()
    except OSError:
        return ''
    return ' | '.join(text[-lines:])
