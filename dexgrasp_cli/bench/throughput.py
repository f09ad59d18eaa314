"""Env throughput: env-steps/s of DextrahEnv stepping random actions, with and without cameras.

Each configuration (physics backend, world count, rendered images, resolution) builds its own env
and steps it ``WARMUP_STEPS`` times (the very first step of the process compiles warp kernels; it
is timed and reported separately). Then it times ``steps`` full steps (physics, rendering,
observations), ``steps`` physics steps alone (the backend's step, without the task) and ``steps``
renders alone. The backends of one case take turns at each of these, ``TIMING_TURNS`` turns each,
so that the ratio between backends sees the same machine: a CPU's speed here drifts by a third
within minutes. Ratios compare rows of the same run: each row's env-steps/s over the first row's,
and over the first backend's row of the same case. Only figures from a GPU say anything absolute;
CPU figures are machine-dependent."""

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
TIMING_TURNS = 3
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
    """Every backend with every world count and every mode, each once; modes that render run at every resolution."""
    return list(dict.fromkeys(
        BenchCase(backend, worlds, mode, res if IMAGE_MODES[mode] else None)
        for backend in backends
        for worlds in world_counts
        for mode in modes
        for res in (resolutions if IMAGE_MODES[mode] else [None])
    ))  # fmt: skip


def _timed(device: torch.device, calls: list) -> float:
    """Seconds to run every zero-argument call in ``calls``, device work included."""
    synchronize(device)
    t0 = time.perf_counter()
    for call in calls:
        call()
    synchronize(device)
    return time.perf_counter() - t0


def _taking_turns(device: torch.device, call_lists: list[list]) -> list[float]:
    """Seconds each list of calls took, the lists running in ``TIMING_TURNS`` interleaved turns."""
    seconds = [0.0] * len(call_lists)
    for turn in range(TIMING_TURNS):
        for i, calls in enumerate(call_lists):
            share = slice(turn * len(calls) // TIMING_TURNS, (turn + 1) * len(calls) // TIMING_TURNS)
            seconds[i] += _timed(device, calls[share])
    return seconds


def _same_case_groups(cases: list[BenchCase]) -> list[list[BenchCase]]:
    """The cases grouped by everything but the backend, in the order they first appear."""
    groups: dict[tuple, list[BenchCase]] = {}
    for case in cases:
        groups.setdefault((case.worlds, case.images, case.resolution), []).append(case)
    return list(groups.values())


def _ready_env(case: BenchCase, settings: TaskSettings, steps: int, device: str, seed: int,
               objects: list[ObjectShape] | None, console: Console):  # fmt: skip
    """The case's env after its warm-up steps, its ``steps`` random actions, its build seconds and
    the seconds its first step took."""
    from dexgrasp_tasks.dextrah.env import DextrahEnv

    label = f"{case.worlds} worlds, images {case.images}" + (f" at {case.resolution}" if case.resolution else "")
    console.print(f"[bold]bench[/] {case.backend}, {label} on {device}: building the scene ...")
    case_settings = settings.with_camera_resolution(case.resolution) if case.resolution else settings
    case_settings = dataclasses.replace(case_settings, sim=dataclasses.replace(case_settings.sim, backend=case.backend))
    t0 = time.perf_counter()
    env = DextrahEnv(case_settings, case.worlds, device=device, seed=seed, objects=objects, images=IMAGE_MODES[case.images])
    build_s = time.perf_counter() - t0
    gen = torch.Generator(device=env.device).manual_seed(seed)
    actions = [torch.rand(case.worlds, env.num_actions, generator=gen, device=env.device) * 2 - 1 for _ in range(steps)]
    first_step_s = _timed(env.device, [functools.partial(env.step, actions[0])])
    for _ in range(WARMUP_STEPS - 1):
        env.step(actions[0])
    return env, actions, build_s, first_step_s


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
    console = console or Console(stderr=True)
    by_case: dict[BenchCase, dict] = {}
    first_step_s = None
    for group in _same_case_groups(cases):
        envs, batches, build_s = [], [], []
        for case in group:
            env, actions, seconds, first_s = _ready_env(case, settings, steps, device, seed, objects, console)
            if first_step_s is None:
                first_step_s = first_s
                console.print(f"  first step (kernel compile or cache load): {first_step_s:.2f} s")
            envs.append(env)
            batches.append(actions)
            build_s.append(seconds)
        console.print(f"  timing {steps} steps" + (" of each backend, taking turns ..." if len(group) > 1 else " ..."))
        on = envs[0].device
        elapsed = _taking_turns(on, [[functools.partial(env.step, a) for a in batch] for env, batch in zip(envs, batches)])
        physics_s = _taking_turns(on, [[functools.partial(env.sim.step, env.settings.decimation)] * steps for env in envs])
        render_s = _taking_turns(on, [[env.render] * steps for env in envs]) if envs[0].images is not None else None
        for i, (case, env) in enumerate(zip(group, envs)):
            row = by_case[case] = {
                "backend": env.sim.name,
                "worlds": case.worlds,
                "images": case.images,
                "resolution": case.resolution,
                "steps": steps,
                "seconds": elapsed[i],
                "env_steps_per_s": case.worlds * steps / elapsed[i],
                "ms_per_step": 1e3 * elapsed[i] / steps,
                "physics_ms": 1e3 * physics_s[i] / steps,
                "build_s": build_s[i],
                "overflow_resets": env.overflow_resets,
            }
            if render_s is not None:
                row.update(
                    render_ms=1e3 * render_s[i] / steps,
                    frames_per_s=case.worlds * steps / render_s[i],
                    render_bytes_per_world=env.images.memory_bytes() / case.worlds,
                )
        del envs, batches
    rows = [by_case[case] for case in cases]
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
        "timing_turns": TIMING_TURNS,
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
