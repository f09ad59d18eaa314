"""best.pt is chosen by ADR level first, then success: an early, easy checkpoint never wins."""

from __future__ import annotations

from dexgrasp_cli.learner.trainer import checkpoint_rank


def rank(level: int, success: float) -> list:
    return checkpoint_rank({"adr_level": level, "success_rate": success})


def test_a_higher_adr_level_beats_any_success_at_a_lower_one():
    assert rank(12, 0.05) > rank(3, 0.9)
    assert not rank(3, 0.9) > rank(12, 0.05)


def test_at_one_level_the_higher_success_wins():
    assert rank(7, 0.4) > rank(7, 0.3)
    assert not rank(7, 0.3) > rank(7, 0.3)  # a tie does not replace best.pt
