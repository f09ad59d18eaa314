"""One run folder, train-teacher or distill, read into a ``Run``: its setting (the keys runs are
grouped by), its metrics per iteration, and whether it finished, stopped early or is still running."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from dexgrasp_cli.errors import UsageError
from dexgrasp_cli.run_files import CHECKPOINTS, CONFIG_FILE, LAST_CHECKPOINT, METRICS_FILE

RUNNING_WINDOW_S = 600
"""A run without a final save counts as running while metrics.jsonl is younger than this (10 minutes:
longer than any iteration, or a first compile, takes); after that it died, and stopped early."""
FINISHED, STOPPED_EARLY, RUNNING = "finished", "stopped early", "running"
STATUS_RULE = (
    f"finished: max_iterations reached; running: not finished, no checkpoints/last.pt saved after the last "
    f"metrics line (a run saves it as it ends, finished or stopped) and metrics.jsonl written in the last "
    f"{RUNNING_WINDOW_S // 60} minutes; stopped early: any other"
)


@dataclass(frozen=True)
class Run:
    """A run folder as report sees it. The metrics are per iteration, oldest first."""

    run_dir: Path
    command: str
    """train-teacher or distill (from the config's section: train or distill)."""
    layout: str
    modality: str
    """A teacher's; a distill run's teacher's: state, depth, scripted, or unknown when its folder is not found."""
    resolution: str | None
    """The camera resolution; None for a state teacher, which renders nothing."""
    student: str | None
    num_envs: int
    seed: int
    max_iterations: int
    num_levels: int
    iterations: tuple[int, ...]
    env_steps: tuple[int, ...]
    success_rate: tuple[float, ...]
    adr_level: tuple[int, ...]
    episodes: int
    """Episodes finished over the whole run."""
    status: str

    @property
    def iteration(self) -> int:
        return self.iterations[-1] if self.iterations else 0

    @property
    def final_adr_level(self) -> int | None:
        return self.adr_level[-1] if self.adr_level else None

    @property
    def final_env_steps(self) -> int:
        return self.env_steps[-1] if self.env_steps else 0

    @property
    def full_adr(self) -> bool:
        return self.final_adr_level == self.num_levels

    @property
    def counted(self) -> bool:
        """Table II compares runs of equal budget: only finished runs with an episode behind them count."""
        return self.status == FINISHED and self.episodes > 0

    def recent_success(self, last: int) -> float | None:
        """The paper's instantaneous success rate, averaged over the last ``last`` iterations."""
        recent = self.success_rate[-last:]
        return sum(recent) / len(recent) if recent else None


def read_run(run_dir: Path) -> Run:
    """The run in ``run_dir``; a folder without config.yaml and metrics.jsonl is a UsageError."""
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir} is not a folder; accepted: a train-teacher or distill --run-dir")
    config_path, metrics_path = run_dir / CONFIG_FILE, run_dir / METRICS_FILE
    for path in (config_path, metrics_path):
        if not path.is_file():
            raise UsageError(f"{run_dir} is not a run folder: it has no {path.name}; accepted: a train-teacher or distill --run-dir "
                             "after its first iteration")  # fmt: skip
    config = _read_config(config_path)
    run = config["run"]
    command = "distill" if "distill" in config else "train-teacher"
    try:
        if command == "distill":
            modality = _teacher_modality(str(run["teacher"]), run_dir, Path(str(run["run_dir"])))
            resolution, student = config["task"]["cameras"]["resolution"], run["student"]
        else:
            modality, student = run["modality"], None
            resolution = config["task"]["cameras"]["resolution"] if modality == "depth" else None
        setting = dict(layout=run.get("layout", "single"), num_envs=int(run["num_envs"]), seed=int(run["seed"]),
                       max_iterations=int(run["max_iterations"]), num_levels=int(config["task"]["adr"].get("num_levels", 50)))  # fmt: skip
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError(f"{config_path} is not a dexgrasp run config: a key it needs is missing or bad ({err})") from None
    rows = _read_metrics(metrics_path)
    last_save = run_dir / CHECKPOINTS / LAST_CHECKPOINT
    status = run_status(rows[-1][0] if rows else 0, setting["max_iterations"], metrics_path.stat().st_mtime,
                        last_save.stat().st_mtime if last_save.is_file() else None, time.time())  # fmt: skip
    columns = list(zip(*rows)) if rows else [(), (), (), (), ()]
    return Run(run_dir, command, modality=modality, resolution=resolution, student=student, **setting,
               iterations=tuple(columns[0]), env_steps=tuple(columns[1]), success_rate=tuple(columns[2]),
               adr_level=tuple(columns[3]), episodes=rows[-1][4] if rows else 0, status=status)  # fmt: skip


def run_status(iteration: int, max_iterations: int, metrics_mtime: float, last_save_mtime: float | None, now: float) -> str:
    """See STATUS_RULE."""
    if iteration >= max_iterations:
        return FINISHED
    saved_since = last_save_mtime is not None and last_save_mtime >= metrics_mtime
    return RUNNING if not saved_since and now - metrics_mtime < RUNNING_WINDOW_S else STOPPED_EARLY


def _read_config(path: Path) -> dict:
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise UsageError(f"{path} is not valid YAML ({' '.join(str(err).split())})") from None
    if not isinstance(config, dict) or not isinstance(config.get("run"), dict) or not {"train", "distill"} & set(config):
        raise UsageError(f"{path} is not a dexgrasp run config; accepted: the config.yaml train-teacher or distill writes")
    return config


def _read_metrics(path: Path) -> list[tuple[int, int, float, int, int]]:
    """(iteration, env_steps, success_rate, adr_level, episodes so far) per iteration. A run resumed
    from an earlier checkpoint logs its iterations again: the later lines replace the earlier ones."""
    rows: list[tuple[int, int, float, int, int]] = []
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            m = json.loads(line)
            row = (int(m["iteration"]), int(m["env_steps"]), float(m["success_rate"]), int(m["adr_level"]), int(m["episodes_total"]))
        except (ValueError, KeyError, TypeError) as err:
            if number == len(lines):  # the line a running run is writing now
                break
            raise UsageError(f"{path} line {number} is not a metrics line ({type(err).__name__}: {err})") from None
        while rows and rows[-1][0] >= row[0]:
            rows.pop()
        rows.append(row)
    return rows


def _teacher_modality(teacher: str, run_dir: Path, recorded_run_dir: Path) -> str:
    """A distill run's teacher, from its train-teacher folder's config (``--teacher`` names a checkpoint
    in it). A relative path was relative to where distill ran: found from the relative --run-dir it
    recorded, or from here."""
    if teacher == "scripted":
        return "scripted"
    here, recorded = run_dir.resolve().parts, recorded_run_dir.parts
    starts = [Path.cwd()]
    if recorded and not recorded_run_dir.is_absolute() and here[-len(recorded):] == recorded:
        starts.insert(0, Path(*here[: -len(recorded)]))
    for start in starts:
        config = (start / teacher).parent.parent / CONFIG_FILE
        try:
            return str(yaml.safe_load(config.read_text())["run"]["modality"])
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            continue
    return "unknown"
