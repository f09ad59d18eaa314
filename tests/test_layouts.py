"""The disaggregated and data-parallel layouts against the single one, over gloo on the loopback address.

Every process is a real one: spawned ranks for the transport and data-parallel checks, and
``python -m dexgrasp_cli train-teacher --layout ...`` (dexgrasp's own launcher, or torchrun) for the
rest, as users run it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dexgrasp_cli.learner.checkpoint import load_checkpoint
from dexgrasp_cli.learner.rollout_stats import EPISODE_KEYS, RolloutStats
from tests.test_cli import REPO_ROOT
from tests.test_train_teacher import TINY_ARGS

NUM_ENVS, REPLICAS = 8, 2
TOLERANCE = 1e-5  # that of the global-index test (tests/test_env.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dexgrasp(*args: str) -> list[str]:
    return [sys.executable, "-m", "dexgrasp_cli", *args]


def command_env() -> dict:
    """One torch thread in every process, so that learners in any layout reduce in the same order."""
    return dict(os.environ, PYTHONPATH=str(REPO_ROOT), COLUMNS="200", OMP_NUM_THREADS="1")


def train_args(run_dir: Path, layout: str, *extra: str, modality: str = "state", iterations: int = 2,
               replicas: int | None = REPLICAS, res: str = "32x24") -> list[str]:  # fmt: skip
    """A tiny teacher's command line; ``replicas`` None leaves K to the world size (torchrun)."""
    args = ["train-teacher", "--modality", modality, "--num-envs", str(NUM_ENVS), "--max-iterations", str(iterations),
            "--seed", "3", "--run-dir", str(run_dir), "--layout", layout, *TINY_ARGS, *extra]  # fmt: skip
    if modality == "depth":
        args += ["--res", res]
    if layout != "single" and replicas is not None:
        args += ["--replicas", str(replicas)]
    return args


def run(args: list[str], cwd: Path, timeout: float = 420) -> subprocess.CompletedProcess:
    return subprocess.run(dexgrasp(*args), cwd=cwd, env=command_env(), capture_output=True, text=True, timeout=timeout)


def metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def assert_same_learning(a: dict, b: dict, rel: float = 1e-4) -> None:
    """Losses and reward terms of two metrics lines agree to ``rel``."""
    pairs = [(f"losses.{k}", a["losses"][k], b["losses"][k]) for k in a["losses"]]
    pairs += [(f"reward_terms.{k}", a["reward_terms"][k], b["reward_terms"][k]) for k in a["reward_terms"]]
    pairs += [(key, a[key], b[key]) for key in ("success_rate", "reward_per_step", "env_steps", "adr_level")]
    for name, x, y in pairs:
        assert x == pytest.approx(y, rel=rel, abs=1e-12), f"{name}: {x} vs {y}"


# ---------------------------------------------------------------------- the wire, step for step
def _short_settings():
    from dexgrasp_cli.config import load_task_settings

    return dataclasses.replace(load_task_settings().with_camera_resolution("32x24"), episode_length=5)


def _drive(venv) -> dict:
    """The same commands for a remote and a local vecenv; everything they return, cloned."""
    clone = lambda o: {"obs": {k: v.clone() for k, v in o["obs"].items()}, "states": o["states"].clone()}  # noqa: E731
    record = {"reset": clone(venv.reset()), "steps": []}
    venv.stagger_episode_ends()
    gen = torch.Generator().manual_seed(11)
    for t in range(12):
        if t == 6:
            venv.set_adr_level(25)  # the learner's level reaches every world from the next step on
        obs, rewards, dones, infos = venv.step(torch.rand(venv.num_envs, 11, generator=gen) * 2 - 1)
        record["steps"].append((clone(obs), rewards.clone(), dones.clone(), infos["time_outs"].clone()))
    record["stats"] = venv.pop_stats().vector
    record["episode_index"] = venv.state_dict()["episode_index"]
    return record


