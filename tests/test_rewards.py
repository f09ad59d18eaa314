"""Reward terms against their closed forms (NVIDIA's DextrAH release) on constructed states."""

import math

import torch

from dexgrasp_tasks.dextrah.rewards import reward_terms


def test_each_term_equals_its_closed_form(settings):
    w = settings.rewards
    goal = torch.tensor([-0.5, 0.0, 0.75])
    obj = torch.tensor([[-0.5, 0.1, 0.45], [-0.5, 0.0, 0.75]])
    points = obj[:, None] + torch.tensor([[0.0, 0.0, 0.05], [0.02, 0, 0], [0, 0.03, 0], [0, 0, 0.01], [-0.04, 0, 0]])
    curl_pose = torch.zeros(16)
    curl_pose[12:] = torch.tensor([1.5, 0.601, 0.338, 0.608])
    hand_q = curl_pose.expand(2, 16).clone()
    hand_q[0, 1] += 0.5
    hand_q[0, 13] -= 0.2
    terms = reward_terms(points, obj, goal, hand_q, curl_pose, w, goal_sharpness=-15.0, lift_weight=5.0)

    # World 0: farthest hand point is 0.05 away; object 0.1 sideways and 0.3 below the goal.
    assert math.isclose(terms["reach"][0].item(), 1.0 * math.exp(-10 * 0.05), rel_tol=1e-5)
    assert math.isclose(terms["goal"][0].item(), 5.0 * math.exp(-15 * math.hypot(0.1, 0.3)), rel_tol=1e-5)
    assert math.isclose(terms["lift"][0].item(), 5.0 * math.exp(-8.5 * 0.3), rel_tol=1e-5)
    assert math.isclose(terms["curl"][0].item(), -0.01 * (0.5**2 + 0.2**2), rel_tol=1e-5)
    # World 1: object at the goal, hand at the curl pose.
    assert math.isclose(terms["goal"][1].item(), 5.0, rel_tol=1e-6)
    assert math.isclose(terms["lift"][1].item(), 5.0, rel_tol=1e-6)
    assert terms["curl"][1].item() == 0.0


def test_adr_schedules_goal_sharpness_and_lift_weight(settings):
    from dexgrasp_tasks.dextrah.adr import ADR

    adr = ADR(settings.adr, level=50)
    assert adr.range("goal_sharpness") == (-20.0, -20.0)
    assert adr.range("lift_weight") == (0.0, 0.0)
    adr.set_level(25)
    assert adr.range("goal_sharpness")[1] == -17.5
