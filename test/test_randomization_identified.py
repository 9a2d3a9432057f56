"""
Identified bodies split into URDF links that every simulator loads (write_identified_urdf).

``robot-twin sysid`` identifies the lumped body of each joint (its child link plus the links
fixed to it). The built-in arm's joint7 carries ``ft_sensor`` (0.1 kg) and ``tool`` (0.3 kg) on
``link7``; an identified joint7 body with less inertia than those two made link7 a body with a
negative principal inertia, which no consumer (plant, what-if, commissioning) could load.
"""
from pathlib import Path
from types import SimpleNamespace
import warnings
import xml.etree.ElementTree as ElementTree

import numpy as np
import pinocchio as pin
import pytest
from twin_sim.randomization import RandomizationWarning, write_identified_urdf
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import RobotModel, URDFWarning
import yaml


def _params(tmp_path, joint7_body):
    """Write a params.yaml of the built-in arm with ``joint7_body`` (pin.Inertia) identified."""
    doc = RobotModel.from_urdf(builtin_urdf()).dynamic_parameters()
    body = [float(x) for x in joint7_body.toDynamicParameters()]
    doc['robot_twin_dynamics']['bodies']['joint7']['dynamic_parameters'] = body
    path = tmp_path / 'params.yaml'
    path.write_text(yaml.safe_dump(doc))
    mirror = RobotModel.from_urdf(builtin_urdf())      # the twin's model with the file
    mirror.load_parameters(path)
    return path, mirror


def _inertial(urdf, link):
    root = ElementTree.parse(str(urdf)).getroot()
    return next(k for k in root.findall('link') if k.get('name') == link).find('inertial')


def _states(model, count=8, seed=4):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield (rng.uniform(model.lower, model.upper), rng.uniform(-1.0, 1.0, model.n),
               rng.uniform(-2.0, 2.0, model.n))


def _load_everywhere(urdf):
    """Load ``urdf`` as the twin's model and as the PyBullet world; neither may complain."""
    from twin_sim.world import SimWorld
    with warnings.catch_warnings():
        warnings.simplefilter('error', URDFWarning)
        plant = RobotModel.from_urdf(urdf)
    world = SimWorld(urdf)
    return plant, world


def test_a_body_lighter_than_the_fixed_links_keeps_its_dynamics_and_the_sensor(tmp_path):
    # identified joint7 body: the tool (0.3 kg, as in the URDF) plus 0.05 kg of link7, less
    # than link7 + ft_sensor + tool; subtracting both fixed links left -0.05 kg (refused)
    tool = pin.SE3(np.eye(3), np.array([0.0, 0.0, 0.075])).act(
        pin.Inertia(0.3, np.array([0.01, 0.0, 0.05]), np.diag([2.9e-4, 3.4e-4, 1.3e-4])))
    own = pin.Inertia(0.05, np.array([0.0, 0.0, 0.02]), np.diag([2e-5, 2e-5, 3e-5]))
    params, mirror = _params(tmp_path, own + tool)
    with warnings.catch_warnings():
        warnings.simplefilter('error', RandomizationWarning)    # the dynamics do not change
        urdf = write_identified_urdf(builtin_urdf(), params, tmp_path / 'identified.urdf')
    plant, world = _load_everywhere(urdf)
    try:
        # the sensor's own body is merged into link7; the tool below the sensor is untouched
        assert _inertial(urdf, 'ft_sensor') is None
        assert float(_inertial(urdf, 'link7').find('mass').get('value')) == pytest.approx(0.05)
        assert _inertial(urdf, 'tool').find('mass').get('value') == '0.3'
        for q, qd, qdd in _states(mirror):
            assert np.allclose(plant.inverse_dynamics(q, qd, qdd),
                               mirror.inverse_dynamics(q, qd, qdd), rtol=0, atol=1e-9)
            assert np.allclose(plant.ft_wrench(q, qd, qdd), mirror.ft_wrench(q, qd, qdd),
                               rtol=0, atol=1e-9)
        # the simulated sensor at rest reads what the twin predicts
        q = np.array([0.3, 0.8, -0.2, -1.0, 0.4, 0.5, 0.7])
        world.reset(q)
        zero = np.zeros(7)
        assert np.allclose(world.measure().wrench, mirror.ft_wrench(q, zero, zero), atol=1e-6)
    finally:
        world.close()


