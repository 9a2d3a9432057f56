"""The hub's ROS-free parts: the state store, its settings, the lifecycle-log view, job checks."""
import math
import time

import pytest

from robot_twin.config import ConfigError
from robot_twin.graph import describe_graph
from robot_twin.hub.jobs import JobRejected, WhatIfJobs
from robot_twin.hub.lifecycle import append_acknowledgement, read_tail
from robot_twin.hub.settings import hub_overrides, hub_spec, hub_urls, HubSettings, \
    parse_address, read_token, with_hub
from robot_twin.hub.state import AlreadyAcknowledged, check_note, EPISODE_HOLD_S, \
    NOTE_MAX_CHARS, STALE_AFTER_S, TwinState
from twin_bridge.ledger import Ledger, verify_ledger

NAMES = ['j1', 'j2', 'j3']


def _state():
    return TwinState(NAMES, 'arm', history_s=10.0, clock=lambda: 100.0)


def test_joint_samples_are_reordered_by_name_and_unknown_joints_ignored():
    s = _state()
    s.update_joints('measured', 5.0, ['j3', 'x', 'j1'], [3.0, 9.0, 1.0], [], [30.0, 9.0, 10.0])
    j = {e['name']: e for e in s.joints()}
    assert j['j1']['measured']['position'] == 1.0 and j['j3']['measured']['position'] == 3.0
    assert j['j2']['measured']['position'] is None          # not in the message
    assert j['j1']['measured']['velocity'] is None          # wrong length: absent
    s.update_joints('measured', 5.1, ['j1'], [math.nan], [], [])
    assert s.joints()[0]['measured']['position'] is None    # NaN is never shown as a number
    with pytest.raises(ValueError, match='measured'):
        s.update_joints('residual', 5.0, NAMES, [0] * 3)


def test_residual_pairs_the_same_robot_sample_in_either_arrival_order():
    s = _state()
    s.update_joints('predicted', 1.00, NAMES, [0.0] * 3, [0.0] * 3, [1.0, 2.0, 3.0])
    s.update_joints('measured', 1.00, NAMES, [0.1] * 3, [0.0] * 3, [1.5, 2.0, 2.0])
    assert s.joints()[0]['residual']['effort'] == pytest.approx(0.5)
    s.update_joints('measured', 2.00, NAMES, [0.1] * 3, [0.0] * 3, [4.0, 4.0, 4.0])
    s.update_joints('predicted', 2.00, NAMES, [0.0] * 3, [0.0] * 3, [1.0, 1.0, 1.0])
    assert s.joints()[2]['residual']['effort'] == pytest.approx(3.0)
    assert s.counters()['residual'] == 2
    series = s.series_since(0)
    assert [p[0] for p in series['residual']] == [1.0, 2.0]
    assert series['residual'][1][1] == pytest.approx([3.0, 3.0, 3.0])
    later = s.series_since(series['seq'])
    assert later['measured'] == [] and later['residual'] == []


def test_nearest_pairing_is_replaced_by_the_exact_one_without_a_duplicate():
    s = _state()
    s.update_joints('predicted', 0.99, NAMES, [0.0] * 3, [0.0] * 3, [1.0] * 3)
    s.update_joints('measured', 1.00, NAMES, [0.0] * 3, [0.0] * 3, [2.0] * 3)
    assert s.joints()[0]['residual']['effort'] == pytest.approx(1.0)   # nearest (10 ms)
    s.update_joints('predicted', 1.00, NAMES, [0.0] * 3, [0.0] * 3, [1.5] * 3)
    assert s.joints()[0]['residual']['effort'] == pytest.approx(0.5)   # exact
    assert [p[0] for p in s.series_since(0)['residual']] == [1.0]
    s.update_joints('measured', 3.00, NAMES, [0.0] * 3, [0.0] * 3, [2.0] * 3)
    assert s.joints()[0]['residual']['stamp'] == 1.0      # 2 s apart: no pairing


def test_history_keeps_history_s_of_stamps():
    s = _state()
    for k in range(30):
        s.update_joints('measured', float(k), NAMES, [0.0] * 3, [], [float(k)] * 3)
    stamps = [p[0] for p in s.series_since(0)['measured']]
    assert stamps[0] == 19.0 and stamps[-1] == 29.0


