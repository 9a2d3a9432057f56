"""Fault injectors give exactly the signal their scenario asks for; bad scenarios are rejected."""
from pathlib import Path

import numpy as np
import pytest
from twin_sim.faults import (fault_from_dict, FAULT_TYPES, FaultScenario, list_scenarios,
                             ScenarioError)
from twin_sim.plant import Plant
import yaml

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / 'urdf' / 'robot_twin_arm.urdf'
JOINTS = [f'joint{i}' for i in range(1, 8)]
POSE = np.array([0.2, 0.4, 0.0, -1.0, 0.0, 0.8, 0.0])


def _run(scenario, seconds=1.0, seed=0, moving=True):
    """Run the arm along a smooth motion; return (times, samples-or-None per step)."""
    plant = Plant(ARM, scenario=scenario, seed=seed, initial_q=POSE)
    out = []
    for k in range(int(round(seconds / plant.dt))):
        if moving:
            t = plant.time
            plant.command_position(POSE + 0.2 * np.sin(np.pi * t) ** 2)
        out.append(plant.step())
    plant.close()
    return out


def _scenario(*faults):
    return FaultScenario.from_dict({'name': 'test', 'faults': list(faults)})


@pytest.fixture(scope='module')
def clean():
    return _run(None)


def test_envelope_levels():
    fault = fault_from_dict({'type': 'sensor_bias', 'signal': 'position', 'joint': 'joint1',
                             'start_s': 2.0, 'ramp_s': 4.0, 'end_s': 9.0, 'size': 1.0})
    times = [0.0, 1.999, 2.0, 3.0, 4.0, 6.0, 8.0, 9.0, 12.0]
    levels = [fault.level(t) for t in times]
    np.testing.assert_allclose(levels, [0, 0, 0, 0.25, 0.5, 1, 1, 0, 0], atol=1e-12)
    abrupt = fault_from_dict({'type': 'joint_lock', 'joint': 'joint1', 'start_s': 2.0})
    assert abrupt.level(1.999) == 0.0 and abrupt.level(2.0) == 1.0 and abrupt.level(50) == 1.0


def test_bias_adds_exactly_size_after_a_linear_ramp(clean):
    faulty = _run(_scenario({'type': 'sensor_bias', 'signal': 'effort', 'joint': 'joint2',
                             'start_s': 0.2, 'ramp_s': 0.4, 'size': 1.5}))
    for c, f in zip(clean, faulty):
        expected = 1.5 * min(1.0, max(0.0, (c.t - 0.2) / 0.4))
        delta = f.effort - c.effort
        assert delta[1] == pytest.approx(expected, abs=1e-9)
        assert np.all(delta[[0, 2, 3, 4, 5, 6]] == 0.0)
        np.testing.assert_array_equal(f.q, c.q)       # physics untouched


def test_wrench_bias_on_one_component(clean):
    faulty = _run(_scenario({'type': 'sensor_bias', 'signal': 'wrench', 'component': 'fz',
                             'start_s': 0.5, 'size': -3.0}))
    for c, f in zip(clean, faulty):
        delta = f.wrench - c.wrench
        assert delta[2] == pytest.approx(-3.0 if c.t >= 0.5 else 0.0, abs=1e-9)
        assert np.all(delta[[0, 1, 3, 4, 5]] == 0.0)


def test_noise_std_within_statistical_bounds(clean):
    faulty = _run(_scenario({'type': 'sensor_noise', 'signal': 'velocity', 'joint': 'joint3',
                             'start_s': 0.0, 'size': 0.05}), seed=7)
    delta = np.array([f.qd[2] - c.qd[2] for c, f in zip(clean, faulty)])
    # 1000 samples: std of the sample std is 0.05 / sqrt(2000) = 0.0011; 4 sigma bounds
    assert abs(delta.std() - 0.05) < 0.0045
    assert abs(delta.mean()) < 4 * 0.05 / np.sqrt(1000)
    again = _run(_scenario({'type': 'sensor_noise', 'signal': 'velocity', 'joint': 'joint3',
                            'start_s': 0.0, 'size': 0.05}), seed=7)
    np.testing.assert_array_equal([m.qd for m in again], [m.qd for m in faulty])
    other = _run(_scenario({'type': 'sensor_noise', 'signal': 'velocity', 'joint': 'joint3',
                            'start_s': 0.0, 'size': 0.05}), seed=8)
    assert not np.array_equal([m.qd for m in other], [m.qd for m in faulty])


