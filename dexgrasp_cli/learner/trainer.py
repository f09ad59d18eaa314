"""train-teacher: PPO on a DextrahEnv through rl-games, driven one iteration at a time.

rl-games' own ``train()`` loop prints, saves and stops on its terms. Here the loop is ours, so
dexgrasp decides the ADR level from the global success fraction, logs every reward term, shows a
Rich live view, saves atomic checkpoints (periodic, best, last) and stops cleanly on Ctrl-C or
SIGTERM. Each iteration is rl-games' ``train_epoch``: ``horizon_length`` steps of every world, then
``mini_epochs`` passes of PPO over them.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one line per
iteration), ``summaries/`` (TensorBoard events) and ``checkpoints/`` (``best.pt``, ``last.pt`` and
the newest periodic ``iter_NNNNNN.pt``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from rich.console import Console
from rl_games.common.algo_observer import AlgoObserver

from dexgrasp_cli.atomic import write_text_atomic
from dexgrasp_cli.learner.checkpoint import (
    DEXGRASP_KEY, FORMAT_VERSION, rng_state, save_checkpoint, set_rng_state,
)  # fmt: skip
from dexgrasp_cli.learner.display import TrainingDisplay
from dexgrasp_cli.learner.settings import TrainSettings
from tasks.dextrah.adr import ADR
from tasks.dextrah.rewards import REWARD_TERMS
from tasks.dextrah.settings import TaskSettings

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class TrainOptions:
    """The run: what the CLI options say beyond the yaml settings."""

    modality: str
    num_envs: int
    device: str
    seed: int
    max_iterations: int
    run_dir: Path
    resume: Path | None
    overrides: tuple[str, ...]


class _RewardTermObserver(AlgoObserver):
    """Sums each reward term over the env-steps of an iteration (rl-games hands us every step's infos).

    The sums stay on the env's device, so a step costs no host synchronization; they are read once
    per iteration.
    """

    def __init__(self):
        super().__init__()
        self.sums: torch.Tensor | None = None  # (len(REWARD_TERMS),) float64
        self.steps = 0

    def process_infos(self, infos, done_indices):
        terms = torch.stack([infos["reward_terms"][name].sum() for name in REWARD_TERMS]).double()
        self.sums = terms if self.sums is None else self.sums + terms
        self.steps += len(infos["success"])

    def pop_means(self) -> dict[str, float]:
        sums = self.sums.tolist() if self.sums is not None else [0.0] * len(REWARD_TERMS)
        means = {name: total / max(1, self.steps) for name, total in zip(REWARD_TERMS, sums)}
        self.sums, self.steps = None, 0
        return means


class _StopRequest:
    """The first Ctrl-C or SIGTERM asks the loop to stop after the current iteration; a second aborts."""

    def __init__(self, console: Console):
        self.console, self.requested = console, False

    def __enter__(self) -> _StopRequest:
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.console.print(f"[yellow]{signal.Signals(signum).name}: saving a checkpoint after this iteration "
                           "(again to abort without saving)[/]")  # fmt: skip


def resolved_config(task: TaskSettings, train: TrainSettings, options: TrainOptions) -> dict:
    run = {key: str(value) if isinstance(value, Path) else value for key, value in dataclasses.asdict(options).items()}
    run["overrides"] = list(options.overrides)
    return {"run": run, "task": dataclasses.asdict(task), "train": dataclasses.asdict(train)}


def build_training(task: TaskSettings, train: TrainSettings, options: TrainOptions):
    """The env, its vecenv and the rl-games agent of a run, seeded; returns them and the params."""
    from dexgrasp_cli.learner.agent import MODALITY_IMAGES, build_agent, rl_games_params
    from dexgrasp_cli.learner.vecenv import LocalVecEnv
    from tasks.dextrah.env import DextrahEnv

    torch.manual_seed(options.seed)
    device = torch.device(options.device)
    images = MODALITY_IMAGES[options.modality]
    env = DextrahEnv(task, options.num_envs, device=options.device, seed=options.seed, images=images)
    vecenv = LocalVecEnv(env, options.modality, device)
    params = rl_games_params(train, options.modality, options.num_envs, device, options.max_iterations, vecenv.get_env_info())
    with contextlib.redirect_stdout(io.StringIO()):  # rl-games prints its set-up chatter
        agent = build_agent(params, vecenv, options.run_dir)
    return env, vecenv, agent, params


def train_teacher(
    task: TaskSettings, train: TrainSettings, options: TrainOptions, console: Console, resume: dict | None = None
) -> dict:
    """Train until ``max_iterations`` (counted over resumes too) or a stop request; return a summary.
    ``resume`` is the checkpoint at ``options.resume``, already read and checked by the caller."""
    from dexgrasp_cli.learner.agent import policy_description
    from dexgrasp_cli.learner.patches import close_agent

    run_dir = options.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    config = resolved_config(task, train, options)
    write_text_atomic(run_dir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    env, vecenv, agent, params = build_training(task, train, options)
    observer = _RewardTermObserver()
    agent.algo_observer = observer
    adr = ADR(task.adr)
    meta = {"format_version": FORMAT_VERSION, "modality": options.modality, "resolution": task.cameras.resolution,
            "policy": policy_description(params), "config": config}  # fmt: skip
    best, episodes_total = -1.0, 0
    if resume is not None:
        extra = resume[DEXGRASP_KEY]
        agent.set_full_state_weights(resume, set_epoch=True)
        agent.last_lr, agent.entropy_coef = extra["last_lr"], extra["entropy_coef"]
        adr.load_state_dict(extra["adr"])
        env.episode_index.copy_(extra["episode_index"].to(env.device))
        best, episodes_total = extra["best_success"], extra["episodes_total"]
        set_rng_state(extra["rng"])
    vecenv.set_adr_level(adr.level)

    def checkpoint(path: Path) -> Path:
        extra = dict(meta, adr=adr.state_dict(), rng=rng_state(), last_lr=float(agent.last_lr),
                     entropy_coef=float(agent.entropy_coef), best_success=best, episodes_total=episodes_total,
                     episode_index=env.episode_index.cpu(), iteration=agent.epoch_num)  # fmt: skip
        save_checkpoint(path, dict(agent.get_full_state_weights(), **{DEXGRASP_KEY: extra}))
        return path

    checkpoints = run_dir / CHECKPOINTS
    agent.init_tensors()
    agent.obs = agent.env_reset()
    env.stagger_episode_ends()
    agent.curr_frames = agent.batch_size_envs
    metrics = {}
    title = f"train-teacher {options.modality}" + (f" {task.cameras.resolution}" if env.images else "") + f" -> {run_dir}"
    try:
        with _StopRequest(console) as stop, TrainingDisplay(title, agent.epoch_num, options.max_iterations, console) as display:
            while agent.epoch_num < options.max_iterations and not stop.requested:
                metrics = _iteration(agent, vecenv, adr, observer)
                episodes_total += metrics["episodes"]
                metrics["episodes_total"] = episodes_total
                _log(agent.writer, run_dir / METRICS_FILE, metrics)
                display.update(agent.epoch_num, metrics)
                if metrics["success_rate"] > best:
                    best = metrics["success_rate"]
                    checkpoint(checkpoints / "best.pt")
                if agent.epoch_num % train.run.save_every == 0:
                    _keep_newest(checkpoints, train.run.keep_periodic - 1)
                    checkpoint(checkpoints / f"iter_{agent.epoch_num:06d}.pt")
        last = checkpoint(checkpoints / "last.pt")
        # soft_wrap keeps the path on one line, so it can be copied
        console.print(f"{'stopped' if stop.requested else 'finished'} at iteration {agent.epoch_num}; saved {last}", soft_wrap=True)
    finally:
        close_agent(agent)
    return {"run_dir": str(run_dir), "iterations": agent.epoch_num, "checkpoint": str(last),
            "adr_level": adr.level, "stopped": stop.requested, "last_metrics": metrics}  # fmt: skip


def _iteration(agent, vecenv, adr: ADR, observer: _RewardTermObserver) -> dict:
    """One rl-games iteration, then ADR and the numbers to log."""
    start = time.perf_counter()
    agent.update_epoch()
    (step_time, play_time, update_time, sum_time, a_losses, c_losses, b_losses,
     entropies, kls, last_lr, lr_mul) = agent.train_epoch()  # fmt: skip
    agent.dataset.update_values_dict(None)  # frees the flattened copy of the batch
    frames = agent.curr_frames
    agent.frame += frames
    elapsed = time.perf_counter() - start
    agent.write_stats(elapsed, agent.epoch_num, step_time, play_time, update_time, a_losses, c_losses,
                      entropies, kls, last_lr, lr_mul, agent.frame, sum_time, play_time, frames)  # fmt: skip
    stats = vecenv.pop_stats()
    if adr.update(stats.success_fraction, stats.policy_steps * stats.num_envs):
        vecenv.set_adr_level(adr.level)
    terms = observer.pop_means()
    episodes = stats.episodes

    def mean(key: str) -> float | None:  # over the episodes that finished in this iteration
        return float(episodes[key].double().mean()) if len(episodes.get(key, ())) else None

    return {
        "iteration": agent.epoch_num,
        "env_steps": agent.frame,
        "env_steps_per_s": frames / elapsed,
        "seconds": elapsed,
        "collect_seconds": play_time,
        "update_seconds": update_time,
        "success_rate": stats.success_fraction,
        "episode_success": mean("success"),
        "episode_lift_height": mean("lift_height"),
        "episodes": len(episodes.get("success", ())),
        "episode_returns": {name: mean(f"return_{name}") for name in REWARD_TERMS},
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
    for name in ("success_rate", "adr_level", "env_steps_per_s", "reward_per_step"):
        writer.add_scalar(f"dexgrasp/{name}", m[name], step)
    for name in ("episode_success", "episode_lift_height"):
        if m[name] is not None:
            writer.add_scalar(f"dexgrasp/{name}", m[name], step)
    for name, value in m["reward_terms"].items():
        writer.add_scalar(f"reward_terms/{name}", value, step)
    writer.flush()
    with metrics_path.open("a") as f:
        f.write(json.dumps(m) + "\n")


def _keep_newest(folder: Path, count: int) -> None:
    """Delete all but the newest ``count`` periodic checkpoints."""
    periodic = sorted(folder.glob("iter_*.pt"))
    for path in periodic[: max(0, len(periodic) - count)]:
        path.unlink()
