"""The web UI's pages. A new route must also get a rule in
tests/test_permission_matrix.py, or the suite fails."""

from django.urls import path

from console.views import (
    act_fields,
    alerts,
    dashboard,
    emails,
    health,
    mailbox_credentials,
    mailbox_detail,
    mailboxes,
    migration,
    oauth_connect,
    profiles,
    settings,
    sync_filters,
)

urlpatterns = [
    path("", dashboard.dashboard_page, name="dashboard"),
    path("mailboxes/", mailboxes.mailbox_list, name="mailboxes"),
    path("mailboxes/test-and-enable/", mailboxes.mailbox_test_and_enable, name="mailboxes-test-and-enable"),
    path("mailboxes/approval/", mailboxes.mailbox_approval, name="mailboxes-approval"),
    path("mailboxes/progress/", mailboxes.mailbox_progress, name="mailboxes-progress"),
    path(
        "mailboxes/<int:pk>/credentials/",
        mailbox_credentials.mailbox_credentials,
        name="mailboxes-credentials",
    ),
    path(
        "mailboxes/rollouts/<int:pk>/cancel/",
        mailboxes.mailbox_rollout_cancel,
        name="mailboxes-rollout-cancel",
    ),
    path("mailboxes/<int:pk>/", mailbox_detail.mailbox_page, name="mailbox-page"),
    path("mailboxes/<int:pk>/connect/", oauth_connect.mailbox_connect, name="mailbox-oauth-connect"),
    path("mailboxes/oauth/callback/", oauth_connect.mailbox_oauth_callback, name="mailbox-oauth-callback"),
    path(
        "mailboxes/<int:pk>/details.txt",
        mailbox_detail.mailbox_details_download,
        name="mailbox-page-details",
    ),
    path(
        "mailboxes/quarantined/<int:pk>/message.eml",
        mailbox_detail.quarantined_download,
        name="mailbox-page-quarantined-eml",
    ),
    path(
        "mailboxes/quarantined/<int:pk>/reprocess/",
        mailbox_detail.quarantined_reprocess,
        name="mailbox-page-quarantined-reprocess",
    ),
    path("mailboxes/<int:pk>/sync-filters/", sync_filters.sync_filters_page, name="mailbox-sync-filters"),
    path(
        "mailboxes/<int:pk>/sync-filters/add/", sync_filters.sync_filter_add, name="mailbox-sync-filters-add"
    ),
    path("sync-filters/<int:pk>/", sync_filters.sync_filter_edit, name="sync-filter-edit"),
    path("sync-filters/<int:pk>/delete/", sync_filters.sync_filter_delete, name="sync-filter-delete"),
    path("emails/", emails.email_list, name="emails"),
    path("profiles/", profiles.profile_list, name="profiles"),
    path("profiles/new/", profiles.profile_create, name="profiles-new"),
    path("profiles/<int:pk>/", profiles.profile_edit, name="profiles-edit"),
    path("profiles/<int:pk>/test-connection/", profiles.profile_test, name="profiles-test-connection"),
    path(
        "profiles/<int:pk>/test-and-enable-mailboxes/",
        profiles.profile_test_and_enable_mailboxes,
        name="profiles-test-and-enable-mailboxes",
    ),
    path("alerts/", alerts.alert_wall, name="alerts"),
    path("alerts/<int:pk>/acknowledge/", alerts.acknowledge, name="alert-page-acknowledge"),
    path("alerts/<int:pk>/resolve/", alerts.resolve, name="alert-page-resolve"),
    path("alerts/emails/<int:pk>/resend/", alerts.resend, name="outcome-unknown-resend"),
    path("alerts/emails/<int:pk>/mark-sent/", alerts.mark_sent, name="outcome-unknown-mark-sent"),
    path("migration/", migration.migration_upload, name="migration"),
    path("migration/<int:pk>/", migration.migration_detail, name="migration-detail"),
    path("migration/<int:pk>/profiles/", migration.migration_profiles, name="migration-profiles"),
    path("migration/<int:pk>/review/", migration.migration_review, name="migration-review"),
    path("migration/<int:pk>/start/", migration.migration_apply, name="migration-start"),
    path("migration/<int:pk>/abandon/", migration.migration_abandon, name="migration-abandon"),
    path("migration/<int:pk>/rollout/", migration.migration_rollout, name="migration-rollout"),
    path("settings/email/", settings.email_settings, name="email-settings"),
    path("settings/act-fields/", act_fields.act_field_settings, name="act-field-settings"),
    # For load balancers (public) and monitoring systems (token or administrator).
    path("health/", health.health, name="health"),
    path("health/status/", health.health_status, name="health-status"),
]
