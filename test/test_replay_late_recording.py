"""
A recording that begins after its live twin started: the replay says so.

The live twin commissions on the first robot samples it takes. A recorder that discovered the
robot later than the twin (DDS discovery on a busy computer took up to 2.3 s longer for the
recorder in the record/replay integration test) holds none of them, so the replay cannot start
where the live twin did: it commissions on a later stretch of the stream, and its thresholds
and alarm times may differ from the live twin's. The report's ``start`` gives how much later
the recording begins (``recording_late_s``) and a note says what that means; a recording that
holds the live twin's first sample has no such note.
"""
import dataclasses

from bag_testing import _joint_state, _stamp, LATENCY_NS, REPLAY_CONFIG, simulate, write_bag
import pytest
from robot_twin.replay import replay
from robot_twin.replay_cli import summary_lines

TWIN_FIRST = 300
"""Index of the sample that the live twin's first residual is stamped with (its 301st)."""


@pytest.fixture(scope='module')
def run():
    return simulate(1.5)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'replay.yaml'
    path.write_text(REPLAY_CONFIG)
    return str(path)


def _recording(path, run, first_recorded):
    """Write the robot's samples from ``first_recorded`` on and the live twin's residuals."""
    def residuals(writer, store):
        conn = writer.add_connection('/twin/residuals', 'sensor_msgs/msg/JointState',
                                     typestore=store)
        for m in run.samples[TWIN_FIRST:TWIN_FIRST + 50]:
            stamp, ns = _stamp(m.t)
            msg = _joint_state(stamp, run.names, list(range(7)), m)
            writer.write(conn, ns + 2 * LATENCY_NS, store.serialize_cdr(
                msg, 'sensor_msgs/msg/JointState'))

    recorded = dataclasses.replace(run, samples=run.samples[first_recorded:])
    return write_bag(path, recorded, extra=residuals, commands=False)


def _late_notes(report):
    return [n for n in report['notes'] if n.startswith('the live twin started before')]


def test_a_recording_that_begins_after_the_live_twin_says_how_much_later(run, config, tmp_path):
    late = TWIN_FIRST + 40                # the recorder's first sample: 40 ms after the twin's
    report = replay(_recording(tmp_path / 'late', run, late), config=config)
    start = report['start']
    assert not start['aligned_with_live_twin'] and start['stamp'] is None
    expected = run.samples[late].t - run.samples[TWIN_FIRST].t
    assert start['recording_late_s'] == pytest.approx(expected, abs=1e-6)
    assert report['messages']['samples'] == len(run.samples) - late    # every recorded one
    [note] = _late_notes(report)
    assert f'stamped {expected:.3f} s before the first /joint_states sample' in note
    assert "times of its alarms can differ from the live twin's" in note
    assert f'note: {note}' in summary_lines(report)           # printed after the replay
    # --from-start replays every sample, wherever the live twin started: nothing to say
    everything = replay(_recording(tmp_path / 'all', run, late), config=config, from_start=True)
    assert everything['start']['recording_late_s'] is None and not _late_notes(everything)


def test_a_recording_that_holds_the_live_twins_first_sample_has_no_note(run, config, tmp_path):
    report = replay(_recording(tmp_path / 'early', run, TWIN_FIRST - 20), config=config)
    assert report['start']['aligned_with_live_twin']
    assert report['start']['recording_late_s'] is None
    assert not _late_notes(report)
