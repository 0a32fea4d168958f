"""The EWS connector (exchangelib) against the EWS test server (tests/fakes/ews), which checks
every request and answer against Microsoft's EWS schema."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from exchangelib.protocol import Protocol

from sync.connectors import ews, registry
from sync.connectors.base import INBOX, OAuthApp, ServerSettings
from sync.connectors.ews import EwsConnection, EwsProbe
from sync.connectors.interfaces import Change
from sync.errors import MessageError, PermanentError, ThrottledError, TransientError
from tests.fakes.ews.fixtures import EwsMailbox
from tests.fakes.ews.server import EwsServer, Record

pytestmark = pytest.mark.slow


def settings_for(server: EwsServer, address: str, password: str, **changes: object) -> ServerSettings:
    values: dict[str, object] = {
        "host": server.host,
        "port": server.port,
        "url": server.url,
        "ca_file": server.ca_file,
        "timeout": 10.0,
        "username": address,
        "password": password,
        "mailbox": address,
        "server_version": "Exchange2013",
    }
    return ServerSettings(**{**values, **changes})  # type: ignore[arg-type]


@pytest.fixture
def user(ews_mailbox: EwsMailbox) -> str:
    return ews_mailbox.address


@pytest.fixture
def mine(ews_mailbox: EwsMailbox) -> ServerSettings:
    return replace(ews_mailbox.settings, auth="basic")


def service_account(server: EwsServer) -> tuple[str, str]:
    address, password = f"svc-{secrets.token_hex(4)}@exchange.test", secrets.token_urlsafe(12)
    server.add_user(address, password)
    return address, password


class RequestLog:
    """The test server's record of the requests made for one mailbox since this was made."""

    def __init__(self, server: EwsServer, address: str) -> None:
        self.server, self.address, self.start = server, address.lower(), len(server.requests)

    def __iter__(self) -> Iterator[Record]:
        return iter([r for r in self.server.requests[self.start :] if r.mailbox.lower() == self.address])


@pytest.fixture
def requests_made(ews_server: EwsServer, user: str) -> RequestLog:
    return RequestLog(ews_server, user)


def mail(subject: str, *, to: str = "someone@contoso.test", size: int = 0) -> bytes:
    message = EmailMessage()
    message["From"] = "Carl <carl@example.org>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    message.set_content(f"{subject}. " + "z" * size)
    return message.as_bytes().replace(b"\n", b"\r\n")


def subject_of(raw: bytes | None) -> str:
    assert raw is not None
    line = next(line for line in raw.split(b"\r\n") if line.startswith(b"Subject: "))
    return line[len(b"Subject: ") :].decode()


def read(
    mine: ServerSettings, cursor: str = "", folder: str = INBOX, max_size: int | None = None
) -> list[Change]:
    with EwsConnection(mine) as source:
        return list(source.changes(folder, cursor, max_size=max_size))


def operations(requests_made: RequestLog) -> list[str]:
    return [r.operation for r in requests_made]


# -- signing in -------------------------------------------------------------------------------


@pytest.mark.parametrize("auth", ["basic", "ntlm", ""])
def test_signs_in_with_the_profiles_authentication(ews_server, user, mine, requests_made, auth):
    ews_server.deliver(user, mail("Hello"))
    changes = read(replace(mine, auth=auth))
    assert [subject_of(c.raw) for c in changes] == ["Hello"]
    # Auto Detect ("") takes what the server offers first; IIS offers Negotiate/NTLM before Basic.
    assert {r.auth for r in requests_made} == {auth or "ntlm"}


@pytest.mark.parametrize("auth", ["basic", "ntlm", ""])
def test_a_wrong_password_is_a_permanent_error_naming_the_mailbox(ews_server, mine, auth):
    with pytest.raises(PermanentError) as raised, EwsConnection(replace(mine, password="wrong", auth=auth)):
        pass
    assert raised.value.code == "authentication_failed"
    assert mine.mailbox in raised.value.message
    assert "password" in raised.value.message


