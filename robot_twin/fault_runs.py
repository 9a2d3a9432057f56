"""
Offline fault runs: robots that differ from the twin, with faults, watched by its monitor.

A simulated robot with faults, watched by the twin's own anomaly monitor, without ROS.

This is the data behind ``robot-twin anomaly train`` (the fault classifier) and
``benchmarks/bench_anomaly.py``. One *case* is a robot beside the twin:

- an arm (:data:`ARMS`: the built-in arm, pybullet_data's KUKA iiwa) simulated by MuJoCo
  (:class:`twin_sim.mujoco_world.MujocoWorld`) or PyBullet (:class:`twin_sim.plant.Plant`),
  so that no model learns one engine's quirks;
- that differs from the URDF the twin predicts with (:func:`robot_variant`): every moved
  body's mass and rotational inertia off by up to 8 % and its centre of mass by 5 mm, joint
  damping 1-4x the URDF's, Coulomb friction and (MuJoCo) rotor inertia that the URDF does not
  have, white sensor noise of 1e-4 rad, 1e-3 rad/s, 0.05 N·m (wrench 0.2 N, 0.01 N·m);
- moving along a smooth periodic motion (:class:`twin_sim.trajectory.DemoMotion`) under the
  engine's own position controller.

:func:`commission` runs a case fault-free for the monitor's commissioning time (calibration,
then thresholds) and saves the monitor's file. :func:`run_fault` runs the same robot again
from rest with one fault (a :mod:`twin_sim.faults` mapping) and a monitor that loads that file
(the twin restarted beside a commissioned robot), and records the robot-level score, the
alarms with their fault type, joint and confidence, the per-sample cost of the monitor and,
for training, the monitor's evidence while alarmed, labelled with the truth. Sensor faults
act on the noisy measurement (a frozen sensor repeats its last reading exactly); physical
faults act on the engine. :func:`nominal_run` commissions and then monitors fault-free
motion in one run (false alarms, including any at the end of commissioning).
:func:`fault_catalog` lists the faults of every type the plant knows, on chosen joints, at
two sizes, abrupt and incipient.
:func:`override_run` runs a commissioned robot fault-free at a lower speed override
(:class:`SpeedOverride`: the same path, slower), as ``benchmarks/bench_override.py`` does for
several arms, motions and overrides (false alarms).
:func:`run_many` runs tasks on worker processes with a tqdm progress bar.
"""
from concurrent.futures import as_completed, ProcessPoolExecutor
from dataclasses import dataclass, field
import math
import multiprocessing
from pathlib import Path
import tempfile
import time
import warnings

import numpy as np
from twin_anomaly.classifier import EPISODE_AGE_CAP_S

__all__ = ['ARMS', 'Case', 'FaultSpec', 'RunResult', 'SpeedOverride', 'commission',
           'fault_catalog', 'monitor_config', 'nominal_run', 'override_run', 'reported_levels',
           'robot_variant', 'run_fault', 'run_many']

#: Arms the runs know (arm_urdf resolves them); _CENTER holds their centre poses, rad.
ARMS = ('builtin', 'iiwa')
_CENTER = {'builtin': (0.0, 0.5, 0.0, -1.0, 0.0, 0.6, 0.0),
           'iiwa': (0.0, 0.5, 0.0, -1.0, 0.0, 0.7, 0.0)}
NOISE = {'position': 1e-4, 'velocity': 1e-3, 'effort': 0.05, 'force': 0.2, 'torque': 0.01}
"""White sensor noise of every simulated robot (standard deviations; rad, rad/s, N·m, N)."""
PRE_ROLL_S = 1.5
"""Fault runs: the monitor joins this long after the robot starts (after the fade-in), s."""
FAULT_AT_S = 3.0
"""Fault runs: plant time at which the fault starts, s."""
_DT = 0.001
_CHUNK = 5                   # MuJoCo steps per rollout between fault-effect updates
_ROWS_EVERY_S = 0.1          # evidence is kept every this long while alarmed
_ROWS_FOR_S = EPISODE_AGE_CAP_S    # ... for this long after the first alarm (the classifier
#                                    sees no older episode)


def arm_urdf(name):
    """Return the URDF path of a named arm (:data:`ARMS`) or a path given as is."""
    if name == 'builtin':
        from twin_sim import resources
        return str(resources.builtin_urdf())
    if name == 'iiwa':
        import pybullet_data
        return str(Path(pybullet_data.getDataPath()) / 'kuka_iiwa' / 'model.urdf')
    if Path(name).is_file():
        return str(name)
    raise ValueError(f'unknown arm {name!r}; use one of {list(ARMS)} or a URDF path')


def monitor_config(**overrides):
    """Return the monitor settings of the offline runs (commissioning 30 s by default)."""
    from twin_anomaly.monitor import MonitorConfig
    return MonitorConfig(**overrides)


