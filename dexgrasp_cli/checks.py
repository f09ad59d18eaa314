"""Input checks shared by the subcommands: each turns bad input into one ``UsageError`` line before
any heavy work (no scene build, no kernel compile), and writes outputs atomically."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import typer

from dexgrasp_assets.errors import ObjectSetError
from dexgrasp_cli.atomic import write_text_atomic
from dexgrasp_cli.config import (
    DISTILL_YAML, TASK_YAML, TRAIN_YAML, ConfigError, load_section, load_task_settings, section_from_tree,
    split_overrides,
)  # fmt: skip
from dexgrasp_cli.errors import ReportedError, UsageError
from dexgrasp_tasks.dextrah.settings import TaskSettings, parse_resolution
from dexgrasp_tasks.sim.settings import BACKENDS

if TYPE_CHECKING:  # importing these loads rl-games or numpy, which a bad-input error should not wait for
    from dexgrasp_assets.objects import ObjectShape
    from dexgrasp_cli.learner.settings import TrainSettings

DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")
VERBOSE_ENV = "DEXGRASP_VERBOSE"  # set by --verbose; inherited by a layout's worker processes


# ---------------------------------------------------------------------------- errors
def _fail(message: str, code: int = 2) -> None:
    line = " ".join(str(message).split())  # one line, whatever the source produced
    print(f"error: {line}", file=sys.stderr, flush=True)
    raise typer.Exit(code)


def cli_errors(command: Callable) -> Callable:
    """Report user errors (exit code 2) and other reported errors (errors.py) as one ``error:`` line
    instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (ConfigError, ObjectSetError) as err:
            _fail(str(err))
        except ReportedError as err:
            _fail(str(err), err.exit_code)

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


def check_backend(backend: str, device: str, option: str = "task.sim.backend") -> None:
    """A physics backend (task.sim.backend value) that runs on ``device``."""
    if backend not in BACKENDS:
        raise UsageError(f"unknown {option} {backend!r}; accepted: {', '.join(BACKENDS)}")
    if backend == "mujoco" and device != "cpu":
        raise UsageError(f"{option} mujoco runs on the cpu, not {device}; use mjwarp or auto there")


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

    from dexgrasp_tasks.dextrah.images import check_image_memory

    with bad_input():
        check_image_memory(settings.cameras, kinds, num_envs, torch.device(device))


def check_new_run_dir(run_dir: Path) -> None:
    """Never train over an earlier run: a folder with metrics is continued with --resume instead."""
    if (run_dir / "metrics.jsonl").exists():
        raise UsageError(
            f"--run-dir {run_dir} already holds a run; continue it with --resume {run_dir / 'checkpoints' / 'last.pt'} "
            "or choose another --run-dir"
        )


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


def split_settings_overrides(overrides: list[str] | None, roots: tuple[str, ...] = ("task", "train")) -> dict[str, list[str]]:
    with bad_input():
        return split_overrides(overrides or (), roots)


def load_train_settings(overrides: list[str], num_envs: int):
    """The train settings, checked for a run on ``num_envs`` worlds."""
    from dexgrasp_cli.learner.settings import TrainSettings

    with bad_input():
        train = load_section(TrainSettings, "train", TRAIN_YAML, overrides)
        train.ppo.minibatch_for(num_envs)
    return train


def read_checkpoint(path: Path, role: str | None = None) -> dict:
    """A checkpoint (of ``role``, ``teacher`` or ``student``, when given)."""
    if not path.is_file():  # answered before torch is imported
        raise UsageError(f"checkpoint {path} does not exist")
    from dexgrasp_cli.learner.checkpoint import load_checkpoint

    with bad_input():
        return load_checkpoint(path, role=role)


