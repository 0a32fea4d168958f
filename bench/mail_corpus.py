# ruff: noqa: RUF001 - names and subjects are non-ASCII on purpose (dashes, dotless i, ...)
"""Deterministic, realistic mail for the email engine benchmark (bench/email_engine.py).

Everything comes from one seeded ``random.Random``: the same seed gives the same
bytes on every machine (the run prints a digest to show it). No Django here.

- ``IncomingCorpus``: customers writing to one CRM user — text + HTML
  alternatives, non-ASCII names and subjects, threads with In-Reply-To /
  References and quoted history, Outlook's Thread-Index on some, a few Cc
  parties who are CRM contacts or accounts, the transport headers a real
  message carries, and an attachment of 0.2 to 1 MB on one message in ten.
- ``outgoing_emails``: CRM email of 5 to 50 KB to send (text + HTML, long lines,
  lines starting with ".", some with an attachment), and ``outgoing_bytes``,
  the same email as a correct SMTP client puts it on the wire (CRLF).
- ``big_message``: one message of a given size, mostly a base64 attachment.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import random
import statistics
import unicodedata
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.utils import format_datetime, formataddr

# A fixed clock: dates in the corpus do not depend on when it is generated.
BASE_DATE = datetime(2026, 9, 1, 7, 30, tzinfo=UTC)
CUSTOMERS = 400
COMPANIES = 60
CONTACT_SHARE = 0.4  # of the customers, known to the CRM as contacts
THREAD_START = 0.45  # chance that a message starts a new conversation
QUOTE_LIMIT = 12_000  # characters of history a reply quotes
ATTACHMENT_SHARE = 0.10
ATTACHMENT_BYTES = (200_000, 1_000_000)

FIRST_NAMES = [
    "Jürgen", "Zoë", "José", "Łukasz", "Søren", "Françoise", "Ævar", "Björn", "Małgorzata", "Chloé",
    "Dvořák", "Iñaki", "Ingrid", "Mehmet", "Anaïs", "Ólafur", "Žofie", "Grégoire", "Mária", "Thomas",
    "Sarah", "Ahmed", "Priya", "Wei", "Kenji", "Olga", "Nikolaj", "Renée", "Håkon", "Ümit",
]  # fmt: skip
LAST_NAMES = [
    "Müller", "Ångström", "Núñez", "Żółć", "Kierkegård", "Dupré", "Schröder", "Øster", "Lévêque",
    "Nowak", "Gonçalves", "Weiß", "Yılmaz", "Kovač", "Štěpánek", "Smith", "Fernández", "Ó Briain",
    "Jansen", "Bäcker", "Carré", "Sørensen", "Novák", "Papadopoulos", "Tanaka", "Ivanova", "Chen",
]  # fmt: skip
# A few names in other scripts, as real customer bases have them.
OTHER_SCRIPT_NAMES = ["山田 太郎", "Иван Петров", "Νίκος Παπαδόπουλος", "김민준", "محمد علي"]
COMPANY_WORDS = [
    "Bau", "Logistik", "Technik", "Handel", "Systems", "Industrie", "Consulting", "Medien", "Energie",
    "Maschinen", "Software", "Service", "Partner", "Solutions", "Werke", "Versand",
]  # fmt: skip
TOPICS = [
    "Angebot für die Wartung – Rückfrage", "Réunion de suivi du projet", "Lieferung verzögert sich",
    "Rechnung Nr. {n} – Zahlungserinnerung", "Ihre Anfrage zur Schnittstelle", "Änderung der Bestellung",
    "Kündigung zum Quartalsende?", "Preisliste 2027 für Großkunden", "Support-Fall: Anmeldung schlägt fehl",
    "Termin für die Schulung in München", "Offre de prix – révision n° {n}", "Reklamation: beschädigte Ware",
    "Заказ № {n}: подтверждение", "Presupuesto de instalación en Málaga", "Vertragsverlängerung ✔",
    "Frage zur Datenschutz-Vereinbarung (DSGVO)", "Quote request – 40 units", "お見積りのお願い",
]  # fmt: skip
_WORD_TEXT = (
    "die Lieferung der Bestellung wurde gestern bestätigt und wir freuen uns über Ihre schnelle Antwort "
    "bitte prüfen Sie die beigefügten Unterlagen bis Ende der Woche damit wir den Termin einhalten können "
    "nous avons bien reçu votre demande et revenons vers vous dès que possible avec une proposition "
    "the warehouse confirmed the delivery date and the invoice will follow with the usual payment terms "
    "für Rückfragen stehe ich Ihnen gern zur Verfügung außerdem möchten wir das Gespräch über die Preise "
    "im nächsten Monat fortsetzen können Sie uns dafür zwei oder drei mögliche Termine nennen "
    "Straße Größe Maß schön €uro café naïve coöperation façade déjà vu garçon señor Ärger Übergabe"
)
WORDS = _WORD_TEXT.split()
MAILERS = [
    "Microsoft Outlook 16.0",
    "Mozilla Thunderbird 128.3.1",
    "Apple Mail (2.3774.600.62)",
    "Roundcube Webmail/1.6.9",
    "Gmail",
]
OUTLOOK = MAILERS[0]
HTML_HEAD = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">'
    '<style type="text/css">body{font-family:Calibri,Arial,sans-serif;font-size:11pt;color:#1f1f1f}'
    "p.MsoNormal{margin:0cm;margin-bottom:.0001pt}blockquote{border-left:2px solid #c0c0c0;"
    "margin-left:4pt;padding-left:6pt;color:#555}table.sig td{font-size:9pt;color:#666}</style>"
    '</head><body lang="DE" link="#0563C1" vlink="#954F72">'
)


@dataclass(frozen=True)
class Party:
    name: str
    address: str


@dataclass(frozen=True)
class CrmRecords:
    """The corpus's parties the CRM knows: contacts (people) and accounts (companies)."""

    contacts: list[Party]
    accounts: list[Party]


