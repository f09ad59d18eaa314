"""One bench-memory trial: a process role at one size, one full training iteration, its peak memory.

Run as ``python -m dexgrasp_cli.bench.memory_trial SPEC_JSON`` so each trial starts from a fresh
process (nothing cached by an earlier trial counts). It builds the role's real objects, then:

- ``disagg-replica``: a DextrahEnv of N worlds and its renderer behind the replica's own server
  (layouts/replica.py, with every message buffer), stepped ``horizon`` times; no agent;
- ``disagg-learner``: the rl-games agent over the learner's vecenv of a disaggregated run
  (layouts/remote_vecenv.py, every buffer it allocates), fed random observations of the replicas'
  shapes instead of received ones, so it needs no simulator; one ``train_epoch``;
- ``dp-rank``: a DextrahEnv of N worlds and the agent over it, one ``train_epoch`` (the gradient
  all-reduce of a real rank adds a few buffers the size of the parameters).

It prints one JSON line: the peak of each phase (build, collect, update), the bytes of the main
objects (physics data, render buffers, observation buffers, experience buffer, the update's
flattened copy of the batch), the observation
spaces, and ``error`` (an out-of-memory or any other failure ends the trial as not fitting).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rl_games.common.gym_compat import spaces

from dexgrasp_cli.bench.memory_probe import memory_probe
from dexgrasp_cli.byte_sizes import tensor_bytes


@dataclass(frozen=True)
class TrialSpec:
    role: str
    num_envs: int
    modality: str
    resolution: str
    device: str
    horizon: int
    minibatch: int
    """Samples per gradient step of this trial (a divisor of num_envs * horizon)."""
    seed: int = 0
    task_overrides: tuple[str, ...] = ()
    train_overrides: tuple[str, ...] = ()
    spaces: dict | None = None
    """The replicas' observation spaces (``describe_spaces``), for the learner role."""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "dexgrasp_cli.bench.memory_trial", json.dumps(dataclasses.asdict(self))]


def describe_spaces(env_info: dict) -> dict:
    """A vecenv's spaces as plain values: ``{key: [shape, dtype]}`` per observation, critic, actions."""
    def box(space: spaces.Box) -> list:
        return [list(space.shape), str(space.dtype)]

    return {"observation": {k: box(s) for k, s in env_info["observation_space"].spaces.items()},
            "state": box(env_info["state_space"]), "action": box(env_info["action_space"])}  # fmt: skip


def env_info_of(described: dict) -> dict:
    def box(entry: list) -> spaces.Box:
        shape, dtype = tuple(entry[0]), np.dtype(entry[1])
        return spaces.Box(-np.inf, np.inf, shape, dtype=dtype)

    observation = spaces.Dict({key: box(entry) for key, entry in described["observation"].items()})
    action = spaces.Box(-1.0, 1.0, tuple(described["action"][0]), dtype=np.float32)
    return {"observation_space": observation, "action_space": action, "state_space": box(described["state"]),
            "agents": 1, "value_size": 1}  # fmt: skip


def run_trial(spec: TrialSpec) -> dict:
    """The trial of the module docstring; returns its record."""
    from dexgrasp_cli.checks import quiet_warp

    quiet_warp()
    device = torch.device(spec.device)
    probe = memory_probe(device)
    phases, components, described = {}, {}, spec.spaces
    start = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="dexgrasp-bench-memory-") as scratch:
            phases["start"] = probe.current()
            probe.reset_peak()
            described = _run_role(spec, Path(scratch), probe, phases, components)
        error = None
    except Exception as err:  # noqa: BLE001 - a trial that cannot complete does not fit; say why
        error = _one_line(err)
    finally:
        probe.close()
    return {"spec": dataclasses.asdict(spec), "phases": phases, "components": components, "spaces": described,
            "peak_bytes": max([v for k, v in phases.items() if k.endswith("_peak")], default=0),
            "memory_source": probe.source, "error": error, "seconds": time.perf_counter() - start}  # fmt: skip


