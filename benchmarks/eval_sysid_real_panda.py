"""
Identify a *real* Franka Emika Panda from its own log and compare with Gaz et al. (RA-L 2019).

The log is the excitation run that Gaz, Cognetti, Oliva, Robuffo Giordano and De Luca published
with their paper (github.com/marcocognetti/FrankaEmikaPandaDynModel,
``matlab/data/Exciting_Traj/Trajectory_1/rbt_log``: 20,544 samples over 21 s at ~1 kHz with
irregular stamps; positions, velocities and measured link-side torques of the 7 joints). It is
the only measured trajectory the repository has (its validation trajectories are not public).
That repository is GPL-3.0, so robot_twin does not ship the data: clone it yourself and point
this script at the clone (or at its ``rbt_log`` directory)::

    git clone https://github.com/marcocognetti/FrankaEmikaPandaDynModel /tmp/gaz
    python benchmarks/eval_sysid_real_panda.py --source /tmp/gaz --output out/real_panda

The robot model is ``franka_panda/panda.urdf`` from ``pybullet_data`` (Apache-2.0, installed
with pybullet): the Franka kinematics with approximate inertias and no friction, plus two finger
joints that the log lacks (held at zero, with a warning). Sections (``--sections``):

``split``
    ``robot-twin sysid``'s pipeline on the log split in time (``--train-fraction``), for each
    friction model, next to Gaz et al.'s figures; plus plain least squares (no prior), as
    identification was before issue 14.
``halves``
    Fit on one half of the log, validate on the other (``--validation-data``), both ways. The
    trajectory has a 13.3 s period (Gaz's generator, ``wf = 0.15 pi``): the halves are different
    stretches of one excitation, not the other trajectories Gaz et al. validated on.
``poor``
    The reported failure on real data: the prior is already good (the parameters identified on
    the first half), the log is a short stretch of the second half (``--poor-seconds``); held
    out: the rest of the second half. Prior vs plain least squares vs the fit toward the prior.
``commission``
    The live twin's commissioning calibration (:mod:`twin_anomaly.calibration`) on the first
    ``--commission-fraction`` of the log, fed sample by sample at the log's rate, then the
    effort residuals of the Mirror (as the live twin forms them) on the rest, with the URDF and
    with the calibration; the calibration is saved for the anomaly monitor's own check.

Reports, parameters and plots go to ``--output``.
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
sys.path.insert(0, str(ROOT / 'test'))

from sysid_testing import block_means, mirror_residuals  # noqa: E402

from twin_sim.logdata import LogData, write_csv  # noqa: E402
from twin_sim.sysid import identify_log, save_parameters  # noqa: E402
from twin_sim.sysid_report import write_report  # noqa: E402

PANDA_URDF = Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf'
JOINTS = [f'panda_joint{i}' for i in range(1, 8)]
GAZ_2019_RMSE = [0.64, 1.01, 0.77, 0.65, 0.42, 0.20, 0.16]  # N·m, real Panda, joints 1-7
LOG_DIR = Path('matlab/data/Exciting_Traj/Trajectory_1/rbt_log')
FILES = {'time': 'exciting_traj_time.txt', 'position': 'exciting_traj_positions.txt',
         'velocity': 'exciting_traj_velocity.txt', 'effort': 'exciting_traj_torques.txt'}
SECTIONS = ('split', 'halves', 'poor', 'commission')


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


def window(log, start_s, stop_s):
    """Return the samples of ``log`` with ``start_s <= t - t0 < stop_s`` as a LogData."""
    rel = log.time - log.time[0]
    keep = (rel >= start_s) & (rel < stop_s)
    return LogData(log.time[keep], list(log.joint_names), log.position[keep],
                   log.velocity[keep], log.effort[keep], f'{log.source}[{start_s}:{stop_s} s]')


def identify_quietly(*args, **kwargs):
    """:func:`identify_log` with its warnings collected; returns (result, seconds, warnings)."""
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = identify_log(*args, **kwargs)
    return result, time.perf_counter() - t0, [str(w.message) for w in caught]


def table(result, reference=None):
    """Per-joint held-out RMSE lines: prior, identified (and Gaz et al.'s)."""
    before, after = result.rmse('before'), result.rmse('after')
    active = [result.joint_names.index(j) for j in JOINTS]
    head = f'  {"joint":<14}{"prior":>8}{"identified":>12}' + (f'{"Gaz 2019":>10}'
                                                               if reference else '')
    lines = [head]
    for k, i in enumerate(active):
        ref = f'{reference[k]:>10.2f}' if reference else ''
        lines.append(f'  {result.joint_names[i]:<14}{before[i]:>8.3f}{after[i]:>12.3f}{ref}')
    ref = f'{np.mean(reference):>10.2f}' if reference else ''
    lines.append(f'  {"mean":<14}{np.mean(before[active]):>8.3f}'
                 f'{np.mean(after[active]):>12.3f}{ref}')
    return '\n'.join(lines)


def verdict(result):
    """One line: which model is used and why."""
    used = 'identified model used' if result.accepted else 'prior kept'
    return f'  -> {used}: {result.decision["reason"]}'


def save(result, out, stem, data):
    if result.accepted:
        save_parameters(result, out / f'params_{stem}.yaml')
    write_report(result, out / f'report_{stem}.json', data=data)


def section_split(csv, out, args):
    for fraction in args.train_fraction:
        for friction in args.friction:
            result, seconds, notes = identify_quietly(PANDA_URDF, csv, friction=friction,
                                                      train_fraction=fraction)
            save(result, out, f'{friction}_train{int(round(100 * fraction))}', csv)
            print(f'\n[split] friction {friction}, fit on the first {fraction:.0%}, held-out '
                  f'tail {result.n_test} samples; fit {seconds:.1f} s, condition number '
                  f'{result.condition_number:.3g}, prior weights '
                  f'{result.regularization["lambda_inertial"]:.3g} (bodies), '
                  f'{result.regularization["lambda_joint"]:.3g} (joints); {len(notes)} warnings')
            print(table(result, GAZ_2019_RMSE))
            print(verdict(result))
    result, seconds, _ = identify_quietly(PANDA_URDF, csv, regularization=0.0)
    print(f'\n[split] plain least squares (no prior, as before issue 14), first 70 %; fit '
          f'{seconds:.1f} s')
    print(table(result, GAZ_2019_RMSE))
    print(verdict(result))


def section_halves(log, out):
    half = 0.5 * (log.time[-1] - log.time[0])
    paths = {'first': out / 'panda_first_half.csv', 'second': out / 'panda_second_half.csv'}
    write_csv(window(log, 0.0, half), paths['first'])
    write_csv(window(log, half, np.inf), paths['second'])
    for fit, held in (('first', 'second'), ('second', 'first')):
        result, seconds, _ = identify_quietly(PANDA_URDF, paths[fit],
                                              validation=paths[held])
        save(result, out, f'{fit}_half', paths[fit])
        print(f'\n[halves] fit on the {fit} half ({result.n_train} samples), validated on the '
              f'{held} half ({result.n_test} samples); fit {seconds:.1f} s')
        print(table(result, GAZ_2019_RMSE))
        print(verdict(result))
    return paths


def section_poor(log, out, halves, seconds_poor):
    """Fit a short, poorly exciting stretch of the second half toward a good prior."""
    prior, _, _ = identify_quietly(PANDA_URDF, halves['first'], validation=halves['second'])
    prior_file = out / 'params_prior_first_half.yaml'
    save_parameters(prior, prior_file)
    half = 0.5 * (log.time[-1] - log.time[0])
    short, rest = out / 'panda_poor.csv', out / 'panda_poor_heldout.csv'
    write_csv(window(log, half, half + seconds_poor), short)
    write_csv(window(log, half + seconds_poor, np.inf), rest)
    print(f'\n[poor] prior: parameters identified on the first half ({prior_file.name}); '
          f'fitted: {seconds_poor:g} s of the second half; held out: the rest of it')
    for label, kwargs in (('plain least squares', {'regularization': 0.0}),
                          ('toward the prior (default)', {})):
        result, seconds, _ = identify_quietly(PANDA_URDF, short, params=prior_file,
                                              validation=rest, **kwargs)
        save(result, out, 'poor_' + label.split()[0], short)
        print(f'[poor] {label}: fit {seconds:.1f} s, condition number '
              f'{result.condition_number:.3g}')
        print(table(result))
        print(verdict(result))


def section_commission(log, out, fraction):
    """Commissioning calibration on the first part, Mirror residuals on the rest."""
    from twin_anomaly.calibration import apply, Calibrator, save_result
    from twin_sim.urdf_model import RobotModel

    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        model = RobotModel.from_urdf(PANDA_URDF)
    idx = [model.joint_names.index(j) for j in JOINTS]
    n = model.n
    full = {}
    for what in ('position', 'velocity', 'effort'):
        full[what] = np.zeros((log.time.size, n))
        full[what][:, idx] = getattr(log, what)
    split = int(fraction * log.time.size)
    cal = Calibrator(model)
    t0 = time.perf_counter()
    for k in range(split):
        cal.add(log.time[k], full['position'][k], full['velocity'][k], full['effort'][k])
    add_us = (time.perf_counter() - t0) / split * 1e6
    result = cal.fit()
    save_result(out / 'calibration.yaml', result)
    print(f'\n[commission] calibrator fed the first {fraction:.0%} of the log '
          f'({result.duration_s:.1f} s, {split} samples, add {add_us:.1f} µs per sample), '
          f'{result.samples} stored block means; fit {result.fit_time_s:.1f} s; '
          f'{"accepted" if result.accepted else "NOT accepted"}: {result.reason}')
    print(f'  {"joint":<14}{"URDF":>8}{"calibrated":>12}   (held-out last 30 % of those '
          'data, N·m)')
    for i in idx:
        print(f'  {model.joint_names[i]:<14}{result.rmse_before[i]:>8.3f}'
              f'{result.rmse_after[i]:>12.3f}')
    rest = slice(split, log.time.size)
    samples = (log.time[rest], full['position'][rest], full['velocity'][rest],
               full['effort'][rest])
    remaining = log.time[-1] - log.time[split]
    print(f'[commission] Mirror effort residual RMS on the remaining {remaining:.1f} s, per '
          'sample / 20 ms block means (N·m):')
    rows = {}
    for label, m in (('URDF', model), ('calibrated', apply(model, result))):
        rows[label] = mirror_rms(m, samples, idx)
    print(f'  {"joint":<14}{"URDF":>14}{"calibrated":>18}')
    for k, i in enumerate(idx):
        urdf, calibrated = rows['URDF'], rows['calibrated']
        print(f'  {model.joint_names[i]:<14}{urdf[0][k]:>7.3f} /{urdf[1][k]:>6.3f}'
              f'{calibrated[0][k]:>11.3f} /{calibrated[1][k]:>6.3f}')
    print(f'  calibration saved to {out / "calibration.yaml"} (twin_anomaly.calibration '
          'load_result)')


def mirror_rms(model, samples, idx):
    """Per-sample and 20 ms block-mean effort residual RMS of the arm joints through Mirror."""
    res, stamps = mirror_residuals(model, *samples)
    res = res[:, idx]
    return np.sqrt(np.mean(res ** 2, axis=0)), np.sqrt(np.mean(block_means(res, stamps) ** 2,
                                                               axis=0))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--source', required=True,
                        help='clone of FrankaEmikaPandaDynModel, or its rbt_log directory')
    parser.add_argument('--output', default='out/real_panda', help='reports and plots')
    parser.add_argument('--sections', nargs='+', default=list(SECTIONS), choices=SECTIONS)
    parser.add_argument('--friction', nargs='+', default=['viscous-coulomb', 'sigmoid'],
                        choices=['viscous-coulomb', 'sigmoid'])
    parser.add_argument('--train-fraction', nargs='+', type=float, default=[0.7, 0.5])
    parser.add_argument('--poor-seconds', type=float, default=2.0,
                        help='length of the poorly exciting stretch (section poor)')
    parser.add_argument('--commission-fraction', type=float, default=0.6,
                        help='share of the log the calibrator sees (section commission)')
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
    if 'split' in args.sections:
        section_split(csv, out, args)
    halves = None
    if 'halves' in args.sections or 'poor' in args.sections:
        halves = section_halves(log, out) if 'halves' in args.sections else {
            k: out / f'panda_{k}_half.csv' for k in ('first', 'second')}
        if 'halves' not in args.sections:
            half = 0.5 * (log.time[-1] - log.time[0])
            write_csv(window(log, 0.0, half), halves['first'])
            write_csv(window(log, half, np.inf), halves['second'])
    if 'poor' in args.sections:
        section_poor(log, out, halves, args.poor_seconds)
    if 'commission' in args.sections:
        section_commission(log, out, args.commission_fraction)
    print(f'\nreports and plots in {out}/ (one public trajectory: every figure comes from '
          'stretches of the same excitation run; Gaz et al. validated on other trajectories)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
