"""A scripted grasp: approach from above, close the hand, lift to the goal.

It reads the exact object pose (it is a baseline and a test instrument, not a learner) and
drives the arm with damped least-squares inverse kinematics on the palm's Jacobian. The hand
pinches the object between the thumb and the fingers, across the object's narrowest horizontal
direction among those the wrist can reach, and carries the object (not the palm) to the goal. A
world whose object is lost during the lift starts over from the approach. It speaks either action
space of the env: joint deltas from its own IK step, or the palm pose it wants (one capped step
ahead, as it moves the palm no faster than that) with the hand's synergy coordinates.

Measured with ``dexgrasp eval --policy scripted --num-envs 64 --episodes 64 --adr-level 0``
(docs/experiments/scripted-grasp.md): 48 of 64 episodes succeed through the palm pose, 43 with
joint deltas.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from dexgrasp_tasks.dextrah import palm_ik
from dexgrasp_tasks.dextrah.actions import NUM_ARM_JOINTS, HandSynergies, PalmPoseActions

if TYPE_CHECKING:  # the env builds grasp starts from this policy
    from dexgrasp_tasks.dextrah.env import DextrahEnv

# Phase boundaries in policy steps (60 Hz) of an attempt: approach above, descend, close, then lift.
DESCEND_AT, CLOSE_AT, LIFT_AT = 70, 130, 175
APPROACH_CLEARANCE = 0.12  # m above the grasp pose before descending
FAR_SIDE_AHEAD = 0.15  # m along the fingers from the palm centre to the object's far side
THUMB_CLEARANCE = 0.0  # m along the fingers from the palm centre to the object's near side, at least
# m from the object's top to the palm face at the grasp: aiming a little into it (most grasps then
# stop at MIN_PALM_HEIGHT) holds more objects (48 of 64 episodes; 41 with 0 or -0.02).
PALM_ABOVE_TOP = -0.04
MIN_PALM_HEIGHT = 0.08  # m above the table, so the swept-back thumb clears it
MAX_PALM_ERROR = 0.1  # m of position error acted on at once, which caps the palm's speed
MAX_LIFT_ERROR = 0.04  # the same while carrying the object, so it is not shaken loose
# m from palm centre to object centre while lifting beyond which the object counts as lost (dropped
# or never held); the world starts a new attempt. Objects that tipped over or were pushed into a
# new pose are often caught the second time (48 of 64 episodes; 43 without retries, 46 at 0.2 m).
RETRY_DISTANCE = 0.15
# Finger directions tried, as yaw offsets from the home pose's. The hand is mounted with its palm
# normal across the flange axis, so a palm-down hand can only turn so far: with the object at
# the spawn point, negative offsets ran into wrist limits. Up to +90 degrees lets the hand pinch
# across capsules and ellipsoids that topple along the fingers' home direction; +120 loses more
# worlds to the wrist than it gains (48 of 64 episodes; 45 up to +60, 38 up to +120).
YAW_CANDIDATES = torch.linspace(0.0, math.pi / 2, 7)

# Hand poses as coordinates along DextrAH's hand synergies (tasks/dextrah/actions.py), so that
# both action spaces give the same joint targets. Closing mostly moves the first synergy (all
# fingers curl) from its lower bound; the third, near its lower bound, keeps the fingers' distal
# joints straighter than their knuckles, so they swing down onto the object's far side in a pinch
# that reaches near the table whatever the object's height.
OPEN_HAND_SYNERGIES = [0.25, 0.57, -0.24, 0.5, -0.55]
CLOSED_HAND_SYNERGIES = [3.3, 0.57, -0.6, 0.5, -0.55]


class ScriptedGraspPolicy:
    """The phase comes from each world's step since its current attempt began (its only state).
    ``retries``: start the grasp again when the object is out of reach after the lift began."""

    def __init__(self, env: DextrahEnv, retries: bool = True):
        self.env = env
        self.retries = retries
        dev = env.device
        self.attempt_start = torch.zeros(env.num_envs, dtype=torch.long, device=dev)
        synergies = HandSynergies(env.home[NUM_ARM_JOINTS:])
        self.open_hand = synergies.pose(torch.tensor(OPEN_HAND_SYNERGIES, device=dev))
        self.closed_hand = synergies.pose(torch.tensor(CLOSED_HAND_SYNERGIES, device=dev))
        aabb = torch.as_tensor(env.catalog.geom_aabb, dtype=torch.float32, device=dev)[env.object_ids]
        self.object_offset, self.object_half = aabb[:, 0], aabb[:, 1]
        palm_x = env.sim.xmat[0, env.palm_body].reshape(3, 3)[:, 0]
        self.home_yaw = math.atan2(float(palm_x[1]), float(palm_x[0]))
        table = env.sim.mjm.geom("table")
        self.table_top = float(table.pos[2] + table.size[2])

    def _object_frame(self) -> tuple[torch.Tensor, torch.Tensor]:
        """World rotation (N, 3, 3) and centre (N, 3) of each object's bounding box."""
        env = self.env
        rot = env.sim.geom_xmat[:, env.sim.object_geom].reshape(-1, 3, 3)
        centre = env.sim.geom_xpos[:, env.sim.object_geom] + (rot @ self.object_offset[..., None])[..., 0]
        return rot, centre

    def _finger_direction(self, rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) horizontal unit vector along which the object is narrowest, and its half-width."""
        yaws = self.home_yaw + YAW_CANDIDATES.to(rot.device)
        dirs = torch.stack([yaws.cos(), yaws.sin(), torch.zeros_like(yaws)], dim=-1)  # (Y, 3)
        # Support half-width of the box along each direction: sum_i |d . axis_i| * half_i.
        width = (torch.einsum("yc,nci->nyi", dirs, rot).abs() * self.object_half[:, None]).sum(-1)
        half_width, best = width.min(dim=1)
        return dirs[best], half_width

    def __call__(self) -> torch.Tensor:
        """(N, env.num_actions) actions for the current state of every world."""
        env = self.env
        rot, centre = self._object_frame()
        palm = env.hand_points()[:, 0]
        self.attempt_start = self.attempt_start.masked_fill(env.episode_step == 0, 0)  # a new episode's first
        if self.retries:
            lost = (env.episode_step - self.attempt_start >= LIFT_AT) & ((palm - centre).norm(dim=-1) > RETRY_DISTANCE)
            self.attempt_start = torch.where(lost, env.episode_step, self.attempt_start)
        step = env.episode_step - self.attempt_start
        top = centre[:, 2] + (rot[:, 2].abs() * self.object_half).sum(-1)
        fingers, half_width = self._finger_direction(rot)
        # The fingertips swing down onto the far side at a comfortable reach; the thumb, swept back
        # while open, swings forward onto the near side wherever it is.
        ahead = torch.maximum(FAR_SIDE_AHEAD - half_width, THUMB_CLEARANCE + half_width)
        grasp = centre - ahead[:, None] * fingers
        grasp[:, 2] = (top + PALM_ABOVE_TOP).clamp_min(self.table_top + MIN_PALM_HEIGHT)  # palm face near the object's top
        above = grasp + torch.tensor([0.0, 0.0, APPROACH_CLEARANCE], device=env.device)
        # Carry the object, not the palm, to the goal: boxes slipped up to 8 cm down the pinch and
        # stopped just outside the success radius when the palm went where the grasp had put it.
        lift = palm + env.goal - env.object_pose()[:, :3]
        target = torch.where((step < DESCEND_AT)[:, None], above, torch.where((step < LIFT_AT)[:, None], grasp, lift))

        down = torch.tensor([0.0, 0.0, -1.0], device=env.device).expand_as(fingers)
        wanted = torch.stack([fingers, torch.cross(down, fingers, dim=-1), down], dim=-1)
        reach = torch.where(step < LIFT_AT, MAX_PALM_ERROR, MAX_LIFT_ERROR)
        hand_goal = torch.where((step < CLOSE_AT)[:, None], self.open_hand, self.closed_hand)
        if isinstance(env.action_space, PalmPoseActions):
            return env.action_space.actions_for(palm + palm_ik.capped(target - palm, reach), wanted, hand_goal)
        arm = palm_ik.arm_joint_targets(env, NUM_ARM_JOINTS, target, wanted, reach) - env.targets[:, :NUM_ARM_JOINTS]
        hand = hand_goal - env.targets[:, NUM_ARM_JOINTS:]
        return (torch.cat([arm, hand], dim=-1) / env.action_space.scale).clamp(-1.0, 1.0)
