"""
robot-twin up: command lines of the nodes, and the process group that runs them.

The process tests run tiny Python processes (not ROS) and bound every wait; they check outcomes
(who got which signal, who is left), never durations.
"""
import dataclasses
import json
import os
from pathlib import Path
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from robot_twin import bringup
from robot_twin.bringup import format_value, node_command, ProcessGroup, run_until_stopped
from robot_twin.config import ConfigError
from robot_twin.graph import describe_graph, NodeSpec, ProcessSpec
from robot_twin.ros_env import free_domain_id, localhost_env, own_ros_libraries
from twin_sim.resources import data_path
import yaml

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
BOUND_S = 20.0   # upper bound of any wait: generous, only hit when something is broken

# A child that says it is ready, reports the signal it gets and exits 0 (or ignores SIGINT).
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    def on(sig, _f):
        print('got', signal.Signals(sig).name, flush=True)
        if 'slow' in sys.argv:   # takes a moment to shut down, as a node does
            time.sleep(0.3)
        sys.exit(0)
    signal.signal(signal.SIGTERM, on)
    signal.signal(signal.SIGINT, signal.SIG_IGN if 'stubborn' in sys.argv else on)
    if 'spawn' in sys.argv:   # a grandchild in the same process group
        import subprocess
        subprocess.Popen([sys.executable, '-c', 'import os, signal, time; '
                          'signal.signal(signal.SIGINT, signal.SIG_IGN); '
                          'print("grandchild", os.getpid(), flush=True); time.sleep(600)'])
    if 'fail' in sys.argv:
        print('ready', os.getpid(), flush=True)
        sys.exit(3)
    print('ready', os.getpid(), flush=True)
    while True:
        time.sleep(0.05)
""")


def child(*flags):
    return [PY, '-c', CHILD, *flags]


class Lines:
    """Collects ``on_line`` output and waits for lines, with a bound."""

    def __init__(self):
        self.queue = queue.Queue()
        self.seen = []

    def __call__(self, name, line):
        self.queue.put((name, line))

    def wait_for(self, predicate, count=1):
        deadline = time.monotonic() + BOUND_S
        found = [x for x in self.seen if predicate(*x)]
        while len(found) < count:
            item = self.queue.get(timeout=max(0.01, deadline - time.monotonic()))
            self.seen.append(item)
            if predicate(*item):
                found.append(item)
        return found


def gone(pid):
    """Wait (bounded) until ``pid`` no longer exists or is a zombie; return True if so."""
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        try:
            with open(f'/proc/{pid}/stat') as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def lines():
    return Lines()


def ready(lines, names):
    lines.wait_for(lambda n, line: line.startswith('ready'), count=len(names))


# --- command lines -----------------------------------------------------------------------------

def single(name='plant', executable='twin_plant', namespace='', params_files=(), parameters=None,
           remappings=()):
    return ProcessSpec('robot_twin', executable,
                       (NodeSpec(name, executable, parameters or {}, remappings),),
                       namespace, params_files)


def test_node_command_matches_launch_ros_arguments():
    spec = single('plant', 'twin_plant', '/lab/arm', ('/cfg/demo.yaml', '/cfg/extra.yaml'),
                  {'scenario': '', 'urdf_path': '/a b/robot.urdf', 'seed': 3,
                   'payload_mass_kg': 1.0, 'use_sim_time': False, 'name_like_bool': 'true'},
                  (('/joint_states', '/arm/joint_states'),))
    argv = node_command(spec, python='py')
    assert argv[:2] == ['py', '-c']
    assert "run_module('robot_twin.nodes.plant_node')" in argv[2]
    assert argv[3:] == [
        '--ros-args', '-r', '__node:=plant', '-r', '__ns:=/lab/arm',
        '--params-file', '/cfg/demo.yaml', '--params-file', '/cfg/extra.yaml',
        '-p', "scenario:=''", '-p', 'urdf_path:=/a b/robot.urdf',
        '-p', 'seed:=3', '-p', 'payload_mass_kg:=1.0', '-p', 'use_sim_time:=false',
        '-p', "name_like_bool:='true'", '-r', '/joint_states:=/arm/joint_states']
    root = node_command(single('twin_bridge', 'twin_bridge'), python='py')
    assert root[3:] == ['--ros-args', '-r', '__node:=twin_bridge']   # no __ns at the root


def test_container_command_names_its_nodes_and_remaps_per_node():
    graph = describe_graph('twin')
    (process,) = graph.processes
    assert process.executable == 'twin_container' and process.name == 'twin'
    argv = node_command(process, python='py')
    assert "run_module('robot_twin.nodes.container')" in argv[2]
    assert argv[3:9] == ['--node', 'twin_bridge:twin_bridge', '--node', 'twin_sim:twin_sim',
                         '--node', 'twin_anomaly:twin_anomaly']
    assert '__node:=' not in ' '.join(argv)        # one name per node, not one for all
    remapped = dataclasses.replace(process, nodes=(dataclasses.replace(
        process.nodes[0], remappings=(('/joint_states', '/arm/joint_states'),)),)
        + process.nodes[1:])
    assert node_command(remapped)[-2:] == ['-r', 'twin_bridge:/joint_states:=/arm/joint_states']
    separate = describe_graph('twin', one_process=False).processes
    assert [p.executable for p in separate] == ['twin_bridge', 'twin_sim', 'twin_anomaly']


@pytest.mark.parametrize('value', ['', 'true', '1.5', 'a: b', '/x/y z', "it's", 0, -3, 0.1,
                                   1e-9, 2.0, True, False, ['a', 'b'], [1.0, 2.0]])
def test_format_value_round_trips(value):
    text = format_value(value)
    assert '\n' not in text
    parsed = yaml.safe_load(text)
    assert parsed == value and type(parsed) is type(value)


def test_node_command_refuses_what_needs_ros2_launch():
    with pytest.raises(ConfigError, match='needs a ROS 2 install'):
        node_command(ProcessSpec('rviz2', 'rviz2', (NodeSpec('rviz2', 'rviz2'),)))


_RCL_SCRIPT = r"""
import json, sys
import rclpy
from rclpy.node import Node
argv = json.loads(sys.argv[1])
rclpy.init(args=argv[argv.index('--ros-args'):])
out = {}
for name in json.loads(sys.argv[2]):
    node = Node(name, automatically_declare_parameters_from_overrides=True)
    out[name] = {'fqn': node.get_fully_qualified_name(),
                 'params': {k: v.value for k, v in node._parameters.items()
                            if k not in ('use_sim_time', 'start_type_description_service')},
                 'topic': node.resolve_topic_name('/joint_states')}
    node.destroy_node()
