"""System Settings > Email (/settings/email/, console/views/settings.py): every setting
on one form, the model's rules as field errors, administrators only."""

from __future__ import annotations

import re
from typing import Any

from django.forms.models import model_to_dict
from django.test import Client

from crm.choices import ActMethod, ProcessEmailUsing
from crm.models import OrganizationSettings
from tests.personas import World


def signed_in(world: World, name: str = "admin") -> Client:
    client = Client()
    client.force_login(world[name].login)
    return client


def posted(organization: OrganizationSettings, **changes: Any) -> dict[str, Any]:
    """The form as a browser posts it back: every value, ticked boxes only, plus ``changes``."""
    values = {**model_to_dict(organization), **changes}
    values.pop("id", None)
    data: dict[str, Any] = {}
    for name, value in values.items():
        if value is True:
            data[name] = "on"
        elif value is not False and value is not None:
            data[name] = value
    return data


def field_block(html: str, name: str) -> str:
    match = re.search(rf'<div class="field[^"]*" data-field="{name}">(.*?)\n</div>', html, re.S)
    assert match, f"no field {name} on the page"
    return match.group(1)


def test_every_email_setting_is_on_the_form_in_dynamics_sections(world: World):
    html = signed_in(world).get("/settings/email/").content.decode()
    editable = {
        field.name
        for field in OrganizationSettings._meta.concrete_fields
        if field.editable and field.name not in ("created_on", "modified_on")
    }
    assert set(re.findall(r'data-field="([a-z_]+)"', html)) == editable
    for section in ("Configure email processing", "Email correlation", "Alerts"):
        assert f"<legend>{section}</legend>" in html
    assert 'value="CRM"' in field_block(html, "tracking_token_prefix")
    assert 'value="5120"' in field_block(html, "max_attachment_size_kb")


def test_saving_changes_the_settings(world: World):
    organization = OrganizationSettings.load()
    data = posted(
        organization,
        default_act_method=ActMethod.SERVER_SIDE_SYNC,
        tracking_token_prefix="CASE",
        smart_matching_enabled=True,
        process_email_only_for_approved_queues=False,
        max_attachment_size_kb="32768",
    )
    client = signed_in(world)

    response = client.post("/settings/email/", data)

    assert response.status_code == 302
    assert response["Location"] == "/settings/email/"
    stored = OrganizationSettings.load()
    assert stored.default_act_method == ActMethod.SERVER_SIDE_SYNC
    assert stored.tracking_token_prefix == "CASE"
    assert stored.smart_matching_enabled is True
    assert stored.process_email_only_for_approved_queues is False
    assert stored.max_attachment_size_kb == 32768
    assert "Saved the email settings." in client.get("/settings/email/").content.decode()


def test_errors_show_on_their_fields_and_nothing_is_saved(world: World):
    organization = OrganizationSettings.load()
    before = model_to_dict(organization)
    data = posted(
        organization,
        process_email_using="pigeon post",
        tracking_token_prefix="CRM-" + "X" * 17,
        tracking_token_user_digits="11",
        max_attachment_size_kb="-1",
        crm_urls="https://crm.contoso.test/Org\nftp://files.contoso.test",
    )

    response = signed_in(world).post("/settings/email/", data)

    assert response.status_code == 200
    html = response.content.decode()
    assert "The settings were not saved" in html
    assert "Select a valid choice" in field_block(html, "process_email_using")
    assert "at most 20 characters" in field_block(html, "tracking_token_prefix")
    assert "less than or equal to 10" in field_block(html, "tracking_token_user_digits")
    assert "greater than or equal to 0" in field_block(html, "max_attachment_size_kb")
    assert "ftp://files.contoso.test" in field_block(html, "crm_urls")
    assert model_to_dict(OrganizationSettings.load()) == before


def test_a_user_cannot_change_the_settings(world: World):
    organization = OrganizationSettings.load()
    before = model_to_dict(organization)
    alice = signed_in(world, "alice")
    assert alice.get("/settings/email/").status_code == 403
    data = posted(organization, process_email_using=ProcessEmailUsing.EMAIL_ROUTER)
    assert alice.post("/settings/email/", data).status_code == 403
    assert model_to_dict(OrganizationSettings.load()) == before
