"""
Integration: node processes refuse bad start-up parameters (one line, exit 2), stop cleanly.

Each node runs as ``robot-twin up`` starts it (:func:`robot_twin.bringup.node_command`), on a
domain of its own, without a params file: the bad value comes from ``-p`` as a user would
type it. The processes run in parallel; each must exit by itself.
"""
import dataclasses
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pybullet_data
import pytest

from robot_twin.bringup import node_command
from robot_twin.graph import describe_graph, NodeSpec, ProcessSpec
from robot_twin.ros_env import localhost_env
from ros_harness import START_TIMEOUT_S, TwinGraph, unique_domain_id, wait_until

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parent / 'data'
MISSING_URDF = '/nonexistent/robot_twin_test/arm.urdf'
BAD_SCENARIO = str(DATA / 'scenario_unknown_joint.yaml')
# a URDF with quirks the model warns about (impossible inertias, <mimic> joints)
QUIRKY_URDF = str(Path(pybullet_data.getDataPath()) / 'xarm' / 'xarm6_with_gripper.urdf')

CASES = {
    # name: (executable, parameters, words the error line must contain)
    'bridge_negative_timeout': ('twin_bridge', {'stale_timeout_s': -1.0}, ['stale_timeout_s']),
    'bridge_wrong_type': ('twin_bridge', {'stale_timeout_s': 'soon'}, ['stale_timeout_s']),
    'sim_missing_urdf': ('twin_sim', {'urdf_path': MISSING_URDF}, [MISSING_URDF]),
    'plant_bad_scenario': ('twin_plant', {'scenario': BAD_SCENARIO}, [BAD_SCENARIO, 'joint9']),
    'anomaly_out_of_range': ('twin_anomaly', {'commissioning_duration_s': 0.0},
                             ['commissioning_duration_s']),
    'sim_bad_choice': ('twin_sim', {'unknown_joints': 'sideways'},
                       ['unknown_joints', 'sideways']),
    # (the robot's streams are subscribed to once every node is built: still one clear line)
    'bridge_bad_topic': ('twin_bridge', {'joint_states_topic': 'joint states!'},
                         ['Invalid topic name', 'joint states!']),
    # warned about first (test below), then refused
    'sim_quirky_urdf_missing_sensor': ('twin_sim', {'urdf_path': QUIRKY_URDF,
                                                    'ft_sensor_link': 'no_such_link'},
                                       ['no_such_link']),
}


