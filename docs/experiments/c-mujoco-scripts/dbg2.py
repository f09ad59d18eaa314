import sys; sys.path.insert(0, "tests")
import numpy as np, torch
from dexgrasp_cli.config import load_task_settings
from test_mujoco_backend import _randomized, MjwSim, MujocoSim, procedural_objects, _controls
s = load_task_settings()
objs = procedural_objects(4, seed=0)
print([o.name for o in objs])
a, b = _randomized(MujocoSim, s, objs), _randomized(MujocoSim, s, objs)
b.qvel[:, 23] += 1e-4  # 0.1 mm/s nudge
for step in range(200):
    for sim in (a, b):
        sim.ctrl[:] = torch.as_tensor(_controls(step), dtype=torch.float32); sim.step(1)
print("C vs C nudged: objdiff", (a.qpos[:, 23:26] - b.qpos[:, 23:26]).abs().max(1).values.numpy())
