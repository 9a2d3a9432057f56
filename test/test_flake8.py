"""Style gate as in ros2/demos: flake8 at 99 columns with single quotes (config in setup.cfg)."""
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
def test_flake8():
    result = subprocess.run(
        [sys.executable, '-m', 'flake8', '--config', str(ROOT / 'setup.cfg'),
         'robot_twin', 'twin_sim', 'twin_bridge', 'twin_anomaly', 'launch', 'test',
         'benchmarks', 'setup.py'],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, 'flake8 found problems:\n' + result.stdout + result.stderr
