"""A throwaway PostgreSQL cluster for fault tests that restart or crash the database.

The machine's own PostgreSQL (the test databases of every test worker) must never be
restarted, so a test that needs the database to go away mid-run gets a cluster of its
own: ``initdb`` into a temporary directory, ``pg_ctl start`` on a free loopback port,
trust authentication for loopback, no fsync (nothing here outlives the test). PostgreSQL
refuses to run as root, so when the tests run as root the cluster runs as the
``postgres`` user (through ``runuser``), which then owns its directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from tests.harness.dovecot import HOST, free_port

SUPERUSER = "postgres"


class ScratchPostgresError(RuntimeError):
    """The cluster could not be made, started or stopped; the text holds its log."""


def _bin_dir() -> Path:
    """The newest server's binaries (Debian keeps them off PATH, one folder per major version)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise ScratchPostgresError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


class ScratchPostgres:
    def __init__(self, *, run_as: str = "postgres") -> None:
        self.bin = _bin_dir()
        self.dir = Path(tempfile.mkdtemp(prefix="serversync-scratch-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "server.log"
        self.port = free_port()
        # Only root must change user: anyone else runs the server as themselves.
        self.user = pwd.getpwnam(run_as) if os.geteuid() == 0 else None
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgres://{SUPERUSER}@{HOST}:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return f"postgres://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> str:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user.pw_name, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if result.returncode != 0:
            raise ScratchPostgresError(
                f"{' '.join(args)} failed:\n{result.stdout}{result.stderr}\n{self.log()}"
            )
        return result.stdout

    def start(self) -> ScratchPostgres:
        if not self.data.exists():
            self._run(
                "initdb", "-D", str(self.data), "-U", SUPERUSER, "-A", "trust", "--no-sync", "-E", "UTF8"
            )
        self._pg_ctl("start", "-w", "-t", "60")
        return self

    def _pg_ctl(self, action: str, *extra: str) -> None:
        options = f"-h {HOST} -p {self.port} -k {self.dir} -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", action, "-D", str(self.data), "-l", str(self.log_path), "-o", options, *extra)

    def restart(self, mode: str = "fast") -> None:
        """``pg_ctl restart -m fast`` (sessions ended cleanly) or ``-m immediate`` (a crash:
        no shutdown checkpoint, crash recovery on start)."""
        self._pg_ctl("restart", "-m", mode, "-w", "-t", "60")

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.url_of("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')

    def wait_answering(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.url_of("postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
