"""
Conversions between ROS 2 messages and the numpy arrays the twin cores work on.

Message types only (no rclpy): the nodes use these for their low-rate messages (status,
commands, the plant's state), so that the conversions are tested once. The 1 kHz streams are
read and written as serialized bytes (:mod:`robot_twin.nodes.cdr`). Stamps are float seconds
inside the cores.
"""
import math

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import WrenchStamped
import numpy as np
from robot_twin.nodes.cdr import write_diagnostic_array
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory
from twin_sim.urdf_model import Payload

COMMAND_INTERFACES = {
    'trajectory': ('/joint_trajectory_controller/joint_trajectory', JointTrajectory),
    'forward_position': ('/forward_position_controller/commands', Float64MultiArray),
    'joint_command': ('/joint_command', JointState),
}
"""Default topic and message type of each command interface a ros2_control arm offers (the
one map: the bridge's corrective commands, the demo controller, the plant)."""

LEVELS = {'OK': DiagnosticStatus.OK, 'WARN': DiagnosticStatus.WARN,
          'ERROR': DiagnosticStatus.ERROR, 'STALE': DiagnosticStatus.STALE}


def stamp_to_sec(stamp):
    """Return a builtin_interfaces/Time as float seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t):
    """Return float seconds ``t`` as a builtin_interfaces/Time (floor to whole nanoseconds)."""
    if not math.isfinite(t) or t < 0.0:
        raise ValueError(f'cannot stamp a message with time {t!r}: need a finite t >= 0')
    ns = int(round(t * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def make_joint_state(stamp, names, position=None, velocity=None, effort=None, frame_id=''):
    """
    Build a sensor_msgs/JointState; arrays are (len(names),) or None for 'not given'.

    ``stamp`` is a builtin_interfaces/Time (pass the robot sample's stamp through unchanged).
    The twin's 1 kHz outputs are written as bytes instead (:mod:`robot_twin.nodes.cdr`).
    """
    msg = JointState()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    msg.name = list(names)
    if position is not None:
        msg.position = np.asarray(position, dtype=float).tolist()
    if velocity is not None:
        msg.velocity = np.asarray(velocity, dtype=float).tolist()
    if effort is not None:
        msg.effort = np.asarray(effort, dtype=float).tolist()
    return msg


def make_wrench(stamp, frame_id, w):
    """Build a geometry_msgs/WrenchStamped from ``w`` (6,) [N, N·m] in frame ``frame_id``."""
    msg = WrenchStamped()
    msg.header.frame_id = frame_id
    msg.header.stamp = stamp
    f, t = msg.wrench.force, msg.wrench.torque
    f.x, f.y, f.z, t.x, t.y, t.z = np.asarray(w, dtype=float).tolist()
    return msg


def make_status(name, level, message, values=None, hardware_id='robot_twin'):
    """
    Build a diagnostic_msgs/DiagnosticStatus.

    Parameters
    ----------
    name : str
        Name of the status (what it reports on).
    level : str or int
        'OK', 'WARN', 'ERROR', 'STALE' or the byte value.
    message : str
        Human-readable summary (converted with ``str``).
    values : dict, optional
        Key-value pairs; values are turned into strings (:func:`value_text`).
    hardware_id : str
        The status's ``hardware_id``.

    """
    status = DiagnosticStatus()
    status.name = name
    status.level = LEVELS[level] if isinstance(level, str) else bytes([int(level)])
    status.message = str(message)
    status.hardware_id = hardware_id
    status.values = [KeyValue(key=str(key), value=value_text(value))
                     for key, value in (values or {}).items()]
    return status


STAMP_TEXT_FROM = 1e6
"""Floats from this magnitude on (epoch stamps, s) are written to the microsecond, not to six
significant digits: ``1796516487.626373``, not ``1.79652e+09`` (10^4 s)."""
STAMP_TEXT_BELOW = 1e12
"""Where that rule ends: larger floats get six significant digits again."""


def value_text(value):
    """
    Return the text of a diagnostic value: floats to 6 significant digits, else ``str``.

    A float of :data:`STAMP_TEXT_FROM` or more (below :data:`STAMP_TEXT_BELOW`), such as an
    epoch time in /twin/status (``joint_states.since``) or /twin/rul (``last_sample``), keeps
    every digit before the point and six after it (as /twin/anomaly's ``since``).
    """
    if not isinstance(value, float):
        return str(value)
    if STAMP_TEXT_FROM <= abs(value) < STAMP_TEXT_BELOW:
        return f'{value:.6f}'
    return f'{value:.6g}'


def diagnostics_bytes(stamp, statuses, hardware_id='robot_twin'):
    """
    Return a serialized diagnostic_msgs/DiagnosticArray, as :func:`make_status` would build it.

    The twin's reports go out this way: no message objects are built (see
    :func:`robot_twin.nodes.cdr.write_diagnostic_array`).

    Parameters
    ----------
    stamp : tuple of int
        ``(sec, nanosec)`` of the header.
    statuses : iterable
        Objects with ``name``, ``level`` ('OK', 'WARN', 'ERROR', 'STALE'), ``message`` and
        ``values`` (a dict, texts as in :func:`make_status`), e.g.
        :class:`twin_anomaly.report.StatusEntry`.
    hardware_id : str
        Every status's ``hardware_id``.

    """
    return write_diagnostic_array(*stamp, (
        (LEVELS[s.level][0], s.name, str(s.message), hardware_id,
         ((str(k), value_text(v)) for k, v in (s.values or {}).items()))
        for s in statuses))


def now_stamp(clock):
    """Return ``(sec, nanosec)`` of ``clock``'s time now (an rclpy Clock)."""
    return divmod(clock.now().nanoseconds, 1_000_000_000)


def status_values(status):
    """Return the key-value pairs of a DiagnosticStatus as a dict of strings."""
    return {kv.key: kv.value for kv in status.values}


def level_name(level):
    """Return 'OK', 'WARN', 'ERROR' or 'STALE' for a DiagnosticStatus level (bytes or int)."""
    value = level[0] if isinstance(level, (bytes, bytearray)) else int(level)
    for name, byte in LEVELS.items():
        if byte[0] == value:
            return name
    return f'LEVEL{value}'


def _duration(seconds):
    """Return a builtin_interfaces/Duration for ``seconds`` >= 0."""
    from builtin_interfaces.msg import Duration
    ns = int(round(max(0.0, float(seconds)) * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def trajectory_msg(joints, points):
    """
    Build a trajectory_msgs/JointTrajectory.

    Parameters
    ----------
    joints : sequence of str
        Joint names of the trajectory, in the order of the point arrays.
    points : sequence of (time_from_start s, positions (m,), velocities (m,) or None)
        The trajectory points, in time order.

    """
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
    msg = JointTrajectory()
    msg.joint_names = list(joints)
    for point in points:
        t, positions = point[0], point[1]
        velocities = point[2] if len(point) > 2 else None
        p = JointTrajectoryPoint()
        p.positions = np.asarray(positions, dtype=float).tolist()
        if velocities is not None:
            p.velocities = np.asarray(velocities, dtype=float).tolist()
        p.time_from_start = _duration(t)
        msg.points.append(p)
    return msg


def trajectory_points(msg):
    """
    Unpack a JointTrajectory: ``(joint_names, [(t s, positions, velocities or None), ...])``.

    Velocities are None where a point has none; positions are empty arrays where a point has
    none (the caller rejects such a trajectory).
    """
    points = []
    for p in msg.points:
        t = p.time_from_start.sec + p.time_from_start.nanosec * 1e-9
        velocities = np.asarray(p.velocities, dtype=float) if len(p.velocities) else None
        points.append((t, np.asarray(p.positions, dtype=float), velocities))
    return list(msg.joint_names), points


def payload_from_msg(msg, model):
    """
    Return the :class:`twin_sim.urdf_model.Payload` of a geometry_msgs/InertiaStamped.

    The message gives the load the robot carries (``/twin/payload``): mass (kg), centre of
    mass (m) and inertia about it (kg·m^2), in ``model.payload_frame`` (an empty
    ``header.frame_id`` means that frame). Raises ValueError, with the reason, for another
    frame, numbers that make no rigid body, or a load the arm cannot carry
    (``RobotModel.check_payload``).
    """
    frame = msg.header.frame_id
    if frame not in ('', model.payload_frame):
        raise ValueError(f'the payload is given in frame {frame!r}; give it in '
                         f'{model.payload_frame!r}, the frame the tool is mounted on (or leave '
                         'frame_id empty)')
    i = msg.inertia
    payload = Payload.from_components(i.m, (i.com.x, i.com.y, i.com.z),
                                      i.ixx, i.ixy, i.ixz, i.iyy, i.iyz, i.izz)
    model.check_payload(payload)
    return payload


MAINTENANCE_TOPIC = '/twin/maintenance'
"""Where maintenance done on a joint is declared (diagnostic_msgs/DiagnosticStatus)."""
MAINTENANCE_TEXT_MAX_CHARS = 500
"""Longest ``by`` or ``note`` of a maintenance declaration, characters."""


def maintenance_status(joint, action, by='', note=''):
    """
    Build the diagnostic_msgs/DiagnosticStatus that declares maintenance done on ``joint``.

    ``name`` is the joint, ``message`` the action (``inspect``, ``lubricate``, ``replace``,
    ``reduce load``, ``all``), the values ``by`` (who) and ``note``, each only when given.
    """
    values = {k: v for k, v in (('by', by), ('note', note)) if v}
    return make_status(str(joint), 'OK', str(action), values, hardware_id='')


def maintenance_from_status(status):
    """
    Return ``(joint, action, by, note)`` of a maintenance declaration (:func:`maintenance_status`).

    Text is stripped of surrounding white space. Raises ValueError, naming what is wrong, for
    an empty joint or action, or a ``by`` or ``note`` longer than
    :data:`MAINTENANCE_TEXT_MAX_CHARS`. Whether the joint and action exist is the RUL
    monitor's check (``RulMonitor.declare_maintenance``).
    """
    joint, action = status.name.strip(), status.message.strip()
    values = status_values(status)
    by, note = values.get('by', '').strip(), values.get('note', '').strip()
    missing = [what for what, text in (('name (the joint)', joint),
                                       ('message (the action)', action)) if not text]
    if missing:
        raise ValueError(f'empty {" and ".join(missing)}; publish e.g. {{name: joint3, '
                         'message: lubricate, values: [{key: by, value: alice}]}')
    for what, text in (('by', by), ('note', note)):
        if len(text) > MAINTENANCE_TEXT_MAX_CHARS:
            raise ValueError(f'{what} has {len(text)} characters; at most '
                             f'{MAINTENANCE_TEXT_MAX_CHARS}')
    return joint, action, by, note
