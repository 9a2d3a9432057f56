"""``python -m robot_twin`` runs the ``robot-twin`` command line."""
import sys

from robot_twin.entry_points import robot_twin_cli

sys.exit(robot_twin_cli())
