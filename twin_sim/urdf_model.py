"""
Robot model from a URDF: joints, limits, rigid-body dynamics (pinocchio) and the FT wrench.

:meth:`RobotModel.from_urdf` checks the URDF itself (``xml.etree``), then builds a pinocchio
model of it. The robot base (the URDF's root link) is fixed at the world origin; gravity is
``(0, 0, -9.81)`` m/s^2 in the world frame. Joint arrays are in the model order
(:attr:`RobotModel.joint_names`: the movable joints in kinematic-tree order, as pinocchio
orders them).

What the URDF check accepts and rejects
---------------------------------------
- Joint types ``revolute``, ``prismatic``, ``continuous`` and ``fixed``. ``floating`` and
  ``planar`` raise :class:`URDFError` naming the joint (the twin is a fixed-base arm).
- ``continuous`` joints are modelled as revolute joints without position limits, so that every
  joint has exactly one coordinate (an angle in rad); pinocchio's own continuous joint would
  use ``(cos, sin)``. ``lower``/``upper`` are ``-inf``/``+inf`` for them.
- ``revolute`` and ``prismatic`` joints need ``<limit>`` with ``lower < upper`` and positive
  ``effort`` and ``velocity``; otherwise :class:`URDFError`. A continuous joint without them
  gets ``inf`` and a :class:`URDFWarning`.
- Inertia: negative or non-finite masses and non-positive-semi-definite inertia tensors raise
  :class:`URDFError`; a tensor that violates the triangle inequality, or a zero mass with a
  non-zero tensor, gives a warning (kept as written).
- Massless moving bodies: a movable joint moves its child link together with every link fixed
  to it. If none of those has an ``<inertial>`` and nothing further out has mass either, the
  joint's dynamics are undefined (a zero column of the mass matrix): :class:`URDFError`. If the
  moving body is massless but links further out have mass, the dynamics may be defined:
  warning. Fixed frames without ``<inertial>`` (``world``, ``tool0``, ...) are normal and not
  reported.
- Every moving joint must move mass (inertia about its axis, for a revolute joint): the mass
  matrix must be positive definite at the reference configuration (0 clipped into the limits)
  and a few random ones within the limits. Judged per joint by the inertia it moves with every
  joint beyond it free (the ``D`` of ``M = U D U^T``); a joint with none (``<mass value="0"/>``
  and zero inertia, as UR URDFs give ``ee_link``; a point mass on a revolute joint's axis; a
  massless link whose load slides through the next joint) would make forward dynamics NaN:
  :class:`URDFError` naming the joint and the link to give a small mass and inertia.
- Mesh files are not needed for dynamics: a mesh that does not resolve (``package://``,
  ``file://`` or relative to the URDF) gives one warning listing them.
- ``<mimic>`` joints are modelled as independent joints (warning); :attr:`RobotModel.mimic_joints`
  keeps the coupling, which :mod:`twin_sim.excitation` respects.

Force-torque sensor
-------------------
The sensor is the link named ``ft_link`` (default ``ft_sensor``). :meth:`RobotModel.ft_wrench`
is the wrench ``[fx, fy, fz, tx, ty, tz]`` (N, N·m) that the bodies distal to the sensor exert
on it, expressed in the ``ft_link`` frame, torque about its origin (docs/conventions.md): a
mass ``m`` hanging at rest reads ``m * g_world`` rotated into the sensor frame. "Distal" is
every link rigidly (fixed joints) attached below ``ft_link`` plus the payload; the ``ft_link``
body itself is on the robot side. Pinocchio merges fixed links into their parent joint's body,
so the distal inertia is summed separately from the URDF, in the sensor frame. Subtrees behind
movable joints below the sensor (e.g. gripper fingers) add the force pinocchio's RNEA
transmits through those joints.

A :class:`Payload` is given in the payload frame :attr:`RobotModel.payload_frame`: the
``ft_link`` frame if the robot has a sensor; else the last link of the arm's chain before any
gripper joint, so that a payload never hangs on a finger: the hand where the chain branches
into fingers (a Panda's ``panda_hand``), or the link that carries a gripper's joints at the end
of the chain (``<mimic>`` joints and their leaders, joints named for a finger, jaw, gripper ...,
a prismatic joint sliding across the wrist axis); else the child link of the arm's last joint
(in a URDF with several chains, such as an arm beside a positioner, the longest one is the
arm). When that is a guess (a jaw known only by its axis, chains of equal length) a
:class:`URDFWarning` names the frame; ``from_urdf(payload_frame=...)`` sets it. The payload is
added to the body of the joint that carries that frame, for inverse and forward dynamics
alike.

Models are not thread-safe: each holds one pinocchio ``Data``; use :meth:`RobotModel.copy`
per thread.
"""
import contextlib
import copy
from dataclasses import dataclass
import math
import os
from pathlib import Path
import warnings
import xml.etree.ElementTree as ET

import numpy as np
import pinocchio as pin
from twin_sim.friction import FrictionError, FrictionModel
from twin_sim.yaml_numbers import load_yaml
import yaml

__all__ = [
    'DEFAULT_FT_LINK', 'GRAVITY', 'ParametersError', 'Payload', 'RobotModel', 'URDFError',
    'URDFWarning', 'parse_locked_joints',
]

GRAVITY = np.array([0.0, 0.0, -9.81])
"""Gravity in the world frame, m/s^2."""

DEFAULT_FT_LINK = 'ft_sensor'
MOVABLE_TYPES = ('revolute', 'prismatic', 'continuous')
SUPPORTED_TYPES = MOVABLE_TYPES + ('fixed',)
PARAMS_KEY = 'robot_twin_dynamics'
PARAMS_VERSION = 1
#: the sections of an identified-dynamics document (a document without its top key
#: :data:`PARAMS_KEY` must have one of them to count as one)
PARAMS_SECTIONS = ('version', 'urdf', 'joints', 'friction_model', 'friction', 'bodies',
                   'armature')
_UNLIMITED = 1e10  # position limit written into pinocchio's XML for continuous joints


class URDFError(ValueError):
    """The URDF cannot be used: the message names the file, element and what to change."""


class URDFWarning(UserWarning):
    """The URDF loads, but something in it is suspicious (named in the message)."""


class ParametersError(ValueError):
    """An identified-dynamics file (params.yaml) is malformed (names the field)."""


@dataclass(frozen=True, eq=False)
class Payload:
    """
    A rigid payload carried by the tool.

    Parameters
    ----------
    mass : float, kg
        Payload mass (>= 0).
    com : (3,) m
        Centre of mass in the payload frame (:attr:`RobotModel.payload_frame`, the
        ``ft_sensor`` frame when the robot has a force-torque sensor).
    inertia : (3, 3) kg·m^2
        Rotational inertia about the centre of mass, axes of the payload frame (symmetric,
        positive semi-definite). Default zero (a point mass).

    """

    mass: float
    com: np.ndarray = (0.0, 0.0, 0.0)
    inertia: np.ndarray = None

    def __post_init__(self):
        mass = float(self.mass)
        com = np.array(self.com, dtype=float)
        inertia = np.zeros((3, 3)) if self.inertia is None else np.array(self.inertia, float)
        if not (math.isfinite(mass) and mass >= 0.0):
            raise ValueError(f'payload mass must be a finite number >= 0 kg, got {self.mass}')
        if com.shape != (3,) or not np.all(np.isfinite(com)):
            raise ValueError(f'payload com must be 3 finite numbers (m), got {self.com}')
        if inertia.shape != (3, 3) or not np.all(np.isfinite(inertia)):
            raise ValueError(f'payload inertia must be a finite (3, 3) matrix, got {inertia}')
        if not np.allclose(inertia, inertia.T, atol=1e-12):
            raise ValueError(f'payload inertia must be symmetric, got {inertia.tolist()}')
        if np.linalg.eigvalsh(inertia)[0] < -1e-12:
            raise ValueError('payload inertia must be positive semi-definite, got '
                             f'{inertia.tolist()}')
        object.__setattr__(self, 'mass', mass)
        object.__setattr__(self, 'com', com)
        object.__setattr__(self, 'inertia', inertia)

    @classmethod
    def from_components(cls, mass, com, ixx, ixy, ixz, iyy, iyz, izz):
        """Return a payload from six inertia components, kg·m^2, as geometry_msgs/Inertia has."""
        return cls(mass, com, [[ixx, ixy, ixz], [ixy, iyy, iyz], [ixz, iyz, izz]])

    def inertia_components(self):
        """Return ``(ixx, ixy, ixz, iyy, iyz, izz)``, kg·m^2: :meth:`from_components`'s."""
        i = self.inertia
        return tuple(float(i[r, c]) for r, c in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)))

    def same_as(self, other):
        """Whether ``other`` (a Payload or None) is this load, to rounding (1e-9)."""
        return other is not None and abs(other.mass - self.mass) <= 1e-9 \
            and np.allclose(other.com, self.com, rtol=0.0, atol=1e-9) \
            and np.allclose(other.inertia, self.inertia, rtol=0.0, atol=1e-9)

    def spatial_inertia(self):
        """Return the payload as a pinocchio ``Inertia`` in the payload frame."""
        return pin.Inertia(self.mass, self.com, self.inertia)


