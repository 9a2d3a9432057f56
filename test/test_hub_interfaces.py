"""
The hub's interfaces against a real twin_hub process, over real DDS and real servers.

One twin_hub process (REST with a token, OPC UA, Foxglove, all on free ports of 127.0.0.1) and a
real twin_bridge (whose corrective_actions.enabled the hub sets) run on a test-unique
ROS_DOMAIN_ID; the test process plays the twin's low-rate topics (hub_testing.TwinPlayer) and
checks what each interface shows against what it published.
"""
import asyncio
import json
from pathlib import Path
import struct
import subprocess
import sys
import time

import httpx
from hub_testing import free_port, JOINTS, node_argv, running_hub, wait_http, write_token
import pytest
from ros_harness import wait_until
from twin_bridge.ledger import Ledger, read_ledger
import websockets

pytestmark = pytest.mark.integration
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    """Start a hub beside a real twin_bridge, fed by a TwinPlayer; stopped at the end."""
    workdir = tmp_path_factory.mktemp('hub')
    token = write_token(workdir / 'token')
    ports = {name: free_port() for name in ('api', 'opcua', 'foxglove')}
    parameters = {'api.address': f'127.0.0.1:{ports["api"]}',
                  'api.token_file': str(workdir / 'token'),
                  'opcua.address': f'127.0.0.1:{ports["opcua"]}',
                  'foxglove.address': f'127.0.0.1:{ports["foxglove"]}',
                  'whatif.output_dir': str(workdir / 'whatif'), 'whatif.max_samples': 2,
                  'ledger_path': str(workdir / 'ledger.jsonl')}
    with Ledger(workdir / 'ledger.jsonl', durable=False) as ledger:    # the twin wrote these
        ledger.append('start', {'component': 'twin_bridge'})
        ledger.append('anomaly_raised', {'joint': 'joint3', 'fault_type': 'friction_like'})
    bridge = node_argv('robot_twin.nodes.bridge_node', 'twin_bridge')
    with running_hub(workdir, parameters, extra=[('twin_bridge', bridge)], status=False) as (
            process, observer, player):
        base = f'http://127.0.0.1:{ports["api"]}'
        wait_http(f'{base}/api/v1/health', process)
        with httpx.Client(base_url=base, timeout=10.0) as client:
            wait_until(lambda: client.get('/api/v1/health').json()
                       ['samples_received']['measured'] > 5, 60, 'joint samples at the hub')
            yield type('Hub', (), {'process': process, 'observer': observer, 'player': player,
                                   'client': client, 'token': token, 'ports': ports,
                                   'ledger': workdir / 'ledger.jsonl',
                                   'auth': {'Authorization': f'Bearer {token}'}})


def test_rest_reads_follow_the_published_twin(hub):
    first = hub.client.get('/api/v1/joints').json()
    assert [j['name'] for j in first] == JOINTS

    def moved():
        later = hub.client.get('/api/v1/joints').json()
        return later[0]['measured']['stamp'] > first[0]['measured']['stamp'] and \
            later[0]['measured']['position'] != first[0]['measured']['position']

    wait_until(moved, 30, 'the joint state to move')
    joint = hub.client.get('/api/v1/joints/joint2').json()
    published = hub.player.positions_at(joint['measured']['stamp'])
    assert published is not None and joint['measured']['position'] == published[1]
    # residual = measured - predicted of the same sample: the player's offset of 0.05 N·m
    assert joint['residual']['effort'] == pytest.approx(0.05, abs=1e-9)
    rul = hub.client.get('/api/v1/rul').json()['joints']
    wait_until(lambda: hub.client.get('/api/v1/rul').json()['joints'], 30, 'RUL')
    rul = hub.client.get('/api/v1/rul').json()['joints']
    assert rul['joint3']['rul_hours'] == pytest.approx(1180.0)
    assert rul['joint3']['due_by'] == '2027-03-01'
    assert hub.client.get('/api/v1/joints/joint9').status_code == 404


