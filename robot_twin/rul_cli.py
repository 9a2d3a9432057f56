"""
``robot-twin rul fit|predict``: RUL models on run-to-failure fleet data.

Wiring (robot_twin/cli.py)::

    add_rul_parser(sub)

``fit`` trains the fleet model of :mod:`twin_anomaly.fleet_rul` on run-to-failure data and
writes it as ONNX (checking that onnxruntime reproduces LightGBM within 1e-5 before it
writes); ``predict`` writes ``unit,rul`` (one row per unit, the RUL at its last row) with
onnxruntime only. Exit status: 0 on success, 2 when an input or option is unusable (the
message says what; ``fit`` checks that ``--output`` can be written before it trains), 1 when an
output cannot be written after all.
"""
import sys

_RUL = 'robot-twin rul'
_FORMATS = ('cmapss', 'csv')
_PARITY_TOLERANCE = 1e-5
_FEW_UNITS = 10        # fewer run-to-failure units than this: the fit is warned about


def add_rul_parser(subparsers):
    """Add the ``rul`` sub-command (``fit``, ``predict``) to an argparse collection."""
    p = subparsers.add_parser(
        'rul', help='remaining-useful-life models on run-to-failure fleet data',
        description='Train a remaining-useful-life model on run-to-failure data of a fleet '
                    '(NASA C-MAPSS, or a CSV with header unit,time,<feature>,...; every unit '
                    'fails at its last row) and predict the RUL of units at their last row. '
                    'The model is LightGBM on per-unit history features, run with onnxruntime.')
    sub = p.add_subparsers(dest='rul_command', required=True, metavar='{fit,predict}')
    fit = sub.add_parser('fit', help='train a model and write it as ONNX',
                         description='Train on every row of every unit (RUL capped at --cap) '
                                     'and write model.onnx with its feature recipe.')
    _common(fit)
    fit.add_argument('--output', required=True, help='model file to write (.onnx)')
    fit.add_argument('--cap', type=float, default=125.0,
                     help='RUL cap in time units of the data (default 125 cycles)')
    fit.add_argument('--rounds', type=int, default=None,
                     help='boosting rounds (default: the tuned value)')
    fit.add_argument('--seed', type=int, default=0, help='training seed (default 0)')
    fit.add_argument('--condition-columns', default=None, metavar='C1,C2,...',
                     help='columns that say the operating condition; if they show distinct '
                          'regimes, every column is normalized within its regime (default: '
                          'setting1,setting2,setting3 for cmapss, none for csv; "" for none)')
    fit.set_defaults(func=run_fit)
    predict = sub.add_parser('predict', help='predict the RUL of every unit at its last row',
                             description='Write predictions.csv with header unit,rul.')
    _common(predict)
    predict.add_argument('--model', required=True, help='model.onnx from "rul fit"')
    predict.add_argument('--output', required=True, help='predictions CSV to write')
    predict.add_argument('--truth', default=None, metavar='FILE',
                         help="the units' true RUL, to score the predictions: C-MAPSS "
                              'RUL_FD00x.txt (one number per line, units 1, 2, ...) or a CSV '
                              'with header unit,rul; prints RMSE and the NASA score')
    predict.set_defaults(func=run_predict)
    return p


def _common(p):
    p.add_argument('--format', required=True, choices=_FORMATS,
                   help='cmapss: NASA C-MAPSS text (unit, cycle, 3 settings, 21 sensors); '
                        'csv: header unit,time,<feature>,...')
    p.add_argument('--data', required=True, help='data file')


def _error(text, status=2):
    print(f'{_RUL}: error: {text}', file=sys.stderr)
    return status


