"""
Foxglove live view and MCAP recording of the twin (Foxglove SDK), from the hub's state.

At ``rate_hz`` the publisher logs, on a Foxglove context of its own:

- ``/scene`` (foxglove.SceneUpdate): the robot (opaque, its URDF colours) at the measured joint
  positions and the twin (translucent blue ghost) at the predicted ones, one entity per link
  built from the URDF's visual geometry (boxes, cylinders, spheres; meshes embedded when the
  file is found), in frame ``world`` (the URDF's root link);
- ``/robot/joint_states`` and ``/twin/predicted_joint_states`` (foxglove.JointStates);
- ``/twin/residual`` (JSON): measured minus predicted per joint, ``effort.<joint>`` N·m,
  ``position.<joint>`` rad — for the Plot panel;
- ``/twin/anomaly_score`` (JSON): ``robot`` and ``joints.<joint>`` as score / threshold (1 =
  the alarm threshold);
- ``/twin/anomaly_log`` (foxglove.Log): one line when an alarm starts, ends or is acknowledged.

The same channels go to the WebSocket server (``address``) and, when ``mcap_path`` is given, to
an MCAP file: a recording opened in Foxglove shows the robot model, the ghost and the plots.
"""
import json
import math
from pathlib import Path
import threading
import time
import xml.etree.ElementTree as ElementTree

import foxglove
from foxglove.channels import JointStatesChannel, LogChannel, SceneUpdateChannel
from foxglove.messages import (Color, CubePrimitive, CylinderPrimitive, JointState, JointStates,
                               Log, LogLevel, ModelPrimitive, Pose, Quaternion, SceneEntity,
                               SceneUpdate, SpherePrimitive, Timestamp, Vector3)
import numpy as np
import pinocchio
from scipy.spatial.transform import Rotation
from transforms3d.euler import euler2mat

WORLD = 'world'
GHOST_RGBA = (0.25, 0.55, 1.0, 0.35)
MAX_MESH_BYTES = 8 * 1024 * 1024
MESH_TYPES = {'.stl': 'model/stl', '.dae': 'model/vnd.collada+xml', '.glb': 'model/gltf-binary'}


def _floats(text, default):
    return [float(v) for v in text.split()] if text else list(default)


def _transform(xyz, rpy):
    t = np.eye(4)
    t[:3, :3] = euler2mat(*rpy, axes='sxyz')
    t[:3, 3] = xyz
    return t


def urdf_visuals(path):
    """
    Read the visual geometry of every link of a URDF.

    Returns
    -------
    dict
        ``{link: [(T_link_visual (4, 4), kind, size, rgba, mesh_path), ...]}`` with ``kind``
        one of ``box``, ``cylinder``, ``sphere``, ``mesh``; ``size`` (3,) m as Foxglove wants
        it (box edges; cylinder diameter, diameter, length; sphere diameter x3; mesh scale);
        ``rgba`` (4,) from the visual's material (grey when none); ``mesh_path`` a local file
        or None.

    """
    root = ElementTree.parse(path).getroot()
    colours = {m.get('name'): _floats(m.find('color').get('rgba'), (0.6,) * 4)
               for m in root.findall('material') if m.find('color') is not None}
    out = {}
    for link in root.findall('link'):
        visuals = []
        for visual in link.findall('visual'):
            origin = visual.find('origin')
            xyz = _floats(origin.get('xyz') if origin is not None else '', (0, 0, 0))
            rpy = _floats(origin.get('rpy') if origin is not None else '', (0, 0, 0))
            entry = _geometry(visual.find('geometry'), Path(path).parent)
            if entry is None:
                continue
            material = visual.find('material')
            rgba = (0.6, 0.6, 0.6, 1.0)
            if material is not None:
                colour = material.find('color')
                rgba = _floats(colour.get('rgba'), rgba) if colour is not None else \
                    colours.get(material.get('name'), rgba)
            visuals.append((_transform(xyz, rpy), entry[0], entry[1], tuple(rgba), entry[2]))
        if visuals:
            out[link.get('name')] = visuals
    return out


def _geometry(geometry, folder):
    if geometry is None or not len(geometry):
        return None
    shape = geometry[0]
    if shape.tag == 'box':
        return 'box', _floats(shape.get('size'), (0.1,) * 3), None
    if shape.tag == 'cylinder':
        d = 2.0 * float(shape.get('radius', 0.05))
        return 'cylinder', [d, d, float(shape.get('length', 0.1))], None
    if shape.tag == 'sphere':
        return 'sphere', [2.0 * float(shape.get('radius', 0.05))] * 3, None
    if shape.tag == 'mesh':
        filename = shape.get('filename', '')
        local = Path(filename[len('file://'):] if filename.startswith('file://') else filename)
        local = local if local.is_absolute() else folder / local
        scale = _floats(shape.get('scale'), (1.0, 1.0, 1.0))
        found = local.is_file() and local.suffix.lower() in MESH_TYPES \
            and local.stat().st_size <= MAX_MESH_BYTES
        return 'mesh', scale, str(local) if found else None
    return None


