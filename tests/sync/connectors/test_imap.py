"""sync/connectors/imap.py against the real test Dovecot."""

from __future__ import annotations

import glob
import os
from datetime import UTC, datetime, timedelta

import pytest
from imapclient import IMAPClient

from sync.connectors import imap as imap_module
from sync.connectors.base import Tls
from sync.connectors.imap import ImapConnection
from sync.errors import PermanentError, TransientError
from tests.sync.connectors.conftest import add_user, message, refusal_while_busy, server_settings

pytestmark = pytest.mark.slow


def imap(dovecot, user, **overrides):
    return ImapConnection(server_settings(dovecot, user, protocol="imap", **overrides))


def flags_of(dovecot, user, folder="INBOX"):
    with IMAPClient(dovecot.host, dovecot.imaps_port, ssl_context=dovecot.ssl_context()) as client:
        client.login(user.address, user.password)
        client.select_folder(folder, readonly=True)
        return {uid: data[b"FLAGS"] for uid, data in client.fetch(client.search(), ["FLAGS"]).items()}


@pytest.mark.parametrize("tls", [Tls.IMPLICIT, Tls.STARTTLS, Tls.NONE])
def test_login_and_select_with_each_tls_mode(dovecot, mail_user, tls):
    user = mail_user()
    dovecot.deliver(user.address, message("one"))

    with imap(dovecot, user, tls=tls) as connection:
        state = connection.select("INBOX")

    assert state.name == "INBOX"
    assert state.exists == 1
    assert state.uidnext == 2
    assert state.highestmodseq is not None


def test_impersonation_reads_the_target_mailbox(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, message("for the target"))

    with imap(dovecot, None, act_as=user.address) as connection:
        connection.select("INBOX")
        fetched = list(connection.fetch_new(0))

    assert [m.raw.endswith(message("for the target")) for m in fetched] == [True]


def test_impersonation_denied_for_a_mailbox_is_permanent(dovecot, mail_user):
    user = mail_user()
    dovecot.deny_impersonation(user.address)

    with pytest.raises(PermanentError) as raised, imap(dovecot, None, act_as=user.address):
        pass

    assert raised.value.code == "impersonation_denied"
    assert user.address in raised.value.message
    assert f"{dovecot.host}:{dovecot.imaps_port}" in raised.value.message


def test_wrong_master_password_is_an_authentication_failure(dovecot, mail_user):
    user = mail_user()

    with pytest.raises(PermanentError) as raised, imap(dovecot, None, act_as=user.address, password="wrong"):
        pass

    assert raised.value.code == "authentication_failed"


def test_wrong_password_is_an_authentication_failure(dovecot, mail_user):
    user = mail_user()

    with pytest.raises(PermanentError) as raised, imap(dovecot, user, password="wrong"):
        pass

    assert raised.value.code == "authentication_failed"
    assert "Correct the user name and password" in raised.value.message


@pytest.mark.parametrize(
    ("kind", "tls", "says"),
    [
        ("wrong name", Tls.IMPLICIT, "wrong.example"),
        ("wrong name", Tls.STARTTLS, "wrong.example"),
        ("expired", Tls.IMPLICIT, "expired"),
        ("untrusted issuer", Tls.IMPLICIT, "issuer"),
    ],
)
def test_a_bad_certificate_is_permanent_and_described(
    dovecot_with_bad_certificate, mail_user, kind, tls, says
):
    server = dovecot_with_bad_certificate(kind)
    user = mail_user()

    with pytest.raises(PermanentError) as raised, imap(server, user, tls=tls):
        pass

    assert raised.value.code == "tls_certificate_invalid"
    assert says in raised.value.message
    assert "is valid from" in raised.value.message


def test_implicit_tls_on_the_plain_port_is_a_tls_failure(dovecot, mail_user):
    user = mail_user()

    with pytest.raises(PermanentError) as raised, imap(dovecot, user, port=dovecot.imap_port):
        pass

    assert raised.value.code == "tls_failed"


def test_unknown_host_is_dns_not_found(dovecot, mail_user):
    with pytest.raises(PermanentError) as raised, imap(dovecot, mail_user(), host="nonexistent.invalid"):
        pass

    assert raised.value.code == "dns_not_found"
    assert "nonexistent.invalid" in raised.value.message


def test_closed_port_is_connection_refused(dovecot, mail_user, closed_port):
    with pytest.raises(TransientError) as raised, imap(dovecot, mail_user(), port=closed_port):
        pass

    assert raised.value.code == "connection_refused"
    assert f"127.0.0.1:{closed_port}" in raised.value.message


def test_a_server_that_never_answers_is_a_timeout(dovecot, mail_user, silent_port):
    with pytest.raises(TransientError) as raised, imap(dovecot, mail_user(), port=silent_port, timeout=0.5):
        pass

    assert raised.value.code == "timeout"


def test_a_server_going_away_is_connection_lost(dovecot, mail_user):
    with imap(dovecot, mail_user()) as connection, dovecot.stopped(), pytest.raises(TransientError) as raised:
        connection.noop()

    assert raised.value.code == "connection_lost"


