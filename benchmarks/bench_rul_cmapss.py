"""
Fleet RUL on NASA C-MAPSS FD001: validation RMSE and NASA score on held-out training units.

Only ``train_FD001.txt`` is available here (100 run-to-failure engines); the official test set
is not, so every figure is on held-out *training* units, cut at random points as the official
test units are (true RUL drawn uniformly from 7 to 145 cycles, at least 31 cycles observed),
``--cuts`` cuts per unit. The figures are indicative, not comparable one to one with papers
that report on test_FD001.

Two protocols, each over ``--seeds`` seeds (the seed draws the LightGBM seed and the cuts):

- ``untouched``: fit on engines 1-80, evaluate on engines 81-100. Every design choice (features,
  hyper-parameters) was made by grouped cross-validation inside engines 1-80, so engines
  81-100 were never looked at before this run;
- ``grouped``: for each seed a random 80/20 split of all engines (grouped by engine).

RMSE is reported against the true RUL capped at 125 cycles (the training target) and uncapped;
the NASA score (``d = predicted - true``, ``exp(-d/13) - 1`` early, ``exp(d/10) - 1`` late) is
summed over the predictions and scaled to 100 of them (the size of the official test set).
Also: inference time per engine (features + onnxruntime on one engine's history) and the model
size. Plots go to ``--output``.

Multi-condition data (C-MAPSS FD002 and FD004 run in six operating regimes) is not here
either. ``--regimes K`` makes a multi-condition fleet out of FD001 instead: every row gets one
of K regimes at random (as FD002's cycles do), its three settings become that regime's (FD002's
six setting combinations, plus noise), and every sensor is moved and scaled per regime (offsets
of up to 15 and gains of 0.8-1.25 times the sensor's own spread over the fleet), far more than
wear moves it. The wear itself is FD001's. ``--no-conditions`` trains without naming the
settings as condition columns (how robot_twin trained before it looked for regimes).

Run: ``.venv/bin/python benchmarks/bench_rul_cmapss.py [--data F] [--seeds 5] [--cuts 10]
[--regimes 6 [--no-conditions]]``.
"""
import argparse
from pathlib import Path
import time

import numpy as np
from tqdm import tqdm
from twin_anomaly import fleet_rul

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / 'shared' / 'datasets' / 'cmapss' / 'train_FD001.txt'
CAP = 125.0
ANCHORS = {'SVR': 20.96, 'LSTM': 16.14, 'deep CNN': 12.61, 'tuned LightGBM (285 features)': 12.52,
           'transformer, 5-seed reproduction': 12.2}


FD002_SETTINGS = np.array([[0.0, 0.0, 100.0], [10.0, 0.25, 100.0], [20.0, 0.7, 100.0],
                           [25.0, 0.62, 60.0], [35.0, 0.84, 100.0], [42.0, 0.84, 100.0]])


def multi_condition(data, regimes, rng):
    """FD001 turned into a fleet that runs in ``regimes`` operating regimes (module docstring)."""
    if not 2 <= regimes <= len(FD002_SETTINGS):
        raise SystemExit(f'--regimes must be 2..{len(FD002_SETTINGS)}, got {regimes}')
    values = data.values.copy()
    settings = [data.columns.index(c) for c in fleet_rul.CMAPSS_CONDITIONS]
    sensors = [i for i in range(values.shape[1]) if i not in settings]
    spread = values[:, sensors].std(axis=0)
    spread = np.where(spread > 0.0, spread, 1.0)
    r = rng.integers(0, regimes, size=values.shape[0])
    offset = rng.uniform(-15.0, 15.0, (regimes, len(sensors))) * spread
    gain = np.exp(rng.uniform(np.log(0.8), np.log(1.25), (regimes, len(sensors))))
    mean = values[:, sensors].mean(axis=0)
    values[:, sensors] = mean + offset[r] + gain[r] * (values[:, sensors] - mean)
    values[:, settings] = FD002_SETTINGS[r] + rng.normal(0.0, 1e-3, (r.size, 3))
    return fleet_rul.FleetData(data.unit, data.time, values, list(data.columns), data.source)


def cut_units(data, rng, cuts):
    """Cut every unit ``cuts`` times; return (FleetData of the cut units, true RUL (M,))."""
    unit, time_, values, truth = [], [], [], []
    new_id = 0
    for _, rows in data.groups():
        high = min(145, rows.size - 31)
        for _ in range(cuts):
            rul = int(rng.integers(7, high + 1))
            keep = rows[:rows.size - rul]
            new_id += 1
            unit.append(np.full(keep.size, new_id))
            time_.append(data.time[keep])
            values.append(data.values[keep])
            truth.append(rul)
    return (fleet_rul.FleetData(np.concatenate(unit), np.concatenate(time_), np.vstack(values),
                                data.columns), np.array(truth, float))


