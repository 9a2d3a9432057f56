"""
The position-velocity sums' thresholds at low joint-state rates: learned from their steps.

The pv_bias channel is a leaky sum (5 s) of what each block's position change has that its
integrated velocity does not. At 100 Hz the velocity noise integrates to a random walk that
the leak bounds, and a commissioning of 30 s holds too few independent values of it to learn
its spread or its 0.999 quantile: the benchmarks' robots raised false position alarms about
three times an hour (BENCHMARKS.md). The monitor now tells the sums' long-run spread from
their many steps and floors the learned thresholds at it.
"""
import numpy as np

from robot_twin import fault_runs
from sysid_testing import UR5E_LIKE_URDF
from twin_anomaly.classifier import JOINT_DETECTORS
from twin_anomaly.monitor import AnomalyMonitor, MonitorConfig
from twin_bridge.intake import RobotSample
from twin_sim import resources
from twin_sim.trajectory import DemoMotion
from twin_sim.urdf_model import RobotModel

UR5E_CENTER = (0.0, -1.2, 1.0, -1.4, -1.57, 0.0)      # elbow up (the benchmarks' pose)


def pv_scales(monitor):
    """Return the learned scale of each joint's pv_bias channel, rad."""
    k = JOINT_DETECTORS.index('pv_bias')
    return monitor.fused.learned['scale'][np.arange(monitor.n) * monitor._d + k]


def test_an_arm_at_100_hz_raises_no_false_position_alarm():
    """
    The UR5e-like arm at 100 Hz, fault-free: the run that raised a position alarm 12 s in.

    Its wrist_3 pv_bias reached 1.05 of the threshold learned from the blocks alone
    (``sensor_bias``, cleared after 3.8 s); with the spread told from the steps it stays
    well below.
    """
    case = fault_runs.Case(arm=str(UR5E_LIKE_URDF), engine='mujoco', seed=2000, index=100,
                           motion_seed=2100, sample_rate_hz=100.0, center=UR5E_CENTER)
    result = fault_runs.nominal_run(case, 40.0)
    assert result.alarms == []
    assert float(result.score.max()) < 0.95


def test_a_velocity_that_is_the_position_s_difference_keeps_a_narrow_threshold():
    """
    A robot whose velocity is its position's backward difference (no velocity sensor).

    Its position noise then telescopes out of the sums: they hold about one reading's noise,
    nothing accumulates, and the spread told from the steps must not widen the threshold.
    A model of white velocity noise would have (the difference of noisy positions has a
    second difference hundreds of times the position noise): 0.04 rad and more here.
    """
    model = RobotModel.from_urdf(resources.builtin_urdf())
    motion = DemoMotion.from_model(model, center=[0.0, 0.5, 0.0, -1.0, 0.0, 0.6, 0.0],
                                   fraction=0.3, period_s=3.0, fade_in_s=0.5)
    monitor = AnomalyMonitor(model, MonitorConfig(commissioning_duration_s=30.0,
                                                  calibration=False))
    rng = np.random.default_rng(3)
    dt = 0.01
    t = np.arange(1, 3201) * dt
    q, qd, qdd = motion.sample(t)
    measured = q + 1e-4 * rng.standard_normal(q.shape)
    velocity = np.vstack([qd[:1], np.diff(measured, axis=0) / dt])
    for k in range(t.size):
        tau = model.inverse_dynamics(q[k], qd[k], qdd[k]) + model.friction_model.torque(qd[k])
        tau = tau + 0.05 * rng.standard_normal(model.n)
        monitor.update(RobotSample(t[k], (0, 0), measured[k], velocity[k], tau), None,
                       now=t[k] + 0.001)
    assert monitor.commissioned
    scales = pv_scales(monitor)
    assert np.all(scales < 3e-4), scales
    assert not [e for e in monitor.poll_events() if e['kind'] == 'anomaly_raised']
