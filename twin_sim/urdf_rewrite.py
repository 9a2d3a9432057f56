"""
The URDF rewrites that the simulation engines share.

PyBullet (:mod:`twin_sim.world`), MuJoCo (:mod:`twin_sim.mujoco_world`) and the batch dynamics
(:mod:`twin_sim.batch_twin`) load a prepared copy of the robot's URDF, never the file as it is.
The steps they have in common live here, so that every engine sees the same robot:

- :func:`parse`: the URDF as an element tree (an unreadable file is a :class:`URDFRewriteError`);
- :func:`drop_geometry`: no ``<visual>`` or ``<collision>`` (dynamics need no meshes, and a mesh
  path such as ``package://...`` may not resolve here);
- :func:`continuous_as_revolute`: ``continuous`` joints become revolute joints with very wide
  limits, for engines that want limits on every joint;
- :func:`open_ranges`: every movable joint gets that very wide range, for an engine whose own
  range constraints are not wanted (the caller keeps the URDF's ranges and enforces them);
- :func:`move_sensor_body`: the force-torque sensor link's own inertia moves to a new link
  ``twin_sensor_body``, fixed to the sensor joint's parent at the same place. A force-torque
  sensor measures what the bodies distal to its sensing plane exert; the sensor body itself is on
  the robot side (as in :meth:`twin_sim.urdf_model.RobotModel.ft_wrench`). An engine's reaction
  force at the sensor joint would otherwise include the sensor link's inertia. The rigid-body
  dynamics of the arm are unchanged;
- :func:`add_tiny_inertials`: links without ``<inertial>`` get a negligible one (engines give such
  links a default mass of 1 kg, or refuse them);
- :func:`lock_joints`: joints made fixed at a position (``locked_joints``), for a consumer that
  gets no state of them: the twin's robot_state_publisher, fed by /twin/joint_states, which
  names only the joints the twin's model moves.

Everything works in place on the tree given and is free of any engine.
"""
from xml.etree import ElementTree

import numpy as np
from transforms3d.axangles import axangle2mat
from transforms3d.euler import euler2mat, mat2euler

__all__ = ['SENSOR_BODY', 'TINY_INERTIA', 'TINY_MASS', 'URDFRewriteError', 'add_tiny_inertials',
           'continuous_as_revolute', 'copy_element', 'drop_geometry', 'lock_joints',
           'move_sensor_body', 'open_ranges', 'parse', 'sensor_joint', 'tiny_inertial']

SENSOR_BODY = 'twin_sensor_body'
"""Link that carries the force-torque sensor link's own inertia (see :func:`move_sensor_body`)."""
TINY_MASS = 1e-9          # kg: a link's "no mass" for engines that need one
TINY_INERTIA = 1e-12      # kg m^2


class URDFRewriteError(ValueError):
    """The URDF cannot be read, or its force-torque sensor link is not where it must be."""


def parse(path):
    """Return the root ``<robot>`` element of the URDF file ``path``."""
    try:
        return ElementTree.parse(str(path)).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise URDFRewriteError(f'cannot read URDF {path}: {exc}') from exc


def copy_element(element):
    """Return a deep copy of ``element`` (a tree of its own)."""
    return ElementTree.fromstring(ElementTree.tostring(element))


def drop_geometry(root):
    """Remove every ``<visual>`` and ``<collision>`` of every link."""
    for link in root.findall('link'):
        for tag in ('visual', 'collision'):
            for element in link.findall(tag):
                link.remove(element)


def continuous_as_revolute(root, wide_limit):
    """Make every ``continuous`` joint revolute with limits ``-wide_limit .. wide_limit``."""
    for joint in root.findall('joint'):
        if joint.get('type') == 'continuous':
            joint.set('type', 'revolute')
            limit = joint.find('limit')
            if limit is None:
                limit = ElementTree.SubElement(joint, 'limit', effort='0', velocity='0')
            limit.set('lower', repr(-wide_limit))
            limit.set('upper', repr(wide_limit))


def open_ranges(root, wide_limit):
    """
    Give every movable joint the range ``-wide_limit .. wide_limit`` (continuous: revolute).

    For an engine that would otherwise constrain the joints to their URDF ranges itself.
    PyBullet does, softly: a joint pushed against an end of its range is pushed back out with
    a small velocity, falls back, and is pushed out again, so that a gripper finger held
    closed at its lower limit chattered there by about 1e-7 rad and reported velocities of up
    to 6e-4 rad/s whose sum no longer matched its position (see
    :meth:`twin_sim.world.SimWorld.limit_position`, the end stop that the plant keeps instead).
    Effort and velocity limits are left as they are.
    """
    continuous_as_revolute(root, wide_limit)
    for joint in root.findall('joint'):
        if joint.get('type') in ('revolute', 'prismatic'):
            limit = joint.find('limit')
            if limit is None:
                limit = ElementTree.SubElement(joint, 'limit', effort='0', velocity='0')
            limit.set('lower', repr(-wide_limit))
            limit.set('upper', repr(wide_limit))


def sensor_joint(root, ft_link, urdf=''):
    """
    Return the joint whose child is ``ft_link``; it must be a fixed joint.

    ``urdf`` (the file's name) only goes into the error messages.
    """
    joint = next((j for j in root.findall('joint')
                  if j.find('child') is not None and j.find('child').get('link') == ft_link),
                 None)
    where = f'{urdf}: ' if urdf else ''
    if joint is None:
        raise URDFRewriteError(f'{where}no joint has the force-torque sensor link {ft_link!r} '
                               'as its child')
    if joint.get('type') != 'fixed':
        raise URDFRewriteError(f'{where}the force-torque sensor link {ft_link!r} hangs on joint '
                               f'{joint.get("name")!r} of type {joint.get("type")}; it must be a '
                               'fixed joint')
    return joint


