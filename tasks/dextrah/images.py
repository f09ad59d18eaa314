"""Image observations: what the task's cameras deliver to a policy, on the sim device.

``depth`` is (N, 1, H, W) planar metres kept within the configured range (0 elsewhere), in
float16 by default; ``rgb`` is (N, 2, 3, H, W) uint8, left then right camera. Both are fixed
buffers rewritten by every ``update``: a consumer that keeps an image across steps copies it.
Only the kinds a run asks for are rendered.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dexgrasp_tasks.dextrah.cameras import DEPTH_CAMERA, STEREO_CAMERAS, focal_length_px
from dexgrasp_tasks.dextrah.depth_noise import DepthNoise
from dexgrasp_tasks.dextrah.settings import CameraSettings
from dexgrasp_tasks.sim.renderer import BatchRenderer, image_buffer_bytes

IMAGE_KINDS = ("depth", "rgb")


def check_image_kinds(kinds: tuple[str, ...]) -> None:
    unknown = sorted(set(kinds) - set(IMAGE_KINDS))
    if unknown:
        raise ValueError(f"unknown image kind {unknown[0]!r}; accepted: {', '.join(IMAGE_KINDS)}")


def image_memory_bytes(settings: CameraSettings, kinds: tuple[str, ...], num_envs: int) -> int:
    """Bytes that rendering ``kinds`` for ``num_envs`` worlds allocates: render buffers plus outputs."""
    depth, rgb = "depth" in kinds, "rgb" in kinds
    pixels = settings.width * settings.height
    out = 0
    if depth:  # an out-of-range mask and the output
        out += pixels * (1 + torch.finfo(getattr(torch, settings.depth_dtype)).bits // 8)
    if rgb:
        out += pixels * 2 * 3
    render = image_buffer_bytes(settings.width, settings.height, int(depth), 2 * int(rgb), num_envs)
    return render + out * num_envs


def available_memory_bytes(device: torch.device) -> int:
    """Memory free for new allocations on ``device`` (host RAM for the CPU)."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise OSError("cannot read MemAvailable from /proc/meminfo")


def check_image_memory(settings: CameraSettings, kinds: tuple[str, ...], num_envs: int, device: torch.device) -> None:
    """Refuse, before allocating anything, images that would not fit in the device's free memory."""
    if not kinds:
        return
    need, free = image_memory_bytes(settings, kinds, num_envs), available_memory_bytes(device)
    if need > free:
        raise ValueError(
            f"rendering {'+'.join(kinds)} at {settings.resolution} for {num_envs} worlds needs "
            f"{need / 2**30:,.1f} GiB but {device} has {free / 2**30:,.1f} GiB free; "
            "lower the resolution or the number of worlds"
        )


class ImageObservations:
    """Renders the requested kinds for every world and turns them into observation tensors."""

    def __init__(self, sim, settings: CameraSettings, kinds: tuple[str, ...]):
        check_image_kinds(kinds)
        check_image_memory(settings, kinds, sim.num_worlds, sim.device)
        self.settings = settings
        n, h, w, dev = sim.num_worlds, settings.height, settings.width, sim.device
        self.renderer = BatchRenderer(
            sim, w, h,
            depth_cameras=(DEPTH_CAMERA,) if "depth" in kinds else (),
            rgb_cameras=STEREO_CAMERAS if "rgb" in kinds else (),
        )  # fmt: skip
        self.outputs: dict[str, torch.Tensor] = {}
        if "depth" in kinds:
            self._out_of_range = torch.zeros(n, 1, h, w, dtype=torch.bool, device=dev)
            self.outputs["depth"] = torch.zeros(n, 1, h, w, dtype=getattr(torch, settings.depth_dtype), device=dev)
            self.noise = DepthNoise(settings.noise, n, h, w, settings.depth_range, focal_length_px(settings), dev)
        if "rgb" in kinds:
            self.outputs["rgb"] = torch.zeros(n, len(STEREO_CAMERAS), 3, h, w, dtype=torch.uint8, device=dev)

    def memory_bytes(self) -> int:
        """Bytes held for rendering: the render context's image and ray buffers plus ours."""
        ours = [self.outputs.values()]
        if "depth" in self.outputs:
            ours.append((self._out_of_range,))
        return self.renderer.image_nbytes + sum(t.numel() * t.element_size() for group in ours for t in group)

    def update(self, seed: int, world_ids: torch.Tensor, counter: torch.Tensor) -> dict[str, torch.Tensor]:
        """Render the current state; ``counter`` seeds the depth noise (see tasks/dextrah/rng.py)."""
        self.renderer.render()
        if "depth" in self.outputs:
            self._fill_depth(seed, world_ids, counter)
        if "rgb" in self.outputs:
            bgra, rgb = self.renderer.bgra, self.outputs["rgb"]
            for channel in range(3):  # channel-first RGB from BGRA bytes, one plane at a time
                rgb[:, :, channel].copy_(bgra[..., 2 - channel])
        return self.outputs

    def _fill_depth(self, seed: int, world_ids: torch.Tensor, counter: torch.Tensor) -> None:
        near, far = self.settings.depth_range
        # The renderer's float32 buffer is rewritten by every render, so it doubles as the working
        # copy: clipping and noise happen in place there, through one preallocated mask, and
        # nothing is allocated or held beyond the output.
        metres, outside = self.renderer.depth, self._out_of_range
        metres.masked_fill_(torch.lt(metres, near, out=outside), 0.0)
        metres.masked_fill_(torch.gt(metres, far, out=outside), 0.0)
        self.noise.apply(metres, seed, world_ids, counter)
        self.outputs["depth"].copy_(metres)
