"""The display decimation picks samples on a grid of stamps: two decimators pick the same ones."""
import numpy as np
from robot_twin.nodes.mirror_node import DisplayRate


def _picked(rate, stamps):
    display = DisplayRate(rate)
    return [t for t in stamps if display.due(t)]


def test_decimators_started_at_different_samples_pick_the_same_stamps():
    # a 1 kHz robot at an epoch-like stamp, with jitter (never across a 50 Hz period boundary
    # by more than it would move a real sample)
    rng = np.random.default_rng(3)
    stamps = 1.7e9 + 0.0003 + np.arange(5000) * 1e-3 + rng.uniform(0, 2e-4, 5000)
    bridge = _picked(50.0, stamps)
    mirror = _picked(50.0, stamps[37:])          # started 37 samples later
    # after its first sample (mid-period: it started late) it picks exactly the bridge's
    assert mirror[1:] == bridge[-len(mirror) + 1:]
    # one per period of the grid, each the first sample of its period
    slots = np.floor(np.asarray(bridge) / 0.02)
    assert np.all(np.diff(slots) == 1)
    assert len(bridge) in (249, 250, 251)


def test_stamps_that_go_back_start_again_and_bad_stamps_are_not_shown():
    display = DisplayRate(10.0)
    assert display.due(5.01) and not display.due(5.05) and display.due(5.12)
    assert display.due(1.00)                     # a replay from the start
    assert not display.due(1.01)
    assert not display.due(float('nan')) and not display.due(float('inf'))
