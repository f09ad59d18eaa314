"""The simulator seam (backend.py) and its MuJoCo Warp and C MuJoCo physics, the scene and object catalog,
the batched ray-traced renderer."""