# --------------------------------------------------------------------------------------------
# URDF parsing and checks

@dataclass
class _Joint:
    name: str
    type: str  # noqa: A003 (public field, the URDF 'type' attribute)
    parent: str
    child: str
    origin: pin.SE3
    lower: float = -math.inf
    upper: float = math.inf
    velocity: float = math.inf
    effort: float = math.inf
    damping: float = 0.0
    friction: float = 0.0
    axis: np.ndarray = None  # unit vector in the joint frame (movable joints)
    mimic: tuple = None      # (leader joint, multiplier, offset) of a <mimic> joint


@dataclass
class _Urdf:
    path: Path
    root: ET.Element
    links: dict          # link name -> pin.Inertia in the link frame, or None
    joints: dict         # joint name -> _Joint (document order)
    parent_joint: dict   # link name -> _Joint
    root_link: str
    locked: dict = None  # joint name -> position, for joints made fixed (see _lock_joints)
    tool: tuple = None   # (payload link, note or None): _payload_link, before any locking


def _floats(text, count, what):
    try:
        values = [float(x) for x in (text or '').split()]
    except ValueError:
        raise URDFError(f'{what}: expected {count} numbers, got {text!r}') from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise URDFError(f'{what}: expected {count} finite numbers, got {text!r}')
    return values


def _attr_float(elem, attr, what, default=None):
    text = elem.get(attr)
    if text is None:
        if default is None:
            raise URDFError(f'{what}: missing attribute {attr!r}')
        return default
    return _floats(text, 1, f'{what} {attr}')[0]


def _origin(elem, what):
    origin = elem.find('origin')
    if origin is None:
        return pin.SE3.Identity()
    xyz = _floats(origin.get('xyz', '0 0 0'), 3, f'{what} <origin xyz>')
    rpy = _floats(origin.get('rpy', '0 0 0'), 3, f'{what} <origin rpy>')
    return pin.SE3(pin.rpy.rpyToMatrix(*rpy), np.array(xyz))


def _parse_inertial(link, path):
    name = link.get('name')
    inertial = link.find('inertial')
    if inertial is None:
        return None
    what = f'{path}: link {name!r} <inertial>'
    mass_elem = inertial.find('mass')
    if mass_elem is None:
        raise URDFError(f'{what} has no <mass>; add <mass value="..."/> (kg)')
    mass = _attr_float(mass_elem, 'value', f'{what} <mass>')
    if mass < 0.0:
        raise URDFError(f'{what}: mass {mass} kg is negative')
    inertia_elem = inertial.find('inertia')
    if inertia_elem is None:
        raise URDFError(f'{what} has no <inertia>; add ixx, ixy, ixz, iyy, iyz, izz (kg m^2)')
    c = {k: _attr_float(inertia_elem, k, f'{what} <inertia>')
         for k in ('ixx', 'ixy', 'ixz', 'iyy', 'iyz', 'izz')}
    tensor = np.array([[c['ixx'], c['ixy'], c['ixz']],
                       [c['ixy'], c['iyy'], c['iyz']],
                       [c['ixz'], c['iyz'], c['izz']]])
    eig = np.linalg.eigvalsh(tensor)
    tol = 1e-9 * max(1.0, float(np.abs(eig).max()))
    if eig[0] < -tol:
        raise URDFError(f'{what}: inertia tensor is not positive semi-definite (eigenvalues '
                        f'{eig.tolist()} kg m^2); fix ixx..izz')
    if eig[0] + eig[1] < eig[2] - tol:
        warnings.warn(f'{what}: inertia violates the triangle inequality (principal moments '
                      f'{eig.tolist()} kg m^2): physically impossible, kept as written '
                      "(PyBullet's importer zeroes such a tensor)",
                      URDFWarning, stacklevel=4)
    if mass == 0.0 and eig[2] > 0.0:
        warnings.warn(f'{what}: mass 0 with a non-zero inertia tensor; kept as written '
                      '(pinocchio uses the tensor, other engines may not)',
                      URDFWarning, stacklevel=4)
    origin = _origin(inertial, what)
    rot = origin.rotation
    return pin.Inertia(mass, origin.translation.copy(), rot @ tensor @ rot.T)


def _parse_joint(elem, links, path):
    name = elem.get('name')
    what = f'{path}: joint {name!r}'
    if not name:
        raise URDFError(f'{path}: a <joint> has no name attribute')
    jtype = elem.get('type')
    if jtype in ('floating', 'planar'):
        raise URDFError(f'{what} has type {jtype!r}, which robot_twin does not support: the '
                        'twin models a fixed-base arm with one coordinate per joint. Make the '
                        'base fixed (type="fixed") or remove the joint.')
    if jtype not in SUPPORTED_TYPES:
        raise URDFError(f'{what} has unknown type {jtype!r}; supported: {SUPPORTED_TYPES}')
    ends = {}
    for tag in ('parent', 'child'):
        sub = elem.find(tag)
        link = sub.get('link') if sub is not None else None
        if link is None:
            raise URDFError(f'{what} has no <{tag} link="..."/>')
        if link not in links:
            raise URDFError(f'{what}: {tag} link {link!r} is not defined in the URDF')
        ends[tag] = link
    joint = _Joint(name, jtype, ends['parent'], ends['child'], _origin(elem, what))
    if jtype == 'fixed':
        return joint
    axis_elem = elem.find('axis')
    axis = _floats(axis_elem.get('xyz', '1 0 0') if axis_elem is not None else '1 0 0', 3,
                   f'{what} <axis xyz>')
    if np.linalg.norm(axis) < 1e-9:
        raise URDFError(f'{what}: <axis xyz> is zero; give the joint axis direction')
    joint.axis = np.array(axis) / np.linalg.norm(axis)
    mimic = elem.find('mimic')
    if mimic is not None:
        joint.mimic = (mimic.get('joint'),
                       _attr_float(mimic, 'multiplier', f'{what} <mimic>', 1.0),
                       _attr_float(mimic, 'offset', f'{what} <mimic>', 0.0))
    limit = elem.find('limit')
    if jtype in ('revolute', 'prismatic'):
        if limit is None:
            raise URDFError(f'{what} ({jtype}) has no <limit>; add <limit lower="..." '
                            'upper="..." effort="..." velocity="..."/> (SI units)')
        for attr in ('lower', 'upper', 'effort', 'velocity'):
            if limit.get(attr) is None:
                raise URDFError(f'{what} ({jtype}) <limit> lacks {attr!r}; robot_twin needs '
                                'position, velocity and effort limits (SI units)')
        joint.lower = _attr_float(limit, 'lower', f'{what} <limit>')
        joint.upper = _attr_float(limit, 'upper', f'{what} <limit>')
        if not joint.lower < joint.upper:
            raise URDFError(f'{what}: <limit> lower {joint.lower} must be below upper '
                            f'{joint.upper}')
    if limit is not None and limit.get('effort') is not None:
        joint.effort = _attr_float(limit, 'effort', f'{what} <limit>')
    if limit is not None and limit.get('velocity') is not None:
        joint.velocity = _attr_float(limit, 'velocity', f'{what} <limit>')
    for attr in ('effort', 'velocity'):
        if not getattr(joint, attr) > 0.0:
            raise URDFError(f'{what}: <limit {attr}> must be > 0, got {getattr(joint, attr)}')
    if jtype == 'continuous' and math.inf in (joint.effort, joint.velocity):
        warnings.warn(f'{what} (continuous) has no effort/velocity limit; using inf (the '
                      'governor cannot limit it)', URDFWarning, stacklevel=4)
    dynamics = elem.find('dynamics')
    if dynamics is not None:
        joint.damping = _attr_float(dynamics, 'damping', f'{what} <dynamics>', 0.0)
        joint.friction = _attr_float(dynamics, 'friction', f'{what} <dynamics>', 0.0)
        if joint.damping < 0.0 or joint.friction < 0.0:
            raise URDFError(f'{what}: <dynamics> damping and friction must be >= 0')
    return joint


