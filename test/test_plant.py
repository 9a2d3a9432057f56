"""The emulated robot: commands, physical faults, determinism."""
from pathlib import Path

from ft_testing import reading_from_kinematics
import numpy as np
import pinocchio as pin
import pytest

from twin_sim.faults import FaultScenario, FrictionIncrease
from twin_sim.plant import LockstepAnswers, make_plant, Plant, PlantError, step_schedule
from twin_sim.trajectory import JointTrajectoryInterpolator
from twin_sim.urdf_model import Payload, RobotModel

ROOT = Path(__file__).resolve().parents[1]
ARM = ROOT / 'urdf' / 'robot_twin_arm.urdf'
POSE = np.array([0.2, 0.4, 0.0, -1.0, 0.0, 0.8, 0.0])
G = 9.81


@pytest.fixture(scope='module')
def model():
    return RobotModel.from_urdf(ARM)


def _scenario(*faults):
    return FaultScenario.from_dict({'name': 'test', 'faults': list(faults)})


def test_holds_initial_pose_without_command(model):
    plant = Plant(ARM, initial_q=POSE)
    out = plant.run(1.0)
    assert len(out) == 1000
    assert max(np.max(np.abs(m.q - POSE)) for m in out) < 1e-6
    np.testing.assert_allclose(out[-1].effort, model.gravity(POSE), atol=1e-5)


def test_position_command_converges():
    plant = Plant(ARM, initial_q=POSE)
    target = POSE + np.array([0.3, -0.2, 0.4, 0.3, -0.5, 0.2, 0.6])
    # a smooth 1 s move (as a controller would command it), then 1 s to settle
    for k in range(1000):
        s = (k + 1) / 1000.0
        plant.command_position(POSE + (3 * s ** 2 - 2 * s ** 3) * (target - POSE))
        plant.step()
    errors = [np.max(np.abs(plant.step().q - target)) for _ in range(1000)]
    assert errors[-1] < 1e-4
    assert errors[-1] <= errors[0]


def test_a_streamed_set_point_moves_on_from_its_stamp():
    # a set-point with velocity, delivered 20 ms after it was stamped, starts 20 ms along its
    # line (not where it was 20 ms ago), and is extrapolated no further than the horizon
    qd = np.full(7, 0.2)
    late = Plant(ARM, initial_q=POSE)
    late.command_position(POSE, qd, extrapolate_s=0.05, age_s=0.02)
    late.step()
    np.testing.assert_allclose(late.world._q_ref, POSE + qd * 0.02, atol=1e-12)
    stale = Plant(ARM, initial_q=POSE)
    stale.command_position(POSE, qd, extrapolate_s=0.05, age_s=5.0)    # clamped to 0.05 s
    stale.step()
    np.testing.assert_allclose(stale.world._q_ref, POSE + qd * 0.05, atol=1e-12)


def test_a_pause_in_the_set_points_holds_the_reference_and_is_counted():
    # set-points every 10 ms keep the reference moving; a 120 ms pause runs past the 50 ms
    # extrapolation: the reference holds where it ended (counted once), and moves on with the
    # next set-point (not counted again)
    qd = np.full(7, 0.2)
    plant = Plant(ARM, initial_q=POSE)
    for k in range(300):
        if k % 10 == 0 and not 100 <= k < 220:
            plant.command_position(POSE + qd * plant.time, qd, extrapolate_s=0.05)
        plant.step()
        if k == 99:
            assert plant.stream_holds == 0
        if k == 160:
            held = plant.world._q_ref.copy()
            np.testing.assert_allclose(held, POSE + qd * (0.09 + 0.05), atol=1e-12)
        if k == 210:
            np.testing.assert_array_equal(plant.world._q_ref, held)
    assert plant.stream_holds == 1
    np.testing.assert_allclose(plant.world._q_ref, POSE + qd * 0.299, atol=1e-12)   # moving


def test_trajectory_following():
    plant = Plant(ARM, initial_q=POSE)
    goal1 = POSE + np.array([0.4, 0.2, -0.3, 0.3, 0.4, -0.3, 0.5])
    goal2 = POSE - 0.2
    traj = JointTrajectoryInterpolator.from_points([1.0, 2.0], [goal1, goal2], start_q=POSE)
    plant.command_trajectory(traj)
    worst = 0.0
    for _ in range(2000):
        m = plant.step()
        q_ref, _, _ = traj.sample(m.t)
        worst = max(worst, np.max(np.abs(m.q - q_ref)))
    assert worst < 0.01                                # tracks along the way
    plant.run(0.5)
    assert np.max(np.abs(plant.step().q - goal2)) < 1e-3   # holds the last point


