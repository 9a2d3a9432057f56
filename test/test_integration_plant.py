"""
Integration: the plant's services (HIL and demo), called over DDS like a user would.

The plant alone (twin_sim in mode plant) with a scenario whose fault has an end
(``test/data/collision_short.yaml``: a push on the tool from 0.5 s to 0.8 s). /twin/set_fault
re-arms it counted from now, /twin/clear_fault removes every fault, /twin/reset restarts plant
time; /twin/plant_status (latched) tells what the plant holds. Every call must succeed and the
plant must keep running. A plant given a randomization simulates, and names, that variant.
"""
from contextlib import contextmanager
from pathlib import Path
import time

import pytest

from ros_harness import graph_and_observer, node_specs, START_TIMEOUT_S, wait_until

pytestmark = pytest.mark.integration

SCENARIO = str(Path(__file__).resolve().parent / 'data' / 'collision_short.yaml')
CALL_TIMEOUT_S = 30.0


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
