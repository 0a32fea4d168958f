"""The pages of appointments, contacts and tasks: the mailbox page's section (ACT runs in
their own words, linked items, item problems a page at a time, each user only their own
mailbox's), the field directions page, the support report and the admin; and one conflict
made by the real engine against Radicale, as the page then shows it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from crm.choices import ActMethod
from crm.models import Appointment, AppointmentParty
from mailboxes.models import Mailbox
from sync.act import sync_act
from sync.models import (
    ActFieldSetting,
    ActItemProblem,
    ActLink,
    ActProblemKind,
    SyncKind,
    SyncOutcome,
    SyncRun,
)
from tests import factories
from tests.personas import World
from tests.sync.act.backends import only, read_all
from tests.sync.act.conftest import dav_stack

pytestmark = pytest.mark.django_db
BERLIN = ZoneInfo("Europe/Berlin")


def signed_in(world: World, name: str) -> Client:
    client = Client()
    client.force_login(world[name].login)
    return client


def act_section(html: str) -> str:
    match = re.search(r'<section class="card" id="act">(.*?)</section>', html, re.S)
    assert match, "no appointments, contacts and tasks section on the page"
    return match.group(1)


def rows(html: str, attribute: str) -> list[str]:
    return re.findall(rf'<tr {attribute}="(\d+)"', html)


def problem(mailbox: Mailbox, **extra: object) -> ActItemProblem:
    values: dict[str, object] = {
        "entity": "appointment",
        "kind": ActProblemKind.REFUSED,
        "title": "Quarterly review",
        "message": "The server refused the item: the organizer's address is not valid.",
    }
    return ActItemProblem.objects.create(mailbox=mailbox, **(values | extra))


def act_run(mailbox: Mailbox, **counts: int) -> SyncRun:
    return factories.sync_run(mailbox=mailbox, kind=SyncKind.ACT, **counts)


# --- the mailbox page ------------------------------------------------------------------------


def test_the_owner_sees_the_act_runs_links_and_the_conflict_of_their_mailbox(world: World):
    alice = world["alice"].mailbox
    run = act_run(alice, received=7, tracked=3, linked=2, sent=4, failed=1)
    email_run = world["alice"].sync.sync_run

    html = signed_in(world, "alice").get(f"/mailboxes/{alice.pk}/").content.decode()

    section = act_section(html)
    # The ACT run in the ACT table with its counters under their ACT names, not in the email runs.
    assert rows(section, "data-act-run") == [str(run.pk)]
    assert "<th>Server changes read</th>" in section
    assert "<th>CRM records created or changed</th>" in section
    for css, value in [("act-read", 7), ("act-to-crm", 3), ("act-linked", 2), ("act-to-server", 4)]:
        assert f'<td class="n {css}">{value}</td>' in section
    assert f'data-run="{run.pk}"' not in html
    assert f'data-run="{email_run.pk}"' in html
    # One contact linked (the persona's), no appointment or task.
    linked = dict(re.findall(r'data-entity="(\w+)"><th>[^<]+</th><td class="n linked-count">(\d+)', section))
    assert linked == {"appointment": "0", "contact": "1", "task": "0"}
    # The conflict: which field, whose change was dropped, the value dropped and the one kept.
    conflict = world["alice"].sync.act_problem
    assert rows(section, "data-act-problem") == [str(conflict.pk)]
    assert (
        '<strong class="conflict-field">Job title</strong>: the server&#x27;s change was dropped.' in section
    )
    assert f'<code class="dropped-value">server title {alice.pk}</code>' in section
    assert f'<code class="kept-value">CRM title {alice.pk}</code>' in section


def test_a_user_never_sees_another_mailbox_s_problems(world: World):
    bob = world["bob"].mailbox
    refused = problem(bob, message="Bob's item was refused.")
    alice = signed_in(world, "alice")

    assert alice.get(f"/mailboxes/{bob.pk}/").status_code == 404
    own = alice.get(f"/mailboxes/{world['alice'].mailbox.pk}/").content.decode()
    assert "Bob&#x27;s item was refused." not in own
    assert f'data-act-problem="{refused.pk}"' not in own
    # Administrators see every mailbox's.
    assert (
        f'data-act-problem="{refused.pk}"'
        in signed_in(world, "admin").get(f"/mailboxes/{bob.pk}/").content.decode()
    )


def test_other_problems_show_their_message_newest_first_a_page_at_a_time(world: World):
    alice = world["alice"].mailbox
    ActItemProblem.objects.filter(mailbox=alice).delete()
    made = [problem(alice, title=f"Item {n}", message=f"Refused number {n}.") for n in range(30)]
    base = timezone.now()
    for age, row in enumerate(reversed(made)):  # made[-1] newest
        ActItemProblem.objects.filter(pk=row.pk).update(created_on=base - dt.timedelta(minutes=age))
    client = signed_in(world, "alice")

    first = act_section(client.get(f"/mailboxes/{alice.pk}/").content.decode())
    second = act_section(client.get(f"/mailboxes/{alice.pk}/?page=2").content.decode())

    assert '<strong id="act-problem-count">30</strong>' in first
    assert rows(first, "data-act-problem") == [str(p.pk) for p in reversed(made[5:])]
    assert rows(second, "data-act-problem") == [str(p.pk) for p in reversed(made[:5])]
    assert '<span class="reason">Refused number 29.</span>' in first
    assert "Page 1 of 2" in first
    assert "Page 2 of 2" in second


def test_a_mailbox_that_never_synced_act_has_no_such_section(world: World):
    dora = factories.crm_user("Dora", login=factories.login_user("dora"))
    mailbox = factories.mailbox(user=dora, profile=world.profile)
    assert mailbox.act_method == ActMethod.NONE
    client = Client()
    client.force_login(dora.user)

    assert 'id="act"' not in client.get(f"/mailboxes/{mailbox.pk}/").content.decode()
    Mailbox.objects.filter(pk=mailbox.pk).update(act_method=ActMethod.SERVER_SIDE_SYNC)
    section = act_section(client.get(f"/mailboxes/{mailbox.pk}/").content.decode())
    assert "No appointments, contacts and tasks run yet." in section
    assert "No item problems." in section


def test_the_section_links_administrators_to_the_field_directions(world: World):
    alice = world["alice"].mailbox
    url = reverse("act-field-settings")

    assert url in act_section(signed_in(world, "admin").get(f"/mailboxes/{alice.pk}/").content.decode())
    assert url not in act_section(signed_in(world, "alice").get(f"/mailboxes/{alice.pk}/").content.decode())


def test_the_support_report_has_the_act_runs_and_problems_in_their_own_words(world: World):
    alice = world["alice"].mailbox
    act_run(alice, received=5, tracked=2, sent=1)

    text = signed_in(world, "alice").get(f"/mailboxes/{alice.pk}/details.txt").content.decode()

    assert "== Appointments, contacts and tasks: recent runs (newest first) ==" in text
    assert "server changes read 5, CRM records created or changed 2" in text
    assert "Contacts: 1" in text
    assert (
        f"Job title: the server's change dropped (server title {alice.pk}), kept CRM title {alice.pk}" in text
    )


# --- field directions --------------------------------------------------------------------------


def direction_rows(html: str) -> dict[str, str]:
    """entity.field -> the select's chosen value, or "fixed"."""
    found = {}
    for key, body in re.findall(r'<tr data-field="([a-z_.]+)"[^>]*>(.*?)</tr>', html, re.S):
        chosen = re.search(r'<option value="(\w+)" selected>', body)
        found[key] = chosen.group(1) if chosen else "fixed" if "fixed-direction" in body else "?"
    return found


