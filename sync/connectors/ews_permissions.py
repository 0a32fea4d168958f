"""Whether the account may reach a mailbox's calendar, contacts and tasks: test & enable
opens each (GetFolder on the distinguished folders, impersonating where the profile
says so) before anything syncs them, so that a missing right shows once, with its fix."""

from __future__ import annotations

from sync.connectors import ews_account, ews_errors
from sync.connectors.base import ServerSettings
from sync.errors import SyncError

FOLDERS = (("calendar", "the calendar"), ("contacts", "the contacts"), ("tasks", "the tasks"))


def check_act(settings: ServerSettings) -> None:
    """Open the calendar, contacts and tasks folders; the first refusal is raised."""
    account = None
    try:
        with ews_account.trusting(settings):
            account = ews_account.open_account(settings)
            for attribute, _what in FOLDERS:
                getattr(account, attribute)  # exchangelib's GetFolder on the distinguished folder
    except SyncError:
        raise
    except Exception as error:
        raise ews_errors.translate(error, settings) from error
    finally:
        ews_account.release(account)