def test_connection_limit_is_server_busy(one_session_dovecot):
    user = add_user(one_session_dovecot)

    with imap(one_session_dovecot, user):
        refused = refusal_while_busy(lambda: imap(one_session_dovecot, user))

    assert refused.code == "server_busy"


def test_missing_folder_is_permanent(dovecot, mail_user):
    with imap(dovecot, mail_user()) as connection, pytest.raises(PermanentError) as raised:
        connection.select("INBOX/Nowhere")

    assert raised.value.code == "folder_not_found"
    assert "INBOX/Nowhere" in raised.value.message


def test_fetch_new_returns_only_messages_above_the_cursor_and_leaves_them_unread(dovecot, mail_user):
    user = mail_user()
    for subject in ("first", "second", "third"):
        dovecot.deliver(user.address, message(subject))

    with imap(dovecot, user) as connection:
        connection.select("INBOX")
        after_first = list(connection.fetch_new(1, batch_size=1))
        after_last = list(connection.fetch_new(3))

    assert [m.uid for m in after_first] == [2, 3]
    assert after_first[0].raw.endswith(message("second"))
    assert after_first[0].size == len(after_first[0].raw)
    assert abs(after_first[0].internaldate - datetime.now(UTC)) < timedelta(minutes=1)
    assert after_last == []
    assert [b"\\Seen" in flags for flags in flags_of(dovecot, user).values()] == [False] * 3


def test_messages_over_the_size_cap_are_listed_but_not_downloaded(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, message("small"))
    dovecot.deliver(user.address, message("big", body="x" * 5000))

    with imap(dovecot, user) as connection:
        connection.select("INBOX")
        fetched = list(connection.fetch_new(0, max_size=2000))

    assert [(m.uid, m.raw is None) for m in fetched] == [(1, False), (2, True)]
    assert fetched[1].size > 5000


def test_folders_below_inbox_are_listed_on_request(dovecot, mail_user):
    user = mail_user()
    for folder in ("INBOX/Projects", "INBOX/Projects/2026", "Archive"):
        dovecot.create_folder(user.address, folder)

    with imap(dovecot, user) as connection:
        inbox_only = connection.list_folders(include_subfolders=False)
        with_subfolders = connection.list_folders(include_subfolders=True)

    assert inbox_only == ["INBOX"]
    assert with_subfolders == ["INBOX", "INBOX/Projects", "INBOX/Projects/2026"]


def test_append_to_the_sent_folder(dovecot, mail_user):
    user = mail_user()
    sent_at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)

    with imap(dovecot, user) as connection:
        folder = connection.find_sent_folder()
        uid = connection.append(folder, message("sent copy"), msg_time=sent_at)
        connection.select(folder)
        fetched = list(connection.fetch_new(0))

    assert folder == "Sent"
    assert [m.uid for m in fetched] == [uid]
    assert fetched[0].raw == message("sent copy")
    assert fetched[0].internaldate == sent_at
    assert b"\\Seen" in flags_of(dovecot, user, "Sent")[uid]


def test_several_sent_copies_in_one_multiappend(dovecot, mail_user, monkeypatch):
    user = mail_user()
    copies = [message(f"sent copy {number}") for number in range(5)]
    monkeypatch.setattr(imap_module, "BATCH_BYTES", len(copies[0]) * 2)  # three commands: 2 + 2 + 1
    with imap(dovecot, user) as connection:
        assert connection._imap.has_capability("MULTIAPPEND")
        folder = connection.find_sent_folder()
        connection.append_all(folder, iter(copies))
        connection.select(folder)
        fetched = list(connection.fetch_new(0))
    assert [m.raw for m in fetched] == copies
    assert all(b"\\Seen" in flags for flags in flags_of(dovecot, user, "Sent").values())


def test_delete_removes_only_the_given_messages(dovecot, mail_user):
    user = mail_user()
    for subject in ("keep", "drop"):
        dovecot.deliver(user.address, message(subject))

    with imap(dovecot, user) as connection:
        connection.select("INBOX", readonly=False)
        connection.delete([2])
        present = connection.uids_present()

    assert present == {1}


def test_a_uidvalidity_change_shows_in_select(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, message("before"))
    with imap(dovecot, user) as connection:
        before = connection.select("INBOX")

    dovecot.set_uidvalidity(user.address, "INBOX", before.uidvalidity + 1000)
    with imap(dovecot, user) as connection:
        after = connection.select("INBOX")
        relisted = connection.uids_present()

    assert after.uidvalidity == before.uidvalidity + 1000
    assert relisted == {1}


def test_a_message_dovecot_cannot_read_ends_the_session_as_transient(dovecot, mail_user):
    # Dovecot answers an unreadable message file with BYE, so the run is retried
    # later (and the administrator sees the alert) rather than skipping mail.
    user = mail_user()
    dovecot.deliver(user.address, message("unreadable"))
    (path,) = glob.glob(f"{dovecot.dir}/mail/{user.address}/Maildir/new/*")
    os.chmod(path, 0)

    with imap(dovecot, user) as connection:
        connection.select("INBOX")
        with pytest.raises(TransientError) as raised:
            list(connection.fetch_new(0))

    assert raised.value.code == "connection_lost"
