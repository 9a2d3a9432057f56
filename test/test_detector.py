"""
ResidualDetector on seeded synthetic residual streams with known faults.

Nominal residuals: white measurement noise plus a smooth, autocorrelated model-mismatch part
and a constant bias on the effort, like a real twin's residual; the joints move back and forth
(the measured velocity is a set of sinusoids). Faults are added to these streams at a known
onset, so detection delay, localization, ``since`` and clearing are checked against truth.
"""
import copy
import dataclasses
import math

import numpy as np
import pytest
from scipy.signal import lfilter
from twin_anomaly.detector import DetectorConfig, FaultFeatures, FEATURE_NAMES, \
    ResidualDetector, ThresholdsError
import yaml

RATE = 1000.0
JOINTS = [f'joint{i + 1}' for i in range(7)]
N = len(JOINTS)


def nominal(seed, duration_s, *, scale=1.0, colored=True, wrench=True):
    """Seeded nominal residual stream; returns a dict of arrays (rows = samples)."""
    rng = np.random.default_rng(seed)
    m = int(round(duration_s * RATE))
    t = np.arange(m) / RATE
    data = {
        't': t,
        'pos': rng.normal(0.0, 1e-4, (m, N)),
        'vel': rng.normal(0.0, 2e-3, (m, N)),
        'eff': rng.normal(0.0, 0.05, (m, N)) + 0.2,
        'wrench': np.hstack([rng.normal(0.0, 0.3, (m, 3)), rng.normal(0.0, 0.02, (m, 3))])
        if wrench else None,
        'velocity': 0.6 * np.sin(2.0 * np.pi * t[:, None] / (3.0 + np.arange(N)) + np.arange(N)),
    }
    if colored:           # model mismatch: AR(1) with a 50 ms time constant, std 0.03 N·m
        pole = math.exp(-1.0 / (0.05 * RATE))
        data['eff'] += lfilter([math.sqrt(1 - pole ** 2)], [1.0, -pole],
                               rng.normal(0.0, 0.03, (m, N)), axis=0)
    for key in ('pos', 'vel', 'eff', 'wrench'):
        if data[key] is not None:
            data[key] *= scale
    return data


def feed(det, data, start=0, stop=None, report_every=20):
    """Feed samples [start, stop); return (alarm flag per sample, [(t, DetectorState)])."""
    stop = len(data['t']) if stop is None else stop
    flags = np.zeros(stop - start, dtype=bool)
    reports = []
    w = data['wrench']
    for i in range(start, stop):
        flags[i - start] = det.update(data['t'][i], data['pos'][i], data['vel'][i],
                                      data['eff'][i], None if w is None else w[i],
                                      velocity=data['velocity'][i])
        if (i - start) % report_every == 0:
            reports.append((data['t'][i], det.report()))
    return flags, reports


@pytest.fixture(scope='module')
def commissioned():
    """Return a detector commissioned on 30 s of nominal data and a 100 s stream continuing it."""
    data = nominal(11, 100.0)
    det = ResidualDetector(JOINTS)
    flags, reports = feed(det, data, 0, 30020)
    assert det.commissioned
    return det, data, flags, reports


def fresh(commissioned):
    det, data, _, _ = commissioned
    return copy.deepcopy(det), {k: (None if v is None else v.copy()) for k, v in data.items()}


# ------------------------------------------------------------------------- commissioning

def test_commissioning_reports_ok_and_ends_on_stamp_time(commissioned):
    det, data, flags, reports = commissioned
    during = [r for t, r in reports if t < 30.0 - 1e-9]
    assert during and all(r.level == 'OK' and r.message == 'commissioning' and
                          r.phase == 'commissioning' for r in during)
    assert not flags.any()
    progress = [r.commissioning_progress for r in during]
    assert progress == sorted(progress) and progress[-1] == pytest.approx(1.0, abs=0.01)
    assert reports[-1][1].phase == 'monitoring'
    assert det.commissioned and det.phase == 'monitoring'


