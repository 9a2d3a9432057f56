"""
Synthetic camera data throughput: images per second at 640 x 480 (robot-twin synth).

Renders ``--samples`` randomized images of the built-in arm with 1 and with 2 worker
processes (PyBullet TinyRenderer, CPU) and prints images per second, including writing the
PNGs and the COCO masks; the 2-worker figure includes starting the processes.

Usage: ``python benchmarks/bench_synth.py [--samples 24] [--width 640] [--height 480]``.
"""
import argparse
import os
from pathlib import Path
import tempfile

from robot_twin.synth import generate

URDF = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--samples', type=int, default=24)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    args = parser.parse_args()
    print(f'machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start')
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            result = generate(URDF, args.samples, Path(tmp) / f'w{workers}', width=args.width,
                              height=args.height, seed=0, workers=workers, preview=False)
            print(f'{workers} worker(s): {result.images} images of {args.width} x {args.height} '
                  f'in {result.wall_s:.1f} s: {result.images_per_s:.2f} images/s '
                  f'({result.annotations} link masks)')
    print(f'load average at end {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
