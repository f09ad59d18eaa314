"""distill: DAgger (dagger.py) from a teacher into a student, one iteration at a time, with a run
directory like train-teacher's.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one line per
iteration), ``summaries/`` (TensorBoard events: imitation loss, aux error in cm, student success,
env-steps/s, ADR level) and ``checkpoints/`` (``best.pt``, ``last.pt`` and the newest periodic
``iter_NNNNNN.pt``). A student checkpoint records its teacher (kind, file, SHA-256), the student's
sizes and what it sees, so ``dexgrasp eval --checkpoint`` rebuilds it, and everything a resume needs:
the optimizer, the iteration, the RNG states and the worlds' episode counters.

The worlds are seen through a ``TrainingVecEnv``: in this process, or simulator replicas elsewhere
(the disaggregated layout), exactly as train-teacher sees them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from rich.console import Console

from dexgrasp_cli.atomic import write_text_atomic
from dexgrasp_cli.distill.dagger import AUX_TARGET, Dagger
from dexgrasp_cli.distill.settings import DistillSettings
from dexgrasp_cli.distill.student_networks import build_student, load_backbone_weights
from dexgrasp_cli.distill.student_sizes import STUDENT_IMAGES
from dexgrasp_cli.distill.teachers import ScriptedLabels, build_teacher, teacher_identity, teacher_images, teacher_keys
from dexgrasp_cli.learner.checkpoint import DEXGRASP_KEY, STUDENT, STUDENT_FORMAT_VERSION, rng_state, save_checkpoint, set_rng_state
from dexgrasp_cli.learner.display import TrainingDisplay
from dexgrasp_cli.learner.stop_request import StopRequest
from dexgrasp_cli.learner.trainer import keep_newest
from dexgrasp_cli.run_files import CHECKPOINTS, CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE
from dexgrasp_cli.learner.vecenv import TrainingVecEnv
from dexgrasp_tasks.dextrah.settings import TaskSettings


@dataclass(frozen=True)
class DistillOptions:
    """The run: what the CLI options say beyond the yaml settings."""

    teacher: str
    """A train-teacher checkpoint's path, or ``scripted``."""
    student: str
    """stereo-rgb or depth."""
    num_envs: int
    device: str
    seed: int
    max_iterations: int
    run_dir: Path
    resume: Path | None
    adr_level: int
    """Fixed for the whole run (DextrAH distils at the final level)."""
    overrides: tuple[str, ...]
    layout: str = "single"
    replicas: int = 1

    def command_line(self, res: str) -> list[str]:
        """The ``distill`` arguments each process of a launch runs: the run as resolved here (run
        directory and ADR level included, so all processes agree on them)."""
        args = ["distill", "--teacher", self.teacher, "--student", self.student, "--res", res,
                "--num-envs", str(self.num_envs), "--device", self.device, "--seed", str(self.seed),
                "--max-iterations", str(self.max_iterations), "--run-dir", str(self.run_dir), "--layout", self.layout,
                "--replicas", str(self.replicas), "--adr-level", str(self.adr_level)]  # fmt: skip
        if self.resume is not None:
            args += ["--resume", str(self.resume)]
        for assignment in self.overrides:
            args += ["--set", assignment]
        return args


def run_images(student: str, teacher_checkpoint: dict | None) -> tuple[str, ...]:
    """What the worlds render: the student's images and the teacher's, nothing more."""
    return tuple(dict.fromkeys((STUDENT_IMAGES[student], *teacher_images(teacher_checkpoint))))


def run_observations(student: str, teacher_checkpoint: dict | None) -> tuple[str, ...]:
    """The observations the learner needs: the student's, the teacher's and the aux target."""
    return tuple(dict.fromkeys((STUDENT_IMAGES[student], "proprio", *teacher_keys(teacher_checkpoint), AUX_TARGET)))


