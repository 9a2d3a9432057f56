"""
``robot-twin anomaly train``: train the fault classifier on simulated faults, export ONNX.

Wiring (robot_twin/cli.py)::

    add_anomaly_parser(sub)

The data are offline fault runs (:mod:`robot_twin.fault_runs`): robots that differ from the
twin (randomized bodies, friction and rotor inertia the URDF lacks, sensor noise), simulated
by MuJoCo and by PyBullet, on the built-in arm and the KUKA iiwa; each case is commissioned
once, then run again with one fault after another of every plant fault type (random joints,
two sizes, abrupt and incipient). While the twin's monitor raises an alarm, its evidence is
turned into one feature row per joint (:func:`twin_anomaly.classifier.feature_rows`), labelled
with the fault type on the faulty joint's row (all rows for robot-level faults) and ``none``
elsewhere.

A scikit-learn pipeline (standardization + multi-layer perceptron) is fitted on the training
cases, checked on validation cases (other robots of the same seed), exported to ONNX with
skl2onnx (the feature names and classes in its metadata) and checked for parity: onnxruntime
must give the same class probabilities as scikit-learn within 1e-5. Held-out robots (another
seed: other variants, motions) give the accuracy reported in ``--report``; they are never
used for fitting or for choosing anything.

The model replaces ``--output`` only when it passes both checks: ONNX parity, and a held-out
accuracy (right fault type) above chance, i.e. above 1 / the number of fault types it knows.
Otherwise the previous file is left as it was.

``--dataset DIR`` keeps the simulated evidence with the options that shaped it
(:data:`DATASET_OPTIONS`) and reuses it only for the same options.

Exit status: 0 when the model was written, 2 on unusable options (checked before anything is
simulated), 1 when the model fails a check (and is not written) or cannot be written.
"""
import argparse
from dataclasses import dataclass, field
import json
import math
import os
from pathlib import Path
import sys
import tempfile
import time
import warnings
import zipfile

import numpy as np
from robot_twin.cli_files import nearest_existing, not_a_regular_file, replace_file
from twin_anomaly.classifier import ROBOT_FEATURES

_PROG = 'robot-twin anomaly train'
PARITY_TOLERANCE = 1e-5
ONNX_OPSET = 15
#: Options that shape a simulated evidence set, as stored with it (``--dataset``): the
#: training set has ``cases``, the held-out set ``test_cases``; both have the others.
DATASET_OPTIONS = ('cases', 'test_cases', 'per_case', 'arms', 'engines', 'sample_rates',
                   'commissioning_s', 'no_calibration', 'seed')


