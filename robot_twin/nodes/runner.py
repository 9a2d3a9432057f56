"""
Start, spin and stop robot_twin nodes: one or several in a process, on one executor.

:func:`run_nodes` is what every node executable (and the one-process twin,
:mod:`robot_twin.nodes.container`) calls. It builds the nodes (a bad parameter, URDF or file is
one clear ``[ERROR]`` line and exit status 2), spins them until Ctrl-C/SIGTERM or a shutdown,
and destroys them.

The executor is rclpy's EventsExecutor where the installed rclpy has it (Kilted and newer), else
the SingleThreadedExecutor. The EventsExecutor dispatches callbacks from C++ with less work per
callback (BENCHMARKS.md, issue 13), but its ``spin()`` must not be used: in rclpy 9.1.2 it runs
the events queue with no deadline, which busy-waits one whole core even with nothing to do
(measured: 2.0 s of CPU in 2.0 s on an idle node) and starves the callbacks of the GIL, so that
a node on a 1 kHz stream published nothing. Spinning it in slices with a deadline
(``spin_until_future_complete`` on the stop future below, ``SPIN_SLICE_S`` at a time) waits
without burning CPU and runs every callback as it comes.

A node started by ``robot-twin up`` also stops when ``up`` is gone (killed with SIGKILL, so it
could not stop its nodes): the spin loop checks, once a slice, that the process's parent is
still the one named in ``ROBOT_TWIN_PARENT_PID``, so no orphaned twin keeps running beside the
robot (and beside the next ``up``).

A node may put off part of its set-up until every node of the process is built
(:func:`when_built`): the robot's 1 kHz streams are subscribed to only then. Subscribed while
the other nodes were still being built (models, the classifier: up to a second), the samples
queued beyond the subscription's depth, the oldest were lost, and the first ones taken, all
late, made the stamp checks refuse the first on-time samples and the stream checks count the
twin's own start-up loss as samples missing from the robot (BENCHMARKS.md, issue 13).

Ctrl-C and SIGTERM end the spin loop rather than the ROS context: with rclpy's own signal
handlers the context went invalid while a callback was running, so a timer publishing at that
moment failed with a FATAL line and a traceback (often, on a busy machine). Here the signal
completes the stop future, the loop returns (within ``SPIN_SLICE_S``), and the executor, the
nodes and then the context are shut down in that order.
"""
import gc
import os
import signal
import sys
import warnings

import rclpy
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future
from robot_twin.config import ConfigError
from robot_twin.ros_env import PARENT_PID_VAR
from twin_sim.urdf_model import URDFError
try:
    from rclpy.experimental import EventsExecutor
except ImportError:   # Humble, Jazzy
    EventsExecutor = None

SPIN_SLICE_S = 0.5
"""Deadline of each EventsExecutor spin slice, s (how long a stop request may wait)."""

_START_UP_ERRORS = (ConfigError, URDFError, FileNotFoundError, ValueError, ParameterException,
                    NameValidationException)     # a topic parameter that is no topic name


_building = None
"""While :func:`build_nodes` builds a process's nodes: the callbacks put off until it is done."""


def when_built(callback):
    """
    Call ``callback()`` once every node of this process is built.

    Within :func:`build_nodes` (every node executable, the one-process twin) that is after the
    last node; a node built outside it (tests, benchmarks) has it called at once.
    """
    if _building is None:
        callback()
    else:
        _building.append(callback)


def build_nodes(factories):
    """
    Build the nodes in order, then run what they put off until all were built; return them.

    ``factory(nodes)`` is called with the list of the nodes built before it. When a factory
    (or what was put off) raises, the nodes built so far are destroyed (when they can be) and
    nothing more runs.
    """
    global _building
    nodes, pending = [], []
    _building = pending
    try:
        for factory in factories:
            nodes.append(factory(list(nodes)))
        _building = None
        for callback in pending:
            callback()
    except BaseException:
        for node in reversed(nodes):
            destroy = getattr(node, 'destroy_node', None)
            if destroy is not None:
                destroy()
        raise
    finally:
        _building = None
    return nodes


