"""Docstring gate as in ros2/demos: pep257 via pydocstyle (config in setup.cfg)."""
from pathlib import Path
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.linter
def test_pep257():
    result = subprocess.run(
        [sys.executable, '-m', 'pydocstyle', '--config', str(ROOT / 'setup.cfg'),
         'robot_twin', 'twin_sim', 'twin_bridge', 'twin_anomaly', 'launch'],
        cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, 'pydocstyle found problems:\n' + result.stdout + result.stderr
