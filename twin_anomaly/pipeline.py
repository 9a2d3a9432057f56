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
  (its health baseline must be learned on the model the twin predicts with);
- every lifecycle event (commissioning, calibration, anomalies raised and cleared, RUL advice
  and derating) comes out of :meth:`AnomalyPipeline.lifecycle_entries` as ``(kind, data)``
  pairs for the hash-chained lifecycle log (:mod:`twin_bridge.ledger`).

Parameters are the node's (``robot_twin.config.PARAMETERS['twin_anomaly']``): the monitor takes
the keys named like :class:`~twin_anomaly.monitor.MonitorConfig` fields, the RUL monitor every
``rul.*`` key (:meth:`~twin_anomaly.rul_monitor.RulConfig.from_parameters`).
"""
from dataclasses import fields

from twin_anomaly.monitor import AnomalyMonitor, MonitorConfig
from twin_anomaly.rul_monitor import RulConfig, RulMonitor

__all__ = ['AnomalyPipeline', 'monitor_config']


def monitor_config(params, **override):
    """Return the :class:`MonitorConfig` of a parameter dict (the keys it knows) and overrides."""
    names = {f.name for f in fields(MonitorConfig)}
    values = {k: v for k, v in params.items() if k in names}
    values.update(override)
    return MonitorConfig(**values)


def _anomalies(state):
    """``{joint: (level, fault_type)}`` of the alarmed joints of a DetectorState."""
    return {js.name: ('ERROR', js.fault_type) for js in state.joints if js.alarm}


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
                and sample.velocity is not None:
            self.rul.update(sample.t, sample.position, sample.velocity, sample.effort,
                            result.effort_residual)

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
            self._hand_over(self.monitor.prediction_model())

    def set_payload(self, payload):
        """
        Predict with ``payload`` carried from now on (see ``AnomalyMonitor.set_payload``).

        The model listeners (the mirror) get the new model; the load the twin has already
        changes nothing. Raises ValueError, with the reason, when the payload is refused.
        """
        model = self.monitor.set_payload(payload)
        if model is not None:
            self._hand_over(model)

    def _hand_over(self, model):
        for listener in self.model_listeners:
            listener(model)

    def close(self):
        """Stop a background calibration; write the RUL monitor's operating-hour counter."""
        self.monitor.close()
        if self.rul is not None:
            self.rul.close()


def _config_dict(cfg):
    return {f.name: getattr(cfg, f.name) for f in fields(cfg)}
