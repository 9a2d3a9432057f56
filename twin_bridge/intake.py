"""
The robot's input streams, validated and mapped: what every twin node reads the robot through.

ROS-free. :class:`RobotIntake` chains the bridge cores for one robot: a JointState sample goes
through :class:`~twin_bridge.validation.JointStateValidator` (NaN, lengths, unknown joints,
stamps), then :class:`~twin_bridge.mapping.JointMapper` (any order, any subset -> model order);
a wrench sample through :class:`~twin_bridge.validation.WrenchValidator`. Accepted samples feed
the :class:`~twin_bridge.watchdog.StalenessWatchdog` and :class:`~twin_bridge.timesync.TimeSync`.
twin_bridge and twin_sim (mirror mode) both use it, so a residual is one DDS hop from the robot
and both nodes judge a message the same way.
"""
from dataclasses import dataclass
import math

import numpy as np

from twin_bridge.mapping import JointMapper
from twin_bridge.timesync import TimeSync
from twin_bridge.validation import JointStateValidator, WrenchValidator
from twin_bridge.watchdog import StalenessWatchdog

JOINTS = 'joint_states'
WRENCH = 'wrench'


@dataclass(frozen=True)
class RobotSample:
    """
    One accepted robot joint sample in model joint order: what the twin's cores are fed.

    Attributes
    ----------
    t : float
        Header stamp, s.
    stamp : tuple of int
        The header stamp as ``(sec, nanosec)``, passed through unchanged to every output
        computed from this sample.
    position : (n,) float array
        rad (m for prismatic joints).
    velocity : (n,) float array or None
        rad/s; None when the robot does not publish velocities.
    effort : (n,) float array
        N·m (N). The arrays are the intake's own copies for this sample: a consumer may
        keep them.

    """

    t: float
    stamp: tuple
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray


class RobotIntake:
    """
    Validate, map and time the robot's joint-state and wrench streams.

    Parameters
    ----------
    joint_names : sequence of str
        Model joint names, model order.
    plausibility : twin_bridge.validation.Plausibility, optional
        Bounds of a possible joint sample (from the URDF limits); None = finite values only.
    unknown_joints : {'reject', 'ignore'}
    max_future_s : float
        Stamps further than this ahead of the local clock are rejected, s.
    stale_timeout_s : float
        Age after which a stream is STALE, s.
    with_wrench : bool
        Whether the robot has a force-torque stream to watch.
    force_range_n, torque_range_nm : float
        Measuring range of the force-torque sensor, N and N·m.
    joint_states_topic, wrench_topic : str
        Names used in reasons.

    """

    def __init__(self, joint_names, *, plausibility=None, unknown_joints='reject',
                 max_future_s=0.1, stale_timeout_s=0.1, with_wrench=True,
                 force_range_n=math.inf, torque_range_nm=math.inf,
                 joint_states_topic='/joint_states', wrench_topic='/ft_sensor/wrench'):
        self.joints = JointStateValidator(joint_names, plausibility=plausibility,
                                          unknown_joints=unknown_joints,
                                          max_future_s=max_future_s, topic=joint_states_topic)
        self.wrench = WrenchValidator(max_future_s=max_future_s, force_range_n=force_range_n,
                                      torque_range_nm=torque_range_nm, topic=wrench_topic)
        self.mapper = JointMapper(joint_names, ignore_unknown=unknown_joints == 'ignore')
        streams = (JOINTS, WRENCH) if with_wrench else (JOINTS,)
        self.watchdog = StalenessWatchdog(stale_timeout_s, streams)
        self.timesync = TimeSync()
        self.latest_wrench = None

    def joint_state(self, names, position, velocity, effort, stamp, now):
        """
        Take one JointState sample; return None if accepted, else the rejection reason.

        After acceptance, ``mapper.position``/``velocity``/``effort`` hold the latest model-order
        values (NaN for joints or fields never received).
        """
        reason = self.joints.validate(names, position, velocity, effort, stamp, now)
        if reason is None:
            self.mapper.update(names, position, velocity, effort, stamp)
            self.watchdog.observe(JOINTS, now, stamp)
            self.timesync.observe(stamp, now)
        return reason

    def sample(self, stamp_sec_nsec):
        """
        Return the latest complete model-order sample as a :class:`RobotSample`, or None.

        None while some model joint has not been received yet (a robot that publishes its
        joints in several messages). Call it right after :meth:`joint_state` accepted a
        message; ``stamp_sec_nsec`` is that message's header stamp as ``(sec, nanosec)``.
        """
        m = self.mapper
        if not m.all_received:
            return None
        velocity = None if np.isnan(m.velocity).any() else m.velocity.copy()
        sec, nanosec = stamp_sec_nsec
        return RobotSample(sec + nanosec * 1e-9, (int(sec), int(nanosec)), m.position.copy(),
                           velocity, m.effort.copy())

    def wrench_sample(self, wrench, stamp, now):
        """Take one wrench sample (6,); return None if accepted, else the rejection reason."""
        reason = self.wrench.validate(wrench, stamp, now)
        if reason is None:
            self.latest_wrench = np.asarray(wrench, dtype=float)
            self.watchdog.observe(WRENCH, now, stamp)
        return reason

    def malformed(self, stream, reason):
        """
        Count a message that could not even be read (bad bytes) on ``stream``; return why.

        ``stream`` is :data:`JOINTS` or :data:`WRENCH`; the node calls this when the message
        cannot be decoded, so it is counted with the other rejections.
        """
        validator = self.joints if stream == JOINTS else self.wrench
        validator.counters.add('malformed')
        validator.counters.add('rejected')
        validator.last_reason = reason
        return reason

    def state_ok(self, now):
        """Whether every watched stream is fresh and every joint has been received."""
        return self.watchdog.all_ok(now) and self.mapper.all_received

    def counters(self):
        """Return every rejection/acceptance counter, prefixed by stream (dict of int)."""
        out = self.joints.counters.as_dict('joint_states.')
        out.update(self.wrench.counters.as_dict('wrench.'))
        return out

    def reset(self, now):
        """Forget all stream history (e.g. on /twin/reset)."""
        self.joints.reset()
        self.wrench.reset()
        self.mapper.reset()
        self.watchdog.reset(now)
        self.timesync.reset()
        self.latest_wrench = None
