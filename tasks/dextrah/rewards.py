"""The DextrAH reward terms as pure batched functions (NVIDIA's DextrAH release).

Each term is returned already weighted, so the reward is their plain sum and each one can be
logged on its own.
"""

from __future__ import annotations

import torch

from dexgrasp_tasks.dextrah.settings import RewardSettings

REWARD_TERMS = ("reach", "goal", "lift", "curl")


def reward_terms(
    hand_points: torch.Tensor,
    object_pos: torch.Tensor,
    goal: torch.Tensor,
    hand_q: torch.Tensor,
    curl_pose: torch.Tensor,
    weights: RewardSettings,
    goal_sharpness: float,
    lift_weight: float,
) -> dict[str, torch.Tensor]:
    """Weighted reward terms, each (N,).

    hand_points: (N, 5, 3) palm and four fingertips; object_pos: (N, 3); goal: (3,);
    hand_q: (N, 16) hand joint positions; curl_pose: (16,).
    """
    farthest = (hand_points - object_pos[:, None]).norm(dim=-1).amax(dim=1)
    to_goal = (object_pos - goal).norm(dim=-1)
    height_gap = (goal[2] - object_pos[:, 2]).abs()
    return {
        "reach": weights.reach_weight * torch.exp(-weights.reach_sharpness * farthest),
        "goal": weights.goal_weight * torch.exp(goal_sharpness * to_goal),
        "lift": lift_weight * torch.exp(-weights.lift_sharpness * height_gap),
        "curl": weights.curl_weight * (hand_q - curl_pose).square().sum(dim=-1),
    }
