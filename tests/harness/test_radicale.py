"""The test Radicale itself, through the clients the DAV backend will use: the
``caldav`` library for CalDAV, httpx (WebDAV methods) with vobject for CardDAV,
icalendar for the VEVENT / VTODO bodies. TLS is verified against the test CA."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import caldav
import httpx
import icalendar
import pytest
import vobject
from caldav.lib.error import AuthorizationError
from defusedxml import ElementTree

from tests.harness.dovecot import HOST
from tests.harness.fixtures import DavUser
from tests.harness.radicale import Radicale, RadicaleError

pytestmark = pytest.mark.slow

DAV = "{DAV:}"
CARDDAV = "{urn:ietf:params:xml:ns:carddav}"
START = datetime(2030, 3, 4, 9, 0, tzinfo=UTC)  # a Monday
XML = {"Content-Type": "application/xml; charset=utf-8"}
PROPFIND = (
    '<D:propfind xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">'
    "<D:prop>{prop}</D:prop></D:propfind>"
)


@contextmanager
def dav_client(radicale: Radicale, url: str, user: str, password: str) -> Iterator[caldav.DAVClient]:
    # enable_rfc6764=False: the URL is given; no DNS SRV look-up for 127.0.0.1.
    client = caldav.DAVClient(
        url=url,
        username=user,
        password=password,
        ssl_verify_cert=str(radicale.ca_pem_path),
        enable_rfc6764=False,
    )
    with client:
        yield client


def http(radicale: Radicale, user: DavUser | None = None, password: str | None = None) -> httpx.Client:
    """A WebDAV client trusting the test CA, signed in as ``user`` (with ``password`` when given)."""
    auth = (user.name, password or user.password) if user else None
    return httpx.Client(base_url=radicale.url, verify=radicale.ssl_context(), auth=auth, timeout=30)


def weekly_meeting(uid: str) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//serversync tests//EN")
    calendar.add("version", "2.0")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", START)
    event.add("dtstart", START)
    event.add("dtend", START + timedelta(hours=1))
    event.add("summary", "Weekly review")
    event.add("rrule", {"freq": "weekly", "count": 3})
    calendar.add_component(event)
    return calendar.to_ical()


def task(uid: str) -> bytes:
    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//serversync tests//EN")
    calendar.add("version", "2.0")
    todo = icalendar.Todo()
    todo.add("uid", uid)
    todo.add("dtstamp", START)
    todo.add("due", START + timedelta(days=2))
    todo.add("summary", "Send the quote")
    todo.add("status", "NEEDS-ACTION")
    calendar.add_component(todo)
    return calendar.to_ical()


# -- CalDAV ---------------------------------------------------------------------


def test_well_known_caldav_leads_to_the_users_calendar_home(radicale, dav_user):
    with http(radicale) as client:
        redirect = client.get("/.well-known/caldav")
    assert redirect.is_redirect
    service = urljoin(radicale.url, redirect.headers["Location"])

    with dav_client(radicale, service, dav_user.name, dav_user.password) as client:
        home = client.principal().calendar_home_set
        calendars = {str(c.url) for c in home.calendars()}

    assert str(home.url) == dav_user.home_url
    assert dav_user.calendar_url in calendars


def test_well_known_carddav_leads_to_the_users_address_book_home(radicale, dav_user):
    """RFC 6764 then RFC 6352 discovery, as the CardDAV backend will do it with plain WebDAV."""

    def propfind(client: httpx.Client, url: str, prop: str) -> str:
        body = PROPFIND.format(prop=prop)
        response = client.request("PROPFIND", url, content=body, headers={**XML, "Depth": "0"})
        assert response.status_code == httpx.codes.MULTI_STATUS, response.text
        return urljoin(url, ElementTree.fromstring(response.content).findtext(f".//{DAV}prop//{DAV}href"))

    with http(radicale, dav_user) as client:
        redirect = client.get("/.well-known/carddav")
        service = urljoin(radicale.url, redirect.headers["Location"])
        principal = propfind(client, service, "<D:current-user-principal/>")
        home = propfind(client, principal, "<CR:addressbook-home-set/>")

    assert redirect.is_redirect
    assert home == dav_user.home_url
    assert dav_user.address_book_url in {
        urljoin(home, m.path) for m in radicale.list_collection(dav_user.name, home)
    }


def test_recurring_event_and_task_read_back_from_a_new_calendar(radicale, dav_user):
    with dav_client(radicale, dav_user.home_url, dav_user.name, dav_user.password) as client:
        home = client.principal().calendar_home_set
        calendar = home.make_calendar(
            name="Work", cal_id="work", supported_calendar_component_set=["VEVENT", "VTODO"]
        )
        calendar.add_event(weekly_meeting("meeting-1@serversync.test"))
        calendar.add_todo(task("task-1@serversync.test"))

        event = calendar.event_by_uid("meeting-1@serversync.test").icalendar_component
        todo = calendar.todo_by_uid("task-1@serversync.test").icalendar_component
        occurrences = calendar.search(event=True, start=START, end=START + timedelta(weeks=10), expand=True)

    assert str(calendar.url) == f"{dav_user.home_url}work/"
    assert event["summary"] == "Weekly review"
    assert event.decoded("dtstart") == START
    assert event["rrule"]["FREQ"] == ["WEEKLY"]
    assert event["rrule"]["COUNT"] == [3]
    starts = sorted(o.icalendar_component.decoded("dtstart") for o in occurrences)
    assert starts == [START, START + timedelta(weeks=1), START + timedelta(weeks=2)]
    assert todo["summary"] == "Send the quote"
    assert todo.decoded("due") == START + timedelta(days=2)
    assert {
        m.path.rsplit("/", 1)[-1] for m in radicale.list_collection(dav_user.name, str(calendar.url))
    } == {
        "meeting-1@serversync.test.ics",
        "task-1@serversync.test.ics",
    }


def test_sync_collection_reports_only_what_changed_since_its_token(radicale, dav_user):
    with dav_client(radicale, dav_user.home_url, dav_user.name, dav_user.password) as client:
        calendar = client.calendar(url=dav_user.calendar_url)
        calendar.add_event(weekly_meeting("first@serversync.test"))
        first = calendar.objects_by_sync_token(load_objects=True)
        nothing = calendar.objects_by_sync_token(sync_token=first.sync_token)

        calendar.add_todo(task("second@serversync.test"))
        changed = calendar.objects_by_sync_token(sync_token=first.sync_token, load_objects=True)

    assert [o.icalendar_component["uid"] for o in first] == ["first@serversync.test"]
    assert list(nothing) == []
    assert nothing.sync_token == first.sync_token
    assert changed.sync_token != first.sync_token
    assert [o.icalendar_component["uid"] for o in changed] == ["second@serversync.test"]


def test_wrong_password_is_refused_with_401(radicale, dav_user):
    with (
        dav_client(radicale, dav_user.home_url, dav_user.name, "wrong-password") as client,
        pytest.raises(AuthorizationError),
    ):
        client.principal()

    with http(radicale, dav_user, password="wrong-password") as raw:
        response = raw.request("PROPFIND", dav_user.home_url, headers={"Depth": "0"})
    assert response.status_code == httpx.codes.UNAUTHORIZED
    assert response.headers["WWW-Authenticate"].startswith("Basic")


def test_a_user_cannot_read_another_users_calendar(radicale, dav_user):
    name = radicale.add_user(f"intruder-{secrets.token_hex(5)}", "intruder-pass")
    other = DavUser(name, "intruder-pass", radicale.home_url(name), "", "")

    with http(radicale, other) as client:
        own = client.request("PROPFIND", other.home_url, headers={"Depth": "0"})
        response = client.request("PROPFIND", dav_user.calendar_url, headers={"Depth": "1"})

    assert own.status_code == httpx.codes.MULTI_STATUS
    assert response.status_code == httpx.codes.FORBIDDEN


def test_certificate_is_verified(radicale, dav_user):
    """The server is trusted only through the test CA: without it, the handshake fails."""
    client = caldav.DAVClient(
        url=dav_user.home_url,
        username=dav_user.name,
        password=dav_user.password,
        ssl_verify_cert=True,
        enable_rfc6764=False,
    )
    with client, pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        client.principal()


# -- CardDAV --------------------------------------------------------------------


def vcard(uid: str, name: str, email: str) -> str:
    card = vobject.vCard()
    card.add("uid").value = uid
    card.add("fn").value = name
    family, given = name.split()[1], name.split()[0]
    card.add("n").value = vobject.vcard.Name(family=family, given=given)
    email_line = card.add("email")
    email_line.value = email
    email_line.type_param = "WORK"
    card.add("org").value = ["Contoso"]
    return str(card.serialize())


ADDRESSBOOK_QUERY = """<?xml version="1.0" encoding="utf-8"?>
<C:addressbook-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:carddav">
  <D:prop><D:getetag/><C:address-data/></D:prop>
  <C:filter><C:prop-filter name="EMAIL">
    <C:text-match collation="i;unicode-casemap" match-type="equals">{email}</C:text-match>
  </C:prop-filter></C:filter>
