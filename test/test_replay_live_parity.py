"""
The replay and the live mirror node drop and count the same samples: one guarded step.

The same accepted robot samples and wrenches go to the live ``twin_sim`` node (a real rclpy node
in this process, its publishers muted) and to the replay's :class:`robot_twin.replay.TwinChain`;
both mirrors are made to overflow at the same samples. Their counters (as /twin/status names
them) and the residuals they give out must be the same.
"""
import math

from bag_testing import REPLAY_CONFIG
import numpy as np
import pytest
import rclpy
from robot_twin.nodes.anomaly_node import TwinAnomalyNode
from robot_twin.nodes.mirror_node import TwinMirrorNode
from robot_twin.replay import twin_parameters, TwinChain
from robot_twin.ros_env import localhost_env
from ros_harness import DDS_KEYS, unique_domain_id
from twin_bridge.intake import RobotSample
from twin_sim.predictor import Predictor
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import RobotModel

T0 = 1.8e9                     # robot stamps, s
SAMPLES = 400                  # at 1 kHz
WITHOUT_EFFORT = range(10)     # the robot gives no effort at first
GAP = range(200, 230)          # then sends nothing for 30 ms: the mirror restarts
HUGE_RESULT_AT = 100           # mirror results counted from the first mirrored sample
NONFINITE_WRENCH_AT = 250      # wrench residuals counted from the first one


@pytest.fixture
def live_node(monkeypatch):
    """Start rclpy on a private localhost domain; give a ``twin_sim`` node publishing nothing."""
    env = localhost_env(unique_domain_id())
    for key in DDS_KEYS:
        monkeypatch.setenv(key, env[key])
    rclpy.init(args=['x'])
    try:
        node = TwinMirrorNode('mirror_parity')
        node.pub_residuals.publish = node.pub_predicted.publish = lambda msg: None
        node.pub_wrench_residual.publish = node.pub_predicted_wrench.publish = lambda msg: None
        yield node
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def overflow_at(mirror, update_at, wrench_at):
    """
    Make one mirror result and one wrench residual of ``mirror`` overflow (counted from 0).

    The result's effort residual becomes 1e308 on every joint (each value finite, their sum
    not: the live twin's check fails it, a check of each value alone would not).
    """
    update, wrench_residual = mirror.update, mirror.wrench_residual
    calls = {'update': 0, 'wrench': 0}

    def updating(*args):
        result = update(*args)
        if result is not None:
            if calls['update'] == update_at:
                result.effort_residual = np.full_like(result.effort_residual, 1e308)
            calls['update'] += 1
        return result

    def wrenching(*args):
        out = wrench_residual(*args)
        if out is not None:
            if calls['wrench'] == wrench_at:
                out = out[0], out[1] + math.inf
            calls['wrench'] += 1
        return out
    mirror.update, mirror.wrench_residual = updating, wrenching


def robot_stream(model):
    """Yield ``(t, stamp, names, q, qd, effort, wrench)`` of a slow, consistent 1 kHz motion."""
    predictor = Predictor(model)
    for k in range(SAMPLES):
        if k in GAP:
            continue
        t = T0 + k * 1e-3
        phase = 0.5 * t + np.arange(model.n)
        q, qd, qdd = 0.3 * np.sin(phase), 0.15 * np.cos(phase), -0.075 * np.sin(phase)
        prediction = predictor.predict(q, qd, qdd)
        effort = np.array([]) if k in WITHOUT_EFFORT else prediction.effort
        ns = int(round(t * 1e6)) * 1000
        yield t, divmod(ns, 1_000_000_000), list(model.joint_names), q, qd, effort, \
            prediction.wrench


def test_live_node_and_replay_drop_and_count_the_same_results(live_node, tmp_path):
    config = tmp_path / 'replay.yaml'
    config.write_text(REPLAY_CONFIG)
    chain = TwinChain(twin_parameters(str(config)), with_wrench=True)
    for mirror in (live_node.mirror, chain.mirror):
        overflow_at(mirror, HUGE_RESULT_AT, NONFINITE_WRENCH_AT)
    live, replayed = {'joint': [], 'wrench': []}, {'joint': [], 'wrench': []}
    live_node.result_listeners.append(
        lambda sample, result: result is not None and live['joint'].append(sample.t))
    live_node.wrench_listeners.append(lambda t, residual: live['wrench'].append(t))
    chain.sample_listeners.append(lambda sample, result: replayed['joint'].append(sample.t))
    chain.wrench_listeners.append(lambda t, residual: replayed['wrench'].append(t))
    for t, stamp, names, q, qd, effort, wrench in robot_stream(RobotModel.from_urdf(
            builtin_urdf())):
        now = t + 3e-4                                   # received 0.3 ms after the stamp
        sample = chain.joint_state(stamp, names, q, qd, effort, now)
        assert isinstance(sample, RobotSample), sample
        live_node.take_sample(sample)                    # the sample the bridge accepted
        assert chain.wrench(stamp, wrench, now) is None
        live_node.take_wrench(t, stamp, wrench)
    counters = {'mirror.restarts': 1, 'mirror.nonfinite_results': 2,
                'mirror.samples_without_effort': len(WITHOUT_EFFORT)}
    assert live_node.status_values() == counters
    assert chain.mirror.counters() == counters
    assert replayed == live
    assert len(live['joint']) > 300 and len(live['wrench']) > 300


def test_an_anomaly_node_in_a_process_of_its_own_guards_its_mirror_as_live(live_node):
    # separate processes: twin_anomaly runs a mirror of its own on the robot's topics; its
    # detector must never see a result the mirror node would have dropped
    anomaly = TwinAnomalyNode('anomaly_parity')
    try:
        overflow_at(anomaly._mirror, HUGE_RESULT_AT, NONFINITE_WRENCH_AT)
        seen = {'joint': [], 'wrench': []}

        def take_result(sample, result):
            if result is not None:
                assert np.isfinite(result.effort_residual).all()
                seen['joint'].append(sample.t)

        def take_wrench(t, residual):
            assert np.isfinite(residual).all()
            seen['wrench'].append(t)
        anomaly.take_result = take_result
        anomaly.pipeline.wrench = take_wrench
        live_node.result_listeners.append(
            lambda sample, result: result is not None and seen.setdefault('live', []).append(
                sample.t))
        overflow_at(live_node.mirror, HUGE_RESULT_AT, NONFINITE_WRENCH_AT)
        live_wrench = []
        live_node.wrench_listeners.append(lambda t, residual: live_wrench.append(t))
        for t, stamp, names, q, qd, effort, wrench in robot_stream(RobotModel.from_urdf(
                builtin_urdf())):
            sample = RobotSample(t, stamp, np.asarray(q), np.asarray(qd),
                                 np.asarray(effort) if len(effort) else np.full(len(q), math.nan),
                                 0, False)
            anomaly._own_chain(sample)
            live_node.take_sample(sample)
            anomaly._own_wrench(t, stamp, wrench)
            live_node.take_wrench(t, stamp, wrench)
        assert anomaly._mirror.counters() == live_node.status_values()
        assert anomaly._mirror.nonfinite_results == 2
        assert seen['joint'] == seen['live'] and seen['wrench'] == live_wrench
    finally:
        anomaly.destroy_node()
