"""
``robot-twin demo``: the whole twin loop on the built-in emulated robot, live in the terminal.

On a private, localhost-only DDS domain it starts config/demo.yaml as ``robot-twin up`` would:
the plant (twin_plant, playing the real arm with a fault scenario) and the demo controller, each
a process of its own, and the twin (twin_bridge, twin_sim (mirror), twin_anomaly) in one
process. It prints one line per second (sync
state and latency, effort residuals, anomaly state), then a summary of what was detected and
when. Every process it started is stopped at the end, on Ctrl-C too. The exit status is 0 only
if the loop worked: residuals flowed, commissioning finished, the scenario's fault was
detected on the right joint (or, for a scenario without faults, nothing was), and no joint
without a fault ends at RUL ERROR (:func:`rul_verdict`: one that follows a transient of the
emulated robot itself is named as its echo).
"""
import argparse
import dataclasses
import math
import os
import sys
import tempfile
import time

import numpy as np
from robot_twin.bringup import start_graph
from robot_twin.config import ConfigError
from robot_twin.graph import describe_graph
from robot_twin.hub.settings import hub_overrides, hub_spec, hub_urls
from robot_twin.ros_env import free_domain_id, localhost_env
from twin_sim.faults import ScenarioError
from twin_sim.resources import fault_scenario
from twin_sim.yaml_numbers import load_yaml


TWIN_NODES = ('twin_bridge', 'twin_sim', 'twin_anomaly')
TWIN_START_TIMEOUT_S = 60.0   # the twin's first /twin/anomaly report must come within this
STALL_WINDOW_S = 3.0          # an alarm up to this long after a stall of the plant is its echo
RUL_ECHO_EPOCHS = 3           # a health verdict weighs this many epochs (running median of three)
DASHBOARD_ADDRESS = '127.0.0.1:8080'   # --dashboard without an address


PRIORITY_NOTE = {
    'fifo': '  the emulated robot runs at real-time priority (SCHED_FIFO), as a robot controller '
            'does',
    'nice': '  the emulated robot runs at a raised priority (nice -5); real-time priority was '
            'refused',
    None: '  the emulated robot runs at normal priority (a raised one needs root or '
          'CAP_SYS_NICE): on a busy machine it may jerk, and the twin will report that',
}
"""What the demo says of its emulated robot's priority (``ProcessGroup.favour``'s result)."""


def scenario_faults(path):
    """
    Return the scenario's faults as dicts (type, joint, start_s), earliest first.

    The scenario is checked first against the demo's arm (the built-in URDF), as the plant
    will check it: a missing, unreadable or invalid scenario raises ScenarioError, before
    anything starts.
    """
    from twin_sim.faults import FaultScenario
    from twin_sim.resources import builtin_urdf
    from twin_sim.urdf_rewrite import parse
    urdf = parse(builtin_urdf())
    FaultScenario.load(path, joint_names=[j.get('name') for j in urdf.findall('joint')
                                          if j.get('type') != 'fixed'],
                       link_names=[link.get('name') for link in urdf.findall('link')])
    with open(path, encoding='utf-8') as f:
        doc = load_yaml(f) or {}
    faults = [dict(f) for f in doc.get('faults') or []]
    return sorted(faults, key=lambda f: float(f.get('start_s', 0.0)))


def build_processes(scenario_path, workdir, corrective, commissioning_s):
    """Return the demo graph's processes with the run's overrides (scenario, files, flags)."""
    graph = describe_graph('demo')
    overrides = {
        'plant': {'scenario': scenario_path},
        'twin_bridge': {'corrective_actions.enabled': bool(corrective),
                        'ledger_path': os.path.join(workdir, 'ledger.jsonl')},
        'twin_anomaly': {'thresholds_file': os.path.join(workdir, 'thresholds.yaml'),
                         'rul.log_path': os.path.join(workdir, 'health.jsonl'),
                         'ledger_path': os.path.join(workdir, 'ledger.jsonl'),
                         'recommission': True},
    }
    if commissioning_s is not None:
        overrides['twin_anomaly']['commissioning_duration_s'] = float(commissioning_s)
    return [dataclasses.replace(process, nodes=tuple(
        dataclasses.replace(n, parameters={**n.parameters, **overrides.get(n.name, {})})
        for n in process.nodes)) for process in graph.processes]