def training_cases(count, seed, arms=('builtin', 'iiwa'), engines=('mujoco', 'pybullet'),
                   sample_rates=(1000.0,)):
    """
    Return ``count`` cases spread over arms and engines, each its own variant and motion.

    Parameters
    ----------
    count : int
        Number of cases.
    seed : int
        Variants are ``robot_variant`` index ``i`` of this seed; motions are drawn from it.
    arms, engines : sequence of str
        Arms (:data:`robot_twin.fault_runs.ARMS` or URDF paths) and engines to cycle through.
    sample_rates : sequence of float
        Rates at which the robots send their samples, Hz, drawn per case.

    Returns
    -------
    list of robot_twin.fault_runs.Case

    """
    from robot_twin.fault_runs import Case
    rng = np.random.default_rng([seed, 101])
    cases = []
    for i in range(count):
        cases.append(Case(arm=arms[i % len(arms)],
                          engine=engines[(i // len(arms)) % len(engines)], seed=seed, index=i,
                          motion_seed=int(rng.integers(1 << 30)),
                          period_s=float(rng.uniform(3.0, 6.0)),
                          fraction=float(rng.uniform(0.25, 0.45)),
                          sample_rate_hz=float(sample_rates[int(rng.integers(len(sample_rates)))])
                          if len(sample_rates) > 1 else float(sample_rates[0])))
    return cases


def case_faults(case, per_case, seed, workdir):
    """
    Return ``per_case`` faults drawn from the case's catalog (on 3 random joints).

    Each fault's size is scaled by a random factor (0.6-1.4; torque limits 0.85-1.1), so the
    classifier sees sizes between and around the catalog's two.
    """
    from dataclasses import replace
    from robot_twin.fault_runs import fault_catalog, SimulatedRobot
    rng = np.random.default_rng([seed, case.index, 202])
    robot = SimulatedRobot(case, workdir)
    joints = list(rng.choice(robot.joint_names, size=min(3, robot.n), replace=False))
    specs = fault_catalog(robot, joints)
    if per_case and per_case < len(specs):
        keep = rng.choice(len(specs), size=per_case, replace=False)
        specs = [specs[i] for i in sorted(keep)]
    out = []
    for spec in specs:
        fault = dict(spec.fault)
        factor = fault.get('mode') == 'scale'          # the 4x friction rise stays 4x
        if 'size' in fault and not factor:
            low, high = (0.85, 1.1) if fault['type'] == 'torque_saturation' else (0.6, 1.4)
            fault['size'] = float(fault['size'] * rng.uniform(low, high))
            if fault['type'] in ('dropout', 'torque_saturation'):
                fault['size'] = min(fault['size'], 0.95)
        out.append(replace(spec, fault=fault))
    return out


@dataclass
class EvidenceSet:
    """
    The monitor's evidence of many fault runs, labelled: what the classifier learns from.

    Attributes
    ----------
    runs : list of dict
        Per fault run: ``case`` (index), ``arm``, ``fault_type``, ``joint``, ``mode``,
        ``size``, ``detected``.
    snapshots : list of (int, int, Evidence)
        ``(run, k, evidence)``: the k-th evidence (0.1 s apart) after the run's first alarm.
    labels : list of list of str
        Per snapshot, the true class of each joint's row.
    options : dict or None
        The options it was simulated with (:func:`dataset_options`); None if not known.

    """

    runs: list = field(default_factory=list)
    snapshots: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    options: dict = None

    def rows(self, runs=None):
        """
        Feature rows, labels, and the run and snapshot of each row.

        Parameters
        ----------
        runs : set of int, optional
            Only the snapshots of these runs.

        Returns
        -------
        X : (m, F) float32, y : (m,) str, run : (m,) int, snapshot : (m,) int

        """
        from twin_anomaly.classifier import FEATURE_NAMES, feature_rows
        xs, ys, run_of, snap_of = [], [], [], []
        for i, ((run, _k, evidence), labels) in enumerate(zip(self.snapshots, self.labels)):
            if runs is not None and run not in runs:
                continue
            xs.append(feature_rows(evidence))
            ys += labels
            run_of += [run] * len(labels)
            snap_of += [i] * len(labels)
        if not xs:
            return (np.zeros((0, len(FEATURE_NAMES)), np.float32), np.array([], dtype=str),
                    np.array([], int), np.array([], int))
        return np.concatenate(xs), np.array(ys), np.array(run_of), np.array(snap_of)

    def save(self, path):
        """
        Write as a compressed .npz (plain arrays; runs as JSON lines; options as JSON).

        The file is written beside its place and then moved there: an interrupted save leaves
        the previous file (or none), never a partial one.
        """
        z, ratio, peak, labels, owner, robot, meta = [], [], [], [], [], [], []
        for i, ((run, k, ev), lab) in enumerate(zip(self.snapshots, self.labels)):
            z.append(ev.z)
            ratio.append(ev.ratio)
            peak.append(ev.peak)
            labels += lab
            owner += [i] * len(lab)
            robot.append([ev.robot[key] for key in ROBOT_FEATURES])
            meta.append((run, k, json.dumps(list(ev.joint_names))))
        path = Path(path)
        problem = not_a_regular_file(path)
        if problem:
            raise OSError(f'{problem}; refusing to replace it')
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f'.{path.name}.{os.getpid()}.partial')
        try:
            with open(partial, 'wb') as stream:
                np.savez_compressed(
                    stream, z=np.concatenate(z) if z else np.zeros((0, 0)),
                    ratio=np.concatenate(ratio) if z else np.zeros((0, 0)),
                    peak=np.concatenate(peak) if z else np.zeros((0, 0)),
                    labels=np.array(labels, dtype=str), owner=np.array(owner, dtype=int),
                    robot=np.array(robot, dtype=float).reshape(len(robot), len(ROBOT_FEATURES)),
                    meta=np.array([json.dumps(m) for m in meta], dtype=str),
                    runs=np.array([json.dumps(r) for r in self.runs], dtype=str),
                    options=np.array(json.dumps(self.options)))
            replace_file(partial, path)
        finally:
            partial.unlink(missing_ok=True)

    @staticmethod
    def stored_options(path):
        """Return the options a saved set was simulated with (None if it does not say)."""
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data['options'])) if 'options' in data.files else None

    @classmethod
    def load(cls, path):
        """Read what :meth:`save` wrote."""
        from twin_anomaly.classifier import Evidence
        data = np.load(path, allow_pickle=False)
        out = cls(runs=[json.loads(r) for r in data['runs']])
        if 'options' in data.files:
            out.options = json.loads(str(data['options']))
        owner = data['owner']
        for i, text in enumerate(data['meta']):
            run, k, names = json.loads(text)
            rows = owner == i
            robot = dict(zip(ROBOT_FEATURES, data['robot'][i].tolist()))
            out.snapshots.append((run, k, Evidence(tuple(json.loads(names)), data['z'][rows],
                                                   data['ratio'][rows], data['peak'][rows],
                                                   robot)))
            out.labels.append([str(v) for v in data['labels'][rows]])
        return out


