"""Each model-free sensor check on synthetic signals with known answers."""
import math

import numpy as np
import pytest

from twin_anomaly.sensor_checks import SensorChecks

DT = 1e-3
BLOCK = 20            # samples per block


def motion(t):
    """Two joints: q = sin, qd its exact derivative (semi-implicit Euler convention below)."""
    q = np.array([0.5 * np.sin(2.0 * t), 0.3 * np.sin(3.0 * t + 1.0)])
    qd = np.array([1.0 * np.cos(2.0 * t), 0.9 * np.cos(3.0 * t + 1.0)])
    return q, qd


def feed(checks, seconds, *, q_of=None, tau_of=None, noise=None, skip=(), t0=0.0, seed=0,
         now_of=None):
    """Feed ``seconds`` of samples; return the blocks (one per BLOCK samples)."""
    rng = np.random.default_rng(seed)
    blocks = []
    steps = int(round(seconds / DT))
    for k in range(1, steps + 1):
        t = t0 + k * DT
        q, qd = (q_of or motion)(t)
        tau = tau_of(t) if tau_of else np.array([2.0 * np.sin(t), 1.0 + 0.5 * np.cos(t)])
        if noise is not None:
            q = q + noise[0] * rng.standard_normal(2)
            qd = qd + noise[1] * rng.standard_normal(2)
            tau = tau + noise[2] * rng.standard_normal(2)
        if k not in skip:
            checks.update(t, q, qd, tau, None if now_of is None else now_of(t))
        if k % BLOCK == 0:
            blocks.append(checks.take_block())
    return blocks


def learned(seconds=2.0, **kwargs):
    checks = SensorChecks(2, leak_s=5.0)
    checks.start_lag_learning()
    feed(checks, seconds, **kwargs)
    checks.learn_lag()
    return checks


def test_consistent_signals_give_no_position_velocity_bias():
    checks = learned()
    blocks = feed(checks, 2.0, t0=2.0)
    bias = np.array([b.pv_bias for b in blocks if b is not None])
    assert np.abs(bias).max() < 2e-6                 # rad, against motions of 0.5 rad
    assert all(b.repeat_run.max() == 0 for b in blocks)


def test_a_position_step_the_velocity_cannot_explain_is_held_by_the_leaky_sum():
    checks = learned()

    def stepped(t):
        q, qd = motion(t)
        if t >= 2.5:
            q[1] += 0.02
        return q, qd

    blocks = feed(checks, 2.0, q_of=stepped, t0=2.0)
    bias = np.array([b.pv_bias[1] for b in blocks])
    jump = np.array([b.pv_jump[1] for b in blocks])
    k = int(round(0.5 / (BLOCK * DT))) - 1            # the block holding t = 2.5 s
    assert bias[k] == pytest.approx(0.02, rel=0.02)
    assert jump[k] == pytest.approx(0.02, rel=0.02)
    # 1.5 s later the leaky sum (5 s) still holds exp(-1.5/5) of the step
    assert bias[-1] == pytest.approx(0.02 * math.exp(-1.5 / 5.0), rel=0.05)
    assert np.abs(bias[:k]).max() < 2e-6


def test_a_velocity_bias_makes_the_sum_drift_at_its_rate():
    checks = learned()

    def biased(t):
        q, qd = motion(t)
        qd[0] += 0.05
        return q, qd

    blocks = feed(checks, 0.4, q_of=biased, t0=2.0)
    # d/dt pv_bias = -bias (integrated velocity runs ahead of the position)
    assert blocks[-1].pv_bias[0] == pytest.approx(-0.05 * 0.4, rel=0.05)


def test_the_learned_lag_is_the_velocity_delay():
    delay = 0.004

    def lagging(t):
        q, _ = motion(t)
        return q, motion(t - delay)[1]

    checks = learned(seconds=4.0, q_of=lagging)
    np.testing.assert_allclose(checks.lag_s, delay, rtol=0.1)


def test_a_frozen_signal_repeats_and_its_noise_level_collapses():
    checks = SensorChecks(2)
    rng_noise = (1e-4, 1e-3, 0.05)
    held = {}

    def tau_of(t):
        tau = np.array([2.0 * np.sin(t), 1.0]) + 0.05 * np.random.default_rng(
            int(t * 1e6)).standard_normal(2)
        if t >= 0.5:
            held.setdefault('tau', tau.copy())
            tau[0] = held['tau'][0]
        return tau

    blocks = feed(checks, 1.0, tau_of=tau_of, noise=(rng_noise[0], rng_noise[1], 0.0))
    before, after = blocks[10], blocks[-1]        # blocks fully before / after 0.5 s
    # the run of repeats carries across blocks: 500 repeats of the value read at 0.5 s
    assert before.repeat_run[4] == 0 and after.repeat_run[4] == 500
    assert after.log_d2[4] < math.log(1e-20) < before.log_d2[4]
    assert after.repeat_run[5] == 0               # the other joint's effort is not frozen


