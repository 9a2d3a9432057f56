"""
``robot-twin sysid`` and ``robot-twin excite``: system identification from the command line.

Wiring (robot_twin/cli.py)::

    add_sysid_parser(sub)
    add_excite_parser(sub)

Each handler returns the exit status: 0 on success, 2 when the input or an option is unusable
(the message says what to change; sysid checks ``--params``, ``--output`` and ``--report``
before it reads the log), 1 when an output cannot be written after all, and (sysid) 3 when the
identified model predicts the held-out data worse than the prior, the prior predicts no finite
torque, or the fit leaves a moving joint's effort unexplained (mislabelled joint columns, a
wrong effort sign or unit): the report is written, the parameters are not (``--force`` writes
them anyway).
"""
from pathlib import Path
import sys
import time
import warnings

from robot_twin.cli_warnings import print_warnings
from twin_sim.resources import urdf_or_builtin

_SYSID = 'robot-twin sysid'
_EXCITE = 'robot-twin excite'
EXIT_REJECTED = 3


def _fraction(text):
    value = float(text)
    if not 0.0 < value < 1.0:
        raise ValueError(text)
    return value


def _positive(text):
    value = float(text)
    if not value > 0.0:
        raise ValueError(text)
    return value


def _regularization(text):
    if text == 'cv':
        return text
    value = float(text)
    if not value >= 0.0:
        raise ValueError(text)
    return value


_fraction.__name__ = 'number in (0, 1)'
_positive.__name__ = 'positive number'
_regularization.__name__ = '"cv" or a number >= 0'


def add_sysid_parser(subparsers):
    """Add the ``sysid`` sub-command to an argparse sub-parser collection; returns its parser."""
    from twin_sim.logdata import DEFAULT_CUTOFF_HZ, DEFAULT_TOPIC
    from twin_sim.sysid import FRICTION_MODELS

    p = subparsers.add_parser(
        'sysid', help='identify inertial and friction parameters from a joint log',
        description='Identify the base inertial parameters, per-joint friction, rotor inertia '
                    'and effort offsets of a robot from a joint log (CSV or rosbag2), starting '
                    'from the URDF (or --params) as the prior: directions the log does not '
                    'excite keep the prior values. The result is written as params.yaml only '
                    'if it predicts held-out data (the last part of the log, or '
                    '--validation-data) at least as well as the prior and explains the effort '
                    'of every moving joint (a log with swapped joint columns does not); '
                    'otherwise the command says so and exits with status '
                    f'{EXIT_REJECTED} (--force writes it anyway). '
                    'The report has the held-out torque RMSE before and after, with plots.')
    p.add_argument('--urdf', default='', help='robot URDF (default: the built-in arm)')
    p.add_argument('--params', default=None, metavar='PARAMS_YAML',
                   help="start from these identified parameters instead of the URDF's (the "
                        'prior the fit must beat)')
    p.add_argument('--data', required=True,
                   help='CSV with header time,<joint>.position,<joint>.velocity,<joint>.effort '
                        '(velocity optional), or a recording as robot-twin replay reads it: a '
                        'rosbag2 directory (sqlite3 or MCAP), an .mcap/.db3 file, a ROS 1 .bag')
    p.add_argument('--validation-data', default=None, metavar='LOG2',
                   help='another recording of the same robot: fit on the whole of --data and '
                        'report the held-out RMSE on this one')
    p.add_argument('--output', required=True, help='identified parameters (params.yaml)')
    p.add_argument('--report', required=True,
                   help='report JSON; plots are written next to it (<stem>_torques.png, '
                        '<stem>_rmse.png)')
    p.add_argument('--train-fraction', type=_fraction, default=None,
                   help='without --validation-data: first part of the log used for fitting; '
                        'the rest is held out (default 0.7)')
    p.add_argument('--force', action='store_true',
                   help='write the identified parameters even if they predict the held-out '
                        'data worse than the prior')
    p.add_argument('--friction', choices=FRICTION_MODELS, default='viscous-coulomb',
                   help='per-joint friction model (default viscous-coulomb)')
    p.add_argument('--no-armature', action='store_true',
                   help="do not identify rotor inertia (armature); keep the prior's")
    p.add_argument('--regularization', type=_regularization, default='cv',
                   help='weight of the prior: "cv" chooses it by cross-validation on the '
                        'training part (default); a number fixes it (0: plain least squares)')
    p.add_argument('--topic', default=None,
                   help=f'JointState topic of a bag (default {DEFAULT_TOPIC}, or the only '
                        'JointState topic)')
    p.add_argument('--cutoff', type=_positive, default=DEFAULT_CUTOFF_HZ, metavar='HZ',
                   help='low-pass cut-off of the zero-phase Butterworth filter used for '
                        f'velocities and accelerations (default {DEFAULT_CUTOFF_HZ:g} Hz)')
    p.add_argument('--rate', type=_positive, default=None, metavar='HZ',
                   help="uniform resampling rate (default: the log's median rate)")
    p.add_argument('--fit-torque', choices=('raw', 'filtered'), default='raw',
                   help='fit the measured effort as recorded (default) or low-pass filtered')
    p.add_argument('--lock-joints', nargs='+', default=[], metavar='JOINT',
                   help='joints that do not move in the log (effort not used, friction not '
                        'fitted)')
    p.add_argument('--consistency', choices=('auto', 'check'), default='auto',
                   help='auto: refit with physically consistent bodies when needed (default); '
                        'check: only warn')
    p.add_argument('--max-condition', type=_positive, default=None,
                   help='refuse a log whose (column-normalized) regressor condition number is '
                        'above this (default: accept it; weakly excited directions stay at the '
                        'prior)')
    p.add_argument('--max-nan-fraction', type=_fraction, default=0.05,
                   help='refuse a log with more rows containing NaN than this (default 0.05)')
    p.add_argument('--no-plots', action='store_true', help='write the report without plots')
    p.add_argument('--quiet', action='store_true', help='no progress bar, warnings or summary')
    p.set_defaults(func=run_sysid)
    return p


