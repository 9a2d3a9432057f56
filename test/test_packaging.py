"""
The packaging files agree with each other and with the code (no network).

- Each requirements file pins exactly one version of each package for every Python the package
  supports (setup.py's python_requires up to 3.12), and a pin that the installed release says
  needs a newer Python than that has a ``python_version`` marked alternative.
- package.xml names only rosdep keys that exist, and every third-party module the code imports
  comes from package.xml (rosdep) or from the pip-only requirements, which its comment lists.
- Nothing requirements-ros.txt installs needs numpy 2 (read from the installed releases'
  metadata): on a ROS install the distribution's scipy and matplotlib are built against numpy 1,
  so pinocchio comes from rosdep, not as pip's ``pin`` (its cmeel-boost needs numpy 2).
"""
import ast
from importlib import metadata
from pathlib import Path
import re
import sys
import xml.etree.ElementTree as ElementTree

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
import pytest

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ('requirements.txt', 'requirements-ros.txt', 'requirements-dev.txt')
PACKAGES = ('robot_twin', 'twin_sim', 'twin_bridge', 'twin_anomaly')

# rosdep keys of package.xml's python3-* dependencies, each checked in ros/rosdistro's
# rosdep/python.yaml (with Ubuntu entries for jammy and noble). Add a key here only after
# checking it there: rosdep stops at a key it does not know (python3-threadpoolctl is none).
ROSDEP_KEYS = {
    'python3-numpy', 'python3-scipy', 'python3-yaml', 'python3-transforms3d',
    'python3-matplotlib', 'python3-tqdm', 'python3-pil', 'python3-pytest',
    'python3-pytest-timeout', 'python3-hypothesis', 'python3-httpx', 'python3-websockets',
    'python3-sklearn'}
# import name -> rosdep key, for what a ROS distribution packages
FROM_ROSDEP = {'numpy': 'python3-numpy', 'scipy': 'python3-scipy', 'yaml': 'python3-yaml',
               'transforms3d': 'python3-transforms3d', 'matplotlib': 'python3-matplotlib',
               'tqdm': 'python3-tqdm', 'PIL': 'python3-pil',
               # ros-$ROS_DISTRO-pinocchio: 4.1.0 on humble, jazzy and kilted (checked in
               # ros/rosdistro's <distro>/distribution.yaml), built against their numpy 1
               'pinocchio': 'pinocchio'}
# import name -> pip distribution, for what comes from requirements-ros.txt
FROM_PIP = {'pybullet': 'pybullet', 'pybullet_data': 'pybullet',
            'onnxruntime': 'onnxruntime', 'rosbags': 'rosbags', 'threadpoolctl': 'threadpoolctl',
            'mujoco': 'mujoco', 'pycocotools': 'pycocotools', 'fastapi': 'fastapi',
            'starlette': 'fastapi', 'pydantic': 'fastapi', 'uvicorn': 'uvicorn',
            'h11': 'uvicorn',      # uvicorn's HTTP parser; the hub's connection guard reads it
            'asyncua': 'asyncua', 'foxglove': 'foxglove-sdk', 'basyx': 'basyx-python-sdk'}
# the training jobs (README: their lines of requirements.txt) and the ray extra
FOR_TRAINING = {'lightgbm': 'lightgbm', 'onnxmltools': 'onnxmltools', 'onnx': 'onnx',
                'skl2onnx': 'skl2onnx', 'sklearn': 'scikit-learn', 'ray': 'ray'}


def requirements(name):
    """Return the Requirement of every pin line of a requirements file (not its -r lines)."""
    lines = (ROOT / name).read_text().splitlines()
    return [Requirement(line.split('#', 1)[0].strip()) for line in lines
            if line.split('#', 1)[0].strip() and not line.startswith('-')]


def pins_for(requirements_, python):
    """Return ``{name: version}`` of the pins active on ``python`` ('3.10'); no name twice."""
    pins = {}
    for req in requirements_:
        if req.marker is None or req.marker.evaluate({'python_version': python}):
            assert req.name.lower() not in pins, f'{req.name} pinned twice for {python}'
            pins[req.name.lower()] = str(req.specifier)
    return pins


def pythons():
    """Every minor Python version setup.py's python_requires admits, up to 3.12."""
    required = re.search(r"python_requires='([^']+)'", (ROOT / 'setup.py').read_text()).group(1)
    return [f'3.{minor}' for minor in range(8, 13) if f'3.{minor}' in SpecifierSet(required)]


@pytest.mark.parametrize('name', REQUIREMENTS)
def test_every_supported_python_gets_one_exact_pin_of_each_package(name):
    reqs = requirements(name)
    for req in reqs:
        assert len(req.specifier) == 1 and next(iter(req.specifier)).operator == '==', req
        if req.marker is not None:
            assert set(re.findall(r'(\w+) *[<>=!]', str(req.marker))) == {'python_version'}, req
    versions = pythons()
    assert versions[0] == '3.10'
    packages = [set(pins_for(reqs, python)) for python in versions]
    assert all(p == packages[0] for p in packages), 'a package is pinned for some Pythons only'


# pinned differently in requirements-ros.txt on purpose: numpy 1 there (the distribution's
# scipy and matplotlib need it), numpy 2 in the .venv (requirements.txt)
ROS_OWN_PINS = {'numpy'}


