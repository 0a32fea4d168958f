"""The one place engine code reads the time, so tests can move it (time-machine).

SQL that compares times takes ``now()`` from here as a parameter, never the
database clock, so a moved clock moves every comparison with it.

It is also where the rule for a clock that jumps lives. Work waits on times
stored ahead of now: a schedule's next due time, a postponement after errors or
a server's "retry after", an email's retry backoff, a lease, a send claim. Each
has a longest wait the engine ever sets (its longest legitimate wait). A clock
set back by hours would leave those times hours ahead, and the work stalled as
long as the jump; so:

- a **wait** (a due or retry time, a postponement) further ahead of now than
  its longest wait has come: the clock went back since it was written (``came``);
- an **expiry** that guards against doing work twice (a lease, a send claim)
  further ahead than its length is pulled back to now + its length (``rebase``):
  it lapses one full length after the jump is seen, so a run still alive keeps
  it as long as it was ever promised, and one that died lets go as usual.

A clock set forward makes waits come early (one extra run, harmless) and
expiries lapse early; the lease check each run makes before it starts, and the
conditional claims of messages and emails, keep that from doubling anything.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import DateTimeField, DurationField, ExpressionWrapper, F, Model, Q, QuerySet, Value
from django.db.models.expressions import Combinable
from django.utils import timezone

# A longest wait: fixed, or an SQL expression of the row (an email's backoff grows with its attempts).
Longest = timedelta | Combinable

# A time written by a process whose now ran a little ahead of the reader's is no clock set back:
# a run released while a dispatcher tick that read its now when it began is still going (at
# 100,000 mailboxes, during every tick: B6/B8 saw idle mailboxes polled twice), or two machines'
# clocks a few seconds apart.
SLACK = timedelta(minutes=1)


def now() -> datetime:
    return timezone.now()


def came(field: str, *, now: datetime, longest: Longest, at_least: timedelta | None = None) -> Q:
    """Rows whose wait stored in ``field`` is over: its time has come, or it lies
    further ahead than ``longest`` and ``SLACK`` (the clock went back since it was written).
    ``at_least``, a fixed lower bound of a per-row ``longest``, lets an index on
    ``field`` find those rows (a comparison with a per-row expression cannot)."""
    beyond = Q(**{f"{field}__gt": _ahead(now + SLACK, longest)})
    if at_least is not None:
        beyond &= Q(**{f"{field}__gt": now + SLACK + at_least})
    return Q(**{f"{field}__lte": now}) | beyond


def has_come(at: datetime, *, now: datetime, longest: timedelta) -> bool:
    """``came`` for one time already read."""
    return at <= now or at > now + SLACK + longest


def rebase(rows: QuerySet[Model], field: str, *, now: datetime, length: timedelta) -> int:
    """Pull the expiries in ``field`` further ahead than ``length`` (and ``SLACK``) back to
    now + ``length``; how many there were (none unless the clock went back)."""
    until = now + length
    return rows.filter(**{f"{field}__gt": until + SLACK}).update(**{field: until})


def minutes(field: str) -> Combinable:
    """A row's count of minutes in ``field`` as an interval, for a longest wait a row sets itself."""
    return ExpressionWrapper(F(field) * Value(timedelta(minutes=1)), output_field=DurationField())


def _ahead(now: datetime, longest: Longest) -> datetime | Combinable:
    if isinstance(longest, timedelta):
        return now + longest
    wait = ExpressionWrapper(longest, output_field=DurationField())
    return ExpressionWrapper(Value(now, output_field=DateTimeField()) + wait, output_field=DateTimeField())
