"""C MuJoCo physics for a batch of worlds on the CPU, stepped in parallel threads, seen from torch.

Each world has its own MjModel (its object mesh and randomized parameters) and MjData. MuJoCo's
Python bindings release the GIL inside ``mj_step``, so a persistent pool of threads, each
stepping a fixed slice of the worlds, runs the physics in parallel; this measured as fast as
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


class _Mirror:
    """One field of every world as an (N, ...) torch tensor, and the host values it last agreed with."""

    def __init__(self, name: str, views: list[np.ndarray], dtype: torch.dtype):
        self.views = views  # each world's array, sharing the MjModel's or MjData's memory
        shape = views[0].shape[:-1] + _SPLIT_AXES[name] if name in _SPLIT_AXES else views[0].shape
        self.tensor = torch.zeros((len(views), *shape), dtype=dtype)
        self.synced = self.tensor.clone()
        self._host = np.zeros((len(views), *views[0].shape), dtype=views[0].dtype)
        self.pull()

    def pull(self) -> None:
        np.stack(self.views, out=self._host)
        self.tensor.copy_(torch.from_numpy(self._host).view(self.tensor.shape))
        self.synced.copy_(self.tensor)
        self._version = self.tensor._version

    def push(self) -> np.ndarray:
        """Write the rows the task changed into their worlds; returns the (N,) changed mask."""
        if self.tensor._version == self._version:  # no in-place write since: skip comparing rows
            return np.zeros(len(self.views), dtype=bool)
        changed = (self.tensor != self.synced).flatten(1).any(1)
        worlds = changed.nonzero()[:, 0]
        if len(worlds):
            rows = self.tensor[worlds]
            for w, row in zip(worlds.tolist(), rows.numpy()):
                self.views[w][...] = row.reshape(self.views[w].shape)
            self.synced[worlds] = rows
        self._version = self.tensor._version
        return changed.numpy()


class MujocoSim(Sim):
    """C MuJoCo worlds on the CPU, stepped by ``settings.threads`` threads; see ``Sim``."""

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
        threads = min(settings.threads or os.cpu_count() or 1, self.num_worlds)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="mujoco")
        self._slices = [s.tolist() for s in np.array_split(np.arange(self.num_worlds), threads)]
        self._model = {
            name: _Mirror(name, [getattr(m, name) for m in self.models],
                          torch.int32 if name == "geom_dataid" else torch.float32)
            for name in PER_WORLD_FIELDS
        }  # fmt: skip
        self._data = {
            name: _Mirror(name, [getattr(d, name) for d in self.datas], torch.float32)
            for name in STATE_FIELDS + POSE_FIELDS
        }
        self.model = {name: mirror.tensor for name, mirror in self._model.items()}
        for name, mirror in self._data.items():
            setattr(self, name, mirror.tensor)
        self._stale = np.ones(self.num_worlds, dtype=bool)  # model changed since the last set_const
        # C MuJoCo grows its constraint rows into a large arena; a world using more rows than
        # MuJoCo Warp allocates counts as corrupted too, so both backends reset the same worlds.
        self._njmax = settings.njmax
        self._overflowed = np.zeros(self.num_worlds, dtype=bool)
        self._jacobian = np.zeros((self.num_worlds, 6, mjm.nv))
        self._twin_args = (mjm, catalog, object_ids, device, settings)
        self._twin: MjwSim | None = None
        self._place_objects(catalog, object_ids)

    def _push(self) -> None:
        """Write the task's changes of model parameters and state into the worlds."""
        for mirror in self._model.values():
            self._stale |= mirror.push()
        for name in STATE_FIELDS:
            self._data[name].push()

    def _pull(self, names: tuple[str, ...]) -> None:
        for name in names:
            self._data[name].pull()

    def _advance(self, worlds: list[int], substeps: int) -> None:
        for w in worlds:
            m, d = self.models[w], self.datas[w]
            for _ in range(substeps):
                mujoco.mj_step(m, d)
                self._overflowed[w] |= d.nefc > self._njmax
            # mj_step leaves poses at the start of its last substep; refresh them to the new state.
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)

    def _run(self, substeps: int) -> None:
        self._push()
        for _ in self._pool.map(self._advance, self._slices, [substeps] * len(self._slices)):
            pass

    def step(self, substeps: int) -> None:
        self._run(substeps)
        self._pull(_STEPPED_FIELDS)

    def forward_kinematics(self) -> None:
        self._run(0)
        self._pull(POSE_FIELDS)

    def jacobian(self, body: int, points: torch.Tensor) -> torch.Tensor:
        jac = self._jacobian
        for w, point in enumerate(points.detach().double().numpy()):
            mujoco.mj_jac(self.models[w], self.datas[w], jac[w, :3], jac[w, 3:], point, body)
        return torch.from_numpy(jac).float()

    def set_const(self) -> None:
        """Recompute the derived constants of the worlds whose model changed since the last call."""
        self._push()
        for w in np.flatnonzero(self._stale):
            mujoco.mj_setConst(self.models[w], self._scratch)
        self._stale[:] = False
        for mirror in self._model.values():
            mirror.pull()

    def reset_worlds(self, mask: torch.Tensor) -> None:
        """Return the masked worlds to the model's initial state, clearing their warnings."""
        self._push()
        for w in mask.nonzero()[:, 0].tolist():
            mujoco.mj_resetData(self.models[w], self.datas[w])
            self._overflowed[w] = False
        self._pull(STATE_FIELDS + POSE_FIELDS)

    def corrupted_worlds(self) -> torch.Tensor:
        """(N,) bool: worlds with a corrupting warning (see CORRUPTING_WARNINGS) or more than njmax
        constraint rows since their reset."""
        warned = [d.warning.number[CORRUPTING_WARNINGS].any() for d in self.datas]
        return torch.tensor(warned) | torch.from_numpy(self._overflowed)

    def data_bytes(self) -> int:
        """Bytes that grow with the worlds: each world's MjModel and MjData and the torch mirrors."""
        host = sum(m.nbuffer for m in self.models) + sum(d.nbuffer + d.narena for d in self.datas)
        mirrors = [*self._model.values(), *self._data.values()]
        torch_bytes = sum(2 * m.tensor.numel() * m.tensor.element_size() + m._host.nbytes for m in mirrors)
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
