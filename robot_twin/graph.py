"""
What a bring-up starts: the one description both ``ros2 launch`` and ``robot-twin up`` use.

:func:`describe_graph` reads a config file's ``robot_twin`` section (plain data, see
:mod:`robot_twin.config`) and the overrides a user gives (URDF, namespace, use_sim_time, one
process or several) and returns a :class:`Graph` of :class:`ProcessSpec`: by default the
twin's nodes share one ``twin_container`` process and every other node (a plant, the demo
controller) has one of its own. The launch files turn each process into a
``launch_ros.actions.Node``; :mod:`robot_twin.bringup` turns it into a command line with the
same ``--ros-args``. Which parameters a node gets is left to rcl: every process reads the
config file with ``--params-file`` (and an overrides file after it).

:func:`visualization_nodes` adds what only a full ROS 2 install has: robot_state_publisher for
the twin (TF prefix ``twin/``), a static transform that places the twin on the robot, and
rviz2.

A xacro file (``urdf:=robot.urdf.xacro``) is refused here, with the message the nodes give
(:mod:`twin_sim.urdf_model`): expand it first (``xacro robot.urdf.xacro > robot.urdf``).
"""
from dataclasses import dataclass, field
import os
from pathlib import Path
import sys
import xml.etree.ElementTree as ElementTree

from robot_twin import config as config_module
from robot_twin.config import ConfigError, load_config, normalize_namespace, parse_bool
from twin_sim.resources import data_path, share_dir, urdf_or_builtin

PACKAGE = 'robot_twin'
PROFILES = ('twin', 'hil', 'demo')
"""Shipped configs: ``config/<profile>.yaml``."""
CONTAINER = 'twin_container'
"""Executable of the one-process twin (:mod:`robot_twin.nodes.container`)."""
TWIN_FRAME_PREFIX = 'twin/'


def config_path(config=None):
    """
    Return the absolute path of ``config``: a profile name (twin, hil, demo) or a file.

    A relative ``config/...`` path that is not there relative to the working directory is the
    packaged file of that name (share/robot_twin/config/, as the docs write it), with a note on
    stderr that says which file is used; anything else that is not a file is an error.
    """
    if config in (None, ''):
        config = 'twin'
    if config in PROFILES and not os.path.isfile(config):
        return data_path('config', config + '.yaml')
    if os.path.isfile(config):
        return os.path.abspath(config)
    parts = Path(os.path.normpath(str(config))).parts
    in_config = not os.path.isabs(config) and len(parts) > 1 and parts[0] == 'config'
    packaged = share_dir().joinpath(*parts) if in_config else None
    if packaged is None or not packaged.is_file():
        where = ' (nor in the packaged config/)' if in_config else ''
        raise ConfigError(str(config), [
            f'config file not found{where}; give a params file or one of '
            f'{", ".join(PROFILES)}'])
    print(f'robot_twin: {config} is not in {os.getcwd()}; using the packaged {packaged}',
          file=sys.stderr, flush=True)
    return str(packaged)


@dataclass(frozen=True)
class NodeSpec:
    """
    One ROS node of the graph.

    Attributes
    ----------
    name : str
        Node name.
    executable : str
        Its kind (the console script that runs it alone).
    parameters : dict
        ``{name: value}`` overrides, applied after the config file (for robot_twin nodes they
        are written to a params file section ``/**/<name>``, read last).
    remappings : tuple of (str, str)
        ``(from, to)`` rules for this node only.

    """

    name: str
    executable: str
    parameters: dict = field(default_factory=dict)
    remappings: tuple = ()


@dataclass(frozen=True)
class ProcessSpec:
    """
    One process of the graph, in the terms of ``launch_ros.actions.Node``.

    Attributes
    ----------
    package, executable : str
        Where the executable is (``ros2 run <package> <executable>``).
    nodes : tuple of NodeSpec
        The nodes it runs: one, or several for ``twin_container``.
    namespace : str
        Absolute namespace of its nodes, or '' for the root.
    params_files : tuple of str
        ``--params-file`` arguments, in order.
    arguments : tuple of str
        Non-ROS arguments (rviz2's ``-d FILE``; the container's ``--node NAME:EXECUTABLE``).

    """

    package: str
    executable: str
    nodes: tuple
    namespace: str = ''
    params_files: tuple = ()
    arguments: tuple = ()

    @property
    def name(self):
        """Return a label: the node name, or ``twin`` for a container."""
        return self.nodes[0].name if self.executable != CONTAINER else 'twin'

    @property
    def node_name(self):
        """Return the ``__node`` remapping of a single-node process (None for a container)."""
        return self.nodes[0].name if self.executable != CONTAINER else None

    def remappings(self):
        """``(from, to)`` rules; in a container each is prefixed ``<node>:`` (rcl's syntax)."""
        if self.executable != CONTAINER:
            return tuple(self.nodes[0].remappings)
        return tuple((f'{n.name}:{src}', dst) for n in self.nodes for src, dst in n.remappings)


