"""rl-games networks of the two PPO teachers and their asymmetric critic, normalizing their own inputs.

rl-games 1.6.5 calls a registered builder's ``load(params)`` with the yaml ``network`` mapping, then
``build(name, **config)`` with ``input_shape`` ({key: shape} for a Dict space), ``actions_num``,
``value_size`` and ``num_seqs`` (the worlds stepped at once, i.e. the LSTM batch during rollouts).
The network's ``forward`` gets ``obs``, ``rnn_states`` and, when training, ``seq_length`` and
``dones``: the minibatch then holds whole sequences, world-major (row = sequence * seq_length + step),
the states are those saved at each sequence start, and ``dones`` marks the steps before which an
episode began, so the state is zeroed there. Rollouts pass one step per world and no ``dones``.
"""

from __future__ import annotations

import functools
import itertools
import typing

import torch
from rl_games.algos_torch import model_builder
from torch import nn

from dexgrasp_cli.learner.network_sizes import CriticSizes, DepthTeacherSizes, StateTeacherSizes, parse_sizes

DEPTH_TEACHER = "dexgrasp_depth_teacher"
STATE_TEACHER = "dexgrasp_state_teacher"
CRITIC = "dexgrasp_critic"
OBS_CLIP = 5.0  # normalized inputs are clipped to +-5 standard deviations, as rl-games' own normalizer does


class RunningNormalizer(nn.Module):
    """Per-feature running mean/variance of every input seen in training mode; outputs clipped z-scores.

    It lives in the network (buffers, so checkpoints carry it) because rl-games' normalize_input crashes
    on Dict observations in 1.6.5. The statistics are exact over all inputs fed (parallel-variance merge
    in float64) and frozen in eval mode, which rl-games uses for rollouts.
    """

    def __init__(self, size: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] > 0:
            self._update(x.detach().reshape(-1, x.shape[-1]).double())
        scale = torch.rsqrt(self.var + self.eps).float()
        return ((x.float() - self.mean.float()) * scale).clamp(-OBS_CLIP, OBS_CLIP)

    @torch.no_grad()
    def _update(self, batch: torch.Tensor) -> None:
        n = batch.shape[0]
        total = self.count + n
        delta = batch.mean(dim=0) - self.mean
        squares = self.var * self.count + batch.var(dim=0, unbiased=False) * n + delta.square() * self.count * n / total
        self.mean += delta * n / total
        self.var.copy_(squares / total)
        self.count.copy_(total)


def _elu_mlp(input_size: int, units: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for size in units:
        layers += [nn.Linear(input_size, size), nn.ELU()]
        input_size = size
    return nn.Sequential(*layers)


def _lstm_with_resets(lstm: nn.LSTM, steps: torch.Tensor, states: tuple, resets: torch.Tensor | None) -> tuple:
    """Run (seqs, T, F) through a batch-first LSTM, zeroing a sequence's state before each step it resets at.

    Time is split only at steps where some sequence resets, so a chunk without episode ends is one call.
    """
    if resets is None:
        return lstm(steps, states)
    cuts = (resets[:, 1:].any(dim=0).nonzero().flatten() + 1).tolist()
    bounds = [0, *cuts, steps.shape[1]]
    hidden, cell = states
    outputs = []
    for start, end in itertools.pairwise(bounds):
        keep = (~resets[:, start]).to(hidden.dtype).view(1, -1, 1)
        out, (hidden, cell) = lstm(steps[:, start:end], (hidden * keep, cell * keep))
        outputs.append(out)
    return torch.cat(outputs, dim=1), (hidden, cell)


class RecurrentCore(nn.Module):
    """LSTM over rl-games' sequence layout, optional LayerNorm on its output, then an ELU MLP."""

    def __init__(self, input_size: int, sizes: typing.Any, num_seqs: int):
        super().__init__()
        self.num_seqs = num_seqs
        self.lstm = nn.LSTM(input_size, sizes.lstm_units, sizes.lstm_layers, batch_first=True)
        self.layer_norm = nn.LayerNorm(sizes.lstm_units) if sizes.lstm_layer_norm else nn.Identity()
        self.mlp = _elu_mlp(sizes.lstm_units, sizes.mlp)
        self.out_size = sizes.mlp[-1]

    def default_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.lstm.num_layers, self.num_seqs, self.lstm.hidden_size)
        return torch.zeros(shape), torch.zeros(shape)

    def forward(self, features: torch.Tensor, obs_dict: dict) -> tuple[torch.Tensor, tuple]:
        """(batch, F) -> (batch, out_size) and the (h, c) states after each sequence's last step."""
        seq_length = obs_dict.get("seq_length", 1)
        num_seqs = features.shape[0] // seq_length
        states = obs_dict.get("rnn_states")
        if states is None:  # tracing/export without states: start from zeros
            zeros = features.new_zeros(self.lstm.num_layers, num_seqs, self.lstm.hidden_size)
            states = (zeros, zeros)
        dones = obs_dict.get("dones")
        resets = None if dones is None else dones.reshape(num_seqs, seq_length).bool()
        steps = features.reshape(num_seqs, seq_length, -1)
        out, states = _lstm_with_resets(self.lstm, steps, tuple(states), resets)
        return self.mlp(self.layer_norm(out.reshape(features.shape[0], -1))), states


