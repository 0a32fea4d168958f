"""Pytest fixtures for the real mail stack (registered from tests/conftest.py).

Each section belongs to one server; append new ones, do not rewrite others'.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest

from tests.harness.dovecot import Dovecot, DovecotError
from tests.harness.smtp_relay import SmtpRelay, doveadm_authenticator

# -- Dovecot ------------------------------------------------------------------


class MailUser(NamedTuple):
    address: str
    password: str


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    """One Dovecot per test worker process; tests keep apart through ``mail_user``.

    A test that stops it must start it again (``with dovecot.stopped(): ...``).
    """
    server = Dovecot()
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


# -- SMTP relay ---------------------------------------------------------------


@pytest.fixture(scope="session")
def smtp_relay(dovecot: Dovecot, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpRelay]:
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
