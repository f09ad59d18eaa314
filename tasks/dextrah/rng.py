"""Counter-based random numbers: one independent stream per (world, counter, purpose).

Why counter-based: world i of the global batch must draw the same numbers whether it
runs in an env of 1024 worlds or in a smaller env holding worlds [a:b]. A shared
generator (torch.Generator) hands out numbers in call order across the whole batch, so
a world's numbers would depend on which other worlds share its env. Here every number
is a pure hash of (seed, global world id, counter, stream, element index): there is no
state, any subset of worlds reproduces its slice of the full batch, and the hash uses
only wrapping int64 arithmetic, so CPU and CUDA give identical bits.

Callers advance `counter` (e.g. a per-world reset or step count) to get fresh numbers.
"""

from __future__ import annotations

import functools
import math
from enum import IntEnum
from typing import TypeVar

import numpy as np
import torch


class Stream(IntEnum):
    """Purposes of random draws; distinct values keep different uses from sharing numbers."""

    OBJECT_SPAWN = 1
    RESET_JOINT_NOISE = 2
    PHYSICS_PARAMS = 3
    OBS_NOISE_WIDTH = 4
    OBS_NOISE_STEP = 5
    DISTURBANCE = 6
    SCRIPTED = 7
    VISUAL = 8
    DEPTH_NOISE = 9
    EPISODE_STAGGER = 10
    GRASP_START = 11


def _i64(x: int) -> int:
    """The int64 value with the same low 64 bits as `x` (two's complement)."""
    x &= (1 << 64) - 1
    return x - (1 << 64) if x >= 1 << 63 else x


_GOLDEN = _i64(0x9E3779B97F4A7C15)
_M1 = _i64(0xBF58476D1CE4E5B9)
_M2 = _i64(0x94D049BB133111EB)
_MAX_STREAM = 1 << 32  # normal() derives its two uniform streams above this
Ints = TypeVar("Ints", np.ndarray, torch.Tensor)  # int64 values the hash runs on


def _shr(z: Ints, s: int) -> Ints:
    """Logical right shift: >> on int64 (torch's and numpy's) is arithmetic, so clear the copied sign bits."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix(z: Ints) -> Ints:
    """splitmix64 finalizer: a bijection on 64 bits with full avalanche (products wrap)."""
    z = (z ^ _shr(z, 30)) * _M1
    z = (z ^ _shr(z, 27)) * _M2
    return z ^ _shr(z, 31)


def _bits(
    seed: int,
    world_ids: torch.Tensor,
    counter: torch.Tensor | int,
    stream: int,
    n: int,
    device: torch.device | str | None,
) -> torch.Tensor:
    """(len(world_ids), n) int64 hashes, chaining one mix per input so each is injective."""
    ids = torch.as_tensor(world_ids, dtype=torch.int64, device=device)
    ctr = torch.as_tensor(counter, dtype=torch.int64, device=ids.device).expand_as(ids)
    key = _seed_key(seed)
    if ids.device.type == "cpu":
        # numpy's int64 operators wrap alike, so the bits are the same, and on the few thousand
        # numbers most draws are a call costs half of torch's or less (docs/physics.md).
        elements = np.arange(n, dtype=np.int64)
        return torch.from_numpy(_chain(ids.numpy(), ctr.numpy(), key, stream, elements))
    return _chain(ids, ctr, key, stream, torch.arange(n, dtype=torch.int64, device=ids.device))


@functools.cache  # a run draws with one or a few seeds
def _seed_key(seed: int) -> int:
    """The chain's first link, the same for every world: the mix of the seed."""
    return int(_mix(np.array([_i64(seed)], dtype=np.int64) + _GOLDEN)[0])


def _chain(ids: Ints, ctr: Ints, key: int, stream: int, elements: Ints) -> Ints:
    """The hash chain on numpy arrays or torch tensors alike: it uses their operators only."""
    h = _mix((ids ^ key) + _GOLDEN)
    for part in (ctr, stream):
        h = _mix((h ^ part) + _GOLDEN)
    return _mix((h[:, None] ^ elements) + _GOLDEN)


def _uniform(
    seed: int,
    world_ids: torch.Tensor,
    counter: torch.Tensor | int,
    stream: int,
    n: int,
    device: torch.device | str | None,
) -> torch.Tensor:
    # The top 24 bits fit a float32 mantissa exactly, so the result is in [0, 1).
    return _shr(_bits(seed, world_ids, counter, stream, n, device), 40).to(torch.float32) * 2.0**-24


def _check_stream(stream: int) -> None:
    if not 0 <= stream < _MAX_STREAM:
        raise ValueError(f"stream must be in [0, 2**32), got {stream}")


def uniform(
    seed: int,
    world_ids: torch.Tensor,
    counter: torch.Tensor | int,
    stream: int,
    n: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(len(world_ids), n) float32 uniform in [0, 1).

    world_ids: int64 global world indices; counter: per-world int64 tensor of the same
    length, or one int for all; stream: a `Stream` naming the purpose; n: numbers per
    world. `device` defaults to that of `world_ids`.
    """
    _check_stream(int(stream))
    return _uniform(seed, world_ids, counter, int(stream), n, device)


def normal(
    seed: int,
    world_ids: torch.Tensor,
    counter: torch.Tensor | int,
    stream: int,
    n: int,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """(len(world_ids), n) float32 standard normal, same arguments as `uniform`.

    Box-Muller on two uniform draws from streams derived from `stream` (above 2**32, so
    they never coincide with a plain `uniform` stream). The integer draws are bit-exact
    across devices; log/cos may differ in the last ulp.
    """
    _check_stream(int(stream))
    u1 = _uniform(seed, world_ids, counter, int(stream) + _MAX_STREAM, n, device)
    u2 = _uniform(seed, world_ids, counter, int(stream) + 2 * _MAX_STREAM, n, device)
    # 1 - u1 lies in (0, 1], so the log is finite.
    return torch.sqrt(-2.0 * torch.log1p(-u1)) * torch.cos((2.0 * math.pi) * u2)