def test_no_alarm_during_commissioning_even_with_huge_residual():
    data = nominal(12, 31.0)
    data['eff'][5000:9000, 2] += 1e4          # absurd residual for 4 s
    data['pos'][10000:10100, :] = 50.0
    data['vel'][:, 4] = np.nan
    det = ResidualDetector(JOINTS)
    flags, reports = feed(det, data, 0, 29990)
    assert not flags.any()
    assert all(r.level == 'OK' and r.message == 'commissioning' and r.faulty_joint is None
               and not any(j.alarm for j in r.joints) for _, r in reports)


def test_thresholds_are_learned_from_data():
    lt = {}
    for scale in (1.0, 3.0):
        det = ResidualDetector(JOINTS, commissioning_duration_s=10.0)
        feed(det, nominal(13, 10.1, scale=scale))
        lt[scale] = det.thresholds()
    one, three = lt[1.0], lt[3.0]
    # same seed, residuals x3: scales, centers and thresholds in channel units x3; thresholds
    # in learned standard deviations unchanged
    np.testing.assert_allclose(three.scale, 3.0 * one.scale, rtol=1e-9)
    np.testing.assert_allclose(three.center, 3.0 * one.center, rtol=1e-9)
    np.testing.assert_allclose(three.level_physical, 3.0 * one.level_physical, rtol=1e-9)
    np.testing.assert_allclose(three.noise_variance, 9.0 * one.noise_variance, rtol=1e-9)
    np.testing.assert_allclose(three.level, one.level, rtol=1e-9)
    np.testing.assert_allclose(three.drift, one.drift, rtol=1e-9)
    # the effort residual's learned center is its bias (0.2 N·m), its scale the block noise
    eff = slice(2 * N, 3 * N)
    np.testing.assert_allclose(one.center[eff], 0.2, atol=0.01)
    # not a fixed rule: autocorrelated effort residuals get a long-run factor, the white wrench
    # ones do not
    assert np.all(one.long_run_factor[eff] > 1.5)
    assert np.all(one.long_run_factor[3 * N:] < 1.5)
    assert np.all(np.isfinite(one.level)) and np.all(one.level >= 3.0)


def test_clean_commissioning_gives_floored_nonzero_thresholds():
    m = 12000
    zeros = np.zeros(N)
    det = ResidualDetector(JOINTS, commissioning_duration_s=10.0)
    for i in range(m):
        det.update(i / RATE, zeros, zeros, zeros, np.zeros(6))
    lt = det.thresholds()
    assert np.all(lt.scale > 0.0) and np.all(lt.level_physical > 0.0)
    np.testing.assert_allclose(lt.scale[2 * N:3 * N], det.config.min_scale_effort)
    assert not det.update(m / RATE, zeros, zeros, zeros, np.zeros(6))
    # a residual far above the floors is still an anomaly
    eff = zeros.copy()
    eff[1] = 0.05
    alarm = [det.update((m + 1 + i) / RATE, zeros, zeros, eff, np.zeros(6)) for i in range(200)]
    assert any(alarm) and det.report().faulty_joint == 'joint2'


def test_long_commissioning_is_decimated_in_bounded_memory():
    data = nominal(18, 26.0)
    det = ResidualDetector(JOINTS, commissioning_duration_s=20.0, commissioning_capacity=256)
    flags, _ = feed(det, data, 0, 20100)
    summary = det.commissioning_summary
    assert det.commissioned and summary['stride'] == 4 and summary['blocks'] == 1000
    assert summary['end_stamp'] - summary['start_stamp'] == pytest.approx(20.0, abs=0.03)
    lt = det.thresholds()
    assert np.all(np.isfinite(lt.level[lt.monitored]))
    eff = slice(2 * N, 3 * N)
    np.testing.assert_allclose(lt.center[eff], 0.2, atol=0.01)
    flags, _ = feed(det, data, 20100, 24000)
    assert not flags.any()
    data['eff'][24000:, 1] += 0.5
    flags, _ = feed(det, data, 24000, 26000)
    assert flags.any() and det.report().faulty_joint == 'joint2'


# ------------------------------------------------------------------------- false alarms

def test_no_false_alarm_on_60_s_of_nominal_data(commissioned):
    det, data = fresh(commissioned)
    flags, reports = feed(det, data, 30020, 90020)
    assert not flags.any()
    assert all(r.level != 'ERROR' for _, r in reports)
    # safety factor before persistence is even needed: the score stays well below 1
    assert max(r.score for _, r in reports) < 0.8
    assert sum(r.level == 'WARN' for _, r in reports) == 0