def test_bit_for_bit_determinism():
    scenario = _scenario(
        {'type': 'sensor_noise', 'signal': 'effort', 'joint': 'joint1', 'start_s': 0.1,
         'size': 0.5},
        {'type': 'dropout', 'start_s': 0.2, 'size': 0.2},
        {'type': 'friction_increase', 'joint': 'joint3', 'start_s': 0.1, 'ramp_s': 0.3,
         'size': 1.0},
        {'type': 'delay', 'start_s': 0.4, 'size': 0.01})

    def run():
        plant = Plant(ARM, scenario=scenario, seed=42, initial_q=POSE)
        out = []
        for k in range(800):
            plant.command_position(POSE + 0.3 * np.sin(0.004 * k))
            out.append(plant.step())
        plant.close()
        return out
    first, second = run(), run()
    assert [m is None for m in first] == [m is None for m in second]
    assert any(m is None for m in first)
    for a, b in zip(first, second):
        if a is not None:
            assert a.t == b.t
            for name in ('q', 'qd', 'effort', 'wrench'):
                assert np.array_equal(getattr(a, name), getattr(b, name))


def _constant_velocity_effort(scenario, joint=2, speed=0.3, seconds=3.0):
    """Move one joint at constant speed; return times and that joint's measured effort."""
    plant = Plant(ARM, scenario=scenario, initial_q=POSE)
    times, effort, friction = [], [], []
    for k in range(int(seconds / plant.dt)):
        t = plant.time
        q = POSE.copy()
        qd = np.zeros(7)
        q[joint] += speed * t
        qd[joint] = speed
        plant.command_position(q, qd)
        m = plant.step()
        times.append(m.t)
        effort.append(m.effort[joint])
        friction.append(plant.world.coulomb_friction()[joint])
    return np.array(times), np.array(effort), np.array(friction)


def test_friction_increase_changes_effort_by_size():
    size = 2.0
    incipient = _scenario({'type': 'friction_increase', 'joint': 'joint3', 'start_s': 1.0,
                           'ramp_s': 1.0, 'size': size})
    times, effort, friction = _constant_velocity_effort(incipient)
    _, nominal, nominal_friction = _constant_velocity_effort(None)
    delta = effort - nominal
    after = times > 2.3
    assert np.all(np.abs(delta[after] - size) < 0.02 * size)
    mid = np.argmin(np.abs(times - 1.5))
    assert delta[mid] == pytest.approx(size / 2, rel=0.05)   # linear ramp: half way
    assert np.all(np.abs(delta[times < 1.0]) < 1e-9)
    np.testing.assert_allclose(friction[after] - nominal_friction[after], size)
    abrupt = _scenario({'type': 'friction_increase', 'joint': 'joint3', 'start_s': 1.0,
                        'size': 3.0, 'mode': 'scale'})
    times, effort, _ = _constant_velocity_effort(abrupt)
    extra = 2.0 * (0.6 + 0.4 * 0.3)          # (3 - 1) x (Coulomb + viscous at 0.3 rad/s)
    late = times > 1.3
    assert np.mean(effort[late] - nominal[late]) == pytest.approx(extra, rel=0.02)


def test_joint_lock_keeps_the_joint_still():
    plant = Plant(ARM, scenario=_scenario({'type': 'joint_lock', 'joint': 'joint4',
                                           'start_s': 0.2}), initial_q=POSE)
    qs = []
    for k in range(1000):
        plant.command_position(POSE + 0.5 * np.sin(np.pi * plant.time))
        qs.append(plant.step().q)
    qs = np.array(qs)
    locked = qs[200:, 3]
    assert np.max(np.abs(locked - locked[0])) < 1e-4
    assert np.ptp(qs[200:, 0]) > 0.3                   # the others follow the command


def test_torque_saturation_clips(model):
    plant = Plant(ARM, scenario=_scenario({'type': 'torque_saturation', 'joint': 'joint2',
                                           'start_s': 0.1, 'size': 0.1}), initial_q=POSE)
    limit = 0.1 * model.effort_limit[1]
    assert abs(model.gravity(POSE)[1]) > limit         # holding the arm needs more
    out = plant.run(0.5)
    effort = np.array([m.effort[1] for m in out])
    times = np.array([m.t for m in out])
    assert np.all(np.abs(effort[times > 0.1 + 1e-9]) <= limit + 1e-9)
    assert np.any(np.abs(effort[times > 0.1 + 1e-9]) > limit - 1e-6)   # it is saturated
    assert abs(out[-1].q[1] - POSE[1]) > 0.05          # and the arm sags


