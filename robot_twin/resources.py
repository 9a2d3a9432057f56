"""
Where the package's data files are: the built-in URDF, configs and fault scenarios.

Works from the source tree (``pip install -e .``, tests) and from an installed package
(``colcon build``: share/robot_twin/...).
"""
from pathlib import Path

PACKAGE = 'robot_twin'
BUILTIN_URDF = 'urdf/robot_twin_arm.urdf'


def share_dir():
    """Return the directory that holds urdf/, config/, launch/ and dds/ (a Path)."""
    source = Path(__file__).resolve().parents[1]
    if (source / 'package.xml').is_file() and (source / 'urdf').is_dir():
        return source
    try:
        from ament_index_python.packages import get_package_share_directory
        return Path(get_package_share_directory(PACKAGE))
    except Exception as exc:  # noqa: BLE001 - report what was searched
        raise FileNotFoundError(
            f'robot_twin data files not found next to {source} nor in an ament share '
            f'directory ({exc}); reinstall the package') from None


def builtin_urdf():
    """Return the path of the built-in 7-DoF demo arm (str)."""
    return str(share_dir() / BUILTIN_URDF)


def urdf_or_builtin(path):
    """Return ``path``, or the built-in URDF when ``path`` is empty."""
    return str(path) if path else builtin_urdf()


def config_file(name):
    """Return config/<name> (a file name or relative path), as a str."""
    return str(share_dir() / 'config' / name)


def _named_config(name_or_path, folder, what):
    """Resolve an existing file path, or a name (with or without .yaml) in config/<folder>/."""
    path = Path(name_or_path)
    if path.is_file():
        return str(path)
    name = path.name if path.suffix in ('.yaml', '.yml') else path.name + '.yaml'
    candidate = share_dir() / 'config' / folder / name
    if candidate.is_file():
        return str(candidate)
    known = sorted(p.stem for p in (share_dir() / 'config' / folder).glob('*.yaml'))
    raise FileNotFoundError(
        f'{what} {name_or_path!r} is neither a file nor a name in config/{folder} '
        f'(known: {", ".join(known) or "none"})')


def fault_scenario(name_or_path):
    """
    Resolve a fault scenario: an existing file path, or a name in config/faults/.

    ``'demo'`` and ``'demo.yaml'`` both give config/faults/demo.yaml.
    """
    return _named_config(name_or_path, 'faults', 'fault scenario')


def randomization_file(name_or_path):
    """Resolve a randomization file: an existing path, or a name in config/randomization/."""
    return _named_config(name_or_path, 'randomization', 'randomization file')
