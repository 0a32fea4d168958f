"""Test connection and test & enable: prove a mailbox's connections before it syncs.

Each direction is tested with the connectors the engine syncs with, so a test
that passes means the next sync run can connect: incoming resolves, connects,
negotiates TLS, authenticates (or impersonates) and opens the inbox (and its
sub-folders where the mailbox processes them); outgoing connects, negotiates
TLS and authenticates, and with ``round_trip`` sends a test message to the
mailbox itself, waits for it to arrive and deletes it. Directions that pass are
enabled; those that fail stay off with a reason that names the cause and the fix.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from django.db import transaction
from django.db.models import Q

from crm.choices import ActMethod, IncomingMethod, OutgoingMethod, ProcessEmailUsing, SyncStatus
from crm.models import OrganizationSettings
from mailboxes.models import FolderScope, Mailbox
from profiles.models import CredentialsSource, EmailServerProfile
from sync import alerts, clock, enqueue, outgoing
from sync.errors import SyncError
from sync.models import AlertLevel, MailboxTest, TestState
from sync.server_settings import (
    act_settings,
    connectors_of,
    incoming_settings,
    is_supported,
    outgoing_settings,
    profile_of,
)

SUCCESS, FAILURE, NOT_SUPPORTED, SKIPPED = "success", "failure", "not_supported", "skipped"
INCOMING, OUTGOING, ACT = "incoming", "outgoing", "act"
LABELS = {INCOMING: "incoming email", OUTGOING: "outgoing email", ACT: "appointments, contacts and tasks"}
TEST_HEADER = "X-Serversync-Test"
ROUND_TRIP_TIMEOUT_SECONDS = 30.0
ROUND_TRIP_POLL_SECONDS = 0.5
ALERT_CATEGORY = "test"
# A test still Testing after this long was left by a worker that died.
STALE_TEST = timedelta(minutes=10)

# What to do about each cause, in words; the connectors' messages say what happened.
FIXES = {
    "dns_not_found": "Correct the server name in the email server profile.",
    "dns_unavailable": "Check the DNS resolver of the serversync servers, then test again.",
    "connection_refused": "Check the server name and port in the email server profile, and that the "
    "mail server is running.",
    "timeout": "Check the port and that no firewall drops the traffic between serversync and the mail "
    "server; raise the profile's connection timeout if the server is slow.",
    "connection_lost": "Check that the profile's encryption setting matches the port, then test again.",
    "tls_certificate_invalid": "Install a current certificate for the server's name from a trusted "
    "authority on the mail server, or use the name the certificate is issued for in the profile.",
    "tls_failed": "Match the profile's SSL setting to the port (SSL/TLS on the implicit-TLS port, "
    "STARTTLS on the plain one).",
    "starttls_unavailable": "Turn on SSL/TLS in the profile or use a server that offers STARTTLS.",
    "authentication_failed": "Correct the user name and password in the email server profile or on "
    "the mailbox (or, for an app registered in Microsoft Entra ID, the profile's client secret or "
    "certificate).",
    "authentication_required": "Enter the credentials the outgoing server needs.",
    "authentication_unavailable": "Turn on SSL/TLS so the server offers sign-in, or choose another "
    "authentication setting.",
    "impersonation_denied": "Grant the profile's account the right to act for this mailbox on the mail "
    "server (master user / impersonation), or give the mailbox its own credentials.",
    "folder_not_found": "Check that the folder exists on the mail server and that the account may open it "
    "(the server's access rules), or change the mailbox's folder settings.",
    "permission_denied": "Grant the account its rights on the mail server.",
    "server_busy": "Lower the profile's maximum concurrent connections, or test again later.",
    "approval_missing": "Approve the mailbox's email address (or turn off \"process email only for "
    'approved users / queues" in the email settings), then test again.',
    "profile_missing": "Choose an email server profile for the mailbox.",
    "profile_inactive": "Activate the email server profile, or choose an active one for the mailbox.",
    "credentials_missing": 'Enter the user name and password (on the mailbox with "allow to use '
    'credentials for email processing", or on the profile) or, for an app registered in Microsoft '
    "Entra ID, its tenant id, client id and client secret or certificate on the profile; then test again.",
    "round_trip_not_arrived": "Check that the outgoing server delivers mail for this address to this "
    "mailbox's server (routing, spam filtering), then test again.",
}
GENERIC_FIX = "Correct the email server profile or the mailbox for the cause above, then test again."

# How the connectors' messages say what to do after what happened: a sentence, or
# the clause after a last ":" or ";", that starts so. Test & enable says the fix
# itself (FIXES), once, so it keeps only the cause of such a message.
_ADVICE = re.compile(
    r"(?:(?:correct|check|grant|create|choose|use|enable|turn|enter|install|point|match|approve|activate|"
    r"lower|raise|remove|give|the mail server needs)\b|for starttls,|if it persists,)",
    re.IGNORECASE,
)
_CLAUSE = re.compile(r"[:;]\s+(?=[^:;]*$)")


@dataclass
class DirectionResult:
    """One direction's outcome. For a failure, ``message`` says what happened and
    ``fix`` what to do, each once: the text shown is both (``failure_text``)."""

    direction: str
    outcome: str
    code: str = ""
    message: str = ""
    fix: str = ""


@dataclass
class TestReport:
    __test__ = False  # not a pytest class

    mailbox_id: int
    results: list[DirectionResult]
    # The organization still processes email with the Email Router.
    email_router: bool = False

    @property
    def passed(self) -> bool:
        return all(result.outcome != FAILURE for result in self.results)

    @property
    def summary(self) -> str:
        parts = [_said(result) for result in self.results if result.outcome != SKIPPED]
        text = ("; ".join(parts) or "Nothing to test: no direction uses server-side synchronization") + "."
        text = text[0].upper() + text[1:]
        if self.email_router:
            text += (
                " The organization still processes email with the Email Router: processing starts once "
                "it switches to server-side synchronization."
            )
        return text


def _said(result: DirectionResult) -> str:
    label = LABELS[result.direction]
    if result.outcome == SUCCESS:
        return f"{label} passed"
    if result.outcome == NOT_SUPPORTED:
        return f"{label} not supported yet"
    return f"{label} failed ({result.code.replace('_', ' ')})"


def failed(direction: str, error: SyncError) -> DirectionResult:
    cause, advice = split_advice(error.message)
    return DirectionResult(
        direction, FAILURE, error.code, cause, FIXES.get(error.code) or advice or GENERIC_FIX
    )


def split_advice(message: str) -> tuple[str, str]:
    """A connector's message as (what happened, what it says to do). The sync engine
    shows the whole message; test & enable shows the cause and its own fix, so that
    the fix is said once rather than in the connector's words and again in its own."""
    sentences = _sentences(message)
    advice: list[str] = []
    while len(sentences) > 1 and _ADVICE.match(sentences[-1]):
        advice.insert(0, sentences.pop())
    last = _CLAUSE.split(sentences[-1]) if sentences else []
    if not advice and len(last) == 2 and _ADVICE.match(last[1]):
        sentences[-1] = last[0].rstrip() + "."
        advice = [last[1][0].upper() + last[1][1:]]
    return " ".join(sentences), " ".join(advice)


