"""
The ``twin_sim`` node: the twin's physics, as mirror of the robot or as the robot itself.

``mode: mirror`` (beside a real robot) follows /joint_states and the wrench topic through the
bridge's validation core and publishes predictions and residuals (:mod:`twin_sim.mirror_node`).
``mode: plant`` (HIL and the demo) is the robot: it steps the PyBullet world, publishes
/joint_states, the wrench and /clock, and obeys commands (:mod:`twin_sim.plant_node`).
"""
import sys

from rclpy.node import Node

from robot_twin.config import declare_node_parameters
from robot_twin.resources import urdf_or_builtin
from robot_twin.run_node import run_node
from twin_sim.urdf_model import Payload, RobotModel


def load_twin_model(params):
    """Build the RobotModel a twin_sim node uses from its parameters (URDF + identified file)."""
    model = RobotModel.from_urdf(urdf_or_builtin(params['urdf_path']))
    if params['dynamics_params_file']:
        model.load_parameters(params['dynamics_params_file'])
    if params['payload_mass_kg'] > 0.0:
        model = model.with_payload(Payload(params['payload_mass_kg']))
    return model


class TwinSimNode(Node):
    """Holds the twin's model and runs it in the configured mode."""

    def __init__(self, **kwargs):
        super().__init__('twin_sim', **kwargs)
        self.params = declare_node_parameters(self, 'twin_sim')
        self.model = load_twin_model(self.params)
        if self.params['mode'] == 'plant':
            from twin_sim.plant_node import PlantRole
            self.role = PlantRole(self, self.model, self.params)
        else:
            from twin_sim.mirror_node import MirrorRole
            self.role = MirrorRole(self, self.model, self.params)
        self.get_logger().info(
            f"twin_sim up in {self.params['mode']} mode: {self.model.n} joints "
            f"({', '.join(self.model.joint_names)}) from {self.model.urdf_path}")

    def destroy_node(self):
        """Stop the role's threads before the node goes."""
        role = getattr(self, 'role', None)   # absent when start-up failed
        if role is not None:
            role.close()
        return super().destroy_node()


def main(args=None):
    """Console entry point ``twin_sim``."""
    return run_node(TwinSimNode, args)


if __name__ == '__main__':
    sys.exit(main())
