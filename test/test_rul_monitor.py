"""The node-facing RUL monitor on synthetic residual streams with a known friction growth."""
import json
import math

import numpy as np
import pytest
from twin_anomaly.rul_monitor import parse_service_friction, RulConfig, RulMonitor
from twin_sim.friction import FrictionModel, viscous_coulomb

NAMES = ['j1', 'j2', 'j3']
LIMIT = [100.0, 60.0, 30.0]
VISCOUS = [0.5, 0.4, 0.2]
COULOMB = [0.8, 0.6, 0.3]
FRICTION = FrictionModel(NAMES, viscous=VISCOUS, coulomb=COULOMB)
RATE = 500.0
WALL = 1.8e9
# wear of j1: +0.01 N·m/s Coulomb from t = 40 s; F0 = 0.5 * 0.2 + 0.8 = 0.9 N·m, service at
# 1.9 N·m: +1 N·m, reached at t = 140 s
WEAR_START, WEAR_RATE, FAIL_T = 40.0, 0.01, 140.0
CONFIG = {'sample_period_s': 0.004, 'health_interval_s': 5.0, 'baseline_duration_s': 20.0,
          'min_history_s': 20.0, 'time_scale': 3600.0, 'service_friction_nm': 'j1=1.9',
          'warn_horizon_hours': 60.0, 'error_horizon_hours': 20.0,
          'operating_hours_per_day': 24.0}


def _monitor(**overrides):
    return RulMonitor(NAMES, LIMIT, FRICTION, dict(CONFIG, **overrides))


def _feed(monitor, t0, t1, *, wear=True, report_every=1.0, seed=0, moving=True):
    """Feed samples in [t0, t1) with the residual a friction change leaves; return reports."""
    rng = np.random.default_rng([seed, int(t0 * 1000)])
    t = np.arange(t0, t1, 1.0 / RATE)
    qd = np.stack([0.5 * np.sin(2 * np.pi * t / 5.0), 0.4 * np.sin(2 * np.pi * t / 3.0),
                   0.3 * np.cos(2 * np.pi * t / 4.0)], axis=1)
    if not moving:
        qd[:] = 0.0
    added = np.zeros_like(qd)
    if wear:
        added[:, 0] = WEAR_RATE * np.maximum(t - WEAR_START, 0.0)
    res = viscous_coulomb(qd, 0.0, added) + 0.05 * rng.standard_normal(qd.shape)
    effort = 5.0 * np.sin(t)[:, None] + res
    reports = []
    next_report = t0 + report_every
    for k in range(t.size):
        monitor.update(t[k], None, qd[k], effort[k], res[k])
        if report_every and t[k] >= next_report:
            reports.append((t[k], monitor.report(WALL + t[k])))
            next_report += report_every
    return reports


def test_phases_messages_and_a_converging_rul():
    mon = _monitor()
    reports = _feed(mon, 0.0, 130.0)
    first = reports[0][1]
    assert first.phase == 'baseline' and first.level == 'OK'
    assert first.joints[0].message.startswith('collecting evidence: health baseline')
    during_history = [r for t, r in reports if 25.0 < t < 38.0]
    assert during_history and all('collecting evidence' in r.joints[1].message and
                                  r.phase == 'monitoring' for r in during_history)
    ledger = [e for _, r in reports for e in r.ledger]
    baseline = [e for e in ledger if e['kind'] == 'health_baseline']
    assert len(baseline) == 1
    assert baseline[0]['friction_nm'][0] == pytest.approx(0.9, abs=0.03)
    assert baseline[0]['friction_limit_nm'] == pytest.approx([1.9, 1.36, 0.68], abs=0.06)
    t_last, last = reports[-1]
    j1, j2, j3 = last.joints
    assert j2.message == j3.message == 'no degradation seen'
    assert j2.level == j3.level == 'OK' and math.isnan(j2.rul_hours)
    true = FAIL_T - t_last                       # time_scale 3600: one second is one hour
    assert j1.rul_lower_hours <= true <= j1.rul_upper_hours
    assert j1.rul_hours == pytest.approx(true, rel=0.15)
    assert j1.kind == 'friction' and j1.recommended_action == 'lubricate'
    assert j1.level == 'ERROR' and j1.due_by == '2027-01-15'
    assert j1.health_index == pytest.approx(1.0 - (t_last - WEAR_START) / 100.0, abs=0.05)
    errors = [abs(r.joints[0].rul_hours - (FAIL_T - t)) for t, r in reports
              if math.isfinite(r.joints[0].rul_hours)]
    assert errors and errors[-1] < errors[0]
    advice = [e for e in ledger if e['kind'] == 'rul_advice' and e['joint'] == 'j1']
    levels = [e['level'] for e in advice]
    assert 'WARN' in levels and levels[-1] == 'ERROR'
    assert levels.index('WARN') < levels.index('ERROR')
    json.dumps(ledger, allow_nan=False)         # strict JSON, ready for the lifecycle log
    entries = last.status_entries()
    assert [e.name for e in entries] == ['twin/rul/j1', 'twin/rul/j2', 'twin/rul/j3']
    assert {'rul_hours', 'rul_lower_hours', 'rul_upper_hours', 'health_index',
            'recommended_action', 'due_by'} <= set(entries[0].values)
    assert last.level == 'ERROR' and last.message.startswith('j1')


