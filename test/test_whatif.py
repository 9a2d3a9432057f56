"""What-if runs: reproducible across worker counts, physics of the spread, faults, CLI, Ray."""
from dataclasses import replace
import inspect
import json
import math
from pathlib import Path

import numpy as np
import pytest
from robot_twin.whatif import format_table, load_scenario, nominal_residual_samples, prepare, \
    reference_trajectory, run_sample, run_whatif, scenario_from_dict, WhatIfError, write_outputs
from robot_twin.whatif_cli import main as whatif_main
from twin_anomaly.detector import ResidualDetector
from twin_sim.mirror import Mirror
from twin_sim.urdf_model import RobotModel
import yaml

ROOT = Path(__file__).resolve().parents[1]
URDF = ROOT / 'urdf' / 'robot_twin_arm.urdf'
POSE = [0.0, 0.8, 0.0, -1.0, 0.0, 0.5, 0.0]
#: every range a point: the variants are the nominal robot
FIXED = {'links': {'mass_scale': 1.0, 'com_offset_m': 0.0, 'inertia_scale': 1.0},
         'friction': {'viscous_scale': 1.0, 'coulomb_scale': 1.0},
         'sensor': {'position_noise_std_rad': 0.0, 'velocity_noise_std_rad_s': 0.0,
                    'effort_noise_std_nm': 0.0, 'force_noise_std_n': 0.0,
                    'torque_noise_std_nm': 0.0, 'delay_s': 0.0},
         'actuator': {'effort_limit_scale': 1.0, 'velocity_limit_scale': 1.0}}


def _scenario(**changes):
    data = {'name': 'small', 'duration_s': 1.0,
            'trajectory': {'type': 'demo_motion', 'fraction': 0.35, 'period_s': 1.0,
                           'fade_in_s': 0.2, 'center': POSE},
            'randomization': 'default', 'detector': {'commissioning_duration_s': 0.5},
            'record_rate_hz': 20}
    data.update(changes)
    return scenario_from_dict(data, 'test', ROOT)


def test_summary_is_identical_for_one_and_two_workers(tmp_path):
    scenario = _scenario()
    one = run_whatif(scenario, 4, urdf=URDF, seed=11, workers=1)
    two = run_whatif(scenario, 4, urdf=URDF, seed=11, workers=2)
    assert one.run['backend'] == 'in-process' and two.run['backend'].startswith('processes')
    a = json.dumps(one.summary, sort_keys=True)
    assert a == json.dumps(two.summary, sort_keys=True)
    for x, y in zip(one.samples, two.samples):
        assert x.variant == y.variant
        assert np.array_equal(x.record_effort, y.record_effort)
    # the variants differ from each other, and another seed gives another summary
    torques = [s.metrics['torque_rms_nm'][1] for s in one.samples]
    assert len(set(torques)) == 4
    other = run_whatif(scenario, 4, urdf=URDF, seed=12, workers=1)
    assert json.dumps(other.summary, sort_keys=True) != a
    # a sample alone (any order, any process) is the same as in the run
    setup = prepare(scenario, URDF, seed=11)
    alone = run_sample(setup, 2)
    assert np.array_equal(alone.metrics['torque_peak_nm'],
                          one.samples[2].metrics['torque_peak_nm'])
    files = write_outputs(one, tmp_path / 'out')
    names = sorted(p.name for p in files)
    assert names == ['anomaly_score_hist.png', 'run.json', 'samples.csv', 'summary.json',
                     'torque_spread.png', 'tracking_error_box.png']
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['samples'] == 4 and summary['joints'] == [f'joint{i}' for i in range(1, 8)]
    rows = (tmp_path / 'out' / 'samples.csv').read_text().splitlines()
    assert len(rows) == 5 and 'joint2.torque_rms_nm' in rows[0]
    assert 'joint2' in format_table(one.summary)


def _payload_torque_by_hand(model, q, mass, com):
    """Joint-2 torque that a point mass at ``com`` (ft_sensor frame) needs at rest, N m."""
    sensor = model.frame_pose(q, 'ft_sensor')
    point = sensor[:3, :3] @ np.asarray(com) + sensor[:3, 3]
    joint = model.frame_pose(q, 'link2')          # joint2's frame: its axis is local y
    lever = point - joint[:3, 3]
    force = np.array([0.0, 0.0, -9.81 * mass])
    # the motor holds the payload: its torque cancels the payload's moment about the axis
    return -float(joint[:3, 1] @ np.cross(lever, force))


