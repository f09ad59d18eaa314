"""Training throughput of the PPO teachers in each layout, and experience-buffer memory.

Throughput: each case (a layout, and a teacher: state, or depth at a resolution) is a real
``dexgrasp train-teacher`` run in a temporary folder, started as its own command (so the
multi-process layouts launch their processes as users' runs do), for one warm-up iteration and
``iterations`` timed ones. The figures come from its metrics.jsonl: env-steps/s (collection and
update together, over every world of the global batch), collection and update seconds, the slowest
simulator's stepping, the learner's wait for observations and the share of the iteration that wait
exceeds the stepping by (the disaggregation overhead). Each row's ratio is to the single layout's
row of the same teacher, measured in the same run. Buffer memory: rl-games' own ExperienceBuffer is
allocated for a depth teacher at the given size with depth stored as float16 and as float32, and the
bytes of its tensors are summed. Only GPU figures say anything absolute.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from rl_games.common.experience import ExperienceBuffer
from rl_games.common.gym_compat import spaces

from dexgrasp_cli.byte_sizes import tensor_bytes
from dexgrasp_cli.errors import RunFailed
from dexgrasp_cli.learner.agent import build_model
from dexgrasp_cli.learner.checkpoint import load_checkpoint
from dexgrasp_tasks.dextrah.settings import TaskSettings

FORMAT_VERSION = 2
_NEVER = 10**9  # periodic checkpoints off: only best and last are written


@dataclass(frozen=True)
class TrainCase:
    layout: str
    modality: str
    resolution: str | None  # None for the state teacher

    @property
    def label(self) -> str:
        return self.modality + (f" {self.resolution}" if self.resolution else "")


def training_cases(layouts: list[str], modalities: list[str], resolutions: list[str]) -> list[TrainCase]:
    """Every teacher (state; depth at each resolution) in every layout, teacher by teacher."""
    teachers = [("state", None)] if "state" in modalities else []
    if "depth" in modalities:
        teachers += [("depth", res) for res in resolutions]
    return [TrainCase(layout, modality, res) for modality, res in teachers for layout in layouts]


def experience_buffer_bytes(num_envs: int, horizon: int, width: int, height: int, depth_dtype, env_info: dict) -> int:
    """Bytes of rl-games' experience buffer for a depth teacher with its critic (allocated, then freed).

    ``env_info`` is a teacher vecenv's: its proprioception, critic and action spaces are used as they
    are, with a depth image of ``width`` x ``height`` in ``depth_dtype`` beside the proprioception.
    """
    depth = spaces.Box(0.0, 2.0, (1, height, width), dtype=depth_dtype)
    observations = spaces.Dict({"depth": depth, "proprio": env_info["observation_space"]["proprio"]})
    env_info = dict(env_info, observation_space=observations)
    algo_info = {"num_actors": num_envs, "horizon_length": horizon, "has_central_value": True}
    buffer = ExperienceBuffer(env_info, algo_info, "cpu")  # zero-filled pages are not touched until used
    total = tensor_bytes(buffer.tensor_dict)
    del buffer
    return total


def run_training_bench(
    task: TaskSettings, horizon: int, cases: list[TrainCase], num_envs: int, replicas: int, iterations: int,
    device: str, seed: int, overrides: list[str], console: Console,
) -> dict:  # fmt: skip
    """Time every case (see the module docstring); progress goes to ``console``."""
    rows = []
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="dexgrasp-bench-") as folder:
            run_dir = Path(folder) / "run"
            lines = _train(case, num_envs, replicas, iterations + 1, device, seed, overrides, run_dir, console)
            policy = load_checkpoint(run_dir / "checkpoints" / "last.pt")["dexgrasp"]["policy"]
        parameters = sum(p.numel() for p in build_model(policy, torch.device("cpu"), 1).parameters())
        timed = lines[1:]
        seconds = sum(m["seconds"] for m in timed)
        frames = timed[-1]["env_steps"] - lines[0]["env_steps"]
        rows.append({
            "layout": case.layout, "modality": case.modality, "resolution": case.resolution, "worlds": num_envs,
            "replicas": 1 if case.layout == "single" else replicas, "iterations": iterations,
            "env_steps_per_iteration": frames // iterations, "env_steps_per_s": frames / seconds,
            **{key: float(np.mean([m[field] for m in timed])) for key, field in _MEANS.items()},
            "parameters": parameters,
        })  # fmt: skip
    _add_ratios(rows)
    width, height = 160, 120
    env_info = _teacher_spaces(task, device, seed)
    memory = {
        "num_envs": 4096, "horizon": horizon, "resolution": f"{width}x{height}",
        "float16_bytes": experience_buffer_bytes(4096, horizon, width, height, np.float16, env_info),
        "float32_bytes": experience_buffer_bytes(4096, horizon, width, height, np.float32, env_info),
    }  # fmt: skip
    return {"benchmark": "training", "device": device, "seed": seed, "results": rows, "buffer": memory,
            "format_version": FORMAT_VERSION}  # fmt: skip


_MEANS = {"collect_s": "collect_seconds", "update_s": "update_seconds", "sim_step_s": "sim_step_seconds",
          "obs_wait_s": "obs_wait_seconds", "overhead_share": "overhead_share"}  # fmt: skip
"""Row key: the metrics.jsonl field it is the mean of, over the timed iterations."""


def _train(case: TrainCase, num_envs: int, replicas: int, iterations: int, device: str, seed: int,
           overrides: list[str], run_dir: Path, console: Console) -> list[dict]:  # fmt: skip
    """Run ``train-teacher`` for ``case`` as a command; return its metrics, one dict per iteration."""
    args = [sys.executable, "-m", "dexgrasp_cli", "train-teacher", "--modality", case.modality, "--num-envs", str(num_envs),
            "--max-iterations", str(iterations), "--device", device, "--seed", str(seed), "--run-dir", str(run_dir),
            "--layout", case.layout, "--set", f"train.run.save_every={_NEVER}"]  # fmt: skip
    if case.layout != "single":
        args += ["--replicas", str(replicas)]
    if case.resolution:
        args += ["--res", case.resolution]
    for assignment in overrides:
        args += ["--set", assignment]
    metrics = run_dir / "metrics.jsonl"
    label = f"{case.layout}{'' if case.layout == 'single' else f' x{replicas}'}, {case.label}"
    log = run_dir.parent / "train-teacher.log"
    with console.status(f"[bold]bench-train[/] {label}, {num_envs} worlds on {device}: starting ...") as status, \
            log.open("w") as out:  # fmt: skip
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        while proc.poll() is None:
            time.sleep(0.5)
            done = len(metrics.read_text().splitlines()) if metrics.exists() else 0
            status.update(f"[bold]bench-train[/] {label}: iteration {done}/{iterations} done "
                          f"({'warm-up, then timed' if done == 0 else 'timed'})")  # fmt: skip
    if proc.returncode != 0:
        tail = " | ".join(log.read_text().strip().splitlines()[-3:])
        raise RunFailed(f"bench-train {label}: train-teacher exited with code {proc.returncode}: {tail}")
    console.print(f"bench-train {label}: {iterations} iterations done")
    return [json.loads(line) for line in metrics.read_text().splitlines()]


def _add_ratios(rows: list[dict]) -> None:
    """Each row's env-steps/s over the single layout's for the same teacher (None without one)."""
    single = {(r["modality"], r["resolution"]): r["env_steps_per_s"] for r in rows if r["layout"] == "single"}
    for row in rows:
        base = single.get((row["modality"], row["resolution"]))
        row["ratio_to_single"] = row["env_steps_per_s"] / base if base else None


def _teacher_spaces(task: TaskSettings, device: str, seed: int) -> dict:
    """A state teacher's vecenv spaces (proprioception, critic, actions) from a one-world env."""
    from dexgrasp_cli.learner.vecenv import LocalVecEnv
    from dexgrasp_tasks.dextrah.env import DextrahEnv

    return LocalVecEnv(DextrahEnv(task, 1, device=device, seed=seed), "state", device).get_env_info()


