"""Docstring gate as in ros2/demos: ament_pep257 (the 'ament' convention)."""
from pathlib import Path

from ament_pep257.main import main
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The package's own source; never .venv, build or install trees.
SOURCES = ['robot_twin', 'twin_sim', 'twin_bridge', 'twin_anomaly', 'launch', 'test',
           'benchmarks', 'setup.py']


@pytest.mark.linter
@pytest.mark.pep257
def test_pep257():
    rc = main(argv=[str(ROOT / p) for p in SOURCES])
    assert rc == 0, 'Found code style errors / warnings (listed above)'
