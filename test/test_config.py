"""Config files and the parameter schema (robot_twin/config.py)."""
import json
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

from robot_twin import config as cfg
from robot_twin.config import ConfigError, load_config, load_rcl_yaml, PARAMETERS, \
    validate_value
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
                        assert spec.name in ('publish_rate_hz', 'payload_mass_kg',
                                             'dynamics_params_file'), (exe, other, spec.name)


def test_paramspec_rejects_a_default_outside_its_own_rules():
    with pytest.raises(ValueError, match='out of range'):
        cfg.ParamSpec('x', float, 2.0, 'd', min=0.0, max=1.0)
    with pytest.raises(ValueError, match='not one of'):
        cfg.ParamSpec('x', str, 'c', 'd', choices=('a', 'b'))
    with pytest.raises(TypeError):
        cfg.ParamSpec('x', dict, {}, 'd')
    with pytest.raises(ValueError, match='expected a float'):
        cfg.ParamSpec('x', list, (1.0, 'a'), 'd')


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
    ('corrective_actions.home_position', [0.0, 1.5], None),
    ('corrective_actions.home_position', [0.0, 1], 'write 1.0'),
    ('corrective_actions.home_position', 0.5, 'expected a list of floats'),
])
def test_validate_value_bridge(name, value, expected):
    problem = validate_value('twin_bridge', name, value)
    if expected is None:
        assert problem is None
    else:
        assert expected in problem and name in problem


def test_validate_value_other_nodes():
    assert validate_value('twin_plant', 'seed', True) is not None      # a bool is not an int
    assert validate_value('twin_plant', 'seed', 7) is None
    assert "twin_sim has no parameter 'mode'" in validate_value('twin_sim', 'mode', 'plant')
    assert validate_value('twin_anomaly', 'commissioning_duration_s', 0.5) is not None
    assert 'unknown node executable' in validate_value('plant', 'seed', 1)
    assert 'out of range' in validate_value('twin_bridge', 'velocity_factor', 0.5)


def test_the_plant_step_rate_is_a_parameter_of_its_own():
    # physics at step_rate_hz, /joint_states every k-th step at publish_rate_hz; 0 (the
    # default) steps at publish_rate_hz as before. That it divides: twin_sim.plant.step_schedule
    assert cfg.defaults('twin_plant')['step_rate_hz'] == 0.0
    assert validate_value('twin_plant', 'step_rate_hz', 1000.0) is None
    assert validate_value('twin_plant', 'step_rate_hz', 0.0) is None
    assert 'write 1000.0' in validate_value('twin_plant', 'step_rate_hz', 1000)
    for bad in (-1.0, 20000.0):
        assert 'step_rate_hz' in validate_value('twin_plant', 'step_rate_hz', bad)
        assert 'out of range [0.0, 10000.0]' in validate_value('twin_plant', 'step_rate_hz', bad)


# --- shipped configs ---------------------------------------------------------------------------

def test_shipped_twin_config():
    config = load_config(CONFIGS['twin'])
    assert config.nodes == ('twin_bridge', 'twin_sim', 'twin_anomaly')
    assert config.one_process == config.nodes          # the default: one process for the twin
    assert config.common['use_sim_time'] is False and config.common['urdf_path'] == ''


def test_shipped_hil_config():
    config = load_config(CONFIGS['hil'])
    assert config.nodes == ('plant',) and config.executables == {'plant': 'twin_plant'}
    assert config.one_process == ()


def test_shipped_demo_config():
    config = load_config(CONFIGS['demo'])
    assert config.nodes == ('plant', 'twin_bridge', 'twin_sim', 'twin_anomaly',
                            'demo_controller')
    assert config.one_process == ('twin_bridge', 'twin_sim', 'twin_anomaly')


def test_one_process_can_be_chosen(tmp_path):
    config = load_config(write(tmp_path, textwrap.dedent("""\
    robot_twin:
      ros__parameters:
        nodes: [twin_bridge, twin_sim, twin_anomaly]
        one_process: [twin_sim, twin_bridge]
    """)))
    assert config.one_process == ('twin_bridge', 'twin_sim')     # in start order


