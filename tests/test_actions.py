"""The two action spaces: joint deltas, and DextrAH's palm pose reached by IK (tasks/dextrah/actions.py)."""

import dataclasses
import math

import mujoco
import numpy as np
import pytest
import torch

from dexgrasp_tasks.dextrah import palm_ik
from dexgrasp_tasks.dextrah.actions import HAND_SYNERGIES
from dexgrasp_tasks.dextrah.env import NUM_ARM_JOINTS, DextrahEnv
from dexgrasp_tasks.dextrah.rotations import euler_zyx_to_matrix, matrix_to_euler_zyx


def _with_space(settings, space: str):
    return dataclasses.replace(settings, actions=dataclasses.replace(settings.actions, space=space))


def test_euler_zyx_matches_mujoco():
    angles = torch.randn(8, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    ours = euler_zyx_to_matrix(angles).numpy()
    for i in range(8):
        quat, expected = np.zeros(4), np.zeros(9)
        mujoco.mju_euler2Quat(quat, angles[i].numpy(), "zyx")  # lower case: intrinsic
        mujoco.mju_quat2Mat(expected, quat)
        np.testing.assert_allclose(ours[i], expected.reshape(3, 3), atol=1e-12)
    pitch_in_range = angles.clone()
    pitch_in_range[:, 1] = pitch_in_range[:, 1].clamp(-1.5, 1.5)
    back = euler_zyx_to_matrix(matrix_to_euler_zyx(euler_zyx_to_matrix(pitch_in_range)))
    torch.testing.assert_close(back, euler_zyx_to_matrix(pitch_in_range))


def test_joint_deltas_move_each_target_by_its_scale(settings):
    env = DextrahEnv(_with_space(settings, "joint_deltas"), num_envs=2)
    before = env.targets.clone()
    actions = torch.linspace(-1, 1, env.num_actions).expand(2, -1)
    env.step(actions)
    scale = [settings.actions.arm_delta_scale] * NUM_ARM_JOINTS + [settings.actions.hand_delta_scale] * 16
    expected = (before + torch.tensor(scale) * actions).clamp(env.joint_low, env.joint_high)
    torch.testing.assert_close(env.targets, expected)


@pytest.fixture(scope="module")
def palm_env(settings):
    return DextrahEnv(_with_space(settings, "palm_pose"), num_envs=2)


def test_palm_pose_reaches_the_pose_its_bounds_give(palm_env, settings):
    """Action 0 is the middle of the bounds; a second world aims elsewhere, clear of the object."""
    env, bounds = palm_env, settings.actions
    env.reset()
    actions = torch.zeros(2, env.num_actions)
    actions[1, :6] = torch.tensor([0.3, -0.2, 0.4, 0.3, -0.2, 0.1])
    for _ in range(120):
        env.step(actions)
    low, high = torch.tensor(bounds.palm_position_low), torch.tensor(bounds.palm_position_high)
    want_position = low + (actions[:, :3] + 1) / 2 * (high - low)
    want_angles = torch.tensor(bounds.palm_euler_centre_deg) * math.pi / 180 + actions[:, 3:6] * math.radians(bounds.palm_euler_half_range_deg)
    torch.testing.assert_close(env.hand_points()[:, 0], want_position, atol=0.015, rtol=0)
    relative = euler_zyx_to_matrix(want_angles).transpose(1, 2) @ env.sim.xmat[:, env.palm_body].reshape(-1, 3, 3)
    angle = torch.arccos(((relative.diagonal(dim1=1, dim2=2).sum(-1) - 1) / 2).clamp(-1, 1))
    assert (angle < math.radians(4)).all(), angle


def test_the_ik_solves_on_a_cpu_agree_with_torch():
    """The palm IK's batched solve through numpy (its CPU path) gives torch.linalg.solve's answer."""
    gen = torch.Generator().manual_seed(0)
    jac = torch.randn(64, 6, NUM_ARM_JOINTS, generator=gen)
    gram = jac @ jac.transpose(1, 2) + palm_ik.DAMPING**2 * torch.eye(6)
    rhs = torch.randn(64, 6, 1, generator=gen)
    solved = palm_ik._solve(gram, rhs)
    assert solved.dtype == torch.float32 and solved.shape == rhs.shape
    torch.testing.assert_close(solved, torch.linalg.solve(gram, rhs), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gram @ solved, rhs, rtol=1e-4, atol=1e-4)


def _damped_least_squares_float64(jac: np.ndarray, error: np.ndarray) -> np.ndarray:
    gram = jac @ jac.transpose(0, 2, 1) + palm_ik.DAMPING**2 * np.eye(6)
    return (jac.transpose(0, 2, 1) @ np.linalg.solve(gram, error[..., None]))[..., 0]


@pytest.mark.parametrize("at_limits", [False, True])
def test_arm_joints_at_a_limit_sit_out_the_palm_ik(palm_env, at_limits):
    """A joint at a limit that the first solve pushes further keeps its position, and the others
    solve for the pose without it; away from the limits one solve is the answer. Against damped
    least squares in float64."""
    env, arm = palm_env, slice(0, NUM_ARM_JOINTS)
    env.reset()
    if at_limits:  # every arm joint at one of its limits, alternately low and high
        at_low = (torch.arange(NUM_ARM_JOINTS) % 2 == 0).expand(2, -1)
        env.sim.qpos[:, arm] = torch.where(at_low, env.joint_low[arm] + 0.01, env.joint_high[arm] - 0.01)
        env.sim.forward_kinematics()
    q = env.sim.qpos[:, arm].clone()
    palm = env.hand_points()[:, 0]
    error = torch.tensor([[0.05, -0.05, 0.05], [-0.05, 0.05, -0.05]])  # under the cap, no turn
    rotation = env.sim.xmat[:, env.palm_body].reshape(-1, 3, 3)
    targets = palm_ik.arm_joint_targets(env, NUM_ARM_JOINTS, palm + error, rotation, 1.0)

    jac = env.sim.jacobian(env.palm_body, palm)[:, :, arm].double().numpy()
    pose_error = np.concatenate([error.double().numpy(), np.zeros((2, 3))], axis=1)
    first = _damped_least_squares_float64(jac, pose_error)
    low = env.joint_low[arm].double().numpy() + palm_ik.LIMIT_MARGIN
    high = env.joint_high[arm].double().numpy() - palm_ik.LIMIT_MARGIN
    q64 = q.double().numpy()
    blocked = ((q64 <= low) & (first < 0)) | ((q64 >= high) & (first > 0))
    assert blocked.any() == at_limits
    expected = _damped_least_squares_float64(jac * ~blocked[:, None, :], pose_error)
    dq = (targets - q).double().numpy()
    assert (dq[blocked] == 0).all()
    np.testing.assert_allclose(dq, expected, rtol=0, atol=2e-6)


def test_hand_synergies_are_orthonormal():
    synergies = torch.tensor(HAND_SYNERGIES, dtype=torch.float64)
    torch.testing.assert_close(synergies @ synergies.T, torch.eye(5, dtype=torch.float64), atol=2e-4, rtol=0)


def test_palm_pose_hand_targets_are_the_synergy_pose_nearest_home(palm_env):
    """A second code path: the least-norm change from home with the asked synergy coordinates."""
    env, space = palm_env, palm_env.action_space
    actions = torch.rand(4, env.num_actions, generator=torch.Generator().manual_seed(2)) * 2 - 1
    wanted = space.synergy_low + (actions[:, 6:] + 1) / 2 * (space.synergy_high - space.synergy_low)
    home = env.home[NUM_ARM_JOINTS:].double()
    synergies = torch.tensor(HAND_SYNERGIES, dtype=torch.float64)
    change = torch.linalg.lstsq(synergies, (wanted.double() - home @ synergies.T).T, driver="gelsd").solution.T
    torch.testing.assert_close(space.hand_targets(actions).double(), home + change, atol=1e-4, rtol=0)
    env.step(actions[:2])
    torch.testing.assert_close(env.targets[:, NUM_ARM_JOINTS:], space.hand_targets(actions[:2]).clamp(
        env.joint_low[NUM_ARM_JOINTS:], env.joint_high[NUM_ARM_JOINTS:]))  # fmt: skip
    assert env.observation_shapes()["proprio"] == (79 + env.num_actions,)


def test_palm_pose_actions_for_inverts_the_mapping(palm_env):
    """What the scripted grasp asks for is what the env's mapping gives back."""
    env = palm_env
    actions = torch.rand(2, env.num_actions, generator=torch.Generator().manual_seed(1)) * 2 - 1
    position, rotation = env.action_space.palm_targets(actions)
    hand = env.action_space.hand_targets(actions)
    torch.testing.assert_close(env.action_space.actions_for(position, rotation, hand), actions, atol=1e-5, rtol=0)


def test_actions_of_the_other_space_are_refused(palm_env):
    with pytest.raises(ValueError, match=r"actions must be \(2, 11\) for palm_pose, got \(2, 23\)"):
        palm_env.step(torch.zeros(2, 23))
