"""
The ``twin_plant`` node: the simulated arm plays the robot (HIL bench and demo).

Steps :class:`twin_sim.plant.Plant` at ``step_rate_hz`` (its physics and drive loop; 0 =
``publish_rate_hz``) and publishes /joint_states, the wrench topic and /clock every
``step_rate_hz / publish_rate_hz``-th step, at ``publish_rate_hz``, as a robot whose control
loop runs at 1 kHz publishes its joint states at 100-500 Hz. It obeys commands as
ros2_control's interfaces do:

- /joint_command (JointState: position, else velocity, else effort; any joint subset),
- /forward_position_controller/commands (Float64MultiArray, all joints in model order),
- /joint_trajectory_controller/joint_trajectory (JointTrajectory, interpolated in time).

``step_mode`` chooses what drives the steps:

- ``realtime``: a thread takes every step at its own time on the wall clock (a command acts
  from the next step, as on the robot); stamps and /clock are the plant's time on the
  wall-clock epoch (like a real robot's). Deadline misses, jitter and overruns of the steps
  (:class:`twin_sim.pacing.RealtimePacer`) go to /twin/plant_status. On a busy machine give
  the stepping thread a real-time priority (``realtime_priority``, SCHED_FIFO).
- ``lockstep``: simulated time advances only when the controller's answer to the sample it
  waits for has arrived (:class:`twin_sim.plant.LockstepAnswers`): the answer advances
  ``lockstep_steps_per_command`` sample periods of 1/``publish_rate_hz`` (and on, a period at a
  time, until a sample comes out, should a fault drop it), each with its /clock, and the plant
  publishes one sample, the last period's, and waits for its answer. A command stamped for
  another sample is ignored (``stale_commands``). Stamps and /clock are simulated time from 0,
  so the same commands give bit-identical joint states, wrenches and clocks. The first sample
  goes out once a node that subscribes to the joint states and publishes a command topic is
  seen; a sample left unanswered for ``lockstep_timeout_s`` is sent again (counted as
  ``resends``).

Commands are checked by the rules of :mod:`twin_sim.plant_commands` (shared with
``robot-twin hil-report``); a bad one is rejected and counted (``rejected_commands``), and so is
a trajectory whose timing needs a joint faster than its URDF velocity limit. Commands beyond a
limit are clipped and counted (``clipped_commands``); in every mode a joint is held at its URDF
speed limit (``over_speed``) and stopped at the ends of its range (``limit_stops``); all are
warned about, at most once per status period.

Services: /twin/reset, /twin/set_fault (re-arms the configured scenario with its start times
counted from now), /twin/clear_fault; all std_srvs/Trigger (see README: no custom interfaces).
/twin/plant_status (latched DiagnosticArray) names the mode, the scenario, the stamp of plant
time 0 and the timing figures. With ``randomization`` set, the plant simulates one
domain-randomized robot (see :func:`twin_sim.plant.make_plant`) and its status names it.
"""
import os
import sys
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
import numpy as np
from rclpy.node import Node
from robot_twin.nodes import qos
from robot_twin.nodes.cdr import JointStateWriter, WrenchWriter
from robot_twin.nodes.messages import COMMAND_INTERFACES, make_status, sec_to_stamp
from robot_twin.nodes.params import declare_node_parameters
from robot_twin.nodes.runner import run_node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger
from twin_sim.faults import FaultScenario, ScenarioError
from twin_sim.pacing import LockstepGate, RealtimePacer
from twin_sim.plant import LockstepAnswers, make_plant, PlantError, step_schedule, \
    STREAM_HORIZON_S
from twin_sim.plant_commands import CommandRejected, forward_command, joint_command, \
    trajectory_command
from twin_sim.resources import fault_scenario, urdf_or_builtin

MAX_LAG_S = 0.02   # further behind the wall clock than this: catch up without sending
STATUS_PERIOD_S = 1.0
LOCKSTEP_SETTLE_S = 0.5   # lockstep: wait this long after the controller appears (discovery)


