from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from rest_framework.test import APIClient

from tests.personas import World, build_world

if TYPE_CHECKING:
    from tests.sync.stack import Stack

pytest_plugins = ["tests.harness.fixtures", "tests.fakes.graph.fixtures", "tests.fakes.ews.fixtures"]


def pytest_configure(config: pytest.Config) -> None:
    """Each pytest-xdist worker keeps its Celery messages and results under a
    Redis key prefix of its own (tests/harness/celery_worker.py hands it to the
    worker processes it starts). The settings were read before xdist named the
    worker, so this happens here.
    """
    from django.conf import settings

    from config.celery import app

    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    prefix = f"{settings.REDIS_KEY_PREFIX}{worker}:"
    options = {"global_keyprefix": prefix}
    settings.REDIS_KEY_PREFIX = prefix
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = options
    settings.CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = options
    app.conf.broker_transport_options = options
    app.conf.result_backend_transport_options = options


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path: Path) -> None:
    """Stored files (raw messages, attachments) go to a folder of this test's own."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound, so nobody else takes it, but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def stack(settings, dovecot, smtp_relay, mail_user) -> Stack:
    """An organization wired to the test mail stack (tests/sync/stack.py)."""
    # Imported here: the stack imports the harness's fixtures module, which pytest
    # must import first itself (as a plugin) to rewrite its asserts.
    from tests.sync.stack import build_stack

    return build_stack(settings, dovecot, smtp_relay, mail_user)


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
