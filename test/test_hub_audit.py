"""
Findings of the hub audit, each checked on real servers in the test's process.

One hub (REST + dashboard on uvicorn, OPC UA on asyncua) on free ports of 127.0.0.1, fed by the
test through a :class:`TwinState` whose clock the test sets (no ROS): the data ages when the
test says so, not when the machine is slow. Real HTTP (http.client, keep-alive), a real
asyncua client, headless Chromium for the dashboard, ``robot-twin aas export`` in-process.
"""
import asyncio
import http.client
import json
import logging
import socket

from hub_testing import free_port
import pytest
from robot_twin.hub.lifecycle import read_tail
from robot_twin.hub.opcua import find_nodeset_dir
from robot_twin.hub.server import Hub
from robot_twin.hub.settings import HubSettings
from robot_twin.hub.state import STATUS_STALE_AFTER_S, TwinState
from twin_bridge.ledger import KINDS

TOKEN = 'audit-token-0123456789'
AUTH = {'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/json'}
T0 = 1_800_000_000.0


class _Clock:
    """A wall clock the test sets."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


class _Bridge:
    """Stands in for the hub node's parameter client of twin_bridge."""

    def __init__(self, state):
        self.state, self.calls = state, []

    def __call__(self, enabled):
        self.calls.append(enabled)
        self.state.set_corrective(enabled)
        return True, f'corrective_actions.enabled = {str(enabled).lower()} on twin_bridge'


@pytest.fixture(scope='module')
def hub(tmp_path_factory):
    from robot_twin.twin_model import robot_model
    tmp = tmp_path_factory.mktemp('hub')
    model = robot_model({'urdf_path': ''}, with_dynamics=False)
    clock = _Clock(T0)
    state = TwinState(model.joint_names, model.robot_name, clock=clock)
    bridge = _Bridge(state)
    api, opcua = free_port(), free_port()
    settings = HubSettings(api=('127.0.0.1', api), opcua=('127.0.0.1', opcua), token=TOKEN,
                           ledger_path=str(tmp / 'twin.ledger'),
                           whatif_output_dir=str(tmp / 'whatif'), opcua_update_rate_hz=20.0)
    running = Hub(state, settings, model, bridge, log=lambda _text: None).start()
    try:
        yield type('Hub', (), {'state': state, 'clock': clock, 'model': model, 'port': api,
                               'endpoint': f'opc.tcp://127.0.0.1:{opcua}/robot_twin/',
                               'bridge': bridge, 'ledger': tmp / 'twin.ledger'})
    finally:
        running.stop()


def _request(port, method, path, body=None, headers=None, connection=None):
    conn = connection or http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    conn.request(method, path, body=body, headers=headers or {})
    answer = conn.getresponse()
    data = answer.read()
    return answer.status, (json.loads(data) if data else None), conn


def _get(hub, path):
    status, data, conn = _request(hub.port, 'GET', path)
    conn.close()
    assert status == 200, data
    return data


def _live(hub, joint, level='OK'):
    """Feed one round of everything a running twin sends, at the test clock's time."""
    names = hub.model.joint_names
    hub.state.update_joints('measured', hub.clock.now, names, [0.1] * len(names),
                            [0.0] * len(names), [1.0] * len(names))
    hub.state.update_sync('OK', 'in sync', {'latency_p99_s': '0.003'})
    hub.state.update_anomaly([
        ('twin/anomaly/robot', level, 'nominal' if level == 'OK' else f'anomaly on {joint}',
         {'score': '4.2', 'threshold': '1.0'}),
        (f'twin/anomaly/{joint}', level, 'anomaly: friction_like', {
            'score': '4.2', 'threshold': '1.0', 'fault_type': 'friction_like',
            'since': str(hub.clock.now)})])


# ---------------------------------------------------------------------- 4, 1: REST
def test_before_any_report_the_anomaly_level_is_unknown_not_ok(hub):
    state = _get(hub, '/api/v1/state')
    assert state['anomaly']['level'] == 'STALE' and 'no /twin/anomaly yet' in \
        state['anomaly']['message']
    assert _get(hub, '/api/v1/anomalies')['robot']['level'] == 'STALE'


