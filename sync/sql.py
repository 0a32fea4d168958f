"""SQL written by hand on the hot paths (address resolution, an idle poll's one
statement), where building querysets costs more than the statements: the
tables' and columns' names come from the models, quoted; values are parameters."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.db.models.sql import InsertQuery

# A statement or condition written by hand, and its parameters.
Condition = tuple[str, list[str | int | datetime | None]]


@functools.lru_cache(maxsize=256)
def quoted(model: type[Model], *fields: str) -> tuple[str, ...]:
    """The model's table and the fields' columns, quoted (only these identifiers
    are written into a statement). Remembered: an idle poll asks for the same
    few on every run."""
    columns = []
    for name in fields:
        field = model._meta.get_field(name)
        if not isinstance(field, Field) or not field.column:
            raise TypeError(f"{model.__name__}.{name} is not a column")
        columns.append(connection.ops.quote_name(field.column))
    return (connection.ops.quote_name(model._meta.db_table), *columns)


def insert_returning_pk(obj: Model) -> Condition:
    """The INSERT that ``obj.save()`` would send for a new row, returning its primary
    key, for a caller to put into a statement of its own (a WITH clause)."""
    statement, fields = _insert(type(obj), connection.vendor)
    return statement, [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]


@functools.lru_cache(maxsize=16)
def _insert(model: type[Model], vendor: str) -> tuple[str, list[Field[Any, Any]]]:
    """The statement, compiled once per model as Django compiles it (an idle poll
    writes the same one every time; ``vendor`` keys it)."""
    meta = model._meta
    fields = [f for f in meta.local_concrete_fields if not f.primary_key]
    query = InsertQuery(model)
    query.insert_values(fields, [model()])
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [meta.pk]
    ((statement, _),) = compiler.as_sql()
    return statement, fields
