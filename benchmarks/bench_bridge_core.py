"""
Per-message cost of the bridge's hot path (validation + mapping), ROS-free.

Messages look like what rclpy hands a JointState callback: ``name`` a list of new str objects
each message, ``position``/``velocity``/``effort`` as ``array.array('d')``. Prints the median
and p99 time per message in microseconds for:

- validation + mapping of a 7-joint message (the budget: well under 20 µs at 1 kHz),
- the same plus the staleness watchdog and time-sync bookkeeping (the node's whole core work),
- arm (7) and gripper (2) joints arriving on alternating messages,
- one governed command (not on the per-sample path; for reference).

Run: ``.venv/bin/python benchmarks/bench_bridge_core.py``
"""
import array
import statistics
import time

import numpy as np

from twin_bridge.governor import JointCommand, JointLimits, SafetyGovernor
from twin_bridge.mapping import JointMapper
from twin_bridge.timesync import TimeSync
from twin_bridge.validation import JointStateValidator
from twin_bridge.watchdog import StalenessWatchdog

N_MESSAGES = 20000
ARM = [f'panda_joint{i}' for i in range(1, 8)]
GRIPPER = ['panda_finger_joint1', 'panda_finger_joint2']


def messages(layouts, n, rng):
    """Pre-build n rclpy-like messages cycling through ``layouts`` (lists of names)."""
    out = []
    for k in range(n):
        names = layouts[k % len(layouts)]
        m = len(names)
        stamp = 1.7e9 + k * 1e-3
        out.append((
            [''.join(list(s)) for s in names],           # fresh string objects, as rclpy
            array.array('d', rng.uniform(-1.0, 1.0, m)),
            array.array('d', rng.uniform(-1.0, 1.0, m)),
            array.array('d', rng.uniform(-10.0, 10.0, m)),
            stamp, stamp + 3e-4 + 1e-4 * rng.random()))
    return out


def time_per_message(fn, msgs):
    clock = time.perf_counter_ns
    samples = []
    for msg in msgs:
        t0 = clock()
        fn(msg)
        samples.append(clock() - t0)
    samples.sort()
    return statistics.median(samples) / 1e3, samples[int(0.99 * len(samples))] / 1e3


def report(label, fn, msgs, warmup=2000):
    time_per_message(fn, msgs[:warmup])                # warm-up on the first messages
    med, p99 = time_per_message(fn, msgs[warmup:])     # later stamps: still in order
    print(f'{label:58s} median {med:6.2f} us   p99 {p99:6.2f} us')
    return med


def main():
    rng = np.random.default_rng(0)
    model = ARM + GRIPPER
    print(f'{N_MESSAGES} messages per case; times per message (perf_counter_ns around the call)')

    validator = JointStateValidator(model)
    mapper = JointMapper(model)

    def validate_map(msg):
        names, pos, vel, eff, stamp, now = msg
        if validator.validate(names, pos, vel, eff, stamp, now) is None:
            mapper.update(names, pos, vel, eff, stamp)

    med = report('validation + mapping, 7 joints', validate_map,
                 messages([ARM], N_MESSAGES + 2000, rng))
    assert validator.counters['rejected'] == 0

    validator.reset()
    mapper.reset()
    watchdog = StalenessWatchdog(0.1, streams=['joint_states'])
    sync = TimeSync()

    def whole_core(msg):
        names, pos, vel, eff, stamp, now = msg
        if validator.validate(names, pos, vel, eff, stamp, now) is None:
            mapper.update(names, pos, vel, eff, stamp)
            watchdog.observe('joint_states', now, stamp)
            sync.observe(stamp, now)

    report('validation + mapping + watchdog + timesync, 7 joints', whole_core,
           messages([ARM], N_MESSAGES + 2000, rng))

    validator.reset()
    mapper.reset()
    report('validation + mapping, arm/gripper alternating (7 | 2)', validate_map,
           messages([ARM, GRIPPER], N_MESSAGES + 2000, rng))
    assert validator.counters['rejected'] == 0 and mapper.all_received

    n = len(model)
    limits = JointLimits(tuple(model), -np.ones(n) * 2.8, np.ones(n) * 2.8, np.ones(n) * 2.0,
                         np.ones(n) * 80.0)
    gov = SafetyGovernor(limits, max_rate_hz=1e6, position_margin_rad=0.05)
    cur = np.zeros(n)
    cmds = [JointCommand('position', rng.uniform(-3.0, 3.0, n)) for _ in range(N_MESSAGES + 2000)]
    times = iter(range(10 ** 9))
    report('governor, one position command (for reference)',
           lambda c: gov.govern(c, next(times) * 1e-3, True, cur), cmds)
    print(f'validation + mapping budget: {med:.2f} us of 20 us '
          f'({"within" if med < 20.0 else "OVER"} budget)')


if __name__ == '__main__':
    main()
