"""The three ways a sync step can fail; connectors raise only these.

- ``TransientError``: try again later (connection refused or reset, timeout,
  server busy); retried with backoff, then treated as permanent.
  ``ThrottledError``, a kind of it, carries how long the server asked to wait.
- ``PermanentError``: will not fix itself (authentication, impersonation
  denied, mailbox or folder missing, certificate invalid); the direction is
  disabled at once with the reason.
- ``MessageError``: one message is bad; it is quarantined and the mailbox goes on.

This module imports nothing of serversync's: connectors sit below the CRM.
"""

from __future__ import annotations


class SyncError(Exception):
    """Base class. ``code`` is a stable machine-readable cause for alerts."""

    def __init__(self, message: str, *, code: str = "unknown") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class TransientError(SyncError):
    pass


class ThrottledError(TransientError):
    """The server asked to be left alone for ``retry_after`` seconds (HTTP 429 / 503
    with Retry-After, EWS ErrorServerBusy's BackOffMilliseconds). The mailbox waits
    that long without spending one of its retries: being asked to wait is not failing."""

    def __init__(self, message: str, *, retry_after: float, code: str = "throttled") -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class PermanentError(SyncError):
    pass


class MessageError(SyncError):
    pass
