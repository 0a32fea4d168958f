"""``sendMail`` with MIME (base64, ``text/plain``) or JSON."""

from __future__ import annotations

import re
import secrets

from tests.fakes.graph import metadata, mime
from tests.fakes.graph.calls import Call, decode_mime, is_mime
from tests.fakes.graph.http import GraphError, Reply

ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


def send_mail(call: Call) -> Reply:
    save = True
    if is_mime(call.request):
        raw = decode_mime(call)
    else:
        body = call.server.checked_body(
            call.request, lambda d: metadata.validate_action("sendMail", "user", d)
        )
        parameters = {k.lower(): v for k, v in body.items()}
        save = parameters.get("savetosentitems") is not False
        raw = mime.as_bytes(mime.from_json(parameters["message"], call.mailbox.address))
    call.server.submit(call.mailbox, _with_message_id(raw), save_copy=save)
    return Reply(202)


def check_recipients(raw: bytes) -> list[str]:
    """Every recipient, or Graph's refusal of the whole message (Exchange resolves all before submitting)."""
    addresses = mime.all_recipients(raw)
    if not addresses:
        raise GraphError(
            400,
            "ErrorInvalidRecipients",
            "At least one recipient isn't valid., A message can't be sent because it contains no recipients.",
        )
    for address in addresses:
        if not ADDRESS.fullmatch(address):
            raise GraphError(
                400,
                "ErrorInvalidRecipients",
                f"At least one recipient isn't valid., Recipient '{address}' isn't resolved. All recipients "
                "must be resolved before a message can be submitted.",
            )
    return addresses


def _with_message_id(raw: bytes) -> bytes:
    """Exchange keeps the Message-ID a client set, and makes one up where there is none."""
    if mime.headers(raw).get("Message-ID"):
        return raw
    return f"Message-ID: <{secrets.token_hex(16)}@contoso.onmicrosoft.com>\r\n".encode() + raw
