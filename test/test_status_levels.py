"""
/twin/status on a degraded robot stream: the joint-state rate, and WARN with its causes.

An audit's run beside a starved 500 Hz robot stand-in: /twin/status said OK in 135 of 142
records while 4.4 % of the robot's samples were missing, 147 were lost in the twin's own input
queue and the latency p99 was 116 ms; it had no received rate at all. :class:`StreamCheck`
judges the status counters over a recent window (``stream_warn.*``), so a stream that recovers
is OK again. Unit tests of the check with the time passed in, then the bridge's /twin/status
with the anomaly node's stream checks counting a real gap.
"""
import math

from diagnostic_msgs.msg import DiagnosticArray
import pytest
import rclpy
from rclpy.serialization import deserialize_message, serialize_message
from robot_twin.config import defaults, validate_value
from robot_twin.nodes.anomaly_node import TwinAnomalyNode
from robot_twin.nodes.bridge_node import TwinBridgeNode
from robot_twin.nodes.mirror_node import TwinMirrorNode
from robot_twin.nodes.status import CpuCheck, StreamCheck, StreamWindow, sync_diagnostic
from robot_twin.ros_env import localhost_env
from ros_harness import DDS_KEYS, unique_domain_id
from sensor_msgs.msg import JointState
from test_nodes import robot_messages
from twin_bridge.intake import RobotIntake
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import RobotModel

PERIOD_S = 0.125
"""Status period of the unit tests (8 Hz: a whole number of periods in the 5 s window), s."""


def default_check():
    """Return the bridge's :class:`StreamCheck` with the default ``stream_warn.*`` parameters."""
    p = defaults('twin_bridge')
    return StreamCheck(p['stream_warn.window_s'], p['stream_warn.missing_share'],
                       p['stream_warn.lost_in_twin_share'], p['stream_warn.latency_tail_s'])


class Robot:
    """
    The status counters of a robot stream, advanced one status period at a time.

    ``rate_hz`` samples per second, of which the shares ``missing`` (not sent by the robot)
    and ``lost`` (lost in the twin's queue) never arrive; the twin takes the rest.
    """

    def __init__(self, rate_hz=500.0):
        self.rate_hz = rate_hz
        self.k = 0
        self.counts = {'joint_states.samples': 0, 'joint_states.missing': 0,
                       'joint_states.lost_in_twin': 0}
        self._due = [0.0, 0.0, 0.0]         # samples, missing, lost not counted yet

    def _take(self, i, amount):
        self._due[i] += amount
        n = int(self._due[i])
        self._due[i] -= n
        return n

    def run(self, check, seconds, missing=0.0, lost=0.0, latency_p99_s=0.002):
        """Feed ``check`` a status each period for ``seconds``; return the last judgement."""
        for _ in range(round(seconds / PERIOD_S)):
            self.k += 1
            n = self._take(0, self.rate_hz * PERIOD_S)
            n_missing, n_lost = self._take(1, n * missing), self._take(2, n * lost)
            self.counts['joint_states.missing'] += n_missing
            self.counts['joint_states.lost_in_twin'] += n_lost
            self.counts['joint_states.samples'] += n - n_missing - n_lost
            window = check.observe(self.counts, self.k * PERIOD_S)
            judged = check.judge('OK', 'in sync', window, 0.001, latency_p99_s)
        return judged, window


def test_the_audit_s_degraded_stream_warns_and_names_its_causes():
    """4.4 % missing, 0.2 % lost in the twin, p99 116 ms: WARN with each cause and number."""
    check = default_check()
    robot = Robot(500.0)
    assert robot.run(check, 10.0)[0] == ('OK', 'in sync')
    (level, message), w = robot.run(check, 10.0, missing=0.044, lost=0.002,
                                    latency_p99_s=0.116)
    assert level == 'WARN' and 'in sync' not in message
    assert (w.span_s, w.expected) == (5.0, 2500)
    assert w.missing == pytest.approx(110, abs=1) and w.lost == pytest.approx(5, abs=1)
    assert message.startswith(f'joint_states degraded in the last 5.0 s, '
                              f'{w.samples / 5.0:.0f} Hz received of 500 Hz: ')
    assert (f"{w.missing} of the robot's 2500 samples missing from its stream "
            f'({w.missing / 2500:.1%}, limit 1.0%)') in message
    assert f"{w.lost} samples lost in the twin's own input queue" in message
    assert 'latency p99 116 ms, 115 ms above its median (limit 50 ms)' in message
    # each cause alone is enough
    assert 'missing' in robot.run(check, 6.0, missing=0.02)[0][1]
    assert 'lost in the twin' in robot.run(check, 6.0, lost=0.001)[0][1]
    level, message = robot.run(check, 6.0, latency_p99_s=0.06)[0]
    assert level == 'WARN' and 'latency p99 60 ms, 59 ms above its median' in message
    assert 'missing' not in message and 'lost' not in message


