"""
``robot-twin up --api ...`` for real: the demo graph and the hub, real processes and real DDS.

``robot-twin up --config demo --localhost --domain-id N --api 127.0.0.1:PORT --api-token-file F``
runs the built-in demo plant, the demo controller, the one-process twin and the hub as a process
of its own, on a test-unique localhost-only domain, the twin keeping a lifecycle log. The test
reads the REST API until it shows the URDF's joints with measured and predicted values from the
running twin, switches corrective actions on and off (the twin's own writer logs both), then
sends SIGINT to ``up`` and checks that every process exits cleanly.
"""
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
from hub_testing import free_port, write_token
import pytest
from ros_harness import unique_domain_id, wait_until
from twin_bridge.ledger import read_ledger
from twin_sim.resources import builtin_urdf, config_dir
from twin_sim.urdf_model import RobotModel
import yaml

pytestmark = pytest.mark.integration
START_TIMEOUT_S = 180.0       # the whole demo graph on a loaded 2-core machine
STOP_TIMEOUT_S = 60.0


class _Output:
    """Collect the lines of a process's output on a thread."""

    def __init__(self, proc):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in iter(stream.readline, ''):
            self.lines.append(line.rstrip('\n'))

    def text(self, last=120):
        return '\n'.join(self.lines[-last:])


def _joints_with_values(client):
    try:
        joints = client.get('/api/v1/joints').json()
    except (httpx.HTTPError, ValueError):
        return None
    if all(j['measured'] and j['predicted'] for j in joints):
        return joints
    return None


def test_up_with_api_serves_the_running_twin_and_stops_cleanly(tmp_path):
    port = free_port()
    write_token(tmp_path / 'token')
    token = (tmp_path / 'token').read_text().strip()
    # the demo, the twin keeping a lifecycle log (the hub then cannot open it: one writer)
    config = yaml.safe_load((config_dir() / 'demo.yaml').read_text())
    ledger = tmp_path / 'ledger.jsonl'
    config['/**']['ros__parameters']['ledger_path'] = str(ledger)
    (tmp_path / 'demo.yaml').write_text(yaml.safe_dump(config))
    env = dict(os.environ)
    env.pop('ROS_DOMAIN_ID', None)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'robot_twin', 'up', '--config', str(tmp_path / 'demo.yaml'),
         '--localhost',
         '--domain-id', str(unique_domain_id()), '--api', f'127.0.0.1:{port}',
         '--api-token-file', str(tmp_path / 'token')],
        cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = _Output(proc)
    try:
        with httpx.Client(base_url=f'http://127.0.0.1:{port}', timeout=5.0) as client:
            def ready():
                assert proc.poll() is None, f'robot-twin up exited\n{output.text()}'
                return _joints_with_values(client)

            joints = wait_until(ready, START_TIMEOUT_S, 'joint values on /api/v1/joints',
                                seen=output.text)
            health = client.get('/api/v1/health').json()
            time.sleep(2.0)                  # a few display periods of history
            series = client.get('/api/v1/series', params={'since': 0}).json()
            assert client.get('/openapi.json').status_code == 200
            assert client.get('/').status_code == 200               # the dashboard
            # a write without the token is refused, not served
            assert client.put('/api/v1/corrective-actions',
                              json={'enabled': True}).status_code == 401
            # a switch made on the hub is in the twin's lifecycle log
            auth = {'Authorization': f'Bearer {token}'}
            wait_until(lambda: client.get('/api/v1/corrective-actions').json()['enabled']
                       is False, 60, 'the hub to read the bridge')
            for enabled in (True, False):
                answer = client.put('/api/v1/corrective-actions', json={'enabled': enabled},
                                    headers=auth)
                assert answer.status_code == 200, answer.text

            def switches():
                return [e.data for e in read_ledger(ledger)
                        if e.kind == 'corrective_actions_switched'] or None
            logged = wait_until(lambda: (lambda s: s if s and len(s) == 2 else None)(
                switches()), 30, 'both switches in the lifecycle log', seen=output.text)
            assert [e['enabled'] for e in logged] == ['true', 'false'], logged
            assert all(e['interface'] == 'REST' for e in logged), logged
            # maintenance declared on the hub reaches the twin's RUL monitor and its log
            answer = client.post('/api/v1/maintenance', headers=auth, json={
                'joint': joints[2]['name'], 'action': 'lubricate', 'note': 'hub_up test'})
            assert answer.status_code == 200, answer.text

            def maintenance():
                return [e.data for e in read_ledger(ledger)
                        if e.kind == 'maintenance_done'] or None
            done = wait_until(maintenance, 30, 'maintenance_done in the lifecycle log',
                              seen=output.text)
            assert done[0]['joint'] == joints[2]['name'] and done[0]['action'] == 'lubricate'
            assert done[0]['by'] == 'twin_hub (REST)' and done[0]['note'] == 'hub_up test'
        names = list(RobotModel.from_urdf(builtin_urdf()).joint_names)
        assert [j['name'] for j in joints] == names
        assert health['samples_received']['measured'] > 0
        # the bridge and the mirror show the same robot samples (one stamp grid), so most
        # measured samples the hub decoded have their prediction: the residual is exact
        measured = {round(stamp * 1e9) for stamp, _effort in series['measured']}
        predicted = {round(stamp * 1e9) for stamp, _effort in series['predicted']}
        assert len(measured) >= 10 and len(measured & predicted) >= len(measured) // 2
        started = next(line for line in output.lines if 'starting' in line)
        assert 'starting 4 process(es)' in started and 'twin_hub: twin_hub' in started
        assert f'[robot-twin up] dashboard  http://127.0.0.1:{port}/' in output.lines
        proc.send_signal(signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.returncode == 0, f'robot-twin up exited with {proc.returncode}\n' \
                                     f'{output.text()}'
    finally:
        if proc.poll() is None:             # up stops its processes on SIGTERM too
            proc.terminate()
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
        proc.wait()
