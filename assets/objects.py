"""Graspable object set: one convex mesh per simulated world.

Every object is a MuJoCo mesh (collision uses its convex hull), so a single
batched MuJoCo Warp model can hold all of them and each world points its
object geom at a different mesh. Objects come either from a deterministic
procedural generator sized like the Visual Dexterity dataset, or from a
folder of the user's own .obj/.stl files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dexgrasp_assets.errors import ObjectSetError

if TYPE_CHECKING:  # the command line imports this module and answers without loading MuJoCo
    import mujoco

# Procedural kinds, cycled in this order over the object index.
PROCEDURAL_KINDS = ("box", "cylinder", "sphere", "capsule", "ellipsoid", "convex")
KINDS = PROCEDURAL_KINDS + ("mesh",)

# Bounding-box ranges in metres, from the Visual Dexterity meshes.
LONGEST_SIDE = (0.095, 0.162)
SHORTEST_SIDE = (0.045, 0.115)
# A sphere's sides are all equal, so its diameter must lie in both ranges.
SPHERE_DIAMETER = (LONGEST_SIDE[0], SHORTEST_SIDE[1])

MESH_SUFFIXES = (".obj", ".stl")




@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields do not compare as a tuple
class ObjectShape:
    """One object: either procedural `vertices` or a user mesh `file`, never both."""

    name: str  # unique MuJoCo asset name
    kind: str  # one of KINDS
    vertices: np.ndarray | None  # (V, 3) metres, bounding box centred at the origin; hull is taken
    file: Path | None  # absolute path of a user .obj/.stl
    scale: float = 1.0  # applied to file meshes


def _latlong_sphere(n_bands: int = 8, n_lon: int = 12) -> np.ndarray:
    """Unit-sphere points on latitude rings plus both poles (n_bands even keeps the equator)."""
    theta = np.pi * np.arange(1, n_bands) / n_bands
    phi = 2.0 * np.pi * np.arange(n_lon) / n_lon
    t, p = np.meshgrid(theta, phi, indexing="ij")
    rings = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    return np.vstack([[0.0, 0.0, 1.0], rings, [0.0, 0.0, -1.0]])


def _fit_box(v: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Scale each axis so the bounding box is exactly `size`, centred at the origin.

    Polygonal approximations of round shapes fall slightly short of their
    nominal extents; fitting the box afterwards keeps every object inside the
    stated size ranges exactly.
    """
    lo, hi = v.min(axis=0), v.max(axis=0)
    return (v - (lo + hi) / 2.0) / (hi - lo) * size


def _sample_sides(rng: np.random.Generator) -> tuple[float, float, float]:
    """Longest, middle and shortest side of a bounding box within the dataset ranges."""
    longest = rng.uniform(*LONGEST_SIDE)
    shortest = rng.uniform(SHORTEST_SIDE[0], min(SHORTEST_SIDE[1], longest))
    return longest, rng.uniform(shortest, longest), shortest


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _procedural_vertices(kind: str, rng: np.random.Generator) -> np.ndarray:
    longest, middle, shortest = _sample_sides(rng)
    if kind == "box":
        corners = np.array(np.meshgrid([-1.0, 1.0], [-1.0, 1.0], [-1.0, 1.0])).reshape(3, -1).T
        return _fit_box(corners, rng.permutation([longest, middle, shortest]))
    if kind == "cylinder":
        sides = int(rng.integers(16, 25))
        phi = 2.0 * np.pi * np.arange(sides) / sides
        ring = np.stack([np.cos(phi), np.sin(phi)], -1)
        v = np.vstack([np.c_[ring, np.ones(sides)], np.c_[ring, -np.ones(sides)]])
        # Half tall (diameter = shortest side), half flat (diameter = longest side).
        diameter, height = (shortest, longest) if rng.random() < 0.5 else (longest, shortest)
        return _fit_box(v, np.array([diameter, diameter, height]))
    if kind == "sphere":
        return _fit_box(_latlong_sphere(), np.full(3, rng.uniform(*SPHERE_DIAMETER)))
    if kind == "capsule":
        # Keep a straight section: diameter at most 80% of the total length.
        diameter = rng.uniform(SHORTEST_SIDE[0], min(SHORTEST_SIDE[1], 0.8 * longest))
        s = _latlong_sphere()
        half = (longest - diameter) / diameter  # cylinder half-length in unit-radius terms
        up, down = s[:, 2] > -1e-9, s[:, 2] < 1e-9  # the equator ring belongs to both caps
        v = np.vstack([s[up] + [0, 0, half], s[down] - [0, 0, half]])
        return _fit_box(v, np.array([diameter, diameter, longest]))
    if kind == "ellipsoid":
        return _fit_box(_latlong_sphere(), rng.permutation([longest, middle, shortest]))
    if kind == "convex":
        # Random directions with jittered radii on a tilted anisotropic ellipsoid:
        # the hull is an irregular polytope, not aligned with any axis.
        n = int(rng.integers(20, 49))
        d = rng.normal(size=(n, 3))
        d *= rng.uniform(0.8, 1.0, (n, 1)) / np.linalg.norm(d, axis=1, keepdims=True)
        v = (d * rng.uniform(0.5, 1.0, 3)) @ _random_rotation(rng).T
        return _fit_box(v, rng.permutation([longest, middle, shortest]))
    raise ObjectSetError(f"unknown procedural kind {kind!r}; accepted: {', '.join(PROCEDURAL_KINDS)}")