def _read_opcua(hub, joint):
    """Return ``{path: (status name, value)}`` of the robot-level and one axis's values."""
    from asyncua import Client

    async def job():
        client = Client(hub.endpoint, timeout=10)
        async with client:
            di = await client.get_namespace_index('http://opcfoundation.org/UA/DI/')
            twin = await client.get_namespace_index('urn:robot_twin:hub')
            await asyncio.sleep(0.3)            # a few update periods
            base = [f'{di}:DeviceSet', f'{twin}:{hub.model.robot_name}', f'{twin}:RobotTwin']
            out = {}
            for path in ('Sync/State', 'Sync/Message', 'Anomaly/Level', 'Anomaly/Message',
                         f'Axes/{joint}/AnomalyLevel'):
                node = await client.nodes.objects.get_child(
                    base + [f'{twin}:{p}' for p in path.split('/')])
                value = await node.read_data_value(raise_on_bad_status=False)
                out[path] = (value.StatusCode.name, value.Value.Value if value.Value else None)
            return out
    return asyncio.run(job())


def test_sync_and_anomalies_age_out_after_the_twin_stops(hub):
    joint = hub.model.joint_names[1]
    before = _read_opcua(hub, joint)
    assert before['Anomaly/Level'][0] == 'BadWaitingForInitialData'
    _live(hub, joint, 'ERROR')
    assert _get(hub, '/api/v1/sync')['level'] == 'OK'
    (episode,) = _get(hub, '/api/v1/anomalies?active=true')['episodes']
    assert episode['status'] == 'active'
    live = _read_opcua(hub, joint)
    assert live['Sync/State'] == ('Good', 'OK') and live['Anomaly/Level'] == ('Good', 'ERROR')
    assert live[f'Axes/{joint}/AnomalyLevel'] == ('Good', 'ERROR')

    hub.clock.now += STATUS_STALE_AFTER_S + 5.0          # the twin stopped 8 s ago
    sync = _get(hub, '/api/v1/sync')
    assert sync['level'] == 'STALE' and sync['stale'] is True and sync['last_level'] == 'OK'
    assert sync['age_s'] == pytest.approx(STATUS_STALE_AFTER_S + 5.0)
    assert 'no /twin/status for 8.0 s' in sync['message']
    assert _get(hub, '/api/v1/anomalies?active=true')['episodes'] == []
    anomalies = _get(hub, '/api/v1/anomalies')
    (shown,) = [e for e in anomalies['episodes'] if e['id'] == episode['id']]
    assert shown['active'] is False and shown['closed'] is None     # not ended silently
    assert shown['status'].startswith('unknown: the twin stopped reporting')
    assert anomalies['robot']['level'] == 'STALE'
    card = _get(hub, f'/api/v1/joints/{joint}')['anomaly']
    assert card['level'] == 'STALE' and card['stale'] is True
    health = _get(hub, '/api/v1/health')
    assert health['status'] == 'degraded'
    assert any('anomaly state unknown' in r for r in health['reasons'])
    stale = _read_opcua(hub, joint)
    for path in ('Sync/State', 'Anomaly/Level', f'Axes/{joint}/AnomalyLevel'):
        assert stale[path][0].startswith(('Uncertain', 'Bad')), (path, stale[path])
    assert 'no /twin/status for' in stale['Sync/Message'][1]

    hub.clock.now += 1.0                                 # the twin is back, still ERROR
    _live(hub, joint, 'ERROR')
    (again,) = _get(hub, '/api/v1/anomalies?active=true')['episodes']
    assert again['id'] == episode['id'] and again['status'] == 'active'
    hub.clock.now += 1.0
    _live(hub, joint, 'OK')


# ---------------------------------------------------------------------- 3: bodies
@pytest.mark.parametrize('path, method, body', [
    ('/api/v1/anomalies/1/acknowledge', 'POST', b'{"note": "\\ud800"}'),
    ('/api/v1/anomalies/1/acknowledge', 'POST', b'{"note": "ok", "\\udfff": 1}'),
    ('/api/v1/corrective-actions', 'PUT', b'{"enabled": "\\ud800"}'),
    ('/api/v1/payload', 'PUT', b'{"mass_kg": "\\ud800x"}'),
    ('/api/v1/whatif/jobs', 'POST', b'{"scenario": "\\ud800", "samples": 1}'),
])
def test_a_lone_surrogate_in_a_body_is_a_422_and_the_connection_stays(hub, path, method, body):
    status, data, conn = _request(hub.port, method, path, body, AUTH)
    assert status == 422, data
    assert '\ufffd' in json.dumps(data, ensure_ascii=False) or 'surrogate' in json.dumps(data)
    again, health, _ = _request(hub.port, 'GET', '/api/v1/health', connection=conn)
    conn.close()                                   # the keep-alive connection still serves
    assert again == 200 and health['robot']


