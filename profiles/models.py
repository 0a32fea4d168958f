"""Email server profiles: one profile holds incoming and outgoing settings."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q

from crm.choices import SyncStatus
from crm.models import CrmUser
from crm.models.base import TimestampedModel
from profiles.certificates import CertificateError, read_certificate
from profiles.fields import EncryptedTextField
from profiles.server_types import ENTRA_ID_AUTHORITY as ENTRA_ID_AUTHORITY
from profiles.server_types import EXCHANGE_TYPES as EXCHANGE_TYPES
from profiles.server_types import MICROSOFT_GRAPH_URL as MICROSOFT_GRAPH_URL
from profiles.server_types import Direction as Direction
from profiles.server_types import ServerType as ServerType
from profiles.server_types import default_port as default_port
from profiles.server_types import facts

PORT_VALIDATORS = [MinValueValidator(1), MaxValueValidator(65535)]
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?$|^\[?[0-9A-Fa-f:.]+\]?$")


class AuthProtocol(models.TextChoices):
    AUTO = "auto", "Auto Detect"
    BASIC = "basic", "Basic"
    NTLM = "ntlm", "NTLM"
    OAUTH = "oauth", "OAuth"


class ExchangeVersion(models.TextChoices):
    """The EWS schema version to speak; Subscription Edition speaks Exchange 2019's."""

    AUTO = "", "Ask the server"
    EXCHANGE_2013 = "Exchange2013", "Exchange 2013"
    EXCHANGE_2016 = "Exchange2016", "Exchange 2016"
    EXCHANGE_2019 = "Exchange2019", "Exchange 2019 / Subscription Edition"


class CredentialsSource(models.TextChoices):
    USER_OR_QUEUE = "user_or_queue", "Credentials specified by a user or queue"
    PROFILE = "profile", "Credentials specified in email server profile"
    OAUTH_CLIENT_CREDENTIALS = "oauth_client_credentials", "OAuth client credentials (Microsoft Entra ID)"
    # IMAP, POP3, SMTP: each mailbox's account signs in at the provider once ("Connect" on
    # the mailbox page); its refresh token is kept, encrypted, on the mailbox.
    OAUTH_AUTHORIZATION_CODE = "oauth_authorization_code", "OAuth: each mailbox connects its account"


class OAuthProvider(models.TextChoices):
    """Whose endpoints and scopes a profile's OAuth sign-in uses when it names none itself."""

    MICROSOFT = "microsoft", "Microsoft (Exchange Online, Outlook.com)"
    GOOGLE = "google", "Google (Gmail, Google Workspace)"
    OTHER = "other", "Other (enter the endpoints and scopes)"


class SaslMechanism(models.TextChoices):
    XOAUTH2 = "XOAUTH2", "XOAUTH2 (Google, Microsoft)"
    OAUTHBEARER = "OAUTHBEARER", "OAUTHBEARER (RFC 7628)"


# Microsoft: the v2.0 endpoints under the authority and tenant ("organizations" without one:
# any work or school account); the scopes of Exchange Online's IMAP, POP and SMTP AUTH.
MICROSOFT_USER_SCOPES = (
    "offline_access https://outlook.office.com/IMAP.AccessAsUser.All "
    "https://outlook.office.com/POP.AccessAsUser.All https://outlook.office.com/SMTP.Send"
)
MICROSOFT_APP_SCOPES = "https://outlook.office365.com/.default"
GOOGLE_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
GOOGLE_SCOPES = "https://mail.google.com/"


@dataclass(frozen=True)
class OAuthEndpoints:
    """Where a profile's OAuth sign-in goes, its own settings over its provider's defaults."""

    authorize_url: str
    token_url: str
    scopes: str
    # Sent with the authorization request: Google hands out a refresh token only when asked.
    extra_authorize_params: tuple[tuple[str, str], ...] = ()


class EmailServerProfileQuerySet(models.QuerySet["EmailServerProfile"]):
    def active(self) -> EmailServerProfileQuerySet:
        return self.filter(is_active=True)


