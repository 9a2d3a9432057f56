"""
Commission the anomaly detector on randomized variants: thresholds for "normal across a range".

The live ``twin_anomaly`` node commissions on the robot it watches: it learns that arm's own
residuals, so any later change of the arm (a payload, wear, another unit of the same model) is
an anomaly. That is right for one robot, but there is nothing to learn from before the robot
runs, and a file learned on one unit false-alarms on the next. This module learns the thresholds
offline instead, from fault-free domain-randomized variants of a what-if scenario
(:mod:`robot_twin.whatif`: masses, inertias, friction, payload, sensor noise and delay drawn
within the scenario's ranges): the detector's commissioning statistics then span every variant,
and its thresholds hold for any arm within the ranges. The price is sensitivity: a change that
stays inside the ranges is "normal" by construction.

:func:`commission_across_variants` runs the variants (in parallel like a what-if run), feeds
their residuals, one variant after another, to one :class:`~twin_anomaly.detector.ResidualDetector`
whose commissioning spans them all, and saves its thresholds (the what-if detector's file
format; the live ``twin_anomaly`` node's monitor commissions on the robot and does not load it).
Held-out variants (other draws of the same seed) then run against the saved file, as a check
that it does not alarm on fault-free arms it has not seen. The file is written beside
``output`` and moved there only when no held-out variant alarmed; when one did, it is kept as
``<output>.failed`` (to look at) and an earlier ``output`` is left as it was.

How many variants: the thresholds span what the variants learned from showed, so an unseen
arm is inside them only as far as those variants cover the ranges. With ``n`` variants drawn
alike, an unseen one lies beyond the most extreme of them (on one statistic) with probability
``1 / (n + 1)``: about 9 % for :data:`MIN_VARIANTS` (10), 50 % for one variant. Fewer are
accepted with a warning (a study of one arm may want that), as is a run without held-out
variants (nothing then checks the file).
"""
from dataclasses import dataclass, replace
import math
import os
from pathlib import Path
import time
import warnings

import numpy as np
from robot_twin.cli_files import replace_file
from twin_anomaly.detector import DetectorConfig, ResidualDetector

__all__ = ['CommissioningResult', 'HoldoutCheck', 'MIN_VARIANTS', 'commission_across_variants',
           'monitor_trace']

#: Fewest variants to learn from without a warning (see the module docstring).
MIN_VARIANTS = 10


@dataclass
class HoldoutCheck:
    """
    A held-out variant monitored with the learned thresholds.

    Attributes
    ----------
    index : int
        Variant index.
    max_score : float
        Largest robot-level anomaly score (1.0 is the threshold).
    alarm_time_s : float
        Stamp of the first alarm, s; NaN without one.
    alarm_joint : str
        Faulty joint of the first alarm ('' without one; 'wrench' for the sensor).

    """

    index: int
    max_score: float
    alarm_time_s: float
    alarm_joint: str


@dataclass
class CommissioningResult:
    """
    What :func:`commission_across_variants` did.

    Attributes
    ----------
    thresholds_file : Path
        The saved thresholds: ``output``, or ``<output>.failed`` when a held-out variant
        alarmed (``output`` is then not written).
    joint_names : tuple of str
    samples : int
        Variants learned from.
    commissioning_s : float
        Stamp time of residuals the detector learned from, s.
    holdout : list of HoldoutCheck
        The held-out variants.
    wall_s : float
        Wall time of the whole job, s.

    """

    thresholds_file: Path
    joint_names: tuple
    samples: int
    commissioning_s: float
    holdout: list
    wall_s: float

    @property
    def false_alarms(self):
        """Held-out (fault-free) variants that raised an alarm."""
        return sum(1 for h in self.holdout if not math.isnan(h.alarm_time_s))

    @property
    def passed(self):
        """Whether the thresholds went to ``output``: no held-out variant alarmed."""
        return self.false_alarms == 0


def monitor_trace(detector, trace):
    """
    Feed a residual trace to a commissioned detector; return its largest score and first alarm.

    The detector's state after every block counts (its score, and its first alarm with the
    report of that moment). The blocks are scored at once
    (:func:`twin_anomaly.batch_feed.monitoring_scores`); the detector itself is stepped only
    up to the first alarm.

    Parameters
    ----------
    detector : ResidualDetector
        Monitoring (commissioned or loaded from a thresholds file), no alarm raised.
    trace : robot_twin.whatif.ResidualTrace
        The residuals, fed in order.

    Returns
    -------
    HoldoutCheck

    """
    from twin_anomaly.batch_feed import block_series, feed_series, first_raise, \
        monitoring_scores, open_series
    series = block_series(detector, trace.t, trace.position, trace.velocity, trace.effort,
                          trace.wrench, trace.velocity_measured)
    n = len(detector.joint_names)
    start = 0 if series.fallback is not None else open_series(detector, series)
    if series.fallback is not None or start >= len(series):
        raise ValueError(f'variant {trace.index}: no residual block to monitor (stamps '
                         'missing or out of order)')
    scores = monitoring_scores(detector, series, start)
    robot = scores[:, :n].max(axis=1)
    if detector.thresholds().monitored[3 * n:].any():
        robot = np.maximum(robot, scores[:, n])
    max_score, alarm_t, alarm_joint = float(robot.max()), math.nan, ''
    raised = first_raise(detector, series, scores, start)
    if raised is not None:
        for _ in feed_series(detector, series, start, raised + 1):
            pass
        state = detector.report()
        if state.level == 'ERROR':
            alarm_t = state.since
            alarm_joint = state.faulty_joint or ('wrench' if state.fault_type == 'wrench'
                                                 else '')
    return HoldoutCheck(trace.index, max_score, float(alarm_t), alarm_joint)


