"""`make demo` as a newcomer runs it, in a browser: the real target (mail stack,
seeded organization, web app, worker and beat) on a data folder of its own and a
free port, then signing in as the printed admin and checking that the dashboard
is styled by serversync.css and runs htmx (its live progress). Before the fix the
demo collected its static files into var/ but served them from var/demo/static/,
so both answered 404. Needs root, as `make demo` and the mail tests do."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Response, expect

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 180
# The test suite's own settings (PostgreSQL, Redis, keys) stay out: the demo runs on
# its embedded defaults, as `make demo` in a fresh shell does.
SUITE_ONLY = ("DATABASE_", "CELERY_", "SECRET_KEY", "CREDENTIAL_KEYS", "SERVERSYNC_", "SYNC_", "REDIS_")
SUITE_ONLY_NAMES = {"DJANGO_SETTINGS_MODULE", "MEDIA_ROOT", "PORT", "HOST"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (http on loopback)
            status: int = response.status
            return status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def stop(make: subprocess.Popen[bytes], log: Path) -> None:
    """SIGTERM, as Ctrl-C: make's process group (the demo script stops honcho, which
    runs in a session of its own, the relay and Dovecot); whatever is left after
    60 s is killed, honcho's processes included (it logs their pids)."""
    groups = [make.pid, *map(int, re.findall(r"started \(pid=(\d+)\)", log.read_text(errors="replace")))]
    os.killpg(make.pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(alive(group) for group in groups):
        time.sleep(0.5)
    for group in filter(alive, groups):
        print(f"make demo: process group {group} still ran after 60 s; killed", flush=True)
        os.killpg(group, signal.SIGKILL)
    make.wait(timeout=10)


def alive(group: int) -> bool:
    """Whether a process of the group still runs. Zombies do not count: orphans are
    reparented to PID 1, which in a container may be slow to reap them (or never)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group and fields[0] != "Z":  # state, ppid, pgrp
            return True
    return False


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(SUITE_ONLY) and name not in SUITE_ONLY_NAMES
    }
    env |= {"HOST": "127.0.0.1", "PORT": str(port)}
    log = tmp_path / "make-demo.log"
    with log.open("wb") as output:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(ROOT), "demo", f"DEMO_DATA_DIR={tmp_path / 'data'}"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # one process group, stopped as one
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while status_of(f"{url}/login/") != 200:
            if make.poll() is not None:
                pytest.fail(f"make demo exited with {make.returncode}:\n{log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"make demo did not answer within {STARTUP_SECONDS}s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield url
    finally:
        stop(make, log)


def test_the_demo_dashboard_is_styled_and_runs_htmx(demo: str, browser: Browser) -> None:
    context = browser.new_context(base_url=demo, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(30_000)
    page = context.new_page()
    static: dict[str, int] = {}

    def record(response: Response) -> None:
        if "/static/" in response.url:
            static[response.url.removeprefix(demo)] = response.status

    page.on("response", record)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login/\?next="))
    page.get_by_label("User name").fill("admin")
    page.get_by_label("Password").fill("demo")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    page.wait_for_load_state("load")

    wanted = ("/static/serversync/serversync.css", "/static/django_htmx/htmx-2.min.js")
    assert {path: static.get(path) for path in wanted} == dict.fromkeys(wanted, 200), static
    # What a user would notice: the stylesheet's rules apply, and htmx is there to run.
    assert page.evaluate(
        "[...document.styleSheets].some("
        "s => (s.href || '').endsWith('/serversync.css') && s.cssRules.length > 0)"
    )
    assert page.evaluate("typeof window.htmx === 'object' && typeof window.htmx.ajax === 'function'")
    context.close()
