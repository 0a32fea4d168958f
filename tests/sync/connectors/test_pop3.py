"""sync/connectors/pop3.py against the real test Dovecot."""

from __future__ import annotations

import pytest

from sync.connectors.base import Tls
from sync.connectors.pop3 import Pop3Connection
from sync.errors import MessageError, PermanentError, TransientError
from tests.sync.connectors.conftest import add_user, message, refusal_while_busy, server_settings

pytestmark = pytest.mark.slow


def pop3(dovecot, user, **overrides):
    return Pop3Connection(server_settings(dovecot, user, protocol="pop3", **overrides))


def uidls(dovecot, user):
    with pop3(dovecot, user) as connection:
        listed = [m.uidl for m in connection.list_messages()]
        connection.quit()
    return listed


def delete_and_fail(connection):
    with connection:
        connection.delete(1)
        raise RuntimeError("the run failed half-way")


@pytest.mark.parametrize("tls", [Tls.IMPLICIT, Tls.STARTTLS, Tls.NONE])
def test_list_and_retrieve_with_each_tls_mode(dovecot, mail_user, tls):
    user = mail_user()
    dovecot.deliver(user.address, message("one"))

    with pop3(dovecot, user, tls=tls) as connection:
        (listed,) = connection.list_messages()
        raw = connection.retrieve(listed.number)
        connection.quit()

    assert raw.endswith(message("one"))
    assert listed.size == len(raw)
    assert listed.uidl


def test_uidls_are_stable_across_sessions(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, message("first"))
    before = uidls(dovecot, user)

    dovecot.deliver(user.address, message("second"))
    after = uidls(dovecot, user)

    assert after[0] == before[0]
    assert len(set(after)) == 2


def test_dot_stuffing_and_long_lines_come_back_as_sent(dovecot, mail_user):
    user = mail_user()
    body = ".starts with a dot\r\n..two dots\r\n" + "x" * 5000
    dovecot.deliver(user.address, message("dots", body=body))

    with pop3(dovecot, user) as connection:
        raw = connection.retrieve(1)

    assert raw.endswith(message("dots", body=body))


def test_master_user_login_acts_for_the_mailbox(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, message("for the target"))

    with pop3(dovecot, None, act_as=user.address) as connection:
        raw = connection.retrieve(1)

    assert raw.endswith(message("for the target"))


def test_master_user_denied_for_a_mailbox_is_impersonation_denied(dovecot, mail_user):
    user = mail_user()
    dovecot.deny_impersonation(user.address)

    with pytest.raises(PermanentError) as raised, pop3(dovecot, None, act_as=user.address):
        pass

    assert raised.value.code == "impersonation_denied"
    assert user.address in raised.value.message


def test_wrong_password_is_an_authentication_failure(dovecot, mail_user):
    with pytest.raises(PermanentError) as raised, pop3(dovecot, mail_user(), password="wrong"):
        pass

    assert raised.value.code == "authentication_failed"
    assert f"{dovecot.host}:{dovecot.pop3s_port}" in raised.value.message


def test_delete_takes_effect_at_quit(dovecot, mail_user):
    user = mail_user()
    for subject in ("keep", "drop"):
        dovecot.deliver(user.address, message(subject))
    keep, drop = uidls(dovecot, user)

    with pop3(dovecot, user) as connection:
        connection.delete(2)
        connection.quit()

    assert uidls(dovecot, user) == [keep]
    assert drop != keep


def test_leaving_without_quit_deletes_nothing(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, message("stays"))

    with pytest.raises(RuntimeError, match="half-way"):
        delete_and_fail(pop3(dovecot, user))

    assert len(uidls(dovecot, user)) == 1


def test_a_message_the_server_will_not_give_is_a_message_error(dovecot, mail_user):
    user = mail_user()
    dovecot.deliver(user.address, message("only one"))

    with pop3(dovecot, user) as connection, pytest.raises(MessageError) as raised:
        connection.retrieve(7)

    assert raised.value.code == "fetch_failed"


@pytest.mark.parametrize(("kind", "tls"), [("wrong name", Tls.IMPLICIT), ("wrong name", Tls.STARTTLS)])
def test_a_certificate_for_another_name_is_permanent(dovecot_with_bad_certificate, mail_user, kind, tls):
    server = dovecot_with_bad_certificate(kind)

    with pytest.raises(PermanentError) as raised, pop3(server, mail_user(), tls=tls):
        pass

    assert raised.value.code == "tls_certificate_invalid"
    assert "wrong.example" in raised.value.message


def test_unknown_host_and_closed_port(dovecot, mail_user, closed_port):
    user = mail_user()

    with pytest.raises(PermanentError) as unknown, pop3(dovecot, user, host="nonexistent.invalid"):
        pass
    with pytest.raises(TransientError) as refused, pop3(dovecot, user, port=closed_port):
        pass

    assert unknown.value.code == "dns_not_found"
    assert refused.value.code == "connection_refused"


def test_a_server_that_never_answers_is_a_timeout(dovecot, mail_user, silent_port):
    with pytest.raises(TransientError) as raised, pop3(dovecot, mail_user(), port=silent_port, timeout=0.5):
        pass

    assert raised.value.code == "timeout"


def test_a_server_going_away_is_connection_lost(dovecot, mail_user):
    with pop3(dovecot, mail_user()) as connection, dovecot.stopped(), pytest.raises(TransientError) as raised:
        connection.list_messages()

    assert raised.value.code == "connection_lost"


def test_connection_limit_is_server_busy(one_session_dovecot):
    user = add_user(one_session_dovecot)

    with pop3(one_session_dovecot, user):
        refused = refusal_while_busy(lambda: pop3(one_session_dovecot, user))

    assert refused.code == "server_busy"