def make_executor(context=None):
    """
    Return the executor robot_twin spins its nodes with (see the module docstring).

    ``ROBOT_TWIN_EXECUTOR=single`` in the environment picks the SingleThreadedExecutor even
    where the EventsExecutor exists (to compare them, or should the latter misbehave).
    """
    if EventsExecutor is not None and os.environ.get('ROBOT_TWIN_EXECUTOR') != 'single':
        return EventsExecutor(context=context)
    return SingleThreadedExecutor(context=context)


def spin(executor, context=None, stop=None):
    """
    Spin ``executor`` until ``stop`` (a Future) completes or the context shuts down.

    ``stop`` None: only a shutdown of the context ends it.
    """
    context = context or rclpy.get_default_context()
    stop = stop or Future()
    parent = os.environ.get(PARENT_PID_VAR, '')
    parent = int(parent) if parent.isdigit() else None
    while context.ok() and not stop.done():
        if parent is not None and os.getppid() != parent:
            print(f'[WARN] the process that started this node (pid {parent}, robot-twin up) '
                  'is gone: stopping', file=sys.stderr, flush=True)
            break
        if isinstance(executor, SingleThreadedExecutor):
            executor.spin_once(timeout_sec=SPIN_SLICE_S)
        else:
            executor.spin_until_future_complete(stop, timeout_sec=SPIN_SLICE_S)


def stop_on_signals(stop):
    """Complete ``stop`` on SIGINT and SIGTERM (instead of rclpy shutting the context down)."""
    def handler(_signum, _frame):
        if not stop.done():
            stop.set_result(True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


def _warning_line(message, category, filename, lineno, line=None):
    """Format a Python warning of a node process as one log-like line (no source line)."""
    return f'[WARN] {category.__name__}: {message}\n'


def run_nodes(factories, args=None):
    """
    Init rclpy, build the nodes, spin them together, shut down cleanly; return the exit status.

    Parameters
    ----------
    factories : sequence of callable
        ``factory(nodes) -> Node``, called in order; ``nodes`` is the list of the nodes built
        so far (so a node can take its input from one built before it, in the same process).
    args : list of str, optional
        Command-line arguments for rclpy (``--ros-args ...``); default ``sys.argv``.

    Returns
    -------
    int
        0 after a requested stop; 2 when a node could not start (bad parameter, URDF, file):
        the reason is printed as one ``[ERROR]`` line.

    """
    # a warning while the nodes are built (a URDF's quirks) reads as one line of the node's
    # output, as its log lines do, not as Python's file:line and the source line after it
    warnings.formatwarning = _warning_line
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = Future()
    stop_on_signals(stop)
    nodes = []
    try:
        try:
            nodes = build_nodes(factories)
        except _START_UP_ERRORS as exc:    # ParameterException: rclpy's type/range check
            text = str(exc)
            if isinstance(exc, NameValidationException):
                # one line: rclpy points at the bad character on two more
                text = ' '.join(line.strip() for line in text.splitlines()
                                if line.strip() and set(line.strip()) != {'^'})
            print(f'[ERROR] {text}', file=sys.stderr)
            return 2
        executor = make_executor()
        for node in nodes:
            executor.add_node(node)
        # What start-up built (models, nodes, modules) lives as long as the process: keep it
        # out of the garbage collector's full passes, which otherwise stall the 1 kHz
        # callbacks for tens of milliseconds now and then.
        gc.freeze()
        try:
            spin(executor, stop=stop)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        except Exception:
            if rclpy.ok():
                raise
        finally:
            executor.shutdown()
    finally:
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def run_node(factory, args=None):
    """Run the one node ``factory()`` builds (see :func:`run_nodes`); return the exit status."""
    return run_nodes([lambda _nodes: factory()], args)
