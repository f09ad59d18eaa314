"""Tests for the ADR schedule, controller and noise helpers, against closed forms."""

import pytest
import torch

from dexgrasp_tasks.dextrah.adr import ADR, noise_width_and_bias, step_noise
from dexgrasp_tasks.dextrah.settings import ADRRange, ADRSettings

RANGES = {
    "static_friction": ADRRange((1.0, 1.0), (0.5, 1.2)),
    "object_mass_scale": ADRRange((1.0, 1.0), (0.5, 3.0)),
    "disturbance_accel": ADRRange((0.0, 0.0), (0.0, 10.0)),
}
SETTINGS = ADRSettings(ranges=RANGES)  # 50 levels, threshold 0.4, 3000 steps


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("k", [0, 1, 25, 50])
def test_interpolation_closed_form(k):
    adr = ADR(SETTINGS, level=k)
    assert adr.level == k and adr.fraction == k / 50
    for name, r in RANGES.items():
        expected = tuple(i + (f - i) * (k / 50) for i, f in zip(r.init, r.final))
        assert adr.range(name) == expected
        assert adr.ranges()[name] == expected


def test_endpoints():
    assert ADR(SETTINGS).range("static_friction") == (1.0, 1.0)
    assert ADR(SETTINGS, level=50).range("static_friction") == (0.5, 1.2)
    assert ADR(SETTINGS, level=25).range("disturbance_accel") == (0.0, 5.0)


def test_unknown_range_names_known_ones():
    with pytest.raises(KeyError, match="static_friction"):
        ADR(SETTINGS).range("nope")


def test_samples_cover_final_range():
    adr = ADR(SETTINGS, level=50)
    u = torch.rand(10_000, generator=_gen())
    for name, r in RANGES.items():
        low, high = r.final
        x = adr.sample(name, u)
        assert x.min() >= low and x.max() <= high
        assert x.min() - low < 0.01 * (high - low)
        assert high - x.max() < 0.01 * (high - low)


def test_no_rise_at_or_below_threshold():
    adr = ADR(SETTINGS)
    for success in (0.0, 0.2, 0.4):
        for _ in range(10):
            assert not adr.update(success, 10_000)
    assert adr.level == 0


def test_no_rise_before_min_steps():
    adr = ADR(SETTINGS)
    for _ in range(29):
        assert not adr.update(1.0, 100)
    assert adr.level == 0 and adr.steps_since_change == 2900
    assert not adr.update(1.0, 99)  # 2999 steps
    assert adr.update(1.0, 1)  # exactly 3000
    assert adr.level == 1 and adr.steps_since_change == 0


def test_rises_by_one_then_waits_again():
    adr = ADR(SETTINGS)
    assert adr.update(0.41, 5000)  # many steps still give a single level
    assert adr.level == 1
    assert not adr.update(1.0, 2999)
    assert adr.update(1.0, 1)
    assert adr.level == 2


def test_steps_accumulate_during_low_success():
    adr = ADR(SETTINGS)
    assert not adr.update(0.1, 3000)
    assert adr.update(0.9, 0)  # the 3000 steps already passed
    assert adr.level == 1


def test_saturates_at_num_levels():
    adr = ADR(SETTINGS)
    rises = sum(adr.update(1.0, 3000) for _ in range(60))
    assert rises == 50 and adr.level == 50 and adr.fraction == 1.0
    assert not adr.update(1.0, 10_000)
    assert adr.level == 50


def test_custom_settings():
    adr = ADR(ADRSettings(num_levels=2, success_threshold=0.8, min_steps_between_changes=10))
    assert not adr.update(0.8, 10)
    assert adr.update(0.81, 0)
    assert adr.fraction == 0.5


def test_set_level_validates_and_resets_counter():
    adr = ADR(SETTINGS)
    for bad in (-1, 51):
        with pytest.raises(ValueError, match=r"\[0, 50\]"):
            adr.set_level(bad)
    with pytest.raises(ValueError):
        ADR(SETTINGS, level=51)
    adr.set_level(50)
    assert adr.level == 50
    adr.update(0.0, 2500)
    adr.set_level(0)
    assert adr.level == 0 and adr.steps_since_change == 0
    assert not adr.update(1.0, 2999)  # the 2500 earlier steps were forgotten


def test_state_dict_round_trip():
    adr = ADR(SETTINGS)
    adr.update(1.0, 3000)
    adr.update(1.0, 3000)
    adr.update(0.0, 1700)
    state = adr.state_dict()
    assert state == {"level": 2, "steps_since_change": 1700}

    restored = ADR(SETTINGS)
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    assert restored.range("object_mass_scale") == adr.range("object_mass_scale")
    for a in (adr, restored):  # same behaviour afterwards
        assert not a.update(1.0, 1299)
        assert a.update(1.0, 1)
        assert a.level == 3


def test_noise_width_and_bias():
    n, value = 100_000, 0.3
    g = _gen(1)
    u_width, u_bias = torch.rand(n, generator=g), torch.rand(n, generator=g)
    width, bias = noise_width_and_bias(value, u_width, u_bias)
    assert width.min() >= 0.0 and width.max() <= value
    assert (bias.abs() <= width / 2).all()
    # E[width] = value/2, E[bias] = 0, E[bias^2] = E[width^2]/12 = value^2/36.
    assert abs(width.mean().item() - value / 2) < 0.005
    assert abs(bias.mean().item()) < 0.002
    assert abs((bias**2).mean().item() - value**2 / 36) < 0.0005


def test_noise_width_accepts_tensor_value():
    value = torch.tensor([0.0, 1.0, 2.0])
    width, bias = noise_width_and_bias(value, torch.full((3,), 0.5), torch.ones(3))
    assert torch.allclose(width, torch.tensor([0.0, 0.5, 1.0]))
    assert torch.allclose(bias, torch.tensor([0.0, 0.25, 0.5]))


def test_step_noise():
    n = 100_000
    g = _gen(2)
    width = torch.rand(n, generator=g)
    noise = step_noise(width, torch.rand(n, generator=g))
    assert (noise.abs() <= width).all()
    # E[noise] = 0; E[noise^2] = E[width^2]/3 = 1/9 for width ~ U(0,1).
    assert abs(noise.mean().item()) < 0.005
    assert abs((noise**2).mean().item() - 1 / 9) < 0.003
    exact = step_noise(torch.ones(2), torch.tensor([0.0, 0.5]))
    assert torch.equal(exact, torch.tensor([-1.0, 0.0]))
