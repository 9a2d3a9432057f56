"""
What a bring-up starts: the one description both ``ros2 launch`` and ``robot-twin up`` use.

:func:`describe_graph` reads a config file (see :mod:`robot_twin.config`) and the overrides a
user gives (URDF, namespace, use_sim_time) and returns a :class:`Graph` of :class:`NodeSpec`.
The launch files turn each spec into a ``launch_ros.actions.Node``; :mod:`robot_twin.bringup`
turns it into a command line with the same ``--ros-args``. :func:`visualization_nodes` adds what
only a full ROS 2 install has: robot_state_publisher for the twin (TF prefix ``twin/``), a static
transform that places the twin on the robot, and rviz2.
"""
from dataclasses import dataclass, field
import os
from pathlib import Path
import xml.etree.ElementTree as ElementTree

from robot_twin.config import ConfigError, load_config, normalize_namespace
from twin_sim.resources import fault_scenario, share_dir, urdf_or_builtin

PACKAGE = 'robot_twin'
PROFILES = ('twin', 'hil', 'demo')
"""Shipped configs: ``config/<profile>.yaml``."""

MODULES = {
    'twin_bridge': 'robot_twin.nodes.bridge_node',
    'twin_sim': 'twin_sim.sim_node',
    'twin_anomaly': 'robot_twin.nodes.anomaly_node',
    'demo_controller': 'robot_twin.nodes.demo_controller_node',
}
"""Python module (with ``main(args=None)``) of each robot_twin executable."""

TWIN_FRAME_PREFIX = 'twin/'
FILE_PARAMETERS = ('urdf_path', 'dynamics_params_file', 'model_path')
"""Parameters that name a file a node reads at start-up (empty = none)."""


def share_path(*parts):
    """
    Return the absolute path of a file installed under ``share/robot_twin/`` (a str).

    The source tree in a checkout or pip install, the ament share directory on a ROS 2 install
    (see :func:`twin_sim.resources.share_dir`). Raises ``FileNotFoundError`` if it is absent.
    """
    path = share_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f'{"/".join(parts)} not found in {share_dir()}')
    return str(path)


def config_path(config=None):
    """Return the absolute path of ``config``: a profile name (twin, hil, demo) or a file."""
    if config in (None, ''):
        config = 'twin'
    if config in PROFILES and not os.path.isfile(config):
        return share_path('config', config + '.yaml')
    if not os.path.isfile(config):
        raise ConfigError(str(config), [
            f'config file not found; give a params file or one of {", ".join(PROFILES)}'])
    return os.path.abspath(config)


@dataclass(frozen=True)
class NodeSpec:
    """
    One process of the graph, in the terms of ``launch_ros.actions.Node``.

    Attributes
    ----------
    package, executable : str
        Where the executable is (``ros2 run <package> <executable>``).
    name : str
        Node name (``-r __node:=name``).
    namespace : str
        Absolute namespace, or '' for the root (``-r __ns:=...`` only when not '').
    params_files : tuple of str
        ``--params-file`` arguments, in order.
    parameters : dict
        ``{name: value}`` set after the files (``-p name:=value``); later wins, as in ROS.
    remappings : tuple of (str, str)
        ``(from, to)`` rules (``-r from:=to``).
    arguments : tuple of str
        Non-ROS arguments before ``--ros-args`` (rviz2's ``-d FILE``).

    """

    package: str
    executable: str
    name: str
    namespace: str = ''
    params_files: tuple = ()
    parameters: dict = field(default_factory=dict)
    remappings: tuple = ()
    arguments: tuple = ()


@dataclass(frozen=True)
class Graph:
    """
    The nodes a config starts, with the user's overrides applied.

    Attributes
    ----------
    config : robot_twin.config.Config
        The loaded config file.
    namespace : str
        Namespace of every node ('' = root).
    nodes : tuple of NodeSpec
        robot_twin's nodes, in start order.

    """

    config: object
    namespace: str
    nodes: tuple

    def parameters(self, name):
        """Return every parameter value node ``name`` starts with (defaults, file, overrides)."""
        spec = self.node(name)
        values = self.config.parameters(name, self.namespace)
        values.update(spec.parameters)
        return values

    def node(self, name):
        """Return the :class:`NodeSpec` named ``name``."""
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise KeyError(f'no node {name!r} in {[s.name for s in self.nodes]}')

    def is_plant(self, name):
        """Whether node ``name`` is a twin_sim in mode plant (the emulated robot)."""
        return self.config.executables[name] == 'twin_plant'

    @property
    def use_sim_time(self):
        """use_sim_time for helpers (robot_state_publisher, rviz2): that of the twin nodes."""
        twin = [n.name for n in self.nodes if not self.is_plant(n.name)]
        return any(self.parameters(n)['use_sim_time'] for n in twin)

    def urdf_path(self, name):
        """Return the URDF file node ``name`` loads (its urdf_path, or the built-in arm)."""
        return urdf_or_builtin(self.parameters(name).get('urdf_path'))


