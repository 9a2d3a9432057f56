"""
The anomaly monitor on a real robot: no alarm after commissioning on a real Panda log.

Commissioned on the first part of a real Franka Panda log, the twin must raise no alarm on the
rest (nothing is wrong with that robot).

The log is the excitation run that Gaz et al. published with their RA-L 2019 paper (see
``benchmarks/eval_sysid_real_panda.py``: github.com/marcocognetti/FrankaEmikaPandaDynModel,
``matlab/data/Exciting_Traj/Trajectory_1/rbt_log``, 21 s at ~1 kHz with irregular stamps,
GPL-3.0, so not shipped: clone it and pass the clone). The twin's model is pybullet_data's
``franka_panda/panda.urdf`` (approximate inertias, no friction; the two finger joints the log
lacks are held at 0). The log's samples are fed, in order, to the same
:class:`twin_anomaly.monitor.AnomalyMonitor` the live twin runs: it commissions on the first
``--commission-s`` seconds (collecting and calibrating the model on the first half of that,
learning thresholds on the second half), then monitors the rest.

Printed (and written to ``--output``: summary.json, score.png): the calibration (accepted or
not, held-out torque RMSE before and after), how many seconds were monitored, every alarm, the
largest robot score and the channels nearest their thresholds.

Run: ``python benchmarks/eval_anomaly_real_panda.py --source /path/to/clone``.
"""
import argparse
import json
from pathlib import Path
import sys
import warnings

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'benchmarks'))

from eval_sysid_real_panda import find_log_dir, PANDA_URDF, read_gaz_log  # noqa: E402, I100
from twin_anomaly.monitor import AnomalyMonitor, MonitorConfig  # noqa: E402
from twin_bridge.intake import RobotSample  # noqa: E402
from twin_sim.urdf_model import RobotModel, URDFWarning  # noqa: E402

REPORT_EVERY_S = 0.02


def samples(log, model):
    """Yield the log as RobotSamples in model order (joints the log lacks held at 0)."""
    index = [log.joint_names.index(j) if j in log.joint_names else None
             for j in model.joint_names]
    n = model.n
    for k, t in enumerate(log.time):
        q, qd, tau = np.zeros(n), np.zeros(n), np.zeros(n)
        for i, src in enumerate(index):
            if src is not None:
                q[i] = log.position[k, src]
                qd[i] = log.velocity[k, src]
                tau[i] = log.effort[k, src]
        sec = int(t)
        yield RobotSample(float(t), (sec, int(round((t - sec) * 1e9))), q, qd, tau)


def run(log, commission_s, model_path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', URDFWarning)
        model = RobotModel.from_urdf(PANDA_URDF)
    monitor = AnomalyMonitor(model, MonitorConfig(commissioning_duration_s=commission_s,
                                                  model_path=model_path))
    trace, events, nearest = [], [], {}
    next_report = log.time[0] + REPORT_EVERY_S
    for sample in samples(log, model):
        monitor.update(sample)
        if sample.t < next_report:
            continue
        next_report += REPORT_EVERY_S
        state = monitor.report()
        events += monitor.poll_events()
        if state.phase != 'monitoring':
            continue
        trace.append((sample.t, state.score, state.level))
        ratios = monitor.fused.channel_ratios()
        for name, ratio in zip(monitor.fused.names, ratios):
            nearest[name] = max(nearest.get(name, 0.0), float(ratio))
    events += monitor.poll_events()
    return monitor, np.array([(t, s) for t, s, _ in trace]), [lvl for *_, lvl in trace], \
        events, nearest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--source', required=True,
                        help='clone of FrankaEmikaPandaDynModel, or its rbt_log directory')
    parser.add_argument('--commission-s', type=float, default=14.0,
                        help='seconds of the log to commission on (default 14 of 21)')
    parser.add_argument('--model', default='', help="classifier ('' packaged, rules, file)")
    parser.add_argument('--output', default='out/real_panda_anomaly')
    args = parser.parse_args(argv)
    log = read_gaz_log(find_log_dir(args.source))
    monitor, trace, levels, events, nearest = run(log, args.commission_s, args.model)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    calibration = next((e for e in events if e['kind'] == 'calibration_finished'), {})
    alarms = [e for e in events if e['kind'] == 'anomaly_raised']
    monitored = float(trace[-1, 0] - trace[0, 0]) if len(trace) else 0.0
    top = sorted(nearest.items(), key=lambda kv: -kv[1])[:8]
    summary = {'log_seconds': float(log.time[-1] - log.time[0]),
               'commissioning_s': args.commission_s, 'monitored_s': monitored,
               'calibration': {k: v for k, v in calibration.items() if k != 'kind'},
               'alarms': alarms, 'max_score': float(trace[:, 1].max()) if len(trace) else None,
               'nearest_channels': dict(top)}
    (out / 'summary.json').write_text(json.dumps(summary, indent=2, default=str))
    _plot(trace, args.commission_s + log.time[0], out / 'score.png')
    print(f'real Franka Panda log (Gaz et al. 2019): {log.time.size} samples, '
          f'{summary["log_seconds"]:.1f} s; commissioned on the first {args.commission_s:g} s')
    if calibration:
        before = np.array(calibration.get('rmse_before', []), dtype=float)
        after = np.array(calibration.get('rmse_after', []), dtype=float)
        print(f'calibration {"accepted" if calibration["accepted"] else "NOT used"}: '
              f'{calibration["reason"]}')
        if before.size:
            print('  held-out torque RMSE per joint [N·m]: URDF '
                  + ' '.join(f'{v:.2f}' for v in before[:7]) + '; calibrated '
                  + ' '.join(f'{v:.2f}' for v in after[:7]))
    print(f'monitored {monitored:.1f} s: {len(alarms)} alarm(s), largest robot score '
          f'{summary["max_score"]:.2f} (alarm at 1)')
    for alarm in alarms:
        print(f'  ALARM at {alarm["stamp"]:.2f} s: {alarm["group"]} {alarm["fault_type"]}')
    print('  channels nearest their thresholds: '
          + ', '.join(f'{name} {ratio:.2f}' for name, ratio in top[:5]))
    print(f'results in {out}/')
    return 0 if not alarms else 1


def _plot(trace, end_of_commissioning, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 3.5))
    if len(trace):
        ax.plot(trace[:, 0], trace[:, 1], lw=0.8)
    ax.axhline(1.0, color='r', lw=0.8, label='alarm threshold')
    ax.axvline(end_of_commissioning, color='k', lw=0.6, ls='--', label='end of commissioning')
    ax.set_xlabel('log time, s')
    ax.set_ylabel('robot score')
    ax.set_title('Real Franka Panda (Gaz et al. 2019): twin commissioned on the first part')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
