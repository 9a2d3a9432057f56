"""
The robot's input streams, validated and mapped: what every twin node reads the robot through.

ROS-free. :class:`RobotIntake` chains the bridge cores for one robot: a JointState sample goes
through :class:`~twin_bridge.validation.JointStateValidator` (NaN, lengths, unknown joints,
stamps), then :class:`~twin_bridge.mapping.JointMapper` (any order, any subset -> model order);
a wrench sample through :class:`~twin_bridge.validation.WrenchValidator`. Accepted samples feed
the :class:`~twin_bridge.watchdog.StalenessWatchdog` and :class:`~twin_bridge.timesync.TimeSync`.
:meth:`RobotIntake.sync_status` turns all of it into the level and message of /twin/status,
naming the cause when the state is not usable (stamps behind the local clock, every message
rejected).
twin_bridge and twin_sim (mirror mode) both use it, so a residual is one DDS hop from the robot
and both nodes judge a message the same way.

A sample holds the values of one header stamp only. A robot that publishes its joints in several
messages per stamp (an arm and its gripper) has them merged: the sample of a stamp comes out
with the message that completes it (every model joint received with that stamp); a robot that
publishes every joint in one message gets its sample at once, with no wait. A stamp whose joints
are not all in before a newer stamp starts gives no sample (counted as
``joint_states.incomplete_stamps``; a message that arrives for it afterwards as
``joint_states.late_parts``), and a message that only repeats joints its stamp already had as
``joint_states.repeated_stamps``. Joints that come on a clock of their own (a gripper driver
that publishes its joints on ``/joint_states`` with its own stamps, at its own rate or at the
arm's rate but stamped apart) would leave every stamp incomplete; on the arm's clock at a lower
rate (two broadcasters of one controller manager), all but every n-th. The arm is the group with
the most joints among those whose stamps come at least ``ARM_RATE_SHARE`` as often as the most
frequent ones (so a gripper driver faster than the arm does not take its place), of equal groups
the more frequent; when ``OWN_CLOCK_RUN`` of its incomplete stamps lacked the same joints
(complete stamps among them in at most 1 in 5: a message lost now and then starts the count
over), and those joints came in stamps of their own or not at all (without the arm's joints; a
joint lost with the last part of the arm's stamps comes with the arm's other joints when it
comes), those are held between their messages for the samples of the arm (their messages counted
as ``joint_states.own_clock_parts``, their names in the status), as long as their latest stamp
is less than ``OWN_CLOCK_STALE_S`` older than the sample's. Held is first-order: a held joint's
position is carried forward from its latest message by that message's velocity times the
message's age at the sample's stamp (held as it is without a velocity); its velocity and effort
are the message's, one reading of one time (the mirror's friction and dynamics take them
together). A position held as it came would step once per message and stand still in between,
which the mirror read as motion residuals and the stream checks as noise. Such a sample's
``fresh`` says which joints are new readings (see :class:`RobotSample`).
A sample's velocity and effort are those its stamp's messages gave: an empty
``velocity``/``effort`` array ("not provided") makes them NaN for its joints (the sample's
``velocity`` is then None: the mirror and the detector differentiate positions; an effort NaN
makes it a sample without effort, counted by the mirror), never the values of an earlier
message.
"""
from dataclasses import dataclass
import math

import numpy as np

from twin_bridge.mapping import JointMapper
from twin_bridge.timesync import TimeSync
from twin_bridge.validation import count_unreadable, Counters, JointStateValidator, \
    rejection_run, SKIPPED, WrenchValidator
from twin_bridge.watchdog import LAG_WINDOW_S, OK, StalenessWatchdog

