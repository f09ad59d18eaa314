"""Learning evidence (slow, CI skips it): a state teacher on CPU learns to reach within 15 minutes.

Run it with ``.venv/bin/python -m pytest -m slow tests/test_learning.py -s``. The same command by
hand (its curve is in metrics.jsonl):

    dexgrasp train-teacher --modality state --num-envs 64 --max-iterations 1000 --run-dir runs/learning \\
        --set train.networks.state.lstm_units=128 --set train.networks.state.mlp=[128,128] \\
        --set train.networks.critic.lstm_units=128 --set train.networks.critic.mlp=[128,128] \\
        --set train.ppo.learning_rate=3e-4 --set train.ppo.gamma=0.99 \\
        --set train.networks.state.initial_log_std=-1.0

After 14 minutes the test sends SIGTERM, which also checks that a stop saves ``last.pt``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL_STATE_TEACHER = [
    "train.networks.state.lstm_units=128", "train.networks.state.mlp=[128,128]",
    "train.networks.critic.lstm_units=128", "train.networks.critic.mlp=[128,128]",
    "train.ppo.learning_rate=3e-4", "train.ppo.gamma=0.99",
    # Absolute palm-pose actions: a standard deviation of 1 would throw the palm target across the
    # whole workspace every step.
    "train.networks.state.initial_log_std=-1.0",
]  # fmt: skip
BUDGET_S = 14 * 60


@pytest.mark.slow
def test_state_teacher_learns_to_reach_on_cpu(tmp_path):
    run_dir = tmp_path / "learning"
    args = [sys.executable, "-m", "dexgrasp_cli", "train-teacher", "--modality", "state", "--num-envs", "64",
            "--max-iterations", "1000", "--run-dir", str(run_dir)]  # fmt: skip
    for assignment in SMALL_STATE_TEACHER:
        args += ["--set", assignment]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), COLUMNS="120")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < BUDGET_S:
        time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, output[-3000:]
    assert "saved" in output and (run_dir / "checkpoints" / "last.pt").exists()

    curve = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    # All worlds start together, so episodes end in batches; compare whole episodes: the mean
    # return of each reward term over the first batch of finished episodes and over the last.
    batches = [row for row in curve if row["episodes"] >= 32]
    assert len(batches) >= 2, f"only {len(batches)} batches of finished episodes in {len(curve)} iterations"
    first, last = batches[0], batches[-1]
    print(f"\n{len(curve)} iterations, {curve[-1]['env_steps']} env-steps; episode returns per term:")
    for term in ("reach", "lift", "goal", "curl"):
        print(f"  {term}: iteration {first['iteration']} {first['episode_returns'][term]:.3f} -> "
              f"iteration {last['iteration']} {last['episode_returns'][term]:.3f}")  # fmt: skip
    assert last["episode_returns"]["reach"] > 2.0 * first["episode_returns"]["reach"]
