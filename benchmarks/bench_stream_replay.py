"""
The anomaly monitor on recorded robot stand-in streams, offline: is a late robot a fault.

``bench_twin.py --keep DIR`` keeps, for every run, the robot stand-in's published stamps and how
late each was (``*-pub-*.npz``). The stand-in computes each sample from its motion at the
planned time, or at the stamp when it was more than 20 us late; this script recomputes exactly
those samples (no sensor noise: the stand-in has none) and feeds them, with their stamps, to an
:class:`~twin_anomaly.monitor.AnomalyMonitor` (commissioning on the first seconds, with or
without calibration, without the wrench; receive time = stamp + 0.3 ms). It counts the reports
at ERROR and the samples the stream checks counted missing, against the samples the stand-in
really skipped (it skips, rather than bursts, once more than 20 periods behind: read from its
deadlines, stamp minus lateness). The same recordings through another code tree (``--code``,
e.g. a worktree of an older commit) compare two versions of the detector on identical input,
free of the run-to-run spread of a live run. What it leaves out of a live twin (the timing of
the calibration's fit in its thread, the receive times, the mirror) can matter: alarms seen
live are not always reproduced here.

Run (repository root): ``.venv/bin/python benchmarks/bench_stream_replay.py KEEP_DIR ...
[--code TREE] [--commissioning-s 8] [--calibration]``.
"""
import argparse
import glob
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(code):
    """Import the monitor and the stand-in's motion from the repository ``code``."""
    sys.path[:0] = [code, os.path.join(code, 'benchmarks'), HERE]
    from _robot_stream import RobotMotion
    from twin_anomaly.monitor import AnomalyMonitor, MonitorConfig
    from twin_bridge.intake import RobotSample
    from twin_sim.resources import builtin_urdf
    from twin_sim.urdf_model import RobotModel
    return RobotMotion, AnomalyMonitor, MonitorConfig, RobotSample, RobotModel, builtin_urdf


def replay(path, commissioning_s, modules, calibrate=False, thresholds=None):
    """Return (samples, late p99 ms, ERROR reports, missing, skipped, first alarms)."""
    RobotMotion, AnomalyMonitor, MonitorConfig, RobotSample, RobotModel, builtin_urdf = modules
    model = RobotModel.from_urdf(builtin_urdf())
    motion = RobotMotion(model)
    data = np.load(path)
    stamp = data['stamp_ns'] * 1e-9
    late = data['late_ns']
    # what the stand-in sampled: the planned time, or the stamp when more than 20 us late
    sampled = np.where(late > 20_000, stamp, stamp - late * 1e-9) - stamp[0]
    deadlines = data['stamp_ns'] - late
    skipped = int(np.sum(np.round(np.diff(deadlines) / int(data['period_ns'])) - 1))
    monitor = AnomalyMonitor(model, MonitorConfig(commissioning_duration_s=commissioning_s,
                                                  calibration=calibrate,
                                                  calibrate_in_background=False),
                             thresholds_file=thresholds, recommission=False)
    if thresholds is not None and not monitor.commissioned:
        sys.exit(f'{thresholds}: not loaded (see the warning above)')
    errors, alarms, missing = 0, [], 0.0
    take = monitor.checks.take_block

    def counted(*args):
        block = take(*args)
        nonlocal missing
        if block is not None:
            missing += block.missing
        return block
    monitor.checks.take_block = counted
    for k in range(stamp.size):
        q, qd, tau, _wrench = motion.sample(sampled[k])
        monitor.update(RobotSample(stamp[k], (0, 0), np.array(q), np.array(qd), np.array(tau)),
                       None, now=stamp[k] + 3e-4)
        if k % 100 == 0 and monitor.commissioned:
            state = monitor.report()
            if state.level == 'ERROR':
                errors += 1
                alarm = ', '.join(f'{j.name} {j.channel}/{j.detector}'
                                  for j in state.joints if j.alarm) or state.message
                if alarm not in alarms:
                    alarms.append(alarm)
    return (stamp.size, float(np.percentile(late, 99)) * 1e-6, errors, missing, skipped,
            alarms[:3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('keep', nargs='+', help='folders kept by bench_twin.py --keep')
    parser.add_argument('--code', default=os.path.dirname(HERE),
                        help='repository whose detector to run (default: this one)')
    parser.add_argument('--commissioning-s', type=float, default=8.0)
    parser.add_argument('--calibration', action='store_true',
                        help='calibrate the model in commissioning, as the live twin does')
    parser.add_argument('--live-thresholds', action='store_true',
                        help="start from the live twin's own commissioning, kept beside each "
                             'recording (*-thresholds-*.yaml), instead of commissioning afresh')
    args = parser.parse_args()
    modules = _load(os.path.abspath(args.code))
    print(f'detector from {os.path.abspath(args.code)}; commissioning {args.commissioning_s} s'
          + (' with calibration' if args.calibration else ''))
    print(f'{"recording":44s} {"samples":>8s} {"late p99":>9s} {"ERROR":>6s} {"missing":>8s} '
          f'{"skipped":>8s}')
    with_alarm = 0
    paths = sorted(p for d in args.keep for p in glob.glob(os.path.join(d, '*-pub-*.npz')))
    if not paths:
        sys.exit('no *-pub-*.npz in the given folders (bench_twin.py --keep DIR writes them)')
    for path in paths:
        thresholds = None
        if args.live_thresholds:
            found = glob.glob(path.rsplit('-pub-', 1)[0] + '-thresholds-*.yaml')
            if not found:
                print(f'{os.path.basename(path)}: no kept thresholds file beside it; skipped')
                continue
            thresholds = found[0]
        n, late_ms, errors, missing, skipped, alarms = replay(
            path, args.commissioning_s, modules, args.calibration, thresholds)
        with_alarm += errors > 0
        print(f'{os.path.basename(path):44s} {n:8d} {late_ms:7.2f}ms {errors:6d} {missing:8.0f} '
              f'{skipped:8d}' + (f'   {"; ".join(alarms)}' if alarms else ''))
    print(f'{with_alarm} of {len(paths)} recordings raised an alarm')


if __name__ == '__main__':
    main()