class DepthEncoder(nn.Module):
    """Depth (C, H, W) -> embedding: strided convs, each followed by ReLU and a per-sample LayerNorm over
    (C, H, W) sized for this resolution, then global average pooling and a linear layer."""

    def __init__(self, image_shape: tuple[int, int, int], sizes: DepthTeacherSizes):
        super().__init__()
        channels, height, width = image_shape
        layers: list[nn.Module] = []
        for filters, kernel in zip(sizes.filters, sizes.kernels):
            # (k - s + 1) // 2 turns floor((n + 2p - k) / s) + 1 into about n / s, so 24x32 images survive 4 layers
            padding = max(0, (kernel - sizes.stride + 1) // 2)
            height, width = ((n + 2 * padding - kernel) // sizes.stride + 1 for n in (height, width))
            if min(height, width) < 1:
                raise ValueError(
                    f"depth images of {image_shape[1]}x{image_shape[2]} are too small for filters {sizes.filters}, "
                    f"kernels {sizes.kernels}, stride {sizes.stride}"
                )
            conv = nn.Conv2d(channels, filters, kernel, sizes.stride, padding)
            layers += [conv, nn.ReLU(), nn.LayerNorm([filters, height, width])]
            channels = filters
        self.convs = nn.Sequential(*layers)
        self.embed = nn.Linear(channels, sizes.embedding)

    def forward(self, depth: torch.Tensor) -> torch.Tensor:
        features = self.convs(depth.float())  # the buffer keeps depth as float16 metres
        return self.embed(features.mean(dim=(2, 3)))


def _dict_shapes(input_shape: typing.Any, ranks: dict[str, int], network: str) -> dict[str, tuple[int, ...]]:
    """Check a Dict observation's {key: shape} against the keys and ranks ``network`` reads."""
    if not isinstance(input_shape, dict) or set(input_shape) != set(ranks):
        got = sorted(input_shape) if isinstance(input_shape, dict) else input_shape
        raise ValueError(f"{network} needs a Dict observation with keys {sorted(ranks)}, got {got}")
    for key, rank in ranks.items():
        if len(input_shape[key]) != rank:
            raise ValueError(f"{network}: observation '{key}' must have {rank} dims, got {tuple(input_shape[key])}")
    return {key: tuple(shape) for key, shape in input_shape.items()}


class _RlGamesNetwork(nn.Module):
    """The methods rl-games' model wrappers call besides forward: recurrent, one trunk shared by all heads."""

    core: RecurrentCore
    value: nn.Linear

    def is_rnn(self) -> bool:
        return True

    def is_separate_critic(self) -> bool:
        return False

    def get_default_rnn_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.core.default_state()

    def get_value_layer(self) -> nn.Linear:
        return self.value

    def get_aux_loss(self) -> None:
        return None


class _GaussianActorCritic(_RlGamesNetwork):
    """Encoded observation -> trunk -> mean action, state-independent log-std (continuous_a2c_logstd), value."""

    def __init__(self, core: RecurrentCore, actions_num: int, value_size: int, initial_log_std: float):
        super().__init__()
        self.core = core
        self.mu = nn.Linear(core.out_size, actions_num)
        self.log_std = nn.Parameter(torch.full((actions_num,), initial_log_std))
        self.value = nn.Linear(core.out_size, value_size)

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(batch, F) features of one observation per row."""
        raise NotImplementedError

    def forward(self, obs_dict: dict) -> tuple:
        out, states = self.core(self.encode(obs_dict["obs"]), obs_dict)
        mu = self.mu(out)
        return mu, self.log_std.expand_as(mu), self.value(out), states


class DepthTeacher(_GaussianActorCritic):
    """The paper's teacher: depth CNN embedding + normalized proprioception -> LSTM -> ELU MLP -> heads."""

    sizes_type = DepthTeacherSizes

    def __init__(self, sizes: DepthTeacherSizes, input_shape: dict, actions_num: int, value_size: int, num_seqs: int):
        shapes = _dict_shapes(input_shape, {"depth": 3, "proprio": 1}, DEPTH_TEACHER)
        encoder = DepthEncoder(shapes["depth"], sizes)
        core = RecurrentCore(sizes.embedding + shapes["proprio"][0], sizes, num_seqs)
        super().__init__(core, actions_num, value_size, sizes.initial_log_std)
        self.depth_encoder = encoder
        self.proprio_normalizer = RunningNormalizer(shapes["proprio"][0])  # depth stays metric: bounded already

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([self.depth_encoder(obs["depth"]), self.proprio_normalizer(obs["proprio"])], dim=-1)


class StateTeacher(_GaussianActorCritic):
    """DextrAH's privileged teacher: normalized proprioception + object state -> LSTM -> LayerNorm -> MLP -> heads."""

    sizes_type = StateTeacherSizes

    def __init__(self, sizes: StateTeacherSizes, input_shape: dict, actions_num: int, value_size: int, num_seqs: int):
        shapes = _dict_shapes(input_shape, {"proprio": 1, "state": 1}, STATE_TEACHER)
        size = shapes["proprio"][0] + shapes["state"][0]
        super().__init__(RecurrentCore(size, sizes, num_seqs), actions_num, value_size, sizes.initial_log_std)
        self.normalizer = RunningNormalizer(size)

    def encode(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.normalizer(torch.cat([obs["proprio"], obs["state"]], dim=-1))


class Critic(_RlGamesNetwork):
    """Asymmetric critic for rl-games' central value net: normalized critic vector -> LSTM -> ELU MLP -> value."""

    sizes_type = CriticSizes

    def __init__(self, sizes: CriticSizes, input_shape: typing.Any, actions_num: int, value_size: int, num_seqs: int):
        del actions_num  # rl-games passes it to every network; a critic outputs values only
        if isinstance(input_shape, dict) or len(input_shape) != 1:
            raise ValueError(f"{CRITIC} needs a flat Box 'states' observation, got shape {input_shape}")
        super().__init__()
        self.normalizer = RunningNormalizer(input_shape[0])
        self.core = RecurrentCore(input_shape[0], sizes, num_seqs)
        self.value = nn.Linear(self.core.out_size, value_size)

    def forward(self, obs_dict: dict) -> tuple:
        """(value, states): the tuple rl-games' ModelCentralValue unpacks."""
        out, states = self.core(self.normalizer(obs_dict["obs"]), obs_dict)
        return self.value(out), states


class DexgraspNetworkBuilder:
    """rl-games builder of one network class: ``load`` parses its sizes, ``build`` makes an instance."""

    def __init__(self, network_type: type):
        self.network_type = network_type
        self.sizes = network_type.sizes_type()

    def load(self, params: dict) -> None:
        self.sizes = parse_sizes(self.network_type.sizes_type, params)

    def build(self, name: str, **config: typing.Any) -> nn.Module:
        """``name`` is rl-games' model kind ('a2c'); ``config`` comes from the agent, central value net or player."""
        if config.get("normalize_input"):
            raise ValueError("set normalize_input: False, in central_value_config too: these networks normalize inputs")
        return self.network_type(self.sizes, config["input_shape"], config.get("actions_num"),
                                 config.get("value_size", 1), config.get("num_seqs", 1))


def register_networks() -> None:
    """Make the three networks buildable by name from rl-games yaml; calling it again changes nothing."""
    for name, network_type in ((DEPTH_TEACHER, DepthTeacher), (STATE_TEACHER, StateTeacher), (CRITIC, Critic)):
        model_builder.register_network(name, functools.partial(DexgraspNetworkBuilder, network_type))
