"""Workarounds for rl-games 1.6.5 defects (fixed on its master, not released).

Configuration defects are refused or given safe defaults by ``check_ppo_config`` and
``check_model_name``, with one-line errors. Defects in code are fixed in ``FixedA2CAgent``, a
subclass of rl-games' PPO agent (rl-games' own classes are left as they are):

- multi-GPU, ``schedule_type: standard``: ranks other than 0 put their stale ``last_lr`` back after
  every minibatch (a2c_continuous.py ``train_actor_critic``), because ``update_lr``
  (a2c_common.py) applies rank 0's broadcast LR without remembering it; the ranks then step with
  different LRs and their weights drift apart. Fixed: ``update_lr`` remembers it.
- multi-GPU: running normalizer statistics are updated from each rank's own data and never
  synchronised. Fixed: every ``train_epoch`` starts from rank 0's statistics and ends with an
  exact merge of what all ranks added (see ``merge_running_stats``). Within an epoch each rank
  still normalizes with its own updates; the ranks agree again from the next epoch on.
- checkpoints hold ``last_mean_rewards`` as a numpy float, so ``torch.load(weights_only=True)``
  refuses them. Fixed: it is saved as a Python float.

rl-games' ``multi_gpu: True`` creates an NCCL process group and moves the agent to
``cuda:LOCAL_RANK`` itself, so it cannot run on CPU (gloo) nor inside a process group the caller
made. ``FixedA2CAgent.join_data_parallel`` turns the same multi-GPU code paths on over the caller's
default process group instead. rl-games never closes the vecenv nor its SummaryWriter: call
``close_agent`` when done.
"""

from __future__ import annotations

import itertools

import torch
import torch.distributed as dist
from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.common.a2c_common import A2CBase
from rl_games.common.schedulers import IdentityScheduler
from torch import nn

ACCEPTED_MODEL = "continuous_a2c_logstd"
SCHEDULE_TYPES = ("legacy", "standard")
LR_SCHEDULES = (None, "adaptive", "linear")
REQUIRED_KEYS = ("horizon_length", "learning_rate", "mini_epochs", "gamma", "tau",
                 "e_clip", "clip_value", "critic_coef", "entropy_coef", "grad_norm", "normalize_advantage")  # fmt: skip
"""Keys rl-games 1.6.5 reads without a default (a KeyError deep inside the agent otherwise)."""
RUNNING_STATS_BUFFERS = (("running_mean", "running_var"), ("mean", "var"))
"""(mean, variance) buffer names that, with ``count``, make a module a running normalizer:
rl-games' RunningMeanStd and dexgrasp's RunningNormalizer."""


def check_model_name(name: str) -> None:
    """rl-games' ``continuous_a2c`` model crashes (UnboundLocalError on ``entropy`` in rollouts)."""
    if name != ACCEPTED_MODEL:
        raise ValueError(f"model.name {name!r} is not supported; accepted: {ACCEPTED_MODEL}")


def check_ppo_config(config: dict, where: str = "config") -> dict:
    """A copy of an rl-games ``config`` section with the 1.6.5 pitfalls refused and safe defaults
    filled in; ``where`` names the section in error messages (e.g. ``train.ppo``)."""
    config = dict(config)
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ValueError(f"{where}.{missing[0]} is required")
    if "seq_len" in config:
        raise ValueError(f"{where}.seq_len is ignored by rl-games 1.6.5; use {where}.seq_length")
    if "max_steps" in config:
        raise ValueError(f"{where}.max_steps crashes rl-games 1.6.5; use {where}.max_frames or {where}.max_epochs")
    config.setdefault("seq_length", 4)  # rl-games' default, made visible
    for key in ("horizon_length", "seq_length"):
        if not isinstance(config[key], int) or config[key] < 1:
            raise ValueError(f"{where}.{key} must be a positive integer, got {config[key]!r}")
    if config["horizon_length"] % config["seq_length"]:
        raise ValueError(
            f"{where}.horizon_length ({config['horizon_length']}) must be a multiple of "
            f"{where}.seq_length ({config['seq_length']})"
        )
    # rl-games treats any other lr_schedule as constant and any other schedule_type as "never update".
    lr_schedule = config.setdefault("lr_schedule", None)
    if lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"{where}.lr_schedule {lr_schedule!r} is not one of null, adaptive, linear")
    if lr_schedule == "adaptive" and "kl_threshold" not in config:
        raise ValueError(f"{where}.kl_threshold is required with {where}.lr_schedule: adaptive")
    schedule_type = config.setdefault("schedule_type", "legacy")
    if schedule_type not in SCHEDULE_TYPES:
        raise ValueError(f"{where}.schedule_type {schedule_type!r} is not one of {', '.join(SCHEDULE_TYPES)}")
    _refuse_input_normalization(config, where)
    if config.get("bounds_loss_coef") is None:  # None makes calc_losses call .unsqueeze on an int
        config["bounds_loss_coef"] = 0.0
    config.setdefault("torch_compile", False)  # rl-games defaults to True: 82 s of compiling on CPU
    if "central_value_config" in config:
        critic = dict(config["central_value_config"])
        _refuse_input_normalization(critic, f"{where}.central_value_config")
        config["central_value_config"] = critic
    return config