@dataclass
class CorpusStats:
    sizes: list[int] = field(default_factory=list)
    with_attachment: int = 0
    replies: int = 0
    with_crm_cc: int = 0
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)

    def add(self, raw: bytes) -> None:
        self.sizes.append(len(raw))
        self.digest.update(raw)

    def summary(self) -> str:
        total = sum(self.sizes)
        return (
            f"{len(self.sizes):,} messages, {total / 2**20:,.0f} MiB, median "
            f"{statistics.median(self.sizes) / 1024:.1f} KiB, {self.with_attachment} with an attachment, "
            f"{self.replies} replies in threads, {self.with_crm_cc} with a Cc the CRM knows; "
            f"sha256 {self.digest.hexdigest()[:16]}"
        )


@dataclass
class _Thread:
    subject: str
    customer: Party
    message_ids: list[str] = field(default_factory=list)
    last_text: str = ""
    last_date: datetime = BASE_DATE
    thread_index: bytes = b""  # Outlook's conversation header, when an Outlook user started it


def _ascii(text: str) -> str:
    """An address-safe spelling of a name: 'Jürgen' -> 'jurgen'."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(c for c in decomposed if c.isascii() and (c.isalnum() or c in "-."))
    return kept.lower() or "x"


class IncomingCorpus:
    """``messages`` customer messages to ``owner``; iterate ``messages()`` once."""

    def __init__(self, *, messages: int, owner: str, seed: int) -> None:
        self.count = messages
        self.owner = owner
        self.rng = random.Random(seed)  # noqa: S311 - made-up mail, not secrets
        self.companies = [self._company(n) for n in range(COMPANIES)]
        self.customers = [self._customer(n) for n in range(CUSTOMERS)]
        known = self.rng.sample(self.customers, int(CUSTOMERS * CONTACT_SHARE))
        self.crm = CrmRecords(contacts=known, accounts=[info for _, info in self.companies])
        self._known = {p.address for p in known} | {p.address for p in self.crm.accounts}
        self.stats = CorpusStats()

    def _company(self, number: int) -> tuple[str, Party]:
        words = self.rng.sample(COMPANY_WORDS, 2)
        domain = f"{_ascii(words[0])}-{_ascii(words[1])}{number}.example"
        return domain, Party(f"{words[0]} {words[1]} GmbH", f"info@{domain}")

    def _customer(self, number: int) -> Party:
        if number % 23 == 0:
            name = OTHER_SCRIPT_NAMES[number % len(OTHER_SCRIPT_NAMES)]
            local = f"customer{number}"
        else:
            first, last = self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)
            name, local = f"{first} {last}", f"{_ascii(first)}.{_ascii(last)}{number}"
        domain = self.companies[number % COMPANIES][0]
        return Party(name, f"{local}@{domain}")

    def messages(self) -> Iterator[bytes]:
        threads: list[_Thread] = []
        attached = set(self.rng.sample(range(self.count), round(self.count * ATTACHMENT_SHARE)))
        for number in range(self.count):
            thread, parent_id = self._thread_for(threads)
            raw = self._message(number, thread, parent_id, attach=number in attached)
            self.stats.add(raw)
            yield raw

    def _thread_for(self, threads: list[_Thread]) -> tuple[_Thread, str]:
        if not threads or self.rng.random() < THREAD_START:
            topic = self.rng.choice(TOPICS).format(n=self.rng.randint(10_000, 99_999))
            thread = _Thread(subject=topic, customer=self.rng.choice(self.customers))
            threads.append(thread)
            return thread, ""
        # Replies go mostly to recent conversations.
        thread = threads[-1 - min(int(self.rng.expovariate(0.15)), len(threads) - 1)]
        self.stats.replies += 1
        return thread, thread.message_ids[-1]

    def _message(self, number: int, thread: _Thread, parent_id: str, *, attach: bool) -> bytes:
        rng, sender = self.rng, thread.customer
        date = max(BASE_DATE + timedelta(minutes=17 * number), thread.last_date + timedelta(minutes=3))
        domain = sender.address.rpartition("@")[2]
        message_id = f"{number:05d}.{rng.getrandbits(48):012x}@{domain}"
        mailer = rng.choice(MAILERS)
        headers = self._transport_headers(number, date, domain)
        headers += [("From", _addresses([sender])), ("To", _addresses([Party("CRM Benutzer", self.owner)]))]
        cc = self._cc(sender)
        if cc:
            headers.append(("Cc", _addresses(cc)))
        subject = f"AW: {thread.subject}" if parent_id else thread.subject
        headers += [("Subject", _words(subject)), ("Date", format_datetime(date))]
        headers.append(("Message-ID", f"<{message_id}>"))
        if parent_id:
            headers.append(("In-Reply-To", f"<{parent_id}>"))
            headers.append(("References", " ".join(f"<{m}>" for m in thread.message_ids[-10:])))
        headers += self._thread_index(thread, mailer, parent_id)
        headers += [("X-Mailer", mailer), ("Content-Language", rng.choice(["de-DE", "fr-FR", "en-US"]))]
        text = self._text(sender, thread, parent_id)
        attachments = [self._attachment(number)] if attach else []
        thread.message_ids.append(message_id)
        thread.last_text, thread.last_date = text, date
        return mime(headers, text, _html(text), attachments, boundary=f"bench-{number:05d}")

    def _transport_headers(self, number: int, date: datetime, domain: str) -> list[tuple[str, str]]:
        # What the sender's and the receiving side's servers add before the mailbox server.
        headers = [
            (
                "Received",
                f"from {hop} ({hop} [192.0.2.{number % 250 + 1}]) by mail.example.test with ESMTPS "
                f"id {self.rng.getrandbits(64):016x}; {format_datetime(date)}",
            )
            for hop in (f"mx{number % 4}.mail.example.test", f"out{number % 7}.{domain}")
        ]
        headers.append(
            (
                "Authentication-Results",
                f"mail.example.test; dkim=pass header.d={domain}; spf=pass smtp.mailfrom={domain}; "
                "dmarc=pass",
            )
        )
        signature = base64.b64encode(self.rng.randbytes(256)).decode()
        body_hash = base64.b64encode(self.rng.randbytes(32)).decode()
        headers.append(
            (
                "DKIM-Signature",
                f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=mail; h=from:to:cc:subject:date:"
                f"message-id:in-reply-to:references; bh={body_hash}; b="
                + " ".join(signature[i : i + 64] for i in range(0, len(signature), 64)),
            )
        )
        return headers

    def _cc(self, sender: Party) -> list[Party]:
        if self.rng.random() >= 0.3:
            return []
        domain = sender.address.rpartition("@")[2]
        account = next(info for d, info in self.companies if d == domain)
        colleagues = [c for c in self.customers if c.address.endswith(domain) and c != sender]
        pool = [
            account,
            *colleagues[:6],
            Party("Extern Partner", f"partner{self.rng.randint(1, 99)}@else.example"),
        ]
        chosen = self.rng.sample(pool, min(len(pool), self.rng.randint(1, 3)))
        if any(p.address in self._known for p in chosen):
            self.stats.with_crm_cc += 1
        return chosen

    def _thread_index(self, thread: _Thread, mailer: str, parent_id: str) -> list[tuple[str, str]]:
        if not parent_id and mailer == OUTLOOK:
            thread.thread_index = b"\x01" + self.rng.randbytes(21)
        elif thread.thread_index:
            thread.thread_index += self.rng.randbytes(5)
        if not thread.thread_index:
            return []
        return [
            ("Thread-Topic", _words(thread.subject)),
            ("Thread-Index", base64.b64encode(thread.thread_index).decode()),
        ]

    def _text(self, sender: Party, thread: _Thread, parent_id: str) -> str:
        # Own text of ~5 KB (median), plus the quoted history of a reply.
        words = max(60, int(self.rng.lognormvariate(6.5, 0.7)))
        paragraphs = _paragraphs(self.rng, words)
        first = sender.name.split()[0]
        body = "Sehr geehrte Damen und Herren,\n\n" + "\n\n".join(paragraphs)
        signature = (
            f"\n\nMit freundlichen Grüßen\n{sender.name}\n{sender.address}\n"
            f"Tel. +49 89 {self.rng.randint(1_000_000, 9_999_999)}\n"
        )
        if not parent_id:
            return body + signature
        quoted = "\n".join(f"> {line}" for line in thread.last_text[:QUOTE_LIMIT].splitlines())
        header = (
            f"\n\n-----Ursprüngliche Nachricht-----\nVon: {first}\nGesendet: {thread.last_date:%d.%m.%Y}\n"
        )
        return body + signature + header + quoted + "\n"

    def _attachment(self, number: int) -> tuple[str, str, bytes]:
        size = self.rng.randint(*ATTACHMENT_BYTES)
        # Random bytes: attachments (PDF, images, archives) are compressed already.
        data = self.rng.randbytes(size)
        name = self.rng.choice(["Angebot_Müller", "Rechnung", "Lieferschein", "Präsentation", "devis"])
        content_type, extension = self.rng.choice([("application/pdf", "pdf"), ("image/jpeg", "jpg")])
        self.stats.with_attachment += 1
        return f"{name}_{number}.{extension}", content_type, data


def _paragraphs(rng: random.Random, words: int) -> list[str]:
    paragraphs, left = [], words
    while left > 0:
        take = min(left, rng.randint(25, 110))
        sentence = " ".join(rng.choices(WORDS, k=take))
        paragraphs.append(sentence[0].upper() + sentence[1:] + ".")
        left -= take
    return paragraphs


def _html(text: str) -> str:
    """The HTML alternative a mail client writes for ``text``: paragraphs, quotes, a signature table."""
    parts = [HTML_HEAD, '<div class="WordSection1">']
    for block in text.split("\n\n"):
        lines = [line for line in block.splitlines() if line]
        if lines and all(line.startswith(">") for line in lines):
            inner = "<br>".join(_escape(line.lstrip("> ")) for line in lines)
            parts.append(f'<blockquote type="cite"><p class="MsoNormal">{inner}</p></blockquote>')
        else:
            inner = "<br>\r\n".join(_escape(line) for line in lines)
            parts.append(f'<p class="MsoNormal"><span style="font-size:11.0pt">{inner}</span></p>')
    parts.append('<table class="sig" cellpadding="0" cellspacing="0"><tr><td>Vertraulichkeitshinweis: ')
    parts.append("Diese Nachricht ist nur für den Empfänger bestimmt.</td></tr></table></div></body></html>")
    return "\r\n".join(parts)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- MIME, written directly -------------------------------------------------------------------------
# The email package's generator takes ~25 ms a message (header refolding, a write per line); 3,000
# messages would spend over a minute before anything is measured. These few functions write the
# same structure with the C encoders (binascii) in well under a millisecond.


def mime(
    headers: list[tuple[str, str]],
    text: str,
    html: str,
    attachments: list[tuple[str, str, bytes]],
    *,
    boundary: str,
) -> bytes:
    """A message with CRLF line endings: text and HTML alternatives, then the attachments.

    ``headers`` hold ASCII values (see ``_words`` and ``_addresses``); they are folded here."""
    alternative = _multipart(
        "alternative", f"=_{boundary}_alt", [_text_part("plain", text), _text_part("html", html)]
    )
    body = alternative
    if attachments:
        parts = [alternative, *(_attachment_part(*a) for a in attachments)]
        body = _multipart("mixed", f"=_{boundary}_mixed", parts)
    head = [*headers, ("MIME-Version", "1.0")]
    return "".join(_fold(name, value) for name, value in head).encode("ascii") + body


def _multipart(subtype: str, boundary: str, parts: list[bytes]) -> bytes:
    # A part's own headers come first in it, so its body is everything after the blank line.
    delimiter = f"--{boundary}\r\n".encode()
    inner = b"".join(delimiter + part + b"\r\n" for part in parts)
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()
    return head + inner + f"--{boundary}--\r\n".encode()


def _text_part(subtype: str, text: str) -> bytes:
    crlf = text.replace("\r\n", "\n").replace("\n", "\r\n").encode()
    head = (
        f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    )
    return head.encode() + binascii.b2a_qp(crlf, istext=True) + b"\r\n"


def _attachment_part(filename: str, content_type: str, data: bytes) -> bytes:
    quoted = urllib.parse.quote(filename)
    head = (
        f"Content-Type: {content_type}; name*=utf-8''{quoted}\r\nContent-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; filename*=utf-8''{quoted}\r\n\r\n"
    )
    return head.encode() + base64.encodebytes(data).replace(b"\n", b"\r\n")


def _fold(name: str, value: str) -> str:
    """``Name: value`` folded at spaces to 78 characters, as mailers write long headers."""
    lines, current = [], f"{name}:"
    for word in value.split(" "):
        if len(current) + 1 + len(word) > 78 and current.strip() and not current.endswith(":"):
            lines.append(current)
            current = ""
        current = f"{current} {word}"
    lines.append(current)
    return "\r\n".join(lines) + "\r\n"


def _words(text: str) -> str:
    """RFC 2047 encoded words for a non-ASCII header value."""
    return text if text.isascii() else Header(text, "utf-8").encode(linesep=" ").replace("\n", "")


def _addresses(parties: list[Party]) -> str:
    return ", ".join(formataddr((p.name, p.address), charset="utf-8") for p in parties)


# --- CRM email to send (B4) ------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingEmail:
    subject: str
    text: str
    html: str
    to: list[Party]
    cc: list[Party]
    attachments: list[tuple[str, str, bytes]]  # filename, content type, data


def outgoing_emails(count: int, recipients: list[Party], *, seed: int) -> list[OutgoingEmail]:
    """CRM email of 5 to 50 KB on the wire (log-uniform), one in four with an attachment."""
    rng = random.Random(seed)  # noqa: S311 - made-up mail, not secrets
    return [_outgoing(rng, n, recipients) for n in range(count)]


def _outgoing(rng: random.Random, number: int, recipients: list[Party]) -> OutgoingEmail:
    target = int(5_000 * 10 ** rng.uniform(0, 1))  # 5 to 50 KB
    attachments: list[tuple[str, str, bytes]] = []
    if rng.random() < 0.25:
        data = rng.randbytes(int(target * rng.uniform(0.2, 0.45) * 0.73))  # base64 grows it by 4/3
        attachments.append((f"Angebot_{number}_Übersicht.pdf", "application/pdf", data))
    body_bytes = max(1_500, target - sum(len(a[2]) * 4 // 3 for a in attachments))
    # ~21 bytes on the wire per word of text (in the text part, quoted-printable, and again in the
    # HTML part with its markup), beside ~1.2 KB of headers, HTML head and signature.
    text = _outgoing_text(rng, max(20, (body_bytes - 1_200) // 21))
    to = [rng.choice(recipients)]
    cc = [p for p in recipients if p not in to and rng.random() < 0.3][:2]
    subject = rng.choice(TOPICS).format(n=rng.randint(10_000, 99_999))
    return OutgoingEmail(subject, text, _html(text), to, cc, attachments)


def _outgoing_text(rng: random.Random, words: int) -> str:
    lines = ["Guten Tag,", ""]
    for paragraph in _paragraphs(rng, words):
        # Long lines (whole paragraphs on one line, as mail clients write them) and lines
        # that start with a dot, which SMTP's dot-stuffing must protect.
        lines += [paragraph, "", ". Punkt eins der Tagesordnung", "...und weiter im Text.", ""]
    lines += ["Mit freundlichen Grüßen", "Ihr Vertriebsteam"]
    return "\n".join(lines)


def outgoing_bytes(email: OutgoingEmail, *, sender: Party, message_id: str, date: datetime) -> bytes:
    """The email as a correct client sends it: MIME with CRLF line endings (RFC 5321)."""
    headers = [("From", _addresses([sender])), ("To", _addresses(email.to))]
    if email.cc:
        headers.append(("Cc", _addresses(email.cc)))
    headers += [("Subject", _words(email.subject)), ("Message-ID", f"<{message_id}>")]
    headers.append(("Date", format_datetime(date)))
    return mime(headers, email.text, email.html, email.attachments, boundary=message_id.partition("@")[0])


# --- one big message (B5) --------------------------------------------------------------------------


def big_message(*, size: int, owner: str, message_id: str, seed: int) -> bytes:
    """About ``size`` bytes: a short text + HTML body and one attachment taking the rest."""
    rng = random.Random(seed)  # noqa: S311 - made-up mail, not secrets
    headers = [
        ("From", _addresses([Party("Jürgen Müller", "j.mueller@bau-logistik1.example")])),
        ("To", owner),
        ("Subject", _words("Baupläne und Fotos der Übergabe (groß)")),
        ("Date", format_datetime(BASE_DATE)),
        ("Message-ID", f"<{message_id}>"),
    ]
    text = "\n\n".join(_paragraphs(rng, 300))
    bare = len(mime(headers, text, _html(text), [], boundary="bench-big"))
    # base64 writes 76 characters and CRLF for every 57 bytes.
    data = rng.randbytes(max(0, (size - bare - 400) * 57 // 78))
    return mime(
        headers, text, _html(text), [("Übergabe_Fotos.zip", "application/zip", data)], boundary="bench-big"
    )
