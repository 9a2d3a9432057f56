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
import numpy as np

from twin_bridge.mapping import JointMapper
from twin_bridge.timesync import TimeSync
from twin_bridge.validation import JointStateValidator, WrenchValidator
from twin_bridge.watchdog import StalenessWatchdog

JOINTS = 'joint_states'
WRENCH = 'wrench'


class RobotIntake:
    """
    Validate, map and time the robot's joint-state and wrench streams.

    Parameters
    ----------
    joint_names : sequence of str
        Model joint names, model order.
    unknown_joints : {'reject', 'ignore'}
    max_future_s : float
        Stamps further than this ahead of the local clock are rejected, s.
    stale_timeout_s : float
        Age after which a stream is STALE, s.
    with_wrench : bool
        Whether the robot has a force-torque stream to watch.
    joint_states_topic, wrench_topic : str
        Names used in reasons.

    """

    def __init__(self, joint_names, *, unknown_joints='reject', max_future_s=0.1,
                 stale_timeout_s=0.1, with_wrench=True, joint_states_topic='/joint_states',
                 wrench_topic='/ft_sensor/wrench'):
        self.joints = JointStateValidator(joint_names, unknown_joints=unknown_joints,
                                          max_future_s=max_future_s, topic=joint_states_topic)
        self.wrench = WrenchValidator(max_future_s=max_future_s, topic=wrench_topic)
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

    def wrench_sample(self, wrench, stamp, now):
        """Take one wrench sample (6,); return None if accepted, else the rejection reason."""
        reason = self.wrench.validate(wrench, stamp, now)
        if reason is None:
            self.latest_wrench = np.asarray(wrench, dtype=float)
            self.watchdog.observe(WRENCH, now, stamp)
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
