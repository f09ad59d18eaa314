import sys; sys.path.insert(0, "tests")
import numpy as np, torch
from dexgrasp_cli.config import load_task_settings
from test_mujoco_backend import _randomized, MjwSim, MujocoSim, procedural_objects, _controls
s = load_task_settings()
objs = procedural_objects(4, seed=0)
w, c = _randomized(MjwSim, s, objs), _randomized(MujocoSim, s, objs)
for step in range(200):
    for sim in (w, c):
        sim.ctrl[:] = torch.as_tensor(_controls(step), dtype=torch.float32); sim.step(1)
    if step % 10 == 0 or step > 190:
        d = (w.qpos[:, 23:26] - c.qpos[:, 23:26]).abs().max(1).values
        print(step, "objdiff", d.numpy().round(5), "z", c.qpos[:, 25].numpy().round(3), "ncon", [dd.ncon for dd in c.datas], "warp ncon", w.d.nacon.numpy() if hasattr(w.d,'nacon') else '')
