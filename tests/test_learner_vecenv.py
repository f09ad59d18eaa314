"""LocalVecEnv: spaces, dtypes and devices, time-outs, episode statistics, buffer ownership, and one
epoch of rl-games' own A2CAgent over it."""

import dataclasses
import functools
import math

import numpy as np
import pytest
import torch
from rl_games.algos_torch import a2c_continuous, model_builder
from rl_games.common import tr_helpers
from rl_games.common.algo_observer import DefaultAlgoObserver
from torch import nn

from dexgrasp_cli.learner import patches
from dexgrasp_cli.learner.rollout_stats import EPISODE_KEYS, VECTOR_SIZE, RolloutStats
from dexgrasp_cli.learner.vecenv import LocalVecEnv, register
from dexgrasp_tasks.dextrah.actions import NUM_ACTIONS
from dexgrasp_tasks.dextrah.env import DextrahEnv

NUM_ENVS, EPISODE = 4, 5  # short episodes, so a test sees them end


@pytest.fixture(scope="module")
def short_settings(settings):
    return dataclasses.replace(settings.with_camera_resolution("32x24"), episode_length=EPISODE)


@pytest.fixture(scope="module")
def depth_env(short_settings):
    return DextrahEnv(short_settings, num_envs=NUM_ENVS, images=("depth",))


@pytest.fixture(scope="module")
def state_env(short_settings):
    return DextrahEnv(short_settings, num_envs=NUM_ENVS)


