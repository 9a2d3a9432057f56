"""
What-if throughput (simulated s per wall s) against raw PyBullet; 1 -> 2 worker speed-up.

Prints, all measured in this run on this machine:

1. raw PyBullet stepping of the same arm (``TORQUE_CONTROL`` + ``stepSimulation`` +
   ``getJointStates`` per 1 kHz step, nothing else): simulated seconds per wall second;
2. the plant alone (``Plant.command_position`` + ``Plant.step``: computed-torque controller,
   friction, force-torque sensor), for the breakdown;
3. ``run_whatif`` with 1 worker (in-process): plant + twin (Mirror) + detector per step, and its
   ratio to (1) (goal >= 0.8 per core);
4. ``run_whatif`` with 2 worker processes, and its speed-up over (3) (goal >= 1.8 on 2 cores),
   pool start-up included; the start-up alone (a run of two 0.3 s samples) is printed too;
5. for the breakdown, the world alone on its trusted fast path (``set_control(...,
   validate=False)`` + ``step`` + ``measure``, what a fault-free what-if sample drives), and
   ``run_whatif`` with 1 worker and the scenario's *reduced-fidelity options*: the twin fed at
   250 Hz (``sample_rate_hz``) and the arm's controller at 500 Hz (``control_rate_hz``).
   These are labelled as such; the goals are judged on the default (full-rate) run.
6. the floor: the what-if world's own physics, ``stepSimulation`` alone on the plant's
   PyBullet world (the same arm with what the world adds for fidelity: Coulomb friction as
   velocity motors solved with the constraints, the force-torque sensor, the sensor body), and
   the same with one ``TORQUE_CONTROL`` command and one ``getJointStates`` per step (the
   least a Python-driven loop must do). A what-if sample runs at least this loop, so these
   bound what any what-if on this world can reach; the budget that 0.8x of raw leaves per
   step is printed next to them.

Usage: ``python benchmarks/bench_whatif.py [--samples 12] [--duration 4] [--repeat 3]``.
The machine may be shared: the load average is printed, the measurements are interleaved
(every repeat runs each configuration once), and the median of ``--repeat`` runs is reported
for each figure (all runs are printed too).
"""
import argparse
import os
from pathlib import Path
import time

import numpy as np
import pybullet

from robot_twin.whatif import load_scenario, prepare, run_whatif
from twin_sim.plant import Plant

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


def plant_only(setup):
    """Return simulated s per wall s of the plant following the reference, nothing else."""
    q, qd, qdd = setup.reference
    plant = Plant(URDF, dt=setup.scenario.dt, initial_q=q[0])
    try:
        t0 = time.perf_counter()
        for k in range(setup.scenario.steps):
            plant.command_position(q[k], qd[k], qdd[k])
            plant.step()
        wall = time.perf_counter() - t0
    finally:
        plant.close()
    return setup.scenario.steps * setup.scenario.dt / wall


def world_fast_path(setup):
    """Return simulated s per wall s of the world on its trusted fast path, nothing else."""
    q, qd, qdd = setup.reference
    plant = Plant(URDF, dt=setup.scenario.dt, initial_q=q[0])
    world = plant.world
    try:
        t0 = time.perf_counter()
        for k in range(setup.scenario.steps):
            world.set_control('position', q[k], qd[k], qdd[k], validate=False)
            world.step()
            world.measure()
        wall = time.perf_counter() - t0
    finally:
        plant.close()
    return setup.scenario.steps * setup.scenario.dt / wall


