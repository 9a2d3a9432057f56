"""
Integration: the whole twin loop on the healthy emulated robot, over real DDS.

One graph for the module: twin_bridge (corrective actions enabled), twin_sim (mirror) and
twin_anomaly, then the plant (scenario ``nominal``) and the demo controller, each a process of
its own on a private localhost-only domain (see ros_harness). The tests check what the twin
reports, never how fast: a nominal run raises no anomaly and sends no corrective command, the
residuals carry the robot's stamps, /twin/status says the twin is in sync; and once the robot
stops, /twin/status says STALE. The last test stops the robot, so it stays last in the file.
"""
import time
from types import SimpleNamespace

import pytest
from robot_twin.demo import echo_of, robot_transients
from ros_harness import graph_and_observer, model_limits, start_loop, wait_commissioned, \
    wait_until, watch

pytestmark = pytest.mark.integration

WATCH_S = 6.0
"""How long the monitored nominal run is watched after commissioning, s."""
STATUS_TIMEOUT_S = 30.0
"""Bound on a /twin/status or /twin/anomaly change that should follow within a second."""


@pytest.fixture(scope='module')
def loop(tmp_path_factory):
    workdir = tmp_path_factory.mktemp('nominal_loop')
    with graph_and_observer() as (graph, observer):
        start_loop(graph, observer, workdir, 'nominal', extra={
            'twin_bridge': {'corrective_actions.enabled': True,
                            'corrective_actions.interface': 'trajectory'}})
        yield SimpleNamespace(graph=graph, observer=observer, monitor=observer.monitor,
                              workdir=workdir)


def _sync_ok(monitor, since):
    return next((s for s in monitor.statuses(since) if s[1] == 'OK'), None)


def _seen_status(monitor):
    reports = monitor.statuses()
    if not reports:
        return 'no /twin/status at all'
    levels = [r[1] for r in reports]
    return (f'{len(reports)} reports, levels {sorted(set(levels))}, last: {reports[-1][1]} '
            f'{reports[-1][2]!r} {reports[-1][3]}')


def test_nominal_run_raises_no_anomaly(loop):
    """After commissioning, a healthy robot gives OK/WARN only; residuals and status flow."""
    m = loop.monitor
    assert 'robot' not in loop.graph.stopped, 'this test needs the robot running'
    commissioned = wait_commissioned(loop.graph, loop.observer)
    start = time.time()
    first_residual = len(m.residual_stamps)

    def nothing_alarmed():
        # an alarm right after a transient of the emulated robot itself (starved of CPU, it
        # dropped or delayed samples, or jerked beyond its limits) is the twin reporting what
        # happened, as the demo names it; any other alarm is a false one
        errors = [h for h in m.anomalies(name=None) if h[2] == 'ERROR']
        false = [h for h in errors if echo_of(
            m.scenario_time(float(h[4].get('since') or 'nan')),
            robot_transients(m.obs, m.scenario_time)) is None]
        assert not false, f'anomaly on a healthy robot: {false[0]}'
        if errors and not echoed:
            echoed.append(errors[0])
            print(f'an alarm echoed a transient of the emulated robot: {errors[0]}')

    echoed = []

    watch(WATCH_S, nothing_alarmed, loop.graph)

    robot = m.anomalies(since=commissioned)
    assert len(robot) >= 10, f'twin_anomaly published only {len(robot)} reports in {WATCH_S} s'
    assert all(r[4]['phase'] == 'monitoring' for r in m.anomalies(since=start))
    joints = {h[1] for h in m.anomalies(name=None, since=start)}
    assert {f'twin/anomaly/{j}' for j in model_limits().names} <= joints

    # residuals: one per robot sample, in model order, stamped with the robot's stamp
    stamps = m.residual_stamps[first_residual:]
    assert len(stamps) >= 100, f'only {len(stamps)} residuals in {WATCH_S} s'
    assert m.residual_names == list(model_limits().names)
    matched = sum(s in m.robot_stamps for s in stamps)
    assert matched >= 0.5 * len(stamps), (
        f'{matched} of {len(stamps)} residual stamps are stamps of /joint_states samples')

    # the bridge is in sync, counts no invalid sample and (healthy robot) sends no command
    report = wait_until(lambda: _sync_ok(m, start), STATUS_TIMEOUT_S, '/twin/status OK',
                        loop.graph, seen=lambda: _seen_status(m))
    _, level, message, values = report
    assert message == 'in sync'
    assert int(values['joint_states.accepted']) > 0 and int(values['wrench.accepted']) > 0
    assert values['joint_states.rejected'] == '0' and values['wrench.rejected'] == '0'
    assert values['missing_joints'] == ''
    last = m.statuses(start)[-1][3]
    assert last['commands_sent'] == '0' and last['governor.allowed'] == '0'
    # the tests' robot streams at 100 Hz: its gaps leave room for whole reports, which run
    # when their timers fire (beside a 1 kHz robot they run in pieces after the samples:
    # robot_twin/nodes/idle_work.py, test_integration_demo.py)
    assert last['reports.pieces_after_samples'] == '0' and int(last['reports.run_whole']) > 0
    assert not m.trajectories, 'a corrective command was sent to a healthy robot'


