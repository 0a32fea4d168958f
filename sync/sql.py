"""SQL written by hand on the hot paths (address resolution, an idle poll's one
statement), where building querysets costs more than the statements: the
tables' and columns' names come from the models, quoted; values are parameters."""

from __future__ import annotations

from datetime import datetime

from django.db import connection
from django.db.models import Field, Model

# A statement or condition written by hand, and its parameters.
Condition = tuple[str, list[str | int | datetime | None]]


def quoted(model: type[Model], *fields: str) -> tuple[str, ...]:
    """The model's table and the fields' columns, quoted (only these identifiers
    are written into a statement)."""
    columns = []
    for name in fields:
        field = model._meta.get_field(name)
        if not isinstance(field, Field) or not field.column:
            raise TypeError(f"{model.__name__}.{name} is not a column")
        columns.append(connection.ops.quote_name(field.column))
    return (connection.ops.quote_name(model._meta.db_table), *columns)
