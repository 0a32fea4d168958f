from crm.models.activities import ActivityParty, EmailActivity, EmailAttachment, QueueItem
from crm.models.organization import EMAIL_SETTINGS_SECTIONS, OrganizationSettings
from crm.models.people import CrmUser, Queue
from crm.models.records import Account, Contact, Lead

__all__ = [
    "EMAIL_SETTINGS_SECTIONS",
    "Account",
    "ActivityParty",
    "Contact",
    "CrmUser",
    "EmailActivity",
    "EmailAttachment",
    "Lead",
    "OrganizationSettings",
    "Queue",
    "QueueItem",
]
