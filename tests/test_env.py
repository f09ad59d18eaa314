"""DextrahEnv: stability, overflow handling, determinism, global indexing and ADR physics."""

import dataclasses

import torch

from dexgrasp_assets.objects import procedural_objects
from dexgrasp_tasks.dextrah.actions import NUM_ACTIONS
from dexgrasp_tasks.dextrah.env import DextrahEnv


def _random_actions(settings, num_envs: int, steps: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(steps, num_envs, NUM_ACTIONS[settings.actions.space], generator=gen) * 2 - 1


def _rollout(env: DextrahEnv, actions: torch.Tensor) -> torch.Tensor:
    obs = []
    for a in actions:
        result = env.step(a)
        obs.append(torch.cat([result.obs["proprio"], result.obs["critic"]], dim=-1))
    return torch.stack(obs)


def test_observation_and_reward_shapes(settings):
    env = DextrahEnv(settings, num_envs=4)
    k, a = env.num_objects, env.num_actions
    assert env.observation_shapes() == {"proprio": (79 + a,), "state": (10 + k,), "critic": (118 + a + k,), "object_pos": (3,)}
    result = env.step(torch.zeros(4, env.num_actions))
    assert result.reward.shape == (4,)
    assert set(result.info["reward_terms"]) == {"reach", "goal", "lift", "curl"}
    total = torch.stack(list(result.info["reward_terms"].values())).sum(0)
    torch.testing.assert_close(result.reward, total)


def test_1000_random_steps_stay_finite(settings):
    env = DextrahEnv(settings, num_envs=16)
    env.adr.set_level(50)
    env.reset()
    for a in _random_actions(settings, 16, 1000, seed=1):
        result = env.step(a)
        for name, value in result.obs.items():
            assert torch.isfinite(value).all(), name
        assert torch.isfinite(result.reward).all()
        assert torch.isfinite(env.sim.qpos).all()


def test_overflowing_worlds_are_reset_and_counted(settings):
    tiny = dataclasses.replace(settings, sim=dataclasses.replace(settings.sim, njmax=8))
    env = DextrahEnv(tiny, num_envs=4)
    overflowed = 0
    for a in _random_actions(settings, 4, 60, seed=2):
        result = env.step(a)
        overflowed += int(result.info["overflow"].sum())
        assert not (result.info["overflow"] & ~result.truncated).any(), "an overflow must end the episode"
        assert torch.isfinite(result.obs["critic"]).all()
    assert overflowed > 0, "the object landing needs more than 8 constraint rows"
    assert env.overflow_resets == overflowed
    assert not env.sim.corrupted_worlds().any(), "reset worlds start clean"


def test_same_seed_same_trajectory_and_different_seeds_differ(settings):
    actions = _random_actions(settings, 4, 30, seed=3)
    runs = []
    for seed in (7, 7, 8):
        env = DextrahEnv(settings, num_envs=4, seed=seed)
        env.adr.set_level(50)  # level 0 randomizes nothing, so seeds would not matter
        env.reset()
        runs.append(_rollout(env, actions))
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0], runs[2])


def test_worlds_of_a_large_env_equal_a_small_env_with_offset(settings):
    actions = _random_actions(settings, 8, 40, seed=4)
    big = DextrahEnv(settings, num_envs=8, seed=5)
    small = DextrahEnv(settings, num_envs=3, seed=5, env_offset=2)
    for env in (big, small):
        env.adr.set_level(50)
        env.reset()
    torch.testing.assert_close(small.object_ids, big.object_ids[2:5])
    big_obs = _rollout(big, actions)
    small_obs = _rollout(small, actions[:, 2:5])
    torch.testing.assert_close(small_obs, big_obs[:, 2:5], atol=1e-5, rtol=1e-5)


def test_level_50_parameters_lie_in_the_final_ranges(settings):
    env = DextrahEnv(settings, num_envs=16)
    env.adr.set_level(50)
    env.reset()
    model, final = env.sim.model, {n: r.final for n, r in settings.adr.ranges.items()}
    rnd = env.randomizer

    def within(values, name):
        low, high = final[name]
        assert (values >= low - 1e-5).all() and (values <= high + 1e-5).all(), name
        assert values.max() - values.min() > 0.1 * (high - low), f"{name} is not randomized"

    within(model["geom_friction"][:, env.sim.object_geom, 0] / rnd.friction[:, env.sim.object_geom], "friction_scale")
    within(model["actuator_gainprm"][:, 0, 0] / rnd.kp[:, 0], "joint_stiffness_scale")
    within(-model["actuator_biasprm"][:, 0, 2] / rnd.kv[:, 0], "joint_damping_scale")
    within(model["dof_frictionloss"][:, 0] / settings.arm_joint_friction, "joint_friction_scale")
    within(model["body_mass"][:, env.sim.object_body] / rnd.mass, "object_mass_scale")
    spawn = env.object_pose()[:, :2] - torch.tensor(settings.spawn_xy)
    assert (spawn[:, 0].abs() <= final["spawn_width_x"][1] / 2).all()
    assert (spawn[:, 1].abs() <= final["spawn_width_y"][1] / 2).all()
    assert spawn.abs().max() > 0.05


def test_worlds_with_different_masses_accelerate_as_f_over_m(settings):
    """The same push on the same object in free fall: velocity gain is F * t / m in each world."""
    env = DextrahEnv(settings, num_envs=2, objects=procedural_objects(1, seed=0))
    env.adr.set_level(50)
    env.reset()
    masses = env.sim.model["body_mass"][:, env.sim.object_body].clone()
    assert abs(masses[0] - masses[1]) > 0.05 * masses.min()
    push = 2.0  # N along +y, while the object falls from 0.5 m and nothing touches it
    env.sim.qvel.zero_()
    for _ in range(6):
        env.sim.xfrc_applied[:, env.sim.object_body, :3] = torch.tensor([0.0, push, 0.0])
        env.sim.step(1)
    vy = env.sim.qvel[:, 24]
    expected = push * 6 * settings.physics_dt / masses
    torch.testing.assert_close(vy, expected, rtol=2e-3, atol=1e-5)


def test_staggered_episodes_end_apart_and_stay_out_of_the_statistics(settings):
    length = 12
    env = DextrahEnv(dataclasses.replace(settings, episode_length=length), num_envs=8, seed=9)
    env.stagger_episode_ends()
    first_end = torch.zeros(8, dtype=torch.long)
    reported = []
    for step in range(1, 2 * length + 1):
        result = env.step(torch.zeros(8, env.num_actions))
        assert not result.terminated.any()
        first_end = torch.where(result.truncated & (first_end == 0), step, first_end)
        reported += result.info["episode"]["length"].tolist()
    assert ((first_end >= 1) & (first_end <= length)).all()
    assert len(set(first_end.tolist())) > 2, "the cut episodes should end at different steps"
    # Every world's first episode ends by step `length`, and the whole one after it by 2 * length.
    # Only whole episodes are reported: a first episode counts only if its draw was the full length.
    assert reported == [float(length)] * (8 + int((first_end == length).sum()))
