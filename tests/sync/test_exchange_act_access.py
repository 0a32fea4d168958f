"""Test & enable on Exchange opens the mailbox's calendar, contacts and tasks and enables
their sync when they open, so that a missing permission is named before anything syncs
(Graph: the app's application permissions; EWS: the account's rights on the mailbox)."""

from __future__ import annotations

import pytest

from crm.choices import ActMethod
from mailboxes.models import Mailbox
from sync.checks import mailbox_test_and_enable
from tests.sync.exchange_stack import EwsStack, GraphStack

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
MAIL = ("Mail.ReadWrite", "Mail.Send")
ACT = ("Calendars.ReadWrite", "Contacts.ReadWrite", "Tasks.ReadWrite.All")
OPENS = "Appointments, contacts and tasks open and will sync."


def act_result(stack) -> tuple[object, object, object]:
    mailbox = stack.user_mailbox("alice")
    Mailbox.objects.filter(pk=mailbox.pk).update(act_method=ActMethod.SERVER_SIDE_SYNC)
    mailbox.refresh_from_db()
    report = mailbox_test_and_enable(mailbox=mailbox)
    outcomes = {r.direction: r for r in report.results}
    assert (outcomes["incoming"].outcome, outcomes["outgoing"].outcome) == ("success", "success")
    mailbox.refresh_from_db()
    act = outcomes["act"]
    return act, mailbox.act_enabled, mailbox.disabled_reason


def test_an_app_granted_calendars_contacts_and_tasks_is_told_they_open(settings, graph_server):
    act, enabled, _ = act_result(GraphStack.build(settings, graph_server, permissions=MAIL + ACT))
    assert (act.outcome, act.message) == ("success", OPENS)
    assert enabled


@pytest.mark.parametrize("missing", ACT)
def test_an_app_missing_a_permission_is_told_which_to_grant(settings, graph_server, missing):
    granted = tuple(p for p in ACT if p != missing)
    act, enabled, reason = act_result(GraphStack.build(settings, graph_server, permissions=MAIL + granted))
    assert (act.outcome, act.code) == ("failure", "consent_missing")
    assert f"Application permissions > {missing} and grant admin consent" in act.message
    assert not enabled
    assert missing in reason


def test_an_exchange_server_account_opens_the_calendar_contacts_and_tasks(settings, ews_server):
    act, enabled, _ = act_result(EwsStack.build(settings, ews_server))
    assert (act.outcome, act.message) == ("success", OPENS)
    assert enabled
