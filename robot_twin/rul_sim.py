"""
Offline RUL runs: the emulated robot wears, the twin's mirror and RUL monitor watch (no ROS).

:func:`simulate_rul` drives :class:`twin_sim.plant.Plant` along the demo motion under a fault
scenario (e.g. incipient friction wear with a known growth), runs the live twin's
:class:`twin_sim.mirror.Mirror` and :class:`twin_anomaly.rul_monitor.RulMonitor` on every sample
exactly as the node does, and records the monitor's report at a fixed rate. With the monitor's
``time_scale`` a few minutes of simulated motion stand for many operating hours (time
compression), which is how the tests and ``benchmarks/bench_rul_plant.py`` check the RUL
against the true time to the configured service friction.
"""
from dataclasses import dataclass
import math

import numpy as np
from twin_anomaly.rul_monitor import RulMonitor
from twin_sim.faults import FaultScenario
from twin_sim.mirror import Mirror
from twin_sim.plant import Plant
from twin_sim.predictor import Predictor
from twin_sim.resources import urdf_or_builtin
from twin_sim.trajectory import DemoMotion
from twin_sim.urdf_model import RobotModel

__all__ = ['RulRun', 'compressed_config', 'simulate_rul', 'time_to_friction']

_WALL_START = 1.8e9      # wall-clock epoch (2027-01-15) the simulated stamps are placed at


@dataclass
class RulRun:
    """
    What :func:`simulate_rul` recorded, one row per report.

    Attributes
    ----------
    t : (R,) s
        Plant time of each report.
    operating_hours : (R,)
        The monitor's operating-hour counter.
    rul, lower, upper, health : (R, n)
        RUL median and interval (operating hours; NaN: no number) and health index per joint.
    levels, actions, messages : list of list of str
        Per report, per joint.
    reports : list of RulReport
        The last report (and those with a ledger entry), for inspection.
    joint_names : list of str

    """

    t: np.ndarray
    operating_hours: np.ndarray
    rul: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    health: np.ndarray
    levels: list
    actions: list
    messages: list
    reports: list
    joint_names: list


def compressed_config(joint='joint3', added_at_service_nm=2.5, reference_speed=0.2, urdf=None):
    """
    Monitor settings for time-compressed runs: one second of motion is one operating hour.

    The service friction of ``joint`` is its URDF friction at ``reference_speed`` plus
    ``added_at_service_nm``; 6 s epochs, a 30 s baseline, 30 s of history before an RUL, WARN
    within 60 h and ERROR within 20 h (the settings of test/test_rul_plant.py and
    benchmarks/bench_rul_plant.py).
    """
    model = RobotModel.from_urdf(urdf_or_builtin(urdf))
    j = model.joint_names.index(joint)
    service = model.friction[j] + model.damping[j] * reference_speed + added_at_service_nm
    return {'sample_period_s': 0.004, 'health_interval_s': 6.0, 'baseline_duration_s': 30.0,
            'min_history_s': 30.0, 'time_scale': 3600.0,
            'reference_speed_rad_s': reference_speed,
            'service_friction_nm': f'{joint}={service:.6f}', 'warn_horizon_hours': 60.0,
            'error_horizon_hours': 20.0, 'operating_hours_per_day': 24.0}


def time_to_friction(scenario, joint, added_nm):
    """
    Plant time at which the scenario's friction increases on ``joint`` reach ``added_nm``.

    Only ``friction_increase`` faults in ``add`` mode count (their levels are known
    piecewise-linear functions of time). Returns inf if they never reach it.
    """
    faults = [f for f in scenario.faults if f.type == 'friction_increase' and
              f.joint == joint and f.mode == 'add']
    if not faults:
        return math.inf
    ends = [f.start_s + f.ramp_s for f in faults]
    grid = np.unique(np.concatenate([[f.start_s for f in faults], ends]))
    grid = np.unique(np.concatenate([grid, np.linspace(grid[0], grid[-1], 20001)]))
    added = np.array([sum(f.level(t) * f.size for f in faults) for t in grid])
    above = np.flatnonzero(added >= added_nm)
    if above.size == 0:
        return math.inf
    i = above[0]
    if i == 0:
        return float(grid[0])
    return float(np.interp(added_nm, added[i - 1:i + 1], grid[i - 1:i + 1]))