def _wire_rank(rank: int, port: int, out: Path) -> None:
    from dexgrasp_cli.layouts.handshake import Hello, exchange
    from dexgrasp_cli.layouts.remote_vecenv import RemoteVecEnv
    from dexgrasp_cli.layouts.replica import serve_replica
    from dexgrasp_cli.layouts.topology import Topology
    from dexgrasp_cli.learner.trainer import TrainOptions, local_vecenv

    world = REPLICAS + 1
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))  # fmt: skip
    dist.init_process_group("gloo")
    topology = Topology.from_environment("disagg")
    options = TrainOptions("depth", NUM_ENVS, "cpu", 3, 1, out, None, (), "disagg", REPLICAS)
    if rank < REPLICAS:
        serve_replica(local_vecenv(_short_settings(), options, *topology.worlds(NUM_ENVS)), topology)
    else:
        hellos, plan = exchange(topology, Hello.of_this_process(topology, "cpu"))
        venv = RemoteVecEnv(hellos[:REPLICAS], "cpu", plan.wire_device)
        torch.save(_drive(venv), out / "remote.pt")
        venv.close()
    dist.destroy_process_group()


def test_replicas_stream_what_one_env_of_all_worlds_returns(tmp_path):
    """Two replicas of 4 worlds behind a RemoteVecEnv against one LocalVecEnv of 8: observations
    (depth included), rewards, dones, time-outs, statistics and episode counters, step for step."""
    from dexgrasp_cli.learner.trainer import TrainOptions, local_vecenv

    mp.spawn(_wire_rank, args=(free_port(), tmp_path), nprocs=REPLICAS + 1)
    remote = torch.load(tmp_path / "remote.pt")
    options = TrainOptions("depth", NUM_ENVS, "cpu", 3, 1, tmp_path, None, ())
    local = _drive(local_vecenv(_short_settings(), options))

    largest = 0.0

    def same(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
        nonlocal largest
        assert a.dtype == b.dtype and a.shape == b.shape, what
        torch.testing.assert_close(a.double(), b.double(), rtol=0, atol=TOLERANCE, msg=what)
        largest = max(largest, (a.double() - b.double()).abs().max().item())

    for key in ("depth", "proprio"):
        same(remote["reset"]["obs"][key], local["reset"]["obs"][key], f"reset {key}")
    assert remote["reset"]["obs"]["depth"].dtype == torch.float16
    for t, (r, l) in enumerate(zip(remote["steps"], local["steps"])):
        for key in ("depth", "proprio"):
            same(r[0]["obs"][key], l[0]["obs"][key], f"step {t} {key}")
        same(r[0]["states"], l[0]["states"], f"step {t} critic")
        for i, name in enumerate(("rewards", "dones", "time_outs"), start=1):
            same(r[i], l[i], f"step {t} {name}")
    assert any(step[2].any() for step in local["steps"]), "5-step episodes end within 12 steps"
    print(f"replicas vs one env: largest difference over 12 steps {largest:g}")
    r, l = RolloutStats(remote["stats"]), RolloutStats(local["stats"])
    assert (r.env_steps, r.episodes, r.success_fraction) == (l.env_steps, l.episodes, l.success_fraction)
    for key in EPISODE_KEYS:
        assert r.episode_mean(key) == pytest.approx(l.episode_mean(key), rel=1e-6, abs=1e-9), key
    assert r.reward_term_means() == pytest.approx(l.reward_term_means(), rel=1e-6)
    assert torch.equal(remote["episode_index"], local["episode_index"])


# ---------------------------------------------------------------------- train-teacher: single vs disagg
@pytest.fixture(scope="module")
def equivalent_runs(tmp_path_factory):
    """A depth teacher on 8 worlds, seed 3, 2 iterations: single, and disagg with 2 replicas."""
    folder = tmp_path_factory.mktemp("equivalent")
    for layout in ("single", "disagg"):
        done = run(train_args(folder / layout, layout, modality="depth"), folder)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return folder


def test_disagg_learns_exactly_what_single_learns(equivalent_runs):
    single, disagg = metrics(equivalent_runs / "single"), metrics(equivalent_runs / "disagg")
    assert len(single) == len(disagg) == 2
    for a, b in zip(single, disagg):
        assert_same_learning(a, b)
    assert disagg[0]["env_steps"] == NUM_ENVS * 8  # horizon 8 over the global batch
    saved = {name: load_checkpoint(equivalent_runs / name / "checkpoints" / "last.pt") for name in ("single", "disagg")}
    config = saved["disagg"]["dexgrasp"]["config"]["run"]
    assert (config["layout"], config["replicas"], config["num_envs"]) == ("disagg", REPLICAS, NUM_ENVS)
    # With one thread in each learner both reduce in the same order: the weights are the same bits.
    for name, weights in saved["single"]["model"].items():
        assert torch.equal(weights, saved["disagg"]["model"][name]), name
    assert torch.equal(saved["single"]["dexgrasp"]["episode_index"], saved["disagg"]["dexgrasp"]["episode_index"])


def test_a_run_resumes_in_another_layout_with_the_same_global_batch(equivalent_runs):
    """disagg's last.pt resumed as single equals single's resumed as single, and the reverse."""
    folder = equivalent_runs
    for source, layout in (("disagg", "single"), ("single", "single"), ("single", "disagg")):
        resume = ["--resume", str(folder / source / "checkpoints" / "last.pt")]
        done = run(train_args(folder / f"{source}-as-{layout}", layout, *resume, modality="depth", iterations=3), folder)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    resumed = {name: metrics(folder / name) for name in ("disagg-as-single", "single-as-single", "single-as-disagg")}
    assert all([m["iteration"] for m in lines] == [3] for lines in resumed.values())
    assert_same_learning(resumed["disagg-as-single"][0], resumed["single-as-single"][0])
    assert_same_learning(resumed["single-as-disagg"][0], resumed["single-as-single"][0])


# ---------------------------------------------------------------------- data parallelism
def _dp_rank(rank: int, port: int, run_dir: Path, out: Path) -> None:
    """A dp rank as torchrun starts one, recording its weights and ADR level after every iteration."""
    from dexgrasp_cli import app
    from dexgrasp_cli.learner import trainer
    from dexgrasp_tasks.dextrah.adr import ADR

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(REPLICAS),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(REPLICAS))  # fmt: skip
    if rank != 0:  # the level must come from rank 0
        ADR.update = _only_rank_0_decides
    seen, iteration = [], trainer._iteration

    def recording(agent, vecenv, adr, group):
        result = iteration(agent, vecenv, adr, group)
        weights = torch.cat([p.detach().flatten() for p in agent.model.parameters()])
        critic = torch.cat([p.detach().flatten() for p in agent.central_value_net.model.parameters()])
        seen.append({"weights": weights, "critic": critic, "adr_level": adr.level, "env_steps": result["env_steps"]})
        return result

    trainer._iteration = recording
    with pytest.raises(SystemExit) as end:
        app.main(train_args(run_dir, "dp", iterations=3))
    torch.save({"code": end.value.code, "seen": seen}, out / f"rank{rank}.pt")