# ------------------------------------------------------------------------- detection

@pytest.mark.parametrize('joint', [0, 3, 6])
def test_abrupt_effort_offset_is_detected_and_localized(commissioned, joint):
    det, data = fresh(commissioned)
    onset = 35000
    data['eff'][onset:, joint] += 0.5            # 0.5 N·m, 10 x the white noise std
    flags, _ = feed(det, data, 30020, onset)
    assert not flags.any()
    flags, reports = feed(det, data, onset, onset + 1000)
    delay = int(np.argmax(flags))
    assert flags.any() and delay <= 120           # block 20 + persistence 60 + block slack
    state = det.report()
    assert state.level == 'ERROR' and state.faulty_joint == JOINTS[joint]
    assert [j.name for j in state.joints if j.alarm] == [JOINTS[joint]]
    js = state.joints[joint]
    assert js.channel == 'effort'
    assert js.fault_type in ('effort_offset', 'friction_like')
    assert data['t'][onset] <= js.since <= data['t'][onset + delay]
    assert state.since == js.since
    assert state.message.startswith(f'anomaly on {JOINTS[joint]}: ')


def test_constant_offset_and_friction_are_told_apart(commissioned):
    det_off, data_off = fresh(commissioned)
    det_fr, data_fr = fresh(commissioned)
    onset, k = 31000, 2
    data_off['eff'][onset:, k] += 0.4
    data_fr['eff'][onset:, k] += 0.4 * np.sign(data_fr['velocity'][onset:, k])
    feed(det_off, data_off, 30020, onset + 15000, report_every=1000)
    feed(det_fr, data_fr, 30020, onset + 15000, report_every=1000)
    off, fr = det_off.report().joints[k], det_fr.report().joints[k]
    assert off.alarm and off.fault_type == 'effort_offset'
    assert fr.alarm and fr.fault_type == 'friction_like' and fr.confidence > 0.7


def test_slow_incipient_drift_is_found_by_cusum_with_since_after_onset(commissioned):
    det, data = fresh(commissioned)
    onset, k = 32000, 4
    ramp = 0.004 * (data['t'][onset:] - data['t'][onset])      # +0.004 N·m per second
    data['eff'][onset:, k] += ramp
    flags, reports = feed(det, data, 30020, 90020)
    first = int(np.argmax(flags)) + 30020
    assert flags.any() and first > onset
    state = next(r for t, r in reports if r.level == 'ERROR')
    js = state.joints[k]
    assert state.faulty_joint == JOINTS[k] and js.detector == 'drift'
    assert js.since >= data['t'][onset]
    # found while the drift is still small: below the level detector's own threshold
    lt = det.thresholds()
    eff = 2 * N + k
    assert ramp[first - onset] < lt.level_physical[eff]


def test_alarm_clears_after_the_residual_returns(commissioned):
    det, data = fresh(commissioned)
    onset, end, k = 31000, 33000, 1
    data['eff'][onset:end, k] += 0.5
    flags, reports = feed(det, data, 30020, 40020)
    rel = np.arange(30020, 40020)
    assert flags[(rel >= onset + 200) & (rel < end)].all()
    cleared = int(np.argmax(~flags[rel >= end]))
    assert 0 < cleared <= 2000                       # hysteresis: not immediately, but soon
    assert not flags[rel >= end + cleared].any()
    state = det.report()
    assert state.level == 'OK' and state.message == 'nominal' and math.isnan(state.since)
    assert not state.joints[k].alarm and state.joints[k].fault_type == 'none'


def test_hysteresis_keeps_alarm_between_clear_ratio_and_threshold():
    # level detector only (CUSUM allowance out of reach) so the score is set by the offset;
    # persistence and clearing times long enough that noise around 0.75 cannot cross either
    data = nominal(14, 60.0, colored=False)
    det = ResidualDetector(JOINTS, cusum_k=1e3, commissioning_duration_s=20.0,
                           persistence_s=0.2, clear_s=1.0)
    feed(det, data, 0, 20100)
    k = 5
    level = det.thresholds().level_physical[2 * N + k]
    data['eff'][20100:30000, k] += 0.75 * level       # 0.75 of threshold: never raises
    data['eff'][30000:33000, k] += 2.0 * level        # raises
    data['eff'][33000:40000, k] += 0.75 * level       # between clear_ratio and 1: stays
    flags, _ = feed(det, data, 20100, 45000)
    rel = np.arange(20100, 45000)
    assert not flags[rel < 30000].any()
    assert flags[(rel >= 30400) & (rel < 40000)].all()
    assert not flags[rel >= 42000].any()