def checkpoint_settings(path: Path, overrides: list[str] | None, res: str | None) -> tuple[dict, TaskSettings]:
    """A checkpoint and the task settings it was trained with, plus ``--set task.*`` overrides."""
    state = read_checkpoint(path)
    with bad_input():
        settings = section_from_tree(TaskSettings, "task", {"task": state["dexgrasp"]["config"]["task"]}, overrides or ())
    trained = state["dexgrasp"]["resolution"]
    if res is not None and with_resolution(settings, res).cameras.resolution != trained:
        raise UsageError(f"--res {res} differs from the checkpoint's {trained}; a policy runs at the resolution it was trained at")
    return state, settings


def check_resume(path: Path, modality: str, task: TaskSettings, train: TrainSettings, num_envs: int) -> dict:
    """The checkpoint, read once, which must be of the same modality (and, for depth, resolution),
    action space, networks and global batch as the run (any layout continues any other)."""
    state = read_checkpoint(path, "teacher")
    meta = state["dexgrasp"]
    if meta["modality"] != modality:
        raise UsageError(f"--resume {path} is a {meta['modality']} teacher; this run is --modality {modality}")
    trained_space = meta["config"]["task"]["actions"]["space"]
    if trained_space != task.actions.space:
        raise UsageError(
            f"--resume {path} acts in the {trained_space} action space; this run uses {task.actions.space} "
            f"(--set task.actions.space={trained_space})"
        )
    if modality == "depth" and meta["resolution"] != task.cameras.resolution:
        raise UsageError(
            f"--resume {path} was trained at {meta['resolution']}; this run is at {task.cameras.resolution} (use --res {meta['resolution']})"
        )
    saved, now = meta["config"]["train"]["networks"], dataclasses.asdict(train.networks)
    changed = [name for name in now if saved.get(name) != now[name]]
    if changed:
        raise UsageError(
            f"--resume {path} has other train.networks.{changed[0]} sizes than this run ({saved.get(changed[0])}); "
            "resume with the --set values it was trained with"
        )
    saved_run = meta["config"]["run"]
    if saved_run["num_envs"] != num_envs:
        raise UsageError(
            f"--resume {path} trained {saved_run['num_envs']} worlds in all ({saved_run.get('layout', 'single')} layout); "
            f"this run has --num-envs {num_envs}: a run continues with its own global batch"
        )
    return state


def load_distill_settings(overrides: list[str]):
    """The distill settings from yaml/distill.yaml with ``distill.*`` overrides; a backbone file must exist."""
    from dexgrasp_cli.distill.settings import DistillSettings

    with bad_input():
        settings = load_section(DistillSettings, "distill", DISTILL_YAML, overrides)
    if settings.backbone_weights is not None and not Path(settings.backbone_weights).is_file():
        raise UsageError(f"distill.backbone_weights {settings.backbone_weights} does not exist; accepted: a state dict file")
    return settings


def check_teacher(teacher: str, task: TaskSettings, student: str) -> dict | None:
    """``--teacher``: ``scripted`` (None) or a train-teacher checkpoint that acts in this task's action space."""
    if teacher == "scripted":
        return None
    state = read_checkpoint(Path(teacher), "teacher")
    meta = state["dexgrasp"]
    space = meta["config"]["task"]["actions"]["space"]
    if space != task.actions.space:
        raise UsageError(
            f"--teacher {teacher} acts in the {space} action space; this run uses {task.actions.space} "
            f"(--set task.actions.space={space})"
        )
    if student == "depth" and meta["modality"] == "depth":
        raise UsageError(f"--teacher {teacher} is a depth teacher; a depth student learns from a state or scripted teacher")
    return state


