"""The archive of closed tasks: Parquet files under ``$KAMFLOW_HOME/archive/`` (issue 28).

One folder per table and month of closing, one file per batch archived::

    archive/tasks/month=2025-01/<first id>-<last id>-<rows>.parquet
    archive/task_events/month=2025-01/<first id>-<last id>-<rows>.parquet

A file is written beside its final name, fsynced, renamed into place and its folder fsynced
before the rows leave the database (worklist/housekeeping.py), so a kill at any moment loses
nothing: at worst a batch is both archived and still in the store, and readers count a task
once (the live row wins; the next housekeeping deletes it and rewrites the same file).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["TABLES", "TaskArchive"]

TABLES = ("tasks", "task_events")
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class TaskArchive:
    root: Path

    def folder(self, table: str, month: str) -> Path:
        return self.root / table / f"month={month}"

    def months(self) -> list[str]:
        """The months archived (of closing), oldest first."""
        folder = self.root / "tasks"
        if not folder.is_dir():
            return []
        return sorted(p.name.removeprefix("month=") for p in folder.glob("month=*")
                      if p.is_dir() and any(p.glob("*.parquet")))

    def write(self, table: str, month: str, frame: pd.DataFrame, first: int, last: int) -> Path:
        """Write one batch durably (temp file, fsync, rename, fsync the folder); returns it.
        The same batch written again replaces its file."""
        folder = self.folder(table, month)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{first}-{last}-{len(frame)}.parquet"
        temp = folder / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), temp,
                           compression="zstd")
            _fsync(temp)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        _fsync(folder)
        return target

    def read(self, table: str, months: list[str] | None = None) -> pd.DataFrame:
        """Every archived row of ``table`` (of ``months``, default all), one row per id."""
        files = [f for month in (months if months is not None else self.months())
                 for f in sorted(self.folder(table, month).glob("*.parquet"))]
        if not files:
            return pd.DataFrame()
        frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
        return frame.drop_duplicates("id", keep="last").reset_index(drop=True)

    def remove_month(self, month: str) -> None:
        for table in TABLES:
            shutil.rmtree(self.folder(table, month), ignore_errors=True)

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.root.rglob("*.parquet")) \
            if self.root.is_dir() else 0


def check_month(text: str) -> str:
    if not _MONTH.match(text):
        raise ValueError(f"{text!r} is not a month YYYY-MM")
    return text


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
