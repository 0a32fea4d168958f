from __future__ import annotations

import secrets

import pytest

from profiles.models import CredentialsSource
from tests import factories
from tests.sync.act.backends import ActStack


def dav_stack(radicale, settings) -> ActStack:
    settings.SYNC_CA_FILE = str(radicale.ca_pem_path)
    profile = factories.profile(
        "Test DAV",
        incoming_server_location="imap.example.test",
        outgoing_server_location="smtp.example.test",
        dav_server_url=radicale.url,
        credentials_source=CredentialsSource.USER_OR_QUEUE,
        connection_timeout_seconds=10,
    )

    def account(name: str) -> tuple[str, str, str]:
        password = secrets.token_hex(8)
        user = radicale.add_user(f"{name}-{secrets.token_hex(4)}", password)
        radicale.make_calendar(user, "calendar")
        radicale.make_address_book(user, "contacts")
        return f"{user}@serversync.test", user, password

    return ActStack("dav", profile, account)


@pytest.fixture(params=["dav"])
def act_stack(request, db, settings) -> ActStack:
    if request.param == "dav":
        return dav_stack(request.getfixturevalue("radicale"), settings)
    raise AssertionError(request.param)