def test_an_injected_fault_is_an_anomaly_of_its_joint(hub):
    hub.player.set_fault('joint3', 'friction_like')

    def episode():
        active = hub.client.get('/api/v1/anomalies', params={'active': True}).json()
        return [e for e in active['episodes'] if e['joint'] == 'joint3']

    found = wait_until(episode, 30, 'an active anomaly on joint3')
    assert found[0]['fault_type'] == 'friction_like' and found[0]['active']
    others = [e for e in hub.client.get('/api/v1/anomalies').json()['episodes']
              if e['joint'] != 'joint3']
    assert others == []
    joint3 = hub.client.get('/api/v1/joints/joint3').json()
    assert joint3['anomaly']['level'] == 'ERROR'
    # the anomaly (5 Hz) may reach the hub before the first faulty joint sample pair (50 Hz,
    # decoded at the hub's own rate): wait for the residual to follow, then it is exact

    def faulty_residual():
        effort = hub.client.get('/api/v1/joints/joint3').json()['residual']['effort']
        return effort if abs(effort - 3.05) < 1e-6 else None

    effort = wait_until(faulty_residual, 10, "joint3's residual with the fault's offset")
    assert effort == pytest.approx(3.05, abs=1e-9)


def test_writes_need_the_token_and_a_well_formed_body(hub):
    hub.player.set_fault('joint3', 'friction_like')
    episode = wait_until(lambda: hub.client.get('/api/v1/anomalies').json()['episodes'], 30,
                         'an anomaly episode')[0]
    url = f'/api/v1/anomalies/{episode["id"]}/acknowledge'
    missing = hub.client.post(url, json={'note': 'x'})
    assert missing.status_code == 401 and 'Bearer' in missing.json()['detail']
    assert missing.headers['www-authenticate'].startswith('Bearer')
    wrong = hub.client.post(url, json={'note': 'x'}, headers={'Authorization': 'Bearer nope'})
    assert wrong.status_code == 401 and wrong.json()['detail'] == 'wrong bearer token'
    bad = hub.client.post(url, json={'note': 5, 'extra': 1}, headers=hub.auth)
    assert bad.status_code == 422 and isinstance(bad.json()['detail'], list)
    not_json = hub.client.post(url, content=b'{not json', headers={
        **hub.auth, 'Content-Type': 'application/json'})
    assert not_json.status_code == 422
    unknown = hub.client.post('/api/v1/anomalies/99999/acknowledge', json={}, headers=hub.auth)
    assert unknown.status_code == 404
    done = hub.client.post(url, json={'note': 'seen by maintenance'}, headers=hub.auth)
    assert done.status_code == 200, done.text
    assert done.json()['acknowledged_by'] == 'api'
    stored = hub.client.get(f'/api/v1/anomalies/{episode["id"]}').json()
    assert stored['note'] == 'seen by maintenance' and stored['acknowledged_at'] is not None
    assert done.json()['ledger_error'] is None       # nobody else held the log: written
    entries = read_ledger(hub.ledger)
    assert [e.kind for e in entries] == ['start', 'anomaly_raised', 'anomaly_acknowledged']
    assert entries[-1].data['note'] == 'seen by maintenance'

    def shown():
        kinds = [e.get('kind') for e in hub.client.get('/api/v1/ledger').json()['entries']]
        return kinds == ['start', 'anomaly_raised', 'anomaly_acknowledged']

    wait_until(shown, 30, 'the lifecycle log on the API')


def _bridge_corrective(observer):
    """Read corrective_actions.enabled from twin_bridge's own parameter service."""
    from rcl_interfaces.srv import GetParameters
    client = observer.node.create_client(GetParameters, '/twin_bridge/get_parameters')
    try:
        assert client.wait_for_service(timeout_sec=30.0)
        future = client.call_async(GetParameters.Request(names=['corrective_actions.enabled']))
        wait_until(future.done, 10, 'the bridge to answer')
        return future.result().values[0].bool_value
    finally:
        observer.node.destroy_client(client)


def test_corrective_actions_switch_on_the_bridge(hub):
    wait_until(lambda: hub.client.get('/api/v1/corrective-actions').json()['enabled'] is False,
               60, 'the hub to read corrective_actions.enabled from the bridge')
    assert hub.client.put('/api/v1/corrective-actions', json={'enabled': True}).status_code \
        == 401
    on = hub.client.put('/api/v1/corrective-actions', json={'enabled': True}, headers=hub.auth)
    assert on.status_code == 200, on.text
    assert on.json()['enabled'] is True
    assert _bridge_corrective(hub.observer) is True
    off = hub.client.put('/api/v1/corrective-actions', json={'enabled': False},
                         headers=hub.auth)
    assert off.status_code == 200 and off.json()['enabled'] is False
    assert _bridge_corrective(hub.observer) is False


