"""Automatic Domain Randomization (ADR): a level schedule over named ranges.

Every randomized quantity has a (low, high) range that moves linearly from `init` at
level 0 to `final` at `num_levels`. The controller raises the level by one when enough
environments succeed and enough env steps have passed since the last change; it never
lowers it. In a distributed layout the learner owns the level and pushes it with
`set_level`.
"""

from __future__ import annotations

import torch

from dexgrasp_tasks.dextrah.settings import ADRSettings


class ADR:
    """ADR level controller; maps the current level to concrete ranges."""

    def __init__(self, settings: ADRSettings, level: int = 0) -> None:
        if settings.num_levels < 1:
            raise ValueError(f"num_levels must be >= 1, got {settings.num_levels}")
        self.settings = settings
        self._level = 0
        self._steps_since_change = 0
        self.set_level(level)

    @property
    def level(self) -> int:
        return self._level

    @property
    def fraction(self) -> float:
        """level / num_levels: the paper's "ADR Inc." metric."""
        return self._level / self.settings.num_levels

    @property
    def steps_since_change(self) -> int:
        return self._steps_since_change

    def range(self, name: str) -> tuple[float, float]:
        """Current (low, high) of the range `name`."""
        try:
            spec = self.settings.ranges[name]
        except KeyError:
            known = ", ".join(sorted(self.settings.ranges)) or "none"
            raise KeyError(f"unknown ADR range {name!r}; known ranges: {known}") from None
        return spec.at(self.fraction)

    def ranges(self) -> dict[str, tuple[float, float]]:
        """Current (low, high) of every range."""
        return {name: self.range(name) for name in self.settings.ranges}

    def sample(self, name: str, u: torch.Tensor) -> torch.Tensor:
        """Map uniforms `u` in [0, 1) into the current range of `name`."""
        low, high = self.range(name)
        return low + (high - low) * u

    def update(self, success_fraction: float, steps: int) -> bool:
        """Count `steps` env steps since the previous call; return True if the level rose."""
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        self._steps_since_change += steps
        s = self.settings
        if (
            success_fraction > s.success_threshold
            and self._steps_since_change >= s.min_steps_between_changes
            and self._level < s.num_levels
        ):
            self._level += 1
            self._steps_since_change = 0
            return True
        return False

    def set_level(self, level: int) -> None:
        """Set the level from outside (e.g. the learner) and restart the step count."""
        n = self.settings.num_levels
        if not 0 <= level <= n:
            raise ValueError(f"ADR level must be in [0, {n}], got {level}")
        self._level = int(level)
        self._steps_since_change = 0

    def state_dict(self) -> dict:
        return {"level": self._level, "steps_since_change": self._steps_since_change}

    def load_state_dict(self, state: dict) -> None:
        self.set_level(state["level"])
        self._steps_since_change = int(state["steps_since_change"])


def noise_width_and_bias(
    value: torch.Tensor | float, u_width: torch.Tensor, u_bias: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-reset noise parameters: width = value * U(0,1), bias = width * (U - 0.5).

    `value` is the current ADR magnitude; `u_width`, `u_bias` are uniforms in [0, 1).
    """
    width = value * u_width
    return width, width * (u_bias - 0.5)


def step_noise(width: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Per-step noise width * U(-1, 1) from uniforms `u` in [0, 1)."""
    return width * (2.0 * u - 1.0)
