"""
``robot-twin hil-report``: how a controller did on the HIL bench, from a recording.

Reads a recording of a HIL run (``robot-twin record`` beside the plant; the twin may run too):

- tracking error per joint: each measured /joint_states sample against the position reference
  the plant was following, by log time: the controller's latest position command
  (/joint_command or /forward_position_controller/commands) that the plant accepted (the rules
  of :mod:`twin_sim.plant_commands`, the plant's own), clipped to the URDF limits as the plant
  clips it (a position with velocity is extrapolated as the plant does, for at most
  ``STREAM_HORIZON_S``); joints a /joint_command position leaves out are held where the plant
  holds them, at their measured position when it got the command (the latest recorded
  /joint_states sample at or before the command's log time); rejected commands are skipped,
  and while a velocity or effort command or an accepted JointTrajectory is in force there is
  no position reference (those samples are counted apart, ``untracked_samples``). Commands the
  plant dropped unapplied in lock-step (stale stamps, its ``stale_commands``) cannot be told
  from the recording and count as followed;
- commands outside the URDF's position, velocity or effort limits, per joint;
- the plant's timing from its last /twin/plant_status: deadline misses, jitter percentiles and
  histogram (real-time mode), steps, resends, stale commands and rate (lock-step mode), all
  counted per physics step (the status's ``rate_hz``), whether the step published its sample
  or not (``publish_rate_hz``: in real time the plant may publish every k-th step only; in
  lock-step it publishes one sample per answered command, ``steps_per_sample`` steps apart);
- faults injected (the plant's scenario, from /twin/plant_status) against faults detected (the
  live twin's /twin/anomaly in the recording, else a replay of the recording through the twin),
  with the detection delay of each. A replay that fails leaves the detections unknown, and the
  report says why; the rest of the report does not depend on it.

Writes ``report.json`` and plots (``tracking_error.png``, ``jitter_histogram.png``,
``command_limits.png``, ``faults.png``) to the output directory.
"""
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from robot_twin.nodes.cdr import JointStateReader
from robot_twin.replay import DIAGNOSTIC_ARRAY, is_cdr, JOINT_STATE, open_recording, \
    read_messages, recorded_alarms, replay, ReplayError, topic_connections, twin_parameters
from twin_sim.faults import FaultScenario, ScenarioError
from twin_sim.plant_commands import CommandRejected, forward_command, joint_command, \
    trajectory_command, trajectory_speed_problem
from twin_sim.resources import urdf_or_builtin
from twin_sim.trajectory import STREAM_HORIZON_S
from twin_sim.urdf_model import RobotModel, URDFError

FORWARD = 'std_msgs/msg/Float64MultiArray'
COMMAND_TOPICS = {'/joint_command': JOINT_STATE, '/forward_position_controller/commands': FORWARD}
TRAJECTORY = 'trajectory_msgs/msg/JointTrajectory'
TRAJECTORY_TOPIC = '/joint_trajectory_controller/joint_trajectory'
DETECTION_WINDOW_S = 0.1
"""A detection whose exceedance began up to this long before a fault's start still counts."""


@dataclass
class _Commands:
    """
    The commands the plant accepted, by log time, and the limit violations of all of them.

    Per accepted command: its log time ``t``, ``mode`` (``'position'``; ``'velocity'``,
    ``'effort'`` or ``'trajectory'``: no position reference while it is in force) and, for a
    position, the reference ``q`` and velocity ``qd`` (model order, clipped to the limits).
    ``partial``: indices of the position commands that leave joints out (``q`` NaN there
    until :func:`read_commands` fills in the measured position).
    """

    t: list = field(default_factory=list)
    q: list = field(default_factory=list)
    qd: list = field(default_factory=list)
    mode: list = field(default_factory=list)
    partial: list = field(default_factory=list)
    total: int = 0
    positions: int = 0          # accepted position commands
    rejected: int = 0           # commands the plant rejects (skipped)
    untracked: int = 0          # joint states while no position reference was in force
    outside: dict = field(default_factory=dict)    # kind -> (n,) counts
    examples: list = field(default_factory=list)


