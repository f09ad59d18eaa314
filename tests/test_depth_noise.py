"""Depth noise stages against closed forms and an independent loop rasterizer (the paper's noise stages)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from dexgrasp_cli.config import from_dict
from dexgrasp_tasks.dextrah.depth_noise import DepthNoise
from dexgrasp_tasks.dextrah.settings import DepthNoiseSettings

NEAR, FAR = 0.5, 1.3
N, H, W = 8, 120, 160
FOCAL_PX = W / 2 / math.tan(math.radians(48.0) / 2)  # the 48-degree depth camera at 160 px wide
OFF = DepthNoiseSettings(
    enabled=True,
    dropout_prob=0.0,
    random_value_prob=0.0,
    stick_prob=0.0,
    stick_max_length=18,
    stick_max_width=3,
    correlated_std=0.0,
    correlated_cell=8,
    normal_noise_scale=0.0,
)
ALL = dataclasses.replace(
    OFF, dropout_prob=0.003, random_value_prob=0.003, stick_prob=0.00025, correlated_std=0.01, normal_noise_scale=1.0
)
AXIAL = dataclasses.replace(OFF, normal_noise_scale=1.0)


def _noisy(settings, clean, seed=0, counter=0, world_ids=None, depth_range=(NEAR, FAR)):
    """The noisy copy of `clean` (N, 1, H, W) with the given settings."""
    n, _, h, w = clean.shape
    ids = torch.arange(n) if world_ids is None else world_ids
    depth = clean.clone()
    DepthNoise(settings, n, h, w, depth_range, FOCAL_PX, "cpu").apply(depth, seed, ids, torch.full((n,), counter))
    return depth


def _constant(value, n=N, h=H, w=W):
    return torch.full((n, 1, h, w), value)


def _assert_binomial(hits: int, trials: int, p: float):
    """Within five binomial standard deviations of the expected count."""
    assert abs(hits - trials * p) < 5 * math.sqrt(trials * p * (1 - p)), (hits, trials * p)


def test_dropout_rate_on_valid_pixels():
    p = 0.05
    settings = dataclasses.replace(OFF, dropout_prob=p)
    out = _noisy(settings, _constant(0.9))
    _assert_binomial(int((out == 0).sum()), out.numel(), p)
    assert torch.all((out == 0) | (out == 0.9))

    clean = _constant(0.9)
    clean[..., : W // 2] = 0.0
    out = _noisy(settings, clean)
    valid = clean > 0
    assert torch.all(out[~valid] == 0)
    _assert_binomial(int((out[valid] == 0).sum()), int(valid.sum()), p)


def test_random_values_rate_range_and_mean():
    p = 0.05
    out = _noisy(dataclasses.replace(OFF, random_value_prob=p), _constant(0.9))
    changed = out[out != 0.9]
    _assert_binomial(changed.numel(), out.numel(), p)
    assert changed.min() >= NEAR and changed.max() <= FAR
    mean_std = (FAR - NEAR) / math.sqrt(12 * changed.numel())
    assert abs(changed.mean().item() - (NEAR + FAR) / 2) < 5 * mean_std


def test_random_values_also_fill_missing_pixels():
    p = 0.05
    out = _noisy(dataclasses.replace(OFF, random_value_prob=p), _constant(0.0))
    _assert_binomial(int((out != 0).sum()), out.numel(), p)


def _reference_stick_fractions(settings, n_images, h, w, seed=0):
    """Covered fraction per image, rasterizing Poisson-many sticks one pixel at a time."""
    rnd = np.random.default_rng(seed)
    fractions = []
    for count in rnd.poisson(h * w * settings.stick_prob, n_images):
        sticks = zip(
            rnd.integers(h, size=count).tolist(),
            rnd.integers(w, size=count).tolist(),
            rnd.uniform(0.0, math.pi, count).tolist(),
            rnd.integers(1, settings.stick_max_length + 1, count).tolist(),
            rnd.integers(1, settings.stick_max_width + 1, count).tolist(),
        )
        covered = set()
        for row, col, angle, length, width in sticks:
            cos, sin = math.cos(angle), math.sin(angle)
            for t in range(length):
                for k in range(width):
                    r, c = round(row + t * sin + k * cos), round(col + t * cos - k * sin)
                    if 0 <= r < h and 0 <= c < w:
                        covered.add((r, c))
        fractions.append(len(covered) / (h * w))
    return torch.tensor(fractions, dtype=torch.float64)


def test_stick_coverage_matches_loop_rasterizer():
    h, w = 48, 64
    settings = dataclasses.replace(OFF, stick_prob=0.004)  # about 12 sticks per image
    got = (_noisy(settings, _constant(0.9, 4000, h, w)) == 0).double().mean(dim=(1, 2, 3))
    ref = _reference_stick_fractions(settings, 2000, h, w)
    std_err = math.sqrt(got.var() / got.numel() + ref.var() / ref.numel())
    assert abs(got.mean() - ref.mean()) < 5 * std_err, (got.mean(), ref.mean())


def _components(image: torch.Tensor) -> list[list[tuple[int, int]]]:
    """8-connected components of the zero pixels of an (H, W) image."""
    todo = set(map(tuple, (image == 0).nonzero().tolist()))
    components = []
    while todo:
        stack, component = [todo.pop()], []
        while stack:
            r, c = stack.pop()
            component.append((r, c))
            for neighbour in [(r + dr, c + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)]:
                if neighbour in todo:
                    todo.remove(neighbour)
                    stack.append(neighbour)
        components.append(component)
    return components


def test_thin_sticks_are_short_lines():
    n, max_length = 256, 12
    settings = dataclasses.replace(OFF, stick_prob=1.0 / (H * W), stick_max_length=max_length, stick_max_width=1)
    out = _noisy(settings, _constant(0.9, n))
    components = [c for image in out[:, 0] for c in _components(image)]
    # About one stick per image; two sticks rarely touch, so components count sticks.
    assert abs(len(components) - n) < 5 * math.sqrt(n)
    for component in components:
        assert len(component) <= max_length
        # Every pixel lies within rounding distance of the line through the two farthest pixels.
        points = torch.tensor(component, dtype=torch.float64)
        i, j = divmod(int(torch.cdist(points, points).argmax()), len(component))
        axis = points[j] - points[i]
        if axis.norm() > 0:
            offsets = points - points[i]
            distance = (offsets[:, 0] * axis[1] - offsets[:, 1] * axis[0]).abs() / axis.norm()
            assert distance.max() <= 1.0, component


def test_correlated_field_std_and_smoothness():
    std = 0.01
    clean = _constant(0.9)
    noise = (_noisy(dataclasses.replace(OFF, correlated_std=std), clean) - clean)[:, 0].double()
    assert torch.all(noise != 0)
    assert abs(noise.std().item() / std - 1) < 0.1
    neighbours = torch.corrcoef(torch.stack([noise[:, :, :-1].flatten(), noise[:, :, 1:].flatten()]))[0, 1]
    assert neighbours > 0.9  # independent per-pixel noise would give about 0


def test_correlated_noise_only_on_valid_pixels_and_clipped_to_range():
    settings = dataclasses.replace(OFF, correlated_std=0.02)
    clean = _constant(FAR - 0.01)
    clean[..., :10] = 0.0
    out = _noisy(settings, clean)
    # The field ignores the depth range, so a wide range shows the unclipped noisy image.
    unclipped = _noisy(settings, clean, depth_range=(0.0, 10.0))
    expected = torch.where(unclipped > FAR, 0.0, unclipped)
    assert torch.equal(out, expected)
    assert torch.all(out[..., :10] == 0)
    assert 0.1 < (out[..., 10:] == 0).double().mean() < 0.6  # P(noise > 0.5 std) = 0.31


# Axial (normal-dependent) noise. The images are small patches at the centre of the 160x120
# camera (its focal length, principal point on the optical axis), so every ray is within
# 1.6 degrees of the axis and the patch's angles are those of the plane's normal.
PATCH, PATCH_WORLDS = 8, 4096


def _assert_std(samples: torch.Tensor, std: float):
    """Mean 0 and the given std, each within five standard errors (chi-square for the std)."""
    m = samples.numel()
    assert abs(samples.mean().item()) < 5 * std / math.sqrt(m)
    assert abs(samples.std().item() / std - 1) < 5 / math.sqrt(2 * m), (samples.std().item(), std)


def _fronto_std(z):
    """Nguyen, Izadi and Lovell (2012) axial std at normal incidence (theta = 0)."""
    return 0.0012 + 0.0019 * (z - 0.4) ** 2


@pytest.mark.parametrize("z", [0.6, 1.2])
def test_axial_noise_of_fronto_parallel_plane(z):
    # theta <= 1.6 degrees here makes the angle term under 1e-7 m, far inside the tolerance.
    clean = _constant(z, PATCH_WORLDS, PATCH, PATCH)
    _assert_std(_noisy(AXIAL, clean).double() - clean.double(), _fronto_std(z))


@pytest.mark.parametrize(("tilt_deg", "grazing"), [(60.0, 4.0), (85.0, 64.0)])
def test_axial_noise_of_tilted_plane(tilt_deg, grazing):
    """theta^2 / (pi/2 - theta)^2 is 4 at 60 degrees, and 64 at 85 because theta is clamped at 80."""
    z0, rows, cols = 0.9, PATCH, 2  # two columns keep the patch's depth and angle spread small
    # The plane through (0, 0, z0) with normal (sin t, 0, cos t), turned by t about the vertical
    # axis, meets the ray (x, y, 1) at planar depth z0 / (1 + x tan t).
    x = (torch.arange(cols, dtype=torch.float64) + 0.5 - cols / 2) / FOCAL_PX
    depth = z0 / (1 + x * math.tan(math.radians(tilt_deg)))
    clean = depth.float().expand(4 * PATCH_WORLDS, 1, rows, cols).clone()
    noise = _noisy(AXIAL, clean).double() - clean.double()
    expected = _fronto_std(z0) + 0.0001 / math.sqrt(z0) * grazing
    _assert_std(noise, expected)
    assert noise.std() > 1.2 * _fronto_std(z0)


def test_normal_noise_scale_multiplies_the_axial_noise():
    clean = _constant(0.9, 16, PATCH, PATCH)
    once = _noisy(AXIAL, clean) - clean
    scaled = _noisy(dataclasses.replace(AXIAL, normal_noise_scale=2.5), clean) - clean
    assert (scaled - 2.5 * once).abs().max() < 1e-6  # the same draws, up to float32 rounding


def test_axial_noise_keeps_holes_and_step_edges_finite():
    clean = _constant(0.6, 64, 32, 32)
    clean[..., 16:] = 1.2  # a step edge
    clean[torch.rand(clean.shape, generator=torch.Generator().manual_seed(2)) < 0.2] = 0.0
    clean[..., 4:7, 4:7] = 0.0
    clean[..., 5, 5] = 0.6  # a valid pixel with no valid neighbour
    out = _noisy(AXIAL, clean)
    assert torch.isfinite(out).all()
    assert torch.equal(out > 0, clean > 0)  # holes stay holes; noise this small never leaves the range
    # The largest std the clamp allows (theta = 80 degrees, nearest depth) bounds every pixel.
    assert (out - clean).abs().max() < 6 * (_fronto_std(0.6) + 0.0001 / math.sqrt(0.6) * 64)


def test_pixels_without_valid_neighbours_get_normal_incidence():
    clean = _constant(0.6, PATCH_WORLDS, PATCH, PATCH)
    rows, cols = torch.meshgrid(torch.arange(PATCH), torch.arange(PATCH), indexing="ij")
    holes = (rows + cols) % 2 == 1  # a checkerboard: no valid pixel has a valid 4-neighbour
    clean[..., holes] = 0.0
    out = _noisy(AXIAL, clean).double()
    assert torch.all(out[..., holes] == 0)
    _assert_std(out[..., ~holes] - 0.6, _fronto_std(0.6))


def test_axial_noise_beside_step_edges_uses_the_pixels_own_surface():
    clean = _constant(0.6, PATCH_WORLDS, PATCH, PATCH)
    clean[..., PATCH // 2 :] += 0.3  # steps between columns 3 and 4
    clean[..., PATCH // 2 :, :] += 0.2  # and between rows 3 and 4: four planes facing the camera
    edge = torch.zeros(PATCH, PATCH, dtype=torch.bool)
    edge[PATCH // 2 - 1 : PATCH // 2 + 1] = True
    edge[:, PATCH // 2 - 1 : PATCH // 2 + 1] = True
    noise = (_noisy(AXIAL, clean).double() - clean.double())[..., edge]
    # A tangent taken across a step would read as grazing: about five times this std.
    _assert_std(noise / _fronto_std(clean[..., edge].double()), 1.0)


def test_chunked_equals_unchunked():
    n = 7
    clean = torch.rand(n, 1, H, W, generator=torch.Generator().manual_seed(3)) + 0.5
    clean[..., W // 2 :] -= 0.3  # a step edge, and holes below the near clip
    ids, counter = torch.arange(10, 10 + n), torch.arange(n) * 5

    def noisy(chunk_worlds):
        noise = DepthNoise(ALL, n, H, W, (NEAR, FAR), FOCAL_PX, "cpu", chunk_worlds=chunk_worlds)
        depth = clean.clone()
        noise.apply(depth, 4, ids, counter)
        return noise.chunk_worlds, depth

    (one_chunk, whole), (three, chunked) = noisy(n), noisy(3)
    assert (one_chunk, three) == (n, 3)
    assert torch.equal(chunked, whole)
    with pytest.raises(ValueError, match=r"^chunk_worlds must be >= 1, got 0$"):
        noisy(0)


def test_default_chunk_bounds_random_number_memory():
    """The widest draw (the uniforms: dropout, random values, sticks) stays within 64 MiB of int64 per chunk."""
    noise = DepthNoise(ALL, 8192, H, W, (NEAR, FAR), FOCAL_PX, "cpu")
    assert 64 <= noise.chunk_worlds < 8192
    assert noise.uniform_cols > 2 * H * W  # a full image each for dropout and random values, plus sticks
    assert noise.chunk_worlds * max(noise.uniform_cols, noise.gaussian_cols) * 8 <= 64 * 2**20


def test_disabled_leaves_depth_bit_identical():
    clean = torch.rand(N, 1, H, W, generator=torch.Generator().manual_seed(0)) + 0.4
    assert torch.equal(_noisy(dataclasses.replace(ALL, enabled=False), clean), clean)
    assert torch.equal(_noisy(OFF, clean), clean)


def test_same_counter_repeats_and_new_counter_changes():
    clean = _constant(0.9)
    first = _noisy(ALL, clean, seed=3, counter=5)
    assert torch.equal(first, _noisy(ALL, clean, seed=3, counter=5))
    assert not torch.equal(first, clean)
    changed = _noisy(ALL, clean, seed=3, counter=6)
    assert (changed != first).double().mean() > 0.9


def test_world_noise_is_independent_of_batch():
    clean = torch.rand(N, 1, H, W, generator=torch.Generator().manual_seed(1)) + 0.5
    counter = torch.arange(N) * 7
    full = clean.clone()
    DepthNoise(ALL, N, H, W, (NEAR, FAR), FOCAL_PX, "cpu").apply(full, 11, torch.arange(N), counter)
    part = clean[2:5].clone()
    DepthNoise(ALL, 3, H, W, (NEAR, FAR), FOCAL_PX, "cpu").apply(part, 11, torch.arange(2, 5), counter[2:5])
    assert torch.equal(full[2:5], part)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("dropout_prob", 1.5, "task.cameras.noise.dropout_prob must be in [0, 1], got 1.5"),
        ("random_value_prob", -0.1, "task.cameras.noise.random_value_prob must be in [0, 1], got -0.1"),
        ("stick_prob", 2.0, "task.cameras.noise.stick_prob must be in [0, 1], got 2.0"),
        ("stick_max_length", 0, "task.cameras.noise.stick_max_length must be >= 1, got 0"),
        ("stick_max_width", 0, "task.cameras.noise.stick_max_width must be >= 1, got 0"),
        ("correlated_cell", 0, "task.cameras.noise.correlated_cell must be >= 1, got 0"),
        ("correlated_std", -0.01, "task.cameras.noise.correlated_std must be >= 0, got -0.01"),
        ("normal_noise_scale", -1.0, "task.cameras.noise.normal_noise_scale must be >= 0, got -1.0"),
    ],
)
def test_settings_validation(field, value, message):
    with pytest.raises(ValueError) as error:
        from_dict(DepthNoiseSettings, {**dataclasses.asdict(ALL), field: value}, "task.cameras.noise")
    assert str(error.value) == message