def _sentences(text: str) -> list[str]:
    """Split after ". " (or ! ?) outside brackets: a server's quoted reply stays whole."""
    found, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += (char in "([") - (char in ")]")
        if char in ".!?" and depth <= 0 and text[index + 1 : index + 2] in (" ", ""):
            found.append(text[start : index + 1].strip())
            start = index + 1
    if text[start:].strip():
        found.append(text[start:].strip())
    return found


def failure_text(results: list[DirectionResult]) -> str:
    """The failures as one text, each cause followed by its fix, the fix said once:
    directions that failed alike (say, the address is not approved) are named
    together, and causes with the same fix (a wrong password, refused by both
    servers) are told one after the other before it."""
    by_fix: dict[str, dict[str, list[str]]] = {}
    for result in results:
        if result.outcome == FAILURE:
            labels = by_fix.setdefault(result.fix, {}).setdefault(result.message, [])
            labels.append(LABELS[result.direction])
    return " ".join(
        " ".join(
            [*(f"{' and '.join(labels).capitalize()}: {message}" for message, labels in causes.items()), fix]
        ).strip()
        for fix, causes in by_fix.items()
    )


# -- one mailbox --------------------------------------------------------------


def mailbox_test_and_enable(
    *, mailbox: Mailbox, round_trip: bool = False, test: MailboxTest | None = None
) -> TestReport:
    """Test every direction the mailbox synchronizes, record the results on it
    (status, enabled flags, disabled reason, test time), alert its owner, and
    complete ``test`` when given."""
    if test is not None:
        _test_started(test)
    generation = mailbox.configuration_generation
    organization = OrganizationSettings.load()
    report = TestReport(
        mailbox_id=mailbox.pk,
        results=_test_directions(mailbox, organization, round_trip=round_trip),
        email_router=organization.process_email_using == ProcessEmailUsing.EMAIL_ROUTER,
    )
    with transaction.atomic():
        _record_on_mailbox(mailbox, report, generation)
        _alert_owner(mailbox, report)
        if test is not None:
            _test_finished(test, report)
    return report


