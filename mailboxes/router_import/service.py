"""Email Router migrations: upload, review, choose profiles, apply or abandon.

The only write-side functions of the importer; the wizard, the API and the
command each call these. Applying is one transaction: it succeeds whole or
changes nothing. Uploaded files are kept encrypted only while the migration is
pending; their names, sizes and checksums, the review and the result stay.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.utils import timezone

from mailboxes.models import RouterMigration, RouterMigrationFile, RouterMigrationState
from mailboxes.router_import.apply import apply_plan
from mailboxes.router_import.documents import RouterDocuments, read_router
from mailboxes.router_import.errors import RouterImportError, RouterMigrationConflict
from mailboxes.router_import.files import RouterFile, RouterFiles, RouterUpload, read_uploads
from mailboxes.router_import.plan import build_plan
from mailboxes.router_import.review import as_review

logger = logging.getLogger(__name__)
User = AbstractBaseUser | AnonymousUser | None


def router_review(*, routers: list[RouterUpload]) -> dict[str, Any]:
    """The review of these files against the database as it is, writing nothing (a dry run)."""
    files = read_uploads(routers)
    return _review(files, _read_all(files), selection={})


def router_migration_create(*, routers: list[RouterUpload], created_by: User, source: str) -> RouterMigration:
    """Check, parse and review the routers' files, and keep them (encrypted) for
    the migration. Raises RouterImportError, having stored nothing, for bad input."""
    files = read_uploads(routers)
    review = _review(files, _read_all(files), selection={})
    fingerprint = _fingerprint(files)
    review["previously_applied"] = [
        {"id": pk, "on": on.isoformat() if on else None}
        for pk, on in RouterMigration.objects.filter(
            fingerprint=fingerprint, state=RouterMigrationState.APPLIED
        ).values_list("pk", "finished_on")
    ]
    with transaction.atomic():
        migration = RouterMigration.objects.create(
            created_by=_user(created_by),
            source=source,
            fingerprint=fingerprint,
            routers=[{"name": router.name, "ignored": router.ignored} for router in files],
            review=review,
        )
        RouterMigrationFile.objects.bulk_create(
            _stored(migration, file) for router in files for file in router.files.values()
        )
    logger.info("Email Router migration %s uploaded: %s", migration.pk, review["counts"])
    return migration


def router_migration_select(*, migration: RouterMigration, selection: dict[str, bool]) -> RouterMigration:
    """Record which merged profiles to migrate ("Migrate server profile: Yes / No")
    and review again against the database as it is now."""
    with transaction.atomic():
        locked = _pending(migration)
        locked.selection = _checked_selection(locked, selection)
        files = _stored_files(locked)
        locked.review = {**_review(files, _read_all(files), selection=locked.selection), **_kept(locked)}
        locked.save(update_fields=["selection", "review", "modified_on"])
    return locked


def router_migration_apply(
    *, migration: RouterMigration, by: User, selection: dict[str, bool] | None = None
) -> RouterMigration:
    """Create the selected profiles and configure the mailboxes, all in one
    transaction; then forget the files. Raises RouterImportError when nothing
    was changed (already finished, or the database refused a step)."""
    try:
        with transaction.atomic():
            applied = _apply(migration, by, selection)
    except (ValidationError, DatabaseError) as error:
        message = f"Nothing was migrated: {_describe(error)}"
        RouterMigration.objects.filter(pk=migration.pk).update(apply_error=message)
        logger.warning("Email Router migration %s not applied: %s", migration.pk, message)
        raise RouterMigrationConflict(message) from error
    logger.info("Email Router migration %s applied: %s", applied.pk, _counts(applied.result))
    return applied


def router_migration_abandon(*, migration: RouterMigration, by: User | None) -> RouterMigration:
    """Give the migration up: nothing is migrated and its files are deleted."""
    with transaction.atomic():
        locked = _pending(migration)
        _finish(locked, RouterMigrationState.ABANDONED, by)
        locked.save()
    logger.info("Email Router migration %s abandoned", locked.pk)
    return locked


def _apply(migration: RouterMigration, by: User, selection: dict[str, bool] | None) -> RouterMigration:
    locked = _pending(migration)
    if selection is not None:
        locked.selection = _checked_selection(locked, selection)
    files = _stored_files(locked)
    plan = build_plan(_read_all(files), selection=locked.selection, now=timezone.now())
    locked.result = apply_plan(plan, migration_id=locked.pk)
    locked.review = {**as_review(plan), **_kept(locked)}
    locked.apply_error = ""
    _finish(locked, RouterMigrationState.APPLIED, by)
    locked.save()
    return locked


# --- files ----------------------------------------------------------------------------------------


def _read_all(files: list[RouterFiles]) -> list[RouterDocuments]:
    """Every router read; the problems of all of them reported together."""
    documents, problems = [], []
    for router in files:
        try:
            documents.append(read_router(router))
        except RouterImportError as error:
            problems += error.problems
    if problems:
        raise RouterImportError(problems)
    return documents


def _stored(migration: RouterMigration, file: RouterFile) -> RouterMigrationFile:
    return RouterMigrationFile(
        migration=migration,
        router=file.router,
        router_name=file.router_name,
        name=file.name,
        uploaded_name=file.uploaded_name[:255],
        size=file.size,
        sha256=file.sha256,
        content=base64.b64encode(file.data).decode("ascii"),
    )


def _stored_files(migration: RouterMigration) -> list[RouterFiles]:
    routers: dict[int, RouterFiles] = {}
    for stored in migration.files.all():
        content = stored.content.reveal()
        if not content:
            raise RouterImportError("This migration's files are gone; upload them again.")
        data = base64.b64decode(content)
        router = routers.setdefault(stored.router, RouterFiles(stored.router, stored.router_name, {}))
        router.files[stored.name] = RouterFile(
            stored.router, stored.router_name, stored.name, stored.uploaded_name, data
        )
    for position, router in routers.items():
        router.ignored = list(migration.routers[position - 1].get("ignored", []))
    return [routers[position] for position in sorted(routers)]


def _fingerprint(files: list[RouterFiles]) -> str:
    sums = sorted(file.sha256 for router in files for file in router.files.values())
    return hashlib.sha256("\n".join(sums).encode()).hexdigest()


# --- reviews --------------------------------------------------------------------------------------


def _review(
    files: list[RouterFiles], documents: list[RouterDocuments], *, selection: dict[str, bool]
) -> dict[str, Any]:
    review = as_review(build_plan(documents, selection=selection, now=timezone.now()))
    review["routers"] = [
        {
            "name": router.name,
            "files": [
                {"name": f.name, "uploaded_name": f.uploaded_name, "size": f.size, "sha256": f.sha256}
                for f in router.files.values()
            ],
            "ignored": router.ignored,
            "entries": len(document.entries),
        }
        for router, document in zip(files, documents, strict=True)
    ]
    return review


def _kept(migration: RouterMigration) -> dict[str, Any]:
    """What a new review carries over from the first one."""
    return {
        key: migration.review[key] for key in ("routers", "previously_applied") if key in migration.review
    }


def _checked_selection(migration: RouterMigration, selection: dict[str, bool]) -> dict[str, bool]:
    known = {profile["key"] for profile in migration.review.get("profiles", [])}
    unknown = sorted(set(selection) - known)
    if unknown:
        raise RouterImportError(f"No merged profile has the key {', '.join(unknown)}.")
    if not all(isinstance(value, bool) for value in selection.values()):
        raise RouterImportError("Say true or false for each profile.")
    return {**migration.selection, **selection}


# --- state ----------------------------------------------------------------------------------------


def _pending(migration: RouterMigration) -> RouterMigration:
    locked = RouterMigration.objects.select_for_update().get(pk=migration.pk)
    if not locked.is_pending:
        raise RouterMigrationConflict(f"This migration is already {locked.get_state_display().lower()}.")
    return locked


def _finish(migration: RouterMigration, state: str, by: User | None) -> None:
    migration.state = state
    migration.finished_on = timezone.now()
    migration.finished_by = _user(by)
    migration.files.update(content="")


def _user(user: User | None) -> Any:
    return user if user is not None and user.is_authenticated else None


def _describe(error: ValidationError | DatabaseError) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(error.messages)
    said = str(error).strip()
    return f"the database refused a step ({said.splitlines()[0] if said else type(error).__name__})"


def _counts(result: dict[str, Any]) -> dict[str, int]:
    return {key: len(value) for key, value in result.items() if isinstance(value, list)}
