"""Tasks: completing one is one rule, wherever the completion comes from."""

from __future__ import annotations

import datetime as dt

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from crm.models import Task
from tests import factories

pytestmark = pytest.mark.django_db

NOON = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)


def test_a_new_task_is_not_started_normal_and_zero_percent():
    task = factories.task(subject="Call back")

    assert (task.status, task.priority, task.percent_complete, task.completed_on) == (
        Task.Status.NOT_STARTED,
        Task.Priority.NORMAL,
        0,
        None,
    )


@time_machine.travel(NOON, tick=False)
def test_completing_sets_100_percent_and_when():
    task = factories.task(status=Task.Status.IN_PROGRESS, percent_complete=40)

    task.status = Task.Status.COMPLETED
    task.full_clean()
    task.save()

    task.refresh_from_db()
    assert (task.percent_complete, task.completed_on) == (100, NOON)


def test_a_completion_time_given_by_the_server_is_kept():
    done = dt.datetime(2026, 5, 1, 8, tzinfo=dt.UTC)

    task = factories.task(status=Task.Status.COMPLETED, completed_on=done)

    assert task.completed_on == done


def test_reopening_forgets_when_it_was_completed():
    task = factories.task(status=Task.Status.COMPLETED)

    task.status = Task.Status.IN_PROGRESS
    task.full_clean()

    assert task.completed_on is None


def test_percent_complete_is_0_to_100():
    task = factories.task()
    task.percent_complete = 101

    with pytest.raises(ValidationError) as raised:
        task.full_clean()

    assert "percent_complete" in raised.value.message_dict


def test_the_database_refuses_a_completed_task_not_at_100_percent():
    task = factories.task()

    with transaction.atomic(), pytest.raises(IntegrityError, match="task_completed_is_whole"):
        Task.objects.filter(pk=task.pk).update(status=Task.Status.COMPLETED)


def test_a_task_is_not_due_before_it_starts():
    task = Task(subject="Backwards", start=NOON, due=NOON - dt.timedelta(days=1))

    with pytest.raises(ValidationError) as raised:
        task.full_clean()

    assert raised.value.message_dict == {"due": ["The task is due before it starts."]}


def test_a_task_is_regarding_one_record_at_most():
    task = Task(subject="Both", regarding_account=factories.account(), regarding_lead=factories.lead())

    with pytest.raises(ValidationError) as raised:
        task.full_clean()

    assert "regarding_lead" in raised.value.message_dict
