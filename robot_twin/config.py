"""
The one place robot_twin's node parameters are defined, and the reader of its config files.

A config file (``config/twin.yaml``, ``hil.yaml``, ``demo.yaml`` or your own) is a standard ROS 2
params file: every node reads its parameters from it with ``--params-file``, by rcl's own
rules (this module never works out which section applies to which node). One extra section,
keyed ``robot_twin``, is plain data for the bring-up (``ros2 launch`` and ``robot-twin up``):
which nodes to start, and which of them share the one twin process. rcl treats every top-level
key as a node name and rejects a key without ``ros__parameters``, so that section is written as
the parameters of a node named ``robot_twin``, which never runs::

    robot_twin:
      ros__parameters:
        nodes: [plant, twin_bridge, twin_sim, twin_anomaly]   # node names, in start order
        executables:                     # only where the name is not the executable
          plant: twin_plant
        one_process: [twin_bridge, twin_sim, twin_anomaly]    # run together (default: the
                                         # twin's nodes); the others get a process each
        remappings:                      # optional, per node: 'from:=to' strings
          twin_anomaly: ['/twin/markers:=/cell2/twin_markers']
    /**:                                 # every node
      ros__parameters:
        use_sim_time: false
        joint_states_topic: /arm/joint_states   # the robot's topics: parameters, not remappings
    /**/twin_bridge:                     # node twin_bridge in any namespace
      ros__parameters:
        stale_timeout_s: 0.1

A remapping applies to the one node it is listed under. The robot's topics are read by
``twin_bridge`` alone in the one-process twin but by each of the three nodes in processes of
their own, and published by a plant: move them with ``joint_states_topic`` and ``wrench_topic``
in ``/**``, which every one of those nodes reads in either layout (remapping ``twin_bridge``
alone would leave a separate ``twin_sim`` and ``twin_anomaly`` on ``/joint_states``).

``PARAMETERS`` holds every parameter of every robot_twin executable (name, type, default,
description, range or choices); the nodes declare their parameters from it
(:func:`robot_twin.nodes.params.declare_node_parameters`) and reject a bad value at start-up.
:func:`load_config` also checks, before anything starts, that each section only names
parameters some node it can apply to has (a typo would otherwise be silently ignored by ROS).
"""
from dataclasses import dataclass
import difflib
import math
import os
import re

from twin_sim.yaml_numbers import load_yaml
import yaml

GRAPH_KEY = 'robot_twin'
"""Top-level key of the section that lists the nodes to start."""

EXECUTABLES = ('twin_bridge', 'twin_sim', 'twin_plant', 'twin_anomaly', 'demo_controller',
               'twin_hub')
"""robot_twin's node executables (console scripts), each with a schema in ``PARAMETERS``."""

TWIN_EXECUTABLES = ('twin_bridge', 'twin_sim', 'twin_anomaly')
"""The twin's own nodes: by default they share one process (``one_process``)."""

CONTAINER_EXECUTABLES = TWIN_EXECUTABLES + ('twin_plant', 'demo_controller')
"""The executables ``twin_container`` can run (``one_process``); twin_hub needs its own process."""

INTERFACES = ('trajectory', 'forward_position', 'joint_command')
"""Command interfaces: JointTrajectory, Float64MultiArray (forward controller), JointState."""


class ConfigError(ValueError):
    """A config file or a parameter value is wrong; ``errors`` lists every problem found."""

    def __init__(self, source, errors):
        self.source = source
        self.errors = list(errors)
        head = f'{source}: ' if source else ''
        if len(self.errors) == 1:
            text = head + self.errors[0]
        else:
            text = head + f'{len(self.errors)} problems:\n' + '\n'.join(
                f'  - {e}' for e in self.errors)
        super().__init__(text)


def _type_name(value):
    return {bool: 'a bool', int: 'an integer', float: 'a float', str: 'a string',
            list: 'a list', dict: 'a map'}.get(type(value), type(value).__name__)


def _check(spec, value):
    """Return what is wrong with ``value`` for ``spec`` (text starting with the name) or None."""
    where = f'{spec.name} = {value!r}'
    if value is None:
        return f'{spec.name} has no value; write a {spec.type.__name__}'
    if spec.type is list:             # an array of floats (ROS DOUBLE_ARRAY); () = not set
        if not isinstance(value, (list, tuple)):
            return f'{where} is {_type_name(value)}, expected a list of floats'
        for item in value:
            problem = _check(ParamSpec(spec.name, float, 0.0, spec.description), item)
            if problem:
                return f'{where}: {problem.split(" is ", 1)[-1]}'
        return None
    if spec.type is float:
        if isinstance(value, bool) or not isinstance(value, float):
            hint = f'; write {value}.0 (ROS does not convert integers)' if (
                isinstance(value, int) and not isinstance(value, bool)) else ''
            return f'{where} is {_type_name(value)}, expected a float{hint}'
        if not math.isfinite(value):
            return f'{where} is not a finite number'
    elif spec.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f'{where} is {_type_name(value)}, expected an integer'
    elif not isinstance(value, spec.type):
        return f'{where} is {_type_name(value)}, expected {_type_name(spec.type())}'
    if spec.min is not None and value < spec.min or spec.max is not None and value > spec.max:
        return f'{where} is out of range [{spec.min}, {spec.max}] ({spec.description})'
    if spec.choices is not None and value not in spec.choices:
        return f'{where} is not one of {", ".join(spec.choices)}'
    return None


