"""Shared fixtures: a small generated snapshot, an isolated KAMFLOW_HOME, a recording SMTP
server and a SendGrid stand-in (tests/fake_sendgrid.py)."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kamflow.generate import make_snapshot, write_snapshot
from tests.fake_sendgrid import FakeSendGrid

# Before anything imports prefect: its home in a throw-away folder, telemetry off.
_PREFECT_HOME = tempfile.mkdtemp(prefix="kamflow-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ.pop("PREFECT_API_URL", None)


AS_OF = dt.date(2026, 11, 25)

# China's public holidays as every test sees them, whichever release of the holidays package is
# installed: as holidays 0.109 (the newest in 2026-12) has them, the State Council's arrangement
# through 2026 and, for 2027, the statutory days alone (no 2027 notice in the package yet). A
# release with the 2027 notice would otherwise change the deadlines and the calendar warning of
# every run dated AS_OF, whose next 60 days reach 2027 (tests/test_calendar_data.py). Flows run
# in a subprocess (CLI, served deployments) see the installed package: none of their tests looks
# at the calendar warning or counts the ops emails.
ARRANGED_THROUGH = 2026
STATUTORY_2027 = frozenset(dt.date(2027, m, d) for m, d in (
    (1, 1), (2, 5), (2, 6), (2, 7), (2, 8), (2, 9), (2, 10), (4, 5), (5, 1), (5, 2), (5, 3),
    (5, 4), (6, 9), (9, 15), (10, 1), (10, 2), (10, 3), (10, 4), (10, 5)))


@pytest.fixture(autouse=True)
def pinned_public_holidays(monkeypatch: pytest.MonkeyPatch) -> None:
    """kamflow.config builds calendars from these public days (see ARRANGED_THROUGH)."""
    from kamflow import config
    from kamflow.worklist import calendar

    def pinned(country: str, years: tuple[int, ...]) -> calendar.PublicDays:
        if country != "CN":
            return calendar.public_days(country, years)
        known = tuple(y for y in years if y <= ARRANGED_THROUGH)
        found = calendar.public_days(country, known) if known else calendar.PublicDays(
            frozenset(), frozenset(), frozenset())
        later = frozenset(d for d in STATUTORY_2027 if d.year in years)
        return calendar.PublicDays(found.days_off | later, found.workdays, found.arranged_years)

    monkeypatch.setattr(config, "public_days", pinned)


@pytest.fixture(scope="session")
def frames() -> dict:
    """A 600-account generated snapshot (with a few planted bad rows), as frames."""
    return make_snapshot(600, AS_OF, seed=11)


@pytest.fixture
def snapshot_dir(tmp_path: Path, frames: dict) -> Path:
    """The 600-account snapshot written as CSV files in a fresh directory."""
    out = tmp_path / "snapshot"
    write_snapshot(frames, out)
    return out


@pytest.fixture
def kamflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty KAMFLOW_HOME with the file outbox and SQLite defaults."""
    home = tmp_path / "home"
    monkeypatch.setenv("KAMFLOW_HOME", str(home))
    monkeypatch.delenv("KAMFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("KAMFLOW_EMAIL_BACKEND", raising=False)
    return home


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class SmtpSink:
    """aiosmtpd handler: collects messages; refuses listed recipients with a given reply."""

    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SmtpSink, int]]:
    """A recording SMTP server on 127.0.0.1 (aiosmtpd) and its port."""
    from aiosmtpd.controller import Controller

    sink, port = SmtpSink(), free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory):
    """A real `prefect server start` on a free loopback port, for the whole test session."""
    yield from start_prefect_server(tmp_path_factory.mktemp("prefect-server"))


def start_prefect_server(home: Path, database_url: str | None = None):
    """Start `prefect server start` (its database: SQLite in ``home`` or ``database_url``),
    yield its API URL once healthy, stop it afterwards."""
    port = free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           # the UI asks this URL for its API; the default assumes port 4200
           "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",
           "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "true",
           # schedule runs within seconds, not the default minute, so tests can see them
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    log = open(home / "server.log", "wb")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"prefect server exited: {(home / 'server.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        server.terminate()
        raise AssertionError("prefect server did not become healthy within 120 s")
    yield url
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


@pytest.fixture
def sendgrid_server() -> Iterator[FakeSendGrid]:
    """A fresh SendGrid stand-in on 127.0.0.1 (tests/fake_sendgrid.py), closed afterwards."""
    with FakeSendGrid() as fake:
        yield fake
