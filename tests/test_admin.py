from datetime import datetime

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.authtoken.models import Token, TokenProxy

from crm.choices import IncomingMethod
from crm.models import ActivityParty, EmailActivity, OrganizationSettings
from mailboxes.models import ApprovalStatus, Mailbox, RouterMigration, RouterMigrationFile, SyncStatus
from profiles.fields import Secret
from profiles.models import CredentialsSource, EmailServerProfile
from sync.models import ActCursor, ActFieldSetting, ActItemProblem, ActLink
from tests import factories
from tests.mailboxes.router_import.routers import pending_migration

pytestmark = pytest.mark.django_db

SECRET = "S3cret-Pa55-xyz"
REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)


@pytest.fixture
def stocked(world):
    """The personas' world plus one row of every registered model, and secrets on a profile and a mailbox."""
    email = world["alice"].email
    factories.party(email=email, address="alice@example.test", user=world["alice"].crm_user)
    factories.attachment(email=email)
    factories.queue_item(queue=world.queue, email=email)
    factories.folder_cursor(mailbox=world["alice"].mailbox)
    factories.schedule(mailbox=world["alice"].mailbox)
    factories.outgoing_claim(email=world["bob"].email, mailbox=world["bob"].mailbox)
    meeting = factories.appointment(owner=world["alice"].crm_user, categories=["Customers"])
    factories.appointment_party(appointment=meeting)
    factories.task(owner=world["alice"].crm_user)
    link = ActLink.objects.create(
        mailbox=world["alice"].mailbox,
        entity="appointment",
        appointment=meeting,
        uid="m-1@test",
        item_id="/m-1.ics",
    )
    ActCursor.objects.create(mailbox=world["alice"].mailbox, entity="appointment", token="t")
    ActItemProblem.objects.create(
        mailbox=world["alice"].mailbox, entity="appointment", link=link, kind="conflict", message="Location."
    )
    ActFieldSetting.objects.create(entity="appointment", field="location", direction="to_server")
    Token.objects.create(user=world["admin"].login)
    pending_migration()  # its uploaded files held, encrypted
    profile = world.profile
    profile.credentials_source = CredentialsSource.PROFILE
    profile.username = "svc-crm"
    profile.password = SECRET
    profile.outgoing_password = "out-" + SECRET
    profile.oauth_client_secret = "oauth-" + SECRET
    profile.save()
    for mailbox in Mailbox.objects.all():  # whichever the pages show
        mailbox.password = SECRET
        mailbox.save()
    return world


@pytest.fixture
def as_admin(client, world):
    client.force_login(world["admin"].login)
    return client


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def object_id(model, obj) -> int:
    # DRF's token admin addresses a token by its user's id.
    return obj.user_id if model is TokenProxy else obj.pk


def stored_tokens() -> list[str]:
    values = [
        *EmailServerProfile.objects.values_list("password", "outgoing_password", "oauth_client_secret"),
        *Mailbox.objects.values_list("password"),
        *RouterMigrationFile.objects.values_list("content"),
    ]
    return [secret.token for row in values for secret in row if secret]


def post_data(instance, **changes) -> dict[str, str]:
    """What the admin's change form posts for ``instance`` as it is, with ``changes``."""
    data = {}
    for name, value in {**model_to_dict(instance), **changes}.items():
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, datetime):
            data[f"{name}_0"], data[f"{name}_1"] = value.date().isoformat(), value.time().isoformat()
        elif value is None or isinstance(value, Secret):
            data[name] = ""  # secrets are write-only: the form starts blank
        else:
            data[name] = str(value)
    return data


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_every_admin_page_answers_and_shows_no_secret(stocked, as_admin, model):
    obj = model._default_manager.first()
    assert obj is not None, f"add a {model._meta.label} row to the `stocked` fixture"
    singleton = model is OrganizationSettings
    # The engine's records are read-only in the admin: no add page (its one setting, the
    # field directions, excepted); nor for Email Router migrations, which only the wizard,
    # the API and the command make from uploaded files.
    addable = (model._meta.app_label != "sync" or model is ActFieldSetting) and model is not RouterMigration

    changelist = as_admin.get(url(model, "changelist"))
    add = as_admin.get(url(model, "add"))
    change = as_admin.get(url(model, "change", object_id(model, obj)))

    assert changelist.status_code == (302 if singleton else 200)
    assert add.status_code == (200 if addable and not singleton else 403)  # the one row exists
    assert change.status_code == 200
    pages = [changelist.content.decode(), add.content.decode(), change.content.decode()]
    for stored in [SECRET, *stored_tokens()]:
        assert not any(stored in page for page in pages)


