"""`dexgrasp distill`: DAgger from a depth, state or scripted teacher into a stereo-RGB or depth student."""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from dexgrasp_cli.checks import (
    check_at_least_one,
    check_backend,
    check_distill_resume,
    check_folder,
    check_images_fit,
    check_layout,
    check_new_run_dir,
    check_teacher,
    load_distill_settings,
    load_settings,
    quiet_warp,
    resolve_adr_level,
    resolve_device,
    split_settings_overrides,
    with_resolution,
)
from dexgrasp_cli.commands.options import DeviceOption, SeedOption
from dexgrasp_cli.errors import UsageError


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
    check_backend(task.sim.backend, device)
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
    if writes_run and resume is None:
        check_new_run_dir(run_dir)
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
