"""
The whole twin beside a 1 kHz robot: CPU of every twin process, samples without residual, latency.

Separate processes on one private, localhost-only DDS domain
(``robot_twin.ros_env.localhost_env``), on this machine's two cores:

- a robot stand-in (benchmarks/_robot_stream.py ``publish``): 1 kHz sensor_msgs/JointState
  (the built-in arm's 7 joints, or those of ``--urdf``) + 1 kHz geometry_msgs/WrenchStamped,
  paced precisely, stamped with the wall time at publication, data from the model so that the
  twin does its real work; exact readings unless ``--robot-noise SCALE`` adds white sensor
  noise, SCALE times the offline fault runs' (``robot_twin.fault_runs.NOISE``; 1 = 1e-4 rad,
  1e-3 rad/s, 0.05 N·m, wrench 0.2 N and 0.01 N·m; the figures in BENCHMARKS.md are of exact
  readings), and ``--robot-no-wrench`` makes it a robot without a force-torque sensor (no
  WrenchStamped);
- the twin as ``robot-twin up`` starts it from config/twin.yaml: by default ONE process
  (``twin_container``: twin_bridge, twin_sim, twin_anomaly), or one process per node
  (``--config separate``), or the one process with reliable 1 kHz outputs (``reliable``,
  through ``qos_overrides``), or on rclpy's SingleThreadedExecutor (``single-executor``,
  ROBOT_TWIN_EXECUTOR=single), or without its anomaly node (``no-anomaly``: bridge and mirror
  only, what the detector costs in place), or with the anomaly report and /twin/status at
  0.5 Hz and /twin/rul at 0.1 Hz instead of 10, 10 and 1 Hz (``rare-reports``: what the
  reports cost); or, in the twin's place, the relay of ``_relay.py``
  (``--config relay``: the issue's reference node, which takes the two streams and publishes
  the received bytes on the twin's two 1 kHz topics; the floor under the twin's figure on this
  machine);
- a receiver (_robot_stream.py ``receive``): reads /twin/residuals and /twin/wrench_residual, and
  the robot's own /joint_states (the raw hop of the same run, for comparison), all 10 deep
  (``--receiver-depth N`` reads the twin's outputs N deep: after a stall the twin sends its
  backlog's residuals back to back). It is the measuring instrument, and it takes the three
  1 kHz streams on the EventsExecutor (0.16 core; ``--receiver-executor single``, the
  SingleThreadedExecutor of the figures before 2026-12-05, takes 0.5 core and slows the twin
  beside it: BENCHMARKS.md). It also keeps the level of every /twin/anomaly report: the robot
  is nominal, so every report above OK is a false alarm.

After the receiver sees residuals and a warm-up, a window of ``--duration`` seconds. Figures
over the window (robot samples are identified by their stamps, which the twin passes through):

- CPU: utime + stime of every process over the window (/proc/<pid>/stat), in cores; the
  twin's total is the budget figure (goal <= 0.3 core, never > 0.5);
- samples without residual: robot samples published in the window with no /twin/residuals
  (goal: a residual for >= 99.9 %);
- latency: receive time minus robot stamp, p50/p99, for /twin/residuals and the raw hop
  (goal: twin p99 <= 2x raw p99);
- the robot's own pacing: publish lateness p50/p99 and how many samples it published (a twin
  that starves the robot shows here);
- the detector's verdicts: reports at ERROR and WARN in the window, and over the whole run
  which groups and channels went above OK and when.

``--stall-ms MS`` stops the twin's (first) process with SIGSTOP for MS milliseconds every
``--stall-every-s`` seconds (default 2) once the receiver sees residuals, and lets it go on with
SIGCONT: a twin starved for a moment (a loaded robot computer, a long page fault), to see what
it and its readers lose across such stalls.

Each run commissions afresh for ``--commissioning-s`` (default 8 s; config/twin.yaml has 30).
With ``--reuse-commissioning`` the runs after the first start from the first run's saved
calibration and thresholds, as a twin restarted beside the same robot does. ``--keep DIR``
copies each run's recordings (robot stamps and lateness, receive times, report levels) and the
twin's saved commissioning (``benchmarks/bench_stream_replay.py`` replays them).

Usage: ``.venv/bin/python benchmarks/bench_twin.py [--config one-process|separate|reliable|
single-executor|no-anomaly|rare-reports|
relay|all] [--duration 20] [--warmup S] [--runs 1] [--wait-quiet CORES]
[--receiver-executor events|single] [--commissioning-s 8] [--reuse-commissioning] [--keep DIR]
[--robot-noise SCALE] [--robot-no-wrench] [--stall-ms MS [--stall-every-s 2]]
[--receiver-depth 10]``
Exits 0 when the runs complete (goals met or not), 1 when a process failed.
"""
import argparse
import dataclasses
import os
from pathlib import Path
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings

import numpy as np
from robot_twin.bringup import node_command, ProcessGroup, with_override_files
from robot_twin.graph import config_path, describe_graph
from robot_twin.ros_env import free_domain_id, localhost_env
import yaml

HERE = Path(__file__).resolve().parent
STREAM = HERE / '_robot_stream.py'
RELIABLE = {f'qos_overrides./twin/{t}.publisher.reliability': 'reliable'
            for t in ('residuals', 'wrench_residual', 'predicted_joint_states',
                      'predicted_wrench', 'joint_states')}
CONFIGS = {
    'one-process': {'one_process': True},
    'separate': {'one_process': False},
    'reliable': {'one_process': True, 'parameters': RELIABLE},
    'single-executor': {'one_process': True, 'env': {'ROBOT_TWIN_EXECUTOR': 'single'}},
    'no-anomaly': {'one_process': True, 'nodes': ['twin_bridge', 'twin_sim']},
    'relay': {'relay': True},
    'rare-reports': {'one_process': True, 'parameters': {
        'publish_rate_hz': 0.5, 'status_rate_hz': 0.5, 'rul.publish_rate_hz': 0.1}},
}
"""What each configuration changes from the default bring-up of config/twin.yaml."""
COMMISSIONING_S = 8.0
"""Every run commissions afresh (files in its own directory) for this long by default
(``--commissioning-s``); the default warm-up outlasts it and the calibration fit, so the window
measures the twin in steady monitoring."""
GOAL_CORES, LIMIT_CORES, GOAL_SHARE, GOAL_P99 = 0.3, 0.5, 0.999, 2.0


def _cpu_seconds(pid):
    """Return user + system CPU time of process ``pid`` (all threads), s; None when gone."""
    try:
        with open(f'/proc/{pid}/stat', encoding='ascii') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _machine_busy():
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    with open('/proc/stat', encoding='ascii') as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def wait_until_quiet(limit_cores, max_wait_s=300.0, probe_s=2.0):
    """
    Wait until the machine is busier than ``limit_cores`` no more (or ``max_wait_s``).

    Returns the busy cores of the last probe (other people's work on a shared machine).
    """
    ncpu = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait_s
    while True:
        busy0, total0 = _machine_busy()
        time.sleep(probe_s)
        busy1, total1 = _machine_busy()
        busy = ncpu * (busy1 - busy0) / max(total1 - total0, 1)
        if busy <= limit_cores or time.monotonic() >= deadline:
            return busy


def _twin_commands(config, urdf, workdir, commissioning_s=COMMISSIONING_S, recommission=True):
    """Return (name, argv) of the twin's processes, as robot-twin up starts config/twin.yaml."""
    settings = CONFIGS[config]
    if settings.get('relay'):
        return [('relay', [sys.executable, str(HERE / '_relay.py')])]
    config_file = 'twin'
    if 'nodes' in settings:          # the same config with fewer nodes
        with open(config_path('twin'), encoding='utf-8') as f:
            loaded = yaml.safe_load(f)
        loaded['robot_twin']['ros__parameters']['nodes'] = settings['nodes']
        config_file = os.path.join(workdir, f'{config}.yaml')
        with open(config_file, 'w', encoding='utf-8') as f:
            yaml.safe_dump(loaded, f)
    graph = describe_graph(config_file, urdf=urdf, one_process=settings['one_process'])
    extra = dict(settings.get('parameters', {}))
    anomaly = {'commissioning_duration_s': commissioning_s, 'recommission': recommission,
               'thresholds_file': os.path.join(workdir, 'thresholds.yaml'),
               'rul.log_path': os.path.join(workdir, 'health.jsonl')}
    processes = [dataclasses.replace(p, nodes=tuple(
        dataclasses.replace(n, parameters={**n.parameters, **extra,
                                           **(anomaly if n.name == 'twin_anomaly' else {})})
        for n in p.nodes)) for p in graph.processes]
    return [(p.name, node_command(p)) for p in with_override_files(processes, workdir)]