def test_organization_settings_list_opens_the_single_row(world, as_admin):
    response = as_admin.get(url(OrganizationSettings, "changelist"))

    assert response.url == url(OrganizationSettings, "change", OrganizationSettings.load().pk)


def test_organization_settings_shows_every_setting_the_settings_page_edits(world, as_admin):
    from console.views.settings import OrganizationSettingsForm

    page = as_admin.get(url(OrganizationSettings, "change", OrganizationSettings.load().pk)).content.decode()

    for name in OrganizationSettingsForm.Meta.fields:
        assert f'name="{name}"' in page, name


def test_organization_settings_cannot_be_deleted(world, as_admin):
    response = as_admin.get(url(OrganizationSettings, "delete", OrganizationSettings.load().pk))

    assert response.status_code == 403


def test_organization_settings_can_be_added_when_there_is_none(as_admin, world):
    OrganizationSettings.objects.all().delete()

    assert as_admin.get(url(OrganizationSettings, "add")).status_code == 200


def test_a_blank_password_keeps_the_stored_one(stocked, as_admin):
    profile = stocked.profile

    response = as_admin.post(
        url(EmailServerProfile, "change", profile.pk), post_data(profile, description="New")
    )

    assert response.status_code == 302
    stored = EmailServerProfile.objects.get(pk=profile.pk)
    assert stored.description == "New"
    assert stored.password == SECRET
    assert stored.oauth_client_secret == "oauth-" + SECRET


def test_a_typed_password_replaces_and_clear_removes(stocked, as_admin):
    profile = stocked.profile
    data = post_data(profile, password="N3w-Pa55", clear_outgoing_password=True)

    as_admin.post(url(EmailServerProfile, "change", profile.pk), data)

    stored = EmailServerProfile.objects.get(pk=profile.pk)
    assert stored.password == "N3w-Pa55"
    assert not stored.outgoing_password


def test_the_profile_form_applies_the_model_rules_and_never_echoes_a_password(stocked, as_admin):
    profile = stocked.profile
    # An IMAP profile signs in as an app with Microsoft's IMAP only (Exchange Online).
    data = post_data(
        profile,
        credentials_source=CredentialsSource.OAUTH_CLIENT_CREDENTIALS,
        oauth_provider="google",
        password="Typed-Pa55",
    )

    response = as_admin.post(url(EmailServerProfile, "change", profile.pk), data)

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["oauth_provider"] == [
        "Client credentials sign in to Microsoft's IMAP, POP and SMTP (an app registered in Entra ID); "
        "other providers' mailboxes connect their accounts."
    ]
    assert "Typed-Pa55" not in response.content.decode()
    assert EmailServerProfile.objects.get(pk=profile.pk).credentials_source == CredentialsSource.PROFILE


def test_the_add_form_fills_blank_ports(world, as_admin):
    data = post_data(
        EmailServerProfile(
            name="New IMAP",
            server_type="imap_smtp",
            incoming_server_location="imap.example.test",
            outgoing_server_location="smtp.example.test",
        )
    )

    response = as_admin.post(url(EmailServerProfile, "add"), data)

    assert response.status_code == 302
    created = EmailServerProfile.objects.get(name="New IMAP")
    assert (created.incoming_port, created.outgoing_port) == (993, 465)


def test_a_new_address_in_the_admin_starts_a_new_generation(stocked, as_admin):
    mailbox = stocked["alice"].mailbox
    Mailbox.objects.filter(pk=mailbox.pk).update(
        approval_status=ApprovalStatus.APPROVED, incoming_status=SyncStatus.SUCCESS, incoming_enabled=True
    )
    mailbox.refresh_from_db()

    response = as_admin.post(
        url(Mailbox, "change", mailbox.pk), post_data(mailbox, email_address="alice.new@example.test")
    )

    assert response.status_code == 302
    stored = Mailbox.objects.get(pk=mailbox.pk)
    assert stored.configuration_generation == 2
    assert (stored.approval_status, stored.incoming_status) == (ApprovalStatus.EMPTY, SyncStatus.NOT_RUN)
    assert stored.incoming_enabled is False
    assert stored.password == SECRET


