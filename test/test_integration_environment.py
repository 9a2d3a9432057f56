"""
The twin starts from any environment: another venv with ROS 2 wheels, or a sourced ROS shell.

A supervisor or test harness that runs in a Python environment of its own with the ROS 2 wheels
hands its children its library path and the wheels' "already bootstrapped" flag; a child of
robot_twin's venv then never puts its own ROS libraries on the path, and a message package
the other environment lacks (visualization_msgs, used by twin_anomaly) fails to load. Here a
real second venv with a smaller set of ROS wheels starts ``robot-twin up``.
"""
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest
from robot_twin.ros_env import child_env, own_ros_libraries
from ros_harness import kill_domain_processes, Observer, START_TIMEOUT_S, unique_domain_id, \
    wait_until

ROOT = Path(__file__).resolve().parents[1]
WHEELS = ('ros-rclpy', 'ros-rmw-fastrtps-cpp', 'ros-std-msgs')
"""What the other environment has: rclpy, but not the message packages robot_twin needs."""


def pinned(names):
    """List the requirements.txt pins of ``names`` (the same versions as ours)."""
    pins = {}
    for line in (ROOT / 'requirements.txt').read_text().splitlines():
        name, _, version = line.strip().partition('==')
        if name in names:
            pins[name] = f'{name}=={version}'
    assert set(pins) == set(names), pins
    return list(pins.values())


@pytest.fixture(scope='module')
def other_venv(tmp_path_factory):
    """Build a second virtual environment with a few ROS 2 wheels of its own."""
    path = tmp_path_factory.mktemp('other_ros_venv')
    base = getattr(sys, '_base_executable', sys.executable)
    subprocess.run([base, '-m', 'venv', str(path)], check=True, timeout=300)
    python = path / 'bin' / 'python'
    subprocess.run([str(python), '-m', 'pip', 'install', '--quiet', *pinned(WHEELS)],
                   check=True, timeout=900, stdout=subprocess.DEVNULL)
    return python


def test_child_env_puts_own_ros_first_and_drops_other_environments(tmp_path):
    other = tmp_path / 'venv2' / 'lib' / 'python3.11' / 'site-packages'
    (other / 'ros_rcl.libs').mkdir(parents=True)
    (other / 'ros_wheels_bootstrapper').mkdir()
    sourced = tmp_path / 'opt_ros' / 'lib'
    (sourced / 'python3.12' / 'site-packages' / 'rclpy').mkdir(parents=True)
    (sourced / 'librcl.so').touch()
    base = {'LD_LIBRARY_PATH': os.pathsep.join([str(tmp_path / 'venv2' / 'lib'),
                                                str(other / 'ros_rcl.libs'), str(sourced),
                                                '/usr/local/cuda/lib64']),
            'PYTHONPATH': os.pathsep.join([str(sourced / 'python3.12' / 'site-packages'),
                                           '/home/me/tools']),
            'AMENT_PREFIX_PATH': str(tmp_path / 'opt_ros'),
            '_ROS_WHEELS_BOOTSTRAP_COMPLETE': '1', 'HOME': '/home/me'}
    env = child_env(base)
    own = own_ros_libraries()
    assert own, 'the test venv has ROS wheels'
    assert env['LD_LIBRARY_PATH'].split(os.pathsep) == own + ['/usr/local/cuda/lib64']
    assert env['PYTHONPATH'] == '/home/me/tools' and env['AMENT_PREFIX_PATH'] == ''
    assert env['_ROS_WHEELS_BOOTSTRAP_COMPLETE'] == '1' and env['HOME'] == '/home/me'
    assert child_env(env) == env                             # nothing left to fix


SUPERVISOR = textwrap.dedent("""
    import os, signal, subprocess, sys
    import rclpy      # this environment's own ROS: its bootstrapper has set the library path
    assert '_ROS_WHEELS_BOOTSTRAP_COMPLETE' in os.environ
    assert sys.prefix in os.environ['LD_LIBRARY_PATH']
    child = subprocess.Popen(sys.argv[1:])
    # a supervisor passes Ctrl-C on to what it started and reports how that ended
    signal.signal(signal.SIGINT, lambda *_: child.send_signal(signal.SIGINT))
    sys.exit(child.wait())
""")


@pytest.mark.integration
def test_up_started_from_another_ros_venv_brings_the_whole_twin_up(other_venv, tmp_path):
    domain = unique_domain_id()
    observer = Observer(domain)
    up = [str(Path(sys.executable).parent / 'robot-twin'), 'up', '--config', 'twin',
          '--localhost', '--domain-id', str(domain)]
    env = {k: v for k, v in os.environ.items() if k not in (
        'LD_LIBRARY_PATH', '_ROS_WHEELS_BOOTSTRAP_COMPLETE')}
    env['HOME'] = str(tmp_path)                       # thresholds are saved under ~/.ros
    proc = subprocess.Popen([str(other_venv), '-c', SUPERVISOR, *up], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # twin_anomaly (which needs visualization_msgs, absent from the other venv) reports
        wait_until(lambda: observer.monitor.obs.anomaly or proc.poll() is not None,
                   START_TIMEOUT_S, 'the twin to report on /twin/anomaly')
        assert proc.poll() is None, proc.stdout.read()
        assert 'twin/anomaly/robot' in observer.monitor.obs.anomaly
    finally:
        proc.send_signal(2)
        try:
            out, _ = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        observer.close()
        kill_domain_processes(domain)     # nothing of this test outlives it, pass or fail
    assert 'cannot open shared object file' not in out, out
    assert proc.returncode == 0, out
