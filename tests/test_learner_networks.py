"""Teacher and critic networks, built and run through rl-games' own model and agent machinery (CPU, tiny sizes)."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from rl_games.algos_torch import torch_ext
from rl_games.algos_torch.a2c_continuous import A2CAgent
from rl_games.algos_torch.model_builder import ModelBuilder
from rl_games.common import env_configurations, tr_helpers, vecenv
from rl_games.common.algo_observer import DefaultAlgoObserver

from dexgrasp_cli.learner.networks import (
    CRITIC,
    DEPTH_TEACHER,
    STATE_TEACHER,
    DepthEncoder,
    register_networks,
)
from dexgrasp_cli.learner.network_sizes import DepthTeacherSizes

ACTIONS = 23
PROPRIO = 102
OBJECTS = 120
STATE = 10 + OBJECTS
CRITIC_OBS = 141 + OBJECTS
TINY = {
    DEPTH_TEACHER: {"filters": [4] * 4, "kernels": [6, 4, 4, 4], "embedding": 8, "lstm_units": 16, "lstm_layers": 1,
                    "mlp": [16]},
    STATE_TEACHER: {"lstm_units": 16, "mlp": [16]},
    CRITIC: {"lstm_units": 16, "lstm_layers": 2, "mlp": [16, 8]},
}


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_networks()
    register_networks()  # idempotent


def observation_space(name: str, height: int = 24, width: int = 32) -> spaces.Space:
    """The spaces the dexgrasp vecenv presents: actor Dicts, critic Box."""
    def vector(n):
        return spaces.Box(-np.inf, np.inf, (n,), np.float32)

    if name == DEPTH_TEACHER:
        return spaces.Dict({"depth": spaces.Box(0.0, 2.0, (1, height, width), np.float16), "proprio": vector(PROPRIO)})
    if name == STATE_TEACHER:
        return spaces.Dict({"proprio": vector(PROPRIO), "state": vector(STATE)})
    return vector(CRITIC_OBS)


def input_shape(space: spaces.Space):
    """What rl-games' A2CBase hands the builder as input_shape."""
    return {k: v.shape for k, v in space.spaces.items()} if isinstance(space, spaces.Dict) else space.shape


def build(name: str, num_seqs: int, sizes: dict | None = None, **shape):
    model_name = "central_value" if name == CRITIC else "continuous_a2c_logstd"
    params = {"model": {"name": model_name}, "network": {"name": name, **(TINY[name] if sizes is None else sizes)}}
    return ModelBuilder().load(params).build({
        "actions_num": ACTIONS,
        "input_shape": input_shape(observation_space(name, **shape)),
        "num_seqs": num_seqs,
        "num_agents": 1,
        "value_size": 1,
        "normalize_value": True,
        "normalize_input": False,
    })


def observations(name: str, batch: int, gen: torch.Generator, height: int = 24, width: int = 32):
    def vector(n):
        return torch.randn(batch, n, generator=gen) * 3.0 + 1.0

    if name == DEPTH_TEACHER:
        depth = 0.5 + 0.8 * torch.rand(batch, 1, height, width, generator=gen)
        depth[torch.rand(depth.shape, generator=gen) < 0.1] = 0.0  # no reading
        return {"depth": depth.half(), "proprio": vector(PROPRIO)}
    if name == STATE_TEACHER:
        return {"proprio": vector(PROPRIO), "state": vector(STATE)}
    return vector(CRITIC_OBS)


def normalized_input(name: str, obs) -> torch.Tensor:
    """The vector a network's running normalizer sees (depth is not normalized)."""
    if name == DEPTH_TEACHER:
        return obs["proprio"]
    return torch.cat([obs["proprio"], obs["state"]], dim=1) if name == STATE_TEACHER else obs


def rows(obs, index):
    return {k: v[index] for k, v in obs.items()} if isinstance(obs, dict) else obs[index]


def states_shapes(model):
    return [tuple(s.shape) for s in model.get_default_rnn_state()]


