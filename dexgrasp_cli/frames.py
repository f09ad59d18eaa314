"""Camera frames as PNGs for a person to look at: per-world images plus one tiled overview.

Depth is colour-mapped over the clip range with "no reading" (0) drawn black; RGB is written as is.
Everything renders on CPU through Agg without pyplot, so it works headless and leaves no global state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import imsave

from dexgrasp_cli.atomic import write_atomic

# Near is bright yellow, far dark purple: closer reads brighter, and both ends stay distinct from black.
DEPTH_CMAP = "viridis_r"
MIN_TILE_PX = 256  # overview tiles are upscaled by a whole factor to at least this width
DPI = 100


def frame_worlds(num_envs: int, count: int = 4) -> list[int]:
    """Batch indices of the worlds whose frames are saved: the first ``count``."""
    return list(range(min(count, num_envs)))


def colorize_depth(depth: np.ndarray, depth_range: tuple[float, float]) -> np.ndarray:
    """(..., H, W) metres -> (..., H, W, 3) uint8 over [near, far], black where there is no reading."""
    rgb = matplotlib.colormaps[DEPTH_CMAP](Normalize(*depth_range, clip=True)(depth), bytes=True)[..., :3]
    rgb[~(depth > 0)] = 0  # NaN counts as no reading too
    return rgb


def save_frames(
    folder: Path,
    step: int,
    world_ids: Sequence[int],
    depth: torch.Tensor | None,
    rgb: torch.Tensor | None,
    depth_range: tuple[float, float],
) -> list[Path]:
    """Write each world's depth/left/right PNGs, then the overview; return the paths, overview last.

    ``depth`` is (n, 1, H, W) metres, ``rgb`` (n, 2, 3, H, W) uint8 (left, right), n = len(world_ids).
    """
    if depth is None and rgb is None:
        raise ValueError("save_frames needs depth, rgb or both")
    near, far = depth_range
    if not 0 <= near < far:
        raise ValueError(f"depth_range must satisfy 0 <= near < far, got {depth_range}")
    n = len(world_ids)
    columns: dict[str, np.ndarray] = {}  # kind -> (n, H, W, 3) uint8, in overview column order
    if depth is not None:
        _check_shape("depth", depth, (n, 1))
        columns["depth"] = colorize_depth(depth.detach().cpu().float().numpy()[:, 0], depth_range)
    if rgb is not None:
        _check_shape("rgb", rgb, (n, 2, 3))
        if rgb.dtype != torch.uint8:
            raise ValueError(f"rgb must be uint8, got {rgb.dtype}")
        images = rgb.detach().cpu().permute(0, 1, 3, 4, 2).numpy()
        columns["left"], columns["right"] = images[:, 0], images[:, 1]

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for row, world in enumerate(world_ids):
        for kind, images in columns.items():
            path = folder / f"step{step:05d}_world{world:04d}_{kind}.png"
            write_atomic(path, lambda file, image=images[row]: imsave(file, image, format="png"))
            written.append(path)
    overview = folder / f"step{step:05d}_overview.png"
    figure = _overview(world_ids, columns, depth_range)
    write_atomic(overview, lambda file: figure.savefig(file, format="png", dpi=DPI))
    written.append(overview)
    return written


def _check_shape(name: str, tensor: torch.Tensor, leading: tuple[int, ...]) -> None:
    if tensor.dim() != len(leading) + 2 or tuple(tensor.shape[: len(leading)]) != leading:
        raise ValueError(f"{name} must have shape {leading + ('H', 'W')}, got {tuple(tensor.shape)}")


def _overview(
    world_ids: Sequence[int], columns: dict[str, np.ndarray], depth_range: tuple[float, float]
) -> Figure:
    """One row per world, one column per kind; depth reuses the saved colours, plus a colourbar in metres."""
    height = max(images.shape[1] for images in columns.values())
    width = max(images.shape[2] for images in columns.values())
    scale = math.ceil(MIN_TILE_PX / width)
    tile_w, tile_h = width * scale / DPI, height * scale / DPI
    title_h, colorbar_w = 0.3, 1.0  # inches
    figure = Figure(
        figsize=(len(columns) * tile_w + colorbar_w, len(world_ids) * (tile_h + title_h)),
        dpi=DPI,
        layout="constrained",
    )
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(world_ids), len(columns), squeeze=False)
    for row, world in enumerate(world_ids):
        for ax, (kind, images) in zip(axes[row], columns.items()):
            ax.imshow(images[row], interpolation="nearest")  # keep pixels crisp when upscaled
            ax.set_title(f"world {world} {kind}", fontsize=9)
            ax.set_axis_off()
    if "depth" in columns:
        mappable = ScalarMappable(Normalize(*depth_range), matplotlib.colormaps[DEPTH_CMAP])
        figure.colorbar(mappable, ax=axes[:, 0], location="left", label="depth (m)")
    return figure
