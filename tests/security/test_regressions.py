"""What the schema fuzz (test_api_fuzz.py) found, each as the request a user would send
and the answer they now get: a 4xx with a message, never a 500, and a filter naming a
record the user cannot see answers as one naming a record that does not exist."""

from __future__ import annotations

import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from tests import factories
from tests.personas import World

BEYOND_64_BITS = 2**64


def deep_json(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("persona", ["admin", "alice"])
def test_json_nested_a_thousand_deep_is_refused_with_a_message(world: World, api_as, persona):
    response = api_as(persona).generic(
        "POST", "/api/v1/accounts/", deep_json(1000), content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "JSON parse error - nested deeper than 32 levels."}


def test_json_just_too_deep_is_refused_but_a_real_body_is_taken(world: World, api_as):
    client = api_as("alice")
    too_deep = {"name": "Deep Ltd", "description": json.loads(deep_json(32))}

    refused = client.post("/api/v1/accounts/", too_deep, format="json")
    taken = client.post("/api/v1/accounts/", {"name": "Shallow Ltd"}, format="json")

    assert refused.status_code == 400
    assert taken.status_code == 201


def test_a_moment_with_an_offset_postgresql_refuses_is_compared_in_utc(world: World, api_as):
    response = api_as("alice").get("/api/v1/appointments/", {"end__gt": "0233-04-16T17:18:17-19:17"})

    assert response.status_code == 200


def test_a_moment_beyond_the_calendar_in_utc_is_refused_with_a_message(world: World, api_as):
    response = api_as("alice").get("/api/v1/tasks/", {"due__lte": "9999-12-31T23:00:00-05:00"})

    assert response.status_code == 400
    assert response.json() == {"due__lte": ["Enter a valid date/time."]}


def test_a_search_with_a_null_character_answers_an_error_object(world: World, api_as):
    response = api_as("alice").get("/api/v1/act-problems/", {"search": "a\x00b"})

    assert response.status_code == 400
    assert response.json() == {"detail": "Null characters are not allowed."}


def test_ids_beyond_64_bits_are_refused_not_crashed_on(world: World, api_as):
    client = api_as("admin")

    apply = client.post(
        "/api/v1/mailboxes/apply-default-email-settings/", {"ids": [BEYOND_64_BITS]}, format="json"
    )
    owner = client.get("/api/v1/accounts/", {"owner": BEYOND_64_BITS})
    page = client.get("/api/v1/accounts/", {"page": BEYOND_64_BITS})
    record = client.get(f"/api/v1/accounts/{BEYOND_64_BITS}/")

    assert apply.status_code == 400
    assert "ids" in apply.json()
    assert owner.status_code == 400
    assert page.status_code == 404
    assert record.status_code == 404


@pytest.mark.parametrize(
    ("path", "name", "hidden"),
    [
        ("/api/v1/accounts/", "owner", lambda world: world["bob"].crm_user.pk),
        ("/api/v1/emails/", "owner", lambda world: world["bob"].crm_user.pk),
        ("/api/v1/emails/", "regarding_account", lambda world: world["bob"].account.pk),
        ("/api/v1/mailboxes/", "profile", lambda world: world.profile.pk),
        ("/api/v1/alerts/", "profile", lambda world: world.profile.pk),
        ("/api/v1/alerts/", "mailbox", lambda world: world["bob"].mailbox.pk),
        ("/api/v1/sync-filters/", "mailbox", lambda world: world["bob"].mailbox.pk),
    ],
)
def test_a_filter_naming_a_hidden_record_answers_as_one_that_does_not_exist(
    world: World, api_as, path, name, hidden
):
    client = api_as("alice")

    someone_elses = client.get(path, {name: hidden(world)})
    nobodys = client.get(path, {name: 999_999_999})

    assert someone_elses.status_code == nobodys.status_code == 400
    assert someone_elses.json() == nobodys.json()


def test_a_filter_naming_the_users_own_record_still_filters(world: World, api_as):
    alice = world["alice"]

    response = api_as("alice").get("/api/v1/accounts/", {"owner": alice.crm_user.pk})

    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [alice.account.pk]


def test_who_acknowledged_an_alert_is_null_until_someone_does_and_the_schema_says_so(world: World, api_as):
    alert = world["alice"].sync.alert

    answer = api_as("alice").get(f"/api/v1/alerts/{alert.pk}/").json()
    schema = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]["Alert"]

    assert answer["acknowledged_by"] is None
    assert schema["properties"]["acknowledged_by"]["nullable"] is True
    assert schema["properties"]["resolved_by"]["nullable"] is True


def test_a_link_without_synced_leaves_out_what_the_schema_calls_optional(world: World, api_as):
    link = world["alice"].sync.act_link

    answer = api_as("alice").get(f"/api/v1/act-links/{link.pk}/").json()
    schema = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]

    assert "crm_synced" not in answer
    assert "crm_synced" not in schema["ActLinkWithSynced"]["required"]
    assert "server_synced" not in schema["ActLinkWithSynced"]["required"]


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ("Alert", "acknowledged_by"),
        ("Alert", "resolved_by"),
        ("Rollout", "created_by"),
        ("Mailbox", "profile_name"),
        ("PersonalOptions", "username"),  # the schema documents users as a user sees them
    ],
)
def test_a_name_of_something_that_may_be_gone_is_nullable_in_the_schema(component, field):
    schemas = SchemaGenerator().get_schema(request=None, public=True)["components"]["schemas"]

    assert schemas[component]["properties"][field]["nullable"] is True


def test_a_crm_user_without_a_login_answers_a_null_username(world: World, api_as):
    unlinked = factories.crm_user("Nolan Login")

    answer = api_as("admin").get(f"/api/v1/users/{unlinked.pk}/").json()

    assert answer["username"] is None


def test_every_api_route_carries_the_shared_conventions():
    """The JSON depth cap, the scoped filters and the documented errors hold for every route:
    a new view that forgets ``ApiConventions`` fails here, not in production."""
    from config.api_urls import urlpatterns
    from web.api_base import ApiConventions

    views = {pattern.name: pattern.callback.cls for pattern in urlpatterns if pattern.name != "api-root"}

    assert {name for name, view in views.items() if not issubclass(view, ApiConventions)} == set()
    assert len(views) > 40


def test_a_view_that_forgets_the_conventions_still_gets_them_from_drfs_defaults():
    """The safety net under the test above: DRF's defaults are the same conventions, so a plain
    APIView refuses a deeply nested body with 400 and documents the shared error answers."""
    from rest_framework.generics import GenericAPIView
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from web.api_base import ApiSchema
    from web.api_filters import ApiFilterBackend
    from web.api_parsers import BoundedJSONParser

    class Plain(APIView):
        def post(self, request: Request) -> None:
            request.data  # noqa: B018  (parsing is the point)

    nested = "[" * 100 + "]" * 100
    request = APIRequestFactory().post("/plain/", nested, content_type="application/json")

    response = Plain.as_view(permission_classes=[], authentication_classes=[])(request)

    assert response.status_code == 400
    assert "nested deeper" in response.data["detail"]
    assert BoundedJSONParser in Plain.parser_classes
    assert GenericAPIView.filter_backends[0] is ApiFilterBackend
    assert isinstance(Plain().schema, ApiSchema)
