"""Tests for the counter-based per-world RNG."""

import random

import numpy as np
import pytest
import torch

from dexgrasp_tasks.dextrah.rng import Stream, _chain, _i64, _mix, _seed_key, normal, uniform

WORLDS, N = 1000, 100  # 1e5 samples
IDS = torch.arange(WORLDS, dtype=torch.int64)


def _corr(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten().double(), b.flatten().double()
    return float(torch.corrcoef(torch.stack([a, b]))[0, 1])


def test_mix_matches_splitmix64_reference():
    mask = (1 << 64) - 1

    def ref(z: int) -> int:
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & mask
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB & mask
        return z ^ (z >> 31)

    # First output of splitmix64 seeded with 0 (published test vector).
    assert ref(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    rnd = random.Random(0)
    xs = [rnd.getrandbits(64) for _ in range(4096)]
    got = _mix(torch.tensor([_i64(x) for x in xs], dtype=torch.int64))
    assert got.tolist() == [_i64(ref(x)) for x in xs]


def test_numpy_chain_on_a_cpu_matches_torch_chain():
    """The CPU draws hash with numpy; torch's operators, which CUDA uses, must give the same bits,
    over the whole int64 range of ids and counters."""
    gen = torch.Generator().manual_seed(1)
    ids, ctr = (torch.randint(-(2**63), 2**63 - 1, (500,), generator=gen) for _ in range(2))
    for seed, stream in ((0, 1), (2**63 - 1, 5), (-3, 3 * 2**32)):
        key = _seed_key(seed)
        numpy_bits = _chain(ids.numpy(), ctr.numpy(), key, stream, np.arange(17, dtype=np.int64))
        torch_bits = _chain(ids, ctr, key, stream, torch.arange(17))
        assert torch.equal(torch.from_numpy(numpy_bits), torch_bits)


def test_uniform_range_mean_variance():
    u = uniform(7, IDS, 0, Stream.OBJECT_SPAWN, N)
    assert u.shape == (WORLDS, N) and u.dtype == torch.float32
    assert u.min() >= 0.0 and u.max() < 1.0
    # Standard error of the mean is ~0.0009, of the variance ~0.0002.
    assert abs(u.mean().item() - 0.5) < 0.005
    assert abs(u.var().item() - 1 / 12) < 0.002


def test_normal_mean_std():
    z = normal(7, IDS, 0, Stream.DISTURBANCE, N)
    assert z.shape == (WORLDS, N) and z.dtype == torch.float32
    assert torch.isfinite(z).all()
    assert abs(z.mean().item()) < 0.02
    assert abs(z.std().item() - 1.0) < 0.02


def test_deterministic():
    counter = torch.randint(0, 1000, (WORLDS,), generator=torch.Generator().manual_seed(0))
    for fn in (uniform, normal):
        a = fn(3, IDS, counter, Stream.PHYSICS_PARAMS, 8)
        b = fn(3, IDS.clone(), counter.clone(), Stream.PHYSICS_PARAMS, 8)
        assert torch.equal(a, b)


def test_int_counter_equals_tensor_counter():
    a = uniform(3, IDS, 5, Stream.SCRIPTED, 4)
    b = uniform(3, IDS, torch.full((WORLDS,), 5), Stream.SCRIPTED, 4)
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    "change",
    [
        dict(seed=1),
        dict(world_ids=IDS + WORLDS),
        dict(counter=1),
        dict(stream=Stream.OBS_NOISE_STEP),
    ],
    ids=["seed", "world", "counter", "stream"],
)
def test_any_input_changes_numbers(change):
    base = dict(seed=0, world_ids=IDS, counter=0, stream=Stream.OBS_NOISE_WIDTH, n=N)
    a = uniform(**base)
    b = uniform(**{**base, **change})
    # 24-bit values collide by chance with probability ~6e-8 per pair.
    assert (a == b).float().mean().item() < 1e-3
    assert abs(_corr(a, b)) < 0.02


def test_elements_differ():
    u = uniform(0, IDS, 0, Stream.SCRIPTED, N)
    assert (u[:, 1:] == u[:, :-1]).float().mean().item() < 1e-3
    assert abs(_corr(u[:, 1:], u[:, :-1])) < 0.02


def test_normal_streams_distinct_from_uniform():
    u = uniform(0, IDS, 0, Stream.SCRIPTED, N)
    z = normal(0, IDS, 0, Stream.SCRIPTED, N)
    assert abs(_corr(u, z)) < 0.02


def test_subset_of_worlds_matches_full_batch():
    ids = torch.arange(1024, dtype=torch.int64)
    counter = torch.randint(0, 10_000, (1024,), generator=torch.Generator().manual_seed(1))
    s = Stream.RESET_JOINT_NOISE
    full_u, full_z = uniform(11, ids, counter, s, 23), normal(11, ids, counter, s, 23)
    for a, b in [(0, 1), (0, 512), (512, 1024), (100, 357), (1023, 1024)]:
        assert torch.equal(uniform(11, ids[a:b], counter[a:b], s, 23), full_u[a:b])
        assert torch.equal(normal(11, ids[a:b], counter[a:b], s, 23), full_z[a:b])


def test_adjacent_worlds_and_counters_uncorrelated():
    u = uniform(5, torch.arange(WORLDS + 1), 0, Stream.SCRIPTED, N)
    assert abs(_corr(u[1:], u[:-1])) < 0.02  # std of the estimate is ~0.003
    c = torch.stack([uniform(5, IDS, k, Stream.SCRIPTED, 1)[:, 0] for k in range(N + 1)], dim=1)
    assert abs(_corr(c[:, 1:], c[:, :-1])) < 0.02


def test_rejects_out_of_range_stream():
    with pytest.raises(ValueError):
        uniform(0, IDS, 0, -1, 1)
    with pytest.raises(ValueError):
        normal(0, IDS, 0, 2**32, 1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_bit_identical():
    counter = torch.randint(0, 10_000, (WORLDS,), generator=torch.Generator().manual_seed(0))
    cpu = uniform(9, IDS, counter, Stream.OBJECT_SPAWN, N)
    gpu = uniform(9, IDS.cuda(), counter.cuda(), Stream.OBJECT_SPAWN, N)
    assert gpu.is_cuda and torch.equal(cpu, gpu.cpu())
