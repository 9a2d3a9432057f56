"""
Cost and false-alarm margin of twin_anomaly's ResidualDetector (7 joints, 1 kHz).

Prints:
- ``update()`` time per sample: median (a sample that only adds to the block sums), mean
  (including the statistics step once per 20 ms block) and p99, in microseconds;
- ``report()`` time (called at the publishing rate, e.g. 50 Hz);
- the one-off cost of the sample that ends commissioning (thresholds learned from 30 s);
- the largest robot score on nominal data after commissioning (alarm at 1.0), over seeds.

Run: ``.venv/bin/python benchmarks/bench_detector.py [--seeds N]``.
"""
import argparse
import math
import time

import numpy as np
from scipy.signal import lfilter

from twin_anomaly.detector import ResidualDetector

RATE = 1000.0
JOINTS = [f'joint{i + 1}' for i in range(7)]


def stream(seed, seconds, n=len(JOINTS)):
    """Nominal residuals: white noise + AR(1) model mismatch (50 ms) on the effort."""
    rng = np.random.default_rng(seed)
    m = int(seconds * RATE)
    t = np.arange(m) / RATE
    pole = math.exp(-1.0 / (0.05 * RATE))
    eff = rng.normal(0.0, 0.05, (m, n)) + 0.2 + lfilter(
        [math.sqrt(1 - pole ** 2)], [1.0, -pole], rng.normal(0.0, 0.03, (m, n)), axis=0)
    return (t, rng.normal(0.0, 1e-4, (m, n)), rng.normal(0.0, 2e-3, (m, n)), eff,
            np.hstack([rng.normal(0.0, 0.3, (m, 3)), rng.normal(0.0, 0.02, (m, 3))]),
            0.6 * np.sin(2.0 * np.pi * t[:, None] / (3.0 + np.arange(n)) + np.arange(n)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', type=int, default=4,
                        help='nominal 60 s runs for the false-alarm margin (default 4)')
    args = parser.parse_args()

    t, pos, vel, eff, wrench, velocity = stream(0, 32.0 + 20.0)
    det = ResidualDetector(JOINTS)
    clock = time.perf_counter_ns
    finish_ns = 0
    for i in range(32000):
        start = clock()
        det.update(t[i], pos[i], vel[i], eff[i], wrench[i], velocity[i])
        if det.commissioned and not finish_ns:
            finish_ns = clock() - start
    samples = np.empty(20000)
    reports = []
    for k, i in enumerate(range(32000, 52000)):
        start = clock()
        det.update(t[i], pos[i], vel[i], eff[i], wrench[i], velocity[i])
        samples[k] = clock() - start
        if k % 20 == 0:
            start = clock()
            det.report()
            reports.append(clock() - start)
    us = samples / 1e3
    print(f'update() 7 joints + wrench + velocity, {len(us)} samples: median '
          f'{np.median(us):.1f} us, mean {us.mean():.1f} us, p99 {np.percentile(us, 99):.1f} us, '
          f'max {us.max():.1f} us')
    print(f'report(): median {np.median(reports) / 1e3:.1f} us')
    print(f'end of commissioning (learn thresholds from 30 s): {finish_ns / 1e6:.1f} ms once')

    worst = []
    for seed in range(1, args.seeds + 1):
        t, pos, vel, eff, wrench, velocity = stream(seed, 90.0)
        det = ResidualDetector(JOINTS)
        top, alarms = 0.0, 0
        for i in range(len(t)):
            alarms += det.update(t[i], pos[i], vel[i], eff[i], wrench[i], velocity[i])
            if det.commissioned and i % 20 == 0:
                top = max(top, det.report().score)
        worst.append(top)
        print(f'nominal seed {seed}: 60 s monitored, alarm samples {alarms}, '
              f'max robot score {top:.2f} (alarm at 1.0)')
    print(f'largest nominal score over {len(worst)} seeds: {max(worst):.2f}')


if __name__ == '__main__':
    main()