def _poses(transforms):
    """Foxglove poses of (k, 4, 4) transforms (one batch conversion to quaternions)."""
    if not len(transforms):
        return []
    quats = Rotation.from_matrix(transforms[:, :3, :3]).as_quat()     # (k, 4) x, y, z, w
    return [Pose(position=Vector3(x=float(t[0, 3]), y=float(t[1, 3]), z=float(t[2, 3])),
                 orientation=Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]),
                                        w=float(q[3])))
            for t, q in zip(transforms, quats)]


def _timestamp(stamp):
    stamp = time.time() if stamp is None else stamp
    sec = int(math.floor(stamp))
    return Timestamp(sec, int((stamp - sec) * 1e9))


class RobotScene:
    """
    Scene entities of the robot at any joint positions (URDF visuals placed by kinematics).

    Parameters
    ----------
    model : twin_sim.urdf_model.RobotModel
        Joint order and forward kinematics (``frame_pose``).

    """

    def __init__(self, model):
        self.model = model
        self.visuals = urdf_visuals(model.urdf_path)
        self._frames = {link: model.pin_model.getFrameId(link) for link in self.visuals}
        self._data = model.pin_model.createData()
        self._meshes = {}

    def link_poses(self, q):
        """World poses (4, 4) of the links with visuals at joint positions ``q`` (n,) rad."""
        pinocchio.framesForwardKinematics(self.model.pin_model, self._data, q)
        return {link: self._data.oMf[fid].homogeneous for link, fid in self._frames.items()}

    def entities(self, q, prefix, stamp=None, rgba=None, scale=1.0):
        """
        Return one SceneEntity per link with visuals.

        Parameters
        ----------
        q : (n,) rad
            Joint positions in model order (None entries count as 0).
        prefix : str
            Entity id prefix (``robot/``, ``twin/``).
        stamp : float, optional
            Robot stamp, s.
        rgba : tuple, optional
            One colour for every primitive (the ghost); default: the URDF's.
        scale : float
            Size factor of every primitive (the ghost is drawn a little larger).

        """
        q = np.array([0.0 if v is None else v for v in q], dtype=float)
        links = self.link_poses(q)
        placed = [(link, links[link] @ visual[0], visual)
                  for link, visuals in self.visuals.items() for visual in visuals]
        poses = _poses(np.array([t for _, t, _ in placed]))
        by_link = {}
        for (link, _, visual), pose in zip(placed, poses):
            by_link.setdefault(link, []).append((pose, visual))
        out = []
        for link, items in by_link.items():
            prims = {'cubes': [], 'cylinders': [], 'spheres': [], 'models': []}
            for pose, (_, kind, size, colour, mesh) in items:
                c = Color(**dict(zip('rgba', rgba or colour)))
                if kind == 'mesh':
                    if mesh is not None:
                        prims['models'].append(ModelPrimitive(
                            pose=pose, scale=Vector3(**dict(zip('xyz', size))), color=c,
                            override_color=rgba is not None, data=self._mesh(mesh),
                            media_type=MESH_TYPES[Path(mesh).suffix.lower()]))
                    continue
                size3 = Vector3(**dict(zip('xyz', (scale * s for s in size))))
                key = {'box': 'cubes', 'cylinder': 'cylinders', 'sphere': 'spheres'}[kind]
                primitive = {'cubes': CubePrimitive, 'cylinders': CylinderPrimitive,
                             'spheres': SpherePrimitive}[key]
                prims[key].append(primitive(pose=pose, size=size3, color=c))
            out.append(SceneEntity(timestamp=_timestamp(stamp), frame_id=WORLD,
                                   id=prefix + link, **prims))
        return out

    def _mesh(self, path):
        if path not in self._meshes:
            self._meshes[path] = Path(path).read_bytes()
        return self._meshes[path]


def _json_schema(name, schema):
    return foxglove.Schema(name=name, encoding='jsonschema',
                           data=json.dumps(schema).encode('utf-8'))


_SCORE_SCHEMA = {'type': 'object', 'properties': {
    'robot': {'type': 'number'}, 'joints': {'type': 'object',
                                            'additionalProperties': {'type': 'number'}}}}
_RESIDUAL_SCHEMA = {'type': 'object', 'properties': {
    'stamp': {'type': 'number'},
    'effort': {'type': 'object', 'additionalProperties': {'type': 'number'}},
    'position': {'type': 'object', 'additionalProperties': {'type': 'number'}}}}