def training_table(result: dict) -> Table:
    table = Table(title=f"dexgrasp bench-train: PPO teachers on {result['device']} (collection + update)")
    columns = ("layout", "teacher", "worlds", "env-steps/iter", "env-steps/s", "x single", "collect s", "update s",
               "sim step s", "obs wait s", "overhead", "parameters")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name in ("layout", "teacher") else "right")
    for row in result["results"]:
        layout = row["layout"] + ("" if row["layout"] == "single" else f" x{row['replicas']}")
        ratio = "" if row["ratio_to_single"] is None else f"{row['ratio_to_single']:.2f}"
        table.add_row(
            layout, row["modality"] + (f" {row['resolution']}" if row["resolution"] else ""), str(row["worlds"]),
            str(row["env_steps_per_iteration"]), f"{row['env_steps_per_s']:,.1f}", ratio, f"{row['collect_s']:.2f}",
            f"{row['update_s']:.2f}", f"{row['sim_step_s']:.2f}", f"{row['obs_wait_s']:.2f}",
            f"{row['overhead_share']:.1%}", f"{row['parameters']:,}",
        )  # fmt: skip
    b = result["buffer"]
    ratio = b["float32_bytes"] / b["float16_bytes"]
    table.caption = (
        f"experience buffer, depth teacher, {b['num_envs']} envs x {b['horizon']} steps x {b['resolution']}: "
        f"{b['float16_bytes'] / 2**30:.2f} GiB with float16 depth, {b['float32_bytes'] / 2**30:.2f} GiB with float32 "
        f"({ratio:.2f}x). sim step: the slowest simulator's stepping per iteration; obs wait: the learner's wait "
        "for observations; overhead: the share of the iteration that wait exceeds the stepping by."
    )
    return table