def test_a_payload_the_arm_cannot_carry_is_refused_and_counted(loop):
    """
    /twin/payload over DDS: a 100 t "payload" (a unit mistake) is refused and counted.

    /twin/status counts it, and the twin goes on predicting without it. (A valid one is
    tested in process; here the robot really carries nothing.)
    """
    from geometry_msgs.msg import InertiaStamped
    from robot_twin.nodes import qos
    m = loop.monitor
    pub = loop.observer.publisher(InertiaStamped, '/twin/payload', qos.LATCHED,
                                  subscribers=['twin_anomaly'], graph=loop.graph)
    msg = InertiaStamped()
    msg.inertia.m = 1e5
    start = time.time()
    pub.publish(msg)
    report = wait_until(
        lambda: next((s for s in m.statuses(start) if s[3].get('payload.refused') == '1'),
                     None), STATUS_TIMEOUT_S, '/twin/status counting the refused payload',
        loop.graph, seen=lambda: _seen_status(m))
    assert report[3]['payload_kg'] == '0'


def test_stopped_robot_stream_is_reported_stale(loop):
    """Stopping the robot makes /twin/status STALE, naming the stream; the twin keeps running."""
    m = loop.monitor
    wait_until(lambda: _sync_ok(m, time.time() - 0.5), STATUS_TIMEOUT_S,
               '/twin/status OK before the robot stops', loop.graph,
               seen=lambda: _seen_status(m))
    before = m.statuses(time.time() - 0.5)[-1][3]
    stopped = time.time()
    killed = loop.graph.stop('robot')
    assert not killed, f'{killed} did not exit on SIGINT'
    assert all(code == 0 for name, code in loop.graph.returncodes().items()
               if name in ('plant', 'demo_controller')), loop.graph.returncodes()
    for name in ('plant', 'demo_controller'):
        assert not [x for x in loop.graph.lines(name) if 'Traceback' in x], loop.graph.output()

    # both streams stop; on a loaded machine the wrench may be reported stale first
    report = wait_until(lambda: next((s for s in m.statuses(stopped) if s[1] == 'STALE'
                                      and 'joint_states' in s[2]), None),
                        STATUS_TIMEOUT_S, '/twin/status STALE naming joint_states', loop.graph,
                        seen=lambda: _seen_status(m))
    _, _, message, values = report
    assert values['joint_states.state'] == 'STALE'
    # it stays STALE while nothing arrives, and every twin node is still up
    time.sleep(1.0)
    later = m.statuses(time.time() - 0.5)
    assert later and all(s[1] == 'STALE' for s in later), [s[1] for s in later]
    # with no sample to follow, the reports run whole when their timers fire
    assert int(later[-1][3]['reports.run_whole']) > int(before['reports.run_whole'])
    loop.graph.check_alive()
