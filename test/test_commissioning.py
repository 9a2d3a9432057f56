"""Anomaly thresholds learned across randomized variants hold on unseen arms and catch faults."""
import math
from pathlib import Path

import pytest
from robot_twin.cli import main as cli_main
from robot_twin.commissioning import commission_across_variants, monitor_trace
from robot_twin.whatif import scenario_from_dict, scenario_residual_traces, WhatIfError
from twin_anomaly.detector import ResidualDetector
import yaml

ROOT = Path(__file__).resolve().parents[1]
URDF = ROOT / 'urdf' / 'robot_twin_arm.urdf'
POSE = [0.0, 0.8, 0.0, -1.0, 0.0, 0.5, 0.0]
NOISE = {'position_noise_std_rad': 1e-5, 'velocity_noise_std_rad_s': 5e-4,
         'effort_noise_std_nm': 0.02, 'force_noise_std_n': 0.1, 'torque_noise_std_nm': 0.005,
         'delay_s': 0.0}
#: links vary by +-15 % (a fleet of arms of one model, or an arm with tools on it)
FLEET = {'links': {'mass_scale': [0.85, 1.15], 'com_offset_m': 0.0, 'inertia_scale': 1.0},
         'friction': {'viscous_scale': 1.0, 'coulomb_scale': 1.0}, 'sensor': NOISE,
         'actuator': {'effort_limit_scale': 1.0, 'velocity_limit_scale': 1.0}}
#: every link at its URDF value: all variants are the one nominal arm
ONE_ARM = dict(FLEET, links={'mass_scale': 1.0, 'com_offset_m': 0.0, 'inertia_scale': 1.0})


def _scenario(randomization, **changes):
    data = {'name': 'learn', 'duration_s': 3.0,
            'trajectory': {'type': 'demo_motion', 'fraction': 0.3, 'period_s': 1.5,
                           'fade_in_s': 0.3, 'center': POSE},
            'randomization': {'file': 'default', 'overrides': randomization},
            'detector': {'commissioning_duration_s': 1.0}}
    data.update(changes)
    return scenario_from_dict(data, 'test', ROOT)


@pytest.fixture(scope='module')
def learned(tmp_path_factory):
    """Thresholds learned across 8 fleet variants and on the nominal arm, 3 unseen variants."""
    out = tmp_path_factory.mktemp('thresholds')
    fleet = commission_across_variants(_scenario(FLEET), 8, out / 'fleet.yaml', holdout=3,
                                       urdf=URDF, seed=11)
    one_arm = commission_across_variants(_scenario(ONE_ARM), 2, out / 'one_arm.yaml',
                                         urdf=URDF, seed=11)
    return fleet, one_arm


def test_fleet_thresholds_hold_on_unseen_variants_where_one_arms_do_not(learned):
    fleet, one_arm = learned
    assert fleet.samples == 8 and len(fleet.holdout) == 3
    assert [h.index for h in fleet.holdout] == [8, 9, 10]
    # 8 variants of 3 s, fed one after the other: commissioning spans nearly all of it
    assert 8 * 2.9 < fleet.commissioning_s < 8 * 3.0
    assert fleet.false_alarms == 0
    assert all(h.alarm_joint == '' for h in fleet.holdout)
    # the same unseen arms against thresholds learned on the nominal arm alone: every one of
    # them is "anomalous" (their links are up to 15 % off the model)
    unseen = scenario_residual_traces(_scenario(FLEET), [8, 9, 10], urdf=URDF, seed=11)
    checks = [monitor_trace(ResidualDetector.from_thresholds(
        one_arm.thresholds_file, one_arm.joint_names), trace) for trace in unseen]
    assert all(not math.isnan(c.alarm_time_s) for c in checks)
    # the learned file is the node's format, with the settings it checks on load
    doc = yaml.safe_load(fleet.thresholds_file.read_text())['robot_twin_anomaly_thresholds']
    assert doc['joints'] == list(fleet.joint_names)
    assert doc['commissioning']['duration_s'] == pytest.approx(fleet.commissioning_s)
    assert doc['urdf'] == str(URDF)


def test_fleet_thresholds_still_catch_a_friction_fault(learned):
    fleet, _ = learned
    fault = {'name': 'wear', 'faults': [{'type': 'friction_increase', 'joint': 'joint3',
                                         'start_s': 1.5, 'size': 3.0, 'mode': 'add'}]}
    trace, = scenario_residual_traces(_scenario(FLEET, faults=fault), [20], urdf=URDF, seed=11)
    check = monitor_trace(ResidualDetector.from_thresholds(
        fleet.thresholds_file, fleet.joint_names), trace)
    assert check.alarm_joint == 'joint3'
    assert 1.5 < check.alarm_time_s < 2.5
    # the same variant without the fault stays quiet
    clean, = scenario_residual_traces(_scenario(FLEET), [20], urdf=URDF, seed=11)
    assert math.isnan(monitor_trace(ResidualDetector.from_thresholds(
        fleet.thresholds_file, fleet.joint_names), clean).alarm_time_s)


