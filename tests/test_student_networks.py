"""The DAgger students (CPU, tiny sizes): parameter counts against closed forms, the ResNet's torchvision
layout, the cross-only attention mask, sequence vs. one-step equivalence, and the input checks."""

import itertools

import pytest
import torch

from dexgrasp_cli.config import from_dict
from dexgrasp_cli.distill.student_networks import DepthStudent, ResNetEncoder, StereoRGBStudent, build_student, load_backbone_weights
from dexgrasp_cli.distill.student_sizes import STUDENT_IMAGES, STUDENT_KINDS, DepthStudentSizes, StereoStudentSizes

PROPRIO = 7
ACTIONS = 5
IMAGE = (48, 64)
TINY_STEREO = StereoStudentSizes(
    widths=(8, 16), blocks=(1, 1), token_count=8, token_grid=(2, 4), embed_dim=16, heads=2,
    lstm_units=32, mlp=(32, 32, 16), aux_mlp=(16, 8), initial_log_std=-0.5,
)  # fmt: skip
TINY_DEPTH = DepthStudentSizes(depth_filters=(4, 8), depth_mlp=(16,), proprio_mlp=(16, 8), lstm_units=32,
                               aux_mlp=(16, 8), initial_log_std=-0.5)  # fmt: skip
TINY = {"stereo-rgb": TINY_STEREO, "depth": TINY_DEPTH}


def parameter_count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


# Closed forms of the layers' parameter counts (BatchNorm running statistics are buffers, not parameters).
def linear(inputs: int, outputs: int) -> int:
    return inputs * outputs + outputs


def mlp(*sizes: int) -> int:
    return sum(linear(a, b) for a, b in itertools.pairwise(sizes))


def lstm(inputs: int, units: int) -> int:
    return 4 * (inputs * units + units * units + 2 * units)  # four gates; torch keeps two bias vectors


def conv(inputs: int, outputs: int, kernel: int, bias: bool) -> int:
    return inputs * outputs * kernel * kernel + (outputs if bias else 0)


def norm(channels: int) -> int:  # BatchNorm2d or LayerNorm: a weight and a bias per channel
    return 2 * channels


def resnet(widths: tuple[int, ...], blocks: tuple[int, ...]) -> int:
    total = conv(3, widths[0], 7, False) + norm(widths[0])
    channels = widths[0]
    for stage, (width, count) in enumerate(zip(widths, blocks, strict=True)):
        for block in range(count):
            inputs = channels if block == 0 else width
            total += conv(inputs, width, 3, False) + conv(width, width, 3, False) + 2 * norm(width)
            if block == 0 and (stage > 0 or inputs != width):  # a strided or widening shortcut
                total += conv(inputs, width, 1, False) + norm(width)
        channels = width
    return total


def stereo_parameters(s: StereoStudentSizes) -> int:
    features = PROPRIO + s.stereo_embedding
    token_dim = s.token_grid[0] * s.token_grid[1]
    total = resnet(s.widths, s.blocks) + conv(s.widths[-1], s.token_count, 1, True)
    if s.fusion == "transformer":
        d = s.embed_dim
        # one bias-free block: q, k, v and output projections, two feed-forward layers (4d), two weight-only norms
        block = 3 * d * d + d * d + 2 * (4 * d * d) + 2 * d
        total += linear(token_dim, d) + 2 * s.token_count * d + d  # projection, positions, CLS token
        total += s.transformer_layers * block + norm(d) + linear(d, d) + mlp(d, d, s.stereo_embedding)
    else:
        total += linear(2 * s.token_count * token_dim, s.stereo_embedding)
    total += lstm(features, s.lstm_units) + norm(s.lstm_units)
    total += mlp(s.lstm_units + features, *s.mlp) + linear(s.mlp[-1], ACTIONS)
    total += mlp(s.mlp[-1] + features, *s.aux_mlp) + linear(s.aux_mlp[-1], 3)
    return total + ACTIONS  # log_std


