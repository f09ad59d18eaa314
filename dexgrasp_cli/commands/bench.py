"""`dexgrasp bench` and `dexgrasp bench-train`: env and training throughput."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console

from dexgrasp_cli.checks import (
    check_at_least_one,
    check_backend,
    check_images_fit,
    check_layout,
    check_output,
    load_settings,
    load_train_settings,
    quiet_warp,
    resolve_device,
    split_settings_overrides,
    user_objects,
    with_resolution,
    write_json,
)
from dexgrasp_cli.commands.options import (
    DeviceOption,
    JsonOption,
    SeedOption,
    SetOption,
    TaskTrainSetOption,
)
from dexgrasp_cli.errors import UsageError


def bench_command(
    num_envs: Annotated[
        Optional[list[int]],
        typer.Option(help="World count to time (repeatable). Default: 16 and 64 on cpu; 1024, 4096 and 8192 on cuda."),
    ] = None,
    images: Annotated[
        Optional[list[str]],
        typer.Option(help="Images rendered each step: none, depth or depth+rgb (repeatable). Default: all three."),
    ] = None,
    res: Annotated[
        Optional[list[str]],
        typer.Option("--res", metavar="WxH", help="Camera resolution for the rows that render (repeatable). Default: 160x120 and 320x240."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Timed steps (and renders) per row, after 5 warm-up steps.")] = 30,
    backends: Annotated[
        Optional[list[str]],
        typer.Option("--backend", help="Physics backend to time: auto, mjwarp or mujoco (repeatable). Default: task.sim.backend."),
    ] = None,
    device: DeviceOption = "cpu",
    seed: SeedOption = 0,
    json_path: JsonOption = None,
    overrides: SetOption = None,
) -> None:
    """Env throughput (env-steps/s) and camera figures, stepping random actions; only GPU figures are absolute."""
    from dexgrasp_cli.bench.throughput import (
        DEFAULT_RESOLUTIONS,
        IMAGE_MODES,
        bench_cases,
        default_world_counts,
    )

    device = resolve_device(device)
    counts = list(num_envs) if num_envs else list(default_world_counts(device))
    for count in counts:
        check_at_least_one("--num-envs", count)
    check_at_least_one("--steps", steps)
    modes = list(images) if images else list(IMAGE_MODES)
    for mode in modes:
        if mode not in IMAGE_MODES:
            raise UsageError(f"unknown --images {mode!r}; accepted: {', '.join(IMAGE_MODES)}")
    settings = load_settings(overrides)
    option = "--backend" if backends else "task.sim.backend"  # the error names what the user set
    backends = list(dict.fromkeys(backends or [settings.sim.backend]))
    for backend in backends:
        check_backend(backend, device, option)
    resolutions = [with_resolution(settings, r).cameras.resolution for r in (res or DEFAULT_RESOLUTIONS)]
    cases = bench_cases(counts, modes, resolutions, backends)
    for case in cases:
        if case.resolution:
            check_images_fit(settings.with_camera_resolution(case.resolution), IMAGE_MODES[case.images], case.worlds, device)
    objects = user_objects(settings)
    check_output(json_path)

    from dexgrasp_cli.bench.throughput import run_throughput, throughput_table

    quiet_warp()
    result = run_throughput(settings, cases, steps, device, seed, objects=objects)
    result["overrides"] = list(overrides or [])
    console = Console()
    console.print(throughput_table(result))
    console.print("note: absolute figures are only meaningful on a GPU; CPU numbers depend on the machine.")
    if json_path is not None:
        write_json(json_path, result)
        console.print(f"wrote {json_path}")


def bench_train_command(
    num_envs: Annotated[int, typer.Option(help="Simulated worlds in all (the global batch of every layout).")] = 16,
    res: Annotated[
        Optional[list[str]], typer.Option("--res", metavar="WxH", help="Depth teacher resolution (repeatable). Default: 32x24 and 160x120.")
    ] = None,
    layouts: Annotated[
        Optional[list[str]], typer.Option("--layout", help="Layout to time: single, disagg or dp (repeatable). Default: single.")
    ] = None,
    replicas: Annotated[int, typer.Option(metavar="K", help="Simulator replicas (disagg) and ranks (dp).")] = 2,
    modalities: Annotated[
        Optional[list[str]], typer.Option("--modality", help="Teacher to time: state or depth (repeatable). Default: both.")
    ] = None,
    iterations: Annotated[int, typer.Option(help="Timed PPO iterations per case, after one warm-up iteration.")] = 2,
    device: DeviceOption = "cpu",
    seed: SeedOption = 0,
    json_path: JsonOption = None,
    overrides: TaskTrainSetOption = None,
) -> None:
    """Training env-steps/s of the teachers in each layout (collection + update), and the experience buffer's bytes, fp16 vs fp32."""
    check_at_least_one("--num-envs", num_envs)
    check_at_least_one("--iterations", iterations)
    from dexgrasp_cli.learner.settings import MODALITIES

    modalities = list(dict.fromkeys(modalities or ["state", "depth"]))
    for modality in modalities:
        if modality not in MODALITIES:
            raise UsageError(f"unknown --modality {modality!r}; accepted: {', '.join(MODALITIES)}")
    layouts = list(dict.fromkeys(layouts or ["single"]))
    for layout in layouts:
        check_layout(layout, None if layout == "single" else replicas, num_envs, None)
    device = resolve_device(device)
    groups = split_settings_overrides(overrides)
    task = load_settings(groups["task"])
    check_backend(task.sim.backend, device)
    trains = [load_train_settings(groups["train"], num_envs // replicas if layout == "dp" else num_envs) for layout in layouts]
    resolutions = [with_resolution(task, r).cameras.resolution for r in (res or ("32x24", "160x120"))]
    if "depth" in modalities:
        for resolution in resolutions:  # every layout renders all the worlds on this machine
            check_images_fit(task.with_camera_resolution(resolution), ("depth",), num_envs, device)
    check_output(json_path)

    from dexgrasp_cli.bench.training import (
        run_training_bench,
        training_cases,
        training_table,
    )

    quiet_warp()
    console = Console()
    cases = training_cases(layouts, modalities, resolutions)
    result = run_training_bench(task, trains[0].ppo.horizon_length, cases, num_envs, replicas, iterations, device, seed,
                                list(overrides or []), Console(stderr=True))  # fmt: skip
    result["overrides"] = list(overrides or [])
    console.print(training_table(result))
    console.print("note: absolute figures are only meaningful on a GPU; CPU numbers depend on the machine.")
    if json_path is not None:
        write_json(json_path, result)
        console.print(f"wrote {json_path}")