def test_a_stream_that_recovers_is_ok_again_once_its_bad_stretch_left_the_window():
    check = default_check()
    robot = Robot(500.0)
    assert robot.run(check, 3.0, missing=0.1)[0][0] == 'WARN'
    (level, _), window = robot.run(check, 4.0)
    assert level == 'WARN' and window.missing > 0        # its last second still in the 5 s
    (level, message), window = robot.run(check, 1.5)
    assert (level, message) == ('OK', 'in sync') and window.missing == 0


def test_the_limits_are_exceeded_only_above_them():
    check = default_check()
    assert check.judge('OK', 'in sync', StreamWindow(5.0, 2475, 25, 0), 0.0, 0.05) == (
        'OK', 'in sync')                      # 1 % missing and 50 ms: on the limits
    assert check.judge('OK', 'in sync', StreamWindow(5.0, 2474, 26, 0), 0.0, 0.05)[0] == 'WARN'
    assert check.judge('OK', 'in sync', StreamWindow(5.0, 2499, 0, 1), 0.0, 0.05)[0] == 'WARN'
    assert check.judge('OK', 'in sync', StreamWindow(5.0, 2500, 0, 0), 0.0, 0.0501)[0] == 'WARN'


def test_the_rate_fields_count_the_window():
    check = default_check()
    robot = Robot(500.0)
    window = robot.run(check, PERIOD_S)[1]
    assert window.span_s == 0.0 and math.isnan(window.values()['joint_states.rate_hz'])
    robot.run(check, 2.0)
    values = robot.run(check, 8.0, missing=0.04)[1].values()
    assert values['joint_states.rate_hz'] == pytest.approx(480.0, abs=0.5)
    assert values['joint_states.expected_rate_hz'] == 500.0
    assert values['joint_states.missing_share'] == pytest.approx(0.04, abs=0.001)
    assert values['joint_states.lost_in_twin_share'] == 0.0
    window = robot.run(check, 1.0)[1]          # the last 5 s, no more
    assert window.span_s == 5.0 and window.missing == pytest.approx(80, abs=1)
    # counters and clock that start again (a restart): so does the window
    fast = Robot(1000.0)
    assert fast.run(check, PERIOD_S)[1].span_s == 0.0
    values = fast.run(check, 6.0)[1].values()
    assert values['joint_states.rate_hz'] == 1000.0


def test_without_the_anomaly_node_s_counters_only_the_rate_and_latency_count():
    """Separate processes: the bridge has no missing or lost counters."""
    check = default_check()
    check.observe({'joint_states.samples': 0}, 0.0)
    window = check.observe({'joint_states.samples': 1000}, 1.0)
    assert window == StreamWindow(1.0, 1000) and window.expected is None
    assert window.values() == {'joint_states.rate_hz': 1000.0}
    assert check.judge('OK', 'in sync', window, 0.001, 0.01) == ('OK', 'in sync')
    level, message = check.judge('OK', 'in sync', window, 0.001, 0.2)
    assert level == 'WARN' and message == (
        'joint_states degraded in the last 1.0 s, 1000 Hz received: latency p99 200 ms, '
        '199 ms above its median (limit 50 ms)')
    # robot and twin clocks 3 s apart: a latency of 3 s on every sample is not late samples
    assert check.judge('OK', 'in sync', window, 3.001, 3.01) == ('OK', 'in sync')


