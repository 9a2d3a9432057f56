"""
RUL of a fleet from run-to-failure data: features, a gradient-boosted model, ONNX (ROS-free).

Data (:class:`FleetData`): units (machines, engines, robots), each a time series of features;
a *run-to-failure* file ends every unit at its failure, so the RUL of a row is the unit's last
time minus the row's time. Two formats are read:

- ``cmapss``: NASA C-MAPSS text files (``train_FD00x.txt`` / ``test_FD00x.txt``), whitespace
  separated, 26 columns: unit, cycle, 3 operational settings, 21 sensors;
- ``csv``: a header line ``unit,time,<feature>,...`` (``unit`` and ``time`` first, any number of
  numeric feature columns, time increasing within a unit; rows of a unit need not be
  contiguous). For training every unit must run to its failure at its last row.

Operating conditions (:class:`OperatingConditions`): a fleet that runs in several discrete
operating regimes (C-MAPSS FD002 and FD004: six combinations of altitude, Mach number and
throttle) sees its sensor levels jump with the regime far more than they drift with wear. When
the data names its condition columns (C-MAPSS: the three operational settings; a CSV: the
``condition_columns`` given to :func:`fit`), :func:`find_operating_conditions` looks for
well-separated regimes in them (k-means, accepted only when the clusters are clearly apart:
silhouette >= :data:`MIN_SILHOUETTE`). If it finds two or more, every input column is
normalized within its regime (mean and standard deviation of the training rows of that regime)
before the features, and the condition columns themselves are left out of the features. Data
with one condition (FD001, FD003) is used as it is. The regimes travel in the model's metadata,
so a file to predict on is normalized the same way, row by row.

Features (:func:`unit_features`) are computed per unit from its own history only (causal: a
row sees the rows before it), so the prediction for a unit never depends on which other units
are in the file. Per input column: exponential moving averages (spans 5 and 20 rows), causal
rolling mean, standard deviation and least-squares slope over the last 10 and 30 rows, and the
drift of the slow average from the unit's own first ``baseline_rows`` rows (which removes the
unit-to-unit offsets of a fleet); plus the time since the unit's first row. Columns that are
constant in the training data are dropped.

Model (:func:`fit`): LightGBM gradient-boosted trees on the RUL capped at ``cap`` (the usual
piecewise-linear target: a new unit is "healthy", its RUL is not observable), trained on every
row of every unit, with the target scaled to ``RUL / cap`` so that the float32 ONNX model keeps
its error below 1e-5 of the output. Exported with onnxmltools to ONNX; the feature recipe, the
input columns and the cap are stored in the model's metadata (key ``robot_twin.fleet_rul``), so
:class:`FleetRulModel` needs only the ``.onnx`` file and onnxruntime.

Scores (:func:`rmse`, :func:`nasa_score`): ``d = predicted - true``; the NASA (PHM08) score
sums ``exp(-d / 13) - 1`` for ``d < 0`` and ``exp(d / 10) - 1`` for ``d >= 0``.
"""
import csv
from dataclasses import dataclass
import json
import math
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

__all__ = ['CMAPSS_COLUMNS', 'CMAPSS_CONDITIONS', 'FEATURE_VERSION', 'FeatureSpec', 'FleetData',
           'FleetDataError', 'FleetRulModel', 'OperatingConditions', 'default_conditions',
           'find_operating_conditions', 'fit', 'load_cmapss', 'load_csv', 'load_fleet',
           'load_truth', 'nasa_score', 'rmse', 'target_rul', 'unit_features']

