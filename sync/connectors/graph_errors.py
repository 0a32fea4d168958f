"""Microsoft Graph and Entra ID failures, in an Entra ID / Exchange Online
administrator's words: what happened, and what to change where.

Three sources: the token endpoint (msal hands back Entra ID's ``error`` and
``error_codes``, the AADSTS numbers), Graph's JSON errors (``{"error": {"code",
"message"}}`` with the HTTP status), and the network below both (``OSError``
found in the exception chain, handed to :mod:`sync.connectors.network`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from sync.connectors import network
from sync.connectors.base import ServerSettings
from sync.errors import MessageError, PermanentError, SyncError, ThrottledError, TransientError

GRAPH = "Microsoft Graph"
ENTRA = "Microsoft Entra ID"
# The application permissions each direction needs (Microsoft Graph, "Application" type).
READ_PERMISSION = "Mail.ReadWrite"
SEND_PERMISSION = "Mail.Send"
# What Graph answers when a delta token is too old or unknown: the folder is read again.
RESYNC_CODES = frozenset({"syncstatenotfound", "resyncrequired", "syncstateinvalid", "invalidsyncstate"})
# How long to wait when the server says "busy" without a Retry-After.
DEFAULT_RETRY_AFTER = 30.0


@dataclass(frozen=True)
class GraphFailure:
    """One error answer of Graph: the HTTP status and Graph's ``error.code`` / ``error.message``."""

    status: int
    code: str
    message: str
    retry_after: float | None

    @property
    def needs_resync(self) -> bool:
        return self.status == 410 or self.code.lower() in RESYNC_CODES


def failure(status: int, headers: Mapping[str, str], body: bytes) -> GraphFailure:
    code, message = "", ""
    try:
        error = json.loads(body).get("error", {})
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except (ValueError, AttributeError):
        message = body[:200].decode(errors="replace").strip()
    return GraphFailure(status, code, message, retry_after(headers.get("retry-after")))


def retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds, or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdecimal():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# -- Graph's answers ---------------------------------------------------------------


def graph_error(
    found: GraphFailure, settings: ServerSettings, *, permission: str, roles: list[str] | None, what: str
) -> SyncError:
    """The SyncError for Graph's answer to ``what`` (a few words: "reading the Inbox")."""
    mailbox, said = settings.mailbox, _said(found)
    if found.status in (429, 503) or found.code in ("ApplicationThrottled", "MailboxConcurrency"):
        return _throttled(found, settings, said)
    if found.status == 401:
        return PermanentError(
            f"{GRAPH} at {settings.url} refused the access token Entra ID issued to the app while "
            f"{what} for {mailbox}{said}. Check that the profile's Graph URL and the Entra ID authority "
            "belong to the same cloud, then test again.",
            code="authentication_failed",
        )
    if found.code == "MailboxNotEnabledForRESTAPI":
        return PermanentError(
            f"The mailbox {mailbox} is not hosted in Exchange Online or is inactive{said}: {GRAPH} "
            "reaches only Exchange Online mailboxes. Assign the user a licence that includes Exchange "
            "Online (or use an Exchange Server profile for an on-premises mailbox), then test again.",
            code="mailbox_not_licensed",
        )
    if found.code in ("ErrorInvalidUser", "ErrorNonExistentMailbox", "MailboxNotFound") or (
        found.status == 404 and "user" in found.message.lower()
    ):
        return PermanentError(
            f"Exchange Online has no mailbox {mailbox}{said}. Correct the mailbox's email address (its "
            "primary SMTP address in Exchange Online), then test again.",
            code="mailbox_not_found",
        )
    if found.code == "ErrorSendAsDenied":
        return PermanentError(
            f"Exchange Online does not let {mailbox} send as the message's sender{said}. Grant {mailbox} "
            "Send As on that address in the Exchange admin center, or send from the mailbox's own address.",
            code="send_as_denied",
        )
    if found.status == 403:
        return _forbidden(found, settings, permission=permission, roles=roles, what=what)
    if found.status >= 500:
        return TransientError(
            f"{GRAPH} at {settings.url} failed while {what} for {mailbox} (HTTP {found.status}){said}. "
            "serversync tries again later.",
            code="server_error",
        )
    return PermanentError(
        f"{GRAPH} refused {what} for {mailbox} (HTTP {found.status}){said}.",
        code="request_refused",
    )


