"""Failed sign-ins are locked out (django-axes), on the pages' sign-in and the admin
site's: per account and, separately, per address; the lockout ends after the cool-off
or when an administrator resets it."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from tests.personas import World

LOGIN_PAGES = ["/login/", "/admin/login/"]
GUESSER = "203.0.113.7"
ELSEWHERE = "198.51.100.20"


def _sign_in(client: Client, url: str, username: str, password: str, *, address: str = GUESSER):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=address)


def _signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("url", LOGIN_PAGES)
def test_fifty_wrong_passwords_lock_the_account_and_the_right_one_is_refused(world: World, url: str):
    client = Client()
    statuses = [_sign_in(client, url, "admin", f"guess-{n}").status_code for n in range(50)]

    limit = settings.AXES_FAILURE_LIMIT
    assert limit == 5
    # The form answers the first tries as usual; from the limit on, the lockout page.
    assert set(statuses[: limit - 1]) == {200}
    assert set(statuses[limit - 1 :]) == {429}

    refused = _sign_in(client, url, "admin", "pw-admin")
    assert refused.status_code == 429
    assert not _signed_in(client)
    page = refused.content.decode()
    assert "Too many failed sign-ins" in page
    assert "paused for 15 minutes" in page
    assert refused["Retry-After"] == str(15 * 60)

    # Per account: the same account from another address is still locked.
    assert _sign_in(Client(), url, "admin", "pw-admin", address=ELSEWHERE).status_code == 429


def test_the_address_is_locked_out_too_whatever_account_it_tries(world: World):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, "/login/", f"nobody-{n}", "guess")

    # alice's account had no failure, but the guesser's address is locked...
    assert _sign_in(client, "/login/", "alice", "pw-alice").status_code == 429
    assert not _signed_in(client)
    # ...and alice signs in from her own.
    assert _sign_in(Client(), "/login/", "alice", "pw-alice", address=ELSEWHERE).status_code == 302


def test_the_lockout_ends_after_the_cool_off(world: World):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        client = Client()
        for n in range(settings.AXES_FAILURE_LIMIT):
            _sign_in(client, "/login/", "alice", f"guess-{n}")
        assert _sign_in(client, "/login/", "alice", "pw-alice").status_code == 429

    with time_machine.travel(start + timedelta(minutes=14), tick=False):
        assert _sign_in(Client(), "/login/", "alice", "pw-alice").status_code == 429

    with time_machine.travel(start + timedelta(minutes=16), tick=False):
        client = Client()
        assert _sign_in(client, "/login/", "alice", "pw-alice").status_code == 302
        assert _signed_in(client)


def test_an_administrator_unlocks_with_axes_reset(world: World):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, "/admin/login/", "admin", f"guess-{n}")
    assert _sign_in(client, "/admin/login/", "admin", "pw-admin").status_code == 429

    call_command("axes_reset", stdout=io.StringIO())

    answer = _sign_in(client, "/admin/login/", "admin", "pw-admin")
    assert answer.status_code == 302
    assert _signed_in(client)


def test_a_successful_sign_in_forgets_earlier_failures(world: World):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, "/login/", "bob", f"guess-{n}")
    assert _sign_in(client, "/login/", "bob", "pw-bob").status_code == 302

    # A typo the next day is one failure, not the one that locks bob out.
    other = Client()
    assert _sign_in(other, "/login/", "bob", "typo").status_code == 200
    assert _sign_in(other, "/login/", "bob", "pw-bob").status_code == 302
