"""
Integration: the plant's services (HIL and demo), called over DDS like a user would.

The plant alone (twin_sim in mode plant) with a scenario whose fault has an end
(``test/data/collision_short.yaml``: a push on the tool from 0.5 s to 0.8 s). /twin/set_fault
re-arms it counted from now, /twin/clear_fault removes every fault, /twin/reset restarts plant
time; /twin/plant_status (latched) tells what the plant holds. Every call must succeed and the
plant must keep running. A plant given a randomization simulates, and names, that variant.
A plant stepping at 1 kHz and publishing at 100 Hz sends, in real time, what the 1 kHz plant
sends at the same plant times, bit for bit, and in lock-step one sample per 100 Hz command;
a publish rate that does not divide the step rate stops it with the reason.
"""
from contextlib import contextmanager
from pathlib import Path
import time

import pytest

from ros_harness import graph_and_observer, node_specs, stamp_ns, START_TIMEOUT_S, wait_until
from test_integration_hil import _read_line, _start, _stop

pytestmark = pytest.mark.integration

SCENARIO = str(Path(__file__).resolve().parent / 'data' / 'collision_short.yaml')
CALL_TIMEOUT_S = 30.0
STREAMS = ('/joint_states', '/ft_sensor/wrench', '/clock')
# seeded effort noise throughout, a push on the tool, and lost samples (as one each step draws)
DECIMATION_SCENARIO = """\
name: decimation
description: Seeded noise, then a push and lost samples after 5 s of plant time.
faults:
  - {type: sensor_noise, signal: effort, joint: joint1, start_s: 0.0, ramp_s: 0.0, size: 0.5}
  - {type: collision_force, start_s: 5.0, end_s: 5.3, ramp_s: 0.0, size: 20.0,
     direction: [1.0, 0.0, 0.0]}
  - {type: dropout, signal: all, start_s: 5.5, end_s: 5.7, ramp_s: 0.0, size: 0.3}
"""


@contextmanager
def _plant_graph(params):
    """Start the plant alone with ``params`` and an observer on a domain of its own."""
    with graph_and_observer() as (graph, observer):
        graph.start('robot', node_specs(['plant'], {'plant': params}))
        yield graph, observer


@pytest.fixture
def plant():
    with _plant_graph({'scenario': SCENARIO}) as started:
        yield started


def _call(observer, graph, service):
    from std_srvs.srv import Trigger
    client = observer.node.create_client(Trigger, service)
    try:
        wait_until(client.service_is_ready, START_TIMEOUT_S, f'{service} to be offered', graph)
        future = client.call_async(Trigger.Request())
        wait_until(future.done, CALL_TIMEOUT_S, f'the answer of {service}', graph)
        return future.result()
    finally:
        observer.node.destroy_client(client)


def _plant_status(monitor, since, **match):
    """Latest /twin/plant_status values received after ``since`` matching ``match``."""
    for stamp, values in reversed(list(monitor.plant_history)):
        if stamp > since and all(values.get(k) == v for k, v in match.items()):
            return values
    return None


def test_plant_services_rearm_clear_and_reset_faults(plant):
    graph, observer = plant
    m = observer.monitor
    # past the scenario's fault (its end at 0.8 s is behind plant time now)
    wait_until(lambda: m.plant_history and float(m.plant_history[-1][1]['plant_time_s']) >= 1.0,
               START_TIMEOUT_S, 'plant time 1 s', graph)
    assert _plant_status(m, 0.0)['faults'] == '1'

    since = time.time()
    answer = _call(observer, graph, '/twin/set_fault')
    assert answer.success, answer.message
    assert SCENARIO in answer.message
    wait_until(lambda: _plant_status(m, since, faults='2'), CALL_TIMEOUT_S,
               '/twin/plant_status with the re-armed fault', graph)

    since = time.time()
    answer = _call(observer, graph, '/twin/clear_fault')
    assert answer.success, answer.message
    wait_until(lambda: _plant_status(m, since, faults='0'), CALL_TIMEOUT_S,
               '/twin/plant_status without faults', graph)

    since = time.time()
    answer = _call(observer, graph, '/twin/reset')
    assert answer.success, answer.message
    status = wait_until(lambda: _plant_status(m, since), CALL_TIMEOUT_S,
                        '/twin/plant_status after the reset', graph)
    assert float(status['plant_time_s']) < 1.0, status

    graph.check_alive()
    assert not [x for x in graph.lines('plant') if 'Traceback' in x], graph.output()


def test_plant_simulates_the_randomized_variant_it_is_given():
    params = {'randomization': 'default', 'randomization_index': 3, 'seed': 4}
    with _plant_graph(params) as (graph, observer):
        status = wait_until(lambda: _plant_status(observer.monitor, 0.0), START_TIMEOUT_S,
                            '/twin/plant_status', graph)
        assert status['variant'].startswith('3 of seed 4: mass x'), status
        graph.check_alive()
        assert any('simulating variant 3 of seed 4 of default' in x
                   for x in graph.lines('plant')), graph.output()


