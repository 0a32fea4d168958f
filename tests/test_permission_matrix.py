"""The permission matrix, generated from the URL configuration.

Every route the project serves must have a rule here; a new route without one
fails ``test_every_route_has_a_rule``. Each rule says, per HTTP method, which
personas (tests/personas.py) may act, and for detail routes on which objects.
The matrix then calls every route as every persona and checks:

- allowed: the request is served (200/201/204, or a 400/409 for the empty body
  the probe sends) and a list shows exactly the records the persona may see;
- denied: 401 for anonymous, 403 or 404 otherwise (405 for a method the
  route does not serve), and nothing changed.

An action route (``POST /alerts/{id}/acknowledge/``) is probed on every object
of its rule: allowed personas get 200; denied ones get 401/403/404 and the
object's row stays exactly as it was.

A page is fetched with GET: allowed personas get 200 (or the rule's status for
them); anonymous visitors are sent to a login page, other denied ones get
403/404. A form route (a page's POST that names mailboxes in its body, as htmx
sends it) is probed like an action, once per object; anonymous visitors are
sent to the login page, and no test of a mailbox is queued by a denied persona.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib.admin import site as admin_site
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from crm.models import EmailActivity
from mailboxes.models import SyncFilter, SyncFilterTemplate
from sync.models import ActFieldSetting, MailboxTest
from tests import factories
from tests.mailboxes.router_import.routers import pending_migration
from tests.personas import PERSONA_NAMES, World

Access = Callable[[str, str | None], bool]
MEMBERS = {"admin", "alice", "bob", "quinn"}


def admin(viewer: str, owner: str | None) -> bool:
    return viewer == "admin"


def owner_or_admin(viewer: str, owner: str | None) -> bool:
    return viewer == "admin" or viewer == owner


def members(viewer: str, owner: str | None) -> bool:
    return viewer in MEMBERS


def authenticated(viewer: str, owner: str | None) -> bool:
    return viewer != "anonymous"


def public(viewer: str, owner: str | None) -> bool:
    return True


def nobody(viewer: str, owner: str | None) -> bool:
    return False


Objects = Callable[[World], list[tuple[models.Model, str | None]]]


def persona_objects(attribute: str) -> Objects:
    def objects(world: World) -> list[tuple[models.Model, str | None]]:
        return [
            (getattr(persona, attribute), name)
            for name, persona in world.personas.items()
            if getattr(persona, attribute) is not None
        ]

    return objects


def mailboxes(world: World) -> list[tuple[models.Model, str | None]]:
    return [*persona_objects("mailbox")(world), (world.queue_mailbox, "quinn")]


def crm_users(world: World) -> list[tuple[models.Model, str | None]]:
    return persona_objects("crm_user")(world)


def queues(world: World) -> list[tuple[models.Model, str | None]]:
    return [(world.queue, "quinn")]


def profiles(world: World) -> list[tuple[models.Model, str | None]]:
    return [(world.profile, None)]


def sync_records(attribute: str) -> Objects:
    """One engine row of each persona's mailbox and of the queue's mailbox (quinn's)."""

    def objects(world: World) -> list[tuple[models.Model, str | None]]:
        assert world.queue_sync is not None
        return [
            *((getattr(p.sync, attribute), name) for name, p in world.personas.items() if p.sync),
            (getattr(world.queue_sync, attribute), "quinn"),
        ]

    return objects


def alerts(world: World) -> list[tuple[models.Model, str | None]]:
    # An alert about the profile belongs to no mailbox: administrators only.
    assert world.profile_alert is not None
    return [*sync_records("alert")(world), (world.profile_alert, None)]


def outcome_unknown_emails(world: World) -> list[tuple[models.Model, str | None]]:
    """An email of each persona's mailbox (and the queue's) whose send was interrupted."""
    senders = [(p.crm_user, None, name) for name, p in world.personas.items() if p.mailbox and p.crm_user]
    senders.append((None, world.queue, "quinn"))
    found: list[tuple[models.Model, str | None]] = []
    for user, queue, name in senders:
        email = factories.email(status=EmailActivity.Status.OUTCOME_UNKNOWN, owner=user or world.queue.owner)
        factories.party(email=email, user=user, queue=queue)
        found.append((email, name))
    return found


def activities(kind: str) -> Objects:
    """Each member's own appointment or task, made on first use and kept on the persona
    (the world has none of its own)."""

    def objects(world: World) -> list[tuple[models.Model, str | None]]:
        found: list[tuple[models.Model, str | None]] = []
        for name, persona in world.personas.items():
            if persona.crm_user is None:
                continue
            if kind not in persona.extra:
                make = factories.appointment if kind == "appointment" else factories.task
                persona.extra[kind] = make(owner=persona.crm_user, subject=f"{name}'s {kind}")
            found.append((persona.extra[kind], name))
        return found

    return objects


def sync_filters(world: World) -> list[tuple[models.Model, str | None]]:
    """Every mailbox's sync filters (the organization's defaults, copied onto each member's
    mailbox), each its mailbox user's."""
    owners = {p.crm_user.pk: name for name, p in world.personas.items() if p.crm_user is not None}
    return [(f, owners.get(f.mailbox.user_id or 0)) for f in SyncFilter.objects.select_related("mailbox")]


def sync_filter_defaults(world: World) -> list[tuple[models.Model, str | None]]:
    return [(template, None) for template in SyncFilterTemplate.objects.all()]


def rollouts(world: World) -> list[tuple[models.Model, str | None]]:
    assert world.rollout is not None
    return [(world.rollout, None)]


def router_migrations(world: World) -> list[tuple[models.Model, str | None]]:
    """One pending Email Router migration, made on first use: administrators only."""
    return [(pending_migration(), None)]


@dataclass
class Rule:
    """Who may use a route, per method. ``objects`` makes a detail route's URLs
    and tells whose each object is; a list route checks visibility with it."""

    methods: dict[str, Access]
    objects: Objects | None = None
    kind: str = "api"  # "api" | "page" | "admin" | "action" | "form" | "object-page"
    list_of: Objects | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def crud(
    collection: Objects, *, read: Access, write: Access, create: Access, delete: Access
) -> dict[str, Rule]:
    """The list and detail rules of one router-registered viewset."""
    return {
        "list": Rule({"GET": members if read is not admin else admin, "POST": create}, list_of=collection),
        "detail": Rule(
            {"GET": read, "PATCH": write, "PUT": write, "DELETE": delete},
            objects=collection,
        ),
    }


def viewset_rules(basename: str, **kwargs: Any) -> dict[str, Rule]:
    return {f"{basename}-{suffix}": rule for suffix, rule in crud(**kwargs).items()}


def read_only_rules(basename: str, collection: Objects, *, read: Access) -> dict[str, Rule]:
    """A list and detail that only read; writing methods are refused to everyone."""
    return {
        f"{basename}-list": Rule({"GET": members, "POST": nobody}, list_of=collection),
        f"{basename}-detail": Rule(
            {"GET": read, "PATCH": nobody, "PUT": nobody, "DELETE": nobody}, objects=collection
        ),
    }


def action_rule(collection: Objects, *, allowed: Access) -> Rule:
    """A POST on one object (``{id}/acknowledge/``); GET is not served there."""
    return Rule({"POST": allowed, "GET": nobody}, objects=collection, kind="action")


def owned_records(attribute: str) -> dict[str, Any]:
    return {
        "collection": persona_objects(attribute),
        "read": owner_or_admin,
        "write": owner_or_admin,
        "create": members,
        "delete": owner_or_admin,
    }


def owned_activities(kind: str) -> dict[str, Any]:
    return {**owned_records(kind), "collection": activities(kind)}


RULES: dict[str, Rule] = {
    "api-root": Rule({"GET": authenticated}),
    "schema": Rule({"GET": public}, kind="page"),
    "api-docs": Rule({"GET": public}, kind="page"),
    "organization-settings": Rule({"GET": admin, "PATCH": admin, "PUT": admin}),
    **viewset_rules("profile", collection=profiles, read=admin, write=admin, create=admin, delete=admin),
    **viewset_rules(
        "mailbox", collection=mailboxes, read=owner_or_admin, write=owner_or_admin, create=admin, delete=admin
    ),
    **viewset_rules(
        "crmuser", collection=crm_users, read=owner_or_admin, write=owner_or_admin, create=admin, delete=admin
    ),
    **viewset_rules("queue", collection=queues, read=owner_or_admin, write=admin, create=admin, delete=admin),
    **viewset_rules("account", **owned_records("account")),
    **viewset_rules("contact", **owned_records("contact")),
    **viewset_rules("lead", **owned_records("lead")),
    # Appointments and tasks: a user's own, as accounts, contacts and leads (crm/api.py).
    **viewset_rules("appointment", **owned_activities("appointment")),
    **viewset_rules("task", **owned_activities("task")),
    **viewset_rules(
        "email",
        collection=persona_objects("email"),
        read=owner_or_admin,
        write=nobody,
        create=members,
        delete=nobody,
    ),
    **read_only_rules("alert", alerts, read=owner_or_admin),
    "alert-acknowledge": action_rule(alerts, allowed=owner_or_admin),
    "alert-resolve": action_rule(alerts, allowed=owner_or_admin),
    # Test & enable: administrators, and a mailbox's own user (a queue owner also the
    # queue's), who may set its credentials too; others get 404 (sync/checks_api.py).
    "mailbox-test-and-enable": action_rule(mailboxes, allowed=owner_or_admin),
    # Approval needs mailboxes.approve_email, which only administrators hold here.
    "mailbox-approve": action_rule(mailboxes, allowed=admin),
    "mailbox-reject": action_rule(mailboxes, allowed=admin),
    "mailbox-apply-default-email-settings": Rule({"POST": admin, "GET": nobody}),
    "profile-test-connection": action_rule(profiles, allowed=admin),
    "profile-test-and-enable-mailboxes": action_rule(profiles, allowed=admin),
    **read_only_rules("receipt", sync_records("receipt"), read=owner_or_admin),
    **read_only_rules("quarantined-message", sync_records("quarantined"), read=owner_or_admin),
    "quarantined-message-reprocess": action_rule(sync_records("quarantined"), allowed=owner_or_admin),
    **read_only_rules("sync-run", sync_records("sync_run"), read=owner_or_admin),
    # Appointments, contacts and tasks (sync/api.py): a mailbox's links and item problems, as its runs.
    **read_only_rules("act-problem", sync_records("act_problem"), read=owner_or_admin),
    **read_only_rules("act-link", sync_records("act_link"), read=owner_or_admin),
    # The organization's field directions: every member reads them, administrators set them
    # (fields are addressed entity.field, probed by _check_field_direction).
    "act-field-setting-list": Rule({"GET": members, "POST": nobody}),
    "act-field-setting-detail": Rule(
        {"GET": members, "PATCH": admin, "PUT": admin, "DELETE": nobody},
        kind="field-direction",
        extra={"keys": ["appointment.location", "contact.job_title"]},
    ),
    # Rollouts test & enable many mailboxes at once: administrators only.
    "rollout-list": Rule({"GET": admin, "POST": admin}, list_of=rollouts),
    "rollout-detail": Rule(
        {"GET": admin, "PATCH": nobody, "PUT": nobody, "DELETE": nobody}, objects=rollouts
    ),
    "rollout-cancel": action_rule(rollouts, allowed=admin),
    # Email Router migrations: administrators only (mailboxes/router_api.py).
    # (The list's rows are checked in tests/mailboxes/router_import/test_api.py: the probe's
    # migration is made on first use, after the list was asked for.)
    "router-migration-list": Rule({"GET": admin, "POST": admin}),
    "router-migration-detail": Rule(
        {"GET": admin, "PATCH": nobody, "PUT": nobody, "DELETE": nobody}, objects=router_migrations
    ),
    "router-migration-apply": action_rule(router_migrations, allowed=admin),
    "router-migration-abandon": action_rule(router_migrations, allowed=admin),
    # Sync filters (mailboxes/sync_filter_api.py): a user's own mailbox's, any for administrators;
    # the organization's defaults are administrators' only.
    **viewset_rules(
        "sync-filter",
        collection=sync_filters,
        read=owner_or_admin,
        write=owner_or_admin,
        create=members,
        delete=owner_or_admin,
    ),
    "sync-filter-count": Rule({"GET": members, "POST": nobody}),
    **viewset_rules(
        "sync-filter-default",
        collection=sync_filter_defaults,
        read=admin,
        write=admin,
        create=admin,
        delete=admin,
    ),
    # The admin site: administrators only; everyone else is sent to its login.
    "admin:*": Rule({"GET": admin}, kind="admin"),
    # Signed-in administrators are sent on from the login page to the index.
    "admin:login": Rule({"GET": public}, kind="page", extra={"status": {"admin": 302}}),
    # Logging out takes a POST; a GET does nothing for anyone.
    "admin:logout": Rule({"GET": nobody}, kind="page", extra={"denied": {302, 405}}),
    # The web UI (console/urls.py). Pages list only what the viewer may see (tests/sync/test_views.py).
    "login": Rule({"GET": public}, kind="page"),
    "logout": Rule({"GET": nobody}, kind="page"),
    # Graph's webhook takes only POSTs, each notification proving itself with its
    # subscription's clientState, not a sign-in (tests/sync/push/test_graph_push.py).
    "push-graph-webhook": Rule({"GET": nobody}, kind="page"),
    "dashboard": Rule({"GET": members}, kind="page"),
    "mailboxes": Rule({"GET": members}, kind="page"),
    "mailboxes-progress": Rule({"GET": members}, kind="page"),
    "alerts": Rule({"GET": members}, kind="page"),
    # The alert wall's buttons (console/views/alerts.py): whoever sees the alert, or the
    # mailbox that sent the email; a profile's alerts are administrators' only.
    "alert-page-acknowledge": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=alerts, kind="object-page"
    ),
    "alert-page-resolve": Rule({"POST": owner_or_admin, "GET": nobody}, objects=alerts, kind="object-page"),
    "outcome-unknown-resend": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=outcome_unknown_emails, kind="object-page"
    ),
    "outcome-unknown-mark-sent": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=outcome_unknown_emails, kind="object-page"
    ),
    "profiles": Rule({"GET": admin}, kind="page"),
    # Profile and email settings forms (console/views/profiles.py, settings.py): administrators only.
    "profiles-new": Rule({"GET": admin, "POST": admin}, kind="page"),
    "profiles-edit": Rule({"GET": admin, "POST": admin}, objects=profiles, kind="object-page"),
    "profiles-test-connection": Rule({"POST": admin, "GET": nobody}, objects=profiles, kind="object-page"),
    "profiles-test-and-enable-mailboxes": Rule(
        {"POST": admin, "GET": nobody}, objects=profiles, kind="object-page"
    ),
    # The Email Router migration wizard (console/views/migration.py): administrators only.
    "migration": Rule({"GET": admin, "POST": admin}, kind="page"),
    "migration-detail": Rule({"GET": admin}, objects=router_migrations, kind="object-page"),
    "migration-profiles": Rule({"GET": admin, "POST": admin}, objects=router_migrations, kind="object-page"),
    "migration-review": Rule({"GET": admin}, objects=router_migrations, kind="object-page"),
    "migration-start": Rule({"POST": admin, "GET": nobody}, objects=router_migrations, kind="object-page"),
    "migration-abandon": Rule({"POST": admin, "GET": nobody}, objects=router_migrations, kind="object-page"),
    "migration-rollout": Rule({"POST": admin, "GET": nobody}, objects=router_migrations, kind="object-page"),
    "email-settings": Rule({"GET": admin, "POST": admin}, kind="page"),
    "act-field-settings": Rule({"GET": admin, "POST": admin}, kind="page"),
    # Load balancers' check: public. The world has no worker heartbeat, so everyone
    # gets 503 (tests/sync/test_health.py has the 200s).
    "health": Rule({"GET": public}, kind="page", extra={"status": dict.fromkeys(PERSONA_NAMES, 503)}),
    # Monitoring: an administrator's session or the bearer token (tests/sync/test_health.py);
    # no token is configured here, so everyone else is told the route does not exist.
    "health-status": Rule({"GET": admin}, kind="page", extra={"denied": {404}}),
    "mailboxes-test-and-enable": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=mailboxes, kind="form"
    ),
    # A mailbox's own credentials from its row on /mailboxes/ (as the API's owner PATCH).
    "mailboxes-credentials": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=mailboxes, kind="object-page"
    ),
    # The rollout plan's "Cancel rollout": administrators only, as the API's rollout-cancel.
    "mailboxes-rollout-cancel": Rule({"POST": admin, "GET": nobody}, objects=rollouts, kind="object-page"),
    # The mailbox page and what it offers (console/views/mailbox_detail.py): its owner
    # (a queue owner for the queue's) and administrators; anyone else gets 404.
    "mailbox-page": Rule({"GET": owner_or_admin}, objects=mailboxes, kind="object-page"),
    "mailbox-page-details": Rule({"GET": owner_or_admin}, objects=mailboxes, kind="object-page"),
    # Connect (console/views/oauth_connect.py): the mailbox's owner and administrators; the
    # provider's callback answers 400 to a member without a Connect under way in the session.
    "mailbox-oauth-connect": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=mailboxes, kind="object-page"
    ),
    "mailbox-oauth-callback": Rule(
        {"GET": members}, kind="page", extra={"status": dict.fromkeys(PERSONA_NAMES, 400)}
    ),
    "mailbox-page-quarantined-eml": Rule(
        {"GET": owner_or_admin}, objects=sync_records("quarantined"), kind="object-page"
    ),
    "mailbox-page-quarantined-reprocess": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=sync_records("quarantined"), kind="object-page"
    ),
    # A mailbox's sync filters page and its forms (console/views/sync_filters.py): the mailbox's
    # user and administrators (a queue owner sees that the queue's mailbox has none).
    "mailbox-sync-filters": Rule({"GET": owner_or_admin}, objects=mailboxes, kind="object-page"),
    "mailbox-sync-filters-add": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=mailboxes, kind="object-page"
    ),
    "sync-filter-edit": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=sync_filters, kind="object-page"
    ),
    "sync-filter-delete": Rule(
        {"POST": owner_or_admin, "GET": nobody}, objects=sync_filters, kind="object-page"
    ),
    # Received email: every member, each seeing their own mailboxes' (tests/sync/test_emails_page.py).
    "emails": Rule({"GET": members}, kind="page"),
    # Approving needs mailboxes.approve_email: the Administrators group has it.
    "mailboxes-approval": Rule(
        {"POST": admin, "GET": nobody},
        objects=mailboxes,
        kind="form",
        extra={"data": {"decision": "approve"}},
    ),
}
# Owners may PATCH their own user record and mailbox (personal options,
# credentials), but replacing the whole record with PUT is for administrators.
RULES["crmuser-detail"].methods["PUT"] = admin
RULES["mailbox-detail"].methods["PUT"] = admin


