"""The training job's own parts: the evidence set, per-run decisions, the command line."""
import numpy as np
import pytest

from robot_twin.anomaly_train import EvidenceSet, run_decisions, training_cases
from robot_twin.cli import main
from robot_twin.fault_runs import Case, SimulatedRobot
from twin_anomaly.classifier import Evidence, JOINT_DETECTORS, ROBOT_FEATURES, \
    RuleClassifier

NAMES = ('a', 'b', 'c')


def evidence(joint, detector, value):
    peak = np.zeros((len(NAMES), len(JOINT_DETECTORS)))
    peak[joint, JOINT_DETECTORS.index(detector)] = value
    robot = {k: 0.01 * i for i, k in enumerate(ROBOT_FEATURES)}
    return Evidence(NAMES, peak * 2.0, peak * 0.5, peak, robot)


def sample_set():
    data = EvidenceSet()
    for run, (ftype, joint, det) in enumerate([('stuck_sensor', 'b', 'stuck_qd'),
                                               ('sensor_bias', 'c', 'pv_bias')]):
        data.runs.append({'case': run, 'arm': 'builtin', 'fault_type': ftype, 'joint': joint,
                          'mode': 'abrupt', 'size': 'small', 'detected': True})
        for k in range(3):
            data.snapshots.append((run, k, evidence(NAMES.index(joint), det, 2.0 + k)))
            data.labels.append([ftype if j == joint else 'none' for j in NAMES])
    return data


def test_an_evidence_set_survives_saving_and_gives_labelled_rows(tmp_path):
    data = sample_set()
    data.save(tmp_path / 'set.npz')
    loaded = EvidenceSet.load(tmp_path / 'set.npz')
    assert loaded.runs == data.runs and loaded.labels == data.labels
    for (r1, k1, e1), (r2, k2, e2) in zip(data.snapshots, loaded.snapshots):
        assert (r1, k1, e1.joint_names) == (r2, k2, e2.joint_names)
        np.testing.assert_array_equal(e1.peak, e2.peak)
        assert e1.robot == e2.robot
    x, y, run, snapshot = loaded.rows()
    assert x.shape[0] == 6 * len(NAMES) and list(y[:3]) == ['none', 'stuck_sensor', 'none']
    assert set(run) == {0, 1} and snapshot.max() == 5
    assert len(loaded.rows(runs={1})[0]) == 3 * len(NAMES)


def test_run_decisions_judge_one_snapshot_per_run_against_the_truth():
    decisions = run_decisions(sample_set(), RuleClassifier())
    assert [(d['predicted'], d['predicted_joint']) for d in decisions] == [
        ('stuck_sensor', 'b'), ('sensor_bias', 'c')]
    assert all(d['right_type'] and d['right_joint'] for d in decisions)


def test_training_cases_alternate_arms_and_engines_and_differ_by_seed():
    cases = training_cases(4, 0)
    assert [(c.arm, c.engine) for c in cases] == [
        ('builtin', 'mujoco'), ('iiwa', 'mujoco'), ('builtin', 'pybullet'),
        ('iiwa', 'pybullet')]
    held_out = training_cases(4, 1000)
    assert {c.motion_seed for c in cases}.isdisjoint({c.motion_seed for c in held_out})


def test_the_command_refuses_too_few_robots(tmp_path, capsys):
    assert main(['anomaly', 'train', '--output', str(tmp_path / 'm.onnx'), '--cases',
                 '1']) == 2
    assert '--cases must be at least 2' in capsys.readouterr().err


def test_robots_can_send_their_samples_slower_than_the_plant_steps(tmp_path):
    # the default training robots are the 1 kHz ones they always were (same seeds, same draws)
    assert all(c.sample_rate_hz == 1000.0 for c in training_cases(6, 0))
    assert training_cases(6, 0) == training_cases(6, 0, sample_rates=(1000.0,))
    mixed = training_cases(12, 0, sample_rates=(1000.0, 250.0, 125.0))
    assert {c.sample_rate_hz for c in mixed} == {1000.0, 250.0, 125.0}
    case = Case(arm='builtin', engine='mujoco', sample_rate_hz=125.0)
    assert case.stride == 8 and case.name.endswith('@125Hz')
    stamps = [m.t for _now, m in SimulatedRobot(case, tmp_path).samples(0.1, [],
                                                                        np.random.default_rng(0))]
    np.testing.assert_allclose(np.diff(stamps), 0.008, atol=1e-9)
    assert len(stamps) == 12
    with pytest.raises(ValueError, match='must divide 1000 Hz'):
        Case(sample_rate_hz=300.0)


def test_the_command_refuses_a_sample_rate_the_plant_cannot_give(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(['anomaly', 'train', '--output', str(tmp_path / 'm.onnx'), '--sample-rates',
              '1000', '300'])
    assert exit_.value.code == 2
    assert "--sample-rates: invalid rate in Hz dividing 1000 value: '300'" in (
        capsys.readouterr().err)
