"""Depth noise stages against closed forms and an independent loop rasterizer (TASK_FACTS section 6)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from tasks.dextrah.depth_noise import DepthNoise, DepthNoiseSettings

NEAR, FAR = 0.5, 1.3
N, H, W = 8, 120, 160
OFF = DepthNoiseSettings(
    enabled=True,
    dropout_prob=0.0,
    random_value_prob=0.0,
    stick_prob=0.0,
    stick_max_length=18,
    stick_max_width=3,
    correlated_std=0.0,
    correlated_cell=8,
)
ALL = dataclasses.replace(OFF, dropout_prob=0.003, random_value_prob=0.003, stick_prob=0.00025, correlated_std=0.01)


def _noisy(settings, clean, seed=0, counter=0, world_ids=None, depth_range=(NEAR, FAR)):
    """The noisy copy of `clean` (N, 1, H, W) with the given settings."""
    n, _, h, w = clean.shape
    ids = torch.arange(n) if world_ids is None else world_ids
    depth = clean.clone()
    DepthNoise(settings, n, h, w, depth_range, "cpu").apply(depth, seed, ids, torch.full((n,), counter))
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
    DepthNoise(ALL, N, H, W, (NEAR, FAR), "cpu").apply(full, 11, torch.arange(N), counter)
    part = clean[2:5].clone()
    DepthNoise(ALL, 3, H, W, (NEAR, FAR), "cpu").apply(part, 11, torch.arange(2, 5), counter[2:5])
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
    ],
)
def test_settings_validation(field, value, message):
    with pytest.raises(ValueError) as error:
        dataclasses.replace(ALL, **{field: value})
    assert str(error.value) == message