print(json.dumps(out))
rclpy.shutdown()
"""


def run_rcl(argv, names):
    result = subprocess.run(
        [PY, '-c', _RCL_SCRIPT, json.dumps(argv), json.dumps(names)], cwd=ROOT,
        env=localhost_env(free_domain_id(seed=41)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_rcl_reads_the_command_line_as_meant(tmp_path):
    """The ``--ros-args`` part, given to real rcl: name, namespace, file, -p values, remaps."""
    params = tmp_path / 'p.yaml'
    params.write_text('/**:\n  ros__parameters: {seed: 1, scenario: from_file}\n')
    values = {'scenario': '', 'urdf_path': '/a b/robot.urdf', 'seed': 3,
              'payload_mass_kg': 1.0, 'flag': False, 'text_true': 'true', 'names': ['a', 'b']}
    spec = single('plant', 'twin_plant', '/lab', (str(params),), values,
                  (('/joint_states', '/arm/joint_states'),))
    out = run_rcl(node_command(spec), ['placeholder'])['placeholder']
    assert out['fqn'] == '/lab/plant'
    assert out['params'] == values                  # -p wins over the file
    assert out['topic'] == '/arm/joint_states'


def test_rcl_gives_each_node_of_a_container_its_own_overrides_and_remaps(tmp_path):
    """One process, several nodes: each gets its own file section, overrides and remaps."""
    params = tmp_path / 'p.yaml'
    params.write_text(textwrap.dedent("""\
        /**:
          ros__parameters: {seed: 1}
        /**/a:
          ros__parameters: {seed: 2, scenario: file_a}
        """))
    process = ProcessSpec('robot_twin', 'twin_container', (
        NodeSpec('a', 'twin_bridge', {'seed': 5}, (('/joint_states', '/arm/joint_states'),)),
        NodeSpec('b', 'twin_sim', {'scenario': 'only_b'})), '/lab', (str(params),),
        ('--node', 'a:twin_bridge', '--node', 'b:twin_sim'))
    process = bringup.with_override_files([process], tmp_path)[0]
    out = run_rcl(node_command(process), ['a', 'b'])
    assert out['a'] == {'fqn': '/lab/a', 'params': {'seed': 5, 'scenario': 'file_a'},
                        'topic': '/arm/joint_states'}
    assert out['b'] == {'fqn': '/lab/b', 'params': {'seed': 1, 'scenario': 'only_b'},
                        'topic': '/joint_states'}


# --- the process group -------------------------------------------------------------------------

@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_stop_forwards_the_signal_to_every_child(lines, sig):
    names = ['a', 'b', 'c']
    with ProcessGroup([(n, child()) for n in names], on_line=lines) as group:
        ready(lines, names)
        assert group.poll() is None
        killed = group.stop(sig)
    assert killed == []
    assert group.returncodes() == dict.fromkeys(names, 0)
    got = lines.wait_for(lambda n, line: line == f'got {sig.name}', count=3)
    assert sorted(n for n, _ in got) == names


def test_stop_kills_a_child_that_ignores_the_signal(lines):
    with ProcessGroup([('polite', child()), ('stubborn', child('stubborn'))],
                      on_line=lines, stop_timeout_s=0.5) as group:
        ready(lines, ['polite', 'stubborn'])
        killed = group.stop(signal.SIGINT)
    assert killed == ['stubborn']
    assert group.returncodes() == {'polite': 0, 'stubborn': -signal.SIGKILL}


def test_no_orphans_left_behind(lines):
    """Grandchildren (here deaf to SIGINT) share their parent's process group and go too."""
    group = ProcessGroup([('a', child('spawn', 'stubborn')), ('b', child('spawn'))],
                         on_line=lines, stop_timeout_s=0.5).start()
    try:
        ready(lines, ['a', 'b'])
        grandchildren = [int(line.split()[1]) for _n, line in lines.wait_for(
            lambda n, line: line.startswith('grandchild'), count=2)]
        pids = list(group.pids.values())
    finally:
        group.stop(signal.SIGINT)
    # 'a' ignored SIGINT and was killed with its group; 'b' exited on SIGINT, and what was
    # left of its group was killed
    assert all(gone(pid) for pid in pids + grandchildren)


