"""
The lines ``robot-twin replay`` prints after a replay, from a report.

With ``--thresholds`` the twin does not commission: the summary says where the thresholds came
from. A fault type of the whole robot (dropout, delay, payload_change) names no joint, as the
monitor's verdict does, although a joint's detectors raised the alarm.
"""
from robot_twin.replay_cli import summary_lines


def _report(anomalies=(), events=(), commissioning=None):
    """Return a replay report with only what :func:`summary_lines` reads."""
    return {'recording': {'name': 'run.mcap', 'note': None},
            'messages': {'joint_states': 100, 'wrench': 0, 'samples': 100, 'residuals': 0,
                         'samples_without_effort': 0},
            'start': {'aligned_with_live_twin': False}, 'rejections': [], 'payloads': None,
            'residuals': {}, 'commissioning': commissioning, 'anomalies': list(anomalies),
            'live_twin': None, 'first_alarm': None, 'events': list(events)}


def _episode(group, fault_type):
    return {'group': group, 'fault_type': fault_type, 'since': 4.0, 'raised_at': 4.1,
            'cleared_at': None}


def test_thresholds_given_are_said_to_be_loaded_from_their_file():
    # the monitor read a private copy of the file (replay.py): the user's file is named
    loaded = {'kind': 'thresholds_loaded', 'file': '/tmp/robot_twin_replay_x/arm.yaml',
              'calibrated': True, 'robot_time': 0.0}
    lines = summary_lines(_report(events=[loaded]), '/data/arm.yaml')
    assert 'commissioning did not finish in this recording' not in lines
    assert ('calibration and thresholds loaded from /data/arm.yaml (no commissioning on this '
            'recording)') in lines
    # without --thresholds and without a finished commissioning, as before
    assert 'commissioning did not finish in this recording' in summary_lines(_report())


def test_a_fault_of_the_whole_robot_is_printed_without_a_joint():
    report = _report(anomalies=[_episode('joint3', 'dropout'),
                                _episode('joint5', 'friction_increase')])
    lines = summary_lines(report)
    assert ('anomaly on robot: dropout since 4.000 s (raised at 4.100 s, cleared never; '
            'alarmed group joint3)') in lines
    assert ('anomaly on joint5: friction_increase since 4.000 s (raised at 4.100 s, cleared '
            'never)') in lines
    assert not any(line.startswith('anomaly on joint3') for line in lines)
