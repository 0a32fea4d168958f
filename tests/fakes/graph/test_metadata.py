"""The validator holds bodies to Graph v1.0's metadata, and refuses what does not fit."""

from __future__ import annotations

import gzip
import hashlib

import pytest

from tests.fakes.graph import metadata

PUBLISHED_SHA256 = "79b90dfb12d57adecfa110069397ed7003719e713840a9f885ae946fd9ee6e6b"

MESSAGE = {
    "@odata.etag": 'W/"CQAAABYAAAA"',
    "id": "AAMkAGI2",
    "subject": "Quarterly report",
    "receivedDateTime": "2026-12-07T18:00:00.1234567Z",
    "hasAttachments": False,
    "importance": "high",
    "conversationIndex": "AQHZ+/abcd==",
    "toRecipients": [{"emailAddress": {"name": "Alice", "address": "alice@contoso.com"}}],
    "from": {"emailAddress": {"address": "carl@example.org"}},
    "body": {"contentType": "html", "content": "<p>Hi</p>"},
    "internetMessageHeaders": [{"name": "X-Mailer", "value": "serversync"}],
    "singleValueExtendedProperties": [{"id": "Integer 0xe08", "value": "1234"}],
}


def test_the_committed_copy_is_microsofts_file_unmodified():
    # The SHA-256 of Microsoft's file (data/README.md says which commit), as published.
    unpacked = gzip.decompress(metadata.METADATA.read_bytes())
    assert hashlib.sha256(unpacked).hexdigest() == PUBLISHED_SHA256


def test_a_message_as_graph_sends_it_is_valid():
    assert metadata.validate("message", MESSAGE) == []
    assert metadata.validate("microsoft.graph.message", MESSAGE) == []


@pytest.mark.parametrize(
    ("type_name", "body", "violation"),
    [
        # An unknown property on a type that is not open.
        ("mailFolder", {"displayName": "Inbox", "sizeInBytes": 10}, "has no property 'sizeInBytes'"),
        (
            "message",
            {"from": {"emailAddress": {"adress": "x@y"}}},
            "from.emailAddress: microsoft.graph.emailAddress",
        ),
        # Primitive types.
        ("message", {"subject": 42}, "subject: 42 is not a valid Edm.String"),
        ("message", {"hasAttachments": "false"}, "is not a valid Edm.Boolean"),
        ("mailFolder", {"totalItemCount": 2**31}, "is not a valid Edm.Int32"),
        ("mailFolder", {"totalItemCount": True}, "is not a valid Edm.Int32"),
        ("message", {"receivedDateTime": "2026-12-07 18:00:00"}, "is not a valid Edm.DateTimeOffset"),
        ("message", {"receivedDateTime": "2026-13-07T18:00:00Z"}, "is not a valid Edm.DateTimeOffset"),
        ("message", {"conversationIndex": "not base64!"}, "is not a valid Edm.Binary"),
        ("mailFolder", {"id": None}, "null where Edm.String is not nullable"),
        # Collections and nested complex types.
        (
            "message",
            {"toRecipients": {"emailAddress": {}}},
            "expected a collection of microsoft.graph.recipient",
        ),
        ("message", {"toRecipients": ["alice@contoso.com"]}, "toRecipients[0]: expected an object"),
        ("message", {"body": {"contentType": "text", "content": 7}}, "body.content: 7"),
        # Enum members.
        ("message", {"importance": "urgent"}, "'urgent' is not a member of microsoft.graph.importance"),
        ("message", {"body": {"contentType": "markdown"}}, "is not a member of microsoft.graph.bodyType"),
        # Derived types named by @odata.type.
        (
            "attachment",
            {"@odata.type": "#microsoft.graph.recipient"},
            "is not microsoft.graph.attachment or derived",
        ),
        (
            "attachment",
            {"@odata.type": "#microsoft.graph.fileAttachment", "contentBytes": 1},
            "contentBytes: 1",
        ),
    ],
)
def test_wrong_documents_are_refused(type_name, body, violation):
    found = metadata.validate(type_name, body)
    assert any(violation in v for v in found), found