def test_payload_change_shows_in_ft_and_efforts(model):
    scenario = _scenario({'type': 'payload_change', 'start_s': 0.2, 'size': 1.5,
                          'com': [0.0, 0.01, 0.06], 'radius_m': 0.04})
    plant = Plant(ARM, scenario=scenario, initial_q=POSE)
    before = plant.run(0.2)[-1]
    after = plant.run(0.5)[-1]
    _, rot = plant.world.link_pose('ft_sensor')
    weight = rot.T @ np.array([0.0, 0.0, -1.5 * G])
    delta = after.wrench - before.wrench
    assert np.linalg.norm(delta[:3] - weight) < 0.01 * 1.5 * G
    np.testing.assert_allclose(delta[3:], np.cross([0.0, 0.01, 0.06], weight), atol=1e-3)
    payload = Payload(1.5, [0.0, 0.01, 0.06], 0.4 * 1.5 * 0.04 ** 2 * np.eye(3))
    np.testing.assert_allclose(after.effort, model.gravity(after.q, payload=payload),
                               atol=1e-3)


def test_collision_force_shows_in_ft_and_joint_torques(model):
    scenario = _scenario({'type': 'collision_force', 'start_s': 0.3, 'end_s': 0.8,
                          'size': 20.0, 'direction': [0, 1, 0], 'link': 'tool'})
    plant = Plant(ARM, scenario=scenario, initial_q=POSE,
                  joint_damping=np.zeros(7), joint_friction=np.zeros(7))
    before = plant.run(0.3)[-1]
    during = plant.run(0.49)[-1]
    force = np.array([0.0, 20.0, 0.0])
    origin, rot = plant.world.link_pose('ft_sensor')
    position, _ = plant.world.link_pose('tool')
    delta = during.wrench - before.wrench
    np.testing.assert_allclose(delta[:3], rot.T @ force, atol=0.01)
    np.testing.assert_allclose(delta[3:], rot.T @ np.cross(position - origin, force),
                               atol=0.005)
    pm, data = model.pin_model, model.pin_data
    pin.computeJointJacobians(pm, data, during.q)
    pin.updateFramePlacements(pm, data)
    jac = pin.getFrameJacobian(pm, data, pm.getFrameId('tool'), pin.LOCAL_WORLD_ALIGNED)[:3]
    np.testing.assert_allclose(during.effort, model.gravity(during.q) - jac.T @ force,
                               atol=0.01)
    after = plant.run(0.5)[-1]                         # the push is over
    np.testing.assert_allclose(after.wrench, before.wrench, atol=1e-4)


def test_the_ft_reading_in_motion_is_what_the_moving_load_exerts(model):
    """Each reading is what the load exerts as the step moved it (the world's, passed on)."""
    payload = Payload(2.0, [0.0, 0.0, 0.05], 0.4 * 2.0 * 0.05 ** 2 * np.eye(3))
    plant = Plant(ARM, initial_q=POSE, payload=payload)
    load = model.with_payload(payload).ft_distal_inertia
    # shoulder, elbow and wrist at once: their velocities' products load the tool the most
    amplitude = np.array([0.0, 0.2, 0.0, 0.3, 0.0, 0.4, 0.0])
    out = []
    for k in range(600):
        phase = 2.0 * np.pi * plant.time
        plant.command_position(POSE + amplitude * np.sin(phase) ** 2,
                               amplitude * 2.0 * np.pi * np.sin(2.0 * phase))
        out.append(plant.step())
    force_err = torque_err = 0.0
    for before, after in zip(out[300:-1], out[301:]):
        qdd = (after.qd - before.qd) / plant.dt
        truth = reading_from_kinematics(model, load, before.q, before.qd, qdd)
        force_err = max(force_err, np.max(np.abs(after.wrench[:3] - truth[:3])))
        torque_err = max(torque_err, np.max(np.abs(after.wrench[3:] - truth[3:])))
    assert np.max(np.abs(out[-1].qd)) > 1.0 and plant.over_speed == 0   # it moved, freely
    assert force_err < 1e-3 and torque_err < 1e-4, (force_err, torque_err)


