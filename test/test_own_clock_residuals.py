"""
Joints on a clock of their own, held between their messages: residuals and stream checks.

A gripper (joint6-7 of the built-in arm) published by a driver of its own at a half or a third
of the arm's 1 kHz, on stamps of its own. The intake holds those joints for the arm's samples.
Held as they came, their positions stood still and then stepped once per message: the mirror
read the steps as position residuals 1.8-2.7x those of the same stream sent whole, and the stream
checks took them (and the held effort's equal values) for the joints' noise, which hid a noisy
gripper sensor and set the flat-effort check on half the effort's noise. Now a held position is
carried forward by its message's velocity, and the checks judge a held joint on its own
readings (``RobotSample.fresh``). ROS-free: intake, mirror and stream checks.
"""
import numpy as np
import pytest

from twin_anomaly.sensor_checks import SensorChecks
from twin_bridge.intake import RobotIntake
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from twin_sim.resources import builtin_urdf
from twin_sim.trajectory import DemoMotion
from twin_sim.urdf_model import RobotModel

MODEL = RobotModel.from_urdf(builtin_urdf())
NAMES = list(MODEL.joint_names)
ARM, GRIPPER = [0, 1, 2, 3, 4], [5, 6]
T0 = 1_796_371_200.0
NOISE = (1e-4, 1e-3, 0.05)
"""White sensor noise of position, velocity and effort (rad, rad/s, N·m), as the fault runs'."""
OFFSET_S = 2.5e-4
"""The gripper driver stamps this long after the arm's stamp of the same period."""
MOTION = DemoMotion.from_model(MODEL, center=[0.0, 0.5, 0.0, -1.0, 0.0, 0.6, 0.0],
                               fraction=0.3, period_s=3.0, fade_in_s=0.5)
PREDICTOR = Predictor(MODEL)


def reading(t, rng):
    """Return ``(q, qd, effort)`` (7,) of the moving arm at stamp ``t``, s, as read (noisy)."""
    q, qd, qdd = MOTION.sample(t - T0)
    effort = PREDICTOR.predict(q, qd, qdd).effort
    return (q + NOISE[0] * rng.standard_normal(7), qd + NOISE[1] * rng.standard_normal(7),
            effort + NOISE[2] * rng.standard_normal(7))


def messages(every, seconds, fault=None, seed=0):
    """
    Yield ``(joints, q, qd, effort, stamp)`` of a consistent 1 kHz motion, in arrival order.

    ``every``: None, all joints in one message; else the gripper in messages of its own every
    ``every``-th arm period, stamped ``OFFSET_S`` after the arm. ``fault``: ``('freeze',
    start_s)`` (the gripper driver sends its last reading again) or ``('noise', start_s)``
    (5e-4 rad more position noise on the gripper joints).
    """
    arm_rng, gripper_rng = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    fault_rng = np.random.default_rng(seed + 2)
    last = None
    for k in range(int(seconds * 1000)):
        t = T0 + k * 1e-3
        q, qd, effort = reading(t, arm_rng)
        if every is None:
            yield list(range(7)), q, qd, effort, t
            continue
        yield ARM, q[ARM], qd[ARM], effort[ARM], t
        if k % every == 0:
            stamp = t + OFFSET_S
            q, qd, effort = (v[GRIPPER] for v in reading(stamp, gripper_rng))
            if fault is not None and stamp - T0 >= fault[1]:
                if fault[0] == 'freeze':
                    q, qd, effort = last
                else:
                    q = q + 5e-4 * fault_rng.standard_normal(len(GRIPPER))
            last = q, qd, effort
            yield GRIPPER, q, qd, effort, stamp


def samples(every, seconds, fault=None, seed=0):
    """Yield the intake's samples of :func:`messages` (the joints named by model index)."""
    intake = RobotIntake(NAMES, with_wrench=False)
    for joints, q, qd, effort, stamp in messages(every, seconds, fault, seed):
        ns = int(round(stamp * 1e9))
        sec, nanosec = divmod(ns, 1_000_000_000)
        reason = intake.joint_state([NAMES[i] for i in joints], q, qd, effort,
                                    sec + nanosec * 1e-9, stamp + 3e-4, nanosec)
        assert reason is None, reason
        sample = intake.sample((sec, nanosec))
        if sample is not None:
            yield sample
    if every is not None:
        assert intake.own_clock_joints == [NAMES[i] for i in GRIPPER]


