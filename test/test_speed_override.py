"""
A lower speed override than in commissioning, and a clipping drive, seen by the observer.

The built-in arm (MuJoCo, Coulomb friction the URDF lacks) is commissioned at its full speed.
Its joints stick at each reversal, where the friction model (zero at zero speed) cannot know
what static friction holds; run slower, the same path dwells longer there. A clipping drive
also makes its joint hang at the reversals, but slows that joint only.
"""
import numpy as np
from plant_testing import reported_levels, SpeedOverride
import pytest

from robot_twin import fault_runs
from twin_anomaly.monitor import AnomalyMonitor, MonitorConfig

CONFIG = MonitorConfig(commissioning_duration_s=20.0, model_path='rules')
CASE = fault_runs.Case(arm='builtin', engine='mujoco', seed=4242, index=0, motion_seed=4242)


@pytest.fixture(scope='module')
def commissioned(tmp_path_factory):
    path = tmp_path_factory.mktemp('override') / 'builtin.yaml'
    fault_runs.commission(CASE, path, CONFIG)
    return path


@pytest.mark.parametrize('factor', [0.5, 0.25])
def test_a_robot_run_slower_than_in_commissioning_raises_no_alarm(commissioned, factor):
    """
    Half or a quarter of the speed from 4 s on, 20 s.

    At half speed the observer channel alarmed on most joints before (42 % of the blocks at
    ERROR, observer score up to 3: longer dwells at the reversals). At a quarter, joint4's
    flat-effort run alarmed (69 blocks at ERROR): slowed, joint4 holds the arm against
    gravity near the top of its gravity torque, where that torque hardly changes along the
    path, and its inertial torque is a sixteenth of the commissioning's, so its effort stayed
    flat within 0.06 N·m for 1.5 s of moving. It holds the joint, no drive clips it: the
    torque beyond gravity and friction was under 0.15 N·m.
    """
    monitor, levels = reported_levels(CASE, commissioned, CONFIG,
                                      lambda motion: SpeedOverride(motion, factor), 20.0)
    raised = [e for e in monitor.poll_events() if e['kind'] == 'anomaly_raised']
    assert monitor.commissioned and len(levels) > 800
    assert raised == [] and 'ERROR' not in levels


def test_a_clipping_drive_is_still_found_at_a_quarter_of_the_speed(commissioned):
    """Slowed to 25 %, a drive clipped to 75 % of its peak cannot hold joint2's load up."""
    robot = fault_runs.SimulatedRobot(CASE, commissioned.parent)
    spec = fault_runs.fault_catalog(robot, ['joint2'], sizes=('small',), incipient=False,
                                    types=['torque_saturation'])[0]
    fault = dict(spec.fault, start_s=6.0)
    robot.motion = SpeedOverride(robot.motion, 0.25)
    monitor = AnomalyMonitor(robot.twin_model, CONFIG, thresholds_file=commissioned)
    twin = fault_runs._TwinSide(monitor.calibrated_model or robot.twin_model, monitor)
    raised = []
    for now, m in robot.samples(12.0, [fault], np.random.default_rng(9)):
        if m.t >= fault_runs.PRE_ROLL_S:
            twin.feed(now, m)
            raised += [e for e in monitor.poll_events() if e['kind'] == 'anomaly_raised']
    assert raised and raised[0]['stamp'] >= fault['start_s']
    assert (raised[0]['group'], raised[0]['joint'], raised[0]['fault_type']) \
        == ('joint2', 'joint2', 'torque_saturation')


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
