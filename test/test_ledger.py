"""
Tests of the lifecycle log (twin_bridge/ledger.py) and ``robot-twin ledger verify|show``.

Every way of damaging the file (change, removal, reordering, insertion, a cut mid-entry) must
make ``verify`` fail naming the first bad entry; a crash while writing (a real SIGKILL of a
writer process) leaves a file the next writer repairs and continues; two writers never share
one file (a second process is refused by the OS lock).
"""
import errno
import json
import math
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from robot_twin.cli import main as cli_main
from twin_bridge.ledger import canonical_json, entry_hash, GENESIS, Ledger, LedgerCorrupt, \
    LedgerError, LedgerLocked, open_ledger, parse_time, read_ledger, verify_ledger

ROOT = Path(__file__).resolve().parents[1]
CHILD_TIMEOUT_S = 60.0


def make_log(path, n=5):
    with Ledger(path, durable=False) as ledger:
        for k in range(n):
            ledger.append('anomaly_raised', {'joint': f'joint{k}', 'score': 1.5 + k,
                                             'since': 10.0 + k}, wall_time=1000.0 + k)
    return path.read_bytes().splitlines(keepends=True)


def rewrite(path, lines):
    path.write_bytes(b''.join(lines))


def test_entries_chain_and_round_trip(tmp_path):
    path = tmp_path / 'sub' / 'ledger.jsonl'
    with Ledger(path) as ledger:
        first = ledger.append('start', {'q': np.array([0.5, math.nan]), 'n': np.int64(3)})
        second = ledger.append('rul', {'rul_hours': math.inf})
    assert first.seq == 0 and first.prev == GENESIS and second.prev == first.hash
    entries = read_ledger(path)
    assert [e.kind for e in entries] == ['start', 'rul']
    assert entries[0].data == {'q': [0.5, 'NaN'], 'n': 3}     # strict JSON on disk
    assert entries[1].data == {'rul_hours': 'Infinity'}
    for line, entry in zip(path.read_text().splitlines(), entries):
        obj = json.loads(line)
        assert canonical_json(obj) == line and entry_hash(obj) == obj['hash'] == entry.hash
    assert verify_ledger(path).head == second.hash
    empty = tmp_path / 'empty.jsonl'
    empty.write_bytes(b'')
    assert verify_ledger(empty).ok and verify_ledger(empty).head == GENESIS


@pytest.mark.parametrize('damage, index, reason', [
    ('change', 2, 'hash does not match its contents'),
    # entry 2 changed and its own hash recomputed: entry 2 is the suspect, not entry 3
    ('rehash', 2, 'this entry or its successor (entry 3, line 4) was changed'),
    ('remove', 2, 'has seq 3 where seq 2 belongs'),
    ('reorder', 1, 'has seq 2 where seq 1 belongs'),
    ('insert', 2, 'has seq 1 where seq 2 belongs'),
    ('reformat', 1, 'not in canonical form'),
    ('cut', 4, 'cut mid-entry'),
    ('garbage', 3, 'not a JSON entry'),
])
def test_verify_names_the_first_bad_entry(tmp_path, damage, index, reason):
    path = tmp_path / 'ledger.jsonl'
    lines = make_log(path)
    if damage == 'change':
        lines[2] = lines[2].replace(b'"score":3.5', b'"score":0.5')
    elif damage == 'rehash':
        obj = json.loads(lines[2])
        obj['data']['score'] = 0.5
        obj['hash'] = entry_hash(obj)
        lines[2] = (canonical_json(obj) + '\n').encode()
    elif damage == 'remove':
        del lines[2]
    elif damage == 'reorder':
        lines[1], lines[2] = lines[2], lines[1]
    elif damage == 'insert':
        lines.insert(2, lines[1])
    elif damage == 'reformat':
        lines[1] = (json.dumps(json.loads(lines[1]), sort_keys=True) + '\n').encode()
    elif damage == 'cut':
        lines[4] = lines[4][:40]
    elif damage == 'garbage':
        lines[3] = b'\x00\x00\x00\n'
    rewrite(path, lines)
    result = verify_ledger(path)
    assert not result.ok
    assert result.problem.index == index and reason in result.problem.reason
    assert len(result.entries) == index          # everything before it is intact
    assert result.torn == (damage == 'cut')


