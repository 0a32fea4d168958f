"""Bad input: each gets a clear error naming the router and file, and changes nothing."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from mailboxes.models import Mailbox, RouterMigration, RouterMigrationFile
from mailboxes.router_import.errors import RouterImportError
from mailboxes.router_import.files import AGENT_FILE, KEY_FILE, MAX_BYTES, STATE_FILE, RouterUpload
from mailboxes.router_import.service import router_migration_create
from profiles.models import EmailServerProfile
from tests.mailboxes.router_import.routers import KEY, Contoso, memory_files, minimal_agent, upload

pytestmark = pytest.mark.django_db

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE Configuration [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Configuration><ProviderConfiguration><EmailAddress>&lol9;</EmailAddress></ProviderConfiguration></Configuration>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE Configuration [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Configuration><ProviderConfiguration><EmailAddress>&secret;</EmailAddress></ProviderConfiguration></Configuration>
"""
# A real agent file cut off in the middle of line 4.
TRUNCATED = b"""<?xml version="1.0" encoding="utf-8"?>
<Configuration>
  <ProviderConfiguration>
    <EmailAddress>alice@contoso.test</Email"""


def files(**named: bytes) -> list[SimpleUploadedFile]:
    return [SimpleUploadedFile(name, data) for name, data in named.items()]


def router(name: str = "Router 1", **overrides: bytes) -> RouterUpload:
    contents = {**memory_files(), **overrides}
    return RouterUpload(name=name, files=files(**contents))


def assert_refused(routers: list[RouterUpload], *expected: str) -> None:
    before = (
        EmailServerProfile.objects.count(),
        list(Mailbox.objects.order_by("pk").values()),
    )
    with pytest.raises(RouterImportError) as refused:
        router_migration_create(routers=routers, created_by=None, source="api")
    for text in expected:
        assert text in str(refused.value)
    assert RouterMigration.objects.count() == 0
    assert RouterMigrationFile.objects.count() == 0
    assert (EmailServerProfile.objects.count(), list(Mailbox.objects.order_by("pk").values())) == before


def test_a_missing_file(contoso: Contoso):
    upload_ = RouterUpload(name="Router 2", files=files(**{KEY_FILE: KEY, AGENT_FILE: minimal_agent()}))
    assert_refused(
        [upload("contoso-main", "Router 1"), upload_],
        f"Router 2: {STATE_FILE} is missing; each router needs all three files.",
    )


def test_an_unknown_file_name(contoso: Contoso):
    extra = router()
    extra.files.append(SimpleUploadedFile("Microsoft.Crm.Tools.EmailAgent.Configuration.bin", b"\x00\x01"))
    assert_refused(
        [extra],
        "Router 1: Microsoft.Crm.Tools.EmailAgent.Configuration.bin is not an Email Router file (expected "
        f"{KEY_FILE}, {STATE_FILE}, {AGENT_FILE}).",
    )


def test_a_doubled_file(contoso: Contoso):
    doubled = router()
    doubled.files.append(SimpleUploadedFile("ENCRYPTIONKEY.XML", KEY))
    assert_refused(
        [doubled], "Router 1: EncryptionKey.xml was given 2 times (EncryptionKey.xml, ENCRYPTIONKEY.XML)."
    )


def test_an_empty_file(contoso: Contoso):
    assert_refused([router(**{STATE_FILE: b""})], f"Router 1: {STATE_FILE} is empty.")


def test_a_file_of_only_a_byte_order_mark_and_blanks_is_empty(contoso: Contoso):
    assert_refused([router(**{KEY_FILE: b"\xef\xbb\xbf \r\n"})], f"Router 1: {KEY_FILE} is empty.")


