"""
Environment for every process robot_twin starts: DDS stays on this machine.

Tests, the demo and the benchmarks each get a ROS_DOMAIN_ID of their own, discovery limited to
localhost, and Fast DDS pointed at the project's loopback + shared-memory profile
(dds/fastdds_localhost.xml), so that parallel runs never cross-talk and no packet leaves the host.
"""
import os
from pathlib import Path

_PROFILE_NAME = 'fastdds_localhost.xml'


def fastdds_profile_path():
    """
    Return the path of the project's localhost-only Fast DDS profile.

    Looks in the source tree first (dds/ next to this package), then in the installed share
    directory (share/robot_twin/dds/).
    """
    here = Path(__file__).resolve().parent
    candidates = [here.parent / 'dds' / _PROFILE_NAME]
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory('robot_twin')) / 'dds' / _PROFILE_NAME)
    except Exception:  # noqa: BLE001 - not installed through ament: source tree only
        pass
    for path in candidates:
        if path.is_file():
            return str(path)
    raise FileNotFoundError(f'{_PROFILE_NAME} not found in {[str(c) for c in candidates]}')


def localhost_env(domain_id, base=None):
    """
    Return a copy of ``base`` (default ``os.environ``) that keeps DDS on localhost.

    Parameters
    ----------
    domain_id : int
        ROS_DOMAIN_ID for this run, 0..101 (the range that is safe for Fast DDS ports).
    base : dict, optional
        Environment to start from.

    """
    if not 0 <= int(domain_id) <= 101:
        raise ValueError(f'ROS_DOMAIN_ID must be in 0..101, got {domain_id}')
    env = dict(os.environ if base is None else base)
    env['ROS_DOMAIN_ID'] = str(int(domain_id))
    env['ROS_LOCALHOST_ONLY'] = '1'
    env['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    env['FASTDDS_DEFAULT_PROFILES_FILE'] = fastdds_profile_path()
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
