"""Cameras: depth and stereo RGB checked against geometry, C MuJoCo ray casts and closed forms.

One small env (4 worlds, all holding the same sphere, 80x60 images) serves every test; tests that
move the object or change the ADR level put the env back as they found it.
"""

from __future__ import annotations

import dataclasses
import math

import mujoco
import numpy as np
import pytest
import torch

from dexgrasp_assets.objects import procedural_objects
from dexgrasp_tasks.dextrah.cameras import camera_axes, focal_length_px
from dexgrasp_tasks.dextrah.env import DextrahEnv
from dexgrasp_tasks.dextrah.images import ImageObservations, image_memory_bytes
from dexgrasp_tasks.sim.scene import OBJECT_GEOM

RES = "80x60"
W, H = 80, 60
TABLE_TOP_Z = 0.25  # DextrAH's table top
OBJ = slice(23, 30)  # the object's free joint in qpos


@pytest.fixture(scope="module")
def env(settings):
    sphere = [shape for shape in procedural_objects(3, 0) if shape.name.startswith("sphere")]
    env = DextrahEnv(settings.with_camera_resolution(RES), 4, objects=sphere, images=("depth", "rgb"))
    yield env


def place_object(env: DextrahEnv, world: int, pos) -> None:
    env.sim.qpos[world, OBJ] = torch.tensor([*pos, 1.0, 0.0, 0.0, 0.0])
    env.sim.qvel[world] = 0.0
    env.sim.forward_kinematics()


def pixel_rays(settings) -> np.ndarray:
    """(H, W, 3) camera-frame rays through pixel centres with z = -1 (pinhole from the HFOV)."""
    f = focal_length_px(settings.cameras)
    u = (np.arange(W) + 0.5 - W / 2) / f
    v = (np.arange(H) + 0.5 - H / 2) / f
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu, -vv, -np.ones_like(uu)], axis=-1)


def camera_pose(env: DextrahEnv, world: int, camera: str) -> tuple[np.ndarray, np.ndarray]:
    """A world's camera position and rotation matrix, from the (possibly randomized) model fields."""
    cam = env.sim.mjm.camera(camera).id
    pos = env.sim.model["cam_pos"][world, cam].double().numpy()
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, env.sim.model["cam_quat"][world, cam].double().numpy())
    return pos, mat.reshape(3, 3)


def c_mujoco_hits(env: DextrahEnv, world: int, pos: np.ndarray, rays_world: np.ndarray) -> np.ndarray:
    """(H, W) geom id that C MuJoCo's mj_ray hits first for each pixel ray (-1: none)."""
    data = mujoco.MjData(env.sim.mjm)
    data.qpos[:] = env.sim.qpos[world].double().numpy()
    mujoco.mj_forward(env.sim.mjm, data)
    hits = np.full(rays_world.shape[:2], -1, dtype=np.int32)
    geom = np.zeros(1, dtype=np.int32)
    for (i, j), ray in np.ndenumerate(rays_world[..., 0]):
        mujoco.mj_ray(env.sim.mjm, data, pos, rays_world[i, j].copy(), None, 1, -1, geom)
        hits[i, j] = geom[0]
    return hits


def check_table_depth(env: DextrahEnv, world: int) -> int:
    """Depth at every pixel whose ray C MuJoCo says meets the table equals the ray-plane distance."""
    settings = env.settings
    pos, mat = camera_pose(env, world, "depth")
    rays = pixel_rays(settings) @ mat.T  # world frame; each ray's camera z is -1, so t is planar depth
    table = c_mujoco_hits(env, world, pos, rays) == env.sim.mjm.geom("table").id
    planar = (TABLE_TOP_Z - pos[2]) / rays[..., 2]
    depth = env.render()["depth"][world, 0].float().numpy()
    near, far = settings.cameras.depth_range
    inside = table & (planar >= near) & (planar <= far)
    outside = table & ((planar < near - 1e-3) | (planar > far + 1e-3))
    assert inside.sum() > 0.05 * W * H
    np.testing.assert_allclose(depth[inside], planar[inside], atol=2e-3)
    assert (depth[outside] == 0).all()
    return int(inside.sum())


def test_table_depth_is_the_ray_plane_distance(env):
    place_object(env, 0, (-0.3, 0.45, 0.3))  # out of the way
    check_table_depth(env, 0)
    env.reset()


