from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CrmConfig(AppConfig):
    name = "crm"
    verbose_name = "CRM"

    def ready(self) -> None:
        from crm.signals import ensure_administrators_group

        post_migrate.connect(ensure_administrators_group, dispatch_uid="crm.ensure_administrators_group")
