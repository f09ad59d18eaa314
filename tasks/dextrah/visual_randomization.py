"""Per-world visual randomization, written into the batched model fields at reset.

Three things change what a camera sees without touching physics: where the camera rig sits
(and where its right camera sits relative to the left), the colours of the object, the table,
the arm and the hand, and the key light's direction and intensity. Each magnitude is an ADR
range, so level 0 renders the nominal scene.
"""

from __future__ import annotations

import mujoco
import torch

from dexgrasp_tasks.dextrah.adr import ADR
from dexgrasp_tasks.dextrah.cameras import DEPTH_CAMERA, STEREO_CAMERAS
from dexgrasp_tasks.dextrah.rotations import quat_mul, quat_rotate, rotation_vector_to_quat
from dexgrasp_tasks.sim.backend import Sim

KEY_LIGHT = "key"
TABLE_GEOM = "table"
ROBOT_ROOT, HAND_ROOT = "iiwa_base", "palm"
COLOR_GROUPS = ("object", "table", "arm", "hand")
# Uniform draws per world: rig position and rotation, right camera position and rotation,
# an RGB colour per group, the light's rotation and its intensity.
NUM_DRAWS = 4 * 3 + 3 * len(COLOR_GROUPS) + 3 + 1


def _subtree(mjm: mujoco.MjModel, root: int) -> set[int]:
    bodies = {root}
    for body in range(root + 1, mjm.nbody):  # MuJoCo orders bodies parents first
        if mjm.body_parentid[body] in bodies:
            bodies.add(body)
    return bodies


def _color_groups(mjm: mujoco.MjModel, object_geom: int) -> dict[str, list[int]]:
    robot = _subtree(mjm, mjm.body(ROBOT_ROOT).id)
    hand = _subtree(mjm, mjm.body(HAND_ROOT).id)
    robot_geoms = [g for g in range(mjm.ngeom) if mjm.geom_bodyid[g] in robot]
    return {
        "object": [object_geom],
        "table": [mjm.geom(TABLE_GEOM).id],
        "arm": [g for g in robot_geoms if mjm.geom_bodyid[g] not in hand],
        "hand": [g for g in robot_geoms if mjm.geom_bodyid[g] in hand],
    }


def _symmetric(u: torch.Tensor, magnitude: float) -> torch.Tensor:
    """U(-magnitude, magnitude) from U(0, 1)."""
    return (2.0 * u - 1.0) * magnitude


class VisualRandomizer:
    """Jitters the camera rig, recolours the scene and moves the key light, per world."""

    def __init__(self, sim: Sim, stereo_baseline: float):
        mjm, model = sim.mjm, sim.model
        self.model = model
        self.rig_cameras = [mjm.camera(name).id for name in (DEPTH_CAMERA, STEREO_CAMERAS[0])]
        self.right_camera = mjm.camera(STEREO_CAMERAS[1]).id
        rig = self.rig_cameras[0]
        self.rig_pos = model["cam_pos"][0, rig].clone()
        self.rig_quat = model["cam_quat"][0, rig].clone()
        self.right_offset = torch.tensor([stereo_baseline, 0.0, 0.0], device=sim.device)
        self.light = mjm.light(KEY_LIGHT).id
        self.light_dir = model["light_dir"][0, self.light].clone()
        self.light_diffuse = model["light_diffuse"][0, self.light].clone()
        self.groups = {
            name: torch.tensor(geoms, device=sim.device) for name, geoms in _color_groups(mjm, sim.object_geom).items()
        }
        self.rgb = model["geom_rgba"][0, :, :3].clone()

    def apply(self, mask: torch.Tensor, adr: ADR, u: torch.Tensor) -> None:
        """New looks for the masked worlds; u is (N, NUM_DRAWS) uniform in [0, 1)."""
        rig_p, rig_r, right_p, right_r, colors, light_r, light_i = u.split(
            [3, 3, 3, 3, 3 * len(COLOR_GROUPS), 3, 1], dim=1
        )

        def mag(name: str) -> float:  # the upper end of a symmetric or scale range
            return adr.range(name)[1]

        def put(field: str, index, value: torch.Tensor) -> None:
            view = self.model[field]
            rows = mask.view(-1, *[1] * (value.dim() - 1))
            view[(slice(None), *index)] = torch.where(rows, value, view[(slice(None), *index)])

        # The rig turns about its own position; the right camera is placed in the rig's frame.
        quat = quat_mul(rotation_vector_to_quat(_symmetric(rig_r, mag("camera_rot_jitter"))), self.rig_quat)
        pos = self.rig_pos + _symmetric(rig_p, mag("camera_pos_jitter"))
        for camera in self.rig_cameras:
            put("cam_pos", (camera,), pos)
            put("cam_quat", (camera,), quat)
        offset = self.right_offset + _symmetric(right_p, mag("stereo_pos_jitter"))
        put("cam_pos", (self.right_camera,), pos + quat_rotate(quat, offset))
        turn = rotation_vector_to_quat(_symmetric(right_r, mag("stereo_rot_jitter")))
        put("cam_quat", (self.right_camera,), quat_mul(quat, turn))

        mix = mag("color_randomization")
        for group, rgb in zip(COLOR_GROUPS, colors.split(3, dim=1)):
            geoms = self.groups[group]
            color = (1.0 - mix) * self.rgb[geoms] + mix * rgb[:, None]
            put("geom_rgba", (geoms, slice(0, 3)), color)

        light_turn = rotation_vector_to_quat(_symmetric(light_r, mag("light_dir_jitter")))
        put("light_dir", (self.light,), quat_rotate(light_turn, self.light_dir.expand_as(light_r)))
        put("light_diffuse", (self.light,), self.light_diffuse * adr.sample("light_intensity_scale", light_i))