@dataclass(frozen=True)
class Case:
    """
    One simulated robot beside the twin, and its motion.

    Attributes
    ----------
    arm : str
        A name of :data:`ARMS` (or a URDF path).
    engine : str
        ``'mujoco'`` or ``'pybullet'``.
    seed, index : int
        Which randomized variant of the arm (:func:`robot_variant`).
    motion_seed : int
        Phases and harmonics of the motion.
    period_s, fraction : float
        Period of the motion, s, and the share of the joint and velocity limits it uses.
    center : tuple of float, optional
        The motion's centre pose, rad (m), model joint order; default the named arm's, or
        zeros for a URDF path (an arm whose zero pose takes much of its effort limits
        against gravity needs one).
    sample_rate_hz : float
        Rate at which the robot sends its samples to the twin, Hz: the plant steps at 1 kHz
        and every ``1000 / sample_rate_hz``-th step is sent (1000: every step), the steps
        :class:`twin_sim.plant.Plant` sends with ``publish_every`` (the same stamps, and the
        same rule, :func:`twin_sim.plant.step_schedule`). Unlike the plant's sensor faults,
        which see every step, the noise and sensor faults of these runs act on the sent
        samples only, as they would on a real robot's messages: a dropout draws once per sent
        sample, and a delay holds back whole sent samples, whose stamps stay on the sample
        grid (as the plant's delay does).

    """

    arm: str = 'builtin'
    engine: str = 'mujoco'
    seed: int = 0
    index: int = 0
    motion_seed: int = 0
    period_s: float = 4.0
    fraction: float = 0.35
    sample_rate_hz: float = 1000.0
    center: tuple = None

    def __post_init__(self):
        from twin_sim.plant import PlantError, step_schedule
        try:
            step_schedule(self.sample_rate_hz, 1.0 / _DT)
        except PlantError:
            raise ValueError(f'sample_rate_hz must divide {1.0 / _DT:g} Hz (e.g. 1000, 500, '
                             f'250, 125), got {self.sample_rate_hz}') from None

    @property
    def stride(self):
        """Plant steps per sample sent (the plant's ``publish_every``)."""
        from twin_sim.plant import step_schedule
        return step_schedule(self.sample_rate_hz, 1.0 / _DT)[1]

    @property
    def name(self):
        """Short label, e.g. ``builtin/mujoco/s0i3`` (``.../s0i3@125Hz`` below 1 kHz)."""
        rate = '' if self.stride == 1 else f'@{self.sample_rate_hz:g}Hz'
        return f'{Path(self.arm).stem}/{self.engine}/s{self.seed}i{self.index}{rate}'


@dataclass(frozen=True)
class FaultSpec:
    """
    One fault to inject and its truth.

    Attributes
    ----------
    fault : dict
        The fault as a scenario mapping (:func:`twin_sim.faults.fault_from_dict`).
    fault_type : str
        Its type (a plant fault type name).
    joint : str
        The faulty joint; ``''`` for robot-level faults (payload, dropout, delay).
    mode : str
        ``'abrupt'`` or ``'incipient'``.
    size : str
        Label of the size (``'small'``, ``'large'``, or a description).
    onset_s : float
        When the fault starts, plant time, s.
    full_s : float
        When it reaches its full size, s (``onset_s`` for abrupt faults).
    duration_s : float
        How long the run goes on after ``full_s``, s.

    """

    fault: dict
    fault_type: str
    joint: str
    mode: str
    size: str
    onset_s: float
    full_s: float
    duration_s: float = 3.0

    @property
    def end_s(self):
        """Plant time at which the run ends, s."""
        return self.full_s + self.duration_s


@dataclass
class RunResult:
    """
    What the monitor did in one run.

    Attributes
    ----------
    case : Case
    spec : FaultSpec or None
        None for a nominal run.
    t : (K,) float array
        Report stamps (every block), s of plant time.
    score : (K,) float array
        Robot score (threshold 1).
    alarm : (K,) bool array
        Robot alarm raised.
    monitored_from : float
        Stamp from which the monitor was monitoring, s.
    first_alarm : dict or None
        The first alarm at or after ``monitored_from``: ``t`` (when raised), ``since``,
        ``joint``, ``fault_type``, ``confidence``, and the same at ``decided`` (the verdict
        reported ``decision_s`` later, or at the episode's end if earlier), and at ``last``
        (the last verdict of the first alarm episode: at the run's end, or before it cleared).
    alarms : list of (float, float)
        ``(raised, cleared)`` stamps of every robot alarm episode (``cleared`` NaN if open).
    update_us : (3,) float array
        Cost of ``AnomalyMonitor.update`` per sample: mean, p50, p99, microseconds.
    report_us : (2,) float array
        Mean cost of ``AnomalyMonitor.report`` without and with an alarm raised (the latter
        classifies), microseconds.
    evidence : list of twin_anomaly.classifier.Evidence
        The monitor's evidence every 0.1 s during the first second of the first alarm.
    labels : list of str
        The true class of each joint's feature row (:func:`row_labels`).
    commissioning : dict
        Calibration and commissioning events of the monitor (nominal runs).

    """

    case: Case
    spec: object
    t: np.ndarray
    score: np.ndarray
    alarm: np.ndarray
    monitored_from: float
    first_alarm: dict
    alarms: list
    update_us: np.ndarray
    report_us: np.ndarray = None
    evidence: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    commissioning: dict = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# The robot
# ---------------------------------------------------------------------------------------------