def test_a_child_that_dies_stops_the_rest(lines):
    messages = []
    group = ProcessGroup([('ok1', child()), ('dies', child('fail')), ('ok2', child())],
                         on_line=lines).start()
    try:
        ready(lines, ['ok1', 'dies', 'ok2'])
        code = run_until_stopped(group, log=messages.append)
    finally:
        group.stop()
    assert code == 1
    assert any('node dies exited with code 3; stopping the others' in m for m in messages)
    codes = group.returncodes()
    assert codes['dies'] == 3 and codes['ok1'] == 0 and codes['ok2'] == 0


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGHUP])
def test_run_until_stopped_forwards_sigint_and_restores_handlers(lines, sig):
    # SIGHUP (the terminal closed) stops the nodes too, with SIGTERM (a clean stop for them)
    before = signal.getsignal(sig)
    group = ProcessGroup([('a', child()), ('b', child())], on_line=lines).start()
    code, messages = _run_signalled(lines, group, ['a', 'b'], [0.0], sig)
    assert code == 0, messages
    assert any(m.startswith(f'{sig.name}: stopping 2 nodes') for m in messages)
    assert group.returncodes() == {'a': 0, 'b': 0}
    forwarded = 'SIGTERM' if sig == signal.SIGHUP else sig.name
    got = lines.wait_for(lambda n, line: line.startswith('got '), count=2)
    assert sorted(got) == [('a', f'got {forwarded}'), ('b', f'got {forwarded}')]
    assert signal.getsignal(sig) is before