@dataclass(frozen=True)
class ParamSpec:
    """
    One ROS parameter of a node.

    Attributes
    ----------
    name : str
        Parameter name; dotted names (``corrective_actions.enabled``) are nested maps in YAML.
    type : type
        ``bool``, ``int``, ``float``, ``str`` or ``list`` (ROS BOOL, INTEGER, DOUBLE, STRING,
        DOUBLE_ARRAY). ROS does not convert: a float parameter given ``1`` in YAML is rejected,
        write ``1.0``.
    default : bool, int, float, str or tuple
        Value when no file or override sets it (``()`` for a list: not set).
    description : str
        What it does, with units; shown by ``ros2 param describe``.
    min, max : float or int, optional
        Inclusive range of a number.
    choices : tuple of str, optional
        Allowed values of a string.
    read_only : bool
        True when the node reads it only at start-up (changing it needs a restart).

    """

    name: str
    type: type  # noqa: A003 (ParamSpec field read by other modules)
    default: object
    description: str
    min: float = None  # noqa: A003 (ParamSpec field read by other modules)
    max: float = None  # noqa: A003 (ParamSpec field read by other modules)
    choices: tuple = None
    read_only: bool = False

    def __post_init__(self):
        if self.type not in (bool, int, float, str, list):
            raise TypeError(f'{self.name}: type must be bool, int, float, str or list')
        problem = _check(self, self.default)
        if problem:
            raise ValueError(f'default of {problem}')


# Parameters that rclpy declares itself on every node; files may set them, nodes never declare
# them again. (``qos_overrides.*`` are also accepted: rclpy reads them for QoS overrides.)
ROS_PARAMETERS = (
    ParamSpec('use_sim_time', bool, False, 'Use /clock instead of the system clock.'),
    ParamSpec('start_type_description_service', bool, True,
              'Offer the type description service (Jazzy and newer).', read_only=True),
)

_URDF = ParamSpec(
    'urdf_path', str, '',
    'URDF file of the robot (plain URDF, not xacro); empty = the built-in '
    'urdf/robot_twin_arm.urdf.', read_only=True)
_JOINT_STATES_TOPIC = ParamSpec(
    'joint_states_topic', str, '/joint_states',
    'sensor_msgs/JointState topic of the robot (a twin_plant publishes it).', read_only=True)
_WRENCH_TOPIC = ParamSpec(
    'wrench_topic', str, '/ft_sensor/wrench',
    'geometry_msgs/WrenchStamped topic of the force-torque sensor (a twin_plant publishes '
    'it); empty = the robot has no force-torque sensor.', read_only=True)
_FT_LINK = ParamSpec(
    'ft_sensor_link', str, '',
    'URDF link of the force-torque sensor frame; empty = the link named ft_sensor if the URDF '
    'has one (else wrench outputs are off, with a warning). A link named here must exist.',
    read_only=True)
_LOCKED = ParamSpec(
    'locked_joints', str, '',
    'URDF joints the robot does not stream (a gripper published on a topic of its own), held '
    'fixed in the twin\'s model: "name" (at 0, or its nearest limit) or "name=position" (rad, '
    'or m), comma-separated. Empty: the twin waits for every moving joint of the URDF.',
    read_only=True)
_INPUT = (
    _JOINT_STATES_TOPIC, _WRENCH_TOPIC, _FT_LINK, _LOCKED,
    ParamSpec('unknown_joints', str, 'reject',
              'A JointState that names a joint the URDF does not have: reject the message '
              '(and count it in /twin/status) or ignore that joint.',
              choices=('reject', 'ignore'), read_only=True),
    ParamSpec('max_future_s', float, 0.1,
              'A message stamped more than this many seconds ahead of the local clock is '
              'invalid (clock skew).', min=0.0, max=60.0, read_only=True),
    ParamSpec('position_margin_rad', float, 0.1,
              'A revolute joint position beyond its URDF limits by more than this (rad) is '
              'impossible: the sample is rejected.', min=0.0, max=10.0, read_only=True),
    ParamSpec('position_margin_m', float, 0.01,
              'The same for prismatic joints (m).', min=0.0, max=10.0, read_only=True),
    ParamSpec('velocity_factor', float, 1.5,
              'A joint speed above this factor times its URDF velocity limit is impossible: '
              'the sample is rejected.', min=1.0, max=100.0, read_only=True),
    ParamSpec('effort_factor', float, 2.0,
              'A joint effort above this factor times its URDF effort limit is impossible: '
              'the sample is rejected.', min=1.0, max=100.0, read_only=True),
    ParamSpec('wrench_force_range_n', float, 1000.0,
              'Measuring range of the force-torque sensor, force (N); a larger component is '
              'rejected. Set it to the range of your sensor.', min=1e-3, max=1e6, read_only=True),
    ParamSpec('wrench_torque_range_nm', float, 100.0,
              'Measuring range of the force-torque sensor, torque (N·m); a larger component '
              'is rejected. Set it to the range of your sensor.', min=1e-3, max=1e6,
              read_only=True),
)
"""How the robot's streams are read and checked (every node that reads them)."""
_DYNAMICS = (
    ParamSpec('dynamics_params_file', str, '',
              'Identified dynamics (params.yaml from robot-twin sysid) of the model of the twin; '
              'empty = URDF inertias, no friction.', read_only=True),
    ParamSpec('payload_mass_kg', float, 0.0,
              'Known payload at the tool (kg).', min=0.0, max=1000.0, read_only=True),
    ParamSpec('payload_frame', str, '',
              'URDF link that carries the payload; empty = the force-torque sensor frame, else '
              'the last link of the arm before any gripper joint (the twin logs which). With a '
              'sensor link, only that link.', read_only=True),
)
"""The twin's model beyond the URDF (every node that runs the mirror)."""
_LEDGER = ParamSpec(
    'ledger_path', str, '',
    'Lifecycle log (hash-chained JSON lines, robot-twin ledger verify|show): starts, the '
    "governor's corrective commands, commissioning, calibration, anomalies, RUL advice and "
    'derating. Give the bridge and the anomaly node the same file (they share one writer in '
    'one process); empty = no lifecycle log.', read_only=True)
_DISPLAY_RATE = ParamSpec(
    'display_rate_hz', float, 50.0,
    'Rate of the display-only topics (/twin/joint_states; /twin/predicted_joint_states and '
    '/twin/predicted_wrench); residuals keep the rate of the robot (Hz).', min=0.1, max=10000.0,
    read_only=True)