def test_bad_requests_are_refused_with_the_reason(tmp_path):
    scenario = _scenario(FLEET, duration_s=0.6,
                         detector={'commissioning_duration_s': 0.5, 'block_s': 0.05})
    with pytest.raises(WhatIfError, match='samples must be an integer >= 1'):
        commission_across_variants(scenario, 0, tmp_path / 't.yaml', urdf=URDF)
    with pytest.raises(WhatIfError, match='holdout must be an integer >= 0'):
        commission_across_variants(scenario, 1, tmp_path / 't.yaml', holdout=-1, urdf=URDF)
    broken = _scenario(FLEET)
    broken.detector = {'block_s': -1.0}            # (a scenario file is checked on loading)
    with pytest.raises(WhatIfError, match='block_s must be > 0'):
        commission_across_variants(broken, 1, tmp_path / 't.yaml', urdf=URDF)
    # one short variant: too little to commission on, and nothing written
    with pytest.raises(WhatIfError, match='too little to commission on'):
        commission_across_variants(scenario, 1, tmp_path / 't.yaml', urdf=URDF)
    assert not (tmp_path / 't.yaml').exists()
    # faults in the scenario are dropped (normal data), with a warning
    faulty = _scenario(FLEET, duration_s=1.5, faults={
        'name': 'x', 'faults': [{'type': 'friction_increase', 'joint': 'joint3',
                                 'start_s': 0.5, 'size': 5.0, 'mode': 'add'}]})
    with pytest.warns(UserWarning, match='faults of the scenario are ignored'):
        result = commission_across_variants(faulty, 1, tmp_path / 'f.yaml', urdf=URDF)
    assert result.thresholds_file.is_file()


def test_cli_writes_thresholds_and_reports_held_out_variants(tmp_path, capsys):
    scenario = tmp_path / 'learn.yaml'
    data = {'name': 'learn', 'duration_s': 2.0,
            'trajectory': {'type': 'demo_motion', 'fraction': 0.3, 'period_s': 1.0,
                           'fade_in_s': 0.2, 'center': POSE},
            'randomization': {'file': 'default', 'overrides': FLEET},
            'detector': {'commissioning_duration_s': 1.0}}
    scenario.write_text(yaml.safe_dump(data))
    out = tmp_path / 'th' / 'thresholds.yaml'
    status = cli_main(['commission', '--scenario', str(scenario), '--samples', '3',
                       '--holdout', '1', '--seed', '2', '--output', str(out), '--quiet'])
    assert status in (0, 1)                       # 1 would mean the held-out variant alarmed
    written = out if status == 0 else out.with_name(out.name + '.failed')
    assert written.is_file() and out.is_file() == (status == 0)
    detector = ResidualDetector.from_thresholds(written, [f'joint{i}' for i in range(1, 8)])
    assert detector.commissioned
    status = cli_main(['commission', '--scenario', str(tmp_path / 'missing.yaml'),
                       '--samples', '2', '--output', str(out)])
    assert status == 2
    assert 'robot-twin commission: error:' in capsys.readouterr().err
    # another kind of file (here the live monitor's calibration) is never written over, and
    # the refusal comes before any variant runs
    live = tmp_path / 'robot_twin_arm_thresholds.yaml'
    live.write_text(yaml.safe_dump({'robot_twin_anomaly_monitor': {'version': 1}}))
    status = cli_main(['commission', '--scenario', str(scenario), '--samples', '3',
                       '--output', str(live), '--quiet'])
    assert status == 2
    err = capsys.readouterr().err
    assert 'exists and is a file with robot_twin_anomaly_monitor' in err, err
    assert yaml.safe_load(live.read_text()) == {'robot_twin_anomaly_monitor': {'version': 1}}


def test_packaged_commissioning_scenario_is_fault_free_demo_motion():
    from robot_twin.whatif import load_scenario
    scenario = load_scenario('commissioning')
    assert scenario.faults is None and scenario.trajectory['type'] == 'demo_motion'
    assert scenario.duration_s > scenario.commissioning_s


def test_another_robot_without_a_force_sensor_runs_end_to_end(tmp_path):
    # the Franka Panda of pybullet_data: 9 joints (2 prismatic fingers, one a <mimic>), no
    # force-torque sensor link, mesh paths that do not resolve from a variant's copy
    import warnings

    import pybullet_data
    from robot_twin.whatif import format_table, run_whatif
    panda = Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf'
    ready = [0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.02, 0.02]
    scenario = _scenario({'links': {'mass_scale': [0.95, 1.05]}}, duration_s=2.0,
                         trajectory={'type': 'demo_motion', 'fraction': 0.3, 'period_s': 1.0,
                                     'fade_in_s': 0.3, 'center': ready})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = run_whatif(scenario, 2, urdf=panda, seed=1)
    # the robot's own URDF warnings are shown once, not again for every variant's copy
    assert caught and all(str(panda) in str(w.message) for w in caught)
    table = format_table(result.summary)
    assert 'panda_finger_joint2 |' in table
    assert len({len(line) for line in table.splitlines()[3:12]}) == 1    # aligned rows
    assert result.summary['alarms']['count'] == 0
    learned = commission_across_variants(scenario, 3, tmp_path / 'panda.yaml', holdout=1,
                                         urdf=panda, seed=1)
    doc = yaml.safe_load(learned.thresholds_file.read_text())['robot_twin_anomaly_thresholds']
    assert doc['joints'][-1] == 'panda_finger_joint2'
    assert all(v is None for v in doc['wrench'].values())          # no sensor: no wrench
    assert ResidualDetector.from_thresholds(learned.thresholds_file, doc['joints']).commissioned