def test_the_configured_version_is_spoken_without_asking_the_server(ews_server, mine, requests_made):
    read(replace(mine, server_version="Exchange2013"))
    assert {r.version for r in requests_made} == {"Exchange2013"}
    assert "ConvertId" not in operations(requests_made)  # exchangelib's version guess
    read(replace(mine, server_version=""))
    assert "ConvertId" in operations(requests_made)


def test_an_unknown_version_is_a_permanent_error_listing_the_known_ones(mine):
    with (
        pytest.raises(PermanentError, match="Exchange2016") as raised,
        EwsConnection(replace(mine, server_version="Exchange2099")),
    ):
        pass
    assert raised.value.code == "configuration_invalid"


def test_impersonation_reads_the_mailbox_acted_for(ews_server, user, requests_made):
    service, password = service_account(ews_server)
    ews_server.grant_impersonation(service, [user])
    ews_server.deliver(user, mail("For the user"))

    changes = read(settings_for(ews_server, service, password, act_as=user, mailbox=user))
    assert [subject_of(c.raw) for c in changes] == ["For the user"]
    assert {(r.mailbox, r.user) for r in requests_made} == {(user, service)}


def test_impersonation_denied_says_how_to_grant_it(ews_server, user):
    service, password = service_account(ews_server)  # no ApplicationImpersonation role
    mine = settings_for(ews_server, service, password, act_as=user, mailbox=user)
    with pytest.raises(PermanentError) as raised, EwsConnection(mine):
        pass
    assert raised.value.code == "impersonation_denied"
    assert "ApplicationImpersonation" in raised.value.message
    assert "New-ManagementRoleAssignment -Name serversync-impersonation" in raised.value.message


def test_a_mailbox_that_does_not_exist_is_a_permanent_error(ews_server):
    service, password = service_account(ews_server)
    ews_server.grant_impersonation(service, None)
    mine = settings_for(
        ews_server, service, password, act_as="gone@contoso.test", mailbox="gone@contoso.test"
    )
    with pytest.raises(PermanentError) as raised, EwsConnection(mine):
        pass
    assert raised.value.code == "mailbox_not_found"
    assert "gone@contoso.test" in raised.value.message


def test_autodiscover_that_finds_nothing_says_what_to_publish(mine):
    # .test names never resolve (RFC 2606): every Autodiscover step fails at once.
    lost = replace(mine, url="", autodiscover=True, mailbox="a@nowhere.test", username="a@nowhere.test")
    with pytest.raises(PermanentError) as raised:
        ews.discovered_url(lost)
    assert raised.value.code == "autodiscover_failed"
    assert "autodiscover.nowhere.test" in raised.value.message


def test_no_url_and_no_autodiscover_is_a_configuration_error(mine):
    with pytest.raises(PermanentError) as raised, EwsConnection(replace(mine, url="")):
        pass
    assert raised.value.code == "configuration_invalid"


def test_discovered_url_is_the_url_the_session_used(mine):
    assert ews.discovered_url(mine) == mine.url


# -- network and TLS --------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_server_gone_is_a_transient_error(mine):
    port = closed_port()
    gone = replace(mine, port=port, url=f"https://127.0.0.1:{port}/EWS/Exchange.asmx", timeout=3.0)
    with pytest.raises(TransientError) as raised, EwsConnection(gone):
        pass
    assert raised.value.code == "connection_refused"
    assert f"127.0.0.1:{port}" in raised.value.message


def test_a_server_that_does_not_answer_times_out_after_the_profiles_timeout(mine):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)  # accepts connections (the kernel does), never answers
        port = silent.getsockname()[1]
        stuck = replace(mine, port=port, url=f"https://127.0.0.1:{port}/EWS/Exchange.asmx", timeout=0.5)
        with pytest.raises(TransientError) as raised, EwsConnection(stuck):
            pass
    assert raised.value.code == "timeout"


def test_a_certificate_not_trusted_is_permanent_and_names_the_ca_bundle_setting(mine):
    with pytest.raises(PermanentError) as raised, EwsConnection(replace(mine, ca_file=None)):
        pass
    assert raised.value.code == "tls_certificate_invalid"
    assert "SYNC_CA_FILE" in raised.value.message


