"""Which physics backend runs the worlds: the settings' choice, or for ``auto`` the fast one on the device."""

from __future__ import annotations

import mujoco
import numpy as np
import torch

from dexgrasp_tasks.sim.backend import Sim
from dexgrasp_tasks.sim.mjwarp_backend import MjwSim
from dexgrasp_tasks.sim.mujoco_backend import MujocoSim
from dexgrasp_tasks.sim.scene import ObjectCatalog
from dexgrasp_tasks.sim.settings import SimSettings

BACKEND_CLASSES: dict[str, type[Sim]] = {cls.name: cls for cls in (MjwSim, MujocoSim)}


def resolve_backend(settings: SimSettings, device: str) -> str:
    """C MuJoCo's threaded worlds on a CPU (MuJoCo Warp runs its CPU kernels on one core and pays
    Python for every launch), MuJoCo Warp on CUDA."""
    if settings.backend != "auto":
        return settings.backend
    return "mujoco" if torch.device(device).type == "cpu" else "mjwarp"


def make_sim(
    mjm: mujoco.MjModel, catalog: ObjectCatalog, object_ids: np.ndarray, device: str, settings: SimSettings
) -> Sim:
    return BACKEND_CLASSES[resolve_backend(settings, device)](mjm, catalog, object_ids, device, settings)
