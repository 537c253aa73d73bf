"""A full disk stops the night cleanly (issue 28): the run stops with a message naming what it
was writing, no email is written in part and no task without its email; after space is freed
the next run completes and sends each email once. The file outbox fills a real, small tmpfs
where this machine allows mounting one (root), else its writes fail with ENOSPC injected at the
write layer; the task store's full disk is injected at its bulk-write layer (SQLite and
PostgreSQL). Also: every run's summary and artifact give the home's size and free space."""

from __future__ import annotations

import errno
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings
from sqlalchemy import select

from kamflow.worklist import OutboxEmail, Task, TaskStore
from tests.conftest import AS_OF
from tests.postgres import temporary_database
from tests.test_bad_inputs import artifacts


def run_flow(prefect_api: str, source: Path):
    from kamflow.flows.retention import retention_run

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        return retention_run(source=str(source), as_of=AS_OF.isoformat(), return_state=True)


class SmallDisk:
    """The outbox folder on a 64 KB tmpfs (or, without the right to mount, its writes failing
    with ENOSPC once 64 KB are written); ``free`` makes room."""

    SIZE = 64 * 1024

    def __init__(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.folder, self.monkeypatch = folder, monkeypatch
        folder.mkdir(parents=True, exist_ok=True)
        self.mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={self.SIZE}", "tmpfs", str(folder)],
            capture_output=True).returncode == 0
        if not self.mounted:
            from kamflow.notifications import outbox

            written, write = [0], outbox._write_temporary

            def full(target: Path, data: bytes) -> str:
                written[0] += len(data)
                if written[0] > self.SIZE:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return write(target, data)

            monkeypatch.setattr(outbox, "_write_temporary", full)

    def free(self) -> None:
        if self.mounted:
            subprocess.run(["mount", "-o", "remount,size=64m", str(self.folder)], check=True)
        else:
            self.monkeypatch.undo()

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.folder)], check=False)


@pytest.fixture
def small_outbox(kamflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmallDisk]:
    disk = SmallDisk(kamflow_home / "outbox", monkeypatch)
    yield disk
    disk.close()


def files(folder: Path) -> dict[str, int]:
    """Every file of the outbox folder (temporary ones too) and when it was last written."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def rows(url: str) -> list[OutboxEmail]:
    with TaskStore(url) as store, store.session() as session:
        return list(session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)))


def announced_open_tasks(url: str) -> tuple[set[int], set[int]]:
    """The open tasks, and the tasks the outbox's emails announce."""
    with TaskStore(url) as store, store.session() as session:
        opened = set(session.scalars(select(Task.id).where(Task.status == "open")))
        listed = {int(i) for e in session.scalars(select(OutboxEmail))
                  for i in e.task_ids.split(",") if i}
    return opened, listed


def test_outbox_disk_full_stops_the_run_and_the_next_sends_each_email_once(
        prefect_api, snapshot_dir, kamflow_home, small_outbox) -> None:
    url = f"sqlite:///{kamflow_home / 'kamflow.db'}"
    state = run_flow(prefect_api, snapshot_dir)
    assert state.is_failed()
    assert "no space left on the disk while writing" in state.message, state.message
    assert str(kamflow_home / "outbox") in state.message
    written = files(kamflow_home / "outbox")
    assert written and not any(name.endswith(".tmp") for name in written), "no partial email"
    emails = rows(url)
    sent = {e.key for e in emails if e.sent_at is not None}
    assert 0 < len(sent) < len(emails)
    assert {f"{k}.eml" for k in sent} == set(written)  # what was written is marked sent
    summary = json.loads(next((kamflow_home / "reports").glob("*/summary.json")).read_text())
    assert "no space left" in summary["message"]

    small_outbox.free()
    again = run_flow(prefect_api, snapshot_dir)
    assert again.is_completed(), again.message
    after = files(kamflow_home / "outbox")
    emails = rows(url)
    assert all(e.sent_at is not None for e in emails)
    assert set(after) == {f"{e.key}.eml" for e in emails}
    assert {name: after[name] for name in written} == written, "sent once: not written again"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, kamflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{kamflow_home / 'kamflow.db'}"
        return
    with temporary_database() as url:
        monkeypatch.setenv("KAMFLOW_DATABASE_URL", url)
        yield url


def test_store_disk_full_keeps_no_task_without_its_email(
        prefect_api, snapshot_dir, kamflow_home, database_url, monkeypatch) -> None:
    """The outbox rows cannot be written (the database's own disk-full error, raised at its
    bulk-write layer): that transaction's tasks are rolled back with them, the run stops
    naming the task store, and the next run raises and sends everything once."""
    import sqlite3

    import psycopg

    from kamflow.worklist import grouping

    insert = grouping.insert_rows

    def full(session, table, values):
        if table.name == "outbox":
            if database_url.startswith("sqlite"):
                raise sqlite3.OperationalError("database or disk is full")
            raise psycopg.errors.DiskFull('could not extend file "base/1/2": No space left on '
                                          "device")
        return insert(session, table, values)

    monkeypatch.setattr(grouping, "insert_rows", full)
    state = run_flow(prefect_api, snapshot_dir)
    assert state.is_failed()
    assert "no space left on the disk while writing the task store" in state.message
    where = (str(kamflow_home / "kamflow.db") if database_url.startswith("sqlite")
             else database_url.rsplit("/", 1)[1])
    assert where in state.message, state.message
    opened, listed = announced_open_tasks(database_url)
    assert opened <= listed, "an open task without the email announcing it"
    assert not list((kamflow_home / "outbox").glob("*.eml"))

    monkeypatch.setattr(grouping, "insert_rows", insert)
    again = run_flow(prefect_api, snapshot_dir)
    assert again.is_completed(), again.message
    opened, listed = announced_open_tasks(database_url)
    assert opened and opened <= listed
    emails = rows(database_url)
    assert all(e.sent_at is not None for e in emails)
    assert sorted(p.name for p in (kamflow_home / "outbox").glob("*.eml")) == sorted(
        f"{e.key}.eml" for e in emails)


def test_every_run_gives_the_home_size_and_free_space(prefect_api, snapshot_dir,
                                                      kamflow_home) -> None:
    state = run_flow(prefect_api, snapshot_dir)
    assert state.is_completed(), state.message
    summary = json.loads(next((kamflow_home / "reports").glob("*/summary.json")).read_text())
    space = summary["space"]
    assert space["home_bytes"] > space["store_bytes"] > 0 and space["free_bytes"] > 0
    found = artifacts(prefect_api, state)
    assert "free disk" in found["disk-space"].data and "task store" in found["disk-space"].data
    assert "disk-space-warning" not in found  # this machine's disk has room
    assert (kamflow_home / "housekeeping" / "sizes.jsonl").read_text().count("\n") == 1
