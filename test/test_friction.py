"""Friction models against hand computations; symmetry; vectorization; params parsing."""
import numpy as np
import pytest

from twin_sim.friction import (
    DEFAULT_SMOOTH_VELOCITY, FrictionError, FrictionModel, sigmoid_gaz, viscous_coulomb,
    viscous_coulomb_regressor)

NAMES = ['a', 'b', 'c']


def test_viscous_coulomb_hand_values():
    qd = np.array([0.5, -2.0, 0.0])
    fv = np.array([0.4, 1.0, 3.0])
    fc = np.array([0.8, 0.5, 2.0])
    fo = np.array([0.1, -0.2, 0.3])
    signed = viscous_coulomb(qd, fv, fc, fo, smooth_velocity=0.0)
    np.testing.assert_allclose(signed, [0.4 * 0.5 + 0.8 + 0.1, -2.0 - 0.5 - 0.2, 0.3])
    smooth = viscous_coulomb(qd, fv, fc, fo, smooth_velocity=0.1)
    np.testing.assert_allclose(smooth, [0.2 + 0.8 * np.tanh(5.0) + 0.1,
                                        -2.0 + 0.5 * np.tanh(-20.0) - 0.2, 0.3])
    # default smoothing: tanh(qd / 0.01)
    assert DEFAULT_SMOOTH_VELOCITY == 0.01
    assert viscous_coulomb(0.005, 0.0, 1.0) == pytest.approx(np.tanh(0.5))


def test_viscous_coulomb_is_odd_without_offset():
    rng = np.random.default_rng(0)
    qd = rng.normal(size=(50, 3))
    fv, fc = rng.uniform(0, 2, 3), rng.uniform(0, 2, 3)
    for smooth in (0.0, 0.05):
        np.testing.assert_allclose(viscous_coulomb(-qd, fv, fc, smooth_velocity=smooth),
                                   -viscous_coulomb(qd, fv, fc, smooth_velocity=smooth))
    # friction opposes motion: the drive supplies torque with the sign of the velocity
    assert np.all(np.sign(viscous_coulomb(qd, fv, fc)) == np.sign(qd))


def test_regressor_reproduces_the_model():
    rng = np.random.default_rng(1)
    qd = rng.normal(size=(40, 3))
    fv, fc, fo = rng.uniform(0, 2, 3), rng.uniform(0, 2, 3), rng.normal(size=3)
    y = viscous_coulomb_regressor(qd, smooth_velocity=0.02)
    assert y.shape == (40, 3, 3)
    theta = np.stack([fv, fc, fo], axis=-1)       # (n, 3)
    np.testing.assert_allclose(np.einsum('tjk,jk->tj', y, theta),
                               viscous_coulomb(qd, fv, fc, fo, smooth_velocity=0.02))
    # a least-squares fit on the regressor recovers the parameters of one joint
    tau = viscous_coulomb(qd, fv, fc, fo, smooth_velocity=0.02)
    fit, *_ = np.linalg.lstsq(y[:, 1, :], tau[:, 1], rcond=None)
    np.testing.assert_allclose(fit, theta[1], atol=1e-10)


def test_sigmoid_gaz_hand_values():
    phi1, phi2, phi3 = 2.0, 10.0, 0.1
    qd = 0.3
    expected = phi1 / (1 + np.exp(-phi2 * (qd + phi3))) - phi1 / (1 + np.exp(-phi2 * phi3))
    assert sigmoid_gaz(qd, phi1, phi2, phi3) == pytest.approx(expected)
    assert sigmoid_gaz(0.0, phi1, phi2, phi3) == 0.0
    # saturates at phi1 * (1 - 1/(1+exp(-phi2 phi3))) for large positive velocity
    assert sigmoid_gaz(1e3, phi1, phi2, phi3) == pytest.approx(
        phi1 - phi1 / (1 + np.exp(-phi2 * phi3)))
    assert np.isfinite(sigmoid_gaz(-1e6, phi1, 1e3, phi3))   # no overflow


