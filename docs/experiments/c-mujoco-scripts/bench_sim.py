import time, dataclasses, numpy as np, torch
torch.set_num_threads(1)
from dexgrasp_cli.config import load_task_settings
from dexgrasp_tasks.dextrah.env import load_objects
from dexgrasp_tasks.sim.scene import build_scene
from dexgrasp_tasks.sim.mjwarp_backend import MjwSim
from dexgrasp_tasks.sim.mujoco_backend import MujocoSim
s = load_task_settings(); N = 64
objs = load_objects(s)
HOME = list(s.home_arm) + list(s.home_finger) * 3 + list(s.home_thumb)
def bench(cls, threads, steps):
    mjm, cat = build_scene(objs)
    sim = cls(mjm, cat, np.arange(N) % len(cat), "cpu", dataclasses.replace(s.sim, threads=threads))
    sim.qpos[:, :23] = torch.tensor(HOME); sim.ctrl[:] = torch.tensor(HOME); sim.forward_kinematics()
    for _ in range(3): sim.step(2)
    t = time.perf_counter()
    for i in range(steps):
        sim.ctrl[:] = torch.tensor(HOME) + 0.01 * i; sim.step(2); sim.jacobian(mjm.body("palm").id, sim.site_xpos[:, 0])
    dt = (time.perf_counter() - t) / steps
    print(f"{cls.__name__} threads={threads}: {dt*1e3:.2f} ms/policy step, {N/dt:.0f} env-steps/s", flush=True)
bench(MujocoSim, 1, 100); bench(MujocoSim, 2, 100); bench(MjwSim, None, 10)