@pytest.mark.parametrize('text', ['5e-2', '5.0e-2', '0.5e-1', '.5e-1', '5.e-2', '0.05'])
def test_exponent_floats_read_as_rcl_does(tmp_path, text):
    # rcl takes any number strtod reads; a YAML 1.1 reader takes 5e-2 and 5.0e-2 (no sign in
    # the exponent) for strings, and the bring-up refused a file ros2 launch would run
    path = write(tmp_path,
                 GRAPH + f'/**/twin_bridge:\n  ros__parameters: {{stale_timeout_s: {text}}}\n')
    load_config(path)
    assert load_rcl_yaml(f'x: {text}') == {'x': 0.05}
    assert load_rcl_yaml('x: e5\ny: 1e5x\nz: 1.0e+9') == {'x': 'e5', 'y': '1e5x', 'z': 1e9}


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
    ('/**/twin_bridge:\n  ros__parameters: {unknown_joints: drop}\n',
     ["unknown_joints = 'drop'", 'reject, ignore']),
    ('/**:\n  ros__parameters: {stale_timeout_z: 0.1}\n',
     ['/**', "no node of this file has parameter 'stale_timeout_z'"]),
    ('/**:\n  ros__parameters: {stale_timeout_s: -1.0}\n', ['/**', 'stale_timeout_s = -1.0']),
    ('/**/twin_sim:\n  ros__parameters: {payload_mass_kg: }\n', ['payload_mass_kg has no value']),
    ('/**/twin_sim:\n  ros__parameters: [1, 2]\n', ['ros__parameters must be a map']),
    ('/**/twin_sim: 3\n', ['expected a map with ros__parameters']),
])
def test_bad_node_sections(tmp_path, body, expected):
    message = errors_of(write(tmp_path, GRAPH + body))
    assert 'c.yaml' in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize('graph, expected', [
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
     ["remappings.twin_sim: ['a=b'] is not a list"]),
    ('robot_twin:\n  ros__parameters: {nodes: [twin_sim], one_process: [twin_bridge]}\n',
     ['one_process must list nodes of nodes']),
    ('robot_twin:\n  ros__parameters: {nodes: [twin_sim], start: true}\n',
     ["unknown entry 'start'"]),
    ('robot_twin:\n  ros__parameters: {nodes: [9lives], executables: {9lives: twin_sim}}\n',
     ["'9lives' is not a valid node name"]),
    # twin_container cannot run the hub: caught here, not as exit 2 once processes started
    ('robot_twin:\n  ros__parameters: {nodes: [twin_bridge, twin_hub],\n'
     '    one_process: [twin_bridge, twin_hub]}\n',
     ["one_process: 'twin_hub' is a twin_hub, which always runs in a process of its own"]),
    ('robot_twin:\n  ros__parameters: {nodes: [twin_bridge, api], executables: {api: twin_hub},'
     '\n    one_process: [twin_bridge, api]}\n',
     ["one_process: 'api' is a twin_hub"]),
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


# --- the shipped files and the schema through real rcl/rclpy -------------------------------------

_RCLPY_SCRIPT = r"""
import json, sys
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from robot_twin.config import ConfigError, load_config
from robot_twin.nodes.params import declare_node_parameters

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
                               Parameter('unknown_joints', value='ignore')])
out['set'] = [[r.successful, r.reason] for r in results]
desc = node.describe_parameters(['max_future_s'])[0]
out['range'] = [desc.floating_point_range[0].from_value, desc.floating_point_range[0].to_value]
node.destroy_node()
rclpy.shutdown()
print(json.dumps(out))
"""


def test_shipped_configs_start_every_node_as_meant_through_rcl():
    """Read the shipped files with rcl itself: every node starts with the values they mean."""
    cases = [(str(p), ns) for p in CONFIGS.values() for ns in ('', '/arm1')]
    result = subprocess.run(
        [sys.executable, '-c', _RCLPY_SCRIPT, json.dumps(cases)], cwd=ROOT,
        env=localhost_env(free_domain_id(seed=37)), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for ns in ('', '/arm1'):
        twin = {name: out[f'{CONFIGS["twin"]}|{ns}|{name}']
                for name in ('twin_bridge', 'twin_sim', 'twin_anomaly')}
        assert twin['twin_bridge']['corrective_actions.enabled'] is False
        assert twin['twin_bridge']['stale_timeout_s'] == 0.1
        assert twin['twin_anomaly']['commissioning_duration_s'] == 30.0
        for values in twin.values():          # the /** section reaches every node
            assert values['use_sim_time'] is False and values['wrench_force_range_n'] == 1000.0
        plant = out[f'{CONFIGS["demo"]}|{ns}|plant']
        assert plant['scenario'] == 'demo' and plant['publish_rate_hz'] == 1000.0
        assert out[f'{CONFIGS["demo"]}|{ns}|twin_anomaly']['commissioning_duration_s'] == 36.0
        assert out[f'{CONFIGS["hil"]}|{ns}|plant']['publish_rate_hz'] == 1000.0
        assert out[f'{CONFIGS["hil"]}|{ns}|plant']['step_rate_hz'] == 1000.0
        assert plant['step_rate_hz'] == 0.0                  # the demo: as publish_rate_hz
    assert "corrective_actions.interface = 'velocity'" in out['bad_start']
    # the nodes read these once at start-up: changing them at run time is refused (restart)
    for ok, reason in out['set']:
        assert not ok and 'read-only' in reason
    # corrective actions can be switched on and off while running
    assert out['live'] == [[True, '']]
    assert out['range'] == [0.0, 60.0]


def test_every_rul_setting_is_an_anomaly_node_parameter_with_its_default_and_range():
    from dataclasses import fields
    from twin_anomaly.rul_monitor import RulConfig
    specs = {p.name: p for p in PARAMETERS['twin_anomaly']}
    for f in fields(RulConfig):
        spec = specs.get(f'rul.{f.name}')
        assert spec is not None, f'rul.{f.name} is not a twin_anomaly parameter'
        assert (spec.type, spec.default, spec.min, spec.max) == (
            type(f.default), f.default, f.metadata['min'], f.metadata['max']), f.name
        assert spec.read_only, f.name
    # the node's defaults make the monitor's defaults
    assert RulConfig.from_parameters(cfg.defaults('twin_anomaly')) == RulConfig()
    # and a value set in a params file reaches it
    changed = {**cfg.defaults('twin_anomaly'), 'rul.warn_below_health': 0.4,
               'rul.rebaseline_epochs': 5, 'rul.stale_after_s': 30.0}
    config = RulConfig.from_parameters(changed)
    assert (config.warn_below_health, config.rebaseline_epochs, config.stale_after_s) == \
        (0.4, 5, 30.0)
    assert validate_value('twin_anomaly', 'rul.rebaseline_epochs', 0) is not None
