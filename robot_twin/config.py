"""
The one place robot_twin's node parameters are defined, and the loader of its config files.

A config file (``config/twin.yaml``, ``hil.yaml``, ``demo.yaml`` or your own) is a standard ROS 2
params file: every node reads its parameters from it with ``--params-file``. One extra section,
keyed ``robot_twin``, tells the bring-up (``ros2 launch`` and ``robot-twin up``) which nodes to
start. rcl treats every top-level key as a node name and rejects a key without
``ros__parameters``, so that section is written as the parameters of a node named ``robot_twin``,
which never runs::

    robot_twin:
      ros__parameters:
        nodes: [plant, twin_bridge]      # node names, in start order
        executables:                     # only where the name is not the executable
          plant: twin_sim
        remappings:                      # optional, per node: 'from:=to' strings
          twin_bridge: ['/joint_states:=/arm/joint_states']
    /**:                                 # every node
      ros__parameters:
        use_sim_time: false
    /**/twin_bridge:                     # node twin_bridge in any namespace
      ros__parameters:
        stale_timeout_s: 0.1

Node sections may be keyed ``name``, ``/name``, ``/**/name`` or ``/ns/name`` (rcl's wildcards
``*`` and ``**`` are understood); the shipped files use ``/**/name`` so that they work under any
namespace. ``PARAMETERS`` holds every parameter of every robot_twin executable (name, type,
default, description, range or choices); the nodes declare their parameters from it
(:func:`declare_node_parameters`), and :func:`load_config` checks files against it.
"""
from dataclasses import dataclass
import difflib
import math
import os
import re

import yaml

GRAPH_KEY = 'robot_twin'
"""Top-level key of the section that lists the nodes to start."""

EXECUTABLES = ('twin_bridge', 'twin_sim', 'twin_plant', 'twin_anomaly', 'demo_controller')
"""robot_twin's node executables (console scripts), each with a schema in ``PARAMETERS``."""

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
        ``bool``, ``int``, ``float`` or ``str`` (ROS BOOL, INTEGER, DOUBLE, STRING). ROS does
        not convert: a float parameter given ``1`` in YAML is rejected, write ``1.0``.
    default : bool, int, float or str
        Value when no file or override sets it.
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
        if self.type not in (bool, int, float, str):
            raise TypeError(f'{self.name}: type must be bool, int, float or str')
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
    'sensor_msgs/JointState topic of the robot (a plant-mode twin_sim publishes it).',
    read_only=True)
_WRENCH_TOPIC = ParamSpec(
    'wrench_topic', str, '/ft_sensor/wrench',
    'geometry_msgs/WrenchStamped topic of the force-torque sensor (a plant publishes it); '
    'empty = the robot has no force-torque sensor.', read_only=True)
_UNKNOWN_JOINTS = ParamSpec(
    'unknown_joints', str, 'reject',
    'A JointState that names a joint the URDF does not have: reject the message (and count '
    'it in /twin/status) or ignore that joint.', choices=('reject', 'ignore'), read_only=True)
_MAX_FUTURE = ParamSpec(
    'max_future_s', float, 0.1,
    'A message stamped more than this many seconds in the future is invalid (clock skew).',
    min=0.0, max=60.0, read_only=True)

