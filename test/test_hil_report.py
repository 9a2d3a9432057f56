"""
``robot-twin hil-report`` on a recording of a simulated HIL run (test/bag_testing.py).

The recording has the plant's samples, the controller's 100 Hz commands, two commands beyond
the URDF limits, the plant's status (real-time timing, its fault scenario) and no /twin/anomaly,
so faults are detected by replaying it. The report must show small tracking errors, exactly the
commands beyond limits, the plant's timing, and the injected fault detected on its joint.
"""
import json

from bag_testing import EPOCH_S, simulate, STORE, write_bag
import numpy as np
import pytest
from robot_twin.cli import main as cli_main
from robot_twin.hil_report import match_faults
import yaml

FAULT = {'name': 'hil_report_test', 'faults': [
    {'type': 'friction_increase', 'joint': 'joint5', 'start_s': 4.0, 'ramp_s': 0.0,
     'size': 3.0}]}
CONFIG = """
robot_twin:
  ros__parameters:
    nodes: [twin_bridge, twin_sim, twin_anomaly]
/**/twin_anomaly:
  ros__parameters:
    commissioning_duration_s: 2.5
    model_path: rules
"""
T = STORE.types


def _status(values):
    kv = [T['diagnostic_msgs/msg/KeyValue'](key=k, value=str(v)) for k, v in values.items()]
    status = T['diagnostic_msgs/msg/DiagnosticStatus'](
        level=0, name='twin/plant', message='running', hardware_id='robot_twin', values=kv)
    header = T['std_msgs/msg/Header'](stamp=T['builtin_interfaces/msg/Time'](sec=1, nanosec=0),
                                      frame_id='')
    return T['diagnostic_msgs/msg/DiagnosticArray'](header=header, status=[status])


def test_hil_report_of_a_recorded_run(tmp_path, capsys):
    from twin_sim.faults import FaultScenario
    scenario = tmp_path / 'scenario.yaml'
    scenario.write_text(yaml.safe_dump(FAULT))
    run = simulate(6.0, scenario=FaultScenario.load(scenario))
    end_ns = int((EPOCH_S + 6.5) * 1e9)
    timing = {'mode': 'realtime', 'scenario': str(scenario), 'start_stamp': f'{EPOCH_S:.6f}',
              'rate_hz': 1000.0, 'steps': 6000, 'deadline_misses': 3,
              'miss_fraction': 0.0005, 'overruns': 0, 'jitter_p50_us': 61.0,
              'jitter_p99_us': 240.0, 'jitter_max_us': 1800.0,
              'jitter_hist_edges_us': '0,10,20,50,100,200,500,1000,2000,5000,10000,20000',
              'jitter_hist_counts': '0,0,10,4000,1900,60,27,3,0,0,0,0'}

    def extra(writer, store):
        status = writer.add_connection('/twin/plant_status',
                                       'diagnostic_msgs/msg/DiagnosticArray', typestore=store)
        writer.write(status, end_ns, store.serialize_cdr(
            _status(timing), 'diagnostic_msgs/msg/DiagnosticArray'))
        forward = writer.add_connection('/forward_position_controller/commands',
                                        'std_msgs/msg/Float64MultiArray', typestore=store)
        layout = T['std_msgs/msg/MultiArrayLayout'](dim=[], data_offset=0)
        for k, q in enumerate(([9.0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, -9.0])):
            msg = T['std_msgs/msg/Float64MultiArray'](layout=layout, data=np.array(q, float))
            writer.write(forward, end_ns + k + 1,
                         store.serialize_cdr(msg, 'std_msgs/msg/Float64MultiArray'))

    bag = write_bag(tmp_path / 'hil', run, extra=extra)
    config = tmp_path / 'twin.yaml'
    config.write_text(CONFIG)
    out = tmp_path / 'report'
    assert cli_main(['hil-report', str(bag), '--output', str(out), '--config',
                     str(config)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / 'report.json').read_text())
    for joint, stats in report['tracking'].items():
        assert stats['samples'] > 5000 and stats['rms_rad'] < 0.05, (joint, stats)
    assert report['commands']['total'] == len(run.commands) + 2
    assert report['commands']['outside_limits'] == {'position': {'joint1': 1, 'joint7': 1}}
    assert report['timing']['deadline_misses'] == 3
    assert sum(report['timing']['jitter_histogram']['counts']) == 6000
    (fault,) = report['faults']['injected']
    assert fault['detected'] and fault['detected_on'] == 'joint5', report['faults']
    assert 0.0 <= fault['delay_s'] < 1.0
    assert report['faults']['detections_from'].startswith('a replay')
    assert sorted(report['plots']) == ['command_limits.png', 'faults.png',
                                       'jitter_histogram.png', 'tracking_error.png']
    assert all((out / p).stat().st_size > 1000 for p in report['plots'])
    assert 'deadline misses' in printed and 'detected on joint5' in printed


def test_fault_matching_counts_misses_and_false_alarms():
    injected = [{'type': 'collision_force', 'joint': None, 'start_s': 1.0, 'start_stamp': 11.0},
                {'type': 'sensor_bias', 'joint': 'j2', 'start_s': 5.0, 'start_stamp': 15.0}]
    detections = [{'group': 'j1', 'fault_type': 'x', 'since': 3.0},       # before any fault
                  {'group': 'j3', 'fault_type': 'y', 'since': 11.05}]
    rows, unexpected = match_faults(injected, detections)
    assert rows[0]['detected'] and rows[0]['detected_on'] == 'j3'
    assert rows[0]['delay_s'] == pytest.approx(0.05)
    assert not rows[1]['detected']
    assert unexpected == [detections[0]]


def test_hil_report_names_a_bad_recording(tmp_path, capsys):
    assert cli_main(['hil-report', str(tmp_path / 'missing'), '--output',
                     str(tmp_path / 'out')]) == 2
    err = capsys.readouterr().err
    assert err.startswith('robot-twin hil-report: ') and 'no such recording' in err


def test_hil_report_of_a_recording_without_commands_or_plant_status(tmp_path, capsys):
    # A recording of the robot's streams only: no command topic, no /twin/plant_status (a
    # robot recorded outside a HIL bench). rosbags reads every message when given no topic,
    # so these sections once read the joint states as commands and crashed.
    bag = write_bag(tmp_path / 'robot_only', simulate(1.0), commands=False)
    out = tmp_path / 'report'
    assert cli_main(['hil-report', str(bag), '--output', str(out)]) == 0
    captured = capsys.readouterr()
    assert 'Traceback' not in captured.err
    assert 'commands: 0, values outside limits: 0' in captured.out
    report = json.loads((out / 'report.json').read_text())
    assert report['commands']['total'] == 0
