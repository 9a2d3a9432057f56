"""
Integration: an injected fault is detected, localized and typed; the governed hold reaches it.

One graph for the module, as in test_integration_loop but with a randomized plant (a variant of
config/randomization/default.yaml: masses, inertias, friction and damping that the twin's URDF
does not have), the packaged scenario ``friction_jump_joint5`` (joint5's Coulomb friction steps
up by 3 N·m at 10 s of plant time), the packaged ONNX fault classifier, and corrective actions
enabled on the trajectory interface. The demo controller keeps driving
the arm on /joint_command, so the only JointTrajectory on the robot's
/joint_trajectory_controller/joint_trajectory (which the plant obeys) is the twin's corrective
command; the test reads it there, checks it against the URDF limits, and finds the audit line
that sent it with the anomaly that caused it.
"""
import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
from robot_twin.demo import echo_of, robot_transients
from ros_harness import graph_and_observer, model_limits, read_audit, ROBOT_RATE_HZ, \
    start_loop, wait_commissioned, wait_until
from twin_sim.faults import FaultScenario
from twin_sim.resources import fault_scenario

pytestmark = pytest.mark.integration

SCENARIO = 'friction_jump_joint5'
MARGIN_RAD = 0.05          # corrective_actions.position_margin_rad of the test's bridge
VELOCITY_SCALE = 0.5       # corrective_actions.velocity_scale of the test's bridge
TRAJECTORY_TOPIC = '/joint_trajectory_controller/joint_trajectory'
DETECT_TIMEOUT_S = 90.0
"""Bound on the alarm after commissioning: the fault starts at 10 s of plant time."""
TYPE_DECISION_S = 5.0
"""The fault type must be named within this long after the first alarm."""


EXTRA = {
    'plant': {'randomization': 'default', 'randomization_index': 3, 'publish_rate_hz': 1000.0},
    # no calibration: its fit, slow on a loaded machine, once ended commissioning 18 s into the
    # run, after the fault at 10 s, which the twin then learned as nominal (calibration has
    # its own tests)
    'twin_anomaly': {'model_path': '', 'calibration': False},
    'twin_bridge': {'corrective_actions.enabled': True,
                    'corrective_actions.interface': 'trajectory',
                    'corrective_actions.position_margin_rad': MARGIN_RAD,
                    'corrective_actions.velocity_scale': VELOCITY_SCALE}}
ATTEMPTS = 3
"""Starts of the loop at most: see :func:`fault_loop`."""


@pytest.fixture(scope='module')
def fault_loop(tmp_path_factory):
    """
    Start the loop and commission the twin on a well-behaved emulated robot.

    Starved of CPU, the emulated robot's controller sends its set-points late; the plant's stiff
    position loop then jerks the arm (the twin may reject those samples), and the plant itself
    may drop or delay its samples. A twin commissioned on that learns the jerks as nominal,
    and the test would judge the emulator, not the twin:
    such a start is stopped and the loop started again (at most ATTEMPTS times, each printed);
    a last bad start goes on, and the test judges it.
    """
    (fault,) = FaultScenario.load(fault_scenario(SCENARIO)).faults
    for attempt in range(1, ATTEMPTS + 1):
        workdir = tmp_path_factory.mktemp('fault_loop')
        # the lean observer: beside the 1 kHz emulated robot the SingleThreadedExecutor's took
        # half a core, and the starved emulator stalled in most starts (BENCHMARKS.md)
        with graph_and_observer(lean=True) as (graph, observer):
            start_loop(graph, observer, workdir, SCENARIO, extra=EXTRA)
            wait_commissioned(graph, observer)
            obs = observer.monitor.obs
            rejected = len(obs.rejections)
            starved = len(obs.stalls) + len(obs.late_sends) + len(obs.limit_hits)
            if (rejected or starved) and attempt < ATTEMPTS:
                print(f'start {attempt}: the emulated robot sent samples beyond its limits '
                      f'({rejected} status reports with rejections) or dropped or delayed '
                      f'its samples or hit its speed limiter ({starved} plant status '
                      'reports) during commissioning; starting the loop again')
                continue
            yield SimpleNamespace(graph=graph, observer=observer, monitor=observer.monitor,
                                  workdir=workdir, fault=fault)
            return


def _seen_status(monitor):
    reports = monitor.statuses()
    levels = [r[1] for r in reports]
    last = reports[-1] if reports else None
    return (f'/twin/status levels {[(lv, levels.count(lv)) for lv in sorted(set(levels))]}, '
            f'last {last}')


def _gaps(monitor, stamp):
    """Describe gaps in the robot's and the residuals' stamps in the second before ``stamp``."""
    period = 1.0 / ROBOT_RATE_HZ
    out = []
    for what, stamps in (('robot', monitor.robot_stamps), ('residual', monitor.residual_stamps)):
        t = np.array(sorted(s * 1e-9 for s in list(stamps) if stamp - 1.0 <= s * 1e-9 <= stamp))
        gaps = np.diff(t)
        out.append(f'{what} samples {t.size}, gaps > 2.5 periods: '
                   f'{[round(g, 3) for g in gaps[gaps > 2.5 * period]]}')
    plant = monitor.plant_history[-1][1] if monitor.plant_history else {}
    return '; '.join(out) + f'; plant overruns {plant.get("overruns")}'


