"""The training job's own parts: the evidence set, per-run decisions, the command line."""
import json
import os
import stat

import numpy as np
import pytest
from robot_twin import anomaly_train
from robot_twin.anomaly_train import EvidenceSet, run_decisions, training_cases
from robot_twin.cli import main
from robot_twin.fault_runs import Case, SimulatedRobot
from twin_anomaly.classifier import Evidence, JOINT_DETECTORS, OnnxClassifier, \
    ROBOT_FEATURES, RuleClassifier

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
    assert run(['--output', str(tmp_path / 'm.onnx'), '--cases', '1']) == 2
    assert 'argument --cases: must be at least 2' in capsys.readouterr().err


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
    for rate in (300.0, 0.0, -125.0, float('nan'), float('inf')):
        with pytest.raises(ValueError, match='must divide 1000 Hz'):
            Case(sample_rate_hz=rate)


def test_the_command_refuses_a_sample_rate_the_plant_cannot_give(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(['anomaly', 'train', '--output', str(tmp_path / 'm.onnx'), '--sample-rates',
              '1000', '300'])
    assert exit_.value.code == 2
    assert "--sample-rates: invalid rate in Hz dividing 1000 value: '300'" in (
        capsys.readouterr().err)


def run(argv):
    """Return the exit status of ``robot-twin anomaly train ARGV`` (argparse's errors exit)."""
    try:
        return main(['anomaly', 'train'] + list(argv))
    except SystemExit as exit_:
        return exit_.code


#: (fault type, the detector that shows it): what the stand-in simulation below produces
TYPES = (('stuck_sensor', 'stuck_qd'), ('sensor_bias', 'pv_bias'), ('sensor_noise', 'noise_q'))


def stand_in_simulation(monkeypatch, mislabel_held_out=False):
    """
    Replace the simulation by labelled evidence made up in a millisecond; return its calls.

    Every robot gets one run per fault type of :data:`TYPES`, shown by that type's detector
    on a random joint: a toy problem the classifier learns. ``mislabel_held_out`` makes the
    held-out robots (seed >= 1000) show each type by another type's detector. The perceptron
    stops early on so few rows, before it is confident (test_classifier.py fits it on more):
    a logistic regression stands in, in the same pipeline (standardization first).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    calls = []

    def simulate(cases, workdir, config, per_case, seed, workers=1, progress=True):
        calls.append((len(cases), seed))
        rng = np.random.default_rng(seed)
        data = EvidenceSet()
        for case in range(len(cases)):
            for t, (ftype, detector) in enumerate(TYPES):
                if mislabel_held_out and seed >= 1000:
                    detector = TYPES[(t + 1) % len(TYPES)][1]
                joint = int(rng.integers(len(NAMES)))
                run = len(data.runs)
                data.runs.append({'case': case, 'arm': 'builtin', 'fault_type': ftype,
                                  'joint': NAMES[joint], 'mode': 'abrupt', 'size': 'small',
                                  'detected': True})
                for k in range(6):
                    data.snapshots.append((run, k, evidence(joint, detector,
                                                            rng.uniform(2.0, 4.0))))
                    data.labels.append([ftype if j == NAMES[joint] else 'none' for j in NAMES])
        return data

    monkeypatch.setattr(anomaly_train, 'simulate', simulate)
    monkeypatch.setattr(anomaly_train, 'make_pipeline', lambda seed: Pipeline([
        ('scale', StandardScaler()), ('fit', LogisticRegression(C=100.0, max_iter=1000))]))
    return calls


def small(tmp_path, *extra):
    """Return the smallest training job: 2 robots, 1 held-out robot, in ``tmp_path``."""
    return ['--output', str(tmp_path / 'm.onnx'), '--test-cases', '1', '--per-case', '1',
            '--workers', '1', '--quiet'] + list(extra)


@pytest.mark.parametrize('option, value', [
    ('--sample-rates', '0'), ('--sample-rates', '-500'), ('--sample-rates', 'nan'),
    ('--cases', '1'), ('--cases', 'two'), ('--test-cases', '-1'), ('--per-case', '1.5'),
    ('--workers', '0'), ('--seed', '-1'), ('--commissioning-s', '0'),
    ('--commissioning-s', 'nan'), ('--commissioning-s', '0.5'), ('--commissioning-s', 'x'),
    ('--arms', 'no_such_arm'), ('--engines', 'ode')])
def test_every_option_is_checked_when_parsed(tmp_path, capsys, monkeypatch, option, value):
    calls = stand_in_simulation(monkeypatch)
    assert run(small(tmp_path, option, value)) == 2
    err = capsys.readouterr().err
    assert f'error: argument {option}: ' in err and 'Traceback' not in err
    assert len(err.strip().splitlines()[-1]) < 200 and not calls


def test_an_arm_urdf_must_be_one(tmp_path, capsys):
    (tmp_path / 'arm.urdf').write_text('<robot name="x"><link name="base"/></robot>')
    (tmp_path / 'broken.urdf').write_text('<robot')
    assert run(small(tmp_path, '--arms', str(tmp_path / 'broken.urdf'))) == 2
    assert 'not a usable URDF' in capsys.readouterr().err
    assert run(small(tmp_path, '--arms', str(tmp_path / 'arm.urdf'))) == 2
    assert 'no movable joint' in capsys.readouterr().err


def test_output_paths_are_checked_before_anything_is_simulated(tmp_path, capsys, monkeypatch):
    calls = stand_in_simulation(monkeypatch)
    (tmp_path / 'file').write_text('')
    (tmp_path / 'dir').mkdir()
    (tmp_path / 'plot.png').mkdir()
    for extra, message in [
            (['--dataset', str(tmp_path / 'file')], 'argument --dataset: '),
            (['--dataset', str(tmp_path / 'file' / 'sub')], 'argument --dataset: '),
            (['--output', str(tmp_path / 'dir')], 'argument --output: '),
            (['--output', str(tmp_path / 'file' / 'm.onnx')], 'argument --output: '),
            (['--report', str(tmp_path / 'dir')], 'argument --report: '),
            (['--report', str(tmp_path / 'r.png')], 'argument --report: '),
            (['--report', str(tmp_path / 'plot.json')], 'argument --report: '),
            (['--report', str(tmp_path / 'm.onnx')], '--report must differ from --output'),
            (['--report', str(tmp_path / 'm.json')], 'confusion matrix on --output')]:
        argv = small(tmp_path, '--cases', '2', *extra)
        if message.endswith('on --output'):
            argv[1] = str(tmp_path / 'm.png')
        assert run(argv) == 2, extra
        err = capsys.readouterr().err
        assert message in err and 'Errno' not in err and 'Traceback' not in err, err
    assert not calls and not (tmp_path / 'm.onnx').exists()


def test_a_dataset_is_reused_only_with_the_options_it_was_made_with(tmp_path, capsys,
                                                                    monkeypatch):
    calls = stand_in_simulation(monkeypatch)
    dataset = tmp_path / 'ds'
    args = small(tmp_path, '--dataset', str(dataset))
    assert run(args + ['--cases', '2']) == 0
    assert calls == [(2, 0), (1, 1000)]
    stored = EvidenceSet.stored_options(dataset / 'train.npz')
    assert stored['cases'] == 2 and 'test_cases' not in stored
    assert EvidenceSet.stored_options(dataset / 'test.npz')['test_cases'] == 1
    assert 'from 2 robots' in capsys.readouterr().out
    model = (tmp_path / 'm.onnx').read_bytes()
    # other options: refused before anything is simulated, naming what differs
    assert run(args + ['--cases', '3', '--sample-rates', '500']) == 2
    err = capsys.readouterr().err
    assert '--cases 2 (now 3)' in err and '--sample-rates 1000 (now 500)' in err
    assert 'new --dataset directory' in err and '--regenerate' in err
    assert run(args + ['--cases', '2', '--test-cases', '2']) == 2
    assert '--test-cases 1 (now 2)' in capsys.readouterr().err
    assert calls == [(2, 0), (1, 1000)] and (tmp_path / 'm.onnx').read_bytes() == model
    # the same options: reused, nothing simulated
    assert run(args + ['--cases', '2']) == 0 and len(calls) == 2
    # --regenerate: simulated again, and every figure is the new robots'
    assert run(args + ['--cases', '3', '--regenerate']) == 0
    assert calls[2:] == [(3, 0), (1, 1000)]
    rows = 3 * len(TYPES) * 6 * len(NAMES)
    assert f'wrote {tmp_path / "m.onnx"} ({rows} rows from 3 robots' in capsys.readouterr().out
    assert EvidenceSet.stored_options(dataset / 'train.npz')['cases'] == 3
    meta = OnnxClassifier(tmp_path / 'm.onnx').metadata
    assert (meta['training_robots'], meta['training_rows']) == ('3', str(rows))
    # a set that does not say how it was made (an older version's) is not trusted
    EvidenceSet().save(dataset / 'train.npz')
    assert run(args + ['--cases', '3']) == 2
    assert 'does not record the options' in capsys.readouterr().err
    assert not [p.name for p in dataset.iterdir() if p.name.endswith('.partial')]


def test_a_model_no_better_than_chance_is_not_written(tmp_path, capsys, monkeypatch):
    stand_in_simulation(monkeypatch, mislabel_held_out=True)
    (tmp_path / 'm.onnx').write_bytes(b'the previous model')
    report = tmp_path / 'report.json'
    assert run(small(tmp_path, '--cases', '2', '--report', str(report))) == 1
    captured = capsys.readouterr()
    assert 'right type 0.0%' in captured.out and 'wrote' not in captured.out
    assert 'at or below chance (33.3%: 1 of the 3 fault types' in captured.err
    assert 'not written (left as it was)' in captured.err
    assert (tmp_path / 'm.onnx').read_bytes() == b'the previous model'
    written = json.loads(report.read_text())
    assert not written['written'] and written['held_out']['type_accuracy'] == 0.0
    assert written['chance_type_accuracy'] == pytest.approx(1 / 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m.onnx', 'report.json',
                                                          'report.png']
    # the same job with held-out robots like the training ones: written, no warning
    stand_in_simulation(monkeypatch)
    assert run(small(tmp_path, '--cases', '2', '--report', str(report))) == 0
    captured = capsys.readouterr()
    assert 'right type 100.0%' in captured.out and captured.err == ''
    assert OnnxClassifier(tmp_path / 'm.onnx').metadata['training_robots'] == '2'
    # no held-out robots: written, with a warning that it was not checked
    assert run(small(tmp_path, '--cases', '2', '--test-cases', '0')) == 0
    assert 'warning: no held-out accuracy (--test-cases 0)' in capsys.readouterr().err


def test_an_output_that_is_not_a_regular_file_is_refused_and_kept(
        tmp_path, capsys, monkeypatch):
    calls = stand_in_simulation(monkeypatch)
    fifo = tmp_path / 'pipe'
    os.mkfifo(fifo)
    os.mkfifo(tmp_path / 'r.png')
    (tmp_path / 'data').mkdir()
    os.mkfifo(tmp_path / 'data' / 'train.npz')
    for extra, option in [([], '--output'),
                          (['--report', str(fifo)], '--report'),
                          (['--report', str(tmp_path / 'r.json')], '--report'),
                          (['--dataset', str(tmp_path / 'data')], '--dataset')]:
        argv = small(tmp_path, '--cases', '2', *extra)
        if option == '--output':
            argv[1] = str(fifo)
        assert run(argv) == 2, extra
        err = capsys.readouterr().err
        assert f'argument {option}: ' in err and 'named pipe (FIFO), not a regular file' in err
        assert 'Traceback' not in err, err
    assert not calls and stat.S_ISFIFO(os.stat(fifo).st_mode)
    # the library call: refused before a byte is written, the FIFO stays
    with pytest.raises(OSError, match='not a regular file'):
        EvidenceSet().save(fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'pipe', 'r.png']
