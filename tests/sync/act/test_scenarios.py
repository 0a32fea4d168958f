"""The same stories on every backend: what a CRM user and their calendar, task list and
address book see after each sync run (sync.act), through the real connectors."""

from __future__ import annotations

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from crm.models import Appointment, AppointmentParty, Contact, OrganizationSettings, Task
from mailboxes.models import SyncFilter
from sync.act import sync_act
from sync.act_records import Context, to_item
from sync.connectors.items import Attendee, Event, Party, TodoStatus
from sync.connectors.registry import kind_of
from sync.models import ActCursor, ActFieldSetting, ActItemProblem, ActLink, SyncOutcome
from sync.tracking import Parties
from tests import factories
from tests.sync.act.backends import only, read_all

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

BERLIN = ZoneInfo("Europe/Berlin")


def future(days: int, hour: int = 10) -> dt.datetime:
    day = dt.datetime.now(BERLIN).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(hour), BERLIN)


def appointment(mailbox, subject: str = "Quarterly review", *, days: int = 7, attendees=()) -> Appointment:
    start = future(days)
    record = Appointment(
        owner=mailbox.user,
        subject=subject,
        start=start,
        end=start + dt.timedelta(hours=1),
        start_time_zone="Europe/Berlin",
        end_time_zone="Europe/Berlin",
        location="Room 4",
    )
    record.full_clean()
    record.save()
    AppointmentParty.objects.create(
        appointment=record, role="organizer", address=mailbox.email_address, user=mailbox.user
    )
    for address in attendees:
        AppointmentParty.objects.create(appointment=record, role="required", address=address)
    return record


def midnight_utc(moment: dt.datetime) -> dt.datetime:
    return dt.datetime.combine(moment.date(), dt.time(), dt.UTC)


def context_of(mailbox) -> Context:
    organization = OrganizationSettings.load()
    return Context(mailbox, organization.act_tracking_category, Parties(organization))


def synced(mailbox) -> None:
    run = sync_act(mailbox=mailbox)
    assert run.outcome == SyncOutcome.SUCCESS, (run.error_code, run.error_text)


def test_a_crm_appointment_appears_in_the_calendar_and_moving_it_there_moves_it_in_the_crm(act_stack):
    mailbox = act_stack.mailbox("alice")
    record = appointment(mailbox, attendees=["bob@contoso.test"])
    synced(mailbox)

    with act_stack.other_client(mailbox) as phone:
        event = only(phone, "appointment")
        assert (event.subject, event.location, event.start) == ("Quarterly review", "Room 4", record.start)
        assert [a.address for a in event.attendees] == ["bob@contoso.test"]
        assert event.organizer is not None
        assert event.organizer.address == mailbox.email_address

        later = dataclasses.replace(
            event, start=event.start + dt.timedelta(days=1), end=event.end + dt.timedelta(days=1)
        )
        change = read_all(phone, "appointment")[event.uid]
        phone.update("appointment", change.ref, later)
    synced(mailbox)
    record.refresh_from_db()
    assert record.start == future(8)
    assert record.end == future(8, 11)
    assert record.subject == "Quarterly review"
    assert list(record.parties.values_list("role", "address")) == [
        ("organizer", mailbox.email_address),
        ("required", "bob@contoso.test"),
    ]
    assert Appointment.objects.count() == 1


def weekly(mailbox, *, start: dt.datetime, count: int = 6, subject: str = "Team sync") -> Appointment:
    master = appointment(mailbox, subject)
    master.start, master.end = start, start + dt.timedelta(hours=1)
    master.recurrence_rule = f"FREQ=WEEKLY;COUNT={count}"
    master.full_clean()
    master.save()
    return master


