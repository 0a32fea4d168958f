"""SASL bearer token sign-in (OAuth 2.0) for IMAP, POP3 and SMTP: what the client
sends for XOAUTH2 (Google's, which Microsoft takes too) and OAUTHBEARER (RFC 7628),
and what a refusal says. Plain data, no network: each connector speaks it over
its own protocol (IMAP AUTHENTICATE, POP3 AUTH, SMTP AUTH).

A refused token is answered with an error challenge (a base64 JSON status) that the
client must answer before the server says no: an empty line for XOAUTH2, a single
0x01 for OAUTHBEARER (RFC 7628 3.2.3).
"""

from __future__ import annotations

import base64

from sync.connectors import network
from sync.connectors.base import ServerSettings
from sync.errors import PermanentError

XOAUTH2 = "XOAUTH2"
OAUTHBEARER = "OAUTHBEARER"
MECHANISMS = (XOAUTH2, OAUTHBEARER)
# The code of a token the server did not take (sync.errors' ``code``).
TOKEN_REFUSED = "token_refused"  # noqa: S105 - an error code, not a secret


def initial_response(settings: ServerSettings) -> str:
    """The mechanism's client response, base64, for ``settings.username`` and its token."""
    s = settings
    if s.sasl_mechanism == XOAUTH2:
        text = f"user={s.username}\x01auth=Bearer {s.access_token}\x01\x01"
    elif s.sasl_mechanism == OAUTHBEARER:
        identity = s.username.replace("=", "=3D").replace(",", "=2C")
        text = f"n,a={identity},\x01host={s.host}\x01port={s.port}\x01auth=Bearer {s.access_token}\x01\x01"
    else:
        raise ValueError(f"not a bearer token mechanism: {s.sasl_mechanism!r}")
    return base64.b64encode(text.encode()).decode()


def abort_response(settings: ServerSettings) -> str:
    """What the client answers the error challenge with (base64, "" for an empty line)."""
    return "AQ==" if settings.sasl_mechanism == OAUTHBEARER else ""


def token_refused(settings: ServerSettings, *, protocol: str, detail: str) -> PermanentError:
    """The server did not take the access token: the grant behind it no longer signs
    this mailbox in (revoked, or the account lacks the scope)."""
    return PermanentError(
        f"{protocol} server {network.where(settings)} refused the OAuth access token for "
        f"{settings.username} ({settings.sasl_mechanism}: {detail}). Check that the app may sign in "
        "to this mailbox over this protocol, or connect the mailbox again from its page.",
        code=TOKEN_REFUSED,
    )