def test_payload_mass_spreads_joint2_torque_by_the_lever_arm():
    com = [0.0, 0.0, 0.05]
    hold = {'type': 'hold', 'q': POSE}
    payload = dict(FIXED, payload={'mass_kg': [0.0, 4.0], 'com_z_m': 0.05, 'radius_m': 0.0})
    scenario = _scenario(trajectory=hold, randomization={'overrides': payload})
    result = run_whatif(scenario, 6, urdf=URDF, seed=3)
    nominal = run_whatif(_scenario(trajectory=hold, randomization={'overrides': FIXED}), 3,
                         urdf=URDF, seed=3)
    model = RobotModel.from_urdf(URDF)
    q = np.array(POSE)
    # zero-width ranges: every variant is the same robot, the spread is exactly zero
    stats = nominal.summary['metrics']['torque_rms_nm']['joint2']
    assert stats['p5'] == stats['p95'] == stats['min'] == stats['max']
    base = nominal.samples[0].record_effort[-1]
    assert base[1] == pytest.approx(model.gravity(q)[1], abs=0.05)
    masses = [s.variant['payload.mass_kg'] for s in result.samples]
    assert max(masses) - min(masses) > 1.0
    for sample, mass in zip(result.samples, masses):
        held = sample.record_effort[-1]
        expected = _payload_torque_by_hand(model, q, mass, com)
        assert held[1] - base[1] == pytest.approx(expected, abs=0.02 + 0.01 * abs(expected))
        assert held[0] - base[0] == pytest.approx(0.0, abs=0.02)   # vertical axis: no load
    spread = result.summary['metrics']['torque_rms_nm']['joint2']
    lever_per_kg = abs(_payload_torque_by_hand(model, q, 1.0, com))
    assert spread['max'] - spread['min'] == pytest.approx(
        lever_per_kg * (max(masses) - min(masses)), rel=0.02)


def test_identified_parameters_are_the_plant_and_the_twin(tmp_path):
    model = RobotModel.from_urdf(URDF)
    doc = model.dynamic_parameters()
    inner = doc['robot_twin_dynamics']
    pi = np.array(inner['bodies']['joint4']['dynamic_parameters'])
    inner['bodies'] = {'joint4': {'dynamic_parameters': (pi * 1.3).tolist()}}
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump(doc))
    identified = model.copy()
    identified.load_parameters(params)
    q = np.array(POSE)
    assert abs(identified.gravity(q)[1] - model.gravity(q)[1]) > 1.0
    scenario = _scenario(trajectory={'type': 'hold', 'q': POSE},
                         randomization={'overrides': FIXED})
    result = run_whatif(scenario, 1, urdf=URDF, params=params)
    held = result.samples[0].record_effort[-1]
    assert held[1] == pytest.approx(identified.gravity(q)[1], abs=0.05)
    # the twin predicts with the identified model too: no residual to speak of
    assert result.samples[0].metrics['effort_residual_rms_nm'][1] < 0.05
    assert result.summary['params'] == str(params.resolve())


def test_randomized_dynamics_give_larger_twin_residuals():
    traces = nominal_residual_samples(2, urdf=URDF, duration_s=1.0, seed=5,
                                      trajectory={'type': 'demo_motion', 'fraction': 0.35,
                                                  'period_s': 1.0, 'fade_in_s': 0.2,
                                                  'center': POSE},
                                      randomization=FIXED)
    wide = nominal_residual_samples(2, urdf=URDF, duration_s=1.0, seed=5,
                                    trajectory={'type': 'demo_motion', 'fraction': 0.35,
                                                'period_s': 1.0, 'fade_in_s': 0.2,
                                                'center': POSE},
                                    randomization=dict(FIXED, links={'mass_scale': [1.2, 1.3]}))
    assert len(traces) == 2 and traces[0].effort.shape == (traces[0].t.size, 7)
    assert traces[0].t.size > 900 and np.all(np.diff(traces[0].t) > 0)
    exact = np.sqrt(np.mean(traces[0].effort[200:] ** 2, axis=0))
    heavy = np.sqrt(np.mean(wide[0].effort[200:] ** 2, axis=0))
    # the twin's model is the plant's: residuals are small; 20-30 % heavier links are not
    assert exact[1] < 1.0
    assert heavy[1] > 3.0 * exact[1] + 1.0
    assert np.all(np.isfinite(traces[0].wrench))
    # the traces commission a detector (its "normal" across variants)
    detector = ResidualDetector([f'joint{i}' for i in range(1, 8)],
                                commissioning_duration_s=1.5)
    offset = 0.0
    for trace in traces:
        offset = trace.feed(detector, offset) + 0.001
    assert detector.commissioned
    assert detector.report().level == 'OK'


