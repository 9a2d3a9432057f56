"""
``robot-twin up``: start a config's processes without ``ros2 launch``, as one process group.

Every process of :func:`robot_twin.graph.describe_graph` (by default the one-process twin,
``twin_container``, plus a process for each other node) runs as ``python -c '...main(...)'
--ros-args ...`` with the same ROS arguments that ``launch_ros`` gives it in the launch files
(name or the container's ``--node`` list, namespace, params file, an overrides file read last,
remappings), and with this interpreter's own ROS libraries
(:func:`robot_twin.ros_env.child_env`), whatever environment ``up`` itself was started from.
Output is prefixed with the process name. SIGINT/SIGTERM are forwarded to every process, which
gets ``stop_timeout_s`` to exit before SIGKILL (a second Ctrl-C kills at once); SIGHUP (the
terminal or SSH session closed) stops them as SIGTERM does. If a process exits on its own, the
others are stopped and ``up`` exits non-zero (with the status 2 of a node that could not start).
Should ``up`` itself die without stopping them (SIGKILL), each node stops on its own within
half a second: it is given ``up``'s pid (``ROBOT_TWIN_PARENT_PID``) and watches that its parent
is still that process (:func:`robot_twin.nodes.runner.spin`).

The demo and the tests reuse :func:`start_graph` / :class:`ProcessGroup`::

    with start_graph(graph.processes, env=localhost_env(domain_id)) as group:
        ...                     # group.poll() tells if a process died
    # leaving the block stops every process
"""
import argparse
import atexit
import dataclasses
import math
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

from robot_twin.config import ConfigError, parse_bool
from robot_twin.entry_points import NODE_MODULES
from robot_twin.graph import describe_graph, PACKAGE, PROFILES
from robot_twin.hub.settings import add_hub_arguments, hub_overrides, hub_urls, with_hub
from robot_twin.ros_env import child_env, localhost_env, MAX_DOMAIN_ID, PARENT_PID_VAR
import yaml

_TAG = 'robot-twin up'
SAME_REQUEST_S = 0.5
"""A signal this soon (s) after the first one is the same request, not a second Ctrl-C: GNU
``timeout`` and supervisors signal both ``up`` and its process group, so two arrive at once."""


ROBOT_FIFO_PRIORITY = 10
"""SCHED_FIFO priority :meth:`ProcessGroup.favour` gives an emulated robot (1-99)."""
ROBOT_NICE = -5
"""Nice value :meth:`ProcessGroup.favour` gives an emulated robot where SCHED_FIFO is refused."""


