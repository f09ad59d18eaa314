"""C MuJoCo physics for a batch of worlds on the CPU, stepped in parallel threads, seen from torch.

Each world has its own MjModel (its object mesh and randomized parameters) and MjData. MuJoCo's
Python bindings release the GIL inside ``mj_step``, so a persistent pool of threads, each
taking the next world not yet stepped, runs the physics in parallel; this measured as fast as
``mujoco.rollout`` and, unlike it, keeps each world's solver warm start and poses in its MjData.

The task sees float32 torch tensors (see ``Sim``); the worlds hold float64. Each field is
mirrored: after physics the host values are copied into the tensor (``pull``), and before
physics the rows of the tensor that the task changed since are written back (``push``). Rows are
compared with the last pulled values, so an untouched world keeps its float64 state exactly, and
a tensor whose version counter (bumped by every in-place write) has not moved is not compared.
"""

from __future__ import annotations

import copy
import os
from concurrent.futures import ThreadPoolExecutor

import mujoco
import numpy as np
import torch

from dexgrasp_tasks.sim.backend import PER_WORLD_FIELDS, POSE_FIELDS, STATE_FIELDS, Sim
from dexgrasp_tasks.sim.mjwarp_backend import MjwSim
from dexgrasp_tasks.sim.scene import ObjectCatalog
from dexgrasp_tasks.sim.settings import SimSettings

# Warnings after which a world's state is wrong: its contact or constraint arena overflowed, or
# MuJoCo found a bad state and reset the world on its own.
CORRUPTING_WARNINGS = np.array([
    int(w) for w in (
        mujoco.mjtWarning.mjWARN_CONTACTFULL, mujoco.mjtWarning.mjWARN_CNSTRFULL,
        mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL, mujoco.mjtWarning.mjWARN_BADQACC,
    )
])  # fmt: skip
# What physics changes: ctrl and xfrc_applied are the task's alone.
_STEPPED_FIELDS = ("qpos", "qvel", *POSE_FIELDS)
# Fields whose flat MuJoCo rows MuJoCo Warp (and so the task) sees with more axes.
_SPLIT_AXES = {"xmat": (3, 3), "geom_xmat": (3, 3), "geom_aabb": (2, 3)}


def default_threads() -> int:
    """The cores this process may use, shared with the other processes torchrun started on this
    machine (a layout's replicas would otherwise each run a thread per core)."""
    cores = len(os.sched_getaffinity(0))
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


class _Mirror:
    """One field of every world as an (N, ...) torch tensor, and the host values it last agreed with.

    ``host`` holds each world's float64 values as of its last ``fill`` (or push); ``pull`` hands
    all of them to the tensor at once.
    """

    def __init__(self, name: str, views: list[np.ndarray], dtype: torch.dtype):
        self.views = views  # each world's array, sharing the MjModel's or MjData's memory
        shape = views[0].shape[:-1] + _SPLIT_AXES[name] if name in _SPLIT_AXES else views[0].shape
        self.tensor = torch.zeros((len(views), *shape), dtype=dtype)
        self.host = np.zeros((len(views), *views[0].shape), dtype=views[0].dtype)
        self.fill_all()
        self.pull()

    def fill(self, world: int) -> None:
        self.host[world] = self.views[world]

    def fill_all(self) -> None:
        # One concatenate into the (N * rows, ...) host: np.stack adds an axis to every view first.
        np.concatenate(self.views, out=self.host.reshape(-1, *self.host.shape[2:]))

    def pull(self) -> None:
        self.tensor.copy_(self._host_view())  # rounds to the tensor's dtype
        self._version = self.tensor._version

    def push(self) -> np.ndarray:
        """Write the rows the task changed into their worlds; returns the (N,) changed mask."""
        if self.tensor._version == self._version:  # no in-place write since: skip comparing rows
            return np.zeros(len(self.views), dtype=bool)
        # Against the host values rounded as a pull rounds them, so an untouched row compares equal.
        changed = (self.tensor != self._host_view().to(self.tensor.dtype)).flatten(1).any(1).numpy()
        worlds = np.flatnonzero(changed)
        if len(worlds):
            self.host[worlds] = self.tensor[worlds].numpy().reshape(len(worlds), *self.host.shape[1:])
            for w in worlds.tolist():
                self.views[w][...] = self.host[w]
        self._version = self.tensor._version
        return changed

    def _host_view(self) -> torch.Tensor:
        """The host values in the tensor's shape, sharing their memory (float64 where the worlds are)."""
        return torch.from_numpy(self.host).view(self.tensor.shape)


