"""A simulator replica (the paper's Algorithm 1): its share of the worlds and their renderer, no more.

A replica holds a DextrahEnv of N worlds (global index k*N ..) behind a LocalVecEnv, and serves the
learner's commands (wire.py) until ``STOP``: no experience buffer, no network, no optimizer. Its
statistics are summed where the worlds live and sent once per iteration, on request.

A replica ignores SIGINT and SIGTERM: the learner decides when the run ends (it finishes its
iteration, saves, then sends ``STOP``). If the learner dies, the next receive fails and the replica
exits with an error.
"""

from __future__ import annotations

import signal

import torch
import torch.distributed as dist

from dexgrasp_cli.byte_sizes import tensor_bytes
from dexgrasp_cli.layouts import wire
from dexgrasp_cli.layouts.handshake import Hello, exchange
from dexgrasp_cli.layouts.topology import Topology
from dexgrasp_cli.layouts.wire import Command, StepFormat
from dexgrasp_cli.learner.vecenv import LocalVecEnv


def serve_replica(venv: LocalVecEnv, topology: Topology) -> None:
    """Introduce ``venv`` to the learner, then serve it until it says stop."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    hello = Hello.of_this_process(topology, str(venv.env.device), venv.num_envs, venv.get_env_info())
    _, plan = exchange(topology, hello)
    ReplicaServer(venv, topology.learner_rank, venv.env.device if plan.wire_device == "cuda" else "cpu").serve()


class ReplicaServer:
    """The command loop; every message buffer is allocated here, once."""

    def __init__(self, venv: LocalVecEnv, learner_rank: int, wire_device: torch.device | str):
        self.venv, self.learner = venv, learner_rank
        self.wire_device = torch.device(wire_device)
        self.format = StepFormat.of(venv.get_env_info())
        n = venv.num_envs
        self.header = torch.zeros(wire.HEADER_SIZE, dtype=torch.int64, device=self.wire_device)
        self.actions = torch.zeros(n, venv.action_space.shape[0], device=self.wire_device)
        self.block = self.format.block(n, self.wire_device)
        staged = self.wire_device != venv.device  # images leave the GPU through host buffers
        self.staging = self.format.image_buffers(n, self.wire_device) if staged else None
        self.episode_index = torch.zeros(n, dtype=torch.int64, device=self.wire_device)

    def buffer_bytes(self) -> int:
        """Bytes of the message buffers (the vecenv's own slots not included)."""
        return tensor_bytes([self.header, self.actions, self.block, self.staging, self.episode_index])

    def serve(self) -> None:
        venv = self.venv
        while True:
            dist.recv(self.header, self.learner, tag=wire.TAG_HEADER)
            command, level = Command(int(self.header[0])), int(self.header[1])
            venv.set_adr_level(level)
            if command is Command.STOP:
                return
            if command is Command.STEP:
                dist.recv(self.actions, self.learner, tag=wire.TAG_ACTIONS)
                self._send(self.step_worlds())
            elif command is Command.RESET:
                self._send(self.answer(venv.reset()))
            elif command is Command.STAGGER:
                venv.stagger_episode_ends()
            elif command is Command.POP_STATS:
                dist.send(venv.pop_stats().vector.to(self.wire_device), self.learner, tag=wire.TAG_STATS)
            elif command is Command.GET_STATE:
                self.episode_index.copy_(venv.state_dict()["episode_index"])
                dist.send(self.episode_index, self.learner, tag=wire.TAG_STATE)
            elif command is Command.SET_STATE:
                dist.recv(self.episode_index, self.learner, tag=wire.TAG_STATE)
                venv.load_state_dict({"episode_index": self.episode_index.cpu()})

    def step_worlds(self) -> list[torch.Tensor]:
        """Step the worlds with ``actions``; return the answer to send."""
        obs, rewards, dones, infos = self.venv.step(self.actions.to(self.venv.device))
        return self.answer(obs, rewards, dones, infos["time_outs"])

    def answer(self, obs: dict, rewards=None, dones=None, time_outs=None) -> list[torch.Tensor]:
        """The block, then each image (staged on the wire's device), ready to send."""
        self.format.pack(self.block, obs, rewards, dones, time_outs)
        images = [obs["obs"][key] for key, _, _ in self.format.images]
        if self.staging is not None:
            images = [self.staging[key].copy_(image) for (key, _, _), image in zip(self.format.images, images)]
        return [self.block, *images]

    def _send(self, message: list[torch.Tensor]) -> None:
        block, *images = message
        dist.send(block, self.learner, tag=wire.TAG_BLOCK)
        for i, image in enumerate(images):
            dist.send(image, self.learner, tag=wire.TAG_IMAGES + i)
