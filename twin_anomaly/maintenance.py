"""
Prescriptive maintenance: from a joint's RUL and health evidence to advice and derating (ROS-free).

:func:`advise` turns the RUL estimate of a joint (the kind of evidence that fails first, see
:mod:`twin_anomaly.rul`), its health index and, optionally, the fault type the anomaly detector
names for it into an :class:`Advice`: a level, a recommended action, a due date and the
evidence behind it.

Levels come from configured horizons in operating hours, on the *lower* end of the RUL
interval (the planner is warned while failure is merely possible within the horizon): ERROR
when the joint has reached its failure limit or the lower bound is within
``error_horizon_hours``; WARN within ``warn_horizon_hours``; OK otherwise. The health index
drives the level too, with or without a number (a joint far worn whose degradation does not grow
has no RUL, and is not healthy): ERROR at or below ``replace_below_health``, WARN below
``warn_below_health``; the worse of the two levels counts. Without a number and with a health
index above ``warn_below_health`` (no degradation seen, collecting evidence) the level is OK.
"At the failure limit" is said only when the health index is 0, i.e. when the recent evidence
(not a trend's extrapolation) has reached the limit.

Actions, by the evidence that drives the RUL:

==================  ===================================================================
friction            ``lubricate``; ``replace`` once the health index is at or below
                    ``replace_below_health``
residual            ``inspect`` (wear that friction does not explain: backlash, a damaged
                    gear, a loose part)
torque_margin       ``reduce load`` (the drive works too close to its effort limit)
==================  ===================================================================

An anomaly at level ERROR on the joint without an RUL alarm gives WARN and the action of the
wear evidence when the joint has some (``kind`` named: its degradation is above the noise), else
the action of the fault type: ``inspect`` (``reduce load`` for ``torque_saturation`` and
``payload_change``, ``lubricate`` for ``friction_increase``). The fault type should be the one
latched for the anomaly episode (:class:`twin_anomaly.rul_monitor.RulMonitor` does), not the
classifier's label of the moment.

Due date: today plus the RUL's lower bound converted to calendar days with the robot's
operating hours per day (configured, or measured from the history).

Derating (:func:`derating`): by Archard's law the wear per operating hour grows with sliding
speed, ``rate ~ speed^p`` (``p = wear_speed_exponent``, 1 for abrasion), so slowing the joint
by a factor ``s`` stretches the RUL to ``RUL / s^p``. The speed scale that makes the RUL's lower
bound reach the next planned maintenance window is ``s = s_0 (RUL_lower / window)^(1/p)``,
where ``s_0`` is the scale in force while the trend was measured (so an applied derating is
neither undone nor compounded when the next estimate sees the slower wear), clamped to
``[min_speed_scale, 1]``. The governor multiplies its velocity limit scale by it.
"""
from dataclasses import dataclass, field
import datetime
import math

__all__ = ['ACTIONS', 'Advice', 'Derating', 'LEVELS', 'MaintenancePolicy', 'advise',
           'derating', 'due_date']

#: Report levels, as in diagnostic_msgs/DiagnosticStatus.
LEVELS = ('OK', 'WARN', 'ERROR')
#: Recommended actions.
ACTIONS = ('none', 'inspect', 'lubricate', 'replace', 'reduce load')
_ACTION_BY_KIND = {'friction': 'lubricate', 'residual': 'inspect', 'torque_margin': 'reduce load'}
_ACTION_BY_FAULT = {'friction_increase': 'lubricate', 'torque_saturation': 'reduce load',
                    'payload_change': 'reduce load'}


