"""DextrahEnv: the Kuka + Allegro grasp-and-lift task over a batch of physics worlds (tasks/sim/backend.py).

``reset`` and ``step`` are batched torch operations with no loop over worlds. Worlds are named by
their global index (``env_offset + i``): a world's object, random numbers and randomization
depend only on that index, the seed and the world's own episode and step counters, so worlds
[a:b] of a large env behave exactly like a small env created with ``env_offset=a``.

``reset`` and ``step`` run in torch's inference mode: none of the task's few hundred small
operations a step records anything for autograd, which saves about 5% of a 64-world step on a
CPU. The tensors they return are inference tensors: clone one before it enters a graph that
autograd differentiates (as the input of a layer being trained).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from dexgrasp_assets.objects import ObjectShape, mesh_folder_objects, procedural_objects
from dexgrasp_tasks.dextrah import rng
from dexgrasp_tasks.dextrah.actions import NUM_ARM_JOINTS, NUM_JOINTS, make_action_space
from dexgrasp_tasks.dextrah.adr import ADR, noise_width_and_bias, step_noise
from dexgrasp_tasks.dextrah.cameras import camera_specs
from dexgrasp_tasks.dextrah.grasp_starts import GraspStarts
from dexgrasp_tasks.dextrah.images import ImageObservations, check_image_kinds
from dexgrasp_tasks.dextrah.randomization import PHYSICS_PARAMS, PhysicsRandomizer
from dexgrasp_tasks.dextrah.rewards import REWARD_TERMS, reward_terms
from dexgrasp_tasks.dextrah.rotations import axis_angle_to_quat
from dexgrasp_tasks.dextrah.settings import TaskSettings
from dexgrasp_tasks.dextrah.visual_randomization import NUM_DRAWS as NUM_VISUAL_DRAWS
from dexgrasp_tasks.dextrah.visual_randomization import VisualRandomizer
from dexgrasp_tasks.sim.factory import make_sim
from dexgrasp_tasks.sim.scene import build_scene

HAND_POINT_SITES = ("palm_center", "index_tip", "middle_tip", "ring_tip", "thumb_tip")
_OBJ_QPOS = slice(NUM_JOINTS, NUM_JOINTS + 7)  # free joint: position then (w, x, y, z)
_OBJ_QVEL = slice(NUM_JOINTS, NUM_JOINTS + 6)  # free joint: linear (world) then angular (body)
_STEP_BITS = 20  # random-number counter = episode index * 2**20 + step in episode
# Observation noise groups, in the order of the noisy values: ADR range prefix and number of values.
_NOISE_KINDS = (("joint_pos", NUM_JOINTS), ("joint_vel", NUM_JOINTS), ("object_pos", 3), ("object_rot", 4))
_NOISE_SIZES = [size for _, size in _NOISE_KINDS]
_NUM_NOISY = sum(_NOISE_SIZES)


def load_objects(settings: TaskSettings) -> list[ObjectShape]:
    """The object set the settings name: a user's mesh folder or the procedural set."""
    objects = settings.objects
    if objects.mesh_folder is not None:
        return mesh_folder_objects(objects.mesh_folder, objects.mesh_scale)
    return procedural_objects(objects.count, objects.seed)


@dataclass
class StepResult:
    """What one policy step returns. Every tensor has the batch as its first dimension."""

    obs: dict[str, torch.Tensor]
    reward: torch.Tensor
    terminated: torch.Tensor
    """The object left the workspace or fell: a true end, no bootstrapping."""
    truncated: torch.Tensor
    """Timeout, success hold or a reset after a buffer overflow: the value is bootstrapped."""
    info: dict