def test_each_session_trusts_its_own_ca_file_at_the_same_time(mine):
    """The HTTP adapter is one class for the process; the CA file still belongs to each call."""
    results: dict[str, object] = {}

    def run(name: str, chosen: ServerSettings) -> None:
        try:
            for _ in range(3):
                read(chosen)
            results[name] = "ok"
        except PermanentError as error:
            results[name] = error.code

    threads = [
        threading.Thread(target=run, args=("trusting", mine)),
        threading.Thread(
            target=run, args=("untrusting", replace(mine, ca_file=None, username="x" + mine.username))
        ),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"trusting": "ok", "untrusting": "tls_certificate_invalid"}


def test_a_session_leaves_no_cached_protocol_behind(mine):
    with EwsConnection(mine) as source:
        config = source.account.protocol.config
        source.folders(include_subfolders=False)
    with pytest.raises(KeyError):
        Protocol[config]


def test_server_busy_is_a_throttled_error_with_the_servers_back_off(ews_server, mine):
    with EwsConnection(mine) as source:
        ews_server.busy(1, back_off_ms=2500)
        with pytest.raises(ThrottledError) as raised:
            list(source.changes(INBOX, ""))
    # Raised at once (exchangelib's FaultTolerance would have slept 2.5 s and tried again).
    assert raised.value.retry_after == 2.5
    assert "ErrorServerBusy" in raised.value.message


# -- reading ---------------------------------------------------------------------------------


def test_new_mail_in_order_with_its_mime_and_exact_resumption(ews_server, user, mine):
    delivered = [mail(f"Message {n}") for n in range(3)]
    for raw in delivered:
        ews_server.deliver(user, raw)

    changes = read(mine)
    assert [c.raw is not None and c.raw.endswith(raw) for c, raw in zip(changes, delivered, strict=True)] == [
        True
    ] * 3
    assert [c.size for c in changes] == [len(c.raw or b"") for c in changes]
    assert all(c.received_on is not None and c.received_on.tzinfo is not None for c in changes)
    assert read(mine, changes[-1].cursor) == []

    ews_server.deliver(user, mail("Message 3"))
    # Every cursor resumes right after its own message, mid-page too.
    for n, change in enumerate(changes):
        assert [subject_of(c.raw) for c in read(mine, change.cursor)] == [
            f"Message {k}" for k in range(n + 1, 4)
        ]


def test_mime_is_fetched_in_batches_not_one_request_per_message(ews_server, user, mine, requests_made):
    for n in range(6):
        ews_server.deliver(user, mail(f"Batch {n}"))
    assert len(read(mine)) == 6
    assert operations(requests_made).count("GetItem") == 1


def test_several_sync_pages_and_a_crash_mid_page(ews_server, user, mine, requests_made, monkeypatch):
    monkeypatch.setattr(ews, "PAGE_SIZE", 2)
    for n in range(5):
        ews_server.deliver(user, mail(f"Paged {n}"))
    changes = read(mine)
    assert [subject_of(c.raw) for c in changes] == [f"Paged {n}" for n in range(5)]
    assert operations(requests_made).count("SyncFolderItems") == 3
    # Stored up to the first message of the second page, then a crash: the rest, once.
    resumed = read(mine, changes[2].cursor)
    assert [subject_of(c.raw) for c in resumed] == ["Paged 3", "Paged 4"]


def test_an_invalid_sync_state_reads_the_folder_again_once(ews_server, user, mine, requests_made):
    for n in range(2):
        ews_server.deliver(user, mail(f"Before {n}"))
    first = read(mine)
    ews_server.invalidate_sync_states()
    ews_server.deliver(user, mail("After"))

    again = read(mine, first[-1].cursor)
    assert [subject_of(c.raw) for c in again] == ["Before 0", "Before 1", "After"]
    assert len({c.server_id for c in again}) == 3
    codes = [r.code for r in requests_made if r.operation == "SyncFolderItems"]
    assert codes.count("ErrorInvalidSyncStateData") == 1
    # The cursor after the full re-read is a good one again.
    assert read(mine, again[-1].cursor) == []


