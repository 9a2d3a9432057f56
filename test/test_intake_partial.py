"""
The intake's samples hold the values of one stamp only: partial messages and bad stamps.

- A message with an empty ``velocity`` or ``effort`` ("not provided") gives a sample without
  them, never the values of an earlier message.
- A robot that publishes its joints in several messages per stamp gets one sample per stamp,
  of that stamp's values only; a stamp that never completes gives no sample, counted.
- A stamp whose ``nanosec`` is 1e9 or more, and a wrench in another frame than the sensor's,
  are refused and counted.

ROS-free except the last tests, which drive :class:`robot_twin.nodes.robot_input.RobotInput`
with serialized messages and a stand-in node (no DDS).
"""
import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from twin_bridge.corrective import AnomalyEvent, CorrectivePolicy
from twin_bridge.intake import OWN_CLOCK_RUN, RobotIntake
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import RobotModel

NAMES = [f'joint{i}' for i in range(1, 8)]
ARM, WRIST = NAMES[:4], NAMES[4:]


def sec_nsec(t):
    ns = round(t * 1e9)
    return ns // 1_000_000_000, ns % 1_000_000_000


def feed(intake, names, position, velocity, effort, t, now=None):
    """One message; return the sample it completed (None if none), fail on a rejection."""
    sec, nanosec = sec_nsec(t)
    reason = intake.joint_state(list(names), position, velocity, effort, t,
                                t + 0.0003 if now is None else now, nanosec)
    assert reason is None, reason
    return intake.sample((sec, nanosec))


# ----------------------------------------------------------------- empty velocity / effort
def test_empty_velocity_and_effort_give_a_sample_without_them_not_the_old_values():
    intake = RobotIntake(NAMES, with_wrench=False)
    q = np.linspace(-0.3, 0.3, 7)
    s = feed(intake, NAMES, q, [1.5] * 7, [40.0] * 7, 1000.0)
    assert s.velocity.tolist() == [1.5] * 7 and s.effort.tolist() == [40.0] * 7
    for k in range(1, 201):                   # the arm at rest, velocity/effort not provided
        s = feed(intake, NAMES, q, [], [], 1000.0 + k * 0.001)
        # before: every sample still carried v = 1.5 rad/s and 40 N·m of the first message
        assert s.velocity is None, s.velocity
        assert np.isnan(s.effort).all(), s.effort
    m = intake.mapper
    assert np.isnan(m.velocity).all() and np.isnan(m.effort).all()
    assert m.never_received('effort') == []        # it did come once (status: not "never")
    # a hold of this arm at rest stays where it is (it planned a 0.375 rad deceleration from
    # 1.5 rad/s): a joint whose velocity is not given is taken as at rest
    proposal = CorrectivePolicy('hold', hold_time_s=0.5).propose(
        AnomalyEvent('ERROR', 'joint1', 'collision', 2.0, 1000.2), m.position, 1000.2,
        m.velocity, (np.full(7, -3.0), np.full(7, 3.0)))
    np.testing.assert_allclose(proposal.positions, q, atol=1e-12)


def test_every_other_message_without_velocity_and_effort():
    intake = RobotIntake(NAMES, with_wrench=False)
    for k in range(20):
        full = k % 2 == 0
        s = feed(intake, NAMES, [0.1 * k] * 7, [0.2 * k] * 7 if full else [],
                 [3.0 + k] * 7 if full else [], 10.0 + 0.001 * k)
        if full:
            assert s.velocity.tolist() == [0.2 * k] * 7 and s.effort.tolist() == [3.0 + k] * 7
        else:
            assert s.velocity is None and np.isnan(s.effort).all()


def test_a_stamp_split_where_one_part_lacks_velocity_and_effort():
    intake = RobotIntake(NAMES, with_wrench=False)
    for k in range(3):
        t = 5.0 + 0.001 * k
        assert feed(intake, ARM, [0.1] * 4, [0.5] * 4, [2.0] * 4, t) is None
        s = feed(intake, WRIST, [0.2] * 3, [], [], t)
        assert s.t == pytest.approx(t) and s.velocity is None
        np.testing.assert_array_equal(s.effort, [2.0] * 4 + [math.nan] * 3)


# ----------------------------------------------------------------- one stamp per sample
@pytest.mark.parametrize('parts', [(ARM, WRIST), (WRIST, ARM),
                                   (NAMES[:2], NAMES[2:5], NAMES[5:])])
