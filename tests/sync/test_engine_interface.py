"""The engine's loop for connectors that offer only the interface
(sync.connectors.interfaces.Incoming: folders, changes since an opaque cursor,
remove) — the loop Graph and EWS will run through. Driven here by the IMAP
connector behind a wrapper that hides everything but the interface, against
the real test Dovecot."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Self

import pytest

from crm.models import EmailActivity
from mailboxes.models import FolderScope, Mailbox
from sync.connectors import registry
from sync.connectors.base import ServerSettings
from sync.connectors.imap import ImapConnection
from sync.connectors.interfaces import Change
from sync.errors import TransientError
from sync.incoming import sync_incoming
from sync.models import FolderCursor, Receipt, ReceiptOutcome
from tests import messages

pytestmark = pytest.mark.django_db


class InterfaceOnly:
    """IMAP seen through the Incoming interface alone; ``fail_after`` cuts a
    run off after that many changes, as a connection dropped mid-folder."""

    fail_after: int | None = None

    def __init__(self, settings: ServerSettings) -> None:
        self._imap = ImapConnection(settings)

    def __enter__(self) -> Self:
        self._imap.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._imap.__exit__(kind, error, tb)

    def folders(self, *, include_subfolders: bool) -> list[str]:
        return self._imap.folders(include_subfolders=include_subfolders)

    def changes(self, folder: str, cursor: str, *, max_size: int | None = None) -> Iterator[Change]:
        for number, change in enumerate(self._imap.changes(folder, cursor, max_size=max_size)):
            if self.fail_after is not None and number >= self.fail_after:
                raise TransientError("The connection dropped.", code="connection_lost")
            yield change

    def caught_up(self, folder: str) -> str | None:
        return self._imap.caught_up(folder)

    def remove(self, folder: str, server_ids: Sequence[str]) -> None:
        self._imap.remove(folder, server_ids)


@pytest.fixture
def interface_only(monkeypatch):
    kind = registry.KINDS["imap_smtp"]
    monkeypatch.setitem(registry.KINDS, "imap_smtp", replace(kind, incoming=InterfaceOnly))
    monkeypatch.setattr(InterfaceOnly, "fail_after", None)
    return InterfaceOnly


def subjects(mailbox: Mailbox) -> list[str]:
    emails = EmailActivity.objects.filter(receipts__mailbox=mailbox).order_by("subject")
    return list(emails.values_list("subject", flat=True))


def test_mail_becomes_activities_once_and_the_cursor_is_the_connectors(stack, interface_only):
    alice = stack.user_mailbox("alice")
    for n in range(3):
        stack.deliver(alice, messages.simple(to=alice.email_address, subject=f"Order {n}"))

    first = sync_incoming(mailbox=alice)
    again = sync_incoming(mailbox=alice)
    stack.deliver(alice, messages.simple(to=alice.email_address, subject="Order 3"))
    third = sync_incoming(mailbox=alice)

    assert (first.outcome, first.received, first.tracked) == ("success", 3, 3)
    assert (again.outcome, again.received) == ("success", 0)
    assert (third.received, third.tracked) == (1, 1)
    assert subjects(alice) == [f"Order {n}" for n in range(4)]
    cursor = FolderCursor.objects.get(mailbox=alice, folder="INBOX")
    assert cursor.token.endswith(":4")  # the connector's own shape, stored as given
    assert cursor.last_uid == 0  # the IMAP loop's columns are not this loop's


def test_a_run_cut_off_mid_folder_keeps_its_batches_and_the_next_doubles_nothing(
    stack, interface_only, settings
):
    settings.SYNC_BATCH_MESSAGES = 2
    alice = stack.user_mailbox("alice")
    for n in range(5):
        stack.deliver(alice, messages.simple(to=alice.email_address, subject=f"Order {n}"))
    interface_only.fail_after = 3

    cut = sync_incoming(mailbox=alice)

    assert cut.outcome == "failed"
    assert subjects(alice) == ["Order 0", "Order 1"]  # the first batch; the third message's rolled back
    interface_only.fail_after = None
    rest = sync_incoming(mailbox=alice)
    assert (rest.outcome, rest.received) == ("success", 3)
    assert subjects(alice) == [f"Order {n}" for n in range(5)]
    assert Receipt.objects.filter(mailbox=alice).count() == 5


def test_a_cursor_the_server_no_longer_honours_rereads_without_doubling(stack, interface_only):
    alice = stack.user_mailbox("alice")
    stack.deliver(alice, messages.simple(to=alice.email_address, subject="Kept"))
    sync_incoming(mailbox=alice)

    stack.dovecot.set_uidvalidity(alice.email_address, "INBOX", 777)
    again = sync_incoming(mailbox=alice)

    assert again.outcome == "success"
    assert subjects(alice) == ["Kept"]
    assert again.linked == 1  # found again, known: linked to the one activity, not tracked twice


def test_sub_folders_and_delete_after_processing(stack, interface_only):
    # Only queue and forward mailboxes may delete what they processed.
    support = stack.queue_mailbox(
        "support", folders=FolderScope.INBOX_AND_SUBFOLDERS, delete_email_after_processing=True
    )
    stack.dovecot.create_folder(support.email_address, "INBOX/Projects")
    stack.deliver(support, messages.simple(to=support.email_address, subject="Inbox mail"))
    with stack.imap(support) as imap:
        imap.append("INBOX/Projects", messages.simple(to=support.email_address, subject="Filed mail"))

    run = sync_incoming(mailbox=support)

    assert (run.outcome, run.received) == ("success", 2)
    assert subjects(support) == ["Filed mail", "Inbox mail"]
    outcomes = set(Receipt.objects.filter(mailbox=support).values_list("folder", "outcome"))
    assert outcomes == {("INBOX", ReceiptOutcome.TRACKED), ("INBOX/Projects", ReceiptOutcome.TRACKED)}
    with stack.imap(support) as imap:
        assert imap.select_folder("INBOX")[b"EXISTS"] == 0
        assert imap.select_folder("INBOX/Projects")[b"EXISTS"] == 0
