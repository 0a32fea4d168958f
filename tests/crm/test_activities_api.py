"""Appointments, tasks and contacts through the REST API, as a CRM user works with them."""

from __future__ import annotations

import datetime as dt

import pytest

from crm.models import Appointment, Task
from tests import factories

pytestmark = pytest.mark.django_db


def iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


WEEKLY = {
    "subject": "Weekly sync",
    "start": "2026-03-10T09:00:00+01:00",
    "start_time_zone": "Europe/Berlin",
    "end": "2026-03-10T10:00:00+01:00",
    "end_time_zone": "Europe/Berlin",
    "recurrence_rule": "FREQ=WEEKLY;BYDAY=TU;COUNT=6",
    "show_as": "busy",
    "reminder_minutes_before": 15,
    "categories": ["Customer"],
}


def test_a_user_creates_a_meeting_with_attendees_and_owns_it(api_as, world):
    alice = world["alice"]
    response = api_as("alice").post(
        "/api/v1/appointments/",
        {
            **WEEKLY,
            "organizer": {"user": alice.crm_user.pk},
            "required_attendees": [{"contact": alice.contact.pk, "address": "c@customer.test"}],
            "optional_attendees": [{"address": "someone@elsewhere.test", "display_name": "Someone"}],
            "regarding_account": alice.account.pk,
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["owner"] == alice.crm_user.pk
    assert body["recurrence_rule"] == "FREQ=WEEKLY;BYDAY=TU;COUNT=6"
    assert sorted((p["role"], p["address"], p["record_type"]) for p in body["parties"]) == [
        ("optional", "someone@elsewhere.test", None),
        ("organizer", "alice@example.test", "crmuser"),
        ("required", "c@customer.test", "contact"),
    ]
    assert Appointment.objects.get(pk=body["id"]).regarding == alice.account


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"start_time_zone": "Europe/Atlantis"}, "start_time_zone"),
        ({"end": "2026-03-10T08:00:00+01:00"}, "end"),
        ({"recurrence_rule": "FREQ=SECONDLY"}, "recurrence_rule"),
        ({"categories": ["A", "a"]}, "categories"),
        ({"show_as": "away"}, "show_as"),
        ({"reminder_minutes_before": -5}, "reminder_minutes_before"),
        ({"organizer": {"address": ""}}, "organizer"),
        ({"organizer": None}, "organizer"),
        ({"deleted_occurrences": ["2026-03-11T09:00:00+01:00"]}, "deleted_occurrences"),
    ],
)
def test_a_wrong_appointment_is_refused_field_by_field(api_as, change, field):
    data = {**WEEKLY, "organizer": {"address": "org@example.test"}, **change}

    response = api_as("alice").post("/api/v1/appointments/", data, format="json")

    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Appointment.objects.filter(subject="Weekly sync").exists()


def test_an_appointment_without_an_organizer_is_refused(api_as):
    response = api_as("alice").post("/api/v1/appointments/", WEEKLY, format="json")

    assert response.status_code == 400
    assert response.json() == {"organizer": ["An appointment needs an organizer."]}


def test_a_user_cannot_invite_another_users_contact_by_id(api_as, world):
    response = api_as("alice").post(
        "/api/v1/appointments/",
        {
            **WEEKLY,
            "organizer": {"address": "a@example.test"},
            "required_attendees": [{"contact": world["bob"].contact.pk}],
        },
        format="json",
    )

    assert response.status_code == 400
    assert "required_attendees" in response.json()


