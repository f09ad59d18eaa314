"""Compile the DextrAH scene with a whole object set, one object geom shared by all worlds.

Every world has the same bodies; only the object's mesh differs. MuJoCo Warp lets a world point
its object geom at its own mesh (a per-world ``geom_dataid``), provided the fields that MuJoCo
derives from the mesh travel with it. Those come from a catalogue model in which each mesh was
compiled on its own, so the values are MuJoCo's, not ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from dexgrasp_assets import SCENE_XML
from dexgrasp_assets.objects import ObjectShape, add_mesh

OBJECT_BODY = "object"
OBJECT_GEOM = "object_geom"
OBJECT_DENSITY = 500.0  # kg/m^3, as DextrAH's objects


@dataclass(frozen=True)
class CameraSpec:
    """A camera fixed in the world frame; MuJoCo cameras look along their -z axis, y up."""

    name: str
    pos: tuple[float, float, float]
    quat: tuple[float, float, float, float]  # (w, x, y, z)
    fovy_deg: float


@dataclass(frozen=True)
class ObjectCatalog:
    """MuJoCo-compiled properties of each object, indexed by object id (K objects)."""

    names: list[str]
    mesh_ids: np.ndarray  # (K,) mesh index in the scene model
    geom_size: np.ndarray  # (K, 3)
    geom_aabb: np.ndarray  # (K, 2, 3) centre and half-sizes in the geom frame
    geom_rbound: np.ndarray  # (K,)
    geom_pos: np.ndarray  # (K, 3) mesh frame in the body frame
    geom_quat: np.ndarray  # (K, 4)
    body_mass: np.ndarray  # (K,)
    body_inertia: np.ndarray  # (K, 3)
    body_ipos: np.ndarray  # (K, 3)
    body_iquat: np.ndarray  # (K, 4)
    half_extents: np.ndarray  # (K, 3) half-sizes of the axis-aligned box of the mesh, sorted

    def __len__(self) -> int:
        return len(self.names)


def _catalog(shapes: list[ObjectShape]) -> mujoco.MjModel:
    spec = mujoco.MjSpec()
    for shape in shapes:
        mesh = add_mesh(spec, shape)
        body = spec.worldbody.add_body(name=shape.name)
        body.add_freejoint()
        body.add_geom(type=mujoco.mjtGeom.mjGEOM_MESH, meshname=mesh, density=OBJECT_DENSITY)
    return spec.compile()


def build_scene(
    shapes: list[ObjectShape], cameras: tuple[CameraSpec, ...] = ()
) -> tuple[mujoco.MjModel, ObjectCatalog]:
    """The scene model holding every mesh and camera, and the per-object fields to batch per world."""
    spec = mujoco.MjSpec.from_file(str(SCENE_XML))
    for camera in cameras:
        spec.worldbody.add_camera(name=camera.name, pos=camera.pos, quat=camera.quat, fovy=camera.fovy_deg)
    mesh_names = [add_mesh(spec, shape) for shape in shapes]
    geom = spec.geom(OBJECT_GEOM)
    geom.type = mujoco.mjtGeom.mjGEOM_MESH
    geom.meshname = mesh_names[0]
    geom.density = OBJECT_DENSITY
    model = spec.compile()

    cat = _catalog(shapes)
    bodies = np.arange(1, len(shapes) + 1)  # body 0 is the world
    geoms = cat.body_geomadr[bodies]
    aabb = cat.geom_aabb[geoms].reshape(-1, 2, 3)
    catalog = ObjectCatalog(
        names=[shape.name for shape in shapes],
        mesh_ids=np.array([model.mesh(name).id for name in mesh_names], dtype=np.int32),
        geom_size=cat.geom_size[geoms].copy(),
        geom_aabb=aabb.copy(),
        geom_rbound=cat.geom_rbound[geoms].copy(),
        geom_pos=cat.geom_pos[geoms].copy(),
        geom_quat=cat.geom_quat[geoms].copy(),
        body_mass=cat.body_mass[bodies].copy(),
        body_inertia=cat.body_inertia[bodies].copy(),
        body_ipos=cat.body_ipos[bodies].copy(),
        body_iquat=cat.body_iquat[bodies].copy(),
        half_extents=np.sort(_mesh_half_extents(cat), axis=1)[:, ::-1].copy(),
    )
    return model, catalog


def _mesh_half_extents(model: mujoco.MjModel) -> np.ndarray:
    """Half-sizes of each mesh's bounding box in its own (principal) frame."""
    out = np.empty((model.nmesh, 3))
    for i in range(model.nmesh):
        start, count = model.mesh_vertadr[i], model.mesh_vertnum[i]
        verts = model.mesh_vert[start : start + count]
        out[i] = 0.5 * (verts.max(axis=0) - verts.min(axis=0))
    return out
