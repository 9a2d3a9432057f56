"""
Integration: a live fault run recorded by ``robot-twin record``, then replayed.

Real processes over localhost-only DDS: the recorder (started first), the twin in one process,
the plant with a friction jump on joint5 at 10 s and the demo controller (test/ros_harness.py's
loop). The recording must hold the robot's topics and the twin's outputs, and the report of
the live twin's first alarm in it must be the one the observer saw; replaying it with the live
twin's parameters must give the same report twice and raise the live twin's alarm on the
faulty joint, its exceedance beginning within a few detector blocks of the live twin's, with
a first alarm on a group the live twin alarmed too (see ``_disagreement``). That holds when the
replay starts where the live twin started. A recorder that discovered the robot later than the
twin (DDS discovery on a busy computer) records none of the samples the live twin commissioned
on first: the replay then commissions on a later stretch and may learn other thresholds, and
its report says so (``start``'s ``recording_late_s``); a disagreement of such a run is printed
with that explanation and is no failure (see ``_explained``).
"""
import os
from pathlib import Path
import signal
import subprocess
import sys
import time

import pytest
from robot_twin.replay import replay, report_json
from ros_harness import COMMISSIONING_S, loop_overrides, Observer, start_loop, \
    START_TIMEOUT_S, TwinGraph, unique_domain_id, wait_until
import yaml

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = 'friction_jump_joint5'
FAULT_JOINT = 'joint5'
BLOCK_S = 0.02
"""The detector's block (MonitorConfig.block_s)."""
ONSET_BLOCKS = 3
"""Tolerance on the alarm's onset, in blocks: the replay's receive times are the recorder's,
not the live twin's, so the stream checks (latency) see slightly different inputs."""
AFTER_ALARM_S = 2.0
EXTRA = {'twin_anomaly': {'calibration': False}}
"""The live twin fits its calibration in a worker thread; a fit that outlasts its stamp-time
window (a busy machine) takes over later than in the replay, which fits in line (README, Known
limitations). This test checks everything else of the replay against the live twin."""