def test_sensor_noise_reaches_the_twin_with_the_right_size():
    hold = {'type': 'hold', 'q': POSE}
    sigma = 1.0
    noisy = dict(FIXED, sensor=dict(FIXED['sensor'], effort_noise_std_nm=sigma))
    quiet = run_whatif(_scenario(trajectory=hold, randomization={'overrides': FIXED},
                                 duration_s=2.0), 1, urdf=URDF)
    loud = run_whatif(_scenario(trajectory=hold, randomization={'overrides': noisy},
                                duration_s=2.0), 1, urdf=URDF)
    # the twin low-passes the measured effort like its acceleration (first order, one pole):
    # white noise of std s comes out with std s * sqrt(a / (2 - a)), a = dt / (dt + tau)
    cutoff = inspect.signature(Mirror).parameters['accel_cutoff_hz'].default
    tau = 1.0 / (2.0 * np.pi * cutoff)
    a = 0.001 / (0.001 + tau)
    expected = sigma * np.sqrt(a / (2.0 - a))
    residual = loud.samples[0].metrics['effort_residual_rms_nm']
    assert quiet.samples[0].metrics['effort_residual_rms_nm'].max() < 0.02
    # ~1500 monitored samples per joint, correlated over ~5: each RMS within 20 %, their
    # mean over the 7 independent joints within 6 %
    assert np.all(np.abs(residual - expected) < 0.2 * expected)
    assert abs(residual.mean() - expected) < 0.06 * expected
    # sensor noise is in the measurement only: the arm's torques are untouched
    assert np.array_equal(loud.samples[0].metrics['torque_rms_nm'],
                          quiet.samples[0].metrics['torque_rms_nm'])


def test_fault_is_detected_after_it_starts():
    faults = {'name': 'bias', 'faults': [{'type': 'sensor_bias', 'signal': 'effort',
                                          'joint': 'joint2', 'start_s': 1.2, 'size': 8.0}]}
    scenario = _scenario(duration_s=1.6, faults=faults,
                         randomization={'overrides': FIXED},
                         detector={'commissioning_duration_s': 0.8})
    result = run_whatif(scenario, 2, urdf=URDF, seed=0)
    alarms = result.summary['alarms']
    assert alarms['first_fault_s'] == 1.2
    assert alarms['detected'] == 2 and alarms['false_alarms'] == 0
    for sample in result.samples:
        assert 1.2 <= sample.alarm_time_s < 1.4
        assert sample.alarm_joint == 'joint2'
        assert sample.max_score >= 1.0
        # the bias is on the sensor: the motor torque itself is unchanged
        assert sample.metrics['effort_residual_rms_nm'][1] > 1.0


def test_csv_trajectory_is_followed(tmp_path):
    t = np.linspace(0.0, 1.0, 101)
    q = np.tile(POSE, (t.size, 1))
    q[:, 1] += 0.2 * np.sin(np.pi * t) ** 2
    path = tmp_path / 'traj.csv'
    header = 'time,' + ','.join(f'joint{i}.position' for i in range(1, 8))
    np.savetxt(path, np.column_stack([t, q]), delimiter=',', header=header, comments='')
    scenario = _scenario(trajectory={'type': 'csv', 'path': str(path)},
                         randomization={'overrides': FIXED})
    sample = run_sample(prepare(scenario, URDF, seed=0), 0)
    assert sample.metrics['tracking_max_rad'].max() < 2e-3
    assert sample.samples_received == 1000
    # a robot that sends 250 samples/s: the twin sees every 4th step, residuals stay small
    slow = _scenario(trajectory={'type': 'csv', 'path': str(path)}, sample_rate_hz=250,
                     randomization={'overrides': FIXED})
    sparse = run_sample(prepare(slow, URDF, seed=0), 0)
    assert sparse.samples_received == 250
    assert np.array_equal(sparse.metrics['torque_rms_nm'], sample.metrics['torque_rms_nm'])
    assert sparse.metrics['effort_residual_rms_nm'][1] < 0.5
    with pytest.raises(WhatIfError, match='sample_rate_hz: 300'):
        _scenario(sample_rate_hz=300)
    bad = tmp_path / 'bad.csv'
    bad.write_text('time,joint1.position\n0,0\n1,0.1\n')
    with pytest.raises(WhatIfError, match='missing column.*joint2.position'):
        prepare(_scenario(trajectory={'type': 'csv', 'path': str(bad)}), URDF)