def run_sysid(args):
    """Handle ``robot-twin sysid``; returns the exit status."""
    from twin_sim.logdata import SysIdError
    from twin_sim.sysid import identify_log, save_parameters
    from twin_sim.sysid_report import write_report

    if args.validation_data is not None and args.train_fraction is not None:
        print(f'{_SYSID}: error: --train-fraction splits --data into fitted and held-out '
              'parts; with --validation-data the whole of --data is fitted: give one of them',
              file=sys.stderr)
        return 2
    refusal = _replaced_output(args) or _files_problem(args)
    if refusal:
        print(f'{_SYSID}: error: {refusal}', file=sys.stderr)
        return 2
    progress = None if not args.quiet else False
    urdf = urdf_or_builtin(args.urdf)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            result = identify_log(
                urdf, args.data, params=args.params, validation=args.validation_data,
                topic=args.topic, cutoff_hz=args.cutoff, rate_hz=args.rate,
                max_nan_fraction=args.max_nan_fraction, friction=args.friction,
                train_fraction=args.train_fraction or 0.7, lock_joints=args.lock_joints,
                consistency=args.consistency, max_condition=args.max_condition,
                progress=progress, fit_torque=args.fit_torque, armature=not args.no_armature,
                regularization=args.regularization)
        except SysIdError as exc:
            print_warnings(caught, _SYSID, args.quiet)
            print(f'{_SYSID}: error: {exc}', file=sys.stderr)
            return 2
    print_warnings(caught, _SYSID, args.quiet)
    write = result.accepted or args.force
    try:
        if write:
            save_parameters(result, args.output)
            _check_plant_urdf(urdf, args.output, result, args.quiet)
        report = write_report(result, args.report, data=args.data, plots=not args.no_plots,
                              forced=args.force and not result.accepted, written=write)
    except OSError as exc:
        print(f'{_SYSID}: error: cannot write the results: {exc}', file=sys.stderr)
        return 1
    if not args.quiet:
        _print_summary(result, report, args, time.perf_counter() - t0)
    if not write:
        if not result.decision.get('prior_finite', True):
            advice = (f'Fix the prior ({result.prior.source}) so that it predicts finite '
                      'torques, or pass --force to write the identified model anyway')
        elif result.decision.get('unexplained_joints'):
            advice = ("Check the log's joint names, effort signs and units against the URDF "
                      f'({result.prior.source}); if the log is right, pass --force to write '
                      'the identified model anyway')
        else:
            advice = (f'The prior ({result.prior.source}) stays the better model for this '
                      'robot; record a more exciting log (robot-twin excite), or pass --force '
                      'to write it anyway')
        print(f'{_SYSID}: the identified model was NOT written to {args.output}: '
              f'{result.decision["reason"]}. {advice}', file=sys.stderr)
        return EXIT_REJECTED
    return 0


