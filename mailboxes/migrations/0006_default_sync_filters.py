"""The organization's default sync filters, and a copy of them on every existing user's mailbox
(new mailboxes get theirs from mailboxes.services.mailbox_create)."""

from typing import Any

from django.db import migrations

# Frozen here as first installed: a migration must not follow later edits of the code's defaults.
DEFAULTS: list[dict[str, Any]] = [
    {
        "entity": "appointment",
        "name": "My appointments",
        "criteria": {"owner": "mine", "states": ["open"], "window": {"field": "end", "days_ago": 14}},
    },
    {"entity": "contact", "name": "My contacts", "criteria": {"owner": "mine", "states": ["active"]}},
    {
        "entity": "task",
        "name": "My tasks",
        "criteria": {"owner": "mine", "states": ["not_started", "in_progress", "waiting", "deferred"]},
    },
]


def create_defaults(apps: Any, schema_editor: Any) -> None:
    template_model = apps.get_model("mailboxes", "SyncFilterTemplate")
    filter_model = apps.get_model("mailboxes", "SyncFilter")
    mailbox_model = apps.get_model("mailboxes", "Mailbox")
    templates = list(template_model.objects.all()) or [
        template_model.objects.create(**values) for values in DEFAULTS
    ]
    for mailbox in mailbox_model.objects.filter(user__isnull=False).exclude(sync_filters__isnull=False):
        filter_model.objects.bulk_create(
            filter_model(mailbox=mailbox, entity=t.entity, name=t.name, criteria=t.criteria) for t in templates
        )


class Migration(migrations.Migration):
    dependencies = [("mailboxes", "0005_sync_filters")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
