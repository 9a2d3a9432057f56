"""
``robot-twin replay``: a recording through the twin in lock-step, as fast as it goes; a report.

The work is :func:`robot_twin.replay.replay`; this module is its command line: options, the
summary printed at the end, and exit status 2 with one line naming the problem for a bad bag,
config, URDF, ledger or ``--report`` (which is checked before the replay starts).
"""
import math
from pathlib import Path
import sys

_TAG = 'robot-twin replay'


def add_replay_parser(subparsers):
    """Add the ``replay`` sub-command; return its parser."""
    parser = subparsers.add_parser(
        'replay', help='play a recording through the twin (lock-step); write a report',
        description="Play the robot's /joint_states (and wrench) of a rosbag2 recording "
                    '(MCAP or sqlite3; or a ROS 1 bag) through the cores of the twin, in the '
                    'order of the live '
                    'twin, as '
                    'fast as the computer allows. The report (residual statistics per joint, '
                    'anomalies with their robot times) is the same on every replay.')
    parser.add_argument('bag', metavar='BAG',
                        help='rosbag2 directory, an .mcap/.db3 file, or a ROS 1 .bag')
    parser.add_argument('--report', required=True, metavar='FILE', help='report JSON to write')
    parser.add_argument('--urdf', default='', metavar='PATH',
                        help='URDF of the recorded robot (default: that of the config)')
    parser.add_argument('--config', default=None, metavar='FILE',
                        help='config file (or profile twin, demo) with the parameters of the '
                             'twin; '
                             'default: twin')
    parser.add_argument('--ledger', default=None, metavar='PATH',
                        help='lifecycle log to append the entries of the replay to')
    parser.add_argument('--thresholds', default=None, metavar='FILE',
                        help='commissioned thresholds to use (read only; default: commission '
                             'on the recording)')
    parser.add_argument('--joint-states-topic', default=None, metavar='TOPIC',
                        help="the robot's JointState topic in the recording")
    parser.add_argument('--wrench-topic', default=None, metavar='TOPIC',
                        help="the robot's WrenchStamped topic ('' = ignore it)")
    parser.add_argument('--from-start', action='store_true',
                        help='replay every sample (default: where the live twin of the '
                             'recording started, when it has /twin/residuals)')
    parser.add_argument('--no-payload', action='store_true',
                        help='ignore the payload declarations of the recording (/twin/payload; '
                             'default: apply each where it is in the stream, as the live twin '
                             'did)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    parser.set_defaults(func=cmd_replay)
    return parser


def _fmt(t):
    return 'n/a' if t is None or not math.isfinite(t) else f'{t:.3f} s'


def summary_lines(report, thresholds=None):
    """
    Return the lines printed after a replay (list of str).

    ``thresholds`` is the ``--thresholds`` file the replay loaded (the report's
    ``thresholds_loaded`` event names the private copy the monitor read). An alarm whose fault
    type is of the whole robot (:data:`twin_anomaly.classifier.ROBOT_LEVEL`: dropout, delay,
    payload_change) is said of the robot, not of the group (joint) whose detectors raised it.
    """
    from twin_anomaly.classifier import ROBOT_LEVEL
    m = report['messages']
    lines = [f"{report['recording']['name']}: {m['joint_states']} joint states, "
             f"{m['wrench']} wrenches, {m['samples']} samples, {m['residuals']} residuals"]
    if report['start']['aligned_with_live_twin']:
        lines.append(f"started where the live twin did ({_fmt(report['start']['stamp'])}; "
                     f"{report['start']['skipped_messages']} messages before it skipped)")
    if report['recording'].get('note'):
        lines.append(f"note: {report['recording']['note']}")
    lines += [f'note: {text}' for text in report.get('notes', ())]
    if report['rejections']:
        lines.append(f"rejected (first reasons): {'; '.join(report['rejections'][:3])}")
    lines += _payload_lines(report.get('payloads'))
    without = m.get('samples_without_effort', 0)
    if without and without == m['samples']:
        lines.append('the recording has no efforts (its JointState effort is empty), so there '
                     'are no residuals: no commissioning, no anomaly detection')
    elif without:
        lines.append(f"{without} of {m['samples']} samples have no effort: no residuals for "
                     'them')
    if m['residuals']:
        effort = [(j, v['rms']) for j, v in report['residuals'].items()
                  if j.endswith('.effort')]
        lines.append('effort residual RMS [N·m]: ' + ' '.join(
            f'{j.split(".")[0]} {rms:.3g}' for j, rms in effort))
    loaded = next((e for e in report.get('events', ())
                   if e.get('kind') == 'thresholds_loaded'), None)
    if loaded is not None:
        what = 'calibration and thresholds' if loaded.get('calibrated') else 'thresholds'
        lines.append(f"{what} loaded from {thresholds or loaded.get('file')} (no commissioning "
                     'on this recording)')
    elif report['commissioning'] is None:
        lines.append('commissioning did not finish in this recording')
    for a in report['anomalies']:
        robot = a['fault_type'] in ROBOT_LEVEL
        lines.append(f"anomaly on {'robot' if robot else a['group']}: {a['fault_type']} since "
                     f"{_fmt(a['since'])} (raised at {_fmt(a['raised_at'])}, cleared "
                     f"{_fmt(a['cleared_at']) if a['cleared_at'] is not None else 'never'}"
                     + (f"; alarmed group {a['group']})" if robot else ')'))
    if not report['anomalies']:
        lines.append('no anomaly')
    live = (report['live_twin'] or {}).get('groups')
    if live:
        first = report['first_alarm']
        delta = '' if first is None else \
            f"; replay - live {first['since'] - live[0]['since']:+.3f} s"
        lines.append(f"live twin's first alarm: {live[0]['group']} since "
                     f"{_fmt(live[0]['since'])}" + delta)
    return lines


def _payload_lines(payloads):
    """Say which payload declarations were applied, refused or ignored, and when."""
    if not payloads or not payloads['messages']:
        return []
    if payloads['ignored']:
        return [f"{payloads['messages']} payload declarations on {payloads['topic']} ignored "
                '(--no-payload)']
    lines = []
    for p in payloads['applied']:
        what = f"{p['mass_kg']:g} kg at {[round(c, 4) for c in p['com_m']]} m"
        lines.append(f"payload {what} applied at robot time {_fmt(p['robot_time'])}"
                     + ('' if p['changed'] else ' (the load the twin had: no change)'))
    for p in payloads['refused']:
        lines.append(f"payload refused at robot time {_fmt(p['robot_time'])}: "
                     f"{p['reason']}")
    return lines


def cmd_replay(args):
    """Run ``robot-twin replay``; return the exit status."""
    from robot_twin.cli_files import output_problem
    problem = output_problem(args.report, '--report', folders_created=True)   # before the replay
    if problem:
        print(f'{_TAG}: {problem}', file=sys.stderr)
        return 2
    from robot_twin.replay import replay, ReplayError, report_json
    try:
        report = replay(args.bag, config=args.config, urdf=args.urdf,
                        thresholds=args.thresholds, ledger=args.ledger,
                        joint_states_topic=args.joint_states_topic,
                        wrench_topic=args.wrench_topic, from_start=args.from_start,
                        progress=not args.quiet, payload=not args.no_payload)
    except ReplayError as exc:
        print(f'{_TAG}: {exc}', file=sys.stderr)
        return 2
    try:
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(report_json(report), encoding='utf-8')
    except OSError as exc:
        print(f'{_TAG}: cannot write --report {args.report}: {exc}', file=sys.stderr)
        return 2
    for line in summary_lines(report, args.thresholds):
        print(line)
    print(f'report: {args.report}')
    return 0
