"""How a policy's actions in [-1, 1] become the robot's joint position targets (as in NVIDIA's DextrAH release).

Two action spaces, chosen by ``task.actions.space``:

- ``joint_deltas`` (Isaac Lab dexsuite): 23 actions, each moving its joint's target by up to a
  fixed angle per policy step.
- ``palm_pose`` (DextrAH): 11 absolute targets, each mapped linearly onto its bounds. 6 give the
  palm pose, position and Euler ZYX angles, reached by damped least-squares IK every policy step.
  5 give the hand's place along DextrAH's PCA synergies; the joint targets are the hand pose with
  those synergy coordinates that is nearest the home pose (DextrAH's fabric pulls the hand's null
  space towards a default pose the same way).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from dexgrasp_tasks.dextrah import palm_ik
from dexgrasp_tasks.dextrah.settings import ActionSettings
from dexgrasp_tasks.dextrah.rotations import euler_zyx_to_matrix, matrix_to_euler_zyx

if TYPE_CHECKING:
    from dexgrasp_tasks.dextrah.env import DextrahEnv

NUM_ARM_JOINTS = 7
NUM_JOINTS = 23  # arm, then index, middle, ring and thumb with 4 each
PALM_POSE_ACTIONS = 6
# DextrAH's hand synergies (the PCA matrix of its Kuka-Allegro fabric): one orthonormal row per
# synergy, columns the hand joints in our order (index, middle, ring, thumb; joints 0-3 each).
HAND_SYNERGIES = (
    (-3.8872e-02, 3.7917e-01, 4.4703e-01, 7.1016e-03, 2.1159e-03, 3.2014e-01, 4.4660e-01, 5.2108e-02,
     5.6869e-05, 2.9845e-01, 3.8575e-01, 7.5774e-03, -1.4790e-02, 9.8163e-02, 4.3551e-02, 3.1699e-01),
    (-5.1148e-02, -1.3007e-01, 5.7727e-02, 5.7914e-01, 1.0156e-02, -1.8469e-01, 5.3809e-02, 5.4888e-01,
     1.3351e-04, -1.7747e-01, 2.7809e-02, 4.8187e-01, 2.9753e-02, 2.6149e-02, 6.6994e-02, 1.8117e-01),
    (-5.7137e-02, -3.4707e-01, 3.3365e-01, -1.8029e-01, -4.3560e-02, -4.7666e-01, 3.2517e-01, -1.5208e-01,
     -5.9691e-05, -4.5790e-01, 3.6536e-01, -1.3916e-01, 2.3925e-03, 3.7238e-02, -1.0124e-01, -1.7442e-02),
    (2.2795e-02, -3.4090e-02, 3.4366e-02, -2.6531e-02, 2.3471e-02, 4.6123e-02, 9.8059e-02, -1.2619e-03,
     -1.6452e-04, -1.3741e-02, 1.3813e-01, 2.8677e-02, 2.2661e-01, -5.9911e-01, 7.0257e-01, -2.4525e-01),
    (-4.4911e-02, -4.7156e-01, 9.3124e-02, 2.3135e-01, -2.4607e-03, 9.5564e-02, 1.2470e-01, 3.6613e-02,
     1.3821e-04, 4.6072e-01, 9.9315e-02, -8.1080e-02, -4.7617e-01, -2.7734e-01, -2.3989e-01, -3.1222e-01),
)  # fmt: skip
NUM_ACTIONS = {"joint_deltas": NUM_JOINTS, "palm_pose": PALM_POSE_ACTIONS + len(HAND_SYNERGIES)}


class JointDeltaActions:
    """Relative joint targets: target += scale * action, kept within the joint limits."""

    def __init__(self, env: DextrahEnv, settings: ActionSettings):
        self.scale = torch.tensor(
            [settings.arm_delta_scale] * NUM_ARM_JOINTS + [settings.hand_delta_scale] * (NUM_JOINTS - NUM_ARM_JOINTS),
            device=env.device,
        )  # fmt: skip
        self.num_actions = NUM_ACTIONS["joint_deltas"]

    def targets(self, env: DextrahEnv, actions: torch.Tensor) -> torch.Tensor:
        return (env.targets + self.scale * actions).clamp(env.joint_low, env.joint_high)


class HandSynergies:
    """Hand poses from coordinates along DextrAH's synergies, and back."""

    def __init__(self, home_hand: torch.Tensor):
        self.home = home_hand
        self.basis = torch.tensor(HAND_SYNERGIES, device=home_hand.device)  # (5, 16)
        # The rows are orthonormal only to the 5 digits published, so the least-norm inverse is
        # exact where the transpose would miss the asked coordinates by up to 2e-4.
        self.inverse = torch.linalg.pinv(self.basis.double()).float()  # (16, 5)
        self.home_coordinates = self.coordinates(home_hand)

    def coordinates(self, hand_pose: torch.Tensor) -> torch.Tensor:
        """(..., 5) synergy coordinates of (..., 16) hand joint angles (their projection)."""
        return _batch_invariant_matmul(hand_pose, self.basis.T)

    def pose(self, coordinates: torch.Tensor) -> torch.Tensor:
        """(..., 16) the hand pose nearest home with these (..., 5) synergy coordinates."""
        return self.home + _batch_invariant_matmul(coordinates - self.home_coordinates, self.inverse.T)


