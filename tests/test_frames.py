"""Tests for the camera frame PNGs: read them back and check the pixels."""

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.image import imread

from dexgrasp_cli.frames import DEPTH_CMAP, frame_worlds, save_frames

H, W = 24, 32
NEAR, FAR = 0.2, 1.5
WORLD_IDS = [3, 7]


def _depth(dtype=torch.float32) -> torch.Tensor:
    """Left-to-right ramp from near to far, with a block of no reading."""
    ramp = torch.linspace(NEAR, FAR, W).expand(H, W).clone()
    ramp[5:10, 4:12] = 0.0
    return torch.stack([ramp, ramp.flip(1)]).unsqueeze(1).to(dtype)  # (2, 1, H, W)


def _rgb() -> torch.Tensor:
    """Left camera pure red, right pure blue with a white square."""
    rgb = torch.zeros(len(WORLD_IDS), 2, 3, H, W, dtype=torch.uint8)
    rgb[:, 0, 0] = 255
    rgb[:, 1, 2] = 255
    rgb[:, 1, :, 8:16, 10:18] = 255
    return rgb


def _read_rgb(path) -> np.ndarray:
    return imread(path)[..., :3]


def test_writes_named_files_with_exact_rgb_and_overview_last(tmp_path):
    rgb = _rgb()
    folder = tmp_path / "frames" / "nested"  # created on demand
    paths = save_frames(folder, 12, WORLD_IDS, _depth(), rgb, (NEAR, FAR))

    names = [p.name for p in paths]
    assert names == [
        f"step00012_world{w:04d}_{kind}.png" for w in WORLD_IDS for kind in ("depth", "left", "right")
    ] + ["step00012_overview.png"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)  # no temp files left behind

    for row, world in enumerate(WORLD_IDS):
        for camera, kind in enumerate(("left", "right")):
            image = _read_rgb(folder / f"step00012_world{world:04d}_{kind}.png")
            image = np.round(image * 255).astype(np.uint8)
            np.testing.assert_array_equal(image, rgb[row, camera].permute(1, 2, 0).numpy())

    overview = imread(paths[-1])
    assert overview.shape[0] > H and overview.shape[1] > 3 * W


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_depth_colormap_black_holes_and_monotonic_ramp(tmp_path, dtype):
    depth = _depth(dtype)
    save_frames(tmp_path, 0, WORLD_IDS, depth, None, (NEAR, FAR))
    image = _read_rgb(tmp_path / "step00000_world0003_depth.png")
    assert image.shape == (H, W, 3)

    np.testing.assert_array_equal(image[5:10, 4:12], 0.0)
    assert (image[:5].max(axis=-1) > 0.1).all()  # valid pixels, even at the map's dark end, are not black

    metres = depth[0, 0].float().numpy()
    cmap = matplotlib.colormaps[DEPTH_CMAP]
    for col in (0, 8, 16, 24, W - 1):
        expected = cmap((metres[0, col] - NEAR) / (FAR - NEAR))[:3]
        np.testing.assert_allclose(image[0, col], expected, atol=1 / 255 + 1e-6)

    # The flipped ramp in the second world mirrors the first one's colours.
    flipped = _read_rgb(tmp_path / "step00000_world0007_depth.png")
    np.testing.assert_array_equal(flipped[0], image[0, ::-1])


def test_depth_outside_clip_range_saturates_at_the_ends(tmp_path):
    depth = torch.tensor([[[[0.05, NEAR, FAR, 9.0]]]])
    save_frames(tmp_path, 1, [0], depth, None, (NEAR, FAR))
    row = _read_rgb(tmp_path / "step00001_world0000_depth.png")[0]
    np.testing.assert_array_equal(row[0], row[1])
    np.testing.assert_array_equal(row[2], row[3])


def test_depth_only_writes_no_camera_images(tmp_path):
    paths = save_frames(tmp_path, 5, [0], _depth()[:1], None, (NEAR, FAR))
    assert [p.name for p in paths] == ["step00005_world0000_depth.png", "step00005_overview.png"]
    assert not list(tmp_path.glob("*_left.png")) and not list(tmp_path.glob("*_right.png"))


def test_rgb_only_writes_no_depth_image(tmp_path):
    paths = save_frames(tmp_path, 5, WORLD_IDS, None, _rgb(), (NEAR, FAR))
    assert not any(p.name.endswith("_depth.png") for p in paths)
    assert len(paths) == 2 * len(WORLD_IDS) + 1


def test_rejects_missing_or_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError):
        save_frames(tmp_path, 0, [0], None, None, (NEAR, FAR))
    with pytest.raises(ValueError):
        save_frames(tmp_path, 0, [0, 1, 2], _depth(), None, (NEAR, FAR))  # 2 worlds of depth for 3 ids
    with pytest.raises(ValueError):
        save_frames(tmp_path, 0, WORLD_IDS, None, _rgb().float(), (NEAR, FAR))


def test_frame_worlds_takes_the_first_few():
    assert frame_worlds(10) == [0, 1, 2, 3]
    assert frame_worlds(2) == [0, 1]
    assert frame_worlds(10, count=6) == [0, 1, 2, 3, 4, 5]
