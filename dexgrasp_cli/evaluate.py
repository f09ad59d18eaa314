"""Evaluation: roll a policy out until enough episodes finish, and measure the paper's metrics.

``run_eval`` is the runner behind ``dexgrasp eval``, for the scripted grasp, a trained teacher's
checkpoint or a distilled student's (both run deterministically: their mean action; a student
also reports its auxiliary head's object-position error). Each world contributes its first
episodes, ``episodes / num_envs`` of them (one more for the lowest-indexed worlds when that does not
divide): counting whichever episodes finish first instead would favour short ones, the episodes that
fail early or succeed quickly. It returns a flat dict of plain numbers that the CLI prints and writes
as JSON.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from dexgrasp_assets.objects import ObjectShape
from dexgrasp_cli.frames import frame_worlds, save_frames
from dexgrasp_tasks.dextrah.rewards import REWARD_TERMS
from dexgrasp_tasks.dextrah.settings import TaskSettings

FORMAT_VERSION = 1
EPISODE_KEYS = ("success", "lift_height", "length", "time_to_success") + tuple(
    f"return_{name}" for name in REWARD_TERMS
)


def _mean(values: torch.Tensor) -> float | None:
    return float(values.double().mean()) if values.numel() else None


def run_eval(
    settings: TaskSettings,
    num_envs: int,
    episodes: int,
    device: str,
    seed: int,
    adr_level: int,
    objects: list[ObjectShape] | None = None,
    console: Console | None = None,
    frames_dir: Path | None = None,
    frame_interval: int = 100,
    checkpoint: dict | None = None,
) -> dict:
    """Evaluate the scripted grasp, or the teacher in ``checkpoint``; see the module docstring.
    ``objects`` overrides the settings'.

    With ``frames_dir``, the cameras render and the first worlds' images are written there as PNGs
    at reset and every ``frame_interval`` policy steps.
    """
    # Heavy imports here, so the CLI validates its input before paying for them.
    from dexgrasp_tasks.dextrah.env import DextrahEnv

    images = eval_images(frames_dir is not None, checkpoint)
    env = DextrahEnv(settings, num_envs, device=device, seed=seed, objects=objects, images=images)
    env.adr.set_level(adr_level)
    obs = env.reset()  # start every episode under the requested ADR level
    policy = _policy(env, checkpoint)
    frames = None
    if frames_dir is not None:
        frames = _FrameWriter(frames_dir, frame_interval, env)
        frames(0, obs)
    result = _rollout(env, policy, obs, episodes, console or Console(stderr=True), frames)
    result.update(getattr(policy, "metrics", dict)())
    if frames is not None:
        result.update(frames_dir=str(frames_dir), frames_saved=frames.saved)
    result.update(
        policy=policy_label(checkpoint),
        episodes=int(result["episodes"]),
        num_envs=num_envs,
        device=str(env.device),
        seed=seed,
        adr_level=env.adr.level,
        num_adr_levels=settings.adr.num_levels,
        episode_length_limit=settings.episode_length,
        overflow_resets=env.overflow_resets,
        format_version=FORMAT_VERSION,
        config=dataclasses.asdict(settings),
    )
    return result


def policy_label(checkpoint: dict | None) -> str:
    """``scripted``, ``depth teacher``, or e.g. ``stereo-rgb student (of a depth teacher)``."""
    if checkpoint is None:
        return "scripted"
    meta = checkpoint["dexgrasp"]
    if meta.get("role") == "student":
        return f"{meta['student']} student (of a {meta['teacher']['kind']} teacher)"
    return f"{meta['modality']} teacher"


def eval_images(save_frames: bool, checkpoint: dict | None) -> tuple[str, ...]:
    """What eval renders: every camera when frames are saved, else what the checkpoint's policy sees."""
    if save_frames:
        return ("depth", "rgb")
    if checkpoint is None:
        return ()
    meta = checkpoint["dexgrasp"]
    if meta.get("role") == "student":
        from dexgrasp_cli.distill.student_sizes import STUDENT_IMAGES

        return (STUDENT_IMAGES[meta["student"]],)
    from dexgrasp_cli.learner.settings import MODALITY_IMAGES

    return MODALITY_IMAGES[meta["modality"]]