def test_dropout_rate_within_bounds(clean):
    faulty = _run(_scenario({'type': 'dropout', 'start_s': 0.5, 'end_s': 1.5, 'size': 0.3}),
                  seconds=2.0, moving=False)
    times = np.arange(1, 2001) * 0.001
    dropped = np.array([m is None for m in faulty])
    assert not dropped[times < 0.5 - 1e-9].any() and not dropped[times >= 1.5 - 1e-9].any()
    rate = dropped[(times >= 0.5) & (times < 1.5)].mean()
    assert abs(rate - 0.3) < 4 * np.sqrt(0.3 * 0.7 / 1000)
    wrench_only = _run(_scenario({'type': 'dropout', 'signal': 'wrench', 'start_s': 0.0,
                                  'size': 1.0}), seconds=0.05)
    assert all(m is not None and m.wrench is None for m in wrench_only)


def test_delay_shifts_by_exactly_k_samples(clean):
    faulty = _run(_scenario({'type': 'delay', 'start_s': 0.3, 'size': 0.025}))
    by_time = {round(c.t, 9): c for c in clean}
    k = 25
    for step, m in enumerate(faulty):
        t = (step + 1) * 0.001
        if t < 0.3 - 1e-9:
            assert m is not None and m.t == pytest.approx(t)
        elif t < 0.3 + k * 0.001 - 1e-9:
            assert m is None                           # the gap while the delay builds up
        else:
            assert m.t == pytest.approx(t - k * 0.001)
            ref = by_time[round(m.t, 9)]
            np.testing.assert_array_equal(m.q, ref.q)
            np.testing.assert_array_equal(m.wrench, ref.wrench)


def test_stuck_sensor_holds_the_value_from_the_start_time(clean):
    faulty = _run(_scenario({'type': 'stuck_sensor', 'signal': 'position', 'joint': 'joint6',
                             'start_s': 0.4, 'end_s': 0.8}))
    held = next(c.q[5] for c in clean if c.t >= 0.4 - 1e-9)
    for c, f in zip(clean, faulty):
        if 0.4 - 1e-9 <= c.t < 0.8 - 1e-9:
            assert f.q[5] == held
        else:
            assert f.q[5] == c.q[5]
        np.testing.assert_array_equal(np.delete(f.q, 5), np.delete(c.q, 5))
    assert len({round(c.q[5], 12) for c in clean if 0.4 <= c.t < 0.8}) > 10   # it did move


def test_packaged_scenarios_load_and_bind():
    names = list_scenarios()
    for required in ('nominal', 'demo', 'sensor_bias_joint2', 'friction_wear_joint3',
                     'friction_jump_joint5', 'payload_change', 'collision',
                     'joint_lock_joint4', 'torque_saturation_joint2', 'dropout_joint_states',
                     'delay', 'stuck_joint6', 'noise_joint1'):
        assert required in names
    seen = set()
    for name in names:
        scenario = FaultScenario.load(name, joint_names=JOINTS, link_names=['tool', 'link7'])
        seen.update(f.type for f in scenario.faults)
        again = FaultScenario.from_dict(scenario.to_dict(), joint_names=JOINTS)
        assert [f.to_dict() for f in again.faults] == [f.to_dict() for f in scenario.faults]
    assert seen == set(FAULT_TYPES)
    assert FaultScenario.load('nominal').faults == []


def _write(tmp_path, data, name='bad.yaml'):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


