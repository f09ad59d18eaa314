"""Runs grouped by setting, seeds as the replicates, and the paper's Table II metrics per group:
ADR Inc., % Full ADR and SR, beside the paper's numbers where a group is one of its settings."""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

from rich.table import Table

from dexgrasp_cli.atomic import write_text_atomic
from dexgrasp_cli.errors import UsageError
from dexgrasp_cli.report.runs import FINISHED, RUNNING, STOPPED_EARLY, Run

GROUP_KEYS = ("command", "layout", "modality", "resolution", "student", "num_envs")
DEFAULT_GROUP_BY = ("command", "layout", "modality", "resolution", "student")
PAPER_SEEDS = 5
PAPER_TABLE_II = {  # depth teachers, (layout, resolution): the paper's Table II over 5 seeds
    ("dp", "160x120"): {"adr_inc": 0.38, "full_adr_pct": 20.0, "success_rate": 0.37},
    ("disagg", "160x120"): {"adr_inc": 1.0, "full_adr_pct": 100.0, "success_rate": 0.42},
    ("dp", "320x240"): {"adr_inc": 0.0, "full_adr_pct": 0.0, "success_rate": 0.0},
    ("disagg", "320x240"): {"adr_inc": 0.90, "full_adr_pct": 20.0, "success_rate": 0.35},
}
CSV_COLUMNS = ("run_statuses", "seeds", "adr_inc", "full_adr_pct", "success_rate", "env_steps", "paper_adr_inc",
               "paper_full_adr_pct", "paper_success_rate")  # fmt: skip


@dataclass(frozen=True)
class Group:
    """Runs of one setting: ``key`` holds the grouped-by keys' values."""

    key: dict
    runs: tuple[Run, ...]

    @property
    def label(self) -> str:
        """The setting in a few words, for a legend."""
        words = []
        for name, value in self.key.items():
            if value is not None:
                words.append(f"{value} teacher" if name == "modality" and self.key.get("command") == "distill"
                             else f"{value} student" if name == "student" else f"{value} worlds" if name == "num_envs"
                             else str(value))  # fmt: skip
        return " ".join(words) or "all runs"


def parse_group_by(text: str) -> tuple[str, ...]:
    """``--group-by``: known keys, comma-separated."""
    keys = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [key for key in keys if key not in GROUP_KEYS] or ([] if keys else [text])
    if unknown:
        raise UsageError(f"unknown --group-by key {unknown[0]!r}; accepted: a comma-separated list of {', '.join(GROUP_KEYS)}")
    return keys


def group_runs(runs: list[Run], keys: tuple[str, ...]) -> list[Group]:
    """Runs grouped by the values of ``keys``: groups in key order, runs by seed."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(tuple(getattr(run, key) for key in keys), []).append(run)
    order = sorted(groups, key=lambda values: tuple("" if v is None else str(v) for v in values))
    return [Group(dict(zip(keys, values)), tuple(sorted(groups[values], key=lambda r: (r.seed, str(r.run_dir))))) for values in order]


def group_summary(group: Group, last: int) -> dict:
    """Table II's row of a group, over its counted runs (finished, with episodes): ADR Inc. is the mean
    final level / num_levels; % Full ADR the share at the final level; SR the mean success of those at
    full ADR over their last ``last`` iterations, None when no seed got there."""
    counted = [run for run in group.runs if run.counted]
    full = [run for run in counted if run.full_adr]
    return {
        "key": group.key,
        "seeds": len(counted),
        "adr_inc": mean(run.final_adr_level / run.num_levels for run in counted) if counted else None,
        "full_adr_pct": 100.0 * len(full) / len(counted) if counted else None,
        "success_rate": mean(run.recent_success(last) for run in full) if full else None,
        "env_steps": mean(run.final_env_steps for run in counted) if counted else None,
        "run_statuses": dict(Counter(run.status for run in group.runs)),
        "paper": paper_row(group),
        "runs": [run_summary(run, last) for run in group.runs],
    }


def paper_row(group: Group) -> dict | None:
    """The paper's Table II row when every run of the group is a depth teacher of one of its settings."""
    settings = {(run.command, run.modality, run.layout, run.resolution) for run in group.runs}
    if len(settings) != 1:
        return None
    command, modality, layout, resolution = settings.pop()
    row = PAPER_TABLE_II.get((layout, resolution)) if (command, modality) == ("train-teacher", "depth") else None
    return None if row is None else dict(row, seeds=PAPER_SEEDS)