def _throttled(found: GraphFailure, settings: ServerSettings, said: str) -> ThrottledError:
    wait = found.retry_after if found.retry_after is not None else DEFAULT_RETRY_AFTER
    return ThrottledError(
        f"{GRAPH} asked serversync to slow down for the mailbox {settings.mailbox} "
        f"(HTTP {found.status}){said}; the mailbox waits {wait:g} seconds as asked.",
        retry_after=wait,
    )


def _forbidden(
    found: GraphFailure, settings: ServerSettings, *, permission: str, roles: list[str] | None, what: str
) -> PermanentError:
    said = _said(found)
    if roles is not None and not _grants(roles, permission):
        return PermanentError(
            f"The app has not been granted the Microsoft Graph application permission {permission}, so "
            f"{GRAPH} refused {what} for {settings.mailbox}{said}. In Entra ID, under App registrations > "
            f"the app > API permissions, add Microsoft Graph > Application permissions > {permission} "
            "and grant admin consent for the tenant, then test again.",
            code="consent_missing",
        )
    return PermanentError(
        f"The app is not allowed to access the mailbox {settings.mailbox}: {GRAPH} refused {what}{said}. "
        "An application access policy or an RBAC for Applications scope in Exchange Online leaves this "
        "mailbox out. Add the mailbox to the policy's security group (Test-ApplicationAccessPolicy / "
        "Test-ServicePrincipalAuthorization show what applies), or widen the management scope, then test "
        f"again; also check that admin consent was granted for {permission}.",
        code="mailbox_access_denied",
    )


def _grants(roles: list[str], permission: str) -> bool:
    # Mail.ReadWrite covers reading; Mail.Send is needed to send.
    return permission in roles


def _said(found: GraphFailure) -> str:
    detail = ": ".join(part for part in (found.code, found.message) if part)
    return f" ({detail})" if detail else ""


def token_roles(access_token: str) -> list[str] | None:
    """The application permissions a token carries (its ``roles`` claim), to say which
    one is missing; None when the token cannot be read (Microsoft may encrypt them)."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return None
    roles = claims.get("roles", []) if isinstance(claims, dict) else None
    return [str(role) for role in roles] if isinstance(roles, list) else None


def invalid_recipients(found: GraphFailure, recipients: list[str]) -> MessageError:
    named = [r for r in recipients if r.lower() in found.message.lower()] or recipients
    return MessageError(
        f"Exchange Online refused the whole message because of the recipient(s) {', '.join(named)}"
        f"{_said(found)}; Graph refuses a message with an invalid recipient whole. Correct the addresses "
        "and send it again.",
        code="recipients_refused",
    )


# -- Entra ID's answers (the token endpoint) -------------------------------------------


def token_error(result: Mapping[str, object], settings: ServerSettings) -> SyncError:
    """The SyncError for msal's answer without a token (``error`` / ``error_codes``)."""
    oauth = settings.oauth
    assert oauth is not None  # noqa: S101 - only called for settings with an app
    codes = result.get("error_codes")
    code = int(codes[0]) if isinstance(codes, list) and codes else 0
    description = str(result.get("error_description", "")).split(" Trace ID:", 1)[0].strip()
    error = str(result.get("error", ""))
    app, tenant = f"app {oauth.client_id}", f"tenant {oauth.tenant_id}"
    said = f" ({description or error})"
    if code in (90002, 900023, 90072) or error == "invalid_tenant":
        return PermanentError(
            f"{ENTRA} does not know the {tenant}{said}. Correct the tenant ID (Directory (tenant) ID on "
            "the app registration's Overview page) in the email server profile.",
            code="tenant_not_found",
        )
    if code == 700016:
        return PermanentError(
            f"{ENTRA} has no app with client ID {oauth.client_id} in {tenant}{said}. Correct the client "
            "ID (Application (client) ID on the app registration's Overview page) in the email server "
            "profile, or register the app in this tenant.",
            code="authentication_failed",
        )
    if code == 7000222 or (code == 700027 and "expired" in description.lower()):
        kind = "client secret" if code == 7000222 else "certificate"
        return PermanentError(
            f"The {kind} of the {app} has expired in {ENTRA}{said}. Create a new {kind} under App "
            "registrations > the app > Certificates & secrets, and enter it in the email server profile.",
            code="credentials_expired",
        )
    if code in (7000215, 7000218):
        return PermanentError(
            f"{ENTRA} rejected the client secret of the {app} for the mailbox {settings.mailbox}{said}. "
            "Enter the secret's Value (not its Secret ID) from App registrations > the app > "
            "Certificates & secrets in the email server profile, or create a new secret there.",
            code="authentication_failed",
        )
    if code in (700027, 700021, 50027, 700212):
        return PermanentError(
            f"{ENTRA} rejected the certificate sign-in of the {app} for the mailbox {settings.mailbox}"
            f"{said}. Upload the profile's certificate (its public part, .cer or .pem) under App "
            "registrations > the app > Certificates & secrets, or use the certificate registered there "
            "in the profile.",
            code="authentication_failed",
        )
    if code == 700024:
        return PermanentError(
            f"{ENTRA} found the {app}'s signed sign-in outside its valid time{said}: this server's clock "
            "is wrong. Correct the clock (NTP) of the serversync servers.",
            code="clock_wrong",
        )
    if code in (65001, 7000229, 650057):
        return PermanentError(
            f"The {app} has no admin consent for Microsoft Graph in {tenant}{said}. Grant admin consent "
            f"for the application permissions {READ_PERMISSION} and {SEND_PERMISSION} under App "
            "registrations > the app > API permissions.",
            code="consent_missing",
        )
    if code in (70011, 1002012, 500011):
        return PermanentError(
            f"{ENTRA} refused the scope {settings.url}/.default{said}. Correct the Microsoft Graph URL in "
            "the email server profile (https://graph.microsoft.com for the global cloud).",
            code="service_url_invalid",
        )
    if code in (7000112, 7000114):
        return PermanentError(
            f"The {app} is disabled in {tenant}{said}. Enable its enterprise application (Enterprise "
            "applications > the app > Properties > Enabled for users to sign in).",
            code="app_disabled",
        )
    if code == 53003:
        return PermanentError(
            f"A Conditional Access policy blocks the {app}{said}. Exclude the app's service principal "
            "from the policy (workload identities) in Entra ID.",
            code="access_blocked",
        )
    if error in ("temporarily_unavailable", "server_error") or code in (90033, 90006):
        return TransientError(
            f"{ENTRA} could not issue a token right now{said}. serversync tries again later.",
            code="server_busy",
        )
    return PermanentError(
        f"{ENTRA} refused to sign in the {app} in {tenant}{said}. Check the tenant ID, client ID and "
        "secret or certificate in the email server profile against the app registration.",
        code="authentication_failed",
    )