def test_stamps_that_gave_no_sample_make_the_stream_degraded():
    # a gripper on the arm's clock at half its rate (two broadcasters of one controller
    # manager): the intake merges the stamps that have it and counts the others incomplete.
    # Before, /twin/status said OK with half of the robot's stamps giving no sample
    intake = RobotIntake([f'joint{i}' for i in range(1, 8)], with_wrench=False)
    check = default_check()
    check.observe(intake.counters(), 0.0)
    arm, gripper = [f'joint{i}' for i in range(1, 6)], ['joint6', 'joint7']
    for k in range(2000):
        t = 100.0 + 0.001 * k
        sec, nanosec = divmod(100_000_000_000 + 1_000_000 * k, 1_000_000_000)
        for names in [arm] + ([gripper] if k % 2 == 0 else []):
            assert intake.joint_state(names, [0.1] * len(names), [0.0] * len(names),
                                      [1.0] * len(names), t, t + 0.0003, nanosec) is None
            intake.sample((sec, nanosec))
    window = check.observe(intake.counters(), 2.0)
    assert (window.samples, window.incomplete) == (1000, 999)
    assert window.values()['joint_states.incomplete_share'] == pytest.approx(0.4997, abs=1e-4)
    level, message = check.judge(*intake.sync_status(102.0), window, 0.0003, 0.0004)
    assert level == 'WARN' and message == (
        "joint_states degraded in the last 2.0 s, 500 Hz received: 999 of the robot's 1999 "
        'stamps gave no sample, their joints not all in with one stamp (50.0%, limit 1.0%; '
        'publish every joint with each stamp, or the others on stamps of their own)')
    # on the limit (1 in 100) it is not degraded, nor is one stamp shortly after a start (the
    # twin subscribed between two messages of a stamp)
    assert default_check().judge('OK', 'in sync', StreamWindow(0.2, 20, incomplete=1),
                                 0.0, 0.001) == ('OK', 'in sync')
    assert default_check().judge('OK', 'in sync', StreamWindow(5.0, 2475, incomplete=25),
                                 0.0, 0.001) == ('OK', 'in sync')
    assert default_check().judge('OK', 'in sync', StreamWindow(5.0, 2474, incomplete=26),
                                 0.0, 0.001)[0] == 'WARN'


def test_stale_and_error_stay_and_a_warning_keeps_its_message():
    window = StreamWindow(5.0, 2000, 500, 0)
    for level in ('STALE', 'ERROR'):
        assert default_check().judge(level, 'why', window, 0.0, 1.0) == (level, 'why')
    level, message = default_check().judge('WARN', 'waiting for joints: joint7', window, 0.0,
                                           0.001)
    assert level == 'WARN' and message.startswith('waiting for joints: joint7; joint_states '
                                                  'degraded in the last 5.0 s')
    values = {'joint_states.accepted': 2000, **window.values()}
    assert sync_diagnostic(level, message, values).values['joint_states.rate_hz'] == 400.0


class FakeCpu:
    """A process CPU clock that the test advances."""

    def __init__(self):
        self.seconds = 0.0

    def __call__(self):
        return self.seconds


def test_the_cpu_check_warns_above_its_limit_once_its_window_is_half_full():
    cpu = FakeCpu()
    check = CpuCheck(10.0, 0.5, cpu_clock=cpu)
    values = check.observe(100.0)
    assert math.isnan(values['process.cpu_cores']) and values['process.cpu_window_s'] == 0.0
    assert (check.judge().level, check.judge().message) == ('OK', 'measuring')
    cpu.seconds += 3.2                   # start-up: a whole core for 4 s is not judged yet
    check.observe(104.0)
    entry = check.judge()
    assert entry.name == 'twin/cpu' and entry.level == 'OK' and not check.over
    assert entry.message == '0.80 of a core over the last 4.0 s (limit 0.5)'
    for k in range(1, 21):               # then 0.3 of a core, a status a second
        cpu.seconds += 0.3
        values = check.observe(104.0 + k)
    assert values['process.cpu_cores'] == pytest.approx(0.3)
    assert values['process.cpu_window_s'] == pytest.approx(10.0)
    assert check.judge().level == 'OK'
    for k in range(21, 27):              # 0.9 of a core for 6 s: 0.66 over the last 10 s
        cpu.seconds += 0.9
        check.observe(104.0 + k)
    entry = check.judge()
    assert entry.level == 'WARN' and check.over
    assert entry.message.startswith('the twin took 0.66 of a core over the last 10.0 s, above '
                                    'its limit 0.5')
    assert entry.values['process.cpu_cores'] == pytest.approx(0.66)
    assert check.judge('commissioning').message.startswith(
        'the twin took 0.66 of a core over the last 10.0 s while commissioning (learning the '
        'robot costs more than monitoring it), above its limit 0.5')
    for k in range(27, 41):              # 0.48 for a while: below the limit, not below 90 %
        cpu.seconds += 0.48
        values = check.observe(104.0 + k)
        assert check.judge().level == 'WARN' and check.over  # no flapping at the limit
    assert values['process.cpu_cores'] == pytest.approx(0.48)
    for k in range(41, 54):              # back to 0.3: OK once the burst has left the window
        cpu.seconds += 0.3
        check.observe(104.0 + k)
    assert check.judge().level == 'OK' and not check.over


