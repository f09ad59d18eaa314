"""Robot and scene MJCF files and the object set of the DextrAH task."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent
SCENE_XML = ASSETS_DIR / "scene.xml"
ROBOT_XML = ASSETS_DIR / "kuka_allegro.xml"