def test_plant_rejects_nan_velocities_and_counts_clipped_commands_and_over_speed():
    import math
    from builtin_interfaces.msg import Duration
    from robot_twin.nodes import qos
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint
    names = [f'joint{i}' for i in range(1, 8)]
    with _plant_graph({'scenario': '', 'publish_rate_hz': 500.0}) as (graph, observer):
        m = observer.monitor
        wait_until(lambda: _plant_status(m, 0.0), START_TIMEOUT_S, '/twin/plant_status', graph)
        # README: commands with NaN are rejected and counted (NaN velocities were taken as 0)
        trajectory = observer.publisher(JointTrajectory,
                                        '/joint_trajectory_controller/joint_trajectory',
                                        qos.COMMAND, ['plant'], graph=graph)
        trajectory.publish(JointTrajectory(joint_names=names, points=[JointTrajectoryPoint(
            positions=[0.1] * 7, velocities=[math.nan] * 7, time_from_start=Duration(sec=1))]))
        since = time.time()
        wait_until(lambda: _plant_status(m, since, rejected_commands='1'), CALL_TIMEOUT_S,
                   'the NaN trajectory counted as rejected', graph)
        command = observer.publisher(JointState, '/joint_command', qos.COMMAND, ['plant'],
                                     graph=graph)
        # every field is checked, also the effort beside a position (it was applied)
        command.publish(JointState(name=names, position=[0.0] * 7, effort=[1.0] * 3))
        command.publish(JointState(name=names, position=[0.0] * 7, effort=[math.nan] * 7))
        # a trajectory lower -> upper in 10 ms needs ~100x the velocity limits: rejected
        lower = [-2.9671, -2.0944, -2.9671, -2.0944, -2.9671, -2.0944, -3.0543]
        trajectory.publish(JointTrajectory(joint_names=names, points=[
            JointTrajectoryPoint(positions=[v + 0.05 for v in lower],
                                 time_from_start=Duration(nanosec=10_000_000)),
            JointTrajectoryPoint(positions=[-v - 0.05 for v in lower],
                                 time_from_start=Duration(nanosec=20_000_000))]))
        wait_until(lambda: _plant_status(m, since, rejected_commands='4',
                                         rejected_trajectories='1'), CALL_TIMEOUT_S,
                   'bad efforts and the infeasible trajectory counted as rejected', graph)
        wait_until(lambda: any('rejected_trajectories: 1 more' in x and 'velocity limit' in x
                               for x in graph.lines('plant')),
                   CALL_TIMEOUT_S, 'the rejected-trajectory warning', graph)
        # an effort of 1e6 N·m: clipped (counted), and the arm stops at its speed limits
        command.publish(JointState(name=names, effort=[1e6] * 7))
        status = wait_until(
            lambda: (lambda s: s if s and s['clipped_commands'] == '1'
                     and int(s['over_speed']) >= 1 else None)(_plant_status(m, since)),
            CALL_TIMEOUT_S, 'clipped_commands 1 and over_speed in /twin/plant_status', graph)
        assert status['rejected_commands'] == '4', status
        lines = graph.lines('plant')
        assert any('clipped_commands: 1 more' in x and 'effort 1e+06 for joint1' in x
                   for x in lines), graph.output()
        wait_until(lambda: any('over_speed:' in x for x in graph.lines('plant')),
                   CALL_TIMEOUT_S, 'the over-speed warning', graph)
        graph.check_alive()


def _keep_streams(observer):
    """Keep every message of the plant's STREAMS (reliable, deep queue); return the lists."""
    from geometry_msgs.msg import WrenchStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import JointState
    profile = QoSProfile(depth=10000, reliability=ReliabilityPolicy.RELIABLE)
    seen = {topic: [] for topic in STREAMS}
    subscriptions = [observer.node.create_subscription(kind, topic, seen[topic].append, profile)
                     for kind, topic in zip((JointState, WrenchStamped, Clock), STREAMS)]
    return seen, subscriptions


def _realtime_run(scenario, step_rate_hz, publish_rate_hz, until_s=6.0):
    """
    Run a real-time plant without commands until plant time ``until_s``.

    Returns ``{plant step (1 ms): (position, velocity, effort, wrench)}`` of the samples seen,
    the plant steps of the /clock messages seen and the last /twin/plant_status. A real-time
    plant does not wait for its readers: its first samples (up to 2 s seen) go before discovery
    has matched, hence the scenario's late faults.
    """
    params = {'scenario': scenario, 'seed': 7, 'step_rate_hz': step_rate_hz,
              'publish_rate_hz': publish_rate_hz}
    with graph_and_observer() as (graph, observer):
        seen, _subscriptions = _keep_streams(observer)
        graph.start('robot', node_specs(['plant'], {'plant': params}))
        m = observer.monitor
        # the running loop's status names the stamp of plant time 0 (start_stamp)
        wait_until(lambda: m.plant_history and seen['/joint_states'], START_TIMEOUT_S,
                   'the first sample', graph)
        start_ns = round(float(m.plant_history[-1][1]['start_stamp']) * 1e9)
        wait_until(lambda: stamp_ns(seen['/joint_states'][-1].header.stamp) - start_ns
                   >= until_s * 1e9, START_TIMEOUT_S, f'plant time {until_s} s', graph)
        status = m.plant_history[-1][1]
        assert round(float(status['start_stamp']) * 1e9) == start_ns, 'a second epoch'
        graph.check_alive()

    def step(msg):            # the plant's step (1 ms) of a stamp (start_stamp has µs)
        return round((stamp_ns(msg.header.stamp) - start_ns) / 1e6)
    wrenches = {step(w): (w.wrench.force.x, w.wrench.force.y, w.wrench.force.z,
                          w.wrench.torque.x, w.wrench.torque.y, w.wrench.torque.z)
                for w in seen['/ft_sensor/wrench']}
    samples = {step(j): (tuple(j.position), tuple(j.velocity), tuple(j.effort),
                         wrenches.get(step(j))) for j in seen['/joint_states']}
    clocks = [round((stamp_ns(c.clock) - start_ns) / 1e6) for c in seen['/clock']]
    return samples, clocks, status