def _fmt_line(elapsed, obs):
    status = obs.status
    lat = np.asarray(obs.latency_s)
    lat_txt = f'{1e3 * np.median(lat):5.2f} ms' if lat.size else '   -    '
    sync = obs.status_level or '-'
    robot = obs.anomaly.get('twin/anomaly/robot')
    if robot is None:
        anomaly = 'anomaly: -'
    else:
        level, message, values = robot
        anomaly = f'anomaly: {level:5s} score {float(values.get("score", "nan")):5.2f}  {message}'
    res = ''
    if obs.residual_rms is not None and obs.residual_names:
        res = 'effort res RMS [N·m] ' + ' '.join(f'{v:5.2f}' for v in obs.residual_rms)
    rejected = sum(int(v) for k, v in status.items() if k.endswith('.rejected'))
    return (f't={elapsed:5.1f}s  sync {sync:5s} latency {lat_txt}  rejected {rejected:3d}  '
            f'{res}  {anomaly}')


def hub_process(workdir, address=DASHBOARD_ADDRESS):
    """
    Return ``(process, url lines)`` of the demo's hub: dashboard and REST API, read-only.

    It shows the demo's lifecycle log (in ``workdir``); raises ConfigError for a bad address.
    """
    overrides = {**hub_overrides(api=address),
                 'ledger_path': os.path.join(workdir, 'ledger.jsonl')}
    return hub_spec(describe_graph('demo'), overrides), hub_urls(overrides)


def run_demo(duration_s=78.0, scenario='demo', corrective=False, domain_id=None,
             commissioning_s=None, show_node_output=False, out=None, dashboard=''):
    """
    Run the demo; return the process exit status (0 = the loop worked).

    ``out``: where the demo prints (default: ``sys.stdout`` at the time of the call).

    ``dashboard`` = ``HOST:PORT``: also start the hub there (dashboard, REST API) and print its
    URL; '' = no hub.
    """
    out = sys.stdout if out is None else out
    try:
        hub_overrides(api=dashboard)            # a bad address stops the demo before it starts
    except ConfigError as exc:
        print(f'robot-twin demo: {exc}', file=out, flush=True)
        return 2
    try:
        scenario_path = fault_scenario(scenario)
        faults = scenario_faults(scenario_path)
    except (FileNotFoundError, ScenarioError) as exc:
        print(f'robot-twin demo: {exc}', file=out, flush=True)
        return 2
    domain = free_domain_id() if domain_id is None else int(domain_id)
    env = localhost_env(domain)
    os.environ.update({k: env[k] for k in ('ROS_DOMAIN_ID', 'ROS_LOCALHOST_ONLY',
                                           'ROS_AUTOMATIC_DISCOVERY_RANGE',
                                           'FASTDDS_DEFAULT_PROFILES_FILE')})
    from robot_twin.nodes.monitor_node import BackgroundMonitor

    def say(text):
        print(text, file=out, flush=True)

    say(f'robot_twin demo: scenario {os.path.basename(scenario_path)}, {duration_s:.0f} s, '
        f'ROS_DOMAIN_ID={domain} (localhost only), corrective actions '
        f'{"on" if corrective else "off"}')
    for f in faults:
        say(f"  fault: {f.get('type')} on {f.get('joint', 'the tool')} from t={f.get('start_s')} s"
            f" (ramp {f.get('ramp_s', 0)} s, size {f.get('size')})")

    def on_line(name, line):
        if show_node_output or 'ERROR' in line or 'WARN' in line or 'Traceback' in line:
            say(f'  [{name}] {line}')

    with tempfile.TemporaryDirectory(prefix='robot_twin_demo_') as workdir:
        processes = build_processes(scenario_path, workdir, corrective, commissioning_s)
        # The twin comes up first and the robot only once it listens: the scenario's fault
        # times count from the plant's start, and commissioning must not overlap them.
        twin = [p for p in processes if {n.name for n in p.nodes} & set(TWIN_NODES)]
        robot = [p for p in processes if p not in twin]
        groups = [start_graph(twin, env, on_line=on_line)]
        if dashboard:
            hub, urls = hub_process(workdir, dashboard)
            groups.append(start_graph([hub], env, on_line=on_line))
            for line in urls:
                say(line)
        monitor = BackgroundMonitor('demo_monitor', domain)
        start = time.time()
        exited = None
        try:
            deadline = start + TWIN_START_TIMEOUT_S
            while not monitor.obs.anomaly and time.time() < deadline and not exited:
                exited = groups[0].poll()
                time.sleep(0.1)
            if not exited:
                say(f'twin up after {time.time() - start:.1f} s; starting the robot')
                groups.append(start_graph(robot, env, on_line=on_line))
                # the emulated robot runs as a real controller does, before the twin
                say(PRIORITY_NOTE[groups[-1].favour()])
            next_print = time.time() + 1.0
            while time.time() - start < duration_s and not exited:
                exited = next((e for e in (g.poll() for g in groups) if e), None)
                if exited:
                    break
                time.sleep(max(0.0, min(0.1, next_print - time.time())))
                if time.time() >= next_print:
                    say(_fmt_line(time.time() - start, monitor.obs))
                    next_print += 1.0
        except KeyboardInterrupt:
            say('Ctrl-C: stopping the demo')
        finally:
            for group in reversed(groups):
                group.stop()
            monitor.close()
        scenario_time = monitor.node.scenario_time
        return summarize(monitor.obs, faults, exited, say, scenario_time,
                         lifecycle=lambda: summarize_lifecycle(monitor.obs, workdir, say,
                                                               scenario_time),
                         rul_window_s=rul_echo_window_s(processes))


