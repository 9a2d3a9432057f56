"""
The launch description every robot_twin launch file shares (launch/*.launch.py).

Imported only by launch files, on a ROS 2 install with ``launch`` and ``launch_ros``. The
nodes and parameters come from a config file through :mod:`robot_twin.graph`, the same
description that ``robot-twin up`` starts, so launch files and ``up`` cannot drift apart.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from robot_twin.config import parse_bool
from robot_twin.graph import describe_graph, share_path, visualization_nodes


def launch_setup(context):
    """Build the nodes of the graph once the launch arguments are known."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    sim_time = arg('use_sim_time')
    graph = describe_graph(
        arg('config'), urdf=arg('urdf'), namespace=arg('namespace'),
        use_sim_time=parse_bool(sim_time, 'use_sim_time') if sim_time else None)
    specs = list(graph.nodes) + visualization_nodes(graph, parse_bool(arg('rviz'), 'rviz'))
    return [
        Node(package=s.package, executable=s.executable, name=s.name,
             namespace=s.namespace or None,
             parameters=list(s.params_files) + ([s.parameters] if s.parameters else []),
             remappings=list(s.remappings), arguments=list(s.arguments), output='screen')
        for s in specs]


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
            'use_sim_time', default_value='', choices=['', 'true', 'false'],
            description='true/false sets use_sim_time on every node except a plant-mode '
                        'twin_sim (it publishes /clock); empty = as in the config file.'),
        DeclareLaunchArgument(
            'config', default_value=share_path('config', profile + '.yaml'),
            description='ROS 2 params file that also lists the nodes to start (its robot_twin '
                        'section); see config/twin.yaml.'),
        DeclareLaunchArgument(
            'rviz', default_value='true' if rviz_default else 'false', choices=['true', 'false'],
            description='Start rviz2 with config/rviz/twin.rviz (robot, twin ghost, markers).'),
        OpaqueFunction(function=launch_setup),
    ])
