"""Every REST route under /api/v1/. A new route must also get a rule in
tests/test_permission_matrix.py, or the suite fails."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from crm import api as crm_api
from mailboxes import router_api, sync_filter_api
from sync import api as sync_api
from sync import checks_api

router = DefaultRouter()
router.include_format_suffixes = False
# The engine's subclasses add test & enable and approval actions to these routes.
router.register("profiles", checks_api.EmailServerProfileViewSet, basename="profile")
router.register("mailboxes", checks_api.MailboxViewSet, basename="mailbox")
router.register("users", crm_api.CrmUserViewSet, basename="crmuser")
router.register("queues", crm_api.QueueViewSet, basename="queue")
router.register("accounts", crm_api.AccountViewSet, basename="account")
router.register("contacts", crm_api.ContactViewSet, basename="contact")
router.register("leads", crm_api.LeadViewSet, basename="lead")
router.register("emails", crm_api.EmailViewSet, basename="email")
router.register("appointments", crm_api.AppointmentViewSet, basename="appointment")
router.register("tasks", crm_api.TaskViewSet, basename="task")
router.register("alerts", sync_api.AlertViewSet, basename="alert")
router.register("receipts", sync_api.ReceiptViewSet, basename="receipt")
router.register("quarantined-messages", sync_api.QuarantinedMessageViewSet, basename="quarantined-message")
router.register("sync-runs", sync_api.SyncRunViewSet, basename="sync-run")
router.register("rollouts", sync_api.RolloutViewSet, basename="rollout")
router.register("act-problems", sync_api.ActItemProblemViewSet, basename="act-problem")
router.register("act-links", sync_api.ActLinkViewSet, basename="act-link")
router.register("act-field-settings", sync_api.ActFieldDirectionViewSet, basename="act-field-setting")
router.register("router-migrations", router_api.RouterMigrationViewSet, basename="router-migration")
router.register("sync-filters", sync_filter_api.SyncFilterViewSet, basename="sync-filter")
router.register(
    "sync-filter-defaults", sync_filter_api.SyncFilterTemplateViewSet, basename="sync-filter-default"
)

urlpatterns = [
    path(
        "organization-settings/",
        crm_api.OrganizationSettingsView.as_view(),
        name="organization-settings",
    ),
    *router.urls,
]
