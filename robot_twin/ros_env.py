"""
Environment of every process robot_twin starts: its own ROS libraries, and DDS on this machine.

Two jobs, both before a process loads any ROS library:

1. **Its own ROS libraries.** The PyPI ROS 2 wheels find their shared libraries through
   ``LD_LIBRARY_PATH``, which their bootstrapper (a ``.pth`` file) sets by re-executing Python,
   unless ``_ROS_WHEELS_BOOTSTRAP_COMPLETE`` says it already did. A process started by a program
   of *another* environment with ROS wheels (a supervisor, a test harness) inherits that
   environment's path and flag, so its own libraries are never put on the path and a message
   package of its own fails to load; a shell with a sourced ROS install puts that install's
   Python packages and libraries first. :func:`ensure_own_ros_environment` (called first thing
   by every robot_twin entry point) re-executes the process once with :func:`child_env` when
   its environment belongs to someone else; :func:`child_env` is also what robot_twin gives
   the processes it starts. On a ROS install without wheels both change nothing.
2. **DDS stays on this machine** for tests, the demo and the benchmarks (:func:`localhost_env`):
   a ROS_DOMAIN_ID of their own, discovery limited to localhost, and Fast DDS pointed at the
   project's loopback + shared-memory profile (dds/fastdds_localhost.xml).
"""
import glob
import os
from pathlib import Path
import sys

from twin_sim.resources import fastdds_profile

MAX_DOMAIN_ID = 232
"""Largest ROS_DOMAIN_ID ROS 2 accepts on Linux."""

PARENT_PID_VAR = 'ROBOT_TWIN_PARENT_PID'
"""Set by ``robot-twin up`` for its nodes: its pid; a node whose parent is gone stops."""

WHEELS_FLAG = '_ROS_WHEELS_BOOTSTRAP_COMPLETE'
_FIXED_FLAG = '_ROBOT_TWIN_ROS_ENV'   # set on the one re-execution, so it never loops


def _site_packages(prefix):
    version = f'python{sys.version_info.major}.{sys.version_info.minor}'
    return Path(prefix) / 'lib' / version / 'site-packages'


def own_ros_libraries(prefix=None):
    """
    Return the library directories of this interpreter's ROS wheels, or [] when it has none.

    ``<prefix>/lib`` and every ``site-packages/ros_*.libs``, as the wheels' bootstrapper
    computes them; ``prefix`` defaults to ``sys.prefix``.
    """
    site = _site_packages(prefix or sys.prefix)
    if not (site / 'ros_wheels_bootstrapper').is_dir():
        return []
    return [str(Path(prefix or sys.prefix) / 'lib')] + sorted(
        glob.glob(str(site / 'ros_*.libs')))


def _is_foreign_ros(path, own):
    """Whether a library/Python path belongs to another ROS environment than ``own``."""
    if not path or path in own:
        return False
    p = Path(path)
    if p.name.startswith('ros_') and p.name.endswith('.libs'):
        return True                                   # another venv's wheel libraries
    if (p / 'rclpy').is_dir() or (p / 'librcl.so').exists():
        return True                                   # a ROS install's Python or lib dir
    return any(p.glob('python3*/site-packages/ros_wheels_bootstrapper'))  # another venv's lib


BLAS_THREAD_VARIABLES = ('OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS')
"""Thread counts of the BLAS libraries numpy and scipy may use."""


