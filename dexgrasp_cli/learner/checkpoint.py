"""Checkpoints: teachers (rl-games' own keys plus what dexgrasp needs to resume and evaluate) and
distilled students.

A teacher checkpoint is a ``torch.save`` dict with rl-games' keys (``model``, ``optimizer``, ``epoch``,
``frame``, ``last_mean_rewards``, ...), so rl-games' ``PpoPlayerContinuous`` can restore it, and
one more key, ``dexgrasp``, holding the format version, the modality and resolution, the resolved
config, the ADR state, the learning-rate schedule's state and the RNG states. Every value is a
tensor or a plain Python value, so it loads with ``weights_only=True``. A student checkpoint
(dexgrasp_cli/distill/) has ``student`` and ``optimizer`` instead of rl-games' keys, and its
``dexgrasp`` entry says ``role: student``; each role has its own format version.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dexgrasp_cli.atomic import write_atomic

# 2: task.actions replaced task.arm/hand_action_scale; 3: palm_pose drives hand synergies;
# 4: depth noise gained normal_noise_scale.
FORMAT_VERSION = 4
STUDENT_FORMAT_VERSION = 1
DEXGRASP_KEY = "dexgrasp"
TEACHER, STUDENT = "teacher", "student"
_ROLE_FORMATS = {TEACHER: ("model", FORMAT_VERSION), STUDENT: ("student", STUDENT_FORMAT_VERSION)}
"""Per role: the key holding the weights, and the format version this dexgrasp reads."""


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message is one line."""


def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic save: a reader never sees half a checkpoint, and a failed save keeps the old one."""
    write_atomic(path, lambda file: torch.save(state, file))


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu", role: str | None = None) -> dict:
    """Read and check a dexgrasp checkpoint (of ``role`` when given, else either); anything unusable
    is a one-line CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 (torch raises many kinds for truncated or foreign files)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} cannot be read ({reason[:120]})") from None
    meta = state.get(DEXGRASP_KEY) if isinstance(state, dict) else None
    found = meta.get("role", TEACHER) if isinstance(meta, dict) else None
    if found not in _ROLE_FORMATS or _ROLE_FORMATS[found][0] not in state:
        raise CheckpointError(f"{path} is not a dexgrasp checkpoint")
    if role is not None and found != role:
        raise CheckpointError(f"{path} is a {found} checkpoint; a {role} checkpoint is needed here")
    version = _ROLE_FORMATS[found][1]
    if meta.get("format_version") != version:
        raise CheckpointError(
            f"checkpoint {path} has format version {meta.get('format_version')}; this dexgrasp reads {found}s of {version}"
        )
    return state


def checkpoint_role(state: dict) -> str:
    """``teacher`` or ``student``."""
    return state[DEXGRASP_KEY].get("role", TEACHER)


def rng_state() -> dict:
    """The torch RNG states (CPU and every visible GPU) that training draws from."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
