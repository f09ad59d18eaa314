"""distill at tiny sizes: the run it writes, resume, eval of a student, disagg against single, the loss,
the aux target, the student's buffers, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import mujoco
import numpy as np
import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from dexgrasp_cli.distill.dagger import dagger_loss
from dexgrasp_cli.distill.runner import DistillOptions, local_distill_vecenv
from dexgrasp_cli.learner.checkpoint import load_checkpoint, save_checkpoint
from tests.test_cli import no_env, run_cli  # noqa: F401 (no_env is a fixture)
from tests.test_train_teacher import _NoCapture, _refuse, train

STUDENT = {
    "widths": "[8,16]", "blocks": "[1,1]", "token_count": "8", "token_grid": "[2,4]", "embed_dim": "16", "heads": "2",
    "lstm_units": "32", "mlp": "[32,32,16]", "aux_mlp": "[16,8]",
}  # fmt: skip
TINY = [f"distill.stereo.{key}={value}" for key, value in STUDENT.items()] + ["distill.horizon=4", "distill.run.save_every=1"]
TINY_ARGS = [arg for assignment in TINY for arg in ("--set", assignment)]
RES = "48x36"


def distill(run_dir, teacher: str, iterations: int, capsys, *extra: str) -> tuple[int, str, str]:
    args = ["distill", "--teacher", teacher, "--res", RES, "--num-envs", "4", "--max-iterations", str(iterations),
            "--run-dir", str(run_dir), *TINY_ARGS, *extra]  # fmt: skip
    return run_cli(args, capsys)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """A 1-iteration state teacher and depth teacher (at 32x24, another resolution than the student's)."""
    paths = {"scripted": "scripted"}
    for modality in ("state", "depth"):
        run_dir = tmp_path_factory.mktemp(f"{modality}_teacher")
        code, _, _ = train(run_dir, modality, 1, _NoCapture())
        assert code == 0
        paths[modality] = str(run_dir / "checkpoints" / "last.pt")
    return paths


@pytest.mark.parametrize("kind", ["scripted", "state", "depth"])
def test_distill_from_each_teacher_writes_its_run(kind, teachers, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code, _, err = distill(run_dir, teachers[kind], 2, capsys)
    assert code == 0, err
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["run"]["teacher"] == teachers[kind] and config["task"]["success_hold_s"] == 2.0
    assert config["task"]["cameras"]["resolution"] == RES and config["run"]["adr_level"] == 50
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in lines] == [1, 2] and lines[-1]["env_steps"] == 2 * 4 * 4
    assert all(np.isfinite(m["imitation_loss"]) and m["aux_error_cm"] > 0 for m in lines)
    events = EventAccumulator(str(run_dir / "summaries"))
    events.Reload()
    assert {"distill/imitation_loss", "distill/aux_error_cm", "distill/success_rate", "distill/env_steps_per_s",
            "distill/adr_level"} <= set(events.Tags()["scalars"])  # fmt: skip
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} >= {"best.pt", "last.pt", "iter_000002.pt"}
    meta = load_checkpoint(run_dir / "checkpoints" / "last.pt", role="student")["dexgrasp"]
    assert meta["teacher"]["kind"] == kind and meta["iteration"] == 2 and meta["resolution"] == RES
    if kind != "scripted":
        teacher_meta = load_checkpoint(Path(teachers[kind]))["dexgrasp"]
        assert meta["teacher"]["iteration"] == teacher_meta["iteration"] and len(meta["teacher"]["sha256"]) == 64


def test_resume_continues_iteration_optimizer_and_rng(teachers, tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    assert distill(run_dir, "scripted", 1, capsys)[0] == 0
    first = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    last = str(run_dir / "checkpoints" / "last.pt")
    with monkeypatch.context() as patch:  # another global batch is refused before anything is built
        patch.setattr("dexgrasp_tasks.dextrah.env.DextrahEnv.__init__", _refuse)
        for worlds in (["--num-envs", "8"], ["--num-envs", "8", "--layout", "disagg", "--replicas", "2"]):
            code, _, err = distill(run_dir, "scripted", 2, capsys, "--resume", last, *worlds)
            assert code == 2 and err.count("\n") == 1 and "another --num-envs than this run (4 vs 8)" in err, err
    code, _, err = distill(run_dir, "scripted", 2, capsys, "--resume", last)
    assert code == 0, err
    resumed = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in lines] == [1, 2] and resumed["dexgrasp"]["env_steps"] == 2 * 16
    steps = {int(s["step"]) for s in resumed["optimizer"]["state"].values()}
    assert steps == {2 * 4}, "Adam's step count continues: one step per env step (seq_length 1)"
    # The action generator continued from the saved state: 4 draws of (4 worlds, 11 actions) since.
    generator = torch.Generator().manual_seed(0)
    generator.set_state(first["generator"])
    for _ in range(4):
        torch.randn((4, 11), generator=generator)
    assert torch.equal(generator.get_state(), resumed["generator"])