def commission_across_variants(scenario, samples, output, *, holdout=0, urdf=None, params=None,
                               seed=0, workers=1, ray_address=None, progress=False,
                               engine=None):
    """
    Learn anomaly thresholds from fault-free randomized variants of a scenario and save them.

    Parameters
    ----------
    scenario : robot_twin.whatif.WhatIfScenario, str or Path
        A what-if scenario (or its path / packaged name): its trajectory, randomization and
        ``detector`` settings are used; its faults are dropped (with a warning).
    samples : int
        Variants to learn from (indices ``0..samples-1``).
    output : str or Path
        Thresholds file to write (the what-if detector's format).
    holdout : int
        Further variants (indices ``samples..samples+holdout-1``) monitored with the saved file.
        0 checks nothing (with a warning); a held-out alarm leaves ``output`` as it was and
        keeps the file as ``<output>.failed``.
    urdf, params, seed, workers, ray_address, progress, engine
        As :func:`robot_twin.whatif.run_whatif`.

    Returns
    -------
    CommissioningResult

    Raises
    ------
    robot_twin.whatif.WhatIfError
        An unusable scenario, robot or option (the message says which).

    """
    from robot_twin.whatif import scenario_residual_traces, WhatIfError, with_engine
    from twin_anomaly.batch_feed import block_series, commission_series

    t0 = time.perf_counter()
    for name, value, low in (('samples', samples, 1), ('holdout', holdout, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise WhatIfError(f'{name} must be an integer >= {low}, got {value!r}')
    scenario = with_engine(scenario, engine)
    if samples < MIN_VARIANTS:
        warnings.warn(f'learning from {samples} variant(s), fewer than {MIN_VARIANTS}: an unseen '
                      f'arm lies beyond all of them with probability about 1/{samples + 1}, '
                      f'so the thresholds may alarm on fault-free arms; give --samples '
                      f'{MIN_VARIANTS} or more', UserWarning, stacklevel=2)
    if not holdout:
        warnings.warn('no held-out variants: nothing checks that the thresholds stay quiet on '
                      'fault-free arms they were not learned from', UserWarning, stacklevel=2)
    if scenario.faults is not None:
        warnings.warn(f'{scenario.source}: the faults of the scenario are ignored: commissioning '
                      'learns what fault-free variants look like', UserWarning, stacklevel=2)
        scenario = replace(scenario, faults=None)
    settings = {k: v for k, v in scenario.detector.items() if k != 'commissioning_duration_s'}
    try:
        block = DetectorConfig(**settings).block_s
    except (TypeError, ValueError) as exc:
        raise WhatIfError(f'{scenario.source}: detector: {exc}') from exc
    traces = scenario_residual_traces(scenario, range(int(samples)),
                                      urdf=urdf, params=params, seed=seed, workers=workers,
                                      ray_address=ray_address, progress=progress)
    names = traces[0].joint_names
    # One detector learns from all variants, fed one after the other on one time line. It
    # must finish commissioning inside the data: stop two blocks before the end.
    span = sum(float(tr.t[-1] - tr.t[0]) for tr in traces if tr.t.size)
    duration = span - 2.0 * block
    try:
        detector = ResidualDetector(names, **settings, commissioning_duration_s=duration)
    except ValueError as exc:
        raise WhatIfError(f'{span:.2f} s of residuals from {samples} variants is too little to '
                          f'commission on ({exc}); give more samples or a longer scenario'
                          ) from exc
    offset = 0.0
    for trace in traces:          # one time line: each variant after the last, a block apart
        if trace.t.size and not detector.commissioned:
            t = trace.t + (offset - trace.t[0])
            commission_series(detector, block_series(
                detector, t, trace.position, trace.velocity, trace.effort, trace.wrench,
                trace.velocity_measured))
            offset = float(t[-1]) + block
    if not detector.commissioned:
        raise WhatIfError(f'commissioning did not finish on {span:.2f} s of residuals '
                          f'({detector.commissioning_progress:.0%}); give more samples')
    output = Path(output)
    # written beside the output and moved there only when the held-out variants pass
    partial = output.with_name(f'.{output.name}.{os.getpid()}.partial')
    try:
        detector.save_thresholds(partial, urdf=None if urdf is None else str(urdf))
        checks = []
        if holdout:
            held = scenario_residual_traces(
                scenario, range(int(samples), int(samples + holdout)), urdf=urdf,
                params=params, seed=seed, workers=workers, ray_address=ray_address,
                progress=progress)
            for trace in held:
                checks.append(monitor_trace(
                    ResidualDetector.from_thresholds(partial, names, **settings), trace))
        result = CommissioningResult(output, tuple(names), int(samples), duration, checks,
                                     time.perf_counter() - t0)
        if not result.passed:
            result.thresholds_file = output.with_name(output.name + '.failed')
        replace_file(partial, result.thresholds_file)
    finally:
        partial.unlink(missing_ok=True)
    return result
