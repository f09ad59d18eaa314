"""Typed settings of distillation. The numbers live in yaml/distill.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from dexgrasp_cli.distill.student_sizes import DepthStudentSizes, StereoStudentSizes
from dexgrasp_cli.learner.settings import RunSettings
from dexgrasp_tasks.bounds import Bounded, bounds


@dataclass(frozen=True)
class DistillSettings(Bounded):
    """DAgger as DextrAH-RGB's release runs it; every field is documented in yaml/distill.yaml."""

    BOUNDS = bounds(
        horizon=">= 1", seq_length=">= 1", learning_rate="> 0", grad_norm="> 0", aux_weight=">= 0",
        success_hold_s=">= 0", scripted_sigma="> 0", teacher_action_prob="in [0, 1]", teacher_action_decay="in [0, 1]",
        backbone_weights="any",  # a file, checked by load_distill_settings
    )  # fmt: skip

    horizon: int
    """Policy steps per iteration (statistics, logging and checkpoints happen between iterations)."""
    seq_length: int
    """Steps backpropagated through per gradient step; horizon must be a multiple of it."""
    learning_rate: float
    grad_norm: float
    aux_weight: float
    """Weight of the object-position error in the loss."""
    success_hold_s: float
    """Episodes also end after this long in the success region (task.success_hold_s during distillation)."""
    scripted_sigma: float
    """The sigma the scripted teacher's labels carry (it gives actions only)."""
    teacher_action_prob: float
    """Probability that the teacher's action drives a world, at iteration 0."""
    teacher_action_decay: float
    """Factor on that probability per iteration."""
    backbone_weights: Optional[str]
    """A torchvision resnet18 state dict to start the stereo encoder from."""
    stereo: StereoStudentSizes
    depth: DepthStudentSizes
    run: RunSettings

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.horizon % self.seq_length:
            raise ValueError(f"distill.horizon ({self.horizon}) must be a multiple of distill.seq_length ({self.seq_length})")

    def teacher_action_probability(self, iteration: int) -> float:
        """The chance that the teacher acts in a world during ``iteration`` (0 from the start)."""
        return self.teacher_action_prob * self.teacher_action_decay**iteration

    def student_sizes(self, kind: str) -> StereoStudentSizes | DepthStudentSizes:
        return self.stereo if kind == "stereo-rgb" else self.depth