def test_pushes_through_the_sensor_are_read(tmp_path):
    """A push on the sensor link, the tool or a finger below it is read; one elsewhere is not."""
    urdf = tmp_path / 'arm_with_finger.urdf'
    urdf.write_text(ARM.read_text().replace('</robot>', """
  <joint name="finger_joint" type="prismatic">
    <parent link="tool"/><child link="finger"/>
    <origin xyz="0 0 0.1"/><axis xyz="1 0 0"/>
    <limit lower="-0.02" upper="0.02" effort="50" velocity="0.2"/>
  </joint>
  <link name="finger">
    <inertial><origin xyz="0 0 0.02"/><mass value="0.1"/>
      <inertia ixx="2e-5" ixy="0" ixz="0" iyy="2e-5" iyz="0" izz="1e-5"/></inertial>
  </link>
</robot>"""))
    push = 20.0 * np.array([0.0, 1.0, 1.0]) / np.sqrt(2.0)
    for link, felt in (('finger', True), ('tool', True), ('ft_sensor', True), ('link6', False)):
        plant = Plant(urdf, initial_q=np.append(POSE, 0.0), scenario=_scenario(
            {'type': 'collision_force', 'start_s': 0.1, 'end_s': 0.3, 'size': 20.0,
             'direction': [0, 1, 1], 'link': link}))
        before = plant.run(0.1)[-1].wrench
        pushed = plant.run(0.1)[-1].wrench
        # the arm holds nearly still against it (a push on link6 tilts the tool's weight by
        # 0.01 N): the force read changes by the push, in the sensor frame, or not at all
        rotation = plant.world.link_pose('ft_sensor')[1]
        np.testing.assert_allclose(pushed[:3] - before[:3], rotation.T @ push if felt else 0.0,
                                   atol=0.05, err_msg=link)
        plant.close()


def test_set_and_clear_faults_at_runtime():
    plant = Plant(ARM, initial_q=POSE)
    plant.run(0.1)
    plant.set_fault({'type': 'sensor_bias', 'signal': 'position', 'joint': 'joint1',
                     'start_s': 0.0, 'size': 0.1})
    plant.set_fault(FrictionIncrease(joint='joint2', start_s=0.0, size=5.0))
    m = plant.step()
    assert m.q[0] == pytest.approx(POSE[0] + 0.1, abs=1e-6)
    assert plant.world.coulomb_friction()[1] == pytest.approx(0.8 + 5.0)
    plant.clear_faults()
    assert plant.step().q[0] == pytest.approx(POSE[0], abs=1e-6)
    assert plant.world.coulomb_friction()[1] == pytest.approx(0.8)
    with pytest.raises(Exception, match='joint9'):
        plant.set_fault({'type': 'joint_lock', 'joint': 'joint9', 'start_s': 0})


def test_reset_replays_identically():
    scenario = _scenario({'type': 'sensor_noise', 'signal': 'position', 'joint': 'joint2',
                          'start_s': 0.0, 'size': 0.01})
    plant = Plant(ARM, scenario=scenario, seed=3, initial_q=POSE)
    first = [m.q for m in plant.run(0.2)]
    plant.reset()
    assert plant.time == 0.0
    second = [m.q for m in plant.run(0.2)]
    np.testing.assert_array_equal(first, second)


def test_velocity_and_effort_commands(model):
    plant = Plant(ARM, initial_q=POSE)
    velocity = np.array([0.2, 0.0, -0.1, 0.0, 0.3, 0.0, 0.0])
    plant.command_velocity(velocity)
    m = plant.run(0.5)[-1]
    np.testing.assert_allclose(m.qd, velocity, atol=2e-3)
    plant.command_effort(model.gravity(m.q) + 500.0)
    m = plant.step()
    assert np.all(m.effort <= model.effort_limit + 1e-9)   # clipped to the effort limits


def test_bad_commands_and_arguments():
    plant = Plant(ARM)
    with pytest.raises(PlantError, match='expected 7 values'):
        plant.command_position(np.zeros(3))
    with pytest.raises(PlantError, match='finite'):
        plant.command_effort([np.inf] * 7)
    with pytest.raises(PlantError, match='JointTrajectoryInterpolator'):
        plant.command_trajectory([[0.0] * 7])
    with pytest.raises(PlantError, match='3 joints'):
        plant.command_trajectory(JointTrajectoryInterpolator([0.0, 1.0], np.zeros((2, 3))))
    with pytest.raises(PlantError, match='outside the joint limits'):
        Plant(ARM, initial_q=np.full(7, 3.0))
    with pytest.raises(PlantError, match='not found|cannot'):
        Plant(ROOT / 'missing.urdf')


def test_advance_steps_on_until_a_sample_comes_out():
    scenario = _scenario({'type': 'dropout', 'signal': 'all', 'start_s': 0.05,
                          'end_s': 0.08, 'ramp_s': 0.0, 'size': 1.0})
    plant = Plant(ARM, initial_q=POSE, scenario=scenario)
    first = plant.advance(3)
    assert [round(t, 6) for t, _m in first] == [0.001, 0.002, 0.003]
    assert all(m is not None for _t, m in first)
    while plant.time < 0.049:
        plant.advance(1)
    out = plant.advance(1)            # every sample is lost from 0.05 to 0.08 s
    assert out[-1][1] is not None and all(m is None for _t, m in out[:-1])
    assert out[-1][0] == pytest.approx(0.08, abs=1.5e-3) and len(out) > 25
    held = Plant(ARM, initial_q=POSE, scenario=_scenario(
        {'type': 'dropout', 'signal': 'all', 'start_s': 0.0, 'ramp_s': 0.0, 'size': 1.0}))
    assert len(held.advance(1, max_steps=50)) == 50       # bounded: a permanent dropout
    with pytest.raises(PlantError, match='steps >= 1'):
        held.advance(0)