def robot_variant(case, model):
    """
    Draw how the case's robot differs from the twin's URDF model.

    Returns
    -------
    dict
        ``links``: a :class:`~twin_sim.randomization.Variant` (bodies), ``damping`` (n,)
        N·m·s/rad (1-4x the URDF's, at least 0.05), ``coulomb`` (n,) N·m (the URDF's plus
        0.2-1.0 x sqrt(effort limit / 40 N·m)), ``rotor_inertia`` (n,) kg m^2 (0.01-0.08 x
        effort limit / 40 N·m; MuJoCo only).

    """
    from twin_sim.randomization import RandomizationSpec
    spec = RandomizationSpec.from_dict({'version': 1, 'links': {
        'mass_scale': [0.92, 1.08], 'inertia_scale': [0.92, 1.08],
        'com_offset_m': [-0.005, 0.005]}}, source='fault_runs')
    links = spec.sample(model.joint_names, case.seed, case.index)
    rng = np.random.default_rng([case.seed, case.index, 7])
    n = model.n
    limit = np.where(np.isfinite(model.effort_limit) & (model.effort_limit > 0.0),
                     model.effort_limit, 100.0)
    scale = limit / 40.0
    damping = np.fmax(np.asarray(model.damping, dtype=float), 0.05) * rng.uniform(1.0, 4.0, n)
    coulomb = np.asarray(model.friction, dtype=float) + rng.uniform(0.2, 1.0, n) * np.sqrt(scale)
    rotor = rng.uniform(0.01, 0.08, n) * scale
    return {'links': links, 'damping': damping, 'coulomb': coulomb, 'rotor_inertia': rotor}


class SimulatedRobot:
    """
    A case's robot: its engine, its motion, and the faults acting on it.

    Parameters
    ----------
    case : Case
    workdir : str or Path
        Where the variant URDF is written.

    """

    def __init__(self, case, workdir):
        from twin_sim.randomization import NominalDynamics, write_variant_urdf
        from twin_sim.trajectory import DemoMotion
        from twin_sim.urdf_model import RobotModel, URDFWarning
        self.case = case
        urdf = arm_urdf(case.arm)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', URDFWarning)
            self.twin_model = RobotModel.from_urdf(urdf)
        model = self.twin_model
        self.joint_names = tuple(model.joint_names)
        self.n = model.n
        self.variant = robot_variant(case, model)
        nominal = NominalDynamics.from_urdf(urdf, model=model)
        path = Path(workdir) / f'robot_{case.seed}_{case.index}_{Path(case.arm).stem}.urdf'
        self.urdf = write_variant_urdf(nominal, self.variant['links'], path)
        center = case.center
        if center is None:
            center = _CENTER.get(case.arm, np.zeros(self.n))
        # 0.05 rad (m) inside the limits, or a quarter of a short range (a gripper's fingers)
        room = np.minimum(0.05, 0.25 * (model.upper - model.lower))
        center = np.clip(np.array(center[:self.n], float),
                         model.lower + room, model.upper - room)
        self.motion = DemoMotion.from_model(model, center=center, fraction=case.fraction,
                                            period_s=case.period_s, fade_in_s=1.0,
                                            seed=case.motion_seed)

    def peak_effort(self):
        """
        Largest |effort| (n,) N·m the robot needs over one period of the motion.

        Inverse dynamics of the twin's model plus this robot's friction and rotor inertia (the
        drive supplies both).
        """
        times = np.linspace(1.0, 1.0 + self.motion.period_s, 200)
        q, qd, qdd = self.motion.sample(times)
        model = self.twin_model
        v = self.variant
        tau = np.array([model.inverse_dynamics(q[k], qd[k], qdd[k]) for k in range(times.size)])
        tau += v['damping'] * qd + v['coulomb'] * np.tanh(qd / 0.01) + v['rotor_inertia'] * qdd
        return np.abs(tau).max(axis=0)

    def reference(self, steps):
        """Return ``(q, qd, qdd)`` of the motion at ``k dt``, ``k = 0..steps``: (steps+1, n)."""
        return self.motion.sample(np.arange(steps + 1) * _DT)

    def samples(self, duration_s, faults, rng):
        """
        Run the robot for ``duration_s`` from rest with ``faults`` (scenario mappings).

        Yields
        ------
        (now, Measurement)
            Each sample as the twin receives it (noise, then sensor faults applied; delayed
            samples come out later with their own stamps; dropped ones never), with the plant
            time at which it came out.

        """
        from twin_sim.faults import FaultScenario
        scenario = FaultScenario.from_dict({'name': 'run', 'faults': list(faults)},
                                           joint_names=self.joint_names)
        for i, fault in enumerate(scenario.faults):
            fault.reset(np.random.default_rng([self.case.seed, self.case.index, 11, i]))
        sensor = scenario.sensor_faults
        physical = scenario.physical_faults
        steps = int(round(duration_s / _DT))
        engine = self._mujoco if self.case.engine == 'mujoco' else self._pybullet
        stride = self.case.stride
        for k, m in enumerate(engine(steps, physical)):
            if (k + 1) % stride:
                continue            # a step whose sample the robot does not send
            self._add_noise(m, rng)
            t = m.t
            for fault in sensor:
                m = fault.apply(m, t)
            if m is not None:
                yield t, m

    def _add_noise(self, m, rng):
        n = self.n
        m.q += NOISE['position'] * rng.standard_normal(n)
        m.qd += NOISE['velocity'] * rng.standard_normal(n)
        m.effort += NOISE['effort'] * rng.standard_normal(n)
        if m.wrench is not None:
            m.wrench[:3] += NOISE['force'] * rng.standard_normal(3)
            m.wrench[3:] += NOISE['torque'] * rng.standard_normal(3)

    def _pybullet(self, steps, physical):
        from twin_sim.faults import FaultScenario
        from twin_sim.plant import Plant
        from twin_sim.urdf_model import URDFWarning
        q, qd, qdd = self.reference(steps)
        scenario = FaultScenario('physical', list(physical))
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', URDFWarning)
            plant = Plant(self.urdf, scenario=scenario, dt=_DT, initial_q=q[0],
                          joint_damping=self.variant['damping'],
                          joint_friction=self.variant['coulomb'])
        try:
            world = plant.world
            for k in range(steps):
                world.set_control('position', q[k + 1], qd[k + 1], qdd[k + 1], validate=False)
                yield plant.step()
        finally:
            plant.close()

    def _mujoco(self, steps, physical):
        from twin_sim.mujoco_world import MujocoWorld
        from twin_sim.world import Measurement
        from twin_sim.urdf_model import URDFWarning
        q, qd, qdd = self.reference(steps)
        model = self.twin_model
        feedforward = np.array([model.inverse_dynamics(q[k], qd[k], qdd[k])
                                for k in range(steps + 1)])
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', URDFWarning)
            world = MujocoWorld(self.urdf, dt=_DT, initial_q=q[0],
                                joint_damping=self.variant['damping'],
                                joint_friction=self.variant['coulomb'],
                                rotor_inertia=self.variant['rotor_inertia'])
        effects = _MujocoFaults(world, physical)
        for start in range(0, steps, _CHUNK):
            stop = min(steps, start + _CHUNK)
            effects.apply(start * _DT)
            run = world.run_position(q[start + 1:stop + 1], qd[start + 1:stop + 1],
                                     feedforward[start + 1:stop + 1])
            for k in range(stop - start):
                wrench = None if run.wrench is None else run.wrench[k].copy()
                yield Measurement(float(run.t[k]), run.q[k].copy(), run.qd[k].copy(),
                                  run.effort[k].copy(), wrench)


