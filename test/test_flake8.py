"""Style gate as in ros2/demos: ament_flake8 (99 columns, single quotes, google import order)."""
from pathlib import Path

from ament_flake8.main import main_with_errors
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The package's own source; never .venv, build or install trees.
SOURCES = ['robot_twin', 'twin_sim', 'twin_bridge', 'twin_anomaly', 'launch', 'test',
           'benchmarks', 'setup.py']


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    rc, errors = main_with_errors(argv=[str(ROOT / p) for p in SOURCES])
    assert rc == 0, \
        'Found %d code style errors / warnings:\n' % len(errors) + \
        '\n'.join(errors)
