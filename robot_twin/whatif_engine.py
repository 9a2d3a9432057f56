"""
What-if samples at engine speed: the robot in MuJoCo, the twin and the detector over the record.

The ``engine: mujoco`` path of :mod:`robot_twin.whatif` (the default). A sample is the same
experiment as on the ``pybullet`` path — variant ``i`` of the seed, driven along the scenario's
reference with its faults, measured with the variant's noise, watched by the live twin's mirror
and a commissioning detector — but the per-step Python work is gone:

1. the robot is a :class:`~twin_sim.mujoco_world.MujocoWorld` of the variant's URDF and payload,
   driven by the engine's own PID + feed-forward actuators (the feed-forward is the variant's
   inverse dynamics along the reference, computed once) in MuJoCo's C rollout; physical faults
   split the run where they change the robot (ramps in ``FAULT_CHUNK_S`` steps, forces every
   step), and so does the drive's gain schedule (retuned from the mass matrix along the
   reference wherever the arm's inertia leaves the band its gains are stable in);
2. sensor faults, noise and the sample rate are applied to the recorded samples (sensor faults
   sample by sample, through the same fault objects and random streams as the plant);
3. the twin's residuals come from :func:`twin_sim.batch_twin.mirror_trajectory` and the detector
   is fed block by block (:func:`twin_anomaly.batch_feed.feed_blocks`), with the report schedule
   of the per-step path (a report every ``block_s`` of samples), so its largest score and first
   alarm are those the per-step loop would see.

The robot is another engine than the twin's (PyBullet world, pinocchio model): the twin meets
physics it does not share. How closely the two paths agree is measured in
``benchmarks/bench_whatif.py`` (and bounded in the tests).
"""
import math
from pathlib import Path
import warnings

import numpy as np

__all__ = ['simulate_engine', 'FAULT_CHUNK_S']

#: While a physical fault ramps, the robot is updated every this many seconds.
FAULT_CHUNK_S = 0.01
#: A drive that lost the reference is blamed on the actuators when a joint's torque sat at its
#: limit over most of this time before.
SATURATION_WINDOW_S = 0.2


def _feedforward(model, payload, q, qd, qdd):
    """Inverse dynamics of the variant (with its payload) along the reference, ``(T, n)``."""
    from twin_sim.batch_twin import BatchDynamics
    return BatchDynamics(model, payload=payload, wrench=False).inverse_dynamics(q, qd, qdd)[0]


def _total_payload(nominal, extra):
    """Nominal payload plus fault payloads ``(mass, com, inertia)`` as one Payload (or None)."""
    import pinocchio as pin
    from twin_sim.urdf_model import Payload
    parts = [] if nominal is None else [(nominal.mass, nominal.com, nominal.inertia)]
    parts += list(extra)
    total = pin.Inertia.Zero()
    for mass, com, inertia in parts:
        total += pin.Inertia(float(mass), np.asarray(com, dtype=float), np.asarray(inertia))
    if total.mass <= 0.0:
        return None
    return Payload(total.mass, total.lever.copy(), total.inertia.copy())


def _fault_segments(faults, steps, dt):
    """
    Step indices where the robot's physical faults may change, and whether each segment steps.

    Returns a list of ``(k0, k1, every)``: steps ``k0..k1-1`` run with the effects at ``k0``;
    ``every`` is 1 while an external force acts (it moves with its link), else the segment is
    run in one rollout.
    """
    chunk = max(1, int(round(FAULT_CHUNK_S / dt)))
    marks = {0, steps}
    forces = []
    for fault in faults:
        k0 = max(0, int(math.ceil(fault.start_s / dt - 1e-9)))
        k1 = steps if fault.end_s is None else min(steps, int(math.ceil(fault.end_s / dt - 1e-9)))
        kr = min(k1, int(math.ceil((fault.start_s + fault.ramp_s) / dt - 1e-9)))
        marks.update(k for k in (k0, kr, k1) if 0 <= k <= steps)
        marks.update(range(k0, kr, chunk))
        if fault.type == 'collision_force':
            forces.append((k0, k1))
    bounds = sorted(marks)
    out = []
    for k0, k1 in zip(bounds[:-1], bounds[1:]):
        every = 1 if any(a <= k0 < b for a, b in forces) else k1 - k0
        out.append((k0, k1, every))
    return out


