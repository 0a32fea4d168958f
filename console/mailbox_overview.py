"""Everything the mailbox page and its support report show about one mailbox:
statuses, the folders it reads, recent sync runs, folder cursors, alerts and
quarantined messages; and, when it syncs them, its appointments, contacts and tasks
(console.act_overview).

Credentials are never part of it: the overview says only whether each one is
set, and every free text that came from a mail server (an error, an alert) is
read through a redactor that blanks the mailbox's and its profile's secrets,
in case a server echoed one back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from django.db.models import Case, Count, Field, Model, OuterRef, Q, Subquery, Value, When

from console.act_overview import ActOverview, act_overview, syncs_act
from crm.choices import IncomingMethod
from crm.models import OrganizationSettings
from mailboxes.models import DIRECTION_FIELDS, SYNC_DIRECTIONS, FolderScope, Mailbox
from profiles.fields import MASK, EncryptedTextField
from profiles.models import EmailServerProfile
from sync import clock
from sync.models import (
    FolderCursor,
    MailboxAlert,
    MailboxTest,
    QuarantinedMessage,
    QuarantineState,
    Receipt,
    SyncKind,
    SyncRun,
)
from sync.server_settings import kind_for

RUNS_SHOWN = 20
ALERTS_SHOWN = 20
QUARANTINED_SHOWN = 50
DIRECTION_LABELS = {
    "incoming": "Incoming email",
    "outgoing": "Outgoing email",
    "act": "Appointments, contacts, tasks",
}
FOLDER_SCOPES = {
    FolderScope.ROOT_INBOX: "Inbox only",
    FolderScope.INBOX_AND_SUBFOLDERS: "Inbox and its sub-folders",
}
# A secret this short would blank ordinary letters and digits all over the
# text; the fields that hold secrets are never shown at all, whatever their length.
MIN_REDACTED_LENGTH = 4

_Row = TypeVar("_Row", bound=Model)


class Redactor:
    """Blanks the secrets of a mailbox and its profile in free text."""

    def __init__(self, *records: Model | None) -> None:
        self._secrets = sorted(
            {value for record in records if record is not None for value in _secrets_of(record)},
            key=len,
            reverse=True,
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text


def _secrets_of(record: Model) -> list[str]:
    # Every encrypted field, so a secret field added later is blanked too.
    fields = [f for f in record._meta.concrete_fields if isinstance(f, EncryptedTextField)]
    values = [getattr(record, f.attname).reveal() for f in fields]
    return [value for value in values if len(value) >= MIN_REDACTED_LENGTH]


@dataclass(frozen=True)
class DirectionState:
    """One direction's method and status, as the mailbox record says."""

    key: str
    label: str
    method: str
    status: str
    status_label: str
    enabled: bool
    transient_failures: int
    postponed_until: datetime | None
    in_backoff: bool


@dataclass(frozen=True)
class FoldersRead:
    """Which folders incoming sync reads, in words, and those it has read so far."""

    scope: str
    note: str  # why it reads less than its setting says (or nothing yet), if so
    read: list[str]  # the folders with a cursor under the current configuration


@dataclass(frozen=True)
class Credential:
    label: str
    is_set: bool


@dataclass
class MailboxOverview:
    mailbox: Mailbox
    profile: EmailServerProfile | None
    show_profile_settings: bool
    directions: list[DirectionState]
    folders: FoldersRead
    credentials: list[Credential]
    awaits_approval: bool
    latest_test: MailboxTest | None
    runs: list[SyncRun]
    cursors: list[FolderCursor]
    alerts: list[MailboxAlert]
    quarantined: list[QuarantinedMessage]
    quarantined_counts: dict[str, int] = field(default_factory=dict)
    act: ActOverview | None = None  # None: the mailbox does not sync appointments, contacts, tasks

    @property
    def quarantined_waiting(self) -> int:
        return self.quarantined_counts.get(QuarantineState.QUARANTINED, 0)


def mailbox_overview(
    *, mailbox: Mailbox, administrator: bool, act_problems_page: str | None = None
) -> MailboxOverview:
    """The mailbox page's data, in a fixed number of queries. A profile's own
    settings and alerts are for administrators; its owner sees only its name.
    ``act_problems_page``: which page of the ACT item problems to show."""
    redact = Redactor(mailbox, mailbox.profile)
    _redact_fields(mailbox, redact, "disabled_reason", "last_sync_error_text")
    cursors = _cursors(mailbox)
    return MailboxOverview(
        mailbox=mailbox,
        profile=mailbox.profile,
        show_profile_settings=administrator,
        directions=[_direction(mailbox, key) for key in SYNC_DIRECTIONS],
        folders=_folders_read(mailbox, cursors),
        credentials=_credentials(mailbox, administrator=administrator),
        awaits_approval=mailbox.awaits_approval(OrganizationSettings.load()),
        latest_test=_latest_test(mailbox, redact),
        runs=_redacted(_runs(mailbox), redact, "error_text"),
        cursors=cursors,
        alerts=_redacted(_alerts(mailbox, administrator=administrator), redact, "message"),
        quarantined=_redacted(_quarantined(mailbox), redact, "error_text"),
        quarantined_counts=dict(
            QuarantinedMessage.objects.filter(mailbox=mailbox)
            .order_by()
            .values("state")
            .annotate(n=Count("pk"))
            .values_list("state", "n")
        ),
        act=act_overview(mailbox=mailbox, page=act_problems_page, redact=redact)
        if syncs_act(mailbox)
        else None,
    )


