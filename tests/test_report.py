"""`dexgrasp report`: run folders written here with known metrics give exactly the expected Table II
figures, statuses, JSON, CSV and plots; bad input is one ``error:`` line with exit code 2."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

import pytest
import yaml

from dexgrasp_cli.report.plots import distill_figure, teacher_figure
from dexgrasp_cli.report.runs import RUNNING_WINDOW_S, read_run
from dexgrasp_cli.report.table import group_runs, parse_group_by
from tests.test_cli import run_cli
from tests.test_cli_startup import probe

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STEPS_PER_ITERATION = 1024


def write_run(folder: Path, *, success: list[float], adr: list[int], max_iterations: int | None = None, seed: int = 0,
              modality: str = "depth", layout: str = "dp", resolution: str = "160x120", episodes: int = 1,
              saved: bool = True, age_s: float = 0.0, teacher: str | None = None, run_dir: str | None = None) -> Path:  # fmt: skip
    """A run folder with the files train-teacher (or, with ``teacher``, distill) writes: one metrics line
    per value of ``success``; ``saved``: checkpoints/last.pt written after the last line, as a run does
    when it ends; ``age_s``: how long ago metrics.jsonl was last written."""
    run = {"num_envs": 64, "device": "cpu", "seed": seed, "max_iterations": max_iterations or len(success),
           "run_dir": run_dir or str(folder), "resume": None, "overrides": [], "layout": layout, "replicas": 1}  # fmt: skip
    task = {"episode_length": 600, "cameras": {"resolution": resolution}, "adr": {"num_levels": 50}}
    if teacher is None:
        config = {"run": {"modality": modality, **run}, "task": task, "train": {"ppo": {"horizon_length": 16}}}
    else:
        config = {"run": {"teacher": teacher, "student": "stereo-rgb", **run, "adr_level": adr[0]}, "task": task, "distill": {}}
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    rows = [{"iteration": i + 1, "env_steps": (i + 1) * STEPS_PER_ITERATION, "success_rate": s, "adr_level": a,
             "episodes": episodes, "episodes_total": (i + 1) * episodes} for i, (s, a) in enumerate(zip(success, adr))]  # fmt: skip
    metrics = folder / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(row) + "\n" for row in rows))
    written = time.time() - age_s
    os.utime(metrics, (written, written))
    if saved:
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / "last.pt").write_bytes(b"")
        os.utime(folder / "checkpoints" / "last.pt", (written + 1, written + 1))
    return folder


def ramp(final_level: int, final_success: float, n: int = 10) -> tuple[list[float], list[int]]:
    """Success 0 for the first half, then ``final_success``; ADR rising to ``final_level`` at the end."""
    return [0.0] * (n // 2) + [final_success] * (n - n // 2), [round(final_level * (i + 1) / n) for i in range(n)]


@pytest.fixture
def table_runs(tmp_path) -> list[Path]:
    """Depth dp 160x120: seeds at full ADR with success 0.5 and 0.3, one at level 25 (success 0.9, not
    in SR). Depth disagg 320x240: no seed reaches full ADR."""
    runs = []
    for seed, (level, success) in enumerate([(50, 0.5), (50, 0.3), (25, 0.9)]):
        s, a = ramp(level, success)
        runs.append(write_run(tmp_path / f"dp_{seed}", success=s, adr=a, seed=seed))
    for seed, level in enumerate([10, 20]):
        s, a = ramp(level, 0.2)
        runs.append(write_run(tmp_path / f"disagg_{seed}", success=s, adr=a, seed=seed, layout="disagg", resolution="320x240"))
    return runs


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # Rich folds cells on narrow consoles; asserts read whole ones


def report_json(args: list[str], tmp_path: Path, capsys) -> tuple[dict, str]:
    path = tmp_path / "out" / "report.json"
    code, out, err = run_cli(["report", *args, "--json", str(path)], capsys)
    assert code == 0, err
    return json.loads(path.read_text()), out


def test_table_ii_figures_per_group(table_runs, tmp_path, capsys):
    result, out = report_json([*map(str, table_runs), "--last", "5"], tmp_path, capsys)
    dp, disagg = sorted(result["groups"], key=lambda g: g["key"]["layout"], reverse=True)
    assert dp["key"] == {"command": "train-teacher", "layout": "dp", "modality": "depth", "resolution": "160x120", "student": None}
    assert dp["seeds"] == 3
    assert dp["adr_inc"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert dp["full_adr_pct"] == pytest.approx(200 / 3)
    assert dp["success_rate"] == pytest.approx(0.4)  # (0.5 + 0.3) / 2: the level-25 seed is not at full ADR
    assert dp["env_steps"] == 10 * STEPS_PER_ITERATION
    assert dp["paper"] == {"adr_inc": 0.38, "full_adr_pct": 20.0, "success_rate": 0.37, "seeds": 5}
    assert [(r["seed"], r["final_adr_level"], r["full_adr"]) for r in dp["runs"]] == [(0, 50, True), (1, 50, True), (2, 25, False)]
    assert disagg["seeds"] == 2 and disagg["adr_inc"] == pytest.approx(0.3) and disagg["full_adr_pct"] == 0.0
    assert disagg["success_rate"] is None
    assert disagg["paper"]["adr_inc"] == 0.90
    assert "0.40 (0.37)" in out and "n/a (0.35)" in out and "67% (20%)" in out


def test_last_n_iterations_make_sr(table_runs, tmp_path, capsys):
    result, _ = report_json([str(table_runs[0]), "--last", "10"], tmp_path, capsys)
    assert result["groups"][0]["success_rate"] == pytest.approx(0.25)  # half the ten iterations at 0.5


def test_group_by_merges_settings(table_runs, tmp_path, capsys):
    result, out = report_json([*map(str, table_runs), "--group-by", "command,modality", "--last", "5"], tmp_path, capsys)
    (group,) = result["groups"]
    assert group["key"] == {"command": "train-teacher", "modality": "depth"}
    assert group["seeds"] == 5
    assert group["adr_inc"] == pytest.approx((1 + 1 + 0.5 + 0.2 + 0.4) / 5)
    assert group["full_adr_pct"] == pytest.approx(40.0) and group["success_rate"] == pytest.approx(0.4)
    assert group["paper"] is None  # two of the paper's settings together are none of them
    assert result["group_by"] == ["command", "modality"]
    assert parse_group_by(" layout , layout") == ("layout",)


def test_unfinished_runs_are_listed_with_their_status_and_not_counted(tmp_path, capsys):
    s, a = ramp(50, 0.6)
    finished = write_run(tmp_path / "finished", success=s, adr=a)
    running = write_run(tmp_path / "running", success=s[:4], adr=a[:4], max_iterations=10, saved=False, seed=1)
    stopped = write_run(tmp_path / "stopped", success=s[:6], adr=a[:6], max_iterations=10, seed=2)  # Ctrl-C: last.pt saved
    crashed = write_run(tmp_path / "crashed", success=s[:6], adr=a[:6], max_iterations=10, saved=False, seed=3,
                        age_s=RUNNING_WINDOW_S + 60)  # fmt: skip
    empty = write_run(tmp_path / "empty", success=[0.0] * 10, adr=[0] * 10, episodes=0, seed=4)
    result, out = report_json([*(str(p) for p in (finished, running, stopped, crashed, empty)), "--last", "5"], tmp_path, capsys)
    (group,) = result["groups"]
    runs = {Path(r["run_dir"]).name: r for r in group["runs"]}
    assert {name: (r["status"], r["counted"]) for name, r in runs.items()} == {
        "finished": ("finished", True), "running": ("running", False), "stopped": ("stopped early", False),
        "crashed": ("stopped early", False), "empty": ("finished", False),
    }  # fmt: skip
    assert runs["running"]["iterations"] == 4 and runs["empty"]["episodes"] == 0
    assert group["seeds"] == 1 and group["adr_inc"] == 1.0 and group["success_rate"] == pytest.approx(0.6)
    assert group["run_statuses"] == {"finished": 2, "running": 1, "stopped early": 2}
    assert "2 finished, 2 stopped early, 1 running" in out
    assert "no: running" in out and "no: stopped early" in out and "no: no episodes yet" in out


def test_csv_has_one_row_per_group(table_runs, tmp_path, capsys):
    path = tmp_path / "report.csv"
    code, _, err = run_cli(["report", *map(str, table_runs), "--last", "5", "--csv", str(path)], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(path.open()))
    assert [(r["layout"], r["resolution"], r["seeds"]) for r in rows] == [("disagg", "320x240", "2"), ("dp", "160x120", "3")]
    assert rows[0]["success_rate"] == "" and rows[0]["paper_success_rate"] == "0.35"
    assert float(rows[1]["success_rate"]) == pytest.approx(0.4) and float(rows[1]["adr_inc"]) == pytest.approx(2.5 / 3)
    assert rows[1]["run_statuses"] == "3 finished"


def distill_runs(tmp_path: Path) -> list[Path]:
    """Students of a depth and of a state teacher, two seeds each, and one of the scripted grasp."""
    runs = []
    for modality in ("depth", "state"):
        teacher = write_run(tmp_path / f"teacher_{modality}", success=[0.5], adr=[50], modality=modality)
        for seed in range(2):
            runs.append(write_run(tmp_path / f"student_{modality}_{seed}", success=[0.1 * seed, 0.2, 0.3 + 0.1 * seed], adr=[50] * 3,
                                  seed=seed, resolution="320x240", teacher=str(teacher / "checkpoints" / "best.pt")))  # fmt: skip
    runs.append(write_run(tmp_path / "student_scripted", success=[0.1, 0.2, 0.3], adr=[0] * 3, teacher="scripted"))
    return runs


def test_distill_runs_are_grouped_by_teacher_modality(tmp_path, capsys):
    result, _ = report_json([str(p) for p in distill_runs(tmp_path)], tmp_path, capsys)
    keys = [(g["key"]["command"], g["key"]["modality"], g["key"]["student"], g["seeds"]) for g in result["groups"]]
    assert keys == [("distill", "depth", "stereo-rgb", 2), ("distill", "scripted", "stereo-rgb", 1), ("distill", "state", "stereo-rgb", 2)]
    assert result["groups"][0]["success_rate"] == pytest.approx(((0.0 + 0.2 + 0.3) / 3 + (0.1 + 0.2 + 0.4) / 3) / 2)
    assert result["groups"][1]["success_rate"] is None  # the scripted student ran at ADR level 0


def test_relative_teacher_path_is_found_from_the_recorded_run_dir(tmp_path, monkeypatch):
    write_run(tmp_path / "runs" / "teacher_state", success=[0.5], adr=[0], modality="state")
    student = write_run(tmp_path / "runs" / "student", success=[0.5], adr=[0], teacher="runs/teacher_state/checkpoints/best.pt",
                        run_dir="runs/student")  # fmt: skip
    lost = write_run(tmp_path / "lost", success=[0.5], adr=[0], teacher="nowhere/checkpoints/best.pt")
    monkeypatch.chdir(tmp_path / "lost")  # neither teacher is found from here
    assert read_run(student).modality == "state"
    assert read_run(lost).modality == "unknown"


def test_resumed_iterations_replace_earlier_lines_and_a_partial_line_is_ignored(tmp_path):
    folder = write_run(tmp_path / "run", success=[0.1] * 6, adr=[0] * 6, max_iterations=10)
    again = [{"iteration": i, "env_steps": i * 1024, "success_rate": 0.9, "adr_level": 1, "episodes": 1, "episodes_total": i}
             for i in (4, 5)]  # fmt: skip
    with (folder / "metrics.jsonl").open("a") as f:
        f.write("".join(json.dumps(row) + "\n" for row in again) + '{"iteration": 6, "env_st')
    run = read_run(folder)
    assert run.iterations == (1, 2, 3, 4, 5) and run.success_rate[-2:] == (0.9, 0.9) and run.episodes == 5


def test_plots_are_pngs_with_labelled_axes_and_one_line_per_group(table_runs, tmp_path, capsys):
    students = distill_runs(tmp_path / "distill")
    plots = tmp_path / "plots"
    code, out, err = run_cli(["report", *map(str, table_runs + students), "--plot-dir", str(plots)], capsys)
    assert code == 0, err
    for name in ("teachers.png", "distill.png"):
        assert (plots / name).read_bytes()[:8] == PNG_SIGNATURE
        assert f"wrote {plots / name}" in out
    runs = [read_run(p) for p in table_runs + students]
    groups = group_runs(runs, parse_group_by("command,layout,modality,resolution,student"))
    teachers = teacher_figure(groups)
    assert len(teachers.axes) == 2
    for axis in teachers.axes:
        assert axis.get_xlabel() == "env-steps" and axis.get_ylabel()
        assert len(axis.get_lines()) == 2 and len(axis.get_legend().get_texts()) == 2
    (axis,) = distill_figure(groups).axes
    assert axis.get_xlabel() == "distillation env-steps" and "success" in axis.get_ylabel()
    assert [t.get_text() for t in axis.get_legend().get_texts()] == [
        "distill dp depth teacher 320x240 stereo-rgb student (2 runs)",
        "distill dp scripted teacher 160x120 stereo-rgb student (1 run)",
        "distill dp state teacher 320x240 stereo-rgb student (2 runs)",
    ]


def test_report_loads_no_heavy_library(table_runs, tmp_path):
    result = probe(["report", str(table_runs[0]), "--plot-dir", str(tmp_path / "plots")])
    assert result["code"] == 0 and result["heavy"] == [], result


@pytest.mark.parametrize(
    "args, needle",
    [([], "no run folders"), (["{empty}"], "not a run folder"), (["{config_only}"], "metrics.jsonl"),
     (["{run}", "--group-by", "nonsense"], "'nonsense'; accepted: a comma-separated list of command, layout"),
     (["{run}", "--group-by", ","], "--group-by"), (["{run}", "--last", "0"], "--last")],
    ids=["no folders", "not a run", "no metrics", "unknown key", "no key", "last 0"],
)  # fmt: skip
def test_bad_input_is_one_error_line(args, needle, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "config_only").mkdir()
    (tmp_path / "config_only" / "config.yaml").write_text("run: {}\n")
    run = write_run(tmp_path / "run", success=[0.1], adr=[0])
    paths = {"empty": tmp_path / "empty", "config_only": tmp_path / "config_only", "run": run}
    code, out, err = run_cli(["report", *(a.format(**paths) for a in args)], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
