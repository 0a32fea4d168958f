"""XOAUTH2 and OAUTHBEARER sign-in (sync/connectors/sasl.py) over IMAP, POP3 and SMTP:
real Dovecot checking real bearer tokens at the harness's issuer (its oauth2 passdb),
and the SMTP relay checking them at the same issuer."""

from __future__ import annotations

from dataclasses import replace
from email.message import EmailMessage
from email.utils import make_msgid

import pytest

from sync.connectors.base import Tls
from sync.connectors.imap import ImapConnection
from sync.connectors.pop3 import Pop3Connection
from sync.connectors.sasl import MECHANISMS
from sync.connectors.smtp import SmtpConnection
from sync.errors import PermanentError
from tests.harness.dovecot import Dovecot
from tests.harness.fixtures import MailUser
from tests.harness.oauth_issuer import OAuthIssuer
from tests.harness.smtp_relay import SmtpRelay
from tests.sync.connectors.conftest import message, server_settings

pytestmark = pytest.mark.slow


def token_for(issuer: OAuthIssuer, user: MailUser) -> str:
    return str(issuer.issue_for(issuer.register(), user.address)["access_token"])


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_imap_signs_in_with_a_bearer_token_and_reads_the_inbox(
    dovecot: Dovecot, oauth_issuer: OAuthIssuer, mail_user, mechanism: str
) -> None:
    user = mail_user()
    dovecot.deliver(user.address, message("Over OAuth"))
    settings = server_settings(
        dovecot, user, protocol="imap", password="", sasl_mechanism=mechanism,
        access_token=token_for(oauth_issuer, user),
    )  # fmt: skip
    with ImapConnection(settings) as connection:
        assert connection.select("INBOX").exists == 1


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_pop3_signs_in_with_a_bearer_token_and_lists_the_maildrop(
    dovecot: Dovecot, oauth_issuer: OAuthIssuer, mail_user, mechanism: str
) -> None:
    user = mail_user()
    dovecot.deliver(user.address, message("Over OAuth"))
    settings = server_settings(
        dovecot, user, protocol="pop3", password="", sasl_mechanism=mechanism,
        access_token=token_for(oauth_issuer, user),
    )  # fmt: skip
    with Pop3Connection(settings) as connection:
        assert len(connection.list_messages()) == 1


@pytest.mark.parametrize("protocol", ["imap", "pop3"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_a_token_dovecot_does_not_take_is_token_refused(
    dovecot: Dovecot, oauth_issuer: OAuthIssuer, mail_user, protocol: str, mechanism: str
) -> None:
    user, other = mail_user(), mail_user()
    # Another user's valid token: the issuer says active, Dovecot checks whose it is.
    settings = server_settings(
        dovecot, user, protocol=protocol, password="", sasl_mechanism=mechanism,
        access_token=token_for(oauth_issuer, other),
    )  # fmt: skip
    connection = ImapConnection(settings) if protocol == "imap" else Pop3Connection(settings)
    with pytest.raises(PermanentError) as refused:
        connection.connect()
    assert refused.value.code == "token_refused"
    assert user.address in refused.value.message


def outgoing(sender: str, to: str) -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, "Sent with a token"
    msg["Message-ID"] = make_msgid(domain="serversync.test")
    msg.set_content("Hello.")
    return msg.as_bytes().replace(b"\n", b"\r\n"), msg["Message-ID"]


@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_smtp_sends_with_a_bearer_token(
    smtp_relay: SmtpRelay, oauth_issuer: OAuthIssuer, mail_user, mechanism: str
) -> None:
    user, to = mail_user(), mail_user()
    settings = smtp_relay.server_settings(tls=Tls.STARTTLS, username=user.address)
    raw, message_id = outgoing(user.address, to.address)
    token = token_for(oauth_issuer, user)
    with SmtpConnection(replace(settings, sasl_mechanism=mechanism, access_token=token)) as connection:
        assert connection.send(raw, mail_from=user.address, rcpt_to=[to.address]).refused == {}
    assert smtp_relay.accepted_count(message_id) == 1
    assert [t.login for t in smtp_relay.transactions() if t.message_id == message_id] == [user.address]


def test_smtp_an_app_token_sends_for_a_granted_mailbox_only(
    smtp_relay: SmtpRelay, oauth_issuer: OAuthIssuer, mail_user
) -> None:
    """Client credentials (Exchange Online's app sign-in): the token names no user; the server
    lets the app in to the mailboxes granted to it."""
    granted, other = mail_user(), mail_user()
    app = oauth_issuer.register(granted={granted.address})
    token = oauth_issuer.token(
        {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": app.secret}, None
    )["access_token"]
    base = replace(smtp_relay.server_settings(), sasl_mechanism="XOAUTH2", access_token=token)
    with SmtpConnection(replace(base, username=granted.address)) as connection:
        raw, _ = outgoing(granted.address, other.address)
        connection.send(raw, mail_from=granted.address, rcpt_to=[other.address])
    with pytest.raises(PermanentError) as refused, SmtpConnection(replace(base, username=other.address)):
        pass
    assert refused.value.code == "token_refused"
