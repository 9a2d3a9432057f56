"""
Tests of twin_anomaly.calibration: commissioning calibration of the twin's model.

The robot is a randomized plant (twin_sim.randomization variant, simulated by
twin_sim.plant): bodies off by up to 8 %, viscous friction 1-4x, Coulomb friction and rotor
inertia that the twin's URDF lacks, sensor noise 1e-4 rad, 1e-3 rad/s, 0.05 N·m, on the demo
motion. The residual floor is measured as the live twin forms residuals, through
twin_sim.mirror.Mirror, on motion after the commissioning data.
"""
import math
import warnings

import numpy as np
import pytest
from sysid_testing import (block_means, CLOSE_RANDOMIZATION, mirror_residuals, PointToPoint,
                           randomized_robot, run_plant, urdf_without_coulomb)
from twin_anomaly.calibration import (apply, CalibrationConfig, CalibrationResult, Calibrator,
                                      load_result, save_result)
from twin_sim.predictor import Predictor
from twin_sim.resources import builtin_urdf
from twin_sim.sysid import base_parameters, nominal_parameters
from twin_sim.trajectory import DemoMotion
from twin_sim.urdf_model import RobotModel
import yaml

COLLECT_S = 20.0      # nominal motion the calibrator sees
EVAL_S = 10.0         # then one period of the demo motion, never seen by the fit
DT = 0.001
DT_EXACT = 2.0 ** -10  # s, a sample period binary floats hold exactly (blocks of 8 at 128 Hz)


def model_of(urdf):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        return RobotModel.from_urdf(urdf)


@pytest.fixture(scope='module')
def plant_run(tmp_path_factory):
    """Run the randomized robot on the demo motion; calibrate its twin's model."""
    tmp = tmp_path_factory.mktemp('calibration')
    twin = model_of(urdf_without_coulomb(builtin_urdf(), tmp / 'twin.urdf'))
    variant, rotor = randomized_robot(builtin_urdf(), tmp, seed=0)
    motion = DemoMotion.from_model(twin)
    t, q, qd, effort = run_plant(variant, motion, COLLECT_S + EVAL_S, rotor_inertia=rotor)
    calibrator = Calibrator(twin)
    end = int(round(COLLECT_S / DT))
    for k in range(end):
        calibrator.add(t[k], q[k], qd[k], effort[k])
    truth = model_of(variant)
    truth.pin_model.armature[:] = rotor
    held = slice(end, len(t))
    return {'twin': twin, 'truth': truth, 'calibrator': calibrator, 'result': calibrator.fit(),
            'held_out': (t[held], q[held], qd[held], effort[held]),
            'collected': (q[:end], qd[:end], effort[:end])}


def residual_rms(model, samples):
    """Per-sample and 20 ms block-mean effort residual RMS (n,) N·m through the Mirror."""
    res, stamps = mirror_residuals(model, *samples)
    return (np.sqrt(np.mean(res ** 2, axis=0)),
            np.sqrt(np.mean(block_means(res, stamps) ** 2, axis=0)))


# ------------------------------------------------------------------ collecting
def test_add_stores_block_means_at_the_configured_rate():
    twin = model_of(builtin_urdf())
    cal = Calibrator(twin, CalibrationConfig(min_duration_s=1.0, max_duration_s=2.0,
                                             sample_rate_hz=128.0))
    n = twin.n
    slope = np.linspace(0.1, 0.7, n)
    for k in range(1500):                       # 1.46 s at 1.024 kHz, linear signals
        t = DT_EXACT * k
        cal.add(t, slope * t, slope, -slope * t)
    assert cal.samples_seen == 1500
    assert cal.ready and cal.progress == 1.0
    stored = cal._stored
    assert stored == 187                        # 1500 / 8 blocks of 8 samples, the last open
    t_blocks = cal._t[:stored]
    assert np.allclose(np.diff(t_blocks), 8 * DT_EXACT)
    # the block mean of a linear signal is its value at the block's mean stamp
    assert np.allclose(cal._data[:stored, 0], t_blocks[:, None] * slope)
    assert np.allclose(cal._data[:stored, 1], slope)
    assert np.allclose(cal._data[:stored, 2], -t_blocks[:, None] * slope)