def test_monitor_trace_reports_what_a_per_sample_detector_does(learned):
    """The batch monitor (scores at once, detector stepped to the alarm) against update()."""
    _, one_arm = learned
    trace, = scenario_residual_traces(_scenario(FLEET), [9], urdf=URDF, seed=11)
    check = monitor_trace(ResidualDetector.from_thresholds(one_arm.thresholds_file,
                                                           one_arm.joint_names), trace)
    detector = ResidualDetector.from_thresholds(one_arm.thresholds_file, one_arm.joint_names)
    scores, alarm = [], None
    for k in range(trace.t.size):
        wrench = None if math.isnan(trace.wrench[k, 0]) else trace.wrench[k]
        before = detector._block_end
        detector.update(trace.t[k], trace.position[k], trace.velocity[k], trace.effort[k],
                        wrench, velocity=trace.velocity_measured[k])
        if detector._block_end != before:          # a block closed: the state to compare
            state = detector.report()
            scores.append(state.score)
            if alarm is None and state.level == 'ERROR':
                alarm = (state.since, state.faulty_joint)
    assert alarm is not None
    assert (check.alarm_time_s, check.alarm_joint) == alarm
    assert check.max_score == pytest.approx(max(scores), rel=1e-9)


def _scenario_file(tmp_path, randomization, duration_s):
    scenario = tmp_path / 'learn.yaml'
    scenario.write_text(yaml.safe_dump({
        'name': 'learn', 'duration_s': duration_s,
        'trajectory': {'type': 'demo_motion', 'fraction': 0.3, 'period_s': 1.0,
                       'fade_in_s': 0.2, 'center': POSE},
        'randomization': {'file': 'default', 'overrides': randomization},
        'detector': {'commissioning_duration_s': 1.0}}))
    return scenario


def test_no_held_out_check_needs_force_and_is_said_loudly(tmp_path, capsys):
    scenario = _scenario_file(tmp_path, ONE_ARM, 2.0)
    out = tmp_path / 'unchecked.yaml'
    # refused before any variant runs
    status = cli_main(['commission', '--scenario', str(scenario), '--samples', '2',
                       '--holdout', '0', '--output', str(out), '--quiet'])
    err = capsys.readouterr().err
    assert status == 2, err
    assert '--holdout 0 runs no held-out variant' in err and '--force' in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists(), err
    # --force writes them, saying that nothing checked them, and that 2 variants are few
    status = cli_main(['commission', '--scenario', str(scenario), '--samples', '2',
                       '--holdout', '0', '--force', '--output', str(out)])
    err = capsys.readouterr().err
    assert status == 0 and out.is_file(), err
    assert 'WARNING: --holdout 0 --force: the thresholds are written without a held-out ' \
           'check' in err, err
    assert 'learning from 2 variant(s), fewer than 10' in err, err


def test_a_failed_held_out_check_leaves_no_usable_file_and_says_why_quietly_too(
        tmp_path, capsys):
    from twin_anomaly.detector import THRESHOLDS_FILE_KEY
    # thresholds of one arm of a +-15 % fleet alarm on the fleet's other arms
    scenario = _scenario_file(tmp_path, FLEET, 3.0)
    out = tmp_path / 'thresholds.yaml'
    earlier = yaml.safe_dump({THRESHOLDS_FILE_KEY: {'version': 1, 'note': 'an earlier run'}})
    out.write_text(earlier)
    with pytest.warns(UserWarning, match='learning from 1 variant'):
        result = commission_across_variants(
            scenario_from_dict(yaml.safe_load(scenario.read_text()), 'learn', tmp_path), 1,
            tmp_path / 'api.yaml', holdout=3, urdf=URDF, seed=11)
    assert result.false_alarms >= 1 and not result.passed
    assert not (tmp_path / 'api.yaml').exists()
    assert result.thresholds_file == tmp_path / 'api.yaml.failed'
    status = cli_main(['commission', '--scenario', str(scenario), '--samples', '1',
                       '--holdout', '3', '--seed', '11', '--output', str(out), '--quiet'])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out == ''
    err = captured.err
    assert f'of 3 held-out fault-free variants raised an alarm: the thresholds were not ' \
           f'written to {out} (kept as {out}.failed, to look at)' in err, err
    assert 'only 1, fewer than 10' in err, err
    assert out.read_text() == earlier                      # the earlier output is untouched
    failed = tmp_path / 'thresholds.yaml.failed'
    assert ResidualDetector.from_thresholds(failed, [f'joint{i}' for i in range(1, 8)])
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith('.partial')]
