"""
Synthetic camera images of a robot arm: PyBullet's software renderer under domain randomization.

:class:`RobotScene` loads a URDF with its visual geometry (PyBullet DIRECT, headless) on a table,
and :meth:`RobotScene.sample` draws one randomized view of it and renders it with PyBullet's
TinyRenderer (CPU, no display needed): RGB, metric depth and an instance mask per robot link.
What is randomized, per sample, from the sample's own random generator:

* the joint configuration, uniform within each joint's limits (continuous joints: one turn),
  redrawn (up to 20 times) while a link frame is below the table top (links are not checked
  for collisions with each other or with the distractors);
* the camera: looks at a point near the arm from a random azimuth, elevation and distance, with
  a random vertical field of view;
* the light: direction, colour, ambient / diffuse / specular shares, shadows on or off;
* the colours of the robot's links, of the table and of the floor;
* distractors: boxes, spheres and cylinders of random size and colour on the table around the
  robot's base (never inside it).

Camera model (what :class:`CameraSample` reports): a pinhole camera with the OpenCV convention
(x right, y down, z forward; pixel centres at integer coordinates), intrinsics
``K = [[f, 0, cx], [0, f, cy], [0, 0, 1]]`` with ``f = (H / 2) / tan(fov / 2)``,
``cx = (W - 1) / 2``, ``cy = (H - 1) / 2``; ``world_from_camera`` is the camera pose in the world
frame (the robot's base is at the world origin). Depth is the z coordinate in that camera frame
(m), ``inf`` where nothing was hit.
"""
from dataclasses import dataclass
import math
from pathlib import Path

import numpy as np

from twin_sim.quiet_pybullet import pybullet
from twin_sim.urdf_model import RobotModel, URDFError

__all__ = ['CameraError', 'CameraSample', 'RobotScene', 'SceneRanges']


class CameraError(ValueError):
    """A scene cannot be built or rendered; the message says what and what to do."""


@dataclass(frozen=True)
class SceneRanges:
    """
    Ranges of the randomization (uniform between the two values of each pair).

    Attributes
    ----------
    distance_m, elevation_deg, fov_deg : (float, float)
        Camera distance to the look-at point, elevation above the table, vertical field of
        view; the azimuth is uniform over the full turn.
    target_jitter_m : float
        The look-at point moves this far (each axis) around the arm's middle.
    distractors : (int, int)
        How many objects on the table (inclusive).
    distractor_size_m : (float, float)
        Their size (box edge, sphere and cylinder diameter).
    table_half_m : float
        Half the edge of the square table top the robot stands on.
    base_clearance_m : float
        Distractors stay this far from the robot's base axis.

    """

    distance_m: tuple = (1.2, 2.2)
    elevation_deg: tuple = (10.0, 60.0)
    fov_deg: tuple = (40.0, 60.0)
    target_jitter_m: float = 0.15
    distractors: tuple = (2, 6)
    distractor_size_m: tuple = (0.05, 0.18)
    table_half_m: float = 0.9
    base_clearance_m: float = 0.3


@dataclass
class CameraSample:
    """
    One rendered, randomized view.

    Attributes
    ----------
    rgb : (H, W, 3) uint8
    depth_m : (H, W) float
        Depth (camera z), m; inf where nothing was hit.
    link_masks : dict of str -> (H, W) bool
        Visible pixels of each robot link (links not in view are left out).
    joint_names : tuple of str
    q : (n,) rad
        The joint configuration (model order).
    K : (3, 3)
        Camera intrinsics (pixels), OpenCV convention.
    world_from_camera : (4, 4)
        Camera pose (OpenCV axes) in the world frame, m.
    fov_deg : float
        Vertical field of view.
    light : dict
        The drawn light (direction, colour, coefficients, shadow).

    """

    rgb: np.ndarray
    depth_m: np.ndarray
    link_masks: dict
    joint_names: tuple
    q: np.ndarray
    K: np.ndarray
    world_from_camera: np.ndarray
    fov_deg: float
    light: dict