def test_a_payload_put_on_the_api_is_checked_and_published_on_twin_payload(hub):
    from geometry_msgs.msg import InertiaStamped
    from robot_twin.nodes import qos
    received = []
    sub = hub.observer.node.create_subscription(InertiaStamped, '/twin/payload',
                                                received.append, qos.LATCHED)
    try:
        body = {'mass_kg': 2.5, 'com_m': [0.0, 0.0, 0.08],
                'inertia_kgm2': [0.004, 0.0, 0.0, 0.004, 0.0, 0.002]}
        assert hub.client.put('/api/v1/payload', json=body).status_code == 401
        for bad in ({'mass_kg': '2.5'}, {'mass_kg': -1.0}, {'mass_kg': 1.0, 'com_m': [0.0]},
                    {'mass_kg': 1.0, 'extra': 1}):
            answer = hub.client.put('/api/v1/payload', json=bad, headers=hub.auth)
            assert answer.status_code == 422, (bad, answer.text)
        heavy = hub.client.put('/api/v1/payload', json={'mass_kg': 1e5}, headers=hub.auth)
        assert heavy.status_code == 409 and 'heavier than the arm' in heavy.json()['detail']
        done = hub.client.put('/api/v1/payload', json=body, headers=hub.auth)
        assert done.status_code == 200, done.text
        msg = wait_until(lambda: received[-1] if received else None, 30,
                         '/twin/payload from the hub')
        assert msg.inertia.m == 2.5 and msg.inertia.com.z == 0.08 and msg.inertia.izz == 0.002
        assert msg.header.frame_id == 'ft_sensor' and len(received) == 1   # refused: not sent
    finally:
        hub.observer.node.destroy_subscription(sub)


def test_a_whatif_job_runs_and_its_results_are_served(hub):
    assert 'payload_sweep' in hub.client.get('/api/v1/whatif/scenarios').json()
    assert hub.client.post('/api/v1/whatif/jobs', json={
        'scenario': 'payload_sweep', 'samples': 1}).status_code == 401
    too_big = hub.client.post('/api/v1/whatif/jobs', json={
        'scenario': 'payload_sweep', 'samples': 3}, headers=hub.auth)
    assert too_big.status_code == 422
    assert too_big.json()['detail'][0]['loc'] == ['body', 'samples']
    unknown = hub.client.post('/api/v1/whatif/jobs', json={
        'scenario': '../../etc/passwd', 'samples': 1}, headers=hub.auth)
    assert unknown.status_code == 422
    started = hub.client.post('/api/v1/whatif/jobs', json={
        'scenario': 'payload_sweep', 'samples': 1, 'seed': 3}, headers=hub.auth)
    assert started.status_code == 202, started.text
    job_id = started.json()['id']
    job = wait_until(lambda: (lambda j: j if j['status'] in ('done', 'failed') else None)(
        hub.client.get(f'/api/v1/whatif/jobs/{job_id}').json()), 240, 'the what-if job')
    assert job['status'] == 'done', job
    assert job['digest']['samples'] == 1 and job['digest']['seed'] == 3
    summary = hub.client.get(f'/api/v1/whatif/jobs/{job_id}/files/summary.json').json()
    assert summary['scenario'] == 'payload_sweep'
    assert hub.client.get(f'/api/v1/whatif/jobs/{job_id}/files/secret.txt').status_code == 404


