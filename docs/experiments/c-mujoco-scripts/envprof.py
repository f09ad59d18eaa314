import dataclasses, cProfile, pstats, time, torch, sys
from dexgrasp_cli.config import load_task_settings
from dexgrasp_tasks.dextrah.env import DextrahEnv
s = load_task_settings(); torch.set_num_threads(int(sys.argv[1]))
env = DextrahEnv(s, 64) if len(sys.argv) < 3 else DextrahEnv(dataclasses.replace(s, sim=dataclasses.replace(s.sim, backend=sys.argv[2])), 64)
g = torch.Generator().manual_seed(0)
acts = [torch.rand(64, env.num_actions, generator=g) * 2 - 1 for _ in range(30)]
for a in acts[:5]: env.step(a)
t = time.perf_counter()
for a in acts: env.step(a)
print("ms/step", (time.perf_counter() - t) / 30 * 1e3, "torch threads", torch.get_num_threads())
cProfile.run("for a in acts: env.step(a)", "/tmp/w19/e.out")
pstats.Stats("/tmp/w19/e.out").sort_stats("tottime").print_stats(20)