_HUB = (
    _URDF, _LOCKED,
    ParamSpec('measured_topic', str, '/twin/joint_states',
              "The twin's mirrored joint states (display rate); not joint_states_topic, which "
              "a config's /** section sets to the robot's own 1 kHz topic.", read_only=True),
    ParamSpec('predicted_topic', str, '/twin/predicted_joint_states',
              "The twin's predicted joint states (display rate)", read_only=True),
    ParamSpec('nice', int, 10,
              "CPU priority the hub process lowers itself by (0..19, as nice(1)): the twin's "
              '1 kHz process always gets the CPU first.', min=0, max=19, read_only=True),
    ParamSpec('decode_rate_hz', float, 50.0,
              'At most this many joint samples per second per topic are decoded; the rest '
              'are dropped unread (so a full-rate topic costs the hub little).',
              min=1.0, max=1000.0, read_only=True),
    ParamSpec('bridge_node', str, 'twin_bridge',
              'Node whose corrective_actions.enabled the hub reads and sets (relative names '
              'resolve in the hub namespace).', read_only=True),
    ParamSpec('dynamics_params_file', str, '',
              'Identified dynamics to show (params.yaml from robot-twin sysid); empty = none.',
              read_only=True),
    _LEDGER,                          # shown, and acknowledgements recorded in it
    ParamSpec('api.address', str, '',
              'HOST:PORT of the REST API and the dashboard; empty = off.', read_only=True),
    ParamSpec('api.token_file', str, '',
              'File holding the bearer token for writes (REST, and the password of OPC UA '
              'user robot_twin); empty = read-only.', read_only=True),
    ParamSpec('api.max_connections', int, 64,
              'REST/dashboard connections open at once at most; one more is answered 503 and '
              'closed at once (so idle clients cannot hold every file descriptor).',
              min=1, max=4096, read_only=True),
    ParamSpec('api.request_timeout_s', float, 10.0,
              'A client must send a whole request (line, headers and body) within this time '
              '(s) of starting it, or of connecting, else its connection is closed '
              '(slow or idle clients).', min=0.1, max=600.0, read_only=True),
    ParamSpec('api.keep_alive_s', float, 5.0,
              'An idle keep-alive connection is closed after this time (s) without a new '
              'request.', min=0.1, max=600.0, read_only=True),
    ParamSpec('api.write_timeout_s', float, 20.0,
              'A client that takes none of its answer for this time (s) while the hub holds '
              'more of it than the socket takes has its connection reset (clients that stopped '
              'reading); one that reads slowly keeps going.', min=0.1, max=600.0,
              read_only=True),
    ParamSpec('opcua.address', str, '',
              'HOST:PORT of the OPC UA server (OPC 40010-1 Robotics); empty = off.',
              read_only=True),
    ParamSpec('opcua.nodeset_dir', str, '',
              'Folder with Opc.Ua.Di.NodeSet2.xml, Opc.Ua.IA.NodeSet2.xml and '
              'Opc.Ua.Robotics.NodeSet2.xml; empty = the node-opcua-nodesets package that '
              'make setup installs into the venv.', read_only=True),
    ParamSpec('opcua.update_rate_hz', float, 10.0, 'OPC UA value updates per second.',
              min=0.1, max=100.0, read_only=True),
    ParamSpec('foxglove.address', str, '',
              'HOST:PORT of the Foxglove WebSocket server; empty = off.', read_only=True),
    ParamSpec('foxglove.mcap_path', str, '',
              'Also record the Foxglove channels to this MCAP file; empty = no recording.',
              read_only=True),
    ParamSpec('foxglove.rate_hz', float, 20.0, 'Foxglove scene and plot updates per second.',
              min=0.1, max=200.0, read_only=True),
    ParamSpec('whatif.output_dir', str, '',
              'Where what-if jobs write their results; empty = ~/.ros/robot_twin/whatif_jobs.',
              read_only=True),
    ParamSpec('whatif.max_samples', int, 64, 'Largest what-if job accepted (samples).',
              min=1, max=100000, read_only=True),
    ParamSpec('whatif.max_queued', int, 4,
              'What-if jobs waiting at most (one runs at a time, at low CPU priority).',
              min=0, max=1000, read_only=True),
)
"""The outside-ROS interfaces of ``twin_hub`` (robot_twin.hub.settings checks and uses them)."""