def _check_limits(model, cmd, kind, values, t, idx):
    """Count values (model joints ``idx``) beyond the URDF limits of ``kind``."""
    values = np.asarray(values, dtype=float)
    if kind == 'position':
        bad = (values < model.lower[idx]) | (values > model.upper[idx])
    else:
        limit = model.velocity_limit[idx] if kind == 'velocity' else model.effort_limit[idx]
        bad = np.abs(values) > limit
    bad |= ~np.isfinite(values)
    if bad.any():
        counts = cmd.outside.setdefault(kind, np.zeros(model.n, dtype=np.int64))
        np.add.at(counts, np.asarray(idx)[bad], 1)
        if len(cmd.examples) < 10:
            joint = model.joint_names[int(np.asarray(idx)[bad][0])]
            cmd.examples.append({'log_time': t, 'kind': kind, 'joint': joint,
                                 'value': float(values[bad][0])})
    return bool(bad.any())


def _accepted(model, msgtype, msg):
    """
    Return what the plant makes of a command: ``(mode, q, qd)``, or raise CommandRejected.

    The plant's own rules (:mod:`twin_sim.plant_commands`); a position is clipped to the
    range and its velocity to the velocity limit as the plant clips them; joints a position
    command leaves out are NaN in ``q`` (the plant holds their measured position:
    :func:`read_commands` fills it in) and 0 in ``qd``.
    """
    names = model.joint_names
    lower, upper = np.asarray(model.lower), np.asarray(model.upper)
    cap = np.asarray(model.velocity_limit, dtype=float)
    cap = np.where(cap > 0.0, cap, np.inf)
    if msgtype == TRAJECTORY:
        # joints the message leaves out hold still: any value inside the range checks the same
        interp = trajectory_command(names, msg, np.clip(np.zeros(model.n), lower, upper))
        problem = trajectory_speed_problem(interp, lower, upper, cap, names)
        if problem is not None:
            raise CommandRejected(problem)
        return 'trajectory', None, None
    if msgtype == FORWARD:
        mode, values, feedforward = 'position', forward_command(names, msg.data), None
    else:
        mode, values, feedforward = joint_command(names, msg.name, msg.position, msg.velocity,
                                                  msg.effort)
    if mode != 'position':
        return mode, None, None
    q = np.clip(values, lower, upper)             # NaN (left out) stays NaN
    qd = np.zeros(model.n) if feedforward is None else np.nan_to_num(feedforward, nan=0.0)
    return mode, q, np.clip(qd, -cap, cap)


def read_commands(reader, path, model, topic='/joint_states'):
    """
    Read the commands of the recording (see the module docstring and :class:`_Commands`).

    Joints a position command leaves out get the measured position (``topic``) at the
    command's log time, as the plant holds them (``plant_node._apply_joint_command``); NaN
    (not tracked) before the first sample of the joint.
    """
    cmd = _Commands()
    index = {n: i for i, n in enumerate(model.joint_names)}
    conns = [c for c in reader.connections
             if COMMAND_TOPICS.get(c.topic) == c.msgtype
             or (c.topic == TRAJECTORY_TOPIC and c.msgtype == TRAJECTORY)]
    for conn, log_ns, data in read_messages(reader, conns, path):
        t = log_ns * 1e-9
        msg = reader.deserialize(data, conn.msgtype)
        cmd.total += 1
        if conn.msgtype != TRAJECTORY:
            if conn.msgtype == FORWARD:
                names, position, velocity, effort = model.joint_names, msg.data, [], []
            else:
                names, position, velocity, effort = (msg.name, msg.position, msg.velocity,
                                                     msg.effort)
            known = [k for k, n in enumerate(names) if n in index]
            idx = [index[names[k]] for k in known]
            for kind, values in (('position', position), ('velocity', velocity),
                                 ('effort', effort)):
                if len(values) == len(names) and known:
                    _check_limits(model, cmd, kind, np.asarray(values)[known], t, idx)
        try:
            mode, q, qd = _accepted(model, conn.msgtype, msg)
        except CommandRejected:
            cmd.rejected += 1
            continue
        if mode == 'position' and np.isnan(q).any():
            cmd.partial.append(len(cmd.t))
        cmd.positions += mode == 'position'
        cmd.t.append(t)
        cmd.mode.append(mode)
        cmd.q.append(q)
        cmd.qd.append(qd)
    if cmd.partial:
        measured = _measured_at(reader, path, model, topic, [cmd.t[k] for k in cmd.partial])
        for k, held in zip(cmd.partial, measured):
            cmd.q[k] = np.clip(np.where(np.isnan(cmd.q[k]), held, cmd.q[k]), model.lower,
                               model.upper)
    return cmd