def test_a_stamp_published_in_several_messages_gives_one_sample_of_that_stamp(parts):
    intake = RobotIntake(NAMES, with_wrench=False)
    samples = []
    for k in range(5):
        t = 1000.0 + 0.001 * k
        q = np.full(7, 0.001 * k)              # every joint at 0.001 k rad at stamp t
        for i, part in enumerate(parts):
            idx = [NAMES.index(n) for n in part]
            s = feed(intake, part, q[idx], np.zeros(len(idx)), np.ones(len(idx)), t)
            # the sample comes with the message that completes the stamp, not before
            assert (s is not None) == (i == len(parts) - 1)
            if s is not None:
                samples.append(s)
    # before: 9 samples for 5 stamps, the first of each stamp with the wrist of the stamp
    # before (labelled with the new stamp), then the same stamp again
    assert [s.stamp for s in samples] == [sec_nsec(1000.0 + 0.001 * k) for k in range(5)]
    for k, s in enumerate(samples):
        np.testing.assert_array_equal(s.position, np.full(7, 0.001 * k))
    assert intake.counters()['joint_states.incomplete_stamps'] == 0


def test_the_whole_arm_in_one_message_gives_its_sample_at_once():
    intake = RobotIntake(NAMES, with_wrench=False)
    for k in range(5):
        s = feed(intake, NAMES[::-1], [0.01 * k] * 7, [0.0] * 7, [1.0] * 7, 3.0 + 0.001 * k)
        assert s is not None and s.t == pytest.approx(3.0 + 0.001 * k)
    again = feed(intake, NAMES, [0.04] * 7, [0.0] * 7, [1.0] * 7, 3.004)    # the same stamp
    assert again is None                       # one sample per stamp (the mirror dropped it)
    c = intake.counters()
    assert (c['joint_states.repeated_stamps'], c['joint_states.incomplete_stamps'],
            c['joint_states.late_parts']) == (1, 0, 0)


def test_a_stamp_that_does_not_complete_before_the_next_gives_no_sample_counted():
    intake = RobotIntake(NAMES, with_wrench=False)
    t0, dt = 20.0, 0.001
    assert feed(intake, ARM, [0.0] * 4, [0.0] * 4, [1.0] * 4, t0) is None
    assert feed(intake, WRIST, [0.0] * 3, [0.0] * 3, [1.0] * 3, t0) is not None
    # stamp t0+dt: the wrist message comes late, after the arm of the stamp after
    assert feed(intake, ARM, [1.0] * 4, [0.0] * 4, [1.0] * 4, t0 + dt) is None
    assert feed(intake, ARM, [2.0] * 4, [0.0] * 4, [1.0] * 4, t0 + 2 * dt) is None
    assert feed(intake, WRIST, [1.0] * 3, [0.0] * 3, [1.0] * 3, t0 + dt) is None   # late
    s = feed(intake, WRIST, [2.0] * 3, [0.0] * 3, [1.0] * 3, t0 + 2 * dt)
    assert s.t == pytest.approx(t0 + 2 * dt)
    np.testing.assert_array_equal(s.position, [2.0] * 7)       # all of one stamp
    c = intake.counters()
    assert (c['joint_states.incomplete_stamps'], c['joint_states.late_parts']) == (1, 1)
    assert c['joint_states.accepted'] == 6 and c['joint_states.rejected'] == 0
    assert c['joint_states.samples'] == 2       # messages accepted, samples given out
    # a message of the same stamp that adds nothing new: counted, no second sample
    assert feed(intake, WRIST, [2.0] * 3, [0.0] * 3, [1.0] * 3, t0 + 2 * dt) is None
    c = intake.counters()
    assert (c['joint_states.repeated_stamps'], c['joint_states.samples']) == (1, 2)
    intake.reset(30.0)
    c = intake.counters()
    assert (c['joint_states.incomplete_stamps'], c['joint_states.samples']) == (0, 0)


