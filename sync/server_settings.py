"""From a mailbox and its profile to the plain settings a connector takes."""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from django.conf import settings

from mailboxes.models import Mailbox
from profiles.models import AuthProtocol, CredentialsSource, Direction, EmailServerProfile
from profiles.server_types import facts
from sync import oauth_tokens
from sync.connectors import registry
from sync.connectors.base import OAuthApp, ServerSettings, Tls
from sync.errors import PermanentError

# Ports that mean "STARTTLS" when SSL is on, as administrators configure them.
_STARTTLS_PORTS = {143, 110, 587, 25}


def profile_of(mailbox: Mailbox) -> EmailServerProfile:
    if mailbox.profile is None:
        raise PermanentError("The mailbox has no email server profile.", code="profile_missing")
    if not mailbox.profile.is_active:
        raise PermanentError(
            f"The email server profile {mailbox.profile} is inactive.", code="profile_inactive"
        )
    return mailbox.profile


def incoming_settings(mailbox: Mailbox) -> ServerSettings:
    profile = profile_of(mailbox)
    if profile.is_exchange:
        return _exchange_settings(mailbox, profile, Direction.INCOMING)
    found = ServerSettings(
        host=profile.incoming_server_location,
        port=profile.incoming_port or 0,
        tls=_tls(profile.incoming_use_ssl, profile.incoming_port, implicit_port=None),
        timeout=float(profile.connection_timeout_seconds),
        ca_file=settings.SYNC_CA_FILE,
        act_as=mailbox.email_address if profile.incoming_use_impersonation else "",
    )
    return _signing_in(found, mailbox, profile, outgoing=False)


def outgoing_settings(mailbox: Mailbox) -> ServerSettings:
    profile = profile_of(mailbox)
    if profile.is_exchange:
        return _exchange_settings(mailbox, profile, Direction.OUTGOING)
    found = ServerSettings(
        host=profile.outgoing_server_location,
        port=profile.outgoing_port or 0,
        tls=_tls(profile.outgoing_use_ssl, profile.outgoing_port, implicit_port=465),
        timeout=float(profile.connection_timeout_seconds),
        ca_file=settings.SYNC_CA_FILE,
        act_as=mailbox.email_address if profile.outgoing_use_impersonation else "",
    )
    return _signing_in(found, mailbox, profile, outgoing=True)


def _signing_in(
    found: ServerSettings, mailbox: Mailbox, profile: EmailServerProfile, *, outgoing: bool
) -> ServerSettings:
    """IMAP, POP3, SMTP: with a password, or an OAuth access token (sync/oauth_tokens.py)."""
    if profile.signs_in_with_oauth:
        username, token = oauth_tokens.sasl_sign_in(mailbox, profile)
        mechanism = profile.oauth_sasl_mechanism
        return replace(found, username=username, access_token=token, sasl_mechanism=mechanism, act_as="")
    username, password = _credentials(mailbox, profile, outgoing=outgoing)
    return replace(found, username=username, password=password)


def act_settings(mailbox: Mailbox) -> ServerSettings:
    """Where the mailbox's appointments, contacts and tasks live: Exchange's own service,
    or the CalDAV / CardDAV server an IMAP/SMTP profile names (same credentials as its mail)."""
    profile = profile_of(mailbox)
    zone = mailbox.user.time_zone if mailbox.user is not None else "UTC"
    if profile.is_exchange:
        return replace(_exchange_settings(mailbox, profile, Direction.INCOMING), time_zone=zone)
    if not (facts(profile.server_type).act_over_dav and profile.dav_server_url):
        raise PermanentError(
            f"The profile {profile} names no CalDAV / CardDAV server for appointments, contacts and tasks: "
            "enter it on the profile, or turn their sync off on the mailbox.",
            code="act_not_configured",
        )
    location = urlsplit(profile.dav_server_url)
    username, password = _credentials(mailbox, profile, outgoing=False)
    secure = location.scheme == "https"
    return ServerSettings(
        host=location.hostname or "",
        port=location.port or (443 if secure else 80),
        tls=Tls.IMPLICIT if secure else Tls.NONE,
        timeout=float(profile.connection_timeout_seconds),
        ca_file=settings.SYNC_CA_FILE,
        username=username,
        password=password,
        url=profile.dav_server_url,
        mailbox=mailbox.email_address,
        time_zone=zone,
    )


def _exchange_settings(mailbox: Mailbox, profile: EmailServerProfile, direction: str) -> ServerSettings:
    """Exchange is a URL (Microsoft Graph's, or the EWS URL), reached over HTTPS."""
    url = getattr(profile, f"{direction}_server_location").strip()
    autodiscover = facts(profile.server_type).ews and profile.auto_discover_server_location and not url
    if autodiscover and profile.autodiscovered_ews_url:
        url, autodiscover = profile.autodiscovered_ews_url, False  # what Autodiscover answered last
    found = _settings(mailbox, profile, direction, url, autodiscover)
    if autodiscover:
        return replace(found, url=_discover(profile, found), autodiscover=False)
    return found