def rul_echo_window_s(processes):
    """
    Seconds before a joint's RUL turned ERROR in which a robot transient may be its cause.

    A health verdict weighs the last :data:`RUL_ECHO_EPOCHS` health epochs
    (``rul.health_interval_s`` of motion each, from the twin_anomaly parameters of the
    demo's processes), then waits for the next /twin/rul report: a transient of the emulated
    robot in those epochs fed the evidence (plus :data:`STALL_WINDOW_S` for the reporting).
    """
    return RUL_ECHO_EPOCHS * float(_anomaly_parameter(processes, 'rul.health_interval_s')) \
        + STALL_WINDOW_S


def _anomaly_parameter(processes, name):
    """Return the twin_anomaly parameter ``name`` as the demo sets it (override, file, default)."""
    from robot_twin.config import defaults, load_rcl_yaml
    for process in processes:
        for node in process.nodes:
            if node.name != 'twin_anomaly':
                continue
            if name in node.parameters:
                return node.parameters[name]
            for path in reversed(process.params_files):      # the last file wins
                with open(path, encoding='utf-8') as f:
                    doc = load_rcl_yaml(f) or {}
                for key in ('/**/twin_anomaly', 'twin_anomaly', '/twin_anomaly', '/**'):
                    value = (doc.get(key) or {}).get('ros__parameters') or {}
                    for part in name.split('.'):
                        value = value.get(part) if isinstance(value, dict) else None
                    if value is not None:
                        return value
    return defaults('twin_anomaly')[name]


def rul_changes(entries, scenario_time):
    """
    Return ``[(joint, level, scenario time s)]`` of the ``rul_advice`` entries of a log.

    A raised level is logged at once (a lowered one once it held), so the entry that turned a
    joint ERROR says when it did; the entry's wall time maps to scenario time like a robot
    stamp (the demo's robot stamps on the system clock).
    """
    return [(e.data.get('joint', ''), e.data.get('level', ''), scenario_time(e.time))
            for e in entries if e.kind == 'rul_advice']