def _package_roots(package_dirs):
    roots = [Path(d) for d in (package_dirs or ())]
    for var in ('ROS_PACKAGE_PATH',):
        roots += [Path(d) for d in os.environ.get(var, '').split(os.pathsep) if d]
    roots += [Path(d) / 'share' for d in os.environ.get('AMENT_PREFIX_PATH', '').split(
        os.pathsep) if d]
    return roots


def _mesh_resolves(filename, urdf_dir, roots):
    if filename.startswith('package://'):
        rest = filename[len('package://'):]
        package, _, relative = rest.partition('/')
        candidates = [urdf_dir / rest, urdf_dir / relative]
        for root in roots:
            candidates += [root / package / relative]
            if root.name == package:
                candidates.append(root / relative)
    elif filename.startswith('file://'):
        candidates = [Path(filename[len('file://'):])]
    else:
        candidates = [urdf_dir / filename]
    return any(c.is_file() for c in candidates)


def _check_meshes(robot, path, package_dirs):
    roots = _package_roots(package_dirs)
    missing = []
    for link in robot.findall('link'):
        for mesh in link.findall('./visual/geometry/mesh') + link.findall(
                './collision/geometry/mesh'):
            filename = mesh.get('filename', '')
            if not _mesh_resolves(filename, path.parent, roots):
                missing.append(f'{link.get("name")}: {filename}')
    if missing:
        shown = '; '.join(missing[:5]) + (f'; ... ({len(missing)} in all)'
                                          if len(missing) > 5 else '')
        warnings.warn(f'{path}: mesh files not found ({shown}). Dynamics do not need them; '
                      'pass package_dirs=[...] for package:// paths if a viewer does.',
                      URDFWarning, stacklevel=4)


_XACRO_NS = '{http://www.ros.org/wiki/xacro}'


def _is_xacro(robot):
    """Whether the ``<robot>`` tree still has xacro elements or ``${...}`` expressions."""
    for elem in robot.iter():
        if isinstance(elem.tag, str) and elem.tag.startswith(_XACRO_NS):
            return True
        if any('${' in value for value in elem.attrib.values()):
            return True
    return False


def _parse_urdf(path, package_dirs):
    path = Path(path)
    if path.is_dir():
        raise URDFError(f'URDF {path} is a directory; give the .urdf file')
    if not path.is_file():
        raise URDFError(f'URDF file not found: {path}')
    try:
        robot = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise URDFError(f'{path}: not valid XML ({exc})') from None
    if robot.tag != 'robot':
        raise URDFError(f'{path}: root element is <{robot.tag}>, expected <robot>')
    if _is_xacro(robot):
        # never suggest writing over the input (`xacro z.urdf > z.urdf` empties it first)
        out = path.name.removesuffix('.xacro').removesuffix('.urdf') + '.urdf'
        if out == path.name:
            out = out.removesuffix('.urdf') + '.expanded.urdf'
        raise URDFError(f'{path}: this is a xacro file (xacro elements or ${{...}} expressions), '
                        f'not a URDF; expand it first, e.g. `xacro {path.name} > {out}` (with '
                        'the arguments your robot needs), and give the twin the result')
    links = {}
    for link in robot.findall('link'):
        name = link.get('name')
        if not name:
            raise URDFError(f'{path}: a <link> has no name attribute')
        if name in links:
            raise URDFError(f'{path}: link {name!r} is defined twice')
        links[name] = _parse_inertial(link, path)
    if not links:
        raise URDFError(f'{path}: the URDF defines no <link>')
    joints, parent_joint = {}, {}
    for elem in robot.findall('joint'):
        joint = _parse_joint(elem, links, path)
        if joint.name in joints:
            raise URDFError(f'{path}: joint {joint.name!r} is defined twice')
        if joint.child in parent_joint:
            raise URDFError(f'{path}: link {joint.child!r} is the child of two joints '
                            f'({parent_joint[joint.child].name!r}, {joint.name!r})')
        joints[joint.name] = joint
        parent_joint[joint.child] = joint
    for joint in joints.values():
        leader = joints.get(joint.mimic[0]) if joint.mimic else None
        if joint.mimic and (leader is None or leader.type == 'fixed' or leader is joint):
            warnings.warn(f'{path}: joint {joint.name!r} <mimic joint={joint.mimic[0]!r}> does '
                          'not name another moving joint of the URDF; ignored',
                          URDFWarning, stacklevel=3)
            joint.mimic = None
    roots = [name for name in links if name not in parent_joint]
    if len(roots) != 1:
        raise URDFError(f'{path}: expected one root link, found {roots or "none (a cycle)"}')
    urdf = _Urdf(path, robot, links, joints, parent_joint, roots[0])
    reachable = {roots[0]}
    for link in _subtree(urdf, roots[0]):
        reachable.add(link)
    if len(reachable) != len(links):
        raise URDFError(f'{path}: links {sorted(set(links) - reachable)} are not connected '
                        f'to the root link {roots[0]!r} (a cycle?)')
    _check_massless_bodies(urdf)
    _check_meshes(robot, path, package_dirs)
    return urdf


def _children(urdf, link):
    return [j for j in urdf.joints.values() if j.parent == link]


def _subtree(urdf, link, fixed_only=False):
    """Links below ``link`` (not including it), depth first; optionally only fixed joints."""
    out, stack = [], [link]
    while stack:
        for joint in _children(urdf, stack.pop()):
            if fixed_only and joint.type != 'fixed':
                continue
            out.append(joint.child)
            stack.append(joint.child)
    return out


#: Words that mark a joint (or the link it moves) as part of a gripper, not of the arm.
GRIPPER_WORDS = ('finger', 'jaw', 'gripper', 'knuckle', 'claw', 'pincer', 'thumb')
#: Moving joints in a row that a gripper's finger has at most (Robotiq: knuckle, finger, tip).
MAX_FINGER_JOINTS = 4


def _depths(urdf):
    """``{link: most moving joints on a path from it to a leaf}``."""
    depth = {}
    for link in reversed([urdf.root_link] + _subtree(urdf, urdf.root_link)):
        depth[link] = max((int(j.type != 'fixed') + depth[j.child]
                           for j in _children(urdf, link)), default=0)
    return depth


def _root_rotation(urdf, link):
    """Rotation root <- ``link`` with every joint at zero."""
    rotation = np.eye(3)
    while link in urdf.parent_joint:
        joint = urdf.parent_joint[link]
        rotation = joint.origin.rotation @ rotation
        link = joint.parent
    return rotation


def _payload_link(urdf):
    """
    Return ``(link, note)``: where a payload hangs without a sensor; ``note`` says why if unsure.

    The arm's chain is followed from the root. A link after the first moving joint where it
    branches into chains of at most :data:`MAX_FINGER_JOINTS` joints is a gripper's hand (one
    before any moving joint only if they are all gripper joints, below): the payload hangs
    there. Otherwise the branch with the most joints goes on (the others are other machines:
    a turntable, a positioner). At the chain's end, gripper joints are left out: ``<mimic>``
    joints and their leaders, joints named for a gripper (:data:`GRIPPER_WORDS`, in the
    joint's or its link's name), and a prismatic joint after the arm's last revolute joint
    that slides across that joint's axis (a jaw). The payload hangs on the link that carries
    the first of them, else on the child of the chain's last joint. ``note`` is None when the
    choice is clear (gripper joints known by name or ``<mimic>``, a chain that does not branch
    or branches into one longest chain).
    """
    mimic = {j.name for j in urdf.joints.values() if j.mimic} | {
        j.mimic[0] for j in urdf.joints.values() if j.mimic}
    depth = _depths(urdf)

    def below(joint):
        return int(joint.type != 'fixed') + depth[joint.child]

    def named(joint):
        text = f'{joint.name} {joint.child}'.lower()
        return joint.name in mimic or any(word in text for word in GRIPPER_WORDS)

    def moving_joints(joint):
        links = [joint.child] + _subtree(urdf, joint.child)
        return [urdf.parent_joint[link] for link in links
                if urdf.parent_joint[link].type != 'fixed']

    link, chain, notes = urdf.root_link, [], []
    while True:
        branches = [j for j in _children(urdf, link) if below(j) > 0]
        if not branches:
            break
        if len(branches) > 1:
            deepest = max(below(j) for j in branches)
            longest = [j for j in branches if below(j) == deepest]
            fingers = [any(map(named, moving_joints(j))) for j in branches]
            if deepest <= MAX_FINGER_JOINTS and (chain or all(
                    all(map(named, moving_joints(j))) for j in branches)):
                if not any(fingers):
                    notes.append(f'the chain branches at {link!r} into '
                                 f'{len(branches)} short chains, taken for the fingers of a hand')
                return link, '; '.join(notes) or None
            if len(longest) > 1:
                if chain:
                    notes.append(f'the chain branches at {link!r} into {len(longest)} chains of '
                                 f'{deepest} joints')
                    return link, '; '.join(notes)
                notes.append(f'{link!r} carries {len(longest)} chains of {deepest} joints; the '
                             f'first ({longest[0].name!r} ...) is taken for the arm')
            branches = longest[:1]
        joint = branches[0]
        if joint.type != 'fixed':
            chain.append(joint)
        link = joint.child
    gripper = []
    while chain:
        joint = chain[-1]
        if not named(joint):
            revolute = [j for j in chain[:-1] if j.type != 'prismatic']
            if joint.type != 'prismatic' or not revolute:
                break
            slide = _root_rotation(urdf, joint.child) @ joint.axis
            turn = _root_rotation(urdf, revolute[-1].child) @ revolute[-1].axis
            if abs(float(slide @ turn)) > 0.9:      # along the wrist axis: a tool's own axis
                break
            notes.append(f'prismatic joint {joint.name!r} after the wrist is taken for a '
                         'gripper jaw')
        gripper.insert(0, chain.pop())
    if gripper and not chain:
        notes.append('every joint of the chain is taken for a gripper joint')
    if gripper:
        link = gripper[0].parent
    elif chain:
        link = chain[-1].child
    return link, '; '.join(notes) or None


