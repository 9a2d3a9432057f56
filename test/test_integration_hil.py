"""
Integration: the HIL plant in lock-step with a controller in another process, recorded twice.

Real processes over localhost-only DDS: the plant (``step_mode: lockstep``, a fault scenario
with seeded sensor noise, a push and dropped samples), ``robot-twin record`` and a lock-step
controller (``test/hil_controller.py``: one /joint_command per sample). Two runs of the same
scenario must give byte-identical recordings of /joint_states, the wrench, /clock and the
commands, also with 10 plant steps per command (one sample per command, none stale). In
real-time mode the plant reports its timing in /twin/plant_status, and the controller's
``--duration`` counts from its first sample (a real-time plant's stamps are wall-clock).
"""
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest

from ros_harness import node_specs, Observer, START_TIMEOUT_S, TwinGraph, unique_domain_id, \
    wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]

SCENARIO = 'hil_lockstep.yaml'
DURATION_S = 2.0
RATE_HZ = 1000.0
TOPICS = ('/joint_states', '/ft_sensor/wrench', '/clock', '/joint_command')


def _start(argv, env):
    """Start a Python helper process of the test (from the repository root)."""
    env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get('PYTHONPATH'))
                                               if p))
    return subprocess.Popen([sys.executable, *argv], env=env, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _read_line(proc, prefix, timeout_s, graph):
    """Wait for an output line of ``proc`` starting with ``prefix``; return it."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = []

    def line():
        if sel.select(timeout=0.05):
            text = proc.stdout.readline()
            if not text and proc.poll() is not None:
                raise AssertionError(f'{proc.args[1]} exited with code {proc.returncode}:\n'
                                     + ''.join(seen[-20:]))
            seen.append(text)
            return text if text.startswith(prefix) else None
        return None
    try:
        return wait_until(line, timeout_s, f'{prefix!r} from {proc.args[1]}', graph,
                          seen=lambda: ''.join(seen[-20:]))
    finally:
        sel.close()


def _stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.communicate()[0]


def bag_messages(path):
    """Return ``{topic: [raw CDR bytes, ...]}`` of a rosbag2 recording, in log order."""
    from rosbags.rosbag2 import Reader
    out = {}
    with Reader(path) as reader:
        for connection, _t, data in reader.messages():
            out.setdefault(connection.topic, []).append(bytes(data))
    return out


def run_lockstep(workdir, name, data_dir, steps_per_command=1, scenario=SCENARIO,
                 timeout_s=3600.0):
    """Run a lock-step scenario once, recorded; return the bag's messages and the status."""
    domain = unique_domain_id()
    graph = TwinGraph(domain)
    observer = Observer(domain)
    bag = workdir / name
    procs = []
    try:
        graph.start('robot', node_specs(['plant'], {'plant': {
            'step_mode': 'lockstep', 'publish_rate_hz': RATE_HZ, 'lockstep_timeout_s': timeout_s,
            'scenario': str(data_dir / scenario), 'seed': 7,
            'lockstep_steps_per_command': steps_per_command}}))
        wait_until(lambda: observer.node.get_publishers_info_by_topic('/clock'),
                   START_TIMEOUT_S, 'the plant to offer /clock', graph)
        args = ['-m', 'robot_twin', 'record', '--output', str(bag), '--only',
                '--localhost', '--domain-id', str(domain)]
        for topic in TOPICS:
            args += ['--topic', topic]
        recorder = _start(args, graph.env)
        procs.append(recorder)
        wait_until(lambda: {'twin_recorder'} <= observer.subscribing_nodes('/clock')
                   and {'twin_recorder'} <= observer.subscribing_nodes('/ft_sensor/wrench')
                   and {'twin_recorder'} <= observer.subscribing_nodes('/joint_states'),
                   START_TIMEOUT_S, 'the recorder to subscribe to the plant', graph)
        controller = _start(['test/hil_controller.py', '--duration', str(DURATION_S),
                             '--rate-hz', str(RATE_HZ / steps_per_command),
                             '--wait-subscribers', '2'], graph.env)
        procs.append(controller)
        _, last, sent = _read_line(controller, 'DONE', START_TIMEOUT_S * 2, graph).split()
        # the last sample (the one the controller saw last) is on its way to the recorder
        wait_until(lambda: int(last) in observer.monitor.robot_stamps, START_TIMEOUT_S,
                   'the last sample', graph)
        time.sleep(0.5)            # let the recorder take what DDS has delivered
        out = _stop(recorder)
        assert recorder.returncode == 0, out

        def final_status():   # the plant has taken every command (the timer publishes it)
            for _t, values in reversed(list(observer.monitor.plant_history)):
                if values.get('mode') == 'lockstep' and values['commands'] == sent:
                    return values
            return None
        status = wait_until(final_status, START_TIMEOUT_S, 'the final plant status', graph)
        assert status['stale_commands'] == '0', status
        return bag_messages(bag), status
    finally:
        for proc in procs:
            _stop(proc)
        graph.stop()
        observer.close()


def test_lockstep_runs_are_bit_identical(tmp_path, request):
    data_dir = request.path.parent / 'data'
    first, status = run_lockstep(tmp_path, 'first', data_dir)
    second, _ = run_lockstep(tmp_path, 'second', data_dir)
    assert status['resends'] == '0', status
    steps = int(round(DURATION_S * RATE_HZ))
    assert set(first) == set(TOPICS)
    # every step published /clock; the dropout lost some samples, never a command's answer
    assert len(first['/clock']) >= steps
    assert 0.85 * steps < len(first['/joint_states']) < steps
    assert len(first['/joint_command']) == len(first['/joint_states']) - 1
    for topic in TOPICS:
        assert len(first[topic]) == len(second[topic]), topic
        differing = [k for k, (a, b) in enumerate(zip(first[topic], second[topic])) if a != b]
        assert not differing, f'{topic}: {len(differing)} messages differ, first {differing[0]}'


def _stamp_ns(cdr):
    """Header stamp (ns) of a serialized JointState."""
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import JointState
    stamp = deserialize_message(cdr, JointState).header.stamp
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def test_lockstep_with_10_steps_per_command_sends_one_sample_per_command(tmp_path, request):
    # README: "a 100 Hz controller on a 1 kHz plant"; the plant used to publish all 10 samples,
    # the controller answered each, and the backlog made the run free-running and lossy
    data_dir = request.path.parent / 'data'
    first, status = run_lockstep(tmp_path, 'first', data_dir, steps_per_command=10)
    assert status['resends'] == '0', status
    assert status['steps_per_sample'] == '10', status     # what hil-report says it published
    second, _ = run_lockstep(tmp_path, 'second', data_dir, steps_per_command=10)
    samples = first['/joint_states']
    assert len(first['/joint_command']) == len(samples) - 1
    stamps = [_stamp_ns(m) for m in samples]
    gaps = {b - a for a, b in zip(stamps, stamps[1:])}
    # 10 steps per command; a sample the dropout lost makes the plant step on to the next
    assert min(gaps) == 10_000_000 and all(g % 1_000_000 == 0 for g in gaps), sorted(gaps)
    assert 0.85 * DURATION_S * RATE_HZ / 10 < len(samples) <= DURATION_S * RATE_HZ / 10 + 1
    assert int(status['steps']) >= 10 * int(status['commands'])
    assert len(first['/clock']) >= int(status['steps'])    # /clock of every step
    for topic in TOPICS:
        assert first[topic] == second[topic], topic


def test_an_outage_longer_than_the_catch_up_does_not_stall_lock_step(tmp_path, request):
    # every sample lost from 0.3 s to 1.6 s: after 1 s of stepping on, the plant had nothing to
    # send and waited for an answer to a sample already answered; the run stalled
    bag, status = run_lockstep(tmp_path, 'outage', request.path.parent / 'data',
                               scenario='hil_lockstep_outage.yaml', timeout_s=0.2)
    stamps = [_stamp_ns(m) for m in bag['/joint_states']]
    assert max(stamps) - min(stamps) >= int(1.9e9)          # the run went on to its end
    lost = [s for s in stamps if 0.31e9 < s < 1.59e9]      # plant time from 0
    assert not lost and int(status['resends']) >= 1


def test_controller_duration_counts_from_its_first_sample_on_a_realtime_plant():
    domain = unique_domain_id()
    graph = TwinGraph(domain)
    observer = Observer(domain)
    controller = None
    try:
        graph.start('robot', node_specs(['plant'], {'plant': {'publish_rate_hz': 200.0,
                                                              'scenario': ''}}))
        wait_until(lambda: observer.node.get_publishers_info_by_topic('/joint_states'),
                   START_TIMEOUT_S, 'the plant to offer /joint_states', graph)
        controller = _start(['test/hil_controller.py', '--duration', '1.0', '--rate-hz', '200',
                             '--wait-subscribers', '1'], graph.env)
        _, _last, sent = _read_line(controller, 'DONE', START_TIMEOUT_S * 2, graph).split()
        # stamps are wall-clock: measured from the epoch the run would end at once
        assert int(sent) >= 100, sent
    finally:
        if controller is not None:
            _stop(controller)
        graph.stop()
        observer.close()


def test_realtime_plant_reports_deadlines_and_jitter():
    domain = unique_domain_id()
    graph = TwinGraph(domain)
    observer = Observer(domain)
    try:
        graph.start('robot', node_specs(['plant'], {'plant': {'publish_rate_hz': 200.0,
                                                              'scenario': ''}}))
        m = observer.monitor

        def timing():
            for _t, values in reversed(list(m.plant_history)):
                if values.get('mode') == 'realtime' and int(values.get('steps', 0)) >= 400:
                    return values
            return None
        values = wait_until(timing, START_TIMEOUT_S, 'plant_status with 400 steps', graph)
        counts = [int(c) for c in values['jitter_hist_counts'].split(',')]
        edges = [int(e) for e in values['jitter_hist_edges_us'].split(',')]
        assert len(counts) == len(edges) and sum(counts) == int(values['steps'])
        misses = int(values['deadline_misses'])
        assert 0 <= misses <= int(values['steps'])
        assert float(values['miss_fraction']) == pytest.approx(misses / int(values['steps']),
                                                               abs=1e-5)
        assert 0.0 <= float(values['jitter_p50_us']) <= float(values['jitter_p99_us']) \
            <= float(values['jitter_max_us'])
    finally:
        graph.stop()
        observer.close()