PARAMETERS = {
    'twin_bridge': (
        _URDF, *_INPUT, _DISPLAY_RATE,
        ParamSpec('trajectory_topic', str, '/joint_trajectory_controller/joint_trajectory',
                  'trajectory_msgs/JointTrajectory topic of the robot controller: observed '
                  '(its last command is reported in /twin/status), and commanded when '
                  'corrective_actions.interface is trajectory.', read_only=True),
        ParamSpec('stale_timeout_s', float, 0.1,
                  'A stream whose newest message is older than this (s) is STALE; a stale '
                  'state blocks corrective commands.', min=0.001, max=10.0, read_only=True),
        ParamSpec('status_rate_hz', float, 10.0, 'Rate of /twin/status (Hz).',
                  min=0.1, max=1000.0, read_only=True),
        ParamSpec('stream_warn.window_s', float, 5.0,
                  'Recent window (s) over which /twin/status gives the joint-state rate and '
                  'judges missing and lost samples: a stream that recovers is OK again after it.',
                  min=0.1, max=3600.0, read_only=True),
        ParamSpec('stream_warn.missing_share', float, 0.01,
                  "/twin/status is WARN while more than this share of the robot's samples in "
                  'the window are missing from its stream (its stamp gaps; one-process twin), '
                  'or of its stamps gave no sample (their joints not all in with one stamp).',
                  min=0.0, max=1.0, read_only=True),
        ParamSpec('stream_warn.lost_in_twin_share', float, 0.0,
                  "/twin/status is WARN while more than this share of the robot's samples in "
                  "the window were lost in the twin's own input queue (0: any; one-process "
                  'twin).', min=0.0, max=1.0, read_only=True),
        ParamSpec('stream_warn.latency_tail_s', float, 0.05,
                  '/twin/status is WARN while the 99th percentile of the joint-state latency '
                  '(robot stamp to receipt, last 1000 samples) is more than this above its '
                  "median (s): late samples. A constant offset between the robot's and the "
                  "twin's clocks does not count.", min=0.001, max=10.0, read_only=True),
        ParamSpec('cpu_warn.window_s', float, 10.0,
                  'Window (s, steady clock) over which /twin/status gives the CPU of the '
                  "bridge's process (process.cpu_cores: the whole twin when it runs as one "
                  'process) and twin/cpu on /diagnostics judges it.',
                  min=1.0, max=3600.0, read_only=True),
        ParamSpec('cpu_warn.limit_cores', float, 0.5,
                  "twin/cpu on /diagnostics is WARN once the bridge's process takes more than "
                  'this many cores over the window, OK again below 90 % of it (judged once the '
                  'window is half full; 0: never).',
                  min=0.0, max=1024.0, read_only=True),
        ParamSpec('corrective_actions.enabled', bool, False,
                  'Let the governor send corrective commands to the robot.'),
        ParamSpec('corrective_actions.interface', str, 'trajectory',
                  'Command interface: trajectory (JointTrajectory), forward_position '
                  '(Float64MultiArray to a forward position controller) or joint_command '
                  '(JointState, topic_based_ros2_control).', choices=INTERFACES,
                  read_only=True),
        ParamSpec('corrective_actions.topic', str, '',
                  'Command topic; empty = the default of the interface '
                  '(/joint_trajectory_controller/joint_trajectory, '
                  '/forward_position_controller/commands, /joint_command).', read_only=True),
        ParamSpec('corrective_actions.max_rate_hz', float, 10.0,
                  'At most this many corrective commands per second.', min=0.01, max=1000.0,
                  read_only=True),
        ParamSpec('corrective_actions.position_margin_rad', float, 0.05,
                  'Commanded positions of revolute joints stay this far (rad) inside the URDF '
                  'position limits.', min=0.0, max=1.0, read_only=True),
        ParamSpec('corrective_actions.position_margin_m', float, 0.002,
                  'The same for prismatic joints (m).', min=0.0, max=1.0, read_only=True),
        ParamSpec('corrective_actions.velocity_scale', float, 0.5,
                  'Commands use at most this fraction of the URDF velocity limits.',
                  min=0.01, max=1.0, read_only=True),
        ParamSpec('corrective_actions.max_acceleration', float, 0.0,
                  'Acceleration limit of every joint for corrective commands (rad/s², m/s² '
                  'for prismatic joints); 0 = none. A joint_limits_file limit that is lower '
                  'wins.', min=0.0, max=1.0e6, read_only=True),
        ParamSpec('corrective_actions.joint_limits_file', str, '',
                  'MoveIt / ros2_control joint_limits.yaml: its has_acceleration_limits / '
                  'max_acceleration bound corrective commands (the lower of it and '
                  'max_acceleration), its max_velocity lowers a URDF velocity limit (never '
                  'raises one); other keys are ignored. Empty = none.', read_only=True),
        ParamSpec('corrective_actions.policy', str, 'hold',
                  'What a new anomaly episode at ERROR commands: hold (stop where the robot '
                  'is) or home (move to corrective_actions.home_position).',
                  choices=('hold', 'home'), read_only=True),
        ParamSpec('corrective_actions.home_position', list, (),
                  'Safe pose for the home policy, one position per URDF joint (rad or m, '
                  'URDF joint order); the governor still clamps it into the limits.',
                  read_only=True),
        ParamSpec('corrective_actions.move_time_s', float, 0.5,
                  'Time the policy asks for its move (s); the governor slows it down to the '
                  'velocity limits when it is too fast.', min=0.01, max=60.0, read_only=True),
        ParamSpec('corrective_actions.stream_rate_hz', float, 100.0,
                  'forward_position and joint_command interfaces: rate at which the '
                  'governed trajectory is streamed as set-points (Hz).', min=1.0, max=1000.0,
                  read_only=True),
        _LEDGER,
    ),
    'twin_sim': (_URDF, *_INPUT, *_DYNAMICS, _DISPLAY_RATE),
    'twin_anomaly': (
        _URDF, *_INPUT, *_DYNAMICS, _LEDGER,
        ParamSpec('commissioning_duration_s', float, 30.0,
                  'Seconds of nominal motion (stamp time) to commission on: the first '
                  'calibration_fraction collects data to calibrate the model, the rest learns '
                  'thresholds. No alarm is raised before it ends.', min=1.0, max=86400.0,
                  read_only=True),
        ParamSpec('calibration', bool, True,
                  'Calibrate the model to this robot during commissioning (the URDF as the '
                  'prior; a fit worse than the prior on held-out data is not used); false = '
                  'predict with the URDF (and dynamics_params_file) as given.', read_only=True),
        ParamSpec('calibration_fraction', float, 0.5,
                  'Share of commissioning_duration_s that collects data for the calibration.',
                  min=0.05, max=0.95, read_only=True),
        ParamSpec('thresholds_file', str, '',
                  'Where calibration and thresholds are saved and loaded from; empty = a file '
                  'named after the robot under ~/.ros/robot_twin/.', read_only=True),
        ParamSpec('recommission', bool, False,
                  'Ignore saved calibration and thresholds and commission again.',
                  read_only=True),
        ParamSpec('model_path', str, '',
                  'Fault classifier (ONNX, from robot-twin anomaly train); empty = the one '
                  'shipped in the package; rules = the rule-based baseline.', read_only=True),
        ParamSpec('min_confidence', float, 0.5,
                  'A classifier verdict below this confidence is reported as fault type '
                  'unknown.', min=0.0, max=1.0, read_only=True),
        ParamSpec('publish_rate_hz', float, 10.0,
                  'Rate of /twin/anomaly, /twin/anomaly_score and /twin/markers (Hz); an alarm '
                  'raised or cleared is published at once, whatever the rate.',
                  min=0.1, max=1000.0, read_only=True),
        ParamSpec('persistence_s', float, 0.02,
                  'A score must stay at or above its threshold this long (s, stamp time) '
                  'before an alarm.', min=0.0, max=60.0, read_only=True),
        ParamSpec('payload_settle_s', float, 1.0,
                  'After a payload is set on /twin/payload, the momentum observer and wrench '
                  'checks pause this long (s, stamp time) while the load moves onto or off '
                  'the arm.', min=0.0, max=60.0, read_only=True),
        ParamSpec('clear_s', float, 0.5,
                  'A raised alarm clears after this long below half its threshold (s).',
                  min=0.0, max=3600.0, read_only=True),
        ParamSpec('threshold_quantile', float, 0.999,
                  'Thresholds are threshold_margin times this quantile of each statistic over '
                  'commissioning.', min=0.5, max=0.999999, read_only=True),
        ParamSpec('threshold_margin', float, 2.5,
                  'Thresholds are this factor times threshold_quantile of each statistic '
                  'over commissioning.', min=1.0, max=100.0, read_only=True),
        ParamSpec('observer_gain', float, 50.0,
                  'Bandwidth of the momentum observer that estimates external joint torques '
                  '(rad/s).', min=1.0, max=1000.0, read_only=True),
        ParamSpec('rul.enabled', bool, True,
                  'Estimate joint health, RUL and maintenance advice (/twin/rul).',
                  read_only=True),
        ParamSpec('rul.publish_rate_hz', float, 1.0,
                  'Rate of /twin/rul and of RulMonitor.report() (Hz).',
                  min=0.01, max=10.0, read_only=True),
        ParamSpec('rul.log_path', str, '',
                  'Health history file (JSON lines, append-only, crash-safe); empty = a file '
                  'named after the robot under ~/.ros/robot_twin/.',
                  read_only=True),
        ParamSpec('rul.sample_period_s', float, 0.005,
                  'Keep one robot sample per this much stamp time, s.',
                  min=0.0, max=0.1, read_only=True),
        ParamSpec('rul.block_s', float, 1.0,
                  'Block of samples for the torque-margin quantile, s.',
                  min=0.1, max=10.0, read_only=True),
        ParamSpec('rul.buffer_s', float, 5.0,
                  'Samples held between reports; a full buffer is processed in update(), s.',
                  min=1.0, max=60.0, read_only=True),
        ParamSpec('rul.max_gap_s', float, 0.1,
                  'A longer interval between kept samples is not operating time, s.',
                  min=0.001, max=10.0, read_only=True),
        ParamSpec('rul.moving_speed_rad_s', float, 0.02,
                  'A joint moves when |qd| exceeds this, rad/s.',
                  min=0.0, max=1.0, read_only=True),
        ParamSpec('rul.health_interval_s', float, 300.0,
                  'Seconds of robot motion per health epoch.',
                  min=1.0, max=86400.0, read_only=True),
        ParamSpec('rul.baseline_duration_s', float, 1800.0,
                  'Seconds of motion the commissioned health baseline is learned from.',
                  min=1.0, max=1000000.0, read_only=True),
        ParamSpec('rul.min_history_s', float, 3600.0,
                  'Seconds of motion after the baseline before an RUL is given.',
                  min=0.0, max=10000000.0, read_only=True),
        ParamSpec('rul.reference_speed_rad_s', float, 0.2,
                  'Speed at which friction is compared, rad/s.',
                  min=0.01, max=10.0, read_only=True),
        ParamSpec('rul.min_samples', int, 200,
                  'Moving samples a joint needs in an epoch.',
                  min=10, max=10000000, read_only=True),
        ParamSpec('rul.min_sign_fraction', float, 0.1,
                  'Share of moving samples needed in each direction.',
                  min=0.0, max=0.5, read_only=True),
        ParamSpec('rul.service_friction_nm', str, '',
                  'Friction (N·m at the reference speed) at which a joint needs service, '
                  '"joint3=2.5, joint5=3.0"; joints not named use friction_failure_factor.',
                  read_only=True),
        ParamSpec('rul.friction_failure_factor', float, 2.0,
                  'Service friction as a multiple of the commissioned friction.',
                  min=1.01, max=100.0, read_only=True),
        ParamSpec('rul.residual_failure_factor', float, 4.0,
                  'Failure RMS of the unexplained effort residual, multiple of the commissioned '
                  'RMS.',
                  min=1.01, max=100.0, read_only=True),
        ParamSpec('rul.min_residual_rms_nm', float, 0.05,
                  'Floor of the commissioned residual RMS, N·m.',
                  min=0.0, max=100.0, read_only=True),
        ParamSpec('rul.min_torque_margin', float, 0.1,
                  'Failure when 1 - q99(|effort|/limit) falls to this.',
                  min=0.0, max=0.99, read_only=True),
        ParamSpec('rul.trend_window_hours', float, 2000.0,
                  'Operating hours of history the trend is fitted on.',
                  min=0.0, max=1000000.0, read_only=True),
        ParamSpec('rul.max_trend_points', int, 400,
                  'Longer histories are averaged into this many bins for the trend fit.',
                  min=20, max=100000, read_only=True),
        ParamSpec('rul.estimates_per_report', int, 2,
                  'Joints whose RUL one report() re-estimates after an epoch (bounds the cost of'
                  ' a report).',
                  min=1, max=1000, read_only=True),
        ParamSpec('rul.interval', float, 0.9,
                  'Probability of the RUL interval.',
                  min=0.5, max=0.999, read_only=True),
        ParamSpec('rul.min_epochs', int, 6,
                  'Epochs after the baseline needed for an RUL.',
                  min=4, max=1000000, read_only=True),
        ParamSpec('rul.min_degradation', float, 0.05,
                  'Degradation (0 commissioned, 1 failed) below which no RUL is given.',
                  min=0.0, max=0.99, read_only=True),
        ParamSpec('rul.min_probability', float, 0.95,
                  'Posterior probability of wear needed for an RUL.',
                  min=0.5, max=0.9999, read_only=True),
        ParamSpec('rul.diffusion_per_sqrt_hour', float, 0.0,
                  'Brownian part of the degradation, per sqrt(operating hour).',
                  min=0.0, max=10.0, read_only=True),
        ParamSpec('rul.warn_horizon_hours', float, 500.0,
                  'WARN when the RUL lower bound is within this many operating hours.',
                  min=0.0, max=1000000.0, read_only=True),
        ParamSpec('rul.error_horizon_hours', float, 48.0,
                  'ERROR when the RUL lower bound is within this many operating hours.',
                  min=0.0, max=1000000.0, read_only=True),
        ParamSpec('rul.replace_below_health', float, 0.1,
                  'Worn friction at or below this health index: replace instead of lubricate.',
                  min=0.0, max=1.0, read_only=True),
        ParamSpec('rul.warn_below_health', float, 0.5,
                  'A joint below this health index is at least WARN (with or without an RUL '
                  'number); not below rul.replace_below_health.',
                  min=0.0, max=1.0, read_only=True),
        ParamSpec('rul.rebaseline_epochs', int, 3,
                  'Health epochs after a model change (payload, calibration) or a declared '
                  'maintenance from which the new baseline is learned.',
                  min=1, max=1000, read_only=True),
        ParamSpec('rul.stale_after_s', float, 10.0,
                  'Wall-clock seconds without robot samples after which /twin/rul says "no '
                  'robot data since".',
                  min=0.1, max=10000000.0, read_only=True),
        ParamSpec('rul.operating_hours_per_day', float, 0.0,
                  'Operating hours per calendar day for due dates; 0: measured (24 until a day '
                  'is seen).',
                  min=0.0, max=24.0, read_only=True),
        ParamSpec('rul.next_maintenance_hours', float, 0.0,
                  'Operating-hour counter at the next planned maintenance window; 0: none.',
                  min=0.0, max=10000000.0, read_only=True),
        ParamSpec('rul.next_maintenance_date', str, '',
                  'Date of the next planned maintenance window (ISO 8601); empty: none.',
                  read_only=True),
        ParamSpec('rul.wear_speed_exponent', float, 1.0,
                  'Wear rate ~ speed^p for derating (1: Archard).',
                  min=0.1, max=5.0, read_only=True),
        ParamSpec('rul.min_speed_scale', float, 0.3,
                  'Lowest speed scale a derating may ask for.',
                  min=0.05, max=1.0, read_only=True),
        ParamSpec('rul.time_scale', float, 1.0,
                  'Operating time multiplier: 1 on a robot; larger only to compress time in '
                  'demos and tests.',
                  min=1.0, max=10000000.0, read_only=True),
    ),
    'twin_plant': (
        _URDF, _JOINT_STATES_TOPIC, _WRENCH_TOPIC, _FT_LINK,
        ParamSpec('dynamics_params_file', str, '',
                  'Simulate the identified robot (params.yaml from robot-twin sysid); empty = '
                  'URDF inertias, no friction.', read_only=True),
        ParamSpec('publish_rate_hz', float, 1000.0,
                  'Rate of /joint_states, the wrench and /clock (Hz): the plant publishes every '
                  'k-th step, k = step_rate_hz / publish_rate_hz (a whole number).',
                  min=1.0, max=10000.0, read_only=True),
        ParamSpec('step_rate_hz', float, 0.0,
                  'Physics and drive control step rate (Hz), a whole multiple of '
                  'publish_rate_hz (real robots: 1000 or more); 0 = publish_rate_hz.',
                  min=0.0, max=10000.0, read_only=True),
        ParamSpec('scenario', str, '',
                  'Fault scenario, a YAML file or a name in config/faults (e.g. demo); empty = '
                  'no faults.', read_only=True),
        ParamSpec('seed', int, 0, 'Random seed of noise and faults (same seed, same run).',
                  min=0, max=2 ** 31 - 1, read_only=True),
        ParamSpec('payload_mass_kg', float, 0.0,
                  'Payload carried at the tool (kg).', min=0.0, max=1000.0, read_only=True),
        ParamSpec('randomization', str, '',
                  'Simulate a domain-randomized robot instead of the nominal one: a '
                  'randomization YAML or a name in config/randomization (e.g. default); the '
                  'variant is randomization_index of seed, the same as that sample of a '
                  'what-if run. Empty = the nominal (or identified) robot.', read_only=True),
        ParamSpec('randomization_index', int, 0,
                  'Which variant of the randomization to simulate.', min=0,
                  max=2 ** 31 - 1, read_only=True),
        ParamSpec('step_mode', str, 'realtime',
                  'realtime: step at step_rate_hz on the wall clock (deadline misses and '
                  'jitter in /twin/plant_status); lockstep: advance only when the controller '
                  'command for the step has arrived, stamps and /clock in simulated time from 0 '
                  '(the same commands give bit-identical outputs).',
                  choices=('realtime', 'lockstep'), read_only=True),
        ParamSpec('lockstep_steps_per_command', int, 1,
                  'lockstep: sample periods of 1/publish_rate_hz the plant advances per '
                  'command.',
                  min=1, max=100000, read_only=True),
        ParamSpec('realtime_priority', int, 0,
                  'realtime: SCHED_FIFO priority (1-99) of the stepping and executor threads, '
                  'as a HIL bench runs its plant (needs root or CAP_SYS_NICE; without them a '
                  'warning and normal scheduling); 0 = normal scheduling.', min=0, max=99,
                  read_only=True),
        ParamSpec('lockstep_timeout_s', float, 1.0,
                  'lockstep: a sample left this long without a command is published again '
                  '(the controller may have missed it); counted as resends in '
                  '/twin/plant_status.',
                  min=0.01, max=86400.0, read_only=True),
    ),
    'demo_controller': (
        _URDF,
        ParamSpec('rate_hz', float, 100.0, 'Command rate (Hz).', min=1.0, max=1000.0,
                  read_only=True),
        ParamSpec('amplitude_fraction', float, 0.3,
                  'Motion amplitude as a fraction of the position range of each joint.',
                  min=0.0, max=1.0, read_only=True),
        ParamSpec('period_s', float, 6.0, 'Period of the demo motion (s).',
                  min=0.1, max=600.0, read_only=True),
        ParamSpec('interface', str, 'joint_command',
                  'How commands are sent: trajectory, forward_position or joint_command.',
                  choices=INTERFACES, read_only=True),
    ),
    'twin_hub': _HUB,
}
"""Parameters of each executable, keyed by executable (a node named ``plant`` running
twin_plant uses the twin_plant list)."""

