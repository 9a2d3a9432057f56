"""
Every command that reads a file refuses a wrong one with a message, never a traceback.

A binary file, an empty file, a directory and a YAML list where a mapping is expected go to
each file argument of the offline commands (and to ``up --config`` and ``demo --scenario``,
which stop before starting any process). The command must return a non-zero status and name
the file; an exception out of ``robot_twin.cli.main`` fails the test.
"""
import pytest

from robot_twin.cli import main

KINDS = ('binary', 'empty', 'directory', 'yaml_list')


def _bad_file(tmp_path, kind):
    path = tmp_path / f'bad_{kind}'
    if kind == 'binary':
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == 'empty':
        path.write_text('')
    elif kind == 'directory':
        path.mkdir()
    else:
        path.write_text('- 1\n- 2\n')
    return path


COMMANDS = {
    'sysid --data': ['sysid', '--data', '{f}', '--output', '{o}/p.yaml', '--report',
                     '{o}/r.json'],
    'sysid --params': ['sysid', '--data', '{f}', '--params', '{f}', '--output', '{o}/p.yaml',
                       '--report', '{o}/r.json'],
    'whatif --scenario': ['whatif', '--scenario', '{f}', '--samples', '1', '--output', '{o}/w'],
    'whatif --params': ['whatif', '--scenario', 'friction_wear', '--samples', '1', '--params',
                        '{f}', '--output', '{o}/w'],
    'commission --scenario': ['commission', '--scenario', '{f}', '--samples', '1', '--output',
                              '{o}/t.yaml'],
    'up --config': ['up', '--config', '{f}'],
    'demo --scenario': ['demo', '--scenario', '{f}'],
    'rul fit cmapss': ['rul', 'fit', '--format', 'cmapss', '--data', '{f}', '--output',
                       '{o}/m.onnx'],
    'rul fit csv': ['rul', 'fit', '--format', 'csv', '--data', '{f}', '--output', '{o}/m.onnx'],
    'rul predict --model': ['rul', 'predict', '--format', 'cmapss', '--model', '{f}', '--data',
                            '{f}', '--output', '{o}/p.csv'],
    'aas export --params': ['aas', 'export', '--output', '{o}/t.aasx', '--params', '{f}'],
    'replay': ['replay', '{f}', '--report', '{o}/r.json'],
    'hil-report': ['hil-report', '{f}', '--output', '{o}/h'],
    'ledger verify': ['ledger', 'verify', '{f}'],
}


# an empty lifecycle log is a valid one (a fresh twin): `ledger verify` says OK to it
CASES = [(c, k) for c in sorted(COMMANDS) for k in KINDS if (c, k) != ('ledger verify', 'empty')]


@pytest.mark.parametrize('command, kind', CASES)
def test_a_wrong_file_is_refused_with_a_message(tmp_path, capsys, command, kind):
    bad = _bad_file(tmp_path, kind)
    out = tmp_path / 'out'
    out.mkdir()
    argv = [a.format(f=bad, o=out) for a in COMMANDS[command]]
    try:
        status = main(argv)
    except SystemExit as exc:        # argparse's own errors exit 2
        status = exc.code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert status not in (0, None), text
    assert bad.name in text, text


# a file of the project, but of another kind: refused with what it is and what is expected
OTHER_KINDS = {
    'robot_twin_anomaly_monitor': "the live twin's saved calibration and anomaly thresholds",
    'robot_twin_anomaly_thresholds': 'anomaly thresholds from robot-twin commission',
}


# every command that takes identified dynamics (--params); the sysid log does not exist, so
# only a check of --params made before the log is read names --params
PARAMS_COMMANDS = {
    'aas export': ['aas', 'export', '--output', '{o}/twin.aasx'],
    'sysid': ['sysid', '--data', '{o}/missing.csv', '--output', '{o}/p.yaml', '--report',
              '{o}/r.json'],
    'whatif': ['whatif', '--scenario', 'payload_sweep', '--samples', '1'],
    'commission': ['commission', '--scenario', 'commissioning', '--samples', '1', '--output',
                   '{o}/t.yaml'],
}
NOT_PARAMS = {
    **{key: f'{what} (top key {key!r})' for key, what in OTHER_KINDS.items()},
    'a mapping': 'a mapping with top keys a',          # any YAML mapping was taken for one
    'a config': 'ROS parameters (a config file such as config/twin.yaml)',
}


def _not_params(path, kind):
    if kind == 'a mapping':
        path.write_text('a: 1\n')
    elif kind == 'a config':
        path.write_text('/**:\n  ros__parameters: {urdf_path: x.urdf}\n')
    else:
        path.write_text(f'{kind}:\n  version: 4\n  joints: [joint1]\n')


