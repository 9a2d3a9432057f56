"""
Does the hub slow the twin? The twin beside a 1 kHz robot, without and with the hub under load.

The setting of benchmarks/bench_twin.py (its helpers are reused): a 1 kHz robot stand-in
(_robot_stream.py ``publish``), the twin as ``robot-twin up`` starts config/twin.yaml (one
process), and a receiver of /twin/residuals and of the raw /joint_states, on a private
localhost-only DDS domain. The ``hub`` configuration adds:

- the hub process (twin_hub) with every interface on: REST + dashboard, OPC UA, Foxglove;
- a load process (_hub_load.py, at nice 10: it stands in for clients on other machines):
  ``--rate`` REST GETs per second across the read endpoints, one live stream (server-sent
  events), an OPC UA client reading every axis 10 times a second, a Foxglove client subscribed
  to every channel.

Figures over the window, per configuration: the twin's CPU (cores), robot samples without a
residual, residual latency p50/p99 against the raw hop, the robot's own publish lateness; with
the hub also its CPU, the load's CPU, the requests answered and their latency.

Usage: ``.venv/bin/python benchmarks/bench_hub.py [--duration 20] [--warmup 8] [--runs 1]
[--rate 50] [--anomaly-model rules] [--skip NODES] [--wait-quiet CORES]``. Exits 0 when the
runs complete, 1 when a process failed.
"""
import argparse
import dataclasses
import json
import os
from pathlib import Path
import sys
import tempfile
import threading
import time

from bench_twin import _cpu_seconds, _figures, _Lines, _machine_busy, _stop_one, _wait_ready, \
    wait_until_quiet
import numpy as np
from robot_twin.bringup import node_command, ProcessGroup, with_override_files
from robot_twin.graph import describe_graph
from robot_twin.ros_env import free_domain_id, localhost_env
import yaml

HERE = Path(__file__).resolve().parent
STREAM = HERE / '_robot_stream.py'
LOAD = HERE / '_hub_load.py'
PORTS = {'api': 48180, 'opcua': 48181, 'foxglove': 48182}


class _HubLines(_Lines):
    """bench_twin's line collector, which also sees the load generator start (LOAD)."""

    def __init__(self, verbose):
        super().__init__(verbose)
        self.loading = threading.Event()

    def __call__(self, name, line):
        if name == 'load' and line.strip() == 'LOAD':
            self.loading.set()
            return
        super().__call__(name, line)


def _twin_commands(urdf, workdir, anomaly_model, skip=()):
    """
    Return the twin's process as robot-twin up starts config/twin.yaml.

    With twin_anomaly's model set to ``anomaly_model`` (unless ''), without the nodes named in
    ``skip``.
    """
    graph = describe_graph('twin', urdf=urdf, one_process=True)
    processes = []
    for p in graph.processes:
        nodes = tuple(dataclasses.replace(n, parameters={**n.parameters,
                                                         'model_path': anomaly_model})
                      if n.executable == 'twin_anomaly' and anomaly_model else n
                      for n in p.nodes if n.name not in skip)
        arguments = tuple(a for n in nodes for a in ('--node', f'{n.name}:{n.executable}')) \
            if '--node' in p.arguments else p.arguments
        processes.append(dataclasses.replace(p, nodes=nodes, arguments=arguments))
    return [(p.name, node_command(p)) for p in with_override_files(processes, workdir)]


def _hub_commands(workdir, rate, ports):
    params = Path(workdir) / 'hub.yaml'
    params.write_text(yaml.safe_dump({'/**/twin_hub': {'ros__parameters': {
        'api': {'address': f'127.0.0.1:{ports["api"]}'},
        'opcua': {'address': f'127.0.0.1:{ports["opcua"]}'},
        'foxglove': {'address': f'127.0.0.1:{ports["foxglove"]}'}}}}))
    hub = [sys.executable, '-m', 'robot_twin.nodes.hub_node', '--ros-args',
           '-r', '__node:=twin_hub', '--params-file', str(params)]
    # the clients stand in for other machines: niced, so that they take no CPU from the twin
    load = ['nice', '-n', '10', sys.executable, str(LOAD),
            '--url', f'http://127.0.0.1:{ports["api"]}',
            '--rate', str(rate), '--opcua', f'opc.tcp://127.0.0.1:{ports["opcua"]}/robot_twin/',
            '--foxglove', str(ports['foxglove']), '--output', str(Path(workdir) / 'load.json')]
    return [('twin_hub', hub), ('load', load)]


