"""
The anomaly node's cores together (twin_anomaly.pipeline): what the node and replay run.

The robot is the built-in arm with Coulomb friction and more damping than its URDF says; the
twin starts from the URDF. Checked: the calibrated model is handed over once (and again from a
saved file), the RUL monitor is fed only once commissioning has ended, and every lifecycle
event comes out for the ledger.
"""
import numpy as np
import pytest

from twin_anomaly.pipeline import AnomalyPipeline
from twin_bridge.intake import RobotSample
from twin_sim import resources
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from twin_sim.trajectory import DemoMotion
from twin_sim.urdf_model import RobotModel

PARAMS = {'commissioning_duration_s': 16.0, 'calibration': True, 'model_path': 'rules',
          'rul.enabled': True, 'rul.health_interval_s': 2.0, 'rul.baseline_duration_s': 4.0}


def robot_samples(robot, seconds):
    """Yield samples of ``robot`` (its dynamics and friction) on the demo motion, with noise."""
    motion = DemoMotion.from_model(robot, center=[0.0, 0.5, 0.0, -1.0, 0.0, 0.6, 0.0],
                                   fraction=0.3, period_s=3.0, fade_in_s=0.5)
    rng = np.random.default_rng(7)
    t = np.arange(1, int(seconds * 1000) + 1) * 1e-3
    q, qd, qdd = motion.sample(t)
    for k in range(t.size):
        tau = robot.inverse_dynamics(q[k], qd[k], qdd[k]) + robot.friction_model.torque(qd[k])
        yield RobotSample(t[k], (0, 0), q[k] + 1e-4 * rng.standard_normal(robot.n),
                          qd[k] + 1e-3 * rng.standard_normal(robot.n),
                          tau + 0.05 * rng.standard_normal(robot.n))


@pytest.fixture(scope='module')
def twin():
    return RobotModel.from_urdf(resources.builtin_urdf())


@pytest.fixture(scope='module')
def robot(twin):
    real = twin.copy()
    fm = real.friction_model
    fm.coulomb = np.full(real.n, 1.5)
    fm.viscous = np.asarray(fm.viscous) + 2.0
    return real


@pytest.fixture(scope='module')
def commissioned(twin, robot, tmp_path_factory):
    path = tmp_path_factory.mktemp('pipeline') / 'thresholds.yaml'
    pipeline = AnomalyPipeline(twin, PARAMS, thresholds_file=path, rul_log='')
    mirror = Mirror(Predictor(twin))
    handed = []
    pipeline.model_listeners.append(handed.append)
    pipeline.model_listeners.append(lambda m: mirror.set_predictor(Predictor(m)))
    rul_seconds = []
    fed_before = None
    for k, sample in enumerate(robot_samples(robot, 24.0)):
        result = mirror.update(sample.t, sample.position, sample.velocity, sample.effort)
        if fed_before is None and pipeline.monitor.commissioned:
            fed_before = pipeline.rul.operating_s      # RUL time taken while commissioning
        pipeline.update(sample, result, now=sample.t + 0.001)
        if k % 20 == 0:
            state = pipeline.report()
        if k % 1000 == 999:
            pipeline.rul_report(1.8e9)
            rul_seconds.append(pipeline.rul.operating_s)
    entries = pipeline.lifecycle_entries()
    pipeline.close()
    return pipeline, handed, fed_before, rul_seconds, entries, state, path


def test_an_accepted_calibration_is_handed_over_once(commissioned, twin, robot):
    pipeline, handed, *_ = commissioned
    assert len(handed) == 1 and handed[0] is pipeline.monitor.calibrated_model
    # the calibrated friction is the robot's, not the URDF's (sign of the Coulomb step)
    qd = np.full(twin.n, 0.3)
    urdf_error = np.abs(twin.friction_model.torque(qd) - robot.friction_model.torque(qd))
    calibrated_error = np.abs(handed[0].friction_model.torque(qd)
                              - robot.friction_model.torque(qd))
    assert calibrated_error.mean() < 0.5 * urdf_error.mean()


