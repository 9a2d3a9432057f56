"""The momentum observer estimates external joint torques with the known answers of physics."""
import numpy as np
import pinocchio as pin
import pytest

from twin_anomaly.momentum_observer import MomentumObserver
from twin_sim import resources
from twin_sim.friction import FrictionModel
from twin_sim.trajectory import DemoMotion
from twin_sim.urdf_model import RobotModel

GAIN = 50.0
SIM_DT = 2.5e-4        # the simulated arm integrates finer than it samples
SAMPLE_EVERY = 4       # 1 kHz samples


@pytest.fixture(scope='module')
def model():
    """Return the built-in arm with viscous friction only (Coulomb makes the test ODE stiff)."""
    arm = RobotModel.from_urdf(resources.builtin_urdf())
    arm.friction_model = FrictionModel(arm.joint_names, viscous=arm.damping)
    return arm


def simulate(model, seconds, external):
    """
    Integrate the arm along a smooth motion (computed-torque tracking) plus ``external(t, q)``.

    Returns the 1 kHz samples ``(t, q, qd, tau_motor, tau_external)``.
    """
    motion = DemoMotion.from_model(model, center=[0.0, 0.5, 0.0, -1.0, 0.0, 0.6, 0.0],
                                   fraction=0.3, period_s=3.0, fade_in_s=0.3)
    q, qd = motion.sample(0.0)[:2]
    out = []
    for k in range(int(round(seconds / SIM_DT))):
        t = k * SIM_DT
        q_ref, qd_ref, qdd_ref = motion.sample(t)
        command = qdd_ref + 400.0 * (q_ref - q) + 40.0 * (qd_ref - qd)
        tau = model.inverse_dynamics(q, qd, command) + model.friction_model.torque(qd)
        ext = external(t, q)
        qdd = model.forward_dynamics(q, qd, tau - model.friction_model.torque(qd) + ext)
        qd = qd + SIM_DT * qdd
        q = q + SIM_DT * qd
        if (k + 1) % SAMPLE_EVERY == 0:
            out.append((t + SIM_DT, q.copy(), qd.copy(), tau.copy(), external(t + SIM_DT, q)))
    return out


def observe(model, samples):
    obs = MomentumObserver(model, GAIN)
    return np.array([obs.update(t, q, qd, tau).copy() for t, q, qd, tau, _ in samples])


def test_no_external_torque_gives_a_residual_near_zero(model):
    samples = simulate(model, 2.0, lambda t, q: np.zeros(model.n))
    r = observe(model, samples)
    assert np.abs(r).max() < 0.05           # N·m, against efforts of tens of N·m


def test_a_torque_step_on_one_joint_is_recovered_on_that_joint_only(model):
    step = np.zeros(model.n)
    step[3] = 3.0

    def external(t, q):
        return step if t >= 1.0 else np.zeros(model.n)

    samples = simulate(model, 1.6, external)
    r = observe(model, samples)
    t = np.array([s[0] for s in samples])
    # first-order response with time constant 1/K: 1 - e^-1 of the step after 1/K
    k_tau = np.searchsorted(t, 1.0 + 1.0 / GAIN)
    assert r[k_tau, 3] == pytest.approx(3.0 * (1.0 - np.exp(-1.0)), abs=0.15)
    settled = t >= 1.0 + 8.0 / GAIN
    assert np.abs(r[settled, 3] - 3.0).max() < 0.05
    others = np.delete(r[settled], 3, axis=1)
    assert np.abs(others).max() < 0.05


def test_a_force_on_a_link_shows_on_its_joint_and_those_before_it_only(model):
    """Isolation: tau_ext = J^T F reaches the joints up to the pushed link, never after it."""
    pm = model.pin_model
    data = pm.createData()
    link = pm.getFrameId('link3')
    force = np.array([0.0, 30.0, 0.0, 0.0, 0.0, 0.0])        # N, world-aligned at the link

    def external(t, q):
        if t < 0.5:
            return np.zeros(model.n)
        jac = pin.computeFrameJacobian(pm, data, q, link, pin.LOCAL_WORLD_ALIGNED)
        return jac.T @ force

    samples = simulate(model, 1.0, external)
    r = observe(model, samples)
    expected = samples[-1][4]
    assert np.abs(expected[:3]).max() > 1.0                 # the push turns joints 1..3
    np.testing.assert_allclose(r[-1], expected, atol=0.08)
    assert np.abs(r[-100:, 3:]).max() < 0.05                # joints after link3 see nothing


def test_a_gap_restarts_the_observer_at_zero(model):
    samples = simulate(model, 0.3, lambda t, q: np.full(model.n, 1.0))
    obs = MomentumObserver(model, GAIN, max_gap_s=0.05)
    for t, q, qd, tau, _ in samples:
        r = obs.update(t, q, qd, tau)
    assert np.abs(r).min() > 0.5
    t, q, qd, tau, _ = samples[-1]
    r = obs.update(t + 0.2, q, qd, tau)                      # 200 ms later: a gap
    assert obs.restarts == 1 and not r.any()
    assert not obs.update(t + 0.2, q, qd, tau).any()         # same stamp: unchanged


def test_samples_lost_by_the_dozen_do_not_make_a_residual(model):
    """
    Across a gap of more than ``1 / K`` the observer restarts instead of integrating.

    A twin starved on a busy computer lost 20-45 ms of samples at a time: the explicit
    feedback step ``(1 - K dt)`` overshoots past ``K dt = 1`` and grows past 2, and the
    residual across such gaps of a moving arm read as collisions.
    """
    samples = simulate(model, 3.0, lambda t, q: np.zeros(model.n))
    rng = np.random.default_rng(5)
    kept, k = [], 0
    while k < len(samples):
        kept.extend(samples[k:k + 60])
        k += 60 + int(rng.integers(20, 46))                  # then 20-45 samples lost
    obs = MomentumObserver(model, GAIN)
    r = np.array([obs.update(t, q, qd, tau).copy() for t, q, qd, tau, _ in kept])
    assert obs.restarts >= 20
    assert np.abs(r).max() < 0.1             # as without gaps: nothing external


def test_bad_settings_are_refused(model):
    with pytest.raises(ValueError, match='gain'):
        MomentumObserver(model, gain=0.0)
    with pytest.raises(ValueError, match='max_gap_s'):
        MomentumObserver(model, max_gap_s=-1.0)