class PalmPoseActions:
    """Absolute palm pose through IK plus absolute hand synergy coordinates."""

    def __init__(self, env: DextrahEnv, settings: ActionSettings):
        dev = env.device
        self.position_low = torch.tensor(settings.palm_position_low, device=dev)
        self.position_high = torch.tensor(settings.palm_position_high, device=dev)
        self.euler_centre = torch.deg2rad(torch.tensor(settings.palm_euler_centre_deg, device=dev))
        self.euler_half_range = math.radians(settings.palm_euler_half_range_deg)
        self.max_step = settings.palm_max_step
        self.synergies = HandSynergies(env.home[NUM_ARM_JOINTS:])
        self.synergy_low = torch.tensor(settings.hand_synergy_low, device=dev)
        self.synergy_high = torch.tensor(settings.hand_synergy_high, device=dev)
        self.num_actions = NUM_ACTIONS["palm_pose"]

    def palm_targets(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) palm position and (N, 3, 3) orientation targets of (N, num_actions) actions."""
        position = _from_unit(actions[:, :3], self.position_low, self.position_high)
        rotation = euler_zyx_to_matrix(self.euler_centre + self.euler_half_range * actions[:, 3:PALM_POSE_ACTIONS])
        return position, rotation

    def actions_for(self, position: torch.Tensor, rotation: torch.Tensor, hand_targets: torch.Tensor) -> torch.Tensor:
        """The (N, num_actions) actions that ask for these palm poses and, for the hand, the synergy
        coordinates of ``hand_targets`` (its projection on the synergies), clamped to [-1, 1]: the
        inverse of ``palm_targets`` and of ``hand_targets``."""
        turn = matrix_to_euler_zyx(rotation) - self.euler_centre
        turn = torch.remainder(turn + math.pi, 2 * math.pi) - math.pi  # the short way round
        return torch.cat([
            _to_unit(position, self.position_low, self.position_high), turn / self.euler_half_range,
            _to_unit(self.synergies.coordinates(hand_targets), self.synergy_low, self.synergy_high),
        ], dim=-1).clamp(-1.0, 1.0)  # fmt: skip

    def hand_targets(self, actions: torch.Tensor) -> torch.Tensor:
        """(N, 16) hand joint targets: the pose nearest home whose synergy coordinates the actions give."""
        return self.synergies.pose(_from_unit(actions[:, PALM_POSE_ACTIONS:], self.synergy_low, self.synergy_high))

    def targets(self, env: DextrahEnv, actions: torch.Tensor) -> torch.Tensor:
        position, rotation = self.palm_targets(actions)
        arm_targets = palm_ik.arm_joint_targets(env, NUM_ARM_JOINTS, position, rotation, self.max_step)
        return torch.cat([arm_targets, self.hand_targets(actions)], dim=-1).clamp(env.joint_low, env.joint_high)


def make_action_space(env: DextrahEnv, settings: ActionSettings) -> JointDeltaActions | PalmPoseActions:
    return {"joint_deltas": JointDeltaActions, "palm_pose": PalmPoseActions}[settings.space](env, settings)


def _batch_invariant_matmul(rows: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``rows @ matrix`` summed in the same order whatever the batch size (a BLAS matmul blocks by
    it), so that a world's targets do not depend on how many worlds share its env."""
    return (rows[..., :, None] * matrix).sum(-2)


def _from_unit(actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """[-1, 1] onto [low, high], linearly."""
    return low + 0.5 * (actions + 1.0) * (high - low)


def _to_unit(values: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The inverse of ``_from_unit``."""
    return 2.0 * (values - low) / (high - low) - 1.0
