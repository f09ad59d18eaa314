"""Batched sim-to-real corruption of depth images (the paper's and DextrAH's noise stages), pure torch.

Stages, in order: (1) sensor noise on valid pixels, the smooth correlated field plus the
normal-dependent (axial) noise of Nguyen, Izadi and Lovell (2012), both read from the clean
depth and followed by a re-clip to the depth range; (2) pixel dropout; (3) random-value pixels;
(4) sticks. Sensor noise perturbs a real return, so it comes first; the later stages replace
pixels outright.

Every stage has static shapes and no host syncs, so `DepthNoise.apply` can later be captured
in a CUDA graph. All random numbers come from the counter-based `rng` on one stream, so world
i's noise depends only on (seed, world_ids[i], counter[i]), whichever batch it is in.
"""

from __future__ import annotations

import math
import torch
import torch.nn.functional as F

from dexgrasp_tasks.dextrah import rng
from dexgrasp_tasks.dextrah.settings import DepthNoiseSettings

_STICK_PARAMS = 6  # uniforms per stick slot: active, row, column, angle, length, width
# The axial model diverges as the incidence angle nears pi/2 (grazing); steeper surfaces get the
# noise of an 80-degree one, which keeps the std finite (about 1 cm at most inside the clip range).
_MAX_INCIDENCE = math.radians(80.0)
# Worlds per chunk are chosen so that each (worlds, draw width) int64 temporary the rng builds
# holds at most 2**23 elements (64 MiB), whatever the batch size.
_DRAW_ELEMENTS_PER_CHUNK = 2**23


def _stick_slots(mean_count: float) -> int:
    """Fixed stick slots per image: the mean plus four Poisson standard deviations, plus 4.

    Each slot is active with probability mean_count / slots, so the count is
    Binomial(slots, mean / slots): its mean is exactly `mean_count` and, with this many slots,
    it is close to the Poisson count a per-pixel start probability gives.
    """
    return math.ceil(mean_count + 4.0 * math.sqrt(mean_count) + 4.0)


def _interpolation_std(size: int, grid: int) -> torch.Tensor:
    """Std of a size-long align_corners linear interpolation of `grid` iid unit normals.

    A pixel a fraction `a` between two nodes mixes them with weights (1 - a, a), so its
    variance is (1 - a)^2 + a^2: 1 on the nodes, 1/2 halfway between.
    """
    frac = torch.linspace(0.0, grid - 1.0, size, dtype=torch.float64).frac()
    return torch.sqrt((1.0 - frac) ** 2 + frac**2)


def pixel_rays(height: int, width: int, focal_length_px: float, device: torch.device | str) -> torch.Tensor:
    """(3, H, W) rays through the pixel centres: x along the columns, y along the rows, z = 1 forward.

    Pinhole with square pixels and the principal point at the image centre, so planar depth
    times the ray is the pixel's camera-frame point.
    """
    cols = (torch.arange(width, dtype=torch.float64) + 0.5 - width / 2.0) / focal_length_px
    rows = (torch.arange(height, dtype=torch.float64) + 0.5 - height / 2.0) / focal_length_px
    x, y = cols.expand(height, width), rows[:, None].expand(height, width)
    return torch.stack([x, y, torch.ones_like(x)]).to(device, torch.float32)