def run_once(with_hub, args, domain_id, workdir):
    """Run one configuration once; return a dict of figures (raises RuntimeError on failure)."""
    env = localhost_env(domain_id)
    pub_out = os.path.join(workdir, f'pub-{domain_id}.npz')
    rec_out = os.path.join(workdir, f'rec-{domain_id}.npz')
    commands = _twin_commands(args.urdf, workdir, args.anomaly_model, args.skip)
    twin = [name for name, _argv in commands]
    if with_hub:
        commands += _hub_commands(workdir, args.rate, PORTS)
    commands.append(('receiver', [sys.executable, str(STREAM), 'receive', '--output', rec_out]))
    commands.append(('robot', [sys.executable, str(STREAM), 'publish', '--output', pub_out,
                               '--rate-hz', str(args.rate_hz), '--urdf', args.urdf]))
    lines = _HubLines(args.verbose)
    group = ProcessGroup(commands, env, on_line=lines, stop_timeout_s=5.0)
    try:
        group.start()
        _wait_ready(group, lines, args.startup_timeout)
        if with_hub and not lines.loading.wait(args.startup_timeout):
            raise RuntimeError('the hub did not answer the load generator')
        time.sleep(args.warmup)
        pids = group.pids
        cpu0 = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        busy0, total0 = _machine_busy()
        t0_ns, m0 = time.time_ns(), time.monotonic()
        time.sleep(args.duration)
        t1_ns, m1 = time.time_ns(), time.monotonic()
        cpu1 = {name: _cpu_seconds(pid) for name, pid in pids.items()}
        busy1, total1 = _machine_busy()
        exited = group.poll()
        if exited is not None:
            raise RuntimeError('{} exited with {} during the measurement'.format(*exited))
        for name in ('load', 'robot'):
            _stop_one(group, name)
        time.sleep(0.5)
        _stop_one(group, 'receiver')
    except BaseException:
        group.stop(timeout_s=3.0)
        if lines.tail:
            print('\n'.join(lines.tail), file=sys.stderr)
        raise
    group.stop()
    figures = _figures(np.load(pub_out), np.load(rec_out), (t0_ns, t1_ns))
    wall = m1 - m0
    figures['cpu'] = {name: (cpu1[name] - cpu0[name]) / wall for name in pids
                      if cpu0[name] is not None and cpu1[name] is not None}
    figures['twin_cores'] = sum(figures['cpu'].get(name, 0.0) for name in twin)
    # CPU per robot sample: less sensitive to other load than cores (a starved twin handles
    # fewer samples, not cheaper ones)
    figures['twin_us_per_sample'] = 1e6 * figures['twin_cores'] * wall / max(
        figures['published'], 1)
    figures['machine_busy_cores'] = (os.cpu_count() or 1) * (busy1 - busy0) / max(
        total1 - total0, 1)
    if with_hub:
        figures['load'] = json.loads((Path(workdir) / 'load.json').read_text())
    return figures


def _row(label, runs):
    med = (lambda f: float(np.median([f(r) for r in runs])))
    published = med(lambda r: r['published'])
    text = (f'  {label:<22s} twin {med(lambda r: r["twin_cores"]):.3f} cores '
            f'({med(lambda r: r["twin_us_per_sample"]):.0f} us CPU per robot sample) | residual '
            f'p50/p99 {med(lambda r: r["twin"]["p50_ms"]):.3f}/'
            f'{med(lambda r: r["twin"]["p99_ms"]):.3f} ms (raw hop '
            f'{med(lambda r: r["raw"]["p50_ms"]):.3f}/{med(lambda r: r["raw"]["p99_ms"]):.3f}) | '
            f'missing {[r["twin"]["dropped"] for r in runs]} of {published:.0f} | robot late '
            f'p99 {med(lambda r: r["publish_late_p99_ms"]):.3f} ms | machine '
            f'{med(lambda r: r["machine_busy_cores"]):.2f} cores busy')
    print(text)
    if 'load' in runs[0]:
        load = runs[-1]['load']
        print(f'  {"":<22s} hub {med(lambda r: r["cpu"]["twin_hub"]):.3f} cores, load '
              f'generator {med(lambda r: r["cpu"]["load"]):.3f} cores; REST '
              f'{load["answered"]}/{load["sent"]} answered ({load["failed"]} failed) in '
              f'{load["seconds"]:.0f} s, p50/p99 {load["p50_ms"]:.1f}/{load["p99_ms"]:.1f} ms; '
              f'stream {load["stream_bytes"] / 1e3:.0f} kB; OPC UA reads {load["opcua_reads"]}; '
              f'Foxglove messages {load["foxglove_messages"]}'
              + (f'; errors {load["errors"]}' if load.get('errors') else ''))


def main():
    """Run both configurations (interleaved when --runs > 1); print one row each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument('--duration', type=float, default=20.0, help='measurement window, s')
    parser.add_argument('--warmup', type=float, default=8.0)
    parser.add_argument('--runs', type=int, default=1, help='runs per configuration')
    parser.add_argument('--rate', type=float, default=50.0, help='REST requests per second')
    parser.add_argument('--rate-hz', type=float, default=1000.0, help='robot rate')
    parser.add_argument('--urdf', default='')
    parser.add_argument('--skip', default='', type=lambda t: tuple(filter(None, t.split(','))),
                        metavar='NODES', help='leave these twin nodes out (e.g. twin_anomaly)')
    parser.add_argument('--anomaly-model', default='rules', metavar='MODEL',
                        help="twin_anomaly's model_path (default rules: the statistical "
                             "detector; '' keeps config/twin.yaml's)")
    parser.add_argument('--domain-id', type=int, default=None)
    parser.add_argument('--startup-timeout', type=float, default=90.0)
    parser.add_argument('--wait-quiet', type=float, default=None, metavar='CORES')
    parser.add_argument('--verbose', action='store_true')
    args = parser.parse_args()
    domain_id = free_domain_id() if args.domain_id is None else args.domain_id
    print(f'bench_hub: {args.rate_hz:g} Hz robot -> the twin (one process); with the hub: '
          f'{args.rate:g} REST requests/s + 1 stream + OPC UA 10 reads/s + Foxglove; '
          f'ROS_DOMAIN_ID={domain_id}; {args.duration:g} s window; load average '
          + ' / '.join(f'{v:.2f}' for v in os.getloadavg()))
    runs = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix='bench_hub-') as workdir:
        for _ in range(args.runs):
            for with_hub in (False, True):
                if args.wait_quiet is not None:
                    wait_until_quiet(args.wait_quiet)
                try:
                    runs[with_hub].append(run_once(with_hub, args, domain_id, workdir))
                except RuntimeError as exc:
                    print(f'bench_hub: {exc}', file=sys.stderr)
                    return 1
    print(f'\n== {args.runs} run(s) of {args.duration:g} s per configuration (median)')
    _row('twin alone', runs[False])
    _row('twin + hub under load', runs[True])
    return 0


if __name__ == '__main__':
    sys.exit(main())
