"""
``robot-twin synth``: a synthetic COCO dataset of the robot (RGB, depth, per-link masks).

Wiring (robot_twin/cli.py)::

    from robot_twin.synth_cli import add_synth_parser
    add_synth_parser(sub)

The handler returns the exit status: 0 on success, 2 when the robot or an option is unusable
(an image larger than ``robot_twin.synth.MAX_SIDE`` per side or ``MAX_PIXELS``, or an
``--output`` that is a file or lies under one, refused before any image is rendered), 1 when
the output cannot be written after all.
"""
import sys

from robot_twin.whatif_cli import _positive_int, _seed
from twin_sim.resources import urdf_or_builtin

_SYNTH = 'robot-twin synth'


def add_synth_parser(subparsers):
    """Add the ``synth`` sub-command to an argparse sub-parser collection; returns its parser."""
    p = subparsers.add_parser(
        'synth', help='render a synthetic COCO dataset of the robot (RGB, depth, link masks)',
        description="Render N images of the robot with PyBullet's software renderer under "
                    'domain randomization (joint configuration within the limits, camera '
                    'pose, light, colours, distractors on the table) and write a COCO dataset: '
                    'rgb/*.png, depth/*.png (16 bit, millimetres), annotations.json (a mask '
                    'and a box per visible link, categories per link, camera intrinsics and '
                    'joint state per image), joint_states.csv and preview.png. Image i depends '
                    'only on (seed, i).')
    p.add_argument('--urdf', default='', help='robot URDF (default: the built-in arm)')
    p.add_argument('--samples', type=_positive_int, required=True, help='images to render')
    p.add_argument('--output', required=True, metavar='DIR', help='dataset directory')
    p.add_argument('--width', type=_positive_int, default=640,
                   help='image width (640; at most 8192, and 8192 x 4320 pixels in all)')
    p.add_argument('--height', type=_positive_int, default=480, help='image height (480)')
    p.add_argument('--seed', type=_seed, default=0, help='randomization seed (default 0)')
    p.add_argument('--workers', type=_positive_int, default=1,
                   help='local worker processes (default 1)')
    p.add_argument('--no-preview', action='store_true', help='write no preview.png')
    p.add_argument('--quiet', action='store_true', help='no progress bar and no summary')
    p.set_defaults(func=run_synth_command)
    return p


def run_synth_command(args):
    """Handle ``robot-twin synth``; returns the exit status."""
    from robot_twin.cli_files import folder_problem
    from robot_twin.synth import generate, size_problem, SynthError
    problem = size_problem(args.width, args.height) or folder_problem(args.output, '--output')
    if problem:                                        # before any image is rendered
        print(f'{_SYNTH}: error: {problem}', file=sys.stderr)
        return 2
    try:
        result = generate(urdf_or_builtin(args.urdf), args.samples, args.output,
                          width=args.width, height=args.height, seed=args.seed,
                          workers=args.workers, progress=not args.quiet,
                          preview=not args.no_preview)
    except SynthError as exc:
        print(f'{_SYNTH}: error: {exc}', file=sys.stderr)
        return 2
    except OSError as exc:
        print(f'{_SYNTH}: error: cannot write {args.output}: {exc}', file=sys.stderr)
        return 1
    if not args.quiet:
        print(f'{_SYNTH}: {result.images} images, {result.annotations} link masks in '
              f'{result.wall_s:.1f} s ({result.images_per_s:.2f} images/s); wrote '
              f'{result.output}/annotations.json')
    return 0


def main(argv=None):
    """Run ``synth`` on its own (``python -m robot_twin.synth_cli ...``)."""
    import argparse
    parser = argparse.ArgumentParser(prog='robot-twin')
    add_synth_parser(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(['synth'] + list(sys.argv[1:] if argv is None else argv))
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
