"""
Launch the demo: the emulated robot, the twin watching it and a demo controller.

    ros2 launch robot_twin demo.launch.py [rviz:=false]

A plant (twin_plant) plays the arm with the demo fault scenario; twin_bridge, twin_sim (mirror)
and twin_anomaly watch it, in one process (one_process:=false: each in its own);
demo_controller moves it.

The nodes and their parameters come from the config file (default
share/robot_twin/config/demo.yaml) through robot_twin.graph, the same description that
``robot-twin up --config config/demo.yaml`` starts, so the two cannot drift apart.
"""
from robot_twin.launch_description import generate


def generate_launch_description():
    return generate('demo', rviz_default=True)