def test_the_noise_level_is_the_second_difference_of_white_noise():
    checks = SensorChecks(2)
    sigma = 0.05
    blocks = feed(checks, 2.0, tau_of=lambda t: np.zeros(2), noise=(0.0, 0.0, sigma))
    # none while the typical period is not known (the first 50 steps), then every block
    assert all(np.isnan(b.log_d2).all() for b in blocks[:2])
    log_d2 = np.array([b.log_d2[4:6] for b in blocks[3:]])
    # var(x[k] - 2 x[k-1] + x[k-2]) = 6 sigma^2 for white noise
    assert np.exp(np.median(log_d2)) == pytest.approx(6 * sigma ** 2, rel=0.1)


def test_missing_samples_are_counted_from_the_stamps():
    # once the typical period is known (the first 50 steps), in the block where the stream
    # has been back on schedule for three steps and then 20 more without paying anything
    # back (a robot that catches up slowly is not missing samples)
    checks = SensorChecks(2)
    blocks = feed(checks, 0.2, skip={85, 86, 87, 150})
    assert sum(b.missing for b in blocks) == 4
    assert blocks[5].missing == 3 and blocks[8].missing == 1
    assert checks.missing_from_robot == 4 and checks.lost_in_twin == 0   # for /twin/status


def test_the_typical_period_is_not_taken_from_a_burst_and_follows_a_new_rate():
    """
    The typical period is not taken from two samples of a burst, and follows a new rate.

    A robot (or its driver) late by a few ms sends the samples it owes back to back: had the
    twin taken its period from such a pair (60 us), every regular 1 ms step would read as a
    gap with 15 samples missing (seen on a restarted twin). The first period is the median of
    the first steps; afterwards, a long run of even gaps (or of even short steps) is a robot
    that now sends at another rate.
    """
    checks = SensorChecks(2)
    stamps = [0.0, 0.00006] + [0.00006 + k * DT for k in range(1, 401)]
    blocks = []
    for k, t in enumerate(stamps):
        q, qd = motion(t)
        checks.update(t, q, qd, np.zeros(2))
        if k % BLOCK == BLOCK - 1:
            blocks.append(checks.take_block())
    assert checks.period_s == pytest.approx(DT, rel=1e-6)
    assert sum(b.missing for b in blocks) == 0
    # a robot that now sends at half the rate: taken after ten even gaps, nothing missing
    for k in range(1, 201):
        t = stamps[-1] + 2 * k * DT
        q, qd = motion(t)
        checks.update(t, q, qd, np.zeros(2))
    assert checks.period_s == pytest.approx(2 * DT, rel=1e-3)
    assert checks.take_block().missing == 0
    # a real dropout still counts, once the period is right: known once the stream has been
    # back on schedule for three steps and then 20 without paying anything back
    t = stamps[-1] + 400 * DT + 6 * DT                   # two samples (of 2 ms) missing
    for t in t + 2 * DT * np.arange(24):
        q, qd = motion(t)
        checks.update(t, q, qd, np.zeros(2))
    assert checks.take_block().missing == 2
    # and back at the full rate: taken after a run of even short steps, nothing missing
    for t in t + DT * np.arange(1, 201):
        q, qd = motion(t)
        checks.update(t, q, qd, np.zeros(2))
    assert checks.period_s == pytest.approx(DT, rel=1e-3)
    assert checks.take_block().missing == 0


def late_robot(seconds, rng, *, p_late, late_periods, send_periods, p_drop=0.0):
    """
    Stamps (s) of a 1 kHz robot that keeps its schedule but runs late on a busy computer.

    Each sample is late with probability ``p_late`` by an exponential time of mean
    ``late_periods`` periods; the robot then sends the samples it owes back to back, each
    ``send_periods`` periods after the last, stamped when sent, until it is on schedule
    again (as ros2_control and the benchmark's robot stand-in do). With ``p_drop`` it drops
    a run of 1-5 samples instead (never sent). Returns the stamps and how many were dropped.
    """
    stamps, dropped = [], 0
    deadline = now = 0.0
    k, n = 0, int(seconds / DT)
    while k < n:
        now = max(now, deadline)
        now += (rng.exponential(late_periods) if rng.random() < p_late
                else abs(rng.normal(0.0, 0.02))) * DT
        if rng.random() < p_drop:
            m = int(rng.integers(1, 6))
            dropped, k, deadline = dropped + m, k + m, deadline + m * DT
            continue
        stamps.append(now)
        now += send_periods * DT
        deadline += DT
        k += 1
    return np.array(stamps), dropped