def test_joints_on_a_clock_of_their_own_are_held_and_named_in_the_status():
    # a wrist driver with stamps (and a rate) of its own on the same topic: no stamp is ever
    # complete; after OWN_CLOCK_RUN such stamps the wrist joints are held between their own
    # messages, the arm's stamps give samples, and the status names the held joints
    intake = RobotIntake(NAMES, with_wrench=False, stale_timeout_s=0.1)
    out = []
    for k in range(400):
        t = 50.0 + 0.001 * k
        s = feed(intake, ARM, [0.001 * k] * 4, [0.0] * 4, [1.0] * 4, t)
        if s is not None:
            out.append(s)
        if k % 20 == 5:
            assert feed(intake, WRIST, [0.01 * k] * 3, [0.0] * 3, [1.0] * 3, t + 0.0004,
                        now=t + 0.0007) is None
    # the wrist first came at k = 5; from the stamp after the tenth incomplete one (counted
    # from the start), every arm stamp is a sample
    first = round((out[0].t - 50.0) * 1000)
    assert 6 <= first <= 5 + OWN_CLOCK_RUN + 1
    assert [s.t for s in out] == pytest.approx([50.0 + 0.001 * k for k in range(first, 400)])
    for s in out:                       # the arm's values of its stamp, the wrist's latest
        k = round((s.t - 50.0) * 1000)
        np.testing.assert_allclose(s.position[:4], 0.001 * k)
        np.testing.assert_allclose(s.position[4:], 0.01 * (k - (k - 6) % 20 - 1))
    c = intake.counters()
    assert c['joint_states.own_clock_parts'] == 19
    assert intake.own_clock_joints == ['joint5', 'joint6', 'joint7']
    level, message = intake.sync_status(50.4)
    assert level == 'OK' and 'joint5, joint6, joint7 on a clock of their own' in message
    # the wrist driver stops: held for OWN_CLOCK_STALE_S, then the samples wait for it again,
    # and the status says what is lacking
    got = 0
    for k in range(400, 2000):
        t = 50.0 + 0.001 * k
        got += feed(intake, ARM, [0.0] * 4, [0.0] * 4, [1.0] * 4, t) is not None
    # (the wrist's last stamp was 50.3854: held for the arm stamps up to 51.3854)
    assert 985 <= got <= 987
    level, message = intake.sync_status(52.0)
    assert level == 'WARN', message
    assert 'lacked joint5, joint6, joint7' in message and 'locked_joints' in message
    # once the robot stamps them together, samples come and the status is back to normal
    for k in range(2000, 2010):
        t = 50.0 + 0.001 * k
        feed(intake, ARM, [0.0] * 4, [0.0] * 4, [1.0] * 4, t)
        assert feed(intake, WRIST, [0.0] * 3, [0.0] * 3, [1.0] * 3, t) is not None
    assert intake.sync_status(52.01) == ('OK', 'in sync')


# ----------------------------------------------------------------- groups on clocks of their own
def _two_drivers(intake, arm, other, n_arm_stamps, every=1, offset_s=0.0012345,
                 other_first=False):
    """
    Stream ``arm`` at 500 Hz and ``other`` every ``every``-th arm period, ``offset_s`` later.

    Joint j reads ``t + 0.01 j`` at stamp t. Return the samples, in order, each with the stamp
    of the latest message of ``other`` fed before it.
    """
    out, latest_other = [], None
    for k in range(n_arm_stamps):
        t = 200.0 + 0.002 * k
        messages = [(arm, t)]
        if k % every == 0:
            messages.append((other, t + offset_s))
        if other_first:
            messages.reverse()
        for part, stamp in messages:
            idx = [NAMES.index(n) for n in part]
            s = feed(intake, part, [stamp + 0.01 * i for i in idx], [0.0] * len(idx),
                     [1.0] * len(idx), stamp, now=stamp + 0.0003)
            if part is other:
                latest_other = stamp
            if s is not None:
                out.append((s, latest_other))
    return out


@pytest.mark.parametrize('every', [2, 3, 4])
def test_a_joint_on_its_own_slower_clock_is_held_at_any_rate(every):
    # joint1-6 at 500 Hz, joint7 from its own driver at 1/2, 1/3, 1/4 of that rate with its
    # own stamps (bags js_own_clock_div2/3/4). Before: at 1/2 and 1/3 no sample at all, as
    # joint7's own stamps (1/3 and 1/4 of the incomplete ones) counted as stamps that had it
    intake = RobotIntake(NAMES, with_wrench=False)
    out = _two_drivers(intake, NAMES[:6], NAMES[6:], 300, every)
    assert intake.own_clock_joints == ['joint7']
    first = round((out[0][0].t - 200.0) / 0.002)
    assert first <= OWN_CLOCK_RUN + 1
    # then every arm stamp gives its sample: the arm's values of that stamp, joint7's latest
    assert [s.stamp for s, _ in out] == [sec_nsec(200.0 + 0.002 * k) for k in range(first, 300)]
    for s, held in out:
        np.testing.assert_allclose(s.position[:6], s.t + 0.01 * np.arange(6), atol=1e-9)
        assert s.position[6] == pytest.approx(held + 0.06, abs=1e-9)
        assert s.t - 0.002 * every < held < s.t
    # joint7's messages: own-clock parts from the one that showed its clock on
    c = intake.counters()
    after_first = len(range(first + (-first) % every, 300, every))
    assert after_first <= c['joint_states.own_clock_parts'] <= after_first + 1
    assert (c['joint_states.repeated_stamps'], c['joint_states.late_parts']) == (0, 0)
    assert intake.sync_status(200.6) == (
        'OK', 'in sync (joint7 on a clock of their own: held between their messages)')


