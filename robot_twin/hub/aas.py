"""
An Asset Administration Shell of the robot and its twin (basyx-python-sdk), as an .aasx file.

One shell (asset kind Instance) with four submodels:

- ``Nameplate`` (IDTA Digital Nameplate 2.0 semantic ids): manufacturer, product designation,
  serial number, year of construction — from the URDF's robot name and what the caller knows;
- ``TechnicalData`` (IDTA Technical Data 1.2 semantic ids): degrees of freedom, total mass, the
  force-torque sensor, and per joint its type, position, velocity and effort limits, damping and
  friction, all from the URDF (which is also packed into the file);
- ``IdentifiedParameters``: the dynamics ``robot-twin sysid`` identified (params.yaml): the
  friction model and per joint its friction parameters and the body's 10 inertial parameters,
  with the file's SHA-256 — or a note that the URDF's own values are in use;
- ``Health``: per joint the current anomaly level and fault, the remaining useful life with its
  interval (hours), the health index and the maintenance advice, as the hub last saw them
  (a ``/api/v1/state`` document), with the time the hub received them (``TakenAt``; empty
  without data), the time of the export (``ExportedAt``) and ``DataStatus``: ``live``, or
  ``STALE: ...`` / ``NO DATA: ...`` (:func:`health_problem`) when the hub's health was degraded
  or it had received nothing.

:func:`read_aasx` reads a file back through the SDK's reader (the round trip the tests check).
A YAML file of another kind given as the identified parameters (the twin's thresholds, say) is
refused with a :class:`ValueError` naming what it holds
(:func:`robot_twin.cli_files.read_identified_dynamics`).
"""
import datetime
import hashlib
import io
import os
from pathlib import Path
import re
import xml.etree.ElementTree as ElementTree

from basyx.aas import model
from basyx.aas.adapter import aasx
from robot_twin.cli_files import not_a_regular_file, read_identified_dynamics, replace_file
from twin_sim.urdf_model import PARAMS_KEY

NAMEPLATE = 'https://admin-shell.io/zvei/nameplate/2/0/Nameplate'
NAMEPLATE_IDS = {'ManufacturerName': '0173-1#02-AAO677#002',
                 'ManufacturerProductDesignation': '0173-1#02-AAW338#001',
                 'SerialNumber': '0173-1#02-AAM556#002',
                 'YearOfConstruction': '0173-1#02-AAP906#001'}
TECHNICAL_DATA = 'https://admin-shell.io/ZVEI/TechnicalData/Submodel/1/2'
GENERAL_INFORMATION = 'https://admin-shell.io/ZVEI/TechnicalData/GeneralInformation/1/1'
TECHNICAL_PROPERTIES = 'https://admin-shell.io/ZVEI/TechnicalData/TechnicalProperties/1/1'
IDENTIFIED = 'urn:robot_twin:submodel:identified_parameters:1'
HEALTH = 'urn:robot_twin:submodel:health:1'
BODY_PARAMETERS = ('m', 'mcx', 'mcy', 'mcz', 'Ixx', 'Ixy', 'Iyy', 'Ixz', 'Iyz', 'Izz')


def _ref(iri):
    return model.ExternalReference((model.Key(model.KeyTypes.GLOBAL_REFERENCE, iri),))


def id_short(text):
    """Return a valid idShort for any name (letters, digits, _; starting with a letter)."""
    clean = re.sub(r'[^A-Za-z0-9_]', '_', str(text))
    return clean if clean[:1].isalpha() else 'x' + clean


def _prop(name, value, semantic=None, unit=None):
    """Return a Property holding ``value`` (float, int, bool or text; None = no value)."""
    kind = {bool: bool, int: int, float: float}.get(type(value), str)
    text = None if value is None else (value if kind is not str else str(value))
    description = model.MultiLanguageTextType({'en': f'unit: {unit}'}) if unit else None
    return model.Property(id_short(name), kind, text, semantic_id=_ref(semantic) if semantic
                          else None, description=description)


def _collection(name, elements, semantic=None):
    return model.SubmodelElementCollection(id_short(name), list(elements),
                                           semantic_id=_ref(semantic) if semantic else None)


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _urdf_summary(path):
    """(robot name, total mass kg) from the URDF."""
    root = ElementTree.parse(path).getroot()
    masses = [float(m.get('value', 0.0)) for m in root.iter('mass')]
    return root.get('name') or 'robot', sum(masses)


def nameplate(robot, manufacturer='', serial_number='', year=None):
    """Return the Nameplate submodel."""
    text = (lambda v: model.MultiLanguageProperty(
        id_short(v[0]), model.MultiLanguageTextType({'en': v[1] or 'unknown'}),
        semantic_id=_ref(NAMEPLATE_IDS[v[0]])))
    elements = [text(('ManufacturerName', manufacturer)),
                text(('ManufacturerProductDesignation', robot)),
                _prop('SerialNumber', serial_number or 'unknown', NAMEPLATE_IDS['SerialNumber']),
                _prop('YearOfConstruction', str(year) if year else 'unknown',
                      NAMEPLATE_IDS['YearOfConstruction'])]
    return model.Submodel(f'urn:robot_twin:{id_short(robot)}:submodel:nameplate', elements,
                          id_short='Nameplate', semantic_id=_ref(NAMEPLATE))