def test_a_100hz_plant_stepping_at_1khz_sends_the_1khz_plants_samples(tmp_path):
    scenario = tmp_path / 'decimation.yaml'
    scenario.write_text(DECIMATION_SCENARIO)
    full, full_clocks, _ = _realtime_run(str(scenario), 1000.0, 1000.0)
    tenth, clocks, status = _realtime_run(str(scenario), 1000.0, 100.0)
    assert float(status['rate_hz']) == 1000.0, status
    assert float(status['publish_rate_hz']) == 100.0, status
    # samples and /clock every 10th step: 10 ms apart (a gap only where the dropout lost one)
    assert tenth and all(step % 10 == 0 for step in tenth), sorted(tenth)
    assert clocks and all(step % 10 == 0 for step in clocks)
    assert any(step % 10 for step in full) and any(step % 10 for step in full_clocks)
    # each is the 1 kHz plant's sample of that step, bit for bit (the same physics and noise)
    common = sorted(set(tenth) & set(full))
    assert len(common) >= 20 and any(5000 < step < 5300 for step in common), common
    for step in common:
        assert tenth[step] == full[step], step
    lost = [step for step in range(5510, 5700, 10) if step not in tenth]
    # the same samples lost (a step missing here but seen in the 1 kHz run would be one this
    # test's observer missed, best-effort, or one the decimated plant dropped on its own)
    assert lost and [step for step in lost if step in full] == [], \
        (lost, [step for step in range(5500, 5710) if step not in full])


def test_a_lockstep_plant_stepping_at_1khz_answers_a_100hz_controller(tmp_path):
    scenario = tmp_path / 'decimation.yaml'
    scenario.write_text(DECIMATION_SCENARIO)
    params = {'step_mode': 'lockstep', 'step_rate_hz': 1000.0, 'publish_rate_hz': 100.0,
              'lockstep_timeout_s': 3600.0, 'scenario': str(scenario), 'seed': 7}
    with _plant_graph(params) as (graph, observer):
        seen, subscriptions = _keep_streams(observer)
        wait_until(lambda: all(s.get_publisher_count() for s in subscriptions), START_TIMEOUT_S,
                   'the plant to offer its streams', graph)
        controller = _start(['test/hil_controller.py', '--duration', '0.5', '--rate-hz', '100',
                             '--wait-subscribers', '1'], graph.env)
        try:
            _, last, sent = _read_line(controller, 'DONE', START_TIMEOUT_S * 2, graph).split()
            wait_until(lambda: seen['/joint_states'] and stamp_ns(
                seen['/joint_states'][-1].header.stamp) == int(last), START_TIMEOUT_S,
                'the last sample', graph)
            status = wait_until(lambda: _plant_status(observer.monitor, 0.0, commands=sent),
                                START_TIMEOUT_S, 'the plant status after the last command',
                                graph)
        finally:
            _stop(controller)
    stamps = [stamp_ns(msg.header.stamp) for msg in seen['/joint_states']]
    # one sample per command, 10 ms (10 steps) on; /clock once per sample period, with it
    assert stamps == [10_000_000 * k for k in range(1, len(stamps) + 1)], stamps[:5]
    assert len(stamps) == int(sent) + 1 >= 50
    assert [stamp_ns(c.clock) for c in seen['/clock']] == stamps
    assert [stamp_ns(w.header.stamp) for w in seen['/ft_sensor/wrench']] == stamps
    assert int(status['steps']) == 10 * len(stamps)
    assert status['stale_commands'] == '0' and status['resends'] == '0', status


def test_a_publish_rate_that_does_not_divide_the_step_rate_stops_the_plant():
    params = {'scenario': '', 'step_rate_hz': 1000.0, 'publish_rate_hz': 300.0}
    with _plant_graph(params) as (graph, _observer):
        name, code = wait_until(graph.exited, START_TIMEOUT_S, 'the plant to refuse its rates')
        assert (name, code) == ('plant', 2)
        assert any('publish_rate_hz 300 does not divide step_rate_hz 1000' in line
                   and '333.3333333 (k = 3) or 250 (k = 4)' in line
                   for line in graph.lines('plant')), graph.output()
