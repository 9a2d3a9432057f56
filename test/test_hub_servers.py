"""
The hub's servers in this process, fed through a TwinState by the test (no ROS).

The REST app runs under FastAPI's TestClient; the OPC UA server on a free port of 127.0.0.1
with an asyncua client. The state's clock is the test's, so that staleness is decided by the
test and not by the machine's load.
"""
import asyncio
import json
import math

from fastapi.testclient import TestClient
from hub_testing import free_port
import pytest
from robot_twin.hub.rest import create_app, dashboard_file
from robot_twin.hub.server import Hub, HubActions
from robot_twin.hub.settings import HubSettings
from robot_twin.hub.state import STALE_AFTER_S, TwinState
from twin_bridge.ledger import Ledger

NAMES = ['j1', 'j2', 'j3']
TOKEN = 'test-token-0123456789'
AUTH = {'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/json'}


class _Clock:
    """A wall clock the test sets."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def _fault(state, joint='j2', level='ERROR', now=None):
    state.update_anomaly([(f'twin/anomaly/{joint}', level, 'anomaly: friction_like', {
        'score': '3.0', 'threshold': '1.0', 'fault_type': 'friction_like', 'since': '12.5'})],
        now=now)
    return state.anomalies()['episodes'][0]['id']


@pytest.fixture
def api():
    clock = _Clock(1000.0)
    state = TwinState(NAMES, 'arm', clock=clock)
    client = TestClient(create_app(state, HubActions(state), token=TOKEN),
                        raise_server_exceptions=False)
    return type('Api', (), {'state': state, 'clock': clock, 'client': client})


@pytest.mark.parametrize('path, method, body', [
    ('/api/v1/payload', 'PUT', '{"mass_kg": NaN}'),
    ('/api/v1/payload', 'PUT', '{"mass_kg": 1e400}'),
    ('/api/v1/payload', 'PUT', '{"mass_kg": 1.0, "com_m": [NaN, 0, 0]}'),
    ('/api/v1/payload', 'PUT', '{"mass_kg": 1.0, "inertia_kgm2": [0, 0, 0, 0, 0, -Infinity]}'),
    ('/api/v1/corrective-actions', 'PUT', '{"enabled": NaN}'),
    ('/api/v1/corrective-actions', 'PUT', '{"enabled": true, "extra": Infinity}'),
    ('/api/v1/anomalies/1/acknowledge', 'POST', '{"note": "x", "extra": [1, -Infinity]}'),
    ('/api/v1/whatif/jobs', 'POST', '{"scenario": "payload_sweep", "samples": NaN}'),
])
def test_non_finite_numbers_in_a_body_are_a_422_with_json_not_a_server_error(
        api, path, method, body):
    answer = api.client.request(method, path, content=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    detail = json.loads(answer.text)['detail']     # strict JSON: NaN/Infinity as strings
    inputs = json.dumps([e.get('input') for e in detail])
    assert any(text in inputs for text in ('"NaN"', '"Infinity"', '"-Infinity"')), inputs


def test_acknowledging_twice_is_a_conflict_and_notes_are_checked(api):
    episode = _fault(api.state, now=1000.0)
    url = f'/api/v1/anomalies/{episode}/acknowledge'
    for note in ('x' * 501, 'bell\x07'):
        refused = api.client.post(url, json={'note': note}, headers=AUTH)
        assert refused.status_code == 422, refused.text
    first = api.client.post(url, json={'note': 'checked by maintenance'}, headers=AUTH)
    assert first.status_code == 200 and first.json()['note'] == 'checked by maintenance'
    second = api.client.post(url, json={'note': ''}, headers=AUTH)
    assert second.status_code == 409
    assert 'already acknowledged by api' in second.json()['detail']
    assert api.client.get(f'/api/v1/anomalies/{episode}').json()['note'] == \
        'checked by maintenance'


def test_health_answers_head_and_reports_a_stale_robot_stream(api):
    assert api.client.head('/api/v1/health').status_code == 200
    assert 'no /twin/status yet' in api.client.get('/api/v1/health').json()['reasons'][-2]
    api.state.update_sync('OK', 'in sync', {})
    api.state.update_anomaly([('twin/anomaly/robot', 'OK', 'nominal', {})])
    api.state.update_joints('measured', 5.0, NAMES, [0.1] * 3, [0.0] * 3, [1.0] * 3)
    health = api.client.get('/api/v1/health').json()
    assert health['status'] == 'ok' and health['reasons'] == [] and health['data_age_s'] == 0
    joint = api.client.get('/api/v1/joints/j1').json()['measured']
    assert joint['age_s'] == 0.0 and joint['stale'] is False
    api.clock.now += STALE_AFTER_S + 5.0             # the robot stream paused 6 s
    answer = api.client.get('/api/v1/health')
    assert answer.status_code == 200                 # the hub itself serves
    assert answer.json()['status'] == 'degraded' and 'stale' in answer.json()['reasons'][0]
    joint = api.client.get('/api/v1/joints/j1').json()['measured']
    assert joint['stale'] is True and joint['age_s'] == pytest.approx(STALE_AFTER_S + 5.0)


def test_the_dashboard_page_brings_its_own_icon():
    assert b'rel="icon" href="data:,"' in dashboard_file('index.html')   # no /favicon.ico


def test_the_ledger_is_served_from_the_start(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    with Ledger(path, durable=False) as ledger:
        ledger.append('start', {'component': 'twin_bridge'})
    state = TwinState(NAMES, 'arm')
    hub = Hub(state, HubSettings(ledger_path=str(path), whatif_output_dir=str(tmp_path / 'w')),
              model=None, log=lambda _text: None).start()
    try:
        served = state.ledger()                      # before the first 1 s poll
        assert served['path'] == str(path) and served['entries'][-1]['kind'] == 'start'
    finally:
        hub.stop()


def test_a_params_file_of_another_kind_is_not_served_as_identified_dynamics(tmp_path):
    from robot_twin.config import ConfigError
    from twin_sim.resources import builtin_urdf
    from twin_sim.urdf_model import RobotModel
    thresholds = tmp_path / 'thresholds.yaml'      # a robot-twin commission output
    thresholds.write_text('robot_twin_anomaly_thresholds:\n  version: 1\n  joints: [joint1]\n')
    what = (f'{thresholds} holds anomaly thresholds from robot-twin commission (top key '
            "'robot_twin_anomaly_thresholds'); expected identified dynamics")
    with pytest.raises(ConfigError) as refused:          # the node does not start with it
        HubSettings.from_parameters({'dynamics_params_file': str(thresholds)})
    assert f'dynamics_params_file: {what}' in str(refused.value)
    # nor do settings made otherwise show it under /parameters: the error does, and the log
    lines = []
    state = TwinState(NAMES, 'arm')
    hub = Hub(state, HubSettings(dynamics_params_file=str(thresholds),
                                 whatif_output_dir=str(tmp_path / 'w')),
              model=None, log=lines.append).start()
    hub.stop()
    shown = state.parameters()
    assert shown['document'] is None and what in shown['error'], shown
    assert any(what in line for line in lines), lines
    params = tmp_path / 'params.yaml'                   # identified dynamics: shown
    RobotModel.from_urdf(builtin_urdf()).save_parameters(params)
    assert HubSettings.from_parameters({'dynamics_params_file': str(params)})
    hub = Hub(state, HubSettings(dynamics_params_file=str(params),
                                 whatif_output_dir=str(tmp_path / 'w')),
              model=None, log=lines.append).start()
    hub.stop()
    assert state.parameters()['error'] == ''
    assert state.parameters()['document']['robot_twin_dynamics']['version'] == 1


# ---------------------------------------------------------------------- OPC UA
@pytest.fixture(scope='module')
def opcua():
    from robot_twin.hub.opcua import TwinOpcUaServer
    from robot_twin.twin_model import robot_model
    model = robot_model({'urdf_path': ''}, with_dynamics=False)
    clock = _Clock(1000.0)
    state = TwinState(model.joint_names, model.robot_name, clock=clock)
    server = TwinOpcUaServer(state, model, ('127.0.0.1', free_port()), HubActions(state),
                             token=TOKEN, update_rate_hz=20.0).start()
    try:
        yield type('OpcUa', (), {'state': state, 'clock': clock, 'model': model,
                                 'endpoint': server.endpoint})
    finally:
        server.stop()


async def _opcua(endpoint, job):
    from asyncua import Client
    client = Client(endpoint, timeout=10)
    client.set_user('robot_twin')
    client.set_password(TOKEN)
    async with client:
        ns = {name: await client.get_namespace_index(uri) for name, uri in (
            ('di', 'http://opcfoundation.org/UA/DI/'),
            ('rob', 'http://opcfoundation.org/UA/Robotics/'), ('twin', 'urn:robot_twin:hub'))}
        return await job(client, ns)


def _read(opcua, joint, names):
    """Return ``{name: (status name, value)}`` of an axis's variables, read after an update."""
    from asyncua import ua

    async def job(client, ns):
        await asyncio.sleep(0.3)                      # a few update periods
        twin = ns['twin']
        axis = [f'{ns["di"]}:DeviceSet', f'{twin}:{opcua.model.robot_name}',
                f'{ns["rob"]}:MotionDevices', f'{twin}:{opcua.model.robot_name}',
                f'{ns["rob"]}:Axes', f'{twin}:{joint}']
        own = [f'{ns["di"]}:DeviceSet', f'{twin}:{opcua.model.robot_name}',
               f'{twin}:RobotTwin', f'{twin}:Axes', f'{twin}:{joint}']
        out = {}
        for name in names:
            path = axis + [f'{ns["di"]}:ParameterSet', f'{ns["rob"]}:{name}'] \
                if name.startswith('Actual') else own + [f'{twin}:{name}']
            node = await client.nodes.objects.get_child(path)
            value = await node.read_data_value(raise_on_bad_status=False)
            out[name] = (value.StatusCode.name, value.Value.Value)
            if name == 'ActualSpeed':
                out['ActualSpeed.DataType'] = await node.read_data_type()
        out['Double'] = ua.NodeId(ua.ObjectIds.Double)
        return out
    return asyncio.run(_opcua(opcua.endpoint, job))


