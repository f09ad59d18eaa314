"""The teachers' and critic's network sizes: the keys of each rl-games ``network`` mapping, checked.

Plain dataclasses without torch, so that the command line validates train.networks.* at once.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

from dexgrasp_cli.config import from_dict
from dexgrasp_tasks.bounds import Bounded, bounds

_RECURRENT = {"lstm_units": ">= 1", "lstm_layers": ">= 1", "mlp": ">= 1"}
"""The bounds of the LSTM and MLP sizes every network has."""


@dataclass(frozen=True)
class DepthTeacherSizes(Bounded):
    """Keys of the depth teacher's ``network`` params; the defaults are the paper's sizes."""

    BOUNDS = bounds(**_RECURRENT, filters=">= 1", kernels=">= 1", stride=">= 1", embedding=">= 1", initial_log_std="any")

    filters: tuple[int, ...] = (16, 32, 64, 128)
    """Output channels of each conv layer."""
    kernels: tuple[int, ...] = (6, 4, 4, 4)
    """Square kernel size of each conv layer, one per entry of filters."""
    stride: int = 2
    """Stride of every conv layer; the padding makes each layer divide the image size by it."""
    embedding: int = 32
    """Size of the linear depth embedding taken after global average pooling."""
    lstm_units: int = 1024
    """Hidden units per LSTM layer."""
    lstm_layers: int = 2
    """Stacked LSTM layers."""
    lstm_layer_norm: bool = False
    """LayerNorm on the LSTM output before the MLP (the paper does not mention one)."""
    mlp: tuple[int, ...] = (512, 512, 256)
    """Hidden ELU layers after the LSTM."""
    initial_log_std: float = 0.0
    """Initial value of the state-independent action log-std."""

    def __post_init__(self):
        super().__post_init__()
        if len(self.kernels) != len(self.filters):
            raise ValueError(f"network.kernels has {len(self.kernels)} entries, network.filters {len(self.filters)}")


@dataclass(frozen=True)
class StateTeacherSizes(Bounded):
    """Keys of the state teacher's ``network`` params; the defaults are DextrAH's sizes."""

    BOUNDS = bounds(**_RECURRENT, initial_log_std="any")

    lstm_units: int = 1024
    """Hidden units per LSTM layer."""
    lstm_layers: int = 1
    """Stacked LSTM layers."""
    lstm_layer_norm: bool = True
    """LayerNorm on the LSTM output before the MLP, as in DextrAH."""
    mlp: tuple[int, ...] = (512, 512)
    """Hidden ELU layers after the LSTM."""
    initial_log_std: float = 0.0
    """Initial value of the state-independent action log-std."""


@dataclass(frozen=True)
class CriticSizes(Bounded):
    """Keys of the critic's ``network`` params (under central_value_config); defaults are DextrAH's."""

    BOUNDS = bounds(**_RECURRENT)

    lstm_units: int = 2048
    """Hidden units per LSTM layer."""
    lstm_layers: int = 1
    """Stacked LSTM layers."""
    lstm_layer_norm: bool = True
    """LayerNorm on the LSTM output before the MLP, as in DextrAH's critic."""
    mlp: tuple[int, ...] = (1024, 512)
    """Hidden ELU layers after the LSTM."""


def parse_sizes(sizes_type: type, params: dict) -> typing.Any:
    """``sizes_type`` from an rl-games ``network`` mapping: every key but ``name`` is a field, checked
    as train.networks.* is."""
    return from_dict(sizes_type, {key: value for key, value in params.items() if key != "name"}, "network")