def _only_rank_0_decides(*args, **kwargs):
    raise AssertionError("only rank 0 decides the ADR level")


def test_data_parallel_ranks_stay_identical_and_count_every_world(tmp_path):
    run_dir = tmp_path / "dp"
    mp.spawn(_dp_rank, args=(free_port(), run_dir, tmp_path), nprocs=REPLICAS)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(REPLICAS)]
    assert [r["code"] for r in ranks] == [0, 0]
    zero, one = (r["seen"] for r in ranks)
    assert len(zero) == len(one) == 3
    for a, b in zip(zero, one):
        assert torch.equal(a["weights"], b["weights"]) and torch.equal(a["critic"], b["critic"])
        assert a["adr_level"] == b["adr_level"] and a["env_steps"] == b["env_steps"]
    assert not torch.equal(zero[0]["weights"], zero[-1]["weights"]), "the ranks train"
    lines = metrics(run_dir)
    assert [m["iteration"] for m in lines] == [1, 2, 3]  # rank 0 alone logs
    assert [m["env_steps"] for m in lines] == [NUM_ENVS * 8 * i for i in (1, 2, 3)]  # both ranks' worlds
    assert [m["adr_level"] for m in lines] == [r["adr_level"] for r in zero] == [1, 2, 3]
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["dexgrasp"]["episode_index"].shape == (NUM_ENVS,) and len(state["dexgrasp"]["rank_rngs"]) == REPLICAS
    assert len(list((run_dir / "summaries").iterdir())) == 1, "one TensorBoard writer: rank 0's"