class DextrahEnv:
    """The grasp-and-lift task; see the module docstring for how worlds are indexed."""

    def __init__(
        self,
        settings: TaskSettings,
        num_envs: int,
        device: str = "cpu",
        seed: int = 0,
        env_offset: int = 0,
        objects: list[ObjectShape] | None = None,
        images: tuple[str, ...] = (),
        depth_resolution: str | None = None,
    ):
        """``depth_resolution``: render depth at this WIDTHxHEIGHT instead of the cameras' resolution
        (a depth teacher distilled into a student that sees RGB at another one)."""
        check_image_kinds(images)
        self.settings = settings
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.seed = seed
        self.world_ids = torch.arange(env_offset, env_offset + num_envs, device=self.device)
        shapes = objects if objects is not None else load_objects(settings)
        mjm, self.catalog = build_scene(shapes, camera_specs(settings.cameras))
        self.num_objects = len(self.catalog)
        self.object_ids = self.world_ids % self.num_objects
        self.sim = make_sim(mjm, self.catalog, self.object_ids.cpu().numpy(), device, settings.sim)
        self.adr = ADR(settings.adr)
        own_depth = "depth" in images and depth_resolution not in (None, settings.cameras.resolution)
        shared = tuple(kind for kind in images if not (own_depth and kind == "depth"))
        self.images = ImageObservations(self.sim, settings.cameras, shared) if shared else None
        self.depth_images = None
        if own_depth:
            depth_cameras = dataclasses.replace(settings.cameras, resolution=depth_resolution)
            self.depth_images = ImageObservations(self.sim, depth_cameras, ("depth",))
        self.visuals = VisualRandomizer(self.sim, settings.cameras.stereo_baseline) if images else None

        dev, f32 = self.device, torch.float32
        joint_range = torch.tensor(mjm.jnt_range[:NUM_JOINTS], dtype=f32, device=dev)
        self.joint_low, self.joint_high = joint_range[:, 0], joint_range[:, 1]
        home = list(settings.home_arm) + list(settings.home_finger) * 3 + list(settings.home_thumb)
        self.home = torch.tensor(home, dtype=f32, device=dev)
        self.curl_pose = torch.cat([torch.zeros(12, device=dev), self.home[-4:]])
        self.action_space = make_action_space(self, settings.actions)
        self.num_actions = self.action_space.num_actions
        self.goal = torch.tensor(settings.goal, dtype=f32, device=dev)
        self.hand_point_sites = torch.tensor([mjm.site(name).id for name in HAND_POINT_SITES], device=dev)
        self.palm_body = mjm.body("palm").id
        joint_friction = [settings.arm_joint_friction] * NUM_ARM_JOINTS + [
            settings.hand_joint_friction
        ] * (NUM_JOINTS - NUM_ARM_JOINTS)
        self.randomizer = PhysicsRandomizer(self.sim, torch.tensor(joint_friction, device=dev))
        self.object_onehot = torch.nn.functional.one_hot(self.object_ids, self.num_objects).to(f32)
        self.object_half_extents = torch.as_tensor(
            self.catalog.half_extents, dtype=f32, device=dev
        )[self.object_ids]
        self.success_hold_steps = round(settings.success_hold_s / settings.policy_dt)
        self.disturbance_period = max(1, round(settings.disturbance_period_s / settings.policy_dt))

        n, zeros = num_envs, lambda *shape, dtype=f32: torch.zeros(*shape, dtype=dtype, device=dev)
        self.episode_index = torch.full((n,), -1, dtype=torch.long, device=dev)
        self.episode_step = zeros(n, dtype=torch.long)
        self.episode_limit = torch.full((n,), settings.episode_length, dtype=torch.long, device=dev)
        self.targets = zeros(n, NUM_JOINTS)
        self.last_action = zeros(n, self.num_actions)
        self.prev_points = zeros(n, len(HAND_POINT_SITES), 3)
        # Per-episode observation noise of every noisy value, in _NOISE_KINDS order (one group's
        # width repeated over its values), so that a step adds all the noise in a few operations.
        self.noise_width = zeros(n, _NUM_NOISY)
        self.noise_bias = zeros(n, _NUM_NOISY)
        self.disturbance = zeros(n, 3)
        self.success_steps = zeros(n, dtype=torch.long)
        self.returns = zeros(n, len(REWARD_TERMS))
        self.reached = zeros(n, dtype=torch.bool)
        self.first_success = zeros(n, dtype=torch.long)
        self.settle_z = zeros(n)
        self.max_z = zeros(n)
        self.grasp_started = zeros(n, dtype=torch.bool)
        self.overflow_resets = 0
        self.grasp_starts: GraspStarts | None = None
        if settings.grasp_start_fraction > 0:
            self.grasp_starts = GraspStarts.record(self)
        self.reset()

    def observation_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-world shape of each observation."""
        return {name: tuple(value.shape[1:]) for name, value in self.observations().items()}

    # ------------------------------------------------------------------ random numbers
    def _counter(self) -> torch.Tensor:
        """Per-world random-number counter: unique to each episode and step of a world."""
        return (self.episode_index << _STEP_BITS) + self.episode_step

    def _uniform(self, stream: rng.Stream, n: int) -> torch.Tensor:
        return rng.uniform(self.seed, self.world_ids, self._counter(), stream, n)

    def _normal(self, stream: rng.Stream, n: int) -> torch.Tensor:
        return rng.normal(self.seed, self.world_ids, self._counter(), stream, n)

    # ------------------------------------------------------------------ reset
    @torch.inference_mode()
    def reset(self, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Start new episodes in the masked worlds (all when None) and return observations."""
        if mask is None:
            mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._reset(mask)
        return self.observations()

    def _reset(self, mask: torch.Tensor) -> None:
        rows = mask[:, None]
        self.episode_index += mask.long()
        self.episode_step.masked_fill_(mask, 0)
        self.episode_limit.masked_fill_(mask, self.settings.episode_length)
        self.sim.reset_worlds(mask)
        self.randomizer.apply(mask, self.adr, self._uniform(rng.Stream.PHYSICS_PARAMS, len(PHYSICS_PARAMS)))
        if self.visuals is not None:
            self.visuals.apply(mask, self.adr, self._uniform(rng.Stream.VISUAL, NUM_VISUAL_DRAWS))

        u = self._uniform(rng.Stream.RESET_JOINT_NOISE, 2 * NUM_JOINTS)
        q = self.home + step_noise(self._magnitude("reset_joint_pos_noise"), u[:, :NUM_JOINTS])
        q = q.clamp(self.joint_low, self.joint_high)
        qd = step_noise(self._magnitude("reset_joint_vel_noise"), u[:, NUM_JOINTS:])
        object_pose = self._spawn_pose()
        qpos, qvel = self.sim.qpos, self.sim.qvel
        qpos[:, :NUM_JOINTS] = torch.where(rows, q, qpos[:, :NUM_JOINTS])
        qpos[:, _OBJ_QPOS] = torch.where(rows, object_pose, qpos[:, _OBJ_QPOS])
        qvel[:, :NUM_JOINTS] = torch.where(rows, qd, qvel[:, :NUM_JOINTS])
        self.targets = torch.where(rows, q, self.targets)
        self.last_action.masked_fill_(rows, 0.0)
        if self.grasp_starts is not None:
            self._start_from_grasp(mask)
        self.sim.ctrl[:] = self.targets
        self._draw_observation_noise(mask)
        self.disturbance.masked_fill_(rows, 0.0)
        self.sim.forward_kinematics()

        self.prev_points = torch.where(rows[..., None], self.hand_points(), self.prev_points)
        for buffer in (self.success_steps, self.returns, self.reached, self.first_success, self.max_z):
            buffer.masked_fill_(mask if buffer.dim() == 1 else rows, 0)
        # A dropped object's resting height replaces this once it settles; a grasp start's object
        # already rests on the table, so its lift counts from here.
        self.settle_z = torch.where(mask, self.object_pose()[:, 2], self.settle_z)

    def _start_from_grasp(self, mask: torch.Tensor) -> None:
        """Move the masked worlds drawn with probability ``grasp_start_fraction`` to their grasp start
        (see tasks/dextrah/grasp_starts.py); physics randomization and observation noise still apply."""
        start = self.grasp_starts
        u = self._uniform(rng.Stream.GRASP_START, 1)[:, 0]
        self.grasp_started = torch.where(mask, start.recorded & (u < self.settings.grasp_start_fraction), self.grasp_started)
        rows = (mask & self.grasp_started)[:, None]
        self.sim.qpos[:] = torch.where(rows, start.qpos, self.sim.qpos)
        self.sim.qvel[:] = torch.where(rows, start.qvel, self.sim.qvel)
        self.targets = torch.where(rows, start.targets, self.targets)
        self.last_action = torch.where(rows, start.last_action, self.last_action)

    def _spawn_pose(self) -> torch.Tensor:
        """(N, 7) object drop pose: position jittered by ADR widths, orientation by rotation scale."""
        u = self._uniform(rng.Stream.OBJECT_SPAWN, 6)
        x0, y0 = self.settings.spawn_xy
        x = x0 + (u[:, 0] - 0.5) * self._magnitude("spawn_width_x")
        y = y0 + (u[:, 1] - 0.5) * self._magnitude("spawn_width_y")
        z = torch.full_like(x, self.settings.spawn_z)
        axis = u[:, 2:5] - 0.5
        angle = self._magnitude("spawn_rotation") * math.pi * (2.0 * u[:, 5] - 1.0)
        return torch.cat([torch.stack([x, y, z], dim=-1), axis_angle_to_quat(axis, angle)], dim=-1)

    def _magnitude(self, name: str) -> float:
        """Current magnitude of a noise-like ADR range (its upper end)."""
        return self.adr.range(name)[1]

    def _draw_observation_noise(self, mask: torch.Tensor) -> None:
        """Per-episode noise: width = noise * U(0,1); bias = bias * U(0,1) * (U - 1/2) per element."""
        sizes = [2 + size for size in _NOISE_SIZES]
        draws = self._uniform(rng.Stream.OBS_NOISE_WIDTH, sum(sizes)).split(sizes, dim=1)
        widths, biases = [], []
        for (range_name, size), u in zip(_NOISE_KINDS, draws):
            width, _ = noise_width_and_bias(self._magnitude(f"{range_name}_noise"), u[:, :1], u[:, :1])
            _, bias = noise_width_and_bias(self._magnitude(f"{range_name}_bias"), u[:, 1:2], u[:, 2:])
            widths.append(width.expand(-1, size))
            biases.append(bias)
        self.noise_width = torch.where(mask[:, None], torch.cat(widths, dim=1), self.noise_width)
        self.noise_bias = torch.where(mask[:, None], torch.cat(biases, dim=1), self.noise_bias)

    # ------------------------------------------------------------------ state
    def hand_points(self) -> torch.Tensor:
        """(N, 5, 3) palm centre and the four fingertips."""
        return self.sim.site_xpos.index_select(1, self.hand_point_sites)  # a copy: physics overwrites site_xpos

    def object_pose(self) -> torch.Tensor:
        """(N, 7) object position and (w, x, y, z) orientation."""
        return self.sim.qpos[:, _OBJ_QPOS]

    def in_success(self) -> torch.Tensor:
        return (self.object_pose()[:, :3] - self.goal).norm(dim=-1) < self.settings.success_radius

    def stagger_episode_ends(self) -> None:
        """End each world's current episode after a random 1..episode_length steps.

        Worlds reset together stay in lockstep, so every batch a learner collects would show one phase
        of the episode (all approaching, then all lifting) and its updates would chase that phase.
        Cutting the current episodes short at random lengths spreads the phases for good. The cut
        episodes end as timeouts (their values are bootstrapped) and stay out of the episode
        statistics, which describe whole episodes: those whose limit is ``episode_length``.
        """
        u = self._uniform(rng.Stream.EPISODE_STAGGER, 1)[:, 0]
        length = self.settings.episode_length
        self.episode_limit = self.episode_step + 1 + (u * length).long().clamp_max(length - 1)

    # ------------------------------------------------------------------ step
    @torch.inference_mode()
    def step(self, actions: torch.Tensor) -> StepResult:
        """Apply (N, num_actions) actions in [-1, 1] (see tasks/dextrah/actions.py) for one policy step."""
        s = self.settings
        if tuple(actions.shape) != (self.num_envs, self.num_actions):
            raise ValueError(f"actions must be ({self.num_envs}, {self.num_actions}) for {s.actions.space}, got {tuple(actions.shape)}")
        actions = actions.to(self.device, torch.float32).clamp(-1.0, 1.0)
        self.targets = self.action_space.targets(self, actions)
        self.sim.ctrl[:] = self.targets
        self.last_action = actions
        self._apply_disturbance()
        self.sim.step(s.decimation)
        self.episode_step += 1

        points, object_pos = self.hand_points(), self.object_pose()[:, :3]
        terms = reward_terms(
            points, object_pos, self.goal, self.sim.qpos[:, NUM_ARM_JOINTS:NUM_JOINTS],
            self.curl_pose, s.rewards, self._magnitude("goal_sharpness"), self._magnitude("lift_weight"),
        )  # fmt: skip
        overflow = self.sim.corrupted_worlds()
        weighted_terms = torch.stack([terms[name] for name in REWARD_TERMS], dim=-1)
        reward = weighted_terms.sum(-1).masked_fill(overflow, 0.0)
        success = self.in_success()
        self._track_episode(weighted_terms, success, object_pos[:, 2])

        out_x = (object_pos[:, 0] < s.workspace_x[0]) | (object_pos[:, 0] > s.workspace_x[1])
        out_y = (object_pos[:, 1] < s.workspace_y[0]) | (object_pos[:, 1] > s.workspace_y[1])
        terminated = (out_x | out_y | (object_pos[:, 2] < s.min_object_z)) & ~overflow
        timeout = self.episode_step >= self.episode_limit
        held = (self.success_steps >= self.success_hold_steps) if self.success_hold_steps else torch.zeros_like(timeout)
        truncated = (timeout | held | overflow) & ~terminated
        done = terminated | truncated
        self.overflow_resets += int(overflow.sum())
        info = {
            "reward_terms": terms,
            "success": success,
            "timeout": timeout & ~terminated,
            "success_hold": held & ~terminated,
            "overflow": overflow,
            "episode": self._episode_stats(done & (self.episode_limit == s.episode_length)),
        }
        self.prev_points = points.clone()
        if bool(done.any()):
            self._reset(done)
        return StepResult(self.observations(), reward, terminated, truncated, info)

    def _apply_disturbance(self) -> None:
        """A random push of mass * U(0, max) m/s^2, redrawn each period, only near the palm."""
        redraw = (self.episode_step % self.disturbance_period) == 0
        if bool(redraw.any()):  # skip the draws between periods: a large share of the task logic
            u = self._uniform(rng.Stream.DISTURBANCE, 1)[:, 0]
            direction = self._normal(rng.Stream.DISTURBANCE, 3)
            direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-9)
            mass = self.sim.model["body_mass"][:, self.sim.object_body]
            force = direction * (mass * self.adr.sample("disturbance_accel", u))[:, None]
            self.disturbance = torch.where(redraw[:, None], force, self.disturbance)
        palm = self.hand_points()[:, 0]
        near = (palm - self.object_pose()[:, :3]).norm(dim=-1) < self.settings.disturbance_radius
        self.sim.xfrc_applied[:, self.sim.object_body, :3] = self.disturbance * near[:, None]

    def _track_episode(self, weighted_terms: torch.Tensor, success: torch.Tensor, object_z: torch.Tensor) -> None:
        """Add a step to the episodes' statistics; ``weighted_terms`` is (N, len(REWARD_TERMS))."""
        self.returns += weighted_terms
        self.success_steps = (self.success_steps + 1) * success
        self.first_success = torch.where(success & ~self.reached, self.episode_step, self.first_success)
        self.reached |= success
        settle = self.settings.settle_steps
        self.settle_z = torch.where((self.episode_step == settle) & ~self.grasp_started, object_z, self.settle_z)
        settled = (self.episode_step >= settle) | self.grasp_started
        self.max_z = torch.where(settled, torch.maximum(self.max_z, object_z - self.settle_z), self.max_z)

    def _episode_stats(self, done: torch.Tensor) -> dict[str, torch.Tensor]:
        """Statistics of the episodes that end now, one entry per finished world."""
        ended = done.nonzero()[:, 0]
        returns = self.returns.index_select(0, ended)
        stats = {
            "success": self.reached.index_select(0, ended).float(),
            "lift_height": self.max_z.index_select(0, ended).clamp_min(0.0),
            "length": self.episode_step.index_select(0, ended).float(),
            "time_to_success": self.first_success.index_select(0, ended).float() * self.settings.policy_dt,
        }
        return stats | {f"return_{name}": returns[:, i] for i, name in enumerate(REWARD_TERMS)}

    # ------------------------------------------------------------------ observations
    def observations(self) -> dict[str, torch.Tensor]:
        """Policy, privileged and critic observations, each (N, size) float32, and the images
        asked for at construction (see tasks/dextrah/images.py), rendered from the current state."""
        q, qd = self.sim.qpos[:, :NUM_JOINTS], self.sim.qvel[:, :NUM_JOINTS]
        pose, twist = self.object_pose(), self.sim.qvel[:, _OBJ_QVEL]
        u = self._uniform(rng.Stream.OBS_NOISE_STEP, _NUM_NOISY)
        noisy = torch.cat([q, qd, pose], dim=-1) + self.noise_bias + step_noise(self.noise_width, u)
        noisy_q, noisy_qd, noisy_pos, noisy_quat = noisy.split(_NOISE_SIZES, dim=1)
        points = self.hand_points()
        point_vel = (points - self.prev_points) / self.settings.policy_dt
        goal = self.goal.expand(self.num_envs, 3)
        proprio = torch.cat(
            [noisy_q, noisy_qd, points.flatten(1), point_vel.flatten(1), goal, self.last_action], dim=-1
        )
        state = torch.cat([
            noisy_pos, noisy_quat / noisy_quat.norm(dim=-1, keepdim=True).clamp_min(1e-9),
            self.object_onehot, self.object_half_extents,
        ], dim=-1)  # fmt: skip
        critic = torch.cat([
            q, qd, points.flatten(1), point_vel.flatten(1), self.sim.actuator_force,
            pose, twist, goal, self.object_onehot, self.object_half_extents, self.last_action,
        ], dim=-1)  # fmt: skip
        obs = {"proprio": proprio, "state": state, "critic": critic, "object_pos": pose[:, :3].clone()}
        return obs | self.render()

    def render(self) -> dict[str, torch.Tensor]:
        """The images asked for at construction, of the current state (none when none were)."""
        rendered = {}
        for views in (self.images, self.depth_images):
            if views is not None:
                rendered |= views.update(self.seed, self.world_ids, self._counter())
        return rendered
