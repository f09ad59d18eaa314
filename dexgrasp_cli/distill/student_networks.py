"""The two DAgger students: stereo RGB (DextrAH-RGB's) and depth (DextrAH-G's shape), plain torch modules.

Both read one image observation and the proprioception, carry an LSTM memory and output a Gaussian
action (mean, state-independent sigma) plus an auxiliary guess of the object position (metres, robot
frame). ``student(obs, state)`` takes one step per world: obs tensors are (B, ...), the (h, c) state
(layers, B, units). ``forward_sequence`` takes (T, B, ...) tensors for backpropagation through time;
the one-step call is its T=1 case. Images are encoded as one batch of T*B, then the LSTM steps.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from dexgrasp_cli.distill.student_sizes import STUDENT_KINDS, DepthStudentSizes, StereoStudentSizes, is_positive_int
from dexgrasp_cli.learner.networks import RunningNormalizer, _elu_mlp, _lstm_with_resets

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OBJECT_POS_SIZE = 3


class StudentOutput(NamedTuple):
    mu: torch.Tensor
    """Mean action, (B, actions) or (T, B, actions)."""
    sigma: torch.Tensor
    """exp(log_std), broadcast to mu's shape."""
    object_pos: torch.Tensor
    """The auxiliary head's object position, metres in the robot frame, (..., 3)."""
    state: tuple[torch.Tensor, torch.Tensor]
    """(h, c) after the last step, (layers, B, units)."""


class BasicBlock(nn.Module):
    """ResNet's two-conv residual block, attributes named as torchvision's so its weights load."""

    def __init__(self, in_channels: int, channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or in_channels != channels:  # the shortcut must match the block's output shape
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(channels))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class ResNetEncoder(nn.Module):
    """ResNet-18's convolutional trunk (no pooling head, no fc): (N, 3, H, W) -> (N, widths[-1], H/32, W/32)
    with four stages (each stage after the first halves the map).

    Its state dict has torchvision resnet18's keys minus ``fc.*`` at the default sizes, so a user's
    torchvision weights load (load_backbone_weights); otherwise it trains from scratch.
    """

    def __init__(self, widths: tuple[int, ...] = (64, 128, 256, 512), blocks: tuple[int, ...] = (2, 2, 2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.stage_names = tuple(f"layer{index + 1}" for index in range(len(widths)))
        in_channels = widths[0]
        for index, (name, channels, count) in enumerate(zip(self.stage_names, widths, blocks, strict=True)):
            stride = 1 if index == 0 else 2  # the stem already divided the image by 4
            stage = [BasicBlock(in_channels, channels, stride)]
            stage += [BasicBlock(channels, channels, 1) for _ in range(count - 1)]
            self.add_module(name, nn.Sequential(*stage))
            in_channels = channels
        self.out_channels = in_channels
        for module in self.modules():
            if isinstance(module, nn.Conv2d):  # He init for ReLU nets, as ResNet trains from scratch
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(images))))
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return x