def test_the_field_directions_page_lists_every_field_and_offers_only_the_changeable(world: World):
    ActFieldSetting.objects.create(entity="contact", field="notes", direction="to_crm")

    html = signed_in(world, "admin").get("/settings/act-fields/").content.decode()

    shown = direction_rows(html)
    assert shown["appointment.schedule"] == shown["appointment.attendees"] == shown["contact.name"] == "fixed"
    assert shown["contact.notes"] == "to_crm"
    assert shown["appointment.location"] == shown["task.status"] == "both"
    assert 'name="appointment.schedule"' not in html
    assert len(shown) == 10 + 7 + 15  # every synced field of sync.act_fields


def test_an_administrator_changes_a_direction_and_a_bad_choice_saves_nothing(world: World):
    admin = signed_in(world, "admin")
    form = direction_rows(admin.get("/settings/act-fields/").content.decode())
    posted = {key: value for key, value in form.items() if value != "fixed"}

    saved = admin.post("/settings/act-fields/", posted | {"appointment.location": "to_server"})

    assert saved.status_code == 302
    assert ActFieldSetting.objects.get(entity="appointment", field="location").direction == "to_server"
    refused = admin.post(
        "/settings/act-fields/", posted | {"appointment.location": "sideways", "task.due": "none"}
    )
    assert refused.status_code == 200
    assert "The field directions were not saved" in refused.content.decode()
    assert ActFieldSetting.objects.get(entity="appointment", field="location").direction == "to_server"
    assert not ActFieldSetting.objects.filter(entity="task", field="due").exists()
    # A fixed field posted anyway is not a field of the form: nothing is stored for it.
    admin.post("/settings/act-fields/", posted | {"appointment.schedule": "none"})
    assert not ActFieldSetting.objects.filter(field="schedule").exists()


