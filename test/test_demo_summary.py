"""The demo's verdict: which alarm answers the fault, and which are the emulated robot's echoes."""
from types import SimpleNamespace

from robot_twin.demo import summarize

FAULTS = [{'type': 'friction_increase', 'joint': 'joint3', 'start_s': 36.0}]


def observed(alarms, stalls=(), rejections=(), late_sends=()):
    """Return what the demo's observer saw (stamps: scenario seconds, identity mapping)."""
    return SimpleNamespace(residual_count=1000, latency_s=[0.001], commissioned_at=30.0,
                           first_alarm=None, first_alarm_groups=None,
                           stalls=list(stalls), rejections=list(rejections),
                           late_sends=list(late_sends), alarms=alarms, commands=[])


def verdict(obs):
    lines = []
    code = summarize(obs, FAULTS, [], lines.append, lambda t: t)
    return code, '\n'.join(lines)


def test_the_fault_found_on_its_joint_passes():
    code, text = verdict(observed([('joint3', 'friction_increase', 36.4)]))
    assert code == 0 and 'detected friction_increase 0.40 s after its onset' in text


def test_an_alarm_on_another_joint_fails():
    code, text = verdict(observed([('joint7', 'sensor_bias', 36.4),
                                   ('joint3', 'friction_increase', 37.0)]))
    assert code == 1 and 'alarm on joint7, fault was on joint3' in text


def test_an_echo_of_the_robots_own_transient_is_named_and_passed_over():
    # the emulated robot was starved at 36.2 s (it dropped samples): the joint7 alarm right
    # after is its echo; the answer is the next alarm, on the fault's joint
    obs = observed([('joint6', 'friction_increase', 35.5), ('joint7', 'sensor_bias', 36.4),
                    ('joint3', 'friction_increase', 37.0)],
                   stalls=[35.0, 36.2])
    code, text = verdict(obs)
    assert code == 0, text
    assert 'alarm at t=36.40 s (joint7: sensor_bias) followed a transient' in text
    assert 'alarm at t=35.50 s (joint6: friction_increase) followed a transient' in text
    assert 'on joint3 (friction_increase)' in text


def test_alarms_without_a_transient_before_the_fault_fail():
    obs = observed([('joint6', 'friction_increase', 20.0), ('joint3', 'friction_increase', 37.0)],
                   rejections=[10.0])
    code, text = verdict(obs)
    assert code == 1 and 'came before the fault' in text


def test_only_echoes_after_the_fault_is_not_a_detection():
    obs = observed([('joint7', 'sensor_bias', 36.4)], rejections=[36.1])
    code, text = verdict(obs)
    assert code == 1 and 'was not detected' in text


def test_a_delay_alarm_after_the_robot_sent_late_is_its_echo():
    # the emulated robot sent its samples late after 33.0 s (plant status): the twin's delay
    # alarm at 33.8 s is that stream's echo, not the answer; without the late sends it fails
    alarms = [('', 'delay', 33.8), ('joint3', 'friction_increase', 36.5)]
    code, text = verdict(observed(alarms, late_sends=[33.0]))
    assert code == 0, text
    assert 'alarm at t=33.80 s (robot: delay) followed a transient' in text
    code, text = verdict(observed(alarms))
    assert code == 1