def load_backbone_weights(encoder: ResNetEncoder, path: Path | str) -> None:
    """Load a torchvision-style resnet18 state dict file into ``encoder``, ignoring ``fc.*``; every other key
    must match in name and shape, else a one-line ValueError names the first that does not."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # missing file, not a torch file, or pickled objects weights_only refuses
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ValueError(f"cannot read backbone weights {path}: {reason}") from error
    if not isinstance(state, dict):  # a bad user file, refused like the others: ValueError, not TypeError
        raise ValueError(f"backbone weights {path} hold a {type(state).__name__}, not a state dict")  # noqa: TRY004
    state = {key: value for key, value in state.items() if not str(key).startswith("fc.")}
    expected = encoder.state_dict()
    missing = [key for key in expected if key not in state]
    if missing:
        raise ValueError(f"backbone weights {path} lack '{missing[0]}' ({len(missing)} keys missing)")
    unexpected = [key for key in state if key not in expected]
    if unexpected:
        raise ValueError(f"backbone weights {path} have unexpected key '{unexpected[0]}' ({len(unexpected)} in all)")
    for key, value in state.items():
        shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        if shape != tuple(expected[key].shape):
            needed = tuple(expected[key].shape)
            raise ValueError(f"backbone weights {path}: '{key}' is {shape}, this encoder needs {needed}")
    encoder.load_state_dict(state)


def cross_only_mask(token_count: int) -> torch.Tensor:
    """Boolean attention mask over [CLS, left tokens, right tokens], True where a query (row) may not read a
    key (column): the CLS token reads everything, every token reads CLS, and each image's tokens read only
    the other image's, so what the blocks add to a token is stereo correspondence.

    DextrAH-RGB's release passes a float 0/1 mask, which attention adds to its logits: a +1 bias on these
    pairs that blocks nothing. We block on purpose.
    """
    size = 1 + 2 * token_count
    blocked = torch.ones(size, size, dtype=torch.bool)
    blocked[0, :] = False
    blocked[:, 0] = False
    left, right = slice(1, 1 + token_count), slice(1 + token_count, size)
    blocked[left, right] = False
    blocked[right, left] = False
    return blocked


class CrossAttentionFusion(nn.Module):
    """Both images' tokens (B, 2, N, D) -> (B, stereo_embedding): projected tokens with learned positions and
    a CLS token, cross-only transformer blocks, then the CLS output through LayerNorm, Linear and a GELU MLP."""

    def __init__(self, sizes: StereoStudentSizes, token_dim: int):
        super().__init__()
        width = sizes.embed_dim
        self.project = nn.Linear(token_dim, width)
        self.dropout = nn.Dropout(sizes.dropout)
        self.position = nn.Parameter(torch.randn(2 * sizes.token_count, width) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(width) * 0.02)
        block = nn.TransformerEncoderLayer(width, sizes.heads, 4 * width, sizes.dropout, activation="gelu",
                                           batch_first=True, norm_first=True, bias=False)  # fmt: skip
        # nested tensors only speed up padded batches, and torch refuses them with norm_first anyway
        self.blocks = nn.TransformerEncoder(block, sizes.transformer_layers, enable_nested_tensor=False)
        self.register_buffer("attention_mask", cross_only_mask(sizes.token_count), persistent=False)
        self.out_norm = nn.LayerNorm(width)
        self.out_project = nn.Linear(width, width)
        self.head = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, sizes.stereo_embedding))

    def sequence(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, 2, N, D) image tokens -> (B, 1 + 2N, embed_dim): the blocks' input, CLS first."""
        projected = self.dropout(self.project(tokens.flatten(1, 2))) + self.position
        return torch.cat([self.cls_token.expand(tokens.shape[0], 1, -1), projected], dim=1)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        cls = self.blocks(self.sequence(tokens), mask=self.attention_mask)[:, 0]
        return self.head(self.out_project(self.out_norm(cls)))


class ConcatFusion(nn.Module):
    """Both images' tokens (B, 2, N, D), flattened and concatenated -> one linear layer -> (B, stereo_embedding)."""

    def __init__(self, sizes: StereoStudentSizes, token_dim: int):
        super().__init__()
        self.project = nn.Linear(2 * sizes.token_count * token_dim, sizes.stereo_embedding)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.project(tokens.flatten(1))


def _aux_head(input_size: int, units: tuple[int, ...]) -> nn.Sequential:
    """ELU MLP -> linear object position: metres are unbounded, so no output activation."""
    return nn.Sequential(_elu_mlp(input_size, units), nn.Linear(units[-1], OBJECT_POS_SIZE))


