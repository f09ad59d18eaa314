"""Per-world physics randomization, written into the batched model fields at reset."""

from __future__ import annotations

import torch

from dexgrasp_tasks.dextrah.adr import ADR
from dexgrasp_tasks.sim.backend import Sim

# One uniform draw per world for each parameter, in this column order.
PHYSICS_PARAMS = (
    "friction_scale",
    "joint_stiffness_scale",
    "joint_damping_scale",
    "joint_friction_scale",
    "object_mass_scale",
)


class PhysicsRandomizer:
    """Scales friction, actuator gains, joint friction and object mass per world.

    The unscaled values are captured once, so every reset scales the originals rather than
    compounding earlier draws.
    """

    def __init__(self, sim: Sim, base_joint_friction: torch.Tensor):
        model = sim.model
        self.sim = sim
        self.friction = model["geom_friction"][..., 0].clone()
        self.kp = model["actuator_gainprm"][..., 0].clone()
        self.kv = -model["actuator_biasprm"][..., 2].clone()
        self.joint_friction = base_joint_friction  # (nu,) per actuated dof
        self.mass = model["body_mass"][:, sim.object_body].clone()
        self.inertia = model["body_inertia"][:, sim.object_body].clone()

    def apply(self, mask: torch.Tensor, adr: ADR, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Draw new parameters for the masked worlds; u is (N, len(PHYSICS_PARAMS)) in [0, 1).

        Returns the per-world scales drawn (all worlds; only masked rows were applied).
        """
        scales = {name: adr.sample(name, u[:, i]) for i, name in enumerate(PHYSICS_PARAMS)}
        model, nu = self.sim.model, self.kp.shape[1]
        rows = mask[:, None]

        def put(field: str, index, value: torch.Tensor) -> None:
            view = model[field]
            view[index] = torch.where(rows if value.dim() > 1 else mask, value, view[index])

        put("geom_friction", (slice(None), slice(None), 0), self.friction * scales["friction_scale"][:, None])
        kp = self.kp * scales["joint_stiffness_scale"][:, None]
        put("actuator_gainprm", (slice(None), slice(None), 0), kp)
        put("actuator_biasprm", (slice(None), slice(None), 1), -kp)
        put("actuator_biasprm", (slice(None), slice(None), 2), -self.kv * scales["joint_damping_scale"][:, None])
        put("dof_frictionloss", (slice(None), slice(0, nu)), self.joint_friction * scales["joint_friction_scale"][:, None])
        mass_scale = scales["object_mass_scale"]
        body = self.sim.object_body
        old_mass = model["body_mass"][:, body].clone()
        put("body_mass", (slice(None), body), self.mass * mass_scale)
        put("body_inertia", (slice(None), body), self.inertia * mass_scale[:, None])
        # set_const costs as much as a few physics steps; skip it while masses are unchanged.
        if bool((model["body_mass"][:, body] != old_mass).any()):
            self.sim.set_const()
        return scales
