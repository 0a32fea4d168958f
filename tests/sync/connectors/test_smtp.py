"""sync/connectors/smtp.py against the test relay delivering into the real Dovecot."""

from __future__ import annotations

import ssl
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink
from imapclient import IMAPClient

from sync.connectors.base import SendResult, Tls
from sync.connectors.smtp import SmtpConnection
from sync.errors import MessageError, PermanentError, TransientError
from tests.harness.dovecot import free_port
from tests.harness.smtp_relay import SmtpRelay, doveadm_authenticator

pytestmark = pytest.mark.slow


def message(sender: str, to: str, subject: str = "Hello", body: str = "Hello.\n") -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain="serversync.test")
    msg.set_content(body, cte="8bit" if not body.isascii() else None)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")), msg["Message-ID"]


@pytest.fixture
def sender(mail_user):
    return mail_user("sender")


@pytest.fixture
def recipient(mail_user):
    return mail_user("rcpt")


@pytest.fixture
def settings_for(smtp_relay, sender):
    """Connector settings for the relay, logged in as ``sender``."""

    def make(tls: Tls = Tls.STARTTLS, **changes):
        base = smtp_relay.server_settings(tls=tls, username=sender.address, password=sender.password)
        return replace(base, **changes)

    return make


@pytest.fixture
def inbox(dovecot, smtp_relay):
    """A user's INBOX read back over IMAPS, the certificate checked against the relay's CA file."""

    def read(user) -> list[bytes]:
        context = ssl.create_default_context(cafile=str(smtp_relay.ca_file))
        with IMAPClient(dovecot.host, dovecot.imaps_port, ssl=True, ssl_context=context, timeout=10) as imap:
            imap.login(user.address, user.password)
            imap.select_folder("INBOX", readonly=True)
            fetched = imap.fetch(imap.search("ALL"), ["BODY.PEEK[]"])
            return [data[b"BODY[]"] for _, data in sorted(fetched.items())]

    return read


@pytest.fixture
def relay_with_cert(dovecot, tmp_path):
    """Another relay into the same Dovecot, presenting the certificate given."""
    started: list[SmtpRelay] = []

    def make(cert: trustme.LeafCert, ca: trustme.CA) -> SmtpRelay:
        relay = SmtpRelay(
            lmtp_host=dovecot.host,
            lmtp_port=dovecot.lmtp_port,
            authenticate=doveadm_authenticator(dovecot.config_path),
            ca=ca,
            cert=cert,
            workdir=tmp_path / f"relay-{len(started)}",
        )
        started.append(relay.start())
        return relay

    yield make
    for relay in started:
        relay.stop()


@pytest.fixture
def plain_smtp_server():
    """An SMTP server without TLS or AUTH that accepts and drops everything."""
    controller = Controller(Sink(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller
    controller.stop()


@pytest.mark.parametrize("tls", [Tls.STARTTLS, Tls.IMPLICIT])
def test_send_with_auth_delivers_the_raw_bytes_into_dovecot(
    tls, smtp_relay, settings_for, sender, recipient, inbox
):
    raw, message_id = message(sender.address, recipient.address, body="Grüße, ünïcode 8-bit.\n.dot line\n")

    with SmtpConnection(settings_for(tls)) as smtp:
        result = smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address])

    assert result == SendResult(refused={})
    [delivered] = inbox(recipient)
    assert delivered.endswith(raw)  # Dovecot only prepends its trace headers
    [transaction] = [t for t in smtp_relay.transactions() if t.message_id == message_id]
    assert transaction.listener == ("smtps" if tls is Tls.IMPLICIT else "starttls")
    assert transaction.login == sender.address
    assert transaction.mail_from == sender.address


