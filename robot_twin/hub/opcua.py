"""
OPC UA server of the hub (asyncua), modelled on OPC 40010-1 (OPC UA for Robotics).

The DI, IA and Robotics nodesets (XML from the npm package node-opcua-nodesets, installed by
``make setup``; never copied into this repository) are loaded first, and the robot is built
from their types, from the URDF:

    Objects/DeviceSet/<robot>                        MotionDeviceSystemType
      MotionDevices/<robot>                          MotionDeviceType (ARTICULATED_ROBOT)
        Axes/<joint>                                 AxisType; MotionProfile from the joint type
          ParameterSet/ActualPosition, ActualSpeed   rad, rad/s (m, m/s for prismatic joints)
        PowerTrains/<joint>_powertrain               PowerTrainType, Moves -> the axis
          <joint>_motor                              MotorType
            ParameterSet/EffectiveLoadRate           |effort| / URDF effort limit, % (UInt16)
      RobotTwin                                      the twin's own values (namespace below)
        Sync/State, LatencyP99, Message
        Anomaly/Level, Score, FaultType, Joint, Message
        CorrectiveActionsEnabled
        Axes/<joint>/MeasuredEffort, PredictedEffort, EffortResidual, PredictedPosition,
                     AnomalyLevel, AnomalyScore, FaultType, AnomalySince,
                     RulHours, RulLowerHours, RulUpperHours, HealthIndex,
                     RecommendedAction, DueBy
        SetCorrectiveActions(Boolean), AcknowledgeAnomaly(UInt32, String),
        SetPayload(MassKg, CenterOfMassM[3], InertiaKgm2[6])               methods

The twin's values live in namespace ``urn:robot_twin:hub``. Values carry the robot sample's
stamp as their SourceTimestamp and a StatusCode that says how good they are (:func:`quality`):
Good, UncertainLastUsableValue when the joint samples, the sync status or the anomaly
statuses are stale (``STALE_AFTER_S`` and ``STATUS_STALE_AFTER_S`` of
:mod:`robot_twin.hub.state`; Sync/State and Anomaly/Level then read ``STALE``, the messages say
since when), BadWaitingForInitialData before the first message and BadNoData for a missing or
NaN value. Every variable is
read-only; anonymous clients may read, browse and subscribe, and only user ``robot_twin`` with
the hub's token as password may call the methods (the writes of the REST API, with the same
rules). Every method answers ``(Ok, Message)``: a refusal is ``Ok = false`` with the reason,
not a fault status.
"""
import asyncio
import datetime
import logging
import math
import os
from pathlib import Path
import sys
import threading
import xml.etree.ElementTree as ElementTree

from asyncua import Server, ua
from asyncua.common.instantiate_util import instantiate
from asyncua.crypto.permission_rules import PermissionRuleset, User, USER_TYPES, UserRole
from asyncua.server.user_managers import UserManager
from robot_twin.hub.settings import OPCUA_USER
from robot_twin.hub.state import finite_or_none

DI_URI = 'http://opcfoundation.org/UA/DI/'
ROBOTICS_URI = 'http://opcfoundation.org/UA/Robotics/'
TWIN_URI = 'urn:robot_twin:hub'
NODESET_FILES = ('Opc.Ua.Di.NodeSet2.xml', 'Opc.Ua.IA.NodeSet2.xml',
                 'Opc.Ua.Robotics.NodeSet2.xml')
NODESET_PACKAGE = 'node-opcua-nodesets'
# NodeIds in the Robotics nodeset (namespace http://opcfoundation.org/UA/Robotics/)
MOTION_DEVICE_SYSTEM_TYPE, MOTION_DEVICE_TYPE, AXIS_TYPE = 1002, 1004, 16601
POWER_TRAIN_TYPE, MOTOR_TYPE, MOVES = 16794, 1019, 18178
ANALOG_UNIT_TYPE = 17497               # namespace 0
ARTICULATED_ROBOT = 1
MOTION_PROFILE = {'revolute': 1, 'continuous': 2, 'prismatic': 3}   # ROTARY, ..._ENDLESS, LINEAR
UNECE = {'rad': (ord('C') << 16 | ord('8') << 8 | ord('1'), 'rad', 'radian'),
         'rad/s': (ord('2') << 8 | ord('A'), 'rad/s', 'radian per second'),
         'm': (ord('M') << 16 | ord('T') << 8 | ord('R'), 'm', 'metre'),
         'm/s': (ord('M') << 16 | ord('T') << 8 | ord('S'), 'm/s', 'metre per second')}