def _positions(reader, decode, data):
    """Return ``(names, positions)`` of a serialized JointState."""
    parsed = decode.read(data) if is_cdr(reader) else None
    if parsed is None:
        msg = reader.deserialize(data, JOINT_STATE)
        return list(msg.name), np.asarray(msg.position)
    return parsed[2], parsed[3]


def _measured_at(reader, path, model, topic, times):
    """
    Return the latest measured position of each joint at each of ``times`` (log time, s).

    ``(len(times), n)``, model order: from the ``topic`` samples logged at or before each time
    (a joint's latest value, whichever message carried it); NaN before a joint's first sample.
    """
    index = {n: i for i, n in enumerate(model.joint_names)}
    conns = topic_connections(reader, topic, JOINT_STATE, True,
                              'name it with --joint-states-topic')
    decode = JointStateReader()
    order = np.argsort(times, kind='stable')
    out = np.full((len(times), model.n), np.nan)
    latest = np.full(model.n, np.nan)
    k = 0
    for _conn, log_ns, data in read_messages(reader, conns, path):
        t = log_ns * 1e-9
        while k < len(order) and times[order[k]] < t:
            out[order[k]] = latest
            k += 1
        if k == len(order):
            continue                    # read on: read_messages checks the whole recording
        names, position = _positions(reader, decode, data)
        for j, name in enumerate(names):
            if name in index and j < len(position):
                latest[index[name]] = position[j]
    out[order[k:]] = latest
    return out


def tracking_errors(reader, path, model, commands, topic='/joint_states'):
    """
    Return ``(t (m,), error (m, n))``: measured minus commanded position, rad, by log time.

    Only samples after the first command count; joints never commanded are NaN. Samples while
    a command without a position reference (velocity, effort, trajectory) is in force are left
    out and counted in ``commands.untracked``.
    """
    if not commands.positions:
        return np.zeros(0), np.zeros((0, model.n))
    index = {n: i for i, n in enumerate(model.joint_names)}
    conns = topic_connections(reader, topic, JOINT_STATE, True,
                              'name it with --joint-states-topic')
    decode = JointStateReader()
    t_cmd = np.asarray(commands.t)
    times, errors = [], []
    for _conn, log_ns, data in read_messages(reader, conns, path):
        t = log_ns * 1e-9
        k = int(np.searchsorted(t_cmd, t, side='right')) - 1
        if k < 0:
            continue
        if commands.mode[k] != 'position':
            commands.untracked += 1
            continue
        names, position = _positions(reader, decode, data)
        # extrapolated and held at the ends of the range, as the plant does
        reference = np.clip(commands.q[k] + commands.qd[k] * min(t - t_cmd[k], STREAM_HORIZON_S),
                            model.lower, model.upper)
        measured = np.full(model.n, np.nan)
        for j, name in enumerate(names):
            if name in index and j < len(position):
                measured[index[name]] = position[j]
        times.append(t)
        errors.append(measured - reference)
    return np.asarray(times), np.asarray(errors).reshape(-1, model.n)


