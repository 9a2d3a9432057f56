"""The test session keeps DDS on this machine even for a test that chooses nothing (conftest)."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET


def test_the_session_is_localhost_only_on_a_domain_of_its_own():
    assert os.environ['ROS_LOCALHOST_ONLY'] == '1'
    assert os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 10 <= int(os.environ['ROS_DOMAIN_ID']) <= 99     # never the default domain 0
    profile = ET.parse(os.environ['FASTDDS_DEFAULT_PROFILES_FILE']).getroot()
    # the project's profile: its transports are loopback UDP and shared memory only
    text = ET.tostring(profile, encoding='unicode')
    assert '127.0.0.1' in text and 'SHM' in text


def test_a_child_process_inherits_the_session_settings():
    keys = ('ROS_DOMAIN_ID', 'ROS_LOCALHOST_ONLY', 'ROS_AUTOMATIC_DISCOVERY_RANGE',
            'FASTDDS_DEFAULT_PROFILES_FILE')
    out = subprocess.run(
        [sys.executable, '-c', 'import os, sys; print([os.environ.get(k) for k in sys.argv[1:]])',
         *keys], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == str([os.environ[k] for k in keys])


def test_a_test_graph_never_gets_the_session_domain():
    from ros_harness import unique_domain_id
    session = int(os.environ['ROS_DOMAIN_ID'])
    # every domain a session may hand out, 90 in a row: none of them the session's own
    assert session not in {unique_domain_id() for _ in range(90)}
