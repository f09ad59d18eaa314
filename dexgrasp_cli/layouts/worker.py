"""One process of a multi-process layout, as torchrun (or dexgrasp's own launcher) starts it.

It names its role in its process title, picks its device, joins the default process group (gloo on
the CPU; gloo for CPU tensors and NCCL for GPU tensors on GPUs) and plays its role: a simulator
replica, the disaggregated learner, or a data-parallel rank.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Callable, Optional

import setproctitle
import torch
import torch.distributed as dist
import typer
from rich.console import Console

from dexgrasp_cli.errors import PeerLost, peer_loss_reason
from dexgrasp_cli.layouts.topology import LEARNER, REPLICA, Topology
from dexgrasp_cli.learner.learner_group import LearnerGroup
from dexgrasp_cli.learner.settings import TrainSettings
from dexgrasp_cli.learner.trainer import TrainOptions, local_vecenv, train_teacher
from dexgrasp_cli.learner.vecenv import LocalVecEnv, TrainingVecEnv
from dexgrasp_tasks.dextrah.settings import TaskSettings

PEER_TIMEOUT = datetime.timedelta(minutes=30)
"""How long a process waits for a peer that is alive but silent (a dead one is noticed at once: its
connection closes). It must exceed the longest wait of a run: a replica waits out the PPO update."""


LocalVecEnvMaker = Callable[[int, int, str], LocalVecEnv]
"""``(first world, worlds, device)`` -> that share of the worlds, simulated in this process."""
Learn = Callable[[TrainingVecEnv, Optional[LearnerGroup], str], None]
"""``(vecenv, group, device)``: run the learner (or a data-parallel rank) over ``vecenv``."""


def run_worker(
    task: TaskSettings, train: TrainSettings, options: TrainOptions, console: Console, resume: dict | None,
    learner_device: str | None = None,
) -> None:  # fmt: skip
    """Play this process's part of a ``train-teacher`` run in ``options.layout``."""

    def worlds(offset: int, count: int, device: str) -> LocalVecEnv:
        return local_vecenv(task, dataclasses.replace(options, device=device), offset, count)

    def learn(vecenv: TrainingVecEnv, group: LearnerGroup | None, device: str) -> None:
        train_teacher(task, train, dataclasses.replace(options, device=device), console, resume, vecenv=vecenv, group=group)

    run_layout_process(options.layout, options.num_envs, options.device, learner_device, console, worlds, learn)


def run_layout_process(
    layout: str, num_envs: int, requested_device: str, learner_device: str | None, console: Console,
    worlds: LocalVecEnvMaker, learn: Learn,
) -> None:  # fmt: skip
    """Play this process's part in ``layout``, reading the rank from the environment: a simulator
    replica serving ``worlds``, or the learner or a data-parallel rank running ``learn``."""
    topology = Topology.from_environment(layout)
    setproctitle.setproctitle(topology.title)
    device = topology.device(requested_device, learner_device)
    if device != "cpu":
        torch.cuda.set_device(device)
    elif "OMP_NUM_THREADS" not in os.environ:  # unless told otherwise, share the node's cores
        torch.set_num_threads(_cpu_threads(topology))
    backend, note = _backend(topology, requested_device)
    dist.init_process_group(backend, timeout=PEER_TIMEOUT)
    try:
        if topology.role == REPLICA:
            from dexgrasp_cli.layouts.replica import serve_replica

            serve_replica(worlds(*topology.worlds(num_envs), device), topology)
        elif topology.role == LEARNER:
            _learner(topology, device, console, learn)
        else:
            if note and topology.rank == 0:
                console.print(f"note: {note}")
            _data_parallel_rank(topology, num_envs, device, worlds, learn)
    except RuntimeError as err:
        if topology.role == LEARNER or peer_loss_reason(err) is None:
            raise
        # A replica whose learner is gone, or a rank whose peer is: leave quietly, without the
        # group's teardown (its peers are gone). The learner names a lost replica, and the
        # launcher (dexgrasp's or torchrun's) a process that died.
        raise typer.Exit(PeerLost.exit_code) from None
    dist.destroy_process_group()


def _learner(topology: Topology, device: str, console: Console, learn: Learn) -> None:
    from dexgrasp_cli.layouts.handshake import Hello, exchange
    from dexgrasp_cli.layouts.remote_vecenv import RemoteVecEnv

    console.print(f"learner on {device}: waiting for {topology.replicas} simulator replica(s) to build their worlds")
    hellos, plan = exchange(topology, Hello.of_this_process(topology, device))
    if plan.note:
        console.print(f"note: {plan.note}")
    replicas = hellos[: topology.replicas]
    wire_device = device if plan.wire_device == "cuda" else "cpu"
    learn(RemoteVecEnv(replicas, device, wire_device), None, device)


def _data_parallel_rank(topology: Topology, num_envs: int, device: str, worlds: LocalVecEnvMaker, learn: Learn) -> None:
    from dexgrasp_cli.layouts.data_parallel import DataParallelGroup, DataParallelVecEnv

    group = DataParallelGroup(topology.rank, topology.world_size)
    offset, count = topology.worlds(num_envs)
    learn(DataParallelVecEnv(worlds(offset, count, device), group, offset), group, device)


def _backend(topology: Topology, requested: str) -> tuple[str, str | None]:
    """The same on every rank, from the device the user asked for: gloo for a CPU run; on GPUs gloo
    for CPU tensors and NCCL for GPU ones, unless data-parallel ranks of a node would share a GPU
    (NCCL refuses that), where gloo carries everything. (A disaggregated run decides where its
    messages travel in its handshake, which runs over gloo, so a learner on a GPU of its own choice
    works with either.)"""
    if requested == "cpu":
        return "gloo", None
    if not dist.is_nccl_available():
        return "gloo", "this torch has no NCCL: tensors between GPUs travel through host memory over gloo"
    gpus = torch.cuda.device_count() if requested == "cuda" else 1
    if topology.layout == "dp" and topology.local_world_size > gpus:
        return "gloo", (f"{topology.local_world_size} ranks on this node share {gpus} GPU(s); NCCL refuses two "
                        "ranks on one GPU, so gradients travel through host memory over gloo")  # fmt: skip
    return "cpu:gloo,cuda:nccl", None


def _cpu_threads(topology: Topology) -> int:
    """Torch threads of a CPU process. The disaggregated layout is lock-step (replicas wait while the
    learner infers and trains, and the other way round), so its learner takes every core and the
    replicas share them; data-parallel ranks all work at once and split them."""
    cores = len(os.sched_getaffinity(0))
    return cores if topology.role == LEARNER else max(1, cores // topology.local_world_size)
