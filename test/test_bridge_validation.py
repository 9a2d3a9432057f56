"""Tests of joint-state and wrench validation: every rejection cause, its counter and reason."""
import array
import math

import numpy as np
import pytest

from twin_bridge.validation import (ABS_POSITION_CAP, CAUSES, JointStateValidator, Plausibility,
                                    SKIPPED, StampGate, ValidationConfigError, VELOCITY_CAP,
                                    WRENCH_CAUSES, WrenchValidator)

NAMES = [f'joint{i}' for i in range(1, 8)]
P = [0.1 * i for i in range(7)]


def fresh(names):
    """Names as rclpy delivers them: new str objects each message."""
    return [''.join(list(n)) for n in names]


def make(**kw):
    return JointStateValidator(NAMES, **kw)


def test_accepts_good_samples_in_any_container():
    v = make()
    assert v.validate(NAMES, P, P, P, 1.0, 1.0) is None
    assert v.validate(fresh(NAMES), array.array('d', P), array.array('d'), array.array('d'),
                      1.001, 1.001) is None
    assert v.validate(tuple(NAMES), np.array(P), np.array(P), [], 1.002, 1.002) is None
    assert v.counters['accepted'] == 3 and v.counters['rejected'] == 0
    assert v.last_reason is None


@pytest.mark.parametrize('field', ['position', 'velocity', 'effort'])
@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_nonfinite_values(field, bad):
    v = make()
    arrays = {'position': list(P), 'velocity': list(P), 'effort': list(P)}
    arrays[field][3] = bad
    reason = v.validate(NAMES, arrays['position'], arrays['velocity'], arrays['effort'],
                        1.0, 1.0)
    assert reason == (f"{field} of 'joint4' is {bad!r} in /joint_states; all values must be "
                      'finite')
    assert v.counters['nonfinite'] == 1 and v.counters['rejected'] == 1
    assert v.last_reason == reason


def test_finite_but_impossible_values_are_rejected():
    # 1e308 is finite, but no joint can be there: rejected even without URDF limits.
    v = make()
    assert 'outside its possible range' in v.validate(NAMES[:2], [1e308, 0.0], [], [], 1.0, 1.0)
    assert v.counters['beyond_limits'] == 1


def test_length_mismatch_and_empty_optional_arrays():
    v = make()
    r = v.validate(NAMES, P[:6], [], [], 1.0, 1.0)
    assert 'position has 6 values for 7 joint names' in r
    r = v.validate(NAMES, P, P[:3], [], 1.0, 1.0)
    assert 'velocity has 3 values for 7 joint names' in r
    r = v.validate(NAMES, P, [], P + [0.0], 1.0, 1.0)
    assert 'effort has 8 values' in r
    r = v.validate(NAMES, [], [], [], 1.0, 1.0)
    assert 'position is required' in r
    assert v.counters['length_mismatch'] == 4
    # Empty velocity and effort: "not provided" by JointState semantics.
    assert v.validate(NAMES, P, [], [], 1.0, 1.0) is None


def test_empty_message():
    v = make()
    assert 'no joint names' in v.validate([], [], [], [], 1.0, 1.0)
    assert v.counters['empty'] == 1


def test_duplicated_names():
    v = make()
    r = v.validate(['joint1', 'joint2', 'joint1'], [0.0] * 3, [], [], 1.0, 1.0)
    assert r == "duplicated joint 'joint1' in /joint_states; each joint may appear once"
    assert v.counters['duplicate_joint'] == 1


def test_unknown_joint_rejected_by_default():
    v = make()
    r = v.validate(NAMES + ['j8'], P + [0.0], [], [], 1.0, 1.0)
    assert r.startswith("unknown joint 'j8' in /joint_states; model has joint1..joint7")
    assert 'unknown_joints: ignore' in r
    assert v.counters['unknown_joint'] == 1


