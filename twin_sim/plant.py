"""
The emulated robot: a simulated arm with fault injection and a ros2_control-like interface.

The arm is a :class:`~twin_sim.world.SimWorld`; faults come from :mod:`twin_sim.faults`.
Each :meth:`Plant.step` advances one ``dt``: the active command becomes a control target, the
physical faults act on the world, the world steps, and the sensor sample passes the sensor
faults (it may come out changed, late, or not at all). As a real robot steps its control loop
at 1 kHz or more and publishes its joint states at a lower rate, the plant sends the sample of
every ``publish_every``-th step only (:attr:`Plant.publish_step`; :func:`step_schedule` turns
the two rates into ``dt`` and ``publish_every``): the samples it sends are those a run that
sends every step would send at the same times, bit for bit, but for a ``delay`` fault, which
holds back the sent samples (a robot's late messages keep the stamps of its publish grid).

The plant keeps to the URDF limits whatever it is commanded, as a real arm's drives do, in
every mode: commands beyond a limit are clipped and counted (:attr:`Plant.clipped_commands`);
the position reference it follows (a stream extrapolated between set-points, an interpolated
trajectory) is clipped to the joint range and its velocity feed-forward to the velocity
limit; a trajectory whose timing needs more than the velocity limit is rejected
(:class:`PlantError`, counted in :attr:`Plant.rejected_trajectories`), as ros2_control's joint
trajectory controller rejects a goal it cannot follow; and after every step a joint faster than
its velocity limit is held at it (a drive's velocity limiter, :attr:`Plant.over_speed`) and a
joint beyond its range is stopped at its end (a hard stop, :attr:`Plant.limit_stops`). A motion
inside the limits is untouched by any of it. Without a command the arm holds its initial pose
in position mode. The same inputs and seed give bit-identical outputs.

The force-torque reading is the world's (:mod:`twin_sim.world`): what the bodies below the
sensor exert on it as the step moved them, the external pushes of the physical faults on them
included.
"""
from pathlib import Path
import tempfile

import numpy as np
from twin_sim.faults import Fault, fault_from_dict, FaultScenario, PhysicalEffects, \
    ScenarioError
from twin_sim.plant_commands import trajectory_speed_problem
from twin_sim.randomization import load_randomization, RandomizationError, \
    write_identified_urdf, write_randomized_robot
from twin_sim.resources import randomization_file
from twin_sim.trajectory import JointTrajectoryInterpolator, STREAM_HORIZON_S
from twin_sim.urdf_model import Payload, URDFError
from twin_sim.world import SimWorld, WorldError

__all__ = ['LockstepAnswers', 'Plant', 'PlantError', 'make_plant', 'step_schedule',
           'STREAM_HORIZON_S']


class PlantError(ValueError):
    """Bad input to :class:`Plant`; the message says what was wrong and what to do."""


