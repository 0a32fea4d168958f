"""The web UI's pages. A new route must also get a rule in
tests/test_permission_matrix.py, or the suite fails."""

from django.urls import path

from sync.views import health, mailboxes, pages

urlpatterns = [
    path("", pages.dashboard, name="dashboard"),
    path("mailboxes/", mailboxes.mailbox_list, name="mailboxes"),
    path("mailboxes/test-and-enable/", mailboxes.mailbox_test_and_enable, name="mailboxes-test-and-enable"),
    path("mailboxes/approval/", mailboxes.mailbox_approval, name="mailboxes-approval"),
    path("mailboxes/progress/", mailboxes.mailbox_progress, name="mailboxes-progress"),
    path("profiles/", pages.profile_list, name="profiles"),
    path("alerts/", pages.alert_list, name="alerts"),
    path("migration/", pages.migration, name="migration"),
    path("settings/email/", pages.email_settings, name="email-settings"),
    # For load balancers (public) and monitoring systems (token or administrator).
    path("health/", health.health, name="health"),
    path("health/status/", health.health_status, name="health-status"),
]
