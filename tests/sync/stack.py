"""An organization wired to the test mail stack: a profile pointing at the test
Dovecot and SMTP relay, and CRM users and queues whose mailboxes live there."""

from __future__ import annotations

import poplib
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient

from crm.choices import TrackIncomingEmail
from crm.models import CrmUser, Queue
from mailboxes.models import ApprovalStatus, Mailbox
from profiles.models import CredentialsSource, EmailServerProfile, ServerType
from tests import factories
from tests.harness.dovecot import Dovecot
from tests.harness.fixtures import MailUser
from tests.harness.smtp_relay import SmtpRelay


@dataclass
class Stack:
    dovecot: Dovecot
    relay: SmtpRelay
    make_mail_user: Any
    profile: EmailServerProfile

    def user_mailbox(self, name: str, *, option: str = TrackIncomingEmail.ALL, **mailbox: Any) -> Mailbox:
        account = self.make_mail_user(name)
        crm_user = factories.crm_user(name.capitalize(), email=account.address, track_incoming_email=option)
        return self._mailbox(account, user=crm_user, **mailbox)

    def queue_mailbox(self, name: str, **mailbox: Any) -> Mailbox:
        account = self.make_mail_user(name)
        queue = factories.queue(name.capitalize(), email=account.address)
        return self._mailbox(account, queue=queue, **mailbox)

    def forward_mailbox(self, name: str = "forward", **mailbox: Any) -> Mailbox:
        """A forward mailbox: no owner; users' rules forward mail to it."""
        return self._mailbox(self.make_mail_user(name), is_forward_mailbox=True, **mailbox)

    def _mailbox(
        self, account: MailUser, *, profile: EmailServerProfile | None = None, **extra: Any
    ) -> Mailbox:
        mailbox = factories.mailbox(
            email_address=account.address,
            profile=profile or self.profile,
            allow_credentials_for_email_processing=True,
            username=account.address,
            password=account.password,
            **extra,
        )
        # As test & enable leaves a mailbox that passed: approved and enabled.
        Mailbox.objects.filter(pk=mailbox.pk).update(
            approval_status=ApprovalStatus.APPROVED, incoming_enabled=True, outgoing_enabled=True
        )
        mailbox.refresh_from_db()
        return mailbox

    def pop3_profile(self, **extra: Any) -> EmailServerProfile:
        return factories.profile(
            "Test POP3",
            server_type=ServerType.POP3_SMTP,
            incoming_server_location=self.dovecot.host,
            incoming_port=self.dovecot.pop3s_port,
            outgoing_server_location=self.relay.host,
            outgoing_port=self.relay.port,
            **extra,
        )

    def master_profile(self, server_type: str = ServerType.IMAP_SMTP) -> EmailServerProfile:
        """Credentials in the profile + impersonation, through Dovecot's master user."""
        pop3 = server_type == ServerType.POP3_SMTP
        return factories.profile(
            f"Master {server_type}",
            server_type=server_type,
            incoming_server_location=self.dovecot.host,
            incoming_port=self.dovecot.pop3s_port if pop3 else self.dovecot.imaps_port,
            outgoing_server_location=self.relay.host,
            outgoing_port=self.relay.port,
            credentials_source=CredentialsSource.PROFILE,
            username=self.dovecot.master_user,
            password=self.dovecot.master_password,
            incoming_use_impersonation=True,
        )

    def imap(self, mailbox: Mailbox) -> IMAPClient:
        """A plain IMAP client on the mailbox, for checking what the server holds."""
        client = IMAPClient(
            self.dovecot.host, port=self.dovecot.imaps_port, ssl_context=self.dovecot.ssl_context()
        )
        client.login(mailbox.username, mailbox.password.reveal())
        return client

    def pop3_listing(self, mailbox: Mailbox) -> list[bytes]:
        """What the server's POP3 LIST shows of the mailbox now."""
        client = poplib.POP3_SSL(
            self.dovecot.host, port=self.dovecot.pop3s_port, context=self.dovecot.ssl_context()
        )
        try:
            client.user(mailbox.username)
            client.pass_(mailbox.password.reveal())
            return client.list()[1]
        finally:
            client.quit()

    def deliver(self, mailbox: Mailbox, raw: bytes) -> None:
        self.dovecot.deliver(mailbox.email_address, raw)


def owner(mailbox: Mailbox) -> CrmUser | Queue | None:
    return mailbox.user or mailbox.queue


def build_stack(settings: Any, dovecot: Dovecot, smtp_relay: SmtpRelay, mail_user: Any) -> Stack:
    settings.SYNC_CA_FILE = str(dovecot.ca_pem_path)
    profile = factories.profile(
        "Test mail stack",
        incoming_server_location=dovecot.host,
        incoming_port=dovecot.imaps_port,
        outgoing_server_location=smtp_relay.host,
        outgoing_port=smtp_relay.port,
        connection_timeout_seconds=10,
    )
    return Stack(dovecot=dovecot, relay=smtp_relay, make_mail_user=mail_user, profile=profile)
