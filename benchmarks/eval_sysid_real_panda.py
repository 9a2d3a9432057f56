"""
Identify a *real* Franka Emika Panda from its own log and compare with Gaz et al. (RA-L 2019).

The log is the excitation run that Gaz, Cognetti, Oliva, Robuffo Giordano and De Luca published
with their paper (github.com/marcocognetti/FrankaEmikaPandaDynModel,
``matlab/data/Exciting_Traj/Trajectory_1/rbt_log``: 20,544 samples over 21 s at ~1 kHz with
irregular stamps; positions, velocities and measured link-side torques of the 7 joints). That
repository is GPL-3.0, so robot_twin does not ship the data: clone it yourself and point this
script at the clone (or at its ``rbt_log`` directory)::

    git clone https://github.com/marcocognetti/FrankaEmikaPandaDynModel /tmp/gaz
    python benchmarks/eval_sysid_real_panda.py --source /tmp/gaz --output out/real_panda

The robot model is ``franka_panda/panda.urdf`` from ``pybullet_data`` (Apache-2.0, installed
with pybullet): the Franka kinematics with approximate inertias and no friction, plus two finger
joints that the log lacks (sysid holds them at zero, with a warning). The script converts the
log to robot_twin's CSV format, runs ``robot-twin sysid``'s pipeline (the same functions) for
each friction model and train fraction asked for, and prints the held-out torque RMSE per
joint next to Gaz et al.'s figures. Reports and plots go to ``--output``.

Read the comparison with care: robot_twin's held-out part is the *tail of the same excitation
run* (``--train-fraction`` splits it in time), while Gaz et al. validated on other
trajectories. Only one trajectory is public.
"""
import argparse
from pathlib import Path
import sys
import time
import warnings

import numpy as np
import pybullet_data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin_sim.logdata import LogData, write_csv  # noqa: E402
from twin_sim.sysid import identify_log, save_parameters  # noqa: E402
from twin_sim.sysid_report import write_report  # noqa: E402

PANDA_URDF = Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf'
JOINTS = [f'panda_joint{i}' for i in range(1, 8)]
GAZ_2019_RMSE = [0.64, 1.01, 0.77, 0.65, 0.42, 0.20, 0.16]  # N·m, real Panda, joints 1-7
LOG_DIR = Path('matlab/data/Exciting_Traj/Trajectory_1/rbt_log')
FILES = {'time': 'exciting_traj_time.txt', 'position': 'exciting_traj_positions.txt',
         'velocity': 'exciting_traj_velocity.txt', 'effort': 'exciting_traj_torques.txt'}


def find_log_dir(source):
    """Return the ``rbt_log`` directory inside ``source`` (a clone, or the directory itself)."""
    source = Path(source)
    for candidate in (source, source / LOG_DIR):
        if all((candidate / name).is_file() for name in FILES.values()):
            return candidate
    raise SystemExit(f'{source}: no {FILES["time"]} etc. here or under {LOG_DIR}; clone '
                     'github.com/marcocognetti/FrankaEmikaPandaDynModel and pass its path')


def read_gaz_log(log_dir):
    """
    Read the published log into a :class:`LogData`.

    Each file is one number per line; the joint files hold 7 values per sample, one sample
    after the other (checked: their length is 7 times that of the time file).
    """
    t = np.loadtxt(log_dir / FILES['time'])
    arrays = {}
    for key in ('position', 'velocity', 'effort'):
        values = np.loadtxt(log_dir / FILES[key])
        if values.size != 7 * t.size:
            raise SystemExit(f'{log_dir / FILES[key]}: {values.size} values, expected 7 per '
                             f'time stamp ({7 * t.size})')
        arrays[key] = values.reshape(t.size, 7)
    return LogData(t, list(JOINTS), arrays['position'], arrays['velocity'], arrays['effort'],
                   str(log_dir))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--source', required=True,
                        help='clone of FrankaEmikaPandaDynModel, or its rbt_log directory')
    parser.add_argument('--output', default='out/real_panda', help='reports and plots')
    parser.add_argument('--friction', nargs='+', default=['viscous-coulomb', 'sigmoid'],
                        choices=['viscous-coulomb', 'sigmoid'])
    parser.add_argument('--train-fraction', nargs='+', type=float, default=[0.7, 0.5])
    args = parser.parse_args(argv)
    log = read_gaz_log(find_log_dir(args.source))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / 'panda_log.csv'
    write_csv(log, csv)
    dt = np.diff(log.time)
    print(f'real Franka Panda log (Gaz et al. 2019, Trajectory_1): {log.time.size} samples, '
          f'{log.time[-1] - log.time[0]:.1f} s, stamp step median {1e3 * np.median(dt):.2f} ms '
          f'(min {1e3 * dt.min():.2f}, max {1e3 * dt.max():.2f}); model {PANDA_URDF}')
    for fraction in args.train_fraction:
        for friction in args.friction:
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter('always')
                result = identify_log(PANDA_URDF, csv, friction=friction,
                                      train_fraction=fraction)
            stem = f'{friction}_train{int(round(100 * fraction))}'
            save_parameters(result, out / f'params_{stem}.yaml')
            write_report(result, out / f'report_{stem}.json', data=csv)
            before, after = result.rmse('before'), result.rmse('after')
            active = [i for i, j in enumerate(result.joint_names) if j in JOINTS]
            print(f'\nfriction {friction}, train on the first {fraction:.0%}, held-out tail '
                  f'{result.n_test} samples; fit {time.perf_counter() - t0:.1f} s, '
                  f'condition number {result.condition_number:.3g}, consistency '
                  f'{result.consistency["method"]}; {len(caught)} warnings')
            print(f'  {"joint":<14}{"URDF":>8}{"identified":>12}{"Gaz 2019":>10}')
            for i, ref in zip(active, GAZ_2019_RMSE):
                print(f'  {result.joint_names[i]:<14}{before[i]:>8.3f}{after[i]:>12.3f}'
                      f'{ref:>10.2f}')
            print(f'  {"mean":<14}{np.mean(before[active]):>8.3f}'
                  f'{np.mean(after[active]):>12.3f}{np.mean(GAZ_2019_RMSE):>10.2f}')
    print(f'\nreports and plots in {out}/ (held-out tail of the same run; Gaz et al. '
          'validated on other trajectories)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
