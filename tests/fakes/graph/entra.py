"""Microsoft Entra ID as the Graph test server speaks it: app registrations,
the client credentials grant (a client secret, or a JWT assertion signed with
the app's certificate), the OpenID configuration msal reads, and the access
tokens Graph then checks.

Errors are answered as Entra ID answers them: HTTP 400/401 with ``error``,
``error_description`` starting with the AADSTS code, ``error_codes`` and the
trace fields (Microsoft's "Microsoft Entra authentication and authorization
error codes" page lists the codes and their texts).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Microsoft Graph's application permissions for mail (app roles of the Graph service principal).
MAIL_PERMISSIONS = ("Mail.Read", "Mail.ReadBasic", "Mail.ReadBasic.All", "Mail.ReadWrite", "Mail.Send")


class EntraError(Exception):
    """An answer of the token endpoint other than a token."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def body(self, authority: str) -> dict[str, object]:
        now = datetime.now(UTC)
        trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
        stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.code}: {self.description} Trace ID: {trace} Correlation ID: {correlation} "
                f"Timestamp: {stamp}"
            ),
            "error_codes": [self.code],
            "timestamp": stamp,
            "trace_id": trace,
            "correlation_id": correlation,
            "error_uri": f"{authority}/error?code={self.code}",
        }


@dataclass
class App:
    """An app registration with its service principal in the test tenant."""

    client_id: str
    display_name: str
    secret: str | None
    # PEM: the private key, then the certificate (what ``OAuthApp.certificate_pem`` holds).
    certificate_pem: str = field(default="", repr=False)
    certificate: x509.Certificate | None = field(default=None, repr=False)
    permissions: tuple[str, ...] = ("Mail.ReadWrite", "Mail.Send")
    # Admin consent granted for ``permissions``; without it the token carries no roles.
    consented: bool = True
    # An application access policy (New-ApplicationAccessPolicy -AccessRight RestrictAccess):
    # the mailboxes the app may reach; None: every mailbox.
    allowed_mailboxes: frozenset[str] | None = None
    secret_expired: bool = False

    @property
    def roles(self) -> list[str]:
        return list(self.permissions) if self.consented else []

    def may_reach(self, mailbox: str) -> bool:
        return self.allowed_mailboxes is None or mailbox.lower() in self.allowed_mailboxes

    def thumbprints(self) -> set[str]:
        """The certificate's SHA-1 and SHA-256 thumbprints, base64url (JWS ``x5t`` / ``x5t#S256``)."""
        if self.certificate is None:
            return set()
        return {
            base64.urlsafe_b64encode(self.certificate.fingerprint(algorithm)).decode().rstrip("=")
            for algorithm in (hashes.SHA1(), hashes.SHA256())  # noqa: S303 - x5t is SHA-1 by definition (RFC 7515)
        }