class FoxglovePublisher:
    """
    Publish the hub's state to a Foxglove WebSocket server and/or an MCAP file, in a thread.

    Parameters
    ----------
    state : robot_twin.hub.state.TwinState
        Read every ``1 / rate_hz`` s.
    model : twin_sim.urdf_model.RobotModel
        The robot (URDF visuals, kinematics).
    address : (str, int) or None
        WebSocket server host and port; None = no server.
    mcap_path : str
        Record to this MCAP file ('' = no recording).
    rate_hz : float
        Updates per second.

    """

    def __init__(self, state, model, address=None, *, mcap_path='', rate_hz=20.0):
        self.state = state
        self.scene = RobotScene(model)
        self.address, self.mcap_path = address, mcap_path
        self.period_s = 1.0 / float(rate_hz)
        self.context = foxglove.Context()
        ctx = self.context
        self.channels = {
            'scene': SceneUpdateChannel('/scene', context=ctx),
            'measured': JointStatesChannel('/robot/joint_states', context=ctx),
            'predicted': JointStatesChannel('/twin/predicted_joint_states', context=ctx),
            'residual': foxglove.Channel(
                '/twin/residual', schema=_json_schema('robot_twin.Residual', _RESIDUAL_SCHEMA),
                message_encoding='json', context=ctx),
            'score': foxglove.Channel(
                '/twin/anomaly_score', message_encoding='json',
                schema=_json_schema('robot_twin.AnomalyScore', _SCORE_SCHEMA), context=ctx),
            'log': LogChannel('/twin/anomaly_log', context=ctx),
        }
        self.server = None
        self.mcap = None
        self._stop = threading.Event()
        self._thread = None
        self._episodes = {}

    def start(self):
        """Open the server and the recording, start the publishing thread; return self."""
        if self.address is not None:
            self.server = foxglove.start_server(
                name=f'robot_twin hub ({self.state.robot_name})', host=self.address[0],
                port=self.address[1], context=self.context)
        if self.mcap_path:
            self.mcap = foxglove.open_mcap(self.mcap_path, allow_overwrite=True,
                                           context=self.context)
        self._thread = threading.Thread(target=self._run, name='hub-foxglove', daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop publishing; close the recording (a valid MCAP file) and the server."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self.mcap is not None:
            self.mcap.close()
        if self.server is not None:
            self.server.stop()

    def _run(self):
        while not self._stop.wait(self.period_s):
            self.publish_once()

    def publish_once(self):
        """Log one update of every channel from the current state."""
        joints = self.state.joints()
        names = [j['name'] for j in joints]
        measured = [j['measured'] for j in joints]
        predicted = [j['predicted'] for j in joints]
        entities = []
        for kind, samples in (('measured', measured), ('predicted', predicted)):
            if all(s is None for s in samples):
                continue
            stamp = next(s['stamp'] for s in samples if s is not None)
            q = [s['position'] if s else None for s in samples]
            self.channels[kind].log(JointStates(timestamp=_timestamp(stamp), joints=[
                JointState(name=n, position=_num(s and s['position']),
                           velocity=_num(s and s['velocity']), effort=_num(s and s['effort']))
                for n, s in zip(names, samples)]))
            entities += self.scene.entities(q, 'robot/', stamp) if kind == 'measured' else \
                self.scene.entities(q, 'twin/', stamp, rgba=GHOST_RGBA, scale=1.03)
        if entities:
            self.channels['scene'].log(SceneUpdate(entities=entities))
        residual = [j['residual'] for j in joints]
        if any(r is not None for r in residual):
            self.channels['residual'].log({
                'stamp': next(r['stamp'] for r in residual if r is not None),
                'effort': {n: r['effort'] for n, r in zip(names, residual)
                           if r and r['effort'] is not None},
                'position': {n: r['position'] for n, r in zip(names, residual)
                             if r and r['position'] is not None}})
        self._log_scores(joints)
        self._log_episodes()

    def _log_scores(self, joints):
        ratios = {}
        for j in joints:
            a = j['anomaly']
            if a and a['score'] is not None and a['threshold']:
                ratios[j['name']] = a['score'] / a['threshold']
        robot = self.state.snapshot(events=False)['anomaly'].get('values', {})
        try:
            score = float(robot.get('score', 'nan'))
        except ValueError:
            score = math.nan
        if ratios or math.isfinite(score):
            self.channels['score'].log({'robot': score if math.isfinite(score) else None,
                                        'joints': ratios})

    def _log_episodes(self):
        for e in self.state.anomalies()['episodes']:
            seen = self._episodes.get(e['id'])
            now = (e['active'], e['acknowledged_at'])
            if seen == now:
                continue
            self._episodes[e['id']] = now
            if e['active'] and (seen is None or seen[0] is False):
                level, text = LogLevel.Error, f'anomaly {e["id"]} on {e["joint"]}: ' \
                                              f'{e["fault_type"]} ({e["message"]})'
            elif not e['active'] and (seen is None or seen[0]):
                level, text = LogLevel.Info, f'anomaly {e["id"]} on {e["joint"]} cleared'
            else:
                level, text = LogLevel.Warning, f'anomaly {e["id"]} acknowledged by ' \
                                                f'{e["acknowledged_by"]}: {e["note"]}'
            self.channels['log'].log(Log(timestamp=_timestamp(None), level=level,
                                         message=text, name='robot_twin'))


def _num(value):
    return float('nan') if value is None else float(value)
