"""
Moving joints that move no mass: refused at load; the sync status says when results are NaN.

A UR-style URDF with ``<mass value="0"/>`` and zero inertia on a moving link used to load, give
a mass matrix with a zero on its diagonal and NaN forward dynamics, and leave /twin/status
"in sync" while the mirror dropped every result.
"""
from pathlib import Path
import re
import warnings

import numpy as np
import pytest
from robot_twin.nodes.status import MirrorResultCheck, sync_diagnostic
from twin_sim.urdf_model import RobotModel, URDFError, URDFWarning

UR = Path(__file__).resolve().parent / 'data' / 'ur5e_like.urdf'
WRIST_3 = re.compile(r'(<link name="wrist_3_link">\s*)<inertial>.*?</inertial>', re.S)


def _ur_variant(tmp_path, inertial, name='ur.urdf'):
    """Return the UR5e-like arm with ``inertial`` (XML) as wrist_3_link's <inertial>."""
    text, count = WRIST_3.subn(lambda m: m.group(1) + inertial, UR.read_text())
    assert count == 1
    path = tmp_path / name
    path.write_text(text)
    return path


def _inertial(mass, com='0 0 0', diagonal=(0.0, 0.0, 0.0)):
    ixx, iyy, izz = diagonal
    return (f'<inertial><mass value="{mass}"/><origin xyz="{com}"/><inertia ixx="{ixx}" '
            f'ixy="0" ixz="0" iyy="{iyy}" iyz="0" izz="{izz}"/></inertial>')