_BY_NAME = {exe: {p.name: p for p in specs} for exe, specs in PARAMETERS.items()}
_ROS_BY_NAME = {p.name: p for p in ROS_PARAMETERS}
_NODE_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
_REMAP = re.compile(r'^[^\s:=]+:=[^\s:=]+$')


def parameter_spec(executable, name):
    """
    Return the :class:`ParamSpec` of ``name`` on ``executable``, or None if it has none.

    ROS's own parameters (``use_sim_time``, ...) are found for every executable.
    """
    if name in _ROS_BY_NAME:
        return _ROS_BY_NAME[name]
    return _BY_NAME.get(executable, {}).get(name)


def defaults(executable):
    """Return ``{name: default}`` of every parameter ``executable`` declares."""
    _known_executable(executable)
    return {p.name: p.default for p in PARAMETERS[executable]}


def _known_executable(executable):
    if executable not in PARAMETERS:
        raise ConfigError('', [f'unknown executable {executable!r}; robot_twin has '
                               f'{", ".join(EXECUTABLES)}'])


def validate_value(node, name, value):
    """
    Check one parameter value against the schema.

    Parameters
    ----------
    node : str
        Executable whose schema applies (``twin_bridge``, ``twin_sim``, ``twin_anomaly``,
        ``demo_controller``).
    name : str
        Parameter name, dotted for nested ones (``corrective_actions.enabled``).
    value : bool, int, float or str
        The value, as YAML or ``rclpy`` gives it.

    Returns
    -------
    str or None
        What is wrong, naming the parameter and what to do; None when the value is fine.

    """
    if node not in PARAMETERS:
        return f'unknown node executable {node!r}; robot_twin has {", ".join(EXECUTABLES)}'
    spec = parameter_spec(node, name)
    if spec is None:
        if name.startswith('qos_overrides.'):
            return None
        close = difflib.get_close_matches(name, list(_BY_NAME[node]) + list(_ROS_BY_NAME), 1)
        hint = f'; did you mean {close[0]!r}?' if close else (
            f'; it has {", ".join(sorted(_BY_NAME[node]))}')
        return f'{node} has no parameter {name!r}{hint}'
    return _check(spec, value)


