"""
What-if and commissioning on a real Ray cluster (a head node on this machine, localhost only).

Ray turns a loopback cluster address into the machine's own network address unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (it then keeps everything on 127.0.0.1): the module sets
it for the head and for this process before Ray is first imported.
"""
import json
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest
from robot_twin.commissioning import commission_across_variants
from robot_twin.whatif import run_whatif, scenario_from_dict
from robot_twin.whatif_cli import main as whatif_main

ROOT = Path(__file__).resolve().parents[1]
URDF = ROOT / 'urdf' / 'robot_twin_arm.urdf'
RAY = Path(sys.executable).with_name('ray')
POSE = [0.0, 0.8, 0.0, -1.0, 0.0, 0.5, 0.0]


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _scenario(**changes):
    data = {'name': 'ray_small', 'duration_s': 0.8,
            'trajectory': {'type': 'demo_motion', 'fraction': 0.3, 'period_s': 1.0,
                           'fade_in_s': 0.2, 'center': POSE},
            'randomization': 'default', 'detector': {'commissioning_duration_s': 0.4}}
    data.update(changes)
    return scenario_from_dict(data, 'test', ROOT)


LOCAL_ONLY = {'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER': '0', 'RAY_USAGE_STATS_ENABLED': '0'}


@pytest.fixture(scope='module')
def ray_head():
    """Start a Ray head in its own process group (127.0.0.1, own temp dir, no dashboard)."""
    assert RAY.exists(), f'{RAY} missing: Ray is a test dependency (requirements-dev.txt)'
    if 'ray' in sys.modules:
        from ray._private import ray_constants
        assert not ray_constants.ENABLE_RAY_CLUSTER, 'Ray was imported before this module'
    saved = {k: os.environ.get(k) for k in list(LOCAL_ONLY) + ['RAY_ADDRESS']}
    os.environ.update(LOCAL_ONLY)
    os.environ.pop('RAY_ADDRESS', None)
    port = _free_port()
    temp = tempfile.mkdtemp(prefix='rt_ray_', dir='/tmp')   # short: Ray's socket paths
    env = dict(os.environ)
    head = subprocess.Popen(
        [str(RAY), 'start', '--head', '--block', '--node-ip-address=127.0.0.1',
         f'--port={port}', f'--temp-dir={temp}', '--include-dashboard=false', '--num-cpus=2',
         '--disable-usage-stats',
         f'--node-manager-port={_free_port()}', f'--object-manager-port={_free_port()}',
         # every fixed port of Ray's is given too: a free port picked here once came out as
         # the dashboard agent's default (52365), and Ray refused to start
         f'--dashboard-agent-listen-port={_free_port()}',
         f'--dashboard-agent-grpc-port={_free_port()}',
         f'--runtime-env-agent-port={_free_port()}', f'--metrics-export-port={_free_port()}',
         '--min-worker-port=0', '--max-worker-port=0'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    address = f'127.0.0.1:{port}'
    try:
        _wait_for_head(head, port)
        yield address
    finally:
        _stop(head, temp)
        shutil.rmtree(temp, ignore_errors=True)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _wait_for_head(head, port, timeout_s=90.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f'ray start exited {head.returncode}: '
                               f'{head.stdout.read().decode(errors="replace")[-2000:]}')
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0:
                time.sleep(2.0)          # the raylet registers a moment after the GCS port
                return
        time.sleep(0.5)
    raise RuntimeError('the Ray head did not come up in time')


def _stop(head, temp):
    """Stop every process of the head's session (its own process group), then check."""
    for sig, grace_s in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(head.pid, sig)
        except ProcessLookupError:
            break
        try:
            head.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
        try:                     # the head is gone; its group may still have members
            os.killpg(head.pid, 0)
        except ProcessLookupError:
            break
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline and _session_processes(temp):
        time.sleep(0.5)
    for pid in _session_processes(temp):        # a straggler that left the group: by its id
        os.kill(pid, signal.SIGKILL)


def _session_processes(temp):
    out = []
    for entry in Path('/proc').iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / 'cmdline').read_bytes().decode(errors='replace')
            except OSError:
                continue
            if temp in cmd:
                out.append(int(entry.name))
    return out


def test_sweep_on_a_ray_cluster_equals_local_processes(ray_head):
    scenario = _scenario()
    on_ray = run_whatif(scenario, 4, urdf=URDF, seed=7, ray_address=ray_head)
    local = run_whatif(scenario, 4, urdf=URDF, seed=7, workers=2)
    assert on_ray.run['backend'] == 'ray' and local.run['backend'].startswith('processes')
    assert [s.index for s in on_ray.samples] == [0, 1, 2, 3]
    assert json.dumps(on_ray.summary, sort_keys=True) == json.dumps(local.summary,
                                                                    sort_keys=True)


def test_cli_and_commissioning_on_the_cluster(ray_head, tmp_path, capsys):
    status = whatif_main(['--scenario', 'payload_sweep', '--samples', '2', '--seed', '3',
                          '--ray', ray_head, '--output', str(tmp_path / 'out'), '--no-plots'])
    assert status == 0
    captured = capsys.readouterr()
    assert 'on ray' in captured.out
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['samples'] == 2 and summary['failed'] == []
    scenario = _scenario(duration_s=1.5, detector={'commissioning_duration_s': 0.5})
    on_ray = commission_across_variants(scenario, 3, tmp_path / 'ray.yaml', holdout=1, urdf=URDF,
                                        seed=5, ray_address=ray_head)
    local = commission_across_variants(scenario, 3, tmp_path / 'local.yaml', holdout=1,
                                       urdf=URDF, seed=5)
    channels = [(tmp_path / name).read_text().split('channels:')[1]
                for name in ('ray.yaml', 'local.yaml')]
    assert channels[0] == channels[1]
    assert repr(on_ray.holdout) == repr(local.holdout)


def test_unreachable_cluster_is_a_clear_error(ray_head, capsys):
    status = whatif_main(['--scenario', 'payload_sweep', '--samples', '1',
                          '--ray', f'127.0.0.1:{_free_port()}'])
    assert status == 2
    assert 'cannot connect to the Ray cluster' in capsys.readouterr().err
