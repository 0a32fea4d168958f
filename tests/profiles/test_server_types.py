"""The one table of what each server type means for profiles and mailboxes."""

from __future__ import annotations

from profiles.server_types import EXCHANGE_TYPES, FACTS, Direction, ServerType, default_port, facts


def test_every_server_type_has_its_facts_and_nothing_else_does():
    assert set(FACTS) == set(ServerType.values)


def test_the_exchange_types_and_the_dynamics_ports():
    assert {ServerType.EXCHANGE_ONLINE, ServerType.EXCHANGE_SERVER} == EXCHANGE_TYPES
    assert default_port(ServerType.IMAP_SMTP, Direction.INCOMING, True) == 993
    assert default_port(ServerType.POP3_SMTP, Direction.INCOMING, False) == 110
    assert default_port(ServerType.POP3_SMTP, Direction.OUTGOING, True) == 465


def test_every_type_signs_in_with_client_credentials_exchange_online_only_so_and_pop3_has_no_act():
    assert [t for t in ServerType.values if facts(t).oauth_client_credentials] == [
        ServerType.EXCHANGE_ONLINE,
        ServerType.EXCHANGE_SERVER,  # hybrid deployments: EWS with an Entra ID app
        ServerType.IMAP_SMTP,  # Exchange Online's IMAP / POP / SMTP with an app's token
        ServerType.POP3_SMTP,
    ]
    assert [t for t in ServerType.values if facts(t).app_only] == [ServerType.EXCHANGE_ONLINE]
    assert [t for t in ServerType.values if not facts(t).syncs_act] == [ServerType.POP3_SMTP]


def test_a_blank_type_has_no_special_rules():
    assert not facts("").exchange
    assert facts("").default_location == ""