def _test_directions(
    mailbox: Mailbox, organization: OrganizationSettings, *, round_trip: bool
) -> list[DirectionResult]:
    wanted = {
        INCOMING: mailbox.incoming_method == IncomingMethod.SERVER_SIDE_SYNC,
        OUTGOING: mailbox.outgoing_method == OutgoingMethod.SERVER_SIDE_SYNC,
        ACT: mailbox.act_method == ActMethod.SERVER_SIDE_SYNC,
    }
    skipped = [
        DirectionResult(direction, SKIPPED, message=f"The mailbox does not synchronize {LABELS[direction]}.")
        for direction, on in wanted.items()
        if not on
    ]
    tested = [direction for direction, on in wanted.items() if on]
    blocker = _blocker(mailbox, organization)
    if blocker is not None:
        return [failed(direction, blocker) for direction in tested] + skipped
    results = {direction: _test_direction(direction, mailbox) for direction in tested}
    if round_trip and results.get(OUTGOING, _NONE).outcome == SUCCESS:
        results[OUTGOING] = _round_trip(mailbox)
    return list(results.values()) + skipped


_NONE = DirectionResult("", "")


def _blocker(mailbox: Mailbox, organization: OrganizationSettings) -> SyncError | None:
    """Why no direction can be tried (no connection is attempted), or None."""
    if mailbox.awaits_approval(organization):
        return SyncError(
            f"The email address {mailbox.email_address} is not approved "
            f"({mailbox.get_approval_status_display()}), and the organization processes email only "
            f"for approved {mailbox.owner_kind}s.",
            code="approval_missing",
        )
    try:
        profile_of(mailbox)
    except SyncError as error:
        return error
    return None


def _test_direction(direction: str, mailbox: Mailbox) -> DirectionResult:
    profile = profile_of(mailbox)  # _blocker checked it: this does not raise
    if not is_supported(profile):
        return _not_supported(direction, profile)
    if direction == ACT:
        return _act_access(mailbox, profile)
    try:
        kind = connectors_of(profile)
        if direction == INCOMING:
            subfolders = mailbox.folders == FolderScope.INBOX_AND_SUBFOLDERS
            kind.probe.check_incoming(incoming_settings(mailbox), include_subfolders=subfolders)
        else:
            with kind.outgoing(outgoing_settings(mailbox)):
                pass
    except SyncError as error:
        return failed(direction, error)
    return DirectionResult(direction, SUCCESS, message=f"{LABELS[direction].capitalize()} works.")


def _act_access(mailbox: Mailbox, profile: EmailServerProfile) -> DirectionResult:
    """Whether the mailbox's calendar, contacts and tasks open (a missing permission is named
    before anything syncs)."""
    kind = connectors_of(profile)
    if kind.check_act is None or kind.act_items is None:
        return _not_supported(ACT, profile)
    try:
        kind.check_act(act_settings(mailbox))
    except SyncError as error:
        return failed(ACT, error)
    return DirectionResult(ACT, SUCCESS, message="Appointments, contacts and tasks open and will sync.")


def _not_supported(direction: str, profile: EmailServerProfile) -> DirectionResult:
    what = (
        "Appointments, contacts and tasks are"
        if direction == ACT
        else f"{profile.get_server_type_display()} profiles are"
    )
    return DirectionResult(
        direction,
        NOT_SUPPORTED,
        code="not_supported",
        message=f"{what} not supported yet; serversync leaves {LABELS[direction]} off.",
    )


