"""
Replay speed: robot seconds per wall second of ``robot-twin replay`` on a 7-joint 1 kHz recording.

The recording is made the way test/bag_testing.py makes the tests' ones: the plant (built-in
7-joint arm, 1 kHz, the demo motion at 100 Hz) for ``--duration`` s, written as rosbag2 MCAP
(JointState + WrenchStamped, 1 kHz each). Then, each ``--repeats`` times, the median printed:

- ``replay``: :func:`robot_twin.replay.replay` end to end (goal: >= 20x real time);
- the parts, on the messages decoded once beforehand: reading + decoding the bag, the intake
  (validation, mapping), + the mirror, + the anomaly monitor (the whole chain), so that where
  the time goes is visible.

Usage: ``.venv/bin/python benchmarks/bench_replay.py [--duration 30] [--repeats 3]``; one core
(taskset it to pin). Prints the load average at the start (the machine is shared).
"""
import argparse
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'test'))

from bag_testing import simulate, write_bag  # noqa: E402
from robot_twin.replay import _Decoder, JOINT_STATE, open_recording, read_messages, \
    replay, twin_parameters, TwinChain  # noqa: E402

CONFIG = """
robot_twin:
  ros__parameters:
    nodes: [twin_bridge, twin_sim, twin_anomaly]
/**/twin_anomaly:
  ros__parameters:
    commissioning_duration_s: 10.0
    model_path: rules                  # the rule classifier (the ONNX model costs more)
"""


def decoded_messages(bag):
    """Read and decode every joint state and wrench once; return (list, seconds)."""
    reader, _ = open_recording(bag)
    try:
        decoder = _Decoder(reader)
        start = time.perf_counter()
        out = []
        for conn, log_ns, data in read_messages(reader, reader.connections, bag):
            if conn.topic == '/joint_states':
                out.append((True, log_ns * 1e-9, decoder.joint_state(data)))
            elif conn.topic == '/ft_sensor/wrench':
                out.append((False, log_ns * 1e-9, decoder.wrench(data)))
        return out, time.perf_counter() - start
    finally:
        reader.close()


def chain_seconds(messages, params, stage):
    """Feed the decoded messages through the chain up to ``stage``; return seconds."""
    chain = TwinChain(params, with_wrench=True)
    if stage == 'intake':
        chain.mirror.update = lambda *a: None
        chain.mirror.wrench_residual = lambda *a: None
    if stage in ('intake', 'mirror'):
        chain.monitor.update = lambda *a, **k: None
        chain.monitor.wrench = lambda *a: None
    start = time.perf_counter()
    next_report, period = None, chain.report_period_s
    for is_joint, now, parsed in messages:
        if is_joint:
            sec, nanosec, names, pos, vel, eff = parsed
            sample = chain.joint_state((sec, nanosec), names, pos, vel, eff, now)
            if stage == 'monitor' and sample is not None and not isinstance(sample, str):
                if next_report is None:
                    next_report = sample.t + period
                elif sample.t >= next_report:
                    chain.report()
                    next_report += period
        else:
            chain.wrench(parsed[:2], parsed[2], now)
    return time.perf_counter() - start


def main():
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--duration', type=float, default=30.0, help='recording length, s')
    parser.add_argument('--repeats', type=int, default=3)
    args = parser.parse_args()
    print(f'load average {os.getloadavg()[0]:.2f}; cores allowed '
          f'{len(os.sched_getaffinity(0))}', flush=True)
    with tempfile.TemporaryDirectory(prefix='bench_replay_') as tmp:
        bag = write_bag(Path(tmp) / 'run', simulate(args.duration))
        config = Path(tmp) / 'replay.yaml'
        config.write_text(CONFIG)
        params = twin_parameters(str(config))
        full = [None] * args.repeats
        for k in range(args.repeats):
            start = time.perf_counter()
            replay(bag, config=str(config))
            full[k] = time.perf_counter() - start
        messages, read_s = decoded_messages(bag)
        parts = {stage: statistics.median(chain_seconds(messages, params, stage)
                                          for _ in range(args.repeats))
                 for stage in ('intake', 'mirror', 'monitor')}
    wall = statistics.median(full)
    print(f'{args.duration:g} s of a 7-joint 1 kHz recording ({JOINT_STATE} + wrench): '
          f'replay {wall:.2f} s wall = {args.duration / wall:.1f}x real time '
          f'(goal >= 20x); {1e6 * wall / (args.duration * 1000):.0f} µs per robot sample')
    per = 1e6 / (args.duration * 1000)
    print(f'  read + decode the bag      {read_s * per:6.1f} µs per sample')
    print(f'  intake (validate, map)     {parts["intake"] * per:6.1f} µs')
    print(f'  + mirror                   {parts["mirror"] * per:6.1f} µs')
    print(f'  + anomaly monitor, reports {parts["monitor"] * per:6.1f} µs')
    return 0


if __name__ == '__main__':
    sys.exit(main())