def test_nominal_stream_never_alarms():
    mon = _monitor()
    reports = _feed(mon, 0.0, 150.0, wear=False, seed=7)
    for _, r in reports:
        assert r.level == 'OK' and r.derating.speed_scale == 1.0
        assert all(math.isnan(j.rul_hours) for j in r.joints)
    assert all(j.message == 'no degradation seen' for j in reports[-1][1].joints)
    assert all(j.health_index > 0.9 for j in reports[-1][1].joints)


def test_restart_continues_the_history(tmp_path):
    path = str(tmp_path / 'health.jsonl')
    mon = _monitor(log_path=path)
    before = _feed(mon, 0.0, 82.5)[-1][1]          # mid-epoch: the open epoch is lost
    mon.close()
    again = _monitor(log_path=path)
    report = again.report(WALL + 82.5)
    assert report.phase == 'monitoring'
    assert report.operating_hours == pytest.approx(mon.operating_hours, abs=1e-9)
    assert any(e['kind'] == 'rul_log' and 'continued' in e['message'] for e in report.ledger)
    assert not any(e['kind'] == 'health_baseline' for e in report.ledger)
    # the same history gives the same estimate, counted from the same point
    assert report.joints[0].rul_hours + report.operating_hours == pytest.approx(
        before.joints[0].rul_hours + before.operating_hours)
    assert report.joints[0].health_index == pytest.approx(before.joints[0].health_index)
    t_end, later = _feed(again, 82.5, 120.0)[-1]
    true = FAIL_T - t_end
    assert later.joints[0].rul_lower_hours <= true <= later.joints[0].rul_upper_hours
    assert later.joints[0].rul_hours == pytest.approx(true, rel=0.15)
    again.close()


def test_corrupt_or_missing_log_never_stops_the_monitor(tmp_path):
    path = tmp_path / 'health.jsonl'
    path.write_bytes(b'\x00not json at all\n')
    mon = _monitor(log_path=str(path))
    report = mon.report(WALL)
    assert any(e['kind'] == 'rul_log' and 'damaged' in e['message'] for e in report.ledger)
    assert list(tmp_path.glob('health.jsonl.corrupt-*'))
    _feed(mon, 0.0, 30.0)
    mon.close()
    blocked = tmp_path / 'a_file'
    blocked.write_text('')
    mon = _monitor(log_path=str(blocked / 'health.jsonl'))
    report = mon.report(WALL)
    assert any(e['level'] == 'ERROR' and 'without a health history' in e['message']
               for e in report.ledger)
    assert _feed(mon, 0.0, 30.0)[-1][1].phase == 'monitoring'


def test_standstill_and_gaps_are_not_operating_time():
    mon = _monitor(block_s=0.1)                              # the open block is not counted
    _feed(mon, 0.0, 10.0, report_every=0)
    hours = mon.report(WALL).operating_hours
    assert hours == pytest.approx(10.0, abs=0.15)          # time_scale: 1 s = 1 h
    _feed(mon, 10.0, 20.0, moving=False, report_every=0)
    hours = mon.report(WALL).operating_hours
    assert hours == pytest.approx(10.0, abs=0.15)          # standing still: no hours
    _feed(mon, 30.0, 35.0, report_every=0)                 # 10 s gap before it
    assert mon.report(WALL).operating_hours == pytest.approx(hours + 5.0, abs=0.15)


def test_full_buffer_is_processed_without_reports_and_clock_jumps_are_survived():
    lazy = _monitor(buffer_s=1.0)
    _feed(lazy, 0.0, 60.0, report_every=0)
    assert lazy.overflows > 10
    busy = _monitor()
    _feed(busy, 0.0, 60.0, report_every=0.5)
    assert lazy.report(WALL).joints[0].health_index == pytest.approx(
        busy.report(WALL).joints[0].health_index, abs=1e-6)
    _feed(lazy, 0.0, 5.0, report_every=0)                  # the robot clock restarted
    assert lazy.report(WALL).operating_hours > 60.0
    lazy.update(math.nan, None, np.ones(3), np.ones(3), np.ones(3))
    assert lazy.rejected == 1 and lazy.report(WALL).operating_hours > 60.0


