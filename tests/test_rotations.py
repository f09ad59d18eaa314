"""Quaternion helpers against C MuJoCo's own quaternion functions."""

import mujoco
import numpy as np
import torch

from dexgrasp_tasks.dextrah.rotations import quat_mul, quat_rotate, rotation_vector_to_quat


def test_quaternion_helpers_match_mujoco():
    gen = torch.Generator().manual_seed(0)
    a = rotation_vector_to_quat(torch.randn(8, 3, generator=gen, dtype=torch.float64))
    b = rotation_vector_to_quat(torch.randn(8, 3, generator=gen, dtype=torch.float64))
    v = torch.randn(8, 3, generator=gen, dtype=torch.float64)
    product, rotated = quat_mul(a, b).numpy(), quat_rotate(a, v).numpy()
    for i in range(8):
        expected = np.zeros(4)
        mujoco.mju_mulQuat(expected, a[i].numpy(), b[i].numpy())
        np.testing.assert_allclose(product[i], expected, atol=1e-12)
        expected = np.zeros(3)
        mujoco.mju_rotVecQuat(expected, v[i].numpy(), a[i].numpy())
        np.testing.assert_allclose(rotated[i], expected, atol=1e-12)
        rotvec = np.zeros(3)
        mujoco.mju_quat2Vel(rotvec, a[i].numpy(), 1.0)
        back = rotation_vector_to_quat(torch.from_numpy(rotvec)[None])[0].numpy()
        np.testing.assert_allclose(back * np.sign(back[0] * a[i, 0].item()), a[i].numpy(), atol=1e-12)
