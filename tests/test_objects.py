"""Object set: sizes, masses and file loading checked against MuJoCo's compiled model."""

import struct
from collections import Counter
from pathlib import Path

import mujoco
import numpy as np
import pytest

from dexgrasp_assets.objects import (
    LONGEST_SIDE,
    PROCEDURAL_KINDS,
    SHORTEST_SIDE,
    ObjectSetError,
    ObjectShape,
    add_mesh,
    mesh_folder_objects,
    procedural_objects,
)

DENSITY = 500.0
TOL = 1e-3  # 1 mm


def compile_objects(shapes: list[ObjectShape]) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """One body at the world origin per object, with a mesh geom of density 500."""
    spec = mujoco.MjSpec()
    for shape in shapes:
        mesh = add_mesh(spec, shape)
        body = spec.worldbody.add_body(name=shape.name)
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh, density=DENSITY)
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    return model, data


def compiled_geometry(model: mujoco.MjModel, data: mujoco.MjData, name: str):
    """World-frame vertices, hull volume and body mass of object `name`.

    MuJoCo re-centres each mesh at its centre of mass and aligns it with its
    principal axes; the geom pose undoes that, so the world-frame vertices are
    the object in the frame it was authored in.
    """
    body = model.body(name).id
    geom = model.body_geomadr[body]
    mesh = model.geom_dataid[geom]
    va, vn = model.mesh_vertadr[mesh], model.mesh_vertnum[mesh]
    fa, fn = model.mesh_faceadr[mesh], model.mesh_facenum[mesh]
    verts = data.geom_xpos[geom] + model.mesh_vert[va : va + vn] @ data.geom_xmat[geom].reshape(3, 3).T
    a, b, c = (verts[model.mesh_face[fa : fa + fn, k]] for k in range(3))
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0  # divergence theorem
    return verts, volume, model.body_mass[body]


@pytest.fixture(scope="module")
def catalogue():
    shapes = procedural_objects(120, seed=0)
    model, data = compile_objects(shapes)
    return shapes, {s.name: compiled_geometry(model, data, s.name) for s in shapes}


def test_catalogue_names_kinds_and_distinctness(catalogue):
    shapes, compiled = catalogue
    assert len(shapes) == 120
    assert len({s.name for s in shapes}) == 120
    assert [s.kind for s in shapes] == [PROCEDURAL_KINDS[i % 6] for i in range(120)]
    assert Counter(s.kind for s in shapes) == {k: 20 for k in PROCEDURAL_KINDS}
    assert len({s.vertices.tobytes() for s in shapes}) == 120
    sizes = {tuple(np.round(np.sort(np.ptp(v, axis=0)), 6)) for v, _, _ in compiled.values()}
    assert len(sizes) == 120


def test_determinism():
    a, b, c = procedural_objects(120, 0), procedural_objects(120, 0), procedural_objects(120, 1)
    assert all(np.array_equal(x.vertices, y.vertices) for x, y in zip(a, b))
    assert not any(np.array_equal(x.vertices, z.vertices) for x, z in zip(a, c))
    assert [x.kind for x in a] == [z.kind for z in c]


def test_compiled_sizes_in_dataset_ranges(catalogue):
    shapes, compiled = catalogue
    for shape in shapes:
        verts = compiled[shape.name][0]
        shortest, _, longest = np.sort(np.ptp(verts, axis=0))
        assert LONGEST_SIDE[0] - TOL <= longest <= LONGEST_SIDE[1] + TOL, shape.name
        assert SHORTEST_SIDE[0] - TOL <= shortest <= SHORTEST_SIDE[1] + TOL, shape.name
        # Bounding box centred at the origin, as authored.
        np.testing.assert_allclose(verts.max(0) + verts.min(0), 0.0, atol=1e-6, err_msg=shape.name)
        if shape.kind == "sphere":
            assert longest - shortest < TOL, shape.name


def _continuum_volume(kind: str, extents: np.ndarray) -> float:
    s = np.sort(extents)
    if kind in ("box", "convex"):
        return float(np.prod(extents))
    if kind in ("sphere", "ellipsoid", "cylinder"):
        return float(np.prod(extents)) * (np.pi / 6 if kind != "cylinder" else np.pi / 4)
    r = s[0] / 2  # capsule: radius from the short sides, straight part from the long one
    return np.pi * r * r * (s[2] - 2 * r) + 4 / 3 * np.pi * r**3


