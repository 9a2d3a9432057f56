"""Domain randomization: YAML validation, reproducible draws within ranges, variant URDFs."""
from pathlib import Path

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest
from twin_sim.randomization import BodyInertial, deep_merge, load_randomization, \
    NominalDynamics, RandomizationError, RandomizationSpec, SCHEMA, variant_seed_sequence, \
    write_variant_urdf
from twin_sim.urdf_model import RobotModel
import yaml

ROOT = Path(__file__).resolve().parents[1]
URDF = ROOT / 'urdf' / 'robot_twin_arm.urdf'
JOINTS = tuple(f'joint{i}' for i in range(1, 8))

WIDE = {
    'links': {'mass_scale': [0.5, 1.5], 'com_offset_m': [-0.01, 0.02],
              'inertia_scale': {'low': 0.5, 'high': 2.0, 'distribution': 'loguniform'},
              'joints': {'joint3': {'mass_scale': [2.0, 3.0]}}},
    'friction': {'viscous_scale': [0.0, 2.0], 'coulomb_scale': [0.5, 1.0]},
    'payload': {'mass_kg': [0.0, 5.0], 'com_z_m': [0.02, 0.1], 'radius_m': 0.04},
    'sensor': {'position_noise_std_rad': [0.0, 1e-4], 'delay_s': [0.0, 0.003]},
    'actuator': {'effort_limit_scale': [0.8, 1.0],
                 'joints': {'joint7': {'velocity_limit_scale': 0.5}}},
}


@pytest.fixture(scope='module')
def spec():
    return RandomizationSpec.from_dict(WIDE, 'wide')


@pytest.fixture(scope='module')
def nominal():
    return NominalDynamics.from_urdf(URDF)


def _within(values, low, high):
    values = np.asarray(values)
    return bool(np.all(values >= low) and np.all(values <= high))


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2 ** 63), index=st.integers(0, 10 ** 9))
def test_draws_stay_in_their_ranges(spec, seed, index):
    v = spec.sample(JOINTS, seed, index)
    others = [j for j in range(7) if j != 2]
    assert _within(v.mass_scale[others], 0.5, 1.5)
    assert _within(v.mass_scale[2], 2.0, 3.0)                    # per-joint override
    assert _within(v.com_offset_m, -0.01, 0.02)
    assert v.com_offset_m.shape == (7, 3)
    assert _within(v.inertia_scale, 0.5, 2.0)
    assert _within(v.viscous_scale, 0.0, 2.0)
    assert _within(v.coulomb_scale, 0.5, 1.0)
    assert _within(v.effort_limit_scale, 0.8, 1.0)
    assert _within(v.velocity_limit_scale[:6], 1.0, 1.0)         # default: nominal
    assert v.velocity_limit_scale[6] == 0.5
    assert 0.0 <= v.payload_mass_kg <= 5.0
    assert v.payload_com_m[0] == 0.0 and v.payload_com_m[1] == 0.0
    assert 0.02 <= v.payload_com_m[2] <= 0.1
    assert v.payload_radius_m == 0.04
    assert 0.0 <= v.position_noise_std_rad <= 1e-4
    assert 0.0 <= v.delay_s <= 0.003
    assert v.effort_noise_std_nm == 0.0                          # not in the file: none


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32), index=st.integers(0, 10 ** 6))
def test_variant_depends_only_on_seed_and_index(spec, seed, index):
    a = spec.sample(JOINTS, seed, index).as_flat_dict()
    # drawing other variants first (another worker's order) changes nothing
    for other in (index + 1, 0, 7):
        spec.sample(JOINTS, seed, other)
    b = spec.sample(JOINTS, seed, index).as_flat_dict()
    assert a == b
    c = spec.sample(JOINTS, seed + 1, index).as_flat_dict()
    assert c['joint1.mass_scale'] != a['joint1.mass_scale']


