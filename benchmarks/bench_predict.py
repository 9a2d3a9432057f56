"""
Time the twin's per-sample predict step on the built-in 7-DoF arm.

One step is ``Predictor.predict`` (RNEA + friction + FT wrench) plus ``Predictor.residual``;
the figures are wall-clock microseconds per step over random states within the joint limits.
A second figure times ``next_state`` (ABA + semi-implicit Euler).

Usage: ``.venv/bin/python benchmarks/bench_predict.py [--samples N]``
"""
import argparse
from pathlib import Path
import time

import numpy as np

from twin_sim.predictor import Predictor
from twin_sim.urdf_model import Payload, RobotModel

URDF = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'


def _states(model, samples, rng):
    q = rng.uniform(model.lower, model.upper, (samples, model.n))
    qd = rng.uniform(-model.velocity_limit, model.velocity_limit, (samples, model.n))
    qdd = rng.uniform(-5.0, 5.0, (samples, model.n))
    return q, qd, qdd


def _report(name, times_s):
    us = np.asarray(times_s) * 1e6
    print(f'{name:<34s} median {np.median(us):6.1f} us   p99 {np.percentile(us, 99):6.1f} us'
          f'   max {us.max():7.1f} us   (n={us.size})')


def main():
    """Run the benchmark and print median and p99 microseconds per step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=20000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    model = RobotModel.from_urdf(URDF)
    predictor = Predictor(model, payload=Payload(1.5, [0.0, 0.0, 0.08], np.eye(3) * 2e-3))
    q, qd, qdd = _states(model, args.samples, rng)
    effort = rng.normal(size=(args.samples, model.n))
    wrench = rng.normal(size=(args.samples, 6))
    clock = time.perf_counter
    for i in range(min(1000, args.samples)):  # warm-up
        predictor.residual(effort[i], wrench[i], predictor.predict(q[i], qd[i], qdd[i]))
    step = np.empty(args.samples)
    for i in range(args.samples):
        t0 = clock()
        prediction = predictor.predict(q[i], qd[i], qdd[i])
        predictor.residual(effort[i], wrench[i], prediction)
        step[i] = clock() - t0
    nxt = np.empty(args.samples)
    for i in range(args.samples):
        t0 = clock()
        predictor.next_state(q[i], qd[i], effort[i], 1e-3)
        nxt[i] = clock() - t0
    print(f'robot_twin predict step, {model.n}-DoF built-in arm ({URDF.name}), with payload and '
          'FT sensor')
    _report('predict + residual (ID+fric+FT)', step)
    _report('next_state (ABA + Euler)', nxt)


if __name__ == '__main__':
    main()