def _mass(urdf, link):
    inertia = urdf.links[link]
    return 0.0 if inertia is None else inertia.mass


def _check_massless_bodies(urdf):
    for joint in urdf.joints.values():
        if joint.type == 'fixed':
            continue
        body = [joint.child] + _subtree(urdf, joint.child, fixed_only=True)
        if any(urdf.links[link] is not None for link in body):
            continue
        beyond = sum(_mass(urdf, link) for link in _subtree(urdf, joint.child))
        if beyond > 0.0:
            warnings.warn(f'{urdf.path}: link {joint.child!r}, moved by joint {joint.name!r}, '
                          'has no <inertial>; treated as massless (PyBullet would give it 1 kg '
                          'and unit inertia)', URDFWarning, stacklevel=4)
        else:
            raise URDFError(f'{urdf.path}: link {joint.child!r}, moved by {joint.type} joint '
                            f'{joint.name!r}, has no <inertial> and nothing beyond it has mass, '
                            "so the joint's dynamics are undefined. Add an <inertial> element "
                            '(mass, origin, inertia) to the link.')


#: A joint whose articulated inertia (kg·m^2, or kg for a prismatic joint) is at most this,
#: or at most this fraction of its mass-matrix diagonal, moves no mass (singular M(q)).
MIN_JOINT_INERTIA = 1e-10
MIN_JOINT_INERTIA_RATIO = 1e-9
MASS_CHECK_CONFIGURATIONS = 4   # random configurations besides the reference one


def _articulated_inertias(mass_matrix, parents):
    """
    Inertia each joint moves with every joint beyond it free (the D of ``M = U D U^T``).

    ``parents[i]`` is joint i's parent joint index (-1 at the root); joints are in tree order.
    ``D_i`` is the Schur complement of ``M`` over the joints of ``i``'s subtree: positive for
    every joint exactly when ``M`` is positive definite, and zero for a joint that moves no
    mass (or no inertia about its axis).
    """
    n = len(parents)
    subtree = [[] for _ in range(n)]
    for i in range(n - 1, -1, -1):
        k = parents[i]
        while k >= 0:
            subtree[k].append(i)
            k = parents[k]
    out = np.empty(n)
    for i in range(n):
        rest = sorted(subtree[i])
        value = mass_matrix[i, i]
        if rest:
            coupling = mass_matrix[i, rest]
            block = mass_matrix[np.ix_(rest, rest)]
            value -= coupling @ np.linalg.pinv(block, rcond=1e-12, hermitian=True) @ coupling
        out[i] = value
    return out


def _check_moving_mass(urdf, model, lower, upper):
    """
    Raise URDFError naming the joints that move no mass (a singular mass matrix).

    Checked at the reference configuration (0, clipped into the limits) and a few random ones
    within the limits: every joint's articulated inertia (:func:`_articulated_inertias`) must
    be positive, else forward dynamics is NaN.
    """
    n = model.nv
    if n == 0:
        return
    parents = [model.parents[jid] - 1 for jid in range(1, model.njoints)]
    lo = np.where(np.isfinite(lower), lower, -math.pi)
    hi = np.where(np.isfinite(upper), upper, math.pi)
    rng = np.random.default_rng(0)
    configurations = [np.clip(0.0, lo, hi)] + [rng.uniform(lo, hi)
                                               for _ in range(MASS_CHECK_CONFIGURATIONS)]
    data = model.createData()
    bad = {}
    for q in configurations:
        upper_m = np.triu(pin.crba(model, data, q))
        mass_matrix = upper_m + np.triu(upper_m, 1).T
        inertia = _articulated_inertias(mass_matrix, parents)
        limit = np.maximum(MIN_JOINT_INERTIA, MIN_JOINT_INERTIA_RATIO * np.diag(mass_matrix))
        for i in np.flatnonzero(~(inertia > limit)):
            bad.setdefault(model.names[int(i) + 1], q)
    if not bad:
        return
    problems = [_massless_joint_text(urdf, urdf.joints[name], q, q is configurations[0])
                for name, q in bad.items()]
    first = urdf.joints[next(iter(bad))]
    raise URDFError(f'{urdf.path}: {"; ".join(problems)}: the mass matrix is singular and '
                    'forward dynamics gives NaN. Give the link a small mass and inertia, e.g. '
                    f'<mass value="0.01"/> and ixx=iyy=izz="1e-6" (kg, kg m^2) on '
                    f'{first.child!r}, or make the joint fixed if it does not move')


def _massless_joint_text(urdf, joint, q, reference):
    links = [joint.child] + _subtree(urdf, joint.child)
    mass = sum(_mass(urdf, link) for link in links)
    shown = ', '.join(repr(link) for link in links[:3]) + (', ...' if len(links) > 3 else '')
    if mass <= 0.0:
        what = f'moves no mass (links {shown} have mass 0 or no <inertial>)'
    elif joint.type == 'prismatic':
        what = (f'moves no mass of its own along its axis (links {shown}: {mass:g} kg in all, '
                'free to slide through a later joint)')
    else:
        what = (f'moves {mass:g} kg (links {shown}) but no inertia about its axis (point '
                'masses on the axis, or bodies free to turn through a later joint)')
    where = '' if reference else (' at q = ' + np.array2string(
        np.asarray(q), precision=3, separator=', ', max_line_width=10 ** 6))
    return f'joint {joint.name!r} ({joint.type}) {what}{where}'


def parse_locked_joints(text):
    """
    Read a ``locked_joints`` setting: ``"name, name=position, ..."`` -> ``{name: position}``.

    A joint without a position is locked at 0 (or the limit nearest to it): None in the
    result. Raises ValueError naming a malformed item.
    """
    out = {}
    for item in (text or '').split(','):
        item = item.strip()
        if not item:
            continue
        name, _, value = (part.strip() for part in item.partition('='))
        if not name:
            raise ValueError(f'locked_joints item {item!r}: expected <joint> or '
                             '<joint>=<position>')
        if value:
            try:
                position = float(value)
            except ValueError:
                position = math.nan
            if not math.isfinite(position):
                raise ValueError(f'locked_joints item {item!r}: {value!r} is not a position '
                                 '(rad, or m for a prismatic joint)')
            out[name] = position
        else:
            out[name] = None
    return out


