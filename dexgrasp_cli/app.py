"""The ``dexgrasp`` command line: thin subcommands that validate input, build a config, call a runner.

Every bad input is caught before any heavy work (no scene build, no kernel compile) and reported
as one line ``error: <what was wrong; what is accepted>`` on stderr with exit code 2.
Subcommands are registered only once they work.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional

import typer
from rich.console import Console

from assets.objects import ObjectSetError, ObjectShape, add_mesh, mesh_folder_objects
from dexgrasp_cli.config import (
    TASK_YAML, TRAIN_YAML, ConfigError, checked_task_settings, load_section, load_task_settings, section_from_tree,
    split_overrides,
)  # fmt: skip
from dexgrasp_cli.errors import UsageError
from tasks.dextrah.settings import TaskSettings, parse_resolution

try:  # typer >= 0.2x vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older typer depends on click
    from click.exceptions import ClickException

POLICIES = ("scripted",)
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")

app = typer.Typer(
    name="dexgrasp",
    help="Dexterous grasping with a Kuka arm and an Allegro hand on MuJoCo Warp.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# ---------------------------------------------------------------------------- errors
def _fail(message: str, code: int = 2) -> None:
    line = " ".join(str(message).split())  # one line, whatever the source produced
    print(f"error: {line}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def cli_errors(command: Callable) -> Callable:
    """Report user errors as one ``error:`` line with exit code 2 instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (UsageError, ConfigError, ObjectSetError) as err:
            _fail(str(err))

    return wrapper


@contextmanager
def bad_input() -> Iterator[None]:
    """Treat ValueErrors (parsing, config, objects) raised inside as usage errors."""
    try:
        yield
    except ValueError as err:
        raise UsageError(str(err)) from None


# ---------------------------------------------------------------------------- validation
def check_at_least_one(option: str, value: int) -> None:
    if value < 1:
        raise UsageError(f"{option} must be an integer >= 1, got {value}")


def resolve_device(device: str) -> str:
    """``cpu``, or ``cuda``/``cuda:N`` when that GPU exists; ``cuda`` means the current GPU."""
    if not DEVICE_PATTERN.fullmatch(device):
        raise UsageError(f"unknown device {device!r}; accepted: cpu, cuda, cuda:N")
    if device == "cpu":
        return device
    import torch

    if not torch.cuda.is_available():
        raise UsageError(f"device {device!r} requested but CUDA is not available here; available: cpu")
    count = torch.cuda.device_count()
    index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
    if index >= count:
        raise UsageError(
            f"device {device!r} does not exist; available: cpu, "
            + ", ".join(f"cuda:{i}" for i in range(count))
        )
    return f"cuda:{index}"


def load_settings(overrides: list[str] | None) -> TaskSettings:
    with bad_input():
        return load_task_settings(overrides or (), TASK_YAML)


def with_resolution(settings: TaskSettings, res: str | None) -> TaskSettings:
    """The settings with ``--res WxH`` (when given) as every camera's resolution."""
    if res is None:
        return settings
    with bad_input():
        width, height = parse_resolution(res, "--res")
    return settings.with_camera_resolution(f"{width}x{height}")


def check_images_fit(settings: TaskSettings, kinds: tuple[str, ...], num_envs: int, device: str) -> None:
    """Refuse images that would not fit in memory before anything is allocated."""
    import torch

    from tasks.dextrah.images import check_image_memory

    with bad_input():
        check_image_memory(settings.cameras, kinds, num_envs, torch.device(device))


def check_folder(option: str, path: Path | None) -> None:
    """Create an output folder now, so a bad path fails before any work."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option} {path} is a file; accepted: a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{option} {path}: cannot create it ({err.strerror})") from None


def resolve_adr_level(text: str, settings: TaskSettings, checkpoint: dict | None) -> int:
    """``--adr-level``: a level in [0, num_levels], ``final``, or ``checkpoint`` (needs --checkpoint)."""
    n = settings.adr.num_levels
    if text == "final":
        return n
    if text == "checkpoint":
        if checkpoint is None:
            raise UsageError("--adr-level checkpoint needs --checkpoint PATH")
        return int(checkpoint["dexgrasp"]["adr"]["level"])
    if not re.fullmatch(r"-?\d+", text) or not 0 <= int(text) <= n:
        raise UsageError(f"--adr-level must be in [0, {n}] (task.adr.num_levels), final or checkpoint; got {text!r}")
    return int(text)


def split_settings_overrides(overrides: list[str] | None) -> dict[str, list[str]]:
    with bad_input():
        return split_overrides(overrides or (), ("task", "train"))


def load_train_settings(overrides: list[str]):
    from dexgrasp_cli.learner.settings import TrainSettings

    with bad_input():
        return load_section(TrainSettings, "train", TRAIN_YAML, overrides)


def read_checkpoint(path: Path) -> dict:
    from dexgrasp_cli.learner.checkpoint import load_checkpoint

    with bad_input():
        return load_checkpoint(path)


def checkpoint_settings(path: Path, overrides: list[str] | None, res: str | None) -> tuple[dict, TaskSettings]:
    """A checkpoint and the task settings it was trained with, plus ``--set task.*`` overrides."""
    state = read_checkpoint(path)
    with bad_input():
        settings = checked_task_settings(section_from_tree(TaskSettings, "task", {"task": state["dexgrasp"]["config"]["task"]}, overrides or ()))
    trained = state["dexgrasp"]["resolution"]
    if res is not None and with_resolution(settings, res).cameras.resolution != trained:
        raise UsageError(f"--res {res} differs from the checkpoint's {trained}; a teacher runs at the resolution it was trained at")
    return state, settings


def check_resume(path: Path, modality: str, task: TaskSettings) -> None:
    """The checkpoint must be of the same modality (and, for depth, resolution) as the run."""
    meta = read_checkpoint(path)["dexgrasp"]
    if meta["modality"] != modality:
        raise UsageError(f"--resume {path} is a {meta['modality']} teacher; this run is --modality {modality}")
    if modality == "depth" and meta["resolution"] != task.cameras.resolution:
        raise UsageError(
            f"--resume {path} was trained at {meta['resolution']}; this run is at {task.cameras.resolution} (use --res {meta['resolution']})"
        )


def user_objects(settings: TaskSettings) -> list[ObjectShape] | None:
    """The user's meshes when task.objects.mesh_folder is set (checked now), else None."""
    objects = settings.objects
    if objects.mesh_folder is None:
        return None
    with bad_input():
        shapes = mesh_folder_objects(objects.mesh_folder, objects.mesh_scale)
    for shape in shapes:
        check_mesh_compiles(shape)
    return shapes


