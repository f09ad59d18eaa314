"""rl-games glue: the params dict of a teacher, the PPO agent over a vecenv, and the bare model.

The agent (rl-games' PPO agent with the 1.6.5 fixes, see patches.py) is built directly, not through
rl-games' Runner, and finds its env the rl-games way: the vecenv is registered under ``ENV_NAME`` and
the agent creates it by name. rl-games writes its TensorBoard events and nothing else under the run
directory (``summaries/``); dexgrasp owns checkpoints and metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
from pathlib import Path

import torch
from rl_games.algos_torch import model_builder
from rl_games.common.algo_observer import DefaultAlgoObserver
from rl_games.common.tr_helpers import DefaultRewardsShaper

from dexgrasp_cli.learner.networks import CRITIC, DEPTH_TEACHER, STATE_TEACHER, register_networks
from dexgrasp_cli.learner.patches import ACCEPTED_MODEL, FixedA2CAgent, check_model_name, check_ppo_config
from dexgrasp_cli.learner.settings import TrainSettings
from dexgrasp_cli.learner.vecenv import register

ENV_NAME = "dexgrasp"
NETWORK_NAMES = {"depth": DEPTH_TEACHER, "state": STATE_TEACHER}


def network_params(settings: TrainSettings, modality: str) -> dict:
    """The rl-games ``network`` section of the actor."""
    sizes = getattr(settings.networks, modality)
    return {"name": NETWORK_NAMES[modality], **dataclasses.asdict(sizes)}


def rl_games_params(
    settings: TrainSettings, modality: str, num_envs: int, device: torch.device, max_iterations: int, env_info: dict
) -> dict:
    """rl-games params of a teacher on ``num_envs`` worlds, checked for the 1.6.5 pitfalls."""
    ppo = dataclasses.asdict(settings.ppo)
    reward_scale = ppo.pop("reward_scale")
    ppo["minibatch_size"] = settings.ppo.minibatch_for(num_envs)
    if ppo["lr_schedule"] == "none":  # rl-games says null for a constant rate (check_ppo_config refuses "none")
        ppo["lr_schedule"] = None
    critic = {"name": CRITIC, **dataclasses.asdict(settings.networks.critic)}
    config = dict(
        ppo,
        name="teacher",
        env_name=ENV_NAME,
        env_info=env_info,
        num_actors=num_envs,
        device=str(device),
        ppo=True,
        normalize_input=False,
        value_bootstrap=True,
        reward_shaper={"scale_value": reward_scale},
        max_epochs=max_iterations,
        save_frequency=0,
        print_stats=False,
        central_value_config={
            "network": critic,
            "normalize_input": False,
            "learning_rate": ppo["learning_rate"],
            "lr_schedule": ppo["lr_schedule"],
            "kl_threshold": ppo["kl_threshold"],
            "mini_epochs": ppo["mini_epochs"],
            "minibatch_size": ppo["minibatch_size"],
            "clip_value": ppo["clip_value"],
            "truncate_grads": ppo["truncate_grads"],
            "grad_norm": ppo["grad_norm"],
        },
    )
    return {
        "algo": {"name": "a2c_continuous"},
        "model": {"name": ACCEPTED_MODEL},
        "network": network_params(settings, modality),
        "config": check_ppo_config(config, "train.ppo"),
    }


def build_agent(params: dict, vecenv, run_dir: Path | None) -> FixedA2CAgent:
    """The PPO agent over ``vecenv`` (registered as ``ENV_NAME``); rl-games' TensorBoard writer goes
    to ``run_dir/summaries``. With ``run_dir`` None (a data-parallel rank that logs nothing) the agent
    has no writer and leaves no files."""
    check_model_name(params["model"]["name"])
    register_networks()
    register(ENV_NAME, lambda **_: vecenv)
    config = dict(params["config"])
    del config["env_info"]  # without it rl-games creates the vecenv by name and asks it for its spaces
    with tempfile.TemporaryDirectory(prefix="dexgrasp-agent-") as scratch:  # rl-games always writes somewhere
        config.update(
            train_dir=str(run_dir or scratch),
            full_experiment_name=".",
            reward_shaper=DefaultRewardsShaper(**config["reward_shaper"]),
            features={"observer": DefaultAlgoObserver()},
        )
        agent = FixedA2CAgent(base_name="run", params=dict(params, config=config))
        Path(agent.nn_dir).rmdir()  # rl-games' own checkpoint folder, left empty: dexgrasp saves to checkpoints/
        if run_dir is None:
            agent.writer.close()
            agent.writer = None
            if agent.has_central_value:
                agent.central_value_net.writter = None  # rl-games' spelling
    return agent


def build_model(policy: dict, device: torch.device, num_seqs: int) -> torch.nn.Module:
    """The actor described by a checkpoint's ``policy`` entry (see ``policy_description``), in eval mode."""
    register_networks()
    model = model_builder.ModelBuilder().load({"model": {"name": ACCEPTED_MODEL}, "network": policy["network"]})
    with contextlib.redirect_stdout(io.StringIO()):  # rl-games prints its normalizers' shapes
        built = model.build({
            "actions_num": policy["actions_num"],
            "input_shape": {key: tuple(shape) for key, shape in policy["input_shape"].items()},
            "num_seqs": num_seqs,
            "value_size": 1,
            "normalize_value": policy["normalize_value"],
            "normalize_input": False,
        })  # fmt: skip
    return built.to(device).eval()


def policy_description(params: dict) -> dict:
    """What rebuilding the actor needs, in plain values (stored in checkpoints)."""
    info = params["config"]["env_info"]
    return {
        "network": params["network"],
        "actions_num": int(info["action_space"].shape[0]),
        "input_shape": {key: list(space.shape) for key, space in info["observation_space"].spaces.items()},
        "normalize_value": bool(params["config"]["normalize_value"]),
    }
