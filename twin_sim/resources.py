"""
Where robot_twin's data files are: the one way every layer finds them.

The data (urdf/, config/, launch/, dds/, package.xml) sits at the top of the source tree and is
installed to ``<prefix>/share/robot_twin/`` by ``setup.py``'s ``data_files``. :func:`share_dir`
finds that directory in each way the package can be installed:

1. a source checkout (``pip install -e .``, the tests): the tree this module is in;
2. an install prefix (non-editable ``pip install .`` into a venv or ``--user``; ``colcon
   build`` without ``--symlink-install``): ``<prefix>/share/robot_twin``, where ``<prefix>`` is
   the one whose ``lib/pythonX.Y/site-packages`` holds this module;
3. the ament index (a ROS 2 install whose share directory is elsewhere).

Cores never build paths from ``__file__`` themselves; they call the functions here.
"""
from pathlib import Path
import sys

PACKAGE = 'robot_twin'
BUILTIN_URDF = 'urdf/robot_twin_arm.urdf'
FASTDDS_PROFILE = 'dds/fastdds_localhost.xml'


def _candidates():
    here = Path(__file__).resolve()
    yield here.parents[1]                                   # source tree
    for prefix in (here.parents[4] if len(here.parents) > 4 else None, Path(sys.prefix)):
        if prefix is not None:                              # <prefix>/lib/pythonX.Y/site-packages
            yield prefix / 'share' / PACKAGE
    try:
        import site
        yield Path(site.getuserbase()) / 'share' / PACKAGE
    except (AttributeError, OSError):   # pragma: no cover - a Python without site
        pass


def share_dir():
    """
    Return the directory that holds urdf/, config/, launch/ and dds/ (a Path).

    Raises ``FileNotFoundError`` naming every place searched when none has the data.
    """
    searched = []
    for candidate in _candidates():
        searched.append(str(candidate))
        if (candidate / 'package.xml').is_file() and (candidate / 'urdf').is_dir():
            return candidate
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception as exc:  # noqa: BLE001 - not on the ament index either: say where we looked
        searched.append(f'ament index ({exc})')
    raise FileNotFoundError(f'robot_twin data files not found; searched {"; ".join(searched)}. '
                            'Reinstall the package (make setup, pip install . or colcon build)')


def data_path(*parts):
    """Return ``share_dir()/parts...`` as a str; raise ``FileNotFoundError`` if it is absent."""
    path = share_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f'{"/".join(parts)} not found in {share_dir()}')
    return str(path)


def builtin_urdf():
    """Return the path of the built-in 7-DoF demo arm (str)."""
    return data_path(*BUILTIN_URDF.split('/'))


def urdf_or_builtin(path):
    """Return ``path``, or the built-in URDF when ``path`` is empty."""
    return str(path) if path else builtin_urdf()


def fastdds_profile():
    """Return the path of the project's loopback + shared-memory Fast DDS profile (str)."""
    return data_path(*FASTDDS_PROFILE.split('/'))


def config_dir(folder=''):
    """Return config/ or one of its folders (faults, randomization, whatif, rviz) as a Path."""
    return share_dir() / 'config' / folder if folder else share_dir() / 'config'


def named_config(name_or_path, folder, what):
    """
    Resolve an existing file path, or a name (with or without .yaml) in config/<folder>/.

    Raises ``FileNotFoundError`` that lists the names the folder has.
    """
    path = Path(name_or_path)
    if path.is_file():
        return str(path)
    name = path.name if path.suffix in ('.yaml', '.yml') else path.name + '.yaml'
    candidate = config_dir(folder) / name
    if str(path.parent) in ('.', '') and candidate.is_file():
        return str(candidate)
    known = sorted(p.stem for p in config_dir(folder).glob('*.yaml'))
    raise FileNotFoundError(
        f'{what} {str(name_or_path)!r} is neither a file nor a name in config/{folder} '
        f'(packaged: {", ".join(known) or "none"})')


def list_configs(folder):
    """Return the names (without .yaml) of the files in config/<folder>/, sorted."""
    return sorted(p.stem for p in config_dir(folder).glob('*.yaml'))


def fault_scenario(name_or_path):
    """Resolve a fault scenario: a file path, or a name in config/faults/ (``demo``)."""
    return named_config(name_or_path, 'faults', 'fault scenario')


def randomization_file(name_or_path):
    """Resolve a randomization file: a file path, or a name in config/randomization/."""
    return named_config(name_or_path, 'randomization', 'randomization file')


def whatif_scenario(name_or_path):
    """Resolve a what-if scenario: a file path, or a name in config/whatif/."""
    return named_config(name_or_path, 'whatif', 'what-if scenario')