@pytest.mark.parametrize('change, message', [
    ({'duration_s': -1.0}, 'duration_s: must be > 0'),
    ({'trajectory': {'type': 'spiral'}}, 'trajectory.type: must be one of'),
    ({'trajectory': {'type': 'demo_motion', 'fraction': 2.0}}, 'trajectory.fraction'),
    ({'trajectory': {'type': 'demo_motion', 'amplitude': 0.3}}, "unknown field(s) ['amplitude']"),
    ({'faults': 'no_such_fault'}, "'no_such_fault' is neither a file"),
    ({'randomization': {'overrides': {'payload': {'mass_kg': [3, 1]}}}},
     'payload.mass_kg: low 3.0 is above high 1.0'),
    ({'twin': {'payload': 'magic'}}, 'twin.payload'),
    ({'detector': {'commissioning_duration_s': 5.0}}, 'must be shorter than duration_s'),
    ({'detector': {'persistance_s': 1.0}}, "detector: unknown field(s) ['persistance_s']"),
    ({'speed': 2}, "unknown field(s) ['speed']"),
])
def test_invalid_scenario_is_rejected_naming_the_field(change, message):
    with pytest.raises(WhatIfError) as info:
        _scenario(**change)
    assert message in str(info.value)
    assert 'test' in str(info.value)


def test_run_arguments_are_checked():
    scenario = _scenario()
    with pytest.raises(WhatIfError, match='samples must be a positive integer'):
        run_whatif(scenario, 0, urdf=URDF)
    with pytest.raises(WhatIfError, match='workers'):
        run_whatif(scenario, 1, urdf=URDF, workers=0)
    with pytest.raises(WhatIfError, match='seed'):
        run_whatif(scenario, 1, urdf=URDF, seed=-3)
    with pytest.raises(WhatIfError, match='URDF not found'):
        run_whatif(scenario, 1, urdf='/nonexistent/robot.urdf')
    with pytest.raises(WhatIfError, match='parameters file not found'):
        run_whatif(scenario, 1, urdf=URDF, params='/nonexistent/params.yaml')
    with pytest.raises(WhatIfError, match='trajectory.center: 2 values for the 7 joints'):
        prepare(_scenario(trajectory={'type': 'demo_motion', 'center': [0.0, 0.1]}), URDF)


def test_a_centre_pose_by_joint_name_leaves_the_other_joints_at_mid_range():
    model = RobotModel.from_urdf(URDF)
    spec = {'type': 'demo_motion', 'fade_in_s': 0.5, 'center': {'joint4': -1.0}}
    q, _qd, _qdd = reference_trajectory(_scenario(trajectory=spec), model)
    pose = 0.5 * (model.lower + model.upper)
    pose[3] = -1.0
    np.testing.assert_allclose(q[0], pose, atol=1e-12)      # the fade-in starts at the centre
    assert np.ptp(q, axis=0).min() > 0.01                    # and every joint moves from it
    with pytest.raises(WhatIfError, match=r"unknown joint\(s\) \['elbow'\].*another robot"):
        prepare(_scenario(trajectory={'type': 'demo_motion', 'center': {'elbow': 0.3}}), URDF)
    with pytest.raises(WhatIfError, match=r'joint4 -3 not in \(-2.0944, 2.0944\)'):
        prepare(_scenario(trajectory={'type': 'demo_motion', 'center': {'joint4': -3.0}}), URDF)


def test_packaged_scenarios_load():
    sweep = load_scenario('payload_sweep')
    assert sweep.randomization.range('payload', 'mass_kg').width > 0.0
    wear = load_scenario('friction_wear')
    assert wear.faults['faults'][0]['type'] == 'friction_increase'
    assert wear.commissioning_s < wear.fault_start_s()
    with pytest.raises(WhatIfError, match="'no_such_scenario' is neither a file"):
        load_scenario('no_such_scenario')


def test_cli_writes_outputs_and_rejects_bad_input(tmp_path, capsys):
    scenario = tmp_path / 'tiny.yaml'
    scenario.write_text('name: tiny\nduration_s: 0.6\ntrajectory: {type: hold}\n'
                        'randomization: {file: default, overrides: {payload: {mass_kg: [0, 1]}}}'
                        '\ndetector: {commissioning_duration_s: 0.3}\n')
    out = tmp_path / 'out'
    status = whatif_main(['--scenario', str(scenario), '--samples', '2', '--seed', '4',
                          '--output', str(out), '--quiet', '--no-plots'])
    assert status == 0
    summary = json.loads((out / 'summary.json').read_text())
    assert summary['scenario'] == 'tiny' and summary['seed'] == 4
    assert not (out / 'torque_spread.png').exists()
    status = whatif_main(['--scenario', str(tmp_path / 'missing.yaml'), '--samples', '2'])
    assert status == 2
    assert 'neither a file' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        whatif_main(['--scenario', str(scenario), '--samples', '0'])