PARAMETERS = {
    'twin_bridge': (
        _URDF, _JOINT_STATES_TOPIC, _WRENCH_TOPIC, _UNKNOWN_JOINTS, _MAX_FUTURE,
        ParamSpec('trajectory_topic', str, '/joint_trajectory_controller/joint_trajectory',
                  'trajectory_msgs/JointTrajectory topic of the robot controller, observed '
                  '(and commanded when corrective_actions.interface is trajectory).',
                  read_only=True),
        ParamSpec('stale_timeout_s', float, 0.1,
                  'A stream whose newest message is older than this (s) is STALE; a stale '
                  'state blocks corrective commands.', min=0.001, max=10.0, read_only=True),
        ParamSpec('status_rate_hz', float, 10.0, 'Rate of /twin/status (Hz).',
                  min=0.1, max=1000.0, read_only=True),
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
                  'Commanded positions stay this far (rad, or m for prismatic joints) inside '
                  'the URDF position limits.', min=0.0, max=1.0, read_only=True),
        ParamSpec('corrective_actions.velocity_scale', float, 0.5,
                  'Commands use at most this fraction of the URDF velocity limits.',
                  min=0.01, max=1.0, read_only=True),
        ParamSpec('audit_log_path', str, '',
                  'File the governor appends one line per corrective command to (what, why, '
                  'which anomaly); empty = the ROS log only.', read_only=True),
    ),
    'twin_sim': (
        _URDF, _JOINT_STATES_TOPIC, _WRENCH_TOPIC, _UNKNOWN_JOINTS, _MAX_FUTURE,
        ParamSpec('dynamics_params_file', str, '',
                  'Identified dynamics (params.yaml from robot-twin sysid); empty = URDF '
                  'inertias, no friction.', read_only=True),
        ParamSpec('payload_mass_kg', float, 0.0,
                  'Known payload at the tool (kg).', min=0.0, max=1000.0, read_only=True),
    ),
    'twin_plant': (
        _URDF, _JOINT_STATES_TOPIC, _WRENCH_TOPIC,
        ParamSpec('dynamics_params_file', str, '',
                  'Simulate the identified robot (params.yaml from robot-twin sysid); empty = '
                  'URDF inertias, no friction.', read_only=True),
        ParamSpec('publish_rate_hz', float, 1000.0,
                  'Simulation step and publish rate (Hz).', min=1.0, max=10000.0,
                  read_only=True),
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
    ),
    'twin_anomaly': (
        _URDF,
        ParamSpec('commissioning_duration_s', float, 30.0,
                  'Seconds of nominal motion to learn thresholds from before alarms are '
                  'raised.', min=1.0, max=86400.0, read_only=True),
        ParamSpec('thresholds_file', str, '',
                  'Where commissioned thresholds are saved and loaded from; empty = a file '
                  'named after the robot under ~/.ros/robot_twin/.', read_only=True),
        ParamSpec('recommission', bool, False,
                  'Ignore saved thresholds and commission again.', read_only=True),
        ParamSpec('model_path', str, '',
                  'ONNX fault classifier from robot-twin anomaly train; empty = statistical '
                  'detector only.', read_only=True),
        ParamSpec('publish_rate_hz', float, 50.0,
                  'Rate of /twin/anomaly, /twin/anomaly_score and /twin/markers (Hz).',
                  min=0.1, max=1000.0, read_only=True),
        ParamSpec('persistence_s', float, 0.2,
                  'A score must stay above its threshold this long (s) before an alarm.',
                  min=0.0, max=60.0, read_only=True),
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
}
"""Parameters of each executable, keyed by executable (a node named ``plant`` running twin_sim
uses the twin_sim list)."""

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

class _RclLoader(yaml.SafeLoader):
    """YAML as rcl reads it: ``1e-3`` is a float (YAML 1.1 would make it a string)."""


_RclLoader.add_implicit_resolver(
    'tag:yaml.org,2002:float', re.compile(r'^[-+]?[0-9]+[eE][-+]?[0-9]+$'), list('-+0123456789'))


@dataclass(frozen=True)
class Section:
    """
    The ``ros__parameters`` of one node key of a params file.

    Attributes
    ----------
    key : str
        The key as rcl sees it, absolute (``/**/twin_bridge``, ``/twin_bridge``, ``/**``).
    parameters : dict
        ``{dotted name: value}``, flattened.

    """

    key: str
    parameters: dict

    def matches(self, fqn):
        """
        Whether this section applies to the node with fully qualified name ``fqn``.

        Same rule as rclpy: ``/*`` stands for one name token, ``/**`` for any number.
        """
        pattern = re.escape(self.key).replace(r'/\*\*', r'(/\w+)*').replace(r'/\*', r'(/\w+)')
        return re.fullmatch(pattern, fqn) is not None

    @property
    def node_name(self):
        """Last token of the key: a node name, or ``*``/``**`` for a wildcard section."""
        return self.key.rsplit('/', 1)[-1]


