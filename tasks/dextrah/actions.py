"""How a policy's actions in [-1, 1] become the robot's joint position targets (TASK_FACTS section 2).

Two action spaces, chosen by ``task.actions.space``:

- ``joint_deltas`` (Isaac Lab dexsuite): 23 actions, each moving its joint's target by up to a
  fixed angle per policy step.
- ``palm_pose`` (DextrAH): 6 absolute palm pose targets, position and Euler ZYX angles mapped
  linearly onto their bounds and reached by damped least-squares IK every policy step, then 16
  absolute hand joint targets mapped onto the joint limits. DextrAH drives the hand through 5 PCA
  synergies; their basis is not among the published facts, so the hand's own joints stand in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from tasks.dextrah import palm_ik
from tasks.dextrah.rotations import euler_zyx_to_matrix, matrix_to_euler_zyx

if TYPE_CHECKING:
    from tasks.dextrah.env import DextrahEnv

NUM_ARM_JOINTS = 7
NUM_JOINTS = 23  # arm, then index, middle, ring and thumb with 4 each
PALM_POSE_ACTIONS = 6
NUM_ACTIONS = {"joint_deltas": NUM_JOINTS, "palm_pose": PALM_POSE_ACTIONS + NUM_JOINTS - NUM_ARM_JOINTS}
ACTION_SPACES = tuple(NUM_ACTIONS)


@dataclass(frozen=True)
class ActionSettings:
    """The action space and its scales."""

    space: str
    """joint_deltas or palm_pose (see tasks/dextrah/actions.py)."""
    arm_delta_scale: float
    """joint_deltas: radians of arm joint target change per policy step at action 1."""
    hand_delta_scale: float
    """joint_deltas: radians of hand joint target change per policy step at action 1."""
    palm_position_low: tuple[float, float, float]
    """palm_pose: palm position target at action -1 (m, robot base frame)."""
    palm_position_high: tuple[float, float, float]
    """palm_pose: palm position target at action +1."""
    palm_euler_centre_deg: tuple[float, float, float]
    """palm_pose: palm orientation target (Euler Z, Y, X) at action 0."""
    palm_euler_half_range_deg: float
    """palm_pose: orientation target change at action +-1, per angle."""
    palm_max_step: float
    """palm_pose: metres of palm position error the IK acts on per policy step (caps its speed)."""

    def __post_init__(self) -> None:
        if self.space not in ACTION_SPACES:
            raise ValueError(f"task.actions.space must be one of {', '.join(ACTION_SPACES)}, got {self.space!r}")
        if self.palm_max_step <= 0:
            raise ValueError(f"task.actions.palm_max_step must be positive, got {self.palm_max_step}")


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


class PalmPoseActions:
    """Absolute palm pose through IK plus absolute hand joint targets."""

    def __init__(self, env: DextrahEnv, settings: ActionSettings):
        dev = env.device
        self.position_low = torch.tensor(settings.palm_position_low, device=dev)
        self.position_high = torch.tensor(settings.palm_position_high, device=dev)
        self.euler_centre = torch.deg2rad(torch.tensor(settings.palm_euler_centre_deg, device=dev))
        self.euler_half_range = math.radians(settings.palm_euler_half_range_deg)
        self.max_step = settings.palm_max_step
        self.num_actions = NUM_ACTIONS["palm_pose"]

    def palm_targets(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) palm position and (N, 3, 3) orientation targets of (N, num_actions) actions."""
        position = _from_unit(actions[:, :3], self.position_low, self.position_high)
        rotation = euler_zyx_to_matrix(self.euler_centre + self.euler_half_range * actions[:, 3:PALM_POSE_ACTIONS])
        return position, rotation

    def actions_for(
        self, env: DextrahEnv, position: torch.Tensor, rotation: torch.Tensor, hand_targets: torch.Tensor
    ) -> torch.Tensor:
        """The (N, num_actions) actions that ask for these palm poses and hand targets, clamped to
        [-1, 1]: the inverse of ``palm_targets`` and of the hand's mapping."""
        turn = matrix_to_euler_zyx(rotation) - self.euler_centre
        turn = torch.remainder(turn + math.pi, 2 * math.pi) - math.pi  # the short way round
        hand_low, hand_high = env.joint_low[NUM_ARM_JOINTS:], env.joint_high[NUM_ARM_JOINTS:]
        return torch.cat([
            _to_unit(position, self.position_low, self.position_high), turn / self.euler_half_range,
            _to_unit(hand_targets, hand_low, hand_high),
        ], dim=-1).clamp(-1.0, 1.0)  # fmt: skip

    def targets(self, env: DextrahEnv, actions: torch.Tensor) -> torch.Tensor:
        position, rotation = self.palm_targets(actions)
        arm_targets = palm_ik.arm_joint_targets(env, NUM_ARM_JOINTS, position, rotation, self.max_step)
        hand_targets = _from_unit(actions[:, PALM_POSE_ACTIONS:], env.joint_low[NUM_ARM_JOINTS:], env.joint_high[NUM_ARM_JOINTS:])
        return torch.cat([arm_targets, hand_targets], dim=-1).clamp(env.joint_low, env.joint_high)


def make_action_space(env: DextrahEnv, settings: ActionSettings) -> JointDeltaActions | PalmPoseActions:
    return {"joint_deltas": JointDeltaActions, "palm_pose": PalmPoseActions}[settings.space](env, settings)


def _from_unit(actions: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """[-1, 1] onto [low, high], linearly."""
    return low + 0.5 * (actions + 1.0) * (high - low)


def _to_unit(values: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """The inverse of ``_from_unit``."""
    return 2.0 * (values - low) / (high - low) - 1.0