def test_a_package_pinned_in_two_files_has_the_same_pins():
    for python in pythons():
        seen = {}
        for name in REQUIREMENTS:
            for package, pin in pins_for(requirements(name), python).items():
                if name == 'requirements-ros.txt' and package in ROS_OWN_PINS:
                    continue
                assert seen.setdefault(package, (pin, name))[0] == pin, (
                    f'{package} on Python {python}: {pin} in {name}, {seen[package]}')


def test_a_pin_whose_release_needs_a_newer_python_has_an_alternative():
    """The installed release's Requires-Python (offline): numpy 2.4 needs 3.11, not 3.10."""
    oldest = pythons()[0]
    active = {}
    for name in REQUIREMENTS:
        active.update(pins_for(requirements(name), f'{sys.version_info[0]}.{sys.version_info[1]}'))
    older = {}
    for name in REQUIREMENTS:
        older.update(pins_for(requirements(name), oldest))
    checked = 0
    for package, pin in active.items():
        try:
            installed = metadata.metadata(package)
        except metadata.PackageNotFoundError:
            continue
        if f'=={installed["Version"]}' != pin:
            continue
        checked += 1
        requires = SpecifierSet(installed.get('Requires-Python') or '')
        if oldest not in requires:
            assert older[package] != pin, (
                f'{package}{pin} needs Python {requires}: add a pin with '
                f'`; python_version < "{next(p for p in pythons() if p in requires)}"`')
    assert checked > 20


def package_xml():
    """Return (depend keys of package.xml, its comment text)."""
    text = (ROOT / 'package.xml').read_text()
    root = ElementTree.fromstring(text)
    keys = {e.text.strip() for e in root if e.tag.endswith('depend')}
    return keys, ' '.join(re.findall(r'<!--(.*?)-->', text, re.S))


def third_party_imports():
    """Return the top-level names of the modules the packages import, outside the stdlib."""
    names = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob('*.py'):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split('.')[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0:
                    names.add(node.module.split('.')[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES)


def test_package_xml_names_only_rosdep_keys_that_exist():
    keys, _comment = package_xml()
    python = {k for k in keys if k.startswith('python3-')}
    assert python <= ROSDEP_KEYS, f'not rosdep keys (pip-only: requirements-ros.txt): ' \
                                  f'{sorted(python - ROSDEP_KEYS)}'


def test_every_import_has_a_source_rosdep_or_pip():
    keys, comment = package_xml()
    ros_pins = {r.name.lower() for r in requirements('requirements-ros.txt')}
    all_pins = {r.name.lower() for n in REQUIREMENTS for r in requirements(n)}
    missing = []
    for name in sorted(third_party_imports()):
        if name in FROM_ROSDEP:
            ok = FROM_ROSDEP[name] in keys
        elif name in FROM_PIP:
            ok = FROM_PIP[name] in ros_pins
        elif name in FOR_TRAINING:
            ok = FOR_TRAINING[name] in all_pins
        else:
            ok = name in keys               # a ROS package: rclpy, rcl_interfaces, *_msgs, ...
        if not ok:
            missing.append(name)
    assert not missing, f'imported but in neither package.xml nor requirements-ros.txt: {missing}'
    for package in ros_pins:                # the comment says what rosdep does not install
        assert package in comment, f"{package} missing from package.xml's pip-only comment"


def _requires(dist, extras=()):
    """Return the Requirements of installed ``dist`` that apply here (with ``extras``)."""
    out = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or any(req.marker.evaluate({'extra': e}) for e in ('', *extras)):
            out.append(req)
    return out


def test_nothing_requirements_ros_installs_needs_numpy_2():
    """
    The closure of every pin active here, read from the installed releases (offline).

    A ROS install keeps the distribution's numpy 1: its scipy and matplotlib are built against
    it, and numpy 2 from pip would shadow it (``numpy.dtype size changed``: no node imports).
    Pins of another release than the installed one (the Python 3.10 lines) are not checked.
    """
    python = f'{sys.version_info[0]}.{sys.version_info[1]}'
    ros_pins = pins_for(requirements('requirements-ros.txt'), python)
    numpy_pin = ros_pins['numpy'].removeprefix('==')
    assert int(numpy_pin.split('.')[0]) == 1, 'requirements-ros.txt: numpy must stay 1.x'
    assert 'pin' not in ros_pins, 'pinocchio comes from rosdep (pip pin needs numpy 2)'
    keys, _comment = package_xml()
    assert 'pinocchio' in keys
    todo = []
    for package, pin in ros_pins.items():
        try:
            if metadata.version(package) == pin.removeprefix('=='):
                todo.append((package, ()))
        except metadata.PackageNotFoundError:
            pass
    assert len(todo) >= len(ros_pins) - 2, (todo, ros_pins)    # most are checked here
    seen, needs = set(), {}
    while todo:
        package, extras = todo.pop()
        if (package, extras) in seen:
            continue
        seen.add((package, extras))
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            continue
        for req in _requires(dist, extras):
            if req.name.lower() == 'numpy':
                needs[package] = str(req.specifier)
            todo.append((req.name.lower(), tuple(sorted(req.extras))))
    refused = {p: s for p, s in needs.items() if numpy_pin not in SpecifierSet(s)}
    assert not refused, f'need a numpy other than {numpy_pin}: {refused}'
    assert needs                        # (onnxruntime, mujoco, ... do depend on numpy)
