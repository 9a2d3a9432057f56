"""
What the plant accepts as a command: the rules of its command topics, ROS-free.

The plant node (``robot_twin/nodes/plant_node.py``) applies them to the messages it receives,
``robot-twin hil-report`` (``robot_twin/hil_report.py``) to a recording's, to rebuild the
reference the plant really followed; one set of rules for both. Messages are read by duck
typing (rclpy's classes or rosbags'). A rejected command raises :class:`CommandRejected`, whose
message says why; the plant counts it (``rejected_commands``) and keeps its previous command.

- ``/joint_command`` (JointState, :func:`joint_command`): unique joint names, all the robot's;
  every field given (position, velocity, effort) has one finite value per name, whichever the
  mode; the mode is position if a position is given (the velocity, if given, is its
  feed-forward), else velocity, else effort.
- ``/forward_position_controller/commands`` (Float64MultiArray, :func:`forward_command`): one
  finite position per joint, model order.
- ``/joint_trajectory_controller/joint_trajectory`` (JointTrajectory,
  :func:`trajectory_command`): unique, known names, points with one finite position (and
  velocity, if given) per name, strictly increasing times; and a timing that needs no joint
  faster than its velocity limit (:func:`trajectory_speed_problem`, which
  :meth:`twin_sim.plant.Plant.command_trajectory` applies).
"""
import numpy as np

from twin_sim.trajectory import JointTrajectoryInterpolator, TrajectoryError

__all__ = ['CommandRejected', 'forward_command', 'joint_command', 'trajectory_command',
           'trajectory_speed_problem', 'TRAJECTORY_SPEED_TOLERANCE']

#: A trajectory may ask up to this fraction more than a velocity limit (planned at the limit,
#: rounding) before it is rejected; the plant's velocity limiter takes out the rest.
TRAJECTORY_SPEED_TOLERANCE = 1e-3
_SAMPLES_PER_SEGMENT = 64     # where the speed check samples each trajectory segment


class CommandRejected(ValueError):
    """A command the plant rejects; the message says why."""


def _indices(joint_names, names):
    """Model indices of ``names`` (unique, all known)."""
    index = {name: i for i, name in enumerate(joint_names)}
    names = [str(n) for n in names]
    if not names:
        raise CommandRejected('no joint names')
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise CommandRejected(f'joint names given more than once: {twice}')
    unknown = [n for n in names if n not in index]
    if unknown:
        raise CommandRejected(f'unknown joints {unknown}; the robot has {list(joint_names)}')
    return np.array([index[n] for n in names])


def _finite(values, count, what):
    try:
        arr = np.asarray(values, dtype=float).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise CommandRejected(f'{what}: not numbers ({exc})') from None
    if arr.size != count:
        raise CommandRejected(f'{what}: {arr.size} values for {count} joint names')
    if not np.all(np.isfinite(arr)):
        raise CommandRejected(f'{what}: non-finite value in {arr.tolist()}')
    return arr


def _model_order(n, idx, values):
    out = np.full(n, np.nan)
    out[idx] = values
    return out


def joint_command(joint_names, names, position, velocity, effort):
    """
    Check a ``/joint_command`` JointState and return what it commands, in model order.

    Parameters
    ----------
    joint_names : sequence of str
        The robot's joints, model order.
    names, position, velocity, effort : sequences
        The message's fields.

    Returns
    -------
    mode : str
        ``'position'``, ``'velocity'`` or ``'effort'``.
    values : (n,) ndarray
        The commanded values; NaN for the joints the message leaves out.
    feedforward : (n,) ndarray or None
        Position mode: the velocity given with the position (NaN where left out), else None.

    Raises
    ------
    CommandRejected
        Duplicate or unknown names, a field of the wrong length or with a non-finite value
        (any field, whichever is used), or no values at all.

    """
    fields = {'position': position, 'velocity': velocity, 'effort': effort}
    given = {k: v for k, v in fields.items() if len(v)}
    if not given:
        raise CommandRejected('no position, velocity or effort values')
    idx = _indices(joint_names, names)
    n = len(joint_names)
    checked = {k: _model_order(n, idx, _finite(v, len(idx), k)) for k, v in given.items()}
    if 'position' in checked:
        return 'position', checked['position'], checked.get('velocity')
    mode = 'velocity' if 'velocity' in checked else 'effort'
    return mode, checked[mode], None


def forward_command(joint_names, data):
    """Check a ``/forward_position_controller/commands`` array; positions (n,), model order."""
    return _finite(data, len(joint_names), 'forward position command')


def trajectory_command(joint_names, msg, held_q):
    """
    Check a JointTrajectory message and return its interpolator (model order).

    ``held_q`` (n,) are the positions of the joints the message leaves out (the plant: their
    measured positions; they hold them). The speed the timing needs is checked apart
    (:func:`trajectory_speed_problem`).

    Raises
    ------
    CommandRejected
        Bad names, a point without one finite position (or velocity) per name, no points,
        times not increasing.

    """
    idx = _indices(joint_names, msg.joint_names)
    points = list(msg.points)
    if not points:
        raise CommandRejected('trajectory has no points')
    held_q = np.asarray(held_q, dtype=float)
    times, positions, velocities = [], [], []
    with_velocity = all(len(p.velocities) for p in points)
    for k, p in enumerate(points):
        times.append(p.time_from_start.sec + p.time_from_start.nanosec * 1e-9)
        q = held_q.copy()
        q[idx] = _finite(p.positions, len(idx), f'trajectory point {k} positions')
        positions.append(q)
        if len(p.velocities):      # checked even when another point has none
            v = np.zeros(len(joint_names))
            v[idx] = _finite(p.velocities, len(idx), f'trajectory point {k} velocities')
            velocities.append(v)
    try:
        return JointTrajectoryInterpolator(times, np.array(positions),
                                           np.array(velocities) if with_velocity else None)
    except TrajectoryError as exc:
        raise CommandRejected(str(exc)) from None


def trajectory_speed_problem(interpolator, lower, upper, speed_cap, joint_names):
    """
    Say why a trajectory needs more than the velocity limits, or return None if it does not.

    The interpolated velocity is sampled along every segment (:data:`_SAMPLES_PER_SEGMENT`
    points) where the reference is inside the joint range (beyond it the plant holds the
    reference at the end of the range, so its speed there does not count) and compared with
    ``speed_cap`` (n,) rad/s, allowing :data:`TRAJECTORY_SPEED_TOLERANCE`. The jump to the
    first point, if the arm is elsewhere, is not part of the interpolator.
    """
    times = interpolator.times
    if times.size < 2:
        return None
    fractions = np.linspace(0.0, 1.0, _SAMPLES_PER_SEGMENT + 1)
    t = (times[:-1, None] + np.diff(times)[:, None] * fractions[None, :]).reshape(-1)
    t = np.minimum(t, np.nextafter(interpolator.duration, -np.inf))   # not the held end
    q, qd, _ = interpolator.sample(t)
    moving = (q > lower) & (q < upper)
    ratio = np.where(moving, np.abs(qd), 0.0) / np.asarray(speed_cap, dtype=float)
    k, j = np.unravel_index(int(np.argmax(ratio)), ratio.shape)
    if ratio[k, j] <= 1.0 + TRAJECTORY_SPEED_TOLERANCE:
        return None
    return (f'trajectory needs {abs(qd[k, j]):.4g} rad/s on {joint_names[j]} at '
            f't = {t[k]:.4g} s, beyond its velocity limit {speed_cap[j]:.4g} rad/s: give it '
            f'at least {ratio[k, j]:.3g} times the time')
