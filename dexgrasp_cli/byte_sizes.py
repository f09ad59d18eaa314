"""Memory sizes: as people write them (``48GB``, 10^9 bytes as GPU vendors count, or ``48GiB``, 2^30),
as people read them, and as tensors hold them."""

from __future__ import annotations

import re

_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*")


def parse_bytes(text: str, option: str) -> int:
    """Bytes of ``text`` (a positive number and a unit, e.g. ``48GiB``, ``80GB``, ``1.5TB``)."""
    match = _SIZE.fullmatch(text)
    if match and float(match[1]) == 0:
        raise ValueError(f"{option} must be more than 0 bytes, got {text!r}")
    unit = match and _UNITS.get(match[2].lower())
    if not unit:
        raise ValueError(f"{option} {text!r} is not a memory size; accepted: a number and a unit "
                         "(B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 48GB or 80GiB")  # fmt: skip
    size = int(float(match[1]) * unit)
    if size <= 0:
        raise ValueError(f"{option} must be more than 0 bytes, got {text!r}")
    return size


def format_bytes(size: float) -> str:
    """``size`` in the binary unit that keeps 1-4 digits before the point, e.g. ``1.23 GiB``."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(size) >= scale:
            return f"{size / scale:,.2f} {unit}"
    return f"{size:,.0f} B"


def tensor_bytes(value) -> int:
    """Bytes of every tensor in ``value``: a tensor, or dicts, lists and tuples of them (others count 0)."""
    import torch  # here, so that parsing a size on the command line does not load torch
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0
