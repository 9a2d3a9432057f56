"""
Launch the hardware-in-the-loop plant: twin_plant plays the robot.

    ros2 launch robot_twin hil.launch.py [urdf:=/path/robot.urdf]

The real controller commands it; it publishes /joint_states, /ft_sensor/wrench and /clock.
To watch the bench with the twin too, also launch twin.launch.py use_sim_time:=true.

The nodes and their parameters come from the config file (default
share/robot_twin/config/hil.yaml) through robot_twin.graph, the same description that
``robot-twin up --config config/hil.yaml`` starts, so the two cannot drift apart.
"""
from robot_twin.launch_description import generate


def generate_launch_description():
    return generate('hil', rviz_default=False)