</C:addressbook-query>
"""

SYNC_COLLECTION = """<?xml version="1.0" encoding="utf-8"?>
<D:sync-collection xmlns:D="DAV:">
  <D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>
  <D:prop><D:getetag/></D:prop>
</D:sync-collection>
"""


def test_vcard_put_then_get_reads_back_the_same_contact(radicale, dav_user):
    url = f"{dav_user.address_book_url}ada.vcf"
    with http(radicale, dav_user) as client:
        created = client.put(
            url,
            content=vcard("ada@serversync.test", "Ada Lovelace", "ada@contoso.test"),
            headers={"Content-Type": "text/vcard; charset=utf-8", "If-None-Match": "*"},
        )
        again = client.put(url, content=b"", headers={"If-None-Match": "*"})
        got = client.get(url)

    assert created.status_code == httpx.codes.CREATED
    assert again.status_code == httpx.codes.PRECONDITION_FAILED  # a second create must not overwrite
    assert got.headers["ETag"] == created.headers["ETag"]
    card = vobject.readOne(got.text)
    assert card.uid.value == "ada@serversync.test"
    assert card.fn.value == "Ada Lovelace"
    assert (card.n.value.given, card.n.value.family) == ("Ada", "Lovelace")
    assert card.email.value == "ada@contoso.test"
    assert card.email.type_param == "WORK"
    assert card.org.value == ["Contoso"]
    [member] = radicale.list_collection(dav_user.name, dav_user.address_book_url)
    assert member.path.endswith("/contacts/ada.vcf")
    assert member.etag == created.headers["ETag"]


def test_addressbook_query_finds_a_contact_by_email(radicale, dav_user):
    with http(radicale, dav_user) as client:
        for uid, name, email in (
            ("a", "Ada Lovelace", "ada@contoso.test"),
            ("b", "Alan Turing", "alan@x.test"),
        ):
            client.put(f"{dav_user.address_book_url}{uid}.vcf", content=vcard(uid, name, email))
        report = client.request(
            "REPORT",
            dav_user.address_book_url,
            content=ADDRESSBOOK_QUERY.format(email="ADA@contoso.test"),
            headers={**XML, "Depth": "1"},
        )

    assert report.status_code == httpx.codes.MULTI_STATUS
    found = ElementTree.fromstring(report.content).findall(f"{DAV}response")
    assert [r.findtext(f"{DAV}href").rsplit("/", 1)[-1] for r in found] == ["a.vcf"]
    assert vobject.readOne(found[0].findtext(f".//{CARDDAV}address-data")).fn.value == "Ada Lovelace"


def test_address_book_sync_collection_token_moves_on_a_change(radicale, dav_user):
    def sync(client: httpx.Client, token: str) -> tuple[str, list[str]]:
        response = client.request(
            "REPORT", dav_user.address_book_url, content=SYNC_COLLECTION.format(token=token), headers=XML
        )
        assert response.status_code == httpx.codes.MULTI_STATUS, response.text
        root = ElementTree.fromstring(response.content)
        hrefs = [r.findtext(f"{DAV}href").rsplit("/", 1)[-1] for r in root.findall(f"{DAV}response")]
        return root.findtext(f"{DAV}sync-token"), hrefs

    with http(radicale, dav_user) as client:
        client.put(f"{dav_user.address_book_url}a.vcf", content=vcard("a", "Ada Lovelace", "ada@c.test"))
        token, everything = sync(client, "")
        same_token, nothing = sync(client, token)
        client.put(f"{dav_user.address_book_url}b.vcf", content=vcard("b", "Alan Turing", "alan@c.test"))
        new_token, changed = sync(client, token)

    assert everything == ["a.vcf"]
    assert (same_token, nothing) == (token, [])
    assert new_token != token
    assert changed == ["b.vcf"]


# -- the harness ------------------------------------------------------------------


def test_a_radicale_that_cannot_start_fails_with_its_log():
    """Its port taken by someone else: the error carries Radicale's own words."""
    server = Radicale()
    with socket.socket() as taken:
        taken.bind((HOST, server.port))
        taken.listen()
        try:
            with pytest.raises(RadicaleError, match="radicale exited with") as error:
                server.start(timeout=10)
        finally:
            server.close()
    assert "Address already in use" in str(error.value)