def describe_graph(config=None, *, urdf='', namespace='', use_sim_time=None):
    """
    Describe the nodes a config starts.

    Parameters
    ----------
    config : str, optional
        A profile (``twin``, ``hil``, ``demo``) or the path of a config file; default ``twin``.
    urdf : str, optional
        URDF file for every node (sets ``urdf_path``); '' keeps the config's value.
    namespace : str, optional
        Namespace for every node; '' = root.
    use_sim_time : bool, optional
        Sets ``use_sim_time`` on every node except a plant-mode twin_sim, which makes /clock;
        None keeps the config's values.

    Returns
    -------
    Graph

    Raises
    ------
    ConfigError
        The config is missing or invalid, or the URDF file does not exist.

    """
    path = config_path(config)
    loaded = load_config(path)
    namespace = normalize_namespace(namespace)
    if urdf and not os.path.isfile(urdf):
        raise ConfigError(urdf, ['URDF file not found (urdf / --urdf)'])
    nodes = []
    for name in loaded.nodes:
        executable = loaded.executables[name]
        overrides = {}
        if urdf:
            overrides['urdf_path'] = os.path.abspath(urdf)
        plant = executable == 'twin_plant'
        if use_sim_time is not None and not plant:
            overrides['use_sim_time'] = bool(use_sim_time)
        nodes.append(NodeSpec(
            package=PACKAGE, executable=executable, name=name, namespace=namespace,
            params_files=(path,), parameters=overrides,
            remappings=loaded.remappings.get(name, ())))
    return Graph(loaded, namespace, tuple(nodes))


def missing_files(graph):
    """
    Return what files the nodes of ``graph`` would not find (one line each; [] if none).

    Checks :data:`FILE_PARAMETERS` (relative paths from the current directory, as the nodes
    see them) and the fault scenario of plant nodes (a file or a name in config/faults).
    """
    problems = []
    for spec in graph.nodes:
        values = graph.parameters(spec.name)
        for key in FILE_PARAMETERS:
            if values.get(key) and not os.path.isfile(values[key]):
                problems.append(f'node {spec.name}: {key} = {values[key]!r}: no such file')
        if values.get('scenario') and graph.is_plant(spec.name):
            try:
                fault_scenario(values['scenario'])
            except FileNotFoundError as exc:
                problems.append(f'node {spec.name}: scenario: {exc}')
    return problems


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


def visualization_nodes(graph, rviz=False):
    """
    Return the helper nodes a ROS 2 install adds to ``graph`` (not started by robot-twin up).

    - ``twin_state_publisher``: robot_state_publisher of the twin's URDF, fed by
      /twin/joint_states, TF frames prefixed ``twin/``, description on /twin/robot_description;
    - ``twin_base_tf``: static identity transform from the robot's root link to the twin's;
    - ``robot_state_publisher``: for a plant (demo, HIL), which has no robot stack of its own
      (a real robot has one);
    - ``rviz2`` with config/rviz/twin.rviz, when ``rviz`` is true.

    The first two come only with twin nodes: a HIL graph has none (the twin launched beside it
    brings its own).
    """
    twin = [n.name for n in graph.nodes if not graph.is_plant(n.name)]
    plants = [n.name for n in graph.nodes if graph.is_plant(n.name)]
    sim_time = {'use_sim_time': graph.use_sim_time or not twin and graph.parameters(
        plants[0])['use_sim_time']}
    ns = graph.namespace
    specs = []
    if twin:
        twin_urdf = graph.urdf_path(twin[0])
        root = urdf_root_link(twin_urdf)
        specs += [
            NodeSpec('robot_state_publisher', 'robot_state_publisher', 'twin_state_publisher',
                     ns, parameters={'robot_description': _read(twin_urdf),
                                     'frame_prefix': TWIN_FRAME_PREFIX, **sim_time},
                     remappings=(('joint_states', '/twin/joint_states'),
                                 ('robot_description', '/twin/robot_description'))),
            NodeSpec('tf2_ros', 'static_transform_publisher', 'twin_base_tf', ns,
                     arguments=('--frame-id', root,
                                '--child-frame-id', TWIN_FRAME_PREFIX + root)),
        ]
    if plants:
        specs.append(NodeSpec(
            'robot_state_publisher', 'robot_state_publisher', 'robot_state_publisher', ns,
            parameters={'robot_description': _read(graph.urdf_path(plants[0])), **sim_time}))
    if rviz:
        specs.append(NodeSpec('rviz2', 'rviz2', 'rviz2', ns, parameters=dict(sim_time),
                              arguments=('-d', share_path('config', 'rviz', 'twin.rviz'))))
    return specs


def _read(path):
    try:
        return Path(path).read_text(encoding='utf-8')
    except OSError as exc:
        raise ConfigError(path, [f'cannot read the URDF: {exc}']) from None
