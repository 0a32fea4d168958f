"""Pytest fixtures for the real mail stack (registered from tests/conftest.py).

Each section belongs to one server; append new ones, do not rewrite others'.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest

from tests.harness.dovecot import Dovecot, DovecotError
from tests.harness.oauth_issuer import OAuthIssuer
from tests.harness.radicale import Radicale, RadicaleError
from tests.harness.smtp_relay import SmtpRelay, doveadm_authenticator

# -- Dovecot ------------------------------------------------------------------


class MailUser(NamedTuple):
    address: str
    password: str


@pytest.fixture(scope="session")
def dovecot(oauth_issuer: OAuthIssuer) -> Iterator[Dovecot]:
    """One Dovecot per test worker process; tests keep apart through ``mail_user``.

    A test that stops it must start it again (``with dovecot.stopped(): ...``).
    XOAUTH2 and OAUTHBEARER logins are checked at ``oauth_issuer``, whose CA it shares.
    """
    server = Dovecot(ca=oauth_issuer.ca, oauth2_introspection_url=oauth_issuer.introspection_url)
    try:
        server.start()
    except DovecotError as error:
        server.close()
        pytest.fail(f"the test Dovecot did not start: {error}", pytrace=False)
    yield server
    server.close()


@pytest.fixture
def mail_user(dovecot: Dovecot) -> Callable[..., MailUser]:
    """Make a fresh mailbox nobody else uses: ``mail_user()`` or ``mail_user("queue")``."""

    def make(prefix: str = "user") -> MailUser:
        password = secrets.token_hex(8)
        address = dovecot.add_user(f"{prefix}-{secrets.token_hex(5)}", password)
        return MailUser(address, password)

    return make


# -- OAuth 2.0 issuer -----------------------------------------------------------


@pytest.fixture(scope="session")
def oauth_issuer() -> Iterator[OAuthIssuer]:
    """One token issuer per test worker process (tests/harness/oauth_issuer.py), HTTPS
    from the CA Dovecot and the relay use, so ``dovecot.ca_pem_path`` verifies it too."""
    issuer = OAuthIssuer().start()
    yield issuer
    issuer.stop()


# -- SMTP relay ---------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_relay(
    dovecot: Dovecot, oauth_issuer: OAuthIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SmtpRelay]:
    """One SMTP server per test worker process, delivering into ``dovecot``.

    STARTTLS on ``port``, SMTPS on ``smtps_port``; AUTH as any ``mail_user``
    (checked by Dovecot's auth service); certificate from Dovecot's CA, so
    ``smtp_relay.ca_file`` (or ``dovecot.ca_pem_path``) verifies both servers.
    ``smtp_relay.server_settings(...)`` gives connector settings.
    """
    relay = SmtpRelay(
        lmtp_host=dovecot.host,
        lmtp_port=dovecot.lmtp_port,
        authenticate=doveadm_authenticator(dovecot.config_path),
        check_token=oauth_issuer.may_sign_in,
        ca=dovecot.ca,
        workdir=tmp_path_factory.mktemp("smtp-relay"),
    )
    try:
        relay.start()
    except (OSError, RuntimeError) as error:  # TimeoutError is an OSError
        relay.stop()
        pytest.fail(f"the test SMTP relay did not start: {error!r}", pytrace=False)
    yield relay
    relay.stop()


@pytest.fixture(autouse=True)
def _smtp_relay_faults_cleared(request: pytest.FixtureRequest) -> None:
    """A fault a failed test left queued must not hit the next test of this worker."""
    if "smtp_relay" in request.fixturenames:
        request.getfixturevalue("smtp_relay").clear_faults()


# -- Radicale (CalDAV / CardDAV) ------------------------------------------------


class DavUser(NamedTuple):
    name: str
    password: str
    home_url: str
    calendar_url: str
    address_book_url: str


@pytest.fixture(scope="session")
def radicale() -> Iterator[Radicale]:
    """One Radicale per test worker process (HTTPS, ``radicale.ca_pem_path`` verifies it);
    tests keep apart through ``dav_user``."""
    server = Radicale()
    try:
        server.start()
    except RadicaleError as error:
        server.close()
        pytest.fail(f"the test Radicale did not start: {error}", pytrace=False)
    yield server
    server.close()


@pytest.fixture
def dav_user(radicale: Radicale) -> DavUser:
    """A fresh user nobody else uses, with a calendar (VEVENT and VTODO) and an address book."""
    password = secrets.token_hex(8)
    name = radicale.add_user(f"user-{secrets.token_hex(5)}", password)
    return DavUser(
        name,
        password,
        radicale.home_url(name),
        radicale.make_calendar(name, "calendar"),
        radicale.make_address_book(name, "contacts"),
    )