def _error(path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', URDFWarning)
        with pytest.raises(URDFError) as info:
            RobotModel.from_urdf(path)
    message = str(info.value)
    assert '\n' not in message and str(path) in message
    return message


def test_the_ur_like_arm_loads_and_its_forward_dynamics_are_finite():
    model = RobotModel.from_urdf(UR)
    q = np.array([0.1, -1.2, 1.0, -1.3, -1.5, 0.2])
    assert np.all(np.isfinite(model.forward_dynamics(q, np.zeros(6), np.zeros(6))))


def test_a_moving_link_with_mass_0_and_no_inertia_is_refused_naming_the_joint(tmp_path):
    """The audit's case: wrist_3_link ``<mass value="0"/>``, zero inertia, massless frames."""
    message = _error(_ur_variant(tmp_path, _inertial(0.0)))
    assert "joint 'wrist_3_joint' (revolute) moves no mass" in message
    assert "'wrist_3_link'" in message and 'give the link a small mass and inertia' in \
        message.lower()


def test_a_point_mass_on_the_joint_axis_is_refused(tmp_path):
    """Mass but no inertia about the axis (centre of mass on it): still a zero in M(q)."""
    message = _error(_ur_variant(tmp_path, _inertial(0.365, com='0 0 -0.001159')))
    assert "joint 'wrist_3_joint' (revolute) moves 0.365 kg" in message
    assert 'no inertia about its axis' in message


def test_a_point_mass_off_the_axis_or_a_small_body_loads(tmp_path):
    """Positive inertia about the axis, however small, is a defined motion."""
    for com, diagonal in (('0.02 0 0', (0.0, 0.0, 0.0)), ('0 0 0', (1e-7, 1e-7, 1e-7))):
        path = _ur_variant(tmp_path, _inertial(0.05, com=com, diagonal=diagonal))
        model = RobotModel.from_urdf(path)
        qdd = model.forward_dynamics(np.full(6, 0.3), np.zeros(6), np.zeros(6))
        assert np.all(np.isfinite(qdd))


def _two_joints(tmp_path, first, second, l2_inertial, lower=-1.0, upper=1.0):
    """j1 (``first`` axis) moves a massless l1; j2 (``second`` axis) moves l2."""
    path = tmp_path / 'two.urdf'
    kind = 'prismatic' if first == second else 'revolute'
    path.write_text(f"""<?xml version="1.0"?>
<robot name="two">
  <link name="base"/>
  <joint name="j1" type="{kind}"><parent link="base"/><child link="l1"/>
    <axis xyz="{first}"/><limit lower="-1" upper="1" effort="10" velocity="1"/></joint>
  <link name="l1"/>
  <joint name="j2" type="{kind}"><parent link="l1"/><child link="l2"/>
    <axis xyz="{second}"/><limit lower="{lower}" upper="{upper}" effort="10" velocity="1"/>
  </joint>
  <link name="l2">{l2_inertial}</link>
</robot>
""")
    return path


def test_a_massless_link_whose_load_slides_freely_through_the_next_joint(tmp_path):
    """Two parallel prismatic joints, the first carrying nothing of its own."""
    path = _two_joints(tmp_path, '1 0 0', '1 0 0', _inertial(1.0, diagonal=(0.01,) * 3))
    message = _error(path)
    assert "joint 'j1' (prismatic) moves no mass of its own along its axis" in message
    assert "'j2'" not in message


def test_a_singular_configuration_within_the_limits_is_found(tmp_path):
    """
    j1 (z) turns a point mass that j2 (y) swings onto j1's axis at q2 = 0.

    Within limits that include q2 = 0 the mass matrix is singular there: refused, naming j1.
    With j2's limits away from 0 it never is: the model loads (the old check only warned
    about the massless l1, and still does).
    """
    point = _inertial(1.0, com='0 0 0.1')
    assert "joint 'j1' (revolute)" in _error(_two_joints(tmp_path, '0 0 1', '0 1 0', point))
    with pytest.warns(URDFWarning, match="link 'l1'.*treated as massless"):
        model = RobotModel.from_urdf(_two_joints(tmp_path, '0 0 1', '0 1 0', point, 0.5, 1.5))
    assert np.all(np.isfinite(model.forward_dynamics([0.0, 1.0], [0.0, 0.0], [0.0, 0.0])))


# ---------------------------------------------------------------- the sync status

ACCEPTED, NONFINITE = 'joint_states.samples', 'mirror.nonfinite_results'


def _run(check, rate_hz, bad_share, seconds, start=(0.0, 0, 0), level='OK',
         message='in sync'):
    """Feed ``check`` one status a second; return the last (level, message) and the counts."""
    t, accepted, bad = start
    out = None
    for _ in range(int(seconds)):
        t += 1.0
        accepted += rate_hz
        bad += int(round(bad_share * rate_hz))
        out = check.judge(level, message, {ACCEPTED: accepted, NONFINITE: bad}, t)
    return out, (t, accepted, bad)


def test_non_finite_mirror_results_are_an_error_not_in_sync():
    """The audit's live run: 2231 of 4462 results non-finite, /twin/status said in sync."""
    check = MirrorResultCheck()
    assert check.judge('OK', 'in sync', {ACCEPTED: 4462, NONFINITE: 2231}, 9.0)[0] == 'ERROR'
    (level, message), _ = _run(MirrorResultCheck(), 500, 0.5, 20)
    assert level == 'ERROR' and 'in sync' not in message
    assert message.startswith('mirror results not finite: 2500 for 5000 samples in '
                              'the last 10.0 s')
    entry = sync_diagnostic(level, message, {ACCEPTED: 10000, NONFINITE: 5000})
    assert (entry.level, entry.message) == ('ERROR', message)


def test_a_healthy_or_rarely_glitching_mirror_stays_in_sync():
    check = MirrorResultCheck()
    assert _run(check, 500, 0.0, 30)[0] == ('OK', 'in sync')
    check = MirrorResultCheck()
    _, state = _run(check, 500, 0.0, 30)
    t, accepted, bad = state
    assert check.judge('OK', 'in sync', {ACCEPTED: accepted + 500, NONFINITE: bad + 1},
                       t + 1.0) == ('OK', 'in sync')          # one in 5000


def test_a_small_share_warns_and_the_status_recovers_after_the_window():
    check = MirrorResultCheck()
    (level, message), state = _run(check, 500, 0.02, 15)
    assert level == 'WARN' and message.startswith('mirror results not finite')
    (level, _), state = _run(check, 500, 0.0, 5, start=state)
    assert level == 'WARN'                            # still within the last 10 s
    assert _run(check, 500, 0.0, 6, start=state)[0] == ('OK', 'in sync')


def test_other_levels_are_kept_and_a_warning_gets_the_reason():
    (level, message), _ = _run(MirrorResultCheck(), 500, 0.5, 3, level='WARN',
                               message='waiting for joints: j7')
    assert level == 'ERROR' and message.startswith('waiting for joints: j7; mirror results')
    for kept in ('STALE', 'ERROR'):
        assert _run(MirrorResultCheck(), 500, 0.5, 3, level=kept, message='x')[0] == (kept, 'x')


def test_without_the_mirror_counters_or_after_a_reset():
    check = MirrorResultCheck()
    assert check.judge('OK', 'in sync', {ACCEPTED: 10}, 1.0) == ('OK', 'in sync')
    _run(check, 500, 0.5, 5)
    # counters back at zero (/twin/reset, a new mirror): judged from there on
    assert check.judge('OK', 'in sync', {ACCEPTED: 500, NONFINITE: 0}, 7.0) == ('OK', 'in sync')