@pytest.mark.parametrize('other_first', [False, True])
@pytest.mark.parametrize('offset_s', [0.0002, -0.0002, 0.001])
def test_two_groups_at_one_rate_on_stamps_apart_hold_the_smaller_group(offset_s, other_first):
    # joint1-4 and joint5-7 from two drivers at the same rate, stamps a fraction of a period
    # apart (bag js_split_offset: 0.2 ms). Before: no sample at all (each group lacked in 50 %
    # of the stamps), or joint1-4 held when their messages came after joint5-7's newer ones.
    # A sample never mixes stamps silently: the group with more joints is the arm, whose
    # stamps the samples carry; the other is held between its messages as on a clock of its
    # own (named in the status), whichever stamps first and whichever message comes first
    intake = RobotIntake(NAMES, with_wrench=False)
    out = _two_drivers(intake, ARM, WRIST, 300, 1, offset_s, other_first)
    assert intake.own_clock_joints == WRIST
    first = round((out[0][0].t - 200.0) / 0.002)
    assert first <= 2 * OWN_CLOCK_RUN + 2
    assert [s.stamp for s, _ in out] == [sec_nsec(200.0 + 0.002 * k) for k in range(first, 300)]
    for s, held in out:
        np.testing.assert_allclose(s.position[:4], s.t + 0.01 * np.arange(4), atol=1e-9)
        # the wrist's latest message: at most a period and the offset away from the arm's
        np.testing.assert_allclose(s.position[4:], held + 0.01 * np.arange(4, 7), atol=1e-9)
        assert abs(s.t - held) <= 0.002 + abs(offset_s) + 1e-9
    c = intake.counters()
    assert abs(c['joint_states.own_clock_parts'] - (300 - first)) <= 1   # (which came first)
    assert c['joint_states.repeated_stamps'] == 0
    level, message = intake.sync_status(200.6)
    assert level == 'OK' and 'joint5, joint6, joint7 on a clock of their own' in message
    # the wrist driver stops: held for OWN_CLOCK_STALE_S, then the samples wait for it again
    # and the status names it (before: now and then OK again, the stale wrist held anew)
    for k in range(300, 1000):
        t = 200.0 + 0.002 * k
        feed(intake, ARM, [0.0] * 4, [0.0] * 4, [1.0] * 4, t)
        if k >= 900:
            level, message = intake.sync_status(t + 0.001)
            assert level == 'WARN' and 'lacked joint5, joint6, joint7' in message, message
    assert intake.own_clock_joints == []


def test_a_gripper_driver_faster_than_the_arm_is_held_not_taken_for_the_arm():
    # joint1-5 at 500 Hz, a two-finger gripper (joint6-7) at 1 kHz on stamps of its own: the
    # samples carry the arm's stamps and hold the gripper between its messages (taking the
    # faster group for the arm would hold the five arm joints instead, up to 2 ms old)
    intake = RobotIntake(NAMES, with_wrench=False)
    arm, gripper = NAMES[:5], NAMES[5:]
    samples = []
    for k in range(300):
        t = 400.0 + 0.002 * k
        for part, stamp in ((gripper, t - 0.0007), (arm, t), (gripper, t + 0.0003)):
            idx = [NAMES.index(n) for n in part]
            s = feed(intake, part, [stamp + 0.01 * i for i in idx], [0.0] * len(idx),
                     [1.0] * len(idx), stamp, now=stamp + 0.0003)
            if s is not None:
                samples.append(s)
    assert intake.own_clock_joints == gripper
    assert len(samples) > 250
    for s in samples:
        assert round((s.t - 400.0) / 0.002, 6).is_integer()      # the arm's stamps
        np.testing.assert_allclose(s.position[:5], s.t + 0.01 * np.arange(5), atol=1e-9)