class Plant:
    """
    The emulated robot.

    Parameters
    ----------
    urdf_path : str or Path
        The robot's URDF.
    scenario : FaultScenario, str, Path or None
        Faults to inject: a scenario, a scenario file, or the name of a packaged one
        (``'demo'``); checked against the robot's joints and links.
    dt : float
        Step period of the physics and of the drives' control loop, s.
    publish_every : int
        The robot sends the sample of every ``publish_every``-th step (counted from
        :meth:`reset`): its sample period is ``publish_every * dt``.
    seed : int
        Seeds the sensor faults' random generators (fault ``i`` draws from
        ``default_rng([seed, i])``).
    initial_q : (n,) rad, optional
        Initial pose, held until a command arrives (default: zeros clipped into the limits).
    payload : Payload, optional
        Nominal payload on the tool (in the sensor frame).
    **world_kwargs
        Passed to :class:`SimWorld` (``joint_names``, ``ft_link``, ``joint_damping``,
        ``joint_friction``, ``gravity``, ``control_bandwidth``, ...).

    Raises
    ------
    PlantError
        Bad URDF, scenario or arguments (the message names the problem).

    """

    def __init__(self, urdf_path, *, scenario=None, dt=0.001, publish_every=1, seed=0,
                 initial_q=None, payload=None, **world_kwargs):
        if isinstance(publish_every, bool) or not isinstance(publish_every, (int, np.integer)) \
                or publish_every < 1:
            raise PlantError(f'publish_every must be a whole number of steps >= 1, got '
                             f'{publish_every!r}')
        try:
            self.world = SimWorld(urdf_path, dt=dt, seed=seed, **world_kwargs)
        except WorldError as exc:
            raise PlantError(str(exc)) from exc
        self.urdf_path = Path(urdf_path)
        self.seed = int(seed)
        self.dt = self.world.dt
        self.publish_every = int(publish_every)
        self.joint_names = self.world.joint_names
        self.n = self.world.n
        self.model = self.world.model
        if initial_q is None:
            self.initial_q = self.world.q0.copy()
        else:
            self.initial_q = self._vector(initial_q, 'initial_q')
            if np.any(self.initial_q < self.world.lower) or \
                    np.any(self.initial_q > self.world.upper):
                raise PlantError(f'initial_q {self.initial_q.tolist()} is outside the joint '
                                 f'limits {self.world.lower.tolist()}..'
                                 f'{self.world.upper.tolist()}')
        if payload is not None and not isinstance(payload, Payload):
            raise PlantError(f'payload must be a twin_sim.urdf_model.Payload, got '
                             f'{type(payload).__name__}')
        self.nominal_payload = payload
        self.clipped_commands = 0     # commands beyond a limit (clipped), cumulative
        self.last_clipped = ''        # what the latest of them asked for
        self.rejected_trajectories = 0   # trajectories too fast for the velocity limits
        self.last_rejected = ''          # why the latest of them was rejected
        # streamed set-points that stopped coming: the reference reached the end of its
        # extrapolation (``extrapolate_s``) and held there before the next one arrived
        self.stream_holds = 0
        self.scenario = None
        self.faults = []
        self._added = 0
        if scenario is not None:
            self.load_scenario(scenario)
        self.reset()

    # ------------------------------------------------------------------ helpers
    def _vector(self, value, what):
        try:
            arr = np.array(value, dtype=float).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise PlantError(f'{what}: expected {self.n} numbers in joint order '
                             f'{list(self.joint_names)}') from exc
        if arr.shape != (self.n,):
            raise PlantError(f'{what}: expected {self.n} values in joint order '
                             f'{list(self.joint_names)}, got {arr.size}')
        if not np.all(np.isfinite(arr)):
            raise PlantError(f'{what}: values must be finite, got {arr.tolist()}')
        return arr

    def _note_clipped(self, *checks):
        """
        Count a command with a value beyond its limit (the world clips it); remember which.

        ``checks`` are ``(what, values (n,), low (n,), high (n,))``; the command counts once.
        """
        for what, values, low, high in checks:
            over = (values < low) | (values > high)
            if over.any():
                j = int(np.argmax(over))
                self.clipped_commands += 1
                self.last_clipped = (f'{what} {values[j]:.6g} for {self.joint_names[j]} is '
                                     f'beyond its limit [{low[j]:.6g}, {high[j]:.6g}]')
                return True
        return False

    def _speed_limits(self):
        return -self.world.speed_cap, self.world.speed_cap

    @property
    def over_speed(self):
        """Count the times a joint reached its speed limit and was held there (int)."""
        return self.world.over_speed_events

    @property
    def limit_stops(self):
        """Count the times a joint hit the end of its range and was stopped there (int)."""
        return self.world.limit_stop_events

    def _set_reference(self, q, qd=None, qdd=None):
        """
        Give the world a position reference inside the limits (the drive's own clipping).

        The position is clipped to the joint range, the velocity feed-forward to the velocity
        limit; where the reference is held at an end of the range (clipped there, or there
        and moving out) its feed-forward is dropped, as the reference does not move. Inside
        the limits the arrays pass unchanged.
        """
        world = self.world
        lower, upper = world.lower, world.upper
        clipped = np.minimum(np.maximum(q, lower), upper)
        if qd is not None or qdd is not None:
            held = clipped != q
            if qd is not None:
                cap = world.speed_cap
                qd = np.minimum(np.maximum(qd, -cap), cap)
                held |= ((clipped >= upper) & (qd > 0.0)) | ((clipped <= lower) & (qd < 0.0))
                if held.any():
                    qd = np.where(held, 0.0, qd)
            if qdd is not None and held.any():
                qdd = np.where(held, 0.0, qdd)
        world.set_control('position', clipped, qd, qdd)

    @property
    def time(self):
        """Plant time, s (since :meth:`reset`)."""
        return self.world.time

    @property
    def steps(self):
        """Count the steps taken since :meth:`reset` (int)."""
        return int(round(self.world.time / self.dt))

    @property
    def publish_step(self):
        """Whether the robot sends the sample of the step just taken (every ``publish_every``)."""
        return self.steps % self.publish_every == 0

    # ------------------------------------------------------------------ faults
    def load_scenario(self, scenario):
        """Replace the faults by those of a scenario (object, file or packaged name)."""
        if not isinstance(scenario, FaultScenario):
            scenario = FaultScenario.load(scenario)
        scenario.bind(self.joint_names, self.world.link_names)
        self.scenario = scenario
        self.clear_faults()
        for fault in scenario.faults:
            self._add(fault)

    def _add(self, fault):
        fault.reset(np.random.default_rng([self.seed, self._added]))
        self._added += 1
        self.faults.append(fault)

    def set_fault(self, fault):
        """
        Add a fault (a :class:`~twin_sim.faults.Fault` or its scenario mapping).

        Its times are plant times (``start_s: 0`` with the plant at 5 s acts at once).
        """
        if isinstance(fault, dict):
            fault = fault_from_dict(fault, source='set_fault')
        if not isinstance(fault, Fault):
            raise PlantError(f'set_fault needs a Fault or a mapping, got {type(fault).__name__}')
        check = FaultScenario('set_fault', [fault], source='set_fault')
        check.bind(self.joint_names, self.world.link_names)
        self._add(fault)

    def clear_faults(self):
        """Remove every fault and restore the nominal robot (friction, limits, payload)."""
        self.faults = []
        self._added = 0
        self.world.restore_nominal()
        self.world.set_payload(self.nominal_payload)
        self._applied_payload = self.nominal_payload
        self._physical_active = False

    def _apply_physical(self, t):
        physical = [f for f in self.faults if f.kind == 'physical']
        if not physical and not self._physical_active:
            return
        world = self.world
        effects = PhysicalEffects.nominal(self.n)
        for fault in physical:
            fault.contribute(effects, t)
        for j, name in enumerate(self.joint_names):
            world.set_friction_scale(j, effects.friction_scale[j])
            world.set_friction_offset(j, effects.friction_add[j])
            world.set_torque_limit(j, effects.torque_fraction[j] * world.effort_limit[j])
            if name in effects.locked:
                world.lock_joint(name)
            elif name in world.locked_joints:
                world.unlock_joint(name)
        payload = self._combined_payload(effects.payloads)
        if not _same_payload(payload, self._applied_payload):
            world.set_payload(payload)
            self._applied_payload = payload
        for link, force, point in effects.forces:
            link = link or self.model.payload_frame
            position, rotation = world.link_pose(link)
            world.apply_external_force(link, force, position + rotation @ point)
        self._physical_active = bool(physical)

    def _combined_payload(self, extra):
        if not extra:
            return self.nominal_payload
        parts = [] if self.nominal_payload is None else [
            (self.nominal_payload.mass, self.nominal_payload.com, self.nominal_payload.inertia)]
        parts += extra
        mass = sum(p[0] for p in parts)
        if mass <= 0.0:
            return None
        com = sum(p[0] * np.asarray(p[1]) for p in parts) / mass
        inertia = np.zeros((3, 3))
        for m, c, inertia_c in parts:
            r = np.asarray(c) - com
            inertia += inertia_c + m * (np.dot(r, r) * np.eye(3) - np.outer(r, r))
        return Payload(mass, com, inertia)

    # ------------------------------------------------------------------ commands
    def command_position(self, q, qd=None, qdd=None, *, extrapolate_s=0.0, age_s=0.0):
        """
        Hold/track joint positions ``q`` (n,) rad (clipped to the limits).

        ``qd`` (rad/s) and ``qdd`` (rad/s^2) are optional feedforward terms.

        ``extrapolate_s`` > 0 treats the command as one set-point of a stream (a controller
        sending position + velocity at its own rate, e.g. 100 Hz): until the next command, the
        reference moves on as ``q + qd (t - t_cmd)`` for at most ``extrapolate_s`` and then
        holds, as a real streaming position interface interpolates between set-points instead
        of jumping (which would saturate the drives at each set-point).

        ``age_s`` (in ``[0, extrapolate_s]``) is how long ago the set-point was valid (its
        stamp against the plant's clock): the reference starts ``age_s`` along its line, so
        that a set-point delivered late (a busy controller or bus) does not pull the arm back
        and then jump it forward at the next one.

        Values beyond the joint limits (position) or the URDF velocity limit (feedforward) are
        clipped and counted (:attr:`clipped_commands`, :attr:`last_clipped`); so is the
        extrapolated reference (held at the end of the range, without feed-forward there).
        """
        q = self._vector(q, 'position command')
        qd = None if qd is None else self._vector(qd, 'velocity feedforward')
        qdd = None if qdd is None else self._vector(qdd, 'acceleration feedforward')
        checks = [('position', q, self.world.lower, self.world.upper)]
        if qd is not None:
            checks.append(('velocity feedforward', qd, *self._speed_limits()))
        self._note_clipped(*checks)
        self._trajectory = None
        world = self.world
        q = np.minimum(np.maximum(q, world.lower), world.upper)     # what the drive takes
        if qd is not None:
            qd = np.minimum(np.maximum(qd, -world.speed_cap), world.speed_cap)
        if extrapolate_s > 0.0 and qd is not None:
            age = min(max(float(age_s), 0.0), float(extrapolate_s))
            self._stream = (q, qd, qdd, self.time - age, float(extrapolate_s))
        else:
            self._stream = None
        self._set_reference(q, qd, qdd)

    def _follow_stream(self, t):
        q, qd, qdd, t_cmd, horizon = self._stream
        age = min(t - t_cmd, horizon)
        if age >= horizon:
            # the controller's next set-point is late: hold (counted: the arm stops, and moves
            # on with a jump when the set-points resume, which the twin rightly sees)
            self._set_reference(q + qd * horizon)
            self._stream = None
            self.stream_holds += 1
        else:
            self._set_reference(q + qd * age, qd, qdd)

    def command_velocity(self, qd):
        """Track joint velocities ``qd`` (n,) rad/s (beyond the URDF limit: capped, counted)."""
        qd = self._vector(qd, 'velocity command')
        self._note_clipped(('velocity', qd, *self._speed_limits()))
        self._trajectory = self._stream = None
        cap = self.world.speed_cap
        self.world.set_control('velocity', np.minimum(np.maximum(qd, -cap), cap))

    def command_effort(self, tau):
        """
        Apply joint torques ``tau`` (n,) N·m (clipped to the torque limits).

        Beyond the URDF effort limit a command is counted (:attr:`clipped_commands`); below it
        but above a fault-reduced limit it is not (that is the fault). As in every mode, a
        joint is held at its URDF speed limit as a drive's velocity limiter does
        (:attr:`over_speed`) and stopped at the ends of its range (:attr:`limit_stops`).
        """
        tau = self._vector(tau, 'effort command')
        limit = self.world.effort_limit
        self._note_clipped(('effort', tau, -limit, limit))
        self._trajectory = self._stream = None
        self.world.set_control('torque', tau)

    def command_trajectory(self, interpolator, start_time=None):
        """
        Follow a :class:`~twin_sim.trajectory.JointTrajectoryInterpolator`.

        Parameters
        ----------
        interpolator : JointTrajectoryInterpolator
            In model joint order (``n`` columns).
        start_time : float, optional
            Plant time of the trajectory's ``t = 0`` (default now). After its end the last
            point is held.

        Raises
        ------
        PlantError
            The trajectory needs a joint faster than its URDF velocity limit (by more than
            ``TRAJECTORY_SPEED_TOLERANCE`` of :mod:`twin_sim.plant_commands`) somewhere inside
            the joint range: rejected, counted in :attr:`rejected_trajectories` (the reason
            in :attr:`last_rejected`), and the previous command stays in force, as
            ros2_control's joint trajectory controller rejects a goal it cannot follow. Where
            the spline runs beyond the range the reference is held at its end (clipped,
            counted in :attr:`clipped_commands`), so its speed there does not count. The jump
            to the first point, when the arm is elsewhere, is the controller's own (the drive
            moves there at its velocity limit); prepend the current state
            (:meth:`JointTrajectoryInterpolator.from_points`) to have it checked.

        """
        if not isinstance(interpolator, JointTrajectoryInterpolator):
            raise PlantError('command_trajectory needs a JointTrajectoryInterpolator, got '
                             f'{type(interpolator).__name__}')
        if interpolator.n != self.n:
            raise PlantError(f'trajectory has {interpolator.n} joints, the robot has {self.n} '
                             f'({list(self.joint_names)}); map it to the model order first')
        start = self.time if start_time is None else float(start_time)
        world = self.world
        self._check_speed(interpolator)
        self._note_clipped(*[('trajectory position', p, world.lower, world.upper)
                             for p in interpolator.positions])
        self._stream = None
        self._trajectory = (interpolator, start)
        self._follow_trajectory(self.time)

    def _check_speed(self, interpolator):
        """Reject (raise PlantError, count) a trajectory too fast for the velocity limits."""
        world = self.world
        problem = trajectory_speed_problem(interpolator, world.lower, world.upper,
                                           world.speed_cap, self.joint_names)
        if problem is not None:
            self.rejected_trajectories += 1
            self.last_rejected = problem
            raise PlantError(problem)

    def _follow_trajectory(self, t):
        interpolator, start = self._trajectory
        q, qd, qdd = interpolator.sample(t - start)
        self._set_reference(q, qd, qdd)

    # ------------------------------------------------------------------ stepping
    def step(self):
        """
        Advance one ``dt`` and return the step's sample (or None).

        The sensor faults see every step's sample, sent or not (their noise is that of the
        full-rate stream); the robot sends it only when :attr:`publish_step`. A ``delay``
        fault (``sent_samples_only``) sees the sent steps' samples only: a delayed sample keeps
        its stamp on the publish grid and comes out on a later sent step (the delay rounded up
        to whole sample periods); a step that is not sent passes it by.

        Returns
        -------
        Measurement or None
            None when the sample is dropped, or held back by a delay.

        """
        world = self.world
        t = world.time
        if self._trajectory is not None:
            self._follow_trajectory(t)
        elif self._stream is not None:
            self._follow_stream(t)
        if self.faults or self._physical_active:
            self._apply_physical(t)
        world.step()
        # the drive's limits, in every mode: end stops, then the velocity limiter
        world.limit_position()
        world.limit_speed()
        m = world.measure()
        t_now = m.t
        sent = self.publish_step
        for fault in self.faults:
            if fault.kind == 'sensor' and (sent or not fault.sent_samples_only):
                m = fault.apply(m, t_now)
        return m

    def advance(self, steps=1, max_steps=None):
        """
        Step ``steps`` times, then on until a sample is sent (lock-step stepping).

        A lock-step controller answers each sample with the command for the next steps; a
        sample a sensor fault drops or holds back must not leave it waiting, so the plant keeps
        stepping (with the command it has) to the next step whose sample it sends
        (:attr:`publish_step`) and that came out, for at most ``max_steps`` steps in all
        (default: 1 s of plant time), ending on a step whose sample it sends.

        Returns
        -------
        list of (float, Measurement or None)
            Plant time after each step whose sample the robot sends (every ``publish_every``-th)
            and that sample.

        """
        steps = int(steps)
        if steps < 1:
            raise PlantError(f'advance needs steps >= 1, got {steps}')
        limit = max(steps, int(round(1.0 / self.dt)) if max_steps is None else int(max_steps))
        out = []
        taken = 0
        while True:
            sample = self.step()
            taken += 1
            if self.publish_step:
                out.append((self.time, sample))
                if taken >= steps and (sample is not None or taken >= limit):
                    return out

    def run(self, duration_s):
        """Step for ``duration_s`` and return the samples the robot sent (list)."""
        steps = int(round(float(duration_s) / self.dt))
        out = []
        for _ in range(steps):
            m = self.step()
            if m is not None and self.publish_step:
                out.append(m)
        return out

    def reset(self):
        """Back to time 0 at the initial pose, holding it; faults restart (kept)."""
        faults = list(self.faults)
        self.clear_faults()
        for fault in faults:
            self._add(fault)
        self._trajectory = self._stream = None
        self.world.reset(self.initial_q)

    def close(self):
        """Release the simulation (and the robot files :func:`make_plant` wrote)."""
        self.world.close()
        tmpdir = getattr(self, '_tmpdir', None)
        if tmpdir is not None:
            tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LockstepAnswers:
    """
    Which commands step a lock-step plant: the answers to the one sample it waits for.

    In lock-step the plant publishes one sample per command (the state after the command's
    steps) and waits for its answer. A command stamped with that sample's stamp answers it
    (once: a second answer to it is stale); an unstamped command (stamp 0, or a message
    without a header such as Float64MultiArray) answers whatever sample is awaited. A command
    stamped with any other stamp answers a sample the plant is not waiting for (a duplicate, a
    late or a made-up answer): it is ignored and counted in :attr:`stale`. Before the first
    sample (and after a reset) a command is applied without stepping. ROS-free: stamps are
    integers, ns.
    """

    STEP = 'step'      # apply the command, then step
    APPLY = 'apply'    # apply it, no sample awaited yet
    STALE = 'stale'    # ignore it

    def __init__(self):
        self.stale = 0
        self.reset()

    def reset(self):
        """No sample awaited: the first sample has not gone out (again)."""
        self.started = False
        self.awaited_ns = None

    def sent(self, stamp_ns):
        """Wait for the answer to the sample stamped ``stamp_ns`` (int, ns), just sent."""
        self.started = True
        self.awaited_ns = int(stamp_ns)

    def answer(self, stamp_ns):
        """
        Classify a command stamped ``stamp_ns`` (int ns; 0 = unstamped).

        Returns
        -------
        str
            :attr:`STEP`, :attr:`APPLY` or :attr:`STALE` (counted).

        """
        if not self.started:
            return self.APPLY
        if self.awaited_ns is not None and int(stamp_ns) in (0, self.awaited_ns):
            self.awaited_ns = None       # answered; the plant steps and sends the next sample
            return self.STEP
        self.stale += 1
        return self.STALE