def _policy(env, checkpoint: dict | None):
    """``policy(obs) -> actions`` with an ``episodes_ended(done)`` hook (and, optionally, ``metrics()``)."""
    if checkpoint is None:
        return _ScriptedPolicy(env)
    if checkpoint["dexgrasp"].get("role") == "student":
        from dexgrasp_cli.distill.student_policy import StudentPolicy

        return StudentPolicy(checkpoint, env.num_envs, env.device)
    from dexgrasp_cli.learner.policy import CheckpointPolicy

    return CheckpointPolicy(checkpoint, env.num_envs, env.device)


class _ScriptedPolicy:
    """The scripted grasp reads the env's state itself and keeps no memory between episodes."""

    def __init__(self, env):
        from dexgrasp_tasks.dextrah.scripted_policy import ScriptedGraspPolicy

        self.scripted = ScriptedGraspPolicy(env)

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.scripted()

    def episodes_ended(self, done: torch.Tensor) -> None:
        pass


class _FrameWriter:
    """Saves the first worlds' camera images every ``interval`` policy steps."""

    def __init__(self, folder: Path, interval: int, env):
        self.folder, self.interval, self.env = folder, interval, env
        self.worlds = frame_worlds(env.num_envs)
        self.saved = 0

    def __call__(self, step: int, obs: dict[str, torch.Tensor]) -> None:
        if step % self.interval:
            return
        rows = self.worlds
        world_ids = [int(self.env.world_ids[i]) for i in rows]
        depth_range = self.env.settings.cameras.depth_range
        save_frames(self.folder, step, world_ids, obs["depth"][rows], obs["rgb"][rows], depth_range)
        self.saved += 1


class _EvalProgress(Progress):
    """A progress bar with a second line: the mean reward per term per env-step so far."""

    terms = ""

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        if self.terms:
            yield Text(self.terms, style="dim")