def test_a_weekly_series_with_a_moved_and_a_deleted_occurrence_round_trips(act_stack):
    mailbox = act_stack.mailbox("alice")
    first = future(7, 9)
    master = weekly(mailbox, start=first)
    second, third, fourth = (first + dt.timedelta(weeks=n) for n in (1, 2, 3))
    master.deleted_occurrences = [third]
    master.full_clean()
    master.save()
    moved = Appointment(
        owner=mailbox.user,
        series_master=master,
        original_start=second,
        subject="Team sync (moved)",
        start=second + dt.timedelta(hours=2),
        end=second + dt.timedelta(hours=3),
        start_time_zone="Europe/Berlin",
        end_time_zone="Europe/Berlin",
    )
    moved.full_clean()
    moved.save()
    synced(mailbox)

    with act_stack.other_client(mailbox) as phone:
        event = only(phone, "appointment")
        weekday = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[first.weekday()]
        assert event.recurrence == f"FREQ=WEEKLY;COUNT=6;BYDAY={weekday}"
        assert event.deleted_occurrences == (third,)
        [changed] = event.changed_occurrences
        assert (changed.original_start, changed.start, changed.subject) == (
            second,
            second + dt.timedelta(hours=2),
            "Team sync (moved)",
        )
        # On the phone, the fourth occurrence is deleted too.
        ref = read_all(phone, "appointment")[event.uid].ref
        phone.update("appointment", ref, dataclasses.replace(event, deleted_occurrences=(third, fourth)))
    synced(mailbox)

    master.refresh_from_db()
    assert master.deleted_occurrences == [third, fourth]
    [exception] = master.exceptions.all()
    assert (exception.original_start, exception.start, exception.subject) == (
        second,
        second + dt.timedelta(hours=2),
        "Team sync (moved)",
    )
    starts = [
        o.start for o in master.occurrences(first - dt.timedelta(days=1), first + dt.timedelta(weeks=7))
    ]
    assert starts == [first, second + dt.timedelta(hours=2), *(first + dt.timedelta(weeks=n) for n in (4, 5))]


def next_dst_change(zone: ZoneInfo) -> dt.date:
    """The first day, a week or more from now, whose offset differs from the day before."""
    day = dt.datetime.now(BERLIN).date() + dt.timedelta(days=7)
    while True:
        before = dt.datetime.combine(day, dt.time(12), zone).utcoffset()
        after = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(12), zone).utcoffset()
        if before != after:
            return day + dt.timedelta(days=1)
        day += dt.timedelta(days=1)


def test_a_series_across_a_dst_change_keeps_its_local_time_on_both_sides(act_stack):
    mailbox = act_stack.mailbox("alice")
    change = next_dst_change(BERLIN)
    first = dt.datetime.combine(change - dt.timedelta(days=14), dt.time(9), BERLIN)
    master = weekly(mailbox, start=first, count=4, subject="Stand-up")
    weekday = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")[first.weekday()]
    synced(mailbox)

    with act_stack.other_client(mailbox) as phone:
        event = only(phone, "appointment")
        assert (event.start_zone, event.start.astimezone(BERLIN).time()) == ("Europe/Berlin", dt.time(9))
        assert event.recurrence == f"FREQ=WEEKLY;COUNT=4;BYDAY={weekday}"
        ref = read_all(phone, "appointment")[event.uid].ref
        phone.update("appointment", ref, dataclasses.replace(event, subject="Stand-up (daily soon)"))
    synced(mailbox)

    master.refresh_from_db()
    assert master.subject == "Stand-up (daily soon)"
    local = [o.start.astimezone(BERLIN) for o in master.occurrences(first, first + dt.timedelta(weeks=5))]
    assert [s.time() for s in local] == [dt.time(9)] * 4
    assert len({s.utcoffset() for s in local}) == 2  # the series did cross the change
    with act_stack.other_client(mailbox) as phone:
        event = only(phone, "appointment")
        assert (event.start_zone, event.start, event.recurrence) == (
            "Europe/Berlin",
            first,
            f"FREQ=WEEKLY;COUNT=4;BYDAY={weekday}",
        )


