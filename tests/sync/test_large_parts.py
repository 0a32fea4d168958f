"""Large attachments are kept out of the email parser (memory), and what the
engine reads of a message is the same as when the parser sees all of it."""

from __future__ import annotations

import os
import subprocess
import sys
from email.message import EmailMessage

import pytest

from sync import large_parts, parsing
from tests import messages


def nested(attachment: bytes) -> bytes:
    """mixed(alternative(text, related(html, image)), pdf, eml) with CRLF, as Outlook writes."""
    message = EmailMessage()
    message["From"] = "Jürgen <juergen@example.de>"
    message["To"] = "alice@example.test"
    message["Subject"] = "Angebot mit Anhang"
    message["Message-ID"] = "<nested@example.de>"
    message.set_content("Grüße\n")
    message.add_alternative("<p>Grüße <img src='cid:logo'></p>", subtype="html")
    message.get_payload()[1].add_related(b"\x89PNG" * 100_000, "image", "png", cid="<logo>")
    message.add_attachment(attachment, maintype="application", subtype="pdf", filename="Angebot.pdf")
    message.add_attachment(messages.simple(subject="inner"), maintype="application", subtype="octet-stream")
    return message.as_bytes().replace(b"\n", b"\r\n")


CASES = {
    "nested": nested(os.urandom(700_000)),
    "padding one": nested(os.urandom(700_001)),
    "padding two": nested(os.urandom(700_002)),
    "lf only": nested(os.urandom(600_000)).replace(b"\r\n", b"\n"),
    "small": messages.simple(attachments=[("a.bin", b"\x00" * 10)]),
    "broken boundary": messages.BROKEN_BOUNDARY,
    "no closing delimiter": nested(os.urandom(400_000)).rsplit(b"--=", 1)[0],
}


def facts(raw: bytes) -> tuple:
    parsed = parsing.parse(raw)
    return (
        parsed.subject,
        parsed.sender,
        parsed.body_text,
        parsed.body_html,
        [(a.filename, a.content_type, a.content_id, a.size, a.data) for a in parsed.attachments],
    )


@pytest.mark.parametrize("name", CASES)
def test_holding_large_bodies_changes_nothing_the_engine_reads(name, monkeypatch):
    raw = CASES[name]
    monkeypatch.setattr(large_parts, "LARGE_BODY_BYTES", 10**12)
    whole = facts(raw)
    monkeypatch.setattr(large_parts, "LARGE_BODY_BYTES", 1)
    assert facts(raw) == whole
    for _, _, _, size, data in whole[4]:
        assert size == len(data)


def test_large_base64_attachments_are_held_and_text_stays():
    raw = nested(os.urandom(700_000))
    skeleton, held = large_parts.without_large_bodies(raw, threshold=300_000)
    # The PDF (about 950,000 base64 characters) and the inline image (533,000) are held.
    assert len(held) == 2
    assert len(skeleton) < len(raw) - 1_400_000
    assert "Grüße" in parsing.parse(raw).body_text


def test_a_42_mb_message_is_parsed_in_about_twice_its_size(tmp_path):
    """Peak memory of parsing it and decoding its attachment, in a fresh process
    that has only read the message (the stdlib parser alone needed about 8.8
    times the message). ru_maxrss is the kernel's high-water mark."""
    path = tmp_path / "big.eml"
    path.write_bytes(nested(os.urandom(31 * 1024 * 1024)))
    script = (
        "import os, resource, sys\n"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings_test')\n"
        "import django; django.setup()\n"
        "from sync import parsing\n"
        f"raw = open({str(path)!r}, 'rb').read()\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "parsed = parsing.parse(raw)\n"
        "data = parsed.attachments[0].data\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(len(data), (after - before + len(raw)) / len(raw))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    size, ratio = result.stdout.split()
    assert int(size) == 31 * 1024 * 1024
    assert float(ratio) <= 3.0, result.stdout
