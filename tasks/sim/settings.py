"""Typed settings of the physics backend; the numbers live in yaml/task.yaml (task.sim)."""

from __future__ import annotations

from dataclasses import dataclass

from dexgrasp_tasks.bounds import Bounded, bounds


@dataclass(frozen=True)
class SimSettings(Bounded):
    """Memory and solver knobs of the MuJoCo Warp data."""

    BOUNDS = bounds(nconmax=">= 1", njmax=">= 1", solver_iterations=">= 1")

    nconmax: int
    """Contacts allocated per world (pooled across worlds)."""
    njmax: int
    """Constraint rows allocated per world; memory is linear in it."""
    solver_iterations: int
    """Newton solver iterations per physics step."""
