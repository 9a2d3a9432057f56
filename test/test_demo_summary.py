"""The demo's verdict: which alarm answers the fault, and which are the emulated robot's echoes."""
from types import SimpleNamespace

from robot_twin.demo import summarize

FAULTS = [{'type': 'friction_increase', 'joint': 'joint3', 'start_s': 36.0}]


def observed(alarms, stalls=(), rejections=(), late_sends=(), limit_hits=()):
    """Return what the demo's observer saw (stamps: scenario seconds, identity mapping)."""
    return SimpleNamespace(residual_count=1000, latency_s=[0.001], commissioned_at=30.0,
                           first_alarm=None, first_alarm_groups=None,
                           stalls=list(stalls), rejections=list(rejections),
                           late_sends=list(late_sends), limit_hits=list(limit_hits),
                           alarms=alarms, commands=[])


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


def test_an_alarm_after_the_robot_hit_its_speed_limiter_is_its_echo():
    # a late set-point turned into a fast move that the emulated robot's speed limiter cut
    # short (over_speed went up after the plant report at 36.0 s): the twin's collision alarm
    # on another joint at 36.1 s is that cut's echo, and the fault is still found on joint3
    alarms = [('joint4', 'collision_force', 36.1), ('joint3', 'friction_increase', 36.9)]
    code, text = verdict(observed(alarms, limit_hits=[36.0]))
    assert code == 0, text
    assert 'speed limiter' in text and 'detected friction_increase 0.90 s after' in text
    code, text = verdict(observed(alarms))
    assert code == 1 and 'alarm on joint4' in text


def _rul(**levels):
    """``twin/rul/<joint>`` statuses as the demo's observer keeps them."""
    return {f'twin/rul/{joint}': (level, f'{level} message of {joint}', {})
            for joint, level in levels.items()}


def rul_verdict_of(rul, changes=(), transients=(), ok=True):
    """Run the summary with a lifecycle check that reports ``rul`` and ``changes``."""
    obs = observed([('joint3', 'friction_increase', 36.4)], stalls=transients)
    obs.rul = rul
    lines = []
    code = summarize(obs, FAULTS, [], lines.append, lambda t: t,
                     lifecycle=lambda: (ok, list(changes)), rul_window_s=12.0)
    return code, '\n'.join(lines)


def test_a_joint_without_a_fault_at_rul_error_fails_the_demo():
    # the faulted joint3 may end at ERROR (that is the demo's point); joint5 has no fault
    code, text = rul_verdict_of(_rul(joint3='ERROR', joint5='ERROR', joint1='OK'),
                                changes=[('joint5', 'WARN', 40.0), ('joint5', 'ERROR', 44.0)])
    assert code == 1, text
    assert 'demo OK' not in text and 'demo FAILED' in text
    assert 'PROBLEM: the RUL of joint5, which has no fault in this scenario, ends at ERROR ' \
           'since t=44.00 s: ERROR message of joint5' in text
    assert 'joint3, which' not in text


def test_the_faulted_joint_at_rul_error_passes_and_a_healthy_joint_at_warn_is_warned():
    code, text = rul_verdict_of(_rul(joint3='ERROR', joint6='WARN', joint1='OK'))
    assert code == 0, text
    assert 'WARNING: the RUL of joint6, which has no fault in this scenario, ends at WARN: ' \
           'WARN message of joint6' in text
    assert 'demo OK' in text


def test_a_rul_error_after_a_transient_of_the_robot_is_named_as_its_echo():
    # the emulated robot stalled at 40.0 s; joint5 turned ERROR at 44.0 s, within the epochs
    # that took the stall in: named, not a failure. A stall long before is no excuse.
    changes = [('joint5', 'WARN', 43.0), ('joint5', 'ERROR', 44.0), ('joint5', 'ERROR', 45.0)]
    code, text = rul_verdict_of(_rul(joint5='ERROR'), changes, transients=[40.0])
    assert code == 0, text
    assert 'RUL ERROR of joint5 since t=44.00 s (ERROR message of joint5) followed a ' \
           'transient of the emulated robot itself at t=40.00 s' in text
    code, text = rul_verdict_of(_rul(joint5='ERROR'), changes, transients=[20.0])
    assert code == 1 and 'ends at ERROR since t=44.00 s' in text
    # an ERROR whose start the log does not show cannot be matched to a transient
    code, text = rul_verdict_of(_rul(joint5='ERROR'), (), transients=[40.0])
    assert code == 1 and 'ends at ERROR: ERROR message of joint5' in text


def test_a_broken_lifecycle_log_is_a_problem_before_the_verdict():
    code, text = rul_verdict_of(_rul(joint3='WARN'), ok=False)
    assert code == 1 and 'demo OK' not in text
    assert 'the RUL report or the lifecycle log is missing or broken' in text


def test_the_rul_echo_window_spans_the_demo_s_health_epochs():
    from robot_twin.demo import build_processes, rul_echo_window_s, RUL_ECHO_EPOCHS, \
        STALL_WINDOW_S
    from twin_sim.resources import fault_scenario
    processes = build_processes(fault_scenario('demo'), '/tmp', False, None)
    # config/demo.yaml: 3 s health epochs
    assert rul_echo_window_s(processes) == RUL_ECHO_EPOCHS * 3.0 + STALL_WINDOW_S


def test_the_demo_s_rul_summary_keeps_fractions_of_an_hour(tmp_path):
    # the demo compresses wear into minutes: whole hours read "RUL 0 h, 0-0 h"
    from robot_twin.demo import summarize_lifecycle
    obs = SimpleNamespace(speed_scale=None, rul={'joint3': (
        'ERROR', 'replace', {'rul_hours': '0.0123', 'rul_lower_hours': '0.004',
                             'rul_upper_hours': '0.031', 'recommended_action': 'replace'})})
    lines = []
    ok, _ = summarize_lifecycle(obs, str(tmp_path), lines.append)
    assert not ok                        # no lifecycle log in tmp_path
    assert 'RUL 0.0123 h, 0.004-0.031 h; replace' in lines[0]
