"""
Report and plots of a system identification run (``robot-twin sysid --report``).

:func:`write_report` writes ``report.json`` and, next to it, ``<stem>_torques.png`` (measured
and predicted torque per joint on the held-out part, prior model before and identified model
after) and ``<stem>_rmse.png`` (per-joint RMSE bars). Plots use matplotlib's Agg backend.

The RMSE figures compare the predictions with the *measured* effort (linearly resampled onto
the uniform grid, not filtered), so they include the sensor noise: an RMSE at the noise level
is a perfect model. ``rmse_after_filtered`` compares with the low-pass filtered effort.
``before`` is the prior (the URDF, or the params file identification started from), ``after``
the identified model; ``validation_source`` says which data they were computed on, and
``decision`` which of the two is to be used and why.
"""
import json
import math
from pathlib import Path
import time

import numpy as np

__all__ = ['plot_rmse', 'plot_torques', 'report_dict', 'write_report']


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


def report_dict(result, data=None, *, forced=False, written=None):
    """
    Build the report as a JSON-ready dict.

    Parameters
    ----------
    result : twin_sim.sysid.SysIdResult
        The identification result.
    data : str, optional
        The log it came from (informational).
    forced : bool
        The identified parameters were written although not accepted (``--force``).
    written : bool, optional
        Whether the parameters file was written (default: when accepted or forced).

    Returns
    -------
    dict
        ``train_samples``, ``test_samples``, ``joints: {joint: {rmse_before, rmse_after, ...}}``
        (identified joints only), ``rmse_before_mean``, ``rmse_after_mean`` (N·m),
        ``validation_source``, ``decision`` (``accepted``, ``chosen``, ``reason``,
        ``unexplained_joints``, ``prior_finite``), ``prior``, ``regularization``,
        ``effort_explained`` (per joint, the share of its held-out effort variation the
        identified model explains while it moves), plus the condition number, friction, rotor
        inertia, base parameters, consistency, warnings and timings.

    """
    before, after = result.rmse('before'), result.rmse('after')
    after_f, before_f = result.rmse('after', filtered=True), result.rmse('before', filtered=True)
    joints = {}
    for i, j in enumerate(result.joint_names):
        if not result.active[i]:
            continue
        joints[j] = {'rmse_before': _num(before[i]), 'rmse_after': _num(after[i]),
                     'rmse_before_filtered': _num(before_f[i]),
                     'rmse_after_filtered': _num(after_f[i]),
                     'rmse_train_after': _num(result.rmse_train_after[i])}
    act = result.active
    base = [{'name': result.base.names[k], 'combination': result.base.describe(k),
             'value': _num(result.beta[k]), 'std': _num(result.beta_std[k]),
             'nominal': _num(result.beta_nominal[k])} for k in range(result.base.rank)]
    decision = dict(result.decision, accepted=bool(result.accepted), forced=bool(forced),
                    parameters_written=bool(result.accepted or forced) if written is None
                    else bool(written))
    if forced:
        decision['chosen'] = 'identified (forced)'
    arm_std = result.armature_std
    return {
        'train_samples': int(result.n_train),
        'test_samples': int(result.n_test),
        'validation_source': result.validation_source,
        'decision': decision,
        'prior': None if result.prior is None else result.prior.source,
        'regularization': {k: v if isinstance(v, str) else _num(v)
                           for k, v in result.regularization.items()},
        'joints': joints,
        'rmse_before_mean': _num(np.mean(before[act])),
        'rmse_after_mean': _num(np.mean(after[act])),
        'rmse_reference': 'measured effort resampled onto the uniform grid, not filtered '
                          '(N·m); *_filtered: against the low-pass filtered effort',
        'joints_not_identified': [j for i, j in enumerate(result.joint_names)
                                  if not result.active[i]],
        'friction_model': result.friction_model,
        'friction': result.friction_dict(),
        'armature': result.armature_dict(),
        'armature_std': {} if arm_std is None else {
            j: _num(arm_std[i]) for i, j in enumerate(result.joint_names)
            if j in result.armature_dict()},
        'armature_with_body': result.info.get('armature_with_body', []),
        'condition_number': _num(result.condition_number),
        'base_parameter_count': int(result.base.rank),
        'base_parameters': base,
        'physical_consistency': result.consistency,
        'sample_rate_hz': _num(result.info.get('sample_rate_hz', float('nan'))),
        'cutoff_hz': _num(result.info.get('cutoff_hz', float('nan'))),
        'raw_samples': result.info.get('raw_samples'),
        'dropped_nan_rows': result.info.get('dropped_nan_rows'),
        'velocity_source': result.info.get('velocity_source'),
        'locked_joints': result.info.get('locked_joints'),
        'effort_vs_prior': {j: {k: v if isinstance(v, str) else _num(v) for k, v in d.items()}
                            for j, d in result.info.get('effort_vs_prior', {}).items()},
        'effort_explained': {j: {k: v if isinstance(v, bool) or v is None else _num(v)
                                 for k, v in d.items()}
                             for j, d in result.info.get('effort_explained', {}).items()},
        'warnings': list(result.warnings),
        'timings_s': {k: _num(v) for k, v in result.timings.items()},
        'urdf': result.urdf,
        'data': None if data is None else str(data),
    }


