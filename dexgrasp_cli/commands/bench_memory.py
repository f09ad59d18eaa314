"""`dexgrasp bench-memory`: the paper's Table I, worlds per node in the dp and disagg layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from dexgrasp_tasks.dextrah.settings import DEPTH_DTYPES
from rich.console import Console

from dexgrasp_cli.checks import (
    bad_input,
    check_at_least_one,
    check_output,
    load_settings,
    load_train_settings,
    resolve_device,
    split_settings_overrides,
    with_resolution,
    write_json,
)
from dexgrasp_cli.commands.options import (
    DeviceOption,
    JsonOption,
    SeedOption,
    TaskTrainSetOption,
)
from dexgrasp_cli.errors import UsageError


def bench_memory_command(
    res: Annotated[
        Optional[list[str]], typer.Option("--res", metavar="WxH", help="Depth resolution (repeatable). Default: 160x120 and 320x240, the paper's.")
    ] = None,
    layouts: Annotated[Optional[list[str]], typer.Option("--layout", help="dp or disagg (repeatable). Default: both.")] = None,
    gpus: Annotated[int, typer.Option(help="GPUs in the node (disagg: G-1 simulate, one learns).")] = 4,
    gpu_memory: Annotated[str, typer.Option(metavar="SIZE", help="Memory each GPU may use, e.g. 48GB (the paper's L40S) or 80GiB.")] = "48GB",
    modality: Annotated[str, typer.Option(help="Teacher: depth or state.")] = "depth",
    depth_dtype: Annotated[
        Optional[str], typer.Option(help="Depth in buffers: float16 or float32 (default: task.cameras.depth_dtype).")
    ] = None,
    horizon: Annotated[Optional[int], typer.Option(help="Steps per world per iteration (default: train.ppo.horizon_length).")] = None,
    minibatch: Annotated[Optional[int], typer.Option(help="Samples per gradient step (default: train.ppo.minibatch_size).")] = None,
    mode: Annotated[
        str, typer.Option(help="measured (search on this GPU), model (fit and project; any device) or auto (measured on CUDA).")
    ] = "auto",
    device: DeviceOption = "cpu",
    sizes: Annotated[
        Optional[list[int]],
        typer.Option("--size", metavar="N", help="World count of a model trial (repeatable, 3 or more; the largest checks the fit). "
                     "Default: 4, 8, 16 on cpu; 64, 128, 256 on cuda."),
    ] = None,
    seed: SeedOption = 0,
    json_path: JsonOption = None,
    csv_path: Annotated[Optional[Path], typer.Option("--csv", metavar="PATH", help="Also write the table's rows as CSV (atomically).")] = None,
    plot_path: Annotated[
        Optional[Path], typer.Option("--plot", metavar="PNG", help="Also plot memory against worlds per role, budget and maxima marked.")
    ] = None,
    overrides: TaskTrainSetOption = None,
) -> None:
    """The paper's Table I: how many worlds a node holds in the dp and disagg layouts, and which role limits it."""
    from dexgrasp_cli.bench.memory_model import LAYOUT_ROLES
    from dexgrasp_cli.byte_sizes import parse_bytes
    from dexgrasp_cli.learner.settings import MODALITIES

    with bad_input():
        budget = parse_bytes(gpu_memory, "--gpu-memory")
    check_at_least_one("--gpus", gpus)
    layouts = list(dict.fromkeys(layouts or ["dp", "disagg"]))
    for layout in layouts:
        if layout not in LAYOUT_ROLES:
            raise UsageError(f"unknown --layout {layout!r}; accepted: {', '.join(LAYOUT_ROLES)}")
    if "disagg" in layouts and gpus < 2:
        raise UsageError(f"--gpus {gpus} cannot hold --layout disagg: it needs a simulator GPU and a learner GPU (--gpus 2 or more)")
    if modality not in MODALITIES:
        raise UsageError(f"unknown --modality {modality!r}; accepted: {', '.join(MODALITIES)}")
    if modality == "state" and res:
        raise UsageError("--res applies to the depth teacher; the state teacher renders nothing")
    if depth_dtype is not None and depth_dtype not in DEPTH_DTYPES:
        raise UsageError(f"unknown --depth-dtype {depth_dtype!r}; accepted: {', '.join(DEPTH_DTYPES)}")
    if mode not in ("auto", "measured", "model"):
        raise UsageError(f"unknown --mode {mode!r}; accepted: auto, measured, model")
    if mode == "measured" and device == "cpu":
        import torch

        hint = "add --device cuda" if torch.cuda.is_available() else "this machine has no CUDA; use --mode model (projected)"
        raise UsageError(f"--mode measured measures GPU memory with NVML: {hint}")
    device = resolve_device(device)
    mode = ("measured" if device.startswith("cuda") else "model") if mode == "auto" else mode
    for name, value in (("--horizon", horizon), ("--minibatch", minibatch)):
        if value is not None:
            check_at_least_one(name, value)
    sizes = sorted(set(sizes)) if sizes else None
    if sizes is not None:
        for size in sizes:
            check_at_least_one("--size", size)
        if len(sizes) < 3:
            raise UsageError(f"--size needs 3 or more distinct world counts (two to fit, the largest to check), got {len(sizes)}")
    groups = split_settings_overrides(overrides)
    if depth_dtype is not None:
        groups["task"].append(f"task.cameras.depth_dtype={depth_dtype}")
    task = load_settings(groups["task"])
    resolutions = [with_resolution(task, r).cameras.resolution for r in (res or ("160x120", "320x240"))]
    train_sizes = [f"train.ppo.{key}={value}" for key, value in (("horizon_length", horizon), ("minibatch_size", minibatch))
                   if value is not None]  # fmt: skip
    train = load_train_settings([*groups["train"], *train_sizes], 1)
    for path, option in ((json_path, "--json"), (csv_path, "--csv"), (plot_path, "--plot")):
        check_output(path, option)

    from dexgrasp_cli.bench.memory_bench import (
        CPU_SIZES,
        CUDA_SIZES,
        MemoryBenchPlan,
        run_memory_bench,
    )
    from dexgrasp_cli.bench.memory_report import (
        breakdown_table,
        capacity_table,
        write_csv,
        write_plot,
    )

    plan = MemoryBenchPlan(
        tuple(resolutions) if modality == "depth" else (None,), tuple(layouts), gpus, budget, gpu_memory, modality,
        task.cameras.depth_dtype, train.ppo.horizon_length, train.ppo.minibatch_size, mode, device,
        tuple(sizes or (CUDA_SIZES if device.startswith("cuda") else CPU_SIZES)), seed, tuple(groups["task"]),
        tuple(groups["train"]),
    )  # fmt: skip
    console = Console()
    result = run_memory_bench(plan, Console(stderr=True))
    result["overrides"] = list(overrides or [])
    console.print(capacity_table(result))
    console.print(breakdown_table(result))
    if result["node"]["caveat"]:
        console.print(f"note: {result['node']['caveat']}")
    for path, write in ((json_path, write_json), (csv_path, write_csv), (plot_path, write_plot)):
        if path is not None:
            write(path, result)
            console.print(f"wrote {path}")