def test_compiled_mass_is_density_times_hull_volume(catalogue):
    shapes, compiled = catalogue
    for shape in shapes:
        verts, volume, mass = compiled[shape.name]
        assert volume > 0 and mass > 0, shape.name
        assert mass == pytest.approx(DENSITY * volume, rel=1e-5), shape.name
        ratio = volume / _continuum_volume(shape.kind, np.ptp(verts, axis=0))
        if shape.kind == "box":
            assert ratio == pytest.approx(1.0, rel=1e-5), shape.name
        elif shape.kind == "convex":
            assert 0.05 < ratio <= 1.0, shape.name  # a hull inside its bounding box
        else:  # polyhedra inscribed in the smooth shape they approximate
            assert 0.85 < ratio <= 1.0 + 1e-6, shape.name


def _box_triangles(size: tuple[float, float, float], offset: tuple[float, float, float]):
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    verts = corners * size + offset
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1),
             (2, 3, 7), (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]  # fmt: skip
    return verts, faces


def write_obj(path: Path, size, offset=(0.0, 0.0, 0.0)) -> None:
    verts, faces = _box_triangles(size, offset)
    lines = [f"v {x:.9g} {y:.9g} {z:.9g}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


def write_binary_stl(path: Path, size, offset=(0.0, 0.0, 0.0)) -> None:
    verts, faces = _box_triangles(size, offset)
    out = bytearray(80) + struct.pack("<I", len(faces))
    for face in faces:
        out += struct.pack("<3f", 0, 0, 0) + b"".join(struct.pack("<3f", *verts[i]) for i in face) + b"\0\0"
    path.write_bytes(bytes(out))


def test_mesh_folder_compiles_to_written_size(tmp_path):
    scale = 1.5
    write_obj(tmp_path / "my cube.obj", (0.04, 0.04, 0.04), offset=(0.1, -0.2, 0.3))
    write_binary_stl(tmp_path / "my-cube.STL", (0.03, 0.05, 0.07))
    (tmp_path / "notes.txt").write_text("not a mesh\n")
    shapes = mesh_folder_objects(tmp_path, scale=scale)
    assert [s.name for s in shapes] == ["my_cube", "my_cube_1"]
    assert all(s.kind == "mesh" and s.file.is_absolute() and s.vertices is None for s in shapes)
    model, data = compile_objects(shapes)
    for shape, size in zip(shapes, [(0.04, 0.04, 0.04), (0.03, 0.05, 0.07)]):
        verts, volume, mass = compiled_geometry(model, data, shape.name)
        expected = np.array(size) * scale
        np.testing.assert_allclose(np.ptp(verts, axis=0), expected, atol=1e-6)
        assert volume == pytest.approx(np.prod(expected), rel=1e-5)
        assert mass == pytest.approx(DENSITY * np.prod(expected), rel=1e-5)


def _assert_one_line_error(path: Path, **kwargs) -> None:
    with pytest.raises(ObjectSetError) as err:
        mesh_folder_objects(path, **kwargs)
    message = str(err.value)
    assert "\n" not in message and str(path.resolve()) in message


def test_mesh_folder_errors(tmp_path):
    _assert_one_line_error(tmp_path / "missing")
    (tmp_path / "file.obj").write_text("v 0 0 0\n")
    _assert_one_line_error(tmp_path / "file.obj")
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_one_line_error(empty)
    (empty / "readme.txt").write_text("no meshes here\n")
    _assert_one_line_error(empty)
    meshes = tmp_path / "meshes"
    meshes.mkdir()
    write_obj(meshes / "cube.obj", (0.05, 0.05, 0.05))
    for bad in (0.0, -1.0, float("nan")):
        _assert_one_line_error(meshes, scale=bad)


def test_ascii_stl_is_rejected_before_mujoco(tmp_path):
    (tmp_path / "part.stl").write_text("solid part\nendsolid part\n")
    with pytest.raises(ObjectSetError, match="binary STL"):
        mesh_folder_objects(tmp_path)


@pytest.mark.parametrize("count", [0, -3, 2.5])
def test_bad_count(count):
    with pytest.raises(ObjectSetError):
        procedural_objects(count)