def _check_plant_urdf(urdf, params, result, quiet):
    """
    Say how a simulated plant will carry the identified bodies (warning and report).

    A plant, a what-if run and a commissioning simulate the URDF with the identified bodies
    put in (:func:`twin_sim.randomization.write_identified_urdf`); when an identified body
    does not split into physical links (less inertia than the URDF gives the tool below the
    force-torque sensor), that changes the simulated inertia a little, or is refused. Each such
    message goes to stderr and into ``result.warnings`` (the report).
    """
    from twin_sim.randomization import NominalDynamics, RandomizationWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always', RandomizationWarning)
        try:
            NominalDynamics.from_urdf(urdf, params)
            texts = [f'simulated plant: {w.message}' for w in caught
                     if issubclass(w.category, RandomizationWarning)]
        except ValueError as exc:     # RandomizationError, or a URDF it cannot read
            texts = [f'a simulated plant cannot carry these bodies: {exc}']
    for text in texts:
        result.warnings.append(text)
        if not quiet:
            print(f'{_SYSID}: warning: {text}', file=sys.stderr)


def _replaced_output(args):
    """
    Return why ``--output`` must not be written over, or '' when it may.

    The fit is only checked against its prior, so an existing params file that is not the
    prior would be replaced without knowing whether the new fit is better than it.
    """
    out = Path(args.output)
    if out.is_dir():
        return f'--output {args.output} is a directory; name the params file to write'
    if not out.exists() or args.force:
        return ''
    if args.params is not None and Path(args.params).resolve() == out.resolve():
        return ''                           # the fit must beat this very file to replace it
    return (f'--output {args.output} exists, and the fit is compared with '
            f'{"--params " + args.params if args.params else "the URDF"}, not with it: pass '
            f'--params {args.output} as well (it is then replaced only by a model that '
            'predicts the held-out data at least as well), another --output, or --force to '
            'replace it anyway')


def _files_problem(args):
    """
    Return why ``--params``, ``--output`` or ``--report`` cannot be used ('' when they can).

    Checked before the log is read and fitted, which takes minutes on a long log: a
    ``--params`` of another kind (thresholds, a config) would be the prior of the fit, an
    output that cannot be written would be found only at the end.
    """
    from robot_twin.cli_files import output_problem, params_problem
    problem = params_problem(args.params)
    if problem:
        return problem
    report = Path(args.report)
    if Path(args.output).absolute() == report.absolute():
        return '--report must differ from --output'
    plots = [] if args.no_plots else [report.with_name(f'{report.stem}_{name}.png')
                                      for name in ('torques', 'rmse')]
    for option, path in [('--output', args.output), ('--report', report)] + \
            [('--report (its plot)', plot) for plot in plots]:
        problem = output_problem(path, option)
        if problem:
            return problem
    return ''


def _fmt(value, spec):
    """Format a report number; a missing one (None: NaN or infinite) as ``n/a``."""
    return 'n/a' if value is None else format(value, spec)


def _print_summary(result, report, args, seconds):
    print(f'{_SYSID}: {report["train_samples"]} training and {report["test_samples"]} '
          f'held-out samples ({report["validation_source"]}), {report["base_parameter_count"]} '
          f'base parameters, condition number {_fmt(report["condition_number"], ".3g")}, '
          f'prior {result.prior.source}, consistency: {result.consistency["method"]}')
    print(f'{"joint":<24} {"RMSE before":>12} {"RMSE after":>12}   (held-out, N·m)')
    for joint, r in report['joints'].items():
        print(f'{joint:<24} {_fmt(r["rmse_before"], ".4f"):>12} '
              f'{_fmt(r["rmse_after"], ".4f"):>12}')
    print(f'{"mean":<24} {_fmt(report["rmse_before_mean"], ".4f"):>12} '
          f'{_fmt(report["rmse_after_mean"], ".4f"):>12}')
    verdict = 'identified model used' if result.accepted else (
        'identified model written anyway (--force)' if args.force else 'prior kept')
    print(f'{_SYSID}: {verdict}: {result.decision["reason"]}')
    written = ([args.output] if result.accepted or args.force else []) + [args.report] \
        + report['plots']
    print(f'{_SYSID}: wrote {", ".join(str(w) for w in written)} ({seconds:.1f} s)')