def _run_signalled(lines, group, names, delays, sig=signal.SIGINT):
    """Run ``group`` (children ``names``); send ``sig`` after each of ``delays`` (s)."""
    before = signal.getsignal(sig)
    messages = []

    def interrupt_when_installed():
        deadline = time.monotonic() + BOUND_S
        while signal.getsignal(sig) is before and time.monotonic() < deadline:
            time.sleep(0.01)
        ready(lines, names)
        for delay in delays:
            time.sleep(delay)
            os.kill(os.getpid(), sig)

    threading.Thread(target=interrupt_when_installed, daemon=True).start()
    try:
        code = run_until_stopped(group, log=messages.append)
    finally:
        group.stop()
    return code, messages


def test_two_signals_at_once_are_one_request_not_a_kill(lines):
    """GNU timeout or a supervisor signals `up` and its group: the nodes still stop cleanly."""
    group = ProcessGroup([('a', child('slow')), ('b', child('slow'))], on_line=lines).start()
    code, messages = _run_signalled(lines, group, ['a', 'b'], [0.0, 0.1])
    assert code == 0, messages
    assert not any('kill' in m for m in messages[1:]), messages
    assert group.returncodes() == {'a': 0, 'b': 0}


def test_a_second_ctrl_c_later_kills_at_once_and_says_so(lines):
    group = ProcessGroup([('deaf', child('stubborn'))], on_line=lines,
                         stop_timeout_s=BOUND_S).start()
    code, messages = _run_signalled(lines, group, ['deaf'], [0.0, 1.0])
    assert code == 1
    assert any(m == 'killed deaf: on a second signal' for m in messages), messages
    assert not any('did not exit within' in m for m in messages), messages
    assert group.returncodes() == {'deaf': -signal.SIGKILL}


def test_a_command_that_cannot_start_stops_the_started_ones(lines):
    group = ProcessGroup([('a', child()), ('b', ['/nonexistent/robot_twin_node'])],
                         on_line=lines)
    with pytest.raises(RuntimeError, match='cannot start b'):
        group.start()
    assert gone(group.pids['a'])


def test_default_output_is_prefixed_with_the_name(capfd):
    with ProcessGroup([('twin_bridge', [PY, '-c', 'print("hello")']),
                       ('x', [PY, '-c', 'import sys; sys.stderr.write("oops\\n")'])]) as group:
        group.wait(timeout=BOUND_S)
        deadline = time.monotonic() + BOUND_S
        while any(c is None for c in group.returncodes().values()) and (
                time.monotonic() < deadline):
            time.sleep(0.02)
    out = capfd.readouterr().out.splitlines()
    assert '[twin_bridge] hello' in out and '[x          ] oops' in out


# --- robot-twin up, end to end, with stand-in node modules ---------------------------------------

FAKE_NODE = textwrap.dedent("""
    import json, os, signal, sys, time
    def main(args=None):
        stop = []
        signal.signal(signal.SIGINT, lambda *a: stop.append(1))
        signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
        ros = sys.argv[sys.argv.index('--ros-args') + 1:]
        if '--node' in sys.argv:       # the one-process twin
            own = sys.argv[:sys.argv.index('--ros-args')]
            nodes = [own[k + 1].split(':')[0] for k, a in enumerate(own) if a == '--node']
            name = 'twin'
        else:
            name = ros[ros.index('-r') + 1].split(':=')[1]
            nodes = [name]
        print('argv', json.dumps({'name': name, 'nodes': nodes,
                                  'domain': os.environ.get('ROS_DOMAIN_ID'),
                                  'localhost': os.environ.get('ROS_LOCALHOST_ONLY'),
                                  'pid': os.getpid()}), flush=True)
        ready = os.environ.get('FAKE_READY_DIR')
        if ready:
            open(os.path.join(ready, 'ready_' + name), 'w').close()
        if name == os.environ.get('FAKE_NODE_FAILS'):
            # die only once every node has its handlers (else SIGINT lands mid-import)
            deadline = time.time() + 20.0
            while (len([f for f in os.listdir(ready) if f.startswith('ready_')])
                   < int(os.environ['FAKE_NODE_COUNT']) and time.time() < deadline):
                time.sleep(0.05)
            return 4
        while not stop:
            time.sleep(0.05)
        print('clean exit', flush=True)
        return 0
""")

DRIVER = textwrap.dedent("""
    import sys
    from robot_twin import entry_points
    for exe in entry_points.NODE_MODULES:
        entry_points.NODE_MODULES[exe] = 'fake_node'
    from robot_twin.bringup import main
    sys.exit(main(sys.argv[1:]))
""")