def test_the_cpu_check_without_a_limit_and_after_a_clock_went_back():
    cpu = FakeCpu()
    check = CpuCheck(2.0, 0.0, cpu_clock=cpu)        # limit 0: figures only
    check.observe(0.0)
    cpu.seconds += 4.0
    check.observe(2.0)
    entry = check.judge()
    assert entry.level == 'OK' and entry.message == '2.00 of a core over the last 2.0 s (no ' \
        'limit set)'
    check = CpuCheck(2.0, 0.5, cpu_clock=cpu)
    check.observe(50.0)
    values = check.observe(10.0)                     # the steady clock went back: start again
    assert values['process.cpu_window_s'] == 0.0 and check.judge().message == 'measuring'


@pytest.mark.parametrize('name, value, problem', [
    ('cpu_warn.window_s', 0.5, 'out of range'),
    ('cpu_warn.limit_cores', -0.1, 'out of range'),
    ('cpu_warn.limit_cores', 1, 'write 1.0'),
    ('cpu_warn.limit_cores', 0.0, None),
    ('stream_warn.window_s', 2.0, None),
    ('stream_warn.window_s', 0.0, 'out of range'),
    ('stream_warn.missing_share', 1.5, 'out of range [0.0, 1.0]'),
    ('stream_warn.missing_share', 1, 'write 1.0'),
    ('stream_warn.lost_in_twin_share', -0.1, 'out of range'),
    ('stream_warn.latency_tail_s', float('inf'), 'not a finite number'),
    ('stream_warn.latency_tail_s', '50ms', 'is a string'),
])
def test_the_stream_warn_parameters_are_validated(name, value, problem):
    found = validate_value('twin_bridge', name, value)
    if problem is None:
        assert found is None
    else:
        assert problem in found and name in found


# --- the bridge's /twin/status ----------------------------------------------------------------

@pytest.fixture
def bridge(monkeypatch, tmp_path):
    """Start a one-process twin (bridge, mirror, anomaly node); yield its bridge."""
    env = localhost_env(unique_domain_id())
    for key in DDS_KEYS:
        monkeypatch.setenv(key, env[key])
    args = ['x', '--ros-args']
    for p in ("wrench_topic:=''", 'stream_warn.window_s:=1.0', 'calibration:=false',
              f'thresholds_file:={tmp_path / "th.yaml"}', 'model_path:=rules',
              'commissioning_duration_s:=2.0', 'recommission:=true'):
        args += ['-p', p]
    rclpy.init(args=args)
    try:
        node = TwinBridgeNode(anomaly_in_process=True)
        mirror = TwinMirrorNode(source=node.input)
        anomaly = TwinAnomalyNode(mirror=mirror)
        node.status_sources += [mirror.status_values, anomaly.status_values]
        yield node
    finally:
        rclpy.try_shutdown()


def status_feeder(bridge, count, parts=lambda msg: [msg]):
    """
    Return ``run(seconds, skip=0)``: feed ``bridge`` a 1 kHz robot, a status each 0.1 s.

    The robot's ``count`` samples are received 0.3 ms after their stamps, each stamp as the
    messages ``parts(msg)``; ``skip`` samples are never sent. ``run`` returns the last status's
    level, message and values.
    """
    statuses = []
    bridge.pub_status.publish = lambda data: statuses.append(
        deserialize_message(data, DiagnosticArray).status[0])
    clock = [0.0]
    bridge.input._now = bridge._now = lambda: clock[0]
    messages = iter(robot_messages(count, 1.8e9, RobotModel.from_urdf(builtin_urdf())))

    def run(seconds, skip=0):
        for _ in range(skip):
            next(messages)
        for _ in range(round(seconds / 0.1)):
            for _ in range(100):
                msg = next(messages)
                clock[0] = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9 + 3e-4
                for part in parts(msg):
                    bridge.input.on_joint_state(serialize_message(part))
            bridge.publish_status()
        status = statuses[-1]
        return status.level, status.message, {kv.key: kv.value for kv in status.values}
    return run