TWIN_AXIS_VALUES = (
    ('MeasuredEffort', ua.VariantType.Double), ('PredictedEffort', ua.VariantType.Double),
    ('EffortResidual', ua.VariantType.Double), ('PredictedPosition', ua.VariantType.Double),
    ('AnomalyLevel', ua.VariantType.String), ('AnomalyScore', ua.VariantType.Double),
    ('FaultType', ua.VariantType.String), ('AnomalySince', ua.VariantType.Double),
    ('RulHours', ua.VariantType.Double), ('RulLowerHours', ua.VariantType.Double),
    ('RulUpperHours', ua.VariantType.Double), ('HealthIndex', ua.VariantType.Double),
    ('RecommendedAction', ua.VariantType.String), ('DueBy', ua.VariantType.String))

logging.getLogger('asyncua').setLevel(logging.ERROR)   # instantiation notes, plaintext warning


class _NoStartTraceback(logging.Filter):
    """Drop asyncua's own traceback of a server that cannot start: the hub says it in one line."""

    def filter(self, record):  # noqa: A003 - logging's name
        return 'error starting server' not in str(record.msg)


logging.getLogger('asyncua.server.server').addFilter(_NoStartTraceback())


def find_nodeset_dir(configured=''):
    """
    Return the folder with the DI, IA and Robotics nodesets (a Path).

    Looks at ``configured``, then ``$ROBOT_TWIN_NODESETS``, then the npm package that
    ``make setup`` installs into the venv (``<venv>/npm/node_modules/node-opcua-nodesets``).
    A ``configured`` folder (opcua.nodeset_dir) without all of them is refused, never passed
    over. Raises ``FileNotFoundError`` naming the folder, or saying how to install them.
    """
    if configured:
        missing = [name for name in NODESET_FILES if not (Path(configured) / name).is_file()]
        if missing:
            what = 'is not a folder' if not Path(configured).is_dir() else \
                f'lacks {", ".join(missing)}'
            raise FileNotFoundError(
                f'opcua.nodeset_dir {configured} {what}: give the folder that holds '
                f'{", ".join(NODESET_FILES)}, or leave it empty to use the ones `make setup` '
                'installs')
    candidates = [configured, os.environ.get('ROBOT_TWIN_NODESETS', ''),
                  Path(sys.prefix) / 'npm' / 'node_modules' / NODESET_PACKAGE / 'nodesets']
    for candidate in filter(None, candidates):
        if all((Path(candidate) / name).is_file() for name in NODESET_FILES):
            return Path(candidate)
    raise FileNotFoundError(
        f'OPC UA nodesets {", ".join(NODESET_FILES)} not found (looked in '
        f'{", ".join(str(c) for c in candidates if c)}). Install them with `make setup` '
        f'(npm install --prefix {Path(sys.prefix) / "npm"} {NODESET_PACKAGE}) or give '
        'opcua.nodeset_dir')


def _nodeset_xml(path):
    """Return the nodeset's XML without its DesignToolOnly nodes (asyncua cannot place them)."""
    ElementTree.register_namespace('', 'http://opcfoundation.org/UA/2011/03/UANodeSet.xsd')
    root = ElementTree.parse(path).getroot()
    for element in list(root):
        if element.get('DesignToolOnly') == 'true':
            root.remove(element)
    return ElementTree.tostring(root, encoding='unicode')


class _TokenUsers(UserManager):
    """Anonymous readers; user robot_twin with the hub's token may call the methods."""

    def __init__(self, token):
        self.token = token

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username is None and password is None:
            return User(role=UserRole.Anonymous)
        secret = password.decode() if isinstance(password, bytes) else password
        if self.token is not None and username == OPCUA_USER and secret == self.token:
            return User(role=UserRole.User, name=username)
        return None                          # wrong credentials: the session is refused