def test_seed_sequence_is_the_spawned_child():
    children = np.random.SeedSequence(42).spawn(6)
    for i in (0, 3, 5):
        assert np.array_equal(children[i].generate_state(4),
                              variant_seed_sequence(42, i).generate_state(4))
    with pytest.raises(RandomizationError, match='seed'):
        variant_seed_sequence(-1, 0)


def test_loguniform_is_uniform_in_log(spec):
    draws = np.array([spec.sample(JOINTS, 3, i).inertia_scale for i in range(300)]).ravel()
    logs = np.log(draws)
    # uniform on [log 0.5, log 2]: mean 0, fraction below 1 is one half
    assert abs(logs.mean()) < 0.05
    assert abs(np.mean(draws < 1.0) - 0.5) < 0.05


def test_narrowing_one_range_keeps_other_draws(spec):
    narrowed = RandomizationSpec.from_dict(deep_merge(WIDE, {'payload': {'mass_kg': 1.0}}))
    for i in range(5):
        a, b = spec.sample(JOINTS, 9, i), narrowed.sample(JOINTS, 9, i)
        assert np.array_equal(a.mass_scale, b.mass_scale)
        assert a.delay_s == b.delay_s
        assert b.payload_mass_kg == 1.0


def test_zero_width_ranges_give_the_nominal_variant():
    spec = RandomizationSpec.from_dict({'version': 1})
    v = spec.sample(JOINTS, 1, 2)
    for name in ('mass_scale', 'inertia_scale', 'viscous_scale', 'coulomb_scale',
                 'effort_limit_scale', 'velocity_limit_scale'):
        assert np.all(getattr(v, name) == 1.0)
    assert np.all(v.com_offset_m == 0.0) and v.payload_mass_kg == 0.0 and v.delay_s == 0.0


def test_default_file_is_valid_and_centred():
    spec = load_randomization()
    assert spec.range('links', 'mass_scale').low < 1.0 < spec.range('links', 'mass_scale').high
    assert {sec for sec, _ in spec.ranges} <= set(SCHEMA)


@pytest.mark.parametrize('data, field', [
    ({'links': {'mass_scal': [0.9, 1.1]}}, 'links.mass_scal'),
    ({'link': {}}, "unknown section 'link'"),
    ({'links': {'mass_scale': [1.1, 0.9]}}, 'links.mass_scale: low 1.1 is above high 0.9'),
    ({'links': {'mass_scale': [0.0, 1.0]}}, 'links.mass_scale: must be > 0'),
    ({'friction': {'viscous_scale': [-0.1, 1.0]}}, 'friction.viscous_scale: must be >= 0'),
    ({'payload': {'mass_kg': [1, 2, 3]}}, 'payload.mass_kg: a range is [low, high]'),
    ({'payload': {'mass_kg': 'heavy'}}, 'payload.mass_kg: expected a number'),
    ({'sensor': {'delay_s': [0.0, float('inf')]}}, 'sensor.delay_s: high must be a finite'),
    ({'sensor': {'delay_s': {'low': 0.0}}}, 'sensor.delay_s: a range mapping needs both'),
    ({'links': {'inertia_scale': {'low': 0.0, 'high': 1.0, 'distribution': 'loguniform'}}},
     'links.inertia_scale: must be > 0'),
    ({'payload': {'mass_kg': {'low': 1, 'high': 2, 'distribution': 'gauss'}}},
     'payload.mass_kg.distribution'),
    ({'actuator': {'joints': {'joint1': {'mass_scale': 1.0}}}},
     'actuator.joints.joint1.mass_scale: unknown field'),
    ({'payload': {'joints': {}}}, 'payload.joints: unknown field'),
    ({'version': 2}, 'version'),
    ([1, 2], 'a randomization file is a mapping'),
])
def test_invalid_randomization_is_rejected_naming_the_field(data, field):
    with pytest.raises(RandomizationError) as info:
        RandomizationSpec.from_dict(data, 'bad.yaml')
    assert field in str(info.value)
    assert 'bad.yaml' in str(info.value)