def _run_role(spec: TrialSpec, scratch: Path, probe, phases: dict, components: dict) -> dict:
    from dexgrasp_cli.learner.trainer import TrainOptions, local_vecenv

    task, train = _settings(spec)
    options = TrainOptions(spec.modality, spec.num_envs, spec.device, spec.seed, 1, scratch, None, ())

    def phase(name: str) -> None:
        """Close a phase: its peak, then what it left behind, then start the next one's peak."""
        _synchronize(torch.device(spec.device))
        phases[f"{name}_peak"], phases[name] = probe.peak(), probe.current()
        probe.reset_peak()

    if spec.role in ("disagg-replica", "dp-rank"):
        venv = local_vecenv(task, options)
        env = venv.env
        components["physics"] = env.sim.data_bytes()
        components["render"] = env.images.renderer.context_bytes() if env.images else 0
        components["render"] += tensor_bytes(env.images.outputs) if env.images else 0
        components["observations"] = venv.buffer_bytes()
        described = describe_spaces(venv.get_env_info())
    else:
        venv, described = _replica_free_vecenv(spec), spec.spaces
        components["observations"] = venv.buffer_bytes()

    if spec.role == "disagg-replica":
        from dexgrasp_cli.layouts.replica import ReplicaServer

        server = ReplicaServer(venv, learner_rank=0, wire_device=spec.device)  # the wire of distinct GPUs (NCCL)
        components["observations"] += server.buffer_bytes()
        phase("build")
        for _ in range(spec.horizon):
            server.actions.uniform_(-1.0, 1.0)
            server.step_worlds()
        phase("collect")
        return described

    from dexgrasp_cli.learner.learner_group import LearnerGroup
    from dexgrasp_cli.learner.trainer import build_agent_over

    agent, _ = build_agent_over(venv, train, options, LearnerGroup())
    agent.init_tensors()
    agent.obs = agent.env_reset()
    components["experience"] = tensor_bytes(agent.experience_buffer.tensor_dict)
    phase("build")
    collect = agent.play_steps_rnn if agent.is_rnn else agent.play_steps

    def collect_then_close_phase():  # this instance only: the collection's peak apart from the update's
        batch = collect()
        phase("collect")
        return batch

    setattr(agent, collect.__name__, collect_then_close_phase)
    with contextlib.redirect_stdout(io.StringIO()):
        agent.train_epoch()
    components["update_batch"] = tensor_bytes(agent.dataset.values_dict)  # the flattened copy the update reads
    phase("update")
    return described


def _settings(spec: TrialSpec):
    from dexgrasp_cli.config import TRAIN_YAML, load_section, load_task_settings
    from dexgrasp_cli.learner.settings import TrainSettings

    # The trials project a GPU's memory, so even on a CPU they build MuJoCo Warp's data.
    overrides = [*spec.task_overrides, "task.sim.backend=mjwarp"]
    task = load_task_settings(overrides).with_camera_resolution(spec.resolution)
    sizes = [f"train.ppo.horizon_length={spec.horizon}", f"train.ppo.minibatch_size={spec.minibatch}"]
    train = load_section(TrainSettings, "train", TRAIN_YAML, [*spec.train_overrides, *sizes])
    return task, train


def _replica_free_vecenv(spec: TrialSpec):
    """The learner's RemoteVecEnv of one replica holding every world, answering with random data."""
    from dexgrasp_cli.layouts.handshake import Hello
    from dexgrasp_cli.layouts.remote_vecenv import RemoteVecEnv

    class ReplicaFreeVecEnv(RemoteVecEnv):
        def _post(self, command):
            return []  # nobody to tell

        def _post_step(self, actions):
            return []

        def _receive_observations(self, sends):
            slot = self._slots.take()
            for key, tensor in slot["obs"].items():
                tensor.uniform_(0.0, 1.0) if key == "depth" else tensor.normal_()
            slot["states"].normal_()
            slot["rewards"].normal_()
            slot["dones"].zero_()
            slot["time_outs"].zero_()
            return slot

    env_info = env_info_of(spec.spaces)
    hello = Hello(1, socket.gethostname(), os.getpid(), spec.device, "sim replica 1 of 1", spec.num_envs, env_info)
    return ReplicaFreeVecEnv([hello], spec.device, spec.device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        import warp as wp

        wp.synchronize_device(str(device))
        torch.cuda.synchronize(device)


def _one_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    where = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    place = f" (at {Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(err).__name__}: {lines[0] if lines else ''}"[:300] + place


def main() -> None:
    spec = TrialSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in json.loads(sys.argv[1]).items()})
    print(json.dumps(run_trial(spec)))


if __name__ == "__main__":
    main()
