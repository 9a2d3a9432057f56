"""
What the anomaly node runs, without ROS: anomaly monitor, RUL monitor and their hand-overs.

The live ``twin_anomaly`` node and ``robot-twin replay`` both drive one
:class:`AnomalyPipeline` with the same calls in the same order, so that a replay reproduces what
the node reported. The pipeline owns the two monitors and the rules that connect them:

- the :class:`~twin_anomaly.monitor.AnomalyMonitor` commissions (calibration, thresholds) and
  then watches every sample;
- when a calibration is accepted (or loaded with saved thresholds), ``model_listeners`` get the
  calibrated model: the node hands it to the mirror, so that residuals are calibrated too, and
  the RUL monitor measures friction against the calibrated friction model;
- the :class:`~twin_anomaly.rul_monitor.RulMonitor` is fed only once commissioning has ended
  (its health baseline must be learned on the model the twin predicts with), and only while the
  anomaly monitor judges the robot: not while it settles after a stream (re)start, a gap or a
  payload change, nor while the twin lost samples of its own; the samples of a joint with a
  ``payload_change`` or ``collision_force`` alarm are left out of the health evidence (an event,
  not wear);
- every model handed to the model listeners (a calibration, a payload) is also announced to the
  RUL monitor (:meth:`~twin_anomaly.rul_monitor.RulMonitor.model_changed`, with a checksum of
  the model's predictions as its key): a model change moves the residual without any wear, so
  the RUL monitor re-learns its residual baseline instead of reading the change as wear;
- every lifecycle event (commissioning, calibration, anomalies raised and cleared, RUL advice
  and derating) comes out of :meth:`AnomalyPipeline.lifecycle_entries` as ``(kind, data)``
  pairs for the hash-chained lifecycle log (:mod:`twin_bridge.ledger`).

Parameters are the node's (``robot_twin.config.PARAMETERS['twin_anomaly']``): the monitor takes
the keys named like :class:`~twin_anomaly.monitor.MonitorConfig` fields, the RUL monitor every
``rul.*`` key (:meth:`~twin_anomaly.rul_monitor.RulConfig.from_parameters`).
"""
from dataclasses import fields
import zlib

import numpy as np
from twin_anomaly.monitor import AnomalyMonitor, MonitorConfig
from twin_anomaly.rul_monitor import RulConfig, RulMonitor

__all__ = ['AnomalyPipeline', 'NOT_EVIDENCE_FAULTS', 'model_key', 'monitor_config',
           'not_evidence']


def monitor_config(params, **override):
    """Return the :class:`MonitorConfig` of a parameter dict (the keys it knows) and overrides."""
    names = {f.name for f in fields(MonitorConfig)}
    values = {k: v for k, v in params.items() if k in names}
    values.update(override)
    return MonitorConfig(**values)


def _anomalies(state):
    """``{joint: (level, fault_type)}`` of the alarmed joints of a DetectorState."""
    return {js.name: ('ERROR', js.fault_type) for js in state.joints if js.alarm}


#: Alarms during which a joint's samples are no health evidence (events, not wear).
NOT_EVIDENCE_FAULTS = ('payload_change', 'collision_force')


def not_evidence(state):
    """Return (n,) bool: joints whose alarm is an event, not wear; None when there is none."""
    if state is None:
        return None
    mask = np.array([bool(js.alarm) and js.fault_type in NOT_EVIDENCE_FAULTS
                     for js in state.joints])
    return mask if mask.any() else None


def model_key(model):
    """
    Return a checksum of what ``model`` predicts (str): equal for models that predict alike.

    Inverse dynamics plus friction at three fixed states: a payload, a calibration or any other
    change of what the twin predicts changes it.
    """
    n = model.n
    rows = []
    for k in range(3):
        q = np.linspace(-0.5, 0.5, n) * (0.7 * (k + 1))
        qd = np.full(n, 0.3 * (k - 1))
        qdd = np.full(n, 0.5)
        rows.append(np.asarray(model.inverse_dynamics(q, qd, qdd), dtype=float)
                    + np.asarray(model.friction_model.torque(qd), dtype=float))
    data = np.round(np.concatenate(rows), 9) + 0.0          # (+0.0: no negative zero)
    return f'{zlib.crc32(data.tobytes()) & 0xffffffff:08x}'


