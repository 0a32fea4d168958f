"""B1 (initial sync of a mailbox into activities) and B2 (idle polls), each timed
against imapclient doing the least the same job needs, in the same run."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser

from bench.email_crm import Bench, add_records, fresh, run_budget, user_mailbox
from bench.email_figures import Figure, Profiler, Rate, Result, counting_queries, ratio_figure
from bench.mail_corpus import IncomingCorpus
from bench.mail_stack import MailStack, MailUser
from crm.models import EmailActivity
from mailboxes.models import Mailbox
from sync.incoming import sync_incoming
from sync.models import Receipt, SyncOutcome, SyncRun

# The engine fetches bodies 50 messages at a time (sync.connectors.imap.fetch_new); so does the raw side.
FETCH_BATCH = 50
B1_PARSE_TARGET, B1_FETCH_TARGET, B2_TARGET = 0.70, 0.30, 0.90
# Each side's work in turns, so load from other work on the machine meets both alike:
# B1 in chunks of the corpus (the engine one run each), B2 in groups of mailboxes.
B1_CHUNKS = 6
POLL_ROUNDS, POLL_GROUP = 2, 25


# --- B1 ------------------------------------------------------------------------------------------


@dataclass
class _Sides:
    """B1's three measurements, each summed over the chunks."""

    parse: Rate = field(default_factory=Rate)
    engine: Rate = field(default_factory=Rate)
    fetch: Rate = field(default_factory=Rate)
    runs: list[SyncRun] = field(default_factory=list)
    statements: int = 0


def initial_sync(bench: Bench) -> Result:
    result = Result()
    account = bench.stack.add_user("b1-owner")
    corpus = IncomingCorpus(messages=bench.options.messages, owner=account.address, seed=bench.options.seed)
    add_records(corpus.crm)
    mailbox = user_mailbox(account, bench.profile, name="Björn Bänch")
    delivered = bench.stack.deliver(account.address, corpus.messages())
    result.note(f"corpus: {corpus.stats.summary()}")
    result.note(
        f"CRM: {len(corpus.crm.contacts)} contacts and {len(corpus.crm.accounts)} accounts among its parties"
    )
    result.note(f"delivered over LMTP in {delivered.seconds:.0f} s (not timed)")
    uids = _uids(bench.stack, account)
    # Dovecot writes its index and cache files on the first read; neither side should pay for that.
    _raw_pass(bench.stack, account, uids, parse=False)
    sides = _interleaved(bench, mailbox.pk, account, uids)
    _engine_notes(sides, mailbox.pk, result)
    result.note(
        f"raw: fetch + parse {sides.parse.seconds:.1f} s, fetch only {sides.fetch.seconds:.1f} s "
        f"(each in {len(sides.runs)} chunks between the engine's runs)"
    )
    name = "B1 initial sync to activities"
    received = Receipt.objects.filter(mailbox_id=mailbox.pk).count()
    if received < corpus.count:
        last = sides.runs[-1]
        result.note(f"engine stopped at {received} of {corpus.count}: {last.outcome} {last.error_text}")
        result.figures.append(Figure(name, f"{received} of {corpus.count} received", failed=True))
        return result
    result.figures += [
        ratio_figure(
            f"{name} (vs fetch + parse)",
            unit="msg/s",
            engine=sides.engine.per_second,
            raw_label="fetch + `BytesParser(policy.default)`",
            raw=sides.parse.per_second,
            target=B1_PARSE_TARGET,
        ),
        ratio_figure(
            f"{name} (vs fetch only)",
            unit="msg/s",
            engine=sides.engine.per_second,
            raw_label="fetch only",
            raw=sides.fetch.per_second,
            target=B1_FETCH_TARGET,
        ),
    ]
    return result


def _interleaved(bench: Bench, mailbox_id: int, account: MailUser, uids: list[int]) -> _Sides:
    """The engine in runs of a chunk each (the run budget), every run between a raw fetch + parse
    and a raw fetch of the same messages: load from other work on the machine meets all three.
    (A run that stops at its budget has fetched one batch of 50 beyond it, which the next run
    fetches again: 250 more messages fetched over six runs, ~0.3 % of the engine's time.)"""
    sides = _Sides()
    chunk = math.ceil(len(uids) / B1_CHUNKS)
    profiler = Profiler(bench.profiled("B1"), "B1 initial sync (sync_incoming)", bench.options.top)
    with run_budget(chunk):
        for start in range(0, len(uids), chunk):
            part = uids[start : start + chunk]
            with sides.parse.timing():
                sides.parse.items += _raw_pass(bench.stack, account, part, parse=True)
            with counting_queries() as queries, profiler.measuring(), sides.engine.timing():
                run = sync_incoming(mailbox=fresh(mailbox_id))
            sides.runs.append(run)
            sides.engine.items += run.received
            sides.statements += queries.count
            with sides.fetch.timing():
                sides.fetch.items += _raw_pass(bench.stack, account, part, parse=False)
            if run.received == 0:
                break  # no progress: reported by the caller rather than looped on
    profiler.report()
    return sides


