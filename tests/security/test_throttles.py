"""API clients are throttled (DRF): past the rate, 429 as JSON with Retry-After;
signed-in clients per account, anonymous ones per address."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from tests.personas import World


@pytest.fixture(autouse=True)
def _fresh_counts() -> Iterator[None]:
    # The counts live in the cache, which outlives a test: start and leave it empty,
    # so neither these tests nor the next ones see another's requests.
    cache.clear()
    yield
    cache.clear()


def test_the_default_rates_are_far_above_what_a_client_needs():
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] == {"anon": "300/minute", "user": "3000/minute"}


def test_an_anonymous_client_is_throttled_at_the_default_rate(db):
    client = APIClient()
    # The API docs are the pages an anonymous client may fetch.
    statuses = [client.get("/api/docs/").status_code for _ in range(300)]
    assert set(statuses) == {200}

    throttled = client.get("/api/docs/")
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60

    # Another address is counted on its own.
    assert client.get("/api/docs/", REMOTE_ADDR="198.51.100.9").status_code == 200


def test_a_signed_in_client_is_throttled_per_account(world: World, monkeypatch: pytest.MonkeyPatch):
    # A lower rate than the default's 3,000 a minute, so the test sends 11 requests.
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"anon": "300/minute", "user": "10/minute"})
    alice = APIClient()
    alice.force_authenticate(world["alice"].login)
    assert {alice.get("/api/v1/mailboxes/").status_code for _ in range(10)} == {200}

    throttled = alice.get("/api/v1/mailboxes/")
    assert throttled.status_code == 429
    assert throttled["Content-Type"] == "application/json"
    assert throttled.json()["detail"].startswith("Request was throttled.")
    assert 0 < int(throttled["Retry-After"]) <= 60

    # bob, from the same address, has his own count.
    bob = APIClient()
    bob.force_authenticate(world["bob"].login)
    assert bob.get("/api/v1/mailboxes/").status_code == 200
