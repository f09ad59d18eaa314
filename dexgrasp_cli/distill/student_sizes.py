"""The students' sizes (distill.stereo and distill.depth in yaml/distill.yaml), checked.

Plain dataclasses without torch, so that the command line validates distill.* at once.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from dexgrasp_tasks.bounds import Bounded, bounds

STUDENT_KINDS = ("stereo-rgb", "depth")
STUDENT_IMAGES = {"stereo-rgb": "rgb", "depth": "depth"}
"""The image observation each student kind reads."""
FUSIONS = ("transformer", "concat")


@dataclass(frozen=True)
class StereoStudentSizes(Bounded):
    """distill.stereo in yaml/distill.yaml; the defaults are DextrAH-RGB's release."""

    BOUNDS = bounds(
        widths=">= 1", blocks=">= 1", token_count=">= 1", token_grid=">= 1", fusion=FUSIONS, embed_dim=">= 1",
        transformer_layers=">= 1", heads=">= 1", dropout="in [0, 1)", stereo_embedding=">= 1", lstm_units=">= 1",
        mlp=">= 1", aux_mlp=">= 1", initial_log_std="any",
    )  # fmt: skip

    widths: tuple[int, ...] = (64, 128, 256, 512)
    """Channels of each ResNet stage (the stem has widths[0]); ResNet-18 has four."""
    blocks: tuple[int, ...] = (2, 2, 2, 2)
    """Basic blocks in each ResNet stage, one entry per width."""
    token_count: int = 128
    """Tokens per image: the channels of the 1x1 conv after the last stage."""
    token_grid: tuple[int, int] = (8, 16)
    """(rows, columns) each token channel is average-pooled to; a token is that grid flattened."""
    fusion: str = "transformer"
    """How the two images' tokens meet: 'transformer' (cross-attention) or 'concat' (one linear layer)."""
    embed_dim: int = 128
    """Width of the transformer's tokens."""
    transformer_layers: int = 2
    """Pre-LayerNorm transformer blocks."""
    heads: int = 4
    """Attention heads per block; embed_dim must be a multiple of it."""
    dropout: float = 0.1
    """Dropout on the projected tokens and inside the transformer blocks."""
    stereo_embedding: int = 64
    """Size of the fused stereo feature fed to the LSTM."""
    lstm_units: int = 512
    """Hidden units of the one-layer LSTM."""
    mlp: tuple[int, ...] = (512, 512, 256)
    """Hidden ELU layers of the actor after the LSTM."""
    aux_mlp: tuple[int, ...] = (512, 256)
    """Hidden ELU layers of the object-position head."""
    initial_log_std: float = 0.0
    """Initial value of the state-independent action log-std."""

    def __post_init__(self):
        super().__post_init__()
        where = "distill.stereo"
        if self.embed_dim % self.heads:
            raise ValueError(f"{where}.embed_dim ({self.embed_dim}) must be a multiple of {where}.heads ({self.heads})")
        if len(self.blocks) != len(self.widths):
            raise ValueError(f"{where}.blocks has {len(self.blocks)} entries, {where}.widths {len(self.widths)}")


@dataclass(frozen=True)
class DepthStudentSizes(Bounded):
    """distill.depth in yaml/distill.yaml; the defaults are DextrAH-G's depth student."""

    BOUNDS = bounds(depth_filters=">= 1", depth_mlp=">= 1", proprio_mlp=">= 1", lstm_units=">= 1", aux_mlp=">= 1",
                    initial_log_std="any")  # fmt: skip

    depth_filters: tuple[int, ...] = (16, 32, 64)
    """Output channels of each 3x3 conv; each is followed by ReLU and a 2x2 max pool."""
    depth_mlp: tuple[int, ...] = (128, 128)
    """ELU layers on the flattened conv features."""
    proprio_mlp: tuple[int, ...] = (512, 256, 128)
    """ELU layers on the normalized proprioception."""
    lstm_units: int = 1024
    """Hidden units of the one-layer LSTM."""
    aux_mlp: tuple[int, ...] = (512, 256)
    """Hidden ELU layers of the object-position head."""
    initial_log_std: float = 0.0
    """Initial value of the state-independent action log-std."""


def is_positive_int(value: typing.Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
