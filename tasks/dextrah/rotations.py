"""Batched quaternion helpers in MuJoCo's (w, x, y, z) convention."""

from __future__ import annotations

import torch


def axis_angle_to_quat(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(N, 3) axes (any length) and (N,) angles to (N, 4) unit quaternions."""
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    half = 0.5 * angle[:, None]
    return torch.cat([torch.cos(half), torch.sin(half) * axis], dim=-1)



def rotation_vector_to_quat(rotvec: torch.Tensor) -> torch.Tensor:
    """(N, 3) rotation vectors (axis times angle) to (N, 4) unit quaternions."""
    return axis_angle_to_quat(rotvec, rotvec.norm(dim=-1))


def quat_mul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a * b of (..., 4) quaternions: rotate by b, then by a."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], dim=-1)  # fmt: skip


def quat_rotate(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Rotate (..., 3) vectors by (..., 4) unit quaternions."""
    w, xyz = q[..., :1], q[..., 1:]
    t = 2.0 * torch.cross(xyz, v, dim=-1)
    return v + w * t + torch.cross(xyz, t, dim=-1)