def local_distill_vecenv(task: TaskSettings, options: DistillOptions, teacher_checkpoint: dict | None,
                         env_offset: int = 0, num_envs: int | None = None):  # fmt: skip
    """``num_envs`` worlds (default: all) from global world ``env_offset`` on, in this process, rendering
    what the run needs; a depth teacher's depth at its own resolution."""
    from dexgrasp_cli.learner.vecenv import LocalVecEnv
    from dexgrasp_tasks.dextrah.env import DextrahEnv

    depth_resolution = teacher_checkpoint["dexgrasp"]["resolution"] if teacher_images(teacher_checkpoint) else None
    count = options.num_envs if num_envs is None else num_envs
    env = DextrahEnv(task, count, device=options.device, seed=options.seed, env_offset=env_offset,
                     images=run_images(options.student, teacher_checkpoint), depth_resolution=depth_resolution)  # fmt: skip
    labels = ScriptedLabels(env) if teacher_checkpoint is None else None
    return LocalVecEnv(env, run_observations(options.student, teacher_checkpoint), options.device, labels)


def resolved_config(task: TaskSettings, settings: DistillSettings, options: DistillOptions) -> dict:
    run = {key: str(value) if isinstance(value, Path) else value for key, value in dataclasses.asdict(options).items()}
    run["overrides"] = list(options.overrides)
    return {"run": run, "task": dataclasses.asdict(task), "distill": dataclasses.asdict(settings)}


def build_run_student(kind: str, settings: DistillSettings, env_info: dict, device: torch.device | str):
    """The student for the observations ``env_info`` describes, with the user's backbone weights if any."""
    spaces = env_info["observation_space"].spaces
    image_hw = tuple(spaces[STUDENT_IMAGES[kind]].shape[-2:])
    student = build_student(kind, settings.student_sizes(kind), image_hw, spaces["proprio"].shape[0],
                            env_info["action_space"].shape[0])  # fmt: skip
    if settings.backbone_weights is not None and kind == "stereo-rgb":
        load_backbone_weights(student.encoder, Path(settings.backbone_weights))
    return student.to(device)


def distill(
    task: TaskSettings, settings: DistillSettings, options: DistillOptions, console: Console,
    teacher_checkpoint: dict | None, resume: dict | None = None, vecenv: TrainingVecEnv | None = None,
) -> dict:  # fmt: skip
    """Distill until ``max_iterations`` (counted over resumes too) or a stop request; return a summary.
    ``resume`` is the student checkpoint at ``options.resume``, read and checked by the caller."""
    run_dir = options.run_dir
    config = resolved_config(task, settings, options)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    vecenv = vecenv or local_distill_vecenv(task, options, teacher_checkpoint)
    env_info = vecenv.get_env_info()
    torch.manual_seed(options.seed)  # the student's weights do not depend on what built the worlds
    student = build_run_student(options.student, settings, env_info, vecenv.device)
    teacher = build_teacher(teacher_checkpoint, settings.scripted_sigma, vecenv.num_envs,
                            env_info["action_space"].shape[0], vecenv.device)  # fmt: skip
    dagger = Dagger(student, teacher, vecenv, settings, options.seed)
    image_key = STUDENT_IMAGES[options.student]
    meta = {"format_version": STUDENT_FORMAT_VERSION, "role": STUDENT, "student": options.student,
            "resolution": task.cameras.resolution, "image_key": image_key,
            "image_shape": list(env_info["observation_space"].spaces[image_key].shape),
            "proprio_size": int(env_info["observation_space"].spaces["proprio"].shape[0]),
            "num_actions": int(env_info["action_space"].shape[0]),
            "sizes": dataclasses.asdict(settings.student_sizes(options.student)),
            "teacher": teacher_identity(options.teacher, teacher_checkpoint), "adr": {"level": options.adr_level},
            "config": config}  # fmt: skip
    iteration, env_steps, episodes_total, best = 0, 0, 0, None
    if resume is not None:
        saved = resume[DEXGRASP_KEY]
        dagger.load_state_dict(resume)
        iteration, env_steps, episodes_total, best = saved["iteration"], saved["env_steps"], saved["episodes_total"], saved["best"]
        vecenv.load_state_dict({"episode_index": saved["episode_index"]})
        set_rng_state(saved["rng"])
    vecenv.set_adr_level(options.adr_level)
    dagger.start()

    def checkpoint(path: Path) -> Path:
        extra = dict(meta, iteration=iteration, env_steps=env_steps, episodes_total=episodes_total, best=best,
                     rng=rng_state(), episode_index=vecenv.state_dict()["episode_index"])  # fmt: skip
        save_checkpoint(path, dict(dagger.state_dict(), **{DEXGRASP_KEY: extra}))
        return path

    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(run_dir / "summaries"))
    checkpoints = run_dir / CHECKPOINTS
    title = f"distill {meta['teacher']['kind']} teacher -> {options.student} {task.cameras.resolution}"
    if options.layout != "single":
        title += f", {options.layout} x{options.replicas}"
    metrics, stopping = {}, False
    display = TrainingDisplay(f"{title} -> {run_dir}", iteration, options.max_iterations, console, distill_rows)
    try:
        with StopRequest(console) as stop, display:
            while iteration < options.max_iterations and not stopping:
                metrics = dagger.iteration(iteration)
                iteration += 1
                env_steps += metrics.pop("iteration_env_steps")
                episodes_total += metrics["episodes"]
                metrics.update(iteration=iteration, env_steps=env_steps, episodes_total=episodes_total,
                               adr_level=options.adr_level)  # fmt: skip
                _log(writer, run_dir / METRICS_FILE, metrics)
                display.update(iteration, metrics)
                rank = [metrics["success_rate"], -metrics["loss"]]  # ADR is fixed: success, then the loss
                if best is None or rank > best:
                    best = rank
                    checkpoint(checkpoints / "best.pt")
                if iteration % settings.run.save_every == 0:
                    keep_newest(checkpoints, settings.run.keep_periodic - 1)
                    checkpoint(checkpoints / f"iter_{iteration:06d}.pt")
                stopping = stop.requested
        last = checkpoint(checkpoints / LAST_CHECKPOINT)
        console.print(f"{'stopped' if stopping else 'finished'} at iteration {iteration}; saved {last}", soft_wrap=True)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            vecenv.close()
    return {"run_dir": str(run_dir), "iterations": iteration, "checkpoint": str(last), "stopped": stopping,
            "last_metrics": metrics}  # fmt: skip


