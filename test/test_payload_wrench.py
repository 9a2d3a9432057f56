"""
A pick-up the twin is told about, with a force-torque sensor: the wrench residual stays small.

The emulated plant (test/bag_testing.py: the demo motion at 1 kHz) picks up 2 kg at the sensor
(``payload_change``); the mirror, as the live twin (and a replay) does, predicts with the
declared load from where the declaration arrived: with the gripper command, 0.1 s before the
load is on, or as it comes on. Once the load is on and the monitor's settle time (1 s) is over,
what is left is the mirror's own estimation error for a load it knows exactly (it pairs the
newest state with the step's acceleration): hundredths of a newton with this load. It used to
be 0.35 N typical (1.2 N peaks): the plant's reading was PyBullet's joint reaction, which in
motion misses part of the load's velocity-product forces (test_plant.py checks the reading
against the load's motion).
"""
from bag_testing import simulate
import numpy as np
import pytest
from twin_sim.faults import FaultScenario
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import Payload, RobotModel

PICK_S = 4.0
PICK_KG = 2.0
PICK_COM = (0.0, 0.0, 0.05)
RADIUS_M = 0.05            # the payload_change fault's solid sphere
SETTLE_S = 1.0             # the monitor's payload_settle_s: the wrench is judged after it
DURATION_S = 6.0


@pytest.fixture(scope='module')
def pick():
    """Return the plant's samples of a robot that picks up PICK_KG at PICK_S."""
    return simulate(DURATION_S, scenario=FaultScenario.from_dict({'name': 'pick', 'faults': [
        {'type': 'payload_change', 'start_s': PICK_S, 'ramp_s': 0.0, 'size': PICK_KG,
         'com': list(PICK_COM), 'radius_m': RADIUS_M}]})).samples


def _wrench_residuals(samples, told_s):
    """Return stamps (m,) and wrench residuals (m, 6) of the mirror told the load at told_s."""
    model = RobotModel.from_urdf(builtin_urdf())
    payload = Payload(PICK_KG, PICK_COM, 0.4 * PICK_KG * RADIUS_M ** 2 * np.eye(3))
    mirror = Mirror(Predictor(model))
    stamps, residuals = [], []
    for m in samples:
        if m.t >= told_s and mirror.predictor.payload is None:
            mirror.set_predictor(Predictor(model.with_payload(payload)))   # as the live twin
        if mirror.update(m.t, m.q, m.qd, m.effort) is not None:
            stamps.append(m.t)
            residuals.append(mirror.wrench_residual(m.wrench, m.t)[1])
    return np.array(stamps), np.array(residuals)


def test_a_told_pick_up_leaves_only_the_mirrors_own_wrench_residual(pick):
    early_t, early = _wrench_residuals(pick, PICK_S - 0.1)      # with the gripper command
    on_t, on = _wrench_residuals(pick, PICK_S)                   # as the load comes on
    judged = early_t >= PICK_S - 0.1 + SETTLE_S
    assert judged.sum() > 1000
    force, torque = np.abs(early[judged, :3]).max(), np.abs(early[judged, 3:]).max()
    assert force < 0.1 and torque < 0.01, (force, torque)
    # before the pick, with the tool alone, a tenth of that
    unloaded = (early_t > 1.0) & (early_t < PICK_S - 0.1)
    assert np.abs(early[unloaded, :3]).max() < 0.02
    # where the declaration was taken no longer matters once the load is on and filtered
    after_early, after_on = early_t > PICK_S + 0.2, on_t > PICK_S + 0.2
    assert np.array_equal(early_t[after_early], on_t[after_on])
    np.testing.assert_allclose(early[after_early], on[after_on], rtol=0.0, atol=1e-9)