def plant_status(reader, path):
    """Return the last /twin/plant_status values (dict) and the first ``start_stamp`` (s)."""
    conns = [c for c in reader.connections
             if c.topic == '/twin/plant_status' and c.msgtype == DIAGNOSTIC_ARRAY]
    last, start = {}, None
    for _conn, _t, data in read_messages(reader, conns, path):
        msg = reader.deserialize(data, DIAGNOSTIC_ARRAY)
        for status in msg.status:
            if status.name == 'twin/plant':
                last = {kv.key: kv.value for kv in status.values}
                if start is None and 'start_stamp' in last:
                    start = float(last['start_stamp'])
    return last, start


def timing(values):
    """
    Return the timing part of the report from plant status values.

    The plant's steps, deadline misses and lateness (jitter) count its physics steps, at
    ``rate_hz``, published or not; ``publish_rate_hz`` is the rate of the samples it sends
    in real time (the step rate for a plant status that does not give it: one from before
    the two rates). In lock-step the plant publishes one sample per command that answers one
    (its ``lockstep_steps_per_command`` sample periods): ``steps_per_sample`` as the status
    gives it, or, from a plant that did not give it, its steps over its commands less the
    stale ones (an estimate: a command before the first sample steps nothing).
    """
    if not values:
        return None
    out = {'mode': values.get('mode', 'realtime'), 'rate_hz': _number(values.get('rate_hz')),
           'publish_rate_hz': _number(values.get('publish_rate_hz', values.get('rate_hz')))}
    for key in ('steps', 'deadline_misses', 'overruns', 'commands', 'stale_commands',
                'resends'):
        if key in values:
            out[key] = int(values[key])
    for key in ('miss_fraction', 'jitter_p50_us', 'jitter_p99_us', 'jitter_max_us',
                'steps_per_s'):
        if key in values:
            out[key] = _number(values[key])
    answered = out.get('commands', 0) - out.get('stale_commands', 0)
    if out['mode'] == 'lockstep' and 'steps_per_sample' in values:
        out['steps_per_sample'] = _number(values['steps_per_sample'])
    elif out['mode'] == 'lockstep' and out.get('steps') and answered > 0:
        out['steps_per_sample'] = out['steps'] / answered
    if 'jitter_hist_edges_us' in values:
        out['jitter_histogram'] = {
            'lower_edges_us': [int(v) for v in values['jitter_hist_edges_us'].split(',')],
            'counts': [int(v) for v in values['jitter_hist_counts'].split(',')]}
    return out


def counted_steps(timing):
    """
    Say what the plant's timing figures count, for the plot and the printed summary (str).

    E.g. ``'per physics step (1000 Hz; samples published at 100 Hz, one per 10 steps)'``; in
    lock-step ``'per physics step (1000 Hz of plant time; one sample published per answered
    command, about 10 steps each: samples at 100 Hz of plant time)'``.
    """
    rate, publish = timing.get('rate_hz'), timing.get('publish_rate_hz')
    if timing.get('mode') == 'lockstep':
        per = timing.get('steps_per_sample')
        each = f', about {round(per, 1):g} steps each' if per else ''
        if per and rate:
            each += f': samples at {round(rate / per, 1):g} Hz of plant time'
        step = f'{rate:g} Hz of plant time; ' if rate else ''
        return f'per physics step ({step}one sample published per answered command{each})'
    if not rate:
        return 'per physics step'
    if not publish:
        return f'per physics step ({rate:g} Hz)'
    if abs(rate / publish - 1.0) < 1e-9:
        return f'per physics step ({rate:g} Hz, each publishing its sample)'
    return (f'per physics step ({rate:g} Hz; samples published at {publish:g} Hz, one per '
            f'{rate / publish:.0f} steps)')


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def injected_faults(values, start_stamp):
    """
    Return the scenario's faults with their start as a robot stamp (list of dict), and a problem.

    Faults of one type on one joint starting at the same time (a step and a ramp of one wear)
    are one onset to detect: one entry, whose ``scenario_entries`` lists their indices.
    """
    path = values.get('scenario') if values else None
    if not path:
        return [], None
    try:
        scenario = FaultScenario.load(path)
    except (ScenarioError, OSError) as exc:
        return [], f'cannot read the scenario of the plant, {path}: {exc}'
    out = {}
    for index, fault in enumerate(scenario.faults):
        spec = fault.to_dict()
        key = (spec['type'], spec.get('joint'), float(spec['start_s']))
        if key in out:       # e.g. a step and a ramp of one wear: one onset to detect
            out[key]['scenario_entries'].append(index)
            continue
        out[key] = {'type': spec['type'], 'joint': spec.get('joint'),
                    'start_s': float(spec['start_s']),
                    'start_stamp': None if start_stamp is None
                    else start_stamp + float(spec['start_s']),
                    'scenario_entries': [index]}
    return list(out.values()), None


