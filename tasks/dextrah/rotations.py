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


def euler_zyx_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(N, 3) intrinsic Z-Y-X angles (yaw, pitch, roll) to (N, 3, 3) rotations Rz @ Ry @ Rx."""
    (cz, cy, cx), (sz, sy, sx) = angles.cos().unbind(-1), angles.sin().unbind(-1)
    return torch.stack([
        torch.stack([cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx], dim=-1),
        torch.stack([sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx], dim=-1),
        torch.stack([-sy, cy * sx, cy * cx], dim=-1),
    ], dim=-2)  # fmt: skip


def matrix_to_euler_zyx(rotation: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) rotations to (N, 3) Z-Y-X angles, the inverse of ``euler_zyx_to_matrix`` for
    pitch in (-pi/2, pi/2)."""
    r = rotation
    return torch.stack([
        torch.atan2(r[:, 1, 0], r[:, 0, 0]), torch.asin((-r[:, 2, 0]).clamp(-1.0, 1.0)), torch.atan2(r[:, 2, 1], r[:, 2, 2]),
    ], dim=-1)  # fmt: skip
