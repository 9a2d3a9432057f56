"""robot_twin's ROS 2 nodes and their shared helpers: the only modules that import rclpy."""