@dataclass(frozen=True)
class MaintenancePolicy:
    """
    Settings of the advice and the derating (from configuration).

    Attributes
    ----------
    warn_horizon_hours, error_horizon_hours : float
        Operating hours of RUL (lower bound) below which the level is WARN / ERROR.
    replace_below_health : float
        Health index at or below which worn friction calls for ``replace``, and any joint is at
        least ERROR, in [0, 1].
    warn_below_health : float
        Health index below which a joint is at least WARN (with or without an RUL number), in
        [replace_below_health, 1].
    operating_hours_per_day : float
        Operating hours per calendar day for due dates; 0: measured from the history.
    wear_speed_exponent : float
        ``p`` in ``wear rate ~ speed^p`` (> 0).
    min_speed_scale : float
        Lowest speed scale a derating may ask for, in (0, 1].

    """

    warn_horizon_hours: float = 500.0
    error_horizon_hours: float = 48.0
    replace_below_health: float = 0.1
    warn_below_health: float = 0.5
    operating_hours_per_day: float = 0.0
    wear_speed_exponent: float = 1.0
    min_speed_scale: float = 0.3

    def __post_init__(self):
        if not 0.0 <= self.error_horizon_hours <= self.warn_horizon_hours:
            raise ValueError('need 0 <= error_horizon_hours <= warn_horizon_hours, got '
                             f'{self.error_horizon_hours} and {self.warn_horizon_hours}')
        if not 0.0 <= self.replace_below_health <= 1.0:
            raise ValueError(f'replace_below_health must be in [0, 1], got '
                             f'{self.replace_below_health}')
        if not self.replace_below_health <= self.warn_below_health <= 1.0:
            raise ValueError(f'warn_below_health must be in [replace_below_health, 1], got '
                             f'{self.warn_below_health}')
        if not 0.0 <= self.operating_hours_per_day <= 24.0:
            raise ValueError(f'operating_hours_per_day must be in [0, 24], got '
                             f'{self.operating_hours_per_day}')
        if not self.wear_speed_exponent > 0.0:
            raise ValueError(f'wear_speed_exponent must be > 0, got {self.wear_speed_exponent}')
        if not 0.0 < self.min_speed_scale <= 1.0:
            raise ValueError(f'min_speed_scale must be in (0, 1], got {self.min_speed_scale}')


@dataclass(frozen=True)
class Advice:
    """
    What to do about one joint.

    Attributes
    ----------
    level : str
        One of :data:`LEVELS`.
    action : str
        One of :data:`ACTIONS`.
    due_by : str
        ISO date (``YYYY-MM-DD``) by which to act, or '' when nothing is due.
    message : str
        One readable line with the evidence.
    evidence : dict
        The figures behind it (JSON-able).

    """

    level: str
    action: str
    due_by: str
    message: str
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Derating:
    """
    A speed scale for the governor.

    Attributes
    ----------
    speed_scale : float
        Speed scale relative to the robot's undiminished speed, in (0, 1] (1: no derating);
        it replaces any earlier derating (it is not applied on top of it). The governor
        multiplies its velocity limit scale by it.
    joint : str
        The joint that asks for it ('' when none does).
    reaches_window : bool
        False when even ``min_speed_scale`` does not carry the joint to the window (service it
        earlier).
    rul_lower_hours, window_hours : float
        The RUL lower bound at the measured speed and the operating hours to the window.
    reason : str
        One line for the audit log.

    """

    speed_scale: float = 1.0
    joint: str = ''
    reaches_window: bool = True
    rul_lower_hours: float = math.nan
    window_hours: float = math.nan
    reason: str = 'no derating needed'


def due_date(now, hours, operating_hours_per_day):
    """
    Return the ISO date ``hours`` operating hours after ``now``.

    Parameters
    ----------
    now : float
        Wall-clock time, s since the epoch (UTC).
    hours : float
        Operating hours from now (>= 0, finite).
    operating_hours_per_day : float
        Operating hours per calendar day (> 0).

    """
    days = max(hours, 0.0) / operating_hours_per_day
    when = datetime.datetime.fromtimestamp(now, datetime.timezone.utc) + \
        datetime.timedelta(days=min(days, 3.65e5))
    return when.date().isoformat()


def _level(estimate, failed, health, policy):
    """Return the worse of the level by the RUL's lower bound and the level by health."""
    if failed:
        return 'ERROR'
    by_rul = by_health = 0
    if estimate.has_number:
        by_rul = 2 if estimate.lower_hours <= policy.error_horizon_hours else \
            1 if estimate.lower_hours <= policy.warn_horizon_hours else 0
    if math.isfinite(health):
        by_health = 2 if health <= policy.replace_below_health else \
            1 if health < policy.warn_below_health else 0
    return LEVELS[max(by_rul, by_health)]


def _hours(x):
    if not math.isfinite(x):
        return 'inf'
    return f'{x:.3g}' if x < 100.0 else f'{x:.0f}'


