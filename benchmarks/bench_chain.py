"""
The twin's per-sample Python chain without ROS: mirror, then anomaly and RUL monitors.

Feeds 30 s of a 1 kHz synthetic robot (the built-in arm's own dynamics and friction on the demo
motion, with sensor noise) to :class:`twin_sim.mirror.Mirror` and
:class:`twin_anomaly.pipeline.AnomalyPipeline` as the anomaly node does (a report every 20
samples, an RUL report every 1000), and prints the CPU time per sample of each, while
commissioning (the first 12 s: collecting and calibrating in line) and while monitoring.
What the twin process spends beyond these is rclpy, DDS, CDR and validation
(``benchmarks/bench_twin.py`` measures the whole process beside a robot).

Run (repository root): ``.venv/bin/python benchmarks/bench_chain.py [--seconds 30]``.
"""
import argparse
from pathlib import Path
import sys
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin_anomaly.pipeline import AnomalyPipeline  # noqa: E402
from twin_bridge.intake import RobotSample  # noqa: E402
from twin_sim import resources  # noqa: E402
from twin_sim.mirror import Mirror  # noqa: E402
from twin_sim.predictor import Predictor  # noqa: E402
from twin_sim.trajectory import DemoMotion  # noqa: E402
from twin_sim.urdf_model import RobotModel  # noqa: E402

COMMISSIONING_S = 10.0


def samples(model, seconds, rate_hz=1000.0):
    """Return RobotSamples of ``model`` on the demo motion, with sensor noise."""
    motion = DemoMotion.from_model(model, center=[0.0, 0.5, 0.0, -1.0, 0.0, 0.6, 0.0],
                                   fraction=0.3, period_s=3.0, fade_in_s=0.5)
    rng = np.random.default_rng(3)
    t = np.arange(1, int(seconds * rate_hz) + 1) / rate_hz
    q, qd, qdd = motion.sample(t)
    out = []
    for k in range(t.size):
        tau = model.inverse_dynamics(q[k], qd[k], qdd[k]) + model.friction_model.torque(qd[k])
        out.append(RobotSample(t[k], (0, 0), q[k] + 1e-4 * rng.standard_normal(model.n),
                               qd[k] + 1e-3 * rng.standard_normal(model.n),
                               tau + 0.05 * rng.standard_normal(model.n)))
    return out


def run(mirror, pipeline, seg):
    """Feed ``seg``; return (mirror us, pipeline us) of CPU time per sample."""
    tm = tp = 0.0
    for k, s in enumerate(seg):
        t0 = time.process_time()
        result = mirror.update(s.t, s.position, s.velocity, s.effort)
        t1 = time.process_time()
        pipeline.update(s, result, now=s.t + 0.001)
        if k % 20 == 0:
            pipeline.report()
        if k % 1000 == 0:
            pipeline.rul_report(1.8e9)
        t2 = time.process_time()
        tm += t1 - t0
        tp += t2 - t1
    return 1e6 * tm / len(seg), 1e6 * tp / len(seg)


def main():
    """Print the per-sample cost of the chain's parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--seconds', type=float, default=30.0)
    args = parser.parse_args()
    model = RobotModel.from_urdf(resources.builtin_urdf())
    pipeline = AnomalyPipeline(model, {'commissioning_duration_s': COMMISSIONING_S,
                                       'model_path': ''}, rul_log='')
    mirror = Mirror(Predictor(model))
    pipeline.model_listeners.append(lambda m: mirror.set_predictor(Predictor(m)))
    data = samples(model, args.seconds)
    split = int(1.2 * COMMISSIONING_S * 1000)
    for phase, seg in (('commissioning', data[:split]), ('monitoring', data[split:])):
        m_us, p_us = run(mirror, pipeline, seg)
        print(f'{phase:14s} {len(seg):6d} samples: mirror {m_us:6.1f} us, anomaly + RUL '
              f'{p_us:6.1f} us per sample (CPU time)')
    print(f'commissioned: {pipeline.monitor.commissioned}; final level '
          f'{pipeline.report().level}')
    pipeline.close()


if __name__ == '__main__':
    main()