@pytest.mark.parametrize(
    "cursor", ["", "not a cursor of ours", "1234:56", "ews1:0123456789ab:c3RhdGU=:", "ews9:x:y:z"]
)
def test_a_cursor_that_is_not_this_folders_starts_it_again(ews_server, user, mine, cursor):
    ews_server.deliver(user, mail("Kept"))
    assert [subject_of(c.raw) for c in read(mine, cursor)] == ["Kept"]


def test_messages_over_the_size_cap_come_without_their_bytes(ews_server, user, mine, requests_made):
    ews_server.deliver(user, mail("Small"))
    big = mail("Big", size=5000)
    ews_server.deliver(user, big)
    changes = read(mine, max_size=2000)
    assert [c.raw is None for c in changes] == [False, True]
    assert changes[1].size > len(big)  # the server's size, the Received: header delivery added included
    fetched = [r for r in requests_made if r.operation == "GetItem"]
    assert len(fetched) == 1


def test_sub_folders_at_every_depth_and_reading_one(ews_server, user, mine):
    ews_server.create_folder(user, "Inbox/Projects")
    ews_server.create_folder(user, "Inbox/Projects/2026")
    ews_server.deliver(user, mail("Deep"), folder="Inbox/Projects/2026")
    with EwsConnection(mine) as source:
        assert source.folders(include_subfolders=False) == [INBOX]
        assert source.folders(include_subfolders=True) == [INBOX, "INBOX/Projects", "INBOX/Projects/2026"]
    assert [subject_of(c.raw) for c in read(mine, folder="INBOX/Projects/2026")] == ["Deep"]

    ews_server.delete_folder(user, "Inbox/Projects")
    with pytest.raises(PermanentError) as raised:
        read(mine, folder="INBOX/Projects/2026")
    assert raised.value.code == "folder_not_found"


def test_removed_messages_go_to_deleted_items(ews_server, user, mine):
    ews_server.deliver(user, mail("Processed"))
    with EwsConnection(mine) as source:
        changes = list(source.changes(INBOX, ""))
        source.remove(INBOX, [c.server_id for c in changes])
        source.remove(INBOX, [c.server_id for c in changes])  # already gone: no failure
    assert read(mine) == []
    trash = ews_server.store.mailbox(user).by_distinguished("deleteditems")
    assert [subject_of(item.mime) for item in trash.items.values()] == ["Processed"]


# -- sending ---------------------------------------------------------------------------------


def test_send_delivers_to_every_recipient_bcc_included_and_saves_one_copy(ews_server, user, mine):
    raw = mail("Out", to=user)  # as sync.outgoing writes it: Bcc only in the envelope
    message_id = ews._message_id(raw)
    with EwsConnection(mine) as sending:
        result = sending.send(raw, mail_from=user, rcpt_to=[user, "hidden@elsewhere.test"])
    assert result.refused == {}
    assert [subject_of(r) for r in ews_server.messages(user)] == ["Out"]
    (outbound,) = [s for s in ews_server.outbound if s.raw.endswith(raw.split(b"\r\n\r\n", 1)[1])]
    assert outbound.recipients == ("hidden@elsewhere.test",)
    assert b"hidden@" not in ews_server.messages(user)[0]  # Bcc stays hidden

    with EwsConnection(mine) as sent:
        assert sent.find_sent(message_id)
        assert sent.find_sent(message_id.strip("<>"))
        assert not sent.find_sent(make_msgid(domain="example.test"))
        sent.save_to_sent([raw])  # SendAndSaveCopy saved it already
    assert len(ews_server.sent_items(user)) == 1


def test_save_to_sent_stores_what_sent_items_does_not_hold(ews_server, user, mine):
    copies = [mail("Copy 1"), mail("Copy 2")]
    with EwsConnection(mine) as sent:
        sent.save_to_sent(copies)
        sent.save_to_sent(copies)
        assert all(sent.find_sent(ews._message_id(raw)) for raw in copies)
    assert [subject_of(raw) for raw in ews_server.sent_items(user)] == ["Copy 1", "Copy 2"]