def simulate(cases, workdir, config, per_case, seed, workers=1, progress=True):
    """Commission every case, run its faults, and collect the labelled evidence."""
    from robot_twin.fault_runs import commission, run_fault, run_many
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = [str(workdir / f'case_{i}.yaml') for i in range(len(cases))]
    run_many([(commission, (case, path, config), {}) for case, path in zip(cases, paths)],
             workers, progress, desc='commissioning')
    tasks, owners = [], []
    for i, case in enumerate(cases):
        for spec in case_faults(case, per_case, seed, workdir):
            tasks.append((run_fault, (case, spec, paths[i], config),
                          {'model_path': 'rules', 'keep_rows': True}))
            owners.append(i)
    results = run_many(tasks, workers, progress, desc='fault runs')
    out = EvidenceSet()
    for run, (i, result) in enumerate(zip(owners, results)):
        spec = result.spec
        out.runs.append({'case': i, 'arm': cases[i].arm, 'fault_type': spec.fault_type,
                         'joint': spec.joint, 'mode': spec.mode, 'size': spec.size,
                         'detected': result.first_alarm is not None})
        for k, evidence in enumerate(result.evidence):
            out.snapshots.append((run, k, evidence))
            out.labels.append(list(result.labels))
    return out


def fit(pipeline, x, y):
    """
    Fit on one BLAS thread (returns the pipeline).

    A small perceptron gains nothing from more threads, and on a busy 2-core computer a
    multi-threaded BLAS made the fit 15x slower.
    """
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1):
        return pipeline.fit(x, y)