def test_control_rate_option_and_checked_reference():
    """control_rate_hz: a slower drive loop of the pybullet plant; the default is 1 kHz."""
    base = _scenario(randomization={'overrides': FIXED}, engine='pybullet')
    assert base.control_rate_hz is None and base.control_every == 1
    full = run_sample(prepare(base, URDF, seed=0), 0)
    half = _scenario(randomization={'overrides': FIXED}, control_rate_hz=500, engine='pybullet')
    assert half.control_every == 2
    quarter = _scenario(randomization={'overrides': FIXED}, control_rate_hz=250,
                        engine='pybullet')
    assert quarter.control_every == 4
    runs = {k: run_sample(prepare(s, URDF, seed=0), 0) for k, s in ((2, half), (4, quarter))}
    # 500 Hz with the full-rate gains tracks as the 1 kHz loop; 250 Hz (capped gains) stays
    # stable, with larger errors: it is a different drive, so it is never the default
    assert full.metrics['tracking_max_rad'].max() < 5e-3
    np.testing.assert_allclose(runs[2].metrics['tracking_rms_rad'],
                               full.metrics['tracking_rms_rad'], atol=1e-4)
    np.testing.assert_allclose(runs[2].metrics['torque_rms_nm'], full.metrics['torque_rms_nm'],
                               rtol=0.02, atol=0.05)
    assert runs[4].metrics['tracking_max_rad'].max() < 2e-2
    assert not np.array_equal(runs[4].metrics['torque_peak_nm'],
                              full.metrics['torque_peak_nm'])
    with pytest.raises(WhatIfError, match='control_rate_hz: 300 Hz must divide'):
        _scenario(control_rate_hz=300, engine='pybullet')
    with pytest.raises(WhatIfError, match='control_rate_hz: must be > 0'):
        _scenario(control_rate_hz=0, engine='pybullet')
    with pytest.raises(WhatIfError, match='control_rate_hz is an option of the pybullet'):
        _scenario(control_rate_hz=500)
    # the reference goes to the world's unchecked fast path, so prepare() checks it
    with pytest.raises(WhatIfError, match='trajectory position of joint2 is not finite'):
        pose = [0.0, float('nan'), 0.0, -1.0, 0.0, 0.5, 0.0]
        prepare(_scenario(trajectory={'type': 'hold', 'q': pose}), URDF)


def test_engines_agree_on_the_same_variants():
    """The MuJoCo robot (engine speed) against the PyBullet plant stepped with the live twin."""
    payload = dict(FIXED, payload={'mass_kg': [0.5, 3.0], 'com_z_m': 0.05, 'radius_m': 0.03},
                   friction={'viscous_scale': [0.8, 1.25], 'coulomb_scale': [0.8, 1.25]})
    runs = {engine: run_whatif(_scenario(randomization={'overrides': payload}, duration_s=1.5,
                                         detector={'commissioning_duration_s': 0.7},
                                         engine=engine), 2, urdf=URDF, seed=4)
            for engine in ('pybullet', 'mujoco')}
    for a, b in zip(runs['pybullet'].samples, runs['mujoco'].samples):
        assert a.variant == b.variant
        ma, mb = a.metrics, b.metrics
        np.testing.assert_allclose(mb['torque_rms_nm'], ma['torque_rms_nm'], rtol=0.02,
                                   atol=0.05)
        np.testing.assert_allclose(mb['tracking_rms_rad'], ma['tracking_rms_rad'], rtol=0.35,
                                   atol=5e-6)
        np.testing.assert_allclose(mb['effort_residual_rms_nm'], ma['effort_residual_rms_nm'],
                                   rtol=0.15, atol=0.03)
        assert math.isnan(a.alarm_time_s) and math.isnan(b.alarm_time_s)
    # the payload the twin does not know shows in its residual on both engines alike
    assert runs['mujoco'].summary['metrics']['effort_residual_rms_nm']['joint2']['max'] > 1.0


def _fail_on_odd(setup, index):
    if index % 2:
        raise RuntimeError(f'variant {index} blew up')
    return run_sample(setup, index)


