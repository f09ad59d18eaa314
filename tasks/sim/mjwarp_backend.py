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
from dexgrasp_tasks.sim.settings import SimSettings
from dexgrasp_tasks.sim.scene import OBJECT_BODY, OBJECT_GEOM, ObjectCatalog

# Model fields given one row per world: the object's mesh-derived fields, every field that
# physics or visual randomization writes, and the constants set_const derives from masses. A
# derived field left shared would be written by every world into one row, so a world would use
# another world's contact regularisation (observed: NaN with a heavy object beside a light one).
_PER_WORLD_FIELDS = (
    "geom_dataid", "geom_size", "geom_aabb", "geom_rbound", "geom_pos", "geom_quat",
    "geom_friction", "body_mass", "body_inertia", "body_ipos", "body_iquat",
    "actuator_gainprm", "actuator_biasprm", "dof_frictionloss",
    "body_subtreemass", "body_invweight0", "dof_invweight0", "actuator_acc0",
    "geom_rgba", "cam_pos", "cam_quat", "light_dir", "light_diffuse",
)  # fmt: skip

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


class MjwSim:
    """Batched physics over ``num_worlds`` worlds; world w holds object ``object_ids[w]``."""

    def __init__(
        self,
        mjm: mujoco.MjModel,
        catalog: ObjectCatalog,
        object_ids: np.ndarray,
        device: str,
        settings: SimSettings,
    ):
        self.device = torch.device(device)
        self.num_worlds = len(object_ids)
        self.mjm = mjm
        mjm.opt.iterations = settings.solver_iterations
        mjw_patches.apply_patches()
        wp.init()
        with wp.ScopedDevice(warp_device(device)):
            self.m = mjw.put_model(mjm)
            self.m.opt.warn_overflow = 0  # overflowing worlds are counted and reset instead
            for name in _PER_WORLD_FIELDS:
                self._batch_field(name)
            self.d = mjw.make_data(
                mjm, nworld=self.num_worlds, nconmax=settings.nconmax, njmax=settings.njmax
            )
        self.model = {name: wp.to_torch(getattr(self.m, name)) for name in _PER_WORLD_FIELDS}
        self.qpos = wp.to_torch(self.d.qpos)
        self.qvel = wp.to_torch(self.d.qvel)
        self.ctrl = wp.to_torch(self.d.ctrl)
        self.xfrc_applied = wp.to_torch(self.d.xfrc_applied)
        self.site_xpos = wp.to_torch(self.d.site_xpos)
        self.xmat = wp.to_torch(self.d.xmat)
        self.geom_xpos = wp.to_torch(self.d.geom_xpos)
        self.geom_xmat = wp.to_torch(self.d.geom_xmat)
        self.actuator_force = wp.to_torch(self.d.actuator_force)
        self.overflow = wp.to_torch(self.d.overflow)
        # Jacobian buffers, allocated once because the scripted policy asks every step.
        self._jacobian = torch.zeros(self.num_worlds, 6, mjm.nv, device=self.device)
        self._jacobian_body = torch.zeros(self.num_worlds, dtype=torch.int32, device=self.device)
        self.object_body = mjm.body(OBJECT_BODY).id
        self.object_geom = mjm.geom(OBJECT_GEOM).id
        self._place_objects(catalog, torch.as_tensor(object_ids, dtype=torch.long))
        self.forward_kinematics()

    def _batch_field(self, name: str) -> None:
        shared = getattr(self.m, name)
        rows = np.repeat(shared.numpy()[:1], self.num_worlds, axis=0)
        setattr(self.m, name, wp.array(rows, dtype=shared.dtype))

    def _place_objects(self, catalog: ObjectCatalog, object_ids: torch.Tensor) -> None:
        g, b = self.object_geom, self.object_body
        per_object = {
            ("geom_dataid", g): catalog.mesh_ids,
            ("geom_size", g): catalog.geom_size,
            ("geom_aabb", g): catalog.geom_aabb,
            ("geom_rbound", g): catalog.geom_rbound,
            ("geom_pos", g): catalog.geom_pos,
            ("geom_quat", g): catalog.geom_quat,
            ("body_mass", b): catalog.body_mass,
            ("body_inertia", b): catalog.body_inertia,
            ("body_ipos", b): catalog.body_ipos,
            ("body_iquat", b): catalog.body_iquat,
        }
        for (field, index), values in per_object.items():
            view = self.model[field]
            view[:, index] = torch.as_tensor(values, device=self.device)[object_ids].to(view.dtype)
        self.set_const()

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
