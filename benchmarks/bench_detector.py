"""
Cost per sample of the anomaly monitor (the node's detectors) on a 7-joint arm at 1 kHz.

The stream is the built-in arm's own inverse dynamics along a smooth motion plus white noise
(no physics engine: only the monitor is timed). Prints, for
:class:`twin_anomaly.monitor.AnomalyMonitor` after commissioning (30 s, calibrated):

- ``update()`` per sample: median, mean (with the block step every 20 ms), p99, max, in
  microseconds of wall time and of the thread's CPU time (CPU time is what the budget of the
  one-process twin counts, and it is less disturbed by other processes on a busy computer);
- its parts: momentum observer, sensor checks, the block step (fused detector);
- ``report()`` without and with an alarm (the latter classifies with the packaged ONNX model),
  and what it costs per robot sample at 50 Hz;
- the one-off cost of the sample that ends the collect step (calibration fit, synchronous
  here; the node fits in a worker thread) and of the one that ends commissioning;
- for comparison, the legacy :class:`twin_anomaly.detector.ResidualDetector` (what-if runs,
  ``robot-twin commission``) per sample.

Run: ``.venv/bin/python benchmarks/bench_detector.py``.
"""
import argparse
from pathlib import Path
import sys
import time

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin_anomaly.detector import ResidualDetector  # noqa: E402
from twin_anomaly.monitor import AnomalyMonitor, MonitorConfig  # noqa: E402
from twin_bridge.intake import RobotSample  # noqa: E402
from twin_sim import resources  # noqa: E402
from twin_sim.trajectory import DemoMotion  # noqa: E402
from twin_sim.urdf_model import RobotModel  # noqa: E402

RATE = 1000.0


def stream(model, seconds, seed=0, offset_after=None):
    """Return RobotSamples of the model moving (own dynamics and friction) with noise."""
    motion = DemoMotion.from_model(model, center=[0.0, 0.5, 0.0, -1.0, 0.0, 0.6, 0.0],
                                   fraction=0.35, period_s=4.0, fade_in_s=1.0)
    rng = np.random.default_rng(seed)
    t = np.arange(1, int(seconds * RATE) + 1) / RATE
    q, qd, qdd = motion.sample(t)
    tau = np.array([model.inverse_dynamics(q[k], qd[k], qdd[k]) for k in range(t.size)])
    tau += model.friction_model.torque(qd) + 0.05 * rng.standard_normal(tau.shape)
    if offset_after is not None:
        tau[t >= offset_after, 2] += 4.0
    q += 1e-4 * rng.standard_normal(q.shape)
    qd += 1e-3 * rng.standard_normal(qd.shape)
    return [RobotSample(t[k], (0, 0), q[k], qd[k], tau[k]) for k in range(t.size)]


def timed(function, items):
    """Wall and thread-CPU time of ``function(item)`` per item, microseconds (2 arrays)."""
    wall = np.empty(len(items))
    cpu = np.empty(len(items))
    for i, item in enumerate(items):
        w0, c0 = time.perf_counter_ns(), time.thread_time_ns()
        function(item)
        cpu[i] = time.thread_time_ns() - c0
        wall[i] = time.perf_counter_ns() - w0
    return wall / 1e3, cpu / 1e3


def line(name, us):
    return (f'{name:<34} median {np.median(us):7.1f}  mean {us.mean():7.1f}  '
            f'p99 {np.percentile(us, 99):8.1f}  max {us.max():9.1f} us')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--seconds', type=float, default=20.0,
                        help='monitored seconds timed (default 20)')
    args = parser.parse_args()
    model = RobotModel.from_urdf(resources.builtin_urdf())
    commissioning = 30.0
    samples = stream(model, commissioning + args.seconds + 2.0,
                     offset_after=commissioning + args.seconds)
    monitor = AnomalyMonitor(model, MonitorConfig(commissioning_duration_s=commissioning))
    one_off = {}
    for sample in samples[:int((commissioning + 0.5) * RATE)]:
        step = monitor.step
        w0 = time.perf_counter()
        monitor.update(sample)
        if monitor.step != step:
            one_off[f'{step} -> {monitor.step}'] = time.perf_counter() - w0
    monitor.report()
    events = monitor.poll_events()
    calibration = next(e for e in events if e['kind'] == 'calibration_finished')
    print(f'built-in arm, 7 joints + stream checks, {RATE:.0f} Hz; calibration '
          f'{"accepted" if calibration["accepted"] else "not used"}')
    for key, seconds in one_off.items():
        print(f'one-off sample that ends {key}: {1e3 * seconds:.0f} ms')
    monitored = samples[int((commissioning + 0.5) * RATE):int((commissioning + args.seconds)
                                                              * RATE)]
    wall, cpu = timed(monitor.update, monitored)
    print(line('update() wall', wall))
    print(line('update() thread CPU', cpu))
    obs = monitor.observer
    print(line('  momentum observer (CPU)', timed(
        lambda s: obs.update(s.t + 100.0, s.position, s.velocity, s.effort), monitored)[1]))
    checks = monitor.checks.__class__(model.n)
    print(line('  sensor checks (CPU)', timed(
        lambda s: checks.update(s.t, s.position, s.velocity, s.effort), monitored)[1]))
    fused = monitor.fused
    x = monitor._x.copy()
    stamps = fused.stamp + 0.02 * np.arange(1, 1001)
    print(line('  block step, per block (CPU)', timed(lambda t: fused.update(t, x), stamps)[1]))
    quiet = timed(lambda _: monitor.report(), range(500))[1]
    for sample in samples[int((commissioning + args.seconds) * RATE):]:
        monitor.update(sample)
    state = monitor.report()
    # while alarmed, each report classifies the evidence of the newest block once
    classify = timed(lambda _: monitor.classifier.classify(monitor.evidence()), range(200))[1]
    alarmed = timed(lambda _: monitor.report(), range(200))[1] + np.mean(classify)
    print(line('report() no alarm (CPU)', quiet))
    print(line('  classification: evidence + ONNX (CPU)', classify))
    print(line(f'report() alarm, {state.fault_type} (CPU)', alarmed))
    print(f'per robot sample at 50 Hz reports: {np.mean(quiet) / 20:.1f} us (no alarm), '
          f'{np.mean(alarmed) / 20:.1f} us (alarm, classifying)')
    print(f'update + report while alarmed: {np.mean(cpu) + np.mean(alarmed) / 20:.1f} us CPU '
          f'per sample')

    legacy = ResidualDetector(model.joint_names, commissioning_duration_s=5.0)
    rows = [(s.t, s.position * 0.0, s.velocity * 0.0, s.effort * 0.01) for s in samples[:15000]]
    for row in rows[:6000]:
        legacy.update(*row)
    print(line('legacy ResidualDetector.update (CPU)',
               timed(lambda r: legacy.update(*r), rows[6000:])[1]))


if __name__ == '__main__':
    main()
