"""
A URDF ``continuous`` joint without ``<limit>``: the twin starts, the governor never commands it.

The URDF is legal: a continuous joint needs no ``<limit>``, and the model gives it an infinite
velocity and effort limit (with a warning). The twin watches such a robot as any other; the
governor has no limit to hold the joint to, so it refuses every command for it, and the bridge
says so once at start-up. The governor tests are plain pytest; the last test starts the real
bridge node in this process.
"""
import math
from pathlib import Path

import numpy as np
import pytest

from twin_bridge.governor import GovernorConfigError, JointCommand, JointLimits, \
    limit_violations, SafetyGovernor, TrajectoryCommand, TrajectoryPoint
from twin_sim.resources import builtin_urdf
from twin_sim.urdf_model import RobotModel, URDFWarning

JOINT7_LIMIT = '<limit lower="-3.0543" upper="3.0543" velocity="3.1416" effort="40"/>'


def arm_urdf(tmp_path, limit=''):
    """Return the built-in arm with joint7 continuous and ``limit`` for its <limit> element."""
    text = Path(builtin_urdf()).read_text(encoding='utf-8')
    text = text.replace('<joint name="joint7" type="revolute">',
                        '<joint name="joint7" type="continuous">')
    assert JOINT7_LIMIT in text
    path = tmp_path / 'arm_continuous_wrist.urdf'
    path.write_text(text.replace(JOINT7_LIMIT, limit))
    return str(path)


def model_of(path):
    with pytest.warns(URDFWarning, match="'joint7' .*no effort/velocity limit"):
        return RobotModel.from_urdf(path)


@pytest.fixture
def limitless(tmp_path):
    """Return the governor of the arm whose joint7 has no <limit>, and the model."""
    model = model_of(arm_urdf(tmp_path))
    assert model.velocity_limit[6] == math.inf and model.effort_limit[6] == math.inf
    governor = SafetyGovernor(JointLimits.from_model(model), max_rate_hz=10.0,
                              position_margin_rad=0.05, velocity_scale=0.5)
    return governor, model


def test_limits_without_a_velocity_or_effort_limit_are_accepted_and_named(limitless):
    governor, model = limitless
    assert governor.limits.without_limit() == {'joint7': 'velocity and effort'}
    assert governor.velocity_limit(['joint7']).tolist() == [math.inf]
    lo, hi = governor.position_range(['joint7'])
    assert lo.tolist() == [-math.inf] and hi.tolist() == [math.inf]


def test_the_governor_refuses_every_command_that_moves_the_joint(limitless):
    governor, model = limitless
    q = np.zeros(model.n)
    names = list(model.joint_names)
    commands = [JointCommand('position', q + 0.1, duration_s=1.0),
                JointCommand('velocity', q + 0.1), JointCommand('effort', q + 1.0),
                TrajectoryCommand([(0.5, q + 0.1, q)]),
                TrajectoryCommand([(0.5, [0.1])], joints=['joint7'])]
    for k, command in enumerate(commands):
        decision = governor.govern(command, 10.0 + k, True, q, q)
        assert not decision.allowed and decision.cause == 'no_limit', decision.reasons
        what = 'effort' if command.kind == 'effort' else 'velocity'
        assert decision.reasons == [
            f"the URDF gives 'joint7' no {what} limit: the governor cannot limit a "
            f'{command.kind} command for it, so sends none; set <limit {what}="..."> on the '
            'joint in the URDF']
    assert governor.counters['no_limit'] == len(commands)
    # the other joints are commanded as usual
    decision = governor.govern(TrajectoryCommand([(0.5, q[:6] + 0.1, q[:6])], joints=names[:6]),
                               20.0, True, q, q)
    assert decision.allowed, decision.reasons