def _apply_effects(world, effects, payload, payload_frame, state):
    """Put the physical faults' effects on the MuJoCo robot; return the payload in use."""
    world.set_friction(effects.friction_scale, effects.friction_add)
    world.set_torque_limit(effects.torque_fraction * world.effort_limit)
    for i, name in enumerate(world.joint_names):
        if name in effects.locked:
            world.lock_joint(name)
        elif name in world.locked_joints:
            world.unlock_joint(name)
    total = _total_payload(payload, effects.payloads)
    if not _same(total, state.get('payload', payload)):
        world.set_payload(total)
    state['payload'] = total
    world.clear_external_forces()
    for link, force, point in effects.forces:
        link = link or payload_frame
        position, rotation = world.link_pose(link)
        world.set_external_force(link, force, position + rotation @ point)
    return total


def _same(a, b):
    if a is None or b is None:
        return a is b
    return (a.mass == b.mass and np.array_equal(a.com, b.com)
            and np.array_equal(a.inertia, b.inertia))


def _drive(world, model, payload, physical, reference, steps, dt):
    """Run the reference on the MuJoCo robot; return (q, qd, effort, wrench) per step."""
    from twin_sim.faults import PhysicalEffects
    q_ref, qd_ref, qdd_ref = (a[:steps] for a in reference)
    ff_cache = {}

    def feedforward(load, k0, k1):
        key = None if load is None else (load.mass, tuple(load.com), load.inertia.tobytes())
        if key not in ff_cache:
            ff_cache[key] = _feedforward(model, load, q_ref, qd_ref, qdd_ref)
        return ff_cache[key][k0:k1]

    if not physical:
        run = world.run_position(q_ref, qd_ref, feedforward(payload, 0, steps),
                                 schedule_gains=True)
        return run.q, run.qd, run.effort, run.wrench
    parts = []
    state = {}
    for k0, k1, every in _fault_segments(physical, steps, dt):
        for a in range(k0, k1, every):
            b = min(k1, a + every)
            effects = PhysicalEffects.nominal(world.n)
            for fault in physical:
                fault.contribute(effects, a * dt)
            load = _apply_effects(world, effects, payload, model.payload_frame, state)
            parts.append(world.run_position(q_ref[a:b], qd_ref[a:b], feedforward(load, a, b),
                                            schedule_gains=True))
    wrench = None if parts[0].wrench is None else np.concatenate([p.wrench for p in parts])
    return (np.concatenate([p.q for p in parts]), np.concatenate([p.qd for p in parts]),
            np.concatenate([p.effort for p in parts]), wrench)


def _check_drive(world, qd, effort, dt):
    """
    Refuse a run whose drive lost the reference (a sample must not pass it as physics).

    The reason named is the actuators' when a joint's torque sat at its limit over most of the
    last ``SATURATION_WINDOW_S`` before (the arm cannot follow or hold the reference), else the
    explicit loop's.
    """
    speed = np.abs(qd) / np.where(world.velocity_limit > 0.0, world.velocity_limit, np.inf)
    bad = ~np.isfinite(qd) | (speed > 5.0)
    if not bad.any():
        return
    k, j = np.argwhere(bad)[0]
    where = (f'the MuJoCo drive lost the reference at t = {(k + 1) * dt:.3f} s: '
             f'{world.joint_names[j]} reached {qd[k, j]:.3g} rad/s, over 5 times its velocity '
             'limit')
    limit = np.minimum(world.torque_limit(), world.effort_limit)
    recent = np.abs(effort[max(0, k + 1 - max(1, int(round(SATURATION_WINDOW_S / dt)))):k + 1])
    saturated = np.mean(recent >= (1.0 - 1e-6) * limit, axis=0) >= 0.5
    if saturated.any():
        joints = ', '.join(f'{world.joint_names[i]} ({limit[i]:.3g} N·m)'
                           for i in np.flatnonzero(saturated))
        raise RuntimeError(f'{where}: the torque sat at the effort limit of {joints} before '
                           'it, so the arm cannot follow or hold this reference (actuators too '
                           'weak for the load or the motion: check the effort limits, '
                           'effort_limit_scale, payload and faults)')
    raise RuntimeError(f'{where} (its explicit loop is unstable for this motion); run the '
                       'scenario with engine: pybullet')