@pytest.mark.parametrize('p_late, late_periods, send_periods', [
    (0.02, 1.5, 0.05), (0.05, 1.5, 0.1), (0.1, 2.0, 0.2)])
def test_a_robot_late_again_and_again_loses_nothing_and_its_drops_are_counted(
        p_late, late_periods, send_periods):
    """
    Missing samples are counted against the robot's clock, not gap by gap.

    A robot stamped when it sends makes gaps that are not whole periods (2.6 periods, then a
    late burst). Rounding each gap on its own counted samples that came late as missing: about
    one in a hundred samples of a robot late on 10 % of its samples (a 2.8 s false `dropout`
    beside a robot stand-in on a loaded computer), and 2.6x the samples such a robot really
    dropped.
    """
    rng = np.random.default_rng(7)
    for p_drop in (0.0, 0.002):
        stamps, dropped = late_robot(20.0, rng, p_late=p_late, late_periods=late_periods,
                                     send_periods=send_periods, p_drop=p_drop)
        checks = SensorChecks(2)
        missing = 0.0
        for k, t in enumerate(stamps):
            x = rng.standard_normal(6)
            checks.update(t, x[:2], x[2:4], x[4:])
            if k % 100 == 99:
                missing += checks.take_block().missing
        assert checks.period_s == pytest.approx(DT, rel=0.01)
        if p_drop == 0.0:
            assert missing == 0
        else:
            assert dropped > 50 and abs(missing - dropped) <= 0.02 * dropped


def _count(stamps, nows=None, drop=()):
    """Feed ``stamps`` (s) of a 2-joint motion; return (missing, period_s, checks)."""
    checks = SensorChecks(2)
    rng = np.random.default_rng(9)
    missing = 0.0
    for k, t in enumerate(stamps):
        q, qd = motion(t)
        checks.update(t, q + 1e-5 * rng.standard_normal(2), qd, np.zeros(2),
                      None if nows is None else nows[k])
        if k % BLOCK == BLOCK - 1:
            missing += checks.take_block().missing
    last = checks.take_block()
    return missing + (last.missing if last else 0.0), checks.period_s, checks


def _late_then_back_to_back(owed, gap=60e-6):
    """1 kHz, a stall of ``owed`` periods, then every owed sample sent back to back."""
    stamps, t = [], 0.0
    for m in range(1, 2000 + owed + 2000):
        due = m * DT if m <= 2000 else max(m * DT, (2000 + owed) * DT)
        t = max(due, t + gap) if stamps else due
        stamps.append(t)
    return stamps


@pytest.mark.parametrize('case', ['stall 250', 'stall 1000', 'batches', 'slower 700 Hz',
                                  'burst start, jitter', 'clock ahead 1 s'])
