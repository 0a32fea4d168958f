"""The rules one at a time: how an entry is read, classified and merged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailboxes.router_import.documents import Entry, parse_date, read_router
from mailboxes.router_import.endpoints import Protocol, read_endpoint
from mailboxes.router_import.files import AGENT_FILE, read_uploads
from mailboxes.router_import.merge import merge
from profiles.models import AuthProtocol, CredentialsSource, ServerType
from tests.mailboxes.router_import.routers import memory_upload, minimal_agent

EWS_ONLINE = "https://outlook.office365.com/EWS/Exchange.asmx"
EXCHANGE = "Microsoft.Crm.Tools.Email.Providers.ExchangePollingMailboxProvider"
POP3 = "Microsoft.Crm.Tools.Email.Providers.Pop3PollingMailboxProvider"
SMTP = "Microsoft.Crm.Tools.Email.Providers.SmtpPollingSendEmailProvider"


def entry(**values: str) -> Entry:
    return Entry(router="Router 1", number=1, values={name: [value] for name, value in values.items()})


def endpoint(**values: str):
    reading = read_endpoint(entry(**values))
    assert reading.endpoint is not None, reading.refusal
    return reading.endpoint


def read(agent: bytes):
    [router] = read_uploads([memory_upload(**{"agent": agent})])
    return read_router(router)


@pytest.mark.parametrize(
    ("incoming", "outgoing", "server_type"),
    [
        (
            {"ProviderClass": EXCHANGE, "EmailServerUrl": EWS_ONLINE},
            {"ProviderClass": SMTP, "EmailServerUrl": "smtp.x.test"},
            ServerType.EXCHANGE_ONLINE,
        ),
        (
            {"ProviderClass": EXCHANGE, "EmailServerUrl": "https://mail.x.test/EWS/Exchange.asmx"},
            None,
            ServerType.EXCHANGE_SERVER,
        ),
        (
            {"ProviderClass": POP3, "EmailServerUrl": "pop.x.test"},
            {"ProviderClass": SMTP, "EmailServerUrl": "smtp.x.test"},
            ServerType.POP3_SMTP,
        ),
        (
            {"ProviderClass": POP3, "EmailServerUrl": "pop.x.test"},
            {"Direction": "Outgoing", "EmailServerUrl": EWS_ONLINE},
            ServerType.EXCHANGE_ONLINE,
        ),
    ],
)
def test_the_merge_table(incoming, outgoing, server_type):
    merged = merge(endpoint(**incoming), endpoint(**outgoing) if outgoing else None)
    assert merged.spec is not None
    assert merged.spec.server_type == server_type


def test_pop3_without_smtp_is_not_migrated():
    merged = merge(endpoint(ProviderClass=POP3, EmailServerUrl="pop.x.test"), None)
    assert merged.spec is None
    assert "needs both" in merged.refusal


def test_smtp_alone_is_not_migrated():
    merged = merge(None, endpoint(ProviderClass=SMTP, EmailServerUrl="smtp.x.test"))
    assert merged.spec is None


def test_pop3_with_exchange_outgoing_warns_that_mail_is_read_through_exchange():
    merged = merge(
        endpoint(ProviderClass=POP3, EmailServerUrl="pop.x.test"),
        endpoint(Direction="outgoing", EmailServerUrl=EWS_ONLINE),
    )
    assert any("POP3 incoming with Exchange outgoing" in warning for warning in merged.warnings)


@pytest.mark.parametrize(
    ("values", "refusal"),
    [
        ({"ProviderClass": EXCHANGE, "EmailServerUrl": "http://ex2003.x.test/exchange/"}, "WebDAV"),
        (
            {
                "ProviderClass": EXCHANGE,
                "EmailServerType": "Exchange 2007 WebDAV",
                "EmailServerUrl": EWS_ONLINE,
            },
            "WebDAV",
        ),
        ({"ProviderClass": "Contoso.Router.GmailProvider", "EmailServerUrl": "x"}, "custom provider"),
        ({"ProviderAssembly": "Contoso.Providers.dll", "ProviderClass": EXCHANGE}, "custom provider"),
        ({"EmailServerUrl": "pop.x.test"}, "neither the provider class nor a Direction tag"),
    ],
)
def test_what_cannot_become_a_server(values, refusal):
    assert refusal in read_endpoint(entry(**values)).refusal


def test_exchange_online_is_told_by_microsofts_hosts():
    assert endpoint(ProviderClass=EXCHANGE, EmailServerUrl=EWS_ONLINE).is_online
    assert endpoint(
        ProviderClass=EXCHANGE, EmailServerUrl="https://pod51000.outlook.com/ews/exchange.asmx"
    ).is_online
    assert not endpoint(
        ProviderClass=EXCHANGE, EmailServerUrl="https://outlook.contoso.test/EWS/Exchange.asmx"
    ).is_online


def test_a_pop3_location_with_a_port_and_no_ssl_flag():
    read_ = read_endpoint(entry(ProviderClass=POP3, EmailServerUrl="POP.X.test:110"))
    assert read_.endpoint is not None
    assert (read_.endpoint.location, read_.endpoint.port, read_.endpoint.use_ssl) == (
        "pop.x.test",
        110,
        False,
    )
    assert "SSL not stated; taken as off" in read_.notes


def test_an_exchange_host_name_becomes_its_ews_url_with_a_note():
    read_ = read_endpoint(entry(ProviderClass=EXCHANGE, EmailServerUrl="mail.x.test"))
    assert read_.endpoint is not None
    assert read_.endpoint.location == "https://mail.x.test/EWS/Exchange.asmx"
    assert any("taken as https://mail.x.test/EWS/Exchange.asmx" in note for note in read_.notes)


def test_windows_authentication_is_ntlm_for_exchange_and_auto_for_pop3():
    exchange = read_endpoint(
        entry(ProviderClass=EXCHANGE, EmailServerUrl=EWS_ONLINE, EmailAuthMode="Windows")
    )
    pop3 = read_endpoint(entry(ProviderClass=POP3, EmailServerUrl="pop.x.test", EmailAuthMode="Windows"))
    assert exchange.endpoint is not None
    assert pop3.endpoint is not None
    assert (exchange.endpoint.auth, pop3.endpoint.auth) == (AuthProtocol.NTLM, AuthProtocol.AUTO)
    assert any("Exchange only" in note for note in pop3.notes)


def test_different_outgoing_user_is_kept_separately():
    merged = merge(
        endpoint(ProviderClass=POP3, EmailServerUrl="pop.x.test", EmailUser="in@x.test"),
        endpoint(ProviderClass=SMTP, EmailServerUrl="smtp.x.test", EmailUser="out@x.test"),
    )
    assert merged.spec is not None
    assert (merged.spec.credentials_source, merged.spec.username, merged.spec.outgoing_username) == (
        CredentialsSource.PROFILE,
        "in@x.test",
        "out@x.test",
    )
    assert merged.spec.use_same_settings_for_outgoing is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-10T08:00:00.1234567Z", datetime(2025, 3, 10, 8, 0, 0, 123456, tzinfo=UTC)),
        ("2025-03-10T09:00:00+01:00", datetime(2025, 3, 10, 8, 0, tzinfo=UTC)),
        ("2025-03-10 08:00:00", datetime(2025, 3, 10, 8, 0, tzinfo=UTC)),
        ("3/10/2025 8:00:00 AM", datetime(2025, 3, 10, 8, 0, tzinfo=UTC)),
        ("yesterday", None),
    ],
)
def test_threshold_dates(text, expected):
    assert parse_date(text) == expected


def test_namespaces_attributes_and_utf16_without_a_byte_order_mark():
    agent = (
        '<?xml version="1.0" encoding="utf-16"?>\r\n'
        '<c:Configuration xmlns:c="urn:cfg" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\r\n'
        '  <c:ProviderConfiguration xsi:type="X" id="7">\r\n'
        '    <c:EMAILADDRESS kind="primary">a@x.test</c:EMAILADDRESS>\r\n'
        "  </c:ProviderConfiguration>\r\n"
        "</c:Configuration>\r\n"
    ).encode("utf-16-le")
    documents = read(agent)
    assert [e.values for e in documents.entries] == [{"EmailAddress": ["a@x.test"]}]
    assert documents.findings == []


def test_nested_provider_configurations_are_listed_not_read():
    documents = read(minimal_agent("<Deployments><ProviderConfiguration/></Deployments>\n"))
    assert documents.entries == []
    assert [f.text for f in documents.findings] == [
        "<Deployments> ignored",
        "<ProviderConfiguration> nested inside another element ignored (the Email Router reads only those "
        "directly under <Configuration>)",
    ]
    assert all(f.file == AGENT_FILE for f in documents.findings)


def test_user_ids_may_be_repeated_or_listed_in_one_tag():
    agent = minimal_agent(
        "<ProviderConfiguration><UserId>{AA-1}; bb-2</UserId><userid> CC-3 </userid>"
        "</ProviderConfiguration>\n"
    )
    [only] = read(agent).entries
    assert only.ids("UserId") == ["aa-1", "bb-2", "cc-3"]


def test_an_unknown_state_tag_and_a_threshold_without_an_owner_are_listed():
    state = (
        b"<SystemState><Extra>1</Extra><MailboxState><ThresholdDate>2025-01-01</ThresholdDate>"
        b"</MailboxState></SystemState>"
    )
    [router] = read_uploads([memory_upload(state=state)])
    documents = read_router(router)
    assert [f.text for f in documents.findings] == [
        "<Extra> not understood",
        "ThresholdDate without EmailAddress, UserId or QueueId; not used",
    ]


def test_protocol_from_the_location_when_there_is_no_class():
    reading = read_endpoint(entry(Direction="Incoming", EmailServerUrl="pop.x.test"))
    assert reading.endpoint is not None
    assert reading.endpoint.protocol is Protocol.POP3
    assert "no ProviderClass: the kind of server is inferred from the other tags" in reading.notes
