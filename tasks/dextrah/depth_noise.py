"""Batched sim-to-real corruption of depth images (TASK_FACTS section 6), pure torch.

Every stage has static shapes and no host syncs, so `DepthNoise.apply` can later be captured
in a CUDA graph. All random numbers come from the counter-based `rng` on one stream, so world
i's noise depends only on (seed, world_ids[i], counter[i]), whichever batch it is in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tasks.dextrah import rng

_STICK_PARAMS = 6  # uniforms per stick slot: active, row, column, angle, length, width


@dataclass(frozen=True)
class DepthNoiseSettings:
    """Sim-to-real corruption of depth images (TASK_FACTS §6); off by default for teachers."""

    enabled: bool
    """Apply the noise at all."""
    dropout_prob: float
    """Probability that a valid pixel reads 0 (no return)."""
    random_value_prob: float
    """Probability that a pixel reads a uniform random depth inside the clip range."""
    stick_prob: float
    """Per-pixel probability that a stick (a thin line of missing depth) starts there."""
    stick_max_length: int
    """Longest stick in pixels (lengths are uniform in 1..max)."""
    stick_max_width: int
    """Widest stick in pixels (widths are uniform in 1..max)."""
    correlated_std: float
    """Standard deviation (m) of a smooth noise field added to valid pixels."""
    correlated_cell: int
    """Spacing in pixels of the coarse grid the smooth field is interpolated from."""

    def __post_init__(self) -> None:
        prefix = "task.cameras.noise"
        for name in ("dropout_prob", "random_value_prob", "stick_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{prefix}.{name} must be in [0, 1], got {value}")
        for name in ("stick_max_length", "stick_max_width", "correlated_cell"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{prefix}.{name} must be >= 1, got {value}")
        if not self.correlated_std >= 0.0:
            raise ValueError(f"{prefix}.correlated_std must be >= 0, got {self.correlated_std}")


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


class DepthNoise:
    """Applies the noise stages of `DepthNoiseSettings` to a fixed-size batch of depth images."""

    def __init__(
        self,
        settings: DepthNoiseSettings,
        num_envs: int,
        height: int,
        width: int,
        depth_range: tuple[float, float],
        device: torch.device | str,
    ):
        near, far = depth_range
        if not 0.0 <= near < far:
            raise ValueError(f"depth_range must satisfy 0 <= near < far, got {depth_range}")
        self.settings = settings
        self.shape = (num_envs, 1, height, width)
        self.near, self.far = float(near), float(far)
        pixels = height * width
        s = settings

        # Uniform block layout, one column range per active stage; inactive stages draw nothing.
        self.dropout_cols = pixels if s.dropout_prob > 0 else 0
        self.random_cols = pixels if s.random_value_prob > 0 else 0
        self.stick_mean = pixels * s.stick_prob
        self.stick_slots = _stick_slots(self.stick_mean) if s.stick_prob > 0 else 0

        self.grid_shape = (math.ceil(height / s.correlated_cell) + 1, math.ceil(width / s.correlated_cell) + 1)
        if s.correlated_std > 0:
            # Bilinear upsampling shrinks the variance between grid nodes (to 4/9 on average);
            # dividing by the per-pixel interpolation std keeps every pixel's std at correlated_std.
            pixel_std = torch.outer(
                _interpolation_std(height, self.grid_shape[0]), _interpolation_std(width, self.grid_shape[1])
            )
            self.field_scale = (s.correlated_std / pixel_std).to(device, torch.float32)[None, None]

        if self.stick_slots:
            # One extra column per image absorbs inactive and out-of-image candidates.
            self.stick_mask = torch.zeros(num_envs, pixels + 1, dtype=torch.bool, device=device)
            self.row_offsets = torch.arange(num_envs, device=device)[:, None, None, None] * (pixels + 1)
            self.along = torch.arange(s.stick_max_length, dtype=torch.float32, device=device)[:, None]
            self.across = torch.arange(s.stick_max_width, dtype=torch.float32, device=device)[None, :]

    def apply(self, depth: torch.Tensor, seed: int, world_ids: torch.Tensor, counter: torch.Tensor) -> None:
        """Corrupt (N, 1, H, W) float32 metric depth in place; 0 means no reading."""
        s = self.settings
        if not s.enabled:
            return
        if tuple(depth.shape) != self.shape:
            raise ValueError(f"depth must have shape {self.shape}, got {tuple(depth.shape)}")
        flat = depth.view(self.shape[0], -1)
        stream = rng.Stream.DEPTH_NOISE

        if s.correlated_std > 0:
            grid = rng.normal(seed, world_ids, counter, stream, self.grid_shape[0] * self.grid_shape[1])
            field = F.interpolate(
                grid.view(-1, 1, *self.grid_shape), size=self.shape[2:], mode="bilinear", align_corners=True
            )
            depth.add_(field * self.field_scale * (depth > 0))
            depth.masked_fill_((depth < self.near) | (depth > self.far), 0.0)

        n_uniform = self.dropout_cols + self.random_cols + _STICK_PARAMS * self.stick_slots
        if n_uniform == 0:
            return
        u = rng.uniform(seed, world_ids, counter, stream, n_uniform)
        u_dropout, u_random, u_sticks = u.split(
            [self.dropout_cols, self.random_cols, _STICK_PARAMS * self.stick_slots], dim=1
        )

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
        self.stick_mask.zero_()
        self.stick_mask.view(-1).index_fill_(0, (pixel + self.row_offsets).view(-1), True)
        return self.stick_mask[:, :dummy]