def _lock_joints(urdf, locked):
    """
    Make the joints of ``locked`` ({name: position or None}) fixed where they stand.

    For joints the robot does not stream (a gripper on a topic of its own): the twin's model
    then moves without them, with the bodies they carry rigidly attached at that position.
    Changes ``urdf`` (its joints and XML) in place.
    """
    movable = [n for n, j in urdf.joints.items() if j.type != 'fixed']
    done = {}
    for name, position in locked.items():
        joint = urdf.joints.get(name)
        if joint is None or joint.type == 'fixed':
            raise URDFError(f'{urdf.path}: locked joint {name!r} is not a moving joint of the '
                            f'URDF; moving joints are {movable}')
        if position is None:
            position = min(max(0.0, joint.lower), joint.upper)
        elif joint.type != 'continuous' and not joint.lower <= position <= joint.upper:
            raise URDFError(f'{urdf.path}: locked joint {name!r} at {position} is outside its '
                            f'limits [{joint.lower}, {joint.upper}]')
        elem = next(e for e in urdf.root.findall('joint') if e.get('name') == name)
        axis_elem = elem.find('axis')
        axis = _floats(axis_elem.get('xyz', '1 0 0') if axis_elem is not None else '1 0 0', 3,
                       f'joint {name!r} <axis xyz>')
        axis = axis / np.linalg.norm(axis)
        if joint.type == 'prismatic':
            motion = pin.SE3(np.eye(3), axis * position)
        else:
            motion = pin.SE3(pin.AngleAxis(position, axis).matrix(), np.zeros(3))
        joint.origin = joint.origin * motion
        joint.type = 'fixed'
        joint.mimic = None
        elem.set('type', 'fixed')
        for tag in ('axis', 'limit', 'dynamics', 'mimic', 'origin', 'calibration',
                    'safety_controller'):
            for old in elem.findall(tag):
                elem.remove(old)
        ET.SubElement(elem, 'origin',
                      xyz=' '.join(repr(float(v)) for v in joint.origin.translation),
                      rpy=' '.join(repr(float(v)) for v in pin.rpy.matrixToRpy(
                          joint.origin.rotation)))
        done[name] = position
    urdf.locked = done


def _build_pinocchio(urdf):
    continuous = [j for j in urdf.joints.values() if j.type == 'continuous']
    try:
        if not continuous and not urdf.locked:
            return pin.buildModelFromUrdf(str(urdf.path))
        root = copy.deepcopy(urdf.root)
        for elem in root.findall('joint'):
            if elem.get('type') != 'continuous':
                continue
            elem.set('type', 'revolute')
            for old in elem.findall('limit'):
                elem.remove(old)
            joint = urdf.joints[elem.get('name')]
            ET.SubElement(elem, 'limit', lower=str(-_UNLIMITED), upper=str(_UNLIMITED),
                          effort=str(min(joint.effort, _UNLIMITED)),
                          velocity=str(min(joint.velocity, _UNLIMITED)))
        return pin.buildModelFromXML(ET.tostring(root, encoding='unicode'))
    except (RuntimeError, ValueError) as exc:
        raise URDFError(f'{urdf.path}: pinocchio cannot build a model: {exc}') from None


# --------------------------------------------------------------------------------------------
# The model

#: Plausibility bounds on an identified-dynamics file (:meth:`RobotModel.apply_parameters`):
#: finite values can still be impossible (1e308 kg, or a params file of another robot). They
#: are far outside any identification result of the robot the URDF describes.
MAX_MASS_RATIO = 1000.0       # a body's mass at most this x its URDF mass (or x 1 kg)
MAX_BODY_SIZE_M = 10.0        # centre of mass and radius of gyration from the joint, m
MAX_PAYLOAD_REACH_M = 2.0     # a payload's centre of mass and radius of gyration, m
MAX_FRICTION_RATIO = 10.0     # friction torque at most this x the joint's effort limit


