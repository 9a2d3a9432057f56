"""
The twin's robot model from a node's parameters: what every twin node and a replay predict with.

ROS-free, so that the live nodes (:mod:`robot_twin.nodes.robot_input`) and ``robot-twin replay``
build the same model from the same parameters: the URDF (or the built-in arm), its force-torque
sensor link, the joints held fixed (``locked_joints``), and, with the dynamics, the identified
parameters and the known payload.
"""
from twin_sim.resources import urdf_or_builtin
from twin_sim.urdf_model import DEFAULT_FT_LINK, parse_locked_joints, Payload, RobotModel

__all__ = ['robot_model']


def robot_model(params, with_dynamics=True):
    """
    Build the twin's RobotModel from a node's parameters.

    Parameters
    ----------
    params : dict
        ``urdf_path``; optional ``ft_sensor_link`` (a named link must exist; empty =
        ``ft_sensor`` if the URDF has one), ``locked_joints`` (``"name[=position], ..."``:
        joints the robot does not stream, held fixed), ``dynamics_params_file`` and
        ``payload_mass_kg``.
    with_dynamics : bool
        Apply the identified parameters and the payload (the bridge needs only joints and
        limits).

    Raises
    ------
    ValueError
        A bad URDF, sensor link, locked joint or parameters file (the message says which).

    """
    model = RobotModel.from_urdf(urdf_or_builtin(params['urdf_path']),
                                 ft_link=params.get('ft_sensor_link') or DEFAULT_FT_LINK,
                                 locked=parse_locked_joints(params.get('locked_joints', '')))
    if with_dynamics and params.get('dynamics_params_file'):
        model.load_parameters(params['dynamics_params_file'])
    if with_dynamics and params.get('payload_mass_kg', 0.0) > 0.0:
        model = model.with_payload(Payload(params['payload_mass_kg']))
    return model