@dataclass(frozen=True)
class Config:
    """
    A loaded, validated config file.

    Attributes
    ----------
    path : str
        Absolute path of the file.
    nodes : tuple of str
        Node names to start, in order.
    executables : dict
        ``{node name: executable}`` for every started node.
    remappings : dict
        ``{node name: ((from, to), ...)}``.
    sections : tuple of Section
        Node parameter sections in file order (the graph section excluded).

    """

    path: str
    nodes: tuple
    executables: dict
    remappings: dict
    sections: tuple

    def file_parameters(self, name, namespace=''):
        """
        Return the parameters this file gives node ``name`` in ``namespace``.

        Sections apply in file order, later ones winning, as rclpy applies them.
        """
        fqn = _join_ns(namespace, name)
        values = {}
        for section in self.sections:
            if section.matches(fqn):
                values.update(section.parameters)
        return values

    def parameters(self, name, namespace=''):
        """
        Return the values node ``name`` starts with: its schema defaults, then this file.

        Only the parameters the node declares (and ``use_sim_time``) are returned; ROS ignores
        the rest of what a wildcard section sets.
        """
        values = {'use_sim_time': False}
        values.update(defaults(self.executables[name]))
        values.update((k, v) for k, v in self.file_parameters(name, namespace).items()
                      if k in values)
        return values


def _join_ns(namespace, name):
    namespace = namespace.strip('/')
    return f'/{namespace}/{name}' if namespace else f'/{name}'


def normalize_namespace(namespace):
    """Return ``namespace`` absolute and without a trailing slash ('' for the root), or raise."""
    text = (namespace or '').strip()
    tokens = [t for t in text.strip('/').split('/') if t] if text not in ('', '/') else []
    for token in tokens:
        if not _NODE_NAME.match(token):
            raise ConfigError('', [f'namespace {namespace!r}: {token!r} is not a valid name '
                                   '(letters, digits and _, not starting with a digit)'])
    return '/' + '/'.join(tokens) if tokens else ''


def _flatten(mapping, prefix, out, errors, where):
    for key, value in mapping.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            if not value:
                errors.append(f'{where}: {name} is an empty map')
            _flatten(value, name + '.', out, errors, where)
            continue
        if isinstance(value, list):
            kinds = {type(v) for v in value}
            if not value:
                errors.append(f'{where}: {name} is an empty list, which ROS cannot type; '
                              'leave the parameter out instead')
            elif len(kinds) > 1 or not kinds <= {bool, int, float, str}:
                errors.append(f'{where}: {name} = {value!r}: a list must hold bools, '
                              'integers, floats or strings, all of one type')
        elif value is None:
            errors.append(f'{where}: {name} has no value; write "" for an empty string')
        elif not isinstance(value, (bool, int, float, str)):
            errors.append(f'{where}: {name} = {value!r} is not a ROS parameter value')
        out[name] = value


def _walk_sections(mapping, prefix, sections, errors, source):
    """Collect ``ros__parameters`` sections; maps without it are namespaces, as in rcl."""
    for key, value in mapping.items():
        key_text = str(key)
        full = prefix + '/' + key_text.strip('/') if key_text not in ('/', '') else prefix
        if not isinstance(value, dict):
            errors.append(f'{full or key_text}: expected a map with ros__parameters, '
                          f'got {_type_name(value)}')
            continue
        if full == '/' + GRAPH_KEY and 'ros__parameters' not in value:
            errors.append(f'{GRAPH_KEY}: put its entries under ros__parameters (rcl rejects a '
                          'top-level key without it): robot_twin: {ros__parameters: {nodes: '
                          '[...]}}')
            continue
        if 'ros__parameters' in value:
            extra = [k for k in value if k != 'ros__parameters']
            if extra:
                errors.append(f'{full}: only ros__parameters may sit beside a node name, '
                              f'found {extra}')
            params = value['ros__parameters']
            if not isinstance(params, dict):
                errors.append(f'{full}: ros__parameters must be a map of parameters')
                continue
            flat = {}
            _flatten(params, '', flat, errors, full)
            sections.append(Section(full, flat))
        else:
            _walk_sections(value, full, sections, errors, source)


