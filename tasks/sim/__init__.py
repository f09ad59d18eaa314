"""The simulator seam: MuJoCo Warp physics, the scene and object catalog, the batched ray-traced renderer."""
