"""
``robot-twin hil-report RECORDING --output DIR``: the command line of :mod:`robot_twin.hil_report`.

Kept apart so that building the ``robot-twin`` parser does not import the twin's cores.
"""
import json
import math
import os
from pathlib import Path
import sys

_TAG = 'robot-twin hil-report'


def add_hil_report_parser(subparsers):
    """Add the ``hil-report`` sub-command; return its parser."""
    parser = subparsers.add_parser(
        'hil-report', help='tracking, limits, deadlines, jitter, faults of a HIL recording',
        description='Report on a recording of a HIL run (robot-twin record beside the plant): '
                    'tracking error per joint, commands outside the URDF limits, deadline '
                    'misses and jitter, faults injected against faults detected (with delays); '
                    'JSON and plots.')
    parser.add_argument('recording', metavar='RECORDING',
                        help='rosbag2 directory, an .mcap/.db3 file, or a ROS 1 .bag')
    parser.add_argument('--output', required=True, metavar='DIR', help='where to write')
    parser.add_argument('--urdf', default='', metavar='PATH', help='the robot (default: built-in)')
    parser.add_argument('--config', default=None, metavar='FILE',
                        help='twin config for a replay when the recording has no '
                             '/twin/anomaly (checked in any case)')
    parser.add_argument('--joint-states-topic', default='/joint_states', metavar='TOPIC',
                        help="the robot's JointState topic in the recording (default "
                             '/joint_states)')
    parser.add_argument('--wrench-topic', default=None, metavar='TOPIC',
                        help="the robot's WrenchStamped topic, for the replay ('' = ignore it; "
                             "default: the config's)")
    parser.set_defaults(func=cmd_hil_report)
    return parser


def _output_problem(output):
    """Return why ``--output`` cannot take the report ('' when it may be tried)."""
    from robot_twin.cli_files import nearest_existing, not_a_regular_file
    path = Path(output)
    if path.exists() and not path.is_dir():
        return (f'--output {output} is a file; give a directory (report.json and the plots '
                f'are written into it)')
    existing = nearest_existing(path)
    if not existing.is_dir():
        return f'--output {output}: {existing} is a file, not a directory'
    if not os.access(existing, os.W_OK | os.X_OK):
        return f'--output {output}: cannot write in {existing} (permission denied)'
    problem = not_a_regular_file(path / 'report.json')
    return f'--output {output}: {problem}' if problem else ''


def cmd_hil_report(args):
    """Run ``robot-twin hil-report``; return the exit status."""
    problem = _output_problem(args.output)
    if problem:
        print(f'{_TAG}: {problem}', file=sys.stderr)
        return 2
    from robot_twin.hil_report import build_report, write_plots
    from robot_twin.replay import ReplayError
    from twin_bridge.ledger import to_json_value
    try:
        report, series = build_report(args.recording, urdf=args.urdf, config=args.config,
                                      joint_states_topic=args.joint_states_topic,
                                      wrench_topic=args.wrench_topic)
    except ReplayError as exc:
        print(f'{_TAG}: {exc}', file=sys.stderr)
        return 2
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
        names = list(report['tracking'])
        report['plots'] = write_plots(report, series, names, out)
        (out / 'report.json').write_text(json.dumps(to_json_value(report), indent=1,
                                                    sort_keys=True) + '\n')
    except OSError as exc:
        where = f' ({exc.filename})' if exc.filename else ''
        print(f'{_TAG}: cannot write --output {args.output}: {exc.strerror or exc}{where}',
              file=sys.stderr)
        return 2
    for line in summary_lines(report):
        print(line)
    print(f'report: {out / "report.json"}')
    return 0


def summary_lines(report):
    """Return the lines printed after a HIL report (list of str)."""
    lines = []
    worst = max(report['tracking'].items(), key=lambda kv: kv[1]['rms_rad'] or 0.0)
    if worst[1]['rms_rad'] is not None:
        lines.append(f"tracking: worst RMS {worst[1]['rms_rad']:.4g} rad on {worst[0]}")
    outside = sum(sum(v.values()) for v in report['commands']['outside_limits'].values())
    commands = report['commands']
    line = f"commands: {commands['total']}, values outside limits: {outside}"
    if commands.get('rejected'):
        line += f", rejected by the plant: {commands['rejected']}"
    if commands.get('untracked_samples'):
        line += (f"; {commands['untracked_samples']} joint states under a velocity, effort or "
                 'trajectory command (not tracked)')
    lines.append(line)
    t = report['timing']
    if t and 'steps' in t:
        from robot_twin.hil_report import counted_steps
        if t['mode'] == 'realtime':
            lines.append(f"timing: {t.get('deadline_misses')} deadline misses in {t['steps']} "
                         f"steps ({100 * (t.get('miss_fraction') or 0):.3f} %), jitter p99 "
                         f"{t.get('jitter_p99_us') or math.nan:.0f} µs, {counted_steps(t)}")
        else:
            lines.append(f"timing: {t['mode']}, {t['steps']} steps, {t.get('resends')} "
                         f'resends, {counted_steps(t)}')
    for f in report['faults']['injected']:
        if f['detected'] is None:
            found = 'detection unknown (no detections: see missing)'
        else:
            found = (f"detected on {f['detected_on']} after {f['delay_s']:.3f} s"
                     if f['detected'] else 'NOT detected')
        entries = len(f.get('scenario_entries') or ())
        parts = f' ({entries} scenario entries)' if entries > 1 else ''
        lines.append(f"fault {f['type']} on {f['joint'] or 'robot'} at {f['start_s']:g} s"
                     f'{parts}: ' + found)
    if report['faults'].get('false_alarms'):
        if report['faults'].get('injected_known', True):
            lines.append('false alarms (before any fault began): '
                         f"{len(report['faults']['false_alarms'])}")
        else:
            lines.append(f"alarms: {len(report['faults']['false_alarms'])} (injected faults "
                         'unknown: they cannot be told from false alarms)')
    if report['faults']['detected_not_injected']:
        extra = len(report['faults']['detected_not_injected'])
        lines.append(f'detected but not injected (after a fault began): {extra}')
    lines += [f'missing: {text}' for text in report.get('missing', ())]
    return lines
