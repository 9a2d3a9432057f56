"""
The ``twin_plant`` node: the simulated arm plays the robot (HIL bench and demo).

A stepping thread advances :class:`twin_sim.plant.Plant` at ``publish_rate_hz`` against the
wall clock and publishes, per step, /joint_states, the wrench topic and /clock (all with the
plant's time: wall-clock epoch at start-up + steps x dt, so stamps look like a real robot's and
nodes under ``use_sim_time`` follow /clock). Commands arrive as ros2_control's interfaces do:

- /joint_command (JointState: position, else velocity, else effort; any joint subset),
- /forward_position_controller/commands (Float64MultiArray, all joints in model order),
- /joint_trajectory_controller/joint_trajectory (JointTrajectory, interpolated in time).

Services: /twin/reset, /twin/set_fault (re-arms the configured scenario with its start times
counted from now), /twin/clear_fault; all std_srvs/Trigger (see README: no custom interfaces).
/twin/plant_status (latched DiagnosticArray) names the scenario and the stamp of plant time 0.

With ``randomization`` set, the plant simulates one domain-randomized robot (variant
``randomization_index`` of ``seed``, :func:`twin_sim.randomization.write_randomized_robot`)
instead of the nominal or identified one, and its status names the variant.
"""
from pathlib import Path
import sys
import tempfile
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import WrenchStamped
import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from robot_twin.config import declare_node_parameters
from robot_twin.nodes.messages import make_joint_state, make_status, make_wrench, \
    sec_to_stamp, trajectory_points
from robot_twin.nodes.runner import run_node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory
from twin_bridge.mapping import JointMapper, MappingError
from twin_sim.faults import FaultScenario, ScenarioError
from twin_sim.plant import Plant, PlantError
from twin_sim.randomization import load_randomization, RandomizationError, \
    write_identified_urdf, write_randomized_robot
from twin_sim.resources import fault_scenario, randomization_file, urdf_or_builtin
from twin_sim.trajectory import JointTrajectoryInterpolator, TrajectoryError
from twin_sim.urdf_model import Payload, URDFError

# QoS: the plant is the robot: its state streams are reliable like ros2_control's broadcasters
# (best-effort and reliable readers both match); commands reliable; status latched.
STATE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
COMMAND_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
MAX_LAG_S = 0.02   # further behind the wall clock than this: skip ahead instead of bursting
STREAM_HORIZON_S = 0.05   # a streamed set-point is extrapolated this long at most