def _read_graph(section, errors):
    """Read the ``robot_twin`` section into (nodes, executables, remappings)."""
    where = GRAPH_KEY
    params = dict(section.parameters)
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
    executables = {}
    remappings = {}
    for key, value in params.items():
        group, _, name = key.partition('.')
        if group not in ('executables', 'remappings') or not name:
            errors.append(f'{where}: unknown entry {key!r}; it takes nodes, '
                          'executables.<node> and remappings.<node>')
            continue
        if name not in nodes:
            errors.append(f'{where}: {key} names node {name!r}, which nodes does not list')
            continue
        if group == 'executables':
            if value not in EXECUTABLES:
                errors.append(f'{where}: {key} = {value!r} is not one of {", ".join(EXECUTABLES)}')
            else:
                executables[name] = value
        else:
            rules = value if isinstance(value, list) else [value]
            bad = [r for r in rules if not isinstance(r, str) or not _REMAP.match(r)]
            if bad:
                errors.append(f'{where}: {key}: {bad} is not a remapping; write "from:=to"')
            else:
                remappings[name] = tuple(tuple(r.split(':=')) for r in rules)
    for name in nodes:
        if name not in executables:
            if name in EXECUTABLES:
                executables[name] = name
            else:
                errors.append(f'{where}: node {name!r} needs executables.{name}: one of '
                              f'{", ".join(EXECUTABLES)}')
    return tuple(nodes), executables, remappings


def parse_config(data, source=''):
    """
    Build a :class:`Config` from the parsed YAML ``data`` of a params file, or raise.

    Raises
    ------
    ConfigError
        Listing every problem: not a valid ROS params file, a missing or malformed
        ``robot_twin`` section, an unknown node, an unknown parameter or a bad value.

    """
    errors = []
    if not isinstance(data, dict) or not data:
        raise ConfigError(source, ['expected a ROS 2 params file: a map of node names to '
                                   '{ros__parameters: {...}}, with a robot_twin section'])
    sections = []
    _walk_sections(data, '', sections, errors, source)
    graph = [s for s in sections if s.key == '/' + GRAPH_KEY]
    sections = [s for s in sections if s.key != '/' + GRAPH_KEY]
    if not graph:
        raise ConfigError(source, errors + [
            f'no {GRAPH_KEY} section: add "{GRAPH_KEY}: {{ros__parameters: {{nodes: [...]}}}}" '
            'listing the nodes to start'])
    nodes, executables, remappings = _read_graph(graph[0], errors)
    config = Config(os.path.abspath(source) if source else '', nodes, executables,
                    remappings, tuple(sections))
    errors += _check_sections(config)
    if not errors:
        errors += _check_nodes(config)
    if errors:
        raise ConfigError(source, errors)
    return config


