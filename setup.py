"""robot_twin: an ament_python package that also installs with pip into a plain venv."""
from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'robot_twin'


def share_tree(folder):
    """List (install dir, [files]) pairs that copy ``folder`` to share/robot_twin/."""
    pairs = []
    for root, _dirs, files in os.walk(folder):
        paths = [os.path.join(root, f) for f in files if not f.endswith('.pyc')]
        if paths:
            pairs.append((os.path.join('share', package_name, root), paths))
    return pairs


setup(
    name=package_name,
    version='0.1.0',
    # the two data folders are packages of their own (no __init__.py): listed so that setuptools
    # installs them on purpose, not as importable folders it warns it will ignore one day
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks'])
    + ['robot_twin.hub.dashboard', 'twin_anomaly.models'],
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/dds', glob('dds/*.xml')),
    ] + share_tree('urdf') + share_tree('config'),
    include_package_data=True,
    # package data: the trained fault classifier (issue 14); the dashboard page (issue 17)
    package_data={'twin_anomaly.models': ['*.onnx'],
                  'robot_twin.hub.dashboard': ['*.html', '*.js', '*.css']},
    zip_safe=False,
    python_requires='>=3.10',
    # Runtime Python dependencies. rclpy and the message packages are not listed: on a ROS 2
    # install they come from the distribution, in a venv from requirements.txt (PyPI wheels).
    install_requires=[
        'numpy',
        'scipy',
        'PyYAML',
        'pybullet',
        'pin',
        'transforms3d',
        'onnxruntime',
        'rosbags',
        'tqdm',
        'matplotlib',
        # sysid and calibration on one BLAS thread (issue 14)
        'threadpoolctl',
        # issue 18: what-if robots in MuJoCo, synthetic COCO data
        'mujoco',
        'pycocotools',
        'pillow',
        # issue 17: the twin outside ROS (robot_twin/hub): REST API and dashboard, OPC UA,
        # Foxglove, Asset Administration Shell
        'fastapi',
        'uvicorn',
        'asyncua',
        'foxglove-sdk',
        'basyx-python-sdk',
    ],
    # issue 18: sweeps on a Ray cluster (robot-twin whatif/commission --ray); the pinned test
    # tools are in requirements-dev.txt
    extras_require={'ray': ['ray==2.60.0'], 'test': ['pytest']},
    maintainer='robot_twin maintainers',
    maintainer_email='maintainers@users.noreply.b-seed-f74f7c30.example',
    description='A live digital twin for robot arms on ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'robot-twin = robot_twin.entry_points:robot_twin_cli',
            'twin_bridge = robot_twin.entry_points:twin_bridge',
            'twin_sim = robot_twin.entry_points:twin_sim',
            'twin_plant = robot_twin.entry_points:twin_plant',
            'twin_anomaly = robot_twin.entry_points:twin_anomaly',
            'twin_container = robot_twin.entry_points:twin_container',
            'demo_controller = robot_twin.entry_points:demo_controller',
            'twin_hub = robot_twin.entry_points:twin_hub',
        ],
    },
)