def discovery_error(detail: str, settings: ServerSettings) -> SyncError:
    """msal could not read the tenant's OpenID configuration (raised as ValueError)."""
    oauth = settings.oauth
    tenant = oauth.tenant_id if oauth else ""
    if "HTTP status: 4" in detail or "tenant" in detail.lower():
        return PermanentError(
            f"{ENTRA} at {oauth.authority if oauth else ''} does not know the tenant {tenant}. Correct the "
            "tenant ID (Directory (tenant) ID on the app registration's Overview page) in the email "
            "server profile.",
            code="tenant_not_found",
        )
    return TransientError(
        f"{ENTRA} did not describe the tenant {tenant} ({detail[:200]}). serversync tries again later.",
        code="server_error",
    )


# -- the network ---------------------------------------------------------------------


def endpoint(settings: ServerSettings, url: str) -> ServerSettings:
    """The settings naming ``url``'s host and port, for network's messages and certificate checks."""
    parts = urlsplit(url)
    return replace(settings, host=parts.hostname or settings.host, port=parts.port or 443)


def network_error(error: BaseException, settings: ServerSettings, url: str, *, service: str) -> SyncError:
    """A failure below HTTP (name lookup, TCP, TLS, a timeout) on the way to ``url``."""
    at = endpoint(settings, url)
    cause = root_os_error(error)
    if cause is not None:
        return network.translate(
            cause, at, protocol=service, fetch_certificate=network.fetch_implicit_certificate(at)
        )
    if "timeout" in type(error).__name__.lower() or "timed out" in str(error).lower():
        return network.timeout(at, protocol=service)
    return network.connection_lost(at, protocol=service, detail=str(error) or type(error).__name__)


def root_os_error(error: BaseException) -> OSError | None:
    """The OSError under an HTTP library's exception (httpx, requests and urllib3 wrap it)."""
    seen: set[int] = set()
    pending: list[object] = [error]
    while pending:
        current = pending.pop(0)
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and type(current).__module__ in ("builtins", "ssl", "socket"):
            return current
        pending.extend(
            [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        )
    return None