def test_a_moved_occurrence_through_the_api(api_as, world):
    series = factories.appointment(
        owner=world["alice"].crm_user,
        start=iso("2026-03-10T09:00:00+01:00"),
        end=iso("2026-03-10T10:00:00+01:00"),
        recurrence_rule="FREQ=WEEKLY;BYDAY=TU;COUNT=6",
    )
    client = api_as("alice")

    response = client.post(
        "/api/v1/appointments/",
        {
            **WEEKLY,
            "recurrence_rule": "",
            "series_master": series.pk,
            "original_start": "2026-03-17T09:00:00+01:00",
            "start": "2026-03-18T11:00:00+01:00",
            "end": "2026-03-18T12:00:00+01:00",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    deleted = client.patch(
        f"/api/v1/appointments/{series.pk}/",
        {"deleted_occurrences": ["2026-03-24T08:00:00Z"]},
        format="json",
    )
    assert deleted.status_code == 200, deleted.content

    exceptions = client.get("/api/v1/appointments/", {"series_master": series.pk}).json()["results"]
    assert [e["original_start"] for e in exceptions] == ["2026-03-17T08:00:00Z"]
    assert [p["role"] for p in exceptions[0]["parties"]] == ["organizer"]


def test_appointments_filter_by_window_and_order_by_start(api_as, world):
    owner = world["alice"].crm_user
    late = factories.appointment(
        owner=owner, start=iso("2026-07-02T09:00:00Z"), end=iso("2026-07-02T10:00:00Z")
    )
    early = factories.appointment(
        owner=owner, start=iso("2026-07-01T09:00:00Z"), end=iso("2026-07-01T10:00:00Z")
    )
    factories.appointment(owner=owner, start=iso("2026-08-01T09:00:00Z"), end=iso("2026-08-01T10:00:00Z"))

    response = api_as("alice").get(
        "/api/v1/appointments/",
        {"start__lt": "2026-07-31T00:00:00Z", "end__gt": "2026-06-30T00:00:00Z", "ordering": "-start"},
    )

    assert [row["id"] for row in response.json()["results"]] == [late.pk, early.pk]


def test_users_see_only_the_appointments_and_tasks_they_own(api_as, world):
    mine = factories.appointment(owner=world["alice"].crm_user)
    theirs = factories.appointment(owner=world["bob"].crm_user)
    my_task = factories.task(owner=world["alice"].crm_user)
    their_task = factories.task(owner=world["bob"].crm_user)
    client = api_as("alice")

    assert [r["id"] for r in client.get("/api/v1/appointments/").json()["results"]] == [mine.pk]
    assert client.get(f"/api/v1/appointments/{theirs.pk}/").status_code == 404
    assert [r["id"] for r in client.get("/api/v1/tasks/").json()["results"]] == [my_task.pk]
    assert client.delete(f"/api/v1/tasks/{their_task.pk}/").status_code == 404
    assert Task.objects.filter(pk=their_task.pk).exists()


def test_completing_a_task_through_the_api(api_as, world):
    task = factories.task(owner=world["alice"].crm_user, status=Task.Status.IN_PROGRESS, percent_complete=30)

    response = api_as("alice").patch(f"/api/v1/tasks/{task.pk}/", {"status": "completed"}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["percent_complete"] == 100
    assert response.json()["completed_on"] is not None
    listed = api_as("alice").get("/api/v1/tasks/", {"status__in": "completed,canceled"}).json()["results"]
    assert [row["id"] for row in listed] == [task.pk]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"percent_complete": 150}, "percent_complete"),
        ({"priority": "urgent"}, "priority"),
        ({"start": "2026-05-02T00:00:00Z", "due": "2026-05-01T00:00:00Z"}, "due"),
    ],
)
def test_a_wrong_task_is_refused_field_by_field(api_as, change, field):
    response = api_as("alice").post("/api/v1/tasks/", {"subject": "Wrong", **change}, format="json")

    assert response.status_code == 400
    assert field in response.json()


def test_a_contact_with_a_mail_servers_fields_through_the_api(api_as):
    response = api_as("alice").post(
        "/api/v1/contacts/",
        {
            "first_name": "Erika",
            "last_name": "Mustermann",
            "email": "erika@contoso.test",
            "email2": "rika@home.test",
            "mobile_phone": "+49 170 1234",
            "home_city": "Potsdam",
            "birthday": "1980-02-29",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["email2"], body["mobile_phone"], body["home_city"], body["birthday"]) == (
        "rika@home.test",
        "+49 170 1234",
        "Potsdam",
        "1980-02-29",
    )
    assert api_as("alice").get("/api/v1/contacts/", {"search": "rika@home"}).json()["count"] == 1
