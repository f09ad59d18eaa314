"""Typed settings of the physics backend; the numbers live in yaml/task.yaml (task.sim)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimSettings:
    """Memory and solver knobs of the MuJoCo Warp data."""

    nconmax: int
    """Contacts allocated per world (pooled across worlds)."""
    njmax: int
    """Constraint rows allocated per world; memory is linear in it."""
    solver_iterations: int
    """Newton solver iterations per physics step."""
