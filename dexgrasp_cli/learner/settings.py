"""Typed settings of teacher training. The numbers live in yaml/train.yaml."""

from __future__ import annotations

from dataclasses import dataclass

from dexgrasp_cli.learner.network_sizes import CriticSizes, DepthTeacherSizes, StateTeacherSizes
from dexgrasp_tasks.bounds import Bounded, bounds

MODALITY_IMAGES = {"depth": ("depth",), "state": ()}
"""The images each teacher sees (and so the env renders for it)."""
MODALITIES = tuple(MODALITY_IMAGES)
LR_SCHEDULES = ("adaptive", "linear", "none")
"""train.ppo.lr_schedule: rl-games' schedules, with ``none`` (a constant rate) for its null."""


@dataclass(frozen=True)
class PpoSettings(Bounded):
    """rl-games PPO hyperparameters (its ``config`` section), as NVIDIA's DextrAH release sets them."""

    BOUNDS = bounds(
        gamma="in (0, 1]", tau="in (0, 1]", e_clip="> 0", entropy_coef=">= 0", learning_rate="> 0",
        lr_schedule=LR_SCHEDULES, kl_threshold="> 0", horizon_length=">= 1", seq_length=">= 1", mini_epochs=">= 1",
        minibatch_size=">= 1", critic_coef=">= 0", bounds_loss_coef=">= 0", grad_norm="> 0", reward_scale="> 0",
    )  # fmt: skip

    gamma: float
    """Discount factor."""
    tau: float
    """GAE lambda."""
    e_clip: float
    """PPO ratio clip."""
    entropy_coef: float
    """Entropy bonus weight."""
    learning_rate: float
    """Initial Adam learning rate; the adaptive schedule moves it to keep the KL near kl_threshold."""
    lr_schedule: str
    """adaptive (follows kl_threshold), linear (down to rl-games' 1e-6 at --max-iterations) or none (constant)."""
    kl_threshold: float
    """Target KL divergence of the adaptive schedule."""
    horizon_length: int
    """Env steps per world collected per iteration."""
    seq_length: int
    """LSTM training sequence length; horizon_length must be a multiple of it."""
    mini_epochs: int
    """Passes over the collected batch per iteration."""
    minibatch_size: int
    """Samples per gradient step, capped at num_envs * horizon_length."""
    critic_coef: float
    """Value loss weight."""
    bounds_loss_coef: float
    """Weight of the penalty on action means outside [-1, 1]."""
    grad_norm: float
    """Gradient norm clip."""
    truncate_grads: bool
    """Clip gradients to grad_norm."""
    reward_scale: float
    """Rewards are multiplied by this before PPO sees them."""
    normalize_value: bool
    """Normalize value targets with running statistics."""
    normalize_advantage: bool
    """Normalize advantages per minibatch."""
    clip_value: bool
    """Clip value updates like the policy ratio."""
    mixed_precision: bool
    """bf16 autocast of forward and loss (GPU)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.horizon_length % self.seq_length:  # rl-games 1.6.5 fails with an IndexError otherwise
            raise ValueError(
                f"train.ppo.horizon_length ({self.horizon_length}) must be a multiple of "
                f"train.ppo.seq_length ({self.seq_length})"
            )

    def minibatch_for(self, num_envs: int) -> int:
        """The minibatch size on ``num_envs`` worlds: ``minibatch_size`` capped at the batch, which
        it must divide (rl-games refuses the run otherwise, deep inside the agent)."""
        batch = num_envs * self.horizon_length
        minibatch = min(self.minibatch_size, batch)
        if batch % minibatch:
            raise ValueError(
                f"train.ppo.minibatch_size ({minibatch}) must divide --num-envs x train.ppo.horizon_length "
                f"({num_envs} x {self.horizon_length} = {batch})"
            )
        return minibatch


@dataclass(frozen=True)
class RunSettings(Bounded):
    """Checkpointing of a training run."""

    BOUNDS = bounds(save_every=">= 1", keep_periodic=">= 1")
    save_every: int
    """Iterations between periodic checkpoints."""
    keep_periodic: int
    """Periodic checkpoints kept on disk; best and last are always kept."""


@dataclass(frozen=True)
class NetworkSettings:
    """Sizes of the networks (dexgrasp_cli/learner/networks.py documents each key)."""

    depth: DepthTeacherSizes
    """The depth teacher: CNN, LSTM and MLP."""
    state: StateTeacherSizes
    """The state teacher: LSTM and MLP."""
    critic: CriticSizes
    """The asymmetric critic both teachers train with."""


@dataclass(frozen=True)
class TrainSettings:
    """Everything about teacher training except the task, the batch and the device."""

    ppo: PpoSettings
    networks: NetworkSettings
    run: RunSettings
