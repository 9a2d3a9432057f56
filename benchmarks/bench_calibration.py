"""
Benchmark the commissioning calibration (twin_anomaly.calibration) on randomized robots.

The robot differs from the twin's URDF as in issue 14's test of a new user: every body's mass
and inertia off by up to 8 % (centres of mass by up to 5 mm), viscous friction 1-4x the URDF's,
Coulomb friction and rotor inertia that the twin's URDF does not have, sensor noise 1e-4 rad,
1e-3 rad/s, 0.05 N·m. It runs the demo motion (twin_sim.trajectory.DemoMotion) in one of two
engines: PyBullet (twin_sim.plant; the drive supplies the rotor's torque) or MuJoCo
(twin_sim.mujoco_world; rotor inertia is MuJoCo's armature). The calibrator sees the first
``--collect`` seconds (17.5 s: the collect step of a 35 s commissioning), sample by sample;
then the effort residual floor is measured on the next ``--eval`` seconds through
twin_sim.mirror.Mirror, as the live twin forms residuals, for the URDF, the calibrated model and
the true model (the floor sensor noise leaves): per sample (Mirror's default 40 Hz filter, and
``--cutoff`` Hz) and as 20 ms block means (what the anomaly detectors take).

Printed: the cost of ``Calibrator.add`` per sample, the fit time, the acceptance, and per run
the residual RMS per joint; then the worst joint over all runs.

Usage: python benchmarks/bench_calibration.py [--seeds 3] [--engines pybullet mujoco]
       [--collect 17.5] [--eval 10] [--cutoff 10]
"""
import argparse
from pathlib import Path
import sys
import tempfile
import time
import warnings

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'test'))

from sysid_testing import (block_means, mirror_residuals, randomized_robot,  # noqa: E402
                           run_mujoco, run_plant, urdf_without_coulomb)
from tqdm import tqdm  # noqa: E402

from twin_anomaly.calibration import apply, Calibrator  # noqa: E402
from twin_sim.resources import builtin_urdf  # noqa: E402
from twin_sim.trajectory import DemoMotion  # noqa: E402
from twin_sim.urdf_model import RobotModel  # noqa: E402

ENGINES = {'pybullet': run_plant, 'mujoco': run_mujoco}


def add_cost_us(model, samples=100000):
    """Best of 3 timings of :meth:`Calibrator.add` (µs per call) on a 1 kHz stream."""
    zeros = np.zeros(model.n)
    best = np.inf
    for _ in range(3):
        cal = Calibrator(model)
        t0 = time.perf_counter()
        for k in range(samples):
            cal.add(k * 1e-3, zeros, zeros, zeros)
        best = min(best, (time.perf_counter() - t0) / samples * 1e6)
    return best


def floors(models, held_out, cutoff):
    """Residual RMS (n,) per model: per sample at 40 Hz and at ``cutoff`` Hz, 20 ms blocks."""
    out = {}
    for name, model in models.items():
        res, stamps = mirror_residuals(model, *held_out)
        low, _ = mirror_residuals(model, *held_out, cutoff_hz=cutoff)
        out[name] = (np.sqrt(np.mean(res ** 2, 0)), np.sqrt(np.mean(low ** 2, 0)),
                     np.sqrt(np.mean(block_means(res, stamps) ** 2, 0)))
    return out


def one_run(engine, seed, twin, tmp, args):
    """Simulate, calibrate and measure one randomized robot; returns a dict of figures."""
    variant, rotor = randomized_robot(builtin_urdf(), tmp, seed=seed)
    motion = DemoMotion.from_model(twin)
    t, q, qd, effort = ENGINES[engine](variant, motion, args.collect + args.eval,
                                       rotor_inertia=rotor, seed=seed)
    end = int(np.searchsorted(t, t[0] + args.collect))
    cal = Calibrator(twin)
    for k in range(end):
        cal.add(t[k], q[k], qd[k], effort[k])
    result = cal.fit()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        truth = RobotModel.from_urdf(variant)
    truth.pin_model.armature[:] = rotor
    held = slice(end, len(t))
    models = {'URDF': twin, 'calibrated': apply(twin, result), 'true': truth}
    return {'result': result,
            'floors': floors(models, (t[held], q[held], qd[held], effort[held]), args.cutoff)}


def print_run(engine, seed, run, names, cutoff):
    result = run['result']
    print(f'\n{engine}, robot {seed}: {"accepted" if result.accepted else "NOT accepted"}, '
          f'fit {result.fit_time_s:.2f} s on {result.samples} block means '
          f'({result.duration_s:.1f} s); held-out torque RMSE mean '
          f'{np.nanmean(result.rmse_before):.3f} -> {np.nanmean(result.rmse_after):.3f} N·m')
    print(f'  effort residual RMS through the Mirror, N·m: per sample (40 Hz) | per sample '
          f'({cutoff:g} Hz) | 20 ms block means')
    print('  ' + f'{"model":<11}' + ''.join(f'{j[-6:]:>8}' for j in names))
    for label, values in run['floors'].items():
        for kind, row in zip(('40 Hz', f'{cutoff:g} Hz', '20 ms'), values):
            print(f'  {label[:5] + " " + kind:<11}' + ''.join(f'{v:>8.3f}' for v in row))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[1])
    parser.add_argument('--seeds', type=int, default=3, help='randomized robots per engine')
    parser.add_argument('--engines', nargs='+', default=list(ENGINES), choices=list(ENGINES))
    parser.add_argument('--collect', type=float, default=17.5, help='s given to the calibrator')
    parser.add_argument('--eval', type=float, default=10.0, help='s of held-out motion')
    parser.add_argument('--cutoff', type=float, default=10.0,
                        help='a second Mirror accel_cutoff_hz for the per-sample figure')
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    with tempfile.TemporaryDirectory() as tmp:
        twin = RobotModel.from_urdf(urdf_without_coulomb(builtin_urdf(), Path(tmp) / 't.urdf'))
        print(f'Calibrator.add: {add_cost_us(twin):.2f} µs per sample (best of 3 x 1e5 calls)')
        runs = {}
        jobs = [(e, s) for e in args.engines for s in range(args.seeds)]
        for engine, seed in tqdm(jobs, desc='robots', unit='robot'):
            runs[engine, seed] = one_run(engine, seed, twin, Path(tmp), args)
    for (engine, seed), run in runs.items():
        print_run(engine, seed, run, twin.joint_names, args.cutoff)
    fits = [run['result'].fit_time_s for run in runs.values()]
    print(f'\nover {len(runs)} robots: {sum(r["result"].accepted for r in runs.values())} '
          f'calibrations accepted; fit time {min(fits):.2f}-{max(fits):.2f} s')
    for label in ('URDF', 'calibrated', 'true'):
        worst = np.max([run['floors'][label] for run in runs.values()], axis=0)
        print(f'  {label:<11} worst joint: {worst[0].max():.3f} N·m per sample (40 Hz), '
              f'{worst[1].max():.3f} ({args.cutoff:g} Hz), {worst[2].max():.3f} in 20 ms blocks')
    return 0


if __name__ == '__main__':
    sys.exit(main())
