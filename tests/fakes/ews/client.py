"""exchangelib (the real client) pointed at the EWS test server, for this folder's tests."""

from __future__ import annotations

import contextlib
from typing import Any

import requests.adapters
from exchangelib import DELEGATE, NTLM, Account, Build, Configuration, Credentials, FailFast, Version
from exchangelib.protocol import BaseProtocol, Protocol

from tests.fakes.ews.server import EwsServer

# What the server reports (Exchange 2019) with the API version its schema speaks.
VERSION = Version(build=Build(15, 2, 1544, 4), api_version="Exchange2013")


def trusting_adapter(ca_file: str) -> type[requests.adapters.HTTPAdapter]:
    """An adapter class verifying certificates against ``ca_file`` (exchangelib takes a class)."""

    class Adapter(requests.adapters.HTTPAdapter):
        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            super().cert_verify(conn, url, ca_file, cert)

    return Adapter


def account(
    server: EwsServer,
    address: str,
    username: str,
    password: str,
    *,
    auth: str = NTLM,
    version: Version | None = VERSION,
    access_type: str = DELEGATE,
    credentials: Any = None,
) -> Account:
    config = Configuration(
        service_endpoint=server.url,
        credentials=credentials or Credentials(username, password),
        auth_type=auth,
        version=version,
        retry_policy=FailFast(),
    )
    return Account(address, config=config, autodiscover=False, access_type=access_type)


def forget(account: Account) -> None:
    """Close its connections and drop exchangelib's cached protocol (kept per process otherwise)."""
    account.protocol.close()
    with contextlib.suppress(KeyError):
        del Protocol[account.protocol.config]


__all__ = ["VERSION", "BaseProtocol", "account", "forget", "trusting_adapter"]
