"""The push listener (``manage.py listen``): new mail reaches the CRM in seconds.

A listener process takes its share of the pushable mailboxes through the
database (``sync.listener_shares``), holds IMAP IDLE on each one's inbox
(``sync.listener_imap``) and keeps Exchange Online mailboxes' Graph
subscriptions (``sync.listener_graph``); new mail wakes the mailbox's
incoming sync at once, coalesced (``sync.push``). Run several for more
mailboxes or for failover: a dead listener's leases lapse and the others take
its mailboxes.

One thread per IDLE connection, all waiting in ``poll()`` with the GIL released,
and one main thread that alone talks to the database. A thread is simple to
reason about (imapclient's blocking calls as they are: TLS, timeouts, the
connector's error translation) and cheap where it counts: its stack is
reserved, not resident (``THREAD_STACK_BYTES`` of address space each; a few
tens of KiB resident), so a thousand connections cost far less memory than
their TLS sessions do, and a waiting thread costs no CPU but a wake-up every
``STOP_CHECK_SECONDS``. A selector loop over the sockets would save the
address space, at the price of driving imapclient's IDLE by hand.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.db import close_old_connections, connection

from sync import listener_graph, listener_shares, push
from sync.errors import SyncError
from sync.listener_imap import ImapWatcher, Seen
from sync.models import PushLease, PushMethod, PushState
from sync.server_settings import incoming_settings

logger = logging.getLogger(__name__)

THREAD_STACK_BYTES = 1024 * 1024
# Graph subscriptions made or renewed in one beat at most: each is a round trip (and Graph's
# own to the webhook), and a beat must end well within the lease it renews.
GRAPH_CALLS_PER_BEAT = 10
# While announced mail waits for a run to let go, the listener looks this often.
PENDING_CHECK_SECONDS = 1.0


def new_owner() -> str:
    """A listener's token: where it runs, for people, and unique, for the leases."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Listener:
    def __init__(self, *, owner: str | None = None, capacity: int | None = None) -> None:
        self.owner = owner or new_owner()
        self.capacity = capacity or settings.PUSH_MAX_CONNECTIONS
        self.seen: queue.Queue[Seen] = queue.Queue()
        self.watchers: dict[int, ImapWatcher] = {}
        self.stopping = threading.Event()

    def run(self) -> None:
        """Listen until ``stop()``; then give every lease back."""
        threading.stack_size(THREAD_STACK_BYTES)
        try:
            while not self.stopping.is_set():
                self._safely(self.beat)
                self.handle(settings.PUSH_HEARTBEAT_SECONDS)
        finally:
            self.close()
            connection.close()  # this thread's own

    def stop(self) -> None:
        self.stopping.set()

    def beat(self) -> None:
        """Renew and take leases, and start or stop watchers to match."""
        close_old_connections()
        leases = listener_shares.beat(self.owner, capacity=self.capacity)
        held = {lease.mailbox_id: lease for lease in leases}
        for mailbox_id in set(self.watchers) - set(held):
            self.watchers.pop(mailbox_id).stop()
        graph_calls = GRAPH_CALLS_PER_BEAT
        for lease in leases:
            if lease.method != PushMethod.GRAPH:
                self._watch(lease)
            elif graph_calls > 0 and listener_graph.needs_call(lease):
                graph_calls -= 1
                self._safely(lambda lease=lease: listener_graph.keep(self.owner, lease))  # type: ignore[misc]

    def handle(self, seconds: float) -> None:
        """Write what the watchers saw, and wake announced mail, for ``seconds``."""
        deadline = time.monotonic() + seconds
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            try:
                first = self.seen.get(timeout=min(left, PENDING_CHECK_SECONDS))
            except queue.Empty:
                self._safely(self._wake_pending)
                continue
            self._safely(lambda first=first: self._take_in([first, *self._drain()]))  # type: ignore[misc]

    def close(self) -> None:
        for watcher in self.watchers.values():
            watcher.stop()
        for watcher in self.watchers.values():
            watcher.join(timeout=10)
        self.watchers.clear()
        self._safely(lambda: listener_shares.leave(self.owner))

    # -- internals ----------------------------------------------------------------------

    def _watch(self, lease: PushLease) -> None:
        try:
            server = incoming_settings(lease.mailbox)
        except SyncError as error:
            listener_shares.record(self.owner, [_failing(lease.mailbox_id, str(error))])
            return
        watcher = self.watchers.get(lease.mailbox_id)
        if watcher is not None and watcher.is_alive() and watcher.settings == server:
            return
        if watcher is not None:
            watcher.stop()  # the mailbox's settings changed: connect anew
        watcher = ImapWatcher(
            lease.mailbox_id,
            server,
            self.seen,
            renew_seconds=settings.PUSH_IDLE_RENEW_MINUTES * 60,
            noop_seconds=settings.PUSH_NOOP_SECONDS,
        )
        self.watchers[lease.mailbox_id] = watcher
        watcher.start()

    def _drain(self) -> list[Seen]:
        more = []
        while True:
            try:
                more.append(self.seen.get_nowait())
            except queue.Empty:
                return more

    def _take_in(self, seen: list[Seen]) -> None:
        close_old_connections()
        reports = {s.mailbox_id: s for s in seen if s.state}  # the latest state of each
        listener_shares.record(
            self.owner,
            [listener_shares.Report(s.mailbox_id, s.state, s.method, s.detail) for s in reports.values()],
        )
        changed = {s.mailbox_id for s in seen if s.changed}
        if changed:
            push.notify(changed)

    def _wake_pending(self) -> None:
        if push.has_pending():
            push.wake()

    def _safely(self, work: Callable[[], object]) -> None:
        """The database or a server may fail a beat; the next beat tries again."""
        try:
            work()
        except Exception:
            logger.exception("push listener %s", self.owner)
            close_old_connections()


def _failing(mailbox_id: int, detail: str) -> listener_shares.Report:
    return listener_shares.Report(mailbox_id, PushState.FAILING, "", detail)