def parse_bool(text, what):
    """Read a launch-style boolean (``true``/``false``/``1``/``0``, any case) or raise."""
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ('true', '1'):
        return True
    if value in ('false', '0'):
        return False
    raise ConfigError('', [f'{what} = {text!r}: expected true or false'])


# --- config files ------------------------------------------------------------------------------

def load_rcl_yaml(stream):
    """
    Parse a ROS parameters file (text or open file) with rcl's reading of numbers.

    ``1e-3``, ``1.0e9`` and ``.5e3`` are floats, as for rcl (PyYAML's YAML 1.1 would make them
    strings): a file that ``ros2 launch`` accepts reads the same here
    (:mod:`twin_sim.yaml_numbers`).
    """
    return load_yaml(stream)


@dataclass(frozen=True)
class Config:
    """
    The bring-up's view of a config file: the ``robot_twin`` section, checked.

    Attributes
    ----------
    path : str
        Absolute path of the file (every node reads it with ``--params-file``).
    nodes : tuple of str
        Node names to start, in order.
    executables : dict
        ``{node name: executable}`` for every started node.
    one_process : tuple of str
        The nodes that run together in one process (the others get one each).
    remappings : dict
        ``{node name: ((from, to), ...)}``.
    common : dict
        The ``/**`` section's parameters (flattened): what applies to every node, e.g. the
        URDF that rviz shows.

    """

    path: str
    nodes: tuple
    executables: dict
    one_process: tuple
    remappings: dict
    common: dict


