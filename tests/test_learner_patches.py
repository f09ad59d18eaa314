"""rl-games 1.6.5 defects: each test reproduces one on rl-games itself, then shows the fix works.

The agents here train a stock MLP on a toy torch vecenv; the multi-GPU ones run two gloo ranks on CPU.
"""

import os
import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rl_games.algos_torch import a2c_continuous, model_builder, models
from rl_games.algos_torch.running_mean_std import RunningMeanStd
from rl_games.common import tr_helpers
from rl_games.common.a2c_common import A2CBase, ContinuousA2CBase
from rl_games.common.algo_observer import DefaultAlgoObserver
from rl_games.common.gym_compat import spaces
from rl_games.common.ivecenv import IVecEnv
from torch import nn

from dexgrasp_cli.learner import patches, vecenv
from dexgrasp_cli.learner.networks import RunningNormalizer

NUM_ENVS, OBS_SIZE, ACTIONS = 8, 3, 2
MLP = {
    "name": "actor_critic",
    "separate": False,
    "mlp": {"units": [8], "activation": "elu", "initializer": {"name": "default"}},
    "space": {"continuous": {"mu_activation": "None", "sigma_activation": "None", "mu_init": {"name": "default"},
                             "sigma_init": {"name": "const_initializer", "val": 0.0}, "fixed_sigma": True}},
}  # fmt: skip
PPO = {
    "name": "toy", "env_name": "dexgrasp_test_toy", "num_actors": NUM_ENVS, "device": "cpu",
    "horizon_length": 4, "seq_length": 4, "minibatch_size": NUM_ENVS * 2, "mini_epochs": 2,
    "learning_rate": 1e-3, "lr_schedule": None, "gamma": 0.99, "tau": 0.95, "e_clip": 0.2,
    "clip_value": True, "critic_coef": 1.0, "entropy_coef": 0.0, "grad_norm": 1.0,
    "normalize_advantage": True, "normalize_value": False, "normalize_input": False,
    "bounds_loss_coef": 0.0, "print_stats": False,
}  # fmt: skip


class ToyVecEnv(IVecEnv):
    """Random observations around ``offset`` (so ranks see different data), random rewards and ends."""

    def __init__(self, seed: int, offset: float = 0.0):
        self.gen = torch.Generator().manual_seed(seed)
        self.offset = offset
        self.closed = False

    def _obs(self) -> dict:
        return {"obs": torch.randn(NUM_ENVS, OBS_SIZE, generator=self.gen) + self.offset}

    def reset(self) -> dict:
        return self._obs()

    def step(self, actions):
        rewards = -actions.square().sum(-1) + torch.rand(NUM_ENVS, generator=self.gen)
        dones = (torch.rand(NUM_ENVS, generator=self.gen) < 0.2).to(torch.uint8)
        return self._obs(), rewards, dones, {"time_outs": torch.zeros(NUM_ENVS, dtype=torch.bool)}

    def get_env_info(self) -> dict:
        return {"observation_space": spaces.Box(-np.inf, np.inf, (OBS_SIZE,)),
                "action_space": spaces.Box(-1.0, 1.0, (ACTIONS,)), "agents": 1, "value_size": 1}  # fmt: skip

    def close(self) -> None:
        self.closed = True


def make_agent(train_dir, config: dict, seed: int = 0, offset: float = 0.0, agent_class=a2c_continuous.A2CAgent):
    """An agent (rl-games' own, or ``agent_class``) built as rl-games' Runner would, without the
    Runner's process-wide torch settings."""
    vecenv.register("dexgrasp_test_toy", lambda **_: ToyVecEnv(seed, offset))
    config = dict(config, train_dir=str(train_dir), reward_shaper=tr_helpers.DefaultRewardsShaper(),
                  features={"observer": DefaultAlgoObserver()})  # fmt: skip
    params = {"algo": {"name": "a2c_continuous"}, "model": {"name": "continuous_a2c_logstd"}, "network": MLP, "config": config}
    torch.manual_seed(0)  # the same initial weights on every rank, as rl-games' broadcast makes them
    agent = agent_class(base_name="run", params=params)
    agent.init_tensors()
    agent.obs = agent.env_reset()
    return agent


# ---------------------------------------------------------------------- configuration defects
def test_continuous_a2c_model_crashes_and_is_refused():
    network = model_builder.ModelBuilder().load({"model": {"name": "continuous_a2c"}, "network": MLP})
    model = network.build({"actions_num": ACTIONS, "input_shape": (OBS_SIZE,)})
    with pytest.raises(UnboundLocalError):
        model({"is_train": False, "obs": torch.zeros(1, OBS_SIZE)})
    with pytest.raises(ValueError, match="model.name 'continuous_a2c' is not supported; accepted: continuous_a2c_logstd"):
        patches.check_model_name("continuous_a2c")
    patches.check_model_name("continuous_a2c_logstd")