def _first_error(monitor, after=-math.inf):
    """Return the first ERROR on /twin/anomaly whose onset stamp is at or after ``after``."""
    return next((h for h in monitor.anomalies()
                 if h[2] == 'ERROR' and float(h[4].get('since', 'nan')) >= after), None)


def _echo_of_transient(monitor, stamp):
    """
    Tell whether an alarm beginning at robot ``stamp`` may echo the emulated robot's own transient.

    The demo's rule (:func:`robot_twin.demo.echo_of`): a stall of the plant (it dropped samples)
    or samples the twin rejected as beyond its limits, shortly before.
    """
    return echo_of(monitor.scenario_time(stamp),
                   robot_transients(monitor.obs, monitor.scenario_time)) is not None


def test_injected_fault_is_reported_on_its_joint(fault_loop):
    """The friction step on joint5 gives an ERROR naming joint5, after the fault's onset."""
    m, fault = fault_loop.monitor, fault_loop.fault
    first = m.plant_history[0][1] if m.plant_history else None
    assert first is not None, 'no /twin/plant_status received'
    onset = float(first['start_stamp']) + fault.start_s   # earliest possible onset stamp

    _, _, _, message, values = wait_until(lambda: _first_error(m), DETECT_TIMEOUT_S,
                                          f'an ERROR on /twin/anomaly ({fault.type} on '
                                          f'{fault.joint})', fault_loop.graph)
    plant_time = float(values['since']) - onset + fault.start_s   # of the alarm onset, s
    where = (f'alarm at {plant_time:.3f} s of plant time ({fault.type} from {fault.start_s} s;'
             f' {_gaps(m, float(values["since"]))})')
    if plant_time < fault.start_s - 0.05:
        # the emulated robot, starved of CPU, dropped samples, or its controller's set-points
        # jumped: a real transient of the plant, which the twin rightly reports; any other
        # alarm before the fault is a false alarm
        assert _echo_of_transient(m, float(values['since'])), \
            f'{where}, before the fault and after no transient of the plant: {message} {values}'
        _, _, _, message, values = wait_until(
            lambda: _first_error(m, onset - 0.05), DETECT_TIMEOUT_S,
            f"an ERROR after the fault's onset (the first, {where}, was a transient's echo)",
            fault_loop.graph)
        plant_time = float(values['since']) - onset + fault.start_s
        where = f"alarm at {plant_time:.3f} s of plant time, after a transient's echo"
    if values['joint'] != fault.joint and _echo_of_transient(m, float(values['since'])):
        # a transient of the emulated robot (see above) that the twin saw first; then the
        # fault's joint must still be named
        wait_until(lambda: any(h[2] == 'ERROR' and h[4].get('joint') == fault.joint
                               for h in m.anomalies()), TYPE_DECISION_S,
                   f'an ERROR on {fault.joint} after the echo of a stall ({where})',
                   fault_loop.graph)
    elif values['joint'] != fault.joint:
        # The step's first milliseconds also move the other joints' observer residuals (in
        # scratch runs joints 1, 2 and 7 went to WARN just before joint5's ERROR), and once in
        # a clean-clone run one of them crossed first: joint7 `collision_force` 52 ms after
        # the onset, the episode's verdict on joint5 20 ms later (README, Known limitations,
        # "Verdict swaps"). Allowed only as the first verdict of an alarm episode that names
        # the fault's joint within TYPE_DECISION_S, as the type must be named.
        since = float(values['since'])
        print(f'{where}: the first verdict named {values["joint"]} ({values["fault_type"]}); '
              f'waiting for the episode to name {fault.joint}')
        _, _, _, message, values = wait_until(
            lambda: next((h for h in m.anomalies() if h[2] == 'ERROR'
                          and h[4].get('joint') == fault.joint), None), TYPE_DECISION_S,
            f'the alarm episode of {where} naming {fault.joint}', fault_loop.graph,
            seen=lambda: sorted({(h[4].get('joint'), h[4].get('fault_type'), h[4].get('since'))
                                 for h in m.anomalies() if h[2] == 'ERROR'}))
        assert abs(float(values['since']) - since) < 1e-6, \
            f'{fault.joint} was named by another alarm episode than the first ({where}): ' \
            f'{message} {values}'
    assert values['phase'] == 'monitoring' and values['fault_type'] != 'none'
    # the type: the classifier decides on the evidence of the first moments of the alarm (an
    # abrupt friction step first looks like a push); within TYPE_DECISION_S it names the type
    wait_until(lambda: next((h for h in m.anomalies() if h[2] == 'ERROR'
                             and h[4].get('fault_type') == fault.type
                             and h[4].get('joint') == fault.joint), None),
               TYPE_DECISION_S, f'{fault.type} on {fault.joint} named by /twin/anomaly',
               fault_loop.graph, seen=lambda: sorted({(h[4].get('joint'), h[4].get(
                   'fault_type')) for h in m.anomalies() if h[2] == 'ERROR'}))
    if float(values['score']) < float(values['threshold']):
        # an alarm stays raised until its evidence has been low for a while: a report taken
        # later in the episode (its first lost on a loaded machine) may show a low score
        print(f'first ERROR report seen with score {values["score"]} under its threshold: '
              f'{message} {values}')

    # the faulty joint's own status reaches ERROR, on evidence above its threshold
    joint_status = f'twin/anomaly/{fault.joint}'
    wait_until(lambda: any(h[2] == 'ERROR' and float(h[4].get('score', 0.0))
                           >= float(h[4].get('threshold', math.inf))
                           for h in m.anomalies(joint_status)),
               30.0, f'{joint_status} at level ERROR with its score above its threshold',
               fault_loop.graph,
               seen=lambda: sorted({(h[1], h[2], h[4].get('fault_type'), h[4].get('detector'),
                                     h[4].get('score'))
                                    for h in m.anomalies(None) if h[2] != 'OK'}))


