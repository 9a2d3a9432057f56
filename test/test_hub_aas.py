"""
robot-twin aas export: the URDF's data, the identified parameters and the health in an .aasx.

The SDK's reader takes the file back (plain pytest; the command itself runs as a process).
"""
import os
import stat
import subprocess
import sys

from basyx.aas import model
import pytest

from robot_twin.hub.aas import build_shell, read_aasx, write_aasx
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import RobotModel


def _element(container, *path):
    for name in path:
        container = container.get_referable(name)
    return container


def _hub_state(names):
    joints = [{'name': n, 'anomaly': {'level': 'ERROR' if n == 'joint3' else 'OK',
                                      'fault_type': 'friction_like' if n == 'joint3' else 'none'},
               'rul': {'rul_hours': 100.0 + i, 'rul_lower_hours': 80.0,
                       'rul_upper_hours': 130.0, 'health_index': 0.5,
                       'recommended_action': 'inspect gearbox', 'due_by': '2027-01-10'}}
              for i, n in enumerate(names)]
    return {'joints': joints, 'anomaly': {'level': 'ERROR', 'message': 'anomaly on joint3'}}


def test_the_aasx_round_trips_with_urdf_parameters_and_health(tmp_path):
    robot = RobotModel.from_urdf(builtin_urdf())
    params = tmp_path / 'params.yaml'
    robot.save_parameters(params)
    store, files, shell_id = build_shell(robot, params_path=params,
                                         state=_hub_state(robot.joint_names),
                                         manufacturer='ACME', serial_number='SN-42', year=2026)
    path = tmp_path / 'twin.aasx'
    write_aasx(path, store, files, shell_id)
    back, back_files = read_aasx(path)
    shell = back.get_item(shell_id)
    assert isinstance(shell, model.AssetAdministrationShell)
    submodels = {ref.resolve(back).id_short: ref.resolve(back) for ref in shell.submodel}
    assert set(submodels) == {'Nameplate', 'TechnicalData', 'IdentifiedParameters', 'Health'}
    plate = submodels['Nameplate']
    assert _element(plate, 'SerialNumber').value == 'SN-42'
    assert _element(plate, 'ManufacturerName').value['en'] == 'ACME'
    tech = submodels['TechnicalData']
    assert _element(tech, 'TechnicalProperties', 'DegreesOfFreedom').value == robot.n
    for i, joint in enumerate(robot.joint_names):
        limit = _element(tech, 'TechnicalProperties', 'Joints', joint, 'EffortLimit').value
        assert limit == pytest.approx(robot.effort_limit[i])
    urdf_file = _element(tech, 'GeneralInformation', 'RobotDescription').value
    packed = back_files.get_sha256(urdf_file)
    assert packed is not None
    identified = submodels['IdentifiedParameters']
    mass = _element(identified, 'Joints', 'joint2', 'Body_m').value
    assert mass == pytest.approx(robot.dynamic_parameters()['robot_twin_dynamics']['bodies']
                                 ['joint2']['dynamic_parameters'][0])
    health = submodels['Health']
    assert _element(health, 'Joints', 'joint3', 'FaultType').value == 'friction_like'
    assert _element(health, 'Joints', 'joint4', 'RulHours').value == pytest.approx(103.0)
    assert _element(health, 'Joints', 'joint4', 'DueBy').value == '2027-01-10'