def test_two_groups_on_the_same_stamps_are_merged_exactly_never_held():
    # the same two drivers on one clock (the same stamps): each stamp merged exactly, also
    # with a wrist message lost now and then; no joint held
    intake = RobotIntake(NAMES, with_wrench=False)
    samples = []
    for k in range(600):
        t = 300.0 + 0.002 * k
        for part in (ARM, WRIST) if k % 2 else (WRIST, ARM):
            if part == WRIST and k % 7 == 3:
                continue                        # lost: this stamp gives no sample
            idx = [NAMES.index(n) for n in part]
            s = feed(intake, part, [t + 0.01 * i for i in idx], [0.0] * len(idx),
                     [1.0] * len(idx), t)
            if s is not None:
                samples.append(s)
    assert [s.stamp for s in samples] == [sec_nsec(300.0 + 0.002 * k)
                                          for k in range(600) if k % 7 != 3]
    for s in samples:
        np.testing.assert_allclose(s.position, s.t + 0.01 * np.arange(7), atol=1e-9)
    c = intake.counters()
    assert (c['joint_states.own_clock_parts'], c['joint_states.incomplete_stamps']) == \
        (0, len(range(3, 600, 7)))
    assert intake.own_clock_joints == [] and intake.sync_status(301.2) == ('OK', 'in sync')


@pytest.mark.parametrize('every', [5, 10, 20])
def test_a_group_on_the_arms_clock_at_a_fifth_of_its_rate_or_less_is_held(every):
    # two broadcasters of one controller manager: the arm at 500 Hz, the gripper at 1/5,
    # 1/10, 1/20 of it, stamped with the same loop time: the gripper's stamps are every
    # n-th of the arm's, and those complete. Before: at 1/5 and 1/10 samples only at the
    # gripper's rate (each complete stamp started the reading of the incomplete ones over)
    intake = RobotIntake(NAMES, with_wrench=False)
    out = _two_drivers(intake, NAMES[:5], NAMES[5:], 300, every, offset_s=0.0)
    assert intake.own_clock_joints == ['joint6', 'joint7']
    stamps = [round((s.t - 200.0) / 0.002) for s, _ in out]
    # held once the tenth incomplete stamp is counted, as the next stamp starts: from then
    # on every arm stamp gives its sample
    first = OWN_CLOCK_RUN + 1 + (OWN_CLOCK_RUN - 1) // (every - 1)
    assert stamps == list(range(0, first, every)) + list(range(first, 300))
    for s, gripper in out:
        np.testing.assert_allclose(s.position[:5], s.t + 0.01 * np.arange(5), atol=1e-9)
        np.testing.assert_allclose(s.position[5:], gripper + 0.01 * np.arange(5, 7),
                                   atol=1e-9)
        # (at its own stamps the gripper comes after the arm: the sample holds the one before)
        assert s.t - 0.002 * every - 1e-9 <= gripper <= s.t
    assert intake.sync_status(200.6)[0] == 'OK'


def test_a_group_on_the_arms_clock_at_half_its_rate_is_merged_at_its_rate():
    # at 1/2 (as for a message lost every other stamp) the group is not held: a sample
    # per stamp that has every joint, the others counted incomplete
    intake = RobotIntake(NAMES, with_wrench=False)
    out = _two_drivers(intake, NAMES[:5], NAMES[5:], 300, 2, offset_s=0.0)
    assert intake.own_clock_joints == []
    assert [round((s.t - 200.0) / 0.002) for s, _ in out] == list(range(0, 300, 2))
    for s, _ in out:
        np.testing.assert_allclose(s.position, s.t + 0.01 * np.arange(7), atol=1e-9)
    assert intake.counters()['joint_states.incomplete_stamps'] == 149


def test_split_messages_after_a_clock_step_back_still_give_samples():
    intake = RobotIntake(NAMES, with_wrench=False, max_future_s=None)
    out = []
    for k in range(1200):                       # the robot's clock steps back 100 s at k = 600
        t = (1000.0 if k < 600 else 900.0) + 0.001 * k
        now = 2000.0 + 0.001 * k
        for part in (ARM, WRIST):
            sec, nanosec = sec_nsec(t)
            if intake.joint_state(part, [0.0] * len(part), [0.0] * len(part),
                                  [1.0] * len(part), t, now, nanosec) is None:
                s = intake.sample((sec, nanosec))
                if s is not None:
                    out.append(s.t)
    assert intake.counters()['joint_states.clock_resync'] == 1
    # 600 before the step; after it, the validator follows the new clock after resync_s
    # (0.5 s of samples), then every stamp gives its sample again
    assert out[599] == pytest.approx(1000.599) and len(out) > 650
    assert out[-1] == pytest.approx(900.0 + 1.199)