def evaluate(data, fit_units, test_units, seed, cuts, conditions=fleet_rul.CMAPSS_CONDITIONS):
    """Fit, export, predict held-out cuts with onnxruntime; return a result dict."""
    booster, spec = fleet_rul.fit(data.subset(fit_units), cap=CAP, seed=seed,
                                  condition_columns=conditions)
    blob = fleet_rul.to_onnx(booster, spec)
    model = fleet_rul.FleetRulModel.from_bytes(blob)
    test, truth = cut_units(data.subset(test_units), np.random.default_rng([seed, 7]), cuts)
    _, predicted = model.predict(test)
    capped = np.minimum(truth, CAP)
    return {'rmse': fleet_rul.rmse(predicted, capped),
            'rmse_uncapped': fleet_rul.rmse(predicted, truth),
            'score100': fleet_rul.nasa_score(predicted, capped) * 100.0 / truth.size,
            'predicted': predicted, 'truth': truth, 'model': model, 'test': test,
            'size_kib': len(blob) / 1024.0,
            'regimes': 1 if spec.conditions is None else spec.conditions.regimes}


def inference_time(model, test, repeats=3):
    """Median seconds to predict one unit from its history (features + onnxruntime)."""
    units = [test.subset([u]) for u in test.units()[:50]]
    times = []
    for _ in range(repeats):
        for one in units:
            start = time.perf_counter()
            model.predict(one)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def _summary(name, results):
    r = np.array([[x['rmse'], x['rmse_uncapped'], x['score100']] for x in results])
    mean, std = r.mean(axis=0), r.std(axis=0)
    print(f'{name:9s}  RMSE (capped truth) {mean[0]:6.2f} +- {std[0]:4.2f}   '
          f'RMSE (uncapped) {mean[1]:6.2f} +- {std[1]:4.2f}   '
          f'NASA score per 100 {mean[2]:6.0f} +- {std[2]:4.0f}   '
          f'({len(results)} seeds, per seed: {", ".join(f"{v:.2f}" for v in r[:, 0])})')
    return mean, std


def plots(results, out):
    """Predicted vs true (first seed) and the error distribution over seeds."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    first = results['untouched'][0]
    fig, ax = plt.subplots(1, 2, figsize=(10, 4.2))
    ax[0].scatter(first['truth'], first['predicted'], s=8, alpha=0.6)
    ax[0].plot([0, 150], [0, 150], 'k--', lw=1, label='perfect')
    ax[0].plot([0, CAP, 150], [0, CAP, CAP], 'r:', lw=1, label=f'cap {CAP:.0f}')
    ax[0].set(xlabel='true RUL [cycles]', ylabel='predicted RUL [cycles]',
              title='engines 81-100, cut at random points (seed 0)')
    ax[0].legend()
    for name, res in results.items():
        err = np.concatenate([x['predicted'] - np.minimum(x['truth'], CAP) for x in res])
        ax[1].hist(err, bins=40, alpha=0.5, density=True, label=name)
    ax[1].set(xlabel='predicted - true (capped) [cycles]', ylabel='density',
              title='errors over all seeds')
    ax[1].legend()
    fig.tight_layout()
    fig.savefig(out / 'rul_cmapss.png', dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--data', type=Path, default=DEFAULT_DATA, help='train_FD001.txt')
    parser.add_argument('--seeds', type=int, default=5, help='seeds per protocol (>= 5)')
    parser.add_argument('--cuts', type=int, default=10, help='random cuts per held-out engine')
    parser.add_argument('--output', type=Path, default=Path('bench_rul_cmapss_out'),
                        help='directory for the plots')
    parser.add_argument('--regimes', type=int, default=0,
                        help='make a fleet of this many operating regimes out of the data '
                             '(module docstring); 0: the data as it is')
    parser.add_argument('--no-conditions', action='store_true',
                        help='train without the settings as condition columns')
    args = parser.parse_args()
    data = fleet_rul.load_cmapss(args.data)
    title = f'C-MAPSS {args.data.stem.replace("train_", "")}'
    if args.regimes:
        data = multi_condition(data, args.regimes, np.random.default_rng(2026))
        title += f' made multi-condition ({args.regimes} regimes)'
    conditions = [] if args.no_conditions else fleet_rul.CMAPSS_CONDITIONS
    units = data.units()
    jobs = [('untouched', s, units[units <= 80], units[units > 80]) for s in range(args.seeds)]
    for s in range(args.seeds):
        perm = np.random.default_rng([s, 1]).permutation(units)
        jobs.append(('grouped', s, np.sort(perm[:80]), np.sort(perm[80:])))
    results = {'untouched': [], 'grouped': []}
    for name, seed, fit_units, test_units in tqdm(jobs, desc='fits', unit='fit'):
        results[name].append(evaluate(data, fit_units, test_units, seed, args.cuts, conditions))
    found = sorted({x['regimes'] for res in results.values() for x in res})
    print(f'{title}, held-out training units, {args.cuts} random cuts per engine '
          f'(true RUL 7-145), LightGBM {fleet_rul.DEFAULT_ROUNDS} rounds via onnxruntime; '
          f'condition columns: {", ".join(conditions) or "none"}; regimes found: '
          f'{", ".join(map(str, found))}:')
    for name, res in results.items():
        _summary(name, res)
    first = results['untouched'][0]
    per_unit = inference_time(first['model'], first['test'])
    print(f'model: {len(first["model"].spec.names())} features, '
          f'{first["size_kib"]:.0f} KiB ONNX; inference {per_unit * 1e3:.2f} ms per engine '
          '(features from its history + onnxruntime, one thread)')
    print('anchors on the official test set (RMSE): ' +
          ', '.join(f'{k} {v}' for k, v in ANCHORS.items()))
    plots(results, args.output)
    print(f'plots: {args.output / "rul_cmapss.png"}')


if __name__ == '__main__':
    main()