def procedural_objects(count: int = 120, seed: int = 0) -> list[ObjectShape]:
    """`count` distinct objects whose kinds cycle through PROCEDURAL_KINDS by index."""
    if int(count) != count or count < 1:
        raise ObjectSetError(f"object count {count!r} is invalid; accepted: an integer >= 1")
    rng = np.random.default_rng(seed)
    shapes = []
    for i in range(int(count)):
        kind = PROCEDURAL_KINDS[i % len(PROCEDURAL_KINDS)]
        vertices = _procedural_vertices(kind, rng)
        vertices.setflags(write=False)
        shapes.append(ObjectShape(f"{kind}_{i:03d}", kind, vertices, None))
    return shapes


def _check_binary_stl(path: Path) -> None:
    # MuJoCo only decodes binary STL; catch ASCII files here with a clear message.
    size = path.stat().st_size
    with path.open("rb") as f:
        header = f.read(84)
    faces = int.from_bytes(header[80:84], "little") if len(header) == 84 else -1
    if faces < 1 or size != 84 + 50 * faces:
        raise ObjectSetError(f"{path} is not a binary STL file; accepted: .obj or binary .stl meshes")


def mesh_folder_objects(folder: str | Path, scale: float = 1.0) -> list[ObjectShape]:
    """One object per .obj/.stl file in `folder` (not recursive), sorted by file name."""
    folder = Path(folder).expanduser().resolve()
    accepted = "a folder containing .obj or .stl mesh files"
    if not scale > 0:
        raise ObjectSetError(f"mesh scale {scale!r} for {folder} is invalid; accepted: a number > 0")
    if not folder.exists():
        raise ObjectSetError(f"mesh folder {folder} does not exist; accepted: {accepted}")
    if not folder.is_dir():
        raise ObjectSetError(f"mesh folder {folder} is not a directory; accepted: {accepted}")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise ObjectSetError(f"mesh folder {folder} has no .obj/.stl files; accepted: {accepted}")
    shapes, used = [], set()
    for path in files:
        if path.suffix.lower() == ".stl":
            _check_binary_stl(path)
        base = re.sub(r"[^A-Za-z0-9_]+", "_", path.stem).strip("_") or "mesh"
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        shapes.append(ObjectShape(name, "mesh", None, path, float(scale)))
    return shapes


def add_mesh(spec: mujoco.MjSpec, shape: ObjectShape) -> str:
    """Add `shape` as a mesh asset named `shape.name` to `spec`; return that name."""
    # Convex inertia: mass and inertia follow the hull that actually collides,
    # and non-watertight user meshes cannot fail the volume computation.
    import mujoco

    inertia = mujoco.mjtMeshInertia.mjMESH_INERTIA_CONVEX
    if shape.vertices is not None:
        spec.add_mesh(name=shape.name, uservert=shape.vertices.ravel().tolist(), inertia=inertia)
    elif shape.file is not None:
        spec.add_mesh(name=shape.name, file=str(shape.file), scale=[shape.scale] * 3, inertia=inertia)
    else:
        raise ObjectSetError(f"object {shape.name!r} has neither vertices nor file; accepted: exactly one")
    return shape.name
