"""
The test session's own home directory.

The twin keeps a robot's commissioning file and health history under ``~/.ros/robot_twin/``,
named after the robot's URDF (built-in arm, Panda, ...), and ROS 2 writes its logs under
``~/.ros/log``. The suite starts twins, plants and demos on such robots; run on a robot's own
computer it must not append test records to that robot's health history or replace its
commissioning. So the session (and every process it starts) gets a temporary ``HOME``, removed
at the end.

DDS stays on this machine for the whole session, not only in the tests that start graphs on a
domain of their own (``localhost_env``): before any test runs, the session's environment gets
localhost-only discovery, the project's loopback + shared-memory Fast DDS profile and a
ROS_DOMAIN_ID of its own, so that a test (or a process it starts) that forgets to choose
never talks to another machine or to domain 0.
"""
import os
import shutil
import tempfile

from robot_twin.ros_env import free_domain_id, localhost_env

_HOME = {}
_DDS_KEYS = ('ROS_DOMAIN_ID', 'ROS_LOCALHOST_ONLY', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
             'FASTDDS_DEFAULT_PROFILES_FILE')
_DDS_BEFORE = {}


def pytest_configure(config):
    """Give the session (and its child processes) a temporary HOME and localhost-only DDS."""
    _HOME['before'] = os.environ.get('HOME')
    _HOME['session'] = tempfile.mkdtemp(prefix='robot_twin_test_home_')
    os.environ['HOME'] = _HOME['session']
    # (another id than the tests' own free_domain_id() from the same pid)
    local = localhost_env(free_domain_id(os.getpid() + 45), base={})
    for key in _DDS_KEYS:
        _DDS_BEFORE[key] = os.environ.get(key)
        os.environ[key] = local[key]


def pytest_unconfigure(config):
    """Give HOME and the DDS settings back; remove the session's HOME."""
    for key, value in _DDS_BEFORE.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    _DDS_BEFORE.clear()
    if 'session' not in _HOME:
        return
    if _HOME['before'] is None:
        os.environ.pop('HOME', None)
    else:
        os.environ['HOME'] = _HOME['before']
    shutil.rmtree(_HOME.pop('session'), ignore_errors=True)
