"""Batched quaternion helpers in MuJoCo's (w, x, y, z) convention."""

from __future__ import annotations

import torch


def axis_angle_to_quat(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(N, 3) axes (any length) and (N,) angles to (N, 4) unit quaternions."""
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    half = 0.5 * angle[:, None]
    return torch.cat([torch.cos(half), torch.sin(half) * axis], dim=-1)


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """(N, 4) unit quaternions to (N, 3, 3) rotation matrices."""
    w, x, y, z = q.unbind(-1)
    rows = (
        (1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
        (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
        (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)),
    )
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)
