"""Waiting on two servers at once. An idle poll is mostly waiting: for the mail
server to shake hands and sign in, for the database to answer, for the mail
server to say goodbye. Signing in and signing out run on a thread of their own
while the run's thread talks to the database (only it does: Django's connection
is the run's thread's), so those waits overlap instead of adding up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TypeVar

from sync.connectors.interfaces import Session

_T = TypeVar("_T")

logger = logging.getLogger(__name__)


class Background(threading.Thread):
    """``work`` on a thread; its exception kept for whoever joins it."""

    def __init__(self, work: Callable[[], object], name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.work = work
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.work()
        except BaseException as error:  # handed to the thread that joins
            self.error = error


def open_while(session: Session, work: Callable[[], _T]) -> _T:
    """Open ``session`` while ``work`` runs here; both done, or neither (an
    error of either is raised, and a session opened for nothing is closed)."""
    opening = Background(session.__enter__, "serversync-connect")
    try:
        done = work()
    except BaseException:
        opening.join()
        if opening.error is None:
            session.__exit__(None, None, None)
        raise
    opening.join()
    if opening.error is not None:
        raise opening.error
    return done


def close_in_background(session: Session) -> Background:
    """Close ``session`` politely (a run that went well) on a thread; join it
    before the run returns. Its work is done: a failure to say goodbye is logged."""

    def close() -> None:
        try:
            session.__exit__(None, None, None)
        except Exception:
            logger.warning("closing %s after a successful run failed", type(session).__name__, exc_info=True)

    return Background(close, "serversync-close")
