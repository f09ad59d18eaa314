"""The command line answers help, --version and bad input without loading the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.test_cli import REPO_ROOT

HEAVY = ("torch", "warp", "mujoco", "mujoco_warp", "rl_games")
# Run the console entry, then report its exit code, stderr's last line and the heavy modules loaded.
PROBE = """
import contextlib, io, json, sys
from dexgrasp_cli.app import main
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit as stop:
        code = stop.code
print(json.dumps({"code": code, "err": err.getvalue().strip(), "heavy": sorted(set(sys.modules) & set(HEAVY))}))
"""

QUICK = [
    ["--help"],
    ["train-teacher", "--help"],
    ["distill", "--help"],
    ["eval", "--num-envs", "0"],
    ["eval", "--policy", "foo"],
    ["eval", "--res", "0x120"],
    ["eval", "--set", "task.nope=1"],
    ["eval", "--set", "task.episode_length=abc"],
    ["eval", "--checkpoint", "/nonexistent.pt"],
    ["train-teacher", "--modality", "rgb"],
    ["train-teacher", "--layout", "foo"],
    ["train-teacher", "--set", "train.ppo.gamma=2"],
    ["eval", "--set", "task.physics_dt=0"],
    ["distill", "--teacher", "scripted", "--set", "distill.learning_rate=-1"],
    ["distill", "--teacher", "scripted", "--student", "lidar"],
    ["distill", "--teacher", "missing.pt"],
    ["bench-memory", "--gpu-memory", "lots"],
]


def probe(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{PROBE}", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("args", QUICK, ids=[" ".join(a) for a in QUICK])
def test_help_and_bad_input_load_no_heavy_library(args):
    result = probe(args)
    assert result["heavy"] == [], result
    if "--help" in args:
        assert result["code"] == 0
    else:
        assert result["code"] == 2 and result["err"].startswith("error: ") and "\n" not in result["err"], result


def test_version_is_the_installed_distribution():
    from importlib.metadata import version

    proc = subprocess.run([sys.executable, "-m", "dexgrasp_cli", "--version"], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == f"dexgrasp {version('dexgrasp')}"