def add_excite_parser(subparsers):
    """Add the ``excite`` sub-command to an argparse sub-parser collection; returns its parser."""
    from twin_sim.excitation import DEFAULT_MARGIN, DEFAULT_MAX_ACCELERATION

    p = subparsers.add_parser(
        'excite', help='write an excitation trajectory for system identification',
        description='Design a periodic Fourier-series excitation trajectory (Swevers style) '
                    'within the URDF joint limits, optimized for a well-conditioned '
                    'identification, and write it as CSV time,<joint>.position,'
                    '<joint>.velocity,<joint>.acceleration. It starts and ends at rest in the '
                    'middle of every joint range. Self-collision is NOT checked: look at it '
                    'in simulation before running it on a robot.')
    p.add_argument('--urdf', default='', help='robot URDF (default: the built-in arm)')
    p.add_argument('--output', required=True, help='trajectory CSV to write')
    p.add_argument('--duration', type=_positive, default=30.0,
                   help='seconds, rounded up to whole periods (default 30)')
    p.add_argument('--harmonics', type=int, default=5, help='harmonics per joint (default 5)')
    p.add_argument('--base-frequency', type=_positive, default=0.1, metavar='HZ',
                   help='fundamental frequency; the period is its inverse (default 0.1 Hz)')
    p.add_argument('--seed', type=int, default=0, help='random seed (default 0)')
    p.add_argument('--rate', type=_positive, default=100.0, metavar='HZ',
                   help='sample rate of the CSV rows (default 100 Hz)')
    p.add_argument('--margin', type=float, default=DEFAULT_MARGIN,
                   help='fraction of each joint range and of the velocity, acceleration and '
                        f'effort limits kept in reserve (default {DEFAULT_MARGIN:g})')
    p.add_argument('--max-acceleration', type=_positive, default=DEFAULT_MAX_ACCELERATION,
                   help='acceleration limit for every joint, rad/s^2 (URDFs have none; '
                        f'default {DEFAULT_MAX_ACCELERATION:g})')
    p.add_argument('--hold-joints', nargs='+', default=[], metavar='JOINT',
                   help='joints kept still (e.g. gripper fingers)')
    p.add_argument('--iterations', type=int, default=30,
                   help='optimizer iterations on the condition number; 0: best random start '
                        '(default 30)')
    p.add_argument('--quiet', action='store_true', help='print nothing on success')
    p.set_defaults(func=run_excite)
    return p


def run_excite(args):
    """Handle ``robot-twin excite``; returns the exit status."""
    from twin_sim.excitation import design_excitation, write_trajectory_csv
    from twin_sim.logdata import SysIdError
    from twin_sim.sysid import load_robot

    t0 = time.perf_counter()
    if not args.quiet:
        print(f'{_EXCITE}: designing a {args.duration:g} s trajectory (best condition number '
              f'of random starts, then up to {max(args.iterations, 0)} optimizer iterations; '
              'about a minute for 30 s)', flush=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            model = load_robot(urdf_or_builtin(args.urdf))     # carries its <mimic> joints
            traj = design_excitation(
                model, duration=args.duration, harmonics=args.harmonics,
                base_frequency=args.base_frequency, seed=args.seed, margin=args.margin,
                max_acceleration=args.max_acceleration, hold_joints=args.hold_joints,
                iterations=max(args.iterations, 0), progress=None if not args.quiet else False)
        except SysIdError as exc:
            print_warnings(caught, _EXCITE, args.quiet)
            print(f'{_EXCITE}: error: {exc}', file=sys.stderr)
            return 2
    print_warnings(caught, _EXCITE, args.quiet)
    try:
        rows = write_trajectory_csv(traj, args.output, rate_hz=args.rate)
    except OSError as exc:
        print(f'{_EXCITE}: error: cannot write {args.output}: {exc}', file=sys.stderr)
        return 1
    if not args.quiet:
        print(f'{_EXCITE}: {traj.duration:g} s ({traj.duration * traj.base_frequency:.0f} '
              f'periods of {traj.period:g} s), {rows} rows at {args.rate:g} Hz -> {args.output}')
        print(f'{_EXCITE}: regressor condition number {traj.condition_number:.3g} '
              '(column-normalized, base inertial + friction parameters)')
        print(f'{"joint":<24} {"range used":>10} {"vel used":>9} {"acc max":>9} {"effort":>8}')
        for joint in traj.joint_names:
            i = traj.info[joint]
            follows = f'  (<mimic>: follows {i["mimics"]})' if i.get('mimics') else ''
            if i['held']:
                print(f'{joint:<24} {"held":>10}{follows}')
                continue
            pos = i['position_fraction_of_range']
            vel, eff = i['velocity_fraction'], i['effort_fraction']
            print(f'{joint:<24} {_pct(pos):>10} {_pct(vel):>9} {i["max_acceleration"]:>9.2f} '
                  f'{_pct(eff):>8}{follows}')
        print(f'{_EXCITE}: done in {time.perf_counter() - t0:.1f} s; not checked for '
              'collisions')
    return 0


def _pct(x):
    return '-' if x is None else f'{100 * x:.0f} %'
