"""What exchangelib raises, as the SyncErrors serversync acts on, in an Exchange administrator's words.

exchangelib wraps socket and TLS failures (``ErrorTimeoutExpired("Reraised
from ConnectionError(...)")``, ``TransportError(str(ssl_error))``); the original
is still on the exception's chain, and :func:`translate` hands it to
:mod:`sync.connectors.network` so that EWS says "refused", "timed out" or
"certificate invalid" with the same codes as IMAP and SMTP.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urlsplit

import requests
from exchangelib.errors import (
    AutoDiscoverError,
    CASError,
    EWSError,
    RedirectError,
    ResponseMessageError,
    UnauthorizedError,
)
from oauthlib.oauth2 import OAuth2Error

from sync.connectors import network
from sync.connectors.base import ServerSettings
from sync.connectors.ews_account import mailbox_of
from sync.errors import PermanentError, SyncError, ThrottledError, TransientError

PROTOCOL = "EWS"
# exchangelib's wait when ErrorServerBusy names none.
DEFAULT_BACK_OFF = 60.0

IMPERSONATION = {"ErrorImpersonateUserDenied", "ErrorImpersonationDenied", "ErrorImpersonationFailed"}
MISSING_MAILBOX = {"ErrorNonExistentMailbox", "ErrorMailboxNotFound", "ErrorNonPrimarySmtpAddress"}
NO_ACCESS = {"ErrorAccessDenied", "ErrorDelegateNoUser", "ErrorNotDelegate"}
MISSING_FOLDER = {"ErrorFolderNotFound", "ErrorSyncFolderNotFound"}
# The mailbox database is moving, failing over or busy: passes.
PASSING = {
    "ErrorMailboxStoreUnavailable",
    "ErrorMailboxMoveInProgress",
    "ErrorInternalServerTransientError",
    "ErrorTimeoutExpired",
    "ErrorTooManyObjectsOpened",
    "ErrorExceededConnectionCount",
    "ErrorConnectionFailed",
    "ErrorServerTemporaryUnavailable",
}
# Invalid sync states: the folder is read again from the start.
INVALID_SYNC_STATE = {"ErrorInvalidSyncStateData", "ErrorInvalidSyncStateValue", "ErrorSyncStateNotFound"}


def is_invalid_sync_state(error: BaseException) -> bool:
    return type(error).__name__ in INVALID_SYNC_STATE


def server(settings: ServerSettings) -> str:
    """The server as the profile names it: its EWS URL, else host:port."""
    return settings.url or network.where(settings)


def translate(error: BaseException, settings: ServerSettings, *, folder: str = "") -> SyncError:
    """The SyncError for anything exchangelib (or requests below it) raised."""
    below = _network_error(error)
    if below is not None:
        return _network(below, settings)
    if isinstance(error, requests.Timeout):
        return network.timeout(settings, protocol=PROTOCOL)
    if isinstance(error, UnauthorizedError | OAuth2Error):
        return authentication_failed(settings, str(error))
    if isinstance(error, CASError):
        return _cas(error, settings)
    if isinstance(error, AutoDiscoverError):
        return _autodiscover(error, settings)
    if isinstance(error, RedirectError):
        return PermanentError(
            f"{server(settings)} redirects EWS requests elsewhere ({error}). Enter the EWS URL the "
            "Exchange administrator publishes (Get-WebServicesVirtualDirectory | fl ExternalUrl) or turn on "
            "Autodiscover.",
            code="ews_url_invalid",
        )
    if isinstance(error, ResponseMessageError):
        return _response(error, settings, folder)
    if isinstance(error, EWSError | requests.RequestException):
        return TransientError(
            f"Exchange server {server(settings)} did not answer as EWS does ({text(error)}). "
            "serversync tries again later; if it persists, check that the profile's URL is the EWS endpoint.",
            code="server_error",
        )
    raise error


def authentication_failed(settings: ServerSettings, detail: str) -> PermanentError:
    s = settings
    acting = f" acting for {s.act_as}" if s.act_as else f" for the mailbox {mailbox_of(s)}"
    if s.oauth is not None and s.auth.lower() == "oauth":
        return PermanentError(
            f"Exchange server {server(s)} rejected the token of the app {s.oauth.client_id}{acting} "
            f"({detail}). Grant the app the full_access_as_app permission of Office 365 Exchange Online "
            "with admin consent, and check that hybrid modern authentication lists this server's URL "
            "(Get-MsolServicePrincipal -AppPrincipalId 00000002-0000-0ff1-ce00-000000000000).",
            code="authentication_failed",
        )
    how = f"{s.auth.upper()} authentication" if s.auth else "the authentication it offers"
    return PermanentError(
        f"Exchange server {server(s)} rejected the sign-in of {s.username}{acting} ({detail}). "
        "Correct the user name and password in the email server profile or mailbox, check that the account "
        f"is not locked or its password expired, and that the EWS virtual directory allows {how} "
        "(Get-WebServicesVirtualDirectory | fl *Authentication*).",
        code="authentication_failed",
    )


def _response(error: ResponseMessageError, settings: ServerSettings, folder: str) -> SyncError:
    s, name, detail = settings, type(error).__name__, text(error)
    if name == "ErrorServerBusy":
        wait = getattr(error, "back_off", None) or DEFAULT_BACK_OFF
        return ThrottledError(
            f"Exchange server {server(s)} is throttling {s.username or mailbox_of(s)} (ErrorServerBusy) and "
            f"asked for {wait:g} seconds' rest; serversync waits that long. If it happens often, give the "
            "service account a throttling policy of its own (New-ThrottlingPolicy, "
            "Set-ThrottlingPolicyAssociation).",
            retry_after=float(wait),
        )
    if name in IMPERSONATION:
        return PermanentError(
            f"Exchange server {server(s)} does not let {s.username} impersonate {s.act_as} ({name}). "
            "Grant the service account the ApplicationImpersonation role: New-ManagementRoleAssignment "
            f"-Name serversync-impersonation -Role ApplicationImpersonation -User {s.username} "
            "(add -CustomRecipientWriteScope to limit it to the synced mailboxes).",
            code="impersonation_denied",
        )
    if name in MISSING_MAILBOX:
        return PermanentError(
            f"Exchange server {server(s)} has no mailbox {mailbox_of(s)} ({name}). Correct the mailbox's "
            "email address (its primary SMTP address, Get-Mailbox | fl PrimarySmtpAddress) or create "
            "the mailbox.",
            code="mailbox_not_found",
        )
    if name in NO_ACCESS:
        return PermanentError(
            f"{s.username} may not open the mailbox {mailbox_of(s)} on {server(s)} ({name}: {detail}). "
            f"Grant it full access (Add-MailboxPermission -Identity {mailbox_of(s)} -User {s.username} "
            "-AccessRights FullAccess), or ApplicationImpersonation and the profile's impersonation setting.",
            code="permission_denied",
        )
    if name in MISSING_FOLDER:
        return PermanentError(
            f"The folder {folder or 'asked for'} does not exist in the mailbox {mailbox_of(s)} on "
            f"{server(s)} ({name}). It was deleted or renamed; change the mailbox's folder settings or "
            "create it again.",
            code="folder_not_found",
        )
    if name in PASSING:
        return TransientError(
            f"Exchange server {server(s)} cannot reach the mailbox {mailbox_of(s)} right now "
            f"({name}: {detail}). serversync tries again later.",
            code="server_busy",
        )
    return TransientError(
        f"Exchange server {server(s)} refused a request for {mailbox_of(s)} ({name}: {detail}). "
        "serversync tries again later.",
        code="server_error",
    )


def _cas(error: CASError, settings: ServerSettings) -> SyncError:
    text = error.cas_error
    if "auth" in text.lower() or "401" in text:
        return authentication_failed(settings, f"CAS error {text}")
    return TransientError(
        f"The Client Access service of {server(settings)} could not pass the request on (CAS error {text}). "
        "serversync tries again later.",
        code="server_error",
    )


def _autodiscover(error: AutoDiscoverError, settings: ServerSettings) -> PermanentError:
    domain = mailbox_of(settings).rpartition("@")[2]
    return PermanentError(
        f"Autodiscover found no EWS URL for {mailbox_of(settings)} ({text(error)}). Publish Autodiscover "
        f"for {domain} (autodiscover.{domain}, or an SRV record _autodiscover._tcp.{domain}), check the "
        "credentials, or enter the EWS URL in the email server profile.",
        code="autodiscover_failed",
    )


def _network(error: OSError, settings: ServerSettings) -> SyncError:
    named = _named_by_url(settings)
    found = network.translate(
        error, named, protocol=PROTOCOL, fetch_certificate=network.fetch_implicit_certificate(named)
    )
    if found.code == "tls_certificate_invalid":
        found = PermanentError(
            f"{found.message} If the Exchange server's certificate comes from your organization's own CA, "
            "add that CA to the PEM bundle named by SYNC_CA_FILE (serversync's CA bundle setting).",
            code=found.code,
        )
    return found


def _named_by_url(settings: ServerSettings) -> ServerSettings:
    """The settings with host and port from the EWS URL (what the socket reached)."""
    if not settings.url:
        return settings
    url = urlsplit(settings.url)
    port = url.port or (443 if url.scheme == "https" else 80)
    return replace(settings, host=url.hostname or settings.host, port=port)


def _network_error(error: BaseException) -> OSError | None:
    """The socket or TLS failure below exchangelib's and requests' wrappers, if any."""
    chain = list(_chain(error))
    for kind in (
        ssl.SSLCertVerificationError,
        socket.gaierror,
        ConnectionRefusedError,
        TimeoutError,
        ssl.SSLError,
        ConnectionError,
        # The connection closed part way through the answer's body (exchangelib says
        # "ErrorTimeoutExpired"): lost, not a busy server; a send it answered may have gone.
        requests.exceptions.ChunkedEncodingError,
    ):
        for cause in chain:
            if isinstance(cause, kind):
                return cause  # type: ignore[return-value]  # every kind listed is an OSError
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)  # urllib3's MaxRetryError
        linked = [current.__cause__, current.__context__, reason, *current.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))


def text(error: BaseException) -> str:
    return str(getattr(error, "value", None) or error).strip().rstrip(".")