def _actions(seed: int) -> torch.Tensor:
    return torch.rand(NUM_ENVS, NUM_ACTIONS["palm_pose"], generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_depth_teacher_spaces(depth_env):
    info = LocalVecEnv(depth_env, "depth", "cpu").get_env_info()
    k, a = depth_env.num_objects, depth_env.num_actions
    assert a == 11  # the default action space is the palm pose with hand synergies
    obs = info["observation_space"].spaces
    assert list(obs) == ["depth", "proprio"]
    assert (obs["depth"].shape, obs["depth"].dtype) == ((1, 24, 32), np.float16)
    assert (obs["depth"].low.min(), obs["depth"].high.max()) == (0.0, np.float16(1.3))
    assert (obs["proprio"].shape, obs["proprio"].dtype) == ((79 + a,), np.float32)
    assert np.isinf(obs["proprio"].low).all() and np.isinf(obs["proprio"].high).all()
    assert info["state_space"].shape == (118 + a + k,)
    assert (info["action_space"].shape, info["action_space"].low.min(), info["action_space"].high.max()) == ((a,), -1, 1)
    assert (info["agents"], info["value_size"]) == (1, 1)


def test_state_teacher_spaces_and_refusals(state_env):
    info = LocalVecEnv(state_env, "state", "cpu").get_env_info()
    assert {key: space.shape for key, space in info["observation_space"].spaces.items()} == {
        "proprio": (79 + state_env.num_actions,), "state": (10 + state_env.num_objects,)}  # fmt: skip
    with pytest.raises(ValueError, match=r"the depth teacher needs an env built with images=\('depth',\)"):
        LocalVecEnv(state_env, "depth", "cpu")
    with pytest.raises(ValueError, match="unknown modality 'rgb'; accepted: depth, state"):
        LocalVecEnv(state_env, "rgb", "cpu")


def _check_step_matches(venv: LocalVecEnv, device: torch.device, monkeypatch) -> None:
    """Every step returns the env's own result, copied to ``device`` with the space's dtypes."""
    env, results = venv.env, []
    step = env.step

    def recording_step(actions):
        results.append(step(actions))
        return results[-1]

    monkeypatch.setattr(env, "step", recording_step)
    venv.reset()
    for i in range(EPISODE + 1):
        obs, rewards, dones, infos = venv.step(_actions(i).to(device))
        result = results[-1]
        for key, space in venv.observation_space.spaces.items():
            assert (obs["obs"][key].shape[1:], obs["obs"][key].device) == (space.shape, device)
            assert torch.equal(obs["obs"][key].cpu(), result.obs[key].cpu()), key
        assert torch.equal(obs["states"].cpu(), result.obs["critic"].cpu())
        assert (rewards.dtype, rewards.device, dones.dtype, dones.device) == (torch.float32, device, torch.uint8, device)
        assert torch.equal(rewards.cpu(), result.reward.cpu())
        assert torch.equal(dones.bool().cpu(), (result.terminated | result.truncated).cpu())
        assert infos["time_outs"].device == device
        assert torch.equal(infos["time_outs"].cpu(), result.truncated.cpu())
        assert set(infos) == {"time_outs"}  # statistics are summed where the env lives, not passed per step
    assert any(result.truncated.any() for result in results), "episodes of 5 steps time out within 6"


def test_step_returns_the_env_result_with_time_outs(depth_env, monkeypatch):
    _check_step_matches(LocalVecEnv(depth_env, "depth", "cpu"), torch.device("cpu"), monkeypatch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU for a learner device apart from the env's")
def test_learner_device_apart_from_the_env_device(depth_env, monkeypatch):
    _check_step_matches(LocalVecEnv(depth_env, "depth", "cuda:0"), torch.device("cuda:0"), monkeypatch)


def test_returned_obs_survive_the_next_step(depth_env):
    venv = LocalVecEnv(depth_env, "depth", "cpu")
    venv.reset()
    first = venv.step(_actions(0))[0]
    kept = {key: value.clone() for key, value in first["obs"].items()}
    venv.step(_actions(1))
    env_depth = depth_env.images.outputs["depth"]
    assert not torch.equal(env_depth, kept["depth"]), "the env rewrote its image buffer"
    assert first["obs"]["depth"].data_ptr() != env_depth.data_ptr()
    for key, value in kept.items():
        assert torch.equal(first["obs"][key], value), key


def test_statistics_are_the_sums_of_the_env_results(state_env, monkeypatch):
    """pop_stats against the env's own step results, summed here: success, episodes, reward terms."""
    venv = LocalVecEnv(state_env, "state", "cpu")
    results, step = [], state_env.step
    monkeypatch.setattr(state_env, "step", lambda actions: results.append(step(actions)) or results[-1])
    venv.reset()
    venv.pop_stats()
    results.clear()
    for i in range(EPISODE + 1):
        venv.step(_actions(i))
    stats = venv.pop_stats()
    assert (stats.policy_steps, stats.num_envs, stats.env_steps) == (EPISODE + 1, NUM_ENVS, (EPISODE + 1) * NUM_ENVS)
    in_success = sum(int(r.info["success"].sum()) for r in results)
    assert stats.success_fraction == in_success / ((EPISODE + 1) * NUM_ENVS)
    finished = {key: torch.cat([r.info["episode"][key] for r in results]) for key in EPISODE_KEYS}
    assert stats.episodes == len(finished["length"]) >= NUM_ENVS, "every world ends an episode within 5 steps"
    for key in EPISODE_KEYS:
        assert stats.episode_mean(key) == pytest.approx(finished[key].double().mean().item(), rel=1e-12), key
    for name, mean in stats.reward_term_means().items():
        total = sum(r.info["reward_terms"][name].double().sum().item() for r in results)
        assert mean == pytest.approx(total / stats.env_steps, rel=1e-12), name
    assert 0 < stats.sim_seconds <= stats.wait_seconds, "the learner waits at least as long as the env steps"
    again = venv.pop_stats()
    assert (again.episodes, again.policy_steps, again.success_fraction, again.episode_mean("success")) == (0, 0, 0.0, None)


def test_combined_statistics_add_up_and_keep_the_slowest_times():
    a, b = torch.zeros(VECTOR_SIZE, dtype=torch.float64), torch.zeros(VECTOR_SIZE, dtype=torch.float64)
    # [policy_steps, num_envs, success_steps, sim_seconds, wait_seconds, episodes]
    a[:6] = torch.tensor([4.0, 2, 3, 0.5, 0.7, 1], dtype=torch.float64)
    b[:6] = torch.tensor([4.0, 6, 5, 0.9, 0.2, 3], dtype=torch.float64)
    a[6], b[6] = 1.0, 2.0  # success of the finished episodes: 1 of 1, then 2 of 3
    both = RolloutStats.combine([a, b])
    assert (both.policy_steps, both.num_envs, both.episodes) == (4, 8, 4)
    assert both.success_fraction == 8 / 32 and both.episode_mean("success") == 3 / 4
    assert (both.sim_seconds, both.wait_seconds) == (0.9, 0.7)
    assert both.with_wait_seconds(2.5).wait_seconds == 2.5 and both.wait_seconds == 0.7


def test_set_adr_level_reaches_the_env_and_episode_counters_round_trip(state_env):
    venv = LocalVecEnv(state_env, "state", "cpu")
    venv.set_adr_level(7)
    assert state_env.adr.level == 7
    state_env.adr.set_level(0)
    saved = venv.state_dict()
    assert torch.equal(saved["episode_index"], state_env.episode_index) and saved["episode_index"].dtype == torch.int64
    venv.load_state_dict({"episode_index": saved["episode_index"] + 5})
    assert torch.equal(state_env.episode_index, saved["episode_index"] + 5)
    venv.load_state_dict(saved)


# ---------------------------------------------------------------------- rl-games end to end
class TinyNet(nn.Module):
    """Linear heads on every input flattened: rl-games' network interface without the real networks."""

    def __init__(self, input_shape, actions_num: int | None):
        super().__init__()
        shapes = input_shape.values() if isinstance(input_shape, dict) else [input_shape]
        size = sum(math.prod(shape) for shape in shapes)
        self.value = nn.Linear(size, 1)
        self.mu = nn.Linear(size, actions_num) if actions_num else None
        self.log_std = nn.Parameter(torch.zeros(actions_num or 0))

    def forward(self, obs_dict: dict):
        obs = obs_dict["obs"]
        x = torch.cat([v.float().flatten(1) for v in (obs.values() if isinstance(obs, dict) else [obs])], dim=1)
        if self.mu is None:  # the central value network
            return self.value(x), None
        mu = self.mu(x)
        return mu, self.log_std.expand_as(mu), self.value(x), None

    def is_rnn(self) -> bool:
        return False

    def get_default_rnn_state(self):
        return None

    def get_aux_loss(self):
        return None


class TinyBuilder:
    def __init__(self, critic: bool = False):
        self.critic = critic

    def load(self, params: dict) -> None:
        pass

    def build(self, name: str, **config) -> TinyNet:
        return TinyNet(config["input_shape"], None if self.critic else config["actions_num"])


def test_rl_games_trains_an_epoch_over_it(depth_env, tmp_path):
    model_builder.register_network("dexgrasp_test_tiny_policy", TinyBuilder)
    model_builder.register_network("dexgrasp_test_tiny_critic", functools.partial(TinyBuilder, critic=True))
    venv = LocalVecEnv(depth_env, "depth", "cpu")
    register("dexgrasp_test_depth", lambda **_: venv)
    config = patches.check_ppo_config({
        "name": "tiny", "env_name": "dexgrasp_test_depth", "num_actors": NUM_ENVS, "device": "cpu",
        "train_dir": str(tmp_path), "horizon_length": 4, "seq_length": 4, "minibatch_size": NUM_ENVS * 4,
        "mini_epochs": 1, "learning_rate": 1e-3, "lr_schedule": None, "gamma": 0.99, "tau": 0.95,
        "e_clip": 0.2, "clip_value": True, "critic_coef": 1.0, "entropy_coef": 0.0, "grad_norm": 1.0,
        "normalize_advantage": True, "print_stats": False,
        "central_value_config": {"network": {"name": "dexgrasp_test_tiny_critic"}, "learning_rate": 1e-3,
                                 "mini_epochs": 1, "minibatch_size": NUM_ENVS * 4, "clip_value": True},
    })  # fmt: skip
    config |= {"reward_shaper": tr_helpers.DefaultRewardsShaper(), "features": {"observer": DefaultAlgoObserver()}}
    params = {"algo": {"name": "a2c_continuous"}, "model": {"name": "continuous_a2c_logstd"},
              "network": {"name": "dexgrasp_test_tiny_policy"}, "config": config}  # fmt: skip
    agent = a2c_continuous.A2CAgent(base_name="run", params=params)
    agent.init_tensors()
    agent.obs = agent.env_reset()
    a_losses = agent.train_epoch()[4]
    buffers = agent.experience_buffer.tensor_dict
    assert buffers["obses"]["depth"].dtype == torch.float16
    assert buffers["states"].shape == (4, NUM_ENVS, 118 + depth_env.num_actions + depth_env.num_objects)
    assert buffers["obses"]["depth"].abs().sum() > 0, "depth images reached the buffer"
    assert all(torch.isfinite(loss).all() for loss in a_losses)
    patches.close_agent(agent)
    assert venv.env is None
