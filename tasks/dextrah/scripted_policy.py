"""A scripted grasp: approach from above, close the hand, lift to the goal.

It reads the exact object pose (it is a baseline and a test instrument, not a learner) and
drives the arm with damped least-squares inverse kinematics on the palm's Jacobian. The hand
pinches the object between the thumb and the fingers, across the object's narrowest horizontal
direction among those the wrist can reach. It speaks either action space of the env: joint deltas
from its own IK step, or the palm pose it wants (one capped step ahead, as it moves the palm no
faster than that) with the hand's synergy coordinates.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from tasks.dextrah import palm_ik
from tasks.dextrah.actions import NUM_ARM_JOINTS, HandSynergies, PalmPoseActions

if TYPE_CHECKING:  # the env builds grasp starts from this policy
    from tasks.dextrah.env import DextrahEnv

# Phase boundaries in policy steps (60 Hz): approach above, descend, close, then lift.
DESCEND_AT, CLOSE_AT, LIFT_AT = 70, 130, 175
APPROACH_CLEARANCE = 0.12  # m above the grasp pose before descending
FAR_SIDE_AHEAD = 0.15  # m along the fingers from the palm centre to the object's far side
THUMB_CLEARANCE = 0.0  # m along the fingers from the palm centre to the object's near side, at least
MIN_PALM_HEIGHT = 0.08  # m above the table, so the swept-back thumb clears it
MAX_PALM_ERROR = 0.1  # m of position error acted on at once, which caps the palm's speed
MAX_LIFT_ERROR = 0.04  # the same while carrying the object, so it is not shaken loose
# Finger directions tried, as yaw offsets from the home pose's. The hand is mounted with its palm
# normal across the flange axis, so a palm-down hand can only turn so far: with the object at
# the spawn point, offsets 0 to +60 degrees converged and the rest ran into wrist limits.
YAW_CANDIDATES = torch.linspace(0.0, math.pi / 3, 5)

# Hand poses as coordinates along DextrAH's hand synergies (tasks/dextrah/actions.py), so that
# both action spaces give the same joint targets. Closing mostly moves the first synergy (all
# fingers curl) from its lower bound; the third, near its lower bound, keeps the fingers' distal
# joints straighter than their knuckles, so they swing down onto the object's far side in a pinch
# that reaches near the table whatever the object's height. Chosen by trial: 7 or more of 16
# episodes succeed in both spaces.
OPEN_HAND_SYNERGIES = [0.25, 0.57, -0.24, 0.5, -0.55]
CLOSED_HAND_SYNERGIES = [3.3, 0.57, -0.6, 0.5, -0.55]


class ScriptedGraspPolicy:
    """Stateless per step: the phase comes from each world's step in its episode."""

    def __init__(self, env: DextrahEnv):
        self.env = env
        dev = env.device
        synergies = HandSynergies(env.home[NUM_ARM_JOINTS:])
        self.open_hand = synergies.pose(torch.tensor(OPEN_HAND_SYNERGIES, device=dev))
        self.closed_hand = synergies.pose(torch.tensor(CLOSED_HAND_SYNERGIES, device=dev))
        aabb = torch.as_tensor(env.catalog.geom_aabb, dtype=torch.float32, device=dev)[env.object_ids]
        self.object_offset, self.object_half = aabb[:, 0], aabb[:, 1]
        palm_x = env.sim.xmat[0, env.palm_body].reshape(3, 3)[:, 0]
        self.home_yaw = math.atan2(float(palm_x[1]), float(palm_x[0]))
        self.grasp_offset = torch.zeros(env.num_envs, 3, device=dev)
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
        step = env.episode_step
        rot, centre = self._object_frame()
        top = centre[:, 2] + (rot[:, 2].abs() * self.object_half).sum(-1)
        fingers, half_width = self._finger_direction(rot)
        # The fingertips swing down onto the far side at a comfortable reach; the thumb, swept back
        # while open, swings forward onto the near side wherever it is.
        ahead = torch.maximum(FAR_SIDE_AHEAD - half_width, THUMB_CLEARANCE + half_width)
        grasp = centre - ahead[:, None] * fingers
        grasp[:, 2] = top.clamp_min(self.table_top + MIN_PALM_HEIGHT)  # palm face on the object's top
        above = grasp + torch.tensor([0.0, 0.0, APPROACH_CLEARANCE], device=env.device)
        palm = env.hand_points()[:, 0]
        self.grasp_offset = torch.where((step < LIFT_AT)[:, None], palm - centre, self.grasp_offset)
        lift = env.goal + self.grasp_offset
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