def test_an_opcua_client_finds_every_axis_and_reads_the_published_positions(hub):
    from geometry_msgs.msg import InertiaStamped
    from robot_twin.nodes import qos
    payloads = []
    sub = hub.observer.node.create_subscription(InertiaStamped, '/twin/payload',
                                                payloads.append, qos.LATCHED)
    endpoint = f'opc.tcp://127.0.0.1:{hub.ports["opcua"]}/robot_twin/'
    try:
        run = subprocess.run([sys.executable, str(HERE / 'hub_opcua_client.py'), endpoint,
                              f'--token={hub.token}'],    # (a token may start with '-')
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-3000:]
        # SetPayload: the possible load reaches /twin/payload (after any the REST test sent)
        msg = wait_until(lambda: next((m for m in payloads if m.inertia.m == 1.5), None), 30,
                         'the OPC UA payload on /twin/payload')
        assert msg.inertia.com.z == 0.06 and msg.inertia.izz == 0.001
        assert msg.header.frame_id == 'ft_sensor'
        assert not any(m.inertia.m == 1e5 for m in payloads)
    finally:
        hub.observer.node.destroy_subscription(sub)
    seen = json.loads(run.stdout.strip().splitlines()[-1])
    assert seen['systems'] == 1 and seen['devices'] == 1
    assert seen['axes'] == sorted(JOINTS)
    stamps = []
    for values in seen['rounds']:
        round_stamps = {stamp for _value, stamp in values.values()}
        assert len(round_stamps) == 1, 'every axis shows the same robot sample'
        stamp = round_stamps.pop()
        stamps.append(stamp)
        published = hub.player.positions_at(stamp)
        assert published is not None, f'no /twin/joint_states sample at {stamp}'
        assert [values[j][0] for j in JOINTS] == published
    assert len(set(stamps)) > 1, 'the positions are live'
    assert not seen['anonymous_write']['ok'] and 'AccessDenied' in \
        seen['anonymous_write']['status']
    assert not seen['anonymous_call']['ok'] and 'AccessDenied' in \
        seen['anonymous_call']['status']
    assert not seen['wrong_password']['ok']
    assert not seen['token_write_value']['ok']        # values are read-only for everybody
    assert seen['token_call']['ok'] and seen['token_call']['result'][0] is True
    assert not seen['anonymous_payload']['ok'] and 'AccessDenied' in \
        seen['anonymous_payload']['status']
    calls = seen['payload']
    assert calls['possible']['result'][0] is True, calls['possible']
    assert 'published on /twin/payload: 1.5 kg' in calls['possible']['result'][1]
    ok, reason = calls['too_heavy']['result']        # refused with the reason, not a fault
    assert ok is False and 'heavier than the arm' in reason
    assert calls['short_com']['result'] == [
        False, 'CenterOfMassM must be an array of 3 numbers, got [0.0, 0.06]']
    assert calls['text_mass']['result'] == [False, "MassKg must be a number, got 'heavy'"]
    assert not calls['two_arguments']['ok'] and \
        'BadArgumentsMissing' in calls['two_arguments']['status']
    assert _bridge_corrective(hub.observer) is True
    hub.client.put('/api/v1/corrective-actions', json={'enabled': False}, headers=hub.auth)


async def _foxglove_messages(port, seconds):
    received, channels = {}, {}
    async with websockets.connect(f'ws://127.0.0.1:{port}',
                                  subprotocols=['foxglove.sdk.v1']) as ws:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                msg = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            if isinstance(msg, str):
                data = json.loads(msg)
                if data['op'] == 'advertise':
                    new = {c['id']: c for c in data['channels']}
                    channels.update(new)
                    await ws.send(json.dumps({'op': 'subscribe', 'subscriptions': [
                        {'id': cid, 'channelId': cid} for cid in new]}))
            elif msg[0] == 1:                  # message data: op, subscription id, time, data
                sub = struct.unpack_from('<I', msg, 1)[0]
                received.setdefault(channels[sub]['topic'], []).append(msg[13:])
    return channels, received


def test_a_foxglove_client_receives_the_channels_and_data(hub):
    channels, received = asyncio.run(_foxglove_messages(hub.ports['foxglove'], 4.0))
    topics = {c['topic']: c for c in channels.values()}
    assert {'/scene', '/robot/joint_states', '/twin/predicted_joint_states', '/twin/residual',
            '/twin/anomaly_score', '/twin/anomaly_log'} <= set(topics)
    assert topics['/scene']['schemaName'] == 'foxglove.SceneUpdate'
    for topic in ('/scene', '/robot/joint_states', '/twin/residual', '/twin/anomaly_score'):
        assert received.get(topic), f'no data on {topic}'
    residual = json.loads(received['/twin/residual'][-1])
    assert set(residual['effort']) == set(JOINTS)


