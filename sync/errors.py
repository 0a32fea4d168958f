"""The three ways a sync step can fail; connectors raise only these.

- ``TransientError``: try again later (connection refused or reset, timeout,
  server busy); retried with backoff, then treated as permanent.
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


class PermanentError(SyncError):
    pass


class MessageError(SyncError):
    pass