class _RecurrentStudent(nn.Module):
    """What both students share: per-step features -> LSTM -> LayerNorm -> the heads, and the step layouts."""

    obs_keys: tuple[str, ...]
    """The observations read, the image first."""

    def __init__(self, image_shape: tuple[int, int], features: int, lstm_units: int, actions: int,
                 initial_log_std: float):  # fmt: skip
        super().__init__()
        if len(image_shape) != 2 or not all(map(is_positive_int, image_shape)):
            raise ValueError(f"image_shape must be (height, width) positive integers, got {image_shape!r}")
        self.image_shape = tuple(image_shape)
        self.lstm = nn.LSTM(features, lstm_units, batch_first=True)
        self.memory_norm = nn.LayerNorm(lstm_units)
        self.log_std = nn.Parameter(torch.full((actions,), float(initial_log_std)))

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(N, F) LSTM inputs of N observations, one per row."""
        raise NotImplementedError

    def heads(self, memory: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean action, object position) from the normalized LSTM output and the LSTM input, row by row."""
        raise NotImplementedError

    def initial_state(self, batch: int, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.lstm.num_layers, batch, self.lstm.hidden_size)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def forward(self, obs: dict[str, torch.Tensor], state: tuple[torch.Tensor, torch.Tensor]) -> StudentOutput:
        """One step of B worlds: obs tensors (B, ...)."""
        out = self.forward_sequence({key: obs[key].unsqueeze(0) for key in self.obs_keys}, state)
        return StudentOutput(out.mu[0], out.sigma[0], out.object_pos[0], out.state)

    def forward_sequence(self, obs_seq: dict[str, torch.Tensor], state: tuple[torch.Tensor, torch.Tensor],
                         resets: torch.Tensor | None = None) -> StudentOutput:  # fmt: skip
        """T steps of B worlds: obs tensors (T, B, ...); a world's state is zeroed before each step where
        ``resets`` (T, B) is True, i.e. where an episode began."""
        image_key = self.obs_keys[0]
        image = obs_seq[image_key]
        if tuple(image.shape[-2:]) != self.image_shape:
            raise ValueError(f"{image_key} images are {tuple(image.shape[-2:])}, this student takes {self.image_shape}")
        steps, batch = image.shape[:2]
        features = self.encode({key: obs_seq[key].flatten(0, 1) for key in self.obs_keys})
        by_world = features.view(steps, batch, -1).transpose(0, 1)
        world_resets = None if resets is None else resets.bool().transpose(0, 1)
        memory, state = _lstm_with_resets(self.lstm, by_world, tuple(state), world_resets)
        memory = self.memory_norm(memory.transpose(0, 1).reshape(steps * batch, -1))
        mu, object_pos = self.heads(memory, features)
        mu = mu.view(steps, batch, -1)
        return StudentOutput(mu, self.log_std.exp().expand_as(mu), object_pos.view(steps, batch, -1), state)