FULL_CONTACT = {
    "first_name": "Ada",
    "middle_name": "King",
    "last_name": "Lovelace",
    "nickname": "Countess",
    "company_name": "Analytical Engines Ltd",
    "department": "Research",
    "job_title": "Mathematician",
    "email": "ada@engines.test",
    "email2": "ada.lovelace@home.test",
    "email3": "countess@lovelace.test",
    "phone": "+44 20 7946 0001",
    "mobile_phone": "+44 7700 900001",
    "home_phone": "+44 20 7946 0002",
    "business_fax": "+44 20 7946 0003",
    "mailing_street": "12 St James's Square",
    "mailing_city": "London",
    "mailing_state": "Greater London",
    "mailing_postal_code": "SW1Y 4JH",
    "mailing_country": "United Kingdom",
    "home_street": "Ockham Park",
    "home_city": "Ockham",
    "home_state": "Surrey",
    "home_postal_code": "GU23 6NP",
    "home_country": "United Kingdom",
    "other_street": "Horsley Towers",
    "other_city": "East Horsley",
    "other_state": "Surrey",
    "other_postal_code": "KT24 6DR",
    "other_country": "United Kingdom",
    "birthday": dt.date(1815, 12, 10),
    "notes": "Wrote the first program.\nNotes on the Analytical Engine.",
}


def test_a_contact_round_trips_with_every_mapped_field(act_stack):
    organization = OrganizationSettings.load()
    organization.sync_all_contact_addresses = True
    organization.save()
    mailbox = act_stack.mailbox("alice")
    contact = factories.contact(owner=mailbox.user, **FULL_CONTACT)
    synced(mailbox)

    with act_stack.other_client(mailbox) as phone:
        card = only(phone, "contact")
        assert card == to_item(contact, card.uid, context_of(mailbox))
        assert (card.company, card.emails[2], card.home_address.city) == (  # type: ignore[union-attr]
            "Analytical Engines Ltd",
            "countess@lovelace.test",
            "Ockham",
        )
        changed = dataclasses.replace(
            card,
            job_title="Analyst",
            emails=("ada@engines.test", "ada@new.test"),
            other_address=None,
            birthday=dt.date(1815, 12, 11),
            notes="Moved.",
        )
        phone.update("contact", read_all(phone, "contact")[card.uid].ref, changed)
    synced(mailbox)

    contact.refresh_from_db()
    assert (
        contact.job_title,
        contact.email2,
        contact.email3,
        contact.other_city,
        contact.birthday,
        contact.notes,
    ) == (
        "Analyst",
        "ada@new.test",
        "",
        "",
        dt.date(1815, 12, 11),
        "Moved.",
    )
    assert contact.home_city == "Ockham"


def test_only_the_mailing_address_syncs_unless_the_organization_says_all(act_stack):
    mailbox = act_stack.mailbox("alice")
    factories.contact(owner=mailbox.user, **FULL_CONTACT)
    synced(mailbox)
    with act_stack.other_client(mailbox) as phone:
        card = only(phone, "contact")
    assert card.business_address is not None
    assert card.business_address.city == "London"
    assert (card.home_address, card.other_address) == (None, None)


def test_a_task_round_trips_and_completing_it_on_the_server_completes_it_in_the_crm(act_stack):
    mailbox = act_stack.mailbox("alice")
    task = Task.objects.create(
        owner=mailbox.user,
        subject="Send the quote",
        body_text="Two options, both with support.",
        start=future(1, 9),
        due=future(3, 17),
        status=Task.Status.IN_PROGRESS,
        percent_complete=40,
        priority=Task.Priority.HIGH,
    )
    synced(mailbox)

    with act_stack.other_client(mailbox) as phone:
        todo = only(phone, "task")
        expected = to_item(task, todo.uid, context_of(mailbox))
        if act_stack.task_dates_only:
            # To Do keeps the days a task starts and is due, and no percent complete.
            expected = dataclasses.replace(
                expected, start=midnight_utc(future(1)), due=midnight_utc(future(3)), percent_complete=0
            )
        assert todo == expected
        assert (todo.subject, todo.priority, todo.body) == (
            "Send the quote",
            "high",
            "Two options, both with support.",
        )
        done_on = dt.datetime.now(dt.UTC).replace(microsecond=0)
        done = dataclasses.replace(
            todo, status=TodoStatus.COMPLETED, percent_complete=100, completed_on=done_on
        )
        phone.update("task", read_all(phone, "task")[todo.uid].ref, done)
    synced(mailbox)

    task.refresh_from_db()
    assert (task.status, task.percent_complete, task.completed_on) == (Task.Status.COMPLETED, 100, done_on)
    # What the server could not keep is no change of its own: the CRM keeps its times.
    assert (task.start, task.due) == (future(1, 9), future(3, 17))