@pytest.mark.parametrize("name", [DEPTH_TEACHER, STATE_TEACHER, CRITIC])
def test_play_and_train_forward_through_rl_games(name):
    gen = torch.Generator().manual_seed(0)
    num_seqs, seq_length = 5, 4
    model = build(name, num_seqs)
    assert model.is_rnn()
    layers = TINY[name].get("lstm_layers", 1)
    assert states_shapes(model) == [(layers, num_seqs, 16)] * 2

    model.eval()  # play: one step per world, as A2CBase.get_action_values calls it
    obs = observations(name, num_seqs, gen)
    with torch.no_grad():
        out = model({"is_train": False, "prev_actions": None, "obs": obs, "rnn_states": model.get_default_rnn_state()})
        stateless = model({"is_train": False, "obs": obs, "rnn_states": None})  # export/tracing: zero states
    assert torch.equal(stateless["values"], out["values"])
    assert [tuple(s.shape) for s in out["rnn_states"]] == states_shapes(model)
    assert out["values"].shape == (num_seqs, 1)
    if name != CRITIC:
        assert out["actions"].shape == out["mus"].shape == out["sigmas"].shape == (num_seqs, ACTIONS)
        assert out["neglogpacs"].shape == (num_seqs,)
        assert torch.equal(out["sigmas"], torch.ones(num_seqs, ACTIONS))  # exp(initial_log_std = 0)
    for value in out.values():
        for tensor in value if isinstance(value, tuple) else [value]:
            assert torch.isfinite(tensor).all()

    model.train()  # train: whole sequences, states saved at sequence starts, dones
    batch = num_seqs * seq_length
    dones = torch.zeros(batch, dtype=torch.uint8)
    dones[[2, 7, 13]] = 1
    start_states = [torch.randn(s, generator=gen) for s in states_shapes(model)]
    out = model({"is_train": True, "prev_actions": torch.randn(batch, ACTIONS, generator=gen),
                 "obs": observations(name, batch, gen), "rnn_states": start_states,
                 "seq_length": seq_length, "dones": dones})
    assert out["values"].shape == (batch, 1)
    assert [tuple(s.shape) for s in out["rnn_states"]] == states_shapes(model)
    if name != CRITIC:
        assert out["prev_neglogp"].shape == out["entropy"].shape == (batch,)
        assert out["mus"].shape == (batch, ACTIONS)
        assert torch.isfinite(out["prev_neglogp"]).all() and torch.isfinite(out["mus"]).all()
    out["values"].sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def lstm_params(inputs: int, units: int, layers: int) -> int:
    return sum(4 * ((inputs if i == 0 else units) * units + units * units + 2 * units) for i in range(layers))


