"""
A twin starved by its own computer is not a late robot: run-queue waits mark its samples.

The intake (twin_bridge/intake.py) takes, with each sample, how long the twin's input threads
waited for a CPU since the previous one (``waited``); the stream-latency check
(twin_anomaly/sensor_checks.py) leaves out the samples it marks ``queued``.
"""
import math

import numpy as np
import pytest

from twin_anomaly.sensor_checks import SensorChecks
from twin_bridge.intake import RobotIntake

NAMES = ['j1', 'j2']
DT_NS = 1_000_000                  # 1 kHz
BLOCK = 20                         # samples per block of the checks
TRANSPORT_S = 0.0005               # stamp to arrival


def stamp_of(k):
    """Stamp of sample ``k`` as ``(sec, nanosec)`` and in s."""
    sec, nanosec = divmod(k * DT_NS, 1_000_000_000)
    return (sec, nanosec), sec + nanosec * 1e-9


def take(intake, k, taken, waited=0.0):
    """Give the intake sample ``k``, taken (and received) at ``taken``; return the sample."""
    stamp, t = stamp_of(k)
    q = np.array([0.5 * math.sin(2.0 * t), 0.3 * math.sin(3.0 * t)])
    qd = np.array([math.cos(2.0 * t), 0.9 * math.cos(3.0 * t)])
    assert intake.joint_state(NAMES, q, qd, [0.0, 0.0], t, taken) is None
    return intake.sample(stamp, taken, waited)


@pytest.mark.parametrize('waited, starved', [(0.005, True), (1e-4, False)])
def test_a_sample_after_a_long_run_queue_wait_is_queued_and_counted(waited, starved):
    intake = RobotIntake(NAMES, stale_timeout_s=1.0)
    for k in range(1, 11):           # an idle twin: each sample taken as it comes
        _stamp, t = stamp_of(k)
        assert not take(intake, k, t + TRANSPORT_S, waited=2e-6).queued
    # sample 11 came on time, and the twin's thread waited for a CPU before taking it: 5 ms
    # is starvation, a tenth of a millisecond is not
    _stamp, t = stamp_of(11)
    assert take(intake, 11, t + TRANSPORT_S + waited, waited).queued is starved
    counters = intake.counters()
    assert counters['joint_states.starved'] == int(starved)
    assert counters['joint_states.samples'] == 11
    intake.reset(1.0)
    assert intake.counters()['joint_states.starved'] == 0


def test_a_late_robot_makes_no_run_queue_wait_and_stays_unqueued():
    intake = RobotIntake(NAMES, stale_timeout_s=1.0)
    for k in range(1, 40):
        _stamp, t = stamp_of(k)
        late = 0.02 if k >= 10 else 0.0     # the stream is 20 ms late from sample 10 on
        assert not take(intake, k, t + TRANSPORT_S + late).queued
    assert intake.counters()['joint_states.starved'] == 0


def feed(starved):
    """
    Run 0.6 s of a 1 kHz stream through the intake into the stream checks; return the blocks.

    From 0.1 s to 0.4 s every sample is taken 20 ms after its stamp. ``starved``: the stream
    is on time, but the twin's thread waited 20 ms for a CPU at 0.1 s and then, with just
    enough CPU, kept pace 20 ms behind (each sample taken 1 ms after the previous one,
    waiting 0.8 ms on the run queue before it), until it caught up at 0.4 s (samples taken
    0.1 ms apart). Not ``starved``: the robot's stream is 20 ms late (the twin waited for it,
    on no run queue).
    """
    intake, checks = RobotIntake(NAMES, stale_timeout_s=1.0), SensorChecks(2)
    blocks, taken = [], -math.inf
    for k in range(1, 601):
        _stamp, t = stamp_of(k)
        due = t + TRANSPORT_S + (0.02 if 100 <= k < 400 else 0.0)
        waited = 0.0
        if starved:
            waited = 0.02 if k == 100 else 0.0008 if 100 < k < 400 else 2e-6
            if k >= 400:             # the backlog, taken as fast as the twin can
                due = max(due, taken + 0.0001)
        taken = due
        sample = take(intake, k, taken, waited)
        checks.update(sample.t, sample.position, sample.velocity, sample.effort, taken,
                      queued=sample.queued)
        if k % BLOCK == 0:
            blocks.append(checks.take_block())
    return blocks, intake


def test_a_starved_twin_keeping_pace_behind_raises_no_stream_latency():
    blocks, intake = feed(starved=True)
    latencies = [b.latency_s for b in blocks if not math.isnan(b.latency_s)]
    assert max(latencies) == pytest.approx(TRANSPORT_S, abs=1e-6)
    # the samples behind the wait are marked too, not only the first
    assert intake.counters()['joint_states.starved'] > 300
    # the same receive times from a robot that is late: the latency check sees the delay
    blocks, intake = feed(starved=False)
    latencies = [b.latency_s for b in blocks[6:19]]          # 0.14 s to 0.38 s
    assert min(latencies) == pytest.approx(0.02 + TRANSPORT_S, abs=1e-6)
    assert intake.counters()['joint_states.starved'] == 0


class _Node:
    """What RobotInput uses of an rclpy node, without DDS."""

    class _Param:
        value = False                # use_sim_time

    def __init__(self):
        self.lines = []

    def get_clock(self):
        return None

    def get_parameter(self, _name):
        return self._Param()

    def create_subscription(self, *_args, **_kwargs):
        return None

    def get_logger(self):
        return self

    def warning(self, text):
        self.lines.append(text)


class _Waits:
    """Run-queue waits so far, ns, one per call (a RunQueueWait's ``waited_ns``)."""

    def __init__(self, totals):
        self.totals = iter(totals)

    def waited_ns(self, _now):
        return next(self.totals)


def test_the_node_hands_the_intake_the_wait_since_the_previous_sample():
    pytest.importorskip('rclpy')
    import time

    from rclpy.serialization import serialize_message
    from robot_twin.nodes.robot_input import RobotInput
    from sensor_msgs.msg import JointState
    from twin_sim.resources import builtin_urdf
    from twin_sim.urdf_model import RobotModel
    model = RobotModel.from_urdf(builtin_urdf())
    params = {'joint_states_topic': '/joint_states', 'wrench_topic': '', 'ft_sensor_link': '',
              'unknown_joints': 'reject', 'max_future_s': 0.1, 'position_margin_rad': 0.1,
              'position_margin_m': 0.01, 'velocity_factor': 1.5, 'effort_factor': 2.0,
              'wrench_force_range_n': 1000.0, 'wrench_torque_range_nm': 100.0}
    inp = RobotInput(_Node(), model, params)
    # totals at each message: the second message is refused (a NaN), so the third sample's
    # wait runs from the second sample on: 6 ms of it
    inp._run_queue = _Waits([1_000_000, 3_000_000, 5_000_000, 9_000_000])
    handed = []
    sample = inp.intake.sample
    inp.intake.sample = lambda stamp, taken, waited: handed.append(waited) or sample(
        stamp, taken, waited)
    start = round(time.time() - 0.05, 3)
    for k, q0 in enumerate((0.0, 0.0, math.nan, 0.0)):
        msg = JointState()
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(
            round((start + 0.001 * k) * 1e9), 1_000_000_000)
        msg.name, msg.position = list(model.joint_names), [q0] + [0.0] * (model.n - 1)
        inp.on_joint_state(serialize_message(msg))
    assert handed == pytest.approx([0.001, 0.002, 0.006])
