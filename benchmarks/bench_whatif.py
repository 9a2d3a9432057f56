"""
What-if throughput against raw PyBullet, both robot engines, 1 and 2 workers; and agreement.

Prints, all measured in this run on this machine (median of ``--repeat`` interleaved runs):

1. raw PyBullet stepping of the same arm (``TORQUE_CONTROL`` + ``stepSimulation`` +
   ``getJointStates`` per 1 kHz step, nothing else): simulated seconds per wall second;
2. ``run_whatif`` on the ``pybullet`` engine (the plant, the live twin and the detector stepped
   together in Python: the original path) with 1 and 2 workers;
3. ``run_whatif`` on the ``mujoco`` engine (the robot in MuJoCo's C rollout with its drive in
   the engine, the twin and the detector over the recorded samples) with 1 and 2 workers,
   with the share of its parts for one sample (the rollout, the twin's batch dynamics, the
   detector);
4. agreement of the two engines on the same variants of ``friction_wear`` (``--wear`` samples
   of 14 s): per-joint tracking and torque RMS, effort residual RMS, largest score, the first
   alarm's time, joint and type.

Throughput per core: a 1-worker run is in-process (one core); the 2-worker run includes the
pool start-up. The machine may be shared: the load average is printed before and after.

Usage: ``python benchmarks/bench_whatif.py [--samples 6] [--duration 4] [--repeat 3]
[--wear 3]``.
"""
import argparse
from dataclasses import replace
import math
import os
from pathlib import Path
import time

import numpy as np
import pybullet

from robot_twin.whatif import load_scenario, prepare, run_sample, run_whatif

ROOT = Path(__file__).resolve().parents[1]
URDF = ROOT / 'urdf' / 'robot_twin_arm.urdf'


def raw_pybullet(sim_s, dt=0.001):
    """Return simulated s per wall s of a bare PyBullet loop on the arm (torque control)."""
    client = pybullet.connect(pybullet.DIRECT)
    try:
        body = pybullet.loadURDF(str(URDF), useFixedBase=True,
                                 flags=pybullet.URDF_USE_INERTIA_FROM_FILE,
                                 physicsClientId=client)
        pybullet.setPhysicsEngineParameter(fixedTimeStep=dt, numSubSteps=0,
                                           physicsClientId=client)
        pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
        joints = [i for i in range(pybullet.getNumJoints(body, physicsClientId=client))
                  if pybullet.getJointInfo(body, i, physicsClientId=client)[2]
                  == pybullet.JOINT_REVOLUTE]
        pybullet.setJointMotorControlArray(body, joints, pybullet.VELOCITY_CONTROL,
                                           forces=[0.0] * len(joints), physicsClientId=client)
        torque = [0.0] * len(joints)
        steps = int(round(sim_s / dt))
        t0 = time.perf_counter()
        for _ in range(steps):
            pybullet.setJointMotorControlArray(body, joints, pybullet.TORQUE_CONTROL,
                                               forces=torque, physicsClientId=client)
            pybullet.stepSimulation(physicsClientId=client)
            pybullet.getJointStates(body, joints, physicsClientId=client)
        return sim_s / (time.perf_counter() - t0)
    finally:
        pybullet.disconnect(physicsClientId=client)


def breakdown(scenario):
    """Time the parts of one MuJoCo-engine sample (cProfile's cumulative times), s per sim s."""
    import cProfile
    import pstats
    setup = prepare(scenario, URDF, seed=0)
    run_sample(setup, 0)                               # warm the per-process caches
    profile = cProfile.Profile()
    profile.enable()
    run_sample(setup, 1)
    profile.disable()
    stats = pstats.Stats(profile).stats
    parts = {'MuJoCo rollout': ('rollout',), 'feed-forward + twin dynamics': (
        'inverse_dynamics', 'forward_dynamics'), 'detector': ('_watch',)}
    out = {}
    for label, names in parts.items():
        out[label] = sum(v[3] for k, v in stats.items() if k[2] in names) / scenario.duration_s
    out['whole sample'] = sum(v[3] for k, v in stats.items()
                              if k[2] == 'simulate_engine') / scenario.duration_s
    return out