def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def plot_torques(result, path):
    """
    Measured vs predicted torque per identified joint on the held-out part.

    Parameters
    ----------
    result : SysIdResult
        The identification result.
    path : str or Path
        PNG file to write.

    """
    plt = _pyplot()
    rows = np.flatnonzero(result.active)
    t = result.time_test - result.time_test[0]
    fig, axes = plt.subplots(len(rows), 1, sharex=True, squeeze=False,
                             figsize=(10, 1.9 * len(rows) + 1.0))
    before, after = result.rmse('before'), result.rmse('after')
    for ax, j in zip(axes[:, 0], rows):
        ax.plot(t, result.tau_raw_test[:, j], color='0.75', lw=0.6, label='measured')
        ax.plot(t, result.tau_test[:, j], color='k', lw=0.9, label='measured, filtered')
        ax.plot(t, result.tau_before[:, j], color='tab:red', lw=0.9, ls='--',
                label='prior (before)')
        ax.plot(t, result.tau_after[:, j], color='tab:blue', lw=0.9,
                label='identified model (after)')
        ax.set_ylabel(f'{result.joint_names[j]}\nN·m')
        ax.text(0.01, 0.95, f'RMSE before {before[j]:.3g}, after {after[j]:.3g} N·m',
                transform=ax.transAxes, va='top', fontsize=8,
                bbox={'facecolor': 'white', 'alpha': 0.8, 'edgecolor': 'none'})
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc='upper center', ncol=4, fontsize=8,
               bbox_to_anchor=(0.5, 0.985))
    axes[-1, 0].set_xlabel('time into the held-out part, s')
    verdict = 'identified model used' if result.accepted else 'prior kept'
    fig.suptitle(f'Held-out torque ({result.validation_source}): measured vs predicted; '
                 f'{verdict}', y=0.998, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_rmse(result, path):
    """Bar chart of per-joint held-out RMSE before and after identification."""
    plt = _pyplot()
    rows = np.flatnonzero(result.active)
    names = [result.joint_names[j] for j in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(rows) + 2), 3.5))
    ax.bar(x - 0.2, result.rmse('before')[rows], 0.4, label='prior', color='tab:red')
    ax.bar(x + 0.2, result.rmse('after')[rows], 0.4, label='identified', color='tab:blue')
    ax.set_xticks(x, names, rotation=30, ha='right')
    ax.set_ylabel('held-out torque RMSE, N·m')
    ax.set_yscale('log')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(result, path, *, data=None, plots=True, forced=False, written=None):
    """
    Write report.json and, next to it, the plots.

    Parameters
    ----------
    result : SysIdResult
        The identification result.
    path : str or Path
        The JSON file; plots go to ``<stem>_torques.png`` and ``<stem>_rmse.png`` beside it.
    data : str, optional
        The log path, recorded in the report.
    plots : bool
        Also write the PNG plots.
    forced, written : bool
        See :func:`report_dict`.

    Returns
    -------
    dict
        The report (with ``plots`` listing the PNG files).

    """
    t0 = time.perf_counter()
    path = Path(path)
    report = report_dict(result, data, forced=forced, written=written)
    files = []
    if plots:
        torques = path.with_name(path.stem + '_torques.png')
        rmse = path.with_name(path.stem + '_rmse.png')
        plot_torques(result, torques)
        plot_rmse(result, rmse)
        files = [str(torques), str(rmse)]
    report['plots'] = files
    report['timings_s']['report'] = time.perf_counter() - t0
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(report, f, indent=2)
        f.write('\n')
    return report
