"""A time limit for one message: parsing and storing a message that takes
longer than ``SYNC_MESSAGE_MAX_SECONDS`` is given up, so one pathological
message is quarantined and the run goes on instead of outliving its lease.

Parsing is pure computation and is interrupted (SIGALRM, on the main thread,
where Celery's prefork workers and the commands run tasks). Storing talks to
the database, which a signal must not cut in the middle of a statement, so it
is bounded differently: each statement by PostgreSQL's ``statement_timeout``
(set for the transaction only), and the whole by a check before the commit.
Either way the transaction rolls back and nothing of the message is kept but
its quarantine record.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from django.db import OperationalError, connection

from sync.errors import MessageError


class MessageTooSlow(MessageError):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"Processing the message took longer than {seconds:g} seconds, the limit "
            "(SYNC_MESSAGE_MAX_SECONDS); it is set aside so the mailbox goes on.",
            code="too_slow",
        )


class MessageTimeLimit:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def check(self) -> None:
        if self.remaining() <= 0:
            raise MessageTooSlow(self.seconds)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Around the whole message: a statement cancelled by ``statement_timeout``
        becomes MessageTooSlow once the transaction has rolled back."""
        try:
            yield
        except OperationalError as error:
            if _is_statement_timeout(error) and self.remaining() <= 0:
                raise MessageTooSlow(self.seconds) from error
            raise

    @contextmanager
    def interruptible(self) -> Iterator[None]:
        """Pure computation (no database) that is cut off at the deadline."""
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only; the checks still bound the message
            self.check()
            return
        previous = signal.signal(signal.SIGALRM, self._expired)
        signal.setitimer(signal.ITIMER_REAL, max(self.remaining(), 0.001))
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def bound_statements(self) -> None:
        """Inside the message's transaction: no statement may run past the deadline.
        Only when that transaction is the outermost one (SET LOCAL lasts until the
        outermost transaction ends, and must not outlive the message); a batch of
        messages bounds its statements itself (``bound_transaction``)."""
        self.check()
        if len(connection.atomic_blocks) == 1:
            bound_transaction(self.remaining())

    def _expired(self, signum: int, frame: FrameType | None) -> None:
        raise MessageTooSlow(self.seconds)


def bound_transaction(seconds: float) -> None:
    """No statement of the current transaction may run longer than ``seconds``
    (PostgreSQL's statement_timeout, for this transaction only)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {max(int(seconds * 1000), 1)}")


def _is_statement_timeout(error: OperationalError) -> bool:
    # psycopg's QueryCanceled (SQLSTATE 57014) arrives wrapped in Django's OperationalError.
    return getattr(error.__cause__, "sqlstate", None) == "57014"
