"""A throw-away PostgreSQL database on the local server (127.0.0.1:5432) for one test session.

CI starts the server if it is down (.ci/run). If it cannot be reached the tests that need it
fail with this message rather than skip: PostgreSQL support is part of what kamflow promises.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

ADMIN_URL = os.environ.get("KAMFLOW_TEST_POSTGRES_ADMIN",
                           "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def temporary_database() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"kamflow_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure here means "no server to test against"
        admin.dispose()
        raise AssertionError(
            f"PostgreSQL is not reachable at {ADMIN_URL} ({exc.__class__.__name__}: {exc}). "
            "Start it (pg_ctlcluster --skip-systemctl-redirect <version> main start) or set "
            "KAMFLOW_TEST_POSTGRES_ADMIN.") from None
    try:
        yield ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
