"""Typed settings of the physics backend; the numbers live in yaml/task.yaml (task.sim)."""

from __future__ import annotations

from dataclasses import dataclass

from dexgrasp_tasks.bounds import Bounded, bounds

BACKENDS = ("auto", "mjwarp", "mujoco")


@dataclass(frozen=True)
class SimSettings(Bounded):
    """Which physics runs the worlds, and the memory and solver knobs of MuJoCo Warp's data."""

    BOUNDS = bounds(backend=BACKENDS, threads=">= 1", nconmax=">= 1", njmax=">= 1", solver_iterations=">= 1")

    nconmax: int
    """Contacts allocated per world (pooled across worlds); MuJoCo Warp only."""
    njmax: int
    """Constraint rows allocated per world; memory is linear in it. MuJoCo Warp only."""
    solver_iterations: int
    """Newton solver iterations per physics step."""
    # The two below have defaults so that configs saved in checkpoints before they existed load.
    backend: str = "auto"
    """mjwarp (MuJoCo Warp), mujoco (C MuJoCo, CPU only) or auto: mujoco on a CPU, mjwarp on CUDA."""
    threads: int | None = None
    """Threads stepping the C MuJoCo worlds; null: this process's share of the cores (its cores over
    the processes torchrun started on this machine)."""
