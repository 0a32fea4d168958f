"""An organization on Exchange: a profile pointing at the Microsoft Graph test server
(Exchange Online) or the EWS test server (Exchange Server), and mailboxes there.

The engine tests of tests/sync/test_exchange_engine.py run on both through one shape:
put mail in, read what the server holds, spoil cursors, throttle.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from crm.choices import TrackIncomingEmail
from mailboxes.models import ApprovalStatus, Mailbox
from profiles.models import AuthProtocol, CredentialsSource, EmailServerProfile, ServerType
from tests import factories
from tests.fakes.ews.fixtures import DOMAIN, SERVER_VERSION
from tests.fakes.ews.server import EwsServer
from tests.fakes.graph.server import GraphServer

_numbers = itertools.count(1)


class ExchangeStack(Protocol):
    profile: EmailServerProfile

    def user_mailbox(self, name: str) -> Mailbox: ...
    def deliver(self, mailbox: Mailbox, raw: bytes, folder: str = "Inbox") -> None: ...
    def create_folder(self, mailbox: Mailbox, path: str) -> None: ...
    def inbox(self, mailbox: Mailbox, folder: str = "Inbox") -> list[bytes]: ...
    def sent_items(self, mailbox: Mailbox) -> list[bytes]: ...
    def invalidate_cursors(self) -> None: ...
    def throttle(self, seconds: int) -> None: ...
    def spoil_credentials(self) -> None: ...


def enabled(mailbox: Mailbox) -> Mailbox:
    """As test & enable leaves a mailbox that passed: approved and enabled."""
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status=ApprovalStatus.APPROVED, incoming_enabled=True, outgoing_enabled=True
    )
    mailbox.refresh_from_db()
    return mailbox


def _crm_mailbox(name: str, address: str, profile: EmailServerProfile, **extra: Any) -> Mailbox:
    user = factories.crm_user(name.capitalize(), email=address, track_incoming_email=TrackIncomingEmail.ALL)
    return enabled(factories.mailbox(email_address=address, profile=profile, user=user, **extra))


@dataclass
class GraphStack:
    """Exchange Online: an app registration on the Graph test server signs in for every mailbox."""

    server: GraphServer
    profile: EmailServerProfile

    @classmethod
    def build(
        cls,
        settings: Any,
        server: GraphServer,
        permissions: tuple[str, ...] = ("Mail.ReadWrite", "Mail.Send"),
    ) -> GraphStack:
        settings.SYNC_CA_FILE = server.ca_file
        app = server.register_app(permissions=permissions)
        profile = factories.profile(
            f"Exchange Online {next(_numbers)}",
            server_type=ServerType.EXCHANGE_ONLINE,
            incoming_server_location=server.url,
            outgoing_server_location=server.url,
            credentials_source=CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
            oauth_tenant_id=server.tenant_id,
            oauth_client_id=app.client_id,
            oauth_client_secret=app.secret,
            oauth_authority=server.authority,
            connection_timeout_seconds=10,
        )
        return cls(server, profile)

    def user_mailbox(self, name: str) -> Mailbox:
        address = f"{name}{next(_numbers)}@contoso.onmicrosoft.com"
        self.server.add_user(address)
        return _crm_mailbox(name, address, self.profile)

    def deliver(self, mailbox: Mailbox, raw: bytes, folder: str = "Inbox") -> None:
        self.server.deliver(mailbox.email_address, raw, folder)

    def create_folder(self, mailbox: Mailbox, path: str) -> None:
        self.server.create_folder(mailbox.email_address, path)

    def inbox(self, mailbox: Mailbox, folder: str = "Inbox") -> list[bytes]:
        return self.server.messages(mailbox.email_address, folder)

    def sent_items(self, mailbox: Mailbox) -> list[bytes]:
        return self.server.sent_items(mailbox.email_address)

    def invalidate_cursors(self) -> None:
        self.server.expire_delta_tokens()

    def throttle(self, seconds: int) -> None:
        self.server.throttle(1, retry_after=seconds)

    def spoil_credentials(self) -> None:
        self.profile.oauth_client_secret = "not-the-secret"
        self.profile.save(update_fields=["oauth_client_secret"])


def ews_profile(url: str, **extra: Any) -> EmailServerProfile:
    return factories.profile(
        f"Exchange Server {next(_numbers)}",
        server_type=ServerType.EXCHANGE_SERVER,
        incoming_server_location=url,
        outgoing_server_location=url,
        incoming_auth_protocol=AuthProtocol.NTLM,
        outgoing_auth_protocol=AuthProtocol.NTLM,
        connection_timeout_seconds=10,
        **extra,
    )


@dataclass
class EwsStack:
    """Exchange Server: each mailbox signs in to the EWS test server with its own credentials (NTLM)."""

    server: EwsServer
    profile: EmailServerProfile

    @classmethod
    def build(cls, settings: Any, server: EwsServer) -> EwsStack:
        settings.SYNC_CA_FILE = server.ca_file
        return cls(server, ews_profile(server.url, exchange_server_version=SERVER_VERSION))

    def user_mailbox(self, name: str) -> Mailbox:
        address = f"{name}{next(_numbers)}@{DOMAIN}"
        password = secrets.token_urlsafe(12)
        self.server.add_user(address, password)
        return _crm_mailbox(
            name,
            address,
            self.profile,
            username=address,
            password=password,
            allow_credentials_for_email_processing=True,
        )

    def deliver(self, mailbox: Mailbox, raw: bytes, folder: str = "Inbox") -> None:
        self.server.deliver(mailbox.email_address, raw, folder)

    def create_folder(self, mailbox: Mailbox, path: str) -> None:
        self.server.create_folder(mailbox.email_address, path)

    def inbox(self, mailbox: Mailbox, folder: str = "Inbox") -> list[bytes]:
        return self.server.messages(mailbox.email_address, folder)

    def sent_items(self, mailbox: Mailbox) -> list[bytes]:
        return self.server.sent_items(mailbox.email_address)

    def invalidate_cursors(self) -> None:
        self.server.invalidate_sync_states()

    def throttle(self, seconds: int) -> None:
        self.server.busy(1, back_off_ms=seconds * 1000)

    def spoil_credentials(self) -> None:
        for mailbox in Mailbox.objects.filter(profile=self.profile):
            mailbox.password = "not-the-password"
            mailbox.save(update_fields=["password"])
