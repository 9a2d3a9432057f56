"""Config files and the parameter schema (robot_twin/config.py)."""
import json
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

from robot_twin import config as cfg
from robot_twin.config import ConfigError, load_config, PARAMETERS, validate_value
from robot_twin.ros_env import free_domain_id, localhost_env

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {name: ROOT / 'config' / f'{name}.yaml' for name in ('twin', 'hil', 'demo')}

GRAPH = 'robot_twin:\n  ros__parameters:\n    nodes: [twin_bridge, twin_sim, twin_anomaly]\n'


def write(tmp_path, text, name='c.yaml'):
    path = tmp_path / name
    path.write_text(text)
    return path


def errors_of(path):
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# --- schema ------------------------------------------------------------------------------------

def test_schema_is_consistent():
    for exe, specs in PARAMETERS.items():
        names = [p.name for p in specs]
        assert len(names) == len(set(names)), exe
        for spec in specs:
            assert spec.description.strip(), (exe, spec.name)
            assert validate_value(exe, spec.name, spec.default) is None, (exe, spec.name)
            if spec.type in (int, float):
                assert spec.min is not None and spec.max is not None and spec.min < spec.max
            # a parameter shared by several executables means the same everywhere
            for other, other_specs in PARAMETERS.items():
                for o in other_specs:
                    if o.name == spec.name and o.description != spec.description:
                        assert spec.name == 'publish_rate_hz', (exe, other, spec.name)


def test_paramspec_rejects_a_default_outside_its_own_rules():
    with pytest.raises(ValueError, match='out of range'):
        cfg.ParamSpec('x', float, 2.0, 'd', min=0.0, max=1.0)
    with pytest.raises(ValueError, match='not one of'):
        cfg.ParamSpec('x', str, 'c', 'd', choices=('a', 'b'))
    with pytest.raises(TypeError):
        cfg.ParamSpec('x', list, [], 'd')


@pytest.mark.parametrize('name, value, expected', [
    ('stale_timeout_s', 0.5, None),
    ('stale_timeout_s', 1, 'write 1.0'),              # ROS does not turn 1 into 1.0
    ('stale_timeout_s', 20.0, 'out of range [0.001, 10.0]'),
    ('stale_timeout_s', float('nan'), 'not a finite number'),
    ('stale_timeout_s', '0.1', 'is a string, expected a float'),
    ('stale_timeout_s', [0.1], 'is a list'),
    ('corrective_actions.enabled', 1, 'expected a bool'),
    ('corrective_actions.enabled', True, None),
    ('corrective_actions.interface', 'velocity', 'not one of trajectory, forward_position'),
    ('unknown_joints', 'ignore', None),
    ('use_sim_time', True, None),
    ('qos_overrides./joint_states.subscription.depth', 5, None),
    ('stale_timeout', 0.1, "did you mean 'stale_timeout_s'"),
])
def test_validate_value_bridge(name, value, expected):
    problem = validate_value('twin_bridge', name, value)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem and name in problem


def test_validate_value_other_nodes():
    assert validate_value('twin_sim', 'seed', True) is not None      # a bool is not an int
    assert validate_value('twin_sim', 'seed', 7) is None
    assert 'not one of mirror, plant' in validate_value('twin_sim', 'mode', 'replay')
    assert validate_value('twin_anomaly', 'commissioning_duration_s', 0.5) is not None
    assert 'unknown node executable' in validate_value('plant', 'mode', 'plant')


# --- shipped configs ---------------------------------------------------------------------------

def test_shipped_twin_config():
    config = load_config(CONFIGS['twin'])
    assert config.nodes == ('twin_bridge', 'twin_sim', 'twin_anomaly')
    assert config.parameters('twin_sim')['mode'] == 'mirror'
    bridge = config.parameters('twin_bridge')
    assert bridge['corrective_actions.enabled'] is False
    assert bridge['stale_timeout_s'] == 0.1 and bridge['use_sim_time'] is False
    assert config.parameters('twin_anomaly')['commissioning_duration_s'] == 30.0


def test_shipped_hil_config():
    config = load_config(CONFIGS['hil'])
    assert config.nodes == ('plant',) and config.executables == {'plant': 'twin_sim'}
    plant = config.parameters('plant')
    assert plant['mode'] == 'plant' and plant['use_sim_time'] is False
    assert plant['publish_rate_hz'] == 1000.0


def test_shipped_demo_config():
    config = load_config(CONFIGS['demo'])
    assert config.nodes == ('plant', 'twin_bridge', 'twin_sim', 'twin_anomaly',
                            'demo_controller')
    plant = config.parameters('plant')
    assert plant['mode'] == 'plant' and plant['scenario'] == 'demo'
    for name in config.nodes:                   # the plant stamps with the system clock
        assert config.parameters(name)['use_sim_time'] is False, name
    assert config.parameters('twin_sim')['mode'] == 'mirror'
    assert config.parameters('twin_anomaly')['commissioning_duration_s'] == 8.0


