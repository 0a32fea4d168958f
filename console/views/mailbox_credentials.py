"""A mailbox's own credentials, set from its row on the mailbox page (/mailboxes/):
the fix an owner makes when test & enable says the sign-in failed or is missing.
Write-only: the password is never rendered, only whether one is stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from console.views.access import HtmxHttpRequest, member_required
from console.views.mailboxes import table_rows
from mailboxes.models import Mailbox
from mailboxes.services import mailbox_update
from profiles.forms import SecretFieldsFormMixin
from web.roles import visible

# What a mailbox's owner may change (as OWNER_WRITABLE in the API).
CREDENTIAL_FIELDS = ("username", "password", "allow_credentials_for_email_processing")


class MailboxCredentialsForm(SecretFieldsFormMixin[Mailbox], forms.ModelForm[Mailbox]):
    """User name, password (blank keeps the stored one) and whether email processing may use them."""

    class Meta:
        model = Mailbox
        fields = CREDENTIAL_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].required = True
        # Setting credentials here never clears them: an empty password keeps the stored one.
        self.fields.pop("clear_password", None)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not cleaned.get("password"):
            self.add_error("password", "Enter the password: none is stored for this mailbox.")
        return cleaned


@require_POST
@member_required
def mailbox_credentials(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Save the credentials; htmx gets the mailbox's row back, with the form's errors if any."""
    mailbox = get_object_or_404(visible(Mailbox.objects.all(), request.user), pk=pk)
    form = MailboxCredentialsForm(request.POST, instance=mailbox)
    saved = form.is_valid() and _save(form, mailbox)
    if not request.htmx:
        return _back(request, mailbox, form, saved=saved)
    # Read again: the form's validation set its values on the instance, saved or not.
    row = get_object_or_404(table_rows(Mailbox.objects.filter(pk=pk)))
    context = {"mailbox": row, "credentials_form": form, "credentials_saved": saved}
    return render(request, "console/mailboxes/_row.html", context)


def _save(form: MailboxCredentialsForm, mailbox: Mailbox) -> bool:
    try:
        mailbox_update(mailbox=mailbox, data={name: form.cleaned_data[name] for name in CREDENTIAL_FIELDS})
    except ValidationError as error:
        form.add_error(None, error)
        return False
    return True


def _back(
    request: HtmxHttpRequest, mailbox: Mailbox, form: MailboxCredentialsForm, *, saved: bool
) -> HttpResponse:
    if saved:
        messages.success(
            request, f"Credentials of {mailbox.email_address} saved. Test & enable it to use them."
        )
        query = urlencode({"q": mailbox.email_address})
    else:
        errors = " ".join(str(message) for messages_ in form.errors.values() for message in messages_)
        messages.error(request, f"Credentials of {mailbox.email_address} not saved: {errors}")
        query = urlencode({"q": mailbox.email_address, "credentials": mailbox.pk})
    return redirect(f"{reverse('mailboxes')}?{query}#mailbox-{mailbox.pk}")
