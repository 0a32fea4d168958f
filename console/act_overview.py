"""What the mailbox page shows about a mailbox's appointments, contacts and tasks
(``sync.act``): its recent ACT runs, how many records are linked per entity, and the
problems recorded on items — a conflict's dropped change and the value kept, or why an
item could not be synced."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count

from crm.choices import ActMethod
from mailboxes.filter_criteria import SyncEntity
from mailboxes.models import Mailbox
from sync import act_fields
from sync.models import ActItemProblem, ActLink, ActProblemKind, SyncKind, SyncRun

ACT_RUNS_SHOWN = 10
PROBLEMS_PER_PAGE = 25
SIDES = {"crm": "the CRM's", "server": "the server's"}
EMPTY = "(empty)"


@dataclass(frozen=True)
class LinkedCount:
    entity: str
    label: str
    count: int


@dataclass(frozen=True)
class ProblemRow:
    """One item problem as the page words it."""

    problem: ActItemProblem
    entity_label: str
    field_label: str  # a conflict's field, as the field directions page names it
    dropped_side: str  # "the CRM's" / "the server's" (conflicts only)
    dropped: str
    kept: str

    @property
    def is_conflict(self) -> bool:
        return self.problem.kind == ActProblemKind.CONFLICT


@dataclass(frozen=True)
class ActOverview:
    runs: list[SyncRun]
    linked: list[LinkedCount]
    problems: list[ProblemRow]
    problems_page: Page[ActItemProblem]

    @property
    def problem_count(self) -> int:
        return self.problems_page.paginator.count


def syncs_act(mailbox: Mailbox) -> bool:
    """Whether the page has anything to say about ACT: the mailbox syncs it now, or did."""
    if mailbox.act_method == ActMethod.SERVER_SIDE_SYNC:
        return True
    return (
        SyncRun.objects.filter(mailbox=mailbox, kind=SyncKind.ACT).exists()
        or ActItemProblem.objects.filter(mailbox=mailbox).exists()
    )


def act_overview(*, mailbox: Mailbox, page: str | None, redact: Callable[[str], str]) -> ActOverview:
    """``page``: which page of problems (newest first); a bad number shows the nearest page."""
    problems = Paginator(
        ActItemProblem.objects.filter(mailbox=mailbox).order_by("-created_on", "-id"), PROBLEMS_PER_PAGE
    ).get_page(page)
    return ActOverview(
        runs=_act_runs(mailbox, redact),
        linked=_linked(mailbox),
        problems=[_row(problem, redact) for problem in problems],
        problems_page=problems,
    )


def _act_runs(mailbox: Mailbox, redact: Callable[[str], str]) -> list[SyncRun]:
    runs = list(
        SyncRun.objects.filter(mailbox=mailbox, kind=SyncKind.ACT).order_by("-started_on", "-id")[
            :ACT_RUNS_SHOWN
        ]
    )
    for run in runs:
        run.error_text = redact(run.error_text)  # the page's copy only; never saved
    return runs


def _linked(mailbox: Mailbox) -> list[LinkedCount]:
    # A link whose record was deleted waits for the delete rules: not a linked record.
    live = (
        ActLink.objects.filter(mailbox=mailbox)
        .exclude(appointment=None, task=None, contact=None)
        .exclude(item_id="")
    )
    counts = dict(live.order_by().values("entity").annotate(n=Count("pk")).values_list("entity", "n"))
    return [LinkedCount(entity.value, entity.label, counts.get(entity.value, 0)) for entity in SyncEntity]


def _row(problem: ActItemProblem, redact: Callable[[str], str]) -> ProblemRow:
    problem.message = redact(problem.message)
    conflict = problem.kind == ActProblemKind.CONFLICT
    return ProblemRow(
        problem=problem,
        entity_label=_entity_label(problem.entity),
        field_label=_field_label(problem.entity, problem.field),
        dropped_side=SIDES.get(problem.dropped_side, problem.dropped_side) if conflict else "",
        dropped=shown(problem.dropped_value) if conflict else "",
        kept=shown(problem.kept_value) if conflict else "",
    )


def _entity_label(entity: str) -> str:
    return str(dict(SyncEntity.choices).get(entity, entity))


def _field_label(entity: str, name: str) -> str:
    if not name:
        return ""
    try:
        return act_fields.field(entity, name).label
    except KeyError:  # a field no longer synced: its stored name says enough
        return name


def shown(value: Any) -> str:
    """A stored field value as a person reads it: text as is, nothing as "(empty)",
    lists and structures (attendees, an address) as compact JSON."""
    if value is None or value == "" or value == [] or value == {}:
        return EMPTY
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
