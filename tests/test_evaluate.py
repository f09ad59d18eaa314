"""eval's episode counting, on a fake env whose episodes have known lengths and outcomes: each
world contributes its first episodes, whatever order they end in."""

from types import SimpleNamespace

import torch
from rich.console import Console

from dexgrasp_cli.evaluate import _rollout
from dexgrasp_tasks.dextrah.rewards import REWARD_TERMS


class _FixedEpisodes:
    """World i's episodes last ``lengths[i]`` steps and succeed when ``outcomes[i]``; every step
    pays reward 1."""

    def __init__(self, lengths: list[int], outcomes: list[bool]):
        self.num_envs, self.device = len(lengths), torch.device("cpu")
        self.lengths = torch.tensor(lengths)
        self.outcomes = torch.tensor(outcomes, dtype=torch.float32)
        self.step_in_episode = torch.zeros(self.num_envs, dtype=torch.long)
        self.adr = SimpleNamespace(level=0)

    def step(self, actions: torch.Tensor) -> SimpleNamespace:
        self.step_in_episode += 1
        done = self.step_in_episode == self.lengths
        length = self.step_in_episode[done].float()
        episode = {
            "success": self.outcomes[done],
            "lift_height": torch.zeros_like(length),
            "length": length,
            "time_to_success": length / 60.0,
        } | {f"return_{name}": length for name in REWARD_TERMS}
        self.step_in_episode[done] = 0
        n = self.num_envs
        info = {
            "success": torch.zeros(n, dtype=torch.bool),
            "reward_terms": {name: torch.zeros(n) for name in REWARD_TERMS},
            "episode": episode,
        }
        return SimpleNamespace(obs={}, reward=torch.ones(n), terminated=done, truncated=torch.zeros_like(done), info=info)


class _Policy:
    """Zero actions; nothing to reset."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, obs):
        return torch.zeros(self.n, 1)

    def episodes_ended(self, done):
        pass


def test_short_failing_episodes_do_not_crowd_out_long_successful_ones():
    # World 0 fails every 2 steps, world 1 succeeds after 10: "the first 4 to end" would be four
    # failures of world 0; each world's first two episodes give 2 of 4.
    result = _rollout(_FixedEpisodes([2, 10], [False, True]), _Policy(2), {}, 4, Console(quiet=True), None)
    assert result["episodes"] == 4
    assert result["success_rate_episode"] == 0.5
    assert result["mean_episode_length"] == (2 + 2 + 10 + 10) / 4
    assert result["return_total"] == (2 + 2 + 10 + 10) / 4  # the env's summed reward per episode
    assert result["policy_steps"] == 20  # until world 1's second episode ends


def test_episodes_that_do_not_divide_go_to_the_lowest_worlds_first():
    # 3 episodes over 2 worlds: world 0 gives two (both failures), world 1 one (a success).
    result = _rollout(_FixedEpisodes([3, 5], [False, True]), _Policy(2), {}, 3, Console(quiet=True), None)
    assert result["episodes"] == 3
    assert abs(result["success_rate_episode"] - 1 / 3) < 1e-9
    assert result["policy_steps"] == 6
