"""MuJoCo Warp physics for a batch of worlds on one device, seen from torch.

Everything the task reads or writes (state, controls, per-world model parameters) is a torch
tensor that shares memory with a warp array, so the task logic is plain batched torch and never
copies through the host.
"""

from __future__ import annotations

import contextlib
import mujoco
import mujoco_warp as mjw
import numpy as np
import torch
import warp as wp

from dexgrasp_tasks.sim import mjw_patches
from dexgrasp_tasks.sim.backend import PER_WORLD_FIELDS, POSE_FIELDS, STATE_FIELDS, Sim
from dexgrasp_tasks.sim.scene import ObjectCatalog
from dexgrasp_tasks.sim.settings import SimSettings

# Overflows after which a world's contacts or constraints are incomplete, so its state is wrong.
CORRUPTING_OVERFLOWS = int(
    mjw.OverflowType.NEFC
    | mjw.OverflowType.NJMAX_NNZ
    | mjw.OverflowType.BROADPHASE
    | mjw.OverflowType.NARROWPHASE
    | mjw.OverflowType.CCD
    | mjw.OverflowType.EPA_HORIZON
)


def warp_device(device: str) -> str:
    return "cpu" if device == "cpu" else str(torch.device(device))


def synchronize(device: torch.device) -> None:
    """Wait for the warp and torch work queued on ``device`` (a no-op on the CPU, which runs eagerly)."""
    if device.type == "cuda":
        wp.synchronize_device(str(device))
        torch.cuda.synchronize(device)


class MjwSim(Sim):
    """MuJoCo Warp worlds; see ``Sim`` for the interface."""

    name = "mjwarp"

    def __init__(
        self,
        mjm: mujoco.MjModel,
        catalog: ObjectCatalog,
        object_ids: np.ndarray,
        device: str,
        settings: SimSettings,
    ):
        super().__init__(mjm, len(object_ids), device, settings)
        mjw_patches.apply_patches()
        wp.init()
        with wp.ScopedDevice(warp_device(device)):
            self.m = mjw.put_model(mjm)
            self.m.opt.warn_overflow = 0  # overflowing worlds are counted and reset instead
            for name in PER_WORLD_FIELDS:
                self._batch_field(name)
            self.d = mjw.make_data(
                mjm, nworld=self.num_worlds, nconmax=settings.nconmax, njmax=settings.njmax
            )
        self.model = {name: wp.to_torch(getattr(self.m, name)) for name in PER_WORLD_FIELDS}
        for name in STATE_FIELDS + POSE_FIELDS:
            setattr(self, name, wp.to_torch(getattr(self.d, name)))
        self.overflow = wp.to_torch(self.d.overflow)
        # Jacobian buffers, allocated once because the scripted policy asks every step.
        self._jacobian = torch.zeros(self.num_worlds, 6, mjm.nv, device=self.device)
        self._jacobian_body = torch.zeros(self.num_worlds, dtype=torch.int32, device=self.device)
        self._place_objects(catalog, object_ids)

    def _batch_field(self, name: str) -> None:
        shared = getattr(self.m, name)
        rows = np.repeat(shared.numpy()[:1], self.num_worlds, axis=0)
        setattr(self.m, name, wp.array(rows, dtype=shared.dtype))

    @contextlib.contextmanager
    def on_torch_stream(self):
        """Run warp work on torch's current stream so the two never race on CUDA."""
        if self.device.type == "cuda":
            with wp.ScopedStream(wp.stream_from_torch(self.device)):
                yield
        else:
            yield

    def step(self, substeps: int) -> None:
        with self.on_torch_stream():
            for _ in range(substeps):
                mjw.step(self.m, self.d)
        # mjw.step leaves poses at the start of its last substep; refresh them to the new state.
        self.forward_kinematics()

    def forward_kinematics(self) -> None:
        """Poses, centres of mass and motion axes (what Jacobians need) of the current state."""
        with self.on_torch_stream():
            mjw.kinematics(self.m, self.d)
            mjw.com_pos(self.m, self.d)

    def jacobian(self, body: int, points: torch.Tensor) -> torch.Tensor:
        """(N, 6, nv) translational then rotational Jacobian of world points (N, 3) fixed to a body."""
        jac, bodies = self._jacobian, self._jacobian_body
        jac.zero_()  # the kernel only writes the entries of the body's ancestor dofs
        bodies.fill_(body)
        with self.on_torch_stream():
            mjw.jac(self.m, self.d, wp.from_torch(jac[:, :3]), wp.from_torch(jac[:, 3:]),
                    wp.from_torch(points.contiguous(), dtype=wp.vec3), wp.from_torch(bodies))  # fmt: skip
        return jac.clone()

    def set_const(self) -> None:
        """Propagate changed masses and inertias to MuJoCo's derived constants."""
        with self.on_torch_stream():
            mjw.set_const(self.m, self.d)

    def reset_worlds(self, mask: torch.Tensor) -> None:
        """Return the masked worlds to the model's initial state and clear their overflow flags."""
        with self.on_torch_stream():
            mjw.reset_data(self.m, self.d, reset=wp.from_torch(mask.to(torch.bool)))
        self.overflow[mask] = 0

    def corrupted_worlds(self) -> torch.Tensor:
        """(N,) bool: worlds whose contact or constraint buffers overflowed since their reset."""
        return (self.overflow & CORRUPTING_OVERFLOWS) != 0

    def data_bytes(self) -> int:
        """Bytes that grow with the worlds: the MuJoCo Warp data and the per-world model rows."""
        rows = sum(t.numel() * t.element_size() for t in self.model.values())
        return warp_array_bytes(self.d) + rows + self._jacobian.numel() * self._jacobian.element_size()

    def render_sim(self) -> MjwSim:
        return self


def warp_array_bytes(structure) -> int:
    """Bytes allocated by every warp array among ``structure``'s fields, through nested structures."""
    seen: set[int] = set()

    def walk(value) -> int:
        if id(value) in seen:
            return 0
        seen.add(id(value))
        if isinstance(value, wp.array):
            return value.capacity
        if hasattr(value, "__dict__") and not isinstance(value, type):
            return sum(walk(v) for v in vars(value).values())
        return 0

    return walk(structure)