class StereoRGBStudent(_RecurrentStudent):
    """DextrAH-RGB's student: a shared ResNet per camera -> tokens -> stereo fusion; with the normalized
    proprioception -> LSTM -> LayerNorm; the actor MLP reads that and the LSTM input, the aux head the actor's
    last layer and the LSTM input."""

    sizes_type = StereoStudentSizes
    obs_keys = ("rgb", "proprio")

    def __init__(self, sizes: StereoStudentSizes, image_shape: tuple[int, int], proprio_size: int, actions: int):
        features = proprio_size + sizes.stereo_embedding
        super().__init__(image_shape, features, sizes.lstm_units, actions, sizes.initial_log_std)
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)
        self.encoder = ResNetEncoder(sizes.widths, sizes.blocks)
        self.token_head = nn.Sequential(nn.Conv2d(self.encoder.out_channels, sizes.token_count, 1), nn.ReLU(),
                                        nn.AdaptiveAvgPool2d(sizes.token_grid))  # fmt: skip
        token_dim = sizes.token_grid[0] * sizes.token_grid[1]
        fusion_type = CrossAttentionFusion if sizes.fusion == "transformer" else ConcatFusion
        self.fusion = fusion_type(sizes, token_dim)
        self.proprio_normalizer = RunningNormalizer(proprio_size)
        self.mlp = _elu_mlp(sizes.lstm_units + features, sizes.mlp)
        self.mu = nn.Linear(sizes.mlp[-1], actions)
        self.aux = _aux_head(sizes.mlp[-1] + features, sizes.aux_mlp)

    def normalize_images(self, rgb: torch.Tensor) -> torch.Tensor:
        """0-255 (uint8) RGB (..., 3, H, W) -> ImageNet-normalized float, the input torchvision weights expect."""
        return (rgb.float() / 255.0 - self.image_mean) / self.image_std

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        rgb = obs["rgb"]  # (N, 2, 3, H, W): left, right; the right image is used as it is, not flipped
        maps = self.token_head(self.encoder(self.normalize_images(rgb.flatten(0, 1))))  # both cameras in one batch
        tokens = maps.reshape(rgb.shape[0], 2, maps.shape[1], -1)
        return torch.cat([self.proprio_normalizer(obs["proprio"]), self.fusion(tokens)], dim=-1)

    def heads(self, memory: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        actor = self.mlp(torch.cat([memory, features], dim=-1))
        return self.mu(actor), self.aux(torch.cat([actor, features], dim=-1))


class DepthStudent(_RecurrentStudent):
    """DextrAH-G's student: a small depth CNN + ELU MLP and a proprioception MLP -> LSTM -> LayerNorm, which
    both the action mean and the aux head read."""

    sizes_type = DepthStudentSizes
    obs_keys = ("depth", "proprio")

    def __init__(self, sizes: DepthStudentSizes, image_shape: tuple[int, int], proprio_size: int, actions: int):
        features = sizes.depth_mlp[-1] + sizes.proprio_mlp[-1]
        super().__init__(image_shape, features, sizes.lstm_units, actions, sizes.initial_log_std)
        height, width = self.image_shape
        layers: list[nn.Module] = []
        channels = 1
        for filters in sizes.depth_filters:
            height, width = height // 2, width // 2
            if min(height, width) < 1:
                raise ValueError(
                    f"depth images of {image_shape[0]}x{image_shape[1]} are too small for the "
                    f"{len(sizes.depth_filters)} max-pooled convs of distill.depth.depth_filters"
                )
            layers += [nn.Conv2d(channels, filters, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels = filters
        self.depth_encoder = nn.Sequential(*layers, nn.Flatten(), _elu_mlp(channels * height * width, sizes.depth_mlp))
        self.proprio_normalizer = RunningNormalizer(proprio_size)
        self.proprio_encoder = _elu_mlp(proprio_size, sizes.proprio_mlp)
        self.mu = nn.Linear(sizes.lstm_units, actions)
        self.aux = _aux_head(sizes.lstm_units, sizes.aux_mlp)

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        depth = self.depth_encoder(obs["depth"].float())  # float16 metres in the buffer; bounded, so not normalized
        return torch.cat([depth, self.proprio_encoder(self.proprio_normalizer(obs["proprio"]))], dim=-1)

    def heads(self, memory: torch.Tensor, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mu(memory), self.aux(memory)


_STUDENT_TYPES = {"stereo-rgb": StereoRGBStudent, "depth": DepthStudent}


def build_student(kind: str, sizes: StereoStudentSizes | DepthStudentSizes, image_hw: tuple[int, int],
                  proprio_size: int, actions: int) -> StereoRGBStudent | DepthStudent:  # fmt: skip
    """The ``kind`` student (one of STUDENT_KINDS) for (H, W) images of its STUDENT_IMAGES observation."""
    if kind not in _STUDENT_TYPES:
        raise ValueError(f"unknown student {kind!r}; accepted: {', '.join(STUDENT_KINDS)}")
    student_type = _STUDENT_TYPES[kind]
    if not isinstance(sizes, student_type.sizes_type):
        raise TypeError(f"the {kind} student needs {student_type.sizes_type.__name__}, got {type(sizes).__name__}")
    return student_type(sizes, image_hw, proprio_size, actions)
