"""manage.py test_and_enable ADDRESS…|--profile NAME|--all [--round-trip]: test and enable now."""

from __future__ import annotations

import operator
from functools import reduce
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db.models import Q, QuerySet

from mailboxes.models import Mailbox
from sync.checks import TestReport, mailbox_test_and_enable


class ProgressBar:
    """One line redrawn in place: mailboxes tested so far, passed and failed."""

    WIDTH = 30

    def __init__(self, out: OutputWrapper, total: int) -> None:
        self.out, self.total = out, total
        self.done = self.passed = 0

    def __call__(self, report: TestReport) -> None:
        self.done += 1
        self.passed += report.passed
        filled = self.WIDTH * self.done // max(self.total, 1)
        self.out.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {self.done}/{self.total} "
            f"(passed {self.passed}, failed {self.done - self.passed})",
            ending="",
        )
        self.out.flush()

    def close(self) -> None:
        if self.done:
            self.out.write("")


class Command(BaseCommand):
    help = "Test mailboxes' connections and enable the directions that pass (in this process)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("addresses", nargs="*", help="Email addresses of the mailboxes.")
        parser.add_argument("--profile", help="Every mailbox of this email server profile (by name).")
        parser.add_argument("--all", action="store_true", help="Every mailbox.")
        parser.add_argument(
            "--round-trip",
            action="store_true",
            help="Also send each mailbox a test message and see it arrive.",
        )
        parser.add_argument(
            "--progress",
            action="store_true",
            help="Show a progress bar (the default when output is a terminal).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        mailboxes = self._mailboxes(options)
        total = mailboxes.count()
        bar = ProgressBar(self.stdout, total) if options["progress"] or self.stdout.isatty() else None
        lines, failures = [], 0
        for mailbox in mailboxes.iterator():
            report = mailbox_test_and_enable(mailbox=mailbox, round_trip=options["round_trip"])
            failures += not report.passed
            lines.append(
                f"{mailbox.email_address}: {'passed' if report.passed else 'FAILED'} — {report.summary}"
            )
            if bar is not None:
                bar(report)
        if bar is not None:
            bar.close()
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(f"{total - failures} of {total} mailboxes passed.")
        if failures:
            raise CommandError(f"{failures} of {total} mailboxes failed the test.", returncode=1)

    def _mailboxes(self, options: dict[str, Any]) -> QuerySet[Mailbox]:
        chosen = [bool(options["addresses"]), bool(options["profile"]), options["all"]]
        if sum(chosen) != 1:
            raise CommandError("Name mailbox addresses, or --profile NAME, or --all (one of them).")
        mailboxes = Mailbox.objects.select_related("profile", "user", "queue").order_by("pk")
        if options["all"]:
            return mailboxes
        if options["profile"]:
            if not mailboxes.filter(profile__name=options["profile"]).exists():
                raise CommandError(f"No mailbox uses a profile named {options['profile']}.")
            return mailboxes.filter(profile__name=options["profile"])
        wanted = {address.lower() for address in options["addresses"]}
        found = mailboxes.filter(reduce(operator.or_, (Q(email_address__iexact=a) for a in wanted)))
        missing = wanted - {address.lower() for address in found.values_list("email_address", flat=True)}
        if missing:
            raise CommandError(f"No mailbox has the address {', '.join(sorted(missing))}.")
        return found