def _arrivals(truth, sensor_faults, steps, dt, sample_every):
    """
    Return the samples that reach the twin, in arrival order, after the sensor faults.

    Returns ``(step, t, q, qd, effort, wrench)``: the arrival step of each sample and its
    content (``wrench`` rows NaN where none came).
    """
    from twin_sim.world import Measurement
    q, qd, effort, wrench = truth
    stamps = (np.arange(steps) + 1) * dt
    if not sensor_faults:
        keep = np.arange(sample_every - 1, steps, sample_every)
        w = None if wrench is None else wrench[keep].copy()
        return (keep, stamps[keep], q[keep].copy(), qd[keep].copy(), effort[keep].copy(), w)
    rows = []
    for k in range(steps):
        m = Measurement(stamps[k], q[k].copy(), qd[k].copy(), effort[k].copy(),
                        None if wrench is None else wrench[k].copy())
        for fault in sensor_faults:
            m = fault.apply(m, stamps[k])
        if m is None or (k + 1) % sample_every:
            continue
        rows.append((k, m))
    n = q.shape[1]
    if not rows:
        empty = np.empty((0, n))
        return np.empty(0, int), np.empty(0), empty, empty, empty, None
    w = None if wrench is None else np.array(
        [np.full(6, np.nan) if m.wrench is None else m.wrench for _, m in rows])
    return (np.array([k for k, _ in rows]), np.array([m.t for _, m in rows]),
            np.array([m.q for _, m in rows]), np.array([m.qd for _, m in rows]),
            np.array([m.effort for _, m in rows]), w)


def _add_noise(samples, variant, steps, dt, n):
    """White sensor noise, the same draws as the per-step path (by stamp index)."""
    step, t, q, qd, effort, wrench = samples
    std = np.concatenate([
        np.full(n, variant.position_noise_std_rad), np.full(n, variant.velocity_noise_std_rad_s),
        np.full(n, variant.effort_noise_std_nm), np.full(3, variant.force_noise_std_n),
        np.full(3, variant.torque_noise_std_nm)])
    if not np.any(std > 0.0):
        return samples
    rng = np.random.default_rng(np.random.SeedSequence(variant.noise_seed, spawn_key=(1,)))
    noise = rng.standard_normal((steps + 1, 3 * n + 6)) * std
    rows = noise[np.minimum(np.rint(t / dt).astype(int), steps)]
    q += rows[:, :n]
    qd += rows[:, n:2 * n]
    effort += rows[:, 2 * n:3 * n]
    if wrench is not None:
        wrench += rows[:, 3 * n:]        # NaN rows stay NaN
    return step, t, q, qd, effort, wrench


def _watch(detector, residuals, velocity, received, report_every, delay_s):
    """
    Feed the detector; return (max score, first alarm) as the per-step report schedule sees.

    A report follows every ``report_every``-th received sample (counting from 1) once the
    detector has commissioned; it sees the state after the last block that closed before it.
    The detector runs block by block through commissioning; the monitored blocks are scored
    at once (:func:`~twin_anomaly.batch_feed.monitoring_scores`) and the detector is stepped
    on only to the first alarm, to read its report.
    """
    from twin_anomaly.batch_feed import alarm_raised, block_series, commission_series, \
        feed_series, first_raise, monitoring_scores
    no_alarm = (math.nan, '', '')
    size = residuals.t.size
    if size == 0:
        return 0.0, no_alarm
    series = block_series(detector, residuals.t, residuals.position, residuals.velocity,
                          residuals.effort, residuals.wrench, velocity)
    reports = np.cumsum((received % report_every) == 0)
    closers = series.closers
    upto = np.append(closers[1:], size) - 1
    before = np.where(closers > 0, reports[np.maximum(closers - 1, 0)], 0)
    visible = reports[upto] > before           # a report falls before the next block closes
    done = commission_series(detector, series)
    if done is None or done + 1 >= len(series):
        return 0.0, no_alarm
    first = done + 1
    scores = monitoring_scores(detector, series, first)
    n = scores.shape[1] - 1
    robot = scores[:, :n].max(axis=1)
    if detector.thresholds().monitored[3 * n:].any():
        robot = np.maximum(robot, scores[:, n])
    shown = visible[first:]
    max_score = float(robot[shown].max()) if shown.any() else 0.0
    raised = first_raise(detector, series, scores, first)
    if raised is None:
        return max_score, no_alarm
    for b in feed_series(detector, series, first, len(series)):
        if b < raised or not visible[b] or not alarm_raised(detector):
            continue
        report = detector.report()
        if report.level == 'ERROR':
            joint = report.faulty_joint or ('wrench' if report.fault_type == 'wrench' else '')
            return max_score, (report.since + delay_s, joint, report.fault_type)
    return max_score, no_alarm