def test_unknown_joint_ignored_by_policy():
    v = make(unknown_joints='ignore')
    names = ['finger', 'joint2', 'joint1']
    assert v.validate(names, [0.0, 1.0, 2.0], [], [], 1.0, 1.0) is None
    assert v.counters['ignored_unknown'] == 1 and v.ignored_joints == {'finger'}
    # A NaN in a dropped joint does not reject the joints that are kept...
    assert v.validate(names, [math.nan, 1.0, 2.0], [], [], 1.1, 1.1) is None
    # ...a NaN in a kept joint does.
    assert "'joint2' is nan" in v.validate(names, [0.0, math.nan, 2.0], [], [], 1.2, 1.2)
    # Nothing the model knows (a gripper publishing on the same topic): under 'ignore' neither
    # accepted nor rejected, so it is not counted as bad input nor taken for a robot sample.
    assert v.validate(['finger'], [0.0], [], [], 1.3, 1.3) is SKIPPED
    assert v.counters['other_joints_only'] == 1
    assert v.counters['rejected'] == 1 and v.counters['unknown_joint'] == 0   # (the NaN one)


def test_held_joints_are_known_and_left_out():
    # a gripper's fingers the twin holds fixed (locked_joints): named with the arm, or alone
    v = make(held_joints=['finger'])
    assert v.validate(NAMES + ['finger'], P + [0.04], [], [], 1.0, 1.0) is None
    assert v.validate(['finger'], [0.04], [], [], 1.01, 1.01) is SKIPPED
    # even values no arm joint could have: the twin does not use them
    assert v.validate(['finger'], [math.nan], [], [], 1.02, 1.02) is SKIPPED
    assert v.counters['rejected'] == 0 and v.counters['other_joints_only'] == 2
    # an unknown name next to the held one is still rejected by the default policy
    r = v.validate(['finger', 'wrist9'], [0.0, 0.0], [], [], 1.03, 1.03)
    assert "unknown joint 'wrist9'" in r


def test_stamp_checks():
    v = make(max_future_s=0.5)
    assert 'is 0' in v.validate(NAMES, P, [], [], 0.0, 1.0)
    assert 'negative' in v.validate(NAMES, P, [], [], -1.0, 1.0)
    assert v.counters['zero_stamp'] == 2
    assert 'stamp is nan' in v.validate(NAMES, P, [], [], math.nan, 1.0)
    assert v.counters['nonfinite'] == 1
    r = v.validate(NAMES, P, [], [], 10.6, 10.0)
    assert '0.600000 s ahead of the local clock' in r and 'max_future_s=0.5' in r
    assert v.counters['future_stamp'] == 1
    assert v.validate(NAMES, P, [], [], 10.5, 10.0) is None      # exactly at the bound
    # Out of order: older than the last accepted; an equal stamp is accepted.
    r = v.validate(NAMES, P, [], [], 10.4, 10.1)
    assert 'older than the last accepted' in r and '0.100000 s' in r
    assert v.counters['out_of_order'] == 1
    assert v.validate(NAMES, P, [], [], 10.5, 10.1) is None
    # Rejected samples do not move the reference stamp.
    assert v.validate(NAMES, P, [], [], 10.55, 10.2) is None


def test_future_check_can_be_disabled():
    v = make(max_future_s=None)
    assert v.validate(NAMES, P, [], [], 1e9, 1.0) is None


def test_separate_messages_for_separate_joints_do_not_conflict():
    # Arm and gripper on separate publishers: interleaved stamps are fine per joint group...
    v = JointStateValidator(['a1', 'a2', 'g1'])
    assert v.validate(['a1', 'a2'], [0.0, 0.0], [], [], 1.002, 1.003) is None
    assert v.validate(['g1'], [0.0], [], [], 1.001, 1.003) is None
    assert v.validate(['a2', 'a1'], [0.0, 0.0], [], [], 1.003, 1.004) is None
    # ...but a message touching a joint with a newer accepted stamp is out of order.
    assert 'out of order' in v.validate(['a1', 'g1'], [0.0, 0.0], [], [], 1.0025, 1.004)


def test_missing_joints_within_window():
    v = make(missing_window_s=0.5)
    assert v.missing_joints(0.0) == NAMES and v.never_seen() == NAMES
    assert v.validate(NAMES[:5], P[:5], [], [], 1.0, 1.0) is None
    assert v.missing_joints(1.2) == ['joint6', 'joint7']
    assert v.never_seen() == ['joint6', 'joint7']
    assert v.validate(NAMES[5:], P[5:], [], [], 1.3, 1.3) is None
    assert v.missing_joints(1.4) == []
    assert v.missing_joints(1.7) == NAMES[:5]       # last seen at 1.0, window 0.5 s
    assert v.never_seen() == []


