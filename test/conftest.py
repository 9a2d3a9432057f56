"""
The test session's own home directory.

The twin keeps a robot's commissioning file and health history under ``~/.ros/robot_twin/``,
named after the robot's URDF (built-in arm, Panda, ...), and ROS 2 writes its logs under
``~/.ros/log``. The suite starts twins, plants and demos on such robots; run on a robot's own
computer it must not append test records to that robot's health history or replace its
commissioning. So the session (and every process it starts) gets a temporary ``HOME``, removed
at the end.
"""
import os
import shutil
import tempfile

_HOME = {}


def pytest_configure(config):
    """Point HOME at a fresh temporary directory for the session and its child processes."""
    _HOME['before'] = os.environ.get('HOME')
    _HOME['session'] = tempfile.mkdtemp(prefix='robot_twin_test_home_')
    os.environ['HOME'] = _HOME['session']


def pytest_unconfigure(config):
    """Give HOME back and remove the session's."""
    if 'session' not in _HOME:
        return
    if _HOME['before'] is None:
        os.environ.pop('HOME', None)
    else:
        os.environ['HOME'] = _HOME['before']
    shutil.rmtree(_HOME.pop('session'), ignore_errors=True)