def error_since(changes, joint):
    """Return the scenario time when ``joint``'s RUL last turned ERROR (None: not logged)."""
    since = None
    for name, level, t in changes:
        if name == joint:
            since = (since if since is not None else t) if level == 'ERROR' else None
    return since


def _hours(text):
    """
    Return a duration in hours from a /twin/rul value, to three significant digits.

    The demo compresses wear into minutes, so its RUL is a fraction of an hour: rounded to
    whole hours it read "RUL 0 h, 0-0 h". Text that is not a number is shown as it came.
    """
    try:
        return f'{float(text):.3g}'
    except (TypeError, ValueError):
        return str(text)


def summarize_lifecycle(obs, workdir, say, scenario_time=None):
    """
    Print the RUL and the lifecycle log; return ``(ok, rul changes)``.

    ``ok`` is False if either is missing or broken; the changes are :func:`rul_changes` of
    the log (empty without ``scenario_time``).
    """
    from twin_bridge.ledger import verify_ledger
    ok = True
    if not obs.rul:
        say('PROBLEM: no /twin/rul report arrived')
        ok = False
    for name, (level, message, values) in sorted(obs.rul.items()):
        if values.get('rul_hours') not in (None, '', 'nan', 'inf'):
            say(f'{name}: {level} {message} (RUL {_hours(values["rul_hours"])} h, '
                f'{_hours(values.get("rul_lower_hours"))}-{_hours(values.get("rul_upper_hours"))}'
                f' h; {values.get("recommended_action")}, due by {values.get("due_by") or "-"})')
    if obs.speed_scale is not None and obs.speed_scale < 1.0:
        say(f'governor derated to {obs.speed_scale:.2f} of its speed limits')
    path = os.path.join(workdir, 'ledger.jsonl')
    check = verify_ledger(path) if os.path.exists(path) else None
    if check is None or not check.ok:
        say(f'PROBLEM: lifecycle log {path}: {"missing" if check is None else check}')
        return False, []
    kinds = {}
    for entry in check.entries:
        kinds[entry.kind] = kinds.get(entry.kind, 0) + 1
    say(f'lifecycle log: {sum(kinds.values())} entries, hash chain verified ('
        + ', '.join(f'{k} {n}' for k, n in sorted(kinds.items())) + ')')
    return ok, rul_changes(check.entries, scenario_time) if scenario_time else []


def robot_transients(obs, scenario_time):
    """
    Scenario times (s) of the emulated robot's own transients, from a monitor's observation.

    The emulated robot steps in real time; starved of CPU it catches up without sending the
    samples it could not send in time (an overrun in /twin/plant_status): a real gap in its
    stream, which the twin rightly sees. Starved less, it sends its samples late (tens of ms
    behind their stamps, counted in its lateness histogram): a late stream, which the twin
    rightly reports as a delay. A late set-point of its controller can turn into a move that
    its speed limiter or a range stop cuts short at once (``over_speed``, ``limit_stops``), and
    set-points that pause longer than the plant extrapolates them leave the arm holding its
    reference until they resume with a jump (``stream_holds``).
    Likewise samples the twin rejected as impossible (speeds beyond the limits): the robot's
    stamps are on the system clock, so their wall times map to scenario time like stamps.
    """
    return ([t for t in obs.stalls + obs.late_sends + obs.limit_hits if math.isfinite(t)]
            + [scenario_time(t) for t in obs.rejections])


def echo_of(t, transients):
    """Return the transient (scenario time, s) that an alarm at ``t`` may echo, or None."""
    return next((x for x in transients if t - STALL_WINDOW_S <= x <= t + 0.5), None)


