"""The teachers DAgger learns from: a train-teacher checkpoint run frozen, or the scripted grasp.

A teacher labels every step with the mean and standard deviation of the action it would take; it
never acts unless the optional teacher-action schedule says so. A checkpoint teacher runs
deterministically on its own observations (depth at its checkpoint's resolution, or privileged
state), its LSTM reset per episode. The scripted grasp reads the simulator's exact state, so its
actions are computed where the worlds live (``ScriptedLabels``, also in a simulator replica) and
reach the learner as one more observation; its labels carry a fixed sigma.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

SCRIPTED = "scripted"
SCRIPTED_ACTION = "scripted_action"
"""The observation that carries the scripted grasp's action for the current state."""


class CheckpointTeacher:
    """A depth or state teacher from ``dexgrasp train-teacher``, frozen."""

    def __init__(self, checkpoint: dict, num_envs: int, device: torch.device | str):
        from dexgrasp_cli.learner.policy import CheckpointPolicy

        self.policy = CheckpointPolicy(checkpoint, num_envs, torch.device(device))
        self.keys = self.policy.keys

    def labels(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy.mean_and_sigma(obs)

    def episodes_ended(self, done: torch.Tensor) -> None:
        self.policy.episodes_ended(done)


class ScriptedTeacher:
    """The scripted grasp's actions (observation ``SCRIPTED_ACTION``) with a fixed sigma."""

    keys = (SCRIPTED_ACTION,)

    def __init__(self, sigma: float, num_actions: int, device: torch.device | str):
        self.sigma = torch.full((num_actions,), sigma, device=device)

    def labels(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        mean = obs[SCRIPTED_ACTION]
        return mean, self.sigma.expand_as(mean)

    def episodes_ended(self, done: torch.Tensor) -> None:
        pass  # the scripted grasp keeps no memory across episodes


class ScriptedLabels:
    """Called where the worlds live after every step and reset: the scripted grasp's actions."""

    def __init__(self, env):
        from dexgrasp_tasks.dextrah.scripted_policy import ScriptedGraspPolicy

        # No retries: a retry restarts the script on a timer the student cannot see, so the same
        # images and joints would be labelled now with the lift and now with the approach.
        self.policy = ScriptedGraspPolicy(env, retries=False)

    def __call__(self) -> dict[str, torch.Tensor]:
        return {SCRIPTED_ACTION: self.policy()}


def teacher_images(checkpoint: dict | None) -> tuple[str, ...]:
    """The images a teacher sees: depth for a depth teacher, none for the others."""
    if checkpoint is None:
        return ()
    return ("depth",) if checkpoint["dexgrasp"]["modality"] == "depth" else ()


def teacher_keys(checkpoint: dict | None) -> tuple[str, ...]:
    """The observations a teacher reads."""
    if checkpoint is None:
        return ScriptedTeacher.keys
    from dexgrasp_cli.learner.vecenv import POLICY_KEYS

    return POLICY_KEYS[checkpoint["dexgrasp"]["modality"]]


def teacher_identity(teacher: str, checkpoint: dict | None) -> dict:
    """What a student checkpoint records of its teacher: which one, and which file exactly."""
    if checkpoint is None:
        return {"kind": SCRIPTED}
    meta = checkpoint["dexgrasp"]
    path = Path(teacher)
    return {"kind": meta["modality"], "path": str(path.resolve()), "sha256": _sha256(path),
            "iteration": meta.get("iteration"), "resolution": meta["resolution"] if meta["modality"] == "depth" else None,
            "adr_level": meta["adr"]["level"]}  # fmt: skip


def build_teacher(checkpoint: dict | None, sigma: float, num_envs: int, num_actions: int, device):
    return ScriptedTeacher(sigma, num_actions, device) if checkpoint is None else CheckpointTeacher(checkpoint, num_envs, device)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