def technical_data(robot_model, urdf_file):
    """Return the TechnicalData submodel (``urdf_file``: the URDF's path in the package)."""
    m = robot_model
    robot, mass = _urdf_summary(m.urdf_path)
    general = _collection('GeneralInformation', [
        _prop('ManufacturerProductDesignation', robot),
        model.File('RobotDescription', 'application/xml', urdf_file)], GENERAL_INFORMATION)
    joints = []
    for i, name in enumerate(m.joint_names):
        linear = m.joint_types[i] == 'prismatic'
        unit = ('m', 'm/s', 'N') if linear else ('rad', 'rad/s', 'N·m')
        lower, upper = float(m.lower[i]), float(m.upper[i])
        joints.append(_collection(name, [
            _prop('JointType', m.joint_types[i]),
            _prop('LowerLimit', lower if abs(lower) != float('inf') else None, unit=unit[0]),
            _prop('UpperLimit', upper if abs(upper) != float('inf') else None, unit=unit[0]),
            _prop('VelocityLimit', float(m.velocity_limit[i]), unit=unit[1]),
            _prop('EffortLimit', float(m.effort_limit[i]), unit=unit[2]),
            _prop('Damping', float(m.damping[i]), unit=f'{unit[2]}·s/{unit[0]}'),
            _prop('Friction', float(m.friction[i]), unit=unit[2])]))
    properties = _collection('TechnicalProperties', [
        _prop('DegreesOfFreedom', int(m.n)), _prop('TotalMass', float(mass), unit='kg'),
        _prop('ForceTorqueSensorFrame', m.ft_frame or 'none'),
        _prop('RobotDescriptionSHA256', _sha256(m.urdf_path)),
        _collection('Joints', joints)], TECHNICAL_PROPERTIES)
    return model.Submodel(f'urn:robot_twin:{id_short(robot)}:submodel:technical_data',
                          [general, properties], id_short='TechnicalData',
                          semantic_id=_ref(TECHNICAL_DATA))


def identified_parameters(robot, params_path=None):
    """Return the IdentifiedParameters submodel: a params.yaml's content, or a note."""
    elements = [_prop('Source', str(params_path) if params_path else
                      'none: the URDF values are in use')]
    if params_path:
        raw = read_identified_dynamics(params_path)
        doc = raw.get(PARAMS_KEY, raw)
        elements += [_prop('SHA256', _sha256(params_path)),
                     _prop('FrictionModel', doc.get('friction_model', 'unknown'))]
        friction = doc.get('friction') or {}
        bodies = doc.get('bodies') or {}
        joints = []
        for joint in doc.get('joints') or sorted(set(friction) | set(bodies)):
            inner = [_prop(f'Friction_{k}', float(v)) for k, v in
                     sorted((friction.get(joint) or {}).items())
                     if isinstance(v, (int, float))]
            values = (bodies.get(joint) or {}).get('dynamic_parameters') or []
            inner += [_prop(f'Body_{n}', float(v)) for n, v in zip(BODY_PARAMETERS, values)]
            joints.append(_collection(joint, inner))
        elements.append(_collection('Joints', joints))
    return model.Submodel(f'urn:robot_twin:{id_short(robot)}:submodel:identified_parameters',
                          elements, id_short='IdentifiedParameters', semantic_id=_ref(IDENTIFIED))


def _received(state):
    """Return the newest time (s since the epoch) the hub received anomaly or RUL data."""
    times = [(state.get('anomaly') or {}).get('received'), (state.get('rul') or {}).get(
        'received')]
    times = [t for t in times if isinstance(t, (int, float)) and not isinstance(t, bool)]
    return max(times) if times else None


def health_problem(state):
    """
    Return why a hub state document's health data cannot be taken as current ('' if it can).

    ``NO DATA: ...`` when the hub had received no anomaly or RUL report, ``STALE: ...`` with
    the hub's reasons when its ``health`` was degraded (the twin stopped, say).
    """
    if not state:
        return ''
    if _received(state) is None:
        return 'NO DATA: the hub has received no anomaly or RUL report from the twin'
    hub_health = state.get('health') or {}
    if hub_health.get('status', 'ok') != 'ok':
        return 'STALE: ' + '; '.join(hub_health.get('reasons') or ['the hub reports degraded'])
    return ''


