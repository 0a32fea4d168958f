"""The CRM side of the email benchmark: one profile on the benchmark's mail stack,
users' mailboxes on it (as test & enable leaves them), and the records the
corpus's parties resolve to. Needs Django set up."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from bench.mail_corpus import CrmRecords
from bench.mail_stack import MailStack, MailUser
from crm.choices import TrackIncomingEmail
from crm.models import Account, Contact, CrmUser
from mailboxes.models import ApprovalStatus, Mailbox
from mailboxes.services import mailbox_create
from profiles.models import EmailServerProfile, ServerType


@dataclass(frozen=True)
class Bench:
    """What every benchmark of one run shares."""

    options: argparse.Namespace
    stack: MailStack
    profile: EmailServerProfile
    workdir: Path  # on tmpfs, removed at the end

    def profiled(self, name: str) -> bool:
        return name in self.options.profile


# What the scheduler's task loads before it calls the engine (sync.scheduler.run_claimed).
MAILBOX_RELATIONS = ("profile", "user", "queue")


def stack_profile(stack: MailStack) -> EmailServerProfile:
    """IMAP over implicit TLS to Dovecot, SMTP with STARTTLS to the relay (as the tests' stack)."""
    return EmailServerProfile.objects.create(
        name="Benchmark mail stack",
        server_type=ServerType.IMAP_SMTP,
        incoming_server_location=stack.dovecot.host,
        incoming_port=stack.dovecot.imaps_port,
        outgoing_server_location=stack.relay.host,
        outgoing_port=stack.relay.port,
        connection_timeout_seconds=60,
    )


def user_mailbox(
    account: MailUser, profile: EmailServerProfile, *, name: str, option: str = TrackIncomingEmail.ALL
) -> Mailbox:
    """A CRM user's mailbox with its own credentials, approved and enabled both ways."""
    owner = CrmUser.objects.create(full_name=name, email=account.address, track_incoming_email=option)
    mailbox = mailbox_create(
        data={
            "user": owner,
            "email_address": account.address,
            "profile": profile,
            "allow_credentials_for_email_processing": True,
            "username": account.address,
            "password": account.password,
        }
    )
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status=ApprovalStatus.APPROVED, incoming_enabled=True, outgoing_enabled=True
    )
    return fresh(mailbox.pk)


def fresh(mailbox_id: int) -> Mailbox:
    """The mailbox as a worker's task gets it: loaded anew, nothing cached from earlier runs."""
    return Mailbox.objects.select_related(*MAILBOX_RELATIONS).get(pk=mailbox_id)


@contextmanager
def run_budget(messages: int) -> Iterator[None]:
    """Runs inside take at most this many messages (incoming) or emails (outgoing), as
    SYNC_RUN_MAX_MESSAGES says; the benchmarks cut their work into runs of a chunk each."""
    before = settings.SYNC_RUN_MAX_MESSAGES
    settings.SYNC_RUN_MAX_MESSAGES = messages
    try:
        yield
    finally:
        settings.SYNC_RUN_MAX_MESSAGES = before


def add_records(records: CrmRecords) -> None:
    Account.objects.bulk_create(Account(name=p.name, email=p.address) for p in records.accounts)
    Contact.objects.bulk_create(
        Contact(first_name=p.name.rpartition(" ")[0], last_name=p.name.rpartition(" ")[2], email=p.address)
        for p in records.contacts
    )