def _same_payload(a, b):
    # bit for bit, not Payload.same_as's 1e-9: the world simulates exactly the load the faults
    # give now (a tolerance would keep an earlier load up to 1e-9 off, which depends on history)
    if a is None or b is None:
        return a is b
    return (a.mass == b.mass and np.array_equal(a.com, b.com) and
            np.array_equal(a.inertia, b.inertia))


def step_schedule(publish_rate_hz, step_rate_hz=0.0):
    """
    Return the plant's step period and how many steps make a sample period, or raise.

    Parameters
    ----------
    publish_rate_hz : float
        Rate of the samples the robot sends (its joint states), Hz (> 0).
    step_rate_hz : float
        Rate of the physics and of the drives' control loop, Hz: a whole multiple of
        ``publish_rate_hz``; 0 = ``publish_rate_hz`` (a sample every step).

    Returns
    -------
    (float, int)
        The step period ``dt``, s, and ``publish_every`` (steps per sample), as
        :class:`Plant` takes them.

    Raises
    ------
    PlantError
        ``step_rate_hz`` is not a whole multiple of ``publish_rate_hz`` (the message names
        both and the nearest rates that fit).

    """
    publish, step = float(publish_rate_hz), float(step_rate_hz)
    if not publish > 0.0 or step < 0.0:
        raise PlantError(f'publish_rate_hz must be > 0 and step_rate_hz >= 0, got '
                         f'{publish_rate_hz!r} and {step_rate_hz!r}')
    if step == 0.0:
        return 1.0 / publish, 1
    if step < publish:
        raise PlantError(f'step_rate_hz {step:g} is below publish_rate_hz {publish:g}: the '
                         f'plant sends the sample of every k-th step, so it cannot publish '
                         f'faster than it steps; set step_rate_hz to a whole multiple of '
                         f'publish_rate_hz (or 0.0: step at publish_rate_hz)')
    ratio = step / publish
    every = int(round(ratio))
    if abs(ratio - every) > 1e-9 * ratio:
        below, above = int(ratio), int(ratio) + 1
        raise PlantError(f'publish_rate_hz {publish:g} does not divide step_rate_hz {step:g} '
                         f'(ratio {ratio:.6g}): the plant sends the sample of every k-th step; '
                         f'set publish_rate_hz to {step / below:.10g} (k = {below}) or '
                         f'{step / above:.10g} (k = {above}), or step_rate_hz to a whole '
                         f'multiple of {publish:g}')
    return 1.0 / step, every