@pytest.mark.parametrize('command', sorted(PARAMS_COMMANDS))
@pytest.mark.parametrize('kind', sorted(NOT_PARAMS))
def test_params_of_another_kind_are_refused_before_any_work(tmp_path, capsys, command, kind):
    params = tmp_path / 'thr.yaml'
    _not_params(params, kind)
    argv = [a.format(o=tmp_path) for a in PARAMS_COMMANDS[command]] + ['--params', str(params)]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    assert f'{params} holds {NOT_PARAMS[kind]}' in err, err
    assert "params.yaml from robot-twin sysid (top key 'robot_twin_dynamics')" in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['thr.yaml'], 'something was written'


@pytest.mark.parametrize('command', ['whatif', 'commission', 'sysid'])
def test_params_directory_and_yaml_error_are_said_in_one_line(tmp_path, capsys, command):
    folder = tmp_path / 'params'
    folder.mkdir()
    bad = tmp_path / 'bad.yaml'
    bad.write_text('a: [1,\n')
    base = [a.format(o=tmp_path) for a in PARAMS_COMMANDS[command]]
    assert main(base + ['--params', str(folder)]) == 2
    err = capsys.readouterr().err
    assert f'--params {folder} is a directory' in err and 'not found' not in err, err
    assert main(base + ['--params', str(bad)]) == 2
    err = capsys.readouterr().err
    assert f'--params {bad}, line 2, column 1: not valid YAML' in err, err
    assert len(err.strip().splitlines()) == 1, err


# outputs that cannot be written, refused before the work (a fit, variants, training) starts:
# under a file, or a directory where a file goes
OUTPUT_COMMANDS = {
    'sysid --output': ['sysid', '--data', '{data}', '--output', '{bad}', '--report',
                       '{o}/r.json', '--no-plots'],
    'sysid --report': ['sysid', '--data', '{data}', '--output', '{o}/p.yaml', '--report',
                       '{bad}', '--no-plots'],
    'sysid --report plot': ['sysid', '--data', '{data}', '--output', '{o}/p.yaml', '--report',
                            '{plot}'],
    'commission --output': ['commission', '--scenario', 'commissioning', '--samples', '1',
                            '--output', '{bad}'],
    'rul fit --output': ['rul', 'fit', '--format', 'csv', '--data', '{data}', '--output',
                         '{bad}'],
}


@pytest.mark.parametrize('command', sorted(OUTPUT_COMMANDS))
@pytest.mark.parametrize('make', ['under_a_file', 'directory'])
def test_an_output_that_cannot_be_written_is_refused_first(tmp_path, capsys, command, make):
    afile, folder = tmp_path / 'afile', tmp_path / 'adir'
    afile.write_text('x')
    (folder / 'r_torques.png').mkdir(parents=True)    # where sysid would put a plot
    bad = afile / 'x.out' if make == 'under_a_file' else folder
    plot = afile / 'r.json' if make == 'under_a_file' else folder / 'r.json'
    # the data do not exist: a check of the output made first is what answers
    argv = [a.format(data=tmp_path / 'missing.csv', bad=bad, plot=plot, o=tmp_path)
            for a in OUTPUT_COMMANDS[command]]
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 2, err
    option = command.split()[-1] if command != 'sysid --report plot' else '--report'
    assert f'{option} ' in err, err
    assert (f'{afile} is a file, not a folder' if make == 'under_a_file'
            else 'is a directory') in err, err
    assert len(err.strip().splitlines()) == 1 and 'Errno' not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['adir', 'afile'], 'written'


FOLDER_COMMANDS = {
    'whatif': ['whatif', '--scenario', 'payload_sweep', '--samples', '1', '--no-plots'],
    'synth': ['synth', '--samples', '1', '--width', '64', '--height', '48', '--no-preview'],
}


@pytest.mark.parametrize('command', sorted(FOLDER_COMMANDS))
@pytest.mark.parametrize('make', ['a_file', 'under_a_file'])
def test_an_output_folder_that_cannot_be_made_is_refused_first(tmp_path, capsys, make,
                                                               command):
    # a file where the results folder goes (or on the way to it): refused before the variants
    # or images (synth answered late, with exit 1 and "Not a directory")
    afile = tmp_path / 'afile'
    afile.write_text('x')
    out = afile if make == 'a_file' else afile / 'runs'
    status = main(FOLDER_COMMANDS[command] + ['--output', str(out), '--quiet'])
    err = capsys.readouterr().err
    assert status == 2, err
    assert '--output' in err and ('it is a file, not a folder' if make == 'a_file'
                                  else f'{afile} is a file, not a folder') in err, err
    assert len(err.strip().splitlines()) == 1, err