def _anomaly(level, joint='j2', fault='friction_like', score='3.0'):
    return [('twin/anomaly/robot', level, 'x', {'score': score}),
            (f'twin/anomaly/{joint}', level, f'anomaly: {fault}',
             {'score': score, 'threshold': '1.5', 'fault_type': fault, 'since': '12.5'})]


def test_anomaly_episodes_open_update_close_and_acknowledge():
    s = _state()
    s.update_anomaly(_anomaly('OK', score='0.2'), now=10.0)
    assert s.anomalies()['episodes'] == []
    s.update_anomaly(_anomaly('ERROR'), now=11.0)
    s.update_anomaly(_anomaly('ERROR', score='6.0'), now=11.5)
    (episode,) = s.anomalies(active_only=True, now=11.5)['episodes']
    assert episode['joint'] == 'j2' and episode['since'] == 12.5 and episode['active']
    assert episode['peak_score'] == pytest.approx(4.0)           # 6.0 / 1.5
    assert s.joints(now=11.5)[1]['anomaly']['episode'] == episode['id']
    s.update_anomaly(_anomaly('OK', score='0.2'), now=13.0)
    assert s.anomalies(active_only=True, now=15.0)['episodes'] == []
    closed = s.anomalies()['episodes'][0]
    assert closed['closed'] == 13.0 and not closed['active']
    acked = s.acknowledge(episode['id'], 'api', 'checked', now=14.0)
    assert acked['acknowledged_at'] == 14.0 and acked['note'] == 'checked'
    with pytest.raises(KeyError, match='no anomaly 99'):
        s.acknowledge(99, 'api')
    s.update_anomaly(_anomaly('ERROR', joint='j3', fault='sensor_bias'), now=20.0)
    assert [e['id'] for e in s.anomalies()['episodes']] == [2, 1]


class _Clock:
    """A wall clock the test sets."""

    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


def test_a_flickering_alarm_is_one_episode_until_it_stays_below_error_for_the_hold():
    clock = _Clock(10.0)
    s = TwinState(NAMES, 'arm', clock=clock)
    for k, level in enumerate(['ERROR', 'WARN', 'ERROR', 'OK', 'ERROR', 'WARN', 'ERROR']):
        clock.now = 10.0 + 0.2 * k                  # flickers every 0.2 s, < EPISODE_HOLD_S
        s.update_anomaly(_anomaly(level), now=clock.now)
        if k == 1:
            first = s.anomalies()['episodes'][0]
            s.acknowledge(first['id'], 'api', 'seen', now=clock.now)
    (episode,) = s.anomalies()['episodes']          # one condition, one episode
    assert episode['active'] and episode['id'] == first['id']
    assert episode['acknowledged_by'] == 'api' and episode['note'] == 'seen'   # kept
    s.update_anomaly(_anomaly('WARN'), now=12.0)
    clock.now = 12.0 + EPISODE_HOLD_S - 0.1
    assert s.anomalies(active_only=True)['episodes'], 'closed before the hold time'
    assert s.joints()[1]['anomaly']['episode'] == first['id']
    version = s.version
    clock.now = 12.0 + EPISODE_HOLD_S                # no new message: reading settles it
    assert s.version > version                       # a stream sees the close
    (closed,) = s.anomalies()['episodes']
    assert not closed['active'] and closed['closed'] == 12.0   # when it left ERROR
    s.update_anomaly(_anomaly('ERROR'), now=20.0)    # after the hold: a new episode
    assert [e['id'] for e in s.anomalies()['episodes']] == [first['id'] + 1, first['id']]


def test_the_first_acknowledgement_stands_and_notes_are_checked():
    s = _state()
    s.update_anomaly(_anomaly('ERROR'), now=11.0)
    (episode,) = s.anomalies()['episodes']
    with pytest.raises(ValueError, match='at most 500'):
        s.acknowledge(episode['id'], 'opcua', 'x' * 200_000)
    with pytest.raises(ValueError, match='control character'):
        s.acknowledge(episode['id'], 'opcua', 'ok\x1b[2J')
    assert s.anomalies()['episodes'][0]['acknowledged_at'] is None   # refused: not kept
    s.acknowledge(episode['id'], 'api', 'checked by maintenance', now=1_800_000_000.0)
    with pytest.raises(AlreadyAcknowledged, match=r'already acknowledged by api at '
                       r'2027-01-15T08:00:00Z \(note: .checked by maintenance.\)'):
        s.acknowledge(episode['id'], 'opcua', '', now=1_800_000_100.0)
    kept = s.anomalies()['episodes'][0]
    assert (kept['acknowledged_by'], kept['note'], kept['acknowledged_at']) == (
        'api', 'checked by maintenance', 1_800_000_000.0)
    assert check_note('line one\nline\ttwo') == 'line one\nline\ttwo'
    assert check_note('y' * NOTE_MAX_CHARS) == 'y' * NOTE_MAX_CHARS
    with pytest.raises(ValueError, match='text'):
        check_note(5)


