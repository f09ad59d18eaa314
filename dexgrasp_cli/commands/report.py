"""`dexgrasp report`: train-teacher and distill run folders gathered into the paper's Table II and Fig. 5."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from dexgrasp_cli.checks import check_at_least_one, check_folder, check_output, write_json
from dexgrasp_cli.commands.options import JsonOption
from dexgrasp_cli.errors import UsageError
from dexgrasp_cli.report.runs import FINISHED, STATUS_RULE, read_run
from dexgrasp_cli.report.table import (
    DEFAULT_GROUP_BY,
    GROUP_KEYS,
    group_runs,
    group_summary,
    parse_group_by,
    report_table,
    runs_table,
    write_csv,
)


def report_command(
    run_dirs: Annotated[
        Optional[list[Path]],
        typer.Argument(metavar="RUN_DIR", show_default=False, help="train-teacher or distill run folders (config.yaml, metrics.jsonl)."),
    ] = None,
    group_by: Annotated[
        str,
        typer.Option(metavar="KEYS", help=f"Comma-separated keys to group runs by (seeds are the replicates): {', '.join(GROUP_KEYS)}; "
                                          "a distill run's modality is its teacher's."),
    ] = ",".join(DEFAULT_GROUP_BY),
    last: Annotated[
        int, typer.Option(metavar="N", help="SR: each run's success_rate averaged over its last N iterations.")
    ] = 20,
    json_path: JsonOption = None,
    csv_path: Annotated[
        Optional[Path], typer.Option("--csv", metavar="PATH", help="Also write one row per group as CSV (atomically; n/a is an empty cell).")
    ] = None,
    plot_dir: Annotated[
        Optional[Path],
        typer.Option("--plot-dir", metavar="DIR", help="Also plot each group's success and ADR level against env-steps (teachers.png) "
                                                       "and its students' success (distill.png)."),
    ] = None,
) -> None:
    """The paper's Table II from run folders, one row per setting over its seeds: ADR Inc. (mean final ADR level /
    task.adr.num_levels), % Full ADR (share of seeds at the final level) and SR (mean success rate of the seeds at
    full ADR; n/a, null in JSON, when no seed got there), beside the paper's where a row is one of its settings.
    Only finished runs with episodes count; every run is listed with its status. Status: finished, running or
    stopped early (finished: max_iterations reached; running: no checkpoints/last.pt saved since the last metrics
    line and metrics.jsonl written in the last 10 minutes; stopped early: any other)."""
    if not run_dirs:
        raise UsageError("no run folders given; accepted: one or more train-teacher or distill --run-dir folders")
    keys = parse_group_by(group_by)
    check_at_least_one("--last", last)
    for path, option in ((json_path, "--json"), (csv_path, "--csv")):
        check_output(path, option)
    unique = list({path.resolve(): path for path in run_dirs}.values())
    runs = [read_run(path) for path in unique]
    check_folder("--plot-dir", plot_dir)

    groups = group_runs(runs, keys)
    summaries = [group_summary(group, last) for group in groups]
    console = Console()
    console.print(report_table(summaries, keys, last))
    console.print(runs_table(summaries, last))
    if any(run.status != FINISHED for run in runs):
        console.print(f"status: {STATUS_RULE}")
    if json_path is not None:
        write_json(json_path, {"group_by": list(keys), "last": last, "groups": summaries})
        console.print(f"wrote {json_path}")
    if csv_path is not None:
        write_csv(csv_path, summaries, keys)
        console.print(f"wrote {csv_path}")
    if plot_dir is not None:
        from dexgrasp_cli.report.plots import write_plots

        for path in write_plots(plot_dir, groups):
            console.print(f"wrote {path}")