def world_floor(setup, with_io):
    """
    Return simulated s per wall s of the what-if world's physics alone.

    ``with_io``: also one torque command and one state read per step (as the raw loop does).
    """
    q = setup.reference[0]
    plant = Plant(URDF, dt=setup.scenario.dt, initial_q=q[0])
    world = plant.world
    client, body = world.client_id, world.body_id
    joints, read = list(world._idx), list(world._read_idx)
    torque = [0.0] * len(joints)
    try:
        t0 = time.perf_counter()
        if with_io:
            for _ in range(setup.scenario.steps):
                pybullet.setJointMotorControlArray(body, joints, pybullet.TORQUE_CONTROL,
                                                   forces=torque, physicsClientId=client)
                pybullet.stepSimulation(physicsClientId=client)
                pybullet.getJointStates(body, read, physicsClientId=client)
        else:
            for _ in range(setup.scenario.steps):
                pybullet.stepSimulation(physicsClientId=client)
        wall = time.perf_counter() - t0
    finally:
        plant.close()
    return setup.scenario.steps * setup.scenario.dt / wall


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=12)
    parser.add_argument('--duration', type=float, default=4.0, help='simulated s per sample')
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()

    scenario = load_scenario('payload_sweep')
    scenario.duration_s = args.duration
    scenario.detector = dict(scenario.detector,
                             commissioning_duration_s=min(2.0, 0.5 * args.duration))
    setup = prepare(scenario, URDF, seed=0)
    print(f'machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start')
    print(f'what-if: scenario payload_sweep, {args.samples} samples x {args.duration:g} s at '
          f'{1.0 / scenario.dt:g} Hz, median of {args.repeat} interleaved repeats')
    reduced = load_scenario('payload_sweep')
    reduced.duration_s = args.duration
    reduced.detector = dict(scenario.detector)
    reduced.sample_rate_hz, reduced.control_rate_hz = 250.0, 500.0
    raw, plant, fast, one, two, low, startup = [], [], [], [], [], [], []
    floor, floor_io = [], []
    sim_total = args.samples * args.duration
    probe = load_scenario('payload_sweep')
    probe.duration_s = 0.3
    probe.detector = dict(probe.detector, commissioning_duration_s=0.2)
    for _ in range(args.repeat):
        startup.append(run_whatif(probe, 2, urdf=URDF, workers=2).run['wall_s'])
        raw.append(raw_pybullet(args.duration))
        floor.append(world_floor(setup, with_io=False))
        floor_io.append(world_floor(setup, with_io=True))
        plant.append(plant_only(setup))
        fast.append(world_fast_path(setup))
        r1 = run_whatif(scenario, args.samples, urdf=URDF, seed=0, workers=1)
        one.append((r1.run['sim_s_per_wall_s'], r1.run['wall_s']))
        r2 = run_whatif(scenario, args.samples, urdf=URDF, seed=0, workers=2)
        two.append((r2.run['sim_s_per_wall_s'], r2.run['wall_s']))
        assert r1.summary == r2.summary, 'summaries differ between 1 and 2 workers'
        low.append(run_whatif(reduced, args.samples, urdf=URDF, seed=0,
                              workers=1).run['sim_s_per_wall_s'])
        print(f'  repeat {len(raw)}: load average {os.getloadavg()[0]:.2f}', flush=True)

    def median(pairs):
        pairs = sorted(pairs)
        return pairs[len(pairs) // 2] if len(pairs) % 2 else tuple(
            0.5 * (np.array(pairs[len(pairs) // 2 - 1]) + np.array(pairs[len(pairs) // 2])))

    raw_best, plant_best = float(np.median(raw)), float(np.median(plant))
    one_best, two_best = median(one), median(two)
    fast_best, low_best = float(np.median(fast)), float(np.median(low))
    print(f'raw PyBullet stepping            : {raw_best:8.1f} sim s / wall s '
          f'({1e6 / (raw_best * 1000):.1f} us per step)')
    print(f'plant only (Plant.step)          : {plant_best:8.1f} sim s / wall s '
          f'({1e6 / (plant_best * 1000):.1f} us per step)')
    print(f'world, trusted fast path         : {fast_best:8.1f} sim s / wall s '
          f'({1e6 / (fast_best * 1000):.1f} us per step)')
    print(f'what-if, 1 worker (in-process)   : {one_best[0]:8.2f} sim s / wall s '
          f'({1e6 / (one_best[0] * 1000):.1f} us per step; {sim_total:g} sim s in '
          f'{one_best[1]:.1f} s)')
    print(f'  ratio to raw PyBullet per core : {one_best[0] / raw_best:8.3f}  (goal >= 0.8)')
    print(f'  ratio to the plant alone       : {one_best[0] / plant_best:8.3f}')
    print(f'what-if, 2 workers (processes)   : {two_best[0]:8.2f} sim s / wall s '
          f'({sim_total:g} sim s in {two_best[1]:.1f} s, pool start-up included)')
    print(f'  speed-up 1 -> 2 workers        : {two_best[0] / one_best[0]:8.3f}  (goal >= 1.8)')
    start = float(np.median(startup))
    rest = two_best[1] - start
    print(f'  pool start-up (2 x 0.3 s run)  : {start:8.2f} s; without it the 2-worker '
          f'run would take {rest:.1f} s: speed-up {one_best[1] / rest:.3f}')
    print(f'reduced fidelity, 1 worker (twin 250 Hz, control 500 Hz): {low_best:8.2f} sim s / '
          f'wall s ({1e6 / (low_best * 1000):.1f} us per step), ratio to raw '
          f'{low_best / raw_best:.3f}')
    floor_best, floor_io_best = float(np.median(floor)), float(np.median(floor_io))
    budget = 1e6 / (0.8 * raw_best * 1000)
    print(f'floor: what-if world, stepSimulation alone : {floor_best:8.1f} sim s / wall s '
          f'({1e6 / (floor_best * 1000):.1f} us per step), ratio to raw '
          f'{floor_best / raw_best:.3f}')
    print(f'floor: + one torque command and state read  : {floor_io_best:8.1f} sim s / wall s '
          f'({1e6 / (floor_io_best * 1000):.1f} us per step), ratio to raw '
          f'{floor_io_best / raw_best:.3f}')
    print(f'  0.8x raw leaves {budget:.1f} us per step for everything; stepping the world alone '
          f'takes {1e6 / (floor_best * 1000):.1f} us of it, the command and read '
          f'{1e6 / (floor_io_best * 1000) - 1e6 / (floor_best * 1000):.1f} us more')
    print(f'  all runs (sim s / wall s): floor {np.round(floor, 1).tolist()}, floor + io '
          f'{np.round(floor_io, 1).tolist()}')
    print(f'  all runs (sim s / wall s): raw {np.round(raw, 1).tolist()}, plant '
          f'{np.round(plant, 1).tolist()}, world fast path {np.round(fast, 1).tolist()}, '
          f'1 worker {[round(x[0], 2) for x in one]}, 2 workers '
          f'{[round(x[0], 2) for x in two]}, reduced {np.round(low, 2).tolist()}')
    print(f'load average at end {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