class _ReadOnlyForAnonymous(PermissionRuleset):
    """Anonymous: read, browse, subscribe. User robot_twin: also write and call."""

    _WRITES = {ua.NodeId(ua.ObjectIds.WriteRequest_Encoding_DefaultBinary),
               ua.NodeId(ua.ObjectIds.CallRequest_Encoding_DefaultBinary)}

    def __init__(self):
        user = set(map(ua.NodeId, USER_TYPES))
        self._allowed = {UserRole.User: user, UserRole.Anonymous: user - self._WRITES}

    def check_validity(self, user, action_type_id, body):
        return action_type_id in self._allowed.get(user.role, set())


GOOD, STALE, WAITING, NO_DATA = (ua.StatusCodes.Good, ua.StatusCodes.UncertainLastUsableValue,
                                 ua.StatusCodes.BadWaitingForInitialData, ua.StatusCodes.BadNoData)


def quality(value, source):
    """
    Return the StatusCode (an int of ``ua.StatusCodes``) of ``value`` taken from ``source``.

    ``source`` is the dict the value comes from (a joint sample of ``TwinState.joints()``, an
    anomaly or RUL status), None while nothing arrived: BadWaitingForInitialData. A value
    that is None or NaN is BadNoData; one from a ``stale`` sample UncertainLastUsableValue.
    """
    if source is None:
        return WAITING
    if value is None or (isinstance(value, float) and value != value):
        return NO_DATA
    return STALE if source.get('stale') else GOOD


def _field(source, name, default=None):
    """Return ``source[name]``, or ``default`` while nothing arrived (``source`` None)."""
    return source.get(name, default) if source else default


def _datetime(stamp):
    if stamp is None or not math.isfinite(stamp):
        return None
    return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc)


def _argument(name, description, data_type=ua.ObjectIds.Double, length=None):
    """Return a method argument (an array of ``length`` when given), named and described."""
    arg = ua.Argument()
    arg.Name = name
    arg.DataType = ua.NodeId(data_type)
    arg.ValueRank = -1 if length is None else 1
    arg.ArrayDimensions = [] if length is None else [length]
    arg.Description = ua.LocalizedText(description)
    return arg


def _checked_call(handler, count):
    """
    Wrap ``handler(*values) -> (ok, message)`` as a method callback for asyncua.

    A call with too few or too many arguments gets the status OPC UA has for it; a refusal
    (ValueError, with the reason) is ``Ok = false`` and the reason, never a server fault.
    """
    def call(_parent, *args):
        if len(args) != count:
            return ua.StatusCode(ua.StatusCodes.BadArgumentsMissing if len(args) < count
                                 else ua.StatusCodes.BadTooManyArguments)
        try:
            ok, message = handler(*(arg.Value for arg in args))
        except ValueError as exc:
            ok, message = False, str(exc)
        return [ua.Variant(bool(ok), ua.VariantType.Boolean),
                ua.Variant(str(message), ua.VariantType.String)]
    return call


