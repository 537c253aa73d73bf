"""The task store's engine: migrations once per process and URL (thread-safe), the store as a
context manager, and SQLite in WAL mode with a busy timeout (readers never wait for a writer)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from kamflow.worklist import TaskStore
from kamflow.worklist import db as store_db


@pytest.fixture
def upgrades(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs the real ``migrate`` runs on, in order (it still runs)."""
    calls: list[str] = []
    real = store_db.migrate

    def counted(engine) -> None:  # noqa: ANN001
        calls.append(str(engine.url))
        real(engine)

    monkeypatch.setattr(store_db, "migrate", counted)
    return calls


def test_migrations_run_once_per_process_and_url(tmp_path: Path, upgrades: list[str]) -> None:
    """Building the store four times on one URL upgrades its schema once; another URL once."""
    one, two = (f"sqlite:///{tmp_path / name}" for name in ("one.db", "two.db"))
    for _ in range(4):
        with TaskStore(one) as store:
            assert store.counts()["tasks"] == 0
    with TaskStore(two):
        pass
    assert upgrades == [one, two]


def test_a_database_deleted_meanwhile_is_migrated_again(tmp_path: Path,
                                                        upgrades: list[str]) -> None:
    """The once-per-URL memory does not trust a file that is gone: the new file gets a schema."""
    path = tmp_path / "k.db"
    with TaskStore(f"sqlite:///{path}"):
        pass
    for leftover in tmp_path.glob("k.db*"):
        leftover.unlink()
    with TaskStore(f"sqlite:///{path}") as store:
        assert store.counts() == {"tasks": 0, "emails": 0, "unsent_emails": 0}
    assert len(upgrades) == 2


def test_stores_built_at_once_in_threads_migrate_once(tmp_path: Path,
                                                      upgrades: list[str]) -> None:
    """Eight threads building the store on a new database at once: one migration, no error."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    errors: list[BaseException] = []

    def build() -> None:
        try:
            with TaskStore(url) as store:
                store.counts()
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and upgrades == [url]


def test_the_store_is_a_context_manager_and_close_still_works(tmp_path: Path) -> None:
    """``with`` disposes of the engine on exit, even on an error; ``close()`` does the same."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    with pytest.raises(KeyError), TaskStore(url) as store:
        store.counts()
        assert store.engine.pool.checkedin() == 1
        raise KeyError("boom")
    assert store.engine.pool.checkedin() == 0  # disposed: no pooled connection left
    other = TaskStore(url)
    other.counts()
    other.close()
    assert other.engine.pool.checkedin() == 0


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: Path) -> None:
    """Every connection of the store is in WAL mode and waits 30 s for a lock."""
    with TaskStore(f"sqlite:///{tmp_path / 'k.db'}") as store, store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30_000


def test_a_second_connection_reads_while_a_write_transaction_is_open(tmp_path: Path) -> None:
    """With an exclusive write transaction open (a long dispatch), another connection still
    reads the committed data at once, without waiting for the lock (WAL)."""
    with TaskStore(f"sqlite:///{tmp_path / 'k.db'}") as store:
        writer = store.engine.raw_connection()
        try:
            writer.driver_connection.isolation_level = None  # our BEGIN, not the driver's
            cursor = writer.cursor()
            cursor.execute("BEGIN EXCLUSIVE")
            cursor.execute("INSERT INTO accounts (account_id, manager_email, manager_name, "
                           "first_seen) VALUES ('KA1', 'm@x', 'M', '2026-01-01')")
            reader = store.engine.connect()
            reader.execute(text("PRAGMA busy_timeout = 0"))  # fail at once if it had to wait
            assert reader.execute(text("SELECT COUNT(*) FROM accounts")).scalar() == 0
            reader.close()
            cursor.execute("COMMIT")
        finally:
            writer.close()
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM accounts")).scalar() == 1
