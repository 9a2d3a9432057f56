"""
The launch files start exactly the nodes ``robot-twin up`` starts, with the same arguments.

There is no ``launch``/``launch_ros`` here (ROS 2 comes from PyPI wheels), so small recording
fakes of the parts the launch files use stand in for them. The fakes keep the real signatures
(keyword-only arguments, the ExecuteProcess keywords Node forwards) and the checks the real
classes make, so a misspelt argument fails here as it would under ``ros2 launch``.
"""
import contextlib
import importlib.util
import io
from pathlib import Path
import re
import shlex
import sys
import textwrap
import types
import warnings
import xml.etree.ElementTree as ElementTree

import pytest
from robot_twin import bringup
from robot_twin.entry_points import NODE_MODULES
from robot_twin.graph import urdf_root_link
from twin_sim.resources import data_path
import yaml

ROOT = Path(__file__).resolve().parents[1]
ARGUMENTS = {'urdf', 'namespace', 'use_sim_time', 'config', 'rviz', 'one_process',
             'api', 'api_token_file', 'opcua', 'foxglove'}     # the last four: twin_hub
# keywords launch_ros.actions.Node forwards to launch.actions.ExecuteProcess
EXECUTE_PROCESS_KWARGS = {
    'cwd', 'env', 'additional_env', 'shell', 'sigterm_timeout', 'sigkill_timeout',
    'emulate_tty', 'output', 'output_format', 'log_cmd', 'on_exit', 'respawn',
    'respawn_delay', 'respawn_max_retries', 'cached_output', 'condition', 'prefix'}


class FakeAction:

    def __init__(self, *, condition=None):
        self.condition = condition


class LaunchDescription:

    def __init__(self, initial_entities=None, *, deprecated_reason=None):
        self.entities = list(initial_entities or [])


class DeclareLaunchArgument(FakeAction):

    def __init__(self, name, *, default_value=None, description=None, choices=None, **kwargs):
        super().__init__(**kwargs)
        if choices is not None and default_value is not None and default_value not in choices:
            raise ValueError(f'{name}: default {default_value!r} not in choices {choices}')
        self.name, self.default_value = name, default_value
        self.description, self.choices = description, choices


class OpaqueFunction(FakeAction):

    def __init__(self, *, function, args=None, kwargs=None, **left_over):
        super().__init__(**left_over)
        assert callable(function)
        self.function, self.args, self.kwargs = function, list(args or []), dict(kwargs or {})

    def execute(self, context):
        return self.function(context, *self.args, **self.kwargs)


class LaunchConfiguration:

    def __init__(self, variable_name, *, default=None):
        self.variable_name, self.default = variable_name, default

    def perform(self, context):
        if self.variable_name in context.launch_configurations:
            return context.launch_configurations[self.variable_name]
        if self.default is None:
            raise KeyError(f'launch configuration {self.variable_name!r} is not set')
        return self.default


class OnShutdown:

    def __init__(self, *, on_shutdown, **kwargs):
        assert callable(on_shutdown)     # a callable (event, context), as launch calls it
        self.on_shutdown = on_shutdown


class RegisterEventHandler(FakeAction):

    def __init__(self, event_handler, **kwargs):
        super().__init__(**kwargs)
        self.event_handler = event_handler


class Shutdown(FakeAction):

    def __init__(self, *, reason='reason not given', **kwargs):
        super().__init__(**kwargs)        # launch.actions.Shutdown is an EmitEvent action
        self.reason = reason


class IfCondition:

    def __init__(self, predicate_expression):
        self.predicate_expression = predicate_expression


