"""The emulated robots of the tests: the plant with noise and a fault, a slower motion."""
import numpy as np

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


class SpeedOverride:
    """
    A motion followed at ``factor`` of its speed from ``at`` s on, ramped in over ``ramp_s``.

    The path rate goes from 1 to ``factor`` as ``3 x^2 - 2 x^3`` (``x`` from 0 to 1), as an
    operator's override reaches a controller: the same path, slower, without a jerk. A
    ``factor`` of 0 is a planned stop ``ramp_s`` long (the acceleration stays continuous).
    """

    def __init__(self, motion, factor, at=4.0, ramp_s=0.5):
        self.motion, self.factor, self.at, self.ramp_s = motion, factor, at, ramp_s
        self.period_s = motion.period_s

    def sample(self, t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        f, ramp = self.factor, self.ramp_s
        x = np.clip((t - self.at) / ramp, 0.0, 1.0)
        rate = 1.0 + (f - 1.0) * (3.0 * x ** 2 - 2.0 * x ** 3)
        rate_dot = (f - 1.0) * (6.0 * x - 6.0 * x ** 2) / ramp
        path = self.at + ramp * (x + (f - 1.0) * (x ** 3 - 0.5 * x ** 4)) \
            + f * np.fmax(t - self.at - ramp, 0.0)
        q, qd, qdd = self.motion.sample(np.where(t > self.at, path, t))
        return q, qd * rate[:, None], qdd * rate[:, None] ** 2 + qd * rate_dot[:, None]


def reported_levels(case, thresholds_file, config, motion, seconds):
    """
    Run ``case``'s simulated robot on ``motion`` past a monitor loaded from its commissioning.

    ``motion(robot_motion)`` gives the motion to run. Returns the monitor and the level it
    reported every block from 2 s on (after the pre-roll).
    """
    from robot_twin import fault_runs
    from twin_anomaly.monitor import AnomalyMonitor
    robot = fault_runs.SimulatedRobot(case, thresholds_file.parent)
    robot.motion = motion(robot.motion)
    monitor = AnomalyMonitor(robot.twin_model, config, thresholds_file=thresholds_file)
    twin = fault_runs._TwinSide(monitor.calibrated_model or robot.twin_model, monitor)
    levels, next_report = [], 2.0
    for now, m in robot.samples(seconds, [], np.random.default_rng(9)):
        if m.t < fault_runs.PRE_ROLL_S:
            continue
        twin.feed(now, m)
        if m.t >= next_report:
            next_report += config.block_s
            levels.append(monitor.report().level)
    return monitor, levels
