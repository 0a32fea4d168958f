"""The engine's rules that do not depend on the backend, against the real Radicale: runs
bounded and resumed, per-item problems that do not stop a run, an attendee's copy, and the
scheduler's act queue and cadence."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import httpx
import pytest

from crm.models import Appointment, AppointmentParty, Task
from mailboxes.models import SyncFilter
from sync import scheduler, tasks
from sync.act import sync_act
from sync.connectors.items import Todo
from sync.models import (
    ActCursor,
    ActItemProblem,
    ActLink,
    MailboxAlert,
    MailboxSchedule,
    SyncKind,
    SyncOutcome,
)
from tests import factories
from tests.sync.act.backends import read_all
from tests.sync.act.conftest import dav_stack
from tests.sync.act.test_scenarios import appointment, future, synced

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def dav(radicale, settings, db):
    return dav_stack(radicale, settings)


def test_a_run_stops_at_its_budget_and_the_next_runs_finish_without_doubling(dav, settings):
    settings.SYNC_ACT_RUN_MAX_ITEMS = 2
    mailbox = dav.mailbox("alice")
    for n in range(5):
        Task.objects.create(owner=mailbox.user, subject=f"Task {n}", due=future(n + 1))

    outcomes = [sync_act(mailbox=mailbox).outcome for _ in range(5)]

    assert outcomes[:2] == [SyncOutcome.PARTIAL, SyncOutcome.PARTIAL]
    assert outcomes[-1] == SyncOutcome.SUCCESS
    with dav.other_client(mailbox) as phone:
        assert sorted(c.item.subject for c in read_all(phone, "task").values() if c.item) == [
            f"Task {n}" for n in range(5)
        ]
    assert ActLink.objects.filter(mailbox=mailbox, entity="task").count() == 5


def test_an_item_the_crm_cannot_store_is_recorded_and_the_run_goes_on(dav):
    mailbox = dav.mailbox("alice")
    Task.objects.create(owner=mailbox.user, subject="Fine", due=future(2))
    start = future(3)
    with dav.other_client(mailbox) as phone:
        # Due before it starts: the CRM's own rule refuses it.
        phone.create(
            "task",
            Todo(
                uid="odd@phone.test",
                subject="Odd",
                start=start,
                due=start - dt.timedelta(days=1),
                categories=("Tracked to CRM",),
            ),
        )
    run = sync_act(mailbox=mailbox)

    assert run.outcome == SyncOutcome.SUCCESS
    assert run.failed == 1
    problem = ActItemProblem.objects.get(mailbox=mailbox)
    assert (problem.kind, problem.title) == ("invalid", "Odd")
    assert "due before it starts" in problem.message
    assert MailboxAlert.objects.filter(mailbox=mailbox, code="act_invalid").exists()
    with dav.other_client(mailbox) as phone:
        assert {c.item.subject for c in read_all(phone, "task").values() if c.item} == {"Fine", "Odd"}

    # Tried again next run, and still refused: the page shows it once, the alert counts twice.
    ActCursor.objects.filter(mailbox=mailbox).update(token="")
    assert sync_act(mailbox=mailbox).failed == 1
    assert ActItemProblem.objects.filter(mailbox=mailbox).count() == 1
    assert MailboxAlert.objects.get(mailbox=mailbox, code="act_invalid").count == 2


def test_an_appointment_without_organizer_owned_by_someone_else_is_a_problem_not_a_failure(dav):
    mailbox = dav.mailbox("alice")
    everyones = {"owner": "all", "states": ["open"]}
    SyncFilter.objects.filter(mailbox=mailbox, entity="appointment").update(criteria=everyones)
    other = factories.crm_user("Carol Other")
    start = future(4)
    orphan = Appointment(
        owner=other,
        subject="Nobody organizes",
        start=start,
        end=start + dt.timedelta(hours=1),
        start_time_zone="Europe/Berlin",
        end_time_zone="Europe/Berlin",
    )
    orphan.full_clean()
    orphan.save()
    appointment(mailbox, "Mine")

    run = sync_act(mailbox=mailbox)

    assert (run.outcome, run.sent, run.failed) == (SyncOutcome.SUCCESS, 1, 1)
    problem = ActItemProblem.objects.get(mailbox=mailbox)
    assert (problem.kind, problem.record_id) == ("organizer_missing", orphan.pk)


def test_an_attendees_copy_links_to_the_organizers_record_and_never_overwrites_it(dav):
    alice = dav.mailbox("alice")
    bob = dav.mailbox("bob")
    record = appointment(alice, "Kick-off", attendees=[bob.email_address])
    synced(alice)
    with dav.other_client(alice) as phone:
        (change,) = read_all(phone, "appointment").values()
        event = change.item
    assert event is not None
    # Bob's calendar holds his copy of Alice's meeting (as the invitation put it there), tracked.
    with dav.other_client(bob) as phone:
        ref = phone.create("appointment", dataclasses.replace(event, categories=("Tracked to CRM",)))
        synced(bob)
        copy = read_all(phone, "appointment")[event.uid]
        assert copy.item is not None
        phone.update(
            "appointment",
            copy.ref,
            dataclasses.replace(copy.item, subject="Bob's notes", location="Bob's desk"),
        )
    assert ref.item_id
    synced(bob)

    assert Appointment.objects.count() == 1
    record.refresh_from_db()
    assert (record.subject, record.location) == ("Kick-off", "Room 4")
    assert ActLink.objects.get(mailbox=bob).appointment == record
    assert list(AppointmentParty.objects.filter(appointment=record).values_list("role", flat=True)) == [
        "organizer",
        "required",
    ]


def test_the_dispatcher_claims_act_on_its_own_queue_and_comes_back_in_5_to_15_minutes(dav, settings):
    mailbox = dav.mailbox("alice")
    Task.objects.create(owner=mailbox.user, subject="Call back", due=future(2))
    claims = [c for c in scheduler.dispatch() if c.kind == SyncKind.ACT]
    assert [c.mailbox_id for c in claims] == [mailbox.pk]
    assert settings.CELERY_TASK_ROUTES["sync.tasks.act_*"] == {"queue": "act"}

    assert tasks.act_mailbox(mailbox.pk, claims[0].token) == SyncOutcome.SUCCESS
    schedule = MailboxSchedule.objects.get(mailbox=mailbox, kind=SyncKind.ACT)
    waited = schedule.next_due_on - schedule.last_run_on
    assert dt.timedelta(minutes=5) - dt.timedelta(seconds=5) <= waited <= dt.timedelta(minutes=5, seconds=5)

    # Idle runs back off, to 15 minutes at most.
    for _ in range(6):
        MailboxSchedule.objects.filter(pk=schedule.pk).update(next_due_on=schedule.last_run_on)
        (claim,) = [c for c in scheduler.dispatch() if c.kind == SyncKind.ACT]
        tasks.act_mailbox(mailbox.pk, claim.token)
    schedule.refresh_from_db()
    assert schedule.next_due_on - schedule.last_run_on == pytest.approx(
        dt.timedelta(minutes=15), abs=dt.timedelta(seconds=5)
    )


def test_a_mailbox_not_enabled_for_act_is_not_claimed(dav):
    mailbox = dav.mailbox("alice")
    type(mailbox).objects.filter(pk=mailbox.pk).update(act_enabled=False)
    assert [c for c in scheduler.dispatch() if c.kind == SyncKind.ACT] == []


PHONE_EVENTS = b"""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//A phone//EN\r
BEGIN:VEVENT\r
UID:floating-1@phone.test\r
DTSTAMP:20261201T080000Z\r
DTSTART:%(day)sT090000\r
DTEND:%(day)sT100000\r
SUMMARY:Breakfast with the board\r
CATEGORIES:Tracked to CRM\r
END:VEVENT\r
END:VCALENDAR\r
"""


def test_times_without_a_zone_are_read_in_the_users_zone(dav, radicale):
    """A phone writes "09:00" with no zone (a floating time): it is 09:00 where the user works."""
    mailbox = dav.mailbox("alice")
    mailbox.user.time_zone = "Europe/Berlin"
    mailbox.user.save()
    day = future(6).date()
    body = PHONE_EVENTS % {b"day": day.strftime("%Y%m%d").encode()}
    calendar = f"{radicale.url}{mailbox.username}/calendar/floating-1.ics"
    with httpx.Client(
        verify=radicale.ssl_context(), auth=(mailbox.username, mailbox.password.reveal())
    ) as http:
        assert http.put(calendar, content=body, headers={"Content-Type": "text/calendar"}).status_code == 201
    synced(mailbox)

    record = Appointment.objects.get(subject="Breakfast with the board")
    assert record.start == dt.datetime.combine(day, dt.time(9), ZoneInfo("Europe/Berlin"))
    assert record.start_time_zone == "Europe/Berlin"
