"""The robot MJCF against DextrAH's Kuka-Allegro (NVlabs/FABRICS' URDF), checked in C MuJoCo."""

import mujoco
import numpy as np
import pytest

from dexgrasp_assets import ROBOT_XML, SCENE_XML

ARM_LIMITS = [2.967, 2.094, 2.967, 2.094, 2.967, 2.094, 3.054]
ARM_KP = [300, 300, 300, 300, 100, 50, 25]
ARM_KV = [45, 45, 45, 45, 20, 15, 15]
ARM_EFFORT = [176, 176, 110, 110, 110, 40, 40]
LINK_MASSES = [0.564, 3.45, 3.48, 4.06, 3.48, 2.16, 2.35, 3.13]
HOME = [-0.85, 0, 0.76, 1.25, -1.76, 0.90, 0.64] + [0, 0.3, 0.3, 0.3] * 3 + [1.5, 0.6015, 0.3380, 0.6085]


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_path(str(SCENE_XML))


def test_robot_file_loads_on_its_own():
    robot = mujoco.MjModel.from_xml_path(str(ROBOT_XML))
    assert (robot.njnt, robot.nu) == (23, 23)


def test_joint_limits_match_task_facts(model):
    ranges = model.jnt_range[:23]
    np.testing.assert_allclose(ranges[:7, 1], ARM_LIMITS)
    np.testing.assert_allclose(ranges[:7, 0], -np.array(ARM_LIMITS))
    for finger in range(3):
        joints = ranges[7 + 4 * finger : 11 + 4 * finger]
        np.testing.assert_allclose(joints[0], [-0.558, 0.558])
        np.testing.assert_allclose(joints[1:], [[-0.279, 1.728]] * 3)
    np.testing.assert_allclose(ranges[19:23], [[0.279, 1.571], [-0.332, 1.152], [-0.279, 1.728], [-0.279, 1.763]])


def test_position_gains_and_efforts_match_task_facts(model):
    np.testing.assert_allclose(model.actuator_gainprm[:7, 0], ARM_KP)
    np.testing.assert_allclose(model.actuator_biasprm[:7, 1], -np.array(ARM_KP))
    np.testing.assert_allclose(model.actuator_biasprm[:7, 2], -np.array(ARM_KV))
    np.testing.assert_allclose(model.actuator_forcerange[:7, 1], ARM_EFFORT)
    np.testing.assert_allclose(model.actuator_gainprm[7:23, 0], 3.0)
    np.testing.assert_allclose(model.actuator_biasprm[7:23, 2], -0.1)
    np.testing.assert_allclose(model.actuator_forcerange[7:23, 1], 0.5)


def test_link_masses_and_gravity_compensation(model):
    names = ["iiwa_base"] + [f"iiwa_link_{i}" for i in range(1, 8)]
    np.testing.assert_allclose([model.body(n).mass[0] for n in names], LINK_MASSES)
    assert model.body("palm").mass[0] == pytest.approx(0.415)
    robot_bodies = range(model.body("iiwa_link_1").id, model.body("object").id)
    assert all(model.body_gravcomp[b] == 1.0 for b in robot_bodies)


def test_flange_height_at_zero_configuration(model):
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    link7 = data.xpos[model.body("iiwa_link_7").id]
    np.testing.assert_allclose(link7[2] + 0.071, 1.292, atol=1e-6)


def test_home_pose_puts_palm_near_the_dextrah_point(model):
    data = mujoco.MjData(model)
    data.qpos[:23] = HOME
    mujoco.mj_kinematics(model, data)
    palm = data.site_xpos[model.site("palm_center").id]
    assert np.linalg.norm(palm - [-0.54, -0.13, 0.86]) < 0.03
    data.qpos[:23] = HOME
    mujoco.mj_forward(model, data)
    assert data.ncon == 0  # the hand starts clear of the table and of itself


def test_table_top_height(model):
    table = model.geom("table")
    assert table.pos[2] + table.size[2] == pytest.approx(0.25)
