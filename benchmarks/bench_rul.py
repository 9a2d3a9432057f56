"""
Cost of the RUL monitor in the twin's 1 kHz path (7 joints), and of its reports.

Prints:
- ``update()`` time per robot sample at 1 kHz: median, mean, p99 and max, in microseconds
  (with ``sample_period_s`` 5 ms four of five calls are one comparison; the fifth copies the
  sample into the buffer);
- the same with the buffer left to fill (no reports: ``update()`` processes it itself);
- ``report()`` time at 1 Hz: median (a report that only works through the buffer) and max
  (one that closes a health epoch: friction fit, health log write with fsync, RUL of every
  joint and kind);
- the CPU time of ``update()`` + ``report()`` per simulated second, i.e. the share of a core the
  monitor takes at 1 kHz (process time, so other load on the machine does not count).
The stream is synthetic: velocities of a moving arm and a residual with growing friction on
one joint, so reports carry RUL numbers.

Run: ``.venv/bin/python benchmarks/bench_rul.py [--seconds S]``.
"""
import argparse
import tempfile
import time

import numpy as np
from twin_anomaly.rul_monitor import RulMonitor
from twin_sim.friction import FrictionModel, viscous_coulomb

RATE = 1000.0
N = 7


def stream(seconds, seed=0):
    """Velocities (rad/s) and residuals (N·m) of a moving arm; joint 0 wears."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, seconds, 1.0 / RATE)
    periods = 3.0 + np.arange(N)
    qd = 0.5 * np.sin(2.0 * np.pi * t[:, None] / periods + np.arange(N))
    added = np.zeros_like(qd)
    added[:, 0] = 0.01 * np.maximum(t - seconds / 3.0, 0.0)
    res = viscous_coulomb(qd, 0.0, added) + 0.05 * rng.standard_normal(qd.shape)
    effort = 20.0 * np.sin(t)[:, None] + res
    return t, qd, effort, res


def _monitor(log_dir, **overrides):
    config = {'health_interval_s': 10.0, 'baseline_duration_s': 30.0, 'min_history_s': 30.0,
              'time_scale': 3600.0, 'log_path': f'{log_dir}/health.jsonl', **overrides}
    names = [f'joint{i + 1}' for i in range(N)]
    friction = FrictionModel(names, viscous=[0.5] * N, coulomb=[0.8] * N)
    return RulMonitor(names, [100.0] * N, friction, config)


def cpu_share(seconds):
    """Process CPU seconds of update() + report() (1 Hz) per second of 1 kHz samples."""
    t, qd, effort, res = stream(seconds)
    every = int(RATE)
    with tempfile.TemporaryDirectory() as tmp:
        mon = _monitor(tmp)
        start = time.process_time()
        for k in range(t.size):
            mon.update(t[k], None, qd[k], effort[k], res[k])
            if (k + 1) % every == 0:
                mon.report(1.8e9 + t[k])
        used = time.process_time() - start
        start = time.process_time()
        for k in range(t.size):            # the loop itself, to subtract
            (t[k], None, qd[k], effort[k], res[k])
        loop = time.process_time() - start
        mon.close()
    return (used - loop) / seconds


def run(seconds, report_every_s, **overrides):
    """Return (update times ns, report times ns, last report)."""
    t, qd, effort, res = stream(seconds)
    clock = time.perf_counter_ns
    updates = np.empty(t.size)
    reports = []
    every = int(report_every_s * RATE) if report_every_s else 0
    last = None
    with tempfile.TemporaryDirectory() as tmp:
        mon = _monitor(tmp, **overrides)
        for k in range(t.size):
            start = clock()
            mon.update(t[k], None, qd[k], effort[k], res[k])
            updates[k] = clock() - start
            if every and (k + 1) % every == 0:
                start = clock()
                last = mon.report(1.8e9 + t[k])
                reports.append(clock() - start)
        mon.close()
    return updates, np.array(reports), last


def _us(ns):
    return ns / 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seconds', type=float, default=120.0,
                        help='simulated seconds of 1 kHz samples (default 120)')
    args = parser.parse_args()
    updates, reports, last = run(args.seconds, 1.0)
    print(f'update() at 1 kHz, 7 joints, reports at 1 Hz ({updates.size} samples):')
    print(f'  median {_us(np.median(updates)):.2f} us  mean {_us(updates.mean()):.2f} us  '
          f'p99 {_us(np.quantile(updates, 0.99)):.2f} us  max {_us(updates.max()):.1f} us')
    print(f'report() at 1 Hz: median {_us(np.median(reports)):.0f} us  '
          f'p99 {_us(np.quantile(reports, 0.99)):.0f} us  max {_us(reports.max()):.0f} us')
    lazy, _, _ = run(args.seconds, 0.0)
    print('update() without reports (the full buffer is processed inside update):')
    print(f'  median {_us(np.median(lazy)):.2f} us  mean {_us(lazy.mean()):.2f} us  '
          f'p99 {_us(np.quantile(lazy, 0.99)):.2f} us  max {_us(lazy.max()):.0f} us')
    share = cpu_share(args.seconds)
    print(f'CPU of update() + report() at 1 kHz / 1 Hz: {share * 100:.2f} % of a core '
          f'({share * 1e3:.2f} us per sample, amortized)')
    j = last.joints[0]
    print(f'last report, joint1: RUL {j.rul_hours:.1f} h [{j.rul_lower_hours:.1f}, '
          f'{j.rul_upper_hours:.1f}], health {j.health_index:.2f}, {j.level}, '
          f'{j.recommended_action}')


if __name__ == '__main__':
    main()
