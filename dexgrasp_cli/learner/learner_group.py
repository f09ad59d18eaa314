"""The processes that hold a learner, as the trainer sees them: here one, the trainer's own.

The trainer asks its group everything that differs when several data-parallel ranks train together
(``dexgrasp_cli.layouts.data_parallel.DataParallelGroup``): which rank logs and saves, how the ranks
agree to stop, share the ADR level, and seed and save their random number generators. In the single
and disaggregated layouts there is one learner process, and every answer is the trivial one below.
"""

from __future__ import annotations

from dexgrasp_cli.learner.checkpoint import rng_state, set_rng_state
from dexgrasp_tasks.dextrah.adr import ADR


class LearnerGroup:
    """A learner alone in its process group (or without one)."""

    rank = 0
    world_size = 1

    @property
    def is_main(self) -> bool:
        """The rank that logs, shows the live view and writes checkpoints."""
        return self.rank == 0

    def join(self, agent) -> None:
        """Make ``agent`` train together with the other ranks (nothing to do alone)."""

    def seed_exploration(self, seed: int) -> None:
        """Seed the action noise once the weights exist; ranks draw different noise."""

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any (a stop request, say)."""
        return flag

    def share_adr(self, adr: ADR) -> None:
        """Give every rank the main rank's ADR state: one source of truth for the level."""

    def rng_states(self) -> list[dict]:
        """Every rank's torch RNG states, in rank order (collective in a group)."""
        return [rng_state()]

    def restore_rng(self, states: list[dict]) -> None:
        """Put back what ``rng_states`` returned when the run was saved (by any layout)."""
        set_rng_state(states[0])