def test_a_field_set_to_the_server_only_is_not_overwritten_from_the_server(act_stack):
    ActFieldSetting.objects.create(entity="appointment", field="location", direction="to_server")
    mailbox = act_stack.mailbox("alice")
    record = appointment(mailbox)
    synced(mailbox)

    with act_stack.other_client(mailbox) as phone:
        event = only(phone, "appointment")
        ref = read_all(phone, "appointment")[event.uid].ref
        phone.update("appointment", ref, dataclasses.replace(event, location="Cafeteria", subject="Review"))
    synced(mailbox)
    record.refresh_from_db()
    assert (record.location, record.subject) == ("Room 4", "Review")

    # Both sides change it: the direction decides, and the server's change is recorded as dropped.
    record.location = "Board room"
    record.save()
    with act_stack.other_client(mailbox) as phone:
        event = only(phone, "appointment")
        ref = read_all(phone, "appointment")[event.uid].ref
        phone.update("appointment", ref, dataclasses.replace(event, location="Rooftop"))
    synced(mailbox)

    record.refresh_from_db()
    assert record.location == "Board room"
    with act_stack.other_client(mailbox) as phone:
        assert only(phone, "appointment").location == "Board room"
    problem = ActItemProblem.objects.get(mailbox=mailbox, kind="conflict")
    assert (problem.field, problem.dropped_side, problem.dropped_value, problem.kept_value) == (
        "location",
        "server",
        "Rooftop",
        "Board room",
    )
    assert problem.title == "Review"


def test_a_record_leaving_the_filters_stops_syncing_and_its_server_item_stays(act_stack):
    mailbox = act_stack.mailbox("alice")
    contact = factories.contact(owner=mailbox.user, first_name="Ada", last_name="Lovelace")
    synced(mailbox)
    contact.owner = factories.crm_user("Someone Else")
    contact.save()
    synced(mailbox)
    contact.job_title = "Analyst"
    contact.save()
    synced(mailbox)

    assert not ActLink.objects.filter(mailbox=mailbox).exists()
    with act_stack.other_client(mailbox) as phone:
        card = only(phone, "contact")
    assert (card.last_name, card.job_title) == ("Lovelace", "")


def test_a_crm_delete_removes_a_future_meeting_the_user_organizes_and_only_unlinks_a_past_one(act_stack):
    mailbox = act_stack.mailbox("alice")
    coming = appointment(mailbox, "Coming up", days=3)
    past = appointment(mailbox, "Yesterday", days=-1)
    synced(mailbox)
    with act_stack.other_client(mailbox) as phone:
        assert sorted(c.item.subject for c in read_all(phone, "appointment").values()) == [
            "Coming up",
            "Yesterday",
        ]

    coming.delete()
    past.delete()
    synced(mailbox)

    with act_stack.other_client(mailbox) as phone:
        assert [c.item.subject for c in read_all(phone, "appointment").values()] == ["Yesterday"]
    assert not ActLink.objects.filter(mailbox=mailbox).exists()


def test_a_crm_delete_of_a_meeting_someone_else_organizes_only_unlinks_it(act_stack):
    mailbox = act_stack.mailbox("alice")
    record = appointment(mailbox, "Their meeting", days=3)
    record.parties.filter(role="organizer").update(address="carol@contoso.test", user=None)
    synced(mailbox)
    record.delete()
    synced(mailbox)
    with act_stack.other_client(mailbox) as phone:
        assert only(phone, "appointment").subject == "Their meeting"