def test_cli_verify_and_show(tmp_path, capsys):
    path = tmp_path / 'ledger.jsonl'
    make_log(path)
    with Ledger(path, durable=False) as ledger:
        ledger.append('command', {'allowed': True, 'joints': list(range(12)),
                                  'stamp': 1796500123.456789}, wall_time=2000.0)
    assert cli_main(['ledger', 'verify', str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith('OK:') and '6 entries' in out
    head = read_ledger(path)[-1].hash
    assert cli_main(['ledger', 'verify', str(path), '--head', head]) == 0
    capsys.readouterr()
    # show: readable, filtered by kind and time
    assert cli_main(['ledger', 'show', str(path), '--kind', 'command']) == 0
    out = capsys.readouterr().out
    assert out.count('#') == 1 and 'command' in out and '(12 values)' in out
    assert re.search(r'stamp: +1796500123\.456789$', out, re.M)     # a robot stamp, whole
    assert cli_main(['ledger', 'show', str(path), '--since', '1970-01-01T00:16:42Z']) == 0
    out = capsys.readouterr().out     # 1002 s: entries 2, 3, 4 and the command
    assert [line.split()[0] for line in out.splitlines() if line.startswith('#')] == \
        ['#2', '#3', '#4', '#5']
    assert re.search(r'^ +joint: +joint2$', out, re.M) and re.search(r'score: +3.5', out)
    # cut whole entries off the end: the chain is consistent, the noted head is not in it
    lines = path.read_bytes().splitlines(keepends=True)
    rewrite(path, lines[:-1])
    assert cli_main(['ledger', 'verify', str(path), '--head', head]) == 1
    assert 'is not in the log' in capsys.readouterr().out
    # a changed entry: exit 1, naming it; show prints what comes before it and fails
    rewrite(path, [lines[0], lines[1].replace(b'joint1', b'joint9')] + lines[2:])
    assert cli_main(['ledger', 'verify', str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith('BROKEN:') and 'entry 1 (line 2)' in out
    assert cli_main(['ledger', 'show', str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out.count('#') == 1 and 'entry 1 (line 2)' in captured.err
    assert cli_main(['ledger', 'verify', str(tmp_path / 'missing.jsonl')]) == 2
    assert 'cannot read' in capsys.readouterr().err
    assert cli_main(['ledger', 'show', str(path), '--since', 'yesterday']) == 2
    assert 'not a time' in capsys.readouterr().err


def test_parse_time_forms():
    assert parse_time('1000.5') == 1000.5
    assert parse_time('1970-01-02') == 86400.0
    assert parse_time('1970-01-01T01:00:00+01:00') == 0.0


def test_reopen_continues_and_refuses_damage(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    lines = make_log(path, 3)
    with Ledger(path) as ledger:
        assert ledger.seq == 3
        entry = ledger.append('start', {})
    assert entry.seq == 3 and entry.prev == json.loads(lines[2])['hash']
    assert verify_ledger(path).ok
    # damage in the middle: the writer refuses to continue the chain past it
    rewrite(path, [lines[0], lines[2]])
    with pytest.raises(LedgerCorrupt, match=r'entry 1 \(line 2\).*start a new ledger file'):
        Ledger(path)
    # a cut last entry (as a crash leaves it) is removed, recorded and the chain continues
    rewrite(path, lines[:2] + [lines[2][:25]])
    with Ledger(path) as ledger:
        ledger.append('start', {})
    entries = read_ledger(path)
    assert [e.kind for e in entries] == ['anomaly_raised', 'anomaly_raised', 'recovered',
                                         'start']
    assert entries[2].data['removed_bytes'] == 25


def test_one_writer_per_file_in_a_process(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    with Ledger(path):
        with pytest.raises(LedgerLocked, match='two twins must not write one log'):
            Ledger(path)
    shared = open_ledger(path)
    again = open_ledger(str(path))
    assert again is shared
    shared.append('start', {'component': 'twin_bridge'})
    again.append('start', {'component': 'twin_anomaly'})
    shared.close()
    assert not again.closed
    again.close()
    assert again.closed and len(read_ledger(path)) == 2


_HOLDER = textwrap.dedent("""
    import sys
    from twin_bridge.ledger import Ledger
    ledger = Ledger(sys.argv[1])
    ledger.append('start', {'component': 'holder'})
    print('ready', flush=True)
    sys.stdin.read()          # hold the lock until the parent closes our stdin
""")


def _python(code, *args, **kwargs):
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    return subprocess.Popen([sys.executable, '-c', code, *map(str, args)], env=env,
                            text=True, **kwargs)


def test_a_second_process_cannot_write_a_locked_ledger(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    holder = _python(_HOLDER, path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == 'ready'
        second = _python('import sys\nfrom twin_bridge.ledger import Ledger, LedgerLocked\n'
                         'try:\n    Ledger(sys.argv[1])\nexcept LedgerLocked as exc:\n'
                         '    print(exc)\n    sys.exit(3)\n', path,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = second.communicate(timeout=CHILD_TIMEOUT_S)
        assert second.returncode == 3, err
        assert 'open for writing elsewhere' in out
        with pytest.raises(LedgerLocked):          # nor this process
            Ledger(path)
    finally:
        holder.stdin.close()
        holder.wait(timeout=CHILD_TIMEOUT_S)
    with Ledger(path) as ledger:                   # the lock went with the holder
        ledger.append('start', {'component': 'next'})
    assert [e.data['component'] for e in read_ledger(path)] == ['holder', 'next']


_WRITER = textwrap.dedent("""
    import sys
    from twin_bridge.ledger import Ledger
    ledger = Ledger(sys.argv[1])          # durable: the real fsync policy
    blob = 'x' * int(sys.argv[2])
    print('ready', flush=True)
    k = 0
    while True:
        ledger.append('test', {'k': k, 'blob': blob})
        k += 1
""")
ENTRY_BYTES = 16_000_000      # large entries: a write takes long enough to be killed inside


def _kill_while_writing(path):
    """Run a writer, SIGKILL it while the file ends mid-entry; return whether it did."""
    writer = _python(_WRITER, path, ENTRY_BYTES, stdout=subprocess.PIPE)
    try:
        assert writer.stdout.readline().strip() == 'ready'
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        with open(path, 'rb') as f:
            while time.monotonic() < deadline:
                size = os.fstat(f.fileno()).st_size
                if size > 2 * ENTRY_BYTES:
                    f.seek(size - 1)
                    if f.read(1) != b'\n':          # a write is under way: kill it now
                        break
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.kill()
        writer.wait(timeout=CHILD_TIMEOUT_S)
        writer.stdout.close()
    return writer.returncode == -signal.SIGKILL


def test_sigkill_while_writing_leaves_a_log_the_next_writer_continues(tmp_path):
    torn_seen = 0
    for attempt in range(8):
        path = tmp_path / f'ledger{attempt}.jsonl'
        assert _kill_while_writing(path)
        result = verify_ledger(path)
        # at most the entry being written is damaged: everything before it verifies
        assert result.ok or result.torn, result.problem
        assert len(result.entries) >= 2
        assert [e.data['k'] for e in result.entries] == list(range(len(result.entries)))
        torn_seen += result.torn
        with Ledger(path) as ledger:                # the restart repairs and continues
            ledger.append('start', {'component': 'restarted'})
        after = read_ledger(path)
        assert after[:len(result.entries)] == result.entries
        assert [e.kind for e in after[len(result.entries):]] == \
            (['recovered', 'start'] if result.torn else ['start'])
        if torn_seen:
            break
    assert torn_seen, 'no kill landed inside a write in 8 attempts'


def test_async_appends_are_written_in_order_and_before_close(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    ledger = Ledger(path)
    futures = [ledger.append_async('rul', {'k': k}) for k in range(20)]
    assert futures[3].result().data == {'k': 3}          # durable once the future is done
    ledger.close()                                      # the rest are written first
    assert all(f.done() for f in futures)
    assert [e.data['k'] for e in read_ledger(path)] == list(range(20))
    with pytest.raises(LedgerError, match='closed'):
        ledger.append_async('rul', {})


def test_a_durable_append_goes_after_the_entries_already_queued(tmp_path):
    """An anomaly queued by the anomaly node, then the bridge's command for it: in that order."""
    ledger = Ledger(tmp_path / 'ledger.jsonl')
    ledger.append_async('start', {}).result()             # the writer thread exists
    gate = threading.Event()
    ledger._worker.submit(gate.wait)                       # hold the writer for a moment
    ledger.append_async('anomaly_raised', {'group': 'joint3'})
    threading.Timer(0.2, gate.set).start()
    command = ledger.append('command', {'allowed': True})  # waits for the queue
    assert gate.is_set()
    ledger.close()
    kinds = [e.kind for e in read_ledger(tmp_path / 'ledger.jsonl')]
    assert kinds == ['start', 'anomaly_raised', 'command'] and command.seq == 2


def test_cli_head_must_be_a_hash_and_kind_a_known_one(tmp_path, capsys):
    path = tmp_path / 'ledger.jsonl'
    make_log(path)
    assert cli_main(['ledger', 'verify', str(path), '--head', 'abc']) == 2
    captured = capsys.readouterr()
    assert '--head abc is not an entry hash (64 hexadecimal digits' in captured.err
    assert 'cut or rewritten' not in captured.out + captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    head = read_ledger(path)[-1].hash
    assert cli_main(['ledger', 'verify', str(path), '--head', head.upper()]) == 0
    capsys.readouterr()
    assert cli_main(['ledger', 'show', str(path), '--kind', 'bogus']) == 2
    captured = capsys.readouterr()
    assert captured.out == '' and len(captured.err.strip().splitlines()) == 1, captured
    assert '--kind bogus: no such kind; known kinds: ' in captured.err
    assert all(k in captured.err for k in ('anomaly_raised', 'payload_set', 'command')), \
        captured.err
    # a kind of the twin's that this log has no entry of yet is not refused
    assert cli_main(['ledger', 'show', str(path), '--kind', 'payload_set']) == 0
    assert '0 of' in capsys.readouterr().err


def test_cli_show_into_a_closed_pipe_ends_quietly(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    with Ledger(path, durable=False) as ledger:
        for k in range(3000):
            ledger.append('rul_advice', {'joint': f'joint{k % 7}', 'level': 'OK',
                                         'message': 'nominal ' * 8}, wall_time=1000.0 + k)
    # `robot-twin ledger show ... | head -n 2`: the reader closes the pipe after two lines
    show = subprocess.Popen([sys.executable, '-m', 'robot_twin', 'ledger', 'show', str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = [show.stdout.readline() for _ in range(2)]
    show.stdout.close()
    err = show.stderr.read().decode()
    code = show.wait(timeout=60)
    assert head[0].startswith(b'#0'), head
    assert 'Traceback' not in err and 'BrokenPipeError' not in err, err
    assert code == 141, (code, err)


class FailingDisk:
    """
    ``os.write`` of the ledger module that fails for one file descriptor, as a full disk does.

    Once ``armed``, the next write to ``fd`` writes ``piece`` bytes (a short write), and every
    write after it raises ``OSError(ENOSPC)``; ``armed = False`` frees the disk again. Writes
    to other descriptors go through. With ``gate`` (a ``threading.Event``) an armed write
    waits for it first (to queue several entries before the first one fails).
    """

    def __init__(self, monkeypatch, fd, piece=10):
        import twin_bridge.ledger as module
        self.real, self.fd, self.piece = os.write, fd, piece
        self.armed, self.failures, self._short = False, 0, False
        self.gate = None
        monkeypatch.setattr(module.os, 'write', self.write)

    def write(self, fd, data):
        if fd != self.fd or not self.armed:
            return self.real(fd, data)
        if self.gate is not None:
            assert self.gate.wait(CHILD_TIMEOUT_S), 'the gate of the failing disk never opened'
        if not self._short:
            self._short = True
            return self.real(fd, bytes(data)[:self.piece])
        self.failures += 1
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_failed_background_write_is_raised_not_lost(tmp_path, monkeypatch):
    path = tmp_path / 'ledger.jsonl'
    ledger = Ledger(path, durable=False)
    ledger.append('start', {})
    disk = FailingDisk(monkeypatch, ledger._fd)
    disk.armed, disk.gate = True, threading.Event()
    futures = [ledger.append_async('anomaly_raised', {'k': k}) for k in range(3)]
    disk.gate.set()                                     # all three queued: now the disk fails
    ledger._worker.submit(lambda: None).result()        # the queue has been written
    disk.armed = False                                  # space again: still nothing written
    assert disk.failures == 1 and all(f.done() for f in futures)
    assert isinstance(ledger.failure, LedgerError)
    assert 'No space left on device' in str(ledger.failure)
    # nobody read the futures: the next call of any kind raises it
    with pytest.raises(LedgerError, match="No space left on device; a queued 'anomaly_raised' "
                                          'entry is not in the log'):
        ledger.append('command', {'allowed': True})
    with pytest.raises(LedgerError, match='No space left on device'):
        ledger.append_async('rul_advice', {})
    ledger.close()                                      # raised already: closes quietly
    assert ledger.closed
    # the log holds what came before the failure, no piece of the failed write, nothing after
    assert [e.kind for e in read_ledger(path)] == ['start']
    assert verify_ledger(path).ok


def test_close_raises_a_failed_background_write_nobody_had(tmp_path, monkeypatch):
    path = tmp_path / 'ledger.jsonl'
    ledger = Ledger(path, durable=False)
    disk = FailingDisk(monkeypatch, ledger._fd, piece=0)
    disk.armed = True
    ledger.append_async('anomaly_raised', {'joint': 'joint3'})   # its future is dropped
    with pytest.raises(LedgerError, match='No space left on device'):
        ledger.close()
    assert ledger.closed and read_ledger(path) == []
    # a caller that reads the future has it: close then does not raise it again
    other = Ledger(tmp_path / 'other.jsonl', durable=False)
    disk = FailingDisk(monkeypatch, other._fd, piece=0)
    disk.armed = True
    future = other.append_async('anomaly_raised', {})
    assert isinstance(future.exception(), LedgerError)
    other.close()
    assert other.closed


def test_entries_handed_in_while_the_ledger_closes_are_refused(tmp_path):
    """close() began: append/append_async refuse, no new writer thread, nothing lost quietly."""
    path = tmp_path / 'ledger.jsonl'
    ledger = Ledger(path, durable=False)
    ledger.append_async('note', {'i': 0}).result()
    threads_before = set(threading.enumerate())
    drain = ledger._worker.shutdown
    refused = {}

    def shutdown(wait=True):
        # other threads hand in entries while close() waits for the queue to be written
        for name, call in (('append_async', ledger.append_async), ('append', ledger.append)):
            try:
                refused[name] = call('note', {'i': name})
            except LedgerError as exc:
                refused[name] = exc
        return drain(wait=wait)

    ledger._worker.shutdown = shutdown
    ledger.close()                        # nothing queued was lost: closes quietly
    assert ledger.closed and ledger.failure is None
    for name in ('append_async', 'append'):
        assert isinstance(refused[name], LedgerError), (name, refused[name])
        assert 'the ledger is closed' in str(refused[name])
    assert [e.data for e in read_ledger(path)] == [{'i': 0}]
    # no writer thread was started for the refused entries (the old one has ended)
    assert ledger._worker is None
    assert [t.name for t in set(threading.enumerate()) - threads_before
            if t.name.startswith('ledger')] == []
    with pytest.raises(LedgerError, match='the ledger is closed'):
        ledger.append_async('note', {})


def test_open_ledger_waits_for_a_closing_writer_and_opens_the_file_anew(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    ledger = open_ledger(path, durable=False)
    ledger.append_async('note', {'i': 0}).result()
    drain = ledger._worker.shutdown
    waiting = threading.Event()
    wait = ledger._closed.wait

    def closed_wait(*args):
        waiting.set()
        return wait(*args)

    ledger._closed.wait = closed_wait
    opened = {}
    opener = threading.Thread(target=lambda: opened.update(ledger=open_ledger(path)))

    def shutdown(wait=True):
        opener.start()                    # another node opens the log while it closes
        assert waiting.wait(CHILD_TIMEOUT_S), 'open_ledger did not wait for the close'
        return drain(wait=wait)

    ledger._worker.shutdown = shutdown
    ledger.close()
    opener.join(CHILD_TIMEOUT_S)
    assert ledger.closed
    again = opened['ledger']
    assert again is not ledger and not again.closed
    again.append('note', {'i': 1})
    again.close()
    assert [e.data for e in read_ledger(path)] == [{'i': 0}, {'i': 1}]


def test_open_ledger_does_not_hand_out_a_writer_that_failed(tmp_path, monkeypatch):
    path = tmp_path / 'ledger.jsonl'
    ledger = open_ledger(path, durable=False)
    ledger.append('start', {})
    disk = FailingDisk(monkeypatch, ledger._fd, piece=0)
    disk.armed = True
    ledger.append_async('anomaly_raised', {'joint': 'joint1'})     # its future is dropped
    ledger._worker.submit(lambda: None).result()
    disk.armed = False
    assert ledger.failure is not None
    with pytest.raises(LedgerError, match='writer of the ledger failed and writes no further '
                                          'entries .*No space left on device'):
        open_ledger(path)
    with pytest.raises(LedgerError, match='No space left on device'):
        ledger.close()                    # its own user still has the failure from close
    assert ledger.closed
    fresh = open_ledger(path, durable=False)   # closed: a new writer continues the chain
    assert fresh is not ledger and fresh.failure is None
    fresh.append('start', {})
    fresh.close()
    assert [e.kind for e in read_ledger(path)] == ['start', 'start']


def test_anomaly_node_reports_a_failed_background_write(tmp_path, monkeypatch):
    """The anomaly node's queued entries: a failed write is logged once and in /twin/status."""
    from robot_twin.nodes.anomaly_node import TwinAnomalyNode

    class Logger:
        """Keeps the errors logged."""

        def __init__(self):
            self.errors = []

        def error(self, text):
            self.errors.append(text)

    class Node:
        """What _append and its error handling use of the node."""

        _append = TwinAnomalyNode._append
        _ledger_written = TwinAnomalyNode._ledger_written
        _ledger_failed = TwinAnomalyNode._ledger_failed
        status_values = TwinAnomalyNode.status_values

        def __init__(self, ledger):
            self.ledger, self._ledger_error, self.logger = ledger, '', Logger()
            self.payload_refused = 0
            self.maintenance_accepted = self.maintenance_refused = 0
            self.params = {'payload_mass_kg': 0.0}
            checks = type('C', (), {'lost_in_twin': 0, 'missing_from_robot': 0})
            self.monitor = type('Monitor', (), {'payload': None, 'dropped_samples': 0,
                                                'checks': checks, 'phase': 'monitoring',
                                                'classifier_name': 'rules'})()

        def get_logger(self):
            return self.logger

    path = tmp_path / 'node.ledger'
    ledger = open_ledger(path, durable=False)
    node = Node(ledger)
    node._append('anomaly_raised', {'joint': 'joint1'})
    ledger._worker.submit(lambda: None).result()
    disk = FailingDisk(monkeypatch, ledger._fd)
    disk.armed = True
    for k in range(40):
        node._append('anomaly_raised', {'joint': f'joint{k % 7}'})
    ledger._worker.submit(lambda: None).result()         # the callbacks have run
    assert len(node.logger.errors) == 1, node.logger.errors
    assert 'lifecycle log:' in node.logger.errors[0]
    assert 'No space left on device' in node.logger.errors[0]
    assert node.status_values()['lifecycle_log'] == node.logger.errors[0]
    assert disk.failures == 1          # nothing more was tried after the first failure
    ledger.close()                     # reported through the future: no second report
    assert ledger.closed and len(node.logger.errors) == 1
    assert [e.data['joint'] for e in read_ledger(path)] == ['joint1']


def test_a_rehashed_entry_is_the_suspect_in_verify_and_show(tmp_path, capsys):
    path = tmp_path / 'ledger.jsonl'
    lines = make_log(path, 7)
    obj = json.loads(lines[3])
    obj['data']['score'] = 99.0                  # changed, and its own hash recomputed
    obj['hash'] = entry_hash(obj)
    lines[3] = (canonical_json(obj) + '\n').encode()
    rewrite(path, lines)
    result = verify_ledger(path)
    assert result.problem.index == 3 and result.problem.line == 4
    assert [e.seq for e in result.entries] == [0, 1, 2]     # the suspect is not verified
    assert cli_main(['ledger', 'verify', str(path)]) == 1
    out = capsys.readouterr().out
    assert 'entry 3 (line 4): this entry or its successor (entry 4, line 5) was changed' in out
    assert 'entries 0..2 before it are intact' in out
    assert cli_main(['ledger', 'show', str(path), '--kind', 'anomaly_raised']) == 1
    captured = capsys.readouterr()
    assert [line.split()[0] for line in captured.out.splitlines() if line.startswith('#')] == \
        ['#0', '#1', '#2']
    assert '99' not in captured.out and 'entry 3 (line 4)' in captured.err
    with pytest.raises(LedgerCorrupt, match=r'entry 3 \(line 4\)'):
        Ledger(path)


def test_a_complete_last_entry_without_its_end_of_line_is_kept(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    lines = make_log(path)
    rewrite(path, lines[:-1] + [lines[-1][:-1]])       # only the final newline is missing
    result = verify_ledger(path)
    assert result.torn and 'lacks its end of line but is complete' in result.problem.reason
    with Ledger(path, durable=False) as ledger:
        assert ledger.seq == 5
        ledger.append('start', {})
    entries = read_ledger(path)
    assert [e.kind for e in entries] == ['anomaly_raised'] * 5 + ['start']
    assert path.read_bytes().startswith(b''.join(lines))
    assert not list(tmp_path.glob('ledger.jsonl.cut-*'))


def test_an_edited_last_entry_without_its_end_of_line_is_refused(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    lines = make_log(path)
    edited = lines[-1][:-1].replace(b'"score":5.5', b'"score":0.5')
    assert edited != lines[-1][:-1]
    rewrite(path, lines[:-1] + [edited])
    before = path.read_bytes()
    result = verify_ledger(path)
    assert not result.torn and 'edited, not cut by a crash' in result.problem.reason
    with pytest.raises(LedgerCorrupt, match=r'entry 4 \(line 5\).*hash does not match.*edited'):
        Ledger(path, durable=False)
    assert path.read_bytes() == before                  # not "recovered" away
    assert not list(tmp_path.glob('ledger.jsonl.cut-*'))


def test_a_cut_last_entry_is_kept_beside_the_log(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    lines = make_log(path)
    rewrite(path, lines[:-1] + [lines[-1][:40]])
    with Ledger(path, durable=False):
        pass
    saved = list(tmp_path.glob('ledger.jsonl.cut-*'))
    assert len(saved) == 1 and saved[0].read_bytes() == lines[-1][:40]
    entries = read_ledger(path)
    assert [e.kind for e in entries] == ['anomaly_raised'] * 4 + ['recovered']
    assert entries[-1].data['saved_to'] == str(saved[0])
    assert entries[-1].data['removed_bytes'] == 40 and saved[0].name in \
        entries[-1].data['reason']
    # a second cut later gets a file of its own
    lines = path.read_bytes().splitlines(keepends=True)
    rewrite(path, lines + [b'{"data":{'])
    with Ledger(path, durable=False):
        pass
    assert len(list(tmp_path.glob('ledger.jsonl.cut-*'))) == 2


def test_bridge_goes_on_without_a_lifecycle_log_that_failed(tmp_path, monkeypatch):
    """A failed audit write: the bridge logs it, still governs and sends, and closes quietly."""
    from types import SimpleNamespace

    from robot_twin.nodes.bridge_node import TwinBridgeNode
    from twin_bridge.audit import AuditLog
    from twin_bridge.corrective import AnomalyEvent, CorrectiveProposal
    from twin_bridge.governor import JointLimits, SafetyGovernor

    class Logger:
        """Keeps what was logged, by level."""

        def __init__(self):
            self.lines = {'error': [], 'warning': []}

        def error(self, text):
            self.lines['error'].append(text)

        def warning(self, text):
            self.lines['warning'].append(text)

    names = ('j1', 'j2')
    sent = []

    class Node:
        """What send_corrective and destroy_node use of the bridge."""

        send_corrective = TwinBridgeNode.send_corrective
        _audit_failed = TwinBridgeNode._audit_failed

        def __init__(self, audit):
            self.audit, self.names, self.stream, self.commands_sent = audit, names, None, 0
            self.interface, self.logger = 'trajectory', Logger()
            self.governor = SafetyGovernor(JointLimits(names, [-1.0, -1.0], [1.0, 1.0],
                                                       [1.0, 1.0], [10.0, 10.0]))
            self.intake = SimpleNamespace(
                mapper=SimpleNamespace(position=np.zeros(2), velocity=np.zeros(2),
                                       stamp=np.array([5.0, 5.0])),
                state_ok=lambda now: True)
            self.pub_command = SimpleNamespace(publish=sent.append)
            self.policy = SimpleNamespace(refused=lambda now: None)

        def _now(self):
            return 5.0

        def get_logger(self):
            return self.logger

    path = tmp_path / 'bridge.ledger'
    # the one-process twin: the anomaly node and the bridge share one writer (two users)
    shared = open_ledger(path, durable=False)
    shared.append_async('anomaly_raised', {'joint': 'j1'}).result()
    audit = AuditLog(path)
    assert audit.ledger is shared
    node = Node(audit)
    event = AnomalyEvent('ERROR', 'j1', 'friction_increase', 3.0, 4.0)
    proposal = CorrectiveProposal('trajectory', np.zeros(2), 1.0, 'hold position', event,
                                  np.zeros(2))
    disk = FailingDisk(monkeypatch, audit.ledger._fd, piece=0)
    disk.armed = True
    node.send_corrective(proposal)
    assert node.audit is None and len(node.logger.lines['error']) == 1
    assert 'No space left on device' in node.logger.lines['error'][0]
    assert 'audited in the ROS log only' in node.logger.lines['error'][0]
    # the governor's decision still counts, and is in the ROS log
    assert len(sent) == 1 and node.commands_sent == 1
    assert 'corrective command sent' in node.logger.lines['warning'][0]
    disk.armed = False
    # the bridge released its user of the shared writer (the failure was raised to it: quietly)
    assert not shared.closed and shared._users == 1
    audit.close()                  # a second close of the dropped audit log changes nothing
    assert not shared.closed
    shared.close()                 # the anomaly node's destroy_node: the last user
    assert shared.closed
    # the file, its lock and the writer thread are free: this process can open it again
    again = open_ledger(path, durable=False)
    assert again is not shared
    again.close()
    assert [e.kind for e in read_ledger(path)] == ['anomaly_raised']
