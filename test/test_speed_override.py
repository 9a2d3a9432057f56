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


def test_usual_speeds_are_the_programs_not_those_of_its_first_seconds(tmp_path):
    """
    Commissioned on a program started slowly, then run at half speed: no alarm.

    The program ran at 30 % of its speed for its first 3 s (a robot that homes, an
    operator's careful first cycle), then at full speed. The joints' usual speeds, which the
    override is told against, were taken from the first 2.5 s of commissioning only (0.01-0.06
    rad/s here, against 0.13-0.34 over the first half): half speed read as full speed, and
    437 of 901 blocks were at ERROR. They come from the whole first half now (the override
    at half speed read 0.6).
    """
    path = tmp_path / 'slow_start.yaml'
    fault_runs.commission(CASE, path, CONFIG,
                          motion=lambda motion: SpeedOverride(motion, 1.0, 3.0, initial=0.3))
    monitor, levels = reported_levels(CASE, path, CONFIG,
                                      lambda motion: SpeedOverride(motion, 0.5), 20.0)
    assert monitor.commissioned and len(levels) > 800
    assert 'ERROR' not in levels


SEED7 = {arm: fault_runs.Case(arm=arm, engine='mujoco', seed=7, index=0, motion_seed=7)
         for arm in ('builtin', 'iiwa')}


@pytest.fixture(scope='module')
def commissioned_seed7(tmp_path_factory):
    folder = tmp_path_factory.mktemp('override_seed7')
    for arm, case in SEED7.items():
        fault_runs.commission(case, folder / f'{arm}.yaml', CONFIG)
    return folder


@pytest.mark.parametrize('arm, factor', [('builtin', 0.6), ('builtin', 0.5), ('iiwa', 0.5),
                                         ('iiwa', 0.4)])
def test_other_motions_run_slower_raise_no_alarm(commissioned_seed7, arm, factor):
    """
    Another motion and robot variant (seed 7) of both arms, slowed from 4 s on, 20 s.

    Before: 111 and 190 blocks of 901 at ERROR (built-in arm at 60 and 50 %), 124 and 102
    (iiwa at 50 and 40 %): joints sticking at their slow turns (the observer's residual up to
    27 times its spread in one block), steady offsets of the observer's residual summed per
    block rather than per path, flat efforts of joints that friction and inertia load, and
    the usual speeds taken from the first seconds only.
    """
    path = commissioned_seed7 / f'{arm}.yaml'
    monitor, levels = reported_levels(SEED7[arm], path, CONFIG,
                                      lambda motion: SpeedOverride(motion, factor), 20.0)
    raised = [e for e in monitor.poll_events() if e['kind'] == 'anomaly_raised']
    assert monitor.commissioned and len(levels) > 800
    assert raised == [] and 'ERROR' not in levels


def test_a_clipping_drive_is_still_found_at_a_quarter_of_the_speed(commissioned):
    """
    Slowed to 25 %, a drive clipped to 75 % of its peak cannot hold joint2's load up.

    Found on joint2, and named a clip on joint2 within the episode. (Since flat runs count
    slower at a lower override its first name is `friction_increase`, 0.2 s later than the
    `torque_saturation` it was at once before, and joint2's own verdict says
    `torque_saturation` 1.5 s after the raise.)
    """
    robot = fault_runs.SimulatedRobot(CASE, commissioned.parent)
    spec = fault_runs.fault_catalog(robot, ['joint2'], sizes=('small',), incipient=False,
                                    types=['torque_saturation'])[0]
    fault = dict(spec.fault, start_s=6.0)
    robot.motion = SpeedOverride(robot.motion, 0.25)
    monitor = AnomalyMonitor(robot.twin_model, CONFIG, thresholds_file=commissioned)
    twin = fault_runs._TwinSide(monitor.calibrated_model or robot.twin_model, monitor)
    events = []
    for now, m in robot.samples(12.0, [fault], np.random.default_rng(9)):
        if m.t >= fault_runs.PRE_ROLL_S:
            twin.feed(now, m)
            events += monitor.poll_events()
    raised = [e for e in events if e['kind'] == 'anomaly_raised']
    assert raised and raised[0]['stamp'] >= fault['start_s']
    assert (raised[0]['group'], raised[0]['joint']) == ('joint2', 'joint2')
    named = ('anomaly_raised', 'anomaly_joint_verdict', 'anomaly_verdict')
    assert any(e.get('joint') == 'joint2' and e.get('fault_type') == 'torque_saturation'
               for e in events if e['kind'] in named)


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
