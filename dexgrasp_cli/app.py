"""The ``dexgrasp`` command line: thin subcommands that validate input, build a config, call a runner.

Every bad input is caught before any heavy work (no scene build, no kernel compile) and reported
as one line ``error: <what was wrong; what is accepted>`` on stderr with exit code 2 (see
dexgrasp_cli/checks.py). Subcommands are registered only once they work.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from dexgrasp_cli.checks import (
    bad_input, check_at_least_one, check_distill_resume, check_folder, check_images_fit, check_layout, check_output, check_resume, checkpoint_settings,
    check_teacher, cli_errors, load_distill_settings, load_settings, load_train_settings, quiet_warp, resolve_adr_level, resolve_device,
    split_settings_overrides, user_objects, with_resolution, write_json,
)  # fmt: skip
from dexgrasp_cli.errors import UsageError
from dexgrasp_tasks.dextrah.settings import DEPTH_DTYPES

try:  # typer >= 0.2x vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer depends on click
    from click.exceptions import ClickException

POLICIES = ("scripted",)

app = typer.Typer(
    name="dexgrasp",
    help="Dexterous grasping with a Kuka arm and an Allegro hand on MuJoCo Warp.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# ---------------------------------------------------------------------------- options
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY=VALUE", help="Override a yaml/task.yaml value, e.g. task.episode_length=200 (repeatable)."),
]
TaskTrainSetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY=VALUE", help="Override yaml/task.yaml (task.*) or yaml/train.yaml (train.*); repeatable."),
]
DeviceOption = Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")]
SeedOption = Annotated[int, typer.Option(help="Seed of the worlds' random numbers.")]
JsonOption = Annotated[Optional[Path], typer.Option("--json", metavar="PATH", help="Also write the results to this JSON file (atomically).")]
ResOption = Annotated[Optional[str], typer.Option("--res", metavar="WxH", help="Camera resolution, e.g. 160x120 (default: task.cameras.resolution).")]


# ---------------------------------------------------------------------------- commands
@app.command("eval")
@cli_errors
def eval_command(
    policy: Annotated[str, typer.Option(help="Policy to evaluate without --checkpoint; accepted: scripted.")] = "scripted",
    checkpoint: Annotated[
        Optional[Path], typer.Option(metavar="PATH", help="Evaluate this train-teacher or distill checkpoint (deterministic: mean action).")
    ] = None,
    num_envs: Annotated[int, typer.Option(help="Simulated worlds stepped in parallel.")] = 16,
    episodes: Annotated[int, typer.Option(help="Finished episodes to measure (the first ones to finish).")] = 16,
    device: DeviceOption = "cpu",
    seed: SeedOption = 0,
    adr_level: Annotated[
        str, typer.Option(help="ADR level: 0 .. task.adr.num_levels, 'final', or 'checkpoint' (the checkpoint's level).")
    ] = "0",
    json_path: JsonOption = None,
    res: ResOption = None,
    save_frames: Annotated[
        Optional[Path],
        typer.Option(metavar="DIR", help="Render the cameras and write PNGs of the first 4 worlds here: depth, left, right, overview."),
    ] = None,
    frame_interval: Annotated[int, typer.Option(help="Policy steps between saved frames (with --save-frames).")] = 100,
    overrides: SetOption = None,
) -> None:
    """Evaluate a policy: success rate, lift height, time to success, returns per reward term."""
    if policy not in POLICIES:
        raise UsageError(f"unknown --policy {policy!r}; accepted: {', '.join(POLICIES)} (or --checkpoint PATH)")
    check_at_least_one("--num-envs", num_envs)
    check_at_least_one("--episodes", episodes)
    device = resolve_device(device)
    check_at_least_one("--frame-interval", frame_interval)
    state = None
    if checkpoint is not None:
        state, settings = checkpoint_settings(checkpoint, overrides, res)
    else:
        settings = with_resolution(load_settings(overrides), res)
    level = resolve_adr_level(adr_level, settings, state)
    from dexgrasp_cli.evaluate import eval_images, eval_table, run_eval

    images = eval_images(save_frames is not None, state)
    if images or res is not None:  # a --res alone is checked as the frames it would render
        check_images_fit(settings, images or ("depth", "rgb"), num_envs, device)
    objects = user_objects(settings)
    check_output(json_path)
    check_folder("--save-frames", save_frames)

    quiet_warp()
    result = run_eval(
        settings, num_envs, episodes, device, seed, level, objects=objects,
        frames_dir=save_frames, frame_interval=frame_interval, checkpoint=state,
    )  # fmt: skip
    result["overrides"] = list(overrides or [])
    result["checkpoint"] = str(checkpoint) if checkpoint is not None else None
    Console().print(eval_table(result))
    if save_frames is not None:
        Console().print(f"wrote {result['frames_saved']} frame sets to {save_frames}")
    if json_path is not None:
        write_json(json_path, result)
        Console().print(f"wrote {json_path}")


@app.command("train-teacher")
@cli_errors
def train_teacher_command(
    modality: Annotated[str, typer.Option(help="depth (the CNN teacher) or state (privileged object pose).")] = "depth",
    res: ResOption = None,
    num_envs: Annotated[int, typer.Option(help="Simulated worlds in all (the global batch, whatever the layout).")] = 16,
    device: DeviceOption = "cpu",
    seed: SeedOption = 0,
    max_iterations: Annotated[int, typer.Option(help="Stop after this many PPO iterations (counted across resumes).")] = 1000,
    run_dir: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="Run directory (default: runs/<modality>_<time>, or the resumed run's).")
    ] = None,
    resume: Annotated[Optional[Path], typer.Option(metavar="PATH", help="Continue from this checkpoint.")] = None,
    layout: Annotated[
        str, typer.Option(help="single (one process), disagg (K simulator replicas + 1 learner) or dp (K data-parallel ranks).")
    ] = "single",
    replicas: Annotated[
        Optional[int], typer.Option(metavar="K", help="Simulator replicas (disagg) or ranks (dp); default 1, or from torchrun's world size.")
    ] = None,
    learner_device: Annotated[
        Optional[str], typer.Option(metavar="DEVICE", help="disagg: the learner's device (default: its own, like every rank's).")
    ] = None,
    overrides: TaskTrainSetOption = None,
) -> None:
    """Train a PPO teacher with rl-games: depth CNN + LSTM, or state; asymmetric critic; ADR; in one of three layouts."""
    from dexgrasp_cli.layouts.topology import Topology, launched_by_torch_distributed
    from dexgrasp_cli.learner.agent import MODALITIES, MODALITY_IMAGES

    if modality not in MODALITIES:
        raise UsageError(f"unknown --modality {modality!r}; accepted: {', '.join(MODALITIES)}")
    check_at_least_one("--num-envs", num_envs)
    check_at_least_one("--max-iterations", max_iterations)
    worker = launched_by_torch_distributed()
    count = check_layout(layout, replicas, num_envs, int(os.environ["WORLD_SIZE"]) if worker else None)
    requested_device, device = device, resolve_device(device)
    if learner_device is not None:
        if layout != "disagg":
            raise UsageError(f"--learner-device applies to --layout disagg, not {layout}")
        learner_device = resolve_device(learner_device)
    groups = split_settings_overrides(overrides)
    task = with_resolution(load_settings(groups["task"]), res)
    per_process = num_envs // count  # the worlds each replica or rank simulates
    train = load_train_settings(groups["train"], per_process if layout == "dp" else num_envs)
    resume_state = None
    if resume is not None:
        resume_state = check_resume(resume, modality, task, train, num_envs)
        run_dir = run_dir or resume.resolve().parent.parent
    run_dir = run_dir or Path("runs") / f"{modality}_{time.strftime('%Y%m%d-%H%M%S')}"
    writes_run = not worker or Topology.from_environment(layout).writes_run
    if writes_run and resume is None and (run_dir / "metrics.jsonl").exists():  # never train over an earlier run
        raise UsageError(
            f"--run-dir {run_dir} already holds a run; continue it with --resume {run_dir / 'checkpoints' / 'last.pt'} "
            "or choose another --run-dir"
        )
    if MODALITY_IMAGES[modality]:
        check_images_fit(task, MODALITY_IMAGES[modality], per_process, device)
    check_folder("--run-dir", run_dir)

    from dexgrasp_cli.learner.trainer import TrainOptions

    # In a multi-process layout a bare ``cuda`` stays as asked: one GPU per local rank (see Topology.device).
    run_device = requested_device if layout != "single" and requested_device == "cuda" else device
    options = TrainOptions(modality, num_envs, run_device, seed, max_iterations, run_dir, resume, tuple(overrides or ()),
                           layout, count)  # fmt: skip
    if layout != "single" and not worker:
        from dexgrasp_cli.layouts.launcher import launch, worker_args

        raise typer.Exit(launch(layout, count, worker_args(options, res, learner_device)))
    quiet_warp()
    if layout == "single":
        from dexgrasp_cli.learner.trainer import train_teacher

        train_teacher(task, train, options, Console(), resume_state)
    else:
        from dexgrasp_cli.layouts.worker import run_worker

        run_worker(task, train, options, Console(), resume_state, learner_device)


@app.command("distill")
@cli_errors
def distill_command(
    teacher: Annotated[str, typer.Option(metavar="PATH|scripted", help="A train-teacher checkpoint (depth or state), or scripted (the scripted grasp).")],
    student: Annotated[str, typer.Option(help="stereo-rgb (DextrAH-RGB's student) or depth (DextrAH-G's shape, depth noise on).")] = "stereo-rgb",
    res: Annotated[str, typer.Option("--res", metavar="WxH", help="The student's image resolution (DextrAH-RGB's 320x240).")] = "320x240",
    num_envs: Annotated[int, typer.Option(help="Simulated worlds in all (whatever the layout).")] = 16,
    device: DeviceOption = "cpu",
    seed: SeedOption = 0,
    max_iterations: Annotated[int, typer.Option(help="Stop after this many iterations of distill.horizon steps (counted across resumes).")] = 1000,
    run_dir: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="Run directory (default: runs/distill_<student>_<time>, or the resumed run's).")
    ] = None,
    resume: Annotated[Optional[Path], typer.Option(metavar="PATH", help="Continue from this student checkpoint.")] = None,
    layout: Annotated[str, typer.Option(help="single (one process) or disagg (K simulator replicas + 1 learner).")] = "single",
    replicas: Annotated[Optional[int], typer.Option(metavar="K", help="Simulator replicas (disagg); default 1, or from torchrun's world size.")] = None,
    adr_level: Annotated[str, typer.Option(help="ADR level of the whole run: 0 .. task.adr.num_levels or final.")] = "final",
    overrides: Annotated[
        Optional[list[str]],
        typer.Option("--set", metavar="KEY=VALUE", help="Override yaml/task.yaml (task.*) or yaml/distill.yaml (distill.*); repeatable."),
    ] = None,
) -> None:
    """Distill a teacher into a student with DAgger: the student drives, the teacher labels every step."""
    from dexgrasp_cli.layouts.topology import Topology, launched_by_torch_distributed

    if student not in ("stereo-rgb", "depth"):
        raise UsageError(f"unknown --student {student!r}; accepted: stereo-rgb, depth")
    check_at_least_one("--num-envs", num_envs)
    check_at_least_one("--max-iterations", max_iterations)
    if layout == "dp":
        raise UsageError("distill runs in --layout single or disagg; dp is for train-teacher")
    worker = launched_by_torch_distributed()
    count = check_layout(layout, replicas, num_envs, int(os.environ["WORLD_SIZE"]) if worker else None)
    requested_device, device = device, resolve_device(device)
    groups = split_settings_overrides(overrides, ("task", "distill"))
    settings = load_distill_settings(groups["distill"])
    task = with_resolution(load_settings(groups["task"]), res)
    task = dataclasses.replace(task, success_hold_s=settings.success_hold_s)
    if student == "depth":  # the student sees depth as a real camera gives it
        task = dataclasses.replace(task, cameras=dataclasses.replace(task.cameras, noise=dataclasses.replace(task.cameras.noise, enabled=True)))
    teacher_state = check_teacher(teacher, task, student)
    level = resolve_adr_level(adr_level, task, None)
    from dexgrasp_cli.distill.runner import DistillOptions, run_images

    run_dir = run_dir or (resume.resolve().parent.parent if resume is not None else None)
    run_dir = run_dir or Path("runs") / f"distill_{student}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_device = requested_device if layout != "single" and requested_device == "cuda" else device
    options = DistillOptions(teacher, student, num_envs, run_device, seed, max_iterations, run_dir, resume, level,
                             tuple(overrides or ()), layout, count)  # fmt: skip
    resume_state = None
    if resume is not None:
        resume_state = check_distill_resume(resume, options, settings, teacher_state, task.cameras.resolution)
    writes_run = not worker or Topology.from_environment(layout).writes_run
    if writes_run and resume is None and (run_dir / "metrics.jsonl").exists():
        raise UsageError(
            f"--run-dir {run_dir} already holds a run; continue it with --resume {run_dir / 'checkpoints' / 'last.pt'} "
            "or choose another --run-dir"
        )
    images = run_images(student, teacher_state)
    check_images_fit(task, tuple(kind for kind in images if kind != "depth" or student == "depth"), num_envs // count, device)
    if teacher_state is not None and "depth" in images and student != "depth":
        check_images_fit(task.with_camera_resolution(teacher_state["dexgrasp"]["resolution"]), ("depth",), num_envs // count, device)
    check_folder("--run-dir", run_dir)

    if layout != "single" and not worker:
        from dexgrasp_cli.layouts.launcher import launch

        raise typer.Exit(launch(layout, count, options.command_line(res)))
    quiet_warp()
    from dexgrasp_cli.distill.runner import distill, run_distill_process

    if layout == "single":
        distill(task, settings, options, Console(), teacher_state, resume_state)
    else:
        run_distill_process(task, settings, options, Console(), teacher_state, resume_state)


@app.command("bench")
@cli_errors
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
    device: DeviceOption = "cpu",
    seed: SeedOption = 0,
    json_path: JsonOption = None,
    overrides: SetOption = None,
) -> None:
    """Env throughput (env-steps/s) and camera figures, stepping random actions; only GPU figures are absolute."""
    from dexgrasp_cli.bench.throughput import DEFAULT_RESOLUTIONS, IMAGE_MODES, bench_cases, default_world_counts

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
    resolutions = [with_resolution(settings, r).cameras.resolution for r in (res or DEFAULT_RESOLUTIONS)]
    cases = bench_cases(counts, modes, resolutions)
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


@app.command("bench-train")
@cli_errors
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
    from dexgrasp_cli.learner.agent import MODALITIES

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
    trains = [load_train_settings(groups["train"], num_envs // replicas if layout == "dp" else num_envs) for layout in layouts]
    resolutions = [with_resolution(task, r).cameras.resolution for r in (res or ("32x24", "160x120"))]
    if "depth" in modalities:
        for resolution in resolutions:  # every layout renders all the worlds on this machine
            check_images_fit(task.with_camera_resolution(resolution), ("depth",), num_envs, device)
    check_output(json_path)

    from dexgrasp_cli.bench.training import run_training_bench, training_cases, training_table

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


@app.command("bench-memory")
@cli_errors
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
    from dexgrasp_cli.learner.agent import MODALITIES

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

    from dexgrasp_cli.bench.memory_bench import CPU_SIZES, CUDA_SIZES, MemoryBenchPlan, run_memory_bench
    from dexgrasp_cli.bench.memory_report import breakdown_table, capacity_table, write_csv, write_plot

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


# ---------------------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> None:
    """Console-script entry: run the app; parse errors are one ``error:`` line with exit code 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="dexgrasp", standalone_mode=False)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    except ClickException as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # bare ``dexgrasp``: show the help
            err.show()
            sys.exit(0)
        _fail_line = " ".join(err.format_message().split())
        print(f"error: {_fail_line}", file=sys.stderr)
        sys.exit(err.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
