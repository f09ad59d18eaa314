"""Who does what in a layout: each process's role, worlds and device, from torch.distributed's variables.

``single`` is one process. ``disagg`` is K simulator replicas (ranks 0 .. K-1) and one learner, the
last rank, as in the paper (GPUs 0-2 simulate, GPU 3 learns). ``dp`` is K ranks that each simulate
and learn. Replica (or dp rank) k simulates the worlds k*N .. k*N+N-1 of the global batch, N =
num_envs / K, with that offset as their global index, so a world is the same world in every layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

LAYOUTS = ("single", "disagg", "dp")
LEARNER, REPLICA, DP_RANK = "learner", "replica", "dp rank"


def launched_by_torch_distributed() -> bool:
    """True in a process that torchrun (or dexgrasp's own launcher) started as one rank of several."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def processes(layout: str, replicas: int) -> int:
    """Processes a layout with ``replicas`` simulators (disagg) or ranks (dp) runs."""
    return {"single": 1, "disagg": replicas + 1, "dp": replicas}[layout]


def replicas_for(layout: str, world_size: int) -> int:
    """The K that ``world_size`` processes give (the inverse of ``processes``)."""
    return world_size - 1 if layout == "disagg" else world_size


@dataclass(frozen=True)
class Topology:
    """One process of a multi-process layout."""

    layout: str
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @classmethod
    def from_environment(cls, layout: str) -> Topology:
        env = os.environ
        world_size = int(env["WORLD_SIZE"])
        return cls(layout, int(env["RANK"]), world_size, int(env.get("LOCAL_RANK", env["RANK"])),
                   int(env.get("LOCAL_WORLD_SIZE", world_size)))  # fmt: skip

    @property
    def replicas(self) -> int:
        """K: simulator replicas (disagg) or data-parallel ranks (dp)."""
        return replicas_for(self.layout, self.world_size)

    @property
    def learner_rank(self) -> int:
        return learner_rank(self.layout, self.world_size)

    @property
    def writes_run(self) -> bool:
        """This process writes the run directory: the learner (rank 0 in dp)."""
        return self.rank == self.learner_rank

    @property
    def role(self) -> str:
        return role_of(self.layout, self.rank, self.world_size)

    @property
    def role_name(self) -> str:
        """e.g. ``sim replica 2 of 3`` (see ``role_name``)."""
        return role_name(self.layout, self.rank, self.world_size)

    @property
    def title(self) -> str:
        """The process title ``ps`` and ``top`` show: ``dexgrasp: <role name>``."""
        return f"dexgrasp: {self.role_name}"

    def worlds(self, num_envs: int) -> tuple[int, int]:
        """(offset, count) of the global batch that this replica or dp rank simulates."""
        count = num_envs // self.replicas
        return self.rank * count, count

    def device(self, requested: str, learner_device: str | None = None) -> str:
        """This process's device: ``cuda`` means one GPU per local rank (wrapping round when there are
        fewer GPUs than processes); the disagg learner uses ``learner_device`` when one is given."""
        if self.role == LEARNER and learner_device is not None:
            return learner_device
        if requested != "cuda":
            return requested
        import torch

        return f"cuda:{self.local_rank % torch.cuda.device_count()}"


def learner_rank(layout: str, world_size: int) -> int:
    """The rank that trains and saves: the last one in disagg, 0 in dp."""
    return world_size - 1 if layout == "disagg" else 0


def role_of(layout: str, rank: int, world_size: int) -> str:
    """LEARNER, REPLICA or DP_RANK."""
    if layout == "dp":
        return DP_RANK
    return LEARNER if rank == learner_rank(layout, world_size) else REPLICA


def role_name(layout: str, rank: int, world_size: int) -> str:
    """``learner``, ``sim replica K of N`` (K from 1) or ``dp rank R of N``."""
    role = role_of(layout, rank, world_size)
    if role == DP_RANK:
        return f"dp rank {rank} of {world_size}"
    if role == LEARNER:
        return "learner"
    return f"sim replica {rank + 1} of {world_size - 1}"
