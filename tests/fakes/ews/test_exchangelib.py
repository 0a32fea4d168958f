"""exchangelib, the real EWS client, against the EWS test server: what the connector relies on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import msal
import pytest
import requests
from exchangelib import (
    BASIC,
    DEEP,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    Account,
    FolderCollection,
    Message,
    OAuth2AuthorizationCodeCredentials,
    Q,
)
from exchangelib.errors import (
    ErrorAccessDenied,
    ErrorImpersonateUserDenied,
    ErrorInvalidIdMalformed,
    ErrorInvalidRecipients,
    ErrorInvalidSyncStateData,
    ErrorItemNotFound,
    ErrorNonExistentMailbox,
    ErrorServerBusy,
    ErrorUnsupportedQueryFilter,
    UnauthorizedError,
)
from exchangelib.folders import Folder
from exchangelib.items import HARD_DELETE
from oauthlib.oauth2 import OAuth2Token

from tests.fakes.ews import client
from tests.fakes.ews.fixtures import EwsMailbox, new_mailbox
from tests.fakes.ews.server import EwsServer

# They start the EWS test server (once per session) and talk to it.
pytestmark = pytest.mark.slow

Open = Callable[..., Account]


def mail(subject: str, to: str = "someone@example.org", sender: str = "sender@example.org") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '.')}@example.org>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello.\r\n"
    ).encode()


@pytest.fixture
def open_account(ews_server: EwsServer) -> Iterator[Open]:
    """Accounts as exchangelib opens them; each closed and forgotten after the test."""
    opened: list[Account] = []

    def make(mailbox: EwsMailbox, **options: object) -> Account:
        found = client.account(
            ews_server,
            str(options.pop("address", mailbox.address)),
            str(options.pop("username", mailbox.address)),
            str(options.pop("password", mailbox.password)),
            **options,  # type: ignore[arg-type]
        )
        opened.append(found)
        return found

    yield make
    for account in opened:
        client.forget(account)


def test_ntlm_sign_in_reads_the_inbox(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    ews_server.deliver(ews_mailbox.address, mail("ntlm hello"))

    account = open_account(ews_mailbox, auth=NTLM)

    assert [m.subject for m in account.inbox.all()] == ["ntlm hello"]
    mine = [r for r in ews_server.requests if r.mailbox == ews_mailbox.address]
    assert {(r.user, r.auth) for r in mine} == {(ews_mailbox.address, "ntlm")}


def test_basic_sign_in_with_version_guessing(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    account = open_account(ews_mailbox, auth=BASIC, version=None)

    assert account.inbox.total_count == 0
    # exchangelib asked with newer versions first; the server's schema speaks Exchange2013.
    assert account.version.api_version == "Exchange2013"
    assert account.version.build.major_version == 15
    mine = [r for r in ews_server.requests if r.mailbox == ews_mailbox.address]
    assert mine[0].operation == "ConvertId"
    assert {r.auth for r in mine} == {"basic"}


@pytest.mark.parametrize("auth", [NTLM, BASIC])
def test_a_wrong_password_is_refused_with_401(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open, auth: str
) -> None:
    account = open_account(ews_mailbox, auth=auth, password="not-the-password")

    with pytest.raises(UnauthorizedError, match="Invalid credentials"):
        account.inbox.refresh()
    assert not any(r.mailbox == ews_mailbox.address for r in ews_server.requests)


def test_the_401_offers_what_iis_offers(ews_server: EwsServer, ews_mailbox: EwsMailbox) -> None:
    response = requests.post(
        ews_server.url, data=b"", auth=(ews_mailbox.address, "wrong"), verify=ews_server.ca_file, timeout=10
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Negotiate, NTLM, Basic realm="127.0.0.1"'


def test_folders_under_the_inbox_shallow_and_deep_with_paging(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    for path in ("Inbox/Projects", "Inbox/Projects/2026", "Inbox/Archive", "Inbox/Later"):
        ews_server.create_folder(ews_mailbox.address, path)
    account = open_account(ews_mailbox)
    inbox = account.inbox

    shallow = sorted(f.name for f in inbox.children)
    deep = sorted(f.name for f in inbox.walk())
    # FindFolder pages of 2 (IndexedPageFolderView), read to the end by exchangelib.
    pages = FolderCollection(account=account, folders=[inbox]).find_folders(depth=DEEP, page_size=2)
    paged = sorted(f.name for f in pages)
    finds = [
        r for r in ews_server.requests if r.mailbox == ews_mailbox.address and r.operation == "FindFolder"
    ]

    assert shallow == ["Archive", "Later", "Projects"]
    assert deep == ["2026", "Archive", "Later", "Projects"]
    assert paged == deep
    assert finds[-1].notes.get("offset") == "2"  # the second page of two
    assert account.sent.name == "Sent Items"
    assert account.trash.name == "Deleted Items"
    assert account.msg_folder_root.name == "Top of Information Store"


def test_sync_folder_items_pages_and_resumes_from_its_state(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    for n in range(5):
        ews_server.deliver(ews_mailbox.address, mail(f"sync {n}"))
    inbox = open_account(ews_mailbox).inbox

    first = list(inbox.sync_items(only_fields=["subject", "size"], max_changes_returned=2))
    state = inbox.item_sync_state
    syncs = [
        r
        for r in ews_server.requests
        if r.mailbox == ews_mailbox.address and r.operation == "SyncFolderItems"
    ]

    assert [(kind, item.subject) for kind, item in first] == [("create", f"sync {n}") for n in range(5)]
    assert [r.notes["changes"] for r in syncs] == ["2", "2", "1"]  # until IncludesLastItemInRange
    assert all(item.size > len(mail("sync 0")) for _, item in first)  # the Received header is counted
    gone = first[0][1]
    inbox.account.bulk_delete([gone], delete_type=HARD_DELETE)
    ews_server.deliver(ews_mailbox.address, mail("sync 5"))

    second = list(inbox.sync_items(sync_state=state, only_fields=["subject"]))

    assert [(kind, getattr(item, "subject", None)) for kind, item in second] == [
        ("delete", None),
        ("create", "sync 5"),
    ]
    assert second[0][1].id == gone.id
    assert list(inbox.sync_items(sync_state=inbox.item_sync_state)) == []


def test_an_invalidated_sync_state_is_refused(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    inbox = open_account(ews_mailbox).inbox
    list(inbox.sync_items())
    state = inbox.item_sync_state

    ews_server.invalidate_sync_states()

    with pytest.raises(ErrorInvalidSyncStateData):
        list(inbox.sync_items(sync_state=state))
    inbox.item_sync_state = None  # a new sync starts cleanly
    assert list(inbox.sync_items()) == []


def test_mime_content_through_get_item(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    raw = mail("mime check")
    ews_server.deliver(ews_mailbox.address, raw)
    account = open_account(ews_mailbox)
    (listed,) = account.inbox.all().only("id", "changekey")

    (fetched,) = account.fetch(ids=[listed], only_fields=["mime_content", "message_id", "size"])

    assert fetched.mime_content.startswith(b"Received: from ")
    assert fetched.mime_content.endswith(raw)
    assert fetched.size == len(fetched.mime_content)
    assert fetched.message_id == "<mime.check@example.org>"
    assert listed.changekey


def test_send_and_save_copy_delivers_locally_and_outbound(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    colleague = new_mailbox(ews_server, "colleague")
    raw = (
        f"From: {ews_mailbox.address}\r\nTo: {colleague.address}, partner@example.org\r\n"
        "Subject: quarterly\r\nMessage-ID: <quarterly@exchange.test>\r\n\r\nFigures.\r\n"
    ).encode()
    account = open_account(ews_mailbox)
    sent_before = len(ews_server.outbound)

    Message(account=account, folder=account.sent, mime_content=raw).send(
        save_copy=True, copy_to_folder=account.sent
    )

    (arrived,) = ews_server.messages(colleague.address)
    assert arrived.startswith(b"Received: ")
    assert arrived.endswith(raw)
    assert ews_server.sent_items(ews_mailbox.address) == [raw]
    (outbound,) = ews_server.outbound[sent_before:]
    assert outbound.recipients == ("partner@example.org",)
    assert outbound.sender == ews_mailbox.address
    creates = [
        r for r in ews_server.requests if r.mailbox == ews_mailbox.address and r.operation == "CreateItem"
    ]
    assert [r.notes["disposition"] for r in creates] == ["SendAndSaveCopy"]
    # FindItem by InternetMessageId finds the copy, as the connector settles an interrupted send.
    (found,) = account.sent.filter(message_id="<quarterly@exchange.test>")
    assert found.subject == "quarterly"
    assert list(account.sent.filter(message_id="<other@exchange.test>")) == []


def test_move_changes_the_id_and_delete_to_deleted_items(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    ews_server.create_folder(ews_mailbox.address, "Inbox/Done")
    ews_server.deliver(ews_mailbox.address, mail("move me"))
    account = open_account(ews_mailbox)
    done = next(f for f in account.inbox.children if f.name == "Done")
    assert isinstance(done, Folder)
    (item,) = account.inbox.all()

    item.move(done)
    (moved,) = done.all()
    moved.move_to_trash()

    assert moved.id != item.id
    assert ews_server.messages(ews_mailbox.address) == []
    assert ews_server.messages(ews_mailbox.address, "Inbox/Done") == []
    assert [m.subject for m in account.trash.all()] == ["move me"]


def test_impersonation_allowed_for_a_granted_service_account(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    service = new_mailbox(ews_server, "svc")
    ews_server.grant_impersonation(service.address, [ews_mailbox.address])
    ews_server.deliver(ews_mailbox.address, mail("for the mailbox"))

    account = open_account(service, address=ews_mailbox.address, access_type=IMPERSONATION)

    assert [m.subject for m in account.inbox.all()] == ["for the mailbox"]
    last = ews_server.requests[-1]
    assert (last.mailbox, last.user) == (ews_mailbox.address, service.address)


def test_impersonation_denied_without_the_role_or_for_another_mailbox(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    service = new_mailbox(ews_server, "svc")
    other = new_mailbox(ews_server, "other")
    ews_server.grant_impersonation(service.address, [other.address])

    account = open_account(service, address=ews_mailbox.address, access_type=IMPERSONATION)

    with pytest.raises(ErrorImpersonateUserDenied):
        account.inbox.refresh()
    last = ews_server.requests[-1]
    assert (last.mailbox, last.user, last.code) == (
        ews_mailbox.address,
        service.address,
        "ErrorImpersonateUserDenied",
    )


def test_impersonating_an_unknown_mailbox(ews_server: EwsServer, open_account: Open) -> None:
    service = new_mailbox(ews_server, "svc")
    ews_server.grant_impersonation(service.address)

    account = open_account(service, address="nobody@exchange.test", access_type=IMPERSONATION)

    with pytest.raises(ErrorNonExistentMailbox):
        account.inbox.refresh()


def test_server_busy_carries_its_back_off(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    account = open_account(ews_mailbox)
    account.inbox.refresh()
    ews_server.busy(1, back_off_ms=2500)

    with pytest.raises(ErrorServerBusy) as raised:
        account.inbox.refresh()
    account.inbox.refresh()  # only the next request was refused

    assert raised.value.back_off == 2.5
    mine = [r.code for r in ews_server.requests if r.mailbox == ews_mailbox.address]
    assert mine[-2:] == ["ErrorServerBusy", "NoError"]


def test_filter_restrictions_the_server_lacks_are_refused_plainly(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    account = open_account(ews_mailbox)

    with pytest.raises(ErrorUnsupportedQueryFilter, match="does not implement this restriction"):
        list(account.inbox.filter(Q(subject__contains="x")))


def app_token(server: EwsServer, app_id: str, secret: str) -> OAuth2Token:
    """A token from the server's Entra ID tenant, fetched with msal as the connector does."""
    # requests lets REQUESTS_CA_BUNDLE override a session's verify (psf/requests#3829), so msal's
    # verify= alone may not reach it: a session that ignores the environment trusts the test CA.
    session = requests.Session()
    session.trust_env = False
    session.verify = server.ca_file
    application = msal.ConfidentialClientApplication(
        app_id,
        client_credential=secret,
        authority=f"{server.oauth_authority}/{server.tenant.tenant_id}",
        instance_discovery=False,
        http_client=session,
    )
    result = application.acquire_token_for_client(scopes=[f"{server.oauth_authority}/.default"])
    assert "access_token" in result, result
    return OAuth2Token({"access_token": result["access_token"], "token_type": "Bearer"})