def _engine_notes(sides: _Sides, mailbox_id: int, result: Result) -> None:
    receipts = Receipt.objects.filter(mailbox_id=mailbox_id)
    outcomes = Counter(receipts.values_list("outcome", flat=True))
    activities = EmailActivity.objects.filter(receipts__mailbox_id=mailbox_id).distinct().count()
    counted = ", ".join(f"{outcome} {count:,}" for outcome, count in outcomes.most_common())
    result.note(
        f"engine: {sides.engine.items:,} messages in {sides.engine.seconds:.1f} s, {len(sides.runs)} runs "
        f"({counted}); {activities:,} activities; "
        f"{sides.statements / max(sides.engine.items, 1):.1f} SQL statements per message"
    )


def _uids(stack: MailStack, account: MailUser) -> list[int]:
    client = stack.imap(account)
    try:
        client.select_folder("INBOX", readonly=True)
        return sorted(client.search("ALL"))
    finally:
        client.logout()


def _raw_pass(stack: MailStack, account: MailUser, uids: list[int], *, parse: bool) -> int:
    """These messages over imapclient (login, EXAMINE, BODY.PEEK[] 50 at a time, logout), parsed or not."""
    parser = BytesParser(policy=policy.default)
    count = 0
    client = stack.imap(account)
    try:
        client.select_folder("INBOX", readonly=True)
        for start in range(0, len(uids), FETCH_BATCH):
            for data in client.fetch(uids[start : start + FETCH_BATCH], ["BODY.PEEK[]"]).values():
                if parse:
                    parser.parsebytes(data[b"BODY[]"])
                count += 1
    finally:
        client.logout()
    return count


# --- B2 ------------------------------------------------------------------------------------------


def idle_poll(bench: Bench) -> Result:
    result = Result()
    accounts, ids = _synced_mailboxes(bench, result)
    raw, engine = Rate(), Rate()
    failures: list[SyncRun] = []
    profiler = Profiler(bench.profiled("B2"), "B2 idle polls (sync_incoming)", bench.options.top)
    statements = 0
    for _ in range(POLL_ROUNDS):
        for start in range(0, len(ids), POLL_GROUP):
            _raw_polls(bench.stack, accounts[start : start + POLL_GROUP], raw)
            # Loaded before the clock starts: B2 times sync_incoming.
            mailboxes = [fresh(pk) for pk in ids[start : start + POLL_GROUP]]
            with counting_queries() as queries, profiler.measuring():
                failures += _engine_polls(mailboxes, engine)
            statements += queries.count
    profiler.report()
    result.note(
        f"{len(ids)} mailboxes x {POLL_ROUNDS} rounds: engine {engine.seconds:.1f} s, "
        f"raw {raw.seconds:.1f} s; {statements / max(engine.items, 1):.1f} SQL statements per poll"
    )
    name = f"B2 idle poll, {len(ids)} mailboxes"
    if failures:
        result.note(
            f"{len(failures)} polls failed or found mail: {failures[0].outcome} {failures[0].error_text}"
        )
        result.figures.append(Figure(name, f"{len(failures)} polls not idle", failed=True))
        return result
    result.figures.append(
        ratio_figure(
            name,
            unit="polls/s",
            engine=engine.per_second,
            raw_label="login + EXAMINE + logout",
            raw=raw.per_second,
            target=B2_TARGET,
        )
    )
    return result


def _synced_mailboxes(bench: Bench, result: Result) -> tuple[list[MailUser], list[int]]:
    """Mailboxes holding one message each, synced once (not timed)."""
    accounts, ids = [], []
    for number in range(bench.options.mailboxes):
        account = bench.stack.add_user(f"b2-{number:04d}")
        one = IncomingCorpus(messages=1, owner=account.address, seed=bench.options.seed + number)
        bench.stack.deliver(account.address, one.messages())
        mailbox = user_mailbox(account, bench.profile, name=f"Poll {number:04d}")
        first = sync_incoming(mailbox=mailbox)
        if first.received != 1:
            raise RuntimeError(
                f"the first sync of {account.address} failed: {first.outcome} {first.error_text}"
            )
        accounts.append(account)
        ids.append(mailbox.pk)
    result.note(f"{len(ids)} mailboxes, one message each, synced once (not timed)")
    return accounts, ids


def _raw_polls(stack: MailStack, accounts: list[MailUser], rate: Rate) -> None:
    with rate.timing():
        for account in accounts:
            client = stack.imap(account)
            client.select_folder("INBOX", readonly=True)
            client.logout()
            rate.items += 1


def _engine_polls(mailboxes: list[Mailbox], rate: Rate) -> list[SyncRun]:
    failed = []
    with rate.timing():
        for mailbox in mailboxes:
            run = sync_incoming(mailbox=mailbox)
            rate.items += 1
            if run.outcome != SyncOutcome.SUCCESS or run.received:
                failed.append(run)
    return failed
