"""
The launch description every robot_twin launch file shares (launch/*.launch.py).

Imported only by launch files, on a ROS 2 install with ``launch`` and ``launch_ros``. The
processes, nodes and parameters come from a config file through :mod:`robot_twin.graph`, the
same description that ``robot-twin up`` starts, so launch files and ``up`` cannot drift apart:
by default the twin's nodes run in one ``twin_container`` process (``one_process:=false`` gives
each its own), each node reading the config file by its name, and overrides (``urdf:=``,
``use_sim_time:=``) from a params file written per process and read after it (in a temporary
folder, removed when the launch shuts down). ``api:=``, ``opcua:=`` and ``foxglove:=`` add the
outside-ROS interfaces (``twin_hub``, its own process). The boolean arguments take what
:func:`robot_twin.config.parse_bool` reads (``true``/``false``/``1``/``0``, any case: a parent
launch file often passes ``True``), not a ``choices`` list that would refuse ``True``.
"""
import shutil
import tempfile

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler, Shutdown
from launch.event_handlers import OnShutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_twin.bringup import with_override_files
from robot_twin.config import parse_bool
from robot_twin.graph import describe_graph, PACKAGE, visualization_nodes
from robot_twin.hub.settings import hub_overrides, with_hub
from twin_sim.resources import data_path


def _node(process):
    """
    Return the launch_ros Node action of one process of the graph.

    A robot_twin process that exits (a bad URDF, parameter or missing dependency: exit status
    2) shuts the whole launch down, as ``robot-twin up`` stops everything when one process
    dies: robot_state_publisher and rviz do not go on showing a dead twin.
    """
    extra = {}
    if process.package == PACKAGE:
        parameters = list(process.params_files)       # overrides already moved to a file
        extra['on_exit'] = Shutdown(
            reason=f'robot_twin process {process.name} ({process.executable}) exited')
    else:
        parameters = [n.parameters for n in process.nodes if n.parameters]
    return Node(package=process.package, executable=process.executable,
                name=process.node_name, namespace=process.namespace or None,
                parameters=parameters, remappings=list(process.remappings()),
                arguments=list(process.arguments), output='screen', **extra)


def launch_setup(context):
    """Build the processes of the graph once the launch arguments are known."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    def flag(name):
        return parse_bool(arg(name), f'launch argument {name}')

    sim_time = arg('use_sim_time')
    graph = describe_graph(
        arg('config'), urdf=arg('urdf'), namespace=arg('namespace'),
        use_sim_time=flag('use_sim_time') if sim_time.strip() else None,
        one_process=flag('one_process'))
    rviz = flag('rviz')
    processes, _hub = with_hub(graph, hub_overrides(
        arg('api'), arg('api_token_file'), arg('opcua'), arg('foxglove')))
    overrides = tempfile.mkdtemp(prefix='robot_twin_launch_')   # read by the nodes at start
    cleanup = RegisterEventHandler(OnShutdown(
        on_shutdown=lambda _event, _context: shutil.rmtree(overrides, ignore_errors=True)))
    processes = with_override_files(processes, overrides)
    processes += visualization_nodes(graph, rviz)
    return [cleanup] + [_node(p) for p in processes]


def generate(profile, rviz_default):
    """
    Return the LaunchDescription of a profile (``twin``, ``hil`` or ``demo``).

    Parameters
    ----------
    profile : str
        Config file share/robot_twin/config/<profile>.yaml is the default ``config``.
    rviz_default : bool
        Default of the ``rviz`` argument.

    """
    return LaunchDescription([
        DeclareLaunchArgument(
            'urdf', default_value='',
            description='Robot URDF file (plain URDF, not xacro) for every twin node and the '
                        'twin model in rviz; empty = urdf_path of the config file, or the '
                        'built-in arm.'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='ROS namespace of the twin nodes; empty = root. Topics stay absolute '
                        '(/joint_states, /twin/...).'),
        DeclareLaunchArgument(
            'use_sim_time', default_value='',
            description='true/false (any case, or 1/0) sets use_sim_time on every node except '
                        'the plant (it publishes /clock); empty = as in the config file.'),
        DeclareLaunchArgument(
            'config', default_value=data_path('config', profile + '.yaml'),
            description='ROS 2 params file that also lists the nodes to start (its robot_twin '
                        'section); see config/twin.yaml.'),
        DeclareLaunchArgument(
            'one_process', default_value='true',
            description='true/false: run the nodes of the twin in one process (as a component '
                        'container does; the topics of the robot are read once) or each in its '
                        'own.'),
        DeclareLaunchArgument(
            'rviz', default_value='true' if rviz_default else 'false',
            description='true/false: start rviz2 with config/rviz/twin.rviz (robot, twin '
                        'ghost, markers).'),
        DeclareLaunchArgument(
            'api', default_value='',
            description='HOST:PORT of the REST API and the web dashboard (twin_hub, a process '
                        'of its own); empty = off (or as in the twin_hub section of the config '
                        'file).'),
        DeclareLaunchArgument(
            'api_token_file', default_value='',
            description='File with the bearer token for writes (REST; password of OPC UA user '
                        'robot_twin); empty = every interface read-only.'),
        DeclareLaunchArgument(
            'opcua', default_value='',
            description='HOST:PORT of the OPC UA server (OPC 40010-1 Robotics); empty = off.'),
        DeclareLaunchArgument(
            'foxglove', default_value='',
            description='HOST:PORT of the Foxglove WebSocket server; empty = off.'),
        OpaqueFunction(function=launch_setup),
    ])