def _number(value, name):
    """``value`` as a float; ValueError naming the argument for anything else (bool too)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f'{name} must be a number, got {value!r}')
    return float(value)


def _numbers(values, length, name):
    """``values`` as ``length`` floats; ValueError naming the argument otherwise."""
    if not isinstance(values, (list, tuple)) or len(values) != length:
        raise ValueError(f'{name} must be an array of {length} numbers, got {values!r}')
    return [_number(v, name) for v in values]


async def _delete_placeholders(node):
    """Delete ``<...Identifier>`` nodes that instantiating a type copied (they are not real)."""
    for child in await node.get_children():
        if (await child.read_browse_name()).Name.startswith('<'):
            await child.delete(recursive=True)
        elif (await child.read_node_class()) == ua.NodeClass.Object:
            await _delete_placeholders(child)


class TwinOpcUaServer:
    """
    The hub's OPC UA server, run on an asyncio loop in a thread of its own.

    Parameters
    ----------
    state : robot_twin.hub.state.TwinState
        Read every ``1 / update_rate_hz`` s.
    model : twin_sim.urdf_model.RobotModel
        The robot (joint names, types, effort limits).
    address : (str, int)
        Host and port to bind.
    token : str or None
        Password of user ``robot_twin``; None = nobody may call the methods.
    actions : robot_twin.hub.server.HubActions
        The writes the methods make (the same as the REST API's).
    update_rate_hz : float
        Value updates per second.
    nodeset_dir : str
        Where the nodesets are ('' = :func:`find_nodeset_dir`).

    """

    def __init__(self, state, model, address, actions, *, token=None, update_rate_hz=10.0,
                 nodeset_dir=''):
        self.state, self.model = state, model
        self.host, self.port = address
        self.token, self.actions = token, actions
        self.period_s = 1.0 / float(update_rate_hz)
        self.nodeset_dir = find_nodeset_dir(nodeset_dir)
        self.endpoint = f'opc.tcp://{self.host}:{self.port}/robot_twin/'
        self._loop = None
        self._thread = None
        self._stop = None
        self._ready = threading.Event()
        self._error = None
        self._nodes = {}          # (joint or '', name) -> NodeId
        self._written = {}        # (joint or '', name) -> (value, stamp) last written

    # ------------------------------------------------------------------ thread
    def start(self, timeout_s=60.0):
        """Start the server thread; return once it listens (raise RuntimeError if it cannot)."""
        self._thread = threading.Thread(target=self._run, name='hub-opcua', daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f'OPC UA server on {self.endpoint} did not start: '
                               f'{self._error or "timed out"}')
        return self

    def stop(self):
        """Stop serving and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=10.0)

    def _run(self):
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except Exception as exc:  # noqa: BLE001 - reported to start() and the log
            self._error = f'{type(exc).__name__}: {exc}'
            self._ready.set()
        finally:
            self._loop.close()

    async def _serve(self):
        self._stop = asyncio.Event()
        server = Server(user_manager=_TokenUsers(self.token))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f'robot_twin hub ({self.state.robot_name})')
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity],
                                   permission_ruleset=_ReadOnlyForAnonymous())
        server.set_security_IDs(['Anonymous', 'Username'])
        for name in NODESET_FILES:
            await server.import_xml(xmlstring=_nodeset_xml(self.nodeset_dir / name))
        await self._build(server)
        async with server:
            self._ready.set()
            while not self._stop.is_set():
                await self._update(server)
                try:
                    await asyncio.wait_for(self._stop.wait(), self.period_s)
                except asyncio.TimeoutError:
                    pass

    # ------------------------------------------------------------------ address space
    async def _build(self, server):
        ns_di = await server.get_namespace_index(DI_URI)
        ns_rob = await server.get_namespace_index(ROBOTICS_URI)
        idx = await server.register_namespace(TWIN_URI)
        robot = self.state.robot_name
        rob = (lambda i: server.get_node(ua.NodeId(i, ns_rob)))
        device_set = await server.nodes.objects.get_child(f'{ns_di}:DeviceSet')
        system = (await instantiate(device_set, rob(MOTION_DEVICE_SYSTEM_TYPE),
                                    ua.NodeId(robot, idx), ua.QualifiedName(robot, idx),
                                    ua.LocalizedText(robot), instantiate_optional=False))[0]
        devices = await system.get_child(f'{ns_rob}:MotionDevices')
        device = (await instantiate(devices, rob(MOTION_DEVICE_TYPE), ua.NodeId(f'{robot}.device',
                                    idx), ua.QualifiedName(robot, idx), ua.LocalizedText(robot),
                                    instantiate_optional=False))[0]
        await self._describe_device(device, ns_di, ns_rob)
        axes = await device.get_child(f'{ns_rob}:Axes')
        trains = await device.get_child(f'{ns_rob}:PowerTrains')
        for i, joint in enumerate(self.model.joint_names):
            axis = await self._add_axis(server, axes, joint, i, ns_di, ns_rob, idx)
            await self._add_power_train(server, trains, axis, joint, ns_di, ns_rob, idx)
        await self._add_twin(system, idx)
        await _delete_placeholders(system)

    async def _describe_device(self, device, ns_di, ns_rob):
        robot = self.state.robot_name
        for name, value in (('Manufacturer', ua.LocalizedText('unknown (see the URDF)')),
                            ('Model', ua.LocalizedText(robot)),
                            ('ProductCode', robot), ('SerialNumber', 'unknown')):
            await (await device.get_child(f'{ns_di}:{name}')).write_value(value)
        category = await device.get_child(f'{ns_rob}:MotionDeviceCategory')
        await category.write_value(ua.Variant(ARTICULATED_ROBOT, ua.VariantType.Int32))

    async def _add_axis(self, server, axes, joint, i, ns_di, ns_rob, idx):
        axis = (await instantiate(axes, server.get_node(ua.NodeId(AXIS_TYPE, ns_rob)),
                                  ua.NodeId(f'axis.{joint}', idx), ua.QualifiedName(joint, idx),
                                  ua.LocalizedText(joint), instantiate_optional=False))[0]
        kind = self.model.joint_types[i]
        profile = await axis.get_child(f'{ns_rob}:MotionProfile')
        await profile.write_value(ua.Variant(MOTION_PROFILE.get(kind, 0), ua.VariantType.Int32))
        params = await axis.get_child(f'{ns_di}:ParameterSet')
        linear = kind == 'prismatic'
        position = await params.get_child(f'{ns_rob}:ActualPosition')
        await self._set_units(position, 'm' if linear else 'rad')
        speed = (await instantiate(params, server.get_node(ua.NodeId(ANALOG_UNIT_TYPE)),
                                   ua.NodeId(f'axis.{joint}.ActualSpeed', idx),
                                   ua.QualifiedName('ActualSpeed', ns_rob),
                                   ua.LocalizedText('ActualSpeed'),
                                   instantiate_optional=False))[0]
        await server.write_attribute_value(     # AnalogUnitType's is Number: a Double here
            speed.nodeid, ua.DataValue(ua.Variant(ua.NodeId(ua.ObjectIds.Double),
                                                  ua.VariantType.NodeId)),
            ua.AttributeIds.DataType)
        await self._set_units(speed, 'm/s' if linear else 'rad/s')
        self._nodes[(joint, 'ActualPosition')] = position.nodeid
        self._nodes[(joint, 'ActualSpeed')] = speed.nodeid
        return axis

    @staticmethod
    async def _set_units(variable, unit):
        code, short, long = UNECE[unit]
        units = await variable.get_child('0:EngineeringUnits')
        await units.write_value(ua.EUInformation(
            NamespaceUri='http://www.opcfoundation.org/UA/units/un/cefact', UnitId=code,
            DisplayName=ua.LocalizedText(short), Description=ua.LocalizedText(long)))
        await variable.write_value(ua.Variant(math.nan, ua.VariantType.Double))

    async def _add_power_train(self, server, trains, axis, joint, ns_di, ns_rob, idx):
        rob = (lambda i: server.get_node(ua.NodeId(i, ns_rob)))
        train = (await instantiate(trains, rob(POWER_TRAIN_TYPE),
                                   ua.NodeId(f'powertrain.{joint}', idx),
                                   ua.QualifiedName(f'{joint}_powertrain', idx),
                                   ua.LocalizedText(f'{joint}_powertrain'),
                                   instantiate_optional=False))[0]
        await train.add_reference(axis.nodeid, ua.NodeId(MOVES, ns_rob))
        motor = (await instantiate(train, rob(MOTOR_TYPE), ua.NodeId(f'motor.{joint}', idx),
                                   ua.QualifiedName(f'{joint}_motor', idx),
                                   ua.LocalizedText(f'{joint}_motor'),
                                   instantiate_optional=False))[0]
        for name, value in (('Manufacturer', ua.LocalizedText('unknown')),
                            ('Model', ua.LocalizedText('unknown')),
                            ('ProductCode', 'unknown'), ('SerialNumber', 'unknown')):
            await (await motor.get_child(f'{ns_di}:{name}')).write_value(value)
        params = await motor.get_child(f'{ns_di}:ParameterSet')
        load = await params.add_variable(ua.NodeId(f'motor.{joint}.EffectiveLoadRate', idx),
                                         ua.QualifiedName('EffectiveLoadRate', ns_rob),
                                         ua.Variant(0, ua.VariantType.UInt16))
        self._nodes[(joint, 'EffectiveLoadRate')] = load.nodeid

    async def _add_twin(self, system, idx):
        twin = await system.add_object(ua.NodeId('twin', idx), ua.QualifiedName('RobotTwin', idx))
        groups = {'Sync': (('State', ua.VariantType.String), ('Message', ua.VariantType.String),
                           ('LatencyP99', ua.VariantType.Double)),
                  'Anomaly': (('Level', ua.VariantType.String), ('Score', ua.VariantType.Double),
                              ('FaultType', ua.VariantType.String),
                              ('Joint', ua.VariantType.String),
                              ('Message', ua.VariantType.String))}
        for group, values in groups.items():
            folder = await twin.add_object(ua.NodeId(f'twin.{group}', idx),
                                           ua.QualifiedName(group, idx))
            for name, kind in values:
                await self._twin_variable(folder, f'twin.{group}.{name}', name, kind, idx,
                                          ('', f'{group}.{name}'))
        await self._twin_variable(twin, 'twin.CorrectiveActionsEnabled',
                                  'CorrectiveActionsEnabled', ua.VariantType.Boolean, idx,
                                  ('', 'CorrectiveActionsEnabled'))
        axes = await twin.add_object(ua.NodeId('twin.Axes', idx), ua.QualifiedName('Axes', idx))
        for joint in self.model.joint_names:
            folder = await axes.add_object(ua.NodeId(f'twin.{joint}', idx),
                                           ua.QualifiedName(joint, idx))
            for name, kind in TWIN_AXIS_VALUES:
                await self._twin_variable(folder, f'twin.{joint}.{name}', name, kind, idx,
                                          (joint, name))
        answer = [ua.VariantType.Boolean, ua.VariantType.String]     # (Ok, Message)
        methods = (
            ('SetCorrectiveActions', self._set_corrective,
             [_argument('Enabled', 'true: the bridge may send corrective commands',
                        ua.ObjectIds.Boolean)]),
            ('AcknowledgeAnomaly', self._acknowledge,
             [_argument('AnomalyId', 'id of the anomaly episode (REST /anomalies)',
                        ua.ObjectIds.UInt32),
              _argument('Note', 'free text kept with the acknowledgement', ua.ObjectIds.String)]),
            ('SetPayload', self._set_payload,
             [_argument('MassKg', 'payload mass, kg'),
              _argument('CenterOfMassM', 'centre of mass in the payload frame '
                        f'{self.model.payload_frame}, m (x, y, z)', length=3),
              _argument('InertiaKgm2', 'inertia about the centre of mass, kg m^2 '
                        '(ixx, ixy, ixz, iyy, iyz, izz)', length=6)]))
        for name, handler, arguments in methods:
            await twin.add_method(ua.NodeId(f'twin.{name}', idx), ua.QualifiedName(name, idx),
                                  _checked_call(handler, len(arguments)), arguments, answer)

    async def _twin_variable(self, parent, nodeid, name, kind, idx, key):
        empty = {ua.VariantType.Double: math.nan, ua.VariantType.String: '',
                 ua.VariantType.Boolean: False}[kind]
        variable = await parent.add_variable(ua.NodeId(nodeid, idx), ua.QualifiedName(name, idx),
                                             ua.Variant(empty, kind))
        self._nodes[key] = variable.nodeid

    # ------------------------------------------------------------------ methods (writes)
    # each takes the arguments' plain values and returns (ok, message); ValueError = refused
    def _set_corrective(self, enabled):
        if not isinstance(enabled, bool):
            raise ValueError(f'Enabled must be a Boolean, got {enabled!r}')
        return self.actions.set_corrective(enabled, 'OPC UA')

    def _acknowledge(self, episode_id, note):
        if isinstance(episode_id, bool) or not isinstance(episode_id, int):
            raise ValueError(f'AnomalyId must be an integer, got {episode_id!r}')
        try:       # the note is checked as the REST API checks it (state.check_note)
            episode = self.actions.acknowledge(episode_id, 'opcua', '' if note is None else note)
        except KeyError as exc:
            return False, str(exc.args[0])
        return True, f'anomaly {episode["id"]} acknowledged' + (
            f'; {episode["ledger_error"]}' if episode.get('ledger_error') else '')

    def _set_payload(self, mass, com, inertia):
        # a load that makes no rigid body or that the arm cannot carry: ValueError, the reason
        return self.actions.set_payload(_number(mass, 'MassKg'),
                                        _numbers(com, 3, 'CenterOfMassM'),
                                        _numbers(inertia, 6, 'InertiaKgm2'))

    # ------------------------------------------------------------------ updates
    async def _update(self, server):
        values = []                           # (key, value, VariantType, stamp, source)
        limits = self.model.effort_limit
        double, string = ua.VariantType.Double, ua.VariantType.String
        for i, entry in enumerate(self.state.joints()):
            joint = entry['name']
            m, p, r = entry['measured'], entry['predicted'], entry['residual']
            a, rul = entry['anomaly'], entry['rul']
            values += [((joint, 'ActualPosition'), _field(m, 'position'), double, m),
                       ((joint, 'ActualSpeed'), _field(m, 'velocity'), double, m),
                       ((joint, 'MeasuredEffort'), _field(m, 'effort'), double, m),
                       ((joint, 'PredictedEffort'), _field(p, 'effort'), double, p),
                       ((joint, 'PredictedPosition'), _field(p, 'position'), double, p),
                       ((joint, 'EffortResidual'), _field(r, 'effort'), double, r)]
            effort = _field(m, 'effort')
            if effort is not None and limits[i] > 0:
                rate = min(65535, round(100.0 * abs(effort) / limits[i]))
                values.append(((joint, 'EffectiveLoadRate'), rate, ua.VariantType.UInt16, m))
            elif m is None:
                values.append(((joint, 'EffectiveLoadRate'), 0, ua.VariantType.UInt16, None))
            values += [((joint, 'AnomalyLevel'), _field(a, 'level', ''), string, a),
                       ((joint, 'AnomalyScore'), _field(a, 'score'), double, a),
                       ((joint, 'FaultType'), _field(a, 'fault_type', ''), string, a),
                       ((joint, 'AnomalySince'), _field(a, 'since'), double, a)]
            values += [((joint, key), _field(rul, name), double, rul) for key, name in (
                ('RulHours', 'rul_hours'), ('RulLowerHours', 'rul_lower_hours'),
                ('RulUpperHours', 'rul_upper_hours'), ('HealthIndex', 'health_index'))]
            values += [((joint, 'RecommendedAction'), _field(rul, 'recommended_action', ''),
                        string, rul), ((joint, 'DueBy'), _field(rul, 'due_by', ''), string, rul)]
        for key, value, kind, source in values:
            stamp = source.get('stamp') if source else None
            await self._write(server, key, value, kind, stamp, quality(value, source))
        for key, value, kind, status in self._robot_values():
            await self._write(server, key, value, kind, None, status)

    def _robot_values(self):
        """Return ``(key, value, VariantType, StatusCode)`` of the robot-level variables."""
        sync, anomaly = self.state.sync(), self.state.robot_anomaly()
        corrective = self.state.corrective()
        av = anomaly.get('values', {})
        string, double = ua.VariantType.String, ua.VariantType.Double
        sync_source = sync if sync['received'] is not None else None
        anomaly_source = anomaly if anomaly['received'] is not None else None
        score = finite_or_none(av.get('score'))
        enabled = corrective['enabled']
        return [(('', 'Sync.State'), sync['level'], string, quality('', sync_source)),
                (('', 'Sync.Message'), sync['message'], string, quality('', sync_source)),
                (('', 'Sync.LatencyP99'), sync['latency_p99_s'], double,
                 quality(sync['latency_p99_s'], sync_source)),
                (('', 'Anomaly.Level'), anomaly['level'], string, quality('', anomaly_source)),
                (('', 'Anomaly.Score'), score, double, quality(score, anomaly_source)),
                (('', 'Anomaly.FaultType'), av.get('fault_type', ''), string,
                 quality('', anomaly_source)),
                (('', 'Anomaly.Joint'), av.get('joint', ''), string, quality('', anomaly_source)),
                (('', 'Anomaly.Message'), anomaly['message'], string,
                 quality('', anomaly_source)),
                (('', 'CorrectiveActionsEnabled'), bool(enabled), ua.VariantType.Boolean,
                 quality(enabled, corrective if corrective['updated'] is not None else None))]

    async def _write(self, server, key, value, kind, stamp, status):
        if kind == ua.VariantType.Double and value is None:
            value = math.nan
        last = self._written.get(key)
        if last is not None and last[1:] == (stamp, status) and (last[0] == value or (
                value != value and last[0] != last[0])):       # unchanged (NaN == NaN here)
            return
        self._written[key] = (value, stamp, status)
        when = _datetime(stamp) or datetime.datetime.now(datetime.timezone.utc)
        data = ua.DataValue(ua.Variant(value, kind), StatusCode=ua.StatusCode(status),
                            SourceTimestamp=when,
                            ServerTimestamp=datetime.datetime.now(datetime.timezone.utc))
        await server.write_attribute_value(self._nodes[key], data)
