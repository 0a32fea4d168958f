"""Each direction's state is named once (mailboxes.models.DIRECTION_FIELDS), and the
names are the model's."""

from __future__ import annotations

from dataclasses import asdict

from mailboxes.models import DIRECTION_FIELDS, SYNC_DIRECTIONS, Mailbox
from sync.models import SyncKind

STATE_SUFFIXES = ("_method", "_status", "_enabled", "_transient_failures", "_postponed_until")


def test_the_directions_are_the_sync_kinds():
    assert SYNC_DIRECTIONS == tuple(DIRECTION_FIELDS) == tuple(SyncKind.values)


def test_every_name_is_a_field_of_the_mailbox_and_every_direction_field_has_a_name():
    concrete = {field.name for field in Mailbox._meta.concrete_fields}
    named = {name for fields in DIRECTION_FIELDS.values() for name in asdict(fields).values()}
    per_direction = {
        name
        for name in concrete
        if name.startswith(tuple(f"{d}_" for d in SYNC_DIRECTIONS)) and name.endswith(STATE_SUFFIXES)
    }
    assert named <= concrete
    assert named == per_direction
    for direction, fields in DIRECTION_FIELDS.items():
        assert all(name.startswith(f"{direction}_") for name in asdict(fields).values())


def test_the_readers_read_the_named_fields():
    mailbox = Mailbox(outgoing_status="failure", outgoing_enabled=True, outgoing_transient_failures=2)
    outgoing = DIRECTION_FIELDS[SyncKind.OUTGOING]
    assert outgoing.status_of(mailbox) == "failure"
    assert outgoing.enabled_of(mailbox) is True
    assert outgoing.transient_failures_of(mailbox) == 2
    assert outgoing.postponed_until_of(mailbox) is None