def test_opcua_values_say_whether_they_are_good_stale_or_missing(opcua):
    joint = opcua.model.joint_names[0]
    names = ['ActualPosition', 'ActualSpeed', 'RulHours', 'HealthIndex']
    before = _read(opcua, joint, names)
    assert before['ActualPosition'][0] == 'BadWaitingForInitialData'
    assert before['RulHours'][0] == 'BadWaitingForInitialData'
    assert before['ActualSpeed.DataType'] == before['Double']     # not the abstract Number
    n = len(opcua.model.joint_names)
    opcua.state.update_joints('measured', 1000.0, opcua.model.joint_names, [0.25] * n,
                              [math.nan] * n, [1.0] * n)
    opcua.state.update_rul([(f'twin/rul/{joint}', 'OK', 'ok', {
        'rul_hours': '120', 'health_index': 'nan'})], now=1000.0)
    live = _read(opcua, joint, names)
    assert live['ActualPosition'] == ('Good', 0.25) and live['RulHours'] == ('Good', 120.0)
    assert live['ActualSpeed'][0] == 'BadNoData' and live['HealthIndex'][0] == 'BadNoData'
    opcua.clock.now += STALE_AFTER_S + 5.0            # the robot stream paused
    stale = _read(opcua, joint, names)
    assert stale['ActualPosition'] == ('UncertainLastUsableValue', 0.25)


def test_opcua_acknowledge_checks_the_note_and_keeps_the_first(opcua):
    from asyncua import ua
    episode = _fault(opcua.state, joint=opcua.model.joint_names[1], now=1000.0)

    async def job(client, ns):
        twin = await client.nodes.objects.get_child([
            f'{ns["di"]}:DeviceSet', f'{ns["twin"]}:{opcua.model.robot_name}',
            f'{ns["twin"]}:RobotTwin'])

        async def call(note):
            return await twin.call_method(f'{ns["twin"]}:AcknowledgeAnomaly',
                                          ua.Variant(episode, ua.VariantType.UInt32), note)
        return [await call('x' * 200_000), await call('a\x00b'), await call('checked'),
                await call('')]
    long_note, control, first, second = asyncio.run(_opcua(opcua.endpoint, job))
    assert long_note[0] is False and 'at most 500' in long_note[1]
    assert control[0] is False and 'control character' in control[1]
    assert first == [True, f'anomaly {episode} acknowledged']
    assert second[0] is False and 'already acknowledged by opcua' in second[1]
    kept = opcua.state.anomalies()['episodes'][0]
    assert kept['note'] == 'checked' and kept['acknowledged_by'] == 'opcua'
