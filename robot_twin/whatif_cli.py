"""
``robot-twin whatif`` and ``robot-twin commission``: domain-randomized variants of a scenario.

``whatif`` summarizes how torques, tracking and the anomaly score spread across the variants;
``commission`` learns anomaly thresholds from fault-free variants
(:mod:`robot_twin.commissioning`).

Wiring (robot_twin/cli.py)::

    from robot_twin.whatif_cli import add_commission_parser, add_whatif_parser
    add_whatif_parser(sub)
    add_commission_parser(sub)

The handlers return the exit status: 0 on success, 2 when the scenario, robot or an option is
unusable (the message says what to change; ``--params`` that is not identified dynamics, a
``commission --output`` that cannot be written and ``commission --holdout 0`` without
``--force`` are refused before any variant runs), 1 when an output cannot be written after all
or (``commission``) a held-out variant alarmed; the reason of a non-zero status is printed on
stderr even with ``--quiet``.
"""
import math
from pathlib import Path
import sys
import time
import warnings

from robot_twin.cli_files import folder_problem, params_problem
from robot_twin.cli_warnings import print_warnings
from twin_sim.resources import urdf_or_builtin
from twin_sim.yaml_numbers import load_yaml
import yaml

_WHATIF = 'robot-twin whatif'
_COMMISSION = 'robot-twin commission'


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def _seed(text):
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


_positive_int.__name__ = 'positive integer'
_seed.__name__ = 'non-negative integer'


def _add_variant_options(p):
    """Add the options every run of randomized variants takes (robot, seed, where to run)."""
    p.add_argument('--urdf', default='', help='robot URDF (default: the built-in arm)')
    p.add_argument('--params', default=None,
                   help='identified dynamics (params.yaml from robot-twin sysid): the '
                        'randomization is centred on them and the twin predicts with them')
    p.add_argument('--workers', type=_positive_int, default=1,
                   help='local worker processes (default 1: run in this process)')
    p.add_argument('--seed', type=_seed, default=0, help='randomization seed (default 0)')
    p.add_argument('--ray', nargs='?', const='auto', default=None, metavar='ADDRESS',
                   help='run the variants on a Ray cluster instead of local processes: '
                        '"auto" (the cluster of RAY_ADDRESS or the one started on this '
                        'machine), "local" (start Ray here for this run), the head\'s '
                        'HOST:PORT (e.g. 10.0.0.5:6379) or a Ray Client address '
                        'ray://HOST:10001. Needs the ray extra (pip install "robot_twin[ray]"), '
                        'the same Ray, Python and robot_twin on every node.')
    p.add_argument('--engine', choices=('mujoco', 'pybullet'), default=None,
                   help="the simulated robot's physics (default: the scenario's engine, "
                        'mujoco unless it says otherwise): mujoco runs a variant at engine '
                        'speed (the twin and detector over the recorded samples), pybullet '
                        'steps the PyBullet plant and the live twin together (slower)')


def add_whatif_parser(subparsers):
    """Add the ``whatif`` sub-command to an argparse sub-parser collection; returns its parser."""
    p = subparsers.add_parser(
        'whatif', help='run N domain-randomized variants of a scenario; summary and plots',
        description='Run N variants of a what-if scenario (a trajectory plus optional faults) '
                    'with masses, inertias, friction, payload, sensor noise and delay, and '
                    "actuator limits drawn from the scenario's randomization ranges around "
                    'the URDF (or identified) parameters. Prints p5/p50/p95 of joint torques, '
                    'tracking error, twin residuals and the anomaly score across variants; '
                    'with --output also writes summary.json, samples.csv, run.json and plots. '
                    'Variant i depends only on (seed, i): the summary is the same for any '
                    '--workers.')
    p.add_argument('--scenario', required=True,
                   help='what-if scenario YAML, or the name of one in config/whatif '
                        '(e.g. payload_sweep, friction_wear)')
    p.add_argument('--samples', type=_positive_int, required=True,
                   help='number of randomized variants')
    p.add_argument('--output', default=None, metavar='DIR',
                   help='directory for summary.json, samples.csv, run.json and the plots '
                        '(default: print the table only)')
    _add_variant_options(p)
    p.add_argument('--no-plots', action='store_true', help='write no plots')
    p.add_argument('--quiet', action='store_true', help='no progress bar and no table')
    p.set_defaults(func=run_whatif_command)
    return p