def make_plant(urdf_path, *, scenario=None, dt=0.001, publish_every=1, seed=0,
               payload_mass_kg=0.0, dynamics_params_file='', randomization='',
               randomization_index=0, ft_link=None):
    """
    Build the plant a HIL bench or the demo runs: nominal, identified or randomized robot.

    Parameters
    ----------
    urdf_path : str
        The robot's URDF.
    scenario : str or None
        Fault scenario file (resolved), or None.
    dt : float
        Step, s.
    publish_every : int
        Steps per sample sent (:func:`step_schedule`).
    seed : int
        Seeds sensor faults and picks the randomized variant.
    payload_mass_kg : float
        Payload at the tool (0 = none).
    dynamics_params_file : str
        Identified dynamics (``params.yaml``); '' = the URDF's.
    randomization : str
        A randomization file or name (``default``): simulate variant ``randomization_index``
        of ``seed`` (around the identified dynamics if given), as that sample of
        ``robot-twin whatif``; '' = the nominal or identified robot.
    randomization_index : int
        Which variant.
    ft_link : str, optional
        The force-torque sensor link; None or '' = the default (``ft_sensor``, if present).

    Returns
    -------
    (Plant, twin_sim.randomization.Variant or None)
        The plant (its :meth:`Plant.close` removes the URDF written for it) and the variant.

    Raises
    ------
    PlantError
        Any problem with the robot, the randomization or the scenario (the message names it).

    """
    payload = Payload(payload_mass_kg) if payload_mass_kg > 0 else None
    tmpdir = None
    variant = None
    try:
        if randomization or dynamics_params_file:
            tmpdir = tempfile.TemporaryDirectory(prefix='robot_twin_plant_')
        if randomization:
            try:
                spec = load_randomization(randomization_file(randomization))
                urdf_path, variant = write_randomized_robot(
                    urdf_path, spec, seed, randomization_index,
                    Path(tmpdir.name) / 'variant.urdf', dynamics_params_file or None, ft_link)
            except (FileNotFoundError, RandomizationError, URDFError) as exc:
                raise PlantError(f'randomization: {exc}') from None
            if variant.payload is not None:
                if payload is not None:
                    raise PlantError('payload_mass_kg and a randomized payload are both set; '
                                     'keep one (set the randomization payload mass to 0)')
                payload = variant.payload
        elif dynamics_params_file:
            # simulate the identified robot: its URDF with the params.yaml dynamics put in
            urdf_path = write_identified_urdf(urdf_path, dynamics_params_file,
                                              Path(tmpdir.name) / 'identified.urdf', ft_link)
        try:
            world = {'ft_link': ft_link} if ft_link else {}
            plant = Plant(str(urdf_path), scenario=scenario, dt=dt, publish_every=publish_every,
                          seed=seed, payload=payload, **world)
        except ScenarioError as exc:
            raise PlantError(str(exc)) from None
    except BaseException:
        if tmpdir is not None:
            tmpdir.cleanup()
        raise
    plant._tmpdir = tmpdir
    return plant, variant