CMAPSS_CONDITIONS = ['setting1', 'setting2', 'setting3']
CMAPSS_COLUMNS = CMAPSS_CONDITIONS + [f's{i}' for i in range(1, 22)]
FEATURE_VERSION = 2          # 2: operating conditions; version 1 models (none) are still read
MIN_SILHOUETTE = 0.8
"""Regimes are used only when the clusters of the condition columns are this clearly apart."""
MAX_REGIMES = 10
_SILHOUETTE_SAMPLE = 4000    # rows the silhouette is computed on (it is quadratic in rows)
METADATA_KEY = 'robot_twin.fleet_rul'
ONNX_INPUT = 'features'
_EWM_SPANS = (5, 20)
_WINDOWS = (10, 30)
_CONSTANT_STD = 1e-9


class FleetDataError(ValueError):
    """A fleet data file or model is unusable; the message names the file, line or field."""


@dataclass(eq=False)
class FleetData:
    """
    Rows of several units, each unit's rows in time order.

    Attributes
    ----------
    unit : (N,) int64
        Unit id of each row.
    time : (N,) float
        Time (cycles, hours, ...) of each row.
    values : (N, F) float
        Feature columns.
    columns : list of str
        Names of the ``F`` columns.
    source : str
        Where the data came from (for messages).

    """

    unit: np.ndarray
    time: np.ndarray
    values: np.ndarray
    columns: list
    source: str = '<data>'

    def units(self):
        """Return the unit ids, sorted."""
        return np.unique(self.unit)

    def groups(self):
        """Yield ``(unit, rows)`` with the row indices of each unit (sorted by unit id)."""
        order = np.argsort(self.unit, kind='stable')
        ids, starts = np.unique(self.unit[order], return_index=True)
        for u, rows in zip(ids, np.split(order, starts[1:])):
            yield int(u), rows

    def subset(self, units):
        """Return the rows of the given units (a new FleetData)."""
        keep = np.isin(self.unit, np.asarray(list(units)))
        return FleetData(self.unit[keep], self.time[keep], self.values[keep],
                         list(self.columns), self.source)


# Largest magnitude taken in a data file. The model's features are float32 (largest 3.4e38):
# a reading beyond this turns into inf there, and the model would predict from it unseen.
MAX_ABS_VALUE = 1e30


def _float32_features(x, units, data):
    """Return the feature matrix as float32, or raise if a unit's features do not fit it."""
    with np.errstate(over='ignore'):      # said below, with the units
        out = x.astype(np.float32)
    bad = ~np.isfinite(out).all(axis=1)
    if np.any(bad):
        raise FleetDataError(
            f'{data.source}: the features of unit(s) {sorted({int(u) for u in units[bad]})} '
            'are not finite in float32 (readings too large for the model, or a constant '
            'column normalized by a zero spread)')
    return out


def _finish(unit, time, values, columns, source):
    if unit.size == 0:
        raise FleetDataError(f'{source}: no data rows')
    if not np.all(np.isfinite(values)) or not np.all(np.isfinite(time)):
        row = int(np.flatnonzero(~np.isfinite(np.column_stack([time, values])).all(axis=1))[0])
        raise FleetDataError(f'{source}: data row {row + 1} has a non-finite value')
    huge = np.abs(np.column_stack([time, values])) > MAX_ABS_VALUE
    if np.any(huge):
        row = int(np.flatnonzero(huge.any(axis=1))[0])
        raise FleetDataError(
            f'{source}: data row {row + 1} has a value beyond +-{MAX_ABS_VALUE:g}: not a '
            'reading of any sensor (a unit or parsing error?); the model computes in float32')
    order = np.lexsort((time, unit))
    unit, time, values = unit[order], time[order], values[order]
    same = (np.diff(unit) == 0) & (np.diff(time) == 0)
    if np.any(same):
        i = int(np.flatnonzero(same)[0])
        raise FleetDataError(f'{source}: unit {int(unit[i])} has two rows at time {time[i]:g}')
    return FleetData(unit, time, values, list(columns), str(source))