# Dynamics 365's "Additional settings" of a profile, in its order (forms, admin, reports).
ADDITIONAL_SETTINGS = (
    "process_email_from",
    "min_polling_interval_minutes",
    "max_concurrent_connections",
    "outgoing_rate_limit_per_minute",
    "connection_timeout_seconds",
    "move_failed_email_to_undeliverable",
    "send_alert_email_to_owner",
    "dav_server_url",
)


class EmailServerProfile(TimestampedModel):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="owned_profiles"
    )
    server_type = models.CharField(max_length=20, choices=ServerType.choices)
    is_active = models.BooleanField("active", default=True)
    is_default = models.BooleanField("set as default profile for new mailboxes", default=False)
    auto_discover_server_location = models.BooleanField(
        default=False, help_text="Exchange Server only: find the EWS URL through Autodiscover."
    )
    # What Autodiscover last answered, so that every run does not ask again.
    autodiscovered_ews_url = models.CharField(max_length=500, blank=True, editable=False)
    exchange_server_version = models.CharField(
        "Exchange version", max_length=20, choices=ExchangeVersion.choices, blank=True, default=""
    )

    incoming_server_location = models.CharField(
        max_length=500,
        blank=True,
        help_text="Host name (IMAP, POP3), Microsoft Graph endpoint (Exchange Online) "
        "or EWS URL (Exchange Server).",
    )
    incoming_port = models.PositiveIntegerField(null=True, blank=True, validators=PORT_VALIDATORS)
    incoming_use_ssl = models.BooleanField("incoming: use SSL", default=True)
    incoming_auth_protocol = models.CharField(
        "incoming authentication protocol",
        max_length=10,
        choices=AuthProtocol.choices,
        default=AuthProtocol.AUTO,
    )
    incoming_use_impersonation = models.BooleanField("incoming: use impersonation", default=False)

    outgoing_server_location = models.CharField(max_length=500, blank=True)
    outgoing_port = models.PositiveIntegerField(null=True, blank=True, validators=PORT_VALIDATORS)
    outgoing_use_ssl = models.BooleanField("outgoing: use SSL", default=True)
    outgoing_auth_protocol = models.CharField(
        "outgoing authentication protocol",
        max_length=10,
        choices=AuthProtocol.choices,
        default=AuthProtocol.AUTO,
    )
    outgoing_use_impersonation = models.BooleanField("outgoing: use impersonation", default=False)

    credentials_source = models.CharField(
        "authenticate using",
        max_length=30,
        choices=CredentialsSource.choices,
        default=CredentialsSource.USER_OR_QUEUE,
    )
    username = models.CharField("user name", max_length=320, blank=True)
    password = EncryptedTextField()
    use_same_settings_for_outgoing = models.BooleanField(
        default=True, help_text="Use the incoming credentials for outgoing email too."
    )
    outgoing_username = models.CharField("outgoing user name", max_length=320, blank=True)
    outgoing_password = EncryptedTextField()
    oauth_tenant_id = models.CharField("OAuth tenant id", max_length=100, blank=True)
    oauth_client_id = models.CharField("OAuth client id", max_length=100, blank=True)
    oauth_client_secret = EncryptedTextField()
    # Microsoft recommends a certificate over a secret: its private key and certificate, in PEM.
    oauth_certificate = EncryptedTextField("OAuth certificate")
    oauth_certificate_expires_on = models.DateTimeField(
        "OAuth certificate expires on", null=True, blank=True, editable=False
    )
    oauth_authority = models.CharField(
        "Microsoft Entra ID authority",
        max_length=200,
        blank=True,
        validators=[URLValidator(schemes=["https"])],
        default=ENTRA_ID_AUTHORITY,
        help_text="Where the app signs in; a national cloud has its own. Blank: Microsoft's global cloud.",
    )

    # IMAP, POP3, SMTP over OAuth (client credentials, or each mailbox connecting its account).
    oauth_provider = models.CharField(
        "OAuth provider", max_length=20, choices=OAuthProvider.choices, default=OAuthProvider.MICROSOFT
    )
    oauth_authorize_url = models.CharField(
        "OAuth authorization endpoint",
        max_length=500,
        blank=True,
        validators=[URLValidator(schemes=["https"])],
        help_text="Blank: the provider's.",
    )
    oauth_token_url = models.CharField(
        "OAuth token endpoint",
        max_length=500,
        blank=True,
        validators=[URLValidator(schemes=["https"])],
        help_text="Blank: the provider's.",
    )
    oauth_scopes = models.CharField(
        "OAuth scopes", max_length=1000, blank=True, help_text="Separated by spaces. Blank: the provider's."
    )
    oauth_sasl_mechanism = models.CharField(
        "OAuth sign-in mechanism (IMAP, POP3, SMTP)",
        max_length=20,
        choices=SaslMechanism.choices,
        default=SaslMechanism.XOAUTH2,
    )

    dav_server_url = models.CharField(
        "CalDAV / CardDAV server",
        max_length=500,
        blank=True,
        validators=[URLValidator(schemes=["https", "http"])],
        help_text="IMAP/SMTP: where appointments, contacts and tasks live, e.g. https://dav.example.com/ "
        "(its calendars and address books are found through /.well-known/caldav and /carddav). "
        "Blank: they do not sync.",
    )

    process_email_from = models.DateTimeField(null=True, blank=True)
    min_polling_interval_minutes = models.PositiveIntegerField(
        "minimum polling interval (minutes)", default=5, validators=[MaxValueValidator(1440)]
    )
    max_concurrent_connections = models.PositiveIntegerField(
        default=10, validators=[MinValueValidator(1), MaxValueValidator(300)]
    )
    outgoing_rate_limit_per_minute = models.PositiveIntegerField(
        "outgoing rate limit (messages per minute per mailbox)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Empty: no limit.",
    )
    connection_timeout_seconds = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    move_failed_email_to_undeliverable = models.BooleanField(
        "move failed emails to Undeliverable folder", default=False
    )
    send_alert_email_to_owner = models.BooleanField(
        default=False,
        help_text="Email the owner when more than 50 % of the profile's mailboxes fail within an hour.",
    )

    last_test_started_on = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_result = models.CharField(
        max_length=10, choices=SyncStatus.choices, default=SyncStatus.NOT_RUN, editable=False
    )
    last_test_message = models.TextField(blank=True, editable=False)

    objects = EmailServerProfileQuerySet.as_manager()

    class Meta:
        verbose_name = "email server profile"
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="one_default_profile"
            ),
            models.CheckConstraint(
                condition=Q(incoming_port__isnull=True) | Q(incoming_port__gte=1, incoming_port__lte=65535),
                name="profile_incoming_port_range",
            ),
            models.CheckConstraint(
                condition=Q(outgoing_port__isnull=True) | Q(outgoing_port__gte=1, outgoing_port__lte=65535),
                name="profile_outgoing_port_range",
            ),
            models.CheckConstraint(
                condition=Q(max_concurrent_connections__gte=1, max_concurrent_connections__lte=300),
                name="profile_max_connections_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_exchange(self) -> bool:
        return self.server_type in EXCHANGE_TYPES

    @property
    def holds_credentials(self) -> bool:
        """Whether mailboxes authenticate with the profile's credentials (so the
        connection cap counts per profile, not per mailbox)."""
        return self.credentials_source not in (
            CredentialsSource.USER_OR_QUEUE,
            CredentialsSource.OAUTH_AUTHORIZATION_CODE,
        )

    @property
    def signs_in_with_oauth(self) -> bool:
        """IMAP, POP3 and SMTP sign in with an access token (SASL XOAUTH2 / OAUTHBEARER)."""
        return not self.is_exchange and self.credentials_source in (
            CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
            CredentialsSource.OAUTH_AUTHORIZATION_CODE,
        )

    @property
    def mailboxes_connect(self) -> bool:
        """Each mailbox connects its own account at the provider (authorization code)."""
        return self.credentials_source == CredentialsSource.OAUTH_AUTHORIZATION_CODE

    def oauth_endpoints(self) -> OAuthEndpoints:
        """The profile's endpoints and scopes, each blank one the provider's default."""
        if self.oauth_provider == OAuthProvider.GOOGLE:
            default = OAuthEndpoints(
                GOOGLE_AUTHORIZE_URL,
                GOOGLE_TOKEN_URL,
                GOOGLE_SCOPES,
                (("access_type", "offline"), ("prompt", "consent")),
            )
        elif self.oauth_provider == OAuthProvider.MICROSOFT:
            base = f"{(self.oauth_authority or ENTRA_ID_AUTHORITY).rstrip('/')}/"
            base += f"{self.oauth_tenant_id or 'organizations'}/oauth2/v2.0"
            app = self.credentials_source == CredentialsSource.OAUTH_CLIENT_CREDENTIALS
            scopes = MICROSOFT_APP_SCOPES if app else MICROSOFT_USER_SCOPES
            default = OAuthEndpoints(f"{base}/authorize", f"{base}/token", scopes)
        else:
            default = OAuthEndpoints("", "", "")
        return OAuthEndpoints(
            self.oauth_authorize_url or default.authorize_url,
            self.oauth_token_url or default.token_url,
            self.oauth_scopes or default.scopes,
            default.extra_authorize_params,
        )

    def clean(self) -> None:
        self._fill_defaults()
        self._read_certificate()
        errors: dict[str, list[str]] = {}
        for field, message in self._rule_violations():
            errors.setdefault(field, []).append(message)
        if errors:
            raise ValidationError(errors)

    def _fill_defaults(self) -> None:
        """Blank ports and Exchange Online's location come from type and SSL; what
        Autodiscover answered is kept only while the profile still asks it."""
        if not self.auto_discover_server_location or self.incoming_server_location:
            self.autodiscovered_ews_url = ""
        if not self.oauth_authority:
            self.oauth_authority = ENTRA_ID_AUTHORITY
        if not self.server_type:
            return
        if not self.incoming_server_location:
            self.incoming_server_location = facts(self.server_type).default_location
        if self.is_exchange and not self.outgoing_server_location:
            self.outgoing_server_location = self.incoming_server_location
        if self.incoming_port is None:
            self.incoming_port = default_port(self.server_type, Direction.INCOMING, self.incoming_use_ssl)
        if self.outgoing_port is None:
            self.outgoing_port = default_port(self.server_type, Direction.OUTGOING, self.outgoing_use_ssl)

    def _read_certificate(self) -> None:
        """The certificate's expiry, kept beside it (shown, and alerted 30 days ahead)."""
        self.oauth_certificate_expires_on = None
        if self.oauth_certificate:
            try:
                self.oauth_certificate_expires_on = read_certificate(
                    self.oauth_certificate.reveal()
                ).expires_on
            except CertificateError as error:
                raise ValidationError({"oauth_certificate": str(error)}) from error

    def _rule_violations(self) -> list[tuple[str, str]]:
        found = [*self._location_violations(), *self._credential_violations()]
        if self.is_default and (
            EmailServerProfile.objects.filter(is_default=True).exclude(pk=self.pk).exists()
        ):
            found.append(("is_default", "Another profile is already the default for new mailboxes."))
        if self.dav_server_url and not facts(self.server_type).act_over_dav:
            found.append(
                (
                    "dav_server_url",
                    "Only IMAP/SMTP profiles name a CalDAV / CardDAV server: Exchange holds appointments, "
                    "contacts and tasks itself, and POP3/SMTP profiles do not sync them.",
                )
            )
        if self.move_failed_email_to_undeliverable and not self.is_exchange:
            found.append(
                ("move_failed_email_to_undeliverable", "Only Exchange profiles can move failed email.")
            )
        if self.auto_discover_server_location and not facts(self.server_type).ews:
            found.append(
                ("auto_discover_server_location", "Autodiscover applies to Exchange Server profiles only.")
            )
        for direction in Direction.values:
            if (
                getattr(self, f"{direction}_auth_protocol") == AuthProtocol.NTLM
                and not facts(self.server_type).ews
            ):
                found.append((f"{direction}_auth_protocol", "NTLM applies to Exchange Server profiles only."))
        return found

    @property
    def lacks_credentials(self) -> bool:
        """The profile holds its mailboxes' credentials and some are not entered yet:
        the password, or the app registration."""
        if self.credentials_source == CredentialsSource.PROFILE:
            return not self.password
        if self.credentials_source == CredentialsSource.OAUTH_AUTHORIZATION_CODE:
            return bool(self.oauth_client_violations())
        return bool(self.app_registration_violations())

    def app_registration_violations(self) -> list[tuple[str, str]]:
        """What an app registration signing in with client credentials lacks. Not a rule of
        ``clean()``: like a password, it may come after the profile (an Email Router import
        knows no app registration); the form and the API ask for it, and a sync without it
        stops with this reason."""
        if self.credentials_source != CredentialsSource.OAUTH_CLIENT_CREDENTIALS:
            return []
        found = [
            (field, "Required for OAuth client credentials.")
            for field in ("oauth_tenant_id", "oauth_client_id")
            if not getattr(self, field)
        ]
        if not (self.oauth_client_secret or self.oauth_certificate):
            found.append(("oauth_client_secret", "Enter the app's client secret, or upload its certificate."))
        return found

    def oauth_client_violations(self) -> list[tuple[str, str]]:
        """What the app mailboxes connect through (authorization code) lacks; like
        ``app_registration_violations``, asked by the form and the API, not ``clean()``."""
        if self.credentials_source != CredentialsSource.OAUTH_AUTHORIZATION_CODE:
            return []
        found = [("oauth_client_id", "Required for OAuth.")] if not self.oauth_client_id else []
        endpoints = self.oauth_endpoints()
        for field, value in (
            ("oauth_authorize_url", endpoints.authorize_url),
            ("oauth_token_url", endpoints.token_url),
        ):
            if not value:
                found.append((field, "Required with an OAuth provider other than Microsoft or Google."))
        return found

    def _location_violations(self) -> list[tuple[str, str]]:
        found = []
        for direction in Direction.values:
            field = f"{direction}_server_location"
            location = getattr(self, field).strip()
            if not location:
                if not (self.is_exchange and self.auto_discover_server_location):
                    found.append((field, f"The {direction} server location is required."))
            elif self.is_exchange:
                try:
                    URLValidator(schemes=["https", "http"])(location)
                except ValidationError:
                    found.append((field, facts(self.server_type).location_help))
            elif not _HOSTNAME.match(location):
                found.append((field, "Enter a host name or IP address, without scheme or port."))
        return found

    def _credential_violations(self) -> list[tuple[str, str]]:
        found = []
        source = self.credentials_source
        if source == CredentialsSource.PROFILE and not self.username:
            found.append(
                ("username", "A user name is required when credentials are specified in the profile.")
            )
        if facts(self.server_type).app_only and source != CredentialsSource.OAUTH_CLIENT_CREDENTIALS:
            found.append(
                (
                    "credentials_source",
                    "Exchange Online signs in as an app registered in Microsoft Entra ID: "
                    "choose OAuth client credentials.",
                )
            )
        if (
            source == CredentialsSource.OAUTH_CLIENT_CREDENTIALS
            and not facts(self.server_type).oauth_client_credentials
        ):
            found.append(("credentials_source", "OAuth client credentials work with Exchange profiles only."))
        if source == CredentialsSource.OAUTH_AUTHORIZATION_CODE and self.is_exchange:
            found.append(
                (
                    "credentials_source",
                    "Exchange profiles sign in as an app (OAuth client credentials); mailboxes connect "
                    "their own accounts on IMAP/SMTP and POP3/SMTP profiles.",
                )
            )
        if (
            source == CredentialsSource.OAUTH_CLIENT_CREDENTIALS
            and not self.is_exchange
            and self.oauth_provider != OAuthProvider.MICROSOFT
        ):
            found.append(
                (
                    "oauth_provider",
                    "Client credentials sign in to Microsoft's IMAP, POP and SMTP (an app registered in "
                    "Entra ID); other providers' mailboxes connect their accounts.",
                )
            )
        for direction in Direction.values:
            field = f"{direction}_use_impersonation"
            if getattr(self, field) and facts(self.server_type).app_only:
                found.append(
                    (field, "An app reads every mailbox it is allowed to: impersonation does not apply.")
                )
            elif getattr(self, field) and not self.holds_credentials:
                found.append((field, "Impersonation needs credentials specified in the profile."))
        return found