@pytest.mark.parametrize('kind', ['text/plain', 'application/x-www-form-urlencoded', None])
def test_a_body_that_is_not_sent_as_json_says_so(hub, kind):
    headers = {'Authorization': AUTH['Authorization']}
    if kind:
        headers['Content-Type'] = kind
    status, data, conn = _request(hub.port, 'PUT', '/api/v1/corrective-actions',
                                  b'{"enabled": false}', headers)
    conn.close()
    assert status == 422
    assert 'must be JSON' in data['detail'] and 'application/json' in data['detail']


def test_large_bodies_are_refused_before_the_token_and_inputs_are_echoed_short(hub):
    big = b'{"note": "' + b'a' * 70_000 + b'"}'
    status, data, conn = _request(hub.port, 'POST', '/api/v1/anomalies/1/acknowledge', big,
                                  {'Content-Type': 'application/json'})     # no token
    conn.close()
    assert status == 413 and 'at most 65536' in data['detail']
    status, data, conn = _request(hub.port, 'POST', '/api/v1/anomalies/1/acknowledge',
                                  json.dumps({'note': 'b' * 20_000}).encode(), AUTH)
    conn.close()
    assert status == 422 and len(json.dumps(data)) < 2000, len(json.dumps(data))


def test_a_chunked_body_over_the_limit_is_a_413(hub):
    with socket.create_connection(('127.0.0.1', hub.port), timeout=10) as sock:
        sock.sendall(b'PUT /api/v1/payload HTTP/1.1\r\nHost: x\r\nContent-Type: '
                     b'application/json\r\nTransfer-Encoding: chunked\r\n\r\n')
        chunk = b'a' * 16_384
        for _ in range(5):
            sock.sendall(b'%x\r\n%s\r\n' % (len(chunk), chunk))
        answer = sock.recv(4096)
    assert answer.startswith(b'HTTP/1.1 413'), answer[:200]


# ---------------------------------------------------------------------- 6: ledger
def test_each_switch_of_corrective_actions_is_in_the_lifecycle_log(hub):
    from asyncua import Client, ua
    assert 'corrective_actions_switched' in KINDS
    for enabled, extra in ((True, {}), (False, {'X-Robot-Twin-Interface': 'dashboard'})):
        status, data, conn = _request(hub.port, 'PUT', '/api/v1/corrective-actions',
                                      json.dumps({'enabled': enabled}).encode(),
                                      {**AUTH, **extra})
        conn.close()
        assert status == 200 and data['enabled'] is enabled and data['ledger_error'] is None

    async def call():
        client = Client(hub.endpoint, timeout=10)
        client.set_user('robot_twin')
        client.set_password(TOKEN)
        async with client:
            twin_ns = await client.get_namespace_index('urn:robot_twin:hub')
            di = await client.get_namespace_index('http://opcfoundation.org/UA/DI/')
            twin = await client.nodes.objects.get_child([
                f'{di}:DeviceSet', f'{twin_ns}:{hub.model.robot_name}', f'{twin_ns}:RobotTwin'])
            return await twin.call_method(f'{twin_ns}:SetCorrectiveActions',
                                          ua.Variant(True, ua.VariantType.Boolean))
    ok, _message = asyncio.run(call())
    assert ok is True
    entries = [e for e in read_tail(hub.ledger, 50)[0]
               if e['kind'] == 'corrective_actions_switched']
    assert [(e['data']['enabled'], e['data']['interface']) for e in entries] == [
        (True, 'REST'), (False, 'dashboard'), (True, 'OPC UA')]
    assert all(e['data']['time'] > 0 for e in entries)


# ---------------------------------------------------------------------- 5: AAS
def test_an_aas_export_from_a_hub_whose_twin_stopped_is_marked_and_not_a_success(
        hub, tmp_path, capsys):
    from robot_twin.cli import main
    from robot_twin.hub.aas import read_aasx
    joint = hub.model.joint_names[2]
    hub.clock.now += 10.0
    _live(hub, joint)
    received = hub.clock.now
    hub.clock.now += 30.0                                 # the twin stopped 30 s ago
    out = tmp_path / 'stale.aasx'
    status = main(['aas', 'export', '--output', str(out), '--hub',
                   f'http://127.0.0.1:{hub.port}'])
    err = capsys.readouterr().err
    assert status == 3 and 'warning: the Health submodel is not current (STALE' in err, err
    store, _files = read_aasx(out)
    health = next(s for s in store if getattr(s, 'id_short', '') == 'Health')
    assert health.get_referable('DataStatus').value.startswith('STALE: ')
    assert health.get_referable('TakenAt').value.startswith(
        __import__('datetime').datetime.fromtimestamp(
            received, __import__('datetime').timezone.utc).isoformat(timespec='seconds')[:19])


