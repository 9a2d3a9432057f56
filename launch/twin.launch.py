"""
Launch the twin beside a real robot.

twin_bridge, twin_sim (mirror) and twin_anomaly run in one process (one_process:=false: each in
a process of its own); api:=, opcua:= and foxglove:= (HOST:PORT) add the outside-ROS
interfaces as a twin_hub process.

    ros2 launch robot_twin twin.launch.py urdf:=/path/robot.urdf [rviz:=true]

Start it next to the robot's running ros2_control stack (which publishes /joint_states
and the robot's own TF). Also starts robot_state_publisher for the twin (TF prefix twin/).

The nodes and their parameters come from the config file (default
share/robot_twin/config/twin.yaml) through robot_twin.graph, the same description that
``robot-twin up --config config/twin.yaml`` starts, so the two cannot drift apart.
"""
from robot_twin.launch_description import generate


def generate_launch_description():
    return generate('twin', rviz_default=False)