class PlantNode(Node):
    """Step the simulated robot, publish its state, obey commands."""

    def __init__(self, **kwargs):
        super().__init__('plant', **kwargs)
        node = self
        params = self.params = declare_node_parameters(self, 'twin_plant')
        self.log = self.get_logger()
        self.thread = None
        self.scenario_path = fault_scenario(params['scenario']) if params['scenario'] else None
        payload = Payload(params['payload_mass_kg']) if params['payload_mass_kg'] > 0 else None
        urdf = urdf_or_builtin(params['urdf_path'])
        self._tmpdir = None
        self.variant = None
        identified = params['dynamics_params_file'] or None
        if params['randomization']:
            # simulate one domain-randomized robot (around the identified one, if given)
            self._tmpdir = tempfile.TemporaryDirectory(prefix='robot_twin_plant_')
            try:
                spec = load_randomization(randomization_file(params['randomization']))
                path, self.variant = write_randomized_robot(
                    urdf, spec, params['seed'], params['randomization_index'],
                    Path(self._tmpdir.name) / 'variant.urdf', identified)
            except (FileNotFoundError, RandomizationError, URDFError) as exc:
                raise ValueError(f'plant: randomization: {exc}') from None
            urdf = str(path)
            if self.variant.payload is not None:
                if payload is not None:
                    raise ValueError('plant: payload_mass_kg and a randomized payload are both '
                                     'set; keep one (set the randomization payload mass to 0)')
                payload = self.variant.payload
            self.log.info(f'simulating variant {self.variant.index} of seed '
                          f'{self.variant.seed} of {params["randomization"]}: '
                          f'{self._variant_text()}')
        elif identified:
            # simulate the identified robot: its URDF with the params.yaml dynamics put in
            self._tmpdir = tempfile.TemporaryDirectory(prefix='robot_twin_plant_')
            urdf = str(write_identified_urdf(urdf, identified,
                                             Path(self._tmpdir.name) / 'identified.urdf'))
        try:
            self.plant = Plant(urdf, scenario=self.scenario_path,
                               dt=1.0 / params['publish_rate_hz'], seed=params['seed'],
                               payload=payload)
        except (PlantError, ScenarioError) as exc:
            raise ValueError(f'plant: {exc}') from None
        self.names = list(self.plant.joint_names)
        self.mapper = JointMapper(self.names)
        self.ft_frame = self.plant.world.ft_link or ''
        self.lock = threading.Lock()
        self.epoch = time.time()
        self.overruns = 0
        self.rejected_commands = 0
        self.pub_joints = node.create_publisher(JointState, params['joint_states_topic'],
                                                STATE_QOS)
        self.pub_wrench = node.create_publisher(WrenchStamped, params['wrench_topic'],
                                                STATE_QOS) if params['wrench_topic'] else None
        self.pub_clock = node.create_publisher(Clock, '/clock', STATE_QOS)
        self.pub_status = node.create_publisher(DiagnosticArray, '/twin/plant_status',
                                                LATCHED_QOS)
        node.create_subscription(JointState, '/joint_command', self.on_joint_command,
                                 COMMAND_QOS)
        node.create_subscription(Float64MultiArray, '/forward_position_controller/commands',
                                 self.on_forward_command, COMMAND_QOS)
        node.create_subscription(JointTrajectory, '/joint_trajectory_controller/joint_trajectory',
                                 self.on_trajectory, COMMAND_QOS)
        node.create_service(Trigger, '/twin/reset', self.on_reset)
        node.create_service(Trigger, '/twin/set_fault', self.on_set_fault)
        node.create_service(Trigger, '/twin/clear_fault', self.on_clear_fault)
        self.publish_status('started')
        self.running = True
        self.thread = threading.Thread(target=self._loop, name='plant_stepper', daemon=True)
        self.thread.start()

    # ---------------------------------------------------------------- stepping
    def _loop(self):
        dt = self.plant.dt
        steps_per_status = max(1, int(round(1.0 / dt)))
        with self.lock:
            # plant time 0 is now (not when the node was built): stamps track the wall clock
            self.epoch = time.time() - self.plant.time
        self.publish_status('running')
        next_tick = time.perf_counter()
        k = 0
        while self.running:
            with self.lock:
                sample = self.plant.step()
                plant_time = self.plant.time
            # publish a sample when the wall clock reaches its plant time, never before
            next_tick += dt
            delay = next_tick - time.perf_counter()
            if delay > 0.0:
                time.sleep(delay)
            elif delay < -MAX_LAG_S:
                # starved of CPU: do not burst to catch up; move the robot clock on instead
                # (stamps stay near the wall clock; the twin sees a gap, as after a dropout)
                self.overruns += 1
                with self.lock:
                    self.epoch -= delay
                self.publish_status('clock moved on')   # tools map stamps to plant time
                next_tick = time.perf_counter()
            try:
                self._publish(sample, plant_time)
                k += 1
                if k % steps_per_status == 0:
                    self.publish_status('running')
            except Exception:
                if not self.context.ok():
                    break   # Ctrl-C shut the context down under this thread: stop quietly
                raise

    def _publish(self, sample, plant_time):
        self.pub_clock.publish(Clock(clock=sec_to_stamp(self.epoch + plant_time)))
        if sample is None:
            return
        stamp = sec_to_stamp(self.epoch + sample.t)
        self.pub_joints.publish(make_joint_state(stamp, self.names, sample.q, sample.qd,
                                                 sample.effort))
        if self.pub_wrench is not None and sample.wrench is not None:
            self.pub_wrench.publish(make_wrench(stamp, self.ft_frame, sample.wrench))

    def _variant_text(self):
        v = self.variant
        return (f'mass x{v.mass_scale.min():.3f}..{v.mass_scale.max():.3f}, Coulomb friction '
                f'x{v.coulomb_scale.min():.3f}..{v.coulomb_scale.max():.3f}, payload '
                f'{v.payload_mass_kg:.3f} kg')

    def publish_status(self, message):
        """Publish the latched /twin/plant_status."""
        faults = self.plant.faults   # what the plant holds now (set_fault adds, clear removes)
        # start_stamp: the stamp of plant time 0 (moves on after CPU starvation, see _loop)
        values = {'scenario': self.scenario_path or '', 'start_stamp': f'{self.epoch:.6f}',
                  'plant_time_s': f'{self.plant.time:.3f}',
                  'faults': len(faults), 'overruns': self.overruns,
                  'rejected_commands': self.rejected_commands}
        if self.variant is not None:
            values['variant'] = f'{self.variant.index} of seed {self.variant.seed}: ' + \
                self._variant_text()
        array = DiagnosticArray()
        array.header.stamp = sec_to_stamp(time.time())
        array.status.append(make_status('twin/plant', 'OK', message, values))
        self.pub_status.publish(array)

    # ---------------------------------------------------------------- commands
    def _reject(self, what, exc):
        self.rejected_commands += 1
        self.log.warning(f'{what} rejected: {exc}', throttle_duration_sec=2.0)

    def on_joint_command(self, msg):
        """
        Apply a JointState command: position (+ velocity), else velocity, else effort.

        A position command with velocities is a set-point of a stream: the plant moves the
        reference on with that velocity until the next one (at most ``STREAM_HORIZON_S``).
        """
        names = list(msg.name)
        try:
            with self.lock:
                if len(msg.position):
                    q = self._model_order(names, msg.position, self.plant.world.measure().q)
                    qd = (self._model_order(names, msg.velocity, np.zeros(len(self.names)))
                          if len(msg.velocity) else None)
                    self.plant.command_position(q, qd, extrapolate_s=STREAM_HORIZON_S)
                elif len(msg.velocity):
                    self.plant.command_velocity(self._model_order(
                        names, msg.velocity, np.zeros(len(self.names))))
                elif len(msg.effort):
                    self.plant.command_effort(self._model_order(
                        names, msg.effort, np.zeros(len(self.names))))
                else:
                    raise MappingError('no position, velocity or effort values')
        except (MappingError, PlantError, ValueError) as exc:
            self._reject('/joint_command', exc)

    def _model_order(self, names, values, held):
        """Map a command to model order; joints it leaves out get ``held`` (n,)."""
        if not np.all(np.isfinite(np.asarray(values, dtype=float))):
            raise ValueError(f'non-finite value in {list(values)}')
        target = self.mapper.to_model(names, values, np.nan)
        return np.where(np.isnan(target), held, target)

    def on_forward_command(self, msg):
        """Float64MultiArray of positions for every joint, model order."""
        try:
            with self.lock:
                self.plant.command_position(np.asarray(msg.data, dtype=float))
        except PlantError as exc:
            self._reject('/forward_position_controller/commands', exc)

    def on_trajectory(self, msg):
        """JointTrajectory: interpolate from now; joints it leaves out hold their position."""
        try:
            names, points = trajectory_points(msg)
            if not points:
                raise TrajectoryError('trajectory has no points')
            with self.lock:
                held = self.plant.world.measure().q
                positions = np.array([self._model_order(names, p[1], held) for p in points])
                velocities = None
                if all(p[2] is not None for p in points):
                    velocities = np.nan_to_num(np.array(
                        [self.mapper.to_model(names, p[2], 0.0) for p in points]))
                interp = JointTrajectoryInterpolator([p[0] for p in points], positions,
                                                     velocities)
                self.plant.command_trajectory(interp)
        except (MappingError, TrajectoryError, PlantError, ValueError) as exc:
            self._reject('joint trajectory', exc)

    # ---------------------------------------------------------------- services
    def on_reset(self, _request, response):
        """Back to plant time 0 at the initial pose (faults kept, restarting)."""
        with self.lock:
            self.plant.reset()
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
        if getattr(self, '_tmpdir', None) is not None:
            self._tmpdir.cleanup()
        return super().destroy_node()


def main(args=None):
    """Console entry point ``twin_plant``."""
    return run_node(PlantNode, args)


if __name__ == '__main__':
    sys.exit(main())