def test_invalid_file_and_unknown_joint(tmp_path):
    path = tmp_path / 'r.yaml'
    path.write_text('links: {mass_scale: [0.9, 1.1}\n')
    with pytest.raises(RandomizationError, match='not valid YAML'):
        RandomizationSpec.load(path)
    path.write_text(yaml.safe_dump({'friction': {'joints': {'elbow': {'viscous_scale': 2}}}}))
    spec = RandomizationSpec.load(path)
    with pytest.raises(RandomizationError, match="unknown joint 'elbow'.*joint1"):
        spec.sample(JOINTS, 0, 0)
    with pytest.raises(RandomizationError, match='cannot read'):
        RandomizationSpec.load(tmp_path / 'missing.yaml')


def test_numbers_with_an_exponent_are_numbers(tmp_path):
    # PyYAML (YAML 1.1) reads 95e-2 and 1.05e0 as text; ros2 and people write them as numbers
    path = tmp_path / 'ranges.yaml'
    path.write_text('links:\n  mass_scale: [95e-2, 1.05e0]\n')
    spec = RandomizationSpec.load(path)
    assert (spec.range('links', 'mass_scale').low, spec.range('links', 'mass_scale').high) \
        == (0.95, 1.05)


def test_overrides_merge_into_the_file(tmp_path):
    spec = load_randomization(overrides={'payload': {'mass_kg': [2.0, 2.0]}})
    v = spec.sample(JOINTS, 0, 0)
    assert v.payload_mass_kg == 2.0
    assert spec.range('links', 'mass_scale').width > 0.0     # the rest of the file is kept
    with pytest.raises(RandomizationError, match='with overrides.*payload.mass_kg'):
        load_randomization(overrides={'payload': {'mass_kg': [-1.0, 2.0]}})


# ------------------------------------------------------------------- variant URDFs

def _composite(model):
    doc = model.dynamic_parameters()['robot_twin_dynamics']['bodies']
    return np.array([doc[j]['dynamic_parameters'] for j in model.joint_names])


def test_nominal_variant_urdf_reproduces_the_model(nominal, tmp_path):
    v = RandomizationSpec.from_dict({}).sample(JOINTS, 0, 0)
    path = write_variant_urdf(nominal, v, tmp_path / 'v.urdf')
    ref, var = RobotModel.from_urdf(URDF), RobotModel.from_urdf(path)
    assert np.allclose(_composite(var), _composite(ref), atol=1e-12)
    assert np.allclose(var.damping, ref.damping) and np.allclose(var.friction, ref.friction)
    assert np.allclose(var.effort_limit, ref.effort_limit)


def test_variant_urdf_has_the_drawn_dynamics(nominal, spec, tmp_path):
    ref = RobotModel.from_urdf(URDF)
    q = np.array([0.3, 0.7, -0.4, -1.1, 0.5, 0.8, 0.2])
    for i in range(3):
        v = spec.sample(JOINTS, 5, i)
        var = RobotModel.from_urdf(write_variant_urdf(nominal, v, tmp_path / f'v{i}.urdf'))
        comp_ref, comp_var = _composite(ref), _composite(var)
        for j in range(7):
            child = nominal.bodies[j]
            # composite mass changes by exactly the child link's mass change
            assert comp_var[j, 0] - comp_ref[j, 0] == pytest.approx(
                child.mass * (v.mass_scale[j] - 1.0), abs=1e-9)
            # first moment: (m s)(c + dc) - m c
            expected = child.mass * v.mass_scale[j] * (child.com + v.com_offset_m[j]) \
                - child.mass * child.com
            assert np.allclose(comp_var[j, 1:4] - comp_ref[j, 1:4], expected, atol=1e-9)
        assert np.allclose(var.damping, ref.damping * v.viscous_scale)
        assert np.allclose(var.friction, ref.friction * v.coulomb_scale)
        assert np.allclose(var.effort_limit, ref.effort_limit * v.effort_limit_scale)
        assert np.allclose(var.velocity_limit, ref.velocity_limit * v.velocity_limit_scale)
        # the randomization moves the gravity torques, by a bounded amount
        delta = var.gravity(q) - ref.gravity(q)
        assert np.any(np.abs(delta) > 1e-3)
        assert np.all(np.abs(delta) < np.abs(ref.gravity(q)) * 3.5 + 1.0)


