"""
``robot-twin hil-report`` on a recording of a simulated HIL run (test/bag_testing.py).

The recording has the plant's samples, the controller's 100 Hz commands, two commands beyond
the URDF limits, the plant's status (real-time timing, its fault scenario) and no /twin/anomaly,
so faults are detected by replaying it. The report must show small tracking errors, exactly the
commands beyond limits, the plant's timing, and the injected fault detected on its joint.
"""
import json
from pathlib import Path
import subprocess
import sys

from bag_testing import command, EPOCH_S, LATENCY_NS, REPLAY_CONFIG, Run, simulate, STORE, \
    trajectory, write_bag
import numpy as np
import pytest
from robot_twin.cli import main as cli_main
from robot_twin.hil_report import match_faults
import yaml

FAULT = {'name': 'hil_report_test', 'faults': [
    {'type': 'friction_increase', 'joint': 'joint5', 'start_s': 4.0, 'ramp_s': 0.0,
     'size': 3.0}]}
T = STORE.types
ROOT = Path(__file__).resolve().parents[1]


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
    config.write_text(REPLAY_CONFIG)
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
    rows, false_alarms, unexpected = match_faults(injected, detections)
    assert rows[0]['detected'] and rows[0]['detected_on'] == 'j3'
    assert rows[0]['delay_s'] == pytest.approx(0.05)
    assert not rows[1]['detected']
    assert false_alarms == [detections[0]] and unexpected == []


def test_an_alarm_before_the_onset_does_not_hide_the_detection():
    # the audit's recording: joint3 alarmed (and cleared) 4.4 s before its friction fault
    # began, then again 0.24 s after it; the first alarm of each joint alone said NOT detected
    injected = [{'type': 'friction_increase', 'joint': 'joint3', 'start_s': 42.0,
                 'start_stamp': 142.0}]
    detections = [{'group': 'joint2', 'fault_type': 'collision_force', 'since': 137.8},
                  {'group': 'joint3', 'fault_type': 'delay', 'since': 137.84},
                  {'group': 'joint3', 'fault_type': 'friction_increase', 'since': 142.24},
                  {'group': 'joint5', 'fault_type': 'collision_force', 'since': 143.1}]
    rows, false_alarms, unexpected = match_faults(injected, detections)
    assert rows[0]['detected'] and rows[0]['detected_on'] == 'joint3', rows
    assert rows[0]['delay_s'] == pytest.approx(0.24)
    assert false_alarms == detections[:2] and unexpected == [detections[3]]
    # nothing injected: every alarm is a false one
    assert match_faults([], detections) == ([], detections, [])


