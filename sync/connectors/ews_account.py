"""How an EWS session signs in (exchangelib): the Account, its Configuration and TLS.

exchangelib keeps process-wide state, and this module decides how serversync
lives with it:

- ``Protocol`` instances are cached per (EWS URL, credentials) and keep their
  first Configuration (retry policy, timeout, version, auth type). A session
  drops any cached one before it starts and closes and forgets its own when it
  ends (:func:`release`), so settings changed on a profile apply on the next run
  and no TCP connection outlives its run.
- ``BaseProtocol.HTTP_ADAPTER_CLS`` is one class for the whole process.
  :class:`CaBundleAdapter` takes the CA bundle from a context variable that the
  connector sets around each of its exchangelib calls (:func:`trusting`): one
  adapter class serves profiles with different CA files, Autodiscover included
  (Entra ID tokens come from msal, sync.connectors.graph_auth, verified on its
  own client). A request made outside such a call (another thread,
  another library using exchangelib) sees no CA file and is verified against the
  system's CAs: it can fail, it can never go unverified.
- Retries are the scheduler's: ``FailFast``, never exchangelib's waiting loops.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import requests.adapters
from exchangelib import (
    BASIC,
    DELEGATE,
    IMPERSONATION,
    NTLM,
    OAUTH2,
    UTC,
    Account,
    BaseProtocol,
    Build,
    Configuration,
    Credentials,
    FailFast,
    OAuth2AuthorizationCodeCredentials,
    Version,
)
from exchangelib.credentials import BaseCredentials
from exchangelib.protocol import Protocol
from exchangelib.version import VERSIONS
from oauthlib.oauth2 import OAuth2Token

from sync.connectors import graph_auth
from sync.connectors.base import ServerSettings
from sync.errors import PermanentError

AUTH_TYPES = {"basic": BASIC, "ntlm": NTLM, "oauth": OAUTH2, "": None}

_CA_FILE: contextvars.ContextVar[str | None] = contextvars.ContextVar("ews_ca_file", default=None)


class CaBundleAdapter(requests.adapters.HTTPAdapter):
    """Verifies every certificate, against the CA bundle of the call being made."""

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        ca_file = _CA_FILE.get()
        # Never False, whatever a caller or an environment variable asked for.
        checked: bool | str = ca_file or (verify if isinstance(verify, str) else True)
        return super().send(
            request, stream=stream, timeout=timeout, verify=checked, cert=cert, proxies=proxies
        )


BaseProtocol.HTTP_ADAPTER_CLS = CaBundleAdapter


@contextmanager
def trusting(settings: ServerSettings) -> Iterator[None]:
    """Requests made inside trust ``settings.ca_file`` (instead of the system's CAs, when set)."""
    token = _CA_FILE.set(settings.ca_file)
    try:
        yield
    finally:
        _CA_FILE.reset(token)


def open_account(settings: ServerSettings) -> Account:
    """The exchangelib Account of ``settings`` (no request yet, unless Autodiscover runs)."""
    credentials = _credentials(settings)
    options: dict[str, Any] = {
        "credentials": credentials,
        "auth_type": _auth_type(settings),
        "version": version_of(settings.server_version),
        "retry_policy": FailFast(),
    }
    if settings.url:
        config = Configuration(service_endpoint=settings.url, **options)
        _forget(config)
        account = _account(settings, config=config, autodiscover=False)
    elif settings.autodiscover:
        account = _account(settings, config=Configuration(**options), autodiscover=True)
    else:
        raise PermanentError(
            f"The email server profile gives no EWS URL for {mailbox_of(settings)} and Autodiscover is off. "
            "Enter the EWS URL (https://mail.example.com/EWS/Exchange.asmx) or turn on Autodiscover.",
            code="configuration_invalid",
        )
    # Per protocol, not the class-wide 120 seconds: the profile's timeout applies to every request.
    account.protocol.TIMEOUT = settings.timeout
    return account


def _account(settings: ServerSettings, *, config: Configuration, autodiscover: bool) -> Account:
    return Account(
        primary_smtp_address=mailbox_of(settings),
        # An app signed in with OAuth has no mailbox of its own: it always acts for one.
        access_type=IMPERSONATION if settings.act_as or settings.auth.lower() == "oauth" else DELEGATE,
        autodiscover=autodiscover,
        config=config,
        # EWS dates carry their zone; UTC only fills in for one that would not.
        default_timezone=UTC,
    )


def release(account: Account | None) -> None:
    """Close the account's HTTP sessions and drop its cached protocol."""
    if account is None:
        return
    protocol = account.protocol
    protocol.close()
    _forget(protocol.config, only=protocol)


def _forget(config: Configuration, only: object = None) -> None:
    with suppress(KeyError):
        cached, _ = Protocol[config]
        if only is None or cached is only:
            del Protocol[config]


def mailbox_of(settings: ServerSettings) -> str:
    """The mailbox synced: the one impersonated, else the mailbox named, else the sign-in's own."""
    return settings.act_as or settings.mailbox or settings.username


def version_of(name: str) -> Version | None:
    """``"Exchange2016"`` (a RequestServerVersion value) as exchangelib's Version; None asks the server."""
    if not name:
        return None
    build = _BUILDS.get(name.lower())
    if build is None:
        known = ", ".join(sorted({api for _, api, _ in VERSIONS}))
        raise PermanentError(
            f"The Exchange version {name!r} in the email server profile is not one EWS knows. "
            f"Choose one of {known}, or leave it empty to ask the server.",
            code="configuration_invalid",
        )
    return Version(build=build, api_version=_API_NAMES[name.lower()])


# VERSIONS runs newest first: the first build of an API version is the newest that speaks it.
_BUILDS: dict[str, Build] = {}
_API_NAMES: dict[str, str] = {}
for _build, _api, _name in VERSIONS:
    _BUILDS.setdefault(_api.lower(), _build)
    _API_NAMES.setdefault(_api.lower(), _api)


def _auth_type(settings: ServerSettings) -> str | None:
    if settings.auth.lower() not in AUTH_TYPES:
        raise PermanentError(
            f"The authentication {settings.auth!r} in the email server profile is not one serversync "
            "speaks to EWS. Choose Basic, NTLM or OAuth (or Auto Detect).",
            code="configuration_invalid",
        )
    return AUTH_TYPES[settings.auth.lower()]  # type: ignore[no-any-return]  # exchangelib is untyped


def _credentials(settings: ServerSettings) -> BaseCredentials:
    if settings.auth.lower() == "oauth":
        return _oauth_credentials(settings)
    return Credentials(username=settings.username, password=settings.password)


def _oauth_credentials(settings: ServerSettings) -> BaseCredentials:
    """An app-only token from Entra ID (hybrid modern authentication), from the same msal
    application and token cache as Microsoft Graph's (sync.connectors.graph_auth).

    Its audience is the Exchange server's own URL, which hybrid modern authentication
    registers on the Office 365 Exchange Online application."""
    url = urlsplit(settings.url)
    token = graph_auth.access_token(replace(settings, url=f"{url.scheme}://{url.netloc}"))
    # No expiry given: a run is shorter than the five minutes of life msal leaves a cached token.
    return OAuth2AuthorizationCodeCredentials(
        access_token=OAuth2Token({"access_token": token, "token_type": "Bearer"})
    )
