"""The task store's database: the engine, its SQLite settings, and the schema migrations.

Every part of the store (tasks, outbox, digests, roster, quarantine, KPIs) is a small class on
``StoreBase``, which owns one engine and one session factory. The schema comes from Alembic
(worklist/migrations), brought to head once per process and database URL: a run builds the store
several times, and each full ``alembic upgrade`` costs a script-directory load for nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from kamflow.core.errors import disk_full_stops

__all__ = ["MIGRATIONS", "SQLITE_BUSY_TIMEOUT_MS", "StoreBase", "StoreBusyError",
           "alembic_config", "aware", "ensure_migrated", "make_engine", "migrate", "utc"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# A writer (a national dispatch, sla_watch) may hold SQLite's write lock for a while; another
# process waits this long for it instead of failing with "database is locked" after 5 s.
SQLITE_BUSY_TIMEOUT_MS = 30_000


class StoreBusyError(RuntimeError):
    """Another writer held the store's write lock longer than this store waits for it (its
    ``busy_timeout``): try again shortly. Nothing was changed."""


class StoreBase:
    """One engine and its sessions; a context manager that disposes of the engine on exit.

    ``busy_timeout``: seconds a write waits for another writer's lock before `StoreBusyError`
    (default 30 s; `kamflow web` waits 1 s and answers 503, so a long dispatch does not stall
    the people clicking links)."""

    def __init__(self, url: str, echo: bool = False, busy_timeout: float | None = None) -> None:
        self.url = url
        self.engine: Engine = make_engine(url, echo, busy_timeout)
        try:
            ensure_migrated(self.engine)  # schema from worklist/migrations, never create_all
        except BaseException:
            self.engine.dispose()
            raise
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        # a full disk: the transaction is rolled back, then reported naming the database;
        # a lock held past the busy timeout: StoreBusyError (nothing was changed)
        with disk_full_stops(self._where()), _busy_is_an_error(), \
                self._session.begin() as session:
            yield session

    def _where(self) -> str:
        url = self.engine.url
        return f"the task store {url.database}" if url.get_backend_name() == "sqlite" \
            else f"the task store {url.render_as_string(hide_password=True)}"

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A session whose transaction holds the write lock from its first statement: on
        SQLite ``BEGIN IMMEDIATE`` (a read-then-write in a deferred transaction would let two
        processes read the same state before either writes; waits up to the busy timeout);
        elsewhere a plain transaction (PostgreSQL callers lock rows with ``FOR UPDATE``)."""
        with disk_full_stops(self._where()), _busy_is_an_error(), self._session() as session, \
                session.begin():
            if self.engine.dialect.name == "sqlite":
                session.connection().exec_driver_sql("BEGIN IMMEDIATE")
            yield session

    def dispose(self) -> None:
        self.engine.dispose()

    close = dispose

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.dispose()


@contextmanager
def _busy_is_an_error() -> Iterator[None]:
    try:
        yield
    except OperationalError as exc:
        orig = exc.orig
        if "database is locked" in str(orig) or getattr(orig, "sqlstate", None) == "55P03":
            raise StoreBusyError("the task store is busy (another writer holds its lock); "
                                 "nothing was changed, try again shortly") from exc
        raise


def make_engine(url: str, echo: bool = False, busy_timeout: float | None = None) -> Engine:
    """An engine for ``url``; SQLite connections in WAL mode (readers do not wait for a writer,
    so link clicks and sla_watch keep working during a long dispatch) with a busy timeout
    (``busy_timeout`` seconds; on PostgreSQL it is the ``lock_timeout``, when given). A new
    SQLite file is created readable by its owner only (its -wal and -shm files take its mode):
    it holds working task links."""
    engine = create_engine(url, echo=echo, future=True)
    wait_ms = SQLITE_BUSY_TIMEOUT_MS if busy_timeout is None else int(busy_timeout * 1000)
    if engine.dialect.name == "sqlite":
        _create_private(engine.url.database)
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, wait_ms=wait_ms))
    elif engine.dialect.name == "postgresql" and busy_timeout is not None:
        event.listen(engine, "connect", functools.partial(_pg_lock_timeout, wait_ms=wait_ms))
    return engine


def _create_private(database: str | None) -> None:
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if path.parent.is_dir():  # else SQLite's own error names the missing folder
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass


def _sqlite_pragmas(connection: Any, _record: Any, wait_ms: int) -> None:
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # an in-memory database answers "memory"
        cursor.execute(f"PRAGMA busy_timeout={wait_ms}")
    finally:
        cursor.close()


def _pg_lock_timeout(connection: Any, _record: Any, wait_ms: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {wait_ms}")
    connection.commit()


def alembic_config(url: str) -> Any:
    """The Alembic configuration of the task store, built in code (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser escaping
    return cfg


_migrated: set[str] = set()  # URLs brought to head by this process
_migration_lock = threading.Lock()
_head: list[str] = []  # the newest revision, read once


def ensure_migrated(engine: Engine) -> None:
    """``migrate`` the first time this process opens the engine's database; afterwards only a
    one-row check that the schema is still at head (a test may have dropped it, or a file
    database been deleted), migrating again if not. Thread-safe: one migration at a time."""
    url = engine.url.render_as_string(hide_password=False)
    in_memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
    with _migration_lock:
        if in_memory or url not in _migrated or not _at_head(engine):
            migrate(engine)
            if not in_memory:  # each in-memory engine is a new, empty database
                _migrated.add(url)


def _at_head(engine: Engine) -> bool:
    if not _head:
        from alembic.script import ScriptDirectory

        _head.append(str(ScriptDirectory.from_config(alembic_config("")).get_current_head()))
    try:
        with engine.connect() as connection:
            current = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # no alembic_version table: not migrated (any more)
        return False
    return current == _head[0]


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema (``alembic upgrade head``) on the engine's own
    connection. A database created before kamflow used migrations is refused with what to do."""
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    try:
        with engine.begin() as connection:
            tables = set(inspect(connection).get_table_names())
            if "tasks" in tables and "alembic_version" not in tables:
                raise RuntimeError(
                    f"the task store at {engine.url!r} was created before kamflow used schema "
                    "migrations and cannot be upgraded in place: move it aside (a new one is "
                    "created on the next start), or after checking its schema matches, record "
                    "it with `alembic -c worklist/migrations/alembic.ini -x url=URL stamp head`")
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
    except RuntimeError:
        raise
    except Exception:
        # Two processes migrating one new SQLite file at once: the loser fails on "table
        # exists". Fine if the winner got the schema to head; anything else is a real error.
        from alembic.runtime.migration import MigrationContext

        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current != ScriptDirectory.from_config(cfg).get_current_head():
            raise


def aware(stamp: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; everything kamflow stores is UTC."""
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)


def utc(stamp: dt.datetime) -> dt.datetime:
    return aware(stamp).astimezone(dt.UTC)