@dataclass(frozen=True)
class Graph:
    """
    The processes a config starts, with the user's overrides applied.

    Attributes
    ----------
    config : robot_twin.config.Config
        The loaded config file.
    namespace : str
        Namespace of every node ('' = root).
    processes : tuple of ProcessSpec
        In start order.
    urdf : str
        The robot's URDF file (the override, the config's ``/**`` urdf_path, or the built-in
        arm): what rviz shows.
    use_sim_time : bool
        Of the twin's nodes (the override, or the config's ``/**`` value).

    """

    config: object
    namespace: str
    processes: tuple
    urdf: str
    use_sim_time: bool

    @property
    def nodes(self):
        """Every NodeSpec, in start order."""
        return tuple(n for p in self.processes for n in p.nodes)

    def node(self, name):
        """Return the :class:`NodeSpec` named ``name``."""
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(f'no node {name!r} in {[s.name for s in self.nodes]}')


def describe_graph(config=None, *, urdf='', namespace='', use_sim_time=None, one_process=True):
    """
    Describe the processes and nodes a config starts.

    Parameters
    ----------
    config : str, optional
        A profile (``twin``, ``hil``, ``demo``) or the path of a config file; default ``twin``.
    urdf : str, optional
        URDF file for every node (sets ``urdf_path``); '' keeps the config's value.
    namespace : str, optional
        Namespace for every node; '' = root.
    use_sim_time : bool, optional
        Sets ``use_sim_time`` on every node except a twin_plant, which makes /clock; None keeps
        the config's values.
    one_process : bool
        Run the config's ``one_process`` nodes together (default); False = one process each.

    Returns
    -------
    Graph

    Raises
    ------
    ConfigError
        The config is missing or invalid, the URDF file does not exist, or it is a xacro file.

    """
    path = config_path(config)
    loaded = load_config(path)
    namespace = normalize_namespace(namespace)
    if urdf and not os.path.isfile(urdf):
        what = 'is a directory, not a URDF file' if os.path.isdir(urdf) else \
            'URDF file not found'
        raise ConfigError(urdf, [f'{what} (urdf / --urdf)'])
    nodes = []
    for name in loaded.nodes:
        executable = loaded.executables[name]
        overrides = {}
        if urdf:
            overrides['urdf_path'] = os.path.abspath(urdf)
        if use_sim_time is not None and executable != 'twin_plant':
            overrides['use_sim_time'] = bool(use_sim_time)
        nodes.append(NodeSpec(name, executable, overrides, loaded.remappings.get(name, ())))
    together = [n for n in nodes if one_process and n.name in loaded.one_process]
    processes = []
    for node in nodes:
        if node in together:
            if node is together[0]:
                args = tuple(a for n in together for a in ('--node', f'{n.name}:{n.executable}'))
                processes.append(ProcessSpec(PACKAGE, CONTAINER, tuple(together), namespace,
                                             (path,), args))
            continue
        processes.append(ProcessSpec(PACKAGE, node.executable, (node,), namespace, (path,)))
    common = loaded.common
    sim_time = parse_bool(common.get('use_sim_time', False), 'use_sim_time') \
        if use_sim_time is None else bool(use_sim_time)
    robot_urdf = urdf_or_builtin(os.path.abspath(urdf) if urdf else common.get('urdf_path', ''))
    _refuse_xacro(robot_urdf)
    return Graph(loaded, namespace, tuple(processes), robot_urdf, sim_time)


def _refuse_xacro(path):
    """
    Raise ConfigError if ``path`` is an unexpanded xacro file, with the twin nodes' message.

    The check and the message are :mod:`twin_sim.urdf_model`'s (what every twin node says at
    start), so a launch stops at once instead of starting robot_state_publisher and rviz
    beside nodes that exit. Anything else wrong with the file is left to the nodes.
    """
    try:
        robot = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return
    from twin_sim import urdf_model           # (pinocchio: loaded only for a xacro file)
    if not urdf_model._is_xacro(robot):
        return
    try:
        urdf_model.RobotModel.from_urdf(path)
    except urdf_model.URDFError as exc:
        raise ConfigError('', [f'{exc} (urdf / --urdf, or urdf_path)']) from None


def node_parameters(graph, node):
    """
    Return the parameters the config file gives node ``node`` (a NodeSpec) over its defaults.

    Its ``/**`` section, then the sections named for the node (``/**/<name>``, ``/<name>``,
    ``<namespace>/<name>``), then the overrides of ``node.parameters``; flattened as rcl reads
    them (``a.b``).
    """
    with open(graph.config.path, encoding='utf-8') as handle:
        data = config_module.load_rcl_yaml(handle)
    sections = dict(config_module._sections(data))
    values = dict(config_module.defaults(node.executable))
    for key in ('/**', f'/**/{node.name}', f'/{node.name}',
                f'{graph.namespace}/{node.name}'):
        values.update(sections.get(key, {}))
    values.update(node.parameters)
    return values


