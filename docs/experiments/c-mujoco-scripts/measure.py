from __future__ import annotations
import copy, sys, time
from concurrent.futures import ThreadPoolExecutor
import mujoco, mujoco.rollout as rollout
import numpy as np, torch
from dexgrasp_cli.config import load_task_settings
from dexgrasp_tasks.dextrah.env import load_objects
from dexgrasp_tasks.dextrah.cameras import camera_specs
from dexgrasp_tasks.sim.scene import build_scene, OBJECT_BODY, OBJECT_GEOM

torch.set_num_threads(1)
N, SUB = 64, 2
s = load_task_settings()
mjm, cat = build_scene(load_objects(s), camera_specs(s.cameras))
mjm.opt.iterations = s.sim.solver_iterations
HOME = list(s.home_arm) + list(s.home_finger) * 3 + list(s.home_thumb)
g, b = mjm.geom(OBJECT_GEOM).id, mjm.body(OBJECT_BODY).id
models, datas = [], []
for w in range(N):
    m = copy.copy(mjm)
    o = w % len(cat)
    m.geom_dataid[g] = cat.mesh_ids[o]; m.geom_size[g] = cat.geom_size[o]; m.geom_aabb[g] = cat.geom_aabb[o].ravel()
    m.geom_rbound[g] = cat.geom_rbound[o]; m.geom_pos[g] = cat.geom_pos[o]; m.geom_quat[g] = cat.geom_quat[o]
    m.body_mass[b] = cat.body_mass[o]; m.body_inertia[b] = cat.body_inertia[o]; m.body_ipos[b] = cat.body_ipos[o]; m.body_iquat[b] = cat.body_iquat[o]
    d = mujoco.MjData(m); mujoco.mj_setConst(m, d); mujoco.mj_resetData(m, d)
    d.qpos[:23] = HOME; d.ctrl[:] = HOME
    models.append(m); datas.append(d)
print("nq nv nu nbody ngeom nmesh", mjm.nq, mjm.nv, mjm.nu, mjm.nbody, mjm.ngeom, mjm.nmesh, "model MB", mjm.nbytes/1e6 if hasattr(mjm,'nbytes') else '?', "data MB", datas[0].nbytes/1e6 if hasattr(datas[0],'nbytes') else '?')
results = {}
def timeit(name, fn, steps=60, warm=5):
    for _ in range(warm): fn()
    t = time.perf_counter()
    for _ in range(steps): fn()
    dt = (time.perf_counter() - t) / steps
    results[name] = N / dt
    print(f"{name:60s} {dt*1e3:8.2f} ms/step  {N/dt:9.0f} env-steps/s", flush=True)

base = [(d.qpos.copy(), d.qvel.copy()) for d in datas]
def restore():
    for d, (q, v) in zip(datas, base):
        d.qpos[:] = q; d.qvel[:] = v

# (ii) own threads
sites_ids = [mjm.site(n).id for n in ("palm_center", "index_tip", "middle_tip", "ring_tip", "thumb_tip")]
def step_chunk(ws):
    for w in ws:
        m, d = models[w], datas[w]
        for _ in range(SUB): mujoco.mj_step(m, d)
        mujoco.mj_kinematics(m, d); mujoco.mj_comPos(m, d)
def step_chunk_nofk(ws):
    for w in ws:
        m, d = models[w], datas[w]
        for _ in range(SUB): mujoco.mj_step(m, d)
for nt in (1, 2):
    pool = ThreadPoolExecutor(nt)
    chunks = [list(range(N))[i::nt] for i in range(nt)]
    restore()
    timeit(f"own pool nthread={nt}: mj_step x2 only", lambda: list(pool.map(step_chunk_nofk, chunks)))
    restore()
    timeit(f"own pool nthread={nt}: mj_step x2 + kin+comPos", lambda: list(pool.map(step_chunk, chunks)))
    pool.shutdown()