def test_one_byte_over_32_mib_in_total(contoso: Contoso):
    """Two routers whose files come to 33,554,433 bytes together, each file under the limit."""
    first = memory_files()
    second = memory_files()
    small = sum(map(len, first.values())) + len(second[KEY_FILE]) + len(second[STATE_FILE])
    padding = MAX_BYTES + 1 - small - len(minimal_agent())
    second[AGENT_FILE] = minimal_agent(" " * padding)
    routers = [RouterUpload("Router 1", files(**first)), RouterUpload("Router 2", files(**second))]
    assert sum(len(f) for f in [*first.values(), *second.values()]) == 33_554_433

    assert_refused(
        routers,
        "The files come to 33,554,433 bytes together; a migration takes at most 33,554,432 bytes (32 MiB).",
    )


def test_exactly_32_mib_in_total_is_accepted(contoso: Contoso):
    first = memory_files()
    padding = MAX_BYTES - len(first[KEY_FILE]) - len(first[STATE_FILE]) - len(minimal_agent())
    first[AGENT_FILE] = minimal_agent(" " * padding)

    migration = router_migration_create(
        routers=[RouterUpload("Router 1", files(**first))], created_by=None, source="api"
    )
    assert sum(migration.files.values_list("size", flat=True)) == MAX_BYTES


def test_one_file_over_32_mib(contoso: Contoso):
    big = minimal_agent(" " * (MAX_BYTES + 1))
    assert_refused(
        [router(**{AGENT_FILE: big})],
        f"Router 1: {AGENT_FILE} is {len(big):,} bytes; each file may be at most 33,554,432 bytes (32 MiB).",
    )


def test_a_billion_laughs_document(contoso: Contoso):
    assert_refused(
        [router(**{AGENT_FILE: BILLION_LAUGHS})],
        f"Router 1, {AGENT_FILE}: declares the XML entity 'lol'; entity declarations are refused",
    )


def test_an_external_entity_document(contoso: Contoso):
    assert_refused(
        [router(name="Router 3", **{STATE_FILE: EXTERNAL_ENTITY})],
        f"Router 3, {STATE_FILE}: declares the external entity 'secret' (file:///etc/passwd); "
        "external entities are refused.",
    )


def test_truncated_xml(contoso: Contoso):
    assert_refused(
        [router(**{AGENT_FILE: TRUNCATED})],
        f"Router 1, {AGENT_FILE}, line 4, column 37: the XML is not well-formed (unclosed token).",
    )


def test_a_file_that_is_not_the_routers_configuration(contoso: Contoso):
    assert_refused(
        [router(**{AGENT_FILE: b"<html><body>Not XML config</body></html>"})],
        f"Router 1, {AGENT_FILE}: the root element is <html>, not <Configuration>",
    )


def test_more_than_four_routers(contoso: Contoso):
    assert_refused(
        [router(f"Router {n}") for n in range(1, 6)], "At most 4 Email Routers per migration; 5 were given."
    )


def test_no_router_at_all(contoso: Contoso):
    assert_refused([], "Upload the three files of at least one Email Router.")


def test_every_router_is_checked_and_all_problems_named(contoso: Contoso):
    assert_refused(
        [router("Router 1", **{AGENT_FILE: TRUNCATED}), router("Router 2", **{KEY_FILE: BILLION_LAUGHS})],
        f"Router 1, {AGENT_FILE}, line 4",
        f"Router 2, {KEY_FILE}: declares the XML entity 'lol'",
    )


def test_a_byte_order_mark_that_contradicts_the_declared_encoding_is_believed(contoso: Contoso):
    """Windows tools write UTF-16 files that still say encoding="utf-8": the mark counts."""
    agent = minimal_agent().decode().encode("utf-16")
    migration = router_migration_create(
        routers=[router(**{AGENT_FILE: agent})], created_by=None, source="api"
    )
    assert migration.review["routers"][0]["entries"] == 0


def test_invalid_utf16_after_its_mark(contoso: Contoso):
    assert_refused(
        [router(**{AGENT_FILE: b"\xff\xfe<\x00C\x00\x00\xd8"})],
        f"Router 1, {AGENT_FILE}: starts with a UTF-16 byte order mark but is not valid UTF-16",
    )