# ---------------------------------------------------------------------- processes, signals and faults
def _run_processes(launcher: psutil.Process) -> list[psutil.Process]:
    return [p for p in launcher.children(recursive=True) if "dexgrasp" in _title(p)]


def _title(process: psutil.Process) -> str:
    """What ``ps`` shows for it (setproctitle pads the command line with spaces)."""
    return " ".join(process.cmdline()).strip()


def _start(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(dexgrasp(*args), cwd=cwd, env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip


def _wait_for_iterations(run_dir: Path, proc: subprocess.Popen, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(metrics(run_dir)) < count and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(metrics(run_dir)) >= count, proc.communicate(timeout=60)


def test_a_killed_replica_stops_the_run_with_one_line_naming_it(tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(train_args(run_dir, "disagg", iterations=10_000), tmp_path)
    _wait_for_iterations(run_dir, proc, 2)
    workers = _run_processes(psutil.Process(proc.pid))
    titles = {_title(p): p for p in workers}
    assert set(titles) == {"dexgrasp: sim replica 1 of 2", "dexgrasp: sim replica 2 of 2", "dexgrasp: learner"}
    victim = titles["dexgrasp: sim replica 2 of 2"]
    start = time.monotonic()
    victim.kill()
    _, err = proc.communicate(timeout=120)
    elapsed = time.monotonic() - start
    assert elapsed < 60 and proc.returncode != 0
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert f"sim replica 2 of 2 (rank 1 on host {socket.gethostname()}, pid {victim.pid}) was lost" in errors[0]
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "no orphans"
    saved = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert saved["epoch"] >= 1 and not (run_dir / "checkpoints" / "last.pt").exists()
    print(f"killed replica: the run ended {elapsed:.1f} s later")


@pytest.mark.parametrize("layout, sig", [("disagg", signal.SIGINT), ("dp", signal.SIGTERM)])
def test_a_stop_signal_saves_last_and_exits_0(layout, sig, tmp_path):
    run_dir = tmp_path / "run"
    proc = _start(train_args(run_dir, layout, iterations=10_000), tmp_path)
    _wait_for_iterations(run_dir, proc, 1)
    workers = _run_processes(psutil.Process(proc.pid))
    assert len(workers) == (REPLICAS + 1 if layout == "disagg" else REPLICAS)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in err, out[-2000:] + err[-2000:]
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == len(metrics(run_dir)) < 10_000 and f"saved {run_dir / 'checkpoints' / 'last.pt'}" in out
    assert not [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "no orphans"


def _peak_rss(title: str, launcher: psutil.Process) -> int:
    """Peak resident bytes (VmHWM) of the run's process with this title."""
    (process,) = [p for p in _run_processes(launcher) if _title(p) == title]
    line = next(x for x in Path(f"/proc/{process.pid}/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_a_replica_holds_no_experience_buffer(tmp_path):
    """Peak memory after one iteration at horizon 4 and 128: the learner grows by more than the depth
    images its buffer gained (activations of the update grow too), the replica by next to nothing."""
    peaks = {}
    for horizon in (4, 128):
        run_dir = tmp_path / f"h{horizon}"
        args = train_args(run_dir, "disagg", "--set", f"train.ppo.horizon_length={horizon}", modality="depth",
                          iterations=10_000, replicas=1, res="80x60")  # fmt: skip
        proc = _start(args, tmp_path)
        _wait_for_iterations(run_dir, proc, 1)
        launcher = psutil.Process(proc.pid)
        peaks[horizon] = {role: _peak_rss(f"dexgrasp: {role}", launcher) for role in ("learner", "sim replica 1 of 1")}
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=300)
    depth_bytes = NUM_ENVS * (128 - 4) * 80 * 60 * 2  # float16 depth in the buffer, once
    learner = peaks[128]["learner"] - peaks[4]["learner"]
    replica = peaks[128]["sim replica 1 of 1"] - peaks[4]["sim replica 1 of 1"]
    print(f"peak memory growth from horizon 4 to 128: learner {learner / 2**20:.1f} MiB, replica {replica / 2**20:.1f} MiB")
    assert learner > depth_bytes
    assert replica < learner / 20


# ---------------------------------------------------------------------- torchrun, two "nodes"
def test_disagg_runs_as_two_torchrun_nodes_on_loopback(tmp_path):
    run_dir = tmp_path / "run"
    port = free_port()
    node = ["-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
            "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "dexgrasp-test", "--local-addr", "127.0.0.1"]  # fmt: skip
    args = train_args(run_dir, "disagg", replicas=None)  # K follows from the world size: 2 processes, 1 replica
    launches = [subprocess.Popen([sys.executable, *node, "--node-rank", str(rank), "-m", "dexgrasp_cli", *args],
                                 cwd=tmp_path, env=command_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True)
                for rank in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=600)[0] for p in launches]
    assert [p.returncode for p in launches] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    lines = metrics(run_dir)
    assert [m["iteration"] for m in lines] == [1, 2] and lines[-1]["env_steps"] == 2 * NUM_ENVS * 8
    config = load_checkpoint(run_dir / "checkpoints" / "last.pt")["dexgrasp"]["config"]["run"]
    assert (config["layout"], config["replicas"]) == ("disagg", 1)


# ---------------------------------------------------------------------- GPUs (run only where they are)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("gpus", [1, 2])
def test_disagg_on_gpus_learns_what_single_learns(gpus, tmp_path):
    """1 GPU: the learner shares it with the replicas, so messages go through host memory (said once);
    2+ GPUs and 1 replica: NCCL between the replica's GPU and the learner's."""
    if torch.cuda.device_count() < gpus:
        pytest.skip(f"needs {gpus} GPUs")
    replicas = REPLICAS if gpus == 1 else gpus - 1
    results = {}
    for layout in ("single", "disagg"):
        args = train_args(tmp_path / layout, layout, "--device", "cuda", modality="depth", replicas=replicas)
        done = run(args, tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        results[layout] = (metrics(tmp_path / layout), done.stdout)
    assert_same_learning(results["single"][0][0], results["disagg"][0][0])
    shared = "NCCL refuses two ranks on one GPU" in results["disagg"][1]
    assert shared == (gpus == 1) and results["disagg"][1].count("note:") <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("gpus", [1, 2])
def test_data_parallel_on_gpus(gpus, tmp_path):
    """2 ranks on 2 GPUs average gradients over NCCL; on 1 GPU they share it and gloo carries them."""
    if torch.cuda.device_count() < gpus:
        pytest.skip(f"needs {gpus} GPUs")
    args = train_args(tmp_path / "dp", "dp", "--device", "cuda" if gpus > 1 else "cuda:0", modality="depth")
    done = run(args, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    lines = metrics(tmp_path / "dp")
    assert [m["env_steps"] for m in lines] == [NUM_ENVS * 8, 2 * NUM_ENVS * 8]
    assert ("NCCL refuses two ranks on one GPU" in done.stdout) == (gpus == 1)