def _check_sections(config):
    """Every section names a started node, a known executable or all nodes; names are known."""
    errors = []
    started = set(config.executables.values())
    for section in config.sections:
        name = section.node_name
        if name in ('*', '**'):
            targets = sorted(started) or list(EXECUTABLES)
        elif name in config.executables:
            targets = [config.executables[name]]
        elif name in EXECUTABLES:
            targets = [name]  # parameters kept for a node this file does not start
        else:
            close = difflib.get_close_matches(name, list(config.nodes) + list(EXECUTABLES), 1)
            hint = f'; did you mean {close[0]!r}?' if close else ''
            errors.append(f'{section.key}: unknown node {name!r}: this file starts '
                          f'{", ".join(config.nodes)}{hint}')
            continue
        for pname, value in section.parameters.items():
            having = [exe for exe in targets if parameter_spec(exe, pname)]
            if not having and not pname.startswith('qos_overrides.'):
                if len(targets) == 1:
                    errors.append(f'{section.key}: {validate_value(targets[0], pname, value)}')
                else:
                    errors.append(f'{section.key}: no node of this file has parameter '
                                  f'{pname!r}')
                continue
            problems = {validate_value(exe, pname, value) for exe in having}
            errors += [f'{section.key}: {p}' for p in sorted(problems - {None})]
    return errors


def _check_nodes(config):
    """Check rules that span parameters of one node, with every section applied."""
    errors = []
    for name in config.nodes:
        values = config.parameters(name)
        if config.executables[name] == 'twin_plant' and values['use_sim_time']:
            errors.append(f'node {name}: a twin_plant publishes /clock, so its use_sim_time '
                          'must be false')
    return errors


def load_config(path):
    """
    Load and validate a config file; return a :class:`Config`.

    Raises
    ------
    ConfigError
        The file is missing, not YAML, or not valid (every problem is listed, each naming the
        node section and the parameter).

    """
    try:
        with open(path, encoding='utf-8') as handle:
            data = yaml.load(handle, Loader=_RclLoader)  # noqa: S506 - a SafeLoader subclass
    except FileNotFoundError:
        raise ConfigError(path, ['file not found; give a ROS 2 params file, e.g. '
                                 'config/twin.yaml']) from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(path, [f'cannot read it: {exc}']) from None
    return parse_config(data, path)


# --- declaring parameters on a node ------------------------------------------------------------

def ros_descriptor(spec):
    """Return the ``rcl_interfaces/ParameterDescriptor`` of ``spec`` (type, range, text)."""
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    ParameterType)
    kinds = {bool: ParameterType.PARAMETER_BOOL, int: ParameterType.PARAMETER_INTEGER,
             float: ParameterType.PARAMETER_DOUBLE, str: ParameterType.PARAMETER_STRING}
    descriptor = ParameterDescriptor(name=spec.name, type=kinds[spec.type],
                                     description=spec.description, read_only=spec.read_only)
    if spec.choices:
        descriptor.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    if spec.type is float and spec.min is not None and spec.max is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.min), to_value=float(spec.max), step=0.0)]
    elif spec.type is int and spec.min is not None and spec.max is not None:
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.min), to_value=int(spec.max), step=0)]
    return descriptor


def declare_node_parameters(node, executable):
    """
    Declare every parameter of ``executable`` on an rclpy ``node`` and validate them.

    Also installs a set-parameters callback that rejects a bad new value with the same message
    as the files get (choices included, which ROS descriptors cannot express).

    Parameters
    ----------
    node : rclpy.node.Node
        The node; its overrides (params files, ``-p``) apply.
    executable : str
        Key of ``PARAMETERS``.

    Returns
    -------
    dict
        ``{name: value}`` after overrides.

    Raises
    ------
    ConfigError
        Some start-up value is invalid; every problem is listed.

    """
    _known_executable(executable)
    values = {}
    for spec in PARAMETERS[executable]:
        values[spec.name] = node.declare_parameter(
            spec.name, spec.default, ros_descriptor(spec)).value
    errors = [validate_value(executable, n, v) for n, v in values.items()]
    errors = [e for e in errors if e]
    if errors:
        raise ConfigError(node.get_fully_qualified_name(), errors)

    def check(parameters):
        from rcl_interfaces.msg import SetParametersResult
        problems = [validate_value(executable, p.name, p.value) for p in parameters
                    if p.name in _BY_NAME[executable]]
        problems = [p for p in problems if p]
        return SetParametersResult(successful=not problems, reason='; '.join(problems))

    node.add_on_set_parameters_callback(check)
    return values