def test_twin_status_gives_the_rate_and_warns_over_a_recent_gap(bridge):
    """A 1 kHz robot, received 0.3 ms after its stamps; 30 samples it never sent."""
    diagnostics = []
    bridge.pub_diag.publish = lambda data: diagnostics.append(
        deserialize_message(data, DiagnosticArray).status)
    run = status_feeder(bridge, 3100)
    level, message, values = run(1.5)
    assert (level, message) == (b'\x00', 'in sync')
    # the process's own CPU: on /twin/status, and as twin/cpu beside twin/sync on /diagnostics
    assert float(values['process.cpu_cores']) > 0.0
    assert [s.name for s in diagnostics[-1]] == ['twin/sync', 'twin/cpu']
    cpu = {kv.key: kv.value for kv in diagnostics[-1][1].values}
    assert cpu['process.cpu_cores'] == values['process.cpu_cores'] and cpu['limit_cores'] == '0.5'
    assert values['anomaly.phase'] in ('commissioning', 'monitoring')
    assert float(values['joint_states.rate_hz']) == pytest.approx(1000.0, rel=1e-3)
    assert float(values['joint_states.expected_rate_hz']) == pytest.approx(1000.0, rel=1e-3)
    level, message, values = run(0.5, skip=30)      # the robot sends nothing for 30 ms
    assert level == b'\x01' and values['joint_states.missing'] == '30'
    assert message.startswith('joint_states degraded in the last 1.0 s, ')
    assert "30 of the robot's" in message and 'samples missing from its stream' in message
    assert float(values['joint_states.missing_share']) == pytest.approx(0.03, rel=0.05)
    level, message, values = run(1.0)               # the gap has left the last second
    assert (level, message) == (b'\x00', 'in sync')
    assert values['joint_states.missing'] == '30' and values['joint_states.missing_share'] == '0'
    assert float(values['joint_states.rate_hz']) == pytest.approx(1000.0, rel=1e-3)


def _split(msg, arm=5):
    """Return ``msg`` as two JointState messages of its stamp: the arm's joints, the wrist's."""
    parts = []
    for joints in (slice(0, arm), slice(arm, None)):
        part = JointState()
        part.header.stamp = msg.header.stamp
        part.name = list(msg.name)[joints]
        for field in ('position', 'velocity', 'effort'):
            setattr(part, field, list(getattr(msg, field))[joints])
        parts.append(part)
    return parts


def test_twin_status_counts_samples_of_a_robot_that_splits_each_stamp(bridge):
    """A 1 kHz robot that sends each stamp's joints in two messages: 1000 Hz, not 2000."""
    run = status_feeder(bridge, 2600, _split)
    level, message, values = run(1.5)
    assert (level, message) == (b'\x00', 'in sync')
    assert values['joint_states.accepted'] == '3000'              # messages: two per stamp
    assert values['joint_states.samples'] == '1500'
    assert float(values['joint_states.rate_hz']) == pytest.approx(1000.0, rel=1e-3)
    assert float(values['joint_states.expected_rate_hz']) == pytest.approx(1000.0, rel=1e-3)
    assert values['joint_states.missing_share'] == '0'
    level, message, values = run(0.5, skip=30)      # the robot sends nothing for 30 ms
    assert level == b'\x01' and values['joint_states.missing'] == '30'
    # the last 1.0 s spans 1030 stamps: 1000 samples taken, 30 missing (2000 messages)
    assert "971 Hz received of 1000 Hz: 30 of the robot's 1030 samples missing" in message
    assert float(values['joint_states.missing_share']) == pytest.approx(30 / 1030, rel=1e-3)
    assert float(values['joint_states.expected_rate_hz']) == pytest.approx(1000.0, rel=1e-3)