def test_malformed_data_never_raises():
    v = make()
    cases = [
        (NAMES, ['a'] * 7, [], [], 1.0, 1.0),
        (NAMES, [None] * 7, [], [], 1.0, 1.0),
        (None, P, [], [], 1.0, 1.0),
        (NAMES, P, [], [], 'now', 1.0),
        ([['x']] * 7, P, [], [], 1.0, 1.0),
        (NAMES, 5, [], [], 1.0, 1.0),
    ]
    for case in cases:
        r = v.validate(*case)
        assert r.startswith('malformed /joint_states message'), r
    assert 'local time' in v.validate(NAMES, P, [], [], 1.0, math.nan)
    assert v.counters['malformed'] == len(cases) + 1
    assert v.counters['rejected'] == len(cases) + 1


def test_counters_dict_for_status_and_reset():
    v = make()
    v.validate(NAMES, P, [], [], 1.0, 1.0)
    v.validate(NAMES, P, [], [], 0.0, 1.0)
    d = v.counters.as_dict('joint_states.')
    assert d['joint_states.accepted'] == 1 and d['joint_states.zero_stamp'] == 1
    assert d['joint_states.rejected'] == 1
    assert set(CAUSES) <= {k.split('.', 1)[1] for k in d}
    assert sum(d[f'joint_states.{c}'] for c in CAUSES) == d['joint_states.rejected']
    v.reset()
    assert v.counters['accepted'] == 0 and v.validate(NAMES, P, [], [], 0.5, 1.0) is None


def test_custom_topic_in_reasons():
    v = JointStateValidator(['a', 'b'], topic='/arm/joint_states')
    assert "model has 'a', 'b'" in v.validate(['c'], [0.0], [], [], 1.0, 1.0)
    assert '/arm/joint_states' in v.last_reason


def test_bad_configuration_raises():
    for kw, words in [({'unknown_joints': 'drop'}, 'unknown_joints'),
                      ({'max_future_s': -1.0}, 'max_future_s'),
                      ({'max_future_s': 'x'}, 'max_future_s'),
                      ({'missing_window_s': 0.0}, 'missing_window_s')]:
        with pytest.raises(ValidationConfigError, match=words):
            make(**kw)
    for names in ([], ['a', 'a'], ['a', '']):
        with pytest.raises(ValidationConfigError, match='model_joint_names'):
            JointStateValidator(names)


# ----------------------------------------------------------------------------- wrench
W = [1.0, 2.0, -9.81, 0.1, 0.2, 0.3]


def test_wrench_validation():
    v = WrenchValidator(max_future_s=0.1)
    assert v.validate(W, 1.0, 1.0) is None
    assert v.validate(tuple(W), 1.0, 1.001) is None
    r = v.validate(W[:5], 1.1, 1.1)
    assert r == 'wrench has 5 values in /ft_sensor/wrench; expected 6: fx, fy, fz, tx, ty, tz'
    assert v.validate(W[:4] + [math.nan, 0.0], 1.1, 1.1) == (
        'wrench ty is nan in /ft_sensor/wrench; all values must be finite')
    assert 'is 0' in v.validate(W, 0.0, 1.1)
    assert 'ahead of the local clock' in v.validate(W, 2.0, 1.1)
    assert 'out of order' in v.validate(W, 0.5, 1.1)
    assert v.validate(['x'] * 6, 1.2, 1.2).startswith('malformed')
    assert v.validate(None, 1.2, 1.2).startswith('malformed')
    c = v.counters.as_dict()
    assert (c['accepted'], c['rejected'], c['length_mismatch'], c['nonfinite'], c['zero_stamp'],
            c['future_stamp'], c['out_of_order'], c['malformed']) == (2, 7, 1, 1, 1, 1, 1, 2)
    assert set(c) == {'accepted', 'rejected', 'clock_resync'} | set(WRENCH_CAUSES)
    with pytest.raises(ValidationConfigError):
        WrenchValidator(max_future_s=math.inf)