# gather cost
qpos = np.zeros((N, mjm.nq)); qvel = np.zeros((N, mjm.nv)); site = np.zeros((N, mjm.nsite, 3)); xmat = np.zeros((N, mjm.nbody, 9))
gxp = np.zeros((N, mjm.ngeom, 3)); gxm = np.zeros((N, mjm.ngeom, 9)); af = np.zeros((N, mjm.nu))
tq = torch.zeros(N, mjm.nq)
def gather():
    np.stack([d.qpos for d in datas], out=qpos); np.stack([d.qvel for d in datas], out=qvel)
    np.stack([d.site_xpos for d in datas], out=site); np.stack([d.xmat for d in datas], out=xmat)
    np.stack([d.geom_xpos for d in datas], out=gxp); np.stack([d.geom_xmat for d in datas], out=gxm)
    np.stack([d.actuator_force for d in datas], out=af)
    for a in (qpos, qvel, site, xmat, gxp, gxm, af): torch.from_numpy(a).float()
timeit("gather 7 fields into (N,...) + torch float32", gather, steps=200)
def scatter():
    qn = tq.double().numpy()
    for w, d in enumerate(datas):
        d.qpos[:] = qn[w]; d.qvel[:] = qvel[w]; d.ctrl[:] = af[w]; d.xfrc_applied[:] = 0
datas_backup = [(d.qpos.copy(), d.qvel.copy(), d.ctrl.copy()) for d in datas]
timeit("scatter qpos/qvel/ctrl/xfrc per world", scatter, steps=200)
for d, (q, v, c) in zip(datas, datas_backup): d.qpos[:] = q; d.qvel[:] = v; d.ctrl[:] = c
jacp = np.zeros((3, mjm.nv)); jacr = np.zeros((3, mjm.nv)); pal = mjm.body("palm").id
out = np.zeros((N, 6, mjm.nv))
def jac():
    for w in range(N):
        mujoco.mj_jac(models[w], datas[w], out[w, :3], out[w, 3:], datas[w].xpos[pal], pal)
timeit("mj_jac 64 worlds (python loop)", jac, steps=200)

# (i) rollout
spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
nstate = mujoco.mj_stateSize(mjm, spec)
cspec = mujoco.mjtState.mjSTATE_CTRL | mujoco.mjtState.mjSTATE_XFRC_APPLIED
ncs = mujoco.mj_stateSize(mjm, cspec)
state0 = np.zeros((N, nstate))
for w in range(N):
    mujoco.mj_getState(models[w], datas[w], state0[w], spec)
ctrl = np.zeros((N, SUB, ncs)); ctrl[:, :, :mjm.nu] = HOME
for nt in (1, 2):
    rdatas = [mujoco.MjData(mjm) for _ in range(nt)]
    with rollout.Rollout(nthread=nt) as r:
        st = state0.copy(); out_state = np.zeros((N, SUB, nstate)); warm = np.zeros((N, mjm.nv))
        def roll():
            r.rollout(models, rdatas, st, ctrl, control_spec=cspec, nstep=SUB, state=out_state, skip_checks=True, initial_warmstart=warm)
            st[:] = out_state[:, -1]
        timeit(f"rollout nthread={nt}: 2 substeps, state fed back", roll)
        def roll_fk():
            roll()
            for w in range(N):
                mujoco.mj_setState(models[w], datas[w], st[w], spec)
                mujoco.mj_kinematics(models[w], datas[w]); mujoco.mj_comPos(models[w], datas[w])
        timeit(f"rollout nthread={nt}: + setState+kin+comPos per world", roll_fk)

# MjwSim
from dexgrasp_tasks.sim.mjwarp_backend import MjwSim
sim = MjwSim(mjm, cat, np.arange(N) % len(cat), "cpu", s.sim)
sim.qpos[:, :23] = torch.tensor(HOME); sim.ctrl[:] = torch.tensor(HOME)
timeit("MjwSim.step(2) (cpu)", lambda: sim.step(2), steps=10, warm=2)
