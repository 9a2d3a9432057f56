"""
The twin's nodes in one process, as twin_container builds them: wiring, sensor link, bad input.

Node tests (real rclpy nodes in this process, no other process): the robot's messages are given
to twin_bridge's input as the serialized bytes DDS would deliver, and what reaches the mirror and
the detector is observed through the same function-call hooks the container wires.
"""
import math
from pathlib import Path
import re
import time

from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pybullet_data
import pytest
import rclpy
from rclpy.serialization import deserialize_message, serialize_message
import rclpy.time
from robot_twin.config import ConfigError
from robot_twin.nodes.anomaly_node import TwinAnomalyNode
from robot_twin.nodes.bridge_node import TwinBridgeNode
from robot_twin.nodes.hub_node import TwinHubNode
from robot_twin.nodes.mirror_node import TwinMirrorNode
from robot_twin.ros_env import localhost_env
from ros_harness import DDS_KEYS, unique_domain_id
from sensor_msgs.msg import JointState
from twin_bridge.corrective import AnomalyEvent, CorrectiveProposal
from twin_sim.predictor import Predictor
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import RobotModel, URDFError


@pytest.fixture
def ros(monkeypatch, tmp_path):
    """Start rclpy on a private localhost domain: ``start(*params)`` with -p overrides."""
    env = localhost_env(unique_domain_id())
    for key in DDS_KEYS:
        monkeypatch.setenv(key, env[key])
    started = []

    def start(*params):
        args = ['x', '--ros-args']
        for p in params + (f'thresholds_file:={tmp_path / "th.yaml"}', 'model_path:=rules',
                           'commissioning_duration_s:=2.0', 'recommission:=true'):
            args += ['-p', p]
        rclpy.init(args=args)
        started.append(True)
    yield start
    if started:
        rclpy.try_shutdown()


def renamed_sensor_urdf(tmp_path):
    text = open(builtin_urdf(), encoding='utf-8').read().replace('"ft_sensor"', '"wrist_ft"')
    path = tmp_path / 'arm_wrist_ft.urdf'
    path.write_text(text)
    return str(path)


def test_a_sensor_link_with_another_name_is_named_not_guessed(ros, tmp_path):
    urdf = renamed_sensor_urdf(tmp_path)
    ros(f'urdf_path:={urdf}')
    bridge = TwinBridgeNode('bridge_default')
    assert not bridge.input.with_wrench
    assert "no link 'ft_sensor'" in bridge.input.wrench_off_reason
    assert 'ft_sensor_link' in bridge.input.wrench_off_reason
    mirror = TwinMirrorNode('mirror_default', source=bridge.input)
    assert not hasattr(mirror, 'pub_wrench_residual')          # no wrench outputs at all
    rclpy.try_shutdown()
    ros(f'urdf_path:={urdf}', 'ft_sensor_link:=wrist_ft')
    named = TwinBridgeNode('bridge_named')
    assert named.input.with_wrench
    rclpy.try_shutdown()
    ros(f'urdf_path:={urdf}', 'ft_sensor_link:=no_such_link')
    with pytest.raises(URDFError, match="force-torque sensor link 'no_such_link' not found"):
        TwinBridgeNode('bridge_wrong')


