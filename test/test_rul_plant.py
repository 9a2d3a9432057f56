"""
RUL on the emulated robot: incipient friction wear of known growth, and a healthy arm.

The plant (PyBullet, 500 Hz) wears as ``test/data/rul_wear_joint3.yaml`` says: joint3's
Coulomb friction grows by 0.02 N·m per second from 40 s. The twin's mirror and the RUL monitor
run on its samples exactly as live, time-compressed (``time_scale`` 3600: a second of motion
counts as an operating hour). The service friction is the URDF friction + 2.5 N·m, reached at
165 s: the true RUL at plant time ``t`` is ``165 - t`` hours.
"""
import math
from pathlib import Path

import numpy as np
import pytest
from robot_twin.rul_sim import compressed_config, simulate_rul, time_to_friction
from twin_sim.faults import FaultScenario

DATA = Path(__file__).resolve().parent / 'data'
SEEDS = (0, 1, 2)
REFERENCE_SPEED = 0.2
ADDED_AT_SERVICE = 2.5
CHECKPOINTS = (100.0, 120.0, 140.0, 148.0)


def _config():
    return compressed_config('joint3', ADDED_AT_SERVICE, REFERENCE_SPEED)


@pytest.fixture(scope='module')
def wear_runs():
    scenario = FaultScenario.load(DATA / 'rul_wear_joint3.yaml')
    failure_t = time_to_friction(scenario, 'joint3', ADDED_AT_SERVICE)
    assert failure_t == pytest.approx(165.0)
    runs = [simulate_rul(scenario, _config(), duration_s=150.0, seed=s) for s in SEEDS]
    return failure_t, runs


def _at(run, t):
    return int(np.argmin(np.abs(run.t - t)))


def test_rul_converges_to_the_true_time_and_the_interval_covers_it(wear_runs):
    failure_t, runs = wear_runs
    j = runs[0].joint_names.index('joint3')
    covered = dict.fromkeys(CHECKPOINTS, 0)
    for run in runs:
        # operating hours follow plant time: the arm moves all the time after its fade-in
        assert run.operating_hours[-1] == pytest.approx(run.t[-1], abs=1.5)
        errors = []
        for t in CHECKPOINTS:
            i = _at(run, t)
            true = failure_t - run.t[i]
            assert math.isfinite(run.rul[i, j]), run.messages[i][j]
            errors.append(abs(run.rul[i, j] - true) / true)
            covered[t] += run.lower[i, j] <= true <= run.upper[i, j]
        assert max(errors) < 0.2, errors
        assert errors[-1] < 0.1, errors
    # "most runs": at every checkpoint the 90 % interval holds the truth in 2 of 3 or more
    assert all(n >= 2 for n in covered.values()), covered


def test_worn_joint_gets_advice_and_the_others_stay_healthy(wear_runs):
    failure_t, runs = wear_runs
    for run in runs:
        j = run.joint_names.index('joint3')
        levels = [row[j] for row in run.levels]
        assert levels[-1] == 'ERROR' and 'WARN' in levels
        first_warn = levels.index('WARN')
        assert run.t[first_warn] > 40.0                 # never before the wear began
        lower_then = run.lower[first_warn, j]
        assert lower_then <= 60.0 and failure_t - run.t[first_warn] < 120.0
        assert run.actions[-1][j] == 'lubricate'
        assert 0.0 < run.health[-1, j] < 0.3
        for k, name in enumerate(run.joint_names):
            if name == 'joint3':
                continue
            assert all(row[k] == 'OK' for row in run.levels), name
            assert np.all(np.isnan(run.rul[:, k])), name
            assert run.messages[-1][k] == 'no degradation seen'


def test_healthy_robot_never_alarms():
    run = simulate_rul(DATA / 'rul_nominal_noisy.yaml', _config(), duration_s=150.0, seed=5)
    assert all(level == 'OK' for row in run.levels for level in row)
    assert np.all(np.isnan(run.rul))
    assert all(m == 'no degradation seen' for m in run.messages[-1])
    assert np.all(run.health[-1] > 0.9)