# -- round trip -----------------------------------------------------------------


def _round_trip(mailbox: Mailbox) -> DirectionResult:
    """Send a marked test message to the mailbox itself, see it arrive, delete it."""
    token = secrets.token_hex(12)
    try:
        kind = connectors_of(profile_of(mailbox))
        inbox = incoming_settings(mailbox)
        since = kind.probe.position(inbox)
        with kind.outgoing(outgoing_settings(mailbox)) as sending:
            sending.send(
                _test_message(mailbox, token),
                mail_from=mailbox.email_address,
                rcpt_to=[mailbox.email_address],
            )
        deadline = time.monotonic() + ROUND_TRIP_TIMEOUT_SECONDS
        while not kind.probe.take_marked(inbox, TEST_HEADER, token, since):
            if time.monotonic() > deadline:
                return _not_arrived(mailbox)
            time.sleep(ROUND_TRIP_POLL_SECONDS)
    except SyncError as error:
        return failed(OUTGOING, error)
    return DirectionResult(
        OUTGOING, SUCCESS, message="Outgoing email works: a test message reached the mailbox and was deleted."
    )


def _not_arrived(mailbox: Mailbox) -> DirectionResult:
    return DirectionResult(
        OUTGOING,
        FAILURE,
        "round_trip_not_arrived",
        f"The outgoing server accepted a test message to {mailbox.email_address}, but it did not arrive in "
        f"the mailbox within {ROUND_TRIP_TIMEOUT_SECONDS:g} seconds.",
        FIXES["round_trip_not_arrived"],
    )


def _test_message(mailbox: Mailbox, token: str) -> bytes:
    message = EmailMessage()
    message["From"] = message["To"] = mailbox.email_address
    message["Subject"] = "serversync test message"
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain="serversync.invalid")
    message[TEST_HEADER] = token
    message.set_content(
        "serversync sent this message to test the mailbox's outgoing email. It is deleted once it "
        "arrives and never becomes an activity.\n"
    )
    return message.as_bytes(policy=outgoing.SEVEN_BIT)  # written as every email serversync sends


# -- recording --------------------------------------------------------------------


def _record_on_mailbox(mailbox: Mailbox, report: TestReport, generation: int) -> None:
    """Statuses and enabled flags, unless the mailbox's configuration changed meanwhile
    (then the results describe a configuration that no longer exists)."""
    now = clock.now()
    values: dict[str, Any] = {"test_completed_on": now, "modified_on": now}
    for result in report.results:
        if result.outcome == SKIPPED:
            continue
        values[f"{result.direction}_enabled"] = result.outcome == SUCCESS
        if result.outcome != NOT_SUPPORTED:
            values[f"{result.direction}_status"] = (
                SyncStatus.SUCCESS if result.outcome == SUCCESS else SyncStatus.FAILURE
            )
        if result.outcome == SUCCESS:
            values[f"{result.direction}_transient_failures"] = 0
            values[f"{result.direction}_postponed_until"] = None
    if any(r.outcome == SUCCESS and r.direction in ("incoming", "outgoing") for r in report.results):
        values["needs_credentials"] = False  # a mail server accepted the sign-in: they are there
    values["disabled_reason"] = failure_text(report.results)
    Mailbox.objects.filter(pk=mailbox.pk, configuration_generation=generation).update(**values)
    mailbox.refresh_from_db()


def _alert_owner(mailbox: Mailbox, report: TestReport) -> None:
    alerts.resolve_alerts(mailbox=mailbox, category=ALERT_CATEGORY)
    failure = next((r for r in report.results if r.outcome == FAILURE), None)
    if failure is None:
        alerts.record_alert(
            level=AlertLevel.INFORMATION,
            category=ALERT_CATEGORY,
            code="test_passed",
            message=f"Test & enable of {mailbox.email_address}: {report.summary}",
            mailbox=mailbox,
        )
        return
    alerts.record_alert(
        level=AlertLevel.ERROR,
        category=ALERT_CATEGORY,
        code=failure.code or "test_failed",
        message=f"Test & enable of {mailbox.email_address}: {report.summary} {failure.message} {failure.fix}",
        mailbox=mailbox,
    )


def _test_started(test: MailboxTest) -> None:
    test.state, test.started_on = TestState.TESTING, clock.now()
    test.save(update_fields=["state", "started_on"])