def load_cmapss(path):
    """
    Read a C-MAPSS file (unit, cycle, 3 settings, 21 sensors per line).

    Raises
    ------
    FleetDataError
        Unreadable file, a line without 26 numbers, a non-integer unit id.

    """
    path = Path(path)
    rows = []
    try:
        with open(path, encoding='utf-8') as handle:
            for number, line in enumerate(handle, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 26:
                    raise FleetDataError(f'{path}:{number}: expected 26 numbers (unit, cycle, 3 '
                                         f'settings, 21 sensors), got {len(parts)}')
                try:
                    rows.append([float(p) for p in parts])
                except ValueError:
                    raise FleetDataError(f'{path}:{number}: not a number in {line.strip()!r}'
                                         ) from None
    except (OSError, UnicodeDecodeError) as exc:     # missing, or not a text file
        raise FleetDataError(f'cannot read {path}: {exc}') from exc
    data = np.array(rows, dtype=float).reshape(-1, 26)
    if np.any(data[:, 0] != np.round(data[:, 0])):
        raise FleetDataError(f'{path}: unit ids (first column) must be integers')
    return _finish(data[:, 0].astype(np.int64), data[:, 1], data[:, 2:], CMAPSS_COLUMNS, path)


def load_csv(path):
    """
    Read a run-to-failure CSV with header ``unit,time,<feature>,...``.

    Raises
    ------
    FleetDataError
        Missing file, header without ``unit`` and ``time`` first, a row of the wrong length,
        a value that is not a number.

    """
    path = Path(path)
    try:
        with open(path, newline='', encoding='utf-8') as handle:
            reader = csv.reader(handle)
            header = [h.strip() for h in next(reader, [])]
            if header[:2] != ['unit', 'time'] or len(header) < 3:
                raise FleetDataError(f'{path}: the header must be unit,time,<feature>,... '
                                     f'(got {",".join(header)!r})')
            if len(set(header)) != len(header):
                raise FleetDataError(f'{path}: duplicate column names in the header')
            rows = []
            for number, row in enumerate(reader, start=2):
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) != len(header):
                    raise FleetDataError(f'{path}:{number}: {len(row)} values, the header has '
                                         f'{len(header)}')
                try:
                    rows.append([float(c) for c in row])
                except ValueError:
                    raise FleetDataError(f'{path}:{number}: not a number in {row!r}') from None
    except (OSError, UnicodeDecodeError) as exc:     # missing, or not a text file
        raise FleetDataError(f'cannot read {path}: {exc}') from exc
    data = np.array(rows, dtype=float).reshape(-1, len(header))
    if np.any(data[:, 0] != np.round(data[:, 0])):
        raise FleetDataError(f'{path}: unit ids must be integers')
    return _finish(data[:, 0].astype(np.int64), data[:, 1], data[:, 2:], header[2:], path)


