"""A real Dovecot (Debian's dovecot-imapd / -pop3d / -lmtpd) for the tests.

One instance runs standalone (``dovecot -F -c FILE``, as root) from a temporary
directory, on free loopback ports: IMAP, IMAPS, POP3, POP3S and LMTP over TCP,
TLS from a throwaway trustme CA. Choices the engine's tests rely on:

- Users are full addresses (``alice@example.test``), lower-cased by
  ``auth_username_format = %Lu``, each in a passwd-file of its own
  (``users/<address>``): Dovecot stats a passwd-file at most once a second, so
  one shared file would hide a user added a moment after a login; a file that
  was never there is read fresh on its first lookup.
- Maildir storage owned by the ``mail`` user; one namespace, separator ``/``:
  sub-folders are ``INBOX/Sub``; ``Sent`` exists for every user with ``\\Sent``.
- A master user (``master@example.test``) may act for any user — IMAP SASL
  PLAIN with the target as authorization identity, POP3 ``target*master`` —
  except targets listed by ``deny_impersonation``; a denied target gets
  Dovecot's authorization failure (IMAP ``[AUTHORIZATIONFAILED]``).
- Mail arrives through LMTP (``deliver``), so INTERNALDATE is the delivery
  time and Dovecot adds Return-Path, Delivered-To and Received headers.
- With ``oauth2_introspection_url`` (tests/harness/oauth_issuer.py's), an
  ``oauth2`` passdb for the XOAUTH2 and OAUTHBEARER mechanisms checks bearer
  tokens there (RFC 7662 introspection, POST): ``active`` must be true and
  ``username`` the login's. Password logins go on through the passwd-files.
- ``hide_folder`` turns Dovecot's ACL plugin on for one user only (userdb
  fields in that user's passwd-file line), with a global ACL file that takes
  the lookup and read rights on a folder from every login: SELECT then answers
  "Mailbox doesn't exist", as a server whose access rules hide a mailbox's inbox
  from the account that signs in does. Other users load no plugin, so the
  server starts as fast as without it.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import trustme

from tests.harness import processes

DOMAIN = "example.test"
MASTER_USER = f"master@{DOMAIN}"
HOST = "127.0.0.1"


class DovecotError(RuntimeError):
    """Dovecot could not start or a doveadm command failed; the text holds its log."""


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free now: their sockets are all held open while
    they are picked (ports picked one after another can repeat, and one Dovecot
    listening twice on a port refuses to start)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Dovecot:
    def __init__(
        self,
        *,
        ca: trustme.CA | None = None,
        cert: trustme.LeafCert | None = None,
        extra_config: str = "",
        parent: str | Path | None = None,
        oauth2_introspection_url: str = "",
    ) -> None:
        """``cert`` replaces the usual one (for localhost and 127.0.0.1 from ``ca``);
        ``extra_config`` is appended to dovecot.conf (a later setting wins); ``parent``
        is where its directory (configuration, state and the mail) is made, /tmp by
        default: a tmpfs such as ``/dev/shm`` keeps disk I/O out of the benchmarks (bench/)."""
        self.ca = ca or trustme.CA()
        self.extra_config = extra_config
        self.oauth2_introspection_url = oauth2_introspection_url
        self.cert = cert or self.ca.issue_cert("localhost", HOST)
        self.host = HOST
        self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port, self.lmtp_port = free_ports(5)
        self.master_user = MASTER_USER
        self.master_password = secrets.token_hex(12)
        self.mail_uid = pwd.getpwnam("mail")
        # mkdtemp: a fresh private directory wherever it is made.
        self.dir = Path(tempfile.mkdtemp(prefix="serversync-dovecot-", dir=parent or "/tmp"))  # noqa: S108
        self.dir.chmod(0o755)  # the mail, dovecot and dovenull users walk through it
        self.config_path = self.dir / "dovecot.conf"
        self.log_path = self.dir / "dovecot.log"
        self.ca_pem_path = self.dir / "ca.pem"
        self.process: subprocess.Popen[bytes] | None = None
        self._prepare()

    # -- set-up -------------------------------------------------------------

    def _prepare(self) -> None:
        for name in ("run", "state", "mail"):
            (self.dir / name).mkdir(mode=0o755)
        os.chown(self.dir / "mail", self.mail_uid.pw_uid, self.mail_uid.pw_gid)
        self.ca.cert_pem.write_to_path(str(self.ca_pem_path))
        self.cert.private_key_pem.write_to_path(str(self.dir / "key.pem"))
        chain = b"".join(blob.bytes() for blob in self.cert.cert_chain_pems)
        (self.dir / "cert.pem").write_bytes(chain)
        for name in ("users", "impersonation-deny", "acl"):
            (self.dir / name).mkdir(mode=0o755)
        (self.dir / "masters").write_text(f"{self.master_user}:{{PLAIN}}{self.master_password}\n")
        self.config_path.write_text(self._config() + self._oauth2_config() + self.extra_config)

    def _oauth2_config(self) -> str:
        if not self.oauth2_introspection_url:
            return ""
        (self.dir / "oauth2.conf").write_text(
            OAUTH2_TEMPLATE.format(introspection_url=self.oauth2_introspection_url)
        )
        return OAUTH2_PASSDB.format(dir=self.dir)

    def _config(self) -> str:
        d = self.dir
        return CONFIG_TEMPLATE.format(
            dir=d,
            uid=self.mail_uid.pw_uid,
            gid=self.mail_uid.pw_gid,
            imap=self.imap_port,
            imaps=self.imaps_port,
            pop3=self.pop3_port,
            pop3s=self.pop3s_port,
            lmtp=self.lmtp_port,
            instance=d.name,
        )

    # -- life cycle ---------------------------------------------------------

    def start(self, timeout: float = 30) -> Dovecot:
        if shutil.which("dovecot") is None:
            raise DovecotError("dovecot is not installed; run scripts/ensure-services.sh")
        # setpriv: a killed pytest takes its Dovecot down (no ports or /tmp held).
        command = ["setpriv", "--pdeathsig", "TERM", "dovecot", "-F", "-c", str(self.config_path)]
        with (self.dir / "stderr.log").open("ab") as stderr:
            # Its own process group: stop() can end every process of this Dovecot.
            self.process = subprocess.Popen(command, stdout=stderr, stderr=stderr, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DovecotError(f"dovecot exited with {self.process.returncode}:\n{self.log()}")
            if self._greets():
                return
            time.sleep(0.05)
        self.stop()
        raise DovecotError(f"dovecot did not answer within {timeout}s:\n{self.log()}")

    def _greets(self) -> bool:
        """True once every listener accepts and IMAP has sent its greeting (auth is up)."""
        try:
            for port in (self.imaps_port, self.pop3_port, self.pop3s_port, self.lmtp_port):
                socket.create_connection((self.host, port), timeout=1).close()
            with socket.create_connection((self.host, self.imap_port), timeout=2) as sock:
                return sock.recv(200).startswith(b"* OK")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server and every session it holds; the mail stays for ``start``."""
        if self.process is None:
            return
        processes.stop(self.process)
        # Sessions (imap, pop3) and the log process outlive the master; an outage
        # must end them too, or connected clients would go on being served.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """Outage tests: the server is down inside the block and up again after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def restart(self) -> None:
        """Stop the server as ``stop`` does (its sessions end, clients see their
        connections drop) and start it again at once: the same ports, the same mail."""
        self.stop()
        self.start()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        parts = [
            p.read_text(errors="replace") for p in (self.dir / "stderr.log", self.log_path) if p.exists()
        ]
        return "\n".join(parts)

    # -- users --------------------------------------------------------------

    def add_user(self, localpart: str, password: str) -> str:
        """Add a mailbox; returns its address (the login name)."""
        address = f"{localpart}@{DOMAIN}".lower()
        home = self.dir / "mail" / address
        line = f"{address}:{{PLAIN}}{password}:{self.mail_uid.pw_uid}:{self.mail_uid.pw_gid}::{home}::\n"
        (self.dir / "users" / address).write_text(line)
        return address

    def hide_folder(self, address: str, folder: str = "INBOX") -> None:
        """``folder`` of ``address`` no longer exists for any login (ACL: no lookup,
        no read), though its mail stays on disk. Call it before the user's first
        login: Dovecot may not re-read a passwd-file within a second of reading it."""
        address = address.lower()
        acl = self.dir / "acl" / address
        # Global ACL file lines: <mailbox> <identifier> <rights>; "-" makes them negative rights.
        with acl.open("a") as rules:
            rules.write(f"{folder} -anyone lr\n")
        users = self.dir / "users" / address
        line = users.read_text().rstrip("\n")
        if "userdb_acl=" not in line:
            # The passwd-file's last field holds extra fields; userdb_* ones go to the userdb.
            users.write_text(f"{line}userdb_mail_plugins=acl userdb_acl=vfile:{acl}\n")

    def deny_impersonation(self, address: str, *, master: str = MASTER_USER) -> None:
        """The master user may no longer act for ``address`` (its own login still works)."""
        folder = self.dir / "impersonation-deny" / master
        folder.mkdir(mode=0o755, exist_ok=True)
        (folder / address.lower()).write_text(f"{address.lower()}:\n")

    # -- mail ---------------------------------------------------------------

    def deliver(self, address: str, raw: bytes, *, sender: str = f"sender@{DOMAIN}") -> None:
        """Deliver one message into ``address``'s INBOX through LMTP, as an MTA would."""
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=30) as lmtp:
            refused = lmtp.sendmail(sender, [address], raw)
        if refused:
            raise DovecotError(f"LMTP refused {address}: {refused}")

    def deliver_many(self, address: str, raws: list[bytes], *, sender: str = f"sender@{DOMAIN}") -> None:
        """Deliver each message into ``address``'s INBOX, all through one LMTP session
        (a test that needs a hundred messages need not open a hundred connections)."""
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=30) as lmtp:
            for raw in raws:
                refused = lmtp.sendmail(sender, [address], raw)
                if refused:
                    raise DovecotError(f"LMTP refused {address}: {refused}")

    def doveadm(self, *args: str) -> str:
        result = subprocess.run(
            ["doveadm", "-c", str(self.config_path), *args], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise DovecotError(f"doveadm {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result.stdout

    def create_folder(self, address: str, name: str) -> None:
        self.doveadm("mailbox", "create", "-u", address, name)

    def set_uidvalidity(self, address: str, folder: str, uidvalidity: int) -> None:
        self.doveadm("mailbox", "update", "--uid-validity", str(uidvalidity), "-u", address, folder)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only this server's CA, checks on."""
        return ssl.create_default_context(cafile=str(self.ca_pem_path))


CONFIG_TEMPLATE = """\
# Written by tests/harness/dovecot.py for one test run; see its docstring.
instance_name = {instance}
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
shutdown_clients = yes
# Failed logins answer quickly (within Dovecot's 0.5 s failure queue): the tests
# fail logins on purpose, all from 127.0.0.1, which the auth penalty (anvil's
# socket, off with mode 0) would slow to 15 s a try.
auth_failure_delay = 0
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
mail_max_userip_connections = 100
# IDLE learns of new mail through inotify, whose instances are counted per user across the
# machine (128 by default, every Dovecot's sessions are the mail user's): when another
# Dovecot holds them all (bench B3 holds 1,000 IDLE sessions), look every second, not 30.
mailbox_idle_check_interval = 1 s

ssl = yes
ssl_cert = <{dir}/cert.pem
ssl_key = <{dir}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_username_format = %Lu
auth_master_user_separator = *
auth_verbose = yes

mail_location = maildir:~/Maildir
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = {uid}
first_valid_gid = {gid}

namespace inbox {{
  inbox = yes
  separator = /
  prefix =
  mailbox Sent {{
    special_use = \\Sent
    auto = subscribe
  }}
}}

# Master user; `pass = yes` then looks the target up in the regular passdbs,
# where a file impersonation-deny/<master>/<target> refuses it: Dovecot answers
# with an authorization failure. Without a master user the path names no file.
passdb {{
  driver = passwd-file
  master = yes
  pass = yes
  args = scheme=PLAIN {dir}/masters
}}
passdb {{
  driver = passwd-file
  deny = yes
  args = {dir}/impersonation-deny/%{{master_user}}/%Lu
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {dir}/users/%Lu
}}
userdb {{
  driver = passwd-file
  args = {dir}/users/%Lu
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {pop3s}
    ssl = yes
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp}
  }}
}}
"""

# Appended with an introspection URL: the oauth2 passdb answers only the bearer
# token mechanisms, so every password login still goes to the passdbs above.
OAUTH2_PASSDB = """\
auth_mechanisms = plain login xoauth2 oauthbearer
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {dir}/oauth2.conf
}}
"""

OAUTH2_TEMPLATE = """\
introspection_mode = post
introspection_url = {introspection_url}
username_attribute = username
active_attribute = active
active_value = true
force_introspection = yes
"""
