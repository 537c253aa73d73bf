"""Dialect-specific bulk writes: COPY on PostgreSQL, one driver-level executemany on SQLite.

A national first run writes 450,000 tasks, as many history rows and thousands of emails in one
transaction; SQLAlchemy's generic per-row handling costs seconds per 100,000 rows there, so the
store's bulk writes come through here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
from sqlalchemy import DateTime, insert
from sqlalchemy.orm import Session

__all__ = ["insert_returning_ids", "insert_rows", "records"]

CHUNK = 5000  # rows per INSERT where neither COPY nor a raw executemany applies


def insert_returning_ids(session: Session, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` and return their new ids, in order. On PostgreSQL the ids are drawn from
    the table's sequence and the rows sent with COPY (psycopg spends seconds parsing multi-row
    INSERTs of 100,000 rows); elsewhere a Core INSERT ... RETURNING in chunks."""
    if not rows:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        ids = list(connection.exec_driver_sql(
            f"SELECT nextval(pg_get_serial_sequence('{table.name}', 'id')) "
            f"FROM generate_series(1, {len(rows)})").scalars())
        for row, i in zip(rows, ids, strict=True):
            row["id"] = i  # in place: a copy of every row dict costs 0.5 GB at 450,000 tasks
        _copy(connection, table, rows)
        return ids
    # SQLite: the first row's INSERT ... RETURNING takes the database's write lock, held to the
    # commit, and its id is above every id in use; the rest take the ids after it in one
    # executemany (RETURNING with ordered parameters costs one statement per row: 12 s at 1M).
    first = connection.execute(insert(table).returning(table.c.id), rows[0]).scalar_one()
    ids = list(range(first, first + len(rows)))
    for row, i in zip(rows[1:], ids[1:], strict=True):
        row["id"] = i
    insert_rows(session, table, rows[1:])
    return ids


def insert_rows(session: Session, table: Any, rows: list[dict[str, Any]]) -> None:
    """Insert many rows: COPY on PostgreSQL, chunked executemany elsewhere."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        _copy(connection, table, rows)
        return
    if connection.dialect.name == "sqlite":
        _executemany(connection, table, rows)
        return
    for start in range(0, len(rows), CHUNK):
        connection.execute(insert(table), rows[start:start + CHUNK])


def _executemany(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """One driver-level executemany inside the session's transaction, each value converted by
    its column type's own SQLAlchemy bind processor (so stored exactly as an ORM insert stores
    it). SQLAlchemy's per-row parameter handling cost 1.3 s per 100,000 task rows."""
    columns = _insert_columns(table, rows)
    names = ", ".join(f'"{c.name}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    by_column = []  # converted column by column: one C-level map per column, not per value
    for column in columns:
        convert = column.type._cached_bind_processor(connection.dialect)
        if column.name in rows[0]:
            values = [row[column.name] for row in rows]
        else:
            values = [column.default.arg] * len(rows)
        if convert is not None and isinstance(column.type, DateTime):
            # a run's tasks share a few creation and due times: convert each distinct one once
            convert = _memoised(convert)
        by_column.append(list(map(convert, values)) if convert else values)
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.executemany(f'INSERT INTO "{table.name}" ({names}) VALUES ({marks})',
                           zip(*by_column, strict=True))
    finally:
        cursor.close()


def _memoised(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` remembering its results; keyed by the value and its tzinfo too, since equal
    instants in two zones compare (and hash) equal but are written as different text."""
    memo: dict[tuple[Any, Any], Any] = {}

    def cached(value: Any) -> Any:
        key = (value, getattr(value, "tzinfo", None))
        if key in memo:
            return memo[key]
        result = convert(value)
        if len(memo) < 65_536:  # bounded: a column of all-distinct times just converts
            memo[key] = result
        return result

    return cached


def _insert_columns(table: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """The columns an insert of ``rows`` writes: theirs, and those with a scalar default."""
    return [c for c in table.columns if c.name in rows[0] or (
        c.default is not None and getattr(c.default, "is_scalar", False))]


def _copy(connection: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """``COPY table FROM STDIN`` inside the session's transaction (psycopg 3). Columns left out
    of the rows get their Python-side default when they have a scalar one."""
    columns = _insert_columns(table, rows)
    defaults = {c.name: c.default.arg for c in columns if c.name not in rows[0]}
    names = ", ".join(f'"{c.name}"' for c in columns)
    cursor = connection.connection.driver_connection.cursor()
    try:
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(tuple(row.get(c.name, defaults.get(c.name)) for c in columns))
    finally:
        cursor.close()


def records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """``frame[columns].to_dict("records")`` with plain Python values (datetimes, ints, floats)
    and about ten times faster on 100,000 rows (pandas boxes every cell as it goes)."""
    values = []
    for column in columns:
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            values.append(list(series.dt.to_pydatetime()))
        else:
            values.append(series.tolist())
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]


def as_datetime(value: Any) -> dt.datetime:
    """A pandas or numpy timestamp as a Python datetime (datetimes pass through)."""
    return value if isinstance(value, dt.datetime) else pd.Timestamp(value).to_pydatetime()