def normalize_namespace(namespace):
    """Return ``namespace`` absolute and without a trailing slash ('' for the root), or raise."""
    text = (namespace or '').strip()
    tokens = [t for t in text.strip('/').split('/') if t] if text not in ('', '/') else []
    for token in tokens:
        if not _NODE_NAME.match(token):
            raise ConfigError('', [f'namespace {namespace!r}: {token!r} is not a valid name '
                                   '(letters, digits and _, not starting with a digit)'])
    return '/' + '/'.join(tokens) if tokens else ''


def _flatten(mapping, prefix=''):
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f'{prefix}{key}.'))
        else:
            out[f'{prefix}{key}'] = value
    return out


def _sections(data, prefix=''):
    """Yield ``(key, parameters)`` of every ``ros__parameters`` map (nested maps = namespaces)."""
    for key, value in data.items():
        full = f'{prefix}/{str(key).strip("/")}' if str(key).strip('/') else prefix or '/'
        if not isinstance(value, dict):
            raise ConfigError('', [f'{full}: expected a map with ros__parameters, got '
                                   f'{_type_name(value)}'])
        if 'ros__parameters' in value:
            params = value['ros__parameters']
            if not isinstance(params, dict):
                raise ConfigError('', [f'{full}: ros__parameters must be a map of parameters'])
            yield full, _flatten(params)
        else:
            yield from _sections(value, full)