def make_pipeline(seed):
    """Return the classifier: standardization + a two-layer perceptron (scikit-learn)."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    return Pipeline([
        ('scale', StandardScaler()),
        ('mlp', MLPClassifier(hidden_layer_sizes=(96, 64), alpha=1e-3, max_iter=400,
                              early_stopping=True, validation_fraction=0.15,
                              n_iter_no_change=20, random_state=seed))])


def export_onnx(pipeline, path, metadata, check_rows=None):
    """
    Write the fitted pipeline as ONNX (probabilities as a plain tensor) with metadata.

    Parameters
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Fitted.
    path : str or Path
        ONNX file to write.
    metadata : dict
        Extra ``key: value`` metadata (strings).
    check_rows : (m, F) float32 array, optional
        Rows whose scikit-learn probabilities are stored with the model (``parity_check``):
        anyone can check later that the file still gives them, without scikit-learn.

    """
    from skl2onnx import to_onnx
    from twin_anomaly.classifier import FEATURE_NAMES
    sample = np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32)
    onx = to_onnx(pipeline, sample, target_opset=ONNX_OPSET,
                  options={id(pipeline.steps[-1][1]): {'zipmap': False}})
    meta = dict(metadata, feature_names=json.dumps(list(FEATURE_NAMES)),
                classes=json.dumps([str(c) for c in pipeline.classes_]))
    if check_rows is not None and len(check_rows):
        rows = np.asarray(check_rows, dtype=np.float32)
        meta['parity_check'] = json.dumps({
            'rows': rows.tolist(),
            'probabilities': pipeline.predict_proba(rows).tolist()})
    for key, value in meta.items():
        entry = onx.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onx.doc_string = 'robot_twin fault classifier (robot-twin anomaly train)'
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onx.SerializeToString())
    return path


def parity(pipeline, path, rows):
    """Largest |onnxruntime - scikit-learn| class probability over feature ``rows``."""
    from twin_anomaly.classifier import OnnxClassifier
    if len(rows) == 0:
        return 0.0
    onnx = OnnxClassifier(path).probabilities(rows)
    ref = pipeline.predict_proba(np.asarray(rows, dtype=np.float32))
    return float(np.abs(onnx - ref).max())


def run_decisions(evidence, classifier, runs=None, snapshot=5):
    """
    Per detected fault run, the verdict from its evidence ``snapshot`` x 0.1 s after the alarm.

    The default, 0.5 s, is when ``benchmarks/bench_anomaly.py`` reads the verdict too.

    Parameters
    ----------
    evidence : EvidenceSet
        The runs and their evidence.
    classifier : object
        ``classify(Evidence) -> Verdict`` (an :class:`~twin_anomaly.classifier.
        OnnxClassifier`, or :class:`SklearnClassifier` around a fitted pipeline).
    runs : set of int, optional
        Only these runs.
    snapshot : int
        Which evidence of the run to classify (0.1 s apart; the last one if fewer).

    Returns
    -------
    list of dict
        ``fault_type``, ``joint``, ``mode`` (truth), ``predicted``, ``predicted_joint``,
        ``right_type``, ``right_joint`` (None for robot-level faults).

    """
    from twin_anomaly.classifier import ROBOT_LEVEL
    chosen = {}
    for run, k, ev in evidence.snapshots:
        if (runs is None or run in runs) and (run not in chosen or k <= snapshot):
            chosen[run] = ev
    out = []
    for run, ev in sorted(chosen.items()):
        truth = evidence.runs[run]
        verdict = classifier.classify(ev)
        ftype, joint = truth['fault_type'], truth['joint']
        out.append({'fault_type': ftype, 'joint': joint, 'mode': truth['mode'],
                    'predicted': verdict.fault_type, 'predicted_joint': verdict.joint,
                    'right_type': verdict.fault_type == ftype,
                    'right_joint': None if ftype in ROBOT_LEVEL else verdict.joint == joint})
    return out


class SklearnClassifier:
    """A fitted scikit-learn pipeline behind the monitor's classifier interface."""

    def __init__(self, pipeline, min_confidence=0.5):
        self.pipeline = pipeline
        self.classes = tuple(str(c) for c in pipeline.classes_)
        self.min_confidence = min_confidence

    def classify(self, evidence):
        """Return the :class:`~twin_anomaly.classifier.Verdict` for an Evidence."""
        from twin_anomaly.classifier import alarmed_joints, decide, feature_rows
        p = self.pipeline.predict_proba(feature_rows(evidence))
        return decide(p, evidence.joint_names, self.classes, self.min_confidence,
                      alarmed_joints(evidence))


def summarize(decisions):
    """Accuracy overall and per fault type of :func:`run_decisions` output."""
    out = {'runs': len(decisions)}
    if not decisions:
        return out
    out['type_accuracy'] = float(np.mean([d['right_type'] for d in decisions]))
    joint = [d['right_joint'] for d in decisions if d['right_joint'] is not None]
    out['joint_accuracy'] = float(np.mean(joint)) if joint else math.nan
    per = {}
    for d in decisions:
        entry = per.setdefault(d['fault_type'], {'runs': 0, 'right_type': 0, 'predicted': {}})
        entry['runs'] += 1
        entry['right_type'] += int(d['right_type'])
        entry['predicted'][d['predicted']] = entry['predicted'].get(d['predicted'], 0) + 1
    out['per_type'] = per
    return out