def test_a_batch_goes_over_one_connection(smtp_relay, settings_for, sender, recipient, inbox):
    before = smtp_relay.connection_count
    batch = [message(sender.address, recipient.address, subject=f"No. {n}") for n in range(3)]

    with SmtpConnection(settings_for()) as smtp:
        for raw, _ in batch:
            smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address])

    assert smtp_relay.connection_count - before == 1
    assert [smtp_relay.accepted_count(message_id) for _, message_id in batch] == [1, 1, 1]
    assert len(inbox(recipient)) == 3


def test_a_connection_the_server_closed_while_idle_is_reopened_once(
    smtp_relay, settings_for, sender, recipient, inbox
):
    first, second = (message(sender.address, recipient.address) for _ in range(2))
    before = smtp_relay.connection_count

    with SmtpConnection(settings_for()) as smtp:
        smtp.send(first[0], mail_from=sender.address, rcpt_to=[recipient.address])
        smtp_relay.drop_connections()
        smtp.send(second[0], mail_from=sender.address, rcpt_to=[recipient.address])

    assert smtp_relay.connection_count - before == 2
    assert [smtp_relay.accepted_count(first[1]), smtp_relay.accepted_count(second[1])] == [1, 1]
    assert len(inbox(recipient)) == 2


def test_a_421_to_mail_from_reconnects(smtp_relay, settings_for, sender, recipient):
    raw, message_id = message(sender.address, recipient.address)
    smtp_relay.fail_next(421, "4.4.2 Idle too long, closing", stage="MAIL")
    before = smtp_relay.connection_count

    with SmtpConnection(settings_for()) as smtp:
        smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address])

    assert smtp_relay.connection_count - before == 2
    assert smtp_relay.accepted_count(message_id) == 1


def test_a_lost_reply_to_the_data_is_outcome_unknown_and_never_resent(
    smtp_relay, settings_for, sender, recipient, inbox
):
    raw, message_id = message(sender.address, recipient.address)
    follow_up, follow_up_id = message(sender.address, recipient.address)
    smtp_relay.drop_next(stage="DATA")  # delivers, then hangs up instead of answering

    with SmtpConnection(settings_for()) as smtp:
        with pytest.raises(TransientError) as raised:
            smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address])
        smtp.send(follow_up, mail_from=sender.address, rcpt_to=[recipient.address])

    assert raised.value.code == "outcome_unknown"
    assert f"{smtp_relay.host}:{smtp_relay.port}" in raised.value.message
    assert smtp_relay.accepted_count(message_id) == 1
    assert smtp_relay.accepted_count(follow_up_id) == 1
    assert len(inbox(recipient)) == 2


def test_a_connection_lost_before_the_data_is_an_ordinary_transient_error(
    smtp_relay, settings_for, sender, recipient
):
    raw, message_id = message(sender.address, recipient.address)
    smtp_relay.drop_next(stage="RCPT")

    with SmtpConnection(settings_for()) as smtp, pytest.raises(TransientError) as raised:
        smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address])

    assert raised.value.code == "connection_lost"
    assert smtp_relay.accepted_count(message_id) == 0


def test_refused_recipients_are_reported_and_the_others_get_the_mail(
    smtp_relay, settings_for, sender, recipient, inbox
):
    stranger = "nobody-here@example.test"  # Dovecot's LMTP: 550 5.1.1 User doesn't exist
    raw, _ = message(sender.address, recipient.address)
    smtp_relay.fail_next(550, "5.7.1 Recipient rejected by policy", stage="RCPT")

    with SmtpConnection(settings_for()) as smtp:
        result = smtp.send(
            raw, mail_from=sender.address, rcpt_to=["policy@example.test", stranger, recipient.address]
        )

    assert result.refused == {
        "policy@example.test": "550 5.7.1 Recipient rejected by policy",
        stranger: f"550 5.1.1 <{stranger}> User doesn't exist: {stranger}",
    }
    assert len(inbox(recipient)) == 1


