"""The DextrAH grasp-and-lift task (dextrah/) over a simulator seam (sim/: MuJoCo Warp); installed as
``dexgrasp_tasks``."""