def check_distill_resume(path: Path, options, settings, teacher: dict | None, resolution: str) -> dict:
    """A student checkpoint of the same student, teacher, sizes, resolution and worlds as the run."""
    from dexgrasp_cli.distill.teachers import teacher_identity

    state = read_checkpoint(path, "student")
    meta = state["dexgrasp"]
    saved_run = meta["config"]["run"]
    now = teacher_identity(options.teacher, teacher)
    mismatches = [
        ("student", meta["student"], options.student),
        ("teacher", meta["teacher"].get("sha256", meta["teacher"]["kind"]), now.get("sha256", now["kind"])),
        ("--res", meta["resolution"], resolution),
        ("--num-envs", saved_run["num_envs"], options.num_envs),
        (f"distill.{'stereo' if options.student == 'stereo-rgb' else 'depth'} sizes", meta["sizes"],
         dataclasses.asdict(settings.student_sizes(options.student))),
    ]  # fmt: skip
    for name, saved, wanted in mismatches:
        if json.loads(json.dumps(saved)) != json.loads(json.dumps(wanted)):
            raise UsageError(f"--resume {path} has another {name} than this run ({saved} vs {wanted}); "
                             "resume with the options it was started with")  # fmt: skip
    return state


def check_layout(layout: str, replicas: int | None, num_envs: int, world_size: int | None) -> int:
    """K, the simulator replicas (disagg) or ranks (dp) of the run; ``world_size`` is torchrun's when
    this process is one of its ranks (None when dexgrasp is to start the processes itself)."""
    from dexgrasp_cli.layouts.topology import LAYOUTS, replicas_for

    if layout not in LAYOUTS:
        raise UsageError(f"unknown --layout {layout!r}; accepted: {', '.join(LAYOUTS)}")
    if replicas is not None:
        check_at_least_one("--replicas", replicas)
    if layout == "single":
        if replicas not in (None, 1):
            raise UsageError(f"--layout single runs one process; --replicas {replicas} needs --layout disagg or dp")
        if world_size not in (None, 1):
            raise UsageError(f"--layout single runs one process; this launch has {world_size} (use --layout disagg or dp)")
        return 1
    if world_size is None:
        count = replicas or 1
    else:
        count = replicas_for(layout, world_size)
        if count < 1:
            raise UsageError(
                f"--layout {layout} needs at least 2 processes (1 replica + the learner); this launch has {world_size}"
            )
        if replicas is not None and replicas != count:
            raise UsageError(
                f"--replicas {replicas} does not match this launch: {world_size} processes make {count} for --layout {layout}"
            )
    if num_envs % count:
        kind = "replicas" if layout == "disagg" else "ranks"
        raise UsageError(f"--num-envs {num_envs} must be a multiple of the {count} {kind} (each simulates --num-envs / K worlds)")
    return count


def user_objects(settings: TaskSettings) -> list[ObjectShape] | None:
    """The user's meshes when task.objects.mesh_folder is set (checked now), else None."""
    objects = settings.objects
    if objects.mesh_folder is None:
        return None
    from dexgrasp_assets.objects import mesh_folder_objects

    with bad_input():
        shapes = mesh_folder_objects(objects.mesh_folder, objects.mesh_scale)
    for shape in shapes:
        check_mesh_compiles(shape)
    return shapes


def check_mesh_compiles(shape: ObjectShape) -> None:
    """Compile the mesh alone in MuJoCo (milliseconds), so a broken file is named up front."""
    import mujoco

    from dexgrasp_assets.objects import add_mesh

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


def check_output(path: Path | None, option: str = "--json") -> None:
    """Make sure an output file can be written later: parent folder created, path not a folder."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{option} {path} is a directory; accepted: a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"{option} {path}: cannot create its folder ({err.strerror})") from None


def write_json(path: Path, data: dict) -> None:
    """Atomic write of ``data`` as indented JSON; NaN and infinity are refused, leaving no file."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def quiet_warp() -> None:
    """Initialise warp without start-up chatter unless --verbose: its per-module load lines, and the
    CUDA driver probe's warning that every machine without a GPU prints (from native code, so it is
    silenced at the file descriptor). Warnings and errors after start-up still show."""
    import warp as wp

    if os.environ.get(VERBOSE_ENV):
        wp.init()
        return
    wp.config.log_level = wp.LOG_WARNING
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            wp.init()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