def test_open_types_may_carry_other_properties_but_not_wrong_declared_ones():
    assert metadata.validate("message", {"someDynamicProperty": 1}) == []
    assert metadata.validate("message", {"someDynamicProperty": 1, "isRead": "yes"}) != []


def test_derived_types_are_checked_against_their_own_properties():
    attachment = {"@odata.type": "#microsoft.graph.fileAttachment", "name": "a.txt", "contentBytes": "aGk="}
    assert metadata.validate("attachment", attachment) == []
    assert (
        metadata.validate("attachment", {"name": "a.txt", "contentBytes": "aGk="}) != []
    )  # not on the base type


def test_collection_responses_check_each_element_and_their_links():
    page = {"@odata.context": "x", "value": [MESSAGE, {"subject": 1}], "@odata.nextLink": "https://x"}
    assert [v for v in metadata.validate_collection("message", page)] == [
        "value[1].subject: 1 is not a valid Edm.String"
    ]
    assert metadata.validate_collection("message", {"items": []}) != []
    both = {"value": [], "@odata.nextLink": "a", "@odata.deltaLink": "b"}
    assert any("both" in v for v in metadata.validate_collection("message", both))
    assert metadata.validate_collection("message", {"value": [], "count": 1}) == [
        "collection response: unknown member 'count'"
    ]


def test_send_mail_parameters():
    message = {"subject": "Hi", "toRecipients": [{"emailAddress": {"address": "a@contoso.com"}}]}
    assert metadata.validate_action("sendMail", "user", {"Message": message, "SaveToSentItems": False}) == []
    # As Microsoft's reference pages write them.
    assert metadata.validate_action("sendMail", "user", {"message": message, "saveToSentItems": False}) == []
    assert metadata.validate_action("sendMail", "user", {"SaveToSentItems": False}) == [
        "sendMail: missing parameter 'Message'"
    ]
    assert metadata.validate_action("sendMail", "user", {"Message": message, "SaveToSentItems": "false"}) == [
        "SaveToSentItems: 'false' is not a valid Edm.Boolean"
    ]
    assert metadata.validate_action("sendMail", "user", {"Message": message, "Urgent": True}) == [
        "sendMail: unknown parameter 'Urgent'"
    ]
    assert metadata.validate_action("sendMail", "user", {"Message": {"subject": 1}}) == [
        "Message.subject: 1 is not a valid Edm.String"
    ]
    assert metadata.validate_action("sendMail", "message", {}) == [
        "no action sendMail bound to message in Graph v1.0"
    ]


def test_move_parameters():
    assert metadata.validate_action("move", "message", {"DestinationId": "deleteditems"}) == []
    assert metadata.validate_action("move", "message", {"destinationId": 3}) == [
        "DestinationId: 3 is not a valid Edm.String"
    ]


def test_error_bodies():
    assert (
        metadata.validate_error(
            {"error": {"code": "ErrorItemNotFound", "message": "Gone.", "innerError": {}}}
        )
        == []
    )
    assert metadata.validate_error({"error": "ErrorItemNotFound"}) != []
    assert metadata.validate_error({"error": {"code": 404, "message": "Gone."}}) == [
        "error.code: expected a string"
    ]


def test_enum_members_sent_to_graph_may_differ_in_case_but_not_in_answers():
    body = {"body": {"contentType": "Text", "content": "Hi"}}  # as Microsoft's sendMail example writes it
    assert metadata.validate("message", body, request=True) == []
    assert metadata.validate("message", body) == [
        "body.contentType: 'Text' is not a member of microsoft.graph.bodyType"
    ]
    assert metadata.validate("message", {"body": {"contentType": "markdown"}}, request=True) != []