def _rollout(env, policy, obs: dict, episodes: int, console: Console, frames: _FrameWriter | None) -> dict:
    n, dev = env.num_envs, env.device
    finished: dict[str, list[torch.Tensor]] = {key: [] for key in EPISODE_KEYS + ("return_total",)}
    quota = torch.full((n,), episodes // n, dtype=torch.long, device=dev)
    quota[: episodes % n] += 1
    counted = torch.zeros(n, dtype=torch.long, device=dev)  # episodes finished per world, up to its quota
    done_count = 0
    running_reward = torch.zeros(n, dtype=torch.float64, device=dev)  # the env's summed reward
    success_sum = torch.zeros((), dtype=torch.float64, device=dev)
    term_sums = {name: torch.zeros((), dtype=torch.float64, device=dev) for name in REWARD_TERMS}
    steps = 0
    first_step_s = 0.0
    start = time.perf_counter()

    progress = _EvalProgress(
        TextColumn("[bold]eval[/] ADR {task.fields[adr]}"),
        BarColumn(bar_width=16),
        MofNCompleteColumn(),
        TextColumn("episodes  {task.fields[rate]} env-steps/s  success {task.fields[success]}"),
        TimeElapsedColumn(),
        console=console,
    )
    console.print(
        "[dim]The first step compiles warp kernels: about 1-2 min on a CPU the first time, "
        "seconds once cached in ~/.cache/warp.[/]"
    )
    with progress:
        task = progress.add_task("eval", total=episodes, adr=env.adr.level, rate="compiling", success="-")
        while done_count < episodes:
            t0 = time.perf_counter()
            result = env.step(policy(obs))
            obs = result.obs
            steps += 1
            if frames is not None:
                frames(steps, result.obs)
            if steps == 1:
                first_step_s = time.perf_counter() - t0
                start = time.perf_counter()
            success_sum += result.info["success"].double().sum()
            for name, value in result.info["reward_terms"].items():
                term_sums[name] += value.double().sum()
            running_reward += result.reward.double()
            done = result.terminated | result.truncated
            policy.episodes_ended(done)
            stats = result.info["episode"]  # one entry per finished world, in index order
            take = done & (counted < quota)
            if take.any():
                for key in EPISODE_KEYS:
                    finished[key].append(stats[key][take[done]])
                finished["return_total"].append(running_reward[take])
                counted += take.long()
                done_count = int(counted.sum())
            running_reward.masked_fill_(done, 0.0)

            env_steps = steps * n
            rate = (steps - 1) * n / max(time.perf_counter() - start, 1e-9) if steps > 1 else None
            progress.terms = "reward per env-step: " + "  ".join(
                f"{k} {float(v) / env_steps:+.4f}" for k, v in term_sums.items()
            )
            progress.update(
                task,
                completed=done_count,
                rate=f"{rate:,.0f}" if rate is not None else "compiling",
                success=f"{float(success_sum) / env_steps:.3f}",
            )
    elapsed = time.perf_counter() - start

    ep = {key: torch.cat(values).double().cpu() for key, values in finished.items()}
    successful = ep["success"] > 0.5
    env_steps = steps * n
    out = {
        "episodes": len(ep["success"]),
        "success_rate_instantaneous": float(success_sum) / env_steps,
        "success_rate_episode": _mean(ep["success"]),
        "mean_lift_height": _mean(ep["lift_height"]),
        "mean_time_to_success": _mean(ep["time_to_success"][successful]),
        "mean_episode_length": _mean(ep["length"]),
    }
    for name in REWARD_TERMS:
        out[f"return_{name}"] = _mean(ep[f"return_{name}"])
    out["return_total"] = _mean(ep["return_total"])
    out.update(
        policy_steps=steps,
        env_steps=env_steps,
        first_step_s=first_step_s,
        env_steps_per_s=(steps - 1) * n / elapsed if steps > 1 and elapsed > 0 else None,
    )
    return out


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if math.isfinite(value) else str(value)
    return str(value)


def eval_table(result: dict) -> Table:
    """The headline numbers of an eval result as a Rich table."""
    table = Table(title=f"dexgrasp eval: {result['policy']} policy", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("success rate (instantaneous, paper)", _fmt(result["success_rate_instantaneous"])),
        ("success rate (per episode)", _fmt(result["success_rate_episode"])),
        ("mean lift height (m)", _fmt(result["mean_lift_height"])),
        ("mean time to success (s)", _fmt(result["mean_time_to_success"], 3)),
        ("mean episode length (steps)", _fmt(result["mean_episode_length"], 1)),
    ]
    rows += [(f"return: {name}", _fmt(result[f"return_{name}"])) for name in REWARD_TERMS]
    rows += [
        ("return: total", _fmt(result["return_total"])),
        ("episodes", _fmt(result["episodes"])),
        ("worlds", _fmt(result["num_envs"])),
        ("device", result["device"]),
        ("seed", _fmt(result["seed"])),
        ("ADR level", f"{result['adr_level']} / {result['num_adr_levels']}"),
        ("env-steps/s (after first step)", _fmt(result["env_steps_per_s"], 1)),
        ("first step incl. kernel compile (s)", _fmt(result["first_step_s"], 2)),
        ("overflow resets", _fmt(result["overflow_resets"])),
    ]
    if "mean_object_pos_error_cm" in result:
        rows.insert(5, ("aux head: mean object position error (cm)", _fmt(result["mean_object_pos_error_cm"], 2)))
    for name, value in rows:
        table.add_row(name, value)
    return table
