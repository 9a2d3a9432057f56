"""``python -m robot_twin`` runs the ``robot-twin`` command line."""
import sys

from robot_twin.cli import main

sys.exit(main())
