"""Fleet RUL: data formats, per-unit features, LightGBM -> ONNX parity, the CLI."""
import csv
from pathlib import Path

import numpy as np
import pytest
from robot_twin.cli import main
from twin_anomaly import fleet_rul

ROOT = Path(__file__).resolve().parents[1]
FD001 = ROOT.parent / 'shared' / 'datasets' / 'cmapss' / 'train_FD001.txt'


def _fleet(units=30, seed=0, columns=('temp', 'vib', 'flow', 'const')):
    """Run-to-failure units: two sensors drift exponentially towards failure, unit offsets."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, units + 1):
        life = int(rng.integers(90, 200))
        t = np.arange(1, life + 1, dtype=float)
        wear = np.exp((t - life) / 40.0)
        offset = rng.normal(0.0, 0.5, 3)
        temp = 10.0 + offset[0] + 3.0 * wear + rng.normal(0.0, 0.3, life)
        vib = 1.0 + offset[1] + 2.0 * wear + rng.normal(0.0, 0.3, life)
        flow = 5.0 + offset[2] + rng.normal(0.0, 0.3, life)        # no information
        rows += [[u, ti, a, b, c, 7.0] for ti, a, b, c in zip(t, temp, vib, flow)]
    values = np.array(rows)
    return fleet_rul.FleetData(values[:, 0].astype(np.int64), values[:, 1], values[:, 2:],
                               list(columns))


def _write_csv(path, data, rows=None):
    rows = np.arange(data.unit.size) if rows is None else rows
    with open(path, 'w', newline='') as handle:
        w = csv.writer(handle)
        w.writerow(['unit', 'time'] + data.columns)
        for i in rows:
            w.writerow([int(data.unit[i]), repr(float(data.time[i]))] +
                       [repr(float(v)) for v in data.values[i]])
    return path


def _truncate(data, rng):
    """Cut every unit at a random point: (data, true RUL per unit in unit order)."""
    keep, truth = [], []
    for _, rows in data.groups():
        rul = int(rng.integers(5, len(rows) - 20))
        keep.append(rows[:len(rows) - rul])
        truth.append(rul)
    keep = np.concatenate(keep)
    return (fleet_rul.FleetData(data.unit[keep], data.time[keep], data.values[keep],
                                data.columns), np.array(truth, float))


@pytest.fixture(scope='module')
def trained():
    data = _fleet()
    booster, spec = fleet_rul.fit(data, rounds=120, seed=1)
    return data, booster, spec, fleet_rul.FleetRulModel.from_bytes(
        fleet_rul.to_onnx(booster, spec))


def test_scores():
    assert fleet_rul.rmse([1.0, 3.0], [2.0, 5.0]) == pytest.approx(np.sqrt(2.5))
    late, early = fleet_rul.nasa_score([20.0], [10.0]), fleet_rul.nasa_score([0.0], [10.0])
    assert late == pytest.approx(np.e - 1.0) and early == pytest.approx(np.exp(10 / 13) - 1)
    assert late > early                         # late predictions cost more


def test_features_are_causal_and_per_unit(trained):
    data, _, spec, _ = trained
    assert 'const' not in spec.columns and spec.input_columns == tuple(data.columns)
    _, rows = next(data.groups())
    index = [data.columns.index(c) for c in spec.columns]
    full = fleet_rul.unit_features(data.time[rows], data.values[rows], index, 15)
    cut = fleet_rul.unit_features(data.time[rows[:50]], data.values[rows[:50]], index, 15)
    np.testing.assert_allclose(cut, full[:50])           # the future does not leak back
    assert full.shape == (rows.size, len(spec.names()))
    names = spec.names()
    x = data.values[rows, data.columns.index('temp')]
    np.testing.assert_allclose(full[:, names.index('temp.mean10')][9:],
                               np.convolve(x, np.ones(10) / 10, 'valid'))
    slope = np.polyfit(np.arange(30), x[-30:], 1)[0]
    assert full[-1, names.index('temp.slope30')] == pytest.approx(slope)


def test_onnx_equals_lightgbm_within_1e5(trained):
    data, booster, spec, model = trained
    for d in (data, _truncate(_fleet(units=15, seed=9), np.random.default_rng(3))[0]):
        index = [d.columns.index(c) for c in spec.columns]
        x = np.vstack([fleet_rul.unit_features(d.time[r], d.values[r], index, 15)
                       for _, r in d.groups()]).astype(np.float32)
        gap = np.abs(model.predict_fraction(x) - booster.predict(x.astype(np.float64)))
        assert gap.max() <= 1e-5


def test_held_out_units_are_predicted_and_independent_of_the_file(trained):
    _, _, _, model = trained
    test, truth = _truncate(_fleet(units=20, seed=5), np.random.default_rng(4))
    units, rul = model.predict(test)
    assert list(units) == list(range(1, 21))
    assert np.all((rul >= 0.0) & (rul <= 125.0))
    assert fleet_rul.rmse(rul, np.minimum(truth, 125.0)) < 25.0     # it learned something
    assert np.corrcoef(rul, np.minimum(truth, 125.0))[0, 1] > 0.8
    alone = [model.predict(test.subset([u]))[1][0] for u in units]
    np.testing.assert_array_equal(alone, rul)
    shuffled = np.random.default_rng(0).permutation(test.unit.size)
    mixed = fleet_rul.FleetData(test.unit[shuffled], test.time[shuffled],
                                test.values[shuffled], test.columns)
    np.testing.assert_array_equal(model.predict(fleet_rul._finish(
        mixed.unit, mixed.time, mixed.values, mixed.columns, 'x'))[1], rul)


def test_csv_reader_and_its_errors(tmp_path):
    data = _fleet(units=3)
    path = _write_csv(tmp_path / 'fleet.csv', data,
                      rows=np.random.default_rng(0).permutation(data.unit.size))
    back = fleet_rul.load_csv(path)
    np.testing.assert_array_equal(back.unit, data.unit)
    np.testing.assert_array_equal(back.values, data.values)
    cases = {'time,unit,a\n1,1,2\n': 'header must be unit,time',
             'unit,time,a\n1,1\n': ':2: 2 values',
             'unit,time,a\n1,1,x\n': 'not a number',
             'unit,time,a\n1,1,2\n1,1,3\n': 'two rows at time 1',
             'unit,time,a\n1,1,nan\n': 'non-finite',
             'unit,time,a\n1,1,2\n1,2,1e39\n': 'row 2 has a value beyond',
             'unit,time,a\n1,-2e30,2\n': 'row 1 has a value beyond',
             'unit,time,a\n1.5,1,2\n': 'integers',
             'unit,time,a\n': 'no data rows'}
    for text, message in cases.items():
        bad = tmp_path / 'bad.csv'
        bad.write_text(text)
        with pytest.raises(fleet_rul.FleetDataError, match=message):
            fleet_rul.load_csv(bad)
    with pytest.raises(fleet_rul.FleetDataError, match='cannot read'):
        fleet_rul.load_csv(tmp_path / 'missing.csv')


def test_cmapss_reader_errors(tmp_path):
    bad = tmp_path / 'train.txt'
    bad.write_text('1 1 ' + ' '.join(['0.5'] * 23) + '\n')
    with pytest.raises(fleet_rul.FleetDataError, match='expected 26 numbers'):
        fleet_rul.load_cmapss(bad)
    with pytest.raises(fleet_rul.FleetDataError, match='unknown format'):
        fleet_rul.load_fleet(bad, 'parquet')


def test_cli_fit_and_predict_generic_csv(tmp_path, capsys):
    train = _write_csv(tmp_path / 'train.csv', _fleet(units=25, seed=2))
    test, _ = _truncate(_fleet(units=6, seed=3), np.random.default_rng(1))
    test_csv = _write_csv(tmp_path / 'test.csv', test)
    model = tmp_path / 'model.onnx'
    assert main(['rul', 'fit', '--format', 'csv', '--data', str(train), '--output', str(model),
                 '--rounds', '40']) == 0
    captured = capsys.readouterr()
    assert 'ONNX equals LightGBM within' in captured.out and 'warning' not in captured.err
    out = tmp_path / 'predictions.csv'
    assert main(['rul', 'predict', '--format', 'csv', '--model', str(model), '--data',
                 str(test_csv), '--output', str(out)]) == 0
    rows = list(csv.reader(open(out)))
    assert rows[0] == ['unit', 'rul']
    assert [r[0] for r in rows[1:]] == [str(u) for u in range(1, 7)]
    assert all(0.0 <= float(r[1]) <= 125.0 for r in rows[1:])


def test_cli_errors_are_messages(tmp_path, capsys):
    bad_model = tmp_path / 'model.onnx'
    bad_model.write_bytes(b'not onnx')
    data = _write_csv(tmp_path / 'd.csv', _fleet(units=2))
    assert main(['rul', 'predict', '--format', 'csv', '--model', str(bad_model), '--data',
                 str(data), '--output', str(tmp_path / 'p.csv')]) == 2
    assert 'cannot load model' in capsys.readouterr().err
    other = tmp_path / 'other.csv'
    other.write_text('unit,time,x\n1,1,2\n1,2,3\n')
    good = tmp_path / 'good.onnx'
    assert main(['rul', 'fit', '--format', 'csv', '--data', str(data), '--output', str(good),
                 '--rounds', '5']) == 0
    assert 'warning: only 2 run-to-failure unit(s)' in capsys.readouterr().err
    assert main(['rul', 'predict', '--format', 'csv', '--model', str(good), '--data',
                 str(other), '--output', str(tmp_path / 'p.csv')]) == 2
    assert "needs column(s) ['temp'" in capsys.readouterr().err
    assert main(['rul', 'fit', '--format', 'cmapss', '--data', str(tmp_path / 'none.txt'),
                 '--output', str(good)]) == 2
    # a reading beyond float32 used to become inf in the model's features and move the
    # prediction silently
    huge = tmp_path / 'huge.csv'
    huge.write_text(data.read_text() + '2,999,1e39,1,1,7\n')
    assert main(['rul', 'predict', '--format', 'csv', '--model', str(good), '--data',
                 str(huge), '--output', str(tmp_path / 'p.csv')]) == 2
    assert 'has a value beyond' in capsys.readouterr().err


def test_features_beyond_float32_are_refused():
    x = np.array([[1.0, 2.0], [3.0, 1e39], [4.0, 5.0]])
    data = fleet_rul.FleetData(np.array([1, 2, 3]), np.zeros(3), np.zeros((3, 1)), ['a'], 'f.csv')
    with pytest.raises(fleet_rul.FleetDataError, match=r'unit\(s\) \[2\] are not finite'):
        fleet_rul._float32_features(x, np.array([1, 2, 3]), data)
    assert fleet_rul._float32_features(x[[0, 2]], np.array([1, 3]), data).dtype == np.float32


@pytest.mark.skipif(not FD001.is_file(), reason='C-MAPSS FD001 not in ../shared/datasets')
def test_cli_on_cmapss_fd001(tmp_path, capsys):
    model = tmp_path / 'model.onnx'
    assert main(['rul', 'fit', '--format', 'cmapss', '--data', str(FD001), '--output',
                 str(model), '--rounds', '30']) == 0
    lines = FD001.read_text().splitlines()
    cut = tmp_path / 'test_FD001.txt'        # the first 3 units, cut short
    keep = [ln for ln in lines if int(ln.split()[0]) <= 3 and int(ln.split()[1]) <= 100]
    cut.write_text('\n'.join(keep) + '\n')
    out = tmp_path / 'predictions.csv'
    assert main(['rul', 'predict', '--format', 'cmapss', '--model', str(model), '--data',
                 str(cut), '--output', str(out)]) == 0
    rows = list(csv.reader(open(out)))
    assert rows[0] == ['unit', 'rul'] and len(rows) == 4
    # scored against an RUL_FD00x.txt-style truth: one number per line, units 1, 2, 3
    life = {u: max(int(ln.split()[1]) for ln in lines if int(ln.split()[0]) == u)
            for u in (1, 2, 3)}
    true = [life[u] - 100 for u in (1, 2, 3)]
    truth = tmp_path / 'RUL_FD001.txt'
    truth.write_text(''.join(f'{t}\n' for t in true))
    assert main(['rul', 'predict', '--format', 'cmapss', '--model', str(model), '--data',
                 str(cut), '--output', str(out), '--truth', str(truth)]) == 0
    predicted = [float(r[1]) for r in list(csv.reader(open(out)))[1:]]
    expected = fleet_rul.rmse(predicted, true)
    assert f'RMSE {expected:.2f}' in capsys.readouterr().out


def test_truth_files_and_their_errors(tmp_path):
    plain = tmp_path / 'RUL.txt'
    plain.write_text('112\n98\n\n69\n')
    assert fleet_rul.load_truth(plain) == {1: 112.0, 2: 98.0, 3: 69.0}
    table = tmp_path / 'truth.csv'
    table.write_text('unit,rul\n7,12.5\n3,40\n')
    assert fleet_rul.load_truth(table) == {7: 12.5, 3: 40.0}
    for text, match in (('unit,rul\n1,-3\n', 'RUL >= 0'), ('unit,rul\n1,4\n1,5\n', 'twice'),
                        ('12 13\n', 'expected a unit id'), ('', 'no data rows')):
        table.write_text(text)
        with pytest.raises(fleet_rul.FleetDataError, match=match):
            fleet_rul.load_truth(table)


def _regimes(data, seed=5, regimes=4):
    """Return ``data`` run in operating regimes ('load' column; sensors moved per regime)."""
    rng = np.random.default_rng(seed)
    load = np.array([20.0, 45.0, 70.0, 95.0])[:regimes]
    offset = rng.uniform(-20.0, 20.0, (regimes, data.values.shape[1]))   # seed: the regimes
    gain = rng.uniform(0.8, 1.25, (regimes, data.values.shape[1]))
    r = rng.integers(0, regimes, size=data.unit.size)
    values = offset[r] + gain[r] * data.values
    values = np.column_stack([load[r] + rng.normal(0.0, 0.05, r.size), values])
    return fleet_rul.FleetData(data.unit, data.time, values, ['load'] + data.columns), r


def test_operating_regimes_are_found_and_normalized_out():
    data, truth = _regimes(_fleet(units=20))
    found = fleet_rul.find_operating_conditions(data, ['load'])
    assert found.regimes == 4
    regime = found.regime(data)
    # the same partition as the truth (cluster labels are arbitrary)
    assert all(np.unique(regime[truth == k]).size == 1 for k in range(4))
    norm = found.normalize(data)
    assert norm.columns == ['temp', 'vib', 'flow', 'const']          # 'load' left out
    for k in range(4):
        rows = regime == k
        assert np.allclose(norm.values[rows][:, :3].mean(axis=0), 0.0, atol=1e-9)
    # one condition (noise around one load), or no condition columns: nothing to normalize
    flat = _fleet(units=20)
    flat = fleet_rul.FleetData(flat.unit, flat.time, np.column_stack(
        [50.0 + np.random.default_rng(1).normal(0.0, 1.0, flat.unit.size), flat.values]),
        ['load'] + flat.columns)
    assert fleet_rul.find_operating_conditions(flat, ['load']) is None
    assert fleet_rul.find_operating_conditions(data, []) is None
    with pytest.raises(fleet_rul.FleetDataError, match=r"condition column\(s\) \['speed'\]"):
        fleet_rul.find_operating_conditions(data, ['speed'])


def test_a_model_of_several_regimes_predicts_as_well_as_one_of_one():
    base = _fleet(units=40, seed=6)
    test, truth = _truncate(_fleet(units=12, seed=7), np.random.default_rng(2))
    data, _ = _regimes(base)
    test_data, _ = _regimes(test, seed=5)    # the same regimes (seed), other rows
    errors = {}
    for name, train, held, conditions in (('one regime', base, test, []),
                                          ('regimes named', data, test_data, ['load']),
                                          ('regimes ignored', data, test_data, [])):
        booster, spec = fleet_rul.fit(train, rounds=150, seed=1, condition_columns=conditions)
        model = fleet_rul.FleetRulModel.from_bytes(fleet_rul.to_onnx(booster, spec))
        assert (model.spec.conditions is None) == (conditions == [])
        units, rul = model.predict(held)
        # the regimes travel in the ONNX metadata: the loaded model predicts as the booster
        assert np.allclose(rul, fleet_rul.booster_predict(booster, held, spec)[1], atol=1e-3)
        errors[name] = fleet_rul.rmse(rul, np.minimum(truth, 125.0))
    assert errors['regimes named'] < 1.5 * errors['one regime'] + 2.0
    assert errors['regimes ignored'] > 1.5 * errors['regimes named']


def test_feature_recipes_of_version_1_still_load():
    spec = fleet_rul.FeatureSpec.from_json(
        '{"version": 1, "columns": ["a"], "input_columns": ["a", "b"], "baseline_rows": 15, '
        '"cap": 125.0}')
    assert spec.conditions is None and spec.columns == ('a',)
    with pytest.raises(fleet_rul.FleetDataError, match='malformed'):
        fleet_rul.FeatureSpec.from_json(
            '{"version": 2, "columns": ["a"], "input_columns": ["a"], "baseline_rows": 15, '
            '"cap": 125.0, "conditions": {"columns": ["a"], "input_columns": ["a"], '
            '"center": [[1.0]], "scale": [0.0], "mean": [[0.0]], "std": [[1.0]]}}')


def test_cli_condition_columns(tmp_path, capsys):
    data, _ = _regimes(_fleet(units=20, seed=8))
    train = _write_csv(tmp_path / 'train.csv', data)
    model = tmp_path / 'model.onnx'
    assert main(['rul', 'fit', '--format', 'csv', '--data', str(train), '--output', str(model),
                 '--rounds', '20', '--condition-columns', 'load']) == 0
    assert '4 operating regimes in load' in capsys.readouterr().out
    assert main(['rul', 'fit', '--format', 'csv', '--data', str(train), '--output', str(model),
                 '--rounds', '5', '--condition-columns', 'speed']) == 2
    assert "condition column(s) ['speed'] not in the data" in capsys.readouterr().err