def run_summary(run: Run, last: int) -> dict:
    return {
        "run_dir": str(run.run_dir), "seed": run.seed, "status": run.status, "counted": run.counted,
        "iterations": run.iteration, "max_iterations": run.max_iterations, "episodes": run.episodes,
        "env_steps": run.final_env_steps, "final_adr_level": run.final_adr_level, "num_levels": run.num_levels,
        "full_adr": run.full_adr, "success_rate": run.recent_success(last),
    }  # fmt: skip


def report_table(summaries: list[dict], keys: tuple[str, ...], last: int) -> Table:
    """Table II: one row per group, the paper's figures in parentheses."""
    table = Table(title="dexgrasp report: the paper's Table II over seeds (paper's in parentheses)")
    for name in (*keys, "runs", "seeds", "ADR Inc.", "% Full ADR", f"SR (last {last})", "env-steps"):
        table.add_column(name, justify="right" if name not in (*keys, "runs") else "left", overflow="fold")
    for s in summaries:
        paper = s["paper"] or {}
        table.add_row(
            *(_text(s["key"][key]) for key in keys), _statuses(s["run_statuses"]), str(s["seeds"]),
            _beside(s["adr_inc"], paper.get("adr_inc"), "{:.2f}"), _beside(s["full_adr_pct"], paper.get("full_adr_pct"), "{:.0f}%"),
            _beside(s["success_rate"], paper.get("success_rate"), "{:.2f}"),
            "n/a" if s["env_steps"] is None else f"{s['env_steps']:,.0f}",
        )  # fmt: skip
    table.caption = (
        "Over each group's finished runs with episodes (seeds). ADR Inc.: mean final ADR level / num_levels. "
        "% Full ADR: share of seeds at the final level. SR: success_rate (instantaneous) over each run's last "
        f"{last} iterations, mean over the seeds at full ADR; n/a when none got there. Paper: {PAPER_SEEDS} seeds, "
        "depth teachers at 160x120 and 320x240 in the dp and disagg layouts."
    )
    return table


def runs_table(summaries: list[dict], last: int) -> Table:
    """Every run, and why one that is not counted is not."""
    table = Table(title="runs")
    for name in ("run", "seed", "status", "iterations", "episodes", "ADR level", f"SR (last {last})", "counted"):
        table.add_column(name, justify="left" if name in ("run", "status", "counted") else "right", overflow="fold")
    for s in summaries:
        for run in s["runs"]:
            table.add_row(
                run["run_dir"], str(run["seed"]), run["status"], f"{run['iterations']}/{run['max_iterations']}", f"{run['episodes']:,}",
                "-" if run["final_adr_level"] is None else f"{run['final_adr_level']}/{run['num_levels']}",
                "-" if run["success_rate"] is None else f"{run['success_rate']:.3f}", _why(run),
            )  # fmt: skip
    return table


def write_csv(path: Path, summaries: list[dict], keys: tuple[str, ...]) -> None:
    """One row per group; a figure that is n/a (null in JSON) is an empty cell."""
    text = io.StringIO()
    writer = csv.DictWriter(text, (*keys, *CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for s in summaries:
        paper = s["paper"] or {}
        writer.writerow({**s["key"], "run_statuses": _statuses(s["run_statuses"]),
                         **{name: s[name] for name in ("seeds", "adr_inc", "full_adr_pct", "success_rate", "env_steps")},
                         **{f"paper_{name}": paper.get(name) for name in ("adr_inc", "full_adr_pct", "success_rate")}})  # fmt: skip
    write_text_atomic(path, text.getvalue())


def _why(run: dict) -> str:
    if run["counted"]:
        return "yes"
    reasons = [run["status"]] if run["status"] != FINISHED else []
    return "no: " + ", ".join(reasons + (["no episodes yet"] if run["episodes"] == 0 else []))


def _statuses(counts: dict) -> str:
    return ", ".join(f"{counts[status]} {status}" for status in (FINISHED, STOPPED_EARLY, RUNNING) if counts.get(status))


def _text(value) -> str:
    return "-" if value is None else str(value)


def _beside(ours: float | None, paper: float | None, form: str) -> str:
    return ("n/a" if ours is None else form.format(ours)) + ("" if paper is None else f" ({form.format(paper)})")
