"""Typed settings of the DextrAH task. The numbers live in yaml/task.yaml; these say what they mean."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.dextrah.adr import ADRSettings
from tasks.sim.mjwarp_backend import SimSettings


@dataclass(frozen=True)
class RewardSettings:
    """Fixed reward weights; the goal sharpness and the lift weight are ADR ranges instead."""

    reach_weight: float
    """Weight of exp(-reach_sharpness * farthest hand point to object distance)."""
    reach_sharpness: float
    """1/m inside the reach exponential."""
    goal_weight: float
    """Weight of exp(goal_sharpness * object to goal distance)."""
    lift_sharpness: float
    """1/m inside the lift exponential of |z_goal - z_object|."""
    curl_weight: float
    """Weight of the squared distance of the finger joints from the curl pose (negative)."""


@dataclass(frozen=True)
class ObjectSettings:
    """Which objects the worlds hold."""

    count: int
    """Number of procedural objects (ignored when mesh_folder is set)."""
    seed: int
    """Seed of the procedural object set."""
    mesh_folder: str | None
    """A folder of the user's own .obj/.stl meshes to use instead of the procedural set."""
    mesh_scale: float
    """Scale applied to the user's meshes (0.001 for millimetre files)."""


@dataclass(frozen=True)
class TaskSettings:
    """Everything that defines the grasp-and-lift task except the batch and the device."""

    physics_dt: float
    """Physics time step in seconds."""
    decimation: int
    """Physics steps per policy step."""
    episode_length: int
    """Policy steps before a timeout."""
    arm_action_scale: float
    """Radians of arm joint target change per policy step at action 1."""
    hand_action_scale: float
    """Radians of hand joint target change per policy step at action 1."""
    home_arm: tuple[float, ...]
    """Arm joint positions at reset."""
    home_finger: tuple[float, ...]
    """Joint positions of each of index, middle and ring at reset."""
    home_thumb: tuple[float, ...]
    """Thumb joint positions at reset (also the thumb's curl pose)."""
    arm_joint_friction: float
    """Base friction loss of the arm joints (N m), scaled by ADR."""
    hand_joint_friction: float
    """Base friction loss of the hand joints (N m), scaled by ADR."""
    goal: tuple[float, float, float]
    """Lift goal in the robot base frame (m)."""
    success_radius: float
    """The object is in the success region when it is this close to the goal (m)."""
    success_hold_s: float
    """End an episode after this long continuously in success; 0 disables it."""
    workspace_x: tuple[float, float]
    """The episode terminates when the object leaves this x interval."""
    workspace_y: tuple[float, float]
    """The episode terminates when the object leaves this y interval."""
    min_object_z: float
    """The episode terminates when the object falls below this height."""
    spawn_xy: tuple[float, float]
    """Centre of the object spawn area."""
    spawn_z: float
    """Height from which the object is dropped."""
    settle_steps: int
    """Policy steps after reset at which the object's resting height is recorded for lift height."""
    disturbance_period_s: float
    """The random disturbance force is redrawn this often."""
    disturbance_radius: float
    """The disturbance acts only while the palm is this close to the object (m)."""
    rewards: RewardSettings
    objects: ObjectSettings
    sim: SimSettings
    adr: ADRSettings

    @property
    def policy_dt(self) -> float:
        return self.physics_dt * self.decimation
