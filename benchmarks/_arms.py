"""
Arms of the offline benchmarks beyond the ones ``robot_twin.fault_runs`` names.

``fault_runs.ARMS`` (the built-in arm, pybullet_data's KUKA iiwa) are the arms the packaged
classifier was trained on. The UR5e-like arm of the tests (6 joints, another geometry and
other limits) was never part of that training, so the benchmarks use it to see whether what
they measure holds on an arm the twin was not built on. An arm given by path runs about its
zero pose unless :data:`CENTERS` gives it another one.
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

UR5E_LIKE = str(ROOT / 'test' / 'data' / 'ur5e_like.urdf')
CENTERS = {UR5E_LIKE: (0.0, -1.2, 1.0, -1.4, -1.57, 0.0)}
"""Centre poses (rad) of arms given by path whose zero pose takes too much of their effort
limits against gravity (the UR5e-like arm stretched out horizontally)."""


def center(arm):
    """
    Return the centre pose of ``arm`` for ``fault_runs.Case`` (None: the arm's default).

    A path names its arm however it is written (relative to the working directory, or not).
    """
    return CENTERS.get(str(Path(arm).resolve()))
