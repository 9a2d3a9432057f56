"""`robot-twin demo` end to end: separate processes over localhost-only DDS, fault found."""
import subprocess
import sys

import pytest

from robot_twin.ros_env import free_domain_id, localhost_env


@pytest.mark.integration
def test_demo_detects_its_fault_on_the_right_joint_and_stops_everything():
    domain = free_domain_id(seed=53)
    env = localhost_env(domain)
    result = subprocess.run(
        [sys.executable, '-m', 'robot_twin', 'demo', '--duration', '28',
         '--domain-id', str(domain)],
        env=env, capture_output=True, text=True, timeout=180)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert 'first alarm: joint joint3' in out, out          # config/faults/demo.yaml's joint
    assert 'detected friction_increase' in out and 'demo OK' in out, out
    # every node it started is gone: nothing else is on its private domain
    leftover = subprocess.run(['pgrep', '-f', '__node:='], capture_output=True, text=True)
    for pid in leftover.stdout.split():
        try:
            with open(f'/proc/{pid}/environ', 'rb') as f:
                environ = f.read().split(b'\0')
        except OSError:
            continue                                   # exited meanwhile
        assert f'ROS_DOMAIN_ID={domain}'.encode() not in environ, f'node {pid} left running'
