"""
Flat effort at a lower speed override: the effort that holds a joint is no clipping drive.

Run slower than in commissioning, a joint's inertial torques are small, and where its gravity
torque hardly changes along the path, or changes as much as the inertial torque the other way,
its effort stays flat while it moves, as a clipped drive's does. pybullet_data's KUKA iiwa at
half its commissioning speed: joint 4's effort stayed flat within 0.06 N·m for 0.6 s, and the
flat-effort check alarmed (44 of 901 blocks at ERROR), while the torque that accelerated the
joint (its effort beyond gravity and friction) stayed under 6 % of it.
"""
import numpy as np
from plant_testing import reported_levels, SpeedOverride
import pytest

from robot_twin import fault_runs
from twin_anomaly.monitor import MonitorConfig
from twin_anomaly.sensor_checks import SensorChecks

CONFIG = MonitorConfig(commissioning_duration_s=20.0, model_path='rules')
CASE = fault_runs.Case(arm='iiwa', engine='mujoco', seed=4242, index=0, motion_seed=4242)


def test_the_iiwa_run_at_half_its_commissioning_speed_raises_no_alarm(tmp_path):
    """Commissioned at full speed, run at 50 % from 4 s on for 20 s."""
    path = tmp_path / 'iiwa.yaml'
    fault_runs.commission(CASE, path, CONFIG)
    monitor, levels = reported_levels(CASE, path, CONFIG,
                                      lambda motion: SpeedOverride(motion, 0.5), 20.0)
    raised = [e for e in monitor.poll_events() if e['kind'] == 'anomaly_raised']
    assert monitor.commissioned and len(levels) > 800
    assert raised == [] and 'ERROR' not in levels


def flat_run(holding_effort, driving_share, flat_pace=None):
    """
    Return the flat run of one joint moving at 0.1 rad/s with an effort of exactly 10 N·m.

    One second of 1 kHz samples in 20 ms blocks; the checks count any effort from 1 N·m on
    as a clipping drive's level, and flat within 0.1 N·m.
    """
    checks = SensorChecks(1)
    checks.set_flat(0.1, 0.1, 0.01, min_level=1.0)
    for k in range(1001):
        t = k * 1e-3
        checks.update(t, np.array([0.1 * t]), np.array([0.1]), np.array([10.0]))
        if k and k % 20 == 0:
            block = checks.take_block(np.zeros(1), holding_effort, driving_share, flat_pace)
    return float(block.flat_run_s[0])


def test_a_flat_effort_that_holds_the_joint_counts_only_where_no_share_is_asked():
    assert flat_run(np.array([9.5]), 0.0) > 0.9
    assert flat_run(np.array([9.5]), 0.1) == 0.0         # 5 % of it accelerates the joint
    assert flat_run(np.array([8.5]), 0.1) > 0.9          # 15 % of it accelerates the joint
    assert flat_run(None, 0.1) > 0.9                     # no model: the level counts whole


def test_a_flat_window_adds_the_share_of_its_duration_it_is_given():
    """The monitor counts flat runs slower at a lower override: a share of each window."""
    whole = flat_run(None, 0.0)
    assert whole > 0.9
    assert flat_run(None, 0.0, np.array([0.25])) == pytest.approx(0.25 * whole)