def test_every_recipient_refused_fails_the_message_and_the_connection_goes_on(
    smtp_relay, settings_for, sender, recipient
):
    raw, _ = message(sender.address, recipient.address)
    smtp_relay.fail_next(550, "5.1.1 No such user", stage="RCPT")
    before = smtp_relay.connection_count

    with SmtpConnection(settings_for()) as smtp:
        with pytest.raises(MessageError) as raised:
            smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address])
        smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address])

    assert raised.value.code == "all_recipients_refused"
    assert f"{recipient.address}: 550 5.1.1 No such user" in raised.value.message
    assert smtp_relay.connection_count - before == 1


def test_every_recipient_refused_for_now_is_transient(smtp_relay, settings_for, sender, recipient):
    raw, _ = message(sender.address, recipient.address)
    smtp_relay.fail_next(451, "4.4.1 Mailbox server unavailable", stage="RCPT")

    with SmtpConnection(settings_for()) as smtp, pytest.raises(TransientError) as raised:
        smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address])

    assert raised.value.code == "temporary_failure"


@pytest.mark.parametrize(
    ("stage", "code", "reply", "error", "error_code"),
    [
        ("DATA", 451, "4.3.0 Try again later", TransientError, "temporary_failure"),
        ("DATA", 421, "4.3.2 Shutting down", TransientError, "server_busy"),
        ("DATA", 552, "5.3.4 Message too big", MessageError, "message_refused"),
        ("MAIL", 552, "5.3.4 Message size exceeds limit", MessageError, "message_refused"),
        ("MAIL", 553, "5.7.1 Sender address not owned by user", PermanentError, "sender_refused"),
        ("MAIL", 452, "4.3.1 Insufficient system storage", TransientError, "temporary_failure"),
    ],
)
def test_refusals_map_to_the_error_classes(
    stage, code, reply, error, error_code, smtp_relay, settings_for, sender, recipient
):
    raw, message_id = message(sender.address, recipient.address)
    smtp_relay.fail_next(code, reply, stage=stage)

    with SmtpConnection(settings_for()) as smtp, pytest.raises(error) as raised:
        smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address])

    assert raised.value.code == error_code
    assert f"{code} {reply}" in raised.value.message
    assert smtp_relay.accepted_count(message_id) == 0


def test_wrong_password_is_authentication_failed(smtp_relay, settings_for):
    with pytest.raises(PermanentError) as raised, SmtpConnection(settings_for(password="wrong")):
        pass
    assert raised.value.code == "authentication_failed"
    assert "535" in raised.value.message
    assert f"{smtp_relay.host}:{smtp_relay.port}" in raised.value.message


def test_a_non_ascii_password_logs_in(dovecot, smtp_relay, recipient, inbox):
    password = "pässwörd-ß-€"
    address = dovecot.add_user(f"utf8-{free_port()}", password)
    raw, _ = message(address, recipient.address)
    settings = smtp_relay.server_settings(username=address, password=password)

    with SmtpConnection(settings) as smtp:
        smtp.send(raw, mail_from=address, rcpt_to=[recipient.address])

    assert len(inbox(recipient)) == 1


def test_act_as_logs_in_as_the_service_account_and_sends_as_the_mailbox(
    smtp_relay, settings_for, sender, recipient
):
    raw, message_id = message(recipient.address, recipient.address)

    with SmtpConnection(settings_for(act_as=recipient.address)) as smtp:
        smtp.send(raw, mail_from=recipient.address, rcpt_to=[recipient.address])

    [transaction] = [t for t in smtp_relay.transactions() if t.message_id == message_id]
    assert (transaction.login, transaction.mail_from) == (sender.address, recipient.address)


@pytest.mark.parametrize("tls", [Tls.STARTTLS, Tls.IMPLICIT])
def test_a_certificate_for_another_name_is_invalid(tls, relay_with_cert, sender):
    ca = trustme.CA()
    relay = relay_with_cert(ca.issue_cert("wrong.example"), ca)
    settings = relay.server_settings(tls=tls, username=sender.address, password=sender.password)

    with pytest.raises(PermanentError) as raised:
        SmtpConnection(settings).open()

    assert raised.value.code == "tls_certificate_invalid"
    message = raised.value.message
    assert "IP address mismatch" in message  # the settings name the host 127.0.0.1
    assert "The certificate names wrong.example" in message
    assert "valid from" in message


