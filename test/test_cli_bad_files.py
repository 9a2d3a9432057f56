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


@pytest.mark.parametrize('key', sorted(OTHER_KINDS))
def test_aas_export_refuses_thresholds_as_identified_parameters(tmp_path, capsys, key):
    thresholds = tmp_path / 'thr.yaml'
    thresholds.write_text(f'{key}:\n  version: 3\n  joints: [joint1]\n')
    out = tmp_path / 'twin.aasx'
    status = main(['aas', 'export', '--output', str(out), '--params', str(thresholds)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert f'{thresholds} holds {OTHER_KINDS[key]} (top key {key!r})' in err, err
    assert "params.yaml from robot-twin sysid (top key 'robot_twin_dynamics')" in err, err
    assert len(err.strip().splitlines()) == 1 and not out.exists(), err