def test_derating_reaches_the_maintenance_window():
    mon = _monitor(next_maintenance_hours=160.0)            # counter at ~109 h: 51 h away
    report = _feed(mon, 0.0, 110.0)[-1][1]
    der = report.derating
    assert der.joint == 'j1' and 0.3 <= der.speed_scale < 1.0
    lower = report.joints[0].rul_lower_hours
    assert lower / der.speed_scale == pytest.approx(der.window_hours, rel=0.02)
    assert der.reaches_window and 'maintenance window' in der.reason


def test_config_is_validated_with_names():
    with pytest.raises(ValueError, match='health_interval_s'):
        RulConfig(health_interval_s=0.0)
    with pytest.raises(ValueError, match='unknown RUL setting'):
        RulConfig.from_mapping({'health_intervals': 1.0})
    with pytest.raises(ValueError, match='next_maintenance_date'):
        RulConfig(next_maintenance_date='next tuesday')
    with pytest.raises(ValueError, match='min_epochs'):
        RulConfig(min_epochs=2.5)
    with pytest.raises(ValueError, match='effort_limit'):
        RulMonitor(NAMES, [1.0, 2.0], FRICTION)
    with pytest.raises(ValueError, match='friction model joints'):
        RulMonitor(NAMES, LIMIT, FrictionModel(['a', 'b', 'c']))
    np.testing.assert_array_equal(parse_service_friction('j3=2, j1 = 1.5', NAMES),
                                  [1.5, np.nan, 2.0])
    for bad in ('j9=1', 'j1', 'j1=abc', 'j1=-1'):
        with pytest.raises(ValueError, match='service_friction_nm'):
            parse_service_friction(bad, NAMES)


def test_config_from_node_parameters():
    params = {'rul.enabled': True, 'rul.health_interval_s': 30.0, 'rul.time_scale': 2.0,
              'urdf_path': '', 'commissioning_duration_s': 30.0}
    config = RulConfig.from_parameters(params)
    assert config.health_interval_s == 30.0 and config.time_scale == 2.0
    assert config.min_history_s == RulConfig().min_history_s


def test_long_histories_are_binned_for_the_trend():
    from twin_anomaly.rul_monitor import _bin
    t = np.arange(1000.0)
    d = np.stack([t, -t, np.full_like(t, np.nan)], axis=1)[:, None, :]     # (N, 1, 3)
    tb, db = _bin(t, d, 100)
    assert tb.shape == (100,) and db.shape == (100, 1, 3)
    np.testing.assert_allclose(tb, np.arange(100) * 10 + 4.5)
    np.testing.assert_allclose(db[:, 0, 0], tb)
    assert np.all(np.isnan(db[:, 0, 2]))
    assert _bin(t[:50], d[:50], 100)[0] is not None
    few = _monitor(max_trend_points=20)        # still converges on 20 bins of its epochs
    t_end, last = _feed(few, 0.0, 130.0)[-1]
    j1 = last.joints[0]
    assert j1.rul_lower_hours <= FAIL_T - t_end <= j1.rul_upper_hours


def test_one_odd_epoch_neither_bends_the_trend_nor_fails_the_joint():
    from twin_anomaly.rul_monitor import _despike, _recent
    line = np.linspace(0.0, 0.5, 8)
    np.testing.assert_allclose(_despike(line), line)            # a trend passes unchanged
    step = line[1] - line[0]
    for where in (4, -1):                       # inside the history, and the newest epoch
        spiky = line.copy()
        spiky[where] = 5.0
        assert np.abs(_despike(spiky) - line).max() <= step + 1e-12
    assert _despike(np.array([0.0, 0.5, 3.0, 4.0]))[-1] == 2.0  # far beyond: clipped
    d = np.array([[0.0, np.nan, 0.1], [0.0, np.nan, 0.1], [6.0, np.nan, 0.2]])
    np.testing.assert_allclose(_recent(d), [0.0, np.nan, 0.1])
    np.testing.assert_allclose(_recent(d[-1:]), [0.0, np.nan, 0.0])   # missing ones are 0


def test_a_joint_without_an_effort_limit_is_watched_without_a_torque_margin():
    # a URDF joint without <limit effort> (a continuous wrist): the twin must start, and the
    # joint's wear is still followed; only its torque margin cannot be judged (it was a
    # ValueError that stopped the whole twin)
    for bad in ([100.0, math.nan, 30.0], [100.0, 0.0, 30.0], [100.0, -math.inf, 30.0]):
        with pytest.raises(ValueError, match='effort_limit'):
            RulMonitor(NAMES, bad, FRICTION)
    mon = RulMonitor(NAMES, [100.0, math.inf, 30.0], FRICTION, CONFIG)
    reports = _feed(mon, 0.0, 130.0)
    last = reports[-1][1]
    assert all(math.isfinite(j.health_index) for j in last.joints), last.joints
    assert last.joints[0].health_index < 0.9              # j1's wear is seen as before
    assert last.joints[1].health_index > 0.95             # j2: no limit, nothing worn
    assert last.joints[1].level == 'OK', last.joints[1]
