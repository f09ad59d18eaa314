"""What the worlds did during an iteration, as one fixed-size vector of sums.

Every layout gathers its statistics the same way: where the env lives, each step adds to a
float64 vector of sums (finished episodes, success steps, reward terms, simulation time), and the
learner reads it once per iteration. A vector of fixed size goes over the wire as one message, and
the vectors of several replicas or data-parallel ranks combine exactly: sums add, the lock-step
step count is shared and the times of the slowest process are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from dexgrasp_tasks.dextrah.rewards import REWARD_TERMS

EPISODE_KEYS = ("success", "lift_height", "length", "time_to_success") + tuple(f"return_{t}" for t in REWARD_TERMS)
"""Per-episode statistics the env reports for each finished episode (DextrahEnv._episode_stats)."""

# Layout of the vector: [policy_steps, num_envs, success_steps, sim_seconds, wait_seconds, episodes,
# episode sums (EPISODE_KEYS), reward-term sums (REWARD_TERMS)].
_POLICY_STEPS, _NUM_ENVS, _SUCCESS_STEPS, _SIM_SECONDS, _WAIT_SECONDS, _EPISODES = range(6)
_EPISODE_SUMS = slice(6, 6 + len(EPISODE_KEYS))
_SLOWEST = [_POLICY_STEPS, _SIM_SECONDS, _WAIT_SECONDS]  # combined by max, the rest by sum
_TERM_SUMS = slice(_EPISODE_SUMS.stop, _EPISODE_SUMS.stop + len(REWARD_TERMS))
VECTOR_SIZE = _TERM_SUMS.stop


@dataclass(frozen=True)
class RolloutStats:
    """Statistics of the worlds between two reads, from a vector of sums (see the module docstring)."""

    vector: torch.Tensor
    """(VECTOR_SIZE,) float64 on the CPU."""

    @classmethod
    def combine(cls, vectors: list[torch.Tensor]) -> RolloutStats:
        """The statistics of several processes' worlds together (replicas, or data-parallel ranks)."""
        stacked = torch.stack([v.double().cpu() for v in vectors])
        total = stacked.sum(dim=0)
        # Lock-step: every process made the same steps, and the slowest one bounds each of them.
        total[_SLOWEST] = stacked[:, _SLOWEST].max(dim=0).values
        return cls(total)

    def with_wait_seconds(self, seconds: float) -> RolloutStats:
        """A copy whose learner wait is ``seconds`` (measured by the learner, not by the simulators)."""
        vector = self.vector.clone()
        vector[_WAIT_SECONDS] = seconds
        return RolloutStats(vector)

    @property
    def policy_steps(self) -> int:
        """Calls to ``step``."""
        return int(self.vector[_POLICY_STEPS])

    @property
    def num_envs(self) -> int:
        return int(self.vector[_NUM_ENVS])

    @property
    def env_steps(self) -> int:
        return self.policy_steps * self.num_envs

    @property
    def success_fraction(self) -> float:
        """Mean fraction of worlds in the success region per step (ADR's signal); 0 without steps."""
        return float(self.vector[_SUCCESS_STEPS]) / max(1, self.env_steps)

    @property
    def sim_seconds(self) -> float:
        """Time spent inside the env's ``step`` (the slowest process's, when combined)."""
        return float(self.vector[_SIM_SECONDS])

    @property
    def wait_seconds(self) -> float:
        """Time the learner spent waiting for observations (in one process: the whole ``step`` call)."""
        return float(self.vector[_WAIT_SECONDS])

    @property
    def episodes(self) -> int:
        """Whole episodes that finished (see DextrahEnv.stagger_episode_ends for the others)."""
        return int(self.vector[_EPISODES])

    def episode_mean(self, key: str) -> float | None:
        """Mean of one of EPISODE_KEYS over the finished episodes; None when none finished."""
        if not self.episodes:
            return None
        return float(self.vector[_EPISODE_SUMS][EPISODE_KEYS.index(key)]) / self.episodes

    def reward_term_means(self) -> dict[str, float]:
        """Each reward term's mean per env-step."""
        sums = self.vector[_TERM_SUMS].tolist()
        return {name: total / max(1, self.env_steps) for name, total in zip(REWARD_TERMS, sums)}


class StatsAccumulator:
    """Adds each step's statistics on the env's device (no host synchronization per step)."""

    def __init__(self, num_envs: int, device: torch.device):
        self.num_envs = num_envs
        self._sums = torch.zeros(VECTOR_SIZE, dtype=torch.float64, device=device)
        self._policy_steps, self._sim_seconds = 0, 0.0

    def timed_step(self, env, actions: torch.Tensor):
        """``env.step(actions)``, timed and added; returns the env's StepResult."""
        start = time.perf_counter()
        result = env.step(actions)
        self._sim_seconds += time.perf_counter() - start
        self.add(result.info)
        return result

    def add(self, info: dict) -> None:
        """Add one step's ``info`` (DextrahEnv.step): finished episodes, success, reward terms."""
        episode = info["episode"]
        sums = self._sums
        sums[_SUCCESS_STEPS] += info["success"].sum()
        sums[_EPISODES] += len(episode["success"])
        sums[_EPISODE_SUMS] += torch.stack([episode[key].double().sum() for key in EPISODE_KEYS])
        sums[_TERM_SUMS] += torch.stack([info["reward_terms"][name].double().sum() for name in REWARD_TERMS])
        self._policy_steps += 1

    def pop(self, wait_seconds: float = 0.0) -> torch.Tensor:
        """The vector since the previous pop (or construction), on the CPU; then start again.
        ``wait_seconds``: the learner's wait for these steps, where the learner is this process."""
        vector = self._sums.to("cpu", copy=True)  # a copy even when the sums live on the CPU
        vector[_POLICY_STEPS], vector[_NUM_ENVS] = self._policy_steps, self.num_envs
        vector[_SIM_SECONDS], vector[_WAIT_SECONDS] = self._sim_seconds, wait_seconds
        self._sums.zero_()
        self._policy_steps, self._sim_seconds = 0, 0.0
        return vector
