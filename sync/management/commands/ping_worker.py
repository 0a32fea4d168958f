"""Send `sync.tasks.ping` through the broker and wait for a worker's answer."""

from __future__ import annotations

from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sync.tasks import ping


class Command(BaseCommand):
    help = (
        "Check that a Celery worker consumes each queue: send the ping task to every queue "
        "(or those given with --queue) and wait for the results. Exits non-zero on timeout."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait per queue")
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            help="a queue to ping (repeatable; default: every configured queue)",
        )

    def handle(self, *args: Any, timeout: float, queues: list[str] | None, **options: Any) -> None:
        for queue in queues or [q.name for q in settings.CELERY_TASK_QUEUES]:
            result = ping.apply_async(queue=queue)
            try:
                answer = result.get(timeout=timeout, interval=0.2)
            except CeleryTimeoutError:
                raise CommandError(
                    f"No worker answered on queue {queue!r} within {timeout:g}s "
                    f"(broker {settings.CELERY_BROKER_URL.split('://')[0]}://)."
                ) from None
            finally:
                result.forget()
            self.stdout.write(f"queue {queue}: {answer}")
        self.stdout.write(self.style.SUCCESS("The worker answered."))