def run_distill_process(
    task: TaskSettings, settings: DistillSettings, options: DistillOptions, console: Console,
    teacher_checkpoint: dict | None, resume: dict | None,
) -> None:  # fmt: skip
    """This process's part of a disaggregated distill run: a simulator replica, or the learner."""
    from dexgrasp_cli.layouts.worker import run_layout_process

    def worlds(offset: int, count: int, device: str):
        return local_distill_vecenv(task, dataclasses.replace(options, device=device), teacher_checkpoint, offset, count)

    def learn(vecenv: TrainingVecEnv, group, device: str) -> None:
        distill(task, settings, dataclasses.replace(options, device=device), console, teacher_checkpoint, resume, vecenv)

    run_layout_process(options.layout, options.num_envs, options.device, None, console, worlds, learn)


def distill_rows(m: dict) -> list[tuple[str, str, str, str]]:
    """The live view's figures of a distillation iteration."""
    success = "n/a" if m["episode_success"] is None else f"{m['episode_success']:.3f}"
    return [
        ("env-steps/s", f"{m['env_steps_per_s']:,.0f}", "student success", f"{m['success_rate']:.4f} (episodes {success})"),
        ("imitation loss", f"{m['imitation_loss']:.4f}", "aux error", f"{m['aux_error_cm']:.2f} cm"),
        ("sigma loss", f"{m['sigma_loss']:.4f}", "teacher acts", f"{m['teacher_action_prob']:.3f}"),
        ("ADR level", f"{m['adr_level']}", "grad norm", f"{m['grad_norm']:.3f}"),
        ("episodes done", f"{m['episodes_total']:,}", "env-steps", f"{m['env_steps']:,}"),
    ]


def _log(writer, metrics_path: Path, m: dict) -> None:
    """The iteration's scalars to TensorBoard (x axis: env-steps) and one JSON line."""
    step = m["env_steps"]
    for name in ("loss", "imitation_loss", "sigma_loss", "aux_error_cm", "success_rate", "env_steps_per_s",
                 "adr_level", "grad_norm", "teacher_action_prob"):  # fmt: skip
        writer.add_scalar(f"distill/{name}", m[name], step)
    for name in ("episode_success", "episode_lift_height"):
        if m[name] is not None:
            writer.add_scalar(f"distill/{name}", m[name], step)
    writer.flush()
    with metrics_path.open("a") as f:
        f.write(json.dumps(m) + "\n")
