"""`dexgrasp bench` with two backends: rows per backend, timed in turns, and each row's ratio to the first backend's row
of the same case."""

import functools

import pytest
import torch
from rich.console import Console

from dexgrasp_assets.objects import procedural_objects
from dexgrasp_cli.bench.throughput import TIMING_TURNS, _taking_turns, bench_cases, run_throughput, throughput_table


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


def test_backends_of_a_case_take_turns_at_the_timed_steps():
    order = []
    calls = [[functools.partial(order.append, (name, k)) for k in range(TIMING_TURNS)] for name in ("mujoco", "mjwarp")]
    seconds = _taking_turns(torch.device("cpu"), calls)
    assert order == [(name, k) for k in range(TIMING_TURNS) for name in ("mujoco", "mjwarp")]
    assert len(seconds) == 2 and all(s > 0 for s in seconds)


def test_a_case_asked_for_twice_is_timed_once():
    assert bench_cases([4, 4], ["none"], [], ["mujoco"]) == bench_cases([4], ["none"], [], ["mujoco"])
