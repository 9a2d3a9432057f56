"""The faulty joint is the one whose effort residual is off, not a joint it is coupled to."""
import numpy as np

from twin_anomaly.detector import ResidualDetector

NAMES = ['j1', 'j2', 'j3']


def test_effort_fault_beats_coupled_position_residuals():
    det = ResidualDetector(NAMES, commissioning_duration_s=2.0)
    rng = np.random.default_rng(1)
    for k in range(6000):
        t = k * 1e-3
        pos = rng.normal(0.0, 1e-6, 3)
        vel = rng.normal(0.0, 1e-4, 3)
        eff = rng.normal(0.0, 0.05, 3)
        if t >= 4.0:
            eff[2] += 1.0          # friction step on j3 ...
            pos[0] += 2e-4         # ... whose forward-dynamics coupling moves j1's residual more
            vel[0] += 2e-2
        det.update(t, pos, vel, eff)
    state = det.report()
    j1, _j2, j3 = state.joints
    assert j1.alarm and j3.alarm and j1.score > j3.score   # j1 scores higher ...
    assert state.faulty_joint == 'j3'                       # ... but the effort fault is on j3
