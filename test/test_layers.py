"""
The import direction between robot_twin's top-level packages (ARCHITECTURE.md, Layers).

From the bottom: ``twin_sim`` (physics) <- ``twin_bridge`` (validation, governor) <-
``twin_anomaly`` (detection, RUL) <- ``robot_twin`` (the ROS node layer in robot_twin/nodes/,
then the command line and the offline jobs that combine physics and detection). A module may
import its own package and the packages below it, never one above. The cores are ROS-free: only
robot_twin/nodes/ imports rclpy or message packages, and no other robot_twin module imports
the node layer at load time except the bring-up paths listed below.

Every import statement counts, including those inside functions: a lazy import against the
direction is still a cycle.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ('twin_sim', 'twin_bridge', 'twin_anomaly', 'robot_twin')
ROS_MODULES = ('rclpy', 'rcl_interfaces', 'builtin_interfaces', 'std_msgs', 'std_srvs',
               'sensor_msgs', 'geometry_msgs', 'trajectory_msgs', 'diagnostic_msgs',
               'visualization_msgs', 'rosgraph_msgs', 'launch', 'launch_ros')


def imported_modules(path):
    """Return the absolute module names every import statement of ``path`` names."""
    tree = ast.parse(path.read_text(encoding='utf-8'), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f'{node.module}.{alias.name}' for alias in node.names]
    return names


def sources(package):
    return sorted((ROOT / package).rglob('*.py'))


@pytest.mark.parametrize('package', ORDER)
def test_packages_import_only_themselves_and_lower_layers(package):
    rank = ORDER.index(package)
    wrong = []
    for path in sources(package):
        for name in imported_modules(path):
            top = name.split('.')[0]
            if top in ORDER and ORDER.index(top) > rank:
                wrong.append(f'{path.relative_to(ROOT)} imports {name}')
    assert not wrong, 'imports against the layer order ' + ' <- '.join(ORDER) + ':\n' + \
        '\n'.join(sorted(set(wrong)))


@pytest.mark.parametrize('package', ('twin_sim', 'twin_bridge', 'twin_anomaly'))
def test_cores_are_ros_free(package):
    wrong = [f'{path.relative_to(ROOT)} imports {name}' for path in sources(package)
             for name in imported_modules(path) if name.split('.')[0] in ROS_MODULES]
    assert not wrong, 'ROS imports in a core:\n' + '\n'.join(sorted(set(wrong)))


def test_only_the_node_layer_imports_ros():
    nodes = ROOT / 'robot_twin' / 'nodes'
    allowed = {ROOT / 'robot_twin' / 'launch_description.py'}    # launch files' helper
    wrong = [f'{path.relative_to(ROOT)} imports {name}' for path in sources('robot_twin')
             if nodes not in path.parents and path not in allowed
             for name in imported_modules(path) if name.split('.')[0] in ROS_MODULES]
    assert not wrong, 'ROS imports outside robot_twin/nodes/:\n' + '\n'.join(sorted(set(wrong)))


def test_the_node_layer_does_not_import_the_command_line():
    above = ('robot_twin.cli', 'robot_twin.bringup', 'robot_twin.demo', 'robot_twin.whatif',
             'robot_twin.commissioning', 'robot_twin.sysid_cli', 'robot_twin.whatif_cli')
    wrong = [f'{path.relative_to(ROOT)} imports {name}'
             for path in sorted((ROOT / 'robot_twin' / 'nodes').rglob('*.py'))
             for name in imported_modules(path) if name.startswith(above)]
    assert not wrong, 'the node layer imports the layer above it:\n' + '\n'.join(wrong)


def test_checker_sees_lazy_imports(tmp_path):
    module = tmp_path / 'm.py'
    module.write_text('def f():\n    from robot_twin.whatif import run_whatif\n')
    assert 'robot_twin.whatif' in imported_modules(module)