def test_server_deletes_follow_the_rules(act_stack):
    mailbox = act_stack.mailbox("alice")
    coming = appointment(mailbox, "Coming up", days=3)
    past = appointment(mailbox, "Yesterday", days=-1)
    task = Task.objects.create(owner=mailbox.user, subject="Call back", due=future(2))
    contact = factories.contact(owner=mailbox.user, first_name="Ada", last_name="Lovelace")
    synced(mailbox)

    with act_stack.other_client(mailbox) as phone:
        for entity in ("appointment", "task", "contact"):
            for change in read_all(phone, entity).values():
                phone.delete(entity, change.ref)
    synced(mailbox)

    # A future meeting the user organizes and a task go; a past meeting and a contact stay.
    assert not Appointment.objects.filter(pk=coming.pk).exists()
    assert not Task.objects.filter(pk=task.pk).exists()
    assert Appointment.objects.filter(pk=past.pk).exists()
    assert Contact.objects.filter(pk=contact.pk).exists()


def test_an_item_tracked_by_category_on_the_server_appears_in_the_crm_and_untracking_keeps_it(act_stack):
    mailbox = act_stack.mailbox("alice")
    # Only what the user tracks: no filter would bring the record back on its own.
    SyncFilter.objects.filter(mailbox=mailbox, entity="appointment").delete()
    bob = factories.contact(first_name="Bob", last_name="Builder", email="bob@contoso.test")
    start = future(5, 14)
    tracked = Event(
        uid="lunch-1@phone.test",
        start=start,
        end=start + dt.timedelta(hours=1),
        start_zone="Europe/Berlin",
        end_zone="Europe/Berlin",
        subject="Lunch with Bob",
        organizer=Party(mailbox.email_address, "Alice"),
        attendees=(Attendee("bob@contoso.test", "Bob Builder"),),
        categories=("Tracked to CRM", "Personal"),
    )
    untracked = dataclasses.replace(tracked, uid="dentist@phone.test", subject="Dentist", categories=())
    with act_stack.other_client(mailbox) as phone:
        phone.create("appointment", tracked)
        phone.create("appointment", untracked)
    synced(mailbox)

    record = Appointment.objects.get()
    assert (record.subject, record.owner, record.start, record.categories) == (
        "Lunch with Bob",
        mailbox.user,
        start,
        ["Personal"],
    )
    assert AppointmentParty.objects.get(appointment=record, role="required").contact == bob
    assert AppointmentParty.objects.get(appointment=record, role="organizer").user == mailbox.user

    with act_stack.other_client(mailbox) as phone:
        event = read_all(phone, "appointment")["lunch-1@phone.test"]
        assert event.item is not None
        phone.update("appointment", event.ref, dataclasses.replace(event.item, categories=("Personal",)))
    synced(mailbox)
    with act_stack.other_client(mailbox) as phone:
        event = read_all(phone, "appointment")["lunch-1@phone.test"]
        assert event.item is not None
        phone.update("appointment", event.ref, dataclasses.replace(event.item, subject="Lunch moved"))
    synced(mailbox)

    record.refresh_from_db()
    assert record.subject == "Lunch with Bob"  # untracked: kept, and no longer synced
    assert not ActLink.objects.filter(mailbox=mailbox).exists()


class Killed(BaseException):
    """The worker dying: not an error the engine handles."""


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(act_stack, monkeypatch):
    mailbox = act_stack.mailbox("alice")
    for n in range(4):
        appointment(mailbox, f"Meeting {n}", days=n + 2)
    Task.objects.create(owner=mailbox.user, subject="Call back", due=future(2))
    with act_stack.other_client(mailbox) as phone:
        for n in range(3):
            start = future(10 + n)
            phone.create(
                "appointment",
                Event(
                    uid=f"tracked-{n}@phone.test",
                    start=start,
                    end=start + dt.timedelta(hours=1),
                    start_zone="Europe/Berlin",
                    end_zone="Europe/Berlin",
                    subject=f"Tracked {n}",
                    categories=("Tracked to CRM",),
                ),
            )
    kind = kind_of(act_stack.profile.server_type)
    assert kind is not None
    assert kind.act_items is not None
    connector = kind.act_items
    calls = {"n": 0}

    def dying(settings):
        items = connector(settings)
        create = items.create

        def create_then_die(entity, item):
            ref = create(entity, item)
            calls["n"] += 1
            if calls["n"] == 2:
                raise Killed  # after the server made the item, before the link knows it
            return ref

        items.create = create_then_die  # type: ignore[method-assign]
        return items

    monkeypatch.setattr("sync.act.connectors_of", lambda profile: dataclasses.replace(kind, act_items=dying))
    with pytest.raises(Killed):
        sync_act(mailbox=mailbox)
    monkeypatch.undo()
    synced(mailbox)
    synced(mailbox)

    assert Appointment.objects.count() == 7
    with act_stack.other_client(mailbox) as phone:
        subjects = sorted(c.item.subject for c in read_all(phone, "appointment").values() if c.item)
        assert subjects == [*(f"Meeting {n}" for n in range(4)), *(f"Tracked {n}" for n in range(3))]
        assert [c.item.subject for c in read_all(phone, "task").values() if c.item] == ["Call back"]
    assert ActLink.objects.filter(mailbox=mailbox).count() == 8