def test_object_moved_toward_the_camera_reads_nearer(env):
    pos, mat = camera_pose(env, 1, "depth")
    forward = -mat[:, 2]
    centre = (slice(H // 2 - 1, H // 2 + 1), slice(W // 2 - 1, W // 2 + 1))
    readings = []
    for distance in (0.95, 0.80):
        place_object(env, 1, pos + distance * forward)
        readings.append(env.render()["depth"][1, 0][centre].float().mean().item())
    radius = env.catalog.half_extents[0, 0]
    assert readings[0] - readings[1] == pytest.approx(0.15, abs=3e-3)
    assert readings[1] == pytest.approx(0.80 - radius, abs=5e-3)  # the sphere's front surface
    env.reset()


def test_stereo_disparity_is_f_b_over_z(env):
    world, depth = 2, 0.7
    pos, mat = camera_pose(env, world, "left")
    place_object(env, world, (0.0, 0.0, -5.0))  # below the floor: the background alone
    background = env.render()["rgb"][world].clone()
    place_object(env, world, pos + depth * -mat[:, 2])
    rgb = env.render()["rgb"][world]
    columns = []
    for camera in range(2):
        mask = (rgb[camera] != background[camera]).any(dim=0)
        assert mask.sum() > 50
        columns.append(torch.nonzero(mask)[:, 1].double().mean().item())
    cameras = env.settings.cameras
    expected = focal_length_px(cameras) * cameras.stereo_baseline / depth
    assert columns[0] - columns[1] == pytest.approx(expected, abs=1.0)
    env.reset()


def test_different_object_poses_give_different_images(env):
    for world in range(env.num_envs):
        place_object(env, world, (-0.55, 0.1, 0.40))
    same = env.render()["depth"].clone()
    assert all(torch.equal(same[0], same[w]) for w in range(1, env.num_envs))
    place_object(env, 3, (-0.50, 0.15, 0.45))
    moved = env.render()["depth"]
    assert torch.equal(moved[:3], same[:3])
    changed = (moved[3] != same[3]).float().mean().item()
    assert 0.005 < changed < 0.3  # the object's pixels, not the whole image
    env.reset()


def test_images_show_the_state_after_the_step(env):
    env.reset()  # objects dropped from 0.5 m: they fall during the step
    before = env.render()["depth"].clone()
    obs = env.step(torch.zeros(env.num_envs, env.num_actions)).obs
    after = obs["depth"].clone()
    assert not torch.equal(after, before)
    assert torch.equal(env.render()["depth"], after)  # a fresh render of the current state
    env.reset()


def test_image_buffers_are_reused_every_step(env):
    first = {name: env.render()[name].data_ptr() for name in ("depth", "rgb")}
    renderer = (env.images.renderer.depth.data_ptr(), env.images.renderer.bgra.data_ptr())
    obs = env.step(torch.zeros(env.num_envs, env.num_actions)).obs
    assert {name: obs[name].data_ptr() for name in first} == first
    assert (env.images.renderer.depth.data_ptr(), env.images.renderer.bgra.data_ptr()) == renderer
    env.reset()


def test_dtypes_shapes_and_clipping_follow_the_settings(env, settings):
    obs = env.render()
    assert obs["depth"].shape == (4, 1, H, W) and obs["depth"].dtype == torch.float16
    assert obs["rgb"].shape == (4, 2, 3, H, W) and obs["rgb"].dtype == torch.uint8
    assert obs["depth"].device == obs["rgb"].device == env.device
    fp16 = obs["depth"].float().clone()

    narrow = dataclasses.replace(
        settings.with_camera_resolution(RES).cameras, depth_range=(0.6, 0.9), depth_dtype="float32"
    )
    images = ImageObservations(env.sim, narrow, ("depth",))
    depth = images.update(env.seed, env.world_ids, torch.zeros_like(env.world_ids))["depth"]
    assert depth.dtype == torch.float32 and depth.shape == (4, 1, H, W) and "rgb" not in images.outputs
    # Same scene, narrower range: kept pixels agree with the wide image, the rest read 0.
    kept = depth > 0
    assert ((depth[kept] >= 0.6) & (depth[kept] <= 0.9)).all()
    torch.testing.assert_close(fp16[kept], depth[kept], atol=1e-3, rtol=0)
    assert kept[(fp16 > 0.601) & (fp16 < 0.899)].all()
    assert not kept[(fp16 > 0) & ((fp16 < 0.599) | (fp16 > 0.901))].any()
    assert kept.any() and ((fp16 > 0) & ~kept).any()  # both sides of the range occur
    # The up-front memory estimate is what the buffers hold.
    assert images.memory_bytes() == image_memory_bytes(narrow, ("depth",), 4)
    assert env.images.memory_bytes() == image_memory_bytes(env.settings.cameras, ("depth", "rgb"), 4)


def test_visual_randomization_varies_colours_and_poses(env, settings):
    table = env.sim.mjm.geom("table").id
    obj = env.sim.mjm.geom(OBJECT_GEOM).id
    depth_cam = env.sim.mjm.camera("depth").id
    rgba = env.sim.model["geom_rgba"]
    assert torch.equal(rgba[0, table], rgba[3, table])  # level 0: nominal everywhere
    try:
        env.adr.set_level(env.adr.settings.num_levels)
        env.reset()
        for geom in (table, obj):
            assert len({tuple(rgba[w, geom, :3].tolist()) for w in range(4)}) == 4
        # Table pixels (the image's left columns at mid height) differ in colour between worlds.
        pixel_colours = env.render()["rgb"][:, 0, :, H // 2, 2].float()
        assert torch.cdist(pixel_colours, pixel_colours).fill_diagonal_(1e9).min() > 5.0
        offsets = env.sim.model["cam_pos"][:, depth_cam] - torch.tensor(settings.cameras.position)
        assert (offsets.abs() <= 0.03 + 1e-6).all() and offsets.abs().max() > 0.005
        # Per-world camera poses move the precomputed rays with them: depth still matches geometry.
        for world in range(env.num_envs):
            place_object(env, world, (-0.3, 0.45, 0.3))
            check_table_depth(env, world)
    finally:
        env.adr.set_level(0)
        env.reset()


def test_nominal_camera_matches_task_facts(settings):
    axes = camera_axes(settings.cameras)
    forward = np.array(settings.cameras.direction) / np.linalg.norm(settings.cameras.direction)
    np.testing.assert_allclose(-axes[:, 2], forward, atol=1e-12)
    np.testing.assert_allclose(axes.T @ axes, np.eye(3), atol=1e-12)
    # Rolled 90 degrees: the image x axis is the world's up direction seen across the optical axis.
    assert axes[2, 0] > 0.99
    hfov = 2 * math.degrees(math.atan(settings.cameras.width / 2 / focal_length_px(settings.cameras)))
    assert hfov == pytest.approx(48.0)