def linear_params(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def mlp_params(inputs: int, units: list[int]) -> int:
    return sum(linear_params(i, o) for i, o in zip([inputs, *units[:-1]], units))


def test_parameter_counts_at_paper_sizes():
    height, width = 120, 160
    count = 0
    channels = 1
    for filters, kernel, padding in zip([16, 32, 64, 128], [6, 4, 4, 4], [2, 1, 1, 1]):
        height, width = (height + 2 * padding - kernel) // 2 + 1, (width + 2 * padding - kernel) // 2 + 1
        count += kernel * kernel * channels * filters + filters + 2 * filters * height * width  # conv + LayerNorm
        channels = filters
    assert (height, width) == (7, 10)
    count += linear_params(128, 32) + lstm_params(32 + PROPRIO, 1024, 2) + mlp_params(1024, [512, 512, 256])
    count += linear_params(256, ACTIONS) + ACTIONS + linear_params(256, 1)  # mu, log-std, value
    depth_teacher = build(DEPTH_TEACHER, 1, sizes={}, height=120, width=160)
    assert sum(p.numel() for p in depth_teacher.parameters()) == count == 14_536_831
    assert lstm_params(32 + PROPRIO, 1024, 2) == 13_148_160

    state_count = lstm_params(PROPRIO + STATE, 1024, 1) + 2 * 1024 + mlp_params(1024, [512, 512])
    state_count += linear_params(512, ACTIONS) + ACTIONS + linear_params(512, 1)
    assert sum(p.numel() for p in build(STATE_TEACHER, 1, sizes={}).parameters()) == state_count

    critic_count = lstm_params(CRITIC_OBS, 2048, 1) + 2 * 2048 + mlp_params(2048, [1024, 512]) + linear_params(512, 1)
    assert sum(p.numel() for p in build(CRITIC, 1, sizes={}).parameters()) == critic_count


def test_cnn_layer_norm_is_per_sample():
    sizes = DepthTeacherSizes(**{k: tuple(v) if isinstance(v, list) else v for k, v in TINY[DEPTH_TEACHER].items()})
    encoder = DepthEncoder((1, 24, 32), sizes)
    norms = [m for m in encoder.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert [n.normalized_shape for n in norms] == [(4, 12, 16), (4, 6, 8), (4, 3, 4), (4, 1, 2)]
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(2, 1, 24, 32, generator=gen) * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1)
    together = encoder(images)
    alone = torch.cat([encoder(images[:1]), encoder(images[1:])])
    assert torch.allclose(together, alone, atol=1e-6)
    assert not torch.allclose(together[0], together[1], atol=1e-3)
    activations = encoder.convs[:2](images)  # first conv + ReLU; its LayerNorm standardizes each sample on its own
    mean = activations.mean(dim=(1, 2, 3), keepdim=True)
    var = activations.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(encoder.convs[2](activations), (activations - mean) / torch.sqrt(var + 1e-5))


@pytest.mark.parametrize("name", [DEPTH_TEACHER, STATE_TEACHER, CRITIC])
def test_running_normalization_matches_numpy_and_freezes_in_eval(name):
    gen = torch.Generator().manual_seed(2)
    model = build(name, 3)
    normalizer = model.a2c_network.normalizer if name != DEPTH_TEACHER else model.a2c_network.proprio_normalizer
    model.train()
    fed = []
    for seq_length in (4, 1, 7):
        obs = observations(name, 3 * seq_length, gen)
        fed.append(normalized_input(name, obs))
        model({"is_train": True, "prev_actions": torch.zeros(3 * seq_length, ACTIONS), "obs": obs,
               "rnn_states": model.get_default_rnn_state(), "seq_length": seq_length})
    vectors = torch.cat(fed).double().numpy()
    np.testing.assert_allclose(normalizer.mean.numpy(), vectors.mean(axis=0), rtol=0, atol=1e-12)
    np.testing.assert_allclose(normalizer.var.numpy(), vectors.var(axis=0), rtol=1e-12, atol=0)
    assert normalizer.count.item() == len(vectors) == 36

    frozen = {k: v.clone() for k, v in normalizer.state_dict().items()}
    model.eval()
    probe = observations(name, 3, gen)
    with torch.no_grad():
        model({"is_train": False, "obs": probe, "rnn_states": model.get_default_rnn_state()})
    assert all(torch.equal(v, normalizer.state_dict()[k]) for k, v in frozen.items())
    vector = normalized_input(name, probe)
    expected = ((vector.double().numpy() - vectors.mean(axis=0)) / np.sqrt(vectors.var(axis=0) + 1e-5)).clip(-5, 5)
    np.testing.assert_allclose(normalizer(vector).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("name", [DEPTH_TEACHER, STATE_TEACHER, CRITIC])
def test_stepwise_play_with_carried_states_equals_training_sequence(name):
    gen = torch.Generator().manual_seed(3)
    num_seqs, seq_length = 3, 6
    model = build(name, num_seqs)
    obs = observations(name, num_seqs * seq_length, gen)  # world-major: row = world * seq_length + step
    dones = torch.zeros(num_seqs, seq_length, dtype=torch.uint8)
    dones[0, 2] = dones[2, 4] = dones[1, 5] = 1  # an episode starts at these steps
    start = [torch.randn(s, generator=gen) for s in states_shapes(model)]
    train_input = {"is_train": True, "prev_actions": torch.zeros(num_seqs * seq_length, ACTIONS), "obs": obs,
                   "seq_length": seq_length, "dones": dones.flatten()}
    model.train()
    model(dict(train_input, rnn_states=[s.clone() for s in start]))  # normalizer statistics := this batch's

    model.eval()  # rollout: statistics frozen, one step at a time, states zeroed where an episode starts
    states = [s.clone() for s in start]
    step_outputs = []
    with torch.no_grad():
        for t in range(seq_length):
            for s in states:
                s[:, dones[:, t].bool(), :] = 0
            out = model({"is_train": False, "obs": rows(obs, slice(t, None, seq_length)), "rnn_states": states})
            states = list(out["rnn_states"])
            step_outputs.append(out)

    model.train()  # training pass: feeding the same batch again leaves mean and variance where they are
    out = model(dict(train_input, rnn_states=[s.clone() for s in start]))
    for key in ["values"] if name == CRITIC else ["values", "mus"]:
        stepwise = torch.stack([o[key] for o in step_outputs], dim=1).flatten(0, 1)  # (worlds, T, .) -> world-major
        torch.testing.assert_close(out[key], stepwise, atol=1e-5, rtol=0)
    for final, carried in zip(out["rnn_states"], states):
        torch.testing.assert_close(final, carried, atol=1e-5, rtol=0)


def test_float16_depth_gives_the_float32_result():
    gen = torch.Generator().manual_seed(4)
    model = build(DEPTH_TEACHER, 4).eval()
    obs = observations(DEPTH_TEACHER, 4, gen)
    assert obs["depth"].dtype == torch.float16
    with torch.no_grad():
        half, full = (model({"is_train": False, "obs": o, "rnn_states": model.get_default_rnn_state()})
                      for o in (dict(obs), dict(obs, depth=obs["depth"].float())))
    assert torch.equal(half["mus"], full["mus"]) and torch.equal(half["values"], full["values"])


@pytest.mark.parametrize(("name", "sizes", "shape", "message"), [
    (DEPTH_TEACHER, {"lstm_units": 0}, {}, "network.lstm_units must be >= 1, got 0"),
    (DEPTH_TEACHER, {"mlp": []}, {}, "network.mlp must not be empty"),
    (DEPTH_TEACHER, {"filters": [4, 4]}, {}, "network.kernels has 4 entries, network.filters 2"),
    (DEPTH_TEACHER, {"units": 16}, {}, "unknown key 'network.units'"),
    (STATE_TEACHER, {"lstm_layer_norm": 1}, {}, "network.lstm_layer_norm must be bool, got 1"),
    (DEPTH_TEACHER, {}, {"height": 8, "width": 8}, "depth images of 8x8 are too small"),
])
def test_bad_sizes_are_one_line_errors(name, sizes, shape, message):
    with pytest.raises(ValueError, match=message):
        build(name, 1, sizes={**TINY[name], **sizes}, **shape)


def test_wrong_observations_and_rl_games_normalize_input_are_refused():
    network = ModelBuilder().load({"model": {"name": "continuous_a2c_logstd"}, "network": {"name": STATE_TEACHER}})
    with pytest.raises(ValueError, match="keys \\['proprio', 'state'\\]"):
        network.build({"actions_num": ACTIONS, "input_shape": {"proprio": (PROPRIO,)}, "normalize_input": False})
    with pytest.raises(ValueError, match="normalize_input: False"):
        network.build({"actions_num": ACTIONS, "input_shape": input_shape(observation_space(STATE_TEACHER)),
                       "normalize_input": True})


class RandomDexgraspVecEnv(vecenv.IVecEnv):
    """Random observations in the dexgrasp vecenv's spaces (float16 depth, critic states), episodes ending at random."""

    def __init__(self, num_envs: int):
        self.num_envs = num_envs
        self.gen = torch.Generator().manual_seed(5)

    def _obs(self):
        return {"obs": observations(DEPTH_TEACHER, self.num_envs, self.gen),
                "states": observations(CRITIC, self.num_envs, self.gen)}

    def reset(self):
        return self._obs()

    def step(self, actions):
        dones = (torch.rand(self.num_envs, generator=self.gen) < 0.2).to(torch.uint8)
        rewards = torch.randn(self.num_envs, generator=self.gen)
        return self._obs(), rewards, dones, {"time_outs": torch.zeros(self.num_envs, dtype=torch.bool)}

    def get_env_info(self):
        return {"observation_space": observation_space(DEPTH_TEACHER), "state_space": observation_space(CRITIC),
                "action_space": spaces.Box(-1.0, 1.0, (ACTIONS,), np.float32), "agents": 1, "value_size": 1}


def test_ppo_epochs_with_central_value_critic_train_and_checkpoint(tmp_path):
    num_envs, horizon, epochs, mini_epochs = 4, 8, 2, 2
    vecenv.register("DEXGRASP_TEST_RANDOM", lambda config_name, num_actors, **kwargs: RandomDexgraspVecEnv(num_actors))
    env_configurations.register("dexgrasp_test_random", {"vecenv_type": "DEXGRASP_TEST_RANDOM", "env_creator": None})
    config = {
        "name": "net_test", "env_name": "dexgrasp_test_random", "device": "cpu", "num_actors": num_envs,
        "train_dir": str(tmp_path), "features": {"observer": DefaultAlgoObserver()}, "print_stats": False,
        "reward_shaper": tr_helpers.DefaultRewardsShaper(scale_value=0.01),
        "normalize_input": False, "normalize_value": True, "normalize_advantage": True, "value_bootstrap": True,
        "gamma": 0.99, "tau": 0.95, "learning_rate": 3e-4, "lr_schedule": "adaptive", "kl_threshold": 0.016,
        "max_epochs": epochs, "save_frequency": 0, "save_best_after": 100, "score_to_win": 1e9,
        "horizon_length": horizon, "seq_length": 4, "minibatch_size": 16, "mini_epochs": mini_epochs,
        "critic_coef": 4, "clip_value": True, "e_clip": 0.2, "entropy_coef": 0.0, "bounds_loss_coef": 0.005,
        "grad_norm": 1.0, "truncate_grads": True, "zero_rnn_on_done": True,
        "central_value_config": {"minibatch_size": 16, "mini_epochs": mini_epochs, "learning_rate": 5e-5,
                                 "clip_value": True, "normalize_input": False, "truncate_grads": True,
                                 "network": {"name": CRITIC, **TINY[CRITIC]}},
    }
    params = {"config": config, "model": {"name": "continuous_a2c_logstd"},
              "network": {"name": DEPTH_TEACHER, **TINY[DEPTH_TEACHER]}}
    agent = A2CAgent(base_name="run", params=params)
    actor, critic = agent.model, agent.central_value_net.model
    actor_before = {k: v.clone() for k, v in actor.state_dict().items()}
    critic_before = {k: v.clone() for k, v in critic.state_dict().items()}
    agent.train()
    agent.writer.close()

    for model, before in ((actor, actor_before), (critic, critic_before)):
        unchanged = [k for k, v in model.state_dict().items() if torch.equal(v, before[k])]
        assert not [k for k in unchanged if "a2c_network" in k]  # every weight and normalizer buffer moved
    # statistics are updated by every training minibatch (each mini-epoch revisits the rollout), never in rollouts
    fed = epochs * mini_epochs * num_envs * horizon
    assert actor.a2c_network.proprio_normalizer.count.item() == critic.a2c_network.normalizer.count.item() == fed

    (checkpoint,) = tmp_path.glob("*/nn/*.pth")
    restored = build(DEPTH_TEACHER, num_envs)
    restored.load_state_dict(torch_ext.load_checkpoint(checkpoint)["model"])
    restored.eval(), actor.eval()
    obs = observations(DEPTH_TEACHER, num_envs, torch.Generator().manual_seed(6))
    with torch.no_grad():
        outs = [m({"is_train": False, "obs": dict(obs), "rnn_states": m.get_default_rnn_state()})
                for m in (actor, restored)]
    assert torch.equal(outs[0]["mus"], outs[1]["mus"]) and torch.equal(outs[0]["values"], outs[1]["values"])
