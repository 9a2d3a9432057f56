"""Tests of twin_sim.logdata: reading CSV and rosbag2 logs, cleaning, resampling, filtering."""
import warnings

import numpy as np
import pytest
from sysid_testing import write_bag

from twin_sim.logdata import (LogData, prepare_log, read_csv, read_log, SysIdError,
                              SysIdWarning, write_csv)

JOINTS = ['j1', 'j2', 'j3']


def sine_log(duration=4.0, rate=500.0, jitter=0.3, noise=0.0, seed=0, with_velocity=True):
    """
    Three joints on known sinusoids, sampled at irregular stamps.

    q_i = A_i sin(w_i t), effort_i = 2 q_i + 0.5 qdd_i (a linear 'plant').
    """
    rng = np.random.default_rng(seed)
    n = int(duration * rate) + 1
    t = (np.arange(n) + rng.uniform(-jitter, jitter, n)) / rate
    amp = np.array([0.5, 1.0, 0.2])
    w = 2 * np.pi * np.array([0.5, 1.0, 2.0])
    q = amp * np.sin(np.outer(t, w))
    qd = amp * w * np.cos(np.outer(t, w))
    qdd = -amp * w ** 2 * np.sin(np.outer(t, w))
    effort = 2.0 * q + 0.5 * qdd
    vel = qd + noise * rng.standard_normal(qd.shape) if with_velocity else np.full_like(q, np.nan)
    log = LogData(t, list(JOINTS), q + noise * rng.standard_normal(q.shape), vel,
                  effort + noise * rng.standard_normal(q.shape), 'sine')
    return log, (amp, w)


def truth_at(t, amp, w):
    q = amp * np.sin(np.outer(t, w))
    qd = amp * w * np.cos(np.outer(t, w))
    qdd = -amp * w ** 2 * np.sin(np.outer(t, w))
    return q, qd, qdd, 2.0 * q + 0.5 * qdd


