"""`robot-twin demo` end to end: real processes over localhost-only DDS, fault found, all gone."""
import os
import re
import signal
import subprocess
import sys

import pytest
from robot_twin.ros_env import localhost_env
from ros_harness import processes_on_domain, unique_domain_id

DEMO_TIMEOUT_S = 240.0


@pytest.mark.integration
def test_demo_detects_its_fault_on_the_right_joint_and_stops_everything():
    domain = unique_domain_id()
    env = localhost_env(domain)
    proc = subprocess.Popen([sys.executable, '-m', 'robot_twin', 'demo', '--duration', '52',
                             '--domain-id', str(domain)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    leftover = []
    try:
        out, _ = proc.communicate(timeout=DEMO_TIMEOUT_S)
        leftover = processes_on_domain(domain)        # the demo has exited: should be none
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)               # the demo stops what it started ...
        try:
            out, _ = proc.communicate(timeout=30.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        pytest.fail(f'the demo did not finish within {DEMO_TIMEOUT_S:g} s:\n{out}')
    finally:
        for pid in processes_on_domain(domain):       # ... and whatever it left is stopped
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert proc.returncode == 0, out
    # config/faults/demo.yaml's fault, on its joint (earlier alarms only as echoes of a stall
    # of the emulated robot, which the demo names)
    assert re.search(r'detected friction_increase [0-9.]+ s after its onset, on joint3 ', out), out
    assert 'demo OK' in out, out
    # beside the 1 kHz emulated robot the twin's reports ran in pieces after its samples
    # (robot_twin/nodes/idle_work.py), not whole wherever their timers fired
    pieces = re.search(r'twin reports: ([0-9]+) pieces run after robot samples', out)
    assert pieces and int(pieces[1]) > 0, out
    # the twin's own CPU figure (twin/cpu on /diagnostics, process.cpu_cores on /twin/status):
    # a real share of the cores, at most all of them
    cpu = re.search(r'twin CPU, as the twin measures itself: ([0-9.]+) of a core', out)
    assert cpu and 0.0 < float(cpu[1]) <= os.cpu_count(), out
    # every process it started is gone: nothing else is on its private domain
    assert not leftover, f'processes {leftover} left running on the demo domain'