def test_corrective_command_reaches_the_plant_within_limits(fault_loop):
    """The bridge's hold is on the plant's trajectory topic, inside the URDF limits, audited."""
    m, fault = fault_loop.monitor, fault_loop.fault
    wait_until(lambda: _first_error(m), DETECT_TIMEOUT_S + 60.0, 'an ERROR on /twin/anomaly',
               fault_loop.graph)
    wait_until(lambda: m.trajectories, 30.0, f'a corrective JointTrajectory on {TRAJECTORY_TOPIC}',
               fault_loop.graph, seen=lambda: _seen_status(m))
    seen = time.time()
    assert 'plant' in fault_loop.observer.subscribing_nodes(TRAJECTORY_TOPIC)

    limits = model_limits()
    lower, upper = limits.lower + MARGIN_RAD, limits.upper - MARGIN_RAD
    for msg in list(m.trajectories):
        assert list(msg.joint_names) == list(limits.names)
        assert msg.points
        for point in msg.points:
            q = np.asarray(point.positions)
            assert q.shape == (limits.n,) and np.all(np.isfinite(q))
            assert np.all(q >= lower - 1e-9) and np.all(q <= upper + 1e-9), (
                f'commanded {q} outside the URDF limits minus {MARGIN_RAD} rad')
            if len(point.velocities):
                qd = np.asarray(point.velocities)
                assert np.all(np.abs(qd) <= VELOCITY_SCALE * limits.velocity + 1e-9)
            t = point.time_from_start.sec + 1e-9 * point.time_from_start.nanosec
            assert t > 0.0

    # the audit log has the allowed command, with the anomaly that caused it
    audit_path = fault_loop.workdir / 'audit.jsonl'
    allowed = wait_until(lambda: [e for e in read_audit(audit_path) if e['allowed']], 30.0,
                         f'an allowed command in {audit_path}', fault_loop.graph)
    entry = allowed[0]
    assert entry['kind'] == 'trajectory' and entry['cause'] is None
    assert entry['anomaly']['level'] == 'ERROR'
    # the hold answers the first alarm (whichever joint its first verdict named: see the test
    # above), an alarm on the fault's joint, or a transient's echo
    first_since = float(_first_error(m)[4]['since'])
    assert entry['anomaly']['joint'] == fault.joint or \
        abs(entry['anomaly']['since'] - first_since) < 1e-6 or \
        _echo_of_transient(m, entry['anomaly']['since']), entry['anomaly']
    assert math.isfinite(entry['anomaly']['since'])
    sent = entry['sent']['points']
    observed = m.trajectories[0].points
    assert len(sent) == len(observed)
    for s, o in zip(sent, observed):
        np.testing.assert_allclose(s['positions'], o.positions, rtol=0, atol=1e-12)

    # the bridge counts it; the plant took it (it counts every command it rejects). A status
    # report is built in pieces between the robot's samples (robot_twin/nodes/idle_work.py):
    # one received just after the command may carry counters taken just before it, so the
    # count must show within a few reports, not necessarily in the first one after it
    wait_until(lambda: [s for _, _, _, s in m.statuses(seen)
                        if int(s['commands_sent']) >= 1 and int(s['governor.allowed']) >= 1],
               30.0, '/twin/status counting the corrective command (commands_sent and '
               'governor.allowed)', fault_loop.graph,
               seen=lambda: [(s['commands_sent'], s['governor.allowed'])
                             for _, _, _, s in m.statuses(seen)][-5:])
    plant = wait_until(lambda: [p for t, p in list(m.plant_history) if t > seen + 0.1], 30.0,
                       '/twin/plant_status after the command', fault_loop.graph)[-1]
    assert plant['rejected_commands'] == '0', plant
