from django.contrib.admin.apps import AdminConfig


class ServersyncAdminConfig(AdminConfig):
    """django.contrib.admin with serversync's site: access follows the administrator role."""

    default_site = "web.admin_site.ServersyncAdminSite"