def test_split_messages_give_the_mirror_the_same_residuals_as_one_message():
    # before: the finger residuals of a split arm were 6-7x those of the same arm in one
    # message (mixed-stamp samples, then the second part of each stamp replacing it)
    model = RobotModel.from_urdf(builtin_urdf())
    names = list(model.joint_names)
    predictor = Predictor(model)
    lo, hi = model.lower, model.upper
    c, a = 0.5 * (lo + hi), 0.15 * (hi - lo)
    w = 2 * math.pi * (np.arange(7) % 4 + 2) / 8

    def run(parts):
        intake, mirror, out = RobotIntake(names, with_wrench=False), Mirror(Predictor(model)), []
        for k in range(600):
            t = 100.0 + k / 500.0
            q, qd, qdd = c + a * np.sin(w * t), a * w * np.cos(w * t), -a * w * w * np.sin(w * t)
            e = predictor.predict(q, qd, qdd).effort
            for part in parts:
                idx = [names.index(n) for n in part]
                s = feed(intake, part, q[idx], qd[idx], e[idx], t)
                if s is not None:
                    r = mirror.update(s.t, s.position, s.velocity, s.effort)
                    if r is not None:
                        out.append((s.t, r.effort_residual))
        return out

    whole, split = run([names]), run([names[:4], names[4:]])
    assert len(whole) == len(split) == 599
    for (t1, r1), (t2, r2) in zip(whole, split):
        assert t1 == t2
        np.testing.assert_array_equal(r1, r2)


def _lossy_stream(stamps):
    """
    Feed one driver's stamps split, delayed and lost as drawn; return what came out.

    ``stamps``: per stamp k, ``(order, cuts, delay, lost)``: the seven joints in ``order``,
    cut into two or three messages (``cuts`` 1-3); the last message comes after the first
    messages of the next ``delay`` stamps, or never if ``lost``. Joint j reads ``k + 0.01 j``
    at stamp k, without velocity. Returns ``(intake, samples, whole, n_messages)``: samples
    as ``(k, position, held, latest)``, ``held`` (7,) bool the joints the intake held as on a
    clock of their own at that sample, ``latest`` (7,) the values of each joint's latest
    message by then; ``whole``: the stamps whose messages all came before the next stamp's.
    """
    intake = RobotIntake(NAMES, with_wrench=False, max_future_s=None)
    messages, whole = [], set()
    for k, (order, cuts, delay, lost) in enumerate(stamps):
        bounds = sorted({0, 7, *[min(7, 1 + (c * 3) % 7) for c in range(cuts)]})
        parts = [order[a:b] for a, b in zip(bounds, bounds[1:])]
        if not delay and not (lost and len(parts) > 1):
            whole.add(k)                    # all its parts come before the next stamp's
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last and lost and len(parts) > 1:
                continue
            messages.append((k + (delay + 0.5 if last else 0.0), k, part))
    messages.sort(key=lambda m: m[0])
    samples, latest = [], np.full(7, np.nan)
    for _order, k, part in messages:
        t = 100.0 + 0.001 * k
        sec, nanosec = sec_nsec(t)
        values = [k + 0.01 * j for j in part]
        if intake.joint_state([NAMES[j] for j in part], values, [], [], t, t + 0.01,
                              nanosec) is None:
            latest[list(part)] = values
            s = intake.sample((sec, nanosec))
            if s is not None:
                held = np.isin(NAMES, intake.own_clock_joints)
                samples.append((k, s.position, held, latest.copy()))
    return intake, samples, whole, len(messages)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.permutations(range(7)), st.integers(1, 3), st.integers(0, 3),
                          st.booleans()), min_size=1, max_size=40))
def test_random_splits_delays_and_losses_never_mix_stamps(stamps):
    # each stamp k: the joints in random order, cut into up to 3 messages; the last one may
    # be delayed past the next stamps' messages, or lost. Every sample holds its own stamp's
    # values, but for joints the intake announced as on a clock of their own (named in the
    # status, see the next test for how rarely a stream of one driver shows one): those
    # hold their latest message's value
    intake, samples, whole, n_messages = _lossy_stream(stamps)
    emitted = [k for k, *_ in samples]
    assert emitted == sorted(set(emitted))              # one sample per stamp, in order
    assert whole <= set(emitted)                        # every complete stamp has its sample
    for k, position, held, latest in samples:
        expected = np.where(held, latest, k + 0.01 * np.arange(7))
        np.testing.assert_allclose(position, expected, atol=1e-12)
    c = intake.counters()
    assert c['joint_states.accepted'] + c['joint_states.rejected'] == n_messages


