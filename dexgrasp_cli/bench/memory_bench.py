"""bench-memory: how many worlds a node holds in each layout, measured where it can be, projected elsewhere.

For each resolution, every role the layouts need (memory_model.LAYOUT_ROLES) runs as trials
(memory_trial.py), each a fresh process doing one full training iteration:

- model mode (any device; the only one on a CPU): trials at ``sizes``; the model is fitted on all
  but the last, which checks it (the residual), and each role's maximum on one GPU is projected;
- measured mode (CUDA): the same model gives a first guess, then a search for the largest count
  whose trial completes within the budget (an out-of-memory failure, or a peak over the budget, does
  not fit), and a check that the maximum fits and the maximum + 10% does not.

The node's capacity per layout follows from the roles' maxima (memory_model.node_capacity).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dexgrasp_cli.bench.memory_model import (
    LAYOUT_ROLES, TRAINING_ROLES, WORLDS_CAP, RoleModel, Trial, fit_role, node_capacity,
)  # fmt: skip
from dexgrasp_cli.bench.memory_search import largest_fitting
from dexgrasp_cli.bench.memory_trial import TrialSpec
from dexgrasp_cli.errors import RunFailed

FORMAT_VERSION = 1
PAPER_NODE = {"gpus": 4, "gpu_memory": "48GB", "gpu": "NVIDIA L40S", "simulator": "Isaac Gym"}
PAPER_TABLE = {  # the paper's Table I: (per GPU, total), depth teacher, horizon 16
    ("160x120", "dp"): (1024, 4096), ("160x120", "disagg"): (2800, 8400),
    ("320x240", "dp"): (256, 1024), ("320x240", "disagg"): (700, 2100),
}  # fmt: skip
PAPER_RATIO = 2800 / 1024
WORLD_PARTS = ("physics", "render", "observations", "experience", "update_batch")
"""The per-world tensors a trial counts (memory_model: a world costs what they hold)."""
CPU_SIZES = (4, 8, 16)
CUDA_SIZES = (64, 128, 256)
VALIDATION_MARGIN = 0.10
SENSITIVITY = 0.10
"""A projection's band: each role's per-world and per-sample bytes scaled by 1 -/+ this (the fit's
tolerance), because a maximum far beyond the trials' sizes can hinge on a few percent of slope."""
CPU_CAVEAT = (
    "Projected from CPU memory: the per-world bytes of simulator data, images, observation and experience "
    "buffers are the same tensors a GPU holds, so they carry over; what a CPU cannot show is the CUDA context "
    "(about 0.5-1 GiB per process), torch's caching allocator (freed blocks stay reserved and fragment, so GPU "
    "peaks run higher), cuDNN's convolution workspaces (they grow with the minibatch), and warp's kernels on a "
    "GPU. Treat these as upper bounds on the worlds a GPU holds; --mode measured on a GPU answers for real."
)


@dataclass(frozen=True)
class MemoryBenchPlan:
    resolutions: tuple[str | None, ...]
    """None: the state teacher, which renders nothing."""
    layouts: tuple[str, ...]
    gpus: int
    gpu_memory: int
    """Bytes each GPU may use."""
    gpu_memory_text: str
    """As the user wrote it, e.g. 48GB."""
    modality: str
    depth_dtype: str
    """How depth is stored (task.cameras.depth_dtype; the caller puts it into task_overrides too)."""
    horizon: int
    minibatch: int
    mode: str
    """measured or model."""
    device: str
    sizes: tuple[int, ...]
    """Model trials' world counts; the last is held out to check the fit."""
    seed: int = 0
    task_overrides: tuple[str, ...] = ()
    train_overrides: tuple[str, ...] = ()

    @property
    def roles(self) -> tuple[str, ...]:
        """Roles with a simulator first: they also tell the learner its observation shapes."""
        wanted = {role for layout in self.layouts for role in LAYOUT_ROLES[layout]}
        return tuple(role for role in ("disagg-replica", "dp-rank", "disagg-learner") if role in wanted)