def test_sections_follow_rcl_matching(tmp_path):
    path = write(tmp_path, GRAPH + textwrap.dedent("""\
    /**:
      ros__parameters: {stale_timeout_s: 0.2, mode: mirror}
    twin_bridge:
      ros__parameters: {stale_timeout_s: 0.3}
    /arm1/twin_bridge:
      ros__parameters: {stale_timeout_s: 0.4}
    /*/twin_anomaly:
      ros__parameters: {persistence_s: 1.0}
    """))
    config = load_config(path)
    assert config.parameters('twin_bridge')['stale_timeout_s'] == 0.3
    assert config.parameters('twin_bridge', '/arm1')['stale_timeout_s'] == 0.4
    assert config.parameters('twin_bridge', '/arm2')['stale_timeout_s'] == 0.2
    assert config.parameters('twin_anomaly')['persistence_s'] == 0.2       # /* needs a token
    assert config.parameters('twin_anomaly', '/arm1')['persistence_s'] == 1.0
    assert config.parameters('twin_anomaly', '/a/b')['persistence_s'] == 0.2


def test_nested_namespace_form_and_exponent_floats(tmp_path):
    path = write(tmp_path, GRAPH + textwrap.dedent("""\
    arm1:
      twin_bridge:
        ros__parameters:
          stale_timeout_s: 5e-2
    """))
    config = load_config(path)
    assert config.parameters('twin_bridge', '/arm1')['stale_timeout_s'] == 0.05


# --- bad configs give errors that name the field -------------------------------------------------

@pytest.mark.parametrize('body, expected', [
    ('/**/twin_brige:\n  ros__parameters: {stale_timeout_s: 0.1}\n',
     ["unknown node 'twin_brige'", "did you mean 'twin_bridge'"]),
    ('/**/twin_bridge:\n  ros__parameters: {stale_timout_s: 0.1}\n',
     ['/**/twin_bridge', "no parameter 'stale_timout_s'", "did you mean 'stale_timeout_s'"]),
    ('/**/twin_bridge:\n  ros__parameters: {stale_timeout_s: 1}\n',
     ['/**/twin_bridge', 'stale_timeout_s = 1', 'write 1.0']),
    ('/**/twin_bridge:\n  ros__parameters:\n    corrective_actions: {velocity_scale: 2.0}\n',
     ['corrective_actions.velocity_scale = 2.0', 'out of range']),
    ('/**/twin_sim:\n  ros__parameters: {mode: replay}\n', ["mode = 'replay'", 'mirror, plant']),
    ('/**:\n  ros__parameters: {stale_timeout_z: 0.1}\n',
     ['/**', "no node of this file has parameter 'stale_timeout_z'"]),
    ('/**:\n  ros__parameters: {stale_timeout_s: -1.0}\n', ['/**', 'stale_timeout_s = -1.0']),
    ('/**/twin_sim:\n  ros__parameters: {mode: plant, use_sim_time: true}\n',
     ['node twin_sim', 'publishes /clock', 'use_sim_time must be false']),
    ('/**/twin_sim:\n  ros__parameters: {scenario: }\n', ['scenario has no value']),
    ('/**/twin_sim:\n  ros__parameters: {scenario: []}\n', ['scenario is an empty list']),
    ('/**/twin_sim:\n  ros__parameters: {scenario: [1, 2.5]}\n', ['all of one type']),
    ('/**/twin_sim:\n  ros__parameters: {scenario: [{a: 1}]}\n', ['all of one type']),
    ('/**/twin_sim:\n  other: 1\n  ros__parameters: {seed: 1}\n',
     ['only ros__parameters may sit beside a node name']),
])
def test_bad_node_sections(tmp_path, body, expected):
    message = errors_of(write(tmp_path, GRAPH + body))
    assert 'c.yaml' in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize('graph, expected', [
    ('robot_twin:\n  nodes: [twin_bridge]\n', ['robot_twin: put its entries under ros__param']),
    ('twin_bridge:\n  ros__parameters: {}\n', ['no robot_twin section']),
    ('robot_twin:\n  ros__parameters: {nodes: []}\n', ['nodes must be a non-empty list']),
    ('robot_twin:\n  ros__parameters: {nodes: [plant]}\n', ["node 'plant' needs executables"]),
    ('robot_twin:\n  ros__parameters: {nodes: [a, a], executables: {a: twin_sim}}\n',
     ["['a'] listed more than once"]),
    ('robot_twin:\n  ros__parameters: {nodes: [p], executables: {p: gazebo}}\n',
     ["executables.p = 'gazebo' is not one of"]),
    ('robot_twin:\n  ros__parameters: {nodes: [twin_sim], executables: {x: twin_sim}}\n',
     ["executables.x names node 'x', which nodes does not list"]),
    ('robot_twin:\n  ros__parameters: {nodes: [twin_sim], remappings: {twin_sim: [a=b]}}\n',
     ["remappings.twin_sim: ['a=b'] is not a remapping"]),
    ('robot_twin:\n  ros__parameters: {nodes: [twin_sim], start: true}\n',
     ["unknown entry 'start'"]),
    ('robot_twin:\n  ros__parameters: {nodes: [9lives], executables: {9lives: twin_sim}}\n',
     ["'9lives' is not a valid node name"]),
])
def test_bad_graph_sections(tmp_path, graph, expected):
    message = errors_of(write(tmp_path, graph))
    for part in expected:
        assert part in message, message