def agreement(samples):
    """Run the same friction_wear variants on both engines; print them side by side."""
    scenario = replace(load_scenario('friction_wear'), duration_s=14.0)
    runs = {e: run_whatif(replace(scenario, engine=e), samples, urdf=URDF, seed=0)
            for e in ('pybullet', 'mujoco')}
    print(f'agreement on friction_wear (joint3 wear from 8 s), {samples} variants x 14 s:')
    for a, b in zip(runs['pybullet'].samples, runs['mujoco'].samples):
        print(f'  variant {a.index}:')
        for name, scale, unit in (('tracking_rms_rad', 1e3, 'mrad'),
                                  ('torque_rms_nm', 1.0, 'N m'),
                                  ('effort_residual_rms_nm', 1.0, 'N m')):
            print(f'    {name:24s} [{unit}] pybullet {np.round(a.metrics[name] * scale, 3)}')
            print(f'    {"":24s}        mujoco   {np.round(b.metrics[name] * scale, 3)}')
        print(f'    max score  pybullet {a.max_score:.2f}  mujoco {b.max_score:.2f}')
        print(f'    first alarm pybullet {a.alarm_time_s:.3f} s {a.alarm_joint} '
              f'{a.alarm_fault_type}; mujoco {b.alarm_time_s:.3f} s {b.alarm_joint} '
              f'{b.alarm_fault_type}')
    for key in ('torque_rms_nm', 'tracking_rms_rad', 'effort_residual_rms_nm'):
        a = np.array([s.metrics[key] for s in runs['pybullet'].samples])
        b = np.array([s.metrics[key] for s in runs['mujoco'].samples])
        rel = np.abs(b - a) / np.maximum(np.abs(a), 1e-12)
        print(f'  {key}: median relative difference {np.median(rel):.3f}, largest '
              f'{rel.max():.3f} (joint {int(np.argmax(rel.max(axis=0))) + 1})')
    delays = [b.alarm_time_s - a.alarm_time_s for a, b in
              zip(runs['pybullet'].samples, runs['mujoco'].samples)
              if not (math.isnan(a.alarm_time_s) or math.isnan(b.alarm_time_s))]
    if delays:
        print(f'  first alarm, mujoco minus pybullet: {np.round(delays, 3).tolist()} s')


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--samples', type=int, default=6)
    parser.add_argument('--duration', type=float, default=4.0, help='simulated s per sample')
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--wear', type=int, default=3, help='variants for the agreement part')
    args = parser.parse_args()

    base = replace(load_scenario('payload_sweep'), duration_s=args.duration)
    base.detector = dict(base.detector, commissioning_duration_s=min(2.0, 0.5 * args.duration))
    print(f'machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start')
    print(f'what-if: payload_sweep, {args.samples} samples x {args.duration:g} s at 1 kHz, '
          f'median of {args.repeat} interleaved repeats')
    figures = {k: [] for k in ('raw', 'pb1', 'pb2', 'mj1', 'mj2')}
    for _ in range(args.repeat):
        figures['raw'].append(raw_pybullet(args.duration))
        for engine, key in (('pybullet', 'pb'), ('mujoco', 'mj')):
            scenario = replace(base, engine=engine)
            one = run_whatif(scenario, args.samples, urdf=URDF, seed=0, workers=1)
            two = run_whatif(scenario, args.samples, urdf=URDF, seed=0, workers=2)
            assert one.summary == two.summary, 'summaries differ between 1 and 2 workers'
            figures[key + '1'].append(one.run['sim_s_per_wall_s'])
            figures[key + '2'].append(two.run['sim_s_per_wall_s'])
        print(f'  repeat {len(figures["raw"])}: load average {os.getloadavg()[0]:.2f}',
              flush=True)
    med = {k: float(np.median(v)) for k, v in figures.items()}
    raw = med['raw']

    def line(label, value, extra=''):
        print(f'{label:38s}: {value:8.2f} sim s / wall s ({1e3 / value:6.1f} us per step) '
              f'{extra}')
    line('raw PyBullet stepping', raw)
    line('what-if pybullet engine, 1 worker', med['pb1'], f'{med["pb1"] / raw:.3f} x raw')
    line('what-if pybullet engine, 2 workers', med['pb2'],
         f'speed-up {med["pb2"] / med["pb1"]:.2f}')
    line('what-if mujoco engine, 1 worker', med['mj1'], f'{med["mj1"] / raw:.3f} x raw')
    line('what-if mujoco engine, 2 workers', med['mj2'],
         f'speed-up {med["mj2"] / med["mj1"]:.2f}')
    print(f'mujoco / pybullet engine, 1 worker: {med["mj1"] / med["pb1"]:.2f} x')
    print('  all runs (sim s / wall s): ' + ', '.join(
        f'{k} {np.round(v, 2).tolist()}' for k, v in figures.items()))
    parts = breakdown(replace(base, engine='mujoco', duration_s=10.0,
                              detector=dict(base.detector, commissioning_duration_s=5.0)))
    print('one mujoco-engine sample of 10 s (profiled, so slower than above), wall s per '
          'simulated s:')
    for label, value in parts.items():
        print(f'  {label:30s} {value * 1e3:7.2f} ms  ({value * 1e3:.2f} us per step)')
    if args.wear:
        agreement(args.wear)
    print(f'load average at end {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
