"""The teachers' and critic's network sizes: the keys of each rl-games ``network`` mapping, checked.

Plain dataclasses without torch, so that the command line validates train.networks.* at once.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass


@dataclass(frozen=True)
class DepthTeacherSizes:
    """Keys of the depth teacher's ``network`` params; the defaults are the paper's sizes."""

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
        if len(self.kernels) != len(self.filters):
            raise ValueError(f"network.kernels has {len(self.kernels)} entries, network.filters {len(self.filters)}")


@dataclass(frozen=True)
class StateTeacherSizes:
    """Keys of the state teacher's ``network`` params; the defaults are DextrAH's sizes."""

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
class CriticSizes:
    """Keys of the critic's ``network`` params (under central_value_config); defaults are DextrAH's."""

    lstm_units: int = 2048
    """Hidden units per LSTM layer."""
    lstm_layers: int = 1
    """Stacked LSTM layers."""
    lstm_layer_norm: bool = True
    """LayerNorm on the LSTM output before the MLP, as in DextrAH's critic."""
    mlp: tuple[int, ...] = (1024, 512)
    """Hidden ELU layers after the LSTM."""


def parse_sizes(sizes_type: type, params: dict) -> typing.Any:
    """``sizes_type`` from an rl-games ``network`` mapping: every key but ``name`` is a field."""
    names = [field.name for field in dataclasses.fields(sizes_type)]
    hints = typing.get_type_hints(sizes_type)
    values = {}
    for key, value in params.items():
        if key == "name":
            continue
        if key not in names:
            raise ValueError(f"unknown key 'network.{key}' for {params.get('name')}; accepted: {', '.join(names)}")
        values[key] = _checked(hints[key], value, f"network.{key}")
    return sizes_type(**values)


def _checked(kind: type, value: typing.Any, where: str) -> typing.Any:
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def positive_int(v):
        return number(v) and isinstance(v, int) and v > 0

    if kind is bool and not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false, got {value!r}")
    if kind is float and not number(value):
        raise ValueError(f"{where} must be a number, got {value!r}")
    if kind is int and not positive_int(value):
        raise ValueError(f"{where} must be a positive integer, got {value!r}")
    if kind not in (bool, float, int):  # tuple[int, ...]
        if not (isinstance(value, (list, tuple)) and value and all(map(positive_int, value))):
            raise ValueError(f"{where} must be a non-empty list of positive integers, got {value!r}")
        return tuple(value)
    return float(value) if kind is float else value
