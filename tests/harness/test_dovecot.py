"""The test Dovecot itself, spoken to with the standard library only."""

from __future__ import annotations

import imaplib
import poplib
import ssl

import pytest

from tests.harness.dovecot import Dovecot, DovecotError

pytestmark = pytest.mark.slow

MESSAGE = b"From: a@example.test\r\nSubject: harness\r\nMessage-ID: <harness@example.test>\r\n\r\nhello\r\n"


def imap_login(dovecot: Dovecot, address: str, password: str) -> imaplib.IMAP4_SSL:
    client = imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=dovecot.ssl_context())
    client.login(address, password)
    return client


def imap_as_master(dovecot: Dovecot, target: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    client.starttls(dovecot.ssl_context())
    sasl = f"{target}\0{dovecot.master_user}\0{dovecot.master_password}".encode()
    client.authenticate("PLAIN", lambda _challenge: sasl)
    return client


def pop3_login(dovecot: Dovecot, user: str, password: str) -> poplib.POP3_SSL:
    client = poplib.POP3_SSL(dovecot.host, dovecot.pop3s_port, context=dovecot.ssl_context())
    client.user(user)
    client.pass_(password)
    return client


def test_delivered_mail_reads_back_over_imaps_with_verified_certificate(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, MESSAGE)

    client = imap_login(dovecot, user.address, user.password)
    client.select("INBOX", readonly=True)
    _, data = client.uid("FETCH", "1", "(BODY.PEEK[] INTERNALDATE)")
    client.logout()

    assert data[0][1].endswith(MESSAGE)
    assert b"INTERNALDATE" in data[0][0]


def test_delivered_mail_reads_back_over_pop3s(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, MESSAGE)

    client = pop3_login(dovecot, user.address, user.password)
    _, uidls, _ = client.uidl()
    _, lines, _ = client.retr(1)
    client.quit()

    assert len(uidls) == 1
    assert b"\r\n".join(lines).endswith(MESSAGE.rstrip(b"\r\n"))


def test_certificate_is_refused_by_a_client_that_does_not_trust_the_ca(dovecot):
    with pytest.raises(ssl.SSLCertVerificationError):
        imaplib.IMAP4_SSL(dovecot.host, dovecot.imaps_port, ssl_context=ssl.create_default_context())


def test_users_are_isolated(dovecot, mail_user):
    alice, bob = mail_user("alice"), mail_user("bob")
    dovecot.deliver(alice.address, MESSAGE)

    client = imap_login(dovecot, bob.address, bob.password)
    _, exists = client.select("INBOX", readonly=True)
    client.logout()

    assert exists == [b"0"]


def test_master_user_acts_for_a_mailbox_over_imap_and_pop3(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, MESSAGE)

    client = imap_as_master(dovecot, user.address)
    _, exists = client.select("INBOX", readonly=True)
    client.logout()
    pop3 = pop3_login(dovecot, f"{user.address}*{dovecot.master_user}", dovecot.master_password)
    count, _ = pop3.stat()
    pop3.quit()

    assert exists == [b"1"]
    assert count == 1


def test_master_user_denied_for_one_mailbox_keeps_the_other(dovecot, mail_user):
    allowed, denied = mail_user("allowed"), mail_user("denied")
    dovecot.deny_impersonation(denied.address)

    imap_as_master(dovecot, allowed.address).logout()
    with pytest.raises(imaplib.IMAP4.error, match="AUTHORIZATIONFAILED"):
        imap_as_master(dovecot, denied.address)
    with pytest.raises(poplib.error_proto, match="Authorization failed"):
        pop3_login(dovecot, f"{denied.address}*{dovecot.master_user}", dovecot.master_password)
    imap_login(dovecot, denied.address, denied.password).logout()


def test_wrong_master_password_is_an_authentication_failure(dovecot, mail_user):
    user = mail_user()
    client = imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    sasl = f"{user.address}\0{dovecot.master_user}\0wrong".encode()

    with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
        client.authenticate("PLAIN", lambda _challenge: sasl)


def test_sub_folders_and_the_sent_folder(dovecot, mail_user):
    user = mail_user()
    dovecot.create_folder(user.address, "INBOX/Projects")

    client = imap_login(dovecot, user.address, user.password)
    _, folders = client.list()
    client.logout()

    assert b'(\\HasNoChildren) "/" INBOX/Projects' in folders
    assert b'(\\HasNoChildren \\Sent) "/" Sent' in folders


def test_uidvalidity_changes_through_doveadm(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, MESSAGE)

    dovecot.set_uidvalidity(user.address, "INBOX", 4242)
    client = imap_login(dovecot, user.address, user.password)
    client.select("INBOX", readonly=True)
    _, uidvalidity = client.response("UIDVALIDITY")
    client.logout()

    assert uidvalidity == [b"4242"]


def test_stopped_server_refuses_connections_and_restarts_with_the_same_mail(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, MESSAGE)

    with dovecot.stopped(), pytest.raises(ConnectionRefusedError):
        imaplib.IMAP4(dovecot.host, dovecot.imap_port)
    client = imap_login(dovecot, user.address, user.password)
    _, exists = client.select("INBOX", readonly=True)
    client.logout()

    assert exists == [b"1"]


def test_a_broken_configuration_fails_with_dovecots_log():
    server = Dovecot()
    server.config_path.write_text(server.config_path.read_text() + "no_such_setting = 1\n")
    try:
        with pytest.raises(DovecotError, match="no_such_setting"):
            server.start()
    finally:
        server.close()