@pytest.mark.parametrize('workers', [1, 2])
def test_a_failed_variant_is_reported_with_its_seed(workers):
    from robot_twin.whatif import _map, _split, SampleFailure
    setup = prepare(_scenario(duration_s=0.4, detector={'commissioning_duration_s': 0.2}),
                    URDF, seed=9)
    results, _ = _map(_fail_on_odd, setup, range(4), workers, None, False)
    ok, failed = _split(results)
    assert [r.index for r in ok] == [0, 2]
    assert failed == [SampleFailure(1, 9, 'RuntimeError: variant 1 blew up'),
                      SampleFailure(3, 9, 'RuntimeError: variant 3 blew up')]


def test_every_variant_failing_is_a_clear_error(tmp_path, capsys):
    scenario = tmp_path / 'push.yaml'
    scenario.write_text('name: push\nduration_s: 0.4\ntrajectory: {type: hold}\n'
                        'detector: {commissioning_duration_s: 0.2}\nfaults: {name: push, '
                        'faults: [{type: collision_force, link: no_such_link, start_s: 0.1, '
                        'size: 5.0}]}\n')
    status = whatif_main(['--scenario', str(scenario), '--samples', '2', '--seed', '6',
                          '--quiet'])
    assert status == 2
    err = capsys.readouterr().err
    assert 'every variant failed; variant 0 (seed 6)' in err and 'no_such_link' in err


# ------------------------------------------------------------ audit: inline faults, detection
WEAR = {'type': 'friction_increase', 'joint': 'joint3', 'start_s': 0.6, 'size': 3.0}


def test_faults_may_be_written_inline_as_a_list():
    scenario = _scenario(faults=[WEAR])
    assert scenario.faults['name'] == 'small'
    (fault,) = scenario.faults['faults']
    assert fault['type'] == 'friction_increase' and fault['joint'] == 'joint3'
    assert scenario.fault_start_s() == 0.6
    # a fault scenario written out inline still works, and other values name the forms
    assert _scenario(faults={'name': 'wear', 'faults': [WEAR]}).faults['name'] == 'wear'
    with pytest.raises(WhatIfError) as info:
        _scenario(faults=5)
    assert 'a list of faults [{type, joint, start_s, ...}, ...], got 5' in str(info.value)
    with pytest.raises(WhatIfError) as info:
        _scenario(faults=[{'type': 'nope', 'start_s': 1.0}])
    message = str(info.value)
    assert "faults[0].type: unknown fault type 'nope'" in message
    assert message.count('faults:') == 1, message       # the source is named once


def _fake_sample(index, alarm_time, joint, n=7):
    from robot_twin.whatif import SampleResult
    metrics = {name: np.ones(n) for name in ('torque_rms_nm', 'torque_peak_nm',
                                             'tracking_rms_rad', 'effort_residual_rms_nm')}
    return SampleResult(index=index, variant={}, metrics=metrics, max_score=2.0,
                        alarm_time_s=alarm_time, alarm_joint=joint,
                        alarm_fault_type='effort_offset' if joint else '', samples_received=10,
                        record_t=np.array([0.5, 1.0]), record_effort=np.ones((2, n)))


def _summary(faults, alarms):
    from types import SimpleNamespace
    from robot_twin.whatif import summarize
    scenario = _scenario(faults={'name': 'audit', 'faults': faults})
    setup = SimpleNamespace(scenario=scenario, joint_names=[f'joint{i}' for i in range(1, 8)],
                            urdf_path=str(URDF), params_path=None, seed=0)
    return summarize([_fake_sample(k, t, j) for k, (t, j) in enumerate(alarms)], setup)


def test_detection_counts_the_faulted_joint_and_shows_any_alarm_too():
    # after the fault: one first alarm on its joint, one on another; one false alarm; one none
    summary = _summary([WEAR], [(0.7, 'joint3'), (0.8, 'joint2'), (0.4, 'joint3'),
                                (math.nan, '')])
    text = format_table(summary)
    assert 'detected on the faulted joint (joint3) 1, alarm on any joint 2, false alarms ' \
           '(before it) 1' in text, text
    alarms = summary['alarms']
    assert alarms['faulted_joints'] == ['joint3']
    assert alarms['detected'] == 2 and alarms['false_alarms'] == 1
    assert alarms['detected_on_faulted_joint'] == 1
    assert alarms['detection_on_faulted_joint_fraction'] == 0.25
    assert alarms['detection_delay_on_faulted_joint_s']['count'] == 1
    json.dumps(summary)


