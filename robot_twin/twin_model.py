"""
The twin's robot model and input checks from a node's parameters.

ROS-free, so that the live nodes (:mod:`robot_twin.nodes.robot_input`, the hub) and
``robot-twin replay`` build the same model and judge the robot's messages the same way from the
same parameters: the URDF (or the built-in arm), its force-torque sensor link, the joints held
fixed (``locked_joints``), with the dynamics the identified parameters and the known payload,
and the intake's plausibility bounds and stream settings.
"""
from twin_bridge.intake import RobotIntake
from twin_bridge.validation import Plausibility
from twin_sim.resources import urdf_or_builtin
from twin_sim.urdf_model import (
    DEFAULT_FT_LINK, parse_locked_joints, Payload, RobotModel, URDFError)

__all__ = ['robot_intake', 'robot_model']


def robot_model(params, with_dynamics=True):
    """
    Build the twin's RobotModel from a node's parameters.

    Parameters
    ----------
    params : dict
        ``urdf_path``; optional ``ft_sensor_link`` (a named link must exist; empty =
        ``ft_sensor`` if the URDF has one), ``locked_joints`` (``"name[=position], ..."``:
        joints the robot does not stream, held fixed), ``dynamics_params_file`` and
        ``payload_mass_kg`` and ``payload_frame`` (empty: the model's choice).
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
                                 locked=parse_locked_joints(params.get('locked_joints', '')),
                                 payload_frame=params.get('payload_frame') or None)
    if model.n == 0:
        raise URDFError(f'{model.urdf_path}: no movable joint to mirror (every joint is fixed'
                        f'{" or in locked_joints" if params.get("locked_joints") else ""}): '
                        "is this the robot arm's URDF?")
    if with_dynamics and params.get('dynamics_params_file'):
        model.load_parameters(params['dynamics_params_file'])
    if with_dynamics and params.get('payload_mass_kg', 0.0) > 0.0:
        model = model.with_payload(Payload(params['payload_mass_kg']))
    return model


def robot_intake(model, params, with_wrench):
    """
    Build the intake (validation, mapping, watchdog) of the robot's streams for ``model``.

    Parameters
    ----------
    model : twin_sim.urdf_model.RobotModel
        Joint names, types and limits (the plausibility bounds).
    params : dict
        ``unknown_joints``, ``max_future_s``, ``position_margin_rad``, ``position_margin_m``
        (prismatic joints), ``velocity_factor``, ``effort_factor``, ``wrench_force_range_n``,
        ``wrench_torque_range_nm``, ``joint_states_topic``, ``wrench_topic``, and
        ``stale_timeout_s`` if the node has it (default 0.1 s).
    with_wrench : bool
        Whether the wrench stream is read (and watched).

    """
    plausibility = Plausibility.from_model(
        model, position_margin=model.by_joint_type(params['position_margin_rad'],
                                                   params['position_margin_m']),
        velocity_factor=params['velocity_factor'], effort_factor=params['effort_factor'])
    return RobotIntake(
        model.joint_names, plausibility=plausibility,
        unknown_joints=params['unknown_joints'], max_future_s=params['max_future_s'],
        stale_timeout_s=params.get('stale_timeout_s', 0.1), with_wrench=with_wrench,
        force_range_n=params['wrench_force_range_n'],
        torque_range_nm=params['wrench_torque_range_nm'],
        joint_states_topic=params['joint_states_topic'], wrench_topic=params['wrench_topic'],
        held_joints=model.locked_joints,
        continuous_joints=model.continuous_joints, wrench_frame=model.ft_frame)
