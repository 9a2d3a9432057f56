"""
False alarms at a lower speed override: several arms and motions, commissioned at full speed.

For each arm and seed (a randomized robot variant and a motion of its own, as the fault runs
of ``bench_anomaly.py`` make them: MuJoCo, masses off by up to 8 %, Coulomb friction and
rotor inertia the URDF lacks, sensor noise), the monitor commissions at the motion's full
speed; then the same robot, restarted, follows the same path at each ``--factors`` share of
its speed from 4 s on (ramped in over 0.5 s, as an operator's override reaches a
controller), fault-free, for ``--seconds``; the robots send every sample of the plant's 1 kHz
steps, or at ``--sample-rate-hz``. Every alarm is a false one. Printed and written
to ``--output``: the blocks (20 ms) at ERROR per arm, seed and override, the alarms raised,
runs.csv, and a plot of the table.

The default arms: the built-in arm, pybullet_data's KUKA iiwa, and the UR5e-like arm of the
tests (``test/data/ur5e_like.urdf``, centred at an elbow-up pose). The default seeds: 4242
(the one the override handling was first built on), 7, 123, 11, 29, 57 (where its first
version failed) and 3, 19, 41, 88 (never looked at while changing it).

Run (repository root): ``.venv/bin/python benchmarks/bench_override.py [--workers 2]``;
about 9 minutes on two cores at the default size.
"""
import argparse
import csv
import json
from pathlib import Path
import sys
import tempfile
import time

from _arms import center, UR5E_LIKE

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robot_twin import fault_runs  # noqa: E402

SEEDS = (4242, 7, 123, 11, 29, 57, 3, 19, 41, 88)
FACTORS = (1.0, 0.8, 0.6, 0.5, 0.4, 0.3, 0.2)


def main(argv=None):
    """Run the table; print it and write it to ``--output``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--arms', nargs='+', default=['builtin', 'iiwa', UR5E_LIKE])
    parser.add_argument('--seeds', nargs='+', type=int, default=list(SEEDS))
    parser.add_argument('--factors', nargs='+', type=float, default=list(FACTORS))
    parser.add_argument('--seconds', type=float, default=20.0, help='each run, s (default 20)')
    parser.add_argument('--commissioning-s', type=float, default=20.0,
                        help='commissioning at full speed, s (default 20)')
    parser.add_argument('--sample-rate-hz', type=float, default=1000.0,
                        help='rate the robots send their samples at (1000 and its divisors)')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--output', default='out/bench_override')
    args = parser.parse_args(argv)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    config = fault_runs.monitor_config(commissioning_duration_s=args.commissioning_s,
                                       model_path='rules')
    cases = [fault_runs.Case(arm=arm, engine='mujoco', seed=seed, index=0, motion_seed=seed,
                             sample_rate_hz=args.sample_rate_hz, center=center(arm))
             for arm in args.arms for seed in args.seeds]
    with tempfile.TemporaryDirectory(prefix='bench_override_') as tmp:
        paths = [str(Path(tmp) / f'case_{i}.yaml') for i in range(len(cases))]
        fault_runs.run_many([(fault_runs.commission, (c, p, config), {})
                             for c, p in zip(cases, paths)], args.workers,
                            desc='commissioning')
        tasks = [(fault_runs.override_run, (c, p, config, f, args.seconds), {})
                 for c, p in zip(cases, paths) for f in args.factors]
        results = fault_runs.run_many(tasks, args.workers, desc='runs')
    rows = []
    for k, result in enumerate(results):
        case = cases[k // len(args.factors)]
        rows.append({'arm': Path(case.arm).stem, 'seed': case.seed, **result,
                     'raised': ' '.join(f'{t}s:{g}:{f}' for t, g, f in result['raised'])})
    with open(out / 'runs.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = summarize(rows, args)
    summary['wall_s'] = round(time.time() - started)
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    plot(rows, args, out / 'override_errors.png')
    print_table(rows, args, summary)
    print(f'\n{len(rows)} runs, {summary["wall_s"]} s; results in {out}/')
    return 0


def summarize(rows, args):
    """Count the runs with a block at ERROR, and such blocks, per arm (slower runs only)."""
    per_arm = {}
    for row in rows:
        if row['factor'] >= 1.0:
            continue
        arm = per_arm.setdefault(row['arm'], {'runs': 0, 'runs_with_error': 0,
                                              'error_blocks': 0, 'blocks': 0})
        arm['runs'] += 1
        arm['runs_with_error'] += row['error'] > 0
        arm['error_blocks'] += row['error']
        arm['blocks'] += row['blocks']
    full = [row for row in rows if row['factor'] >= 1.0]
    return {'seeds': args.seeds, 'factors': args.factors, 'seconds': args.seconds,
            'sample_rate_hz': args.sample_rate_hz,
            'slower': per_arm,
            'full_speed_runs_with_error': sum(row['error'] > 0 for row in full)}


def print_table(rows, args, summary):
    """Print the blocks at ERROR per arm and seed (rows) and override (columns)."""
    print('\nblocks at ERROR (of about 900 per run), per override')
    print(f'{"arm":<14}{"seed":>6}' + ''.join(f'{f:>7.2f}' for f in args.factors))
    table = {}
    for row in rows:
        table.setdefault((row['arm'], row['seed']), {})[row['factor']] = row['error']
    for (arm, seed), errors in table.items():
        print(f'{arm:<14}{seed:>6}' + ''.join(f'{errors.get(f, "-"):>7}' for f in args.factors))
    print()
    for arm, s in summary['slower'].items():
        print(f'{arm}: {s["runs_with_error"]} of {s["runs"]} slower runs with a block at ERROR,'
              f' {s["error_blocks"]} of {s["blocks"]} blocks')
    print(f'full speed: {summary["full_speed_runs_with_error"]} runs with a block at ERROR')


def plot(rows, args, path):
    """Heat map of the blocks at ERROR: arm and seed against override."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    keys = list(dict.fromkeys((row['arm'], row['seed']) for row in rows))
    grid = np.zeros((len(keys), len(args.factors)))
    for row in rows:
        grid[keys.index((row['arm'], row['seed'])), args.factors.index(row['factor'])] = \
            row['error']
    fig, ax = plt.subplots(figsize=(6.5, 0.28 * len(keys) + 1.5))
    image = ax.imshow(grid, aspect='auto', cmap='Reds', vmin=0, vmax=max(1.0, grid.max()))
    ax.set_xticks(range(len(args.factors)), [f'{f:g}' for f in args.factors])
    ax.set_yticks(range(len(keys)), [f'{a} s{s}' for a, s in keys], fontsize=7)
    ax.set_xlabel('speed override (commissioned at 1)')
    ax.set_title('blocks at ERROR in fault-free runs')
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            if grid[i, j]:
                ax.text(j, i, f'{grid[i, j]:.0f}', ha='center', va='center', fontsize=6)
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
