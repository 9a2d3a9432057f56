"""
``robot-twin aas export``: the robot and its twin as an Asset Administration Shell (.aasx).

Wiring (robot_twin/cli.py)::

    from robot_twin.aas_cli import add_aas_parser
    add_aas_parser(sub)

The nameplate and technical data come from the URDF, the identified parameters from
``--params``, and the current health and RUL from a running hub (``--hub URL``, its REST API).
Exit status: 0 written, 2 an input is unusable (the message says which), 1 the file cannot be
written, 3 written from a hub whose data is stale or missing: the Health submodel is then
marked (``DataStatus`` ``STALE: ...`` or ``NO DATA: ...``) and a warning says why. An
existing ``--output`` that is not a regular file (a device, a FIFO, a directory) is refused
before anything is written, never replaced. Every problem is one line on stderr, never a
traceback; the URDF's warnings are one line each (``robot-twin aas export: warning:
...``).
"""
import datetime
import json
from pathlib import Path
import sys
import urllib.error
import urllib.request
import warnings

from robot_twin.cli_files import not_a_regular_file, read_identified_dynamics
from robot_twin.cli_warnings import print_warnings
from twin_sim.resources import urdf_or_builtin

_TAG = 'robot-twin aas export'
FIRST_YEAR = 1950        # the earliest plausible year of construction of a robot


def add_aas_parser(subparsers):
    """Add the ``aas`` sub-command (``aas export``); return its parser."""
    parser = subparsers.add_parser(
        'aas', help='Asset Administration Shell of the robot and its twin',
        description='Asset Administration Shell (IDTA) of the robot and its twin.')
    sub = parser.add_subparsers(dest='aas_command', required=True, metavar='ACTION')
    export = sub.add_parser(
        'export', help='write an .aasx: nameplate, technical data, identified parameters, '
                       'health and RUL',
        description='Write an AAS package (.aasx) with four submodels: Nameplate and '
                    'TechnicalData from the URDF, IdentifiedParameters from --params, and '
                    'Health (anomaly state, remaining useful life, advice per joint) from a '
                    'running hub (--hub).')
    export.add_argument('--output', required=True, metavar='FILE', help='the .aasx to write')
    export.add_argument('--urdf', default='', help='robot URDF (default: the built-in arm)')
    export.add_argument('--params', default=None, metavar='FILE',
                        help='identified dynamics (params.yaml from robot-twin sysid)')
    export.add_argument('--hub', default='', metavar='URL',
                        help='a running hub (e.g. http://127.0.0.1:8080) to take the current '
                             'health and RUL from; without it the Health submodel is empty')
    export.add_argument('--manufacturer', default='', help='nameplate: manufacturer name')
    export.add_argument('--serial-number', default='', help='nameplate: serial number')
    export.add_argument('--year', type=int, default=None,
                        help=f'nameplate: year of construction ({FIRST_YEAR} to next year)')
    export.set_defaults(func=run_aas_export)
    return parser


def _hub_state(url):
    address = url.rstrip('/') + '/api/v1/state'
    try:
        with urllib.request.urlopen(address, timeout=10.0) as response:
            return json.loads(response.read().decode('utf-8'))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ValueError(f'cannot read the twin state from {address}: {exc}') from None


def _input_problem(args):
    """Return why the options cannot be used ('' when they can), before any file is read."""
    last = datetime.date.today().year + 1
    if args.year is not None and not FIRST_YEAR <= args.year <= last:
        return (f'--year {args.year} is not a plausible year of construction (give a year '
                f'from {FIRST_YEAR} to {last})')
    if args.urdf and Path(args.urdf).is_dir():
        return f'--urdf {args.urdf} is a directory; give the URDF file'
    return ''


def _output_problem(output):
    """Return why ``--output`` cannot be written ('' when it may be tried)."""
    path = Path(output)
    if path.is_dir():
        return f'cannot write --output {output}: it is a directory; name the .aasx file'
    problem = not_a_regular_file(path)
    if problem:
        return f'cannot write --output {output}: {problem}; name the .aasx file to write'
    if not path.parent.is_dir():
        return (f'cannot write --output {output}: {path.parent} is not an existing folder')
    return ''


def run_aas_export(args):
    """Handle ``robot-twin aas export``; return the exit status."""
    from robot_twin.hub.aas import build_shell, health_problem, read_aasx, write_aasx
    from twin_sim.urdf_model import ParametersError, RobotModel, URDFError
    problem = _input_problem(args)
    if problem:
        print(f'{_TAG}: error: {problem}', file=sys.stderr)
        return 2
    problem = _output_problem(args.output)
    if problem:
        print(f'{_TAG}: error: {problem}', file=sys.stderr)
        return 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        try:
            model = RobotModel.from_urdf(urdf_or_builtin(args.urdf))
            if args.params:
                read_identified_dynamics(args.params)   # refuses a file of another kind
                model.load_parameters(args.params)      # ... and one of another robot
            state = _hub_state(args.hub) if args.hub else None
            store, files, shell_id = build_shell(
                model, params_path=args.params, state=state, manufacturer=args.manufacturer,
                serial_number=args.serial_number, year=args.year)
        except (URDFError, ParametersError, ValueError, OSError) as exc:
            print_warnings(caught, _TAG)
            print(f'{_TAG}: error: {exc}', file=sys.stderr)
            return 2
    print_warnings(caught, _TAG)
    try:
        write_aasx(args.output, store, files, shell_id)
        read_aasx(args.output)                       # the SDK's reader takes it back
    except (OSError, ValueError) as exc:
        print(f'{_TAG}: error: cannot write {args.output}: {exc}', file=sys.stderr)
        return 1
    print(f'{_TAG}: wrote {args.output} ({shell_id}: Nameplate, TechnicalData, '
          f'IdentifiedParameters, Health{" from " + args.hub if state else ", empty"})')
    stale = health_problem(state)
    if stale:
        print(f'{_TAG}: warning: the Health submodel is not current ({stale}); it is marked '
              f'DataStatus {stale.split(":")[0]} (exit status 3)', file=sys.stderr)
        return 3
    return 0