def test_the_mailbox_add_form_offers_the_organizations_defaults(world, as_admin):
    organization = OrganizationSettings.load()
    organization.default_incoming_method = IncomingMethod.EMAIL_ROUTER
    organization.save()
    EmailServerProfile.objects.filter(pk=world.profile.pk).update(is_default=True)

    form = as_admin.get(url(Mailbox, "add")).context["adminform"].form

    assert form.initial["incoming_method"] == IncomingMethod.EMAIL_ROUTER
    assert form.initial["profile"] == world.profile.pk


def test_adding_a_mailbox_in_the_admin_creates_it(world, as_admin):
    owner = factories.crm_user("Nina New")
    data = post_data(
        Mailbox(name="Nina", email_address="nina@example.test", user=owner, profile=world.profile)
    )

    response = as_admin.post(url(Mailbox, "add"), data)

    created = Mailbox.objects.get(user=owner)
    assert response.url == url(Mailbox, "changelist")
    assert (created.email_address, created.configuration_generation) == ("nina@example.test", 1)


def test_the_mailbox_form_refuses_delete_after_processing_for_a_user(world, as_admin):
    mailbox = world["alice"].mailbox

    response = as_admin.post(
        url(Mailbox, "change", mailbox.pk), post_data(mailbox, delete_email_after_processing=True)
    )

    assert "delete_email_after_processing" in response.context["adminform"].form.errors


def test_approving_an_address_records_who_and_when(world, as_admin):
    mailbox = world["bob"].mailbox

    as_admin.post(url(Mailbox, "changelist"), {"action": "approve_email", "_selected_action": [mailbox.pk]})

    stored = Mailbox.objects.get(pk=mailbox.pk)
    assert stored.approval_status == ApprovalStatus.APPROVED
    assert stored.approval_changed_by == world["admin"].login
    assert stored.approval_changed_on is not None


def test_approving_needs_the_approve_email_permission(world, as_admin):
    Group.objects.get(name=settings.ADMINISTRATORS_GROUP).permissions.remove(
        Permission.objects.get(codename="approve_email")
    )
    mailbox = world["bob"].mailbox

    offered = as_admin.get(url(Mailbox, "changelist")).context["action_form"].fields["action"].choices
    as_admin.post(url(Mailbox, "changelist"), {"action": "approve_email", "_selected_action": [mailbox.pk]})

    assert "approve_email" not in [name for name, _ in offered]
    assert Mailbox.objects.get(pk=mailbox.pk).approval_status == ApprovalStatus.EMPTY


@pytest.mark.parametrize("persona", ["alice", "oscar"])
def test_non_administrators_are_sent_to_the_login_page(world, client, persona):
    login = world[persona].login
    login.is_staff = True  # the staff flag alone does not open the admin
    login.save()
    client.force_login(login)

    for page in [reverse("admin:index"), url(Mailbox, "changelist"), url(EmailServerProfile, "add")]:
        response = client.get(page)
        assert response.status_code == 302
        assert response.url.startswith(reverse("admin:login"))


def test_an_administrator_signs_in_without_the_staff_flag(world, client):
    assert world["admin"].login.is_staff is False

    response = client.post(reverse("admin:login"), {"username": "admin", "password": "pw-admin"})

    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_a_user_cannot_sign_in_to_the_admin(world, client):
    response = client.post(reverse("admin:login"), {"username": "alice", "password": "pw-alice"})

    assert response.status_code == 200
    assert "administrator account" in response.content.decode()


def changelist_queries(client, model) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url(model, "changelist")).status_code == 200
    return len(queries)


def add_mailboxes(world, count: int) -> None:
    for number in range(count):
        if number % 2:
            owner = {"user": factories.crm_user(f"Person{Mailbox.objects.count()} Example")}
        else:
            owner = {"queue": factories.queue()}
        factories.mailbox(profile=world.profile, **owner)


def add_emails(world, count: int) -> None:
    for _ in range(count):
        email = factories.email(owner=world["bob"].crm_user, regarding_account=world["bob"].account)
        factories.party(email=email, role=ActivityParty.Role.FROM)
        factories.party(email=email, role=ActivityParty.Role.TO)


@pytest.mark.parametrize(("model", "add_rows"), [(Mailbox, add_mailboxes), (EmailActivity, add_emails)])
def test_changelist_queries_do_not_grow_with_rows(world, as_admin, model, add_rows):
    add_rows(world, 3)
    few = changelist_queries(as_admin, model)
    add_rows(world, 27)

    assert changelist_queries(as_admin, model) == few
