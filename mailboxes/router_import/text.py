"""The review and the result as plain text, for the import_email_router command."""

from __future__ import annotations

from typing import Any


def review_lines(review: dict[str, Any]) -> list[str]:
    counts = review["counts"]
    lines = [
        f"Email Router migration review; migrated mail is processed from {review['process_email_from']}."
    ]
    lines += _routers(review)
    for previous in review.get("previously_applied", []):
        lines.append(f"These files were migrated before (migration {previous['id']}, {previous['on']}).")
    lines += [f"Warning: {warning}" for warning in review["warnings"]]
    lines.append(
        f"Profiles to create: {counts['profiles_to_create']}; "
        f"existing profiles used: {counts['profiles_reused']}."
    )
    for profile in review["profiles"]:
        lines += _profile(profile)
    lines.append(
        f"Mailboxes to update: {counts['mailboxes_to_update']}; to create: {counts['mailboxes_to_create']}; "
        f"forward mailboxes to create: {counts['forward_mailboxes_to_create']}; "
        f"unchanged: {counts['mailboxes_unchanged']}."
    )
    lines += [_mailbox(mailbox) for mailbox in review["mailboxes"]]
    lines += _section("Not migrated", [f"{i['what']}: {i['reason']}" for i in review["not_migrated"]])
    lines += _section("People skipped", review["people_skipped"])
    lines += _section(
        "Not understood",
        [f"{i['router']}, {i['file']}, {i['where']}: {i['text']}" for i in review["not_understood"]],
    )
    lines += _section("How entries were read", review["notes"])
    return lines


def result_lines(result: dict[str, Any]) -> list[str]:
    def count(key: str) -> int:
        return len(result.get(key, []))

    enabled = sum(1 for row in result.get("mailboxes_unchanged", []) if row.get("enabled"))
    # What this migration changed is off until tested; mailboxes it left alone are as the database holds them.
    state = (
        f"Nothing it created or updated is enabled yet; {enabled} of the unchanged mailboxes already are."
        if enabled
        else "Nothing is enabled yet."
    )
    return [
        f"Migrated: {count('profiles_created')} profiles created ({count('profiles_reused')} existing used), "
        f"{count('mailboxes_created')} mailboxes created, {count('mailboxes_updated')} updated, "
        f"{count('forward_mailboxes_created')} forward mailboxes created, "
        f"{count('mailboxes_unchanged')} unchanged. {state}",
        "Next: test & enable the migrated mailboxes, queue mailboxes first (/mailboxes/ or "
        "manage.py test_and_enable), enter the credentials of those that need them, then switch "
        '"Process email using" to Server-Side Synchronization (System Settings > Email).',
    ]


def _routers(review: dict[str, Any]) -> list[str]:
    lines = []
    for router in review.get("routers", []):
        files = ", ".join(
            f"{f['name']} ({f['size']:,} bytes, sha256 {f['sha256'][:12]}…)" for f in router["files"]
        )
        lines.append(f"Router {router['name']}: {router['entries']} provider entries; {files}.")
        if router["ignored"]:
            lines.append(f"  Other files in its folder, ignored: {', '.join(router['ignored'])}.")
    return lines


def _profile(profile: dict[str, Any]) -> list[str]:
    if not profile["migrate"]:
        verb = "not migrated (answered No)"
    else:
        verb = "use existing" if profile["existing_profile"] else "create"
    lines = [
        f"  [{verb}] {profile['name']} ({profile['server_type_label']}), {profile['mailboxes']} mailboxes",
        f"      incoming: {profile['incoming']}",
        f"      outgoing: {profile['outgoing']}",
        f"      credentials: {profile['credentials']}",
    ]
    lines += [f"      from (incoming): {source}" for source in profile["incoming_sources"]]
    lines += [f"      from (outgoing): {source}" for source in profile["outgoing_sources"]]
    lines += [f"      warning: {warning}" for warning in profile["warnings"]]
    return lines


def _mailbox(mailbox: dict[str, Any]) -> str:
    extra = "; needs credentials" if mailbox["needs_credentials"] else ""
    kept = " (the router's threshold)" if mailbox["threshold_kept"] else ""
    changes = f"; {', '.join(mailbox['changes'])}" if mailbox["changes"] else ""
    folders = f"; reads {mailbox['folders'].lower()}" if mailbox.get("folders") else ""
    # An unchanged mailbox is shown as the database holds it, enabled directions included.
    enabled = mailbox.get("enabled")
    state = "" if enabled is None else f"; enabled: {', '.join(enabled)}" if enabled else "; not enabled"
    since = mailbox["process_email_from"] or "(not set)"
    return (
        f"  [{mailbox['action']}] {mailbox['owner_kind']} {mailbox['owner']} <{mailbox['email_address']}> "
        f"-> {mailbox['profile_name']}; process email from {since}{kept}"
        f"{folders}{extra}{state}{changes}"
    )


def _section(title: str, items: list[str]) -> list[str]:
    return [f"{title}: {len(items)}", *(f"  - {item}" for item in items)] if items else []