def _topic(graph, node, parameter):
    """Return the topic ``node`` uses for its ``parameter``, after its remappings."""
    name = node_parameters(graph, node)[parameter]
    return dict(node.remappings).get(name, name)


def twin_description(graph):
    """
    Return the URDF text for the twin's robot_state_publisher.

    ``graph.urdf``, with the joints of the twin's ``locked_joints`` made fixed where the twin
    holds them (:func:`twin_sim.urdf_rewrite.lock_joints`): /twin/joint_states names only the
    joints the twin's model moves, and robot_state_publisher publishes no TF for a moving joint
    it gets no position of.
    """
    from twin_sim.urdf_model import parse_locked_joints
    from twin_sim import urdf_rewrite
    bridge = next((n for n in graph.nodes if n.executable == 'twin_bridge'),
                  next(n for n in graph.nodes if n.executable in ('twin_sim', 'twin_anomaly')))
    text = node_parameters(graph, bridge).get('locked_joints', '')
    try:
        locked = parse_locked_joints(text)
        if not locked:
            return _read(graph.urdf)
        root = urdf_rewrite.parse(graph.urdf)
        urdf_rewrite.lock_joints(root, locked, graph.urdf)
    except ValueError as exc:             # (URDFRewriteError is one)
        raise ConfigError(graph.config.path, [f'locked_joints = {text!r}: {exc}']) from None
    return ElementTree.tostring(root, encoding='unicode')


def urdf_root_link(path):
    """Return the name of the root link of the URDF at ``path`` (the link no joint moves)."""
    try:
        robot = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise ConfigError(path, [f'cannot read the URDF: {exc}']) from None
    links = [link.get('name') for link in robot.findall('link')]
    children = {child.get('link') for child in robot.findall('joint/child')}
    roots = [link for link in links if link not in children]
    if len(roots) != 1:
        raise ConfigError(path, [f'a URDF needs exactly one root link, found {roots}'])
    return roots[0]


def _external(package, executable, name, namespace, parameters=None, remappings=(),
              arguments=()):
    return ProcessSpec(package, executable, (NodeSpec(name, executable, parameters or {},
                                                      tuple(remappings)),),
                       namespace, (), tuple(arguments))


def visualization_nodes(graph, rviz=False):
    """
    Return the helper processes a ROS 2 install adds to ``graph`` (not started by robot-twin up).

    - ``twin_state_publisher``: robot_state_publisher of the twin's URDF, fed by
      /twin/joint_states, TF frames prefixed ``twin/``, description on /twin/robot_description;
    - ``twin_base_tf``: static identity transform from the robot's root link to the twin's;
    - ``robot_state_publisher``: for a plant (demo, HIL), which has no robot stack of its own
      (a real robot has one), reading the plant's joint_states_topic and publishing
      /robot_description (what rviz shows) in a namespace too;
    - ``rviz2`` with config/rviz/twin.rviz and the URDF's root link as its fixed frame, when
      ``rviz`` is true.

    The twin's URDF has its ``locked_joints`` made fixed (:func:`twin_description`).

    The first two come only with twin nodes: a HIL graph has none (the twin launched beside it
    brings its own).
    """
    executables = {n.executable for n in graph.nodes}
    twin = bool(executables & {'twin_bridge', 'twin_sim', 'twin_anomaly'})
    plants = [n for n in graph.nodes if n.executable == 'twin_plant']
    sim_time = {'use_sim_time': graph.use_sim_time}
    ns = graph.namespace
    root = urdf_root_link(graph.urdf)
    specs = []
    if twin:
        specs += [
            _external('robot_state_publisher', 'robot_state_publisher', 'twin_state_publisher',
                      ns, {'robot_description': twin_description(graph),
                           'frame_prefix': TWIN_FRAME_PREFIX, **sim_time},
                      (('joint_states', '/twin/joint_states'),
                       ('robot_description', '/twin/robot_description'))),
            _external('tf2_ros', 'static_transform_publisher', 'twin_base_tf', ns,
                      arguments=('--frame-id', root, '--child-frame-id',
                                 TWIN_FRAME_PREFIX + root)),
        ]
    if plants:
        # the plant publishes its joint_states_topic as given (absolute by default), and rviz
        # shows /robot_description: the same names in a namespace too
        specs.append(_external('robot_state_publisher', 'robot_state_publisher',
                               'robot_state_publisher', ns,
                               {'robot_description': _read(graph.urdf), **sim_time},
                               (('joint_states', _topic(graph, plants[0], 'joint_states_topic')),
                                ('robot_description', '/robot_description'))))
    if rviz:
        specs.append(_external('rviz2', 'rviz2', 'rviz2', ns, dict(sim_time),
                               arguments=('-d', data_path('config', 'rviz', 'twin.rviz'),
                                          '-f', root)))
    return specs


def _read(path):
    try:
        return Path(path).read_text(encoding='utf-8')
    except OSError as exc:
        raise ConfigError(path, [f'cannot read the URDF: {exc}']) from None