class Throttle:
    """
    Say when an occasional action is due again: at most once per ``period_s``.

    Parameters
    ----------
    period_s : float
        Least time between two actions, s.
    clock : callable
        Monotonic clock, s (``time.monotonic``).

    """

    def __init__(self, period_s, clock=time.monotonic):
        self.period_s = float(period_s)
        self.clock = clock
        self._next = -float('inf')

    def due(self):
        """Whether the action may run now (if so, the next one waits ``period_s``)."""
        now = self.clock()
        if now < self._next:
            return False
        self._next = now + self.period_s
        return True


class PlantNode(Node):
    """Step the simulated robot, publish its state, obey commands."""

    def __init__(self, name='plant', **kwargs):
        super().__init__(name, **kwargs)
        params = self.params = declare_node_parameters(self, 'twin_plant')
        self.log = self.get_logger()
        self.thread = None
        self.plant = None
        self.scenario_path = fault_scenario(params['scenario']) if params['scenario'] else None
        try:
            dt, publish_every = step_schedule(params['publish_rate_hz'], params['step_rate_hz'])
            self.plant, self.variant = make_plant(
                urdf_or_builtin(params['urdf_path']), scenario=self.scenario_path,
                dt=dt, publish_every=publish_every, seed=params['seed'],
                payload_mass_kg=params['payload_mass_kg'],
                dynamics_params_file=params['dynamics_params_file'],
                randomization=params['randomization'],
                randomization_index=params['randomization_index'],
                ft_link=params['ft_sensor_link'])
        except PlantError as exc:
            raise ValueError(f'plant: {exc}') from None
        if self.variant is not None:
            self.log.info(f'simulating variant {self.variant.index} of seed '
                          f'{self.variant.seed} of {params["randomization"]}: '
                          f'{self._variant_text()}')
        self.names = list(self.plant.joint_names)
        self.ft_frame = self.plant.world.ft_link or ''
        self._joint_bytes = JointStateWriter(self.names)
        self._wrench_bytes = WrenchWriter(self.ft_frame)
        self.lock = threading.Lock()
        self.lockstep = params['step_mode'] == 'lockstep'
        self.epoch = 0.0 if self.lockstep else time.time()
        self.pacer = RealtimePacer(self.plant.dt, MAX_LAG_S)
        self.rejected_commands = 0
        self.commands = 0
        self.gate = LockstepGate(LOCKSTEP_SETTLE_S, params['lockstep_timeout_s'])
        self.answers = LockstepAnswers()
        self._step_after = False       # lockstep: the command being handled answers the sample
        self._sent_ns = 0              # stamp of the last sample published, ns
        self._no_sample = False        # lockstep: the last advance let no sample out
        self._warned = {'clipped_commands': 0, 'over_speed': 0, 'limit_stops': 0,
                        'stream_holds': 0, 'rejected_trajectories': 0, 'stale_commands': 0}
        self._last = []                # lockstep: messages of the last step, for a resend
        self._rate = (time.monotonic(), 0)   # lockstep: (wall time, steps) of the last status
        self.starved_status = Throttle(STATUS_PERIOD_S)   # real time: the "starved" statuses
        self._make_endpoints(params)
        self.publish_status('started')
        self.running = True
        if self.lockstep:
            self.create_timer(0.05, self._lockstep_tick)
            self.create_timer(STATUS_PERIOD_S, lambda: self.publish_status('lockstep'))
        else:
            # the executor's thread (this one) takes the same priority: a stepping thread that
            # waits for the GIL held by a preempted normal thread would gain nothing from its own
            self._raise_priority(params['realtime_priority'])
            self.thread = threading.Thread(target=self._loop, name='plant_stepper', daemon=True)
            self.thread.start()

    def _make_endpoints(self, params):
        # QoS (robot_twin.nodes.qos): the plant is the robot; its state streams are reliable
        # like ros2_control's broadcasters, commands reliable, the status latched
        state = qos.ROBOT_STATE
        self.pub_joints = self.create_publisher(JointState, params['joint_states_topic'], state)
        self.pub_wrench = self.create_publisher(WrenchStamped, params['wrench_topic'],
                                                state) if params['wrench_topic'] else None
        self.pub_clock = self.create_publisher(Clock, '/clock', state)
        self.pub_status = self.create_publisher(DiagnosticArray, '/twin/plant_status',
                                                qos.LATCHED)
        callbacks = {'joint_command': self.on_joint_command,
                     'forward_position': self.on_forward_command,
                     'trajectory': self.on_trajectory}
        for interface, (topic, kind) in COMMAND_INTERFACES.items():
            self.create_subscription(kind, topic, callbacks[interface], qos.COMMAND)
        self.create_service(Trigger, '/twin/reset', self.on_reset)
        self.create_service(Trigger, '/twin/set_fault', self.on_set_fault)
        self.create_service(Trigger, '/twin/clear_fault', self.on_clear_fault)

    # ---------------------------------------------------------------- real-time stepping
    def _loop(self):
        pacer = self.pacer
        self._raise_priority(self.params['realtime_priority'])
        with self.lock:
            # plant time 0 is now (not when the node was built): stamps track the wall clock
            self.epoch = time.time() - self.plant.time
            pacer.reset(time.perf_counter())
        self.publish_status('running')
        steps_per_status = max(1, int(round(STATUS_PERIOD_S / self.plant.dt)))
        while self.running:
            with self.lock:
                # the epoch with the step: a /twin/reset between here and the publication sets
                # a new one, and this sample (old plant time) on it would be far in the future
                sample = self.plant.step()
                send = self.plant.publish_step
                plant_time, epoch = self.plant.time, self.epoch
            # every step waits for the wall clock to reach its plant time (a command acts from
            # the next step, as on the robot); every publish_every-th publishes its sample then
            delay = -pacer.lag(time.perf_counter())
            if delay > 0.0:
                time.sleep(delay)
            elif -delay > MAX_LAG_S:
                # starved of CPU: a real arm would have moved on, so the physics catches up
                # with the wall clock (on which its controller's set-points are); the samples
                # it could not send in time are dropped, as an overloaded robot's publisher
                # drops them (the twin sees a gap in the stream, not a jump of the motion)
                with self.lock:
                    for _ in range(pacer.catch_up(time.perf_counter())):
                        sample = self.plant.step()
                    send = self.plant.publish_step
                    plant_time, epoch = self.plant.time, self.epoch
                if self.starved_status.due():
                    # at most one extra status per STATUS_PERIOD_S (a starved loop catches up
                    # many times a second; each is in the timing figures of the next status)
                    self.publish_status('samples dropped (starved of CPU)')
            try:
                if send:
                    self._publish(sample, plant_time, epoch)
                pacer.done(time.perf_counter())
                if pacer.steps % steps_per_status == 0:
                    self.publish_status('running')
            except Exception:
                if not self.context.ok():
                    break   # Ctrl-C shut the context down under this thread: stop quietly
                raise

    def _raise_priority(self, priority):
        """Run the calling thread under SCHED_FIFO ``priority``; 0 = leave it."""
        if priority <= 0:
            return
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            self.log.info(f'{threading.current_thread().name} runs SCHED_FIFO priority '
                          f'{priority}')
        except (OSError, AttributeError) as exc:
            self.log.warning(f'realtime_priority {priority} refused ({exc}); stepping with '
                             'normal scheduling')

    def _publish(self, sample, plant_time, epoch):
        """
        Publish /clock and the sample (if any) of one sample period; keep them for a resend.

        ``epoch`` is the stamp of plant time 0 read together with the step (under the lock).
        """
        clock = Clock(clock=sec_to_stamp(epoch + plant_time))
        sent = [(self.pub_clock, clock)]
        if sample is not None:
            # serialized in place (robot_twin.nodes.cdr): the same bytes rclpy would make
            self._sent_ns = int(round((epoch + sample.t) * 1e9))
            stamp = divmod(self._sent_ns, 1_000_000_000)
            sent.append((self.pub_joints, self._joint_bytes.write(*stamp, sample.q, sample.qd,
                                                                  sample.effort)))
            if self.pub_wrench is not None and sample.wrench is not None:
                sent.append((self.pub_wrench, self._wrench_bytes.write(*stamp, sample.wrench)))
        for publisher, msg in sent:
            publisher.publish(msg)
        self._last = sent

    # ---------------------------------------------------------------- lock-step stepping
    def _controller_seen(self):
        """Whether a node both reads our joint states and publishes a command topic."""
        readers = {(i.node_namespace, i.node_name)
                   for i in self.get_subscriptions_info_by_topic(self.pub_joints.topic_name)}
        commanders = {(i.node_namespace, i.node_name)
                      for topic, _kind in COMMAND_INTERFACES.values()
                      for i in self.get_publishers_info_by_topic(topic)}
        return bool(readers & commanders) and self.pub_joints.get_subscription_count() > 0

    def _advance(self, periods):
        """Step ``periods`` sample periods (or on); publish /clock of each, the last's sample."""
        with self.lock:
            out = self.plant.advance(periods * self.plant.publish_every)
            epoch = self.epoch
        for plant_time, _sample in out[:-1]:
            self._publish(None, plant_time, epoch)
        plant_time, sample = out[-1]
        self._publish(sample, plant_time, epoch)
        # an outage longer than the plant's catch-up (a dropout fault) let no sample out: no
        # answer can come, so the next resend steps on instead (see _lockstep_tick)
        self._no_sample = sample is None
        if sample is not None:
            self.answers.sent(self._sent_ns)
        self.gate.sent(time.monotonic())

    def _lockstep_tick(self):
        """Send the first sample once a controller is there; resend an unanswered one."""
        action = self.gate.tick(time.monotonic(), self.gate.started or self._controller_seen())
        if action == LockstepGate.START:
            self._advance(1)
            self.publish_status('lockstep: first sample sent')
        elif action == LockstepGate.RESEND and self._no_sample:
            self._advance(self.params['lockstep_steps_per_command'])
        elif action == LockstepGate.RESEND:
            for publisher, msg in self._last:
                publisher.publish(msg)

    def _admit(self, stamp=None):
        """
        Count a command; whether to handle it (lock-step: not when stamped for another sample).

        ``stamp`` is the command's header stamp (None: a message without one).
        """
        self.commands += 1
        if not self.lockstep:
            return True
        stamp_ns = 0 if stamp is None else stamp.sec * 1_000_000_000 + stamp.nanosec
        verdict = self.answers.answer(stamp_ns)
        self._step_after = verdict == LockstepAnswers.STEP
        return verdict != LockstepAnswers.STALE

    def _commanded(self):
        """After a command (applied or rejected): in lock-step, advance to the next sample."""
        if self._step_after:
            self._step_after = False
            self._advance(self.params['lockstep_steps_per_command'])
            if time.monotonic() - self._rate[0] >= STATUS_PERIOD_S:   # not only from the timer
                self.publish_status('lockstep')

    # ---------------------------------------------------------------- status
    def _variant_text(self):
        v = self.variant
        return (f'mass x{v.mass_scale.min():.3f}..{v.mass_scale.max():.3f}, Coulomb friction '
                f'x{v.coulomb_scale.min():.3f}..{v.coulomb_scale.max():.3f}, payload '
                f'{v.payload_mass_kg:.3f} kg')

    def _timing_values(self):
        if self.lockstep:
            now, steps = time.monotonic(), self.plant.time / self.plant.dt
            rate = (steps - self._rate[1]) / max(now - self._rate[0], 1e-9)
            self._rate = (now, steps)
            return {'steps': int(round(steps)), 'commands': self.commands,
                    'stale_commands': self.answers.stale, 'resends': self.gate.resends,
                    'steps_per_s': f'{rate:.1f}',
                    # physics steps between two published samples (one per answered command)
                    'steps_per_sample': (self.params['lockstep_steps_per_command']
                                         * self.plant.publish_every)}
        stats = self.pacer.stats()
        for key in ('jitter_hist_edges_us', 'jitter_hist_counts'):
            stats[key] = ','.join(str(v) for v in stats[key])
        return stats

    def publish_status(self, message):
        """Publish the latched /twin/plant_status."""
        faults = self.plant.faults   # what the plant holds now (set_fault adds, clear removes)
        # start_stamp: the stamp of plant time 0 (samples are stamped epoch + plant time)
        # rate_hz: the step rate, which the timing figures (steps, deadlines) refer to
        values = {'mode': self.params['step_mode'], 'scenario': self.scenario_path or '',
                  'start_stamp': f'{self.epoch:.6f}', 'rate_hz': 1.0 / self.plant.dt,
                  'publish_rate_hz': self.params['publish_rate_hz'],
                  'plant_time_s': f'{self.plant.time:.3f}', 'faults': len(faults),
                  'rejected_commands': self.rejected_commands,
                  'clipped_commands': self.plant.clipped_commands,
                  'over_speed': self.plant.over_speed,
                  'limit_stops': self.plant.limit_stops,
                  'stream_holds': self.plant.stream_holds,
                  'rejected_trajectories': self.plant.rejected_trajectories}
        values.update(self._timing_values())
        self._warn_counts(values)
        if self.variant is not None:
            values['variant'] = f'{self.variant.index} of seed {self.variant.seed}: ' + \
                self._variant_text()
        array = DiagnosticArray()
        array.header.stamp = sec_to_stamp(time.time())
        array.status.append(make_status('twin/plant', 'OK', message, values))
        self.pub_status.publish(array)

    def _warn_counts(self, values):
        """Warn (once per status) about clipped commands, limits reached and stale answers."""
        text = {'clipped_commands': lambda: f'clipped (latest: {self.plant.last_clipped})',
                'over_speed': lambda: ('reached the URDF speed limit; held there as by a '
                                       "drive's velocity limiter"),
                'limit_stops': lambda: ('reached the end of the URDF joint range; stopped '
                                        'there as by a hard stop'),
                'stream_holds': lambda: ('streamed position set-points paused longer than '
                                         f'{STREAM_HORIZON_S * 1e3:g} ms: the arm held its '
                                         'last reference until the next one'),
                'rejected_trajectories': lambda: ('trajectories rejected as too fast for the '
                                                  'URDF velocity limits (latest: '
                                                  f'{self.plant.last_rejected})'),
                'stale_commands': lambda: 'ignored: stamped for a sample other than the one '
                                          'the lock-step plant waits for (answer each sample '
                                          'once, with its stamp)'}
        for key, what in text.items():
            count = int(values.get(key, 0))
            if count > self._warned[key]:
                self.log.warning(f'{key}: {count - self._warned[key]} more '
                                 f'({count} in all) {what()}')
                self._warned[key] = count

    # ---------------------------------------------------------------- commands
    def _reject(self, what, exc):
        self.rejected_commands += 1
        self.log.warning(f'{what} rejected: {exc}', throttle_duration_sec=2.0)

    def on_joint_command(self, msg):
        """
        Apply a JointState command: position (+ velocity), else velocity, else effort.

        A position command with velocities is a set-point of a stream: the plant moves the
        reference on with that velocity until the next one (at most ``STREAM_HORIZON_S``),
        from the command's stamp when that is on the plant's clock (within the horizon), else
        from its arrival.
        """
        if not self._admit(msg.header.stamp):
            return
        try:
            self._apply_joint_command(msg)
        except (CommandRejected, PlantError) as exc:
            self._reject('/joint_command', exc)
        self._commanded()

    def _apply_joint_command(self, msg):
        """Check (:func:`twin_sim.plant_commands.joint_command`) and apply a JointState."""
        mode, values, feedforward = joint_command(self.names, msg.name, msg.position,
                                                  msg.velocity, msg.effort)
        with self.lock:
            if mode == 'position':
                q = np.where(np.isnan(values), self.plant.world.measure().q, values)
                qd = None if feedforward is None else np.nan_to_num(feedforward, nan=0.0)
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
                age = self.epoch + self.plant.time - stamp
                self.plant.command_position(
                    q, qd, extrapolate_s=STREAM_HORIZON_S,
                    age_s=age if 0.0 <= age <= STREAM_HORIZON_S else 0.0)
            elif mode == 'velocity':
                self.plant.command_velocity(np.nan_to_num(values, nan=0.0))
            else:
                self.plant.command_effort(np.nan_to_num(values, nan=0.0))

    def on_forward_command(self, msg):
        """Float64MultiArray of positions for every joint, model order."""
        if not self._admit():
            return
        try:
            q = forward_command(self.names, msg.data)
            with self.lock:
                self.plant.command_position(q)
        except (CommandRejected, PlantError) as exc:
            self._reject('/forward_position_controller/commands', exc)
        self._commanded()

    def on_trajectory(self, msg):
        """
        JointTrajectory: interpolate from now; joints it leaves out hold their position.

        A trajectory whose timing needs a joint faster than its velocity limit is rejected
        (:meth:`twin_sim.plant.Plant.command_trajectory`); the previous command stays.
        """
        if not self._admit(msg.header.stamp):
            return
        try:
            with self.lock:
                interp = trajectory_command(self.names, msg, self.plant.world.measure().q)
                self.plant.command_trajectory(interp)
        except (CommandRejected, PlantError) as exc:
            self._reject('joint trajectory', exc)
        self._commanded()

    # ---------------------------------------------------------------- services
    def on_reset(self, _request, response):
        """Back to plant time 0 at the initial pose (faults kept, restarting)."""
        with self.lock:
            self.plant.reset()
            if self.lockstep:
                self.gate.reset()        # the first sample goes out again
                self.answers.reset()
            else:
                self.epoch = time.time()
        self.publish_status('reset')
        response.success, response.message = True, 'plant reset to its initial pose'
        return response

    def on_set_fault(self, _request, response):
        """Re-arm the configured scenario's faults, their start and end times counted from now."""
        if not self.scenario_path:
            response.success = False
            response.message = 'no scenario configured (parameter scenario)'
            return response
        try:
            with self.lock:
                now = self.plant.time
                for fault in FaultScenario.load(self.scenario_path).faults:
                    spec = fault.to_dict()
                    for key in ('start_s', 'end_s'):   # end_s too: it must stay after start_s
                        if spec.get(key) is not None:
                            spec[key] = now + float(spec[key])
                    self.plant.set_fault(spec)
        except (ScenarioError, PlantError) as exc:   # e.g. the file changed since start-up
            response.success, response.message = False, f'cannot arm the faults: {exc}'
            return response
        self.publish_status('faults armed')
        response.success, response.message = True, f'armed {self.scenario_path} at t={now:.3f}'
        return response

    def on_clear_fault(self, _request, response):
        """Remove every fault; the robot is nominal again."""
        with self.lock:
            self.plant.clear_faults()
        self.publish_status('faults cleared')
        response.success, response.message = True, 'all faults cleared'
        return response

    def destroy_node(self):
        """Stop the stepping thread and release the simulation before the node goes."""
        self.running = False
        if self.thread is not None and self.thread.is_alive():
            self.thread.join(timeout=2.0)
        if getattr(self, 'plant', None) is not None:
            self.plant.close()
        return super().destroy_node()


def main(args=None):
    """Console entry point ``twin_plant``."""
    return run_node(PlantNode, args)


if __name__ == '__main__':
    sys.exit(main())