def test_a_bad_recipient_refuses_the_whole_message_in_its_verdict(ews_server, user, mine):
    with EwsConnection(mine) as sending:
        verdict = sending.submit(mail("Refused", to=user), mail_from=user, rcpt_to=[user, "nobody@"])
        with pytest.raises(MessageError, match="nobody@"):
            verdict.result()
        accepted = sending.submit(mail("Accepted", to=user), mail_from=user, rcpt_to=[user])
        assert accepted.result().refused == {}
    assert [subject_of(r) for r in ews_server.messages(user)] == ["Accepted"]


def test_a_mime_recipient_missing_from_the_envelope_is_not_sent_to(ews_server, user, mine):
    raw = mail("Mismatch", to="someone-else@contoso.test")
    with EwsConnection(mine) as sending, pytest.raises(MessageError, match=r"someone-else@contoso\.test"):
        sending.send(raw, mail_from=user, rcpt_to=[user])
    assert ews_server.sent_items(user) == []


# -- test & enable ---------------------------------------------------------------------------


def test_the_probe_finds_and_removes_the_marked_message(ews_server, user, mine, requests_made):
    probe = EwsProbe()
    ews_server.deliver(user, mail("Old"))
    since = probe.position(mine)
    assert "GetItem" not in operations(requests_made)  # the position is listed, no message read
    ews_server.deliver(user, mail("Unmarked"))
    assert not probe.take_marked(mine, "X-Serversync-Test", "token-1", since)
    marked = mail("Marked").replace(b"\r\n\r\n", b"\r\nX-Serversync-Test: token-1\r\n\r\n", 1)
    ews_server.deliver(user, marked)
    assert probe.take_marked(mine, "X-Serversync-Test", "token-1", since)
    assert [subject_of(c.raw) for c in read(mine)] == ["Old", "Unmarked"]
    probe.check_incoming(mine, include_subfolders=True)


def test_the_registry_serves_exchange_server_with_this_connector():
    kind = registry.KINDS["exchange_server"]
    assert kind.incoming is EwsConnection
    assert kind.outgoing is EwsConnection
    assert kind.has_folders


# -- hybrid modern authentication -------------------------------------------------------------


def oauth_settings(
    ews_server: EwsServer, mine: ServerSettings, client_id: str, secret: str
) -> ServerSettings:
    app = OAuthApp(
        tenant_id=ews_server.tenant.tenant_id,
        client_id=client_id,
        client_secret=secret,
        authority=ews_server.oauth_authority,
    )
    return replace(mine, auth="oauth", username="", password="", oauth=app)


def test_an_entra_id_app_reads_the_mailbox_it_acts_for(ews_server, user, mine, requests_made):
    app = ews_server.add_oauth_app([user])
    ews_server.deliver(user, mail("For the app"))
    changes = read(oauth_settings(ews_server, mine, app.client_id, app.secret))
    assert [subject_of(c.raw) for c in changes] == ["For the app"]
    assert {(r.auth, r.user) for r in requests_made} == {("oauth", f"app:{app.client_id}")}


def test_an_entra_id_app_without_exchanges_permission_is_refused_by_the_server(ews_server, user, mine):
    app = ews_server.add_oauth_app([user], role=False)
    with (
        pytest.raises(PermanentError) as raised,
        EwsConnection(oauth_settings(ews_server, mine, app.client_id, app.secret)),
    ):
        pass
    assert raised.value.code == "authentication_failed"
    assert "full_access_as_app" in raised.value.message
    assert app.client_id in raised.value.message


def test_an_entra_id_app_with_a_wrong_secret_is_an_authentication_failure(ews_server, mine):
    app = ews_server.add_oauth_app()
    with (
        pytest.raises(PermanentError) as raised,
        EwsConnection(oauth_settings(ews_server, mine, app.client_id, "not-the-secret")),
    ):
        pass
    assert raised.value.code == "authentication_failed"
    assert app.client_id in raised.value.message