def test_add_drops_bad_blocks_and_stops_when_full():
    twin = model_of(builtin_urdf())
    cal = Calibrator(twin, CalibrationConfig(min_duration_s=0.5, max_duration_s=0.5,
                                             sample_rate_hz=100.0))
    zeros = np.zeros(twin.n)
    bad = zeros.copy()
    bad[3] = np.nan
    for k in range(30):
        cal.add(1e-3 * k, bad if k == 15 else zeros, zeros, zeros)
    cal.add(0.0, zeros, zeros, zeros)           # a stamp from the past
    assert cal.stamps_back == 1
    cal.add(0.031, zeros, zeros, zeros)         # closes the block that held the NaN
    assert cal.blocks_dropped == 1 and cal._stored == 2
    with pytest.raises(ValueError, match=r'q must have shape \(7,\)'):
        cal.add(0.05, np.zeros(3), zeros, zeros)
    k, accepted = 60, True
    while accepted:
        accepted = cal.add(1e-3 * k, zeros, zeros, zeros)
        k += 1
    assert cal.full and cal._stored == len(cal._t)
    assert cal.add(1e-3 * k, zeros, zeros, zeros) is False


@pytest.mark.parametrize('field, value', [('min_duration_s', 0.0), ('sample_rate_hz', -1.0),
                                          ('train_fraction', 1.0), ('friction', 'stribeck'),
                                          ('regularization', 'auto'),
                                          ('max_duration_s', 1.0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f'CalibrationConfig.{field}'):
        CalibrationConfig(**{field: value})


def test_fit_without_enough_data_is_not_accepted():
    twin = model_of(builtin_urdf())
    cal = Calibrator(twin)
    zeros = np.zeros(twin.n)
    for k in range(2000):
        cal.add(1e-3 * k, zeros, zeros, zeros)
    result = cal.fit()
    assert not cal.ready and not result.accepted
    assert 'only 2.0 s of nominal motion collected, 10 s needed' in result.reason
    assert np.all(np.isnan(result.rmse_after)) and result.params == {}
    assert apply(twin, result).pin_model.inertias[3] == twin.pin_model.inertias[3]


def test_robot_at_rest_gives_a_reason_not_a_calibration():
    twin = model_of(builtin_urdf())
    cal = Calibrator(twin)
    rng = np.random.default_rng(0)
    q = np.full(twin.n, 0.3)
    for k in range(12000):                      # 12 s at 1 kHz, holding still with noise
        cal.add(1e-3 * k, q + 1e-4 * rng.standard_normal(twin.n),
                1e-3 * rng.standard_normal(twin.n),
                twin.gravity(q) + 0.05 * rng.standard_normal(twin.n))
    result = cal.fit()
    assert cal.ready and not result.accepted
    assert result.reason.startswith('identification could not use the data: no joint moves')
    assert any('does not move' in w for w in result.details['warnings'])


def test_a_joint_that_hardly_moves_stays_at_the_prior():
    """
    A joint that only slips a little in commissioning is held still, not fitted to the slips.

    joint7 stays within 0.02 rad (a slow creep) while holding 0.4 N·m its model does not
    predict (static friction); the other joints move. Fitted, such a joint's friction went
    anywhere: a simulated wrist got 0.05 N·m of Coulomb friction for its 1.3, and its holding
    torque as an offset.
    """
    twin = model_of(builtin_urdf())
    motion = DemoMotion.from_model(twin, center=[0.0, 0.5, 0.0, -1.0, 0.0, 0.6, 0.0],
                                   fraction=0.3, period_s=3.0, fade_in_s=0.5)
    rng = np.random.default_rng(4)
    t = np.arange(15000) * DT
    q, qd, qdd = motion.sample(t)
    q[:, 6] = 0.01 * np.sin(2 * np.pi * t / 15.0)
    qd[:, 6] = 0.01 * 2 * np.pi / 15.0 * np.cos(2 * np.pi * t / 15.0)
    qdd[:, 6] = 0.0
    cal = Calibrator(twin)
    for k in range(t.size):
        effort = twin.inverse_dynamics(q[k], qd[k], qdd[k]) + twin.friction_model.torque(qd[k])
        effort[6] += 0.4
        cal.add(t[k], q[k] + 1e-4 * rng.standard_normal(twin.n),
                qd[k] + 1e-3 * rng.standard_normal(twin.n),
                effort + 0.05 * rng.standard_normal(twin.n))
    result = cal.fit()
    assert any(w.startswith('joint joint7 moves only') and 'held still' in w
               for w in result.details['warnings'])
    assert np.isnan(result.rmse_after[6]) and np.isfinite(result.rmse_after[:6]).all()
    assert 'joint7' not in result.params['robot_twin_dynamics']['friction']
    calibrated = apply(twin, result).friction_model
    assert calibrated.coulomb[6] == twin.friction_model.coulomb[6]
    assert calibrated.offset[6] == twin.friction_model.offset[6]


# ------------------------------------------------------------------ the randomized plant
def test_calibration_recovers_the_randomized_robot(plant_run):
    result, truth, twin = plant_run['result'], plant_run['truth'], plant_run['twin']
    assert result.accepted, result.reason
    assert result.duration_s == pytest.approx(COLLECT_S, abs=0.02)
    # held-out torque RMSE (last 30 % of the commissioning data): from 0.3-1.2 N·m to ~0.1
    assert np.all(result.rmse_before > 0.3), result.rmse_before
    assert np.all(result.rmse_after < 0.2), result.rmse_after
    doc = result.params['robot_twin_dynamics']
    names = twin.joint_names
    viscous = np.array([doc['friction'][j]['viscous'] for j in names])
    coulomb = np.array([doc['friction'][j]['coulomb'] for j in names])
    offset = np.array([doc['friction'][j]['offset'] for j in names])
    assert np.all(np.abs(viscous - truth.damping) < 0.1 + 0.05 * truth.damping), viscous
    assert np.all(np.abs(coulomb - truth.friction) < 0.05), coulomb
    assert np.all(np.abs(offset) < 0.1), offset         # the plant has no effort offset
    # Rotor inertia: joints 1 and 2 only act with their bodies' inertia about the axis (no
    # motion tells them apart); the others are identified.
    rotor = truth.pin_model.armature
    assert set(doc['armature']) == set(names[2:])
    found = np.array([doc['armature'][j] for j in names[2:]])
    assert np.all(np.abs(found - rotor[2:]) < 0.1), (found, rotor[2:])
    # Gravity base parameters (masses and first moments), which any motion excites, within 2 %.
    base = base_parameters(twin.pin_model)
    theta = np.concatenate([doc['bodies'][j]['dynamic_parameters'] for j in names])
    beta = base.projection @ theta
    beta_true = base.projection @ nominal_parameters(truth.pin_model)
    gravity = [i for i in range(base.rank) if np.abs(beta_true[i]) > 0.05 and all(
        term.rsplit('.', 1)[-1] in ('m', 'mcx', 'mcy', 'mcz')
        for term in base.describe(i).split(' + '))]
    assert len(gravity) >= 4
    assert np.allclose(beta[gravity], beta_true[gravity], rtol=0.02, atol=0.005)
    # The rest is judged by what it predicts: the true robot's torques (bodies, rotor inertia,
    # friction) at random states within the commissioning motion's range, where the nominal
    # motion did not go (measured: 0.4-8 % of the torque RMS, the URDF's 10-84 %).
    rng = np.random.default_rng(0)
    q, qd, _effort = plant_run['collected']
    calibrated = apply(twin, result)
    errors = {'calibrated': [], 'urdf': []}
    scale = []
    for _ in range(300):
        state = (rng.uniform(q.min(0), q.max(0)), rng.uniform(qd.min(0), qd.max(0)),
                 rng.uniform(-3.0, 3.0, twin.n))
        true = truth.inverse_dynamics(*state) + truth.damping * state[1] + \
            truth.friction * np.tanh(state[1] / 0.01)
        scale.append(true)
        for name, model in (('calibrated', calibrated), ('urdf', twin)):
            predicted = model.inverse_dynamics(*state) + model.friction_model.torque(state[1])
            errors[name].append(predicted - true)
    relative = {k: np.sqrt(np.mean(np.square(v), 0) / np.mean(np.square(scale), 0))
                for k, v in errors.items()}
    assert np.all(relative['calibrated'] < 0.1), relative
    assert np.all(relative['calibrated'] < 0.5 * relative['urdf']), relative


def test_calibrated_residual_floor(plant_run):
    """
    Residuals through the Mirror, on the next period of motion.

    The calibrated model is at the floor that sensor noise leaves (the true model's); the
    URDF's is not.
    """
    samples = plant_run['held_out']
    calibrated = apply(plant_run['twin'], plant_run['result'])
    prior, prior_blocks = residual_rms(plant_run['twin'], samples)
    after, after_blocks = residual_rms(calibrated, samples)
    floor, floor_blocks = residual_rms(plant_run['truth'], samples)
    assert np.all(after_blocks <= 0.3), after_blocks
    assert np.all(after_blocks <= floor_blocks + 0.03), (after_blocks, floor_blocks)
    assert np.all(after <= 1.05 * floor + 0.01), (after, floor)
    assert np.all(prior_blocks > 0.3) and np.all(prior_blocks > 4 * after_blocks)


def test_result_round_trip_and_apply(tmp_path, plant_run):
    result, twin = plant_run['result'], plant_run['twin']
    again = CalibrationResult.from_dict(yaml.safe_load(yaml.safe_dump(result.to_dict())))
    assert again.accepted and again.reason == result.reason
    assert np.array_equal(again.rmse_after, result.rmse_after)
    assert again.params == result.params
    path = tmp_path / 'calibration.yaml'
    save_result(path, result)
    loaded = load_result(path)
    q, qd, qdd = np.full(7, 0.3), np.full(7, 0.5), np.full(7, 1.0)
    p1 = Predictor(apply(twin, loaded)).predict(q, qd, qdd).effort
    p2 = Predictor(apply(twin, result)).predict(q, qd, qdd).effort
    assert np.array_equal(p1, p2)
    assert not np.allclose(p1, Predictor(twin).predict(q, qd, qdd).effort, atol=0.1)
    assert apply(twin, result).pin_model.armature[2] > 0.05       # rotor inertia applied
    rejected = CalibrationResult.from_dict(dict(result.to_dict(), accepted=False))
    p3 = Predictor(apply(twin, rejected)).predict(q, qd, qdd).effort
    assert np.array_equal(p3, Predictor(twin).predict(q, qd, qdd).effort)
    for broken, match in ((dict(result.to_dict(), version=7), 'version 7'),
                          (dict(result.to_dict(), rmse_after=[0.1]), 'rmse_after has 1'),
                          ({k: v for k, v in result.to_dict().items() if k != 'reason'},
                           'reason')):
        with pytest.raises(ValueError, match=match):
            CalibrationResult.from_dict(broken)
    (tmp_path / 'other.yaml').write_text('thresholds: {}\n')
    with pytest.raises(ValueError, match='not a calibration file'):
        load_result(tmp_path / 'other.yaml')
    other = model_of(builtin_urdf())
    other.joint_names = other.joint_names[::-1]
    with pytest.raises(ValueError, match='the calibration is for joints'):
        apply(other, result)


# ------------------------------------------------------------------ poor excitation
def test_poorly_exciting_commissioning_never_worse_than_the_urdf(tmp_path):
    """
    Commissioning on one point-to-point move and rest, beside a robot its URDF fits well.

    The calibration may be used only if it predicts the held-out part no worse; then the
    residuals through the Mirror, on a later stretch, are no worse than the URDF's either.
    """
    urdf = builtin_urdf()
    twin = model_of(urdf)
    lo, hi = 0.5 * twin.lower, 0.5 * twin.upper
    rng = np.random.default_rng(3)
    move = PointToPoint(twin.joint_names, rng.uniform(lo, hi), rng.uniform(lo, hi), 3.0, 7.0,
                        20.0, amplitude=3e-4)
    variant, _ = randomized_robot(urdf, tmp_path, seed=1, ranges=CLOSE_RANDOMIZATION)
    t, q, qd, effort = run_plant(variant, move, 20.0, rotor_inertia=np.zeros(7), seed=2)
    cal = Calibrator(twin)
    end = int(round(12.0 / DT))
    for k in range(end):
        cal.add(t[k], q[k], qd[k], effort[k])
    result = cal.fit()
    assert math.isfinite(result.fit_time_s)
    if result.accepted:
        act = ~np.isnan(result.rmse_after)
        assert np.all(result.rmse_after[act] <= 1.1 * result.rmse_before[act] + 0.01)
    later = (t[end:], q[end:], qd[end:], effort[end:])
    prior, prior_blocks = residual_rms(twin, later)
    used, used_blocks = residual_rms(apply(twin, result), later)
    assert np.all(used_blocks <= 1.1 * prior_blocks + 0.01), (used_blocks, prior_blocks)


def test_a_robot_that_counts_an_effort_against_the_axis_is_told(plant_run):
    # the same commissioning data, but the robot gives joint2's effort with the other sign:
    # the calibration names it (the monitor logs these warnings whatever it decides)
    (q, qd, effort), twin = plant_run['collected'], plant_run['twin']
    t = np.arange(1, len(q) + 1) * DT
    flipped = effort.copy()
    flipped[:, 1] *= -1.0
    calibrator = Calibrator(twin)
    for k in range(len(t)):
        calibrator.add(t[k], q[k], qd[k], flipped[k])
    result = calibrator.fit()
    warnings_ = result.details['effort_warnings']
    assert len(warnings_) == 1 and warnings_[0].startswith(
        'joint joint2: the measured effort runs against the prediction'), warnings_
    assert plant_run['result'].details['effort_warnings'] == []