def test_normalize_input_with_dict_obs_crashes_and_is_refused():
    with pytest.raises(RuntimeError, match="has no attribute or method 'items'"):  # torch.jit.script(RunningMeanStdObs)
        models.ModelA2CContinuousLogStd.Network(
            nn.Identity(), obs_shape={"a": (OBS_SIZE,)}, normalize_value=False, normalize_input=True, value_size=1
        )
    with pytest.raises(ValueError, match=r"^train.ppo.normalize_input must be false"):
        patches.check_ppo_config(dict(PPO, normalize_input=True), where="train.ppo")
    critic = {"central_value_config": {"normalize_input": True}}
    with pytest.raises(ValueError, match=r"^config.central_value_config.normalize_input must be false"):
        patches.check_ppo_config(dict(PPO, **critic))
    assert patches.check_ppo_config(dict(PPO, central_value_config={}))["central_value_config"]["normalize_input"] is False


def test_seq_len_is_refused_and_seq_length_made_explicit():
    with pytest.raises(ValueError, match=r"config.seq_len is ignored by rl-games 1.6.5; use config.seq_length"):
        patches.check_ppo_config(dict(PPO, seq_len=8))
    without = {key: value for key, value in PPO.items() if key != "seq_length"}
    assert patches.check_ppo_config(without)["seq_length"] == 4


def test_horizon_length_must_be_a_multiple_of_seq_length():
    with pytest.raises(ValueError, match=r"horizon_length \(6\) must be a multiple of config.seq_length \(4\)"):
        patches.check_ppo_config(dict(PPO, horizon_length=6))
    with pytest.raises(ValueError, match="config.horizon_length is required"):
        patches.check_ppo_config({key: value for key, value in PPO.items() if key != "horizon_length"})


def test_lr_schedules_rl_games_would_silently_ignore_are_refused():
    with pytest.raises(ValueError, match="config.schedule_type 'per_epoch' is not one of legacy, standard"):
        patches.check_ppo_config(dict(PPO, schedule_type="per_epoch"))
    with pytest.raises(ValueError, match="config.lr_schedule 'adaptve' is not one of null, adaptive, linear"):
        patches.check_ppo_config(dict(PPO, lr_schedule="adaptve"))
    with pytest.raises(ValueError, match="config.kl_threshold is required with config.lr_schedule: adaptive"):
        patches.check_ppo_config(dict(PPO, lr_schedule="adaptive"))
    constant = patches.check_ppo_config({key: value for key, value in PPO.items() if key != "lr_schedule"})
    assert (constant["lr_schedule"], constant["schedule_type"]) == (None, "legacy")


def test_torch_compile_defaults_off():
    assert patches.check_ppo_config(PPO)["torch_compile"] is False
    assert patches.check_ppo_config(dict(PPO, torch_compile="default"))["torch_compile"] == "default"


def test_max_steps_crashes_and_is_refused(tmp_path):
    with pytest.raises(np.exceptions.AxisError):
        make_agent(tmp_path, dict(PPO, max_steps=1000))
    with pytest.raises(ValueError, match="config.max_steps crashes rl-games 1.6.5; use config.max_frames or config.max_epochs"):
        patches.check_ppo_config(dict(PPO, max_steps=1000))


def test_unset_bounds_loss_coef_crashes_and_gets_a_default(tmp_path):
    raw = {key: value for key, value in PPO.items() if key != "bounds_loss_coef"}
    with pytest.raises(AttributeError, match="unsqueeze"):
        make_agent(tmp_path, raw).train_epoch()
    config = patches.check_ppo_config(raw)
    assert config["bounds_loss_coef"] == 0.0
    make_agent(tmp_path, config).train_epoch()


# ---------------------------------------------------------------------- code defects, one process
def test_the_fixed_agent_leaves_rl_games_classes_as_they_are():
    assert A2CBase.update_lr is not patches.FixedA2CAgent.update_lr
    assert a2c_continuous.A2CAgent.train_epoch is ContinuousA2CBase.train_epoch
    assert a2c_continuous.A2CAgent.get_full_state_weights is A2CBase.get_full_state_weights


def test_checkpoints_load_with_weights_only(tmp_path):
    for agent_class in (a2c_continuous.A2CAgent, patches.FixedA2CAgent):
        agent = make_agent(tmp_path / agent_class.__name__, dict(PPO, max_epochs=1, save_best_after=0), agent_class=agent_class)
        agent.train()  # saves the best checkpoint, where rl-games puts a numpy float in last_mean_rewards
        path = os.path.join(agent.nn_dir, "toy.pth")
        if agent_class is a2c_continuous.A2CAgent:
            with pytest.raises(Exception, match="Weights only load failed"):
                torch.load(path, weights_only=True)
        else:
            assert type(torch.load(path, weights_only=True)["last_mean_rewards"]) is float


