"""A trained teacher as a policy: the checkpoint's actor, run deterministically (its mean action)."""

from __future__ import annotations

import torch

from dexgrasp_cli.learner.agent import build_model
from dexgrasp_cli.learner.checkpoint import DEXGRASP_KEY
from dexgrasp_cli.learner.vecenv import POLICY_KEYS


class CheckpointPolicy:
    """Maps env observations to actions with the checkpoint's network; LSTM state per world."""

    def __init__(self, checkpoint: dict, num_envs: int, device: torch.device):
        meta = checkpoint[DEXGRASP_KEY]
        self.keys = POLICY_KEYS[meta["modality"]]
        self.model = build_model(meta["policy"], device, num_envs)
        self.model.load_state_dict(checkpoint["model"])
        self.states = [s.to(device) for s in self.model.get_default_rnn_state()]

    @torch.no_grad()
    def mean_and_sigma(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The action distribution's mean and standard deviation (a distillation teacher's labels)."""
        out = self.model({"is_train": False, "obs": {key: obs[key] for key in self.keys}, "rnn_states": self.states})
        self.states = list(out["rnn_states"])
        return out["mus"], out["sigmas"]

    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.mean_and_sigma(obs)[0].clamp(-1.0, 1.0)

    def episodes_ended(self, done: torch.Tensor) -> None:
        """Forget the memory of worlds whose episode ended (a new one starts there)."""
        for state in self.states:
            state[:, done] = 0.0