class _MujocoFaults:
    """Apply :mod:`twin_sim.faults` physical faults to a MuJoCo world (per chunk)."""

    def __init__(self, world, faults):
        self.world = world
        self.faults = list(faults)
        self.active = False

    def apply(self, t):
        from twin_sim.faults import PhysicalEffects
        from twin_sim.urdf_model import Payload
        if not self.faults:
            return
        w = self.world
        e = PhysicalEffects.nominal(w.n)
        for fault in self.faults:
            fault.contribute(e, t)
        w.set_friction(scale=e.friction_scale, coulomb_add=e.friction_add)
        w.set_torque_limit(np.where(e.torque_fraction < 1.0, e.torque_fraction * w.effort_limit,
                                    w.effort_limit))
        for name in w.joint_names:
            if name in e.locked:
                w.lock_joint(name)
            elif name in w.locked_joints:
                w.unlock_joint(name)
        payload = None
        if e.payloads:
            mass = sum(p[0] for p in e.payloads)
            com = sum(p[0] * np.asarray(p[1]) for p in e.payloads) / mass
            inertia = sum(p[2] + p[0] * (np.dot(p[1] - com, p[1] - com) * np.eye(3)
                                         - np.outer(p[1] - com, p[1] - com))
                          for p in e.payloads)
            payload = Payload(mass, com, inertia)
        if (payload is None) != (w.payload is None) or payload is not None:
            w.set_payload(payload)
        w.clear_external_forces()
        for link, force, point in e.forces:
            link = link or w.model.payload_frame
            position, rotation = w.link_pose(link)
            w.set_external_force(link, force, position + rotation @ point)


# ---------------------------------------------------------------------------------------------
# The twin beside it
# ---------------------------------------------------------------------------------------------

class _TwinSide:
    """Mirror (for the wrench residual) + monitor, fed like the live node feeds them."""

    def __init__(self, model, monitor):
        self.monitor = monitor
        self.mirror = _mirror(model) if model.ft_frame is not None else None
        self.costs = []

    def feed(self, now, m):
        from twin_bridge.intake import RobotSample
        sec = math.floor(m.t)
        sample = RobotSample(m.t, (sec, int(round((m.t - sec) * 1e9))), m.q, m.qd, m.effort)
        result = None
        wrench = None
        if self.mirror is not None:
            result = self.mirror.update(m.t, m.q, m.qd, m.effort)
            if result is not None and m.wrench is not None:
                pair = self.mirror.wrench_residual(m.wrench, m.t)
                wrench = None if pair is None else pair[1]
        t0 = time.perf_counter()
        self.monitor.update(sample, result, now=now)
        if wrench is not None:
            self.monitor.wrench(m.t, wrench)
        self.costs.append(time.perf_counter() - t0)

    def handle_events(self):
        """Switch the mirror to the calibrated model, as the node does; return the events."""
        events = self.monitor.poll_events()
        for event in events:
            if event['kind'] == 'calibration_finished' and event['accepted'] \
                    and self.mirror is not None:
                self.mirror = _mirror(self.monitor.calibrated_model)
        return events


def _mirror(model):
    from twin_sim.mirror import Mirror
    from twin_sim.predictor import Predictor
    return Mirror(Predictor(model))


