"""Tests of the audit log: governor decisions as hash-chained ledger entries, round trip."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from twin_bridge.audit import AuditLog, read_audit_log
from twin_bridge.governor import JointCommand, JointLimits, SafetyGovernor, TrajectoryCommand
from twin_bridge.ledger import Ledger, LedgerCorrupt, read_ledger, verify_ledger


def governor():
    lim = JointLimits(('j1', 'j2'), [-1.0, -1.0], [1.0, 1.0], [1.0, 1.0], [5.0, 5.0])
    return SafetyGovernor(lim, max_rate_hz=10.0, horizon_s=1.0)


def test_round_trip_through_the_ledger(tmp_path):
    g = governor()
    anomaly = SimpleNamespace(id='ep-3', fault_type='friction_increase', joint='j2', score=7.5,
                              level='ERROR', since=11.25, unrelated='not logged')
    clamped = g.govern(JointCommand('position', [3.0, 0.2]), 12.0, True, np.zeros(2))
    refused = g.govern(JointCommand('position', [math.nan, 0.0]), 12.5, True, np.zeros(2))
    traj = g.govern(TrajectoryCommand([(0.5, [0.1, 0.0], [0.0, 0.0])]), 13.0, True, np.zeros(2))
    path = tmp_path / 'logs' / 'ledger.jsonl'
    with AuditLog(path) as log:
        log.record(clamped, stamp=11.999, anomaly=anomaly, wall_time=1000.0)
        # durable entry by entry: readable (and verified) while the log is still open
        assert len(read_audit_log(path)) == 1
        log.record(refused, stamp=12.499, anomaly={'id': 4, 'score': math.inf})
        log.record(traj, stamp=12.999)
    assert log.lines_written == 3
    entries = read_audit_log(path)
    assert len(entries) == 3
    first, second, third = entries
    assert first['wall_time'] == 1000.0 and first['time'] == 12.0 and first['stamp'] == 11.999
    assert first['kind'] == 'position' and first['joints'] == ['j1', 'j2']
    assert first['allowed'] is True and first['clamped'] is True and first['cause'] is None
    assert first['requested'] == {'values': [3.0, 0.2], 'duration_s': None}
    assert first['sent'] == {'values': [1.0, 0.2], 'duration_s': None}
    assert first['reasons'] == clamped.reasons and "'j1' position 3 -> 1" in first['reasons'][0]
    assert first['anomaly'] == {'id': 'ep-3', 'fault_type': 'friction_increase', 'joint': 'j2',
                                'score': 7.5, 'level': 'ERROR', 'since': 11.25}
    assert second['allowed'] is False and second['sent'] is None
    assert second['cause'] == 'nonfinite' and 'NaN' in second['reasons'][0]
    assert math.isnan(second['requested']['values'][0])       # NaN survives the round trip
    assert second['anomaly'] == {'id': 4, 'score': math.inf}
    assert third['kind'] == 'trajectory' and third['anomaly'] is None
    assert third['requested'] == {'points': [{'time_from_start': 0.5, 'positions': [0.1, 0.0],
                                              'velocities': [0.0, 0.0]}]}
    assert third['sent']['points'][0]['time_from_start'] == 0.5
    # strict JSON on disk (no bare NaN/Infinity tokens), one chained ledger entry per line
    for line in path.read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f'non-strict JSON {c}'))
    assert [e.kind for e in read_ledger(path)] == ['command'] * 3
    # a second log on the same file continues the chain
    with AuditLog(str(path)) as log:
        log.record(refused)
    assert len(read_audit_log(path)) == 4 and verify_ledger(path).ok


def test_audit_shares_a_ledger_and_skips_other_entries(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    with Ledger(path) as ledger:
        ledger.append('commissioning_finished', {'blocks': 400})
        log = AuditLog(ledger)
        g = governor()
        entry = log.record(g.govern(SimpleNamespace(kind='position', values=object(),
                                                    joints=None), 1.0, True, np.zeros(2)),
                           wall_time=5.0)
        assert entry['allowed'] is False and entry['cause'] == 'malformed'
        assert entry['requested']['values'].startswith('<object')
        entry = log.record(g.govern('garbage', 2.0, True), wall_time=6.0)
        assert entry['kind'] is None and entry['requested'] == {'unreadable': "'garbage'"}
        log.close()
        assert not ledger.closed                 # the audit log does not close a given ledger
        ledger.append('anomaly_cleared', {'joint': 'j1'})
    assert [e['wall_time'] for e in read_audit_log(path)] == [5.0, 6.0]
    assert [e.kind for e in read_ledger(path)] == ['commissioning_finished', 'command',
                                                   'command', 'anomaly_cleared']


def test_two_audit_logs_of_one_process_share_the_writer(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    g = governor()
    a, b = AuditLog(path), AuditLog(path)          # e.g. two nodes of one container process
    assert a.ledger is b.ledger
    a.record(g.govern(JointCommand('position', [0.1, 0.1]), 1.0, True, np.zeros(2)))
    a.close()
    b.record(g.govern(JointCommand('position', [0.2, 0.1]), 2.0, True, np.zeros(2)))
    b.close()
    assert b.ledger.closed
    assert [e['time'] for e in read_audit_log(path)] == [1.0, 2.0]


def test_reader_names_a_changed_entry_and_bad_targets(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    g = governor()
    with AuditLog(path) as log:
        for k in range(3):
            log.record(g.govern(JointCommand('position', [0.1 * k, 0.0]), float(k), True,
                                np.zeros(2)))
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace('"allowed":true', '"allowed":false')
    path.write_text(''.join(lines))
    with pytest.raises(LedgerCorrupt, match=r'entry 1 \(line 2\).*changed'):
        read_audit_log(path)
    with pytest.raises(TypeError, match='ledger file path or a twin_bridge.ledger.Ledger'):
        AuditLog(42)


def test_a_line_being_written_is_not_read_yet(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    g = governor()
    with AuditLog(path) as log:
        log.record(g.govern(JointCommand('position', [0.1, 0.0]), 1.0, True, np.zeros(2)))
    with open(path, 'a') as f:
        f.write('{"data":{"allowed":true')     # what a reader may see mid-write
    assert len(read_audit_log(path)) == 1