def test_stale_joint_samples_carry_their_age_and_the_health_says_degraded():
    clock = _Clock(50.0)
    s = TwinState(NAMES, 'arm', clock=clock)
    assert s.health()['status'] == 'degraded' and 'received yet' in s.health()['reasons'][0]
    s.update_sync('OK', 'in sync', {}, now=50.0)
    s.update_anomaly([('twin/anomaly/robot', 'OK', 'nominal', {})], now=50.0)
    s.update_joints('measured', 7.0, NAMES, [0.1] * 3, [0.0] * 3, [1.0] * 3)
    s.update_joints('predicted', 7.0, NAMES, [0.1] * 3, [0.0] * 3, [1.0] * 3)
    clock.now = 50.5
    measured = s.joints()[0]['measured']
    assert measured['age_s'] == pytest.approx(0.5) and not measured['stale']
    assert s.health() == {'status': 'ok', 'reasons': [], 'data_age_s': pytest.approx(0.5)}
    clock.now = 50.0 + STALE_AFTER_S + 5.0           # the robot stream paused
    s.update_sync('STALE', 'no robot sample for 6 s', {}, now=clock.now)
    for kind in ('measured', 'predicted', 'residual'):
        sample = s.joints()[2][kind]
        assert sample['stale'] and sample['age_s'] == pytest.approx(STALE_AFTER_S + 5.0)
        assert sample['position'] is not None        # the last values, flagged
    health = s.health()
    assert health['status'] == 'degraded'
    assert 'for 6.0 s' in health['reasons'][0] and 'sync STALE' in health['reasons'][1]


def test_the_ledger_path_is_shown_before_the_log_has_entries(tmp_path):
    s = _state()
    s.set_ledger(tmp_path / 'ledger.jsonl', [], '')
    assert s.ledger()['path'] == str(tmp_path / 'ledger.jsonl')


def test_rul_values_are_parsed_and_bad_numbers_become_none():
    s = _state()
    values = {'rul_hours': '120.5', 'rul_lower_hours': 'nan', 'recommended_action': 'inspect',
              'due_by': '2027-01-01'}
    s.update_rul([('twin/rul/j1', 'OK', 'ok', values)], now=5.0)
    r = s.rul()['joints']['j1']
    assert r['rul_hours'] == 120.5 and r['rul_lower_hours'] is None
    assert r['rul_upper_hours'] is None and r['recommended_action'] == 'inspect'
    assert s.joints()[0]['rul']['due_by'] == '2027-01-01'


def test_version_moves_on_changes_and_snapshot_is_json_ready():
    import json
    s = _state()
    v0 = s.version
    s.update_sync('OK', 'in sync', {'latency_p99_s': 0.002}, now=1.0)
    assert s.version > v0 and s.sync()['latency_p99_s'] == 0.002
    s.set_corrective(True)
    events = s.snapshot()['events']
    s.set_corrective(True)                       # no change, no event
    assert s.snapshot()['events'] == events
    json.dumps(s.snapshot(), allow_nan=False)


@pytest.mark.parametrize('text, expected', [
    ('127.0.0.1:8080', ('127.0.0.1', 8080)), (':8080', ('127.0.0.1', 8080)),
    ('0.0.0.0:1', ('0.0.0.0', 1)), ('[::1]:4840', ('::1', 4840)),
    ('localhost:8765', ('localhost', 8765))])
def test_addresses(text, expected):
    assert parse_address(text, '--api') == expected


@pytest.mark.parametrize('text, problem', [
    ('8080', 'HOST:PORT'), ('127.0.0.1:0', 'port'), ('127.0.0.1:99999', 'port'),
    ('example.com:80', 'IP address'), ('127.0.0.1:http', 'port')])