def quiet_prepare(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        out = prepare_log(*args, **kwargs)
    return out, [str(w.message) for w in caught if issubclass(w.category, SysIdWarning)]


# ------------------------------------------------------------------------------- filtering
@pytest.mark.parametrize('with_velocity', [True, False])
def test_derivatives_match_analytic_on_irregular_stamps(with_velocity):
    log, (amp, w) = sine_log(noise=1e-4, with_velocity=with_velocity)
    p, notes = quiet_prepare(log, JOINTS, cutoff_hz=10.0)
    assert p.sample_rate_hz == pytest.approx(500.0, rel=0.01)
    assert np.allclose(np.diff(p.time), 1.0 / p.sample_rate_hz)
    q, qd, qdd, eff = truth_at(p.time, amp, w)
    # Hand-derived: q = A sin(wt) -> qd = A w cos(wt), qdd = -A w^2 sin(wt). Errors stay
    # small relative to the amplitudes (A w^2 is 79 rad/s^2 for joint 3).
    assert np.abs(p.q - q).max() < 1e-3
    assert np.all(np.abs(p.qd - qd).max(axis=0) < 0.01 * np.abs(qd).max(axis=0) + 5e-3)
    assert np.all(np.abs(p.qdd - qdd).max(axis=0) < 0.03 * np.abs(qdd).max(axis=0) + 0.1)
    # The same zero-phase filter on effort: no lag against the true effort.
    assert np.all(np.abs(p.tau - eff).max(axis=0) < 0.02 * np.abs(eff).max(axis=0) + 1e-3)
    assert p.velocity_source == {j: 'measured' if with_velocity else 'differentiated'
                                 for j in JOINTS}
    assert not notes


def test_a_continuous_joint_logged_wrapped_is_unwrapped():
    # j2 turns on at 3 rad/s plus a sine; logged wrapped into [-pi, pi) it jumps by 2 pi
    log, (amp, w) = sine_log(noise=1e-4)
    turning = log.position.copy()
    turning[:, 1] += 3.0 * log.time
    wrapped = turning.copy()
    wrapped[:, 1] = (turning[:, 1] + np.pi) % (2 * np.pi) - np.pi
    velocity = log.velocity.copy()
    velocity[:, 1] += 3.0
    p, _ = quiet_prepare(LogData(log.time, JOINTS, wrapped, velocity, log.effort, 'wrapped'),
                         JOINTS, cutoff_hz=10.0, continuous=['j2'])
    q, qd, _, _ = truth_at(p.time, amp, w)
    q[:, 1] += 3.0 * p.time
    qd[:, 1] += 3.0
    start = p.q[0, 1] - q[0, 1]          # the unwrapped angle starts where the log started
    assert start == pytest.approx(round(start / (2 * np.pi)) * 2 * np.pi, abs=1e-3)
    assert np.abs(p.q[:, 1] - start - q[:, 1]).max() < 1e-3
    assert np.abs(p.qd[:, 1] - qd[:, 1]).max() < 0.05
    # without saying it is continuous, the wraps stay in: the position disagrees with its
    # velocity by whole turns
    raw, _ = quiet_prepare(LogData(log.time, JOINTS, wrapped, velocity, log.effort, 'wrapped'),
                           JOINTS, cutoff_hz=10.0)
    assert np.abs(raw.q[:, 1] - start - q[:, 1]).max() > 6.0


def test_filter_removes_noise_and_has_no_phase_lag():
    log, (amp, w) = sine_log(noise=0.05, duration=6.0)
    p, _ = quiet_prepare(log, JOINTS, cutoff_hz=5.0)
    _, _, _, eff = truth_at(p.time, amp, w)
    raw_err = np.std(p.tau_raw - eff, axis=0)
    filt_err = np.std(p.tau - eff, axis=0)
    assert np.all(raw_err > 0.035)
    assert np.all(filt_err < 0.4 * raw_err)
    # Cross-correlation peak of filtered vs true effort at zero lag.
    for i in range(3):
        lags = range(-20, 21)
        c = [np.dot(np.roll(p.tau[:, i], k), eff[:, i]) for k in lags]
        assert list(lags)[int(np.argmax(c))] == 0


def test_cutoff_clamped_below_nyquist_with_warning():
    log, _ = sine_log(rate=50.0, duration=10.0, jitter=0.0)
    p, notes = quiet_prepare(log, JOINTS, cutoff_hz=40.0)
    assert p.cutoff_hz == pytest.approx(20.0)
    assert any('Nyquist' in n for n in notes)


# ------------------------------------------------------------------------------- mapping
def test_missing_joint_held_at_zero_and_extra_joint_ignored():
    log, _ = sine_log()
    model_joints = ['j1', 'j2', 'j3', 'finger']
    sub = LogData(log.time, ['j3', 'extra', 'j1', 'j2'],
                  log.position[:, [2, 0, 0, 1]], log.velocity[:, [2, 0, 0, 1]],
                  log.effort[:, [2, 0, 0, 1]], 'shuffled')
    p, notes = quiet_prepare(sub, model_joints)
    assert p.joint_names == model_joints
    assert list(p.measured) == [True, True, True, False]
    assert np.all(p.q[:, 3] == 0.0) and np.all(p.tau[:, 3] == 0.0)
    ref, _ = quiet_prepare(log, JOINTS)
    assert np.allclose(p.q[:, :3], ref.q) and np.allclose(p.tau[:, :3], ref.tau)
    assert any("['finger'] are not in the log" in n for n in notes)
    assert any("['extra'] are not in the URDF" in n for n in notes)


def test_nan_rows_dropped_with_count_or_refused():
    log, _ = sine_log()
    log.position[10, 1] = np.nan
    log.effort[20, 0] = np.nan
    p, notes = quiet_prepare(log, JOINTS)
    assert p.n_dropped_nan == 2
    assert any('dropped 2 of' in n for n in notes)
    log.effort[::5, 2] = np.nan
    with pytest.raises(SysIdError, match=r'rows .* have NaN'):
        quiet_prepare(log, JOINTS)


def test_unsorted_and_repeated_stamps():
    log, _ = sine_log(jitter=0.0)
    order = np.arange(len(log.time))
    order[100], order[101] = 101, 100
    swapped = LogData(log.time[order], JOINTS, log.position[order], log.velocity[order],
                      log.effort[order])
    p, notes = quiet_prepare(swapped, JOINTS)
    ref, _ = quiet_prepare(log, JOINTS)
    assert np.allclose(p.q, ref.q)
    assert any('not in order' in n for n in notes)
    dup = LogData(np.r_[log.time[:50], log.time[49:]], JOINTS,
                  np.r_[log.position[:50], log.position[49:]],
                  np.r_[log.velocity[:50], log.velocity[49:]],
                  np.r_[log.effort[:50], log.effort[49:]])
    _, notes = quiet_prepare(dup, JOINTS)
    assert any('repeated time stamp' in n for n in notes)


def test_missing_effort_column_named():
    log, _ = sine_log()
    log.effort[:, 1] = np.nan
    with pytest.raises(SysIdError, match=r"missing or empty columns \['j2.effort'\]"):
        quiet_prepare(log, JOINTS)


def test_no_model_joint_in_log():
    log, _ = sine_log()
    with pytest.raises(SysIdError, match='none of the model joints'):
        quiet_prepare(log, ['a', 'b'])


def test_too_short_log():
    log, _ = sine_log(duration=0.3)
    with pytest.raises(SysIdError, match='log too short'):
        quiet_prepare(log, JOINTS)


# ------------------------------------------------------------------------------- CSV
def test_csv_round_trip_shuffled_columns_and_extra_column(tmp_path):
    log, _ = sine_log(duration=1.0)
    path = tmp_path / 'log.csv'
    write_csv(log, path, joint_order=['j3', 'j1', 'j2'])
    header = path.read_text().splitlines()[0].split(',')
    assert header[:4] == ['time', 'j3.position', 'j3.velocity', 'j3.effort']
    back = read_csv(path)
    assert back.joint_names == ['j3', 'j1', 'j2']
    for j in JOINTS:
        i, k = log.joint_names.index(j), back.joint_names.index(j)
        assert np.array_equal(back.position[:, k], log.position[:, i])
        assert np.array_equal(back.effort[:, k], log.effort[:, i])
    assert np.array_equal(back.time, log.time)
    # An unknown column is ignored with a warning; an empty cell reads as NaN.
    lines = path.read_text().splitlines()
    lines[0] += ',temperature'
    lines[1:] = [ln + ',20' for ln in lines[1:]]
    cells = lines[5].split(',')
    cells[2] = ''
    lines[5] = ','.join(cells)
    path.write_text('\n'.join(lines) + '\n')
    with pytest.warns(SysIdWarning, match='temperature'):
        back = read_csv(path)
    assert np.isnan(back.velocity[4, 0])  # lines[5] is data row 4; cell 2 is j3.velocity


def test_csv_without_velocity(tmp_path):
    log, _ = sine_log(duration=2.0, with_velocity=False)
    path = tmp_path / 'log.csv'
    write_csv(log, path)
    assert 'velocity' not in path.read_text().splitlines()[0]
    p, _ = quiet_prepare(read_log(path), JOINTS)
    assert set(p.velocity_source.values()) == {'differentiated'}


def test_csv_errors(tmp_path):
    bad = tmp_path / 'bad.csv'
    bad.write_text('t,j1.position,j1.effort\n0,1,2\n')
    with pytest.raises(SysIdError, match='no "time" column'):
        read_log(bad)
    bad.write_text('time,j1.position,j1.effort\n0,abc,2\n')
    with pytest.raises(SysIdError, match='cannot parse'):
        read_log(bad)
    bad.write_text('time,j1.position,j1.position\n0,1,2\n')
    with pytest.raises(SysIdError, match='duplicate columns'):
        read_log(bad)
    with pytest.raises(SysIdError, match='does not exist'):
        read_log(tmp_path / 'nope.csv')


# ------------------------------------------------------------------------------- rosbag2
@pytest.mark.parametrize('storage', ['sqlite3', 'mcap'])
def test_rosbag_matches_log(tmp_path, storage):
    log, _ = sine_log(duration=1.0)
    bag = tmp_path / 'bag'
    write_bag(log, bag, storage=storage, joint_order='alternate')
    back = read_log(bag)
    assert back.joint_names == JOINTS
    assert np.allclose(back.time, log.time, atol=1e-9)
    assert np.array_equal(back.position, log.position)
    assert np.array_equal(back.velocity, log.velocity)
    assert np.array_equal(back.effort, log.effort)
    # Pointing at the storage file inside the directory works too.
    inner = next(bag.glob('*.mcap' if storage == 'mcap' else '*.db3'))
    assert np.array_equal(read_log(inner).position, log.position)


def test_rosbag_topics(tmp_path):
    log, _ = sine_log(duration=0.5)
    bag = tmp_path / 'bag'
    write_bag(log, bag, topic='/arm/joint_states')
    assert np.array_equal(read_log(bag).position, log.position)  # the only JointState topic
    two = tmp_path / 'two'
    write_bag(log, two, topic='/a/joint_states', extra_topics=('/b/joint_states',))
    with pytest.raises(SysIdError, match=r"no .*JointState topic '/joint_states'.*--topic"):
        read_log(two)
    assert np.array_equal(read_log(two, topic='/b/joint_states').effort, log.effort)


def test_rosbag_split_groups_and_zero_stamps(tmp_path):
    log, _ = sine_log(duration=0.5, jitter=0.0)
    bag = tmp_path / 'bag'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        write_bag(log, bag, split=['j3'], zero_stamps=True)
        back = read_log(bag)
    notes = [str(w.message) for w in caught]
    assert any('zero header stamp' in n and 'bag receive time' in n for n in notes)
    assert any("joints ['j3'] come in separate messages" in n for n in notes)
    assert back.joint_names == ['j1', 'j2', 'j3']
    assert np.allclose(back.time - back.time[0], log.time - log.time[0], atol=1e-8)
    # The split group starts 1 ns after the main one: its first row cannot be interpolated.
    assert np.isnan(back.position[0, 2])
    assert np.allclose(back.position[1:], log.position[1:], atol=1e-6)


def test_rosbag_sim_time_from_zero(tmp_path):
    log, _ = sine_log(duration=0.5, jitter=0.0)  # stamps start at exactly 0.0 s
    write_bag(log, tmp_path / 'bag')
    back = read_log(tmp_path / 'bag')
    assert np.allclose(back.time, log.time, atol=1e-9)


def test_rosbag_unreadable(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(SysIdError, match='not a rosbag2 recording: no metadata.yaml and no '
                                         'storage files'):
        read_log(tmp_path / 'empty')


# ---------------------------------------------------- recordings, opened as replay opens them
@pytest.fixture(scope='module')
def arm_run():
    from bag_testing import simulate
    return simulate(0.3)


def _arm_bag(path, run, **kwargs):
    from bag_testing import write_bag as write_arm_bag
    return write_arm_bag(path, run, commands=False, **kwargs)


def _recording(kind, run, tmp_path):
    """Return a recording of ``run`` as another recorder (or a killed one) leaves it."""
    import shutil
    from bag_testing import Run, write_ros1_bag
    if kind == 'ROS 1 bag':
        return write_ros1_bag(tmp_path / 'robot.bag', run)
    if kind == 'compressed file beside its metadata.yaml':
        return next(_arm_bag(tmp_path / 'zstd', run, compressed=True).glob('*.mcap'))
    folder = tmp_path / 'no_metadata'
    folder.mkdir()
    if kind == 'split, no metadata.yaml':
        cut = len(run.samples) // 2
        for k, samples in enumerate((run.samples[:cut], run.samples[cut:])):
            part = _arm_bag(tmp_path / f'part{k}', Run(run.names, samples, []))
            shutil.copyfile(next(part.glob('*.mcap')), folder / f'split_{k}.mcap')
        return folder
    storage = 'sqlite3' if 'db3' in kind else 'mcap'
    bag = _arm_bag(tmp_path / 'bag', run, storage=storage)
    (bag / 'metadata.yaml').unlink()
    if kind.startswith('lone'):
        lone = folder / f'robot.{"db3" if storage == "sqlite3" else "mcap"}'
        shutil.copyfile(next(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3')), lone)
        return lone
    return bag


@pytest.mark.parametrize('kind', ['mcap, no metadata.yaml', 'db3, no metadata.yaml',
                                  'lone .mcap', 'lone .db3', 'split, no metadata.yaml',
                                  'ROS 1 bag', 'compressed file beside its metadata.yaml'])
def test_sysid_reads_what_replay_reads(tmp_path, arm_run, kind):
    reference = read_log(_arm_bag(tmp_path / 'reference', arm_run))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter('always')
        log = read_log(_recording(kind, arm_run, tmp_path))
    assert log.joint_names == reference.joint_names
    assert np.array_equal(log.time, reference.time)
    assert np.array_equal(log.effort, reference.effort)


def test_a_compressed_storage_file_alone_is_named_as_such(tmp_path, arm_run):
    import shutil
    bag = _arm_bag(tmp_path / 'zstd', arm_run, compressed=True)
    alone = tmp_path / 'alone.mcap'
    shutil.copyfile(next(bag.glob('*.mcap')), alone)
    with pytest.raises(SysIdError, match='zstd-compressed one by one .* put that metadata.yaml '
                                         'beside the storage file'):
        read_log(alone)


def test_a_zero_stamp_among_stamped_messages_is_dropped(tmp_path, arm_run):
    # a driver that sends its first message before its clock runs: stamp 0 among 1.8e9 s
    bag = _arm_bag(tmp_path / 'first_zero', arm_run, zero_stamps=[0])
    with pytest.warns(SysIdWarning, match='dropped 1 message with a zero header stamp'):
        log = read_log(bag)
    assert len(log.time) == len(arm_run.samples) - 1 and log.time.min() > 1e9


def test_a_topic_with_a_second_type_gives_its_joint_states(tmp_path, arm_run):
    from bag_testing import STORE
    hello = (0.1, '/joint_states', 'std_msgs/msg/String',
             STORE.types['std_msgs/msg/String'](data='hello'))
    bag = _arm_bag(tmp_path / 'two_types', arm_run, more=[hello])
    with pytest.warns(SysIdWarning, match='also carries std_msgs/msg/String'):
        log = read_log(bag)
    assert len(log.time) == len(arm_run.samples)


def test_a_time_grid_far_too_long_is_refused():
    # one stamp far from the others (0 among 1.8e9 s): a grid of 9e11 samples is never built
    log, _ = sine_log(duration=1.0)
    log.time[1:] += 1.8e9
    with pytest.raises(SysIdError, match=r'the stamps span 1\.8e\+09 s, a grid of \d+ samples'):
        quiet_prepare(log, JOINTS, min_duration_s=0.5)