class AnomalyPipeline:
    """
    The anomaly node's cores, fed one accepted robot sample at a time.

    Parameters
    ----------
    model : twin_sim.urdf_model.RobotModel
        The twin's model (URDF, identified dynamics, known payload); joint order of samples.
    params : dict
        The node's parameters (other keys are ignored).
    thresholds_file : str, optional
        Saved calibration and thresholds (:class:`AnomalyMonitor`); None: never saved.
    rul_log : str, optional
        Health history file of the RUL monitor; overrides ``params['rul.log_path']``.
    background : bool
        Calibrate in a worker thread (the live node) instead of inside :meth:`update`.
    log : callable, optional
        ``log(level, text)``.

    Attributes
    ----------
    monitor : AnomalyMonitor
    rul : RulMonitor or None
        None when ``rul.enabled`` is false.
    model_listeners : list of callable
        ``f(model)`` with the model to predict with, whenever it changes: once calibrated,
        and when a payload is set.
    speed_scale : float
        The derating the RUL monitor asks of the governor, in (0, 1].

    """

    def __init__(self, model, params, *, thresholds_file=None, rul_log=None,
                 background=False, log=None):
        self.model = model
        self._log = log or (lambda level, text: None)
        self.monitor = AnomalyMonitor(
            model, monitor_config(params, calibrate_in_background=bool(background)),
            thresholds_file=thresholds_file, recommission=bool(params.get('recommission')),
            urdf=model.urdf_path, log=self._log)
        self.rul = None
        if params.get('rul.enabled', True):
            cfg = RulConfig.from_parameters(params)
            if rul_log is not None:
                cfg = RulConfig.from_mapping({**_config_dict(cfg), 'log_path': rul_log})
            self.rul = RulMonitor.from_model(model, cfg)
        self.model_listeners = []
        self.speed_scale = 1.0
        self._entries = []
        self._state = None
        self._handed_over = False
        self._skip = None           # (n,) joints whose samples are no health evidence now

    # ------------------------------------------------------------------ per sample
    def update(self, sample, result, now=None):
        """
        Take one accepted robot sample and the mirror's result for it (or None).

        ``sample`` is a :class:`twin_bridge.intake.RobotSample`; ``now`` the receive time on
        the local clock, s (None in recordings without receive times).
        """
        monitor = self.monitor
        monitor.update(sample, result, now=now)
        if self.rul is not None and result is not None and monitor.commissioned \
                and sample.velocity is not None and monitor.judging(sample.t):
            effort, residual = sample.effort, result.effort_residual
            if self._skip is not None:
                effort = np.where(self._skip, np.nan, effort)
                residual = np.where(self._skip, np.nan, residual)
            self.rul.update(sample.t, sample.position, sample.velocity, effort, residual)

    def wrench(self, t, residual):
        """Take one wrench residual (6,) N and N·m at stamp ``t``, s."""
        self.monitor.wrench(t, residual)

    # ------------------------------------------------------------------ reports
    def report(self):
        """Return the anomaly state (DetectorState); handle the monitor's new events."""
        state = self.monitor.report()
        for event in self.monitor.poll_events():
            self._on_event(event)
        self._state = state
        self._skip = not_evidence(state)
        return state

    def rul_report(self, wall_time, applied_speed_scale=1.0):
        """
        Return the RUL report (:class:`~twin_anomaly.rul_monitor.RulReport`) or None.

        Parameters
        ----------
        wall_time : float
            Wall clock, s since the epoch (due dates).
        applied_speed_scale : float
            The derating the governor applies now.

        """
        if self.rul is None:
            return None
        state = self._state
        rep = self.rul.report(wall_time, anomalies=_anomalies(state) if state else None,
                              applied_speed_scale=applied_speed_scale)
        self.speed_scale = float(rep.derating.speed_scale)
        for entry in rep.ledger:
            entry = dict(entry)
            self._entries.append((entry.pop('kind'), entry))
        return rep

    def lifecycle_entries(self):
        """Return (and forget) the ``(kind, data)`` lifecycle-log entries since the last call."""
        entries, self._entries = self._entries, []
        return entries

    def _on_event(self, event):
        event = dict(event)
        kind = event.pop('kind')
        self._entries.append((kind, event))
        if kind == 'thresholds_refused':
            # commissioning again: its calibration, once accepted, is handed over anew (the
            # mirror predicts with the file's until then)
            self._handed_over = False
        calibrated = self.monitor.calibrated_model
        if calibrated is not None and not self._handed_over and (
                kind == 'calibration_finished' and event.get('accepted')
                or kind == 'thresholds_loaded' and event.get('calibrated')):
            self._handed_over = True
            if self.rul is not None:
                self.rul.set_friction_model(calibrated.friction_model)
            self._hand_over(self.monitor.prediction_model(), 'calibration')

    def set_payload(self, payload):
        """
        Predict with ``payload`` carried from now on (see ``AnomalyMonitor.set_payload``).

        The model listeners (the mirror) get the new model, and the RUL monitor re-learns its
        residual baseline for it (a payload, right or wrong, is not wear); the load the twin
        has already changes nothing. Raises ValueError, with the reason, when the payload is
        refused.
        """
        model = self.monitor.set_payload(payload)
        if model is not None:
            self._hand_over(model, 'payload')

    def _hand_over(self, model, reason):
        if self.rul is not None:
            self.rul.model_changed(key=model_key(model), reason=reason)
        for listener in self.model_listeners:
            listener(model)

    def close(self):
        """Stop a background calibration; write the RUL monitor's operating-hour counter."""
        self.monitor.close()
        if self.rul is not None:
            self.rul.close()


def _config_dict(cfg):
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
