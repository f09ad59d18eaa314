"""A distilled student as a policy for ``dexgrasp eval``: its mean action, from its own images.

Besides acting, it scores its auxiliary head: the mean distance between the object position it
predicts and the simulator's, over every step it takes.
"""

from __future__ import annotations

import torch

from dexgrasp_cli.config import from_dict
from dexgrasp_cli.distill.dagger import AUX_TARGET
from dexgrasp_cli.distill.student_networks import build_student
from dexgrasp_cli.distill.student_sizes import DepthStudentSizes, StereoStudentSizes
from dexgrasp_cli.learner.checkpoint import DEXGRASP_KEY

SIZES = {"stereo-rgb": ("distill.stereo", StereoStudentSizes), "depth": ("distill.depth", DepthStudentSizes)}


def load_student(checkpoint: dict, device: torch.device | str) -> torch.nn.Module:
    """The student a distill checkpoint describes, with its weights, in eval mode."""
    meta = checkpoint[DEXGRASP_KEY]
    where, sizes_type = SIZES[meta["student"]]
    sizes = from_dict(sizes_type, meta["sizes"], where)
    student = build_student(meta["student"], sizes, tuple(meta["image_shape"][-2:]), meta["proprio_size"], meta["num_actions"])
    student.load_state_dict(checkpoint["student"])
    return student.to(device).eval()


class StudentPolicy:
    """Maps env observations to the student's mean action; LSTM state per world."""

    def __init__(self, checkpoint: dict, num_envs: int, device: torch.device):
        self.student = load_student(checkpoint, device)
        self.state = self.student.initial_state(num_envs, device)
        self._error_sum = torch.zeros((), dtype=torch.float64, device=device)
        self._predictions = 0

    @torch.no_grad()
    def __call__(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        out = self.student({key: obs[key] for key in self.student.obs_keys}, self.state)
        self.state = out.state
        self._error_sum += torch.linalg.vector_norm(out.object_pos - obs[AUX_TARGET], dim=-1).double().sum()
        self._predictions += out.object_pos.shape[0]
        return out.mu.clamp(-1.0, 1.0)

    def episodes_ended(self, done: torch.Tensor) -> None:
        for part in self.state:
            part[:, done] = 0.0

    def metrics(self) -> dict:
        """The aux head's mean object-position error so far, in cm."""
        return {"mean_object_pos_error_cm": 100.0 * float(self._error_sum) / max(1, self._predictions)}
