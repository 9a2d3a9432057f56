"""Tests of JointMapper: permutations, subsets, the layout cache and the reverse direction."""
import array
import math

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from twin_bridge.mapping import format_joint_names, JointMapper, LayoutCache, MappingError

NAMES = ('shoulder', 'elbow', 'wrist', 'finger')


def test_permuted_message_lands_in_model_order():
    m = JointMapper(NAMES)
    idx = m.update(['wrist', 'shoulder', 'finger', 'elbow'], [3.0, 1.0, 4.0, 2.0],
                   [30.0, 10.0, 40.0, 20.0], [], stamp=5.0)
    np.testing.assert_array_equal(idx, [2, 0, 3, 1])
    np.testing.assert_array_equal(m.position, [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(m.velocity, [10.0, 20.0, 30.0, 40.0])
    assert np.isnan(m.effort).all()            # never provided
    np.testing.assert_array_equal(m.stamp, [5.0] * 4)
    assert m.all_received and m.never_received() == []
    assert m.never_received('effort') == list(NAMES)


def test_partial_messages_update_only_their_joints():
    m = JointMapper(NAMES)
    m.update(['elbow', 'shoulder'], [2.0, 1.0], [0.2, 0.1], [], stamp=1.0)
    assert not m.all_received
    assert m.never_received() == ['wrist', 'finger']
    m.update(['finger'], array.array('d', [4.0]), [], [9.0], stamp=1.5)
    assert m.never_received() == ['wrist']
    np.testing.assert_array_equal(m.position[[0, 1, 3]], [1.0, 2.0, 4.0])
    assert math.isnan(m.position[2])
    m.update(['shoulder'], [1.5], [], [], stamp=2.0)
    np.testing.assert_array_equal(m.position[[0, 1, 3]], [1.5, 2.0, 4.0])
    np.testing.assert_array_equal(m.velocity[[1, 3]], [0.2, math.nan])  # each joint: its own
    assert math.isnan(m.velocity[0])        # not provided at stamp 2: not stamp 1's 0.1
    np.testing.assert_array_equal(m.stamp[[0, 1, 3]], [2.0, 1.0, 1.5])
    m.reset()
    assert m.never_received() == list(NAMES) and np.isnan(m.position).all()


def test_empty_velocity_and_effort_are_not_provided_never_the_last_values():
    # sensor_msgs/JointState: an empty array means "not provided"; the values of an earlier
    # message must not be taken for this one's (they were: v=1.5, effort=40 kept for ever)
    m = JointMapper(NAMES)
    m.update(list(NAMES), [0.0] * 4, [1.5] * 4, [40.0] * 4, stamp=1.0)
    for k in range(3):
        m.update(list(NAMES), [0.0] * 4, [], [], stamp=2.0 + k)
        assert np.isnan(m.velocity).all() and np.isnan(m.effort).all()
    m.update(['elbow', 'shoulder'], [0.0, 0.0], [0.3, 0.2], [], stamp=6.0)   # a subset
    np.testing.assert_array_equal(m.velocity, [0.2, 0.3, math.nan, math.nan])
    assert np.isnan(m.effort).all()
    assert m.never_received('velocity') == [] and m.never_received('effort') == []


def test_layout_cache_fast_path_and_distinct_layouts():
    c = LayoutCache(NAMES)
    a = c.get(['elbow', 'shoulder'])
    assert c.get([''.join('elbow'), ''.join('shoulder')]) is a     # equal list: same layout
    b = c.get(['finger'])
    assert c.get(('elbow', 'shoulder')) is a                       # back to the first: cached
    assert c.get(['finger']) is b
    assert a.msg_idx is None and list(a.model_idx) == [1, 0]
    u = c.get(['x', 'elbow', 'elbow'])
    assert u.unknown == ('x',) and u.duplicates == ('elbow',)
    assert list(u.model_idx) == [1] and list(u.msg_idx) == [1]


def test_cache_bounded():
    c = LayoutCache(NAMES, max_layouts=2)
    for k in range(10):
        c.get(['shoulder'] * (k % 3 + 1))
    assert len(c._layouts) <= 2


def test_unknown_duplicate_and_length_errors():
    m = JointMapper(NAMES)
    with pytest.raises(MappingError, match=r"unknown joint\(s\) \['j8'\]; model has"):
        m.update(['j8'], [0.0])
    with pytest.raises(MappingError, match='duplicated'):
        m.update(['elbow', 'elbow'], [0.0, 0.0])
    with pytest.raises(MappingError, match='position has 1 values for 2'):
        m.update(['elbow', 'wrist'], [0.0])
    with pytest.raises(MappingError, match='velocity has 1 values for 2'):
        m.update(['elbow', 'wrist'], [0.0, 0.0], [1.0])


def test_ignore_unknown_drops_those_joints():
    m = JointMapper(NAMES, ignore_unknown=True)
    m.update(['gripper_a', 'wrist', 'gripper_b', 'elbow'], [9.0, 3.0, 8.0, 2.0],
             [], [90.0, 30.0, 80.0, 20.0])
    np.testing.assert_array_equal(m.position[[1, 2]], [2.0, 3.0])
    np.testing.assert_array_equal(m.effort[[1, 2]], [20.0, 30.0])
    assert m.never_received() == ['shoulder', 'finger']


def test_reverse_direction_to_message():
    m = JointMapper(NAMES)
    q = np.array([1.0, 2.0, 3.0, 4.0])
    assert m.to_message(q) == (list(NAMES), [1.0, 2.0, 3.0, 4.0])
    # A controller that owns only the arm joints, in its own order.
    assert m.to_message(q, ['wrist', 'shoulder', 'elbow']) == (
        ['wrist', 'shoulder', 'elbow'], [3.0, 1.0, 2.0])
    with pytest.raises(MappingError, match='unknown'):
        m.to_message(q, ['wrist', 'tool'])
    with pytest.raises(MappingError, match='model joint order'):
        m.to_message(q[:3])
    out = m.to_model(['finger', 'shoulder'], [4.0, 1.0])
    np.testing.assert_array_equal(out[[0, 3]], [1.0, 4.0])
    assert np.isnan(out[[1, 2]]).all()
    np.testing.assert_array_equal(m.to_model(['elbow'], [2.0], fill=0.0), [0.0, 2.0, 0.0, 0.0])
    with pytest.raises(MappingError):
        m.to_model(['elbow'], [1.0, 2.0])
    idx = m.indices(['finger', 'elbow'])
    assert list(idx) == [3, 1] and m.indices(['finger', 'elbow']) is idx


def test_config_errors():
    for names, words in [([], 'no joints'), (['a', 'a'], 'unique'), (['a', 3], 'strings')]:
        with pytest.raises(MappingError, match=words):
            JointMapper(names)
    with pytest.raises(MappingError, match='field'):
        JointMapper(NAMES).never_received('torque')


def test_format_joint_names():
    assert format_joint_names([f'joint{i}' for i in range(1, 8)]) == 'joint1..joint7'
    assert format_joint_names(['j0', 'j1', 'j2']) == 'j0..j2'
    assert format_joint_names(['j1', 'j3', 'j2']) == "'j1', 'j3', 'j2'"
    assert format_joint_names(['a']) == "'a'"
    assert format_joint_names([]) == '(no joints)'
    assert format_joint_names([f'x{i}y' for i in range(10)], limit=2) == "'x0y', 'x1y', ... " \
        '(10 joints)'


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.permutations(range(6)), st.integers(1, 6),
                          st.lists(st.floats(-10, 10), min_size=6, max_size=6)),
                min_size=1, max_size=20))
def test_random_permutations_and_subsets_match_a_dict_reference(messages):
    names = [f'j{i}' for i in range(6)]
    m = JointMapper(names)
    reference = {}
    for order, k, values in messages:
        sub = [names[i] for i in order[:k]]
        m.update(sub, values[:k], [2.0 * v for v in values[:k]], [])
        reference.update(zip(sub, values[:k]))
    for i, n in enumerate(names):
        if n in reference:
            assert m.position[i] == reference[n] and m.velocity[i] == 2.0 * reference[n]
        else:
            assert math.isnan(m.position[i])
    assert m.never_received() == [n for n in names if n not in reference]
