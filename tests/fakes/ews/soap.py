"""SOAP envelopes as Exchange writes them: the ServerVersionInfo header, response messages, faults."""

from __future__ import annotations

from lxml import etree

from tests.fakes.ews.xsd import M, T

S = "http://schemas.xmlsoap.org/soap/envelope/"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"m": M, "t": T}

# Exchange Server 2019 CU14. Like Exchange 2016 and 2019, it names its schema version with a
# date ("V2017_07_11"), which clients do not send back in RequestServerVersion (exchangelib keeps
# the version it asked with).
SERVER_VERSION = {
    "MajorVersion": "15",
    "MinorVersion": "2",
    "MajorBuildNumber": "1544",
    "MinorBuildNumber": "4",
    "Version": "V2017_07_11",
}


def m(tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    return _make(M, tag, text, attrib)


def t(tag: str, text: str | None = None, **attrib: str) -> etree._Element:
    return _make(T, tag, text, attrib)


def _make(namespace: str, tag: str, text: str | None, attrib: dict[str, str]) -> etree._Element:
    element = etree.Element(f"{{{namespace}}}{tag}", attrib, nsmap=NSMAP)
    element.text = text
    return element


def sub(parent: etree._Element, child: etree._Element) -> etree._Element:
    parent.append(child)
    return child


class Refusal(Exception):
    """An answer other than the operation's response: a SOAP fault (HTTP 500)."""

    def __init__(self, status: int, body: bytes, code: str) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.code = code


def server_version_info() -> etree._Element:
    return etree.Element(f"{{{T}}}ServerVersionInfo", SERVER_VERSION, nsmap={"h": T})


def envelope(body: etree._Element, *, header: bool = True) -> etree._Element:
    root = etree.Element(f"{{{S}}}Envelope", nsmap={"s": S})
    if header:
        etree.SubElement(root, f"{{{S}}}Header").append(server_version_info())
    etree.SubElement(root, f"{{{S}}}Body", nsmap={"xsi": XSI}).append(body)
    return root


# Operations whose response messages must hold m:Items even on an error (ItemInfoResponseMessageType).
ITEM_INFO = {"GetItem", "CreateItem", "MoveItem", "CopyItem", "UpdateItem"}


def response_message(operation: str, code: str = "NoError", text: str = "") -> etree._Element:
    """``<m:{operation}ResponseMessage>`` with ResponseClass and ResponseCode (MessageText on errors)."""
    ok = code == "NoError"
    message = m(f"{operation}ResponseMessage", ResponseClass="Success" if ok else "Error")
    if not ok:
        sub(message, m("MessageText", text))
    sub(message, m("ResponseCode", code))
    if not ok:
        sub(message, m("DescriptiveLinkKey", "0"))
        if operation in ITEM_INFO:
            sub(message, m("Items"))
    return message


def response(operation: str, messages: list[etree._Element]) -> etree._Element:
    root = m(f"{operation}Response")
    container = sub(root, m("ResponseMessages"))
    for message in messages:
        container.append(message)
    return root


def fault(
    code: str, text: str, message_xml: etree._Element | None = None, message: str = ""
) -> etree._Element:
    """A SOAP fault as Exchange sends it for errors outside any response message (schema, busy,
    impersonation): the code in faultcode (types namespace) and again in the errors namespace."""
    element = etree.Element(f"{{{S}}}Fault", nsmap={"s": S})
    faultcode = etree.SubElement(element, "faultcode", nsmap={"a": T})
    faultcode.text = f"a:{code}"
    faultstring = etree.SubElement(element, "faultstring")
    faultstring.text = text
    detail = etree.SubElement(element, "detail")
    etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = code
    etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = message or text
    if message_xml is not None:
        detail.append(message_xml)
    return element


def message_xml(**values: str) -> etree._Element:
    """``<t:MessageXml>`` with ``<t:Value Name=...>`` children (BackOffMilliseconds, ...)."""
    container = etree.Element(f"{{{T}}}MessageXml", nsmap={"t": T})
    for name, value in values.items():
        etree.SubElement(container, f"{{{T}}}Value", Name=name).text = value
    return container


def schema_violation_xml(violation: str, line: int) -> etree._Element:
    container = etree.Element(f"{{{T}}}MessageXml", nsmap={"t": T})
    etree.SubElement(container, f"{{{T}}}LineNumber").text = str(line)
    etree.SubElement(container, f"{{{T}}}LinePosition").text = "0"
    etree.SubElement(container, f"{{{T}}}Violation").text = violation
    return container


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")
