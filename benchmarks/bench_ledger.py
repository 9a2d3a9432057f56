"""
Cost of the lifecycle log: a durable append (write + fsync), an append without fsync, verify.

Appends ``--entries`` small ``command`` entries (what the governor's audit writes) to a ledger in
a temporary directory (``--dir``: on the disk the twin would use), durable and not, and
verifies the file. Prints median and p99 of one append, and the verification time.

Usage: ``.venv/bin/python benchmarks/bench_ledger.py [--entries 300] [--dir DIR]``
"""
import argparse
import os
from pathlib import Path
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from twin_bridge.ledger import Ledger, verify_ledger  # noqa: E402

ENTRY = {'allowed': True, 'clamped': False, 'joints': [f'joint{k}' for k in range(1, 8)],
         'requested': {'values': [0.1] * 7, 'duration_s': None}, 'stamp': 1796371200.5}


def appends(path, n, durable):
    """Return the seconds each of ``n`` appends took."""
    took = []
    with Ledger(path, durable=durable) as ledger:
        for k in range(n):
            start = time.perf_counter()
            ledger.append('command', dict(ENTRY, k=k))
            took.append(time.perf_counter() - start)
    return sorted(took)


def main():
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--entries', type=int, default=300)
    parser.add_argument('--dir', default=None, help='where the ledger is written')
    args = parser.parse_args()
    print(f'load average {os.getloadavg()[0]:.2f}')
    with tempfile.TemporaryDirectory(dir=args.dir, prefix='bench_ledger_') as tmp:
        for durable in (True, False):
            took = appends(Path(tmp) / f'{durable}.jsonl', args.entries, durable)
            print(f'append ({"write + fsync" if durable else "write only"}): median '
                  f'{1e6 * statistics.median(took):.0f} µs, p99 '
                  f'{1e6 * took[int(0.99 * (len(took) - 1))]:.0f} µs')
        start = time.perf_counter()
        result = verify_ledger(Path(tmp) / 'True.jsonl')
        print(f'verify {len(result.entries)} entries: '
              f'{1e3 * (time.perf_counter() - start):.1f} ms ({"intact" if result.ok else "?"})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
