"""Host-side speedups for mujoco-warp 4.0.0 (pinned in pyproject.toml); physics is unchanged.

Every physics step, the collision driver looks up which geom-type pairs the model has by calling
``math.upper_trid_index``, a ``wp.func``, from Python: 71 calls per step in our scene. A warp
function called from Python binds and type-checks its arguments on each call, about 0.25 ms
each, which was a quarter of a 64-world CPU step. ``apply_patches()`` rebinds that name in the two
collision modules, which use it only on the host, to a plain Python function with the same
result. Kernels keep the ``wp.func``, so compiled code and its cache are untouched.
"""

from __future__ import annotations

from mujoco_warp._src import collision_convex, collision_primitive

HOST_CALLERS = (collision_convex, collision_primitive)


def upper_triangle_index(n: int, i: int, j: int) -> int:
    """Row-major index of entry (i, j) = (j, i) of an n x n upper triangle stored with its diagonal."""
    row, col = min(i, j), max(i, j)
    rows_before = row * n - row * (row - 1) // 2  # entries in rows 0 .. row-1
    return rows_before + col - row


def apply_patches() -> None:
    """Idempotent; call before stepping."""
    for module in HOST_CALLERS:
        module.upper_trid_index = upper_triangle_index
