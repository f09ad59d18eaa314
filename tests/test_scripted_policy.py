"""The scripted grasp as a test instrument: it must lift objects into the success region."""


from tasks.dextrah.env import DextrahEnv
from tasks.dextrah.scripted_policy import ScriptedGraspPolicy


def test_scripted_grasp_succeeds_in_half_the_episodes_at_level_0(settings):
    env = DextrahEnv(settings, num_envs=16)
    policy = ScriptedGraspPolicy(env)
    finished = []
    while len(finished) < 16:
        result = env.step(policy())
        finished.extend(result.info["episode"]["success"].tolist())
    assert sum(finished[:16]) / 16 >= 0.5


def test_scripted_actions_are_valid_and_move_the_palm_down_to_the_object(settings):
    env = DextrahEnv(settings, num_envs=2)
    policy = ScriptedGraspPolicy(env)
    start = (env.hand_points()[:, 0] - env.object_pose()[:, :3]).norm(dim=-1)
    for _ in range(120):
        actions = policy()
        assert actions.shape == (2, 23) and actions.abs().max() <= 1.0
        env.step(actions)
    end = (env.hand_points()[:, 0] - env.object_pose()[:, :3]).norm(dim=-1)
    assert (end < start - 0.1).all(), (start, end)