def test_a_stamp_with_nanosec_of_a_second_or_more_is_malformed():
    # (999, 1.01e9) is not a builtin_interfaces/Time; its float, 1000.01 s, looks fine, and was
    # accepted and copied to every output
    v = make()
    assert v.validate(NAMES, P, [], [], 1000.0, 1000.0, nanosec=0) is None
    for nanosec in (1_010_000_000, 1_000_000_000, 2 ** 32 - 1, -1):
        r = v.validate(NAMES, P, [], [], 1000.01, 1000.01, nanosec=nanosec)
        assert r.startswith(f'stamp nanosec is {nanosec} in /joint_states, not in [0, 1e9)'), r
    assert v.counters['malformed'] == 4 and v.counters['accepted'] == 1
    # the same time, stamped right ((1000, 0.01e9)): accepted, nothing remembered of the others
    assert v.validate(NAMES, P, [], [], 1000.01, 1000.01, nanosec=10_000_000) is None
    w = WrenchValidator()
    assert 'not a valid builtin_interfaces/Time' in w.validate(W, 1000.01, 1000.01,
                                                               nanosec=1_010_000_000)
    assert w.counters['malformed'] == 1 and w.validate(W, 1000.01, 1000.01, 10_000_000) is None


def test_a_wrench_in_another_frame_is_refused_an_empty_frame_is_not():
    v = WrenchValidator(frame_id='ft_sensor')
    assert v.validate(W, 1.0, 1.0, frame_id=None) is None         # the reader compared it
    assert v.validate(W, 1.001, 1.001, frame_id='') is None       # drivers often leave it
    assert v.validate(W, 1.002, 1.002, frame_id='ft_sensor') is None
    assert v.validate(W, 1.0025, 1.0025, frame_id='robot1/ft_sensor') is None   # tf prefix
    assert v.validate(W, 1.0027, 1.0027, frame_id='my_ft_sensor') == (
        "wrench frame_id 'my_ft_sensor' in /ft_sensor/wrench is not the force-torque sensor "
        "frame 'ft_sensor': publish the wrench in the sensor frame (or with an empty frame_id), "
        'or name its URDF link with ft_sensor_link')
    r = v.validate(W, 1.003, 1.003, frame_id='base_link')
    assert r.startswith("wrench frame_id 'base_link' in /ft_sensor/wrench is not the "
                        "force-torque sensor frame 'ft_sensor'"), r
    assert v.counters['wrong_frame'] == 2 and v.counters['rejected'] == 2
    assert v.validate(W, 1.003, 1.003) is None         # nothing remembered of the refused one
    unchecked = WrenchValidator()                     # no sensor frame known: not checked
    assert unchecked.validate(W, 1.0, 1.0, frame_id='base_link') is None


# ----------------------------------------------------------------------------- plausibility
LIMITS = {'lower': [-1.0] * 7, 'upper': [2.0] * 7, 'velocity_limit': [1.5] * 7,
          'effort_limit': [100.0] * 7}


def plausible(**kw):
    bounds = Plausibility.from_limits(**LIMITS, position_margin=0.1, velocity_factor=1.5,
                                      effort_factor=2.0)
    return JointStateValidator(NAMES, plausibility=bounds, **kw)


@pytest.mark.parametrize('field,value,cause', [
    ('position', 2.11, 'beyond_limits'), ('position', -1.11, 'beyond_limits'),
    ('position', 102.0, 'beyond_limits'), ('position', 1e308, 'beyond_limits'),
    ('velocity', 2.26, 'implausible_velocity'), ('velocity', -1e308, 'implausible_velocity'),
    ('effort', 200.5, 'implausible_effort'), ('effort', 1e308, 'implausible_effort')])
def test_finite_but_impossible_joint_values(field, value, cause):
    v = plausible()
    arrays = {'position': [0.5] * 7, 'velocity': [0.0] * 7, 'effort': [1.0] * 7}
    arrays[field][4] = value
    reason = v.validate(NAMES, arrays['position'], arrays['velocity'], arrays['effort'],
                        1.0, 1.0)
    assert reason is not None and "'joint5'" in reason and repr(value) in reason
    assert v.counters[cause] == 1 and v.counters['rejected'] == 1


