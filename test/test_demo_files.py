"""
The demo's thresholds and health history never land in a real robot's files.

``robot-twin up --config config/demo.yaml`` commissions afresh and keeps compressed-time health
records; were its files the built-in arm's defaults (``~/.ros/robot_twin/<robot>_*``), a later
``up --config config/twin.yaml`` on that arm would load the demo's thresholds and health.
``robot-twin demo`` puts them in its temporary folder instead.
"""
from pathlib import Path

from robot_twin.demo import build_processes
from robot_twin.nodes.anomaly_node import default_robot_file
from robot_twin.nodes.params import resolve_node_parameters
from robot_twin.twin_model import robot_model
from twin_sim.resources import fault_scenario

ROOT = Path(__file__).resolve().parents[1]
FILES = {'thresholds_file': '_thresholds.yaml', 'rul.log_path': '_health.jsonl'}
"""The anomaly node's file parameters and the suffix of their defaults (anomaly_node.py)."""


def anomaly_files(config):
    """Return ``{parameter: path}`` of the files the twin_anomaly node of ``config`` uses."""
    params = resolve_node_parameters(ROOT / 'config' / config,
                                     [('twin_anomaly', 'twin_anomaly')])['twin_anomaly']
    model = robot_model(params, with_dynamics=False)
    return {name: Path(params[name] or default_robot_file(model, suffix)).expanduser()
            for name, suffix in FILES.items()}


def test_up_with_the_demo_config_keeps_files_of_its_own():
    arm = anomaly_files('twin.yaml')            # the built-in arm, beside a real robot
    assert arm == anomaly_files('hil.yaml')
    demo = anomaly_files('demo.yaml')
    for name in FILES:
        assert demo[name] != arm[name], name
        assert demo[name].parent == Path.home() / '.ros' / 'robot_twin' / 'demo', demo[name]


def test_robot_twin_demo_still_puts_them_in_its_temporary_folder(tmp_path):
    processes = build_processes(fault_scenario('demo'), str(tmp_path), False, None)
    (anomaly,) = [n for p in processes for n in p.nodes if n.name == 'twin_anomaly']
    for name in FILES:
        assert Path(anomaly.parameters[name]).parent == tmp_path, name
