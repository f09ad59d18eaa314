import dataclasses, sys, time, torch
torch.set_num_threads(1)
from rich.console import Console
from dexgrasp_cli.config import load_task_settings
from dexgrasp_cli.evaluate import run_eval
s = load_task_settings()
for space in ("joint_deltas", "palm_pose"):
    for backend in ("mujoco", "mjwarp"):
        st = dataclasses.replace(s, actions=dataclasses.replace(s.actions, space=space), sim=dataclasses.replace(s.sim, backend=backend))
        t = time.perf_counter()
        r = run_eval(st, num_envs=32, episodes=32, device="cpu", seed=0, adr_level=0, console=Console(quiet=True))
        print(space, backend, "successes", round(r["success_rate_episode"] * 32), "of 32", f"{time.perf_counter()-t:.0f}s", flush=True)