def test_advance_is_step_by_step_alike():
    a, b = Plant(ARM, initial_q=POSE, seed=3), Plant(ARM, initial_q=POSE, seed=3)
    for k in range(40):
        q = POSE + 0.01 * k
        a.command_position(q)
        b.command_position(q)
        (t, m), = a.advance(1)
        s = b.step()
        assert t == b.time and np.array_equal(m.q, s.q) and np.array_equal(m.effort, s.effort)


# A robot steps its control loop at 1 kHz and publishes its joint states at 100 Hz: the plant
# steps at step_rate_hz and sends every k-th step's sample (publish_rate_hz = step_rate_hz / k).
_DECIMATION_SCENARIO = (
    {'type': 'sensor_noise', 'signal': 'effort', 'joint': 'joint1', 'start_s': 0.1, 'size': 0.5},
    {'type': 'collision_force', 'start_s': 0.2, 'end_s': 0.35, 'ramp_s': 0.0, 'size': 20.0,
     'direction': [1.0, 0.0, 0.0]},
    {'type': 'friction_increase', 'joint': 'joint3', 'start_s': 0.1, 'end_s': 0.4,
     'ramp_s': 0.0, 'size': 5.0},
    {'type': 'dropout', 'signal': 'all', 'start_s': 0.45, 'end_s': 0.55, 'ramp_s': 0.0,
     'size': 0.3})


def _stream_100hz(publish_every, steps=700):
    """Stream a 100 Hz motion to a 1 kHz plant; return (sent?, sample) of every step."""
    plant = Plant(ARM, scenario=_scenario(*_DECIMATION_SCENARIO), seed=9, initial_q=POSE,
                  dt=0.001, publish_every=publish_every)
    amplitude = np.array([0.3, 0.2, 0.4, 0.3, 0.2, 0.3, 0.4])
    out = []
    for k in range(steps):
        if k % 10 == 0:            # the controller's set-point, every 10 ms
            t = plant.time
            plant.command_position(POSE + amplitude * np.sin(2.0 * t),
                                   2.0 * amplitude * np.cos(2.0 * t), extrapolate_s=0.05)
        sample = plant.step()
        out.append((plant.publish_step, sample))
    plant.close()
    return out


def test_a_100hz_plant_stepping_at_1khz_sends_every_10th_sample_of_the_1khz_run():
    full = _stream_100hz(1)
    decimated = _stream_100hz(10)
    assert all(sent for sent, _m in full)
    # the decimated plant sends steps 10, 20, ... (counted from 1), nothing in between
    assert [sent for sent, _m in decimated] == [(k + 1) % 10 == 0 for k in range(700)]
    sent = [m for is_sent, m in decimated if is_sent]
    assert len(sent) == 70
    assert any(m is None for m in sent) and sum(m is None for m in sent) < 10   # the dropout
    for k, (m, (_, reference)) in enumerate(zip(sent, full[9::10])):
        assert (m is None) == (reference is None), k
        if m is None:
            continue
        assert m.t == reference.t and m.t == pytest.approx(0.01 * (k + 1), abs=1e-12)
        for name in ('q', 'qd', 'effort', 'wrench'):       # the same physics, bit for bit
            assert np.array_equal(getattr(m, name), getattr(reference, name)), (k, name)
    times = np.array([m.t for m in sent if m is not None])
    gaps = np.round(np.diff(times) / 0.01, 9)
    assert set(gaps) <= {1.0, 2.0, 3.0} and np.mean(gaps == 1.0) > 0.9   # 10 ms apart
    # run() returns what the robot sends
    plant = Plant(ARM, initial_q=POSE, publish_every=10)
    assert [round(m.t, 9) for m in plant.run(0.1)] == [round(0.01 * k, 9) for k in range(1, 11)]


def test_lockstep_advance_ends_on_a_sample_the_robot_sends():
    scenario = _scenario({'type': 'dropout', 'signal': 'all', 'start_s': 0.05,
                          'end_s': 0.08, 'ramp_s': 0.0, 'size': 1.0})
    plant = Plant(ARM, initial_q=POSE, scenario=scenario, publish_every=10)
    (t, m), = plant.advance(10)
    assert t == pytest.approx(0.01) and m is not None
    out = plant.advance(25)        # 25 steps, on to the next sample period's end: 30 steps
    assert [round(t, 9) for t, _m in out] == [0.02, 0.03, 0.04]
    out = plant.advance(10)        # every sample is lost from 0.05 to 0.08 s
    assert all(m is None for _t, m in out[:-1]) and out[-1][1] is not None
    assert round(out[-1][0], 9) in (0.08, 0.09) and len(out) >= 3
    assert all(round(t * 100.0, 6) == round(t * 100.0) for t, _m in out)   # on the 10 ms grid


