"""The detector report becomes the contract's diagnostic statuses and rviz marker specs."""
import dataclasses

import numpy as np

from twin_anomaly.detector import ResidualDetector
from twin_anomaly.report import marker_specs, ROBOT_STATUS, score_color, status_entries

NAMES = ['j1', 'j2']


def run_detector(offset_after=None, seconds=6.0):
    det = ResidualDetector(NAMES, commissioning_duration_s=2.0)
    rng = np.random.default_rng(0)
    for k in range(int(seconds * 1000)):
        t = k * 1e-3
        eff = rng.normal(0.0, 0.05, 2)
        if offset_after is not None and t >= offset_after:
            eff[1] += 5.0
        det.update(t, rng.normal(0, 1e-5, 2), rng.normal(0, 1e-3, 2), eff)
    return det.report()


def test_commissioning_report_is_ok_everywhere():
    det = ResidualDetector(NAMES, commissioning_duration_s=30.0)
    det.update(0.0, np.zeros(2), np.zeros(2), np.zeros(2))
    entries = status_entries(det.report())
    assert [e.name for e in entries] == [ROBOT_STATUS, 'twin/anomaly/j1', 'twin/anomaly/j2']
    assert all(e.level == 'OK' and e.message == 'commissioning' for e in entries)
    for e in entries:
        assert {'score', 'threshold', 'fault_type', 'since'} <= set(e.values)


def test_alarm_names_the_joint_and_since():
    state = run_detector(offset_after=4.0)
    robot, j1, j2 = status_entries(state)
    assert robot.level == 'ERROR' and robot.values['joint'] == 'j2'
    assert float(robot.values['since']) >= 4.0
    assert j2.level == 'ERROR' and j1.level in ('OK', 'WARN')
    assert j2.values['threshold'] == 1.0


def test_a_fault_placed_on_a_joint_from_other_groups_shows_on_that_joint_too():
    # the alarm is on j2's group, but the classifier placed the fault on j1 (as it places a
    # force on a link on the most distal joint of a spread alarm): j1's own status says so
    state = run_detector(offset_after=4.0)
    state = dataclasses.replace(state, faulty_joint='j1', fault_type='collision_force')
    robot, j1, j2 = status_entries(state)
    assert robot.values['joint'] == 'j1'
    assert j1.level == 'ERROR' and j1.values['fault_type'] == 'collision_force'
    assert 'localized' in j1.message and j1.values['since'] == robot.values['since']
    assert j2.level == 'ERROR'


def test_markers_grow_and_redden_with_the_score():
    state = run_detector(offset_after=4.0)
    specs = marker_specs(state, {'j1': np.zeros(3), 'j2': np.array([0.0, 0.0, 0.4])})
    by_joint = {s.joint: s for s in specs}
    assert by_joint['j2'].scale_m > by_joint['j1'].scale_m
    assert by_joint['j2'].rgba[0] == 1.0 and by_joint['j2'].rgba[1] < by_joint['j1'].rgba[1]
    assert marker_specs(state, {}) == []
    assert score_color(float('nan'))[0] == 1.0