class _Recorder:
    """Report at every block: scores, alarms, the first alarm's verdict, evidence."""

    def __init__(self, monitor, spec, decision_s, keep_rows, joint_names):
        self.monitor = monitor
        self.spec = spec
        self.decision_s = decision_s
        self.keep_rows = keep_rows
        self.joint_names = joint_names
        self.t, self.score, self.alarm = [], [], []
        self.first = None
        self.episodes = []
        self.evidence = []
        self._next_row = -math.inf
        self.monitored_from = math.nan
        self.report_costs = ([], [])

    def report(self, t, events=()):
        raised = [e['stamp'] for e in events if e['kind'] == 'anomaly_raised']
        t0 = time.perf_counter()
        state = self.monitor.report()
        cost = time.perf_counter() - t0
        if state.phase != 'monitoring':
            return
        self.report_costs[state.level == 'ERROR'].append(cost)
        if math.isnan(self.monitored_from):
            self.monitored_from = t
        alarmed = state.level == 'ERROR'
        self.t.append(t)
        self.score.append(state.score)
        self.alarm.append(alarmed)
        if alarmed and (not self.episodes or not math.isnan(self.episodes[-1][1])):
            self.episodes.append([t, math.nan])
        elif not alarmed and self.episodes and math.isnan(self.episodes[-1][1]):
            self.episodes[-1][1] = t
        verdict = {'t': t, 'since': state.since, 'joint': state.faulty_joint or '',
                   'fault_type': state.fault_type, 'confidence': state.confidence}
        if alarmed and self.first is None:
            self.first = dict(verdict, decided=dict(verdict))
            if raised:                       # the block at which the monitor raised it
                self.first['t'] = min(raised)
        elif self.first is not None and 'final' not in self.first:
            if not alarmed or t >= self.first['t'] + self.decision_s:
                self.first['final'] = True
                if alarmed:
                    self.first['decided'] = verdict
        if self.first is not None and len(self.episodes) == 1 and alarmed:
            self.first['last'] = verdict     # the verdict as the first episode goes on
        if alarmed and self.keep_rows and self.first is not None \
                and t <= self.first['t'] + _ROWS_FOR_S and t >= self._next_row:
            self._next_row = t + _ROWS_EVERY_S
            self.evidence.append(self.monitor.evidence())


def row_labels(spec, joint_names):
    """Return the true class of each joint's feature row (``'none'`` off the fault)."""
    from twin_anomaly.classifier import ROBOT_LEVEL
    if spec is None:
        return ['none'] * len(joint_names)
    if spec.fault_type in ROBOT_LEVEL:
        return [spec.fault_type] * len(joint_names)
    return [spec.fault_type if j == spec.joint else 'none' for j in joint_names]


def _stream(robot, twin, recorder, duration_s, faults, rng, start_s=0.0, block_s=0.02):
    """Feed the robot's samples from ``start_s`` to the twin; report every block."""
    next_report = start_s + block_s
    for now, m in robot.samples(duration_s, faults, rng):
        if m.t < start_s:
            continue
        twin.feed(now, m)
        if now >= next_report:
            recorder.report(m.t, twin.handle_events())
            next_report += block_s
    return twin.handle_events()


def _result(case, spec, recorder, twin, commissioning=None):
    costs = np.asarray(twin.costs) * 1e6
    alarms = [tuple(e) for e in recorder.episodes]
    report = np.array([np.mean(c) * 1e6 if c else np.nan for c in recorder.report_costs])
    return RunResult(case, spec, np.asarray(recorder.t), np.asarray(recorder.score),
                     np.asarray(recorder.alarm, dtype=bool), recorder.monitored_from,
                     recorder.first, alarms,
                     np.array([costs.mean(), np.percentile(costs, 50),
                               np.percentile(costs, 99)]) if costs.size else np.full(3, np.nan),
                     report, recorder.evidence,
                     row_labels(spec, recorder.joint_names), commissioning or {})


def _monitor(model, config, path, recommission, classifier):
    from twin_anomaly.monitor import AnomalyMonitor
    return AnomalyMonitor(model, config, thresholds_file=path, recommission=recommission,
                          classifier=classifier)


def commission(case, path, config=None, workdir=None, motion=None):
    """
    Run a case fault-free through commissioning and save the monitor's file to ``path``.

    ``motion``, optional: ``motion(robot_motion)`` gives the motion to commission on (e.g.
    the case's motion started slowly); default the case's own.

    Returns
    -------
    dict
        The calibration and commissioning events.

    """
    config = config or monitor_config()
    with tempfile.TemporaryDirectory(prefix='twin_faultrun_') as tmp:
        robot = SimulatedRobot(case, workdir or tmp)
        if motion is not None:
            robot.motion = motion(robot.motion)
        monitor = _monitor(robot.twin_model, config, path, True, _classifier('rules'))
        twin = _TwinSide(robot.twin_model, monitor)
        rng = np.random.default_rng([case.seed, case.index, 1])
        events = []
        duration = config.commissioning_duration_s + 1.0
        next_check = config.block_s
        for now, m in robot.samples(duration, [], rng):
            twin.feed(now, m)
            if now >= next_check:
                events += twin.handle_events()
                next_check += config.block_s
            if monitor.commissioned:
                break
        monitor.report()
        events += twin.handle_events()
        if not monitor.commissioned:
            raise RuntimeError(f'{case.name}: commissioning did not finish in {duration} s')
    return _commissioning_summary(events)


def _commissioning_summary(events):
    out = {}
    for event in events:
        if event['kind'] == 'calibration_finished':
            out['calibration'] = {k: v for k, v in event.items() if k != 'kind'}
        elif event['kind'] == 'commissioning_finished':
            out['summary'] = event['summary']
    return out


