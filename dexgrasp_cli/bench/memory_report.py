"""bench-memory's output: the table beside the paper's, the per-world breakdown, CSV rows and a plot."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from rich.table import Table

from dexgrasp_cli.atomic import write_atomic, write_text_atomic
from dexgrasp_cli.bench.memory_bench import PAPER_NODE, PAPER_RATIO
from dexgrasp_cli.bench.memory_model import RoleModel
from dexgrasp_cli.byte_sizes import format_bytes

CSV_COLUMNS = ("resolution", "layout", "envs_per_gpu", "envs_total", "paper_envs_per_gpu", "paper_envs_total",
               "ratio_disagg_dp", "paper_ratio", "binding", "source", "measured_on", "envs_x_pixels_per_gpu",
               "band_low_per_gpu", "band_high_per_gpu")  # fmt: skip
BREAKDOWN_PARTS = ("physics", "render", "observations", "experience", "update_batch", "update_activations", "total")


def capacity_table(result: dict) -> Table:
    node = result["node"]
    table = Table(title=f"dexgrasp bench-memory: worlds on {node['gpus']} GPUs x {node['gpu_memory']}, "
                        f"{node['modality']} teacher, horizon {node['horizon']}, minibatch {node['minibatch']:,}, "
                        f"depth {node['depth_dtype']}")  # fmt: skip
    banded = any("band_per_gpu" in row for row in result["rows"])
    for name in ("resolution", "layout", "per GPU (paper)", "total (paper)", "disagg/dp (paper)", "Mpx per GPU",
                 "binding", "source") + (("per GPU, slopes ±10%",) if banded else ()):  # fmt: skip
        table.add_column(name, justify="right" if "(" in name or "Mpx" in name else "left", overflow="fold")
    for row in result["rows"]:
        ratio = row.get("ratio_disagg_dp")
        ratios = "" if ratio is None else f"{ratio:.2f}x" + (f" ({row['paper_ratio']:.2f}x)" if row.get("paper_ratio") else "")
        table.add_row(
            row["resolution"], row["layout"], _beside(row["envs_per_gpu"], row["paper_envs_per_gpu"]),
            _beside(row["envs_total"], row["paper_envs_total"]), ratios,
            f"{row['envs_x_pixels_per_gpu'] / 1e6:,.1f}" if row["envs_x_pixels_per_gpu"] else "",
            row["binding"], row["source"],
            *([f"{row['band_per_gpu'][0]:,}-{row['band_per_gpu'][1]:,}"] if banded else []),
        )  # fmt: skip
    table.caption = (
        f"disagg: worlds per simulator GPU (G-1 of them; the learner has the last). Paper: {PAPER_NODE['gpus']} x "
        f"{PAPER_NODE['gpu_memory']} {PAPER_NODE['gpu']}, {PAPER_NODE['simulator']} (ratio {PAPER_RATIO:.2f}x); its "
        f"worlds x pixels per GPU is constant down each column. Memory: {node['memory_source']}, on {node['device']}."
    )
    return table


def breakdown_table(result: dict) -> Table:
    """Bytes per world of each role at each resolution, part by part (one column per role)."""
    columns = [(label, role) for label, roles in result["breakdown"].items() for role in roles]
    table = Table(title="bytes per world (update activations: per world while the batch is one minibatch)")
    table.add_column("", overflow="fold")
    for label, role in columns:
        table.add_column(f"{label} {role.removeprefix('disagg-')}", justify="right", overflow="fold")
    for part in BREAKDOWN_PARTS:
        name = "update batch copy" if part == "update_batch" else part.replace("_", " ")
        table.add_row(name, *(_size(result["breakdown"][label][role][part]) for label, role in columns))
    models = [result["models"][label][role] for label, role in columns]
    table.add_row("fixed (fitted)", *(_size(m["fixed_bytes"]) for m in models))
    table.add_row("fit error", *(f"{m['held_out']['relative_error']:+.1%} at {m['held_out']['num_envs']:,}" for m in models))
    table.caption = ("physics, render, observations, experience, update batch copy: the bytes of those tensors in the "
                     "largest fitted trial, counted. update activations: fitted to the update's rise. fit error: the "
                     "model's prediction of a trial it was not fitted on, against its measured peak.")  # fmt: skip
    return table


def _size(value: float) -> str:
    return format_bytes(value) if value else "-"


def _beside(ours: int, paper: int | None) -> str:
    return f"{ours:,}" + ("" if paper is None else f" ({paper:,})")


def write_csv(path: Path, result: dict) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in result["rows"]:
        low, high = row.get("band_per_gpu") or (None, None)
        writer.writerow(dict(row, band_low_per_gpu=low, band_high_per_gpu=high))
    write_text_atomic(path, text.getvalue())


def write_plot(path: Path, result: dict) -> None:
    """Peak memory against worlds per role and resolution: the trials, the model, the budget, the maxima."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    node, labels = result["node"], list(result["models"])
    budget = node["gpu_memory_bytes"] / 2**30
    figure, axes = plt.subplots(1, len(labels), figsize=(6 * len(labels), 4.5), squeeze=False)
    for axis, label in zip(axes[0], labels):
        for role, summary in result["models"][label].items():
            model = RoleModel(role, summary["fixed_bytes"], summary["per_world_bytes"], summary["per_sample_bytes"])
            trials = [t for t in result["trials"] if t["spec"]["role"] == role and _label(t) == label and t["peak_bytes"]]
            top = max([summary["max_worlds_per_gpu"], *(t["spec"]["num_envs"] for t in trials)]) * 1.3
            xs = sorted({*np.geomspace(1, top, 300).astype(int).tolist(), summary["max_worlds_per_gpu"] or 1})
            line = axis.plot(xs, [model.peak(x, node["horizon"], node["minibatch"]) / 2**30 for x in xs], label=role)[0]
            axis.scatter([t["spec"]["num_envs"] for t in trials], [t["peak_bytes"] / 2**30 for t in trials],
                         color=line.get_color(), marker="o" if node["mode"] == "model" else "x", s=18)  # fmt: skip
            if summary["max_worlds_per_gpu"]:
                axis.axvline(summary["max_worlds_per_gpu"], color=line.get_color(), linestyle=":", linewidth=1)
        axis.axhline(budget, color="black", linestyle="--", linewidth=1, label=f"budget {node['gpu_memory']} ({budget:,.1f} GiB)")
        axis.set_xscale("log")
        axis.set_xlabel("worlds in the process")
        axis.set_ylabel("peak memory (GiB)")
        kind = "measured" if node["mode"] == "measured" else "projected"
        axis.set_title(f"{label}: {kind} from {node['device']} (dotted: each role's maximum)")
        axis.legend(fontsize=8)
    figure.tight_layout()
    write_atomic(path, lambda file: figure.savefig(file, format="png", dpi=120))
    plt.close(figure)


def _label(trial: dict) -> str:
    spec = trial["spec"]
    return spec["resolution"] if spec["modality"] == "depth" else "state"
