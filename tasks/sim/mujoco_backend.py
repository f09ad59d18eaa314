"""C MuJoCo physics for a batch of worlds on the CPU, stepped by MuJoCo's own thread pool, seen from torch.

The worlds are the simulations of one ``mujoco.batch.Batch`` (mujoco >= 4.0): C threads, the
caller's among them, step them without taking Python's GIL, and with ``persistent=True`` each
world keeps its MjData, so its solver warm start and its poses carry over between calls. Every
per-world model field is one of the batch's expanded fields (its object mesh included), so no
world needs an MjModel of its own.

The task sees float32 torch tensors (see ``Sim``); the batch holds float64 (N, ...) arrays. Each
field is mirrored: after physics the batch's values are copied into the tensor (``pull``), and
before physics the rows of the tensor that the task changed since are written back (``push``).
Rows are compared with the batch's values rounded as a pull rounds them, so an untouched world
keeps its float64 state exactly, and a tensor whose version counter (bumped by every in-place
write) has not moved is not compared.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np
import torch
from mujoco.batch import Batch, SimulationError

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
_WARNING_COUNT = 1  # Batch.warning is (N, mjNWARNING, 2): each warning's lastinfo and number
# What physics changes: ctrl and xfrc_applied are the task's alone.
_STEPPED_FIELDS = ("qpos", "qvel", *POSE_FIELDS)
# Fields whose flat MuJoCo rows MuJoCo Warp (and so the task) sees with more axes.
_SPLIT_AXES = {"xmat": (3, 3), "geom_xmat": (3, 3), "geom_aabb": (2, 3)}
_VELOCITY_STAGE = mujoco.mjtStage.mjSTAGE_VEL  # what mj_step1 computes


def default_threads() -> int:
    """The cores this process may use, shared with the other processes torchrun started on this
    machine (a layout's replicas would otherwise each run a thread per core)."""
    cores = len(os.sched_getaffinity(0))
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


class _Mirror:
    """One field of every world: the batch's live (N, ...) array ``host`` and a torch tensor of it."""

    def __init__(self, name: str, host: np.ndarray, dtype: torch.dtype):
        self.host = host
        shape = host.shape[:-1] + _SPLIT_AXES[name] if name in _SPLIT_AXES else host.shape
        self.tensor = torch.zeros(shape, dtype=dtype)
        # The tensor's memory in the host's shape. numpy reads and writes it without moving the
        # version counter, which then counts the task's writes alone.
        self._tensor_values = self.tensor.numpy().reshape(host.shape)
        self.pull()

    def pull(self) -> None:
        np.copyto(self._tensor_values, self.host, casting="same_kind")  # rounds to the tensor's dtype
        self._version = self.tensor._version

    @property
    def touched(self) -> bool:
        """Whether the task wrote into the tensor in place since the last pull or push."""
        return self.tensor._version != self._version

    def push(self) -> np.ndarray:
        """Write the rows the task changed into their worlds; returns the (N,) changed mask."""
        if not self.touched:  # no in-place write since: skip comparing rows
            return np.zeros(len(self.host), dtype=bool)
        # Against the host values rounded as a pull rounds them, so an untouched row compares equal.
        differs = self._tensor_values != self.host.astype(self._tensor_values.dtype)
        changed = differs.reshape(len(self.host), -1).any(1)
        if changed.any():
            self.host[changed] = self._tensor_values[changed]
        self._version = self.tensor._version
        return changed


def _dofs_moving(mjm: mujoco.MjModel, body: int) -> slice | list[int]:
    """The dofs of ``body`` and of its ancestors: those whose motion moves it. A slice where they
    are consecutive (an arm's), so that numpy indexes them with views."""
    dofs = []
    while body:
        start = mjm.body_dofadr[body]
        dofs += range(start, start + mjm.body_dofnum[body])
        body = mjm.body_parentid[body]
    dofs.sort()
    if dofs and dofs == list(range(dofs[0], dofs[-1] + 1)):
        return slice(dofs[0], dofs[-1] + 1)
    return dofs


class MujocoSim(Sim):
    """C MuJoCo worlds on the CPU, stepped by ``settings.threads`` threads; see ``Sim``.

    Each world is kept "forwarded": its MjData holds ``mj_step1``'s results (poses, centres of
    mass, contacts, constraints) for its current state, which the batch's ``mjSTAGE_VEL`` asks
    for after every step. The next substep starts from them, so the poses after a step describe
    the new state at no extra cost. A world whose state or model the task changed is forwarded
    again first.
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
        self._threads = min(settings.threads or default_threads(), self.num_worlds)
        self._batch = Batch(mjm, self.num_worlds, self._threads, persistent=True)
        self._model = {
            name: _Mirror(name, self._batch.expand(name), torch.int32 if name == "geom_dataid" else torch.float32)
            for name in PER_WORLD_FIELDS
        }  # fmt: skip
        # Outputs are bound before the first call, which then fills them.
        self._data = {name: _Mirror(name, self._batch.bind(name), torch.float32) for name in STATE_FIELDS + POSE_FIELDS}
        self._stepped = [self._data[name] for name in _STEPPED_FIELDS]
        self.model = {name: mirror.tensor for name, mirror in self._model.items()}
        for name, mirror in self._data.items():
            setattr(self, name, mirror.tensor)
        self._nefc = self._batch.bind("nefc")
        self._motion_axes = self._batch.bind("cdof")  # what mj_jac combines, see jacobian
        self._subtree_com = self._batch.bind("subtree_com")
        self._dofs_moving: dict[int, slice | list[int]] = {}  # by body, see jacobian
        self._mass_changed = np.ones(self.num_worlds, dtype=bool)  # since the last set_const
        self._unforwarded = np.ones(self.num_worlds, dtype=bool)  # state or model changed since mj_step1
        # Worlds that used more constraint rows than MuJoCo Warp allocates (njmax) count as
        # corrupted, so both backends reset the same worlds; so do worlds where MuJoCo raised.
        self._njmax = settings.njmax
        self._corrupted = np.zeros(self.num_worlds, dtype=bool)
        self._twin_args = (mjm, catalog, object_ids, device, settings)
        self._twin: MjwSim | None = None
        self._place_objects(catalog, object_ids)

    def _push(self) -> None:
        """Write the task's changes of model parameters and state into the worlds."""
        for mirror in self._model.values():
            if mirror.touched:  # most steps write no model parameter
                changed = mirror.push()
                self._mass_changed |= changed
                self._unforwarded |= changed
        for name in ("qpos", "qvel"):
            self._unforwarded |= self._data[name].push()
        for name in ("ctrl", "xfrc_applied"):  # read by mj_step2 only
            self._data[name].push()

    def _call(self, method, ids: np.ndarray | None = None, **kwargs) -> None:
        """One batch call on ``ids`` (None: every world). A world where MuJoCo raised keeps its
        state and counts as corrupted, so the task resets it; the others ran to completion."""
        try:
            method(ids, **kwargs)
        except SimulationError as error:
            self._corrupted[error.ids] = True

    def _forward_changed(self) -> bool:
        """Forward the worlds whose state or model changed; returns whether there were any."""
        worlds = np.flatnonzero(self._unforwarded)
        if len(worlds):  # the others' poses already describe their state
            self._call(self._batch.forward, worlds, stage=_VELOCITY_STAGE)
            self._unforwarded[:] = False
        return len(worlds) > 0

    def step(self, substeps: int) -> None:
        self._push()
        self._forward_changed()
        for _ in range(substeps):  # one call per substep, to see each substep's constraint rows
            self._corrupted |= self._nefc > self._njmax
            self._call(self._batch.step, nstep=1, stage=_VELOCITY_STAGE)
        for mirror in self._stepped:
            mirror.pull()

    def forward_kinematics(self) -> None:
        self._push()
        if self._forward_changed():  # a forward changes the poses only
            for name in POSE_FIELDS:
                self._data[name].pull()

    def jacobian(self, body: int, points: torch.Tensor) -> torch.Tensor:
        """mj_jac over the batch: each dof moving ``body`` turns the point about its axis through
        the root's subtree centre of mass and translates it."""
        if body not in self._dofs_moving:
            self._dofs_moving[body] = _dofs_moving(self.mjm, body)
        dofs = self._dofs_moving[body]
        axes = self._motion_axes[:, dofs]  # (N, dofs, 6): rotation, then translation
        rotation, translation = axes[..., :3], axes[..., 3:]
        offset = (points.detach().double().numpy() - self._subtree_com[:, self.mjm.body_rootid[body]])[:, None]
        jac = np.zeros((self.num_worlds, 6, self.mjm.nv))
        for i in range(3):  # translation + rotation x offset, by components: np.cross costs 50 us here
            j, k = (i + 1) % 3, (i + 2) % 3
            jac[:, i, dofs] = translation[..., i] + (rotation[..., j] * offset[..., k] - rotation[..., k] * offset[..., j])
        jac[:, 3:, dofs] = rotation.transpose(0, 2, 1)
        return torch.from_numpy(jac).float()

    def set_const(self) -> None:
        """Recompute the derived constants of the worlds whose model changed since the last call."""
        self._push()
        # mujoco 4.0.0's Batch.set_const gives every world the bounding radius of simulation 0's
        # mesh, where mj_setConst on a world's own model keeps the radius of its mesh: keep them.
        bounds = self._model["geom_rbound"].host
        kept = bounds.copy()
        self._call(self._batch.set_const, np.flatnonzero(self._mass_changed))
        bounds[...] = kept
        self._mass_changed[:] = False
        for mirror in self._model.values():
            mirror.pull()

    def reset_worlds(self, mask: torch.Tensor) -> None:
        """Return the masked worlds to the model's initial state, clearing their warnings."""
        self._push()
        worlds = mask.nonzero()[:, 0].numpy()
        self._call(self._batch.reset, worlds, stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._corrupted[worlds] = False
        self._unforwarded[worlds] = True
        for name in STATE_FIELDS:  # the poses follow at the next forward
            self._data[name].pull()

    def corrupted_worlds(self) -> torch.Tensor:
        """(N,) bool: worlds with a corrupting warning (see CORRUPTING_WARNINGS), more than njmax
        constraint rows or a MuJoCo error since their reset."""
        counts = self._batch.warning[:, CORRUPTING_WARNINGS, _WARNING_COUNT]
        return torch.from_numpy(counts.any(1) | self._corrupted)

    def data_bytes(self) -> int:
        """Bytes that grow with the worlds: an MjData per world, the batch's state rows, expanded
        fields and outputs, and the torch mirrors."""
        data = mujoco.MjData(self.mjm)
        arrays = [self._batch.state, *(m.host for m in self._model.values()), *(m.host for m in self._stepped)]
        mirrors = sum(m.tensor.numel() * m.tensor.element_size() for m in [*self._model.values(), *self._data.values()])
        twin = self._twin.data_bytes() if self._twin is not None else 0
        return self.num_worlds * (data.nbuffer + data.narena) + sum(a.nbytes for a in arrays) + mirrors + twin

    def render_sim(self) -> MjwSim:
        """MuJoCo Warp twins of the worlds (made at the first render), given this state."""
        if self._twin is None:
            with torch.inference_mode(False):  # the twin's tensors outlive the step that first renders
                self._twin = MjwSim(*self._twin_args)
        twin = self._twin
        for name, values in self.model.items():
            twin.model[name].copy_(values)
        twin.qpos.copy_(self.qpos)
        twin.forward_kinematics()
        return twin
