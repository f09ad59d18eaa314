"""Shared fixtures. Every env here uses the same scene, so warp compiles its kernels once."""

import pytest

from dexgrasp_cli.config import load_task_settings


@pytest.fixture(scope="session")
def settings():
    return load_task_settings()
