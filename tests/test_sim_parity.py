"""MuJoCo Warp against C MuJoCo: the same model and controls give the same trajectory."""

import mujoco
import numpy as np
import torch

from dexgrasp_assets.objects import procedural_objects
from dexgrasp_tasks.sim.mjwarp_backend import MjwSim
from dexgrasp_tasks.sim.scene import build_scene

HOME = [-0.85, 0, 0.76, 1.25, -1.76, 0.90, 0.64] + [0, 0.3, 0.3, 0.3] * 3 + [1.5, 0.6015, 0.3380, 0.6085]
STEPS = 200
# Measured gaps: 5e-6 rad on the robot and 5e-8 m on the object after it lands; these bounds
# leave room for float32 against float64 without hiding a modelling difference.
JOINT_TOL = 2e-3
OBJECT_TOL = 5e-3


def _controls(step: int) -> np.ndarray:
    t = step * 1 / 120
    ctrl = np.array(HOME)
    ctrl[:7] += 0.3 * np.sin(2 * np.pi * 0.5 * t + np.arange(7))
    ctrl[7:] += 0.4 * np.sin(2 * np.pi * 1.0 * t + np.arange(16))
    return ctrl


def test_200_step_rollout_matches_c_mujoco(settings):
    mjm, catalog = build_scene(procedural_objects(1, seed=0))
    data = mujoco.MjData(mjm)
    data.qpos[:23] = HOME
    sim = MjwSim(mjm, catalog, np.array([0]), "cpu", settings.sim)
    mujoco.mj_setConst(mjm, data)
    sim.qpos[0] = torch.as_tensor(data.qpos, dtype=torch.float32)
    mjm.opt.iterations = settings.sim.solver_iterations
    for step in range(STEPS):
        ctrl = _controls(step)
        data.ctrl[:] = ctrl
        mujoco.mj_step(mjm, data)
        sim.ctrl[0] = torch.as_tensor(ctrl, dtype=torch.float32)
        sim.step(1)
    warp_qpos = sim.qpos[0].double().numpy()
    assert np.isfinite(warp_qpos).all()
    assert data.qpos[25] < 0.35, "the object should have landed on the table"
    np.testing.assert_allclose(warp_qpos[:23], data.qpos[:23], atol=JOINT_TOL)
    np.testing.assert_allclose(warp_qpos[23:26], data.qpos[23:26], atol=OBJECT_TOL)