_CLASSIFIERS = {}


def _classifier(model_path, sample_rate_hz=None):
    """
    One loaded classifier per process and file (loading an ONNX session costs ~10 ms).

    ``model_path`` ``''`` is the packaged model for the robot's ``sample_rate_hz``
    (:func:`twin_anomaly.classifier.default_model_path`), as the monitor picks it.
    """
    from twin_anomaly.classifier import default_model_path, load_classifier
    key = model_path or str(default_model_path(sample_rate_hz))
    if key not in _CLASSIFIERS:
        _CLASSIFIERS[key] = load_classifier(key)
    return _CLASSIFIERS[key]


def run_fault(case, spec, thresholds_path, config=None, model_path='', keep_rows=False,
              decision_s=0.25):
    """
    Run a commissioned case again with one fault; the monitor loads ``thresholds_path``.

    The robot starts at rest; the monitor joins at :data:`PRE_ROLL_S` (after the motion's
    fade-in) and the fault starts at ``spec.onset_s``.

    Parameters
    ----------
    case : Case
        The robot (as commissioned).
    spec : FaultSpec or None
        None: no fault (a false-alarm check of the restarted twin).
    thresholds_path : str or Path
        Written by :func:`commission` for this case.
    config : MonitorConfig, optional
        Must match the one used to commission.
    model_path : str
        Classifier (``''`` the packaged model for the case's sample rate, ``'rules'``, or a
        file).
    keep_rows : bool
        Keep the monitor's evidence while alarmed (training data).
    decision_s : float
        The verdict of an alarm is the one reported this long after it was raised, s.

    """
    config = config or monitor_config()
    with tempfile.TemporaryDirectory(prefix='twin_faultrun_') as tmp:
        robot = SimulatedRobot(case, tmp)
        monitor = _monitor(robot.twin_model, config, thresholds_path, False,
                           _classifier(model_path, case.sample_rate_hz))
        if not monitor.commissioned:
            raise RuntimeError(f'{thresholds_path}: could not be loaded for {case.name}')
        twin = _TwinSide(monitor.calibrated_model or robot.twin_model, monitor)
        recorder = _Recorder(monitor, spec, decision_s, keep_rows, robot.joint_names)
        faults = [] if spec is None else [spec.fault]
        end = (FAULT_AT_S + 3.0) if spec is None else spec.end_s
        seed = [case.seed, case.index, 2, _spec_seed(spec)]
        _stream(robot, twin, recorder, end, faults, np.random.default_rng(seed),
                start_s=PRE_ROLL_S, block_s=config.block_s)
    return _result(case, spec, recorder, twin)


def _spec_seed(spec):
    if spec is None:
        return 0
    text = repr(sorted((k, str(v)) for k, v in spec.fault.items()))
    return int.from_bytes(text.encode()[-8:].ljust(8, b'\0'), 'little') % (2 ** 31)


def nominal_run(case, duration_s, config=None, model_path='', workdir=None):
    """
    Commission and then monitor ``duration_s`` of fault-free motion in one run.

    Returns
    -------
    RunResult
        Every alarm in it is a false alarm; ``commissioning`` holds the calibration events.

    """
    config = config or monitor_config()
    with tempfile.TemporaryDirectory(prefix='twin_faultrun_') as tmp:
        robot = SimulatedRobot(case, workdir or tmp)
        monitor = _monitor(robot.twin_model, config, None, True,
                           _classifier(model_path, case.sample_rate_hz))
        twin = _TwinSide(robot.twin_model, monitor)
        recorder = _Recorder(monitor, None, 0.25, False, robot.joint_names)
        events = []
        rng = np.random.default_rng([case.seed, case.index, 3])
        next_report = config.block_s
        for now, m in robot.samples(config.commissioning_duration_s + duration_s, [], rng):
            twin.feed(now, m)
            if now >= next_report:
                new = twin.handle_events()
                events += new
                recorder.report(m.t, new)
                next_report += config.block_s
        events += twin.handle_events()
    return _result(case, None, recorder, twin, _commissioning_summary(events))


# ---------------------------------------------------------------------------------------------
# A lower speed override
# ---------------------------------------------------------------------------------------------

