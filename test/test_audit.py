"""Tests of the audit log: round trip through a file and a stream, strict JSON, flushing."""
import io
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from twin_bridge.audit import AuditLog, read_audit_log
from twin_bridge.governor import JointCommand, JointLimits, SafetyGovernor, TrajectoryCommand


def governor():
    lim = JointLimits(('j1', 'j2'), [-1.0, -1.0], [1.0, 1.0], [1.0, 1.0], [5.0, 5.0])
    return SafetyGovernor(lim, max_rate_hz=10.0, horizon_s=1.0)


def test_round_trip_through_a_file(tmp_path):
    g = governor()
    anomaly = SimpleNamespace(id='ep-3', fault_type='friction_increase', joint='j2', score=7.5,
                              level='ERROR', since=11.25, unrelated='not logged')
    clamped = g.govern(JointCommand('position', [3.0, 0.2]), 12.0, True, np.zeros(2))
    refused = g.govern(JointCommand('position', [math.nan, 0.0]), 12.5, True, np.zeros(2))
    traj = g.govern(TrajectoryCommand([(0.5, [0.1, 0.0], [0.0, 0.0])]), 13.0, True, np.zeros(2))
    path = tmp_path / 'logs' / 'audit.jsonl'
    with AuditLog(path) as log:
        log.record(clamped, stamp=11.999, anomaly=anomaly, wall_time=1000.0)
        # Flushed line by line: readable while the log is still open.
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
    # Strict JSON on disk: no bare NaN/Infinity tokens that other tools reject.
    for line in path.read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f'non-strict JSON {c}'))
    # Appending: a second log on the same file keeps the old lines.
    with AuditLog(str(path)) as log:
        log.record(refused)
    assert len(read_audit_log(path)) == 4


def test_stream_target_is_not_closed_and_malformed_commands_are_logged():
    buf = io.StringIO()
    log = AuditLog(buf)
    g = governor()
    d = g.govern(SimpleNamespace(kind='position', values=object(), joints=None), 1.0, True,
                 np.zeros(2))
    entry = log.record(d, wall_time=5.0)
    assert entry['allowed'] is False and entry['cause'] == 'malformed'
    assert entry['requested']['values'].startswith('<object')
    d = g.govern('garbage', 2.0, True)
    entry = log.record(d, wall_time=6.0)
    assert entry['kind'] is None and entry['requested'] == {'unreadable': "'garbage'"}
    log.close()
    assert not buf.closed
    entries = read_audit_log(io.StringIO(buf.getvalue()))
    assert [e['wall_time'] for e in entries] == [5.0, 6.0]


def test_reader_errors_name_the_line(tmp_path):
    path = tmp_path / 'bad.jsonl'
    path.write_text('{"allowed": true}\n\nnot json\n')
    with pytest.raises(ValueError, match='line 3'):
        read_audit_log(path)
    with pytest.raises(ValueError, match='line 1 is not a JSON object'):
        read_audit_log(['[1, 2]'])
    with pytest.raises(TypeError, match='file path or a text stream'):
        AuditLog(42)
