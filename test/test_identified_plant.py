"""The plant simulates identified dynamics: its URDF with a params.yaml put in."""
import numpy as np

from twin_sim.randomization import write_identified_urdf
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import RobotModel


def test_identified_urdf_reproduces_the_identified_model(tmp_path):
    model = RobotModel.from_urdf(builtin_urdf())
    doc = model.dynamic_parameters()
    # an "identified" robot: joint3's body 1.5 kg heavier at its origin, more friction
    body = doc['robot_twin_dynamics']['bodies']['joint3']['dynamic_parameters']
    body[0] += 1.5
    doc['robot_twin_dynamics']['friction']['joint3']['coulomb'] = 1.7
    identified = model.copy()
    identified.apply_parameters(doc)
    params = tmp_path / 'params.yaml'
    identified.save_parameters(params)

    urdf = write_identified_urdf(builtin_urdf(), params, tmp_path / 'identified.urdf')
    plant_model = RobotModel.from_urdf(urdf)

    rng = np.random.default_rng(3)
    for _ in range(10):
        q = rng.uniform(model.lower, model.upper)
        qd = rng.uniform(-1.0, 1.0, model.n)
        qdd = rng.uniform(-2.0, 2.0, model.n)
        expected = identified.inverse_dynamics(q, qd, qdd)
        assert np.allclose(plant_model.inverse_dynamics(q, qd, qdd), expected, atol=1e-6)
        # and it differs from the nominal URDF by the heavier body
        assert not np.allclose(model.inverse_dynamics(q, qd, qdd), expected, atol=1e-3)
    assert plant_model.friction[2] == 1.7
