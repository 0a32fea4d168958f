"""The mail side of the Graph test server, driven with plain HTTP as a connector would.
Every answer here is also checked against the metadata (the autouse fixture fails a
test whose bodies did not fit)."""

from __future__ import annotations

import dataclasses
import threading
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest
import requests

from tests.fakes.graph import graph_api
from tests.fakes.graph.client import Graph
from tests.fakes.graph.fixtures import GraphMailbox, new_mailbox

SIZE = "singleValueExtendedProperties($filter=id eq 'Integer 0x0E08')"


def mime(subject: str, to: str, *, sender: str = "Carl <carl@example.org>", **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="example.org")
    for name, value in headers.items():
        message[name] = value
    message.set_content(f"{subject}: Grüße")
    return message.as_bytes().replace(b"\n", b"\r\n")


@pytest.fixture
def graph(graph_mailbox: GraphMailbox) -> Graph:
    return Graph(graph_mailbox.server, graph_mailbox.app, graph_mailbox.address)


def error(answer: requests.Response) -> tuple[int, str]:
    return answer.status_code, answer.json()["error"]["code"]


def test_well_known_folders_and_child_folders_with_paging(graph, graph_mailbox):
    inbox = graph.get("mailFolders/inbox").json()
    assert inbox["displayName"] == "Inbox"
    assert graph.get(f"mailFolders/{inbox['id']}").json()["id"] == inbox["id"]
    assert graph.get("mailFolders/sentitems").json()["displayName"] == "Sent Items"
    assert graph.get("mailFolders/deleteditems").json()["displayName"] == "Deleted Items"
    for name in ("A", "B", "C"):
        graph_mailbox.server.create_folder(graph_mailbox.address, f"Inbox/{name}")
    graph_mailbox.server.create_folder(graph_mailbox.address, "Inbox/A/Nested")

    first = graph.get("mailFolders/inbox/childFolders", params={"$top": 2}).json()
    assert [f["displayName"] for f in first["value"]] == ["A", "B"]
    assert first["value"][0]["childFolderCount"] == 1
    second = graph.get(first["@odata.nextLink"]).json()
    assert [f["displayName"] for f in second["value"]] == ["C"]
    assert "@odata.nextLink" not in second

    graph_mailbox.server.delete_folder(graph_mailbox.address, "Inbox/A")
    assert [f["displayName"] for f in graph.get("mailFolders/inbox/childFolders").json()["value"]] == [
        "B",
        "C",
    ]
    assert error(graph.get(f"mailFolders/{first['value'][0]['id']}")) == (404, "ErrorItemNotFound")
    assert error(graph.get("mailFolders/not-an-id")) == (400, "ErrorInvalidIdMalformed")


def test_find_a_message_by_internet_message_id_with_select(graph, graph_mailbox):
    raw = mime("Wanted", graph_mailbox.address)
    graph_mailbox.deliver(mime("Other", graph_mailbox.address))
    graph_mailbox.deliver(raw)
    message_id = raw.split(b"Message-ID: ")[1].split(b"\r\n")[0].decode()
    found = graph.get(
        "mailFolders/inbox/messages",
        params={"$filter": f"internetMessageId eq '{message_id}'", "$select": "internetMessageId,subject"},
    ).json()["value"]
    assert [(m["subject"], m["internetMessageId"]) for m in found] == [("Wanted", message_id)]
    assert set(found[0]) == {"@odata.etag", "id", "subject", "internetMessageId"}
    assert (
        graph.get("messages", params={"$filter": "internetMessageId eq '<nobody@x>'"}).json()["value"] == []
    )


def test_a_message_its_size_and_its_mime(graph, graph_mailbox):
    raw = mime("Report", f"Alice <{graph_mailbox.address}>", Cc="bob@example.org")
    message_id = graph_mailbox.deliver(raw)
    stored = graph_mailbox.messages()[0]
    assert stored.startswith(b"Received: ")
    assert stored.endswith(raw)

    message = graph.get(f"messages/{message_id}", params={"$expand": SIZE}).json()
    assert message["subject"] == "Report"
    assert message["from"] == {"emailAddress": {"name": "Carl", "address": "carl@example.org"}}
    assert message["toRecipients"] == [{"emailAddress": {"name": "Alice", "address": graph_mailbox.address}}]
    assert message["ccRecipients"] == [
        {"emailAddress": {"name": "bob@example.org", "address": "bob@example.org"}}
    ]
    assert message["parentFolderId"] == graph.get("mailFolders/inbox").json()["id"]
    assert message["isDraft"] is False
    assert "internetMessageHeaders" not in message  # only when $select names it
    assert message["singleValueExtendedProperties"] == [{"id": "Integer 0xe08", "value": str(len(stored))}]

    headers = graph.get(f"messages/{message_id}", params={"$select": "internetMessageHeaders"}).json()
    assert headers["internetMessageHeaders"][0]["name"] == "Received"

    value = graph.get(f"messages/{message_id}/$value")
    assert value.headers["Content-Type"] == "text/plain"
    assert value.content == stored
    # Microsoft documents it through the folder too, but Graph refuses that path.
    assert error(graph.get(f"mailFolders/inbox/messages/{message_id}/$value")) == (405, "ErrorInvalidRequest")
    assert graph.get(f"mailFolders/inbox/messages/{message_id}").json()["id"] == message_id
    assert error(graph.get(f"mailFolders/sentitems/messages/{message_id}")) == (404, "ErrorItemNotFound")