def test_step_schedule_checks_that_the_publish_rate_divides_the_step_rate():
    assert step_schedule(100.0, 1000.0) == (0.001, 10)
    assert step_schedule(125.0, 1000.0) == (0.001, 8)
    assert step_schedule(1000.0, 1000.0) == (0.001, 1)
    assert step_schedule(200.0) == (0.005, 1)            # 0: step at the publish rate
    assert step_schedule(200.0, 0.0) == (0.005, 1)
    with pytest.raises(PlantError, match=r'publish_rate_hz 300 does not divide step_rate_hz '
                                         r'1000 .*333\.3333333 \(k = 3\) or 250 \(k = 4\)'):
        step_schedule(300.0, 1000.0)
    with pytest.raises(PlantError, match='step_rate_hz 100 is below publish_rate_hz 1000'):
        step_schedule(1000.0, 100.0)
    assert step_schedule(333.3333333, 1000.0)[1] == 3    # the rate the message suggests
    for bad in (0, -1, 2.5, True):
        with pytest.raises(PlantError, match='publish_every must be a whole number'):
            Plant(ARM, publish_every=bad)


def test_make_plant_builds_randomized_and_identified_robots(tmp_path):
    plant, variant = make_plant(str(ARM), randomization='default', randomization_index=2,
                                seed=5)
    try:
        assert variant.index == 2 and variant.seed == 5
        urdf = plant.urdf_path
        assert urdf.is_file() and urdf != ARM
    finally:
        plant.close()
    assert not urdf.exists()                      # close removes the robot written for it
    with pytest.raises(PlantError, match='randomization'):
        make_plant(str(ARM), randomization=str(tmp_path / 'missing.yaml'))


def test_commands_beyond_the_limits_are_clipped_and_counted(model):
    plant = Plant(ARM, initial_q=POSE)
    plant.command_position(POSE)
    plant.command_velocity(np.full(7, 0.1))
    plant.command_effort(np.zeros(7))
    assert plant.clipped_commands == 0
    cases = [(lambda: plant.command_position(np.full(7, 10.0)), 'position 10'),
             (lambda: plant.command_position(POSE, np.full(7, 50.0)), 'velocity feedforward 50'),
             (lambda: plant.command_velocity(np.full(7, 10.0)), 'velocity 10'),
             (lambda: plant.command_effort(np.full(7, 1e6)), 'effort 1e+06'),
             (lambda: plant.command_trajectory(JointTrajectoryInterpolator(
                 [0.0, 100.0], [POSE, np.full(7, 10.0)])), 'trajectory position 10')]
    for k, (command, text) in enumerate(cases, start=1):
        command()
        assert plant.clipped_commands == k, text
        assert plant.last_clipped.startswith(text + ' for joint1 is beyond its limit'), \
            plant.last_clipped


def test_effort_mode_holds_a_joint_at_its_speed_limit(model):
    # gravity only on the shoulder and a full torque on the wrist: unlimited, PyBullet let the
    # joints reach ~100 rad/s; a drive limits them at the URDF velocity limit
    plant = Plant(ARM, initial_q=POSE)
    tau = model.gravity(POSE)
    tau[6] = model.effort_limit[6]
    plant.command_effort(tau)
    top = np.max([np.abs(plant.step().qd) for _ in range(1000)], axis=0)
    assert np.all(top <= model.velocity_limit + 1e-9), top
    assert top[6] == pytest.approx(model.velocity_limit[6])
    assert plant.over_speed >= 1
    count = plant.over_speed
    plant.command_effort(np.zeros(7))
    plant.reset()
    plant.run(0.2)
    assert plant.over_speed == count             # cumulative, none at rest


def test_lockstep_answers_step_once_per_awaited_sample():
    answers = LockstepAnswers()
    assert answers.answer(5_000_000) == LockstepAnswers.APPLY   # before the first sample
    answers.sent(1_000_000)
    assert answers.answer(1_000_000) == LockstepAnswers.STEP
    answers.sent(11_000_000)
    assert answers.answer(1_000_000) == LockstepAnswers.STALE   # a late second answer
    assert answers.answer(10_000_000) == LockstepAnswers.STALE  # an intermediate step's
    assert answers.answer(11_000_000) == LockstepAnswers.STEP
    answers.sent(21_000_000)
    assert answers.answer(0) == LockstepAnswers.STEP            # unstamped: answers it
    answers.sent(31_000_000)
    assert answers.answer(31_000_000) == LockstepAnswers.STEP
    assert answers.answer(31_000_000) == LockstepAnswers.STALE  # answered twice
    assert answers.stale == 3
    answers.reset()
    assert answers.answer(31_000_000) == LockstepAnswers.APPLY