def _test_finished(test: MailboxTest, report: TestReport) -> None:
    test.state = TestState.PASSED if report.passed else TestState.FAILED
    test.finished_on, test.summary = clock.now(), report.summary
    test.results = {result.direction: _as_json(result) for result in report.results}
    test.save(update_fields=["state", "finished_on", "summary", "results"])


def _as_json(result: DirectionResult) -> dict[str, str]:
    values = asdict(result)
    values.pop("direction")
    return values


# -- many mailboxes, and profiles ---------------------------------------------------


def queue_test_and_enable(
    *, mailbox_ids: list[int], requested_by: Any, round_trip: bool = False
) -> list[MailboxTest]:
    """Queue one background test & enable per mailbox; the tasks start after commit."""
    now = clock.now()
    with transaction.atomic():
        tests = MailboxTest.objects.bulk_create(
            MailboxTest(mailbox_id=pk, requested_by=requested_by, round_trip=round_trip, queued_on=now)
            for pk in dict.fromkeys(mailbox_ids)
        )
        for test in tests:
            enqueue.run_queued_test(test_id=test.pk)
    return tests


def run_queued_test(*, test_id: int) -> TestReport | None:
    """Run one queued test (the Celery task's body); None when it is gone or canceled."""
    now = clock.now()
    # Claim it first, so a redelivered or requeued copy of the task never runs a
    # test twice at once; a test left Testing by a dead worker is free again later.
    claimable = Q(state=TestState.QUEUED) | Q(state=TestState.TESTING, started_on__lt=now - STALE_TEST)
    if not MailboxTest.objects.filter(claimable, pk=test_id).update(state=TestState.TESTING, started_on=now):
        return None
    test = MailboxTest.objects.select_related("mailbox__profile").get(pk=test_id)
    return mailbox_test_and_enable(mailbox=test.mailbox, round_trip=test.round_trip, test=test)


def profile_test_connection(*, profile: EmailServerProfile) -> list[DirectionResult]:
    """ "Test Connection": both directions with the profile's own credentials."""
    profile.last_test_started_on = clock.now()
    results = _profile_results(profile)
    failures = [r for r in results if r.outcome == FAILURE]
    tested = [r for r in results if r.outcome in (SUCCESS, FAILURE)]
    profile.last_test_result = (
        SyncStatus.FAILURE if failures else SyncStatus.SUCCESS if tested else SyncStatus.NOT_RUN
    )
    profile.last_test_message = " ".join(
        f"{LABELS[r.direction].capitalize()}: {r.message} {r.fix}".strip() for r in results
    )
    profile.save(update_fields=["last_test_started_on", "last_test_result", "last_test_message"])
    return results


def _profile_results(profile: EmailServerProfile) -> list[DirectionResult]:
    if not is_supported(profile):
        return [_not_supported(INCOMING, profile), _not_supported(OUTGOING, profile)]
    if profile.credentials_source in (
        CredentialsSource.USER_OR_QUEUE,
        CredentialsSource.OAUTH_AUTHORIZATION_CODE,
    ):
        message = (
            "This profile signs in with each mailbox's own credentials (or connected account), so it has "
            "none to test with. Test its mailboxes with Test & enable."
        )
        return [DirectionResult(d, SKIPPED, "credentials_per_mailbox", message) for d in (INCOMING, OUTGOING)]
    if profile.credentials_source == CredentialsSource.OAUTH_CLIENT_CREDENTIALS:
        # What an app may do is granted per mailbox (application access policies, RBAC for
        # Applications): only a mailbox's own test says whether it works.
        message = (
            "This profile signs in as an app registered in Microsoft Entra ID, whose access is granted "
            "per mailbox. Test its mailboxes with Test & enable."
        )
        return [DirectionResult(d, SKIPPED, "app_per_mailbox", message) for d in (INCOMING, OUTGOING)]
    # A mailbox that is only the profile: no address to impersonate, so it signs in as itself.
    stand_in = Mailbox(profile=profile, email_address="")
    results = []
    for direction in (INCOMING, OUTGOING):
        blocker = None
        try:
            profile_of(stand_in)
        except SyncError as error:
            blocker = error
        results.append(failed(direction, blocker) if blocker else _test_direction(direction, stand_in))
    return results