def run_fit(args):
    """Handle ``robot-twin rul fit``; return the exit status."""
    import numpy as np
    from robot_twin.cli_files import output_problem
    from tqdm import tqdm
    from twin_anomaly import fleet_rul

    problem = output_problem(args.output, '--output')     # before the training
    if problem:
        return _error(problem)
    try:
        import lightgbm  # noqa: F401
        import onnxmltools  # noqa: F401
    except ImportError as exc:
        return _error(f'training needs {exc.name}: pip install lightgbm==4.7.0 '
                      'onnxmltools==1.16.0 (see requirements.txt)')
    if not args.cap > 0.0:
        return _error(f'--cap must be > 0, got {args.cap}')
    rounds = fleet_rul.DEFAULT_ROUNDS if args.rounds is None else args.rounds
    if rounds < 1:
        return _error(f'--rounds must be >= 1, got {rounds}')
    conditions = fleet_rul.default_conditions(args.format) if args.condition_columns is None \
        else [c.strip() for c in args.condition_columns.split(',') if c.strip()]
    try:
        data = fleet_rul.load_fleet(args.data, args.format)
        units = data.units()
        print(f'{_RUL} fit: {units.size} units, {data.unit.size} rows, '
              f'{len(data.columns)} columns from {args.data}')
        if units.size < _FEW_UNITS:
            print(f'{_RUL} fit: warning: only {units.size} run-to-failure unit(s); a fleet '
                  'model learns how units wear from many of them (C-MAPSS FD001 has 100), so '
                  "this one's RUL will hardly carry over to other units", file=sys.stderr)
        with tqdm(total=rounds, desc='boosting', unit='round', file=sys.stderr) as bar:
            booster, spec = fleet_rul.fit(data, cap=args.cap, rounds=rounds, seed=args.seed,
                                          condition_columns=conditions,
                                          progress=lambda k: bar.update(k - bar.n))
        blob = fleet_rul.to_onnx(booster, spec)
        model = fleet_rul.FleetRulModel.from_bytes(blob)
        _, x = fleet_rul.features_for_prediction(data, spec)
        gap = float(np.max(np.abs(model.predict_fraction(x) -
                                  booster.predict(x.astype(np.float64)))))
    except fleet_rul.FleetDataError as exc:
        return _error(str(exc))
    if not gap <= _PARITY_TOLERANCE:
        return _error(f'the ONNX export differs from LightGBM by {gap:.3g} (> '
                      f'{_PARITY_TOLERANCE}); model not written', 1)
    try:
        with open(args.output, 'wb') as handle:
            handle.write(blob)
    except OSError as exc:
        return _error(f'cannot write {args.output}: {exc}', 1)
    if spec.conditions is not None:
        print(f'{_RUL} fit: {spec.conditions.regimes} operating regimes in '
              f'{",".join(spec.conditions.columns)}: every column normalized within its regime')
    elif conditions:
        print(f'{_RUL} fit: one operating condition in {",".join(conditions)} (no distinct '
              'regimes): columns used as they are')
    print(f'{_RUL} fit: {len(spec.names())} features from {len(spec.columns)} non-constant '
          f'columns, {rounds} rounds, cap {spec.cap:g}; ONNX equals LightGBM within '
          f'{gap:.1e}; wrote {args.output} ({len(blob) / 1024:.0f} KiB)')
    return 0


def run_predict(args):
    """Handle ``robot-twin rul predict``; return the exit status."""
    from twin_anomaly import fleet_rul

    try:
        model = fleet_rul.FleetRulModel(args.model)
        data = fleet_rul.load_fleet(args.data, args.format)
        truth = None if args.truth is None else fleet_rul.load_truth(args.truth)
        units, rul = model.predict(data)
        if truth is not None:
            missing = [int(u) for u in units if int(u) not in truth]
            if missing:
                raise fleet_rul.FleetDataError(f'{args.truth}: no true RUL for unit(s) '
                                               f'{missing[:10]}')
    except fleet_rul.FleetDataError as exc:
        return _error(str(exc))
    try:
        fleet_rul.write_predictions(args.output, units, rul)
    except OSError as exc:
        return _error(f'cannot write {args.output}: {exc}', 1)
    print(f'{_RUL} predict: {units.size} units; wrote {args.output}')
    if truth is not None:
        true = [truth[int(u)] for u in units]
        print(f'{_RUL} predict: against {args.truth}: RMSE {fleet_rul.rmse(rul, true):.2f} '
              f'(true RUL capped at {model.spec.cap:g}: '
              f'{fleet_rul.rmse(rul, [min(t, model.spec.cap) for t in true]):.2f}), NASA score '
              f'{fleet_rul.nasa_score(rul, true):.1f} over {units.size} units')
    return 0
