"""Env throughput: env-steps/s of DextrahEnv stepping random actions, with and without cameras.

Each configuration (physics backend, world count, rendered images, resolution) builds its own env,
steps ``WARMUP_STEPS`` times (the very first step of the process compiles warp kernels; it is
timed and reported separately), then times ``steps`` full steps (physics, rendering,
observations), ``steps`` physics steps alone (the backend's step, without the task) and ``steps``
renders alone. Ratios compare rows of the same run: each row's env-steps/s over the first row's,
and over the first backend's row of the same case. Only figures from a GPU say anything
absolute; CPU figures are machine-dependent."""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass

import torch
from rich.console import Console
from rich.table import Table

from dexgrasp_assets.objects import ObjectShape
from dexgrasp_tasks.dextrah.settings import TaskSettings
from dexgrasp_tasks.sim.mjwarp_backend import synchronize

CPU_WORLDS = (16, 64)
GPU_WORLDS = (1024, 4096, 8192)
IMAGE_MODES = {"none": (), "depth": ("depth",), "depth+rgb": ("depth", "rgb")}
DEFAULT_RESOLUTIONS = ("160x120", "320x240")
WARMUP_STEPS = 5
FORMAT_VERSION = 4


@dataclass(frozen=True)
class BenchCase:
    backend: str  # a task.sim.backend value
    worlds: int
    images: str  # a key of IMAGE_MODES
    resolution: str | None  # None when nothing is rendered


def default_world_counts(device: str) -> tuple[int, ...]:
    return GPU_WORLDS if device.startswith("cuda") else CPU_WORLDS


def bench_cases(
    world_counts: list[int], modes: list[str], resolutions: list[str], backends: list[str]
) -> list[BenchCase]:
    """Every backend with every world count and every mode; modes that render run at every resolution."""
    return [
        BenchCase(backend, worlds, mode, res if IMAGE_MODES[mode] else None)
        for backend in backends
        for worlds in world_counts
        for mode in modes
        for res in (resolutions if IMAGE_MODES[mode] else [None])
    ]


def _timed(device: torch.device, calls: list) -> float:
    """Seconds to run every zero-argument call in ``calls``, device work included."""
    synchronize(device)
    t0 = time.perf_counter()
    for call in calls:
        call()
    synchronize(device)
    return time.perf_counter() - t0


def run_throughput(
    settings: TaskSettings,
    cases: list[BenchCase],
    steps: int,
    device: str,
    seed: int,
    objects: list[ObjectShape] | None = None,
    console: Console | None = None,
) -> dict:
    """Time every case; see the module docstring."""
    from dexgrasp_tasks.dextrah.env import DextrahEnv

    console = console or Console(stderr=True)
    rows = []
    first_step_s = None
    for case in cases:
        label = f"{case.worlds} worlds, images {case.images}" + (f" at {case.resolution}" if case.resolution else "")
        console.print(f"[bold]bench[/] {label} on {device}: building the scene ...")
        case_settings = settings.with_camera_resolution(case.resolution) if case.resolution else settings
        case_settings = dataclasses.replace(case_settings, sim=dataclasses.replace(case_settings.sim, backend=case.backend))
        t0 = time.perf_counter()
        env = DextrahEnv(
            case_settings, case.worlds, device=device, seed=seed, objects=objects, images=IMAGE_MODES[case.images]
        )
        build_s = time.perf_counter() - t0
        gen = torch.Generator(device=env.device).manual_seed(seed)
        batch = [torch.rand(case.worlds, env.num_actions, generator=gen, device=env.device) * 2 - 1 for _ in range(steps)]
        for _ in range(WARMUP_STEPS):
            t0 = time.perf_counter()
            env.step(batch[0])
            synchronize(env.device)
            if first_step_s is None:
                first_step_s = time.perf_counter() - t0
                console.print(f"  first step (kernel compile or cache load): {first_step_s:.2f} s")
        console.print(f"  timing {steps} steps ...")
        elapsed = _timed(env.device, [functools.partial(env.step, actions) for actions in batch])
        physics_s = _timed(env.device, [functools.partial(env.sim.step, case_settings.decimation)] * steps)
        row = {
            "backend": env.sim.name,
            "worlds": case.worlds,
            "images": case.images,
            "resolution": case.resolution,
            "steps": steps,
            "seconds": elapsed,
            "env_steps_per_s": case.worlds * steps / elapsed,
            "ms_per_step": 1e3 * elapsed / steps,
            "physics_ms": 1e3 * physics_s / steps,
            "build_s": build_s,
            "overflow_resets": env.overflow_resets,
        }
        if env.images is not None:
            render_s = _timed(env.device, [env.render] * steps)
            row.update(
                render_ms=1e3 * render_s / steps,
                frames_per_s=case.worlds * steps / render_s,
                render_bytes_per_world=env.images.memory_bytes() / case.worlds,
            )
        rows.append(row)
        del env, batch
    base = rows[0]["env_steps_per_s"]
    same_case = {(r["worlds"], r["images"], r["resolution"]): r for r in rows if r["backend"] == rows[0]["backend"]}
    for row in rows:
        row["ratio_vs_first"] = row["env_steps_per_s"] / base
        reference = same_case[row["worlds"], row["images"], row["resolution"]]
        row["ratio_vs_first_backend"] = row["env_steps_per_s"] / reference["env_steps_per_s"]
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
    table = Table(title=f"dexgrasp bench: env throughput on {result['device']} (random actions)")
    rows = result["results"]
    backends = list(dict.fromkeys(row["backend"] for row in rows))
    vs_backend = [f"x vs {backends[0]}"] if len(backends) > 1 else []
    for name in ("backend", "worlds", "images", "res", "env-steps/s", "ms/step", "physics ms", "x vs first row", *vs_backend,
                 "render ms", "frames/s", "render MiB/world", "overflow resets"):  # fmt: skip
        table.add_column(name, justify="left" if name in ("backend", "images", "res") else "right")
    for row in rows:
        renders = "render_ms" in row
        table.add_row(
            row["backend"],
            str(row["worlds"]),
            row["images"],
            row["resolution"] or "-",
            f"{row['env_steps_per_s']:,.1f}",
            f"{row['ms_per_step']:,.2f}",
            f"{row['physics_ms']:,.2f}",
            f"{row['ratio_vs_first']:.2f}",
            *([f"{row['ratio_vs_first_backend']:.2f}"] if vs_backend else []),
            f"{row['render_ms']:,.2f}" if renders else "-",
            f"{row['frames_per_s']:,.1f}" if renders else "-",
            f"{row['render_bytes_per_world'] / 2**20:,.3f}" if renders else "-",
            str(row["overflow_resets"]),
        )
    table.caption = (
        f"first step of the first env (kernel compile or cache load): {result['first_step_s']:.2f} s; "
        "frames/s counts worlds rendered per second (one depth image, or depth plus a stereo pair)"
    )
    return table
