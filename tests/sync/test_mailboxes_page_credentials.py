"""Setting a mailbox's own credentials from its row on /mailboxes/ (console/views/mailbox_credentials.py):
the owner's fix for a failed sign-in. Write-only: no answer ever contains the password."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from mailboxes.models import Mailbox
from profiles.models import CredentialsSource
from tests import factories
from tests.personas import World

PASSWORD = "s3cret-Pa55word-71c2"


def client_for(world: World, name: str) -> Client:
    client = Client()
    client.force_login(world[name].login)
    return client


def post(client: Client, mailbox: Mailbox, data: dict, *, htmx: bool = True):
    extra = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    return client.post(f"/mailboxes/{mailbox.pk}/credentials/", data, **extra)


def stored(mailbox: Mailbox) -> tuple[str, str, bool]:
    mailbox.refresh_from_db()
    return mailbox.username, mailbox.password.reveal(), mailbox.allow_credentials_for_email_processing


def test_an_owner_sets_the_credentials_and_gets_the_row_back(world: World):
    alice = world["alice"].mailbox
    response = post(
        client_for(world, "alice"),
        alice,
        {
            "username": "alice@example.test",
            "password": PASSWORD,
            "allow_credentials_for_email_processing": "on",
        },
    )

    assert response.status_code == 200
    assert stored(alice) == ("alice@example.test", PASSWORD, True)
    html = response.content.decode()
    assert f'<tr id="mailbox-{alice.pk}"' in html
    assert "Credentials saved" in html
    assert "Change credentials" in html  # a password is stored now
    assert PASSWORD not in html


def test_a_blank_password_keeps_the_stored_one(world: World):
    alice = world["alice"].mailbox
    client = client_for(world, "alice")
    post(client, alice, {"username": "a@example.test", "password": PASSWORD})
    post(
        client,
        alice,
        {"username": "b@example.test", "password": "", "allow_credentials_for_email_processing": "on"},
    )
    assert stored(alice) == ("b@example.test", PASSWORD, True)


def test_a_password_is_needed_when_none_is_stored(world: World):
    alice = world["alice"].mailbox
    response = post(client_for(world, "alice"), alice, {"username": "alice@example.test", "password": ""})

    html = response.content.decode()
    assert response.status_code == 200  # htmx swaps the row with the form and its error
    assert "Enter the password: none is stored for this mailbox." in html
    assert f'<details id="credentials-{alice.pk}" open>' in html
    assert 'value="alice@example.test"' in html
    assert stored(alice) == ("", "", False)


def test_a_rejected_form_never_echoes_the_password(world: World):
    alice = world["alice"].mailbox
    response = post(client_for(world, "alice"), alice, {"username": "", "password": PASSWORD})
    html = response.content.decode()
    assert "This field is required." in html
    assert PASSWORD not in html
    assert stored(alice) == ("", "", False)


def test_without_htmx_the_browser_returns_to_the_row_with_a_message(world: World):
    alice = world["alice"].mailbox
    client = client_for(world, "alice")

    response = post(client, alice, {"username": "alice@example.test", "password": PASSWORD}, htmx=False)

    assert response.status_code == 302
    assert response["Location"].endswith(f"#mailbox-{alice.pk}")
    page = client.get(response["Location"]).content.decode()
    assert f"Credentials of {alice.email_address} saved" in page
    assert PASSWORD not in page


def test_a_rejected_form_without_htmx_reopens_it_and_says_why(world: World):
    alice = world["alice"].mailbox
    client = client_for(world, "alice")
    response = post(client, alice, {"username": "alice@example.test"}, htmx=False)
    page = client.get(response["Location"]).content.decode()
    assert "not saved: Enter the password" in page
    assert f'<details id="credentials-{alice.pk}" open>' in page


@pytest.mark.parametrize("viewer", ["bob", "quinn", "oscar"])
def test_nobody_else_sets_a_users_credentials(world: World, viewer: str):
    alice = world["alice"].mailbox
    response = post(client_for(world, viewer), alice, {"username": "x@example.test", "password": PASSWORD})
    assert response.status_code in (403, 404)
    assert stored(alice) == ("", "", False)


def test_a_queue_owner_sets_the_queues_and_an_administrator_anyones(world: World):
    post(client_for(world, "quinn"), world.queue_mailbox, {"username": "support", "password": PASSWORD})
    post(client_for(world, "admin"), world["bob"].mailbox, {"username": "bob", "password": PASSWORD})
    assert stored(world.queue_mailbox)[:2] == ("support", PASSWORD)
    assert stored(world["bob"].mailbox)[:2] == ("bob", PASSWORD)


def test_a_profile_that_holds_the_credentials_offers_no_form(world: World):
    shared = factories.profile(
        "Shared sign-in", credentials_source=CredentialsSource.PROFILE, username="svc", password=PASSWORD
    )
    Mailbox.objects.filter(pk=world["alice"].mailbox.pk).update(profile=shared)
    page = client_for(world, "alice").get("/mailboxes/").content.decode()
    row = re.search(rf'<tr id="mailbox-{world["alice"].mailbox.pk}".*?</tr>', page, re.S)
    assert row is not None
    assert "From the profile" in row.group(0)
    assert "credentials/" not in row.group(0)
    assert PASSWORD not in page
