"""Env throughput: env-steps/s of DextrahEnv stepping random actions, for several world counts.

Each world count builds its own env, steps ``warmup`` times (the very first step of the process
compiles warp kernels; it is timed and reported separately), then times ``steps`` steps. The
ratio column is each count's throughput over the first count's, measured in the same run. Only
figures from a GPU say anything absolute about the method; CPU figures are machine-dependent.
"""

from __future__ import annotations

import time

import torch
from rich.console import Console
from rich.table import Table

from assets.objects import ObjectShape
from tasks.dextrah.settings import TaskSettings

CPU_WORLDS = (16, 64)
GPU_WORLDS = (1024, 4096, 8192)
WARMUP_STEPS = 5
FORMAT_VERSION = 1


def default_world_counts(device: str) -> tuple[int, ...]:
    return GPU_WORLDS if device.startswith("cuda") else CPU_WORLDS


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        import warp as wp

        wp.synchronize_device(str(device))
        torch.cuda.synchronize(device)


def run_throughput(
    settings: TaskSettings,
    world_counts: list[int],
    steps: int,
    device: str,
    seed: int,
    objects: list[ObjectShape] | None = None,
    console: Console | None = None,
) -> dict:
    """Time ``steps`` random-action steps per world count after ``WARMUP_STEPS`` warm-up steps."""
    from tasks.dextrah.env import NUM_JOINTS, DextrahEnv

    console = console or Console(stderr=True)
    rows = []
    first_step_s = None
    for worlds in world_counts:
        console.print(f"[bold]bench[/] {worlds} worlds on {device}: building the scene ...")
        t0 = time.perf_counter()
        env = DextrahEnv(settings, worlds, device=device, seed=seed, objects=objects)
        build_s = time.perf_counter() - t0
        gen = torch.Generator(device=env.device).manual_seed(seed)

        def actions() -> torch.Tensor:
            return torch.rand(worlds, NUM_JOINTS, generator=gen, device=env.device) * 2.0 - 1.0

        for i in range(WARMUP_STEPS):
            t0 = time.perf_counter()
            env.step(actions())
            _synchronize(env.device)
            if first_step_s is None:
                first_step_s = time.perf_counter() - t0
                console.print(f"  first step (kernel compile or cache load): {first_step_s:.2f} s")
        console.print(f"  timing {steps} steps ...")
        batch = [actions() for _ in range(steps)]  # drawn outside the timed loop
        _synchronize(env.device)
        t0 = time.perf_counter()
        for act in batch:
            env.step(act)
        _synchronize(env.device)
        elapsed = time.perf_counter() - t0
        rows.append({
            "worlds": worlds,
            "steps": steps,
            "seconds": elapsed,
            "env_steps_per_s": worlds * steps / elapsed,
            "ms_per_step": 1e3 * elapsed / steps,
            "build_s": build_s,
            "overflow_resets": env.overflow_resets,
        })  # fmt: skip
        del env, batch
    base = rows[0]["env_steps_per_s"]
    for row in rows:
        row["ratio_vs_first"] = row["env_steps_per_s"] / base
    return {
        "benchmark": "throughput",
        "device": device,
        "seed": seed,
        "warmup_steps": WARMUP_STEPS,
        "first_step_s": first_step_s,
        "torch_threads": torch.get_num_threads(),
        "results": rows,
        "format_version": FORMAT_VERSION,
    }


def throughput_table(result: dict) -> Table:
    first = result["results"][0]["worlds"]
    table = Table(title=f"dexgrasp bench: env throughput on {result['device']} (random actions)")
    table.add_column("worlds", justify="right")
    table.add_column("env-steps/s", justify="right")
    table.add_column("ms/step", justify="right")
    table.add_column(f"x vs {first} worlds", justify="right")
    table.add_column("overflow resets", justify="right")
    for row in result["results"]:
        table.add_row(
            str(row["worlds"]),
            f"{row['env_steps_per_s']:,.1f}",
            f"{row['ms_per_step']:,.2f}",
            f"{row['ratio_vs_first']:.2f}",
            str(row["overflow_resets"]),
        )
    table.caption = f"first step of the first env (kernel compile or cache load): {result['first_step_s']:.2f} s"
    return table
