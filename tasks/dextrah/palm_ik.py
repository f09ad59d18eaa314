"""Damped least-squares inverse kinematics of the palm: arm joint targets that move it toward a pose.

Both the DextrAH palm-pose action space and the scripted grasp drive the arm this way, once per
policy step: target = measured joints + one IK step. With the joint drives' damping the palm then
approaches its target like a first-order system, at a speed set by the capped error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from dexgrasp_tasks.dextrah.env import DextrahEnv

DAMPING = 0.1  # damped least-squares regularisation
LIMIT_MARGIN = 0.02  # rad from a joint limit at which a joint counts as blocked
MAX_ROTATION_ERROR = 0.5  # rad per axis acted on at once


def capped(error: torch.Tensor, max_norm: float | torch.Tensor) -> torch.Tensor:
    """(N, 3) errors shortened to at most ``max_norm`` (a float or an (N,) tensor)."""
    max_norm = torch.as_tensor(max_norm, dtype=error.dtype, device=error.device)
    return error * (max_norm / torch.maximum(error.norm(dim=-1), max_norm))[..., None]


def rotation_error(current: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
    """(N, 3) small-angle rotation taking (N, 3, 3) ``current`` toward ``wanted``, world frame."""
    return 0.5 * torch.cross(current, wanted, dim=1).sum(-1)


def arm_joint_targets(
    env: DextrahEnv, num_arm_joints: int, position: torch.Tensor, rotation: torch.Tensor,
    max_position_error: float | torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """(N, num_arm_joints) arm joint targets one IK step from the measured joints toward the palm
    pose: (N, 3) position and (N, 3, 3) rotation in the robot base frame. The position error is
    capped at ``max_position_error`` metres (a float or an (N,) tensor), which caps the palm's speed."""
    arm = slice(0, num_arm_joints)
    palm = env.hand_points()[:, 0]
    current = env.sim.xmat[:, env.palm_body].reshape(-1, 3, 3)
    error = torch.cat([
        capped(position - palm, max_position_error),
        rotation_error(current, rotation).clamp(-MAX_ROTATION_ERROR, MAX_ROTATION_ERROR),
    ], dim=-1)  # fmt: skip
    jacobian, q = env.sim.jacobian(env.palm_body, palm)[:, :, arm], env.sim.qpos[:, arm]
    dq = _damped_least_squares(jacobian, error)
    # Joints pressed against a limit cannot help: solve again without them. Where no joint is
    # blocked the second solve would repeat the first bit for bit, so it is skipped.
    low, high = env.joint_low[arm], env.joint_high[arm]
    blocked = ((q <= low + LIMIT_MARGIN) & (dq < 0)) | ((q >= high - LIMIT_MARGIN) & (dq > 0))
    if bool(blocked.any()):
        dq = _damped_least_squares(jacobian * ~blocked[:, None, :], error)
    return q + dq


def _damped_least_squares(jac: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """(N, A) joint step that best reduces the (N, 6) pose error through (N, 6, A) Jacobians."""
    eye = torch.eye(jac.shape[1], device=jac.device)
    gram = jac @ jac.transpose(1, 2) + DAMPING**2 * eye
    return (jac.transpose(1, 2) @ _solve(gram, error[..., None]))[..., 0]


def _solve(matrices: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.solve`` of a batch of small systems. On a CPU numpy solves them instead: torch
    hands the batch to its OpenMP threads, which then spin for milliseconds waiting for more work,
    on the cores where the C MuJoCo backend's threads step the worlds next (docs/physics.md)."""
    if matrices.device.type != "cpu":
        return torch.linalg.solve(matrices, rhs)
    return torch.from_numpy(np.linalg.solve(matrices.numpy(), rhs.numpy()))