def test_detection_on_any_joint_where_a_fault_names_no_joint():
    push = {'type': 'collision_force', 'start_s': 0.6, 'size': 20.0}
    summary = _summary([WEAR, push], [(0.7, 'joint3'), (0.8, 'joint2')])
    assert 'detected (alarm on any joint) 2' in format_table(summary)
    assert summary['alarms']['faulted_joints'] is None
    assert 'detected_on_faulted_joint' not in summary['alarms']
    from robot_twin.whatif import faulted_channels
    wrench = {'type': 'sensor_bias', 'signal': 'wrench', 'component': 'fz', 'start_s': 1.0,
              'size': 5.0}
    assert faulted_channels({'faults': [WEAR, wrench]}) == ['joint3', 'wrench']
    assert faulted_channels(None) is None and faulted_channels({'faults': []}) is None


# ------------------------------------------------------------ audit: excitation on MuJoCo
def test_an_excitation_trajectory_runs_on_both_engines_alike(tmp_path):
    """
    A ``robot-twin excite`` trajectory on the default engine, as on the PyBullet plant.

    Its joint inertias change over tenfold along the path; the drive's gains from the first
    pose made MuJoCo lose the reference at 1.7 s here.
    """
    from twin_sim.excitation import design_excitation, write_trajectory_csv
    excitation = design_excitation(RobotModel.from_urdf(URDF), duration=5.0,
                                   base_frequency=0.2, seed=1, iterations=0, restarts=1,
                                   progress=False)
    path = tmp_path / 'excite.csv'
    write_trajectory_csv(excitation, path)
    scenario = _scenario(trajectory={'type': 'csv', 'path': str(path)}, duration_s=5.0,
                         randomization={'overrides': FIXED},
                         detector={'commissioning_duration_s': 2.5})
    setup = {e: prepare(replace(scenario, engine=e), URDF, seed=0)
             for e in ('pybullet', 'mujoco')}
    # along the path the arm gets over 9x heavier than at its first pose in some direction:
    # gains from that pose alone cannot keep the loop stable there (mujoco_world's docstring)
    model = RobotModel.from_urdf(URDF)
    first = model.mass_matrix(setup['mujoco'].reference[0][0])
    ratio = max(np.linalg.eigvals(np.linalg.solve(first, model.mass_matrix(q))).real.max()
                for q in setup['mujoco'].reference[0][::100])
    assert ratio > 9.0
    pb, mj = (run_sample(setup[e], 0) for e in ('pybullet', 'mujoco'))
    assert mj.metrics['tracking_max_rad'].max() < 5e-3
    np.testing.assert_allclose(mj.metrics['tracking_rms_rad'], pb.metrics['tracking_rms_rad'],
                               rtol=0.2, atol=5e-6)
    np.testing.assert_allclose(mj.metrics['torque_rms_nm'], pb.metrics['torque_rms_nm'],
                               rtol=0.02, atol=0.05)
    np.testing.assert_allclose(mj.metrics['effort_residual_rms_nm'],
                               pb.metrics['effort_residual_rms_nm'], rtol=0.15, atol=0.03)


def test_a_drive_too_weak_to_hold_the_arm_is_named_as_such():
    """The torque at its limit, not the loop's stability, is why the arm leaves the reference."""
    weak = [{'type': 'torque_saturation', 'joint': 'joint2', 'start_s': 0.3, 'size': 0.05}]
    setup = prepare(_scenario(randomization={'overrides': FIXED}, duration_s=1.5, faults=weak,
                              engine='mujoco'), URDF, seed=0)
    with pytest.raises(RuntimeError, match=r'lost the reference') as caught:
        run_sample(setup, 0)
    message = str(caught.value)
    assert 'the torque sat at the effort limit of joint2 (8.8 N·m)' in message
    assert 'cannot follow or hold' in message and 'unstable' not in message


# --- faults outside the monitored window, record rate, workers, contract fault type names ---