def make_certificate(
    common_name: str, *, not_before: datetime | None = None, not_after: datetime | None = None
) -> tuple[str, x509.Certificate]:
    """A self-signed certificate as administrators upload to an app registration; (key + cert PEM, cert)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (key_pem + certificate.public_bytes(serialization.Encoding.PEM)).decode(), certificate


class Tenant:
    """One Entra ID tenant: its apps, and the key its access tokens are signed with."""

    def __init__(self, authority: str, resource: str, *, domain: str = "contoso.onmicrosoft.com") -> None:
        self.authority = authority  # "https://127.0.0.1:PORT"
        self.resource = resource  # Graph's application ID URI: the tokens' audience
        # Other names of the same resource (a proxy in front of the server): a scope may name them.
        self.aliases: set[str] = set()
        self.tenant_id = str(uuid.uuid4())
        self.domain = domain
        self.display_name = "Contoso"
        self.apps: dict[str, App] = {}
        self.token_lifetime = 3600  # seconds; shorten to test refresh
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.key_id = secrets.token_urlsafe(12)
        self._lock = threading.Lock()

    # -- registrations

    def register(self, app: App) -> App:
        with self._lock:
            self.apps[app.client_id] = app
        return app

    def knows(self, tenant: str) -> bool:
        return tenant.lower() in (self.tenant_id, self.domain)

    # -- discovery (msal reads this before asking for a token)

    def openid_configuration(self, tenant: str) -> dict[str, object]:
        if not self.knows(tenant):
            raise self.unknown_tenant(tenant, error="invalid_tenant")
        base = f"{self.authority}/{self.tenant_id}"
        return {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{self.authority}/{self.tenant_id}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{self.authority}/{self.tenant_id}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "ver"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": self.resource.removeprefix("https://"),
        }

    def instance_discovery(self, authorization_endpoint: str) -> dict[str, object]:
        """What login.microsoftonline.com/common/discovery/instance answers for this instance."""
        # msal names the instance by host alone (no port): only the path's tenant counts.
        tenant = urlsplit(authorization_endpoint).path.strip("/").split("/", 1)[0]
        host = self.authority.removeprefix("https://")
        return {
            "tenant_discovery_endpoint": f"{self.authority}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }

    def keys(self) -> dict[str, object]:
        """The JSON Web Key Set the access tokens verify with (``jwks_uri``)."""
        key = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        return {"keys": [{**key, "kid": self.key_id, "use": "sig", "kty": "RSA"}]}

    # -- the token endpoint

    def token(
        self, tenant: str, form: dict[str, str], basic: tuple[str, str] | None = None
    ) -> dict[str, object]:
        """``POST /{tenant}/oauth2/v2.0/token`` with the client credentials grant."""
        if not self.knows(tenant):
            raise self.unknown_tenant(tenant, error="invalid_request")
        if form.get("grant_type") != "client_credentials":
            raise EntraError(
                400,
                "unsupported_grant_type",
                70003,
                "The app requested an unsupported grant type '{}'.".format(form.get("grant_type", "")),
            )
        client_id = basic[0] if basic else form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            raise EntraError(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{self.display_name}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You may have sent "
                "your authentication request to the wrong tenant.",
            )
        self._check_scope(form.get("scope", ""))
        if "client_assertion" in form:
            self._check_assertion(app, tenant, form)
            method = "2"
        else:
            self._check_secret(app, basic[1] if basic else form.get("client_secret"))
            method = "1"
        return {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": self._access_token(app, method),
        }

    def unknown_tenant(self, tenant: str, *, error: str) -> EntraError:
        return EntraError(
            400,
            error,
            90002,
            f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are "
            "signing into the correct cloud. Check with your subscription administrator, this may happen "
            "if there are no active subscriptions for the tenant.",
        )

    def _check_scope(self, scope: str) -> None:
        scopes = scope.split()
        if len(scopes) == 1 and scopes[0] in {f"{r}/.default" for r in (self.resource, *self.aliases)}:
            return
        if len(scopes) == 1 and scopes[0].endswith("/.default"):
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {scopes[0].removesuffix('/.default')} was not found in the "
                f"tenant named {self.display_name}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the tenant. "
                "You might have sent your authentication request to the wrong tenant.",
            )
        raise EntraError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
            "value with /.default suffixed to the resource identifier (application ID URI).",
        )

    def _check_secret(self, app: App, secret: str | None) -> None:
        if not secret:
            raise EntraError(
                401,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or "
                "'client_secret'.",
            )
        if app.secret is None or not secrets.compare_digest(secret, app.secret):
            raise EntraError(
                401,
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{app.client_id}'.",
            )
        if app.secret_expired:
            raise EntraError(
                401,
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{app.client_id}' are expired. Visit the Azure "
                "portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using "
                "certificate credentials for added security: https://aka.ms/certCreds.",
            )

    def _check_assertion(self, app: App, tenant: str, form: dict[str, str]) -> None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise EntraError(
                400,
                "invalid_request",
                50027,
                "JWT token is invalid or malformed: client_assertion_type must be " + ASSERTION_TYPE + ".",
            )
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.InvalidTokenError as error:
            raise EntraError(400, "invalid_request", 50027, "JWT token is invalid or malformed.") from error
        thumbprint = header.get("x5t#S256") or header.get("x5t") or ""
        if app.certificate is None or thumbprint.rstrip("=") not in app.thumbprints():
            raise self._invalid_signature(app, thumbprint, "The key was not found.")
        if app.certificate.not_valid_after_utc < datetime.now(UTC):
            raise self._invalid_signature(app, thumbprint, "The key used is expired.")
        audiences = [f"{self.authority}/{t}/oauth2/v2.0/token" for t in (self.tenant_id, self.domain, tenant)]
        try:
            claims = jwt.decode(
                assertion,
                app.certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=audiences,
                options={"require": ["exp", "aud", "iss", "sub"], "verify_exp": False, "verify_nbf": False},
            )
        except jwt.InvalidSignatureError as error:
            raise self._invalid_signature(app, thumbprint, "The signature is not valid.") from error
        except jwt.InvalidAudienceError as error:
            raise EntraError(
                401,
                "invalid_client",
                700212,
                f"The client assertion's audience must be the token endpoint {audiences[0]}.",
            ) from error
        except jwt.InvalidTokenError as error:
            raise EntraError(
                400, "invalid_request", 50027, f"JWT token is invalid or malformed: {error}."
            ) from error
        if claims["iss"] != app.client_id or claims["sub"] != app.client_id:
            raise EntraError(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter. Review the "
                "documentation at "
                "https://learn.microsoft.com/entra/identity-platform/certificate-credentials.",
            )
        self._check_time_range(claims)

    def _check_time_range(self, claims: dict[str, object]) -> None:
        now = time.time()
        expires = float(claims["exp"])  # type: ignore[arg-type]
        valid_from = float(claims.get("nbf", claims.get("iat", 0)))  # type: ignore[arg-type]
        # Entra ID allows five minutes of clock skew.
        if not valid_from - 300 <= now <= expires + 300:
            raise EntraError(
                401,
                "invalid_client",
                700024,
                f"Client assertion is not within its valid time range. Current time: {_iso(now)}, assertion "
                f"valid from {_iso(valid_from)}, expiry time of assertion {_iso(expires)}. Review the "
                "documentation at "
                "https://learn.microsoft.com/entra/identity-platform/certificate-credentials.",
            )

    def _invalid_signature(self, app: App, thumbprint: str, reason: str) -> EntraError:
        return EntraError(
            401,
            "invalid_client",
            700027,
            f"Client assertion failed signature validation. [Reason - {reason}, Thumbprint of key used by "
            f"client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS "
            f"Graph to see configured keys for app Id '{app.client_id}'.]",
        )

    def _access_token(self, app: App, method: str) -> str:
        """A v1.0 access token as Entra ID issues for Microsoft Graph (app-only)."""
        now = int(time.time())
        claims: dict[str, object] = {
            "aud": self.resource,
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "app_displayname": app.display_name,
            "appid": app.client_id,
            "appidacr": method,
            "idtyp": "app",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, app.client_id)),
            "tid": self.tenant_id,
            "ver": "1.0",
        }
        # Without admin consent Entra ID still issues an app-only token, only without a
        # ``roles`` claim (the client credentials flow page: application permissions granted
        # are in ``roles``); the API then refuses each call. Reported so in Microsoft Q&A
        # "Access request token for Graph API being generated without assigned roles"
        # (learn.microsoft.com/answers/questions/5672988) and in Azure-Samples/
        # active-directory-dotnetcore-daemon-certificate-credential#11 (401 until "Grant admin
        # consent"). AADSTS65001 ("has not consented") belongs to flows with a user.
        if app.roles:
            claims["roles"] = app.roles
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.key_id})

    # -- what Graph checks

    def read_token(self, token: str) -> dict[str, object]:
        """The claims of an access token this tenant issued; jwt.InvalidTokenError if it did not, or it "
        "expired."""
        claims: dict[str, object] = jwt.decode(
            token,
            self._key.public_key(),
            algorithms=["RS256"],
            audience=self.resource,
            issuer=f"https://sts.windows.net/{self.tenant_id}/",
            options={"require": ["exp", "aud", "iss", "appid"]},
        )
        return claims


def new_app(
    client_id: str | None,
    *,
    secret: bool | str,
    certificate: bool,
    permissions: Iterable[str],
    consented: bool,
    allowed_mailboxes: Iterable[str] | None,
) -> App:
    client_id = client_id or str(uuid.uuid4())
    pem, cert = make_certificate(f"serversync {client_id}") if certificate else ("", None)
    return App(
        client_id=client_id,
        display_name=f"serversync test {client_id[:8]}",
        secret=(secrets.token_urlsafe(30) if secret is True else secret) or None,
        certificate_pem=pem,
        certificate=cert,
        permissions=tuple(permissions),
        consented=consented,
        allowed_mailboxes=None
        if allowed_mailboxes is None
        else frozenset(a.lower() for a in allowed_mailboxes),
    )


def _iso(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%m/%d/%Y %H:%M:%S")
