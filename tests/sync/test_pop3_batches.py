"""A POP3 mailbox is stored in batches like an IMAP folder: the UIDLs seen are
appended by the database once per batch (a large mailbox no longer rewrites
the whole list for every message), a failure loses only the open batch, and
"delete after processing" removes only what was committed."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from crm.models import EmailActivity
from sync.incoming import sync_incoming
from sync.models import FolderCursor, Receipt
from tests import messages

pytestmark = pytest.mark.django_db


def pop3_mailbox(stack, name: str = "pat", **extra):
    return stack.user_mailbox(name, profile=stack.pop3_profile(), **extra)


@pytest.fixture(params=["postgresql", "other"])
def database(request, monkeypatch):
    """The UIDLs appended by PostgreSQL, and written whole as on any other
    database (SQLite, for make run), against the same PostgreSQL."""
    if request.param != "postgresql":
        monkeypatch.setattr(connection, "vendor", "sqlite")
    return request.param


def fill(stack, mailbox, count: int) -> None:
    for n in range(count):
        stack.deliver(mailbox, messages.simple(to=mailbox.email_address, subject=f"POP {n}"))


def cursor_writes(context: CaptureQueriesContext) -> int:
    return sum(
        q["sql"].startswith("UPDATE") and "sync_foldercursor" in q["sql"] for q in context.captured_queries
    )


def test_a_large_mailbox_writes_its_uidls_once_a_batch(stack, settings, database):
    settings.SYNC_BATCH_MESSAGES = 10
    pat = pop3_mailbox(stack)
    fill(stack, pat, 35)

    with CaptureQueriesContext(connection) as context:
        run = sync_incoming(mailbox=pat)

    assert (run.outcome, run.received, run.tracked) == ("success", 35, 35), run.error_text
    # Four batches (10, 10, 10, 5) and the list pruned to what the server holds, once.
    assert cursor_writes(context) == 5
    assert len(set(FolderCursor.objects.get(mailbox=pat).seen_uidls)) == 35
    assert sync_incoming(mailbox=pat).received == 0


def test_an_idle_pop3_poll_writes_no_uidls(stack):
    pat = pop3_mailbox(stack)
    fill(stack, pat, 2)
    sync_incoming(mailbox=pat)

    with CaptureQueriesContext(connection) as context:
        run = sync_incoming(mailbox=pat)

    assert (run.outcome, run.received) == ("success", 0)
    assert cursor_writes(context) == 0


def test_a_failure_mid_run_keeps_the_batches_committed_and_deletes_nothing(stack, settings):
    """The database refuses the 23rd message (a real trigger): the run fails, the
    two batches before it stay stored and in the cursor, and nothing is deleted
    from the server, which deletes only at QUIT; the next run takes the rest."""
    settings.SYNC_BATCH_MESSAGES = 10
    pat = stack.queue_mailbox("pat", profile=stack.pop3_profile(), delete_email_after_processing=True)
    fill(stack, pat, 25)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION test_refuse_receipt() RETURNS trigger AS $$ BEGIN "
            "IF NEW.subject = 'POP 22' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_receipt BEFORE INSERT ON sync_receipt "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_receipt()"
        )
    with pytest.raises(DatabaseError):
        sync_incoming(mailbox=pat)

    assert Receipt.objects.filter(mailbox=pat).count() == 20
    assert len(FolderCursor.objects.get(mailbox=pat).seen_uidls) == 20
    assert len(stack.pop3_listing(pat)) == 25

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_refuse_receipt ON sync_receipt")
    run = sync_incoming(mailbox=pat)
    assert (run.outcome, run.received) == ("success", 5), run.error_text
    assert EmailActivity.objects.filter(direction="incoming").count() == 25
    assert stack.pop3_listing(pat) == []
    sync_incoming(mailbox=pat)  # the UIDLs of messages no longer on the server are forgotten
    assert FolderCursor.objects.get(mailbox=pat).seen_uidls == []