def test_position_sensor_and_wrench_faults(commissioned):
    det, data = fresh(commissioned)
    data['pos'][31000:, 3] += 2e-3
    feed(det, data, 30020, 32000)
    state = det.report()
    assert state.faulty_joint == 'joint4' and state.fault_type == 'sensor_position'
    det, data = fresh(commissioned)
    data['wrench'][31000:, 2] -= 5.0                  # 5 N on fz, e.g. a payload change
    feed(det, data, 30020, 32000)
    state = det.report()
    assert state.level == 'ERROR' and state.fault_type == 'wrench'
    assert state.faulty_joint is None and state.wrench.alarm and state.wrench.channel == 'fz'
    assert state.message == 'anomaly on wrench residual'


def test_noise_increase_is_found(commissioned):
    det, data = fresh(commissioned)
    rng = np.random.default_rng(15)
    data['vel'][31000:, 6] += rng.normal(0.0, 8e-3, len(data['t']) - 31000)
    feed(det, data, 30020, 33000)
    js = det.report().joints[6]
    assert js.alarm and js.detector == 'noise' and js.fault_type == 'sensor_noise'


# ------------------------------------------------------------------------- missing data

def test_nan_channels_do_not_poison():
    data = nominal(16, 45.0)
    rng = np.random.default_rng(17)
    data['vel'][:] = np.nan                            # velocity residual never published
    data['wrench'] = None                              # no force-torque sensor
    holes = rng.random(len(data['t'])) < 0.3
    data['eff'][holes, 2] = np.nan                     # joint3 effort: 30 % missing
    data['pos'][20000:20500, :] = np.nan               # all positions missing for 0.5 s
    det = ResidualDetector(JOINTS)
    flags, reports = feed(det, data, 0, 40000)
    assert not flags.any()
    lt = det.thresholds()
    assert not lt.monitored[N:2 * N].any() and not lt.monitored[3 * N:].any()
    assert lt.monitored[:N].all() and lt.monitored[2 * N:3 * N].all()
    mon = lt.monitored
    assert np.all(np.isfinite(lt.center[mon]) & np.isfinite(lt.level[mon]))
    state = reports[-1][1]
    assert state.level == 'OK' and state.wrench is None
    assert set(state.unavailable) == {f'{j}.velocity' for j in JOINTS}
    assert all(np.isfinite(j.score) for j in state.joints)
    # a fault on the gappy channel is still found, on the right joint
    data['eff'][41000:, 2] += 0.5
    flags, _ = feed(det, data, 40000, 45000)
    assert flags.any() and det.report().faulty_joint == 'joint3'


def test_none_means_the_whole_array_is_unavailable():
    det = ResidualDetector(JOINTS, commissioning_duration_s=2.0)
    rng = np.random.default_rng(19)
    for i in range(2500):
        det.update(i / RATE, rng.normal(0, 1e-4, N), None, rng.normal(0, 0.05, N))
    lt = det.thresholds()
    assert lt.monitored[:N].all() and not lt.monitored[N:2 * N].any()
    assert lt.monitored[2 * N:3 * N].all() and not lt.monitored[3 * N:].any()


def test_channel_that_stops_is_unavailable_not_alarmed(commissioned):
    det, data = fresh(commissioned)
    data['eff'][31000:, 0] = np.nan
    flags, _ = feed(det, data, 30020, 33000)
    assert not flags.any()
    assert 'joint1.effort' in det.report().unavailable


# ------------------------------------------------------------------------- persistence