def test_an_expired_certificate_is_invalid(relay_with_cert, sender):
    ca = trustme.CA()
    now = datetime.now(tz=UTC)
    expired = ca.issue_cert(
        "localhost", "127.0.0.1", not_before=now - timedelta(days=30), not_after=now - timedelta(days=1)
    )
    relay = relay_with_cert(expired, ca)

    with pytest.raises(PermanentError) as raised:
        SmtpConnection(relay.server_settings(username=sender.address, password=sender.password)).open()

    assert raised.value.code == "tls_certificate_invalid"
    assert "certificate has expired" in raised.value.message
    assert f"to {(now - timedelta(days=1)):%Y-%m-%d}" in raised.value.message


def test_a_certificate_from_an_untrusted_authority_is_invalid(smtp_relay, settings_for, tmp_path):
    stranger_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(stranger_ca))

    with pytest.raises(PermanentError) as raised:
        SmtpConnection(settings_for(ca_file=str(stranger_ca))).open()

    assert raised.value.code == "tls_certificate_invalid"
    assert "unable to get local issuer certificate" in raised.value.message


def test_an_unknown_host_is_dns_not_found(settings_for):
    with pytest.raises(PermanentError) as raised:
        SmtpConnection(settings_for(host="nonexistent.invalid")).open()
    assert raised.value.code == "dns_not_found"
    assert "nonexistent.invalid" in raised.value.message


def test_a_closed_port_is_connection_refused(settings_for, closed_port):
    with pytest.raises(TransientError) as raised:
        SmtpConnection(settings_for(port=closed_port)).open()
    assert raised.value.code == "connection_refused"
    assert f"127.0.0.1:{closed_port}" in raised.value.message


def test_a_server_that_never_greets_is_a_timeout(settings_for, silent_port):
    with pytest.raises(TransientError) as raised:
        SmtpConnection(settings_for(port=silent_port, timeout=0.5)).open()
    assert raised.value.code == "timeout"


def test_implicit_tls_on_the_starttls_port_is_tls_failed(smtp_relay, settings_for):
    with pytest.raises(PermanentError) as raised:
        SmtpConnection(settings_for(Tls.IMPLICIT, port=smtp_relay.port)).open()
    assert raised.value.code == "tls_failed"
    assert f"{smtp_relay.host}:{smtp_relay.port}" in raised.value.message


def test_starttls_is_required_when_asked_for(plain_smtp_server, settings_for):
    settings = settings_for(port=plain_smtp_server.port, username="", password="")
    with pytest.raises(PermanentError) as raised:
        SmtpConnection(settings).open()
    assert raised.value.code == "starttls_unavailable"


def test_cleartext_only_when_tls_is_off(plain_smtp_server, settings_for, sender, recipient):
    raw, _ = message(sender.address, recipient.address)
    settings = settings_for(Tls.NONE, port=plain_smtp_server.port, username="", password="")
    with SmtpConnection(settings) as smtp:
        assert smtp.send(raw, mail_from=sender.address, rcpt_to=[recipient.address]).refused == {}

    with pytest.raises(PermanentError) as raised:
        SmtpConnection(replace(settings, username=sender.address, password=sender.password)).open()
    assert raised.value.code == "authentication_unavailable"


def test_a_message_without_recipients_is_a_message_error(settings_for, sender):
    raw, _ = message(sender.address, sender.address)
    with SmtpConnection(settings_for()) as smtp, pytest.raises(MessageError) as raised:
        smtp.send(raw, mail_from=sender.address, rcpt_to=[])
    assert raised.value.code == "no_recipients"
