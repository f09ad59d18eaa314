"""report's figures, one line per group against env-steps (the mean over its runs, their min-max as
a band): the teachers' success and ADR level, and the students' success by teacher (Fig. 5's shape).

Figures are built without pyplot, on the Agg canvas, so no global state or display is touched."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dexgrasp_cli.atomic import write_atomic
from dexgrasp_cli.report.table import Group

TEACHERS_PNG, DISTILL_PNG = "teachers.png", "distill.png"


def teacher_figure(groups: list[Group]) -> Figure | None:
    """Success rate and ADR level against env-steps, one line per train-teacher group; None without one."""
    groups = _plotted(groups, "train-teacher")
    if not groups:
        return None
    figure = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(figure)
    success, adr = figure.subplots(1, 2)
    for group in groups:
        _band(success, group, "success_rate")
        _band(adr, group, "adr_level")
    _finish(success, "env-steps", "success rate (instantaneous)", "teachers: success")
    levels = sorted({run.num_levels for group in groups for run in group.runs})
    _finish(adr, "env-steps", f"ADR level (of {', '.join(map(str, levels))})", "teachers: ADR level", top=levels[-1])
    figure.tight_layout()
    return figure


def distill_figure(groups: list[Group]) -> Figure | None:
    """The students' success against distillation env-steps, one line per distill group (so, by
    default, per teacher modality and student); None without one."""
    groups = _plotted(groups, "distill")
    if not groups:
        return None
    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    for group in groups:
        _band(axis, group, "success_rate")
    _finish(axis, "distillation env-steps", "student success rate (instantaneous)", "students by teacher (the paper's Fig. 5)")
    figure.tight_layout()
    return figure


def write_plots(folder: Path, groups: list[Group]) -> list[Path]:
    """teachers.png and distill.png in ``folder`` (each only when there are such runs); the paths written."""
    written = []
    for name, figure in ((TEACHERS_PNG, teacher_figure(groups)), (DISTILL_PNG, distill_figure(groups))):
        if figure is not None:
            path = folder / name
            write_atomic(path, lambda file, figure=figure: figure.savefig(file, format="png", dpi=120))
            written.append(path)
    return written


def _plotted(groups: list[Group], command: str) -> list[Group]:
    """The groups of ``command``'s runs, each keeping its runs with at least one iteration (running ones too)."""
    kept = [Group(g.key, tuple(r for r in g.runs if r.command == command and r.iterations)) for g in groups]
    return [group for group in kept if group.runs]


def _band(axis, group: Group, metric: str) -> None:
    """The mean over the group's runs at every env-step any of them logged (each run interpolated
    within its own span, so a shorter run stops adding to the mean where it ends), min-max shaded."""
    steps = np.unique(np.concatenate([run.env_steps for run in group.runs]))
    values = np.full((len(group.runs), len(steps)), np.nan)
    for row, run in zip(values, group.runs):
        inside = (steps >= run.env_steps[0]) & (steps <= run.env_steps[-1])
        row[inside] = np.interp(steps[inside], run.env_steps, getattr(run, metric))
    line = axis.plot(steps, np.nanmean(values, axis=0), label=f"{group.label} ({len(group.runs)} run{'s' * (len(group.runs) > 1)})")[0]
    if len(group.runs) > 1:
        axis.fill_between(steps, np.nanmin(values, axis=0), np.nanmax(values, axis=0), color=line.get_color(), alpha=0.2, linewidth=0)


def _finish(axis, xlabel: str, ylabel: str, title: str, top: float = 1.0) -> None:
    """Labels, and the whole range (0 to ``top``), so that curves of different figures compare by eye."""
    axis.set_ylim(-0.02 * top, 1.02 * top)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(f"{title}; band: min-max over runs")
    axis.legend(fontsize=8)
