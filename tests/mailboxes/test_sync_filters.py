"""Sync filters on real rows: what mailboxes.sync_filters.matching selects for a mailbox."""

from __future__ import annotations

import datetime as dt
import importlib
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import ValidationError
from django.utils import timezone

from crm.models import Appointment, Contact, Task
from mailboxes.models import Mailbox, SyncFilter, SyncFilterTemplate
from mailboxes.sync_filters import matching
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_mailbox():
    return factories.mailbox(user=factories.crm_user("Alice"))


def only(mailbox: Mailbox, entity: str, name: str, criteria: dict[str, Any]) -> SyncFilter:
    """Replace the mailbox's filters of ``entity`` by one."""
    SyncFilter.objects.filter(mailbox=mailbox, entity=entity).delete()
    return factories.sync_filter(mailbox=mailbox, entity=entity, name=name, criteria=criteria)


def ago(days: float) -> dt.datetime:
    return timezone.now() - dt.timedelta(days=days)


def test_a_new_users_mailbox_gets_the_organizations_defaults(alice_mailbox):
    names = set(alice_mailbox.sync_filters.values_list("entity", "name"))
    assert names == {
        ("appointment", "My appointments"),
        ("contact", "My contacts"),
        ("task", "My tasks"),
    }


def test_defaults_edited_by_an_administrator_are_what_the_next_mailbox_gets(alice_mailbox):
    template = SyncFilterTemplate.objects.get(name="My contacts")
    template.name, template.criteria = "All contacts", {"owner": "all"}
    template.save()

    bob_mailbox = factories.mailbox(user=factories.crm_user("Bob"))

    assert bob_mailbox.sync_filters.get(entity="contact").name == "All contacts"
    assert alice_mailbox.sync_filters.get(entity="contact").name == "My contacts"


def test_my_appointments_open_and_not_ended_more_than_two_weeks_ago(alice_mailbox):
    alice, bob = alice_mailbox.user, factories.crm_user("Bob")
    recent = factories.appointment(owner=alice, start=ago(10), end=ago(10) + dt.timedelta(hours=1))
    upcoming = factories.appointment(owner=alice)
    factories.appointment(owner=alice, start=ago(20), end=ago(20) + dt.timedelta(hours=1))  # too old
    factories.appointment(owner=alice, status=Appointment.Status.CANCELED)
    factories.appointment(owner=bob)
    # A weekly series that began a year ago still has occurrences to sync.
    series = factories.appointment(
        owner=alice, start=ago(365), end=ago(365) + dt.timedelta(hours=1), recurrence_rule="FREQ=WEEKLY"
    )

    assert set(matching(alice_mailbox, "appointment")) == {recent, upcoming, series}


def test_my_contacts_owned_and_active_and_my_tasks_owned_and_open(alice_mailbox):
    alice = alice_mailbox.user
    mine = factories.contact(owner=alice)
    factories.contact(owner=alice, is_active=False)
    factories.contact(owner=factories.crm_user("Bob"))
    open_task = factories.task(owner=alice, status=Task.Status.IN_PROGRESS)
    factories.task(owner=alice, status=Task.Status.COMPLETED)
    factories.task(owner=alice, status=Task.Status.CANCELED)

    assert list(matching(alice_mailbox, "contact")) == [mine]
    assert list(matching(alice_mailbox, "task")) == [open_task]


def test_an_entity_without_a_filter_syncs_nothing(alice_mailbox):
    factories.contact(owner=alice_mailbox.user)
    SyncFilter.objects.filter(mailbox=alice_mailbox, entity="contact").delete()

    assert not matching(alice_mailbox, "contact").exists()


def test_filters_are_or_ed(alice_mailbox):
    alice = alice_mailbox.user
    mine = factories.contact(owner=alice, is_active=False)
    acme = factories.contact(company_name="Acme Corp")
    factories.contact(company_name="Other")
    only(alice_mailbox, "contact", "Mine", {"owner": "mine"})
    factories.sync_filter(
        mailbox=alice_mailbox,
        entity="contact",
        name="Acme",
        criteria={"conditions": [{"field": "company_name", "op": "contains", "value": "acme"}]},
    )

    assert set(matching(alice_mailbox, "contact")) == {mine, acme}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "priority", "op": "equals", "value": "high"}, {"urgent"}),
        ({"field": "priority", "op": "in", "value": ["high", "low"]}, {"urgent", "someday"}),
        ({"field": "due", "op": "before", "value": "2026-06-01"}, {"someday"}),
        ({"field": "due", "op": "after", "value": "2026-06-01T00:00:00+00:00"}, {"urgent", "usual"}),
        ({"field": "percent_complete", "op": "after", "value": 40}, {"usual"}),
        ({"field": "subject", "op": "contains", "value": "URG"}, {"urgent"}),
    ],
)
def test_each_operator(alice_mailbox, condition, expected):
    alice = alice_mailbox.user
    due = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    factories.task(owner=alice, subject="urgent", priority="high", due=due + dt.timedelta(days=1))
    factories.task(owner=alice, subject="someday", priority="low", due=due - dt.timedelta(days=1))
    factories.task(owner=alice, subject="usual", percent_complete=50, due=due + dt.timedelta(days=2))
    only(alice_mailbox, "task", "One condition", {"owner": "mine", "conditions": [condition]})

    assert {t.subject for t in matching(alice_mailbox, "task")} == expected