def child_env(base=None):
    """
    Return the environment a process running this interpreter needs for its own ROS.

    With ROS wheels here: ``LD_LIBRARY_PATH`` is this interpreter's ROS libraries first, then
    what ``base`` had minus any other ROS environment's; ``PYTHONPATH`` and
    ``AMENT_PREFIX_PATH`` lose the entries of another ROS environment; the wheels' flag is set
    (their bootstrapper need not re-execute). Without wheels (a ROS install) ``base`` is
    returned unchanged. ``base`` defaults to ``os.environ``.

    Either way, numpy's BLAS gets one thread unless ``base`` says otherwise
    (``BLAS_THREAD_VARIABLES``): the twin's matrices are 7x7, and idle BLAS threads that spin
    beside a 1 kHz robot on a small computer only take its CPU.
    """
    env = dict(os.environ if base is None else base)
    for key in BLAS_THREAD_VARIABLES:
        env.setdefault(key, '1')
    own = own_ros_libraries()
    if not own:
        return env
    parts = [p for p in env.get('LD_LIBRARY_PATH', '').split(os.pathsep)
             if p and p not in own and not _is_foreign_ros(p, own)]
    env['LD_LIBRARY_PATH'] = os.pathsep.join(own + parts)
    env[WHEELS_FLAG] = '1'
    for key in ('PYTHONPATH', 'AMENT_PREFIX_PATH'):
        if key in env:
            kept = [p for p in env[key].split(os.pathsep)
                    if p and not (_is_foreign_ros(p, own) or _is_foreign_ros(
                        os.path.join(p, 'lib'), own))]
            env[key] = os.pathsep.join(kept)
    return env


def _needs_fixing(env, own):
    """Own ROS libraries missing from the path, or another ROS environment's on it."""
    if not own:
        return False
    paths = {key: [p for p in env.get(key, '').split(os.pathsep) if p]
             for key in ('LD_LIBRARY_PATH', 'PYTHONPATH', 'AMENT_PREFIX_PATH')}
    if not set(own) <= set(paths['LD_LIBRARY_PATH']):
        return True
    return any(_is_foreign_ros(p, own) for p in paths['LD_LIBRARY_PATH'] + paths['PYTHONPATH']) \
        or any(_is_foreign_ros(os.path.join(p, 'lib'), own) for p in paths['AMENT_PREFIX_PATH'])


def ensure_own_ros_environment():
    """
    Re-execute this process once with :func:`child_env` if its ROS environment is foreign.

    Call it before anything imports rclpy or a message package. Does nothing on a ROS install,
    when the environment is already right, or after the one re-execution.
    """
    own = own_ros_libraries()
    if os.environ.get(_FIXED_FLAG) or not _needs_fixing(os.environ, own):
        return
    env = child_env()
    env[_FIXED_FLAG] = '1'
    argv = list(getattr(sys, 'orig_argv', None) or [sys.executable] + sys.argv)
    os.execve(sys.executable, [sys.executable] + argv[1:], env)


def fastdds_profile_path():
    """Return the path of the project's localhost-only Fast DDS profile."""
    return fastdds_profile()


def localhost_env(domain_id, base=None):
    """
    Return an environment that keeps DDS on localhost, with this interpreter's ROS libraries.

    Parameters
    ----------
    domain_id : int
        ROS_DOMAIN_ID for this run, 0..232 (the project's own runs pick 10..99, below the
        ids whose Fast DDS ports may meet Linux's ephemeral port range).
    base : dict, optional
        Environment to start from (default ``os.environ``).

    """
    if not 0 <= int(domain_id) <= MAX_DOMAIN_ID:
        raise ValueError(f'ROS_DOMAIN_ID must be in 0..{MAX_DOMAIN_ID}, got {domain_id}')
    env = child_env(base)
    env['ROS_DOMAIN_ID'] = str(int(domain_id))
    env['ROS_LOCALHOST_ONLY'] = '1'
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['FASTDDS_DEFAULT_PROFILES_FILE'] = fastdds_profile()
    env.setdefault('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp')
    env['PYTHONUNBUFFERED'] = '1'
    # many small processes on few cores: one BLAS thread each (unless the caller chose)
    env.setdefault('OPENBLAS_NUM_THREADS', '1')
    env.setdefault('OMP_NUM_THREADS', '1')
    return env


def free_domain_id(seed=None):
    """Pick a ROS_DOMAIN_ID in 10..99 from the process id (or ``seed``) for a private run."""
    value = os.getpid() if seed is None else int(seed)
    return 10 + value % 90
