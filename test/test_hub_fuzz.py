"""
Fuzz the hub's REST API from its own OpenAPI schema (schemathesis) against a real hub process.

schemathesis generates requests from /openapi.json — valid ones, invalid ones (wrong types,
missing fields, bodies that are not JSON, unknown paths and methods) and sequences that follow
the schema's links — and checks every answer: never a server error (5xx), only documented
status codes, bodies that match the documented schema, invalid requests rejected, the bearer
token enforced. It runs once with the token (writes reach the hub's logic: what-if jobs are
limited to 1 sample and a queue of 0 on this hub) and once without (every write must be
refused). The twin's topics are played meanwhile, so that the read endpoints return data.
"""
import os
from pathlib import Path
import subprocess
import sys

from hub_testing import free_port, running_hub, wait_http, write_token
import pytest

pytestmark = pytest.mark.integration
SCHEMATHESIS = [sys.executable, '-m', 'schemathesis.cli']


def _fuzz(url, *args, max_time_s=50):
    env = dict(os.environ, SCHEMATHESIS_HOOKS='', NO_COLOR='1')
    run = subprocess.run([*SCHEMATHESIS, '--no-color', 'run', url, '--seed', '0',
                          '--max-time', str(max_time_s), '-n', '15', '--continue-on-failure',
                          '--request-timeout', '20', *args],
                         capture_output=True, text=True, env=env, timeout=max_time_s + 240)
    return run.returncode, run.stdout[-6000:] + run.stderr[-2000:]


def test_the_openapi_schema_fuzzed_gives_no_server_error(tmp_path):
    port = free_port()
    token = write_token(tmp_path / 'token')
    parameters = {'api.address': f'127.0.0.1:{port}', 'api.token_file': str(tmp_path / 'token'),
                  'whatif.output_dir': str(tmp_path / 'whatif'), 'whatif.max_samples': 1,
                  'whatif.max_queued': 0}
    with running_hub(tmp_path, parameters, fault=('joint2', 'sensor_bias')) as (process, _o, _p):
        url = f'http://127.0.0.1:{port}/openapi.json'
        wait_http(url, process)
        code, output = _fuzz(url, '--checks', 'all', '-H', f'Authorization: Bearer {token}')
        assert code == 0, f'schemathesis with the token found problems:\n{output}'
        assert ' passed' in output and 'Tested: ' in output
        code, output = _fuzz(url, '--checks', 'not_a_server_error,status_code_conformance,'
                             'response_schema_conformance,content_type_conformance',
                             max_time_s=25)
        assert code == 0, f'schemathesis without a token found problems:\n{output}'
        process.check_alive()
    assert Path(tmp_path / 'whatif').exists(), 'the fuzzer never reached a what-if job'