# The drive's limits in every mode (the HIL audit's cases). After every step the plant puts a
# joint beyond its range back on the limit and one faster than its velocity limit back to that
# speed with resetJointState, read back unchanged: the only slack is a float's rounding, so
# 1e-9 (rad, rad/s) is ample; the old plant was 0.1 rad and 0.4..96 rad/s beyond.
_TOL = 1e-9


def _within_limits(model, samples):
    """Largest excess beyond the velocity limit and beyond the range over ``samples``."""
    qd = np.array([m.qd for m in samples])
    q = np.array([m.q for m in samples])
    speed = np.max(np.abs(qd) - np.asarray(model.velocity_limit))
    position = max(np.max(q - np.asarray(model.upper)), np.max(np.asarray(model.lower) - q))
    return speed, position


def _home():
    return Plant(ARM, initial_q=np.zeros(7))


def test_a_trajectory_faster_than_the_velocity_limit_is_rejected_and_counted(model):
    plant = _home()
    lower, upper = np.asarray(model.lower), np.asarray(model.upper)
    # lower -> upper -> lower in 10 ms steps, all points inside the range (as the node builds it)
    fast = JointTrajectoryInterpolator([0.01, 0.02, 0.03],
                                       [lower + 0.05, upper - 0.05, lower + 0.05])
    out = plant.run(0.1)
    with pytest.raises(PlantError, match=r'velocity limit .* give it at least'):
        plant.command_trajectory(fast)
    assert plant.rejected_trajectories == 1
    assert plant.last_rejected.startswith('trajectory needs ')
    assert plant.clipped_commands == 0
    out += plant.run(0.5)                 # the previous command stays in force
    speed, position = _within_limits(model, out)
    assert speed <= _TOL and position <= _TOL
    np.testing.assert_allclose(out[-1].q, np.zeros(7), atol=1e-4)
    # the same motion in a feasible time is followed
    slow = JointTrajectoryInterpolator.from_points([2.0, 4.0], [POSE, np.zeros(7)],
                                                   start_q=np.zeros(7))
    plant.command_trajectory(slow)
    assert plant.rejected_trajectories == 1
    out = plant.run(4.5)
    np.testing.assert_allclose(out[-1].q, np.zeros(7), atol=1e-3)
    assert np.max(np.abs([m.q - POSE for m in out[1900:2100]])) < 0.02


def test_a_position_stream_pushing_at_the_limits_stays_inside_them(model):
    # a set-point 10 mrad below the upper limit with the velocity limit as feed-forward: the
    # extrapolated reference runs into the end of the range
    plant = _home()
    upper, limit = np.asarray(model.upper), np.asarray(model.velocity_limit)
    plant.command_position(upper - 0.01, limit, extrapolate_s=0.05)
    out = plant.run(3.0)
    speed, position = _within_limits(model, out)
    assert speed <= _TOL and position <= _TOL
    np.testing.assert_allclose(out[-1].q, upper, atol=2e-3)      # held at the end
    assert plant.over_speed >= 1 or plant.limit_stops >= 1


def test_velocity_and_effort_far_beyond_the_limits_stay_inside_them(model):
    plant = _home()
    plant.command_velocity(np.full(7, 1e6))
    out = plant.run(3.0)
    assert plant.clipped_commands == 1
    speed, position = _within_limits(model, out)
    assert speed <= _TOL and position <= _TOL
    assert plant.limit_stops >= 1                    # joints ran into their upper stops
    np.testing.assert_allclose(out[-1].q, model.upper, atol=1e-6)   # held at the ends

    plant = _home()
    plant.command_effort(np.full(7, 1e6))
    out = plant.run(2.0)
    assert plant.clipped_commands == 1
    assert plant.limit_stops >= 1 and plant.over_speed >= 1
    stops = plant.limit_stops
    plant.command_position(np.zeros(7))             # home again, from the stops
    out += plant.run(3.0)
    speed, position = _within_limits(model, out)
    assert speed <= _TOL and position <= _TOL
    np.testing.assert_allclose(out[-1].q, np.zeros(7), atol=1e-3)
    assert plant.limit_stops == stops                # leaving a stop is not a new hit