def match_faults(injected, detections):
    """
    Pair each injected fault with the first detection on its joint at or after its start.

    A detection counts from ``DETECTION_WINDOW_S`` before the fault's start; several faults may
    share one. Detections are every alarm episode, so an alarm raised (and cleared) before the
    onset does not hide a later one on the same joint.

    Returns
    -------
    rows : list of dict
        The injected faults with ``detected`` (and ``detected_on``, ``detected_type``,
        ``delay_s`` when detected).
    false_alarms : list of dict
        Detections of no fault that began before any fault did (all of them when none was
        injected).
    unexpected : list of dict
        Detections of no fault that began after a fault did (on another joint, say).

    """
    rows = []
    used = set()
    for fault in injected:
        start = fault['start_stamp']
        hit = None
        for k, det in enumerate(detections):
            same = fault['joint'] is None or det['group'] == fault['joint']
            if same and start is not None and det['since'] >= start - DETECTION_WINDOW_S:
                hit = k
                break
        row = dict(fault, detected=hit is not None)
        if hit is not None:
            used.add(hit)
            row.update(detected_on=detections[hit]['group'],
                       detected_type=detections[hit]['fault_type'],
                       delay_s=detections[hit]['since'] - start)
        rows.append(row)
    starts = [f['start_stamp'] for f in injected if f['start_stamp'] is not None]
    onset = min(starts) - DETECTION_WINDOW_S if starts else None
    false_alarms, unexpected = [], []
    for k, det in enumerate(detections):
        if k in used:
            continue
        before = not injected or onset is not None and det['since'] < onset
        (false_alarms if before else unexpected).append(det)
    return rows, false_alarms, unexpected


def tracking_summary(model, times, errors):
    """Return per-joint tracking statistics (rad): RMS, largest, 95th percentile."""
    out = {}
    for j, name in enumerate(model.joint_names):
        e = np.abs(errors[:, j]) if len(errors) else np.zeros(0)
        e = e[np.isfinite(e)]
        out[name] = {'samples': int(len(e)),
                     'rms_rad': float(np.sqrt(np.mean(e * e))) if len(e) else None,
                     'max_abs_rad': float(e.max()) if len(e) else None,
                     'p95_abs_rad': float(np.percentile(e, 95)) if len(e) else None}
    return out


def missing_parts(commands, times, values):
    """
    Return what the recording lacks for a full report, one sentence each (list of str).

    No position command: no tracking error (and no command limit check without any command);
    no /twin/plant_status: no timing and no injected faults (so an alarm cannot be told from a
    false alarm); a plant status without step counters: no timing figures.
    """
    out = []
    topics = ' or '.join(COMMAND_TOPICS)
    if not commands.total:
        out.append(f'no commands ({topics}) in the recording: no tracking error and no '
                   'command limit check')
    elif not commands.positions:
        out.append(f'{commands.total} commands but no position command the plant accepts '
                   '(one position for every joint it names, all finite): no tracking error')
    elif not len(times):
        out.append('no joint state after the first position command: no tracking error')
    if not values:
        out.append('no /twin/plant_status (twin/plant) in the recording: no timing, and the '
                   'injected faults are unknown (every alarm is listed as a false alarm)')
    elif 'steps' not in values:
        out.append('/twin/plant_status has no step counters: no timing figures')
    return out