def load_truth(path):
    """
    Read the true RUL of units: ``{unit: rul}``.

    Either C-MAPSS ``RUL_FD00x.txt`` (one number per line; line ``i`` is unit ``i``) or a CSV
    with header ``unit,rul``.

    Raises
    ------
    FleetDataError
        Unreadable file, a value that is not a finite number >= 0, a unit twice.

    """
    path = Path(path)
    try:
        lines = [ln.strip() for ln in path.read_text(encoding='utf-8').splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetDataError(f'cannot read {path}: {exc}') from exc
    lines = [ln for ln in lines if ln]
    if not lines:
        raise FleetDataError(f'{path}: no data rows')
    header = [h.strip() for h in lines[0].split(',')]
    if header == ['unit', 'rul']:
        pairs = [(number, ln.split(',')) for number, ln in enumerate(lines[1:], start=2)]
    else:
        pairs = [(number, [str(number), ln]) for number, ln in enumerate(lines, start=1)]
    out = {}
    for number, fields in pairs:
        try:
            unit, rul = float(fields[0]), float(fields[1])
            if len(fields) != 2 or unit != round(unit) or not (math.isfinite(rul) and rul >= 0):
                raise ValueError
        except (ValueError, IndexError):
            raise FleetDataError(f'{path}:{number}: expected a unit id and a RUL >= 0, got '
                                 f'{",".join(fields)!r}') from None
        if int(unit) in out:
            raise FleetDataError(f'{path}:{number}: unit {int(unit)} given twice')
        out[int(unit)] = rul
    return out


def load_fleet(path, fmt):
    """Read ``path`` in format ``fmt`` (``'cmapss'`` or ``'csv'``)."""
    loaders = {'cmapss': load_cmapss, 'csv': load_csv}
    if fmt not in loaders:
        raise FleetDataError(f'unknown format {fmt!r}; use one of {sorted(loaders)}')
    return loaders[fmt](path)


def target_rul(data, cap):
    """RUL of every row of run-to-failure data, ``min(t_last - t, cap)``, (N,)."""
    out = np.empty(data.unit.size)
    for _, rows in data.groups():
        out[rows] = data.time[rows].max() - data.time[rows]
    return np.minimum(out, cap)


# ---------------------------------------------------------------------------- conditions
@dataclass(frozen=True, eq=False)
class OperatingConditions:
    """
    Discrete operating regimes and the per-regime normalization of the input columns.

    Attributes
    ----------
    columns : tuple of str
        The condition columns (a row's regime is found from these).
    input_columns : tuple of str
        The columns ``mean`` and ``std`` refer to, in order.
    center : (k, c) float array
        Regime centres in the condition columns.
    scale : (c,) float array
        Scale of each condition column for the distance to a centre.
    mean, std : (k, F) float arrays
        Per regime, mean and standard deviation (1 where a column is constant in the regime)
        of every input column over the training rows.

    """

    columns: tuple
    input_columns: tuple
    center: np.ndarray
    scale: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @property
    def regimes(self):
        """Return the number of regimes."""
        return len(self.center)

    def regime(self, data):
        """Return the regime of every row of ``data`` (FleetData with the input columns), (N,)."""
        cond = data.values[:, [data.columns.index(c) for c in self.columns]] / self.scale
        d2 = ((cond[:, None, :] - (self.center / self.scale)[None, :, :]) ** 2).sum(axis=2)
        return np.argmin(d2, axis=1)

    def normalize(self, data):
        """
        Return ``data`` with every input column normalized within its row's regime.

        The condition columns are left out (they only say which regime a row is in).
        """
        keep = [c for c in self.input_columns if c not in self.columns]
        index = [data.columns.index(c) for c in self.input_columns]
        r = self.regime(data)
        values = (data.values[:, index] - self.mean[r]) / self.std[r]
        where = [self.input_columns.index(c) for c in keep]
        return FleetData(data.unit, data.time, values[:, where], keep, data.source)

    def to_dict(self):
        """Return the regimes as plain lists (for the model's JSON metadata)."""
        return {'columns': list(self.columns), 'input_columns': list(self.input_columns),
                'center': self.center.tolist(), 'scale': self.scale.tolist(),
                'mean': self.mean.tolist(), 'std': self.std.tolist()}

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`; ValueError/KeyError/TypeError when malformed."""
        out = cls(tuple(d['columns']), tuple(d['input_columns']),
                  np.asarray(d['center'], float), np.asarray(d['scale'], float),
                  np.asarray(d['mean'], float), np.asarray(d['std'], float))
        k, c, f = len(out.center), len(out.columns), len(out.input_columns)
        if (out.center.shape != (k, c) or out.scale.shape != (c,) or out.mean.shape != (k, f)
                or out.std.shape != (k, f) or not np.all(out.scale > 0.0)
                or not np.all(out.std > 0.0)):
            raise ValueError('operating conditions with inconsistent shapes or scales')
        return out


def default_conditions(fmt):
    """Return the condition columns a format has by definition (C-MAPSS: its three settings)."""
    return list(CMAPSS_CONDITIONS) if fmt == 'cmapss' else []


def find_operating_conditions(data, columns, seed=0):
    """
    Look for discrete operating regimes in the condition ``columns`` of training ``data``.

    k-means (k = 2 .. :data:`MAX_REGIMES`) on the condition columns, each scaled by its
    standard deviation; the k with the best silhouette is taken if that silhouette is at least
    :data:`MIN_SILHOUETTE` (clusters clearly apart, as discrete regimes are). Returns an
    :class:`OperatingConditions`, or None when there is one condition (or no condition column).

    Raises
    ------
    FleetDataError
        A condition column the data does not have.

    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    columns = list(columns)
    if not columns:
        return None
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise FleetDataError(f'{data.source}: condition column(s) {missing} not in the data; '
                             f'columns are {data.columns}')
    cond = data.values[:, [data.columns.index(c) for c in columns]]
    scale = cond.std(axis=0)
    scale = np.where(scale > _CONSTANT_STD, scale, 1.0)
    x = cond / scale
    if x.shape[0] < 2 * MAX_REGIMES or np.all(np.ptp(x, axis=0) <= _CONSTANT_STD):
        return None
    rng = np.random.default_rng(seed)
    sample = rng.choice(x.shape[0], size=min(_SILHOUETTE_SAMPLE, x.shape[0]), replace=False)
    best = (-1.0, None)
    for k in range(2, MAX_REGIMES + 1):
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x)
        labels = km.labels_[sample]
        if np.unique(labels).size < 2:
            continue
        score = float(silhouette_score(x[sample], labels))
        if score > best[0]:
            best = (score, km)
    score, km = best
    if km is None or score < MIN_SILHOUETTE:
        return None
    labels = km.labels_
    k = km.n_clusters
    mean = np.array([data.values[labels == r].mean(axis=0) for r in range(k)])
    std = np.array([data.values[labels == r].std(axis=0) for r in range(k)])
    std = np.where(std > _CONSTANT_STD, std, 1.0)
    return OperatingConditions(tuple(columns), tuple(data.columns), km.cluster_centers_ * scale,
                               scale, mean, std)


# ---------------------------------------------------------------------------- features
@dataclass(frozen=True)
class FeatureSpec:
    """
    The feature recipe a model was trained with (stored in the ONNX metadata).

    Attributes
    ----------
    columns : list of str
        Input columns used (non-constant in training), in order.
    input_columns : list of str
        All columns of the training data (a file to predict on must have these).
    baseline_rows : int
        Rows at the start of a unit that define its own healthy baseline.
    cap : float
        RUL cap (model output is ``RUL / cap``).
    conditions : OperatingConditions or None
        The regimes the input columns are normalized in before the features (None: used as
        they are). ``columns`` are then the normalized columns.

    """

    columns: tuple
    input_columns: tuple
    baseline_rows: int = 15
    cap: float = 125.0
    conditions: OperatingConditions = None

    def names(self):
        """Return the feature names, in model input order."""
        kinds = [f'ewm{s}' for s in _EWM_SPANS]
        for w in _WINDOWS:
            kinds += [f'mean{w}', f'std{w}', f'slope{w}']
        kinds.append('drift')
        return ['time'] + [f'{c}.{k}' for c in self.columns for k in kinds]

    def to_json(self):
        """Return the spec as a JSON text."""
        return json.dumps({'version': FEATURE_VERSION, 'columns': list(self.columns),
                           'input_columns': list(self.input_columns),
                           'baseline_rows': self.baseline_rows, 'cap': self.cap,
                           'conditions': None if self.conditions is None
                           else self.conditions.to_dict()})

    @classmethod
    def from_json(cls, text):
        """Parse :meth:`to_json` output; FleetDataError if it is not one."""
        try:
            data = json.loads(text)
            if data.get('version') not in (1, FEATURE_VERSION):
                raise FleetDataError(f'feature recipe version {data.get("version")!r}; this '
                                     f'robot_twin reads versions 1 to {FEATURE_VERSION}')
            conditions = data.get('conditions')
            return cls(tuple(data['columns']), tuple(data['input_columns']),
                       int(data['baseline_rows']), float(data['cap']),
                       None if conditions is None else OperatingConditions.from_dict(conditions))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FleetDataError(f'model metadata {METADATA_KEY!r} is malformed: {exc}'
                                 ) from None


def _ewm(x, span):
    alpha = 2.0 / (span + 1.0)
    zi = (1.0 - alpha) * x[:1]
    return lfilter([alpha], [1.0, alpha - 1.0], x, axis=0, zi=zi)[0]


def _window_sums(x, w):
    """Causal sums over the last ``w`` rows (fewer at the start), (T, F)."""
    c = np.cumsum(x, axis=0)
    out = c.copy()
    out[w:] -= c[:-w]
    return out


def _rolling(x, w):
    """Causal rolling mean, std and least-squares slope over the last ``w`` rows."""
    t = x.shape[0]
    m = np.minimum(np.arange(1, t + 1), w)[:, None].astype(float)
    k = np.arange(t, dtype=float)[:, None]
    sx = _window_sums(x, w)
    sxx = _window_sums(x * x, w)
    sk = _window_sums(k, w)
    skk = _window_sums(k * k, w)
    skx = _window_sums(k * x, w)
    mean = sx / m
    var = np.maximum(sxx / m - mean * mean, 0.0)
    den = m * skk - sk * sk
    with np.errstate(invalid='ignore', divide='ignore'):
        slope = np.where(den > 0.0, (m * skx - sk * sx) / np.where(den > 0.0, den, 1.0), 0.0)
    return mean, np.sqrt(var), slope


def unit_features(time, values, spec_columns_index, baseline_rows):
    """
    Features of every row of one unit, from its own history.

    Parameters
    ----------
    time : (T,)
        The unit's times, increasing.
    values : (T, F)
        Its input columns.
    spec_columns_index : sequence of int
        Indices of the columns used.
    baseline_rows : int
        Rows defining the unit's baseline.

    Returns
    -------
    (T, 1 + 10 * len(spec_columns_index)) float
        In :meth:`FeatureSpec.names` order.

    """
    x = np.asarray(values, dtype=float)[:, list(spec_columns_index)]
    blocks = [_ewm(x, s) for s in _EWM_SPANS]
    for w in _WINDOWS:
        blocks += list(_rolling(x, w))
    head = x[:baseline_rows]
    first = np.cumsum(head, axis=0) / np.arange(1, len(head) + 1)[:, None]
    base = np.vstack([first, np.repeat(first[-1:], max(len(x) - baseline_rows, 0), axis=0)])
    blocks.append(blocks[1] - base)                  # slow average minus own baseline
    per_column = np.stack(blocks, axis=2)            # (T, C, kinds)
    elapsed = (np.asarray(time, dtype=float) - time[0])[:, None]
    return np.hstack([elapsed, per_column.reshape(len(x), -1)])


def _feature_matrix(data, spec, last_only):
    """Return ``(unit of each row, features)``: one row per unit, or one per data row."""
    index = [data.columns.index(c) for c in spec.columns]
    units, rows_out = [], []
    for u, rows in data.groups():
        feats = unit_features(data.time[rows], data.values[rows], index, spec.baseline_rows)
        feats = feats[-1:] if last_only else feats
        rows_out.append(feats)
        units += [u] * len(feats)
    return np.array(units), np.vstack(rows_out)


def _check_columns(data, spec):
    missing = [c for c in spec.input_columns if c not in data.columns]
    if missing:
        raise FleetDataError(f'{data.source}: the model needs column(s) {missing}; the file '
                             f'has {data.columns}')


# ---------------------------------------------------------------------------- scores
def rmse(predicted, true):
    """Root mean squared error."""
    d = np.asarray(predicted, float) - np.asarray(true, float)
    return float(np.sqrt(np.mean(d * d)))


def nasa_score(predicted, true):
    """PHM08 score: sum of ``exp(-d/13) - 1`` (d < 0) and ``exp(d/10) - 1`` (d >= 0)."""
    d = np.asarray(predicted, float) - np.asarray(true, float)
    return float(np.sum(np.where(d < 0.0, np.expm1(-d / 13.0), np.expm1(d / 10.0))))


# ---------------------------------------------------------------------------- model
DEFAULT_PARAMS = {'objective': 'regression', 'learning_rate': 0.03, 'num_leaves': 15,
                  'min_data_in_leaf': 50, 'feature_fraction': 0.7, 'bagging_fraction': 0.8,
                  'bagging_freq': 1, 'lambda_l2': 1.0, 'verbose': -1, 'num_threads': 1}
DEFAULT_ROUNDS = 500


def fit(data, *, cap=125.0, params=None, rounds=DEFAULT_ROUNDS, seed=0, baseline_rows=15,
        condition_columns=(), progress=None):
    """
    Train a LightGBM model on run-to-failure data.

    Parameters
    ----------
    data : FleetData
        Every unit runs to its failure at its last row.
    cap : float
        RUL cap (the target is ``min(RUL, cap) / cap``).
    params : dict, optional
        LightGBM parameters over :data:`DEFAULT_PARAMS`.
    rounds : int
        Boosting rounds.
    seed : int
        LightGBM's seed (bagging, feature sampling).
    baseline_rows : int
        Rows of a unit's own baseline (:func:`unit_features`).
    condition_columns : sequence of str
        Columns that say the operating condition (:func:`find_operating_conditions`; C-MAPSS:
        :func:`default_conditions`). Empty: none.
    progress : callable, optional
        Called with the finished round count (e.g. a tqdm update).

    Returns
    -------
    (booster, FeatureSpec)

    """
    import lightgbm as lgb

    if not cap > 0.0:
        raise FleetDataError(f'cap must be > 0, got {cap}')
    conditions = find_operating_conditions(data, condition_columns, seed=seed)
    used = data if conditions is None else conditions.normalize(data)
    std = used.values.std(axis=0)
    columns = [c for c, s in zip(used.columns, std) if s > _CONSTANT_STD]
    if not columns:
        raise FleetDataError(f'{data.source}: every feature column is constant')
    spec = FeatureSpec(tuple(columns), tuple(data.columns), int(baseline_rows), float(cap),
                       conditions)
    units, x = _feature_matrix(used, spec, last_only=False)
    x = _float32_features(x, units, data)
    y = target_rul(data, cap) / cap
    settings = dict(DEFAULT_PARAMS, seed=int(seed), **(params or {}))
    callbacks = []
    if progress is not None:
        callbacks.append(lambda env: progress(env.iteration + 1))
    booster = lgb.train(settings, lgb.Dataset(x, y,
                                              feature_name=_safe_names(spec)),
                        num_boost_round=int(rounds), callbacks=callbacks)
    return _float32_thresholds(booster), spec


def _floor32(text):
    """Return the largest float32 <= the double ``text``, written back as a double."""
    value = float(text)
    f = np.float32(value)
    if float(f) > value:
        f = np.nextafter(f, np.float32(-np.inf), dtype=np.float32)
    return repr(float(f))


def _float32_thresholds(booster):
    """
    Return the booster with every split threshold moved down to a float32 value.

    Features are float32 and ONNX compares in float32: ``x <= t`` and ``x <= floor32(t)`` agree
    for every float32 ``x``, so the model is unchanged for its inputs, and its ONNX export
    (which rounds thresholds to float32, possibly *up* onto a feature value) takes the same
    branches.
    """
    import lightgbm as lgb

    lines = []
    for line in booster.model_to_string().split('\n'):
        if line.startswith('tree_sizes='):
            continue                 # byte sizes of the trees, which change; it is optional
        if line.startswith('threshold='):
            line = 'threshold=' + ' '.join(_floor32(v) for v in line[10:].split())
        lines.append(line)
    return lgb.Booster(model_str='\n'.join(lines))


def _safe_names(spec):
    return [n.replace('.', '__').replace(' ', '_') for n in spec.names()]


def features_for_prediction(data, spec):
    """Return ``(units (U,), features (U, n_features) float32)`` at each unit's last row."""
    _check_columns(data, spec)
    if spec.conditions is not None:
        data = spec.conditions.normalize(data)
    units, x = _feature_matrix(data, spec, last_only=True)
    return units, _float32_features(x, units, data)


def booster_predict(booster, data, spec):
    """Predict with the LightGBM booster itself (for parity checks): ``(units, rul)``."""
    units, x = features_for_prediction(data, spec)
    return units, np.clip(booster.predict(x.astype(np.float64)), 0.0, 1.0) * spec.cap


def to_onnx(booster, spec):
    """
    Export a booster and its feature recipe as an ONNX model (bytes).

    The graph maps ``features`` (N, n_features) float32 to ``variable`` (N, 1) = RUL / cap.
    """
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    n = len(spec.names())
    model = onnxmltools.convert_lightgbm(
        booster, initial_types=[(ONNX_INPUT, FloatTensorType([None, n]))], target_opset=15,
        zipmap=False)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = spec.to_json()
    model.producer_name = 'robot_twin'
    model.doc_string = 'RUL / cap from robot_twin fleet features (twin_anomaly/fleet_rul.py)'
    return model.SerializeToString()


class FleetRulModel:
    """
    A fleet RUL model loaded from its ONNX file, run with onnxruntime.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file written by :func:`to_onnx` (``robot-twin rul fit``).

    Raises
    ------
    FleetDataError
        Missing file, not an ONNX model, or one without robot_twin's feature recipe.

    """

    def __init__(self, path):
        path = Path(path)
        if not path.is_file():
            raise FleetDataError(f'model {path} not found')
        self._load(str(path), str(path))

    @classmethod
    def from_bytes(cls, blob, name='<bytes>'):
        """Load a model from the bytes of its ONNX file."""
        model = cls.__new__(cls)
        model._load(blob, name)
        return model

    def _load(self, source, name):
        import onnxruntime as ort

        try:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self.session = ort.InferenceSession(source, options,
                                                providers=['CPUExecutionProvider'])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise FleetDataError(f'cannot load model {name}: {exc}') from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise FleetDataError(f'{name} is not a robot_twin fleet RUL model (no '
                                 f'{METADATA_KEY!r} metadata)')
        self.spec = FeatureSpec.from_json(meta[METADATA_KEY])
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or inputs[0].shape[-1] != len(self.spec.names()):
            raise FleetDataError(f'{name}: the graph input does not match its feature recipe')
        self._input = inputs[0].name

    def predict_features(self, x):
        """RUL for feature rows ``x`` (N, n_features) float32, clipped to ``[0, cap]``."""
        out = self.session.run(None, {self._input: np.asarray(x, dtype=np.float32)})[0]
        return np.clip(out.reshape(-1).astype(float), 0.0, 1.0) * self.spec.cap

    def predict_fraction(self, x):
        """Return the raw model output, ``RUL / cap`` (N,), as onnxruntime computes it."""
        return self.session.run(None, {self._input: np.asarray(x, dtype=np.float32)})[0] \
            .reshape(-1)

    def predict(self, data):
        """
        RUL of every unit at its last row.

        Returns
        -------
        units : (U,) int
        rul : (U,) float, in the data's time unit

        """
        units, x = features_for_prediction(data, self.spec)
        return units, self.predict_features(x)


def write_predictions(path, units, rul):
    """Write ``unit,rul`` CSV, one row per unit."""
    with open(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.writer(handle)
        writer.writerow(['unit', 'rul'])
        for u, r in zip(units, rul):
            writer.writerow([int(u), f'{r:.4f}' if math.isfinite(r) else 'nan'])