def _confusion_plot(decisions, path):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    from twin_anomaly.classifier import FAULT_TYPES
    names = list(FAULT_TYPES) + ['unknown']
    matrix = np.zeros((len(FAULT_TYPES), len(names)))
    for d in decisions:
        matrix[FAULT_TYPES.index(d['fault_type']), names.index(d['predicted'])] += 1
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    fig, ax = plt.subplots(figsize=(9, 7))
    ax.imshow(share, cmap='Blues', vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha='right')
    ax.set_yticks(range(len(FAULT_TYPES)), FAULT_TYPES)
    for i in range(len(FAULT_TYPES)):
        for j in range(len(names)):
            if matrix[i, j]:
                ax.text(j, i, int(matrix[i, j]), ha='center', va='center', fontsize=8)
    ax.set_xlabel('predicted')
    ax.set_ylabel('true fault type')
    ax.set_title('Fault type on held-out robots (runs)')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def chance_accuracy(classes):
    """
    Right-type accuracy of a model that names one of its fault types at random.

    ``1 / k`` for the ``k`` fault types among ``classes`` (``'none'`` is no verdict); 1 when
    it knows at most one (such a model cannot tell faults apart).
    """
    return 1.0 / max(1, _fault_types(classes))


def _fault_types(classes):
    return sum(str(c) != 'none' for c in classes)


