"""No input makes the API answer 500: every writable field of every operation in
the OpenAPI schema gets junk, and every answer must be a 2xx or a 4xx. An
operation that takes no body (an action such as ``alerts/{id}/acknowledge/``)
gets the junk as its whole body instead."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.personas import World, build_world

JUNK = [
    None,
    "",
    "\x00nul",
    "x" * 5000,
    -1,
    0,
    10**20,
    1.5,
    True,
    [],
    {},
    ["a", {"b": 1}],
    "not-a-number",
    "2020-13-45T99:00:00Z",
    "ünïcødé ✉ 😀",
    "<script>alert(1)</script>",
]


def _operations() -> list[tuple[str, str]]:
    from django.urls import reverse  # noqa: F401 - ensure URLconf is loaded before schema generation
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [
        (path, method)
        for path, operations in schema["paths"].items()
        for method in ("post", "put", "patch")
        if method in operations
    ]


def _request_fields(schema: dict, path: str, method: str) -> list[str]:
    body = schema["paths"][path][method].get("requestBody", {})
    ref = body.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref")
    if not ref:
        return []
    component = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return list(component.get("properties", {}))


def _concrete(path: str, world: World) -> str:
    ids = {
        "profiles": world.profile.pk,
        "mailboxes": world["alice"].mailbox.pk,
        "users": world["alice"].crm_user.pk,
        "queues": world.queue.pk,
        "accounts": world["alice"].account.pk,
        "contacts": world["alice"].contact.pk,
        "leads": world["alice"].lead.pk,
        "emails": world["alice"].email.pk,
        "alerts": world["alice"].sync.alert.pk,
        "quarantined-messages": world["alice"].sync.quarantined.pk,
        "rollouts": world.rollout.pk,
    }
    resource = path.strip("/").split("/")[2]
    return path.replace("{id}", str(ids.get(resource, 0)))


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    with django_db_blocker.unblock():
        client = APIClient()
        return client.get("/api/schema/", {"format": "json"}).json()


@pytest.mark.django_db
@pytest.mark.parametrize(("path", "method"), _operations())
@pytest.mark.parametrize("persona", ["admin", "alice"])
def test_junk_in_every_field_is_a_4xx_never_a_500(schema, path, method, persona):
    world = build_world()
    client = APIClient()
    client.force_authenticate(world[persona].login)
    url = _concrete(path, world)
    fields = _request_fields(schema, path, method)
    takes_body = "requestBody" in schema["paths"][path][method]
    assert fields or not takes_body, f"{method.upper()} {path} has no documented request fields"
    bodies = [{field: junk} for field in fields for junk in JUNK] if fields else JUNK
    for body in bodies:
        response = getattr(client, method)(url, body, format="json")
        assert response.status_code < 500, (method, url, body, response.status_code)
    for raw, content_type in [
        ("{not json", "application/json"),
        ("<a/>", "application/xml"),
        ("[]", "application/json"),
    ]:
        response = getattr(client, method)(url, raw, content_type=content_type)
        assert 400 <= response.status_code < 500, (method, url, raw, response.status_code)
