"""The live terminal view of a training or distillation run (Rich): one panel, refreshed every iteration."""

from __future__ import annotations

from typing import Callable

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

Rows = Callable[[dict], list[tuple[str, str, str, str]]]

TOP_TERMS = 4  # reward terms shown, largest mean magnitude first


class TrainingDisplay:
    """Iteration out of total with ETA, then the run's figures: for a teacher, throughput, success, ADR
    level, the reward terms, and where the collection time went (the slowest simulator's stepping and
    the learner's wait for observations)."""

    def __init__(self, title: str, first_iteration: int, total_iterations: int, console=None, rows: Rows | None = None):
        """``rows``: the metrics as rows of four cells (default: a teacher's, ``teacher_rows``)."""
        self.title, self.rows = title, rows or teacher_rows
        self.progress = Progress(
            TextColumn("[bold]iteration"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
        )
        self.task = self.progress.add_task("train", total=total_iterations, completed=first_iteration)
        self.metrics: dict = {}
        self.live = Live(self._renderable(), console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> TrainingDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def update(self, iteration: int, metrics: dict) -> None:
        """Show the metrics of the iteration just finished (see Trainer._iteration_metrics)."""
        self.metrics = metrics
        self.progress.update(self.task, completed=iteration)
        self.live.update(self._renderable())

    def _renderable(self) -> Panel:
        m = self.metrics
        table = Table.grid(padding=(0, 2))
        for _ in range(4):
            table.add_column()
        if m:
            for row in self.rows(m):
                table.add_row(*row)
        else:
            table.add_row("collecting the first iteration (the first one compiles kernels) ...", "", "", "")
        return Panel(Group(self.progress, table), title=self.title, expand=False)


def teacher_rows(m: dict) -> list[tuple[str, str, str, str]]:
    terms = sorted(m["reward_terms"].items(), key=lambda kv: -abs(kv[1]))[:TOP_TERMS]
    return [
        ("env-steps/s", f"{m['env_steps_per_s']:,.0f}", "success", _fmt(m.get("success_rate"))),
        ("ADR level", f"{m['adr_level']}", "mean reward/step", _fmt(m.get("reward_per_step"))),
        ("reward terms", "  ".join(f"{name} {value:+.4f}" for name, value in terms), "", ""),
        ("episodes done", f"{m['episodes_total']:,}", "env-steps", f"{m['env_steps']:,}"),
        ("sim step s", f"{m['sim_step_seconds']:.2f} (slowest)", "obs wait s",
         f"{m['obs_wait_seconds']:.2f} (overhead {m['overhead_share']:.1%})"),
    ]  # fmt: skip


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