def _anomaly(store, stamp_s, alarms):
    """Return a /twin/anomaly report: ``alarms`` maps a joint to its ``since`` (None: OK)."""
    statuses = []
    for joint, since in alarms.items():
        values = {'fault_type': 'friction_increase' if since else 'none',
                  'since': f'{EPOCH_S + since:.6f}' if since else ''}
        kv = [T['diagnostic_msgs/msg/KeyValue'](key=k, value=v) for k, v in values.items()]
        statuses.append(T['diagnostic_msgs/msg/DiagnosticStatus'](
            level=2 if since else 0, name=f'twin/anomaly/{joint}',
            message='anomaly' if since else 'nominal', hardware_id='robot_twin', values=kv))
    ns = int((EPOCH_S + stamp_s) * 1e9)
    header = T['std_msgs/msg/Header'](
        stamp=T['builtin_interfaces/msg/Time'](sec=ns // 10 ** 9, nanosec=ns % 10 ** 9),
        frame_id='')
    return ns, store.serialize_cdr(T['diagnostic_msgs/msg/DiagnosticArray'](
        header=header, status=statuses), 'diagnostic_msgs/msg/DiagnosticArray')


def test_hil_report_counts_a_later_alarm_and_prints_one_onset_once(tmp_path):
    # a scenario with a step and a ramp of one wear (two entries, one onset, as demo.yaml);
    # the recorded live twin alarms joint3 at 0.2 s, clears it, alarms it again at 0.74 s
    scenario = tmp_path / 'scenario.yaml'
    scenario.write_text(yaml.safe_dump({'name': 'wear', 'faults': [
        {'type': 'friction_increase', 'joint': 'joint3', 'start_s': 0.5, 'ramp_s': 0.0,
         'size': 3.0},
        {'type': 'friction_increase', 'joint': 'joint3', 'start_s': 0.5, 'ramp_s': 30.0,
         'size': 4.0}]}))
    reports = [(0.1, {'joint3': None}), (0.3, {'joint3': 0.2}), (0.4, {'joint3': 0.2}),
               (0.6, {'joint3': None}), (0.8, {'joint3': 0.74}), (0.9, {'joint3': 0.74})]

    def extra(writer, store):
        status = writer.add_connection('/twin/plant_status',
                                       'diagnostic_msgs/msg/DiagnosticArray', typestore=store)
        writer.write(status, int((EPOCH_S + 1.0) * 1e9), store.serialize_cdr(
            _status({'mode': 'lockstep', 'scenario': str(scenario),
                     'start_stamp': f'{EPOCH_S:.6f}', 'steps': 1000, 'resends': 0}),
            'diagnostic_msgs/msg/DiagnosticArray'))
        anomaly = writer.add_connection('/twin/anomaly', 'diagnostic_msgs/msg/DiagnosticArray',
                                        typestore=store)
        for stamp_s, alarms in reports:
            writer.write(anomaly, *_anomaly(store, stamp_s, alarms))

    bag = write_bag(tmp_path / 'hil', simulate(1.0), extra=extra)
    out = tmp_path / 'report'
    # a process of its own: pybullet's C code prints its build time when first imported
    run = subprocess.run([sys.executable, '-m', 'robot_twin', 'hil-report', str(bag),
                          '--output', str(out)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert 'build time' not in run.stdout + run.stderr, run
    lines = [line for line in run.stdout.splitlines() if line.startswith('fault ')]
    assert lines == ['fault friction_increase on joint3 at 0.5 s (2 scenario entries): '
                     'detected on joint3 after 0.240 s'], run.stdout
    assert 'false alarms (before any fault began): 1' in run.stdout, run.stdout
    assert 'detected but not injected' not in run.stdout, run.stdout
    faults = json.loads((out / 'report.json').read_text())['faults']
    (fault,) = faults['injected']
    assert fault['scenario_entries'] == [0, 1] and fault['delay_s'] == pytest.approx(0.24)
    assert [a['since'] - EPOCH_S for a in faults['false_alarms']] == pytest.approx([0.2])
    assert faults['detected_not_injected'] == []


@pytest.mark.parametrize('make', ['file', 'under_a_file', 'report_is_a_directory'])
def test_hil_report_names_an_unusable_output_before_reading(tmp_path, capsys, make):
    target = tmp_path / 'notabag.txt'
    target.write_text('x')
    output = {'file': target, 'under_a_file': target / 'out',
              'report_is_a_directory': tmp_path / 'out'}[make]
    if make == 'report_is_a_directory':
        (output / 'report.json').mkdir(parents=True)
    # the recording is missing too: --output is checked first, and said in one line
    assert cli_main(['hil-report', str(tmp_path / 'missing'), '--output', str(output)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'robot-twin hil-report: --output {output}'), err
    assert len(err.strip().splitlines()) == 1 and 'Errno' not in err, err


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


def test_an_empty_anomaly_topic_counts_as_not_recorded(tmp_path, capsys):
    # a recorder beside the plant alone subscribes to /twin/anomaly and gets nothing: the bag
    # has the topic with no message. That is no live twin: detections come from a replay.
    from robot_twin.replay import open_recording, recorded_alarms

    def extra(writer, store):
        writer.add_connection('/twin/anomaly', 'diagnostic_msgs/msg/DiagnosticArray',
                              typestore=store)

    bag = write_bag(tmp_path / 'plant_only', simulate(1.0), extra=extra)
    reader, _note = open_recording(bag)
    try:
        assert any(c.topic == '/twin/anomaly' for c in reader.connections)
        assert recorded_alarms(reader, bag) is None
    finally:
        reader.close()
    out = tmp_path / 'report'
    assert cli_main(['hil-report', str(bag), '--output', str(out)]) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['faults']['detections_from'].startswith('a replay'), report['faults']


def test_a_bad_config_is_refused_even_when_the_recording_has_the_live_alarms(tmp_path, capsys):
    # with /twin/anomaly in the recording no replay runs, so --config was never read
    def extra(writer, store):
        anomaly = writer.add_connection('/twin/anomaly', 'diagnostic_msgs/msg/DiagnosticArray',
                                        typestore=store)
        writer.write(anomaly, *_anomaly(store, 0.5, {'joint3': None}))

    bag = write_bag(tmp_path / 'live', simulate(1.0), extra=extra)
    bad = tmp_path / 'bad.yaml'
    bad.write_text('robot_twin:\n  ros__parameters: {nodes: [twin_sim\n')
    out = tmp_path / 'report'
    assert cli_main(['hil-report', str(bag), '--output', str(out), '--config', str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'robot-twin hil-report: --config: {bad}, line 3, column 1'), err
    assert len(err.strip().splitlines()) == 1 and not out.exists(), err
    assert cli_main(['hil-report', str(bag), '--output', str(out), '--config',
                     str(tmp_path / 'none.yaml')]) == 2
    assert 'none.yaml' in capsys.readouterr().err
    assert cli_main(['hil-report', str(bag), '--output', str(out)]) == 0    # without: as ever


def test_the_report_says_what_the_recording_lacks_and_labels_empty_plots(tmp_path, capsys,
                                                                         monkeypatch):
    # the robot's streams only: no command, no /twin/plant_status
    from matplotlib.axes import Axes
    texts = []
    original = Axes.text

    def text(self, x, y, s, *args, **kwargs):
        texts.append(s)
        return original(self, x, y, s, *args, **kwargs)

    monkeypatch.setattr(Axes, 'text', text)
    bag = write_bag(tmp_path / 'robot_only', simulate(1.0), commands=False)
    out = tmp_path / 'report'
    assert cli_main(['hil-report', str(bag), '--output', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'missing: no commands (/joint_command or /forward_position_controller/commands) ' \
           'in the recording: no tracking error' in printed, printed
    assert 'missing: no /twin/plant_status (twin/plant) in the recording: no timing' in printed
    report = json.loads((out / 'report.json').read_text())
    assert len(report['missing']) == 2 and report['faults']['injected_known'] is False
    assert report['timing'] is None
    assert 'no position commands in the recording: no tracking error' in texts
    assert 'no /twin/plant_status in the recording: no timing' in texts
    assert 'no commands in the recording' in texts


def test_a_plant_status_without_step_counters_is_not_printed_as_lock_step():
    from robot_twin.hil_report_cli import summary_lines
    report = {'tracking': {'joint1': {'rms_rad': 0.01}},
              'commands': {'total': 5, 'outside_limits': {}},
              'timing': {'mode': 'realtime', 'rate_hz': None},
              'faults': {'injected': [], 'false_alarms': [], 'detected_not_injected': [],
                         'injected_known': True},
              'missing': ['/twin/plant_status has no step counters: no timing figures']}
    text = '\n'.join(summary_lines(report))
    assert 'None' not in text and 'lock-step' not in text, text
    assert 'missing: /twin/plant_status has no step counters' in text


def test_the_tracking_reference_is_what_the_plant_followed(tmp_path):
    # the arm holds still at 0 (1 kHz samples) while the controller sends the plant commands
    # it clips, rejects, or that switch it out of position mode: the reference must be what
    # the plant did with them (twin_sim.plant_commands, the plant's own rules)
    from twin_sim.urdf_model import RobotModel
    from twin_sim.world import Measurement
    model = RobotModel.from_urdf(ROOT / 'urdf' / 'robot_twin_arm.urdf')
    names, n = list(model.joint_names), model.n
    upper, lower = np.asarray(model.upper), np.asarray(model.lower)
    zero = np.zeros(n)
    samples = [Measurement(k * 1e-3, zero, zero, zero) for k in range(1, 1001)]
    more = [
        command(0.0, names, [5.0] * n),                           # clipped to upper
        command(0.1, names, [np.nan] + [0.0] * (n - 1)),          # rejected: NaN
        command(0.2, names[:1] * n, [1e6] * n),                   # rejected: duplicate names
        command(0.3, names, [0.0] * n, effort=[1.0] * 3),         # rejected: effort length
        command(0.35, names, [0.0] * n, effort=[np.nan] * n),     # rejected: NaN effort
        command(0.5, names, velocity=[0.1] * n),                  # velocity mode: no reference
        command(0.6, names, [-5.0] * n),                          # clipped to lower
        trajectory(0.7, names, [(1.0, [0.1] * n), (2.0, [0.0] * n)]),     # followed
        trajectory(0.8, names, [(0.01, lower + 0.05), (0.02, upper - 0.05)]),   # too fast
        command(0.9, names, effort=[0.0] * n)]                    # effort mode
    bag = write_bag(tmp_path / 'modes', Run(names, samples, []), wrench=False, more=more)
    out = tmp_path / 'report'
    assert cli_main(['hil-report', str(bag), '--output', str(out)]) == 0
    report = json.loads((out / 'report.json').read_text())
    commands = report['commands']
    assert commands['total'] == len(more)
    assert commands['rejected'] == 5 and commands['position_commands'] == 2
    log = np.array([m.t for m in samples]) + LATENCY_NS * 1e-9
    tracked = (log < 0.5) | ((log >= 0.6) & (log < 0.7))
    assert commands['untracked_samples'] == int(np.count_nonzero(~tracked))
    for j, name in enumerate(names):
        # error = 0 - reference: -upper while [5]*n is in force, -lower after [-5]*n
        expected = np.where(log[tracked] < 0.5, -upper[j], -lower[j])
        stats = report['tracking'][name]
        assert stats['samples'] == expected.size, (name, stats)
        assert stats['max_abs_rad'] == pytest.approx(np.max(np.abs(expected)), abs=1e-12)
        assert stats['rms_rad'] == pytest.approx(np.sqrt(np.mean(expected ** 2)), rel=1e-12)


def test_joints_a_position_command_leaves_out_are_held_where_they_were_measured(tmp_path):
    # the plant holds the joints a /joint_command position leaves out at their measured
    # position when the command comes (plant_node._apply_joint_command), not at the previous
    # reference: the report's reference for them must be that measured position
    from twin_sim.urdf_model import RobotModel
    from twin_sim.world import Measurement
    model = RobotModel.from_urdf(ROOT / 'urdf' / 'robot_twin_arm.urdf')
    names, n = list(model.joint_names), model.n
    t = np.arange(1, 1001) * 1e-3
    zero = np.zeros(n)
    samples = [Measurement(tk, np.full(n, 0.2 * tk), zero, zero) for tk in t]   # a slow ramp
    more = [command(0.0, names, [0.05] * n),                 # every joint
            command(0.5, names[:2], [0.3, 0.3])]             # the first two only
    bag = write_bag(tmp_path / 'partial', Run(names, samples, []), wrench=False, more=more)
    out = tmp_path / 'report'
    assert cli_main(['hil-report', str(bag), '--output', str(out)]) == 0
    report = json.loads((out / 'report.json').read_text())
    assert report['commands']['position_commands'] == 2
    log = t + LATENCY_NS * 1e-9
    # the plant got the second command after the sample of 0.499 s and before that of 0.5 s
    held = 0.2 * t[log <= 0.5][-1]
    assert held == pytest.approx(0.2 * 0.499, abs=1e-12)
    measured = 0.2 * t
    for j, name in enumerate(names):
        after = 0.3 if j < 2 else held
        expected = measured - np.where(log < 0.5, 0.05, after)
        stats = report['tracking'][name]
        assert stats['samples'] == t.size, (name, stats)
        assert stats['max_abs_rad'] == pytest.approx(np.max(np.abs(expected)), abs=1e-12)
        assert stats['rms_rad'] == pytest.approx(np.sqrt(np.mean(expected ** 2)), rel=1e-9)


def test_the_replay_for_detections_reads_the_named_topics(tmp_path, capsys, monkeypatch):
    # a namespaced robot: --joint-states-topic (and --wrench-topic) reach the replay too
    import robot_twin.hil_report as hil_report
    asked = []
    original = hil_report.replay

    def replay(bag, **kwargs):
        asked.append(kwargs)
        return original(bag, **kwargs)

    monkeypatch.setattr(hil_report, 'replay', replay)
    bag = write_bag(tmp_path / 'ns', simulate(1.0), joint_topic='/robot1/joint_states',
                    wrench_topic='/robot1/ft_sensor/wrench')
    out = tmp_path / 'report'
    assert cli_main(['hil-report', str(bag), '--output', str(out), '--joint-states-topic',
                     '/robot1/joint_states', '--wrench-topic', '/robot1/ft_sensor/wrench']) == 0
    assert 'Traceback' not in capsys.readouterr().err
    assert [(a['joint_states_topic'], a['wrench_topic']) for a in asked] == [
        ('/robot1/joint_states', '/robot1/ft_sensor/wrench')]
    report = json.loads((out / 'report.json').read_text())
    assert report['faults']['detections_from'].startswith('a replay'), report['faults']
    assert report['tracking']['joint1']['samples'] > 0


def test_a_failed_replay_leaves_tracking_and_limits(tmp_path, capsys):
    # a publisher that never sets header.stamp: the twin (and its replay) refuses every sample,
    # but tracking and limits are measured by log time: the report keeps them
    run = simulate(1.0)
    bag = write_bag(tmp_path / 'unstamped', run, zero_stamps=range(len(run.samples)))
    out = tmp_path / 'report'
    assert cli_main(['hil-report', str(bag), '--output', str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / 'report.json').read_text())
    assert report['tracking']['joint1']['samples'] > 0 and report['commands']['total'] > 0
    assert report['faults']['detections_from'] is None
    assert any(m.startswith('detections are unavailable: the replay of the recording failed: '
                            'no /joint_states message was usable') and 'stamp is 0' in m
               for m in report['missing']), report['missing']
    assert 'missing: detections are unavailable' in printed and '--urdf' not in printed
    assert 'faults.png' in report['plots']


def test_the_timing_figures_say_they_count_physics_steps(tmp_path, monkeypatch):
    # a plant stepping at 1 kHz that publishes every 10th step: its status's rate_hz, steps,
    # deadline misses and lateness histogram count the 1 kHz steps, not the 100 Hz samples
    from matplotlib.axes import Axes
    from robot_twin.hil_report import timing, write_plots
    from robot_twin.hil_report_cli import summary_lines
    labels = []
    original = Axes.set

    def set_(self, **kwargs):
        labels.append(kwargs)
        return original(self, **kwargs)

    monkeypatch.setattr(Axes, 'set', set_)
    values = {'mode': 'realtime', 'rate_hz': '1000.0', 'publish_rate_hz': '100.0',
              'steps': '6000', 'deadline_misses': '3', 'miss_fraction': '0.0005',
              'jitter_p99_us': '240.0', 'jitter_hist_edges_us': '0,10,20',
              'jitter_hist_counts': '5000,990,10'}
    report = _timing_report(timing(values), commands=0)
    assert report['timing']['rate_hz'] == 1000.0 and report['timing']['publish_rate_hz'] == 100.0
    counted = 'per physics step (1000 Hz; samples published at 100 Hz, one per 10 steps)'
    assert counted in '\n'.join(summary_lines(report))
    write_plots(report, (np.array([]), np.empty((0, 1)), [], []), ['joint1'], tmp_path)
    (jitter,) = [kw for kw in labels if 'jitter' in kw.get('title', '')]
    assert jitter['xlabel'] == 'lateness of each physics step, its sample published or not [µs]'
    assert jitter['ylabel'] == 'physics steps' and jitter['title'].endswith(counted)
    # a plant status from before the two rates: it published every step
    del values['publish_rate_hz']
    report['timing'] = timing(values)
    assert report['timing']['publish_rate_hz'] == 1000.0
    assert 'per physics step (1000 Hz, each publishing its sample)' in '\n'.join(
        summary_lines(report))


def _timing_report(timing, commands):
    """Return a report of one tracked joint, no faults, ``timing`` and ``commands`` sent."""
    return {'tracking': {'joint1': {'rms_rad': 0.01}},
            'commands': {'total': commands, 'position_commands': commands,
                         'outside_limits': {}},
            'timing': timing,
            'faults': {'injected': [], 'false_alarms': [], 'detected_not_injected': [],
                       'injected_known': True, 'detections_from': 'the recording'}}


def test_a_lock_step_run_says_it_published_one_sample_per_command():
    # a lock-step plant at 1 kHz advancing 10 sample periods per command: its 14111 steps
    # published 1411 samples (one per answered command), not one per step
    from robot_twin.hil_report import timing
    from robot_twin.hil_report_cli import summary_lines
    values = {'mode': 'lockstep', 'rate_hz': '1000.0', 'publish_rate_hz': '1000.0',
              'steps': '14111', 'commands': '1420', 'stale_commands': '9', 'resends': '9',
              'steps_per_s': '2500.0'}
    report = _timing_report(timing(values), commands=1420)
    assert report['timing']['steps_per_sample'] == 14111 / 1411
    (line,) = [t for t in summary_lines(report) if t.startswith('timing:')]
    assert 'each publishing its sample' not in line, line
    assert line == ('timing: lockstep, 14111 steps, 9 resends, per physics step (1000 Hz of '
                    'plant time; one sample published per answered command, about 10 steps '
                    'each: samples at 100 Hz of plant time)')
    # the plant's own figure (lockstep_steps_per_command x publish_every) wins over the estimate
    exact = timing(dict(values, steps_per_sample='10'))
    assert exact['steps_per_sample'] == 10.0
    # a status without the command counters still says what was published
    del values['commands']
    report['timing'] = timing(values)
    assert 'steps_per_sample' not in report['timing']
    assert summary_lines(report)[-1].endswith(
        '(1000 Hz of plant time; one sample published per answered command)')