GOOD = {'type': 'friction_increase', 'joint': 'joint3', 'start_s': 1.0, 'ramp_s': 2.0,
        'size': 2.0}


@pytest.mark.parametrize('change, field, words', [
    ({'type': 'friction_wear'}, 'type', 'unknown fault type'),
    ({'start_s': None}, 'start_s', 'missing'),
    ({'start_s': '8 s'}, 'start_s', 'must be a number'),
    ({'ramp_s': -1.0}, 'ramp_s', 'must be >= 0'),
    ({'size': [1, 2]}, 'size', 'must be a number'),
    ({'size': True}, 'size', 'must be a number'),
    ({'joint': 7}, 'joint', 'non-empty string'),
    ({'mode': 'double'}, 'mode', 'one of'),
    ({'end_s': 0.5}, 'end_s', 'after start_s'),
    ({'sizes': 2.0}, 'sizes', 'unknown field'),
])
def test_malformed_fault_is_rejected_naming_file_index_and_field(tmp_path, change, field,
                                                                 words):
    fault = dict(GOOD)
    fault.update(change)
    fault = {k: v for k, v in fault.items() if v is not None}
    path = _write(tmp_path, {'name': 'bad', 'faults': [dict(GOOD), fault]})
    with pytest.raises(ScenarioError) as info:
        FaultScenario.load(path)
    message = str(info.value)
    assert str(path) in message and f'faults[1].{field}' in message and words in message
    assert info.value.index == 1 and info.value.field == field


@pytest.mark.parametrize('fault, field, words', [
    ({'type': 'dropout', 'start_s': 0, 'size': 1.5}, 'size', '<= 1.0'),
    ({'type': 'stuck_sensor', 'signal': 'position', 'joint': 'joint1', 'start_s': 1,
      'ramp_s': 2}, 'ramp_s', 'no ramp'),
    ({'type': 'sensor_bias', 'signal': 'effort', 'start_s': 1, 'size': 1}, 'joint',
     'needs the joint'),
    ({'type': 'sensor_bias', 'signal': 'wrench', 'joint': 'joint1', 'start_s': 1, 'size': 1},
     'joint', 'component'),
    ({'type': 'sensor_bias', 'signal': 'torque', 'joint': 'joint1', 'start_s': 1, 'size': 1},
     'signal', 'one of'),
    ({'type': 'collision_force', 'start_s': 1, 'size': 10, 'direction': [0, 0, 0]},
     'direction', 'zero vector'),
    ({'type': 'payload_change', 'start_s': 1, 'size': 1, 'com': [0, 0]}, 'com', '3 numbers'),
    ({'type': 'torque_saturation', 'joint': 'joint2', 'start_s': 1}, 'size', 'missing'),
])
def test_type_specific_checks(fault, field, words):
    with pytest.raises(ScenarioError) as info:
        FaultScenario.from_dict({'name': 'x', 'faults': [fault]})
    assert f'faults[0].{field}' in str(info.value) and words in str(info.value)


def test_unknown_joint_and_link_when_bound(tmp_path):
    path = _write(tmp_path, {'name': 'x', 'faults': [
        dict(GOOD), dict(GOOD, joint='joint9')]})
    FaultScenario.load(path)                            # fine until bound to a robot
    with pytest.raises(ScenarioError, match=r"faults\[1\]\.joint: unknown joint 'joint9'"):
        FaultScenario.load(path, joint_names=JOINTS)
    collision = {'name': 'x', 'faults': [{'type': 'collision_force', 'start_s': 1,
                                          'size': 5, 'link': 'gripper'}]}
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.link: unknown link 'gripper'"):
        FaultScenario.from_dict(collision, joint_names=JOINTS, link_names=['tool'])
    with pytest.raises(ScenarioError, match='joint9'):
        Plant(ARM, scenario=path)