def check_mesh_compiles(shape: ObjectShape) -> None:
    """Compile the mesh alone in MuJoCo (milliseconds), so a broken file is named up front."""
    import mujoco

    spec = mujoco.MjSpec()
    spec.worldbody.add_body().add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=add_mesh(spec, shape))
    try:
        spec.compile()
    except ValueError as err:
        reason = str(err).strip().splitlines()[0].removeprefix("Error: ") if str(err).strip() else "unknown"
        raise UsageError(
            f"mesh {shape.file} cannot be loaded by MuJoCo ({reason}); accepted: .obj or binary .stl meshes "
            "with a non-degenerate convex hull at task.objects.mesh_scale"
        ) from None


def check_output(path: Path | None) -> None:
    """Make sure the JSON file can be written later: parent folder created, path not a folder."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"--json {path} is a directory; accepted: a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--json {path}: cannot create its folder ({err.strerror})") from None


def write_json(path: Path, data: dict) -> None:
    """Atomic write: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _quiet_warp() -> None:
    """Hide warp's per-module load lines; warnings and errors still show."""
    import warp as wp

    wp.config.log_level = wp.LOG_WARNING


# ---------------------------------------------------------------------------- options
SetOption = Annotated[
    Optional[list[str]],
    typer.Option("--set", metavar="KEY=VALUE", help="Override a yaml/task.yaml value, e.g. task.episode_length=200 (repeatable)."),
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
        Optional[Path], typer.Option(metavar="PATH", help="Evaluate this train-teacher checkpoint (deterministic: mean action).")
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
    images = ("depth", "rgb") if save_frames is not None else ()
    if state is not None and state["dexgrasp"]["modality"] == "depth":
        images = images or ("depth",)
    if images or res is not None:
        check_images_fit(settings, images or ("depth", "rgb"), num_envs, device)
    objects = user_objects(settings)
    check_output(json_path)
    check_folder("--save-frames", save_frames)

    from dexgrasp_cli.evaluate import eval_table, run_eval

    _quiet_warp()
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
    num_envs: Annotated[int, typer.Option(help="Simulated worlds stepped in parallel.")] = 16,
    device: DeviceOption = "cpu",
    seed: SeedOption = 0,
    max_iterations: Annotated[int, typer.Option(help="Stop after this many PPO iterations (counted across resumes).")] = 1000,
    run_dir: Annotated[
        Optional[Path], typer.Option(metavar="DIR", help="Run directory (default: runs/<modality>_<time>, or the resumed run's).")
    ] = None,
    resume: Annotated[Optional[Path], typer.Option(metavar="PATH", help="Continue from this checkpoint.")] = None,
    overrides: Annotated[
        Optional[list[str]],
        typer.Option("--set", metavar="KEY=VALUE", help="Override yaml/task.yaml (task.*) or yaml/train.yaml (train.*); repeatable."),
    ] = None,
) -> None:
    """Train a PPO teacher with rl-games: depth CNN + LSTM, or state; asymmetric critic; ADR."""
    from dexgrasp_cli.learner.agent import MODALITIES

    if modality not in MODALITIES:
        raise UsageError(f"unknown --modality {modality!r}; accepted: {', '.join(MODALITIES)}")
    check_at_least_one("--num-envs", num_envs)
    check_at_least_one("--max-iterations", max_iterations)
    device = resolve_device(device)
    groups = split_settings_overrides(overrides)
    task = with_resolution(load_settings(groups["task"]), res)
    train = load_train_settings(groups["train"])
    if resume is not None:
        check_resume(resume, modality, task)
        run_dir = run_dir or resume.resolve().parent.parent
    run_dir = run_dir or Path("runs") / f"{modality}_{time.strftime('%Y%m%d-%H%M%S')}"
    if modality == "depth":
        check_images_fit(task, ("depth",), num_envs, device)
    check_folder("--run-dir", run_dir)

    from dexgrasp_cli.learner.trainer import TrainOptions, train_teacher

    _quiet_warp()
    options = TrainOptions(modality, num_envs, device, seed, max_iterations, run_dir, resume, tuple(overrides or ()))
    train_teacher(task, train, options, Console())


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

    _quiet_warp()
    result = run_throughput(settings, cases, steps, device, seed, objects=objects)
    result["overrides"] = list(overrides or [])
    console = Console()
    console.print(throughput_table(result))
    console.print("note: absolute figures are only meaningful on a GPU; CPU numbers depend on the machine.")
    if json_path is not None:
        write_json(json_path, result)
        console.print(f"wrote {json_path}")


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
