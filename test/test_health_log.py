"""The health log: append-only JSON lines with checksums, crash recovery, corrupt files."""
import json
import math
import os
from pathlib import Path
import signal
import subprocess
import sys

import pytest
from twin_anomaly.health_log import decode_line, encode_record, HealthLog, HealthLogError

JOINTS = ['joint1', 'joint2']
ROOT = Path(__file__).resolve().parents[1]


def _fill(path, count):
    with HealthLog(path, JOINTS) as log:
        for i in range(count):
            log.append({'kind': 'health', 'value': float(i), 'nan': math.nan})
    return path


def test_encode_decode_round_trip_and_checksum():
    line = encode_record({'kind': 'health', 'x': 1.5, 'bad': math.inf, 'list': [1, None]})
    record = decode_line(line)
    assert record == {'kind': 'health', 'x': 1.5, 'bad': None, 'list': [1, None]}
    assert decode_line(line[:-1]) is None                      # no newline: cut short
    assert decode_line(line.replace('1.5', '1.6')) is None     # changed: checksum fails
    with pytest.raises(ValueError, match='crc'):
        encode_record({'crc': 'x'})


def test_new_file_with_warning_then_continued(tmp_path):
    path = tmp_path / 'sub' / 'health.jsonl'
    with HealthLog(path, JOINTS) as log:
        assert any('not found' in w for w in log.warnings)
        assert log.records == []
        log.append({'kind': 'health', 'v': 1})
        log.append({'kind': 'health', 'v': 2})
    with HealthLog(path, JOINTS) as log:
        assert log.warnings == []
        assert [r['v'] for r in log.records] == [1, 2]
        assert [r['seq'] for r in log.records] == [1, 2]
        log.append({'kind': 'health', 'v': 3})
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[0])['kind'] == 'header'
    assert [json.loads(x)['seq'] for x in lines] == [0, 1, 2, 3]


def test_cut_last_record_is_dropped_and_file_repaired(tmp_path):
    path = _fill(tmp_path / 'h.jsonl', 5)
    data = path.read_bytes()
    path.write_bytes(data[:-17])               # a write cut in the middle of the last record
    with HealthLog(path, JOINTS) as log:
        assert len(log.records) == 4
        assert any('cut short' in w for w in log.warnings)
        log.append({'kind': 'health', 'value': 99.0})
    with HealthLog(path, JOINTS) as log:
        assert log.warnings == []
        assert [r['seq'] for r in log.records] == [1, 2, 3, 4, 5]
        assert log.records[-1]['value'] == 99.0


def test_corrupt_middle_is_kept_aside_and_intact_prefix_salvaged(tmp_path):
    path = _fill(tmp_path / 'h.jsonl', 6)
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace('"value":2.0', '"value":2.5')   # bit rot / an edit
    path.write_text(''.join(lines))
    with HealthLog(path, JOINTS) as log:
        assert [r['value'] for r in log.records] == [0.0, 1.0]
        assert any('damaged at line 4' in w and 'corrupt-' in w for w in log.warnings)
    aside = list(tmp_path.glob('h.jsonl.corrupt-*'))
    assert len(aside) == 1 and aside[0].read_text() == ''.join(lines)
    with HealthLog(path, JOINTS) as log:
        assert log.warnings == [] and len(log.records) == 2


@pytest.mark.parametrize('content', [b'', b'garbage\n', b'\x00\xff\xfe' * 100,
                                     b'{"kind": "header"}\n'])
def test_unreadable_file_never_raises(tmp_path, content):
    path = tmp_path / 'h.jsonl'
    path.write_bytes(content)
    with HealthLog(path, JOINTS) as log:
        assert log.records == [] and log.warnings
        log.append({'kind': 'health'})
    assert len(list(tmp_path.glob('h.jsonl.corrupt-*'))) == 1


def test_other_joints_start_a_new_log(tmp_path):
    path = _fill(tmp_path / 'h.jsonl', 3)
    with HealthLog(path, ['a', 'b', 'c']) as log:
        assert log.records == []
        assert any('written for joints' in w for w in log.warnings)


def test_second_writer_is_refused(tmp_path):
    path = tmp_path / 'h.jsonl'
    with HealthLog(path, JOINTS):
        with pytest.raises(HealthLogError, match='in use by another process'):
            HealthLog(path, JOINTS)
    with HealthLog(path, JOINTS):             # released on close
        pass


def test_unwritable_place_is_a_clear_error(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(HealthLogError, match='cannot use health log'):
        HealthLog(blocker / 'h.jsonl', JOINTS)


_WRITER = """
import sys
from twin_anomaly.health_log import HealthLog
log = HealthLog(sys.argv[1], ['joint1', 'joint2'])
start = len(log.records)
i = 0
while True:
    log.append({'kind': 'health', 'writer': int(sys.argv[2]), 'i': i, 'pad': 'x' * 20000})
    print(start + i + 1, flush=True)    # acknowledged: appended and synced
    i += 1
"""


def test_sigkill_while_writing_loses_at_most_the_unacknowledged_record(tmp_path):
    path = tmp_path / 'h.jsonl'
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get('PYTHONPATH', ''))
    acknowledged = 0
    for writer, wait_for in enumerate((5, 17, 3, 40, 11)):
        proc = subprocess.Popen([sys.executable, '-c', _WRITER, str(path), str(writer)],
                                stdout=subprocess.PIPE, text=True, env=env)
        try:
            for _ in range(wait_for):
                line = proc.stdout.readline()
                assert line, 'the writer died before it was killed'
                acknowledged = int(line)
            os.kill(proc.pid, signal.SIGKILL)     # most likely inside the next append
        finally:
            proc.kill()
            proc.wait(timeout=30)
            proc.stdout.close()
        with HealthLog(path, JOINTS) as log:
            seqs = [r['seq'] for r in log.records]
            assert seqs == list(range(1, len(seqs) + 1))
            # everything acknowledged is there; at most the one being written is beyond it
            assert acknowledged <= len(seqs) <= acknowledged + 1
            assert not any('damaged' in w for w in log.warnings)
            assert log.records[-1]['writer'] == writer