def summarize(obs, faults, exited, say, scenario_time, lifecycle=None,
              rul_window_s=RUL_ECHO_EPOCHS * 300.0 + STALL_WINDOW_S):
    """
    Print what happened and return 0 if the loop worked, 1 otherwise.

    ``scenario_time(stamp)`` maps a robot stamp to plant (scenario) time, s.
    ``lifecycle()`` prints the RUL and the lifecycle log and returns ``(ok, rul changes)``
    (:func:`summarize_lifecycle`); None = not checked. The RUL a joint without a fault ends
    at (``obs.rul``) is judged like its alarms (:func:`rul_verdict`).
    """
    say('--- summary ---')
    problems = []
    if exited:
        problems.append(f'node(s) exited early: {exited}')
    say(f'residual samples received: {obs.residual_count}')
    if obs.latency_s:
        lat = 1e3 * np.asarray(obs.latency_s)
        say(f'robot stamp -> residual latency: p50 {np.median(lat):.2f} ms, '
            f'p99 {np.percentile(lat, 99):.2f} ms')
    status = getattr(obs, 'status', None) or {}
    if 'reports.pieces_after_samples' in status:      # (robot_twin/nodes/idle_work.py)
        say(f'twin reports: {status["reports.pieces_after_samples"]} pieces run after robot '
            f'samples, {status.get("reports.run_whole")} reports run whole')
    try:                                 # the twin's own figure (robot_twin/nodes/status.py)
        cores = float(status['process.cpu_cores'])
        window = float(status['process.cpu_window_s'])
    except (KeyError, ValueError):
        cores = math.nan
    if math.isfinite(cores):
        say(f'twin CPU, as the twin measures itself: {cores:.2f} of a core over its last '
            f'{window:.0f} s')
    if obs.residual_count == 0:
        problems.append('no residuals arrived: the loop did not run')
    if obs.commissioned_at is None:
        problems.append('commissioning never finished')
    alarm = obs.first_alarm
    rel = math.nan
    if alarm is not None:
        _wall, joint, fault_type, since = alarm
        rel = scenario_time(since) if math.isfinite(since) else math.nan
        say(f'first alarm: joint {joint or "-"}, fault type {fault_type}, onset at '
            f't={rel:.2f} s of the scenario')
        for name, values in sorted((obs.first_alarm_groups or {}).items()):
            say(f'  {name}: score {float(values.get("score", "nan")):.2f} from detector '
                f'{values.get("detector", "?")} ({values.get("channel", "?")})')
    # alarms right after a transient of the emulated robot itself are not false alarms
    transients = robot_transients(obs, scenario_time)
    episodes = [(j, ft, scenario_time(t)) for j, ft, t in obs.alarms if math.isfinite(t)]
    start_s = float(faults[0].get('start_s', 0.0)) if faults else math.inf
    joints = {f.get('joint') for f in faults if f.get('joint')}

    def say_echo(joint, fault_type, t, stall):
        say(f'alarm at t={t:.2f} s ({joint or "robot"}: {fault_type}) followed a transient '
            f'of the emulated robot itself at t={stall:.2f} s (a stall: starved of CPU, it '
            'dropped samples or sent them late; its speed limiter or a range stop cut a move '
            'short; or samples beyond its limits, which the twin rejected)')

    for joint, fault_type, t in episodes:
        if t >= start_s - 0.05:
            continue
        stall = echo_of(t, transients)
        if stall is None:
            problems.append(f'alarm at t={t:.2f} s ({joint or "robot"}: {fault_type}) came '
                            f'before the fault (t={start_s} s)')
        else:
            say_echo(joint, fault_type, t, stall)
    if faults:
        first = faults[0]
        found = None
        for joint, fault_type, t in episodes:
            if t < start_s - 0.05:
                continue
            stall = echo_of(t, transients)
            if joints and joint not in joints and stall is not None:
                say_echo(joint, fault_type, t, stall)   # a transient's echo: not the answer
                continue
            found = (joint, fault_type, t)
            break
        if found is None:
            problems.append(f"the {first.get('type')} fault was not detected")
        elif joints and found[0] not in joints:
            problems.append(f'alarm on {found[0] or "no joint"}, fault was on '
                            f'{", ".join(sorted(joints))}')
        else:
            say(f'detected {first.get("type")} {found[2] - start_s:.2f} s after its onset, on '
                f'{found[0]} ({found[1]})')
    elif episodes:
        problems.append('false alarm on a scenario without faults')
    if obs.commands:
        say(f'corrective commands seen on the robot bus: {len(obs.commands)}')
    changes = []
    if lifecycle is not None:
        ok, changes = lifecycle()
        if not ok:
            problems.append('the RUL report or the lifecycle log is missing or broken (above)')
    problems += rul_verdict(getattr(obs, 'rul', {}), faults, changes, transients, say,
                            rul_window_s)
    for p in problems:
        say(f'PROBLEM: {p}')
    say('demo OK: the twin loop worked' if not problems else 'demo FAILED')
    return 0 if not problems else 1


