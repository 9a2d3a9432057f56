"""
``robot-twin ledger verify|show``: check and read the twin's hash-chained lifecycle log.

``verify`` exits 0 on an intact chain and 1 naming the first bad entry (changed, removed,
reordered, inserted, or the file cut mid-entry); 2 when the file cannot be read or ``--head``
is not a hash. ``show`` prints the entries readably, filtered by time and kind (an unknown kind
is refused, naming the known ones); a reader that closes the pipe (``| head``) ends it quietly.
The log itself: :mod:`twin_bridge.ledger`.
"""
import json
import os
import re
import sys

from twin_bridge.ledger import format_time, KINDS, LedgerError, parse_time, verify_ledger

_TAG = 'robot-twin ledger'
_MAX_LIST = 8   # longer lists are shortened in `show`
_HASH = re.compile(r'[0-9a-f]{64}')
_SIGPIPE_STATUS = 141   # 128 + SIGPIPE: what a shell reports for a reader that went away


def add_ledger_parser(subparsers):
    """Add the ``ledger`` sub-command (``verify``, ``show``); return its parser."""
    parser = subparsers.add_parser(
        'ledger', help='check or print the hash-chained lifecycle log',
        description='The lifecycle log (ledger) records what the twin learned and did: '
                    'starts with their configuration, identified parameters, commissioning, '
                    'anomalies, RUL and advice, corrective commands with the governor decision '
                    'on each. Each entry carries the hash of the one before.')
    sub = parser.add_subparsers(dest='ledger_command', required=True, metavar='ACTION')
    verify = sub.add_parser('verify', help='check the chain; exit 1 naming the first bad entry')
    verify.add_argument('path', metavar='PATH', help='the ledger file')
    verify.add_argument('--head', metavar='HASH', default=None,
                        help='a head hash noted earlier (from verify or a start-up log): fail '
                             'if the log no longer contains it (cut or rewritten since)')
    verify.set_defaults(func=cmd_verify)
    show = sub.add_parser('show', help='print the entries readably')
    show.add_argument('path', metavar='PATH', help='the ledger file')
    show.add_argument('--since', metavar='T', default=None,
                      help='only entries written at or after T (seconds since the epoch, or an '
                           'ISO date or date-time, UTC unless a zone is given)')
    show.add_argument('--kind', metavar='K', action='append', default=None,
                      help='only entries of kind K (repeat for several)')
    show.add_argument('--json', action='store_true', help='print the entries as JSON lines')
    show.set_defaults(func=cmd_show)
    return parser


def _verify(path):
    try:
        return verify_ledger(path)
    except LedgerError as exc:
        print(f'{_TAG}: {exc}', file=sys.stderr)
        return None


def cmd_verify(args):
    """Run ``ledger verify``; return the exit status (0 intact, 1 broken, 2 unreadable)."""
    result = _verify(args.path)
    if result is None:
        return 2
    if result.problem is not None:
        intact = (f'entries 0..{len(result.entries) - 1} before it are intact'
                  if result.entries else 'no entry before it')
        print(f'BROKEN: {result.problem}; {intact}')
        return 1
    if args.head is not None:
        if not _HASH.fullmatch(args.head.lower()):
            print(f'{_TAG}: --head {args.head} is not an entry hash (64 hexadecimal digits, '
                  f'as verify prints it)', file=sys.stderr)
            return 2
        args.head = args.head.lower()
        hashes = [e.hash for e in result.entries]
        if args.head not in hashes:
            print(f'BROKEN: {args.path}: head {args.head} is not in the log: it was cut or '
                  f'rewritten since that head was noted ({len(hashes)} entries now)')
            return 1
        after = len(hashes) - 1 - hashes.index(args.head)
        print(f'head {args.head[:16]}... found at entry {hashes.index(args.head)}; '
              f'{after} entries after it')
    if result.entries:
        last = result.entries[-1]
        print(f'OK: {args.path}: {len(result.entries)} entries, intact chain; head '
              f'{last.hash} (entry {last.seq}, {format_time(last.time)})')
    else:
        print(f'OK: {args.path}: empty ledger')
    return 0


def _flatten(value, prefix, out):
    if isinstance(value, dict) and value:
        for key in sorted(value):
            _flatten(value[key], f'{prefix}.{key}' if prefix else str(key), out)
        return
    if isinstance(value, list) and len(value) > _MAX_LIST:
        shown = ', '.join(_short(v) for v in value[:_MAX_LIST])
        out.append((prefix, f'[{shown}, ... ({len(value)} values)]'))
        return
    out.append((prefix, _short(value) if not isinstance(value, list)
                else '[' + ', '.join(_short(v) for v in value) + ']'))


def _short(value):
    if isinstance(value, float):
        if 1e5 <= abs(value) < 1e12:
            # a robot stamp (s since 1970): to the microsecond, not 1.7965e+09
            return f'{value:.6f}'.rstrip('0').rstrip('.')
        return f'{value:.6g}'
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return 'null' if value is None else str(value)


def format_entry(entry):
    """Return the readable text of one :class:`twin_bridge.ledger.Entry` (several lines)."""
    lines = [f'#{entry.seq:<5d} {format_time(entry.time)}  {entry.kind}']
    fields = []
    _flatten(entry.data, '', fields)
    width = max((len(k) for k, _v in fields), default=0)
    lines += [f'        {k + ":":<{width + 1}} {v}' for k, v in fields]
    return '\n'.join(lines)


def cmd_show(args):
    """Run ``ledger show``; return the exit status (1 if the chain is broken, after printing)."""
    try:
        since = None if args.since is None else parse_time(args.since)
    except ValueError as exc:
        print(f'{_TAG}: --since: {exc}', file=sys.stderr)
        return 2
    result = _verify(args.path)
    if result is None:
        return 2
    kinds = set(args.kind) if args.kind else None
    known = set(KINDS) | {e.kind for e in result.entries}
    unknown = sorted(kinds - known) if kinds else []
    if unknown:
        print(f'{_TAG}: --kind {", ".join(unknown)}: no such kind; known kinds: '
              f'{", ".join(sorted(known))}', file=sys.stderr)
        return 2
    shown = 0
    try:
        for entry in result.entries:
            if since is not None and entry.time < since or kinds and entry.kind not in kinds:
                continue
            print(json.dumps(entry.as_dict(), sort_keys=True) if args.json
                  else format_entry(entry))
            shown += 1
        sys.stdout.flush()
    except BrokenPipeError:
        # the reader went away (`| head`): stop quietly; stdout goes to /dev/null so that
        # Python's flush at exit does not complain again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return _SIGPIPE_STATUS
    total = len(result.entries)
    print(f'-- {shown} of {total} entries shown', file=sys.stderr)
    if result.problem is not None:
        print(f'BROKEN: {result.problem}; entries from there on are not shown', file=sys.stderr)
        return 1
    return 0