def test_bad_addresses_are_named(text, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_address(text, '--api')


def test_token_files(tmp_path):
    good = tmp_path / 'good'
    good.write_text('a' * 20 + '\n')
    assert read_token(good) == 'a' * 20
    short = tmp_path / 'short'
    short.write_text('abc')
    with pytest.raises(ConfigError, match='at least 16'):
        read_token(short)
    with pytest.raises(ConfigError, match='cannot read'):
        read_token(tmp_path / 'missing')


def test_settings_and_the_bring_up_helpers(tmp_path):
    token = tmp_path / 'token'
    token.write_text('t' * 32)
    assert HubSettings.from_parameters({}).api is None      # everything off by default
    s = HubSettings.from_parameters({'api.address': '127.0.0.1:8080',
                                     'api.token_file': str(token)})
    assert s.api == ('127.0.0.1', 8080) and s.writes_enabled and s.opcua is None
    with pytest.raises(ConfigError) as err:
        HubSettings.from_parameters({'api.address': 'x', 'opcua.address': '1.2.3.4:0',
                                     'dynamics_params_file': str(tmp_path / 'nope.yaml')})
    assert len(err.value.errors) == 3
    overrides = hub_overrides(api=':8080', api_token_file=str(token), opcua='127.0.0.1:4840')
    assert overrides['api.address'] == ':8080' and 'foxglove.address' not in overrides
    lines = hub_urls(overrides)
    assert lines[0] == 'dashboard  http://127.0.0.1:8080/'
    assert 'writes with the bearer token' in lines[1]
    assert lines[2] == 'OPC UA     opc.tcp://127.0.0.1:4840/robot_twin/'
    with pytest.raises(ConfigError, match='--foxglove'):
        hub_overrides(foxglove='nohost')
    graph = describe_graph('twin')
    spec = hub_spec(graph, overrides)
    (node,) = spec.nodes
    assert (spec.executable, node.name) == ('twin_hub', 'twin_hub')
    assert spec.params_files == (graph.config.path,)
    assert node.parameters['api.address'] == ':8080'
    assert node.parameters['urdf_path'] == graph.urdf


HUB_CONFIG = """\
robot_twin:
  ros__parameters:
    nodes: [twin_bridge, twin_sim]
/**:
  ros__parameters: {ledger_path: /var/log/twin.jsonl, joint_states_topic: /arm/joint_states}
/**/twin_hub:
  ros__parameters:
    api: {address: '127.0.0.1:8081'}
"""


def test_the_hub_joins_the_bring_up_only_when_asked(tmp_path):
    graph = describe_graph('twin')
    processes, values = with_hub(graph, {})
    assert processes == list(graph.processes) and values == {}           # off by default
    processes, values = with_hub(graph, {'foxglove.address': ':8765'})
    assert [p.executable for p in processes] == ['twin_container', 'twin_hub']
    # from a config file's twin_hub section; the twin's /** values reach the hub too, but not
    # joint_states_topic (the robot's topic), which is not a hub parameter
    path = tmp_path / 'c.yaml'
    path.write_text(HUB_CONFIG)
    processes, values = with_hub(describe_graph(str(path)), {})
    assert processes[-1].executable == 'twin_hub'
    assert values == {'ledger_path': '/var/log/twin.jsonl', 'api.address': '127.0.0.1:8081'}
    assert hub_urls(values)[0] == 'dashboard  http://127.0.0.1:8081/'
    # a config that lists twin_hub itself: the flags go to that node, no second hub
    path.write_text(HUB_CONFIG.replace('[twin_bridge, twin_sim]', '[twin_bridge, twin_hub]'))
    processes, values = with_hub(describe_graph(str(path)), {'opcua.address': ':4840'})
    hubs = [p for p in processes if p.executable == 'twin_hub']
    assert len(hubs) == 1 and hubs[0].nodes[0].parameters == {'opcua.address': ':4840'}
    assert values['api.address'] == '127.0.0.1:8081' and values['opcua.address'] == ':4840'


def test_ledger_tail_and_acknowledgements(tmp_path):
    path = tmp_path / 'ledger.jsonl'
    assert read_tail(path) == ([], '')
    with Ledger(path, durable=False) as ledger:
        for k in range(5):
            ledger.append('rul', {'k': k})
        message = append_acknowledgement(path, {'id': 1, 'joint': 'j2'})
        assert 'held by' in message                      # the twin writes it: refused
    assert append_acknowledgement(path, {'id': 1, 'joint': 'j2', 'note': 'ok'}) == ''
    entries, error = read_tail(path, 3)
    assert error == '' and [e['kind'] for e in entries] == ['rul', 'rul', 'anomaly_acknowledged']
    assert entries[-1]['data']['note'] == 'ok'
    assert verify_ledger(path).problem is None           # the chain is intact
    with open(path, 'a', encoding='utf-8') as f:
        f.write('not json\n')
    assert read_tail(path, 1)[0] == [{'malformed': 'not json'}]


def test_whatif_jobs_check_requests_and_report_a_failed_worker(tmp_path):
    s = _state()
    jobs = WhatIfJobs(s, str(tmp_path), max_samples=4, max_queued=0, python='/bin/false')
    with pytest.raises(JobRejected) as err:
        jobs.submit('no_such_scenario', 1)
    assert err.value.status == 422 and 'payload_sweep' in str(err.value)
    with pytest.raises(JobRejected, match='1..4'):
        jobs.submit('payload_sweep', 5)
    job = jobs.submit('payload_sweep', 2, seed=1)
    deadline = time.monotonic() + 30
    while s.job(job['id'])['status'] == 'running' and time.monotonic() < deadline:
        time.sleep(0.05)
        jobs.poll()
    done = s.job(job['id'])
    assert done['status'] == 'failed' and 'no summary' in done['error']
    assert done['returncode'] == 1 and done['files'] == ['log.txt']


def test_display_pairing_decodes_one_sample_per_period_with_its_prediction():
    from robot_twin.hub.pairing import DisplayPairing
    pairing = DisplayPairing(period_ns=20_000_000)
    ms = 1_000_000
    # a 1 kHz stream: measured and predicted of each robot sample, in either order
    decoded = []
    for k in range(100):
        now, stamp = k * ms, 10_000 * ms + k * ms
        first, second = (('measured', 'predicted') if k % 2 else ('predicted', 'measured'))
        for kind in (first, second):
            got = getattr(pairing, kind)(stamp, now, (kind, stamp))
            decoded += [payload for _kind, payload in got]
    measured = [s for kind, s in decoded if kind == 'measured']
    predicted = [s for kind, s in decoded if kind == 'predicted']
    assert len(measured) == 5                       # 100 ms at one per 20 ms
    assert predicted == measured                    # each with its own prediction


def test_display_pairing_falls_back_when_the_topics_never_share_a_sample():
    from robot_twin.hub.pairing import DisplayPairing
    pairing = DisplayPairing(period_ns=20)
    got = []
    for now in range(0, 200, 10):
        got += pairing.measured(2 * now, now, 'm') + pairing.predicted(2 * now + 1, now, 'p')
    assert [kind for kind, _ in got].count('predicted') >= 3


def test_a_twin_that_reports_slowly_is_not_stale_between_its_reports():
    # publish_rate_hz / status_rate_hz may be as low as 0.1 Hz: a status is stale after 3 s or
    # 3 of its own periods, whichever is longer (an alarm sent between the reports does not
    # shorten the period)
    s = TwinState(NAMES, 'arm', clock=lambda: 0.0)
    for t in (0.0, 5.0, 10.0, 10.2, 15.0):      # every 5 s, and an alarm at 10.2 s
        s.update_sync('OK', 'in sync', {}, now=t)
        s.update_anomaly([('twin/anomaly/robot', 'OK', 'nominal', {})], now=t)
    assert s.sync(now=29.0)['level'] == 'OK'
    assert s.sync(now=31.0)['level'] == 'STALE'
    assert s.anomalies(now=29.0)['robot']['level'] == 'OK'
    fast = TwinState(NAMES, 'arm', clock=lambda: 0.0)
    for t in (0.0, 0.1, 0.2):                   # 10 Hz: stale after 3 s
        fast.update_sync('OK', 'in sync', {}, now=t)
    assert fast.sync(now=3.1)['level'] == 'OK' and fast.sync(now=3.3)['level'] == 'STALE'