def test_numpy_settings_are_stored_as_plain_numbers(tmp_path):
    # e.g. a commissioning time computed with numpy: the thresholds file must still be YAML
    det = ResidualDetector(JOINTS, commissioning_duration_s=np.float64(2.0),
                           commissioning_capacity=np.int64(128))
    assert type(det.config.commissioning_duration_s) is float
    assert type(det.config.commissioning_capacity) is int
    rng = np.random.default_rng(3)
    for i in range(2100):
        det.update(i / RATE, rng.normal(0, 1e-4, N), None, rng.normal(0, 0.05, N))
    det.save_thresholds(tmp_path / 'th.yaml')
    doc = yaml.safe_load((tmp_path / 'th.yaml').read_text())['robot_twin_anomaly_thresholds']
    assert doc['commissioning']['duration_s'] == 2.0


def test_save_load_round_trip(tmp_path, commissioned):
    det, data = fresh(commissioned)
    path = tmp_path / 'sub' / 'thresholds.yaml'
    det.save_thresholds(path, urdf='/robots/arm.urdf')
    doc = yaml.safe_load(path.read_text())['robot_twin_anomaly_thresholds']
    assert doc['joints'] == JOINTS and doc['urdf'] == '/robots/arm.urdf'
    assert doc['commissioning']['duration_s'] == 30.0 and doc['saved_at']
    loaded = ResidualDetector.from_thresholds(path, JOINTS)
    assert loaded.commissioned and loaded.phase == 'monitoring'
    a, b = det.thresholds(), loaded.thresholds()
    for f in dataclasses.fields(a):
        if f.name != 'channels':
            np.testing.assert_allclose(getattr(b, f.name), getattr(a, f.name), rtol=1e-12)
    # monitors from the first sample (no commissioning) and finds the same fault
    data['eff'][31000:, 4] += 0.5
    flags, reports = feed(loaded, data, 30020, 32000)
    assert reports[0][1].phase == 'monitoring'
    assert not flags[:31000 - 30020].any()
    assert flags.any() and loaded.report().faulty_joint == 'joint5'


def test_load_with_other_joint_order_maps_by_name(tmp_path, commissioned):
    det, _ = fresh(commissioned)
    path = tmp_path / 't.yaml'
    det.save_thresholds(path)
    rev = list(reversed(JOINTS))
    other = ResidualDetector.from_thresholds(path, rev)
    a, b = det.thresholds(), other.thresholds()
    for kind in range(3):
        for i, j in enumerate(rev):
            ia, ib = kind * N + JOINTS.index(j), kind * N + i
            assert b.center[ib] == a.center[ia] and b.level[ib] == a.level[ia]


def test_wrong_joint_names_error(tmp_path, commissioned):
    det, _ = fresh(commissioned)
    path = tmp_path / 't.yaml'
    det.save_thresholds(path)
    names = JOINTS[:-1] + ['gripper']
    with pytest.raises(ThresholdsError, match=r"missing in file: \['gripper'\].*"
                                              r"not in model: \['joint7'\]"):
        ResidualDetector.from_thresholds(path, names)
    with pytest.raises(ThresholdsError, match='joints'):
        ResidualDetector(names).load_thresholds(path)


def test_load_refuses_other_statistics_settings_and_malformed_files(tmp_path, commissioned):
    det, _ = fresh(commissioned)
    path = tmp_path / 't.yaml'
    det.save_thresholds(path)
    with pytest.raises(ThresholdsError, match='block_s'):
        ResidualDetector(JOINTS, block_s=0.05).load_thresholds(path)
    # margins are applied to the saved quantiles
    wide = ResidualDetector.from_thresholds(path, JOINTS, threshold_margin=5.0)
    mon = wide.thresholds().monitored
    assert np.all(wide.thresholds().level[mon] >= det.thresholds().level[mon])
    bad = tmp_path / 'bad.yaml'
    bad.write_text('robot_twin_anomaly_thresholds: {version: 1, joints: [a]}\n')
    with pytest.raises(ThresholdsError, match='settings'):
        ResidualDetector(['a']).load_thresholds(bad)
    doc = yaml.safe_load(path.read_text())
    doc['robot_twin_anomaly_thresholds']['channels']['joint2']['effort']['scale'] = -1.0
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ThresholdsError, match=r'joint2\.effort\.scale'):
        ResidualDetector(JOINTS).load_thresholds(bad)
    with pytest.raises(ThresholdsError, match='cannot read'):
        ResidualDetector(JOINTS).load_thresholds(tmp_path / 'missing.yaml')
    with pytest.raises(RuntimeError, match='commissioning'):
        ResidualDetector(JOINTS).save_thresholds(tmp_path / 'x.yaml')


