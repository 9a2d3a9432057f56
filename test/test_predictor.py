"""Predictor: the per-sample step equals model ID + friction, residual sign, next_state."""
from pathlib import Path

import numpy as np
import pytest

from twin_sim.friction import FrictionModel
from twin_sim.predictor import Prediction, Predictor
from twin_sim.urdf_model import Payload, RobotModel

ARM = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'
PAYLOAD = Payload(2.0, [0.01, 0.0, 0.1], np.diag([2e-3, 2e-3, 1e-3]))


@pytest.fixture(scope='module')
def model():
    return RobotModel.from_urdf(ARM)


def _states(model, seed, count=10):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield (rng.uniform(model.lower, model.upper), rng.uniform(-1.5, 1.5, model.n),
               rng.uniform(-4.0, 4.0, model.n))


@pytest.mark.parametrize('payload', [None, PAYLOAD])
def test_prediction_is_inverse_dynamics_plus_friction(model, payload):
    predictor = Predictor(model, payload=payload)
    friction = FrictionModel.from_urdf(model)
    for q, qd, qdd in _states(model, 0):
        prediction = predictor.predict(q, qd, qdd)
        expected = model.inverse_dynamics(q, qd, qdd, payload=payload) + friction.torque(qd)
        np.testing.assert_allclose(prediction.effort, expected, atol=1e-10)
        np.testing.assert_allclose(prediction.wrench,
                                   model.ft_wrench(q, qd, qdd, payload=payload), atol=1e-10)
    assert model.payload is None   # the predictor works on its own copy


def test_payload_raises_the_predicted_weight(model):
    q, zero = np.zeros(7), np.zeros(7)
    bare = Predictor(model).predict(q, zero, zero)
    predictor = Predictor(model, friction=FrictionModel.zeros(model.joint_names))
    predictor.set_payload(Payload(3.0))
    loaded = predictor.predict(q, zero, zero)
    # arm vertical: the sensor z axis points up, the payload pulls along -z
    assert loaded.wrench[2] - bare.wrench[2] == pytest.approx(-3.0 * 9.81)
    assert predictor.payload.mass == 3.0


def test_custom_friction_is_used(model):
    friction = FrictionModel(model.joint_names, viscous=np.arange(7.0), coulomb=np.zeros(7))
    predictor = Predictor(model, friction=friction)
    q, qd, qdd = next(_states(model, 1))
    np.testing.assert_allclose(predictor.predict(q, qd, qdd).effort,
                               model.inverse_dynamics(q, qd, qdd) + np.arange(7.0) * qd)
    friction.viscous[:] = 100.0   # the predictor keeps its own copy
    np.testing.assert_allclose(predictor.predict(q, qd, qdd).effort,
                               model.inverse_dynamics(q, qd, qdd) + np.arange(7.0) * qd)


def test_residual_is_measured_minus_predicted(model):
    predictor = Predictor(model)
    q, qd, qdd = next(_states(model, 2))
    prediction = predictor.predict(q, qd, qdd)
    residual = predictor.residual(prediction.effort + 0.5, prediction.wrench - 1.0, prediction)
    np.testing.assert_allclose(residual.effort, np.full(7, 0.5))
    np.testing.assert_allclose(residual.wrench, np.full(6, -1.0))
    assert predictor.residual(prediction.effort, None, prediction).wrench is None
    no_ft = Prediction(np.zeros(7))
    assert predictor.residual(np.ones(7), np.ones(6), no_ft).wrench is None
    with pytest.raises(ValueError, match='measured_wrench must have shape'):
        predictor.residual(np.zeros(7), np.zeros(3), prediction)


def test_next_state_is_semi_implicit_euler_of_forward_dynamics(model):
    predictor = Predictor(model, payload=PAYLOAD)
    dt = 1e-3
    for q, qd, qdd in _states(model, 3, 5):
        tau = predictor.predict(q, qd, qdd).effort   # the torque that produces qdd
        q_next, qd_next = predictor.next_state(q, qd, tau, dt)
        np.testing.assert_allclose(qd_next, qd + dt * qdd, atol=1e-9)
        np.testing.assert_allclose(q_next, q + dt * (qd + dt * qdd), atol=1e-12)
        other = np.zeros(7)
        expected_qdd = model.forward_dynamics(q, qd, other - predictor.friction.torque(qd),
                                              payload=PAYLOAD)
        _, qd_free = predictor.next_state(q, qd, other, dt)
        np.testing.assert_allclose(qd_free, qd + dt * expected_qdd, atol=1e-9)


def test_falling_arm_loses_height(model):
    """Unpowered arm held horizontal swings down: joint2 accelerates towards the vertical."""
    predictor = Predictor(model, friction=FrictionModel.zeros(model.joint_names))
    q = np.array([0.0, np.pi / 2, 0.0, 0.0, 0.0, 0.0, 0.0])
    qd = np.zeros(7)
    for _ in range(50):
        q, qd = predictor.next_state(q, qd, np.zeros(7), 1e-3)
    assert qd[1] > 0.5 and q[1] > np.pi / 2   # rotation about +y lowers the arm along +x


def test_bad_inputs(model):
    predictor = Predictor(model)
    with pytest.raises(ValueError, match=r'qd must have shape \(7,\)'):
        predictor.predict(np.zeros(7), np.zeros(6), np.zeros(7))
    with pytest.raises(ValueError, match='dt must be > 0'):
        predictor.next_state(np.zeros(7), np.zeros(7), np.zeros(7), 0.0)
    with pytest.raises(TypeError, match='RobotModel'):
        Predictor('robot.urdf')
    with pytest.raises(ValueError, match='differ'):
        Predictor(model, friction=FrictionModel.zeros(['a']))