def test_a_fault_after_the_run_is_refused_and_one_during_commissioning_is_flagged(
        tmp_path, capsys):
    late = dict(WEAR, start_s=1.0)                   # the run is 1.0 s: it would never act
    with pytest.raises(WhatIfError, match=r'faults\[0\] \(friction_increase\): start_s 1 s is '
                                          r'not before the end of the run'):
        _scenario(faults=[late])
    scenario = tmp_path / 'late.yaml'
    scenario.write_text(yaml.safe_dump({
        'name': 'late', 'duration_s': 1.0, 'trajectory': {'type': 'hold'},
        'faults': [dict(WEAR, start_s=100.0)], 'detector': {'commissioning_duration_s': 0.5}}))
    assert whatif_main(['--scenario', str(scenario), '--samples', '1', '--quiet']) == 2
    err = capsys.readouterr().err
    assert 'start_s 100 s is not before the end of the run (duration_s 1 s)' in err, err
    # a fault inside commissioning is learned as normal: warned, and flagged in the summary
    early = _scenario(faults=[dict(WEAR, start_s=0.2)], randomization={'overrides': FIXED})
    assert early.fault_during_commissioning
    with pytest.warns(UserWarning, match='starts at 0.2 s, before commissioning ends at 0.5 s'):
        result = run_whatif(early, 1, urdf=URDF)
    assert result.summary['fault_during_commissioning'] is True
    assert 'the fault starts during commissioning' in format_table(result.summary)
    write_outputs(result, tmp_path / 'early', plots=False)
    summary = json.loads((tmp_path / 'early' / 'summary.json').read_text())
    assert summary['fault_during_commissioning'] is True
    assert _scenario(faults=[WEAR]).fault_during_commissioning is False


def test_a_record_rate_must_divide_the_plant_rate():
    with pytest.raises(WhatIfError, match='record_rate_hz: 7 Hz must divide the plant rate '
                                          '1000 Hz'):
        _scenario(record_rate_hz=7)
    with pytest.raises(WhatIfError, match='record_rate_hz: 2000 Hz must divide'):
        _scenario(record_rate_hz=2000)
    assert _scenario(record_rate_hz=250).record_rate_hz == 250.0
    # the default 50 Hz is not a given rate: at dt 3 ms it is every 7th step (47.6 Hz)
    data = {'name': 'd', 'duration_s': 1.2, 'dt': 0.003, 'trajectory': {'type': 'hold'},
            'detector': {'commissioning_duration_s': 0.5}}
    assert scenario_from_dict(data, 'default rate').record_rate_hz == 50.0


def test_workers_are_capped_at_the_cpu_count(monkeypatch):
    import os
    monkeypatch.setattr(os, 'cpu_count', lambda: 1)
    scenario = _scenario(duration_s=0.6, detector={'commissioning_duration_s': 0.3},
                         randomization={'overrides': FIXED})
    with pytest.warns(UserWarning, match='--workers 64 is more than the 1 CPUs of this '
                                         'machine; running 1 worker processes'):
        result = run_whatif(scenario, 2, urdf=URDF, workers=64)
    assert result.run['workers'] == 1 and result.run['backend'] == 'in-process'


def test_alarm_fault_types_are_the_contracts_names_with_the_signature_beside(tmp_path):
    from twin_anomaly.classifier import FAULT_TYPES as CONTRACT
    from twin_anomaly.detector import contract_fault_type, FAULT_TYPES as SIGNATURES
    # the mapping: a contract name for every signature, 'unknown' where it names no one fault
    assert {contract_fault_type(s) for s in SIGNATURES} <= set(CONTRACT) | {'unknown', 'none'}
    assert contract_fault_type('friction_like') == 'friction_increase'
    assert contract_fault_type('effort_offset') == 'unknown'
    assert contract_fault_type('sensor_noise') == 'sensor_noise'
    faults = {'name': 'bias', 'faults': [{'type': 'sensor_bias', 'signal': 'effort',
                                          'joint': 'joint2', 'start_s': 1.2, 'size': 8.0}]}
    scenario = _scenario(duration_s=1.6, faults=faults, randomization={'overrides': FIXED},
                         detector={'commissioning_duration_s': 0.8})
    result = run_whatif(scenario, 1, urdf=URDF)
    sample, = result.samples
    assert sample.alarm_joint == 'joint2' and sample.alarm_signature in SIGNATURES
    assert sample.alarm_fault_type == contract_fault_type(sample.alarm_signature)
    assert sample.alarm_fault_type in set(CONTRACT) | {'unknown'}
    alarms = result.summary['alarms']
    assert alarms['by_joint_and_type'] == {f'joint2:{sample.alarm_fault_type}': 1}
    assert alarms['by_joint_and_signature'] == {f'joint2:{sample.alarm_signature}': 1}
    write_outputs(result, tmp_path / 'out', plots=False)
    import csv
    with open(tmp_path / 'out' / 'samples.csv', encoding='utf-8') as handle:
        row, = csv.DictReader(handle)
    assert (row['alarm_fault_type'], row['alarm_signature']) == (sample.alarm_fault_type,
                                                                 sample.alarm_signature)