def _detections(reader, bag, config, urdf, joint_states_topic, wrench_topic):
    """
    Return the live twin's alarms if recorded, else the replay's; their source; and a problem.

    A replay that fails gives no detections, no source (None) and the reason (else None).
    """
    live = recorded_alarms(reader, bag)
    if live is not None:
        return live['alarms'], 'the live twin (/twin/anomaly in the recording)', None
    try:
        report = replay(bag, config=config, urdf=urdf, joint_states_topic=joint_states_topic,
                        wrench_topic=wrench_topic)
    except ReplayError as exc:
        return [], None, f'detections are unavailable: the replay of the recording failed: {exc}'
    found = sorted(({'group': a['group'], 'fault_type': a['fault_type'], 'since': a['since'],
                     'source': 'replay'} for a in report['anomalies']), key=lambda a: a['since'])
    return found, 'a replay of the recording (no /twin/anomaly in it)', None


def build_report(bag, *, urdf='', config=None, joint_states_topic='/joint_states',
                 wrench_topic=None):
    """
    Return the HIL report of a recording (a dict of plain values) and its series for plots.

    ``joint_states_topic`` and ``wrench_topic`` (default: the config's) are the robot's topics,
    for the tracking error and for the replay that finds the detections.

    Raises
    ------
    ReplayError
        The recording, the URDF or the config (``config``, checked even when the recording has
        the live twin's alarms and no replay needs it) cannot be read, or the recording lacks
        the robot's joint states.

    """
    try:
        model = RobotModel.from_urdf(urdf_or_builtin(urdf))
    except (URDFError, FileNotFoundError) as exc:
        raise ReplayError(f'--urdf: {exc}') from None
    if config is not None:      # checked even when the recording's own alarms make it unused
        twin_parameters(config, urdf)
    reader, note = open_recording(bag)
    try:
        commands = read_commands(reader, bag, model, joint_states_topic)
        times, errors = tracking_errors(reader, bag, model, commands, joint_states_topic)
        values, start = plant_status(reader, bag)
        injected, problem = injected_faults(values, start)
        detections, source, unavailable = _detections(reader, bag, config, urdf,
                                                      joint_states_topic, wrench_topic)
    finally:
        reader.close()
    faults, false_alarms, unexpected = match_faults(injected, detections)
    if unavailable:
        for fault in faults:
            fault['detected'] = None        # unknown, not missed
    outside = {kind: {n: int(c) for n, c in zip(model.joint_names, counts) if c}
               for kind, counts in commands.outside.items()}
    report = {
        'recording': Path(bag).name, 'note': note, 'robot': Path(model.urdf_path).name,
        'tracking': tracking_summary(model, times, errors),
        'commands': {'total': commands.total, 'position_commands': commands.positions,
                     'rejected': commands.rejected,
                     'untracked_samples': commands.untracked,
                     'outside_limits': outside, 'examples': commands.examples},
        'timing': timing(values),
        'faults': {'injected': faults, 'false_alarms': false_alarms,
                   'detected_not_injected': unexpected, 'injected_known': bool(values),
                   'detections_from': source, 'scenario_problem': problem},
        'missing': missing_parts(commands, times, values),
    }
    if unavailable:
        report['missing'].append(unavailable)
    return report, (times, errors, detections, injected)