def test_sigmoid_gaz_symmetry_and_shapes():
    qd = np.linspace(-3, 3, 61)[:, None] * np.ones(3)
    phi1, phi2 = np.array([1.0, 2.0, 3.0]), np.array([5.0, 20.0, 50.0])
    odd = sigmoid_gaz(qd, phi1, phi2, 0.0)
    assert odd.shape == (61, 3)
    np.testing.assert_allclose(sigmoid_gaz(-qd, phi1, phi2, 0.0), -odd, atol=1e-12)
    # with phi3 != 0 the curve is shifted, so it is not odd
    shifted = sigmoid_gaz(qd, phi1, phi2, 0.2)
    assert not np.allclose(sigmoid_gaz(-qd, phi1, phi2, 0.2), -shifted)
    # with phi3 = 0 it tends to +-phi1/2
    np.testing.assert_allclose(sigmoid_gaz(np.full(3, 100.0), phi1, phi2, 0.0), phi1 / 2)


def test_friction_model_sums_terms_and_vectorizes():
    model = FrictionModel(NAMES, viscous=[1.0, 0.0, 0.5], coulomb=[0.5, 0.0, 0.2],
                          offset=[0.0, 0.1, 0.0], phi1=[0.0, 2.0, 0.0], phi2=[0.0, 10.0, 0.0],
                          smooth_velocity=0.0)
    qd = np.array([1.0, 0.5, -1.0])
    expected = [1.5, 0.1 + sigmoid_gaz(0.5, 2.0, 10.0, 0.0), -0.7]
    np.testing.assert_allclose(model.torque(qd), expected)
    batch = np.tile(qd, (5, 1))
    assert model.torque(batch).shape == (5, 3)
    np.testing.assert_allclose(model.torque(batch)[3], expected)
    with pytest.raises(FrictionError, match=r'shape \(\.\.\., 3\)'):
        model.torque(np.zeros(4))


def test_from_urdf_values():
    class Fake:
        joint_names = NAMES
        damping = np.array([0.5, 0.4, 0.1])
        friction = np.array([0.8, 0.6, 0.2])
    model = FrictionModel.from_urdf(Fake)
    np.testing.assert_array_equal(model.viscous, Fake.damping)
    np.testing.assert_array_equal(model.coulomb, Fake.friction)
    assert model.torque(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]


def test_params_round_trip_and_partial_update():
    base = FrictionModel(NAMES, viscous=[1.0, 1.0, 1.0], coulomb=[0.3, 0.3, 0.3])
    doc = {'robot_twin_dynamics': {'friction_model': 'sigmoid', 'friction': {
        'b': {'phi1': 2.0, 'phi2': 8.0, 'phi3': -0.05, 'offset': 0.02}}}}
    model = FrictionModel.from_params(doc, NAMES, base=base)
    assert model.viscous.tolist() == [1.0, 0.0, 1.0]
    sigmoid = (model.phi1[1], model.phi2[1], model.phi3[1], model.offset[1])
    assert sigmoid == (2.0, 8.0, -0.05, 0.02)
    assert base.phi1[1] == 0.0   # base untouched
    params = model.to_params()
    assert params['friction_model'] == 'sigmoid'
    again = FrictionModel.from_params(params, NAMES)
    qd = np.linspace(-1, 1, 21)[:, None] * np.ones(3)
    np.testing.assert_allclose(again.torque(qd), model.torque(qd))


@pytest.mark.parametrize('friction, match', [
    ({'z': {'viscous': 1, 'coulomb': 1}}, "unknown joint 'z'"),
    ({'a': {'viscous': 1}}, "lacks 'coulomb'"),
    ({'a': {'phi1': 1, 'phi2': 2}}, "lacks 'phi3'"),
    ({'a': {'viscous': 'x', 'coulomb': 1}}, 'must be a number'),
    ({'a': {'offset': 1}}, 'names no model'),
    ({'a': [1, 2]}, 'must be a mapping'),
])
def test_bad_params_name_the_problem(friction, match):
    with pytest.raises(FrictionError, match=match):
        FrictionModel.from_params({'friction': friction}, NAMES)


def test_negative_smoothing_rejected():
    with pytest.raises(FrictionError, match='smooth_velocity'):
        viscous_coulomb(1.0, 1.0, 1.0, smooth_velocity=-1.0)