LOST_LAST_PARTS = [
    [[0, 6, 1, 2, 4, 5, 3], 3, 1, True], [[0, 2, 4, 1, 5, 3, 6], 3, 1, True],
    [[5, 2, 4, 6, 1, 3, 0], 2, 3, True], [[1, 3, 5, 2, 4, 6, 0], 3, 0, True],
    [[3, 5, 1, 0, 6, 4, 2], 3, 3, False], [[1, 0, 2, 4, 3, 5, 6], 2, 3, True],
    [[3, 2, 5, 6, 0, 1, 4], 3, 3, False], [[3, 6, 2, 0, 4, 5, 1], 2, 0, True],
    [[2, 0, 3, 4, 1, 5, 6], 1, 0, True], [[0, 2, 5, 4, 3, 6, 1], 3, 1, True],
    [[5, 0, 6, 4, 1, 3, 2], 3, 1, True], [[4, 2, 1, 5, 6, 3, 0], 2, 2, True],
    [[0, 5, 1, 6, 2, 3, 4], 3, 1, False], [[6, 4, 1, 5, 0, 2, 3], 1, 2, False]]
"""A clean clone's draw of the property test above, shrunk: joint7 is in the lost or delayed
last message of most stamps. It was taken for a joint on a clock of its own, held, and the
sample of stamp 12 came out with joint7's value of stamp 13 (its message came before stamp
12's delayed last part)."""


def test_a_joint_lost_with_the_last_parts_is_not_taken_for_a_clock_of_its_own():
    intake, samples, whole, _ = _lossy_stream(LOST_LAST_PARTS)
    assert intake.own_clock_joints == []
    # (12: its delayed last part came after stamp 13 had started, so 12 gives no sample; 13:
    # the last stamp, its delayed part completes it)
    assert not whole and [k for k, *_ in samples] == [13]
    for k, position, _held, _latest in samples:
        np.testing.assert_allclose(position, k + 0.01 * np.arange(7), atol=1e-12)
    # and over many such streams (drawn as the property test draws them, fixed seed): a
    # joint of a lossy driver's stamps is held in about one stream in a thousand (152 of
    # 160,000 in a scratch run; 11 % of them before, when lacking in most incomplete stamps
    # was enough). A held joint must not have come with the others: a stream of one driver
    # shows that only when a joint's messages were lost or late in most of its stamps (as
    # for a group on the arm's clock at a fifth of its rate) or came alone in stamps whose
    # other messages were all lost
    rng, taken = np.random.default_rng(7), 0
    for _ in range(2000):
        draw = [(list(rng.permutation(7)), int(rng.integers(1, 4)), int(rng.integers(0, 4)),
                 bool(rng.integers(0, 2))) for _ in range(int(rng.integers(1, 41)))]
        taken += bool(_lossy_stream(draw)[0].own_clock_joints)
    assert taken <= 6                                   # (3 with this seed)


# ----------------------------------------------------------------- stamps and frames
def test_a_nanosec_of_a_second_or_more_is_refused_as_malformed():
    intake = RobotIntake(NAMES, with_wrench=True)
    r = intake.joint_state(NAMES, [0.0] * 7, [], [], 1000.01, 1000.0105, 1_010_000_000)
    assert r is not None and 'not a valid builtin_interfaces/Time' in r
    assert intake.sample((999, 1_010_000_000)) is None
    r = intake.wrench_sample([0.0] * 6, 1000.02, 1000.0205, 1_020_000_000)
    assert r is not None and 'nanosec' in r
    c = intake.counters()
    assert (c['joint_states.malformed'], c['wrench.malformed']) == (1, 1)
    assert c['joint_states.accepted'] == c['wrench.accepted'] == 0


def test_a_wrench_in_another_frame_is_refused_and_counted():
    intake = RobotIntake(NAMES, with_wrench=True, wrench_frame='ft_sensor')
    assert intake.wrench_sample([0.0] * 6, 1.0, 1.0, 0, None) is None
    assert intake.wrench_sample([0.0] * 6, 1.001, 1.001, 1_000_000, '') is None
    r = intake.wrench_sample([0.0, 0.0, 50.0, 0.0, 0.0, 0.0], 1.002, 1.002, 2_000_000,
                             'base_link')
    assert r is not None and "'base_link'" in r and "'ft_sensor'" in r
    assert intake.latest_wrench.tolist() == [0.0] * 6         # not taken
    assert intake.counters()['wrench.wrong_frame'] == 1
    unchecked = RobotIntake(NAMES, with_wrench=True)    # no sensor frame: frames not checked
    assert unchecked.wrench_sample([0.0] * 6, 1.003, 1.003, 3_000_000, 'base_link') is None


