"""Prescriptive maintenance: levels from horizons, actions, due dates and the derating."""
import datetime
import math

import pytest
from twin_anomaly.maintenance import advise, derating, due_date, MaintenancePolicy
from twin_anomaly.rul import NO_DEGRADATION, RulEstimate

NOW = datetime.datetime(2027, 1, 15, 12, tzinfo=datetime.timezone.utc).timestamp()
POLICY = MaintenancePolicy(warn_horizon_hours=500.0, error_horizon_hours=48.0,
                           replace_below_health=0.1, min_speed_scale=0.3)


def _rul(median, lower, upper, degradation=0.5):
    return RulEstimate(rul_hours=median, lower_hours=lower, upper_hours=upper,
                       degradation=degradation, drift_per_hour=0.001, probability=1.0,
                       points=20)


def test_levels_follow_the_lower_bound_and_the_horizons():
    ok = advise('joint3', _rul(900.0, 600.0, 1200.0), 'friction', 0.7, POLICY, NOW, 16.0)
    warn = advise('joint3', _rul(900.0, 400.0, 1200.0), 'friction', 0.7, POLICY, NOW, 16.0)
    error = advise('joint3', _rul(100.0, 40.0, 150.0), 'friction', 0.3, POLICY, NOW, 16.0)
    assert (ok.level, ok.action, ok.due_by) == ('OK', 'none', '')
    assert 'RUL 900 h' in ok.message
    assert (warn.level, warn.action) == ('WARN', 'lubricate')
    assert warn.due_by == '2027-02-09'           # 400 h at 16 h a day = 25 days
    assert error.level == 'ERROR' and error.due_by == '2027-01-18'   # 2.5 days
    assert 'lubricate by 2027-01-18' in error.message
    assert error.evidence['rul_lower_hours'] == 40.0 and error.evidence['kind'] == 'friction'


def test_actions_by_evidence():
    soon = _rul(30.0, 20.0, 40.0)
    assert advise('j', soon, 'friction', 0.05, POLICY, NOW, 24.0).action == 'replace'
    assert advise('j', soon, 'residual', 0.5, POLICY, NOW, 24.0).action == 'inspect'
    assert advise('j', soon, 'torque_margin', 0.5, POLICY, NOW, 24.0).action == 'reduce load'
    failed = advise('j', _rul(0.0, 0.0, 0.0, 1.2), 'friction', 0.0, POLICY, NOW, 24.0)
    assert failed.level == 'ERROR' and failed.action == 'replace'
    assert 'at the failure limit' in failed.message


def test_no_number_is_ok_unless_an_anomaly_asks():
    none = RulEstimate(reason=NO_DEGRADATION)
    quiet = advise('j', none, '', 1.0, POLICY, NOW, 24.0)
    assert (quiet.level, quiet.action, quiet.message) == ('OK', 'none', NO_DEGRADATION)
    alarm = advise('j', none, '', 1.0, POLICY, NOW, 24.0, anomaly=('ERROR', 'torque_saturation'))
    assert (alarm.level, alarm.action) == ('WARN', 'reduce load')
    assert alarm.due_by == '2027-01-15'
    assert advise('j', none, '', 1.0, POLICY, NOW, 24.0,
                  anomaly=('WARN', 'collision_force')).level == 'OK'


def test_due_date():
    assert due_date(NOW, 0.0, 8.0) == '2027-01-15'
    assert due_date(NOW, 80.0, 8.0) == '2027-01-25'
    assert due_date(NOW, 1e12, 1.0) > '2900'            # far, never an overflow


def test_derating_stretches_the_rul_to_the_window():
    est = _rul(300.0, 200.0, 400.0)
    d = derating('joint3', est, 'friction', 400.0, POLICY)
    assert d.speed_scale == pytest.approx(0.5) and d.reaches_window
    # at that speed the wear rate halves: the lower bound doubles, exactly to the window
    assert 200.0 / d.speed_scale == pytest.approx(400.0)
    quad = derating('joint3', est, 'friction', 400.0,
                    MaintenancePolicy(wear_speed_exponent=2.0, min_speed_scale=0.3))
    assert quad.speed_scale == pytest.approx(math.sqrt(0.5))
    # already derated to 0.5 while this trend was measured: the scale is absolute
    again = derating('joint3', _rul(500.0, 400.0, 600.0), 'friction', 400.0, POLICY, 0.5)
    assert again.speed_scale == pytest.approx(0.5)
    relaxed = derating('joint3', _rul(900.0, 800.0, 1000.0), 'friction', 400.0, POLICY, 0.5)
    assert relaxed.speed_scale == 1.0


def test_derating_limits_and_cases_without_one():
    short = derating('joint3', _rul(20.0, 10.0, 30.0), 'friction', 400.0, POLICY)
    assert short.speed_scale == 0.3 and not short.reaches_window
    assert 'service before the window' in short.reason
    assert derating('j', _rul(20.0, 10.0, 30.0), 'torque_margin', 400.0, POLICY).speed_scale \
        == 1.0
    assert derating('j', RulEstimate(reason=NO_DEGRADATION), '', 400.0, POLICY).speed_scale \
        == 1.0
    assert derating('j', _rul(20.0, 10.0, 30.0), 'friction', math.nan, POLICY).speed_scale \
        == 1.0


def test_bad_policy_is_refused():
    with pytest.raises(ValueError, match='error_horizon_hours'):
        MaintenancePolicy(warn_horizon_hours=10.0, error_horizon_hours=20.0)
    with pytest.raises(ValueError, match='min_speed_scale'):
        MaintenancePolicy(min_speed_scale=0.0)
