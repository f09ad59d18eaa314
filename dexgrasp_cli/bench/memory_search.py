"""The largest world count that fits: a search over a predicate that is true up to a threshold.

A trial is expensive (a fresh process, a scene build, one training iteration), so the search tries
each count at most once: it gallops from a guess (doubling while the guess fits, halving while it
does not) until it holds a count that fits and one that does not, then bisects between them.
"""

from __future__ import annotations

from collections.abc import Callable


def largest_fitting(fits: Callable[[int], bool], cap: int, guess: int = 1) -> int:
    """The largest ``n`` in ``[1, cap]`` with ``fits(n)``, for ``fits`` true up to some count and false
    beyond it; 0 when not even 1 fits. ``guess`` (clamped to the range) is tried first."""
    if cap < 1:
        raise ValueError(f"cap must be >= 1, got {cap}")
    known: dict[int, bool] = {}

    def check(n: int) -> bool:
        if n not in known:
            known[n] = bool(fits(n))
        return known[n]

    n = min(max(guess, 1), cap)
    if check(n):
        low, high = n, None
        while high is None:
            if low == cap:
                return cap
            up = min(2 * low, cap)
            low, high = (up, None) if check(up) else (low, up)
    else:
        low, high = 0, n
        while low == 0:
            down = high // 2
            if down < 1:
                return 0
            low, high = (down, high) if check(down) else (0, down)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if check(middle) else (low, middle)
    return low
