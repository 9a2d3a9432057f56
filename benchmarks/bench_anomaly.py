"""
Anomaly monitor benchmark: every plant fault type on robots that differ from the twin.

For each arm (the built-in arm and pybullet_data's KUKA iiwa by default) and each of
``--variants`` randomized robots (masses and inertias off by up to 8 %, damping 1-4x the
URDF's, Coulomb friction and rotor inertia the URDF lacks, noise 1e-4 rad, 1e-3 rad/s,
0.05 N·m; simulated by MuJoCo unless ``--engine pybullet``; seed 2000, never used for
training), the twin commissions on 30 s of nominal motion (calibration, then thresholds),
then is restarted beside the robot for one run per fault of :func:`robot_twin.fault_runs.
fault_catalog`: every fault type on ``--joints`` joints, two sizes, abrupt and incipient
(``friction_increase`` incipient is the 4x rise over 10 s). ``--nominal-min`` minutes of
fault-free motion per arm (commissioning included, in one run) give the false alarms.
``--sample-rate-hz`` (1000 and its divisors) makes the robots send every k-th of the plant's
1 kHz steps, as a robot with a slower joint-state stream; without ``--model`` the fault names
come from the packaged model for that rate, as the monitor picks it (the low-rate model below
:data:`twin_anomaly.classifier.RATE_BAND_BOUNDARY_HZ`).

Printed and written to ``--output`` (summary.json, runs.csv, plots):

- AUROC per fault type and mode: the robot score's maximum over each fault run's window
  after the onset, against the maxima over windows of the same length of fault-free motion;
- detection delay p50 / p90 (alarm raised minus onset; incipient also from full size);
- share of detected joint faults localized to the right joint; share with the right type
  (``--decision-s`` after the alarm), at the alarm, and at the end of the first alarm
  episode (the run's end: 3 s after full size, 10 s for the 4x friction rise), which shows
  whether the verdict holds while the fault goes on;
- false alarms per hour (nominal runs, and the fault runs before their onset);
- cost per sample of ``AnomalyMonitor.update`` (mean, p50, p99) and of the classification
  done by ``report()`` while an alarm is raised, amortized at 50 Hz over a 1 kHz stream.

Run (repository root): ``.venv/bin/python benchmarks/bench_anomaly.py [--workers 2]``; the
default size takes about 20 minutes on two cores.
"""
import argparse
import csv
import json
import math
from pathlib import Path
import sys
import tempfile
import time

from _arms import center
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_twin import fault_runs  # noqa: E402
from twin_anomaly.classifier import default_model_path, FAULT_TYPES, ROBOT_LEVEL  # noqa: E402

SEED = 2000
REPORT_RATE_HZ = 50.0
SAMPLE_RATE_HZ = 1000.0


def auroc(positives, negatives):
    """Probability that a positive scores above a negative (ties count half)."""
    pos = np.asarray(positives, dtype=float)
    neg = np.asarray(negatives, dtype=float)
    if not len(pos) or not len(neg):
        return math.nan
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def window_maxima(result, length):
    """Maxima of the robot score over consecutive windows of ``length`` s of monitoring."""
    t, score = result.t, result.score
    if not len(t):
        return []
    edges = np.arange(t[0], t[-1] - length + 1e-9, length)
    return [float(score[(t >= a) & (t < a + length)].max()) for a in edges
            if ((t >= a) & (t < a + length)).any()]