def test_joints_pushed_against_their_end_stops_stay_there_as_beside_fixed_joints(model):
    # Zero gravity, every joint 10 mrad from an end and pushed into it by a fifth of its effort
    # limit. With the five others at their ends, the arm's inertia accelerates joints 3 and 4
    # into theirs too (checked with pinocchio first), so all seven rest at their ends. A stop
    # that only put a joint back after each step let its free acceleration leak into the
    # others: joints 3 and 4 ran away from their ends at their speed limits.
    lower, upper = np.asarray(model.lower), np.asarray(model.upper)
    side = np.where(np.arange(7) % 2, 1.0, -1.0)              # odd joints to their upper end
    end = np.where(side > 0, upper, lower)
    push = 0.2 * np.asarray(model.effort_limit) * side
    data = model.pin_model.createData()
    inertia = pin.crba(model.pin_model, data, end)
    inertia = np.triu(inertia) + np.triu(inertia, 1).T
    assert np.all(np.linalg.solve(inertia[2:4, 2:4], push[2:4]) * side[2:4] > 0.0)
    plant = Plant(ARM, initial_q=end - 0.01 * side, gravity=(0.0, 0.0, 0.0))
    plant.command_effort(push)
    plant.run(1.0)
    out = plant.run(2.0)
    q, qd = np.array([m.q for m in out]), np.array([m.qd for m in out])
    assert np.abs(q - end).max() < 1e-7 and np.abs(qd).max() < 1e-7
    assert plant.limit_stops == 7                              # each hit its end once
    # pushed back, the joints that the arm's inertia accelerates inwards leave their ends
    plant.command_effort(-push)
    out = plant.run(0.2)
    inwards = np.linalg.solve(inertia, -push) * side < 0.0
    assert inwards.sum() >= 5 and np.all((out[-1].q - end)[inwards] * side[inwards] < -1e-3)


def test_a_gripper_resting_on_its_end_stops_reads_velocities_that_match_its_positions():
    # pybullet_data's xArm 6 with its gripper, standing still: the initial pose puts the
    # gripper's joints on their lower limit 0, where their holding torques push them. Their
    # velocities, summed over time, must give their motion, as the twin's position-velocity
    # check (pv_bias, floor 3e-5 rad) takes them: a plant whose fingers chattered on their
    # stops (PyBullet's own soft range constraint against the plant's stop) read up to 6e-4
    # rad/s at a standing position and summed 2.7e-4 rad beyond it in 20 s, and the twin
    # beside it raised sensor_bias on a finger.
    import pybullet_data
    urdf = Path(pybullet_data.getDataPath()) / 'xarm' / 'xarm6_with_gripper.urdf'
    with pytest.warns(UserWarning):                            # (its <mimic> joints)
        plant = Plant(urdf)
    out = plant.run(20.0)
    t = np.array([m.t for m in out])
    q, qd = np.array([m.q for m in out]), np.array([m.qd for m in out])
    summed = np.cumsum(0.5 * (qd[1:] + qd[:-1]) * np.diff(t)[:, None], axis=0)
    assert np.abs(summed - (q[1:] - q[0])).max() < 2e-5
    fingers = [i for i, name in enumerate(plant.joint_names) if 'finger' in name]
    assert fingers and np.all(np.abs(q[:, fingers]) < 1e-5)   # on their stops throughout


def test_joint_command_rules_check_every_field():
    # the plant node's /joint_command rules (twin_sim.plant_commands, shared with hil-report):
    # every field given must have one finite value per name, also those the mode does not use
    from twin_sim.plant_commands import CommandRejected, joint_command
    names = [f'joint{i}' for i in range(1, 8)]
    q = [0.1] * 7
    mode, values, feedforward = joint_command(names, names[::-1], q, [0.2] * 7, [])
    assert mode == 'position' and np.array_equal(values, np.full(7, 0.1))
    np.testing.assert_array_equal(feedforward, np.full(7, 0.2))
    mode, values, _ = joint_command(names, ['joint3'], [], [], [1.5])
    assert mode == 'effort' and values[2] == 1.5 and np.isnan(values[0])
    for fields, why in [((q, [], [1.0] * 3), 'effort: 3 values for 7'),
                        ((q, [], [np.nan] * 7), 'effort: non-finite'),
                        ((q, [np.nan] * 7, []), 'velocity: non-finite'),
                        ((q, [0.0] * 3, []), 'velocity: 3 values'),
                        (([], [0.1] * 7, [np.inf] * 7), 'effort: non-finite'),
                        (([np.nan] * 7, [], []), 'position: non-finite'),
                        (([], [], []), 'no position, velocity or effort')]:
        with pytest.raises(CommandRejected, match=why):
            joint_command(names, names, *fields)
    with pytest.raises(CommandRejected, match='more than once'):
        joint_command(names, ['joint1'] * 7, q, [], [])
    with pytest.raises(CommandRejected, match='unknown joints'):
        joint_command(names, ['arm_joint1'], [0.0], [], [])
