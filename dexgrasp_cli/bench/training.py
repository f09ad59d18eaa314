"""Training throughput and experience-buffer memory of the PPO teachers.

Throughput: for each case (state; depth at each resolution) the real trainer set-up (env, vecenv,
rl-games agent with the yaml networks) runs one warm-up iteration, then ``iterations`` timed ones;
env-steps/s counts collection and update together. Buffer memory: rl-games' own ExperienceBuffer
is allocated for a depth teacher at the given size with depth stored as float16 and as float32,
and the bytes of its tensors are summed. Only GPU figures say anything absolute.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from rl_games.common.experience import ExperienceBuffer
from rl_games.common.gym_compat import spaces

from dexgrasp_cli.learner.settings import TrainSettings
from tasks.dextrah.settings import TaskSettings
from tasks.sim.mjwarp_backend import synchronize

FORMAT_VERSION = 1


def experience_buffer_bytes(num_envs: int, horizon: int, width: int, height: int, depth_dtype, env_info: dict) -> int:
    """Bytes of rl-games' experience buffer for a depth teacher with its critic (allocated, then freed).

    ``env_info`` is a teacher vecenv's: its proprioception, critic and action spaces are used as they
    are, with a depth image of ``width`` x ``height`` in ``depth_dtype`` beside the proprioception.
    """
    depth = spaces.Box(0.0, 2.0, (1, height, width), dtype=depth_dtype)
    observations = spaces.Dict({"depth": depth, "proprio": env_info["observation_space"]["proprio"]})
    env_info = dict(env_info, observation_space=observations)
    algo_info = {"num_actors": num_envs, "horizon_length": horizon, "has_central_value": True}
    buffer = ExperienceBuffer(env_info, algo_info, "cpu")  # zero-filled pages are not touched until used
    total = _nbytes(buffer.tensor_dict)
    del buffer
    return total


def _nbytes(value) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(_nbytes(v) for v in value.values())
    return 0


def run_training_bench(
    task: TaskSettings, train: TrainSettings, resolutions: list[str], num_envs: int, iterations: int,
    device: str, seed: int, console: Console,
) -> dict:  # fmt: skip
    """Time the teachers; see the module docstring."""
    from dexgrasp_cli.learner.patches import close_agent
    from dexgrasp_cli.learner.trainer import TrainOptions, build_training

    cases = [("state", None)] + [("depth", res) for res in resolutions]
    rows = []
    for modality, res in cases:
        label = modality + (f" {res}" if res else "")
        console.print(f"[bold]bench-train[/] {label}, {num_envs} worlds on {device}: building ...")
        case_task = task.with_camera_resolution(res) if res else task
        with tempfile.TemporaryDirectory() as run_dir:
            options = TrainOptions(modality, num_envs, device, seed, iterations + 1, Path(run_dir), None, ())
            env, vecenv, agent, _ = build_training(case_task, train, options)
            env_info = vecenv.get_env_info()  # proprioception, critic and actions size the buffer below
            agent.init_tensors()
            agent.obs = agent.env_reset()
            agent.curr_frames = agent.batch_size_envs
            times = []
            for i in range(iterations + 1):
                start = time.perf_counter()
                agent.update_epoch()
                _, play_time, update_time, *_ = agent.train_epoch()
                agent.dataset.update_values_dict(None)
                synchronize(env.device)
                times.append((time.perf_counter() - start, play_time, update_time))
                console.print(f"  iteration {i} ({'warm-up' if i == 0 else 'timed'}): {times[-1][0]:.2f} s")
            close_agent(agent)
        timed = np.array(times[1:])
        frames = agent.curr_frames
        rows.append({
            "modality": modality, "resolution": res, "worlds": num_envs, "iterations": iterations,
            "env_steps_per_iteration": frames,
            "env_steps_per_s": frames * iterations / timed[:, 0].sum(),
            "collect_s": float(timed[:, 1].mean()), "update_s": float(timed[:, 2].mean()),
            "parameters": sum(p.numel() for p in agent.model.parameters()),
        })  # fmt: skip
        del env, vecenv, agent
    horizon = train.ppo.horizon_length
    width, height = 160, 120
    memory = {
        "num_envs": 4096, "horizon": horizon, "resolution": f"{width}x{height}",
        "float16_bytes": experience_buffer_bytes(4096, horizon, width, height, np.float16, env_info),
        "float32_bytes": experience_buffer_bytes(4096, horizon, width, height, np.float32, env_info),
    }  # fmt: skip
    return {"benchmark": "training", "device": device, "seed": seed, "results": rows, "buffer": memory,
            "torch_threads": torch.get_num_threads(), "format_version": FORMAT_VERSION}  # fmt: skip


def training_table(result: dict) -> Table:
    table = Table(title=f"dexgrasp bench-train: PPO teachers on {result['device']} (collection + update)")
    for name in ("teacher", "worlds", "env-steps/iter", "env-steps/s", "collect s", "update s", "parameters"):
        table.add_column(name, justify="left" if name == "teacher" else "right")
    for row in result["results"]:
        table.add_row(
            row["modality"] + (f" {row['resolution']}" if row["resolution"] else ""), str(row["worlds"]),
            str(row["env_steps_per_iteration"]), f"{row['env_steps_per_s']:,.1f}", f"{row['collect_s']:.2f}",
            f"{row['update_s']:.2f}", f"{row['parameters']:,}",
        )  # fmt: skip
    b = result["buffer"]
    ratio = b["float32_bytes"] / b["float16_bytes"]
    table.caption = (
        f"experience buffer, depth teacher, {b['num_envs']} envs x {b['horizon']} steps x {b['resolution']}: "
        f"{b['float16_bytes'] / 2**30:.2f} GiB with float16 depth, {b['float32_bytes'] / 2**30:.2f} GiB with float32 "
        f"({ratio:.2f}x)"
    )
    return table