def test_a_condition_on_a_related_record_by_its_id(alice_mailbox):
    account = factories.account()
    at_account = factories.contact(account=account)
    factories.contact()
    only(
        alice_mailbox,
        "contact",
        "Acme's people",
        {"conditions": [{"field": "account", "op": "equals", "value": account.pk}]},
    )

    assert list(matching(alice_mailbox, "contact")) == [at_account]


def test_a_window_ahead_and_behind(alice_mailbox):
    alice = alice_mailbox.user
    soon = factories.task(owner=alice, due=timezone.now() + dt.timedelta(days=3))
    factories.task(owner=alice, due=timezone.now() + dt.timedelta(days=30))
    factories.task(owner=alice, due=ago(2))
    only(alice_mailbox, "task", "Due this week", {"window": {"field": "due", "days_ago": 1, "days_ahead": 7}})

    assert list(matching(alice_mailbox, "task")) == [soon]


def test_changed_occurrences_travel_with_their_series(alice_mailbox):
    master = factories.appointment(owner=alice_mailbox.user, recurrence_rule="FREQ=DAILY;COUNT=3")
    factories.appointment(
        owner=alice_mailbox.user,
        series_master=master,
        original_start=master.start + dt.timedelta(days=1),
        start=master.start + dt.timedelta(days=1, hours=2),
        end=master.start + dt.timedelta(days=1, hours=3),
    )

    assert list(matching(alice_mailbox, "appointment")) == [master]


def test_a_queue_mailbox_syncs_nothing_and_takes_no_filter():
    """As Dynamics: queue mailboxes do not synchronize appointments, contacts and tasks."""
    queue_mailbox = factories.mailbox(queue=factories.queue("Support"))
    factories.contact()

    assert not queue_mailbox.sync_filters.exists()
    assert not matching(queue_mailbox, "contact").exists()
    refused = SyncFilter(mailbox=queue_mailbox, entity="contact", name="All", criteria={"owner": "all"})
    with pytest.raises(ValidationError) as raised:
        refused.full_clean()
    assert raised.value.message_dict["mailbox"] == [
        "Only a user's mailbox synchronizes appointments, contacts and tasks."
    ]


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        (
            {"conditions": [{"field": "colour", "op": "equals", "value": "red"}]},
            "Condition 1: tasks have no field 'colour'; use one of ",
        ),
        (
            {"conditions": [{"field": "priority", "op": "contains", "value": "hi"}]},
            "Condition 1: 'contains' does not apply to priority; use equals, in.",
        ),
        (
            {"conditions": [{"field": "priority", "op": "equals", "value": "urgent"}]},
            "Condition 1: priority: 'urgent' is not one of low, normal, high.",
        ),
        (
            {"conditions": [{"field": "due", "op": "before", "value": "next week"}]},
            "Condition 1: due: ",
        ),
        ({"owner": "team"}, "Owner: 'team' is not a scope; use mine or all (the CRM has no teams)."),
        ({"states": ["done"]}, "States: 'done' is not a state of tasks; use not_started, "),
        ({"window": {"field": "subject", "days_ago": 3}}, "Window: name its field, one of "),
        (
            {"window": {"field": "due", "days_ago": -3}},
            "Window: days_ago is a whole number of days, 0 to 36500.",
        ),
        (
            {"conditions": [{"field": "percent_complete", "op": "after", "value": 10**20}]},
            "Condition 1: percent_complete: Ensure this value is less than or equal to ",
        ),
        (
            {"conditions": [{"field": "subject", "op": "contains", "value": "a\x00b"}]},
            "Condition 1: subject: give the text to look for.",
        ),
        ({"colour": "red"}, "Unknown part 'colour': use conditions, owner, states, window."),
    ],
)
def test_bad_criteria_are_refused_with_what_is_wrong(alice_mailbox, criteria, message):
    bad = SyncFilter(mailbox=alice_mailbox, entity="task", name="Bad", criteria=criteria)

    with pytest.raises(ValidationError) as raised:
        bad.full_clean()

    [error] = raised.value.message_dict["criteria"]
    assert error.startswith(message), error
    assert Contact.objects.count() == 0  # nothing else was made


def test_the_data_migration_gives_existing_users_mailboxes_the_defaults_once(alice_mailbox):
    """Run on today's models (their fields are the migration's): mailboxes made before it
    get the three defaults, a mailbox that has filters keeps its own, queues get none."""
    migration = importlib.import_module("mailboxes.migrations.0006_default_sync_filters")
    alice_mailbox.sync_filters.all().delete()
    kept = factories.mailbox(user=factories.crm_user("Bob"))
    only(kept, "contact", "Bob's own", {"owner": "all"})
    queue_mailbox = factories.mailbox(queue=factories.queue("Support"))

    migration.create_defaults(django_apps, None)

    assert sorted(alice_mailbox.sync_filters.values_list("name", flat=True)) == [
        "My appointments",
        "My contacts",
        "My tasks",
    ]
    assert sorted(kept.sync_filters.values_list("name", flat=True)) == [
        "Bob's own",
        "My appointments",
        "My tasks",
    ]
    assert not queue_mailbox.sync_filters.exists()
    assert SyncFilterTemplate.objects.count() == 3
