"""Router file sets for the tests: the two folders under files/ (written for
serversync, never produced by the importer's own code), and small routers made
in memory for bad-input cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from crm.choices import IncomingMethod, OutgoingMethod
from crm.models import CrmUser, OrganizationSettings, Queue
from mailboxes.models import Mailbox
from mailboxes.router_import.files import AGENT_FILE, KEY_FILE, STATE_FILE, RouterUpload
from profiles.models import EmailServerProfile
from tests import factories

FILES = Path(__file__).resolve().parent / "files"
MAIN, BRANCH = "contoso-main", "contoso-branch"
CRM_URL = "https://crm.contoso.test/Contoso"
# The moment the tests' clock stands at: 24 hours back is 2025-03-09 12:00 UTC.
NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
# What the test files hold as "encrypted passwords"; no page, API answer or log may show them.
CIPHERTEXTS = (
    "ROUTER-CIPHERTEXT-kT3mZ0Bv9Qx1LwP7yR2sU4nA8cE6hJ5d",
    "ROUTER-CIPHERTEXT-Zx8Lq2Wm4Rt6Yp0Vb3Nc5Hd7Jf9Kg1Se",
    "Q1JNLXBhc3N3b3JkLWNpcGhlcnRleHQtN2Mz",
)


def folder_files(name: str) -> list[Path]:
    """The router's three XML files in a test folder (not the .bin beside them)."""
    return sorted(path for path in (FILES / name).iterdir() if path.suffix.lower() == ".xml")


def uploaded(name: str) -> list[SimpleUploadedFile]:
    """A folder's files as a browser uploads them."""
    return [SimpleUploadedFile(path.name, path.read_bytes()) for path in folder_files(name)]


def upload(name: str, label: str | None = None) -> RouterUpload:
    return RouterUpload(name=label or name, files=list(uploaded(name)))


def minimal_agent(body: str = "") -> bytes:
    return f'<?xml version="1.0" encoding="utf-8"?>\n<Configuration>\n{body}</Configuration>\n'.encode()


STATE = b'<?xml version="1.0"?>\n<SystemState/>\n'
KEY = b'<?xml version="1.0"?>\n<EncryptionKey><Key>T1BBUVVF</Key></EncryptionKey>\n'


def memory_files(*, agent: bytes | None = None, state: bytes = STATE, key: bytes = KEY) -> dict[str, bytes]:
    return {KEY_FILE: key, STATE_FILE: state, AGENT_FILE: minimal_agent() if agent is None else agent}


def memory_upload(name: str = "Router 1", **files: bytes) -> RouterUpload:
    return RouterUpload(
        name=name, files=[SimpleUploadedFile(n, data) for n, data in memory_files(**files).items()]
    )


@dataclass
class Contoso:
    """The organization the test files describe, as serversync knows it."""

    old_profile: EmailServerProfile
    alice: CrmUser
    bob: CrmUser
    carol: CrmUser
    erin: CrmUser
    frank: CrmUser
    support: Queue
    alice_mailbox: Mailbox
    carol_mailbox: Mailbox
    support_mailbox: Mailbox


def build_contoso() -> Contoso:
    organization = OrganizationSettings.load()
    organization.crm_urls = f"{CRM_URL}\nhttp://crm-old.contoso.test:5555/Contoso"
    organization.save()
    old_profile = factories.profile("Old IMAP")
    alice = factories.crm_user(
        "Alice Example", email="alice@contoso.test", external_id="A11CE000-0000-4000-8000-000000000001"
    )
    bob = factories.crm_user("Bob Example", email="bob@contoso.test")
    carol = factories.crm_user(
        "Carol Example", email="carol@contoso.test", external_id="{ca201000-0000-4000-8000-000000000003}"
    )
    erin = factories.crm_user(
        "Erin Example", email="erin@contoso.test", external_id="e5140000-0000-4000-8000-000000000006"
    )
    frank = factories.crm_user(
        "Frank Example", email="frank@contoso.test", external_id="f4a11c00-0000-4000-8000-000000000007"
    )
    support = factories.queue(
        "Support", email="support@contoso.test", external_id="5C990000-0000-4000-8000-000000000005"
    )
    alice_mailbox = factories.mailbox(user=alice, profile=old_profile)
    Mailbox.objects.filter(pk=alice_mailbox.pk).update(
        incoming_enabled=True, outgoing_enabled=True, test_completed_on=timezone.now()
    )
    carol_mailbox = factories.mailbox(user=carol, profile=old_profile)
    support_mailbox = factories.mailbox(
        queue=support,
        profile=None,
        incoming_method=IncomingMethod.EMAIL_ROUTER,
        outgoing_method=OutgoingMethod.EMAIL_ROUTER,
    )
    return Contoso(
        old_profile=old_profile,
        alice=alice,
        bob=bob,
        carol=carol,
        erin=erin,
        frank=frank,
        support=support,
        alice_mailbox=Mailbox.objects.get(pk=alice_mailbox.pk),
        carol_mailbox=carol_mailbox,
        support_mailbox=support_mailbox,
    )


def pending_migration():
    """A pending migration of one small router (for permission probes), made once per test."""
    from mailboxes.models import RouterMigration, RouterMigrationState
    from mailboxes.router_import.service import router_migration_create

    existing = RouterMigration.objects.filter(state=RouterMigrationState.PENDING).first()
    return existing or router_migration_create(routers=[memory_upload()], created_by=None, source="api")