def health(robot, joint_names, state=None, taken_at=None):
    """
    Return the Health submodel from a hub state document (``GET /api/v1/state``), or empty values.

    TakenAt is when the hub received the data (``taken_at``, else the newest reception of
    anomaly or RUL data; empty without), ExportedAt is now, DataStatus is ``live`` or what
    :func:`health_problem` says. Per joint: AnomalyLevel, FaultType, RulHours, RulLowerHours,
    RulUpperHours, HealthIndex, RecommendedAction, DueBy.
    """
    joints = {j['name']: j for j in (state or {}).get('joints', [])}
    received = _received(state or {})
    when = taken_at or (None if received is None else datetime.datetime.fromtimestamp(
        received, datetime.timezone.utc))
    now = datetime.datetime.now(datetime.timezone.utc)
    anomaly = (state or {}).get('anomaly', {})
    status = (health_problem(state) or 'live') if state else 'NO DATA: no hub was asked'
    elements = [_prop('TakenAt', when.isoformat(timespec='seconds') if when else None),
                _prop('ExportedAt', now.isoformat(timespec='seconds')),
                _prop('DataStatus', status),
                _prop('Source', 'robot_twin hub' if state else 'none: no running twin was '
                      'asked (robot-twin aas export --hub URL)'),
                _prop('AnomalyLevel', anomaly.get('level', 'unknown')),
                _prop('AnomalyMessage', anomaly.get('message', ''))]
    per_joint = []
    for name in joint_names:
        entry = joints.get(name, {})
        a, rul = entry.get('anomaly') or {}, entry.get('rul') or {}
        per_joint.append(_collection(name, [
            _prop('AnomalyLevel', a.get('level', 'unknown')),
            _prop('FaultType', a.get('fault_type', '')),
            _prop('RulHours', rul.get('rul_hours'), unit='h'),
            _prop('RulLowerHours', rul.get('rul_lower_hours'), unit='h'),
            _prop('RulUpperHours', rul.get('rul_upper_hours'), unit='h'),
            _prop('HealthIndex', rul.get('health_index')),
            _prop('RecommendedAction', rul.get('recommended_action', '')),
            _prop('DueBy', rul.get('due_by', ''))]))
    elements.append(_collection('Joints', per_joint))
    return model.Submodel(f'urn:robot_twin:{id_short(robot)}:submodel:health', elements,
                          id_short='Health', semantic_id=_ref(HEALTH))


def build_shell(robot_model, *, params_path=None, state=None, manufacturer='',
                serial_number='', year=None):
    """
    Return ``(object_store, file_store, shell_id)`` of the robot's AAS.

    Parameters
    ----------
    robot_model : twin_sim.urdf_model.RobotModel
        The robot (its ``urdf_path`` is read and packed into the file).
    params_path : str, optional
        Identified dynamics (params.yaml).
    state : dict, optional
        A hub state document for the Health submodel.
    manufacturer, serial_number : str
        Nameplate entries ('' = unknown).
    year : int, optional
        Year of construction.

    """
    robot, _mass = _urdf_summary(robot_model.urdf_path)
    files = aasx.DictSupplementaryFileContainer()
    urdf_name = files.add_file(f'/aasx/files/{Path(robot_model.urdf_path).name}',
                               io.BytesIO(Path(robot_model.urdf_path).read_bytes()),
                               'application/xml')
    submodels = [nameplate(robot, manufacturer, serial_number, year),
                 technical_data(robot_model, urdf_name),
                 identified_parameters(robot, params_path),
                 health(robot, robot_model.joint_names, state)]
    shell_id = f'urn:robot_twin:{id_short(robot)}:aas'
    shell = model.AssetAdministrationShell(
        model.AssetInformation(model.AssetKind.INSTANCE,
                               global_asset_id=f'urn:robot_twin:{id_short(robot)}:asset'),
        shell_id, id_short=id_short(robot),
        submodel={model.ModelReference.from_referable(s) for s in submodels})
    store = model.DictIdentifiableStore([shell, *submodels])
    return store, files, shell_id


def write_aasx(path, store, files, shell_id):
    """
    Write the shell and its submodels (and packed files) to an .aasx package.

    The package is built in memory and then moved into place: a path that cannot be written
    (a directory, a missing folder) raises one :class:`OSError` and leaves no partial file. An
    existing path that is not a regular file (a device, a FIFO, a socket) is refused before
    anything is written, never replaced.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f'{path} is a directory; name the .aasx file to write')
    problem = not_a_regular_file(path)
    if problem:
        raise OSError(f'{problem}; name the .aasx file to write')
    buffer = io.BytesIO()
    with aasx.AASXWriter(buffer) as writer:
        writer.write_aas(shell_id, store, files)
    partial = path.with_name(f'.{path.name}.{os.getpid()}.part')
    try:
        partial.write_bytes(buffer.getvalue())
        replace_file(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_aasx(path):
    """Read an .aasx back with the SDK; return ``(object_store, file_store)``."""
    store = model.DictIdentifiableStore()
    files = aasx.DictSupplementaryFileContainer()
    with aasx.AASXReader(str(path), failsafe=False) as reader:
        reader.read_into(store, files)
    return store, files