def simulate_rul(scenario, config, *, duration_s, seed=0, motion_seed=None, dt=0.002,
                 report_every_s=1.0, urdf=None, period_s=6.0, fraction=0.3, progress=None):
    """
    Run the worn plant with the twin and the RUL monitor.

    Parameters
    ----------
    scenario : FaultScenario, str or Path
        Faults (a scenario, a file, or a packaged name).
    config : RulConfig or dict
        The monitor's settings (``log_path`` included, if persistence is wanted).
    duration_s : float
        Simulated time, s.
    seed : int
        The plant's seed (sensor noise).
    motion_seed : int, optional
        Seed of the demo motion's phases (default ``seed``).
    dt : float
        Plant step and sample period, s.
    report_every_s : float
        Plant time between reports, s.
    urdf : str or Path, optional
        Robot (default the built-in arm); the twin uses its nominal model.
    period_s, fraction : float
        Demo motion period (s) and share of the joint limits.
    progress : callable, optional
        Called with the plant time after every report (e.g. a tqdm update).

    Returns
    -------
    RulRun

    """
    urdf = urdf_or_builtin(urdf)
    model = RobotModel.from_urdf(urdf)
    if not isinstance(scenario, FaultScenario):
        scenario = FaultScenario.load(scenario)
    motion = DemoMotion.from_model(model, period_s=period_s, fraction=fraction,
                                   seed=seed if motion_seed is None else motion_seed)
    monitor = RulMonitor.from_model(model, config)
    mirror = Mirror(Predictor(model))
    rows, reports = [], []
    every = max(1, int(round(report_every_s / dt)))
    steps = int(round(duration_s / dt))
    # the reference is computed once (checked finite by DemoMotion) and fed to the world's
    # trusted fast path, as the what-if runs do
    q_ref, qd_ref, qdd_ref = motion.sample(np.arange(steps) * dt)
    try:
        with Plant(urdf, scenario=scenario, dt=dt, seed=seed, initial_q=motion.center) as plant:
            set_control = plant.world.set_control
            for k in range(steps):
                set_control('position', q_ref[k], qd_ref[k], qdd_ref[k], validate=False)
                m = plant.step()
                if m is not None:
                    r = mirror.update(m.t, m.q, m.qd, m.effort)
                    if r is not None:
                        monitor.update(m.t, m.q, m.qd, m.effort, r.effort_residual)
                if (k + 1) % every == 0:
                    report = monitor.report(_WALL_START + plant.time)
                    rows.append((plant.time, report))
                    if report.ledger:
                        reports.append(report)
                    if progress is not None:
                        progress(plant.time)
    finally:
        monitor.close()
    if rows:
        reports.append(rows[-1][1])
    return _collect(rows, reports, model.joint_names)


def _collect(rows, reports, names):
    def field(name):
        return np.array([[getattr(jr, name) for jr in rep.joints] for _, rep in rows], float)

    return RulRun(
        t=np.array([t for t, _ in rows]),
        operating_hours=np.array([rep.operating_hours for _, rep in rows]),
        rul=field('rul_hours'), lower=field('rul_lower_hours'),
        upper=field('rul_upper_hours'), health=field('health_index'),
        levels=[[jr.level for jr in rep.joints] for _, rep in rows],
        actions=[[jr.recommended_action for jr in rep.joints] for _, rep in rows],
        messages=[[jr.message for jr in rep.joints] for _, rep in rows],
        reports=reports, joint_names=list(names))