def residual_rms(every, seconds=3.0, settle_s=0.5):
    """Return the mirror's RMS position, velocity and effort residuals, (3, 7)."""
    mirror, out = Mirror(Predictor(MODEL)), []
    for s in samples(every, seconds):
        mirrored, result = mirror.guarded_update(s.t, s.position, s.velocity, s.effort)
        if result is not None and s.t - T0 >= settle_s:
            out.append((result.position_residual, result.velocity_residual,
                        result.effort_residual))
    return np.sqrt((np.array(out) ** 2).mean(axis=0))


@pytest.fixture(scope='module')
def whole():
    """Return the residuals of the same stream with every joint in one message."""
    return residual_rms(None)


@pytest.mark.parametrize('every', [2, 3])
def test_held_joints_residuals_are_those_of_the_stream_sent_whole(whole, every):
    held = residual_rms(every)
    # before: the gripper's position residuals 1.8-2.0x (every 2nd period) and 2.4-2.7x
    # (every 3rd) those of the stream sent whole; now 0.6-0.8x (a carried position holds one
    # reading's noise for `every` samples)
    position, velocity, effort = held / whole
    assert (position[GRIPPER] <= 1.2).all(), position
    assert (velocity[GRIPPER] <= 1.25).all(), velocity
    # the arm's own residuals are not disturbed by the gripper's clock
    np.testing.assert_allclose(held[:, ARM], whole[:, ARM], rtol=0.05)
    # (a held effort is one reading for `every` samples: low-passed alike, its noise is that
    # of fewer readings, about sqrt(every) x; not a bias)
    assert (effort[GRIPPER] <= 1.2 * np.sqrt(every)).all(), effort


def test_a_held_joint_is_carried_forward_by_its_velocity_and_marked_not_fresh():
    intake = RobotIntake(NAMES, with_wrench=False)
    taken = []
    for k in range(60):
        t = 100.0 + 0.001 * k
        # joint j at 0.1 j + 0.5 (t - 100) rad, 0.5 rad/s, effort j N·m; the gripper every
        # third period, stamped 0.25 ms after the arm
        parts = [(ARM, t)] + ([(GRIPPER, t + OFFSET_S)] if k % 3 == 0 else [])
        for joints, stamp in parts:
            q = [0.1 * j + 0.5 * (stamp - 100.0) for j in joints]
            velocity = [] if k >= 45 and joints == GRIPPER else [0.5] * len(joints)
            assert intake.joint_state([NAMES[j] for j in joints], q, velocity,
                                      [float(j) for j in joints], stamp, stamp + 3e-4) is None
            s = intake.sample(divmod(round(stamp * 1e9), 1_000_000_000))
            if s is not None:
                taken.append((k, s))
    held = [(k, s) for k, s in taken if s.fresh is not None]
    assert len(held) > 40 and intake.own_clock_joints == ['joint6', 'joint7']
    for k, s in held[1:]:
        # the gripper's latest message: its message of period k comes after the arm's
        message = k - (k - 1) % 3 - 1
        assert s.fresh.tolist() == [True] * 5 + [k == message + 1] * 2
        np.testing.assert_array_equal(s.effort, np.arange(7.0))
        if message < 45:
            # before: 0.1 j + 0.5 (its message's stamp - 100), a step once per message
            np.testing.assert_allclose(s.position, 0.1 * np.arange(7) + 0.5 * (s.t - 100.0),
                                       rtol=0, atol=1e-12)
            assert s.velocity.tolist() == [0.5] * 7
        else:                                   # a message without velocity: held as it came
            np.testing.assert_allclose(
                s.position[GRIPPER], 0.1 * np.array(GRIPPER) + 0.5 * (0.001 * message
                                                                      + OFFSET_S), atol=1e-12)
            assert s.velocity is None
    # a robot that publishes every joint with one stamp: no joint held, nothing to mark
    whole = RobotIntake(NAMES, with_wrench=False)
    assert whole.joint_state(NAMES, [0.0] * 7, [0.0] * 7, [0.0] * 7, 5.0, 5.0) is None
    assert whole.sample((5, 0)).fresh is None


