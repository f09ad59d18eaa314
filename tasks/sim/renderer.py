"""Batched ray-traced cameras of MuJoCo Warp, seen from torch without copies.

One render context serves every world. Each call refreshes the camera and light poses (they
depend on per-world model fields that randomization writes at reset), refits the scene's
bounding-volume tree to the current geom poses and casts one ray per pixel. Its outputs are
fixed buffers that the torch views below share, so a render allocates nothing.
"""

from __future__ import annotations

import mujoco_warp as mjw
import torch
import warp as wp

from dexgrasp_tasks.sim.backend import Sim
from dexgrasp_tasks.sim.mjwarp_backend import warp_array_bytes, warp_device

RAY_BYTES = 2 * 3 * 4  # a direction and an offset (vec3 float32) per pixel, shared by all worlds
PIXEL_BYTES = 4  # float32 depth or packed 8-bit BGRA per pixel and world


def image_buffer_bytes(width: int, height: int, depth_cameras: int, rgb_cameras: int, num_worlds: int) -> int:
    """Bytes of a render context's image and ray buffers (the part that grows with pixels),
    for distinct depth and colour cameras; known before anything is allocated."""
    pixels = width * height * (depth_cameras + rgb_cameras)
    return PIXEL_BYTES * pixels * num_worlds + RAY_BYTES * pixels


class BatchRenderer:
    """Depth from ``depth_cameras`` and colour from ``rgb_cameras``, all at ``width`` x ``height``."""

    def __init__(
        self,
        sim: Sim,
        width: int,
        height: int,
        depth_cameras: tuple[str, ...] = (),
        rgb_cameras: tuple[str, ...] = (),
    ):
        cameras = list(dict.fromkeys(depth_cameras + rgb_cameras))
        self.sim = sim
        n = sim.num_worlds
        with wp.ScopedDevice(warp_device(str(sim.device))):
            self.context = mjw.create_render_context(
                sim.mjm,
                nworld=n,
                cam_res=(width, height),
                cam_active=cameras,
                render_depth=[name in depth_cameras for name in cameras],
                render_rgb=[name in rgb_cameras for name in cameras],
                render_seg=False,
                use_textures=False,
                use_shadows=False,
            )
        rc = self.context
        self.depth = wp.to_torch(rc.depth_data).view(n, len(depth_cameras), height, width)
        # Packed 0xAARRGGBB words are B, G, R, A bytes in memory (little-endian).
        self.bgra = wp.to_torch(rc.rgb_data).view(torch.uint8).view(n, len(rgb_cameras), height, width, 4)
        self.image_nbytes = sum(a.capacity for a in (rc.depth_data, rc.rgb_data, rc.ray, rc.ray_offset))

    def context_bytes(self) -> int:
        """Bytes of the whole render context: images, rays and the scene's bounding-volume trees."""
        return warp_array_bytes(self.context)

    def render(self) -> None:
        """Render the current state of every world into ``depth`` and ``bgra``."""
        sim = self.sim.render_sim()
        with sim.on_torch_stream():
            mjw.camlight(sim.m, sim.d)
            mjw.refit_bvh(sim.m, sim.d, self.context)
            mjw.render(sim.m, sim.d, self.context)
