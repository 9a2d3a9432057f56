"""Batch twin (twin_sim/batch_twin.py): the live mirror's residuals, computed all at once."""
from pathlib import Path

import numpy as np
import pytest
from twin_sim.batch_twin import BatchDynamics, mirror_trajectory
from twin_sim.mirror import Mirror
from twin_sim.predictor import Predictor
from twin_sim.urdf_model import Payload, RobotModel

ARM = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'
PAYLOAD = Payload(1.5, [0.0, 0.01, 0.04], np.eye(3) * 0.002)


def _stream(seed=0, size=1500):
    """Return a noisy 1 kHz stream with a 60 ms gap, a short bridged gap and a repeated stamp."""
    rng = np.random.default_rng(seed)
    t = (np.arange(size) + 1) * 1e-3
    q = np.cumsum(rng.normal(0.0, 1e-3, (size, 7)), axis=0)
    qd = np.gradient(q, axis=0) / 1e-3 + rng.normal(0.0, 1e-3, (size, 7))
    effort = rng.normal(0.0, 5.0, (size, 7))
    wrench = rng.normal(0.0, 1.0, (size, 6))
    wrench[rng.random(size) < 0.05] = np.nan           # readings dropped now and then
    keep = np.arange(size)
    keep = keep[(keep < 600) | (keep > 660)]             # a gap: the estimator restarts
    keep = np.delete(keep, [300, 301, 302])              # bridged (no restart)
    keep = np.insert(keep, 200, keep[200])               # the same stamp twice
    effort = effort[keep]
    effort[201] += 1.0                                   # ... with other values
    return t[keep], q[keep], qd[keep], effort, wrench[keep]


def _live(model, payload, t, q, qd, effort, wrench):
    """Run the live Mirror sample by sample, as the what-if loop calls it."""
    mirror = Mirror(Predictor(model, payload=payload))
    rows = []
    for k in range(t.size):
        r = mirror.update(t[k], q[k], qd[k], effort[k])
        if r is None:
            continue
        w = np.full(6, np.nan)
        if not np.isnan(wrench[k, 0]):
            w = mirror.wrench_residual(wrench[k])[1]
        rows.append((k, r.position_residual, r.velocity_residual, r.effort_residual, w))
    return rows, mirror.restarts


@pytest.mark.parametrize('payload', [None, PAYLOAD])
def test_batch_mirror_gives_the_live_mirrors_residuals(payload):
    model = RobotModel.from_urdf(ARM)
    t, q, qd, effort, wrench = _stream()
    rows, restarts = _live(model, payload, t, q, qd, effort, wrench)
    out = mirror_trajectory(BatchDynamics(model, payload=payload), t, q, qd, effort, wrench)
    assert out.index.tolist() == [r[0] for r in rows]
    assert out.restarts == restarts == 1
    for col, got in ((1, out.position), (2, out.velocity), (3, out.effort), (4, out.wrench)):
        want = np.array([r[col] for r in rows])
        assert np.array_equal(np.isnan(want), np.isnan(got))
        scale = np.nanmax(np.abs(want))
        # the same arithmetic in another order: rounding only
        assert np.nanmax(np.abs(got - want)) <= 1e-11 * scale


def test_batch_dynamics_matches_the_model():
    model = RobotModel.from_urdf(ARM)
    rng = np.random.default_rng(3)
    q, qd, qdd = (rng.uniform(-1.0, 1.0, (5, 7)) for _ in range(3))
    dyn = BatchDynamics(model, payload=PAYLOAD)
    tau, wrench = dyn.inverse_dynamics(q, qd, qdd)
    for k in range(5):
        assert np.allclose(tau[k], model.inverse_dynamics(q[k], qd[k], qdd[k], payload=PAYLOAD),
                           atol=1e-9)
        assert np.allclose(wrench[k], model.ft_wrench(q[k], qd[k], qdd[k], payload=PAYLOAD),
                           atol=1e-9)
        assert np.allclose(dyn.forward_dynamics(q[k:k + 1], qd[k:k + 1], tau[k:k + 1])[0],
                           qdd[k], atol=1e-8)
    torque_only, none = BatchDynamics(model, wrench=False).inverse_dynamics(q, qd, qdd)
    assert none is None and torque_only.shape == (5, 7)


@pytest.mark.parametrize('locked', [{'joint4': 0.0}, {'joint4': 0.5}, {'joint7': -0.3}])
def test_batch_dynamics_of_a_model_with_locked_joints(locked):
    # the sensor model is built from the model's own URDF (locked joints fixed where they are
    # held), not from the file: read from the file, a locked joint's body counted twice
    model = RobotModel.from_urdf(ARM, locked=locked)
    rng = np.random.default_rng(4)
    q, qd, qdd = (rng.uniform(-1.0, 1.0, (5, 6)) for _ in range(3))
    tau, wrench = BatchDynamics(model, payload=PAYLOAD).inverse_dynamics(q, qd, qdd)
    for k in range(5):
        assert np.allclose(tau[k], model.inverse_dynamics(q[k], qd[k], qdd[k], payload=PAYLOAD),
                           atol=1e-9)
        assert np.allclose(wrench[k], model.ft_wrench(q[k], qd[k], qdd[k], payload=PAYLOAD),
                           atol=1e-9)