def test_body_inertial_round_trip():
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    body = BodyInertial(2.5, np.array([0.1, -0.02, 0.3]), rot @ np.diag([0.1, 0.2, 0.25])
                        @ rot.T)
    back = BodyInertial.from_dynamic_parameters(body.dynamic_parameters())
    assert back.mass == pytest.approx(2.5)
    assert np.allclose(back.com, body.com) and np.allclose(back.inertia, body.inertia)
    # parallel-axis theorem by hand: I_origin = I_c + m (|c|^2 1 - c c^T)
    pi = body.dynamic_parameters()
    c = body.com
    i_origin = body.inertia + 2.5 * (c @ c * np.eye(3) - np.outer(c, c))
    assert pi[4] == pytest.approx(i_origin[0, 0]) and pi[9] == pytest.approx(i_origin[2, 2])
    assert pi[5] == pytest.approx(i_origin[0, 1]) and pi[8] == pytest.approx(i_origin[1, 2])


def test_identified_parameters_are_the_centre(tmp_path):
    ref = RobotModel.from_urdf(URDF)
    doc = ref.dynamic_parameters()
    inner = doc['robot_twin_dynamics']
    # pretend sysid found joint 2's body 10 % heavier at the same CoM, and other friction
    pi = np.array(inner['bodies']['joint2']['dynamic_parameters'])
    inner['bodies'] = {'joint2': {'dynamic_parameters': (pi * 1.1).tolist()}}
    inner['friction'] = {'joint4': {'viscous': 1.5, 'coulomb': 0.9, 'offset': 0.0}}
    params = tmp_path / 'params.yaml'
    params.write_text(yaml.safe_dump(doc))
    nominal = NominalDynamics.from_urdf(URDF, params)
    v = RandomizationSpec.from_dict({}).sample(JOINTS, 0, 0)
    var = RobotModel.from_urdf(write_variant_urdf(nominal, v, tmp_path / 'v.urdf'))
    identified = ref.copy()
    identified.load_parameters(params)
    assert np.allclose(_composite(var), _composite(identified), atol=1e-9)
    assert var.damping[3] == pytest.approx(1.5) and var.friction[3] == pytest.approx(0.9)
    assert var.damping[0] == pytest.approx(ref.damping[0])
    # a body that cannot be split off the fixed links is refused with a clear message
    inner['bodies'] = {'joint7': {'dynamic_parameters': [0.05] + [0.0] * 3 +
                                  [1e-3, 0, 1e-3, 0, 0, 1e-3]}}
    params.write_text(yaml.safe_dump(doc))
    with pytest.raises(RandomizationError, match='joint7.*link7.*mass'):
        NominalDynamics.from_urdf(URDF, params)