class Node(FakeAction):
    def __init__(self, *, executable, package=None, name=None, namespace=None, exec_name=None,
                 parameters=None, remappings=None, ros_arguments=None, arguments=None,
                 **kwargs):
        unknown = set(kwargs) - EXECUTE_PROCESS_KWARGS
        assert not unknown, f'launch_ros Node has no argument {unknown}'
        super().__init__(condition=kwargs.get('condition'))
        assert parameters is None or isinstance(parameters, list)  # as launch_ros requires
        for entry in parameters or []:
            if isinstance(entry, dict):
                for key, value in entry.items():
                    ok = isinstance(value, (bool, int, float, str)) or (
                        isinstance(value, list) and value)
                    assert ok, f'launch_ros cannot pass parameter {key} = {value!r}'
            else:
                assert isinstance(entry, str) and Path(entry).is_file(), entry
        for rule in remappings or []:
            assert len(rule) == 2 and all(isinstance(r, str) for r in rule), rule
        self.package, self.executable, self.name, self.namespace = (
            package, executable, name, namespace)
        self.parameters = list(parameters or [])
        self.remappings = [tuple(r) for r in remappings or []]
        self.arguments = list(arguments or [])
        self.output = kwargs.get('output')
        self.on_exit = kwargs.get('on_exit')
        assert self.on_exit is None or isinstance(self.on_exit, (FakeAction, list)), self.on_exit


_REGISTERED = []
"""Event handlers the launch files registered, run when a test ends (fake_launch)."""


class FakeContext:

    def __init__(self, launch_configurations):
        self.launch_configurations = dict(launch_configurations)


@pytest.fixture
def fake_launch(monkeypatch):
    modules = {
        'launch': {'LaunchDescription': LaunchDescription},
        'launch.actions': {'DeclareLaunchArgument': DeclareLaunchArgument,
                           'OpaqueFunction': OpaqueFunction,
                           'RegisterEventHandler': RegisterEventHandler,
                           'Shutdown': Shutdown},
        'launch.event_handlers': {'OnShutdown': OnShutdown},
        'launch.substitutions': {'LaunchConfiguration': LaunchConfiguration},
        'launch.conditions': {'IfCondition': IfCondition},
        'launch_ros': {},
        'launch_ros.actions': {'Node': Node},
    }
    for name, attributes in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    yield
    while _REGISTERED:        # as launch does on shutdown: the override files go
        handler = _REGISTERED.pop()
        if isinstance(handler, OnShutdown):
            handler.on_shutdown(object(), FakeContext({}))


