"""The dexgrasp CLI: bad input fails fast with one line and exit code 2; eval runs end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import dexgrasp_tasks.dextrah.env as env_module
from dexgrasp_cli import app as cli
from dexgrasp_cli.checks import write_json
from dexgrasp_tasks.dextrah.rewards import REWARD_TERMS

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``dexgrasp ARGS`` in-process through the console-script entry point."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture
def no_env(monkeypatch):
    """Make building an env (and so compiling kernels) an immediate test failure."""

    def refuse(*args, **kwargs):
        raise AssertionError("bad input must be rejected before the env is built")

    monkeypatch.setattr(env_module.DextrahEnv, "__init__", refuse)
    monkeypatch.setattr("dexgrasp_cli.layouts.launcher.launch", refuse)  # nor is any process started
    monkeypatch.setattr("dexgrasp_cli.bench.memory_bench.TrialRunner.run", refuse)  # nor any bench-memory trial


BAD_INPUT = [
    (["eval", "--num-envs", "0"], "--num-envs"),
    (["eval", "--episodes", "0"], "--episodes"),
    (["eval", "--device", "tpu"], "tpu"),
    (["eval", "--device", "cuda:7"], "cuda:7"),
    (["eval", "--adr-level", "51"], "--adr-level"),
    (["eval", "--adr-level", "-1"], "--adr-level"),
    (["eval", "--set", "task.nope=1"], "task.nope"),
    (["eval", "--set", "task.objects.mesh_folder=/nonexistent"], "/nonexistent"),
    (["eval", "--set", "task.episode_length=abc"], "task.episode_length"),
    (["eval", "--policy", "foo"], "foo"),
    (["eval", "--num-envs", "abc"], "--num-envs"),
    (["bench", "--num-envs", "0"], "--num-envs"),
    (["bench", "--steps", "0"], "--steps"),
    (["bench", "--device", "tpu"], "tpu"),
    (["bench", "--set", "task.nope=1"], "task.nope"),
    (["bench", "--set", "task.sim.backend=bullet"], "task.sim.backend must be one of auto, mjwarp, mujoco"),
    (["bench", "--set", "task.sim.threads=0"], "task.sim.threads must be >= 1"),
    (["bench", "--backend", "bullet"], "--backend 'bullet'; accepted: auto, mjwarp, mujoco"),
    (["bench", "--images", "rgb"], "--images"),
    (["eval", "--res", "160x"], "--res"),
    (["eval", "--res", "0x120"], "--res"),
    (["bench", "--res", "x120"], "--res"),
    (["eval", "--res", "100000x100000"], "GiB"),
    (["eval", "--save-frames", "frames", "--num-envs", "100000000", "--res", "160x120"], "GiB"),
    (["eval", "--set", "task.cameras.depth_range=[-0.5,1.3]"], "task.cameras.depth_range"),
    (["eval", "--set", "task.cameras.depth_range=[1.3,0.5]"], "task.cameras.depth_range"),
    (["eval", "--set", "task.cameras.depth_dtype=int8"], "task.cameras.depth_dtype"),
    (["eval", "--set", "task.actions.space=fabric"], "task.actions.space"),
    (["eval", "--set", "task.grasp_start_fraction=1.5"], "task.grasp_start_fraction"),
    (["eval", "--set", "task.cameras.noise.dropout_prob=2"], "task.cameras.noise.dropout_prob"),
    (["eval", "--frame-interval", "0"], "--frame-interval"),
    (["eval", "--checkpoint", "/nonexistent.pt"], "/nonexistent.pt"),
    (["eval", "--adr-level", "checkpoint"], "--checkpoint"),
    (["eval", "--adr-level", "hard"], "--adr-level"),
    (["train-teacher", "--modality", "rgb"], "--modality"),
    (["train-teacher", "--num-envs", "0"], "--num-envs"),
    (["train-teacher", "--max-iterations", "0"], "--max-iterations"),
    (["train-teacher", "--resume", "/nonexistent.pt"], "/nonexistent.pt"),
    (["train-teacher", "--set", "train.nope=1"], "train.nope"),
    (["train-teacher", "--set", "train.ppo.horizon_length=10"], "horizon_length"),
    (["train-teacher", "--num-envs", "3", "--set", "train.ppo.minibatch_size=32"], "minibatch_size"),
    (["bench-train", "--num-envs", "3", "--set", "train.ppo.minibatch_size=32"], "minibatch_size"),
    (["train-teacher", "--set", "model.x=1"], "model.x"),
    (["train-teacher", "--res", "100000x100000"], "GiB"),
    (["train-teacher", "--layout", "foo"], "--layout 'foo'; accepted: single, disagg, dp"),
    (["train-teacher", "--layout", "disagg", "--replicas", "0"], "--replicas"),
    (["train-teacher", "--layout", "disagg", "--num-envs", "7", "--replicas", "2"], "--num-envs 7 must be a multiple of the 2 replicas"),
    (["train-teacher", "--layout", "dp", "--num-envs", "7", "--replicas", "2"], "--num-envs 7 must be a multiple of the 2 ranks"),
    (["train-teacher", "--layout", "single", "--replicas", "3"], "--replicas 3 needs --layout disagg or dp"),
    (["train-teacher", "--layout", "dp", "--learner-device", "cpu"], "--learner-device applies to --layout disagg"),
    (["train-teacher", "--layout", "disagg", "--learner-device", "tpu"], "tpu"),
    (["train-teacher", "--layout", "dp", "--replicas", "2", "--num-envs", "6", "--set", "train.ppo.minibatch_size=32"],
     "--num-envs x train.ppo.horizon_length (3 x 16 = 48)"),
    (["bench-train", "--layout", "foo"], "--layout"),
    (["bench-train", "--layout", "dp", "--num-envs", "3"], "--num-envs 3"),
    (["bench-train", "--modality", "rgb"], "--modality"),
    (["bench-memory", "--gpu-memory", "0"], "--gpu-memory must be more than 0 bytes"),
    (["bench-memory", "--gpu-memory", "lots"], "--gpu-memory 'lots' is not a memory size"),
    (["bench-memory", "--gpus", "1", "--layout", "disagg"], "needs a simulator GPU and a learner GPU"),
    (["bench-memory", "--gpus", "0"], "--gpus"),
    (["bench-memory", "--res", "0x120"], "--res"),
    (["bench-memory", "--layout", "single"], "--layout 'single'; accepted: dp, disagg"),
    (["bench-memory", "--mode", "fast"], "--mode"),
    (["bench-memory", "--depth-dtype", "int8"], "--depth-dtype"),
    (["bench-memory", "--size", "4", "--size", "8"], "--size needs 3 or more"),
    (["bench-memory", "--horizon", "10"], "horizon_length"),
    (["bench-memory", "--modality", "state", "--res", "160x120"], "--res applies to the depth teacher"),
]


@pytest.mark.parametrize("args, names", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_exit_2(args, names, capsys, no_env):
    code, out, err = run_cli(args, capsys)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and names in lines[0]
    assert "Traceback" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_measured_memory_without_cuda_says_what_to_use(capsys, no_env):
    code, out, err = run_cli(["bench-memory", "--mode", "measured"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "--mode measured measures GPU memory with NVML" in err and "use --mode model" in err


@pytest.mark.parametrize("args, names", [
    (["--layout", "disagg", "--replicas", "3"], "--replicas 3 does not match this launch: 2 processes make 1"),
    (["--layout", "single"], "--layout single runs one process; this launch has 2"),
    (["--layout", "disagg", "--num-envs", "4"], "already holds a run"),
])  # fmt: skip
def test_bad_input_under_torchrun_is_one_line(args, names, tmp_path, capsys, monkeypatch, no_env):
    """As rank 1 (the learner) of 2 processes that torchrun started."""
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = run_cli(["train-teacher", "--run-dir", str(tmp_path), *args], capsys)
    assert code == 2 and err.count("\n") == 1 and names in err, err


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys, no_env):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    for command in (["eval", "--checkpoint", str(bad)], ["train-teacher", "--resume", str(bad)]):
        code, _, err = run_cli(command, capsys)
        assert code == 2 and err.count("\n") == 1 and str(bad) in err and "Traceback" not in err


def test_cuda_refusal_says_what_is_available(capsys, no_env):
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() > 7:
        pytest.skip("this machine has a cuda:7")
    _, _, err = run_cli(["eval", "--device", "cuda:7"], capsys)
    assert "available: cpu" in err


def test_empty_mesh_folder(tmp_path, capsys, no_env):
    (tmp_path / "notes.txt").write_text("not a mesh")
    code, out, err = run_cli(["eval", "--set", f"task.objects.mesh_folder={tmp_path}"], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "no .obj/.stl files" in err and str(tmp_path) in err


@pytest.mark.parametrize(
    "name, content, names",
    [("broken.obj", "not an obj\nv 1 2\nf 9 9 9\n", "broken.obj"),
     ("ascii.stl", "solid a\nendsolid a\n", "binary")],
)  # fmt: skip
def test_bad_mesh_file(tmp_path, name, content, names, capsys, no_env):
    (tmp_path / name).write_text(content)
    code, out, err = run_cli(["eval", "--set", f"task.objects.mesh_folder={tmp_path}"], capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("error: ") and names in err


def test_policy_error_names_accepted_values(capsys, no_env):
    _, _, err = run_cli(["eval", "--policy", "foo"], capsys)
    assert "accepted: scripted" in err


def test_adr_level_bound_follows_settings(capsys, no_env):
    code, _, err = run_cli(["eval", "--set", "task.adr.num_levels=10", "--adr-level", "11"], capsys)
    assert code == 2 and "[0, 10]" in err


def test_json_path_that_is_a_directory(tmp_path, capsys, no_env):
    code, _, err = run_cli(["eval", "--json", str(tmp_path)], capsys)
    assert code == 2 and "directory" in err


def test_help_lists_only_working_commands(capsys):
    code, out, _ = run_cli(["--help"], capsys)
    assert code == 0
    for command in ("eval", "train-teacher", "distill", "bench", "bench-train", "bench-memory", "report"):
        assert command in out


def test_write_json_is_atomic_and_keeps_old_file_on_failure(tmp_path):
    path = tmp_path / "sub" / "result.json"
    write_json(path, {"a": 1.0})
    assert json.loads(path.read_text()) == {"a": 1.0}
    with pytest.raises(ValueError):
        write_json(path, {"a": math.nan})  # allow_nan=False: refused, nothing replaced
    assert json.loads(path.read_text()) == {"a": 1.0}
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


def _finite_numbers(value) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return False


def test_eval_end_to_end(tmp_path):
    """The real console entry in a subprocess: 2 worlds, 2 short episodes, JSON written."""
    out_json = tmp_path / "out" / "out.json"
    frames = tmp_path / "frames"
    args = ["eval", "--policy", "scripted", "--num-envs", "2", "--episodes", "2",
            "--set", "task.episode_length=20", "--json", str(out_json),
            "--save-frames", str(frames), "--res", "32x24", "--frame-interval", "10"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), COLUMNS="120")
    proc = subprocess.run(
        [sys.executable, "-m", "dexgrasp_cli", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "CUDA driver" not in proc.stderr  # warp's start-up probe stays quiet without --verbose
    assert "success rate" in proc.stdout

    result = json.loads(out_json.read_text())
    numbers = ["success_rate_instantaneous", "success_rate_episode", "mean_lift_height",
               "mean_episode_length", "return_total", "env_steps_per_s", "first_step_s",
               "episodes", "num_envs", "seed", "adr_level", "overflow_resets", "env_steps"]  # fmt: skip
    numbers += [f"return_{name}" for name in REWARD_TERMS]
    for key in numbers:
        assert _finite_numbers(result[key]), (key, result[key])
    assert "mean_time_to_success" in result  # null when no episode succeeded
    assert result["mean_time_to_success"] is None or _finite_numbers(result["mean_time_to_success"])
    assert result["device"] == "cpu" and result["policy"] == "scripted"
    assert result["num_envs"] == 2 and result["episodes"] >= 2
    assert result["config"]["episode_length"] == 20
    assert result["overrides"] == ["task.episode_length=20"]
    assert 0.0 <= result["success_rate_instantaneous"] <= 1.0
    assert 0.0 <= result["success_rate_episode"] <= 1.0
    assert result["mean_episode_length"] <= 20
    # The env's summed reward, accumulated by the evaluator, equals the sum of the per-term returns.
    per_term = sum(result[f"return_{name}"] for name in REWARD_TERMS)
    assert result["return_total"] == pytest.approx(per_term, abs=1e-4)
    assert not list(out_json.parent.glob("*.tmp"))
    # Frames at reset and every 10 steps: depth, left and right per world, plus an overview.
    assert result["frames_saved"] >= 3
    for step in (0, 10, 20):
        names = {p.name for p in frames.glob(f"step{step:05d}_*.png")}
        assert names == {f"step{step:05d}_overview.png"} | {
            f"step{step:05d}_world{w:04d}_{kind}.png" for w in range(2) for kind in ("depth", "left", "right")
        }


def test_bench_with_cameras_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, _, err = run_cli(["bench", "--num-envs", "2", "--steps", "2", "--images", "none", "--images", "depth+rgb",
                            "--res", "32x24", "--json", str(out)], capsys)  # fmt: skip
    assert code == 0, err
    rows = json.loads(out.read_text())["results"]
    assert [(r["images"], r["resolution"]) for r in rows] == [("none", None), ("depth+rgb", "32x24")]
    assert "render_ms" not in rows[0] and rows[1]["frames_per_s"] > 0
    # depth (7 B) and two colour cameras (7 B each) per pixel, plus the rays shared by the 2 worlds
    pixels = 32 * 24
    assert rows[1]["render_bytes_per_world"] == pytest.approx(21 * pixels + 3 * 24 * pixels / 2)