class SpeedOverride:
    """
    A motion followed at ``factor`` of its speed from ``at`` s on, ramped in over ``ramp_s``.

    The path rate goes from ``initial`` (1: the motion's own speed) to ``factor`` as
    ``3 x^2 - 2 x^3`` (``x`` from 0 to 1), as an operator's override reaches a controller:
    the same path, slower, without a jerk. A ``factor`` of 0 is a planned stop ``ramp_s``
    long (the acceleration stays continuous); an ``initial`` below 1 with a ``factor`` of 1
    is a robot that starts its program slowly.
    """

    def __init__(self, motion, factor, at=4.0, ramp_s=0.5, initial=1.0):
        self.motion, self.factor, self.at, self.ramp_s = motion, factor, at, ramp_s
        self.initial = initial
        self.period_s = motion.period_s

    def sample(self, t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        f, r0, ramp = self.factor, self.initial, self.ramp_s
        x = np.clip((t - self.at) / ramp, 0.0, 1.0)
        rate = r0 + (f - r0) * (3.0 * x ** 2 - 2.0 * x ** 3)
        rate_dot = (f - r0) * (6.0 * x - 6.0 * x ** 2) / ramp
        path = r0 * np.fmin(t, self.at) \
            + ramp * (r0 * x + (f - r0) * (x ** 3 - 0.5 * x ** 4)) \
            + f * np.fmax(t - self.at - ramp, 0.0)
        q, qd, qdd = self.motion.sample(path)
        return q, qd * rate[:, None], qdd * rate[:, None] ** 2 + qd * rate_dot[:, None]


def reported_levels(case, thresholds_file, config, motion, seconds):
    """
    Run ``case``'s simulated robot on ``motion`` past a monitor loaded from its commissioning.

    ``thresholds_file`` (a Path) is the monitor's saved file (:func:`commission`);
    ``motion(robot_motion)`` gives the motion to run (e.g. a :class:`SpeedOverride` of it),
    fault-free, for ``seconds``. Returns the monitor and the level it reported every block
    from 2 s on (after the pre-roll).
    """
    from twin_anomaly.monitor import AnomalyMonitor
    robot = SimulatedRobot(case, thresholds_file.parent)
    robot.motion = motion(robot.motion)
    monitor = AnomalyMonitor(robot.twin_model, config, thresholds_file=thresholds_file)
    twin = _TwinSide(monitor.calibrated_model or robot.twin_model, monitor)
    levels, next_report = [], 2.0
    for now, m in robot.samples(seconds, [], np.random.default_rng(9)):
        if m.t < PRE_ROLL_S:
            continue
        twin.feed(now, m)
        if m.t >= next_report:
            next_report += config.block_s
            levels.append(monitor.report().level)
    return monitor, levels


def override_run(case, thresholds_file, config, factor, seconds=20.0, at=4.0):
    """
    Run ``case``'s robot fault-free at ``factor`` of its speed from ``at`` s on (a task).

    Past a monitor loaded from ``thresholds_file`` (commissioned at the full speed). Returns a
    dict: ``factor``, ``blocks`` reported, ``error`` and ``warn`` (blocks at that level), and
    ``raised`` (``(stamp, group, fault_type)`` of every alarm raised: all false alarms).
    """
    monitor, levels = reported_levels(case, Path(thresholds_file), config,
                                      lambda motion: SpeedOverride(motion, factor, at), seconds)
    raised = [(round(e['stamp'], 3), e['group'], e['fault_type'])
              for e in monitor.poll_events() if e['kind'] == 'anomaly_raised']
    return {'factor': factor, 'blocks': len(levels), 'error': levels.count('ERROR'),
            'warn': levels.count('WARN'), 'raised': raised}


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------

def _collision_point(model, q, joint):
    """
    Where and along which world direction to push the joint's link so that it turns the joint.

    Returns ``(point (3,) m in the link frame, direction (3,) world unit vector)``: a point
    8 cm off the link's centre of mass, perpendicular to the joint axis, pushed along the
    direction that gives the largest torque about that joint at pose ``q``.
    """
    import pinocchio as pin
    pm = model.pin_model
    data = pm.createData()
    jid = pm.getJointId(joint)
    v = np.zeros(pm.nv)
    v[pm.joints[jid].idx_v] = 1.0
    pin.forwardKinematics(pm, data, q, v)
    axis_local = np.asarray(data.v[jid].angular)
    if np.linalg.norm(axis_local) < 1e-9:          # prismatic: push along the axis
        axis_local = np.asarray(data.v[jid].linear)
        placement = data.oMi[jid]
        return np.asarray(pm.inertias[jid].lever), placement.rotation @ axis_local
    axis_local = axis_local / np.linalg.norm(axis_local)
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis_local[0]) < 0.9 else np.array([0, 1.0, 0])
    perpendicular = np.cross(axis_local, helper)
    perpendicular /= np.linalg.norm(perpendicular)
    point = np.asarray(pm.inertias[jid].lever) + 0.08 * perpendicular
    lever_local = point - axis_local * (point @ axis_local)
    direction_local = np.cross(axis_local, lever_local)
    direction = data.oMi[jid].rotation @ (direction_local / np.linalg.norm(direction_local))
    return point, direction


def _child_link(urdf, joint):
    import xml.etree.ElementTree as ElementTree
    root = ElementTree.parse(urdf).getroot()
    for element in root.findall('joint'):
        if element.get('name') == joint:
            return element.find('child').get('link')
    raise ValueError(f'{urdf}: no joint {joint!r}')


_SIZES = {'small': 0, 'large': 1}


def _robot_faults(s, size, incipient):
    """Catalog entries of the robot-level faults at size index ``s`` (see fault_catalog)."""
    payload = {'type': 'payload_change', 'size': (1.0, 3.0)[s], 'com': [0.0, 0.0, 0.05]}
    dropout = {'type': 'dropout', 'size': (0.1, 0.3)[s]}
    out = [(dropout, '', 'abrupt', size, 0.0, 3.0, None),
           ({'type': 'delay', 'size': (0.02, 0.05)[s]}, '', 'abrupt', size, 0.0, 3.0, None),
           (payload, '', 'abrupt', size, 0.0, 3.0, None)]
    if incipient:
        out += [(dropout, '', 'incipient', size, 5.0, 3.0, None),
                (payload, '', 'incipient', size, 2.0, 3.0, None)]
    return out