class MujocoSim(Sim):
    """C MuJoCo worlds on the CPU, stepped by ``settings.threads`` threads; see ``Sim``.

    Each world's MjData is kept "forwarded": it holds ``mj_step1``'s results (poses, centres of
    mass, contacts, constraints) for its current state. A substep is then ``mj_step2`` (forces
    from ctrl and applied forces, solve, integrate) followed by ``mj_step1`` of the new state,
    the same computation as ``mj_step`` in another order, so the poses after a step describe the
    new state at no extra cost and the next substep starts from them. A world whose state or
    model the task changed is forwarded again first.
    """

    name = "mujoco"

    def __init__(
        self,
        mjm: mujoco.MjModel,
        catalog: ObjectCatalog,
        object_ids: np.ndarray,
        device: str,
        settings: SimSettings,
    ):
        if torch.device(device).type != "cpu":
            raise ValueError(f"the mujoco backend runs on the cpu, not {device}")
        super().__init__(mjm, len(object_ids), device, settings)
        self.models = [copy.copy(mjm) for _ in range(self.num_worlds)]  # deep copies
        self.datas = [mujoco.MjData(m) for m in self.models]
        self._scratch = mujoco.MjData(mjm)  # set_const's workspace, so the worlds' state stays
        self._threads = min(settings.threads or default_threads(), self.num_worlds)
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="mujoco")
        self._model = {
            name: _Mirror(name, [getattr(m, name) for m in self.models],
                          torch.int32 if name == "geom_dataid" else torch.float32)
            for name in PER_WORLD_FIELDS
        }  # fmt: skip
        self._data = {
            name: _Mirror(name, [getattr(d, name) for d in self.datas], torch.float32)
            for name in STATE_FIELDS + POSE_FIELDS
        }
        self._stepped = [self._data[name] for name in _STEPPED_FIELDS]
        self.model = {name: mirror.tensor for name, mirror in self._model.items()}
        for name, mirror in self._data.items():
            setattr(self, name, mirror.tensor)
        self._mass_changed = np.ones(self.num_worlds, dtype=bool)  # since the last set_const
        self._unforwarded = np.ones(self.num_worlds, dtype=bool)  # state or model changed since mj_step1
        # C MuJoCo grows its constraint rows into a large arena; a world using more rows than
        # MuJoCo Warp allocates counts as corrupted too, so both backends reset the same worlds.
        self._njmax = settings.njmax
        self._overflowed = np.zeros(self.num_worlds, dtype=bool)
        self._jacobian = np.zeros((self.num_worlds, 6, mjm.nv))
        self._warnings = [d.warning.number for d in self.datas]  # views: fetching one costs 0.5 us
        self._twin_args = (mjm, catalog, object_ids, device, settings)
        self._twin: MjwSim | None = None
        self._place_objects(catalog, object_ids)

    def _push(self) -> None:
        """Write the task's changes of model parameters and state into the worlds."""
        for mirror in self._model.values():
            changed = mirror.push()
            self._mass_changed |= changed
            self._unforwarded |= changed
        for name in ("qpos", "qvel"):
            self._unforwarded |= self._data[name].push()
        for name in ("ctrl", "xfrc_applied"):  # read by mj_step2 only
            self._data[name].push()

    def _advance(self, worlds, unforwarded: list[bool], substeps: int) -> None:
        """Step the worlds drawn from the shared iterator ``worlds``. Every Python operation here
        holds the GIL that the other threads' MuJoCo calls need back, so this loop does little else."""
        njmax, overflowed = self._njmax, self._overflowed
        for w in worlds:
            m, d = self.models[w], self.datas[w]
            if unforwarded[w]:
                mujoco.mj_step1(m, d)
            for _ in range(substeps):
                if d.nefc > njmax:
                    overflowed[w] = True
                mujoco.mj_step2(m, d)
                mujoco.mj_step1(m, d)

    def _run(self, worlds: np.ndarray, substeps: int) -> None:
        """Advance ``worlds`` (indices) on the pool, then copy the worlds' state out. Each thread
        takes the next world not yet taken, so a slow world does not hold up a fixed share."""
        shared = iter(worlds.tolist())  # next() on it is atomic under the GIL
        args = (shared, self._unforwarded.tolist(), substeps)
        for future in [self._pool.submit(self._advance, *args) for _ in range(self._threads)]:
            future.result()
        self._unforwarded[worlds] = False
        for mirror in self._stepped:
            mirror.fill_all()
            mirror.pull()

    def step(self, substeps: int) -> None:
        self._push()
        self._run(np.arange(self.num_worlds), substeps)

    def forward_kinematics(self) -> None:
        self._push()
        worlds = np.flatnonzero(self._unforwarded)
        if len(worlds):  # the others' poses already describe their state
            self._run(worlds, 0)

    def jacobian(self, body: int, points: torch.Tensor) -> torch.Tensor:
        jac = self._jacobian
        for w, point in enumerate(points.detach().double().numpy()):
            mujoco.mj_jac(self.models[w], self.datas[w], jac[w, :3], jac[w, 3:], point, body)
        return torch.from_numpy(jac).float()

    def set_const(self) -> None:
        """Recompute the derived constants of the worlds whose model changed since the last call."""
        self._push()
        for w in np.flatnonzero(self._mass_changed):
            mujoco.mj_setConst(self.models[w], self._scratch)
        self._mass_changed[:] = False
        for mirror in self._model.values():
            mirror.fill_all()
            mirror.pull()

    def reset_worlds(self, mask: torch.Tensor) -> None:
        """Return the masked worlds to the model's initial state, clearing their warnings."""
        self._push()
        worlds = mask.nonzero()[:, 0].numpy()
        for w in worlds.tolist():
            mujoco.mj_resetData(self.models[w], self.datas[w])
            for mirror in self._data.values():
                mirror.fill(w)
        self._overflowed[worlds] = False
        self._unforwarded[worlds] = True
        for mirror in self._data.values():
            mirror.pull()

    def corrupted_worlds(self) -> torch.Tensor:
        """(N,) bool: worlds with a corrupting warning (see CORRUPTING_WARNINGS) or more than njmax
        constraint rows since their reset."""
        counts = np.stack(self._warnings)[:, CORRUPTING_WARNINGS]
        return torch.from_numpy(counts.any(1) | self._overflowed)

    def data_bytes(self) -> int:
        """Bytes that grow with the worlds: each world's MjModel and MjData and the torch mirrors."""
        host = sum(m.nbuffer for m in self.models) + sum(d.nbuffer + d.narena for d in self.datas)
        mirrors = [*self._model.values(), *self._data.values()]
        torch_bytes = sum(2 * m.tensor.numel() * m.tensor.element_size() + m.host.nbytes for m in mirrors)
        twin = self._twin.data_bytes() if self._twin is not None else 0
        return host + torch_bytes + self._jacobian.nbytes + twin

    def render_sim(self) -> MjwSim:
        """MuJoCo Warp twins of the worlds (made at the first render), given this state."""
        if self._twin is None:
            self._twin = MjwSim(*self._twin_args)
        twin = self._twin
        for name, values in self.model.items():
            twin.model[name].copy_(values)
        twin.qpos.copy_(self.qpos)
        twin.forward_kinematics()
        return twin