def depth_parameters(s: DepthStudentSizes, image: tuple[int, int]) -> int:
    (height, width), channels, total = image, 1, 0
    for filters in s.depth_filters:
        total += conv(channels, filters, 3, True)
        channels, height, width = filters, height // 2, width // 2
    total += mlp(channels * height * width, *s.depth_mlp) + mlp(PROPRIO, *s.proprio_mlp)
    total += lstm(s.depth_mlp[-1] + s.proprio_mlp[-1], s.lstm_units) + norm(s.lstm_units)
    total += linear(s.lstm_units, ACTIONS) + mlp(s.lstm_units, *s.aux_mlp) + linear(s.aux_mlp[-1], 3)
    return total + ACTIONS


@pytest.mark.parametrize("fusion", ["transformer", "concat"])
@pytest.mark.parametrize("sizes, image", [(TINY_STEREO, IMAGE), (StereoStudentSizes(), (240, 320))])
def test_stereo_parameter_count(sizes, image, fusion):
    sizes = StereoStudentSizes(**{**sizes.__dict__, "fusion": fusion})
    assert parameter_count(StereoRGBStudent(sizes, image, PROPRIO, ACTIONS)) == stereo_parameters(sizes)


@pytest.mark.parametrize("sizes, image", [(TINY_DEPTH, IMAGE), (DepthStudentSizes(), (120, 160))])
def test_depth_parameter_count(sizes, image):
    assert parameter_count(DepthStudent(sizes, image, PROPRIO, ACTIONS)) == depth_parameters(sizes, image)


def torchvision_resnet18_keys() -> set[str]:
    """resnet18's state-dict keys without fc, from its architecture: a stem, 4 stages of 2 basic blocks,
    a conv + BatchNorm shortcut on the first block of stages 2-4."""
    batch_norm = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight", *(f"bn1.{name}" for name in batch_norm)}
    for stage, block in itertools.product(range(1, 5), range(2)):
        prefix = f"layer{stage}.{block}."
        keys |= {prefix + "conv1.weight", prefix + "conv2.weight"}
        keys |= {f"{prefix}{bn}.{name}" for bn in ("bn1", "bn2") for name in batch_norm}
        if stage > 1 and block == 0:
            keys |= {prefix + "downsample.0.weight", *(f"{prefix}downsample.1.{name}" for name in batch_norm)}
    return keys


def test_resnet_encoder_is_torchvision_resnet18_without_fc():
    encoder = ResNetEncoder()
    assert parameter_count(encoder) == 11_689_512 - (512 * 1000 + 1000)  # torchvision's published count, less fc
    state = encoder.state_dict()
    assert set(state) == torchvision_resnet18_keys() and len(state) == 120
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer4.1.conv2.weight"].shape == (512, 512, 3, 3)
    assert encoder(torch.zeros(1, 3, 224, 224)).shape == (1, 512, 7, 7)  # the /32 feature map