def _walk(patterns: list[Any], prefix: str = "", namespace: str | None = None) -> Iterator[tuple[str, str]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(
                pattern.url_patterns, prefix + str(pattern.pattern), pattern.namespace or namespace
            )
        elif isinstance(pattern, URLPattern):
            name = pattern.name or f"<unnamed {prefix + str(pattern.pattern)}>"
            yield (f"{namespace}:{name}" if namespace else name), prefix + str(pattern.pattern)


ROUTES = sorted(set(_walk(get_resolver().url_patterns)))


def rule_for(route_name: str) -> Rule | None:
    if route_name in RULES:
        return RULES[route_name]
    namespace = route_name.split(":", 1)[0] if ":" in route_name else None
    return RULES.get(f"{namespace}:*") if namespace else None


def test_every_route_has_a_rule():
    missing = [f"{name} ({pattern})" for name, pattern in ROUTES if rule_for(name) is None]
    assert not missing, "Routes without a permission rule: " + ", ".join(missing)


# --- probing -----------------------------------------------------------------------------------


def _client(world: World, persona: str) -> Client:
    client = Client()
    login = world[persona].login
    if login is not None:
        client.force_login(login)
    return client


def _admin_urls(world: World, route_name: str, pattern: str) -> list[str]:
    """Concrete URLs for an admin route, filling its arguments from the world."""
    name = route_name.split(":", 1)[1]
    if name.startswith("<unnamed"):
        return ["/admin/no-such-page/"] if "(?P<url>" in pattern else []
    if name == "view_on_site":
        account = world["alice"].account
        return [
            reverse("admin:view_on_site", args=[ContentType.objects.get_for_model(account).pk, account.pk])
        ]
    if name == "app_list":
        return [
            reverse("admin:app_list", args=[label])
            for label in re.findall(r"[a-z_]+", pattern.split("(?P<app_label>")[1])
        ]
    if "<" not in pattern:
        return [reverse(route_name)]
    model_class = next(
        m for m in admin_site._registry if name.startswith(f"{m._meta.app_label}_{m._meta.model_name}_")
    )
    instance = model_class._default_manager.first()
    return [reverse(route_name, args=[instance.pk])] if instance is not None else []


def _check_admin_page(world: World, route_name: str, pattern: str, persona: str) -> None:
    for url in _admin_urls(world, route_name, pattern):
        response = _client(world, persona).get(url)
        login_redirect = response.status_code == 302 and response["Location"].startswith("/admin/login/")
        if persona == "admin":
            assert not login_redirect, url
            assert response.status_code < 500, (url, response.status_code)
        else:
            assert login_redirect, f"{persona} reached {url}: {response.status_code}"


def _visible_ids(response: Any) -> set[int]:
    return {row["id"] for row in response.json()["results"]}


def _check_list(world: World, route_name: str, rule: Rule, persona: str, method: str, access: Access) -> None:
    client = _client(world, persona)
    url = reverse(route_name)
    # Made (where a collection makes its rows on first use) before the list is asked for.
    listed = rule.list_of(world) if rule.list_of is not None else []
    response = client.generic(method, url, data="{}", content_type="application/json")
    if not access(persona, None):
        expected = {401} if persona == "anonymous" else {403, 405}
        assert response.status_code in expected, (method, url, persona, response.status_code)
        return
    assert response.status_code in {200, 201, 400}, (
        method,
        url,
        persona,
        response.status_code,
        response.content,
    )
    if method == "GET" and rule.list_of is not None:
        detail_access = RULES[route_name.replace("-list", "-detail")].methods["GET"]
        expected_ids = {obj.pk for obj, owner in listed if detail_access(persona, owner)}
        assert _visible_ids(response) == expected_ids, (url, persona)


def _check_detail(
    world: World, route_name: str, rule: Rule, persona: str, method: str, access: Access
) -> None:
    assert rule.objects is not None
    for obj, owner in rule.objects(world):
        client = _client(world, persona)
        url = reverse(route_name, args=[obj.pk])
        response = client.generic(method, url, data="{}", content_type="application/json")
        still_there = type(obj)._default_manager.filter(pk=obj.pk).exists()
        if access(persona, owner):
            assert response.status_code in {200, 204, 400, 409}, (method, url, persona, response.status_code)
            assert still_there == (method != "DELETE" or response.status_code == 409)
            return  # a DELETE that worked removed the object the next probe would use
        expected = {401} if persona == "anonymous" else {403, 404, 405}
        assert response.status_code in expected, (method, url, persona, owner, response.status_code)
        assert still_there, f"{persona} deleted {url} without the right"


def _row(obj: models.Model) -> dict[str, Any] | None:
    return type(obj)._default_manager.filter(pk=obj.pk).values().first()


def _check_action(
    world: World, route_name: str, rule: Rule, persona: str, method: str, access: Access
) -> None:
    assert rule.objects is not None
    for obj, owner in rule.objects(world):
        before = _row(obj)
        url = reverse(route_name, args=[obj.pk])
        response = _client(world, persona).generic(method, url, data="{}", content_type="application/json")
        if access(persona, owner):
            assert response.status_code == 200, (method, url, persona, response.status_code)
            continue
        expected = {401} if persona == "anonymous" else {403, 404, 405}
        assert response.status_code in expected, (method, url, persona, owner, response.status_code)
        assert _row(obj) == before, f"{persona} changed {url} without the right"


def _check_form(world: World, route_name: str, rule: Rule, persona: str, method: str, access: Access) -> None:
    assert rule.objects is not None
    url = reverse(route_name)
    if method != "POST":
        assert _client(world, persona).generic(method, url).status_code == 405
        return
    for obj, owner in rule.objects(world):
        before, tests_before = _row(obj), MailboxTest.objects.filter(mailbox_id=obj.pk).count()
        data = {"mailbox": obj.pk, **rule.extra.get("data", {})}
        response = _client(world, persona).post(url, data, HTTP_HX_REQUEST="true")
        if access(persona, owner):
            assert response.status_code == 200, (url, persona, response.status_code)
            continue
        expected = {302} if persona == "anonymous" else {403, 404}
        assert response.status_code in expected, (url, persona, owner, response.status_code)
        if persona == "anonymous":
            assert response["Location"].startswith("/login/")
        assert _row(obj) == before, f"{persona} changed {obj} through {url}"
        assert MailboxTest.objects.filter(mailbox_id=obj.pk).count() == tests_before, (url, persona)


def _check_object_page(
    world: World, route_name: str, rule: Rule, persona: str, method: str, access: Access
) -> None:
    """A page (or a page's button) about one object, as a browser or htmx asks for it."""
    assert rule.objects is not None
    for obj, owner in rule.objects(world):
        before = _row(obj)
        url = reverse(route_name, args=[obj.pk])
        response = _client(world, persona).generic(method, url, HTTP_HX_REQUEST="true")
        if access(persona, owner):
            assert response.status_code == 200, (method, url, persona, response.status_code)
            continue
        expected = {302, 405} if persona == "anonymous" else {403, 404, 405}
        assert response.status_code in expected, (method, url, persona, owner, response.status_code)
        if response.status_code == 302:
            assert response["Location"].startswith("/login/")
        assert _row(obj) == before, f"{persona} changed {obj} through {url}"


def _check_field_direction(
    world: World, route_name: str, rule: Rule, persona: str, method: str, access: Access
) -> None:
    """A field direction (``entity.field``): allowed writers set one, denied ones change nothing."""
    for key in rule.extra["keys"]:
        entity, name = key.split(".")
        before = list(ActFieldSetting.objects.filter(entity=entity, field=name).values("direction"))
        url = reverse(route_name, args=[key])
        body = '{"direction": "to_server"}' if method in ("PUT", "PATCH") else "{}"
        response = _client(world, persona).generic(method, url, data=body, content_type="application/json")
        if access(persona, None):
            assert response.status_code == 200, (method, url, persona, response.status_code)
            continue
        expected = {401} if persona == "anonymous" else {403, 405}
        assert response.status_code in expected, (method, url, persona, response.status_code)
        after = list(ActFieldSetting.objects.filter(entity=entity, field=name).values("direction"))
        assert after == before, f"{persona} changed {key} without the right"


def _cases() -> Iterator[Any]:
    for route_name, pattern in ROUTES:
        rule = rule_for(route_name)
        if rule is None:
            continue
        for persona in PERSONA_NAMES:
            if rule.kind == "admin":
                yield pytest.param(route_name, pattern, persona, "GET", id=f"{route_name}-{persona}")
                continue
            for method in rule.methods:
                yield pytest.param(
                    route_name, pattern, persona, method, id=f"{route_name}-{method}-{persona}"
                )


@pytest.mark.parametrize(("route_name", "pattern", "persona", "method"), list(_cases()))
def test_matrix(world: World, route_name: str, pattern: str, persona: str, method: str):
    rule = rule_for(route_name)
    assert rule is not None
    if rule.kind == "admin":
        if route_name.startswith(("admin:crm_appointment_", "admin:crm_task_")):
            # Pages with a row to show.
            activities("appointment")(world)
            activities("task")(world)
        _check_admin_page(world, route_name, pattern, persona)
        return
    access = rule.methods[method]
    if rule.kind == "page":
        # A page's own form posts back to it: probed with an empty body (allowed: 200 with errors).
        response = _client(world, persona).generic(method, reverse(route_name))
        if access(persona, None):
            assert response.status_code == rule.extra.get("status", {}).get(persona, 200)
        else:
            expected = {302, 405} if persona == "anonymous" else {403, 404, 405}
            assert response.status_code in rule.extra.get("denied", expected), (
                route_name,
                persona,
                response.status_code,
            )
    elif rule.kind == "form":
        _check_form(world, route_name, rule, persona, method, access)
    elif rule.kind == "object-page":
        _check_object_page(world, route_name, rule, persona, method, access)
    elif rule.kind == "action":
        _check_action(world, route_name, rule, persona, method, access)
    elif rule.kind == "field-direction":
        _check_field_direction(world, route_name, rule, persona, method, access)
    elif rule.objects is not None:
        _check_detail(world, route_name, rule, persona, method, access)
    else:
        _check_list(world, route_name, rule, persona, method, access)


@pytest.mark.parametrize(
    "route_name", [name for name, rule in RULES.items() if rule.objects is not None and rule.kind != "form"]
)
def test_methods_not_in_a_rule_are_refused(world: World, route_name: str):
    """A method the rule does not list (e.g. DELETE on emails) is answered 405 even for an administrator."""
    rule = RULES[route_name]
    obj, _ = rule.objects(world)[0]
    closed = [m for m in ("GET", "POST", "PATCH", "PUT", "DELETE") if rule.methods.get(m) is nobody]
    for method in closed:
        response = _client(world, "admin").generic(
            method, reverse(route_name, args=[obj.pk]), data="{}", content_type="application/json"
        )
        assert response.status_code == 405, (route_name, method, response.status_code)