def trial_minibatch(num_envs: int, horizon: int, minibatch: int) -> int:
    """The largest divisor of the batch (``num_envs * horizon``) not above ``minibatch``: rl-games needs
    the minibatch to divide the batch."""
    batch = num_envs * horizon
    return max(d for d in _divisors(batch) if d <= minibatch)


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return small + [n // d for d in small]


class TrialRunner:
    """Runs trials as fresh processes (``jobs`` at a time on a CPU), keeps every record, shows progress."""

    def __init__(self, plan: MemoryBenchPlan, progress: Progress):
        self.plan, self.progress, self.records = plan, progress, []
        self.jobs = 1 if plan.device.startswith("cuda") else max(1, min(2, os.cpu_count() or 1))
        self._task = progress.add_task("trials", total=0)

    def run(self, specs: list[TrialSpec]) -> list[dict]:
        self.progress.update(self._task, total=self.progress.tasks[self._task].total + len(specs))
        with ThreadPoolExecutor(self.jobs) as pool:
            return list(pool.map(self._run_one, specs))

    def _run_one(self, spec: TrialSpec) -> dict:
        res = f" {spec.resolution}" if spec.modality == "depth" else ""
        self.progress.update(self._task, description=f"{spec.role}{res}, {spec.num_envs:,} worlds")
        env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 1) // self.jobs)))
        done = subprocess.run(spec.command(), capture_output=True, text=True, env=env)
        lines = done.stdout.strip().splitlines()
        try:
            record = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            tail = " | ".join(done.stderr.strip().splitlines()[-3:])
            record = {"spec": dataclasses.asdict(spec), "error": f"trial exited with code {done.returncode}: {tail}",
                      "peak_bytes": 0, "phases": {}, "components": {}, "spaces": None}  # fmt: skip
        record["fits"] = record["error"] is None and (self.plan.mode == "model" or record["peak_bytes"] <= self.plan.gpu_memory)
        self.records.append(record)
        self.progress.advance(self._task)
        return record


