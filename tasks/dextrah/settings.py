"""Typed settings of the DextrAH task. The numbers live in yaml/task.yaml; these say what they mean."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from dexgrasp_tasks.bounds import Bounded, bound, bounds
from dexgrasp_tasks.sim.settings import SimSettings

ACTION_SPACES = ("joint_deltas", "palm_pose")  # their sizes: tasks/dextrah/actions.py


@dataclass(frozen=True)
class ActionSettings(Bounded):
    """The action space and its scales."""

    BOUNDS = bounds(
        space=ACTION_SPACES, arm_delta_scale=">= 0", hand_delta_scale=">= 0",
        palm_position_low="any", palm_position_high="any", palm_euler_centre_deg="any",
        palm_euler_half_range_deg="in [0, 180]", palm_max_step="> 0", hand_synergy_low="any", hand_synergy_high="any",
    )  # fmt: skip

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
    hand_synergy_low: tuple[float, float, float, float, float]
    """palm_pose: hand synergy coordinates at action -1."""
    hand_synergy_high: tuple[float, float, float, float, float]
    """palm_pose: hand synergy coordinates at action +1."""


@dataclass(frozen=True)
class ADRRange(Bounded):
    """A (low, high) range interpolated from `init` to `final`."""

    BOUNDS = bounds(init=bound("any", order="<="), final=bound("any", order="<="))

    init: tuple[float, float]
    final: tuple[float, float]

    def at(self, fraction: float) -> tuple[float, float]:
        """(low, high) at `fraction` in [0, 1] of the way from init to final."""
        low, high = (i + (f - i) * fraction for i, f in zip(self.init, self.final))
        return low, high


@dataclass(frozen=True)
class ADRSettings(Bounded):
    # A success_threshold below 0 raises the level at every chance (the tests' fast climb), 1 never.
    BOUNDS = bounds(num_levels=">= 1", success_threshold="any", min_steps_between_changes=">= 0", ranges="any")
    num_levels: int = 50
    success_threshold: float = 0.4  # raise only when the success fraction is strictly above
    min_steps_between_changes: int = 3000  # env (policy) steps
    ranges: dict[str, ADRRange] = field(default_factory=dict)


@dataclass(frozen=True)
class DepthNoiseSettings(Bounded):
    """Sim-to-real corruption of depth images (the paper's noise stages); off by default for teachers."""

    BOUNDS = bounds(
        dropout_prob="in [0, 1]", random_value_prob="in [0, 1]", stick_prob="in [0, 1]", stick_max_length=">= 1",
        stick_max_width=">= 1", correlated_std=">= 0", correlated_cell=">= 1", normal_noise_scale=">= 0",
    )  # fmt: skip

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
    normal_noise_scale: float
    """Multiplier of the axial noise std of Nguyen, Izadi and Lovell (2012); 0 turns it off."""


@dataclass(frozen=True)
class RewardSettings(Bounded):
    """Fixed reward weights; the goal sharpness and the lift weight are ADR ranges instead."""

    BOUNDS = bounds(reach_weight=">= 0", reach_sharpness="> 0", goal_weight=">= 0", lift_sharpness="> 0", curl_weight="<= 0")

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
class ObjectSettings(Bounded):
    """Which objects the worlds hold."""

    BOUNDS = bounds(count=">= 1", seed=">= 0", mesh_folder="any", mesh_scale="> 0")  # the folder: user_objects

    count: int
    """Number of procedural objects (ignored when mesh_folder is set)."""
    seed: int
    """Seed of the procedural object set."""
    mesh_folder: str | None
    """A folder of the user's own .obj/.stl meshes to use instead of the procedural set."""
    mesh_scale: float
    """Scale applied to the user's meshes (0.001 for millimetre files)."""


_RESOLUTION = re.compile(r"(\d+)x(\d+)")
DEPTH_DTYPES = ("float16", "float32")


def parse_resolution(text: str, name: str = "resolution") -> tuple[int, int]:
    """``"160x120"`` to (width, height); anything else is a one-line ValueError."""
    match = _RESOLUTION.fullmatch(text.strip())
    if match is None or min(int(match[1]), int(match[2])) < 1:
        raise ValueError(f"{name} must be WIDTHxHEIGHT with positive integers, e.g. 160x120; got {text!r}")
    return int(match[1]), int(match[2])


@dataclass(frozen=True)
class CameraSettings(Bounded):
    """The paper's depth camera and the stereo RGB pair beside it."""

    BOUNDS = bounds(
        resolution="any", depth_range=bound("> 0", order="<"), depth_dtype=DEPTH_DTYPES, position="any",
        direction="any", roll_deg="any", horizontal_fov_deg="in (0, 180)", stereo_baseline=">= 0",
    )  # fmt: skip

    resolution: str
    """Image size of every camera, WIDTHxHEIGHT (160x120 and 320x240 are the paper's)."""
    depth_range: tuple[float, float]
    """Depth is kept within [near, far] metres; pixels outside read 0."""
    depth_dtype: str
    """Depth observation dtype: float16 (half the memory) or float32."""
    position: tuple[float, float, float]
    """Depth (and left) camera position in the robot base frame (m)."""
    direction: tuple[float, float, float]
    """Optical axis in the robot base frame (any length)."""
    roll_deg: float
    """Roll about the optical axis; positive turns the image x axis toward world up."""
    horizontal_fov_deg: float
    """Field of view across the image width; the vertical one follows from the aspect ratio."""
    stereo_baseline: float
    """Right camera offset from the left along the image x axis (m); optical axes are parallel."""
    noise: DepthNoiseSettings

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_resolution(self.resolution, "task.cameras.resolution")
        if not any(self.direction):
            raise ValueError("task.cameras.direction must not be the zero vector")

    @property
    def width(self) -> int:
        return parse_resolution(self.resolution)[0]

    @property
    def height(self) -> int:
        return parse_resolution(self.resolution)[1]


@dataclass(frozen=True)
class TaskSettings(Bounded):
    """Everything that defines the grasp-and-lift task except the batch and the device."""

    BOUNDS = bounds(
        physics_dt="> 0", decimation=">= 1", episode_length=">= 1", home_arm="any", home_finger="any", home_thumb="any",
        arm_joint_friction=">= 0", hand_joint_friction=">= 0", goal="any", success_radius="> 0", success_hold_s=">= 0",
        workspace_x=bound("any", order="<="), workspace_y=bound("any", order="<="), min_object_z="any", spawn_xy="any",
        spawn_z="any", settle_steps=">= 0", disturbance_period_s="> 0", disturbance_radius=">= 0",
        grasp_start_fraction="in [0, 1]",
    )  # fmt: skip

    physics_dt: float
    """Physics time step in seconds."""
    decimation: int
    """Physics steps per policy step."""
    episode_length: int
    """Policy steps before a timeout."""
    actions: ActionSettings
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
    cameras: CameraSettings
    sim: SimSettings
    adr: ADRSettings
    grasp_start_fraction: float = 0.0
    """Probability that an episode starts from the scripted grasp's closed hand on the object
    (tasks/dextrah/grasp_starts.py); 0 is the paper's task. Absent from checkpoints made before it."""

    @property
    def policy_dt(self) -> float:
        return self.physics_dt * self.decimation

    def with_camera_resolution(self, resolution: str) -> TaskSettings:
        """A copy whose cameras render at ``resolution`` (WIDTHxHEIGHT)."""
        return dataclasses.replace(self, cameras=dataclasses.replace(self.cameras, resolution=resolution))