def test_streams_that_are_not_even_lose_nothing(case):
    """
    Odd but complete streams count nothing missing and keep the robot's period (audit).

    A stall of 250 or 1000 periods made up back to back (the account was once closed in the
    middle of the burst, and the rest of it re-took the period as 60 us: blind from then on);
    a robot that sends 4 samples 20 us apart every 4 ms (977,452 counted missing in 20 s); a
    rate lowered by less than the gap factor (1000 -> 700 Hz: never re-taken); a start in a
    burst, then 10 % jitter; a clock that jumps 1 s ahead, received 1 ms after the sample
    before (1000 counted missing).
    """
    rng = np.random.default_rng(10)
    nows = None
    period = DT
    if case.startswith('stall'):
        stamps = _late_then_back_to_back(int(case.split()[1]))
    elif case == 'batches':
        stamps = [4 * DT * (k // 4) + 20e-6 * (k % 4) for k in range(1, 20001)]
    elif case == 'slower 700 Hz':
        period = 1.0 / 700.0
        stamps = list(np.arange(1, 2001) * DT) + list(2.0 + np.arange(1, 7001) * period)
    elif case == 'burst start, jitter':
        stamps = list(np.arange(40) * 60e-6) + list(
            0.0024 + np.cumsum(DT * (1.0 + 0.1 * rng.uniform(-1, 1, 8000))))
    else:
        stamps = list(np.arange(1, 3001) * DT)
        nows = [t + 3e-4 for t in stamps]
        stamps += list(1.0 + 3.0 + np.arange(1, 2001) * DT)
        nows += list(3.0 + 3e-4 + np.arange(1, 2001) * DT)
    missing, measured, _checks = _count(stamps, nows)
    assert missing == 0
    assert measured == pytest.approx(period, rel=0.05)


def test_drops_of_a_robot_at_a_lower_rate_are_counted():
    """1000 -> 700 Hz, then 5 drops of 3 samples: 15 missing (30 before the period followed)."""
    period = 1.0 / 700.0
    stamps = list(np.arange(1, 2001) * DT) + list(2.0 + np.arange(1, 7001) * period)
    for k in (3000, 4000, 5000, 6000, 7000):
        del stamps[k:k + 3]
    assert _count(stamps)[0] == 15


def test_samples_a_late_robot_sends_back_to_back_are_not_missing():
    """
    Samples that come late, back to back, are not missing; samples that never come are.

    A robot stamps its samples when it sends them: after a 5 ms hiccup it sends the four it owes
    60 us apart. Nothing is missing (a dropout alarm for every hiccup of a simulated robot on a
    busy computer, before).
    """
    checks = SensorChecks(2)
    stamps = [k * DT for k in range(1, 101)]
    stamps += [0.1 + 0.005 + j * 0.00006 for j in range(5)]      # late, then the owed ones
    stamps += [0.105 + k * DT for k in range(1, 96)]              # on schedule again
    stamps += [0.2 + 0.005 + k * DT for k in range(100)]          # a dropout: 4 never come
    # an 11 ms stall made up with the first step at 0.86 periods, then faster (as recorded
    # from a simulated robot on a busy computer): none missing
    t = stamps[-1] + 0.011                                        # 11 owed, t is the first
    stamps += [t] + [t + 0.00086 + j * 0.0001 for j in range(11)]
    stamps += [t + 0.002 + k * DT for k in range(100)]            # on schedule again
    # a busy computer: stalls again before it has caught up (steps recorded from a simulated
    # robot: 2.0, 0.4, 0.74, 1.82, 2.14, 0.38, 0.15, 0.4 ms, then on schedule): none missing
    t = stamps[-1]
    for step in (0.002, 0.0004, 0.00074, 0.00182, 0.00214, 0.00038, 0.00015, 0.0004, 0.00097):
        t += step
        stamps.append(t)
    stamps += [t + k * DT for k in range(1, 100)]
    missing = 0
    for k, t in enumerate(stamps):
        q, qd = motion(t)
        checks.update(t, q, qd, np.zeros(2))
        if k % BLOCK == BLOCK - 1:
            missing += checks.take_block().missing
    assert missing == 4


def _slow_catch_up(rng, stall_periods=10, first=(1.15, 1.0, 1.05), rate=1.03, jitter=0.03):
    """1 kHz; a stall, a few steps about on schedule, then the owed samples made up slowly."""
    stamps = list(np.arange(1, 1001) * DT)
    t = stamps[-1] + stall_periods * DT
    stamps.append(t)
    for step in first:
        t += step * DT
        stamps.append(t)
    while len(stamps) < t / DT + 1.0:             # until the owed samples are made up
        t += DT * (1.0 / rate + jitter * rng.uniform(-1, 1))
        stamps.append(t)
    stamps += list(t + np.arange(1, 1001) * DT)
    return stamps


@pytest.mark.parametrize('rate', [1.03, 1.1, 1.5])
def test_a_robot_that_catches_up_slowly_loses_nothing(rate):
    """
    A robot that fell behind and makes the owed samples up at barely above its rate.

    Starved by its computer, a robot stand-in fell 10 ms behind, sent a few samples about on
    schedule, then caught up at 1.03-1.5 times its rate over a few hundred ms: no sample was
    lost, but the checks closed the gap's account after three regular steps and counted the
    10 ms as missing (a `dropout` alarm for 0.6 s, in a live run on a loaded machine).
    """
    stamps = _slow_catch_up(np.random.default_rng(11), rate=rate)
    missing, period, _checks = _count(stamps)
    assert missing == 0
    assert period == pytest.approx(DT, rel=0.01)


def test_samples_dropped_now_and_then_are_counted_at_the_next_gap():
    """
    Random drops are counted within a few samples of the next gap, not after a long watch.

    An account waits 20 regular steps to see whether the robot is paying its owed samples
    back slowly; a stream that drops a sample every 10-30 would keep such an account open for
    the whole run (and report its dropout late) if every gap joined it. A gap after a steady
    stretch closes the account instead.
    """
    rng = np.random.default_rng(12)
    stamps = np.arange(1, 20001) * DT + 0.03 * DT * rng.standard_normal(20000)
    drop = rng.random(20000) < 0.05
    drop[:1000] = False
    kept = stamps[~drop]
    checks = SensorChecks(2)
    counted, lag = 0.0, []
    for k, t in enumerate(kept):
        q, qd = motion(t)
        checks.update(t, q, qd, np.zeros(2))
        if k % BLOCK == BLOCK - 1:
            counted += checks.take_block().missing
            # dropped before the last 40 periods: all of them counted by now
            before = np.searchsorted(stamps, t - 40 * DT)
            lag.append(int(drop[:before].sum()) - counted)
    assert abs(counted - drop.sum()) <= 0.02 * drop.sum()
    assert max(lag) <= 2


def test_a_stall_made_up_with_late_samples_does_not_read_as_noise():
    """
    Second differences across a stall and its late samples are not noise.

    A robot stalled 11 ms by its computer sends the samples it owes back to back, each read
    when it is sent: the positions and velocities of the burst hardly differ, so a second
    difference across it holds 11 ms of motion. Counted as noise, that read as a noisy velocity
    sensor (sensor_noise on a simulated robot, before); only pairs of regular steps count.
    """
    def blocks_with(stall):
        checks = SensorChecks(2)
        rng = np.random.default_rng(3)
        stamps = [k * DT for k in range(1, 201)]
        if stall:
            stamps += [0.2 + 0.011 + j * 0.00003 for j in range(11)]   # read when sent
        else:
            stamps += [0.2 + k * DT for k in range(1, 12)]
        stamps += [0.211 + k * DT for k in range(1, 190)]
        levels = []
        for k, t in enumerate(stamps):
            q, qd = motion(t)
            checks.update(t, q + 1e-5 * rng.standard_normal(2),
                          qd + 1e-4 * rng.standard_normal(2), np.zeros(2))
            if k % BLOCK == BLOCK - 1:
                levels.append(checks.take_block().log_d2)
        return np.array(levels), checks
    steady, _ = blocks_with(stall=False)
    stalled, checks = blocks_with(stall=True)
    # the block of the stall (11 of its 20 steps irregular) tells no noise level; every other
    # block reads the same noise as without the stall, positions and velocities alike
    stall_block = 10
    assert np.isnan(stalled[stall_block]).all() and np.isfinite(steady[stall_block]).all()
    others = np.delete(np.arange(3, len(stalled)), stall_block - 3)   # (period known from 3)
    assert np.isfinite(stalled[others]).all()
    assert np.abs(stalled[others, :4] - steady[others, :4]).max() < 0.3
    assert checks.period_s == pytest.approx(DT, rel=1e-2)


QUIET = (1e-5, 1e-4, 1e-3)   # rad, rad/s, N·m: sensors ten to fifty times quieter than usual


def _jittered_stamps(jitter, seed=13):
    """2 s at 1 kHz on schedule, then 2 s of steps spread uniformly by +-``jitter`` periods."""
    regular = np.arange(1, 2001) * DT
    steps = DT * (1.0 + jitter * np.random.default_rng(seed).uniform(-1, 1, 2000))
    return np.concatenate([regular, regular[-1] + np.cumsum(steps)])


def _noise_levels(stamps, noise, extra=None, seed=14, read_at=None):
    """
    Median ``log_d2`` (6,) over the blocks after 2.1 s of the test's motion read at ``stamps``.

    ``noise``: the sensors' noise (rad, rad/s, N·m) or None; ``extra``: (channel, std) of
    white noise a faulty sensor adds to one of the six channels (q, qd, tau of joints 0, 1);
    ``read_at``: the times the sensors were read, when not the stamps.
    """
    checks = SensorChecks(2)
    rng, faulty = np.random.default_rng(seed), np.random.default_rng(seed + 1)
    levels = []
    for k, t in enumerate(stamps):
        r = t if read_at is None else read_at[k]
        q, qd = motion(r)
        x = np.concatenate([q, qd, [2.0 * np.sin(r), 1.0 + 0.5 * np.cos(r)]])
        if noise is not None:
            x += np.repeat(noise, 2) * rng.standard_normal(6)
        if extra is not None:
            x[extra[0]] += extra[1] * faulty.standard_normal()
        checks.update(t, x[:2], x[2:4], x[4:])
        if k % BLOCK == BLOCK - 1 and t > 2.1:
            levels.append(checks.take_block().log_d2)
        elif k % BLOCK == BLOCK - 1:
            checks.take_block()
    return np.median(levels, axis=0)


@pytest.mark.parametrize('noise', [None, QUIET], ids=['noise-free', 'quiet sensors'])
def test_jittered_sample_times_do_not_move_the_noise_level_of_a_smooth_motion(noise):
    """
    A robot whose loop jitters reads its sensors at uneven times, not noisier.

    Second differences of undivided first differences carried ``velocity * (dt - dt_prev)``:
    a joint moving at 1 rad/s read 1e-4 rad of "noise" from 0.1 ms of timing jitter, and a
    noise-free robot stand-in commissioned on a quiet computer raised ``noise_qd`` on a busy
    one. With steps spread by +-20 % the levels rose by e^8 (noise-free) and e^3 (quiet
    position sensors); divided by the steps, they stay within a few percent.
    """
    regular = _noise_levels(_jittered_stamps(0.0), noise)
    jittered = _noise_levels(_jittered_stamps(0.2), noise)
    np.testing.assert_allclose(jittered, regular, atol=0.15)


@pytest.mark.parametrize('noise', [None, QUIET], ids=['noise-free', 'quiet sensors'])
def test_stamps_that_jitter_on_a_regular_sampling_grid_do_not_move_the_noise_level(noise):
    """
    A driver that stamps on arrival: the robot read its sensors on schedule, the stamps jitter.

    Here the rates (first differences divided by the stamps' steps) carry the jitter and the
    plain differences do not: each block keeps the smaller level, so neither kind of robot
    reads its timing as noise.
    """
    grid = _jittered_stamps(0.0)
    regular = _noise_levels(grid, noise)
    jittered = _noise_levels(_jittered_stamps(0.2), noise, read_at=grid)
    np.testing.assert_allclose(jittered, regular, atol=0.15)


def test_a_noisier_sensor_is_found_on_a_robot_whose_loop_jitters():
    """
    A sensor_noise fault on quiet sensors read at jittered times: only its channel rises.

    Joint 1's position sensor adds white noise of 5e-5 rad (std 5.1x the quiet 1e-5 rad, a
    level e^3.26 higher); the other channels read as on regular steps (before, every
    position channel rose by about e^3 from the jitter alone, as much as the fault).
    """
    regular = _noise_levels(_jittered_stamps(0.0), QUIET)
    faulty = _noise_levels(_jittered_stamps(0.2), QUIET, extra=(1, 5e-5))
    rise = faulty - regular
    assert rise[1] == pytest.approx(math.log(26.0), abs=0.3)
    assert np.abs(np.delete(rise, 1)).max() < 0.15


def test_samples_the_bridge_refused_are_not_missing_from_the_stream():
    # the robot sent samples 45..47; the bridge refused them as implausible and says so
    checks = SensorChecks(2)
    blocks = []
    for k in range(1, 201):
        t = k * DT
        if k not in (45, 46, 47):
            q, qd = motion(t)
            checks.update(t, q, qd, np.zeros(2), refused=3 if k == 48 else 0)
        if k % BLOCK == 0:
            blocks.append(checks.take_block())
    assert sum(b.missing for b in blocks) == 0 and checks.lost_in_twin == 0


def test_a_gap_after_samples_that_waited_long_is_the_twins_own_loss():
    # the twin fell 80 ms behind (its 100-deep queue at 1 kHz overflowed) and lost 2 samples;
    # later the robot itself drops 3 samples while the twin keeps up
    def now_of(t):
        behind = 0.08 if 0.10 <= t < 0.20 else 0.0
        return t + 0.002 + behind

    checks = SensorChecks(2, queue_depth=100)
    blocks = feed(checks, 0.4, skip={150, 151, 300, 301, 302}, now_of=now_of)
    assert checks.lost_in_twin == 2
    assert sum(b.missing for b in blocks) == 3
    # a twin that waits a little (well within its queue) does not hide a robot's dropout
    checks = SensorChecks(2, queue_depth=100)
    blocks = feed(checks, 0.4, skip={150, 151}, now_of=lambda t: t + 0.002 + 0.01 * (t > 0.1))
    assert checks.lost_in_twin == 0 and sum(b.missing for b in blocks) == 2
    with pytest.raises(ValueError, match='queue_depth'):
        SensorChecks(2, queue_depth=0)


def test_latency_is_the_smallest_receive_delay_of_a_block():
    checks = SensorChecks(2)
    # three samples in four take 3 ms longer: the block's latency is the fastest sample's
    blocks = feed(checks, 0.1, now_of=lambda t: t + 0.012 + 0.003 * (round(t / DT) % 4 != 0))
    assert all(b.latency_s == pytest.approx(0.012) for b in blocks)
    assert math.isnan(feed(SensorChecks(2), 0.04)[-1].latency_s)


def test_samples_that_waited_in_the_twins_queue_do_not_count_as_latency():
    # the twin stalls for 30 ms from t = 0.1 s and then drains its backlog: the samples it
    # takes back to back are queued, and the first of the burst (the head) waited too
    stall_end, service = 0.13, 0.0002
    checks = SensorChecks(2)
    blocks, taken_prev = [], None
    for k in range(1, 201):
        t = k * DT
        now = t + 0.0005
        if 0.1 <= t < stall_end + 0.1:
            now = max(now, stall_end + (k - 100) * service)
        queued = taken_prev is not None and now - taken_prev < 0.7 * DT
        taken_prev = now
        q, qd = motion(t)
        checks.update(t, q, qd, np.zeros(2), now, queued=queued)
        if k % BLOCK == 0:
            blocks.append(checks.take_block())
    latencies = [b.latency_s for b in blocks if not math.isnan(b.latency_s)]
    assert max(latencies) == pytest.approx(0.0005, abs=1e-6)
    # without the queue information, the stall shows as a latency of the stream
    plain = SensorChecks(2)
    raw = feed(plain, 0.2, now_of=lambda t: max(t + 0.0005, stall_end + (round(t / DT) - 100)
                                                * service) if 0.1 <= t < 0.2 else t + 0.0005)
    assert max(b.latency_s for b in raw) > 0.01


def test_flat_effort_on_a_moving_joint_is_timed_and_standing_still_holds_it():
    checks = SensorChecks(2)
    checks.set_flat(tolerance=[0.09, 0.09], band=[0.06, 0.06], min_speed=[0.01, 0.01])

    def clipped(t):
        return np.array([min(5.0, 40.0 * t), 2.0 * np.sin(5.0 * t)])

    blocks = feed(checks, 1.5, tau_of=clipped, noise=(0.0, 0.0, 0.02), seed=3)
    run = np.array([b.flat_run_s[0] for b in blocks])
    # effort 40 t N·m clips at 5 N·m from 0.125 s: flat from there on while joint 0 moves
    assert run[-1] == pytest.approx(1.5 - 0.125, abs=0.03)
    assert np.all(run[:6] == 0.0)
    assert np.array([b.flat_run_s[1] for b in blocks]).max() <= 0.1   # a sine is not flat

    def still(t):
        q, qd = motion(1.5)
        return q, np.zeros(2)

    held = feed(checks, 0.2, q_of=still, tau_of=lambda t: np.array([5.0, 0.0]), t0=1.5)
    assert held[-1].flat_run_s[0] == pytest.approx(run[-1], abs=0.03)


def test_an_effort_held_by_friction_the_model_does_not_explain_is_no_clipping_drive():
    """
    +3 N·m Coulomb friction on a lightly loaded joint: its effort sits at the friction's level.

    Joint 0 needs 0.5 N·m by the model and holds 3.5 N·m while it moves one way (a flat effort
    well above the level a clipping drive must reach); the 3 N·m the model does not explain
    (the observer's residual) is told to the check. Joint 1's drive clips at 5 N·m, a torque
    consistent with its motion (nothing unexplained). On a first, model-free check both read
    as clipping drives; told what the model explains, only joint 1 does. (Before, the monitor
    called friction held for 20 s a clipping drive after 2-18 s at 125-500 Hz.)
    """
    def efforts(t):
        friction = 3.0 * np.sign(motion(t)[1][0])
        return np.array([0.5 + friction, min(5.0, 40.0 * t)])

    def unexplained(t):
        return np.array([3.0 * np.sign(motion(t)[1][0]), 0.0])

    model_free, told = SensorChecks(2), SensorChecks(2)
    for checks in (model_free, told):
        checks.set_flat(tolerance=[0.09, 0.09], band=[0.06, 0.06], min_speed=[0.01, 0.01],
                        min_level=[2.0, 2.0])
    rng = np.random.default_rng(7)
    runs = {'model-free': [], 'told': []}
    for k in range(1, 1201):          # 1.2 s: joint 0 moves one way (its reversal at 0.785 s)
        t = k * DT
        q, qd = motion(t)
        tau = efforts(t) + 0.02 * rng.standard_normal(2)
        model_free.update(t, q, qd, tau)
        told.update(t, q, qd, tau)
        if k % BLOCK == 0:
            runs['model-free'].append(model_free.take_block().flat_run_s)
            # (the unexplained torque of the block, as the monitor passes it: its mean)
            runs['told'].append(told.take_block(unexplained(t - 0.5 * BLOCK * DT)).flat_run_s)
    model_free_runs, told_runs = np.array(runs['model-free']), np.array(runs['told'])
    assert model_free_runs[:, 0].max() > 0.5 and model_free_runs[-1, 1] > 1.0
    assert told_runs[:, 0].max() == 0.0
    np.testing.assert_array_equal(told_runs[:, 1], model_free_runs[:, 1])


def test_stamps_that_do_not_advance_are_ignored():
    checks = SensorChecks(2)
    q, qd = motion(0.0)
    assert checks.update(1.0, q, qd, np.zeros(2))
    assert not checks.update(1.0, q, qd, np.zeros(2))
    assert not checks.update(0.9, q, qd, np.zeros(2))
    assert checks.take_block().samples == 1
    with pytest.raises(ValueError):
        SensorChecks(0)


def test_a_stale_resend_of_the_whole_sample_is_counted_and_left_out():
    """A logger that resends the previous sample under a new stamp (a real Panda log does)."""
    checks = learned()
    stale = {2510, 2600}                 # these stamps carry the previous sample again

    def resent(t):
        k = int(round(t / DT))
        return motion((k - 1) * DT) if k in stale else motion(t)

    def tau(t):
        s = (int(round(t / DT)) - (int(round(t / DT)) in stale)) * DT
        return np.array([2.0 * np.sin(s), 1.0 + 0.5 * np.cos(s)])

    blocks = feed(checks, 1.0, q_of=resent, tau_of=tau, t0=2.0)
    assert sum(b.repeated for b in blocks) == 2
    # differenced over two periods instead: no inconsistency (a plain feed would show 1e-3)
    assert np.abs(np.array([b.pv_bias for b in blocks])).max() < 5e-6
    assert all(b.repeat_run.max() == 0 for b in blocks)


def test_a_run_of_stale_resends_is_counted_whole():
    """
    A driver that resends its last sample for 20 ms: every resend is a repeat.

    After a repeat the next sample was not compared (no previous reading "behind" it), so a
    run of resends counted every other one and fed the rest to the checks as readings.
    """
    checks = learned()
    first, last = 2510, 2530             # stamps k in [first, last) resend sample first - 1

    def held(t):
        k = int(round(t / DT))
        return (first - 1) * DT if first <= k < last else t

    blocks = feed(checks, 1.0, q_of=lambda t: motion(held(t)),
                  tau_of=lambda t: np.array([2.0 * np.sin(held(t)), 1.0 + 0.5 * np.cos(held(t))]),
                  t0=2.0)
    assert sum(b.repeated for b in blocks) == last - first


def test_a_joint_at_rest_may_read_exactly_still_a_frozen_sensor_on_a_moving_one_counts():
    checks = SensorChecks(2)
    checks.set_flat(tolerance=[0.09, 0.09], band=[0.06, 0.06], min_speed=[0.03, 0.03],
                    min_velocity=[0.03, 0.03])
    q_rest = motion(0.0)[0]

    def resting(t):          # both joints stand still: exactly the same position, zero speed
        return q_rest, np.zeros(2)

    blocks = feed(checks, 0.5, q_of=resting, noise=(0.0, 0.0, 0.05), seed=4)
    assert all(np.all(b.repeat_run == 0.0) for b in blocks)      # no frozen channel at rest
    assert all(np.all(b.resting) for b in blocks)

    def position_frozen(t):  # joint 0's position sensor freezes while its velocity says it moves
        q, qd = motion(t)
        return np.array([q_rest[0], q[1]]), qd

    blocks = feed(checks, 0.3, q_of=position_frozen, t0=0.5, seed=5)
    assert blocks[-1].repeat_run[0] >= 250 and blocks[-1].repeat_run[1] == 0.0
    assert not blocks[0].resting.any()     # moving by the velocity (its position is frozen)


def test_flat_runs_are_counted_at_the_joints_usual_pace():
    # the clipped effort of the test above, with joint 0's usual pace given: a block adds its
    # duration times speed / pace, so the same path run slower builds the same run
    def clipped(t):
        return np.array([min(5.0, 40.0 * t), 2.0 * np.sin(5.0 * t)])

    plain, paced = SensorChecks(2), SensorChecks(2)
    plain.set_flat(tolerance=[0.09, 0.09], band=[0.06, 0.06], min_speed=[0.01, 0.01])
    paced.set_flat(tolerance=[0.09, 0.09], band=[0.06, 0.06], min_speed=[0.01, 0.01],
                   pace_speed=[2.0, np.nan])
    blocks = feed(plain, 1.5, tau_of=clipped, noise=(0.0, 0.0, 0.02), seed=3)
    paced_blocks = feed(paced, 1.5, tau_of=clipped, noise=(0.0, 0.0, 0.02), seed=3)
    # the run from 0.125 s on, block by block: duration x speed / 2 rad/s
    expected = sum(BLOCK * DT * b.speed[0] / 2.0 for b in blocks[7:])
    assert paced_blocks[-1].flat_run_s[0] == pytest.approx(expected, rel=0.1)
    assert paced_blocks[-1].flat_run_s[0] < 0.6 * blocks[-1].flat_run_s[0]
    # joint 1 without a pace: plain seconds, as before
    assert paced_blocks[-1].flat_run_s[1] == blocks[-1].flat_run_s[1]