def test_the_email_settings_page_links_to_the_field_directions_and_users_are_refused(world: World):
    html = signed_in(world, "admin").get("/settings/email/").content.decode()

    assert f'href="{reverse("act-field-settings")}"' in html
    assert 'data-field="act_tracking_category"' in html
    assert 'data-field="sync_all_contact_addresses"' in html
    assert signed_in(world, "alice").get("/settings/act-fields/").status_code == 403


# --- the admin ---------------------------------------------------------------------------------


def admin_url(model: type, view: str, *args: object) -> str:
    return reverse(f"admin:sync_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize(
    ("model", "query"),
    [(ActLink, ""), (ActItemProblem, "?kind__exact=conflict&entity__exact=contact"), (ActFieldSetting, "")],
)
def test_the_admin_changelists_render(world: World, model: type, query: str):
    ActFieldSetting.objects.create(entity="appointment", field="body", direction="none")

    response = signed_in(world, "admin").get(admin_url(model, "changelist") + query)

    assert response.status_code == 200
    assert response.context["cl"].result_count == model.objects.count() > 0


@pytest.mark.parametrize("model", [ActLink, ActItemProblem])
def test_links_and_problems_are_read_only_in_the_admin(world: World, model: type):
    admin = signed_in(world, "admin")
    row = model.objects.first()

    assert admin.get(admin_url(model, "change", row.pk)).context["has_change_permission"] is False
    assert admin.get(admin_url(model, "add")).status_code == 403
    assert admin.get(admin_url(model, "delete", row.pk)).status_code == 403


def test_the_admin_refuses_a_fixed_field_with_the_reason(world: World):
    admin = signed_in(world, "admin")

    fixed = admin.post(
        admin_url(ActFieldSetting, "add"), {"entity": "appointment", "field": "schedule", "direction": "none"}
    )
    unknown = admin.post(
        admin_url(ActFieldSetting, "add"), {"entity": "task", "field": "colour", "direction": "none"}
    )
    chosen = admin.post(
        admin_url(ActFieldSetting, "add"), {"entity": "task", "field": "priority", "direction": "to_crm"}
    )

    assert "always sync both ways; it cannot be changed." in fixed.content.decode()
    assert "The task has no synced field &#x27;colour&#x27;" in unknown.content.decode()
    assert chosen.status_code == 302
    assert list(ActFieldSetting.objects.values_list("entity", "field", "direction")) == [
        ("task", "priority", "to_crm")
    ]


# --- a conflict made by the engine -----------------------------------------------------------


def conflicted_mailbox(radicale, settings) -> Mailbox:
    """Carol's mailbox on Radicale after two real runs: her meeting moved to another room in
    the CRM and on her phone between them, so the engine kept the CRM's room and recorded the
    phone's as dropped. Carol signs in as "carol"."""
    stack = dav_stack(radicale, settings)
    mailbox = stack.mailbox("carol")
    start = dt.datetime.combine(dt.datetime.now(BERLIN).date() + dt.timedelta(days=7), dt.time(10), BERLIN)
    record = Appointment(
        owner=mailbox.user,
        subject="Budget review",
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
    assert sync_act(mailbox=mailbox).outcome == SyncOutcome.SUCCESS
    record.location = "Board room"
    record.save()
    with stack.other_client(mailbox) as phone:
        event = only(phone, "appointment")
        ref = read_all(phone, "appointment")[event.uid].ref
        phone.update("appointment", ref, dataclasses.replace(event, location="Rooftop"))
    assert sync_act(mailbox=mailbox).outcome == SyncOutcome.SUCCESS
    user = mailbox.user
    assert user is not None
    user.user = factories.login_user("carol")
    user.save()
    return mailbox


@pytest.mark.slow
def test_a_conflict_the_engine_records_shows_on_the_owner_s_page(radicale, settings):
    mailbox = conflicted_mailbox(radicale, settings)
    client = Client()
    client.force_login(mailbox.user.user)

    section = act_section(client.get(f"/mailboxes/{mailbox.pk}/").content.decode())

    runs = SyncRun.objects.filter(mailbox=mailbox, kind=SyncKind.ACT)
    assert len(rows(section, "data-act-run")) == runs.count() == 2
    assert sum(int(n) for n in re.findall(r'<td class="n act-to-server">(\d+)</td>', section)) == sum(
        run.sent for run in runs
    )
    assert re.search(r'data-entity="appointment"><th>Appointments</th><td class="n linked-count">1<', section)
    assert (
        '<strong class="conflict-field">Location</strong>: the server&#x27;s change was dropped.' in section
    )
    assert '<code class="dropped-value">Rooftop</code>' in section
    assert '<code class="kept-value">Board room</code>' in section
