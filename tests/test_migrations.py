"""The task store's schema comes from Alembic migrations (worklist/migrations), on SQLite and
PostgreSQL: a fresh database is migrated to head on start and matches every model."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from kamflow.worklist import TaskStore
from kamflow.worklist.models import Base
from kamflow.worklist.store import MIGRATIONS, alembic_config
from tests.postgres import temporary_database

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a new SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        with temporary_database() as url:
            yield url


def test_store_start_migrates_to_head_matching_every_model(empty_url: str) -> None:
    """TaskStore on an empty database runs the migrations to head; the schema then has every
    table of Base.metadata and no difference from the models (nothing left to autogenerate)."""
    store = TaskStore(empty_url)
    store.dispose()
    TaskStore(empty_url).dispose()  # a second start is a no-op
    engine = create_engine(empty_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn)
            head = ScriptDirectory.from_config(alembic_config(empty_url)).get_current_head()
            assert context.get_current_revision() == head
            assert set(Base.metadata.tables) <= set(inspect(conn).get_table_names())
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_postgresql_outbox_bodies_are_lz4_compressed() -> None:
    """On PostgreSQL 14+ (15 here) the email bodies use lz4, not pglz (3 GB on a national run)."""
    with temporary_database() as url:
        TaskStore(url).dispose()
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                found = dict(conn.execute(text(
                    "SELECT attname, attcompression FROM pg_attribute WHERE attrelid = "
                    "'outbox'::regclass AND attname IN ('body_text', 'body_html')")).all())
        finally:
            engine.dispose()
    assert found == {"body_text": "l", "body_html": "l"}


def test_pre_migration_database_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """A database made by the old create_all (tables, no alembic_version) is not touched: the
    error says how to proceed."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE tasks (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(RuntimeError, match="before kamflow used schema migrations"):
        TaskStore(url)


def test_no_create_all_and_one_linear_history() -> None:
    """The store never calls create_all, and the migrations form one line from base to head."""
    tree = ast.parse((REPO / "worklist" / "store.py").read_text(encoding="utf-8"))
    calls = [n.func.attr for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    assert "create_all" not in calls
    script = ScriptDirectory(str(MIGRATIONS))
    assert len(script.get_heads()) == 1 and len(script.get_bases()) == 1


def test_outbox_claims_migration_goes_down_and_up_keeping_the_emails(empty_url: str) -> None:
    """0004 (outbox claim and lease, run locks) downgrades to 0003 and upgrades again with the
    outbox's rows kept, on SQLite and PostgreSQL."""
    from alembic import command

    TaskStore(empty_url).dispose()
    engine = create_engine(empty_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO outbox (key, recipient, recipient_name, subject, body_text, "
                "body_html, task_ids, created_at, run_id, attempts, kind) VALUES ('k1', 'a@b.c', "
                "'A', 's', 't', '', '', '2026-11-25 02:00:00+00:00', 'r', 0, 'new_tasks')"))
        with engine.begin() as conn:
            cfg = alembic_config(empty_url)
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0003")
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("outbox")}
            assert "claim_token" not in columns and "lease_until" not in columns
            assert "run_locks" not in inspect(conn).get_table_names()
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT key, claim_token FROM outbox")).all() == [
                ("k1", None)]
            assert "run_locks" in inspect(conn).get_table_names()
    finally:
        engine.dispose()