def run_whatif_command(args):
    """Handle ``robot-twin whatif``; returns the exit status."""
    from robot_twin.whatif import format_table, run_whatif, WhatIfError, write_outputs

    t0 = time.perf_counter()
    problem = params_problem(args.params) or \
        (folder_problem(args.output, '--output') if args.output else None)   # before any variant
    if problem:
        print(f'{_WHATIF}: error: {problem}', file=sys.stderr)
        return 2
    if args.ray is not None and args.workers != 1 and not args.quiet:
        print(f'{_WHATIF}: note: --workers is ignored with --ray (Ray schedules the samples)',
              file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            result = run_whatif(args.scenario, args.samples, urdf=urdf_or_builtin(args.urdf),
                                params=args.params, seed=args.seed, workers=args.workers,
                                ray_address=args.ray, progress=not args.quiet,
                                engine=args.engine)
        except WhatIfError as exc:
            print(f'{_WHATIF}: error: {exc}', file=sys.stderr)
            return 2
    if not args.quiet:
        print_warnings(caught, _WHATIF)
    written = []
    if args.output:
        try:
            written = write_outputs(result, args.output, plots=not args.no_plots)
        except OSError as exc:
            print(f'{_WHATIF}: error: cannot write the results: {exc}', file=sys.stderr)
            return 1
    for f in result.failed:      # also in the table; here even with --quiet
        print(f'{_WHATIF}: variant {f.index} of seed {f.seed} failed: {f.error}',
              file=sys.stderr)
    if not args.quiet:
        run = result.run
        print(format_table(result.summary))
        print(f'{_WHATIF}: {run["simulated_s"]:.1f} simulated s in {run["wall_s"]:.1f} s on '
              f'{run["backend"]}, {run["sim_s_per_wall_s"]:.2f} simulated s per wall s '
              f'({time.perf_counter() - t0:.1f} s in all)')
        if written:
            print(f'{_WHATIF}: wrote {", ".join(str(w) for w in written)}')
        else:
            print(f'{_WHATIF}: give --output DIR for summary.json, samples.csv and plots')
    return 0


def add_commission_parser(subparsers):
    """Add the ``commission`` sub-command; returns its parser."""
    p = subparsers.add_parser(
        'commission', help='learn anomaly thresholds from fault-free randomized variants',
        description='Run fault-free variants of a what-if scenario (its faults are ignored), '
                    'commission one what-if detector (ResidualDetector) on the twin residuals '
                    'of all of them, and save its thresholds. The thresholds then hold across '
                    'the randomization ranges instead of for one arm. --holdout runs further '
                    'variants against the saved file and counts false alarms. The live '
                    'twin_anomaly node does not load this file: it commissions on the robot.')
    p.add_argument('--scenario', required=True,
                   help='what-if scenario YAML, or a packaged name (commissioning: the demo '
                        'motion of the built-in arm); best the motion your robot will do')
    p.add_argument('--samples', type=_positive_int, required=True,
                   help='variants to learn from')
    p.add_argument('--holdout', type=_seed, default=4,
                   help='further variants checked against the saved thresholds (default 4; 0 '
                        'checks nothing and needs --force)')
    p.add_argument('--output', required=True, metavar='FILE',
                   help='thresholds file to write (an existing one is replaced only if it is '
                        'an earlier output of this command, and only when no held-out variant '
                        'alarmed; otherwise the thresholds go to FILE.failed)')
    p.add_argument('--force', action='store_true',
                   help='write thresholds that no held-out variant checked (--holdout 0)')
    _add_variant_options(p)
    p.add_argument('--quiet', action='store_true', help='no progress bar and no table')
    p.set_defaults(func=run_commission_command)
    return p


def run_commission_command(args):
    """Handle ``robot-twin commission``; returns the exit status (1: a false alarm held out)."""
    from robot_twin.commissioning import commission_across_variants
    from robot_twin.whatif import WhatIfError

    from robot_twin.commissioning import MIN_VARIANTS

    refusal = _not_a_commission_output(args.output) or params_problem(args.params)
    if not refusal and args.holdout == 0 and not args.force:
        refusal = ('--holdout 0 runs no held-out variant, so nothing checks that the thresholds '
                   'stay quiet on fault-free arms they were not learned from; give --holdout N '
                   '(default 4), or --force to write them unchecked')
    if refusal:
        print(f'{_COMMISSION}: error: {refusal}', file=sys.stderr)
        return 2
    if args.holdout == 0:                     # --force: said even with --quiet
        print(f'{_COMMISSION}: WARNING: --holdout 0 --force: the thresholds are written '
              'without a held-out check', file=sys.stderr)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            result = commission_across_variants(
                args.scenario, args.samples, args.output, holdout=args.holdout,
                urdf=urdf_or_builtin(args.urdf), params=args.params, seed=args.seed,
                workers=args.workers, ray_address=args.ray, progress=not args.quiet,
                engine=args.engine)
        except WhatIfError as exc:
            print(f'{_COMMISSION}: error: {exc}', file=sys.stderr)
            return 2
        except OSError as exc:
            print(f'{_COMMISSION}: error: cannot write {args.output}: {exc}', file=sys.stderr)
            return 1
    if not args.quiet:
        print_warnings([w for w in caught if 'no held-out variants' not in str(w.message)],
                       _COMMISSION)           # --holdout 0 was said above
        print(f'{_COMMISSION}: learned from {result.samples} variants '
              f'({result.commissioning_s:.1f} s of residuals) in {result.wall_s:.1f} s')
        for h in result.holdout:
            alarm = ('no alarm' if math.isnan(h.alarm_time_s)
                     else f'ALARM at {h.alarm_time_s:.2f} s on {h.alarm_joint or "?"}')
            print(f'  held-out variant {h.index}: max score {h.max_score:.2f}, {alarm}')
        if result.holdout:
            print(f'{_COMMISSION}: {result.false_alarms} of {len(result.holdout)} held-out '
                  'fault-free variants raised an alarm')
        if result.passed:
            print(f'{_COMMISSION}: wrote {result.thresholds_file}')
        print(f'{_COMMISSION}: these are thresholds of the what-if detector (ResidualDetector, '
              "the scenario's detector settings); the live twin_anomaly node does not load "
              'them: it commissions on the robot it watches (README, thresholds learned across '
              'randomized variants)')
    if result.passed:
        return 0
    few = (f' (only {result.samples}, fewer than {MIN_VARIANTS})'
           if result.samples < MIN_VARIANTS else '')
    print(f'{_COMMISSION}: error: {result.false_alarms} of {len(result.holdout)} held-out '
          f'fault-free variants raised an alarm: the thresholds were not written to '
          f'{args.output} (kept as {result.thresholds_file}, to look at); learn from more '
          f'variants{few} or widen the scenario', file=sys.stderr)   # even with --quiet
    return 1


def _not_a_commission_output(output):
    """Return why ``commission --output`` must not be written, or '' when it may."""
    from robot_twin.cli_files import output_problem
    from twin_anomaly.detector import THRESHOLDS_FILE_KEY
    path = Path(output).expanduser()
    if path.is_dir():
        return f'--output {output} is a directory; name the thresholds file to write'
    problem = output_problem(path, '--output', folders_created=True)
    if problem:
        return problem
    if not path.exists():
        return ''
    try:
        doc = load_yaml(path.read_text(encoding='utf-8'))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return f'--output {output} exists and cannot be read ({exc}); choose another --output'
    if isinstance(doc, dict) and THRESHOLDS_FILE_KEY in doc:
        return ''                                 # an earlier output of this command
    what = (f'a file with {", ".join(map(str, list(doc)[:3]))}' if isinstance(doc, dict)
            and doc else 'not a thresholds file of this command')
    return (f'--output {output} exists and is {what} (a calibration of the live twin, '
            'identified parameters?); it is not replaced: choose another --output')


def main(argv=None):
    """Run ``whatif`` on its own (``python -m robot_twin.whatif_cli ...``)."""
    import argparse
    parser = argparse.ArgumentParser(prog='robot-twin')
    add_whatif_parser(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(['whatif'] + list(sys.argv[1:] if argv is None else argv))
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