def start_up(tmp_path, *args, fails=None):
    (tmp_path / 'fake_node.py').write_text(FAKE_NODE)
    env = dict(os.environ, PYTHONPATH=f'{tmp_path}{os.pathsep}{ROOT}')
    # what `up` itself sets is under test, not the session's localhost defaults (conftest.py);
    # the fake nodes take part in no DDS traffic
    for key in ('ROS_DOMAIN_ID', 'ROS_LOCALHOST_ONLY', 'ROS_AUTOMATIC_DISCOVERY_RANGE'):
        env.pop(key, None)
    if fails:
        env['FAKE_NODE_FAILS'] = fails
        env['FAKE_NODE_COUNT'] = '3'      # the twin profile's nodes
        env['FAKE_READY_DIR'] = str(tmp_path)
    return subprocess.Popen([PY, '-c', DRIVER, 'up', *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(proc, predicate, count=1):
    """Read lines of ``proc`` until ``count`` satisfy ``predicate`` (bounded by a watchdog)."""
    timer = threading.Timer(BOUND_S, proc.kill)
    timer.start()
    seen, found = [], 0
    try:
        for line in proc.stdout:
            seen.append(line.rstrip('\n'))
            found += bool(predicate(seen[-1]))
            if found >= count:
                break
    finally:
        timer.cancel()
    return seen


def test_up_runs_the_demo_graph_and_stops_on_sigint(tmp_path):
    proc = start_up(tmp_path, '--config', 'demo', '--localhost', '--domain-id', '77')
    try:
        seen = read_until(proc, lambda line: ' argv ' in line, count=3)
        started = [json.loads(line.split(' argv ', 1)[1]) for line in seen if ' argv ' in line]
        assert {s['name']: s['nodes'] for s in started} == {
            'plant': ['plant'], 'demo_controller': ['demo_controller'],
            'twin': ['twin_bridge', 'twin_sim', 'twin_anomaly']}     # the twin: one process
        assert all(s['domain'] == '77' and s['localhost'] == '1' for s in started)
        assert any(line.startswith('[twin           ] argv') for line in seen)
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=BOUND_S)
    finally:
        proc.kill()
    assert proc.returncode == 0, '\n'.join(seen) + rest
    assert rest.count('clean exit') == 3
    assert all(gone(s['pid']) for s in started)


def test_up_stops_everything_when_a_node_dies(tmp_path):
    proc = start_up(tmp_path, '--config', 'twin', '--separate-processes', '--domain-id', '78',
                    fails='twin_sim')
    try:
        out, _ = proc.communicate(timeout=BOUND_S)
    finally:
        proc.kill()
    assert proc.returncode == 1, out
    assert 'node twin_sim exited with code 4; stopping the others' in out
    assert out.count('clean exit') == 2              # twin_bridge and twin_anomaly
    started = [json.loads(line.split(' argv ', 1)[1]) for line in out.splitlines()
               if ' argv ' in line]
    assert all(s['domain'] == '78' and s['localhost'] is None for s in started)
    assert all(gone(s['pid']) for s in started)


def test_up_reports_a_bad_config(tmp_path, capsys):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('robot_twin:\n  ros__parameters: {nodes: [twin_bridge]}\n'
                   '/**/twin_bridge:\n  ros__parameters: {stale_timeout_s: 1}\n')
    assert bringup.main(['up', '--config', str(bad)]) == 2
    err = capsys.readouterr().err
    assert 'stale_timeout_s = 1' in err and 'write 1.0' in err
    assert bringup.main(['up', '--config', str(tmp_path / 'none.yaml')]) == 2
    assert 'config file not found' in capsys.readouterr().err


def test_up_takes_a_documented_config_path_from_any_directory(tmp_path, monkeypatch, capsys):
    """``--config config/twin.yaml`` away from the source tree: the packaged file, named."""
    monkeypatch.chdir(tmp_path)
    assert bringup.main(['up', '--config', 'config/twin.yaml', '--dry-run']) == 0
    captured = capsys.readouterr()
    packaged = data_path('config', 'twin.yaml')
    assert f'--params-file {packaged}' in captured.out
    assert f'config/twin.yaml is not in {tmp_path}; using the packaged {packaged}' in captured.err
    (tmp_path / 'config').mkdir()              # a file of that name here is the one used
    (tmp_path / 'config' / 'twin.yaml').write_text(
        'robot_twin:\n  ros__parameters: {nodes: [twin_sim]}\n')
    assert bringup.main(['up', '--config', 'config/twin.yaml', '--dry-run']) == 0
    captured = capsys.readouterr()
    assert str(tmp_path / 'config' / 'twin.yaml') in captured.out and not captured.err
    assert bringup.main(['up', '--config', 'config/nope.yaml', '--dry-run']) == 2
    assert 'not found (nor in the packaged config/)' in capsys.readouterr().err


def test_up_env():
    base = {'ROS_DOMAIN_ID': '5', 'PATH': '/bin'}
    user = bringup.up_env(base=base)                  # real robot: the user's DDS settings ...
    assert {k: user[k] for k in base} == base
    own = own_ros_libraries()                         # ... with this Python's ROS libraries
    assert user.get('LD_LIBRARY_PATH', '').split(os.pathsep)[:len(own)] == own
    assert bringup.up_env(9, base=base)['ROS_DOMAIN_ID'] == '9'
    local = bringup.up_env(None, localhost=True, base=base)
    assert local['ROS_DOMAIN_ID'] == '5' and local['ROS_LOCALHOST_ONLY'] == '1'
    with pytest.raises(ConfigError, match='not a ROS_DOMAIN_ID'):
        bringup.up_env(400, base=base)
    # localhost: one range (0..232) with --domain-id or from the environment, clear errors
    assert bringup.up_env(141, localhost=True, base=base)['ROS_DOMAIN_ID'] == '141'
    with pytest.raises(ConfigError, match=r'not a ROS_DOMAIN_ID \(0..232\)'):
        bringup.up_env(400, localhost=True, base=base)
    with pytest.raises(ConfigError, match="'abc' in the environment is not a domain id"):
        bringup.up_env(None, localhost=True, base={'ROS_DOMAIN_ID': 'abc'})


def test_run_until_stopped_starts_the_group_and_reports_a_start_failure():
    messages = []
    group = ProcessGroup([('a', child()), ('b', ['/nonexistent/robot_twin_node'])])
    assert run_until_stopped(group, log=messages.append) == 1
    assert any('cannot start b' in m for m in messages)
    assert gone(group.pids['a'])


def test_favour_gives_every_thread_a_raised_priority_that_new_threads_inherit(lines):
    """An emulated robot gets SCHED_FIFO where permitted (root here in CI), else nice -5."""
    ready_loop = "print('ready', os.getpid(), flush=True)\nwhile True:"
    code = CHILD.replace(ready_loop, textwrap.dedent("""
        import threading
        def report():
            print('thread policy', os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS,
                  threading.get_native_id()), flush=True)
        signal.signal(signal.SIGUSR1, lambda *_: threading.Thread(target=report).start())
        print('ready', os.getpid(), flush=True)
        while True:""").strip('\n'))
    assert 'SIGUSR1' in code
    with ProcessGroup([('robot', [PY, '-c', code])], on_line=lines) as group:
        ready(lines, ['robot'])
        got = group.favour()
        pid = group.pids['robot']
        tasks = [int(t) for t in os.listdir(f'/proc/{pid}/task')]
        if got == 'fifo':
            assert all(os.sched_getscheduler(t) == os.SCHED_FIFO for t in tasks)
            assert all(os.sched_getparam(t).sched_priority == bringup.ROBOT_FIFO_PRIORITY
                       for t in tasks)
        elif got == 'nice':
            assert all(os.getpriority(os.PRIO_PROCESS, t) == bringup.ROBOT_NICE for t in tasks)
        else:
            # neither permitted: only an unprivileged user gets here, and nothing changed
            assert os.geteuid() != 0
            assert all(os.sched_getscheduler(t) == os.SCHED_OTHER for t in tasks)
            return
        os.kill(pid, signal.SIGUSR1)               # a thread started after favour()
        (_, line), = lines.wait_for(lambda n, line: line.startswith('thread policy'))
        policy, nice = (int(x) for x in line.split()[2:])
        assert (policy == os.SCHED_FIFO) if got == 'fifo' else (nice == bringup.ROBOT_NICE)
        group.stop()