# ---------------------------------------------------------------------- 7, 8, 9: config
def test_a_ledger_path_that_is_a_folder_or_in_a_missing_folder_is_named(tmp_path):
    assert 'is a folder' in read_tail(tmp_path)[1]
    assert 'does not exist' in read_tail(tmp_path / 'nope' / 'twin.ledger')[1]
    assert read_tail(tmp_path / 'not_yet.ledger') == ([], '')     # nothing logged yet


def test_a_nodeset_dir_without_nodesets_is_refused_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=f'opcua.nodeset_dir {tmp_path} lacks'):
        find_nodeset_dir(str(tmp_path))


def test_an_opcua_port_in_use_is_one_line_without_asyncua_traceback(hub, caplog):
    from robot_twin.hub.opcua import TwinOpcUaServer
    port = int(hub.endpoint.rsplit(':', 1)[1].split('/')[0])         # the hub's, in use
    caplog.set_level(logging.ERROR, logger='asyncua')
    with pytest.raises(RuntimeError, match='address already in use'):
        TwinOpcUaServer(hub.state, hub.model, ('127.0.0.1', port), None).start()
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in
                                                           caplog.records]


# ---------------------------------------------------------------------- 1, 2, 14: dashboard
def test_the_dashboard_switches_only_from_a_known_state_and_shows_stale_data(hub):
    from playwright.sync_api import sync_playwright
    from test_hub_dashboard import _chromium, CHROMIUM_FLAGS
    from ros_harness import wait_until
    joint = hub.model.joint_names[0]
    hub.clock.now += 100.0
    for _ in range(6):                  # a twin reporting at 10 Hz (the staleness follows it)
        _live(hub, joint)
        hub.clock.now += 0.1
    hub.state.update_rul([(f'twin/rul/{joint}', 'OK', 'no degradation seen', {
        'health_index': '1.0', 'recommended_action': 'none'})])
    hub.state.set_corrective(None, 'twin_bridge is not running')
    calls = len(hub.bridge.calls)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), headless=True,
                                             args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            errors = []
            page.on('pageerror', lambda exc: errors.append(str(exc)))
            page.add_init_script(f"sessionStorage.setItem('robot_twin_token', '{TOKEN}')")
            page.goto(f'http://127.0.0.1:{hub.port}/')
            page.wait_for_function("document.querySelector('#connection-text').textContent "
                                   "=== 'live'", timeout=20_000)
            page.wait_for_selector('#corrective-buttons:not([hidden])', timeout=10_000)
            assert page.inner_text('#corrective-state') == 'unknown'
            assert page.is_disabled('#corrective-on') and page.is_disabled('#corrective-off')
            card = f'article[data-joint="{joint}"]'
            assert page.inner_text(f'{card} .rul') == 'no estimate yet (no degradation seen)'

            hub.state.set_corrective(False)                      # known: off
            page.wait_for_selector('#corrective-on:not([disabled])', timeout=10_000)
            assert page.is_disabled('#corrective-off')
            page.once('dialog', lambda dialog: dialog.dismiss())
            page.click('#corrective-on')
            page.wait_for_function("document.querySelector('#action-result').textContent "
                                   "=== 'corrective actions left off'", timeout=10_000)
            assert len(hub.bridge.calls) == calls               # no request without a yes
            asked = []
            page.once('dialog', lambda dialog: (asked.append(dialog.message),
                                                dialog.accept()))
            page.click('#corrective-on')
            wait_until(lambda: len(hub.bridge.calls) > calls, 10, 'the switch to arrive')
            assert hub.bridge.calls[-1] is True and 'ON' in asked[0]
            entry = [e for e in read_tail(hub.ledger, 50)[0]
                     if e['kind'] == 'corrective_actions_switched'][-1]
            assert entry['data']['interface'] == 'dashboard'

            hub.clock.now += STATUS_STALE_AFTER_S + 2.0         # the twin stops: no message
            page.wait_for_function("document.querySelector('#connection-text').textContent "
                                   "=== 'connected, data stale'", timeout=10_000)
            assert page.inner_text('#sync-level') == 'STALE'
            assert page.inner_text('#anomaly-level') == 'STALE'
            assert page.inner_text('#data-level') == 'STALE'
            assert 'no measured joint sample' in page.inner_text('#data-detail')
            assert 'stale' in page.get_attribute(card, 'class')
            assert 'stale: no sample for' in page.inner_text(f'{card} .stale-note')
            assert page.inner_text(f'{card} .level') == 'STALE'
            assert errors == [], errors
        finally:
            browser.close()