def run_row(result):
    """One fault run as a flat dict (truth, detection, verdict)."""
    spec = result.spec
    first = result.first_alarm
    detected = first is not None and first['t'] >= spec.onset_s
    after = result.t >= spec.onset_s
    row = {'case': result.case.name, 'fault_type': spec.fault_type, 'joint': spec.joint,
           'mode': spec.mode, 'size': spec.size, 'signal': spec.fault.get('signal', ''),
           'onset_s': spec.onset_s, 'full_s': spec.full_s,
           'max_score_after': float(result.score[after].max()) if after.any() else math.nan,
           'window_s': spec.end_s - spec.onset_s,
           'early_alarm': first is not None and first['t'] < spec.onset_s,
           'detected': detected}
    if detected:
        decided = first['decided']
        row.update(delay_s=first['t'] - spec.onset_s,
                   delay_from_full_s=first['t'] - spec.full_s,
                   predicted=decided['fault_type'], predicted_joint=decided['joint'],
                   confidence=decided['confidence'],
                   type_at_alarm=first['fault_type'],
                   right_type_at_alarm=first['fault_type'] == spec.fault_type,
                   right_type=decided['fault_type'] == spec.fault_type,
                   type_at_end=first['last']['fault_type'],
                   right_type_at_end=first['last']['fault_type'] == spec.fault_type,
                   right_joint=(None if spec.fault_type in ROBOT_LEVEL
                                else decided['joint'] == spec.joint))
    return row


def percentile(values, q):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.percentile(values, q)) if values else math.nan


def per_type(rows, nominal):
    """Figures per fault type and mode (AUROC against fault-free windows of the same length)."""
    negatives_by_length = {}
    for row in rows:
        length = round(row['window_s'], 3)
        if length not in negatives_by_length:
            negatives_by_length[length] = [m for r in nominal for m in window_maxima(r, length)]
    out = {}
    for ftype in FAULT_TYPES:
        for mode in ('abrupt', 'incipient'):
            sel = [r for r in rows if r['fault_type'] == ftype and r['mode'] == mode]
            if not sel:
                continue
            negatives = negatives_by_length[round(sel[0]['window_s'], 3)]
            det = [r for r in sel if r['detected']]
            joints = [r['right_joint'] for r in det if r.get('right_joint') is not None]
            out[f'{ftype}/{mode}'] = {
                'runs': len(sel), 'detected': len(det),
                'auroc': auroc([r['max_score_after'] for r in sel], negatives),
                'negatives': len(negatives),
                'delay_p50_s': percentile([r['delay_s'] for r in det], 50),
                'delay_p90_s': percentile([r['delay_s'] for r in det], 90),
                'delay_from_full_p90_s': percentile([r['delay_from_full_s'] for r in det], 90),
                'right_joint': float(np.mean(joints)) if joints else math.nan,
                'right_type': float(np.mean([r['right_type'] for r in det])) if det
                else math.nan}
    return out


def summarize(rows, results, nominal):
    """Return the benchmark's figures from the fault-run rows and the nominal runs."""
    out = {'per_type': per_type(rows, nominal), 'overall': {}}
    det = [r for r in rows if r['detected']]
    joints = [r['right_joint'] for r in det if r.get('right_joint') is not None]
    nominal_h = sum((r.t[-1] - r.monitored_from) for r in nominal if len(r.t)) / 3600.0
    nominal_alarms = sum(len(r.alarms) for r in nominal)
    pre_h = sum(max(0.0, r.spec.onset_s - r.monitored_from) for r in results
                if math.isfinite(r.monitored_from)) / 3600.0
    pre_alarms = sum(1 for r in rows if r['early_alarm'])
    update = np.array([r.update_us for r in results + nominal])
    report_alarm = np.array([r.report_us[1] for r in results if r.report_us is not None])
    classify = float(np.nanmean(report_alarm)) if np.isfinite(report_alarm).any() else math.nan
    abrupt = [r for r in det if r['mode'] == 'abrupt']
    friction4x = [r for r in rows if r['fault_type'] == 'friction_increase'
                  and r['mode'] == 'incipient']
    out['overall'] = {
        'fault_runs': len(rows), 'detected': len(det),
        'auroc_abrupt_min': min((v['auroc'] for k, v in out['per_type'].items()
                                 if k.endswith('abrupt')), default=math.nan),
        'auroc_incipient_min': min((v['auroc'] for k, v in out['per_type'].items()
                                    if k.endswith('incipient')), default=math.nan),
        'delay_abrupt_p50_s': percentile([r['delay_s'] for r in abrupt], 50),
        'delay_abrupt_p90_s': percentile([r['delay_s'] for r in abrupt], 90),
        'friction_4x_detected_within_10s_of_end': (
            f'{sum(1 for r in friction4x if r["detected"] and r["delay_from_full_s"] <= 10.0)}'
            f'/{len(friction4x)}'),
        'right_joint': float(np.mean(joints)) if joints else math.nan,
        'right_type': float(np.mean([r['right_type'] for r in det])) if det else math.nan,
        'right_type_at_alarm': (float(np.mean([r['right_type_at_alarm'] for r in det]))
                                if det else math.nan),
        'right_type_at_end': (float(np.mean([r['right_type_at_end'] for r in det]))
                              if det else math.nan),
        'nominal_hours': nominal_h, 'nominal_false_alarms': nominal_alarms,
        'false_alarms_per_hour_nominal': nominal_alarms / nominal_h if nominal_h else math.nan,
        'pre_fault_hours': pre_h, 'pre_fault_false_alarms': pre_alarms,
        'update_us_mean': float(np.nanmean(update[:, 0])),
        'update_us_p50': float(np.nanmedian(update[:, 1])),
        'update_us_p99': float(np.nanmedian(update[:, 2])),
        'classify_us_per_report': classify,
        'classify_us_per_sample': classify * REPORT_RATE_HZ / SAMPLE_RATE_HZ,
    }
    return out


