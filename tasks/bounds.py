"""Declared valid values of settings fields, checked in one place.

A settings dataclass derives from ``Bounded`` and states, in ``BOUNDS``, what each of its number,
string, tuple and mapping fields accepts; its ``__post_init__`` checks them all. A spec is

- a comparison or an interval, as it reads in messages: ``"> 0"``, ``">= 1"``, ``"<= 0"``,
  ``"in [0, 1]"``, ``"in (0, 1]"``; a tuple's every item must satisfy it,
- ``"any"``: no bound, said explicitly (any number but NaN; any string, left to its own check),
- a tuple of strings: the accepted choices,
- ``bound(spec, order="<=")``: a (low, high) pair whose items satisfy ``spec`` and ``low <= high``.

Tuples of any length (``tuple[int, ...]``: layer sizes, joint positions) must not be empty. None
(an unset optional field) and booleans need no bound. A violation raises ``OutOfBounds``, which names
the field; ``dexgrasp_cli.config.from_dict`` turns it into a message naming the full key.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

_NUMBER = r"(-?\d+(?:\.\d*)?(?:e-?\d+)?)"
_COMPARISON = re.compile(rf"(>=|<=|>|<) {_NUMBER}")
_INTERVAL = re.compile(rf"in ([\[(]){_NUMBER}, {_NUMBER}([\])])")
ORDERS = ("<", "<=")


class OutOfBounds(ValueError):
    """A field's value outside its declared bound; ``at(where)`` is the message under a config key."""

    def __init__(self, owner: str, name: str, problem: str):
        self.name, self.problem = name, problem
        super().__init__(self.at(owner))

    def at(self, where: str) -> str:
        return f"{where}.{self.name} {self.problem}"


@dataclass(frozen=True)
class Bound:
    """``low <(=) value <(=) high`` for a number or each item of a tuple, and optionally ``order``
    between the two items of a pair."""

    text: str
    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    order: str | None = None

    def accepts(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below  # False for NaN

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is refused (the name's continuation), or None."""
        if isinstance(value, str):
            return None
        unbounded = self.text == "any"
        if not isinstance(value, tuple):
            if self.accepts(value):
                return None
            return f"must be {'a number' if unbounded else self.text}, got {value!r}"
        if not value:
            return "must not be empty, got []"
        if not all(map(self.accepts, value)):
            return f"must hold only numbers{'' if unbounded else ' ' + self.text}, got {list(value)}"
        if self.order is not None and not (value[0] < value[1] if self.order == "<" else value[0] <= value[1]):
            return f"must be [low, high] with low {self.order} high, got {list(value)}"
        return None


Spec = Bound | tuple


def bound(text: str, order: str | None = None) -> Bound:
    """The bound a spec text states (see the module docstring); ``order`` makes it a (low, high) pair."""
    if order not in (None, *ORDERS):
        raise ValueError(f"order {order!r} is not one of {', '.join(ORDERS)}")
    if text == "any":
        return Bound(text, order=order)
    if match := _COMPARISON.fullmatch(text):
        op, x = match[1], float(match[2])
        if op.startswith(">"):
            return Bound(text, low=x, low_open=op == ">", order=order)
        return Bound(text, high=x, high_open=op == "<", order=order)
    if match := _INTERVAL.fullmatch(text):
        low, high = float(match[2]), float(match[3])
        return Bound(text, low, high, low_open=match[1] == "(", high_open=match[4] == ")", order=order)
    raise ValueError(f"bound {text!r} is not 'any', a comparison like '> 0' or an interval like 'in (0, 1]'")


def bounds(**specs: str | tuple[str, ...] | Bound) -> dict[str, Spec]:
    """A ``BOUNDS`` mapping: texts parsed now (a malformed one fails at import), choices and bounds kept."""
    return {name: bound(spec) if isinstance(spec, str) else spec for name, spec in specs.items()}


def problem(spec: Spec, value: Any) -> str | None:
    """Why ``value`` does not meet ``spec``, or None when it does (or is None)."""
    if value is None or isinstance(value, (bool, dict)):  # a mapping's values check themselves
        return None
    if isinstance(spec, Bound):
        return spec.problem(value)
    if value in spec:
        return None
    return f"must be one of {', '.join(spec)}, got {value!r}"


class Bounded:
    """A settings dataclass whose fields are checked against its ``BOUNDS`` when it is made."""

    BOUNDS: ClassVar[dict[str, Spec]] = {}

    def __post_init__(self) -> None:
        for name, spec in self.BOUNDS.items():
            why = problem(spec, getattr(self, name))
            if why is not None:
                raise OutOfBounds(type(self).__name__, name, why)