def train(args):
    """
    Simulate (or load) the evidence, fit, export and check; return the report dict.

    The model is written to a file beside ``args.output`` and moved there only if it passes
    the checks (``report['written']``); otherwise ``report['refused']`` says why and the
    previous ``--output`` is left as it was.
    """
    from robot_twin.fault_runs import monitor_config
    from twin_anomaly.classifier import OnnxClassifier
    config = monitor_config(commissioning_duration_s=args.commissioning_s,
                            calibration=not args.no_calibration)
    train_cases = training_cases(args.cases, args.seed, args.arms, args.engines,
                                 args.sample_rates)
    test_cases = training_cases(args.test_cases, args.seed + 1000, args.arms, args.engines,
                                args.sample_rates)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix='twin_anomaly_train_') as tmp:
        data = _load_or_simulate(args, 'train', train_cases, tmp, config, args.seed)
        test = _load_or_simulate(args, 'test', test_cases, tmp, config, args.seed + 1000)
    x, y, run_of, _ = data.rows()
    if len(x) == 0:
        raise RuntimeError('no fault was detected in the training runs; nothing to learn')
    # validation: the last fifth of the training robots, never seen by the first fit
    n_val = max(1, len(train_cases) // 5)
    val_runs = {i for i, r in enumerate(data.runs) if r['case'] >= len(train_cases) - n_val}
    fit_rows = ~np.isin(run_of, list(val_runs))
    pipeline = make_pipeline(args.seed)
    fit(pipeline, x[fit_rows], y[fit_rows])
    val = run_decisions(data, SklearnClassifier(pipeline), val_runs)
    fit(pipeline, x, y)                               # the final model: every training robot
    metadata = {'trained_at': time.strftime('%Y-%m-%dT%H:%M:%S'),
                'training_robots': len(train_cases), 'training_rows': len(x),
                'seed': args.seed, 'arms': ','.join(args.arms),
                'engines': ','.join(args.engines),
                'sample_rates_hz': ','.join(f'{r:g}' for r in args.sample_rates)}
    test_x = test.rows()[0]
    check = test_x[::max(1, len(test_x) // 40)][:40] if len(test_x) else x[:40]
    output = Path(args.output)
    candidate = output.with_name(f'.{output.name}.{os.getpid()}.partial.onnx')
    try:
        export_onnx(pipeline, candidate, metadata, check)
        diff = parity(pipeline, candidate, np.concatenate([x[:3000], test_x[:3000]]))
        held = run_decisions(test, OnnxClassifier(candidate))
        summary = summarize(held)
        chance = chance_accuracy(pipeline.classes_)
        refused = ''
        if diff > PARITY_TOLERANCE:
            refused = (f'ONNX parity failed: max |onnxruntime - scikit-learn| = {diff:.2e} '
                       f'> {PARITY_TOLERANCE:g}')
        elif held and summary['type_accuracy'] <= chance + 1e-12:
            refused = (f'held-out accuracy (right type) {summary["type_accuracy"]:.1%} is at or '
                       f'below chance ({chance:.1%}: 1 of the '
                       f'{_fault_types(pipeline.classes_)} fault types it knows); train on more '
                       f'robots and faults (--cases, --per-case)')
        if not refused:
            replace_file(candidate, output)
    finally:
        candidate.unlink(missing_ok=True)
    report = {
        'output': str(output), 'written': not refused, 'refused': refused,
        'seconds': round(time.time() - started, 1),
        'parity_max_abs_diff': diff, 'parity_ok': diff <= PARITY_TOLERANCE,
        'classes': [str(c) for c in pipeline.classes_], 'chance_type_accuracy': chance,
        'training': {'robots': len(train_cases), 'fault_runs': len(data.runs),
                     'detected': sum(r['detected'] for r in data.runs), 'rows': int(len(x))},
        'validation': summarize(val),
        'held_out': dict(summary, robots=len(test_cases), seed=args.seed + 1000,
                         detected=sum(r['detected'] for r in test.runs),
                         fault_runs=len(test.runs)),
    }
    if args.report:
        report_path = Path(args.report)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2, default=str))
        if held:
            _confusion_plot(held, report_path.with_suffix('.png'))
    return report


def dataset_options(args, name):
    """
    Return the options that shape evidence set ``name`` (``'train'`` or ``'test'``).

    The training set depends on ``--cases``, the held-out set on ``--test-cases``; both on
    the arms, engines, rates, faults per robot, commissioning, calibration and seed.
    """
    skip = 'test_cases' if name == 'train' else 'cases'
    return {key: getattr(args, key) for key in DATASET_OPTIONS if key != skip}


def _load_or_simulate(args, name, cases, tmp, config, seed):
    """Read a saved evidence set (``--dataset DIR``) or simulate it (and save it there)."""
    path = Path(args.dataset) / f'{name}.npz' if args.dataset else None
    options = dataset_options(args, name)
    if path is not None and path.is_file() and not args.regenerate:
        data = EvidenceSet.load(path)
        if data.options != options:                   # _dataset_problem refused it before
            raise ValueError(f'{path}: simulated with other options; use --regenerate')
        return data
    if cases:
        data = simulate(cases, Path(tmp) / name, config, args.per_case, seed, args.workers,
                        not args.quiet)
    else:
        data = EvidenceSet()
    data.options = options
    if path is not None:
        data.save(path)
    return data


def _shown(key, value):
    """Return an option's value as it is given on the command line."""
    if key == 'no_calibration':
        return 'given' if value else 'not given'
    if isinstance(value, (list, tuple)):
        return ' '.join(_shown(key, v) for v in value)
    return f'{value:g}' if isinstance(value, float) else str(value)


def _dataset_problem(args):
    """Why the stored ``--dataset`` cannot be reused with these options (None if it can)."""
    if not args.dataset or args.regenerate:
        return None
    differ = {}
    for name in ('train', 'test'):
        path = Path(args.dataset) / f'{name}.npz'
        if not path.is_file():
            continue
        try:
            stored = EvidenceSet.stored_options(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            return (f'--dataset: cannot read {path} ({exc}); add --regenerate to simulate it '
                    f'again, or use a new --dataset directory')
        if stored is None:
            return (f'--dataset: {path} does not record the options it was simulated with '
                    f'(written by an older version); add --regenerate to simulate it again, '
                    f'or use a new --dataset directory')
        for key, value in dataset_options(args, name).items():
            if key not in differ and stored.get(key) != value:
                option = '--' + key.replace('_', '-')
                differ[key] = (f'{option} {_shown(key, stored.get(key))} (now '
                               f'{_shown(key, value)})')
    if not differ:
        return None
    return (f'--dataset {args.dataset} holds rows simulated with other options: '
            f'{", ".join(differ.values())}. Use a new --dataset directory, the options it was '
            f'made with, or add --regenerate to simulate again and replace it')


def _unwritable(directory):
    """Why files cannot be written in ``directory`` (created if missing); None if they can."""
    existing = nearest_existing(directory)
    if not existing.is_dir():
        return f'{existing} is not a directory'
    if not os.access(existing, os.W_OK | os.X_OK):
        return f'cannot write in {existing}'
    return None


def _output_file(text):
    if not text:
        raise argparse.ArgumentTypeError('needs a file name')
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f'{text} is a directory; give a file name')
    problem = not_a_regular_file(path)
    if problem:
        raise argparse.ArgumentTypeError(f'{problem}; give the name of a file to write')
    problem = _unwritable(path.parent)
    if problem is None and path.exists() and not os.access(path, os.W_OK):
        problem = f'{text} is not writable'
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return str(path)


_output_file.__name__ = 'file name'


def _report_file(text):
    if not text:
        return ''
    path = Path(_output_file(text))
    plot = path.with_suffix('.png')
    if plot == path:
        raise argparse.ArgumentTypeError(
            f'{text}: the confusion matrix is written to <report>.png; give the report '
            f'another suffix (e.g. .json)')
    problem = not_a_regular_file(plot)
    if problem:
        raise argparse.ArgumentTypeError(f'{problem} (the confusion matrix goes there)')
    return str(path)


_report_file.__name__ = 'file name'


def _dataset_dir(text):
    if not text:
        return ''
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(
            f'{text} is a file; --dataset takes a directory (it keeps train.npz and test.npz '
            f'there)')
    for name in ('train.npz', 'test.npz'):
        problem = not_a_regular_file(path / name)
        if problem:
            raise argparse.ArgumentTypeError(f'{problem}; --dataset keeps its data files there')
    if not nearest_existing(path).is_dir():
        raise argparse.ArgumentTypeError(f'{nearest_existing(path)} is not a directory')
    return str(path)


_dataset_dir.__name__ = 'directory'


def _paths_problem(args):
    """Why the output files or the dataset directory cannot be used (None if they can)."""
    output = Path(args.output).absolute()
    if args.report:
        report = Path(args.report).absolute()
        if report == output:
            return '--report must differ from --output'
        if report.with_suffix('.png') == output:
            return (f'--report {args.report} would put its confusion matrix on --output '
                    f'{args.output}')
    if args.dataset:
        stored = [Path(args.dataset) / f'{n}.npz' for n in ('train', 'test')]
        if output in [p.absolute() for p in stored]:
            return f'--output {args.output} is a file of --dataset'
        if args.regenerate or not all(p.is_file() for p in stored):
            problem = _unwritable(args.dataset)
            if problem:
                return f'--dataset: {problem} (the simulated rows are kept there)'
    return None


def _count(text):
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_count.__name__ = 'integer >= 0'


def _at_least(low, why):
    """Return an argparse type: a whole number ``>= low`` (``why`` says what needs it)."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not a whole number') from None
        if value < low:
            raise argparse.ArgumentTypeError(f'must be at least {low} ({why}), got {value}')
        return value
    parse.__name__ = f'integer >= {low}'
    return parse


def _rate(text):
    from robot_twin.fault_runs import Case
    value = float(text)
    Case(sample_rate_hz=value)           # ValueError unless it divides the plant's 1 kHz
    return value


_rate.__name__ = 'rate in Hz dividing 1000'


def _commissioning(text):
    from robot_twin.fault_runs import monitor_config
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    try:
        monitor_config(commissioning_duration_s=value)
    except ValueError as exc:       # not finite, not > 0, or too short to learn thresholds
        raise argparse.ArgumentTypeError(
            str(exc).replace('commissioning_duration_s=', '').replace(
                'commissioning_duration_s ', '')) from None
    return value


def _arm(text):
    from robot_twin.fault_runs import ARMS
    if text in ARMS:
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(
            f'{text!r} is neither {" nor ".join(ARMS)} nor a URDF file')
    from twin_sim.urdf_model import RobotModel, URDFWarning
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', URDFWarning)
            model = RobotModel.from_urdf(str(path))
    except Exception as exc:  # noqa: BLE001 - the URDF parsers raise their own error types
        raise argparse.ArgumentTypeError(f'{text}: not a usable URDF ({exc})') from None
    if model.n < 1:
        raise argparse.ArgumentTypeError(f'{text}: the URDF has no movable joint')
    return str(path.absolute())


def add_anomaly_parser(subparsers):
    """Add ``anomaly`` (with ``train``) to an argparse sub-parser collection."""
    p = subparsers.add_parser('anomaly', help="the anomaly monitor's offline tools",
                              description='Offline tools of the anomaly monitor.')
    sub = p.add_subparsers(dest='anomaly_command', required=True, metavar='ACTION')
    t = sub.add_parser(
        'train', help='train the fault classifier on simulated faults and write ONNX',
        description='Simulate faults of every plant type on robots that differ from the twin '
                    '(MuJoCo and PyBullet, randomized), train the fault classifier on the '
                    "monitor's evidence, export it to ONNX and check parity and held-out "
                    'accuracy. The model is written only if ONNX parity holds and its '
                    'held-out accuracy is above chance.')
    t.add_argument('--output', required=True, type=_output_file,
                   help='ONNX file to write (left as it was if the model fails a check)')
    t.add_argument('--report', default='', type=_report_file,
                   help='JSON report (and a confusion-matrix PNG beside it, same name .png)')
    t.add_argument('--cases', type=_at_least(2, 'the last fifth of them validates'), default=36,
                   help='simulated robots to train on (at least 2; default 36)')
    t.add_argument('--test-cases', type=_count, default=8,
                   help='held-out robots (another seed) for the accuracy report (default 8)')
    t.add_argument('--per-case', type=_count, default=50,
                   help='fault runs per robot, drawn from its catalog (0: all; default 50)')
    t.add_argument('--arms', nargs='+', type=_arm, default=['builtin', 'iiwa'],
                   help='arms: builtin, iiwa or URDF paths (default both)')
    t.add_argument('--engines', nargs='+', default=['mujoco', 'pybullet'],
                   choices=['mujoco', 'pybullet'], help='physics engines (default both)')
    t.add_argument('--sample-rates', nargs='+', type=_rate, default=[1000.0],
                   help='rates the simulated robots send their samples at, Hz, drawn per '
                        'robot: 1000 and its divisors, e.g. 1000 500 250 125 (default 1000)')
    t.add_argument('--commissioning-s', type=_commissioning, default=30.0,
                   help='commissioning time of each robot, s (default 30)')
    t.add_argument('--no-calibration', action='store_true',
                   help='the twin predicts with the URDF as given (no commissioning '
                        'calibration)')
    t.add_argument('--seed', type=_count, default=0, help='seed of the training robots')
    t.add_argument('--workers', type=_at_least(1, 'one runs in this process'), default=2,
                   help='worker processes (default 2)')
    t.add_argument('--dataset', default='', type=_dataset_dir,
                   help='directory to keep the simulated rows in (train.npz, test.npz, with '
                        'the options they were made with) and reuse them on the next call '
                        'with the same options')
    t.add_argument('--regenerate', action='store_true',
                   help='simulate again (and replace what --dataset holds)')
    t.add_argument('--quiet', action='store_true', help='no progress bars')
    t.set_defaults(func=_run_train)
    return p


def _run_train(args):
    problem = _paths_problem(args) or _dataset_problem(args)
    if problem:
        print(f'{_PROG}: error: {problem}', file=sys.stderr)
        return 2
    try:
        report = train(args)
    except (OSError, RuntimeError, ValueError) as exc:
        print(f'{_PROG}: {exc}', file=sys.stderr)
        return 1
    held = report['held_out']
    if report['written']:
        print(f'wrote {report["output"]} ({report["training"]["rows"]} rows from '
              f'{report["training"]["robots"]} robots, {report["seconds"]:.0f} s)')
    print(f'ONNX parity: max |onnxruntime - scikit-learn| = '
          f'{report["parity_max_abs_diff"]:.2e} ({"ok" if report["parity_ok"] else "FAILED"})')
    if held.get('runs'):
        print(f'held-out robots: right type {held["type_accuracy"]:.1%}, right joint '
              f'{held["joint_accuracy"]:.1%} of {held["runs"]} detected fault runs '
              f'({held["detected"]}/{held["fault_runs"]} detected)')
    if not report['written']:
        print(f'{_PROG}: error: {report["refused"]}. {report["output"]} was not written (left '
              f'as it was){"; figures in " + args.report if args.report else ""}',
              file=sys.stderr)
        return 1
    if not held.get('runs'):
        why = ('--test-cases 0' if not held['robots'] else
               f'no fault of the {held["robots"]} held-out robot(s) was detected')
        print(f'{_PROG}: warning: no held-out accuracy ({why}): the model was written without '
              f'that check', file=sys.stderr)
    return 0
