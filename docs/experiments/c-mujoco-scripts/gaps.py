import sys; sys.path.insert(0, "tests")
import numpy as np
from dexgrasp_cli.config import load_task_settings
from test_mujoco_backend import _randomized, _rollout, MjwSim, MujocoSim, procedural_objects, NUM_OBJECTS
s = load_task_settings()
objs = procedural_objects(NUM_OBJECTS, seed=0)
w, c = (_randomized(k, s, objs) for k in (MjwSim, MujocoSim))
a, b = _rollout(w), _rollout(c)
print("joint gap", np.abs(a[:, :23]-b[:, :23]).max(), "object pos gap", np.abs(a[:, 23:26]-b[:, 23:26]).max())
