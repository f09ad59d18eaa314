"""Batched quaternion helpers in MuJoCo's (w, x, y, z) convention."""

from __future__ import annotations

import torch


def axis_angle_to_quat(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(N, 3) axes (any length) and (N,) angles to (N, 4) unit quaternions."""
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    half = 0.5 * angle[:, None]
    return torch.cat([torch.cos(half), torch.sin(half) * axis], dim=-1)