def test_rul_is_fed_only_after_commissioning(commissioned):
    _, _, fed_before, rul_seconds, *_ = commissioned
    assert fed_before == 0.0
    assert rul_seconds[-1] > 4.0          # ~8 s of motion after 16 s of commissioning
    assert rul_seconds[:14] == [0.0] * 14


def test_lifecycle_entries_for_the_ledger(commissioned):
    *_, entries, state, _ = commissioned
    kinds = [kind for kind, _ in entries]
    order = [kinds.index(k) for k in ('commissioning_started', 'calibration_finished',
                                      'commissioning_finished')]
    assert order == sorted(order)
    calibration = dict(entries)['calibration_finished']
    assert calibration['accepted'] and 'rmse_after' in calibration
    assert 'rul_log' in kinds             # no health log path: said so, once
    assert all(isinstance(data, dict) and 'kind' not in data for _, data in entries)
    assert state.phase == 'monitoring' and state.level != 'ERROR'


def test_a_saved_calibration_is_handed_over_at_the_first_report(commissioned, twin, robot):
    *_, path = commissioned
    pipeline = AnomalyPipeline(twin, PARAMS, thresholds_file=path, rul_log='')
    handed = []
    pipeline.model_listeners.append(handed.append)
    assert pipeline.monitor.commissioned and handed == []
    pipeline.report()
    assert len(handed) == 1
    pipeline.report()
    assert len(handed) == 1
    pipeline.close()


def test_rul_off_gives_no_report(twin):
    pipeline = AnomalyPipeline(twin, dict(PARAMS, **{'rul.enabled': False}))
    assert pipeline.rul is None and pipeline.rul_report(1.8e9) is None
    pipeline.close()


def test_a_model_handed_over_is_announced_to_the_rul_monitor(commissioned, twin):
    # a payload (right or wrong) moves the residual without any wear: the RUL monitor must
    # re-learn its residual baseline, not read the change as wear (audit: RUL 0 h, replace)
    from twin_anomaly.pipeline import model_key
    from twin_sim.urdf_model import Payload
    *_, path = commissioned
    pipeline = AnomalyPipeline(twin, PARAMS, thresholds_file=path, rul_log='')
    calls = []
    pipeline.rul.model_changed = lambda **kw: calls.append(kw)
    pipeline.report()                                    # the saved calibration
    assert [c['reason'] for c in calls] == ['calibration']
    payload = Payload.from_components(2.0, (0, 0, 0.05), 0.002, 0, 0, 0.002, 0, 0.002)
    pipeline.set_payload(payload)
    assert [c['reason'] for c in calls] == ['calibration', 'payload']
    assert calls[0]['key'] != calls[1]['key']
    assert calls[1]['key'] == model_key(pipeline.monitor.prediction_model())
    assert model_key(twin) == model_key(twin.copy())
    pipeline.close()


def test_no_health_evidence_while_not_judging_or_during_an_event_alarm():
    from types import SimpleNamespace

    from twin_anomaly.monitor import AnomalyMonitor
    from twin_anomaly.pipeline import not_evidence
    monitor = SimpleNamespace(_settle_until=10.0, _overloaded_until=-np.inf)
    judging = AnomalyMonitor.judging
    assert not judging(monitor, 9.0) and judging(monitor, 10.5)
    monitor._overloaded_until = 12.0                   # the twin lost samples of its own
    assert not judging(monitor, 11.0) and judging(monitor, 12.5)

    def joint(name, alarm, fault):
        return SimpleNamespace(name=name, alarm=alarm, fault_type=fault)
    state = SimpleNamespace(joints=(joint('a', True, 'collision_force'),
                                    joint('b', True, 'friction_increase'),
                                    joint('c', False, 'none')))
    assert not_evidence(state).tolist() == [True, False, False]
    state.joints = state.joints[1:]
    assert not_evidence(state) is None and not_evidence(None) is None
