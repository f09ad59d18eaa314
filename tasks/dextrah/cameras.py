"""Where the task's cameras are: the paper's depth camera and a stereo pair.

The left RGB camera shares the depth camera's pose, so a student sees what its teacher saw; the
right one sits ``stereo_baseline`` along the image x axis with a parallel optical axis, which
makes disparity purely horizontal in the image.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

from dexgrasp_tasks.dextrah.settings import CameraSettings
from dexgrasp_tasks.sim.scene import CameraSpec

DEPTH_CAMERA = "depth"
STEREO_CAMERAS = ("left", "right")
_WORLD_UP = np.array([0.0, 0.0, 1.0])


def camera_axes(settings: CameraSettings) -> np.ndarray:
    """(3, 3) columns: the camera's x (image right), y (image up) and z (backwards) in the world."""
    forward = np.asarray(settings.direction, dtype=float)
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, _WORLD_UP)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    roll = math.radians(settings.roll_deg)
    x = math.cos(roll) * right + math.sin(roll) * up
    y = -math.sin(roll) * right + math.cos(roll) * up
    return np.stack([x, y, -forward], axis=1)


def vertical_fov_deg(settings: CameraSettings) -> float:
    """MuJoCo's fovy for the configured horizontal field of view at this aspect ratio."""
    half = math.radians(settings.horizontal_fov_deg) / 2.0
    return math.degrees(2.0 * math.atan(math.tan(half) * settings.height / settings.width))


def focal_length_px(settings: CameraSettings) -> float:
    """Pinhole focal length in pixels (square pixels)."""
    return settings.width / 2.0 / math.tan(math.radians(settings.horizontal_fov_deg) / 2.0)


def camera_specs(settings: CameraSettings) -> tuple[CameraSpec, ...]:
    """The nominal depth, left and right cameras, before any per-world jitter."""
    axes = camera_axes(settings)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, axes.flatten())
    pos = np.asarray(settings.position, dtype=float)
    right_pos = pos + settings.stereo_baseline * axes[:, 0]
    fovy = vertical_fov_deg(settings)
    q = tuple(quat)
    return (
        CameraSpec(DEPTH_CAMERA, tuple(pos), q, fovy),
        CameraSpec(STEREO_CAMERAS[0], tuple(pos), q, fovy),
        CameraSpec(STEREO_CAMERAS[1], tuple(right_pos), q, fovy),
    )
