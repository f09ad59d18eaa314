"""Grasp starts: a start-state curriculum that begins some episodes with the hand closed on the object.

From the paper's start (arm at home, object on the table) PPO needs far more env-steps than a CPU
gives in minutes before it first closes the hand around an object and raises it, so a short run
never experiences a lift to learn from. With ``task.grasp_start_fraction`` > 0, each new episode
instead starts, with that probability, from the state the scripted grasp reaches just before it
lifts: the object still resting on the table, the fingers closed on it. The states are recorded
once, when the env is built, by running the scripted grasp in every world from a fresh episode at
the ADR level of that moment. DextrAH has no such curriculum; the default fraction is 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from dexgrasp_tasks.dextrah.scripted_policy import LIFT_AT, ScriptedGraspPolicy

if TYPE_CHECKING:
    from dexgrasp_tasks.dextrah.env import DextrahEnv


@dataclass(frozen=True)
class GraspStarts:
    """Per world: the simulator state, joint targets and last action where the scripted grasp lifts."""

    qpos: torch.Tensor
    qvel: torch.Tensor
    targets: torch.Tensor
    last_action: torch.Tensor
    recorded: torch.Tensor
    """(N,) bool: the scripted episode reached the lift without ending; other worlds never start here."""

    @classmethod
    def record(cls, env: DextrahEnv) -> GraspStarts:
        """Run the scripted grasp from a fresh episode in every world up to its lift. Leaves the
        worlds mid-episode: the caller resets them."""
        env.reset()
        env.episode_limit.fill_(LIFT_AT + 1)  # no timeout before the lift, whatever the episode length
        policy = ScriptedGraspPolicy(env)
        for _ in range(LIFT_AT):
            env.step(policy())
        sim = env.sim
        return cls(sim.qpos.clone(), sim.qvel.clone(), env.targets.clone(), env.last_action.clone(),
                   env.episode_step == LIFT_AT)  # fmt: skip
