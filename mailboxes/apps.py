from django.apps import AppConfig
from django.db.models.signals import post_migrate


class MailboxesConfig(AppConfig):
    name = "mailboxes"
    verbose_name = "Mailboxes"

    def ready(self) -> None:
        from mailboxes.sync_filters import ensure_default_templates

        post_migrate.connect(
            ensure_default_templates, sender=self, dispatch_uid="mailboxes.default_sync_filters"
        )