@pytest.fixture(scope='module')
def exits():
    """Start every case at once; return ``{case: (returncode, output)}``."""
    procs = {}
    try:
        for case, (executable, params, _words) in CASES.items():
            spec = ProcessSpec('robot_twin', executable,
                               (NodeSpec(executable, executable, parameters=params),))
            procs[case] = subprocess.Popen(
                node_command(spec), env=localhost_env(unique_domain_id()),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True, start_new_session=True)
        results = {}
        for case, proc in procs.items():
            try:
                out, _ = proc.communicate(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                out = '(still running: it did not refuse the parameter)'
            results[case] = (proc.returncode, out)
        return results
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def test_warnings_while_building_are_one_line_each(exits):
    """A URDF's quirks read as log lines: no Python file:line and source line after each."""
    _code, out = exits['sim_quirky_urdf_missing_sensor']
    warned = [line for line in out.splitlines() if 'URDFWarning' in line]
    assert any('<mimic>' in line for line in warned), out
    assert all(line.startswith('[WARN] URDFWarning: ') for line in warned), out
    assert '.py:' not in out and 'RobotModel.from_urdf' not in out, out


@pytest.mark.parametrize('case', sorted(CASES))
def test_bad_start_up_parameter_exits_2_with_one_clear_line(exits, case):
    code, out = exits[case]
    assert code == 2, f'exit code {code}; output:\n{out}'
    assert 'Traceback' not in out, out
    errors = [line for line in out.splitlines() if line.startswith('[ERROR]')]
    assert len(errors) == 1, out
    for word in CASES[case][2]:
        assert word in errors[0], f'{word!r} not named in: {errors[0]}'


def test_spec_parameters_beat_the_config_file(tmp_path):
    """A NodeSpec override wins over config/demo.yaml, as graph.NodeSpec documents."""
    process = next(p for p in describe_graph('demo', one_process=False).processes
                   if p.nodes[0].name == 'twin_anomaly')
    spec = dataclasses.replace(process, nodes=(dataclasses.replace(process.nodes[0], parameters={
        'commissioning_duration_s': 3.5, 'thresholds_file': str(tmp_path / 't.yaml'),
        'rul.log_path': str(tmp_path / 'health.jsonl')}),))
    graph = TwinGraph(unique_domain_id())
    try:
        graph.start('anomaly', [spec])
        line = wait_until(lambda: next((x for x in graph.lines('twin_anomaly')
                                        if 'commissioning for' in x), None),
                          START_TIMEOUT_S, 'the commissioning log line', graph)
    finally:
        graph.stop()
    assert 'commissioning for 3.5 s' in line, line


SLOW_NODE = """
import sys, time
from rclpy.node import Node
from robot_twin.nodes.runner import run_nodes
from std_msgs.msg import Float64

class Slow(Node):
    def __init__(self):
        super().__init__('slow_publisher')
        self.pub = self.create_publisher(Float64, 'slow', 10)
        self.create_timer(0.1, self.tick)

    def tick(self):
        print('tick', flush=True)
        time.sleep(0.09)        # a long callback: a stop nearly always comes in the middle
        self.pub.publish(Float64(data=1.0))

sys.exit(run_nodes([lambda _nodes: Slow()]))
"""


@pytest.mark.parametrize('signum', [signal.SIGTERM, signal.SIGINT, signal.SIGTERM])
def test_a_stop_in_the_middle_of_a_callback_is_clean(signum):
    """
    SIGTERM / Ctrl-C while a timer callback runs: the callback ends, exit 0, no traceback.

    With rclpy's own signal handlers the context went invalid under the running callback, and
    its publish failed with a FATAL line and a traceback (also seen on 1 kHz nodes stopped on a
    loaded machine); the runner now ends the spin loop first and shuts down in order.
    """
    proc = subprocess.Popen([sys.executable, '-c', SLOW_NODE],
                            env=localhost_env(unique_domain_id()), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == 'tick'       # spinning, inside a callback
        time.sleep(0.3)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=START_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    for word in ('Traceback', 'FATAL', 'Exception', 'context is invalid'):
        assert word not in out, out


def test_a_node_stops_when_the_process_that_started_it_is_killed():
    """
    ``robot-twin up`` killed with SIGKILL cannot stop its nodes: each stops on its own.

    The nodes get up's pid in ROBOT_TWIN_PARENT_PID and their spin loop checks their parent;
    here a plain parent process stands in for up (same variable), and is killed.
    """
    parent_code = (
        'import os, subprocess, sys, time\n'
        'env = dict(os.environ, ROBOT_TWIN_PARENT_PID=str(os.getpid()))\n'
        f'child = subprocess.Popen([sys.executable, "-c", {SLOW_NODE!r}], env=env,\n'
        '                         start_new_session=True)\n'
        'print(child.pid, flush=True)\n'
        'time.sleep(600)\n')
    parent = subprocess.Popen([sys.executable, '-c', parent_code],
                              env=localhost_env(unique_domain_id()), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              start_new_session=True)
    node_pid = None
    try:
        node_pid = int(parent.stdout.readline())
        assert parent.stdout.readline().strip() == 'tick'          # the node spins
        parent.kill()
        parent.wait()

        def node_gone():
            try:
                with open(f'/proc/{node_pid}/stat') as f:
                    return f.read().rsplit(')', 1)[1].split()[0] == 'Z'
            except FileNotFoundError:
                return True
        wait_until(node_gone, START_TIMEOUT_S, 'the orphaned node to stop')
        rest = parent.stdout.read()
        assert 'is gone: stopping' in rest and 'Traceback' not in rest, rest
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if node_pid is not None:
            try:
                os.kill(node_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
