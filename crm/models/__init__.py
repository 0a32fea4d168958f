from crm.models.activities import ActivityParty, EmailActivity, EmailAttachment, QueueItem
from crm.models.appointments import Appointment, AppointmentParty, Occurrence
from crm.models.organization import EMAIL_SETTINGS_SECTIONS, OrganizationSettings
from crm.models.people import CrmUser, Queue
from crm.models.records import Account, Contact, Lead
from crm.models.tasks import Task

__all__ = [
    "EMAIL_SETTINGS_SECTIONS",
    "Account",
    "ActivityParty",
    "Appointment",
    "AppointmentParty",
    "Contact",
    "CrmUser",
    "EmailActivity",
    "EmailAttachment",
    "Lead",
    "Occurrence",
    "OrganizationSettings",
    "Queue",
    "QueueItem",
    "Task",
]
