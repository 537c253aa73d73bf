"""Alembic environment of the task store.

``TaskStore`` runs ``alembic.command.upgrade(cfg, "head")`` on start with the URL in the
``sqlalchemy.url`` option and its own connection in ``cfg.attributes["connection"]``; the
``alembic`` command line works too, given ``-x url=...`` (see docs/configuration.md):

    alembic -c worklist/migrations/alembic.ini -x url=sqlite:///kamflow.db upgrade head
    alembic -c worklist/migrations/alembic.ini -x url=sqlite:///empty.db revision \\
        --autogenerate -m "what changed"

On PostgreSQL the migration takes a transaction-level advisory lock, so two processes that start
at once (the flow and `kamflow web`, say) migrate one after the other instead of racing.
"""

from __future__ import annotations

import importlib
import importlib.util

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

from kamflow.worklist.models import Base

# Every module that declares tables on Base: autogenerate compares the database with all of them.
for module in ("kamflow.worklist.quarantine",):
    if importlib.util.find_spec(module) is not None:
        importlib.import_module(module)

target_metadata = Base.metadata
config = context.config
_LOCK_ID = 0x6B616D666C6F77  # "kamflow"


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url")
    if not url:
        raise RuntimeError("no database URL: pass -x url=... or set sqlalchemy.url")
    return url


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite",  # ALTER on SQLite
                      compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # shared by TaskStore: it commits
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
