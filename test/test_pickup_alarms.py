"""
A pick-up the robot's program tells the twin about raises no alarm; one it does not is raised.

The emulated plant (test/bag_testing.py) picks up a load at its force-torque sensor while it
moves; the recording, wrench included, is replayed through the twin (``robot-twin replay``,
offline, no DDS) with the declaration on /twin/payload where the program sent it. The wrench's
and the observer's residuals keep an error that grows with the load, and the thresholds were
learned without it: a drift alarm on the wrench's fx came every motion cycle. (Told as the load
comes, joint7 also raised a sensor-bias alarm while the twin passed over the sample at which its
mirror restarted on the new model: the position-velocity check bridged that gap just as the
pick-up jolted the joint. The mirror no longer restarts there.) The recordings are built here
rather than taken from test_replay.py, whose pick-up is shorter than the motion cycle that
repeats the wrench alarm.
"""
import dataclasses

from bag_testing import payload_declaration, REPLAY_CONFIG, Run, simulate, write_bag
import numpy as np
import pytest
from robot_twin.fault_runs import NOISE
from robot_twin.replay import replay

PICK_S = 4.0
DURATION_S = 10.0            # the motion's period is 2 s: three cycles with the load
COM = (0.0, 0.0, 0.05)


def _pick(mass, *faults):
    """Simulate ``mass`` kg picked up at PICK_S, and any further ``faults`` (scenario dicts)."""
    from twin_sim.faults import FaultScenario
    return simulate(DURATION_S, scenario=FaultScenario.from_dict({'name': 'pick', 'faults': [
        {'type': 'payload_change', 'start_s': PICK_S, 'ramp_s': 0.0, 'size': mass,
         'com': list(COM)}, *faults]}))


def _noisy(run):
    """Return ``run`` read by sensors with the fault runs' white noise."""
    rng = np.random.default_rng(7)
    samples = []
    for m in run.samples:
        n = len(m.q)
        noise = np.concatenate([NOISE['force'] * rng.standard_normal(3),
                                NOISE['torque'] * rng.standard_normal(3)])
        samples.append(dataclasses.replace(
            m, q=m.q + NOISE['position'] * rng.standard_normal(n),
            qd=m.qd + NOISE['velocity'] * rng.standard_normal(n),
            effort=m.effort + NOISE['effort'] * rng.standard_normal(n), wrench=m.wrench + noise))
    return Run(run.names, samples, run.commands)


@pytest.fixture(scope='module')
def pick():
    """2 kg picked up at PICK_S, noise-free sensors."""
    return _pick(2.0)


@pytest.fixture(scope='module')
def heavy_noisy_pick():
    """5 kg picked up at PICK_S, read by sensors with the fault runs' white noise."""
    return _noisy(_pick(5.0))


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'replay.yaml'
    path.write_text(REPLAY_CONFIG)
    return str(path)


def _replay(run, config, path, told_at=None, mass=None):
    more = [] if told_at is None else [payload_declaration(told_at, mass, COM)]
    return replay(write_bag(path, run, more=more), config=config)


@pytest.mark.parametrize('told_at', [PICK_S - 0.1, PICK_S])
def test_a_pick_up_told_before_or_as_it_comes_raises_no_alarm(pick, config, tmp_path,
                                                              told_at):
    # before: a drift alarm on the wrench's fx at 5.06 s (told early) or 5.98 s, and again
    # every motion cycle (block means up to 0.027 N against a learned spread of 0.01 N)
    report = _replay(pick, config, tmp_path / 'told', told_at, 2.0)
    assert report['payloads']['counts'] == {'applied': 1, 'refused': 0}
    assert report['anomalies'] == [], report['anomalies']


def test_a_heavier_pick_up_told_with_noisy_sensors_raises_no_alarm(heavy_noisy_pick, config,
                                                                   tmp_path):
    # with noise as on the fault runs' robots the learned spreads are wider, but 5 kg still
    # made joint6's observer alarm: the spreads must grow with the load. Joint7's effort noise
    # level (mean square second difference) rose 6-fold with the load, its drive's ripple
    # growing with the 11-fold inertia: a sensor_noise alarm from 4.1 s until the noise
    # level was judged relative to that growth too
    report = _replay(heavy_noisy_pick, config, tmp_path / 'told', PICK_S - 0.1, 5.0)
    assert report['anomalies'] == [], report['anomalies']


def test_effort_noise_while_a_told_load_is_carried_is_raised_on_its_joint(config, tmp_path):
    """Joint7's effort sensor turns noisy 2 s after the told 5 kg pick-up: found there."""
    # the load may have raised joint7's effort level by up to its inertia growth squared
    # (11.4 ** 2), so the noise found is larger than without a load (0.1 N·m, twice the
    # nominal, is found then): 1 N·m was not, 1.25 N·m is
    fault = {'type': 'sensor_noise', 'signal': 'effort', 'joint': 'joint7',
             'start_s': PICK_S + 2.0, 'ramp_s': 0.0, 'size': 2.0}
    report = _replay(_noisy(_pick(5.0, fault)), config, tmp_path / 'noise', PICK_S - 0.1, 5.0)
    assert {(a['group'], a['channel'], a['fault_type']) for a in report['anomalies']} \
        == {('joint7', 'noise_tau', 'sensor_noise')}, report['anomalies']


@pytest.mark.parametrize('told', [None, 1.8])
def test_a_pick_up_not_told_or_told_wrong_is_raised(pick, config, tmp_path, told):
    """Not told, it is a payload change; told 10 % light, the wrench still sees the rest."""
    report = _replay(pick, config, tmp_path / 'wrong', None if told is None else PICK_S - 0.1,
                     told)
    groups = {a['group'] for a in report['anomalies']}
    assert 'wrench' in groups, report['anomalies']
    if told is None:
        assert {a['fault_type'] for a in report['anomalies']} == {'payload_change'}
