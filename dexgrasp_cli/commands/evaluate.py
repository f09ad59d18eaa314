"""`dexgrasp eval`: success rate, lift height and returns of a scripted or checkpointed policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from dexgrasp_cli.checks import (
    check_at_least_one,
    check_backend,
    check_folder,
    check_images_fit,
    check_output,
    checkpoint_settings,
    load_settings,
    quiet_warp,
    resolve_adr_level,
    resolve_device,
    user_objects,
    with_resolution,
    write_json,
)
from dexgrasp_cli.commands.options import (
    DeviceOption,
    JsonOption,
    ResOption,
    SeedOption,
    SetOption,
)
from dexgrasp_cli.errors import UsageError

POLICIES = ("scripted",)


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
    check_backend(settings.sim.backend, device)
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
