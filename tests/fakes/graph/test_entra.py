"""Entra ID's token endpoint as msal meets it: secrets, certificates, and each refusal."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import jwt
import msal
import pytest
from cryptography.hazmat.primitives import hashes

from tests.fakes.graph.client import Graph, confidential_app, session, token
from tests.fakes.graph.entra import App, make_certificate


def claims(access_token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(access_token, options={"verify_signature": False})
    return decoded


def test_a_token_with_a_client_secret_carries_the_consented_application_permissions(graph_server):
    app = graph_server.register_app(permissions=("Mail.ReadWrite", "Mail.Send"))
    result = token(graph_server, app)
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == graph_server.token_lifetime
    issued = claims(result["access_token"])
    assert issued["roles"] == ["Mail.ReadWrite", "Mail.Send"]
    assert issued["aud"] == graph_server.url
    assert issued["appid"] == app.client_id
    assert issued["tid"] == graph_server.tenant_id
    assert issued["appidacr"] == "1"  # a secret


def test_the_tenant_may_be_named_by_its_domain(graph_server):
    app = graph_server.register_app()
    result = confidential_app(graph_server, app, tenant=graph_server.tenant.domain).acquire_token_for_client(
        [f"{graph_server.url}/.default"]
    )
    assert "access_token" in result, result


@pytest.mark.parametrize("how", ["public_certificate", "thumbprint"])
def test_a_token_with_a_certificate(graph_server, how):
    app = graph_server.register_app(secret=False, certificate=True)
    assert app.certificate is not None
    key = app.certificate_pem.split("-----BEGIN CERTIFICATE-----")[0]
    if how == "public_certificate":  # PS256, x5t#S256 (msal's choice when it has the certificate)
        credential = {"private_key": key, "public_certificate": app.certificate_pem[len(key) :]}
    else:  # RS256, x5t: the SHA-1 thumbprint the portal shows
        credential = {"private_key": key, "thumbprint": app.certificate.fingerprint(hashes.SHA1()).hex()}  # noqa: S303
    result = token(graph_server, app, client_credential=credential)
    assert "access_token" in result, result
    assert claims(result["access_token"])["appidacr"] == "2"  # a certificate


def error_of(result: dict[str, object]) -> tuple[object, object]:
    assert "access_token" not in result
    description = str(result["error_description"])
    return result["error"], description.split(":", 1)[0]


def test_an_unknown_tenant_stops_msal_at_discovery(graph_server):
    app = graph_server.register_app()
    with pytest.raises(ValueError, match="Unable to get authority configuration") as raised:
        confidential_app(graph_server, app, tenant="00000000-0000-0000-0000-000000000000")
    # msal keeps Entra ID's answer in the exception it replaced.
    assert "AADSTS90002: Tenant '00000000-0000-0000-0000-000000000000' not found." in str(
        raised.value.__context__
    )


def test_the_token_endpoint_refuses_an_unknown_tenant(graph_server):
    app = graph_server.register_app()
    answer = session(graph_server).post(
        f"{graph_server.authority}/contoso.example/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": app.client_id,
            "client_secret": app.secret,
            "scope": f"{graph_server.url}/.default",
        },
        timeout=10,
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["error_codes"] == [90002]
    assert body["error_description"].startswith("AADSTS90002: Tenant 'contoso.example' not found.")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(body)


def test_an_unknown_client(graph_server):
    app = graph_server.register_app()
    app_elsewhere = graph_server.register_app()
    del graph_server.tenant.apps[app_elsewhere.client_id]
    assert error_of(token(graph_server, app_elsewhere)) == ("unauthorized_client", "AADSTS700016")
    assert "access_token" in token(graph_server, app)


def test_a_wrong_secret(graph_server):
    app = graph_server.register_app()
    result = token(graph_server, app, client_credential="the secret's id, not its value")
    assert error_of(result) == ("invalid_client", "AADSTS7000215")
    assert result["error_codes"] == [7000215]


def test_an_expired_secret(graph_server):
    app = graph_server.register_app()
    app.secret_expired = True
    assert error_of(token(graph_server, app)) == ("invalid_client", "AADSTS7000222")


def test_a_certificate_the_app_does_not_have(graph_server):
    app = graph_server.register_app(secret=False, certificate=True)
    other, _ = make_certificate("someone else")
    key, cert = other.split("-----BEGIN CERTIFICATE-----")
    result = token(
        graph_server,
        app,
        client_credential={"private_key": key, "public_certificate": "-----BEGIN CERTIFICATE-----" + cert},
    )
    assert error_of(result) == ("invalid_client", "AADSTS700027")
    assert "The key was not found." in str(result["error_description"])


def test_an_expired_certificate(graph_server):
    app = graph_server.register_app(secret=False)
    now = datetime.now(UTC)
    app.certificate_pem, app.certificate = make_certificate(
        "expired", not_before=now - timedelta(days=400), not_after=now - timedelta(days=1)
    )
    key = app.certificate_pem.split("-----BEGIN CERTIFICATE-----")[0]
    result = token(
        graph_server,
        app,
        client_credential={"private_key": key, "public_certificate": app.certificate_pem[len(key) :]},
    )
    assert error_of(result) == ("invalid_client", "AADSTS700027")
    assert "The key used is expired." in str(result["error_description"])


def assertion(app: App, audience: str, **claims: object) -> str:
    assert app.certificate is not None
    key = app.certificate_pem.split("-----BEGIN CERTIFICATE-----")[0]
    x5t = base64.urlsafe_b64encode(app.certificate.fingerprint(hashes.SHA256())).decode().rstrip("=")
    now = time.time()
    payload = {
        "aud": audience,
        "iss": app.client_id,
        "sub": app.client_id,
        "jti": "1",
        "iat": now,
        "exp": now + 600,
    }
    payload.update(claims)
    return jwt.encode(payload, key, algorithm="PS256", headers={"x5t#S256": x5t})


def test_an_assertion_out_of_its_time_range(graph_server):
    app = graph_server.register_app(secret=False, certificate=True)
    audience = f"{graph_server.authority}/{graph_server.tenant_id}/oauth2/v2.0/token"
    expired = assertion(app, audience, iat=time.time() - 7200, exp=time.time() - 3600)
    result = token(graph_server, app, client_credential={"client_assertion": lambda: expired})
    assert error_of(result) == ("invalid_client", "AADSTS700024")
    assert "Client assertion is not within its valid time range." in str(result["error_description"])

    good = assertion(app, audience)
    assert "access_token" in token(graph_server, app, client_credential={"client_assertion": lambda: good})


def test_an_assertion_for_another_audience_or_app(graph_server):
    app = graph_server.register_app(secret=False, certificate=True)
    wrong_audience = assertion(app, "https://login.microsoftonline.com/common/oauth2/v2.0/token")
    assert (
        error_of(token(graph_server, app, client_credential={"client_assertion": lambda: wrong_audience}))[0]
        == "invalid_client"
    )
    audience = f"{graph_server.authority}/{graph_server.tenant_id}/oauth2/v2.0/token"
    someone_else = assertion(app, audience, iss="another-app", sub="another-app")
    assert error_of(
        token(graph_server, app, client_credential={"client_assertion": lambda: someone_else})
    ) == (
        "invalid_client",
        "AADSTS700021",
    )


def test_without_admin_consent_the_token_has_no_roles_and_graph_refuses(graph_server):
    app = graph_server.register_app(consented=False)
    result = token(graph_server, app)
    assert "roles" not in claims(result["access_token"])
    graph_server.add_user(address := "noconsent@contoso.onmicrosoft.com")
    answer = Graph(graph_server, app, address).get("mailFolders/inbox")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "ErrorAccessDenied"


def test_a_scope_that_is_not_graphs(graph_server):
    app = graph_server.register_app()
    result = confidential_app(graph_server, app).acquire_token_for_client(
        ["https://outlook.office365.com/.default"]
    )
    assert error_of(result) == ("invalid_resource", "AADSTS500011")
    result = confidential_app(graph_server, app).acquire_token_for_client([f"{graph_server.url}/Mail.Read"])
    assert error_of(result) == ("invalid_scope", "AADSTS1002012")


def test_an_expired_token_is_refused_by_graph_and_a_new_one_taken(graph_server, monkeypatch):
    graph_server.add_user(address := "expiry@contoso.onmicrosoft.com")
    app = graph_server.register_app()
    monkeypatch.setattr(graph_server.tenant, "token_lifetime", -60)  # issued already expired
    client = Graph(graph_server, app, address)
    answer = client.get("mailFolders/inbox")
    assert answer.status_code == 401
    assert answer.json()["error"] == answer.json()["error"] | {
        "code": "InvalidAuthenticationToken",
        "message": "Lifetime validation failed, the token is expired.",
    }
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")
    monkeypatch.setattr(graph_server.tenant, "token_lifetime", 3600)
    assert Graph(graph_server, app, address).get("mailFolders/inbox").status_code == 200


def test_msal_may_ask_the_server_for_instance_discovery(graph_server):
    """Where a client keeps msal's instance discovery on, pointed at the authority itself."""
    app = graph_server.register_app()
    client = msal.ConfidentialClientApplication(
        app.client_id,
        client_credential=app.secret,
        authority=f"{graph_server.authority}/{graph_server.tenant_id}",
        instance_discovery=f"{graph_server.authority}/common/discovery/instance",
        http_client=session(graph_server),
    )
    assert "access_token" in client.acquire_token_for_client([f"{graph_server.url}/.default"])
    assert [r.path for r in graph_server.requests[-3:]] == [
        "/common/discovery/instance",
        f"/{graph_server.tenant_id}/v2.0/.well-known/openid-configuration",
        f"/{graph_server.tenant_id}/oauth2/v2.0/token",
    ]


def test_access_tokens_verify_with_the_published_keys(graph_server):
    app = graph_server.register_app()
    access_token = token(graph_server, app)["access_token"]
    http = session(graph_server)
    configuration = http.get(
        f"{graph_server.authority}/{graph_server.tenant_id}/v2.0/.well-known/openid-configuration", timeout=10
    ).json()
    keys = jwt.PyJWKSet.from_dict(http.get(configuration["jwks_uri"], timeout=10).json())
    key = keys[jwt.get_unverified_header(access_token)["kid"]]
    assert (
        jwt.decode(access_token, key.key, algorithms=["RS256"], audience=graph_server.url)["appid"]
        == app.client_id
    )