def _discover(profile: EmailServerProfile, settings: ServerSettings) -> str:
    """Ask Autodiscover once, and keep its answer on the profile for every later run."""
    discover = connectors_of(profile).discover
    if discover is None:
        label = profile.get_server_type_display()
        raise PermanentError(f"{label} has no Autodiscover: enter its server's URL.", code="not_supported")
    url = discover(settings)
    EmailServerProfile.objects.filter(pk=profile.pk).update(autodiscovered_ews_url=url)
    profile.autodiscovered_ews_url = url
    return url


def _settings(
    mailbox: Mailbox, profile: EmailServerProfile, direction: str, url: str, autodiscover: bool
) -> ServerSettings:
    location = urlsplit(url)
    oauth = _app_registration(profile)
    username, password = ("", "") if oauth else _credentials(mailbox, profile, outgoing=False)
    impersonate = getattr(profile, f"{direction}_use_impersonation") and facts(profile.server_type).ews
    protocol = getattr(profile, f"{direction}_auth_protocol")
    return ServerSettings(
        host=location.hostname or mailbox.email_address.rpartition("@")[2],
        port=location.port or 443,
        tls=Tls.IMPLICIT,
        timeout=float(profile.connection_timeout_seconds),
        ca_file=settings.SYNC_CA_FILE,
        username=username,
        password=password,
        act_as=mailbox.email_address if impersonate else "",
        url=url,
        mailbox=mailbox.email_address,
        auth="oauth" if oauth else ("" if protocol == AuthProtocol.AUTO else protocol),
        oauth=oauth,
        autodiscover=autodiscover,
        server_version=profile.exchange_server_version,
    )


def _app_registration(profile: EmailServerProfile) -> OAuthApp | None:
    """The app the profile signs in as (client credentials), or None when it signs in with a password."""
    if profile.credentials_source != CredentialsSource.OAUTH_CLIENT_CREDENTIALS:
        return None
    return oauth_tokens.app_of(profile)


def _tls(use_ssl: bool, port: int | None, *, implicit_port: int | None) -> Tls:
    """SSL on means TLS, never cleartext: implicit TLS, except on the ports
    administrators use for STARTTLS (SMTP: implicit only on 465)."""
    if not use_ssl:
        return Tls.NONE
    if implicit_port is not None:
        return Tls.IMPLICIT if port == implicit_port else Tls.STARTTLS
    return Tls.STARTTLS if port in _STARTTLS_PORTS else Tls.IMPLICIT


def _credentials(mailbox: Mailbox, profile: EmailServerProfile, *, outgoing: bool) -> tuple[str, str]:
    if profile.credentials_source == CredentialsSource.PROFILE:
        if outgoing and not profile.use_same_settings_for_outgoing:
            return profile.outgoing_username, profile.outgoing_password.reveal()
        if not profile.password:
            raise PermanentError(
                f"The profile {profile} has no password; enter it on the profile.", code="credentials_missing"
            )
        return profile.username, profile.password.reveal()
    if profile.credentials_source == CredentialsSource.USER_OR_QUEUE:
        if not (mailbox.allow_credentials_for_email_processing and mailbox.username and mailbox.password):
            raise PermanentError(
                "The mailbox has no credentials: enter user name and password on the mailbox and allow "
                "them for email processing.",
                code="credentials_missing",
            )
        return mailbox.username, mailbox.password.reveal()
    raise PermanentError(
        "OAuth signs in to the IMAP, POP3 and SMTP servers and Exchange only, not yet to a CalDAV / "
        "CardDAV server: turn appointments, contacts and tasks off on the mailbox, or choose another way "
        "to sign in on the profile.",
        code="not_supported",
    )


def connectors_of(profile: EmailServerProfile) -> registry.ServerKind:
    """The connectors for the profile's type (sync.connectors.registry), or why there are none yet."""
    kind = registry.kind_of(profile.server_type)
    if kind is None:
        label = profile.get_server_type_display()
        raise PermanentError(f"{label} is not supported yet.", code="not_supported_yet")
    return kind


def kind_for(profile: EmailServerProfile | None) -> registry.ServerKind | None:
    """The connectors for the profile's type; None without a profile or while there are none."""
    return registry.kind_of(profile.server_type) if profile is not None else None


def is_supported(profile: EmailServerProfile | None) -> bool:
    """Whether serversync has connectors for this profile's type yet (sync.connectors.registry)."""
    return kind_for(profile) is not None