def test_a_gripper_s_prismatic_fingers_get_margins_in_metres(ros):
    """The Panda's fingers (4 cm of travel), default settings: rad margins would not fit."""
    panda = str(Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf')
    ros(f'urdf_path:={panda}')               # default margins: 0.1 / 0.05 rad, 0.01 / 0.002 m
    bridge = TwinBridgeNode('bridge_panda')
    assert bridge.names[-2:] == ['panda_finger_joint1', 'panda_finger_joint2']
    np.testing.assert_allclose(bridge.governor.position_margin, [0.05] * 7 + [0.002] * 2)
    lo, hi = bridge.governor.position_range(bridge.names)
    assert lo[7] == pytest.approx(0.002) and hi[7] == pytest.approx(0.038)
    model = RobotModel.from_urdf(panda)
    [msg] = robot_messages(1, time.time() - 0.5, model)
    msg.position = [0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.045, 0.02]     # 5 mm over: overshoot
    bridge.input.on_joint_state(serialize_message(msg))
    assert bridge.intake.counters()['joint_states.accepted'] == 1
    msg.header.stamp.nanosec = (msg.header.stamp.nanosec + 1_000_000) % 1_000_000_000
    msg.position = [0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.06, 0.02]      # 2 cm over: impossible
    bridge.input.on_joint_state(serialize_message(msg))
    counters = bridge.intake.counters()
    assert counters['joint_states.beyond_limits'] == 1 and counters['joint_states.accepted'] == 1


def test_a_gripper_streamed_elsewhere_is_locked_and_the_arm_is_mirrored(ros):
    """The Panda's arm on a 1 kHz topic without its fingers: they are held fixed in the model."""
    panda = str(Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf')
    ros(f'urdf_path:={panda}', "wrench_topic:=''",
        'locked_joints:=panda_finger_joint1=0.04, panda_finger_joint2=0.04')
    bridge = TwinBridgeNode('bridge_locked', anomaly_in_process=True)
    mirror = TwinMirrorNode('mirror_locked', source=bridge.input)
    anomaly = TwinAnomalyNode('anomaly_locked', mirror=mirror)
    results = []
    mirror.result_listeners.append(lambda sample, result: results.append(result))
    arm = RobotModel.from_urdf(panda, locked={'panda_finger_joint1': 0.04,
                                              'panda_finger_joint2': 0.04})
    assert bridge.names == mirror.names == anomaly.names == arm.joint_names   # 7 joints
    for msg in robot_messages(50, time.time() - 0.06, arm, center=0.5 * (arm.lower + arm.upper)):
        bridge.input.on_joint_state(serialize_message(msg))
    # every sample goes on; the first only starts the mirror (no result)
    assert len(results) == 50, (bridge.intake.counters(), mirror.status_values())
    assert results[0] is None and None not in results[1:]
    assert bridge.intake.state_ok(time.time())
    assert max(np.abs(r.effort_residual).max() for r in results[1:]) < 0.5


@pytest.mark.parametrize('fingers', ['in_the_arm_message', 'own_messages'])
def test_locked_fingers_on_the_robot_s_own_topic_are_left_out(ros, fingers):
    # the robot publishes its locked fingers on the same topic, with the arm or in messages
    # of their own (a gripper driver beside the arm's): the arm is mirrored, and nothing about
    # the fingers counts as bad input or as a robot sample
    panda = str(Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf')
    ros(f'urdf_path:={panda}', "wrench_topic:=''",
        'locked_joints:=panda_finger_joint1=0.04, panda_finger_joint2=0.04')
    bridge = TwinBridgeNode('bridge_fingers', anomaly_in_process=True)
    mirror = TwinMirrorNode('mirror_fingers', source=bridge.input)
    results = []
    mirror.result_listeners.append(lambda sample, result: results.append(result))
    arm = RobotModel.from_urdf(panda, locked={'panda_finger_joint1': 0.04,
                                              'panda_finger_joint2': 0.04})
    fingers_msg = ['panda_finger_joint1', 'panda_finger_joint2']
    # a report's piece may follow each robot sample (robot_twin.nodes.idle_work): after the
    # message that completed it, never after the gripper's own messages
    after_samples = []
    after_sample = bridge.input.idle.after_sample
    bridge.input.idle.after_sample = lambda started, period_s: (
        after_samples.append(started), after_sample(started, period_s))
    for k, msg in enumerate(robot_messages(50, time.time() - 0.06, arm,
                                           center=0.5 * (arm.lower + arm.upper))):
        if fingers == 'in_the_arm_message':
            msg.name = list(msg.name) + fingers_msg
            msg.position = list(msg.position) + [0.04, 0.04]
            msg.velocity = list(msg.velocity) + [0.0, 0.0]
            msg.effort = list(msg.effort) + [0.0, 0.0]
        bridge.input.on_joint_state(serialize_message(msg))
        if fingers == 'own_messages' and k % 5 == 0:
            gripper = JointState()
            gripper.header.stamp = msg.header.stamp
            gripper.name, gripper.position = fingers_msg, [0.04, 0.04]
            bridge.input.on_joint_state(serialize_message(gripper))
    counters = bridge.intake.counters()
    assert len(results) == 50 and results[0] is None and None not in results[1:], counters
    assert counters['joint_states.rejected'] == 0 and counters['joint_states.accepted'] == 50
    assert counters['joint_states.other_joints_only'] == (10 if fingers == 'own_messages'
                                                          else 0)
    assert len(after_samples) == 50
    assert max(np.abs(r.effort_residual).max() for r in results[1:]) < 0.5


def test_a_home_pose_beyond_the_urdf_limits_and_an_arm_without_joints_stop_the_start(
        ros, tmp_path):
    model = RobotModel.from_urdf(builtin_urdf())
    home = 0.5 * (model.lower + model.upper)

    def start_with_home():
        ros('corrective_actions.enabled:=true', 'corrective_actions.policy:=home',
            'corrective_actions.home_position:=[' + ', '.join(repr(float(v)) for v in home) + ']')
    home[1] = model.upper[1] + 0.2
    start_with_home()
    with pytest.raises(ConfigError, match=f'home_position is beyond the URDF limits.*'
                                          f'{model.joint_names[1]}'):
        TwinBridgeNode('bridge_far_home')
    rclpy.try_shutdown()
    home[1] = model.upper[1]                           # on the limit: the governor clamps it
    start_with_home()
    TwinBridgeNode('bridge_home_on_limit').destroy_node()
    rclpy.try_shutdown()
    plate = tmp_path / 'plate.urdf'                    # a URDF with links but no joint
    plate.write_text('<robot name="plate"><link name="base"><inertial><mass value="1"/>'
                     '<inertia ixx="1" iyy="1" izz="1" ixy="0" ixz="0" iyz="0"/></inertial>'
                     '</link></robot>')
    ros(f'urdf_path:={plate}')
    with pytest.raises(URDFError, match=f'{plate}: no movable joint'):
        TwinBridgeNode('bridge_no_joints')


def test_default_commissioning_files_are_named_after_the_robot_not_only_the_file(
        tmp_path, monkeypatch):
    # two robots whose URDFs are both called model.urdf: each keeps its own files
    from robot_twin.nodes.anomaly_node import default_robot_file
    monkeypatch.setenv('HOME', str(tmp_path))
    kuka = Path(pybullet_data.getDataPath()) / 'kuka_iiwa' / 'model.urdf'
    (tmp_path / 'arm').mkdir()
    arm = tmp_path / 'arm' / 'model.urdf'
    arm.write_text(Path(builtin_urdf()).read_text())
    with pytest.warns(Warning):                     # the kuka's massless base link
        kuka_model = RobotModel.from_urdf(str(kuka))
    files = {default_robot_file(RobotModel.from_urdf(str(arm)), '_thresholds.yaml'),
             default_robot_file(kuka_model, '_thresholds.yaml')}
    root = tmp_path / '.ros' / 'robot_twin'
    assert files == {str(root / 'robot_twin_arm-model_thresholds.yaml'),
                     str(root / 'lbr_iiwa-model_thresholds.yaml')}
    # a URDF named after its robot keeps the plain name (files saved before stay found)
    assert default_robot_file(RobotModel.from_urdf(builtin_urdf()), '_health.jsonl') == \
        str(root / 'robot_twin_arm_health.jsonl')


def test_the_hub_lists_the_twin_s_joints_without_the_locked_ones(ros):
    panda = str(Path(pybullet_data.getDataPath()) / 'franka_panda' / 'panda.urdf')
    ros(f'urdf_path:={panda}', 'nice:=0',
        'locked_joints:=panda_finger_joint1, panda_finger_joint2')
    hub = TwinHubNode()
    try:
        assert hub.state.joint_names == [f'panda_joint{i}' for i in range(1, 8)]
    finally:
        hub.hub.stop()
    rclpy.try_shutdown()
    ros(f'urdf_path:={panda}', 'nice:=0', 'locked_joints:=panda_hand')
    with pytest.raises(ConfigError, match="locked joint 'panda_hand' is not a moving joint"):
        TwinHubNode()


class _SteppingClock:
    """A node clock whose every reading is 1 ms after the one before (from ``t0``, s)."""

    def __init__(self, t0):
        self.ns = int(t0 * 1e9)

    def now(self):
        self.ns += 1_000_000
        return rclpy.time.Time(nanoseconds=self.ns)


def test_a_new_corrective_stream_goes_on_along_the_old_one_s_path(ros):
    """A second command while a set-point stream plays: no step faster than approved."""
    ros("wrench_topic:=''", 'corrective_actions.enabled:=true',
        'corrective_actions.interface:=joint_command', 'corrective_actions.max_rate_hz:=100.0')
    bridge = TwinBridgeNode('bridge_stream')
    sent = []
    bridge.pub_command.publish = sent.append
    model = RobotModel.from_urdf(builtin_urdf())
    t0 = time.time()
    for msg in robot_messages(20, t0 - 0.02, model):
        bridge.input.on_joint_state(serialize_message(msg))
    bridge.get_clock = lambda clock=_SteppingClock(t0): clock     # each reading 1 ms later
    here = bridge.intake.mapper.position.copy()
    event = AnomalyEvent('ERROR', 'joint1', 'friction_increase', 5.0, t0)
    for k, target in enumerate((here + 0.3, here + 0.6)):          # on in the same direction
        bridge.send_corrective(CorrectiveProposal('trajectory', target, 0.1, 'test', event))
        for _ in range(5 + 20 * k):
            bridge._stream_step()
    assert bridge.commands_sent == 2
    stamps = np.array([m.header.stamp.sec + m.header.stamp.nanosec * 1e-9 for m in sent])
    q = np.array([m.position for m in sent])
    vmax = bridge.governor.limits.velocity * bridge.governor.velocity_scale
    steps = np.abs(np.diff(q, axis=0))
    assert (steps <= vmax * (np.diff(stamps)[:, None] + 1e-6)).all(), steps / (
        vmax * np.diff(stamps)[:, None])


def test_a_robot_without_efforts_is_told_not_silently_mirrored(ros):
    # joint states only: no stale wrench stream; samples fed at once, their stamps up to 30 ms
    # old: no latency limit (the stream checks have tests of their own)
    ros("wrench_topic:=''", 'stream_warn.latency_tail_s:=10.0')
    bridge = TwinBridgeNode('bridge_no_effort', anomaly_in_process=True)
    mirror = TwinMirrorNode('mirror_no_effort', source=bridge.input)
    bridge.status_sources.append(mirror.status_values)
    statuses, results = [], []
    bridge.pub_status.publish = lambda data: statuses.append(   # serialized by the bridge
        deserialize_message(data, DiagnosticArray))
    mirror.result_listeners.append(lambda sample, result: results.append(result))
    model = RobotModel.from_urdf(builtin_urdf())
    messages = robot_messages(20, time.time() - 0.03, model)     # fresh: not stale
    for msg in messages[:10]:
        msg.effort = []
        bridge.input.on_joint_state(serialize_message(msg))
    bridge.publish_status()
    [status] = statuses[-1].status
    values = {kv.key: kv.value for kv in status.values}
    assert status.level == b'\x01' and 'no effort for joint1' in status.message
    assert values['joints_without_effort'].split(',') == list(model.joint_names)
    assert values['mirror.samples_without_effort'] == '10' and not results
    for msg in messages[10:]:                 # efforts from here on: residuals
        bridge.input.on_joint_state(serialize_message(msg))
    bridge.publish_status()
    [status] = statuses[-1].status
    assert status.level == b'\x00' and status.message == 'in sync'
    # the first sample with efforts starts the mirror: no result, but it goes on
    assert len(results) == 10 and results[0] is None and None not in results[1:]
    assert values['mirror.nonfinite_results'] == '0'


def robot_messages(count, t0, model, center=0.0):
    """Return consistent 1 kHz JointState samples of a slow motion (stamps in µs)."""
    predictor = Predictor(model)
    out = []
    for k in range(count):
        t = t0 + k * 1e-3
        q = center + 0.3 * np.sin(0.5 * t + np.arange(model.n))
        qd = 0.15 * np.cos(0.5 * t + np.arange(model.n))
        qdd = -0.075 * np.sin(0.5 * t + np.arange(model.n))
        msg = JointState()
        msg.name = list(model.joint_names)
        msg.position, msg.velocity = q.tolist(), qd.tolist()
        msg.effort = predictor.predict(q, qd, qdd).effort.tolist()
        ns = int(round(t * 1e6)) * 1000
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 1_000_000_000)
        out.append(msg)
    return out


def test_one_process_passes_each_accepted_sample_down_the_chain_by_function_calls(ros):
    ros()
    bridge = TwinBridgeNode(anomaly_in_process=True)
    mirror = TwinMirrorNode(source=bridge.input)
    anomaly = TwinAnomalyNode(mirror=mirror)
    anomaly.report_listeners.append(bridge.take_report)
    results = []
    mirror.result_listeners.append(lambda sample, result: results.append((sample, result)))
    model = RobotModel.from_urdf(builtin_urdf())
    messages = robot_messages(300, time.time() - 1.0, model)
    bad = messages[150]
    bad.position = [math.nan] + list(bad.position)[1:]           # rejected by the bridge
    for msg in messages:
        bridge.input.on_joint_state(serialize_message(msg))
    counters = bridge.intake.counters()
    assert counters['joint_states.accepted'] == 299 and counters['joint_states.nonfinite'] == 1
    stamps = [sample.stamp for sample, _result in results]
    assert (bad.header.stamp.sec, bad.header.stamp.nanosec) not in stamps
    assert len(results) == 299                     # every accepted sample goes on ...
    assert results[0][1] is None                   # ... the first only starts the mirror
    good_after = messages[151].header.stamp
    assert (good_after.sec, good_after.nanosec) in stamps    # the next good one has a residual
    for _sample, result in results[1:]:
        assert np.abs(result.effort_residual).max() < 0.5
    assert anomaly.position is not None              # the detector was fed
    anomaly.publish()                                # and its report reaches the bridge
    assert bridge.last_event is not None and bridge.last_event.level in ('OK', 'WARN')


def test_a_payload_on_twin_payload_reaches_the_mirror_and_a_wrong_one_is_refused(ros):
    """
    /twin/payload (InertiaStamped) in the one-process twin reaches the mirror.

    Once the twin monitors, the mirror predicts with the load; another frame, an absurd mass
    or a far centre of mass is refused, and so is any load during calibration.
    """
    from geometry_msgs.msg import InertiaStamped
    ros('calibration:=false')                     # no background fit to wait for
    bridge = TwinBridgeNode(anomaly_in_process=True)
    mirror = TwinMirrorNode(source=bridge.input)
    anomaly = TwinAnomalyNode(mirror=mirror)
    model = RobotModel.from_urdf(builtin_urdf())

    def payload(mass, frame='', com=(0.0, 0.0, 0.05)):
        msg = InertiaStamped()
        msg.header.frame_id = frame
        msg.inertia.m = mass
        msg.inertia.com.x, msg.inertia.com.y, msg.inertia.com.z = com
        msg.inertia.ixx = msg.inertia.iyy = msg.inertia.izz = 0.4 * mass * 0.05 ** 2
        return msg

    anomaly.on_payload(payload(2.0))              # still calibrating: refused
    assert anomaly.payload_refused == 1 and anomaly.monitor.payload is None
    for msg in robot_messages(4000, time.time() - 4.0, model):
        bridge.input.on_joint_state(serialize_message(msg))
        if anomaly.monitor.step in ('learn', 'monitor'):
            break
    assert anomaly.monitor.step in ('learn', 'monitor')
    bent = np.array([0.0, 0.8, 0.0, -1.2, 0.0, 0.6, 0.0])[:model.n]     # gravity on the load
    sample = bent, np.zeros(model.n), np.zeros(model.n)
    before = mirror.mirror.predictor.predict(*sample).effort
    anomaly.on_payload(payload(2.0, frame=model.payload_frame))
    assert anomaly.payload_refused == 1 and anomaly.monitor.payload.mass == 2.0
    after = mirror.mirror.predictor.predict(*sample).effort
    assert np.abs(after - before).max() > 1.0        # 2 kg on the flange: N·m of gravity
    assert anomaly.status_values()['payload_kg'] == 2.0
    assert anomaly.status_values()['fault_classifier'] == 'rules'     # model_path: rules
    predictor = mirror.mirror.predictor
    anomaly.on_payload(payload(2.0))                 # sent again (a program may repeat it)
    assert mirror.mirror.predictor is predictor and anomaly.payload_refused == 1
    for bad in (payload(1.0, frame='base_link'), payload(1e5), payload(1.0, com=(0, 0, 9))):
        anomaly.on_payload(bad)
    assert anomaly.payload_refused == 4 and anomaly.monitor.payload.mass == 2.0
    np.testing.assert_array_equal(mirror.mirror.predictor.predict(*sample).effort, after)


def test_a_mirror_node_of_its_own_takes_the_payload_itself(ros):
    from geometry_msgs.msg import InertiaStamped
    ros()
    mirror = TwinMirrorNode('mirror_alone')          # separate processes: subscribes itself
    bent = np.array([0.0, 0.8, 0.0, -1.2, 0.0, 0.6, 0.0])[:mirror.model.n]
    zero = np.zeros(mirror.model.n)
    before = mirror.mirror.predictor.predict(bent, zero, zero).effort
    msg = InertiaStamped()
    msg.inertia.m = 2.0
    mirror.on_payload(msg)
    after = mirror.mirror.predictor.predict(bent, zero, zero).effort
    assert np.abs(after - before).max() > 1.0 and mirror.payload_refused == 0
    predictor = mirror.mirror.predictor
    mirror.on_payload(msg)                           # the same load again: nothing changes
    assert mirror.mirror.predictor is predictor
    msg.inertia.m = -1.0
    mirror.on_payload(msg)
    assert mirror.payload_refused == 1
    np.testing.assert_array_equal(mirror.mirror.predictor.predict(bent, zero, zero).effort, after)


def _nonfinite_once(mirror):
    """Make the mirror's next result overflow (a prediction that is not finite), once."""
    update = mirror.update

    def overflowing(*args):
        result = update(*args)
        mirror.update = update
        result.effort_residual = np.full_like(result.effort_residual, math.inf)
        return result
    mirror.update = overflowing


@pytest.mark.parametrize('event', ['payload', 'calibrated model', 'non-finite result', 'gap'])
def test_the_mirror_s_own_restarts_count_no_sample_missing_from_the_robot(ros, event):
    """
    Every sample the robot sent reaches the detectors; a new model costs no residual.

    A payload declared or a calibrated model handed over mid-stream: the mirror predicts with
    it from the next sample on, which gets a residual like every other (before, the mirror
    restarted there: one sample without a residual, and the stream checks counted it missing
    from the robot, in every run at the calibration). A result that is not finite and a gap
    of the robot's restart the mirror, which then gives no residual for a sample or two, but
    the detectors still take those samples: the robot's stream lacks only what it did not
    send (30 samples in the gap).
    """
    from geometry_msgs.msg import InertiaStamped
    ros('calibration:=false')                     # no background fit to wait for
    bridge = TwinBridgeNode(anomaly_in_process=True)
    mirror = TwinMirrorNode(source=bridge.input)
    anomaly = TwinAnomalyNode(mirror=mirror)
    residuals = []
    mirror.pub_residuals.publish = residuals.append
    model = RobotModel.from_urdf(builtin_urdf())
    messages = robot_messages(5000, 1.8e9, model)
    clock = [0.0]
    bridge.input._now = bridge._now = lambda: clock[0]    # received 0.3 ms after the stamp

    def feed(msg):
        clock[0] = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 + 3e-4
        bridge.input.on_joint_state(serialize_message(msg))

    k = 0
    while anomaly.monitor.step not in ('learn', 'monitor'):    # a payload needs that
        feed(messages[k])
        k += 1
    before = len(residuals)
    if event == 'payload':
        load = InertiaStamped()
        load.header.frame_id = model.payload_frame
        load.inertia.m = 1.0
        load.inertia.ixx = load.inertia.iyy = load.inertia.izz = 1e-3
        anomaly.on_payload(load)
        assert anomaly.monitor.payload is not None
    elif event == 'calibrated model':
        mirror.set_model(model.with_payload(None))        # what the anomaly node hands over
    elif event == 'non-finite result':
        _nonfinite_once(mirror.mirror)
    else:
        k += 30                                           # the robot sends nothing for 30 ms
    for msg in messages[k:k + 300]:
        feed(msg)
    new_residuals = len(residuals) - before
    if event in ('payload', 'calibrated model'):
        assert new_residuals == 300 and mirror.mirror.restarts == 0
    elif event == 'non-finite result':            # that sample, and the next one restarts
        assert new_residuals == 298 and mirror.mirror.restarts == 0
    else:                                         # the first sample after the gap restarts
        assert new_residuals == 299 and mirror.mirror.restarts == 1
    assert mirror.nonfinite_results == (event == 'non-finite result')
    values = anomaly.status_values()
    assert values['joint_states.missing'] == (30 if event == 'gap' else 0)
    assert values['joint_states.lost_in_twin'] == 0


@pytest.mark.parametrize('bad', [math.nan, math.inf, -math.inf])
def test_the_output_finiteness_check_catches_every_non_finite_value(bad):
    from twin_sim.mirror import finite
    good = np.array([0.1, -2.0, 1e3, 0.0, 5.0, -1e-9, 7.0])
    assert finite(good, None, good)
    for where in range(good.size):
        worse = good.copy()
        worse[where] = bad
        assert not finite(good, worse)
    assert not finite(np.array([1e308, 1e308]))      # too large to be a residual
    assert not finite(np.array([math.inf]), np.array([-math.inf]))   # not cancelled out


def test_the_observer_notes_a_joint_named_anew_within_an_alarm_episode(ros):
    # the robot status stayed at ERROR from 42.04 s while the joint it names went from joint4
    # (a transient's echo) to joint3 (the fault): both are noted, joint3 with its own onset
    from diagnostic_msgs.msg import DiagnosticArray
    from robot_twin.nodes.messages import make_status
    from robot_twin.nodes.monitor_node import TwinMonitorNode
    ros()
    node = TwinMonitorNode('observer_episodes', watch_commands=False)
    try:
        def report(joint, fault_type, joints):
            array = DiagnosticArray()
            array.status = [make_status('twin/anomaly/robot', 'ERROR', 'anomaly', {
                'since': '42.04', 'joint': joint, 'fault_type': fault_type})] + [
                make_status(f'twin/anomaly/{name}', 'ERROR', 'anomaly', {'since': since})
                for name, since in joints.items()]
            node.on_anomaly(array)

        report('joint4', 'collision_force', {'joint4': '42.04'})
        report('joint4', 'collision_force', {'joint4': '42.04'})
        report('joint3', 'friction_increase', {'joint4': '42.04', 'joint3': '47.5'})
        report('joint3', 'friction_increase', {'joint3': '47.5'})
        assert node.obs.alarms == [('joint4', 'collision_force', 42.04),
                                   ('joint3', 'friction_increase', 47.5)]
    finally:
        node.destroy_node()


def test_the_observer_notes_when_the_emulated_robot_sent_its_samples_late(ros):
    # /twin/plant_status carries the plant's cumulative lateness histogram; the observer (demo,
    # integration tests) notes the time of the report before at least 50 ms of robot time went
    # out 10 ms late or more: a late stream of the emulated robot, which the twin may report
    from diagnostic_msgs.msg import DiagnosticArray
    from robot_twin.nodes.messages import make_status
    from robot_twin.nodes.monitor_node import TwinMonitorNode
    from twin_sim.pacing import JITTER_EDGES_US
    ros()
    node = TwinMonitorNode('observer_test', watch_commands=False)
    try:
        def report(plant_time, late_10ms, late_20ms, start='100.0', over_speed=0,
                   limit_stops=0, stream_holds=0):
            counts = [1000] + [0] * (len(JITTER_EDGES_US) - 3) + [late_10ms, late_20ms]
            values = {'start_stamp': start, 'plant_time_s': f'{plant_time:.3f}',
                      'rate_hz': 1000.0, 'overruns': 0, 'over_speed': over_speed,
                      'limit_stops': limit_stops, 'stream_holds': stream_holds,
                      'jitter_hist_edges_us': ','.join(map(str, JITTER_EDGES_US)),
                      'jitter_hist_counts': ','.join(map(str, counts))}
            array = DiagnosticArray()
            array.status = [make_status('twin/plant', 'OK', 'running', values)]
            node.on_plant(array)

        report(1.0, 0, 0)
        report(2.0, 10, 5)            # 15 ms of samples late: not worth a note
        report(3.0, 40, 30)           # 55 more: late after the report at 2 s
        report(4.0, 60, 30)           # 20 more: no
        assert node.obs.late_sends == [2.0]
        report(0.5, 0, 0, start='200.0')   # a new plant: its counts start again
        report(1.5, 100, 0, start='200.0')
        assert node.obs.late_sends == [2.0, 0.5]
        assert node.obs.limit_hits == []
        report(2.5, 100, 0, start='200.0', over_speed=2)      # its speed limiter cut a move
        report(3.5, 100, 0, start='200.0', over_speed=2, limit_stops=1)
        report(4.5, 100, 0, start='200.0', over_speed=2, limit_stops=1)
        assert node.obs.limit_hits == [1.5, 2.5]            # noted at the report before
        # its controller's set-points paused: it held its reference, then jumped on
        report(5.5, 100, 0, start='200.0', over_speed=2, limit_stops=1, stream_holds=1)
        assert node.obs.limit_hits == [1.5, 2.5, 4.5]
    finally:
        node.destroy_node()


def test_the_bridge_names_why_it_is_not_in_sync_on_status_and_diagnostics(ros):
    """All rejected, stamps 3 s behind, in sync: /twin/status and /diagnostics say which."""
    # (the samples 3 s behind stay in the latency window: no latency limit here)
    ros("wrench_topic:=''", 'stream_warn.latency_tail_s:=10.0')
    bridge = TwinBridgeNode('bridge_why', anomaly_in_process=True)
    sent = {'status': [], 'diagnostics': []}
    bridge.pub_status.publish = lambda data: sent['status'].append(
        deserialize_message(data, DiagnosticArray).status[0])
    bridge.pub_diag.publish = lambda data: sent['diagnostics'].append(
        deserialize_message(data, DiagnosticArray).status[0])
    model = RobotModel.from_urdf(builtin_urdf())

    def feed_and_report(messages):
        for msg in messages:
            bridge.input.on_joint_state(serialize_message(msg))
        bridge.publish_status()
        return sent['status'][-1], sent['diagnostics'][-1]

    extra = robot_messages(20, time.time() - 0.03, model)
    for msg in extra:                                     # a joint the URDF does not have
        msg.name = list(msg.name) + ['drive_joint']
        msg.position, msg.velocity, msg.effort = (list(v) + [0.0] for v in (
            msg.position, msg.velocity, msg.effort))
    status, diag = feed_and_report(extra)
    assert status.level == b'\x02' and status.message.startswith(
        'all /joint_states rejected (20 messages, mostly unknown_joint: unknown joint '
        "'drive_joint'")
    assert diag.name == 'twin/sync' and diag.level == b'\x02' and diag.message == status.message
    status, diag = feed_and_report(robot_messages(20, time.time() - 3.019, model))  # 3 s behind
    assert status.level == b'\x03'
    assert status.message.startswith('STALE: joint_states (stamps 3.0 s behind the local clock')
    assert diag.level == b'\x02' and diag.message == status.message
    values = {kv.key: kv.value for kv in diag.values}
    assert values['joint_states.state'] == 'STALE'
    assert float(values['joint_states.stamps_behind_s']) == pytest.approx(3.0, abs=0.1)
    status, diag = feed_and_report(robot_messages(20, time.time() - 0.019, model))  # synced
    assert (status.level, status.message) == (b'\x00', 'in sync')
    assert (diag.level, diag.message) == (b'\x00', 'in sync')
    values = {kv.key: kv.value for kv in diag.values}
    counters = bridge.intake.counters()
    assert values['joint_states.rejected'] == str(counters['joint_states.rejected'])
    assert {'joint_states.age_s', 'latency_p99_s', 'clock_offset_s'} <= set(values)


def test_a_plant_in_the_container_keeps_its_own_name_and_parameters(monkeypatch, tmp_path):
    """``--node bench:twin_plant``: the node is 'bench' and reads the /**/bench section."""
    from robot_twin.nodes.container import factories
    env = localhost_env(203)
    for key in DDS_KEYS:
        monkeypatch.setenv(key, env[key])
    params = tmp_path / 'bench.yaml'
    params.write_text('/**/bench:\n  ros__parameters: {step_mode: lockstep, seed: 7}\n')
    rclpy.init(args=['twin_container', '--ros-args', '--params-file', str(params)])
    try:
        [make] = factories([('bench', 'twin_plant')])
        node = make([])
        try:
            assert node.get_name() == 'bench'
            assert node.params['seed'] == 7 and node.lockstep
        finally:
            node.destroy_node()
    finally:
        rclpy.try_shutdown()


def _stamp_of(data):
    """``(sec, nanosec)`` of a serialized DiagnosticArray."""
    stamp = deserialize_message(data, DiagnosticArray).header.stamp
    return stamp.sec, stamp.nanosec


def test_reports_and_status_carry_the_stamp_of_the_newest_robot_sample(ros):
    """/twin/anomaly, /diagnostics, /twin/markers, /twin/rul and /twin/status: robot stamps."""
    ros()
    bridge = TwinBridgeNode(anomaly_in_process=True)
    mirror = TwinMirrorNode(source=bridge.input)
    anomaly = TwinAnomalyNode(mirror=mirror)
    bridge.status_sources.append(anomaly.status_values)
    sent = {k: [] for k in ('anomaly', 'diagnostics', 'markers', 'rul', 'status', 'sync')}
    anomaly.pub_anomaly.publish = sent['anomaly'].append
    anomaly.pub_diag.publish = sent['diagnostics'].append
    anomaly.pub_markers.publish = lambda msg: sent['markers'].append(
        [(m.header.stamp.sec, m.header.stamp.nanosec) for m in msg.markers])
    anomaly.pub_rul.publish = sent['rul'].append
    bridge.pub_status.publish = sent['status'].append
    bridge.pub_diag.publish = sent['sync'].append
    model = RobotModel.from_urdf(builtin_urdf())
    messages = robot_messages(200, time.time() - 0.5, model)
    robot_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in messages}

    anomaly.publish()                         # before any sample: the node's clock
    bridge.publish_status()
    assert _stamp_of(sent['anomaly'][-1]) not in robot_stamps
    assert _stamp_of(sent['status'][-1]) not in robot_stamps
    for msg in messages:
        bridge.input.on_joint_state(serialize_message(msg))
    newest = (messages[-1].header.stamp.sec, messages[-1].header.stamp.nanosec)
    anomaly.publish()
    anomaly.publish_rul()
    bridge.publish_status()
    for topic in ('anomaly', 'diagnostics', 'rul', 'status', 'sync'):
        assert _stamp_of(sent[topic][-1]) == newest, topic
    assert sent['markers'] and set(sent['markers'][-1]) == {newest}
    # a late report (the robot stopped) still carries the stamp of the sample it comes from
    time.sleep(0.01)
    anomaly.publish()
    bridge.publish_status()
    assert _stamp_of(sent['anomaly'][-1]) == _stamp_of(sent['status'][-1]) == newest


def test_twin_status_counts_dropped_samples_and_writes_epoch_times_in_full(ros):
    """joint_states.dropped as /twin/anomaly's dropped_samples; since to the microsecond."""
    ros()
    bridge = TwinBridgeNode(anomaly_in_process=True)
    mirror = TwinMirrorNode(source=bridge.input)
    anomaly = TwinAnomalyNode(mirror=mirror)
    bridge.status_sources.append(anomaly.status_values)
    statuses, reports = [], []
    bridge.pub_status.publish = lambda data: statuses.append(
        deserialize_message(data, DiagnosticArray).status[0])
    anomaly.pub_anomaly.publish = lambda data: reports.append(
        deserialize_message(data, DiagnosticArray).status)
    taken = []
    mirror.result_listeners.insert(0, lambda sample, result: taken.append((sample, result)))
    model = RobotModel.from_urdf(builtin_urdf())
    for msg in robot_messages(100, time.time() - 0.3, model):
        bridge.input.on_joint_state(serialize_message(msg))
    sample, result = taken[-1]
    anomaly.take_result(sample, result)       # a stamp that did not advance: dropped
    anomaly.take_result(sample, result)
    bridge.publish_status()
    anomaly.publish()
    values = {kv.key: kv.value for kv in statuses[-1].values}
    robot = {kv.key: kv.value for kv in next(
        s for s in reports[-1] if s.name == 'twin/anomaly/robot').values}
    assert values['joint_states.dropped'] == robot['dropped_samples'] == '2'
    assert values['joint_states.lost_in_twin'] == '0'
    assert values['joint_states.missing'] == '0'          # the robot's stream had no gap
    since = values['joint_states.since']
    assert re.fullmatch(r'\d{10}\.\d{6}', since), since
    assert abs(float(since) - time.time()) < 60.0


def test_epoch_times_in_status_values_keep_the_microseconds():
    from robot_twin.nodes.messages import value_text
    assert value_text(1796516487.6263728) == '1796516487.626373'   # not '1.79652e+09'
    assert value_text(-1796516487.5) == '-1796516487.500000'
    assert value_text(0.123456789) == '0.123457'
    assert value_text(123456.7) == '123457'
    assert value_text(math.nan) == 'nan' and value_text(math.inf) == 'inf'
    assert value_text(1e300) == '1e+300' and value_text(3) == '3'


def _running_plant(monkeypatch, lag):
    """Start a real-time PlantNode whose pacer's ``lag`` is ``lag(node, pacer, now, orig)``."""
    from robot_twin.nodes import plant_node
    original = plant_node.RealtimePacer.lag
    holder = {}

    def patched(pacer, now):
        node = holder.get('node')
        return original(pacer, now) if node is None else lag(node, pacer, now, original)
    monkeypatch.setattr(plant_node.RealtimePacer, 'lag', patched)
    node = plant_node.PlantNode('plant_under_test')
    return node, holder


def _stop_plant(node):
    node.running = False
    node.thread.join(10.0)
    node.destroy_node()


def test_a_plant_reset_while_it_steps_sends_no_sample_into_the_future(ros, monkeypatch):
    """The sample stepped before /twin/reset keeps the epoch it was stepped on."""
    from std_srvs.srv import Trigger
    ros('step_mode:=realtime')
    clocks, seen = [], {}

    def lag(node, pacer, now, original):
        if 'stamp' not in seen and node.plant.time > 0.05:
            # between the step and its publication: the stepped sample's stamp is this
            seen['stamp'] = node.epoch + node.plant.time
            seen['index'] = len(clocks)
            node.on_reset(Trigger.Request(), Trigger.Response())
            return 0.0                 # due now: published at once
        return original(pacer, now)
    node, holder = _running_plant(monkeypatch, lag)
    try:
        node.pub_clock.publish = clocks.append
        holder['node'] = node
        deadline = time.monotonic() + 60.0
        while ('index' not in seen or len(clocks) <= seen['index'] + 1) \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 'index' in seen and len(clocks) > seen['index'] + 1, 'the plant did not step'
        stamp = clocks[seen['index']].clock
        expected = divmod(int(round(seen['stamp'] * 1e9)), 1_000_000_000)
        assert (stamp.sec, stamp.nanosec) == expected      # not the new epoch + the old time
    finally:
        _stop_plant(node)


def test_a_starved_plant_publishes_its_status_at_most_once_a_period(ros, monkeypatch):
    ros('step_mode:=realtime')
    from robot_twin.nodes.plant_node import Throttle
    clocks, messages = [], []
    node, holder = _running_plant(monkeypatch, lambda node, pacer, now, original: 1.0)
    try:
        wall = [0.0]
        node.starved_status = Throttle(1.0, clock=lambda: wall[0])
        publish_status = node.publish_status
        node.publish_status = lambda message: (messages.append(message),
                                               publish_status(message))
        node.pub_clock.publish = clocks.append
        holder['node'] = node                   # from now on every step is 1 s late
        deadline = time.monotonic() + 60.0
        while len(clocks) < 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(clocks) >= 30
        assert messages.count('samples dropped (starved of CPU)') == 1
        wall[0] = 1.0
        count = len(clocks)
        while len(clocks) < count + 30 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert messages.count('samples dropped (starved of CPU)') == 2
    finally:
        _stop_plant(node)


def test_the_throttle_lets_one_action_through_per_period():
    from robot_twin.nodes.plant_node import Throttle
    now = [10.0]
    throttle = Throttle(1.0, clock=lambda: now[0])
    assert throttle.due() and not throttle.due()
    now[0] = 10.9
    assert not throttle.due()
    now[0] = 11.0
    assert throttle.due() and not throttle.due()


def test_maintenance_declared_on_twin_maintenance_is_applied_once_and_logged(ros, tmp_path):
    """
    /twin/maintenance (DiagnosticStatus: joint, action, by, note) reaches the RUL monitor.

    An accepted declaration re-learns the joint (a ``maintenance`` record in the health log)
    and becomes a ``maintenance_done`` entry of the lifecycle log, with who and the note; a bad
    one is refused, counted in the status values, and changes nothing.
    """
    import json
    from diagnostic_msgs.msg import DiagnosticStatus
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    from robot_twin.nodes.messages import maintenance_status, MAINTENANCE_TOPIC
    from twin_bridge.ledger import KINDS, read_ledger
    ledger, health = tmp_path / 'ledger.jsonl', tmp_path / 'health.jsonl'
    ros(f'ledger_path:={ledger}', f'rul.log_path:={health}')
    anomaly = TwinAnomalyNode('anomaly_maintenance')
    (sub,) = [s for s in anomaly.subscriptions if s.topic_name == MAINTENANCE_TOPIC]
    assert sub.msg_type is DiagnosticStatus
    assert sub.qos_profile.durability == DurabilityPolicy.VOLATILE    # never re-applied
    assert sub.qos_profile.reliability == ReliabilityPolicy.RELIABLE
    for bad in (maintenance_status('joint9', 'lubricate'), maintenance_status('joint3', 'oil'),
                maintenance_status('', 'lubricate'), maintenance_status('joint3', ' '),
                DiagnosticStatus()):
        anomaly.on_maintenance(bad)
    assert anomaly.status_values()['maintenance.refused'] == 5
    assert anomaly.status_values()['maintenance.accepted'] == 0
    # as the hub publishes it, and as `ros2 topic pub` would (name, message, values)
    anomaly.on_maintenance(maintenance_status('joint3', 'lubricate', 'twin_hub (REST)',
                                              'new grease'))
    by_hand = DiagnosticStatus(name='joint5', message='replace')
    anomaly.on_maintenance(by_hand)
    assert anomaly.status_values()['maintenance.accepted'] == 2
    anomaly.publish_rul()                          # the RUL report carries the ledger entries
    anomaly.destroy_node()
    records = [json.loads(line) for line in health.read_text().splitlines()]
    assert [(r['joint'], r['action']) for r in records if r.get('kind') == 'maintenance'] == \
        [('joint3', 'lubricate'), ('joint5', 'replace')]
    done = [e.data for e in read_ledger(str(ledger)) if e.kind == 'maintenance_done']
    assert [(d['joint'], d['action'], d['by'], d['note']) for d in done] == [
        ('joint3', 'lubricate', 'twin_hub (REST)', 'new grease'), ('joint5', 'replace', '', '')]
    assert 'maintenance_done' in KINDS and 'health_rebaseline' in KINDS