def test_select_of_a_property_graph_does_not_have_is_refused_and_recorded(graph, graph_server):
    answer = graph.get("mailFolders/inbox/messages", params={"$select": "subject,size"})
    assert error(answer) == (400, "BadRequest")
    assert answer.json()["error"]["message"] == (
        "Parsing OData Select and Expand failed: Could not find a property named 'size' on type "
        "'microsoft.graph.message'."
    )
    assert graph_server.take_violations() == [
        "$select=subject,size: message has no property 'size' in Graph v1.0"
    ]


@pytest.mark.parametrize(
    ("path", "options"),
    [
        ("messages", {"$filter": "subject eq 'x'"}),  # only internetMessageId is served
        ("messages", {"$search": '"report"'}),
        ("mailFolders/inbox/messages/delta", {"$top": "5"}),
        ("mailFolders/inbox", {"$expand": "childFolders"}),
    ],
)
def test_an_option_the_server_does_not_implement_fails_the_test(graph, graph_server, path, options):
    answer = graph.get(path, params=options)
    assert error(answer) == (501, "NotImplemented")
    (violation,) = graph_server.take_violations()
    assert "the test server does not implement" in violation


def test_path_keywords_are_read_without_regard_to_case_and_folders_selected(graph):
    inbox = graph.get("MailFolders/Inbox", params={"$select": "displayName"}).json()
    assert set(inbox) == {"@odata.context", "id", "displayName"}
    assert graph.get("mailfolders/inbox/childfolders").json()["value"] == []


def test_delete_moves_to_deleted_items_and_move_gives_a_new_id(graph, graph_mailbox):
    first = graph_mailbox.deliver(mime("One", graph_mailbox.address))
    second = graph_mailbox.deliver(mime("Two", graph_mailbox.address))
    assert graph.delete(f"messages/{first}").status_code == 204
    assert graph_mailbox.messages("Deleted Items")[0].endswith(mime("One", "x")[-20:])
    assert error(graph.get(f"messages/{first}")) == (404, "ErrorItemNotFound")

    graph_mailbox.server.create_folder(graph_mailbox.address, "Inbox/Processed")
    target = graph.get("mailFolders/inbox/childFolders").json()["value"][0]["id"]
    moved = graph.post(f"messages/{second}/move", json={"destinationId": target})
    assert moved.status_code == 201
    assert moved.json()["id"] != second
    assert moved.json()["parentFolderId"] == target
    assert graph_mailbox.messages() == []
    assert len(graph_mailbox.messages("Inbox/Processed")) == 1


def test_move_with_a_body_graph_would_refuse(graph, graph_mailbox, graph_server):
    message = graph_mailbox.deliver(mime("One", graph_mailbox.address))
    answer = graph.post(f"messages/{message}/move", json={"folder": "deleteditems"})
    assert error(answer) == (400, "RequestBodyRead")
    where = f"POST /v1.0/users/{graph_mailbox.address}/messages/{message}/move request"
    assert graph_server.take_violations() == [
        f"{where}: move: unknown parameter 'folder'",
        f"{where}: move: missing parameter 'DestinationId'",
    ]


