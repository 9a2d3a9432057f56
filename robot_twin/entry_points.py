"""
The console scripts of robot_twin (setup.py ``console_scripts``) and what ``robot-twin up`` runs.

Each entry point first makes sure the process uses its own interpreter's ROS libraries
(:func:`robot_twin.ros_env.ensure_own_ros_environment`, which must run before anything loads a
ROS library), then imports the node module and runs it. Nothing here imports ROS at load time.
"""
import importlib
import os
import signal
import sys

from robot_twin.ros_env import ensure_own_ros_environment

NODE_MODULES = {
    'twin_bridge': 'robot_twin.nodes.bridge_node',
    'twin_sim': 'robot_twin.nodes.mirror_node',
    'twin_plant': 'robot_twin.nodes.plant_node',
    'twin_anomaly': 'robot_twin.nodes.anomaly_node',
    'demo_controller': 'robot_twin.nodes.demo_controller_node',
    'twin_container': 'robot_twin.nodes.container',
    'twin_hub': 'robot_twin.nodes.hub_node',
}
"""Module (with ``main(args=None)``) of each robot_twin executable."""


def main(executable, args=None):
    """Run the robot_twin executable ``executable``; return its exit status."""
    return run_module(NODE_MODULES[executable], args)


def run_module(module, args=None):
    """
    Run ``module.main(args)`` (a node module) in this process's own ROS environment.

    A Ctrl-C while the module is still loading (pinocchio, pybullet, onnxruntime take seconds)
    ends the process as the signal would, without a traceback: ``robot-twin up`` forwards a
    Ctrl-C to its nodes however early it comes. Once the nodes spin, the runner handles it.
    """
    ensure_own_ros_environment()
    try:
        return importlib.import_module(module).main(args)
    except KeyboardInterrupt:
        return _ended_by_ctrl_c()


def _ended_by_ctrl_c():
    """End the process as SIGINT would (its exit status says so), without a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
    return 130


def robot_twin_cli():
    """``robot-twin`` (a Ctrl-C while it is still loading ends it without a traceback)."""
    ensure_own_ros_environment()
    try:
        from robot_twin.cli import main as cli_main
        return cli_main()
    except KeyboardInterrupt:
        return _ended_by_ctrl_c()


def twin_bridge():
    """``twin_bridge``."""
    return main('twin_bridge')


def twin_sim():
    """``twin_sim`` (the mirror)."""
    return main('twin_sim')


def twin_plant():
    """``twin_plant``."""
    return main('twin_plant')


def twin_anomaly():
    """``twin_anomaly``."""
    return main('twin_anomaly')


def twin_container():
    """``twin_container`` (the one-process twin)."""
    return main('twin_container')


def demo_controller():
    """``demo_controller``."""
    return main('demo_controller')


def twin_hub():
    """``twin_hub`` (the outside-ROS interfaces: REST API and dashboard, OPC UA, Foxglove)."""
    return main('twin_hub')


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2:]))