def format_value(value):
    """Write a parameter value as rcl reads ``-p name:=value`` (YAML; strings stay strings)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=float('inf'))
    return text[:-len('\n...\n')] if text.endswith('\n...\n') else text.rstrip('\n')


def node_command(process, python=None):
    """
    Return the argv that starts one robot_twin process like ``launch_ros`` would.

    Parameters
    ----------
    process : robot_twin.graph.ProcessSpec
        A process of package robot_twin (a node, or the one-process twin).
    python : str, optional
        Interpreter; default ``sys.executable``.

    Returns
    -------
    list of str
        ``[python, '-c', <run main>, *arguments, '--ros-args', ('-r', '__node:=NAME'),
        ('-r', '__ns:=NS'), ('--params-file', FILE)..., ('-p', 'NAME:=VALUE')...,
        ('-r', 'FROM:=TO')...]`` (``-p`` only for overrides not yet moved to a file, see
        :func:`with_override_files`).

    """
    if process.package != PACKAGE or process.executable not in NODE_MODULES:
        raise ConfigError(process.name, [
            f'{process.package}/{process.executable} needs a ROS 2 install (ros2 launch); '
            f'robot-twin up starts {", ".join(NODE_MODULES)}'])
    code = ('import sys; from robot_twin.entry_points import run_module; '
            f'sys.exit(run_module({NODE_MODULES[process.executable]!r}))')
    argv = [python or sys.executable, '-c', code, *process.arguments, '--ros-args']
    if process.node_name:
        argv += ['-r', f'__node:={process.node_name}']
    if process.namespace:
        argv += ['-r', f'__ns:={process.namespace}']
    for path in process.params_files:
        argv += ['--params-file', path]
    for node in process.nodes:
        for name, value in node.parameters.items():
            argv += ['-p', f'{name}:={format_value(value)}']
    for src, dst in process.remappings():
        argv += ['-r', f'{src}:={dst}']
    return argv


def _describe_exit(code):
    if code is None:
        return 'is running'
    if code < 0:
        try:
            return f'was killed by {signal.Signals(-code).name}'
        except ValueError:
            return f'was killed by signal {-code}'
    return f'exited with code {code}'


class ProcessGroup:
    """
    Child processes started and stopped together, with their output prefixed by name.

    Each child runs in a session of its own, so a Ctrl-C in the terminal reaches only this
    process, which forwards it: the children are stopped in one orderly way.

    Parameters
    ----------
    commands : list of (str, list of str)
        ``(name, argv)`` of each child, started in this order.
    env : dict, optional
        Environment of the children; default ``os.environ``. ``PYTHONUNBUFFERED=1`` is added
        so that output arrives line by line.
    on_line : callable, optional
        ``on_line(name, line)`` for every output line (stdout and stderr, without the newline);
        default: print ``[name] line`` to ``sys.stdout``.
    stop_timeout_s : float
        How long :meth:`stop` waits for the children after the signal before SIGKILL.
    cwd : str, optional
        Working directory of the children.

    """

    def __init__(self, commands, env=None, *, on_line=None, stop_timeout_s=5.0, cwd=None):
        names = [name for name, _argv in commands]
        if len(set(names)) != len(names):
            raise ValueError(f'process names must be unique, got {names}')
        self.commands = list(commands)
        self.env = dict(os.environ if env is None else env)
        self.env['PYTHONUNBUFFERED'] = '1'
        self.env[PARENT_PID_VAR] = str(os.getpid())     # the nodes stop if this process dies
        self.stop_timeout_s = float(stop_timeout_s)
        self.cwd = cwd
        self.processes = {}
        self._threads = []
        self._width = max((len(n) for n in names), default=0)
        self._print_lock = threading.Lock()
        self._on_line = on_line or self._print_line
        self._kill_now = False

    def _print_line(self, name, line):
        with self._print_lock:
            sys.stdout.write(f'[{name:<{self._width}}] {line}\n')
            sys.stdout.flush()

    def _pump(self, name, stream):
        for line in iter(stream.readline, ''):
            self._on_line(name, line.rstrip('\n'))
        stream.close()

    def start(self):
        """Start every child; if one cannot be started, stop those already running and raise."""
        for name, argv in self.commands:
            try:
                proc = subprocess.Popen(
                    argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                    errors='replace', bufsize=1, start_new_session=True)
            except OSError as exc:
                self.stop()
                raise RuntimeError(f'cannot start {name} ({argv[0]}): {exc}') from exc
            self.processes[name] = proc
            thread = threading.Thread(target=self._pump, args=(name, proc.stdout),
                                      name=f'output-{name}', daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    @property
    def pids(self):
        """``{name: pid}`` of the started children."""
        return {name: proc.pid for name, proc in self.processes.items()}

    def favour(self, fifo_priority=ROBOT_FIFO_PRIORITY, nice=ROBOT_NICE):
        """
        Give every thread of the children real-time priority, as a robot's controller has.

        An emulated robot (the demo's, the tests') stands in for a controller that runs at
        real-time priority beside the twin; at normal priority on a busy 2-core machine it
        sends its set-points late and its stiff loop jerks the arm, and the twin then rightly
        reports the emulator's own transients. Each thread gets ``SCHED_FIFO`` at
        ``fifo_priority``; where that is refused, the lower ``nice`` value; where that is
        refused too (it needs root or CAP_SYS_NICE), nothing changes. Threads a child starts
        later inherit its policy. The kernel's real-time throttling (by default 5 % of every
        second left to other tasks) still bounds a thread that would never sleep.

        Returns
        -------
        str or None
            ``'fifo'`` or ``'nice'``: what the first thread got; None when neither was
            permitted or no thread was found.

        """
        done = None
        for proc in self.processes.values():
            try:
                tasks = [int(t) for t in os.listdir(f'/proc/{proc.pid}/task')]
            except OSError:                  # exited, or not Linux
                continue
            for tid in tasks:
                try:
                    os.sched_setscheduler(tid, os.SCHED_FIFO, os.sched_param(fifo_priority))
                    done = done or 'fifo'
                    continue
                except (OSError, AttributeError):
                    pass                     # not permitted (or no such call): try nice
                try:
                    os.setpriority(os.PRIO_PROCESS, tid, nice)
                    done = done or 'nice'
                except OSError:              # not permitted, or the thread is gone
                    pass
        return done

    @staticmethod
    def _status(proc):
        """
        Return the child's exit status without reaping it, or None while it runs.

        An unreaped child keeps its process id, and with it its process group id, reserved:
        :meth:`stop` can then signal the whole group (grandchildren included) without any risk
        of reaching an unrelated process that got a recycled id.
        """
        if proc.returncode is not None:
            return proc.returncode
        try:
            info = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped elsewhere
            return proc.poll()
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def returncodes(self):
        """``{name: returncode or None}`` (negative = killed by that signal)."""
        return {name: self._status(proc) for name, proc in self.processes.items()}

    def poll(self):
        """Return ``(name, returncode)`` of the first exited child (start order), or None."""
        for name, proc in self.processes.items():
            code = self._status(proc)
            if code is not None:
                return name, code
        return None

    def wait(self, timeout=None, interval=0.05):
        """Wait until a child exits (return ``(name, returncode)``) or ``timeout`` s (None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            exited = self.poll()
            if exited is not None or not self.processes:
                return exited
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(interval)

    @staticmethod
    def _signal_group(proc, sig):
        if proc.returncode is None:  # not reaped: the process group id is still ours
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def kill_now(self):
        """Make a running :meth:`stop` skip the rest of its grace period (second Ctrl-C)."""
        self._kill_now = True

    @property
    def killing(self):
        """Whether :meth:`kill_now` was called: the grace period is cut short."""
        return self._kill_now

    def stop(self, sig=signal.SIGINT, timeout_s=None):
        """
        Stop every child: send ``sig``, wait up to ``timeout_s``, then SIGKILL the rest.

        Signals go to each child's process group, so processes a node started go with it;
        whatever is left of a group once its node has exited is killed.

        Returns
        -------
        list of str
            Names of the children that had to be killed (empty after a clean stop).

        """
        timeout_s = self.stop_timeout_s if timeout_s is None else timeout_s
        for proc in reversed(list(self.processes.values())):
            if self._status(proc) is None:
                self._signal_group(proc, sig)
        deadline = time.monotonic() + timeout_s
        while (not self._kill_now and time.monotonic() < deadline
               and any(code is None for code in self.returncodes().values())):
            time.sleep(0.02)
        killed = [name for name, code in self.returncodes().items() if code is None]
        for proc in self.processes.values():
            self._signal_group(proc, signal.SIGKILL)
        for proc in self.processes.values():
            proc.wait()
        for thread in self._threads:
            thread.join(timeout=2.0)
        return killed

    def __enter__(self):
        if not self.processes:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def _nested(parameters):
    """Turn dotted names (``corrective_actions.enabled``) into the nested maps of a params file."""
    out = {}
    for name, value in parameters.items():
        node = out
        *parents, leaf = name.split('.')
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out


def with_override_files(processes, directory):
    """
    Move each process's parameter overrides into a params file read after its config file.

    rcl files a ``-p name:=value`` under ``/**`` (every node of the process), and a
    node-specific section of a params file (``/**/plant: {scenario: demo}``) beats that
    whatever the order; an override written as a ``/**/<name>`` section of a file read later
    does win, node by node. Launch files do the same (:mod:`robot_twin.launch_description`).

    Parameters
    ----------
    processes : iterable of robot_twin.graph.ProcessSpec
        The processes to start; their nodes' ``parameters`` are moved into files.
    directory : str or Path
        Where to write ``<process>.overrides.yaml`` (must live as long as the nodes start).

    Returns
    -------
    list of ProcessSpec
        With the nodes' ``parameters`` empty and the overrides file appended to
        ``params_files``.

    """
    out = []
    for process in processes:
        sections = {f'/**/{n.name}': {'ros__parameters': _nested(n.parameters)}
                    for n in process.nodes if n.parameters}
        if not sections:
            out.append(process)
            continue
        path = os.path.join(str(directory), f'{process.name}.overrides.yaml')
        with open(path, 'w', encoding='utf-8') as f:
            yaml.safe_dump(sections, f)
        nodes = tuple(dataclasses.replace(n, parameters={}) for n in process.nodes)
        out.append(dataclasses.replace(process, nodes=nodes,
                                       params_files=process.params_files + (path,)))
    return out


def start_graph(processes, env=None, **kwargs):
    """
    Start robot_twin processes; return the running :class:`ProcessGroup`.

    Parameters
    ----------
    processes : iterable of robot_twin.graph.ProcessSpec
        Usually ``describe_graph(...).processes``.
    env : dict, optional
        Environment of the processes (default ``os.environ``: the user's ROS set-up, e.g.
        beside a real robot). Tests and the demo pass ``robot_twin.ros_env.localhost_env(id)``.
        Either way each process gets this interpreter's own ROS libraries.
    **kwargs
        ``on_line``, ``stop_timeout_s``, ``cwd`` of :class:`ProcessGroup`.

    """
    overrides = tempfile.TemporaryDirectory(prefix='robot_twin_up_')
    processes = with_override_files(processes, overrides.name)
    commands = [(process.name, node_command(process)) for process in processes]
    group = ProcessGroup(commands, child_env(env), **kwargs)
    group.overrides_dir = overrides      # removed when the group is garbage-collected
    return group.start()


def run_until_stopped(group, log=None, *, nodes=None):
    """
    Run ``group`` until SIGINT/SIGTERM or until a child exits; stop it; return an exit code.

    Starts ``group`` if it has not been started. Must be called from the main thread (it
    installs signal handlers, restored on return). A signal within :data:`SAME_REQUEST_S` of
    the first is the same request; one later (a second Ctrl-C) kills every node at once.
    ``nodes``: how many ROS nodes the group's processes run, for the log (default: one each).

    Returns
    -------
    int
        0 after a requested stop in which every child exited cleanly and in time; 2 when a
        child could not start (it exited with status 2: a bad URDF, parameter or file); 1 when
        a child exited otherwise on its own, failed on the way out or had to be killed.

    """
    log = log or (lambda text: print(f'[{_TAG}] {text}', file=sys.stderr, flush=True))
    requested = []      # the signal numbers received
    first = []          # monotonic time of the first one

    def handler(signum, _frame):
        now = time.monotonic()
        if requested and now - first[0] < SAME_REQUEST_S:
            return      # the same request delivered twice (to this process and its group)
        if requested and not group.killing:
            log(f'{signal.Signals(signum).name} again: killing every node now')
            group.kill_now()
        requested.append(signum)
        first.append(now)

    previous = {s: signal.signal(s, handler)
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        if not group.processes:  # started here, so that a Ctrl-C during start-up is handled
            try:
                group.start()
            except RuntimeError as exc:
                log(str(exc))
                return 1
        exited = None
        while not requested and exited is None:
            exited = group.wait(timeout=0.2)
        code = 0
        if exited is not None and not requested:
            name, returncode = exited
            log(f'node {name} {_describe_exit(returncode)}; stopping the others')
            code = 2 if returncode == 2 else 1     # 2: it could not start (bad file, parameter)
        sig = signal.Signals(requested[0]) if requested else signal.SIGINT
        if requested:
            log(f'{sig.name}: stopping {_count(nodes or len(group.processes), "node")} in '
                f'{_count(len(group.processes), "process")} '
                f'(up to {group.stop_timeout_s:g} s; Ctrl-C again to kill)')
        # a node stops cleanly on SIGINT and SIGTERM; SIGHUP would end it at once
        killed = group.stop(signal.SIGTERM if sig == signal.SIGHUP else sig)
        if killed:
            why = ('on a second signal' if group.killing
                   else f'did not exit within {group.stop_timeout_s:g} s')
            log(f'killed {", ".join(killed)}: {why}')
            code = 1
        reported = exited[0] if exited is not None else None
        for name, returncode in group.returncodes().items():
            if name != reported and returncode not in (
                    0, -signal.SIGINT, -signal.SIGTERM, -signal.SIGKILL):
                log(f'node {name} {_describe_exit(returncode)}')
                code = 1
        return code
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _count(number, noun):
    """``'1 process'``, ``'3 processes'``, ``'2 nodes'``."""
    if number == 1:
        return f'1 {noun}'
    return f'{number} {noun}es' if noun.endswith('s') else f'{number} {noun}s'


def up_env(domain_id=None, localhost=False, base=None):
    """Return the processes' environment: the user's (real robot), or localhost-only DDS."""
    env = dict(os.environ if base is None else base)
    if domain_id is not None and not 0 <= domain_id <= MAX_DOMAIN_ID:
        raise ConfigError('--domain-id',
                          [f'{domain_id} is not a ROS_DOMAIN_ID (0..{MAX_DOMAIN_ID})'])
    if localhost:
        domain = domain_id
        if domain is None:
            text = env.get('ROS_DOMAIN_ID') or '0'
            try:
                domain = int(text)
            except ValueError:
                domain = -1
            if not 0 <= domain <= MAX_DOMAIN_ID:
                raise ConfigError('ROS_DOMAIN_ID', [f'{text!r} in the environment is not a '
                                                    f'domain id (0..{MAX_DOMAIN_ID})'])
        return localhost_env(domain, base=env)
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    return child_env(env)


def _stop_timeout(text):
    """``--stop-timeout``: a finite number of seconds >= 0 (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number of seconds >= 0')
    return value


def add_up_parser(subparsers):
    """Add the ``up`` sub-command to an ``argparse`` sub-parsers object; return its parser."""
    parser = subparsers.add_parser(
        'up', help='start the configured nodes without ros2 launch',
        description='Start the nodes of a config file (same processes, nodes and parameters '
                    'as the launch files) and stop them together on Ctrl-C.')
    parser.add_argument('--config', default='twin', metavar='FILE',
                        help=f'params file with a robot_twin section, or a profile '
                             f'({", ".join(PROFILES)}); default: twin (beside a real robot)')
    parser.add_argument('--urdf', default='', metavar='PATH',
                        help='robot URDF for every node (overrides urdf_path)')
    parser.add_argument('--namespace', default='', help='ROS namespace of the nodes')
    parser.add_argument('--use-sim-time', choices=('true', 'false'), default=None,
                        help='set use_sim_time on every node except a plant')
    parser.add_argument('--separate-processes', action='store_true',
                        help='run every node in a process of its own (default: the nodes of '
                             'the twin share one process, see one_process in the config)')
    parser.add_argument('--domain-id', type=int, default=None, metavar='N',
                        help='ROS_DOMAIN_ID for the nodes (default: your environment)')
    parser.add_argument('--localhost', action='store_true',
                        help='keep DDS on this machine (localhost-only discovery and transport)')
    parser.add_argument('--stop-timeout', type=_stop_timeout, default=5.0, metavar='S',
                        help='seconds each process gets to exit on Ctrl-C before SIGKILL')
    parser.add_argument('--dry-run', action='store_true',
                        help='print the command lines and exit')
    add_hub_arguments(parser)
    parser.set_defaults(func=cmd_up)
    return parser


def cmd_up(args):
    """Run ``robot-twin up`` with parsed ``args``; return the exit code."""
    try:
        graph = describe_graph(
            args.config, urdf=args.urdf, namespace=args.namespace,
            use_sim_time=None if args.use_sim_time is None else parse_bool(
                args.use_sim_time, '--use-sim-time'),
            one_process=not args.separate_processes)
        env = up_env(args.domain_id, args.localhost)
        processes, hub = with_hub(graph, hub_overrides(
            args.api, args.api_token_file, args.opcua, args.foxglove))
        urls = hub_urls(hub)
    except (ConfigError, FileNotFoundError) as exc:
        print(f'{_TAG}: {exc}', file=sys.stderr)
        return 2
    if args.dry_run:
        # the overrides go into params files read last, as at run time; the command lines
        # printed name them, so they stay until this process exits, and then are removed
        overrides = tempfile.mkdtemp(prefix='robot_twin_up_')
        atexit.register(shutil.rmtree, overrides, ignore_errors=True)
        for process in with_override_files(processes, overrides):
            print(shlex.join(node_command(process)))
        return 0
    dds = 'localhost only, ' if args.localhost else ''
    layout = '; '.join(f'{p.name}: {", ".join(n.name for n in p.nodes)}'
                       for p in processes)
    print(f'[{_TAG}] {graph.config.path}: starting {len(processes)} process(es) '
          f'({layout}) ({dds}ROS_DOMAIN_ID={env.get("ROS_DOMAIN_ID", "0 (default)")})',
          flush=True)
    for line in urls:
        print(f'[{_TAG}] {line}', flush=True)
    with tempfile.TemporaryDirectory(prefix='robot_twin_up_') as overrides:
        commands = [(process.name, node_command(process))
                    for process in with_override_files(processes, overrides)]
        return run_until_stopped(ProcessGroup(commands, env, stop_timeout_s=args.stop_timeout),
                                 nodes=sum(len(p.nodes) for p in processes))


def main(argv=None):
    """Run ``up`` on its own (``python -m robot_twin.bringup ...``)."""
    parser = argparse.ArgumentParser(prog='robot-twin')
    add_up_parser(parser.add_subparsers(dest='command', required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