def test_the_command_writes_a_readable_file_and_refuses_bad_input(tmp_path):
    out = tmp_path / 'twin.aasx'
    run = subprocess.run([sys.executable, '-m', 'robot_twin', 'aas', 'export', '--output',
                          str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    store, _files = read_aasx(out)
    health = next(o for o in store if getattr(o, 'id_short', '') == 'Health')
    assert _element(health, 'Joints', 'joint1', 'RulHours').value is None   # no hub asked
    bad = subprocess.run([sys.executable, '-m', 'robot_twin', 'aas', 'export', '--output',
                          str(out), '--params', str(tmp_path / 'missing.yaml')],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and 'missing.yaml' in bad.stderr
    assert 'Traceback' not in bad.stderr
    hub = subprocess.run([sys.executable, '-m', 'robot_twin', 'aas', 'export', '--output',
                          str(out), '--hub', 'http://127.0.0.1:9'],
                         capture_output=True, text=True, timeout=120)
    assert hub.returncode == 2 and 'cannot read the twin state' in hub.stderr


def _export(capsys, *argv):
    from robot_twin.cli import main
    status = main(['aas', 'export', *map(str, argv)])
    captured = capsys.readouterr()
    return status, captured.err


def test_an_unwritable_output_is_one_line_and_leaves_no_file(tmp_path, capsys):
    folder = tmp_path / 'd'
    folder.mkdir()
    # a process of its own: the old failure was a ZIP writer's traceback printed at exit
    run = subprocess.run([sys.executable, '-m', 'robot_twin', 'aas', 'export', '--output',
                          str(folder)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert 'is a directory' in run.stderr and str(folder) in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    log = tmp_path / 'log.csv'
    log.write_text('t\n')
    status, err = _export(capsys, '--output', log / 'twin.aasx')
    assert status == 1 and 'log.csv is not an existing folder' in err, err
    assert len(err.strip().splitlines()) == 1, err
    # the library call: one OSError, no partial file
    robot = RobotModel.from_urdf(builtin_urdf())
    store, files, shell_id = build_shell(robot)
    with pytest.raises(IsADirectoryError):
        write_aasx(folder, store, files, shell_id)
    with pytest.raises(FileNotFoundError):
        write_aasx(tmp_path / 'missing' / 'twin.aasx', store, files, shell_id)
    assert list(folder.iterdir()) == [] and not (tmp_path / 'missing').exists()


def test_the_year_of_construction_must_be_plausible(tmp_path, capsys):
    out = tmp_path / 'twin.aasx'
    for year in (-5, 0, 1949, 3000):
        status, err = _export(capsys, '--output', out, '--year', year)
        assert status == 2 and f'--year {year} is not a plausible year' in err, err
        assert not out.exists()
    status, err = _export(capsys, '--output', out, '--year', 1995)
    assert status == 0, err
    store, _files = read_aasx(out)
    plate = next(o for o in store if getattr(o, 'id_short', '') == 'Nameplate')
    assert _element(plate, 'YearOfConstruction').value == '1995'


def test_urdf_warnings_are_one_clear_line_each(tmp_path, capsys):
    text = open(builtin_urdf(), encoding='utf-8').read()
    assert 'izz="0.025"' in text
    urdf = tmp_path / 'odd.urdf'
    urdf.write_text(text.replace('izz="0.025"', 'izz="0.5"', 1))   # triangle inequality
    status, err = _export(capsys, '--output', tmp_path / 'twin.aasx', '--urdf', urdf)
    assert status == 0, err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith(f'robot-twin aas export: warning: {urdf}: ')
                         for line in lines), err
    assert any('triangle inequality' in line for line in lines), err
    assert 'URDFWarning' not in err and '.py:' not in err, err


def test_an_output_that_is_not_a_regular_file_is_refused_never_replaced(tmp_path, capsys):
    # a FIFO stands for /dev/full and the like: the old code replaced it by a regular file
    fifo = tmp_path / 'out.aasx'
    os.mkfifo(fifo)
    run = subprocess.run([sys.executable, '-m', 'robot_twin', 'aas', 'export', '--output',
                          str(fifo)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 1, run.stderr
    assert 'named pipe (FIFO), not a regular file' in run.stderr and str(fifo) in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and 'wrote' not in run.stdout, run
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    # the library call refuses it too, before writing anything beside it
    store, files, shell_id = build_shell(RobotModel.from_urdf(builtin_urdf()))
    with pytest.raises(OSError, match='not a regular file'):
        write_aasx(fifo, store, files, shell_id)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode) and [p.name for p in tmp_path.iterdir()] == \
        ['out.aasx']


def test_a_yaml_error_in_params_is_one_line_with_line_and_column(tmp_path, capsys):
    params = tmp_path / 'params.yaml'
    params.write_text('robot_twin_dynamics:\n  joints: [joint1, joint2\n  version: 1\n')
    status, err = _export(capsys, '--output', tmp_path / 'twin.aasx', '--params', params)
    assert status == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert f'{params}, line 3, column ' in err and 'not valid YAML' in err, err
    assert not (tmp_path / 'twin.aasx').exists()


def test_a_directory_given_as_urdf_is_named_a_directory(tmp_path, capsys):
    status, err = _export(capsys, '--output', tmp_path / 'twin.aasx', '--urdf', tmp_path)
    assert status == 2, err
    assert f'--urdf {tmp_path} is a directory' in err and 'not found' not in err, err
    assert len(err.strip().splitlines()) == 1, err
