"""The emulated robots of the tests: the plant with noise and a fault, a slower motion."""
# the slower motion and the monitor run on it live in robot_twin.fault_runs (the benchmark's)
from robot_twin.fault_runs import reported_levels, SpeedOverride  # noqa: F401
from twin_sim import resources
from twin_sim.faults import FaultScenario
from twin_sim.plant import Plant, step_schedule
from twin_sim.trajectory import DemoMotion, STREAM_HORIZON_S

NOISE = {'position': 1e-4, 'velocity': 1e-3, 'effort': 0.05}
"""Sensor noise on every joint (standard deviations: rad, rad/s, N·m), as the fault runs'."""


def noisy_plant_samples(model, rate_hz, seed, fault, end_s):
    """
    Yield ``(t, q, qd, effort)`` of the built-in arm at ``rate_hz`` until ``end_s``.

    The plant steps its physics at 1 kHz on the demo motion, commanded at 100 Hz, with
    :data:`NOISE` on every joint and ``fault`` (a fault scenario entry, dict) added.
    """
    faults = [{'type': 'sensor_noise', 'signal': signal, 'joint': joint, 'start_s': 0.0,
               'ramp_s': 0.0, 'size': size}
              for joint in model.joint_names for signal, size in NOISE.items()]
    scenario = FaultScenario.from_dict({'name': fault['type'], 'faults': faults + [fault]})
    motion = DemoMotion.from_model(model, fraction=0.3, period_s=6.0)
    dt, every = step_schedule(rate_hz, 1000.0)
    with Plant(resources.builtin_urdf(), scenario=scenario, dt=dt, publish_every=every,
               seed=seed, initial_q=motion.center) as plant:
        for k in range(int(end_s / dt)):
            if k % 10 == 0:                   # the demo motion commanded at 100 Hz
                q, qd, _ = motion.sample(plant.time + 0.37 * seed)
                plant.command_position(q, qd, extrapolate_s=STREAM_HORIZON_S)
            m = plant.step()
            if m is not None and plant.publish_step:
                yield m.t, m.q.copy(), m.qd.copy(), m.effort.copy()
