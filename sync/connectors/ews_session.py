"""What every EWS connector shares: one exchangelib account for one mailbox, signed in on
``__enter__`` and released on ``close``, and each call made trusting the profile's CA file
with its failures translated into serversync's three classes (``ews_errors``)."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Self, TypeVar

from exchangelib import Account

from sync.connectors import ews_account, ews_errors
from sync.connectors.base import ServerSettings
from sync.errors import SyncError

T = TypeVar("T")


class EwsSession:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self._account: Account | None = None

    def __enter__(self) -> Self:
        try:
            self._account = self.call(lambda: ews_account.open_account(self.settings))
            self.opened()
        except BaseException:
            self.close()
            raise
        return self

    def opened(self) -> None:
        """What the connector checks at once after signing in (nothing, unless it says)."""

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        account, self._account = self._account, None
        ews_account.release(account)

    @property
    def account(self) -> Account:
        if self._account is None:
            raise RuntimeError(f"{type(self).__name__} is not open; use it as a context manager")
        return self._account

    def call(self, work: Callable[[], T], folder: str = "") -> T:
        """Run one exchangelib call trusting the profile's CA file; failures leave as SyncErrors."""
        try:
            with ews_account.trusting(self.settings):
                return work()
        except SyncError:
            raise
        except Exception as error:
            raise ews_errors.translate(error, self.settings, folder=folder) from error
