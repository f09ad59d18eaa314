"""train-teacher and eval --checkpoint at tiny sizes: files written, resume, rl-games' own player."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from rl_games.algos_torch.players import PpoPlayerContinuous
from rl_games.common.gym_compat import spaces
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dexgrasp_cli.learner.agent import ACCEPTED_MODEL
from dexgrasp_cli.learner.checkpoint import load_checkpoint
from dexgrasp_cli.learner.networks import register_networks
from dexgrasp_cli.learner.policy import CheckpointPolicy
from tests.test_cli import REPO_ROOT, run_cli

TINY = [
    "train.networks.depth.filters=[4,4,4,4]", "train.networks.depth.lstm_units=16",
    "train.networks.depth.lstm_layers=1", "train.networks.depth.mlp=[16]",
    "train.networks.state.lstm_units=16", "train.networks.state.mlp=[16]",
    "train.networks.critic.lstm_units=16", "train.networks.critic.mlp=[16]",
    "train.ppo.horizon_length=8", "train.ppo.seq_length=4", "train.run.save_every=1",
    # ADR climbs one level per iteration, so resume has a level to keep.
    "task.adr.success_threshold=-1.0", "task.adr.min_steps_between_changes=1",
]  # fmt: skip
TINY_ARGS = [arg for assignment in TINY for arg in ("--set", assignment)]


def train(run_dir, modality: str, iterations: int, capsys, *extra: str) -> tuple[int, str, str]:
    args = ["train-teacher", "--modality", modality, "--res", "32x24", "--num-envs", "4",
            "--max-iterations", str(iterations), "--run-dir", str(run_dir), *TINY_ARGS, *extra]  # fmt: skip
    return run_cli(args, capsys)


@pytest.fixture(scope="module")
def depth_run(tmp_path_factory):
    """A 2-iteration depth teacher, trained once for the tests that read it."""
    run_dir = tmp_path_factory.mktemp("depth_run")
    capsys = _NoCapture()
    code, _, _ = train(run_dir, "depth", 2, capsys)
    assert code == 0
    return run_dir


class _NoCapture:
    def readouterr(self):
        return "", ""


@pytest.mark.parametrize("modality", ["state", "depth"])
def test_train_writes_config_checkpoints_metrics_and_events(modality, tmp_path, capsys, depth_run):
    run_dir = depth_run if modality == "depth" else tmp_path / "run"
    if modality == "state":
        code, _, err = train(run_dir, "state", 2, capsys)
        assert code == 0, err
    assert sorted(path.name for path in run_dir.iterdir()) == ["checkpoints", "config.yaml", "metrics.jsonl", "summaries"]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["run"]["modality"] == modality and config["task"]["cameras"]["resolution"] == "32x24"
    assert config["train"]["networks"]["critic"]["lstm_units"] == 16
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in lines] == [1, 2]
    assert [m["adr_level"] for m in lines] == [1, 2]
    assert all(np.isfinite(m["env_steps_per_s"]) and set(m["reward_terms"]) == {"reach", "goal", "lift", "curl"}
               for m in lines)  # fmt: skip
    for name in ("last.pt", "best.pt", "iter_000002.pt"):
        state = load_checkpoint(run_dir / "checkpoints" / name)
        assert state["dexgrasp"]["modality"] == modality
    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 2 and last["dexgrasp"]["adr"]["level"] == 2
    assert {"model", "optimizer", "frame", "assymetric_vf_nets"} <= set(last)

    events = EventAccumulator(str(run_dir / "summaries"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    expected = {"dexgrasp/success_rate", "dexgrasp/adr_level", "dexgrasp/env_steps_per_s", "losses/a_loss",
                "losses/c_loss"} | {f"reward_terms/{t}" for t in ("reach", "goal", "lift", "curl")}  # fmt: skip
    assert expected <= tags
    assert [e.value for e in events.Scalars("dexgrasp/adr_level")] == [1.0, 2.0]


def test_resume_continues_iteration_adr_and_optimizer(depth_run, tmp_path, capsys):
    saved = load_checkpoint(depth_run / "checkpoints" / "last.pt")
    resumed_dir = tmp_path / "resumed"
    code, _, err = train(resumed_dir, "depth", 3, capsys, "--resume", str(depth_run / "checkpoints" / "last.pt"))
    assert code == 0, err
    lines = [json.loads(line) for line in (resumed_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(m["iteration"], m["adr_level"]) for m in lines] == [(3, 3)]
    state = load_checkpoint(resumed_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 3 and state["frame"] == saved["frame"] + 4 * 8
    # Adam's step count continues from the saved optimizer instead of restarting at 0.
    steps = [s["step"] for s in state["optimizer"]["state"].values()]
    saved_steps = [s["step"] for s in saved["optimizer"]["state"].values()]
    assert all(float(a) > float(b) > 0 for a, b in zip(steps, saved_steps))


@pytest.mark.parametrize("schedule, rates", [("none", [1e-3, 1e-3]), ("linear", [1e-6 + (1e-3 - 1e-6) / 2, 1e-6])])
def test_lr_schedule_none_keeps_the_rate_and_linear_lowers_it_to_max_iterations(schedule, rates, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = train(run_dir, "state", 2, capsys, "--set", "train.ppo.learning_rate=1e-3",
                         "--set", f"train.ppo.lr_schedule={schedule}")  # fmt: skip
    assert code == 0, err
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["learning_rate"] for m in lines] == pytest.approx(rates)
    assert load_checkpoint(run_dir / "checkpoints" / "last.pt")["dexgrasp"]["last_lr"] == pytest.approx(rates[-1])


def test_eval_reads_the_checkpoint_and_writes_json(depth_run, tmp_path, capsys):
    out = tmp_path / "eval.json"
    code, _, err = run_cli(["eval", "--checkpoint", str(depth_run / "checkpoints" / "last.pt"), "--num-envs", "2",
                            "--episodes", "2", "--adr-level", "checkpoint", "--set", "task.episode_length=10",
                            "--json", str(out)], capsys)  # fmt: skip
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["policy"] == "depth teacher" and result["adr_level"] == 2 and result["episodes"] >= 2
    assert 0.0 <= result["success_rate_instantaneous"] <= 1.0


def test_rl_games_player_loads_the_checkpoint(depth_run):
    path = depth_run / "checkpoints" / "last.pt"
    state = load_checkpoint(path)
    policy = state["dexgrasp"]["policy"]
    register_networks()
    observation_space = spaces.Dict({
        key: spaces.Box(-np.inf, np.inf, tuple(shape), dtype=np.float16 if key == "depth" else np.float32)
        for key, shape in policy["input_shape"].items()
    })  # fmt: skip
    env_info = {"observation_space": observation_space, "action_space": spaces.Box(-1, 1, (policy["actions_num"],)), "agents": 1}
    from rl_games.algos_torch import model_builder

    params = {"algo": {"name": "a2c_continuous"}, "model": {"name": ACCEPTED_MODEL}, "network": policy["network"]}
    config = {"env_name": "dexgrasp", "env_info": env_info, "device_name": "cpu", "normalize_input": False,
              "normalize_value": True, "player": {"deterministic": True},
              "network": model_builder.ModelBuilder().load(params)}  # fmt: skip
    player = PpoPlayerContinuous(dict(params, config=config))
    player.restore(str(path))
    player.batch_size, player.has_batch_dimension = 3, True
    player.init_rnn()

    gen = torch.Generator().manual_seed(0)
    obs = {key: torch.rand(3, *shape, generator=gen) for key, shape in policy["input_shape"].items()}
    obs["depth"] = obs["depth"].half()
    ours = CheckpointPolicy(state, 3, torch.device("cpu"))
    for _ in range(3):  # the LSTM memory carries over steps in both
        torch.testing.assert_close(player.get_action(obs, is_deterministic=True), ours(obs), rtol=0, atol=1e-6)


@pytest.mark.parametrize("extra, names", [
    (["--modality", "state"], "depth teacher"),
    (["--res", "64x48"], "32x24"),
    (["--set", "train.networks.critic.lstm_units=32"], "train.networks.critic"),
    (["--set", "task.actions.space=joint_deltas"], "task.actions.space=palm_pose"),
    (["--num-envs", "8"], "trained 4 worlds in all (single layout); this run has --num-envs 8"),
    (["--num-envs", "8", "--layout", "disagg", "--replicas", "2"], "this run has --num-envs 8"),
    (["--num-envs", "2", "--layout", "dp", "--replicas", "2"], "this run has --num-envs 2"),
])  # fmt: skip
def test_resume_refuses_another_modality_resolution_action_space_network_or_batch(depth_run, extra, names, capsys, monkeypatch):
    monkeypatch.setattr("dexgrasp_tasks.dextrah.env.DextrahEnv.__init__", _refuse)
    args = ["train-teacher", "--modality", "depth", "--res", "32x24", "--num-envs", "4", "--resume",
            str(depth_run / "checkpoints" / "last.pt"), *TINY_ARGS, *extra]  # fmt: skip
    code, _, err = run_cli(args, capsys)
    assert code == 2 and names in err and err.count("\n") == 1


def test_a_new_run_never_overwrites_an_earlier_one(depth_run, capsys, monkeypatch):
    monkeypatch.setattr("dexgrasp_tasks.dextrah.env.DextrahEnv.__init__", _refuse)
    before = (depth_run / "metrics.jsonl").read_text()
    code, _, err = train(depth_run, "depth", 5, capsys)
    assert code == 2 and "--resume" in err and (depth_run / "metrics.jsonl").read_text() == before


def test_a_checkpoint_of_another_format_version_is_one_line(depth_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dexgrasp_tasks.dextrah.env.DextrahEnv.__init__", _refuse)
    state = load_checkpoint(depth_run / "checkpoints" / "last.pt")
    state["dexgrasp"]["format_version"] = 1
    old = tmp_path / "old.pt"
    torch.save(state, old)
    for command in (["eval", "--checkpoint", str(old)], ["train-teacher", "--resume", str(old)]):
        code, _, err = run_cli(command, capsys)
        assert code == 2 and err.count("\n") == 1 and "format version 1" in err, err


def _refuse(*args, **kwargs):
    raise AssertionError("bad input must be rejected before the env is built")


def test_buffer_bytes_differ_by_exactly_the_depth_halving():
    from dexgrasp_cli.bench.training import experience_buffer_bytes

    n, t, w, h = 64, 16, 160, 120
    env_info = {
        "observation_space": spaces.Dict({"proprio": spaces.Box(-np.inf, np.inf, (90,), dtype=np.float32)}),
        "state_space": spaces.Box(-np.inf, np.inf, (260,), dtype=np.float32),
        "action_space": spaces.Box(-1.0, 1.0, (11,), dtype=np.float32), "agents": 1, "value_size": 1,
    }  # fmt: skip
    fp16 = experience_buffer_bytes(n, t, w, h, np.float16, env_info)
    fp32 = experience_buffer_bytes(n, t, w, h, np.float32, env_info)
    assert fp32 - fp16 == n * t * w * h * 2  # depth is the only float16 tensor
    assert fp16 > n * t * w * h * 2  # and the buffer holds it, plus the rest


def test_bench_train_end_to_end(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code, _, err = run_cli(["bench-train", "--num-envs", "4", "--iterations", "1", "--modality", "state",
                            "--layout", "single", "--layout", "disagg", "--json", str(out), *TINY_ARGS], capsys)  # fmt: skip
    assert code == 0, err
    result = json.loads(out.read_text())
    rows = result["results"]
    assert [(r["layout"], r["replicas"], r["modality"]) for r in rows] == [("single", 1, "state"), ("disagg", 2, "state")]
    assert all(r["env_steps_per_s"] > 0 and r["env_steps_per_iteration"] == 4 * 8 for r in rows)
    assert rows[0]["ratio_to_single"] == 1.0 and rows[1]["ratio_to_single"] > 0
    assert all(0 <= r["overhead_share"] < 1 and 0 < r["sim_step_s"] <= r["obs_wait_s"] for r in rows)
    assert result["buffer"]["float32_bytes"] > 1.9 * result["buffer"]["float16_bytes"]


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path):
    """The real console entry in a subprocess: SIGINT after the first iteration."""
    run_dir = tmp_path / "interrupted"
    args = [sys.executable, "-m", "dexgrasp_cli", "train-teacher", "--modality", "state", "--num-envs", "4",
            "--max-iterations", "1000", "--run-dir", str(run_dir), *TINY_ARGS]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.exists() and metrics.read_text()) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-3000:]
    assert "Traceback" not in output and f"saved {run_dir / 'checkpoints' / 'last.pt'}" in output
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == len(metrics.read_text().splitlines()) < 1000
