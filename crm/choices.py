"""Choice lists named as a Dynamics 365 administrator knows them.

Sync methods live here, at the bottom of the stack, because the organization's
defaults for new mailboxes use them as well as the mailboxes themselves.
"""

from django.db import models


class ProcessEmailUsing(models.TextChoices):
    SERVER_SIDE_SYNC = "server_side_sync", "Server-Side Synchronization"
    EMAIL_ROUTER = "email_router", "Email Router"
    NONE = "none", "None"


class IncomingMethod(models.TextChoices):
    NONE = "none", "None"
    SERVER_SIDE_SYNC = "server_side_sync", "Server-Side Synchronization"
    EMAIL_ROUTER = "email_router", "Email Router"
    FORWARD_MAILBOX = "forward_mailbox", "Forward Mailbox"


class OutgoingMethod(models.TextChoices):
    NONE = "none", "None"
    SERVER_SIDE_SYNC = "server_side_sync", "Server-Side Synchronization"
    EMAIL_ROUTER = "email_router", "Email Router"


class ActMethod(models.TextChoices):
    NONE = "none", "None"
    SERVER_SIDE_SYNC = "server_side_sync", "Server-Side Synchronization"


class SyncStatus(models.TextChoices):
    """A direction's test or sync result (mailboxes), and a profile's last test."""

    NOT_RUN = "not_run", "Not Run"
    SUCCESS = "success", "Success"
    FAILURE = "failure", "Failure"


class TrackIncomingEmail(models.TextChoices):
    ALL = "all", "All email messages"
    RESPONSES_TO_CRM = "responses_to_crm", "Email messages in response to CRM email"
    FROM_CRM_RECORDS = "from_crm_records", "Email messages from CRM leads, contacts and accounts"
    FROM_EMAIL_ENABLED = "from_email_enabled", "Email messages from CRM records that are email enabled"
    NONE = "none", "No email messages"