def test_values_within_the_margin_and_factors_are_accepted():
    v = plausible()
    assert v.validate(NAMES, [2.09] * 7, [2.24] * 7, [-199.0] * 7, 1.0, 1.0) is None
    assert v.validate(NAMES, [-1.09] * 7, [], [], 1.001, 1.001) is None


def test_a_margin_per_joint_for_joints_of_different_units():
    # a revolute joint (rad) and a gripper finger of 4 cm range (m)
    bounds = Plausibility.from_limits([-1.0, 0.0], [1.0, 0.04], [2.0, 0.2], [50.0, 20.0],
                                      position_margin=[0.1, 0.01])
    v = JointStateValidator(['arm', 'finger'], plausibility=bounds)
    assert v.validate(['arm', 'finger'], [1.09, 0.049], [], [], 1.0, 1.0) is None
    reason = v.validate(['arm', 'finger'], [0.0, 0.06], [], [], 1.1, 1.1)
    assert reason is not None and "'finger'" in reason and v.counters['beyond_limits'] == 1
    with pytest.raises(ValidationConfigError, match='one per joint'):
        Plausibility.from_limits([-1.0, 0.0], [1.0, 0.04], [2.0, 0.2], [50.0, 20.0],
                                 position_margin=[0.1, 0.01, 0.2])
    with pytest.raises(ValidationConfigError, match='finite and >= 0'):
        Plausibility.from_limits([-1.0, 0.0], [1.0, 0.04], [2.0, 0.2], [50.0, 20.0],
                                 position_margin=[0.1, math.nan])


def test_joints_without_urdf_limits_get_generic_caps():
    bounds = Plausibility.from_limits([-np.inf, -1.0], [np.inf, 1.0], [0.0, 2.0], [np.nan, 5.0])
    v = JointStateValidator(['c', 'r'], plausibility=bounds)
    assert v.validate(['c', 'r'], [50.0, 0.0], [VELOCITY_CAP * 0.9, 0.0], [], 1.0, 1.0) is None
    assert 'outside its possible range' in v.validate(
        ['c', 'r'], [ABS_POSITION_CAP * 1.01, 0.0], [], [], 1.1, 1.1)
    assert 'beyond the possible' in v.validate(['c', 'r'], [0.0, 0.0], [VELOCITY_CAP * 1.1, 0.0],
                                               [], 1.2, 1.2)


def test_bad_plausibility_settings_raise():
    with pytest.raises(ValidationConfigError, match='velocity_factor'):
        Plausibility.from_limits(**LIMITS, velocity_factor=0.5)
    with pytest.raises(ValidationConfigError, match='position_margin'):
        Plausibility.from_limits(**LIMITS, position_margin=-1.0)
    bounds = Plausibility.from_limits(**LIMITS)
    with pytest.raises(ValidationConfigError, match='3 values'):
        JointStateValidator(NAMES[:3], plausibility=bounds)


def test_subset_messages_are_checked_against_their_own_joints():
    v = plausible(unknown_joints='ignore')
    assert v.validate(['finger', 'joint3'], [55.0, 0.5], [], [], 1.0, 1.0) is None
    assert "'joint3'" in v.validate(['finger', 'joint3'], [0.0, 5.0], [], [], 1.1, 1.1)


def test_wrench_beyond_sensor_range():
    v = WrenchValidator(force_range_n=500.0, torque_range_nm=20.0)
    assert v.validate([499.0, -499.0, 0.0, 19.9, 0.0, -19.9], 1.0, 1.0) is None
    assert 'fy is -501.0 N' in v.validate([0.0, -501.0, 0.0, 0.0, 0.0, 0.0], 1.1, 1.1)
    assert 'tz is 1e+308 N·m' in v.validate([0.0] * 5 + [1e308], 1.2, 1.2)
    assert v.counters['beyond_range'] == 2
    with pytest.raises(ValidationConfigError, match='force_range_n'):
        WrenchValidator(force_range_n=-1.0)


