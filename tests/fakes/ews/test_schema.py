"""The EWS schema check itself: it passes what Microsoft's schema allows and rejects what it does not,
and the server answers a request that fails it as Exchange does (ErrorSchemaValidation)."""

from __future__ import annotations

import pytest
import requests
from lxml import etree

from tests.fakes.ews import properties, soap, xsd
from tests.fakes.ews.fixtures import EwsMailbox, check_since, snapshot
from tests.fakes.ews.server import EwsServer
from tests.fakes.ews.soap import E, S

# They start the EWS test server (once per session) and talk to it.
pytestmark = pytest.mark.slow

NS = f'xmlns:m="{xsd.M}" xmlns:t="{xsd.T}"'
GET_INBOX = f"""<m:GetFolder {NS}>
  <m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape>
  <m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds>
</m:GetFolder>"""


def violations(document: str) -> list[str]:
    return xsd.violations(etree.fromstring(document.encode()))


def test_a_valid_request_passes() -> None:
    assert violations(GET_INBOX) == []


def test_an_element_the_schema_does_not_have_is_rejected() -> None:
    problems = violations(GET_INBOX.replace("m:GetFolder", "m:GetFolders"))

    assert problems
    assert "No matching global declaration" in problems[0]


def test_a_value_outside_an_enumeration_is_rejected() -> None:
    problems = violations(GET_INBOX.replace('Id="inbox"', 'Id="Inbox"'))

    assert len(problems) == 1
    assert "DistinguishedFolderId" in problems[0]
    assert "'Inbox' is not an element of the set" in problems[0]


def test_a_missing_required_child_is_rejected() -> None:
    problems = violations(
        f"<m:GetFolder {NS}><m:FolderShape><t:BaseShape>IdOnly</t:BaseShape></m:FolderShape></m:GetFolder>"
    )

    assert len(problems) == 1
    assert "Missing child element(s). Expected is ( {" + xsd.M + "}FolderIds )" in problems[0]


def test_a_response_message_out_of_order_is_rejected() -> None:
    response = f"""<m:GetFolderResponse {NS}><m:ResponseMessages>
      <m:GetFolderResponseMessage ResponseClass="Success">
        <m:Folders/><m:ResponseCode>NoError</m:ResponseCode>
      </m:GetFolderResponseMessage></m:ResponseMessages></m:GetFolderResponse>"""

    assert violations(response)
    fixed = response.replace(
        "<m:Folders/><m:ResponseCode>NoError</m:ResponseCode>",
        "<m:ResponseCode>NoError</m:ResponseCode><m:Folders/>",
    )
    assert violations(fixed) == []


def soap_request(body: str, version: str = "Exchange2013") -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="{S}" {NS}>
  <s:Header><t:RequestServerVersion Version="{version}"/></s:Header>
  <s:Body>{body}</s:Body>
</s:Envelope>""".encode()


def post(server: EwsServer, mailbox: EwsMailbox, payload: bytes) -> requests.Response:
    return requests.post(
        server.url,
        data=payload,
        auth=(mailbox.address, mailbox.password),
        headers={"Content-Type": "text/xml; charset=utf-8"},
        verify=server.ca_file,
        timeout=10,
    )


def fault_of(response: requests.Response) -> tuple[str, str, etree._Element]:
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{S}}}Body/{{{S}}}Fault")
    assert fault is not None
    code = fault.findtext("faultcode") or ""
    detail = fault.find("detail")
    assert detail is not None
    return code, detail.findtext(f"{{{E}}}ResponseCode") or "", detail


def test_a_request_failing_the_schema_gets_error_schema_validation(
    ews_server: EwsServer, ews_mailbox: EwsMailbox
) -> None:
    response = post(ews_server, ews_mailbox, soap_request(GET_INBOX.replace('Id="inbox"', 'Id="Inbox"')))

    assert response.status_code == 500
    faultcode, code, detail = fault_of(response)
    assert faultcode == "a:ErrorSchemaValidation"
    assert code == "ErrorSchemaValidation"
    assert detail.findtext(f"{{{E}}}Message") == "The request failed schema validation."
    violation = detail.findtext(f"{{{xsd.T}}}MessageXml/{{{xsd.T}}}Violation") or ""
    assert "'Inbox' is not an element of the set" in violation
    # Recorded; taken here, as the test sent it on purpose (otherwise it would fail the test).
    assert len(ews_server.take_request_violations()) == 1
    (logged,) = [r for r in ews_server.requests if r.mailbox == ews_mailbox.address]
    assert (logged.operation, logged.code) == ("GetFolder", "ErrorSchemaValidation")


def test_a_version_the_server_does_not_speak_gets_error_invalid_server_version(
    ews_server: EwsServer, ews_mailbox: EwsMailbox
) -> None:
    response = post(ews_server, ews_mailbox, soap_request(GET_INBOX, version="Exchange2016"))

    assert response.status_code == 500
    assert fault_of(response)[:2] == ("a:ErrorInvalidServerVersion", "ErrorInvalidServerVersion")


def test_a_valid_request_is_answered_with_a_valid_response(
    ews_server: EwsServer, ews_mailbox: EwsMailbox
) -> None:
    response = post(ews_server, ews_mailbox, soap_request(GET_INBOX))

    assert response.status_code == 200
    root = etree.fromstring(response.content)
    info = root.find(f"{{{S}}}Header/{{{xsd.T}}}ServerVersionInfo")
    assert info is not None
    assert (info.get("MajorVersion"), info.get("MinorVersion")) == ("15", "2")
    body = root.find(f"{{{S}}}Body")
    assert body is not None
    assert xsd.violations(body[0]) == []
    assert body[0].findtext(f".//{{{xsd.T}}}DisplayName") is None  # IdOnly: no other property
    assert body[0].find(f".//{{{xsd.T}}}FolderId") is not None


@pytest.mark.parametrize("payload", [b"<not-xml", b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'])
def test_malformed_or_dtd_requests_are_refused(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, payload: bytes
) -> None:
    response = post(ews_server, ews_mailbox, payload)

    assert response.status_code == 500
    assert fault_of(response)[1] == "ErrorSchemaValidation"
    assert len(ews_server.take_request_violations()) == 1


def test_a_response_breaking_the_schema_fails_the_test(
    ews_server: EwsServer, ews_mailbox: EwsMailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server bug on purpose: Size is an xs:int.
    monkeypatch.setitem(properties.ITEM_WRITERS, "item:Size", lambda item, mailbox: soap.t("Size", "big"))
    ews_server.deliver(ews_mailbox.address, b"Subject: s\r\n\r\nbody\r\n")
    seen = snapshot()
    find = f"""<m:FindItem Traversal="Shallow" {NS}>
      <m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>
      <m:ParentFolderIds><t:DistinguishedFolderId Id="inbox"/></m:ParentFolderIds>
    </m:FindItem>"""

    response = post(ews_server, ews_mailbox, soap_request(find))

    assert response.status_code == 200  # answered; the check after the test is what fails it
    with pytest.raises(pytest.fail.Exception, match="'big' is not a valid value of the atomic type 'xs:int'"):
        check_since(seen)
    assert len(ews_server.take_response_violations()) == 1
