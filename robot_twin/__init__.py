"""robot_twin package."""
