"""Corrective-action policy: which command the twin proposes when it detects a fault.

ROS-free. The bridge node feeds it the robot-level anomaly report and the latest mirrored state;
whatever it proposes still goes through :class:`twin_bridge.governor.SafetyGovernor` before it
reaches the robot, and is written to the audit log with the anomaly that caused it.

The one policy today is ``hold``: on a new anomaly episode at level ERROR, command the arm to
stay where it is (a one-point trajectory to the current measured position, reached over
``hold_time_s`` with zero final velocity). That is the conservative action a person at the
robot would take first; richer actions (slow-down, retreat, payload compensation) fit the same
interface later.
"""
from dataclasses import dataclass, field

import numpy as np

POLICIES = ('hold',)


@dataclass
class AnomalyEvent:
    """What the bridge knows of the anomaly that triggers an action."""

    level: str            # 'OK' | 'WARN' | 'ERROR'
    joint: str            # faulty joint name, '' when not localized
    fault_type: str       # detector's fault type
    score: float
    since: float          # stamp of the alarm onset, s


@dataclass
class CorrectiveProposal:
    """A command the policy asks for (before the governor)."""

    kind: str                   # 'trajectory'
    positions: np.ndarray       # (n,) rad, model joint order
    time_from_start_s: float
    reason: str
    anomaly: AnomalyEvent
    velocities: np.ndarray = field(default=None)


class CorrectivePolicy:
    """Turn anomaly episodes into at most one proposal each.

    Parameters
    ----------
    policy : str
        One of :data:`POLICIES`.
    hold_time_s : float
        Time over which the hold trajectory settles, s (> 0).
    trigger_level : str
        'WARN' or 'ERROR': the lowest anomaly level that acts.
    """

    def __init__(self, policy='hold', hold_time_s=0.5, trigger_level='ERROR'):
        if policy not in POLICIES:
            raise ValueError(
                f'corrective_actions.policy must be one of {POLICIES}, got {policy!r}')
        if not hold_time_s > 0.0:
            raise ValueError(f'corrective_actions.hold_time_s must be > 0, got {hold_time_s}')
        if trigger_level not in ('WARN', 'ERROR'):
            raise ValueError(
                'corrective_actions.trigger_level must be WARN or ERROR, '
                f'got {trigger_level!r}')
        self.policy = policy
        self.hold_time_s = float(hold_time_s)
        self._trigger_rank = 1 if trigger_level == 'WARN' else 2
        self._acted_on = None   # 'since' stamp of the episode already handled

    def propose(self, event, q_measured):
        """Return a :class:`CorrectiveProposal` for a new episode, else None.

        Parameters
        ----------
        event : AnomalyEvent
        q_measured : (n,) array, rad
            Latest mirrored joint positions in model order.
        """
        rank = {'OK': 0, 'WARN': 1, 'ERROR': 2}.get(event.level, 0)
        if rank < self._trigger_rank:
            if rank == 0:
                self._acted_on = None    # episode over: the next one may act again
            return None
        if self._acted_on is not None and self._acted_on == event.since:
            return None
        q = np.asarray(q_measured, dtype=float)
        if q.ndim != 1 or not np.all(np.isfinite(q)):
            return None
        self._acted_on = event.since
        where = f' on {event.joint}' if event.joint else ''
        return CorrectiveProposal(
            kind='trajectory', positions=q.copy(), velocities=np.zeros_like(q),
            time_from_start_s=self.hold_time_s, anomaly=event,
            reason=f'hold position: {event.level} anomaly{where} ({event.fault_type}, '
                   f'score {event.score:.3g}) since t={event.since:.3f}')
