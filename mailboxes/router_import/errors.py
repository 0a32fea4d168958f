"""The one error the importer raises for input it refuses."""

from __future__ import annotations


class RouterImportError(Exception):
    """Files that cannot be migrated, or a migration that cannot go on. ``problems``
    are whole sentences naming the router and file; nothing was changed."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__(" ".join(self.problems))


class RouterMigrationConflict(RouterImportError):
    """The migration cannot go on as asked: it is already applied or abandoned,
    or the database refused a step of applying it (and nothing was changed)."""