JOINTS = 'joint_states'
WRENCH = 'wrench'
CATCH_UP_RATIO = 0.7
"""See :meth:`RobotIntake.sample`: at 1 kHz, a joint sample taken less than 0.7 ms after the
previous one was already waiting; its receive time measures the twin's own delay."""
STARVED_WAIT_S = 0.001
"""See :meth:`RobotIntake.sample`: a joint sample that the twin took more than this behind its
arrival because its input threads waited for a CPU was taken late because the twin's computer
starved it (marked ``queued``, counted as ``joint_states.starved``), s. An unstarved twin's
threads wait microseconds per sample; a starvation that matters to the latency check, ms."""
OWN_LATENESS_SHARE = 0.5
"""A stream's stamps that lag the local clock are put down to the twin's own lateness, not to
the robot's clock, when the twin's measured starvation explains at least this share of the lag,
or when it took at least this share of the recent samples from a backlog (see
:meth:`RobotIntake.lag_cause`)."""
ASSEMBLY_COUNTERS = ('incomplete_stamps', 'late_parts', 'repeated_stamps', 'own_clock_parts')
"""How the messages of a robot that splits its joints over several messages per stamp were
merged (see the module's docstring); reported as ``joint_states.<key>``."""
OWN_CLOCK_RUN = 10
"""Incomplete stamps of the arm lacking the same joints (in ``OWN_CLOCK_SHARE`` of them; complete
stamps in at most ``1 - OWN_CLOCK_SHARE`` of the stamps counted), after which those joints are
taken to come on a clock of their own (see the module's docstring)."""
OWN_CLOCK_SHARE = 0.8
"""How the incomplete stamps are read into groups: joints that come in this share of a joint's
stamps are its group; groups whose stamps come this share as often as the most frequent ones
are at the arm's rate; joints lacking in this share of the arm's stamps are on their own
clock."""
ARM_RATE_SHARE = 0.25
"""Groups of joints whose stamps come at least this share as often as the most frequent ones
may be the arm: the largest of them is (see the module's docstring)."""
OWN_CLOCK_STALE_S = 1.0
"""A joint on its own clock whose latest stamp is this much older than the sample's is no longer
held: the samples wait for it again (and the status says so), s."""
INPUT_QUEUE_DEPTH = 1000
"""Depth of the twin's subscription queue of the robot's streams, samples: at 1 kHz a stall of
the twin of up to 1 s loses no sample (the detectors tell a loss in this queue from a gap of
the robot's stream by how long the samples waited). 100 deep, a twin held up for 250 ms every
2 s gave no residual for 1,369 of 20,000 samples (1000 deep: 238), and each loss in this queue
stops its judging for 1 s (twin_anomaly.monitor); a computer that starves its processes in
slices (a CPU quota, a busy neighbour) holds the twin up that long. The queue holds up to 1000
messages of a few hundred bytes; it fills only while the twin is behind."""


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
        rad/s; None when this stamp's messages did not give every joint's velocity (the
        robot does not publish velocities, or left them out this time).
    effort : (n,) float array
        N·m (N); NaN for the joints whose message of this stamp gave no effort. The arrays
        are the intake's own copies for this sample: a consumer may keep them.
    refused_before : int
        Joint-state messages the intake refused since the previous accepted sample
        (implausible or unreadable): a stamp gap they explain is not a dropout of the robot.
    queued : bool
        The message waited behind earlier input in the twin's own queue (the twin was busy or
        starved when it arrived), or the twin took it late because its threads waited for a
        CPU, so its receive time includes the twin's own delay.
    fresh : (n,) bool array or None
        None when every joint's values came with this stamp (the usual case). With joints on
        a clock of their own (held, see the module docstring): True for the joints that have
        a new message since the previous sample (the arm's always), False for those carried
        forward from a message an earlier sample already had: checks of a joint's own
        readings (frozen or noisy sensors) take its values only where they are fresh.

    """

    t: float
    stamp: tuple
    position: np.ndarray
    velocity: np.ndarray
    effort: np.ndarray
    refused_before: int = 0
    queued: bool = False
    fresh: np.ndarray = None


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
    held_joints : iterable of str
        Joints of the robot that the model holds fixed (``locked_joints``): messages may name
        them; a message that names nothing the twin mirrors is skipped (not a sample, not a
        rejection; counted as ``other_joints_only``).
    continuous_joints : iterable of str
        Model joints without position limits (URDF ``continuous``). Many robots report such
        an angle wrapped (into [-pi, pi) or [0, 2 pi)): a step of 2 pi between two samples that
        is no motion. The samples carry them unwrapped instead (each step taken as the
        shortest turn, so the angle runs on past pi), so that no consumer (mirror, detectors,
        calibration) sees a jump.
    wrench_frame : str or None
        The force-torque sensor frame (the URDF link): a wrench in another frame (not empty)
        is refused (``wrench.wrong_frame``); None = frames not checked.

    """

    def __init__(self, joint_names, *, plausibility=None, unknown_joints='reject',
                 max_future_s=0.1, stale_timeout_s=0.1, with_wrench=True,
                 force_range_n=math.inf, torque_range_nm=math.inf,
                 joint_states_topic='/joint_states', wrench_topic='/ft_sensor/wrench',
                 held_joints=(), continuous_joints=(), wrench_frame=None):
        # a carried position stays within what the robot could report (the accepted range)
        self._carry_bounds = None if plausibility is None else (plausibility.lower,
                                                                plausibility.upper)
        self.joints = JointStateValidator(joint_names, plausibility=plausibility,
                                          unknown_joints=unknown_joints,
                                          max_future_s=max_future_s, topic=joint_states_topic,
                                          held_joints=held_joints)
        self.wrench = WrenchValidator(max_future_s=max_future_s, force_range_n=force_range_n,
                                      torque_range_nm=torque_range_nm, topic=wrench_topic,
                                      frame_id=wrench_frame)
        self.mapper = JointMapper(joint_names, ignore_unknown=unknown_joints == 'ignore',
                                  held_joints=held_joints)
        self._skipped = False           # the last joint state carried nothing for the twin
        streams = (JOINTS, WRENCH) if with_wrench else (JOINTS,)
        self.watchdog = StalenessWatchdog(stale_timeout_s, streams)
        self.timesync = TimeSync()
        self.latest_wrench = None
        self._refused_seen = 0          # the joint validator's rejections at the last sample
        self._taken = (-math.inf, math.nan)   # when the last sample was taken, and its stamp
        self.samples = 0                # samples given out (joint_states.samples)
        self.starved = 0                # of them taken late, the twin starved (.starved)
        self._behind = 0.0              # how far the twin's starvation put it behind, s
        self.queued = 0                 # of them taken from a backlog (marked queued)
        self._queued_marks = [(-math.inf, 0, 0)] * 2   # (time, samples, queued), see lag_cause
        names = list(joint_names)
        unknown = sorted(set(continuous_joints) - set(names))
        if unknown:
            raise ValueError(f'continuous_joints {unknown} are not model joints {names}')
        self._wrap = np.array([j in set(continuous_joints) for j in names], dtype=bool)
        self._any_wrap = bool(self._wrap.any())   # (checked per sample: a plain bool)
        self._unwrapped = None          # the continuous joints' last angles, unwrapped
        self.assembly = Counters(ASSEMBLY_COUNTERS)
        self._n = len(names)
        self._no_joint = [False] * self._n
        self._together = np.zeros((self._n, self._n), dtype=np.int64)
        self._reset_assembly()

    @property
    def own_clock_joints(self):
        """Names of the joints held between messages of their own clock (see the module)."""
        return [n for n, own in zip(self.mapper.joint_names, self._own) if own]

    def _reset_assembly(self):
        """Forget the stamp being assembled."""
        self._complete = False          # the last message completed its stamp's sample
        self._stamp = None              # stamp being assembled (or emitted), s
        self._stamp_before = None       # the stamp assembled before it, s
        self._got = list(self._no_joint)    # its joints received so far
        self._count = 0                 # how many of them
        self._done = False              # its sample has been given out
        self._incomplete_run = 0        # incomplete stamps of the window (see _count_complete)
        self._complete_run = 0          # complete ones among them
        self._incomplete_since = 0      # incomplete stamps since the last sample
        self._together[:] = 0           # [i, j]: how many of those had both joints i and j
        self._resyncs = 0               # the validator's clock resyncs seen
        self._sample_now = -math.inf    # when the last sample was complete (local clock), s
        self._own = list(self._no_joint)    # per joint: on a clock of its own, held
        self._n_own = 0
        self._sampled_stamps = None     # per joint: its message's stamp at the last sample

    def joint_state(self, names, position, velocity, effort, stamp, now, nanosec=0):
        """
        Take one JointState message; return None if accepted, else the rejection reason.

        ``stamp`` is its header stamp, s, and ``nanosec`` that stamp's ``nanosec`` field as
        received (a value of 1e9 or more is refused as ``malformed``). After acceptance,
        ``mapper.position``/``velocity``/``effort`` hold the latest model-order values (NaN
        for joints never received, and for fields the joint's latest message left empty). A
        message that names no joint the twin mirrors (only held joints, or only unknown ones
        under ``unknown_joints='ignore'``) also returns None, and :meth:`sample` then gives no
        sample for it; so does a message that does not complete its stamp's sample.
        """
        self._complete = False
        reason = self.joints.validate(names, position, velocity, effort, stamp, now, nanosec)
        self._skipped = reason is SKIPPED
        if self._skipped:
            return None
        if reason is None:
            idx = self.mapper.update(names, position, velocity, effort, stamp)
            self.watchdog.observe(JOINTS, now, stamp)
            self.timesync.observe(stamp, now)
            if self._n_own and all(self._own[i] for i in idx.tolist()):
                # joints on their own clock: held (the mapper has their values) for the
                # samples of the others; their stamp starts no sample
                self.assembly.add('own_clock_parts')
                return reason
            if stamp == self._stamp or len(idx) != self._n:
                self._complete = self._merge(idx, stamp)
            else:               # the whole model in one message of a new stamp: complete
                if not self._done and self._stamp is not None:
                    self._drop_incomplete()
                self._stamp_before, self._stamp = self._stamp, stamp
                self._complete = self._done = True
            if self._complete:
                self._sample_now = now
                self._incomplete_since = 0
                if self._incomplete_run:
                    self._count_complete()
        return reason

    def _count_complete(self):
        """
        Count a complete stamp among incomplete ones: start their window over, or keep it.

        The incomplete stamps are read for joints on a clock of their own over a window that
        a complete stamp ends only when complete stamps are more than ``1 - OWN_CLOCK_SHARE``
        of it: a message lost now and then starts it over, while a group published on the
        arm's clock at a fifth of its rate or less (two broadcasters of one controller
        manager: the group's stamps are every n-th of the arm's, so they complete) lacks in
        most stamps of a window that its complete ones do not end.
        """
        self._complete_run += 1
        total = self._incomplete_run + self._complete_run
        if self._complete_run > (1.0 - OWN_CLOCK_SHARE) * total + 1e-9:    # (1 in 5: kept)
            self._start_window()

    def _start_window(self):
        """Forget the incomplete stamps counted so far."""
        self._incomplete_run = self._complete_run = 0
        self._together[:] = 0

    def _merge(self, idx, stamp):
        """Add one accepted message's joints to its stamp's sample; return whether complete."""
        if stamp != self._stamp:
            if self._stamp is not None and stamp < self._stamp and not self._resynced():
                # a message of an older stamp, come after a newer one had started: a part of
                # a stamp that was given no sample (or had one already), or, newer than the
                # stamp before, the first of a stamp that was never started (another driver's
                # message overtaken by this stamp's: its joints tell the groups apart)
                if self._stamp_before is None or stamp > self._stamp_before:
                    self._stamp_before = stamp
                    got = list(self._own)
                    for i in idx.tolist():
                        got[i] = True
                    self._count_incomplete(got)
                else:
                    self.assembly.add('late_parts')
                return False
            if self._stamp is not None and not self._done:
                self._drop_incomplete()
                if self._n_own and all(self._own[i] for i in idx.tolist()):
                    # that stamp showed this message's joints to be on a clock of their own
                    self.assembly.add('own_clock_parts')
                    self._done = True           # (dropped: not to be counted again)
                    return False
            self._new_stamp(stamp)
        elif self._done:
            self.assembly.add('repeated_stamps')
            return False
        got, count = self._got, self._count
        for i in idx.tolist():
            if not got[i]:
                got[i] = True
                count += 1
        if count == self._count:
            self.assembly.add('repeated_stamps')    # nothing new for this stamp
            return False
        self._count = count
        if count < self._n:
            return False
        self._done = True
        return True

    def _resynced(self):
        """Whether the validator followed a clock step since the last call (stamps went back)."""
        resyncs = self.joints.counters['clock_resync']
        if resyncs == self._resyncs:
            return False
        self._resyncs = resyncs
        return True

    def _new_stamp(self, stamp):
        """Start assembling ``stamp`` (the stamp before, if incomplete, has been dropped)."""
        if self._n_own and stamp - min(
                self.mapper.stamp[i] for i in range(self._n) if self._own[i]) \
                > OWN_CLOCK_STALE_S:
            self._own = list(self._no_joint)        # they stopped: wait for them again
            self._n_own = 0
            self._sampled_stamps = None
        self._got[:] = self._own
        self._stamp_before, self._stamp = self._stamp, stamp
        self._count = self._n_own
        self._done = False

    def _drop_incomplete(self):
        """Count the stamp being assembled as incomplete (it gives no sample)."""
        self._count_incomplete(self._got)

    def _count_incomplete(self, got):
        """Count an incomplete stamp that had the joints ``got`` (list of bool, model order)."""
        self.assembly.add('incomplete_stamps')
        self._incomplete_run += 1
        self._incomplete_since += 1
        had = np.array(got)
        self._together += np.outer(had, had)
        if self._incomplete_run >= OWN_CLOCK_RUN:
            # only joints received lately can be held (a driver that stopped is waited for)
            recent = self.mapper.stamp >= self._stamp - OWN_CLOCK_STALE_S
            if (recent & ~had).any():
                self._hold_own_clock(recent)

    def _hold_own_clock(self, recent):
        """
        Hold the joints that the arm's incomplete stamps lack, once they show them.

        The arm's stamps are those of the joint whose group (the joints that come with it) is
        the largest among joints whose stamps come at least ``ARM_RATE_SHARE`` as often as the
        most frequent joint's (a gripper faster than the arm is not the arm), then of the most
        frequent, then of the first. The joints lacking in most of its stamps are then held, if
        ``recent`` ((n,) bool: received lately), not all of them, and most of their own stamps
        had none of the other joints (a lossy arm driver whose messages per stamp lose or
        delay their last part leaves many stamps lacking the same joint, but that joint comes
        with the arm's others whenever it comes: it is not taken for a driver of its own).
        """
        together, own = self._together, np.array(self._own)
        stamps = np.where(own, 0, together.diagonal())     # per joint: stamps that had it
        most = stamps.max()
        if most < OWN_CLOCK_RUN:
            return
        group = np.count_nonzero(
            (together >= OWN_CLOCK_SHARE * stamps[:, None]) & ~own, axis=1)
        # (group size first, then stamps; argmax takes the first of equals)
        arm = int(np.argmax(np.where(stamps >= ARM_RATE_SHARE * most,
                                     group * (most + 1) + stamps, -1)))
        lacking = (together[arm] <= (1.0 - OWN_CLOCK_SHARE) * stamps[arm]) & ~own & recent
        # ... and that come in stamps of their own: a joint on a clock of its own comes
        # without the others, while a joint of the arm that its stamps' lost or delayed last
        # parts took away comes with some of the arm's other joints whenever it comes
        # (``with_arm``: per joint, the most stamps it shared with any one joint not lacking)
        with_arm = together[:, ~lacking & ~own].max(axis=1)
        apart = lacking & (with_arm <= (1.0 - OWN_CLOCK_SHARE) * stamps)
        n_apart = int(np.count_nonzero(apart))
        if n_apart and n_apart + self._n_own < self._n:
            self._own = (own | apart).tolist()
            self._n_own += n_apart
            self._start_window()

    def sample(self, stamp_sec_nsec, taken=None, waited=0.0):
        """
        Return the sample that the last message completed as a :class:`RobotSample`, or None.

        None unless that message completed its stamp's sample (every model joint received
        with that stamp; a robot that publishes its joints in several messages per stamp
        gets its sample with the last of them). Call it right after :meth:`joint_state`
        accepted a message; ``stamp_sec_nsec`` is that message's header stamp as
        ``(sec, nanosec)``.

        ``taken`` is when the caller took the message from its queue, s, on any steady clock
        (the start of the subscription callback; a recording's log time). A message taken less
        than :data:`CATCH_UP_RATIO` of its stamp step after the previous one had been waiting
        (the twin was catching up on a backlog): it is marked ``queued``.

        ``waited`` is how long the twin's input threads (the executor's and the middleware's
        receive threads) waited on a CPU run queue since the previous sample was taken, s
        (:class:`robot_twin.nodes.run_queue.RunQueueWait`; 0 when unknown): the twin was
        starved by its computer, not idle (a thread waiting for input is on no run queue, so a
        late robot makes no such wait). Such a wait puts the twin behind the stream, and it
        stays behind until it takes samples faster than their stamps step: while that lateness
        (never more than the waits) is above :data:`STARVED_WAIT_S`, the samples are marked
        ``queued`` too, the first after the wait and those behind it (the ``taken`` rule
        misses those where a robot that sent late and caught up brought their stamps closer).

        Each sample given out is counted (``joint_states.samples`` of :meth:`counters`), and
        those taken late because the twin was starved (``joint_states.starved``).
        """
        m = self.mapper
        if self._skipped or not self._complete:
            return None
        self._complete = False
        # (NaN marks a joint without velocity; validated values are finite, and finite values
        # never sum to NaN: the sum of the list costs a fifth of np.isnan(...).any())
        velocity = None if math.isnan(sum(m.velocity.tolist())) else m.velocity.copy()
        sec, nanosec = stamp_sec_nsec
        t = sec + nanosec * 1e-9
        queued = False
        if taken is not None:
            last_taken, last_t = self._taken
            stamp_step, taken_step = t - last_t, taken - last_taken
            queued = taken_step < CATCH_UP_RATIO * stamp_step
            self._taken = (taken, t)
            if stamp_step > 0.0:      # (not for the first sample, nor stamps that went back)
                self._behind = max(0.0, self._behind + min(taken_step - stamp_step, waited))
            else:
                self._behind = waited
            if self._behind > STARVED_WAIT_S:
                queued = True
                self.starved += 1
            if queued:
                self.queued += 1
        refused = self.joints.counters['rejected']
        before, self._refused_seen = refused - self._refused_seen, refused
        position = m.position.copy()
        fresh = self._carry_forward(position, t) if self._n_own else None
        if self._any_wrap:
            self._unwrap(position)
        self.samples += 1
        return RobotSample(t, (int(sec), int(nanosec)), position, velocity,
                           m.effort.copy(), before, queued, fresh)

    def _carry_forward(self, position, t):
        """
        Carry the held joints' positions forward to stamp ``t``; return the fresh joints.

        ``position`` (n,) rad is the sample's copy of the latest values, changed in place: a
        joint on a clock of its own moves on by its message's velocity times that message's
        age (a message without velocity: held), never beyond the range the validation accepts
        (the URDF limits widened by their margin). Returns :attr:`RobotSample.fresh`.
        """
        m = self.mapper
        own = np.array(self._own)
        step = m.velocity[own] * (t - m.stamp[own])
        position[own] += np.where(np.isfinite(step), step, 0.0)
        if self._carry_bounds is not None:     # never carried beyond the accepted range
            lo, hi = self._carry_bounds
            position[own] = np.clip(position[own], lo[own], hi[own])
        last = self._sampled_stamps
        fresh = np.ones(self._n, dtype=bool) if last is None else m.stamp != last
        self._sampled_stamps = m.stamp.copy()
        return fresh

    def _unwrap(self, position):
        """Replace the continuous joints' angles in ``position`` by unwrapped ones."""
        angle = position[self._wrap]
        last = self._unwrapped
        if last is not None:
            # the shortest turn from the last angle: a joint does not turn half a revolution
            # between two samples
            angle = last + np.remainder(angle - last + math.pi, 2.0 * math.pi) - math.pi
        position[self._wrap] = angle
        self._unwrapped = angle

    def wrench_sample(self, wrench, stamp, now, nanosec=0, frame_id=None):
        """
        Take one wrench sample (6,); return None if accepted, else the rejection reason.

        ``nanosec`` and ``frame_id``: see :meth:`twin_bridge.validation.WrenchValidator.
        validate`.
        """
        reason = self.wrench.validate(wrench, stamp, now, nanosec, frame_id)
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
        return count_unreadable(self.joints if stream == JOINTS else self.wrench, reason)

    def state_ok(self, now):
        """Whether every watched stream is fresh and every joint has been received."""
        return self.watchdog.all_ok(now) and self.mapper.all_received

    def sync_status(self, now):
        """
        Return ``(level, message)`` of the twin's sync state at local time ``now``, s.

        ``OK`` (``in sync``); ``WARN`` when in sync but some joint never had an effort (no
        residuals), while waiting for joints that have not all arrived, or when the joints
        arrive but no stamp has had them all for ``stale_timeout_s`` (no sample: a joint
        published with stamps of its own); ``ERROR`` when
        messages arrive but every one has been rejected (the dominant cause named); ``STALE``
        when a stream is not fresh, with its cause where one is known: stamps steadily behind
        the local clock (:meth:`~twin_bridge.watchdog.StalenessWatchdog.stamp_lag`; the state
        stays STALE, as its age is unknown), or every message since the last accepted one
        rejected.
        """
        states = self.watchdog.check(now)
        m = self.mapper
        if m.all_received and all(state == OK for state in states.values()):
            if self._incomplete_since and \
                    not now - self._sample_now <= self.watchdog.stale_timeout_s:
                return 'WARN', self._incomplete_text(now)
            no_effort = m.never_received('effort')
            if no_effort:
                return 'WARN', ('in sync, but no residuals: the robot gives no effort for '
                                + ', '.join(no_effort))
            if self._n_own:
                return 'OK', ('in sync (' + ', '.join(self.own_clock_joints) + ' on a clock '
                              'of their own: held between their messages)')
            return 'OK', 'in sync'
        if not m.all_received:
            run = rejection_run(self.joints)
            if run is not None and self.joints.counters['accepted'] == 0:
                count, cause, reason = run
                return 'ERROR', (f'all {self.joints.topic} rejected ({count} messages, '
                                 f'mostly {cause}: {reason})')
            return 'WARN', 'waiting for joints: ' + ', '.join(self.joints.missing_joints(now))
        validators = {JOINTS: self.joints, WRENCH: self.wrench}
        return 'STALE', 'STALE: ' + '; '.join(
            name + self._stale_cause(name, validators[name], now)
            for name, state in states.items() if state != OK)

    def _incomplete_text(self, now):
        """Say that no stamp brought every joint lately, and which joints it lacked."""
        lacked = (self._incomplete_run - self._together.diagonal()).tolist()
        most = max(lacked)
        lacking = [n for n, k in zip(self.mapper.joint_names, lacked) if k and k == most]
        since = ('since the start' if self._sample_now == -math.inf else
                 f'for {now - self._sample_now:.1f} s')
        return (f'no complete joint sample {since}: the last {self._incomplete_since} stamps of '
                f'{self.joints.topic} lacked {", ".join(lacking) or "some joints"} (each '
                'sample takes every joint with one stamp): publish them with the stamp of the '
                'others, or hold them fixed with locked_joints')

    def twin_behind_s(self):
        """
        Return how far the twin's own starvation has put it behind the robot's stream, s.

        As of the last joint sample (see :meth:`sample`: run-queue waits of the twin's input
        threads that it has not caught up on since); 0 when it keeps pace, or when the waits
        are not known. The wrench comes through the same threads and is as far behind.
        """
        return self._behind

    def lag_cause(self, stream, now):
        """
        Return why ``stream``'s stamps steadily lag the local clock, or None when they do not.

        The text names either the twin's own lateness (its computer starves it: the samples
        wait in its queue) or the robot's clock (samples arrive in time, stamped late); see
        :func:`stamps_behind_text`. Returns ``(text, own)``, ``own`` True for the former.

        Both lag the same way. The twin's own lateness is recognized when its measured
        starvation (:meth:`twin_behind_s`) explains at least :data:`OWN_LATENESS_SHARE` of the
        lag, or when it took that share of its samples of the last one to two
        :data:`~twin_bridge.watchdog.LAG_WINDOW_S` from a backlog (marked ``queued`` by
        :meth:`sample`: a twin that keeps pace waits for each sample, one that is behind finds
        the next waiting; this also holds once its input queue has overflowed, where the waits
        no longer add up to the lag). Call it regularly (each status report): the share counts
        from the marks it sets.
        """
        marks = self._queued_marks
        if now - marks[1][0] >= LAG_WINDOW_S:   # the share counts from one to two spans ago
            self._queued_marks = marks = [marks[1], (now, self.samples, self.queued)]
        lag = self.watchdog.stamp_lag(stream, now)
        if lag is None or lag > 1.0e6:
            return None if lag is None else (stamps_behind_text(lag), False)
        _, samples, queued = marks[0]
        taken = self.samples - samples
        backlog = taken > 0 and self.queued - queued >= OWN_LATENESS_SHARE * taken
        behind = self._behind
        if behind >= OWN_LATENESS_SHARE * lag:
            part = 'all' if behind >= lag else f'{behind:.1f} s'
            return stamps_behind_text(lag, f"{part} of it the twin's own lateness"), True
        if backlog:
            return stamps_behind_text(lag, "the twin's own lateness (it takes its samples from "
                                           'a backlog)'), True
        return stamps_behind_text(lag), False

    def _stale_cause(self, stream, validator, now):
        """Return `` (why)`` for a stale stream when the cause is known, else ''."""
        lag = self.lag_cause(stream, now)
        if lag is not None:
            return f' ({lag[0]})'
        run = rejection_run(validator)
        if run is not None:
            count, cause, reason = run
            return (f' (all {count} {validator.topic} messages since the last accepted one '
                    f'rejected, mostly {cause}: {reason})')
        return ''

    def counters(self):
        """
        Return every rejection/acceptance counter, prefixed by stream (dict of int).

        ``joint_states.accepted`` counts messages, ``joint_states.samples`` the samples
        :meth:`sample` gave out (one per stamp, however many messages brought its joints),
        ``joint_states.starved`` those of them taken late because the twin's computer starved
        it (see :meth:`sample`).
        """
        out = self.joints.counters.as_dict('joint_states.')
        out['joint_states.samples'] = self.samples
        out['joint_states.starved'] = self.starved
        out.update(self.assembly.as_dict('joint_states.'))
        out.update(self.wrench.counters.as_dict('wrench.'))
        return out

    def reset(self, now):
        """Forget all stream history (e.g. on /twin/reset)."""
        self.joints.reset()
        self.wrench.reset()
        self.mapper.reset()
        self.watchdog.reset(now)
        self._unwrapped = None
        self.timesync.reset()
        self.latest_wrench = None
        self._refused_seen = 0
        self._taken = (-math.inf, math.nan)
        self.samples = 0
        self.starved = 0
        self._behind = 0.0
        self.queued = 0
        self._queued_marks = [(-math.inf, 0, 0)] * 2
        self._skipped = False
        self.assembly.reset()
        self._reset_assembly()


def stamps_behind_text(lag_s, own=''):
    """
    Say that a stream's stamps lag the local clock by ``lag_s`` s, and what to do.

    ``own``: what of the lag is the twin's own lateness (see :meth:`RobotIntake.lag_cause`),
    '' when the robot's clock (or sim time) is to blame.
    """
    if own:
        return (f'stamps {lag_s:.1f} s behind the local clock, {own}: its computer starves it '
                "of CPU (see joint_states.starved and process.cpu_cores), the robot's clock is "
                'not to blame')
    if lag_s > 1.0e6:        # over 11 days: stamps on another epoch (sim time from 0)
        return (f'stamps {lag_s:.0f} s behind the local clock, sim time?: check use_sim_time, '
                'or synchronize the clocks (chrony/PTP)')
    return (f'stamps {lag_s:.1f} s behind the local clock: synchronize the clocks (chrony/PTP) '
            'or check use_sim_time')