# ----------------------------------------------------------------------------- stamps
def stream(v, start, count, period=0.001, latency=0.0002):
    """Feed ``count`` good samples stamped from ``start``; return the last stamp."""
    for k in range(count):
        t = start + k * period
        assert v.validate(NAMES, P, [], [], t, t + latency) is None, v.last_reason
    return start + (count - 1) * period


def test_a_sample_stamped_ahead_of_the_stream_cannot_poison_it():
    v = make(max_future_s=0.1)
    last = stream(v, 100.0, 50)
    # within max_future_s of the local clock, but 50 ms ahead of the stream's own clock
    r = v.validate(NAMES, P, [], [], last + 0.05, last + 0.0012)
    assert 'ahead of the clock of the other samples of the stream' in r
    assert v.counters['future_stamp'] == 1
    # the good samples after it are not out of order: nothing was remembered of it
    stream(v, last + 0.001, 20)
    assert v.counters['out_of_order'] == 0


@pytest.mark.parametrize('period', [0.001, 0.01])
def test_on_time_samples_after_a_startup_backlog_are_accepted(period):
    # the twin was busy at start: the first second of samples all reached it 80 ms late
    v = make(max_future_s=0.1)
    last = stream(v, 100.0, int(round(1.0 / period)), period=period, latency=0.08)
    # then it caught up: the same stream, now received 0.2 ms after stamping, is good
    last = stream(v, last + period, 30, period=period)
    assert v.counters['future_stamp'] == 0
    # and the stream's clock was re-learnt from them: a stamp 50 ms ahead is still refused
    r = v.validate(NAMES, P, [], [], last + 0.05, last + 0.0012)
    assert 'ahead of the clock of the other samples of the stream' in r
    assert v.counters['future_stamp'] == 1


def _feed(v, t, now):
    """Validate one good sample stamped ``t`` received at ``now`` (joint state or wrench)."""
    if isinstance(v, WrenchValidator):
        return v.validate([0.0] * 6, t, now)
    return v.validate(NAMES, P, [], [], t, now)


@pytest.mark.parametrize('make_validator', [make, lambda **kw: WrenchValidator(**kw)])
def test_a_startup_backlog_then_a_gap_costs_a_few_samples_not_resync_s(make_validator):
    # seen in `make demo`: the first samples reached the twin 12 ms late (a start-up backlog),
    # the robot then paused 15 ms (its own start-up) and went on, on time. Its first on-time
    # sample did not continue the accepted ones, and each later one fell further from them:
    # every sample was refused for resync_s (534 of them). Now AHEAD_RUN of them in sequence
    # are taken as the stream itself.
    v = make_validator(max_future_s=0.1)

    for k in range(50):
        assert _feed(v, 100.0 + k * 0.001, 100.012 + k * 0.001) is None
    start = 100.049 + 0.015
    reasons = [_feed(v, start + k * 0.001, start + k * 0.001 + 0.0002) for k in range(100)]
    refused = [k for k, r in enumerate(reasons) if r is not None]
    assert refused == list(range(StampGate.AHEAD_RUN - 1)), reasons[:3]
    assert v.counters['clock_resync'] == 1
    # the stream's clock is the true one again: one sample stamped 30 ms ahead is refused
    last = start + 0.099
    assert 'ahead of the clock' in _feed(v, last + 0.03, last + 0.0012)


@pytest.mark.parametrize('make_validator', [make, lambda **kw: WrenchValidator(**kw)])
def test_a_backlog_worked_through_then_its_queue_s_gap_costs_no_sample(make_validator):
    # seen starting the twin beside a robot already streaming at 1 kHz: its first 99 samples
    # were taken back to back, 0.2 ms apart, as their lateness fell from 120 to 100 ms (a
    # backlog worked through); meanwhile its queue had overflowed, so the next sample came
    # 80 ms on, 0.2 ms after its stamp. 19 good samples were refused before AHEAD_RUN resynced.
    v = make_validator(max_future_s=0.5)

    for k in range(99):
        assert _feed(v, 100.0 + k * 0.001, 100.12 + k * 0.0002) is None
    start = 100.098 + 0.080
    reasons = [_feed(v, start + k * 0.001, start + k * 0.001 + 0.0002) for k in range(50)]
    assert reasons == [None] * 50
    assert v.counters['clock_resync'] == 1
    # the stream's clock is the true one again: a sample stamped 30 ms ahead is refused
    last = start + 0.049
    assert 'ahead of the clock' in _feed(v, last + 0.03, last + 0.0012)
    # a lead no backlog explains (a clock that jumps seconds on) is left to the resync rules
    v = make_validator(max_future_s=10.0)
    for k in range(99):
        assert _feed(v, 100.0 + k * 0.001, 100.12 + k * 0.0002) is None
    assert 'ahead of the clock' in _feed(v, 103.0, 100.15)