def test_a_sensor_link_named_otherwise_keeps_the_links_below_it(tmp_path):
    # a robot whose sensor link is not called ft_sensor: the plant names it (ft_link), and
    # the links below it keep their URDF inertials as with the default name
    text = Path(builtin_urdf()).read_text().replace('"ft_sensor"', '"wrist_ft"')
    assert 'wrist_ft' in text
    renamed = tmp_path / 'renamed.urdf'
    renamed.write_text(text)
    tool = pin.SE3(np.eye(3), np.array([0.0, 0.0, 0.075])).act(
        pin.Inertia(0.3, np.array([0.01, 0.0, 0.05]), np.diag([2.9e-4, 3.4e-4, 1.3e-4])))
    own = pin.Inertia(0.05, np.array([0.0, 0.0, 0.02]), np.diag([2e-5, 2e-5, 3e-5]))
    params, _ = _params(tmp_path, own + tool)
    urdf = write_identified_urdf(renamed, params, tmp_path / 'identified.urdf',
                                 ft_link='wrist_ft')
    assert _inertial(urdf, 'wrist_ft') is None
    assert _inertial(urdf, 'tool').find('mass').get('value') == '0.3'
    assert float(_inertial(urdf, 'link7').find('mass').get('value')) == pytest.approx(0.05)


def test_a_body_too_thin_for_the_tool_becomes_the_nearest_physical_one(tmp_path):
    # the audit's demo body: 0.969 kg, principal inertias 3.8e-6, 3.6e-3, 3.6e-3 kg m^2 about
    # the CoM (a rod along the axis); the URDF's tool alone has more inertia about the axis
    lumped = pin.Inertia(0.969, np.array([0.0, 0.0, 0.09]), np.diag([3.6e-3, 3.6e-3, 3.8e-6]))
    params, mirror = _params(tmp_path, lumped)
    with pytest.warns(RandomizationWarning, match=r'joint7.*tool.*nearest physical') as caught:
        urdf = write_identified_urdf(builtin_urdf(), params, tmp_path / 'identified.urdf')
    change = float(str(caught[0].message).split('by up to ')[1].split(' kg')[0])
    assert 1e-5 < change < 1e-3
    plant, world = _load_everywhere(urdf)
    world.close()
    body = plant.pin_model.inertias[7]
    # mass and first moment are the identified ones: gravity torques are exact
    assert body.mass == pytest.approx(0.969, abs=1e-12)
    assert np.allclose(body.mass * body.lever, lumped.mass * lumped.lever, atol=1e-12)
    moments = np.linalg.eigvalsh(0.5 * np.trace(body.inertia) * np.eye(3) - body.inertia)
    assert moments[0] > 0.0                 # a physical body (PSD, triangle inequality)
    assert np.max(np.abs(np.linalg.eigvalsh(body.inertia - lumped.inertia))) \
        == pytest.approx(change, rel=1e-2)
    assert _inertial(urdf, 'tool').find('mass').get('value') == '0.3'
    for q, qd, qdd in _states(mirror):
        assert np.allclose(plant.gravity(q), mirror.gravity(q), rtol=0, atol=1e-9)
        assert np.allclose(plant.ft_wrench(q, qd, qdd), mirror.ft_wrench(q, qd, qdd),
                           rtol=0, atol=1e-9)
        # only link7's rotational inertia about its CoM changed, by dI (|dI| <= change): each
        # joint torque moves by a . (dI alpha + w x dI w) <= change (|alpha| + |w|^2), with
        # |w| <= sum|qd| and |alpha| <= sum|qdd| + sum|qd|^2 / 2 (products of joint rates)
        w, a = np.abs(qd).sum(), np.abs(qdd).sum() + 0.5 * np.abs(qd).sum() ** 2
        bound = change * (a + w ** 2) * 1.01
        delta = plant.inverse_dynamics(q, qd, qdd) - mirror.inverse_dynamics(q, qd, qdd)
        assert np.max(np.abs(delta)) <= bound
        assert np.max(np.abs(delta)) > 0.0


def test_sysid_names_the_change_in_its_warnings_and_report(tmp_path, capsys):
    from robot_twin.sysid_cli import _check_plant_urdf
    lumped = pin.Inertia(0.969, np.array([0.0, 0.0, 0.09]), np.diag([3.6e-3, 3.6e-3, 3.8e-6]))
    params, _ = _params(tmp_path, lumped)
    result = SimpleNamespace(warnings=[])
    _check_plant_urdf(builtin_urdf(), params, result, quiet=False)
    assert len(result.warnings) == 1 and 'nearest physical' in result.warnings[0]
    assert 'nearest physical' in capsys.readouterr().err
    # a body lighter than the tool cannot be simulated: said, not raised
    light = pin.Inertia(0.2, np.array([0.0, 0.0, 0.09]), np.diag([1e-4, 1e-4, 1e-4]))
    params, _ = _params(tmp_path, light)
    result = SimpleNamespace(warnings=[])
    _check_plant_urdf(builtin_urdf(), params, result, quiet=True)
    assert len(result.warnings) == 1 and 'cannot carry' in result.warnings[0]
