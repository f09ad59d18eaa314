"""train-teacher: PPO on a DextrahEnv through rl-games, driven one iteration at a time.

rl-games' own ``train()`` loop prints, saves and stops on its terms. Here the loop is ours, so
dexgrasp decides the ADR level from the global success fraction, logs every reward term, shows a
Rich live view, saves atomic checkpoints (periodic, best, last) and stops cleanly on Ctrl-C or
SIGTERM. Each iteration is rl-games' ``train_epoch``: ``horizon_length`` steps of every world, then
``mini_epochs`` passes of PPO over them.

The loop is the same in every layout: it sees the worlds through a ``TrainingVecEnv`` (in this
process, or simulator replicas elsewhere) and the other learner processes through a
``LearnerGroup`` (none, or data-parallel ranks); dexgrasp_cli/layouts/ builds both.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one line per
iteration), ``summaries/`` (TensorBoard events) and ``checkpoints/`` (``best.pt``, ``last.pt`` and
the newest periodic ``iter_NNNNNN.pt``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from rich.console import Console

from dexgrasp_cli.atomic import write_text_atomic
from dexgrasp_cli.learner.checkpoint import DEXGRASP_KEY, FORMAT_VERSION, save_checkpoint
from dexgrasp_cli.learner.display import TrainingDisplay
from dexgrasp_cli.run_files import CHECKPOINTS, CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE
from dexgrasp_cli.learner.learner_group import LearnerGroup
from dexgrasp_cli.learner.rollout_stats import RolloutStats
from dexgrasp_cli.learner.settings import TrainSettings
from dexgrasp_cli.learner.stop_request import StopRequest
from dexgrasp_cli.learner.vecenv import TrainingVecEnv
from dexgrasp_tasks.dextrah.adr import ADR
from dexgrasp_tasks.dextrah.rewards import REWARD_TERMS
from dexgrasp_tasks.dextrah.settings import TaskSettings



@dataclass(frozen=True)
class TrainOptions:
    """The run: what the CLI options say beyond the yaml settings."""

    modality: str
    num_envs: int
    """The global batch: every world of the run, whichever processes simulate them."""
    device: str
    """The learner's device (in a multi-process layout, this process's)."""
    seed: int
    max_iterations: int
    run_dir: Path
    resume: Path | None
    overrides: tuple[str, ...]
    layout: str = "single"
    replicas: int = 1
    """Simulator replicas (disagg) or data-parallel ranks (dp)."""


def resolved_config(task: TaskSettings, train: TrainSettings, options: TrainOptions) -> dict:
    run = {key: str(value) if isinstance(value, Path) else value for key, value in dataclasses.asdict(options).items()}
    run["overrides"] = list(options.overrides)
    return {"run": run, "task": dataclasses.asdict(task), "train": dataclasses.asdict(train)}


def local_vecenv(task: TaskSettings, options: TrainOptions, env_offset: int = 0, num_envs: int | None = None):
    """An env of ``num_envs`` worlds (default: all) from global world ``env_offset`` on, in this
    process on ``options.device``, seen as a LocalVecEnv."""
    from dexgrasp_cli.learner.settings import MODALITY_IMAGES
    from dexgrasp_cli.learner.vecenv import LocalVecEnv
    from dexgrasp_tasks.dextrah.env import DextrahEnv

    images = MODALITY_IMAGES[options.modality]
    count = options.num_envs if num_envs is None else num_envs
    env = DextrahEnv(task, count, device=options.device, seed=options.seed, env_offset=env_offset, images=images)
    return LocalVecEnv(env, options.modality, options.device)


def build_agent_over(vecenv: TrainingVecEnv, train: TrainSettings, options: TrainOptions, group: LearnerGroup):
    """The rl-games agent of a run over ``vecenv``, seeded and joined to its group; returns it and its params.

    The weights are drawn right after seeding, so they do not depend on what built the worlds (in
    this process or elsewhere): every layout starts from the same network.
    """
    from dexgrasp_cli.learner.agent import build_agent, rl_games_params

    params = rl_games_params(train, options.modality, vecenv.num_envs, vecenv.device, options.max_iterations,
                             vecenv.get_env_info())  # fmt: skip
    torch.manual_seed(options.seed)
    with contextlib.redirect_stdout(io.StringIO()):  # rl-games prints its set-up chatter
        agent = build_agent(params, vecenv, options.run_dir if group.is_main else None)
    group.join(agent)
    group.seed_exploration(options.seed)
    return agent, params


def train_teacher(
    task: TaskSettings, train: TrainSettings, options: TrainOptions, console: Console, resume: dict | None = None,
    vecenv: TrainingVecEnv | None = None, group: LearnerGroup | None = None,
) -> dict:  # fmt: skip
    """Train until ``max_iterations`` (counted over resumes too) or a stop request; return a summary.

    ``resume`` is the checkpoint at ``options.resume``, already read and checked by the caller.
    ``vecenv`` defaults to all worlds in this process, ``group`` to this learner alone.
    """
    from dexgrasp_cli.learner.agent import policy_description
    from dexgrasp_cli.learner.patches import close_agent

    group = group or LearnerGroup()
    run_dir = options.run_dir
    config = resolved_config(task, train, options)
    if group.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    vecenv = vecenv or local_vecenv(task, options)
    agent, params = build_agent_over(vecenv, train, options, group)
    adr = ADR(task.adr)
    meta = {"format_version": FORMAT_VERSION, "modality": options.modality, "resolution": task.cameras.resolution,
            "policy": policy_description(params), "config": config}  # fmt: skip
    best, episodes_total = None, 0
    if resume is not None:
        extra = resume[DEXGRASP_KEY]
        agent.set_full_state_weights(resume, set_epoch=True)
        agent.last_lr, agent.entropy_coef = extra["last_lr"], extra["entropy_coef"]
        adr.load_state_dict(extra["adr"])
        vecenv.load_state_dict({"episode_index": extra["episode_index"]})
        best, episodes_total = extra.get("best_rank"), extra["episodes_total"]  # older checkpoints have no rank
        group.restore_rng(extra.get("rank_rngs") or [extra["rng"]])
    vecenv.set_adr_level(adr.level)

    def checkpoint(path: Path) -> Path:
        """Every rank calls this at the same points (it gathers from all of them); the main one saves."""
        worlds, rngs = vecenv.state_dict(), group.rng_states()
        if not group.is_main:
            return path
        extra = dict(meta, adr=adr.state_dict(), rng=rngs[0], last_lr=float(agent.last_lr),
                     entropy_coef=float(agent.entropy_coef), best_rank=best, episodes_total=episodes_total,
                     episode_index=worlds["episode_index"], iteration=agent.epoch_num)  # fmt: skip
        if len(rngs) > 1:
            extra["rank_rngs"] = rngs
        save_checkpoint(path, dict(agent.get_full_state_weights(), **{DEXGRASP_KEY: extra}))
        return path

    checkpoints = run_dir / CHECKPOINTS
    agent.init_tensors()
    agent.obs = agent.env_reset()
    vecenv.stagger_episode_ends()
    agent.curr_frames = agent.batch_size_envs
    metrics, stopping = {}, False
    title = f"train-teacher {options.modality}" + (f" {task.cameras.resolution}" if options.modality == "depth" else "")
    if options.layout != "single":
        title += f", {options.layout} x{options.replicas}"
    display = None
    if group.is_main:
        display = TrainingDisplay(f"{title} -> {run_dir}", agent.epoch_num, options.max_iterations, console)
    try:
        with StopRequest(console, group.is_main) as stop, display or contextlib.nullcontext():
            while agent.epoch_num < options.max_iterations and not stopping:
                metrics = _iteration(agent, vecenv, adr, group)
                episodes_total += metrics["episodes"]
                metrics["episodes_total"] = episodes_total
                if group.is_main:
                    _log(agent.writer, run_dir / METRICS_FILE, metrics)
                    display.update(agent.epoch_num, metrics)
                if best is None or checkpoint_rank(metrics) > best:  # global figures: every rank decides alike
                    best = checkpoint_rank(metrics)
                    checkpoint(checkpoints / "best.pt")
                if agent.epoch_num % train.run.save_every == 0:
                    if group.is_main:
                        keep_newest(checkpoints, train.run.keep_periodic - 1)
                    checkpoint(checkpoints / f"iter_{agent.epoch_num:06d}.pt")
                stopping = group.any(stop.requested)
        last = checkpoint(checkpoints / LAST_CHECKPOINT)
        if group.is_main:  # soft_wrap keeps the path on one line, so it can be copied
            ended = "stopped" if stopping else "finished"
            console.print(f"{ended} at iteration {agent.epoch_num}; saved {last}", soft_wrap=True)
    finally:
        close_agent(agent)
    return {"run_dir": str(run_dir), "iterations": agent.epoch_num, "checkpoint": str(last),
            "adr_level": adr.level, "stopped": stopping, "last_metrics": metrics}  # fmt: skip


def checkpoint_rank(metrics: dict) -> list:
    """How ``best.pt`` is chosen: the ADR level first, then the success rate. Success alone would
    favour the early iterations, whose easy worlds succeed more often than the randomized ones."""
    return [metrics["adr_level"], metrics["success_rate"]]


def _iteration(agent, vecenv: TrainingVecEnv, adr: ADR, group: LearnerGroup) -> dict:
    """One rl-games iteration, then ADR and the numbers to log (global over every world of the run)."""
    start = time.perf_counter()
    agent.update_epoch()
    (step_time, play_time, update_time, sum_time, a_losses, c_losses, b_losses,
     entropies, kls, last_lr, lr_mul) = agent.train_epoch()  # fmt: skip
    agent.dataset.update_values_dict(None)  # frees the flattened copy of the batch
    frames = agent.curr_frames * group.world_size
    agent.frame += frames
    elapsed = time.perf_counter() - start
    if group.is_main:
        agent.write_stats(elapsed, agent.epoch_num, step_time, play_time, update_time, a_losses, c_losses,
                          entropies, kls, last_lr, lr_mul, agent.frame, sum_time, play_time, frames)  # fmt: skip
    stats: RolloutStats = vecenv.pop_stats()
    if group.is_main:
        adr.update(stats.success_fraction, stats.env_steps)
    group.share_adr(adr)
    vecenv.set_adr_level(adr.level)
    terms = stats.reward_term_means()
    return {
        "iteration": agent.epoch_num,
        "env_steps": agent.frame,
        "env_steps_per_s": frames / elapsed,
        "seconds": elapsed,
        "collect_seconds": play_time,
        "update_seconds": update_time,
        "sim_step_seconds": stats.sim_seconds,
        "obs_wait_seconds": stats.wait_seconds,
        "overhead_share": max(0.0, stats.wait_seconds - stats.sim_seconds) / elapsed,
        "success_rate": stats.success_fraction,
        "episode_success": stats.episode_mean("success"),
        "episode_lift_height": stats.episode_mean("lift_height"),
        "episodes": stats.episodes,
        "episode_returns": {name: stats.episode_mean(f"return_{name}") for name in REWARD_TERMS},
        "adr_level": adr.level,
        "reward_per_step": sum(terms.values()),
        "reward_terms": terms,
        "losses": {
            "actor": _mean(a_losses), "critic": _mean(c_losses), "bounds": _mean(b_losses),
            "entropy": _mean(entropies), "kl": _mean(kls),
        },
        "learning_rate": float(last_lr * lr_mul),
    }


def _mean(values: list) -> float | None:
    if not values:
        return None
    return float(torch.stack([torch.as_tensor(v).detach().double().mean() for v in values]).mean())


def _log(writer, metrics_path: Path, m: dict) -> None:
    """The iteration's scalars to TensorBoard (x axis: env-steps) and one JSON line."""
    step = m["env_steps"]
    for name in ("success_rate", "adr_level", "env_steps_per_s", "reward_per_step", "sim_step_seconds",
                 "obs_wait_seconds", "overhead_share"):
        writer.add_scalar(f"dexgrasp/{name}", m[name], step)
    for name in ("episode_success", "episode_lift_height"):
        if m[name] is not None:
            writer.add_scalar(f"dexgrasp/{name}", m[name], step)
    for name, value in m["reward_terms"].items():
        writer.add_scalar(f"reward_terms/{name}", value, step)
    writer.flush()
    with metrics_path.open("a") as f:
        f.write(json.dumps(m) + "\n")


def keep_newest(folder: Path, count: int) -> None:
    """Delete all but the newest ``count`` periodic checkpoints."""
    periodic = sorted(folder.glob("iter_*.pt"))
    for path in periodic[: max(0, len(periodic) - count)]:
        path.unlink()
