"""`dexgrasp bench` with two backends: rows per backend, and each row's ratio to the first backend's row of the same case."""

import pytest
from rich.console import Console

from dexgrasp_assets.objects import procedural_objects
from dexgrasp_cli.bench.throughput import bench_cases, run_throughput, throughput_table


def test_bench_times_both_backends_and_compares_the_same_cases(settings):
    cases = bench_cases([2, 3], ["none"], [], ["mujoco", "mjwarp"])
    result = run_throughput(settings, cases, steps=2, device="cpu", seed=0, objects=procedural_objects(2, seed=0),
                            console=Console(quiet=True))  # fmt: skip
    rows = result["results"]
    assert [(r["backend"], r["worlds"]) for r in rows] == [("mujoco", 2), ("mujoco", 3), ("mjwarp", 2), ("mjwarp", 3)]
    for row in rows:
        assert row["env_steps_per_s"] == pytest.approx(row["worlds"] * 2 / row["seconds"])
        reference = next(r for r in rows if r["backend"] == "mujoco" and r["worlds"] == row["worlds"])
        assert row["ratio_vs_first_backend"] == pytest.approx(row["env_steps_per_s"] / reference["env_steps_per_s"])
    assert [c.header for c in throughput_table(result).columns][8] == "x vs mujoco"