def _tangent(points: torch.Tensor, depth: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Difference along image axis `dim` to the valid neighbour with the smaller depth jump.

    Returns the (n, 3, H, W) tangent and an (n, 1, H, W) bool of whether any neighbour along
    that axis is valid (depth > 0; outside the image counts as missing).
    """
    size = depth.shape[dim]
    pad = (1, 1, 0, 0) if dim == 3 else (0, 0, 1, 1)
    padded_points, padded_depth = F.pad(points, pad), F.pad(depth, pad)
    before, after = padded_depth.narrow(dim, 0, size), padded_depth.narrow(dim, 2, size)
    valid_before, valid_after = before > 0, after > 0
    use_after = valid_after & (~valid_before | ((after - depth).abs() <= (depth - before).abs()))
    tangent = torch.where(
        use_after, padded_points.narrow(dim, 2, size) - points, points - padded_points.narrow(dim, 0, size)
    )
    return tangent, valid_before | valid_after


def incidence_angle(depth: torch.Tensor, rays: torch.Tensor) -> torch.Tensor:
    """(n, 1, H, W) angle (rad) between each pixel's surface normal and its viewing ray.

    Pixels are back-projected to camera-frame points; along each image axis the tangent goes
    to the valid neighbour with the smaller depth jump, so a pixel at a step edge takes its
    tangent from its own surface, and the tangents' cross product is the normal. A pixel with no
    valid neighbour along an axis (a hole or the border around it) has no normal and gets 0; one
    whose neighbours all lie across jumps (a one-pixel sliver) reads as grazing. The angle is
    clamped to `_MAX_INCIDENCE`. Missing pixels (depth 0) get a finite angle that means nothing.
    """
    points = depth * rays
    along_x, has_x = _tangent(points, depth, dim=3)
    along_y, has_y = _tangent(points, depth, dim=2)
    # Cross and dot products component by component: elementwise only, so no reduction order
    # can make a world's bits depend on the batch it is in.
    ax, ay, az = along_x.unbind(1)
    bx, by, bz = along_y.unbind(1)
    nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    px, py, pz = points.unbind(1)
    lengths = torch.sqrt(nx * nx + ny * ny + nz * nz) * torch.sqrt(px * px + py * py + pz * pz)
    cos = (nx * px + ny * py + nz * pz).abs() / lengths.clamp_min(torch.finfo(lengths.dtype).tiny)
    theta = torch.acos(cos.clamp_max(1.0)).clamp_max(_MAX_INCIDENCE)[:, None]
    return torch.where(has_x & has_y, theta, 0.0)


def axial_noise_std(depth: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Axial depth-noise std (m) of the Kinect model of Nguyen, Izadi and Lovell (2012).

    `depth` in metres (> 0), `theta` the incidence angle in radians (< pi/2).
    """
    grazing = theta**2 / (math.pi / 2.0 - theta) ** 2
    return 0.0012 + 0.0019 * (depth - 0.4) ** 2 + 0.0001 * torch.rsqrt(depth) * grazing


class DepthNoise:
    """Applies the noise stages of `DepthNoiseSettings` to a fixed-size batch of depth images.

    `focal_length_px` is the pinhole focal length (square pixels, principal point at the image
    centre); `chunk_worlds` is how many worlds `apply` corrupts at once, by default as many as
    keep each random draw within `_DRAW_ELEMENTS_PER_CHUNK`.
    """

    def __init__(
        self,
        settings: DepthNoiseSettings,
        num_envs: int,
        height: int,
        width: int,
        depth_range: tuple[float, float],
        focal_length_px: float,
        device: torch.device | str,
        chunk_worlds: int | None = None,
    ):
        near, far = depth_range
        if not 0.0 <= near < far:
            raise ValueError(f"depth_range must satisfy 0 <= near < far, got {depth_range}")
        self.settings = settings
        self.shape = (num_envs, 1, height, width)
        self.near, self.far = float(near), float(far)
        pixels = height * width
        s = settings

        # Column layout of the two draws per world, one range per active stage; inactive stages
        # draw nothing. Gaussians: field grid, axial pixels. Uniforms: dropout, random values, sticks.
        self.grid_shape = (math.ceil(height / s.correlated_cell) + 1, math.ceil(width / s.correlated_cell) + 1)
        self.grid_cols = self.grid_shape[0] * self.grid_shape[1] if s.correlated_std > 0 else 0
        self.axial_cols = pixels if s.normal_noise_scale > 0 else 0
        self.dropout_cols = pixels if s.dropout_prob > 0 else 0
        self.random_cols = pixels if s.random_value_prob > 0 else 0
        self.stick_mean = pixels * s.stick_prob
        self.stick_slots = _stick_slots(self.stick_mean) if s.stick_prob > 0 else 0
        self.stick_cols = _STICK_PARAMS * self.stick_slots
        self.gaussian_cols = self.grid_cols + self.axial_cols
        self.uniform_cols = self.dropout_cols + self.random_cols + self.stick_cols

        widest_draw = max(self.gaussian_cols, self.uniform_cols, 1)
        if chunk_worlds is None:
            chunk_worlds = max(1, _DRAW_ELEMENTS_PER_CHUNK // widest_draw)
        if chunk_worlds < 1:
            raise ValueError(f"chunk_worlds must be >= 1, got {chunk_worlds}")
        self.chunk_worlds = min(chunk_worlds, num_envs)

        if self.grid_cols:
            # Bilinear upsampling shrinks the variance between grid nodes (to 4/9 on average);
            # dividing by the per-pixel interpolation std keeps every pixel's std at correlated_std.
            pixel_std = torch.outer(
                _interpolation_std(height, self.grid_shape[0]), _interpolation_std(width, self.grid_shape[1])
            )
            self.field_scale = (s.correlated_std / pixel_std).to(device, torch.float32)[None, None]
        if self.axial_cols:
            self.rays = pixel_rays(height, width, focal_length_px, device)

        if self.stick_slots:
            # One extra column per image absorbs inactive and out-of-image candidates.
            self.stick_mask = torch.zeros(self.chunk_worlds, pixels + 1, dtype=torch.bool, device=device)
            self.row_offsets = torch.arange(self.chunk_worlds, device=device)[:, None, None, None] * (pixels + 1)
            self.along = torch.arange(s.stick_max_length, dtype=torch.float32, device=device)[:, None]
            self.across = torch.arange(s.stick_max_width, dtype=torch.float32, device=device)[None, :]

    def apply(self, depth: torch.Tensor, seed: int, world_ids: torch.Tensor, counter: torch.Tensor) -> None:
        """Corrupt (N, 1, H, W) float32 metric depth in place; 0 means no reading."""
        if not self.settings.enabled:
            return
        if tuple(depth.shape) != self.shape:
            raise ValueError(f"depth must have shape {self.shape}, got {tuple(depth.shape)}")
        # Fixed-size chunks of worlds bound the temporaries whatever N is. Every number depends
        # only on its own world's (seed, id, counter), so the result is bit-identical to one chunk.
        for start in range(0, self.shape[0], self.chunk_worlds):
            chunk = slice(start, start + self.chunk_worlds)
            self._apply_chunk(depth[chunk], seed, world_ids[chunk], counter[chunk])

    def _apply_chunk(self, depth: torch.Tensor, seed: int, world_ids: torch.Tensor, counter: torch.Tensor) -> None:
        s = self.settings
        flat = depth.view(len(depth), -1)
        stream = rng.Stream.DEPTH_NOISE

        if self.gaussian_cols:
            gaussians = rng.normal(seed, world_ids, counter, stream, self.gaussian_cols)
            noise = self._sensor_noise(depth, *gaussians.split([self.grid_cols, self.axial_cols], dim=1))
            # torch.where, not a product with the mask: a missing pixel's axial std is not finite.
            depth.add_(torch.where(depth > 0, noise, 0.0))
            depth.masked_fill_((depth < self.near) | (depth > self.far), 0.0)

        if self.uniform_cols == 0:
            return
        u = rng.uniform(seed, world_ids, counter, stream, self.uniform_cols)
        u_dropout, u_random, u_sticks = u.split([self.dropout_cols, self.random_cols, self.stick_cols], dim=1)

        if self.dropout_cols:
            flat.masked_fill_(u_dropout < s.dropout_prob, 0.0)
        if self.random_cols:
            # Given u < p, u / p is uniform in [0, 1): the hit draw doubles as the depth draw,
            # which saves a second full image of random numbers.
            hit = u_random < s.random_value_prob
            value = self.near + (self.far - self.near) * (u_random / s.random_value_prob)
            flat.copy_(torch.where(hit, value, flat))
        if self.stick_slots:
            flat.masked_fill_(self._stick_mask(u_sticks), 0.0)

    def _sensor_noise(self, depth: torch.Tensor, grid: torch.Tensor, per_pixel: torch.Tensor) -> torch.Tensor:
        """(n, 1, H, W) correlated field plus axial noise, from (n, grid cells) and (n, H*W) N(0, 1) draws."""
        noise = torch.zeros_like(depth)
        if self.grid_cols:
            field = F.interpolate(
                grid.view(-1, 1, *self.grid_shape), size=self.shape[2:], mode="bilinear", align_corners=True
            )
            noise += field * self.field_scale
        if self.axial_cols:
            std = axial_noise_std(depth, incidence_angle(depth, self.rays))
            noise += (self.settings.normal_noise_scale * std) * per_pixel.view_as(depth)
        return noise

    def _stick_mask(self, u: torch.Tensor) -> torch.Tensor:
        """(N, H*W) bool of the pixels the sticks cover, from (N, 6 * slots) uniforms."""
        s = self.settings
        height, width = self.shape[2:]
        active, row, col, angle, length, stick_width = (
            part[..., None, None] for part in u.view(-1, _STICK_PARAMS, self.stick_slots).unbind(1)
        )
        active = active < self.stick_mean / self.stick_slots
        row0 = torch.floor(row * height).clamp_max(height - 1)
        col0 = torch.floor(col * width).clamp_max(width - 1)
        length = torch.floor(length * s.stick_max_length).clamp_max(s.stick_max_length - 1) + 1
        stick_width = torch.floor(stick_width * s.stick_max_width).clamp_max(s.stick_max_width - 1) + 1
        cos, sin = torch.cos(math.pi * angle), torch.sin(math.pi * angle)

        # (N, slots, max_length, max_width) candidates: start + t * (cos, sin) + w * (-sin, cos).
        cols = torch.round(col0 + self.along * cos - self.across * sin)
        rows = torch.round(row0 + self.along * sin + self.across * cos)
        covered = (
            active
            & (self.along < length)
            & (self.across < stick_width)
            & (rows >= 0)
            & (rows < height)
            & (cols >= 0)
            & (cols < width)
        )
        dummy = height * width
        pixel = torch.where(covered, rows * width + cols, dummy).long()

        # The mask is preallocated, so the returned view is only valid until the next call.
        worlds = len(u)  # the last chunk may be shorter
        mask = self.stick_mask[:worlds]
        mask.zero_()
        mask.view(-1).index_fill_(0, (pixel + self.row_offsets[:worlds]).view(-1), True)
        return mask[:, :dummy]
