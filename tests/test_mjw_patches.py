"""The host-side mujoco-warp patch must give the library's own indices, for every geom-type pair."""

from __future__ import annotations

from mujoco_warp._src import collision_convex
from mujoco_warp._src.math import upper_trid_index
from mujoco_warp._src.types import GeomType

from dexgrasp_tasks.dextrah.env import DextrahEnv
from dexgrasp_tasks.sim import mjw_patches


def test_upper_triangle_index_matches_mujoco_warp():
    n = len(GeomType)
    for i in range(n):
        for j in range(n):
            assert mjw_patches.upper_triangle_index(n, i, j) == upper_trid_index(n, i, j), (i, j)
    # Every entry of the triangle gets its own index, 0 .. n(n+1)/2 - 1.
    indices = {mjw_patches.upper_triangle_index(n, i, j) for i in range(n) for j in range(i, n)}
    assert indices == set(range(n * (n + 1) // 2))


def test_sim_construction_applies_the_patch(settings):
    DextrahEnv(settings, num_envs=1)
    assert collision_convex.upper_trid_index is mjw_patches.upper_triangle_index