class RobotModel:
    """
    Rigid-body model of a fixed-base arm; build it with :meth:`from_urdf`.

    Attributes
    ----------
    urdf_path : str
        The URDF it was built from.
    locked_joints : dict
        ``{joint: position}`` of the URDF joints held fixed (not in ``joint_names``).
    joint_names : list of str
        Movable joints in model order (kinematic tree, as pinocchio orders them).
    joint_types : list of str
        ``revolute``, ``prismatic`` or ``continuous`` per joint.
    n : int
        Number of joints.
    lower, upper : (n,) rad (m for prismatic)
        Position limits (``-inf``/``inf`` for continuous joints).
    velocity_limit : (n,) rad/s (m/s)
    effort_limit : (n,) N·m (N)
    mimic_joints : dict
        ``{joint: (leader, multiplier, offset)}`` of the model's joints with a URDF ``<mimic>``
        (``position = multiplier * leader + offset``); the leader may be a locked joint. The
        model moves them independently; :func:`twin_sim.excitation.design_excitation` couples
        them.
    damping : (n,) N·m·s/rad
        URDF ``<dynamics damping>`` (viscous friction) as written in the URDF.
    friction : (n,) N·m
        URDF ``<dynamics friction>`` (Coulomb friction) as written in the URDF.
    friction_model : FrictionModel
        The active friction model: from ``damping``/``friction`` until identified parameters
        are applied (:meth:`apply_parameters`).
    ft_frame : str or None
        The force-torque sensor link, or None if the robot has none.
    payload_frame : str
        Frame of :class:`Payload` coordinates: ``ft_frame``, else the gripper's hand or the last
        arm joint's child link (module docstring), or what ``from_urdf`` was given.
    payload : Payload or None
        The payload this model carries (see :meth:`with_payload`).
    pin_model, pin_data : pinocchio.Model, pinocchio.Data
        The pinocchio model (payload included in the carrying body) and its workspace.

    Notes
    -----
    The dynamics methods are rigid-body only: they include neither joint friction nor motor
    inertia (see :mod:`twin_sim.friction` and :mod:`twin_sim.predictor`).

    """

    def __init__(self, urdf, pin_model, ft_link):
        self.urdf_path = str(urdf.path)
        self.locked_joints = dict(urdf.locked or {})
        self._urdf_root = urdf.root          # as read, locked joints made fixed; never changed
        self.root_link = urdf.root_link
        self.pin_model = pin_model
        self.pin_data = pin_model.createData()
        names = list(pin_model.names)[1:]
        for jid in range(1, pin_model.njoints):
            joint = pin_model.joints[jid]
            if joint.nq != 1 or joint.nv != 1:
                raise URDFError(f'{urdf.path}: joint {names[jid - 1]!r} has {joint.nq} '
                                'coordinates; robot_twin supports one per joint')
        missing = [name for name in names if name not in urdf.joints]
        if missing:
            raise URDFError(f'{urdf.path}: pinocchio joints {missing} not found in the URDF')
        joints = [urdf.joints[name] for name in names]
        self.joint_names = names
        self.joint_types = [j.type for j in joints]
        self.n = len(names)
        self.lower = np.array([j.lower if j.type != 'continuous' else -math.inf for j in joints])
        self.upper = np.array([j.upper if j.type != 'continuous' else math.inf for j in joints])
        self.velocity_limit = np.array([j.velocity for j in joints])
        self.effort_limit = np.array([j.effort for j in joints])
        self.damping = np.array([j.damping for j in joints])
        self.friction = np.array([j.friction for j in joints])
        self.mimic_joints = {j.name: j.mimic for j in joints if j.mimic}
        self.friction_model = FrictionModel.from_urdf(self)
        self.payload = None
        self._nominal = [pin_model.inertias[i].copy() for i in range(pin_model.njoints)]
        _check_moving_mass(urdf, pin_model, self.lower, self.upper)
        self._setup_ft(urdf, ft_link)

    @classmethod
    def from_urdf(cls, path, *, ft_link=DEFAULT_FT_LINK, package_dirs=None, locked=None,
                  payload_frame=None):
        """
        Load and check a URDF.

        Parameters
        ----------
        path : str or Path
            The URDF file.
        ft_link : str or None
            Name of the force-torque sensor link. If the URDF has no such link the model has
            no sensor (``ft_frame is None``), unless a non-default name was asked for, which
            raises :class:`URDFError`. None: no sensor.
        package_dirs : list of str, optional
            Directories searched for ``package://`` meshes (besides ``ROS_PACKAGE_PATH``,
            ``AMENT_PREFIX_PATH`` and the URDF's folder); only used to report missing meshes.
        locked : dict, optional
            ``{joint: position}`` (rad, or m; None: 0 or the nearest limit): joints held fixed
            at that position, left out of the model (a gripper the robot streams on a topic of
            its own). See :func:`parse_locked_joints`.
        payload_frame : str, optional
            The link a :class:`Payload` hangs on, instead of the one the model finds (see the
            module docstring); not with a force-torque sensor, whose frame it is then.

        Raises
        ------
        URDFError
            Missing file, invalid XML, unsupported joint, missing limits, bad inertia, a
            moving joint with undefined dynamics (see the module docstring).

        """
        urdf = _parse_urdf(path, package_dirs)
        urdf.tool = _payload_link(urdf)      # (locked fingers still hang on the hand)
        if locked:
            _lock_joints(urdf, locked)
        for joint in urdf.joints.values():       # (a locked joint has lost its <mimic>)
            if joint.mimic:
                warnings.warn(f'{urdf.path}: joint {joint.name!r} has <mimic> (follows '
                              f'{joint.mimic[0]!r}); it is modelled as an independent joint',
                              URDFWarning, stacklevel=2)
        if payload_frame is not None and payload_frame not in urdf.links:
            raise URDFError(f'{urdf.path}: payload frame {payload_frame!r} is not a link of '
                            f'the URDF; links are {sorted(urdf.links)}')
        if payload_frame is not None and payload_frame == urdf.root_link:
            raise URDFError(f'{urdf.path}: payload frame {payload_frame!r} is the root link; '
                            'give the link the tool is mounted on')
        if payload_frame is not None:
            urdf.tool = (payload_frame, None)
        if ft_link is not None and ft_link not in urdf.links:
            if ft_link != DEFAULT_FT_LINK:
                raise URDFError(f'{urdf.path}: force-torque sensor link {ft_link!r} not found; '
                                f'links are {sorted(urdf.links)}')
            ft_link = None
        if ft_link is not None and ft_link == urdf.root_link:
            raise URDFError(f'{urdf.path}: the force-torque sensor link {ft_link!r} is the '
                            'root link; it must sit on the arm')
        if ft_link is not None and payload_frame not in (None, ft_link):
            raise URDFError(f'{urdf.path}: payload frame {payload_frame!r}: with a force-torque '
                            f'sensor the payload is given in its frame {ft_link!r}')
        if ft_link is None and urdf.tool[1] is not None:
            warnings.warn(f'{urdf.path}: payload frame {urdf.tool[0]!r} (a guess: '
                          f'{urdf.tool[1]}); if the tool hangs elsewhere, give that link as '
                          'payload_frame', URDFWarning, stacklevel=2)
        return cls(urdf, _build_pinocchio(urdf), ft_link)

    # ---------------------------------------------------------------------- set-up helpers
    def _setup_ft(self, urdf, ft_link):
        model = self.pin_model
        self.ft_frame = ft_link
        self._ft_children = []
        self._ft_entries = None          # (data, its entries that ft_wrench_from_data reads)
        if ft_link is None:
            link = urdf.tool[0] if urdf.tool else urdf.root_link
            frame = model.frames[model.getFrameId(link, pin.BODY)]
            self.payload_frame = link
            self._payload_joint = frame.parentJoint
            self._payload_placement = frame.placement.copy()
            self._ft_joint = None
            self._ft_placement = None
            self._ft_inertia_nominal = None
            self._ft_inertia = None
            return
        frame = model.frames[model.getFrameId(ft_link, pin.BODY)]
        self.payload_frame = ft_link
        self._ft_joint = self._payload_joint = frame.parentJoint
        self._ft_placement = self._payload_placement = frame.placement.copy()
        # Distal rigid bodies: everything fixed below the sensor link, in the sensor frame.
        distal = pin.Inertia.Zero()
        placement = {ft_link: pin.SE3.Identity()}
        stack = [ft_link]
        while stack:
            link = stack.pop()
            for joint in _children(urdf, link):
                if joint.type != 'fixed':
                    self._ft_children.append(model.getJointId(joint.name))
                    continue
                placement[joint.child] = placement[link] * joint.origin
                if urdf.links[joint.child] is not None:
                    distal += placement[joint.child].act(urdf.links[joint.child])
                stack.append(joint.child)
        self._ft_inertia_nominal = distal
        self._ft_inertia = distal.copy()

    def _apply_payload(self, payload):
        """Set the carrying body's inertia (and the sensor's distal inertia) for ``payload``."""
        jid = self._payload_joint
        body = self._nominal[jid].copy()
        distal = None if self._ft_inertia_nominal is None else self._ft_inertia_nominal.copy()
        if payload is not None:
            spatial = payload.spatial_inertia()
            body += self._payload_placement.act(spatial)
            if distal is not None:
                distal += spatial
        self.pin_model.inertias[jid] = body
        self._ft_inertia = distal

    @contextlib.contextmanager
    def _payload_for_call(self, payload):
        if payload is None or payload is self.payload:
            yield
            return
        self._apply_payload(payload)
        try:
            yield
        finally:
            self._apply_payload(self.payload)

    def by_joint_type(self, angular, linear):
        """
        Return an (n,) array: ``linear`` for prismatic joints, ``angular`` for the others.

        For settings whose unit follows the joint (a margin of 0.05 rad is not one of 0.05 m).
        """
        prismatic = np.array([t == 'prismatic' for t in self.joint_types], dtype=bool)
        return np.where(prismatic, float(linear), float(angular))

    @property
    def robot_name(self):
        """Return the URDF's ``<robot name="...">`` ('' when it has none)."""
        return self._urdf_root.get('name') or ''

    @property
    def continuous_joints(self):
        """Names of the joints without position limits (URDF ``continuous``), model order."""
        return [j for j, kind in zip(self.joint_names, self.joint_types) if kind == 'continuous']

    def joint_vector(self, value, name, *, copy=False, finite=True):
        """
        Return ``value`` as an (n,) float array in model joint order, or raise ValueError.

        The one check of a joint vector in twin_sim (the predictor and the mirror use it too).

        Parameters
        ----------
        value : array_like
            One value per model joint.
        name : str
            What it is, for the error message.
        copy : bool
            Return a copy (the caller keeps it while the owner may overwrite its buffer).
        finite : bool
            Also refuse NaN and inf (the 1 kHz path skips this: its samples were validated).

        """
        arr = np.array(value, dtype=float) if copy else np.asarray(value, dtype=float)
        if arr.shape != (self.n,):
            raise ValueError(f'{name} must have shape ({self.n},) in model joint order '
                             f'{self.joint_names}; got shape {arr.shape}')
        if finite and not np.all(np.isfinite(arr)):
            raise ValueError(f'{name} has non-finite values: {arr}')
        return arr

    def urdf_tree(self):
        """
        Return the URDF this model was built from, as an element tree of the caller's own.

        The file's ``<robot>`` element with the :attr:`locked_joints` made fixed where they are
        held (what the model moves), for rewriting into another engine's or model's input.
        """
        return copy.deepcopy(self._urdf_root)

    # ------------------------------------------------------------------------ copies
    def copy(self):
        """Return an independent duplicate (own pinocchio model and data)."""
        other = copy.copy(self)
        other.pin_model = self.pin_model.copy()
        other.pin_data = other.pin_model.createData()
        other._nominal = [inertia.copy() for inertia in self._nominal]
        other.friction_model = self.friction_model.copy()
        for name in ('lower', 'upper', 'velocity_limit', 'effort_limit', 'damping',
                     'friction'):
            setattr(other, name, getattr(self, name).copy())
        other.joint_names = list(self.joint_names)
        other.joint_types = list(self.joint_types)
        other._ft_children = list(self._ft_children)
        other._ft_entries = None
        if self._ft_inertia_nominal is not None:
            other._ft_inertia_nominal = self._ft_inertia_nominal.copy()
        other._apply_payload(other.payload)
        return other

    def with_payload(self, payload):
        """
        Return a duplicate of this model that carries ``payload`` (None: no payload).

        Parameters
        ----------
        payload : Payload or None
            In the :attr:`payload_frame`.

        """
        if payload is not None and not isinstance(payload, Payload):
            raise TypeError(f'payload must be a Payload or None, got {type(payload).__name__}')
        other = self.copy()
        other.payload = payload
        other._apply_payload(payload)
        return other

    def check_payload(self, payload):
        """
        Raise ValueError unless ``payload`` (a :class:`Payload`) is one this arm can carry.

        :class:`Payload` checks that the numbers make a rigid body; this checks that the body
        fits the robot: not heavier than the arm itself (no arm carries that: a wrong unit,
        g for kg, or a mistyped value), centre of mass within :data:`MAX_PAYLOAD_REACH_M` of
        the :attr:`payload_frame`, principal moments that a real body has (each at most the
        sum of the other two) and no larger than that mass at that reach would give.
        """
        arm = float(sum(self.pin_model.inertias[i].mass for i in range(1, self.pin_model.njoints)))
        mass = payload.mass
        if mass > arm:
            raise ValueError(f'a payload of {mass:g} kg is heavier than the arm itself '
                             f'({arm:.3g} kg in the URDF); the mass is in kg')
        # (the largest component first: the norm of 1e300 m overflows to inf)
        reach = float(np.max(np.abs(payload.com)))
        if reach <= MAX_PAYLOAD_REACH_M:
            reach = float(np.linalg.norm(payload.com))
        if reach > MAX_PAYLOAD_REACH_M:
            raise ValueError(f'the payload centre of mass is {reach:.3g} m from '
                             f'{self.payload_frame}, more than {MAX_PAYLOAD_REACH_M:g} m; it is '
                             'given in metres, in that frame')
        moments = np.linalg.eigvalsh(payload.inertia)
        tolerance = 1e-9 + 1e-6 * moments[-1]
        if moments[-1] > moments[0] + moments[1] + tolerance:
            raise ValueError(f'the payload inertia has principal moments {moments.round(6)} '
                             'kg·m^2: no rigid body has one larger than the sum of the other two')
        if moments[-1] > mass * MAX_PAYLOAD_REACH_M ** 2 + tolerance:
            raise ValueError(f'the payload inertia ({moments[-1]:.3g} kg·m^2) is more than '
                             f'{mass:g} kg at {MAX_PAYLOAD_REACH_M:g} m would give; it is about '
                             'the centre of mass, in kg·m^2')

    # ------------------------------------------------------------------------ dynamics
    def inverse_dynamics(self, q, qd, qdd, payload=None):
        """
        Joint torques for a motion (RNEA), without friction.

        Parameters
        ----------
        q : (n,) rad
            Joint positions.
        qd : (n,) rad/s
            Joint velocities.
        qdd : (n,) rad/s^2
            Joint accelerations.
        payload : Payload, optional
            Overrides the model's own :attr:`payload` for this call.

        Returns
        -------
        tau : (n,) N·m
            Joint efforts.

        """
        q, qd, qdd = (self.joint_vector(q, 'q'), self.joint_vector(qd, 'qd'),
                      self.joint_vector(qdd, 'qdd'))
        with self._payload_for_call(payload):
            return pin.rnea(self.pin_model, self.pin_data, q, qd, qdd).copy()

    def gravity(self, q, payload=None):
        """Gravity torques ``g(q)``: (n,) N·m that hold the arm still at ``q`` (n,) rad."""
        q = self.joint_vector(q, 'q')
        with self._payload_for_call(payload):
            return pin.computeGeneralizedGravity(self.pin_model, self.pin_data, q).copy()

    def forward_dynamics(self, q, qd, tau, payload=None):
        """
        Joint accelerations under joint torques (ABA), without friction.

        Parameters
        ----------
        q : (n,) rad
            Joint positions.
        qd : (n,) rad/s
            Joint velocities.
        tau : (n,) N·m
            Joint efforts.
        payload : Payload, optional
            Overrides the model's own :attr:`payload` for this call.

        Returns
        -------
        qdd : (n,) rad/s^2
            Joint accelerations.

        """
        q, qd, tau = (self.joint_vector(q, 'q'), self.joint_vector(qd, 'qd'),
                      self.joint_vector(tau, 'tau'))
        with self._payload_for_call(payload):
            return pin.aba(self.pin_model, self.pin_data, q, qd, tau).copy()

    def mass_matrix(self, q, payload=None):
        """Joint-space mass matrix ``M(q)``: (n, n) kg·m^2, symmetric."""
        q = self.joint_vector(q, 'q')
        with self._payload_for_call(payload):
            upper = np.triu(pin.crba(self.pin_model, self.pin_data, q))
        return upper + np.triu(upper, 1).T

    def ft_wrench(self, q, qd, qdd, payload=None):
        """
        Wrench that the distal bodies exert on the force-torque sensor.

        Parameters
        ----------
        q : (n,) rad
            Joint positions.
        qd : (n,) rad/s
            Joint velocities.
        qdd : (n,) rad/s^2
            Joint accelerations.
        payload : Payload, optional
            Overrides the model's own :attr:`payload` for this call.

        Returns
        -------
        wrench : (6,) [N, N, N, N·m, N·m, N·m]
            ``[fx, fy, fz, tx, ty, tz]`` in the :attr:`ft_frame`, torque about its origin.

        """
        if self.ft_frame is None:
            raise ValueError(f'{self.urdf_path}: the model has no force-torque sensor link '
                             '(load it with ft_link=<sensor link name>)')
        q, qd, qdd = (self.joint_vector(q, 'q'), self.joint_vector(qd, 'qd'),
                      self.joint_vector(qdd, 'qdd'))
        with self._payload_for_call(payload):
            pin.rnea(self.pin_model, self.pin_data, q, qd, qdd)
            return self.ft_wrench_from_data(self.pin_data)

    def ft_wrench_from_data(self, data):
        """
        FT wrench from a pinocchio ``Data`` on which ``pin.rnea`` has just run.

        The hot-path form of :meth:`ft_wrench`: it reuses the velocity and acceleration (with
        gravity) of the sensor's parent joint that RNEA stored, so it costs a few spatial
        products instead of a second dynamics pass.

        Parameters
        ----------
        data : pinocchio.Data
            Workspace of this model (or of a copy with the same payload) after ``pin.rnea``.

        Returns
        -------
        wrench : (6,) N, N·m, in the :attr:`ft_frame`

        """
        entries = self._ft_entries
        if entries is None or entries[0] is not data:
            # pinocchio hands out references into ``data``: look its entries up once per Data
            jid = self._ft_joint
            entries = self._ft_entries = (
                data, data.v[jid], data.a_gf[jid],
                [(data.liMi[k], data.f[k]) for k in self._ft_children])
        _, v_joint, a_joint, children = entries
        placement = self._ft_placement
        v = placement.actInv(v_joint)
        a = placement.actInv(a_joint)
        inertia = self._ft_inertia
        force = inertia * a + inertia.vxiv(v)
        for joint_placement, joint_force in children:
            force += placement.actInv(joint_placement.act(joint_force))
        return -force.vector

    @property
    def ft_distal_inertia(self):
        """
        Spatial inertia of everything distal to the sensor, payload included.

        Returns
        -------
        pinocchio.Inertia or None
            Mass (kg), centre of mass (m) and rotational inertia about it (kg·m^2), in the
            :attr:`ft_frame`; None without a sensor.

        """
        return None if self._ft_inertia is None else self._ft_inertia.copy()

    def frame_pose(self, q, frame):
        """
        World pose of a URDF link or joint frame.

        Parameters
        ----------
        q : (n,) rad
            Joint positions.
        frame : str
            A link or joint name of the URDF.

        Returns
        -------
        T : (4, 4)
            Homogeneous transform world <- frame (m).

        """
        q = self.joint_vector(q, 'q')
        fid = self._frame_id(frame)
        pin.framesForwardKinematics(self.pin_model, self.pin_data, q)
        return self.pin_data.oMf[fid].homogeneous.copy()

    def frame_origins(self, q, frames):
        """
        World positions of several URDF link or joint frames, from one kinematics pass.

        Parameters
        ----------
        q : (n,) rad
            Joint positions.
        frames : sequence of str
            Link or joint names of the URDF.

        Returns
        -------
        dict
            ``{frame: (3,) position in the world frame, m}``.

        """
        q = self.joint_vector(q, 'q')
        ids = [self._frame_id(frame) for frame in frames]
        pin.framesForwardKinematics(self.pin_model, self.pin_data, q)
        placements = self.pin_data.oMf
        return {frame: placements[fid].translation.copy() for frame, fid in zip(frames, ids)}

    def _frame_id(self, frame):
        if not self.pin_model.existFrame(frame):
            names = sorted({f.name for f in self.pin_model.frames})
            raise ValueError(f'unknown frame {frame!r}; frames are {names}')
        return self.pin_model.getFrameId(frame)

    # ------------------------------------------------------------------ parameters file
    def dynamic_parameters(self):
        """
        Return the model's dynamics as a params.yaml document (docs/conventions.md).

        Returns
        -------
        dict
            ``{'robot_twin_dynamics': {version, urdf, joints, friction_model, friction,
            bodies}}``; ``bodies[joint]['dynamic_parameters']`` is the 10-vector
            ``[m, mcx, mcy, mcz, Ixx, Ixy, Iyy, Ixz, Iyz, Izz]`` of the body that joint moves
            (fixed-attached links merged, payload excluded), in the joint frame, inertia about
            the joint frame origin.

        """
        doc = {'version': PARAMS_VERSION, 'urdf': self.urdf_path,
               'joints': list(self.joint_names)}
        doc.update(self.friction_model.to_params())
        doc['bodies'] = {
            name: {'dynamic_parameters': [float(x) for x in
                                          self._nominal[i + 1].toDynamicParameters()]}
            for i, name in enumerate(self.joint_names)}
        return {PARAMS_KEY: doc}

    def save_parameters(self, path):
        """Write :meth:`dynamic_parameters` to ``path`` as YAML."""
        with open(path, 'w', encoding='utf-8') as stream:
            yaml.safe_dump(self.dynamic_parameters(), stream, sort_keys=False)

    def apply_parameters(self, params):
        """
        Replace inertial, friction and rotor-inertia parameters with identified ones.

        Bodies and joints the document does not name keep their current values. The
        ``armature`` section (``{joint: kg·m²}``, rotor inertia reflected to the joint) goes into
        pinocchio's ``armature``, which RNEA and ABA use. Nothing is changed if any entry is
        invalid.

        Parameters
        ----------
        params : dict
            A params.yaml document (with or without the top key ``robot_twin_dynamics``;
            without it, one of :data:`PARAMS_SECTIONS` at the top level).

        Raises
        ------
        ParametersError
            A document of another kind (neither the top key nor a section), wrong version,
            unknown joint, a ``dynamic_parameters`` entry that is not 10 finite numbers with
            positive mass, a malformed friction entry, an armature that is not a number >= 0.

        """
        if not isinstance(params, dict):
            raise ParametersError(f'parameters must be a mapping, got {type(params).__name__}')
        doc = params.get(PARAMS_KEY, params)
        if not isinstance(doc, dict):
            raise ParametersError(f'{PARAMS_KEY!r} must be a mapping')
        if PARAMS_KEY not in params and not any(key in doc for key in PARAMS_SECTIONS):
            keys = ', '.join(map(str, list(doc)[:3])) or 'none'
            raise ParametersError(f'not an identified-dynamics document (top keys: {keys}); '
                                  f'expected {PARAMS_KEY!r}, as in a params.yaml from '
                                  'robot-twin sysid')
        version = doc.get('version', PARAMS_VERSION)
        if version != PARAMS_VERSION:
            raise ParametersError(f'params version {version!r} is not supported (expected '
                                  f'{PARAMS_VERSION})')
        listed = doc.get('joints') or []
        if not isinstance(listed, list) or not all(isinstance(j, str) for j in listed):
            raise ParametersError(f'params "joints" must be a list of joint names, got '
                                  f'{listed!r}')
        unknown = [j for j in listed if j not in self.joint_names]
        if unknown:
            raise ParametersError(f'params name joints {unknown} that the model does not '
                                  f'have; model joints are {self.joint_names}')
        bodies = doc.get('bodies') or {}
        if not isinstance(bodies, dict):
            raise ParametersError('params "bodies" must map joint names to '
                                  '{dynamic_parameters: [10 numbers]}')
        new = {}
        for joint, entry in bodies.items():
            new[joint] = self._body_from_params(joint, entry)
        try:
            friction = FrictionModel.from_params(doc, self.joint_names,
                                                 base=self.friction_model)
        except FrictionError as exc:
            raise ParametersError(str(exc)) from None
        self._check_friction_plausible(friction, doc.get('friction') or {})
        armature = self._armature_from_params(doc.get('armature'))
        for joint, inertia in new.items():
            self._nominal[self.joint_names.index(joint) + 1] = inertia
            jid = self.joint_names.index(joint) + 1
            self.pin_model.inertias[jid] = inertia
        self.friction_model = friction
        for joint, value in armature.items():
            self.pin_model.armature[self.joint_names.index(joint)] = value
        self._apply_payload(self.payload)

    def _check_friction_plausible(self, friction, section):
        """
        Refuse friction no drive of this robot could move against.

        Static friction (Coulomb, offset, the sigmoid's amplitude) above ``MAX_FRICTION_RATIO``
        times the joint's URDF effort limit, or viscous friction that reaches that at the
        joint's velocity limit: the joint could not move, so the file is not this robot's
        (or not a result at all). Checked only for the joints the file names.
        """
        for joint in section:
            j = self.joint_names.index(joint)
            limit = float(self.effort_limit[j])
            speed = float(self.velocity_limit[j])
            if not (math.isfinite(limit) and limit > 0.0):
                continue
            bound = MAX_FRICTION_RATIO * limit
            static = max(abs(friction.coulomb[j]), abs(friction.offset[j]),
                         abs(friction.phi1[j]))
            viscous = abs(friction.viscous[j]) * speed if math.isfinite(speed) else 0.0
            if static > bound or viscous > bound:
                raise ParametersError(
                    f'friction.{joint}: not plausible for this robot: {static:.4g} N·m static '
                    f'and {viscous:.4g} N·m viscous at the velocity limit, against an effort '
                    f'limit of {limit:.4g} N·m (at most {MAX_FRICTION_RATIO:g}x): the joint '
                    'could not move')

    def _armature_from_params(self, section):
        """Check an ``armature`` section; return ``{joint: kg·m²}``."""
        if section is None:
            return {}
        if not isinstance(section, dict):
            raise ParametersError('params "armature" must map joint names to kg m^2')
        values = {}
        for joint, value in section.items():
            if joint not in self.joint_names:
                raise ParametersError(f'armature for unknown joint {joint!r}; model joints '
                                      f'are {self.joint_names}')
            try:
                number = float(value)
            except (TypeError, ValueError):
                number = math.nan
            if not (math.isfinite(number) and number >= 0.0):
                raise ParametersError(f'armature.{joint} must be a number >= 0 (kg m^2), got '
                                      f'{value!r}')
            values[joint] = number
        return values

    def _body_from_params(self, joint, entry):
        if joint not in self.joint_names:
            raise ParametersError(f'params body for unknown joint {joint!r}; model joints are '
                                  f'{self.joint_names}')
        values = entry.get('dynamic_parameters') if isinstance(entry, dict) else None
        try:
            vector = np.array(values, dtype=float)
        except (TypeError, ValueError):
            vector = np.array([])
        if vector.shape != (10,) or not np.all(np.isfinite(vector)):
            raise ParametersError(f'bodies.{joint}.dynamic_parameters must be 10 finite '
                                  'numbers [m, mcx, mcy, mcz, Ixx, Ixy, Iyy, Ixz, Iyz, Izz], '
                                  f'got {values!r}')
        if not vector[0] > 0.0:
            raise ParametersError(f'bodies.{joint}: mass must be > 0 kg, got {vector[0]}')
        prior = float(self._nominal[self.joint_names.index(joint) + 1].mass)
        mass, lever = vector[0], np.linalg.norm(vector[1:4]) / vector[0]
        # RMS distance of the body's mass from the joint origin: trace(I_origin) = 2 m r^2
        gyration = math.sqrt(max(vector[4] + vector[6] + vector[9], 0.0) / (2.0 * mass))
        if mass > MAX_MASS_RATIO * max(prior, 1.0) or lever > MAX_BODY_SIZE_M \
                or gyration > MAX_BODY_SIZE_M:
            raise ParametersError(
                f'bodies.{joint}: not a plausible body of this robot: mass {mass:.4g} kg (the '
                f'model has {prior:.4g} kg; at most {MAX_MASS_RATIO:g}x, or '
                f'{MAX_MASS_RATIO:g} kg for a lighter body), centre of mass {lever:.4g} m and '
                f'radius of gyration {gyration:.4g} m from the joint (at most '
                f'{MAX_BODY_SIZE_M:g} m); a params file of another robot?')
        inertia = pin.Inertia.FromDynamicParameters(vector)
        eig = np.linalg.eigvalsh(inertia.inertia)
        if eig[0] < -1e-9 * max(1.0, abs(eig[-1])):
            warnings.warn(f'bodies.{joint}: inertia about the centre of mass is not positive '
                          f'semi-definite (eigenvalues {eig.tolist()}); applied anyway',
                          URDFWarning, stacklevel=3)
        return inertia

    def load_parameters(self, path):
        """Apply an identified-dynamics file (params.yaml); see :meth:`apply_parameters`."""
        path = Path(path)
        if path.is_dir():
            raise ParametersError(f'parameters file {path} is a directory; give the '
                                  'params.yaml file')
        if not path.is_file():
            raise ParametersError(f'parameters file not found: {path}')
        try:
            with open(path, encoding='utf-8') as stream:
                params = load_yaml(stream)
        except (OSError, UnicodeDecodeError) as exc:      # unreadable, or not a text file
            raise ParametersError(f'{path}: cannot read it ({exc})') from None
        except yaml.YAMLError as exc:
            raise ParametersError(f'{path}: not valid YAML ({exc})') from None
        try:
            self.apply_parameters(params)
        except ParametersError as exc:
            raise ParametersError(f'{path}: {exc}') from None