def _replay_config(workdir):
    """config/demo.yaml with the test loop's overrides, as the live twin got them."""
    data = yaml.safe_load((ROOT / 'config' / 'demo.yaml').read_text())
    for node, values in loop_overrides(workdir, SCENARIO, EXTRA).items():
        params = data.setdefault(f'/**/{node}', {'ros__parameters': {}})['ros__parameters']
        for key, value in values.items():
            *parents, leaf = key.split('.')
            section = params
            for part in parents:
                section = section.setdefault(part, {})
            section[leaf] = value
    path = Path(workdir) / 'replay.yaml'
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _record(bag, domain, env):
    env = dict(env, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), env.get('PYTHONPATH'))
                                               if p))
    return subprocess.Popen([sys.executable, '-m', 'robot_twin', 'record', '--output', str(bag),
                             '--localhost', '--domain-id', str(domain)], env=env, cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _first_live_alarm(observer):
    for _wall, _name, level, _message, values in observer.monitor.anomalies():
        if level == 'ERROR':
            return values
    return None


def _live_run_and_replay(workdir):
    """Run the fault loop live while recording; check the recording; return the replay report."""
    domain = unique_domain_id()
    graph = TwinGraph(domain)
    observer = Observer(domain)
    bag = workdir / 'run'
    recorder = _record(bag, domain, graph.env)
    try:
        wait_until(lambda: 'twin_recorder' in observer.subscribing_nodes('/joint_states'),
                   START_TIMEOUT_S, 'the recorder to subscribe', graph)
        start_loop(graph, observer, workdir, SCENARIO, extra=EXTRA)
        live = wait_until(lambda: _first_live_alarm(observer), START_TIMEOUT_S + 30.0,
                          'the live twin to raise an alarm', graph)
        time.sleep(AFTER_ALARM_S)          # the recording goes on past the alarm
        graph.stop('robot')
        recorder.send_signal(signal.SIGINT)
        out = recorder.communicate(timeout=60)[0]
        assert recorder.returncode == 0, out
    finally:
        if recorder.poll() is None:
            recorder.kill()
            recorder.communicate()
        graph.stop()
        observer.close()
    assert '/twin/residuals' in out and '/joint_states' in out, out
    config = _replay_config(workdir)
    report = replay(bag, config=config)
    assert report_json(report) == report_json(replay(bag, config=config))
    # the live twin's first robot-level alarm, as recorded, is the one the observer saw
    recorded = report['live_twin']
    assert recorded is not None and recorded['first']['since'] == \
        pytest.approx(float(live['since']), abs=1e-6), (recorded, live)
    assert report['first_alarm'] is not None, report['final_state']
    return report


def _disagreement(report):
    """
    None if the replay raised the live twin's alarm on the faulty joint, else what differs.

    The faulty joint (FAULT_JOINT) is alarmed by both, its exceedance beginning within
    ONSET_BLOCKS detector blocks of each other, and the replay's first alarm is on a group the
    live twin alarmed too. A neighbour joint that the fault moves to near its threshold
    (joint7 beside joint5) may cross a few blocks earlier in one than in the other, so which
    of the two is listed first is not compared.
    """
    onset = ONSET_BLOCKS * BLOCK_S + 1e-6
    recorded = report['live_twin']
    live = {g['group']: g['since'] for g in recorded['groups']}
    replayed = {}
    for alarm in report['anomalies']:
        replayed.setdefault(alarm['group'], alarm['since'])
    first = report['first_alarm']
    if FAULT_JOINT in live and FAULT_JOINT in replayed \
            and abs(live[FAULT_JOINT] - replayed[FAULT_JOINT]) <= onset \
            and first['group'] in live:
        return None
    t0 = min(live.values())

    def listed(alarms):
        return [(a['group'], a['fault_type'], round(a['since'] - t0, 3)) for a in alarms]
    return (f'replay alarms {listed(report["anomalies"])}; live alarms '
            f'{listed(recorded["groups"])} (s after the live twin\'s first)')


LATE_S = 0.1
"""A recording that begins this much after the live twin's first residual, or more, lacks part
of the live twin's commissioning samples (a few ms late is one or two samples)."""
LATE_ONSET_S = 0.25
"""Tolerance on the faulty joint's onset for such a recording (replays of recordings 0.8-2.3 s
late put it up to 0.12 s from the live twin's)."""


def _explained(report):
    """
    Why the replay could not commission as the live twin did (str), or None when it could.

    The live twin commissions on the first robot samples it takes; a recording that begins
    LATE_S or more after them is replayed from its own first sample, and thresholds learned
    on another stretch of the motion put an exceedance a few blocks earlier or later, or a
    neighbour joint over its threshold (on a loaded machine, replays of recordings that began
    0.8 to 2.3 s late put joint5's exceedance up to 0.12 s from the live twin's or first
    alarmed a joint the live twin did not; those that started where the live twin did, at the
    same robot time). The replay must still raise the fault on the faulty joint, within
    LATE_ONSET_S of the live twin: a late recording explains a shift, not a missed fault.
    """
    late = report['start']['recording_late_s']
    if late is None or late < LATE_S:
        return None
    live = {g['group']: g['since'] for g in report['live_twin']['groups']}
    replayed = [a['since'] for a in report['anomalies'] if a['group'] == FAULT_JOINT]
    if FAULT_JOINT not in live or not replayed \
            or abs(replayed[0] - live[FAULT_JOINT]) > LATE_ONSET_S:
        return None
    return (f"the recording begins {late:.3f} s after the live twin's first residual: the "
            'live twin commissioned on robot samples the replay does not have')


def test_replay_of_a_live_fault_run_agrees_with_the_live_twin(tmp_path):
    """
    A recorded live fault run, replayed, raises the live twin's first alarm.

    A disagreement is printed and the live run made once more (a starved emulated robot may
    jerk the arm before the fault, an alarm the live twin and the replay, on the recorder's
    receive times, can date differently). It fails the test unless every attempt disagreed for
    a reason the replay's report gives (``_explained``: the recording begins after the live
    twin started, so the replay commissioned on other samples).
    """
    unexplained = []
    for attempt in (1, 2):
        report = _live_run_and_replay(tmp_path / f'attempt{attempt}')
        problem = _disagreement(report)
        if problem is None:
            break
        why = _explained(report)
        print(f'attempt {attempt}: {problem}' + (f'; explained: {why}' if why else ''))
        if why is None:
            unexplained.append(f'attempt {attempt}: {problem}')
    assert problem is None or not unexplained, unexplained
    assert report['settings']['commissioning_duration_s'] == COMMISSIONING_S


PAYLOAD_PUBLISHER = """
import rclpy
from geometry_msgs.msg import InertiaStamped
from robot_twin.nodes import qos
rclpy.init()
node = rclpy.create_node('payload_declarer')
pub = node.create_publisher(InertiaStamped, '/twin/payload', qos.LATCHED)
msg = InertiaStamped()
msg.inertia.m = 1.5
msg.inertia.com.z = 0.05
msg.inertia.ixx = msg.inertia.iyy = msg.inertia.izz = 0.0015
pub.publish(msg)
print('published', flush=True)
rclpy.spin(node)
"""


def test_the_recorder_records_the_payload_declared_before_it_started(tmp_path):
    """/twin/payload is latched: the declaration made before the recorder started is in the bag."""
    from robot_twin.replay import open_recording
    from robot_twin.ros_env import localhost_env
    domain = unique_domain_id()
    env = localhost_env(domain)
    env['PYTHONPATH'] = os.pathsep.join(p for p in (str(ROOT), env.get('PYTHONPATH')) if p)
    declarer = subprocess.Popen([sys.executable, '-c', PAYLOAD_PUBLISHER], env=env,
                                cwd=str(ROOT), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    bag = tmp_path / 'payload'
    try:
        assert declarer.stdout.readline().strip() == 'published'
        record = subprocess.run(
            [sys.executable, '-m', 'robot_twin', 'record', '--output', str(bag), '--duration',
             '8', '--localhost', '--domain-id', str(domain)], env=env, cwd=str(ROOT),
            capture_output=True, text=True, timeout=120)
    finally:
        declarer.kill()
        declarer.communicate()
    assert record.returncode == 0, record.stdout + record.stderr
    assert '/twin/payload: 1' in record.stdout, record.stdout
    reader, _note = open_recording(bag)
    try:
        conns = [c for c in reader.connections if c.topic == '/twin/payload']
        assert [c.msgtype for c in conns] == ['geometry_msgs/msg/InertiaStamped']
        msgs = [reader.deserialize(data, c.msgtype)
                for c, _t, data in reader.messages(connections=conns)]
    finally:
        reader.close()
    assert [m.inertia.m for m in msgs] == [1.5]
