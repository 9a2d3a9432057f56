"""
On-robot RUL on the emulated arm: convergence, interval coverage and false alarms over seeds.

The plant (PyBullet, 500 Hz, the built-in arm on the demo motion) runs
``test/data/rul_wear_joint3.yaml``: joint3's Coulomb friction grows by 0.02 N·m/s from 40 s;
the service friction is the URDF friction + 2.5 N·m, reached at 165 s. Time is compressed:
``time_scale`` 3600, so one second of motion is one operating hour and the true RUL at plant
time ``t`` is ``165 - t`` hours. Every seed changes the sensor noise and the motion. Printed:
per checkpoint the median relative error of the RUL and in how many runs the 90 % interval
holds the truth; then the same robot without wear (``rul_nominal_noisy.yaml``): reports that
were not OK or carried an RUL (false alarms). A plot of the RUL against the truth is written.

Run: ``.venv/bin/python benchmarks/bench_rul_plant.py [--seeds 8] [--nominal 3]``.
"""
import argparse
from pathlib import Path

import numpy as np
from robot_twin.rul_sim import compressed_config, simulate_rul, time_to_friction
from tqdm import tqdm
from twin_sim.faults import FaultScenario

DATA = Path(__file__).resolve().parents[1] / 'test' / 'data'
CHECKPOINTS = (80.0, 100.0, 120.0, 140.0, 148.0)
ADDED_AT_SERVICE = 2.5


def plot(runs, failure_t, out):
    """RUL median and interval of joint3 against the truth, every run."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for k, run in enumerate(runs):
        j = run.joint_names.index('joint3')
        ax.plot(run.t, run.rul[:, j], lw=1, color=f'C{k % 10}')
        ax.fill_between(run.t, run.lower[:, j], run.upper[:, j], alpha=0.12,
                        color=f'C{k % 10}')
    t = runs[0].t
    ax.plot(t, np.where(t > 40, failure_t - t, np.nan), 'k--', lw=1.5, label='true RUL')
    ax.axvline(40, color='grey', lw=0.8, ls=':', label='wear begins')
    ax.set(xlabel='plant time [s] (= operating hours, time-compressed)',
           ylabel='joint3 RUL [operating hours]', ylim=(0, 140),
           title=f'RUL median and 90 % interval, {len(runs)} seeds')
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--seeds', type=int, default=8, help='worn runs (default 8)')
    parser.add_argument('--nominal', type=int, default=3, help='healthy runs (default 3)')
    parser.add_argument('--output', type=Path, default=Path('bench_rul_plant.png'))
    args = parser.parse_args()
    scenario = FaultScenario.load(DATA / 'rul_wear_joint3.yaml')
    failure_t = time_to_friction(scenario, 'joint3', ADDED_AT_SERVICE)
    config = compressed_config('joint3', ADDED_AT_SERVICE)
    runs = [simulate_rul(scenario, config, duration_s=150.0, seed=s)
            for s in tqdm(range(args.seeds), desc='worn runs', unit='run')]
    print(f'joint3 wear, service friction reached at {failure_t:.0f} s; {len(runs)} seeds')
    for t in CHECKPOINTS:
        rel, covered = [], 0
        for run in runs:
            i = int(np.argmin(np.abs(run.t - t)))
            j = run.joint_names.index('joint3')
            true = failure_t - run.t[i]
            rel.append(abs(run.rul[i, j] - true) / true)
            covered += run.lower[i, j] <= true <= run.upper[i, j]
        print(f'  t = {t:5.0f} s  true RUL {failure_t - t:5.1f} h  median |error| '
              f'{100 * np.nanmedian(rel):4.1f} %  max {100 * np.nanmax(rel):4.1f} %  '
              f'interval holds the truth in {covered} of {len(runs)}')
    first, held, numbered = [], 0, 0
    for run in runs:
        j = run.joint_names.index('joint3')
        has = np.isfinite(run.rul[:, j])
        true = failure_t - run.t[has]
        first.append(run.t[has][0])
        held += int(np.sum((run.lower[has, j] <= true) & (true <= run.upper[has, j])))
        numbered += int(has.sum())
    print(f'  first RUL number at t = {min(first):.0f}-{max(first):.0f} s (wear from 40 s); '
          f'over all {numbered} reports with a number the interval held the truth in {held}')
    alarms = numbers = reports = 0
    for s in tqdm(range(args.nominal), desc='healthy runs', unit='run'):
        run = simulate_rul(DATA / 'rul_nominal_noisy.yaml', config, duration_s=150.0,
                           seed=100 + s)
        reports += len(run.levels) * len(run.joint_names)
        alarms += sum(level != 'OK' for row in run.levels for level in row)
        numbers += int(np.isfinite(run.rul).sum())
    print(f'healthy arm, {args.nominal} runs: {alarms} of {reports} joint reports not OK, '
          f'{numbers} carried an RUL')
    plot(runs, failure_t, args.output)
    print(f'plot: {args.output}')


if __name__ == '__main__':
    main()
