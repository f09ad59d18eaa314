"""LocalVecEnv: an in-process DextrahEnv seen by rl-games as a vecenv, on the learner's device.

rl-games (1.6.5) stores what ``step`` returns into its experience buffer by value, but it never moves
tensors: observations, rewards, dones and ``infos['time_outs']`` must already be on the learner
device. Each step is therefore copied into preallocated learner-device tensors (the env's images are
persistent buffers anyway). There are two such sets, used in turn, so what one step returns stays
valid while the next step runs and after it returns; only the step after that overwrites it.

Observations: ``{'obs': {...}, 'states': critic}``; ``obs`` holds ``depth`` and ``proprio`` for the
depth teacher, ``proprio`` and ``state`` for the state teacher. The caller reads what happened since
its previous read with ``pop_stats()`` (finished episodes and the success fraction ADR needs).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from rl_games.algos_torch.torch_ext import torch_to_numpy_dtype_dict
from rl_games.common import env_configurations, vecenv
from rl_games.common.gym_compat import spaces
from rl_games.common.ivecenv import IVecEnv

if TYPE_CHECKING:  # the learner side needs no simulator imports
    from tasks.dextrah.env import DextrahEnv

POLICY_KEYS = {"depth": ("depth", "proprio"), "state": ("proprio", "state")}
"""Per modality, the env observations the policy sees; the critic always sees ``critic``."""
VECENV_TYPE = "DEXGRASP_LOCAL"


@dataclass
class RolloutStats:
    """What the env did between two ``pop_stats`` calls."""

    episodes: dict[str, torch.Tensor]
    """One entry per finished episode, on the learner device: success, lift_height, length,
    time_to_success and return_<term> (see DextrahEnv._episode_stats); empty before any step."""
    success_steps: int
    """Sum over steps of the number of worlds in the success region."""
    policy_steps: int
    """Calls to ``step``."""
    num_envs: int

    @property
    def success_fraction(self) -> float:
        """Mean fraction of worlds in the success region per step (ADR's signal); 0 without steps."""
        return self.success_steps / max(1, self.policy_steps * self.num_envs)


class LocalVecEnv(IVecEnv):
    """``env`` stepped in this process; everything returned lives on ``device``, the learner's."""

    def __init__(self, env: DextrahEnv, modality: str, device: torch.device | str):
        if modality not in POLICY_KEYS:
            raise ValueError(f"unknown modality {modality!r}; accepted: {', '.join(POLICY_KEYS)}")
        self.env, self.modality, self.device = env, modality, torch.device(device)
        self.policy_keys = POLICY_KEYS[modality]
        sample = env.observations()
        missing = [key for key in self.policy_keys if key not in sample]
        if missing:
            raise ValueError(f"the {modality} teacher needs an env built with images=({missing[0]!r},)")
        self.observation_space = spaces.Dict({key: _box(key, sample[key], env) for key in self.policy_keys})
        self.state_space = _box("critic", sample["critic"], env)
        self.action_space = spaces.Box(-1.0, 1.0, (env.num_actions,), dtype=np.float32)
        self._slots = [self._allocate(sample) for _ in range(2)]
        self._next_slot = 0
        self._episodes: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._success_steps = torch.zeros((), dtype=torch.long, device=env.device)
        self._policy_steps = 0

    def _allocate(self, sample: dict[str, torch.Tensor]) -> dict:
        n, dev = self.env.num_envs, self.device
        return {
            "obs": {key: torch.zeros_like(sample[key], device=dev) for key in self.policy_keys},
            "states": torch.zeros_like(sample["critic"], device=dev),
            "rewards": torch.zeros(n, device=dev),
            "dones": torch.zeros(n, dtype=torch.uint8, device=dev),  # rl-games' own dones dtype
            "time_outs": torch.zeros(n, dtype=torch.bool, device=dev),
        }

    def _take_slot(self) -> dict:
        slot = self._slots[self._next_slot]
        self._next_slot = 1 - self._next_slot
        return slot

    def _fill_obs(self, slot: dict, obs: dict[str, torch.Tensor]) -> dict:
        for key in self.policy_keys:
            _copy(slot["obs"][key], obs[key])
        _copy(slot["states"], obs["critic"])
        return {"obs": slot["obs"], "states": slot["states"]}

    # ------------------------------------------------------------------ rl-games vecenv interface
    def step(self, actions: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor, dict]:
        """``(obs, rewards, dones, infos)``; dones = terminated | truncated, and
        ``infos['time_outs']`` = truncated so rl-games bootstraps those values. ``infos`` also passes
        the env's per-step ``reward_terms`` and ``success`` through, on the env device."""
        result = self.env.step(actions)
        slot = self._take_slot()
        obs = self._fill_obs(slot, result.obs)
        _copy(slot["rewards"], result.reward)
        _copy(slot["dones"], result.terminated | result.truncated)
        _copy(slot["time_outs"], result.truncated)
        for key, value in result.info["episode"].items():
            self._episodes[key].append(value)
        self._success_steps += result.info["success"].sum()
        self._policy_steps += 1
        infos = {
            "time_outs": slot["time_outs"],
            "reward_terms": result.info["reward_terms"],
            "success": result.info["success"],
        }
        return obs, slot["rewards"], slot["dones"], infos

    def reset(self) -> dict:
        """Start new episodes in every world; the statistics gathered so far are kept."""
        return self._fill_obs(self._take_slot(), self.env.reset())

    def get_env_info(self) -> dict:
        return {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "state_space": self.state_space,
            "agents": 1,
            "value_size": 1,
        }

    # ------------------------------------------------------------------ for the caller
    def pop_stats(self) -> RolloutStats:
        """Statistics since the previous call (or construction), then forget them."""
        episodes = {key: torch.cat(values).to(self.device) for key, values in self._episodes.items()}
        stats = RolloutStats(episodes, int(self._success_steps), self._policy_steps, self.env.num_envs)
        self._episodes.clear()
        self._success_steps.zero_()
        self._policy_steps = 0
        return stats

    def set_adr_level(self, level: int) -> None:
        """ADR is owned by the learner; worlds use the new ranges from their next reset."""
        self.env.adr.set_level(level)

    def close(self) -> None:
        """Drop the env and the learner-side tensors (rl-games never calls this; the caller does)."""
        self.env = None
        self._slots = []


def _box(key: str, sample: torch.Tensor, env: DextrahEnv) -> spaces.Box:
    """The space of one observation; depth keeps the env's dtype so the buffer stores it as such."""
    shape, dtype = tuple(sample.shape[1:]), torch_to_numpy_dtype_dict[sample.dtype]
    if key == "depth":
        return spaces.Box(0.0, env.settings.cameras.depth_range[1], shape, dtype=dtype)
    return spaces.Box(-np.inf, np.inf, shape, dtype=dtype)


def _copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    # Asynchronous only towards a GPU: a host destination must be complete when the caller reads it.
    dst.copy_(src, non_blocking=dst.is_cuda)


def register(name: str, creator) -> None:
    """Make ``env_name: name`` in an rl-games config build ``creator(**env_config)`` (a vecenv).

    The config then holds only names and plain values (Runner.load deep-copies it); the creator may
    close over live objects. Registering again replaces the creator.
    """
    env_configurations.register(name, {"env_creator": creator, "vecenv_type": VECENV_TYPE})
    vecenv.register(
        VECENV_TYPE,
        lambda config_name, num_actors, **kwargs: env_configurations.configurations[config_name]["env_creator"](**kwargs),
    )
