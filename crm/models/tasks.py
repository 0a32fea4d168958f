"""Tasks: to-dos with a status, progress and priority, regarding a customer record."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from crm.models.appointments import REGARDING_FIELDS, clean_regarding
from crm.models.base import TimestampedModel, at_most_one
from crm.models.people import CrmUser
from crm.models.records import Account, Contact, Lead


class TaskQuerySet(models.QuerySet["Task"]):
    def visible_to(self, crm_user: CrmUser) -> TaskQuerySet:
        return self.filter(owner=crm_user)


class Task(TimestampedModel):
    class Status(models.TextChoices):
        # The states Graph To Do, EWS and VTODO express between them (canceled: VTODO's CANCELLED).
        NOT_STARTED = "not_started", "Not started"
        IN_PROGRESS = "in_progress", "In progress"
        WAITING = "waiting", "Waiting on someone else"
        COMPLETED = "completed", "Completed"
        DEFERRED = "deferred", "Deferred"
        CANCELED = "canceled", "Canceled"

    class Priority(models.TextChoices):
        LOW = "low", "Low"
        NORMAL = "normal", "Normal"
        HIGH = "high", "High"

    owner = models.ForeignKey(
        CrmUser, on_delete=models.SET_NULL, null=True, blank=True, related_name="owned_tasks"
    )
    subject = models.CharField(max_length=400)
    body_text = models.TextField("body", blank=True)
    start = models.DateTimeField(null=True, blank=True)
    due = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NOT_STARTED)
    percent_complete = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(100)])
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.NORMAL)
    completed_on = models.DateTimeField(null=True, blank=True, help_text="Set when the task is completed.")

    regarding_account = models.ForeignKey(
        Account, on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks"
    )
    regarding_contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks"
    )
    regarding_lead = models.ForeignKey(
        Lead, on_delete=models.SET_NULL, null=True, blank=True, related_name="tasks"
    )

    objects = TaskQuerySet.as_manager()

    class Meta:
        ordering = ["due", "id"]
        constraints = [
            at_most_one(REGARDING_FIELDS, name="task_regarding_at_most_one"),
            models.CheckConstraint(condition=Q(percent_complete__lte=100), name="task_percent_at_most_100"),
            models.CheckConstraint(
                condition=~Q(status="completed") | Q(percent_complete=100, completed_on__isnull=False),
                name="task_completed_is_whole",
            ),
        ]
        indexes = [models.Index(fields=["owner", "status", "due"], name="task_owner_status_due")]

    def __str__(self) -> str:
        return self.subject

    @property
    def regarding(self) -> Account | Contact | Lead | None:
        return self.regarding_account or self.regarding_contact or self.regarding_lead

    def clean(self) -> None:
        # Completing, from either side, is one rule: 100 % and when. Reopening forgets when.
        if self.status == self.Status.COMPLETED:
            self.percent_complete = 100
            self.completed_on = self.completed_on or timezone.now()
        else:
            self.completed_on = None
        if self.start is not None and self.due is not None and self.due < self.start:
            raise ValidationError({"due": ["The task is due before it starts."]})
        clean_regarding(self)
