"""One mailbox's inbox held in IMAP IDLE (RFC 2177), on a thread of its own.

A watcher touches no database (a thousand threads would want a thousand
database connections): it puts what it sees on the listener's queue, new mail
and how its push goes, and the listener's main thread writes it. IDLE is ended
and issued again every ``PUSH_IDLE_RENEW_MINUTES`` (servers may drop it after
29 minutes); a server that does not offer IDLE is asked with NOOP every
``PUSH_NOOP_SECONDS`` instead, and its mailbox keeps its usual polling. A
dropped connection is opened again, after a pause that doubles while it fails.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

from sync.connectors.base import INBOX, ServerSettings
from sync.connectors.imap import ImapConnection
from sync.errors import SyncError

logger = logging.getLogger(__name__)

# How often a waiting watcher looks at its stop flag: a longer wait is a slower stop
# (a lease moves on in tens of seconds anyway), a shorter one costs CPU (1,000 watchers
# waking every 2 s took 13 % of a core in B3). Read at each wait, so tests may shorten it.
STOP_CHECK_SECONDS = 10.0
FIRST_RETRY_SECONDS = 1.0
LAST_RETRY_SECONDS = 300.0
NO_IDLE = (
    "The server does not offer IDLE: the listener asks it with NOOP every {seconds} s, "
    "and the mailbox keeps its usual polling."
)


@dataclass(frozen=True)
class Seen:
    """What a watcher saw: new mail (``changed``), or how its push goes now."""

    mailbox_id: int
    changed: bool = False
    state: str = ""
    method: str = ""
    detail: str = ""


class ImapWatcher(threading.Thread):
    def __init__(
        self,
        mailbox_id: int,
        settings: ServerSettings,
        seen: queue.Queue[Seen],
        *,
        renew_seconds: float,
        noop_seconds: float,
    ) -> None:
        super().__init__(name=f"idle-{mailbox_id}", daemon=True)
        self.mailbox_id = mailbox_id
        self.settings = settings
        self._seen = seen
        self._renew_seconds = renew_seconds
        self._noop_seconds = noop_seconds
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        pause = FIRST_RETRY_SECONDS
        while not self._stopping.is_set():
            try:
                with ImapConnection(self.settings) as imap:
                    count = imap.select(INBOX).exists
                    pause = FIRST_RETRY_SECONDS
                    # Mail that came while nobody watched (a listener died, a connection dropped).
                    self._put(changed=True)
                    self._hold(imap, count)
            except SyncError as error:
                self._put(state="failing", detail=f"{error} Trying again in {pause:.0f} s.")
                self._stopping.wait(pause)
                pause = min(pause * 2, LAST_RETRY_SECONDS)
            except Exception:  # a watcher must not die silently: the listener restarts dead ones
                logger.exception("IMAP watcher of mailbox %s failed", self.mailbox_id)
                raise

    def _hold(self, imap: ImapConnection, count: int) -> None:
        """Watch the inbox's message count; new mail is a count above the last one."""
        if imap.offers_idle():
            self._put(state="live", method="imap_idle")
            while not self._stopping.is_set():
                count = self._idle_once(imap, count)
        else:
            self._put(state="fallback", method="imap_noop", detail=NO_IDLE.format(seconds=self._noop_seconds))
            while not self._stopping.wait(self._noop_seconds):
                count = self._counted(count, imap.noop_count(count))

    def _idle_once(self, imap: ImapConnection, count: int) -> int:
        """One IDLE, until it is due again, the watcher stops or the connection looks closed."""
        imap.idle()
        renew_at = time.monotonic() + self._renew_seconds
        while not self._stopping.is_set():
            left = renew_at - time.monotonic()
            if left <= 0:
                break
            now = imap.idle_wait(min(left, STOP_CHECK_SECONDS), count)
            if now is None:
                break  # ending IDLE will tell a live connection from a closed one
            count = self._counted(count, now)
        imap.idle_done()
        return count

    def _counted(self, before: int, now: int) -> int:
        if now > before:
            self._put(changed=True)
        return now

    def _put(self, *, changed: bool = False, state: str = "", method: str = "", detail: str = "") -> None:
        self._seen.put(Seen(self.mailbox_id, changed=changed, state=state, method=method, detail=detail))
