"""
How ``robot-twin up`` ends: what it says it stops, and the files it leaves (none).

Kept apart from test_bringup.py. No ROS: the group stopped here is one plain child process, and
``up`` itself runs as a dry run or with the process group replaced.
"""
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

from robot_twin import bringup

BOUND_S = 30.0


def test_a_dry_run_removes_its_override_files_when_it_exits(tmp_path):
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))     # where tempfile puts robot_twin_up_*
    run = subprocess.run([sys.executable, '-m', 'robot_twin', 'up', '--dry-run', '--api',
                          '127.0.0.1:8080'], env=env, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    files = [arg for line in run.stdout.splitlines() for arg in shlex.split(line)
             if arg.endswith('.overrides.yaml')]
    assert files and all(f.startswith(str(tmp)) for f in files), run.stdout  # written ...
    assert list(tmp.iterdir()) == []                                          # ... and gone


def test_up_counts_the_nodes_of_its_processes(monkeypatch):
    seen = {}

    def fake_run(group, log=None, *, nodes=None):
        seen.update(processes=[name for name, _argv in group.commands], nodes=nodes)
        return 0

    monkeypatch.setattr(bringup, 'run_until_stopped', fake_run)
    assert bringup.main(['up', '--config', 'twin']) == 0
    assert seen == {'processes': ['twin'], 'nodes': 3}     # bridge, mirror, anomaly in one


def test_stopping_says_nodes_and_processes():
    group = bringup.ProcessGroup([('twin', [sys.executable, '-c', 'import time; '
                                            'time.sleep(60)'])], on_line=lambda *_: None)
    messages = []
    before = signal.getsignal(signal.SIGINT)

    def interrupt_when_installed():
        deadline = time.monotonic() + BOUND_S
        while signal.getsignal(signal.SIGINT) is before and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_installed, daemon=True).start()
    try:
        bringup.run_until_stopped(group, log=messages.append, nodes=3)
    finally:
        group.stop()
    assert any(m.startswith('SIGINT: stopping 3 nodes in 1 process (') for m in messages), \
        messages