def test_eval_of_a_student_reports_its_aux_error(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert distill(run_dir, "scripted", 1, capsys)[0] == 0
    out = tmp_path / "eval.json"
    args = ["eval", "--checkpoint", str(run_dir / "checkpoints" / "last.pt"), "--num-envs", "2", "--episodes", "2",
            "--set", "task.episode_length=20", "--json", str(out)]  # fmt: skip
    code, stdout, err = run_cli(args, capsys)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["policy"] == "stereo-rgb student (of a scripted teacher)" and result["episodes"] == 2
    assert 0 < result["mean_object_pos_error_cm"] < 1000 and "aux head" in stdout


def test_disagg_distill_matches_single_on_the_first_iteration(tmp_path, capsys):
    runs = {}
    for layout in ("single", "disagg"):
        extra = ("--layout", "disagg", "--replicas", "2") if layout == "disagg" else ()
        code, _, err = distill(tmp_path / layout, "scripted", 1, capsys, *extra)
        assert code == 0, err
        runs[layout] = json.loads((tmp_path / layout / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("loss", "imitation_loss", "sigma_loss", "aux_error_cm", "grad_norm"):
        assert runs["disagg"][key] == pytest.approx(runs["single"][key], rel=1e-5), key


# ---------------------------------------------------------------------------- pieces, against closed forms


def test_loss_equals_its_formula_on_constructed_tensors():
    g = torch.Generator().manual_seed(3)
    mu_s, mu_t, pos, target = (torch.randn(5, k, generator=g) for k in (11, 11, 3, 3))
    sigma_s, sigma_t = (torch.rand(5, 11, generator=g) + 0.1 for _ in range(2))
    loss = dagger_loss(mu_s, sigma_s, mu_t, sigma_t, pos, target, aux_weight=10.0)
    a, b, c, d, e, f = (t.double().numpy() for t in (mu_s, sigma_s, mu_t, sigma_t, pos, target))
    imitation = np.mean([np.sqrt(np.sum((a[i] - c[i]) ** 2 / d[i] ** 2)) for i in range(5)])
    sigma = np.mean([np.sqrt(np.sum((b[i] - d[i]) ** 2)) for i in range(5)])
    aux = np.mean([np.sqrt(np.sum((e[i] - f[i]) ** 2)) for i in range(5)])
    assert float(loss.imitation) == pytest.approx(imitation, rel=1e-6)
    assert float(loss.sigma) == pytest.approx(sigma, rel=1e-6)
    assert float(loss.total) == pytest.approx(imitation + sigma + 10.0 * aux, rel=1e-6)


def test_a_student_whose_means_are_the_teachers_has_zero_imitation_loss():
    from dexgrasp_cli.distill.student_networks import build_student
    from dexgrasp_cli.distill.student_sizes import StereoStudentSizes

    sizes = StereoStudentSizes(**{key: tuple(v) if isinstance(v := yaml.safe_load(value), list) else v
                                  for key, value in STUDENT.items()})  # fmt: skip
    student = build_student("stereo-rgb", sizes, (36, 48), 7, 11).eval()
    teacher_mu, teacher_sigma = torch.linspace(-0.5, 0.5, 11), torch.full((11,), 0.2)
    with torch.no_grad():
        student.mu.weight.zero_()
        student.mu.bias.copy_(teacher_mu)
        student.log_std.copy_(teacher_sigma.log())
    obs = {"rgb": torch.randint(0, 256, (3, 2, 3, 36, 48), dtype=torch.uint8), "proprio": torch.randn(3, 7)}
    out = student(obs, student.initial_state(3, "cpu"))
    loss = dagger_loss(out.mu, out.sigma, teacher_mu.expand(3, 11), teacher_sigma.expand(3, 11), out.object_pos,
                       out.object_pos.detach(), aux_weight=10.0)  # fmt: skip
    assert loss.imitation.item() == 0.0 and loss.sigma.item() == pytest.approx(0.0, abs=1e-7)
    loss.total.backward()  # a zero distance has a finite (zero) gradient
    assert all(torch.isfinite(p.grad).all() for p in student.parameters() if p.grad is not None)


def _options(teacher: str = "scripted") -> DistillOptions:
    return DistillOptions(teacher, "stereo-rgb", 4, "cpu", 0, 1, Path("unused"), None, 0, ())


def test_aux_target_is_the_object_position_c_mujoco_computes(settings):
    """After the objects fall, ``object_pos`` equals the object body's position from C MuJoCo's kinematics."""
    venv = local_distill_vecenv(settings.with_camera_resolution(RES), _options(), None)
    for _ in range(20):
        obs, *_ = venv.step(torch.zeros(4, venv.env.num_actions))
    sim = venv.env.sim
    data = mujoco.MjData(sim.mjm)
    for world in range(4):
        data.qpos[:] = sim.qpos[world].double().numpy()
        mujoco.mj_kinematics(sim.mjm, data)
        expected = data.xpos[sim.object_body]
        np.testing.assert_allclose(obs["obs"]["object_pos"][world].numpy(), expected, atol=1e-6)


def test_the_students_buffers_hold_rgb_as_uint8(settings):
    venv = local_distill_vecenv(settings.with_camera_resolution(RES), _options(), None)
    space = venv.get_env_info()["observation_space"]["rgb"]
    assert space.dtype == np.uint8 and space.shape == (2, 3, 36, 48)
    slot = venv.reset()["obs"]["rgb"]
    assert slot.dtype == torch.uint8 and slot.nbytes == 4 * 2 * 3 * 36 * 48  # one byte per channel and pixel
    assert torch.equal(slot, venv.env.images.outputs["rgb"])  # what the cameras rendered, unconverted


# ---------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def broken_teachers(teachers, tmp_path_factory):
    """A corrupt file, a teacher of another action space and one of an unknown format version."""
    folder = tmp_path_factory.mktemp("broken")
    (folder / "corrupt.pt").write_bytes(b"not a checkpoint")
    for name, change in (("joint_deltas.pt", ("config", "joint_deltas")), ("version.pt", ("format_version", 99))):
        state = load_checkpoint(Path(teachers["state"]))
        if change[0] == "config":
            state["dexgrasp"]["config"]["task"]["actions"]["space"] = change[1]
        else:
            state["dexgrasp"]["format_version"] = change[1]
        save_checkpoint(folder / name, state)
    return folder


@pytest.mark.parametrize("args, names", [
    (["--teacher", "missing.pt"], "missing.pt does not exist"),
    (["--teacher", "{broken}/corrupt.pt"], "cannot be read"),
    (["--teacher", "scripted", "--student", "lidar"], "--student 'lidar'"),
    (["--teacher", "scripted", "--res", "0x48"], "--res"),
    (["--teacher", "{broken}/joint_deltas.pt"], "acts in the joint_deltas action space"),
    (["--teacher", "{broken}/version.pt"], "format version 99"),
    (["--teacher", "scripted", "--resume", "{state}"], "is a teacher checkpoint; a student checkpoint is needed"),
    (["--teacher", "{state}", "--student", "depth", "--set", "distill.horizon=5", "--set", "distill.seq_length=2"],
     "distill.horizon (5) must be a multiple of distill.seq_length (2)"),
    (["--teacher", "scripted", "--layout", "dp"], "dp is for train-teacher"),
    (["--teacher", "scripted", "--set", "train.ppo.gamma=0.9"], "keys start with task or distill"),
])  # fmt: skip
def test_bad_input_is_one_line_exit_2_and_builds_nothing(args, names, teachers, broken_teachers, tmp_path, capsys, no_env):
    args = [a.format(broken=broken_teachers, state=teachers["state"]) for a in args]
    code, out, err = run_cli(["distill", "--run-dir", str(tmp_path / "run"), *args], capsys)
    assert code == 2 and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], err
    assert not (tmp_path / "run").exists()
