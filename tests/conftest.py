from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests.personas import World, build_world

pytest_plugins = ["tests.harness.fixtures"]


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path: Path) -> None:
    """Stored files (raw messages, attachments) go to a folder of this test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def world(db) -> World:
    return build_world()


@pytest.fixture
def api_as(world: World) -> Callable[[str], APIClient]:
    """An API client signed in as a persona (``anonymous`` for none)."""

    def make(name: str) -> APIClient:
        client = APIClient()
        login = world[name].login
        if login is not None:
            client.force_authenticate(login)
        return client

    return make