def test_a_sample_ahead_after_a_batch_of_a_few_samples_is_still_refused():
    # a robot that sends its samples in batches of 4 (20 us apart every 4 ms) is no backlog:
    # one message stamped ahead of its clock is refused as before
    v = make(max_future_s=0.5)
    for k in range(200):
        t = 100.0 + k * 0.001
        now = 100.0005 + (k // 4) * 0.004 + 0.003 + (k % 4) * 2e-5
        assert v.validate(NAMES, P, [], [], t, now) is None, v.last_reason
    r = v.validate(NAMES, P, [], [], 100.199 + 0.05, now + 2e-5)
    assert 'ahead of the clock of the other samples of the stream' in r
    assert v.counters['clock_resync'] == 0


def test_samples_ahead_among_other_bad_ones_never_make_a_run():
    # a publisher stamping ahead, in sequence, between other bad messages (a flood while the
    # robot's own stream is starved): the run needs AHEAD_RUN ahead samples and nothing else
    v = make(max_future_s=0.1)
    last = stream(v, 100.0, 50)
    for k in range(1, 200):
        now = last + k * 0.001
        if k % 3:
            assert 'ahead of the clock' in v.validate(NAMES, P, [], [], now + 0.03, now)
        else:
            assert 'is nan' in v.validate(NAMES, [math.nan] + P[1:], [], [], now, now)
    assert v.counters['clock_resync'] == 0


def test_a_gap_in_the_stream_does_not_widen_the_sequence_window():
    v = make(max_future_s=0.1)
    last = stream(v, 100.0, 50)
    last = stream(v, last + 1.0, 5)          # the robot paused for a second, then went on
    r = v.validate(NAMES, P, [], [], last + 0.03, last + 0.0012)
    assert 'ahead of the clock of the other samples of the stream' in r


def test_a_real_clock_step_is_followed_after_resync_s():
    v = make(max_future_s=None, resync_s=0.05)
    last = stream(v, 100.0, 20)
    t, now = 50.0, last + 0.0012              # the robot restarted: its clock is 50 s back
    reasons = []
    for k in range(100):
        reasons.append(v.validate(NAMES, P, [], [], t + k * 0.001, now + k * 0.001))
    assert 'out of order' in reasons[0]
    accepted = [k for k, r in enumerate(reasons) if r is None]
    assert accepted and 50 <= accepted[0] <= 51      # resync_s of failures, to float rounding
    assert all(r is None for r in reasons[accepted[0]:])
    assert v.counters['clock_resync'] == 1


def test_bad_stamps_of_several_kinds_never_add_up_to_a_resync():
    """A flood of bad stamps (50 ms ahead, 2 s old) while the good stream is starved."""
    v = make(max_future_s=0.1, resync_s=0.05)
    last = stream(v, 100.0, 20)
    for k in range(1, 400):
        now = last + k * 0.001
        stamp = now + 0.05 if k % 2 else now - 2.0
        assert v.validate(NAMES, P, [], [], stamp, now) is not None
    assert v.counters['clock_resync'] == 0


def test_a_good_sample_between_bad_ones_prevents_a_resync():
    v = make(max_future_s=None, resync_s=0.02)
    last = stream(v, 100.0, 20)
    for k in range(1, 60):
        now = last + k * 0.001 + 0.0002
        if k % 10 == 0:      # the real stream goes on ...
            assert v.validate(NAMES, P, [], [], last + k * 0.001, now) is None
        else:                # ... between messages from a clock 10 s ahead
            assert v.validate(NAMES, P, [], [], last + 10.0 + k * 0.001, now) is not None
    assert v.counters['clock_resync'] == 0
