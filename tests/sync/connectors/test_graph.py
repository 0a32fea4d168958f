"""The Microsoft Graph connector against the Graph test server (tests/fakes/graph/),
through its real clients (msal for Entra ID, httpx for Graph). The contract suite
covers what every connector does; these cover what is Graph's own: sign-in with a
secret or a certificate and each way it fails, throttling, the per-mailbox
concurrency limit, delta paging and its cursors, sendMail's recipients."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, make_msgid

import pytest

from sync.connectors import graph
from sync.connectors.base import INBOX
from sync.connectors.graph import GraphMailbox, GraphProbe, GraphSender
from sync.connectors.graph_delta import DeltaCursor
from sync.connectors.graph_errors import retry_after
from sync.errors import MessageError, PermanentError, ThrottledError, TransientError
from tests.fakes.graph.entra import make_certificate
from tests.fakes.graph.fixtures import new_mailbox
from tests.fakes.graph.server import closed_port

pytestmark = pytest.mark.slow


def message(subject: str, *, to: str = "someone@contoso.onmicrosoft.com", extra: str = "") -> bytes:
    return (
        f"From: Carl <carl@example.org>\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}"
        f"Message-ID: {make_msgid(domain='example.org')}\r\n\r\n{subject}, the body.\r\n"
    ).encode()


def read(settings, cursor: str = "", folder: str = INBOX, **options):
    with GraphMailbox(settings) as mailbox:
        return list(mailbox.changes(folder, cursor, **options))


def subjects(changes) -> list[str]:
    return [
        next(line for line in c.raw.split(b"\r\n") if line.startswith(b"Subject:")).decode()[9:]
        for c in changes
    ]


def token_requests(server) -> int:
    return sum(1 for r in server.requests if r.path.endswith("/oauth2/v2.0/token"))


# -- signing in ------------------------------------------------------------------------


def test_a_certificate_signs_in_and_reads(graph_server):
    box = new_mailbox(graph_server, secret=False, certificate=True)
    assert box.settings.oauth.client_secret == ""
    box.deliver(message("By certificate"))
    assert subjects(read(box.settings)) == ["By certificate"]


def test_one_token_serves_every_session_of_an_app_registration(graph_server):
    box = new_mailbox(graph_server)
    before = token_requests(graph_server)
    for _ in range(3):
        read(box.settings)
    with GraphSender(box.settings):
        pass
    assert token_requests(graph_server) - before == 1
    # Another registration has a cache of its own.
    read(new_mailbox(graph_server).settings)
    assert token_requests(graph_server) - before == 2


def oauth_changed(settings, **changes):
    return replace(settings, oauth=replace(settings.oauth, **changes))


def sign_in_failure(settings) -> PermanentError:
    with pytest.raises(PermanentError) as raised, GraphMailbox(settings):
        pass
    return raised.value


def test_a_wrong_secret_names_the_app_and_where_to_find_the_value(graph_mailbox):
    error = sign_in_failure(oauth_changed(graph_mailbox.settings, client_secret="not-it"))
    assert error.code == "authentication_failed"
    assert "AADSTS7000215" in error.message
    assert graph_mailbox.app.client_id in error.message
    assert "Value (not its Secret ID)" in error.message
    assert "not-it" not in error.message


def test_an_expired_secret_says_to_create_a_new_one(graph_server):
    box = new_mailbox(graph_server)
    box.app.secret_expired = True
    error = sign_in_failure(box.settings)
    assert error.code == "credentials_expired"
    assert "client secret" in error.message
    assert "Certificates & secrets" in error.message


def test_an_unknown_client_id(graph_mailbox):
    error = sign_in_failure(
        oauth_changed(graph_mailbox.settings, client_id="11111111-2222-3333-4444-555555555555")
    )
    assert error.code == "authentication_failed"
    assert "AADSTS700016" in error.message
    assert "Application (client) ID" in error.message


def test_an_unknown_tenant(graph_mailbox):
    error = sign_in_failure(
        oauth_changed(graph_mailbox.settings, tenant_id="99999999-8888-7777-6666-555555555555")
    )
    assert error.code == "tenant_not_found"
    assert "Directory (tenant) ID" in error.message


def test_a_certificate_not_registered_for_the_app(graph_server):
    box = new_mailbox(graph_server, secret=False, certificate=True)
    other, _ = make_certificate("not registered")
    error = sign_in_failure(oauth_changed(box.settings, certificate_pem=other))
    assert error.code == "authentication_failed"
    assert "AADSTS700027" in error.message
    assert "Upload the profile's certificate" in error.message


def test_an_expired_certificate_is_named_before_asking_entra_id(graph_server):
    box = new_mailbox(graph_server, secret=False, certificate=True)
    now = datetime.now(UTC)
    expired, _ = make_certificate(
        "old", not_before=now - timedelta(days=400), not_after=now - timedelta(days=2)
    )
    before = token_requests(graph_server)
    error = sign_in_failure(oauth_changed(box.settings, certificate_pem=expired))
    assert error.code == "credentials_expired"
    assert f"expired on {(now - timedelta(days=2)):%Y-%m-%d}" in error.message
    assert token_requests(graph_server) == before


def test_no_admin_consent_names_the_permission_to_grant(graph_server):
    box = new_mailbox(graph_server, consented=False)
    error = sign_in_failure(box.settings)
    assert error.code == "consent_missing"
    assert "Mail.ReadWrite" in error.message
    assert "grant admin consent" in error.message


def test_sending_without_mail_send_names_it(graph_server):
    box = new_mailbox(graph_server, permissions=("Mail.ReadWrite",))
    with GraphSender(box.settings) as sender, pytest.raises(PermanentError) as raised:
        sender.send(message("Hi", to=box.address), mail_from=box.address, rcpt_to=[box.address])
    assert raised.value.code == "consent_missing"
    assert "Mail.Send" in raised.value.message


def test_an_application_access_policy_that_leaves_the_mailbox_out(graph_server):
    box = new_mailbox(graph_server, allowed_mailboxes=["someone-else@contoso.onmicrosoft.com"])
    error = sign_in_failure(box.settings)
    assert error.code == "mailbox_access_denied"
    assert "not allowed to access the mailbox" in error.message
    assert "application access policy" in error.message


def test_a_mailbox_that_does_not_exist(graph_mailbox):
    error = sign_in_failure(replace(graph_mailbox.settings, mailbox="nobody@contoso.onmicrosoft.com"))
    assert error.code == "mailbox_not_found"
    assert "nobody@contoso.onmicrosoft.com" in error.message


def test_a_user_without_an_exchange_online_licence(graph_server, graph_mailbox):
    graph_server.add_user("unlicensed@contoso.onmicrosoft.com", licensed=False)
    error = sign_in_failure(replace(graph_mailbox.settings, mailbox="unlicensed@contoso.onmicrosoft.com"))
    assert error.code == "mailbox_not_licensed"
    assert "licence that includes Exchange Online" in error.message


def test_a_certificate_from_an_untrusted_authority_is_refused(graph_mailbox):
    # The system's CAs only: the test server's is not among them. Verification is never off.
    error = sign_in_failure(replace(graph_mailbox.settings, ca_file=None))
    assert error.code == "tls_certificate_invalid"


def test_nothing_listening_is_a_transient_connection_failure(graph_mailbox):
    with closed_port() as sock:
        gone = f"https://127.0.0.1:{sock.getsockname()[1]}"
        settings = oauth_changed(replace(graph_mailbox.settings, url=gone), authority=gone)
        with pytest.raises(TransientError) as raised, GraphMailbox(settings):
            pass
    assert raised.value.code == "connection_refused"


def test_settings_without_an_app_registration(graph_mailbox):
    error = sign_in_failure(replace(graph_mailbox.settings, oauth=None))
    assert error.code == "credentials_missing"


def test_no_secret_reaches_a_message_or_a_repr(graph_mailbox):
    secret = graph_mailbox.app.secret
    assert secret
    assert secret not in repr(graph_mailbox.settings)
    error = sign_in_failure(replace(graph_mailbox.settings, mailbox="nobody@contoso.onmicrosoft.com"))
    assert secret not in error.message


# -- throttling and concurrency -----------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
def test_throttling_raises_with_the_servers_retry_after(graph_server, graph_mailbox, status):
    graph_mailbox.deliver(message("Waiting"))
    with GraphMailbox(graph_mailbox.settings) as mailbox:
        graph_server.throttle(1, retry_after=7, status=status)
        with pytest.raises(ThrottledError) as raised:
            list(mailbox.changes(INBOX, ""))
        assert raised.value.retry_after == 7
        # Not retried by the connector: the next request is the scheduler's, and it works.
        assert subjects(mailbox.changes(INBOX, "")) == ["Waiting"]


def test_retry_after_as_seconds_or_an_http_date():
    assert retry_after("120") == 120
    later = datetime.now(UTC) + timedelta(seconds=90)
    assert 85 <= retry_after(format_datetime(later, usegmt=True)) <= 90
    assert retry_after("soon") is None


def test_at_most_four_requests_per_mailbox_at_once(graph_server, graph_mailbox):
    for n in range(12):
        graph_mailbox.deliver(message(f"Parallel {n}"))
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(3):
                assert len(read(graph_mailbox.settings)) == 12
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []  # none throttled for MailboxConcurrency
    assert 1 < graph_server.peak_concurrency[graph_mailbox.address.lower()] <= 4


# -- delta ---------------------------------------------------------------------------------


@pytest.fixture
def small_pages(monkeypatch):
    monkeypatch.setattr(graph, "PAGE_SIZE", 3)


def delta_calls(server, address: str) -> int:
    return sum(
        1 for r in server.requests if r.mailbox == address.lower() and r.path.endswith("/messages/delta")
    )


def test_delta_pages_in_order_with_cursors_that_resume_mid_page(graph_server, graph_mailbox, small_pages):
    for n in range(7):
        graph_mailbox.deliver(message(f"Message {n}"))
    before = delta_calls(graph_server, graph_mailbox.address)
    changes = read(graph_mailbox.settings)
    assert subjects(changes) == [f"Message {n}" for n in range(7)]
    assert delta_calls(graph_server, graph_mailbox.address) - before == 3  # pages of 3, 3 and 1

    # After the fifth (mid-page): the rest of its page and the next; after the sixth (a page's end): the last.
    assert subjects(read(graph_mailbox.settings, changes[4].cursor)) == ["Message 5", "Message 6"]
    assert subjects(read(graph_mailbox.settings, changes[5].cursor)) == ["Message 6"]
    assert read(graph_mailbox.settings, changes[6].cursor) == []
    graph_mailbox.deliver(message("Message 7"))
    assert subjects(read(graph_mailbox.settings, changes[6].cursor)) == ["Message 7"]


def test_removed_messages_are_ignored_and_an_empty_last_page_moves_the_cursor_on(
    graph_server, graph_mailbox, monkeypatch
):
    monkeypatch.setattr(graph, "PAGE_SIZE", 1)
    graph_mailbox.deliver(message("Old"))
    (old,) = read(graph_mailbox.settings)
    graph_mailbox.deliver(message("New"))
    box = graph_server.mailbox(graph_mailbox.address)
    box.remove(box.messages[old.server_id])  # a page of its own: {"@removed": ...}

    (new,) = read(graph_mailbox.settings, old.cursor)
    assert subjects([new]) == ["New"]
    # The page after "New" held only the removal: its cursor is the round's end.
    assert "$deltatoken=" in DeltaCursor(**_fields(new.cursor)).link
    assert read(graph_mailbox.settings, new.cursor) == []


def _fields(cursor: str) -> dict:
    import json

    state = json.loads(cursor.removeprefix("graph1:"))
    return {"mailbox": state["m"], "folder_id": state["f"], "link": state["l"]}


def test_an_expired_token_mid_round_reads_the_folder_again(graph_server, graph_mailbox, small_pages):
    for n in range(5):
        graph_mailbox.deliver(message(f"Message {n}"))
    changes = read(graph_mailbox.settings)
    graph_server.expire_delta_tokens()
    assert subjects(read(graph_mailbox.settings, changes[3].cursor)) == [f"Message {n}" for n in range(5)]


def test_a_cursor_naming_another_host_is_never_followed(graph_mailbox):
    graph_mailbox.deliver(message("Kept"))
    (change,) = read(graph_mailbox.settings)
    real = _fields(change.cursor)
    with closed_port() as sock:
        # Followed, it would fail to connect; it must not even be tried.
        elsewhere = real["link"].replace(
            graph_mailbox.settings.url, f"https://127.0.0.1:{sock.getsockname()[1]}"
        )
        assert elsewhere != real["link"]
        for cursor in (
            DeltaCursor(real["mailbox"], real["folder_id"], elsewhere).encode(),
            DeltaCursor(real["mailbox"], real["folder_id"], real["link"].replace("https:", "http:")).encode(),
            DeltaCursor("other@contoso.onmicrosoft.com", real["folder_id"], real["link"]).encode(),
            DeltaCursor(real["mailbox"], "AAMkAnotherFolder", real["link"]).encode(),
            "graph1:{not json",
        ):
            assert subjects(read(graph_mailbox.settings, cursor)) == ["Kept"]


def test_messages_over_the_cap_are_not_downloaded(graph_server, graph_mailbox):
    graph_mailbox.deliver(message("Big", extra="X-Padding: " + "p" * 3000 + "\r\n"))
    before = sum(1 for r in graph_server.requests if r.path.endswith("/$value"))
    (change,) = read(graph_mailbox.settings, max_size=1000)
    assert change.raw is None
    assert change.size > 3000
    assert sum(1 for r in graph_server.requests if r.path.endswith("/$value")) == before


def test_child_folders_nest_as_paths(graph_server, graph_mailbox):
    graph_server.create_folder(graph_mailbox.address, "Inbox/Projects")
    graph_server.create_folder(graph_mailbox.address, "Inbox/Projects/Alpha")
    graph_mailbox.deliver(message("Deep"), "Inbox/Projects/Alpha")
    with GraphMailbox(graph_mailbox.settings) as mailbox:
        assert mailbox.folders(include_subfolders=True) == [INBOX, "INBOX/Projects", "INBOX/Projects/Alpha"]
        assert subjects(mailbox.changes("INBOX/Projects/Alpha", "")) == ["Deep"]
        with pytest.raises(PermanentError) as raised:
            list(mailbox.changes("INBOX/Gone", ""))
    assert raised.value.code == "folder_not_found"


# -- sending ---------------------------------------------------------------------------------


def test_bcc_recipients_get_the_message_without_seeing_the_bcc(graph_server):
    sender, hidden = new_mailbox(graph_server), new_mailbox(graph_server)
    raw = message("With Bcc", to=sender.address)
    with GraphSender(sender.settings) as sending:
        assert (
            sending.send(raw, mail_from=sender.address, rcpt_to=[sender.address, hidden.address]).refused
            == {}
        )
    (delivered,) = hidden.messages()
    assert b"With Bcc" in delivered
    assert b"Bcc:" not in delivered
    (copy,) = graph_server.sent_items(sender.address)
    assert f"Bcc: {hidden.address}".encode() in copy


def test_recipients_the_send_did_not_ask_for_refuse_the_message(graph_server, graph_mailbox):
    raw = message("Too many", to=f"{graph_mailbox.address}, stranger@example.org")
    with (
        GraphSender(graph_mailbox.settings) as sending,
        pytest.raises(MessageError, match=r"stranger@example\.org"),
    ):
        sending.send(raw, mail_from=graph_mailbox.address, rcpt_to=[graph_mailbox.address])
    assert graph_server.sent_items(graph_mailbox.address) == []


def test_graphs_refusal_of_a_message_is_a_message_error(graph_server, graph_mailbox):
    raw = b"From: x@contoso.onmicrosoft.com\r\nSubject: Nobody\r\n\r\nNo recipients.\r\n"
    with GraphSender(graph_mailbox.settings) as sending:
        verdict = sending.submit(raw, mail_from=graph_mailbox.address, rcpt_to=[])
        with pytest.raises(MessageError) as raised:
            verdict.result()
    assert "ErrorInvalidRecipients" in raised.value.message


def test_find_sent_escapes_quotes(graph_mailbox):
    raw = message("Quoted").replace(b"Message-ID: <", b"Message-ID: <it's-", 1)
    message_id = next(line for line in raw.split(b"\r\n") if line.startswith(b"Message-ID:"))[12:].decode()
    with GraphMailbox(graph_mailbox.settings) as mailbox:
        assert not mailbox.find_sent(message_id)
        mailbox.save_to_sent([raw])
        mailbox.save_to_sent([raw])  # already there: not stored twice
        assert mailbox.find_sent(message_id)
        assert mailbox.find_sent(message_id.strip("<>"))
    assert len(graph_mailbox.server.sent_items(graph_mailbox.address)) == 1


# -- test & enable ------------------------------------------------------------------------------


def test_the_probe_checks_sub_folders(graph_server, graph_mailbox):
    graph_server.create_folder(graph_mailbox.address, "Inbox/Projects")
    GraphProbe().check_incoming(graph_mailbox.settings, include_subfolders=True)
    denied = new_mailbox(graph_server, allowed_mailboxes=[])
    with pytest.raises(PermanentError):
        GraphProbe().check_incoming(denied.settings, include_subfolders=False)


def test_settings_for_another_cloud_use_its_scope(graph_server, graph_mailbox):
    # The scope is {url}/.default: a Graph URL Entra ID does not know is named as such.
    settings = replace(graph_mailbox.settings, url=graph_server.url + "/elsewhere")
    error = sign_in_failure(settings)
    assert error.code == "service_url_invalid"
    assert "Microsoft Graph URL" in error.message


def test_a_session_outliving_its_token_signs_in_again(graph_server, graph_mailbox):
    graph_mailbox.deliver(message("Long session"))
    graph_server.token_lifetime = 1
    try:
        with GraphMailbox(graph_mailbox.settings) as mailbox:
            time.sleep(1.2)  # the first token has expired; Graph would answer 401 to it
            assert subjects(mailbox.changes(INBOX, "")) == ["Long session"]
    finally:
        graph_server.token_lifetime = 3600


def test_removing_a_message_already_gone_is_no_error(graph_server, graph_mailbox):
    graph_mailbox.deliver(message("Twice"))
    (change,) = read(graph_mailbox.settings)
    with GraphMailbox(graph_mailbox.settings) as mailbox:
        mailbox.remove(INBOX, [change.server_id])
        # Moved to Deleted Items, it has another id (as Exchange's ids do): this one is gone.
        mailbox.remove(INBOX, [change.server_id])
    assert graph_mailbox.messages() == []