def run_memory_bench(plan: MemoryBenchPlan, console: Console) -> dict:
    """Every resolution's roles, models and capacities (see the module docstring)."""
    rows, breakdown, models = [], {}, {}
    with Progress(TextColumn("[bold]bench-memory[/] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:  # fmt: skip
        runner = TrialRunner(plan, progress)
        for resolution in plan.resolutions:
            label = resolution or "state"
            fitted, maxima, spaces, bands = {}, {}, None, {}
            for role in plan.roles:
                base = TrialSpec(role, 1, plan.modality, resolution or "160x120", plan.device, plan.horizon,
                                 plan.minibatch, plan.seed, plan.task_overrides, plan.train_overrides, spaces)  # fmt: skip
                records = runner.run([_sized(base, n, plan) for n in plan.sizes])
                _require_success(records, role, label)
                spaces = spaces or records[0]["spaces"]
                base = replace(base, spaces=spaces)
                fitted[role] = _fit_and_check(role, records, plan)
                model = fitted[role]["model"]
                guess = model.max_worlds(plan.gpu_memory, plan.horizon, plan.minibatch)
                if plan.mode == "measured":
                    maxima[role] = _measured_maximum(runner, base, plan, guess, fitted[role])
                else:
                    maxima[role] = guess
                    bands[role] = _band(model, plan)
            models[label] = {role: _model_summary(entry, maxima[role]) for role, entry in fitted.items()}
            breakdown[label] = {role: _per_world(entry, plan) for role, entry in fitted.items()}
            rows += _rows(resolution, plan, maxima, bands)
    return {
        "benchmark": "memory", "format_version": FORMAT_VERSION,
        "node": {"gpus": plan.gpus, "gpu_memory": plan.gpu_memory_text, "gpu_memory_bytes": plan.gpu_memory, "mode": plan.mode, "device": plan.device,
                 "modality": plan.modality, "horizon": plan.horizon, "minibatch": plan.minibatch,
                 "depth_dtype": plan.depth_dtype, "memory_source": runner.records[0]["memory_source"],
                 "caveat": CPU_CAVEAT if plan.device == "cpu" else None, "paper_node": PAPER_NODE},
        "rows": rows, "breakdown": breakdown, "models": models, "trials": runner.records,
    }  # fmt: skip


def _sized(spec: TrialSpec, num_envs: int, plan: MemoryBenchPlan) -> TrialSpec:
    return replace(spec, num_envs=num_envs, minibatch=trial_minibatch(num_envs, plan.horizon, plan.minibatch))


def _trial(record: dict) -> Trial:
    spec, phases, parts = record["spec"], record["phases"], record["components"]
    training = spec["role"] in TRAINING_ROLES
    rise = phases.get("update_peak", 0) - phases.get("collect", 0) if training else 0
    return Trial(spec["num_envs"], spec["minibatch"] if training else 0, record["peak_bytes"], rise,
                 sum(parts.get(name, 0) for name in WORLD_PARTS), parts.get("update_batch", 0))  # fmt: skip


def _require_success(records: list[dict], role: str, label: str) -> None:
    for record in records:
        if record["error"]:
            raise RunFailed(f"bench-memory {role} {label}, {record['spec']['num_envs']} worlds: {record['error']}")


def _fit_and_check(role: str, records: list[dict], plan: MemoryBenchPlan) -> dict:
    """The model on all sizes but the last, and its error at the last."""
    *fit_on, held_out = records
    model = fit_role(role, [_trial(r) for r in fit_on])
    predicted = model.peak(held_out["spec"]["num_envs"], plan.horizon, held_out["spec"]["minibatch"])
    measured = held_out["peak_bytes"]
    return {"model": model, "records": records, "held_out": {
        "num_envs": held_out["spec"]["num_envs"], "predicted_bytes": predicted, "measured_bytes": measured,
        "relative_error": (predicted - measured) / measured}}  # fmt: skip


def _measured_maximum(runner: TrialRunner, base: TrialSpec, plan: MemoryBenchPlan, guess: int, entry: dict) -> int:
    """The largest count whose trial fits the budget, then the check: it fits, and +10% does not."""
    known = {r["spec"]["num_envs"]: r["fits"] for r in runner.records if r["spec"]["role"] == base.role
             and r["spec"]["resolution"] == base.resolution}  # fmt: skip

    def fits(n: int) -> bool:
        if n not in known:
            known[n] = runner.run([_sized(base, n, plan)])[0]["fits"]
        return known[n]

    best = largest_fitting(fits, WORLDS_CAP, max(guess, 1))
    over = max(best + 1, math.ceil(best * (1 + VALIDATION_MARGIN)))
    entry["validation"] = {"max_fits": fits(best) if best else None, "over": over, "over_fits": fits(over)}
    return best


def _band(model: RoleModel, plan: MemoryBenchPlan) -> tuple[int, int]:
    """The role's projected maximum with its slopes SENSITIVITY larger, and smaller."""
    def scaled(factor: float) -> int:
        slopes = replace(model, per_world_bytes=model.per_world_bytes * factor, per_sample_bytes=model.per_sample_bytes * factor)
        return slopes.max_worlds(plan.gpu_memory, plan.horizon, plan.minibatch)

    return scaled(1 + SENSITIVITY), scaled(1 - SENSITIVITY)


def _model_summary(entry: dict, maximum: int) -> dict:
    model: RoleModel = entry["model"]
    return {"fixed_bytes": model.fixed_bytes, "per_world_bytes": model.per_world_bytes,
            "per_sample_bytes": model.per_sample_bytes, "fitted_on": [r["spec"]["num_envs"] for r in entry["records"][:-1]],
            "held_out": entry["held_out"], "max_worlds_per_gpu": maximum,
            "validation": entry.get("validation")}  # fmt: skip


def _per_world(entry: dict, plan: MemoryBenchPlan) -> dict:
    """Bytes per world of the role's counted tensors (its largest fitted trial), the update's activations
    per world while a batch is one minibatch, and the total."""
    record = entry["records"][-2]
    n, parts = record["spec"]["num_envs"], record["components"]
    model: RoleModel = entry["model"]
    per_world = {name: parts.get(name, 0) / n for name in WORLD_PARTS}
    per_world["update_activations"] = model.per_sample_bytes * plan.horizon
    per_world["total"] = sum(per_world.values())
    return per_world


def _rows(resolution: str | None, plan: MemoryBenchPlan, maxima: dict[str, int], bands: dict) -> list[dict]:
    """The table's rows; a projected row also carries ``band_per_gpu``, its worlds per GPU with every
    slope SENSITIVITY off either way."""
    source = "measured" if plan.mode == "measured" else "projected"
    pixels = math.prod(map(int, resolution.split("x"))) if resolution else None
    rows = []
    for layout in plan.layouts:
        capacity = node_capacity(layout, plan.gpus, maxima)
        paper = PAPER_TABLE.get((resolution, layout)) if plan.modality == "depth" else None
        rows.append({
            "resolution": resolution or "state", "layout": layout, "envs_per_gpu": capacity.envs_per_gpu,
            "envs_total": capacity.envs_total, "paper_envs_per_gpu": paper[0] if paper else None,
            "paper_envs_total": paper[1] if paper else None, "binding": capacity.binding, "sides": capacity.sides,
            "source": source, "measured_on": plan.device,
            "envs_x_pixels_per_gpu": capacity.envs_per_gpu * pixels if pixels else None,
        })  # fmt: skip
        if bands:
            low, high = ({role: band[i] for role, band in bands.items()} for i in (0, 1))
            rows[-1]["band_per_gpu"] = [node_capacity(layout, plan.gpus, ends).envs_per_gpu for ends in (low, high)]
    by_layout = {row["layout"]: row for row in rows}
    if {"dp", "disagg"} <= by_layout.keys():
        dp = by_layout["dp"]["envs_per_gpu"]
        by_layout["disagg"]["ratio_disagg_dp"] = by_layout["disagg"]["envs_per_gpu"] / dp if dp else None
        by_layout["disagg"]["paper_ratio"] = PAPER_RATIO if by_layout["disagg"]["paper_envs_per_gpu"] else None
    return rows