def test_a_held_joint_is_never_carried_beyond_the_accepted_range():
    # a gripper whose last message says 2 rad/s, 0.01 rad below its accepted range's top, and
    # then a late message: carried forward it would leave the range the validation accepts
    from twin_bridge.validation import Plausibility
    lower, upper = np.full(7, -1.0), np.full(7, 1.0)
    bounds = Plausibility.from_limits(lower, upper, np.full(7, 3.0), np.full(7, 50.0),
                                      position_margin=0.1)
    intake = RobotIntake(NAMES, with_wrench=False, plausibility=bounds)
    top = 1.1 - 0.01
    for k in range(60):
        t = 100.0 + 0.001 * k
        parts = [(ARM, t)] + ([(GRIPPER, t + OFFSET_S)] if k % 3 == 0 and k < 40 else [])
        for joints, stamp in parts:
            q = [top if j in GRIPPER else 0.0 for j in joints]
            qd = [2.0 if j in GRIPPER else 0.0 for j in joints]
            assert intake.joint_state([NAMES[j] for j in joints], q, qd, [0.0] * len(joints),
                                      stamp, stamp + 3e-4) is None
            s = intake.sample(divmod(round(stamp * 1e9), 1_000_000_000))
            if s is not None and s.fresh is not None:
                assert (s.position[GRIPPER] <= 1.1).all(), (k, s.position)
    assert intake.own_clock_joints == ['joint6', 'joint7']
    assert s.position[GRIPPER] == pytest.approx([1.1, 1.1])      # carried up to the bound


def block_levels(every, seconds, fault=None, block=50):
    """Return the stream checks' ``log_d2`` and ``repeat_run`` per block, (blocks, 21) each."""
    checks, levels, runs = SensorChecks(7), [], []
    for k, s in enumerate(samples(every, seconds, fault)):
        checks.update(s.t, s.position, s.velocity, s.effort, s.t + 3e-4, fresh=s.fresh)
        if k % block == block - 1:
            out = checks.take_block()
            levels.append(out.log_d2)
            runs.append(out.repeat_run)
    return np.array(levels), np.array(runs)


def test_the_stream_checks_take_a_held_joints_noise_over_its_own_readings():
    whole, _ = block_levels(None, 2.5)
    held, runs = block_levels(3, 2.5)
    # noise levels (position, velocity, effort) of the gripper as of the stream sent whole:
    # before, the held positions' steps read 5-7x that level and the velocities' 2-3x (a
    # noisy sensor hid under them), the held effort 0.2x (commissioning set the flat-effort
    # check on it); carried positions without `fresh` read 0.2x
    gripper = [i + 7 * signal for signal in range(3) for i in GRIPPER]
    typical = (np.nanmedian(held[10:, gripper], axis=0)
               - np.nanmedian(whole[10:, gripper], axis=0))
    assert (np.abs(typical) < np.log(1.5)).all(), np.exp(typical)
    assert not runs[10:, gripper].any()       # no reading of a moving joint repeats


@pytest.mark.parametrize('fault', ['freeze', 'noise'])
def test_a_held_joints_own_fault_is_still_seen_by_the_stream_checks(fault):
    # the gripper driver from 1.5 s on: frozen (its last reading sent again and again, which
    # the checks saw before as well) or noisier (5e-4 rad; before, hidden under the steps of
    # the held positions: 1.6-1.8x the level, now 20-30x)
    levels, runs = block_levels(3, 2.5, (fault, 1.5))
    before, after = slice(10, 29), slice(32, None)
    gripper = np.array(GRIPPER)
    if fault == 'freeze':
        # velocity and effort readings repeat exactly, run on over the blocks (in readings)
        frozen = runs[after][:, np.r_[gripper + 7, gripper + 14]]
        assert (frozen[-1] >= 150).all() and not runs[before].any(), frozen[-1]
    else:
        rise = np.nanmedian(levels[after, gripper], axis=0) - \
            np.nanmedian(levels[before, gripper], axis=0)
        assert (rise > np.log(10.0)).all(), np.exp(rise)