@pytest.mark.parametrize('text, words', [
    ('name: x\nfaults: {type: dropout}\n', 'faults: must be a list'),
    ('faults: []\n', 'name: must be a non-empty string'),
    ('name: x\n', 'faults: missing'),
    ('name: x\nfaults: []\nseed: 3\n', 'unknown top-level field'),
    ('name: x\nfaults: [\n', 'invalid YAML'),
    ('name: x\nduration_s: -2\nfaults: []\n', 'duration_s: must be >= 0'),
    ('- just a list\n', 'must be a mapping'),
    ('name: x\nfaults: [3]\n', 'faults[0]: each fault must be a mapping'),
    ('name: x\nfaults: [{start_s: 1}]\n', 'faults[0].type: missing'),
])
def test_malformed_scenario_files(tmp_path, text, words):
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as info:
        FaultScenario.load(path)
    assert str(path) in str(info.value) and words in str(info.value)


def test_missing_scenario_names_the_packaged_ones():
    with pytest.raises(ScenarioError, match='packaged.*demo'):
        FaultScenario.load('no_such_scenario')


def test_readme_example_of_sensor_faults_names_their_signal():
    # README "Fault scenarios": sensor faults need a signal; its example must load as written
    readme = (ROOT / 'README.md').read_text()
    section = readme.split('\n## Fault scenarios\n', 1)[1].split('\n## ', 1)[0]
    assert '`signal`' in section and '`position`' in section and '`effort`' in section
    example = yaml.safe_load(section.split('```yaml\n', 1)[1].split('```', 1)[0])
    scenario = FaultScenario.from_dict(example)
    scenario.bind([f'joint{i}' for i in range(1, 8)], ['ft_sensor'])
    sensor = [f for f in scenario.faults if f.kind == 'sensor']
    assert {f.signal for f in sensor} >= {'position', 'velocity', 'effort', 'wrench'}
    without = dict(example['faults'][0])
    del without['signal']
    with pytest.raises(ScenarioError, match='signal'):
        FaultScenario.from_dict({'name': 'x', 'faults': [without]})


def test_a_slower_robot_delays_its_sent_samples_on_its_publish_grid(tmp_path):
    # Both send every 8th 1 kHz step (125 Hz). A 20 ms delay holds back whole sent samples:
    # each comes out at the first sent step at least 20 ms after its stamp (24 ms late, three
    # sample periods), and its stamp stays on the 8 ms grid, as a late robot's message carries
    # a stamp of its own sample grid. The plant and the offline fault runs agree, stamp for
    # stamp (the plant sent the step sample of 20 ms ago before, off that grid).
    from robot_twin.fault_runs import Case, SimulatedRobot
    delay = {'type': 'delay', 'size': 0.02, 'start_s': 0.1}
    robot = SimulatedRobot(Case(engine='pybullet', sample_rate_hz=125.0), tmp_path)
    runs = [(now, m.t) for now, m in robot.samples(0.3, [delay], np.random.default_rng(0))]
    plant = Plant(ARM, scenario=_scenario(delay), publish_every=8, initial_q=POSE)
    sent = []
    for _ in range(300):
        m = plant.step()
        if m is not None and plant.publish_step:
            sent.append((plant.time, m.t))
    plant.close()
    np.testing.assert_allclose(sent, runs, atol=1e-9)
    now, stamp = np.array(sent).T
    assert np.allclose(now / 0.008, np.round(now / 0.008), atol=1e-6)      # sent on the grid
    assert np.allclose(stamp / 0.008, np.round(stamp / 0.008), atol=1e-6)  # stamped on it
    np.testing.assert_allclose((now - stamp)[stamp < 0.1 - 1e-9], 0.0, atol=1e-9)
    np.testing.assert_allclose((now - stamp)[stamp > 0.1], 0.024, atol=1e-9)
    # every sample is sent once, in order; nothing goes out while the delay builds up
    np.testing.assert_allclose(np.diff(stamp), 0.008, atol=1e-9)
    assert not any(0.1 - 1e-9 < t < 0.128 - 1e-9 for t in now)
