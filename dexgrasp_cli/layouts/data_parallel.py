"""Data parallelism (the paper's Fig. 2a): every rank simulates its worlds and trains a full agent.

Rank r steps worlds r*N .. r*N+N-1 and keeps its own experience buffer; rl-games' multi-GPU code
averages the gradients (patches.FixedA2CAgent.join_data_parallel). What the trainer needs of all
ranks together goes through the default process group here: statistics and episode counters are
gathered (so ADR and the logs see every world), rank 0's ADR state is given to all, the ranks agree
to stop together, and rank 0 alone logs and saves.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from dexgrasp_cli.learner.checkpoint import rng_state, set_rng_state
from dexgrasp_cli.learner.learner_group import LearnerGroup
from dexgrasp_cli.learner.rollout_stats import RolloutStats
from dexgrasp_cli.learner.vecenv import LocalVecEnv, TrainingVecEnv
from dexgrasp_tasks.dextrah.adr import ADR

_RANK_SEED_STRIDE = 1_000_003  # rank r > 0 explores with seed + r * stride: distinct noise, reproducible


class DataParallelGroup(LearnerGroup):
    """The ranks of the default process group, each with a learner."""

    def __init__(self, rank: int, world_size: int):
        self.rank, self.world_size = rank, world_size

    def join(self, agent) -> None:
        agent.join_data_parallel(self.rank, self.world_size)

    def seed_exploration(self, seed: int) -> None:
        if self.rank:
            torch.manual_seed(seed + self.rank * _RANK_SEED_STRIDE)

    def any(self, flag: bool) -> bool:
        vote = torch.tensor([int(flag)])
        dist.all_reduce(vote, op=dist.ReduceOp.MAX)
        return bool(vote.item())

    def share_adr(self, adr: ADR) -> None:
        state = torch.tensor([adr.level, adr.steps_since_change], dtype=torch.int64)
        dist.broadcast(state, 0)
        adr.load_state_dict({"level": int(state[0]), "steps_since_change": int(state[1])})

    def rng_states(self) -> list[dict]:
        states: list = [None] * self.world_size
        dist.all_gather_object(states, rng_state())
        return states

    def restore_rng(self, states: list[dict]) -> None:
        if len(states) == self.world_size:
            set_rng_state(states[self.rank])
            return
        set_rng_state(states[0])  # saved by another layout: derive this rank's noise from it
        self.seed_exploration(int(torch.randint(2**62, ())))


class DataParallelVecEnv(TrainingVecEnv):
    """One rank's LocalVecEnv, whose statistics and episode counters are those of all ranks."""

    def __init__(self, local: LocalVecEnv, group: DataParallelGroup, env_offset: int):
        self.local, self.group, self.offset = local, group, env_offset
        self.num_envs, self.device = local.num_envs, local.device

    def step(self, actions):
        return self.local.step(actions)

    def reset(self):
        return self.local.reset()

    def get_env_info(self) -> dict:
        return self.local.get_env_info()

    def pop_stats(self) -> RolloutStats:
        return RolloutStats.combine(self._gather(self.local.pop_stats().vector))

    def set_adr_level(self, level: int) -> None:
        self.local.set_adr_level(level)

    def stagger_episode_ends(self) -> None:
        self.local.stagger_episode_ends()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"episode_index": torch.cat(self._gather(self.local.state_dict()["episode_index"]))}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        rows = slice(self.offset, self.offset + self.num_envs)
        self.local.load_state_dict({"episode_index": state["episode_index"][rows]})

    def close(self) -> None:
        self.local.close()

    def buffer_bytes(self) -> int:
        return self.local.buffer_bytes()

    def _gather(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's ``tensor`` (same shape on all ranks, on the CPU), in rank order."""
        parts = [torch.empty_like(tensor) for _ in range(self.group.world_size)]
        dist.all_gather(parts, tensor)
        return parts
