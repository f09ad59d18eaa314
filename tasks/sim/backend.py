"""The simulator seam: what the task reads and writes of a batch of worlds, whatever steps them.

A backend exposes the state, poses and per-world model parameters as (N, ...) torch tensors on its
device, in float32 (int32 for ``geom_dataid``) and in MuJoCo Warp's shapes (``xmat`` is (N, nbody,
3, 3), ``geom_aabb`` (N, ngeom, 2, 3)), so the task code is the same on every backend. The task
writes ``qpos``/``qvel``/``ctrl``/``xfrc_applied`` and ``model[name]`` rows in place, through
torch (a write through ``.numpy()`` bypasses the version counter the C backend watches); a
backend sees those writes at its next ``step``, ``forward_kinematics``, ``set_const`` or
``reset_worlds``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import mujoco
import numpy as np
import torch

from dexgrasp_tasks.sim.scene import OBJECT_BODY, OBJECT_GEOM, ObjectCatalog
from dexgrasp_tasks.sim.settings import SimSettings

# Model fields given one row per world: the object's mesh-derived fields, every field that
# physics or visual randomization writes, and the constants set_const derives from masses. A
# derived field left shared would be written by every world into one row, so a world would use
# another world's contact regularisation (observed: NaN with a heavy object beside a light one).
PER_WORLD_FIELDS = (
    "geom_dataid", "geom_size", "geom_aabb", "geom_rbound", "geom_pos", "geom_quat",
    "geom_friction", "body_mass", "body_inertia", "body_ipos", "body_iquat",
    "actuator_gainprm", "actuator_biasprm", "dof_frictionloss",
    "body_subtreemass", "body_invweight0", "dof_invweight0", "actuator_acc0",
    "geom_rgba", "cam_pos", "cam_quat", "light_dir", "light_diffuse",
)  # fmt: skip
# State the task writes, and the poses and forces it reads after physics.
STATE_FIELDS = ("qpos", "qvel", "ctrl", "xfrc_applied")
POSE_FIELDS = ("site_xpos", "xmat", "geom_xpos", "geom_xmat", "actuator_force")


class Sim(ABC):
    """Batched physics over ``num_worlds`` worlds; world w holds object ``object_ids[w]``.

    Subclasses set ``model`` and the tensors named in STATE_FIELDS and POSE_FIELDS, then call
    ``_place_objects``.
    """

    name: ClassVar[str]  # the task.sim.backend value that picks this backend
    model: dict[str, torch.Tensor]
    qpos: torch.Tensor
    qvel: torch.Tensor
    ctrl: torch.Tensor
    xfrc_applied: torch.Tensor
    site_xpos: torch.Tensor
    xmat: torch.Tensor
    geom_xpos: torch.Tensor
    geom_xmat: torch.Tensor
    actuator_force: torch.Tensor

    def __init__(self, mjm: mujoco.MjModel, num_worlds: int, device: str, settings: SimSettings):
        self.device = torch.device(device)
        self.num_worlds = num_worlds
        self.mjm = mjm
        mjm.opt.iterations = settings.solver_iterations
        self.object_body = mjm.body(OBJECT_BODY).id
        self.object_geom = mjm.geom(OBJECT_GEOM).id

    def _place_objects(self, catalog: ObjectCatalog, object_ids: np.ndarray) -> None:
        """Point each world's object geom at its mesh, with the fields MuJoCo derived from it."""
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
        ids = torch.as_tensor(object_ids, dtype=torch.long)
        for (field, index), values in per_object.items():
            view = self.model[field]
            view[:, index] = torch.as_tensor(values)[ids].to(view.dtype).to(self.device)
        self.set_const()
        self.forward_kinematics()

    @abstractmethod
    def step(self, substeps: int) -> None:
        """Advance every world ``substeps`` physics steps; poses then describe the new state."""

    @abstractmethod
    def forward_kinematics(self) -> None:
        """Poses, centres of mass and motion axes (what Jacobians need) of the current state."""

    @abstractmethod
    def jacobian(self, body: int, points: torch.Tensor) -> torch.Tensor:
        """(N, 6, nv) translational then rotational Jacobian of world points (N, 3) fixed to a body."""

    @abstractmethod
    def set_const(self) -> None:
        """Propagate changed masses and inertias to MuJoCo's derived constants."""

    @abstractmethod
    def reset_worlds(self, mask: torch.Tensor) -> None:
        """Return the masked worlds to the model's initial state and clear their corruption flags."""

    @abstractmethod
    def corrupted_worlds(self) -> torch.Tensor:
        """(N,) bool: worlds whose physics went wrong (buffers overflowed, diverged) since their reset."""

    @abstractmethod
    def data_bytes(self) -> int:
        """Bytes that grow with the worlds."""

    @abstractmethod
    def render_sim(self):
        """MuJoCo Warp worlds (an ``MjwSim``) holding the current state and model parameters, for
        MuJoCo Warp's renderer, which draws for every backend."""
