"""
The HIL plant's timing: real-time deadline misses and jitter, and lock-step steps per second.

Separate processes on one private, localhost-only DDS domain:

1. Real time: the plant of config/hil.yaml (``step_mode: realtime``, ``--rate`` Hz, no faults)
   for ``--duration`` s, ``robot-twin record`` taking its /twin/plant_status. Printed from the
   last status: steps, deadline misses (a sample out a full period or more after its release;
   goal <= 0.1 %), lateness (jitter) p50/p99/max over the last 10,000 steps, the histogram,
   and the overruns (starved for more than 20 ms: it caught up without sending, ``dropped``).
2. Lock-step: the plant in ``step_mode: lockstep`` with a controller in another process
   (test/hil_controller.py: one /joint_command per sample), for ``--lockstep-s`` s of simulated
   time, /clock recorded. Steps per second = /clock messages over their log-time span.

Usage: ``.venv/bin/python benchmarks/bench_hil.py [--duration 60] [--rate 1000]
[--lockstep-s 10]``. Prints the load average before each part (the machine is shared).
"""
import argparse
import dataclasses
import os
from pathlib import Path
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_twin.bringup import start_graph  # noqa: E402
from robot_twin.graph import describe_graph  # noqa: E402
from robot_twin.hil_report import plant_status, timing  # noqa: E402
from robot_twin.replay import open_recording, read_messages  # noqa: E402
from robot_twin.ros_env import free_domain_id, localhost_env  # noqa: E402


def _plant(parameters):
    """Return the plant process of config/hil.yaml, ``parameters`` overriding the file's."""
    (process,) = describe_graph('hil').processes
    nodes = tuple(dataclasses.replace(n, parameters={**n.parameters, **parameters})
                  for n in process.nodes)
    return [dataclasses.replace(process, nodes=nodes)]


def _python(argv, env):
    env = dict(env, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, *argv], env=env, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _record(bag, domain, env, topics, duration=None):
    argv = ['-m', 'robot_twin', 'record', '--output', str(bag), '--localhost',
            '--domain-id', str(domain)] + (['--only'] if topics else [])
    for topic in topics:
        argv += ['--topic', topic]
    if duration is not None:
        argv += ['--duration', str(duration)]
    return _python(argv, env)


def _cpu_cores(pid, duration):
    """CPU of process ``pid`` (cores) over the middle of a run of ``duration`` s."""
    def cpu():
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
    time.sleep(duration * 0.25)
    c0, t0 = cpu(), time.monotonic()
    time.sleep(duration * 0.5)
    return (cpu() - c0) / (time.monotonic() - t0)


def realtime(args, workdir):
    """Run part 1; print and return the timing figures."""
    domain = free_domain_id()
    env = localhost_env(domain)
    print(f'real time, {args.rate:g} Hz, {args.duration:g} s, realtime_priority '
          f'{args.priority}; load average '
          f'{os.getloadavg()[0]:.2f}', flush=True)
    group = start_graph(_plant({'publish_rate_hz': args.rate, 'scenario': '',
                                'realtime_priority': args.priority}), env,
                        on_line=lambda name, line: None)
    try:
        bag = workdir / 'realtime'
        recorder = _record(bag, domain, env, [] if args.record_all else ['/twin/plant_status'],
                           args.duration)
        cores = _cpu_cores(recorder.pid, args.duration)
        out = recorder.communicate(timeout=args.duration + 120)[0]
        if args.record_all:
            print(f'  recorder (default topics: /joint_states, wrench and /clock of the plant '
                  f'at {args.rate:g} Hz): {cores:.2f} core')
        if recorder.returncode != 0:
            raise SystemExit(f'recorder failed:\n{out}')
    finally:
        group.stop()
    reader, _ = open_recording(bag)
    try:
        figures = timing(plant_status(reader, bag)[0])
    finally:
        reader.close()
    print(f"  steps {figures['steps']}, deadline misses {figures['deadline_misses']} "
          f"({100 * figures['miss_fraction']:.3f} %, goal <= 0.1 %), overruns "
          f"{figures['overruns']}")
    print(f"  lateness (jitter) over the last 10,000 steps: p50 {figures['jitter_p50_us']:.0f}"
          f" µs, p99 {figures['jitter_p99_us']:.0f} µs, max {figures['jitter_max_us']:.0f} µs")
    hist = figures['jitter_histogram']
    print('  histogram (lower edge µs: steps): ' + ', '.join(
        f'{e}: {c}' for e, c in zip(hist['lower_edges_us'], hist['counts']) if c))
    return figures


def lockstep(args, workdir):
    """Run part 2; print and return the steps per second."""
    domain = free_domain_id(os.getpid() + 1)
    env = localhost_env(domain)
    print(f'lock-step, {args.lockstep_s:g} s of simulated time at {args.rate:g} Hz; load '
          f'average {os.getloadavg()[0]:.2f}', flush=True)
    group = start_graph(_plant({'publish_rate_hz': args.rate, 'scenario': '',
                                'step_mode': 'lockstep', 'lockstep_timeout_s': 3600.0}), env,
                        on_line=lambda name, line: None)
    bag = workdir / 'lockstep'
    recorder = _record(bag, domain, env, ['/clock'])
    controller = None
    try:
        time.sleep(3.0)                     # the recorder subscribes before the first step
        controller = _python(['test/hil_controller.py', '--duration', str(args.lockstep_s),
                              '--rate-hz', str(args.rate), '--wait-subscribers', '1'], env)
        for line in controller.stdout:
            if line.startswith('DONE'):
                break
        else:
            raise SystemExit('the controller stopped before the end')
        time.sleep(1.0)
    finally:
        for proc in (controller, recorder):
            if proc is not None and proc.poll() is None:
                proc.send_signal(2)
                proc.communicate(timeout=60)
        group.stop()
    reader, _ = open_recording(bag)
    try:
        conns = [c for c in reader.connections if c.topic == '/clock']
        times = np.array([t for _c, t, _d in read_messages(reader, conns, bag)]) * 1e-9
    finally:
        reader.close()
    rate = (len(times) - 1) / (times[-1] - times[0])
    print(f'  {len(times)} steps in {times[-1] - times[0]:.2f} s of wall time: {rate:.0f} '
          f'steps/s ({rate / args.rate:.2f}x real time)')
    return rate


def main():
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--duration', type=float, default=60.0, help='real-time run, s')
    parser.add_argument('--rate', type=float, default=1000.0, help='plant rate, Hz')
    parser.add_argument('--lockstep-s', type=float, default=10.0,
                        help='lock-step run, s of simulated time')
    parser.add_argument('--priority', type=int, default=0,
                        help="the plant's realtime_priority (SCHED_FIFO; 0 = normal)")
    parser.add_argument('--record-all', action='store_true',
                        help='record the default topics in the real-time run and print the '
                             "recorder's CPU")
    parser.add_argument('--skip', choices=('realtime', 'lockstep'), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix='bench_hil_') as tmp:
        if args.skip != 'realtime':
            realtime(args, Path(tmp))
        if args.skip != 'lockstep':
            lockstep(args, Path(tmp))
    return 0


if __name__ == '__main__':
    sys.exit(main())
