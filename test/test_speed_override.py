"""
A lower speed override than in commissioning, and a clipping drive, seen by the observer.

The built-in arm (MuJoCo, Coulomb friction the URDF lacks) is commissioned at its full speed.
Its joints stick at each reversal, where the friction model (zero at zero speed) cannot know
what static friction holds; run slower, the same path dwells longer there. A clipping drive
also makes its joint hang at the reversals, but slows that joint only.
"""
import numpy as np
import pytest

from robot_twin import fault_runs
from twin_anomaly.monitor import AnomalyMonitor, MonitorConfig

CONFIG = MonitorConfig(commissioning_duration_s=20.0, model_path='rules')
CASE = fault_runs.Case(arm='builtin', engine='mujoco', seed=4242, index=0, motion_seed=4242)


class _SpeedOverride:
    """
    A motion followed at ``factor`` of its speed from ``at`` s on, ramped in over ``ramp_s``.

    The path rate goes from 1 to ``factor`` as ``3 x^2 - 2 x^3`` (``x`` from 0 to 1), as an
    operator's override reaches a controller: the same path, slower, without a jerk.
    """

    def __init__(self, motion, factor, at=4.0, ramp_s=0.5):
        self.motion, self.factor, self.at, self.ramp_s = motion, factor, at, ramp_s
        self.period_s = motion.period_s

    def sample(self, t):
        t = np.atleast_1d(np.asarray(t, dtype=float))
        f, ramp = self.factor, self.ramp_s
        x = np.clip((t - self.at) / ramp, 0.0, 1.0)
        rate = 1.0 + (f - 1.0) * (3.0 * x ** 2 - 2.0 * x ** 3)
        rate_dot = (f - 1.0) * (6.0 * x - 6.0 * x ** 2) / ramp
        path = self.at + ramp * (x + (f - 1.0) * (x ** 3 - 0.5 * x ** 4)) \
            + f * np.fmax(t - self.at - ramp, 0.0)
        q, qd, qdd = self.motion.sample(np.where(t > self.at, path, t))
        return q, qd * rate[:, None], qdd * rate[:, None] ** 2 + qd * rate_dot[:, None]


@pytest.fixture(scope='module')
def commissioned(tmp_path_factory):
    path = tmp_path_factory.mktemp('override') / 'builtin.yaml'
    fault_runs.commission(CASE, path, CONFIG)
    return path


def test_a_robot_run_at_half_its_commissioning_speed_raises_no_alarm(commissioned):
    """
    Half speed from 4 s on, 20 s. Before, the observer channel alarmed on most joints.

    (42 % of the blocks at ERROR, observer score up to 3: longer dwells at the reversals.)
    """
    robot = fault_runs.SimulatedRobot(CASE, commissioned.parent)
    robot.motion = _SpeedOverride(robot.motion, 0.5)
    monitor = AnomalyMonitor(robot.twin_model, CONFIG, thresholds_file=commissioned)
    twin = fault_runs._TwinSide(monitor.calibrated_model or robot.twin_model, monitor)
    levels, next_report = [], 2.0
    for now, m in robot.samples(20.0, [], np.random.default_rng(9)):
        if m.t < fault_runs.PRE_ROLL_S:
            continue
        twin.feed(now, m)
        if m.t >= next_report:
            next_report += CONFIG.block_s
            levels.append(monitor.report().level)
    raised = [e for e in monitor.poll_events() if e['kind'] == 'anomaly_raised']
    assert monitor.commissioned and len(levels) > 800
    assert raised == [] and 'ERROR' not in levels


@pytest.mark.parametrize('joint', ['joint5', 'joint7'])
def test_a_clipping_drive_is_still_found_on_its_joint(commissioned, joint):
    """At full speed, a drive clipped to half its peak effort hangs at the reversals."""
    robot = fault_runs.SimulatedRobot(CASE, commissioned.parent)
    spec = fault_runs.fault_catalog(robot, [joint], sizes=('large',), incipient=False,
                                    types=['torque_saturation'])[0]
    result = fault_runs.run_fault(CASE, spec, commissioned, CONFIG, model_path='rules')
    first = result.first_alarm
    assert first is not None and first['t'] >= spec.onset_s
    assert first['decided']['joint'] == joint
