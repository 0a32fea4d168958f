"""The SMTP relay: AUTH and TLS as a submission server has them, delivery into
the real Dovecot (read back over IMAP), refusals and injected faults."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from imapclient import IMAPClient

from tests.harness.smtp_relay import SmtpRelay, doveadm_authenticator

pytestmark = pytest.mark.slow


def message(sender: str, to: str, subject: str = "Hello") -> tuple[bytes, str]:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain="serversync.test")
    msg.set_content("Body line one.\n.A line that starts with a dot.\n")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")), msg["Message-ID"]


def tls_context(relay: SmtpRelay) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(relay.ca_file))


def submission(relay: SmtpRelay) -> smtplib.SMTP:
    client = smtplib.SMTP(relay.host, relay.port, timeout=10)
    client.starttls(context=tls_context(relay))
    return client


@pytest.fixture
def read_inbox(dovecot, smtp_relay):
    def read(user) -> list[bytes]:
        context = tls_context(smtp_relay)
        with IMAPClient(dovecot.host, dovecot.imaps_port, ssl=True, ssl_context=context, timeout=10) as imap:
            imap.login(user.address, user.password)
            imap.select_folder("INBOX", readonly=True)
            fetched = imap.fetch(imap.search("ALL"), ["BODY.PEEK[]"])
            return [data[b"BODY[]"] for _, data in sorted(fetched.items())]

    return read


def test_starttls_auth_plain_delivers_into_dovecot(smtp_relay, mail_user, read_inbox):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    raw, message_id = message(sender.address, recipient.address)

    with submission(smtp_relay) as client:
        client.login(sender.address, sender.password)  # PLAIN: smtplib's choice of the offered ones
        refused = client.sendmail(sender.address, [recipient.address], raw)

    assert refused == {}
    [delivered] = read_inbox(recipient)
    assert delivered.endswith(raw)  # Dovecot only prepends trace headers
    assert b"\r\n.A line that starts with a dot." in delivered
    assert smtp_relay.accepted_count(message_id) == 1
    [transaction] = [t for t in smtp_relay.transactions() if t.message_id == message_id]
    assert transaction.listener == "starttls"
    assert transaction.login == sender.address
    assert transaction.rcpt_to == transaction.delivered == (recipient.address,)
    assert transaction.reply == "250 OK"


def test_smtps_auth_login_delivers(smtp_relay, mail_user, read_inbox):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    raw, message_id = message(sender.address, recipient.address)

    context = tls_context(smtp_relay)
    with smtplib.SMTP_SSL(smtp_relay.host, smtp_relay.smtps_port, context=context, timeout=10) as c:
        c.ehlo()
        assert "LOGIN" in c.esmtp_features["auth"]
        c.user, c.password = sender.address, sender.password
        assert c.auth("LOGIN", c.auth_login)[0] == 235
        c.sendmail(sender.address, [recipient.address], raw)

    assert [m.endswith(raw) for m in read_inbox(recipient)] == [True]
    assert [t.listener for t in smtp_relay.transactions() if t.message_id == message_id] == ["smtps"]


def test_auth_is_neither_offered_nor_accepted_before_starttls(smtp_relay, mail_user):
    user = mail_user()
    with smtplib.SMTP(smtp_relay.host, smtp_relay.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert not client.has_extn("auth")
        code, reply = client.docmd("AUTH", "PLAIN")
        assert code == 538, reply
        code, _ = client.mail(user.address)
        assert code == 530  # authentication required


def test_wrong_password_is_535(smtp_relay, mail_user):
    user = mail_user()
    with submission(smtp_relay) as client, pytest.raises(smtplib.SMTPAuthenticationError) as raised:
        client.login(user.address, "not-the-password")
    assert raised.value.smtp_code == 535


def test_unknown_recipient_is_refused_at_rcpt_and_the_others_get_the_mail(smtp_relay, mail_user, read_inbox):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    stranger = "nobody-here@example.test"
    raw, message_id = message(sender.address, recipient.address)

    with submission(smtp_relay) as client:
        client.login(sender.address, sender.password)
        refused = client.sendmail(sender.address, [stranger, recipient.address], raw)

    assert list(refused) == [stranger]
    assert refused[stranger][0] == 550
    assert len(read_inbox(recipient)) == 1
    assert smtp_relay.accepted_count(message_id) == 1


def test_fail_next_answers_the_chosen_command_once(smtp_relay, mail_user, read_inbox):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    smtp_relay.fail_next(553, "5.7.1 Sender not owned by user", stage="MAIL")
    smtp_relay.fail_next(452, "4.2.2 Mailbox full", stage="RCPT")
    smtp_relay.fail_next(552, "5.3.4 Message too big", stage="DATA")
    raw, message_id = message(sender.address, recipient.address)

    with submission(smtp_relay) as client:
        client.login(sender.address, sender.password)
        with pytest.raises(smtplib.SMTPSenderRefused) as sender_refused:
            client.sendmail(sender.address, [recipient.address], raw)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as rcpt_refused:
            client.sendmail(sender.address, [recipient.address], raw)
        with pytest.raises(smtplib.SMTPDataError) as data_refused:
            client.sendmail(sender.address, [recipient.address], raw)
        assert client.sendmail(sender.address, [recipient.address], raw) == {}

    assert sender_refused.value.smtp_code == 553
    assert rcpt_refused.value.recipients[recipient.address][0] == 452
    assert data_refused.value.smtp_code == 552
    assert smtp_relay.accepted_count(message_id) == 1
    assert len(read_inbox(recipient)) == 1


def test_drop_next_at_data_delivers_but_never_answers(smtp_relay, mail_user, read_inbox):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    smtp_relay.drop_next(stage="DATA")
    raw, message_id = message(sender.address, recipient.address)

    with submission(smtp_relay) as client:
        client.login(sender.address, sender.password)
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.sendmail(sender.address, [recipient.address], raw)

    assert len(read_inbox(recipient)) == 1
    assert smtp_relay.accepted_count(message_id) == 1
    assert [t.reply for t in smtp_relay.transactions() if t.message_id == message_id] == [""]


def test_lmtp_down_gives_temporary_failures(smtp_relay, dovecot, mail_user):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    raw, _ = message(sender.address, recipient.address)
    with submission(smtp_relay) as client:
        client.login(sender.address, sender.password)
        with dovecot.stopped(), pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(sender.address, [recipient.address], raw)
    assert refused.value.recipients[recipient.address][0] == 451


def test_dovecot_down_makes_auth_a_temporary_failure(smtp_relay, dovecot, mail_user):
    user = mail_user()
    with (
        submission(smtp_relay) as client,
        dovecot.stopped(),
        pytest.raises(smtplib.SMTPAuthenticationError) as raised,
    ):
        client.login(user.address, user.password)
    assert raised.value.smtp_code == 454


def test_connections_are_counted_once_each_starttls_included(smtp_relay, mail_user):
    user = mail_user()
    before = smtp_relay.connection_count
    with submission(smtp_relay) as client:
        client.login(user.address, user.password)
        client.noop()
    with smtplib.SMTP_SSL(smtp_relay.host, smtp_relay.smtps_port, context=tls_context(smtp_relay)) as client:
        client.noop()
    assert smtp_relay.connection_count - before == 2


def test_drop_connections_closes_idle_clients(smtp_relay):
    with submission(smtp_relay) as client:
        client.noop()
        smtp_relay.drop_connections()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()


def test_stop_and_start_again_on_the_same_ports(smtp_relay, mail_user, read_inbox):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    ports = (smtp_relay.port, smtp_relay.smtps_port)
    client = submission(smtp_relay)
    smtp_relay.stop()
    try:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP(smtp_relay.host, smtp_relay.port, timeout=5)
    finally:
        smtp_relay.start()

    assert (smtp_relay.port, smtp_relay.smtps_port) == ports
    raw, _ = message(sender.address, recipient.address)
    with submission(smtp_relay) as client:
        client.login(sender.address, sender.password)
        client.sendmail(sender.address, [recipient.address], raw)
    assert len(read_inbox(recipient)) == 1


# -- strict line endings (on by default) -----------------------------------------


BARE_LF = (550, b"5.5.2 relay.serversync.test Error: bare <LF> received")
BARE_CR = (550, b"5.5.2 relay.serversync.test Error: bare <CR> received")
LINE_TOO_LONG = (500, b"5.5.2 relay.serversync.test Error: line too long (RFC 5321 4.5.3.1.6)")


def with_body(sender: str, to: str, body: bytes) -> bytes:
    return f"From: {sender}\r\nTo: {to}\r\nSubject: Lines\r\n\r\n".encode() + body


def refusal(relay: SmtpRelay, sender, recipient, raw: bytes) -> tuple[int, bytes]:
    """What the relay answers to the data ``raw``; the same session then delivers a correct message."""
    with submission(relay) as client:
        client.login(sender.address, sender.password)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(sender.address, [recipient.address], raw)
        correct = with_body(sender.address, recipient.address, b"ok\r\n")
        assert client.sendmail(sender.address, [recipient.address], correct) == {}
    return refused.value.smtp_code, refused.value.smtp_error


@pytest.mark.parametrize("size", [200, 5_000], ids=["small", "over-1-KB"])
def test_a_message_with_lf_line_ends_is_refused_as_postfix_does(size, smtp_relay, mail_user, read_inbox):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    raw, _ = message(sender.address, recipient.address)
    lf_only = raw.replace(b"\r\n", b"\n") + b"filler line\n" * (size // 12)

    assert refusal(smtp_relay, sender, recipient, lf_only) == BARE_LF  # not aiosmtpd's "Line too long"

    [delivered] = read_inbox(recipient)  # only the correct message that followed
    assert delivered.endswith(b"\r\n\r\nok\r\n")
    replies = [t.reply for t in smtp_relay.transactions() if t.mail_from == sender.address]
    assert replies == [f"{BARE_LF[0]} {BARE_LF[1].decode()}", "250 OK"]


def test_one_bare_lf_or_bare_cr_in_a_crlf_message_is_refused(smtp_relay, mail_user, read_inbox):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    lf = with_body(sender.address, recipient.address, b"one\r\ntwo\nthree\r\n")
    cr = with_body(sender.address, recipient.address, b"one\r\ntwo\rthree\r\n")
    cr_before_crlf = with_body(sender.address, recipient.address, b"one\r\r\n")

    assert refusal(smtp_relay, sender, recipient, lf) == BARE_LF
    assert refusal(smtp_relay, sender, recipient, cr) == BARE_CR
    assert refusal(smtp_relay, sender, recipient, cr_before_crlf) == BARE_CR
    assert len(read_inbox(recipient)) == 3  # the correct message after each refusal


def test_lines_may_have_1000_octets_with_crlf_the_transparency_dot_not_counted(
    smtp_relay, mail_user, read_inbox
):
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    longest = b"x" * 998 + b"\r\n"
    dotted = b"." + b"y" * 997 + b"\r\n"  # 1,001 octets on the wire once its dot is doubled
    raw = with_body(sender.address, recipient.address, longest + dotted)
    with submission(smtp_relay) as client:
        client.login(sender.address, sender.password)
        assert client.sendmail(sender.address, [recipient.address], raw) == {}
    [delivered] = read_inbox(recipient)
    assert delivered.endswith(raw)

    too_long = with_body(sender.address, recipient.address, b"z" * 999 + b"\r\n")
    assert refusal(smtp_relay, sender, recipient, too_long) == LINE_TOO_LONG
    assert len(read_inbox(recipient)) == 2


@pytest.fixture
def lenient_relay(dovecot, tmp_path):
    """A relay into the same Dovecot that leaves DATA to aiosmtpd (``strict=False``)."""
    relay = SmtpRelay(
        lmtp_host=dovecot.host,
        lmtp_port=dovecot.lmtp_port,
        authenticate=doveadm_authenticator(dovecot.config_path),
        ca=dovecot.ca,
        workdir=tmp_path / "lenient-relay",
        strict=False,
    ).start()
    yield relay
    relay.stop()


def test_without_strict_aiosmtpd_takes_small_lf_messages_and_calls_larger_ones_too_long(
    lenient_relay, mail_user, read_inbox
):
    """Why the test relay is strict: aiosmtpd reads DATA up to each CRLF, so an
    LF-only message is one "line", taken whole below 1001 octets and refused as
    too long above."""
    sender, recipient = mail_user("sender"), mail_user("rcpt")
    raw, _ = message(sender.address, recipient.address)
    small = raw.replace(b"\r\n", b"\n")
    with submission(lenient_relay) as client:
        client.login(sender.address, sender.password)
        assert client.sendmail(sender.address, [recipient.address], small) == {}
    assert refusal(lenient_relay, sender, recipient, small + b"filler line\n" * 100)[0] == 500
    assert len(read_inbox(recipient)) == 2