def move_sensor_body(root, ft_link, urdf=''):
    """
    Move ``ft_link``'s inertia to the robot side of the sensing plane (module docstring).

    Returns the sensor's fixed joint (:func:`sensor_joint`). A sensor link without
    ``<inertial>`` is left as it is.
    """
    joint = sensor_joint(root, ft_link, urdf)
    link = next(k for k in root.findall('link') if k.get('name') == ft_link)
    inertial = link.find('inertial')
    if inertial is None:
        return joint
    link.remove(inertial)
    body = ElementTree.SubElement(root, 'link', name=SENSOR_BODY)
    body.append(inertial)
    fixed = ElementTree.SubElement(root, 'joint', name=SENSOR_BODY + '_joint', type='fixed')
    ElementTree.SubElement(fixed, 'parent', link=joint.find('parent').get('link'))
    ElementTree.SubElement(fixed, 'child', link=SENSOR_BODY)
    origin = joint.find('origin')
    if origin is not None:
        fixed.append(copy_element(origin))
    return joint


def tiny_inertial(link):
    """Give ``link`` an ``<inertial>`` of negligible mass and inertia."""
    inertial = ElementTree.SubElement(link, 'inertial')
    ElementTree.SubElement(inertial, 'mass', value=repr(TINY_MASS))
    ElementTree.SubElement(inertial, 'inertia', ixx=repr(TINY_INERTIA), ixy='0', ixz='0',
                           iyy=repr(TINY_INERTIA), iyz='0', izz=repr(TINY_INERTIA))


def add_tiny_inertials(root):
    """Give every link without ``<inertial>`` a negligible one (:func:`tiny_inertial`)."""
    for link in root.findall('link'):
        if link.find('inertial') is None:
            tiny_inertial(link)


def _floats(text, what):
    try:
        values = [float(v) for v in (text or '').split()]
    except ValueError:
        values = []
    if len(values) != 3 or not np.all(np.isfinite(values)):
        raise URDFRewriteError(f'{what} = {text!r}: expected three numbers')
    return np.array(values)


def lock_joints(root, locked, urdf=''):
    """
    Make the joints of ``locked`` (``{name: position or None}``) fixed where they are held.

    As the twin's model locks them (:func:`twin_sim.urdf_model.parse_locked_joints`): a joint
    without a position is held at 0, or the limit nearest to it. Each becomes a ``fixed`` joint
    whose ``<origin>`` is its old origin composed with its motion at that position (a rotation
    about its axis, or a translation along it), so every link stays where the moving joint put
    it. A ``<mimic>`` that follows a locked joint is dropped (the follower moves on its own, as
    in the model). Returns ``{name: position}``; ``urdf`` (the file's name) only goes into the
    error messages.
    """
    where = f'{urdf}: ' if urdf else ''
    joints = {j.get('name'): j for j in root.findall('joint')}
    moving = [n for n, j in joints.items() if j.get('type') in (
        'revolute', 'continuous', 'prismatic')]
    done = {}
    for name, position in locked.items():
        joint = joints.get(name)
        if name not in moving:
            raise URDFRewriteError(f'{where}locked joint {name!r} is not a revolute, continuous '
                                   f'or prismatic joint of the URDF; those are {moving}')
        limit = joint.find('limit')
        bounds = None
        if joint.get('type') != 'continuous' and limit is not None:
            bounds = (float(limit.get('lower', 0)), float(limit.get('upper', 0)))
        if position is None:
            position = min(max(0.0, bounds[0]), bounds[1]) if bounds else 0.0
        elif bounds and not bounds[0] <= position <= bounds[1]:
            raise URDFRewriteError(f'{where}locked joint {name!r} at {position} is outside its '
                                   f'limits [{bounds[0]}, {bounds[1]}]')
        origin = joint.find('origin')
        xyz = _floats(origin.get('xyz', '0 0 0'), f'joint {name!r} <origin xyz>') \
            if origin is not None else np.zeros(3)
        rpy = _floats(origin.get('rpy', '0 0 0'), f'joint {name!r} <origin rpy>') \
            if origin is not None else np.zeros(3)
        axis_elem = joint.find('axis')
        axis = _floats(axis_elem.get('xyz', '1 0 0') if axis_elem is not None else '1 0 0',
                       f'joint {name!r} <axis xyz>')
        rotation = euler2mat(*rpy, axes='sxyz')          # URDF rpy: fixed axes x, y, z
        if joint.get('type') == 'prismatic':
            xyz = xyz + rotation @ (axis / np.linalg.norm(axis) * position)
        else:
            rotation = rotation @ axangle2mat(axis, position)
        joint.set('type', 'fixed')
        for tag in ('axis', 'limit', 'dynamics', 'mimic', 'origin', 'calibration',
                    'safety_controller'):
            for old in joint.findall(tag):
                joint.remove(old)
        ElementTree.SubElement(joint, 'origin', xyz=' '.join(repr(float(v)) for v in xyz),
                               rpy=' '.join(repr(float(v)) for v in mat2euler(rotation, 'sxyz')))
        done[name] = position
    for joint in root.findall('joint'):
        for mimic in joint.findall('mimic'):
            if mimic.get('joint') in done:
                joint.remove(mimic)
    return done
