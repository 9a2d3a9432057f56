"""
A non-editable install finds its data files: ``pip install .`` into a prefix, used elsewhere.

``pip install --prefix P .`` lays the package out as a colcon install without
``--symlink-install`` does: the Python packages in ``P/lib/pythonX.Y/site-packages`` and the data
files (urdf/, config/, launch/, dds/) in ``P/share/robot_twin``. Run from another directory with
only that install on the path, every data file is found there (twin_sim/resources.py), and the
command line works.
"""
import json
import os
from pathlib import Path
import subprocess
import sys
import textwrap

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent("""
    import json
    import robot_twin, twin_sim
    from twin_sim import resources
    from twin_sim.faults import FaultScenario
    from twin_sim.randomization import load_randomization
    from twin_sim.urdf_model import RobotModel
    from twin_anomaly.classifier import default_model_path
    from robot_twin.whatif import load_scenario
    model = RobotModel.from_urdf(resources.builtin_urdf())
    print(json.dumps({
        'packages': [robot_twin.__file__, twin_sim.__file__],
        'share': str(resources.share_dir()),
        'files': [resources.builtin_urdf(), resources.fault_scenario('demo'),
                  resources.fastdds_profile(), resources.data_path('config', 'rviz', 'twin.rviz'),
                  resources.data_path('launch', 'twin.launch.py')],
        'joints': model.n,
        'faults': len(FaultScenario.load(resources.fault_scenario('collision')).faults),
        'randomization': bool(load_randomization()),
        'whatif': load_scenario('payload_sweep').name,
        'classifiers': [str(default_model_path(hz)) for hz in (1000.0, 125.0)],
    }))
""")


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    prefix = tmp_path_factory.mktemp('prefix')
    # --ignore-installed: never uninstall the venv's own (editable) robot_twin for it
    build = subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps',
                            '--no-build-isolation', '--ignore-installed', '--prefix',
                            str(prefix), str(ROOT)],
                           timeout=300, cwd=tmp_path_factory.mktemp('build'),
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    version = f'python{sys.version_info.major}.{sys.version_info.minor}'
    site = prefix / 'lib' / version / 'site-packages'
    assert (site / 'twin_sim' / 'resources.py').is_file()
    return prefix, site, build.stdout + build.stderr


def test_the_package_builds_without_setuptools_warnings(installed):
    """Every folder with files is a listed package; no option setuptools does not know."""
    _prefix, site, output = installed
    assert 'is absent from the `packages` configuration' not in output, output[-3000:]
    assert 'Unknown distribution option' not in output, output[-3000:]
    for data in ('index.html', 'app.js', 'style.css'):
        assert (site / 'robot_twin' / 'hub' / 'dashboard' / data).is_file(), data
    for model in ('fault_classifier.onnx', 'fault_classifier_low_rate.onnx'):
        assert (site / 'twin_anomaly' / 'models' / model).is_file(), model


def test_a_non_editable_install_finds_every_data_file_from_elsewhere(installed, tmp_path):
    prefix, site, _output = installed
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run([sys.executable, '-c', CHECK], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(p.startswith(str(site)) for p in out['packages']), out['packages']
    assert out['share'] == str(prefix / 'share' / 'robot_twin')
    for path in out['files']:
        assert path.startswith(out['share']) and Path(path).is_file(), path
    assert out['joints'] == 7 and out['faults'] >= 1 and out['randomization']
    assert out['whatif'] == 'payload_sweep'
    # the packaged fault classifiers, one per band of joint-state rates
    names = [Path(p).name for p in out['classifiers']]
    assert names == ['fault_classifier.onnx', 'fault_classifier_low_rate.onnx']
    assert all(p.startswith(str(site)) and Path(p).is_file() for p in out['classifiers'])


def test_the_installed_command_line_runs_from_elsewhere(installed, tmp_path):
    prefix, site, _output = installed
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run([sys.executable, '-m', 'robot_twin', 'up', '--config', 'demo',
                             '--dry-run'], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(prefix / 'share' / 'robot_twin' / 'config' / 'demo.yaml') in result.stdout


def test_the_documented_config_path_works_after_an_install(installed, tmp_path):
    """``robot-twin up --config config/twin.yaml`` (README) outside the source tree."""
    prefix, site, _output = installed
    env = dict(os.environ, PYTHONPATH=str(site))
    result = subprocess.run([sys.executable, '-m', 'robot_twin', 'up', '--config',
                             'config/twin.yaml', '--dry-run'], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    packaged = str(prefix / 'share' / 'robot_twin' / 'config' / 'twin.yaml')
    assert f'--params-file {packaged}' in result.stdout
    assert f'using the packaged {packaged}' in result.stderr
