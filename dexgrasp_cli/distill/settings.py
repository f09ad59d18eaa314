"""Typed settings of distillation. The numbers live in yaml/distill.yaml."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from dexgrasp_cli.distill.student_sizes import DepthStudentSizes, StereoStudentSizes
from dexgrasp_cli.learner.settings import RunSettings


@dataclass(frozen=True)
class DistillRunSettings(RunSettings):
    where: ClassVar[str] = "distill.run"


@dataclass(frozen=True)
class DistillSettings:
    """DAgger as DextrAH-RGB's release runs it; every field is documented in yaml/distill.yaml."""

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
    run: DistillRunSettings

    def __post_init__(self) -> None:
        for name in ("horizon", "seq_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"distill.{name} must be >= 1, got {getattr(self, name)}")
        if self.horizon % self.seq_length:
            raise ValueError(f"distill.horizon ({self.horizon}) must be a multiple of distill.seq_length ({self.seq_length})")
        for name in ("learning_rate", "grad_norm", "scripted_sigma"):
            if not getattr(self, name) > 0:
                raise ValueError(f"distill.{name} must be > 0, got {getattr(self, name)}")
        for name in ("aux_weight", "success_hold_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"distill.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("teacher_action_prob", "teacher_action_decay"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"distill.{name} must be in [0, 1], got {getattr(self, name)}")

    def teacher_action_probability(self, iteration: int) -> float:
        """The chance that the teacher acts in a world during ``iteration`` (0 from the start)."""
        return self.teacher_action_prob * self.teacher_action_decay**iteration

    def student_sizes(self, kind: str) -> StereoStudentSizes | DepthStudentSizes:
        return self.stereo if kind == "stereo-rgb" else self.depth