def run_launch_file(profile, handlers=None, **arguments):
    """
    Import launch/<profile>.launch.py, run it with the given arguments, return its actions.

    The event handlers it registers are appended to ``handlers`` (a list), if given.
    """
    path = ROOT / 'launch' / f'{profile}.launch.py'
    spec = importlib.util.spec_from_file_location(f'launch_file_{profile}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    assert isinstance(description, LaunchDescription)
    declared = [e for e in description.entities if isinstance(e, DeclareLaunchArgument)]
    unknown = set(arguments) - {d.name for d in declared}
    assert not unknown, f'{profile}.launch.py declares no {unknown}'
    values = {d.name: d.default_value for d in declared}
    for name, value in arguments.items():
        choices = next(d.choices for d in declared if d.name == name)
        assert choices is None or value in choices, (name, value)
        values[name] = value
    context = FakeContext(values)
    nodes = []
    for entity in description.entities:
        if isinstance(entity, OpaqueFunction):
            nodes += entity.execute(context)
        elif isinstance(entity, Node):
            nodes.append(entity)
    registered = [n.event_handler for n in nodes if isinstance(n, RegisterEventHandler)]
    nodes = [n for n in nodes if not isinstance(n, RegisterEventHandler)]
    _REGISTERED.extend(registered)
    if handlers is not None:
        handlers += registered
    assert all(isinstance(n, Node) for n in nodes)
    return declared, nodes


def _files(paths):
    """Split params files into the config files and the overrides written per process."""
    config = tuple(p for p in paths if not Path(p).name.endswith('.overrides.yaml'))
    overrides = {}
    for path in paths:
        if Path(path).name.endswith('.overrides.yaml'):
            overrides.update(yaml.safe_load(Path(path).read_text()))
    return config, overrides


def launch_view(node):
    """Return what a launch_ros Node passes to its process, in comparable form."""
    config, overrides = _files([p for p in node.parameters if isinstance(p, str)])
    parameters = {}
    for entry in node.parameters:
        if isinstance(entry, dict):
            parameters.update(entry)
    return (node.package, node.executable, node.name, node.namespace or '', config, overrides,
            tuple(sorted(parameters.items())), tuple(node.remappings), tuple(node.arguments))


def parse_command(argv):
    """Read a ``robot-twin up`` command line back into the same form as :func:`launch_view`."""
    module = re.search(r"run_module\('(\S+)'\)", argv[2]).group(1)
    executable = {m: e for e, m in NODE_MODULES.items()}[module]
    arguments = tuple(argv[3:argv.index('--ros-args')])
    ros = argv[argv.index('--ros-args') + 1:]
    name, namespace, files, parameters, remappings = None, '', [], {}, []
    for flag, value in zip(ros[::2], ros[1::2]):
        key, _, rest = value.rpartition(':=')
        if flag == '--params-file':
            files.append(value)
        elif flag == '-p':
            parameters[key] = yaml.safe_load(rest)
        elif flag == '-r' and key == '__node':
            name = rest
        elif flag == '-r' and key == '__ns':
            namespace = rest
        elif flag == '-r':
            remappings.append((key, rest))
        else:
            raise AssertionError(f'unexpected {flag} {value}')
    config, overrides = _files(files)
    return ('robot_twin', executable, name, namespace, config, overrides,
            tuple(sorted(parameters.items())), tuple(remappings), arguments)


def up_commands(*args):
    """Run ``robot-twin up --dry-run`` and return its command lines."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = bringup.main(['up', '--dry-run', *args])
    assert code == 0
    return [shlex.split(line) for line in out.getvalue().splitlines()]


def twin_nodes(nodes):
    return [n for n in nodes if n.package == 'robot_twin']


CUSTOM = """\
robot_twin:
  ros__parameters:
    nodes: [rig, twin_bridge, twin_sim]
    executables: {rig: twin_plant}
    remappings:
      twin_bridge: ['/joint_states:=/arm/joint_states', 'x:=/y']
/**/rig:
  ros__parameters: {seed: 3}
"""


@pytest.mark.parametrize('profile', ['twin', 'hil', 'demo'])
def test_declared_arguments(fake_launch, profile):
    declared, _nodes = run_launch_file(profile)
    assert {d.name for d in declared} == ARGUMENTS
    for argument in declared:
        assert argument.description and argument.description.strip(), argument.name
    config = next(d for d in declared if d.name == 'config').default_value
    assert config == data_path('config', f'{profile}.yaml')


@pytest.mark.parametrize('profile, launch_args, up_args', [
    ('twin', {}, []),
    ('hil', {}, []),
    ('demo', {}, []),
    ('twin', {'urdf': str(ROOT / 'urdf' / 'robot_twin_arm.urdf'), 'namespace': 'arm1',
              'use_sim_time': 'true'},
     ['--urdf', str(ROOT / 'urdf' / 'robot_twin_arm.urdf'), '--namespace', 'arm1',
      '--use-sim-time', 'true']),
    ('demo', {'use_sim_time': 'false', 'namespace': '/lab/arm'},
     ['--use-sim-time', 'false', '--namespace', '/lab/arm']),
    ('demo', {'one_process': 'false'}, ['--separate-processes']),
    ('custom', {}, []),
    ('twin', {'api': '127.0.0.1:8080', 'opcua': '127.0.0.1:4840', 'foxglove': ':8765'},
     ['--api', '127.0.0.1:8080', '--opcua', '127.0.0.1:4840', '--foxglove', ':8765']),
])
def test_launch_and_up_start_the_same_nodes(fake_launch, tmp_path, profile, launch_args,
                                            up_args):
    if profile == 'custom':
        path = tmp_path / 'custom.yaml'
        path.write_text(CUSTOM)
        launch_args = {'config': str(path)}
        up_args = ['--config', str(path)]
        _declared, nodes = run_launch_file('twin', **launch_args)
    else:
        _declared, nodes = run_launch_file(profile, **launch_args)
        up_args = ['--config', data_path('config', f'{profile}.yaml'), *up_args]
    from_launch = [launch_view(n) for n in twin_nodes(nodes)]
    from_up = [parse_command(argv) for argv in up_commands(*up_args)]
    assert from_launch == from_up          # same nodes, same arguments, same start order
    assert from_launch                     # and not trivially
    for node in twin_nodes(nodes):
        assert node.output == 'screen'


def test_overrides_reach_every_node_but_the_plant_clock(fake_launch):
    urdf = str(ROOT / 'urdf' / 'robot_twin_arm.urdf')
    _declared, nodes = run_launch_file('demo', urdf=urdf, use_sim_time='true', namespace='arm1')
    processes = twin_nodes(nodes)
    assert [(p.executable, p.name) for p in processes] == [
        ('twin_plant', 'plant'), ('twin_container', None), ('demo_controller', 'demo_controller')]
    twin = processes[1]
    assert twin.arguments == ['--node', 'twin_bridge:twin_bridge', '--node', 'twin_sim:twin_sim',
                              '--node', 'twin_anomaly:twin_anomaly']
    for process in processes:
        assert process.namespace == '/arm1'
        assert process.parameters[0] == data_path('config', 'demo.yaml')
        _config, overrides = _files(process.parameters)
        for key, section in overrides.items():
            values = section['ros__parameters']
            assert values['urdf_path'] == urdf
            assert values.get('use_sim_time') == (None if key == '/**/plant' else True), key
        assert len(overrides) == (3 if process is twin else 1)


def test_custom_config_remappings_and_executables(fake_launch, tmp_path):
    path = tmp_path / 'custom.yaml'
    path.write_text(CUSTOM)
    _declared, nodes = run_launch_file('twin', config=str(path))
    rig, twin = twin_nodes(nodes)
    assert (rig.name, rig.executable) == ('rig', 'twin_plant')
    assert twin.remappings == [('twin_bridge:/joint_states', '/arm/joint_states'),
                               ('twin_bridge:x', '/y')]
    # the rig is a plant: the emulated robot gets a robot_state_publisher of its own
    assert 'robot_state_publisher' in {n.name for n in nodes}


@pytest.mark.parametrize('profile, has_twin, has_plant', [
    ('twin', True, False), ('hil', False, True), ('demo', True, True)])
def test_visualization_nodes(fake_launch, profile, has_twin, has_plant):
    urdf_file = ROOT / 'urdf' / 'robot_twin_arm.urdf'
    for rviz in ('false', 'true'):
        _declared, nodes = run_launch_file(profile, rviz=rviz)
        helpers = {n.name: n for n in nodes if n.package != 'robot_twin'}
        expected = {'twin_state_publisher', 'twin_base_tf'} if has_twin else set()
        expected |= {'robot_state_publisher'} if has_plant else set()
        expected |= {'rviz2'} if rviz == 'true' else set()
        assert set(helpers) == expected
    rviz_config = helpers['rviz2'].arguments
    assert rviz_config[0] == '-d' and Path(rviz_config[1]).is_file()
    assert rviz_config[2:] == ['-f', 'base_link']         # the URDF's root link
    if has_plant:
        robot = helpers['robot_state_publisher']
        assert robot.parameters[0]['robot_description'] == urdf_file.read_text()
        assert 'frame_prefix' not in robot.parameters[0]
        assert robot.remappings == [('joint_states', '/joint_states'),
                                    ('robot_description', '/robot_description')]
    if not has_twin:
        return
    twin_rsp = helpers['twin_state_publisher']
    params = twin_rsp.parameters[0]
    assert params['frame_prefix'] == 'twin/'
    assert params['robot_description'] == urdf_file.read_text()
    assert ('joint_states', '/twin/joint_states') in twin_rsp.remappings
    root = urdf_root_link(urdf_file)
    assert root == 'base_link'
    assert helpers['twin_base_tf'].arguments == ['--frame-id', root,
                                                 '--child-frame-id', 'twin/' + root]
    # the helpers follow the twin nodes' clock
    assert params['use_sim_time'] is False
    _declared, nodes = run_launch_file(profile, use_sim_time='true', rviz='true')
    for node in nodes:
        if node.package in ('robot_state_publisher', 'rviz2'):
            assert node.parameters[0]['use_sim_time'] is True, node.name


def test_a_robot_twin_process_that_exits_shuts_the_launch_down(fake_launch):
    """As robot-twin up stops everything: rsp and rviz must not go on beside a dead twin."""
    for profile, one_process in (('demo', 'true'), ('twin', 'false'), ('hil', 'true')):
        _declared, nodes = run_launch_file(profile, one_process=one_process, rviz='true',
                                           api='127.0.0.1:8080')
        ours = twin_nodes(nodes)
        assert ours and {n.executable for n in ours} >= {'twin_hub'}
        for node in ours:
            assert isinstance(node.on_exit, Shutdown), node.executable
            assert node.executable in node.on_exit.reason and 'exited' in node.on_exit.reason
        for node in nodes:                 # rsp and rviz leave the launch to the twin
            if node.package != 'robot_twin':
                assert node.on_exit is None, node.name


def test_rviz_fixed_frame_is_the_root_link_of_the_urdf(fake_launch):
    """A robot without base_link (root world here; a Panda's is panda_link0) shows in rviz."""
    urdf = ROOT / 'test' / 'data' / 'ur5e_like.urdf'
    assert urdf_root_link(urdf) == 'world'
    _declared, nodes = run_launch_file('twin', urdf=str(urdf), rviz='true')
    rviz = next(n for n in nodes if n.name == 'rviz2')
    assert rviz.arguments[2:] == ['-f', 'world']


def test_a_xacro_urdf_stops_the_launch_and_up_at_once(fake_launch, tmp_path, capsys):
    """The nodes' own message, before anything starts, from the argument or the config."""
    xacro = tmp_path / 'arm.urdf.xacro'
    text = (ROOT / 'urdf' / 'robot_twin_arm.urdf').read_text()
    xacro.write_text(text.replace('<robot name="robot_twin_arm"',
                                  '<robot xmlns:xacro="http://www.ros.org/wiki/xacro" '
                                  'name="robot_twin_arm"', 1).replace(
        '<origin xyz="0 0 0.15"', '<origin xyz="0 0 ${0.1 + 0.05}"', 1))
    assert '${' in xacro.read_text() and 'xmlns:xacro' in xacro.read_text()
    message = (r'arm.urdf.xacro: this is a xacro file .* expand it first, e.g. '
               r'`xacro arm.urdf.xacro > arm.urdf`')
    for profile in ('twin', 'demo', 'hil'):
        with pytest.raises(Exception, match=message):
            run_launch_file(profile, urdf=str(xacro))
    config = tmp_path / 'xacro.yaml'
    data = yaml.safe_load(Path(data_path('config', 'twin.yaml')).read_text())
    data['/**']['ros__parameters']['urdf_path'] = str(xacro)
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(Exception, match=message):
        run_launch_file('twin', config=str(config))
    for args in (['--urdf', str(xacro)], ['--config', str(config)]):
        assert bringup.main(['up', '--dry-run', *args]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and re.search(message, err[0]), err


def test_a_namespaced_plant_is_shown_from_its_own_topics(fake_launch, tmp_path):
    """The plant publishes its joint_states_topic as given; rviz shows /robot_description."""
    _declared, nodes = run_launch_file('demo', namespace='cell1', one_process='false')
    robot = next(n for n in nodes if n.name == 'robot_state_publisher')
    assert robot.namespace == '/cell1'
    assert robot.remappings == [('joint_states', '/joint_states'),
                                ('robot_description', '/robot_description')]
    # a plant that publishes elsewhere (the documented example moves the topic)
    path = documented_config(tmp_path)
    sections = yaml.safe_load(path.read_text())
    from robot_twin.graph import describe_graph
    graph = describe_graph(str(path), namespace='cell1')
    plant = next(n for n in graph.nodes if n.executable == 'twin_plant')
    values = {}
    for key in ('/**', f'/**/{plant.name}'):
        values.update(sections.get(key, {}).get('ros__parameters', {}))
    name = values.get('joint_states_topic', '/joint_states')
    published = dict(plant.remappings).get(name, name)
    assert published != '/joint_states'
    _declared, nodes = run_launch_file('twin', config=str(path), namespace='cell1')
    robot = next(n for n in nodes if n.name == 'robot_state_publisher')
    assert ('joint_states', published) in robot.remappings


def test_the_twins_state_publisher_gets_the_locked_joints_fixed(fake_launch, tmp_path):
    """Every moving joint of its URDF is in /twin/joint_states; the links stay where they were."""
    import numpy as np
    import pinocchio as pin
    from twin_sim.urdf_model import RobotModel
    urdf = ROOT / 'test' / 'data' / 'ur5e_like_mimic_gripper.urdf'
    locked = {'finger_joint': 0.02, 'wrist_2_joint': 0.7}
    data = yaml.safe_load(Path(data_path('config', 'twin.yaml')).read_text())
    data['/**']['ros__parameters']['locked_joints'] = ', '.join(
        f'{k}={v}' for k, v in locked.items())
    config = tmp_path / 'locked.yaml'
    config.write_text(yaml.safe_dump(data))
    _declared, nodes = run_launch_file('twin', config=str(config), urdf=str(urdf))
    rsp = next(n for n in nodes if n.name == 'twin_state_publisher')
    description = rsp.parameters[0]['robot_description']
    root = ElementTree.fromstring(description)
    moving = {j.get('name') for j in root.findall('joint') if j.get('type') != 'fixed'}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')           # (the <mimic> joint modelled independently)
        model = RobotModel.from_urdf(str(urdf), locked=locked)
    assert moving == set(model.joint_names)        # what the bridge names in /twin/joint_states
    assert not locked.keys() & moving
    assert not root.findall('joint/mimic')        # its leader is locked: an independent joint
    assert len(root.findall('link')) == len(ElementTree.parse(urdf).getroot().findall('link'))
    original = pin.buildModelFromUrdf(str(urdf))
    rewritten = pin.buildModelFromXML(description)
    rng = np.random.default_rng(3)
    for _ in range(3):
        values = {n: rng.uniform(-1, 1) for n in model.joint_names}
        values.update(locked)
        values['right_finger_joint'] = 0.01

        def placements(pmodel):
            q = pin.neutral(pmodel)
            for jid in range(1, pmodel.njoints):
                q[pmodel.joints[jid].idx_q] = values[pmodel.names[jid]]
            pdata = pmodel.createData()
            pin.framesForwardKinematics(pmodel, pdata, q)
            return {f.name: pdata.oMf[i] for i, f in enumerate(pmodel.frames)
                    if f.type == pin.FrameType.BODY}

        before, after = placements(original), placements(rewritten)
        assert before.keys() == after.keys()
        for link, pose in before.items():
            assert np.allclose(pose.homogeneous, after[link].homogeneous, atol=1e-9), link
    # without locked_joints the twin's rsp gets the URDF file as it is
    _declared, nodes = run_launch_file('twin', urdf=str(urdf))
    rsp = next(n for n in nodes if n.name == 'twin_state_publisher')
    assert rsp.parameters[0]['robot_description'] == urdf.read_text()
    data['/**']['ros__parameters']['locked_joints'] = 'nope'
    config.write_text(yaml.safe_dump(data))
    with pytest.raises(Exception, match="locked_joints = 'nope': .*locked joint 'nope'"):
        run_launch_file('twin', config=str(config), urdf=str(urdf))


def test_rviz_config_shows_robot_twin_and_markers():
    rviz = yaml.safe_load((ROOT / 'config' / 'rviz' / 'twin.rviz').read_text())
    manager = rviz['Visualization Manager']
    assert manager['Global Options']['Fixed Frame'] == 'base_link'
    displays = manager['Displays']
    classes = [d['Class'] for d in displays]
    assert 'rviz_default_plugins/Grid' in classes
    models = [d for d in displays if d['Class'] == 'rviz_default_plugins/RobotModel']
    robot = next(m for m in models if m['TF Prefix'] == '')
    twin = next(m for m in models if m['TF Prefix'] == 'twin')
    assert robot['Description Topic']['Value'] == '/robot_description'
    assert twin['Description Topic']['Value'] == '/twin/robot_description'
    assert twin['Alpha'] == 0.3 and robot['Alpha'] == 1
    for model in models:   # robot_state_publisher latches the description
        assert model['Description Topic']['Durability Policy'] == 'Transient Local'
    markers = next(d for d in displays if d['Class'] == 'rviz_default_plugins/MarkerArray')
    assert markers['Topic']['Value'] == '/twin/markers'


def test_bad_launch_arguments_fail_with_a_named_error(fake_launch, tmp_path):
    with pytest.raises(Exception, match='URDF file not found'):
        run_launch_file('twin', urdf=str(tmp_path / 'nope.urdf'))
    with pytest.raises(Exception, match='is a directory, not a URDF file'):
        run_launch_file('twin', urdf=str(tmp_path))
    with pytest.raises(Exception, match="namespace '1arm'"):
        run_launch_file('twin', namespace='1arm')
    bad = tmp_path / 'bad.yaml'
    bad.write_text('robot_twin:\n  ros__parameters: {nodes: [twin_brige]}\n')
    with pytest.raises(Exception, match="node 'twin_brige' needs executables"):
        run_launch_file('twin', config=str(bad))


def test_boolean_arguments_take_any_case_as_parse_bool_does(fake_launch):
    """A parent launch file passes 'True': Jazzy refused it while the arguments had choices."""
    _declared, nodes = run_launch_file('twin', use_sim_time='True', one_process='FALSE',
                                       rviz='True')
    processes = twin_nodes(nodes)
    assert [p.executable for p in processes] == ['twin_bridge', 'twin_sim', 'twin_anomaly']
    for process in processes:
        _config, overrides = _files(process.parameters)
        assert overrides[f'/**/{process.name}']['ros__parameters']['use_sim_time'] is True
    assert 'rviz2' in {n.name for n in nodes}
    _declared, nodes = run_launch_file('twin', use_sim_time='0', one_process='1', rviz='False')
    assert [p.executable for p in twin_nodes(nodes)] == ['twin_container']
    assert 'rviz2' not in {n.name for n in nodes}
    for name in ('use_sim_time', 'one_process', 'rviz'):
        with pytest.raises(Exception, match=f"launch argument {name} = 'yes': expected true or "
                                            'false'):
            run_launch_file('twin', **{name: 'yes'})


def test_the_override_files_are_removed_when_the_launch_shuts_down(fake_launch):
    handlers = []
    _declared, nodes = run_launch_file('demo', handlers=handlers, use_sim_time='true')
    files = [p for n in twin_nodes(nodes) for p in n.parameters
             if isinstance(p, str) and p.endswith('.overrides.yaml')]
    folders = {Path(p).parent for p in files}
    assert len(folders) == 1 and all(Path(p).is_file() for p in files)   # the nodes read them
    shutdown = [h for h in handlers if isinstance(h, OnShutdown)]
    assert len(shutdown) == 1
    shutdown[0].on_shutdown(object(), FakeContext({}))
    assert not any(folder.exists() for folder in folders)


def documented_config(tmp_path):
    """Write the example config of robot_twin.config's docstring (the reference) to a file."""
    from robot_twin import config
    text = config.__doc__.split('never runs::\n', 1)[1].split('\n\n', 1)[0]
    path = tmp_path / 'documented.yaml'
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize('one_process', [True, False])
def test_the_documented_topic_example_reaches_every_reader_of_the_robot(tmp_path, one_process):
    """In one process only the bridge reads the robot; in separate ones all three do."""
    from robot_twin.graph import CONTAINER, describe_graph
    path = documented_config(tmp_path)
    graph = describe_graph(str(path), one_process=one_process)
    sections = yaml.safe_load(path.read_text())

    def topic(node):
        values = {}
        for key in ('/**', f'/**/{node.name}'):
            values.update(sections.get(key, {}).get('ros__parameters', {}))
        name = values.get('joint_states_topic', '/joint_states')
        return dict(node.remappings).get(name, name)

    publishers = {topic(n) for n in graph.nodes if n.executable == 'twin_plant'}
    readers = set()
    for process in graph.processes:
        names = [n.executable for n in process.nodes]
        for node in process.nodes:
            reads = node.executable in ('twin_sim', 'twin_anomaly') and not (
                process.executable == CONTAINER and 'twin_bridge' in names)
            if node.executable == 'twin_bridge' or reads:
                readers.add(topic(node))
    assert len(publishers) == 1 and readers == publishers, (publishers, readers)
    assert publishers != {'/joint_states'}          # the example does move the topic