def _read_graph(params, errors):
    """Read the ``robot_twin`` section: (nodes, executables, one_process, remappings)."""
    where = GRAPH_KEY
    nodes = params.pop('nodes', None)
    if not isinstance(nodes, list) or not nodes or not all(isinstance(n, str) for n in nodes):
        errors.append(f'{where}: nodes must be a non-empty list of node names to start, '
                      f'e.g. [twin_bridge, twin_sim, twin_anomaly]')
        nodes = []
    for name in nodes:
        if not _NODE_NAME.match(name):
            errors.append(f'{where}: nodes: {name!r} is not a valid node name')
    duplicates = sorted({n for n in nodes if nodes.count(n) > 1})
    if duplicates:
        errors.append(f'{where}: nodes: {duplicates} listed more than once')
    one_process = params.pop('one_process', None)
    executables, remappings = {}, {}
    for key, value in params.items():
        group, _, name = key.partition('.')
        if group not in ('executables', 'remappings') or not name:
            errors.append(f'{where}: unknown entry {key!r}; it takes nodes, one_process, '
                          'executables.<node> and remappings.<node>')
        elif name not in nodes:
            errors.append(f'{where}: {key} names node {name!r}, which nodes does not list')
        elif group == 'executables':
            if value in EXECUTABLES:
                executables[name] = value
            else:
                errors.append(f'{where}: {key} = {value!r} is not one of '
                              f'{", ".join(EXECUTABLES)}')
        else:
            rules = value if isinstance(value, list) else [value]
            if all(isinstance(r, str) and _REMAP.match(r) for r in rules):
                remappings[name] = tuple(tuple(r.split(':=')) for r in rules)
            else:
                errors.append(f'{where}: {key}: {rules} is not a list of "from:=to" remappings')
    for name in nodes:
        if name not in executables:
            if name in EXECUTABLES:
                executables[name] = name
            else:
                errors.append(f'{where}: node {name!r} needs executables.{name}: one of '
                              f'{", ".join(EXECUTABLES)}')
    if one_process is None:
        one_process = [n for n in nodes if executables.get(n) in TWIN_EXECUTABLES]
    elif not isinstance(one_process, list) or not all(n in nodes for n in one_process):
        errors.append(f'{where}: one_process must list nodes of nodes, got {one_process!r}')
        one_process = []
    for name in one_process:
        executable = executables.get(name)
        if executable is not None and executable not in CONTAINER_EXECUTABLES:
            errors.append(f'{where}: one_process: {name!r} is a {executable}, which always runs '
                          f'in a process of its own: leave it out of one_process (which takes '
                          f'{", ".join(CONTAINER_EXECUTABLES)})')
    return tuple(nodes), executables, tuple(n for n in nodes if n in one_process), remappings


def _check_names(key, parameters, executables):
    """List what a section sets that no node it can apply to declares (typos ROS ignores)."""
    target = key.rsplit('/', 1)[-1]
    if target in ('*', '**'):
        exes = sorted(set(executables.values())) or list(EXECUTABLES)
    elif target in executables:
        exes = [executables[target]]
    elif target in EXECUTABLES:
        exes = [target]              # a section for a node this file does not start
    else:
        close = difflib.get_close_matches(target, list(executables) + list(EXECUTABLES), 1)
        hint = f'; did you mean {close[0]!r}?' if close else ''
        return [f'{key}: unknown node {target!r}: this file starts '
                f'{", ".join(executables)}{hint}']
    errors = []
    for name, value in parameters.items():
        having = [exe for exe in exes if parameter_spec(exe, name)]
        if name.startswith('qos_overrides.'):
            continue
        if not having:
            errors.append(f'{key}: {validate_value(exes[0], name, value)}' if len(exes) == 1
                          else f'{key}: no node of this file has parameter {name!r}')
            continue
        errors += [f'{key}: {p}' for p in sorted({validate_value(e, name, value)
                                                 for e in having} - {None})]
    return errors


def parse_config(data, source=''):
    """
    Build a :class:`Config` from the parsed YAML ``data`` of a params file, or raise.

    Raises
    ------
    ConfigError
        Listing every problem: not a params file, a missing or malformed ``robot_twin``
        section, a parameter no node has, or a value no node accepts.

    """
    if not isinstance(data, dict) or not data:
        raise ConfigError(source, ['expected a ROS 2 params file: a map of node names to '
                                   '{ros__parameters: {...}}, with a robot_twin section'])
    try:
        sections = dict(_sections(data))
    except ConfigError as exc:
        raise ConfigError(source, exc.errors) from None
    graph = sections.pop('/' + GRAPH_KEY, None)
    if graph is None:
        raise ConfigError(source, [
            f'no {GRAPH_KEY} section: add "{GRAPH_KEY}: {{ros__parameters: {{nodes: [...]}}}}" '
            'listing the nodes to start'])
    errors = []
    nodes, executables, one_process, remappings = _read_graph(dict(graph), errors)
    if not errors:
        for key, parameters in sections.items():
            errors += _check_names(key, parameters, executables)
    if errors:
        raise ConfigError(source, errors)
    return Config(os.path.abspath(source) if source else '', nodes, executables, one_process,
                  remappings, dict(sections.get('/**', {})))


def load_config(path):
    """
    Load and check a config file; return a :class:`Config`.

    Raises
    ------
    ConfigError
        The file is missing, not YAML, or not valid (every problem is listed, each naming the
        section and the parameter).

    """
    try:
        with open(path, encoding='utf-8') as handle:
            data = load_rcl_yaml(handle)
    except FileNotFoundError:
        raise ConfigError(path, ['file not found; give a ROS 2 params file, e.g. '
                                 'config/twin.yaml']) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(path, [f'cannot read it: {exc}']) from None
    return parse_config(data, path)