def test_a_velocity_limit_alone_allows_motion_but_no_effort_command(tmp_path):
    model = model_of(arm_urdf(tmp_path, '<limit velocity="2.0"/>'))
    governor = SafetyGovernor(JointLimits.from_model(model), max_rate_hz=10.0)
    assert governor.limits.without_limit() == {'joint7': 'effort'}
    q = np.zeros(model.n)
    moved = q.copy()
    moved[6] = 3.0
    decision = governor.govern(TrajectoryCommand([(0.1, moved, q)]), 1.0, True, q, q)
    assert decision.allowed and decision.command.points[-1].time_from_start >= 1.5 * 3.0 / 2.0
    assert governor.govern(JointCommand('effort', q), 2.0, True).cause == 'no_limit'


def test_the_final_check_never_passes_a_command_for_a_joint_without_limit(limitless):
    governor, model = limitless
    q = np.zeros(model.n)
    out = TrajectoryCommand([TrajectoryPoint(1.0, q + 0.01, q)], joints=tuple(model.joint_names))
    assert 'joint7 has no velocity limit' in limit_violations(governor, out, q, out, q)
    # with the refusal rule taken out, the final check still refuses (never sends)
    governor._limited = lambda *args: None
    decision = governor.govern(TrajectoryCommand([(1.0, q + 0.01, q)]), 5.0, True, q, q)
    assert not decision.allowed and decision.cause == 'invariant'
    assert 'joint7 has no velocity limit' in decision.reasons[0]


def test_the_error_for_a_bad_limit_speaks_to_a_urdf_author():
    with pytest.raises(GovernorConfigError) as error:
        JointLimits(('a',), [-1.0], [1.0], [0.0], [1.0])
    assert str(error.value) == ("joint 'a': velocity limit 0.0 rad/s is not a number > 0 "
                                '(inf for none); set <limit velocity="..."> on the joint in '
                                'the URDF')


def test_the_bridge_starts_watches_and_says_once_what_it_will_not_command(tmp_path, monkeypatch,
                                                                          capfd):
    """The audit's failure: ``node twin exited with code 2`` at start-up."""
    import rclpy
    from robot_twin.nodes.bridge_node import TwinBridgeNode
    from robot_twin.ros_env import localhost_env
    from ros_harness import DDS_KEYS, unique_domain_id
    from twin_bridge.corrective import AnomalyEvent, CorrectiveProposal

    urdf = arm_urdf(tmp_path)
    env = localhost_env(unique_domain_id())
    for key in DDS_KEYS:
        monkeypatch.setenv(key, env[key])
    rclpy.init(args=['x', '--ros-args', '-p', f'urdf_path:={urdf}', '-p', "wrench_topic:=''",
                     '-p', 'corrective_actions.enabled:=true',
                     '-p', 'corrective_actions.interface:=joint_command'])
    try:
        with pytest.warns(URDFWarning):
            bridge = TwinBridgeNode('bridge_limitless')
        sent = []
        bridge.pub_command.publish = sent.append
        err = capfd.readouterr().err
        said = [line for line in err.splitlines() if 'governor cannot limit' in line]
        assert len(said) == 1 and 'WARN' in said[0], err
        assert said[0].endswith(
            "the URDF gives 'joint7' no velocity limit: the governor cannot limit its speed, so "
            'it refuses every corrective command (hold and home move every joint) and none '
            'will be sent; add <limit effort="..." velocity="..."/> to the joint in the URDF '
            'to allow them')
        assert 'dataclasses' not in err
        # a hold: refused (no_limit, not retried), nothing sent
        q = np.zeros(bridge.governor.limits.n)
        bridge.intake.state_ok = lambda now: True
        bridge.intake.mapper.position[:] = q
        bridge.send_corrective(CorrectiveProposal(
            'trajectory', q, 0.5, 'test', AnomalyEvent('ERROR', 'joint1', 'collision', 3.0, 1.0),
            velocities=q))
        assert sent == [] and bridge.governor.counters['no_limit'] == 1
        bridge.destroy_node()
    finally:
        rclpy.try_shutdown()