def _refuse_input_normalization(section: dict, where: str) -> None:
    # rl-games torch.jit.scripts RunningMeanStdObs for Dict observations, which fails at build time.
    if section.get("normalize_input"):
        raise ValueError(
            f"{where}.normalize_input must be false: rl-games 1.6.5 crashes on it with dict observations; "
            "the dexgrasp networks normalize their own inputs"
        )
    section["normalize_input"] = False  # rl-games reads this key without a default


# ---------------------------------------------------------------------- the fixed agent
class FixedA2CAgent(A2CAgent):
    """rl-games' continuous PPO agent with the code defects of the module docstring fixed."""

    def update_lr(self, lr):
        super().update_lr(lr)
        self.last_lr = self.optimizer.param_groups[0]["lr"]  # rank 0's value in multi-GPU runs

    def train_epoch(self):
        if not self.multi_gpu:
            return super().train_epoch()
        models = self._trained_models()
        shared = broadcast_running_stats(models)
        result = super().train_epoch()
        merge_running_stats(models, shared)
        return result

    def get_full_state_weights(self):
        state = super().get_full_state_weights()
        state["last_mean_rewards"] = float(state["last_mean_rewards"])
        return state

    def join_data_parallel(self, rank: int, world_size: int) -> None:
        """Train as rank ``rank`` of ``world_size`` over the default process group, as rl-games'
        ``multi_gpu`` does: gradients and KL all-reduced, rank 0's learning rate broadcast, and rank
        0's weights (parameters and normalizer buffers) given to every rank now."""
        self.multi_gpu, self.global_rank, self.world_size = True, rank, world_size
        if self.has_central_value:
            critic = self.central_value_net
            critic.multi_gpu, critic.global_rank, critic.world_size = True, rank, world_size
        if rank != 0:  # as rl-games does: rank 0's scheduler decides, update_lr broadcasts its LR
            self.scheduler = IdentityScheduler()
        for model in self._trained_models():
            for tensor in itertools.chain(model.parameters(), model.buffers()):
                dist.broadcast(tensor.data, 0)

    def _trained_models(self) -> list[nn.Module]:
        return [self.model] + ([self.central_value_net.model] if self.has_central_value else [])


# ---------------------------------------------------------------------- normalizer synchronisation
def running_stats(models: list[nn.Module]) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(mean, var, count) buffers of every running normalizer in ``models``, in a fixed order.

    Looked up afresh each time: rl-games' scripted RunningMeanStd rebinds its buffers on update.
    """
    found, seen = [], set()
    for model in models:
        for module in model.modules():
            buffers = dict(module.named_buffers(recurse=False))
            for mean, var in RUNNING_STATS_BUFFERS:
                if {mean, var, "count"} <= buffers.keys() and id(module) not in seen:
                    seen.add(id(module))
                    found.append((buffers[mean], buffers[var], buffers["count"]))
    return found


def broadcast_running_stats(models: list[nn.Module]) -> torch.Tensor:
    """Give every rank rank 0's statistics; return them packed: the history all ranks now share."""
    stats = running_stats(models)
    packed = _pack(stats)
    if stats:
        dist.broadcast(packed, 0)
        for buffers, values in zip(stats, _segments(packed, stats)):
            _write(buffers, *values)
    return packed


def merge_running_stats(models: list[nn.Module], shared: torch.Tensor) -> None:
    """Set every rank's statistics to those of the ``shared`` history plus all data any rank added.

    For count c, mean m and variance v, the sums (c*m, c*(v + m^2), c) of a union of disjoint data
    are the sums of its parts, so the merged sums are shared + sum over ranks of (rank's - shared).
    The buffers are float64, where this round trip loses nothing that matters.
    """
    stats = running_stats(models)
    if not stats:
        return
    base = _sums(shared, stats)
    added = _sums(_pack(stats), stats) - base
    dist.all_reduce(added)
    for buffers, (s1, s2, c) in zip(stats, _segments(base + added, stats)):
        if c.item() > 0:  # a normalizer nothing was ever fed to keeps its initial statistics
            mean = s1 / c
            _write(buffers, mean, (s2 / c - mean.square()).clamp_min(0.0), c)


def _pack(stats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """One flat tensor [mean, var, count] per normalizer, for a single collective."""
    if not stats:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([torch.cat([m.flatten(), v.flatten(), c.reshape(1)]) for m, v, c in stats])


def _segments(packed: torch.Tensor, stats: list) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The (mean, var, count) (or (c*m, c*(v + m^2), c)) views of each normalizer in ``packed``."""
    sizes = [m.numel() for m, _, _ in stats]
    return [chunk.split([d, d, 1]) for chunk, d in zip(packed.split([2 * d + 1 for d in sizes]), sizes)]


def _write(buffers: tuple[torch.Tensor, torch.Tensor, torch.Tensor], *values: torch.Tensor) -> None:
    for buffer, value in zip(buffers, values):
        buffer.copy_(value.view_as(buffer))


def _sums(packed: torch.Tensor, stats: list) -> torch.Tensor:
    """Packed statistics to packed sums (c*m, c*(v + m^2), c), which add up over disjoint data."""
    return torch.cat([torch.cat([c * m, c * (v + m.square()), c]) for m, v, c in _segments(packed, stats)])


# ---------------------------------------------------------------------- shutdown
def close_agent(agent: A2CBase) -> None:
    """Close what rl-games leaves open: the vecenv and the TensorBoard writer (flushing it)."""
    if agent.vec_env is not None:
        agent.vec_env.close()
    if agent.writer is not None:
        agent.writer.close()
