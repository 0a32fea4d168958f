"""The REST API fuzzed against its own schema (schemathesis, in-process).

What: every operation ``/api/schema/`` documents under ``/api/v1/``, loaded from the
running app through WSGI (the same document API clients get), with schemathesis'
examples, coverage and fuzzing phases, valid and invalid inputs alike.

As whom: an administrator (``admin``) and a plain CRM user (``alice``) of the
personas' world (tests/personas.py), each signed in with their own API token. In
about half the cases the generated id is swapped for a record the persona may see, so
retrieve, change, delete and the actions reach real rows, not only 404s.

Checks, on every answer: no 5xx (``not_a_server_error``), the body matches the
documented response schema (``response_schema_conformance``), and the status code
is one the operation documents (``status_code_conformance``).

Nothing leaves the machine: the world's profile points at a closed loopback port,
so "test connection" fails at once with "connection refused"; test & enable and
rollouts only queue work, handed to Celery on commit, which the test's transaction
never reaches. No operation is excluded. The console's HTML pages are not in the
schema, so not fuzzed here.

Bounded, repeatable: a fixed number of fuzzed examples per operation, no deadline
(a database round trip is not a performance test) and derandomized generation, so
CI sees the same cases every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from profiles.models import CredentialsSource
from tests.personas import World

pytestmark = pytest.mark.slow

APP = WSGIHandler()
SCHEMA = schemathesis.openapi.from_wsgi("/api/schema/?format=json", APP)
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
FUZZED_EXAMPLES = 10


def point_at_closed_port(world: World, port: int) -> None:
    """The world's profile tests with its own credentials, against a port that refuses."""
    profile = world.profile
    profile.credentials_source = CredentialsSource.PROFILE
    profile.username = profile.outgoing_username = "fuzz@example.test"
    profile.password = profile.outgoing_password = "fuzz-password"
    profile.incoming_server_location = profile.outgoing_server_location = "127.0.0.1"
    profile.incoming_port = profile.outgoing_port = port
    profile.full_clean()
    profile.save()


@pytest.fixture
def in_process(world: World, closed_port: int) -> Iterator[None]:
    """Requests reach the app in this test's transaction: Django closes "old" connections
    at each request's start and end, which would end it (its test client does the same)."""
    point_at_closed_port(world, closed_port)
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def own_ids(world: World, persona: str) -> dict[str, Any]:
    """The id of one record of each collection the persona may see, by collection."""
    person = world[persona]
    assert person.sync is not None
    return {
        "profiles": world.profile.pk,
        "mailboxes": person.mailbox.pk if person.mailbox else None,
        "users": person.crm_user.pk if person.crm_user else None,
        "queues": world.queue.pk,
        "accounts": person.account.pk if person.account else None,
        "contacts": person.contact.pk if person.contact else None,
        "leads": person.lead.pk if person.lead else None,
        "emails": person.email.pk if person.email else None,
        "alerts": person.sync.alert.pk,
        "receipts": person.sync.receipt.pk,
        "quarantined-messages": person.sync.quarantined.pk,
        "sync-runs": person.sync.sync_run.pk,
        "act-links": person.sync.act_link.pk if person.sync.act_link else None,
        "act-problems": person.sync.act_problem.pk if person.sync.act_problem else None,
        "rollouts": world.rollout.pk if world.rollout else None,
        "act-field-settings": "contact.job_title",
    }


def aim_at_own_record(case: schemathesis.Case[Any], ids: dict[str, Any]) -> None:
    collection = case.path.removeprefix("/api/v1/").split("/")[0]
    own = ids.get(collection)
    for name in ("id", "key"):
        if name in (case.path_parameters or {}) and own is not None:
            case.path_parameters[name] = own


@pytest.mark.parametrize("persona", ["admin", "alice"])
@SCHEMA.parametrize()
@SCHEMA.given(real_record=st.booleans())
@hypothesis.settings(
    max_examples=FUZZED_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api_answers_as_documented(
    case: schemathesis.Case[Any], real_record: bool, persona: str, world: World, in_process: None
) -> None:
    if real_record:
        aim_at_own_record(case, own_ids(world, persona))
    token, _ = Token.objects.get_or_create(user=world[persona].login)
    case.call_and_validate(headers={"Authorization": f"Token {token.key}"}, checks=CHECKS)


def test_test_connection_in_the_fuzz_is_refused_on_this_machine(world: World, in_process: None, api_as):
    """The fuzz's outward operation reaches only the closed port, and fails at once."""
    response = api_as("admin").post(f"/api/v1/profiles/{world.profile.pk}/test-connection/")

    assert response.status_code == 200
    outcomes = {result["direction"]: result["outcome"] for result in response.json()["results"]}
    assert outcomes == {"incoming": "failure", "outgoing": "failure"}
    assert "refused" in response.json()["last_test_message"].lower()