def print_table(summary):
    print(f'\n{"fault type / mode":<32}{"runs":>5}{"det":>5}{"AUROC":>8}{"p50 ms":>8}'
          f'{"p90 ms":>8}{"joint":>7}{"type":>7}')
    for key, v in summary['per_type'].items():
        print(f'{key:<32}{v["runs"]:>5}{v["detected"]:>5}{v["auroc"]:>8.3f}'
              f'{1e3 * v["delay_p50_s"]:>8.0f}{1e3 * v["delay_p90_s"]:>8.0f}'
              f'{_pct(v["right_joint"]):>7}{_pct(v["right_type"]):>7}')
    print()
    for key, value in summary['overall'].items():
        print(f'{key:<42}{value:.4g}' if isinstance(value, float) else f'{key:<42}{value}')


def _pct(value):
    return '-' if not math.isfinite(value) else f'{100 * value:.0f}%'


def plots(rows, summary, results, nominal, out):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    keys = list(summary['per_type'])
    fig, ax = plt.subplots(figsize=(10, 5))
    ax.bar(range(len(keys)), [summary['per_type'][k]['auroc'] for k in keys])
    ax.axhline(0.99, color='r', lw=0.8)
    ax.axhline(0.95, color='orange', lw=0.8)
    ax.set_xticks(range(len(keys)), keys, rotation=70, ha='right', fontsize=8)
    ax.set_ylim(0.5, 1.01)
    ax.set_ylabel('AUROC')
    fig.tight_layout()
    fig.savefig(out / 'auroc.png', dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    delays = [1e3 * r['delay_s'] for r in rows if r['detected'] and r['mode'] == 'abrupt']
    ax.hist(delays, bins=40)
    ax.axvline(100, color='r', lw=0.8)
    ax.set_xlabel('detection delay of abrupt faults, ms')
    ax.set_ylabel('runs')
    fig.tight_layout()
    fig.savefig(out / 'delay_abrupt.png', dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 4))
    for r in nominal:
        ax.plot(r.t, r.score, lw=0.5, label=r.case.name)
    ax.axhline(1.0, color='r', lw=0.8)
    ax.set_xlabel('stamp, s')
    ax.set_ylabel('robot score (nominal motion)')
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / 'nominal_score.png', dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--arms', nargs='+', default=['builtin', 'iiwa'])
    parser.add_argument('--engine', default='mujoco', choices=['mujoco', 'pybullet'])
    parser.add_argument('--variants', type=int, default=1, help='robots per arm (default 1)')
    parser.add_argument('--joints', type=int, default=3, help='faulty joints per robot')
    parser.add_argument('--nominal-min', type=float, default=10.0,
                        help='minutes of fault-free monitoring per arm (default 10)')
    parser.add_argument('--nominal-robots', type=int, default=1,
                        help='robots per arm for the fault-free runs, each with --nominal-min '
                             'minutes of its own motion (default 1)')
    parser.add_argument('--model', default='',
                        help="classifier ('' the packaged model for the rate, rules, file)")
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--sample-rate-hz', type=float, default=1000.0,
                        help='rate the robots send their samples at (1000 and its divisors)')
    parser.add_argument('--output', default='out/bench_anomaly')
    parser.add_argument('--types', nargs='+', default=None, help='only these fault types')
    parser.add_argument('--decision-s', type=float, default=0.5,
                        help='the verdict counted is the one reported this long after the '
                             'alarm (default 0.5 s; the status updates it all along)')
    args = parser.parse_args(argv)
    if args.nominal_robots < 1:
        parser.error('--nominal-robots must be at least 1')
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    commissioning, results, nominal = run(args)
    rows = [run_row(r) for r in results]
    summary = summarize(rows, results, nominal)
    summary['setup'] = {'arms': args.arms, 'engine': args.engine, 'variants': args.variants,
                        'sample_rate_hz': args.sample_rate_hz,
                        'joints': args.joints, 'nominal_min': args.nominal_min,
                        'nominal_robots': args.nominal_robots,
                        'model': args.model or default_model_path(args.sample_rate_hz).name,
                        'seed': SEED,
                        'decision_s': args.decision_s, 'wall_s': round(time.time() - started),
                        'commissioning': commissioning,
                        'nominal': [{'case': r.case.name, 'alarms': r.alarms,
                                     'max_score': float(r.score.max()) if len(r.score) else None,
                                     'calibration': r.commissioning.get('calibration')}
                                    for r in nominal]}
    (out / 'summary.json').write_text(json.dumps(summary, indent=2, default=str))
    with open(out / 'runs.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}))
        writer.writeheader()
        writer.writerows(rows)
    plots(rows, summary, results, nominal, out)
    print_table(summary)
    print(f'\n{len(results)} fault runs, {len(nominal)} nominal runs, '
          f'{summary["setup"]["wall_s"]} s; results in {out}/')
    return 0


def run(args):
    """Commission the robots, run every fault and the nominal runs; return the results."""
    config = fault_runs.monitor_config(model_path=args.model)
    cases = [fault_runs.Case(arm=arm, engine=args.engine, seed=SEED, index=i,
                             motion_seed=SEED + i, sample_rate_hz=args.sample_rate_hz,
                             center=center(arm))
             for arm in args.arms for i in range(args.variants)]
    with tempfile.TemporaryDirectory(prefix='bench_anomaly_') as tmp:
        paths = [str(Path(tmp) / f'case_{i}.yaml') for i in range(len(cases))]
        commissioning = fault_runs.run_many(
            [(fault_runs.commission, (c, p, config), {}) for c, p in zip(cases, paths)],
            args.workers, desc='commissioning')
        tasks = []
        for case, path in zip(cases, paths):
            robot = fault_runs.SimulatedRobot(case, tmp)
            picks = np.linspace(1, robot.n - 1, args.joints).round().astype(int)
            joints = [robot.joint_names[j] for j in sorted(set(picks))]
            for spec in fault_runs.fault_catalog(robot, joints, types=args.types):
                tasks.append((fault_runs.run_fault, (case, spec, path, config),
                              {'model_path': args.model, 'decision_s': args.decision_s}))
        nominal_tasks = [(fault_runs.nominal_run, (fault_runs.Case(
            arm=arm, engine=args.engine, seed=SEED, index=index, motion_seed=SEED + index,
            sample_rate_hz=args.sample_rate_hz, center=center(arm)),
            60.0 * args.nominal_min, config), {'model_path': args.model})
            for i, arm in enumerate(args.arms)
            for index in _nominal_indices(i, len(args.arms), args.nominal_robots)]
        everything = fault_runs.run_many(nominal_tasks + tasks, args.workers, desc='runs')
    return commissioning, everything[len(nominal_tasks):], everything[:len(nominal_tasks)]


def _nominal_indices(arm, arms, robots):
    """Variant indices of an arm's fault-free robots: 100 + its position for the first."""
    return [100 + arm] + [100 + arms + arm * (robots - 1) + k for k in range(robots - 1)]


if __name__ == '__main__':
    sys.exit(main())