def _decode(schema, data):
    """Decode a protobuf message with the FileDescriptorSet the recording carries."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    files = descriptor_pb2.FileDescriptorSet.FromString(schema.data)
    pool = descriptor_pool.DescriptorPool()
    for proto in files.file:
        pool.Add(proto)
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(schema.name))
    return cls.FromString(data)


def test_a_hub_without_token_is_read_only_and_its_recording_has_the_robot_model(tmp_path):
    from mcap.reader import make_reader
    mcap = tmp_path / 'twin.mcap'
    port = free_port()
    parameters = {'foxglove.mcap_path': str(mcap), 'foxglove.rate_hz': 10.0,
                  'api.address': f'127.0.0.1:{port}'}
    with running_hub(tmp_path, parameters, fault=('joint5', 'sensor_bias')) as (process, _o, _p):
        base = f'http://127.0.0.1:{port}'
        wait_http(f'{base}/api/v1/health', process)
        assert httpx.get(f'{base}/api/v1/health').json()['writes_enabled'] is False
        for method, path, body in (('POST', '/api/v1/anomalies/1/acknowledge', {}),
                                   ('PUT', '/api/v1/corrective-actions', {'enabled': True}),
                                   ('POST', '/api/v1/whatif/jobs', {'scenario': 'payload_sweep',
                                                                    'samples': 1})):
            answer = httpx.request(method, base + path, json=body,
                                   headers={'Authorization': 'Bearer anything-at-all-1234'})
            assert answer.status_code == 403, (path, answer.text)
            assert 'writes are disabled' in answer.json()['detail']
        wait_until(lambda: mcap.exists() and mcap.stat().st_size > 20_000, 60,
                   'the recording to grow', seen=process.output)
    assert process.stopped_cleanly, 'the hub had to be killed'
    with open(mcap, 'rb') as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        topics = {c.topic: summary.schemas[c.schema_id].name for c in summary.channels.values()}
        assert topics['/scene'] == 'foxglove.SceneUpdate'
        assert topics['/twin/anomaly_log'] == 'foxglove.Log'
        scene = next(m for s, c, m in reader.iter_messages(topics=['/scene']))
        update = _decode(summary.schemas[next(c.schema_id for c in summary.channels.values()
                                              if c.topic == '/scene')], scene.data)
    ids = {e.id for e in update.entities}
    links = {f'link{i}' for i in range(1, 8)}
    assert {f'robot/{link}' for link in links} <= ids and {f'twin/{link}' for link in links} <= ids
    assert all(e.frame_id == 'world' for e in update.entities)
    assert sum(len(e.cylinders) for e in update.entities) >= 14


def test_maintenance_posted_on_the_api_is_checked_and_published_for_the_twin(tmp_path):
    """
    POST /api/v1/maintenance on a real hub server: token, body checks, what reaches the twin.

    The publisher stands in for the hub node's: it sends what the anomaly node reads
    (robot_twin.nodes.messages) and says how many twin_anomaly readers it has.
    """
    from robot_twin.hub.server import Hub
    from robot_twin.hub.settings import HubSettings
    from robot_twin.hub.state import TwinState
    from robot_twin.nodes.messages import maintenance_from_status, maintenance_status
    published, readers = [], [1]

    def publisher(joint, action, by, note):
        published.append(maintenance_from_status(maintenance_status(joint, action, by, note)))
        return readers[0]

    token = 'maintenance-token-0123456789'
    servers = []
    for with_token in (token, None):
        port = free_port()
        servers.append((f'http://127.0.0.1:{port}/api/v1/maintenance', Hub(
            TwinState(JOINTS, 'arm'), HubSettings(api=('127.0.0.1', port), token=with_token,
                                                  whatif_output_dir=str(tmp_path / 'w')),
            model=None, maintenance_publisher=publisher, log=lambda _text: None).start()))
    (url, hub), (read_only_url, read_only) = servers
    auth = {'Authorization': f'Bearer {token}'}
    try:
        body = {'joint': 'joint3', 'action': 'lubricate', 'note': 'new grease'}
        assert httpx.post(url, json=body).status_code == 401
        answer = httpx.post(read_only_url, json=body, headers=auth)
        assert answer.status_code == 403 and 'writes are disabled' in answer.json()['detail']
        for bad in ({'joint': 'joint9', 'action': 'lubricate'},
                    {'joint': 'joint3', 'action': 'oil'}, {'joint': 'joint3'},
                    {'joint': 'joint3', 'action': 'all', 'who': 'me'},
                    {'joint': 'joint3', 'action': 'all', 'note': 'a\x00b'},
                    {'joint': 'joint3', 'action': 'all', 'note': 'x' * 501}):
            answer = httpx.post(url, json=bad, headers=auth)
            assert answer.status_code == 422, (bad, answer.text)
        assert published == []                       # nothing bad reached the twin
        done = httpx.post(url, json=body, headers=auth)
        assert done.status_code == 200, done.text
        assert done.json()['message'] == 'published on /twin/maintenance: lubricate on joint3'
        assert httpx.post(url, json={'joint': 'joint5', 'action': 'reduce load'}, headers={
            **auth, 'X-Robot-Twin-Interface': 'dashboard'}).status_code == 200
        assert published == [('joint3', 'lubricate', 'twin_hub (REST)', 'new grease'),
                             ('joint5', 'reduce load', 'twin_hub (dashboard)', '')]
        readers[0] = 0                               # no twin_anomaly listens: not declared
        nobody = httpx.post(url, json=body, headers=auth)
        assert nobody.status_code == 409 and 'no twin_anomaly node listens' in \
            nobody.json()['detail']
        schema = httpx.get(url.replace('/api/v1/maintenance', '/openapi.json')).json()
        assert 'post' in schema['paths']['/api/v1/maintenance']
    finally:
        hub.stop()
        read_only.stop()