def _direction(mailbox: Mailbox, key: str) -> DirectionState:
    fields = DIRECTION_FIELDS[key]
    postponed = fields.postponed_until_of(mailbox)
    return DirectionState(
        key=key,
        label=DIRECTION_LABELS[key],
        method=_choice_label(mailbox, fields.method),
        status=fields.status_of(mailbox),
        status_label=_choice_label(mailbox, fields.status),
        enabled=fields.enabled_of(mailbox),
        transient_failures=fields.transient_failures_of(mailbox),
        postponed_until=postponed,
        in_backoff=bool(postponed and postponed > clock.now()),
    )


def _choice_label(mailbox: Mailbox, name: str) -> str:
    """What ``get_<name>_display()`` says: the label of the field's value."""
    field = cast("Field[Any, Any]", Mailbox._meta.get_field(name))  # a concrete field, not a relation
    value = getattr(mailbox, name)
    return str(dict(field.flatchoices).get(value, value))


def _folders_read(mailbox: Mailbox, cursors: list[FolderCursor]) -> FoldersRead:
    scope, note = FOLDER_SCOPES[FolderScope(mailbox.folders)], ""
    profile = mailbox.profile
    kind = kind_for(profile)
    if mailbox.incoming_method != IncomingMethod.SERVER_SIDE_SYNC:
        note = f"incoming email: {mailbox.get_incoming_method_display()}; server-side sync does not read it"
    elif profile is not None and kind is None:
        note = f"{profile.get_server_type_display()} mailboxes are not read yet"
    elif kind is not None and not kind.has_folders:
        # A POP3 maildrop is one folder, whatever the setting says.
        scope, note = FOLDER_SCOPES[FolderScope.ROOT_INBOX], f"{kind.protocol} has no other folders"
    return FoldersRead(scope=scope, note=note, read=[cursor.folder for cursor in cursors])


def _credentials(mailbox: Mailbox, *, administrator: bool) -> list[Credential]:
    found = [
        Credential("Mailbox user name", bool(mailbox.username)),
        Credential("Mailbox password", bool(mailbox.password)),
    ]
    profile = mailbox.profile
    if profile is not None and administrator:
        found += [
            Credential("Profile user name", bool(profile.username)),
            Credential("Profile password", bool(profile.password)),
            Credential("Profile outgoing user name", bool(profile.outgoing_username)),
            Credential("Profile outgoing password", bool(profile.outgoing_password)),
            Credential("Profile OAuth client secret", bool(profile.oauth_client_secret)),
        ]
    return found


def _latest_test(mailbox: Mailbox, redact: Redactor) -> MailboxTest | None:
    test = MailboxTest.objects.filter(mailbox=mailbox).order_by("-queued_on", "-id").first()
    if test is not None:
        test.summary = redact(test.summary)
        for result in (test.results or {}).values():
            if isinstance(result, dict):
                for key in ("message", "fix"):
                    result[key] = redact(str(result.get(key, "")))
    return test


def _runs(mailbox: Mailbox) -> list[SyncRun]:
    # Email runs: an ACT run's counters mean other things (console.act_overview shows them).
    runs = SyncRun.objects.filter(mailbox=mailbox).exclude(kind=SyncKind.ACT)
    return list(runs.order_by("-started_on", "-id")[:RUNS_SHOWN])


def _cursors(mailbox: Mailbox) -> list[FolderCursor]:
    # Cursors of an earlier configuration (another address or profile) say nothing about this one.
    return list(
        FolderCursor.objects.filter(mailbox=mailbox, generation=mailbox.configuration_generation).order_by(
            "folder"
        )
    )


def _alerts(mailbox: Mailbox, *, administrator: bool) -> list[MailboxAlert]:
    about = Q(mailbox=mailbox)
    if administrator and mailbox.profile_id:
        # A profile outage explains a failing mailbox; it is an administrator's alert.
        about |= Q(mailbox=None, profile_id=mailbox.profile_id, resolved_on=None)
    alerts = MailboxAlert.objects.filter(about).select_related("acknowledged_by", "resolved_by")
    return list(alerts.order_by("-last_seen", "-id")[:ALERTS_SHOWN])


def _quarantined(mailbox: Mailbox) -> list[QuarantinedMessage]:
    # Waiting ones first: they are what the page offers to reprocess.
    waiting_first = Case(When(state=QuarantineState.QUARANTINED, then=Value(0)), default=Value(1))
    held = QuarantinedMessage.objects.filter(mailbox=mailbox).order_by(waiting_first, "-created_on", "-id")
    # Where serversync moved it on the server (Exchange's "move failed emails to Undeliverable").
    moved_to = Receipt.objects.filter(quarantined=OuterRef("pk")).exclude(moved_to="").values("moved_to")[:1]
    return list(held.annotate(moved_to=Subquery(moved_to))[:QUARANTINED_SHOWN])


def _redacted(rows: list[_Row], redact: Redactor, *names: str) -> list[_Row]:
    for row in rows:
        _redact_fields(row, redact, *names)
    return rows


def _redact_fields(row: Model, redact: Redactor, *names: str) -> None:
    # Only the in-memory copy the page shows; these rows are never saved from here.
    for name in names:
        setattr(row, name, redact(getattr(row, name)))