def test_unreadable_files(tmp_path):
    assert 'file not found' in errors_of(tmp_path / 'missing.yaml')
    assert 'cannot read it' in errors_of(write(tmp_path, 'a: [b\n'))
    assert 'expected a ROS 2 params file' in errors_of(write(tmp_path, '- 1\n'))


def test_every_problem_is_listed(tmp_path):
    message = errors_of(write(tmp_path, GRAPH + textwrap.dedent("""\
    /**/twin_bridge:
      ros__parameters: {stale_timeout_s: 1, status_rate_hz: 0.0}
    """)))
    assert '2 problems' in message and 'stale_timeout_s' in message
    assert 'status_rate_hz' in message


def test_parse_bool():
    assert cfg.parse_bool('True', 'x') is True and cfg.parse_bool('0', 'x') is False
    with pytest.raises(ConfigError, match="rviz = 'yes': expected true or false"):
        cfg.parse_bool('yes', 'rviz')


# --- the same files and schema through real rcl/rclpy -----------------------------------------

_RCLPY_SCRIPT = r"""
import json, sys
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from robot_twin.config import ConfigError, declare_node_parameters, load_config

out = {}
for path, namespace in json.loads(sys.argv[1]):
    config = load_config(path)
    for name in config.nodes:
        exe = config.executables[name]
        rclpy.init(args=['--ros-args', '--params-file', path, '-r', f'__node:={name}',
                         '-r', f'__ns:={namespace or "/"}'])
        node = Node('placeholder')
        values = declare_node_parameters(node, exe)
        values['use_sim_time'] = node.get_parameter('use_sim_time').value
        out[f'{path}|{namespace}|{name}'] = values
        node.destroy_node()
        rclpy.shutdown()

# a value the descriptors cannot express (a choice) is refused at start-up and on change
rclpy.init(args=['--ros-args', '-p', 'corrective_actions.interface:=velocity'])
node = Node('twin_bridge')
try:
    declare_node_parameters(node, 'twin_bridge')
    out['bad_start'] = 'accepted'
except ConfigError as exc:
    out['bad_start'] = str(exc)
node.destroy_node()
rclpy.shutdown()
rclpy.init(args=[])
node = Node('twin_bridge')
declare_node_parameters(node, 'twin_bridge')
results = node.set_parameters([Parameter('corrective_actions.enabled', value=True)])
out['live'] = [[r.successful, r.reason] for r in results]
node.destroy_node()
node = Node('twin_sim')
declare_node_parameters(node, 'twin_sim')
results = node.set_parameters([Parameter('payload_mass_kg', value=1.0),
                               Parameter('unknown_joints', value='ignore'),
                               Parameter('mode', value='plant')])
out['set'] = [[r.successful, r.reason] for r in results]
desc = node.describe_parameters(['max_future_s'])[0]
out['range'] = [desc.floating_point_range[0].from_value, desc.floating_point_range[0].to_value]
node.destroy_node()
rclpy.shutdown()
print(json.dumps(out))
"""


def test_configs_read_the_same_by_rclpy():
    """Check that rcl parses the shipped files and each node gets what Config.parameters() says."""
    cases = [(str(p), ns) for p in CONFIGS.values() for ns in ('', '/arm1')]
    result = subprocess.run(
        [sys.executable, '-c', _RCLPY_SCRIPT, json.dumps(cases)], cwd=ROOT,
        env=localhost_env(free_domain_id(seed=37)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for path, namespace in cases:
        config = load_config(path)
        for name in config.nodes:
            assert out[f'{path}|{namespace}|{name}'] == config.parameters(name, namespace), (
                path, namespace, name)
    assert "corrective_actions.interface = 'velocity'" in out['bad_start']
    # the nodes read these once at start-up: changing them at run time is refused (restart)
    for ok, reason in out['set']:
        assert not ok and 'read-only' in reason
    # corrective actions can be switched on and off while running
    assert out['live'] == [[True, '']]
    assert out['range'] == [0.0, 60.0]