def test_close_agent_closes_the_vecenv_and_the_writer(tmp_path):
    agent = make_agent(tmp_path, PPO)
    agent.train_epoch()
    patches.close_agent(agent)
    assert agent.vec_env.closed
    assert agent.writer.file_writer is None  # flushed and closed


# ---------------------------------------------------------------------- multi-GPU defects, two gloo ranks
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _normalizer_data(rank: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(5 + rank, OBS_SIZE, dtype=torch.float64, generator=gen) * (1 + rank) + 3 * rank for _ in range(2)]


def _train_two_epochs(train_dir, rank: int, config: dict, fixed: bool) -> dict:
    """Two epochs of rank ``rank`` of 2 over gloo: rl-games' own agent set up as its multi_gpu mode
    sets it up (A2CBase.__init__, minus NCCL and CUDA), or the fixed agent joined to the group."""
    if fixed:
        agent = make_agent(train_dir / f"fixed{rank}", config, seed=rank, offset=2.0 * rank, agent_class=patches.FixedA2CAgent)
        agent.join_data_parallel(rank, 2)
    else:
        if rank != 0:
            config = dict(config, lr_schedule=None)  # as A2CBase.__init__ does on ranks other than 0
        agent = make_agent(train_dir / str(rank), config, seed=rank, offset=2.0 * rank)
        agent.multi_gpu, agent.global_rank, agent.world_size = True, rank, 2
    for _ in range(2):
        agent.train_epoch()
    return {
        "weights": torch.cat([p.detach().flatten() for p in agent.model.parameters()]),
        "stats": [torch.cat([m, v, c.reshape(1)]) for m, v, c in patches.running_stats([agent.model])],
    }


def _rank_main(rank: int, port: int, out_dir) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    lr_config = dict(PPO, schedule_type="standard", lr_schedule="adaptive", kl_threshold=1e9)  # LR x1.5 per mini-epoch
    stats_config = dict(PPO, normalize_value=True, normalize_input=True)  # rl-games' own normalizers (flat obs)
    results = {}
    for fixed in (False, True):
        results[fixed] = {"lr": _train_two_epochs(out_dir, rank, lr_config, fixed),
                          "stats": _train_two_epochs(out_dir, rank, stats_config, fixed)}  # fmt: skip
    normalizers = [RunningMeanStd((OBS_SIZE,)), RunningNormalizer(OBS_SIZE)]
    shared = patches.broadcast_running_stats(normalizers)
    for normalizer in normalizers:
        for batch in _normalizer_data(rank):
            normalizer(batch)
    patches.merge_running_stats(normalizers, shared)
    results["merged"] = [torch.cat([m, v, c.reshape(1)]) for m, v, c in patches.running_stats(normalizers)]
    torch.save(results, out_dir / f"rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Both ranks' results, with rl-games' own agent (False) and the fixed one (True), from one spawn
    of two processes."""
    out_dir = tmp_path_factory.mktemp("ranks")
    mp.spawn(_rank_main, args=(_free_port(), out_dir), nprocs=2)
    return [torch.load(out_dir / f"rank{rank}.pt") for rank in range(2)]


def test_multi_gpu_standard_schedule_keeps_ranks_on_one_lr(two_ranks):
    unpatched = [rank[False]["lr"]["weights"] for rank in two_ranks]
    assert not torch.equal(*unpatched), "rl-games 1.6.5: rank 1 resets to its initial LR, weights drift"
    torch.testing.assert_close(*[rank[True]["lr"]["weights"] for rank in two_ranks], rtol=0, atol=0)


def test_multi_gpu_normalizer_statistics_are_synced(two_ranks):
    unpatched = [rank[False]["stats"]["stats"] for rank in two_ranks]
    assert len(unpatched[0]) == 2, "the input and the value normalizer"
    assert not all(torch.equal(a, b) for a, b in zip(*unpatched)), "rl-games 1.6.5 never syncs them"
    for a, b in zip(*[rank[True]["stats"]["stats"] for rank in two_ranks]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_merged_statistics_equal_those_of_all_ranks_data(two_ranks):
    everything = torch.cat([batch for rank in range(2) for batch in _normalizer_data(rank)])
    for merged_0, merged_1, normalizer in zip(*[rank["merged"] for rank in two_ranks],
                                              [RunningMeanStd((OBS_SIZE,)), RunningNormalizer(OBS_SIZE)]):  # fmt: skip
        normalizer(everything)
        (expected,) = [torch.cat([m, v, c.reshape(1)]) for m, v, c in patches.running_stats([normalizer])]
        torch.testing.assert_close(merged_0, merged_1, rtol=0, atol=0)
        torch.testing.assert_close(merged_0, expected, rtol=1e-10, atol=1e-12)