def test_randomized_plant_robot_is_the_whatif_sample(tmp_path):
    # the HIL plant's variant i of seed s is sample i of a what-if run with that seed: holding
    # a pose, both arms need the same torques (gravity of the drawn bodies and payload)
    from twin_sim.plant import Plant
    from twin_sim.randomization import write_randomized_robot
    from robot_twin.whatif import run_whatif, scenario_from_dict
    urdf = Path(__file__).resolve().parents[1] / 'urdf' / 'robot_twin_arm.urdf'
    pose = [0.0, 0.8, 0.0, -1.0, 0.0, 0.5, 0.0]
    ranges = {'links': {'mass_scale': [0.7, 1.3]}, 'payload': {'mass_kg': [0.5, 2.0]}}
    scenario = scenario_from_dict({
        'name': 'hold', 'duration_s': 1.0, 'trajectory': {'type': 'hold', 'q': pose},
        'randomization': {'file': 'default', 'overrides': ranges},
        'detector': {'commissioning_duration_s': 0.5}, 'record_rate_hz': 10}, 'test')
    whatif = run_whatif(scenario, 3, urdf=urdf, seed=5).samples[2]
    path, variant = write_randomized_robot(urdf, load_randomization(overrides=ranges), 5, 2,
                                           tmp_path / 'variant.urdf')
    assert variant.as_flat_dict() == whatif.variant
    assert variant.payload is not None and 0.5 <= variant.payload.mass <= 2.0
    plant = Plant(path, dt=0.001, initial_q=pose, payload=variant.payload)
    try:
        while plant.time < 1.0 - 1e-9:
            m = plant.step()
    finally:
        plant.close()
    assert np.allclose(m.effort, whatif.record_effort[-1], atol=1e-6)
    # and it is not the nominal arm
    nominal = Plant(urdf, dt=0.001, initial_q=pose)
    try:
        while nominal.time < 1.0 - 1e-9:
            n = nominal.step()
    finally:
        nominal.close()
    assert np.max(np.abs(n.effort - m.effort)) > 1.0


@pytest.mark.parametrize('data, field, value', [
    ({'links': {'mass_scale': [1.0e300, 1.0e300]}}, 'links.mass_scale', '1e+300'),
    ({'links': {'mass_scale': 1.0e-12}}, 'links.mass_scale', '1e-12'),
    ({'links': {'com_offset_m': [-50.0, 50.0]}}, 'links.com_offset_m', '50 m'),
    ({'links': {'joints': {'joint3': {'inertia_scale': 40.0}}}},
     'links.joints.joint3.inertia_scale', '40'),
    ({'friction': {'joints': {'joint3': {'coulomb_scale': 1000.0}}}},
     'friction.joints.joint3.coulomb_scale', '1000'),
    ({'actuator': {'effort_limit_scale': [0.01, 0.01]}}, 'actuator.effort_limit_scale', '0.01'),
    ({'payload': {'com_z_m': [0.0, 5.0]}}, 'payload.com_z_m', '5 m'),
    ({'sensor': {'delay_s': 5.0}}, 'sensor.delay_s', '5 s'),
    ({'sensor': {'position_noise_std_rad': 0.5}}, 'sensor.position_noise_std_rad', '0.5 rad'),
])
def test_values_no_variant_of_the_robot_has_are_refused(data, field, value):
    with pytest.raises(RandomizationError) as info:
        RandomizationSpec.from_dict(data, 'absurd.yaml')
    message = str(info.value)
    assert f'absurd.yaml: {field}: {value}' in message, message
    assert 'is not a randomization of this robot (plausible:' in message, message


@pytest.mark.parametrize('data, field', [
    ({'links': {'mass_scale': [0.9, 3.0]}}, 'links.mass_scale'),
    ({'links': {'com_offset_m': [-0.1, 0.0]}}, 'links.com_offset_m'),
    ({'friction': {'coulomb_scale': [1.0, 8.0]}}, 'friction.coulomb_scale'),
    ({'actuator': {'joints': {'joint2': {'effort_limit_scale': 0.3}}}},
     'actuator.joints.joint2.effort_limit_scale'),
    ({'sensor': {'delay_s': [0.0, 0.2]}}, 'sensor.delay_s'),
])
def test_large_but_possible_values_are_accepted_with_a_warning(data, field):
    from twin_sim.randomization import RandomizationWarning
    with pytest.warns(RandomizationWarning, match=f'{field}: .* is large for a randomization'):
        spec = RandomizationSpec.from_dict(data, 'large.yaml')
    assert spec.sample(JOINTS, 0, 0) is not None


def test_packaged_ranges_are_plausible_without_a_warning():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        load_randomization()
    for section, fields in SCHEMA.items():
        for name, spec in fields.items():          # every bound has its reason
            if spec.refuse != (None, None):
                assert spec.why and spec.warn != (None, None), (section, name)
