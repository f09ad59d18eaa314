"""`dexgrasp train-teacher`: a PPO teacher (depth or state) in the single, disagg or dp layout."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from dexgrasp_cli.checks import (
    check_at_least_one,
    check_backend,
    check_folder,
    check_images_fit,
    check_layout,
    check_new_run_dir,
    check_resume,
    load_settings,
    load_train_settings,
    quiet_warp,
    resolve_device,
    split_settings_overrides,
    with_resolution,
)
from dexgrasp_cli.commands.options import (
    DeviceOption,
    ResOption,
    SeedOption,
    TaskTrainSetOption,
)
from dexgrasp_cli.errors import UsageError


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
    from dexgrasp_cli.learner.settings import MODALITIES, MODALITY_IMAGES

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
    check_backend(task.sim.backend, device)
    per_process = num_envs // count  # the worlds each replica or rank simulates
    train = load_train_settings(groups["train"], per_process if layout == "dp" else num_envs)
    resume_state = None
    if resume is not None:
        resume_state = check_resume(resume, modality, task, train, num_envs)
        run_dir = run_dir or resume.resolve().parent.parent
    run_dir = run_dir or Path("runs") / f"{modality}_{time.strftime('%Y%m%d-%H%M%S')}"
    writes_run = not worker or Topology.from_environment(layout).writes_run
    if writes_run and resume is None:
        check_new_run_dir(run_dir)
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