def write_plots(report, series, model_names, directory):
    """Write the report's plots (PNG, matplotlib Agg) into ``directory``; return their names."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    times, errors, detections, injected = series
    written = []

    def save(fig, name):
        fig.tight_layout()
        fig.savefig(Path(directory) / name, dpi=100)
        plt.close(fig)
        written.append(name)

    def empty(ax, text, y=0.5):
        """Write on the axes why they hold no data (or what they lack, above the data)."""
        ax.text(0.5, y, text, transform=ax.transAxes, ha='center', va='center', wrap=True,
                fontsize=9, color='0.3')

    commands = report['commands']
    fig, ax = plt.subplots(figsize=(9, 4))
    if len(times):
        for j, name in enumerate(model_names):
            ax.plot(times - times[0], errors[:, j], lw=0.7, label=name)
        ax.legend(fontsize=7, ncol=4)
    elif not commands['position_commands']:
        empty(ax, 'no position commands in the recording: no tracking error')
    else:
        empty(ax, 'no joint state after the first position command: no tracking error')
    ax.set(xlabel='time since the first command [s]', ylabel='measured - commanded [rad]',
           title='Tracking error per joint')
    save(fig, 'tracking_error.png')
    hist = (report['timing'] or {}).get('jitter_histogram')
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if hist:
        labels = [f'>={e}' for e in hist['lower_edges_us']]
        ax.bar(range(len(labels)), hist['counts'], log=True)
        ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    elif report['timing'] is None:
        empty(ax, 'no /twin/plant_status in the recording: no timing')
    else:
        empty(ax, f'no jitter histogram in the plant status (mode {report["timing"]["mode"]})')
    ax.set(xlabel='lateness of each physics step, its sample published or not [µs]',
           ylabel='physics steps',
           title='Plant jitter (real-time mode)\n' + counted_steps(report['timing'] or {}))
    save(fig, 'jitter_histogram.png')
    fig, ax = plt.subplots(figsize=(7, 3.5))
    outside = report['commands']['outside_limits']
    x = np.arange(len(model_names))
    for k, kind in enumerate(('position', 'velocity', 'effort')):
        counts = [outside.get(kind, {}).get(n, 0) for n in model_names]
        ax.bar(x + (k - 1) * 0.27, counts, width=0.27, label=kind)
    ax.set_xticks(x, model_names, fontsize=7)
    ax.set(ylabel='commands', title='Commands outside the URDF limits')
    ax.legend(fontsize=7)
    if not commands['total']:
        empty(ax, 'no commands in the recording')
    elif not outside:
        empty(ax, f'none of {commands["total"]} commands outside the limits')
    save(fig, 'command_limits.png')
    fig, ax = plt.subplots(figsize=(8, 3.5))
    rows = {n: k for k, n in enumerate(list(model_names) + ['wrench', 'stream', 'robot'])}
    starts = [f['start_stamp'] - f['start_s'] for f in injected if f['start_stamp'] is not None]
    origin = starts[0] if starts else min((d['since'] for d in detections), default=0.0)
    for f in injected:
        if f['start_stamp'] is not None:
            ax.plot(f['start_stamp'] - origin, rows.get(f['joint'] or 'robot'), 'kv', ms=9)
    for d in detections:
        ax.plot(d['since'] - origin, rows.get(d['group'], rows['robot']), 'r^', ms=9)
    ax.set_yticks(list(rows.values()), list(rows), fontsize=7)
    ax.set(xlabel='plant time [s]' if starts else 'time since the first detection [s]',
           title='Faults injected (black) and detected (red, at the start of exceedance)')
    known = report['faults'].get('injected_known', True)
    if report['faults']['detections_from'] is None:
        empty(ax, 'detections unavailable: the replay of the recording failed (report.json, '
              '"missing")', y=0.93 if injected else 0.5)
    elif not injected and not detections:
        empty(ax, 'no fault injected, none detected' if known else
              'no /twin/plant_status (injected faults unknown); none detected')
    elif not known:
        empty(ax, 'no /twin/plant_status in the recording: injected faults unknown', y=0.93)
    save(fig, 'faults.png')
    return written
