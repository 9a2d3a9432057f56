r"""
The one-process twin (``twin_container``): several robot_twin nodes in one process.

As a ROS 2 component container does for C++ nodes, it runs the twin's nodes (``twin_bridge``,
``twin_sim``, ``twin_anomaly``; also ``twin_plant`` or ``demo_controller`` if asked) in one
process, each a separate node with its own name and parameters, all on one executor. Unlike
separate processes, the twin's data does not go through DDS between them: ``twin_bridge`` takes
the robot's topics once, and each accepted sample goes to ``twin_sim`` (the mirror) and its
result to ``twin_anomaly`` by a function call; the anomaly report comes back to ``twin_bridge``
the same way (corrective actions). The /twin topics are still published for everyone else.

Usage (what ``robot-twin up`` and the launch files run)::

    twin_container --node twin_bridge:twin_bridge --node twin_sim:twin_sim \\
        --node twin_anomaly:twin_anomaly --ros-args --params-file config/twin.yaml

``--node NAME:EXECUTABLE`` names a node and its kind; parameters come from the params files by
node name, as for separate processes (rcl's own rules); ``-r NAME:from:=to`` remaps for one
node only. A node whose input is not in the process subscribes to the robot's topics itself.
"""
import argparse
import sys

from rclpy.utilities import remove_ros_args
from robot_twin.config import CONTAINER_EXECUTABLES


def parse_nodes(argv):
    """Return ``[(name, executable), ...]`` from the non-ROS arguments ``argv`` (or raise)."""
    parser = argparse.ArgumentParser(prog='twin_container', description=__doc__.split('\n')[1])
    parser.add_argument('--node', action='append', required=True, metavar='NAME:EXECUTABLE',
                        help='a node to run; EXECUTABLE is one of '
                             f'{", ".join(CONTAINER_EXECUTABLES)}')
    args = parser.parse_args(argv)
    nodes = []
    for text in args.node:
        name, _, executable = text.partition(':')
        if executable not in CONTAINER_EXECUTABLES or not name:
            parser.error(f'--node {text}: expected NAME:EXECUTABLE with EXECUTABLE one of '
                         f'{", ".join(CONTAINER_EXECUTABLES)}')
        nodes.append((name, executable))
    names = [n for n, _ in nodes]
    if len(set(names)) != len(names):
        parser.error(f'node names must be unique, got {names}')
    return nodes


def factories(nodes):
    """
    Return one factory per node, wired so that data passes by function calls.

    The bridge is built first, then the mirror (fed by the bridge's input), then the anomaly
    node (fed by the mirror; reporting back to the bridge), whatever the order given.
    """
    from robot_twin.nodes.anomaly_node import TwinAnomalyNode
    from robot_twin.nodes.bridge_node import TwinBridgeNode
    from robot_twin.nodes.demo_controller_node import DemoControllerNode
    from robot_twin.nodes.mirror_node import TwinMirrorNode
    from robot_twin.nodes.plant_node import PlantNode
    kinds = {executable: name for name, executable in nodes}

    def find(built, cls):
        return next((n for n in built if isinstance(n, cls)), None)

    def bridge(built):
        return TwinBridgeNode(kinds['twin_bridge'],
                              anomaly_in_process='twin_anomaly' in kinds)

    def mirror(built):
        upstream = find(built, TwinBridgeNode)
        node = TwinMirrorNode(kinds['twin_sim'],
                              source=upstream.input if upstream is not None else None)
        if upstream is not None:
            upstream.status_sources.append(node.status_values)
        return node

    def anomaly(built):
        node = TwinAnomalyNode(kinds['twin_anomaly'], mirror=find(built, TwinMirrorNode))
        upstream = find(built, TwinBridgeNode)
        if upstream is not None:
            node.report_listeners.append(upstream.take_report)
            upstream.status_sources.append(node.status_values)
            node.speed_scale_listeners.append(upstream.set_speed_scale)
        return node

    order = [('twin_bridge', bridge), ('twin_sim', mirror), ('twin_anomaly', anomaly),
             ('twin_plant', lambda built: PlantNode(kinds['twin_plant'])),
             ('demo_controller', lambda built: DemoControllerNode(kinds['demo_controller']))]
    return [make for executable, make in order if executable in kinds]


def main(args=None):
    """Console entry point ``twin_container``."""
    from robot_twin.nodes.runner import run_nodes
    argv = sys.argv if args is None else args
    nodes = parse_nodes(remove_ros_args(argv)[1:])
    return run_nodes(factories(nodes), argv)


if __name__ == '__main__':
    sys.exit(main())