def simulate_engine(setup, ctx, index, trace=False):
    """
    Run variant ``index`` on the MuJoCo robot; return ``(SampleResult, ResidualTrace or None)``.

    ``setup`` and ``ctx`` are :mod:`robot_twin.whatif`'s run set-up and per-process context.
    """
    from robot_twin.whatif import ResidualTrace, sample_result
    from twin_anomaly.detector import ResidualDetector
    from twin_sim.batch_twin import BatchDynamics, mirror_trajectory
    from twin_sim.faults import FaultScenario
    from twin_sim.mujoco_world import MujocoWorld
    from twin_sim.randomization import write_variant_urdf
    from twin_sim.urdf_model import URDFWarning

    scenario = setup.scenario
    n = len(ctx.joint_names)
    steps, dt = scenario.steps, scenario.dt
    variant = scenario.randomization.sample(ctx.joint_names, setup.seed, index)
    payload = variant.payload
    urdf = write_variant_urdf(ctx.nominal, variant, Path(ctx.tmp.name) / f'variant_{index}.urdf')
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', URDFWarning)   # prepare() has shown them
            # the drive's gains are scheduled along the reference as it runs (_drive)
            world = MujocoWorld(urdf, dt=dt, payload=payload, initial_q=setup.reference[0][0])
    finally:
        urdf.unlink(missing_ok=True)
    faults = []
    if scenario.faults is not None:
        faults = FaultScenario.from_dict(scenario.faults, source=scenario.source).faults
        for i, fault in enumerate(faults):
            fault.bind(world.joint_names)
            fault.reset(np.random.default_rng([variant.noise_seed, i]))   # as the plant
    physical = [f for f in faults if f.kind == 'physical']
    sensor = [f for f in faults if f.kind == 'sensor']
    truth = _drive(world, world.model, payload, physical, setup.reference, steps, dt)
    _check_drive(world, truth[1], truth[2], dt)
    arrived = _add_noise(_arrivals(truth, sensor, steps, dt, scenario.sample_every), variant,
                         steps, dt, n)
    step, t, q, qd, effort, wrench = arrived
    if scenario.twin_payload == 'variant':
        twin = BatchDynamics(ctx.twin_model, payload=payload)
    else:                              # the same twin for every sample of the run: build once
        twin = getattr(ctx, 'batch_twin', None)
        if twin is None:
            twin = ctx.batch_twin = BatchDynamics(ctx.twin_model)
    residuals = mirror_trajectory(twin, t, q, qd, effort, wrench)
    detector = ResidualDetector(ctx.joint_names, **scenario.detector)
    sample_dt = dt * scenario.sample_every
    report_every = max(1, int(round(detector.config.block_s / sample_dt)))
    received = residuals.index + 1             # samples received up to each result
    max_score, alarm = _watch(detector, residuals, qd[residuals.index], received, report_every,
                              variant.delay_s)
    result = sample_result(scenario, variant, truth[0], truth[2], setup.reference[0],
                           world.effort_limit, residuals.t, residuals.effort,
                           detector.config.commissioning_duration_s, max_score, alarm, t.size)
    trace_out = None
    if trace:
        w = (np.full((residuals.t.size, 6), np.nan) if residuals.wrench is None
             else residuals.wrench)
        trace_out = ResidualTrace(
            index=variant.index, variant=result.variant, t=residuals.t,
            position=residuals.position, velocity=residuals.velocity, effort=residuals.effort,
            wrench=w, velocity_measured=qd[residuals.index], joint_names=ctx.joint_names)
    return result, trace_out
