import time, dataclasses, numpy as np, torch, cProfile, pstats
torch.set_num_threads(1)
from dexgrasp_cli.config import load_task_settings
from dexgrasp_tasks.dextrah.env import load_objects
from dexgrasp_tasks.sim.scene import build_scene
from dexgrasp_tasks.sim.mujoco_backend import MujocoSim
s = load_task_settings(); N = 64
mjm, cat = build_scene(load_objects(s))
HOME = list(s.home_arm) + list(s.home_finger) * 3 + list(s.home_thumb)
sim = MujocoSim(mjm, cat, np.arange(N) % len(cat), "cpu", dataclasses.replace(s.sim, threads=1))
sim.qpos[:, :23] = torch.tensor(HOME); sim.ctrl[:] = torch.tensor(HOME); sim.forward_kinematics()
def run():
    for i in range(100):
        sim.ctrl[:] = torch.tensor(HOME) + 0.01 * i; sim.step(2)
cProfile.run("run()", "/tmp/w19/p.out")
pstats.Stats("/tmp/w19/p.out").sort_stats("tottime").print_stats(15)