def advise(joint, estimate, kind, health, policy, now, operating_hours_per_day,
           anomaly=None):
    """
    Advice for one joint.

    Parameters
    ----------
    joint : str
        Joint name (for the message).
    estimate : RulEstimate
        The joint's binding RUL estimate (:mod:`twin_anomaly.rul`).
    kind : str
        The evidence kind it comes from (``friction``, ``residual``, ``torque_margin``), or the
        most degraded kind when there is no number but a degradation; '' when none.
    health : float
        Health index in [0, 1] (NaN: unknown); 0 means the recent evidence is at the failure
        limit (failed).
    policy : MaintenancePolicy
        Horizons and action settings.
    now : float
        Wall-clock time, s since the epoch (for the due date).
    operating_hours_per_day : float
        Hours per day for the due date (> 0).
    anomaly : tuple of (str, str), optional
        ``(level, fault_type)`` the anomaly detector reports for the joint (the fault type
        latched for the episode).

    Returns
    -------
    Advice

    """
    failed = math.isfinite(health) and health <= 0.0
    level = _level(estimate, failed, health, policy)
    evidence = {'kind': kind, 'health_index': health, 'degradation': estimate.degradation,
                'drift_per_hour': estimate.drift_per_hour,
                'probability_degrading': estimate.probability,
                'rul_hours': estimate.rul_hours, 'rul_lower_hours': estimate.lower_hours,
                'rul_upper_hours': estimate.upper_hours, 'onset_hours': estimate.onset_hours,
                'epochs': estimate.points}
    action, due, message = 'none', '', estimate.reason or 'healthy'
    if level != 'OK':
        action = _ACTION_BY_KIND.get(kind, 'inspect')
        if kind == 'friction' and math.isfinite(health) and \
                health <= policy.replace_below_health:
            action = 'replace'
        due = due_date(now, estimate.lower_hours if estimate.has_number else 0.0,
                       operating_hours_per_day)
        if failed:
            what = f'{kind or "evidence"} at the failure limit, RUL 0 h'
        elif estimate.has_number:
            what = (f'{kind} wear: RUL {_hours(estimate.rul_hours)} h '
                    f'[{_hours(estimate.lower_hours)}, {_hours(estimate.upper_hours)}]')
        else:
            what = f'{kind or "evidence"} worn ({estimate.reason or "no RUL"})'
        message = f'{joint}: {what}, health {health:.2f}; {action} by {due}'
    elif estimate.has_number:
        message = (f'{kind} wear: RUL {_hours(estimate.rul_hours)} h '
                   f'[{_hours(estimate.lower_hours)}, {_hours(estimate.upper_hours)}]')
    if anomaly is not None and anomaly[0] == 'ERROR' and level == 'OK':
        fault = anomaly[1]
        # wear evidence, where there is some, says more than the classifier's label
        action = _ACTION_BY_KIND[kind] if kind in _ACTION_BY_KIND else \
            _ACTION_BY_FAULT.get(fault, 'inspect')
        level = 'WARN'
        due = due_date(now, 0.0, operating_hours_per_day)
        message = f'{joint}: anomaly {fault}; {action} by {due}'
        if kind in _ACTION_BY_KIND and math.isfinite(health):
            message += f' ({kind} evidence, health {health:.2f})'
        evidence['anomaly'] = fault
    return Advice(level, action, due, message, evidence)


def derating(joint, estimate, kind, window_hours, policy, applied_scale=1.0):
    """
    Speed scale that stretches a joint's RUL to the next maintenance window.

    Parameters
    ----------
    joint : str
        Joint name (for the reason).
    estimate : RulEstimate
        Measured at the speed scale ``applied_scale``.
    kind : str
        Evidence kind of the estimate; only wear (``friction``, ``residual``) is slowed by a
        lower speed, ``torque_margin`` is not (a lower speed does not lower gravity load).
    window_hours : float
        Operating hours until the next planned maintenance (NaN or inf: none planned).
    policy : MaintenancePolicy
        Exponent and lowest scale.
    applied_scale : float
        The derating in force while the trend was measured, in (0, 1].

    Returns
    -------
    Derating

    """
    if not estimate.has_number or kind not in ('friction', 'residual') or \
            not math.isfinite(window_hours) or window_hours <= 0.0:
        return Derating()
    lower = estimate.lower_hours
    p = policy.wear_speed_exponent
    wanted = applied_scale * (max(lower, 0.0) / window_hours) ** (1.0 / p)
    if wanted >= 1.0:
        return Derating(1.0, joint, True, lower, window_hours,
                        f'{joint}: RUL lower bound {_hours(lower)} h at speed x{applied_scale:.2f}'
                        f' reaches the window at full speed')
    scale = max(wanted, policy.min_speed_scale)
    reaches = wanted >= policy.min_speed_scale
    reason = (f'{joint}: {kind} wear, RUL lower bound {_hours(lower)} h at speed '
              f'x{applied_scale:.2f}, {_hours(window_hours)} h to the maintenance window; speed '
              f'x{scale:.2f}')
    if not reaches:
        reason += ' (not enough: service before the window)'
    return Derating(scale, joint, reaches, lower, window_hours, reason)
