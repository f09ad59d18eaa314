"""The start of a disaggregated run: every process says where it runs, the learner decides the wire.

Replicas build their env first (the slow part: scene, kernels), then each sends the learner a
``Hello`` with its host, device and vecenv spaces. The learner answers everyone with the device the
step messages travel on: the GPUs themselves (NCCL) when every process has a GPU of its own, else
host memory (gloo), because NCCL refuses two ranks on one GPU. Both steps are object collectives of
this project's own, at fixed points of the run; rl-games issues none in this layout.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch.distributed as dist

from dexgrasp_cli.layouts.topology import Topology


@dataclass(frozen=True)
class Hello:
    """One process of a disaggregated run, as the learner learns of it."""

    rank: int
    host: str
    pid: int
    device: str
    role: str
    """Its role name, e.g. ``sim replica 2 of 3`` (topology.role_name)."""
    num_envs: int = 0
    env_info: dict | None = None
    """The replica's vecenv spaces (get_env_info); None for the learner."""

    @classmethod
    def of_this_process(cls, topology: Topology, device: str, num_envs: int = 0, env_info: dict | None = None) -> Hello:
        return cls(topology.rank, socket.gethostname(), os.getpid(), device, topology.role_name, num_envs, env_info)

    def describe(self) -> str:
        """e.g. ``sim replica 2 of 3 (rank 1 on host node7, pid 4242)``."""
        return f"{self.role} (rank {self.rank} on host {self.host}, pid {self.pid})"


@dataclass(frozen=True)
class Plan:
    """The learner's answer: where step messages live, and a note to print once (or None)."""

    wire_device: str
    """``cpu`` (gloo) or ``cuda`` (each process's own GPU, NCCL)."""
    note: str | None


def exchange(topology: Topology, hello: Hello) -> tuple[list[Hello], Plan]:
    """Gather every process's Hello on the learner and hand its Plan to all; every process calls this
    once. The learner gets the Hellos in rank order; the others get an empty list."""
    learner = topology.learner_rank
    hellos: list[Hello] | None = [None] * topology.world_size if topology.rank == learner else None  # type: ignore[list-item]
    dist.gather_object(hello, hellos, dst=learner)
    answer = [plan_for(hellos) if hellos else None]
    dist.broadcast_object_list(answer, src=learner)
    return (hellos or []), answer[0]


def plan_for(hellos: list[Hello]) -> Plan:
    """NCCL between GPUs when no two processes share one, gloo through host memory otherwise."""
    if all(h.device == "cpu" for h in hellos):
        return Plan("cpu", None)
    if any(h.device == "cpu" for h in hellos):
        return Plan("cpu", "some processes run on the CPU: observations travel through host memory over gloo")
    places: dict[tuple[str, str], Hello] = {}
    for hello in hellos:
        other = places.setdefault((hello.host, hello.device), hello)
        if other is not hello:
            return Plan("cpu", f"{other.describe()} and {hello.describe()} share {hello.device}; NCCL refuses two "
                               "ranks on one GPU, so observations travel through host memory over gloo")  # fmt: skip
    if not dist.is_nccl_available():
        return Plan("cpu", "this torch has no NCCL: observations travel through host memory over gloo")
    return Plan("cuda", None)