def test_oauth_app_impersonates_the_mailboxes_it_may_reach(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    other = new_mailbox(ews_server, "other")
    app = ews_server.add_oauth_app([ews_mailbox.address])
    assert app.secret is not None
    credentials = OAuth2AuthorizationCodeCredentials(
        access_token=app_token(ews_server, app.client_id, app.secret)
    )
    ews_server.deliver(ews_mailbox.address, mail("via oauth"))

    allowed = open_account(ews_mailbox, auth=OAUTH2, access_type=IMPERSONATION, credentials=credentials)
    refused = open_account(other, auth=OAUTH2, access_type=IMPERSONATION, credentials=credentials)

    assert [m.subject for m in allowed.inbox.all()] == ["via oauth"]
    assert ews_server.requests[-1].auth == "oauth"
    with pytest.raises(ErrorImpersonateUserDenied):
        refused.inbox.refresh()


def test_oauth_token_without_exchange_role_is_refused(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    app = ews_server.add_oauth_app(role=False)
    assert app.secret is not None
    credentials = OAuth2AuthorizationCodeCredentials(
        access_token=app_token(ews_server, app.client_id, app.secret)
    )

    account = open_account(ews_mailbox, auth=OAUTH2, access_type=IMPERSONATION, credentials=credentials)

    with pytest.raises(UnauthorizedError):
        account.inbox.refresh()


def test_updates_change_the_change_key_and_show_in_sync(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    ews_server.deliver(ews_mailbox.address, mail("to update"))
    ews_server.deliver(ews_mailbox.address, mail("to flag"))
    inbox = open_account(ews_mailbox).inbox
    list(inbox.sync_items(only_fields=["subject"]))
    state = inbox.item_sync_state
    flagged, read = sorted(inbox.all(), key=lambda m: m.subject)  # "to flag", "to update"
    old_key = read.changekey

    read.is_read = True
    read.save(update_fields=["is_read"])
    ews_server.touch(ews_mailbox.address, "<to.flag@example.org>")
    changes = list(inbox.sync_items(sync_state=state, only_fields=["subject"]))

    assert read.changekey != old_key
    assert [kind for kind, _ in changes] == ["read_flag_change", "update"]
    assert (changes[0][1][0].id, changes[0][1][1]) == (read.id, True)
    assert changes[1][1].id == flagged.id
    assert changes[1][1].changekey != flagged.changekey


def test_a_bad_recipient_refuses_the_whole_message(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    account = open_account(ews_mailbox)
    raw = f"From: {ews_mailbox.address}\r\nTo: partner@example.org\r\nSubject: x\r\n\r\nx\r\n".encode()
    sent_before = len(ews_server.outbound)
    message = Message(account=account, folder=account.sent, mime_content=raw, bcc_recipients=["nobody@"])

    with pytest.raises(ErrorInvalidRecipients):
        message.send_and_save()

    assert ews_server.outbound[sent_before:] == []
    assert ews_server.sent_items(ews_mailbox.address) == []


def test_recipient_properties_replace_the_mime_headers_of_their_kind(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    account = open_account(ews_mailbox)
    raw = f"From: {ews_mailbox.address}\r\nTo: partner@example.org\r\nSubject: x\r\n\r\nx\r\n".encode()
    sent_before = len(ews_server.outbound)

    message = Message(account=account, mime_content=raw, bcc_recipients=["hidden@example.org"])
    message.send(save_copy=False)

    (sent,) = ews_server.outbound[sent_before:]
    assert sent.recipients == ("partner@example.org", "hidden@example.org")
    assert ews_server.sent_items(ews_mailbox.address) == []  # SendOnly keeps no copy


def test_another_mailbox_without_impersonation_is_access_denied(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    other = new_mailbox(ews_server, "other")

    account = open_account(ews_mailbox, address=other.address)  # delegate access, never granted here

    with pytest.raises(ErrorAccessDenied):
        account.inbox.refresh()
    assert ews_server.requests[-1].code == "ErrorAccessDenied"


def test_ntlm_sign_in_with_a_domain_name(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    username = "EWS\\" + ews_mailbox.address.split("@")[0]

    account = open_account(ews_mailbox, username=username, auth=NTLM)

    assert account.inbox.total_count == 0
    assert ews_server.requests[-1].user == ews_mailbox.address


def test_missing_and_malformed_ids(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    ews_server.deliver(ews_mailbox.address, mail("short-lived"))
    account = open_account(ews_mailbox)
    (item,) = account.inbox.all().only("id", "changekey")
    account.bulk_delete([item], delete_type=HARD_DELETE)

    gone, malformed = account.fetch(ids=[(item.id, item.changekey), ("not-an-id", None)])

    assert isinstance(gone, ErrorItemNotFound)
    assert isinstance(malformed, ErrorInvalidIdMalformed)


def test_save_only_into_a_folder_sends_nothing(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, open_account: Open
) -> None:
    ews_server.create_folder(ews_mailbox.address, "Inbox/Kept")
    account = open_account(ews_mailbox)
    kept = next(f for f in account.inbox.children if f.name == "Kept")
    raw = b"From: a@example.org\r\nTo: partner@example.org\r\nSubject: kept\r\n\r\nx\r\n"
    sent_before = len(ews_server.outbound)

    saved = Message(account=account, folder=kept, mime_content=raw).save()

    assert saved.id
    assert ews_server.messages(ews_mailbox.address, "Inbox/Kept") == [raw]  # as given: no delivery header
    assert ews_server.outbound[sent_before:] == []
