"""The worlds as the learner sees them: one vecenv interface for every layout, and its local form.

rl-games (1.6.5) stores what ``step`` returns into its experience buffer by value, but it never moves
tensors: observations, rewards, dones and ``infos['time_outs']`` must already be on the learner
device. Each step is therefore written into preallocated learner-device tensors. There are two such
sets (``ObservationSlots``), used in turn, so what one step returns stays valid while the next step
runs and after it returns; only the step after that overwrites it.

Observations: ``{'obs': {...}, 'states': critic}``; ``obs`` holds ``depth`` and ``proprio`` for the
depth teacher, ``proprio`` and ``state`` for the state teacher. The trainer uses nothing but the
``TrainingVecEnv`` interface, so an in-process env (``LocalVecEnv``) and simulator replicas in other
processes (``dexgrasp_cli.layouts.remote_vecenv.RemoteVecEnv``) drop in for each other.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch
from rl_games.algos_torch.torch_ext import numpy_to_torch_dtype_dict, torch_to_numpy_dtype_dict
from rl_games.common import env_configurations, vecenv
from rl_games.common.gym_compat import spaces
from rl_games.common.ivecenv import IVecEnv

from dexgrasp_cli.byte_sizes import tensor_bytes
from dexgrasp_cli.learner.rollout_stats import RolloutStats, StatsAccumulator

if TYPE_CHECKING:  # the learner side needs no simulator imports
    from dexgrasp_tasks.dextrah.env import DextrahEnv

POLICY_KEYS = {"depth": ("depth", "proprio"), "state": ("proprio", "state")}
"""Per modality, the env observations the policy sees; the critic always sees ``critic``."""
VECENV_TYPE = "DEXGRASP_LOCAL"


class TrainingVecEnv(IVecEnv):
    """What the trainer needs of the worlds, wherever they are simulated.

    Besides rl-games' ``step``, ``reset`` and ``get_env_info``: statistics once per iteration, the ADR
    level the learner decided, the staggering of episode ends, the per-world episode counters (which,
    with the seed, are all a world's random state) for checkpoints, and shutdown.
    """

    num_envs: int
    """Worlds whose experience this learner trains on."""
    device: torch.device
    """The learner's device: everything ``step`` and ``reset`` return lives there."""

    def pop_stats(self) -> RolloutStats:
        """Statistics since the previous call (or construction), then forget them."""
        raise NotImplementedError

    def set_adr_level(self, level: int) -> None:
        """ADR is owned by the learner; worlds use the new ranges from their next step and reset."""
        raise NotImplementedError

    def stagger_episode_ends(self) -> None:
        """End every world's current episode after a random number of steps (DextrahEnv's)."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """``{'episode_index': (num_envs,) int64}`` on the CPU, in global world order."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def buffer_bytes(self) -> int:
        """Bytes of the tensors this vecenv allocated to hand observations over (bench-memory's breakdown)."""
        raise NotImplementedError


class ObservationSlots:
    """Two sets of learner-device tensors shaped by a vecenv's spaces, handed out in turn."""

    def __init__(self, env_info: dict, num_envs: int, device: torch.device):
        def zeros(space: spaces.Box) -> torch.Tensor:
            return torch.zeros(num_envs, *space.shape, dtype=numpy_to_torch_dtype_dict[space.dtype], device=device)

        def allocate() -> dict:
            return {
                "obs": {key: zeros(space) for key, space in env_info["observation_space"].spaces.items()},
                "states": zeros(env_info["state_space"]),
                "rewards": torch.zeros(num_envs, device=device),
                "dones": torch.zeros(num_envs, dtype=torch.uint8, device=device),  # rl-games' own dones dtype
                "time_outs": torch.zeros(num_envs, dtype=torch.bool, device=device),
            }

        self._slots = [allocate(), allocate()]
        self._next = 0

    def nbytes(self) -> int:
        return tensor_bytes(self._slots)

    def take(self) -> dict:
        """The set not returned last time."""
        slot = self._slots[self._next]
        self._next = 1 - self._next
        return slot


class LocalVecEnv(TrainingVecEnv):
    """``env`` stepped in this process; everything returned lives on ``device``, the learner's.

    ``observations``: a teacher modality (the keys of POLICY_KEYS) or the env observation keys to hand
    over. ``labels``, when given, is called after every step and reset for more observations computed
    where the worlds are (distillation's scripted teacher reads the exact state there).
    """

    def __init__(self, env: DextrahEnv, observations: str | tuple[str, ...], device: torch.device | str,
                 labels: Callable[[], dict[str, torch.Tensor]] | None = None):  # fmt: skip
        if isinstance(observations, str) and observations not in POLICY_KEYS:
            raise ValueError(f"unknown modality {observations!r}; accepted: {', '.join(POLICY_KEYS)}")
        self.env, self.labels, self.device = env, labels, torch.device(device)
        self.num_envs = env.num_envs
        self.policy_keys = POLICY_KEYS[observations] if isinstance(observations, str) else tuple(observations)
        sample = self._observed(env.observations())
        missing = [key for key in self.policy_keys if key not in sample]
        if missing:
            who = f"the {observations} teacher" if isinstance(observations, str) else "this run"
            raise ValueError(f"{who} needs an env built with images=({missing[0]!r},)")
        self.observation_space = spaces.Dict({key: _box(key, sample[key], env) for key in self.policy_keys})
        self.state_space = _box("critic", sample["critic"], env)
        self.action_space = spaces.Box(-1.0, 1.0, (env.num_actions,), dtype=np.float32)
        self._slots = ObservationSlots(self.get_env_info(), env.num_envs, self.device)
        self._stats = StatsAccumulator(env.num_envs, env.device)
        self._wait_seconds = 0.0

    def _observed(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return obs | self.labels() if self.labels is not None else obs

    def _fill_obs(self, slot: dict, obs: dict[str, torch.Tensor]) -> dict:
        obs = self._observed(obs)
        for key in self.policy_keys:
            _copy(slot["obs"][key], obs[key])
        _copy(slot["states"], obs["critic"])
        return {"obs": slot["obs"], "states": slot["states"]}

    # ------------------------------------------------------------------ rl-games vecenv interface
    def step(self, actions: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor, dict]:
        """``(obs, rewards, dones, infos)``; dones = terminated | truncated, and
        ``infos['time_outs']`` = truncated so rl-games bootstraps those values."""
        start = time.perf_counter()
        result = self._stats.timed_step(self.env, actions)
        slot = self._slots.take()
        obs = self._fill_obs(slot, result.obs)
        _copy(slot["rewards"], result.reward)
        _copy(slot["dones"], result.terminated | result.truncated)
        _copy(slot["time_outs"], result.truncated)
        self._wait_seconds += time.perf_counter() - start
        return obs, slot["rewards"], slot["dones"], {"time_outs": slot["time_outs"]}

    def reset(self) -> dict:
        """Start new episodes in every world; the statistics gathered so far are kept."""
        return self._fill_obs(self._slots.take(), self.env.reset())

    def get_env_info(self) -> dict:
        return {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "state_space": self.state_space,
            "agents": 1,
            "value_size": 1,
        }

    # ------------------------------------------------------------------ for the trainer
    def pop_stats(self) -> RolloutStats:
        stats = RolloutStats(self._stats.pop(wait_seconds=self._wait_seconds))
        self._wait_seconds = 0.0
        return stats

    def set_adr_level(self, level: int) -> None:
        if self.env.adr.level != level:
            self.env.adr.set_level(level)

    def stagger_episode_ends(self) -> None:
        self.env.stagger_episode_ends()

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"episode_index": self.env.episode_index.cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.env.episode_index.copy_(state["episode_index"])

    def buffer_bytes(self) -> int:
        return self._slots.nbytes()

    def close(self) -> None:
        """Drop the env and the learner-side tensors (rl-games never calls this; the trainer does)."""
        self.env = None
        self._slots = None


def _box(key: str, sample: torch.Tensor, env: DextrahEnv) -> spaces.Box:
    """The space of one observation; depth keeps the env's dtype so the buffer stores it as such."""
    shape, dtype = tuple(sample.shape[1:]), torch_to_numpy_dtype_dict[sample.dtype]
    if sample.dtype == torch.uint8:  # camera images
        return spaces.Box(0, 255, shape, dtype=dtype)
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
