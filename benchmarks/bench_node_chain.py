"""
The one-process twin's own work per robot sample, without DDS traffic in between.

Builds the twin's nodes as ``twin_container`` does for config/twin.yaml (bridge, mirror and
anomaly nodes, wired by function calls) and hands them serialized 1 kHz JointState and
WrenchStamped messages of a synthetic robot directly, as the executor would: CDR reading,
validation, prediction, residuals, CDR writing and publishing (to no subscriber), detector,
RUL monitor, and the 10 Hz reports and status. After commissioning (not timed) it prints the
CPU time per robot sample while monitoring, over chunks of 5 s of robot time: the minimum and
the median. This is the part of the twin's cost that is the project's own code;
``benchmarks/bench_twin.py`` measures the whole process beside a robot (DDS take and delivery
to real subscribers included), which is what the CPU budget of issue 13 is about. Free of the
robot stand-in and of DDS timing, the minimum moves little between runs (a few us): use it to
see what a change to the per-sample chain saves.

Run (repository root): ``.venv/bin/python benchmarks/bench_node_chain.py [--seconds 60]``.
"""
import argparse
import gc
import os
from pathlib import Path
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_twin.ros_env import free_domain_id, localhost_env  # noqa: E402

COMMISSIONING_S = 8.0
REPORT_EVERY = 100          # samples between anomaly reports and bridge status (10 Hz)
RUL_EVERY = 1000            # samples between RUL reports (1 Hz)
LATENCY_S = 0.0003          # receive time after the stamp
CHUNK = 5000                # samples timed together


def _synthetic(model, seconds):
    """Stamped JointState and WrenchStamped bytes of ``model`` on the demo motion, 1 kHz."""
    import numpy as np
    from robot_twin.nodes.cdr import JointStateWriter, WrenchWriter
    from twin_sim.predictor import Predictor
    from twin_sim.trajectory import DemoMotion
    motion = DemoMotion.from_model(model, center=[0.0, 0.5, 0.0, -1.0, 0.0, 0.6, 0.0][:model.n],
                                   fraction=0.3, period_s=3.0, fade_in_s=0.5)
    rng = np.random.default_rng(3)
    predictor = Predictor(model)
    joints, wrench = JointStateWriter(model.joint_names), WrenchWriter('ft_sensor')
    t0 = 1.8e9
    t = np.arange(1, int(seconds * 1000) + 1) / 1000.0
    q, qd, qdd = motion.sample(t)
    out = []
    for k in range(t.size):
        pred = predictor.predict(q[k], qd[k], qdd[k])
        stamp = t0 + t[k]
        sec = int(stamp)
        nanosec = int(round((stamp - sec) * 1e9))
        n = model.n
        js = joints.write(sec, nanosec, q[k] + 1e-4 * rng.standard_normal(n),
                          qd[k] + 1e-3 * rng.standard_normal(n),
                          pred.effort + 0.05 * rng.standard_normal(n))
        w = None if pred.wrench is None else \
            wrench.write(sec, nanosec, pred.wrench + 0.05 * rng.standard_normal(6))
        out.append((sec + nanosec * 1e-9, js, w))
    return out


def main():
    """Print the per-sample CPU time of the one-process twin's own chain."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--seconds', type=float, default=60.0,
                        help='robot time fed: commissioning (8 s and the calibration), then '
                             'the timed monitoring')
    args = parser.parse_args()
    import rclpy
    from robot_twin.nodes.container import factories
    from robot_twin.nodes.runner import make_executor

    workdir = tempfile.mkdtemp(prefix='bench_node_chain-')
    rclpy.init(args=[
        '--ros-args', '--params-file', str(ROOT / 'config' / 'twin.yaml'),
        '-p', f'twin_anomaly:commissioning_duration_s:={COMMISSIONING_S}',
        '-p', 'twin_anomaly:recommission:=true',
        '-p', f'twin_anomaly:thresholds_file:={os.path.join(workdir, "thresholds.yaml")}',
        '-p', f'twin_anomaly:rul.log_path:={os.path.join(workdir, "health.jsonl")}',
        '--log-level', 'warn'])
    nodes = []
    for make in factories([('twin_bridge', 'twin_bridge'), ('twin_sim', 'twin_sim'),
                           ('twin_anomaly', 'twin_anomaly')]):
        nodes.append(make(list(nodes)))
    bridge, _mirror, anomaly = nodes
    executor = make_executor()       # as in the twin: the nodes belong to an executor
    for node in nodes:
        executor.add_node(node)
    robot_input = bridge.input
    data = _synthetic(anomaly.model, args.seconds)
    clock = [0.0]
    robot_input._now = lambda: clock[0]     # the receive time: stamp + LATENCY_S
    bridge._now = lambda: clock[0]

    monitor = anomaly.monitor

    def feed(segment):
        cpu0 = time.process_time()
        for k, (stamp, js, w) in enumerate(segment):
            clock[0] = stamp + LATENCY_S
            robot_input.on_joint_state(js)
            if w is not None:
                robot_input.on_wrench(w)
            if k % REPORT_EVERY == 0:
                anomaly.publish()
                bridge.publish_status()
            if k % RUL_EVERY == 0:
                anomaly.publish_rul()
            if monitor.step == 'fit':
                time.sleep(0.001)     # the calibration fits in a thread, in real time
        return time.process_time() - cpu0

    # commissioning, until the twin monitors (not timed: it is a one-off)
    k = 0
    while not monitor.commissioned and k < len(data):
        feed(data[k:k + 1000])
        k += 1000
    if not monitor.commissioned:
        sys.exit(f'not commissioned after {k / 1000:.0f} s of robot time; give more --seconds')
    gc.freeze()                       # as the twin does once it is built
    chunks = [data[i:i + CHUNK] for i in range(k, len(data) - CHUNK + 1, CHUNK)]
    try:
        per_sample = sorted(1e6 * feed(chunk) / len(chunk) for chunk in chunks)
        print(f'monitoring: {len(chunks)} x {CHUNK} samples; CPU per robot sample (joint state '
              '+ wrench + 10 Hz reports; publishing to no subscriber): min '
              f'{per_sample[0]:.1f} us, median {per_sample[len(per_sample) // 2]:.1f} us; '
              f'final level {anomaly.pipeline.report().level}')
    finally:
        executor.shutdown()
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == '__main__':
    if not os.environ.get('_BENCH_NODE_CHAIN_ENV'):
        # the nodes are DDS participants: keep them on localhost, on a domain of their own,
        # with this interpreter's ROS libraries
        env = localhost_env(free_domain_id())
        env['_BENCH_NODE_CHAIN_ENV'] = '1'
        os.execve(sys.executable, [sys.executable] + sys.argv, env)
    main()