def test_a_rejected_cursor_and_lost_links_link_what_exists_instead_of_doubling_it(act_stack):
    mailbox = act_stack.mailbox("alice")
    appointment(mailbox, "Quarterly review")
    Task.objects.create(owner=mailbox.user, subject="Call back", due=future(2))
    factories.contact(owner=mailbox.user, first_name="Ada", last_name="Lovelace", email="ada@engines.test")
    synced(mailbox)
    ActCursor.objects.filter(mailbox=mailbox).update(token="")
    ActLink.objects.filter(mailbox=mailbox).delete()
    synced(mailbox)
    synced(mailbox)

    assert (Appointment.objects.count(), Task.objects.count(), Contact.objects.count()) == (1, 1, 1)
    assert ActLink.objects.filter(mailbox=mailbox).exclude(item_id="").count() == 3
    with act_stack.other_client(mailbox) as phone:
        for entity in ("appointment", "task", "contact"):
            assert len(read_all(phone, entity)) == 1, entity


def test_only_future_meetings_the_user_organizes_carry_their_attendees_to_the_server(act_stack):
    """Servers invite a meeting's attendees; invitations go only to future meetings the user organizes."""
    mailbox = act_stack.mailbox("alice")
    appointment(mailbox, "Coming up", days=3, attendees=["bob@contoso.test"])
    appointment(mailbox, "Yesterday", days=-1, attendees=["bob@contoso.test"])
    theirs = appointment(mailbox, "Carol's", days=3, attendees=["bob@contoso.test"])
    theirs.parties.filter(role="organizer").update(address="carol@contoso.test", user=None)
    synced(mailbox)
    synced(mailbox)

    with act_stack.other_client(mailbox) as phone:
        attendees = {
            c.item.subject: [a.address for a in c.item.attendees]
            for c in read_all(phone, "appointment").values()
            if isinstance(c.item, Event)
        }
    assert attendees == {"Coming up": ["bob@contoso.test"], "Yesterday": [], "Carol's": []}
    # The CRM keeps them all.
    assert AppointmentParty.objects.filter(role="required").count() == 3


def test_a_recurrence_exchange_cannot_express_is_an_item_problem_and_the_rest_syncs(exchange_act_stack):
    # iCalendar expresses every rule the CRM keeps; Exchange's patterns refuse some.
    act_stack = exchange_act_stack
    mailbox = act_stack.mailbox("alice")
    twice_a_month = weekly(mailbox, start=future(7, 9), subject="Payroll check")
    days = sorted({future(7).day, (future(7) + dt.timedelta(days=14)).day})
    twice_a_month.recurrence_rule = f"FREQ=MONTHLY;BYMONTHDAY={days[0]},{days[1]};COUNT=6"
    twice_a_month.full_clean()
    twice_a_month.save()
    appointment(mailbox, "Plain meeting")

    run = sync_act(mailbox=mailbox)

    assert (run.outcome, run.sent, run.failed) == (SyncOutcome.SUCCESS, 1, 1)
    problem = ActItemProblem.objects.get(mailbox=mailbox)
    assert (problem.kind, problem.record_id, problem.title) == ("refused", twice_a_month.pk, "Payroll check")
    assert "recurrence" in problem.message.lower()
    with act_stack.other_client(mailbox) as phone:
        assert only(phone, "appointment").subject == "Plain meeting"
