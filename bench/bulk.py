"""Bulk load through PostgreSQL's COPY (psycopg 3's ``cursor.copy()``).

``copy_rows(Model, rows)`` writes dicts of the columns a row sets; every
other column gets the model field's default, prepared once, so a field another
change adds with a default needs nothing here. A new NOT NULL field without a
default stops the load with its name.
"""

from __future__ import annotations

import itertools
import operator
import time
from collections.abc import Iterable
from typing import Any

from django.core.management.color import no_style
from django.db import connection, models
from django.db.models.fields import NOT_PROVIDED


class MissingColumn(Exception):
    pass


def _default(field: models.Field[Any, Any]) -> Any:
    if field.null and field.default is NOT_PROVIDED:
        return None
    if field.default is NOT_PROVIDED and not field.empty_strings_allowed:
        raise MissingColumn(f"{field.model.__name__}.{field.name} has no default: give it a value")
    return field.get_db_prep_save(field.get_default(), connection)


def copy_rows(model: type[models.Model], rows: Iterable[dict[str, Any]]) -> int:
    """COPY ``rows`` into the model's table. Each row is a dict of field names (or
    attnames, ``owner_id``) to values, with the keys of the first row."""
    rows = iter(rows)
    first = next(rows, None)
    if first is None:
        return 0
    fields = list(model._meta.concrete_fields)
    by_name = {f.name: f for f in fields} | {f.attname: f for f in fields}
    given = [by_name[name] for name in first]
    rest = [f for f in fields if f not in given and not f.primary_key]
    defaults = tuple(_default(f) for f in rest)
    names = ", ".join(connection.ops.quote_name(f.column) for f in [*given, *rest])
    table = connection.ops.quote_name(model._meta.db_table)
    started, count = time.monotonic(), 0
    connection.ensure_connection()
    values = operator.itemgetter(*first)  # a row without one of the first row's keys fails loudly
    with connection.connection.cursor() as cursor, cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
        for row in itertools.chain([first], rows):
            copy.write_row((*values(row), *defaults))
            count += 1
    report(model._meta.db_table, count, time.monotonic() - started)
    return count


def report(table: str, rows: int | None, seconds: float) -> None:
    print(f"  {table:<28} {'' if rows is None else f'{rows:,} rows':>15}  {seconds:6.1f} s", flush=True)


def reset_sequences(models_: Iterable[type[models.Model]]) -> None:
    """After loading explicit ids, let the next ORM insert continue past them."""
    with connection.cursor() as cursor:
        for statement in connection.ops.sequence_reset_sql(no_style(), list(models_)):
            cursor.execute(statement)