def delta_pages(graph: Graph, url: str, page_size: int) -> tuple[list[list[dict[str, Any]]], str]:
    pages = []
    while True:
        answer = graph.get(url, headers={"Prefer": f"odata.maxpagesize={page_size}"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["Preference-Applied"] == f"odata.maxpagesize={page_size}"
        body = answer.json()
        pages.append(body["value"])
        if "@odata.deltaLink" in body:
            return pages, body["@odata.deltaLink"]
        url = body["@odata.nextLink"]


def test_delta_pages_then_reports_new_and_removed_messages(graph, graph_mailbox):
    ids = [graph_mailbox.deliver(mime(f"Message {n}", graph_mailbox.address)) for n in range(5)]
    pages, delta_link = delta_pages(
        graph, f"mailFolders/inbox/messages/delta?$select=subject&$expand={SIZE}", 2
    )
    assert [[m["subject"] for m in page] for page in pages] == [
        ["Message 0", "Message 1"],
        ["Message 2", "Message 3"],
        ["Message 4"],
    ]
    assert all(m["singleValueExtendedProperties"][0]["id"] == "Integer 0xe08" for page in pages for m in page)

    assert delta_pages(graph, delta_link, 2)[0] == [[]]  # nothing new; the link can be used again
    newest = graph_mailbox.deliver(mime("Message 5", graph_mailbox.address))
    graph.delete(f"messages/{ids[0]}")
    pages, _ = delta_pages(graph, delta_link, 10)
    assert [(m["id"], m.get("subject"), m.get("@removed")) for m in pages[0]] == [
        (newest, "Message 5", None),
        (ids[0], None, {"reason": "deleted"}),
    ]


def test_delta_tokens_can_expire(graph, graph_mailbox, graph_server):
    graph_mailbox.deliver(mime("Before", graph_mailbox.address))
    _, delta_link = delta_pages(graph, "mailFolders/inbox/messages/delta", 5)
    graph_server.expire_delta_tokens()
    answer = graph.get(delta_link)
    assert error(answer) == (410, "SyncStateNotFound")
    restart = answer.headers["Location"]
    assert restart.endswith("/messages/delta")
    assert "deltatoken" not in restart
    pages, _ = delta_pages(graph, restart, 5)
    assert [m["subject"] for m in pages[0]] == ["Before"]


def send(graph: Graph, raw: bytes) -> requests.Response:
    return graph.post_mime("sendMail", raw)


def test_send_mail_with_mime_delivers_keeps_a_sent_copy_and_relays(graph, graph_mailbox, graph_server):
    colleague = new_mailbox(graph_server)
    raw = mime(
        "Hello",
        f"{graph_mailbox.address}, {colleague.address}",
        sender=graph_mailbox.address,
        Bcc="secret@example.org",
    )
    answer = send(graph, raw)
    assert answer.status_code == 202
    assert answer.content == b""

    (received,) = colleague.messages()
    assert received.startswith(b"Received: ")
    assert b"Bcc:" not in received
    assert received.endswith(raw.split(b"Bcc:")[1].split(b"\r\n", 1)[1])
    assert len(graph_mailbox.messages()) == 1  # to itself too
    assert graph_server.sent_items(graph_mailbox.address) == [raw]
    relayed = graph_server.outbound[-1]
    assert (relayed.sender, relayed.recipients) == (graph_mailbox.address, ("secret@example.org",))


def test_send_mail_with_json_without_a_sent_copy(graph, graph_mailbox, graph_server):
    body = {
        "message": {
            "subject": "From JSON",
            "body": {"contentType": "Text", "content": "Hi"},
            "toRecipients": [{"emailAddress": {"address": graph_mailbox.address}}],
            "internetMessageHeaders": [{"name": "X-Serversync", "value": "1"}],
        },
        "saveToSentItems": False,
    }
    assert graph.post("sendMail", json=body).status_code == 202
    (received,) = graph_mailbox.messages()
    assert b"Subject: From JSON" in received
    assert b"X-Serversync: 1" in received
    assert graph_server.sent_items(graph_mailbox.address) == []


def test_send_mail_refuses_the_whole_message_for_an_unresolvable_recipient(
    graph, graph_mailbox, graph_server
):
    raw = mime("Bad", f"{graph_mailbox.address}, placeholder@example.org", sender=graph_mailbox.address)
    answer = send(graph, raw.replace(b"placeholder@example.org", b"nobody@"))
    assert error(answer) == (400, "ErrorInvalidRecipients")
    assert "Recipient 'nobody@' isn't resolved." in answer.json()["error"]["message"]
    assert graph_mailbox.messages() == []
    assert graph_server.sent_items(graph_mailbox.address) == []


def test_send_mail_bodies_graph_would_refuse(graph, graph_server):
    answer = graph.post("sendMail", data=b"not base64!", headers={"Content-Type": "text/plain"})
    assert error(answer) == (400, "ErrorMimeContentInvalidBase64String")
    answer = graph.post("sendMail", json={"message": {"subject": "x", "toRecipients": "a@b.c"}})
    assert error(answer) == (400, "RequestBodyRead")
    assert len(graph_server.take_violations()) == 2


def test_a_message_saved_to_sent_items_from_mime(graph, graph_mailbox):
    raw = mime("Copy", "carl@example.org", sender=graph_mailbox.address)
    answer = graph.post_mime("mailFolders/sentitems/messages", raw)
    assert answer.status_code == 201
    assert answer.json()["subject"] == "Copy"
    assert graph_mailbox.messages("Sent Items") == [raw]


def test_who_may_reach_which_mailbox(graph_server):
    user = new_mailbox(graph_server)
    unlicensed = "unlicensed@contoso.onmicrosoft.com"
    graph_server.add_user(unlicensed, licensed=False)
    reader = graph_server.register_app(permissions=("Mail.Read",))
    restricted = graph_server.register_app(allowed_mailboxes=["someone.else@contoso.onmicrosoft.com"])

    assert error(Graph(graph_server, user.app, "nobody@contoso.onmicrosoft.com").get("messages")) == (
        404,
        "ErrorInvalidUser",
    )
    assert error(Graph(graph_server, user.app, unlicensed).get("messages")) == (
        404,
        "MailboxNotEnabledForRESTAPI",
    )
    denied = Graph(graph_server, restricted, user.address).get("messages")
    assert error(denied) == (403, "ErrorAccessDenied")
    assert (
        "[RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."
        in denied.json()["error"]["message"]
    )
    assert Graph(graph_server, reader, user.address).get("messages").status_code == 200
    assert error(
        Graph(graph_server, reader, user.address).post_mime("sendMail", mime("x", user.address))
    ) == (
        403,
        "ErrorAccessDenied",
    )
    # The directory wants a directory permission (User.Read.All), which a mail app lacks.
    assert error(Graph(graph_server, user.app, user.address).get("")) == (403, "Authorization_RequestDenied")
    directory = graph_server.register_app(permissions=("User.Read.All",))
    assert Graph(graph_server, directory, user.address).get("").json()["mail"] == user.address


def test_no_token_and_me(graph_server, graph):
    anonymous = graph.http.get(f"{graph_server.url}/v1.0/users/x@y.z/messages", headers={"Authorization": ""})
    assert error(anonymous) == (401, "InvalidAuthenticationToken")
    assert error(graph.http.get(f"{graph_server.url}/v1.0/me/messages")) == (400, "BadRequest")


@pytest.mark.parametrize(("status", "code"), [(429, "TooManyRequests"), (503, "serviceNotAvailable")])
def test_throttling(graph, graph_server, status, code):
    graph_server.throttle(2, retry_after=7, status=status)
    answers = [graph.get("mailFolders/inbox") for _ in range(3)]
    assert [a.status_code for a in answers] == [status, status, 200]
    assert answers[0].headers["Retry-After"] == "7"
    assert answers[0].json()["error"]["code"] == code


def test_more_than_four_concurrent_requests_on_a_mailbox_are_refused(
    graph, graph_mailbox, graph_server, monkeypatch
):
    monkeypatch.setattr(graph_server, "latency", 0.5)
    statuses: list[int] = []
    clients = [Graph(graph_server, graph_mailbox.app, graph_mailbox.address) for _ in range(6)]

    def call(client: Graph) -> None:
        statuses.append(client.get("mailFolders/inbox").status_code)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 200, 200, 200, 429, 429]
    # The refused ones end at once, so the sixth may arrive after the fifth has gone.
    assert graph_server.peak_concurrency[graph_mailbox.address] > 4
    throttled = [r for r in graph_server.requests if r.mailbox == graph_mailbox.address and r.status == 429]
    assert len(throttled) == 2


def test_the_request_log(graph, graph_mailbox, graph_server):
    graph.get("mailFolders/inbox")
    last = graph_server.requests[-1]
    assert (last.method, last.path, last.mailbox, last.status) == (
        "GET",
        f"/v1.0/users/{graph_mailbox.address}/mailFolders/inbox",
        graph_mailbox.address,
        200,
    )


def test_a_fault_of_the_test_server_fails_the_test(graph, graph_server, monkeypatch):
    def broken(call: object) -> None:
        raise RuntimeError("a bug in the test server")

    key = ("GET", ("mailFolders", "*"))
    monkeypatch.setitem(graph_api._ROUTES, key, dataclasses.replace(graph_api._ROUTES[key], handler=broken))
    assert error(graph.get("mailFolders/inbox")) == (500, "InternalServerError")
    (violation,) = graph_server.take_violations()
    assert "a bug in the test server" in violation