def test_recommission_and_reset(commissioned):
    det, data = fresh(commissioned)
    det.recommission()
    assert det.phase == 'commissioning' and det.thresholds() is None
    assert det.report().message == 'commissioning'
    det, data = fresh(commissioned)
    det.update(1000.0, data['pos'][0], data['vel'][0], data['eff'][0])
    assert not det.update(999.0, data['pos'][1], data['vel'][1], data['eff'][1])
    assert det.report().dropped_samples == 1
    det.reset()
    assert det.commissioned and det.report().dropped_samples == 0


# ------------------------------------------------------------------------- interfaces

def test_custom_classifier_replaces_the_heuristic(commissioned):
    seen = []

    class Stub:

        def classify(self, features):
            seen.append(features)
            return 'bearing_wear', 0.9

    det, data = fresh(commissioned)
    det.classifier = Stub()
    data['eff'][31000:, 0] += 0.5
    feed(det, data, 30020, 31500)
    state = det.report()
    assert state.fault_type == 'bearing_wear' and state.joints[0].confidence == 0.9
    feat = seen[-1]
    assert isinstance(feat, FaultFeatures) and feat.joint == 'joint1'
    assert feat.as_vector().shape == (len(FEATURE_NAMES),)
    assert feat.level_z[2] > 5.0                      # effort residual, learned std units
    with pytest.raises(ValueError, match='classifier'):
        ResidualDetector(JOINTS, classifier=object())

    class Broken:

        def classify(self, features):
            return 'x', 7.0

    det.classifier = Broken()
    with pytest.raises(ValueError, match=r"classifier Broken returned \('x', 7.0\)"):
        det.report()


@pytest.mark.parametrize('kwargs, name', [
    ({'commissioning_duration_s': -1.0}, 'commissioning_duration_s'),
    ({'commissioning_duration_s': 0.0}, 'commissioning_duration_s'),
    ({'persistence_s': -0.1}, 'persistence_s'),
    ({'clear_s': -1.0}, 'clear_s'),
    ({'threshold_quantile': 1.0}, 'threshold_quantile'),
    ({'threshold_quantile': 0.0}, 'threshold_quantile'),
    ({'threshold_quantile': 1.5}, 'threshold_quantile'),
    ({'threshold_margin': 0.5}, 'threshold_margin'),
    ({'min_threshold': 0.0}, 'min_threshold'),
    ({'clear_ratio': 1.0}, 'clear_ratio'),
    ({'block_s': float('nan')}, 'block_s'),
    ({'block_s': 10.0}, 'block_s'),
    ({'smoothing_s': 'fast'}, 'smoothing_s'),
    ({'commissioning_capacity': 63}, 'commissioning_capacity'),
])
def test_bad_config_raises_value_error_naming_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ResidualDetector(JOINTS, **kwargs)


def test_config_fields_are_described():
    for f in dataclasses.fields(DetectorConfig):
        assert f.metadata.get('description'), f.name


@pytest.mark.parametrize('args, name', [
    ((0.0, np.zeros(6), np.zeros(7), np.zeros(7)), 'pos_res'),
    ((0.0, np.zeros(7), [0.0] * 7, np.zeros((7, 1))), 'eff_res'),
    ((0.0, np.zeros(7), np.zeros(7), ['a'] * 7), 'eff_res'),
    ((0.0, np.zeros(7), np.zeros(7), np.zeros(7), np.zeros(3)), 'wrench_res'),
    ((0.0, 1.0, np.zeros(7), np.zeros(7)), 'pos_res'),
    ((float('nan'), np.zeros(7), np.zeros(7), np.zeros(7)), 't must be'),
])
def test_bad_samples_raise_value_error_naming_the_argument(args, name):
    det = ResidualDetector(JOINTS)
    with pytest.raises(ValueError, match=name):
        det.update(*args)


@pytest.mark.parametrize('names', [[], ['a', 'a'], 'joint1', ['a', '']])
def test_bad_joint_names(names):
    with pytest.raises(ValueError, match='joint_names'):
        ResidualDetector(names)