def _joint_faults(robot, joint, s, size, first, incipient, limit, peak, q_onset):
    """
    Catalog entries of the faults of one joint at size index ``s``.

    Sizes scale with the joint's effort limit (N·m) where they are efforts; torque saturation
    is set below the joint's nominal peak effort. Faults without a size (frozen sensor, seized
    joint, the 4x friction rise) come once, with the ``first`` size.
    """
    out = []
    bias = {'position': (0.005, 0.02)[s], 'velocity': (0.02, 0.05)[s],
            'effort': (0.02, 0.05)[s] * limit / 2.0}
    noise = {'position': (5e-4, 2e-3)[s], 'velocity': (0.01, 0.05)[s],
             'effort': (0.01, 0.03)[s] * limit / 2.0}
    for signal in ('position', 'velocity', 'effort'):
        biased = {'type': 'sensor_bias', 'joint': joint, 'signal': signal,
                  'size': bias[signal]}
        out += [(biased, joint, 'abrupt', size, 0.0, 3.0, None),
                ({'type': 'sensor_noise', 'joint': joint, 'signal': signal,
                  'size': noise[signal]}, joint, 'abrupt', size, 0.0, 3.0, None)]
        if first:
            out.append(({'type': 'stuck_sensor', 'joint': joint, 'signal': signal}, joint,
                        'abrupt', signal, 0.0, 3.0, None))
        if incipient:
            out.append((biased, joint, 'incipient', size, 5.0, 3.0, None))
    saturation = {'type': 'torque_saturation', 'joint': joint,
                  'size': float(np.clip((0.75, 0.5)[s] * peak / limit, 1e-3, 0.95))}
    point, direction = _collision_point(robot.twin_model, q_onset, joint)
    out += [({'type': 'friction_increase', 'joint': joint, 'size': (0.015, 0.04)[s] * limit},
             joint, 'abrupt', size, 0.0, 3.0, None),
            (saturation, joint, 'abrupt', size, 0.0, 3.0, None),
            ({'type': 'collision_force', 'link': _child_link(robot.urdf, joint),
              'size': (20.0, 50.0)[s], 'direction': direction.tolist(),
              'point': point.tolist()}, joint, 'abrupt', size, 0.0, 3.0, 0.3)]
    if first:
        out.append(({'type': 'joint_lock', 'joint': joint}, joint, 'abrupt', 'lock', 0.0, 3.0,
                    None))
    if incipient:
        out.append((saturation, joint, 'incipient', size, 2.0, 3.0, None))
        if first:
            out.append(({'type': 'friction_increase', 'joint': joint, 'size': 4.0,
                         'mode': 'scale'}, joint, 'incipient', '4x over 10 s', 10.0, 10.0,
                        None))
    return out


def fault_catalog(robot, joints, *, peak_effort=None, sizes=('small', 'large'),
                  incipient=True, onset_s=FAULT_AT_S, types=None):
    """
    Return faults of every plant type on ``joints``: two sizes, abrupt and incipient.

    Incipient versions exist for the types that ramp.

    Parameters
    ----------
    robot : SimulatedRobot
        The case's robot (joint names, limits, motion at the onset).
    joints : sequence of str
        Joints for the joint faults.
    peak_effort : (n,) array, optional
        Largest nominal |effort| per joint, N·m: torque saturation is set below it (default:
        the twin model's inverse dynamics along one period of the motion).
    sizes : tuple of str
        ``'small'`` and/or ``'large'``.
    incipient : bool
        Include ramped versions.
    onset_s : float
        When the faults start, plant time, s.
    types : sequence of str, optional
        Only these fault types.

    Returns
    -------
    list of FaultSpec

    """
    model = robot.twin_model
    limit = np.where(np.isfinite(model.effort_limit) & (model.effort_limit > 0.0),
                     model.effort_limit, 100.0)
    peak = robot.peak_effort() if peak_effort is None else np.asarray(peak_effort, float)
    q_onset = robot.motion.sample(onset_s)[0]
    entries = []
    for size in sizes:
        entries += _robot_faults(_SIZES[size], size, incipient)
        for joint in joints:
            j = robot.joint_names.index(joint)
            entries += _joint_faults(robot, joint, _SIZES[size], size, size == sizes[0],
                                     incipient, limit[j], peak[j], q_onset)
    specs = []
    for fault, joint, mode, label, ramp, after, end in entries:
        if types is not None and fault['type'] not in types:
            continue
        fault = dict(fault, start_s=onset_s, ramp_s=ramp)
        if end is not None:
            fault['end_s'] = onset_s + end
        specs.append(FaultSpec(fault, fault['type'], joint, mode, label, onset_s,
                               onset_s + ramp, after))
    return specs


# ---------------------------------------------------------------------------------------------
# Running many
# ---------------------------------------------------------------------------------------------

def _call(task):
    function, args, kwargs = task
    return function(*args, **kwargs)


def run_many(tasks, workers=1, progress=True, desc='runs'):
    """
    Run ``(function, args, kwargs)`` tasks, on ``workers`` processes; return results in order.

    Shows a tqdm progress bar when ``progress`` is true.
    """
    from tqdm import tqdm
    tasks = list(tasks)
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit='run')
    results = [None] * len(tasks)
    try:
        if workers <= 1:
            for i, task in enumerate(tasks):
                results[i] = _call(task)
                bar.update()
            return results
        context = multiprocessing.get_context('forkserver')
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = {pool.submit(_call, task): i for i, task in enumerate(tasks)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        return results
    finally:
        bar.close()
