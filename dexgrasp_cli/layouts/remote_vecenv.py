"""RemoteVecEnv: K simulator replicas seen by the learner as one vecenv (the paper's Algorithm 2).

Per step the learner sends every replica a header and its rows of the actions, then receives each
replica's block and images straight into rows of tensors allocated once: the images into the
learner slot itself when the wire is the learner's device, through one staging buffer otherwise.
Replica k's rows are k*N .. k*N+N-1, its worlds' global indices, so the stacked batch is in global
world order. Nothing is allocated per step but views.

A replica that stops answering (its process died, was killed, or its host is gone) ends the wait
with a ``ReplicaLost`` naming it.
"""

from __future__ import annotations

import itertools
import time

import torch
import torch.distributed as dist

from dexgrasp_cli.byte_sizes import tensor_bytes
from dexgrasp_cli.errors import PeerLost, peer_loss_reason
from dexgrasp_cli.layouts import wire
from dexgrasp_cli.layouts.handshake import Hello
from dexgrasp_cli.layouts.wire import Command, StepFormat
from dexgrasp_cli.learner.rollout_stats import VECTOR_SIZE, RolloutStats
from dexgrasp_cli.learner.vecenv import ObservationSlots, TrainingVecEnv


class ReplicaLost(PeerLost):
    """A replica stopped answering; the message names it (rank, host, pid) and says why."""


class RemoteVecEnv(TrainingVecEnv):
    """The replicas of ``hellos`` (rank order), on the learner's ``device``; messages on ``wire_device``."""

    def __init__(self, hellos: list[Hello], device: torch.device | str, wire_device: torch.device | str):
        self.replicas = hellos
        self.device, self.wire_device = torch.device(device), torch.device(wire_device)
        self.env_info = hellos[0].env_info
        self.format = StepFormat.of(self.env_info)
        for hello in hellos[1:]:
            if StepFormat.of(hello.env_info) != self.format:
                raise ValueError(f"{hello.describe()} has other observation spaces than {hellos[0].describe()}")
        ends = list(itertools.accumulate(h.num_envs for h in hellos))
        self.num_envs = ends[-1]
        self._rows = [slice(end - h.num_envs, end) for end, h in zip(ends, hellos)]

        wire_dev, n = self.wire_device, self.num_envs
        self._slots = ObservationSlots(self.env_info, n, self.device)
        self._header = torch.zeros(wire.HEADER_SIZE, dtype=torch.int64, device=wire_dev)
        self._block = self.format.block(n, wire_dev)
        self._direct = wire_dev == self.device  # receive images into the slots, and send actions as given
        self._staging = None if self._direct else self.format.image_buffers(n, wire_dev)
        self._actions = None if self._direct else torch.zeros(n, self.env_info["action_space"].shape[0], device=wire_dev)
        self._stats = [torch.zeros(VECTOR_SIZE, dtype=torch.float64, device=wire_dev) for _ in hellos]
        self._episode_index = torch.zeros(n, dtype=torch.int64, device=wire_dev)
        self._adr_level, self._wait_seconds, self._open = 0, 0.0, True

    # ------------------------------------------------------------------ rl-games vecenv interface
    def step(self, actions: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor, dict]:
        start = time.perf_counter()
        slot = self._receive_observations(self._post_step(actions))
        self._wait_seconds += time.perf_counter() - start
        obs = {"obs": slot["obs"], "states": slot["states"]}
        return obs, slot["rewards"], slot["dones"], {"time_outs": slot["time_outs"]}

    def reset(self) -> dict:
        slot = self._receive_observations(self._post(Command.RESET))
        return {"obs": slot["obs"], "states": slot["states"]}

    def get_env_info(self) -> dict:
        return self.env_info

    # ------------------------------------------------------------------ for the trainer
    def pop_stats(self) -> RolloutStats:
        self._command(Command.POP_STATS)
        self._wait_all([(dist.irecv(buffer, h.rank, tag=wire.TAG_STATS), h)
                        for buffer, h in zip(self._stats, self.replicas)])  # fmt: skip
        stats = RolloutStats.combine(self._stats).with_wait_seconds(self._wait_seconds)
        self._wait_seconds = 0.0
        return stats

    def set_adr_level(self, level: int) -> None:
        self._adr_level = level  # every command's header carries it

    def stagger_episode_ends(self) -> None:
        self._command(Command.STAGGER)

    def state_dict(self) -> dict[str, torch.Tensor]:
        self._command(Command.GET_STATE)
        self._wait_all([(dist.irecv(self._episode_index[rows], h.rank, tag=wire.TAG_STATE), h)
                        for rows, h in zip(self._rows, self.replicas)])  # fmt: skip
        return {"episode_index": self._episode_index.cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state["episode_index"].shape != self._episode_index.shape:
            shape = tuple(state["episode_index"].shape)
            raise ValueError(f"episode counters of {shape} worlds; this run has {self.num_envs}")
        self._episode_index.copy_(state["episode_index"])
        self._command(Command.SET_STATE)
        self._wait_all([(dist.isend(self._episode_index[rows], h.rank, tag=wire.TAG_STATE), h)
                        for rows, h in zip(self._rows, self.replicas)])  # fmt: skip

    def buffer_bytes(self) -> int:
        own = [self._header, self._block, self._staging, self._actions, self._stats, self._episode_index]
        return self._slots.nbytes() + tensor_bytes(own)

    def close(self) -> None:
        """Tell every replica the run is over (once; not after a replica was lost)."""
        if self._open:
            self._open = False
            self._command(Command.STOP)

    # ------------------------------------------------------------------ messages
    def _post(self, command: Command) -> list[tuple[dist.Work, Hello]]:
        """Send ``command`` (with the ADR level) to every replica; the sends are still in flight."""
        wire.header(command, self._adr_level, self._header)
        return [(dist.isend(self._header, h.rank, tag=wire.TAG_HEADER), h) for h in self.replicas]

    def _post_step(self, actions: torch.Tensor) -> list[tuple[dist.Work, Hello]]:
        """Send ``STEP`` and each replica its rows of ``actions``; the sends are still in flight."""
        if not self._direct:
            actions = self._actions.copy_(actions)
        return self._post(Command.STEP) + [(dist.isend(actions[rows].contiguous(), h.rank, tag=wire.TAG_ACTIONS), h)
                                           for rows, h in zip(self._rows, self.replicas)]  # fmt: skip

    def _command(self, command: Command) -> None:
        self._wait_all(self._post(command))

    def _receive_observations(self, sends: list[tuple[dist.Work, Hello]]) -> dict:
        """Wait for ``sends`` and every replica's answer to them, into the next slot."""
        slot = self._slots.take()
        images = slot["obs"] if self._direct else self._staging
        works = list(sends)
        for rows, hello in zip(self._rows, self.replicas):
            works.append((dist.irecv(self._block[rows], hello.rank, tag=wire.TAG_BLOCK), hello))
            for i, (key, _, _) in enumerate(self.format.images):
                works.append((dist.irecv(images[key][rows], hello.rank, tag=wire.TAG_IMAGES + i), hello))
        self._wait_all(works)
        self.format.unpack(self._block, slot)
        if not self._direct:
            for key, _, _ in self.format.images:
                slot["obs"][key].copy_(self._staging[key], non_blocking=slot["obs"][key].is_cuda)
        return slot

    def _wait_all(self, works: list[tuple[dist.Work, Hello]]) -> None:
        for work, hello in works:
            try:
                work.wait()
            except RuntimeError as err:
                self._open = False
                reason = peer_loss_reason(err) or (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
                raise ReplicaLost(f"{hello.describe()} was lost: {reason}") from None
