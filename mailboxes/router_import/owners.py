"""Who a router entry belongs to: CRM users and queues by their external ids
(the GUIDs the router knew them by), then by email address. Loaded once per
review, so a review costs a fixed number of queries however many entries."""

from __future__ import annotations

from dataclasses import dataclass

from crm.models import CrmUser, Queue
from mailboxes.models import Mailbox
from mailboxes.router_import.documents import Entry, normalize_id


@dataclass(frozen=True)
class Owner:
    kind: str  # "user" | "queue" | "forward"
    user: CrmUser | None = None
    queue: Queue | None = None
    address: str = ""  # a forward mailbox's address

    @property
    def key(self) -> str:
        if self.user is not None:
            return f"user:{self.user.pk}"
        if self.queue is not None:
            return f"queue:{self.queue.pk}"
        return f"forward:{self.address}"

    @property
    def name(self) -> str:
        return str(self.user or self.queue or self.address)

    @property
    def email(self) -> str:
        record = self.user or self.queue
        return (record.email if record is not None else self.address).lower()


@dataclass
class Resolution:
    owners: list[Owner]
    skipped: list[str]  # a sentence per person not found
    notes: list[str]


class OwnerIndex:
    def __init__(self) -> None:
        users = list(CrmUser.objects.all())
        queues = list(Queue.objects.all())
        self.mailboxes = list(Mailbox.objects.select_related("user", "queue", "profile"))
        self.users_by_id = {normalize_id(u.external_id): u for u in users if u.external_id}
        self.queues_by_id = {normalize_id(q.external_id): q for q in queues if q.external_id}
        self.by_email: dict[str, list[Owner]] = {}
        for user in users:
            if user.email:
                self.by_email.setdefault(user.email.lower(), []).append(Owner("user", user=user))
        for queue in queues:
            if queue.email:
                self.by_email.setdefault(queue.email.lower(), []).append(Owner("queue", queue=queue))
        self.mailbox_by_address = {m.email_address.lower(): m for m in self.mailboxes}
        self.mailbox_by_owner = {
            f"user:{m.user_id}" if m.user_id else f"queue:{m.queue_id}": m
            for m in self.mailboxes
            if m.user_id or m.queue_id
        }

    def resolve(self, entry: Entry) -> Resolution:
        """By UserId / QueueId first; by EmailAddress when no id is known."""
        owners, unknown = [], []
        for kind, tag, table in (
            ("user", "UserId", self.users_by_id),
            ("queue", "QueueId", self.queues_by_id),
        ):
            for external_id in entry.ids(tag):
                found = table.get(external_id)
                if found is None:
                    unknown.append(f"{tag} {external_id}")
                else:
                    owners.append(Owner(kind, **{kind: found}))  # type: ignore[arg-type]
        address = entry.get("EmailAddress").lower()
        if owners:
            skipped = [f"{entry.label}: no CRM user or queue has {what}." for what in unknown]
            return Resolution(_active(owners, skipped), skipped, [])
        notes = [f"{entry.label}: no CRM user or queue has {', '.join(unknown)}; matched by email address."]
        notes = notes if unknown else []
        by_address = self._by_address(address)
        if len(by_address) == 1:
            inactive: list[str] = []
            return Resolution(_active(by_address, inactive), inactive, notes)
        if len(by_address) > 1:
            names = ", ".join(owner.name for owner in by_address)
            return Resolution([], [f"{entry.label}: {address} belongs to several CRM records ({names})."], [])
        wanted = (
            " or ".join([*unknown, *([f"email address {address}"] if address else [])]) or "no id or address"
        )
        return Resolution([], [f"{entry.label}: no CRM user or queue is known by {wanted}."], [])

    def _by_address(self, address: str) -> list[Owner]:
        if not address:
            return []
        found = self.by_email.get(address, [])
        if not found and (mailbox := self.mailbox_by_address.get(address)) is not None:
            if mailbox.user is not None:
                return [Owner("user", user=mailbox.user)]
            if mailbox.queue is not None:
                return [Owner("queue", queue=mailbox.queue)]
        return list(found)


def _active(owners: list[Owner], skipped: list[str]) -> list[Owner]:
    """A deactivated user or queue would not sync anyway: say so rather than configure it."""
    active = []
    for owner in owners:
        record = owner.user or owner.queue
        if record is not None and not record.is_active:
            skipped.append(f"{owner.name} is deactivated in the CRM; not migrated.")
        else:
            active.append(owner)
    return active
