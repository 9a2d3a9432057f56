"""
``robot-twin record``: record the robot's topics and the twin's outputs to rosbag2 (MCAP).

Runs the recorder (:mod:`robot_twin.nodes.recorder_node`) in this process on the ROS
environment's domain, like ``robot-twin up``; ``--localhost --domain-id N`` keeps DDS on this
machine. The bag is what ``robot-twin replay`` and ``robot-twin hil-report`` read.

Exit status: 0 recorded, 1 nothing was recorded, 2 an option cannot be used or the bag cannot
be written (one line naming the problem; the options and the ``--output`` folder are checked
before DDS starts).
"""
import os
from pathlib import Path
import sys

from robot_twin.bringup import up_env
from robot_twin.cli_files import nearest_existing
from robot_twin.config import ConfigError

_TAG = 'robot-twin record'


def add_record_parser(subparsers):
    """Add the ``record`` sub-command; return its parser."""
    parser = subparsers.add_parser(
        'record', help="record the robot's topics and the twin's outputs to rosbag2 (MCAP)",
        description="Record the robot's topics (joint states, wrench, commands, /clock, the "
                    "HIL plant's status), the twin's outputs (/twin/...) and the payload "
                    'declarations (/twin/payload, which robot-twin replay applies) to a rosbag2 '
                    'directory in MCAP storage, until --duration or Ctrl-C.')
    parser.add_argument('--output', required=True, metavar='BAG',
                        help='the bag directory to create (must not exist)')
    parser.add_argument('--duration', type=float, default=None, metavar='S',
                        help='stop after S seconds (default: on Ctrl-C)')
    parser.add_argument('--topic', action='append', default=[], metavar='TOPIC',
                        help='also record TOPIC (its type is taken from its publishers); '
                             'repeat for several')
    parser.add_argument('--only', action='store_true',
                        help='record only the --topic topics, not the default set')
    parser.add_argument('--markers', action='store_true', help='also record /twin/markers')
    parser.add_argument('--joint-states-topic', default='/joint_states', metavar='TOPIC',
                        help="the robot's JointState topic (default /joint_states)")
    parser.add_argument('--wrench-topic', default='/ft_sensor/wrench', metavar='TOPIC',
                        help="the robot's WrenchStamped topic ('' = none)")
    parser.add_argument('--domain-id', type=int, default=None, metavar='N',
                        help='ROS_DOMAIN_ID (default: your environment)')
    parser.add_argument('--localhost', action='store_true',
                        help='keep DDS on this machine (localhost-only discovery and transport)')
    parser.set_defaults(func=cmd_record)
    return parser


def _output_problem(output):
    """Return why the bag directory ``output`` cannot be created ('' when it may be tried)."""
    path = Path(output)
    if path.exists():
        return f'--output {output} exists; give a new directory name'
    folder = nearest_existing(path.absolute().parent)    # the recorder creates the rest
    if not folder.is_dir():
        return (f'cannot create --output {output}: {folder} is a file, not a folder; give a '
                'bag directory in a folder')
    if not os.access(folder, os.W_OK | os.X_OK):
        return f'cannot create --output {output}: no permission to write in {folder}'
    return ''


def _problem(args):
    problem = _output_problem(args.output)
    if problem:
        return problem
    if args.duration is not None and not args.duration > 0:
        return f'--duration must be > 0 s, got {args.duration}'
    if args.only and not args.topic:
        return '--only needs at least one --topic'
    bad = [t for t in args.topic if not t.startswith('/')]
    if bad:
        return f'--topic needs absolute topic names (starting with /), got {bad}'
    return None


def cmd_record(args):
    """Run ``robot-twin record``; return the exit status."""
    problem = _problem(args)
    if problem is None:
        try:
            env = up_env(args.domain_id, args.localhost)
        except ConfigError as exc:
            problem = str(exc)
    if problem is not None:
        print(f'{_TAG}: {problem}', file=sys.stderr)
        return 2
    os.environ.update(env)        # read by rmw when the recorder starts
    from robot_twin.nodes.recorder_node import default_topics, record
    topics = {} if args.only else default_topics(
        args.wrench_topic, args.joint_states_topic, args.markers)
    topics.update({t: topics.get(t) for t in args.topic})
    try:
        counts = record(args.output, topics, args.duration,
                        args=['robot-twin-record', '--ros-args', '-r', '__node:=twin_recorder'],
                        log=lambda text: print(f'[{_TAG}] {text}', flush=True))
    except OSError as exc:           # the bag is opened before DDS starts (e.g. under /proc)
        print(f'{_TAG}: cannot write --output {args.output}: {exc}', file=sys.stderr)
        return 2
    total = sum(counts.values())
    print(f'[{_TAG}] wrote {args.output}: {total} messages on {len(counts)} topics'
          + ''.join(f'\n  {t}: {n}' for t, n in sorted(counts.items())), flush=True)
    if not total:
        print(f'{_TAG}: no message was recorded: is the robot (or the plant) running on this '
              f'ROS_DOMAIN_ID ({env.get("ROS_DOMAIN_ID", "0 (default)")})?', file=sys.stderr)
        return 1
    return 0