def one_line_error(call) -> str:
    with pytest.raises(ValueError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message
    return message


def test_backbone_weights_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    source = ResNetEncoder((8, 16), (1, 1))
    with torch.no_grad():
        for value in source.state_dict().values():
            value.copy_(torch.randint(1, 9, value.shape) if value.dtype == torch.long else torch.rand(value.shape))
    path = tmp_path / "resnet.pt"
    torch.save({**source.state_dict(), "fc.weight": torch.zeros(10, 16), "fc.bias": torch.zeros(10)}, path)
    target = ResNetEncoder((8, 16), (1, 1))
    load_backbone_weights(target, path)
    loaded = target.state_dict()
    assert all(torch.equal(value, loaded[key]) for key, value in source.state_dict().items())

    torch.save(ResNetEncoder((8, 32), (1, 1)).state_dict(), path)
    assert "'layer2.0.conv1.weight'" in one_line_error(lambda: load_backbone_weights(target, path))
    incomplete = source.state_dict()
    del incomplete["layer1.0.bn2.running_var"]
    torch.save(incomplete, path)
    assert "'layer1.0.bn2.running_var'" in one_line_error(lambda: load_backbone_weights(target, path))
    torch.save({**source.state_dict(), "head.weight": torch.zeros(1)}, path)
    assert "'head.weight'" in one_line_error(lambda: load_backbone_weights(target, path))
    path.write_bytes(b"not a torch file")
    assert "cannot read" in one_line_error(lambda: load_backbone_weights(target, path))


def single_layer_fusion():
    sizes = StereoStudentSizes(**{**TINY_STEREO.__dict__, "transformer_layers": 1})
    return StereoRGBStudent(sizes, IMAGE, PROPRIO, ACTIONS).eval().fusion


def test_cross_only_mask_entries():
    n = TINY_STEREO.token_count
    mask = single_layer_fusion().attention_mask
    side = ["cls"] + ["left"] * n + ["right"] * n
    allowed = torch.tensor([[q == "cls" or k == "cls" or {q, k} == {"left", "right"} for k in side] for q in side])
    assert mask.dtype == torch.bool and torch.equal(mask, ~allowed)
    assert not mask[0].any() and not mask[:, 0].any()  # CLS reads all, all read CLS
    assert mask[1, 1] and mask[1, 2] and not mask[1, n + 1]  # a left token reads no left token, any right one
    assert mask[n + 1, n + 2] and not mask[n + 1, 3]


def test_cross_only_mask_in_attention():
    """In one block (attention then a per-token MLP) a left token's output depends on the right tokens' inputs
    and on its own, never on another left token's."""
    torch.manual_seed(0)
    fusion, n = single_layer_fusion(), TINY_STEREO.token_count
    tokens = torch.randn(1, 1 + 2 * n, TINY_STEREO.embed_dim)
    left, other_left, right = 1, 2, n + 1

    def changed(position: int, perturbed: int, mask: torch.Tensor | None) -> bool:
        moved = tokens.clone()
        moved[0, perturbed] += torch.randn(tokens.shape[-1])  # not a constant: the pre-LayerNorm would remove it
        with torch.no_grad():
            before, after = fusion.blocks(tokens, mask=mask)[0, position], fusion.blocks(moved, mask=mask)[0, position]
        return not torch.allclose(before, after, atol=1e-6)

    mask = fusion.attention_mask
    assert not changed(left, other_left, mask)
    assert changed(left, right, mask) and changed(right, left, mask) and changed(0, other_left, mask)
    assert not changed(right, right + 1, mask)
    assert changed(left, other_left, None)  # the check itself can see a dependence


def tiny_student(kind: str):
    torch.manual_seed(0)
    return build_student(kind, TINY[kind], IMAGE, PROPRIO, ACTIONS)


def observations(kind: str, *batch: int) -> dict[str, torch.Tensor]:
    if kind == "stereo-rgb":
        image = torch.randint(0, 256, (*batch, 2, 3, *IMAGE), dtype=torch.uint8)
    else:
        image = (0.3 + torch.rand(*batch, 1, *IMAGE)).half()
    return {STUDENT_IMAGES[kind]: image, "proprio": torch.randn(*batch, PROPRIO)}


@pytest.mark.parametrize("kind", STUDENT_KINDS)
def test_sequence_equals_steps_with_reset(kind):
    student = tiny_student(kind).eval()
    steps, worlds = 4, 3
    obs = observations(kind, steps, worlds)
    h, c = (torch.randn(1, worlds, TINY[kind].lstm_units) for _ in range(2))
    resets = torch.zeros(steps, worlds, dtype=torch.bool)
    resets[2, 1] = resets[0, 0] = True
    with torch.no_grad():
        sequence = student.forward_sequence(obs, (h, c), resets)
        state, mus, positions = (h, c), [], []
        for t in range(steps):
            keep = (~resets[t]).float().view(1, -1, 1)
            out = student({key: value[t] for key, value in obs.items()}, (state[0] * keep, state[1] * keep))
            state = out.state
            mus.append(out.mu)
            positions.append(out.object_pos)
    torch.testing.assert_close(sequence.mu, torch.stack(mus), atol=1e-5, rtol=0)
    torch.testing.assert_close(sequence.object_pos, torch.stack(positions), atol=1e-5, rtol=0)
    for got, expected in zip(sequence.state, state, strict=True):
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("kind", STUDENT_KINDS)
def test_outputs_and_gradients(kind):
    student = tiny_student(kind)
    assert student.obs_keys == (STUDENT_IMAGES[kind], "proprio")
    with torch.no_grad():
        student.log_std.copy_(torch.linspace(-1.0, 0.5, ACTIONS))
    worlds = 2
    out = student(observations(kind, worlds), student.initial_state(worlds, "cpu"))
    assert out.mu.shape == out.sigma.shape == (worlds, ACTIONS) and out.object_pos.shape == (worlds, 3)
    assert all(part.shape == (1, worlds, TINY[kind].lstm_units) for part in out.state)
    torch.testing.assert_close(out.sigma, torch.exp(torch.linspace(-1.0, 0.5, ACTIONS)).expand(worlds, ACTIONS))
    (out.mu.sum() + out.sigma.sum() + out.object_pos.sum()).backward()
    unreached = [name for name, parameter in student.named_parameters() if parameter.grad is None]
    assert not unreached


def test_image_normalization():
    student = tiny_student("stereo-rgb")
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    for level, value in ((0, 0.0), (255, 1.0)):
        images = torch.full((1, 2, 3, 4, 5), level, dtype=torch.uint8)
        expected = ((value - mean) / std).view(3, 1, 1).expand(1, 2, 3, 4, 5)
        torch.testing.assert_close(student.normalize_images(images), expected)


def test_input_checks():
    assert "too small" in one_line_error(lambda: DepthStudent(DepthStudentSizes(), (4, 16), PROPRIO, ACTIONS))
    DepthStudent(DepthStudentSizes(), (8, 16), PROPRIO, ACTIONS)  # three 2x2 pools: 8 -> 4 -> 2 -> 1 still fits
    student = tiny_student("depth")
    wrong = {"depth": torch.zeros(1, 1, 24, 32), "proprio": torch.zeros(1, PROPRIO)}
    assert "(24, 32)" in one_line_error(lambda: student(wrong, student.initial_state(1)))
    assert "unknown student" in one_line_error(lambda: build_student("mono", TINY_DEPTH, IMAGE, PROPRIO, ACTIONS))
    with pytest.raises(TypeError, match="DepthStudentSizes"):
        build_student("depth", TINY_STEREO, IMAGE, PROPRIO, ACTIONS)


@pytest.mark.parametrize("sizes_type, changes, field", [
    (StereoStudentSizes, {"fusion": "sum"}, "distill.stereo.fusion"),
    (StereoStudentSizes, {"embed_dim": 15, "heads": 2}, "distill.stereo.embed_dim"),
    (StereoStudentSizes, {"blocks": (2, 2)}, "distill.stereo.blocks"),
    (StereoStudentSizes, {"token_grid": (8,)}, "distill.stereo.token_grid"),
    (StereoStudentSizes, {"token_count": 0}, "distill.stereo.token_count"),
    (StereoStudentSizes, {"dropout": 1.0}, "distill.stereo.dropout"),
    (DepthStudentSizes, {"lstm_units": 0}, "distill.depth.lstm_units"),
    (DepthStudentSizes, {"depth_mlp": ()}, "distill.depth.depth_mlp"),
])  # fmt: skip
def test_sizes_validation(sizes_type, changes, field):
    """Through from_dict, as distill.* and a student checkpoint's sizes are read."""
    where = field.rpartition(".")[0]
    assert field in one_line_error(lambda: from_dict(sizes_type, changes, where))