def _intrinsics(width, height, fov_deg):
    f = (height / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _look_at(eye, target, up=(0.0, 0.0, 1.0)):
    """Pose (4, 4) of an OpenCV camera at ``eye`` looking at ``target`` (z forward, y down)."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:                     # looking straight down
        x = np.cross(z, (1.0, 0.0, 0.0))
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    pose = np.eye(4)
    pose[:3, :3] = np.column_stack([x, y, z])
    pose[:3, 3] = eye
    return pose


class RobotScene:
    """
    A robot on a table, ready to render randomized views (one PyBullet client of its own).

    Parameters
    ----------
    urdf_path : str or Path
        The robot (its visual geometry is rendered; meshes must resolve).
    width, height : int
        Image size, pixels.
    ranges : SceneRanges, optional
        The randomization ranges.

    Raises
    ------
    CameraError
        The URDF cannot be read or loaded, or the size is not positive.

    """

    def __init__(self, urdf_path, width=640, height=480, ranges=None):
        self.width, self.height = int(width), int(height)
        if self.width < 8 or self.height < 8:
            raise CameraError(f'image size must be at least 8 x 8 pixels, got {width} x {height}')
        self.ranges = ranges or SceneRanges()
        self.urdf_path = Path(urdf_path)
        try:
            self.model = RobotModel.from_urdf(self.urdf_path, ft_link=None)
        except URDFError as exc:
            raise CameraError(str(exc)) from exc
        self._client = pybullet.connect(pybullet.DIRECT)
        if self._client < 0:
            raise CameraError('cannot start a PyBullet DIRECT client')
        try:
            self._build()
        except pybullet.error as exc:
            self.close()
            raise CameraError(f'PyBullet cannot load {self.urdf_path} with its visuals: {exc}'
                              ) from exc
        self._distractors = []

    def _build(self):
        c = self._client
        self.robot = pybullet.loadURDF(str(self.urdf_path), useFixedBase=True,
                                       physicsClientId=c)
        joints, links = {}, {-1: pybullet.getBodyInfo(self.robot, physicsClientId=c)[0].decode()}
        for i in range(pybullet.getNumJoints(self.robot, physicsClientId=c)):
            info = pybullet.getJointInfo(self.robot, i, physicsClientId=c)
            joints[info[1].decode()] = i
            links[i] = info[12].decode()
        self._joint_index = [joints[j] for j in self.model.joint_names]
        self.link_names = links                     # PyBullet link index -> URDF link name
        half = self.ranges.table_half_m
        shape = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=[half, half, 0.02],
                                           physicsClientId=c)
        self._table = pybullet.createMultiBody(0.0, -1, shape, [0.0, 0.0, -0.02],
                                               physicsClientId=c)
        shape = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=[6.0, 6.0, 0.01],
                                           physicsClientId=c)
        self._floor = pybullet.createMultiBody(0.0, -1, shape, [0.0, 0.0, -0.75],
                                               physicsClientId=c)

    # ------------------------------------------------------------------ randomization
    def _joint_configuration(self, rng, tries=20):
        """Draw joint positions within the limits, with every link frame above the table."""
        lower = np.where(np.isfinite(self.model.lower), self.model.lower, -math.pi)
        upper = np.where(np.isfinite(self.model.upper), self.model.upper, math.pi)
        for _ in range(tries):
            q = rng.uniform(lower, upper)
            for index, value in zip(self._joint_index, q):
                pybullet.resetJointState(self.robot, index, float(value), 0.0,
                                         physicsClientId=self._client)
            heights = [pybullet.getLinkState(self.robot, i, physicsClientId=self._client)[4][2]
                       for i in self.link_names if i >= 0]
            if min(heights) > 0.0:
                break
        return q

    def _colours(self, rng):
        c = self._client
        for link in self.link_names:
            pybullet.changeVisualShape(self.robot, link, rgbaColor=[*rng.uniform(0.1, 1.0, 3), 1],
                                       physicsClientId=c)
        for body in (self._table, self._floor):
            pybullet.changeVisualShape(body, -1, rgbaColor=[*rng.uniform(0.2, 0.9, 3), 1],
                                       physicsClientId=c)

    def _place_distractors(self, rng):
        c, r = self._client, self.ranges
        for body in self._distractors:
            pybullet.removeBody(body, physicsClientId=c)
        self._distractors = []
        for _ in range(int(rng.integers(r.distractors[0], r.distractors[1] + 1))):
            size = rng.uniform(*r.distractor_size_m)
            radius = rng.uniform(r.base_clearance_m + size, r.table_half_m - size / 2)
            angle = rng.uniform(0.0, 2.0 * math.pi)
            kind = int(rng.integers(3))
            colour = [*rng.uniform(0.0, 1.0, 3), 1.0]
            if kind == 0:
                shape = pybullet.createVisualShape(pybullet.GEOM_BOX, halfExtents=[size / 2] * 3,
                                                   rgbaColor=colour, physicsClientId=c)
            elif kind == 1:
                shape = pybullet.createVisualShape(pybullet.GEOM_SPHERE, radius=size / 2,
                                                   rgbaColor=colour, physicsClientId=c)
            else:
                shape = pybullet.createVisualShape(pybullet.GEOM_CYLINDER, radius=size / 2,
                                                   length=size, rgbaColor=colour,
                                                   physicsClientId=c)
            position = [radius * math.cos(angle), radius * math.sin(angle), size / 2]
            orientation = pybullet.getQuaternionFromEuler([0.0, 0.0, rng.uniform(0, math.pi)])
            self._distractors.append(pybullet.createMultiBody(
                0.0, -1, shape, position, orientation, physicsClientId=c))

    def _camera(self, rng):
        r = self.ranges
        target = self._arm_centre() + rng.uniform(-r.target_jitter_m, r.target_jitter_m, 3)
        distance = rng.uniform(*r.distance_m)
        elevation = math.radians(rng.uniform(*r.elevation_deg))
        azimuth = rng.uniform(0.0, 2.0 * math.pi)
        eye = target + distance * np.array([math.cos(elevation) * math.cos(azimuth),
                                            math.cos(elevation) * math.sin(azimuth),
                                            math.sin(elevation)])
        return _look_at(eye, target), float(rng.uniform(*r.fov_deg))

    def _arm_centre(self):
        points = [pybullet.getLinkState(self.robot, i, physicsClientId=self._client)[4]
                  for i in self.link_names if i >= 0]
        points.append(pybullet.getBasePositionAndOrientation(self.robot,
                                                             physicsClientId=self._client)[0])
        return np.mean(np.asarray(points), axis=0)

    @staticmethod
    def _light(rng):
        direction = rng.normal(size=3)
        direction[2] = abs(direction[2]) + 0.5              # from above
        return {'direction': (direction / np.linalg.norm(direction)).tolist(),
                'color': rng.uniform(0.7, 1.0, 3).tolist(),
                'ambient': float(rng.uniform(0.3, 0.7)), 'diffuse': float(rng.uniform(0.3, 0.8)),
                'specular': float(rng.uniform(0.0, 0.5)), 'shadow': bool(rng.random() < 0.5)}

    # ------------------------------------------------------------------ rendering
    def sample(self, rng):
        """
        Draw one randomized scene and render it.

        Parameters
        ----------
        rng : numpy.random.Generator
            Everything random in the sample is drawn from it.

        Returns
        -------
        CameraSample

        """
        q = self._joint_configuration(rng)
        self._colours(rng)
        self._place_distractors(rng)
        pose, fov = self._camera(rng)
        light = self._light(rng)
        rgb, depth, seg = self._render(pose, fov, light)
        masks = {}
        for link, name in self.link_names.items():
            mask = seg == self.robot + ((link + 1) << 24)
            if mask.any():
                masks[name] = mask
        return CameraSample(rgb, depth, masks, tuple(self.model.joint_names), q,
                            _intrinsics(self.width, self.height, fov), pose, fov, light)

    def _render(self, pose, fov, light, near=0.05, far=20.0):
        eye, forward, down = pose[:3, 3], pose[:3, 2], pose[:3, 1]
        view = pybullet.computeViewMatrix(eye.tolist(), (eye + forward).tolist(),
                                          (-down).tolist())
        proj = pybullet.computeProjectionMatrixFOV(fov, self.width / self.height, near, far)
        _, _, rgba, buffer, seg = pybullet.getCameraImage(
            self.width, self.height, view, proj, renderer=pybullet.ER_TINY_RENDERER,
            flags=pybullet.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX,
            lightDirection=light['direction'], lightColor=light['color'],
            lightAmbientCoeff=light['ambient'], lightDiffuseCoeff=light['diffuse'],
            lightSpecularCoeff=light['specular'], shadow=int(light['shadow']),
            physicsClientId=self._client)
        rgba = np.reshape(np.asarray(rgba, dtype=np.uint8), (self.height, self.width, 4))
        buffer = np.reshape(np.asarray(buffer, dtype=float), (self.height, self.width))
        seg = np.reshape(np.asarray(seg, dtype=np.int64), (self.height, self.width))
        depth = far * near / (far - (far - near) * buffer)   # OpenGL depth buffer -> metres
        depth[(buffer >= 1.0) | (seg < 0)] = np.inf
        return np.ascontiguousarray(rgba[:, :, :3]), depth, seg

    def close(self):
        """Disconnect the PyBullet client (idempotent)."""
        if getattr(self, '_client', None) is not None and self._client >= 0:
            try:
                pybullet.disconnect(physicsClientId=self._client)
            except pybullet.error:
                pass
        self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