# ----------------------------------------------------------------- through the node's reader
class _Logger:

    def __init__(self):
        self.lines = []

    def warning(self, text):
        self.lines.append(text)


class _Param:

    value = False


class _Node:
    """What RobotInput uses of an rclpy node, without DDS."""

    def __init__(self):
        self.logger = _Logger()

    def get_clock(self):
        return None

    def get_parameter(self, _name):
        return _Param()

    def create_subscription(self, *_args, **_kwargs):
        return None

    def get_logger(self):
        return self.logger


@pytest.fixture
def robot_input():
    pytest.importorskip('rclpy')
    from robot_twin.nodes.robot_input import RobotInput
    model = RobotModel.from_urdf(builtin_urdf())
    params = {'joint_states_topic': '/joint_states', 'wrench_topic': '/ft_sensor/wrench',
              'ft_sensor_link': '', 'unknown_joints': 'reject', 'max_future_s': 0.1,
              'position_margin_rad': 0.1, 'position_margin_m': 0.01, 'velocity_factor': 1.5,
              'effort_factor': 2.0, 'wrench_force_range_n': 1000.0,
              'wrench_torque_range_nm': 100.0, 'stale_timeout_s': 0.1}
    inp = RobotInput(_Node(), model, params)
    samples, wrenches = [], []
    inp.sample_listeners.append(samples.append)
    inp.wrench_listeners.append(lambda t, stamp, w: wrenches.append(stamp))
    return inp, model, samples, wrenches


def _joint_bytes(names, q, stamp):
    from rclpy.serialization import serialize_message
    from sensor_msgs.msg import JointState
    msg = JointState()
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.name, msg.position = list(names), [float(x) for x in q]
    msg.velocity, msg.effort = [0.0] * len(names), [1.0] * len(names)
    return serialize_message(msg)


def _wrench_bytes(frame, stamp):
    from geometry_msgs.msg import WrenchStamped
    from rclpy.serialization import serialize_message
    msg = WrenchStamped()
    msg.header.stamp.sec, msg.header.stamp.nanosec = stamp
    msg.header.frame_id = frame
    msg.wrench.force.z = 50.0
    return serialize_message(msg)


def _now_stamp(offset_s=0.0):
    import time
    return sec_nsec(round(time.time() - 0.01 + offset_s, 6))


def test_the_node_refuses_a_nanosec_overflow_and_merges_split_messages(robot_input):
    inp, model, samples, _ = robot_input
    names = list(model.joint_names)
    sec, nanosec = _now_stamp(-0.005)
    # (sec - 1, nanosec + 1e9) is the same float time: refused, no sample, counted
    inp.on_joint_state(_joint_bytes(names, [0.0] * 7, (sec - 1, nanosec + 1_000_000_000)))
    assert samples == [] and inp.intake.counters()['joint_states.malformed'] == 1
    assert 'builtin_interfaces/Time' in inp.node.logger.lines[-1]
    for k, part in enumerate((names[:4], names[4:])):
        inp.on_joint_state(_joint_bytes(part, [0.1] * len(part), (sec, nanosec)))
        assert len(samples) == k                  # the sample comes with the second part
    assert samples[0].stamp == (sec, nanosec) and samples[0].position.tolist() == [0.1] * 7


def test_the_node_refuses_a_wrench_in_another_frame(robot_input):
    inp, model, _, wrenches = robot_input
    assert model.ft_frame == 'ft_sensor'
    stamps = [_now_stamp(-0.008 + 0.001 * k) for k in range(6)]
    for frame, stamp in zip(('ft_sensor', '', 'base_link'), stamps):
        inp.on_wrench(_wrench_bytes(frame, stamp))
    # the same through rclpy's deserialization (encodings the fast reader leaves to rclpy)
    inp._wrench.read_framed = lambda _data: None
    for frame, stamp in zip(('ft_sensor', '', 'base_link'), stamps[3:]):
        inp.on_wrench(_wrench_bytes(frame, stamp))
    assert wrenches == [stamps[0], stamps[1], stamps[3], stamps[4]]
    c = inp.intake.counters()
    assert (c['wrench.wrong_frame'], c['wrench.accepted'], c['wrench.rejected']) == (2, 4, 2)
    assert "wrench frame_id 'base_link'" in inp.node.logger.lines[0]
