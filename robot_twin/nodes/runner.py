"""Shared start-up and shut-down of every robot_twin node process."""
import sys

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException

from robot_twin.config import ConfigError
from twin_sim.urdf_model import URDFError


def run_node(factory, args=None):
    """
    Init rclpy, spin the node ``factory()`` builds, and shut down cleanly (Ctrl-C, SIGTERM).

    A configuration error while building the node (bad parameter, wrong URDF, missing file) is
    printed as one clear line and exits 2. An error raised by a callback while the context is
    being shut down (a signal arrived mid-take) is part of stopping, not a failure.
    """
    rclpy.init(args=args)
    node = None
    try:
        try:
            node = factory()
        except (ConfigError, URDFError, FileNotFoundError, ValueError,
                ParameterException) as exc:   # ParameterException: rclpy's type/range check
            print(f'[ERROR] {exc}', file=sys.stderr)
            return 2
        try:
            rclpy.spin(node)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception:
            if rclpy.ok():
                raise
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
