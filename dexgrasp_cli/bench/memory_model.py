"""Memory of each process role as a function of its worlds, and what a node of G GPUs holds.

A role's peak over one training iteration is modelled as

    peak(N) = fixed + per_world * N + per_sample * m(N),    m(N) = min(minibatch, N * horizon)

``per_world`` is what every world keeps: physics data, render buffers, observation slots, its rows
of the experience buffer and of the flattened copy of the batch that rl-games' update holds. Those
are tensors the trial counts to the byte, so the model takes them as counted: at the few worlds a
CPU trial holds they are a few MiB, far below the noise of a process's resident memory, which no
slope fitted to peaks could resolve. ``per_sample`` is what the PPO update holds per sample of a
minibatch (activations kept for the backward pass, their gradients), which stops growing once the
batch is larger than one minibatch; a simulator replica does no update (``per_sample`` = 0).

Fitting: the update's rise above the collected state, less the batch copy, against the trial's
minibatch gives ``per_sample`` (least squares); ``fixed`` is the mean of what the peaks leave over
(the CUDA context or interpreter, libraries, kernels, the networks and the optimizer). Node capacity
follows the paper's two layouts: data parallelism puts a full rank (simulator and learner) on every
GPU; the disaggregated layout has G-1 simulator GPUs and one learner GPU, and holds the smaller of what the two sides can.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dexgrasp_cli.bench.memory_search import largest_fitting

ROLES = ("dp-rank", "disagg-replica", "disagg-learner")
TRAINING_ROLES = ("dp-rank", "disagg-learner")
"""Roles that hold an agent and run the PPO update."""
LAYOUT_ROLES = {"dp": ("dp-rank",), "disagg": ("disagg-replica", "disagg-learner")}
WORLDS_CAP = 10**7
"""No search goes beyond this many worlds per process."""


def effective_minibatch(num_envs: int, horizon: int, minibatch: int) -> int:
    """The samples of one gradient step: ``minibatch`` capped at the batch (as train-teacher runs)."""
    return min(minibatch, num_envs * horizon)


@dataclass(frozen=True)
class Trial:
    """One role measured at one size: its peak, how far the PPO update rose above the collected state,
    and the bytes of the per-world tensors it counted."""

    num_envs: int
    minibatch: int
    """The trial's samples per gradient step (0 for a role without an update)."""
    peak_bytes: int
    update_rise_bytes: int = 0
    world_bytes: int = 0
    """Every per-world tensor of the trial (simulator, images, observation slots, experience, batch copy)."""
    batch_copy_bytes: int = 0
    """The update's flattened copy of the batch (part of world_bytes, and of the update's rise)."""


@dataclass(frozen=True)
class RoleModel:
    role: str
    fixed_bytes: float
    per_world_bytes: float
    per_sample_bytes: float

    def peak(self, num_envs: int, horizon: int, minibatch: int) -> float:
        samples = effective_minibatch(num_envs, horizon, minibatch) if self.per_sample_bytes else 0
        return self.fixed_bytes + self.per_world_bytes * num_envs + self.per_sample_bytes * samples

    def max_worlds(self, budget_bytes: int, horizon: int, minibatch: int) -> int:
        """The most worlds whose projected peak stays within ``budget_bytes`` (0 when none does)."""
        return largest_fitting(lambda n: self.peak(n, horizon, minibatch) <= budget_bytes, WORLDS_CAP)


def fit_role(role: str, trials: list[Trial]) -> RoleModel:
    """Least-squares model of ``role`` from trials at two or more distinct sizes (see the module docstring)."""
    if len({t.num_envs for t in trials}) < 2:
        raise ValueError(f"fitting {role} needs trials at two or more distinct sizes, got {[t.num_envs for t in trials]}")
    per_sample = 0.0
    if role in TRAINING_ROLES:
        rises = [t.update_rise_bytes - t.batch_copy_bytes for t in trials]
        per_sample = max(_line([t.minibatch for t in trials], rises)[0], 0.0)
    largest = max(trials, key=lambda t: t.num_envs)
    per_world = largest.world_bytes / largest.num_envs
    fixed = float(np.mean([t.peak_bytes - per_world * t.num_envs - per_sample * t.minibatch for t in trials]))
    return RoleModel(role, fixed, per_world, per_sample)


def _line(x: list[float], y: list[float]) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through (x, y)."""
    slope, intercept = np.polyfit(np.asarray(x, dtype=float), np.asarray(y, dtype=float), 1)
    return float(slope), float(intercept)


@dataclass(frozen=True)
class Capacity:
    """What a node holds in one layout, and which role limits it."""

    layout: str
    envs_per_gpu: int
    """dp: worlds per GPU. disagg: worlds per simulator GPU (the paper's per-GPU figure)."""
    envs_total: int
    binding: str
    """The role whose memory sets the total."""
    sides: dict[str, int]
    """The most worlds each role allows in all: a rank's maximum times G; the replicas' maximum
    times G-1 (the simulator side), the learner's maximum (the learner side)."""


def node_capacity(layout: str, gpus: int, max_worlds: dict[str, int]) -> Capacity:
    """The node's capacity in ``layout`` from each role's largest world count on one GPU."""
    if layout == "dp":
        per_gpu = max_worlds["dp-rank"]
        return Capacity("dp", per_gpu, gpus * per_gpu, "dp-rank", {"dp-rank": gpus * per_gpu})
    if layout != "disagg":
        raise ValueError(f"unknown layout {layout!r}; accepted: dp, disagg")
    if gpus < 2:
        raise ValueError("the disaggregated layout needs at least 2 GPUs: simulators on G-1, the learner on one")
    sides = {"disagg-replica": (gpus - 1) * max_worlds["disagg-replica"], "disagg-learner": max_worlds["disagg-learner"]}
    binding = min(sides, key=lambda role: (sides[role], role != "disagg-learner"))  # a tie: the learner binds
    total = sides[binding]
    return Capacity("disagg", total // (gpus - 1), total, binding, sides)