class _Lines:
    """Collects child output: keeps the tail for error reports, flags READY."""

    def __init__(self, verbose):
        self.ready = threading.Event()
        self.tail = []
        self.verbose = verbose
        self._lock = threading.Lock()

    def __call__(self, name, line):
        if name == 'receiver' and line.strip() == 'READY':
            self.ready.set()
            return
        with self._lock:
            self.tail = (self.tail + [f'[{name}] {line}'])[-40:]
        if self.verbose:
            print(f'  [{name}] {line}', flush=True)


def _stop_one(group, name, timeout_s=10.0):
    proc = group.processes.get(name)
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        pass                                 # group.stop() kills it


def _wait_ready(group, lines, timeout_s):
    """Wait for the receiver's READY; raise RuntimeError if a process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not lines.ready.wait(0.2):
        exited = group.poll()
        if exited is not None:
            raise RuntimeError('{} exited with {} before the twin answered'.format(*exited))
        if time.monotonic() > deadline:
            raise RuntimeError(f'no /twin/residuals within {timeout_s:g} s')


def _stall(group, pid, stall_ms, every_s):
    """Stop ``pid`` (SIGSTOP) for ``stall_ms`` every ``every_s`` until the group ends."""
    while group.poll() is None:
        time.sleep(every_s)
        try:
            os.kill(pid, signal.SIGSTOP)
        except OSError:
            return                           # the process is gone
        time.sleep(stall_ms / 1000.0)
        try:
            os.kill(pid, signal.SIGCONT)
        except OSError:
            return


def run_once(config, args, domain_id, workdir, recommission=True):
    """Run one configuration once; return a dict of figures (raises RuntimeError on failure)."""
    env = localhost_env(domain_id)
    env.update(CONFIGS[config].get('env', {}))
    pub_out = os.path.join(workdir, f'pub-{domain_id}.npz')
    rec_out = os.path.join(workdir, f'rec-{domain_id}.npz')
    commands = _twin_commands(config, args.urdf, workdir, args.commissioning_s, recommission)
    twin = [name for name, _argv in commands]
    commands.append(('receiver', [sys.executable, str(STREAM), 'receive', '--output', rec_out,
                                  '--executor', args.receiver_executor,
                                  '--depth', str(args.receiver_depth)]))
    robot = [sys.executable, str(STREAM), 'publish', '--output', pub_out, '--rate-hz',
             str(args.rate_hz), '--urdf', args.urdf, '--noise', str(args.robot_noise)]
    if args.robot_no_wrench:
        robot += ['--wrench-topic', '']          # '': the robot publishes no wrench
    commands.append(('robot', robot))
    lines = _Lines(args.verbose)
    group = ProcessGroup(commands, env, on_line=lines, stop_timeout_s=5.0)
    try:
        group.start()
        _wait_ready(group, lines, args.startup_timeout)
        if args.stall_ms:
            threading.Thread(target=_stall, args=(group, group.pids[twin[0]], args.stall_ms,
                                                  args.stall_every_s), daemon=True).start()
        time.sleep(args.warmup)
        if group.poll() is not None:
            raise RuntimeError('{} {}'.format(*group.poll()))
        pids = group.pids
        cpu0 = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        busy0, total0 = _machine_busy()
        t0_ns, m0 = time.time_ns(), time.monotonic()
        time.sleep(args.duration)
        t1_ns, m1 = time.time_ns(), time.monotonic()
        cpu1 = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        busy1, total1 = _machine_busy()
        load = os.getloadavg()
        exited = group.poll()
        if exited is not None:
            raise RuntimeError('{} exited with {} during the measurement'.format(*exited))
        _stop_one(group, 'robot')
        time.sleep(0.5)                      # let the last samples arrive
        _stop_one(group, 'receiver')
    except BaseException:
        group.stop(timeout_s=3.0)
        if lines.tail:
            print('\n'.join(lines.tail), file=sys.stderr)
        raise
    group.stop()
    if not (os.path.exists(pub_out) and os.path.exists(rec_out)):
        raise RuntimeError('the robot or the receiver wrote no results')
    pub, rec = np.load(pub_out), np.load(rec_out)
    if args.keep:                       # the raw recordings, for a closer look
        os.makedirs(args.keep, exist_ok=True)
        prefix = os.path.join(args.keep, f'{config}-{time.strftime("%H%M%S")}-')
        for path in (pub_out, rec_out):
            shutil.copy(path, prefix + os.path.basename(path))
        thresholds = os.path.join(workdir, 'thresholds.yaml')
        if os.path.exists(thresholds):  # what the twin commissioned (bench_stream_replay.py)
            shutil.copy(thresholds, prefix + f'thresholds-{domain_id}.yaml')
    window = (t0_ns, t1_ns)
    wall = m1 - m0
    figures = _figures(pub, rec, window)
    figures['cpu'] = {name: (cpu1[name] - cpu0[name]) / wall
                      for name in pids if cpu0[name] is not None and cpu1[name] is not None}
    # CPU time per robot sample the process handled: less sensitive to a busy machine than
    # the fraction of a core (a starved process handles fewer samples, not cheaper ones)
    figures['twin_cores'] = sum(figures['cpu'][name] for name in twin if name in figures['cpu'])
    figures['twin_processes'] = twin
    figures['cpu_us_per_sample'] = {
        name: 1e6 * (cpu1[name] - cpu0[name]) / max(figures['published'], 1)
        for name in figures['cpu']}
    ncpu = os.cpu_count() or 1
    figures['machine_busy_cores'] = ncpu * (busy1 - busy0) / max(total1 - total0, 1)
    figures['other_cores'] = max(0.0, figures['machine_busy_cores'] - sum(figures['cpu'].values()))
    # /proc/stat of a virtual machine can miss time now and then: a machine that reads less busy
    # than the measured processes alone says nothing about other processes in that run
    figures['machine_read_low'] = (figures['machine_busy_cores']
                                   < 0.9 * sum(figures['cpu'].values()))
    figures['loadavg'] = load
    return figures


def _in(stamps, window):
    return (stamps >= window[0]) & (stamps < window[1])


def _latency(rec, prefix, window, published):
    stamp, recv = rec[f'{prefix}_stamp_ns'], rec[f'{prefix}_recv_ns']
    sel = _in(stamp, window)
    stamp, recv = stamp[sel], recv[sel]
    received = np.unique(stamp)
    lat_ms = (recv - stamp) * 1e-6
    return {'received': int(received.size),
            'dropped': int(published.size - np.intersect1d(published, received).size),
            'foreign': int(np.setdiff1d(received, published).size),
            'p50_ms': float(np.percentile(lat_ms, 50)) if lat_ms.size else float('nan'),
            'p99_ms': float(np.percentile(lat_ms, 99)) if lat_ms.size else float('nan'),
            'max_ms': float(lat_ms.max()) if lat_ms.size else float('nan')}


def _tail_near_reports(rec, window, within_ms=5.0):
    """
    Return the share of the slowest 1 % of the residuals stamped near a /twin/anomaly report.

    Near: within ``within_ms`` of a report's receive time. The reports run on the thread that
    takes the samples, so this says how much of the residuals' p99 they make (NaN without
    reports).
    """
    stamp, recv = rec['res_stamp_ns'], rec['res_recv_ns']
    sel = _in(stamp, window)
    stamp, lat = stamp[sel], (recv[sel] - stamp[sel])
    reports = np.sort(rec['anomaly_recv_ns'])
    if not stamp.size or not reports.size:
        return float('nan')
    late = stamp[lat >= np.percentile(lat, 99)]
    i = np.searchsorted(reports, late)           # reports[i - 1] <= late < reports[i]
    padded = np.r_[reports[0], reports, reports[-1]]
    nearest = np.minimum(np.abs(late - padded[i]), np.abs(padded[i + 1] - late))
    return float(np.mean(nearest <= within_ms * 1e6))


def _figures(pub, rec, window):
    published = pub['stamp_ns'][_in(pub['stamp_ns'], window)]
    late_ms = pub['late_ns'][_in(pub['stamp_ns'], window)] * 1e-6
    out = {'published': int(published.size),
           'publish_late_p50_ms': float(np.percentile(late_ms, 50)),
           'publish_late_p99_ms': float(np.percentile(late_ms, 99)),
           'raw': _latency(rec, 'raw', window, published),
           'twin': _latency(rec, 'res', window, published),
           'wrench': _latency(rec, 'wres', window, published)}
    res = rec['res_max_effort'][_in(rec['res_max_effort_stamp_ns'], window)]
    out['residual_p99_Nm'] = float(np.percentile(res, 99)) if res.size else float('nan')
    out['tail_near_reports'] = _tail_near_reports(rec, window)
    # the detector's verdicts on this nominal robot (no anomaly node: no reports)
    level = rec['anomaly_level'][_in(rec['anomaly_recv_ns'], window)]
    out['reports'] = int(level.size)
    out['reports_warn'] = int((level == 1).sum())
    out['reports_error'] = int((level >= 2).sum())
    t_all, l_all = rec['anomaly_recv_ns'], rec['anomaly_level']
    err = (t_all[l_all >= 2] - t_all[0]) * 1e-9 if t_all.size else np.zeros(0)
    out['error_span_s'] = (float(err.min()), float(err.max())) if err.size else None
    out['window_from_first_report_s'] = ((window[0] - t_all[0]) * 1e-9 if t_all.size
                                         else float('nan'))
    out['alarm_messages'] = [str(m) for m in rec['anomaly_messages']]   # whole run
    return out


def _median(runs, *path):
    values = []
    for run in runs:
        value = run
        for key in path:
            value = value[key]
        values.append(value)
    return float(np.median(values))


def _print_table(config, runs, duration):
    med = (lambda *path: _median(runs, *path))
    raw99, tw99 = med('raw', 'p99_ms'), med('twin', 'p99_ms')
    cores = med('twin_cores')
    missing = [r['twin']['dropped'] for r in runs]
    share = 1.0 - max(missing) / max(med('published'), 1)
    ok = (cores <= GOAL_CORES, share >= GOAL_SHARE, tw99 <= GOAL_P99 * raw99)
    mark = (lambda good: 'meets goal' if good else 'MISSES goal')
    label = f'{len(runs)} run(s) of {duration:g} s, median' if len(runs) > 1 else \
        f'{duration:g} s window'
    print(f'\n== {config} ({", ".join(runs[0]["twin_processes"])}): {label}')
    print(f'  robot samples published      {med("published"):10.0f}   (publish lateness p50 '
          f'{med("publish_late_p50_ms"):.3f} ms, p99 {med("publish_late_p99_ms"):.3f} ms)')
    print(f'  {"stream":<30s}{"received":>10s}{"missing":>9s}{"p50 ms":>9s}{"p99 ms":>9s}'
          f'{"max ms":>9s}')
    for key, name in (('raw', 'raw /joint_states hop'), ('twin', '/twin/residuals'),
                      ('wrench', '/twin/wrench_residual')):
        if key == 'wrench' and not any(r['wrench']['received'] for r in runs):
            print(f'  {name:<30s}  none (no force-torque sensor in the model, or '
                  '--robot-no-wrench)')
            continue
        print(f'  {name:<30s}{med(key, "received"):10.0f}{med(key, "dropped"):9.0f}'
              f'{med(key, "p50_ms"):9.3f}{med(key, "p99_ms"):9.3f}{med(key, "max_ms"):9.3f}')
    print(f'  twin CPU                      {cores:.3f} cores ({mark(ok[0])} <= {GOAL_CORES}; '
          f'limit {LIMIT_CORES}); per process: ' + ', '.join(
              f'{n} {med("cpu", n):.3f}' for n in runs[0]['twin_processes']))
    print(f'  samples with a residual       {100 * share:.3f} % of robot samples ({mark(ok[1])} '
          f'>= {100 * GOAL_SHARE:g} %); missing per run {missing}')
    print(f'  twin / raw latency p99        {tw99 / raw99:.2f}x ({mark(ok[2])} <= {GOAL_P99}x); '
          f'p50 {med("twin", "p50_ms") / med("raw", "p50_ms"):.2f}x')
    near = [r['tail_near_reports'] for r in runs]
    if not np.isnan(near).all():
        print('  slowest 1 % of the residuals  '
              + ', '.join(f'{100 * v:.0f} %' for v in near)
              + ' per run within 5 ms of a /twin/anomaly report')
    others = ', '.join(f'{name} {med("cpu", name):.2f}' for name in runs[0]['cpu']
                       if name not in runs[0]['twin_processes'])
    print(f'  harness CPU (cores)           {others}')
    print(f'  machine: busy {med("machine_busy_cores"):.2f} of {os.cpu_count()} cores over the '
          f'window, of which other processes {med("other_cores"):.2f}; load average at its end '
          + ' / '.join(f'{v:.2f}' for v in runs[-1]['loadavg']))
    low = [k for k, r in enumerate(runs, start=1) if r.get('machine_read_low')]
    if low:
        print(f'  (run(s) {low}: the machine read less busy than the measured processes alone; '
              '/proc/stat missed time there, so "other processes" is unknown for them)')
    print(f'  residual sanity: p99 of max |effort residual| {med("residual_p99_Nm"):.3f} N·m')
    if any(r['reports'] for r in runs):
        print('  detector on the nominal robot: reports at ERROR / WARN / all per run '
              + ', '.join(f'{r["reports_error"]} / {r["reports_warn"]} / {r["reports"]}'
                          for r in runs))
        for k, r in enumerate(runs, start=1):
            if r['alarm_messages']:
                span = r['error_span_s']
                when = '' if span is None else (
                    f'; reports at ERROR from {span[0]:.1f} to {span[1]:.1f} s after the first '
                    f'report (the window starts at {r["window_from_first_report_s"]:.1f} s)')
                print(f'    run {k}, statuses above OK (whole run): '
                      + '; '.join(r['alarm_messages'][:8]) + when)
    if len(runs) > 1:
        for k, r in enumerate(runs, start=1):
            print(f'    run {k}: twin {r["twin_cores"]:.3f} cores; other processes '
                  f'{r["other_cores"]:.2f} cores; missing {r["twin"]["dropped"]}; raw p50/p99 '
                  f'{r["raw"]["p50_ms"]:.3f}/{r["raw"]["p99_ms"]:.3f} ms; twin p50/p99 '
                  f'{r["twin"]["p50_ms"]:.3f}/{r["twin"]["p99_ms"]:.3f} ms')
    foreign = max(r[key]['foreign'] for r in runs for key in ('raw', 'twin', 'wrench'))
    if foreign:
        print(f'  WARNING: {foreign} messages with stamps this robot never published: another '
              'publisher on the domain (pass --domain-id)')
    return all(ok)


def main():
    """Run the configurations, print a table per configuration."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--config', choices=('all', *CONFIGS), default='one-process')
    parser.add_argument('--duration', type=float, default=20.0, help='measurement window, s')
    parser.add_argument('--warmup', type=float, default=None,
                        help='seconds after the first residual before the window (default: '
                             'the commissioning time + 8 s)')
    parser.add_argument('--commissioning-s', type=float, default=COMMISSIONING_S,
                        help="the anomaly node's commissioning time, s (config/twin.yaml has "
                             f'30; default {COMMISSIONING_S:g}: shorter runs)')
    parser.add_argument('--runs', type=int, default=1, help='runs per configuration')
    parser.add_argument('--rate-hz', type=float, default=1000.0)
    parser.add_argument('--urdf', default='', metavar='PATH',
                        help='robot model of the synthetic robot and the twin (default: the '
                             'built-in arm)')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID of the run (default: from the process id)')
    parser.add_argument('--startup-timeout', type=float, default=60.0)
    parser.add_argument('--wait-quiet', type=float, default=None, metavar='CORES',
                        help='before each run, wait (up to 5 min) until the machine is busy '
                             'with at most this many cores (a shared machine)')
    parser.add_argument('--receiver-executor', choices=('events', 'single'), default='events',
                        help="the measuring receiver's executor: events (EventsExecutor, "
                             'lean: since 2026-12-05) or single (SingleThreadedExecutor, as in '
                             'the figures before)')
    parser.add_argument('--reuse-commissioning', action='store_true',
                        help='the runs after the first start from its saved calibration and '
                             'thresholds (a restarted twin), instead of commissioning afresh')
    parser.add_argument('--keep', default='', metavar='DIR',
                        help="copy each run's recordings (robot stamps and lateness, receive "
                             'times, reports) to DIR')
    parser.add_argument('--robot-noise', type=float, default=0.0, metavar='SCALE',
                        help="the robot stand-in's white sensor noise, SCALE times the fault "
                             "runs' (robot_twin.fault_runs.NOISE; default 0: exact readings)")
    parser.add_argument('--robot-no-wrench', action='store_true',
                        help='the robot stand-in publishes no wrench (no force-torque sensor)')
    parser.add_argument('--receiver-depth', type=int, default=10, metavar='N',
                        help="queue depth at which the receiver reads the twin's outputs "
                             '(default 10)')
    parser.add_argument('--stall-ms', type=float, default=0.0, metavar='MS',
                        help="stop the twin's process (SIGSTOP) for MS ms every "
                             '--stall-every-s seconds (default 0: never)')
    parser.add_argument('--stall-every-s', type=float, default=2.0, metavar='S')
    parser.add_argument('--verbose', action='store_true', help="show the nodes' output")
    args = parser.parse_args()
    if args.stall_ms < 0 or args.stall_every_s <= 0:
        parser.error('--stall-ms must be >= 0 and --stall-every-s > 0')
    if args.receiver_depth < 1:
        parser.error('--receiver-depth must be >= 1')
    if args.warmup is None:
        args.warmup = args.commissioning_s + 8.0
    domain_id = free_domain_id() if args.domain_id is None else args.domain_id
    configs = list(CONFIGS) if args.config == 'all' else [args.config]
    wrench = '' if args.robot_no_wrench else ' + WrenchStamped'
    from twin_sim.resources import urdf_or_builtin
    from twin_sim.urdf_model import RobotModel
    try:
        with warnings.catch_warnings():          # (the twin says what it makes of the URDF)
            warnings.simplefilter('ignore')
            joints = RobotModel.from_urdf(urdf_or_builtin(args.urdf)).n   # what the robot sends
    except (OSError, ValueError) as exc:              # URDFError is a ValueError
        parser.error(f'--urdf: {exc}')
    print(f'bench_twin: {args.rate_hz:g} Hz JointState ({joints} joints){wrench} -> the twin '
          f'(config/twin.yaml); ROS_DOMAIN_ID={domain_id}, localhost only; '
          f'{args.commissioning_s:g} s commissioning, {args.warmup:g} s warm-up, '
          f'{args.duration:g} s window; load average '
          + ' / '.join(f'{v:.2f}' for v in os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix='bench_twin-') as workdir:
        for config in configs:
            runs = []
            for _ in range(args.runs):
                if args.wait_quiet is not None:
                    wait_until_quiet(args.wait_quiet)
                try:
                    # --reuse-commissioning: the runs after the first load its calibration
                    # and thresholds, as a twin restarted beside the same robot does
                    runs.append(run_once(config, args, domain_id, workdir,
                                         recommission=not (args.reuse_commissioning and runs)))
                except RuntimeError as exc:
                    print(f'bench_twin: {config}: {exc}', file=sys.stderr)
                    return 1
            _print_table(config, runs, args.duration)
    return 0


if __name__ == '__main__':
    sys.exit(main())
