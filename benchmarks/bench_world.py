"""
Step rate of SimWorld against raw PyBullet stepSimulation on the same URDF.

Baselines (same URDF, dt 1 ms, gravity on, 5000 steps each, interleaved ``--rounds`` times):

* ``raw``: PyBullet with the world's physics set-up (same body: Coulomb friction as velocity
  motors, joint damping, no link damping) and nothing but ``stepSimulation`` in the loop; the
  cost of the physics alone, so ``world / raw`` is the share left after the world's Python.
* ``raw default``: ``loadURDF`` with PyBullet's defaults (its velocity motors hold the joints)
  and ``stepSimulation``; what a naive PyBullet script pays.

Measured: ``world torque`` (``SimWorld.step`` with a zero torque command, re-sent every step
as PyBullet requires, so it makes exactly the motion of ``raw``: the arm falls onto its
limits), ``world position`` (the computed-torque PID: a state read, pinocchio RNEA
and the torque command every step) and ``plant`` (``Plant.step``: position hold, measurement,
no faults). Run: ``.venv/bin/python benchmarks/bench_world.py``.
"""
import argparse
from pathlib import Path
import statistics
import sys
import time

import pybullet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin_sim.plant import Plant  # noqa: E402
from twin_sim.world import SimWorld  # noqa: E402

ARM = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'
POSE = [0.2, 0.4, 0.0, -1.0, 0.0, 0.8, 0.0]


def raw_same_physics(world):
    """Step the world's own PyBullet body with nothing else in the loop."""
    client = world.client_id

    def run(steps):
        for _ in range(steps):
            pybullet.stepSimulation(physicsClientId=client)
    return run


def raw_default(path):
    client = pybullet.connect(pybullet.DIRECT)
    body = pybullet.loadURDF(str(path), useFixedBase=True,
                             flags=pybullet.URDF_USE_INERTIA_FROM_FILE, physicsClientId=client)
    pybullet.setPhysicsEngineParameter(fixedTimeStep=0.001, physicsClientId=client)
    pybullet.setGravity(0, 0, -9.81, physicsClientId=client)
    fixed = pybullet.JOINT_FIXED
    movable = [j for j in range(pybullet.getNumJoints(body, physicsClientId=client))
               if pybullet.getJointInfo(body, j, physicsClientId=client)[2] != fixed]
    for i, j in enumerate(movable):
        pybullet.resetJointState(body, j, POSE[i], 0.0, physicsClientId=client)

    def run(steps):
        for _ in range(steps):
            pybullet.stepSimulation(physicsClientId=client)
    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--steps', type=int, default=5000)
    parser.add_argument('--rounds', type=int, default=5)
    args = parser.parse_args()

    torque_world = SimWorld(ARM)
    torque_world.reset(POSE)
    torque_world.set_control('torque', [0.0] * torque_world.n)   # same motion as 'raw'
    position_world = SimWorld(ARM)
    position_world.reset(POSE)
    raw_world = SimWorld(ARM)
    raw_world.reset(POSE)
    plant = Plant(ARM, initial_q=POSE)

    def plant_run(steps):
        for _ in range(steps):
            plant.step()

    cases = {
        'raw': raw_same_physics(raw_world),
        'raw default': raw_default(ARM),
        'world torque': torque_world.step,
        'world position': position_world.step,
        'plant': plant_run,
    }
    rates = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, run in cases.items():
            start = time.perf_counter()
            run(args.steps)
            rates[name].append(args.steps / (time.perf_counter() - start))
    print(f'SimWorld step rate, {ARM.name}, dt 1 ms, {args.steps} steps x {args.rounds} '
          f'rounds (interleaved); median steps/s:')
    median = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in median.items():
        spread = f'{min(rates[name]):.0f}..{max(rates[name]):.0f}'
        print(f'  {name:15s} {value:9.0f} steps/s  ({1e6 / value:6.1f} us/step, range '
              f'{spread})')
    print(f'ratio world torque / raw   = {median["world torque"] / median["raw"]:.2f} '
          f'(goal >= 0.8)')
    print(f'ratio world position / raw = {median["world position"] / median["raw"]:.2f}')
    print(f'ratio world torque / raw default = '
          f'{median["world torque"] / median["raw default"]:.2f}')
    print(f'ratio plant / raw          = {median["plant"] / median["raw"]:.2f}')
    print(f'real-time factor of the plant at 1 kHz: {median["plant"] / 1000.0:.1f}x')


if __name__ == '__main__':
    main()
