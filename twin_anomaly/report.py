"""
Turn a detector state into the contract's status entries and rviz marker specs (ROS-free).

/twin/anomaly carries one status ``twin/anomaly/robot`` and one ``twin/anomaly/<joint>`` per
joint, with the values ``score``, ``threshold``, ``fault_type``, ``since`` and ``confidence``
(ARCHITECTURE.md), plus ``joint``, ``phase``, ``channel`` and ``detector`` where they help a
reader; robot-level groups (``twin/anomaly/wrench``, ``twin/anomaly/stream``) like joints.
"""
from dataclasses import dataclass
import math

import numpy as np

ROBOT_STATUS = 'twin/anomaly/robot'


@dataclass
class StatusEntry:
    """One DiagnosticStatus to publish: name, level ('OK'|'WARN'|'ERROR'), message, values."""

    name: str
    level: str
    message: str
    values: dict


def _since(value):
    return '' if value is None or not math.isfinite(value) else f'{value:.6f}'


def status_entries(state, warn_ratio=0.8):
    """Return the :class:`StatusEntry` list of a ``twin_anomaly.detector.DetectorState``."""
    robot = StatusEntry(ROBOT_STATUS, state.level, state.message, {
        'score': float(state.score), 'threshold': float(state.threshold),
        'fault_type': state.fault_type, 'since': _since(state.since),
        'confidence': float(state.confidence),
        'joint': state.faulty_joint or '', 'phase': state.phase,
        'commissioning_progress': float(state.commissioning_progress),
        'unavailable': ','.join(state.unavailable),
        'dropped_samples': int(state.dropped_samples)})
    entries = [robot]
    groups = list(state.joints) + ([state.wrench] if state.wrench is not None else []) \
        + list(state.groups)
    for js in groups:
        fault_type, since, confidence = js.fault_type, js.since, js.confidence
        if state.phase == 'commissioning':
            level, message = 'OK', 'commissioning'
        elif js.alarm:
            level, message = 'ERROR', f'anomaly: {js.fault_type}'
        elif state.level == 'ERROR' and js.name == state.faulty_joint:
            # the fault was placed on this joint from the alarms of other groups (a force on a
            # link shows on the joints before it): its own status says so too
            level, message = 'ERROR', f'anomaly: {state.fault_type} (localized from the ' \
                                      'alarms of other groups)'
            fault_type, since, confidence = state.fault_type, state.since, state.confidence
        elif js.score >= warn_ratio * js.threshold:
            level, message = 'WARN', 'elevated residual'
        else:
            level, message = 'OK', 'nominal'
        entries.append(StatusEntry(f'twin/anomaly/{js.name}', level, message, {
            'score': float(js.score), 'threshold': float(js.threshold),
            'fault_type': fault_type, 'since': _since(since),
            'channel': js.channel, 'detector': js.detector,
            'confidence': float(confidence)}))
    return entries


@dataclass
class MarkerSpec:
    """A sphere (and label) at a joint origin for rviz; position (3,) m in the base frame."""

    joint: str
    position: np.ndarray
    rgba: tuple
    scale_m: float
    text: str


def score_color(ratio):
    """Green (0) through yellow to red (>= 1) for a score/threshold ratio; returns RGBA."""
    r = float(np.clip(ratio, 0.0, 1.0)) if math.isfinite(ratio) else 1.0
    return (min(1.0, 2.0 * r), min(1.0, 2.0 * (1.0 - r)), 0.0, 0.8)


def marker_specs(state, joint_positions):
    """
    Return one :class:`MarkerSpec` per joint.

    Parameters
    ----------
    state : DetectorState
        The detector state to draw.
    joint_positions : dict
        ``{joint name: (3,) origin in the base frame, m}``; joints missing here get no marker.

    """
    specs = []
    for js in state.joints:
        if js.name not in joint_positions:
            continue
        ratio = js.score / js.threshold if js.threshold > 0 else 0.0
        label = f'{js.name} {ratio:.2f}' + (f' {js.fault_type}' if js.alarm else '')
        specs.append(MarkerSpec(js.name, np.asarray(joint_positions[js.name], dtype=float),
                                score_color(ratio), 0.06 + 0.08 * min(ratio, 2.0), label))
    return specs