def rul_verdict(rul, faults, changes, transients, say, window_s):
    """
    Judge the RUL each joint without a fault ends at; return the problems (list of str).

    ``rul`` maps ``twin/rul/<joint>`` to ``(level, message, values)``. A joint the scenario
    faults may end at WARN or ERROR (that is the point). Any other joint at ERROR is a problem,
    unless its ERROR began (:func:`error_since`, from ``changes``) within ``window_s`` after a
    transient of the emulated robot itself, whose samples its health evidence took in: then
    it is named as that echo, like an alarm. At WARN it is printed as a warning. A fault
    without a joint (on the tool) may load any joint: their levels are only printed then.
    """
    faulted = {f.get('joint') for f in faults if f.get('joint')}
    tool_fault = any(not f.get('joint') for f in faults)
    problems = []
    for name, (level, message, _values) in sorted(rul.items()):
        joint = name[len('twin/rul/'):] if name.startswith('twin/rul/') else ''
        if not joint or joint in faulted or level not in ('WARN', 'ERROR'):
            continue
        if level == 'WARN' or tool_fault:
            say(f'WARNING: the RUL of {joint}, which has no fault in this scenario, ends at '
                f'{level}: {message}')
            continue
        since = error_since(changes, joint)
        stall = None if since is None else next(
            (x for x in transients if since - window_s <= x <= since + 0.5), None)
        when = f' since t={since:.2f} s' if since is not None else ''
        if stall is None:
            problems.append(f'the RUL of {joint}, which has no fault in this scenario, ends at '
                            f'ERROR{when}: {message}')
        else:
            say(f'RUL ERROR of {joint}{when} ({message}) followed a transient of the emulated '
                f'robot itself at t={stall:.2f} s (its health evidence took in the samples of '
                'a stall, or samples beyond its limits)')
    return problems


def add_demo_parser(subparsers):
    """Add ``robot-twin demo`` to the CLI."""
    p = subparsers.add_parser('demo', help='run the whole twin loop on the emulated robot')
    p.add_argument('--duration', type=float, default=78.0, help='seconds to run (default 78)')
    p.add_argument('--scenario', default='demo',
                   help='fault scenario: a name in config/faults or a YAML file (default demo)')
    p.add_argument('--corrective', action='store_true',
                   help='enable corrective actions (the governor may command the plant)')
    p.add_argument('--commissioning', type=float, default=None,
                   help='commissioning seconds (default: config/demo.yaml)')
    p.add_argument('--domain-id', type=int, default=None,
                   help='ROS_DOMAIN_ID (default: derived from the process id)')
    p.add_argument('--verbose', action='store_true', help="show every node's log output")
    p.add_argument('--dashboard', nargs='?', const=DASHBOARD_ADDRESS, default='',
                   metavar='HOST:PORT',
                   help=f'also serve the web dashboard and REST API (twin_hub, read-only) at '
                        f'HOST:PORT (default {DASHBOARD_ADDRESS}) and print the URL')
    p.set_defaults(func=lambda a: run_demo(
        a.duration, a.scenario, a.corrective, a.domain_id, a.commissioning, a.verbose,
        dashboard=a.dashboard))


def main(argv=None):
    """``python -m robot_twin.demo``."""
    parser = argparse.ArgumentParser(prog='robot-twin')
    add_demo_parser(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(['demo'] + list(sys.argv[1:] if argv is None else argv))
    return args.func(args)
