"""bench-memory: the search, the memory model, node capacity, the probe, the trials' buffers and the command."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from dexgrasp_cli.bench.memory_bench import trial_minibatch
from dexgrasp_cli.bench.memory_model import RoleModel, Trial, fit_role, node_capacity
from dexgrasp_cli.bench.memory_probe import CpuMemoryProbe
from dexgrasp_cli.bench.memory_search import largest_fitting
from dexgrasp_cli.bench.memory_trial import TrialSpec, env_info_of, run_trial
from dexgrasp_cli.bench.training import experience_buffer_bytes
from dexgrasp_cli.byte_sizes import format_bytes, parse_bytes
from tests.test_cli import run_cli
from tests.test_train_teacher import TINY

TINY_NETWORKS = tuple(a for a in TINY if a.startswith("train.networks"))

# ---------------------------------------------------------------------------- the search


@pytest.mark.parametrize("cap", [1, 2, 37, 1000])
@pytest.mark.parametrize("guess", [1, 3, 64, 5000])
def test_search_finds_the_exact_threshold(cap, guess):
    for threshold in sorted({0, 1, 2, 3, 17, 36, 37, 38, 500, 999, 1000, 10**6}):
        tried = []

        def fits(n, threshold=threshold):
            assert 1 <= n <= cap, n
            tried.append(n)
            return n <= threshold

        assert largest_fitting(fits, cap, guess) == min(threshold, cap)
        assert len(tried) == len(set(tried)), "a count was tried twice"
        assert len(tried) <= 2 * math.ceil(math.log2(cap + 1)) + 2


def test_search_edges():
    assert largest_fitting(lambda n: False, 10**7) == 0  # nothing fits
    assert largest_fitting(lambda n: True, 640, guess=3) == 640  # everything up to the cap
    with pytest.raises(ValueError):
        largest_fitting(lambda n: True, 0)


# ---------------------------------------------------------------------------- the model and the node


def test_fit_recovers_a_constructed_model_and_projects_its_maximum():
    fixed, per_world, per_sample, horizon = 900e6, 0.7e6, 1.1e6, 16
    copy = 0.2e6  # per world: the update's flattened batch, part of the world's bytes and of the update's rise
    trials = [Trial(n, n * horizon, int(fixed + per_world * n + per_sample * n * horizon),
                    int(250e6 + (per_sample * horizon + copy) * n), int(per_world * n), int(copy * n))
              for n in (4, 8, 16)]  # fmt: skip
    model = fit_role("dp-rank", trials)
    assert model.fixed_bytes == pytest.approx(fixed, rel=1e-9)
    assert model.per_world_bytes == pytest.approx(per_world, rel=1e-6)
    assert model.per_sample_bytes == pytest.approx(per_sample, rel=1e-9)  # the batch copy is not an activation
    budget, minibatch = 48 * 10**9, 16384
    # Beyond minibatch / horizon worlds the update's samples stop growing: a closed form there.
    expected = math.floor((budget - fixed - per_sample * minibatch) / per_world)
    assert model.max_worlds(budget, horizon, minibatch) == expected
    assert model.peak(expected + 1, horizon, minibatch) > budget >= model.peak(expected, horizon, minibatch)


def test_fit_needs_two_sizes():
    with pytest.raises(ValueError, match="two or more distinct sizes"):
        fit_role("disagg-replica", [Trial(4, 0, 10), Trial(4, 0, 11)])


def test_disagg_capacity_is_the_smaller_side_and_names_it():
    learner_binds = node_capacity("disagg", 4, {"disagg-replica": 5000, "disagg-learner": 9000})
    assert (learner_binds.envs_total, learner_binds.envs_per_gpu, learner_binds.binding) == (9000, 3000, "disagg-learner")
    replicas_bind = node_capacity("disagg", 4, {"disagg-replica": 2000, "disagg-learner": 9000})
    assert (replicas_bind.envs_total, replicas_bind.envs_per_gpu, replicas_bind.binding) == (6000, 2000, "disagg-replica")
    assert replicas_bind.sides == {"disagg-replica": 6000, "disagg-learner": 9000}
    dp = node_capacity("dp", 4, {"dp-rank": 1024})
    assert (dp.envs_per_gpu, dp.envs_total, dp.binding) == (1024, 4096, "dp-rank")
    with pytest.raises(ValueError, match="at least 2 GPUs"):
        node_capacity("disagg", 1, {"disagg-replica": 1, "disagg-learner": 1})


def test_trial_minibatch_divides_the_batch():
    assert trial_minibatch(16, 16, 16384) == 256
    assert trial_minibatch(2800, 16, 16384) == 11200  # 44800 = 4 x 11200
    for n in (1, 7, 999, 2801):
        m = trial_minibatch(n, 16, 16384)
        assert (n * 16) % m == 0 and m <= 16384


def test_sizes_parse_as_written():
    assert parse_bytes("48GB", "--gpu-memory") == 48 * 10**9
    assert parse_bytes("80GiB", "--gpu-memory") == 80 * 2**30
    assert parse_bytes("1.5 tb", "--gpu-memory") == 1_500_000_000_000
    for bad in ("0", "0GB", "lots", "-4GB", "48 parsecs"):
        with pytest.raises(ValueError, match="--gpu-memory"):
            parse_bytes(bad, "--gpu-memory")
    assert format_bytes(3 * 2**30) == "3.00 GiB" and format_bytes(512) == "512 B"


# ---------------------------------------------------------------------------- the probe and the trials


def test_cpu_probe_sees_a_touched_allocation_and_resets_its_peak():
    probe = CpuMemoryProbe()
    size = 256 * 2**20
    probe.reset_peak()
    before = probe.current()
    block = np.ones(size, dtype=np.uint8)  # written, so resident
    peak = probe.peak()
    del block
    assert peak - before >= 0.95 * size
    probe.reset_peak()
    assert probe.peak() < peak - 0.5 * size


SPACES = {"observation": {"depth": [[1, 24, 32], "float16"], "proprio": [[90], "float32"]},
          "state": [[249], "float32"], "action": [[11], "float32"]}  # fmt: skip


def _learner_trial(depth_dtype: str, num_envs: int = 4, horizon: int = 8) -> dict:
    spaces = json.loads(json.dumps(SPACES))
    spaces["observation"]["depth"][1] = depth_dtype
    spec = TrialSpec("disagg-learner", num_envs, "depth", "32x24", "cpu", horizon, num_envs * horizon,
                     train_overrides=(*TINY_NETWORKS, "train.ppo.seq_length=4"), spaces=spaces)  # fmt: skip
    record = run_trial(spec)
    assert record["error"] is None, record["error"]
    return record


def test_float32_depth_adds_exactly_the_float16_depth_bytes_to_the_experience_buffer():
    num_envs, horizon, width, height = 4, 8, 32, 24
    half, full = (_learner_trial(dtype, num_envs, horizon) for dtype in ("float16", "float32"))
    depth_bytes_fp16 = horizon * width * height * 2  # per world: one float16 image per step
    added = (full["components"]["experience"] - half["components"]["experience"]) / num_envs
    assert added == depth_bytes_fp16
    # bench-train's measurement of rl-games' buffer agrees with the trial's to the byte.
    env_info = env_info_of(SPACES)
    for dtype, record in ((np.float16, half), (np.float32, full)):
        assert experience_buffer_bytes(num_envs, horizon, width, height, dtype, env_info) == record["components"]["experience"]
    assert {"build_peak", "collect_peak", "update_peak"} <= half["phases"].keys()
    assert half["phases"]["update_peak"] >= half["phases"]["collect"]


# ---------------------------------------------------------------------------- the command


def test_bench_memory_projects_fits_and_writes_its_outputs(tmp_path, capsys):
    """Real trials (fresh processes) of the disaggregated roles at 32x24 with tiny networks."""
    out = tmp_path / "out"
    args = ["bench-memory", "--layout", "disagg", "--gpus", "2", "--gpu-memory", "8GB", "--res", "32x24",
            "--horizon", "8", "--size", "2", "--size", "4", "--size", "8", "--json", str(out / "m.json"),
            "--csv", str(out / "m.csv"), "--plot", str(out / "m.png")]  # fmt: skip
    for assignment in (*TINY_NETWORKS, "train.ppo.seq_length=4"):
        args += ["--set", assignment]
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    assert "dexgrasp bench-memory" in stdout and "note: Projected from CPU memory" in stdout
    result = json.loads((out / "m.json").read_text())
    assert json.loads(json.dumps(result)) == result
    (row,) = result["rows"]
    assert row["source"] == "projected" and row["layout"] == "disagg" and row["paper_envs_per_gpu"] is None
    assert row["envs_total"] == min(row["sides"].values())
    assert row["binding"] == min(row["sides"], key=row["sides"].get)
    low, high = row["band_per_gpu"]  # slopes 10% steeper, then 10% shallower
    assert low <= row["envs_per_gpu"] <= high and low < high
    for role, model in result["models"]["32x24"].items():
        assert abs(model["held_out"]["relative_error"]) < 0.10, (role, model["held_out"])
        assert model["held_out"]["num_envs"] == 8 and model["fitted_on"] == [2, 4]
    assert result["breakdown"]["32x24"]["disagg-replica"]["physics"] > 0
    with (out / "m.csv").open() as f:
        (csv_row,) = list(csv.DictReader(f))
    assert int(csv_row["envs_total"]) == row["envs_total"]
    assert (int(csv_row["band_low_per_gpu"]), int(csv_row["band_high_per_gpu"])) == (low, high)
    assert (out / "m.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*tmp")), "a temporary file was left behind"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="measured mode needs CUDA")
def test_measured_mode_validates_its_maximum_on_cuda(tmp_path, capsys):
    args = ["bench-memory", "--device", "cuda", "--mode", "measured", "--layout", "dp", "--gpus", "1",
            "--gpu-memory", "3GB", "--res", "32x24", "--size", "16", "--size", "32", "--size", "64",
            "--json", str(tmp_path / "m.json")]  # fmt: skip
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    model = json.loads((tmp_path / "m.json").read_text())["models"]["32x24"]["dp-rank"]
    assert model["validation"]["max_fits"] is True and model["validation"]["over_fits"] is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the NVML probe needs CUDA")
def test_nvml_probe_sees_a_device_allocation():
    from dexgrasp_cli.bench.memory_probe import NvmlMemoryProbe

    probe = NvmlMemoryProbe(torch.device("cuda"))
    try:
        probe.reset_peak()
        before = probe.current()
        block = torch.ones(2**28, dtype=torch.float32, device="cuda")  # 1 GiB
        del block
        assert probe.peak() - before >= 0.95 * 2**30
    finally:
        probe.close()
