"""What the learner and a simulator replica send each other (the paper's Algorithms 1 and 2).

Every message has a fixed shape, known to both sides once the replica has described its spaces, so
the learner receives into tensors it allocated once. The learner opens each exchange with a header,
``[command, adr_level]`` (int64): every command carries the ADR level, so a replica always steps
with the learner's level. After ``STEP`` come the replica's actions; the replica answers ``STEP`` and
``RESET`` with one float32 block per world (the vector observations, the critic's observations, the
reward and the done and time-out flags) and one tensor per image, in the image's own dtype (depth
travels as float16, as it is stored).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from rl_games.algos_torch.torch_ext import numpy_to_torch_dtype_dict

HEADER_SIZE = 2
# Tags keep the messages of one exchange apart (gloo matches by peer and tag; NCCL keeps order).
TAG_HEADER, TAG_ACTIONS, TAG_BLOCK, TAG_STATS, TAG_STATE = range(5)
TAG_IMAGES = 8
"""Image i of the step format travels with tag TAG_IMAGES + i."""


class Command(enum.IntEnum):
    STEP = 0
    """Actions follow; answer with the step's block and images."""
    RESET = 1
    """Start new episodes in every world; answer with the block (no reward, no flags) and images."""
    STAGGER = 2
    """Cut every world's current episode short at a random length (DextrahEnv.stagger_episode_ends)."""
    POP_STATS = 3
    """Answer with the statistics vector since the last one (learner/rollout_stats.py)."""
    GET_STATE = 4
    """Answer with the worlds' episode counters (int64)."""
    SET_STATE = 5
    """Episode counters follow; use them."""
    STOP = 6
    """The run is over: leave the loop."""


def header(command: Command, adr_level: int, out: torch.Tensor) -> torch.Tensor:
    out[0], out[1] = int(command), int(adr_level)
    return out


@dataclass(frozen=True)
class StepFormat:
    """The layout of a replica's answer to STEP and RESET, from the spaces of its vecenv."""

    columns: tuple[tuple[str, int, int], ...]
    """(name, first, end) columns of the float32 block: each vector observation by its key, then
    ``states`` (the critic's), ``rewards``, ``dones`` and ``time_outs``."""
    images: tuple[tuple[str, tuple[int, ...], torch.dtype], ...]
    """(key, per-world shape, dtype) of each image observation, sent as tensors of their own."""

    @classmethod
    def of(cls, env_info: dict) -> StepFormat:
        spaces = env_info["observation_space"].spaces
        widths = [(key, space.shape[0]) for key, space in spaces.items() if len(space.shape) == 1]
        widths += [("states", env_info["state_space"].shape[0]), ("rewards", 1), ("dones", 1), ("time_outs", 1)]
        columns, first = [], 0
        for name, width in widths:
            columns.append((name, first, first + width))
            first += width
        images = tuple((key, tuple(space.shape), numpy_to_torch_dtype_dict[space.dtype])
                       for key, space in spaces.items() if len(space.shape) > 1)  # fmt: skip
        return cls(tuple(columns), images)

    @property
    def width(self) -> int:
        return self.columns[-1][2]

    def block(self, num_envs: int, device: torch.device | str) -> torch.Tensor:
        return torch.zeros(num_envs, self.width, dtype=torch.float32, device=device)

    def image_buffers(self, num_envs: int, device: torch.device | str) -> dict[str, torch.Tensor]:
        return {key: torch.zeros(num_envs, *shape, dtype=dtype, device=device) for key, shape, dtype in self.images}

    def pack(self, block: torch.Tensor, obs: dict, rewards=None, dones=None, time_outs=None) -> None:
        """Write a vecenv's ``obs`` (and, after a step, its rewards and flags) into ``block``."""
        sources = dict(obs["obs"], states=obs["states"], rewards=rewards, dones=dones, time_outs=time_outs)
        for name, first, end in self.columns:
            if name in sources and sources[name] is not None:
                block[:, first:end].copy_(sources[name].reshape(block.shape[0], end - first))
            elif name in sources:  # a reset has no reward nor flags
                block[:, first:end].zero_()

    def unpack(self, block: torch.Tensor, slot: dict) -> None:
        """Copy the blocks of every replica, stacked in world order, into a learner slot
        (vecenv.ObservationSlots); the copies convert the flags to the slot's dtypes."""
        targets = dict(slot["obs"], states=slot["states"], rewards=slot["rewards"], dones=slot["dones"],
                       time_outs=slot["time_outs"])  # fmt: skip
        for name, first, end in self.columns:
            target = targets[name]
            target.copy_(block[:, first:end].reshape(target.shape), non_blocking=target.is_cuda)
